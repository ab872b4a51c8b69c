//! Streamable HTTP (2025-11-25) on the MCP path: POST carries one message or a batch,
//! DELETE ends a session. (A request whose `MCP-Protocol-Version` names no handshake
//! revision is the stateless era's: [`super::stateless`].) `initialize` without a session
//! id creates a session (its id goes out in `Mcp-Session-Id`); every later POST must carry
//! a known id (missing: 400, unknown: 404). Replies are `application/json` unless the
//! client asked for an event stream (`?sse=1` on the URL, or an `Accept` that lists
//! `text/event-stream` without `application/json`); the event-stream reply starts with a
//! priming event, so clients' SSE parsing gets exercised against this server too. A call
//! that talks to the client while it runs (log and progress notifications, sampling and
//! elicitation requests) answers with an event stream whenever the `Accept` allows one;
//! the client POSTs its replies to the server's requests in the same session.

use super::body::{self, Body, PendingReply};
use super::sessions::{Attached, HttpSession};
use super::{is_unattributed_error, json, status, Shared};
use crate::protocol::jsonrpc::{self, Message, Payload};
use crate::protocol::mcp::methods;
use crate::server::handler::{Outcome, SessionState};
use crate::server::stats::Stats;
use bytes::Bytes;
use hyper::body::Incoming;
use hyper::header::{HeaderMap, HeaderName, HeaderValue, ACCEPT, CACHE_CONTROL, CONTENT_TYPE};
use hyper::{Request, Response, StatusCode};
use std::sync::Arc;

const MCP_SESSION_ID: HeaderName = HeaderName::from_static("mcp-session-id");
pub(super) const MCP_PROTOCOL_VERSION: HeaderName = HeaderName::from_static("mcp-protocol-version");

/// The first event of an event-stream reply, sent at once: empty data and no id. A server
/// primes with an event id so that the client can resume the stream with `Last-Event-ID`;
/// this one cannot resume a stream (a GET is 405), so it gives no id and a client does not
/// try.
const PRIMING: &[u8] = b"data:\n\n";

pub async fn post(shared: &Arc<Shared>, req: Request<Incoming>, attached: &Attached) -> Response<Body> {
    let state = &shared.state;
    if state.overloaded() {
        return shared.shed("too many requests in flight");
    }
    let headers = req.headers();
    if let Some(refused) = unsupported_media_type(shared, headers) {
        return refused;
    }
    let session_id = headers.get(MCP_SESSION_ID).cloned();
    let sse = wants_event_stream(req.uri().query(), headers);
    let can_stream =
        sse || headers.get_all(ACCEPT).iter().any(|a| contains_ignore_case(a.as_bytes(), b"text/event-stream"));
    let body = match shared.read_body(req.into_body()).await {
        Ok(b) => b,
        Err(resp) => return resp,
    };
    let (session, is_new) = match &session_id {
        Some(id) => match id.to_str().ok().and_then(|id| shared.sessions.get(id).or_else(|| adopt(shared, id))) {
            Some(s) => {
                attached.attach(&s);
                (s.state.clone(), false)
            }
            None => return shared.error(StatusCode::NOT_FOUND, -32001, "Session not found"),
        },
        None => match jsonrpc::parse(&body) {
            Err(e) => {
                Stats::inc(&state.stats.parse_errors);
                return json(StatusCode::BAD_REQUEST, state.encode(e.to_response()));
            }
            Ok(Payload::Single(Ok(Message::Request(r)))) if r.method == methods::INITIALIZE => {
                if state.at_connection_limit() {
                    return shared.refuse();
                }
                // A configured token was checked on this request already.
                (Arc::new(SessionState::new(state.config.auth_token.is_some())), true)
            }
            Ok(_) => {
                return shared.error(
                    StatusCode::BAD_REQUEST,
                    -32000,
                    "Bad Request: Mcp-Session-Id header is required (send initialize first)",
                )
            }
        },
    };
    let outcome = state.handle_frame(&session, &body);
    drop(body);
    let mut resp = match outcome {
        Outcome::Ready(None) => status(StatusCode::ACCEPTED),
        Outcome::Ready(Some(reply)) if is_unattributed_error(&reply) => json(StatusCode::BAD_REQUEST, reply),
        Outcome::Ready(Some(reply)) if sse => event_stream(Body::from(primed(&reply))),
        Outcome::Ready(Some(reply)) => json(StatusCode::OK, reply),
        Outcome::Pending(reply) if sse => {
            event_stream(Body::Deferred { first: Some(Bytes::from_static(PRIMING)), reply: Some(reply) })
        }
        Outcome::Pending(reply) => pending_json(reply).await,
        Outcome::Stream(call) if can_stream => {
            event_stream(Body::Messages { first: Some(Bytes::from_static(PRIMING)), rx: call.start() })
        }
        Outcome::Stream(call) => json(StatusCode::OK, Message::Response(call.reply_only().await).to_vec()),
    };
    if is_new {
        // Only a successful initialize makes a session.
        if let Some(version) = session.protocol_version() {
            let id = super::sessions::new_signed_id(state.config.session_secret, version);
            let session = HttpSession::new(session);
            shared.sessions.insert(&id, session.clone());
            Stats::inc(&state.stats.connections_total);
            attached.attach(&session);
            if let Ok(v) = HeaderValue::try_from(id) {
                resp.headers_mut().insert(MCP_SESSION_ID, v);
            }
        }
    }
    resp
}

/// 415 for a body that says it is not JSON (no `Content-Type` is taken as JSON).
pub(super) fn unsupported_media_type(shared: &Shared, headers: &HeaderMap) -> Option<Response<Body>> {
    let ct = headers.get(CONTENT_TYPE)?;
    (!starts_with_ignore_case(ct.as_bytes(), b"application/json")).then(|| {
        shared.error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            -32000,
            "Unsupported Media Type: Content-Type must be application/json",
        )
    })
}

/// Takes over a session that a sibling worker initialized (its id verifies with the
/// shared key); `None` for unknown ids, and always when this server has no siblings, so
/// a session ended by DELETE stays ended. (Across workers, a DELETE reaches only one of
/// them; another may still take the id over if the client kept using it.)
fn adopt(shared: &Arc<Shared>, id: &str) -> Option<Arc<HttpSession>> {
    let state = &shared.state;
    if state.config.workers <= 1 && state.config.worker_index == 0 {
        return None;
    }
    let version = super::sessions::verify_signed_id(state.config.session_secret, id)?;
    if state.at_connection_limit() {
        return None;
    }
    let session = HttpSession::new(Arc::new(SessionState::adopted(version, state.config.auth_token.is_some())));
    shared.sessions.insert(id, session.clone());
    Stats::inc(&state.stats.connections_total);
    Some(session)
}

/// DELETE: ends the session (204), 404 when unknown, 400 without an id.
pub fn delete(shared: &Arc<Shared>, req: &Request<Incoming>) -> Response<Body> {
    let Some(id) = req.headers().get(MCP_SESSION_ID) else {
        return shared.error(StatusCode::BAD_REQUEST, -32000, "Bad Request: Mcp-Session-Id header is required");
    };
    match id.to_str().ok().and_then(|id| shared.sessions.remove(id)) {
        Some(session) => {
            session.end(&shared.state);
            status(StatusCode::NO_CONTENT)
        }
        None => shared.error(StatusCode::NOT_FOUND, -32001, "Session not found"),
    }
}

async fn pending_json(reply: PendingReply) -> Response<Body> {
    match reply.await {
        Some(reply) => json(StatusCode::OK, reply),
        None => status(StatusCode::ACCEPTED),
    }
}

fn event_stream(body: Body) -> Response<Body> {
    let mut resp = Response::new(body);
    resp.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    resp.headers_mut().insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    resp
}

/// The priming event followed by the reply as one `message` event.
fn primed(reply: &[u8]) -> Bytes {
    let event = body::message_event(reply);
    let mut out = Vec::with_capacity(PRIMING.len() + event.len());
    out.extend_from_slice(PRIMING);
    out.extend_from_slice(&event);
    Bytes::from(out)
}

/// `?sse=1`, or an `Accept` listing `text/event-stream` but not `application/json`.
fn wants_event_stream(query: Option<&str>, headers: &HeaderMap) -> bool {
    if query.is_some_and(|q| q.split('&').any(|kv| kv == "sse=1" || kv == "sse=true")) {
        return true;
    }
    let mut stream = false;
    for accept in headers.get_all(ACCEPT) {
        let a = accept.as_bytes();
        if contains_ignore_case(a, b"application/json") || contains_ignore_case(a, b"*/*") {
            return false;
        }
        stream |= contains_ignore_case(a, b"text/event-stream");
    }
    stream
}

fn starts_with_ignore_case(hay: &[u8], prefix: &[u8]) -> bool {
    hay.len() >= prefix.len() && hay[..prefix.len()].eq_ignore_ascii_case(prefix)
}

fn contains_ignore_case(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w.eq_ignore_ascii_case(needle))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_event_streams_only_when_asked() {
        let mut h = HeaderMap::new();
        h.insert(ACCEPT, HeaderValue::from_static("application/json, text/event-stream"));
        assert!(!wants_event_stream(None, &h));
        assert!(wants_event_stream(Some("a=b&sse=1"), &h));
        h.insert(ACCEPT, HeaderValue::from_static("text/event-stream"));
        assert!(wants_event_stream(None, &h));
        assert!(!wants_event_stream(None, &HeaderMap::new()));
    }
}
