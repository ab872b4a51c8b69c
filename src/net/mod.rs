//! Sockets and framing shared by the client and the server: the bounded line reader
//! behind newline-delimited JSON-RPC (tcp and stdio), SO_REUSEPORT listeners for
//! multi-process servers, and client sockets bound to chosen loopback source addresses.

pub mod lines;
pub mod socket;
