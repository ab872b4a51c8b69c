//! HTTP/1.1 plumbing shared by the Streamable HTTP and legacy SSE transports: where a URL
//! points ([`Endpoint`]), a small per-session pool of keep-alive connections ([`Pool`]),
//! and bounded body reading. Each connection is one hyper `http1` connection over a
//! socket from [`crate::net::socket::connect`] (so `source_addr` applies), with TLS on top
//! for `https://` ([`crate::net::tls`]), driven by one small task; there is no shared,
//! process-wide pool and no extra thread.

use super::events::{EventParser, Kind};
use crate::client::ClientError;
use crate::net::tls::{ClientTls, TlsTarget};
use crate::protocol::jsonrpc::{self, ErrorObject, Message, Payload, Response};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::{Body, Incoming};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::Uri;
use hyper_util::rt::TokioIo;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;

/// The request body type of every client request.
pub type ReqBody = Full<Bytes>;

/// Idle connections a session keeps; more only exist while requests overlap.
const MAX_IDLE: usize = 4;

/// A resolved `http://` or `https://` URL.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub addr: SocketAddr,
    /// The server's TLS name and the run's connector, for `https://`.
    pub tls: Option<TlsTarget>,
    /// The `Host` header.
    pub host: HeaderValue,
    /// Origin-form request target: path and query.
    pub path: Uri,
}

impl Endpoint {
    /// Parses and resolves `url` (which must be `http://`, or `https://` verified against
    /// the platform's root certificates).
    pub async fn resolve(url: &url::Url) -> Result<Endpoint, String> {
        Self::resolve_with_tls(url, &ClientTls::default()).await
    }

    /// Parses and resolves `url` (which must be `http://` or `https://`; `tls`, the run's
    /// `--ca-cert` and `--insecure`, serves the latter).
    pub async fn resolve_with_tls(url: &url::Url, tls: &ClientTls) -> Result<Endpoint, String> {
        if url.scheme() != "http" && url.scheme() != "https" {
            return Err(format!("expected an http:// or https:// URL, got {url}"));
        }
        let host = url.host_str().ok_or("the URL has no host")?;
        let port = url.port_or_known_default().unwrap_or(80);
        let tls = if url.scheme() == "https" { Some(tls.target(host)?) } else { None };
        let bare = host.trim_matches(['[', ']']);
        let addr = match bare.parse::<IpAddr>() {
            Ok(ip) => SocketAddr::new(ip, port),
            Err(_) => tokio::net::lookup_host((bare, port))
                .await
                .map_err(|e| format!("cannot resolve {host}: {e}"))?
                .next()
                .ok_or_else(|| format!("{host} resolves to no address"))?,
        };
        let authority = match url.port() {
            Some(p) => format!("{host}:{p}"),
            None => host.to_string(),
        };
        let path = match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_string(),
        };
        Ok(Endpoint {
            addr,
            tls,
            host: HeaderValue::try_from(authority).map_err(|e| format!("bad host: {e}"))?,
            path: path.parse().map_err(|e| format!("bad path: {e}"))?,
        })
    }
}

/// One pooled connection.
pub struct Conn {
    pub tx: SendRequest<ReqBody>,
    /// Taken from the idle list (it may have been closed by the server meanwhile).
    pub reused: bool,
}

/// Keep-alive connections of one session to one address.
pub struct Pool {
    addr: SocketAddr,
    tls: Option<TlsTarget>,
    source: Option<IpAddr>,
    idle: Mutex<Vec<SendRequest<ReqBody>>>,
}

impl Pool {
    pub fn new(endpoint: &Endpoint, source: Option<IpAddr>) -> Self {
        Pool { addr: endpoint.addr, tls: endpoint.tls.clone(), source, idle: Mutex::new(Vec::new()) }
    }

    fn idle(&self) -> std::sync::MutexGuard<'_, Vec<SendRequest<ReqBody>>> {
        // A poisoned lock only means a panic elsewhere mid-push; the list is still valid.
        self.idle.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// An idle connection that is still open, or a new one.
    pub async fn take(&self) -> Result<Conn, String> {
        loop {
            let Some(mut tx) = self.idle().pop() else { break };
            // Right after a response the connection task may not have marked the
            // connection idle yet; `ready` waits for that (or reports it closed).
            if tx.ready().await.is_ok() {
                return Ok(Conn { tx, reused: true });
            }
        }
        Ok(Conn { tx: open(self.addr, self.tls.as_ref(), self.source).await?, reused: false })
    }

    /// Returns a connection whose response was read to the end.
    pub fn put(&self, conn: Conn) {
        if conn.tx.is_closed() {
            return;
        }
        let mut idle = self.idle();
        if idle.len() < MAX_IDLE {
            idle.push(conn.tx);
        }
    }

    /// Puts a freshly opened connection into the pool.
    pub async fn warm(&self) -> Result<(), String> {
        let tx = open(self.addr, self.tls.as_ref(), self.source).await?;
        self.idle().push(tx);
        Ok(())
    }

    /// Drops every idle connection (their tasks end and the sockets close).
    pub fn clear(&self) {
        self.idle().clear();
    }
}

/// Opens one HTTP/1.1 connection (with the TLS handshake when `tls` is given) and spawns
/// the task that drives it.
pub async fn open(
    addr: SocketAddr,
    tls: Option<&TlsTarget>,
    source: Option<IpAddr>,
) -> Result<SendRequest<ReqBody>, String> {
    let stream = crate::net::socket::connect(addr, source).await.map_err(|e| format!("{addr}: {e}"))?;
    let stream = crate::net::tls::wrap(stream, tls).await?;
    let (tx, conn) = hyper::client::conn::http1::Builder::new()
        .handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("HTTP handshake with {addr}: {e}"))?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::trace!("http connection to {addr} ended: {e}");
        }
    });
    Ok(tx)
}

/// Why a request got no response.
#[derive(Debug)]
pub enum RoundTripError {
    /// No connection could be opened.
    Connect(String),
    /// The connection failed during the exchange.
    Failed(String),
}

/// Sends one request built by `make` on a pooled connection. A reused keep-alive
/// connection that the server closed meanwhile (the request was not written, or the
/// connection ended before any response byte) is retried once on a fresh connection.
pub async fn round_trip(
    pool: &Pool,
    mut make: impl FnMut() -> hyper::Request<ReqBody>,
) -> Result<(hyper::Response<Incoming>, Conn), RoundTripError> {
    let mut retried = false;
    loop {
        let mut conn = pool.take().await.map_err(RoundTripError::Connect)?;
        match conn.tx.try_send_request(make()).await {
            Ok(resp) => return Ok((resp, conn)),
            Err(e) => {
                let stale = conn.reused
                    && (e.message().is_some() || e.error().is_incomplete_message() || e.error().is_canceled());
                if stale && !retried {
                    retried = true;
                    continue;
                }
                return Err(RoundTripError::Failed(e.into_error().to_string()));
            }
        }
    }
}

/// Why a body could not be read.
#[derive(Debug)]
pub enum BodyError {
    TooLarge,
    Io(String),
}

/// Reads a whole body of at most `limit` bytes (without copying a single-chunk body).
pub async fn read_body(body: Incoming, limit: usize) -> Result<Bytes, BodyError> {
    if body.size_hint().lower() > limit as u64 {
        return Err(BodyError::TooLarge);
    }
    match Limited::new(body, limit).collect().await {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => Err(BodyError::TooLarge),
        Err(e) => Err(BodyError::Io(e.to_string())),
    }
}

/// The most of an error body read (for its message or its JSON-RPC error).
const ERROR_BODY_LIMIT: usize = 64 * 1024;

/// At most 200 characters of `bytes`, lossy UTF-8, trimmed.
fn snippet(bytes: &[u8]) -> String {
    const KEEP: usize = 200;
    let text = String::from_utf8_lossy(bytes);
    let text = text.trim();
    match text.char_indices().nth(KEEP) {
        Some((cut, _)) => text[..cut].to_string(),
        None => text.to_string(),
    }
}

/// Whether an HTTP error `status` whose body is a JSON-RPC error response is answered by
/// that error: 400, 422 and 500 say the message itself was refused or failed (official SDK
/// servers send -32700, -32600, -32602 and -32603 that way). On every other status (401,
/// 403, 404, 405, 406, 413, 415, 429, 503...) the status is the answer, whatever the body.
pub fn rpc_status(status: u16) -> bool {
    matches!(status, 400 | 422 | 500)
}

/// [`rpc_status`] in a session of the given era: a stateless server (2026-07-28) also
/// answers -32601 (a removed or unknown method) with 404 and the error in the body, so
/// there 404 is the message's answer too (no session to lose).
pub fn rpc_status_in(status: u16, stateless: bool) -> bool {
    rpc_status(status) || (stateless && status == 404)
}

/// The JSON-RPC error response in an error body: the body itself (`application/json`, a
/// single response or a batch of one), or the first event of an event stream.
pub fn rpc_error_in(body: &[u8], event_stream: bool) -> Option<ErrorObject> {
    let of = |data: &[u8]| match jsonrpc::parse(data).ok()? {
        Payload::Single(Ok(Message::Response(Response { outcome: Err(e), .. }))) => Some(e),
        Payload::Batch(mut items) if items.len() == 1 => match items.pop() {
            Some(Ok(Message::Response(Response { outcome: Err(e), .. }))) => Some(e),
            _ => None,
        },
        _ => None,
    };
    if !event_stream {
        return of(body);
    }
    let mut parser = EventParser::new(body.len().max(1));
    parser.push(body);
    let event = match parser.next_event() {
        Ok(Some(e)) => e,
        Ok(None) => parser.finish().ok()??,
        Err(_) => return None,
    };
    (event.kind == Kind::Message).then(|| of(&event.data)).flatten()
}

/// The error for an HTTP reply with an error status: [`ClientError::HttpRpc`] when the
/// status is one of [`rpc_status_in`] (for a `stateless` session or not) and the body is a
/// JSON-RPC error response, else [`ClientError::Http`] with the start of the body.
pub async fn status_error(target: String, resp: hyper::Response<Incoming>, stateless: bool) -> ClientError {
    let status = resp.status().as_u16();
    if status == 401 {
        let e = crate::client::auth::unauthorized(target, resp.headers());
        let _ = read_body(resp.into_body(), ERROR_BODY_LIMIT).await;
        return e;
    }
    let event_stream =
        resp.headers().get(CONTENT_TYPE).is_some_and(|ct| ct.as_bytes().starts_with(b"text/event-stream"));
    let body = read_body(resp.into_body(), ERROR_BODY_LIMIT).await.unwrap_or_default();
    if rpc_status_in(status, stateless) {
        if let Some(error) = rpc_error_in(&body, event_stream) {
            return ClientError::HttpRpc { target, status, error };
        }
    }
    ClientError::Http { target, status, body: snippet(&body) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_json_rpc_error_of_an_error_body() {
        let body = br#"{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"Parse error"}}"#;
        assert_eq!(rpc_error_in(body, false).unwrap().code, -32700);
        let batch = br#"[{"jsonrpc":"2.0","id":3,"error":{"code":-32602,"message":"Invalid params"}}]"#;
        assert_eq!(rpc_error_in(batch, false).unwrap().code, -32602);
        let stream =
            b"event: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":1,\"error\":{\"code\":-32600,\"message\":\"x\"}}\n\n";
        assert_eq!(rpc_error_in(stream, true).unwrap().code, -32600);
        let unterminated = b"data: {\"jsonrpc\":\"2.0\",\"id\":1,\"error\":{\"code\":-32603,\"message\":\"x\"}}";
        assert_eq!(rpc_error_in(unterminated, true).unwrap().code, -32603);
        for not_rpc in
            [&b"Service Unavailable"[..], b"{\"error\":\"nope\"}", br#"{"jsonrpc":"2.0","id":1,"result":{}}"#, b""]
        {
            assert_eq!(rpc_error_in(not_rpc, false), None, "{}", String::from_utf8_lossy(not_rpc));
        }
        assert!(rpc_status(400) && rpc_status(422) && rpc_status(500));
        assert!(!rpc_status(401) && !rpc_status(404) && !rpc_status(503));
        assert!(rpc_status_in(404, true) && !rpc_status_in(404, false) && rpc_status_in(400, false));
    }
}
