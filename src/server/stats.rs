//! What the server counts: connections, sessions, requests by outcome. Plain relaxed
//! atomics: each counter is independent and read only for reporting.

use serde_json::{json, Value};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

#[derive(Default)]
pub struct Stats {
    pub connections_total: AtomicU64,
    pub connections_open: AtomicU64,
    pub connections_refused: AtomicU64,
    pub sessions_initialized: AtomicU64,
    pub requests: AtomicU64,
    pub responses_ok: AtomicU64,
    pub responses_error: AtomicU64,
    pub shed: AtomicU64,
    pub injected_errors: AtomicU64,
    pub notifications: AtomicU64,
    pub parse_errors: AtomicU64,
    pub invalid_requests: AtomicU64,
    /// Streamable HTTP call streams held: read by a client, or waiting for it to resume
    /// them (a gauge).
    pub streams_held: AtomicU64,
    /// Client replies to the server's requests handed to the sibling worker process that
    /// sent the request (`serve --workers N`).
    pub replies_forwarded: AtomicU64,
}

impl Stats {
    pub fn inc(counter: &AtomicU64) {
        counter.fetch_add(1, Relaxed);
    }

    /// A JSON snapshot with the process id and resident memory.
    pub fn snapshot(&self) -> Value {
        let g = |c: &AtomicU64| c.load(Relaxed);
        json!({
            "pid": std::process::id(),
            "rss_bytes": crate::util::proc::self_rss_bytes().unwrap_or(0),
            "connections_total": g(&self.connections_total),
            "connections_open": g(&self.connections_open),
            "connections_refused": g(&self.connections_refused),
            "sessions_initialized": g(&self.sessions_initialized),
            "requests": g(&self.requests),
            "responses_ok": g(&self.responses_ok),
            "responses_error": g(&self.responses_error),
            "shed": g(&self.shed),
            "injected_errors": g(&self.injected_errors),
            "notifications": g(&self.notifications),
            "parse_errors": g(&self.parse_errors),
            "invalid_requests": g(&self.invalid_requests),
            "streams_held": g(&self.streams_held),
            "replies_forwarded": g(&self.replies_forwarded),
        })
    }
}

/// Adds up the numeric members of several snapshots (worker processes); `pid` and
/// `rss_bytes` become `workers` and the summed `rss_bytes`.
pub fn sum_snapshots(snaps: &[Value]) -> Value {
    let mut total = serde_json::Map::new();
    for s in snaps {
        for (k, v) in s.as_object().into_iter().flatten() {
            if k == "pid" {
                continue;
            }
            let add = v.as_u64().unwrap_or(0);
            let cur = total.get(k).and_then(Value::as_u64).unwrap_or(0);
            total.insert(k.clone(), json!(cur + add));
        }
    }
    total.insert("workers".into(), json!(snaps.len()));
    Value::Object(total)
}
