//! Streamable HTTP in the stateless revision (2026-07-28): a request to the MCP path whose
//! `MCP-Protocol-Version` header names no handshake revision is one self-contained
//! exchange, as the official SDK serves it. No session: an `Mcp-Session-Id` is ignored and
//! none is set, so any worker process can take any request. One JSON-RPC request per POST
//! (a batch or a posted response: 400 -32600); a notification is acknowledged (202) and
//! dropped; GET and DELETE are 405 with `Allow: POST`. The ladder and the handling are the
//! handler's ([`crate::server::stateless`]); here: the routing headers, and the status of
//! the reply, from its error code ([`stateless::http_status`]: 400, 404, else 200).
//!
//! The reply is `application/json`, unless the call sends notifications before it
//! (progress, log: only when the request opted in through its `_meta`) and the `Accept`
//! header allows an event stream: then it is `text/event-stream`, those notifications and
//! the reply, with no priming event (nothing to resume).

use super::body::{self, Body};
use super::streamable::{self, MCP_PROTOCOL_VERSION};
use super::{json, status, Req, Shared};
use crate::protocol::jsonrpc::{self, ErrorObject, Message, Payload, Response as RpcResponse, INVALID_REQUEST};
use crate::protocol::{mcp, stateless};
use crate::server::handler::Outcome;
use crate::server::stateless::{unsupported, Headers};
use crate::server::stats::Stats;
use hyper::header::{HeaderMap, HeaderValue, ACCEPT, ALLOW};
use hyper::{Response, StatusCode};
use std::sync::Arc;
use tokio::sync::mpsc;

/// The routing headers, lower case (as the SDK names them in its messages).
const ROUTING: [&str; 3] = ["mcp-protocol-version", "mcp-method", "mcp-name"];

/// Whether a request to the MCP path is in the stateless era: its `MCP-Protocol-Version`
/// is present and names no handshake revision (an unknown one included: the ladder then
/// answers -32022).
pub fn is_stateless(headers: &HeaderMap) -> bool {
    headers.get(MCP_PROTOCOL_VERSION).is_some_and(|v| !v.to_str().is_ok_and(mcp::is_supported))
}

/// GET and DELETE: no stream, no session to end.
pub fn method_not_allowed() -> Response<Body> {
    let mut resp = status(StatusCode::METHOD_NOT_ALLOWED);
    resp.headers_mut().insert(ALLOW, HeaderValue::from_static("POST"));
    resp
}

pub async fn post(shared: &Arc<Shared>, req: Req) -> Response<Body> {
    let state = &shared.state;
    if state.overloaded() {
        return shared.shed("too many requests in flight");
    }
    if let Some(refused) = streamable::unsupported_media_type(shared, req.headers()) {
        return refused;
    }
    let (parts, body) = req.into_parts();
    let body = match shared.read_body(body).await {
        Ok(b) => b,
        Err(resp) => return resp,
    };
    let request = match jsonrpc::parse(&body) {
        Err(e) => {
            Stats::inc(&state.stats.parse_errors);
            return reply(state.encode(e.to_response()));
        }
        Ok(Payload::Single(Ok(Message::Request(r)))) => r,
        Ok(Payload::Single(Ok(Message::Notification(_)))) => {
            Stats::inc(&state.stats.notifications);
            // Only the header that brought it here is checked: a revision not served is
            // told so, as a request would be.
            let version = parts.headers.get(MCP_PROTOCOL_VERSION).and_then(|v| v.to_str().ok()).unwrap_or("");
            if !stateless::is_stateless(version) {
                let err = unsupported(version, "Unsupported protocol version");
                return reply(state.encode(RpcResponse::err(None, err)));
            }
            return status(StatusCode::ACCEPTED);
        }
        Ok(Payload::Single(Err(invalid))) => {
            Stats::inc(&state.stats.invalid_requests);
            return reply(state.encode(invalid.to_response()));
        }
        Ok(Payload::Batch(_) | Payload::Single(Ok(Message::Response(_)))) => {
            Stats::inc(&state.stats.invalid_requests);
            let err =
                ErrorObject::new(INVALID_REQUEST, "Body must be a single JSON-RPC request or notification object");
            return reply(state.encode(RpcResponse::err(None, err)));
        }
    };
    drop(body);
    let can_stream =
        parts.headers.get_all(ACCEPT).iter().any(|a| a.to_str().is_ok_and(|a| a.contains("text/event-stream")));
    match state.handle_stateless(request, &routing(&parts.headers)) {
        Outcome::Ready(Some(r)) => reply(r),
        Outcome::Ready(None) => status(StatusCode::ACCEPTED),
        Outcome::Pending(r) => match r.await {
            Some(r) => reply(r),
            None => status(StatusCode::ACCEPTED),
        },
        Outcome::Stream(call) if can_stream => streamed(shared, call.start()).await,
        Outcome::Stream(call) => reply(Message::Response(call.reply_only().await).to_vec()),
    }
}

/// The routing headers of a request, and the first one that is repeated.
fn routing(headers: &HeaderMap) -> Headers<'_> {
    let one = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    Headers {
        version: one(ROUTING[0]),
        method: one(ROUTING[1]),
        name: one(ROUTING[2]),
        duplicated: ROUTING.into_iter().find(|name| headers.get_all(*name).iter().nth(1).is_some()),
    }
}

/// A streaming call: JSON when its first message is the reply; otherwise an event stream
/// of its notifications, then the reply.
async fn streamed(shared: &Arc<Shared>, mut rx: mpsc::Receiver<Vec<u8>>) -> Response<Body> {
    let Some(first) = rx.recv().await else {
        let err = ErrorObject::new(jsonrpc::INTERNAL_ERROR, "the call ended without a reply");
        return reply(shared.state.encode(RpcResponse::err(None, err)));
    };
    // Our serialiser writes a notification's `method` right after `jsonrpc`, a reply's
    // `id` (and this era has no server requests).
    if !first.starts_with(br#"{"jsonrpc":"2.0","method""#) {
        return reply(first);
    }
    let mut resp = Response::new(Body::Messages { first: Some(body::message_event(&first)), rx });
    let h = resp.headers_mut();
    h.insert(hyper::header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    h.insert(hyper::header::CACHE_CONTROL, HeaderValue::from_static("no-cache, no-transform"));
    resp
}

/// One JSON-RPC reply as JSON, with the status its error code maps to.
fn reply(reply: Vec<u8>) -> Response<Body> {
    let code = error_code(&reply).unwrap_or(0);
    let status = StatusCode::from_u16(stateless::http_status(code)).unwrap_or(StatusCode::OK);
    json(status, reply)
}

/// The error code of a serialised reply, `None` for a result.
fn error_code(reply: &[u8]) -> Option<i64> {
    #[derive(serde::Deserialize)]
    struct Code {
        code: i64,
    }
    #[derive(serde::Deserialize)]
    struct Reply {
        error: Option<Code>,
    }
    serde_json::from_slice::<Reply>(reply).ok()?.error.map(|e| e.code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_routing_headers_and_the_era() {
        let mut h = HeaderMap::new();
        assert!(!is_stateless(&h));
        h.insert("mcp-protocol-version", HeaderValue::from_static("2025-06-18"));
        assert!(!is_stateless(&h));
        h.insert("mcp-protocol-version", HeaderValue::from_static("2026-07-28"));
        h.insert("mcp-method", HeaderValue::from_static("tools/call"));
        assert!(is_stateless(&h));
        let r = routing(&h);
        assert_eq!((r.version, r.method, r.name, r.duplicated), (Some("2026-07-28"), Some("tools/call"), None, None));
        h.append("mcp-method", HeaderValue::from_static("tools/list"));
        assert_eq!(routing(&h).duplicated, Some("mcp-method"));
        h.insert("mcp-protocol-version", HeaderValue::from_static("2099-01-01"));
        assert!(is_stateless(&h), "an unknown revision gets the ladder's -32022");
    }

    #[test]
    fn reads_error_codes() {
        let err = Message::Response(RpcResponse::err(None, ErrorObject::new(-32601, "x"))).to_vec();
        assert_eq!(error_code(&err), Some(-32601));
        let ok = Message::Response(RpcResponse::ok(jsonrpc::Id::Str("e".into()), serde_json::json!({"error": 1})));
        assert_eq!(error_code(&ok.to_vec()), None);
    }
}
