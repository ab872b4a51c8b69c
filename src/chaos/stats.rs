//! What the proxy did, counted: connections, bytes each way, and every fault it injected,
//! so a test or script can compare what was injected with what the client observed.
//! Counters are relaxed atomics bumped once per chunk or event, read as a snapshot.

use std::sync::atomic::{AtomicU64, Ordering};

macro_rules! counters {
    ($($(#[$doc:meta])* $name:ident,)*) => {
        /// Live counters shared by every connection of one proxy.
        #[derive(Debug, Default)]
        pub struct Counters {
            $($(#[$doc])* pub $name: AtomicU64,)*
        }

        /// A snapshot of a proxy's counters.
        #[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
        pub struct ProxyStats {
            $($(#[$doc])* pub $name: u64,)*
        }

        impl Counters {
            pub fn snapshot(&self) -> ProxyStats {
                // Relaxed: statistics; each value is exact once traffic has stopped.
                ProxyStats { $($name: self.$name.load(Ordering::Relaxed),)* }
            }
        }
    };
}

counters! {
    /// Client connections accepted.
    connections,
    /// Connections open right now.
    connections_active,
    /// Accepted connections closed because the upstream could not be reached.
    upstream_connect_failures,
    /// Bytes forwarded client to server.
    bytes_upstream,
    /// Bytes forwarded server to client.
    bytes_downstream,
    /// Messages that went through message-level faults (only counted while such a fault
    /// applies to the connection and direction).
    messages_seen,
    messages_dropped,
    messages_corrupted,
    messages_truncated,
    messages_duplicated,
    messages_delayed,
    /// Connections closed with RST by `reset_peer`.
    connections_reset,
    /// Connections closed mid-stream by `drop_connection`.
    connections_dropped,
    /// Connections that a `timeout` fault started black-holing.
    connections_blackholed,
    /// Connections closed by a `timeout` fault after its timeout.
    connections_timed_out,
    /// Connections closed by `limit_data`.
    connections_limited,
    /// Closes delayed by `slow_close`.
    connections_slow_closed,
    /// Chunks held back for a retransmission timeout by `loss`.
    segments_held_back,
    /// Chunks delayed by `latency`.
    chunks_delayed,
    /// Slices cut by `slicer`.
    slices,
}

impl Counters {
    pub fn add(&self, counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}

impl ProxyStats {
    /// Messages the proxy changed or removed in any way (dropped, corrupted, truncated,
    /// duplicated or delayed).
    pub fn messages_faulted(&self) -> u64 {
        self.messages_dropped
            + self.messages_corrupted
            + self.messages_truncated
            + self.messages_duplicated
            + self.messages_delayed
    }
}

impl std::fmt::Display for ProxyStats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} connections, {} bytes up, {} bytes down; messages: {} seen, {} dropped, {} corrupted, {} truncated, \
             {} duplicated, {} delayed; connections: {} reset, {} dropped, {} black-holed, {} limited; \
             {} segments held back",
            self.connections,
            self.bytes_upstream,
            self.bytes_downstream,
            self.messages_seen,
            self.messages_dropped,
            self.messages_corrupted,
            self.messages_truncated,
            self.messages_duplicated,
            self.messages_delayed,
            self.connections_reset,
            self.connections_dropped,
            self.connections_blackholed,
            self.connections_limited,
            self.segments_held_back
        )
    }
}
