//! Server-to-client traffic during a request: log and progress notifications, and the
//! server's own requests (`sampling/createMessage`, `elicitation/create`) whose replies
//! the client sends back later.
//!
//! A tool that talks to the client while it runs is a [`Streaming`] call: the handler
//! hands it to the transport, which either [`Streaming::start`]s it (its messages, then
//! the final reply, come out of a channel: the POST's SSE stream over Streamable HTTP, the
//! session's stream over legacy SSE, the connection itself over ws, tcp and stdio) or runs
//! it with no way to the client ([`Streaming::reply_only`]: a JSON reply over HTTP, a
//! batch), where notifications are dropped and server requests fail at once.
//!
//! Each session keeps an [`Exchange`]: the ids of the server's requests still waiting for
//! a reply, the log level the client set, its resource subscriptions and whether it
//! declared the `sampling` and `elicitation` capabilities. The existing tools never touch
//! any of it: only the conformance fixtures stream. In the stateless era a request's own
//! state declares what its envelope does (capabilities, log opt-in), notifications go out
//! as in the other era, and server requests fail at once: that era has none; a tool that
//! [`Peer::ask`]s instead answers `input_required` and gets the client's answer with the
//! request sent again.
//!
//! A transport that can resume its streams (Streamable HTTP) gives the call a
//! [`StreamCloser`] ([`Streaming::start_with`]): [`Peer::close_stream`] ends the stream the
//! client reads now, and what the call sends afterwards waits for the client to resume it
//! (the `test_reconnection` fixture). When several worker processes serve one port, a
//! session's request ids name the worker that sent them ([`Exchange::route_to_workers`]),
//! and a reply that reached another worker is handed to that one ([`Resolved::Elsewhere`],
//! [`super::siblings`]).

use super::handler::SessionState;
use crate::protocol::jsonrpc::{ErrorObject, Id, Message, Response, INTERNAL_ERROR, INVALID_PARAMS, INVALID_REQUEST};
use crate::protocol::mcp::codes;
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicI64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// How long the server waits for the client's reply to one of its requests.
pub const SERVER_REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// Messages queued towards the client before a streaming call waits for the transport.
const QUEUE: usize = 32;

/// The log levels of `logging/setLevel`, least severe first (RFC 5424 names).
pub const LOG_LEVELS: [&str; 8] = ["debug", "info", "notice", "warning", "error", "critical", "alert", "emergency"];

const SAMPLING: u8 = 1;
const ELICITATION: u8 = 2;

/// Worker slots in a routed request id: `sequence * WORKER_SLOTS + worker` (`--workers` is
/// at most 64; ids stay far below 2^53, so JavaScript clients echo them exactly).
pub const WORKER_SLOTS: i64 = 64;

/// Where the client's replies to a session's requests belong when several worker
/// processes serve the port.
struct Route {
    /// This process's worker index: the one its request ids name.
    worker: usize,
    /// Index of the listener (`--listen` order, the same in every worker) and the HTTP
    /// session id, with which another worker finds the session.
    listener: usize,
    session: Box<str>,
}

/// What became of a client's reply to one of the server's requests.
pub enum Resolved {
    /// The waiting request has it.
    Here,
    /// No request of this session waits for that id (unknown, answered already, or timed out).
    Unknown,
    /// Its id names another worker process, which sent the request: hand it over.
    Elsewhere(Forward),
}

/// A reply for the worker process whose request it answers.
pub struct Forward {
    pub worker: usize,
    pub listener: usize,
    pub session: Box<str>,
    pub reply: Response,
}

/// What a transport that can resume its streams lets a call do: end the stream the client
/// reads now (with `retry:`); the client resumes it and gets the rest. False when no
/// client is reading it at the moment.
pub type StreamCloser = Arc<dyn Fn() -> bool + Send + Sync>;

/// One session's side of the server-to-client exchange.
#[derive(Default)]
pub struct Exchange {
    next_id: AtomicI64,
    pending: Mutex<HashMap<i64, oneshot::Sender<Result<Value, ErrorObject>>>>,
    /// Index into [`LOG_LEVELS`] of the least severe level sent (0: everything).
    log_level: AtomicU8,
    subscriptions: Mutex<HashSet<String>>,
    /// [`SAMPLING`] | [`ELICITATION`], as the client declared them.
    client_caps: AtomicU8,
    /// Set when several worker processes serve the session ([`Self::route_to_workers`]);
    /// boxed, so that sessions without it (and stateless requests' states) stay small.
    route: OnceLock<Box<Route>>,
}

impl Exchange {
    /// Records what the client declared in `initialize` params (`capabilities`).
    pub fn set_client_capabilities(&self, params: &Value) {
        self.declare(params.get("capabilities"));
    }

    /// Records the client's capabilities (`initialize`'s, or a stateless request's
    /// envelope's).
    pub fn declare(&self, caps: Option<&Value>) {
        let mut bits = 0;
        if caps.and_then(|c| c.get("sampling")).is_some() {
            bits |= SAMPLING;
        }
        if caps.and_then(|c| c.get("elicitation")).is_some() {
            bits |= ELICITATION;
        }
        self.client_caps.store(bits, Ordering::Relaxed);
    }

    /// For a session taken over from a sibling worker, whose `initialize` went elsewhere:
    /// the client may have declared anything.
    pub fn assume_every_capability(&self) {
        self.client_caps.store(SAMPLING | ELICITATION, Ordering::Relaxed);
    }

    fn has_capability(&self, bit: u8) -> bool {
        self.client_caps.load(Ordering::Relaxed) & bit != 0
    }

    /// `logging/setLevel`: the level must be one of [`LOG_LEVELS`].
    pub fn set_log_level(&self, params: Option<&Value>) -> Result<Value, ErrorObject> {
        let level = params
            .and_then(|p| p.get("level"))
            .and_then(Value::as_str)
            .ok_or_else(|| ErrorObject::new(INVALID_PARAMS, "logging/setLevel needs params.level (a string)"))?;
        let Some(index) = LOG_LEVELS.iter().position(|l| *l == level) else {
            return Err(ErrorObject::new(
                INVALID_PARAMS,
                format!("logging/setLevel: unknown level \"{level}\"; use one of {}", LOG_LEVELS.join(", ")),
            ));
        };
        self.log_level.store(index as u8, Ordering::Relaxed);
        Ok(json!({}))
    }

    /// A stateless request's log opt-in (its envelope's `logLevel`): without one, nothing
    /// is logged to it (in the handshake era everything is, until `logging/setLevel`).
    pub fn set_log_opt_in(&self, level: Option<&str>) {
        let index = level.and_then(|l| LOG_LEVELS.iter().position(|x| *x == l)).unwrap_or(LOG_LEVELS.len());
        self.log_level.store(index as u8, Ordering::Relaxed);
    }

    /// Whether a message at `level` passes the level the client set.
    pub fn logs(&self, level: &str) -> bool {
        LOG_LEVELS
            .iter()
            .position(|l| *l == level)
            .is_some_and(|i| i >= self.log_level.load(Ordering::Relaxed) as usize)
    }

    /// `resources/subscribe` (`on`) and `resources/unsubscribe`.
    pub fn subscribe(&self, params: Option<&Value>, on: bool) -> Result<Value, ErrorObject> {
        let uri = params
            .and_then(|p| p.get("uri"))
            .and_then(Value::as_str)
            .ok_or_else(|| ErrorObject::new(INVALID_PARAMS, "resources/(un)subscribe needs params.uri (a string)"))?;
        let mut subs = crate::util::lock(&self.subscriptions);
        if on {
            subs.insert(uri.to_string());
        } else {
            subs.remove(uri);
        }
        Ok(json!({}))
    }

    pub fn is_subscribed(&self, uri: &str) -> bool {
        crate::util::lock(&self.subscriptions).contains(uri)
    }

    /// Several worker processes serve this session (a Streamable HTTP session, whose
    /// requests may land on any of them): from now on its request ids name `worker`, this
    /// process, so that whichever worker gets the client's reply knows whose it is.
    /// `listener` and `session` let the other workers find the session here.
    pub fn route_to_workers(&self, worker: usize, listener: usize, session: &str) {
        let _ = self.route.set(Box::new(Route { worker, listener, session: session.into() }));
    }

    /// The id of the server's next request: 1, 2, 3… or, routed, `n * WORKER_SLOTS + worker`.
    fn next_request_id(&self) -> i64 {
        let n = self.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        match self.route.get() {
            Some(r) => n * WORKER_SLOTS + r.worker as i64,
            None => n,
        }
    }

    /// A reply from the client to one of the server's requests: delivered to the request
    /// that waits for it, or, when its id names another worker process, to be handed over.
    pub fn resolve(&self, reply: Response) -> Resolved {
        if let (Some(route), Some(Id::Num(id))) = (self.route.get(), &reply.id) {
            let worker = id.rem_euclid(WORKER_SLOTS) as usize;
            if worker != route.worker {
                return Resolved::Elsewhere(Forward {
                    worker,
                    listener: route.listener,
                    session: route.session.clone(),
                    reply,
                });
            }
        }
        if self.resolve_here(reply) {
            Resolved::Here
        } else {
            Resolved::Unknown
        }
    }

    /// Delivers a reply to the request of this process that waits for its id. False when
    /// none does (unknown, answered already, or timed out).
    pub fn resolve_here(&self, reply: Response) -> bool {
        let Some(Id::Num(id)) = reply.id else { return false };
        match crate::util::lock(&self.pending).remove(&id) {
            Some(waiter) => waiter.send(reply.outcome).is_ok(),
            None => false,
        }
    }

    /// Requests still waiting for the client's reply.
    pub fn pending(&self) -> usize {
        crate::util::lock(&self.pending).len()
    }

    /// Registers a request waiting for `waiter`'s reply, as [`Peer::request`] does; its id.
    #[cfg(test)]
    pub(crate) fn wait_for_test(&self, waiter: oneshot::Sender<Result<Value, ErrorObject>>) -> i64 {
        let id = self.next_request_id();
        crate::util::lock(&self.pending).insert(id, waiter);
        id
    }
}

/// Removes a request from the pending table when its waiter gives up (timeout, or the
/// call was dropped because the client went away).
struct PendingGuard<'a> {
    exchange: &'a Exchange,
    id: i64,
}

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        crate::util::lock(&self.exchange.pending).remove(&self.id);
    }
}

/// What a streaming call uses to reach its client.
pub struct Peer {
    session: Arc<SessionState>,
    /// `None`: no way to the client (a JSON reply, a batch).
    tx: Option<mpsc::Sender<Vec<u8>>>,
    /// Ends the stream the client reads (transports that can resume their streams).
    closer: Option<StreamCloser>,
}

impl Peer {
    /// A peer with no way to the client, for tests and [`Streaming::reply_only`].
    pub fn detached(session: Arc<SessionState>) -> Peer {
        Peer { session, tx: None, closer: None }
    }

    pub fn session(&self) -> &SessionState {
        &self.session
    }

    /// Ends the event stream the client reads now, mid-call (with `retry:`, so that it
    /// comes back with `Last-Event-ID`); what the call sends afterwards, its reply too,
    /// waits for the resumed stream. False, and nothing happens, on a transport that
    /// cannot resume streams or when no client reads the stream at the moment.
    pub fn close_stream(&self) -> bool {
        self.closer.as_ref().is_some_and(|close| close())
    }

    /// Sends a notification (dropped when there is no way to the client).
    pub async fn notify(&self, method: &str, params: Value) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(Message::notification(method, Some(params)).to_vec()).await;
        }
    }

    /// `notifications/message` at `level`, if the client's log level lets it through.
    pub async fn log(&self, level: &str, logger: &str, data: Value) {
        if self.session.exchange().logs(level) {
            self.notify("notifications/message", json!({"level": level, "logger": logger, "data": data})).await;
        }
    }

    /// `notifications/progress` for `token` (nothing without a token).
    pub async fn progress(&self, token: Option<&Value>, progress: u64, total: u64, message: &str) {
        if let Some(token) = token {
            let params = json!({"progressToken": token, "progress": progress, "total": total, "message": message});
            self.notify("notifications/progress", params).await;
        }
    }

    /// Sends `method` to the client and waits (at most [`SERVER_REQUEST_TIMEOUT`]) for its
    /// reply. Fails at once in the stateless era (it has no server-to-client requests),
    /// when the client did not declare the capability the method needs, or when there is
    /// no way to reach it.
    pub async fn request(&self, method: &str, params: Value) -> Result<Value, ErrorObject> {
        if self.session.is_stateless() {
            return Err(super::stateless::no_back_channel(method));
        }
        let exchange = self.session.exchange();
        if let Some((bit, name)) = capability_of(method) {
            if !exchange.has_capability(bit) {
                // -32600, as the official SDKs answer a request the client cannot take.
                return Err(ErrorObject::new(
                    INVALID_REQUEST,
                    format!(
                        "the client did not declare the {name} capability in initialize, so it cannot answer {method}"
                    ),
                ));
            }
        }
        let Some(tx) = &self.tx else {
            return Err(ErrorObject::new(
                INTERNAL_ERROR,
                format!(
                    "cannot send {method} to the client: this reply is not a stream (accept text/event-stream, \
                     or use a ws, tcp or stdio connection)"
                ),
            ));
        };
        let id = exchange.next_request_id();
        let (waiter, reply) = oneshot::channel();
        crate::util::lock(&exchange.pending).insert(id, waiter);
        let _guard = PendingGuard { exchange, id };
        if tx.send(Message::request(Id::Num(id), method, Some(params)).to_vec()).await.is_err() {
            return Err(ErrorObject::new(INTERNAL_ERROR, format!("cannot send {method}: the client went away")));
        }
        match tokio::time::timeout(SERVER_REQUEST_TIMEOUT, reply).await {
            Ok(Ok(outcome)) => outcome,
            Ok(Err(_)) => Err(ErrorObject::new(INTERNAL_ERROR, format!("{method}: the reply was lost"))),
            Err(_) => Err(ErrorObject::new(
                codes::REQUEST_TIMEOUT,
                format!("{method}: no reply from the client within {}s", SERVER_REQUEST_TIMEOUT.as_secs()),
            )),
        }
    }

    /// Asks the client `method`: in the handshake era as [`Self::request`] does; in the
    /// stateless era, which has no server requests, by the multi-round-trip: the answer
    /// this request brought (`params.inputResponses`), else an `input_required` result
    /// asking for it, which the tool returns (the client answers and sends the request
    /// again). Without the capability the method needs: -32021.
    pub async fn ask(&self, method: &str, params: Value) -> Result<Asked, ErrorObject> {
        if !self.session.is_stateless() {
            return self.request(method, params).await.map(Asked::Answer);
        }
        if let Some(answer) = self.session.input_response(method) {
            return Ok(Asked::Answer(answer.clone()));
        }
        match capability_of(method) {
            Some((bit, _)) if self.session.exchange().has_capability(bit) => {
                Ok(Asked::InputRequired(super::stateless::input_required(method, params)))
            }
            Some((_, name)) => Err(super::stateless::missing_capability(name, method)),
            None => Err(super::stateless::no_back_channel(method)),
        }
    }
}

/// What [`Peer::ask`] got.
pub enum Asked {
    /// The client's answer.
    Answer(Value),
    /// The result that asks for it instead (the stateless era's `input_required`).
    InputRequired(Value),
}

/// The capability a client declares to take `method` from the server (bit and name).
fn capability_of(method: &str) -> Option<(u8, &'static str)> {
    match method {
        "sampling/createMessage" => Some((SAMPLING, "sampling")),
        "elicitation/create" => Some((ELICITATION, "elicitation")),
        _ => None,
    }
}

/// The work of a streaming call, given its peer.
pub type StreamingRun = Box<dyn FnOnce(Peer) -> BoxFuture<Result<Value, ErrorObject>> + Send>;

/// Turns the call's outcome into its reply (counted, and through the fault modes).
pub type Finish = Box<dyn FnOnce(Result<Value, ErrorObject>) -> Response + Send>;

/// A request whose handling talks to the client before it replies.
pub struct Streaming {
    session: Arc<SessionState>,
    run: StreamingRun,
    finish: Finish,
}

impl Streaming {
    pub fn new(session: Arc<SessionState>, run: StreamingRun, finish: Finish) -> Streaming {
        Streaming { session, run, finish }
    }

    /// Runs the call in its own task. The receiver yields each message for the client
    /// (serialised), the final reply last, and then ends. Dropping it stops the call at
    /// its next message.
    pub fn start(self) -> mpsc::Receiver<Vec<u8>> {
        self.start_with(None)
    }

    /// [`Self::start`] on a transport that can end the client's stream mid-call and resume
    /// it later ([`Peer::close_stream`]).
    pub fn start_with(self, closer: Option<StreamCloser>) -> mpsc::Receiver<Vec<u8>> {
        let (tx, rx) = mpsc::channel(QUEUE);
        let Streaming { session, run, finish } = self;
        tokio::spawn(async move {
            let peer = Peer { session, tx: Some(tx.clone()), closer };
            let work = run(peer);
            let outcome = tokio::select! {
                outcome = work => outcome,
                // The transport dropped the receiver: nobody is left to answer.
                _ = tx.closed() => return,
            };
            let _ = tx.send(Message::Response(finish(outcome)).to_vec()).await;
        });
        rx
    }

    /// Runs the call with no way to the client: notifications are dropped, server
    /// requests fail at once; only the reply is produced.
    pub async fn reply_only(self) -> Response {
        let Streaming { session, run, finish } = self;
        let outcome = run(Peer::detached(session)).await;
        finish(outcome)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::{ServerConfig, ServerState};
    use futures_util::{SinkExt, StreamExt};
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, DuplexStream};
    use tokio_tungstenite::tungstenite::protocol::Role;
    use tokio_tungstenite::tungstenite::Message as WsMessage;
    use tokio_tungstenite::WebSocketStream;

    const WAIT: Duration = Duration::from_secs(5);

    fn initialize(capabilities: Value) -> String {
        json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-11-25",
            "capabilities": capabilities, "clientInfo": {"name": "t", "version": "1"}}})
        .to_string()
    }

    fn call(id: i64, tool: &str, arguments: Value) -> String {
        json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
            "params": {"name": tool, "arguments": arguments, "_meta": {"progressToken": "tok"}}})
        .to_string()
    }

    /// A client of a newline-delimited session (what tcp and stdio serve).
    struct Lines {
        read: tokio::io::Lines<BufReader<tokio::io::ReadHalf<DuplexStream>>>,
        write: tokio::io::WriteHalf<DuplexStream>,
    }

    impl Lines {
        fn start() -> Lines {
            let (client, server) = tokio::io::duplex(1 << 16);
            let (sr, sw) = tokio::io::split(server);
            let state = Arc::new(ServerState::new(ServerConfig::default()));
            tokio::spawn(crate::server::lines::serve_stream(state, sr, sw));
            let (cr, cw) = tokio::io::split(client);
            Lines { read: BufReader::new(cr).lines(), write: cw }
        }

        async fn send(&mut self, line: &str) {
            self.write.write_all(format!("{line}\n").as_bytes()).await.unwrap();
        }

        async fn recv(&mut self) -> Value {
            let line = tokio::time::timeout(WAIT, self.read.next_line()).await.unwrap().unwrap().unwrap();
            serde_json::from_str(&line).unwrap()
        }
    }

    #[test]
    fn routed_request_ids_name_their_worker() {
        let e = Exchange::default();
        let (tx, _one) = oneshot::channel();
        assert_eq!(e.wait_for_test(tx), 1, "a lone server's ids: 1, 2, 3…");
        e.route_to_workers(3, 1, "sid");
        let (tx, _two) = oneshot::channel();
        let id = e.wait_for_test(tx);
        assert_eq!(id, 2 * WORKER_SLOTS + 3);
        match e.resolve(Response::ok(Id::Num(5 * WORKER_SLOTS + 7), json!({}))) {
            Resolved::Elsewhere(f) => assert_eq!((f.worker, f.listener, &*f.session), (7, 1, "sid")),
            _ => panic!("worker 7's reply is handed over"),
        }
        assert!(matches!(e.resolve(Response::ok(Id::Num(id), json!({}))), Resolved::Here));
        assert!(matches!(e.resolve(Response::ok(Id::Num(id), json!({}))), Resolved::Unknown));
    }

    #[tokio::test]
    async fn sampling_over_a_line_connection_waits_for_the_clients_reply() {
        let mut c = Lines::start();
        c.send(&initialize(json!({"sampling": {}}))).await;
        assert_eq!(c.recv().await["result"]["capabilities"]["completions"], json!({}));
        c.send(&call(2, "test_sampling", json!({"prompt": "Say hi"}))).await;
        let request = c.recv().await;
        assert_eq!(request["method"], "sampling/createMessage");
        assert_eq!(request["params"]["messages"][0]["content"]["text"], "Say hi");
        let reply = json!({"jsonrpc": "2.0", "id": request["id"], "result": {"role": "assistant",
            "content": {"type": "text", "text": "hi there"}, "model": "m"}});
        c.send(&reply.to_string()).await;
        let done = c.recv().await;
        assert_eq!(done["id"], 2);
        assert_eq!(done["result"]["content"][0]["text"], "LLM response: hi there");
    }

    #[tokio::test]
    async fn a_client_without_the_capability_gets_an_error_not_a_request() {
        let mut c = Lines::start();
        c.send(&initialize(json!({}))).await;
        c.recv().await;
        c.send(&call(2, "test_elicitation", json!({"message": "who?"}))).await;
        let done = c.recv().await;
        assert_eq!(done["id"], 2, "no elicitation/create was sent: {done}");
        assert_eq!(done["error"]["code"], INVALID_REQUEST);
        assert!(done["error"]["message"].as_str().unwrap().contains("elicitation capability"));
    }

    #[tokio::test]
    async fn log_level_and_progress_notifications_precede_the_reply() {
        let mut c = Lines::start();
        c.send(&initialize(json!({}))).await;
        c.recv().await;
        let set =
            |level: &str| json!({"jsonrpc": "2.0", "id": 9, "method": "logging/setLevel", "params": {"level": level}});
        c.send(&set("loud").to_string()).await;
        assert_eq!(c.recv().await["error"]["code"], INVALID_PARAMS);
        c.send(&set("info").to_string()).await;
        assert_eq!(c.recv().await["result"], json!({}));
        c.send(&call(3, "test_tool_with_logging", json!({}))).await;
        for _ in 0..3 {
            let n = c.recv().await;
            assert_eq!(
                (n["method"].as_str(), n["params"]["level"].as_str()),
                (Some("notifications/message"), Some("info"))
            );
        }
        assert_eq!(c.recv().await["id"], 3);
        // Above the tool's level nothing is logged: the reply comes first.
        c.send(&set("error").to_string()).await;
        c.recv().await;
        c.send(&call(4, "test_tool_with_logging", json!({}))).await;
        assert_eq!(c.recv().await["id"], 4);
        c.send(&call(5, "test_tool_with_progress", json!({}))).await;
        let progress: Vec<Value> = [c.recv().await, c.recv().await, c.recv().await].into();
        assert!(progress
            .iter()
            .all(|p| p["method"] == "notifications/progress" && p["params"]["progressToken"] == "tok"));
        assert_eq!(
            progress.iter().map(|p| p["params"]["progress"].as_u64().unwrap()).collect::<Vec<_>>(),
            [0, 50, 100]
        );
        assert_eq!(c.recv().await["id"], 5);
    }

    #[tokio::test]
    async fn elicitation_and_subscriptions_over_websocket() {
        let (client, server) = tokio::io::duplex(1 << 16);
        let state = Arc::new(ServerState::new(ServerConfig::default()));
        tokio::spawn(crate::server::ws::serve_upgraded(server, state.clone()));
        let mut ws = WebSocketStream::from_raw_socket(client, Role::Client, None).await;
        let recv = async move |ws: &mut WebSocketStream<DuplexStream>| -> Value {
            loop {
                match tokio::time::timeout(WAIT, ws.next()).await.unwrap().unwrap().unwrap() {
                    WsMessage::Text(t) => return serde_json::from_str(t.as_str()).unwrap(),
                    _ => continue,
                }
            }
        };
        ws.send(WsMessage::text(initialize(json!({"elicitation": {}})))).await.unwrap();
        recv(&mut ws).await;
        ws.send(WsMessage::text(call(2, "test_elicitation", json!({"message": "Name?"})))).await.unwrap();
        let request = recv(&mut ws).await;
        assert_eq!(
            (request["method"].as_str(), request["params"]["message"].as_str()),
            (Some("elicitation/create"), Some("Name?"))
        );
        // A reply to an id the server never used is ignored; the real one completes the call.
        let answer = |id: &Value| json!({"jsonrpc": "2.0", "id": id, "result": {"action": "accept", "content": {"username": "ada"}}});
        ws.send(WsMessage::text(answer(&json!(999)).to_string())).await.unwrap();
        ws.send(WsMessage::text(answer(&request["id"]).to_string())).await.unwrap();
        let done = recv(&mut ws).await;
        assert_eq!(
            done["result"]["content"][0]["text"],
            "User response: action=accept, content={\"username\":\"ada\"}"
        );
        // Subscribed: changing the watched resource notifies before the reply.
        let sub = json!({"jsonrpc": "2.0", "id": 3, "method": "resources/subscribe", "params": {"uri": crate::server::fixtures::WATCHED}});
        ws.send(WsMessage::text(sub.to_string())).await.unwrap();
        assert_eq!(recv(&mut ws).await["result"], json!({}));
        ws.send(WsMessage::text(call(4, "test_touch_watched_resource", json!({})))).await.unwrap();
        let n = recv(&mut ws).await;
        assert_eq!(
            (n["method"].as_str(), n["params"]["uri"].as_str()),
            (Some("notifications/resources/updated"), Some(crate::server::fixtures::WATCHED))
        );
        assert_eq!(recv(&mut ws).await["id"], 4);
        let unsub = json!({"jsonrpc": "2.0", "id": 5, "method": "resources/unsubscribe", "params": {"uri": crate::server::fixtures::WATCHED}});
        ws.send(WsMessage::text(unsub.to_string())).await.unwrap();
        recv(&mut ws).await;
        ws.send(WsMessage::text(call(6, "test_touch_watched_resource", json!({})))).await.unwrap();
        assert_eq!(recv(&mut ws).await["id"], 6, "no notification once unsubscribed");
        assert_eq!(state.inflight(), 0);
    }
}
