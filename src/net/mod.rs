//! Sockets and framing shared by the client and the server: the bounded line reader
//! behind newline-delimited JSON-RPC (tcp and stdio), SO_REUSEPORT listeners for
//! multi-process servers, client sockets bound to chosen loopback source addresses, and
//! TLS for both sides ([`tls`]), and the HTTP/1.1 body framing and spare buffers of the
//! lean HTTP connections on both sides ([`http1`]).

pub mod http1;
pub mod lines;
pub mod socket;
pub mod tls;
