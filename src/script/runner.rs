//! Runs a compiled [`Script`] on a script thread: builds the run's engine and context, arms
//! the watchdog (timeout, outside cancellation), evaluates the shared AST, closes what the
//! script left open, and turns the outcome into a [`ScenarioResult`]. A script error never
//! escapes as a Rust error: it becomes the result's `error` with kind, position and stack.

use super::bridge::{Bridge, BridgeMode, LocalRuntime, StopReason, StopSignal};
use super::compile::Script;
use super::ctx::{CtxConfig, ScriptCtx};
use super::diag;
use super::engine;
use super::params::Params;
use super::results::{ErrorReport, ScenarioResult, ScriptErrorKind, Status};
use crate::client::{ClientOptions, Target};
use rhai::Scope;
use std::sync::Arc;
use std::time::Duration;
use tokio::runtime::Handle;

/// Stack size of script threads: deep Rhai recursion (up to the call-depth limit) in
/// debug builds needs more than the default 2 MiB.
const SCRIPT_STACK: usize = 32 * 1024 * 1024;

/// How to run a script.
#[derive(Clone)]
pub struct RunOptions {
    /// What `connect()` connects to (a real URL: start the built-in server first).
    pub target: Target,
    pub client: Arc<ClientOptions>,
    pub params: Params,
    pub seed: u64,
    /// Print no log lines.
    pub quiet: bool,
    /// Stop the script after this long.
    pub timeout: Option<Duration>,
    /// Stops the script when triggered (Ctrl-C); shared by every script of a run.
    pub interrupt: Option<Arc<StopSignal>>,
    /// Segment, built-in server and target processes, for load phases.
    pub load: crate::load::LoadContext,
    /// How the script thread reaches the runtime (default: the fastest that works).
    pub bridge: BridgeMode,
    /// The script may spawn `stdio:` targets other than `target` (`--allow-spawn`).
    pub allow_spawn: bool,
}

impl RunOptions {
    pub fn new(target: Target) -> RunOptions {
        RunOptions {
            target,
            client: Arc::new(ClientOptions::default()),
            params: Params::default(),
            seed: 0,
            quiet: true,
            timeout: None,
            interrupt: None,
            load: crate::load::LoadContext::default(),
            bridge: BridgeMode::Auto,
            allow_spawn: false,
        }
    }
}

/// Runs `script` on the current thread, which must not be a runtime worker; I/O goes to
/// the runtime behind `handle`.
pub fn run(script: &Script, opts: &RunOptions, handle: &Handle) -> ScenarioResult {
    let stop = StopSignal::new();
    let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
    {
        let (stop, interrupt, timeout) = (stop.clone(), opts.interrupt.clone(), opts.timeout);
        handle.spawn(async move {
            let expire = async {
                match timeout {
                    Some(t) => tokio::time::sleep(t).await,
                    None => std::future::pending().await,
                }
            };
            let outside = async {
                match interrupt {
                    Some(i) => i.stopped().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = expire => { stop.trigger(StopReason::Timeout); }
                _ = outside => { stop.trigger(StopReason::Cancelled); }
                _ = done_rx => {}
            }
        });
    }
    let ctx = ScriptCtx::new(
        CtxConfig {
            name: script.name.clone(),
            target: Some(opts.target.clone()),
            client: opts.client.clone(),
            params: opts.params.clone(),
            seed: opts.seed,
            quiet: opts.quiet,
            load: opts.load.clone(),
            allow_spawn: opts.allow_spawn,
        },
        local_bridge(Bridge::with_mode(handle.clone(), stop.clone(), opts.bridge), opts.bridge),
    );
    let engine = engine::for_run(&script.limits, &script.search, &ctx);
    let mut scope = Scope::new();
    let outcome =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| engine.run_ast_with_scope(&mut scope, &script.ast)));
    ctx.close_resources();
    drop(scope);
    let _ = done_tx.send(());

    let rec = ctx.take_recorder();
    let error = match outcome {
        Ok(Ok(())) => None,
        Ok(Err(e)) if rec.skipped().is_some() && super::bindings::is_skip(&e) => None,
        Ok(Err(e)) => {
            let mut r = diag::report(&e, &script.file, &script.search.sources, &script.catalog);
            if r.kind == ScriptErrorKind::Runtime && rec.failed_with() == Some(r.message.as_str()) {
                r.kind = ScriptErrorKind::Fail;
            }
            // A parameter error, or a host function's bad argument or option: exit 2.
            if r.kind == ScriptErrorKind::Runtime && rec.bad_input_message() == Some(r.message.as_str()) {
                r.kind = ScriptErrorKind::Param;
            }
            if r.kind == ScriptErrorKind::Limit && r.message.contains("operation limit") {
                r.message = format!(
                    "the script exceeded its limit of {} operations and was stopped: a runaway loop?",
                    script.limits.max_operations
                );
            }
            Some(r)
        }
        Err(panic) => {
            let what =
                panic.downcast_ref::<&str>().map(|s| s.to_string()).or_else(|| panic.downcast_ref::<String>().cloned());
            Some(ErrorReport {
                kind: ScriptErrorKind::Runtime,
                message: format!(
                    "internal error in mcpscript (please report): {}",
                    what.unwrap_or_else(|| "panic".into())
                ),
                file: script.file.clone(),
                line: None,
                column: None,
                stack: vec![],
                hint: None,
            })
        }
    };
    let stopped = match error.as_ref().map(|e| e.kind) {
        Some(ScriptErrorKind::Timeout) => Some(Status::Timeout),
        Some(ScriptErrorKind::Cancelled) => Some(Status::Cancelled),
        _ => None,
    };
    rec.finish(script.file.clone(), opts.seed, error, stopped)
}

/// Gives the bridge the script thread's own runtime for its sessions, unless the mode says
/// otherwise (or the runtime cannot be built: then sessions live on the shared runtime).
fn local_bridge(bridge: Bridge, mode: BridgeMode) -> Bridge {
    match mode {
        BridgeMode::Auto | BridgeMode::Local => match LocalRuntime::new() {
            Ok(local) => bridge.with_local(local),
            Err(_) => bridge,
        },
        BridgeMode::Drive | BridgeMode::Spawn => bridge,
    }
}

/// Runs `script` on a new script thread.
pub fn spawn(
    script: Arc<Script>,
    opts: RunOptions,
    handle: Handle,
) -> std::io::Result<std::thread::JoinHandle<ScenarioResult>> {
    std::thread::Builder::new()
        .name(format!("script {}", script.name))
        .stack_size(SCRIPT_STACK)
        .spawn(move || run(&script, &opts, &handle))
}
