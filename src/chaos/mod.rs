//! Fault injection in user space: a proxy in front of any TCP-based target (tcp, http,
//! sse+http, ws) that injects TCP-level faults (Toxiproxy's vocabulary, plus segment loss
//! and connection drops) and MCP-message-level faults (drop, corrupt, truncate, duplicate,
//! delay one JSON-RPC message), each with a toxicity, a direction and a seeded RNG.
//!
//! # Layout
//! - [`faults`]: what a fault is, its valid ranges, parsing from `NAME:key=value,...` and JSON.
//! - [`proxy`]: [`Proxy`], the listener and connection tasks, the live fault table.
//! - [`pump`]: one direction of one connection: fast path, framing, faults, shaping queue.
//! - [`framing`]: message boundaries for newline JSON, WebSocket frames and HTTP/SSE.
//! - [`message_faults`]: what drop/corrupt/truncate/duplicate/delay do to one message.
//! - [`tcp_faults`]: the shaping queue (latency, jitter, loss, bandwidth, slicer).
//! - [`stats`]: the counters a run compares with what its clients saw.
//! - [`timer`]: sleeps accurate to well under a millisecond, for injected delays.
//!
//! ```no_run
//! # async fn demo() -> Result<(), mcpscript::chaos::ChaosError> {
//! use mcpscript::chaos::{Fault, Proxy};
//! use std::time::Duration;
//! let target: mcpscript::client::Target = "tcp://127.0.0.1:7777".parse().unwrap();
//! let proxy = Proxy::start(&target, "127.0.0.1:0".parse().unwrap(), 42).await?;
//! let through = proxy.target_for(&target)?; // tcp://127.0.0.1:PROXY
//! let id = proxy.add_fault(Fault::latency(Duration::from_millis(100), Duration::ZERO))?;
//! proxy.add_fault("drop:probability=0.05".parse()?)?;
//! // ... run load against `through` ...
//! proxy.remove_fault(id)?;
//! println!("{}", proxy.stats());
//! # let _ = through; Ok(()) }
//! ```

pub mod faults;
pub mod framing;
pub mod message_faults;
pub mod proxy;
pub mod pump;
pub mod stats;
pub mod tcp_faults;
pub mod timer;

pub use faults::{CorruptMode, DropAfter, Fault, FaultId, FaultKind, Stream};
pub use framing::Framing;
pub use proxy::{Proxy, ProxyOptions, Upstream};
pub use stats::ProxyStats;

use std::net::SocketAddr;

/// Why a proxy could not start or a fault was refused.
#[derive(Debug, thiserror::Error)]
pub enum ChaosError {
    /// A fault name or value out of range; the message names the valid range.
    #[error("invalid fault: {0}")]
    InvalidFault(String),
    #[error("cannot listen on {addr}: {source}{hint}")]
    Bind { addr: SocketAddr, source: std::io::Error, hint: &'static str },
    #[error("cannot proxy {target}: {reason}")]
    Upstream { target: String, reason: String },
    #[error("no fault {0} on this proxy")]
    UnknownFault(FaultId),
}

impl ChaosError {
    fn bind(addr: SocketAddr, source: std::io::Error) -> ChaosError {
        let hint = match source.kind() {
            std::io::ErrorKind::AddrInUse => " (the port is taken: pick another, or port 0 for any free one)",
            std::io::ErrorKind::AddrNotAvailable => " (no local interface has that address)",
            std::io::ErrorKind::PermissionDenied => " (ports below 1024 need privileges)",
            _ => "",
        };
        ChaosError::Bind { addr, source, hint }
    }
}
