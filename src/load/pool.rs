//! Opening sessions for a phase. A [`Connector`] resolves the target once and opens
//! initialized sessions: lean [`LineConn`]s for `tcp://` (handshake done inline), lean
//! [`HttpConn`]s for `http://` (Streamable HTTP), full [`Session`]s for the other
//! transports (`https://` included). Loopback targets are reached from source
//! addresses 127.0.0.2..=127.0.0.254 (IP_BIND_ADDRESS_NO_PORT, so the port is chosen per
//! 4-tuple at connect time and ephemeral ports do not run out), and lean connections
//! close abortively (SO_LINGER 0) so 100,000 closes leave nothing in TIME_WAIT.
//! Every session, lean or not, answers server requests with the phase's canned answers,
//! declares their capabilities in `initialize` and counts what it was asked in the
//! connector's tally ([`Connector::server_requests`]). With `--oauth` every session, lean
//! or not, takes its `Authorization` from the run's token cache for the target (one per
//! process: a worker makes its own from the plan, [`PlanOAuth`](super::plan::PlanOAuth)).
//! [`establish`] opens N sessions at a connect rate, timing each connect + initialize.
//!
//! Asked for the stateless revision (`protocol_version` 2026-07-28), sessions of the full
//! client negotiate each, as [`Session::connect`] does. Lean sessions do not: the phase
//! negotiates once, before its sessions open, with one client session (`server/discover`,
//! the same fallback rules: [`negotiate`]); then either every lean session of the phase is
//! stateless (its templates carry the envelope, [`Template::speaking`]; "connecting" is
//! opening the connection, and its time is the connect time) or every one runs the
//! `initialize` handshake at [`mcp::LATEST_PROTOCOL_VERSION`]. Lean stateless sessions
//! declare no client capabilities (they answer no `input_required` result: a request that
//! needs input is refused with -32021). A negotiation that fails (the target unreachable,
//! no revision in common) fails the phase.

use super::conn::{Broken, Encoded, LineConn};
use super::error::LoadError;
use super::http_conn::{HttpConn, HttpShared};
use super::mux::{Hooks, MuxConn};
use super::plan::{PhasePlan, RequestTemplate};
use super::recorder::{Outcome, PhaseRecorder};
use crate::client::auth::Auth;
use crate::client::server_requests::{RequestCounts, ServerRequests, Tally};
use crate::client::{ClientError, ClientOptions, ErrorKind, Session, Target};
use crate::protocol::mcp::{self, methods, ServerInfo};
use crate::protocol::stateless;
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// Connects started but not finished at once, per process.
pub const MAX_CONCURRENT_CONNECTS: usize = 512;
/// Source addresses used for loopback targets: 127.0.0.2 ..= 127.0.0.254.
const SOURCE_SPREAD: u64 = 253;

/// A request of the mix, ready to send over either connection kind.
pub struct Template {
    pub name: String,
    pub method: String,
    pub params: Option<Value>,
    pub enc: Encoded,
    /// Safe to send twice (a lean HTTP connection found closed resends it once).
    pub idempotent: bool,
}

impl Template {
    /// `t` for sessions of the handshake era.
    pub fn new(t: &RequestTemplate) -> Template {
        Template::speaking(t, None)
    }

    /// `t` for lean sessions of the stateless revision when `stateless` says one (the
    /// envelope stamped and the HTTP header lines written here, once), else of the
    /// handshake era. Full client sessions stamp their requests themselves (`params`).
    pub fn speaking(t: &RequestTemplate, stateless: Option<&Stateless>) -> Template {
        let enc = match stateless {
            Some(s) => Encoded::stateless(&t.method, t.params.as_ref(), &s.version, &s.envelope),
            None => Encoded::new(&t.method, t.params.as_ref()),
        };
        Template {
            name: t.name.clone(),
            method: t.method.clone(),
            params: t.params.clone(),
            enc,
            idempotent: crate::client::resilient::DEFAULT_IDEMPOTENT.contains(&t.method.as_str()),
        }
    }
}

/// The stateless revision the lean sessions of a phase speak, as negotiated.
#[derive(Debug, Clone)]
pub struct Stateless {
    pub version: String,
    /// What every request carries in `params._meta`.
    pub envelope: Map<String, Value>,
}

/// How a request that failed with `e` ended: a timeout, or an error of its kind.
pub(super) fn outcome_of(e: &ClientError) -> Outcome {
    match e.kind() {
        ErrorKind::Timeout => Outcome::Timeout,
        k => Outcome::Error(k),
    }
}

/// A session owned by one task (closed model).
pub enum Exclusive {
    Line(LineConn),
    Http(Box<HttpConn>),
    Session(Box<Session>),
}

impl Exclusive {
    pub async fn call(&mut self, t: &Template, timeout: Duration) -> Outcome {
        match self {
            Exclusive::Line(c) => c.call(&t.enc, timeout).await,
            Exclusive::Http(c) => c.call(&t.enc, t.idempotent, timeout).await,
            Exclusive::Session(s) => match s.request_timeout(&t.method, t.params.clone(), timeout).await {
                Ok(_) => Outcome::Ok,
                Err(e) => outcome_of(&e),
            },
        }
    }

    /// The connection is gone (the session must reconnect to go on).
    pub fn is_broken(&self) -> bool {
        match self {
            Exclusive::Line(c) => c.is_broken(),
            Exclusive::Http(c) => c.is_broken(),
            Exclusive::Session(s) => s.dispatcher().is_closed(),
        }
    }

    /// A failed transport under this session does not end it: the next request goes on a
    /// new connection of the same session (Streamable HTTP), so a request the connection
    /// took down with it is resent without reconnecting.
    pub fn outlives_its_connection(&self) -> bool {
        matches!(self, Exclusive::Http(_))
    }

    /// Reads whatever arrived on an idle session without waiting (answers server pings);
    /// false once its connection is gone.
    pub fn sweep(&mut self) -> bool {
        match self {
            Exclusive::Line(c) => c.sweep(),
            Exclusive::Http(c) => c.sweep(),
            Exclusive::Session(s) => !s.dispatcher().is_closed(),
        }
    }

    /// Turns the session into one many requests use at once; lean connections report
    /// their outcomes to `hooks` themselves.
    pub fn into_open(self, hooks: &Arc<Hooks>) -> Open {
        match self {
            Exclusive::Line(c) => Open::Mux(c.into_mux(hooks.clone())),
            Exclusive::Http(c) => Open::Http(Arc::new(tokio::sync::Mutex::new(*c))),
            Exclusive::Session(s) => Open::Session(Arc::new(*s)),
        }
    }

    pub async fn close(self) {
        match self {
            Exclusive::Line(c) => c.close(),
            Exclusive::Http(c) => c.close().await,
            Exclusive::Session(s) => s.close().await,
        }
    }
}

/// An open-model session: a multiplexed lean connection, a lean HTTP connection (one
/// request at a time: requests to a busy session wait for it), or a full client session.
/// Requests over the latter two each run in a task.
#[derive(Clone)]
pub enum Open {
    Mux(Arc<MuxConn>),
    Http(Arc<tokio::sync::Mutex<HttpConn>>),
    Session(Arc<Session>),
}

impl Open {
    pub fn is_closed(&self) -> bool {
        match self {
            Open::Mux(c) => c.is_closed(),
            // A busy session is in use, so not closed.
            Open::Http(c) => c.try_lock().is_ok_and(|c| c.is_broken()),
            Open::Session(s) => s.dispatcher().is_closed(),
        }
    }

    pub async fn close(self) {
        match self {
            Open::Mux(c) => c.close(),
            Open::Http(c) => {
                if let Ok(c) = Arc::try_unwrap(c) {
                    c.into_inner().close().await;
                }
            }
            Open::Session(s) => {
                if let Ok(s) = Arc::try_unwrap(s) {
                    s.close().await;
                }
            }
        }
    }
}

enum Route {
    /// `tcp://`: lean connections to this address.
    Line(SocketAddr),
    /// `http://`: lean Streamable HTTP connections.
    Http(Arc<HttpShared>),
    /// Any other transport, through the full client.
    Client(Target),
}

/// Opens initialized sessions to one target.
pub struct Connector {
    target: String,
    route: Route,
    /// Client options per source address (one entry when sources are not spread).
    opts: Vec<Arc<ClientOptions>>,
    sources: Vec<Option<IpAddr>>,
    init: Encoded,
    initialized: Vec<u8>,
    connect_timeout: Duration,
    max_message: usize,
    /// Close with SO_LINGER 0 (loopback targets).
    abortive: bool,
    /// What lean connections answer server requests with (sessions have it in `opts`),
    /// with the tally every connection counts them in.
    requests: Arc<ServerRequests>,
    /// Lean sessions speak the stateless revision (negotiated once for the phase).
    stateless: Option<Stateless>,
    /// What the phase's result says about the revision its lean sessions speak, when a
    /// stateless one was asked for.
    era_note: Option<String>,
}

impl Connector {
    /// Resolves the plan's target. Errors name the target.
    pub async fn new(plan: &PhasePlan) -> Result<Connector, LoadError> {
        let target: Target = plan.target.parse()?;
        let cannot = |detail: String| LoadError::Http { target: plan.target.clone(), detail };
        // Read again here: worker processes get the settings, not the coordinator's state.
        let tls = crate::net::tls::ClientTls::new(plan.client.tls.clone()).map_err(|e| cannot(e.to_string()))?;
        // `--oauth`: the run's own in this process, one made for the plan in a worker.
        let oauth = plan.client.oauth.as_ref().map(|o| o.oauth(&tls)).transpose().map_err(cannot)?;
        let mut base = ClientOptions {
            request_timeout: plan.request_timeout,
            connect_timeout: plan.connect_timeout,
            max_message_size: plan.client.max_message_size,
            protocol_version: plan.client.protocol_version.clone(),
            client_name: plan.client.client_name.clone(),
            auth_token: plan.client.auth_token.clone(),
            headers: plan.client.headers.clone(),
            // A load session reads replies to its own requests: no GET stream per session.
            get_stream: false,
            tls,
            oauth,
            ..ClientOptions::default()
        };
        if target.is_tls() {
            base.tls.warm().map_err(cannot)?;
        }
        // Every connection answers (and counts) server requests alike, lean or not, and
        // declares the capabilities of the answers it has.
        base.server_requests = plan.client.answers.requests(Some(Arc::new(Tally::default())));
        let requested = plan.client.protocol_version.as_str();
        // Asked for the stateless revision, a session that falls back offers the newest
        // handshake revision, as the client session does.
        let offered = if stateless::is_stateless(requested) { mcp::LATEST_PROTOCOL_VERSION } else { requested };
        let lean = match &target {
            Target::Tcp { .. } => true,
            Target::Http { url } => url.starts_with("http://"),
            _ => false,
        };
        let negotiated =
            if lean && stateless::is_stateless(requested) { Some(negotiate(&target, &base).await?) } else { None };
        let era_note = negotiated.as_ref().map(|s| era_note(requested, s.as_ref()));
        let speaking = negotiated.flatten();
        let init_params = mcp::initialize_params_with(
            offered,
            &plan.client.client_name,
            env!("CARGO_PKG_VERSION"),
            plan.client.auth_token.as_deref(),
            base.server_requests.capabilities(),
        );
        let init = Encoded::new(methods::INITIALIZE, Some(&init_params));
        let requests = Arc::new(base.server_requests.clone());
        let (route, loopback) = match &target {
            Target::Tcp { host, port } => {
                let addr = tokio::net::lookup_host((host.as_str(), *port))
                    .await
                    .map_err(|source| LoadError::Resolve { host: host.clone(), source })?
                    .next()
                    .ok_or_else(|| LoadError::NoAddress(host.clone()))?;
                (Route::Line(addr), addr.ip().is_loopback() && addr.is_ipv4())
            }
            Target::Builtin => return Err(LoadError::BuiltinNotStarted),
            Target::Http { url } if lean => {
                let auth =
                    Auth::for_server(plan.client.auth_token.as_deref(), base.oauth.as_ref(), url).map_err(cannot)?;
                let shared =
                    HttpShared::new(url, auth, &plan.client.headers, plan.client.max_message_size, false, init.clone())
                        .await
                        .map_err(cannot)?;
                let loopback = shared.addr().ip().is_loopback() && shared.addr().is_ipv4();
                let shared = shared.abortive(loopback).answering(requests.clone()).stateless(speaking.is_some());
                (Route::Http(Arc::new(shared)), loopback)
            }
            Target::Stdio { .. } => (Route::Client(target.clone()), false),
            other => {
                let loopback = match other.host_port() {
                    Some((h, p)) => tokio::net::lookup_host((h.as_str(), p))
                        .await
                        .ok()
                        .and_then(|mut a| a.next())
                        .is_some_and(|a| a.ip().is_loopback() && a.is_ipv4()),
                    None => false,
                };
                (Route::Client(target.clone()), loopback)
            }
        };
        let sources: Vec<Option<IpAddr>> = if loopback {
            (0..SOURCE_SPREAD).map(|i| Some(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2 + i as u8)))).collect()
        } else {
            vec![None]
        };
        let opts = sources
            .iter()
            .map(|s| {
                base.source_addr = *s;
                Arc::new(base.clone())
            })
            .collect();
        let mut initialized = crate::protocol::Message::notification(methods::INITIALIZED, None).to_vec();
        initialized.push(b'\n');
        Ok(Connector {
            target: plan.target.clone(),
            route,
            opts,
            sources,
            init,
            initialized,
            connect_timeout: plan.connect_timeout,
            max_message: plan.client.max_message_size,
            abortive: loopback,
            requests,
            era_note,
            stateless: speaking,
        })
    }

    /// Request template `t` as this connector's sessions send it ([`Template::speaking`]).
    pub fn template(&self, t: &RequestTemplate) -> Template {
        Template::speaking(t, self.stateless.as_ref())
    }

    /// What the result says about the revision the lean sessions speak (only when a
    /// stateless one was asked for).
    pub fn era_note(&self) -> Option<&str> {
        self.era_note.as_deref()
    }

    /// Server requests received so far by the sessions this connector opened, by method.
    pub fn server_requests(&self) -> BTreeMap<String, RequestCounts> {
        self.requests.tally.as_ref().map(|t| t.snapshot()).unwrap_or_default()
    }

    /// Opens session number `index` (of the whole phase) and initializes it, within the
    /// connect timeout.
    pub async fn connect(&self, index: u64) -> Result<Exclusive, ClientError> {
        let slot = (index % self.sources.len() as u64) as usize;
        let fut = async {
            match &self.route {
                Route::Line(addr) => self.connect_line(*addr, self.sources[slot]).await.map(Exclusive::Line),
                Route::Http(shared) => {
                    HttpConn::connect(shared.clone(), self.sources[slot]).await.map(|c| Exclusive::Http(Box::new(c)))
                }
                Route::Client(t) => {
                    Session::connect(t, self.opts[slot].clone()).await.map(|s| Exclusive::Session(Box::new(s)))
                }
            }
        };
        match tokio::time::timeout(self.connect_timeout, fut).await {
            Ok(r) => r,
            Err(_) => Err(ClientError::Timeout {
                target: self.target.clone(),
                method: methods::INITIALIZE.into(),
                after: self.connect_timeout,
                note: String::new(),
            }),
        }
    }

    async fn connect_line(&self, addr: SocketAddr, source: Option<IpAddr>) -> Result<LineConn, ClientError> {
        let target = &self.target;
        let closed = |detail: &str| ClientError::Closed { target: target.clone(), detail: detail.into() };
        let stream = crate::net::socket::connect(addr, source)
            .await
            .map_err(|e| ClientError::Connect { target: target.clone(), detail: e.to_string() })?;
        if self.abortive {
            // SO_LINGER 0 from the start: however this connection ends (closed, dropped by an
            // aborted task), it ends with an RST and leaves no TIME_WAIT behind.
            let _ = socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO));
        }
        let mut c = LineConn::new(stream, self.max_message, self.abortive, self.requests.clone());
        if self.stateless.is_some() {
            // No handshake: the first enveloped request opens the stateless era on the server.
            return Ok(c);
        }
        let id = c.take_id();
        c.write_line(&self.init.line(id)).await.map_err(|e| closed(&format!("while sending initialize: {e}")))?;
        let line = c.read_full_reply(id).await.map_err(|b| match b {
            Broken::TooLong => {
                ClientError::Protocol { target: target.clone(), detail: "initialize reply too long".into() }
            }
            _ => closed("before the initialize reply arrived"),
        })?;
        initialize_reply(target, &line)?;
        c.write_line(&self.initialized).await.map_err(|e| closed(&format!("while sending initialized: {e}")))?;
        Ok(c)
    }
}

/// Negotiates the revision of a phase's lean sessions once, with one client session asked
/// for `opts.protocol_version` (a stateless revision): `server/discover`, and on the rules
/// of [`Session::connect`] a stateless revision, or `None` when the server predates it
/// (the sessions run the handshake). The probe's server requests are not the phase's: not
/// counted. The session is closed at once.
async fn negotiate(target: &Target, opts: &ClientOptions) -> Result<Option<Stateless>, LoadError> {
    let mut probe = opts.clone();
    probe.server_requests.tally = None;
    let session = Session::connect(target, Arc::new(probe))
        .await
        .map_err(|e| LoadError::Negotiate { version: opts.protocol_version.clone(), source: Box::new(e) })?;
    let version = session.is_stateless().then(|| session.server().protocol_version.clone());
    session.close().await;
    Ok(version.map(|version| Stateless {
        envelope: stateless::envelope(&version, &serde_json::json!({}), &opts.client_name, &opts.client_version),
        version,
    }))
}

/// The result's note on the revision a phase asked for (`requested`) and its lean
/// sessions speak.
fn era_note(requested: &str, speaking: Option<&Stateless>) -> String {
    match speaking {
        Some(s) => format!(
            "sessions speak {} (negotiated once for the phase; no handshake: a connect is opening the connection)",
            s.version
        ),
        None => format!(
            "the target does not speak {requested}: sessions fell back to the initialize handshake at {}",
            mcp::LATEST_PROTOCOL_VERSION
        ),
    }
}

/// What the reply to a lean connection's `initialize` said (tcp and Streamable HTTP): the
/// server's info, or the error naming `target`.
pub(super) fn initialize_reply(target: &str, line: &[u8]) -> Result<ServerInfo, ClientError> {
    let protocol = |detail: String| ClientError::Protocol { target: target.to_string(), detail };
    let v: Value = serde_json::from_slice(line).map_err(|e| protocol(format!("initialize reply is not JSON: {e}")))?;
    if let Some(err) = v.get("error") {
        let error: crate::protocol::ErrorObject = serde_json::from_value(err.clone()).unwrap_or_else(|_| {
            crate::protocol::ErrorObject::new(crate::protocol::jsonrpc::INTERNAL_ERROR, err.to_string())
        });
        return Err(ClientError::Rpc { target: target.to_string(), method: methods::INITIALIZE.into(), error });
    }
    let result = v.get("result").ok_or_else(|| protocol("initialize reply has neither result nor error".into()))?;
    ServerInfo::from_result(result).map_err(|detail| ClientError::Handshake { target: target.to_string(), detail })
}

/// Gives memory freed by the allocator back to the system (glibc keeps freed chunks of
/// the handshakes otherwise, and RSS would count them for the whole phase).
pub fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free memory to the system.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Opens sessions `first .. first + count` (phase-wide indices) at `rate` per second
/// (0: as fast as [`MAX_CONCURRENT_CONNECTS`] allows), recording each attempt as kind
/// `kind` of `rec`. Stops early when `stop` turns true. Returns the sessions in index
/// order (`None` where connecting failed) and the time it took.
#[allow(clippy::too_many_arguments)]
pub async fn establish(
    connector: &Arc<Connector>,
    first: u64,
    count: u64,
    rate: f64,
    rec: &Arc<PhaseRecorder>,
    kind: usize,
    stop: &watch::Receiver<bool>,
    first_error: &Arc<Mutex<Option<String>>>,
) -> (Vec<Option<Exclusive>>, Duration) {
    let started = tokio::time::Instant::now();
    let permits = Arc::new(tokio::sync::Semaphore::new(MAX_CONCURRENT_CONNECTS));
    let mut tasks = tokio::task::JoinSet::new();
    let mut stop = stop.clone();
    let mut out: Vec<Option<Exclusive>> = (0..count).map(|_| None).collect();
    // Finished connects are collected as they complete: a finished task keeps its whole
    // (large) future allocated until joined, and 100,000 of those would stay behind as
    // allocator holes long after establishment.
    let mut collect = |done: Option<Result<(u64, Option<Exclusive>), tokio::task::JoinError>>| {
        if let Some(Ok((k, c))) = done {
            out[k as usize] = c;
        }
    };
    for k in 0..count {
        while let Some(done) = tasks.try_join_next() {
            collect(Some(done));
        }
        if *stop.borrow() {
            break;
        }
        if rate > 0.0 {
            // A schedule beyond what time can express ends the connects, never the runtime.
            let Some(due) = Duration::try_from_secs_f64(k as f64 / rate).ok().and_then(|d| started.checked_add(d))
            else {
                break;
            };
            if due > tokio::time::Instant::now() {
                tokio::select! {
                    _ = tokio::time::sleep_until(due) => {}
                    _ = super::until_true(&mut stop) => break,
                }
            }
        }
        let permit = tokio::select! {
            p = permits.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
            _ = super::until_true(&mut stop) => break,
        };
        let (connector, rec, first_error) = (connector.clone(), rec.clone(), first_error.clone());
        tasks.spawn(async move {
            let _permit = permit;
            let t0 = Instant::now();
            let r = connector.connect(first + k).await;
            let outcome = match &r {
                Ok(_) => {
                    // Relaxed: a gauge read once a second for the timeline.
                    rec.open_sessions.fetch_add(1, Ordering::Relaxed);
                    Outcome::Ok
                }
                Err(e) => {
                    first_error.lock().unwrap_or_else(|p| p.into_inner()).get_or_insert_with(|| e.to_string());
                    outcome_of(e)
                }
            };
            rec.sent_done(k as usize, kind, outcome, t0.elapsed());
            (k, r.ok())
        });
    }
    while let Some(done) = tasks.join_next().await {
        collect(Some(done));
    }
    let took = started.elapsed();
    release_free_memory();
    (out, took)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::server_requests::CannedAnswers;
    use crate::load::plan::Model;
    use serde_json::json;

    /// The capabilities of the `initialize` a lean connection sends.
    fn declared(c: &Connector) -> Value {
        let line = c.init.line(1);
        let v: Value = serde_json::from_slice(&line).unwrap();
        v["params"]["capabilities"].clone()
    }

    #[tokio::test]
    async fn every_connection_declares_the_capabilities_of_its_answers() {
        let model = Model::Connect { sessions: 1, hold: Duration::ZERO, ping_sample: 0 };
        let mut plan = PhasePlan::new("p", "tcp://127.0.0.1:1", model);
        let none = Connector::new(&plan).await.unwrap();
        assert_eq!(declared(&none), json!({}), "nothing declared without answers");
        assert!(!none.opts[0].server_requests.any());
        plan.client.answers = CannedAnswers {
            sampling: Some(json!({"role": "assistant", "content": {"type": "text", "text": "ok"}, "model": "m"})),
            elicitation: Some(json!({"action": "accept"})),
            roots: Some(vec![json!({"uri": "file:///work"})]),
        };
        let all = json!({"sampling": {}, "elicitation": {"form": {}}, "roots": {"listChanged": false}});
        for target in ["tcp://127.0.0.1:1", "http://127.0.0.1:1/mcp", "ws://127.0.0.1:1/ws"] {
            plan.target = target.into();
            let c = Connector::new(&plan).await.unwrap();
            // Lean tcp and http connections send `init`; sessions declare what their options answer.
            assert_eq!(declared(&c), all, "{target}");
            assert!(c.opts.iter().all(|o| o.server_requests.capabilities() == all), "{target}");
            assert!(c.requests.any() && c.opts[0].server_requests.tally.is_some(), "{target}");
        }
        // Only what is configured.
        plan.client.answers = CannedAnswers { elicitation: Some(json!({})), ..CannedAnswers::default() };
        assert_eq!(declared(&Connector::new(&plan).await.unwrap()), json!({"elicitation": {"form": {}}}));
    }
}
