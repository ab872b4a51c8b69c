//! [`ScriptCtx`]: everything the bindings of one running script share: the bridge to the
//! runtime, the run's target and client options, `--set` parameters, the result recorder,
//! a seeded random generator, and the resources (sessions, later proxies and load tasks)
//! that must be closed when the script ends. One per script run; bindings hold an `Arc`.

use super::bridge::Bridge;
use super::params::Params;
use super::recorder::Recorder;
use crate::client::{ClientOptions, Target};
use rand::{rngs::StdRng, SeedableRng};
use std::io::Write;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

/// Something a script opened that must be released when the script ends.
pub trait Resource: Send + Sync {
    /// Releases it (idempotent). Called on the script thread after the script ended.
    fn close(&self, bridge: &Bridge);
}

/// Prune dead resource handles every this many registrations.
const PRUNE_EVERY: usize = 64;

pub struct ScriptCtx {
    /// The scenario's name (the script's file stem).
    pub name: String,
    pub bridge: Bridge,
    /// The run's target; `None` in an engine that only compiles or documents.
    pub target: Option<Target>,
    pub client: Arc<ClientOptions>,
    pub params: Params,
    /// Print nothing (log lines are still kept in the result).
    pub quiet: bool,
    pub seed: u64,
    /// What the load engine needs to know about the run (segment, built-in server).
    pub load: crate::load::LoadContext,
    rec: Mutex<Recorder>,
    rng: Mutex<StdRng>,
    resources: Mutex<Vec<Weak<dyn Resource>>>,
}

/// What a script run needs to know besides its script.
#[derive(Clone)]
pub struct CtxConfig {
    pub name: String,
    pub target: Option<Target>,
    pub client: Arc<ClientOptions>,
    pub params: Params,
    pub seed: u64,
    pub quiet: bool,
    pub load: crate::load::LoadContext,
}

impl ScriptCtx {
    pub fn new(cfg: CtxConfig, bridge: Bridge) -> Arc<ScriptCtx> {
        Arc::new(ScriptCtx {
            rec: Mutex::new(Recorder::new(&cfg.name)),
            rng: Mutex::new(StdRng::seed_from_u64(cfg.seed)),
            name: cfg.name,
            bridge,
            target: cfg.target,
            client: cfg.client,
            params: cfg.params,
            quiet: cfg.quiet,
            seed: cfg.seed,
            load: cfg.load,
            resources: Mutex::new(Vec::new()),
        })
    }

    /// A context without runtime or target: for engines that compile, check or document.
    pub fn detached() -> Arc<ScriptCtx> {
        ScriptCtx::new(
            CtxConfig {
                name: "check".into(),
                target: None,
                client: Arc::new(ClientOptions::default()),
                params: Params::default(),
                seed: 0,
                quiet: true,
                load: crate::load::LoadContext::default(),
            },
            Bridge::detached(),
        )
    }

    /// The result recorder. A panic while it was held cannot corrupt it beyond a partial
    /// update, so a poisoned lock is used as is.
    pub fn rec(&self) -> MutexGuard<'_, Recorder> {
        self.rec.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn rng(&self) -> MutexGuard<'_, StdRng> {
        self.rng.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A seed for something random the script starts (a proxy), drawn from the run's seed.
    pub fn rng_seed(&self) -> u64 {
        rand::Rng::random(&mut *self.rng())
    }

    /// Takes the recorder out (the runner does this once the script ended).
    pub fn take_recorder(&self) -> Recorder {
        std::mem::replace(&mut *self.rec(), Recorder::new(&self.name))
    }

    /// Prints a log line (unless quiet) and keeps it in the result.
    pub fn log(&self, message: &str) {
        let at = {
            let mut rec = self.rec();
            rec.log(message);
            rec.now_ms()
        };
        if !self.quiet {
            // A closed stderr must not end the script.
            let _ = writeln!(std::io::stderr().lock(), "[{:>8.3}s] {message}", at / 1000.0);
        }
    }

    /// Registers a resource to close when the script ends.
    pub fn track(&self, r: Weak<dyn Resource>) {
        let mut list = self.resources.lock().unwrap_or_else(|e| e.into_inner());
        if list.len() % PRUNE_EVERY == PRUNE_EVERY - 1 {
            list.retain(|w| w.strong_count() > 0);
        }
        list.push(r);
    }

    /// Closes every resource still open. Called once the script ended.
    pub fn close_resources(&self) {
        let list = std::mem::take(&mut *self.resources.lock().unwrap_or_else(|e| e.into_inner()));
        for r in list.iter().filter_map(Weak::upgrade) {
            r.close(&self.bridge);
        }
    }
}

/// How long closing one resource may take when a script ends.
pub const CLOSE_LIMIT: Duration = Duration::from_secs(2);
