//! The MCP client: [`Target`] URLs, [`Session`] (one initialized MCP session with request
//! ids, deadlines and cancellation) over any [`transport`], and the [`Dispatcher`] that
//! matches replies to waiting requests; [`resilient`] reopens broken sessions with backoff.
//! Networking only: no Rhai types here.

pub mod dispatch;
pub mod error;
pub mod resilient;
pub mod session;
pub mod target;
pub mod transport;

pub use dispatch::Dispatcher;
pub use error::{ClientError, ErrorKind};
pub use session::Session;
pub use target::Target;

use std::net::IpAddr;
use std::time::Duration;

/// Default largest message accepted from a server: 16 MiB.
pub const DEFAULT_MAX_MESSAGE: usize = 16 * 1024 * 1024;

/// How sessions connect and behave; shared (behind an `Arc`) by every session of a run.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Deadline of each request unless the call gives its own.
    pub request_timeout: Duration,
    /// Deadline for connecting plus the `initialize` handshake.
    pub connect_timeout: Duration,
    /// Largest inbound message; bigger ones fail the session with a protocol error.
    pub max_message_size: usize,
    /// The revision offered in `initialize`.
    pub protocol_version: String,
    pub client_name: String,
    pub client_version: String,
    /// Bearer token for HTTP targets, `authToken` in `initialize` params for the others.
    pub auth_token: Option<String>,
    /// Source address for TCP-based connections (127.0.0.x spreads the port space).
    pub source_addr: Option<IpAddr>,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            request_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            max_message_size: DEFAULT_MAX_MESSAGE,
            protocol_version: crate::protocol::mcp::LATEST_PROTOCOL_VERSION.to_string(),
            client_name: "mcpscript".to_string(),
            client_version: env!("CARGO_PKG_VERSION").to_string(),
            auth_token: None,
            source_addr: None,
        }
    }
}
