//! The metrics namespace: HdrHistogram recorders for values a script measures itself,
//! named counters and gauges, and resource readings of processes (RSS and CPU, once or
//! sampled over time). Exporting a number for regression detection is `metric(...)` of
//! the structure namespace; `metrics::export` does it for a counter or gauge.

use super::{
    bad_input, bridge_error, duration_arg, host_error, module_fn, register_getter, script_fn, site_string, Namespace,
};
use crate::load::result::{self as lr, LatencyStats};
use crate::load::sampler::{self, Sampler};
use crate::script::bridge::Bridge;
use crate::script::ctx::{Resource, ScriptCtx, CLOSE_LIMIT};
use crate::script::results::Better;
use crate::script::value;
use hdrhistogram::Histogram as Hdr;
use rhai::{Array, Dynamic, Engine, EvalAltResult, Map, Module, NativeCallContext};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub const NAMESPACE: Namespace = Namespace {
    name: "metrics",
    doc: "Measurements a script makes itself. `metrics::histogram()` records values (milliseconds) into an \
          HdrHistogram (1 us to 60 s, 3 significant figures) whose `summary()` is a latency map thresholds read; \
          `metrics::counter`/`gauge` keep named numbers and `metrics::export` turns one into an exported metric; \
          `metrics::rss(pid)`, `metrics::cpu_seconds(pid)` read a process once, and `metrics::sample(pid, \"1s\")` \
          samples its RSS and CPU until `stop()`. Load phases sample mcpscript and the target by themselves \
          (their result's `resources`).",
    register,
};

type Res<T> = Result<T, Box<EvalAltResult>>;

/// A script's latency histogram (microsecond resolution, values given in ms).
#[derive(Clone)]
pub struct ScriptHistogram(Arc<Mutex<Hdr<u64>>>);

impl ScriptHistogram {
    fn lock(&self) -> std::sync::MutexGuard<'_, Hdr<u64>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn latency_map(l: &LatencyStats) -> Map {
    let v = serde_json::to_value(l).unwrap_or_default();
    value::to_dynamic(&v).try_cast::<Map>().unwrap_or_default()
}

/// A running resource sampler.
#[derive(Clone)]
pub struct ScriptSampler(Arc<SamplerSlot>);

pub struct SamplerSlot {
    pid: u32,
    sampler: Mutex<Option<Sampler>>,
}

impl Resource for SamplerSlot {
    fn close(&self, bridge: &Bridge) {
        if let Some(s) = self.sampler.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = bridge.run_cleanup(s.finish(), CLOSE_LIMIT);
        }
    }
}

fn series_map(r: &lr::Resources, pid: u32) -> Map {
    let mut v = serde_json::to_value(r.processes.iter().find(|p| p.pid == pid).cloned().unwrap_or_default())
        .unwrap_or_default();
    if let Some(o) = v.as_object_mut() {
        o.insert("pid".into(), pid.into());
        o.insert("interval_s".into(), r.interval_s.into());
    }
    value::to_dynamic(&v).try_cast::<Map>().unwrap_or_default()
}

fn pid_arg(ctx: &ScriptCtx, nc: &NativeCallContext, what: &str, pid: i64) -> Res<u32> {
    u32::try_from(pid).map_err(|_| bad_input(ctx, nc, format!("{what}: {pid} is not a process id")))
}

/// Adds `delta` to counter `name` (starting at 0); returns the new value.
fn add(values: &Mutex<BTreeMap<String, f64>>, name: &str, delta: f64) -> f64 {
    let mut m = values.lock().unwrap_or_else(|e| e.into_inner());
    let e = m.entry(name.to_string()).or_insert(0.0);
    *e += delta;
    *e
}

pub fn register(engine: &mut Engine, ctx: &Arc<ScriptCtx>) {
    engine.register_type_with_name::<ScriptHistogram>("Histogram");
    engine.register_type_with_name::<ScriptSampler>("Sampler");
    let mut m = Module::new();
    let values: Arc<Mutex<BTreeMap<String, f64>>> = Arc::default();

    module_fn(
        engine,
        &mut m,
        "histogram",
        &[],
        &[" A new, empty latency histogram (record values in milliseconds)."],
        || ScriptHistogram(Arc::new(Mutex::new(lr::new_hist()))),
    );
    script_fn!(engine,
    /// Records a value in milliseconds (a float keeps microseconds: `h.record(r.latency_ms)`).
    "record"(histogram, ms) => |h: &mut ScriptHistogram, ms: f64| {
        if ms.is_finite() && ms >= 0.0 {
            h.lock().saturating_record((ms * 1000.0).round() as u64);
        }
    });
    script_fn!(engine,
        /// Records a whole number of milliseconds.
        "record"(histogram, ms) => |h: &mut ScriptHistogram, ms: i64| h.lock().saturating_record(ms.max(0) as u64 * 1000));
    script_fn!(engine,
        /// Records a value in microseconds (`r.latency_us`).
        "record_us"(histogram, us) => |h: &mut ScriptHistogram, us: i64| h.lock().saturating_record(us.max(0) as u64));
    script_fn!(engine,
        /// The statistics in milliseconds: `#{count, min, mean, stddev, p50, p90, p95, p99, p999, max}`,
        /// a map `threshold` reads.
        "summary"(histogram) => |h: &mut ScriptHistogram| -> Map { latency_map(&LatencyStats::of(&h.lock())) });
    script_fn!(engine,
    /// Adds every value of `other` (exactly: same buckets).
    "merge"(histogram, other) => |h: &mut ScriptHistogram, other: ScriptHistogram| {
        if !Arc::ptr_eq(&h.0, &other.0) {
            let o = other.lock().clone();
            let _ = h.lock().add(&o);
        }
    });
    script_fn!(engine,
        /// Forgets every value.
        "reset"(histogram) => |h: &mut ScriptHistogram| h.lock().reset());
    register_getter(engine, "count", &[" Values recorded so far."], |h: &mut ScriptHistogram| h.lock().len() as i64);
    engine.register_fn("to_string", |h: &mut ScriptHistogram| format!("Histogram({} values)", h.lock().len()));

    let v = values.clone();
    module_fn(
        engine,
        &mut m,
        "counter",
        &["name", "delta"],
        &[" Adds `delta` to counter `name` (starting at 0) and returns the new value."],
        move |name: &str, delta: f64| -> f64 { add(&v, name, delta) },
    );
    let v = values.clone();
    module_fn(
        engine,
        &mut m,
        "counter",
        &["name", "delta"],
        &[" Adds a whole number to counter `name`; returns the new value."],
        move |name: &str, delta: i64| -> f64 { add(&v, name, delta as f64) },
    );
    let v = values.clone();
    module_fn(
        engine,
        &mut m,
        "gauge",
        &["name", "value"],
        &[" Sets gauge `name` to a whole number."],
        move |name: &str, value: i64| {
            v.lock().unwrap_or_else(|e| e.into_inner()).insert(name.to_string(), value as f64);
        },
    );
    let v = values.clone();
    module_fn(
        engine,
        &mut m,
        "gauge",
        &["name", "value"],
        &[" Sets gauge `name` to `value`."],
        move |name: &str, value: f64| {
            v.lock().unwrap_or_else(|e| e.into_inner()).insert(name.to_string(), value);
        },
    );
    let v = values.clone();
    module_fn(
        engine,
        &mut m,
        "value",
        &["name"],
        &[" The current value of counter or gauge `name` (0 when never set)."],
        move |name: &str| -> f64 { v.lock().unwrap_or_else(|e| e.into_inner()).get(name).copied().unwrap_or(0.0) },
    );
    let (v, c) = (values.clone(), ctx.clone());
    module_fn(
        engine,
        &mut m,
        "export",
        &["name", "options"],
        &[
            " Exports counter or gauge `name` as a metric of the current stage, with options",
            " `#{unit: \"req\", better: \"higher\"}` (`better`: higher, lower or none).",
        ],
        move |nc: NativeCallContext, name: &str, options: Map| -> Res<()> {
            let value = v
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(name)
                .copied()
                .ok_or_else(|| host_error(&nc, format!("metrics::export: no counter or gauge named '{name}'")))?;
            let unit = options.get("unit").map(|u| u.to_string());
            let better = match options.get("better").map(|b| b.to_string()).as_deref() {
                Some("higher") => Better::Higher,
                Some("lower") => Better::Lower,
                None | Some("none") => Better::None,
                Some(o) => {
                    return Err(host_error(
                        &nc,
                        format!("metrics::export: better must be higher, lower or none, not {o}"),
                    ))
                }
            };
            c.rec().metric(name, value, unit, better, vec![], &site_string(&nc)).map_err(|e| host_error(&nc, e))
        },
    );

    module_fn(engine, &mut m, "pid", &[], &[" This process's id (the coordinator of load phases)."], || -> i64 {
        std::process::id() as i64
    });
    let c = ctx.clone();
    module_fn(
        engine,
        &mut m,
        "target_pids",
        &[],
        &[" Target processes named with `--target-pid` (an array of ints)."],
        move || -> Array { c.load.target_pids.iter().map(|p| Dynamic::from_int(*p as i64)).collect() },
    );
    module_fn(
        engine,
        &mut m,
        "fit",
        &["xs", "ys"],
        &[
            " The least-squares line through the points (xs[i], ys[i]) (numbers; at least 3, not all",
            " xs equal): `#{slope, intercept, slope_low, slope_high, p_value, n}`, where `slope_low` and",
            " `slope_high` bound the slope with 95% confidence (Student t, n - 2 degrees of freedom) and",
            " `p_value` tests slope = 0. E.g. memory growth: `metrics::fit(times_s, rss_bytes).slope_high`",
            " in bytes per second.",
        ],
        |nc: NativeCallContext, xs: Array, ys: Array| -> Res<Map> {
            let nums = |a: &Array, what: &str| -> Res<Vec<f64>> {
                a.iter()
                    .map(|v| {
                        v.as_float().or_else(|_| v.as_int().map(|i| i as f64)).map_err(|_| {
                            host_error(
                                &nc,
                                format!("metrics::fit: {what} must hold numbers, not {}", value::type_name(v)),
                            )
                        })
                    })
                    .collect()
            };
            let (x, y) = (nums(&xs, "xs")?, nums(&ys, "ys")?);
            let fit = crate::regress::stats::ols_fit(&x, &y).ok_or_else(|| {
                host_error(
                    &nc,
                    format!(
                        "metrics::fit: needs at least 3 points with xs and ys of the same length and not all xs equal (got {} xs, {} ys)",
                        x.len(),
                        y.len()
                    ),
                )
            })?;
            let ci = fit.slope_interval(0.95).unwrap_or(crate::regress::Interval {
                low: fit.slope,
                high: fit.slope,
                level: 0.95,
            });
            let mut out = Map::new();
            out.insert("slope".into(), Dynamic::from_float(fit.slope));
            out.insert("intercept".into(), Dynamic::from_float(fit.intercept));
            out.insert("slope_low".into(), Dynamic::from_float(ci.low));
            out.insert("slope_high".into(), Dynamic::from_float(ci.high));
            out.insert("p_value".into(), Dynamic::from_float(fit.p_value));
            out.insert("n".into(), Dynamic::from_int(fit.n as i64));
            Ok(out)
        },
    );
    let c = ctx.clone();
    module_fn(
        engine,
        &mut m,
        "rss",
        &["pid"],
        &[" Resident memory of process `pid` in bytes (() when it is gone)."],
        move |nc: NativeCallContext, pid: i64| -> Res<Dynamic> {
            let pid = pid_arg(&c, &nc, "metrics::rss", pid)?;
            Ok(crate::util::proc::rss_bytes(pid).map(|b| Dynamic::from_int(b as i64)).unwrap_or(Dynamic::UNIT))
        },
    );
    let c = ctx.clone();
    module_fn(
        engine,
        &mut m,
        "cpu_seconds",
        &["pid"],
        &[" CPU time (user + system) process `pid` has used, in seconds (() when it is gone)."],
        move |nc: NativeCallContext, pid: i64| -> Res<Dynamic> {
            let pid = pid_arg(&c, &nc, "metrics::cpu_seconds", pid)?;
            Ok(sampler::cpu_seconds(pid).map(Dynamic::from_float).unwrap_or(Dynamic::UNIT))
        },
    );

    let c = ctx.clone();
    module_fn(
        engine,
        &mut m,
        "sample",
        &["pid", "interval"],
        &[
            " Starts sampling RSS and CPU of process `pid` every `interval` (\"1s\"); `s.stop()` returns",
            " `#{pid, t, rss_bytes, cpu_pct, peak_rss_bytes, mean_cpu_pct, interval_s}` (arrays per sample).",
            " Sampling stops by itself when the script ends.",
        ],
        move |nc: NativeCallContext, pid: i64, interval: &str| -> Res<ScriptSampler> {
            let pid = pid_arg(&c, &nc, "metrics::sample", pid)?;
            let every = duration_arg(&c, &nc, "metrics::sample", interval)?.max(Duration::from_millis(10));
            let watched = sampler::Watched::new(pid, lr::ProcessRole::Process);
            let s = c
                .bridge
                .run(async move { Sampler::start(watched, every) })
                .map_err(|e| bridge_error(&nc, "metrics::sample", e))?;
            let slot = Arc::new(SamplerSlot { pid, sampler: Mutex::new(Some(s)) });
            c.track(Arc::downgrade(&slot) as std::sync::Weak<dyn Resource>);
            Ok(ScriptSampler(slot))
        },
    );
    let c = ctx.clone();
    script_fn!(engine,
    /// Stops a sampler and returns its samples (see `metrics::sample`).
    "stop"(sampler) => move |nc: NativeCallContext, s: &mut ScriptSampler| -> Res<Map> {
        let taken = s.0.sampler.lock().unwrap_or_else(|e| e.into_inner()).take();
        let Some(sampler) = taken else { return Err(host_error(&nc, "stop: this sampler was already stopped")) };
        let r = c.bridge.run_cleanup(sampler.finish(), CLOSE_LIMIT).map_err(|e| bridge_error(&nc, "stop", e))?;
        Ok(series_map(&r, s.0.pid))
    });
    engine.register_fn("to_string", |s: &mut ScriptSampler| format!("Sampler(pid {})", s.0.pid));

    engine.register_static_module("metrics", m.into());
}
