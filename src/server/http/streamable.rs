//! Streamable HTTP (2025-11-25) on the MCP path: POST carries one message or a batch,
//! GET opens or resumes an event stream, DELETE ends a session. (A request whose
//! `MCP-Protocol-Version` names no handshake revision is the stateless era's:
//! [`super::stateless`].) `initialize` without a session id creates a session (its id goes
//! out in `Mcp-Session-Id`); every later request must carry a known id (missing: 400,
//! unknown: 404). Replies are `application/json` unless the client asked for an event
//! stream (`?sse=1` on the URL, or an `Accept` that lists `text/event-stream` without
//! `application/json`); the event-stream reply starts with a priming event, so clients'
//! SSE parsing gets exercised against this server too. A call that talks to the client
//! while it runs (log and progress notifications, sampling and elicitation requests)
//! answers with an event stream whenever the `Accept` allows one; the client POSTs its
//! replies to the server's requests in the same session.
//!
//! That stream is resumable ([`super::streams`]): its events have ids, the priming event
//! included, and a client whose connection broke, or whose stream the server ended early
//! (with `retry:`; the `test_reconnection` fixture does), sends GET with `Last-Event-ID`
//! and gets the events after it, then the rest of the call. A one-reply event stream (a
//! reply ready at once, or later: `sleep`) has nothing to resume, so its priming event
//! has no id and clients do not try. GET without `Last-Event-ID` opens the session's
//! standalone stream (one reader at a time: a new GET takes it over), which carries only
//! its priming event: this server sends nothing outside calls.

use super::body::{self, Body, PendingReply};
use super::sessions::{Attached, HttpSession};
use super::streams::{self, ResumeError};
use super::{is_unattributed_error, json, status, Req, Shared};
use crate::net::http1::{contains_ignore_case, starts_with_ignore_case};
use crate::protocol::jsonrpc::{self, Message, Payload};
use crate::protocol::mcp::methods;
use crate::server::handler::{Outcome, SessionState};
use crate::server::peer::{StreamCloser, Streaming};
use crate::server::stats::Stats;
use bytes::Bytes;
use hyper::header::{HeaderMap, HeaderName, HeaderValue, ACCEPT, CACHE_CONTROL, CONTENT_TYPE};
use hyper::{Response, StatusCode};
use std::sync::Arc;

const MCP_SESSION_ID: HeaderName = HeaderName::from_static("mcp-session-id");
pub(super) const MCP_PROTOCOL_VERSION: HeaderName = HeaderName::from_static("mcp-protocol-version");
const LAST_EVENT_ID: HeaderName = HeaderName::from_static("last-event-id");

/// The first event of a one-reply event stream, sent at once: empty data and no id. A
/// server primes with an event id so that the client can resume the stream with
/// `Last-Event-ID`; such a stream has nothing to resume (the reply is its only message),
/// so it gives no id and a client does not try. (A call's resumable stream primes with
/// its id: [`super::streams`].)
const PRIMING: &[u8] = b"data:\n\n";

pub async fn post(shared: &Arc<Shared>, req: Req, attached: &Attached) -> Response<Body> {
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
    let (session, http_session, is_new) = match &session_id {
        Some(id) => match id.to_str().ok().and_then(|id| shared.sessions.get(id).or_else(|| adopt(shared, id))) {
            Some(s) => {
                attached.attach(&s);
                (s.state.clone(), Some(s), false)
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
                (Arc::new(SessionState::new(state.config.auth_token.is_some())), None, true)
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
        Outcome::Stream(call) if can_stream => match &http_session {
            Some(http_session) => resumable(shared, http_session, call),
            None => event_stream(Body::Messages { first: Some(Bytes::from_static(PRIMING)), rx: call.start() }),
        },
        Outcome::Stream(call) => json(StatusCode::OK, Message::Response(call.reply_only().await).to_vec()),
    };
    if is_new {
        // Only a successful initialize makes a session.
        if let Some(version) = session.protocol_version() {
            let id = super::sessions::new_signed_id(state.config.session_secret, version);
            route_to_workers(shared, &session, &id);
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
    let session = Arc::new(SessionState::adopted(version, state.config.auth_token.is_some()));
    route_to_workers(shared, &session, id);
    let session = HttpSession::new(session);
    shared.sessions.insert(id, session.clone());
    Stats::inc(&state.stats.connections_total);
    Some(session)
}

/// With sibling worker processes, the session's request ids name this worker, and its
/// replies reaching a sibling are handed back here ([`crate::server::siblings`]).
fn route_to_workers(shared: &Shared, session: &SessionState, id: &str) {
    if let Some(siblings) = &shared.state.siblings {
        session.exchange().route_to_workers(siblings.index, shared.listener, id);
    }
}

/// A call's resumable event stream: the call feeds it from its own task, and may end the
/// client's reading of it early ([`crate::server::peer::Peer::close_stream`]).
fn resumable(shared: &Arc<Shared>, session: &Arc<HttpSession>, call: Streaming) -> Response<Body> {
    let (stream, reader) = session.streams.open_call(session, &shared.state);
    let closer: StreamCloser = {
        let stream = Arc::downgrade(&stream);
        Arc::new(move || stream.upgrade().is_some_and(|s| s.end_reader()))
    };
    tokio::spawn(streams::pump(stream, call.start_with(Some(closer))));
    event_stream(Body::Resumable(reader))
}

/// GET: with `Last-Event-ID`, resumes the stream that id names after it; without, opens
/// the session's standalone stream. 406 when the `Accept` rules an event stream out, 400
/// without a session id or for an id that cannot be resumed, 404 for an unknown session.
pub fn get(shared: &Arc<Shared>, req: &Req, attached: &Attached) -> Response<Body> {
    let headers = req.headers();
    let accepts = headers.get_all(ACCEPT).iter().next().is_none()
        || headers.get_all(ACCEPT).iter().any(|a| {
            contains_ignore_case(a.as_bytes(), b"text/event-stream") || contains_ignore_case(a.as_bytes(), b"*/*")
        });
    if !accepts {
        return shared.error(
            StatusCode::NOT_ACCEPTABLE,
            -32000,
            "Not Acceptable: GET opens an event stream; accept text/event-stream",
        );
    }
    let Some(id) = headers.get(MCP_SESSION_ID) else {
        return shared.error(StatusCode::BAD_REQUEST, -32000, "Bad Request: Mcp-Session-Id header is required");
    };
    let Some(session) = id.to_str().ok().and_then(|id| shared.sessions.get(id).or_else(|| adopt(shared, id))) else {
        return shared.error(StatusCode::NOT_FOUND, -32001, "Session not found");
    };
    attached.attach(&session);
    let reader = match headers.get(LAST_EVENT_ID) {
        None => session.streams.open_standalone(&session, &shared.state),
        Some(last) => match last.to_str().ok().and_then(streams::parse_event_id) {
            None => {
                return shared.error(
                    StatusCode::BAD_REQUEST,
                    -32000,
                    "Bad Request: Last-Event-ID is not an event id of this server's (<stream>-<event>)",
                )
            }
            Some((0, _)) => session.streams.open_standalone(&session, &shared.state),
            Some((stream, after)) => match session.streams.resume(stream, after) {
                Ok(reader) => reader,
                Err(e) => {
                    let why = match e {
                        ResumeError::NotHeld => format!(
                            "stream {stream} is not held here: it ended and was delivered, it expired ({} s \
                             without a reader), or another worker process serves it",
                            streams::RESUME_WINDOW.as_secs()
                        ),
                        ResumeError::Unknown => format!("stream {stream} never sent event {after}"),
                        ResumeError::Gone => format!("the events of stream {stream} after {after} are no longer kept"),
                    };
                    return shared.error(
                        StatusCode::BAD_REQUEST,
                        -32000,
                        &format!("Bad Request: cannot resume: {why}"),
                    );
                }
            },
        },
    };
    event_stream(Body::Resumable(reader))
}

/// DELETE: ends the session (204), 404 when unknown, 400 without an id.
pub fn delete(shared: &Arc<Shared>, req: &Req) -> Response<Body> {
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
