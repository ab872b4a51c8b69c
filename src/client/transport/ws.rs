//! `ws://`: WebSocket, subprotocol `mcp`, one JSON-RPC message per text frame.

use super::Transport;
use crate::client::{ClientError, ClientOptions, Dispatcher};
use std::sync::Arc;

/// Opens a WebSocket session to `url`.
pub async fn connect(
    url: &str,
    dispatch: Arc<Dispatcher>,
    opts: &ClientOptions,
) -> Result<Box<dyn Transport>, ClientError> {
    let _ = (dispatch, opts);
    Err(ClientError::Connect { target: url.to_string(), detail: "WebSocket is not built yet".into() })
}
