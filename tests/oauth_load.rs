//! Load phases with `--oauth`, end to end (`mcpscript run`), against the OAuth-protected
//! test server of `tests/common/oauth.rs`: closed and open phases over the lean Streamable
//! HTTP path take the run's token (one fetch per process, however many sessions), refresh
//! it before it expires while the phases go on (no request carries an expired token, no
//! 401 reaches the results), worker processes each fetch their own once, a phase over
//! legacy SSE (full client sessions) shares one token too, and no output shows a token or
//! the client secret.

mod common;

use common::oauth::{assert_no_secrets, Config, Protected, Seen, CC, CLIENT_SECRET};
use serde_json::Value;
use std::process::Command;
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_mcpscript");

/// Runs `script` against `target` with `--oauth` (client credentials) and returns the
/// load phases of its results, having checked the exit code and that no output shows a
/// token or the secret.
fn run(target: &str, script: &str) -> Vec<Value> {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("load.rhai");
    std::fs::write(&file, script).unwrap();
    let out = Command::new(BIN)
        .arg("run")
        .arg(&file)
        .args(["--target", target, "--request-timeout", "5s", "-q", "--out"])
        .arg(dir.path().join("out"))
        .args(CC)
        .env("RUST_LOG", "debug")
        .env("MCPSCRIPT_OAUTH_CLIENT_SECRET", CLIENT_SECRET)
        .env("MCPSCRIPT_NO_HISTORY", "1")
        .env_remove("MCPSCRIPT_MAX_CONNS_PER_PROCESS")
        .env_remove("MCPSCRIPT_BEARER")
        .output()
        .unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert_no_secrets(&stdout, &stderr, &dir.path().join("out"));
    let results: Value = serde_json::from_slice(&std::fs::read(dir.path().join("out/results.json")).unwrap()).unwrap();
    results["scenarios"].as_array().unwrap().iter().flat_map(|s| s["phases"].as_array().unwrap().clone()).collect()
}

fn n(v: &Value, k: &str) -> u64 {
    v[k].as_u64().unwrap_or_else(|| panic!("{k} missing in {v}"))
}

/// Every request of the phase succeeded (none refused, none failed).
fn assert_all_ok(p: &Value, sessions: u64) {
    assert!(n(p, "sent") > 0 && n(p, "sent") == n(p, "ok"), "{}: {p}", p["name"]);
    assert!(p["errors"].as_object().is_none_or(|e| e.is_empty()), "{}: {}", p["name"], p["errors"]);
    assert_eq!(n(&p["connect"], "ok"), sessions, "{}: {}", p["name"], p["connect"]);
}

/// The only requests that went without a token are the `initialize`s of sessions that
/// connected before the first token (at most `sessions`), and none carried an expired one.
fn assert_tokens_carried(p: &Protected, sessions: usize) {
    let log = p.state.log();
    let missing: Vec<_> = log.iter().filter(|r| r.3 == Seen::Missing).collect();
    assert!(missing.len() <= sessions, "{missing:?}");
    assert!(missing.iter().all(|r| r.0 == "POST" && r.2.contains("\"initialize\"")), "{missing:?}");
    let stale: Vec<_> = log.iter().filter(|r| matches!(r.3, Seen::Stale(_))).collect();
    assert!(stale.is_empty(), "requests carried an expired token: {stale:?}");
}

#[test]
fn lean_http_phases_share_one_token_and_refresh_it_before_it_expires() {
    // Tokens expire in 2 s (the resource takes them for 3 s); the phases last 6 s.
    let p = Protected::start(Config { expires_in: Some(2), valid_for: |_| Duration::from_secs(3) });
    let script = r#"
load::closed(#{name: "closed", sessions: 4, duration: "3s", think: "10ms"});
load::open(#{name: "open", sessions: 4, rate: 100, duration: "3s"});
"#;
    let phases = run(&p.url("/mcp"), script);
    assert_eq!(phases.len(), 2);
    for ph in &phases {
        assert_all_ok(ph, 4);
    }
    assert!(n(&phases[1], "sent") >= 250, "{}", phases[1]);
    assert_tokens_carried(&p, 4);
    // One fetch, then a refresh every ~1.6 s (a fifth of the life before expiry): never
    // two at once, however many sessions needed the token.
    let issued = p.state.issued();
    assert!((3..=6).contains(&issued.len()), "{} tokens", issued.len());
    for w in issued.windows(2) {
        assert!(w[1] - w[0] >= Duration::from_secs(1), "two fetches {:?} apart", w[1] - w[0]);
    }
}

#[test]
fn each_worker_process_fetches_one_token() {
    let p = Protected::start(Config { expires_in: None, valid_for: |_| Duration::from_secs(60) });
    let script = r#"load::closed(#{name: "workers", sessions: 6, iterations: 300, processes: 2});"#;
    let phases = run(&p.url("/mcp"), script);
    let ph = &phases[0];
    assert_all_ok(ph, 6);
    assert_eq!(n(ph, "sent"), 300);
    let workers = ph["workers"].as_array().unwrap();
    assert_eq!(workers.len(), 2, "{ph}");
    assert!(workers.iter().all(|w| w["status"] == "ok"), "{workers:?}");
    assert_eq!(p.state.tokens(), 2, "one token per worker process");
    assert_tokens_carried(&p, 6);
}

#[test]
fn a_phase_over_legacy_sse_shares_the_runs_token() {
    let p = Protected::start(Config { expires_in: None, valid_for: |_| Duration::from_secs(60) });
    let script = r#"load::closed(#{name: "sse", sessions: 3, iterations: 60});"#;
    let phases = run(&format!("sse+{}", p.url("/sse")), script);
    assert_all_ok(&phases[0], 3);
    assert_eq!(p.state.tokens(), 1);
    let log = p.state.log();
    // Only streams opened before the first token went without one; every POST carried it.
    assert!(log.iter().filter(|r| r.3 == Seen::Missing).all(|r| r.0 == "GET" && r.1 == "/sse"), "{log:?}");
    assert!(log.iter().any(|r| r.0 == "POST" && r.3 == Seen::Token(1)));
}
