//! Newline-delimited JSON-RPC serving: `tcp://` listeners and `--stdio`. Each connection is
//! one task that reads lines, answers ready replies in one write per read burst, and spawns
//! a task only for replies that wait (sleep, injected latency) and for calls that talk to
//! the client while they run (their notifications and requests go out as lines; the
//! client's replies come back on the same connection).

use super::handler::{Outcome, ServerState, SessionState};
use super::stats::Stats;
use crate::net::lines::{LineError, LineReader};
use crate::protocol::jsonrpc::{ErrorObject, Response, INVALID_REQUEST};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::{watch, Mutex};

/// First size of a connection's read buffer.
const INITIAL_BUFFER: usize = 1024;

/// Accepts connections until `shutdown` turns true, then closes the open ones.
pub async fn serve_tcp(listener: TcpListener, state: Arc<ServerState>, mut shutdown: watch::Receiver<bool>) {
    while let Some(mut stream) = super::accept_or_stop(&listener, &mut shutdown).await {
        if state.at_connection_limit() {
            Stats::inc(&state.stats.connections_refused);
            let mut line = state.encode(Response::err(None, ServerState::overloaded_error("too many connections")));
            line.push(b'\n');
            tokio::spawn(async move {
                let _ = stream.write_all(&line).await;
            });
            continue;
        }
        let _ = stream.set_nodelay(true);
        let (state, mut shutdown) = (state.clone(), shutdown.clone());
        tokio::spawn(async move {
            let (r, w) = stream.into_split();
            tokio::select! {
                _ = serve_stream(state, r, w) => {}
                _ = shutdown.wait_for(|s| *s) => {}
            }
        });
    }
}

/// Serves one session on stdin/stdout until stdin ends.
pub async fn serve_stdio(state: Arc<ServerState>) {
    serve_stream(state, tokio::io::stdin(), tokio::io::stdout()).await;
}

/// Serves one newline-delimited session over a reader and a writer.
pub async fn serve_stream<R, W>(state: Arc<ServerState>, reader: R, writer: W)
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin + Send + 'static,
{
    Stats::inc(&state.stats.connections_total);
    state.stats.connections_open.fetch_add(1, Ordering::Relaxed);
    let session = Arc::new(SessionState::new(false));
    let writer = Arc::new(Mutex::new(writer));
    let mut lines = LineReader::new(reader, INITIAL_BUFFER, state.config.max_message_size);
    let mut out: Vec<u8> = Vec::new();
    loop {
        match lines.next_line().await {
            Ok(Some(line)) => match state.handle_frame(&session, line) {
                Outcome::Ready(Some(reply)) => {
                    out.extend_from_slice(&reply);
                    out.push(b'\n');
                }
                Outcome::Ready(None) => {}
                Outcome::Pending(reply) => {
                    let writer = writer.clone();
                    tokio::spawn(async move {
                        if let Some(mut reply) = reply.await {
                            reply.push(b'\n');
                            let _ = writer.lock().await.write_all(&reply).await;
                        }
                    });
                }
                Outcome::Stream(call) => {
                    let (writer, mut messages) = (writer.clone(), call.start());
                    tokio::spawn(async move {
                        while let Some(mut message) = messages.recv().await {
                            message.push(b'\n');
                            let mut w = writer.lock().await;
                            if w.write_all(&message).await.is_err() || w.flush().await.is_err() {
                                break;
                            }
                        }
                    });
                }
            },
            Ok(None) => break,
            Err(LineError::TooLong { limit }) => {
                let err =
                    ErrorObject::new(INVALID_REQUEST, format!("message exceeds the limit of {limit} bytes; closing"));
                out.extend_from_slice(&state.encode(Response::err(None, err)));
                out.push(b'\n');
                let _ = writer.lock().await.write_all(&out).await;
                break;
            }
            Err(LineError::Io(_)) => break,
        }
        // Flush once per burst: replies to every line already buffered go out together.
        if !out.is_empty() && !lines.has_buffered_line() {
            let mut w = writer.lock().await;
            if w.write_all(&out).await.is_err() || w.flush().await.is_err() {
                break;
            }
            out.clear();
            if out.capacity() > 64 * 1024 {
                out.shrink_to(INITIAL_BUFFER);
            }
        }
    }
    state.stats.connections_open.fetch_sub(1, Ordering::Relaxed);
}
