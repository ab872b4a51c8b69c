//! WebSocket upgrades on HTTP listeners: the RFC 6455 handshake reply (101 with
//! `Sec-WebSocket-Accept`, and `Sec-WebSocket-Protocol: mcp` when the client offered it),
//! then the upgraded connection goes to [`crate::server::ws::serve_upgraded_until`]. Accepted on
//! any path. The auth token, if any, travels in `initialize` (browsers' WebSocket API
//! cannot set headers), so no bearer check happens here.

use super::body::Body;
use super::{Req, Shared};
use hyper::header::{
    HeaderMap, HeaderValue, CONNECTION, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_KEY, SEC_WEBSOCKET_PROTOCOL,
    SEC_WEBSOCKET_VERSION, UPGRADE,
};
use hyper::{Response, StatusCode};
use hyper_util::rt::TokioIo;
use std::sync::Arc;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

/// Whether a request asks for a WebSocket upgrade.
pub fn is_websocket(headers: &HeaderMap) -> bool {
    headers.get(UPGRADE).is_some_and(|u| u.as_bytes().eq_ignore_ascii_case(b"websocket"))
}

fn offers_mcp(headers: &HeaderMap) -> bool {
    headers
        .get_all(SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.split(',').any(|p| p.trim() == "mcp"))
}

pub fn websocket(shared: &Arc<Shared>, req: Req) -> Response<Body> {
    let headers = req.headers();
    let Some(key) = headers.get(SEC_WEBSOCKET_KEY) else {
        return shared.error(StatusCode::BAD_REQUEST, -32000, "Bad Request: Sec-WebSocket-Key is missing");
    };
    if headers.get(SEC_WEBSOCKET_VERSION).is_none_or(|v| v.as_bytes() != b"13") {
        let mut resp = shared.error(StatusCode::UPGRADE_REQUIRED, -32000, "Sec-WebSocket-Version 13 is required");
        resp.headers_mut().insert(SEC_WEBSOCKET_VERSION, HeaderValue::from_static("13"));
        return resp;
    }
    if shared.state.at_connection_limit() {
        return shared.refuse();
    }
    let accept = derive_accept_key(key.as_bytes());
    let mcp = offers_mcp(headers);
    // A connection served by hyper upgrades through hyper; a lean one takes its socket
    // over itself once this 101 is written (`super::lean`).
    if req.extensions().get::<hyper::upgrade::OnUpgrade>().is_some() {
        let (state, shutdown) = (shared.state.clone(), shared.shutdown.clone());
        tokio::spawn(async move {
            match hyper::upgrade::on(req).await {
                // On shutdown the client gets a proper close frame (1001).
                Ok(upgraded) => crate::server::ws::serve_upgraded_until(TokioIo::new(upgraded), state, shutdown).await,
                Err(e) => tracing::debug!("websocket upgrade failed: {e}"),
            }
        });
    }
    let mut resp = Response::new(Body::empty());
    *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = resp.headers_mut();
    h.insert(UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(CONNECTION, HeaderValue::from_static("Upgrade"));
    if let Ok(v) = HeaderValue::try_from(accept) {
        h.insert(SEC_WEBSOCKET_ACCEPT, v);
    }
    if mcp {
        h.insert(SEC_WEBSOCKET_PROTOCOL, HeaderValue::from_static("mcp"));
    }
    resp
}
