//! `mcpscript serve --workers 2`: a tool call that asks the client something
//! (`elicitation/create`) finishes promptly whichever worker process the client's answer
//! lands on. The answer is POSTed on another connection than the call's event stream, so
//! SO_REUSEPORT hands it to either worker: with many sessions some answers certainly land
//! on the worker that did not ask (each one with probability about 1/2, so all 48 landing
//! right has odds near 2^-48). Without the hand-over between workers those calls would wait
//! for the server's 60 s request timeout, past the client's 10 s; here each must finish
//! within 5 s, and the summed counters the server prints at exit must show answers handed
//! over (`replies_forwarded`).

use mcpscript::client::server_requests::{Answer, ServerRequests};
use mcpscript::client::{ClientOptions, Session};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_mcpscript");
const SESSIONS: usize = 16;
const ROUNDS: usize = 3;
/// Far below the server's 60 s wait for an answer and the client's 10 s request timeout.
const PROMPT: Duration = Duration::from_secs(5);

/// `serve --workers 2` on a free port; killed (by PID) on drop if still running.
struct Serve {
    child: Child,
    stdout: BufReader<ChildStdout>,
    url: String,
}

impl Serve {
    fn start() -> Serve {
        let mut child = Command::new(BIN)
            .args(["serve", "--workers", "2", "--listen", "http://127.0.0.1:0/mcp"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn mcpscript serve --workers 2");
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        while stdout.read_line(&mut line).unwrap() > 0 {
            if let Some(url) = line.trim().strip_prefix("listening ") {
                let url = url.to_string();
                return Serve { child, stdout, url };
            }
            line.clear();
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("serve --workers 2 exited without listening");
    }

    /// SIGTERM, then the summed counters it prints as it exits.
    fn stop(mut self) -> Value {
        // SAFETY: signalling our own child, not yet reaped.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        let mut stats = None;
        let mut line = String::new();
        while self.stdout.read_line(&mut line).unwrap_or(0) > 0 {
            if let Some(json) = line.trim().strip_prefix("stats ") {
                stats = serde_json::from_str(json).ok();
            }
            line.clear();
        }
        let _ = self.child.wait();
        stats.expect("serve printed its counters")
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_to_elicitation_reach_the_worker_that_asked() {
    let serve = Serve::start();
    let target = serve.url.parse().unwrap();
    let opts = Arc::new(ClientOptions {
        request_timeout: Duration::from_secs(10),
        server_requests: ServerRequests {
            elicitation: Some(Answer::Canned(
                json!({"action": "accept", "content": {"username": "ada", "email": "ada@example.com"}}),
            )),
            ..ServerRequests::default()
        },
        ..ClientOptions::default()
    });
    for round in 0..ROUNDS {
        let sessions = futures_util::future::join_all((0..SESSIONS).map(|_| Session::connect(&target, opts.clone())))
            .await
            .into_iter()
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        let calls = sessions.iter().enumerate().map(|(i, s)| async move {
            let started = Instant::now();
            let r = s.call_tool("test_elicitation", json!({"message": format!("round {round}, session {i}")})).await;
            (r, started.elapsed())
        });
        for (i, (r, took)) in futures_util::future::join_all(calls).await.into_iter().enumerate() {
            let r = r.unwrap_or_else(|e| panic!("round {round}, session {i}: {e} (after {took:?})"));
            let text = r["content"][0]["text"].as_str().unwrap_or_default();
            assert!(text.starts_with("User response: action=accept"), "round {round}, session {i}: {r}");
            assert!(took < PROMPT, "round {round}, session {i} took {took:?}");
        }
        for s in sessions {
            s.close().await;
        }
    }
    let stats = serve.stop();
    assert_eq!(stats["workers"], 2, "{stats}");
    let forwarded = stats["replies_forwarded"].as_u64().unwrap_or(0);
    assert!(forwarded > 0, "no answer landed on the other worker, or none was handed over: {stats}");
    println!("{} of {} answers were handed to the worker that asked", forwarded, SESSIONS * ROUNDS);
}
