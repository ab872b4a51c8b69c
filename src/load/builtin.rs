//! The built-in server at scale: `mcpscript serve --workers K` as a child process, with K
//! sized from the wanted connection count and one process's open-file budget (the server
//! processes share the port with SO_REUSEPORT, so each holds about 1/K of the sessions).
//! Returns the URL and the PIDs for the sampler; stopped (SIGTERM, then SIGKILL) at the end
//! and killed with mcpscript if it dies first.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// Head room over an even spread (SO_REUSEPORT hashes connections, it does not count them).
const SPREAD_MARGIN: f64 = 1.15;

/// A running `mcpscript serve --workers K`.
pub struct ScaledServer {
    child: Child,
    pub url: String,
    pub workers: u32,
}

/// Server processes needed to hold `connections` at `per_process` each.
pub fn workers_for(connections: u64, per_process: u64) -> u32 {
    ((connections as f64 * SPREAD_MARGIN / per_process.max(1) as f64).ceil() as u32).clamp(1, 64)
}

impl ScaledServer {
    /// Starts the server for `connections` connections and waits until every worker listens.
    pub async fn start(
        exe: &Path,
        connections: u64,
        per_process: u64,
        extra: &[String],
    ) -> Result<ScaledServer, String> {
        let workers = workers_for(connections, per_process);
        let mut cmd = Command::new(exe);
        cmd.args(["serve", "--listen", "tcp://127.0.0.1:0", "--workers", &workers.to_string()])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            // Out of the terminal's process group: Ctrl-C stops the load, then mcpscript
            // stops the server.
            .process_group(0);
        crate::client::transport::stdio::die_with_parent(&mut cmd);
        let mut child =
            cmd.spawn().map_err(|e| format!("cannot start the built-in server ({}): {e}", exe.display()))?;
        let stdout = child.stdout.take().ok_or("the built-in server has no stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let wait = Duration::from_secs(10 + workers as u64 * 2);
        let url = tokio::time::timeout(wait, async {
            while let Ok(Some(l)) = lines.next_line().await {
                if let Some(u) = l.strip_prefix(crate::server::workers::LISTENING) {
                    return Some(u.trim().to_string());
                }
            }
            None
        })
        .await;
        match url {
            Ok(Some(url)) => {
                // Keep draining stdout so the server never blocks on a full pipe.
                tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
                Ok(ScaledServer { child, url, workers })
            }
            _ => {
                let _ = child.kill().await;
                Err(format!(
                    "the built-in server with {workers} workers did not start listening within {}s",
                    wait.as_secs()
                ))
            }
        }
    }

    /// The parent's PID (its workers are its children; the sampler follows them).
    pub fn pid(&self) -> u32 {
        self.child.id().unwrap_or(0)
    }

    /// SIGTERM, up to 10 s for a clean exit, then SIGKILL.
    pub async fn stop(mut self) {
        if let Some(pid) = self.child.id() {
            // SAFETY: signalling our own child, not yet reaped.
            unsafe { libc::kill(pid as libc::pid_t, libc::SIGTERM) };
        }
        if tokio::time::timeout(Duration::from_secs(10), self.child.wait()).await.is_err() {
            let _ = self.child.kill().await;
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn sizes_the_server_from_the_budget() {
        assert_eq!(super::workers_for(100, 19_800), 1);
        assert_eq!(super::workers_for(100_000, 19_800), 6);
        assert_eq!(super::workers_for(10_000_000, 100), 64);
    }
}
