//! One child process of a managed target, in its own process group
//! ([`crate::util::proc::spawn_group`]): every signal (kill, stop, suspend, resume) reaches
//! the whole group, so a server started through `npm start` or `sh -c` is acted on with
//! its children; Ctrl-C reaches mcpscript only, which then stops the target; the group is
//! killed on drop and dies with mcpscript, even a SIGKILLed one.
//! Its stdout and stderr are read by a task each: the last lines are kept for error
//! messages and, until the process is ready, every line is forwarded to whoever waits for
//! a readiness line.

use super::ManagedError;
use crate::util::proc::{spawn_group, Group};
use std::collections::VecDeque;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::sync::mpsc;

/// Lines of output kept for error messages.
const TAIL_LINES: usize = 20;

/// How to (re)start one process.
#[derive(Debug, Clone)]
pub struct Launch {
    pub command: Vec<String>,
    pub env: Vec<(String, String)>,
    pub cwd: Option<PathBuf>,
}

impl Launch {
    pub fn describe(&self) -> String {
        self.command.join(" ")
    }
}

/// A running (or exited) child process and its process group.
pub struct Proc {
    child: Group,
    pid: u32,
    tail: Arc<Mutex<VecDeque<String>>>,
    /// Output lines until the receiver is dropped (once the process is ready).
    pub lines: Option<mpsc::UnboundedReceiver<String>>,
}

fn forward<R: AsyncRead + Unpin + Send + 'static>(
    r: Option<R>,
    tail: Arc<Mutex<VecDeque<String>>>,
    tx: mpsc::UnboundedSender<String>,
) {
    let Some(r) = r else { return };
    tokio::spawn(async move {
        let mut lines = BufReader::new(r).lines();
        while let Ok(Some(l)) = lines.next_line().await {
            {
                let mut t = tail.lock().unwrap_or_else(|e| e.into_inner());
                if t.len() == TAIL_LINES {
                    t.pop_front();
                }
                t.push_back(l.clone());
            }
            // Nobody listens once the process is ready: the line is only kept in the tail.
            let _ = tx.send(l);
        }
    });
}

impl Proc {
    pub fn spawn(launch: &Launch) -> Result<Proc, ManagedError> {
        let Some((program, args)) = launch.command.split_first() else {
            return Err(ManagedError::Spawn { command: String::new(), detail: "the command is empty".into() });
        };
        let mut child = spawn_group(program, args, |cmd| {
            cmd.envs(launch.env.iter().map(|(k, v)| (k, v)))
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped());
            if let Some(d) = &launch.cwd {
                cmd.current_dir(d);
            }
        })
        .map_err(|e| ManagedError::Spawn {
            command: launch.describe(),
            detail: match e.kind() {
                std::io::ErrorKind::NotFound => "no such command (not found on PATH)".into(),
                std::io::ErrorKind::PermissionDenied => "permission denied (is it executable?)".into(),
                _ => e.to_string(),
            },
        })?;
        let pid = child.pid();
        let tail = Arc::new(Mutex::new(VecDeque::new()));
        let (tx, rx) = mpsc::unbounded_channel();
        forward(child.take_stdout(), tail.clone(), tx.clone());
        forward(child.take_stderr(), tail.clone(), tx);
        Ok(Proc { child, pid, tail, lines: Some(rx) })
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The last lines the process printed (stdout and stderr), for error messages.
    pub fn tail(&self) -> String {
        let t = self.tail.lock().unwrap_or_else(|e| e.into_inner());
        t.iter().cloned().collect::<Vec<_>>().join("\n")
    }

    /// Whether the process still runs (a stopped one counts as running).
    pub fn running(&mut self) -> bool {
        self.child.running()
    }

    /// How it ended, if it did.
    pub fn exit_status(&mut self) -> Option<String> {
        match self.child.try_wait() {
            Ok(Some(s)) => Some(s.to_string()),
            _ => None,
        }
    }

    /// Sends `sig` to the process group if the process has not been reaped yet.
    pub fn signal(&mut self, sig: libc::c_int) -> bool {
        self.child.signal(sig)
    }

    /// SIGKILL to the group, and reap.
    pub async fn kill(&mut self) {
        self.child.kill().await
    }

    /// SIGTERM (and SIGCONT, so a suspended process sees it), `grace` to exit, then SIGKILL.
    pub async fn terminate(&mut self, grace: Duration) {
        if !self.signal(libc::SIGTERM) {
            return;
        }
        self.signal(libc::SIGCONT);
        if tokio::time::timeout(grace, self.child.wait()).await.is_err() {
            self.kill().await;
        }
    }

    /// Waits until the process exits, at most `d`; true when it has.
    pub async fn wait_exit(&mut self, d: Duration) -> bool {
        tokio::time::timeout(d, self.child.wait()).await.is_ok()
    }
}
