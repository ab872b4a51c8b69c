//! `http://`: MCP Streamable HTTP (spec revision 2025-11-25).

use super::Transport;
use crate::client::{ClientError, ClientOptions, Dispatcher};
use std::sync::Arc;

/// Opens a Streamable HTTP session to `url`.
pub async fn connect(
    url: &str,
    dispatch: Arc<Dispatcher>,
    opts: &ClientOptions,
) -> Result<Box<dyn Transport>, ClientError> {
    let _ = (dispatch, opts);
    Err(ClientError::Connect { target: url.to_string(), detail: "Streamable HTTP is not built yet".into() })
}
