//! The shipped scenarios fail when they should: each runs against a built-in server started
//! with a fault mode (`mcpscript serve --fault-...`, managed with `--server` so that kills
//! and restarts act on it), and the check that judges that misbehaviour fails while the
//! scenario's other checks hold. The same scenarios pass against a well-behaved server in
//! the suite run (tests/suite_interop.rs runs them against third-party servers).

mod common;

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_mcpscript");
/// A scenario run may take this long before the test gives up on it.
const RUN_LIMIT: Duration = Duration::from_secs(120);

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Runs `scripts/NAME.rhai` against a `serve` with `serve_args`, managed by the run, and
/// returns the scenario's result.
fn run_against(name: &str, serve_args: &[&str], sets: &[&str]) -> Value {
    let port = common::free_port();
    let out = tempfile::tempdir().expect("tempdir");
    let target = format!("tcp://127.0.0.1:{port}");
    let server = format!("{BIN} serve --listen {target} {}", serve_args.join(" "));
    let script = root().join("scripts").join(format!("{name}.rhai"));
    let mut cmd = Command::new(BIN);
    cmd.arg("run")
        .arg(&script)
        .args(["--target", &target, "--server", &server, "--out"])
        .arg(out.path())
        .args(["--format", "json", "-q"])
        .env("MCPSCRIPT_NO_HISTORY", "1")
        .current_dir(root());
    for s in sets {
        cmd.args(["--set", s]);
    }
    let started = Instant::now();
    let output = run_bounded(cmd);
    assert!(started.elapsed() < RUN_LIMIT, "{name} took {:?}", started.elapsed());
    let results = read_results(out.path()).unwrap_or_else(|e| {
        panic!(
            "{name}: no results ({e}); status {:?}\nstdout: {}\nstderr: {}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    });
    let scenario = results["scenarios"][0].clone();
    assert!(scenario["error"].is_null(), "{name}: script error {}", scenario["error"]);
    scenario
}

fn run_bounded(mut cmd: Command) -> std::process::Output {
    let child = cmd.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).spawn().expect("spawn");
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(RUN_LIMIT) {
        Ok(out) => out.expect("wait"),
        Err(_) => {
            // SAFETY: kill(2) on the PID of a child this test spawned and has not reaped.
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
            panic!("the run did not end within {RUN_LIMIT:?}");
        }
    }
}

fn read_results(dir: &Path) -> Result<Value, String> {
    let text = std::fs::read_to_string(dir.join("results.json")).map_err(|e| e.to_string())?;
    serde_json::from_str(&text).map_err(|e| e.to_string())
}

/// Every check of the tree (stage by stage) as (name, passed, failed).
fn checks(node: &Value) -> Vec<(String, u64, u64)> {
    let mut out: Vec<(String, u64, u64)> = node["checks"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| {
            (c["name"].as_str().unwrap_or("").to_string(), c["passed"].as_u64().unwrap(), c["failed"].as_u64().unwrap())
        })
        .collect();
    for s in node["stages"].as_array().into_iter().flatten() {
        out.extend(checks(s));
    }
    out
}

/// Asserts that the checks whose names contain one of `failing` failed at least once, and
/// that every other check held.
fn assert_fails_only(name: &str, scenario: &Value, failing: &[&str]) {
    let all = checks(scenario);
    let shown = || all.iter().map(|(n, p, f)| format!("  {n}: {p} passed, {f} failed")).collect::<Vec<_>>().join("\n");
    for want in failing {
        assert!(
            all.iter().any(|(n, _, f)| n.contains(want) && *f > 0),
            "{name}: the check '{want}' should have failed:\n{}",
            shown()
        );
    }
    for (n, _, f) in &all {
        if *f > 0 {
            assert!(failing.iter().any(|w| n.contains(w)), "{name}: '{n}' failed but should hold:\n{}", shown());
        }
    }
    assert!(all.iter().any(|(_, p, _)| *p > 0), "{name}: no check held at all:\n{}", shown());
    assert_eq!(scenario["status"], "failed", "{name}");
}

#[test]
fn memory_stability_catches_a_leaking_server() {
    let s = run_against("memory_stability", &["--fault-leak", "64KB"], &["duration=6s", "warmup=1s"]);
    assert_fails_only("memory_stability", &s, &["the target's memory growth"]);
}

#[test]
fn error_handling_catches_wrong_error_codes() {
    // Strict: every class with a specified code fails.
    let s = run_against("error_handling", &["--fault-wrong-error-codes"], &["rounds=5", "strict=true"]);
    assert_fails_only(
        "error_handling",
        &s,
        &[
            "-32700 (parse error)",
            "(-32600, invalid request)",
            "-32601 (method not found)",
            "(-32602, invalid params)",
            "unknown tool is refused",
        ],
    );
    // By default codes the SDKs answer differently are deviations, but a parse error or an
    // unknown method answered -32603 is still wrong.
    let s = run_against("error_handling", &["--fault-wrong-error-codes"], &["rounds=5"]);
    assert_fails_only(
        "error_handling",
        &s,
        &["-32700 (parse error)", "-32601 (method not found)", "unknown tool is refused"],
    );
}

#[test]
fn graceful_degradation_catches_a_collapsing_server() {
    let s = run_against("graceful_degradation", &["--max-inflight", "8", "--fault-collapse"], &[]);
    assert_fails_only(
        "graceful_degradation",
        &s,
        &["rejects the excess", "rejections are clean", "throughput recovers"],
    );
}

#[test]
fn failover_recovery_catches_a_server_that_stays_down() {
    let s = run_against("failover_recovery", &["--fault-stay-down"], &[]);
    let all = checks(&s);
    let failed = |want: &str| all.iter().any(|(n, _, f)| n.contains(want) && *f > 0);
    assert!(failed("comes back after the kill"), "{all:?}");
    assert!(failed("recovered within"), "{all:?}");
    assert!(failed("of the broken sessions recovered"), "{all:?}");
    assert!(!failed("every request is accounted for"), "{all:?}");
    assert!(!failed("answers before the kill"), "{all:?}");
    assert_eq!(s["status"], "failed");
}

#[test]
fn latency_consistency_catches_latency_jitter() {
    let s = run_against("latency_consistency", &["--fault-jitter", "200ms", "--fault-jitter-fraction", "0.05"], &[]);
    assert_fails_only("latency_consistency", &s, &["coefficient of variation", "p99 / p50"]);
}

#[test]
fn connection_scaling_catches_a_connection_limit() {
    let s = run_against("connection_scaling", &["--max-connections", "300"], &["stages=[100, 500]"]);
    assert_fails_only("connection_scaling", &s, &["of the sessions are established"]);
    // The 100-session stage is within the limit: its checks held.
    let first = &s["stages"][0];
    assert_eq!(first["status"], "passed", "{first}");
}

#[test]
fn sustained_load_catches_error_replies() {
    let s = run_against("sustained_load", &["--error-rate", "0.02"], &["rate=1000", "sessions=100", "duration=2s"]);
    assert_fails_only("sustained_load", &s, &["the error rate stays at most"]);
}

#[test]
fn the_scenarios_pass_against_a_well_behaved_server() {
    for (name, sets) in [
        ("memory_stability", &["duration=6s", "warmup=1s"][..]),
        ("error_handling", &["rounds=5"][..]),
        ("latency_consistency", &[][..]),
    ] {
        let s = run_against(name, &[], sets);
        let failed: Vec<_> = checks(&s).into_iter().filter(|c| c.2 > 0).collect();
        assert!(failed.is_empty(), "{name}: {failed:?}");
        assert_eq!(s["status"], "passed", "{name}");
    }
}
