//! Runs a [`SuitePlan`]: a coordinator (the calling thread) asks the [`Scheduler`] what may
//! start, hands scenarios to a pool of worker threads (one per parallel slot; each runs a
//! script with `script::runner::run`, which must not be on a runtime thread), and folds
//! finished ones into the result tree. Scenarios against the built-in target get their own
//! in-process server on a free loopback port (a chaos or failover scenario cannot disturb a
//! neighbour) unless the suite shares one; a scenario with `connections: 0` needs none. A
//! managed `server:` is started first and stopped last. Each scenario has its timeout; the
//! interrupt signal (Ctrl-C) stops running scenarios and nothing new starts; whatever did
//! not run is recorded as skipped or cancelled with the reason. The orchestrator measures
//! itself: scheduling latency and overhead, aggregation time, parallel efficiency, the
//! critical path.

use super::plan::SuitePlan;
use super::requires::{self, Offer};
use super::schedule::{Scheduler, State};
use super::server::SuiteServer;
use crate::client::{ClientOptions, Target};
use crate::console::progress::{self, Progress};
use crate::managed::builtin::{self, Builtin, BuiltinError, BuiltinServer};
use crate::script::ctx::Live;
use crate::script::results::{
    self, Better, CheckKind, CheckResult, Overhead, RunResults, ScenarioResult, ScheduleInfo, Status, SuiteInfo,
};
use crate::script::{runner, RunOptions, Script, StopSignal};
use crate::server::{RunningServer, ServerConfig};
use crate::util::human;
use std::collections::BTreeSet;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};
use tokio::runtime::Handle;

/// Stack of worker threads: deep Rhai recursion in debug builds needs more than 2 MiB.
const WORKER_STACK: usize = 32 * 1024 * 1024;

/// How to run a suite.
#[derive(Clone)]
pub struct RunConfig {
    pub handle: Handle,
    /// Ctrl-C: stops running scenarios; nothing new starts.
    pub interrupt: Arc<StopSignal>,
    pub client: Arc<ClientOptions>,
    pub seed: u64,
    /// No script log lines.
    pub quiet: bool,
    /// A line per scenario start and end on stdout, and the running scenarios on stderr
    /// (bars on a terminal, else a status line every few seconds).
    pub progress: bool,
    /// `--timeout` for every scenario (`Some(None)`: no limit).
    pub timeout: Option<Option<Duration>>,
    pub segment: Option<(u32, u32)>,
    pub target_pids: Vec<u32>,
    /// When the command started, for the start-up overhead.
    pub started: Instant,
    /// Run these scenarios instead of the plan's selection (the watcher's re-runs).
    pub only: Option<BTreeSet<usize>>,
    /// `mcpscript` for server and worker child processes (default: this executable).
    pub exe: Option<std::path::PathBuf>,
    /// Scripts may spawn `stdio:` targets other than the suite's (`--allow-spawn`; the
    /// suite file's `allow_spawn: true` allows it too).
    pub allow_spawn: bool,
}

impl RunConfig {
    pub fn new(handle: Handle) -> RunConfig {
        RunConfig {
            handle,
            interrupt: StopSignal::new(),
            client: Arc::new(ClientOptions::default()),
            seed: 0,
            quiet: true,
            progress: false,
            timeout: None,
            segment: None,
            target_pids: vec![],
            started: Instant::now(),
            only: None,
            exe: None,
            allow_spawn: false,
        }
    }
}

/// A scenario handed to a worker.
struct Job {
    idx: usize,
    script: Arc<Script>,
    opts: RunOptions,
    /// Start this built-in server for it (and stop it after): in this process, or as child
    /// processes the script may kill and restart (it uses `chaos::`, needs a managed target
    /// or asks for several workers).
    own_server: Option<Builtin>,
    /// What the console shows of it; installed on the worker thread while it runs.
    live: Arc<Live>,
}

/// A worker's report.
struct Done {
    idx: usize,
    worker: usize,
    started: Instant,
    finished: Instant,
    result: ScenarioResult,
}

/// A scenario's resources as scheduled. Against a server the scenarios share (yours, or
/// one shared built-in server) a scenario tagged `load` runs alone: two load tests of one
/// server at once measure each other, and a peak measured beside another load is not the
/// server's.
fn scheduled_resources(plan: &SuitePlan, i: usize) -> crate::suite::manifest::Resources {
    let s = &plan.scenarios[i];
    let one_server_each = plan.target == Target::Builtin && !plan.shared_server;
    let load = s.tags.iter().any(|t| t == "load");
    crate::suite::manifest::Resources { exclusive: s.resources.exclusive || (load && !one_server_each), ..s.resources }
}

/// Runs the plan and returns its results (not yet written).
pub fn run(plan: &SuitePlan, cfg: &RunConfig) -> RunResults {
    let started_wall = SystemTime::now();
    let selected = cfg.only.clone().unwrap_or_else(|| plan.selected.clone());
    let n = plan.scenarios.len();
    let workers = plan.parallelism.max(1).min(selected.len().max(1));
    let mut results: Vec<Option<ScenarioResult>> = vec![None; n];
    let resources: Vec<_> = (0..n).map(|i| scheduled_resources(plan, i)).collect();
    let mut infos: Vec<ScheduleInfo> = plan
        .scenarios
        .iter()
        .enumerate()
        .map(|(i, s)| ScheduleInfo {
            manifest: s.manifest.clone(),
            depends_on: plan.graph.deps[i].iter().map(|&d| plan.scenarios[d].name.clone()).collect(),
            tags: s.tags.clone(),
            level: plan.graph.levels[i],
            connections: s.resources.connections,
            exclusive: resources[i].exclusive,
            timeout_ms: timeout_of(plan, cfg, i).map_or(0.0, |d| d.as_secs_f64() * 1000.0),
            worker: None,
            deps_met_ms: None,
            started_ms: None,
            finished_ms: None,
            scheduling_latency_ms: None,
            scheduling_overhead_us: None,
            aggregation_us: None,
            reason: None,
        })
        .collect();

    // Servers the whole run shares.
    let mut managed: Option<SuiteServer> = None;
    let mut setup_error: Option<String> = None;
    if let Some(spec) = &plan.server {
        match SuiteServer::start(spec, &plan.target, &cfg.handle) {
            Ok(m) => managed = Some(m),
            Err(e) => setup_error = Some(format!("the suite's server did not start: {e}")),
        }
    }
    let needs_builtin = |i: usize| plan.target == Target::Builtin && plan.scenarios[i].resources.connections > 0;
    let exe = cfg.exe.clone().or_else(|| std::env::current_exe().ok()).unwrap_or_else(|| "mcpscript".into());
    let mut shared: Option<RunningServer> = None;
    if setup_error.is_none() && plan.shared_server && selected.iter().any(|&i| needs_builtin(i)) {
        match cfg.handle.block_on(builtin::start_in_process(ServerConfig::default())) {
            Ok(s) => shared = Some(s),
            Err(e) => setup_error = Some(format!("the shared built-in server did not start: {e}")),
        }
    }
    let shared_url: Option<Target> = shared.as_ref().and_then(|s| s.url("tcp")).and_then(|u| u.parse().ok());
    let shown_target = match (&plan.target, &shared_url) {
        (Target::Builtin, Some(u)) => format!("builtin (shared, {u})"),
        (Target::Builtin, None) => "builtin (one server per scenario)".to_string(),
        (t, _) => t.to_string(),
    };

    // Workers.
    let (job_tx, job_rx) = mpsc::channel::<Job>();
    let job_rx = Arc::new(Mutex::new(job_rx));
    let (done_tx, done_rx) = mpsc::channel::<Done>();
    let mut threads = Vec::new();
    for w in 0..workers {
        let (rx, tx, handle) = (job_rx.clone(), done_tx.clone(), cfg.handle.clone());
        let t = std::thread::Builder::new()
            .name(format!("suite worker {w}"))
            .stack_size(WORKER_STACK)
            .spawn(move || worker(w, &rx, &tx, &handle));
        match t {
            Ok(t) => threads.push(t),
            Err(e) => setup_error = Some(format!("cannot start a worker thread: {e}")),
        }
    }
    drop(done_tx);

    let mut sched = Scheduler::new(&plan.graph, &selected, resources, workers, plan.budget);
    let t0 = Instant::now();
    let ms = |t: Instant| t.saturating_duration_since(t0).as_secs_f64() * 1000.0;
    let mut deps_met: Vec<Option<Instant>> = vec![None; n];
    for &i in &selected {
        if sched.state(i) == State::Ready {
            deps_met[i] = Some(t0);
        }
    }
    let mut first_dispatch: Option<Instant> = None;
    let mut last_end = t0;
    if let Some(e) = &setup_error {
        eprintln!("error: {e}");
    }
    // The run's console: log lines carry the scenario's name and the time since the run
    // started; the running scenarios show as bars or status lines.
    let width = selected.iter().map(|&i| plan.scenarios[i].name.len()).max().unwrap_or(0);
    let console = Progress::start(progress::Options { started: cfg.started, show: cfg.progress, width });
    let mut lives: Vec<Option<Arc<Live>>> = vec![None; n];
    let mut needs = Needs::default();
    loop {
        while cfg.interrupt.reason().is_none() && setup_error.is_none() {
            let t = Instant::now();
            if let Some(m) = managed.as_mut() {
                m.ensure_running();
            }
            let Some(i) = sched.start_next() else { break };
            let s = &plan.scenarios[i];
            if let Some(why) = needs.unmet(plan, i, managed.is_some(), shared_url.as_ref(), cfg) {
                // Not started: skipped with the reason; its dependents may run.
                let why = format!("skipped before it started: {why}");
                let (ready, _) = sched.finished(i, Status::Skipped);
                for r in ready {
                    deps_met[r] = Some(t);
                }
                if cfg.progress {
                    console.say(&format!("{} {}: {why}", console.status_word(Status::Skipped), s.name));
                }
                infos[i].reason = Some(why.clone());
                results[i] = Some(ScenarioResult::not_run(&s.name, &s.script.file, Status::Skipped, &why));
                continue;
            }
            let workers = s.server.as_ref().and_then(|o| o.workers).unwrap_or(1).max(1);
            let chaos = s.uses_chaos || s.requires.managed || workers > 1;
            let own_server = if needs_builtin(i) && (shared_url.is_none() || s.server.is_some() || chaos) {
                Some(if chaos {
                    Builtin::Processes { exe: exe.clone(), workers, args: serve_args(s.server.as_ref()) }
                } else {
                    Builtin::InProcess(Box::new(server_config(s.server.as_ref())))
                })
            } else {
                None
            };
            let mut target_pids = cfg.target_pids.clone();
            if let Some(m) = &managed {
                target_pids.extend(m.pids());
            }
            let target = match (&plan.target, &shared_url) {
                (Target::Builtin, Some(u)) if own_server.is_none() => u.clone(),
                (t, _) => t.clone(),
            };
            let opts = RunOptions {
                target,
                client: with_suite_headers(&cfg.client, &plan.headers),
                params: s.params.clone(),
                seed: cfg.seed.wrapping_add(i as u64),
                quiet: cfg.quiet,
                timeout: timeout_of(plan, cfg, i),
                interrupt: Some(cfg.interrupt.clone()),
                load: crate::load::LoadContext {
                    segment: cfg.segment,
                    builtin_here: plan.target == Target::Builtin,
                    target_pids,
                    exe: cfg.exe.clone(),
                    events: crate::load::resilience::Events::new(),
                    managed: managed.as_ref().map(|m| m.shared.clone()),
                },
                bridge: crate::script::BridgeMode::Auto,
                allow_spawn: cfg.allow_spawn || plan.allow_spawn,
            };
            let live = console.scenario(&s.name, timeout_of(plan, cfg, i), true);
            lives[i] = Some(live.clone());
            let job = Job { idx: i, script: s.script.clone(), opts, own_server, live };
            first_dispatch.get_or_insert(t);
            if job_tx.send(job).is_err() {
                break;
            }
            infos[i].scheduling_overhead_us = Some(t.elapsed().as_secs_f64() * 1e6);
            if cfg.progress {
                console.say(&format!("start    {}", s.name));
            }
        }
        if sched.running() == 0 {
            break;
        }
        let Ok(done) = done_rx.recv() else { break };
        let t = Instant::now();
        let i = done.idx;
        last_end = last_end.max(done.finished);
        let mut result = done.result;
        apply_declared_metrics(&mut result, &plan.scenarios[i].metrics);
        result.root.name = plan.scenarios[i].name.clone();
        let status = result.status();
        let (ready, skipped) = sched.finished(i, status);
        for r in ready {
            deps_met[r] = Some(t);
        }
        let info = &mut infos[i];
        info.worker = Some(done.worker);
        info.started_ms = Some(ms(done.started));
        info.finished_ms = Some(ms(done.finished));
        info.deps_met_ms = deps_met[i].map(ms);
        info.scheduling_latency_ms =
            deps_met[i].map(|d| done.started.saturating_duration_since(d).as_secs_f64() * 1000.0);
        if let Some(l) = lives[i].take() {
            console.done(&l);
        }
        let checks = result.root.assertions;
        if cfg.progress {
            // The scenario's own duration, as the summary and results.json give it.
            console.say(&format!(
                "{} {} ({}, {} of {} checks passed){}",
                console.status_word(status),
                plan.scenarios[i].name,
                human::ms(result.root.duration_ms),
                checks.passed,
                checks.total(),
                result.why().map(|m| format!(": {m}")).unwrap_or_default()
            ));
        }
        results[i] = Some(result);
        for (s, why) in skipped {
            if cfg.progress {
                console.say(&format!("{} {}: {why}", console.status_word(Status::Skipped), plan.scenarios[s].name));
            }
            infos[s].reason = Some(why.clone());
            results[s] = Some(ScenarioResult::not_run(
                &plan.scenarios[s].name,
                &plan.scenarios[s].script.file,
                Status::Skipped,
                &why,
            ));
        }
        infos[i].aggregation_us = Some(t.elapsed().as_secs_f64() * 1e6);
    }
    drop(job_tx);
    for t in threads {
        let _ = t.join();
    }
    console.finish();
    // Not started: the setup failed (the scenarios fail with its reason) or the run was
    // interrupted (they are cancelled).
    let (reason, status) = match &setup_error {
        Some(e) => (e.clone(), Status::Failed),
        None => ("not started: the run was interrupted".to_string(), Status::Cancelled),
    };
    for i in sched.not_started() {
        infos[i].reason = Some(reason.clone());
        results[i] =
            Some(ScenarioResult::not_run(&plan.scenarios[i].name, &plan.scenarios[i].script.file, status, &reason));
    }
    if let Some(s) = shared {
        cfg.handle.block_on(s.shutdown());
    }
    drop(managed);

    // The record.
    let first = first_dispatch.unwrap_or(t0);
    let wall_ms = last_end.saturating_duration_since(first).as_secs_f64() * 1000.0;
    let durations: Vec<Option<f64>> = infos
        .iter()
        .map(|x| match (x.started_ms, x.finished_ms) {
            (Some(a), Some(b)) => Some(b - a),
            _ => None,
        })
        .collect();
    let busy_ms: f64 = durations.iter().flatten().sum();
    let (path, path_ms) = plan.graph.critical_path(&durations);
    let mean = |xs: Vec<f64>| if xs.is_empty() { 0.0 } else { xs.iter().sum::<f64>() / xs.len() as f64 };
    let lat: Vec<f64> = infos.iter().filter_map(|x| x.scheduling_latency_ms).collect();
    let overhead = Overhead {
        startup_ms: first.saturating_duration_since(cfg.started).as_secs_f64() * 1000.0,
        parse_ms: plan.parse_ms,
        compile_ms: plan.compile_ms,
        wall_ms,
        busy_ms,
        parallel_efficiency: if wall_ms > 0.0 { busy_ms / (wall_ms * workers as f64) } else { 0.0 },
        scheduling_latency_ms_max: lat.iter().copied().fold(0.0, f64::max),
        scheduling_latency_ms_mean: mean(lat),
        scheduling_overhead_us_mean: mean(infos.iter().filter_map(|x| x.scheduling_overhead_us).collect()),
        aggregation_us_mean: mean(infos.iter().filter_map(|x| x.aggregation_us).collect()),
        critical_path: path.iter().map(|&i| plan.scenarios[i].name.clone()).collect(),
        critical_path_ms: path_ms,
    };
    let mut scenarios = Vec::new();
    for i in 0..n {
        if let Some(mut r) = results[i].take() {
            r.schedule = Some(infos[i].clone());
            scenarios.push(r);
        }
    }
    let mut out = RunResults::new(results::new_run_id(), shown_target, started_wall, scenarios);
    out.framework = Some(overhead.clone());
    out.suite = Some(SuiteInfo {
        name: plan.name.clone(),
        file: plan.file.clone(),
        profile: plan.profile.clone(),
        parallelism: workers,
        connection_budget: plan.budget,
        overhead,
    });
    out
}

/// The target's offer, asked once per run when a scenario first names tools or capabilities
/// in its `requires:` (None inside: it could not be asked; nothing is skipped for it).
#[derive(Default)]
struct Needs {
    offer: Option<Option<Offer>>,
}

impl Needs {
    /// Why scenario `i` cannot run against the run's target, if it cannot.
    fn unmet(
        &mut self,
        plan: &SuitePlan,
        i: usize,
        managed: bool,
        shared: Option<&Target>,
        cfg: &RunConfig,
    ) -> Option<String> {
        let req = &plan.scenarios[i].requires;
        if req.is_empty() {
            return None;
        }
        let builtin = plan.target == Target::Builtin;
        if req.asks_target() && self.offer.is_none() {
            self.offer = Some(cfg.handle.block_on(ask(&plan.target, shared, cfg.client.clone())));
        }
        let offer = self.offer.as_ref().and_then(Option::as_ref);
        requires::unmet(req, requires::transport_of(&plan.target), builtin || managed, offer)
    }
}

/// What the target offers: the built-in target is asked through a server of its own kind.
async fn ask(target: &Target, shared: Option<&Target>, client: Arc<ClientOptions>) -> Option<Offer> {
    match (target, shared) {
        (Target::Builtin, Some(t)) => requires::probe(t, client).await.ok(),
        (Target::Builtin, None) => {
            let s = builtin::start_in_process(ServerConfig::default()).await.ok()?;
            let t: Option<Target> = s.url("tcp").and_then(|u| u.parse().ok());
            let offer = match t {
                Some(t) => requires::probe(&t, client).await.ok(),
                None => None,
            };
            s.shutdown().await;
            offer
        }
        (t, _) => requires::probe(t, client).await.ok(),
    }
}

fn timeout_of(plan: &SuitePlan, cfg: &RunConfig, i: usize) -> Option<Duration> {
    match cfg.timeout {
        Some(t) => t,
        None => Some(plan.scenarios[i].timeout),
    }
}

/// The settings of a scenario's in-process server (it listens where [`builtin`] puts it).
fn server_config(o: Option<&super::manifest::BuiltinServer>) -> ServerConfig {
    let mut c = ServerConfig::default();
    if let Some(o) = o {
        c.max_inflight = o.max_inflight;
        c.max_connections = o.max_connections;
        c.latency = o.latency.map(|d| d.0);
        c.error_rate = o.error_rate.unwrap_or(0.0);
        c.faults.leak = o.leak.map(|b| b.0);
        c.faults.wrong_error_codes = o.wrong_error_codes;
        c.faults.collapse = o.collapse;
        c.faults.stay_down = o.stay_down;
        c.faults.jitter = o.jitter.map(|d| d.0);
        if let Some(f) = o.jitter_fraction {
            c.faults.jitter_fraction = f;
        }
    }
    c
}

/// A scenario's own server while it runs.
enum Running {
    InProcess(RunningServer),
    Managed(crate::load::SharedServer),
}

/// `mcpscript serve` options of a scenario's `server:` block (the listener is managed's).
fn serve_args(o: Option<&super::manifest::BuiltinServer>) -> Vec<String> {
    let mut a = Vec::new();
    if let Some(o) = o {
        if let Some(n) = o.max_inflight {
            a.extend(["--max-inflight".into(), n.to_string()]);
        }
        if let Some(n) = o.max_connections {
            a.extend(["--max-connections".into(), n.to_string()]);
        }
        if let Some(d) = o.latency {
            a.extend(["--latency".into(), format!("{}us", d.0.as_micros())]);
        }
        if let Some(r) = o.error_rate {
            a.extend(["--error-rate".into(), r.to_string()]);
        }
        if let Some(b) = o.leak {
            a.extend(["--fault-leak".into(), format!("{}B", b.0)]);
        }
        for (on, flag) in [
            (o.wrong_error_codes, "--fault-wrong-error-codes"),
            (o.collapse, "--fault-collapse"),
            (o.stay_down, "--fault-stay-down"),
        ] {
            if on {
                a.push(flag.into());
            }
        }
        if let Some(d) = o.jitter {
            a.extend(["--fault-jitter".into(), format!("{}us", d.0.as_micros())]);
        }
        if let Some(f) = o.jitter_fraction {
            a.extend(["--fault-jitter-fraction".into(), f.to_string()]);
        }
    }
    a
}

/// A worker thread: runs jobs until the coordinator hangs up.
fn worker(w: usize, jobs: &Mutex<mpsc::Receiver<Job>>, done: &mpsc::Sender<Done>, handle: &Handle) {
    loop {
        let job = match jobs.lock() {
            Ok(rx) => rx.recv(),
            Err(_) => return,
        };
        let Ok(mut job) = job else { return };
        let started = Instant::now();
        let _shown = job.live.enter();
        // Child processes are started from this worker thread, which outlives the scenario:
        // the child's PR_SET_PDEATHSIG is tied to the thread that spawned it.
        let server: Option<Result<Running, BuiltinError>> =
            job.own_server.take().map(|how| match handle.block_on(builtin::start(how))? {
                BuiltinServer::InProcess(s) => {
                    if let Some(t) = s.url("tcp").and_then(|u| u.parse().ok()) {
                        job.opts.target = t;
                    }
                    job.opts.load.builtin_here = true;
                    Ok(Running::InProcess(s))
                }
                BuiltinServer::Processes(m) => {
                    let mut m = *m;
                    job.opts.target = m.target();
                    job.opts.load.builtin_here = false;
                    job.opts.load.target_pids.extend(m.pids());
                    let shared = crate::load::SharedServer(Arc::new(tokio::sync::Mutex::new(m)));
                    job.opts.load.managed = Some(shared.clone());
                    Ok(Running::Managed(shared))
                }
            });
        let result = match &server {
            Some(Err(e)) => {
                let mut r = ScenarioResult::not_run(
                    &job.script.name,
                    &job.script.file,
                    Status::Failed,
                    &format!("its built-in server did not start: {e}"),
                );
                r.started_at = results::rfc3339(SystemTime::now());
                r
            }
            _ => {
                // A panic in a scenario must not take the worker (and the run) down.
                let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    runner::run(&job.script, &job.opts, handle)
                }));
                r.unwrap_or_else(|_| {
                    ScenarioResult::not_run(&job.script.name, &job.script.file, Status::Failed, "the scenario crashed")
                })
            }
        };
        drop(job.opts);
        match server {
            Some(Ok(Running::InProcess(s))) => handle.block_on(s.shutdown()),
            Some(Ok(Running::Managed(m))) => handle.block_on(async move {
                let _ = m.0.lock().await.stop(crate::managed::Which::All).await;
            }),
            _ => {}
        }
        let finished = Instant::now();
        if done.send(Done { idx: job.idx, worker: w, started, finished, result }).is_err() {
            return;
        }
    }
}

/// The manifest's `metrics:` declare direction and unit; a passed scenario that does not
/// export a declared metric fails (the regression detector would silently lose it).
fn apply_declared_metrics(r: &mut ScenarioResult, declared: &[super::manifest::MetricSpec]) {
    if declared.is_empty() {
        return;
    }
    fn walk(n: &mut results::StageResult, f: &mut dyn FnMut(&mut results::MetricResult)) {
        n.metrics.iter_mut().for_each(&mut *f);
        n.stages.iter_mut().for_each(|c| walk(c, f));
    }
    let mut found = BTreeSet::new();
    walk(&mut r.root, &mut |m| {
        if let Some(d) = declared.iter().find(|d| d.name == m.name) {
            found.insert(m.name.clone());
            if m.better == Better::None {
                m.better = d.better;
            }
            if m.unit.is_none() {
                m.unit = d.unit.clone();
            }
        }
    });
    if r.root.status != Status::Passed {
        return;
    }
    for d in declared.iter().filter(|d| !found.contains(&d.name)) {
        r.root.checks.push(CheckResult {
            name: format!("exports declared metric {}", d.name),
            kind: CheckKind::Check,
            passed: 0,
            failed: 1,
            failures: vec![results::CheckFailure {
                detail: Some("the manifest declares it; the script did not export it".into()),
                file: Some(r.file.clone()),
                line: None,
                at_ms: r.root.duration_ms,
            }],
        });
        r.root.assertions.failed += 1;
        r.root.status = Status::Failed;
    }
}

/// The run's client options with the suite's `headers:` added (a `--header` of the same
/// name wins).
fn with_suite_headers(
    client: &std::sync::Arc<crate::client::ClientOptions>,
    headers: &[(String, String)],
) -> std::sync::Arc<crate::client::ClientOptions> {
    if headers.is_empty() {
        return client.clone();
    }
    let mut opts = crate::client::ClientOptions::clone(client);
    for (k, v) in headers {
        if !opts.headers.iter().any(|(name, _)| name.eq_ignore_ascii_case(k)) {
            opts.headers.push((k.clone(), v.clone()));
        }
    }
    std::sync::Arc::new(opts)
}
