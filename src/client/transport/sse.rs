//! `sse+http://`: the legacy HTTP+SSE transport (2024-11-05).

use super::Transport;
use crate::client::{ClientError, ClientOptions, Dispatcher};
use std::sync::Arc;

/// Opens a legacy SSE session: GET the stream at `url`, POST to the announced endpoint.
pub async fn connect(
    url: &str,
    dispatch: Arc<Dispatcher>,
    opts: &ClientOptions,
) -> Result<Box<dyn Transport>, ClientError> {
    let _ = (dispatch, opts);
    Err(ClientError::Connect { target: format!("sse+{url}"), detail: "legacy SSE is not built yet".into() })
}
