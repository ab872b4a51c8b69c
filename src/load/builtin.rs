//! The built-in server at scale: `mcpscript serve` as K sibling worker processes (a
//! [`ManagedServer`]), with K sized from the wanted connection count and one process's
//! open-file budget (the processes share the port with SO_REUSEPORT, so each holds about
//! 1/K of the sessions). Returns the URL and the PIDs for the sampler; stopped (SIGTERM,
//! then SIGKILL) at the end and killed with mcpscript if it dies first.

use super::error::LoadError;
use crate::managed::ManagedServer;
use std::path::Path;

/// Head room over an even spread (SO_REUSEPORT hashes connections, it does not count them).
const SPREAD_MARGIN: f64 = 1.15;

/// A running built-in server sized for a phase.
pub struct ScaledServer {
    server: ManagedServer,
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
    ) -> Result<ScaledServer, LoadError> {
        let workers = workers_for(connections, per_process);
        let server = ManagedServer::start_builtin(exe, workers, extra).await?;
        let url = server.target().to_string();
        Ok(ScaledServer { server, url, workers })
    }

    /// The PIDs of the worker processes (for the sampler).
    pub fn pids(&mut self) -> Vec<u32> {
        self.server.pids()
    }

    /// SIGTERM, a grace period for a clean exit, then SIGKILL.
    pub async fn stop(self) {
        self.server.shutdown().await;
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
