//! `mcpscript run FILE.rhai`: runs a scenario script against a target (the built-in server
//! when none is given) and writes results.json into `--out` (default `reports/<run-id>/`).
//! Exit 0 passed, 1 a check or the script failed, 2 the script or arguments are invalid,
//! 130 interrupted (results are written in every case once the script started).

use super::args::RunArgs;
use super::{runtime, CliError, Exit};
use crate::client::{ClientOptions, Target};
use crate::console::say;
use crate::managed::builtin::{self, Builtin, BuiltinServer};
use crate::script::results::{self, RunResults, ScriptErrorKind, StageResult, Status};
use crate::script::{diag, runner, Limits, Params, RunOptions, StopReason, StopSignal};
use crate::util::duration::parse_duration;
use crate::util::human;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// Distinct checks listed one by one in the summary; beyond that only failures are.
const LIST_CHECKS_UP_TO: usize = 20;

/// `--request-timeout` and `--segment`, which scripts and suites read alike.
pub(super) fn request_timeout_and_segment(a: &RunArgs) -> Result<(Duration, Option<(u32, u32)>), CliError> {
    let request_timeout =
        parse_duration(&a.request_timeout).map_err(|e| CliError::invalid(format!("--request-timeout: {e}")))?;
    let segment = a
        .segment
        .as_deref()
        .map(crate::load::parse_segment)
        .transpose()
        .map_err(|e| CliError::invalid(format!("--segment: {e}")))?;
    Ok((request_timeout, segment))
}

/// `--header 'NAME: VALUE'` options, checked: a bad one is an input error naming it.
pub(super) fn parse_headers(specs: &[String]) -> Result<Vec<(String, String)>, CliError> {
    specs
        .iter()
        .map(|h| crate::client::auth::parse_header(h).map_err(|e| CliError::invalid(format!("--header: {e}"))))
        .collect()
}

/// The client options a run's sessions use: `--request-timeout`, `--header`, `--bearer`,
/// `--ca-cert`, `--insecure`.
pub(super) fn client_options(a: &RunArgs, request_timeout: Duration) -> Result<ClientOptions, CliError> {
    if let Some(t) = &a.bearer {
        crate::client::auth::Auth::bearer(Some(t)).map_err(|e| CliError::invalid(format!("--bearer: {e}")))?;
    }
    let tls = super::tls::client_tls(&a.tls)?;
    Ok(ClientOptions {
        request_timeout,
        headers: parse_headers(&a.headers)?,
        auth_token: a.bearer.clone().filter(|t| !t.is_empty()),
        oauth: super::oauth::oauth(&a.oauth, &tls, request_timeout)?,
        tls,
        ..ClientOptions::default()
    })
}

pub fn run(a: RunArgs) -> Result<Exit, CliError> {
    if super::suite::is_suite(&a.file) {
        return super::suite::run(a);
    }
    let target: Target =
        a.target.parse().map_err(|e: crate::client::target::TargetError| CliError::invalid(e.to_string()))?;
    let params = Params::parse(&a.set).map_err(CliError::invalid)?;
    super::suite::refuse_suite_options(&a.suite)?;
    let timeout = match a.timeout.as_deref().unwrap_or("10m").trim() {
        "none" | "0" => None,
        s => Some(parse_duration(s).map_err(|e| CliError::invalid(format!("--timeout: {e}")))?),
    };
    let (request_timeout, segment) = request_timeout_and_segment(&a)?;
    let client = Arc::new(client_options(&a, request_timeout)?);
    let limits = Limits { max_operations: a.max_operations, max_memory: a.max_memory, ..Limits::default() };
    let script = Arc::new(super::check::load(&a.file, a.stdlib.clone(), limits)?);
    script.check_params(&params).map_err(|e| CliError::invalid(e.to_string()))?;

    let reporting = super::reporting::Reporting::prepare(&a.report, a.out.as_deref(), a.quiet, &script.file)?;
    let seed = a.seed.unwrap_or_else(rand::random);
    let run_id = results::new_run_id();
    let rt = runtime(2)?;
    let started = SystemTime::now();
    // A script that controls the target (`chaos::kill()` and friends) gets the built-in
    // server as child processes it can signal; otherwise it runs inside this process.
    let chaos_control = script.search.sources.any_contains("chaos::");
    let builtin_how = match target {
        Target::Builtin if chaos_control => {
            if a.builtin_workers == 0 || a.builtin_workers > 64 {
                return Err(CliError::invalid(format!("--builtin-workers must be 1 to 64, got {}", a.builtin_workers)));
            }
            let exe = std::env::current_exe()
                .map_err(|e| CliError::failed(format!("cannot find the mcpscript executable: {e}")))?;
            Some(Builtin::Processes { exe, workers: a.builtin_workers, args: vec![] })
        }
        Target::Builtin if a.server.is_some() => {
            return Err(CliError::invalid(
                "--server needs --target: the URL where the server command listens (e.g. http://127.0.0.1:3001/mcp)",
            ))
        }
        Target::Builtin => Some(Builtin::InProcess(Box::default())),
        Target::Stdio { .. } if a.server.is_some() => {
            return Err(CliError::invalid("--server with a stdio: target: the session itself starts a stdio server"))
        }
        _ => None,
    };
    let (builtin, managed) = match builtin_how {
        Some(how) => match rt.block_on(builtin::start(how))? {
            BuiltinServer::InProcess(s) => (Some(s), None),
            BuiltinServer::Processes(m) => (None, Some(*m)),
        },
        None => match &a.server {
            Some(cmd) => {
                let command = crate::client::target::split_command(cmd)
                    .map_err(|e| CliError::invalid(format!("--server: {e}")))?;
                if command.is_empty() {
                    return Err(CliError::invalid("--server: the command is empty"));
                }
                let ready_timeout = parse_duration(&a.server_ready_timeout)
                    .map_err(|e| CliError::invalid(format!("--server-ready-timeout: {e}")))?;
                let spec = crate::managed::ServerSpec {
                    command,
                    env: vec![],
                    cwd: None,
                    target: Some(target.clone()),
                    ready: crate::managed::Ready::Connect(target.clone()),
                    ready_timeout,
                };
                let m = rt
                    .block_on(crate::managed::ManagedServer::start(spec))
                    .map_err(|e| CliError::failed(e.to_string()))?;
                (None, Some(m))
            }
            None => (None, None),
        },
    };
    let (real_target, shown) = match (&builtin, &managed) {
        (Some(s), _) => {
            let url = s.url("tcp").unwrap_or_default().to_string();
            let t = url.parse().map_err(|e: crate::client::target::TargetError| CliError::failed(e.to_string()))?;
            (t, format!("builtin ({url})"))
        }
        (None, Some(m)) if matches!(target, Target::Builtin) => {
            let t = m.target();
            let shown = format!("builtin ({t}, {} managed worker process(es))", m.workers());
            (t, shown)
        }
        (None, Some(m)) => (m.target(), format!("{} (started by mcpscript)", m.target())),
        _ => (target.clone(), target.to_string()),
    };
    let mut target_pids = a.target_pids.clone();
    let managed = managed.map(|mut m| {
        target_pids.extend(m.pids());
        crate::load::SharedServer(Arc::new(tokio::sync::Mutex::new(m)))
    });

    let interrupt = interrupt_on_signals(&rt, "the script");
    if !a.quiet {
        say(&format!("mcpscript run {} against {shown} (seed {seed})\n", script.file));
    }
    let opts = RunOptions {
        target: real_target,
        client,
        params,
        seed,
        quiet: a.quiet,
        timeout,
        interrupt: Some(interrupt),
        load: crate::load::LoadContext {
            segment,
            builtin_here: builtin.is_some(),
            target_pids,
            exe: None,
            events: crate::load::resilience::Events::new(),
            managed: managed.clone(),
        },
        bridge: crate::script::bridge::BridgeMode::Auto,
        allow_spawn: a.allow_spawn,
    };
    let thread = runner::spawn(script.clone(), opts, rt.handle().clone())
        .map_err(|e| CliError::failed(format!("cannot start the script thread: {e}")))?;
    let scenario = thread.join().map_err(|_| CliError::failed("the script thread crashed"));
    if let Some(s) = builtin {
        rt.block_on(s.shutdown());
    }
    if let Some(m) = managed {
        // The script's context is gone with its thread: this is the last handle.
        rt.block_on(async move {
            match Arc::try_unwrap(m.0) {
                Ok(m) => m.into_inner().shutdown().await,
                Err(shared) => {
                    let _ = shared.lock().await.stop(crate::managed::Which::All).await;
                }
            }
        });
    }
    let scenario = scenario?;
    let mut results = RunResults::new(run_id, shown, started, vec![scenario]);
    let dir = reporting.finish(&mut results)?;
    let path = dir.join("results.json");

    let scenario = &results.scenarios[0];
    if let Some(err) = &scenario.error {
        let _ = writeln!(std::io::stderr(), "error: {}", diag::render(err, &script.search.sources));
    }
    if !a.quiet {
        say(&summary(&results, &path));
        say(&reporting.epilogue(&results, &dir));
    }
    let exit = match (scenario.status(), scenario.error.as_ref().map(|e| e.kind)) {
        (_, Some(ScriptErrorKind::Param)) => Exit::Invalid,
        (Status::Cancelled, _) => Exit::Interrupted,
        (Status::Passed, _) => Exit::Ok,
        _ => Exit::Failed,
    };
    Ok(reporting.exit(&results, exit))
}

/// Ctrl-C and SIGTERM trigger the returned signal (`what` stops cleanly and results are
/// written); a second Ctrl-C quits at once. Installed before anything is printed, so no
/// early SIGINT is lost.
pub fn interrupt_on_signals(rt: &tokio::runtime::Runtime, what: &'static str) -> Arc<StopSignal> {
    let interrupt = StopSignal::new();
    let sigint = {
        let _guard = rt.enter();
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
    };
    if let Ok(mut sigint) = sigint {
        let i = interrupt.clone();
        rt.spawn(async move {
            if sigint.recv().await.is_some() {
                let _ = writeln!(
                    std::io::stderr(),
                    "\ninterrupted: stopping {what} and writing results (Ctrl-C again quits at once)"
                );
                i.trigger(StopReason::Cancelled);
                if sigint.recv().await.is_some() {
                    std::process::exit(Exit::Interrupted as i32);
                }
            }
        });
    }
    // SIGTERM (a Kubernetes pod being stopped, a CI job cancelled) stops it the same way,
    // so load phases stop their worker processes and results are still written.
    let sigterm = {
        let _guard = rt.enter();
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
    };
    if let Ok(mut sigterm) = sigterm {
        let i = interrupt.clone();
        rt.spawn(async move {
            if sigterm.recv().await.is_some() {
                let _ = writeln!(std::io::stderr(), "\nterminated: stopping {what} and writing results");
                i.trigger(StopReason::Cancelled);
            }
        });
    }
    interrupt
}

/// What a person reads at the end of a run: stages, checks, metrics, verdict.
pub fn summary(r: &RunResults, path: &Path) -> String {
    let mut out = String::new();
    for s in &r.scenarios {
        if !s.root.stages.is_empty() {
            out.push_str("stages:\n");
            for st in &s.root.stages {
                stage_lines(st, 1, &mut out);
            }
        }
        let checks = all_checks(&s.root);
        let a = s.root.assertions;
        if a.total() > 0 {
            let _ = writeln!(out, "checks: {} passed, {} failed", a.passed, a.failed);
            let list_all = checks.len() <= LIST_CHECKS_UP_TO;
            for (stage, c) in checks.iter().filter(|(_, c)| list_all || c.failed > 0) {
                let mark = if c.failed > 0 { "FAIL" } else { "ok  " };
                let place = if stage.is_empty() { String::new() } else { format!(" [{stage}]") };
                let counts = if c.passed + c.failed > 1 {
                    format!(": {} passed, {} failed", c.passed, c.failed)
                } else {
                    String::new()
                };
                let first = c.failures.first().map(|f| {
                    let at = f.line.map(|l| format!(" ({}:{l})", f.file.as_deref().unwrap_or(""))).unwrap_or_default();
                    format!(" -- {}{at}", f.detail.as_deref().unwrap_or("failed"))
                });
                let _ = writeln!(out, "  {mark} {}{place}{counts}{}", c.name, first.unwrap_or_default());
            }
        }
        let metrics = s.all_metrics();
        if !metrics.is_empty() {
            out.push_str("metrics:\n");
            for m in metrics {
                let dir = match m.better {
                    results::Better::Higher => " (higher is better)",
                    results::Better::Lower => " (lower is better)",
                    results::Better::None => "",
                };
                let _ = writeln!(out, "  {} = {}{dir}", m.name, human::with_unit(m.value, m.unit.as_deref()));
            }
        }
    }
    let took = human::ms(r.duration_ms);
    let verdict = match r.status {
        Status::Passed => "PASSED".to_string(),
        Status::Failed => "FAILED".to_string(),
        other => other.as_str().to_uppercase(),
    };
    let why = match r.scenarios.iter().find_map(|s| s.error.as_ref()).map(|e| e.kind) {
        Some(ScriptErrorKind::Runtime) => "the script stopped on an error; ",
        Some(ScriptErrorKind::Fail) => "the script called fail(); ",
        Some(ScriptErrorKind::Limit) => "the script hit a sandbox limit; ",
        Some(ScriptErrorKind::Param) => "bad input (a parameter, argument or option); ",
        _ => "",
    };
    let _ = writeln!(
        out,
        "{verdict} in {took}: {why}{} of {} checks passed\nresults: {}",
        r.summary.passed_assertions,
        r.summary.total_assertions,
        path.display()
    );
    out
}

fn stage_lines(s: &StageResult, depth: usize, out: &mut String) {
    let took = human::ms(s.duration_ms);
    let checks = match (s.assertions.total(), s.assertions.failed) {
        (0, _) => String::new(),
        (n, 0) => format!(", {n} checks"),
        (n, f) => format!(", {f} of {n} checks failed"),
    };
    let _ = writeln!(out, "{}{:<9} {} ({took}{checks})", "  ".repeat(depth), s.status.as_str(), s.name);
    for c in &s.stages {
        stage_lines(c, depth + 1, out);
    }
}

fn all_checks(root: &StageResult) -> Vec<(String, &results::CheckResult)> {
    fn walk<'a>(n: &'a StageResult, path: &str, out: &mut Vec<(String, &'a results::CheckResult)>) {
        out.extend(n.checks.iter().map(|c| (path.to_string(), c)));
        for c in &n.stages {
            let p = if path.is_empty() { c.name.clone() } else { format!("{path}/{}", c.name) };
            walk(c, &p, out);
        }
    }
    let mut out = Vec::new();
    walk(root, "", &mut out);
    out
}
