//! The core namespace: parameters (`param`), the run's target, time (`sleep`, `now_ms`,
//! `duration_ms`), logging (`human` formats numbers for it) and seeded randomness.
//! Durations are always strings with a unit.

use super::{bad_input, bridge_error, duration_arg, host_error, script_fn, Namespace};
use crate::script::ctx::ScriptCtx;
use crate::script::{params, value};
use crate::util::human;
use rand::Rng;
use rhai::{Dynamic, Engine, EvalAltResult, Map, NativeCallContext};
use std::sync::Arc;

pub const NAMESPACE: Namespace = Namespace {
    name: "core",
    doc: "Parameters, the target, time, logging and randomness; `human(x, unit)` writes a number as a person \
          reads it (`72.7K req/s`, `20.5 ms`) for log lines. Every time is a string with a unit \
          (`\"250ms\"`, `\"5s\"`, `\"100us\"`, `\"2m\"`); a bare number is refused so that `5` can never \
          silently mean 5 ms or 5 s.",
    register,
};

type Res<T> = Result<T, Box<EvalAltResult>>;

/// `human(x, unit)`: ints exact, floats to three significant figures, `()` as `n/a`.
fn human_value(nc: &NativeCallContext, x: &Dynamic, unit: Option<&str>) -> Res<String> {
    if x.is_unit() {
        return Ok("n/a".into());
    }
    if let Ok(n) = x.as_int() {
        return Ok(human::int_with_unit(n, unit));
    }
    match x.as_float() {
        Ok(f) => Ok(human::with_unit(f, unit)),
        Err(_) => Err(host_error(nc, format!("{}: expects a number, not {}", nc.fn_name(), value::type_name(x)))),
    }
}

pub fn register(engine: &mut Engine, ctx: &Arc<ScriptCtx>) {
    let c = ctx.clone();
    script_fn!(engine,
    /// The value of a required parameter, given as `--set name=VALUE`; its type is inferred
    /// (int, float, bool, else string). Fails when the parameter was not given.
    "param"(name) => move |nc: NativeCallContext, name: &str| -> Res<Dynamic> {
        match c.params.get(name) {
            Some(raw) => {
                let v = params::infer(raw);
                c.rec().param(name, value::to_json(&v).unwrap_or_default());
                Ok(v)
            }
            None => Err(bad_input(&c, &nc, format!("parameter '{name}' is required: pass --set {name}=VALUE"))),
        }
    });

    let c = ctx.clone();
    script_fn!(engine,
    /// The value of parameter `name` from `--set name=VALUE`, else `default`. The value takes the
    /// default's type: int, float, bool, a duration when the default is one (`"5s"`), an array or
    /// map (as JSON), else a string; a value of the wrong type ends the run with exit code 2.
    "param"(name, default) => move |nc: NativeCallContext, name: &str, default: Dynamic| -> Res<Dynamic> {
        let v = match c.params.get(name) {
            Some(raw) => params::convert(name, raw, &default).map_err(|m| bad_input(&c, &nc, m))?,
            None => default,
        };
        c.rec().param(name, value::to_json(&v).unwrap_or_default());
        Ok(v)
    });

    let c = ctx.clone();
    script_fn!(engine,
    /// Every `--set` parameter of the run, with inferred types.
    "params"() => move || -> Map {
        c.params.names().map(|n| (n.into(), params::infer(c.params.get(n).unwrap_or_default()))).collect()
    });

    let c = ctx.clone();
    script_fn!(engine,
    /// The run's target URL (`tcp://127.0.0.1:7777`, `http://host/mcp`, ...): what `connect()` uses.
    "target"() => move || -> String {
        c.target.as_ref().map(|t| t.to_string()).unwrap_or_default()
    });

    let c = ctx.clone();
    script_fn!(engine,
    /// Pauses the script for a duration such as `"250ms"`. Woken early only when the run is
    /// cancelled or times out.
    "sleep"(duration) => move |nc: NativeCallContext, duration: &str| -> Res<()> {
        let d = duration_arg(&c, &nc, "sleep", duration)?;
        // The timer must be created on the runtime, hence the async block; it runs where the
        // script's sessions live, so they keep being served while the script sleeps.
        c.bridge.run_io(async move { tokio::time::sleep(d).await }).map_err(|e| bridge_error(&nc, "sleep", e))
    });

    let c = ctx.clone();
    script_fn!(engine,
    /// A duration string (`"1.5s"`) in milliseconds, as a float: `r.latency_ms < duration_ms("50ms")`.
    "duration_ms"(duration) => move |nc: NativeCallContext, duration: &str| -> Res<f64> {
        Ok(duration_arg(&c, &nc, "duration_ms", duration)?.as_secs_f64() * 1000.0)
    });

    let c = ctx.clone();
    script_fn!(engine,
        /// Milliseconds since the script started (monotonic clock), as a float.
        "now_ms"() => move || -> f64 { c.rec().now_ms() });

    let c = ctx.clone();
    script_fn!(engine,
        /// Prints a line to stderr with the time since the run started (in a suite, also the
        /// scenario's name; not with --quiet) and keeps it in results.json. `print(x)` and
        /// `debug(x)` do the same. `human(x, unit)` writes numbers for it.
        "log"(message) => move |message: &str| { c.log(message) });

    let c = ctx.clone();
    script_fn!(engine,
        /// Logs any other value (a map, an array, a bool...) as Rhai displays it. A number is the
        /// exception: `log(x)` of a number is Rhai's logarithm, so log numbers inside a string:
        /// ``log(`n = ${n}`)``.
        "log"(value) => move |value: Dynamic| { c.log(&value.to_string()) });

    script_fn!(engine,
    /// A number as a person reads it, for log lines: a float to three significant figures with
    /// K/M/G (`72718.41` -> `"72.7K"`), an int exact with thousands separators (`218171` ->
    /// `"218,171"`), `()` (a figure not measured) as `"n/a"`.
    "human"(x) => |nc: NativeCallContext, x: Dynamic| -> Res<String> { human_value(&nc, &x, None) });

    script_fn!(engine,
    /// A number with its unit as a person reads it: `human(r.throughput, "req/s")` is
    /// `"72.7K req/s"`, `human(0.0205, "s")` is `"20.5 ms"`, `human(29100000, "bytes")` is
    /// `"27.8 MiB"`, `human(0.00123, "ratio")` is `"0.123%"`, `human(r.sent, "sent")` is
    /// `"218,171 sent"`. Times (`ms`, `s`, `us`) take the unit that reads best.
    "human"(x, unit) => |nc: NativeCallContext, x: Dynamic, unit: &str| -> Res<String> {
        human_value(&nc, &x, Some(unit))
    });

    script_fn!(engine,
    /// A time in milliseconds as a person reads it: `human_ms(0.278)` is `"278 us"`,
    /// `human_ms(20.52)` is `"20.5 ms"`, `human_ms(6570)` is `"6.57 s"`.
    "human_ms"(x) => |nc: NativeCallContext, x: Dynamic| -> Res<String> { human_value(&nc, &x, Some("ms")) });

    let c = ctx.clone();
    script_fn!(engine,
        /// A random float in [0, 1) from the run's seeded generator (`--seed`), so runs repeat.
        "random"() => move || -> f64 { c.rng().random::<f64>() });

    let c = ctx.clone();
    script_fn!(engine,
    /// A random integer from `lo` to `hi` inclusive, from the run's seeded generator.
    "random_int"(lo, hi) => move |nc: NativeCallContext, lo: i64, hi: i64| -> Res<i64> {
        if lo > hi {
            return Err(bad_input(&c, &nc, format!("random_int: lo ({lo}) is greater than hi ({hi})")));
        }
        Ok(c.rng().random_range(lo..=hi))
    });
}
