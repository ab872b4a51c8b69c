//! The MCP client: [`Target`] URLs, [`Session`] (one initialized MCP session with request
//! ids, deadlines and cancellation; or, asked for the stateless revision 2026-07-28, one
//! negotiated with `server/discover`) over any [`transport`], and the [`Dispatcher`] that
//! matches replies to waiting requests and answers the server's own requests
//! ([`server_requests`]: sampling, elicitation, roots); [`auth`] is where each request's
//! `Authorization` and extra headers come from ([`oauth`] when the server asks for OAuth);
//! [`resilient`] holds the one resilience policy (reconnect, backoff, resends) that script
//! sessions and load phases share.
//! Networking only: no Rhai types here.

pub mod auth;
pub mod dispatch;
pub mod error;
pub mod oauth;
pub mod resilient;
pub mod server_requests;
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
/// Its `Debug` output never shows the bearer token or header values.
#[derive(Clone)]
pub struct ClientOptions {
    /// Deadline of each request unless the call gives its own.
    pub request_timeout: Duration,
    /// Deadline for connecting plus the `initialize` handshake (or `server/discover`).
    pub connect_timeout: Duration,
    /// Largest inbound message; bigger ones fail the session with a protocol error.
    pub max_message_size: usize,
    /// The revision offered in `initialize`; a stateless one (2026-07-28) is negotiated with
    /// `server/discover` instead, falling back to `initialize` at the latest handshake
    /// revision when the server predates it ([`Session`]).
    pub protocol_version: String,
    pub client_name: String,
    pub client_version: String,
    /// Bearer token (`--bearer`): `Authorization: Bearer` on HTTP, legacy SSE and WebSocket,
    /// `authToken` in `initialize` params for the others.
    pub auth_token: Option<String>,
    /// Source address for TCP-based connections (127.0.0.x spreads the port space).
    pub source_addr: Option<IpAddr>,
    /// Extra HTTP headers (`--header 'K: V'`) on every HTTP, legacy SSE and WebSocket
    /// request, checked with [`auth::check_headers`].
    pub headers: Vec<(String, String)>,
    /// What the session answers when the server asks (sampling, elicitation, roots); also
    /// the capabilities it declares in `initialize`.
    pub server_requests: server_requests::ServerRequests,
    /// Streamable HTTP: open the GET stream for server-initiated messages after
    /// `initialize` (a server answering 405 has none; that is no error).
    pub get_stream: bool,
    /// TLS for `https://`, `sse+https://` and `wss://` (`--ca-cert`, `--insecure`); its
    /// configuration is built once and shared by every clone.
    pub tls: crate::net::tls::ClientTls,
    /// OAuth (`--oauth`): on a 401 or 403 `insufficient_scope` over Streamable HTTP or
    /// legacy SSE, get a token and retry; one token cache per server, shared by every
    /// session of the run.
    pub oauth: Option<std::sync::Arc<oauth::OAuth>>,
}

impl std::fmt::Debug for ClientOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let headers: Vec<String> = self.headers.iter().map(|(k, _)| format!("{k}: <redacted>")).collect();
        f.debug_struct("ClientOptions")
            .field("request_timeout", &self.request_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("max_message_size", &self.max_message_size)
            .field("protocol_version", &self.protocol_version)
            .field("client_name", &self.client_name)
            .field("client_version", &self.client_version)
            .field("auth_token", &self.auth_token.as_ref().map(|_| "<redacted>"))
            .field("source_addr", &self.source_addr)
            .field("headers", &headers)
            .field("server_requests", &self.server_requests.capabilities())
            .field("get_stream", &self.get_stream)
            .field("tls", &self.tls)
            .field("oauth", &self.oauth)
            .finish()
    }
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
            headers: Vec::new(),
            server_requests: server_requests::ServerRequests::default(),
            get_stream: true,
            tls: crate::net::tls::ClientTls::default(),
            oauth: None,
        }
    }
}
