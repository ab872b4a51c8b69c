//! HTTP/1.1 plumbing shared by the Streamable HTTP and legacy SSE transports: where a URL
//! points ([`Endpoint`]), a small per-session pool of keep-alive connections ([`Pool`]),
//! and bounded body reading. Each connection is one hyper `http1` connection over a
//! socket from [`crate::net::socket::connect`] (so `source_addr` applies), driven by one
//! small task; there is no shared, process-wide pool and no extra thread.

use bytes::Bytes;
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::{Body, Incoming};
use hyper::client::conn::http1::SendRequest;
use hyper::header::HeaderValue;
use hyper::Uri;
use hyper_util::rt::TokioIo;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;

/// The request body type of every client request.
pub type ReqBody = Full<Bytes>;

/// Idle connections a session keeps; more only exist while requests overlap.
const MAX_IDLE: usize = 4;

/// A resolved `http://` URL.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub addr: SocketAddr,
    /// The `Host` header.
    pub host: HeaderValue,
    /// Origin-form request target: path and query.
    pub path: Uri,
}

impl Endpoint {
    /// Parses and resolves `url` (which must be `http://`).
    pub async fn resolve(url: &url::Url) -> Result<Endpoint, String> {
        if url.scheme() != "http" {
            return Err(format!("expected an http:// URL, got {url}"));
        }
        let host = url.host_str().ok_or("the URL has no host")?;
        let port = url.port_or_known_default().unwrap_or(80);
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
    source: Option<IpAddr>,
    idle: Mutex<Vec<SendRequest<ReqBody>>>,
}

impl Pool {
    pub fn new(addr: SocketAddr, source: Option<IpAddr>) -> Self {
        Pool { addr, source, idle: Mutex::new(Vec::new()) }
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
        Ok(Conn { tx: open(self.addr, self.source).await?, reused: false })
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
        let tx = open(self.addr, self.source).await?;
        self.idle().push(tx);
        Ok(())
    }

    /// Drops every idle connection (their tasks end and the sockets close).
    pub fn clear(&self) {
        self.idle().clear();
    }
}

/// Opens one HTTP/1.1 connection and spawns the task that drives it.
/// The `Authorization: Bearer` header value for an auth token, if one is set.
pub fn bearer(token: Option<&str>) -> Result<Option<HeaderValue>, String> {
    token
        .map(|t| {
            HeaderValue::try_from(format!("Bearer {t}"))
                .map_err(|_| "the auth token is not a valid header value".into())
        })
        .transpose()
}

pub async fn open(addr: SocketAddr, source: Option<IpAddr>) -> Result<SendRequest<ReqBody>, String> {
    let stream = crate::net::socket::connect(addr, source).await.map_err(|e| format!("{addr}: {e}"))?;
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

/// Reads an error body for a message: at most 200 characters, lossy UTF-8, trimmed.
pub async fn error_snippet(body: Incoming) -> String {
    const KEEP: usize = 200;
    let bytes = match read_body(body, 64 * 1024).await {
        Ok(b) => b,
        Err(_) => return String::new(),
    };
    let text = String::from_utf8_lossy(&bytes);
    let text = text.trim();
    match text.char_indices().nth(KEEP) {
        Some((cut, _)) => text[..cut].to_string(),
        None => text.to_string(),
    }
}
