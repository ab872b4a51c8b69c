//! The options of the load namespace's phase functions: which options each phase takes
//! and one validator per option, each reading a value and naming what is wrong with it in
//! the script's words. `load::NAME` runs them when it is called and `mcpscript check` runs
//! the same ones on the literal values of an options map (through [`check_options`]), so a
//! script that checks will not fail on them at run time.

use crate::client::server_requests::CannedAnswers;
use crate::load::plan::{RequestTemplate, Stage};
use crate::load::resilience::{BreakerPlan, Policy, Resilience};
use crate::script::value;
use crate::util::duration::parse_duration;
use rhai::{Array, Dynamic, FnPtr, Map};
use serde_json::Value;
use std::time::Duration;

pub(super) const COMMON: &[&str] = &[
    "name",
    "target",
    "sessions",
    "mix",
    "request",
    "request_timeout",
    "connect_timeout",
    "connect_rate",
    "seed",
    "processes",
    "sample",
    "metrics",
    "reconnect",
    "backoff",
    "resend",
    "resend_on_timeout",
    "max_resends",
    "breaker",
    "recovery_fraction",
    "schedule",
    "expect_errors",
    "on_sampling",
    "on_elicitation",
    "roots",
    "protocol_version",
];

/// The phase functions (`load::NAME`) and the options each takes besides [`COMMON`].
pub const PHASES: &[(&str, &[&str])] = &[
    ("closed", &["duration", "iterations", "think"]),
    ("open", &["rate", "duration", "max_inflight"]),
    ("ramp", &["stages", "start_rate", "max_inflight"]),
    ("connect", &["rate", "hold", "ping_sample"]),
];

/// The options of `load::PHASE` besides [`COMMON`]; `None` when `phase` is no phase function.
pub fn phase_options(phase: &str) -> Option<&'static [&'static str]> {
    PHASES.iter().find(|(p, _)| *p == phase).map(|(_, own)| *own)
}

// The validators of options. Each reads one value and names what is wrong with it in the
// words of the script; `load::NAME` runs them when it is called (through [`check_options`],
// then to read the values) and `mcpscript check` runs the same ones on the literal values of
// an options map, so a script that checks will not fail on them at run time.

/// A whole number >= 0.
pub(super) fn whole(k: &str, v: &Dynamic) -> Result<u64, String> {
    match value::as_number(v) {
        Some(n) if n >= 0.0 && n.fract() == 0.0 && n.is_finite() => Ok(n as u64),
        _ => Err(format!("{k} must be a whole number >= 0, not {v}")),
    }
}

/// A whole number >= 1 (`sessions`, `iterations`, `max_inflight`).
pub(super) fn at_least_one(k: &str, v: &Dynamic) -> Result<u64, String> {
    match whole(k, v)? {
        0 => Err(format!("{k} must be at least 1, not 0")),
        n => Ok(n),
    }
}

/// A finite number >= 0.
pub(super) fn number(k: &str, v: &Dynamic) -> Result<f64, String> {
    match value::as_number(v) {
        Some(n) if n.is_finite() && n >= 0.0 => Ok(n),
        _ => Err(format!("{k} must be a number >= 0, not {v}")),
    }
}

/// A finite number above 0 (the `rate` of `load::open`).
pub(super) fn above_zero(k: &str, v: &Dynamic) -> Result<f64, String> {
    match value::as_number(v) {
        Some(n) if n.is_finite() && n > 0.0 => Ok(n),
        _ => Err(format!("{k} must be a number above 0, not {v}")),
    }
}

/// A duration string such as `"10s"`.
pub(super) fn duration(k: &str, v: &Dynamic) -> Result<Duration, String> {
    if !v.is_string() {
        return Err(format!("{k} must be a duration string such as \"10s\", not {v}"));
    }
    parse_duration(&v.to_string()).map_err(|e| format!("{k}: {e}"))
}

/// A duration above zero (`request_timeout`, a closed or open `duration`).
pub(super) fn duration_above_zero(k: &str, v: &Dynamic) -> Result<Duration, String> {
    match duration(k, v)? {
        d if d.is_zero() => Err(format!("{k} must be above zero, not {v}")),
        d => Ok(d),
    }
}

pub(super) fn text(k: &str, v: &Dynamic) -> Result<String, String> {
    if v.is_string() {
        Ok(v.to_string())
    } else {
        Err(format!("{k} must be a string, not {v}"))
    }
}

/// A map whose keys are among `keys`.
pub(super) fn map_of(k: &str, v: &Dynamic, keys: &[&str]) -> Result<Map, String> {
    let m = v
        .read_lock::<Map>()
        .map(|m| m.clone())
        .ok_or_else(|| format!("{k} must be a map with keys {}, not {v}", keys.join(", ")))?;
    for key in m.keys() {
        if !keys.contains(&key.as_str()) {
            let hint = crate::util::suggest(key, keys.iter().copied())
                .map(|s| format!(" (did you mean {s}?)"))
                .unwrap_or_default();
            return Err(format!("{k}: unknown key '{key}'{hint}; keys are {}", keys.join(", ")));
        }
    }
    Ok(m)
}

/// `m[key]` read by `read`, `None` when absent or `()`.
pub(super) fn field<T>(m: &Map, key: &str, read: fn(&str, &Dynamic) -> Result<T, String>) -> Result<Option<T>, String> {
    m.get(key).filter(|v| !v.is_unit()).map(|v| read(key, v)).transpose()
}

pub(super) fn array(k: &str, v: &Dynamic, what: &str) -> Result<Array, String> {
    v.read_lock::<Array>().map(|a| a.clone()).ok_or_else(|| format!("{k} must be {what}, not {v}"))
}

/// One request of a mix: `#{method, params, weight, name}` or `#{tool, arguments, weight}`.
pub(super) fn request_template(what: &str, d: &Dynamic) -> Result<RequestTemplate, String> {
    let m = map_of(what, d, &["method", "params", "weight", "name", "tool", "arguments"])?;
    let text = |k: &str| m.get(k).filter(|v| !v.is_unit()).map(|v| v.to_string());
    let json = |k: &str| -> Result<Option<Value>, String> {
        match m.get(k).filter(|v| !v.is_unit()) {
            None => Ok(None),
            Some(v) => value::to_json(v).map(Some).map_err(|e| format!("{what}: {k}: {e}")),
        }
    };
    let (method, params) = match (text("tool"), text("method")) {
        (Some(tool), None) => (
            "tools/call".to_string(),
            Some(serde_json::json!({"name": tool, "arguments": json("arguments")?.unwrap_or(serde_json::json!({}))})),
        ),
        (None, Some(method)) => (method, json("params")?),
        (Some(_), Some(_)) => return Err(format!("{what}: give either tool or method, not both")),
        (None, None) => return Err(format!("{what} needs a method (or a tool)")),
    };
    let weight = match m.get("weight").filter(|v| !v.is_unit()) {
        None => 1,
        Some(w) => match value::as_number(w) {
            Some(n) if n >= 0.0 && n.fract() == 0.0 && n <= u32::MAX as f64 => n as u32,
            _ => return Err(format!("{what}: weight must be a whole number >= 0, not {w}")),
        },
    };
    let mut t = RequestTemplate::new(&method, params, weight);
    if let Some(n) = text("name") {
        t.name = n;
    }
    Ok(t)
}

pub(super) fn request(k: &str, v: &Dynamic) -> Result<RequestTemplate, String> {
    request_template(k, v)
}

/// `mix`: a non-empty array of requests, not all of weight 0.
pub(super) fn mix(k: &str, v: &Dynamic) -> Result<Vec<RequestTemplate>, String> {
    let items = array(k, v, "an array of request maps such as [#{method: \"ping\"}]")?;
    if items.is_empty() {
        return Err(format!("{k} is empty: give at least one request, e.g. [#{{method: \"ping\"}}]"));
    }
    let mix = items
        .iter()
        .enumerate()
        .map(|(i, d)| request_template(&format!("{k} item {}", i + 1), d))
        .collect::<Result<Vec<_>, _>>()?;
    if mix.iter().all(|t| t.weight == 0) {
        return Err(format!("every request in the {k} has weight 0"));
    }
    Ok(mix)
}

/// `sample`: true, false or a sampling interval.
pub(super) fn sample(k: &str, v: &Dynamic) -> Result<Option<Duration>, String> {
    match v.as_bool() {
        Ok(false) => Ok(None),
        Ok(true) => Ok(Some(Duration::from_secs(1))),
        Err(_) => duration_above_zero(k, v).map(Some),
    }
}

/// `metrics`: a metric name prefix.
pub(super) fn metrics_prefix(k: &str, v: &Dynamic) -> Result<String, String> {
    let p = text(k, v)?;
    if p.is_empty() || !p.chars().all(|c| c.is_ascii_alphanumeric() || "_.:/-".contains(c)) {
        return Err(format!("{k}: '{p}' is not a metric name prefix (letters, digits and _ . : / -)"));
    }
    Ok(p)
}

/// A resilience option (`reconnect`, `backoff`, `resend`, `resend_on_timeout`,
/// `max_resends`) applied over `policy` by the one reader script sessions use too.
pub(super) fn policy_option(policy: &mut Policy, k: &str, v: &Dynamic) -> Result<(), String> {
    let json = value::to_json(v).map_err(|e| format!("{k}: {e}"))?;
    policy.apply(k, &json).map(drop).map_err(|e| e.to_string())
}

/// `breaker`: true, false or `#{error_rate, min_requests, window, cool_down}`.
pub(super) fn breaker(k: &str, v: &Dynamic) -> Result<Option<BreakerPlan>, String> {
    match v.as_bool() {
        Ok(false) => return Ok(None),
        Ok(true) => return Ok(Some(BreakerPlan::default())),
        Err(_) => {}
    }
    let m = map_of(k, v, &["error_rate", "min_requests", "window", "cool_down"]).map_err(|e| {
        if v.is_map() {
            e
        } else {
            format!("{k} must be true, false or a map, not {v}")
        }
    })?;
    let d = BreakerPlan::default();
    Ok(Some(BreakerPlan {
        error_rate: field(&m, "error_rate", number)?.unwrap_or(d.error_rate),
        min_requests: field(&m, "min_requests", whole)?.unwrap_or(d.min_requests),
        window: field(&m, "window", duration)?.unwrap_or(d.window),
        cool_down: field(&m, "cool_down", duration)?.unwrap_or(d.cool_down),
    }))
}

/// An action to run on the script thread at `at` after the load started.
pub(super) struct Scheduled {
    pub(super) at: Duration,
    pub(super) run: FnPtr,
}

/// `schedule`: `[#{at: "2s", run: || chaos::kill()}]`, sorted by `at`.
pub(super) fn schedule(k: &str, v: &Dynamic) -> Result<Vec<Scheduled>, String> {
    let items = array(k, v, "an array like [#{at: \"2s\", run: || chaos::kill()}]")?;
    let mut out = Vec::new();
    for (i, d) in items.iter().enumerate() {
        let what = format!("{k} item {}", i + 1);
        let m = map_of(&what, d, &["at", "run"])?;
        let at = field(&m, "at", duration)?.ok_or_else(|| format!("{what} needs at: \"5s\""))?;
        let run = m
            .get("run")
            .and_then(|f| f.read_lock::<FnPtr>().map(|f| f.clone()))
            .ok_or_else(|| format!("{what} needs run: a function, e.g. || chaos::kill()"))?;
        out.push(Scheduled { at, run });
    }
    out.sort_by_key(|s| s.at);
    Ok(out)
}

/// `expect_errors`: error kinds (`"rpc_-32000"`, `"http_503"`) or JSON-RPC codes (`-32000`).
pub(super) fn expect_errors(k: &str, v: &Dynamic) -> Result<Vec<String>, String> {
    let bad =
        || format!("{k} must be an array of error kinds such as [\"rpc_-32000\"] or codes such as [-32000], not {v}");
    let items = v.read_lock::<Array>().map(|a| a.clone()).ok_or_else(bad)?;
    items
        .iter()
        .map(|d| {
            if let Ok(code) = d.as_int() {
                Ok(format!("rpc_{code}"))
            } else {
                d.clone().into_string().ok().map(|k| k.trim().to_string()).filter(|k| !k.is_empty()).ok_or_else(bad)
            }
        })
        .collect()
}

/// `stages` of `load::ramp`: `[#{duration: "10s", rate: 100}, ...]`.
pub(super) fn stages(k: &str, v: &Dynamic) -> Result<Vec<Stage>, String> {
    let items = array(k, v, "an array like [#{duration: \"10s\", rate: 100}]")?;
    if items.is_empty() {
        return Err(format!("{k} is empty: give at least one, e.g. [#{{duration: \"10s\", rate: 100}}]"));
    }
    let mut out = Vec::new();
    for (i, s) in items.iter().enumerate() {
        let what = format!("stage {}", i + 1);
        let m = map_of(&what, s, &["duration", "rate"])?;
        let duration = field(&m, "duration", duration_above_zero)?.ok_or_else(|| format!("{what} needs a duration"))?;
        let rate = field(&m, "rate", number)?.ok_or_else(|| format!("{what} needs a rate"))?;
        out.push(Stage { duration, rate });
    }
    Ok(out)
}

/// `on_sampling`, `on_elicitation`: the result map every such server request is answered
/// with, read like `connect`'s; a function (a callback) works only in `connect` sessions.
pub(super) fn canned_answer(k: &str, v: &Dynamic) -> Result<Value, String> {
    use super::session_extras::{answer_option, AnswerOption};
    match answer_option(k, v) {
        Ok(AnswerOption::Canned(result)) => Ok(result),
        Ok(AnswerOption::Callback(_)) => Err(format!(
            "{k}: a function answers only in connect() sessions (a load phase's sessions answer without the \
             script, in worker processes too); give the result map every request is answered with, e.g. {}",
            answer_example(k)
        )),
        Err(_) => Err(format!(
            "{k} must be a map (the result every request is answered with, e.g. {}), not {}",
            answer_example(k),
            value::type_name(v)
        )),
    }
}

fn answer_example(k: &str) -> &'static str {
    match k {
        "on_elicitation" => "#{action: \"accept\", content: #{name: \"load\"}}",
        _ => "#{role: \"assistant\", content: #{type: \"text\", text: \"ok\"}, model: \"canned\"}",
    }
}

/// `protocol_version`: a revision mcpscript speaks, read like `connect`'s.
pub(super) fn protocol_version(_k: &str, v: &Dynamic) -> Result<String, String> {
    super::session_extras::protocol_version(v)
}

/// `roots`: URIs or `#{uri, name}` maps, read like `connect`'s.
pub(super) fn roots(k: &str, v: &Dynamic) -> Result<Vec<Value>, String> {
    super::session_extras::roots(k, v)
}

/// The canned answers of a phase's sessions: `on_sampling`, `on_elicitation`, `roots`.
pub(super) fn answers(m: &Map) -> Result<CannedAnswers, String> {
    Ok(CannedAnswers {
        sampling: field(m, "on_sampling", canned_answer)?,
        elicitation: field(m, "on_elicitation", canned_answer)?,
        roots: field(m, "roots", roots)?,
    })
}

/// Checks the value of option `key` of `load::PHASE` (the key known to be an option).
pub(super) fn check_value(phase: &str, key: &str, v: &Dynamic) -> Result<(), String> {
    fn ok<T>(r: Result<T, String>) -> Result<(), String> {
        r.map(drop)
    }
    match (phase, key) {
        (_, "name" | "target") => ok(text(key, v)),
        (_, "sessions" | "iterations" | "max_inflight") => ok(at_least_one(key, v)),
        (_, "seed" | "processes" | "ping_sample") => ok(whole(key, v)),
        ("open", "rate") => ok(above_zero(key, v)),
        (_, "rate" | "connect_rate" | "start_rate" | "recovery_fraction") => ok(number(key, v)),
        (_, "duration" | "request_timeout" | "connect_timeout") => ok(duration_above_zero(key, v)),
        (_, "think" | "hold") => ok(duration(key, v)),
        (_, "reconnect" | "resend_on_timeout" | "max_resends" | "backoff" | "resend") => {
            policy_option(&mut Policy::default(), key, v)
        }
        (_, "mix") => ok(mix(key, v)),
        (_, "request") => ok(request(key, v)),
        (_, "sample") => ok(sample(key, v)),
        (_, "metrics") => ok(metrics_prefix(key, v)),
        (_, "breaker") => ok(breaker(key, v)),
        (_, "schedule") => ok(schedule(key, v)),
        (_, "expect_errors") => ok(expect_errors(key, v)),
        (_, "stages") => ok(stages(key, v)),
        (_, "on_sampling" | "on_elicitation") => ok(canned_answer(key, v)),
        (_, "roots") => ok(roots(key, v)),
        (_, "protocol_version") => ok(protocol_version(key, v)),
        _ => Ok(()),
    }
}

/// A problem with an options map: the option it is about (`None`: the map as a whole) and
/// what is wrong, in the words the script reads.
#[derive(Debug, Clone, PartialEq)]
pub struct OptionProblem {
    pub key: Option<String>,
    pub message: String,
}

/// Checks an options map of `load::PHASE`: the names `given` (every option the map sets,
/// its value known or not) are options of the phase, those it needs are there, none
/// excludes another; then every value in `known` (all of them at run time, the literal ones
/// in `mcpscript check`) and the resilience policy they make. `load::PHASE` reports the
/// first problem when it is called; `mcpscript check` reports them all.
pub fn check_options(phase: &str, given: &[&str], known: &Map) -> Vec<OptionProblem> {
    let Some(own) = phase_options(phase) else { return vec![] };
    let problem = |key: Option<&str>, message: String| OptionProblem { key: key.map(str::to_string), message };
    let mut problems = Vec::new();
    let all: Vec<&str> = COMMON.iter().chain(own).copied().collect();
    for k in given {
        if !all.contains(k) {
            let hint = crate::util::suggest(k, all.iter().copied())
                .map(|s| format!(" (did you mean {s}?)"))
                .unwrap_or_default();
            problems.push(problem(Some(k), format!("unknown option '{k}'{hint}; options are {}", all.join(", "))));
        }
    }
    let has = |k: &str| given.contains(&k);
    if has("mix") && has("request") {
        problems.push(problem(Some("request"), "give either mix or request, not both".into()));
    }
    let needs = match phase {
        "closed" if !has("duration") && !has("iterations") => "needs a duration, a number of iterations, or both",
        "open" if !has("rate") => "needs a rate (requests per second)",
        "open" if !has("duration") => "needs a duration, e.g. \"30s\"",
        "ramp" if !has("stages") => "needs stages: [#{duration: \"10s\", rate: 100}, ...]",
        "connect" if !has("sessions") => "needs sessions",
        _ => "",
    };
    if !needs.is_empty() {
        problems.push(problem(None, needs.into()));
    }
    for (k, v) in known.iter().filter(|(k, v)| !v.is_unit() && all.contains(&k.as_str())) {
        if let Err(e) = check_value(phase, k, v) {
            problems.push(problem(Some(k), e));
        }
    }
    if problems.is_empty() {
        if let Err(e) = resilience(known) {
            problems.push(problem(None, e));
        }
    }
    problems
}

/// The resilience options of a phase: `reconnect`, `backoff`, `resend`, `resend_on_timeout`,
/// `max_resends`, `breaker`, `recovery_fraction`, over the defaults and checked together.
pub(super) fn resilience(m: &Map) -> Result<Resilience, String> {
    let mut r = Resilience::default();
    for (k, v) in m.iter().filter(|(k, v)| !v.is_unit() && Policy::KEYS.contains(&k.as_str())) {
        policy_option(&mut r.policy, k, v)?;
    }
    if let Some(Some(b)) = field(m, "breaker", breaker)? {
        r.breaker = Some(b);
    }
    if let Some(f) = field(m, "recovery_fraction", number)? {
        r.recovery_fraction = f;
    }
    r.validate().map_err(|e| e.to_string())?;
    Ok(r)
}
