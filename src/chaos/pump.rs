//! One direction of one proxied connection: reads from one socket, writes to the other.
//!
//! While no fault applies, each chunk is written as soon as it is read (the framer only
//! follows along, so a fault added later takes hold at the next message boundary). When
//! faults apply, chunks go through the framer (whole messages, when a message-level fault
//! applies), the message faults, then the TCP-level shaping queue, and are written when due.
//! The fault table is re-read only when it changed (a `watch` version check per chunk),
//! and a change also wakes an idle pump, so timers such as `reset_peer` start on idle
//! connections too.

use super::faults::{DropAfter, Fault, FaultId, FaultKind};
use super::framing::{Framer, HttpLink, Piece, Sink, Unit};
use super::message_faults;
use super::proxy::FaultTable;
use super::stats::Counters;
use super::tcp_faults::{Close, Scheduler, Shape};
use super::timer;
use bytes::Bytes;
use rand::rngs::SmallRng;
use rand::SeedableRng;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::Instant;

/// Size of each worker thread's read buffer (connections hold none of their own).
const SCRATCH_SIZE: usize = 64 * 1024;
/// Bytes queued by shaping faults beyond which the pump stops reading (backpressure).
const MAX_QUEUED: usize = 4 * 1024 * 1024;

thread_local! {
    static SCRATCH: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(vec![0; SCRATCH_SIZE]);
}

/// What one read produced.
enum Read {
    Data,
    Eof,
    /// Spurious readiness: nothing to read after all.
    Again,
    Failed,
}

/// Writes all of `data`, waiting for room as needed.
async fn write_all(dst: &TcpStream, mut data: &[u8]) -> io::Result<()> {
    while !data.is_empty() {
        match dst.try_write(data) {
            Ok(n) => data = &data[n..],
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => dst.writable().await?,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// How a pump ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// The source closed and everything was forwarded; the destination's write side is shut.
    Eof,
    /// A fault ends the connection: close both sides (with RST when `reset`).
    Kill { reset: bool },
    /// A socket failed.
    Error,
}

/// A fault that applies to this connection and direction, with its per-connection state.
struct Active {
    id: FaultId,
    kind: FaultKind,
    /// When it took hold on this connection.
    since: Instant,
    /// Bytes and messages forwarded before it took hold (limits count from there).
    bytes_before: u64,
    messages_before: u64,
    /// For `drop_connection`: the count (of messages or bytes) after which to close.
    drop_at: Option<u64>,
}

/// The per-connection facts both pumps share.
pub struct Conn {
    pub seed: u64,
    pub index: u64,
    pub stats: Arc<Counters>,
    pub faults: watch::Receiver<Arc<FaultTable>>,
    pub framer: Framer,
    pub link: Option<Arc<HttpLink>>,
}

pub struct Pump {
    upstream: bool,
    seed: u64,
    conn: u64,
    stats: Arc<Counters>,
    faults: watch::Receiver<Arc<FaultTable>>,
    active: Vec<Active>,
    /// Some active fault changes data (anything but timers and slow_close).
    shaping: bool,
    /// Some active fault needs whole messages.
    units: bool,
    /// A `timeout` fault is black-holing this direction.
    paused: bool,
    framer: Framer,
    link: Option<Arc<HttpLink>>,
    sched: Scheduler,
    sink: Sink,
    rng: SmallRng,
    /// Bytes and messages handed to the scheduler so far.
    bytes: u64,
    messages: u64,
    /// A close is queued: read nothing more.
    closing: bool,
}

/// A uniform number in [0, 1) from the seed, the connection and a fault, the same in both
/// pumps of a connection and independent of timing.
pub fn decide(seed: u64, conn: u64, id: FaultId, salt: u64) -> f64 {
    let h = mix(seed ^ mix(conn ^ mix(id.0 ^ mix(salt))));
    (h >> 11) as f64 / (1u64 << 53) as f64
}

/// SplitMix64's finaliser.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

const SALT_TOXICITY: u64 = 1;
const SALT_DROP_PICK: u64 = 2;
const SALT_DROP_AT: u64 = 3;

impl Pump {
    pub fn new(upstream: bool, conn: Conn) -> Pump {
        let rng = SmallRng::seed_from_u64(mix(conn.seed ^ mix(conn.index.wrapping_mul(2) + upstream as u64)));
        let mut p = Pump {
            upstream,
            seed: conn.seed,
            conn: conn.index,
            stats: conn.stats,
            faults: conn.faults,
            active: Vec::new(),
            shaping: false,
            units: false,
            paused: false,
            framer: conn.framer,
            link: conn.link,
            sched: Scheduler::default(),
            sink: Sink::new(),
            rng,
            bytes: 0,
            messages: 0,
            closing: false,
        };
        p.refresh(Instant::now());
        p
    }

    /// Re-reads the fault table: which faults apply to this connection and direction.
    fn refresh(&mut self, now: Instant) {
        let table = self.faults.borrow_and_update().clone();
        let mut next = Vec::with_capacity(table.faults.len());
        for (id, fault) in &table.faults {
            if !fault.direction.covers(self.upstream)
                || decide(self.seed, self.conn, *id, SALT_TOXICITY) >= fault.toxicity
            {
                continue;
            }
            let kept = self.active.iter().position(|a| a.id == *id && a.kind.name() == fault.name());
            let active = match kept {
                Some(i) => {
                    let mut a = self.active.swap_remove(i);
                    a.kind = fault.kind.clone();
                    Some(a)
                }
                None => self.activate(*id, fault, now),
            };
            next.extend(active);
        }
        self.active = next;
        self.units = self.active.iter().any(|a| a.kind.is_message_level());
        self.paused = self.active.iter().any(|a| matches!(a.kind, FaultKind::Timeout { .. }));
        self.shaping =
            self.active.iter().any(|a| !matches!(a.kind, FaultKind::ResetPeer { .. } | FaultKind::SlowClose { .. }));
    }

    /// A fault takes hold on this connection (or, for `drop_connection`, is passed over).
    fn activate(&mut self, id: FaultId, fault: &Fault, now: Instant) -> Option<Active> {
        let mut drop_at = None;
        match &fault.kind {
            FaultKind::DropConnection { probability, after } => {
                if decide(self.seed, self.conn, id, SALT_DROP_PICK) >= *probability {
                    return None;
                }
                let (min, max) = match *after {
                    DropAfter::Messages { min, max } | DropAfter::Bytes { min, max } => (min, max),
                };
                let span = (max - min).saturating_add(1) as f64;
                drop_at = Some(min + (decide(self.seed, self.conn, id, SALT_DROP_AT) * span) as u64);
            }
            FaultKind::Timeout { .. } if self.counts_once(fault) => {
                self.stats.add(&self.stats.connections_blackholed, 1);
            }
            _ => {}
        }
        Some(Active {
            id,
            kind: fault.kind.clone(),
            since: now,
            bytes_before: self.bytes,
            messages_before: self.messages,
            drop_at,
        })
    }

    /// Whether this pump counts a per-connection event of `fault` (one pump of the two
    /// when the fault covers both directions).
    fn counts_once(&self, fault: &Fault) -> bool {
        fault.direction.covers(self.upstream) && !(fault.direction == super::Stream::Both && self.upstream)
    }

    /// The earliest timer of an active fault: (when, reset?).
    fn next_kill(&self) -> Option<(Instant, bool)> {
        self.active
            .iter()
            .filter_map(|a| match a.kind {
                FaultKind::ResetPeer { timeout } => Some((a.since + timeout, true)),
                FaultKind::Timeout { timeout } if !timeout.is_zero() => Some((a.since + timeout, false)),
                _ => None,
            })
            .min_by_key(|(t, _)| *t)
    }

    fn counter(&self) -> &std::sync::atomic::AtomicU64 {
        if self.upstream {
            &self.stats.bytes_upstream
        } else {
            &self.stats.bytes_downstream
        }
    }

    /// Forwards `src` to `dst` until the source ends or a fault ends the connection.
    pub async fn run(mut self, src: &TcpStream, dst: &TcpStream) -> End {
        // The next wake-up (a segment due, a fault's timer) and its deadline.
        let mut sleep: Option<(Instant, Pin<Box<timer::Sleep>>)> = None;
        let mut eof = false;
        let mut changed = false;
        loop {
            // `changed()` below marks the new table seen, so it also sets `changed`.
            if std::mem::take(&mut changed) || self.faults.has_changed().unwrap_or(false) {
                self.refresh(Instant::now());
            }
            let now = Instant::now();
            if let Some((at, reset)) = self.next_kill() {
                if at <= now {
                    let counter = if reset { &self.stats.connections_reset } else { &self.stats.connections_timed_out };
                    self.stats.add(counter, 1);
                    return End::Kill { reset };
                }
            }
            if !self.paused {
                while let Some(seg) = self.sched.pop_due(now) {
                    if !seg.data.is_empty() {
                        if write_all(dst, &seg.data).await.is_err() {
                            return End::Error;
                        }
                        self.stats.add(self.counter(), seg.data.len() as u64);
                    }
                    if let Some(close) = seg.close {
                        let counter = match close {
                            Close::Dropped => &self.stats.connections_dropped,
                            Close::Limited => &self.stats.connections_limited,
                        };
                        self.stats.add(counter, 1);
                        return End::Kill { reset: false };
                    }
                }
                if eof && self.sched.is_empty() {
                    return self.close_write(dst).await;
                }
            }
            let mut deadline = self.next_kill().map(|(t, _)| t);
            if !self.paused {
                deadline = match (deadline, self.sched.next_release()) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
            }
            match deadline {
                Some(t) if sleep.as_ref().is_some_and(|(at, _)| *at == t) => {}
                Some(t) => sleep = Some((t, Box::pin(timer::sleep_until(t)))),
                None => sleep = None,
            }
            let can_read = !eof && !self.paused && !self.closing && self.sched.queued_bytes() < MAX_QUEUED;
            tokio::select! {
                biased;
                r = self.faults.changed() => {
                    if r.is_err() {
                        // The proxy is gone.
                        return End::Kill { reset: false };
                    }
                    changed = true;
                }
                _ = std::future::poll_fn(|cx| match &mut sleep {
                    Some((_, s)) => s.as_mut().poll(cx),
                    None => std::task::Poll::Pending,
                }), if sleep.is_some() => sleep = None,
                r = src.readable(), if can_read => {
                    if r.is_err() {
                        return End::Error;
                    }
                    match self.read_chunk(src, dst) {
                        Read::Data | Read::Again => {}
                        Read::Eof => {
                            eof = true;
                            let mut sink = std::mem::take(&mut self.sink);
                            self.framer.finish(&mut sink);
                            self.forward_pieces(&mut sink, Instant::now());
                            self.sink = sink;
                        }
                        Read::Failed => return End::Error,
                    }
                }
            }
        }
    }

    /// Reads what is there into the worker thread's scratch buffer and deals with it at
    /// once: written straight through on the fast path (what the socket does not take is
    /// queued), or run through framing and faults into the queue. Nothing waits here, so
    /// no buffer is held per connection.
    fn read_chunk(&mut self, src: &TcpStream, dst: &TcpStream) -> Read {
        SCRATCH.with_borrow_mut(|buf| {
            let n = match src.try_read(buf) {
                Ok(0) => return Read::Eof,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Read::Again,
                Err(_) => return Read::Failed,
            };
            let data = &buf[..n];
            let now = Instant::now();
            if !self.shaping && self.sched.is_empty() && self.framer.idle() {
                // The fast path: no fault touches this direction.
                self.framer.track(data);
                self.bytes += n as u64;
                let written = match dst.try_write(data) {
                    Ok(w) => w,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => 0,
                    Err(_) => return Read::Failed,
                };
                self.stats.add(self.counter(), written as u64);
                if written < n {
                    // The destination is full: the rest waits in the queue, due now.
                    self.sched.push_now(Bytes::copy_from_slice(&data[written..]), now);
                }
            } else {
                let mut sink = std::mem::take(&mut self.sink);
                self.framer.push(data, self.units, &mut sink);
                self.forward_pieces(&mut sink, now);
                self.sink = sink;
            }
            Read::Data
        })
    }

    /// The source ended and everything went out: shut the destination's write side, after
    /// the longest `slow_close` delay.
    async fn close_write(&mut self, dst: &TcpStream) -> End {
        let delay = self
            .active
            .iter()
            .filter_map(|a| match a.kind {
                FaultKind::SlowClose { delay } => Some(delay),
                _ => None,
            })
            .max();
        if let Some(delay) = delay {
            self.stats.add(&self.stats.connections_slow_closed, 1);
            tokio::time::sleep(delay).await;
        }
        let _ = socket2::SockRef::from(dst).shutdown(std::net::Shutdown::Write);
        End::Eof
    }

    /// Runs the framer's output through the message faults and into the queue.
    fn forward_pieces(&mut self, sink: &mut Sink, now: Instant) {
        let shape = Shape::of(self.active.iter().map(|a| &a.kind), &mut self.rng, &self.stats);
        for piece in sink.take() {
            if self.closing {
                break;
            }
            match piece {
                Piece::Raw(b) => self.schedule(b, now + shape.latency, &shape),
                Piece::Unit(u) => self.unit(u, now, &shape),
            }
        }
    }

    fn unit(&mut self, mut unit: Unit, now: Instant, shape: &Shape) {
        if !self.units {
            // No message fault applies (any more): the message goes out as it came.
            return self.schedule(unit.encode(), now + shape.latency, shape);
        }
        self.stats.add(&self.stats.messages_seen, 1);
        let faults = self.active.iter().map(|a| &a.kind).filter(|k| k.is_message_level());
        let verdict = message_faults::apply(faults, &mut unit, &mut self.rng, &self.stats);
        if let (Some(link), true) = (&self.link, unit.is_http_request()) {
            match verdict.copies {
                0 => link.request_dropped(),
                2 => link.request_sent(true),
                _ => {}
            }
        }
        if verdict.copies == 0 {
            return;
        }
        let bytes = unit.encode();
        let at = now + shape.latency + verdict.delay;
        for _ in 1..verdict.copies {
            self.schedule(bytes.clone(), at, shape);
        }
        self.messages += 1;
        let drop = self.active.iter().any(|a| {
            matches!(a.kind, FaultKind::DropConnection { after: DropAfter::Messages { .. }, .. })
                && a.drop_at.is_some_and(|n| self.messages - a.messages_before >= n)
        });
        self.schedule_with(bytes, at, shape, drop.then_some(Close::Dropped));
    }

    fn schedule(&mut self, data: Bytes, at: Instant, shape: &Shape) {
        self.schedule_with(data, at, shape, None);
    }

    /// Queues bytes, cut short where a byte limit (`limit_data`, `drop_connection` by bytes)
    /// ends the connection.
    fn schedule_with(&mut self, mut data: Bytes, at: Instant, shape: &Shape, mut close: Option<Close>) {
        if self.closing {
            return;
        }
        for a in &self.active {
            let (limit, why) = match a.kind {
                FaultKind::LimitData { bytes } => (bytes, Close::Limited),
                FaultKind::DropConnection { after: DropAfter::Bytes { .. }, .. } => {
                    (a.drop_at.unwrap_or(u64::MAX), Close::Dropped)
                }
                _ => continue,
            };
            let left = (a.bytes_before + limit).saturating_sub(self.bytes);
            if data.len() as u64 >= left {
                data.truncate(left as usize);
                close = Some(why);
            }
        }
        self.bytes += data.len() as u64;
        self.closing = close.is_some();
        self.sched.push(data, at, shape, close, &mut self.rng, &self.stats);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decisions_are_uniform_and_repeatable() {
        let n = 100_000;
        let hits = (0..n).filter(|c| decide(42, *c, FaultId(1), SALT_TOXICITY) < 0.3).count();
        assert!((hits as f64 / n as f64 - 0.3).abs() < 0.01, "{hits}");
        assert_eq!(decide(1, 2, FaultId(3), 4), decide(1, 2, FaultId(3), 4));
        assert_ne!(decide(1, 2, FaultId(3), 4), decide(2, 2, FaultId(3), 4));
    }
}
