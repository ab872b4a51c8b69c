//! Message-level faults applied to one whole message: drop, corrupt, truncate, duplicate,
//! delay. Damage keeps the framing valid (the framer re-encodes around the new payload) and
//! keeps text valid UTF-8 (so a WebSocket peer sees a broken JSON message, not a broken
//! connection).

use super::faults::{CorruptMode, FaultKind};
use super::framing::Unit;
use super::stats::Counters;
use rand::rngs::SmallRng;
use rand::Rng;
use std::time::Duration;

/// ASCII control characters other than tab, LF and CR: JSON allows them nowhere (not even
/// inside strings), so one of them anywhere makes the message invalid JSON, and they do
/// not disturb line or SSE framing.
const CONTROL: &[u8] =
    b"\x01\x02\x03\x04\x05\x06\x07\x08\x0b\x0c\x0e\x0f\x10\x11\x12\x13\x14\x15\x16\x17\x18\x19\x1a\x1b\x1c\x1d\x1e\x1f";

/// What the faults decided for one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict {
    /// 0 (dropped), 1, or 2 (duplicated).
    pub copies: u8,
    /// Extra hold time before the message (and what follows it) goes out.
    pub delay: Duration,
}

/// Applies every message-level fault in `faults` to `unit`, in order; every fault draws
/// from `rng` once per message whatever the outcome, so one fault's hits do not shift
/// another's. A dropped message is not processed further.
pub fn apply<'a>(
    faults: impl Iterator<Item = &'a FaultKind>,
    unit: &mut Unit,
    rng: &mut SmallRng,
    stats: &Counters,
) -> Verdict {
    let mut v = Verdict { copies: 1, delay: Duration::ZERO };
    for kind in faults {
        let roll: f64 = rng.random();
        match *kind {
            FaultKind::Drop { probability } if roll < probability => {
                stats.add(&stats.messages_dropped, 1);
                v.copies = 0;
                return v;
            }
            FaultKind::Corrupt { probability, bytes, mode } if roll < probability => {
                let hit = corrupt(&mut unit.payload, bytes as usize, mode, rng);
                stats.add(&stats.messages_corrupted, u64::from(hit));
            }
            FaultKind::Truncate { probability } if roll < probability => {
                let utf8 = unit.needs_utf8();
                let hit = truncate(&mut unit.payload, utf8, rng);
                stats.add(&stats.messages_truncated, u64::from(hit));
            }
            FaultKind::Duplicate { probability } if roll < probability => {
                stats.add(&stats.messages_duplicated, 1);
                v.copies = 2;
            }
            FaultKind::Delay { probability, delay, jitter } if roll < probability => {
                stats.add(&stats.messages_delayed, 1);
                v.delay += jittered(delay, jitter, rng);
            }
            _ => {}
        }
    }
    v
}

/// `base` plus a uniform sample of `-jitter..=jitter`, never below zero.
pub fn jittered(base: Duration, jitter: Duration, rng: &mut SmallRng) -> Duration {
    if jitter.is_zero() {
        return base;
    }
    let j = jitter.as_nanos() as i128;
    let offset = rng.random_range(-j..=j);
    let nanos = (base.as_nanos() as i128 + offset).max(0);
    Duration::from_nanos(nanos as u64)
}

/// Damages `n` ASCII bytes (at random positions). Returns false when there is nothing to
/// damage.
pub fn corrupt(payload: &mut [u8], n: usize, mode: CorruptMode, rng: &mut SmallRng) -> bool {
    if !payload.iter().any(u8::is_ascii) {
        return false;
    }
    for _ in 0..n {
        let start = rng.random_range(0..payload.len());
        // The first ASCII byte from a random position on (wrapping), so multi-byte UTF-8
        // sequences stay intact.
        let Some(at) = (start..payload.len()).chain(0..start).find(|&i| payload[i].is_ascii()) else {
            break;
        };
        payload[at] = match mode {
            CorruptMode::Garble => CONTROL[rng.random_range(0..CONTROL.len())],
            // Bits 0..=4 only: a printable byte stays printable and never becomes a newline.
            CorruptMode::Flip => payload[at] ^ (1 << rng.random_range(0..5)),
        };
    }
    true
}

/// Cuts the payload at a random point, always removing its last non-blank byte (so a JSON
/// object can never survive as a shorter valid one) and keeping at least one byte. With
/// `utf8`, the cut falls on a character boundary. Returns false when too short to cut.
pub fn truncate(payload: &mut Vec<u8>, utf8: bool, rng: &mut SmallRng) -> bool {
    let Some(last) = payload.iter().rposition(|b| !b.is_ascii_whitespace()) else { return false };
    if last == 0 {
        return false;
    }
    let mut cut = rng.random_range(1..=last);
    if utf8 {
        // Continuation bytes are 0b10xx_xxxx.
        while cut > 1 && payload[cut] & 0xc0 == 0x80 {
            cut -= 1;
        }
    }
    payload.truncate(cut);
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn garbled_json_never_parses_and_stays_utf8() {
        let mut rng = SmallRng::seed_from_u64(7);
        let msg = r#"{"jsonrpc":"2.0","id":17,"result":{"content":[{"type":"text","text":"Echo: héllo wörld"}]}}"#;
        for _ in 0..2000 {
            let mut p = msg.as_bytes().to_vec();
            assert!(corrupt(&mut p, 1, CorruptMode::Garble, &mut rng));
            assert!(std::str::from_utf8(&p).is_ok());
            assert!(serde_json::from_slice::<serde_json::Value>(&p).is_err(), "{}", String::from_utf8_lossy(&p));
            assert!(!p.contains(&b'\n') && !p.contains(&b'\r'));
        }
    }

    #[test]
    fn flipped_bytes_stay_printable() {
        let mut rng = SmallRng::seed_from_u64(1);
        for _ in 0..500 {
            let mut p = br#"{"a":"bcd"}"#.to_vec();
            corrupt(&mut p, 3, CorruptMode::Flip, &mut rng);
            assert!(p.iter().all(|b| (0x20..0x80).contains(b)), "{p:?}");
        }
    }

    #[test]
    fn truncated_json_never_parses() {
        let mut rng = SmallRng::seed_from_u64(3);
        let msg = "{\"id\":1,\"result\":{\"t\":\"ä€𝄞\"}}  ";
        for _ in 0..2000 {
            let mut p = msg.as_bytes().to_vec();
            assert!(truncate(&mut p, true, &mut rng));
            assert!(!p.is_empty());
            let s = std::str::from_utf8(&p).expect("cut on a character boundary");
            assert!(serde_json::from_str::<serde_json::Value>(s).is_err(), "{s}");
        }
        assert!(!truncate(&mut b"{".to_vec(), false, &mut rng));
    }

    #[test]
    fn jitter_stays_in_range() {
        let mut rng = SmallRng::seed_from_u64(9);
        for _ in 0..1000 {
            let d = jittered(Duration::from_millis(10), Duration::from_millis(4), &mut rng);
            assert!(d >= Duration::from_millis(6) && d <= Duration::from_millis(14));
        }
        assert!(jittered(Duration::from_millis(1), Duration::from_millis(5), &mut rng) <= Duration::from_millis(6));
    }
}
