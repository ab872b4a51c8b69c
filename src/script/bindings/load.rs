//! The load namespace: `load::closed`, `load::open`, `load::ramp` and `load::connect` turn
//! an options map into a [`PhasePlan`], run it entirely in Rust (`crate::load`: this
//! process or worker processes, sampled), keep the full result (histograms included) in
//! the current stage of the result tree, export metrics when asked, and return the result
//! as a map that `threshold(result, "p99 < 50ms")` reads. The script thread blocks while
//! the phase runs; Ctrl-C or the script's timeout stop the phase, its partial result is
//! still recorded, and the script then ends.

use super::{host_error, module_fn, site_string, Namespace};
use crate::client::server_requests::RequestCounts;
use crate::client::Target;
use crate::load::plan::{mix_seed, ClientSettings, Model, PhasePlan, PlanOAuth, RequestTemplate, Stage};
use crate::load::{ModelKind, PhaseResult, PhaseStatus, RunEnv};
use crate::script::ctx::ScriptCtx;
use crate::script::value;
use crate::util::human;
use rhai::{Dynamic, Engine, EvalAltResult, Map, Module, NativeCallContext};
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;

pub const NAMESPACE: Namespace = Namespace {
    name: "load",
    doc: "Declarative load phases, run entirely in Rust. Each takes an options map and returns a result map; \
          the full result (with HdrHistograms) lands in the current stage of results.json. Common options: \
          `name`, `target` (default: the run's target), `sessions`, `mix` (an array of requests: \
          `#{method, params, weight, name}` or `#{tool, arguments, weight}`) or one `request`, `request_timeout`, \
          `connect_timeout`, `connect_rate` (sessions/s, 0 = unlimited), `seed`, `processes` (worker processes, \
          0 = from the open-file budget), `sample` (RSS/CPU sampling interval, or false), `metrics` (a metric name \
          prefix: exports PREFIX_throughput, PREFIX_p50_ms, PREFIX_p99_ms, PREFIX_error_rate for regression \
          detection), `on_sampling` and `on_elicitation` (the result map every such server request is \
          answered with, as `connect` takes it; a function works only in `connect` sessions), `roots` \
          (URIs or `#{uri, name}` maps for `roots/list`): every session declares the capabilities of these \
          answers in `initialize`. `protocol_version` (as `connect` takes it; default the run's): with \
          `\"2026-07-28\"` the phase speaks the stateless revision: `tcp://` and `http://` sessions negotiate \
          once for the phase (`server/discover`; a server that predates it makes every session run \
          `initialize` at 2025-11-25, and a note says so; no revision in common fails the phase), then send \
          every request with the envelope (and over HTTP its headers) and no handshake, so a connect is \
          opening the connection; they declare no capabilities (a request needing input is -32021). \
          Other targets negotiate per session, as `connect` does. `ping` is refused then (`rpc_-32601`). \
          Result keys: \
          `sent`, `ok`, `errors` (a map by kind: `rpc_-32000`, `transport`, `protocol`, `http_503`...), \
          `timeouts`, `cancelled`, `dropped`, `error_rate`, `throughput`, `send_rate`, `intended_rate`, \
          `duration_s`, `latency` (ms: `p50 p90 p95 p99 p999 max mean stddev min count`), `per_kind`, `connect`, \
          `timeline` (per second), `resources`, `workers`, `status`, `notes`, `resent`, `resilience`, \
          `recovery`, `limited_by`, `ping` (connect phases with `ping_sample`), `server_requests` (what the \
          server asked the sessions, by method: `#{\"sampling/createMessage\": #{received, answered, refused}}`; \
          absent when it asked nothing). Always \
          `sent = ok + errors + timeouts + cancelled` (resends are extra attempts of one request: counted \
          in `resent`, never as sent twice). Resilience options: `reconnect` \
          (default true), `backoff` (`#{initial: \"50ms\", max: \"1s\", jitter: 0.5}`), `resend` (methods \
          resent when their connection broke; default `[\"ping\", \"tools/list\", \"resources/read\"]`, \
          false for none), `resend_on_timeout` (false), `max_resends` (1), `breaker` (true or \
          `#{error_rate, min_requests, window, cool_down}`: a client-side circuit breaker; refused \
          requests count in `resilience.short_circuited`), `recovery_fraction` (0.99). `schedule`: \
          `[#{at: \"2s\", run: || chaos::kill()}]` runs each function that long after the load started \
          (on the script thread, while the phase runs); `recovery` then has, per chaos action taken during \
          the load: `event`, `at_s`, `recovery_s` (until `recovery_fraction` of the sessions were \
          re-established; () if never), `sessions_affected`, `sessions_recovered`, `sessions_lost`, \
          `requests_failed`, `requests_resent`, `throughput` ([t, replies/s] around it). With \
          `--segment I/N` every phase runs its I-th share. `expect_errors` (error kinds such as \
          `[\"rpc_-32000\"]`, or JSON-RPC codes such as `[-32000]`) declares errors the scenario expects, e.g. \
          load shed by a server past its capacity: the phase's log line labels them `expected`; the result \
          and its checks are unchanged. Every phase logs one line when it ends, with its errors by kind \
          (`rpc_-32000` reads `shed -32000 overloaded`), and a second one when something limited it \
          (`limited by mcpscript (CPU 97% of 2 cores, send lag p99 35 ms): these numbers are mcpscript's \
          limit, not the server's`, `limited by the target (...)`, `limited by the network (...)`). \
          `limited_by` says who limited the phase: `verdict` (`mcpscript`, `target`, `network` or `none`), \
          `reasons`, and the evidence: `mcpscript_cpu` and `target_cpu` (`mean_pct`, `peak_pct` of one core, \
          `cores`, `mean_fraction`, `peak_fraction` of those cores; () when not sampled, named in `missing`), \
          `target_peak_rss_bytes`, `target_pids`, `target_in_process`, `send_lag` (open model: `p50_ms`, \
          `p99_ms`, `max_ms`, `mean_ms`, `count`: how late requests went out against their intended send \
          time), `dropped`, `workers` (`processes`, `failed`, `behind`), `latency_growth` (`first_p99_ms`, \
          `last_p99_ms`, `ratio`, `grew`: the first third of the phase's seconds against the last third), \
          `machine_busy` (busy share of the whole machine's CPU, every process counted). \
          The verdict is the first that applies of: `mcpscript` when its CPU averaged >= 90% of the cores it \
          can use, or the send lag p99 exceeded 10 ms, or arrivals were dropped while either held, or worker \
          processes failed or fell behind (their send lag p99 over 10 ms); `target` when the target's CPU \
          averaged >= 90% of the machine's cores, or it shed load (`rpc_-32000`, `http_503`, `http_429`), or \
          requests timed out, or other error replies reached 1% of the requests, or (while mcpscript had \
          headroom) latency grew (last third's p99 at least twice the first third's and 5 ms more) or \
          arrivals were dropped at `max_inflight`; `network` on transport errors (connections refused, reset \
          or closed); else `none`. A built-in server inside mcpscript's process shares its CPU: a reason \
          says so; so does one when mcpscript fell behind with its own CPU low and the machine's >= 90% \
          busy (other processes took its CPU).",
    register,
};

type Res<T> = Result<T, Box<EvalAltResult>>;

use super::load_options::*;

/// Reads an options map: every option checked when it is made ([`check_options`]), each
/// then read by its validator. A problem with an option is bad input (exit 2).
struct Opts<'a> {
    ctx: &'a ScriptCtx,
    nc: &'a NativeCallContext<'a>,
    what: &'static str,
    map: Map,
}

impl<'a> Opts<'a> {
    fn new(ctx: &'a ScriptCtx, nc: &'a NativeCallContext<'a>, phase: &'static str, map: Map) -> Res<Opts<'a>> {
        let what = PHASE_FNS.iter().find(|(p, _)| *p == phase).map(|(_, w)| *w).unwrap_or("load");
        let o = Opts { ctx, nc, what, map };
        let given: Vec<&str> = o.map.iter().filter(|(_, v)| !v.is_unit()).map(|(k, _)| k.as_str()).collect();
        if let Some(first) = check_options(phase, &given, &o.map).into_iter().next() {
            return Err(o.err(first.message));
        }
        Ok(o)
    }

    /// Bad input: a problem with an option.
    fn err(&self, msg: String) -> Box<EvalAltResult> {
        super::bad_input(self.ctx, self.nc, format!("{}: {msg}", self.what))
    }

    /// A failure that is not the options' fault.
    fn fail(&self, msg: String) -> Box<EvalAltResult> {
        host_error(self.nc, format!("{}: {msg}", self.what))
    }

    /// Option `k` read by its validator.
    fn read<T>(&self, k: &str, read: fn(&str, &Dynamic) -> Result<T, String>) -> Res<Option<T>> {
        field(&self.map, k, read).map_err(|e| self.err(e))
    }
}

/// The names errors give the phase functions.
const PHASE_FNS: &[(&str, &str)] =
    &[("closed", "load::closed"), ("open", "load::open"), ("ramp", "load::ramp"), ("connect", "load::connect")];

/// The parts of a plan every model shares.
fn common(ctx: &ScriptCtx, o: &Opts, model: Model, default_name: &str) -> Res<(PhasePlan, RunEnv)> {
    let name = o.read("name", text)?.unwrap_or_else(|| default_name.to_string());
    let run_target = ctx.target.as_ref().map(|t| t.to_string());
    let (target, builtin_here) = match o.read("target", text)? {
        None => (
            run_target.clone().ok_or_else(|| o.fail("no target in this engine (check mode)".into()))?,
            ctx.load.builtin_here,
        ),
        Some(t) if t == "builtin" => match (&run_target, ctx.load.builtin_here) {
            (Some(r), true) => (r.clone(), true),
            _ => {
                return Err(
                    o.fail("target \"builtin\": this run has no built-in server (it runs against --target)".into())
                )
            }
        },
        Some(t) => {
            if let Ok(parsed) = t.parse::<Target>() {
                // The sandbox's refusal is the run's, as for connect(): not bad input.
                ctx.allow_target(&parsed).map_err(|e| o.fail(format!("target {e}")))?;
            }
            let same = run_target.as_deref() == Some(t.as_str());
            (t, same && ctx.load.builtin_here)
        }
    };
    let mix = match (o.read("mix", mix)?, o.read("request", request)?) {
        (Some(m), _) => m,
        (None, Some(r)) => vec![r],
        (None, None) => vec![RequestTemplate::new("ping", None, 1)],
    };
    let seed = o.read("seed", whole)?.unwrap_or_else(|| {
        let h = name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ b as u64).wrapping_mul(0x100_0000_01b3));
        mix_seed(ctx.seed, h)
    });
    let plan = PhasePlan {
        name,
        target,
        model,
        mix,
        request_timeout: o.read("request_timeout", duration)?.unwrap_or(ctx.client.request_timeout),
        connect_timeout: o.read("connect_timeout", duration)?.unwrap_or(ctx.client.connect_timeout),
        connect_rate: o.read("connect_rate", number)?.unwrap_or(0.0),
        seed,
        segment: ctx.load.segment,
        client: ClientSettings {
            protocol_version: o
                .read("protocol_version", protocol_version)?
                .unwrap_or_else(|| ctx.client.protocol_version.clone()),
            client_name: ctx.client.client_name.clone(),
            auth_token: ctx.client.auth_token.clone(),
            max_message_size: ctx.client.max_message_size,
            headers: ctx.client.headers.clone(),
            tls: ctx.client.tls.settings().clone(),
            answers: answers(&o.map).map_err(|e| o.err(e))?,
            oauth: ctx.client.oauth.clone().map(PlanOAuth::of_run),
        },
        session_offset: 0,
        processes: o.read("processes", whole)?.unwrap_or(0).min(u32::MAX as u64) as u32,
        resilience: resilience(&o.map).map_err(|e| o.err(e))?,
    };
    let sample = o.read("sample", sample)?.unwrap_or(Some(Duration::from_secs(1)));
    let env = RunEnv {
        exe: ctx.load.exe.clone(),
        per_process: None,
        target_pids: ctx.load.target_pids.clone(),
        sample,
        stop: None,
        builtin_here,
        builtin_flags: vec![],
        events: Some(ctx.load.events.clone()),
        started: None,
        live: None,
    };
    Ok((plan, env))
}

/// Runs a phase on the runtime, blocking the script thread; records and returns it.
fn execute(ctx: &Arc<ScriptCtx>, nc: &NativeCallContext, o: &Opts, plan: PhasePlan, mut env: RunEnv) -> Res<Map> {
    let handle = ctx.bridge.handle().cloned().ok_or_else(|| o.fail("no network access here (check mode)".into()))?;
    if tokio::runtime::Handle::try_current().is_ok() {
        return Err(o.fail("a script must not run on an async runtime thread".into()));
    }
    let stop_signal = ctx.bridge.stop_signal().clone();
    if let Some(r) = stop_signal.reason() {
        return Err(EvalAltResult::ErrorTerminated(r.as_str().into(), nc.call_position()).into());
    }
    // A plan the options make but cannot run (a mix with two requests of one name...).
    plan.validate().map_err(|e| super::bad_input(ctx, nc, e.to_string()))?;
    let actions = o.read("schedule", schedule)?.unwrap_or_default();
    let expected = o.read("expect_errors", expect_errors)?.unwrap_or_default();
    // The console shows the phase's figures while it runs (read from its folded seconds).
    let _shown = ctx.live().is_some().then(|| {
        let live = crate::load::live::PhaseLive::for_plan(&plan);
        env.live = Some(live.clone());
        ctx.show_phase(live)
    });
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stop_tx = Arc::new(stop_tx);
    env.stop = Some(stop_rx);
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    let export = o.read("metrics", metrics_prefix)?;
    let watcher = {
        let (s, stop_tx) = (stop_signal.clone(), stop_tx.clone());
        handle.spawn(async move {
            s.stopped().await;
            let _ = stop_tx.send(true);
        })
    };
    let (started_tx, started_rx) = std::sync::mpsc::channel::<std::time::Instant>();
    if !actions.is_empty() {
        let n = Arc::new(tokio::sync::Notify::new());
        env.started = Some(n.clone());
        handle.spawn(async move {
            n.notified().await;
            let _ = started_tx.send(std::time::Instant::now());
        });
    }
    handle.spawn(async move {
        let _ = done_tx.send(crate::load::run(&plan, env).await);
    });
    // Scheduled actions run here, on the script thread, while the phase runs on the runtime.
    let mut action_error = None;
    let mut outcome = None;
    if !actions.is_empty() {
        if let Ok(t0) = started_rx.recv() {
            for a in actions {
                let wait = (t0 + a.at).saturating_duration_since(std::time::Instant::now());
                match done_rx.recv_timeout(wait) {
                    Ok(r) => {
                        outcome = Some(r);
                        break;
                    }
                    Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
                    Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                }
                if let Err(e) = a.run.call_within_context::<Dynamic>(nc, ()) {
                    // The phase stops; its partial result is still recorded.
                    let _ = stop_tx.send(true);
                    action_error = Some(e);
                    break;
                }
            }
        }
    }
    let outcome = match outcome {
        Some(r) => Ok(r),
        None => done_rx.recv(),
    };
    watcher.abort();
    let mut result = match outcome {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => return Err(host_error(nc, e.to_string())),
        Err(_) => return Err(o.fail("the runtime shut down while the phase ran".into())),
    };
    if let Some(p) = &export {
        result.export = Some(p.clone());
    }
    let site = site_string(nc);
    for m in result.exported_metrics() {
        ctx.rec()
            .metric(&m.name, m.value, Some(m.unit.to_string()), m.better, m.samples, &site)
            .map_err(|e| host_error(nc, e))?;
    }
    let map = result_map(&result);
    if !ctx.quiet {
        ctx.log(&summary_line(&result, &expected));
        if let Some(l) = crate::load::bottleneck::log_line(&result) {
            ctx.log(&l);
        }
    }
    ctx.rec().phase(result);
    if let Some(e) = action_error {
        return Err(e);
    }
    if let Some(r) = stop_signal.reason() {
        return Err(EvalAltResult::ErrorTerminated(r.as_str().into(), nc.call_position()).into());
    }
    Ok(map)
}

/// What an error kind means, as the log line says it: `rpc_-32000` is load the server shed.
fn error_label(kind: &str) -> String {
    match kind {
        "rpc_-32000" => "shed -32000 overloaded".into(),
        "http_503" => "shed HTTP 503".into(),
        "http_429" => "rate limited HTTP 429".into(),
        "rpc_-32700" => "-32700 parse error".into(),
        "rpc_-32600" => "-32600 invalid request".into(),
        "rpc_-32601" => "-32601 method not found".into(),
        "rpc_-32602" => "-32602 invalid params".into(),
        "rpc_-32603" => "-32603 internal error".into(),
        "rpc_-32002" => "-32002 resource not found".into(),
        "worker_lost" => "lost with a worker process".into(),
        k => match (k.strip_prefix("rpc_"), k.strip_prefix("http_")) {
            (Some(code), _) => format!("JSON-RPC {code}"),
            (_, Some(status)) => format!("HTTP {status}"),
            _ => k.to_string(),
        },
    }
}

/// `283,705 errors (shed -32000 overloaded: expected)`, or with several kinds each with
/// its count: `1,203 errors (1,200 shed -32000 overloaded; 3 transport)`.
fn errors_text(errors: &std::collections::BTreeMap<String, u64>, expected: &[String]) -> String {
    let total: u64 = errors.values().sum();
    let mut kinds: Vec<(&String, &u64)> = errors.iter().filter(|(_, n)| **n > 0).collect();
    if kinds.is_empty() {
        return format!("{} errors", human::int(total));
    }
    kinds.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    let one = kinds.len() == 1;
    let parts: Vec<String> = kinds
        .iter()
        .map(|(k, n)| {
            let count = if one { String::new() } else { format!("{} ", human::int(**n)) };
            let exp = if expected.iter().any(|e| e == *k) { ": expected" } else { "" };
            format!("{count}{}{exp}", error_label(k))
        })
        .collect();
    format!("{} errors ({})", human::int(total), parts.join("; "))
}

/// What the server asked, by method: `sampling/createMessage 12 answered; roots/list 3 refused`.
fn server_requests_text(asked: &std::collections::BTreeMap<String, RequestCounts>) -> String {
    let parts: Vec<String> = asked
        .iter()
        .map(|(method, c)| match (c.answered, c.refused) {
            (a, 0) => format!("{method} {} answered", human::int(a)),
            (0, r) => format!("{method} {} refused", human::int(r)),
            (a, r) => format!("{method} {} answered, {} refused", human::int(a), human::int(r)),
        })
        .collect();
    parts.join("; ")
}

/// One line per phase for the log, its figures as a person reads them: exact counts,
/// three significant figures for rates and times.
fn summary_line(r: &PhaseResult, expected: &[String]) -> String {
    let mut s = if r.model == ModelKind::Connect {
        format!(
            "load {} (connect): {} of {} sessions in {} ({}/s), connect p50 {}, p99 {}",
            r.name,
            human::int(r.connect.ok),
            human::int(r.connect.attempted),
            human::ms(r.connect.duration_s * 1000.0),
            human::count(r.connect.rate),
            human::ms(r.connect.latency.p50),
            human::ms(r.connect.latency.p99)
        )
    } else {
        format!(
            "load {} ({}): {} sent, {} ok, {}, {} timeouts, {} req/s, p50 {}, p99 {}",
            r.name,
            r.model,
            human::int(r.counts.sent),
            human::int(r.counts.ok),
            errors_text(&r.counts.errors, expected),
            human::int(r.counts.timeouts),
            human::count(r.throughput),
            human::ms(r.latency.p50),
            human::ms(r.latency.p99)
        )
    };
    if r.dropped > 0 {
        s.push_str(&format!(", {} dropped", human::int(r.dropped)));
    }
    if let Some(p) = &r.ping {
        let (ok, of, p99) = (human::int(p.ok), human::int(p.attempted), human::ms(p.latency.p99));
        s.push_str(&format!(", ping {ok} of {of} ok (p99 {p99})"));
    }
    if !r.server_requests.is_empty() {
        s.push_str(&format!(", server requests: {}", server_requests_text(&r.server_requests)));
    }
    if let Some(res) = &r.resources {
        s.push_str(&format!(", mcpscript rss {}", human::bytes(res.mcpscript_peak_rss_bytes as f64)));
    }
    if r.status != PhaseStatus::Completed {
        s.push_str(&format!(" [{}]", r.status));
    }
    s
}

/// The result as a script map: everything except the serialised histograms.
pub fn result_map(r: &PhaseResult) -> Map {
    let mut v = serde_json::to_value(r).unwrap_or(Value::Null);
    strip_histograms(&mut v);
    value::to_dynamic(&v).try_cast::<Map>().unwrap_or_default()
}

fn strip_histograms(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.remove("histogram");
            m.remove("hist");
            m.values_mut().for_each(strip_histograms);
        }
        Value::Array(a) => a.iter_mut().for_each(strip_histograms),
        _ => {}
    }
}

pub fn register(engine: &mut Engine, ctx: &Arc<ScriptCtx>) {
    let mut m = Module::new();

    let c = ctx.clone();
    module_fn(engine, &mut m, "closed", &["options"], &[
        " A closed model: `sessions` sessions (default 10) each send back to back until `duration` (\"10s\")",
        " has passed or `iterations` requests (shared by all sessions) were sent; `think` (\"100ms\") pauses",
        " between requests. Latency is service time. E.g.",
        " `load::closed(#{sessions: 100, duration: \"10s\", mix: [#{tool: \"echo\", arguments: #{message: \"hi\"}, weight: 80},",
        " #{method: \"tools/list\", weight: 15}, #{method: \"ping\", weight: 5}]})`.",
    ], move |nc: NativeCallContext, options: Map| -> Res<Map> {
        let o = Opts::new(&c, &nc, "closed", options)?;
        let total = o.read("duration", duration)?;
        let iterations = o.read("iterations", whole)?;
        let sessions = o.read("sessions", whole)?.unwrap_or(10);
        let think = o.read("think", duration)?;
        let model = Model::Closed { sessions, duration: total, iterations, think };
        let (plan, env) = common(&c, &o, model, "closed")?;
        execute(&c, &nc, &o, plan, env)
    });

    let c = ctx.clone();
    module_fn(
        engine,
        &mut m,
        "open",
        &["options"],
        &[
            " An open model at a constant arrival rate: `rate` requests per second for `duration`, spread",
            " round-robin over `sessions` sessions (default 100). Latency is timed from each request's intended",
            " send time, so a stalled server shows in the percentiles. An arrival finding `max_inflight`",
            " requests in flight (default: 10 s worth of the rate, at least 100) is dropped and counted in `dropped`.",
        ],
        move |nc: NativeCallContext, options: Map| -> Res<Map> {
            let o = Opts::new(&c, &nc, "open", options)?;
            // Both are there: Opts::new checked.
            let rate = o.read("rate", number)?.unwrap_or_default();
            let duration = o.read("duration", duration)?.unwrap_or_default();
            let model = Model::Open {
                sessions: o.read("sessions", whole)?.unwrap_or(100),
                stages: vec![Stage { duration, rate }],
                start_rate: rate,
                max_inflight: o.read("max_inflight", whole)?.unwrap_or(default_inflight(rate)),
                arrival_offset: 0.0,
            };
            let (plan, env) = common(&c, &o, model, "open")?;
            execute(&c, &nc, &o, plan, env)
        },
    );

    let c = ctx.clone();
    module_fn(
        engine,
        &mut m,
        "ramp",
        &["options"],
        &[
            " An open model whose arrival rate follows `stages`: `[#{duration: \"10s\", rate: 100}, ...]`, each moving",
            " linearly from the previous rate (`start_rate` for the first, default 0) to its own, like k6's",
            " ramping-arrival-rate. Other options as `load::open`.",
        ],
        move |nc: NativeCallContext, options: Map| -> Res<Map> {
            let o = Opts::new(&c, &nc, "ramp", options)?;
            let stages = o.read("stages", stages)?.unwrap_or_default();
            let start_rate = o.read("start_rate", number)?.unwrap_or(0.0);
            let peak = stages.iter().map(|s| s.rate).fold(start_rate, f64::max);
            let model = Model::Open {
                sessions: o.read("sessions", whole)?.unwrap_or(100),
                start_rate,
                stages,
                max_inflight: o.read("max_inflight", whole)?.unwrap_or(default_inflight(peak)),
                arrival_offset: 0.0,
            };
            let (plan, env) = common(&c, &o, model, "ramp")?;
            execute(&c, &nc, &o, plan, env)
        },
    );

    let c = ctx.clone();
    module_fn(
        engine,
        &mut m,
        "connect",
        &["options"],
        &[
            " A connect phase: opens `sessions` sessions at `rate` sessions per second (0 or absent: as fast as",
            " possible), timing connect + initialize of each (the result's latency is connect latency), holds",
            " them open for `hold` (\"10s\"), then closes them. `connect.ok`, `connect.failed` and `connect.rate`",
            " say how it went; the timeline shows open sessions per second. `ping_sample: K` (default 0: none):",
            " once all sessions are open, one `ping` goes out on each of K of the open sessions (at most all),",
            " chosen evenly across them and sent together, within `request_timeout`; the pings take part of `hold`.",
            " The result's `ping` then says `attempted`, `ok`, `failed`, `errors` (by kind: `transport` for a",
            " session the server dropped, `timeout`, ...) and `latency` (ms, answered pings: `p50 p99 max mean`...).",
            " Over worker processes each pings its share of the sample once its own sessions are open, and",
            " the results are merged. E.g.",
            " `load::connect(#{sessions: 1000, hold: \"5s\", ping_sample: 100})`.",
        ],
        move |nc: NativeCallContext, options: Map| -> Res<Map> {
            let o = Opts::new(&c, &nc, "connect", options)?;
            let model = Model::Connect {
                sessions: o.read("sessions", whole)?.unwrap_or_default(),
                hold: o.read("hold", duration)?.unwrap_or(Duration::ZERO),
                ping_sample: o.read("ping_sample", whole)?.unwrap_or(0),
            };
            let (mut plan, env) = common(&c, &o, model, "connect")?;
            if let Some(r) = o.read("rate", number)? {
                plan.connect_rate = r;
            }
            execute(&c, &nc, &o, plan, env)
        },
    );

    engine.register_static_module("load", m.into());
}

/// Default in-flight cap: ten seconds' worth of arrivals, at least 100.
fn default_inflight(rate: f64) -> u64 {
    ((rate * 10.0).ceil() as u64).max(100)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rhai::Array;
    use serde_json::json;
    use std::collections::BTreeMap;

    fn problems(phase: &str, src: &[(&str, Dynamic)]) -> Vec<String> {
        let map: Map = src.iter().map(|(k, v)| ((*k).into(), v.clone())).collect();
        let given: Vec<&str> = src.iter().map(|(k, _)| *k).collect();
        check_options(phase, &given, &map).into_iter().map(|p| p.message).collect()
    }

    #[test]
    fn options_are_checked_by_one_validator_each() {
        let s = |t: &str| Dynamic::from(t.to_string());
        assert_eq!(
            problems("closed", &[("duration", s("5 parsecs"))]),
            ["duration: invalid duration '5 parsecs': unknown unit (expected a number with a unit: ns, us, ms, s, m or h, e.g. \"250ms\")"]
        );
        let p = problems("closed", &[("sesions", Dynamic::from(2_i64)), ("duration", s("1s"))]);
        assert!(p[0].starts_with("unknown option 'sesions' (did you mean sessions?); options are name,"), "{p:?}");
        assert_eq!(
            problems("closed", &[("duration", s("1s")), ("mix", Dynamic::from(Array::new()))]),
            ["mix is empty: give at least one request, e.g. [#{method: \"ping\"}]"]
        );
        assert_eq!(
            problems("open", &[("rate", Dynamic::from(0_i64)), ("duration", s("1s"))]),
            ["rate must be a number above 0, not 0"]
        );
        // 0 means as fast as possible to a connect phase.
        assert!(problems("connect", &[("rate", Dynamic::from(0_i64)), ("sessions", Dynamic::from(5_i64))]).is_empty());
        assert_eq!(problems("connect", &[]), ["needs sessions"]);
        assert_eq!(problems("open", &[("rate", Dynamic::from(5_i64))]), ["needs a duration, e.g. \"30s\""]);
        assert_eq!(
            problems("closed", &[("iterations", Dynamic::from(0_i64))]),
            ["iterations must be at least 1, not 0"]
        );
        // An option whose value is not known (computed, in `mcpscript check`) is only named.
        assert!(check_options("open", &["rate", "duration"], &Map::new()).is_empty());
        assert!(check_options("nothing", &["x"], &Map::new()).is_empty());
    }

    #[test]
    fn canned_answers_are_read_like_connects() {
        let s = |t: &str| Dynamic::from(t.to_string());
        let map = |pairs: &[(&str, Dynamic)]| -> Dynamic {
            Dynamic::from_map(pairs.iter().map(|(k, v)| ((*k).into(), v.clone())).collect::<Map>())
        };
        let closed = |extra: (&str, Dynamic)| problems("closed", &[("iterations", Dynamic::from(1_i64)), extra]);
        let sampling = map(&[("role", s("assistant")), ("content", map(&[("type", s("text")), ("text", s("ok"))]))]);
        let roots: Array = vec![s("file:///work"), map(&[("uri", s("file:///tmp")), ("name", s("scratch"))])];
        for ok in [("on_sampling", sampling.clone()), ("on_elicitation", map(&[])), ("roots", roots.clone().into())] {
            assert!(closed(ok.clone()).is_empty(), "{}: {:?}", ok.0, closed(ok.clone()));
        }
        let p = closed(("on_sampling", s("yes")));
        assert!(p[0].starts_with("on_sampling must be a map (the result every request is answered with, e.g. #{role:"));
        assert!(p[0].ends_with("not string"), "{p:?}");
        let f = Dynamic::from(rhai::FnPtr::new("answer").unwrap());
        let p = closed(("on_elicitation", f));
        assert!(p[0].starts_with("on_elicitation: a function answers only in connect() sessions"), "{p:?}");
        let p = closed(("roots", Dynamic::from(vec![Dynamic::from(1_i64)])));
        assert_eq!(p, ["roots: each root must be a URI string or a map with a uri, not 1"]);
        let m: Map = [("on_sampling".into(), sampling), ("roots".into(), roots.into())].into_iter().collect();
        let a = answers(&m).unwrap();
        assert_eq!(a.sampling.unwrap()["content"]["text"], "ok");
        assert_eq!(a.elicitation, None);
        assert_eq!(
            a.roots.unwrap(),
            [json!({"uri": "file:///work"}), json!({"uri": "file:///tmp", "name": "scratch"})]
        );
    }

    #[test]
    fn protocol_version_is_read_like_connects() {
        let closed = |v: Dynamic| problems("closed", &[("iterations", Dynamic::from(1_i64)), ("protocol_version", v)]);
        for ok in ["2026-07-28", "2025-11-25", "2024-11-05"] {
            assert!(closed(Dynamic::from(ok.to_string())).is_empty(), "{ok}");
        }
        let p = closed(Dynamic::from("2099-01-01".to_string()));
        assert_eq!(p.len(), 1);
        assert!(
            p[0].starts_with(
                "protocol_version \"2099-01-01\" is not one mcpscript speaks; it speaks 2026-07-28, 2025-11-25"
            ),
            "{p:?}"
        );
        let p = closed(Dynamic::from(2026_i64));
        assert!(p[0].starts_with("protocol_version must be a string"), "{p:?}");
    }

    #[test]
    fn errors_are_counted_by_kind_with_what_they_mean() {
        let shed = BTreeMap::from([("rpc_-32000".to_string(), 283_705)]);
        assert_eq!(errors_text(&shed, &[]), "283,705 errors (shed -32000 overloaded)");
        assert_eq!(errors_text(&shed, &["rpc_-32000".into()]), "283,705 errors (shed -32000 overloaded: expected)");
        let mixed = BTreeMap::from([("rpc_-32000".to_string(), 1200), ("transport".to_string(), 3)]);
        assert_eq!(errors_text(&mixed, &[]), "1,203 errors (1,200 shed -32000 overloaded; 3 transport)");
        assert_eq!(errors_text(&BTreeMap::new(), &[]), "0 errors");
        assert_eq!(error_label("rpc_-32099"), "JSON-RPC -32099");
        assert_eq!(error_label("http_502"), "HTTP 502");
    }

    #[test]
    fn the_phase_line_rounds_to_three_significant_figures() {
        let mut r = PhaseResult {
            name: "baseline".into(),
            model: ModelKind::Closed,
            status: PhaseStatus::Completed,
            ..Default::default()
        };
        r.counts.sent = 218_171;
        r.counts.ok = 218_171;
        r.throughput = 72718.41440950964;
        r.latency.p50 = 0.13;
        r.latency.p99 = 20.524853999999998;
        assert_eq!(
            summary_line(&r, &[]),
            "load baseline (closed): 218,171 sent, 218,171 ok, 0 errors, 0 timeouts, 72.7K req/s, p50 130 us, p99 20.5 ms"
        );
        let asked = |received, answered, refused| RequestCounts { received, answered, refused };
        r.server_requests =
            [("sampling/createMessage".into(), asked(1200, 1200, 0)), ("roots/list".into(), asked(3, 1, 2))].into();
        assert!(
            summary_line(&r, &[]).ends_with(
                "p99 20.5 ms, server requests: roots/list 1 answered, 2 refused; sampling/createMessage 1,200 answered"
            ),
            "{}",
            summary_line(&r, &[])
        );
    }
}
