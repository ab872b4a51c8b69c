//! Numbers as a person reads them: three significant figures and a unit, never a raw
//! float. `60309.71 req/s` is `60.3K req/s`, `0.0205 s` is `20.5 ms`, `0.001234` of a
//! ratio is `0.123%`. Console lines, summary.txt, summary.md and report.html all use these,
//! so the same figure reads the same everywhere.

/// `x` to three significant figures, trailing zeros dropped: `72718.4` -> `72700`,
/// `0.13` -> `0.13`, `1.0` -> `1`. Not finite: `n/a`.
pub fn sig3(x: f64) -> String {
    if !x.is_finite() {
        return "n/a".into();
    }
    if x == 0.0 {
        return "0".into();
    }
    let mag = x.abs().log10().floor() as i32;
    let decimals = (2 - mag).max(0) as usize;
    let scale = 10f64.powi(mag - 2);
    let rounded = if mag >= 2 { (x / scale).round() * scale } else { x };
    let s = format!("{rounded:.decimals$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// A count or rate with K/M/G suffixes: `60309.7` -> `60.3K`, `950` -> `950`, `1.5e6` -> `1.5M`.
pub fn count(x: f64) -> String {
    if !x.is_finite() {
        return "n/a".into();
    }
    let a = x.abs();
    // Round first, so 999.96 becomes "1K", not "1000".
    let (v, suffix) = if a >= 999.5e6 {
        (x / 1e9, "G")
    } else if a >= 999.5e3 {
        (x / 1e6, "M")
    } else if a >= 999.5 {
        (x / 1e3, "K")
    } else {
        (x, "")
    };
    format!("{}{suffix}", sig3(v))
}

/// An exact integer with thousands separators: `284277` -> `284,277`.
pub fn int(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A duration given in milliseconds: `0.278` -> `278 us`, `20.5` -> `20.5 ms`,
/// `6570` -> `6.57 s`, `125000` -> `2.08 min`.
pub fn ms(x: f64) -> String {
    if !x.is_finite() {
        return "n/a".into();
    }
    let a = x.abs();
    if a == 0.0 {
        "0 ms".into()
    } else if a < 1.0 {
        format!("{} us", sig3(x * 1000.0))
    } else if a < 999.5 {
        format!("{} ms", sig3(x))
    } else if a < 59_950.0 {
        format!("{} s", sig3(x / 1000.0))
    } else if a < 3_597_000.0 {
        format!("{} min", sig3(x / 60_000.0))
    } else {
        format!("{} h", sig3(x / 3_600_000.0))
    }
}

/// A [`Duration`](std::time::Duration) as [`ms`] prints it: 1.5 s is `1.5 s`.
pub fn duration(d: std::time::Duration) -> String {
    ms(d.as_secs_f64() * 1000.0)
}

/// Bytes in binary units: `29_100_000` -> `27.8 MiB`.
pub fn bytes(x: f64) -> String {
    if !x.is_finite() {
        return "n/a".into();
    }
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = x;
    let mut i = 0;
    while v.abs() >= 1023.5 && i < UNITS.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    format!("{} {}", sig3(v), UNITS[i])
}

/// A ratio (0..1) as a percentage: `0.9983` -> `99.8%`, `0.00123` -> `0.123%`.
pub fn pct(ratio: f64) -> String {
    if !ratio.is_finite() {
        return "n/a".into();
    }
    format!("{}%", sig3(ratio * 100.0))
}

/// A signed percentage difference: `12.34` -> `+12.3%`, `-0.5` -> `-0.5%`.
pub fn signed_pct(percent: f64) -> String {
    if !percent.is_finite() {
        return "n/a".into();
    }
    let s = sig3(percent);
    if percent > 0.0 {
        format!("+{s}%")
    } else {
        format!("{s}%")
    }
}

/// A value with its unit, in the unit's natural scale: `ms` reads as a duration, `s` too,
/// `bytes`/`B` as bytes, `MB` kept, `ratio` as a percentage, `%` as is, `req/s` and other
/// rates with K/M suffixes, anything else three significant figures and the unit.
pub fn with_unit(x: f64, unit: Option<&str>) -> String {
    match unit.map(str::trim).unwrap_or("") {
        "ms" => ms(x),
        "s" => ms(x * 1000.0),
        "us" => ms(x / 1000.0),
        "bytes" | "B" => bytes(x),
        "ratio" => pct(x),
        "%" => format!("{}%", sig3(x)),
        "" => count(x),
        u if u.ends_with("/s") || u == "sessions" || u == "requests" || u == "count" => format!("{} {u}", count(x)),
        u => format!("{} {u}", sig3(x)),
    }
}

/// A signed exact integer with thousands separators: `-284277` -> `-284,277`.
pub fn signed_int(n: i64) -> String {
    if n < 0 {
        format!("-{}", int(n.unsigned_abs()))
    } else {
        int(n as u64)
    }
}

/// An integer with its unit: a count stays exact (`218171 sent` -> `218,171 sent`); a time,
/// size or ratio reads as [`with_unit`] says (`1500 ms` -> `1.5 s`).
pub fn int_with_unit(n: i64, unit: Option<&str>) -> String {
    match unit.map(str::trim).unwrap_or("") {
        "" => signed_int(n),
        u @ ("ms" | "s" | "us" | "bytes" | "B" | "ratio" | "%") => with_unit(n as f64, Some(u)),
        u => format!("{} {u}", signed_int(n)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn three_significant_figures() {
        assert_eq!(sig3(72718.41440950964), "72700");
        assert_eq!(sig3(0.29342799999999997), "0.293");
        assert_eq!(sig3(20.524853999999998), "20.5");
        assert_eq!(sig3(1.0), "1");
        assert_eq!(sig3(-0.001234), "-0.00123");
        assert_eq!(sig3(0.0), "0");
        assert_eq!(sig3(f64::NAN), "n/a");
        assert_eq!(sig3(999.96), "1000");
    }

    #[test]
    fn counts_durations_bytes_and_ratios() {
        assert_eq!(count(60309.71008546234), "60.3K");
        assert_eq!(count(950.0), "950");
        assert_eq!(count(999.96), "1K");
        assert_eq!(count(1_500_000.0), "1.5M");
        assert_eq!(int(284277), "284,277");
        assert_eq!(int(12), "12");
        assert_eq!(ms(0.278), "278 us");
        assert_eq!(ms(20.524), "20.5 ms");
        assert_eq!(ms(680.0), "680 ms");
        assert_eq!(ms(6570.0), "6.57 s");
        assert_eq!(duration(std::time::Duration::from_micros(12_300)), "12.3 ms");
        assert_eq!(ms(125_000.0), "2.08 min");
        assert_eq!(bytes(29_100_000.0), "27.8 MiB");
        assert_eq!(bytes(512.0), "512 B");
        assert_eq!(pct(0.99836), "99.8%");
        assert_eq!(signed_pct(12.34), "+12.3%");
        assert_eq!(signed_pct(-0.5), "-0.5%");
        assert_eq!(with_unit(72718.4, Some("req/s")), "72.7K req/s");
        assert_eq!(with_unit(0.669915087, Some("s")), "670 ms");
        assert_eq!(with_unit(29.1, Some("MB")), "29.1 MB");
    }

    #[test]
    fn integers_stay_exact_unless_their_unit_is_a_time_size_or_ratio() {
        assert_eq!(signed_int(-284277), "-284,277");
        assert_eq!(signed_int(0), "0");
        assert_eq!(signed_int(i64::MIN), "-9,223,372,036,854,775,808");
        assert_eq!(int_with_unit(218171, None), "218,171");
        assert_eq!(int_with_unit(218171, Some("sent")), "218,171 sent");
        assert_eq!(int_with_unit(1500, Some("ms")), "1.5 s");
        assert_eq!(int_with_unit(2048, Some("bytes")), "2 KiB");
    }
}
