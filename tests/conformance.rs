//! The built-in server (`mcpscript serve`) against the official MCP conformance suite
//! (`@modelcontextprotocol/conformance`, server mode), installed by
//! `tests/interop/setup.sh`. No check of any scenario may fail, and each must pass at
//! least one: those of the default run, and the ones pending upstream that the default run
//! leaves out (`json-schema-2020-12`, and `server-sse-polling`, whose three checks need
//! resumable event streams and the `test_reconnection` fixture). Skipped, with the reason
//! printed, only when node is missing.

mod common;

use common::interop::{describe_status, ensure_setup, interop_dir, run_bounded};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Hard limit on one run of the suite (about 10 s on a quiet machine).
const SUITE_TIMEOUT: Duration = Duration::from_secs(300);
/// Scenarios the default run leaves out (pending upstream), run one by one.
const UPSTREAM_PENDING: [&str; 2] = ["json-schema-2020-12", "server-sse-polling"];

/// The checks of `server-sse-polling`: a priming event with an id first, a `retry:` field,
/// and the reply on the stream resumed with `Last-Event-ID` after the server ended it.
const SSE_POLLING_CHECKS: u32 = 3;

/// `mcpscript serve` on a free loopback port; killed (by PID) and reaped on drop.
struct Serve {
    child: Child,
    url: String,
}

impl Serve {
    fn start() -> Serve {
        let mut last = String::new();
        for _ in 0..3 {
            let port = common::free_port();
            let url = format!("http://127.0.0.1:{port}/mcp");
            let mut child = Command::new(env!("CARGO_BIN_EXE_mcpscript"))
                .args(["serve", "--listen", &url])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn mcpscript serve");
            let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
            let deadline = Instant::now() + Duration::from_secs(20);
            loop {
                if let Ok(Some(status)) = child.try_wait() {
                    last = format!("mcpscript serve exited early ({status})");
                    break;
                }
                if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                    return Serve { child, url };
                }
                if Instant::now() >= deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    last = "mcpscript serve did not listen within 20 s".into();
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        panic!("could not start mcpscript serve: {last}");
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One scenario's line of the suite's summary.
#[derive(Debug)]
struct Row {
    scenario: String,
    passed: u32,
    failed: u32,
}

fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // CSI: ESC [ ... final byte in @..~
            for c in chars.by_ref() {
                if ('@'..='~').contains(&c) && c != '[' {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The `✓ NAME: P passed, F failed` lines of a default run's summary.
fn summary_rows(stdout: &str) -> Vec<Row> {
    strip_ansi(stdout)
        .lines()
        .filter_map(|l| {
            let l = l.trim().strip_prefix('✓').or_else(|| l.trim().strip_prefix('✗'))?.trim();
            let (scenario, counts) = l.rsplit_once(": ")?;
            let (passed, failed) = counts.split_once(" passed, ")?;
            Some(Row {
                scenario: scenario.to_string(),
                passed: passed.trim().parse().ok()?,
                failed: failed.trim_end_matches(" failed").trim().parse().ok()?,
            })
        })
        .collect()
}

/// `Passed: P/T, F failed, W warnings` of a single-scenario run.
fn scenario_row(scenario: &str, stdout: &str) -> Option<Row> {
    let text = strip_ansi(stdout);
    let line = text.lines().find(|l| l.trim_start().starts_with("Passed: "))?;
    let rest = line.trim_start().strip_prefix("Passed: ")?;
    let (passed, rest) = rest.split_once('/')?;
    let failed = rest.split_once(", ")?.1.split_whitespace().next()?;
    Some(Row { scenario: scenario.to_string(), passed: passed.parse().ok()?, failed: failed.parse().ok()? })
}

fn conformance(args: &[&str]) -> (Option<std::process::ExitStatus>, String, String) {
    let bin = interop_dir().join("node_modules/.bin/conformance");
    let mut cmd = Command::new(bin);
    cmd.args(args)
        .current_dir(interop_dir())
        .env("NO_PROXY", "127.0.0.1,localhost")
        .env("no_proxy", "127.0.0.1,localhost")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null());
    let out = run_bounded(cmd, SUITE_TIMEOUT).expect("run the conformance suite");
    (out.status, out.stdout, out.stderr)
}

#[test]
fn server_mode_of_the_official_conformance_suite_passes_every_scenario() {
    if Command::new("node").arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status().is_err() {
        eprintln!("SKIPPED: node is not installed, so the official MCP conformance suite cannot run");
        return;
    }
    ensure_setup();
    let server = Serve::start();
    let out_dir = std::env::temp_dir().join(format!("mcpscript-conformance-{}", std::process::id()));
    let out_arg = out_dir.to_string_lossy().into_owned();

    let (status, stdout, stderr) = conformance(&["server", "--url", &server.url, "-o", &out_arg]);
    let mut rows = summary_rows(&stdout);
    assert!(
        rows.len() >= 30,
        "expected the summary of at least 30 scenarios (exit {}):\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}",
        describe_status(status)
    );
    for scenario in UPSTREAM_PENDING {
        let (status, stdout, stderr) =
            conformance(&["server", "--url", &server.url, "--scenario", scenario, "-o", &out_arg]);
        let row = scenario_row(scenario, &stdout).unwrap_or_else(|| {
            panic!("no result line for {scenario} (exit {}):\n{stdout}\n{stderr}", describe_status(status))
        });
        rows.push(row);
    }

    println!("{:<32} {:>6} {:>6}", "scenario", "passed", "failed");
    for r in &rows {
        println!("{:<32} {:>6} {:>6}", r.scenario, r.passed, r.failed);
    }
    let (passed, failed): (u32, u32) = rows.iter().fold((0, 0), |(p, f), r| (p + r.passed, f + r.failed));
    println!("total: {passed} passed, {failed} failed over {} scenarios (results in {out_arg})", rows.len());
    let failing: Vec<&str> = rows.iter().filter(|r| r.failed > 0).map(|r| r.scenario.as_str()).collect();
    assert!(failing.is_empty(), "scenarios with failed checks: {failing:?}\n{stdout}");
    // A scenario counts only when it checked something.
    let empty: Vec<&str> = rows.iter().filter(|r| r.passed == 0).map(|r| r.scenario.as_str()).collect();
    assert!(empty.is_empty(), "scenarios that passed no check: {empty:?}");
    let polling = rows.iter().find(|r| r.scenario == "server-sse-polling").expect("server-sse-polling ran");
    assert!(
        polling.passed >= SSE_POLLING_CHECKS && polling.failed == 0,
        "server-sse-polling: {polling:?}, expected {SSE_POLLING_CHECKS} checks passed (a warning is no pass)"
    );
    let _ = std::fs::remove_dir_all(&out_dir);
}
