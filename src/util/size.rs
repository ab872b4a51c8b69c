//! Parsing of human byte sizes such as `64KB`, `1.5MB`, `256KiB`, `512B`.

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;
use std::fmt;

/// Why a size string was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid size '{input}': {reason} (expected a number with a unit: B, KB, MB, GB, KiB, MiB or GiB, e.g. \"64KB\")"
)]
pub struct SizeError {
    pub input: String,
    pub reason: &'static str,
}

/// Parses `"512B"`, `"64KB"` (64 000), `"1.5MB"` (1 500 000), `"64KiB"` (65 536), `"2MiB"`
/// (2 097 152); units are case-insensitive, a fraction of a byte is dropped. A bare number
/// is rejected: a unit is always required, as for durations.
pub fn parse_size(input: &str) -> Result<u64, SizeError> {
    let err = |reason| SizeError { input: input.to_string(), reason };
    let (value, unit) = crate::util::duration::number_and_unit(input).map_err(err)?;
    let scale = match unit.to_ascii_lowercase().as_str() {
        "b" => 1.0,
        "kb" => 1e3,
        "mb" => 1e6,
        "kib" => 1024.0,
        "mib" => 1024.0 * 1024.0,
        "gb" => 1e9,
        "gib" => 1024.0 * 1024.0 * 1024.0,
        _ => return Err(err("unknown unit")),
    };
    let bytes = value * scale;
    if !bytes.is_finite() || bytes > 1e15 {
        return Err(err("too large"));
    }
    Ok(bytes as u64)
}

/// A size in bytes, read from a manifest as a string with a unit (`"64KB"`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ByteSize(pub u64);

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<ByteSize, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = ByteSize;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a size with a unit, e.g. \"64KB\"")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<ByteSize, E> {
                parse_size(s).map(ByteSize).map_err(E::custom)
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<ByteSize, E> {
                Err(E::custom(format!("invalid size {n}: a size needs a unit, e.g. \"{n}B\" or \"{n}KB\"")))
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<ByteSize, E> {
                self.visit_i64(n as i64)
            }
            fn visit_f64<E: de::Error>(self, n: f64) -> Result<ByteSize, E> {
                Err(E::custom(format!("invalid size {n}: a size needs a unit, e.g. \"{n}KB\"")))
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units() {
        assert_eq!(parse_size("512B").unwrap(), 512);
        assert_eq!(parse_size("64KB").unwrap(), 64_000);
        assert_eq!(parse_size("64kb").unwrap(), 64_000);
        assert_eq!(parse_size("1.5MB").unwrap(), 1_500_000);
        assert_eq!(parse_size("64KiB").unwrap(), 65_536);
        assert_eq!(parse_size(" 2 MiB ").unwrap(), 2 * 1024 * 1024);
    }

    #[test]
    fn rejects_bad_input() {
        assert_eq!(parse_size("64").unwrap_err().reason, "missing unit");
        assert_eq!(parse_size("KB").unwrap_err().reason, "missing number");
        assert_eq!(parse_size("1TB").unwrap_err().reason, "unknown unit");
        assert_eq!(parse_size("2GiB").unwrap(), 2 << 30);
        assert_eq!(parse_size("1.2.3KB").unwrap_err().reason, "not a number");
        assert!(parse_size("-1KB").unwrap_err().to_string().contains("e.g. \"64KB\""));
    }

    #[test]
    fn reads_manifest_values() {
        let s: ByteSize = yaml_serde::from_str("\"64KB\"").unwrap();
        assert_eq!(s, ByteSize(64_000));
        let e = yaml_serde::from_str::<ByteSize>("65536").unwrap_err().to_string();
        assert!(e.contains("needs a unit"), "{e}");
    }
}
