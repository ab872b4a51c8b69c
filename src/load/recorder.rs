//! Measurement on the hot path. A [`PhaseRecorder`] has a few shards (twice the runtime's
//! worker threads), each a rarely contended `Mutex<Window>` holding this second's counters
//! and one HdrHistogram per request kind: never a histogram per connection. Once a second
//! the ticker swaps every shard's window for an empty spare (O(1) under the lock) and folds
//! the taken windows into an [`Accumulator`]: cumulative counters and histograms plus one
//! [`TimelineEntry`]. Worker processes also ship each folded second as a [`WindowSnap`].

use super::error::LoadError;
use super::result::{self, Counts, KindResult, TimelineEntry};
use crate::client::ErrorKind;
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// How one request (or connect) ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    /// A failure other than a timeout (its kind: `rpc_-32000`, `transport`, ...).
    Error(ErrorKind),
    Timeout,
    /// Abandoned when the phase was cancelled or its drain time ran out.
    Cancelled,
}

impl Outcome {
    /// Whether a latency is worth recording: the server answered.
    fn has_latency(self) -> bool {
        matches!(self, Outcome::Ok | Outcome::Error(ErrorKind::Rpc(_) | ErrorKind::Http(_)))
    }
}

/// One kind's share of a window.
pub struct KindWindow {
    pub sent: u64,
    pub ok: u64,
    pub timeouts: u64,
    pub cancelled: u64,
    pub resent: u64,
    pub errors: Vec<(ErrorKind, u64)>,
    pub hist: Histogram<u64>,
}

impl KindWindow {
    fn new() -> KindWindow {
        KindWindow {
            sent: 0,
            ok: 0,
            timeouts: 0,
            cancelled: 0,
            resent: 0,
            errors: Vec::new(),
            hist: result::new_hist(),
        }
    }

    fn reset(&mut self) {
        (self.sent, self.ok, self.timeouts, self.cancelled, self.resent) = (0, 0, 0, 0, 0);
        self.errors.clear();
        if !self.hist.is_empty() {
            self.hist.reset();
        }
    }

    fn counts(&self) -> Counts {
        let mut c = Counts {
            sent: self.sent,
            ok: self.ok,
            timeouts: self.timeouts,
            cancelled: self.cancelled,
            resent: self.resent,
            ..Default::default()
        };
        for (k, n) in &self.errors {
            *c.errors.entry(k.to_string()).or_default() += n;
        }
        c
    }
}

/// What one shard saw since the last tick.
pub struct Window {
    pub kinds: Vec<KindWindow>,
    pub dropped: u64,
}

impl Window {
    pub fn new(kinds: usize) -> Window {
        Window { kinds: (0..kinds).map(|_| KindWindow::new()).collect(), dropped: 0 }
    }

    fn reset(&mut self) {
        self.kinds.iter_mut().for_each(KindWindow::reset);
        self.dropped = 0;
    }
}

/// A folded second in serialisable form (worker -> coordinator).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WindowSnap {
    pub t: u32,
    pub span: f64,
    pub open_sessions: i64,
    pub dropped: u64,
    /// Per kind, in the recorder's kind order: counters and the second's histogram.
    pub kinds: Vec<(Counts, String)>,
}

/// The sharded recorder of one phase (or of its session set-up).
pub struct PhaseRecorder {
    shards: Box<[Mutex<Window>]>,
    kinds: usize,
    /// Sessions open in this process, shared by the recorders of a phase.
    pub open_sessions: Arc<AtomicI64>,
}

impl PhaseRecorder {
    pub fn new(kinds: usize, open_sessions: Arc<AtomicI64>) -> Arc<PhaseRecorder> {
        let threads = tokio::runtime::Handle::try_current().map(|h| h.metrics().num_workers()).unwrap_or(1);
        let shards = (2 * threads).clamp(1, 16);
        Arc::new(PhaseRecorder {
            shards: (0..shards).map(|_| Mutex::new(Window::new(kinds))).collect(),
            kinds,
            open_sessions,
        })
    }

    pub fn kinds(&self) -> usize {
        self.kinds
    }

    fn shard(&self, n: usize) -> MutexGuard<'_, Window> {
        // A panic while holding a shard leaves plain counters behind; keep using them.
        self.shards[n % self.shards.len()].lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Counts a request of `kind` as sent. `n` picks the shard (a session or request index).
    pub fn sent(&self, n: usize, kind: usize) {
        self.shard(n).kinds[kind].sent += 1;
    }

    /// Records how a request of `kind` ended and how long it took.
    pub fn done(&self, n: usize, kind: usize, outcome: Outcome, latency: Duration) {
        let us = latency.as_micros().min(u64::MAX as u128) as u64;
        let mut w = self.shard(n);
        let k = &mut w.kinds[kind];
        match outcome {
            Outcome::Ok => k.ok += 1,
            Outcome::Timeout => k.timeouts += 1,
            Outcome::Cancelled => k.cancelled += 1,
            Outcome::Error(e) => match k.errors.iter_mut().find(|(x, _)| *x == e) {
                Some((_, c)) => *c += 1,
                None => k.errors.push((e, 1)),
            },
        }
        if outcome.has_latency() {
            k.hist.saturating_record(us);
        }
    }

    /// Another attempt of a request of `kind` already counted as sent.
    pub fn resent(&self, n: usize, kind: usize) {
        self.shard(n).kinds[kind].resent += 1;
    }

    /// Sent and done at once (connect attempts, requests refused before sending).
    pub fn sent_done(&self, n: usize, kind: usize, outcome: Outcome, latency: Duration) {
        self.sent(n, kind);
        self.done(n, kind, outcome, latency);
    }

    /// An arrival dropped because too many requests were in flight.
    pub fn dropped(&self, n: usize) {
        self.shard(n).dropped += 1;
    }

    /// Swaps every shard's window for a spare and folds the taken ones as second `t`.
    pub fn fold(&self, acc: &mut Accumulator, spares: &mut [Window], t: u32, span: f64) -> WindowSnap {
        for (i, shard) in self.shards.iter().enumerate() {
            let mut w = shard.lock().unwrap_or_else(|e| e.into_inner());
            std::mem::swap(&mut *w, &mut spares[i]);
        }
        let open = self.open_sessions.load(Ordering::Relaxed);
        let snap = acc.fold(spares, t, span, open);
        spares.iter_mut().for_each(Window::reset);
        snap
    }

    /// Fresh spare windows for [`fold`](Self::fold).
    pub fn spares(&self) -> Vec<Window> {
        (0..self.shards.len()).map(|_| Window::new(self.kinds)).collect()
    }
}

/// Cumulative counters and histograms of a recorder, and its timeline.
pub struct Accumulator {
    pub names: Vec<String>,
    /// The first `main` kinds make the phase's totals and timeline; the rest (connects)
    /// are kept apart.
    pub main: usize,
    pub cum: Vec<(Counts, Histogram<u64>)>,
    pub dropped: u64,
    pub timeline: Vec<TimelineEntry>,
    /// Keep every second's histogram in the timeline (for exact merges).
    pub keep_hists: bool,
    second: Histogram<u64>,
    kind_second: Histogram<u64>,
}

impl Accumulator {
    pub fn new(names: Vec<String>, main: usize) -> Accumulator {
        Accumulator {
            cum: names.iter().map(|_| (Counts::default(), result::new_hist())).collect(),
            main: main.min(names.len()),
            names,
            dropped: 0,
            timeline: Vec::new(),
            keep_hists: true,
            second: result::new_hist(),
            kind_second: result::new_hist(),
        }
    }

    /// Folds windows (one per shard) as second `t`, returning them as a snapshot.
    pub fn fold(&mut self, windows: &[Window], t: u32, span: f64, open_sessions: i64) -> WindowSnap {
        let mut snap = WindowSnap { t, span, open_sessions, dropped: 0, kinds: Vec::with_capacity(self.names.len()) };
        let mut entry = TimelineEntry { t, span, open_sessions, ..Default::default() };
        self.second.reset();
        for k in 0..self.names.len() {
            let mut counts = Counts::default();
            self.kind_second.reset();
            for w in windows {
                let kw = &w.kinds[k];
                counts.add(&kw.counts());
                if !kw.hist.is_empty() {
                    // Same bounds everywhere, so adding cannot fail.
                    let _ = self.kind_second.add(&kw.hist);
                }
            }
            snap.kinds.push((counts, result::encode(&self.kind_second)));
        }
        snap.dropped = windows.iter().map(|w| w.dropped).sum();
        self.apply(&snap, &mut entry);
        snap
    }

    /// Folds a snapshot received from a worker process.
    pub fn fold_snap(&mut self, snap: &WindowSnap) -> Result<(), LoadError> {
        if snap.kinds.len() != self.names.len() {
            return Err(LoadError::WindowKinds { got: snap.kinds.len(), expected: self.names.len() });
        }
        let mut entry =
            TimelineEntry { t: snap.t, span: snap.span, open_sessions: snap.open_sessions, ..Default::default() };
        self.second.reset();
        self.apply(snap, &mut entry);
        Ok(())
    }

    fn apply(&mut self, snap: &WindowSnap, entry: &mut TimelineEntry) {
        for (k, (counts, hist)) in snap.kinds.iter().enumerate() {
            let h = match result::decode(hist) {
                Ok(h) => h,
                Err(_) => continue,
            };
            let (cum_counts, cum_hist) = &mut self.cum[k];
            cum_counts.add(counts);
            let _ = cum_hist.add(&h);
            if k < self.main {
                entry.sent += counts.sent;
                entry.ok += counts.ok;
                entry.errors += counts.error_total();
                entry.timeouts += counts.timeouts;
                entry.cancelled += counts.cancelled;
                entry.resent += counts.resent;
                let _ = self.second.add(&h);
            }
        }
        self.dropped += snap.dropped;
        entry.dropped = snap.dropped;
        entry.hist = if self.keep_hists { result::encode(&self.second) } else { String::new() };
        let l = result::LatencyStats::of(&self.second);
        (entry.p50, entry.p90, entry.p99, entry.max) = (l.p50, l.p90, l.p99, l.max);
        entry.throughput = if entry.span > 0.0 { (entry.ok + entry.errors) as f64 / entry.span } else { 0.0 };
        let quiet = entry.sent + entry.ok + entry.errors + entry.timeouts + entry.cancelled + entry.dropped == 0;
        // Trailing idle seconds of a finished phase are not worth a line; keep the rest.
        if !(quiet && entry.span < 1.0 && !self.timeline.is_empty()) {
            self.timeline.push(std::mem::take(entry));
        }
    }

    /// Kind `k` as a result.
    pub fn kind_result(&self, k: usize) -> KindResult {
        let (c, h) = &self.cum[k];
        KindResult::from_hist(c.clone(), h)
    }

    /// The main kinds together: counters and merged histogram.
    pub fn main_total(&self) -> (Counts, Histogram<u64>) {
        let mut counts = Counts::default();
        let mut h = result::new_hist();
        for (c, kh) in &self.cum[..self.main] {
            counts.add(c);
            let _ = h.add(kh);
        }
        (counts, h)
    }
}

/// Receives each folded second (worker processes stream them to the coordinator).
pub type Sink = Box<dyn FnMut(&WindowSnap) + Send>;

/// The once-a-second fold, on a thread of its own: the timeline stays true to the clock
/// even when the runtime is saturated by the load it measures.
pub struct Ticker {
    stop: std::sync::mpsc::Sender<()>,
    done: tokio::sync::oneshot::Receiver<Accumulator>,
    names: (Vec<String>, usize),
}

impl Ticker {
    /// Folds the last partial second and hands the accumulator back.
    pub async fn finish(self) -> Accumulator {
        let _ = self.stop.send(());
        match self.done.await {
            Ok(acc) => acc,
            Err(_) => Accumulator::new(self.names.0, self.names.1),
        }
    }
}

/// Starts folding `rec` into `acc` once a second (second 0 starts now).
pub fn spawn_ticker(rec: Arc<PhaseRecorder>, mut acc: Accumulator, mut sink: Option<Sink>) -> Ticker {
    let (stop, stop_rx) = std::sync::mpsc::channel::<()>();
    let (done_tx, done) = tokio::sync::oneshot::channel();
    let names = (acc.names.clone(), acc.main);
    let started = Instant::now();
    let spawned = std::thread::Builder::new().name("load ticker".into()).spawn(move || {
        let mut spares = rec.spares();
        let mut t: u32 = 0;
        loop {
            let next = started + Duration::from_secs(t as u64 + 1);
            match stop_rx.recv_timeout(next.saturating_duration_since(Instant::now())) {
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                _ => break,
            }
            let snap = rec.fold(&mut acc, &mut spares, t, 1.0);
            if let Some(s) = sink.as_mut() {
                s(&snap);
            }
            t += 1;
        }
        let span = (started.elapsed().as_secs_f64() - t as f64).clamp(0.0, 1.0);
        let snap = rec.fold(&mut acc, &mut spares, t, span);
        if let Some(s) = sink.as_mut() {
            s(&snap);
        }
        let _ = done_tx.send(acc);
    });
    if spawned.is_err() {
        tracing::warn!("cannot start the load ticker thread; the phase reports no timeline");
    }
    Ticker { stop, done, names }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn folds_shards_into_a_timeline() {
        let open = Arc::new(AtomicI64::new(3));
        let rec = PhaseRecorder::new(2, open);
        let mut acc = Accumulator::new(vec!["a".into(), "connect".into()], 1);
        let mut spares = rec.spares();
        for i in 0..10 {
            rec.sent(i, 0);
            let o = if i < 8 { Outcome::Ok } else { Outcome::Error(ErrorKind::Rpc(-32000)) };
            rec.done(i, 0, o, Duration::from_millis(i as u64 + 1));
        }
        rec.sent_done(0, 1, Outcome::Timeout, Duration::from_secs(1));
        rec.dropped(5);
        let snap = rec.fold(&mut acc, &mut spares, 0, 1.0);
        assert_eq!(snap.kinds[0].0.sent, 10);
        assert_eq!(snap.kinds[0].0.errors["rpc_-32000"], 2);
        rec.sent(1, 0);
        rec.done(1, 0, Outcome::Cancelled, Duration::ZERO);
        rec.fold(&mut acc, &mut spares, 1, 0.5);
        let (total, h) = acc.main_total();
        assert_eq!((total.sent, total.ok, total.cancelled), (11, 8, 1));
        assert!(total.balanced());
        assert_eq!(h.len(), 10);
        assert_eq!(acc.timeline.len(), 2);
        assert_eq!(acc.timeline[0].open_sessions, 3);
        assert_eq!(acc.timeline[0].dropped, 1);
        assert_eq!(acc.timeline[0].throughput, 10.0);
        assert_eq!(acc.kind_result(1).counts.timeouts, 1);
        // The same seconds folded from snapshots give the same totals.
        let mut other = Accumulator::new(vec!["a".into(), "connect".into()], 1);
        other.fold_snap(&snap).unwrap();
        assert_eq!(other.main_total().0.ok, 8);
    }
}
