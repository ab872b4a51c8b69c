//! How load sessions survive faults, and how their recovery is measured.
//!
//! - [`Resilience`]: the plan's policy: the sessions' [`Policy`] (the one script sessions
//!   use too: reconnect with bounded exponential backoff and seeded jitter, resend
//!   idempotent requests that were in flight when the connection broke and, when asked,
//!   those that timed out), an optional client-side circuit breaker ([`Breaker`]: closed,
//!   open, half-open) and what counts as recovered.
//! - [`Events`]: what happened during a phase on a shared clock: chaos actions the script
//!   took ([`Events::mark`]: kill, restart, a fault added) and, per session, when its
//!   connection broke and when it was re-established ([`Events::broke`],
//!   [`Events::recovered`]); [`recoveries`] turns them into [`Recovery`] results.
//!
//! Resends never count as sent: a request is sent once and ends once (with the outcome of
//! its last attempt), so `sent = ok + errors + timeouts + cancelled` still holds; each
//! extra attempt counts in `resent`. Short-circuited requests are never sent: they count
//! in `short_circuited`, like dropped arrivals.

use super::error::LoadError;
use super::result::{Recovery, TimelineEntry};
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub use crate::client::resilient::{Backoff, Failure, Policy, DEFAULT_IDEMPOTENT};

/// A client-side circuit breaker's settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BreakerPlan {
    /// Opens when the failed fraction of a window's requests reaches this (0 < x <= 1).
    pub error_rate: f64,
    /// Requests a window needs before it can open the breaker.
    pub min_requests: u64,
    /// Length of one measuring window.
    pub window: Duration,
    /// How long the breaker stays open before letting a probe through (half-open).
    pub cool_down: Duration,
}

impl Default for BreakerPlan {
    fn default() -> Self {
        BreakerPlan {
            error_rate: 0.5,
            min_requests: 20,
            window: Duration::from_secs(1),
            cool_down: Duration::from_secs(1),
        }
    }
}

/// The resilience policy of a phase: the sessions' [`Policy`] (shared with script sessions:
/// reconnect, backoff, resends) plus what only a phase has.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Resilience {
    #[serde(flatten)]
    pub policy: Policy,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub breaker: Option<BreakerPlan>,
    /// Recovery is when this fraction of sessions is re-established and answering.
    pub recovery_fraction: f64,
}

impl Default for Resilience {
    fn default() -> Self {
        Resilience { policy: Policy::default(), breaker: None, recovery_fraction: 0.99 }
    }
}

impl Resilience {
    /// Why the policy cannot be used, naming the valid range.
    pub fn validate(&self) -> Result<(), LoadError> {
        self.policy.validate()?;
        if !(self.recovery_fraction > 0.0 && self.recovery_fraction <= 1.0) {
            return Err(LoadError::RecoveryFraction(self.recovery_fraction));
        }
        if let Some(b) = &self.breaker {
            if !(b.error_rate > 0.0 && b.error_rate <= 1.0) {
                return Err(LoadError::BreakerErrorRate(b.error_rate));
            }
            if b.window.is_zero() || b.cool_down.is_zero() {
                return Err(LoadError::BreakerWindow);
            }
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Mode {
    Closed,
    Open {
        until: Instant,
    },
    /// One probe is out; its outcome closes or reopens the breaker.
    HalfOpen,
}

struct BreakerState {
    mode: Mode,
    window_start: Instant,
    total: u64,
    failed: u64,
}

/// A client-side circuit breaker shared by a phase's sessions in one process.
pub struct Breaker {
    plan: BreakerPlan,
    state: Mutex<BreakerState>,
    /// Requests refused while open.
    pub short_circuited: AtomicU64,
    /// Times it opened.
    pub opened: AtomicU64,
}

impl Breaker {
    pub fn new(plan: BreakerPlan) -> Breaker {
        Breaker {
            plan,
            state: Mutex::new(BreakerState { mode: Mode::Closed, window_start: Instant::now(), total: 0, failed: 0 }),
            short_circuited: AtomicU64::new(0),
            opened: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BreakerState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether a request may go out now; a refusal is counted.
    pub fn allow(&self) -> bool {
        let mut s = self.lock();
        let ok = match s.mode {
            Mode::Closed => true,
            Mode::Open { until } if Instant::now() >= until => {
                s.mode = Mode::HalfOpen;
                true
            }
            Mode::Open { .. } | Mode::HalfOpen => false,
        };
        if !ok {
            // Relaxed: a counter read at the end.
            self.short_circuited.fetch_add(1, Ordering::Relaxed);
        }
        ok
    }

    /// How long a refused caller should wait before asking again.
    pub fn retry_in(&self) -> Duration {
        match self.lock().mode {
            Mode::Open { until } => until.saturating_duration_since(Instant::now()).max(Duration::from_millis(1)),
            _ => Duration::from_millis(5),
        }
    }

    /// Records how an allowed request ended.
    pub fn record(&self, failed: bool) {
        let mut s = self.lock();
        let now = Instant::now();
        match s.mode {
            Mode::HalfOpen => {
                if failed {
                    self.open(&mut s, now);
                } else {
                    s.mode = Mode::Closed;
                    (s.window_start, s.total, s.failed) = (now, 0, 0);
                }
                return;
            }
            Mode::Open { .. } => return,
            Mode::Closed => {}
        }
        if now.duration_since(s.window_start) >= self.plan.window {
            (s.window_start, s.total, s.failed) = (now, 0, 0);
        }
        s.total += 1;
        s.failed += failed as u64;
        if s.total >= self.plan.min_requests.max(1) && s.failed as f64 >= self.plan.error_rate * s.total as f64 {
            self.open(&mut s, now);
        }
    }

    fn open(&self, s: &mut BreakerState, now: Instant) {
        s.mode = Mode::Open { until: now + self.plan.cool_down };
        (s.window_start, s.total, s.failed) = (now, 0, 0);
        self.opened.fetch_add(1, Ordering::Relaxed);
    }

    /// The state's name, for logs and tests.
    pub fn state_name(&self) -> &'static str {
        match self.lock().mode {
            Mode::Closed => "closed",
            Mode::Open { .. } => "open",
            Mode::HalfOpen => "half-open",
        }
    }
}

/// A chaos action taken while load ran.
#[derive(Debug, Clone)]
pub struct Mark {
    pub at: Instant,
    pub what: String,
}

#[derive(Debug, Clone, Copy)]
enum SessionEvent {
    Broke(u64, Instant),
    Recovered(u64, Instant),
}

/// Chaos marks and session breaks/recoveries of a run, on one clock. Cheap to share: the
/// session log is only written when a connection breaks or comes back.
#[derive(Debug, Default)]
pub struct Events {
    marks: Mutex<Vec<Mark>>,
    sessions: Mutex<Vec<SessionEvent>>,
}

impl Events {
    pub fn new() -> Arc<Events> {
        Arc::new(Events::default())
    }

    /// Notes a chaos action (kill, restart, fault added) now.
    pub fn mark(&self, what: impl Into<String>) {
        self.marks.lock().unwrap_or_else(|e| e.into_inner()).push(Mark { at: Instant::now(), what: what.into() });
    }

    pub fn marks(&self) -> Vec<Mark> {
        self.marks.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Session `global` lost its connection.
    pub fn broke(&self, global: u64) {
        self.sessions.lock().unwrap_or_else(|e| e.into_inner()).push(SessionEvent::Broke(global, Instant::now()));
    }

    /// Session `global` is re-established (connected and initialized again).
    pub fn recovered(&self, global: u64) {
        self.sessions.lock().unwrap_or_else(|e| e.into_inner()).push(SessionEvent::Recovered(global, Instant::now()));
    }

    /// Forgets session events (a new phase starts).
    pub fn clear_sessions(&self) {
        self.sessions.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }
}

/// Recovery from each chaos mark in `[start, end]`: sessions whose connection broke after
/// the mark (and before the next one) are affected; recovery time is from the mark until
/// `fraction` of all `sessions` are up again (the affected ones re-established), `None` if
/// that never happened before the phase ended. Requests failed and resent are read from
/// the `timeline` seconds the recovery spans (whole seconds, so they include the second of
/// the mark and of the recovery).
pub fn recoveries(
    events: &Events,
    start: Instant,
    end: Instant,
    sessions: u64,
    fraction: f64,
    timeline: &[TimelineEntry],
) -> Vec<Recovery> {
    let marks: Vec<Mark> = events.marks().into_iter().filter(|m| m.at >= start && m.at <= end).collect();
    if marks.is_empty() {
        return Vec::new();
    }
    let log = events.sessions.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let mut out = Vec::new();
    for (i, m) in marks.iter().enumerate() {
        let until = marks.get(i + 1).map(|n| n.at).unwrap_or(end);
        // First break of each session in [m.at, until), and its first recovery after it.
        let mut broke: std::collections::BTreeMap<u64, (Instant, Option<Instant>)> = Default::default();
        for e in &log {
            match *e {
                SessionEvent::Broke(s, t) if t >= m.at && t < until => {
                    broke.entry(s).or_insert((t, None));
                }
                SessionEvent::Recovered(s, t) => {
                    if let Some((b, r @ None)) = broke.get_mut(&s) {
                        if t >= *b {
                            *r = Some(t);
                        }
                    }
                }
                _ => {}
            }
        }
        let affected = broke.len() as u64;
        let mut times: Vec<Duration> = broke.values().filter_map(|(_, r)| r.map(|r| r.duration_since(m.at))).collect();
        times.sort_unstable();
        let recovered = times.len() as u64;
        // Sessions allowed to still be down at recovery.
        let spare = (sessions as f64 * (1.0 - fraction) + 1e-9).floor() as u64;
        let need = affected.saturating_sub(spare);
        let recovery = if need == 0 {
            Some(Duration::ZERO)
        } else if need <= recovered {
            Some(times[need as usize - 1])
        } else {
            None
        };
        let at_s = m.at.duration_since(start).as_secs_f64();
        let end_s = recovery.map(|r| at_s + r.as_secs_f64()).unwrap_or(end.duration_since(start).as_secs_f64());
        let span = |e: &&TimelineEntry| (e.t as f64 + e.span) > at_s && (e.t as f64) <= end_s;
        let failed = timeline.iter().filter(span).map(|e| e.errors + e.timeouts).sum();
        let resent = timeline.iter().filter(span).map(|e| e.resent).sum();
        let around = |e: &&TimelineEntry| (e.t as f64) >= at_s.floor() - 3.0 && (e.t as f64) <= end_s.ceil() + 3.0;
        out.push(Recovery {
            event: m.what.clone(),
            at_s,
            fraction,
            recovery_s: recovery.map(|r| r.as_secs_f64()),
            sessions_affected: affected,
            sessions_recovered: recovered,
            sessions_lost: affected - recovered,
            requests_failed: failed,
            requests_resent: resent,
            throughput: timeline.iter().filter(around).map(|e| (e.t, e.throughput)).collect(),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn breaker_opens_on_errors_short_circuits_and_half_opens_after_the_cool_down() {
        let b = Breaker::new(BreakerPlan {
            error_rate: 0.5,
            min_requests: 4,
            window: Duration::from_secs(10),
            cool_down: Duration::from_millis(30),
        });
        for failed in [false, true, true, false] {
            assert!(b.allow());
            b.record(failed);
        }
        assert_eq!(b.state_name(), "open");
        assert!(!b.allow() && !b.allow());
        assert_eq!(b.short_circuited.load(Ordering::Relaxed), 2);
        std::thread::sleep(Duration::from_millis(40));
        assert!(b.allow(), "a probe after the cool-down");
        assert_eq!(b.state_name(), "half-open");
        assert!(!b.allow(), "one probe at a time");
        b.record(true);
        assert_eq!(b.state_name(), "open", "a failed probe reopens it");
        std::thread::sleep(Duration::from_millis(40));
        assert!(b.allow());
        b.record(false);
        assert_eq!(b.state_name(), "closed");
        assert_eq!(b.opened.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn recovery_is_when_the_wanted_fraction_is_back() {
        let ev = Events::default();
        let start = Instant::now();
        ev.mark("kill");
        let m = ev.marks()[0].at;
        let t = |ms: u64| m + Duration::from_millis(ms);
        let mut log = ev.sessions.lock().unwrap();
        // 10 sessions, 4 break; 3 come back at 100, 200, 300 ms, one never.
        for s in 0..4 {
            log.push(SessionEvent::Broke(s, t(10)));
        }
        for (s, ms) in [(0, 100), (1, 200), (2, 300)] {
            log.push(SessionEvent::Recovered(s, t(ms)));
        }
        drop(log);
        let end = t(1000);
        // 90%: one session may stay down: the third recovery (300 ms) is the moment.
        let r = &recoveries(&ev, start, end, 10, 0.9, &[])[0];
        assert_eq!((r.sessions_affected, r.sessions_recovered, r.sessions_lost), (4, 3, 1));
        assert!((r.recovery_s.unwrap() - 0.3).abs() < 1e-9);
        // 99% of 10: none may stay down, and one never came back.
        assert_eq!(recoveries(&ev, start, end, 10, 0.99, &[])[0].recovery_s, None);
    }
}
