//! Multi-process serving: the parent binds each port with SO_REUSEPORT, starts `--workers
//! N-1` copies of itself on the same concrete ports, waits until each says it listens, and
//! on shutdown stops them (SIGTERM, then SIGKILL after a grace period) and sums the
//! counters each prints as it exits. Children die with the parent (PR_SET_PDEATHSIG).

use super::{ServerConfig, ServerError};
use serde_json::Value;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Line prefix a server prints for each URL it serves.
pub const LISTENING: &str = "listening ";
/// Line prefix a server prints with its counters as it exits.
pub const STATS: &str = "stats ";
/// Environment variable that carries the auth token to workers (kept out of `ps`).
pub const AUTH_ENV: &str = "MCPSCRIPT_AUTH_TOKEN";
/// Environment variable that carries the HTTP session-signing key to workers.
pub const SECRET_ENV: &str = "MCPSCRIPT_SESSION_SECRET";

struct Worker {
    child: Child,
    stats: JoinHandle<Option<Value>>,
}

/// The worker processes of one `serve`.
pub struct WorkerSet {
    workers: Vec<Worker>,
}

/// The command-line flags that reproduce `config` except `--listen` and `--workers`.
fn worker_args(config: &ServerConfig, urls: &[String], index: usize) -> Vec<String> {
    let mut a = vec!["serve".to_string(), "--workers".into(), "1".into(), "--worker-index".into(), index.to_string()];
    a.extend(["--threads".into(), config.threads.to_string()]);
    for u in urls {
        a.extend(["--listen".into(), u.clone()]);
    }
    if let Some(n) = config.max_connections {
        a.extend(["--max-connections".into(), n.to_string()]);
    }
    if let Some(n) = config.max_inflight {
        a.extend(["--max-inflight".into(), n.to_string()]);
    }
    if let Some(d) = config.latency {
        a.extend(["--latency".into(), format!("{}us", d.as_micros())]);
    }
    if config.error_rate > 0.0 {
        a.extend(["--error-rate".into(), config.error_rate.to_string()]);
    }
    for o in &config.allowed_origins {
        a.extend(["--allow-origin".into(), o.clone()]);
    }
    if config.allow_remote {
        a.push("--allow-remote".into());
    }
    a.extend(["--max-message-size".into(), config.max_message_size.to_string()]);
    if let Some(t) = &config.tls {
        a.extend(["--tls-cert".into(), t.cert.display().to_string(), "--tls-key".into(), t.key.display().to_string()]);
    }
    let f = &config.faults;
    if let Some(n) = f.leak {
        a.extend(["--fault-leak".into(), format!("{n}B")]);
    }
    for (on, flag) in [
        (f.wrong_error_codes, "--fault-wrong-error-codes"),
        (f.collapse, "--fault-collapse"),
        (f.stay_down, "--fault-stay-down"),
    ] {
        if on {
            a.push(flag.into());
        }
    }
    if let Some(d) = f.jitter {
        a.extend(["--fault-jitter".into(), format!("{}us", d.as_micros())]);
        a.extend(["--fault-jitter-fraction".into(), f.jitter_fraction.to_string()]);
    }
    a
}

/// Starts `config.workers - 1` worker processes on `urls` (already bound by this process,
/// so their ports are concrete) and waits until each listens.
pub async fn spawn(config: &ServerConfig, urls: &[String]) -> Result<WorkerSet, ServerError> {
    let exe = std::env::current_exe().map_err(|e| ServerError::Workers(format!("cannot find own executable: {e}")))?;
    let mut set = WorkerSet { workers: Vec::new() };
    for index in 1..config.workers {
        let mut cmd = Command::new(&exe);
        cmd.args(worker_args(config, urls, index))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        if let Some(t) = &config.auth_token {
            cmd.env(AUTH_ENV, t);
        }
        cmd.env(SECRET_ENV, config.session_secret.to_string());
        crate::client::transport::stdio::die_with_parent(&mut cmd);
        let mut child = cmd.spawn().map_err(|e| ServerError::Workers(format!("cannot start worker {index}: {e}")))?;
        let stdout = child.stdout.take().ok_or_else(|| ServerError::Workers("worker has no stdout".into()))?;
        let (ready_tx, ready_rx) = oneshot::channel();
        let want = urls.len();
        let stats = tokio::spawn(async move {
            let mut lines = BufReader::new(stdout).lines();
            let (mut listening, mut ready_tx, mut stats) = (0, Some(ready_tx), None);
            while let Ok(Some(line)) = lines.next_line().await {
                if line.starts_with(LISTENING) {
                    listening += 1;
                    if listening == want {
                        if let Some(tx) = ready_tx.take() {
                            let _ = tx.send(());
                        }
                    }
                } else if let Some(json) = line.strip_prefix(STATS) {
                    stats = serde_json::from_str(json).ok();
                }
            }
            stats
        });
        set.workers.push(Worker { child, stats });
        match tokio::time::timeout(Duration::from_secs(10), ready_rx).await {
            Ok(Ok(())) => {}
            _ => {
                set.stop().await;
                return Err(ServerError::Workers(format!("worker {index} did not start listening within 10 s")));
            }
        }
    }
    Ok(set)
}

impl WorkerSet {
    /// Process ids of the running workers.
    pub fn pids(&self) -> Vec<u32> {
        self.workers.iter().filter_map(|w| w.child.id()).collect()
    }

    /// Sends SIGTERM to every worker, waits up to 5 s, kills stragglers, and returns the
    /// counters each reported.
    pub async fn stop(self) -> Vec<Value> {
        for w in &self.workers {
            if let Some(pid) = w.child.id() {
                // SAFETY: signalling a child we spawned and have not yet reaped.
                unsafe { libc::kill(pid as libc::pid_t, libc::SIGTERM) };
            }
        }
        let mut out = Vec::new();
        for mut w in self.workers {
            if tokio::time::timeout(Duration::from_secs(5), w.child.wait()).await.is_err() {
                let _ = w.child.kill().await;
            }
            if let Ok(Some(s)) = w.stats.await {
                out.push(s);
            }
        }
        out
    }
}
