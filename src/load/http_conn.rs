//! Lean load-only connections for Streamable HTTP targets (`http://`): one keep-alive
//! HTTP/1.1 connection per session, owned by the task that uses it, with no task, buffer or
//! timer of its own while idle. What a held session keeps is its socket, its
//! `Mcp-Session-Id` and `MCP-Protocol-Version` header lines (one small allocation) and a
//! few words; read and write buffers exist only while a request is in flight.
//!
//! A request is one POST (`Accept: application/json, text/event-stream`) whose head is
//! pre-serialised per target ([`HttpShared`]); the body is the template's pre-serialised
//! message ([`Encoded`]) with only the id written. The response head is parsed with
//! `httparse`; the body (`Content-Length`, chunked or until close) is decoded
//! incrementally: a JSON reply is read whole (bounded by the message limit), an event
//! stream goes through the SSE [`EventParser`] so only a partial event is ever kept, and
//! server requests in it are answered as soon as they arrive (the server may wait for the
//! answer to reply), POSTed on a side connection: `ping` with `{}`, the phase's canned
//! answers (sampling, elicitation, roots), anything else -32601. A 202 answers a
//! notification; a 404 for a request carrying the session id means the server forgot the
//! session: the connection initializes a new one and retries once. Error statuses are
//! classified like the script client does ([`rpc_status_in`]: a 400/422/500 whose body is a
//! JSON-RPC error counts as that error's code, any other status as `http_<status>`). A
//! keep-alive connection the server closed meanwhile is reopened transparently, and an
//! idempotent request that found it closed is sent again once. Closing DELETEs the session.
//!
//! In the stateless revision (2026-07-28, [`HttpShared::stateless`]) a session has no
//! state on the server: connecting opens the keep-alive connection and nothing more (no
//! `initialize`, no `notifications/initialized`), every POST carries its template's header
//! lines (`MCP-Protocol-Version`, `Mcp-Method`, `Mcp-Name`: [`Encoded::stateless`], written
//! once per template) and no `Mcp-Session-Id`, a 404 whose body is a JSON-RPC error is that
//! error (a removed method's -32601: no session to renew), and closing sends no DELETE.
//!
//! A static token (`--bearer`) is part of the pre-serialised heads. With `--oauth` the
//! `Authorization` line is written into each request instead, from the run's token cache
//! for the target ([`Auth`]; the cache refreshes the token in the background before it
//! expires), and a 401 (or 403 `insufficient_scope`) hands the server's challenge to the
//! cache as the client transports do (sessions refused meanwhile wait for the one flow),
//! then sends that request once more.

use super::conn::{itoa, Encoded, Reply};
use super::http_wire::{Body, End, Found, Reader};
use super::recorder::Outcome;
use crate::client::auth::Auth;
use crate::client::server_requests::ServerRequests;
use crate::client::transport::http::conn::{rpc_error_in, rpc_status_in, Endpoint};
use crate::client::transport::http::events::{EventParser, Kind};
use crate::client::{ClientError, ErrorKind};
use crate::net::http1::{BadFraming, Spare};
use crate::protocol::mcp::methods;
use hyper::header::HeaderValue;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// The most of an error status's body read (for its JSON-RPC error).
const ERROR_BODY_LIMIT: usize = 64 * 1024;
/// How long an event stream may stay open after it delivered the reply before the
/// connection is given up (a new one is opened for the next request).
const STREAM_END_GRACE: Duration = Duration::from_millis(100);
/// Time a DELETE at close gets.
const DELETE_TIMEOUT: Duration = Duration::from_secs(2);

/// What every session of one target shares: where to connect, the pre-serialised
/// request heads and, with OAuth, where each request's `Authorization` comes from.
pub struct HttpShared {
    target: String,
    addr: SocketAddr,
    /// `POST <path> HTTP/1.1` with Host, Accept, Content-Type and (a static token's)
    /// Authorization lines.
    post_head: Box<[u8]>,
    /// `DELETE <path> HTTP/1.1` with Host and (a static token's) Authorization lines.
    delete_head: Box<[u8]>,
    /// OAuth: the run's token cache for this target, read per request (its token is
    /// refreshed, or replaced after a 401); `None` when the heads carry the Authorization.
    auth: Option<Auth>,
    max_message: usize,
    /// Close with SO_LINGER 0 (loopback targets): no TIME_WAIT on either side.
    abortive: bool,
    init: Encoded,
    /// What server requests get (the phase's canned answers).
    requests: Arc<ServerRequests>,
    /// Sessions speak the stateless revision (no handshake, no session id).
    stateless: bool,
}

impl HttpShared {
    /// Resolves `url` (an `http://` URL) and pre-serialises the request heads. A static
    /// token (`auth` without OAuth) goes into the heads, at no cost per request; OAuth's
    /// token is written into each request as it goes.
    pub async fn new(
        url: &str,
        auth: Auth,
        headers: &[(String, String)],
        max_message: usize,
        abortive: bool,
        init: Encoded,
    ) -> Result<HttpShared, String> {
        let parsed = url::Url::parse(url).map_err(|e| e.to_string())?;
        let ep = Endpoint::resolve(&parsed).await?;
        let host = ep.host.to_str().map_err(|_| "the host is not a valid header value".to_string())?;
        let mut common = format!("Host: {host}\r\n");
        let auth = match auth.is_oauth() {
            true => Some(auth),
            false => {
                if let Some(v) = auth.header() {
                    let v = v.to_str().map_err(|_| "the bearer token is not a valid header value".to_string())?;
                    common.push_str(&format!("Authorization: {v}\r\n"));
                }
                None
            }
        };
        // Extra headers (`--header`), checked when the run read them.
        for (k, v) in headers {
            if k.bytes().chain(v.bytes()).any(|b| b.is_ascii_control()) {
                return Err(format!("header '{k}' is not a valid header"));
            }
            common.push_str(&format!("{k}: {v}\r\n"));
        }
        let path = ep.path.to_string();
        let post_head = format!(
            "POST {path} HTTP/1.1\r\n{common}Accept: application/json, text/event-stream\r\nContent-Type: application/json\r\n"
        );
        let delete_head = format!("DELETE {path} HTTP/1.1\r\n{common}");
        Ok(HttpShared {
            target: url.to_string(),
            addr: ep.addr,
            post_head: post_head.into_bytes().into_boxed_slice(),
            delete_head: delete_head.into_bytes().into_boxed_slice(),
            auth,
            max_message,
            abortive,
            init,
            requests: Arc::default(),
            stateless: false,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Connections close with SO_LINGER 0 when `on` (loopback targets).
    pub fn abortive(self, on: bool) -> HttpShared {
        HttpShared { abortive: on, ..self }
    }

    /// Server requests are answered as `requests` say (default: `ping` only).
    pub fn answering(self, requests: Arc<ServerRequests>) -> HttpShared {
        HttpShared { requests, ..self }
    }

    /// Sessions speak the stateless revision when `on` (the requests' templates carry the
    /// envelope and header lines): no handshake, no session id, no DELETE.
    pub fn stateless(self, on: bool) -> HttpShared {
        HttpShared { stateless: on, ..self }
    }

    /// The `Authorization` of the next request when it is read per request (OAuth);
    /// `None` when the heads carry it (a static token) or there is none.
    fn authorization(&self) -> Option<HeaderValue> {
        self.auth.as_ref().and_then(Auth::header)
    }

    /// Whether a response of `status` is for OAuth to answer (a 401 or 403 under OAuth).
    fn refused(&self, status: u16) -> bool {
        matches!(status, 401 | 403) && self.auth.is_some()
    }

    /// A request that carried `sent` was refused (`ex`): the challenge goes to the run's
    /// token cache, as the client transports hand it ([`Auth::on_refusal`]: one flow for
    /// every session refused meanwhile). `Ok(true)`: a new token, send the request again;
    /// `Ok(false)`: not OAuth's matter; `Err`: OAuth failed, saying why.
    async fn reauthorize(&self, ex: &Exchanged, sent: Option<&HeaderValue>) -> Result<bool, Fail> {
        let Some(auth) = &self.auth else { return Ok(false) };
        let challenge = ex.challenge.as_deref().unwrap_or("");
        auth.on_refusal(ex.status, challenge, sent).await.map_err(|detail| Fail::Refused { status: ex.status, detail })
    }
}

/// Writes the `Authorization` line of `auth` (read per request: OAuth) into a request head.
fn authorization_line(out: &mut Vec<u8>, auth: Option<&HeaderValue>) {
    if let Some(a) = auth {
        out.extend_from_slice(b"Authorization: ");
        out.extend_from_slice(a.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
}

/// Why an exchange got no usable response.
#[derive(Debug)]
pub(super) enum Fail {
    /// The request could not be written, or the connection ended before any byte of the
    /// response (on a reused keep-alive connection: the server had closed it).
    Unanswered(String),
    /// The connection failed mid-response.
    Closed(String),
    /// No connection could be opened.
    Connect(String),
    /// Not HTTP, or an oversized head, body or event.
    Protocol(String),
    /// Refused with `status` (401 or 403) and OAuth could not get a usable token.
    Refused { status: u16, detail: String },
}

impl From<BadFraming> for Fail {
    fn from(e: BadFraming) -> Fail {
        Fail::Protocol(e.0.into())
    }
}

impl Fail {
    fn outcome(&self) -> Outcome {
        match self {
            Fail::Protocol(_) => Outcome::Error(ErrorKind::Protocol),
            Fail::Refused { status, .. } => Outcome::Error(ErrorKind::Http(*status)),
            _ => Outcome::Error(ErrorKind::Transport),
        }
    }

    fn into_client_error(self, target: &str) -> ClientError {
        let target = target.to_string();
        match self {
            Fail::Connect(detail) => ClientError::Connect { target, detail },
            Fail::Unanswered(d) | Fail::Closed(d) => ClientError::Closed { target, detail: d },
            Fail::Protocol(detail) => ClientError::Protocol { target, detail },
            Fail::Refused { status, detail } => ClientError::OAuth { target, status, detail },
        }
    }
}

/// What one exchange brought back.
#[derive(Default)]
struct Exchanged {
    status: u16,
    /// A success status: what the reply to our request said (`None`: the body held none).
    reply: Option<Reply>,
    /// The reply message itself, when asked for (the handshake needs the result).
    full: Option<Vec<u8>>,
    /// An error status whose body is a JSON-RPC error that answers it: its code.
    rpc: Option<i64>,
    /// The `Mcp-Session-Id` of the response.
    session: Option<String>,
    /// A 401 or 403: its `WWW-Authenticate` challenge (where OAuth starts).
    challenge: Option<String>,
}

/// A lean Streamable HTTP session owned by one task.
pub struct HttpConn {
    shared: Arc<HttpShared>,
    /// The keep-alive connection; `None` until (re)opened on demand.
    stream: Option<TcpStream>,
    source: Option<IpAddr>,
    /// `Mcp-Session-Id` and `MCP-Protocol-Version` lines of this session.
    headers: Box<[u8]>,
    has_session: bool,
    next_id: u64,
    /// The session cannot go on (its connection cannot be reopened).
    broken: bool,
}

impl HttpConn {
    /// Opens a connection and initializes a session (`initialize`, then
    /// `notifications/initialized`); a stateless session only opens the connection.
    pub async fn connect(shared: Arc<HttpShared>, source: Option<IpAddr>) -> Result<HttpConn, ClientError> {
        let mut c = HttpConn::unopened(shared, source, Box::default());
        c.open().await.map_err(|f| f.into_client_error(&c.shared.target))?;
        if !c.shared.stateless {
            c.handshake().await?;
        }
        Ok(c)
    }

    /// A connection of a session whose header lines are `headers`, opened on first use.
    fn unopened(shared: Arc<HttpShared>, source: Option<IpAddr>, headers: Box<[u8]>) -> HttpConn {
        HttpConn { shared, stream: None, source, headers, has_session: false, next_id: 1, broken: false }
    }

    pub fn is_broken(&self) -> bool {
        self.broken
    }

    fn target(&self) -> String {
        self.shared.target.clone()
    }

    async fn open(&mut self) -> Result<(), Fail> {
        let stream = crate::net::socket::connect(self.shared.addr, self.source)
            .await
            .map_err(|e| Fail::Connect(format!("{}: {e}", self.shared.addr)))?;
        if self.shared.abortive {
            let _ = socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO));
        }
        self.stream = Some(stream);
        Ok(())
    }

    /// `initialize` and `notifications/initialized` on a session without id: the session id
    /// and protocol version of the reply become this connection's header lines.
    async fn handshake(&mut self) -> Result<(), ClientError> {
        let id = self.take_id();
        let shared = self.shared.clone();
        let target = self.target();
        let ex = self
            .post_as(Body::Template(&shared.init, id), &[], Some(id), true, true, false)
            .await
            .map_err(|f| f.into_client_error(&target))?;
        if !(200..300).contains(&ex.status) {
            return Err(match ex.rpc {
                Some(code) => ClientError::HttpRpc {
                    target,
                    status: ex.status,
                    error: crate::protocol::ErrorObject::new(code, "refused initialize"),
                },
                None => ClientError::Http { target, status: ex.status, body: String::new() },
            });
        }
        let line = ex.full.ok_or_else(|| ClientError::Protocol {
            target: target.clone(),
            detail: "the initialize reply held no response to it".into(),
        })?;
        let info = super::pool::initialize_reply(&target, &line)?;
        let mut headers = String::new();
        if let Some(s) = ex.session.as_deref() {
            headers.push_str(&format!("Mcp-Session-Id: {s}\r\n"));
        }
        if !info.protocol_version.bytes().any(|b| b.is_ascii_control()) {
            headers.push_str(&format!("MCP-Protocol-Version: {}\r\n", info.protocol_version));
        }
        self.has_session = ex.session.is_some();
        self.headers = headers.into_bytes().into_boxed_slice();
        let note = crate::protocol::Message::notification(methods::INITIALIZED, None).to_vec();
        let ex =
            self.post(Body::Bytes(&note), &[], None, false, true).await.map_err(|f| f.into_client_error(&target))?;
        if !(200..300).contains(&ex.status) {
            return Err(ClientError::Http { target, status: ex.status, body: String::new() });
        }
        Ok(())
    }

    fn take_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    /// Sends one request and waits for its reply, at most `timeout`. `idempotent`: it may be
    /// sent again once on a fresh connection when the kept-alive one turns out closed.
    pub async fn call(&mut self, enc: &Encoded, idempotent: bool, timeout: Duration) -> Outcome {
        if self.broken {
            return Outcome::Error(ErrorKind::Transport);
        }
        match tokio::time::timeout(timeout, self.call_once(enc, idempotent)).await {
            Ok(out) => out,
            Err(_) => {
                // The reply may still come on this connection: it cannot be reused.
                self.stream = None;
                Outcome::Timeout
            }
        }
    }

    async fn call_once(&mut self, enc: &Encoded, idempotent: bool) -> Outcome {
        let mut renewed = false;
        loop {
            let id = self.take_id();
            let ex = match self.post(Body::Template(enc, id), &enc.head, Some(id), false, idempotent).await {
                Ok(ex) => ex,
                Err(f) => return f.outcome(),
            };
            if (200..300).contains(&ex.status) {
                return ex.reply.map_or(Outcome::Error(ErrorKind::Protocol), Reply::outcome);
            }
            if ex.status == 404 && self.has_session && !renewed {
                // The server forgot the session: a new one, and this request once more.
                renewed = true;
                // Boxed: the rare path, and inline it would make every request's future
                // larger by the handshake's (the request's future is copied as it goes).
                if let Err(e) = Box::pin(self.handshake()).await {
                    if e.is_fatal_to_session() {
                        self.broken = true;
                    }
                    return super::pool::outcome_of(&e);
                }
                continue;
            }
            return match ex.rpc {
                Some(code) => Outcome::Error(ErrorKind::Rpc(code)),
                None => Outcome::Error(ErrorKind::Http(ex.status)),
            };
        }
    }

    /// One POST of `body` with the header `lines` of its template (stateless requests
    /// name themselves), on the kept-alive connection or a new one. A reused connection
    /// that fails before any response byte is replaced and, when `retry`, the POST sent
    /// again once. A connection that cannot be opened breaks the session.
    fn post<'a>(
        &'a mut self,
        body: Body<'a>,
        lines: &'a [u8],
        want: Option<u64>,
        full: bool,
        retry: bool,
    ) -> impl std::future::Future<Output = Result<Exchanged, Fail>> + Send + 'a {
        // Not an `async fn` of its own: a future wrapping `post_as`'s would be one more
        // state to lay out and copy per request.
        self.post_as(body, lines, want, full, retry, true)
    }

    /// [`post`](Self::post), with or without the session's header lines (`initialize`
    /// goes without: the session it renews stays in use until the new one is known).
    /// Under OAuth each POST carries the current token; one refused with 401 (or 403
    /// `insufficient_scope`) gets a new token ([`HttpShared::reauthorize`]) and is sent
    /// once more.
    async fn post_as(
        &mut self,
        body: Body<'_>,
        lines: &[u8],
        want: Option<u64>,
        full: bool,
        retry: bool,
        session: bool,
    ) -> Result<Exchanged, Fail> {
        let mut authed = false;
        loop {
            let sent = self.shared.authorization();
            let req = self.post_request(body, lines, session, sent.as_ref());
            let ex = self.send(&req.0, want, full, retry).await?;
            if authed || !self.shared.refused(ex.status) {
                return Ok(ex);
            }
            drop(req);
            // Boxed: the rare path, and the flow's future is large.
            if !Box::pin(self.shared.reauthorize(&ex, sent.as_ref())).await? {
                return Ok(ex);
            }
            authed = true;
        }
    }

    /// Sends the request bytes `req` on the kept-alive connection or a new one and reads
    /// its response. A reused connection that fails before any response byte is replaced
    /// and, when `retry`, the request sent again once. A connection that cannot be opened
    /// breaks the session.
    async fn send(&mut self, req: &[u8], want: Option<u64>, full: bool, retry: bool) -> Result<Exchanged, Fail> {
        let mut retried = false;
        loop {
            // A kept-alive connection the server closed meanwhile (servers commonly close
            // idle ones after a few seconds) is replaced before it is used.
            if self.stream.is_some() && !self.idle_ok() {
                self.stream = None;
            }
            let reused = self.stream.is_some();
            if !reused {
                if let Err(f) = self.open().await {
                    self.broken = true;
                    return Err(f);
                }
            }
            let r = self.exchange(req, want, full).await;
            match r {
                Err(Fail::Unanswered(_)) if reused && retry && !retried => {
                    self.stream = None;
                    retried = true;
                }
                Err(f) => {
                    self.stream = None;
                    return Err(f);
                }
                Ok((ex, keep)) => {
                    if !keep {
                        self.stream = None;
                    }
                    return Ok(ex);
                }
            }
        }
    }

    /// The bytes of a POST of `body`: the target's head, OAuth's `auth` line, the session's
    /// header lines (when `session`), the template's `lines`, then the body.
    /// Built in a buffer borrowed from the thread's spares: no allocation per request.
    fn post_request(&self, body: Body<'_>, lines: &[u8], session: bool, auth: Option<&HeaderValue>) -> Spare {
        let headers: &[u8] = if session { &self.headers } else { &[] };
        let mut spare = Spare::default();
        let req = &mut spare.0;
        req.extend_from_slice(&self.shared.post_head);
        authorization_line(req, auth);
        req.extend_from_slice(headers);
        req.extend_from_slice(lines);
        req.extend_from_slice(b"Content-Length: ");
        req.extend_from_slice(itoa(body.len() as u64, &mut [0; 20]));
        req.extend_from_slice(b"\r\n\r\n");
        body.write_into(req);
        spare
    }

    /// Whether the idle connection is still open (no close, error or stray bytes). Costs
    /// no system call unless the socket turned readable since its last read: tokio keeps
    /// the readiness its I/O driver saw (a close by the server sets it), and the response's
    /// last read, filling less than the buffer, cleared it.
    fn idle_ok(&self) -> bool {
        let Some(s) = &self.stream else { return false };
        let mut probe = [0u8; 64];
        matches!(s.try_read(&mut probe), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
    }

    /// Writes `req` and reads its response. Returns what it said and whether the
    /// connection can carry another request.
    async fn exchange(&mut self, req: &[u8], want: Option<u64>, full: bool) -> Result<(Exchanged, bool), Fail> {
        // The fields borrowed apart: no clone of the shared `Arc` per request (every
        // session's requests would bump one counter, a cache line both cores fight over).
        let HttpConn { shared, stream, source, headers, .. } = self;
        let (source, headers) = (*source, &**headers);
        let Some(stream) = stream.as_mut() else { return Err(Fail::Unanswered("no connection".into())) };
        stream.write_all(req).await.map_err(|e| Fail::Unanswered(format!("while sending: {e}")))?;
        let mut rd = Reader::default();
        let mut head = rd.head(stream, full).await?;
        let mut ex = Exchanged {
            status: head.status,
            session: head.session.take(),
            challenge: head.challenge.take(),
            ..Exchanged::default()
        };
        let mut keep = !head.close;
        if !(200..300).contains(&head.status) {
            let mut body = Vec::new();
            let ended = rd
                .body(stream, head.framing, None, &mut |d| {
                    if body.len() + d.len() > ERROR_BODY_LIMIT {
                        return Err(Fail::Protocol("an error body is too large".into()));
                    }
                    body.extend_from_slice(d);
                    Ok(false)
                })
                .await;
            match ended {
                Ok(End::Done) => {}
                Ok(End::Open) | Err(_) => keep = false,
            }
            if rpc_status_in(head.status, shared.stateless) {
                ex.rpc = rpc_error_in(&body, head.event_stream).map(|e| e.code);
            }
            return Ok((ex, keep));
        }
        let Some(want) = want else {
            // A notification: 202 and (normally) no body; whatever comes is dropped.
            let limit = shared.max_message;
            let mut seen = 0usize;
            let ended = rd
                .body(stream, head.framing, None, &mut |d| {
                    seen += d.len();
                    if seen > limit {
                        return Err(Fail::Protocol("a notification's reply is too large".into()));
                    }
                    Ok(false)
                })
                .await?;
            return Ok((ex, keep && ended == End::Done));
        };
        let mut found =
            Found { want, full, reply: None, message: None, answers: Vec::new(), requests: &shared.requests };
        // Answers go out as their requests arrive: the server may wait for them to reply.
        let ended = if head.event_stream {
            // Boxed: the event-stream reader is the rare path, and inline it would grow
            // the future every request moves (twice: into its timeout and its await).
            Box::pin(read_events(&mut rd, stream, head.framing, (shared, source, headers), &mut found)).await?
        } else {
            let limit = shared.max_message;
            let mut spare = Spare::default();
            let body = &mut spare.0;
            let end = rd
                .body(stream, head.framing, None, &mut |d| {
                    if body.len() + d.len() > limit {
                        return Err(Fail::Protocol(format!("an HTTP reply exceeded the limit of {limit} bytes")));
                    }
                    body.extend_from_slice(d);
                    Ok(false)
                })
                .await?;
            found.message(body);
            end
        };
        found.send_answers(shared, source, headers);
        ex.reply = found.reply;
        ex.full = found.message;
        Ok((ex, keep && ended == End::Done))
    }

    /// What an idle session does once a second while held: a keep-alive connection the
    /// server closed (or that received something unasked) is let go, to be reopened by the
    /// next request. The session itself stays (it lives on the server, not the
    /// connection). Returns whether the session can still be used.
    pub fn sweep(&mut self) -> bool {
        if self.stream.is_some() && !self.idle_ok() {
            self.stream = None;
        }
        !self.broken
    }

    /// Ends the session: DELETE (when the server gave an id; failures, a refused token's
    /// too, ignored), then the connection closes (abortively on loopback).
    pub async fn close(mut self) {
        if !self.has_session || self.broken {
            return;
        }
        let mut req = Vec::with_capacity(self.shared.delete_head.len() + self.headers.len() + 24);
        req.extend_from_slice(&self.shared.delete_head);
        authorization_line(&mut req, self.shared.authorization().as_ref());
        req.extend_from_slice(&self.headers);
        req.extend_from_slice(b"Content-Length: 0\r\n\r\n");
        let delete = async {
            for _ in 0..2 {
                if self.stream.is_none() && self.open().await.is_err() {
                    return;
                }
                match self.exchange(&req, None, false).await {
                    Err(Fail::Unanswered(_)) => self.stream = None,
                    _ => return,
                }
            }
        };
        let _ = tokio::time::timeout(DELETE_TIMEOUT, delete).await;
    }
}

/// Reads an event-stream body, handing each message to `found` and sending the answers
/// its server requests are owed as they arrive (the server may wait for them before it
/// replies), on a side connection of the session (`to`: target, source address, session
/// header lines). Once the reply is in, the rest of the stream gets [`STREAM_END_GRACE`].
async fn read_events(
    rd: &mut Reader,
    stream: &mut TcpStream,
    framing: crate::net::http1::Framing,
    to: (&Arc<HttpShared>, Option<IpAddr>, &[u8]),
    found: &mut Found<'_>,
) -> Result<End, Fail> {
    let (shared, source, headers) = to;
    let mut parser = EventParser::new(shared.max_message);
    let end = rd
        .body(stream, framing, Some(STREAM_END_GRACE), &mut |d| {
            parser.push(d);
            loop {
                match parser.next_event() {
                    Ok(Some(ev)) if ev.kind == Kind::Message => found.message(&ev.data),
                    Ok(Some(_)) => {}
                    Ok(None) => break,
                    Err(e) => {
                        return Err(Fail::Protocol(format!("an SSE event exceeded the limit of {} bytes", e.limit)))
                    }
                }
            }
            found.send_answers(shared, source, headers);
            Ok(found.reply.is_some())
        })
        .await?;
    if end == End::Done {
        if let Ok(Some(ev)) = parser.finish() {
            if ev.kind == Kind::Message {
                found.message(&ev.data);
            }
        }
    }
    Ok(end)
}

impl Found<'_> {
    /// Sends the answers owed so far, on a side connection of the session.
    fn send_answers(&mut self, shared: &Arc<HttpShared>, source: Option<IpAddr>, headers: &[u8]) {
        if !self.answers.is_empty() {
            spawn_answers(shared.clone(), source, headers.into(), std::mem::take(&mut self.answers));
        }
    }
}

/// POSTs answers to server requests on a connection of their own (the session's is busy
/// reading the stream that carried the requests).
fn spawn_answers(shared: Arc<HttpShared>, source: Option<IpAddr>, headers: Box<[u8]>, answers: Vec<Vec<u8>>) {
    tokio::spawn(async move {
        let mut side = HttpConn::unopened(shared, source, headers);
        let work = async {
            for a in answers {
                if side.post(Body::Bytes(&a), &[], None, false, true).await.is_err() {
                    return;
                }
            }
        };
        let _ = tokio::time::timeout(DELETE_TIMEOUT, work).await;
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorts_out_the_messages_of_a_reply() {
        let none = ServerRequests::default();
        let mut f = Found { want: 3, full: true, reply: None, message: None, answers: vec![], requests: &none };
        f.message(br#"{"jsonrpc":"2.0","method":"notifications/progress","params":{}}"#);
        f.message(br#"{"jsonrpc":"2.0","id":"s1","method":"ping"}"#);
        f.message(br#"{"jsonrpc":"2.0","id":"s2","method":"sampling/createMessage"}"#);
        assert_eq!(f.reply, None);
        f.message(br#"[{"jsonrpc":"2.0","id":3,"error":{"code":-32602,"message":"bad"}}]"#);
        assert_eq!(f.reply, Some(Reply::Rpc(-32602)));
        assert!(f.message.as_deref().is_some_and(|m| m.starts_with(b"{\"jsonrpc\"")));
        assert_eq!(f.answers[0], b"{\"jsonrpc\":\"2.0\",\"id\":\"s1\",\"result\":{}}");
        assert!(String::from_utf8_lossy(&f.answers[1]).contains("-32601"));
        let enc = Encoded::new("ping", None);
        let (mut out, body) = (Vec::new(), Body::Template(&enc, 12));
        body.write_into(&mut out);
        assert_eq!(out, b"{\"jsonrpc\":\"2.0\",\"id\":12,\"method\":\"ping\"}");
        assert_eq!(body.len(), out.len());
    }

    #[tokio::test]
    async fn a_stateless_post_names_its_method_and_target_and_carries_no_session() {
        use crate::protocol::stateless::{envelope, VERSION};
        let init = Encoded::new(methods::INITIALIZE, None);
        let shared =
            HttpShared::new("http://127.0.0.1:9/mcp", Auth::default(), &[], 1 << 20, false, init).await.unwrap();
        let conn = HttpConn::unopened(Arc::new(shared.stateless(true)), None, Box::default());
        let env = envelope(VERSION, &serde_json::json!({}), "mcpscript", "1");
        let enc = Encoded::stateless("tools/call", Some(&serde_json::json!({"name": "echo"})), VERSION, &env);
        let mut body = Vec::new();
        Body::Template(&enc, 7).write_into(&mut body);
        let req =
            String::from_utf8(conn.post_request(Body::Template(&enc, 7), &enc.head, true, None).0.clone()).unwrap();
        let (head, sent) = req.split_once("\r\n\r\n").unwrap();
        let lines: Vec<&str> = head.split("\r\n").collect();
        assert_eq!(lines[0], "POST /mcp HTTP/1.1");
        for want in ["MCP-Protocol-Version: 2026-07-28", "Mcp-Method: tools/call", "Mcp-Name: echo"] {
            assert!(lines.contains(&want), "{want} in {lines:?}");
        }
        assert!(!head.to_ascii_lowercase().contains("mcp-session-id"), "{head}");
        assert_eq!(lines.last(), Some(&format!("Content-Length: {}", body.len()).as_str()));
        assert_eq!(sent.as_bytes(), body);
    }

    #[tokio::test]
    async fn a_static_token_is_in_the_heads_and_an_oauth_token_is_written_per_request() {
        use crate::client::oauth::{OAuth, OAuthConfig};
        let (url, init) = ("http://127.0.0.1:9/mcp", Encoded::new(methods::INITIALIZE, None));
        let has = |bytes: &[u8], what: &str| String::from_utf8_lossy(bytes).matches(what).count();
        let line = "Authorization: Bearer s3cret\r\n";
        let fixed = Auth::bearer(Some("s3cret")).unwrap();
        let fixed = HttpShared::new(url, fixed, &[], 1 << 20, false, init.clone()).await.unwrap();
        assert_eq!((has(&fixed.post_head, line), has(&fixed.delete_head, line)), (1, 1));
        assert!(fixed.authorization().is_none() && !fixed.refused(401), "nothing to do per request");
        let oauth = OAuth::new(OAuthConfig::default(), crate::net::tls::ClientTls::default()).unwrap();
        let auth = Auth::for_server(Some("s3cret"), Some(&oauth), url).unwrap();
        let shared = HttpShared::new(url, auth, &[], 1 << 20, false, init).await.unwrap();
        assert_eq!((has(&shared.post_head, "Authorization"), has(&shared.delete_head, "Authorization")), (0, 0));
        assert!(shared.refused(401) && shared.refused(403) && !shared.refused(404));
        // Before the first flow the static token stands in; each request carries what the
        // cache gives at the time, once.
        let sent = shared.authorization();
        assert_eq!(sent.as_ref().map(|v| v.as_bytes()), Some(&b"Bearer s3cret"[..]));
        let conn = HttpConn::unopened(Arc::new(shared), None, Box::default());
        let req = conn.post_request(Body::Bytes(b"{}"), &[], true, sent.as_ref());
        let req = String::from_utf8(req.0.clone()).unwrap();
        assert_eq!(has(req.as_bytes(), "Authorization"), 1, "{req}");
        assert!(req.starts_with("POST /mcp HTTP/1.1\r\n") && req.contains(line), "{req}");
    }
}
