//! The open model of one process. One scheduler task computes intended send times from
//! the rate curve and hands each arrival to the next live session (round robin): over a
//! lean connection it writes the request itself (no task per request; the connection's
//! reader records the reply, see [`mux`](super::mux)), over a full client session the
//! request runs in a task. Latency is measured from the *intended* time (wrk2), so a
//! stalled server shows in the percentiles instead of slowing the arrivals down; an
//! arrival finding `max_inflight` requests in flight is dropped and counted (k6's
//! dropped_iterations). Dead sessions are reopened in the background; requests in flight
//! on a lean connection that broke are requeued and resent on the next live session when
//! their method is resendable (full client sessions of other transports fail them instead).
//! The circuit breaker, when configured, short-circuits arrivals while open. The scheduler
//! records how late it sent each request against its intended time (send lag) in a
//! histogram of its own: the evidence that mcpscript, not the server, fell behind.

use super::exec::Env;
use super::mux::{Deadlines, Hooks};
use super::plan::{mix_seed, Model, RateCurve};
use super::pool::{Exclusive, Open};
use super::recorder::Outcome;
use hdrhistogram::Histogram;
use rand::rngs::SmallRng;
use rand::SeedableRng;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Requests the open-model scheduler sends before yielding to other tasks.
const SEND_BURST: usize = 32;

/// One session of the open model, replaced in place when its connection fails.
struct Slot {
    conn: Mutex<Option<Open>>,
    reviving: AtomicBool,
    /// Times this session's connection broke (salts its backoff jitter).
    breaks: AtomicU64,
}

/// The open model. Returns the length of the load window and of the drain after it, and
/// the send lag of every request sent (how late, in microseconds, against its intended
/// send time: the scheduler's own delay, timer and runtime included).
pub(super) async fn run_open(env: Arc<Env>, conns: Vec<Option<Exclusive>>) -> (Duration, Duration, Histogram<u64>) {
    let mut lag = super::result::new_hist();
    let Model::Open { ref stages, start_rate, max_inflight, arrival_offset, .. } = env.plan.model else {
        return (Duration::ZERO, Duration::ZERO, lag);
    };
    let curve = RateCurve::new(start_rate, stages, arrival_offset);
    let res = &env.plan.resilience.policy;
    let resend_max = env
        .mix
        .templates
        .iter()
        .map(|t| if res.resends(&t.method) { res.max_resends.min(u8::MAX as u32) as u8 } else { 0 })
        .collect();
    let hooks = Hooks::with(env.rec.clone(), env.timeout(), env.breaker.clone(), resend_max);
    let sweeper = Deadlines::spawn_sweeper(&hooks);
    let slots: Arc<Vec<Slot>> = Arc::new(
        conns
            .into_iter()
            .map(|c| Slot {
                conn: Mutex::new(c.map(|c| c.into_open(&hooks))),
                reviving: AtomicBool::new(false),
                breaks: AtomicU64::new(0),
            })
            .collect(),
    );
    // Requests over full client sessions (transports other than tcp://) run in tasks;
    // they count here. Lean connections count in `hooks.inflight`.
    let tasks = Arc::new(AtomicU64::new(0));
    let inflight = |h: &Hooks, t: &AtomicU64| h.inflight.load(Ordering::Acquire) + t.load(Ordering::Acquire);
    let mut rng = SmallRng::seed_from_u64(mix_seed(env.plan.seed, u64::MAX - env.plan.session_offset));
    let start = tokio::time::Instant::now();
    let t0 = start.into_std();
    let (mut k, mut rr) = (0u64, 0usize);
    'schedule: while let Some(t) = curve.time_of(k) {
        let Some(due) = Duration::try_from_secs_f64(t).ok().and_then(|d| start.checked_add(d)) else { break };
        if due > tokio::time::Instant::now() {
            tokio::select! {
                _ = tokio::time::sleep_until(due) => {}
                _ = env.flags.hard_stopped() => break 'schedule,
            }
        }
        if env.flags.soft() {
            break;
        }
        resend_requeued(&env, &slots, &mut rr, &hooks);
        let mut burst = 0;
        while let Some(t) = curve.time_of(k) {
            let Some(at) = Duration::try_from_secs_f64(t).ok().filter(|d| start.checked_add(*d).is_some()) else {
                break 'schedule;
            };
            let now = tokio::time::Instant::now();
            if start + at > now {
                break;
            }
            // Behind schedule (a busy machine), the loop must still let the readers, the
            // sweeper and everything else run: arrivals go out late, and their latency,
            // timed from the intended time, says so.
            burst += 1;
            if burst % SEND_BURST == 0 {
                tokio::task::yield_now().await;
            }
            let n = k as usize;
            k += 1;
            if inflight(&hooks, &tasks) >= max_inflight {
                env.rec.dropped(n);
                continue;
            }
            if env.breaker.as_ref().is_some_and(|b| !b.allow()) {
                // Short-circuited by the breaker (counted there): never sent.
                continue;
            }
            let kind = env.mix.pick(&mut rng);
            env.rec.sent(n, kind);
            // One histogram owned by this task: no lock, a few ns per request.
            lag.saturating_record(now.saturating_duration_since(start + at).as_micros().min(u64::MAX as u128) as u64);
            // Intended times relative to the hooks' clock, which started just before `start`.
            let at_ns = (t0 + at).saturating_duration_since(hooks.t0).as_nanos() as u64;
            let sent = match next_live(&env, &slots, &mut rr, &hooks) {
                Some(Open::Mux(c)) => c.send(&env.mix.templates[kind].enc, kind, k - 1, at_ns).is_ok(),
                Some(c @ (Open::Session(_) | Open::Http(_))) => {
                    spawn_request(&env, c, kind, n, t0 + at, &tasks);
                    true
                }
                None => false,
            };
            if !sent {
                env.rec.done(n, kind, Outcome::Error(crate::client::ErrorKind::Transport), Duration::ZERO);
            }
        }
    }
    let window = start.elapsed().min(curve_length(stages));
    env.arm_drain();
    // Wait for the requests in flight: their replies, timeouts, lost connections or
    // (after the drain time) cancellation all end with a recorded outcome.
    while inflight(&hooks, &tasks) > 0 {
        resend_requeued(&env, &slots, &mut rr, &hooks);
        if env.flags.hard.load(Ordering::Relaxed) {
            for s in slots.iter() {
                if let Some(Open::Mux(c)) = s.conn.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
                    c.cancel_pending();
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let drain = start.elapsed().saturating_sub(window);
    env.flags.stop_hard();
    // A session being reopened right now lands in its slot before the slots are closed.
    let settle = tokio::time::Instant::now() + env.plan.connect_timeout + Duration::from_secs(1);
    while slots.iter().any(|s| s.reviving.load(Ordering::Acquire)) && tokio::time::Instant::now() < settle {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    for s in slots.iter() {
        let c = s.conn.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(c) = c {
            c.close().await;
            env.rec.open_sessions.fetch_sub(1, Ordering::Relaxed);
        }
    }
    sweeper.abort();
    (window, drain, lag)
}

/// Sends the requests whose connection broke again, each on the next live session; those
/// finding none wait for the next round, and are cancelled once the phase stops hard.
fn resend_requeued(env: &Arc<Env>, slots: &Arc<Vec<Slot>>, rr: &mut usize, hooks: &Arc<Hooks>) {
    let waiting = hooks.take_requeued();
    if waiting.is_empty() {
        return;
    }
    let mut back = Vec::new();
    for r in waiting {
        if env.flags.hard.load(Ordering::Relaxed) {
            hooks.give_up(r, Outcome::Cancelled);
            continue;
        }
        match next_live(env, slots, rr, hooks) {
            Some(Open::Mux(c)) => {
                if let Err(r) = c.resend(&env.mix.templates[r.kind()].enc, r) {
                    back.push(r);
                }
            }
            _ => back.push(r),
        }
    }
    hooks.requeue(back);
}

fn curve_length(stages: &[super::plan::Stage]) -> Duration {
    stages.iter().map(|s| s.duration).sum()
}

/// A request over a full client session or a lean HTTP connection, in a task of its own
/// (on a lean HTTP connection it waits for the request before it to finish).
fn spawn_request(env: &Arc<Env>, c: Open, kind: usize, n: usize, intended: Instant, tasks: &Arc<AtomicU64>) {
    // AcqRel: the drain loop must see every increment before the matching decrement.
    tasks.fetch_add(1, Ordering::AcqRel);
    let (env, tasks) = (env.clone(), tasks.clone());
    tokio::spawn(async move {
        let t = &env.mix.templates[kind];
        let call = async {
            match c {
                Open::Session(s) => match s.request_timeout(&t.method, t.params.clone(), env.timeout()).await {
                    Ok(_) => Outcome::Ok,
                    Err(e) => super::pool::outcome_of(&e),
                },
                Open::Http(h) => {
                    let mut h = h.lock().await;
                    // The timeout counts from the intended send time, queueing included.
                    let left = env.timeout().saturating_sub(intended.elapsed());
                    if left.is_zero() {
                        Outcome::Timeout
                    } else {
                        h.call(&t.enc, t.idempotent, left).await
                    }
                }
                Open::Mux(_) => Outcome::Error(crate::client::ErrorKind::Transport),
            }
        };
        let out = tokio::select! {
            biased;
            o = call => o,
            _ = env.flags.hard_stopped() => Outcome::Cancelled,
        };
        env.rec.done(n, kind, out, intended.elapsed());
        env.breaker_record(out);
        tasks.fetch_sub(1, Ordering::AcqRel);
    });
}

/// The next session in round-robin order whose connection is open; dead ones are revived
/// in the background.
fn next_live(env: &Arc<Env>, slots: &Arc<Vec<Slot>>, rr: &mut usize, hooks: &Arc<Hooks>) -> Option<Open> {
    let n = slots.len();
    if n == 0 {
        return None;
    }
    for _ in 0..n.min(16) {
        let i = *rr % n;
        *rr = rr.wrapping_add(1);
        let c = slots[i].conn.lock().unwrap_or_else(|e| e.into_inner()).clone();
        match c {
            Some(c) if !c.is_closed() => return Some(c),
            _ => revive(env, slots, i, hooks),
        }
    }
    None
}

fn revive(env: &Arc<Env>, slots: &Arc<Vec<Slot>>, i: usize, hooks: &Arc<Hooks>) {
    // AcqRel: one reviver per slot.
    if env.flags.soft() || slots[i].reviving.swap(true, Ordering::AcqRel) {
        return;
    }
    let (env, slots, hooks) = (env.clone(), slots.clone(), hooks.clone());
    tokio::spawn(async move {
        let old = slots[i].conn.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(old) = old {
            old.close().await;
            env.rec.open_sessions.fetch_sub(1, Ordering::Relaxed);
        }
        let global = env.plan.session_offset + i as u64;
        if let Some(c) = env.reconnect(i, global, slots[i].breaks.fetch_add(1, Ordering::Relaxed)).await {
            *slots[i].conn.lock().unwrap_or_else(|e| e.into_inner()) = Some(c.into_open(&hooks));
        }
        slots[i].reviving.store(false, Ordering::Release);
    });
}
