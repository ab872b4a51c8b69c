//! HTTP-family serving: Streamable HTTP, legacy HTTP+SSE and WebSocket upgrades, all on
//! every `http://`, `sse+http://` and `ws://` listener (HTTP/1.1, keep-alive: the lean
//! connections of [`lean`], which hold no buffer while idle), and on their TLS forms
//! `https://`, `sse+https://` and `wss://` (hyper 1; each connection's handshake runs in
//! that connection's task, bounded by [`crate::net::tls::HANDSHAKE_TIMEOUT`], so a slow
//! handshake never holds up accepting). Both feed the same routes.
//!
//! Routes:
//! - the Streamable HTTP path (`http://…/PATH`, default `/mcp`): POST, GET (a session's
//!   standalone stream, or the resumption of a stream with `Last-Event-ID`: [`streams`]),
//!   DELETE ([`streamable`]); a request whose `MCP-Protocol-Version` names no handshake
//!   revision is the stateless era's, one exchange with no session ([`stateless`]: POST
//!   only, GET and DELETE 405);
//! - `GET /sse` (or the `sse+http://` path) and `POST /message?sessionId=…` ([`legacy`]);
//! - `GET /stats`: the server's counters as JSON;
//! - any GET with `Upgrade: websocket`: the handshake here, then
//!   [`crate::server::ws::serve_upgraded`] ([`upgrade`]).
//!
//! Before routing: an `Origin` that is neither loopback nor allowed gets 403; with an
//! auth token configured, a request without `Authorization: Bearer <token>` gets 401
//! (WebSocket upgrades excepted: there the token travels in `initialize`).
//!
//! Status codes: 202 for POSTs that need no reply; 400 for a missing session id and for
//! a reply that answers no request (a malformed body's -32700, or a -32600 whose id could
//! not be read; the body is that JSON-RPC error, as the official SDKs do); 404 for an
//! unknown session; 405, 406, 413, 415; 503 with `Retry-After: 1` when shedding load
//! (`--max-inflight`) or refusing a session (`--max-connections`; a stateless request is
//! no session and is never refused for it). A stateless request's status follows its
//! reply's error code (400, 404, else 200).
//!
//! With sibling worker processes, each Streamable HTTP listener also listens on a Unix
//! socket for the replies to its requests that reached a sibling
//! ([`crate::server::siblings`]).

mod body;
mod lean;
mod legacy;
mod sessions;
mod stateless;
mod streamable;
mod streams;
mod upgrade;

use super::handler::ServerState;
use super::stats::Stats;
use super::Listen;
use crate::net::tls::TlsAcceptor;
use crate::protocol::jsonrpc::{ErrorObject, Response as RpcResponse};
use body::Body;
use bytes::Bytes;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use hyper::body::{Body as _, Incoming};
use hyper::header::{HeaderMap, HeaderValue, AUTHORIZATION, CONTENT_TYPE, ORIGIN, RETRY_AFTER, WWW_AUTHENTICATE};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// A request as the routes see it.
type Req = Request<ReqBody>;

/// A request's body: still to be read (a connection served by hyper), or read already by
/// a lean connection ([`lean`]), or found too large to read.
enum ReqBody {
    Incoming(Incoming),
    Read(Bytes),
    TooLarge,
}

/// How long open connections may finish in-flight requests after shutdown begins.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

const JSON: HeaderValue = HeaderValue::from_static("application/json");

enum Route {
    Mcp,
    Stream,
    Message,
    Stats,
    Unknown,
}

/// What every connection of one listener shares.
struct Shared {
    state: Arc<ServerState>,
    /// This listener's index in `--listen` order (the same in every worker process).
    listener: usize,
    mcp_path: String,
    sse_path: String,
    /// `Bearer <token>`, when a token is required.
    bearer: Option<Vec<u8>>,
    sessions: sessions::Sessions<Arc<sessions::HttpSession>>,
    streams: sessions::Sessions<legacy::Stream>,
    shutdown: watch::Receiver<bool>,
    /// The TLS acceptor of an `https://`, `sse+https://` or `wss://` listener.
    tls: Option<TlsAcceptor>,
}

/// Serves one HTTP-family listener (the `index`th) until `shutdown` turns true; with
/// `tls`, every connection starts with a TLS handshake.
pub async fn serve(
    listener: TcpListener,
    index: usize,
    listen: Listen,
    tls: Option<TlsAcceptor>,
    state: Arc<ServerState>,
    mut shutdown: watch::Receiver<bool>,
) {
    let (mcp_path, sse_path) = match &listen {
        Listen::Http(_, p, _) => (p.clone(), "/sse".to_string()),
        Listen::LegacySse(_, p, _) => ("/mcp".to_string(), p.clone()),
        Listen::Ws(..) | Listen::Tcp(_) => ("/mcp".to_string(), "/sse".to_string()),
    };
    let shared = Arc::new(Shared {
        bearer: state.config.auth_token.as_ref().map(|t| format!("Bearer {t}").into_bytes()),
        state,
        listener: index,
        mcp_path,
        sse_path,
        sessions: sessions::Sessions::new(),
        streams: sessions::Sessions::new(),
        shutdown: shutdown.clone(),
        tls,
    });
    if let Some(siblings) = &shared.state.siblings {
        match siblings.bind(index) {
            Ok(socket) => {
                let lookup: crate::server::siblings::Lookup = {
                    let shared = Arc::downgrade(&shared);
                    Arc::new(move |id: &str| Some(shared.upgrade()?.sessions.get(id)?.state.clone()))
                };
                tokio::spawn(crate::server::siblings::serve(socket, lookup, shutdown.clone()));
            }
            Err(e) => {
                tracing::warn!("cannot listen for sibling workers ({e}): replies that reach another worker are lost")
            }
        }
    }
    while let Some(stream) = super::accept_or_stop(&listener, &mut shutdown).await {
        let _ = stream.set_nodelay(true);
        tokio::spawn(serve_connection(stream, shared.clone()));
    }
    // Ending the legacy streams and the Streamable HTTP standalone streams lets their
    // connections finish (calls' streams finish with their calls, within the grace).
    drop(shared.streams.drain());
    for session in shared.sessions.values() {
        session.streams.end_standalone();
    }
}

async fn serve_connection(stream: tokio::net::TcpStream, shared: Arc<Shared>) {
    let mut shutdown = shared.shutdown.clone();
    let stream = match &shared.tls {
        None => return lean::serve(stream, shared).await,
        Some(acceptor) => {
            let handshake = crate::net::tls::accept(acceptor, stream);
            tokio::select! {
                s = handshake => match s {
                    Some(s) => s,
                    None => return,
                },
                _ = shutdown.wait_for(|s| *s) => return,
            }
        }
    };
    let service = {
        let shared = shared.clone();
        // The Streamable HTTP sessions this connection carries: released when it closes.
        let attached = Arc::new(sessions::Attached::new(shared.state.clone()));
        hyper::service::service_fn(move |req| {
            let (shared, attached) = (shared.clone(), attached.clone());
            async move { Ok::<_, Infallible>(shared.route(req.map(ReqBody::Incoming), &attached).await) }
        })
    };
    let conn =
        hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service).with_upgrades();
    tokio::pin!(conn);
    tokio::select! {
        _ = conn.as_mut() => return,
        _ = shutdown.wait_for(|s| *s) => {}
    }
    conn.as_mut().graceful_shutdown();
    let _ = tokio::time::timeout(SHUTDOWN_GRACE, conn).await;
}

impl Shared {
    async fn route(self: &Arc<Self>, req: Req, attached: &sessions::Attached) -> Response<Body> {
        if let Some(origin) = req.headers().get(ORIGIN) {
            if !self.origin_allowed(origin) {
                return self.error(StatusCode::FORBIDDEN, -32000, "Forbidden: Origin not allowed");
            }
        }
        if req.method() == Method::GET && upgrade::is_websocket(req.headers()) {
            return upgrade::websocket(self, req);
        }
        if !self.authorized(req.headers()) {
            let mut resp = self.error(
                StatusCode::UNAUTHORIZED,
                crate::protocol::mcp::codes::UNAUTHORIZED,
                "Unauthorized: send Authorization: Bearer <token>",
            );
            resp.headers_mut().insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            return resp;
        }
        match self.classify(req.uri().path()) {
            Route::Mcp if stateless::is_stateless(req.headers()) => match *req.method() {
                Method::POST => stateless::post(self, req).await,
                _ => stateless::method_not_allowed(),
            },
            Route::Mcp => match *req.method() {
                Method::POST => streamable::post(self, req, attached).await,
                Method::GET => streamable::get(self, &req, attached),
                Method::DELETE => streamable::delete(self, &req),
                _ => self.method_not_allowed("GET, POST, DELETE"),
            },
            Route::Stream => match *req.method() {
                Method::GET => legacy::open(self),
                _ => self.method_not_allowed("GET"),
            },
            Route::Message => match *req.method() {
                Method::POST => legacy::post(self, req).await,
                _ => self.method_not_allowed("POST"),
            },
            Route::Stats => match *req.method() {
                Method::GET => {
                    json(StatusCode::OK, serde_json::to_vec(&self.state.stats.snapshot()).unwrap_or_default())
                }
                _ => self.method_not_allowed("GET"),
            },
            Route::Unknown => self.error(StatusCode::NOT_FOUND, -32000, "Not Found"),
        }
    }

    fn classify(&self, path: &str) -> Route {
        if path == self.mcp_path {
            Route::Mcp
        } else if path == self.sse_path {
            Route::Stream
        } else if path == "/message" {
            Route::Message
        } else if path == "/stats" {
            Route::Stats
        } else {
            Route::Unknown
        }
    }

    /// Loopback origins always; others when listed in `allowed_origins` (as the whole
    /// origin, e.g. `https://app.example`, or its host; `*` allows all).
    fn origin_allowed(&self, origin: &HeaderValue) -> bool {
        let Ok(origin) = origin.to_str() else { return false };
        let origin = origin.trim().trim_end_matches('/');
        let host = origin_host(origin);
        if host.eq_ignore_ascii_case("localhost") || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback()) {
            return true;
        }
        self.state.config.allowed_origins.iter().any(|a| {
            let a = a.trim_end_matches('/');
            a == "*" || a.eq_ignore_ascii_case(origin) || a.eq_ignore_ascii_case(host)
        })
    }

    fn authorized(&self, headers: &HeaderMap) -> bool {
        let Some(expected) = &self.bearer else { return true };
        let Some(given) = headers.get(AUTHORIZATION) else { return false };
        let given = given.as_bytes();
        // The scheme is case-insensitive; the token is compared in constant time.
        given.len() == expected.len()
            && given[..7].eq_ignore_ascii_case(&expected[..7])
            && given[7..].iter().zip(&expected[7..]).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
    }

    /// 503 with `Retry-After`, counted as shed.
    fn shed(&self, what: &str) -> Response<Body> {
        Stats::inc(&self.state.stats.shed);
        self.unavailable(what)
    }

    /// 503 with `Retry-After`, counted as a refused connection.
    fn refuse(&self) -> Response<Body> {
        Stats::inc(&self.state.stats.connections_refused);
        self.unavailable("too many sessions")
    }
}

/// The host of an origin (`scheme://host[:port]`), brackets of IPv6 literals removed.
fn origin_host(origin: &str) -> &str {
    let rest = origin.split_once("://").map_or(origin, |(_, r)| r);
    let authority = rest.split('/').next().unwrap_or(rest);
    if let Some(v6) = authority.strip_prefix('[') {
        return v6.split(']').next().unwrap_or(v6);
    }
    match authority.rsplit_once(':') {
        Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => host,
        _ => authority,
    }
}

fn json(status: StatusCode, body: impl Into<Body>) -> Response<Body> {
    let mut resp = Response::new(body.into());
    *resp.status_mut() = status;
    resp.headers_mut().insert(CONTENT_TYPE, JSON);
    resp
}

fn status(status: StatusCode) -> Response<Body> {
    let mut resp = Response::new(Body::empty());
    *resp.status_mut() = status;
    resp
}

/// The HTTP replies whose body is a JSON-RPC error of the transport itself (no id). Their
/// codes go out through [`ServerState::encode`], as the handler's do.
impl Shared {
    /// An HTTP error whose body is a JSON-RPC error without id.
    fn error(&self, status: StatusCode, code: i64, message: &str) -> Response<Body> {
        json(status, self.state.encode(RpcResponse::err(None, ErrorObject::new(code, message))))
    }

    /// 503 with `Retry-After` and the -32000 of load shedding.
    fn unavailable(&self, what: &str) -> Response<Body> {
        let err = ServerState::overloaded_error(what);
        let mut resp = json(StatusCode::SERVICE_UNAVAILABLE, self.state.encode(RpcResponse::err(None, err)));
        resp.headers_mut().insert(RETRY_AFTER, HeaderValue::from_static("1"));
        resp
    }

    fn method_not_allowed(&self, allow: &'static str) -> Response<Body> {
        let mut resp = self.error(StatusCode::METHOD_NOT_ALLOWED, -32000, "Method Not Allowed");
        resp.headers_mut().insert(hyper::header::ALLOW, HeaderValue::from_static(allow));
        resp
    }

    /// Reads a request body of at most `max_message_size` bytes; the error is the reply to send.
    async fn read_body(&self, body: ReqBody) -> Result<Bytes, Response<Body>> {
        let limit = self.state.config.max_message_size;
        let too_large = || {
            self.error(
                StatusCode::PAYLOAD_TOO_LARGE,
                -32600,
                &format!("Request body exceeds the limit of {limit} bytes"),
            )
        };
        let body = match body {
            // A lean connection read it within the limit, or marked it too large.
            ReqBody::Read(b) => return Ok(b),
            ReqBody::TooLarge => return Err(too_large()),
            ReqBody::Incoming(body) => body,
        };
        if body.size_hint().lower() > limit as u64 {
            return Err(too_large());
        }
        match Limited::new(body, limit).collect().await {
            Ok(c) => Ok(c.to_bytes()),
            Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => Err(too_large()),
            Err(e) => {
                Err(self.error(StatusCode::BAD_REQUEST, -32000, &format!("Bad Request: cannot read the body: {e}")))
            }
        }
    }
}

/// Whether a reply is an error that answers no identified request (a parse error, or an
/// invalid request whose id could not be read): those go out with status 400. Our own
/// serialiser writes `jsonrpc` then `id` first, so a prefix check suffices.
fn is_unattributed_error(reply: &[u8]) -> bool {
    reply.starts_with(br#"{"jsonrpc":"2.0","id":null,"error""#)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::jsonrpc::Message;

    #[test]
    fn finds_the_host_of_an_origin() {
        assert_eq!(origin_host("http://localhost:3000"), "localhost");
        assert_eq!(origin_host("https://127.0.0.1"), "127.0.0.1");
        assert_eq!(origin_host("http://[::1]:8080"), "::1");
        assert_eq!(origin_host("https://app.example.com"), "app.example.com");
        assert_eq!(origin_host("null"), "null");
    }

    #[test]
    fn recognises_unattributed_errors() {
        let parse =
            Message::Response(crate::protocol::jsonrpc::ParseError { detail: "x".into() }.to_response()).to_vec();
        assert!(is_unattributed_error(&parse));
        let ok = Message::Response(RpcResponse::ok(crate::protocol::Id::Num(1), serde_json::json!({}))).to_vec();
        assert!(!is_unattributed_error(&ok));
    }
}
