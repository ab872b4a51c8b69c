//! Client errors. Each names the target and what was expected; [`ErrorKind`] buckets them
//! for counting (JSON-RPC code, timeout, transport, protocol, HTTP status).

use crate::protocol::ErrorObject;
use std::time::Duration;

#[derive(Debug, Clone, thiserror::Error)]
pub enum ClientError {
    #[error(transparent)]
    InvalidTarget(#[from] super::target::TargetError),
    #[error("cannot connect to {target}: {detail}")]
    Connect { target: String, detail: String },
    #[error("cannot start the stdio server '{command}': {detail}")]
    Spawn { command: String, detail: String },
    #[error("{target}: connection closed {detail}")]
    Closed { target: String, detail: String },
    #[error("{target}: no reply to '{method}' within {}{note}", crate::util::human::duration(*after))]
    Timeout { target: String, method: String, after: Duration, note: String },
    #[error("{target}: '{method}' returned {error}")]
    Rpc { target: String, method: String, error: ErrorObject },
    #[error("{target}: protocol error: {detail}")]
    Protocol { target: String, detail: String },
    #[error("{target}: HTTP {status}{}", if body.is_empty() { String::new() } else { format!(": {body}") })]
    Http { target: String, status: u16, body: String },
    /// An HTTP error status whose body is a JSON-RPC error response (official SDK servers
    /// answer malformed JSON or invalid params with HTTP 400 and a -32700 / -32602 body):
    /// counted as that JSON-RPC error, the status kept alongside. Only for 400, 422 and 500
    /// (the statuses that say the message itself was refused or failed), and 404 in a
    /// stateless session (-32601 for a removed method); on the others (401, 404 of a
    /// session, 415, 503...) the status is the answer and the error stays
    /// [`ClientError::Http`].
    #[error("{target}: HTTP {status} with {error}")]
    HttpRpc { target: String, status: u16, error: ErrorObject },
    #[error("{target}: initialize failed: {detail}")]
    Handshake { target: String, detail: String },
    /// HTTP 401: the server wants credentials (or refused the ones sent); its
    /// `WWW-Authenticate` challenge says how to get them.
    #[error("{target}: HTTP {status} unauthorized (WWW-Authenticate: {})", if www_authenticate.is_empty() { "none given" } else { www_authenticate.as_str() })]
    Unauthorized { target: String, status: u16, www_authenticate: String },
    /// HTTP 401 / 403 and the OAuth flow (`--oauth`) could not get a usable token.
    #[error("{target}: HTTP {status} and OAuth failed: {detail}")]
    OAuth { target: String, status: u16, detail: String },
}

/// What kind of failure, for counting errors by kind in load results.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// A JSON-RPC error reply with this code.
    Rpc(i64),
    /// No reply before the deadline.
    Timeout,
    /// Connecting or the connection itself failed.
    Transport,
    /// A malformed, oversized or unmatched reply.
    Protocol,
    /// An HTTP error status.
    Http(u16),
}

impl ClientError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            ClientError::Rpc { error, .. } | ClientError::HttpRpc { error, .. } => ErrorKind::Rpc(error.code),
            ClientError::Timeout { .. } => ErrorKind::Timeout,
            ClientError::Protocol { .. } | ClientError::Handshake { .. } => ErrorKind::Protocol,
            ClientError::Http { status, .. }
            | ClientError::Unauthorized { status, .. }
            | ClientError::OAuth { status, .. } => ErrorKind::Http(*status),
            ClientError::InvalidTarget(_)
            | ClientError::Connect { .. }
            | ClientError::Spawn { .. }
            | ClientError::Closed { .. } => ErrorKind::Transport,
        }
    }

    /// The JSON-RPC error the server answered with, however it came (a reply, or the body
    /// of an HTTP error status).
    pub fn rpc_error(&self) -> Option<&ErrorObject> {
        match self {
            ClientError::Rpc { error, .. } | ClientError::HttpRpc { error, .. } => Some(error),
            _ => None,
        }
    }

    /// The HTTP status of a reply that came with an error status.
    pub fn http_status(&self) -> Option<u16> {
        match self {
            ClientError::Http { status, .. }
            | ClientError::HttpRpc { status, .. }
            | ClientError::Unauthorized { status, .. }
            | ClientError::OAuth { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Whether this error means the session cannot be used any more.
    pub fn is_fatal_to_session(&self) -> bool {
        matches!(self, ClientError::Closed { .. } | ClientError::Connect { .. } | ClientError::Spawn { .. })
    }
}

impl std::fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ErrorKind::Rpc(code) => write!(f, "rpc_{code}"),
            ErrorKind::Timeout => f.write_str("timeout"),
            ErrorKind::Transport => f.write_str("transport"),
            ErrorKind::Protocol => f.write_str("protocol"),
            ErrorKind::Http(status) => write!(f, "http_{status}"),
        }
    }
}
