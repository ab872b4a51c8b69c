//! The `mcpscript` binary as a user runs it: `call` exit codes and messages, `serve`
//! readiness lines, SIGTERM, worker processes sharing a port, and bad arguments.

mod common;

use common::wait_until;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_mcpscript");

fn mcpscript(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(BIN).args(args).env("MCPSCRIPT_NO_HISTORY", "1").output().expect("run mcpscript");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A `mcpscript serve` child and the URLs it announced.
struct Serve {
    child: Child,
    urls: Vec<String>,
    lines: std::io::Lines<BufReader<std::process::ChildStdout>>,
}

impl Serve {
    fn start(args: &[&str], expect_urls: usize) -> Serve {
        let mut child =
            Command::new(BIN).arg("serve").args(args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut urls = vec![];
        while urls.len() < expect_urls {
            let line = lines.next().expect("serve printed its URLs").unwrap();
            urls.push(line.strip_prefix("listening ").expect("a listening line").to_string());
        }
        Serve { child, urls, lines }
    }

    /// SIGTERM, then the exit code and the `stats` line.
    fn stop(mut self) -> (i32, serde_json::Value) {
        // SAFETY: signalling our own child by PID.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let stats = self.lines.find_map(|l| l.ok()?.strip_prefix("stats ").map(str::to_string)).expect("a stats line");
        let code = self.child.wait().unwrap().code().unwrap_or(-1);
        (code, serde_json::from_str(&stats).unwrap())
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn a_closed_stdout_is_no_panic() {
    // `mcpscript call ... | head -c 0`: the reader is gone before the result is printed.
    let serve = Serve::start(&["--listen", "tcp://127.0.0.1:0"], 1);
    let (r, w) = std::io::pipe().unwrap();
    drop(r);
    let out = std::process::Command::new(BIN)
        .args(["call", &serve.urls[0], "tools/list"])
        .stdout(w)
        .stderr(std::process::Stdio::piped())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(out.status.code(), Some(0), "{err}");
}

#[test]
fn call_prints_results_and_uses_exit_codes() {
    let serve = Serve::start(&["--listen", "tcp://127.0.0.1:0"], 1);
    let url = serve.urls[0].clone();
    let (code, out, _) = mcpscript(&["call", &url, "tools/call", r#"{"name":"echo","arguments":{"message":"hi"}}"#]);
    assert_eq!(code, 0);
    assert_eq!(serde_json::from_str::<serde_json::Value>(&out).unwrap()["content"][0]["text"], "Echo: hi");

    let (code, _, err) = mcpscript(&["call", &url, "no/such"]);
    assert_eq!(code, 1, "a failed request exits 1");
    assert!(err.contains("-32601") && err.contains(&url), "{err}");

    let (code, _, err) = mcpscript(&["call", &url, "tools/call", "{not json"]);
    assert_eq!(code, 2, "bad arguments exit 2");
    assert!(err.contains("PARAMS is not valid JSON"), "{err}");

    let (code, _, err) = mcpscript(&["call", "gopher://x", "ping"]);
    assert_eq!(code, 2);
    assert!(err.contains("unknown scheme 'gopher'"), "{err}");

    let (code, _, err) = mcpscript(&["call", &url, "ping", "--timeout", "5 fortnights"]);
    assert_eq!(code, 2);
    assert!(err.contains("--timeout"), "{err}");

    let (code, _, err) = mcpscript(&["call", &url, "ping", "--protocol-version", "1999-01-01"]);
    assert_eq!(code, 2);
    assert!(err.contains("2025-11-25"), "{err}");

    let (code, stats) = serve.stop();
    assert_eq!(code, 0, "SIGTERM is a clean exit");
    assert_eq!(stats["sessions_initialized"], 2, "two calls got as far as a session");
}

#[test]
fn call_against_builtin_and_refused_targets() {
    let (code, out, _) = mcpscript(&["call", "builtin", "ping"]);
    assert_eq!((code, out.trim()), (0, "{}"));
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let (code, _, err) = mcpscript(&["call", &format!("tcp://127.0.0.1:{port}"), "ping"]);
    assert_eq!(code, 1);
    assert!(err.contains("cannot connect to tcp://127.0.0.1:") && err.contains("refused"), "{err}");
    let (code, _, err) = mcpscript(&["call", "stdio:/definitely/not/here", "ping"]);
    assert_eq!(code, 1);
    assert!(err.contains("no such command"), "{err}");
}

#[test]
fn serve_rejects_bad_arguments_with_exit_2() {
    for (args, needle) in [
        (vec!["serve", "--listen", "tcp://10.1.2.3:0"], "--allow-remote"),
        (vec!["serve", "--listen", "udp://127.0.0.1:0"], "unknown scheme"),
        (vec!["serve", "--error-rate", "1.5"], "between 0 and 1"),
        (vec!["serve", "--latency", "fast"], "--latency"),
        (vec!["serve", "--bogus"], "--bogus"),
    ] {
        let (code, _, err) = mcpscript(&args);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: {err}");
    }
}

#[test]
fn serve_reports_a_taken_port() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("tcp://{}", taken.local_addr().unwrap());
    let (code, _, err) = mcpscript(&["serve", "--listen", &url]);
    assert_eq!(code, 1);
    assert!(err.contains("cannot listen on") && err.contains("in use"), "{err}");
}

fn pid_alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| !s.contains(") Z "))
}

#[test]
fn workers_share_the_port_and_stop_together() {
    let serve = Serve::start(&["--listen", "tcp://127.0.0.1:0", "--workers", "3"], 1);
    let url = serve.urls[0].clone();
    let mut pids = std::collections::BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut sessions = 0;
    while pids.len() < 2 && Instant::now() < deadline {
        let (code, out, err) = mcpscript(&["call", &url, "tools/call", r#"{"name":"stats"}"#]);
        assert_eq!(code, 0, "{err}");
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        pids.insert(v["structuredContent"]["pid"].as_i64().unwrap() as i32);
        sessions += 1;
    }
    assert!(pids.len() >= 2, "connections were spread over several worker processes: {pids:?}");
    let (code, stats) = serve.stop();
    assert_eq!(code, 0);
    assert_eq!(stats["workers"], 3, "every worker reported its counters");
    assert_eq!(stats["sessions_initialized"], sessions, "the counters add up across workers");
    wait_until(Duration::from_secs(5), "the workers to exit", || pids.iter().all(|p| !pid_alive(*p)));
    for pid in pids {
        assert!(!pid_alive(pid), "worker {pid} outlived serve");
    }
}

#[test]
fn a_second_server_on_the_same_port_is_refused() {
    let first = Serve::start(&["--listen", "tcp://127.0.0.1:0"], 1);
    let (code, _, err) = mcpscript(&["serve", "--listen", &first.urls[0]]);
    assert_eq!(code, 1, "SO_REUSEPORT must not let an unrelated server share the port");
    assert!(err.contains("in use"), "{err}");
}

#[test]
fn a_lone_script_logs_on_the_run_clock_without_a_name_and_reports_while_it_runs() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("lone.rhai");
    std::fs::write(
        &script,
        "log(`rate ${human(60309.71008546234, \"req/s\")}`);\n\
         let r = load::closed(#{name: \"steady\", sessions: 1, duration: \"2500ms\", think: \"10ms\"});\n\
         log(`done: ${human(r.sent, \"sent\")}`);\ncheck(r.sent > 0, \"sent\");\n",
    )
    .unwrap();
    let out = Command::new(BIN)
        .arg("run")
        .arg(&script)
        .arg("--out")
        .arg(dir.path().join("out"))
        .current_dir(dir.path())
        .env("MCPSCRIPT_NO_HISTORY", "true")
        .env("MCPSCRIPT_PROGRESS_INTERVAL", "1s")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(0), "{err}");
    let lines: Vec<&str> = err.lines().collect();
    assert!(lines.first().is_some_and(|l| l.starts_with('[') && l.ends_with("s] rate 60.3K req/s")), "{err}");
    assert!(lines.iter().any(|l| l.contains("s] load steady (closed): ") && l.contains(" req/s, p50 ")), "{err}");
    assert!(lines.iter().any(|l| l.contains("s] running: lone (") && l.contains(", load steady: ")), "{err}");
    assert!(lines.iter().all(|l| !l.contains(" | ")), "a lone script's lines carry no name: {err}");
}
