//! The MCP request handler shared by every server transport. A transport hands it one
//! inbound frame and gets back an [`Outcome`]: a reply ready now (the fast path: no task,
//! no allocation beyond the reply), or a future for replies that wait (the `sleep` tool,
//! injected latency). Lifecycle, load shedding, latency and error injection and the fault
//! modes ([`super::Faults`]) are enforced here, so every transport behaves the same. Every
//! JSON-RPC error the server writes, the transports' own included, goes out through
//! [`ServerState::outgoing`]. Calls that talk to the client while they run (the conformance
//! fixtures) come out as [`Outcome::Stream`]; the client's replies to the server's own
//! requests are matched here ([`super::peer::Exchange::resolve`]).
//!
//! Both eras are served: the `initialize` handshake (a session's state lives as long as
//! the session), and the stateless revision (2026-07-28, [`super::stateless`]), where
//! every request carries its envelope and is handled with a state of its own
//! ([`SessionState::for_request`]), so it needs no `initialize` first. A connection's era
//! is opened by its first request; over Streamable HTTP each request's header picks it
//! ([`ServerState::handle_stateless`]).

use super::catalog::{self, ToolResult};
use super::config::DEFAULT_COLLAPSE_THRESHOLD;
use super::peer::{Exchange, Resolved, Streaming};
use super::stateless::{self, Envelope, Headers, Shape};
use super::stats::Stats;
use super::ServerConfig;
use crate::protocol::jsonrpc::{
    self, ErrorObject, Message, Payload, Response, INTERNAL_ERROR, INVALID_REQUEST, METHOD_NOT_FOUND,
};
use crate::protocol::mcp::{self, codes, methods};
use crate::protocol::Request;
use serde_json::{json, Value};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// Under `collapse`, what each request in flight adds to a new request's reply time once
/// more than the threshold are in flight.
pub const COLLAPSE_COST_PER_INFLIGHT: Duration = Duration::from_millis(5);

/// What a transport does with one inbound frame.
pub enum Outcome {
    /// The serialised reply (`None`: nothing to send, e.g. only notifications).
    Ready(Option<Vec<u8>>),
    /// The reply comes later; the transport awaits it without blocking other requests.
    Pending(BoxFuture<Option<Vec<u8>>>),
    /// Messages for the client, then the reply: the transport starts the call
    /// ([`Streaming::start`]) and forwards what it sends, or, when it has no way to send
    /// anything but the reply, awaits [`Streaming::reply_only`].
    Stream(Streaming),
}

/// The name in `serverInfo` (and in the stateless era's result stamp).
pub const SERVER_NAME: &str = "mcpscript";

const INSTRUCTIONS: &str = "mcpscript's reference server: tools echo, add, sleep, fail, payload, stats, and the fixtures of the MCP conformance suite (test_*).";

/// Values of [`SessionState::era`].
const UNDECIDED: u8 = 0;
const HANDSHAKE: u8 = 1;
const STATELESS: u8 = 2;

/// One client session's protocol state (a tcp/ws/stdio connection, or an HTTP session id),
/// or the state of one stateless request ([`SessionState::for_request`]).
#[derive(Default)]
pub struct SessionState {
    initialized: AtomicBool,
    version: OnceLock<&'static str>,
    /// The transport already authenticated this client (HTTP bearer token).
    pre_authorized: bool,
    /// Server-to-client requests waiting for replies, log level, subscriptions.
    exchange: Exchange,
    /// [`UNDECIDED`] until the first request opens an era ([`HANDSHAKE`] or
    /// [`STATELESS`]); a stateless request's own state is [`STATELESS`] from the start.
    era: AtomicU8,
    /// A stateless request's answers to the server's questions ([`Envelope::input_responses`]).
    input_responses: Option<serde_json::Map<String, Value>>,
}

impl SessionState {
    pub fn new(pre_authorized: bool) -> Self {
        SessionState { pre_authorized, ..Default::default() }
    }

    /// A session initialized by a sibling worker process (HTTP session ids are signed, so
    /// any worker can take over a session whose connection landed on it).
    pub fn adopted(version: &'static str, pre_authorized: bool) -> Self {
        let s = SessionState { pre_authorized, ..Default::default() };
        let _ = s.version.set(version);
        s.initialized.store(true, Ordering::Release);
        s.exchange.assume_every_capability();
        s
    }

    /// The state one stateless request is handled with, built from its envelope (the
    /// client's capabilities and log opt-in, its answers): initialized at the stateless
    /// revision, and gone with the request.
    pub fn for_request(envelope: Envelope, pre_authorized: bool) -> Self {
        let s = SessionState {
            pre_authorized,
            era: AtomicU8::new(STATELESS),
            input_responses: envelope.input_responses,
            ..Default::default()
        };
        let _ = s.version.set(crate::protocol::stateless::VERSION);
        s.initialized.store(true, Ordering::Release);
        s.exchange.declare(Some(&envelope.capabilities));
        s.exchange.set_log_opt_in(envelope.log_level.as_deref());
        s
    }

    /// The client's answer, brought by this stateless request, to the question under `key`.
    pub fn input_response(&self, key: &str) -> Option<&Value> {
        self.input_responses.as_ref()?.get(key)
    }

    /// Whether this serves the stateless revision (a connection it opened, or one
    /// stateless request's own state).
    pub fn is_stateless(&self) -> bool {
        self.era.load(Ordering::Acquire) == STATELESS
    }

    /// Whether `req` belongs to the stateless era here: the session's first request opens
    /// its era ([`stateless::opens_stateless`]), for good.
    fn stateless_for(&self, req: &Request) -> bool {
        let era = match self.era.load(Ordering::Acquire) {
            UNDECIDED => {
                let opened = if stateless::opens_stateless(req) { STATELESS } else { HANDSHAKE };
                match self.era.compare_exchange(UNDECIDED, opened, Ordering::AcqRel, Ordering::Acquire) {
                    Ok(_) => opened,
                    Err(era) => era,
                }
            }
            era => era,
        };
        era == STATELESS
    }

    /// The session's side of server-to-client traffic.
    pub fn exchange(&self) -> &Exchange {
        &self.exchange
    }

    pub fn is_initialized(&self) -> bool {
        self.initialized.load(Ordering::Acquire)
    }

    /// The negotiated revision, once initialized.
    pub fn protocol_version(&self) -> Option<&'static str> {
        self.version.get().copied()
    }
}

/// Server-wide state: configuration, counters, the in-flight gauge.
pub struct ServerState {
    pub config: ServerConfig,
    pub stats: Stats,
    /// The sibling worker processes of `serve --workers N` (`None` for a lone server).
    pub siblings: Option<Arc<super::siblings::Siblings>>,
    inflight: AtomicUsize,
    /// What the `leak` fault retained: never freed while the server lives.
    leaked: Mutex<Vec<Vec<u8>>>,
}

/// Decrements the in-flight gauge when a request's reply is produced.
struct InflightGuard<'a>(&'a AtomicUsize);

impl Drop for InflightGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

enum Step {
    None,
    Now(Response),
    Later(BoxFuture<Response>),
    Stream(Streaming),
}

/// The in-flight slot of a streaming call, released when the call ends or is dropped.
struct OwnedInflight(Arc<ServerState>);

impl Drop for OwnedInflight {
    fn drop(&mut self) {
        self.0.inflight.fetch_sub(1, Ordering::Relaxed);
    }
}

impl ServerState {
    pub fn new(config: ServerConfig) -> Self {
        ServerState {
            siblings: super::siblings::Siblings::new(&config).map(Arc::new),
            config,
            stats: Stats::default(),
            inflight: AtomicUsize::new(0),
            leaked: Mutex::new(Vec::new()),
        }
    }

    /// Requests being worked on right now.
    pub fn inflight(&self) -> usize {
        self.inflight.load(Ordering::Relaxed)
    }

    /// Whether a new request would be shed (HTTP answers 503 before reading the body).
    /// Never under the `collapse` fault: everything is admitted and slowed down instead.
    pub fn overloaded(&self) -> bool {
        !self.config.faults.collapse && self.config.max_inflight.is_some_and(|max| self.inflight() >= max)
    }

    /// Whether a new connection (or HTTP session) must be refused.
    pub fn at_connection_limit(&self) -> bool {
        self.config
            .max_connections
            .is_some_and(|max| self.stats.connections_open.load(Ordering::Relaxed) as usize >= max)
    }

    /// The -32000 reply of load shedding.
    pub fn overloaded_error(what: &str) -> ErrorObject {
        ErrorObject::new(codes::OVERLOADED, format!("overloaded: {what}")).with_data(json!({"retryAfterMs": 100}))
    }

    /// A reply as this server sends it: the one place the `wrong_error_codes` fault acts,
    /// turning every error's code into -32603. Every error reply passes through here: the
    /// handler's own, and the transports' ([`Self::encode`]).
    pub fn outgoing(&self, mut reply: Response) -> Response {
        if let Err(e) = &mut reply.outcome {
            if self.config.faults.wrong_error_codes {
                e.code = INTERNAL_ERROR;
            }
        }
        reply
    }

    /// A reply serialised as this server sends it (through [`Self::outgoing`]).
    pub fn encode(&self, reply: Response) -> Vec<u8> {
        Message::Response(self.outgoing(reply)).to_vec()
    }

    /// The `leak` fault: `bytes` more, really allocated and written, retained for good.
    fn leak(&self, bytes: u64) {
        let block = vec![0xA5u8; bytes as usize];
        crate::util::lock(&self.leaked).push(block);
    }

    /// The `jitter` fault: for `jitter_fraction` of the replies, a delay drawn uniformly
    /// from (0, jitter]; zero for the others.
    fn jitter(&self) -> Duration {
        let f = &self.config.faults;
        match f.jitter {
            Some(max) if f.jitter_fraction > 0.0 && rand::random::<f64>() < f.jitter_fraction => {
                // random() is in [0, 1), so 1 - random() is in (0, 1].
                max.mul_f64(1.0 - rand::random::<f64>())
            }
            _ => Duration::ZERO,
        }
    }

    /// The `collapse` fault: with `inflight` requests in flight (this one included) above
    /// the threshold (`max_inflight`, else [`DEFAULT_COLLAPSE_THRESHOLD`]), the reply
    /// waits `inflight` times [`COLLAPSE_COST_PER_INFLIGHT`].
    fn collapse_delay(&self, inflight: usize) -> Duration {
        let threshold = self.config.max_inflight.unwrap_or(DEFAULT_COLLAPSE_THRESHOLD);
        if !self.config.faults.collapse || inflight <= threshold {
            return Duration::ZERO;
        }
        COLLAPSE_COST_PER_INFLIGHT.saturating_mul(u32::try_from(inflight).unwrap_or(u32::MAX))
    }

    /// Handles one frame: a message or a batch.
    pub fn handle_frame(self: &Arc<Self>, session: &Arc<SessionState>, frame: &[u8]) -> Outcome {
        match jsonrpc::parse(frame) {
            Err(e) => {
                Stats::inc(&self.stats.parse_errors);
                Outcome::Ready(Some(self.encode(e.to_response())))
            }
            Ok(Payload::Single(Err(invalid))) => {
                Stats::inc(&self.stats.invalid_requests);
                Outcome::Ready(Some(self.encode(invalid.to_response())))
            }
            Ok(Payload::Single(Ok(msg))) => Self::outcome(self.handle_message(session, msg)),
            Ok(Payload::Batch(items)) => self.handle_batch(session, items),
        }
    }

    /// One request of the stateless revision over Streamable HTTP: the transport parsed
    /// the body (one request) and gives its routing headers, which the ladder compares
    /// with it ([`stateless::classify`]). Nothing of it outlives the request. The bearer
    /// token, if one is required, was checked before.
    pub fn handle_stateless(self: &Arc<Self>, req: Request, headers: &Headers) -> Outcome {
        Stats::inc(&self.stats.requests);
        Self::outcome(self.stateless_request(true, req, Some(headers)))
    }

    fn outcome(step: Step) -> Outcome {
        match step {
            Step::None => Outcome::Ready(None),
            Step::Now(r) => Outcome::Ready(Some(Message::Response(r).to_vec())),
            Step::Later(f) => Outcome::Pending(Box::pin(async move { Some(Message::Response(f.await).to_vec()) })),
            Step::Stream(s) => Outcome::Stream(s),
        }
    }

    fn handle_batch(
        self: &Arc<Self>,
        session: &Arc<SessionState>,
        items: Vec<Result<Message, jsonrpc::Invalid>>,
    ) -> Outcome {
        let steps: Vec<Step> = items
            .into_iter()
            .map(|item| match item {
                Ok(msg) => self.handle_message(session, msg),
                Err(invalid) => {
                    Stats::inc(&self.stats.invalid_requests);
                    Step::Now(self.outgoing(invalid.to_response()))
                }
            })
            .collect();
        let encode = |replies: Vec<Response>| {
            (!replies.is_empty())
                .then(|| jsonrpc::batch_to_vec(&replies.into_iter().map(Message::Response).collect::<Vec<_>>()))
        };
        if steps.iter().all(|s| matches!(s, Step::None | Step::Now(_))) {
            let replies = steps.into_iter().filter_map(|s| if let Step::Now(r) = s { Some(r) } else { None }).collect();
            return Outcome::Ready(encode(replies));
        }
        Outcome::Pending(Box::pin(async move {
            let mut replies = Vec::new();
            for s in steps {
                match s {
                    Step::None => {}
                    Step::Now(r) => replies.push(r),
                    Step::Later(f) => replies.push(f.await),
                    // A batch's reply is one array: nothing can reach the client before it.
                    Step::Stream(s) => replies.push(s.reply_only().await),
                }
            }
            encode(replies)
        }))
    }

    fn handle_message(self: &Arc<Self>, session: &Arc<SessionState>, msg: Message) -> Step {
        match msg {
            Message::Request(req) => {
                Stats::inc(&self.stats.requests);
                self.handle_request(session, req)
            }
            Message::Notification(n) => {
                Stats::inc(&self.stats.notifications);
                if n.method == methods::INITIALIZED && session.version.get().is_some() {
                    session.initialized.store(true, Ordering::Release);
                }
                Step::None
            }
            // The client's reply to one of the server's requests (sampling, elicitation);
            // with worker processes, possibly to a sibling's request.
            Message::Response(reply) => {
                match session.exchange.resolve(reply) {
                    Resolved::Here => {}
                    Resolved::Unknown => tracing::debug!("a reply that answers no request of this server's is ignored"),
                    Resolved::Elsewhere(forward) => match &self.siblings {
                        Some(siblings) => {
                            Stats::inc(&self.stats.replies_forwarded);
                            siblings.forward(forward);
                        }
                        None => tracing::debug!("a reply for another worker process, but there are none: ignored"),
                    },
                }
                Step::None
            }
        }
    }

    fn handle_request(self: &Arc<Self>, session: &Arc<SessionState>, req: Request) -> Step {
        if session.stateless_for(&req) {
            return self.stateless_request(session.pre_authorized, req, None);
        }
        let refuse = |e: ErrorObject| Step::Now(self.reply(req.id.clone(), Err(e)));
        if req.method == methods::INITIALIZE {
            return Step::Now(self.reply(req.id.clone(), self.initialize(session, req.params.as_ref())));
        }
        self.leak_fault();
        if stateless::carries_envelope(req.params.as_ref()) {
            return refuse(stateless::envelope_refused());
        }
        if session.version.get().is_none() && req.method != methods::PING {
            return refuse(ErrorObject::new(
                INVALID_REQUEST,
                format!("session not initialized: send initialize before '{}'", req.method),
            ));
        }
        self.serve(session, req, None)
    }

    /// A request in the stateless era: `initialize` is refused on a connection
    /// (`headers` is `None`; over HTTP it is a removed method), then the ladder, then the
    /// request is served with a state built from its envelope. A required auth token
    /// travels in `initialize` on tcp, stdio and ws (without an `Authorization` header),
    /// so there a stateless request cannot bring it and is refused.
    fn stateless_request(self: &Arc<Self>, pre_authorized: bool, req: Request, headers: Option<&Headers>) -> Step {
        let refuse = |e: ErrorObject| Step::Now(self.reply(req.id.clone(), Err(e)));
        if headers.is_none() && req.method == methods::INITIALIZE {
            return refuse(stateless::initialize_refused(req.params.as_ref()));
        }
        self.leak_fault();
        let envelope = match stateless::classify(&req, headers) {
            Ok(envelope) => envelope,
            Err(e) => return refuse(e),
        };
        if self.config.auth_token.is_some() && !pre_authorized {
            return refuse(ErrorObject::new(
                codes::UNAUTHORIZED,
                "unauthorized: this server needs its auth token, which travels in initialize here; \
                 send stateless requests over HTTP with Authorization: Bearer <token>",
            ));
        }
        let session = Arc::new(SessionState::for_request(envelope, pre_authorized));
        let shape = Shape::of(&req.method);
        self.serve(&session, req, Some(shape))
    }

    /// The `leak` fault: every request but `initialize` retains its share.
    fn leak_fault(&self) {
        if let Some(bytes) = self.config.faults.leak {
            self.leak(bytes);
        }
    }

    /// Serves an admitted request (either era): load shedding, the in-flight gauge,
    /// injected errors and delays, dispatch. `shape`: a stateless request's, whose
    /// outcome goes out through [`stateless::finish`].
    fn serve(self: &Arc<Self>, session: &Arc<SessionState>, req: Request, shape: Option<Shape>) -> Step {
        let id = req.id.clone();
        let reply = |outcome: Result<Value, ErrorObject>| self.reply(id.clone(), self.finish(shape, outcome));
        if self.overloaded() {
            Stats::inc(&self.stats.shed);
            return Step::Now(reply(Err(Self::overloaded_error("too many requests in flight"))));
        }
        let inflight = self.inflight.fetch_add(1, Ordering::Relaxed) + 1;
        let guard = InflightGuard(&self.inflight);
        let (mut delay, outcome) = if self.config.error_rate > 0.0 && rand::random::<f64>() < self.config.error_rate {
            Stats::inc(&self.stats.injected_errors);
            (Duration::ZERO, Err(ErrorObject::new(INTERNAL_ERROR, "injected error (--error-rate)")))
        } else {
            match self.dispatch(session, &req) {
                ToolResult::Done(outcome) => (Duration::ZERO, outcome),
                ToolResult::After(d, outcome) => (d, outcome),
                ToolResult::Stream(run) => {
                    std::mem::forget(guard);
                    return Step::Stream(self.streaming(session, req.id, run, self.injected_delay(inflight), shape));
                }
            }
        };
        delay += self.injected_delay(inflight);
        let response = reply(outcome);
        if delay.is_zero() {
            drop(guard);
            return Step::Now(response);
        }
        std::mem::forget(guard);
        let state = self.clone();
        Step::Later(Box::pin(async move {
            let _guard = InflightGuard(&state.inflight);
            tokio::time::sleep(delay).await;
            response
        }))
    }

    /// A reply, counted by outcome, as this server sends it ([`Self::outgoing`]).
    fn reply(&self, id: crate::protocol::Id, outcome: Result<Value, ErrorObject>) -> Response {
        let stat = if outcome.is_ok() { &self.stats.responses_ok } else { &self.stats.responses_error };
        Stats::inc(stat);
        self.outgoing(Response { id: Some(id), outcome })
    }

    /// A stateless request's outcome stamped as that era wants ([`stateless::finish`]);
    /// a handshake-era one as it is.
    fn finish(&self, shape: Option<Shape>, outcome: Result<Value, ErrorObject>) -> Result<Value, ErrorObject> {
        match shape {
            Some(shape) => {
                stateless::finish(shape, json!({"name": SERVER_NAME, "version": env!("CARGO_PKG_VERSION")}), outcome)
            }
            None => outcome,
        }
    }

    /// What `latency`, `jitter` and `collapse` add to a reply.
    fn injected_delay(&self, inflight: usize) -> Duration {
        self.config.latency.unwrap_or_default() + self.jitter() + self.collapse_delay(inflight)
    }

    /// A streaming call: holds its in-flight slot (already taken) until it ends; the
    /// injected delay comes before its work.
    fn streaming(
        self: &Arc<Self>,
        session: &Arc<SessionState>,
        id: crate::protocol::Id,
        run: super::peer::StreamingRun,
        delay: Duration,
        shape: Option<Shape>,
    ) -> Streaming {
        let slot = OwnedInflight(self.clone());
        let run: super::peer::StreamingRun = if delay.is_zero() {
            run
        } else {
            Box::new(move |peer| {
                Box::pin(async move {
                    tokio::time::sleep(delay).await;
                    run(peer).await
                })
            })
        };
        let finish = Box::new(move |outcome| {
            let state = slot.0.clone();
            drop(slot);
            let outcome = state.finish(shape, outcome);
            state.reply(id, outcome)
        });
        Streaming::new(session.clone(), run, finish)
    }

    fn initialize(&self, session: &SessionState, params: Option<&Value>) -> Result<Value, ErrorObject> {
        if session.version.get().is_some() {
            return Err(ErrorObject::new(INVALID_REQUEST, "session already initialized"));
        }
        let params = params.ok_or_else(|| ErrorObject::new(jsonrpc::INVALID_PARAMS, "initialize needs params"))?;
        let requested = params.get("protocolVersion").and_then(Value::as_str).ok_or_else(|| {
            ErrorObject::new(jsonrpc::INVALID_PARAMS, "initialize params need a protocolVersion string")
        })?;
        if let Some(token) = &self.config.auth_token {
            if !session.pre_authorized && params.get("authToken").and_then(Value::as_str) != Some(token.as_str()) {
                return Err(ErrorObject::new(
                    codes::UNAUTHORIZED,
                    "unauthorized: initialize params need the server's authToken",
                ));
            }
        }
        let version = mcp::negotiate(requested);
        let _ = session.version.set(version);
        session.exchange.set_client_capabilities(params);
        Stats::inc(&self.stats.sessions_initialized);
        Ok(json!({
            "protocolVersion": version,
            "capabilities": capabilities(false),
            "serverInfo": {"name": SERVER_NAME, "title": "mcpscript reference server", "version": env!("CARGO_PKG_VERSION")},
            "instructions": INSTRUCTIONS
        }))
    }

    fn dispatch(&self, session: &SessionState, req: &Request) -> ToolResult {
        let params = req.params.as_ref();
        let done = ToolResult::Done;
        if session.is_stateless() {
            if req.method == crate::protocol::stateless::DISCOVER {
                return done(Ok(stateless::discover(capabilities(true), INSTRUCTIONS)));
            }
            if let Some(e) = stateless::removed(&req.method) {
                return done(Err(e));
            }
        }
        match req.method.as_str() {
            methods::PING => done(Ok(json!({}))),
            methods::TOOLS_LIST => done(Ok(catalog::tools_list())),
            methods::TOOLS_CALL => catalog::call_tool(params, || self.stats.snapshot()),
            methods::RESOURCES_LIST => done(Ok(catalog::resources_list())),
            methods::RESOURCE_TEMPLATES_LIST => done(Ok(catalog::resource_templates_list())),
            methods::RESOURCES_READ => done(catalog::read_resource(params, || self.stats.snapshot())),
            methods::PROMPTS_LIST => done(Ok(catalog::prompts_list())),
            methods::PROMPTS_GET => done(catalog::get_prompt(params)),
            methods::LOGGING_SET_LEVEL => done(session.exchange.set_log_level(params)),
            "resources/subscribe" => done(session.exchange.subscribe(params, true)),
            "resources/unsubscribe" => done(session.exchange.subscribe(params, false)),
            "completion/complete" => done(super::fixtures::complete(params)),
            other => done(Err(ErrorObject::new(METHOD_NOT_FOUND, format!("Method not found: {other}")))),
        }
    }
}

/// What the server offers: the same in both eras, except resource subscriptions, which
/// the stateless era has no method for (`resources/subscribe` is gone; mcpscript does not
/// serve `subscriptions/listen`).
fn capabilities(stateless: bool) -> Value {
    json!({"tools": {"listChanged": false}, "resources": {"subscribe": !stateless, "listChanged": false},
        "prompts": {"listChanged": false}, "logging": {}, "completions": {}})
}
