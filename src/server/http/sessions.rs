//! Session tables of the HTTP transports: a map from session id to session, split into
//! shards so concurrent requests of different sessions rarely meet on one lock. Ids are
//! 128 random bits in hex; the first hex digit picks the shard, and foldhash (seeded per
//! table) the bucket: every HTTP request of a session looks its id up, and std's default
//! SipHash was a third of that lookup's time (the rest is cache misses).
//!
//! A Streamable HTTP session is not a connection, yet `connections_open` must fall back
//! when its client goes away, DELETE or not (a client that aborts, a worker that took the
//! session over while the DELETE went to a sibling). So a session counts as open while it
//! is not ended and at least one TCP connection that carried it is still open: each
//! connection keeps the sessions it carried ([`Attached`]), and each session how many
//! connections carry it ([`HttpSession`]). A session whose connections all closed stays
//! in the table (the client may come back on a new connection, and then counts again).

use crate::server::handler::{ServerState, SessionState};
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};

const SHARDS: usize = 16;

type Table<V> = HashMap<Box<str>, V, foldhash::fast::RandomState>;

pub struct Sessions<V> {
    shards: [Mutex<Table<V>>; SHARDS],
}

/// A fresh session id: 32 lowercase hex digits.
pub fn new_id() -> String {
    format!("{:032x}", rand::random::<u128>())
}

/// A session id that names its protocol revision and carries a keyed hash, so that a
/// sibling worker process (same `secret`) can take the session over when one of its
/// connections lands there: `<32 hex random>-<revision index>-<16 hex tag>`. The tag is
/// SipHash keyed with the secret: enough to tell our ids from guesses on a test server,
/// not a cryptographic MAC.
pub fn new_signed_id(secret: u64, version: &str) -> String {
    let index = crate::protocol::mcp::SUPPORTED_PROTOCOL_VERSIONS.iter().position(|v| *v == version).unwrap_or(0);
    let base = format!("{}-{index}", new_id());
    let tag = tag(secret, &base);
    format!("{base}-{tag:016x}")
}

/// The protocol revision of a validly signed id, or `None` for anything else.
pub fn verify_signed_id(secret: u64, id: &str) -> Option<&'static str> {
    let (base, tag_hex) = id.rsplit_once('-')?;
    let index: usize = base.rsplit_once('-')?.1.parse().ok()?;
    if u64::from_str_radix(tag_hex, 16).ok()? != tag(secret, base) {
        return None;
    }
    crate::protocol::mcp::SUPPORTED_PROTOCOL_VERSIONS.get(index).copied()
}

fn tag(secret: u64, base: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::hash::DefaultHasher::new();
    secret.hash(&mut h);
    base.hash(&mut h);
    h.finish()
}

/// A Streamable HTTP session, its presence and its event streams.
pub struct HttpSession {
    pub state: Arc<SessionState>,
    presence: Mutex<Presence>,
    /// Its resumable event streams ([`super::streams`]).
    pub streams: super::streams::StreamTable,
}

#[derive(Default)]
struct Presence {
    /// Open TCP connections that carried a request of this session.
    connections: usize,
    /// DELETE ended it.
    ended: bool,
}

impl HttpSession {
    pub fn new(state: Arc<SessionState>) -> Arc<HttpSession> {
        Arc::new(HttpSession { state, presence: Mutex::new(Presence::default()), streams: Default::default() })
    }

    /// DELETE: no longer counted, whichever connections still carry it; its streams end
    /// and the calls behind them stop.
    pub fn end(&self, server: &ServerState) {
        self.streams.close_all();
        let mut p = crate::util::lock(&self.presence);
        if !p.ended {
            p.ended = true;
            if p.connections > 0 {
                server.stats.connections_open.fetch_sub(1, Ordering::Relaxed);
            }
        }
    }
}

/// The sessions one TCP connection carried; dropping it (the connection closed) releases
/// them.
pub struct Attached {
    server: Arc<ServerState>,
    sessions: Mutex<Vec<Arc<HttpSession>>>,
}

impl Attached {
    pub fn new(server: Arc<ServerState>) -> Attached {
        Attached { server, sessions: Mutex::new(Vec::new()) }
    }

    /// Notes that this connection carries `session` (once per connection and session).
    pub fn attach(&self, session: &Arc<HttpSession>) {
        let mut mine = crate::util::lock(&self.sessions);
        if mine.iter().any(|s| Arc::ptr_eq(s, session)) {
            return;
        }
        mine.push(session.clone());
        let mut p = crate::util::lock(&session.presence);
        p.connections += 1;
        if p.connections == 1 && !p.ended {
            self.server.stats.connections_open.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl Drop for Attached {
    fn drop(&mut self) {
        let mine = std::mem::take(&mut *crate::util::lock(&self.sessions));
        for session in mine {
            let mut p = crate::util::lock(&session.presence);
            p.connections -= 1;
            if p.connections == 0 && !p.ended {
                self.server.stats.connections_open.fetch_sub(1, Ordering::Relaxed);
            }
        }
    }
}

impl<V: Clone> Sessions<V> {
    pub fn new() -> Self {
        Sessions { shards: std::array::from_fn(|_| Mutex::new(HashMap::default())) }
    }

    fn shard(&self, id: &str) -> MutexGuard<'_, Table<V>> {
        let i = id.as_bytes().first().and_then(|b| (*b as char).to_digit(16)).unwrap_or(0) as usize;
        // A poisoned lock only means a panic elsewhere mid-insert; the map is still valid.
        self.shards[i % SHARDS].lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn get(&self, id: &str) -> Option<V> {
        self.shard(id).get(id).cloned()
    }

    pub fn insert(&self, id: &str, value: V) {
        self.shard(id).insert(id.into(), value);
    }

    pub fn remove(&self, id: &str) -> Option<V> {
        self.shard(id).remove(id)
    }

    /// Every session (a snapshot).
    pub fn values(&self) -> Vec<V> {
        let mut out = Vec::new();
        for shard in &self.shards {
            out.extend(shard.lock().unwrap_or_else(|e| e.into_inner()).values().cloned());
        }
        out
    }

    /// Removes every session and returns them.
    pub fn drain(&self) -> Vec<V> {
        let mut out = Vec::new();
        for shard in &self.shards {
            let mut map = shard.lock().unwrap_or_else(|e| e.into_inner());
            out.extend(map.drain().map(|(_, v)| v));
        }
        out
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().unwrap_or_else(|e| e.into_inner()).len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signed_ids_verify_only_with_the_same_secret() {
        let id = new_signed_id(42, "2025-03-26");
        assert_eq!(verify_signed_id(42, &id), Some("2025-03-26"));
        assert_eq!(verify_signed_id(43, &id), None);
        assert_eq!(verify_signed_id(42, &new_id()), None);
        let mut forged = id.clone();
        forged.replace_range(0..1, if id.starts_with('0') { "1" } else { "0" });
        assert_eq!(verify_signed_id(42, &forged), None);
    }

    #[test]
    fn stores_and_removes_by_id() {
        let s: Sessions<u32> = Sessions::new();
        let (a, b) = (new_id(), new_id());
        assert_eq!(a.len(), 32);
        assert_ne!(a, b);
        s.insert(&a, 1);
        s.insert(&b, 2);
        s.insert("not-hex", 3);
        assert_eq!((s.get(&a), s.get(&b), s.get("not-hex"), s.get("x")), (Some(1), Some(2), Some(3), None));
        assert_eq!(s.remove(&a), Some(1));
        assert_eq!(s.len(), 2);
        assert_eq!(s.drain().len(), 2);
        assert_eq!(s.len(), 0);
    }
}
