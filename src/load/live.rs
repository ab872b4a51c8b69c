//! The live view of a running phase, for the console's progress display. Nothing is added
//! to the request path: the once-a-second fold (the ticker thread of this process, or the
//! coordinator receiving a worker process's `tick`) hands each folded second to
//! [`PhaseLive`], which adds its counters up; the display reads them whenever it redraws.

use super::plan::{Model, PhasePlan};
use super::recorder::{Sink, WindowSnap};
use crate::util::lock;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// What a running phase has done so far, as of its last folded second.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LiveFigures {
    pub sent: u64,
    pub ok: u64,
    pub errors: u64,
    pub timeouts: u64,
    /// Replies per second (ok + errors) in the last whole second folded.
    pub rate: f64,
    /// Sessions open at the last fold (set-up or load).
    pub open_sessions: i64,
    /// The load runs (the sessions are open).
    pub loading: bool,
}

/// The latest second seen (worker processes each fold their own; their seconds line up).
#[derive(Default)]
struct Second {
    t: u32,
    seen: bool,
    rate: f64,
    open: i64,
}

/// Counters of one running phase, fed by its folds.
pub struct PhaseLive {
    pub name: String,
    /// `closed`, `open` or `connect`.
    pub model: &'static str,
    /// Sessions the phase opens.
    pub sessions: u64,
    /// Kinds counted in the totals (the rest are the load's reconnects).
    main: usize,
    sent: AtomicU64,
    ok: AtomicU64,
    errors: AtomicU64,
    timeouts: AtomicU64,
    loading: AtomicBool,
    second: Mutex<Second>,
    setup: Mutex<Second>,
}

impl PhaseLive {
    pub fn for_plan(plan: &PhasePlan) -> Arc<PhaseLive> {
        let main = match plan.model {
            Model::Connect { .. } => 1,
            _ => plan.mix.len().max(1),
        };
        Arc::new(PhaseLive {
            name: plan.name.clone(),
            model: plan.model.kind().as_str(),
            sessions: plan.model.sessions(),
            main,
            sent: AtomicU64::new(0),
            ok: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            timeouts: AtomicU64::new(0),
            loading: AtomicBool::new(false),
            second: Mutex::new(Second::default()),
            setup: Mutex::new(Second::default()),
        })
    }

    /// Adds a folded second of load (of this process or of one worker process).
    pub fn load_second(&self, snap: &WindowSnap) {
        let (mut sent, mut ok, mut errors, mut timeouts) = (0, 0, 0, 0);
        for (c, _) in snap.kinds.iter().take(self.main) {
            sent += c.sent;
            ok += c.ok;
            errors += c.error_total();
            timeouts += c.timeouts;
        }
        // Relaxed: display counters, read once per redraw; no ordering with anything else.
        self.sent.fetch_add(sent, Ordering::Relaxed);
        self.ok.fetch_add(ok, Ordering::Relaxed);
        self.errors.fetch_add(errors, Ordering::Relaxed);
        self.timeouts.fetch_add(timeouts, Ordering::Relaxed);
        self.loading.store(true, Ordering::Relaxed);
        // The last partial second is too short to give a rate worth showing.
        let rate = if snap.span >= 0.5 { Some((ok + errors) as f64 / snap.span) } else { None };
        note(&self.second, snap, rate);
    }

    /// The sessions are open and the load starts.
    pub fn load_started(&self) {
        self.loading.store(true, Ordering::Relaxed);
    }

    /// Notes a folded second of the session set-up.
    pub fn setup_second(&self, snap: &WindowSnap) {
        note(&self.setup, snap, None);
    }

    pub fn figures(&self) -> LiveFigures {
        let loading = self.loading.load(Ordering::Relaxed);
        let (rate, open) = {
            let s = if loading { &self.second } else { &self.setup };
            let s = lock(s);
            (s.rate, s.open)
        };
        LiveFigures {
            sent: self.sent.load(Ordering::Relaxed),
            ok: self.ok.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
            timeouts: self.timeouts.load(Ordering::Relaxed),
            rate,
            open_sessions: open,
            loading,
        }
    }

    /// A fold sink feeding [`load_second`](Self::load_second).
    pub fn load_sink(self: &Arc<Self>) -> Sink {
        let me = self.clone();
        Box::new(move |snap: &WindowSnap| me.load_second(snap))
    }

    /// A fold sink feeding [`setup_second`](Self::setup_second).
    pub fn setup_sink(self: &Arc<Self>) -> Sink {
        let me = self.clone();
        Box::new(move |snap: &WindowSnap| me.setup_second(snap))
    }
}

impl std::fmt::Debug for PhaseLive {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PhaseLive").field("name", &self.name).field("figures", &self.figures()).finish()
    }
}

/// Folds second `snap.t` into `second`: a later second replaces it, the same second (from
/// another worker process) adds to it.
fn note(second: &Mutex<Second>, snap: &WindowSnap, rate: Option<f64>) {
    let mut s = lock(second);
    if !s.seen || snap.t > s.t {
        *s = Second { t: snap.t, seen: true, rate: rate.unwrap_or(s.rate), open: snap.open_sessions };
    } else if snap.t == s.t {
        s.rate += rate.unwrap_or(0.0);
        s.open += snap.open_sessions;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::result::Counts;

    fn snap(t: u32, span: f64, ok: u64, errors: u64, reconnects: u64) -> WindowSnap {
        let mut c = Counts { sent: ok + errors, ok, ..Default::default() };
        if errors > 0 {
            c.errors.insert("rpc_-32000".into(), errors);
        }
        let r = Counts { sent: reconnects, ok: reconnects, ..Default::default() };
        WindowSnap { t, span, open_sessions: 10, dropped: 0, kinds: vec![(c, String::new()), (r, String::new())] }
    }

    #[test]
    fn adds_folded_seconds_and_keeps_the_last_whole_seconds_rate() {
        let live = PhaseLive::for_plan(&PhasePlan::new(
            "p",
            "tcp://127.0.0.1:1",
            Model::Closed { sessions: 10, duration: None, iterations: Some(1), think: None },
        ));
        assert!(!live.figures().loading);
        live.load_second(&snap(0, 1.0, 900, 100, 5));
        let f = live.figures();
        assert_eq!((f.sent, f.ok, f.errors, f.rate, f.open_sessions), (1000, 900, 100, 1000.0, 10));
        assert!(f.loading);
        // A second worker process's same second adds up.
        live.load_second(&snap(0, 1.0, 500, 0, 0));
        assert_eq!(live.figures().rate, 1500.0);
        assert_eq!(live.figures().open_sessions, 20);
        live.load_second(&snap(1, 1.0, 200, 0, 0));
        assert_eq!(live.figures().rate, 200.0);
        // The last, partial second counts but keeps the rate.
        live.load_second(&snap(2, 0.1, 10, 0, 0));
        let f = live.figures();
        assert_eq!((f.sent, f.rate), (1710, 200.0));
    }
}
