//! `stdio:COMMAND ARGS`: spawns the server as a child speaking newline-delimited JSON-RPC
//! on stdin/stdout. The child runs in its own process group ([`spawn_group`]), which dies
//! with the session and with mcpscript, even a SIGKILLed one (wrappers such as `npx` or
//! `sh -c` leave nothing behind); the tail of its stderr is kept for error messages. The
//! messages go straight between mcpscript and the server: nothing sits between the pipes.

use super::stream::LineWriter;
use super::{BoxFuture, RawSent, Transport};
use crate::client::{ClientError, ClientOptions, Dispatcher};
use crate::protocol::Message;
pub use crate::util::proc::die_with_parent;
use crate::util::proc::{spawn_group, Group};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tokio::process::ChildStdin;

/// How much of the child's stderr is kept.
const STDERR_TAIL: usize = 4096;

pub struct StdioTransport {
    lines: LineWriter<ChildStdin>,
    child: tokio::sync::Mutex<Option<Group>>,
    stderr: Arc<Mutex<Vec<u8>>>,
}

/// Reads a child's stderr in the background and keeps its last `limit` bytes, for error
/// messages about the child.
pub fn keep_tail<R: tokio::io::AsyncRead + Unpin + Send + 'static>(
    stderr: Option<R>,
    limit: usize,
) -> Arc<Mutex<Vec<u8>>> {
    let tail = Arc::new(Mutex::new(Vec::new()));
    if let Some(mut err) = stderr {
        let tail = tail.clone();
        tokio::spawn(async move {
            let mut chunk = [0u8; 1024];
            while let Ok(n) = err.read(&mut chunk).await {
                if n == 0 {
                    break;
                }
                let mut t = tail.lock().unwrap_or_else(|e| e.into_inner());
                t.extend_from_slice(&chunk[..n]);
                let excess = t.len().saturating_sub(limit);
                t.drain(..excess);
            }
        });
    }
    tail
}

pub fn spawn(
    command: &str,
    args: &[String],
    dispatch: Arc<Dispatcher>,
    opts: &ClientOptions,
) -> Result<StdioTransport, ClientError> {
    let mut child = spawn_group(command, args, |cmd| {
        cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    })
    .map_err(|e| ClientError::Spawn {
        command: command.to_string(),
        detail: match e.kind() {
            std::io::ErrorKind::NotFound => "no such command (not found on PATH)".to_string(),
            std::io::ErrorKind::PermissionDenied => "permission denied (is it executable?)".to_string(),
            _ => e.to_string(),
        },
    })?;
    let (stdin, stdout, stderr) = (child.take_stdin(), child.take_stdout(), child.take_stderr());
    let (Some(stdin), Some(stdout)) = (stdin, stdout) else {
        return Err(ClientError::Spawn { command: command.to_string(), detail: "no stdio pipes".into() });
    };
    let tail = keep_tail(stderr, STDERR_TAIL);
    Ok(StdioTransport {
        lines: LineWriter::start(stdout, stdin, dispatch, opts.max_message_size),
        child: tokio::sync::Mutex::new(Some(child)),
        stderr: tail,
    })
}

impl StdioTransport {
    /// The last lines the child wrote to stderr.
    pub fn stderr_tail(&self) -> String {
        String::from_utf8_lossy(&self.stderr.lock().unwrap_or_else(|e| e.into_inner())).trim().to_string()
    }

    /// The child's process id (and process group id) while it runs.
    pub async fn pid(&self) -> Option<u32> {
        self.child.lock().await.as_mut().and_then(|g| g.running().then(|| g.pid()))
    }
}

impl StdioTransport {
    /// A closed pipe says why with the tail of the child's stderr.
    fn with_stderr(&self, e: ClientError) -> ClientError {
        match e {
            ClientError::Closed { target, detail } => {
                let tail = self.stderr_tail();
                let detail = if tail.is_empty() { detail } else { format!("{detail}; server stderr: {tail}") };
                ClientError::Closed { target, detail }
            }
            other => other,
        }
    }
}

impl Transport for StdioTransport {
    fn send(&self, msg: Message) -> BoxFuture<'_, Result<(), ClientError>> {
        Box::pin(async move { self.lines.send(msg).await.map_err(|e| self.with_stderr(e)) })
    }

    fn send_raw(&self, bytes: Vec<u8>) -> BoxFuture<'_, Result<RawSent, ClientError>> {
        Box::pin(async move {
            self.lines.send_raw(bytes).await.map(|()| RawSent::Awaiting).map_err(|e| self.with_stderr(e))
        })
    }

    fn send_batch(&self, msgs: Vec<Message>) -> BoxFuture<'_, Result<(), ClientError>> {
        self.lines.send_batch(msgs)
    }

    /// Closes stdin, gives the child a moment to exit, then kills its process group.
    fn close(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            self.lines.shutdown().await;
            if let Some(mut child) = self.child.lock().await.take() {
                if tokio::time::timeout(Duration::from_millis(500), child.wait()).await.is_err() {
                    let _ = child.kill().await;
                }
            }
        })
    }
}
