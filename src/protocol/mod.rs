//! The wire protocol: JSON-RPC 2.0 messages ([`jsonrpc`]) and the MCP layer on top of it
//! ([`mcp`]): protocol revisions and their negotiation, method names, error codes and the
//! shapes of the `initialize` handshake; the stateless revision's envelope, headers and
//! codes ([`stateless`]). No I/O lives here.

pub mod jsonrpc;
pub mod mcp;
pub mod stateless;

pub use jsonrpc::{ErrorObject, Id, Message, Notification, Payload, Request, Response};
