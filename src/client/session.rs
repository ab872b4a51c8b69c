//! One MCP session: connects a transport, performs the `initialize` handshake (unless
//! opened with [`Session::connect_uninitialized`]), then makes requests with deadlines. A
//! request that misses its deadline is cancelled with `notifications/cancelled` and
//! reported as [`ClientError::Timeout`], never dropped. [`Session::send_raw`] sends text
//! exactly as given (bad input on purpose) and waits for what the server answers.
//!
//! Asked for the stateless revision (`protocol_version` 2026-07-28), a session negotiates
//! as the official SDKs do: `server/discover` first; a result listing the revision makes
//! a stateless session (no handshake: every request carries the envelope in
//! `params._meta`, see [`stateless`]); an `UNSUPPORTED_VERSION` error names what the server
//! speaks (one more probe at a mutual revision, else an error); any other error, an HTTP
//! 4xx or no answer within half the connect deadline means the server predates the
//! revision, and the session falls back to the `initialize` handshake at
//! [`mcp::LATEST_PROTOCOL_VERSION`]. A stateless result that asks for input first
//! (`input_required`) is answered as server requests are ([`Dispatcher::answer_input`])
//! and the request sent again, up to [`stateless::MAX_INPUT_ROUNDS`] times.

use super::transport::{self, RawSent, Transport};
use super::{ClientError, ClientOptions, Dispatcher, Target};
use crate::protocol::jsonrpc;
use crate::protocol::mcp::{self, methods, ServerInfo};
use crate::protocol::stateless;
use crate::protocol::{Id, Message};
use serde_json::{json, Map, Value};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub struct Session {
    /// Shared with the task that sends answers to server requests made later.
    transport: Arc<dyn Transport>,
    dispatch: Arc<Dispatcher>,
    next_id: AtomicI64,
    server: ServerInfo,
    /// The revision was negotiated (`initialize`, or `server/discover` when stateless).
    initialized: bool,
    /// In a stateless session, the envelope every request carries in `params._meta`.
    envelope: Option<Map<String, Value>>,
    opts: Arc<ClientOptions>,
    /// Raw messages go one at a time (the dispatcher has one raw waiter per session).
    raw: tokio::sync::Mutex<()>,
}

impl Session {
    /// Connects and initializes within `opts.connect_timeout`.
    pub async fn connect(target: &Target, opts: Arc<ClientOptions>) -> Result<Session, ClientError> {
        Self::connect_with(target, opts, true).await
    }

    /// Opens the transport without the `initialize` handshake, within
    /// `opts.connect_timeout`: requests go out before initialize, as a test of how the
    /// server treats them. Over Streamable HTTP there is no session id then (the server
    /// decides what to answer); [`Session::server`] holds only the offered revision. Asked
    /// for the stateless revision, the session is stateless without `server/discover`
    /// (requests carry the envelope straight away).
    pub async fn connect_uninitialized(target: &Target, opts: Arc<ClientOptions>) -> Result<Session, ClientError> {
        Self::connect_with(target, opts, false).await
    }

    /// [`Session::connect`] when `initialize`, else [`Session::connect_uninitialized`].
    pub async fn connect_with(
        target: &Target,
        opts: Arc<ClientOptions>,
        initialize: bool,
    ) -> Result<Session, ClientError> {
        let name = target.to_string();
        let deadline = opts.connect_timeout;
        match tokio::time::timeout(deadline, Self::connect_inner(target, opts, initialize)).await {
            Ok(r) => r,
            Err(_) => Err(ClientError::Connect {
                target: name,
                detail: format!(
                    "connect{} took longer than {}",
                    if initialize { " and initialize" } else { "" },
                    crate::util::human::duration(deadline)
                ),
            }),
        }
    }

    async fn connect_inner(
        target: &Target,
        opts: Arc<ClientOptions>,
        initialize: bool,
    ) -> Result<Session, ClientError> {
        let mut requests = opts.server_requests.clone();
        if requests.ask_timeout.is_zero() {
            requests.ask_timeout = opts.request_timeout;
        }
        let dispatch = Arc::new(Dispatcher::with_requests(target.to_string(), requests));
        let transport: Arc<dyn Transport> = Arc::from(transport::connect(target, dispatch.clone(), &opts).await?);
        if opts.server_requests.any() {
            forward_late_answers(&dispatch, Arc::downgrade(&transport));
        }
        let mut session = Session {
            transport,
            dispatch,
            next_id: AtomicI64::new(0),
            server: ServerInfo {
                protocol_version: opts.protocol_version.clone(),
                name: String::new(),
                version: String::new(),
                capabilities: Value::Null,
                instructions: None,
            },
            initialized: false,
            envelope: None,
            opts,
            raw: tokio::sync::Mutex::new(()),
        };
        let requested = session.opts.protocol_version.clone();
        if stateless::is_stateless(&requested) {
            if !initialize {
                session.go_stateless(&requested);
                return Ok(session);
            }
            if let Some(info) = session.discover().await? {
                session.server = info;
                session.initialized = true;
                return Ok(session);
            }
            session.handshake(target, mcp::LATEST_PROTOCOL_VERSION).await?;
        } else if initialize {
            session.handshake(target, &requested).await?;
        }
        Ok(session)
    }

    /// From now on every request carries the envelope of stateless revision `version`
    /// (and over HTTP the headers naming it).
    fn go_stateless(&mut self, version: &str) {
        let o = &self.opts;
        self.envelope =
            Some(stateless::envelope(version, &o.server_requests.capabilities(), &o.client_name, &o.client_version));
        self.server.protocol_version = version.to_string();
        self.transport.set_protocol_version(Some(version));
    }

    /// `server/discover`, as the official SDKs negotiate (see the module's doc):
    /// `Some` server info for a stateless session, `None` when the session is to fall back
    /// to the handshake (then the session is no longer stateless).
    async fn discover(&mut self) -> Result<Option<ServerInfo>, ClientError> {
        let wait = self.opts.request_timeout.min(self.opts.connect_timeout / 2);
        let mut version = self.opts.protocol_version.clone();
        let mut probes = 0;
        let why = loop {
            probes += 1;
            self.go_stateless(&version);
            let error = match self.request_timeout(stateless::DISCOVER, None, wait).await {
                Ok(result) => {
                    let offered = result
                        .get("supportedVersions")
                        .and_then(Value::as_array)
                        .map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect::<Vec<_>>());
                    match offered.as_deref().and_then(stateless::mutual) {
                        Some(v) => {
                            self.go_stateless(v);
                            return Ok(Some(ServerInfo::from_discover(&result, v)));
                        }
                        None => break format!("its result offers no stateless revision mcpscript speaks: {result}"),
                    }
                }
                Err(ClientError::Http { status, body, .. }) if (400..500).contains(&status) => {
                    break format!("HTTP {status} {body}")
                }
                Err(e @ ClientError::Timeout { .. }) => break e.to_string(),
                Err(e) => match e.rpc_error() {
                    Some(error) => error.clone(),
                    None => return Err(e),
                },
            };
            if error.code != stateless::codes::UNSUPPORTED_VERSION {
                break error.to_string();
            }
            let supported = stateless::supported_in(error.data.as_ref());
            match stateless::mutual(&supported) {
                Some(v) if probes == 1 && v != version => version = v.to_string(),
                // Refused at the revision it names: the server contradicts itself.
                Some(_) => break error.to_string(),
                None if supported.iter().any(|v| mcp::is_supported(v)) => break error.to_string(),
                None => {
                    return Err(ClientError::Protocol {
                        target: self.target().to_string(),
                        detail: format!(
                            "{}: the server speaks {} and mcpscript {} (no revision in common)",
                            stateless::DISCOVER,
                            if supported.is_empty() { "no revision it names".into() } else { supported.join(", ") },
                            stateless::VERSIONS.join(", ")
                        ),
                    })
                }
            }
        };
        tracing::debug!("{}: {} failed ({why}); falling back to initialize", self.target(), stateless::DISCOVER);
        self.envelope = None;
        self.transport.set_protocol_version(None);
        Ok(None)
    }

    /// The `initialize` handshake offering `version`, then `notifications/initialized` and
    /// (when asked) the GET stream.
    async fn handshake(&mut self, target: &Target, version: &str) -> Result<(), ClientError> {
        // Over HTTP, SSE and WebSocket the token travels as a bearer header only.
        let headers = matches!(target, Target::Http { .. } | Target::LegacySse { .. } | Target::Ws { .. });
        let params = mcp::initialize_params_with(
            version,
            &self.opts.client_name,
            &self.opts.client_version,
            self.opts.auth_token.as_deref().filter(|_| !headers),
            self.opts.server_requests.capabilities(),
        );
        let result = match self.request(methods::INITIALIZE, Some(params)).await {
            Ok(r) => r,
            Err(ClientError::Rpc { target, error, .. }) => {
                return Err(ClientError::Handshake { target, detail: error.to_string() })
            }
            Err(ClientError::HttpRpc { target, status, error }) => {
                return Err(ClientError::Handshake { target, detail: format!("HTTP {status} with {error}") })
            }
            Err(e) => return Err(e),
        };
        self.server = ServerInfo::from_result(&result)
            .map_err(|detail| ClientError::Handshake { target: self.dispatch.target().to_string(), detail })?;
        self.transport.set_protocol_version(Some(&self.server.protocol_version));
        self.notify(methods::INITIALIZED, None).await?;
        self.initialized = true;
        if self.opts.get_stream {
            self.transport.listen().await;
        }
        Ok(())
    }

    /// What the server said about itself in `initialize` or `server/discover` (empty but
    /// for the offered revision when the session was opened without them).
    pub fn server(&self) -> &ServerInfo {
        &self.server
    }

    /// Whether the session negotiated its revision: the `initialize` handshake, or
    /// `server/discover` for a stateless session.
    pub fn is_initialized(&self) -> bool {
        self.initialized
    }

    /// Whether the session speaks the stateless revision (no handshake, an envelope on
    /// every request).
    pub fn is_stateless(&self) -> bool {
        self.envelope.is_some()
    }

    pub fn target(&self) -> &str {
        self.dispatch.target()
    }

    /// The dispatcher's counters (unmatched replies, malformed frames, notifications).
    pub fn dispatcher(&self) -> &Dispatcher {
        &self.dispatch
    }

    /// A request with the session's default deadline. A JSON-RPC error reply becomes
    /// [`ClientError::Rpc`].
    pub async fn request(&self, method: &str, params: Option<Value>) -> Result<Value, ClientError> {
        self.request_timeout(method, params, self.opts.request_timeout).await
    }

    /// A request with its own deadline. In a stateless session it carries the envelope,
    /// and a result that asks for input is answered and the request sent again (each
    /// round with its own deadline).
    pub async fn request_timeout(
        &self,
        method: &str,
        params: Option<Value>,
        timeout: Duration,
    ) -> Result<Value, ClientError> {
        let Some(envelope) = &self.envelope else { return self.round_trip(method, params, timeout).await };
        let params = Some(stateless::stamp(params, envelope));
        let result = self.round_trip(method, params.clone(), timeout).await?;
        self.give_input(method, params, result, timeout).await
    }

    /// Answers the input a stateless `result` of request `method` (sent with `params`)
    /// asks for, and sends the request again (a new id, `inputResponses` and the
    /// `requestState` unchanged) until its result is complete, at most
    /// [`stateless::MAX_INPUT_ROUNDS`] times. A result with a `requestState` and no
    /// requests means "try again later": the waits grow from 50 ms to 250 ms, as the SDKs'.
    async fn give_input(
        &self,
        method: &str,
        params: Option<Value>,
        mut result: Value,
        timeout: Duration,
    ) -> Result<Value, ClientError> {
        let mut later = Duration::from_millis(50);
        for _ in 0..stateless::MAX_INPUT_ROUNDS {
            if !stateless::is_input_required(&result) {
                return Ok(result);
            }
            let asked = stateless::input_requests(&result);
            if asked.is_empty() {
                tokio::time::sleep(later).await;
                later = (later * 2).min(Duration::from_millis(250));
            }
            let mut answers = Map::new();
            for (key, asked_method, asked_params) in asked {
                let answer = self.dispatch.answer_input(&asked_method, asked_params).await.map_err(|e| {
                    ClientError::Protocol {
                        target: self.target().to_string(),
                        detail: format!(
                            "'{method}' needs input '{key}' ({asked_method}) this session cannot give: {e}"
                        ),
                    }
                })?;
                answers.insert(key, answer);
            }
            let again = stateless::retry_params(params.clone(), answers, &result);
            result = self.round_trip(method, Some(again), timeout).await?;
        }
        if stateless::is_input_required(&result) {
            return Err(ClientError::Protocol {
                target: self.target().to_string(),
                detail: format!("'{method}' still asks for input after {} rounds", stateless::MAX_INPUT_ROUNDS),
            });
        }
        Ok(result)
    }

    /// One request and its reply (or error), within `timeout`.
    async fn round_trip(&self, method: &str, params: Option<Value>, timeout: Duration) -> Result<Value, ClientError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        let rx = self.dispatch.register(id)?;
        let deadline = tokio::time::Instant::now() + timeout;
        // One timer serves both the send and the wait for the reply. HTTP transports read
        // the reply inside `send`, so the deadline covers it too; when it passes there, the
        // wait below still takes a reply already delivered (biased) or times out.
        let sleep = tokio::time::sleep_until(deadline);
        tokio::pin!(sleep);
        let send = self.transport.send(Message::request(Id::Num(id), method, params));
        let sent = tokio::select! {
            biased;
            r = send => Some(r),
            _ = &mut sleep => None,
        };
        if let Some(Err(e)) = sent {
            self.dispatch.forget(id);
            return Err(e);
        }
        let got = tokio::select! {
            biased;
            r = rx => Some(r),
            _ = &mut sleep => None,
        };
        self.conclude(id, method, timeout, got).await
    }

    /// Turns the outcome of waiting for request `id` into its result: `None` means the
    /// deadline passed, so the request is forgotten and cancelled.
    async fn conclude(
        &self,
        id: i64,
        method: &str,
        timeout: Duration,
        got: Option<Result<super::dispatch::Reply, tokio::sync::oneshot::error::RecvError>>,
    ) -> Result<Value, ClientError> {
        match got {
            Some(Ok(Ok(Ok(result)))) => Ok(result),
            Some(Ok(Ok(Err(error)))) => {
                Err(ClientError::Rpc { target: self.target().to_string(), method: method.to_string(), error })
            }
            Some(Ok(Err(e))) => Err(e),
            Some(Err(_)) => Err(ClientError::Closed {
                target: self.target().to_string(),
                detail: "before the reply arrived".into(),
            }),
            None => {
                self.dispatch.forget(id);
                self.cancel(id, timeout).await;
                Err(ClientError::Timeout {
                    target: self.target().to_string(),
                    method: method.to_string(),
                    after: timeout,
                    note: self.dispatch.violation_note(),
                })
            }
        }
    }

    /// Waits for request `id` until `deadline`; on timeout it is forgotten and cancelled.
    async fn await_reply(
        &self,
        id: i64,
        method: &str,
        rx: tokio::sync::oneshot::Receiver<super::dispatch::Reply>,
        deadline: tokio::time::Instant,
        timeout: Duration,
    ) -> Result<Value, ClientError> {
        self.conclude(id, method, timeout, tokio::time::timeout_at(deadline, rx).await.ok()).await
    }

    /// Several requests sent as one JSON-RPC batch, each with the default deadline; the
    /// results come back in the order of `calls`. In a stateless session each carries the
    /// envelope (the revision has no batches: the server decides what to answer), and
    /// input-required results are returned as they are.
    pub async fn batch(&self, calls: Vec<(String, Option<Value>)>) -> Vec<Result<Value, ClientError>> {
        let timeout = self.opts.request_timeout;
        let mut ids = Vec::with_capacity(calls.len());
        let mut msgs = Vec::with_capacity(calls.len());
        let mut waiters = Vec::with_capacity(calls.len());
        for (method, params) in calls {
            let id = self.next_id.fetch_add(1, Ordering::Relaxed) + 1;
            waiters.push((method.clone(), self.dispatch.register(id)));
            ids.push(id);
            let params = match &self.envelope {
                Some(envelope) => Some(stateless::stamp(params, envelope)),
                None => params,
            };
            msgs.push(Message::request(Id::Num(id), method, params));
        }
        let deadline = tokio::time::Instant::now() + timeout;
        if let Ok(Err(e)) = tokio::time::timeout_at(deadline, self.transport.send_batch(msgs)).await {
            ids.iter().for_each(|id| self.dispatch.forget(*id));
            return waiters.into_iter().map(|_| Err(e.clone())).collect();
        }
        let mut out = Vec::with_capacity(ids.len());
        for (id, (method, rx)) in ids.into_iter().zip(waiters) {
            let r = match rx {
                Err(e) => Err(e),
                Ok(rx) => self.await_reply(id, &method, rx, deadline, timeout).await,
            };
            out.push(r);
        }
        out
    }

    /// Sends `text` as one message exactly as given (see [`Transport::send_raw`] for the
    /// framing) and waits up to `timeout` for the reply that answers it: the reply with
    /// the id read from `text` ([`jsonrpc::scan_id`]), or else the next reply without an
    /// id (a server's -32700 or -32600 has `id: null`), which also answers it when its
    /// id was unreadable to the server. A JSON-RPC error reply is [`ClientError::Rpc`]; no
    /// reply gives [`ClientError::Timeout`] (at once over Streamable HTTP when the
    /// server's answer held none, e.g. a 202 for a notification); nothing is cancelled on
    /// the server. One raw message at a time per session; meanwhile, id-less replies are
    /// the raw message's, not a concurrent request's. A numeric id in `text` moves the
    /// session's own request ids past it, so a late reply cannot answer a later request.
    pub async fn send_raw(&self, text: Vec<u8>, timeout: Duration) -> Result<Value, ClientError> {
        let _one_at_a_time = self.raw.lock().await;
        let id = jsonrpc::scan_id(&text);
        if let Some(Id::Num(n)) = id {
            if (1..1 << 53).contains(&n) {
                self.next_id.fetch_max(n, Ordering::Relaxed);
            }
        }
        let method = raw_method(&text).unwrap_or_else(|| "raw message".into());
        let mut rx = self.dispatch.register_raw(id)?;
        let t0 = tokio::time::Instant::now();
        let deadline = t0 + timeout;
        let sleep = tokio::time::sleep_until(deadline);
        tokio::pin!(sleep);
        let sent = tokio::select! {
            biased;
            r = self.transport.send_raw(text) => Some(r),
            _ = &mut sleep => None,
        };
        let got = match sent {
            Some(Err(e)) => {
                self.dispatch.forget_raw();
                return Err(e);
            }
            // The exchange is over: the reply is here already, or none will come.
            Some(Ok(RawSent::Finished { answer })) => match rx.try_recv() {
                Ok(reply) => Some(Ok(reply)),
                Err(_) => {
                    self.dispatch.forget_raw();
                    return Err(ClientError::Timeout {
                        target: self.target().to_string(),
                        method,
                        after: t0.elapsed(),
                        note: format!(" (and none can come: {answer})"),
                    });
                }
            },
            Some(Ok(RawSent::Awaiting)) | None => tokio::select! {
                biased;
                r = &mut rx => Some(r),
                _ = &mut sleep => None,
            },
        };
        match got {
            Some(Ok(Ok(Ok(result)))) => Ok(result),
            Some(Ok(Ok(Err(error)))) => Err(ClientError::Rpc { target: self.target().to_string(), method, error }),
            Some(Ok(Err(e))) => Err(e),
            Some(Err(_)) => Err(ClientError::Closed {
                target: self.target().to_string(),
                detail: "before the reply arrived".into(),
            }),
            None => {
                self.dispatch.forget_raw();
                Err(ClientError::Timeout {
                    target: self.target().to_string(),
                    method,
                    after: timeout,
                    note: self.dispatch.violation_note(),
                })
            }
        }
    }

    /// The session's default request deadline.
    pub fn default_timeout(&self) -> Duration {
        self.opts.request_timeout
    }

    /// Tells the server to stop working on request `id` (best effort, bounded in time).
    async fn cancel(&self, id: i64, after: Duration) {
        let reason = format!("timed out after {}", crate::util::human::duration(after));
        let msg = Message::notification(methods::CANCELLED, Some(json!({"requestId": id, "reason": reason})));
        let _ = tokio::time::timeout(Duration::from_secs(1), self.transport.send(msg)).await;
    }

    /// Sends a notification.
    pub async fn notify(&self, method: &str, params: Option<Value>) -> Result<(), ClientError> {
        self.transport.send(Message::notification(method, params)).await
    }

    pub async fn ping(&self) -> Result<Value, ClientError> {
        self.request(methods::PING, None).await
    }

    pub async fn tools_list(&self) -> Result<Value, ClientError> {
        self.request(methods::TOOLS_LIST, None).await
    }

    pub async fn call_tool(&self, name: &str, arguments: Value) -> Result<Value, ClientError> {
        self.request(methods::TOOLS_CALL, Some(json!({"name": name, "arguments": arguments}))).await
    }

    pub async fn resources_list(&self) -> Result<Value, ClientError> {
        self.request(methods::RESOURCES_LIST, None).await
    }

    pub async fn read_resource(&self, uri: &str) -> Result<Value, ClientError> {
        self.request(methods::RESOURCES_READ, Some(json!({"uri": uri}))).await
    }

    pub async fn prompts_list(&self) -> Result<Value, ClientError> {
        self.request(methods::PROMPTS_LIST, None).await
    }

    pub async fn get_prompt(&self, name: &str, arguments: Value) -> Result<Value, ClientError> {
        self.request(methods::PROMPTS_GET, Some(json!({"name": name, "arguments": arguments}))).await
    }

    /// Ends the session (DELETE for HTTP unless stateless, close for sockets, ends a stdio
    /// child).
    pub async fn close(self) {
        self.transport.close().await;
    }

    /// `tools/call` with a `_meta.progressToken`, so the server may report progress
    /// (`notifications/progress` with that token). Returns the result and the token.
    pub async fn call_tool_with_progress(
        &self,
        name: &str,
        arguments: Value,
        timeout: Duration,
    ) -> (Result<Value, ClientError>, String) {
        let token = format!("mcpscript-progress-{}", self.next_id.load(Ordering::Relaxed) + 1);
        let params = json!({"name": name, "arguments": arguments, "_meta": {"progressToken": token}});
        (self.request_timeout(methods::TOOLS_CALL, Some(params), timeout).await, token)
    }
}

/// Sends the answers the dispatcher makes later (script callbacks) on the transport, each
/// as soon as it is ready; ends when the dispatcher closes or the transport is gone.
fn forward_late_answers(dispatch: &Dispatcher, transport: std::sync::Weak<dyn Transport>) {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Message>();
    dispatch.set_outbox(tx);
    tokio::spawn(async move {
        while let Some(msg) = rx.recv().await {
            let Some(t) = transport.upgrade() else { break };
            // Each answer in its own task: a slow POST must not hold back the next one.
            tokio::spawn(async move {
                if let Err(e) = t.send(msg).await {
                    tracing::debug!("cannot send an answer to a server request: {e}");
                }
            });
        }
    });
}

/// The `method` of a raw message, when it is a JSON object that has a string one.
pub fn raw_method(text: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Method {
        method: String,
    }
    serde_json::from_slice::<Method>(text).ok().map(|m| m.method)
}
