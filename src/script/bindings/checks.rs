//! The checks namespace: `check` counts an assertion and carries on, `threshold` judges a
//! result map against k6-style expressions, `fail` ends the script as failed. Every
//! assertion lands in the current stage of the result tree, aggregated by name.

use super::{bad_input, host_error, script_fn, site, Namespace};
use crate::script::ctx::ScriptCtx;
use crate::script::results::CheckKind;
use crate::script::threshold::{Observed, Threshold};
use crate::script::value;
use rhai::{Array, Dynamic, Engine, EvalAltResult, Map, NativeCallContext};
use std::sync::Arc;

pub const NAMESPACE: Namespace = Namespace {
    name: "checks",
    doc: "Assertions. `check` records a passed or failed assertion and carries on; `threshold` judges a \
          result map against k6-style expressions and records the verdict as an assertion; `fail` ends \
          the script as failed. A run with any failed assertion exits 1. Checks with the same name in \
          the same stage are counted together (a check in a loop is one line in the report).",
    register,
};

type Res<T> = Result<T, Box<EvalAltResult>>;

/// The numbers of a result map, by the convention in [`crate::script::threshold::MAP_CONVENTION`].
pub fn observed(result: &Map) -> Observed {
    let mut o = Observed::default();
    let scale = |m: &Map| match m.get("unit").map(|u| u.to_string()).as_deref() {
        Some("us") | Some("µs") => 0.001,
        Some("s") => 1000.0,
        _ => 1.0,
    };
    let nested = result.get("latency").filter(|l| l.is_map()).and_then(|l| l.read_lock::<Map>().map(|m| m.clone()));
    let (lat, k) = match &nested {
        Some(m) => (m, scale(m)),
        None => (result, scale(result)),
    };
    for (key, v) in lat.iter() {
        if let Some(n) = value::as_number(v) {
            o.latency.insert(key.to_string(), n * k);
        }
    }
    for (key, v) in result.iter() {
        if let Some(n) = value::as_number(v) {
            o.values.insert(key.to_string(), n);
        } else if key.as_str() == "errors" && v.is_map() {
            let sum = v.read_lock::<Map>().map(|m| m.values().filter_map(value::as_number).sum::<f64>()).unwrap_or(0.0);
            o.values.insert(key.to_string(), sum);
        }
    }
    o
}

/// Judges one expression. A malformed expression is bad input (exit 2), whether it was a
/// literal (`mcpscript check` finds those first) or computed; a result without the metric is
/// a runtime error (the measurement did not happen).
fn judge(ctx: &ScriptCtx, nc: &NativeCallContext, result: &Map, expr: &str) -> Res<bool> {
    let t = Threshold::parse(expr).map_err(|e| bad_input(ctx, nc, e.to_string()))?;
    let j = t.judge(&observed(result)).map_err(|e| host_error(nc, format!("threshold \"{expr}\": {e}")))?;
    let name = format!("threshold {}", t.source);
    ctx.rec().assert(CheckKind::Threshold, &name, j.passed, Some(j.detail), site(nc));
    Ok(j.passed)
}

pub fn register(engine: &mut Engine, ctx: &Arc<ScriptCtx>) {
    let c = ctx.clone();
    script_fn!(engine,
    /// Records an assertion named `message`: passed when `cond` is true. Returns `cond`, so
    /// `if !check(r.ok, "ping answers") { ... }` works. The script carries on either way.
    "check"(cond, message) => move |nc: NativeCallContext, cond: bool, message: &str| -> bool {
        c.rec().assert(CheckKind::Check, message, cond, None, site(&nc));
        cond
    });

    let c = ctx.clone();
    script_fn!(engine,
    /// Like `check(cond, message)`, keeping `detail` (e.g. the values compared) with the first
    /// few failures. Use a fixed `message` and put varying values in `detail`.
    "check"(cond, message, detail) => move |nc: NativeCallContext, cond: bool, message: &str, detail: &str| -> bool {
        c.rec().assert(CheckKind::Check, message, cond, (!cond).then(|| detail.to_string()), site(&nc));
        cond
    });

    let c = ctx.clone();
    script_fn!(engine,
    /// Ends the script as failed with `message` (recorded as a failed assertion). Cannot be
    /// undone by `try`/`catch`: the failure is already recorded.
    "fail"(message) => move |nc: NativeCallContext, message: &str| -> Res<()> {
        c.rec().fail(message, site(&nc));
        Err(host_error(&nc, message))
    });

    let c = ctx.clone();
    script_fn!(engine,
    /// Ends the script as skipped with `reason` (e.g. the target lacks what the scenario
    /// needs): the scenario's status is `skipped`, never failed, and its dependents still run.
    /// Checks already failed keep it failed. `try`/`catch` cannot stop it.
    "skip"(reason) => move |nc: NativeCallContext, reason: &str| -> Res<()> {
        if reason.trim().is_empty() {
            return Err(bad_input(&c, &nc, "skip: give the reason, e.g. skip(\"the target has no 'sleep' tool\")"));
        }
        c.rec().skip(reason);
        Err(EvalAltResult::ErrorTerminated(super::SKIP_TOKEN.into(), nc.call_position()).into())
    });

    let c = ctx.clone();
    script_fn!(engine,
    /// Judges `result` (a map, see "Result maps") against a k6-style expression such as
    /// `"p99 < 50ms"`, `"p(99.9) <= 200ms"`, `"avg < 10ms"`, `"max < 1s"`, `"rate > 1000"`,
    /// `"error_rate < 0.1%"` or `"count >= 100"`. Records an assertion and returns whether it
    /// held. A malformed expression, or a result without the metric, is a script error.
    "threshold"(result, expr) => move |nc: NativeCallContext, result: Map, expr: &str| -> Res<bool> {
        judge(&c, &nc, &result, expr)
    });

    let c = ctx.clone();
    script_fn!(engine,
    /// Judges every expression of `exprs` (an array of strings); true when all held. Each is its
    /// own assertion.
    "threshold"(result, exprs) => move |nc: NativeCallContext, result: Map, exprs: Array| -> Res<bool> {
        let mut all = true;
        for e in &exprs {
            let s = e.clone().into_string().map_err(|_| bad_input(&c, &nc, format!("threshold: expressions must be strings, got {}", value::type_name(e))))?;
            all &= judge(&c, &nc, &result, &s)?;
        }
        Ok(all)
    });

    let c = ctx.clone();
    script_fn!(engine,
    /// The assertions recorded so far in the whole script: `#{passed, failed}`.
    "assertions"() => move || -> Map {
        let a = c.rec().assertions_so_far();
        let mut m = Map::new();
        m.insert("passed".into(), Dynamic::from_int(a.passed as i64));
        m.insert("failed".into(), Dynamic::from_int(a.failed as i64));
        m
    });
}
