//! The MCP request handler shared by every server transport. A transport hands it one
//! inbound frame and gets back an [`Outcome`]: a reply ready now (the fast path: no task,
//! no allocation beyond the reply), or a future for replies that wait (the `sleep` tool,
//! injected latency). Lifecycle, load shedding, latency and error injection and the fault
//! modes ([`super::Faults`]) are enforced here, so every transport behaves the same. Every
//! JSON-RPC error the server writes, the transports' own included, goes out through
//! [`ServerState::outgoing`]. Calls that talk to the client while they run (the conformance
//! fixtures) come out as [`Outcome::Stream`]; the client's replies to the server's own
//! requests are matched here ([`super::peer::Exchange::resolve`]).

use super::catalog::{self, ToolResult};
use super::config::DEFAULT_COLLAPSE_THRESHOLD;
use super::peer::{Exchange, Streaming};
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
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
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

/// One client session's protocol state (a tcp/ws/stdio connection, or an HTTP session id).
#[derive(Default)]
pub struct SessionState {
    initialized: AtomicBool,
    version: OnceLock<&'static str>,
    /// The transport already authenticated this client (HTTP bearer token).
    pre_authorized: bool,
    /// Server-to-client requests waiting for replies, log level, subscriptions.
    exchange: Exchange,
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
        ServerState { config, stats: Stats::default(), inflight: AtomicUsize::new(0), leaked: Mutex::new(Vec::new()) }
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
            Ok(Payload::Single(Ok(msg))) => match self.handle_message(session, msg) {
                Step::None => Outcome::Ready(None),
                Step::Now(r) => Outcome::Ready(Some(Message::Response(r).to_vec())),
                Step::Later(f) => Outcome::Pending(Box::pin(async move { Some(Message::Response(f.await).to_vec()) })),
                Step::Stream(s) => Outcome::Stream(s),
            },
            Ok(Payload::Batch(items)) => self.handle_batch(session, items),
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
            // The client's reply to one of the server's requests (sampling, elicitation).
            Message::Response(reply) => {
                if !session.exchange.resolve(reply) {
                    tracing::debug!("a reply that answers no request of this server's is ignored");
                }
                Step::None
            }
        }
    }

    fn handle_request(self: &Arc<Self>, session: &Arc<SessionState>, req: Request) -> Step {
        let id = req.id.clone();
        let reply = |outcome: Result<Value, ErrorObject>| self.reply(id.clone(), outcome);
        if req.method == methods::INITIALIZE {
            return Step::Now(reply(self.initialize(session, req.params.as_ref())));
        }
        if let Some(bytes) = self.config.faults.leak {
            self.leak(bytes);
        }
        if session.version.get().is_none() && req.method != methods::PING {
            return Step::Now(reply(Err(ErrorObject::new(
                INVALID_REQUEST,
                format!("session not initialized: send initialize before '{}'", req.method),
            ))));
        }
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
                    return Step::Stream(self.streaming(session, req.id, run, self.injected_delay(inflight)));
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
            "capabilities": {"tools": {"listChanged": false}, "resources": {"subscribe": true, "listChanged": false},
                "prompts": {"listChanged": false}, "logging": {}, "completions": {}},
            "serverInfo": {"name": "mcpscript", "title": "mcpscript reference server", "version": env!("CARGO_PKG_VERSION")},
            "instructions": "mcpscript's reference server: tools echo, add, sleep, fail, payload, stats, and the fixtures of the MCP conformance suite (test_*)."
        }))
    }

    fn dispatch(&self, session: &SessionState, req: &Request) -> ToolResult {
        let params = req.params.as_ref();
        let done = ToolResult::Done;
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
