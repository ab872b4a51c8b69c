//! The suite's managed server (`server:` in suite.yaml) on top of [`crate::managed`]: the
//! command is started before the first scenario and waits until it is ready (by default a
//! client connects to the target and `initialize` succeeds; or a line of its output
//! contains `ready.log`; or `ready.delay` passed); with `restart: on-exit` it is started
//! again before a scenario when it has exited; it is stopped (SIGTERM, then SIGKILL, to its
//! whole process group) at the end, and its group dies with mcpscript whatever happens
//! (through the `reap` supervisor of [`crate::util::proc`]). Scenarios reach it as
//! the run's managed target, so `chaos::kill()` and friends act on it.

use super::manifest::{Restart, ServerSpec};
use crate::client::Target;
use crate::load::SharedServer;
use crate::managed::{self, ManagedError, Ready, Which};
use std::sync::Arc;
use std::time::Duration;
use tokio::runtime::Handle;

const READY_DEFAULT: Duration = Duration::from_secs(10);

pub struct SuiteServer {
    pub shared: SharedServer,
    restart: Restart,
    handle: Handle,
    ready_timeout: Duration,
    pub restarts: u32,
}

impl SuiteServer {
    /// Starts the server and waits until it is ready.
    pub fn start(spec: &ServerSpec, target: &Target, handle: &Handle) -> Result<SuiteServer, ManagedError> {
        let ready_timeout = spec.ready.timeout.map(|d| d.0).unwrap_or(READY_DEFAULT);
        let ready = match (&spec.ready.log, spec.ready.delay) {
            (Some(text), _) => Ready::LogLine(text.clone()),
            (None, Some(d)) => Ready::Delay(d.0),
            (None, None) => Ready::Connect(target.clone()),
        };
        let m = managed::ServerSpec {
            command: spec.command.args(),
            env: spec.env.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            cwd: None,
            target: Some(target.clone()),
            ready,
            ready_timeout,
        };
        let server = handle.block_on(managed::ManagedServer::start(m))?;
        Ok(SuiteServer {
            shared: SharedServer(Arc::new(tokio::sync::Mutex::new(server))),
            restart: spec.restart,
            handle: handle.clone(),
            ready_timeout,
            restarts: 0,
        })
    }

    /// The server's processes, for RSS and CPU sampling.
    pub fn pids(&self) -> Vec<u32> {
        self.handle.block_on(async { self.shared.0.lock().await.pids() })
    }

    /// With `restart: on-exit`, starts the server again when it has exited.
    pub fn ensure_running(&mut self) {
        if self.restart != Restart::OnExit {
            return;
        }
        let (shared, wait) = (self.shared.clone(), self.ready_timeout);
        let restarted = self.handle.block_on(async move {
            let mut m = shared.0.lock().await;
            if m.running() == m.workers() {
                return Ok(false);
            }
            m.restart(Which::All).await?;
            m.wait_ready(wait).await?;
            Ok::<bool, ManagedError>(true)
        });
        match restarted {
            Ok(true) => self.restarts += 1,
            Ok(false) => {}
            Err(e) => tracing::warn!("the suite's server did not restart: {e}"),
        }
    }
}

impl Drop for SuiteServer {
    fn drop(&mut self) {
        let shared = self.shared.clone();
        self.handle.block_on(async move {
            let _ = shared.0.lock().await.stop(Which::All).await;
        });
    }
}
