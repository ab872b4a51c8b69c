//! One MCP session: connects a transport, performs the `initialize` handshake, then makes
//! requests with deadlines. A request that misses its deadline is cancelled with
//! `notifications/cancelled` and reported as [`ClientError::Timeout`], never dropped.

use super::transport::{self, Transport};
use super::{ClientError, ClientOptions, Dispatcher, Target};
use crate::protocol::mcp::{self, methods, ServerInfo};
use crate::protocol::{Id, Message};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub struct Session {
    transport: Box<dyn Transport>,
    dispatch: Arc<Dispatcher>,
    next_id: AtomicI64,
    server: ServerInfo,
    opts: Arc<ClientOptions>,
}

impl Session {
    /// Connects and initializes within `opts.connect_timeout`.
    pub async fn connect(target: &Target, opts: Arc<ClientOptions>) -> Result<Session, ClientError> {
        let name = target.to_string();
        let deadline = opts.connect_timeout;
        match tokio::time::timeout(deadline, Self::connect_inner(target, opts)).await {
            Ok(r) => r,
            Err(_) => Err(ClientError::Connect {
                target: name,
                detail: format!(
                    "connect and initialize took longer than {}",
                    crate::util::duration::format_duration(deadline)
                ),
            }),
        }
    }

    async fn connect_inner(target: &Target, opts: Arc<ClientOptions>) -> Result<Session, ClientError> {
        let dispatch = Arc::new(Dispatcher::new(target.to_string()));
        let transport = transport::connect(target, dispatch.clone(), &opts).await?;
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
            opts,
        };
        let params = mcp::initialize_params(
            &session.opts.protocol_version,
            &session.opts.client_name,
            &session.opts.client_version,
            session.opts.auth_token.as_deref(),
        );
        let result = match session.request(methods::INITIALIZE, Some(params)).await {
            Ok(r) => r,
            Err(ClientError::Rpc { target, error, .. }) => {
                return Err(ClientError::Handshake { target, detail: error.to_string() })
            }
            Err(e) => return Err(e),
        };
        session.server = ServerInfo::from_result(&result)
            .map_err(|detail| ClientError::Handshake { target: session.dispatch.target().to_string(), detail })?;
        session.transport.set_protocol_version(&session.server.protocol_version);
        session.notify(methods::INITIALIZED, None).await?;
        Ok(session)
    }

    /// What the server said about itself in `initialize`.
    pub fn server(&self) -> &ServerInfo {
        &self.server
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

    /// A request with its own deadline.
    pub async fn request_timeout(
        &self,
        method: &str,
        params: Option<Value>,
        timeout: Duration,
    ) -> Result<Value, ClientError> {
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
    /// results come back in the order of `calls`.
    pub async fn batch(&self, calls: Vec<(String, Option<Value>)>) -> Vec<Result<Value, ClientError>> {
        let timeout = self.opts.request_timeout;
        let mut ids = Vec::with_capacity(calls.len());
        let mut msgs = Vec::with_capacity(calls.len());
        let mut waiters = Vec::with_capacity(calls.len());
        for (method, params) in calls {
            let id = self.next_id.fetch_add(1, Ordering::Relaxed) + 1;
            waiters.push((method.clone(), self.dispatch.register(id)));
            ids.push(id);
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

    /// Tells the server to stop working on request `id` (best effort, bounded in time).
    async fn cancel(&self, id: i64, after: Duration) {
        let reason = format!("timed out after {}", crate::util::duration::format_duration(after));
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

    /// Ends the session (DELETE for HTTP, close for sockets, ends a stdio child).
    pub async fn close(self) {
        self.transport.close().await;
    }
}
