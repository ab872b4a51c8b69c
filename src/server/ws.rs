//! WebSocket serving: one MCP session per WebSocket connection (subprotocol `mcp`, one
//! JSON-RPC message per text frame), reached through an HTTP upgrade on an http:// or
//! ws:// listener.

use super::handler::ServerState;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncWrite};

/// Serves one MCP session over an already-upgraded WebSocket byte stream (the HTTP
/// upgrade handshake, including the `Sec-WebSocket-Protocol: mcp` reply, has been done by
/// the caller).
pub async fn serve_upgraded<S>(stream: S, state: Arc<ServerState>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let _ = (stream, state);
}
