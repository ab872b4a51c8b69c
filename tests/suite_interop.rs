//! The shipped suite (`scripts/suite.yaml`) against third-party MCP servers, through the
//! real binary: `@modelcontextprotocol/server-everything` and a small server on the
//! official Python SDK (`tests/interop/py_server.py`), both over Streamable HTTP.
//!
//! A server that lacks what a scenario needs must make that scenario skip with a reason,
//! never fail: every scenario has to end `passed` or `skipped`, without a script error,
//! and the run must exit 0. Each scenario's outcome is printed (one line, plus its failed
//! checks) so a failure reads at a glance.

mod common;

use common::interop::{self, Everything, PyServer};
use serde_json::Value;
use std::fmt::Write as _;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_mcpscript");
/// Hard limit on the whole `mcpscript run`: it is killed (with its process group) after this.
/// The quick profile takes well under a minute; against a slow server, scenarios that run
/// into the suite's 60 s timeout one after another (a dependency chain) can take minutes,
/// and a run that ends by itself leaves a results.json that says which scenario hung.
const RUN_TIMEOUT: Duration = Duration::from_secs(180);
/// Lines of mcpscript's output shown in a failure message (from the start and from the end).
const OUTPUT_LINES: usize = 40;

/// One suite run at a time: each is a load test of its server, and two at once on a 2-core
/// machine measure each other (the Python server then falls short of a rate it sustains
/// alone).
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn suite_against_everything_over_streamable_http() {
    let _alone = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let server = Everything::start_http();
    run_suite_against("server-everything", &server.url, &|| server.log_tail());
}

#[test]
fn suite_against_python_sdk_server_over_streamable_http() {
    let _alone = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let server = PyServer::start();
    run_suite_against("py_server", &server.url, &|| server.log_tail());
}

/// Runs `mcpscript run scripts/suite.yaml --target URL` and checks its results.json.
fn run_suite_against(label: &str, url: &str, server_log: &dyn Fn() -> String) {
    let out_dir = tempfile::tempdir().expect("temp dir");
    let mut cmd = Command::new(BIN);
    cmd.args(["run", "scripts/suite.yaml", "--target", url, "--out"])
        .arg(out_dir.path())
        .arg("--no-history")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("MCPSCRIPT_NO_HISTORY", "1")
        // Loopback only, never through a proxy.
        .env("NO_PROXY", "127.0.0.1,localhost")
        .env("no_proxy", "127.0.0.1,localhost")
        .stdin(Stdio::null())
        // Own process group, so a timeout also kills anything it started.
        .process_group(0);
    let out = interop::run_bounded(cmd, RUN_TIMEOUT).unwrap_or_else(|e| panic!("cannot run {BIN}: {e}"));

    let mut problems = Vec::new();
    match out.status {
        Some(s) if s.success() => {}
        None => problems.push(format!("mcpscript run did not finish within {RUN_TIMEOUT:?} (killed)")),
        status => problems.push(format!("mcpscript run ended with {}, want exit 0", interop::describe_status(status))),
    }

    let results_path = out_dir.path().join("results.json");
    match read_json(&results_path) {
        Ok(results) => check_scenarios(label, &results, &mut problems),
        Err(e) => problems.push(format!("no usable {}: {e}", results_path.display())),
    }

    if !problems.is_empty() {
        let mut msg = format!("[{label}] suite against {url}: {} problem(s):\n", problems.len());
        for p in &problems {
            let _ = writeln!(msg, "  - {p}");
        }
        let _ = write!(
            msg,
            "--- mcpscript stdout ---\n{}\n--- mcpscript stderr ---\n{}\n--- server log (tail) ---\n{}",
            head_and_tail(&out.stdout),
            head_and_tail(&out.stderr),
            server_log()
        );
        panic!("{msg}");
    }
}

fn read_json(path: &Path) -> Result<Value, String> {
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    serde_json::from_str(&text).map_err(|e| format!("not JSON: {e}"))
}

/// Prints one line per scenario (and its failed checks) and notes every scenario that did
/// not pass or skip with a reason, or that ended with a script error.
fn check_scenarios(label: &str, results: &Value, problems: &mut Vec<String>) {
    let Some(scenarios) = results["scenarios"].as_array() else {
        problems.push(format!("results.json has no `scenarios` array: {}", truncate(&results.to_string(), 300)));
        return;
    };
    if scenarios.is_empty() {
        problems.push("results.json lists no scenarios".into());
    }
    for s in scenarios {
        let name = s["name"].as_str().unwrap_or("?");
        let status = s["status"].as_str().unwrap_or("?");
        let (passed, failed) =
            (s["assertions"]["passed"].as_u64().unwrap_or(0), s["assertions"]["failed"].as_u64().unwrap_or(0));
        let script_error = script_error(s);
        let reason = skip_reason(s);
        let mut line = format!(
            "[{label}] {status:<9} {name:<20} {:>8.0} ms  {passed}/{} checks",
            s["duration_ms"].as_f64().unwrap_or(0.0),
            passed + failed
        );
        if let Some(e) = &script_error {
            let _ = write!(line, "  script error: {e}");
        } else if let Some(r) = &reason {
            let _ = write!(line, "  ({})", truncate(r, 200));
        }
        eprintln!("{line}");
        let mut failures = Vec::new();
        failed_checks(s, "", &mut failures);
        for f in &failures {
            eprintln!("[{label}]     failed check {f}");
        }

        if let Some(e) = &script_error {
            problems.push(format!("{name}: script error: {}", truncate(e, 300)));
        }
        match status {
            "passed" => {}
            "skipped" if reason.is_some() => {}
            "skipped" => problems.push(format!("{name}: skipped without a reason")),
            other => {
                let why =
                    failures.first().or(reason.as_ref()).map_or("no failed check or error recorded", |w| w.as_str());
                problems.push(format!("{name}: {other} (want passed or skipped): {}", truncate(why, 300)));
            }
        }
    }
}

/// The script error of a scenario: its `error` object (`kind`, `message`, `file`, `line`).
/// A plain string `error` is a stage's error or a skip's reason, not a script error.
fn script_error(s: &Value) -> Option<String> {
    let e = s.get("error").filter(|e| e.is_object())?;
    let mut text = format!("{} error: {}", e["kind"].as_str().unwrap_or("?"), e["message"].as_str().unwrap_or("?"));
    if let Some(file) = e["file"].as_str() {
        let _ = write!(text, " at {file}");
        if let Some(line) = e["line"].as_u64() {
            let _ = write!(text, ":{line}");
        }
    }
    Some(text)
}

/// Why a scenario was skipped (or did not run): the suite's `schedule.reason`, else a
/// `reason` field, else the scenario's (root stage's) `error` string or message.
fn skip_reason(s: &Value) -> Option<String> {
    [&s["schedule"]["reason"], &s["reason"], &s["error"], &s["error"]["message"]]
        .into_iter()
        .find_map(|v| v.as_str().filter(|r| !r.trim().is_empty()))
        .map(str::to_string)
}

/// `stage/path: check: first failure detail (file:line)` for every check with failures.
fn failed_checks(node: &Value, path: &str, out: &mut Vec<String>) {
    for c in node["checks"].as_array().into_iter().flatten() {
        if c["failed"].as_u64().unwrap_or(0) == 0 {
            continue;
        }
        let first = &c["failures"][0];
        let mut text = format!(
            "{}{}: {}/{} failed",
            if path.is_empty() { String::new() } else { format!("{path}: ") },
            c["name"].as_str().unwrap_or("?"),
            c["failed"],
            c["failed"].as_u64().unwrap_or(0) + c["passed"].as_u64().unwrap_or(0)
        );
        if let Some(d) = first["detail"].as_str() {
            let _ = write!(text, ": {}", truncate(d, 200));
        }
        if let (Some(f), Some(l)) = (first["file"].as_str(), first["line"].as_u64()) {
            let _ = write!(text, " ({f}:{l})");
        }
        out.push(text);
    }
    for st in node["stages"].as_array().into_iter().flatten() {
        let name = st["name"].as_str().unwrap_or("?");
        let p = if path.is_empty() { name.to_string() } else { format!("{path}/{name}") };
        if st["status"] == "failed" && st["error"].is_string() && st["checks"].as_array().is_none_or(|c| c.is_empty()) {
            out.push(format!("{p}: stage error: {}", truncate(st["error"].as_str().unwrap_or(""), 200)));
        }
        failed_checks(st, &p, out);
    }
}

/// The first and last [`OUTPUT_LINES`] lines of `text` (all of it when short).
fn head_and_tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    if lines.len() <= 2 * OUTPUT_LINES {
        return text.to_string();
    }
    format!(
        "{}\n... ({} lines left out) ...\n{}",
        lines[..OUTPUT_LINES].join("\n"),
        lines.len() - 2 * OUTPUT_LINES,
        lines[lines.len() - OUTPUT_LINES..].join("\n")
    )
}

fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let cut: String = s.chars().take(max).collect();
    format!("{cut}...")
}
