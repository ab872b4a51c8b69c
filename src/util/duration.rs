//! Parsing of human durations such as `250ms`, `5s`, `1.5m`, `100us`: the one grammar of
//! a duration (a number and a unit, always) for every option, manifest key, script
//! argument, threshold and fault parameter. Durations are printed by
//! [`crate::util::human::duration`].

use std::fmt;
use std::time::Duration;

/// The reason of a bare number, which the error turns into what to write instead.
const MISSING_UNIT: &str = "missing unit";

/// Why a duration string was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct DurationError {
    pub input: String,
    pub reason: &'static str,
}

impl fmt::Display for DurationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (input, units) = (self.input.trim(), "ns, us, ms, s, m or h");
        match self.reason {
            MISSING_UNIT => {
                write!(f, "invalid duration '{input}': \"{input}\" needs a unit, e.g. \"{input}ms\" ({units})")
            }
            why => {
                write!(f, "invalid duration '{input}': {why} (expected a number with a unit: {units}, e.g. \"250ms\")")
            }
        }
    }
}

/// Parses `"250ms"`, `"5s"`, `"1.5s"`, `"2m"`, `"100us"`, `"1h"`. A bare number is rejected
/// (`"50" needs a unit, e.g. "50ms"`): a unit is always required so that `5` can never
/// silently mean 5 ns or 5 s.
pub fn parse_duration(input: &str) -> Result<Duration, DurationError> {
    let err = |reason| DurationError { input: input.to_string(), reason };
    let (value, unit) = number_and_unit(input).map_err(err)?;
    let scale = match unit {
        "ns" => 1e-9,
        "us" | "µs" => 1e-6,
        "ms" => 1e-3,
        "s" | "sec" => 1.0,
        "m" | "min" => 60.0,
        "h" => 3600.0,
        _ => return Err(err("unknown unit")),
    };
    let secs = value * scale;
    if !secs.is_finite() || secs > 1e9 {
        return Err(err("too large"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// Splits `"1.5 ms"` into 1.5 and `"ms"`: the one grammar of a number with a unit that
/// durations and sizes share (the unit is required). The error is the reason.
pub(crate) fn number_and_unit(input: &str) -> Result<(f64, &str), &'static str> {
    let s = input.trim();
    if s.is_empty() {
        return Err("missing number");
    }
    let split = s.find(|c: char| !(c.is_ascii_digit() || c == '.')).ok_or(MISSING_UNIT)?;
    let (num, unit) = s.split_at(split);
    if num.is_empty() {
        return Err("missing number");
    }
    let value: f64 = num.parse().map_err(|_| "not a number")?;
    Ok((value, unit.trim()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units() {
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("5s").unwrap(), Duration::from_secs(5));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("100us").unwrap(), Duration::from_micros(100));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
    }

    #[test]
    fn rejects_bad_input() {
        assert_eq!(parse_duration("5").unwrap_err().reason, "missing unit");
        assert_eq!(
            parse_duration(" 50 ").unwrap_err().to_string(),
            "invalid duration '50': \"50\" needs a unit, e.g. \"50ms\" (ns, us, ms, s, m or h)"
        );
        assert_eq!(parse_duration("").unwrap_err().reason, "missing number");
        assert_eq!(parse_duration("ms").unwrap_err().reason, "missing number");
        assert_eq!(parse_duration("5 parsecs").unwrap_err().reason, "unknown unit");
        assert_eq!(parse_duration("1.2.3s").unwrap_err().reason, "not a number");
    }
}
