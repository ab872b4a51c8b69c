//! The suite's managed server (`server:` in suite.yaml), kept minimal and in one place so
//! the fuller `src/managed/` can replace it: spawn the command (dies with mcpscript:
//! PR_SET_PDEATHSIG, and killed on drop), wait until it is ready (a TCP connect to
//! `ready.tcp` or the target's address, or a line of its output containing `ready.log`),
//! start it again before a scenario when it exited and `restart: on-exit`, and stop it at
//! the end with SIGTERM, then SIGKILL after a grace period.

use super::manifest::{Restart, ServerSpec};
use crate::client::Target;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::runtime::Handle;

/// How long a stopped server gets to exit after SIGTERM.
const STOP_GRACE: Duration = Duration::from_secs(5);
const READY_DEFAULT: Duration = Duration::from_secs(10);

pub struct ManagedServer {
    spec: ServerSpec,
    target: Target,
    handle: Handle,
    child: Option<Child>,
    pub restarts: u32,
}

impl ManagedServer {
    /// Starts the server and waits until it is ready.
    pub fn start(spec: &ServerSpec, target: &Target, handle: &Handle) -> Result<ManagedServer, String> {
        let mut m = ManagedServer {
            spec: spec.clone(),
            target: target.clone(),
            handle: handle.clone(),
            child: None,
            restarts: 0,
        };
        m.spawn()?;
        Ok(m)
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(Child::id)
    }

    fn spawn(&mut self) -> Result<(), String> {
        let args = self.spec.command.args();
        let (prog, rest) = args.split_first().ok_or("the server command is empty")?;
        let mut cmd = Command::new(prog);
        cmd.args(rest)
            .envs(&self.spec.env)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            // Out of the terminal's process group: Ctrl-C reaches mcpscript, which stops it.
            .process_group(0);
        crate::client::transport::stdio::die_with_parent(&mut cmd);
        let _guard = self.handle.enter();
        let mut child = cmd.spawn().map_err(|e| format!("cannot start {prog}: {e}"))?;
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
        for out in [
            child.stdout.take().map(|o| Box::new(o) as Box<dyn tokio::io::AsyncRead + Unpin + Send>),
            child.stderr.take().map(|o| Box::new(o) as Box<dyn tokio::io::AsyncRead + Unpin + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let tx = tx.clone();
            self.handle.spawn(async move {
                let mut lines = BufReader::new(out).lines();
                while let Ok(Some(l)) = lines.next_line().await {
                    let _ = tx.send(l);
                }
            });
        }
        drop(tx);
        let wait = self.spec.ready.timeout.map(|d| d.0).unwrap_or(READY_DEFAULT);
        let log = self.spec.ready.log.clone();
        let addr = self.spec.ready.tcp.clone().or_else(|| address_of(&self.target));
        let ready = self.handle.block_on(async {
            tokio::time::timeout(wait, async {
                if let Some(text) = log {
                    while let Some(l) = rx.recv().await {
                        if l.contains(&text) {
                            return Ok(());
                        }
                    }
                    return Err(format!("it exited before printing \"{text}\""));
                }
                let Some(addr) = addr else { return Ok(()) };
                loop {
                    if tokio::net::TcpStream::connect(&addr).await.is_ok() {
                        return Ok(());
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            })
            .await
            .map_err(|_| format!("not ready within {}", crate::util::duration::format_duration(wait)))
            .and_then(|r| r)
        });
        self.child = Some(child);
        ready
    }

    /// With `restart: on-exit`, starts the server again when it has exited.
    pub fn ensure_running(&mut self) {
        if self.spec.restart != Restart::OnExit {
            return;
        }
        let exited = self.child.as_mut().is_none_or(|c| matches!(c.try_wait(), Ok(Some(_))));
        if exited {
            self.restarts += 1;
            if let Err(e) = self.spawn() {
                tracing::warn!("the suite's server did not restart: {e}");
            }
        }
    }

    /// SIGTERM, then SIGKILL after the grace period.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else { return };
        if let Some(pid) = child.id() {
            // SAFETY: kill only sends a signal to the child we started.
            unsafe { libc::kill(pid as i32, libc::SIGTERM) };
        }
        let _guard = self.handle.enter();
        let exited = self.handle.block_on(async { tokio::time::timeout(STOP_GRACE, child.wait()).await.is_ok() });
        if !exited {
            let _ = child.start_kill();
            let _ = self.handle.block_on(child.wait());
        }
    }
}

impl Drop for ManagedServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `HOST:PORT` of a URL target.
fn address_of(t: &Target) -> Option<String> {
    let u = url::Url::parse(&t.to_string()).ok()?;
    Some(format!("{}:{}", u.host_str()?, u.port_or_known_default()?))
}
