//! Legacy HTTP+SSE (2024-11-05): `GET /sse` opens a session's event stream, whose first
//! event (`endpoint`) says where to POST: `/message?sessionId=<id>`. Each POST is answered
//! 202 at once and its reply is pushed onto the stream as a `message` event, through a
//! bounded channel (a client that stops reading its stream slows its own POSTs down). The
//! session ends when the stream's connection goes away.

use super::body::{self, Body};
use super::{is_unattributed_error, json, Req, Shared};
use crate::server::handler::{Outcome, SessionState};
use crate::server::stats::Stats;
use bytes::Bytes;
use hyper::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE};
use hyper::{Response, StatusCode};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tokio::sync::mpsc;

/// Events queued per stream before POSTs wait for the client to read.
const QUEUE: usize = 64;

/// One legacy session, as POSTs find it.
#[derive(Clone)]
pub struct Stream {
    session: Arc<SessionState>,
    tx: mpsc::Sender<Bytes>,
}

/// Lives in the stream's body: when hyper drops the body (the client left, or the server
/// shuts down) the session is forgotten and no longer counted.
pub struct StreamGuard {
    shared: Arc<Shared>,
    id: String,
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        self.shared.streams.remove(&self.id);
        self.shared.state.stats.connections_open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// GET on the stream path: a new session and its event stream.
pub fn open(shared: &Arc<Shared>) -> Response<Body> {
    let state = &shared.state;
    if state.at_connection_limit() {
        return shared.refuse();
    }
    let id = super::sessions::new_id();
    let (tx, rx) = mpsc::channel(QUEUE);
    let session = Arc::new(SessionState::new(state.config.auth_token.is_some()));
    shared.streams.insert(&id, Stream { session, tx });
    Stats::inc(&state.stats.connections_total);
    state.stats.connections_open.fetch_add(1, Ordering::Relaxed);
    let first = Bytes::from(format!("event: endpoint\ndata: /message?sessionId={id}\n\n"));
    let mut resp =
        Response::new(Body::Events { first: Some(first), rx, _guard: StreamGuard { shared: shared.clone(), id } });
    resp.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    resp.headers_mut().insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    resp
}

/// POST /message?sessionId=…: 202, the reply goes onto the session's stream.
pub async fn post(shared: &Arc<Shared>, req: Req) -> Response<Body> {
    let state = &shared.state;
    let Some(id) = req.uri().query().and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("sessionId="))) else {
        return shared.error(StatusCode::BAD_REQUEST, -32000, "Bad Request: sessionId query parameter is required");
    };
    let Some(stream) = shared.streams.get(id) else {
        return shared.error(StatusCode::NOT_FOUND, -32001, "Session not found");
    };
    if state.overloaded() {
        return shared.shed("too many requests in flight");
    }
    let body = match shared.read_body(req.into_body()).await {
        Ok(b) => b,
        Err(resp) => return resp,
    };
    match state.handle_frame(&stream.session, &body) {
        Outcome::Ready(None) => {}
        Outcome::Ready(Some(reply)) if is_unattributed_error(&reply) => return json(StatusCode::BAD_REQUEST, reply),
        Outcome::Ready(Some(reply)) => {
            if stream.tx.send(body::message_event(&reply)).await.is_err() {
                return shared.error(StatusCode::NOT_FOUND, -32001, "Session not found (its event stream is closed)");
            }
        }
        Outcome::Pending(reply) => {
            tokio::spawn(async move {
                if let Some(reply) = reply.await {
                    let _ = stream.tx.send(body::message_event(&reply)).await;
                }
            });
        }
        // Notifications and the server's requests go onto the session's stream too; the
        // client POSTs its replies like any other message.
        Outcome::Stream(call) => {
            let mut messages = call.start();
            tokio::spawn(async move {
                while let Some(message) = messages.recv().await {
                    if stream.tx.send(body::message_event(&message)).await.is_err() {
                        break;
                    }
                }
            });
        }
    }
    accepted()
}

fn accepted() -> Response<Body> {
    let mut resp = Response::new(Body::from("Accepted"));
    *resp.status_mut() = StatusCode::ACCEPTED;
    resp.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    resp
}
