//! What a session does besides the script's own requests: the `connect` options that
//! shape it (`headers`, `on_sampling`, `on_elicitation`, `roots`, `get_stream`,
//! `protocol_version`), the
//! script callbacks that answer server requests, and the session methods that read what the
//! server sent unasked (`notifications()`, `wait_notification`, `server_requests()`) or
//! ask for progress (`tool(name, args, #{progress: true})`).
//!
//! A callback (a Rhai function pointer) runs on the script thread. While the script waits
//! for one of this session's requests ([`run_serving`]), the wait also watches the
//! session's channel of server requests: when one arrives, the wait returns to the script
//! thread, the callback runs, its answer goes back to the runtime, and the wait resumes (the
//! request itself runs on as a task meanwhile). So a server that asks during a tool call
//! gets its answer while the script is blocked in that call: no deadlock. A server request
//! that arrives while the script does something else waits for the script's next request on
//! the session (or is refused after the request timeout).

use super::connections::ScriptSession;
use super::{bad_input, bridge_error, duration_arg, host_error, register_getter, script_fn};
use crate::client::server_requests::{Answer, Ask};
use crate::client::{auth, ClientOptions};
use crate::protocol::jsonrpc::{ErrorObject, INTERNAL_ERROR};
use crate::protocol::mcp::methods;
use crate::script::bridge::{Bridge, BridgeError};
use crate::script::ctx::ScriptCtx;
use crate::script::value;
use rhai::{Array, Dynamic, Engine, EvalAltResult, FnPtr, Map, NativeCallContext};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;

type Res<T> = Result<T, Box<EvalAltResult>>;

/// The `connect` options read here.
pub const KEYS: &[&str] = &["headers", "on_sampling", "on_elicitation", "roots", "get_stream", "protocol_version"];

/// The script's side of a session's server requests and notifications.
#[derive(Default)]
pub struct Extras {
    callbacks: Option<Callbacks>,
    /// Per pattern of `wait_notification`: the last notification it returned.
    cursors: Mutex<HashMap<String, u64>>,
}

/// Function pointers answering server requests, and the channel their requests come on.
struct Callbacks {
    rx: Arc<tokio::sync::Mutex<mpsc::UnboundedReceiver<Ask>>>,
    sampling: Option<FnPtr>,
    elicitation: Option<FnPtr>,
}

/// Reads the options of [`KEYS`] into the session's client options (a copy of `base`) and
/// its [`Extras`]. Bad input is a script error naming the option.
pub fn read(
    ctx: &ScriptCtx,
    nc: &NativeCallContext,
    o: &Map,
    base: &Arc<ClientOptions>,
) -> Res<(Arc<ClientOptions>, Extras)> {
    if !KEYS.iter().any(|k| o.get(*k).is_some_and(|v| !v.is_unit())) {
        return Ok((base.clone(), Extras::default()));
    }
    let err = |m: String| bad_input(ctx, nc, format!("connect: {m}"));
    let mut opts = ClientOptions::clone(base);
    if let Some(h) = o.get("headers").filter(|v| !v.is_unit()) {
        let map = h.read_lock::<Map>().map(|m| m.clone()).ok_or_else(|| {
            err(format!("headers must be a map, e.g. #{{\"X-Trace\": \"1\"}}, not {}", value::type_name(h)))
        })?;
        for (k, v) in map {
            let v = v.to_string();
            auth::check_header(&k, &v).map_err(|e| err(format!("headers: {e}")))?;
            opts.headers.retain(|(name, _)| !name.eq_ignore_ascii_case(&k));
            opts.headers.push((k.to_string(), v));
        }
    }
    if let Some(v) = o.get("get_stream").filter(|v| !v.is_unit()) {
        opts.get_stream = v.as_bool().map_err(|_| err(format!("get_stream must be true or false, not {v}")))?;
    }
    if let Some(v) = o.get("protocol_version").filter(|v| !v.is_unit()) {
        opts.protocol_version = protocol_version(v).map_err(err)?;
    }
    if let Some(r) = o.get("roots").filter(|v| !v.is_unit()) {
        opts.server_requests.roots = Some(roots("roots", r).map_err(err)?);
    }
    let (tx, rx) = mpsc::unbounded_channel();
    let mut callbacks = Callbacks { rx: Arc::new(tokio::sync::Mutex::new(rx)), sampling: None, elicitation: None };
    for (key, slot) in [("on_sampling", 0), ("on_elicitation", 1)] {
        let Some(v) = o.get(key).filter(|v| !v.is_unit()) else { continue };
        let answer = match answer_option(key, v).map_err(err)? {
            AnswerOption::Callback(f) => {
                if slot == 0 {
                    callbacks.sampling = Some(f);
                } else {
                    callbacks.elicitation = Some(f);
                }
                Answer::Ask(tx.clone())
            }
            AnswerOption::Canned(result) => Answer::Canned(result),
        };
        if slot == 0 {
            opts.server_requests.sampling = Some(answer);
        } else {
            opts.server_requests.elicitation = Some(answer);
        }
    }
    let callbacks = (callbacks.sampling.is_some() || callbacks.elicitation.is_some()).then_some(callbacks);
    Ok((Arc::new(opts), Extras { callbacks, cursors: Mutex::default() }))
}

/// `protocol_version`: a revision mcpscript speaks, the stateless one included (of
/// `connect`, and of load phases).
pub(super) fn protocol_version(v: &Dynamic) -> Result<String, String> {
    let known = || crate::protocol::mcp::known_versions().join(", ");
    let version = v
        .clone()
        .into_string()
        .map_err(|_| format!("protocol_version must be a string, one of {}; not {}", known(), value::type_name(v)))?;
    if !crate::protocol::mcp::is_known(&version) {
        return Err(format!("protocol_version {version:?} is not one mcpscript speaks; it speaks {}", known()));
    }
    Ok(version)
}

/// `roots` (of `connect` and of load phases): an array of URIs or `#{uri, name}` maps, as
/// `roots/list` answers them (`{uri, name?}` objects).
pub(super) fn roots(k: &str, v: &Dynamic) -> Result<Vec<Value>, String> {
    let roots = v
        .read_lock::<Array>()
        .map(|a| a.clone())
        .ok_or_else(|| format!("{k} must be an array of URIs or #{{uri, name}} maps, not {}", value::type_name(v)))?;
    roots
        .iter()
        .map(|root| match root.clone().into_string() {
            Ok(uri) => Ok(json!({"uri": uri})),
            Err(_) => {
                let j = value::to_json(root).map_err(|e| format!("{k}: {e}"))?;
                if j.get("uri").is_some_and(Value::is_string) {
                    Ok(j)
                } else {
                    Err(format!("{k}: each root must be a URI string or a map with a uri, not {root}"))
                }
            }
        })
        .collect()
}

/// How `on_sampling` or `on_elicitation` answers.
pub(super) enum AnswerOption {
    /// A script function called with the request's params (`connect` sessions only).
    Callback(FnPtr),
    /// The result to answer every request with.
    Canned(Value),
}

/// `on_sampling`, `on_elicitation` (of `connect` and of load phases): a map (the result to
/// answer with) or a function.
pub(super) fn answer_option(k: &str, v: &Dynamic) -> Result<AnswerOption, String> {
    if let Some(f) = v.read_lock::<FnPtr>().map(|f| f.clone()) {
        Ok(AnswerOption::Callback(f))
    } else if v.is_map() {
        value::to_json(v).map(AnswerOption::Canned).map_err(|e| format!("{k}: {e}"))
    } else {
        Err(format!(
            "{k} must be a map (the result to answer with) or a function (called with the request's params), not {}",
            value::type_name(v)
        ))
    }
}

/// Runs `fut` (one of this session's requests) through the bridge; meanwhile, server
/// requests for the session's callbacks are answered on this thread (see the module
/// documentation).
pub fn run_serving<F, T>(bridge: &Bridge, nc: &NativeCallContext, extras: &Extras, fut: F) -> Result<T, BridgeError>
where
    F: Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let Some(cb) = &extras.callbacks else { return bridge.run_io(fut) };
    enum Step<T> {
        Done(Result<T, tokio::task::JoinError>),
        Ask(Option<Ask>, tokio::task::JoinHandle<T>),
    }
    // The handle itself is wanted (spawned where the session lives), not its output.
    #[allow(clippy::async_yields_async)]
    let mut task = bridge.run_io(async move { tokio::spawn(fut) })?;
    loop {
        let rx = cb.rx.clone();
        let step = bridge.run_io(async move {
            let mut rx = rx.lock().await;
            tokio::select! {
                biased;
                r = &mut task => Step::Done(r),
                a = rx.recv() => Step::Ask(a, task),
            }
        })?;
        match step {
            Step::Done(r) => return r.map_err(|_| BridgeError::RuntimeGone),
            Step::Ask(Some(ask), t) => {
                task = t;
                answer(nc, cb, ask);
            }
            Step::Ask(None, t) => return bridge.run_io(t)?.map_err(|_| BridgeError::RuntimeGone),
        }
    }
}

/// Calls the callback for one server request and sends back its answer.
fn answer(nc: &NativeCallContext, cb: &Callbacks, ask: Ask) {
    if ask.reply.is_closed() {
        return; // answered with an error meanwhile (too late)
    }
    let f = match ask.method.as_str() {
        crate::client::server_requests::SAMPLING => cb.sampling.as_ref(),
        _ => cb.elicitation.as_ref(),
    };
    let outcome = match f {
        None => Err(ErrorObject::new(INTERNAL_ERROR, format!("no callback for '{}'", ask.method))),
        Some(f) => match f.call_within_context::<Dynamic>(nc, (value::to_dynamic(&ask.params),)) {
            Ok(r) if r.is_map() => value::to_json(&r).map_err(|e| ErrorObject::new(INTERNAL_ERROR, e.to_string())),
            Ok(r) => Err(ErrorObject::new(
                INTERNAL_ERROR,
                format!("the callback for '{}' returned {}, not a map", ask.method, value::type_name(&r)),
            )),
            Err(e) => Err(ErrorObject::new(INTERNAL_ERROR, format!("the callback for '{}' failed: {e}", ask.method))),
        },
    };
    let _ = ask.reply.send(outcome);
}

/// Whether `method` matches `pattern`: equal, `*` for any, `prefix*` or `*suffix`.
fn matches(pattern: &str, method: &str) -> bool {
    if pattern == "*" {
        return true;
    }
    if let Some(prefix) = pattern.strip_suffix('*') {
        return method.starts_with(prefix);
    }
    if let Some(suffix) = pattern.strip_prefix('*') {
        return method.ends_with(suffix);
    }
    pattern == method
}

fn notification_map(n: &crate::client::dispatch::Notification) -> Map {
    let mut m = Map::new();
    m.insert("method".into(), n.method.clone().into());
    m.insert("params".into(), value::to_dynamic(&n.params));
    m.insert("seq".into(), Dynamic::from_int(n.seq as i64));
    m
}

/// The `tools/call` options of `tool(name, args, options)`.
fn tool_options(ctx: &ScriptCtx, nc: &NativeCallContext, o: &Map) -> Res<(bool, Option<Duration>)> {
    const OPTS: &[&str] = &["progress", "timeout"];
    let mut progress = false;
    let mut timeout = None;
    for (k, v) in o {
        match k.as_str() {
            "progress" => {
                progress = v
                    .as_bool()
                    .map_err(|_| bad_input(ctx, nc, format!("tool: progress must be true or false, not {v}")))?
            }
            "timeout" => timeout = Some(duration_arg(ctx, nc, "tool timeout", &v.to_string())?),
            k => {
                let hint = crate::util::suggest(k, OPTS.iter().copied())
                    .map(|s| format!(" (did you mean {s}?)"))
                    .unwrap_or_default();
                return Err(bad_input(
                    ctx,
                    nc,
                    format!("tool: unknown option '{k}'{hint}; options are progress, timeout"),
                ));
            }
        }
    }
    Ok((progress, timeout))
}

pub fn register(engine: &mut Engine, ctx: &Arc<ScriptCtx>) {
    let c = ctx.clone();
    script_fn!(engine,
    /// `tools/call` of tool `name` with `args` and `options`: `progress: true` sends a
    /// `_meta.progressToken`, and the response map gets `progress`, the params of every
    /// `notifications/progress` with that token received before the reply (in order);
    /// `timeout: "5s"` is the call's own deadline.
    "tool"(session, name, args, options) => move |nc: NativeCallContext, s: &mut ScriptSession, name: &str, args: Dynamic, options: Map| -> Res<Map> {
        let (progress, timeout) = tool_options(&c, &nc, &options)?;
        if !args.is_map() {
            return Err(host_error(&nc, format!("tool: arguments must be a map, not {}", value::type_name(&args))));
        }
        let a = value::to_json(&args).map_err(|e| host_error(&nc, format!("tool: {e}")))?;
        let mut params = json!({"name": name, "arguments": a});
        let token = progress.then(|| {
            let t = format!("mcpscript-progress-{}", s.next_token());
            params["_meta"] = json!({"progressToken": t});
            t
        });
        let mut m = super::connections::request(&c, &nc, s, methods::TOOLS_CALL, Some(params), timeout)?;
        if let (Some(token), Some(session)) = (token, s.session()) {
            let updates: Array = session
                .dispatcher()
                .notifications()
                .iter()
                .filter(|n| n.method == "notifications/progress" && n.params.get("progressToken") == Some(&json!(token)))
                .map(|n| value::to_dynamic(&n.params))
                .collect();
            m.insert("progress".into(), updates.into());
        }
        Ok(m)
    });

    script_fn!(engine,
    /// The notifications the server sent on this session, oldest first: the last 256 kept
    /// (`notification_count` counts all), each `#{method, params, seq}` (`seq` numbers them
    /// from 1). Progress, logging (`notifications/message`), `*/list_changed`,
    /// `notifications/resources/updated` and any other.
    "notifications"(session) => |s: &mut ScriptSession| -> Array {
        s.session().map(|x| x.dispatcher().notifications().iter().map(|n| notification_map(n).into()).collect()).unwrap_or_default()
    });

    let c = ctx.clone();
    script_fn!(engine,
    /// Waits up to `timeout` (`"2s"`) for a notification whose method matches `pattern`
    /// (exact, `"*"`, `"notifications/*"` or `"*/list_changed"`) and returns it as
    /// `#{method, params, seq}`, or `()` when none came. Each call returns the next one for
    /// that pattern: one already received and not yet returned, else the next to arrive.
    /// Server requests for the session's callbacks are answered while it waits.
    "wait_notification"(session, pattern, timeout) => move |nc: NativeCallContext, s: &mut ScriptSession, pattern: &str, timeout: &str| -> Res<Dynamic> {
        let t = duration_arg(&c, &nc, "wait_notification timeout", timeout)?;
        let session = s.session().ok_or_else(|| host_error(&nc, format!("wait_notification: the session to {} is closed", s.target())))?;
        let extras = s.extras();
        let after = extras.cursors.lock().unwrap_or_else(|e| e.into_inner()).get(pattern).copied().unwrap_or(0);
        let p = pattern.to_string();
        let found = run_serving(&c.bridge, &nc, extras, async move {
            let deadline = tokio::time::Instant::now() + t;
            session.dispatcher().wait_notification(after, deadline, |n| matches(&p, &n.method)).await
        })
        .map_err(|e| bridge_error(&nc, "wait_notification", e))?;
        Ok(match found {
            Some(n) => {
                extras.cursors.lock().unwrap_or_else(|e| e.into_inner()).insert(pattern.to_string(), n.seq);
                notification_map(&n).into()
            }
            None => Dynamic::UNIT,
        })
    });

    script_fn!(engine,
    /// Requests the server made of this session, by method:
    /// `#{"elicitation/create": #{received: 1, answered: 1, refused: 0}}` (`refused`: answered
    /// with an error, because the session was not configured for it or the callback failed).
    "server_requests"(session) => |s: &mut ScriptSession| -> Map {
        let mut out = Map::new();
        if let Some(session) = s.session() {
            for (method, c) in session.dispatcher().server_requests() {
                let mut m = Map::new();
                m.insert("received".into(), Dynamic::from_int(c.received as i64));
                m.insert("answered".into(), Dynamic::from_int(c.answered as i64));
                m.insert("refused".into(), Dynamic::from_int(c.refused as i64));
                out.insert(method.into(), m.into());
            }
        }
        out
    });

    register_getter(
        engine,
        "notification_count",
        &[" Notifications received on this session, all of them (not only the 256 kept)."],
        |s: &mut ScriptSession| {
            s.session().map_or(0, |x| x.dispatcher().notifications.load(std::sync::atomic::Ordering::Relaxed) as i64)
        },
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_methods() {
        assert!(matches("*", "notifications/progress"));
        assert!(matches("notifications/*", "notifications/message"));
        assert!(matches("*/list_changed", "notifications/tools/list_changed"));
        assert!(matches("notifications/message", "notifications/message"));
        assert!(!matches("notifications/message", "notifications/progress"));
    }
}
