//! `http://`: MCP Streamable HTTP (spec revision 2025-11-25).
//!
//! Every message is one POST to the endpoint. A notification or response gets 202; a
//! request gets its reply as `application/json` (a message or a batch) or as a
//! `text/event-stream` whose events each carry one message. The reply is read inside
//! [`Transport::send`] and handed to the [`Dispatcher`] before `send` returns, so an HTTP
//! failure (4xx/5xx, an oversized or missing reply) is `send`'s error and fails exactly
//! the request that caused it; a 400 (422, 500) whose body is a JSON-RPC error response is
//! that JSON-RPC error ([`ClientError::HttpRpc`]). `Mcp-Session-Id` is captured from the
//! `initialize` reply (also one sent raw, or the first reply of a session opened without
//! it) and sent on every later request; a 404 for a request carrying it means the server lost
//! the session, and the transport re-initializes (with the params it remembered) and
//! retries once. Requests of one session may overlap: each takes an idle keep-alive
//! connection from the session's small pool, or opens one.
//!
//! What the server sends unasked: requests (sampling, elicitation, roots, ping) and
//! notifications arrive on a POST's event stream or on the GET stream, which
//! [`Transport::listen`] opens once the session is initialized (405: the server has none).
//! Each answer to a server request goes out as its own POST as soon as it is ready, never
//! after the reply to the client's own request (a server that waits for the answer before
//! replying would deadlock otherwise). An event stream that ends before the reply it
//! carries (a POST's) or at all (the GET stream) is resumed with a GET carrying
//! `Last-Event-ID` after the server's `retry:` delay, when the server gave its events ids;
//! a few attempts at most ([`MAX_RESUMES`]; the stream reading lives in `streams`). Every
//! request, POST or GET, carries the session's extra headers and the `Authorization`
//! value [`Auth`] gives for it; with OAuth, one refused with 401 (or 403
//! `insufficient_scope`) gets a token ([`Auth::retry_refused`]) and is sent once more.
//!
//! A session of the stateless revision (2026-07-28, set with
//! [`Transport::set_protocol_version`] before its first request) has no session to keep:
//! every POST carries `MCP-Protocol-Version`, `Mcp-Method` and, for `tools/call`,
//! `prompts/get` and `resources/read`, `Mcp-Name` ([`stateless::name_of`]); no
//! `Mcp-Session-Id` is kept, so there is nothing to re-initialize and no DELETE on close,
//! and a 404 whose body is a JSON-RPC error is that error (the -32601 of a removed method
//! such as `ping`).

pub(crate) mod conn;
pub mod events;
mod streams;

use streams::is_event_stream;

use super::{BoxFuture, RawSent, Transport};
use crate::client::auth::{self, Auth};
use crate::client::{ClientError, ClientOptions, Dispatcher};
use crate::protocol::jsonrpc::{self, Id, Message, Payload, Response};
use crate::protocol::mcp::{methods, ServerInfo};
use crate::protocol::stateless;
use crate::util::lock;
use bytes::Bytes;
use conn::{BodyError, Conn, Endpoint, Pool, ReqBody, RoundTripError};
use futures_util::FutureExt;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::header::{HeaderName, HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, HOST};
use hyper::{Method, Request, StatusCode};
use serde_json::Value;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::task::AbortHandle;

pub(crate) const MCP_SESSION_ID: HeaderName = HeaderName::from_static("mcp-session-id");
pub(crate) const MCP_PROTOCOL_VERSION: HeaderName = HeaderName::from_static("mcp-protocol-version");
const ACCEPT_BOTH: HeaderValue = HeaderValue::from_static("application/json, text/event-stream");
const JSON: HeaderValue = HeaderValue::from_static("application/json");
const EVENT_STREAM: HeaderValue = HeaderValue::from_static("text/event-stream");
const LAST_EVENT_ID: HeaderName = HeaderName::from_static("last-event-id");

/// Headers a request carries besides the session's own.
type Extra = Vec<(HeaderName, HeaderValue)>;

/// Times an event stream is resumed (`Last-Event-ID`) before the transport gives up: for a
/// POST's stream, reconnections in a row without its reply; for the GET stream,
/// reconnections in a row that delivered nothing.
pub const MAX_RESUMES: u32 = 5;

/// The delay before resuming a stream whose server gave no `retry:`.
const DEFAULT_RETRY: Duration = Duration::from_secs(1);

/// The longest `retry:` honoured (a server asking for more gets this).
const MAX_RETRY: Duration = Duration::from_secs(30);

/// How long `connect` waits for the server to answer the GET stream's request.
const GET_STREAM_WAIT: Duration = Duration::from_secs(2);

/// Replies to server-initiated requests sent on behalf of one message, at most.
const MAX_REPLIES: usize = 64;

pub struct HttpTransport {
    inner: Arc<Inner>,
}

impl Drop for HttpTransport {
    /// The GET stream and streams read in the background end with the transport.
    fn drop(&mut self) {
        self.inner.stop_streams();
    }
}

struct Inner {
    dispatch: Arc<Dispatcher>,
    endpoint: Endpoint,
    pool: Pool,
    max_message: usize,
    auth: Auth,
    /// Extra headers (`--header`) on every request.
    headers: Vec<(HeaderName, HeaderValue)>,
    session: Mutex<Option<HeaderValue>>,
    version: Mutex<Option<HeaderValue>>,
    /// The version is a stateless revision: every POST names its method (and target), no
    /// `Mcp-Session-Id` is kept, and a 404 with a JSON-RPC error body is that error.
    stateless: AtomicBool,
    /// The params of the `initialize` this session sent, for re-initializing after a 404.
    init_params: Mutex<Option<Value>>,
    /// Serialises re-initialization: overlapping requests that all saw the 404 wait for
    /// one new session instead of each making one.
    reinit: tokio::sync::Mutex<()>,
    reinit_seq: AtomicU64,
    /// The GET stream and the event streams read in the background, ended on close.
    streams: Mutex<Vec<AbortHandle>>,
}

/// Opens a Streamable HTTP session to `url` (one connection is opened up front, so an
/// unreachable server fails here as [`ClientError::Connect`]).
pub async fn connect(
    url: &str,
    dispatch: Arc<Dispatcher>,
    opts: &ClientOptions,
) -> Result<Box<dyn Transport>, ClientError> {
    let target = dispatch.target().to_string();
    let err = |detail: String| ClientError::Connect { target: target.clone(), detail };
    let parsed = url::Url::parse(url).map_err(|e| err(e.to_string()))?;
    let endpoint = Endpoint::resolve_with_tls(&parsed, &opts.tls).await.map_err(err)?;
    let auth = Auth::for_server(opts.auth_token.as_deref(), opts.oauth.as_ref(), url).map_err(err)?;
    auth::check_headers(&opts.headers).map_err(err)?;
    let pool = Pool::new(&endpoint, opts.source_addr);
    pool.warm().await.map_err(err)?;
    Ok(Box::new(HttpTransport {
        inner: Arc::new(Inner {
            dispatch,
            endpoint,
            pool,
            max_message: opts.max_message_size,
            auth,
            headers: auth::header_pairs(&opts.headers),
            session: Mutex::new(None),
            version: Mutex::new(None),
            stateless: AtomicBool::new(false),
            init_params: Mutex::new(None),
            reinit: tokio::sync::Mutex::new(()),
            reinit_seq: AtomicU64::new(0),
            streams: Mutex::new(Vec::new()),
        }),
    }))
}

impl HttpTransport {
    fn post(&self, body: Bytes, want: Vec<Id>, is_init: bool, route: Extra) -> BoxFuture<'_, Result<(), ClientError>> {
        Box::pin(async move { self.post_for(body, Want::Ids(want), is_init, route).await.map(|_| ()) })
    }

    async fn post_for(&self, body: Bytes, want: Want, is_init: bool, route: Extra) -> Result<Exchanged, ClientError> {
        self.inner.exchange(body, want, is_init, &route).await
    }
}

/// What a POST waits for in its reply.
enum Want {
    /// The replies to these requests (none for notifications and responses).
    Ids(Vec<Id>),
    /// The reply to a raw message: the first response in the reply, whatever its id.
    Raw,
}

/// The outcome of one POST (answers to server requests in its reply went out already).
struct Exchanged {
    /// For a raw message the reply lacked: what the server answered instead.
    unanswered: Option<String>,
}

impl Transport for HttpTransport {
    fn send(&self, msg: Message) -> BoxFuture<'_, Result<(), ClientError>> {
        let route = self.inner.route(&msg);
        let (want, is_init) = match &msg {
            Message::Request(r) => {
                let is_init = r.method == methods::INITIALIZE;
                if is_init {
                    *lock(&self.inner.init_params) = r.params.clone();
                }
                (vec![r.id.clone()], is_init)
            }
            _ => (Vec::new(), false),
        };
        self.post(Bytes::from(msg.to_vec()), want, is_init, route)
    }

    /// One POST with a JSON array; the reply is a batch (or one event per reply).
    fn send_batch(&self, msgs: Vec<Message>) -> BoxFuture<'_, Result<(), ClientError>> {
        let want =
            msgs.iter().filter_map(|m| if let Message::Request(r) = m { Some(r.id.clone()) } else { None }).collect();
        self.post(Bytes::from(jsonrpc::batch_to_vec(&msgs)), want, false, Extra::new())
    }

    /// One POST with `bytes` as its body and the session's headers (in a stateless
    /// session, also those naming the method and target when `bytes` is one message); the
    /// reply is read here and handed to the dispatcher (a raw `initialize` is remembered
    /// like a normal one).
    fn send_raw(&self, bytes: Vec<u8>) -> BoxFuture<'_, Result<RawSent, ClientError>> {
        Box::pin(async move {
            let (is_init, route) = match jsonrpc::parse(&bytes) {
                Ok(Payload::Single(Ok(msg))) => {
                    let route = self.inner.route(&msg);
                    match msg {
                        Message::Request(r) if r.method == methods::INITIALIZE => {
                            *lock(&self.inner.init_params) = r.params;
                            (true, route)
                        }
                        _ => (false, route),
                    }
                }
                _ => (false, Extra::new()),
            };
            let done = self.post_for(Bytes::from(bytes), Want::Raw, is_init, route).await?;
            // Without `unanswered`, a reply came: if the raw waiter did not claim it, it
            // carried an id other than the message's.
            let answer = done.unanswered.unwrap_or_else(|| "a reply with an id other than the message's".into());
            Ok(RawSent::Finished { answer })
        })
    }

    /// `None` drops the header (the `initialize` handshake goes without it); a stateless
    /// revision makes the session stateless ([`Inner::route`]).
    fn set_protocol_version(&self, version: Option<&str>) {
        *lock(&self.inner.version) = version.and_then(|v| HeaderValue::try_from(v).ok());
        self.inner.stateless.store(version.is_some_and(stateless::is_stateless), Ordering::Relaxed);
    }

    /// Opens the GET stream for server-initiated messages; it is read in the background.
    fn listen(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            let (opened, answered) = tokio::sync::oneshot::channel();
            let task = tokio::spawn(self.inner.clone().listen(opened));
            self.inner.track(task.abort_handle());
            let _ = tokio::time::timeout(GET_STREAM_WAIT, answered).await;
        })
    }

    /// DELETE the session (a 405 or any failure is ignored), then drop the connections.
    fn close(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            let inner = &self.inner;
            let session = lock(&inner.session).take();
            if let Some(session) = session {
                let delete = async {
                    let mut conn = inner.pool.take().await.ok()?;
                    let req = inner.request(Method::DELETE, Bytes::new(), Some(&session));
                    let resp = conn.tx.send_request(req).await.ok()?;
                    let _ = resp.into_body().collect().await;
                    Some(())
                };
                let _ = tokio::time::timeout(std::time::Duration::from_secs(2), delete).await;
            }
            inner.stop_streams();
            inner.pool.clear();
            inner.dispatch.close("closed by the client");
        })
    }
}

/// Where the messages of one HTTP reply go.
trait Sink {
    /// Takes one message frame (a message or a batch).
    fn frame(&mut self, data: &[u8]);
    /// Whether every reply this POST waits for has come.
    fn satisfied(&self) -> bool;
    /// The answers owed to server requests seen so far (taken: each is sent once).
    fn take_replies(&mut self) -> Vec<Message> {
        Vec::new()
    }
    /// Messages taken so far.
    fn delivered(&self) -> u64 {
        0
    }
    /// Whether a frame could not be read as JSON-RPC: the reply may have come garbled, and
    /// resuming the stream after it would not bring it again.
    fn garbled(&self) -> bool {
        false
    }
}

/// Normal operation: into the dispatcher, collecting replies owed to server requests.
struct ToDispatcher<'a> {
    dispatch: &'a Dispatcher,
    /// Ids of the requests in the POST not answered yet.
    want: Vec<Id>,
    replies: Vec<Message>,
    frames: u64,
    garbled: bool,
}

impl<'a> ToDispatcher<'a> {
    fn new(dispatch: &'a Dispatcher, want: Vec<Id>) -> Self {
        ToDispatcher { dispatch, want, replies: Vec::new(), frames: 0, garbled: false }
    }

    fn deliver(&mut self, msg: Message) {
        if let Message::Response(Response { id: Some(id), .. }) = &msg {
            if let Some(i) = self.want.iter().position(|w| w == id) {
                self.want.swap_remove(i);
            }
        }
        self.replies.extend(self.dispatch.deliver(msg));
    }
}

impl Sink for ToDispatcher<'_> {
    fn frame(&mut self, data: &[u8]) {
        self.frames += 1;
        match jsonrpc::parse(data) {
            Ok(Payload::Single(Ok(Message::Response(Response { id: None, outcome: Err(e) }))))
                if self.want.len() == 1 =>
            {
                // An id-less error in the reply to our POST (a parse error, say) can only
                // be about the one request we sent.
                let id = self.want[0].clone();
                self.deliver(Message::Response(Response { id: Some(id), outcome: Err(e) }))
            }
            Ok(Payload::Single(Ok(msg))) => self.deliver(msg),
            Ok(Payload::Batch(items)) if items.iter().all(Result::is_ok) => {
                items.into_iter().flatten().for_each(|msg| self.deliver(msg));
            }
            // Invalid or unparseable: the dispatcher records the violation (and charges it
            // to its request when it can tell which).
            _ => {
                self.garbled = true;
                self.replies.extend(self.dispatch.deliver_frame(data))
            }
        }
    }

    fn garbled(&self) -> bool {
        self.garbled
    }

    fn satisfied(&self) -> bool {
        self.want.is_empty()
    }

    fn take_replies(&mut self) -> Vec<Message> {
        std::mem::take(&mut self.replies)
    }

    fn delivered(&self) -> u64 {
        self.frames
    }
}

/// A raw message: everything into the dispatcher (whose raw waiter claims the reply);
/// satisfied by the first response or unparseable frame.
struct RawSink<'a> {
    dispatch: &'a Dispatcher,
    answered: bool,
    replies: Vec<Message>,
}

impl Sink for RawSink<'_> {
    fn frame(&mut self, data: &[u8]) {
        let from_server =
            matches!(jsonrpc::parse(data), Ok(Payload::Single(Ok(Message::Request(_) | Message::Notification(_)))));
        self.answered |= !from_server;
        self.replies.extend(self.dispatch.deliver_frame(data));
    }

    fn satisfied(&self) -> bool {
        self.answered
    }

    fn take_replies(&mut self) -> Vec<Message> {
        std::mem::take(&mut self.replies)
    }
}

/// Re-initialization: keep the reply to our own `initialize`.
struct Capture<'a> {
    want: &'a Id,
    reply: Option<Response>,
}

impl Sink for Capture<'_> {
    fn frame(&mut self, data: &[u8]) {
        if let Ok(Payload::Single(Ok(Message::Response(r)))) = jsonrpc::parse(data) {
            if r.id.as_ref() == Some(self.want) {
                self.reply = Some(r);
            }
        }
    }

    fn satisfied(&self) -> bool {
        self.reply.is_some()
    }
}

/// How reading a reply ended.
enum Read {
    /// The wanted reply came (or nothing was wanted).
    Done,
    /// The body ended without the wanted reply.
    Missing(&'static str),
}

impl Inner {
    fn target(&self) -> String {
        self.dispatch.target().to_string()
    }

    fn protocol(&self, detail: impl Into<String>) -> ClientError {
        ClientError::Protocol { target: self.target(), detail: detail.into() }
    }

    fn request(&self, method: Method, body: Bytes, session: Option<&HeaderValue>) -> Request<ReqBody> {
        let get = method == Method::GET;
        let mut req = Request::new(ReqBody::new(body));
        *req.method_mut() = method;
        *req.uri_mut() = self.endpoint.path.clone();
        let h = req.headers_mut();
        h.insert(HOST, self.endpoint.host.clone());
        for (k, v) in &self.headers {
            h.insert(k.clone(), v.clone());
        }
        if get {
            h.insert(ACCEPT, EVENT_STREAM);
        } else {
            h.insert(ACCEPT, ACCEPT_BOTH);
            h.insert(CONTENT_TYPE, JSON);
        }
        if let Some(s) = session {
            h.insert(MCP_SESSION_ID, s.clone());
        }
        if let Some(v) = lock(&self.version).as_ref() {
            h.insert(MCP_PROTOCOL_VERSION, v.clone());
        }
        if let Some(a) = self.auth.header() {
            h.insert(AUTHORIZATION, a);
        }
        req
    }

    /// One request (`POST` with `body`, or a `GET` resuming after `last_event_id`) on a
    /// pooled connection.
    async fn round_trip_as(
        &self,
        method: Method,
        body: Bytes,
        session: Option<&HeaderValue>,
        last_event_id: Option<&str>,
    ) -> Result<(hyper::Response<Incoming>, Conn), ClientError> {
        let last = last_event_id.and_then(|id| HeaderValue::try_from(id).ok()).map(|id| (LAST_EVENT_ID, id));
        self.round_trip_with(method, body, session, last.as_slice()).await
    }

    /// One request with `extra` headers on a pooled connection.
    async fn round_trip_with(
        &self,
        method: Method,
        body: Bytes,
        session: Option<&HeaderValue>,
        extra: &[(HeaderName, HeaderValue)],
    ) -> Result<(hyper::Response<Incoming>, Conn), ClientError> {
        let make = || {
            let mut req = self.request(method.clone(), body.clone(), session);
            for (k, v) in extra {
                req.headers_mut().insert(k.clone(), v.clone());
            }
            req
        };
        conn::round_trip(&self.pool, make).await.map_err(|e| match e {
            RoundTripError::Connect(detail) => ClientError::Connect { target: self.target(), detail },
            RoundTripError::Failed(e) => {
                ClientError::Closed { target: self.target(), detail: format!("during an HTTP request: {e}") }
            }
        })
    }

    /// One POST on a pooled connection, with the headers of its `route`.
    async fn round_trip(
        &self,
        body: Bytes,
        session: Option<&HeaderValue>,
        route: &[(HeaderName, HeaderValue)],
    ) -> Result<(hyper::Response<Incoming>, Conn), ClientError> {
        self.round_trip_with(Method::POST, body, session, route).await
    }

    fn is_stateless(&self) -> bool {
        self.stateless.load(Ordering::Relaxed)
    }

    /// The headers that name what `msg` is, in a stateless session: `Mcp-Method`, and
    /// `Mcp-Name` for `tools/call`, `prompts/get` and `resources/read` (the server checks
    /// them against the body); none otherwise.
    fn route(&self, msg: &Message) -> Extra {
        let (method, params) = match msg {
            Message::Request(r) => (&r.method, r.params.as_ref()),
            Message::Notification(n) => (&n.method, n.params.as_ref()),
            Message::Response(_) => return Extra::new(),
        };
        if !self.is_stateless() {
            return Extra::new();
        }
        let header = |name: &str, value: &str| {
            Some((HeaderName::from_bytes(name.as_bytes()).ok()?, HeaderValue::try_from(value).ok()?))
        };
        let name = stateless::name_of(method, params).map(stateless::header_value);
        [header(stateless::headers::METHOD, &stateless::header_value(method))]
            .into_iter()
            .chain(name.map(|n| header(stateless::headers::NAME, &n)))
            .flatten()
            .collect()
    }

    /// Sends one message (or batch, or raw text) with the headers of its `route` and reads
    /// the replies to what it `want`s into the dispatcher; answers to requests the server
    /// made meanwhile are sent as they come.
    async fn exchange(
        self: &Arc<Self>,
        body: Bytes,
        want: Want,
        is_init: bool,
        route: &[(HeaderName, HeaderValue)],
    ) -> Result<Exchanged, ClientError> {
        let mut renewed = false;
        let mut authed = false;
        loop {
            let session = lock(&self.session).clone();
            let sent = self.auth.header();
            let (resp, conn) = self.round_trip(body.clone(), session.as_ref(), route).await?;
            let status = resp.status();
            if status.is_success() {
                if let Some(id) = resp.headers().get(MCP_SESSION_ID).filter(|_| !self.is_stateless()) {
                    let mut current = lock(&self.session);
                    if is_init || current.is_none() {
                        *current = Some(id.clone());
                    }
                }
                let want = match want {
                    Want::Ids(ids) => ids,
                    Want::Raw => {
                        let code = status.as_u16();
                        let mut sink = RawSink { dispatch: &self.dispatch, answered: false, replies: Vec::new() };
                        let read = self.read_reply(resp, conn, &mut sink, true).await?;
                        let unanswered = match read {
                            Read::Done => None,
                            Read::Missing(how) => Some(format!("HTTP {code}; {how} without a reply")),
                        };
                        return Ok(Exchanged { unanswered });
                    }
                };
                let wanted = !want.is_empty();
                let mut sink = ToDispatcher::new(&self.dispatch, want);
                return match self.read_reply(resp, conn, &mut sink, wanted).await? {
                    Read::Done => Ok(Exchanged { unanswered: None }),
                    Read::Missing(how) => {
                        let ids: Vec<String> = sink.want.iter().map(Id::to_string).collect();
                        let note = self.dispatch.violation_note();
                        Err(self.protocol(format!("{how} without the reply to request {}{note}", ids.join(", "))))
                    }
                };
            }
            if status == StatusCode::NOT_FOUND && !renewed && !is_init {
                if let Some(stale) = session {
                    self.release(resp, conn).await;
                    self.reinitialize(&stale).await?;
                    renewed = true;
                    continue;
                }
            }
            if !authed && self.auth.retry_refused(&self.target(), status, resp.headers(), sent.as_ref()).await? {
                // OAuth got a token for everyone: the request once more.
                self.release(resp, conn).await;
                authed = true;
                continue;
            }
            return Err(self.http_error(resp).await);
        }
    }

    /// Reads the rest of a response nobody needs, then gives its connection back.
    async fn release(&self, resp: hyper::Response<Incoming>, conn: Conn) {
        let _ = resp.into_body().collect().await;
        self.pool.put(conn);
    }

    /// An error status: [`ClientError::HttpRpc`] when the body is a JSON-RPC error that
    /// answers it (see [`conn::rpc_status_in`]), [`ClientError::Unauthorized`] for a 401,
    /// else [`ClientError::Http`].
    async fn http_error(&self, resp: hyper::Response<Incoming>) -> ClientError {
        conn::status_error(self.target(), resp, self.is_stateless()).await
    }

    /// Sends the answers `sink` collected, each as its own POST, without waiting.
    fn flush<S: Sink>(self: &Arc<Self>, sink: &mut S) {
        let replies = sink.take_replies();
        if !replies.is_empty() {
            tokio::spawn(self.clone().post_replies(replies));
        }
    }

    /// Reads a successful reply into `sink` (`wanted`: the POST held requests). The
    /// connection goes back to the pool once the body has been read to its end.
    async fn read_reply<S: Sink>(
        self: &Arc<Self>,
        resp: hyper::Response<Incoming>,
        conn: Conn,
        sink: &mut S,
        wanted: bool,
    ) -> Result<Read, ClientError> {
        let headers = resp.headers();
        let is_stream = is_event_stream(headers);
        let empty =
            resp.status() == StatusCode::ACCEPTED || headers.get(CONTENT_LENGTH).is_some_and(|l| l.as_bytes() == b"0");
        if !wanted {
            // Notifications and responses get 202 and no body; anything a server sends
            // anyway answers nothing of ours and is dropped.
            if conn::read_body(resp.into_body(), self.max_message).await.is_ok() {
                self.pool.put(conn);
            }
            return Ok(Read::Done);
        }
        if is_stream {
            return self.read_stream(resp.into_body(), conn, sink).await;
        }
        let body = match conn::read_body(resp.into_body(), self.max_message).await {
            Ok(b) => b,
            Err(BodyError::TooLarge) => {
                return Err(self.protocol(format!("an HTTP reply exceeded the limit of {} bytes", self.max_message)));
            }
            Err(BodyError::Io(e)) => {
                return Err(ClientError::Closed {
                    target: self.target(),
                    detail: format!("while reading an HTTP reply: {e}"),
                })
            }
        };
        self.pool.put(conn);
        if empty || body.iter().all(u8::is_ascii_whitespace) {
            return Ok(Read::Missing("the server answered with an empty body"));
        }
        sink.frame(&body);
        self.flush(sink);
        Ok(if sink.satisfied() { Read::Done } else { Read::Missing("the server's JSON reply came") })
    }

    /// Sends replies owed to server-initiated requests, one POST each (failures are only
    /// logged: they belong to no request of ours). Boxed: it re-enters `exchange`.
    fn post_replies(self: Arc<Self>, replies: Vec<Message>) -> BoxFuture<'static, ()> {
        Box::pin(async move {
            for reply in replies.into_iter().take(MAX_REPLIES) {
                if let Err(e) = self.exchange(Bytes::from(reply.to_vec()), Want::Ids(Vec::new()), false, &[]).await {
                    tracing::debug!("cannot answer a server request: {e}");
                }
            }
        })
    }

    /// After a 404: a fresh `initialize` (with the remembered params) and
    /// `notifications/initialized`, unless another request already did it.
    async fn reinitialize(self: &Arc<Self>, stale: &HeaderValue) -> Result<(), ClientError> {
        let _one_at_a_time = self.reinit.lock().await;
        if lock(&self.session).as_ref() != Some(stale) {
            return Ok(());
        }
        let params = lock(&self.init_params).clone();
        let Some(params) = params else {
            return Err(self.protocol("the server lost the session (HTTP 404) before initialize was sent"));
        };
        // The stale id stays until the new one is known: if this future is dropped midway
        // (a request deadline), the next request sees the 404 again and retries.
        let seq = self.reinit_seq.fetch_add(1, Ordering::Relaxed) + 1;
        tracing::debug!("{}: session expired (HTTP 404); re-initializing (#{seq})", self.target());
        let id = Id::Str(format!("mcpscript-reinitialize-{seq}"));
        let body = Bytes::from(Message::request(id.clone(), methods::INITIALIZE, Some(params)).to_vec());
        let (resp, conn) = self.round_trip(body, None, &[]).await?;
        if !resp.status().is_success() {
            return Err(self.http_error(resp).await);
        }
        let session = resp.headers().get(MCP_SESSION_ID).cloned();
        let mut capture = Capture { want: &id, reply: None };
        self.read_reply(resp, conn, &mut capture, true).await?;
        let handshake = |detail: String| ClientError::Handshake {
            target: self.target(),
            detail: format!("re-initializing after HTTP 404: {detail}"),
        };
        let result = match capture.reply.map(|r| r.outcome) {
            Some(Ok(result)) => result,
            Some(Err(e)) => return Err(handshake(e.to_string())),
            None => return Err(handshake("no reply to initialize".into())),
        };
        let info = ServerInfo::from_result(&result).map_err(handshake)?;
        if let Ok(v) = HeaderValue::try_from(info.protocol_version.as_str()) {
            *lock(&self.version) = Some(v);
        }
        *lock(&self.session) = session.clone();
        let note = Bytes::from(Message::notification(methods::INITIALIZED, None).to_vec());
        let (resp, conn) = self.round_trip(note, session.as_ref(), &[]).await?;
        if !resp.status().is_success() {
            return Err(self.http_error(resp).await);
        }
        let _ = resp.into_body().collect().await;
        self.pool.put(conn);
        Ok(())
    }
}
