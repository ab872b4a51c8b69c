//! The structure namespace: `stage(name, || { ... })` runs a closure as a named node of the
//! result tree (its own timing, checks and metrics, nested stages inside), and `metric`
//! exports a named number for reports and regression detection.

use super::{host_error, script_fn, site_string, Namespace};
use crate::script::ctx::ScriptCtx;
use crate::script::results::{Better, Status};
use crate::script::value;
use rhai::{Dynamic, Engine, EvalAltResult, FnPtr, Map, NativeCallContext};
use std::sync::Arc;

/// Samples a metric may carry (`metric(name, v, #{samples: [...]})`).
const MAX_SAMPLES: usize = 100_000;

pub const NAMESPACE: Namespace = Namespace {
    name: "structure",
    doc: "Shape of the result tree. A stage is a named, timed node; checks, thresholds and metrics \
          recorded while it runs belong to it, and stages nest. Metrics are the numbers a run exports \
          for reports and for regression detection against earlier runs.",
    register,
};

type Res<T> = Result<T, Box<EvalAltResult>>;

fn metric_name_ok(name: &str) -> bool {
    !name.is_empty() && name.len() <= 100 && name.chars().all(|c| c.is_ascii_alphanumeric() || "_.:/-".contains(c))
}

fn record_metric(ctx: &ScriptCtx, nc: &NativeCallContext, name: &str, value: &Dynamic, opts: Option<&Map>) -> Res<()> {
    if !metric_name_ok(name) {
        return Err(host_error(
            nc,
            format!("metric: '{name}' is not a metric name (letters, digits and _ . : / -, at most 100)"),
        ));
    }
    let v = value::as_number(value).filter(|v| v.is_finite()).ok_or_else(|| {
        host_error(nc, format!("metric '{name}': the value must be a finite number, not {}", value::type_name(value)))
    })?;
    let mut unit = None;
    let mut better = Better::None;
    let mut samples = Vec::new();
    if let Some(opts) = opts {
        for (k, o) in opts.iter() {
            match k.as_str() {
                "unit" => unit = Some(o.to_string()),
                "samples" => {
                    let bad = || {
                        host_error(
                            nc,
                            format!(
                                "metric '{name}': samples must be an array of finite numbers, not {}",
                                value::type_name(o)
                            ),
                        )
                    };
                    let arr = o.clone().try_cast::<rhai::Array>().ok_or_else(bad)?;
                    if arr.len() > MAX_SAMPLES {
                        return Err(host_error(
                            nc,
                            format!("metric '{name}': {} samples, at most {MAX_SAMPLES} are kept", arr.len()),
                        ));
                    }
                    samples = arr
                        .iter()
                        .map(|x| value::as_number(x).filter(|v| v.is_finite()))
                        .collect::<Option<Vec<f64>>>()
                        .ok_or_else(bad)?;
                }
                "better" => {
                    better = match o.to_string().as_str() {
                        "higher" => Better::Higher,
                        "lower" => Better::Lower,
                        "none" => Better::None,
                        other => {
                            return Err(host_error(
                                nc,
                                format!(
                                "metric '{name}': better must be \"higher\", \"lower\" or \"none\", not \"{other}\""
                            ),
                            ))
                        }
                    }
                }
                other => {
                    let hint = crate::util::suggest(other, ["unit", "better", "samples"])
                        .map(|s| format!(" (did you mean {s}?)"))
                        .unwrap_or_default();
                    return Err(host_error(
                        nc,
                        format!(
                            "metric '{name}': unknown option '{other}'{hint}; options are unit, better and samples"
                        ),
                    ));
                }
            }
        }
    }
    ctx.rec().metric(name, v, unit, better, samples, &site_string(nc)).map_err(|e| host_error(nc, e))
}

/// The innermost message of an error that crossed a stage, for the stage's `error` field.
fn innermost(e: &EvalAltResult) -> String {
    let mut cur = e;
    while let EvalAltResult::ErrorInFunctionCall(_, _, inner, _) | EvalAltResult::ErrorInModule(_, inner, _) = cur {
        cur = inner;
    }
    match cur {
        EvalAltResult::ErrorRuntime(v, _) => v.to_string(),
        other => {
            let s = other.to_string();
            let suffix = format!(" ({})", other.position());
            s.strip_suffix(&suffix).unwrap_or(&s).to_string()
        }
    }
}

pub fn register(engine: &mut Engine, ctx: &Arc<ScriptCtx>) {
    let c = ctx.clone();
    script_fn!(engine,
    /// Runs `body` (a closure without parameters) as the stage `name` and returns its value.
    /// The stage fails when an assertion inside it failed or an error left it; the error
    /// carries on to the caller (with the stage in its stack).
    "stage"(name, body) => move |nc: NativeCallContext, name: &str, body: FnPtr| -> Res<Dynamic> {
        if name.trim().is_empty() {
            return Err(host_error(&nc, "stage: the name must not be empty"));
        }
        c.rec().enter(name);
        c.show_stage();
        let outcome = body.call_within_context::<Dynamic>(&nc, ());
        let leave = |error: Option<String>, stopped: Option<Status>| {
            c.rec().leave(error, stopped);
            c.show_stage();
        };
        match outcome {
            Ok(v) => {
                leave(None, None);
                Ok(v)
            }
            Err(e) => {
                let skipped = c.rec().skipped().map(str::to_string);
                let stopped = match &*e {
                    _ if skipped.is_some() && super::is_skip(&e) => Some(Status::Skipped),
                    EvalAltResult::ErrorTerminated(t, _) if t.to_string() == "timeout" => Some(Status::Timeout),
                    // Out of memory: the stage failed (the error says why).
                    EvalAltResult::ErrorTerminated(t, _) if t.to_string() == crate::script::engine::MEMORY_TOKEN => None,
                    EvalAltResult::ErrorTerminated(..) => Some(Status::Cancelled),
                    _ => None,
                };
                leave(Some(skipped.unwrap_or_else(|| innermost(&e))), stopped);
                if e.is_system_exception() {
                    return Err(e);
                }
                let src = nc.call_source().unwrap_or_default().to_string();
                Err(EvalAltResult::ErrorInFunctionCall(format!("stage '{name}'"), src, e, nc.call_position()).into())
            }
        }
    });

    let c = ctx.clone();
    script_fn!(engine,
    /// Exports metric `name` with a number (int or float), without unit or direction.
    "metric"(name, value) => move |nc: NativeCallContext, name: &str, value: Dynamic| -> Res<()> {
        record_metric(&c, &nc, name, &value, None)
    });

    let c = ctx.clone();
    script_fn!(engine,
    /// Exports metric `name` with a number and options `#{unit: "msg/s", better: "higher"}`;
    /// `better` is `"higher"`, `"lower"` or `"none"` (the default) and tells the regression
    /// detector which way is worse; `samples: [...]` (numbers, e.g. one per round) are the
    /// measurements behind the value, which give it a confidence interval and a rank test
    /// against the baseline. Each name is exported once per script.
    "metric"(name, value, options) => move |nc: NativeCallContext, name: &str, value: Dynamic, options: Map| -> Res<()> {
        record_metric(&c, &nc, name, &value, Some(&options))
    });
}
