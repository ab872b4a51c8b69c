//! HTTP-family serving: Streamable HTTP, legacy HTTP+SSE and WebSocket upgrades.

use super::handler::ServerState;
use super::Listen;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// Serves one HTTP-family listener until `shutdown` turns true.
pub async fn serve(
    listener: TcpListener,
    listen: Listen,
    state: Arc<ServerState>,
    mut shutdown: watch::Receiver<bool>,
) {
    let _ = (listener, listen, state);
    let _ = shutdown.wait_for(|s| *s).await;
}
