//! `mcpscript run suite.yaml`: loads and validates the suite (exit 2 on any problem, before
//! anything runs), runs it with the orchestrator, writes results.json atomically into
//! `--out` (default `reports/<run-id>/`) and prints a summary. Exit 0 every scenario
//! passed or was skipped with its reason (at least one ran), 1 one failed or timed out (or
//! none ran), 130 interrupted (Ctrl-C; the partial results are written).

use super::args::RunArgs;
use super::suite::{load, options};
use super::{runtime, CliError, Exit};
use crate::console::say;
use crate::script::results::{CheckResult, RunResults, StageResult, Status};
use crate::script::Limits;
use crate::suite::orchestrator::{self, RunConfig};
use crate::suite::SuitePlan;
use crate::util::duration::parse_duration;
use crate::util::human;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

/// Everything a suite run needs besides the plan, from the command line.
pub struct Prepared {
    pub cfg: RunConfig,
    pub rt: tokio::runtime::Runtime,
    pub out: Option<PathBuf>,
    pub quiet: bool,
}

/// Validates the command line and builds the run's configuration and runtime.
pub fn prepare(a: &RunArgs, started: Instant) -> Result<Prepared, CliError> {
    let timeout = match a.timeout.as_deref().map(str::trim) {
        None => None,
        Some("none" | "0") => Some(None),
        Some(s) => Some(Some(parse_duration(s).map_err(|e| CliError::invalid(format!("--timeout: {e}")))?)),
    };
    let (request_timeout, segment) = super::run::request_timeout_and_segment(a)?;
    let rt = runtime(2)?;
    let interrupt = super::run::interrupt_on_signals(&rt, "the suite");
    let mut cfg = RunConfig::new(rt.handle().clone());
    cfg.interrupt = interrupt;
    cfg.client = Arc::new(super::run::client_options(a, request_timeout)?);
    cfg.seed = a.seed.unwrap_or_else(rand::random);
    cfg.quiet = a.quiet;
    cfg.progress = !a.quiet;
    cfg.timeout = timeout;
    cfg.segment = segment;
    cfg.target_pids = a.target_pids.clone();
    cfg.started = started;
    cfg.allow_spawn = a.allow_spawn;
    Ok(Prepared { cfg, rt, out: a.out.clone(), quiet: a.quiet })
}

/// Loads the suite the command line names.
pub fn load_plan(a: &RunArgs) -> Result<SuitePlan, CliError> {
    let target = if a.target == "builtin" { None } else { Some(a.target.clone()) };
    let mut o = options(&a.suite, &a.set, target, a.stdlib.clone());
    o.limits = Limits { max_operations: a.max_operations, max_memory: a.max_memory, ..Limits::default() };
    let mut plan = load(&a.file, &o)?;
    if let Some(cmd) = &a.server {
        // `--server CMD`: the suite's managed server (replacing the file's `server:`), started
        // before the first scenario; scenarios that kill and restart the target act on it.
        if matches!(plan.target, crate::client::Target::Builtin | crate::client::Target::Stdio { .. }) {
            return Err(CliError::invalid(
                "--server needs --target: the URL where the server command listens (e.g. http://127.0.0.1:3001/mcp)",
            ));
        }
        let timeout = parse_duration(&a.server_ready_timeout)
            .map_err(|e| CliError::invalid(format!("--server-ready-timeout: {e}")))?;
        let command = crate::suite::manifest::CommandLine::Line(cmd.clone());
        if command.args().is_empty() {
            return Err(CliError::invalid("--server: the command is empty or its quotes do not close"));
        }
        plan.server = Some(crate::suite::manifest::ServerSpec {
            command,
            env: Default::default(),
            ready: crate::suite::manifest::ReadySpec {
                timeout: Some(crate::suite::manifest::Dur(timeout)),
                ..Default::default()
            },
            restart: Default::default(),
        });
    }
    Ok(plan)
}

pub fn run(a: RunArgs) -> Result<Exit, CliError> {
    let started = Instant::now();
    let plan = load_plan(&a)?;
    let reporting = super::reporting::Reporting::prepare(&a.report, a.out.as_deref(), a.quiet, &plan.name)?;
    let p = prepare(&a, started)?;
    if !p.quiet {
        say(&format!(
            "mcpscript run suite {} ({}): {} scenarios, profile {}, parallelism {}, seed {}\n",
            plan.name,
            plan.file,
            plan.selected.len(),
            plan.profile,
            plan.parallelism,
            p.cfg.seed
        ));
    }
    let mut results = orchestrator::run(&plan, &p.cfg);
    let dir = reporting.finish(&mut results)?;
    if !p.quiet {
        say(&summary(&results, &dir.join("results.json")));
        say(&reporting.epilogue(&results, &dir));
    }
    Ok(reporting.exit(&results, exit_of(&results)))
}

/// 0 all passed or skipped (at least one passed), 130 interrupted, else 1.
pub fn exit_of(r: &RunResults) -> Exit {
    match r.status {
        Status::Passed => Exit::Ok,
        Status::Cancelled => Exit::Interrupted,
        Status::Skipped if r.scenarios.is_empty() => Exit::Ok,
        _ => Exit::Failed,
    }
}

/// The failed checks of a scenario with the stage path they are in.
fn failed_checks<'a>(n: &'a StageResult, path: &str) -> Vec<(String, &'a CheckResult)> {
    let mut out: Vec<(String, &CheckResult)> =
        n.checks.iter().filter(|c| c.failed > 0).map(|c| (path.to_string(), c)).collect();
    for c in &n.stages {
        let p = if path.is_empty() { c.name.clone() } else { format!("{path}/{}", c.name) };
        out.extend(failed_checks(c, &p));
    }
    out
}

/// Scenario statuses, the overhead figures and the verdict.
pub fn summary(r: &RunResults, path: &Path) -> String {
    let mut out = String::new();
    let width = r.scenarios.iter().map(|s| s.root.name.len()).max().unwrap_or(0);
    out.push_str("scenarios:\n");
    for s in &r.scenarios {
        let a = s.root.assertions;
        let why = s
            .why()
            .map(str::to_string)
            .or_else(|| s.schedule.as_ref().and_then(|x| x.reason.clone()))
            .map(|m| format!("  {m}"))
            .unwrap_or_default();
        // The scenario's own duration, as its `passed` line said it.
        let took = human::ms(s.root.duration_ms);
        let _ = writeln!(
            out,
            "  {:<9} {:<width$} {took:>8}  {}/{} checks{why}",
            s.status().as_str(),
            s.root.name,
            a.passed,
            a.total()
        );
        for (stage, c) in failed_checks(&s.root, "") {
            let first = c.failures.first();
            let detail = first.and_then(|f| f.detail.as_deref()).unwrap_or("failed");
            let at = first
                .and_then(|f| f.line.map(|l| format!(" ({}:{l})", f.file.as_deref().unwrap_or(""))))
                .unwrap_or_default();
            let place = if stage.is_empty() { String::new() } else { format!(" [{stage}]") };
            let _ = writeln!(out, "            FAIL {}{place} -- {detail}{at}", c.name);
        }
    }
    if let Some(suite) = &r.suite {
        let o = &suite.overhead;
        let _ = writeln!(
            out,
            "overhead: start-up {}, scheduling {} and aggregation {} per scenario \
             (waiting for a free worker: {} on average), parallel efficiency {} on {} workers, \
             critical path {} ({})",
            human::ms(o.startup_ms),
            human::ms(o.scheduling_overhead_us_mean / 1000.0),
            human::ms(o.aggregation_us_mean / 1000.0),
            human::ms(o.scheduling_latency_ms_mean),
            human::pct(o.parallel_efficiency),
            suite.parallelism,
            o.critical_path.join(" -> "),
            human::ms(o.critical_path_ms),
        );
    }
    let s = &r.summary;
    let verdict = match r.status {
        Status::Passed => "PASSED".to_string(),
        other => other.as_str().to_uppercase(),
    };
    let _ = writeln!(
        out,
        "{verdict} in {}: {} of {} scenarios passed ({} failed, {} skipped), {} of {} checks passed\nresults: {}",
        human::ms(r.duration_ms),
        s.passed_tests,
        s.total_tests,
        s.failed_tests,
        s.skipped_tests,
        s.passed_assertions,
        s.total_assertions,
        path.display()
    );
    out
}
