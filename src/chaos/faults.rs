//! Fault specifications: what a fault does ([`FaultKind`]), which way it applies
//! ([`Stream`]) and to what fraction of connections (`toxicity`); validation against the
//! valid ranges; parsing from the command-line form `NAME:key=value,...` and from JSON
//! (flat, or Toxiproxy's `{"type", "stream", "toxicity", "attributes"}` shape).
//!
//! A duration needs a unit (`100ms`, `1.5s`), in the string form and in JSON alike, as
//! everywhere in mcpscript ([`parse_duration`]). The one exception is Toxiproxy's shape: a
//! bare number in its `attributes` is milliseconds, as in Toxiproxy's API.

use super::ChaosError;
use crate::util::duration::parse_duration;
use crate::util::{human, suggest};
use serde_json::Value;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// The longest duration any fault parameter accepts.
pub const MAX_DURATION: Duration = Duration::from_secs(3600);
/// Default retransmission timeout of the `loss` fault.
pub const DEFAULT_RTO: Duration = Duration::from_millis(200);

/// Identifies a fault installed on a proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub struct FaultId(pub u64);

impl fmt::Display for FaultId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// Which bytes a fault applies to: its stream, as Toxiproxy calls it (written `direction` or
/// `stream` in a spec).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Stream {
    /// Client to server (requests).
    Upstream,
    /// Server to client (replies); the default, as in Toxiproxy.
    Downstream,
    Both,
}

impl Stream {
    /// Whether the fault applies to traffic flowing `upstream` (true) or downstream.
    pub fn covers(self, upstream: bool) -> bool {
        match self {
            Stream::Both => true,
            Stream::Upstream => upstream,
            Stream::Downstream => !upstream,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Upstream => "upstream",
            Stream::Downstream => "downstream",
            Stream::Both => "both",
        }
    }
}

/// How `corrupt` damages a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CorruptMode {
    /// Overwrite bytes with ASCII control characters, which JSON allows nowhere: the message
    /// is always invalid JSON (and still valid UTF-8). The default.
    Garble,
    /// Flip one low bit of ASCII bytes: realistic bit rot that may leave valid JSON with
    /// different content, which no client can detect.
    Flip,
}

/// When `drop_connection` closes an affected connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DropAfter {
    /// After a uniformly chosen number of messages in `min..=max` (in the fault's direction).
    Messages { min: u64, max: u64 },
    /// After a uniformly chosen number of bytes in `min..=max`.
    Bytes { min: u64, max: u64 },
}

/// What a fault does. TCP-level kinds use Toxiproxy's names and parameters; message-level
/// kinds act on whole JSON-RPC messages and need the proxy to know the framing.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum FaultKind {
    /// Delays every chunk by `latency` plus a uniform sample of `-jitter..=jitter`.
    Latency { latency: Duration, jitter: Duration },
    /// Limits throughput to `rate` KB/s.
    Bandwidth { rate: u64 },
    /// Delays the close of the connection by `delay` once the sender has closed.
    SlowClose { delay: Duration },
    /// Stops forwarding (a black hole); closes the connection after `timeout` unless it is 0.
    Timeout { timeout: Duration },
    /// Resets the connection (RST) `timeout` after the fault takes hold.
    ResetPeer { timeout: Duration },
    /// Splits chunks into slices of `average_size` ± `size_variation` bytes, `delay` apart.
    Slicer { average_size: u64, size_variation: u64, delay: Duration },
    /// Closes the connection once `bytes` bytes went through.
    LimitData { bytes: u64 },
    /// Holds each chunk back with `probability` for a retransmission timeout `rto`; later
    /// chunks wait behind it, as in TCP.
    Loss { probability: f64, rto: Duration },
    /// Closes an affected connection (chosen with `probability`) mid-stream.
    DropConnection { probability: f64, after: DropAfter },
    /// Drops a message.
    Drop { probability: f64 },
    /// Damages a message's bytes (`bytes` of them), keeping its framing valid.
    Corrupt { probability: f64, bytes: u64, mode: CorruptMode },
    /// Cuts a message short, keeping its framing valid.
    Truncate { probability: f64 },
    /// Sends a message twice.
    Duplicate { probability: f64 },
    /// Holds a message (and, keeping order, what follows it) for `delay` ± `jitter`.
    Delay { probability: f64, delay: Duration, jitter: Duration },
}

/// Every fault name, in the order the help lists them.
pub const FAULT_NAMES: &[&str] = &[
    "latency",
    "bandwidth",
    "slow_close",
    "timeout",
    "reset_peer",
    "slicer",
    "limit_data",
    "loss",
    "drop_connection",
    "drop",
    "corrupt",
    "truncate",
    "duplicate",
    "delay",
];

impl FaultKind {
    pub fn name(&self) -> &'static str {
        match self {
            FaultKind::Latency { .. } => "latency",
            FaultKind::Bandwidth { .. } => "bandwidth",
            FaultKind::SlowClose { .. } => "slow_close",
            FaultKind::Timeout { .. } => "timeout",
            FaultKind::ResetPeer { .. } => "reset_peer",
            FaultKind::Slicer { .. } => "slicer",
            FaultKind::LimitData { .. } => "limit_data",
            FaultKind::Loss { .. } => "loss",
            FaultKind::DropConnection { .. } => "drop_connection",
            FaultKind::Drop { .. } => "drop",
            FaultKind::Corrupt { .. } => "corrupt",
            FaultKind::Truncate { .. } => "truncate",
            FaultKind::Duplicate { .. } => "duplicate",
            FaultKind::Delay { .. } => "delay",
        }
    }

    /// Whether this fault acts on JSON-RPC messages (and so needs message framing).
    pub fn is_message_level(&self) -> bool {
        matches!(
            self,
            FaultKind::Drop { .. }
                | FaultKind::Corrupt { .. }
                | FaultKind::Truncate { .. }
                | FaultKind::Duplicate { .. }
                | FaultKind::Delay { .. }
                | FaultKind::DropConnection { after: DropAfter::Messages { .. }, .. }
        )
    }
}

/// One fault: what it does, which way, and the fraction of connections it affects.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Fault {
    #[serde(flatten)]
    pub kind: FaultKind,
    pub direction: Stream,
    /// Fraction of connections affected (0..=1), decided per connection from the seed.
    pub toxicity: f64,
}

impl Fault {
    /// A fault on every connection, downstream.
    pub fn new(kind: FaultKind) -> Fault {
        Fault { kind, direction: Stream::Downstream, toxicity: 1.0 }
    }

    pub fn latency(latency: Duration, jitter: Duration) -> Fault {
        Fault::new(FaultKind::Latency { latency, jitter })
    }
    pub fn bandwidth(rate_kb_per_s: u64) -> Fault {
        Fault::new(FaultKind::Bandwidth { rate: rate_kb_per_s })
    }
    pub fn slow_close(delay: Duration) -> Fault {
        Fault::new(FaultKind::SlowClose { delay })
    }
    pub fn timeout(timeout: Duration) -> Fault {
        Fault::new(FaultKind::Timeout { timeout })
    }
    pub fn reset_peer(timeout: Duration) -> Fault {
        Fault::new(FaultKind::ResetPeer { timeout })
    }
    pub fn slicer(average_size: u64, size_variation: u64, delay: Duration) -> Fault {
        Fault::new(FaultKind::Slicer { average_size, size_variation, delay })
    }
    pub fn limit_data(bytes: u64) -> Fault {
        Fault::new(FaultKind::LimitData { bytes })
    }
    pub fn loss(probability: f64) -> Fault {
        Fault::new(FaultKind::Loss { probability, rto: DEFAULT_RTO })
    }
    /// Closes connections (each with `probability`) after `min..=max` messages.
    pub fn drop_connection(probability: f64, min: u64, max: u64) -> Fault {
        Fault::new(FaultKind::DropConnection { probability, after: DropAfter::Messages { min, max } })
    }
    pub fn drop(probability: f64) -> Fault {
        Fault::new(FaultKind::Drop { probability })
    }
    pub fn corrupt(probability: f64) -> Fault {
        Fault::new(FaultKind::Corrupt { probability, bytes: 1, mode: CorruptMode::Garble })
    }
    pub fn truncate(probability: f64) -> Fault {
        Fault::new(FaultKind::Truncate { probability })
    }
    pub fn duplicate(probability: f64) -> Fault {
        Fault::new(FaultKind::Duplicate { probability })
    }
    pub fn delay(probability: f64, delay: Duration) -> Fault {
        Fault::new(FaultKind::Delay { probability, delay, jitter: Duration::ZERO })
    }

    pub fn direction(mut self, direction: Stream) -> Fault {
        self.direction = direction;
        self
    }
    pub fn upstream(self) -> Fault {
        self.direction(Stream::Upstream)
    }
    pub fn downstream(self) -> Fault {
        self.direction(Stream::Downstream)
    }
    pub fn both(self) -> Fault {
        self.direction(Stream::Both)
    }
    pub fn toxicity(mut self, toxicity: f64) -> Fault {
        self.toxicity = toxicity;
        self
    }

    pub fn name(&self) -> &'static str {
        self.kind.name()
    }

    /// Checks every value against its valid range; the error names the range.
    pub fn validate(&self) -> Result<(), ChaosError> {
        let name = self.name();
        fraction(name, "toxicity", self.toxicity)?;
        match &self.kind {
            FaultKind::Latency { latency, jitter } => {
                duration(name, "latency", *latency)?;
                duration(name, "jitter", *jitter)
            }
            FaultKind::Bandwidth { rate } => int_range(name, "rate (KB/s)", *rate, 1, 10_000_000),
            FaultKind::SlowClose { delay } => duration(name, "delay", *delay),
            FaultKind::Timeout { timeout } | FaultKind::ResetPeer { timeout } => duration(name, "timeout", *timeout),
            FaultKind::Slicer { average_size, size_variation, delay } => {
                int_range(name, "average_size", *average_size, 1, 1 << 20)?;
                if *size_variation >= *average_size {
                    return Err(invalid(format!(
                        "{name}: size_variation must be from 0 to average_size - 1 ({}), got {size_variation}",
                        average_size - 1
                    )));
                }
                duration(name, "delay", *delay)
            }
            FaultKind::LimitData { bytes } => int_range(name, "bytes", *bytes, 0, i64::MAX as u64),
            FaultKind::Loss { probability, rto } => {
                fraction(name, "probability", *probability)?;
                duration(name, "rto", *rto)
            }
            FaultKind::DropConnection { probability, after } => {
                fraction(name, "probability", *probability)?;
                let (what, min, max) = match after {
                    DropAfter::Messages { min, max } => ("messages", *min, *max),
                    DropAfter::Bytes { min, max } => ("bytes", *min, *max),
                };
                int_range(name, &format!("min_{what}"), min, 1, i64::MAX as u64)?;
                if max < min {
                    return Err(invalid(format!("{name}: max_{what} must be at least min_{what} ({min}), got {max}")));
                }
                Ok(())
            }
            FaultKind::Drop { probability }
            | FaultKind::Truncate { probability }
            | FaultKind::Duplicate { probability } => fraction(name, "probability", *probability).map(|_| ()),
            FaultKind::Corrupt { probability, bytes, .. } => {
                fraction(name, "probability", *probability)?;
                int_range(name, "bytes", *bytes, 1, 1024)
            }
            FaultKind::Delay { probability, delay, jitter } => {
                fraction(name, "probability", *probability)?;
                duration(name, "delay", *delay)?;
                duration(name, "jitter", *jitter)
            }
        }
    }

    /// Parses the command-line form (`latency:latency=100ms,jitter=5ms,direction=both`) or,
    /// when the text starts with `{`, a JSON object.
    pub fn parse(spec: &str) -> Result<Fault, ChaosError> {
        let spec = spec.trim();
        if spec.starts_with('{') {
            let v: Value =
                serde_json::from_str(spec).map_err(|e| invalid(format!("fault '{spec}' is not valid JSON: {e}")))?;
            return Fault::from_json(&v);
        }
        let (name, rest) = match spec.split_once(':') {
            Some((n, r)) => (n.trim(), r.trim()),
            None => (spec, ""),
        };
        let mut params = Vec::new();
        for part in rest.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (k, v) = part.split_once('=').ok_or_else(|| {
                invalid(format!(
                    "fault '{spec}': expected key=value, got '{part}' (e.g. latency:latency=100ms,jitter=5ms)"
                ))
            })?;
            params.push((k.trim().to_string(), Param::Text(v.trim().to_string())));
        }
        Fault::build(name, params)
    }

    /// Parses a JSON object: `{"type": "latency", "latency": "100ms", "direction": "both"}`
    /// (durations with a unit) or Toxiproxy's `{"type": "latency", "stream": "downstream",
    /// "toxicity": 1.0, "attributes": {"latency": 100, "jitter": 5}}`, whose bare numbers are
    /// milliseconds as in Toxiproxy's API (the one place a duration needs no unit).
    pub fn from_json(v: &Value) -> Result<Fault, ChaosError> {
        let obj = v.as_object().ok_or_else(|| invalid(format!("a fault must be a JSON object, got {v}")))?;
        let name = obj
            .get("type")
            .and_then(Value::as_str)
            .ok_or_else(|| invalid(format!("fault {v} needs \"type\": one of {}", FAULT_NAMES.join(", "))))?;
        let mut params = Vec::new();
        for (k, val) in obj {
            match k.as_str() {
                "type" | "name" => {}
                "attributes" => {
                    let attrs = val
                        .as_object()
                        .ok_or_else(|| invalid(format!("{name}: \"attributes\" must be an object, got {val}")))?;
                    params.extend(attrs.iter().map(|(k, v)| (k.clone(), Param::Attribute(v.clone()))));
                }
                _ => params.push((k.clone(), Param::Json(val.clone()))),
            }
        }
        Fault::build(name, params)
    }

    fn build(name: &str, params: Vec<(String, Param)>) -> Result<Fault, ChaosError> {
        let mut p = Params { fault: name, params, asked: Vec::new() };
        let toxicity = p.fraction("toxicity", Some(1.0))?;
        let direction = match p.take_any(&["direction", "stream"]) {
            None => Stream::Downstream,
            Some(v) => parse_stream(name, &v)?,
        };
        let kind = match name {
            "latency" => FaultKind::Latency {
                latency: p.duration("latency", None)?,
                jitter: p.duration("jitter", Some(Duration::ZERO))?,
            },
            "bandwidth" => FaultKind::Bandwidth { rate: p.int("rate", None)? },
            "slow_close" => FaultKind::SlowClose { delay: p.duration("delay", None)? },
            "timeout" => FaultKind::Timeout { timeout: p.duration("timeout", Some(Duration::ZERO))? },
            "reset_peer" => FaultKind::ResetPeer { timeout: p.duration("timeout", Some(Duration::ZERO))? },
            "slicer" => FaultKind::Slicer {
                average_size: p.int("average_size", None)?,
                size_variation: p.int("size_variation", Some(0))?,
                delay: p.duration("delay", Some(Duration::ZERO))?,
            },
            "limit_data" => FaultKind::LimitData { bytes: p.int("bytes", None)? },
            "loss" => FaultKind::Loss {
                probability: p.fraction("probability", None)?,
                rto: p.duration("rto", Some(DEFAULT_RTO))?,
            },
            "drop_connection" => {
                let probability = p.fraction("probability", Some(1.0))?;
                let by_bytes = p.has("min_bytes") || p.has("max_bytes");
                let after = if by_bytes {
                    let min = p.int("min_bytes", Some(1))?;
                    DropAfter::Bytes { min, max: p.int("max_bytes", Some(min))? }
                } else {
                    let min = p.int("min_messages", Some(1))?;
                    DropAfter::Messages { min, max: p.int("max_messages", Some(min.max(20)))? }
                };
                // Both spellings are valid; list them in the error for unknown keys.
                p.asked.extend(["min_messages", "max_messages", "min_bytes", "max_bytes"]);
                FaultKind::DropConnection { probability, after }
            }
            "drop" => FaultKind::Drop { probability: p.fraction("probability", Some(1.0))? },
            "corrupt" => FaultKind::Corrupt {
                probability: p.fraction("probability", Some(1.0))?,
                bytes: p.int("bytes", Some(1))?,
                mode: match p.take_any(&["mode"]) {
                    None => CorruptMode::Garble,
                    Some(v) => match v.as_text().as_deref() {
                        Some("garble") => CorruptMode::Garble,
                        Some("flip") => CorruptMode::Flip,
                        _ => return Err(invalid(format!("corrupt: mode must be garble or flip, got {v}"))),
                    },
                },
            },
            "truncate" => FaultKind::Truncate { probability: p.fraction("probability", Some(1.0))? },
            "duplicate" => FaultKind::Duplicate { probability: p.fraction("probability", Some(1.0))? },
            "delay" => FaultKind::Delay {
                probability: p.fraction("probability", Some(1.0))?,
                delay: p.duration("delay", None)?,
                jitter: p.duration("jitter", Some(Duration::ZERO))?,
            },
            other => return Err(unknown_fault(other)),
        };
        p.finish()?;
        let fault = Fault { kind, direction, toxicity };
        fault.validate()?;
        Ok(fault)
    }

    /// The command-line form, which [`Fault::parse`] reads back.
    pub fn to_spec(&self) -> String {
        let d = |d: &Duration| format_duration_exact(*d);
        let params: Vec<String> = match &self.kind {
            FaultKind::Latency { latency, jitter } => {
                vec![format!("latency={}", d(latency)), format!("jitter={}", d(jitter))]
            }
            FaultKind::Bandwidth { rate } => vec![format!("rate={rate}")],
            FaultKind::SlowClose { delay } => vec![format!("delay={}", d(delay))],
            FaultKind::Timeout { timeout } | FaultKind::ResetPeer { timeout } => {
                vec![format!("timeout={}", d(timeout))]
            }
            FaultKind::Slicer { average_size, size_variation, delay } => vec![
                format!("average_size={average_size}"),
                format!("size_variation={size_variation}"),
                format!("delay={}", d(delay)),
            ],
            FaultKind::LimitData { bytes } => vec![format!("bytes={bytes}")],
            FaultKind::Loss { probability, rto } => {
                vec![format!("probability={probability}"), format!("rto={}", d(rto))]
            }
            FaultKind::DropConnection { probability, after } => {
                let (what, min, max) = match after {
                    DropAfter::Messages { min, max } => ("messages", min, max),
                    DropAfter::Bytes { min, max } => ("bytes", min, max),
                };
                vec![format!("probability={probability}"), format!("min_{what}={min}"), format!("max_{what}={max}")]
            }
            FaultKind::Drop { probability }
            | FaultKind::Truncate { probability }
            | FaultKind::Duplicate { probability } => {
                vec![format!("probability={probability}")]
            }
            FaultKind::Corrupt { probability, bytes, mode } => vec![
                format!("probability={probability}"),
                format!("bytes={bytes}"),
                format!("mode={}", if *mode == CorruptMode::Flip { "flip" } else { "garble" }),
            ],
            FaultKind::Delay { probability, delay, jitter } => vec![
                format!("probability={probability}"),
                format!("delay={}", d(delay)),
                format!("jitter={}", d(jitter)),
            ],
        };
        format!("{}:{},direction={},toxicity={}", self.name(), params.join(","), self.direction.as_str(), self.toxicity)
    }
}

impl FromStr for Fault {
    type Err = ChaosError;

    fn from_str(s: &str) -> Result<Fault, ChaosError> {
        Fault::parse(s)
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_spec())
    }
}

/// A duration printed so that parsing it back gives the same value (microsecond precision).
fn format_duration_exact(d: Duration) -> String {
    let us = d.as_micros();
    if !us.is_multiple_of(1000) {
        format!("{us}us")
    } else {
        format!("{}ms", us / 1000)
    }
}

fn invalid(msg: String) -> ChaosError {
    ChaosError::InvalidFault(msg)
}

fn unknown_fault(name: &str) -> ChaosError {
    let hint = did_you_mean(name, FAULT_NAMES);
    invalid(format!("unknown fault '{name}'{hint}; valid faults: {}", FAULT_NAMES.join(", ")))
}

/// ` (did you mean 'latency'?)` for `lateny`, or nothing.
fn did_you_mean(name: &str, known: &[&str]) -> String {
    suggest(name, known.iter().copied()).map(|s| format!(" (did you mean '{s}'?)")).unwrap_or_default()
}

fn fraction(fault: &str, key: &str, v: f64) -> Result<f64, ChaosError> {
    if (0.0..=1.0).contains(&v) {
        Ok(v)
    } else {
        Err(invalid(format!("{fault}: {key} must be between 0 and 1 (a fraction), got {v}")))
    }
}

fn duration(fault: &str, key: &str, d: Duration) -> Result<(), ChaosError> {
    if d <= MAX_DURATION {
        Ok(())
    } else {
        Err(invalid(format!("{fault}: {key} must be a duration from 0 to 1h, got {}", human::duration(d))))
    }
}

fn int_range(fault: &str, key: &str, v: u64, min: u64, max: u64) -> Result<(), ChaosError> {
    if (min..=max).contains(&v) {
        Ok(())
    } else {
        Err(invalid(format!("{fault}: {key} must be an integer from {min} to {max}, got {v}")))
    }
}

fn parse_stream(fault: &str, v: &Param) -> Result<Stream, ChaosError> {
    match v.as_text().as_deref() {
        Some("upstream" | "up") => Ok(Stream::Upstream),
        Some("downstream" | "down") => Ok(Stream::Downstream),
        Some("both") => Ok(Stream::Both),
        _ => Err(invalid(format!("{fault}: direction must be upstream, downstream or both, got {v}"))),
    }
}

/// A parameter value as given: text from the command line, or a JSON value.
#[derive(Debug, Clone)]
enum Param {
    Text(String),
    Json(Value),
    /// A value of Toxiproxy's `attributes`, where a duration's bare number is milliseconds.
    Attribute(Value),
}

impl Param {
    fn json(&self) -> Option<&Value> {
        match self {
            Param::Text(_) => None,
            Param::Json(v) | Param::Attribute(v) => Some(v),
        }
    }

    /// The value as text: a string as is, a JSON number as written.
    fn as_text(&self) -> Option<String> {
        match (self, self.json()) {
            (Param::Text(s), _) => Some(s.clone()),
            (_, Some(Value::String(s))) => Some(s.clone()),
            (_, Some(Value::Number(n))) => Some(n.to_string()),
            _ => None,
        }
    }
}

impl fmt::Display for Param {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self, self.json()) {
            (Param::Text(s), _) => write!(f, "'{s}'"),
            (_, v) => write!(f, "{}", v.unwrap_or(&Value::Null)),
        }
    }
}

/// The parameters of one fault being parsed; remembers which keys were read, so unknown
/// ones can be named along with the valid ones.
struct Params<'a> {
    fault: &'a str,
    params: Vec<(String, Param)>,
    asked: Vec<&'static str>,
}

impl Params<'_> {
    fn has(&self, key: &str) -> bool {
        self.params.iter().any(|(k, _)| k == key)
    }

    fn take_any(&mut self, keys: &[&'static str]) -> Option<Param> {
        self.asked.push(keys[0]);
        let i = self.params.iter().position(|(k, _)| keys.contains(&k.as_str()))?;
        Some(self.params.remove(i).1)
    }

    fn required(&self, key: &str) -> ChaosError {
        invalid(format!("{}: missing parameter '{key}' (e.g. {})", self.fault, example(self.fault)))
    }

    fn fraction(&mut self, key: &'static str, default: Option<f64>) -> Result<f64, ChaosError> {
        let fault = self.fault;
        let v = match self.take_any(&[key]) {
            None => return default.ok_or_else(|| self.required(key)),
            Some(v) => v
                .as_text()
                .and_then(|s| s.parse::<f64>().ok())
                .ok_or_else(|| invalid(format!("{fault}: {key} must be a number between 0 and 1, got {v}")))?,
        };
        fraction(fault, key, v)
    }

    fn int(&mut self, key: &'static str, default: Option<u64>) -> Result<u64, ChaosError> {
        let fault = self.fault;
        let v = match self.take_any(&[key]) {
            None => return default.ok_or_else(|| self.required(key)),
            Some(v) => v,
        };
        let parsed = v.as_text().and_then(|s| s.parse::<u64>().ok());
        parsed.ok_or_else(|| invalid(format!("{fault}: {key} must be a whole number of at least 0, got {v}")))
    }

    fn duration(&mut self, key: &'static str, default: Option<Duration>) -> Result<Duration, ChaosError> {
        let fault = self.fault;
        let v = match self.take_any(&[key]) {
            None => return default.ok_or_else(|| self.required(key)),
            Some(v) => v,
        };
        let range = "a duration from 0 to 1h, e.g. 100ms";
        let d = match &v {
            // Toxiproxy's attributes: a bare number is milliseconds, as in its API.
            Param::Attribute(Value::Number(n)) => {
                let ms = n.as_f64().unwrap_or(f64::NAN);
                if !(0.0..=MAX_DURATION.as_millis() as f64).contains(&ms) {
                    return Err(invalid(format!(
                        "{fault}: {key} must be {range} (Toxiproxy's attributes: bare numbers are milliseconds), got {v}"
                    )));
                }
                Duration::from_secs_f64(ms / 1000.0)
            }
            other => {
                let s = other.as_text().unwrap_or_default();
                if s.trim_start().starts_with('-') {
                    return Err(invalid(format!(
                        "{fault}: {key} must be {range}; negative values are not allowed, got {v}"
                    )));
                }
                let toxiproxy = if matches!(other, Param::Json(Value::Number(_))) {
                    " (bare numbers are milliseconds only in Toxiproxy's \"attributes\")"
                } else {
                    ""
                };
                parse_duration(&s).map_err(|e| invalid(format!("{fault}: {key} must be {range}: {e}{toxiproxy}")))?
            }
        };
        duration(fault, key, d)?;
        Ok(d)
    }

    fn finish(self) -> Result<(), ChaosError> {
        if let Some((k, _)) = self.params.first() {
            let mut valid: Vec<&str> = self.asked.clone();
            valid.sort_unstable();
            valid.dedup();
            let hint = did_you_mean(k, &valid);
            return Err(invalid(format!(
                "{}: unknown parameter '{k}'{hint}; valid parameters: {}",
                self.fault,
                valid.join(", ")
            )));
        }
        Ok(())
    }
}

/// An example spec per fault, for error messages and help.
pub fn example(fault: &str) -> &'static str {
    match fault {
        "latency" => "latency:latency=100ms,jitter=5ms",
        "bandwidth" => "bandwidth:rate=100",
        "slow_close" => "slow_close:delay=1s",
        "timeout" => "timeout:timeout=5s",
        "reset_peer" => "reset_peer:timeout=1s",
        "slicer" => "slicer:average_size=64,size_variation=32,delay=1ms",
        "limit_data" => "limit_data:bytes=10000",
        "loss" => "loss:probability=0.01,rto=200ms",
        "drop_connection" => "drop_connection:probability=0.1,min_messages=2,max_messages=50",
        "drop" => "drop:probability=0.05",
        "corrupt" => "corrupt:probability=0.02",
        "truncate" => "truncate:probability=0.02",
        "duplicate" => "duplicate:probability=0.01",
        "delay" => "delay:probability=0.1,delay=500ms",
        _ => "latency:latency=100ms",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(spec: &str) -> String {
        Fault::parse(spec).unwrap_err().to_string()
    }

    #[test]
    fn parses_the_command_line_form() {
        let f = Fault::parse("latency:latency=100ms,jitter=5ms").unwrap();
        assert_eq!(f, Fault::latency(Duration::from_millis(100), Duration::from_millis(5)));
        let f = Fault::parse("drop:probability=0.05,direction=upstream,toxicity=0.5").unwrap();
        assert_eq!(f, Fault::drop(0.05).upstream().toxicity(0.5));
        assert_eq!(Fault::parse("duplicate").unwrap(), Fault::duplicate(1.0));
        let f = Fault::parse("drop_connection:probability=0.1,min_bytes=10,max_bytes=20").unwrap();
        assert!(matches!(f.kind, FaultKind::DropConnection { after: DropAfter::Bytes { min: 10, max: 20 }, .. }));
    }

    #[test]
    fn parses_json_and_toxiproxy_shapes() {
        let f = Fault::parse(r#"{"type":"delay","delay":"250ms","probability":0.5,"direction":"both"}"#).unwrap();
        assert_eq!(f, Fault::delay(0.5, Duration::from_millis(250)).both());
        let v = serde_json::json!({"name":"lat","type":"latency","stream":"upstream","toxicity":0.25,
                                   "attributes":{"latency":100,"jitter":5}});
        let f = Fault::from_json(&v).unwrap();
        assert_eq!(f, Fault::latency(Duration::from_millis(100), Duration::from_millis(5)).upstream().toxicity(0.25));
        // Outside Toxiproxy's attributes a duration needs its unit, as everywhere.
        let e = err(r#"{"type":"latency","latency":100}"#);
        assert!(e.contains(r#""100" needs a unit, e.g. "100ms""#) && e.contains("attributes"), "{e}");
        let f = Fault::parse(r#"{"type":"slicer","average_size":64,"attributes":{"delay":1.5}}"#).unwrap();
        assert_eq!(f, Fault::slicer(64, 0, Duration::from_micros(1500)));
    }

    #[test]
    fn round_trips_through_the_spec_form() {
        for f in [
            Fault::latency(Duration::from_micros(1500), Duration::ZERO).both(),
            Fault::slicer(64, 8, Duration::from_millis(1)),
            Fault::corrupt(0.02).upstream().toxicity(0.3),
            Fault::drop_connection(0.1, 2, 9),
            Fault::loss(0.01),
            Fault::limit_data(0),
        ] {
            assert_eq!(Fault::parse(&f.to_spec()).unwrap(), f, "{f}");
        }
    }

    #[test]
    fn rejects_bad_input_naming_the_valid_range() {
        assert!(err("corrupt:probability=1.5").contains("between 0 and 1"));
        let e = err("latency:latency=-5ms");
        assert!(e.contains("from 0 to 1h") && e.contains("negative"), "{e}");
        let e = err("lateny:latency=1ms");
        assert!(e.contains("unknown fault 'lateny'") && e.contains("did you mean 'latency'"), "{e}");
        let e = err("latency:latency=1ms,jiter=1ms");
        assert!(e.contains("unknown parameter 'jiter'") && e.contains("jitter"), "{e}");
        assert!(err("latency").contains("missing parameter 'latency'"));
        let e = err("latency:latency=100");
        assert!(e.contains(r#""100" needs a unit, e.g. "100ms""#), "{e}");
        assert!(err("drop:toxicity=2").contains("toxicity must be between 0 and 1"));
        assert!(err("slicer:average_size=10,size_variation=10").contains("0 to average_size - 1"));
        assert!(err("bandwidth:rate=0").contains("from 1 to"));
        assert!(err("drop:direction=sideways").contains("upstream, downstream or both"));
        assert!(err(r#"{"type":"latency","latency":-3}"#).contains("from 0 to 1h"));
        assert!(err("drop_connection:min_messages=5,max_messages=2").contains("at least min_messages"));
        assert!(Fault::drop(1.5).validate().unwrap_err().to_string().contains("between 0 and 1"));
    }
}
