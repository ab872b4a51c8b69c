//! WebSocket serving: one MCP session per WebSocket connection (subprotocol `mcp`, one
//! JSON-RPC message per text frame), reached through an HTTP upgrade on an http:// or
//! ws:// listener ([`serve_upgraded`]) or a dedicated listener that does the handshake
//! itself ([`accept_tcp`], [`serve_listener`]).
//!
//! Each connection is one task that owns its `WebSocketStream` outright: no split halves,
//! no lock, no writer task. Ready replies are queued while more frames are already
//! readable and flushed once per burst. Replies that wait (`sleep`, injected latency) are
//! futures polled by the same task through a `FuturesUnordered`, so a slow request never
//! holds up the ones behind it, and a connection that ends drops its waiting requests
//! (releasing their in-flight slots) instead of leaving timers behind. Calls that talk to
//! the client while they run ([`Outcome::Stream`]) run in their own task; what they send
//! (notifications, the server's requests, then the reply) is forwarded by the same loop,
//! and the client's replies come back as frames like any other.

use super::handler::{Outcome, ServerState, SessionState};
use super::stats::Stats;
use crate::protocol::jsonrpc::{self, ErrorObject, Response, INVALID_REQUEST, PARSE_ERROR};
use futures_util::stream::{BoxStream, FuturesUnordered, SelectAll};
use futures_util::{FutureExt, SinkExt, StreamExt};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response as HandshakeResponse};
use tokio_tungstenite::tungstenite::http::{HeaderValue, StatusCode};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::WebSocketStream;

/// The WebSocket subprotocol of MCP (what the TypeScript and Python SDK clients offer).
pub const SUBPROTOCOL: &str = "mcp";

/// Initial read buffer of a connection. tungstenite allocates it eagerly and reads at most
/// this much per system call, so it trades per-connection memory against syscalls for big
/// messages; it grows (once per frame) for messages larger than this.
pub const READ_BUFFER: usize = 4096;

/// How long the opening handshake of [`accept_tcp`] may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a closing handshake may take before the socket is simply dropped.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// The tungstenite configuration of a server connection: inbound messages (and single
/// frames) up to `max_message` bytes, a small read buffer.
pub fn websocket_config(max_message: usize) -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER)
        .max_message_size(Some(max_message))
        .max_frame_size(Some(max_message))
}

/// Serves one MCP session over an already-upgraded WebSocket byte stream (the HTTP
/// upgrade handshake, including the `Sec-WebSocket-Protocol: mcp` reply, has been done by
/// the caller).
pub async fn serve_upgraded<S>(stream: S, state: Arc<ServerState>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let config = websocket_config(state.config.max_message_size);
    let ws = WebSocketStream::from_raw_socket(stream, Role::Server, Some(config)).await;
    serve_websocket(ws, state, SessionState::new(false), None).await;
}

/// Like [`serve_upgraded`], but when `shutdown` turns true the session ends with a close
/// frame 1001 ("going away") instead of the socket just dropping.
pub async fn serve_upgraded_until<S>(stream: S, state: Arc<ServerState>, shutdown: watch::Receiver<bool>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let config = websocket_config(state.config.max_message_size);
    let ws = WebSocketStream::from_raw_socket(stream, Role::Server, Some(config)).await;
    serve_websocket(ws, state, SessionState::new(false), Some(shutdown)).await;
}

/// Performs the server side of the opening handshake on a freshly accepted TCP connection
/// (any path; answering `Sec-WebSocket-Protocol: mcp` when the client offers it), then
/// serves the session like [`serve_upgraded`].
pub async fn accept_tcp(stream: TcpStream, state: Arc<ServerState>) {
    accept(stream, state, None, None).await;
}

/// Accepts WebSocket connections on a dedicated listener (handshakes only at `path`,
/// 404 elsewhere) until `shutdown` turns true; open sessions then close with 1001.
pub async fn serve_listener(
    listener: TcpListener,
    path: String,
    state: Arc<ServerState>,
    mut shutdown: watch::Receiver<bool>,
) {
    let path: Arc<str> = path.into();
    while let Some(stream) = super::accept_or_stop(&listener, &mut shutdown).await {
        tokio::spawn(accept(stream, state.clone(), Some(path.clone()), Some(shutdown.clone())));
    }
}

/// What the handshake callback decided, beyond accepting.
#[derive(Default)]
struct Admission {
    /// A valid `Authorization: Bearer` header was presented.
    authorized: bool,
}

// The callback's result type is tungstenite's `Callback` contract.
#[allow(clippy::result_large_err)]
async fn accept(
    stream: TcpStream,
    state: Arc<ServerState>,
    path: Option<Arc<str>>,
    shutdown: Option<watch::Receiver<bool>>,
) {
    let _ = stream.set_nodelay(true);
    let mut admission = Admission::default();
    let callback =
        |req: &Request, resp: HandshakeResponse| check_handshake(&state, path.as_deref(), req, resp, &mut admission);
    let config = websocket_config(state.config.max_message_size);
    let handshake = tokio_tungstenite::accept_hdr_async_with_config(stream, callback, Some(config));
    let ws = match tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake).await {
        Ok(Ok(ws)) => ws,
        Ok(Err(e)) => {
            tracing::debug!("WebSocket handshake failed: {e}");
            return;
        }
        Err(_) => {
            tracing::debug!("WebSocket handshake timed out");
            return;
        }
    };
    serve_websocket(ws, state, SessionState::new(admission.authorized), shutdown).await;
}

/// The handshake callback: path, Origin and bearer-token checks, and subprotocol choice.
#[allow(clippy::result_large_err)] // the signature is tungstenite's `Callback` contract
fn check_handshake(
    state: &ServerState,
    path: Option<&str>,
    req: &Request,
    mut resp: HandshakeResponse,
    admission: &mut Admission,
) -> Result<HandshakeResponse, ErrorResponse> {
    let refuse = |status: StatusCode, body: String| {
        let mut r = ErrorResponse::new(Some(body));
        *r.status_mut() = status;
        r
    };
    if let Some(path) = path {
        if req.uri().path() != path {
            return Err(refuse(
                StatusCode::NOT_FOUND,
                format!("no WebSocket endpoint at {}; use {path}", req.uri().path()),
            ));
        }
    }
    if let Some(origin) = req.headers().get("origin").and_then(|v| v.to_str().ok()) {
        if !origin_allowed(origin, &state.config.allowed_origins) {
            return Err(refuse(StatusCode::FORBIDDEN, format!("origin {origin} is not allowed")));
        }
    }
    if let Some(token) = &state.config.auth_token {
        if let Some(auth) = req.headers().get("authorization") {
            let presented =
                auth.to_str().ok().and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")));
            if presented.map(str::trim) != Some(token.as_str()) {
                return Err(refuse(StatusCode::UNAUTHORIZED, "invalid bearer token".into()));
            }
            admission.authorized = true;
        }
    }
    let offers_mcp = req
        .headers()
        .get_all("sec-websocket-protocol")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|p| p.trim() == SUBPROTOCOL);
    if offers_mcp {
        resp.headers_mut().insert("sec-websocket-protocol", HeaderValue::from_static(SUBPROTOCOL));
    }
    Ok(resp)
}

/// Loopback origins always; others when listed in `allowed_origins` as the whole origin
/// (`https://app.example`), its host, or `*` (the same rule as the HTTP listeners).
fn origin_allowed(origin: &str, allowed: &[String]) -> bool {
    let origin = origin.trim().trim_end_matches('/');
    let host = url::Url::parse(origin).ok().and_then(|u| u.host().map(|h| h.to_owned()));
    let loopback = match &host {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    };
    let host = match &host {
        Some(url::Host::Ipv6(ip)) => ip.to_string(),
        Some(h) => h.to_string(),
        None => String::new(),
    };
    loopback
        || allowed
            .iter()
            .map(|a| a.trim_end_matches('/'))
            .any(|a| a == "*" || a.eq_ignore_ascii_case(origin) || (!host.is_empty() && a.eq_ignore_ascii_case(&host)))
}

/// Counts an open connection; the count drops with the guard, also when the serving
/// future is cancelled.
struct OpenConnection<'a>(&'a Stats);

impl<'a> OpenConnection<'a> {
    fn new(stats: &'a Stats) -> Self {
        Stats::inc(&stats.connections_total);
        stats.connections_open.fetch_add(1, Ordering::Relaxed);
        OpenConnection(stats)
    }
}

impl Drop for OpenConnection<'_> {
    fn drop(&mut self) {
        self.0.connections_open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A reply that waits (the handler's [`Outcome::Pending`]).
type Waiting = Pin<Box<dyn Future<Output = Option<Vec<u8>>> + Send>>;

/// What the connection's streaming calls send, merged.
type Streams = SelectAll<BoxStream<'static, Vec<u8>>>;

/// The messages of a started streaming call, as a stream.
fn messages_of(mut rx: tokio::sync::mpsc::Receiver<Vec<u8>>) -> BoxStream<'static, Vec<u8>> {
    Box::pin(futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx)))
}

/// Whether the session goes on after a frame.
enum Flow {
    Continue,
    /// Ends the session; with a close frame to send first, if any.
    Stop(Option<CloseFrame>),
}

fn close_frame(code: CloseCode, reason: &str) -> Option<CloseFrame> {
    Some(CloseFrame { code, reason: reason.into() })
}

/// A text frame holding a serialised JSON-RPC message (always UTF-8: it comes from
/// serde_json), without copying it.
fn text_frame(json: Vec<u8>) -> Message {
    match String::from_utf8(json) {
        Ok(s) => Message::Text(s.into()),
        Err(e) => Message::Binary(e.into_bytes().into()),
    }
}

fn error_frame(state: &ServerState, id: Option<jsonrpc::Id>, code: i64, message: String) -> Message {
    text_frame(state.encode(Response::err(id, ErrorObject::new(code, message))))
}

/// Waits for `shutdown` to turn true; never, without a receiver.
async fn shutdown_requested(shutdown: &mut Option<watch::Receiver<bool>>) {
    match shutdown {
        Some(rx) => {
            if rx.wait_for(|s| *s).await.is_err() {
                // The sender is gone: no shutdown will ever be signalled.
                std::future::pending::<()>().await;
            }
        }
        None => std::future::pending::<()>().await,
    }
}

/// Serves one MCP session on an established WebSocket until the client closes it, the
/// connection fails, or `shutdown` turns true.
pub async fn serve_websocket<S>(
    mut ws: WebSocketStream<S>,
    state: Arc<ServerState>,
    session: SessionState,
    mut shutdown: Option<watch::Receiver<bool>>,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    if state.at_connection_limit() {
        Stats::inc(&state.stats.connections_refused);
        close(&mut ws, close_frame(CloseCode::Again, "too many connections; try again later")).await;
        return;
    }
    let _open = OpenConnection::new(&state.stats);
    let session = Arc::new(session);
    let mut waiting: FuturesUnordered<Waiting> = FuturesUnordered::new();
    let mut streams = Streams::new();
    loop {
        let flow = tokio::select! {
            biased;
            _ = shutdown_requested(&mut shutdown) => Flow::Stop(close_frame(CloseCode::Away, "server shutting down")),
            Some(reply) = waiting.next(), if !waiting.is_empty() => match reply {
                Some(reply) => match ws.send(text_frame(reply)).await {
                    Ok(()) => Flow::Continue,
                    Err(_) => Flow::Stop(None),
                },
                None => Flow::Continue,
            },
            Some(message) = streams.next(), if !streams.is_empty() => match ws.send(text_frame(message)).await {
                Ok(()) => Flow::Continue,
                Err(_) => Flow::Stop(None),
            },
            first = ws.next() => {
                // Handle every frame that is already readable, then flush the replies in
                // one write.
                let mut next = first;
                let mut flow;
                loop {
                    flow = on_frame(&mut ws, &state, &session, (&mut waiting, &mut streams), next).await;
                    if !matches!(flow, Flow::Continue) {
                        break;
                    }
                    match ws.next().now_or_never() {
                        Some(more) => next = more,
                        None => break,
                    }
                }
                match flow {
                    Flow::Continue if ws.flush().await.is_err() => Flow::Stop(None),
                    other => other,
                }
            }
        };
        if let Flow::Stop(frame) = flow {
            if frame.is_some() {
                close(&mut ws, frame).await;
            }
            return;
        }
    }
}

/// Handles one read result; replies are queued (fed), not yet flushed.
async fn on_frame<S>(
    ws: &mut WebSocketStream<S>,
    state: &Arc<ServerState>,
    session: &Arc<SessionState>,
    (waiting, streams): (&mut FuturesUnordered<Waiting>, &mut Streams),
    frame: Option<Result<Message, WsError>>,
) -> Flow
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let reply = match frame {
        Some(Ok(Message::Text(text))) => match state.handle_frame(session, text.as_bytes()) {
            Outcome::Ready(Some(reply)) => text_frame(reply),
            Outcome::Ready(None) => return Flow::Continue,
            Outcome::Pending(fut) => {
                waiting.push(fut);
                return Flow::Continue;
            }
            Outcome::Stream(call) => {
                streams.push(messages_of(call.start()));
                return Flow::Continue;
            }
        },
        Some(Ok(Message::Binary(data))) => {
            Stats::inc(&state.stats.invalid_requests);
            error_frame(
                state,
                jsonrpc::scan_id(&data),
                INVALID_REQUEST,
                "Invalid Request: binary WebSocket frame; send each JSON-RPC message as a text frame".into(),
            )
        }
        // tungstenite queued the pong; the flush after this burst sends it.
        Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => return Flow::Continue,
        Some(Ok(Message::Close(_))) => {
            // Sends the queued close reply; the handshake is then complete.
            let _ = ws.flush().await;
            return Flow::Stop(None);
        }
        Some(Err(WsError::Capacity(e))) => {
            Stats::inc(&state.stats.invalid_requests);
            let limit = state.config.max_message_size;
            let reply = error_frame(
                state,
                None,
                INVALID_REQUEST,
                format!("message exceeds the limit of {limit} bytes ({e}); closing"),
            );
            let _ = ws.feed(reply).await;
            return Flow::Stop(close_frame(CloseCode::Size, "message too big"));
        }
        Some(Err(WsError::Utf8(e))) => {
            Stats::inc(&state.stats.parse_errors);
            let reply = error_frame(
                state,
                None,
                PARSE_ERROR,
                format!("Parse error: text frame is not valid UTF-8 ({e}); closing"),
            );
            let _ = ws.feed(reply).await;
            return Flow::Stop(close_frame(CloseCode::Invalid, "invalid UTF-8"));
        }
        Some(Err(WsError::Protocol(e))) => {
            tracing::debug!("WebSocket protocol error: {e}");
            return Flow::Stop(None);
        }
        Some(Err(_)) | None => return Flow::Stop(None),
    };
    match ws.feed(reply).await {
        Ok(()) => Flow::Continue,
        Err(_) => Flow::Stop(None),
    }
}

/// Sends a close frame and waits (briefly) for the peer's reply.
async fn close<S: AsyncRead + AsyncWrite + Unpin>(ws: &mut WebSocketStream<S>, frame: Option<CloseFrame>) {
    let _ = tokio::time::timeout(CLOSE_GRACE, async {
        if ws.close(frame).await.is_ok() {
            while let Some(Ok(_)) = ws.next().await {}
        }
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins() {
        let allowed = vec!["https://app.example".to_string(), "other.example".to_string()];
        for ok in [
            "http://localhost:3000",
            "http://127.0.0.1",
            "http://[::1]:8080",
            "https://app.example/",
            "https://other.example:8443",
        ] {
            assert!(origin_allowed(ok, &allowed), "{ok}");
        }
        for bad in ["https://evil.example", "null", "https://app.example.evil"] {
            assert!(!origin_allowed(bad, &allowed), "{bad}");
        }
        assert!(origin_allowed("https://anything", &["*".to_string()]));
    }
}
