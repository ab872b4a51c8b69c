//! The chaos namespace: `chaos::proxy(target, faults)` starts a fault-injecting proxy
//! (`crate::chaos::Proxy`, the custom type `Proxy`) whose `target` routes through it;
//! faults are added, changed and removed while load runs, and its counters read back.
//! `chaos::kill()`, `stop`, `suspend`, `resume`, `restart` and `wait_ready` act on the run's
//! managed target (`crate::managed`: the built-in server as child processes); for any
//! other target they refuse with an explanation. Every action that can break connections
//! (kill, stop, suspend, a restart of a running server, a fault) is marked on the run's
//! event clock, so a load phase running at the time reports the recovery from it.

use super::{bad_input, bridge_error, duration_arg, host_error, module_fn, Namespace};
use crate::chaos::{Fault, FaultId, Proxy};
use crate::client::Target;
use crate::managed::{ManagedError, Which};
use crate::script::bridge::Bridge;
use crate::script::ctx::{Resource, ScriptCtx, CLOSE_LIMIT};
use crate::script::value;
use rhai::{Array, Dynamic, Engine, EvalAltResult, Map, Module, NativeCallContext};
use std::sync::{Arc, Mutex};

pub const NAMESPACE: Namespace = Namespace {
    name: "chaos",
    doc: "Fault injection. `chaos::proxy(target, faults)` starts a user-space proxy in front of a tcp://, \
          http://, sse+http:// or ws:// target and returns a `Proxy`; point sessions or load phases at \
          `proxy.target`. A fault is a string `NAME:key=value,...` or a map `#{type: NAME, key: value}`: \
          TCP level `latency` (latency, jitter), `bandwidth` (rate bytes/s), `slow_close` (delay), `timeout` \
          (black hole), `reset_peer`, `slicer`, `limit_data` (bytes), `loss` (probability, rto), \
          `drop_connection` (probability, min_messages/max_messages); message level `drop`, `corrupt`, \
          `truncate`, `duplicate`, `delay` (probability). Every fault takes `toxicity` (fraction of \
          connections, default 1) and `direction` (`upstream`, `downstream`, `both`). A duration needs its \
          unit (`latency=100ms`, `#{type: \"latency\", latency: \"100ms\"}`); the one exception is a map in \
          Toxiproxy's shape, `#{type: \"latency\", stream: \"upstream\", attributes: #{latency: 100}}`, whose \
          bare numbers are milliseconds as in Toxiproxy's API. Faults change while \
          load runs (`add`, `update`, `remove`, `clear`); `stats()` says what the proxy did. \
          `chaos::kill()`, `stop()`, `suspend()`, `resume()`, `restart()` (optionally for one worker) and \
          `wait_ready(timeout)` act on the run's managed target: the built-in server, which mcpscript \
          starts as child processes when a script uses `chaos::` (`--builtin-workers N`), or a server \
          command declared with `mcpscript run --server 'COMMAND' --target URL`; any other target is \
          refused with the reason. Run them during a load phase with its `schedule` option; the phase result \
          then carries `recovery` (see `load`).",
    register,
};

type Res<T> = Result<T, Box<EvalAltResult>>;

/// The script's handle on one proxy. Cloning shares it.
#[derive(Clone)]
pub struct ScriptProxy(Arc<ProxySlot>);

pub struct ProxySlot {
    target: String,
    upstream: String,
    proxy: Mutex<Option<Proxy>>,
}

impl ProxySlot {
    fn with<T>(&self, nc: &NativeCallContext, what: &str, f: impl FnOnce(&Proxy) -> T) -> Res<T> {
        let g = self.proxy.lock().unwrap_or_else(|e| e.into_inner());
        match g.as_ref() {
            Some(p) => Ok(f(p)),
            None => Err(host_error(nc, format!("{what}: the proxy in front of {} is closed", self.upstream))),
        }
    }
}

impl Resource for ProxySlot {
    fn close(&self, bridge: &Bridge) {
        let p = self.proxy.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(p) = p {
            let _ = bridge.run_cleanup(
                async move {
                    p.shutdown().await;
                },
                CLOSE_LIMIT,
            );
        }
    }
}

/// A fault from a script value: a string (`drop:probability=0.05`) or a map; a malformed
/// one is bad input (exit 2).
fn fault_of(ctx: &ScriptCtx, nc: &NativeCallContext, what: &str, d: &Dynamic) -> Res<Fault> {
    let r = if let Some(s) = d.read_lock::<rhai::ImmutableString>() {
        Fault::parse(s.as_str())
    } else if d.is_map() {
        let v = value::to_json(d).map_err(|e| bad_input(ctx, nc, format!("{what}: {e}")))?;
        Fault::from_json(&v)
    } else {
        return Err(bad_input(
            ctx,
            nc,
            format!(
                "{what}: a fault is a string like \"latency:latency=100ms\" or a map like #{{type: \"drop\", probability: 0.05}}, not {}",
                value::type_name(d)
            ),
        ));
    };
    r.map_err(|e| bad_input(ctx, nc, format!("{what}: {e}")))
}

fn faults_of(ctx: &ScriptCtx, nc: &NativeCallContext, what: &str, d: &Dynamic) -> Res<Vec<Fault>> {
    if d.is_unit() {
        return Ok(vec![]);
    }
    match d.read_lock::<Array>() {
        Some(a) => a.iter().map(|f| fault_of(ctx, nc, what, f)).collect(),
        None => Ok(vec![fault_of(ctx, nc, what, d)?]),
    }
}

fn stats_map(p: &Proxy) -> Map {
    match serde_json::to_value(p.stats()) {
        Ok(v) => value::to_dynamic(&v).try_cast::<Map>().unwrap_or_default(),
        Err(_) => Map::new(),
    }
}

fn start_proxy(ctx: &Arc<ScriptCtx>, nc: &NativeCallContext, target: &str, faults: &Dynamic) -> Res<ScriptProxy> {
    let what = "chaos::proxy";
    let faults = faults_of(ctx, nc, what, faults)?;
    let t: Target = match target {
        "builtin" => ctx.target.clone().ok_or_else(|| host_error(nc, format!("{what}: no target in this engine")))?,
        s => s.parse().map_err(|e: crate::client::target::TargetError| bad_input(ctx, nc, format!("{what}: {e}")))?,
    };
    ctx.allow_target(&t).map_err(|e| host_error(nc, format!("{what}: {e}")))?;
    for f in &faults {
        f.validate().map_err(|e| bad_input(ctx, nc, format!("{what}: {e}")))?;
    }
    let seed = ctx.rng_seed();
    let up = t.clone();
    let listen = "127.0.0.1:0".parse().map_err(|_| host_error(nc, "chaos::proxy: bad listen address"))?;
    let proxy = ctx
        .bridge
        .run(async move { Proxy::start(&up, listen, seed).await })
        .map_err(|e| bridge_error(nc, what, e))?
        .map_err(|e| host_error(nc, format!("{what}: {e}")))?;
    let through = proxy.target_for(&t).map_err(|e| host_error(nc, format!("{what}: {e}")))?;
    for f in faults {
        let name = f.to_string();
        proxy.add_fault(f).map_err(|e| host_error(nc, format!("{what}: {e}")))?;
        ctx.load.events.mark(format!("fault {name}"));
    }
    let slot =
        Arc::new(ProxySlot { target: through.to_string(), upstream: t.to_string(), proxy: Mutex::new(Some(proxy)) });
    let weak: std::sync::Weak<dyn Resource> = Arc::downgrade(&slot) as std::sync::Weak<dyn Resource>;
    ctx.track(weak);
    Ok(ScriptProxy(slot))
}

/// Which workers an action is for: all, or one by index.
fn which(nc: &NativeCallContext, what: &str, worker: i64) -> Res<Which> {
    usize::try_from(worker)
        .map(Which::Worker)
        .map_err(|_| host_error(nc, format!("{what}: worker must be an index >= 0, got {worker}")))
}

/// What a managed-target action does, on the runtime.
#[derive(Clone, Copy)]
enum Action {
    Kill,
    Stop,
    Suspend,
    Resume,
    Restart,
}

impl Action {
    fn verb(self) -> &'static str {
        match self {
            Action::Kill => "kill",
            Action::Stop => "stop",
            Action::Suspend => "suspend",
            Action::Resume => "resume",
            Action::Restart => "restart",
        }
    }
}

/// Runs `action` on the run's managed target; returns the PIDs it acted on.
fn act(ctx: &Arc<ScriptCtx>, nc: &NativeCallContext, action: Action, w: Which) -> Res<Array> {
    let what = format!("chaos::{}", action.verb());
    let Some(server) = ctx.load.managed.clone() else {
        let target = ctx.target.as_ref().map(|t| t.to_string()).unwrap_or_else(|| "the target".into());
        let e = ManagedError::NotManaged { action: action.verb().into(), target };
        return Err(host_error(nc, format!("{what}: {e}")));
    };
    let label = match w {
        Which::All => format!("{} all", action.verb()),
        Which::Worker(i) => format!("{} worker {i}", action.verb()),
    };
    let events = ctx.load.events.clone();
    let mark = label.clone();
    let pids = ctx
        .bridge
        .run(async move {
            let mut s = server.0.lock().await;
            // Actions that can break connections are marked as they start (sessions notice a
            // kill within microseconds): a phase running now reports the recovery from each.
            // Resuming, or restarting what is not running, breaks nothing and marks nothing,
            // so breaks seen late are still counted against the action that caused them.
            let disrupts = match action {
                Action::Resume => false,
                Action::Restart => s.is_running(w)?,
                _ => true,
            };
            if disrupts {
                events.mark(mark);
            }
            match action {
                Action::Kill => s.kill(w).await,
                Action::Stop => s.stop(w).await,
                Action::Suspend => s.suspend(w),
                Action::Resume => s.resume(w),
                Action::Restart => s.restart(w).await,
            }
        })
        .map_err(|e| bridge_error(nc, &what, e))?
        .map_err(|e| host_error(nc, format!("{what}: {e}")))?;
    if !ctx.quiet {
        ctx.log(&format!("chaos: {label} (pids {pids:?})"));
    }
    Ok(pids.into_iter().map(|p| Dynamic::from_int(p as i64)).collect())
}

pub fn register(engine: &mut Engine, ctx: &Arc<ScriptCtx>) {
    engine.register_type_with_name::<ScriptProxy>("Proxy");
    engine.register_fn("to_string", |p: &mut ScriptProxy| format!("Proxy({} -> {})", p.0.target, p.0.upstream));
    engine.register_fn("to_debug", |p: &mut ScriptProxy| format!("Proxy({} -> {})", p.0.target, p.0.upstream));
    let mut m = Module::new();

    let c = ctx.clone();
    module_fn(
        engine,
        &mut m,
        "proxy",
        &["target", "faults"],
        &[
            " Starts a fault-injecting proxy on 127.0.0.1 in front of `target` (a URL, or \"builtin\" for the",
            " run's target) with `faults` (an array of faults, one fault, or `()`); returns a `Proxy` whose",
            " `target` routes through it. Seeded from `--seed`. E.g.",
            " `let p = chaos::proxy(\"builtin\", [\"latency:latency=100ms\", #{type: \"drop\", probability: 0.05}]);`",
        ],
        move |nc: NativeCallContext, target: &str, faults: Dynamic| -> Res<ScriptProxy> {
            start_proxy(&c, &nc, target, &faults)
        },
    );

    let c = ctx.clone();
    module_fn(
        engine,
        &mut m,
        "proxy",
        &["target"],
        &[" A proxy in front of `target` with no faults yet (add them with `proxy.add(fault)`)."],
        move |nc: NativeCallContext, target: &str| -> Res<ScriptProxy> { start_proxy(&c, &nc, target, &Dynamic::UNIT) },
    );

    let c = ctx.clone();
    module_fn(
        engine,
        &mut m,
        "server",
        &[],
        &[
            " The run's target as mcpscript manages it: `#{managed, target, workers, pids}`. `managed` is",
            " false unless mcpscript started the target (the built-in server when the script uses `chaos::`).",
        ],
        move |nc: NativeCallContext| -> Res<Map> {
            let mut out = Map::new();
            out.insert("target".into(), c.target.as_ref().map(|t| t.to_string()).unwrap_or_default().into());
            match c.load.managed.clone() {
                None => {
                    out.insert("managed".into(), false.into());
                    out.insert("workers".into(), Dynamic::from_int(0));
                    out.insert("pids".into(), Dynamic::from_array(vec![]));
                }
                Some(s) => {
                    let (workers, pids) = c
                        .bridge
                        .run(async move {
                            let mut g = s.0.lock().await;
                            (g.workers(), g.pids())
                        })
                        .map_err(|e| bridge_error(&nc, "chaos::server", e))?;
                    out.insert("managed".into(), true.into());
                    out.insert("workers".into(), Dynamic::from_int(workers as i64));
                    out.insert(
                        "pids".into(),
                        Dynamic::from_array(pids.into_iter().map(|p| Dynamic::from_int(p as i64)).collect()),
                    );
                }
            }
            Ok(out)
        },
    );

    for (action, doc) in [
        (Action::Kill, " SIGKILL: the server dies at once, its connections reset. Returns the PIDs killed."),
        (Action::Stop, " SIGTERM, 5 s to exit, then SIGKILL. Returns the PIDs stopped."),
        (Action::Suspend, " SIGSTOP: the server freezes with its connections open (clients see a stall)."),
        (Action::Resume, " SIGCONT: a suspended server goes on."),
        (Action::Restart, " Stops the server if it runs and starts it again on the same URL; returns once it listens."),
    ] {
        let c = ctx.clone();
        module_fn(
            engine,
            &mut m,
            action.verb(),
            &[],
            &[doc, " Only for the run's managed target (refused, with the reason, for any other)."],
            move |nc: NativeCallContext| -> Res<Array> { act(&c, &nc, action, Which::All) },
        );
        let c = ctx.clone();
        let name = action.verb();
        module_fn(
            engine,
            &mut m,
            name,
            &["worker"],
            &[" The same for one worker process of the built-in server (0-based, see `--builtin-workers`)."],
            move |nc: NativeCallContext, worker: i64| -> Res<Array> {
                let w = which(&nc, &format!("chaos::{name}"), worker)?;
                act(&c, &nc, action, w)
            },
        );
    }

    let c = ctx.clone();
    module_fn(
        engine,
        &mut m,
        "wait_ready",
        &["timeout"],
        &[
            " Waits until a client can connect to the managed target and initialize, at most `timeout`",
            " (\"10s\"); returns how long it took in ms. An error when it is not ready in time.",
        ],
        move |nc: NativeCallContext, timeout: &str| -> Res<f64> {
            let d = duration_arg(&c, &nc, "chaos::wait_ready", timeout)?;
            let Some(server) = c.load.managed.clone() else {
                let target = c.target.as_ref().map(|t| t.to_string()).unwrap_or_default();
                let e = ManagedError::NotManaged { action: "wait for".into(), target };
                return Err(host_error(&nc, format!("chaos::wait_ready: {e}")));
            };
            let took = c
                .bridge
                .run(async move { server.0.lock().await.wait_ready(d).await })
                .map_err(|e| bridge_error(&nc, "chaos::wait_ready", e))?
                .map_err(|e| host_error(&nc, format!("chaos::wait_ready: {e}")))?;
            Ok(took.as_secs_f64() * 1000.0)
        },
    );

    engine.register_static_module("chaos", m.into());

    // Methods of Proxy.
    super::register_getter(engine, "target", &[" The URL that routes through this proxy."], |p: &mut ScriptProxy| {
        p.0.target.clone()
    });
    super::register_getter(engine, "upstream", &[" The target behind the proxy."], |p: &mut ScriptProxy| {
        p.0.upstream.clone()
    });

    let c = ctx.clone();
    super::script_fn!(engine,
    /// Adds a fault now (a string or a map); returns its id for `update` and `remove`.
    "add"(proxy, fault) => move |nc: NativeCallContext, p: &mut ScriptProxy, fault: Dynamic| -> Res<i64> {
        let f = fault_of(&c, &nc, "proxy.add", &fault)?;
        let name = f.to_string();
        let id = p.0.with(&nc, "proxy.add", |px| px.add_fault(f))?.map_err(|e| host_error(&nc, format!("proxy.add: {e}")))?;
        c.load.events.mark(format!("fault {name}"));
        Ok(id.0 as i64)
    });

    let c = ctx.clone();
    super::script_fn!(engine,
    /// Replaces fault `id` with `fault`, effective for the next bytes and messages.
    "update"(proxy, id, fault) => move |nc: NativeCallContext, p: &mut ScriptProxy, id: i64, fault: Dynamic| -> Res<()> {
        let f = fault_of(&c, &nc, "proxy.update", &fault)?;
        p.0.with(&nc, "proxy.update", |px| px.update_fault(FaultId(id.max(0) as u64), f))?
            .map_err(|e| host_error(&nc, format!("proxy.update: {e}")))
    });

    super::script_fn!(engine,
    /// Removes fault `id`.
    "remove"(proxy, id) => move |nc: NativeCallContext, p: &mut ScriptProxy, id: i64| -> Res<()> {
        p.0.with(&nc, "proxy.remove", |px| px.remove_fault(FaultId(id.max(0) as u64)).map(|_| ()))?
            .map_err(|e| host_error(&nc, format!("proxy.remove: {e}")))
    });

    super::script_fn!(engine,
    /// Removes every fault: traffic passes untouched again.
    "clear"(proxy) => move |nc: NativeCallContext, p: &mut ScriptProxy| -> Res<()> {
        p.0.with(&nc, "proxy.clear", |px| px.clear())
    });

    super::script_fn!(engine,
    /// The faults installed now: an array of `#{id, fault}`.
    "faults"(proxy) => move |nc: NativeCallContext, p: &mut ScriptProxy| -> Res<Array> {
        p.0.with(&nc, "proxy.faults", |px| {
            px.faults()
                .into_iter()
                .map(|(id, f)| {
                    let mut m = Map::new();
                    m.insert("id".into(), Dynamic::from_int(id.0 as i64));
                    m.insert("fault".into(), f.to_string().into());
                    Dynamic::from_map(m)
                })
                .collect()
        })
    });

    super::script_fn!(engine,
    /// What the proxy did: `connections`, `messages_seen`, `messages_dropped`, `messages_corrupted`,
    /// `messages_truncated`, `messages_duplicated`, `messages_delayed`, `connections_dropped`,
    /// `connections_reset`, `bytes_upstream`, `bytes_downstream`, ...
    "stats"(proxy) => move |nc: NativeCallContext, p: &mut ScriptProxy| -> Res<Map> {
        p.0.with(&nc, "proxy.stats", stats_map)
    });

    let c = ctx.clone();
    super::script_fn!(engine,
    /// Stops the proxy and closes its connections (also done when the script ends).
    "close"(proxy) => move |p: &mut ScriptProxy| {
        p.0.close(&c.bridge);
    });
}
