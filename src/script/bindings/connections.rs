//! The connections namespace: `connect()` opens an initialized MCP session (the custom type
//! `Session`; `#{initialize: false}` skips the handshake); its methods make requests
//! through the bridge, and `send_raw` sends text exactly as given. Every request returns a
//! response map (see [`RESPONSE_MAP`]) rather than raising, so a script can count errors
//! and timeouts as the measurements they are; a closed session, a bad argument or a
//! failed connect raise a (catchable) script error naming the target.

use super::{bad_input, bridge_error, duration_arg, host_error, register_getter, script_fn, session_extras, Namespace};
use crate::client::resilient::{Failure, SessionPolicy};
use crate::client::{ClientError, ClientOptions, Session, Target};
use crate::protocol::mcp::methods;
use crate::script::bridge::Bridge;
use crate::script::ctx::{Resource, ScriptCtx, CLOSE_LIMIT};
use crate::script::value;
use rhai::{Dynamic, Engine, EvalAltResult, Map, NativeCallContext};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const NAMESPACE: Namespace = Namespace {
    name: "connections",
    doc: "Sessions to the system under test. `connect()` opens one to the run's target (`--target`, \
          default the built-in server) and performs the MCP `initialize` handshake; `connect(url)` opens \
          one to another target (a `stdio:` one, which spawns a process, only with `--allow-spawn`). \
          Methods of `Session` make requests and return a response map; `send_raw(text)` sends bad input \
          on purpose and returns what the server answered, in a response map too. The session closes when \
          the script calls `close()` or ends.",
    register,
};

/// The shape of every response map. Printed by `mcpscript api`.
pub const RESPONSE_MAP: &str = "\
Every request returns a map:
- `ok`: true when the server answered with a result;
- `result`: the JSON-RPC result (maps, arrays, strings...), `()` on error;
- `error`: `()` on success, else `#{kind, code, message, data, http_status}` where `kind` is `rpc`
  (a JSON-RPC error reply, with its `code`), `timeout`, `transport`, `protocol` or `http`;
  `http_status` (int) is the HTTP status when the reply came with an error status, else `()`.
  An HTTP 400, 422 or 500 whose body (JSON, or an event carrying JSON) is a JSON-RPC error
  response is that error: `kind` `rpc` with its `code`, `message` and `data`, and `http_status`
  (official SDK servers answer malformed JSON and invalid params with a 400 and -32700 / -32602).
  Any other error status (401, 404, 503...), or a body that is not a JSON-RPC error, is kind
  `http`, its `message` quoting the start of the body;
- `latency_ms` (float) and `latency_us` (int): time from sending the request to its reply, measured
  on the runtime (the bridge's own overhead is not included);
- `method`: the method called (for `send_raw`, the `method` of the text, or `\"raw message\"`);
- `resent`: true when the connection broke and the request went out again on a reopened
  session (sessions opened with `connect(target, #{reconnect: true})`).";

type Res<T> = Result<T, Box<EvalAltResult>>;

/// The script's handle on one session. Cloning shares the session.
#[derive(Clone)]
pub struct ScriptSession(Arc<SessionSlot>);

/// What [`session_extras`] reads of a session.
impl ScriptSession {
    pub(super) fn session(&self) -> Option<Arc<Session>> {
        self.0.get()
    }

    pub(super) fn target(&self) -> &str {
        &self.0.target
    }

    pub(super) fn extras(&self) -> &session_extras::Extras {
        &self.0.extras
    }

    /// A number unique within the session (progress tokens).
    pub(super) fn next_token(&self) -> u64 {
        self.0.tokens.fetch_add(1, Ordering::Relaxed) + 1
    }
}

pub struct SessionSlot {
    target: String,
    server: Map,
    session: Mutex<Option<Arc<Session>>>,
    bridge: Bridge,
    /// Reopen the session when its connection breaks (`connect(target, #{reconnect: true})`).
    resilience: Option<Resilient>,
    /// Callbacks for server requests and notification cursors (`session_extras`).
    extras: session_extras::Extras,
    tokens: AtomicU64,
}

/// A session that reopens itself: where to, how, and what it did.
pub struct Resilient {
    target: Target,
    opts: Arc<ClientOptions>,
    policy: SessionPolicy,
    reconnects: AtomicU64,
    resent: AtomicU64,
}

impl SessionSlot {
    fn get(&self) -> Option<Arc<Session>> {
        self.session.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn take(&self) -> Option<Arc<Session>> {
        self.session.lock().unwrap_or_else(|e| e.into_inner()).take()
    }

    /// Replaces a broken session with `new` unless the script closed it meanwhile.
    fn replace(&self, new: Arc<Session>) -> Option<Arc<Session>> {
        let (old, current) = {
            let mut g = self.session.lock().unwrap_or_else(|e| e.into_inner());
            let old = std::mem::replace(g.as_mut()?, new);
            (old, g.clone())
        };
        self.bridge.close_detached(close_session(old), CLOSE_LIMIT);
        current
    }

    /// Reopens the session (backing off, within the policy's budget); `None` if it could not.
    fn reopen(&self, nc: &NativeCallContext) -> Res<Option<Arc<Session>>> {
        let Some(r) = &self.resilience else { return Ok(None) };
        let (target, opts, policy) = (r.target.clone(), r.opts.clone(), r.policy.clone());
        // Relaxed: a counter read by the script.
        let salt = r.reconnects.load(Ordering::Relaxed);
        let new = self
            .bridge
            .run_io(async move { crate::client::resilient::reopen(&target, opts, &policy, salt).await })
            .map_err(|e| bridge_error(nc, "reconnect", e))?;
        match new {
            Ok(s) => {
                r.reconnects.fetch_add(1, Ordering::Relaxed);
                Ok(self.replace(Arc::new(s)))
            }
            Err(_) => Ok(None),
        }
    }
}

impl Resource for SessionSlot {
    fn close(&self, bridge: &Bridge) {
        if let Some(s) = self.take() {
            let _ = bridge.run_cleanup(close_session(s), CLOSE_LIMIT);
        }
    }
}

impl Drop for SessionSlot {
    /// A session the script dropped without `close()` is closed in the background.
    fn drop(&mut self) {
        if let Some(s) = self.take() {
            self.bridge.close_detached(close_session(s), CLOSE_LIMIT);
        }
    }
}

/// Closes a session once no request holds it any more.
async fn close_session(s: Arc<Session>) {
    if let Ok(session) = Arc::try_unwrap(s) {
        session.close().await;
    }
}

/// The options map of `connect(target, options)`: the reconnect policy (`None`: do not
/// reconnect) and whether to initialize.
fn session_options(ctx: &ScriptCtx, nc: &NativeCallContext, o: &Map) -> Res<(Option<SessionPolicy>, bool)> {
    /// The options of `connect` besides the resilience ones ([`SessionPolicy::KEYS`]).
    const OWN: &[&str] = &["initialize"];
    let err = |m: String| bad_input(ctx, nc, format!("connect: {m}"));
    let known: Vec<&str> = OWN.iter().chain(SessionPolicy::KEYS).chain(session_extras::KEYS).copied().collect();
    for k in o.keys() {
        if !known.contains(&k.as_str()) {
            let hint = crate::util::suggest(k, known.iter().copied())
                .map(|s| format!(" (did you mean {s}?)"))
                .unwrap_or_default();
            return Err(err(format!("unknown option '{k}'{hint}; options are {}", known.join(", "))));
        }
    }
    let initialize = match o.get("initialize") {
        None => true,
        Some(v) => v.as_bool().map_err(|_| err(format!("initialize must be true or false, not {v}")))?,
    };
    let policy = session_policy(ctx, nc, o)?.map(|p| SessionPolicy { initialize, ..p });
    Ok((policy, initialize))
}

/// The reconnect policy of `connect(target, options)`, read by the policy's own reader
/// (the one load phases use); `None` when `reconnect: false`.
fn session_policy(ctx: &ScriptCtx, nc: &NativeCallContext, o: &Map) -> Res<Option<SessionPolicy>> {
    let err = |m: String| bad_input(ctx, nc, format!("connect: {m}"));
    let mut p = SessionPolicy { seed: ctx.rng_seed(), ..SessionPolicy::default() };
    for (k, v) in o.iter().filter(|(k, v)| !v.is_unit() && SessionPolicy::KEYS.contains(&k.as_str())) {
        let json = value::to_json(v).map_err(|e| err(format!("{k}: {e}")))?;
        p.apply(k, &json).map_err(|e| err(e.to_string()))?;
    }
    Ok(p.policy.reconnect.then_some(p))
}

fn params_json(nc: &NativeCallContext, what: &str, params: &Dynamic) -> Res<Option<Value>> {
    if params.is_unit() {
        return Ok(None);
    }
    if !(params.is_map() || params.is_array()) {
        return Err(host_error(
            nc,
            format!("{what}: params must be a map or an array (or () for none), not {}", value::type_name(params)),
        ));
    }
    value::to_json(params).map(Some).map_err(|e| host_error(nc, format!("{what}: {e}")))
}

fn args_json(nc: &NativeCallContext, what: &str, args: &Dynamic) -> Res<Value> {
    if !args.is_map() {
        return Err(host_error(
            nc,
            format!("{what}: arguments must be a map, e.g. #{{message: \"hi\"}}, not {}", value::type_name(args)),
        ));
    }
    value::to_json(args).map_err(|e| host_error(nc, format!("{what}: {e}")))
}

/// The response map of a finished request.
fn response_map(method: &str, outcome: Result<Value, ClientError>, latency: Duration, resent: bool) -> Map {
    let mut m = Map::new();
    m.insert("method".into(), method.into());
    m.insert("resent".into(), resent.into());
    m.insert("latency_ms".into(), Dynamic::from_float(latency.as_secs_f64() * 1000.0));
    m.insert("latency_us".into(), Dynamic::from_int(latency.as_micros().min(i64::MAX as u128) as i64));
    match outcome {
        Ok(result) => {
            m.insert("ok".into(), true.into());
            m.insert("result".into(), value::to_dynamic(&result));
            m.insert("error".into(), Dynamic::UNIT);
        }
        Err(e) => {
            let mut err = Map::new();
            match e.rpc_error() {
                Some(error) => {
                    err.insert("kind".into(), "rpc".into());
                    err.insert("code".into(), Dynamic::from_int(error.code));
                    err.insert("message".into(), error.message.clone().into());
                    err.insert("data".into(), error.data.as_ref().map(value::to_dynamic).unwrap_or(Dynamic::UNIT));
                }
                None => {
                    let kind = match e.kind() {
                        crate::client::ErrorKind::Timeout => "timeout",
                        crate::client::ErrorKind::Protocol => "protocol",
                        crate::client::ErrorKind::Http(_) => "http",
                        _ => "transport",
                    };
                    err.insert("kind".into(), kind.into());
                    err.insert("code".into(), Dynamic::UNIT);
                    err.insert("message".into(), e.to_string().into());
                    err.insert("data".into(), Dynamic::UNIT);
                }
            }
            let status = e.http_status().map_or(Dynamic::UNIT, |s| Dynamic::from_int(i64::from(s)));
            err.insert("http_status".into(), status);
            m.insert("ok".into(), false.into());
            m.insert("result".into(), Dynamic::UNIT);
            m.insert("error".into(), err.into());
        }
    }
    m
}

/// Makes one request through the bridge and builds its response map. A resilient session
/// whose connection broke is reopened first, and an idempotent request that broke with its
/// connection is sent once more on the new session.
pub(super) fn request(
    ctx: &ScriptCtx,
    nc: &NativeCallContext,
    s: &ScriptSession,
    method: &str,
    params: Option<Value>,
    timeout: Option<Duration>,
) -> Res<Map> {
    let closed = || host_error(nc, format!("{method}: the session to {} is closed", s.0.target));
    let mut session = s.0.get().ok_or_else(closed)?;
    if s.0.resilience.is_some() && session.dispatcher().is_closed() {
        if let Some(new) = s.0.reopen(nc)? {
            session = new;
        }
    }
    let send = |session: Arc<Session>, params: Option<Value>| {
        let m = method.to_string();
        session_extras::run_serving(&ctx.bridge, nc, &s.0.extras, async move {
            let t0 = Instant::now();
            let r = match timeout {
                Some(t) => session.request_timeout(&m, params, t).await,
                None => session.request(&m, params).await,
            };
            (r, t0.elapsed())
        })
        .map_err(|e| bridge_error(nc, method, e))
    };
    let (mut outcome, mut latency) = send(session, params.clone())?;
    let mut resent = false;
    if let Some(r) = &s.0.resilience {
        // Another attempt, as the session's policy says: on a reopened session after the
        // connection broke, or after a timeout when asked.
        let mut attempts = 0;
        while let Err(e) = &outcome {
            let failure = match e {
                e if crate::client::resilient::is_broken(e) => Failure::Broken,
                ClientError::Timeout { .. } => Failure::Timeout,
                _ => break,
            };
            // A broken session is reopened either way (the next request finds it up).
            let session = match failure {
                Failure::Broken => match s.0.reopen(nc)? {
                    Some(new) => new,
                    None => break,
                },
                Failure::Timeout => s.0.get().ok_or_else(closed)?,
            };
            if !r.policy.policy.again(method, attempts, failure) {
                break;
            }
            attempts += 1;
            r.resent.fetch_add(1, Ordering::Relaxed);
            resent = true;
            let (o, l) = send(session, params.clone())?;
            (outcome, latency) = (o, latency + l);
        }
    }
    ctx.rec().cover(method, outcome.as_ref().err().map(|e| e.kind().to_string()));
    Ok(response_map(method, outcome, latency, resent))
}

/// Sends `text` as one raw message through the bridge and builds its response map. A
/// resilient session whose connection broke is reopened first; a raw message is never
/// sent twice.
fn send_raw(
    ctx: &ScriptCtx,
    nc: &NativeCallContext,
    s: &ScriptSession,
    text: &str,
    timeout: Option<Duration>,
) -> Res<Map> {
    let mut session =
        s.0.get().ok_or_else(|| host_error(nc, format!("send_raw: the session to {} is closed", s.0.target)))?;
    if s.0.resilience.is_some() && session.dispatcher().is_closed() {
        if let Some(new) = s.0.reopen(nc)? {
            session = new;
        }
    }
    let method = crate::client::session::raw_method(text.as_bytes());
    let bytes = text.as_bytes().to_vec();
    let (outcome, latency) = ctx
        .bridge
        .run_io(async move {
            let t0 = Instant::now();
            let timeout = timeout.unwrap_or_else(|| session.default_timeout());
            let r = session.send_raw(bytes, timeout).await;
            (r, t0.elapsed())
        })
        .map_err(|e| bridge_error(nc, "send_raw", e))?;
    if let Some(m) = &method {
        ctx.rec().cover(m, outcome.as_ref().err().map(|e| e.kind().to_string()));
    }
    Ok(response_map(method.as_deref().unwrap_or("raw message"), outcome, latency, false))
}

fn connect(
    ctx: &Arc<ScriptCtx>,
    nc: &NativeCallContext,
    target: Target,
    policy: Option<SessionPolicy>,
    initialize: bool,
    (opts, extras): (Arc<ClientOptions>, session_extras::Extras),
) -> Res<ScriptSession> {
    ctx.allow_target(&target).map_err(|e| host_error(nc, format!("connect: {e}")))?;
    let name = target.to_string();
    let requested = opts.protocol_version.clone();
    let resilience = policy.map(|policy| Resilient {
        target: target.clone(),
        opts: opts.clone(),
        policy,
        reconnects: AtomicU64::new(0),
        resent: AtomicU64::new(0),
    });
    let session = ctx
        .bridge
        .run_io(async move { Session::connect_with(&target, opts, initialize).await })
        .map_err(|e| bridge_error(nc, &format!("connect to {name}"), e))?;
    {
        let mut rec = ctx.rec();
        rec.cover_transport(&name);
        if initialize {
            // The method that negotiated (or failed to): `server/discover` for a stateless session.
            let stateless = match &session {
                Ok(s) => s.is_stateless(),
                _ => crate::protocol::stateless::is_stateless(&requested),
            };
            let method = if stateless { crate::protocol::stateless::DISCOVER } else { methods::INITIALIZE };
            rec.cover(method, session.as_ref().err().map(|e| e.kind().to_string()));
        }
    }
    let session = session.map_err(|e| host_error(nc, format!("connect: {e}")))?;
    let mut server = Map::new();
    if session.is_initialized() {
        let info = session.server();
        server.insert("name".into(), info.name.clone().into());
        server.insert("version".into(), info.version.clone().into());
        server.insert("protocol_version".into(), info.protocol_version.clone().into());
        server.insert("capabilities".into(), value::to_dynamic(&info.capabilities));
        server.insert("instructions".into(), info.instructions.clone().map(Dynamic::from).unwrap_or(Dynamic::UNIT));
    }
    let slot = Arc::new(SessionSlot {
        target: name,
        server,
        session: Mutex::new(Some(Arc::new(session))),
        bridge: ctx.bridge.clone(),
        resilience,
        extras,
        tokens: AtomicU64::new(0),
    });
    let weak: std::sync::Weak<dyn Resource> = Arc::downgrade(&slot) as std::sync::Weak<dyn Resource>;
    ctx.track(weak);
    Ok(ScriptSession(slot))
}

pub fn register(engine: &mut Engine, ctx: &Arc<ScriptCtx>) {
    engine.register_type_with_name::<ScriptSession>("Session");
    session_extras::register(engine, ctx);
    engine.register_fn("to_string", |s: &mut ScriptSession| format!("Session({})", s.0.target));
    engine.register_fn("to_debug", |s: &mut ScriptSession| format!("Session({})", s.0.target));

    let c = ctx.clone();
    script_fn!(engine,
    /// Opens a session to the run's target and initializes it. A failure is a script error
    /// naming the target (catch it with `try { } catch (e) { }`).
    "connect"() => move |nc: NativeCallContext| -> Res<ScriptSession> {
        let target = c.target.clone().ok_or_else(|| host_error(&nc, "connect: no target in this engine (check mode)"))?;
        connect(&c, &nc, target, None, true, (c.client.clone(), Default::default()))
    });

    let c = ctx.clone();
    script_fn!(engine,
    /// Opens a session to `target` (`tcp://HOST:PORT`, `http://HOST:PORT/mcp`, `ws://...`,
    /// `sse+http://...`, `stdio:COMMAND ARGS`) and initializes it. A `stdio:` target spawns a
    /// process: a script may open only the run's own (`--target`, a suite's `target:`) unless
    /// the run allows it (`--allow-spawn`, a suite's `allow_spawn: true`); any other is a
    /// script error, also for load phases' `target` and chaos proxies.
    "connect"(target) => move |nc: NativeCallContext, target: &str| -> Res<ScriptSession> {
        let t: Target = target.parse().map_err(|e: crate::client::target::TargetError| bad_input(&c, &nc, format!("connect: {e}")))?;
        let t = match t {
            Target::Builtin => c.target.clone().ok_or_else(|| host_error(&nc, "connect: no built-in server in this engine"))?,
            t => t,
        };
        connect(&c, &nc, t, None, true, (c.client.clone(), Default::default()))
    });

    let c = ctx.clone();
    script_fn!(engine,
    /// Opens a session to `target` ("builtin" for the run's target) with `options`:
    /// `initialize` (default true; false opens the connection without the `initialize`
    /// handshake, so requests and `send_raw` go out before it, as a test of what the server
    /// answers then: over Streamable HTTP there is no session id, `session.server` is an empty
    /// map, and a reopened session is not initialized either),
    /// `protocol_version` (the revision to ask for, default "2025-11-25"; "2026-07-28", the
    /// stateless revision, is negotiated with `server/discover`, falling back to the
    /// `initialize` handshake at 2025-11-25 when the server predates it:
    /// `session.server.protocol_version` says which; a stateless session sends the envelope in
    /// every request's `_meta`, and a stateless server answers `ping` with -32601; with
    /// `initialize: false` it skips `server/discover`),
    /// `reconnect` (default true: when the connection breaks, the next request reopens the
    /// session, backing off), `resend` (methods sent again once on the reopened session when
    /// their connection broke; default `["ping", "tools/list", "resources/read"]`, false for none),
    /// `backoff` (`#{initial: "50ms", max: "1s", jitter: 0.5}`), `resend_on_timeout` (false),
    /// `max_resends` (1), `give_up_after` ("10s"): the resilience options of load phases, read
    /// the same way.
    /// `session.reconnects` and `session.resent` count what it did. A `stdio:` target follows
    /// the rule of `connect(target)`.
    "connect"(target, options) => move |nc: NativeCallContext, target: &str, options: Map| -> Res<ScriptSession> {
        let t: Target = target.parse().map_err(|e: crate::client::target::TargetError| bad_input(&c, &nc, format!("connect: {e}")))?;
        let t = match t {
            Target::Builtin => c.target.clone().ok_or_else(|| host_error(&nc, "connect: no built-in server in this engine"))?,
            t => t,
        };
        let (policy, initialize) = session_options(&c, &nc, &options)?;
        let extras = session_extras::read(&c, &nc, &options, &c.client)?;
        connect(&c, &nc, t, policy, initialize, extras)
    });

    let c = ctx.clone();
    script_fn!(engine,
    /// Sends request `method` without params; returns the response map.
    "request"(session, method) => move |nc: NativeCallContext, s: &mut ScriptSession, method: &str| -> Res<Map> {
        request(&c, &nc, s, method, None, None)
    });

    let c = ctx.clone();
    script_fn!(engine,
    /// Sends request `method` with `params` (a map, an array, or `()` for none); returns the
    /// response map.
    "request"(session, method, params) => move |nc: NativeCallContext, s: &mut ScriptSession, method: &str, params: Dynamic| -> Res<Map> {
        let p = params_json(&nc, method, &params)?;
        request(&c, &nc, s, method, p, None)
    });

    let c = ctx.clone();
    script_fn!(engine,
    /// Sends request `method` with `params` and its own deadline (`"2s"`); a reply later than that
    /// gives `error.kind == "timeout"` and the request is cancelled on the server.
    "request"(session, method, params, timeout) => move |nc: NativeCallContext, s: &mut ScriptSession, method: &str, params: Dynamic, timeout: &str| -> Res<Map> {
        let t = duration_arg(&c, &nc, "request timeout", timeout)?;
        let p = params_json(&nc, method, &params)?;
        request(&c, &nc, s, method, p, Some(t))
    });

    let c = ctx.clone();
    script_fn!(engine,
    /// Sends `text` as one message exactly as given, however malformed, and returns what the
    /// server answered as a response map (`ok`, `result`, `error`...): `s.send_raw("{not json")`
    /// gives `error.kind == "rpc"` and `error.code == -32700` from a conforming server. It goes as
    /// a line over tcp and stdio (a newline is appended; a newline inside `text` is sent as is, so
    /// the server sees several lines), one WebSocket text frame, or the body of one POST over
    /// Streamable HTTP and legacy SSE, with the session's headers. The reply with the `id` found
    /// in `text` answers it, else the next reply without an id (a -32700 or -32600 has `id: null`).
    /// No reply within the session's request timeout gives `error.kind == "timeout"` (at once over
    /// Streamable HTTP when the server's answer held none, e.g. a 202 for a notification); a
    /// closed connection gives `transport`. Nothing is cancelled on the server and a raw
    /// message is never resent.
    "send_raw"(session, text) => move |nc: NativeCallContext, s: &mut ScriptSession, text: &str| -> Res<Map> {
        send_raw(&c, &nc, s, text, None)
    });

    let c = ctx.clone();
    script_fn!(engine,
    /// `send_raw(text)` with its own deadline (`"2s"`) for the reply.
    "send_raw"(session, text, timeout) => move |nc: NativeCallContext, s: &mut ScriptSession, text: &str, timeout: &str| -> Res<Map> {
        let t = duration_arg(&c, &nc, "send_raw timeout", timeout)?;
        send_raw(&c, &nc, s, text, Some(t))
    });

    let c = ctx.clone();
    script_fn!(engine,
    /// Sends notification `method` with `params` (a map or `()`); nothing comes back.
    "notify"(session, method, params) => move |nc: NativeCallContext, s: &mut ScriptSession, method: &str, params: Dynamic| -> Res<()> {
        let p = params_json(&nc, method, &params)?;
        let session = s.0.get().ok_or_else(|| host_error(&nc, format!("notify: the session to {} is closed", s.0.target)))?;
        let m = method.to_string();
        c.bridge
            .run_io(async move { session.notify(&m, p).await })
            .map_err(|e| bridge_error(&nc, method, e))?
            .map_err(|e| host_error(&nc, format!("notify {method}: {e}")))
    });

    let c = ctx.clone();
    script_fn!(engine,
    /// Sends notification `method` without params.
    "notify"(session, method) => move |nc: NativeCallContext, s: &mut ScriptSession, method: &str| -> Res<()> {
        let session = s.0.get().ok_or_else(|| host_error(&nc, format!("notify: the session to {} is closed", s.0.target)))?;
        let m = method.to_string();
        c.bridge
            .run_io(async move { session.notify(&m, None).await })
            .map_err(|e| bridge_error(&nc, method, e))?
            .map_err(|e| host_error(&nc, format!("notify {method}: {e}")))
    });

    let c = ctx.clone();
    script_fn!(engine,
    /// Ends the session (closes the connection, DELETE for HTTP). Closing twice is harmless.
    "close"(session) => move |s: &mut ScriptSession| {
        s.0.close(&c.bridge);
    });

    let c = ctx.clone();
    script_fn!(engine,
    /// `ping`: the cheapest round trip.
    "ping"(session) => move |nc: NativeCallContext, s: &mut ScriptSession| -> Res<Map> {
        request(&c, &nc, s, methods::PING, None, None)
    });

    let c = ctx.clone();
    script_fn!(engine,
    /// `tools/list`.
    "tools_list"(session) => move |nc: NativeCallContext, s: &mut ScriptSession| -> Res<Map> {
        request(&c, &nc, s, methods::TOOLS_LIST, None, None)
    });

    let c = ctx.clone();
    script_fn!(engine,
    /// `tools/call` of tool `name` with `args` (a map), e.g. `s.tool("echo", #{message: "hi"})`.
    "tool"(session, name, args) => move |nc: NativeCallContext, s: &mut ScriptSession, name: &str, args: Dynamic| -> Res<Map> {
        let a = args_json(&nc, "tool", &args)?;
        request(&c, &nc, s, methods::TOOLS_CALL, Some(json!({"name": name, "arguments": a})), None)
    });

    let c = ctx.clone();
    script_fn!(engine,
    /// `tools/call` of tool `name` without arguments.
    "tool"(session, name) => move |nc: NativeCallContext, s: &mut ScriptSession, name: &str| -> Res<Map> {
        request(&c, &nc, s, methods::TOOLS_CALL, Some(json!({"name": name, "arguments": {}})), None)
    });

    let c = ctx.clone();
    script_fn!(engine,
    /// `resources/list`.
    "resources_list"(session) => move |nc: NativeCallContext, s: &mut ScriptSession| -> Res<Map> {
        request(&c, &nc, s, methods::RESOURCES_LIST, None, None)
    });

    let c = ctx.clone();
    script_fn!(engine,
    /// `resources/read` of `uri`.
    "read_resource"(session, uri) => move |nc: NativeCallContext, s: &mut ScriptSession, uri: &str| -> Res<Map> {
        request(&c, &nc, s, methods::RESOURCES_READ, Some(json!({"uri": uri})), None)
    });

    let c = ctx.clone();
    script_fn!(engine,
    /// `prompts/list`.
    "prompts_list"(session) => move |nc: NativeCallContext, s: &mut ScriptSession| -> Res<Map> {
        request(&c, &nc, s, methods::PROMPTS_LIST, None, None)
    });

    let c = ctx.clone();
    script_fn!(engine,
    /// `prompts/get` of prompt `name` with `args` (a map of strings).
    "get_prompt"(session, name, args) => move |nc: NativeCallContext, s: &mut ScriptSession, name: &str, args: Dynamic| -> Res<Map> {
        let a = args_json(&nc, "get_prompt", &args)?;
        request(&c, &nc, s, methods::PROMPTS_GET, Some(json!({"name": name, "arguments": a})), None)
    });

    let c = ctx.clone();
    script_fn!(engine,
    /// `prompts/get` of prompt `name` without arguments.
    "get_prompt"(session, name) => move |nc: NativeCallContext, s: &mut ScriptSession, name: &str| -> Res<Map> {
        request(&c, &nc, s, methods::PROMPTS_GET, Some(json!({"name": name})), None)
    });

    register_getter(engine, "target", &[" The URL this session is connected to."], |s: &mut ScriptSession| {
        s.0.target.clone()
    });
    register_getter(
        engine,
        "server",
        &[
            " What the server said in `initialize` (or `server/discover`): `#{name, version, protocol_version,",
            " capabilities, instructions}`; `protocol_version` is the revision negotiated",
            " (an empty map for a session opened with `#{initialize: false}`).",
        ],
        |s: &mut ScriptSession| s.0.server.clone(),
    );
    register_getter(engine, "is_open", &[" False once `close()` was called."], |s: &mut ScriptSession| {
        s.0.get().is_some()
    });
    register_getter(
        engine,
        "reconnects",
        &[" Times a resilient session was reopened after its connection broke (0 for others)."],
        |s: &mut ScriptSession| s.0.resilience.as_ref().map_or(0, |r| r.reconnects.load(Ordering::Relaxed) as i64),
    );
    register_getter(
        engine,
        "resent",
        &[" Requests a resilient session sent again on a reopened connection."],
        |s: &mut ScriptSession| s.0.resilience.as_ref().map_or(0, |r| r.resent.load(Ordering::Relaxed) as i64),
    );
}
