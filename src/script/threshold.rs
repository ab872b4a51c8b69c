//! Thresholds in k6's expression style: `"p99 < 50ms"`, `"p(99.9) <= 0.2s"`, `"avg < 10ms"`,
//! `"rate > 1000"`, `"error_rate < 0.1%"`, `"count >= 100"`, `"timeouts == 0"`.
//!
//! A threshold is parsed once ([`Threshold::parse`], which rejects malformed expressions
//! with a message saying what was expected) and judged against an [`Observed`] result:
//! the numbers of a result map, with latency statistics normalised to milliseconds. The
//! convention for result maps is [`MAP_CONVENTION`]; this file is free of Rhai types.

use crate::util::duration::{number_and_unit, parse_duration};
use std::collections::BTreeMap;
use std::fmt;

/// How result maps hold the numbers thresholds read. Printed by `mcpscript api`.
pub const MAP_CONVENTION: &str = "\
A threshold reads a result map:
- Latency statistics live in `result.latency` (a map) or, when there is no `latency` key, at the
  top level of `result` (so `stats::summary(xs)` works as is). Keys: `p50`, `p90`, `p95`, `p99`,
  `p999` (`pN` is percentile N with its dot removed: `p(99.9)` reads `p999`), `min`, `max`,
  `mean` (or `avg`), `median` (or `p50`), `stddev`.
- Latency values are milliseconds unless the map holding them has `unit: \"us\"` or `unit: \"s\"`.
- `rate` reads `rate` (or `throughput`, `rps`): per second.
- `error_rate` reads `error_rate` (a fraction, 0.01 = 1%); without it, `(sent - ok) / sent` or
  `errors / count` (`errors` may be a map of counts by kind).
- `count` reads `count` (or `sent`). Any other name reads that numeric key at the top level.
Limits: `p(N)`/`pN`, `avg`, `min`, `max`, `med`, `stddev` take a duration with its unit (`500us`,
`50ms`, `0.2s`; a bare number is refused: `\"50\" needs a unit, e.g. \"50ms\"`); `rate` a number
(optionally `/s`); the others a number or a percentage (`0.1%` = 0.001). Operators: `<`, `<=`,
`>`, `>=`, `==`, `!=`.";

/// What a threshold measures.
#[derive(Debug, Clone, PartialEq)]
pub enum Metric {
    /// A latency percentile, 0 < p <= 100.
    Percentile(f64),
    Avg,
    Min,
    Max,
    Median,
    Stddev,
    /// Requests (or events) per second.
    Rate,
    /// Failed fraction of requests.
    ErrorRate,
    Count,
    /// Any other numeric key of the result map.
    Key(String),
}

impl Metric {
    fn is_latency(&self) -> bool {
        matches!(
            self,
            Metric::Percentile(_) | Metric::Avg | Metric::Min | Metric::Max | Metric::Median | Metric::Stddev
        )
    }
}

impl fmt::Display for Metric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Metric::Percentile(p) => write!(f, "p({p})"),
            Metric::Avg => f.write_str("avg"),
            Metric::Min => f.write_str("min"),
            Metric::Max => f.write_str("max"),
            Metric::Median => f.write_str("med"),
            Metric::Stddev => f.write_str("stddev"),
            Metric::Rate => f.write_str("rate"),
            Metric::ErrorRate => f.write_str("error_rate"),
            Metric::Count => f.write_str("count"),
            Metric::Key(k) => f.write_str(k),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
    Ne,
}

impl Op {
    fn holds(self, actual: f64, limit: f64) -> bool {
        match self {
            Op::Lt => actual < limit,
            Op::Le => actual <= limit,
            Op::Gt => actual > limit,
            Op::Ge => actual >= limit,
            Op::Eq => actual == limit,
            Op::Ne => actual != limit,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Ge => ">=",
            Op::Eq => "==",
            Op::Ne => "!=",
        }
    }
}

/// A parsed threshold. Latency limits are held in milliseconds, percentages as fractions.
#[derive(Debug, Clone, PartialEq)]
pub struct Threshold {
    pub metric: Metric,
    pub op: Op,
    pub limit: f64,
    /// The expression as written.
    pub source: String,
}

/// A malformed threshold expression.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid threshold \"{expr}\": {reason}")]
pub struct ThresholdError {
    pub expr: String,
    pub reason: String,
}

/// The numbers of a result, ready to be judged.
#[derive(Debug, Clone, Default)]
pub struct Observed {
    /// Latency statistics in milliseconds, by key (`p99`, `mean`, ...).
    pub latency: BTreeMap<String, f64>,
    /// Every other numeric value, by key.
    pub values: BTreeMap<String, f64>,
}

/// The outcome of judging one threshold.
#[derive(Debug, Clone, PartialEq)]
pub struct Judgement {
    pub passed: bool,
    pub actual: f64,
    /// `p99 = 12.3ms (limit < 50ms)`.
    pub detail: String,
}

impl Threshold {
    pub fn parse(expr: &str) -> Result<Threshold, ThresholdError> {
        let err = |reason: String| ThresholdError { expr: expr.to_string(), reason };
        let s = expr.trim();
        if s.is_empty() {
            return Err(err("empty expression; expected e.g. \"p99 < 50ms\"".into()));
        }
        let (metric, rest) = parse_metric(s).map_err(err)?;
        let written = s[..s.len() - rest.len()].trim();
        let rest = rest.trim_start();
        let (op, rest) = parse_op(rest).map_err(|r| err(format!("{r} after '{written}'")))?;
        let rest = rest.trim();
        if rest.is_empty() {
            return Err(err(format!("missing the limit after '{}'", op.as_str())));
        }
        if metric.is_latency() {
            let limit = latency_limit(&metric, rest).map_err(err)?;
            return Ok(Threshold { metric, op, limit, source: s.to_string() });
        }
        let num_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-' || c == '+' || c == '_'))
            .unwrap_or(rest.len());
        let (num, unit) = rest.split_at(num_end);
        let value: f64 =
            num.replace('_', "").parse().map_err(|_| err(format!("'{rest}' does not start with a number")))?;
        if !value.is_finite() {
            return Err(err("the limit is not a finite number".into()));
        }
        let limit = match unit.trim() {
            "us" | "µs" | "ms" | "s" => {
                return Err(err(format!(
                    "{metric} is not a time; time units apply to latency statistics (p(N), avg, min, max, med, stddev)"
                )))
            }
            "" => value,
            "%" if metric != Metric::Rate => value / 100.0,
            "/s" if metric == Metric::Rate => value,
            other => return Err(err(format!("unknown unit '{other}' (expected us, ms, s, % or /s)"))),
        };
        Ok(Threshold { metric, op, limit, source: s.to_string() })
    }

    /// Judges this threshold against `obs`; fails when the result lacks the metric.
    pub fn judge(&self, obs: &Observed) -> Result<Judgement, String> {
        let actual = self.actual(obs)?;
        let passed = self.op.holds(actual, self.limit);
        let (a, l) = if self.metric.is_latency() {
            (format_ms(actual), format_ms(self.limit))
        } else {
            (format_num(actual), format_num(self.limit))
        };
        Ok(Judgement { passed, actual, detail: format!("{} = {a} (limit {} {l})", self.metric, self.op.as_str()) })
    }

    fn actual(&self, obs: &Observed) -> Result<f64, String> {
        let lat = |keys: &[&str]| -> Result<f64, String> {
            keys.iter().find_map(|k| obs.latency.get(*k).copied()).ok_or_else(|| {
                let have: Vec<&str> = obs.latency.keys().map(String::as_str).collect();
                format!(
                    "the result has no {} (latency keys present: {})",
                    keys[0],
                    if have.is_empty() { "none".to_string() } else { have.join(", ") }
                )
            })
        };
        let val = |keys: &[&str]| keys.iter().find_map(|k| obs.values.get(*k).copied());
        let missing = |what: &str| {
            let have: Vec<&str> = obs.values.keys().map(String::as_str).collect();
            format!(
                "the result has no {what} (numeric keys present: {})",
                if have.is_empty() { "none".to_string() } else { have.join(", ") }
            )
        };
        match &self.metric {
            Metric::Percentile(p) => {
                let key = percentile_key(*p);
                if *p == 50.0 {
                    lat(&[&key, "median", "med"])
                } else if *p == 100.0 {
                    lat(&[&key, "max"])
                } else {
                    lat(&[&key])
                }
            }
            Metric::Avg => lat(&["mean", "avg"]),
            Metric::Min => lat(&["min"]),
            Metric::Max => lat(&["max"]),
            Metric::Median => lat(&["median", "p50", "med"]),
            Metric::Stddev => lat(&["stddev"]),
            Metric::Rate => val(&["rate", "throughput", "rps"]).ok_or_else(|| missing("rate (or throughput, rps)")),
            Metric::Count => val(&["count", "sent"]).ok_or_else(|| missing("count (or sent)")),
            Metric::ErrorRate => {
                if let Some(r) = val(&["error_rate"]) {
                    return Ok(r);
                }
                if let (Some(sent), Some(ok)) = (val(&["sent"]), val(&["ok"])) {
                    return Ok(if sent > 0.0 { (sent - ok) / sent } else { 0.0 });
                }
                match (val(&["errors"]), val(&["count", "sent", "requests"])) {
                    (Some(e), Some(n)) => Ok(if n > 0.0 { e / n } else { 0.0 }),
                    _ => Err(missing("error_rate (nor sent and ok, nor errors and count)")),
                }
            }
            Metric::Key(k) => val(&[k.as_str()]).ok_or_else(|| missing(k)),
        }
    }
}

impl fmt::Display for Threshold {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

/// The limit of a latency statistic in milliseconds: a duration, unit required
/// ([`parse_duration`]; `1_000ms` may group digits).
fn latency_limit(metric: &Metric, limit: &str) -> Result<f64, String> {
    let text = limit.replace('_', "");
    match number_and_unit(&text) {
        Ok((_, "%" | "/s")) => Err(format!("{metric} is a time: give the limit in us, ms or s, e.g. 50ms")),
        Ok((_, unit)) => match parse_duration(&text) {
            Ok(d) => Ok(d.as_nanos() as f64 / 1e6),
            Err(e) if e.reason == "unknown unit" => Err(format!("unknown unit '{unit}' (expected us, ms or s)")),
            Err(e) => Err(e.to_string()),
        },
        Err("missing unit") => Err(format!("\"{text}\" needs a unit, e.g. \"{text}ms\" ({metric} is a time)")),
        Err(_) => Err(format!("'{limit}' does not start with a number")),
    }
}

/// `p(99.9)` reads key `p999`; `p(50)` reads `p50`.
pub fn percentile_key(p: f64) -> String {
    format!("p{}", format!("{p}").replace('.', ""))
}

fn parse_metric(s: &str) -> Result<(Metric, &str), String> {
    if let Some(rest) = s.strip_prefix("p(") {
        let close = rest.find(')').ok_or("missing ')' after p(N")?;
        let n: f64 =
            rest[..close].trim().parse().map_err(|_| format!("p({}) needs a number, e.g. p(99)", &rest[..close]))?;
        return Ok((Metric::Percentile(check_percentile(n)?), &rest[close + 1..]));
    }
    let end = s.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '.')).unwrap_or(s.len());
    let (word, rest) = s.split_at(end);
    if word.is_empty() {
        return Err("expected a metric first: p(N), pN, avg, min, max, med, stddev, rate, error_rate, count or a key of the result".into());
    }
    let metric = match word {
        "avg" | "mean" => Metric::Avg,
        "min" => Metric::Min,
        "max" => Metric::Max,
        "med" | "median" => Metric::Median,
        "stddev" | "std" => Metric::Stddev,
        "rate" | "throughput" | "rps" => Metric::Rate,
        "error_rate" => Metric::ErrorRate,
        "count" => Metric::Count,
        w if w.starts_with('p') && w.len() > 1 && w[1..].chars().all(|c| c.is_ascii_digit() || c == '.') => {
            let digits = &w[1..];
            let n: f64 = if digits.contains('.') {
                digits.parse().map_err(|_| format!("'{w}' is not a percentile; write p99, p999 or p(99.9)"))?
            } else if digits == "100" || digits.len() <= 2 {
                digits.parse().unwrap_or(f64::NAN)
            } else {
                // p999 -> 99.9, p9999 -> 99.99: two integer digits, the rest decimals.
                format!("{}.{}", &digits[..2], &digits[2..]).parse().unwrap_or(f64::NAN)
            };
            Metric::Percentile(check_percentile(n)?)
        }
        w if w.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_') && !w.contains('.') => {
            Metric::Key(w.to_string())
        }
        w => return Err(format!("'{w}' is not a metric name")),
    };
    Ok((metric, rest))
}

fn check_percentile(n: f64) -> Result<f64, String> {
    if n.is_finite() && n > 0.0 && n <= 100.0 {
        Ok(n)
    } else {
        Err(format!("p({n}) is not a percentile (0 < N <= 100)"))
    }
}

fn parse_op(s: &str) -> Result<(Op, &str), String> {
    for (tok, op) in [("<=", Op::Le), (">=", Op::Ge), ("==", Op::Eq), ("!=", Op::Ne), ("<", Op::Lt), (">", Op::Gt)] {
        if let Some(rest) = s.strip_prefix(tok) {
            if rest.starts_with(['<', '>', '=']) {
                return Err(format!("'{}' is not an operator", &s[..tok.len() + 1]));
            }
            return Ok((op, rest));
        }
    }
    if s.starts_with('=') {
        return Err("'=' is not a comparison (use ==)".into());
    }
    if s.is_empty() {
        return Err("missing a comparison (<, <=, >, >=, ==, !=)".into());
    }
    Err(format!(
        "expected a comparison (<, <=, >, >=, ==, !=) but found '{}'",
        s.split_whitespace().next().unwrap_or(s)
    ))
}

/// Milliseconds the way a person reads them.
pub fn format_ms(ms: f64) -> String {
    if ms.abs() < 1.0 {
        format!("{:.0}us", ms * 1000.0)
    } else if ms.abs() < 1000.0 {
        format!("{}ms", trim_float(ms, 2))
    } else {
        format!("{}s", trim_float(ms / 1000.0, 3))
    }
}

fn format_num(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{v:.0}")
    } else if v.abs() < 0.01 {
        format!("{v:.6}").trim_end_matches('0').to_string()
    } else {
        trim_float(v, 3)
    }
}

fn trim_float(v: f64, decimals: usize) -> String {
    let s = format!("{v:.decimals$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obs() -> Observed {
        let mut o = Observed::default();
        for (k, v) in
            [("p50", 1.0), ("p90", 4.0), ("p99", 12.0), ("p999", 40.0), ("max", 90.0), ("mean", 2.0), ("stddev", 3.0)]
        {
            o.latency.insert(k.into(), v);
        }
        for (k, v) in [("sent", 1000.0), ("ok", 999.0), ("rate", 1500.0), ("timeouts", 0.0)] {
            o.values.insert(k.into(), v);
        }
        o
    }

    fn judge(e: &str) -> bool {
        Threshold::parse(e).unwrap().judge(&obs()).unwrap().passed
    }

    #[test]
    fn parses_k6_style_expressions() {
        let t = Threshold::parse("p(99) < 50ms").unwrap();
        assert_eq!((t.metric.clone(), t.op, t.limit), (Metric::Percentile(99.0), Op::Lt, 50.0));
        assert_eq!(Threshold::parse("p999<=0.2s").unwrap().metric, Metric::Percentile(99.9));
        assert_eq!(Threshold::parse("p(99.9) <= 200ms").unwrap().limit, 200.0);
        assert_eq!(Threshold::parse("avg <= 500us").unwrap().limit, 0.5);
        assert_eq!(Threshold::parse("max < 1_000ms").unwrap().limit, 1000.0);
        assert_eq!(Threshold::parse("error_rate < 0.1%").unwrap().limit, 0.001);
        assert_eq!(Threshold::parse("rate > 1_000/s").unwrap().limit, 1000.0);
        assert_eq!(Threshold::parse("timeouts == 0").unwrap().metric, Metric::Key("timeouts".into()));
        assert_eq!(percentile_key(99.9), "p999");
        assert_eq!(percentile_key(50.0), "p50");
    }

    #[test]
    fn judges_against_observed_numbers() {
        assert!(judge("p99 < 50ms"));
        assert!(!judge("p(99.9) < 30ms"));
        assert!(judge("max < 0.1s"));
        assert!(judge("med <= 1ms"));
        assert!(judge("avg < 2500us"));
        assert!(judge("rate > 1000"));
        assert!(judge("error_rate < 0.2%"));
        assert!(!judge("error_rate < 0.1%"));
        assert!(judge("count >= 1000"));
        assert!(judge("timeouts == 0"));
        let j = Threshold::parse("p99 < 50ms").unwrap().judge(&obs()).unwrap();
        assert_eq!(j.detail, "p(99) = 12ms (limit < 50ms)");
    }

    #[test]
    fn rejects_malformed_expressions_with_reasons() {
        for (e, needle) in [
            ("", "empty"),
            ("p99 << 5ms", "not an operator"),
            ("p99 = 5ms", "use =="),
            ("p99 5ms", "expected a comparison"),
            ("p99 <", "missing the limit"),
            ("p99 < fast", "does not start with a number"),
            ("p99 < 5 parsecs", "unknown unit 'parsecs'"),
            ("p99 < 50", "\"50\" needs a unit, e.g. \"50ms\""),
            ("avg <= 0.5", "\"0.5\" needs a unit, e.g. \"0.5ms\""),
            ("p99 < -5ms", "does not start with a number"),
            ("p(101) < 5ms", "not a percentile"),
            ("p(x) < 5ms", "needs a number"),
            ("rate > 5ms", "not a time"),
            ("p99 < 5%", "is a time"),
            ("< 5", "expected a metric"),
        ] {
            let err = Threshold::parse(e).unwrap_err().to_string();
            assert!(err.contains(needle), "{e:?}: {err}");
        }
    }

    #[test]
    fn names_what_is_missing() {
        let err = Threshold::parse("p(97) < 5ms").unwrap().judge(&obs()).unwrap_err();
        assert!(err.contains("no p97") && err.contains("p99"), "{err}");
        let err = Threshold::parse("connects > 1").unwrap().judge(&Observed::default()).unwrap_err();
        assert!(err.contains("no connects"), "{err}");
    }
}
