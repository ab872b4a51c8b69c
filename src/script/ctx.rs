//! [`ScriptCtx`]: everything the bindings of one running script share: the bridge to the
//! runtime, the run's target and client options, `--set` parameters, the result recorder,
//! a seeded random generator, and the resources (sessions, later proxies and load tasks)
//! that must be closed when the script ends. One per script run; bindings hold an `Arc`.
//!
//! Where a script's log lines go and what the console shows of it while it runs is its
//! [`Live`] entry: a suite's orchestrator makes one per scenario (with the suite's console:
//! progress bars or status lines, times from the run's start, the scenario's name on each
//! line) and installs it on the thread that runs the script; a script run on its own gets a
//! console of its own (`console::progress`).

use super::bridge::Bridge;
use super::params::Params;
use super::recorder::Recorder;
use crate::client::{ClientOptions, Target};
use crate::load::live::PhaseLive;
use crate::util::lock;
use rand::{rngs::StdRng, SeedableRng};
use std::cell::RefCell;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

/// Where the log lines of running scenarios are printed (above any progress bars).
pub trait Console: Send + Sync {
    /// Prints `message` as a log line of scenario `name` (`None`: a lone script, no name),
    /// stamped with the time since the run started, taken while the console is held so
    /// that the printed times never go back.
    fn log(&self, name: Option<&str>, message: &str);

    /// Ends a console a script context started for itself: its display goes away.
    fn finish(&self) {}
}

/// A running scenario as the console shows it: its name, how long it has been running
/// and its limit, what it does now (a stage, a load phase with its live figures).
pub struct Live {
    pub name: String,
    pub timeout: Option<Duration>,
    /// Its log lines carry its name (several scenarios share the console).
    named: bool,
    console: Arc<dyn Console>,
    started: Mutex<Instant>,
    stage: Mutex<Option<String>>,
    phase: Mutex<Option<Arc<PhaseLive>>>,
}

thread_local! {
    /// The scenario the current thread runs (see [`Live::enter`]).
    static CURRENT: RefCell<Option<Arc<Live>>> = const { RefCell::new(None) };
}

impl Live {
    pub fn new(name: &str, timeout: Option<Duration>, named: bool, console: Arc<dyn Console>) -> Arc<Live> {
        Arc::new(Live {
            name: name.to_string(),
            timeout,
            named,
            console,
            started: Mutex::new(Instant::now()),
            stage: Mutex::new(None),
            phase: Mutex::new(None),
        })
    }

    /// Makes this the scenario of scripts started on the current thread until the guard is
    /// dropped, and starts its clock.
    pub fn enter(self: &Arc<Self>) -> LiveScope {
        *lock(&self.started) = Instant::now();
        let prev = CURRENT.with(|c| c.borrow_mut().replace(self.clone()));
        LiveScope { prev }
    }

    /// The scenario installed on the current thread.
    pub fn current() -> Option<Arc<Live>> {
        CURRENT.with(|c| c.borrow().clone())
    }

    /// How long it has been running.
    pub fn elapsed(&self) -> Duration {
        lock(&self.started).elapsed()
    }

    /// The stage it is in (`None`: none).
    pub fn stage(&self) -> Option<String> {
        lock(&self.stage).clone()
    }

    pub fn set_stage(&self, stage: Option<String>) {
        *lock(&self.stage) = stage;
    }

    /// The load phase it runs now.
    pub fn phase(&self) -> Option<Arc<PhaseLive>> {
        lock(&self.phase).clone()
    }

    pub fn set_phase(&self, phase: Option<Arc<PhaseLive>>) {
        *lock(&self.phase) = phase;
    }

    /// Prints a log line of this scenario.
    pub fn log(&self, message: &str) {
        self.console.log(self.named.then_some(self.name.as_str()), message);
    }
}

/// Restores the thread's previous scenario when dropped.
pub struct LiveScope {
    prev: Option<Arc<Live>>,
}

impl Drop for LiveScope {
    fn drop(&mut self) {
        let prev = self.prev.take();
        // The thread may be ending: then there is nothing to restore.
        let _ = CURRENT.try_with(|c| *c.borrow_mut() = prev);
    }
}

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
    /// The run lets the script spawn `stdio:` targets of its own (`--allow-spawn`, a suite's
    /// `allow_spawn: true`); see [`ScriptCtx::allow_target`].
    pub allow_spawn: bool,
    /// What the console shows of this run; `None` when nothing is printed.
    live: Option<Arc<Live>>,
    /// The console was started for this script alone: finished when the script ends.
    own_console: bool,
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
    /// The script may spawn `stdio:` targets other than the run's own.
    pub allow_spawn: bool,
}

impl ScriptCtx {
    pub fn new(cfg: CtxConfig, bridge: Bridge) -> Arc<ScriptCtx> {
        // A suite installs the scenario's entry; a script run alone and not quiet gets a
        // console of its own (a detached engine prints nothing: it has no target).
        let (live, own_console) = match Live::current() {
            Some(l) => (Some(l), false),
            None if !cfg.quiet && cfg.target.is_some() => (Some(crate::console::progress::standalone(&cfg.name)), true),
            None => (None, false),
        };
        Arc::new(ScriptCtx {
            live,
            own_console,
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
            allow_spawn: cfg.allow_spawn,
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
                allow_spawn: false,
            },
            Bridge::detached(),
        )
    }

    /// The sandbox's rule for a target the script is about to open (`connect(url)`, a load
    /// phase's `target`, a chaos proxy's upstream): a `stdio:` target spawns a process, so it
    /// is allowed only when it is the run's own target (from the command line or the suite
    /// file) or the run allows spawning (`--allow-spawn`, a suite's `allow_spawn: true`).
    /// Any other target opens a connection through the API and is allowed. The error says
    /// why, for the binding to raise at the call's position.
    pub fn allow_target(&self, t: &Target) -> Result<(), String> {
        match t {
            Target::Stdio { .. } if !self.allow_spawn && self.target.as_ref() != Some(t) => Err(spawn_refused(t)),
            _ => Ok(()),
        }
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

    /// Prints a log line (unless quiet) and keeps it in the result. The console stamps it
    /// with the time since the run started and, in a suite, the scenario's name.
    pub fn log(&self, message: &str) {
        self.rec().log(message);
        if !self.quiet {
            if let Some(l) = &self.live {
                l.log(message);
            }
        }
    }

    /// What the console shows of this run, if anything.
    pub fn live(&self) -> Option<&Arc<Live>> {
        self.live.as_ref()
    }

    /// Shows the stage the script is in now (after it entered or left one).
    pub fn show_stage(&self) {
        if let Some(l) = &self.live {
            l.set_stage(self.rec().stage_path());
        }
    }

    /// Shows `phase` as what the scenario does until the guard is dropped.
    pub fn show_phase(&self, phase: Arc<PhaseLive>) -> ShownPhase {
        if let Some(l) = &self.live {
            l.set_phase(Some(phase));
        }
        ShownPhase(self.live.clone())
    }

    /// Registers a resource to close when the script ends.
    pub fn track(&self, r: Weak<dyn Resource>) {
        let mut list = self.resources.lock().unwrap_or_else(|e| e.into_inner());
        if list.len() % PRUNE_EVERY == PRUNE_EVERY - 1 {
            list.retain(|w| w.strong_count() > 0);
        }
        list.push(r);
    }

    /// Closes every resource still open. Called once the script ended; a console started
    /// for this script alone ends here too.
    pub fn close_resources(&self) {
        let list = std::mem::take(&mut *self.resources.lock().unwrap_or_else(|e| e.into_inner()));
        for r in list.iter().filter_map(Weak::upgrade) {
            r.close(&self.bridge);
        }
        if let (true, Some(l)) = (self.own_console, &self.live) {
            l.console.finish();
        }
    }
}

impl Drop for ScriptCtx {
    fn drop(&mut self) {
        if let (true, Some(l)) = (self.own_console, &self.live) {
            l.console.finish();
        }
    }
}

/// Clears the scenario's current phase when dropped (see [`ScriptCtx::show_phase`]).
pub struct ShownPhase(Option<Arc<Live>>);

impl Drop for ShownPhase {
    fn drop(&mut self) {
        if let Some(l) = &self.0 {
            l.set_phase(None);
        }
    }
}

/// Why a script may not open `t` (a `stdio:` target other than the run's own).
pub fn spawn_refused(t: &Target) -> String {
    format!(
        "'{t}' would spawn a process: a script may only open the run's own stdio: target (--target, or a \
         suite's target:); run with --allow-spawn (or allow_spawn: true in the suite file) to let it"
    )
}

/// How long closing one resource may take when a script ends.
pub const CLOSE_LIMIT: Duration = Duration::from_secs(2);
