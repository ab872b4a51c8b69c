//! TCP-level shaping of one direction: a queue of segments, each with the instant it may
//! be written. Latency (with jitter), loss (a segment held back for a retransmission
//! timeout), bandwidth and slicing only ever push release times later, and a segment
//! never leaves before the one ahead of it, so order is kept as TCP keeps it.

use super::faults::FaultKind;
use super::message_faults::jittered;
use super::stats::Counters;
use bytes::Bytes;
use rand::rngs::SmallRng;
use rand::Rng;
use std::collections::VecDeque;
use std::time::Duration;
use tokio::time::Instant;

/// Why the connection closes once a segment is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Close {
    /// `drop_connection` picked this connection.
    Dropped,
    /// `limit_data` reached its byte count.
    Limited,
}

/// Bytes waiting to be written.
#[derive(Debug)]
pub struct Segment {
    pub data: Bytes,
    pub release: Instant,
    /// Close the connection right after writing this segment.
    pub close: Option<Close>,
}

/// How the active faults shape one input chunk (latency is sampled once per chunk).
#[derive(Debug, Default)]
pub struct Shape {
    pub latency: Duration,
    slicer: Option<(u64, u64, Duration)>,
    loss: Vec<(f64, Duration)>,
    /// The smallest rate of any bandwidth fault, KB/s.
    bandwidth: Option<u64>,
}

impl Shape {
    /// Collects the TCP-level faults among `faults` for one chunk.
    pub fn of<'a>(faults: impl Iterator<Item = &'a FaultKind>, rng: &mut SmallRng, stats: &Counters) -> Shape {
        let mut s = Shape::default();
        for kind in faults {
            match *kind {
                FaultKind::Latency { latency, jitter } => s.latency += jittered(latency, jitter, rng),
                FaultKind::Slicer { average_size, size_variation, delay } => {
                    s.slicer = Some((average_size, size_variation, delay))
                }
                FaultKind::Loss { probability, rto } => s.loss.push((probability, rto)),
                FaultKind::Bandwidth { rate } => s.bandwidth = Some(s.bandwidth.map_or(rate, |r| r.min(rate))),
                _ => {}
            }
        }
        if !s.latency.is_zero() {
            stats.add(&stats.chunks_delayed, 1);
        }
        s
    }
}

#[derive(Debug, Default)]
pub struct Scheduler {
    queue: VecDeque<Segment>,
    queued_bytes: usize,
    /// Release time of the last segment queued: nothing may leave before it.
    last_release: Option<Instant>,
    /// When the bandwidth budget allows the next byte.
    bandwidth_free: Option<Instant>,
}

impl Scheduler {
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    pub fn queued_bytes(&self) -> usize {
        self.queued_bytes
    }

    /// When the first segment may be written.
    pub fn next_release(&self) -> Option<Instant> {
        self.queue.front().map(|s| s.release)
    }

    /// The first segment if it is due at `now`.
    pub fn pop_due(&mut self, now: Instant) -> Option<Segment> {
        if self.queue.front()?.release > now {
            return None;
        }
        let seg = self.queue.pop_front()?;
        self.queued_bytes -= seg.data.len();
        Some(seg)
    }

    /// Queues bytes that must go out next, before anything read later (what a full socket
    /// did not take on the fast path).
    pub fn push_now(&mut self, data: Bytes, now: Instant) {
        self.queued_bytes += data.len();
        self.last_release = Some(self.last_release.map_or(now, |l| l.max(now)));
        self.queue.push_back(Segment { data, release: now, close: None });
    }

    /// Queues `data`, which arrived so that it may leave at `at` at the earliest.
    pub fn push(
        &mut self,
        data: Bytes,
        at: Instant,
        shape: &Shape,
        close: Option<Close>,
        rng: &mut SmallRng,
        stats: &Counters,
    ) {
        let mut pieces = match shape.slicer {
            Some((avg, var, _)) => slices(data, avg, var, rng),
            None => vec![data],
        };
        if let Some(rate) = shape.bandwidth {
            // Pieces of at most 100 ms worth of bandwidth, so the rate is smooth.
            let most = (rate * 100).max(1) as usize;
            pieces = pieces.into_iter().flat_map(|p| split_every(p, most)).collect();
        }
        if shape.slicer.is_some() {
            stats.add(&stats.slices, pieces.len() as u64);
        }
        let slice_delay = shape.slicer.map_or(Duration::ZERO, |(.., d)| d);
        let count = pieces.len();
        let mut t = at;
        for (i, piece) in pieces.into_iter().enumerate() {
            if i > 0 {
                t += slice_delay;
            }
            let mut release = t;
            for &(p, rto) in &shape.loss {
                if rng.random::<f64>() < p {
                    stats.add(&stats.segments_held_back, 1);
                    release += rto;
                }
            }
            if let Some(last) = self.last_release {
                release = release.max(last);
            }
            if let Some(rate) = shape.bandwidth {
                if let Some(free) = self.bandwidth_free {
                    release = release.max(free);
                }
                let secs = piece.len() as f64 / (rate as f64 * 1000.0);
                self.bandwidth_free = Some(release + Duration::from_secs_f64(secs));
            }
            self.last_release = Some(release);
            self.queued_bytes += piece.len();
            let close = if i + 1 == count { close } else { None };
            self.queue.push_back(Segment { data: piece, release, close });
        }
    }
}

/// Cuts `data` into slices of `avg` ± `var` bytes.
fn slices(mut data: Bytes, avg: u64, var: u64, rng: &mut SmallRng) -> Vec<Bytes> {
    let mut out = Vec::new();
    while !data.is_empty() {
        let size = if var == 0 { avg } else { rng.random_range(avg - var..=avg + var) }.max(1) as usize;
        out.push(data.split_to(size.min(data.len())));
    }
    if out.is_empty() {
        out.push(data);
    }
    out
}

fn split_every(mut data: Bytes, most: usize) -> Vec<Bytes> {
    let mut out = Vec::new();
    while data.len() > most {
        out.push(data.split_to(most));
    }
    out.push(data);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn shape(kinds: &[FaultKind]) -> Shape {
        Shape::of(kinds.iter(), &mut SmallRng::seed_from_u64(1), &Counters::default())
    }

    #[test]
    fn keeps_order_and_delays_by_latency() {
        let mut s = Scheduler::default();
        let mut rng = SmallRng::seed_from_u64(5);
        let stats = Counters::default();
        let t0 = Instant::now();
        let jittery = FaultKind::Latency { latency: Duration::from_millis(50), jitter: Duration::from_millis(40) };
        for i in 0..100 {
            let sh = Shape::of([&jittery].into_iter(), &mut rng, &stats);
            s.push(Bytes::from(vec![i as u8]), t0 + Duration::from_micros(i) + sh.latency, &sh, None, &mut rng, &stats);
        }
        let mut last = t0;
        let mut n = 0;
        while let Some(seg) = s.pop_due(t0 + Duration::from_secs(1)) {
            assert!(seg.release >= last && seg.release >= t0 + Duration::from_millis(10));
            assert_eq!(seg.data[0], n);
            last = seg.release;
            n += 1;
        }
        assert_eq!(n, 100);
    }

    #[test]
    fn slices_and_limits_bandwidth() {
        let mut s = Scheduler::default();
        let mut rng = SmallRng::seed_from_u64(5);
        let stats = Counters::default();
        let t0 = Instant::now();
        let sh = shape(&[
            FaultKind::Slicer { average_size: 10, size_variation: 5, delay: Duration::from_millis(1) },
            FaultKind::Bandwidth { rate: 1 },
        ]);
        s.push(Bytes::from(vec![0u8; 1000]), t0, &sh, Some(Close::Limited), &mut rng, &stats);
        let mut total = 0;
        let mut last = None;
        while let Some(seg) = s.pop_due(t0 + Duration::from_secs(5)) {
            assert!((5..=15).contains(&seg.data.len()));
            total += seg.data.len();
            last = Some(seg);
        }
        let last = last.unwrap();
        assert_eq!(total, 1000);
        assert_eq!(last.close, Some(Close::Limited));
        // 1000 bytes at 1 KB/s: the last slice leaves close to one second in.
        let at = last.release - t0;
        assert!(at > Duration::from_millis(950) && at < Duration::from_millis(1000), "{at:?}");
    }

    #[test]
    fn loss_holds_segments_back_in_order() {
        let mut s = Scheduler::default();
        let mut rng = SmallRng::seed_from_u64(2);
        let stats = Counters::default();
        let t0 = Instant::now();
        let sh = shape(&[FaultKind::Loss { probability: 1.0, rto: Duration::from_millis(200) }]);
        s.push(Bytes::from_static(b"a"), t0, &sh, None, &mut rng, &stats);
        s.push(Bytes::from_static(b"b"), t0, &Shape::default(), None, &mut rng, &stats);
        assert!(s.pop_due(t0 + Duration::from_millis(199)).is_none());
        assert_eq!(&s.pop_due(t0 + Duration::from_millis(200)).unwrap().data[..], b"a");
        assert_eq!(&s.pop_due(t0 + Duration::from_millis(200)).unwrap().data[..], b"b");
        assert_eq!(stats.snapshot().segments_held_back, 1);
    }
}
