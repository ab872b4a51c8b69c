//! Session tables of the HTTP transports: a map from session id to session, split into
//! shards so concurrent requests of different sessions rarely meet on one lock. Ids are
//! 128 random bits in hex; the first hex digit picks the shard.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

const SHARDS: usize = 16;

pub struct Sessions<V> {
    shards: [Mutex<HashMap<Box<str>, V>>; SHARDS],
}

/// A fresh session id: 32 lowercase hex digits.
pub fn new_id() -> String {
    format!("{:032x}", rand::random::<u128>())
}

impl<V: Clone> Sessions<V> {
    pub fn new() -> Self {
        Sessions { shards: std::array::from_fn(|_| Mutex::new(HashMap::new())) }
    }

    fn shard(&self, id: &str) -> MutexGuard<'_, HashMap<Box<str>, V>> {
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
