//! Running a phase in one process: [`run_local`] opens the sessions of a plan, waits for
//! the go signal, runs the model and drains, then builds the [`PhaseResult`].
//!
//! - Closed: one task per session, each sending back to back (optionally thinking), the
//!   request picked from the weighted mix by a seeded per-session RNG; service time measured.
//! - Open: see [`open`](super::open).
//! - Connect: opens the sessions at the connect rate (the connects are the measured events),
//!   pings a sample of them when asked (`ping_sample`), holds them (swept once a second,
//!   no task each), closes them.
//!
//! Every loop is bounded by the phase's duration and/or count; requests in flight when it
//! ends get `request_timeout` to finish and are then cancelled, so `sent = ok + errors +
//! timeouts + cancelled` holds exactly.

use super::bottleneck::SendLag;
use super::plan::{mix_seed, Model, PhasePlan};
use super::pool::{establish, Connector, Exclusive, Template};
use super::recorder::{spawn_ticker, Accumulator, Outcome, PhaseRecorder, Sink};
use super::resilience::{recoveries, Breaker, Events, Failure};
use super::result::{ConnectResult, PhaseResult, PhaseStatus, PingResult, ResilienceReport};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};

/// Salt of the reconnect backoff's jitter seeds.
const BACKOFF_SALT: u64 = 0xB0FF_B0FF;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// Called with the set-up's result once the sessions are open.
pub type OnReady = Box<dyn FnOnce(&ConnectResult) + Send>;

/// A future the load waits for before it starts.
pub type Go = Pin<Box<dyn Future<Output = ()> + Send>>;

/// How a process-local run is steered from outside.
#[derive(Default)]
pub struct Control {
    /// Turns true to cancel: the phase stops early and reports what it measured.
    pub stop: Option<watch::Receiver<bool>>,
    /// Called once the sessions are open (a worker reports "ready").
    pub on_ready: Option<OnReady>,
    /// The load starts once this resolves (a worker waits for the coordinator's "go").
    pub go: Option<Go>,
    /// Receives every folded second of the session set-up and of the load.
    pub setup_sink: Option<Sink>,
    pub load_sink: Option<Sink>,
    /// Chaos actions and session breaks of the run, for recovery measurement.
    pub events: Option<Arc<Events>>,
    /// Notified when the load starts (after set-up and the go signal).
    pub started: Option<Arc<tokio::sync::Notify>>,
}

/// The weighted request mix.
pub struct Mix {
    pub templates: Vec<Template>,
    cumulative: Vec<u64>,
}

impl Mix {
    /// The plan's mix as `connector`'s sessions send it.
    pub fn new(plan: &PhasePlan, connector: &Connector) -> Mix {
        let mut acc = 0;
        let cumulative = plan
            .mix
            .iter()
            .map(|t| {
                acc += t.weight as u64;
                acc
            })
            .collect();
        Mix { templates: plan.mix.iter().map(|t| connector.template(t)).collect(), cumulative }
    }

    pub fn pick(&self, rng: &mut SmallRng) -> usize {
        if self.templates.len() == 1 {
            return 0;
        }
        let total = *self.cumulative.last().unwrap_or(&1);
        let r = rng.random_range(0..total.max(1));
        self.cumulative.iter().position(|c| r < *c).unwrap_or(0)
    }

    pub fn names(&self) -> Vec<String> {
        self.templates.iter().map(|t| t.name.clone()).collect()
    }
}

/// Stop flags of a running phase: `soft` ends the load window (no new requests), `hard`
/// cancels requests in flight. Atomics for the hot path, a watch channel to wake waiters.
pub(super) struct Flags {
    soft: AtomicBool,
    pub(super) hard: AtomicBool,
    /// Stopped from outside (Ctrl-C, the script's timeout): the phase is `cancelled`.
    cancelled: AtomicBool,
    hard_tx: watch::Sender<bool>,
}

impl Flags {
    fn new() -> Arc<Flags> {
        Arc::new(Flags {
            soft: AtomicBool::new(false),
            hard: AtomicBool::new(false),
            cancelled: AtomicBool::new(false),
            hard_tx: watch::channel(false).0,
        })
    }

    pub(super) fn soft(&self) -> bool {
        // Relaxed: a flag polled between requests; a late read only delays the stop.
        self.soft.load(Ordering::Relaxed)
    }

    fn stop_soft(&self) {
        self.soft.store(true, Ordering::Relaxed);
    }

    pub(super) fn stop_hard(&self) {
        self.stop_soft();
        self.hard.store(true, Ordering::Relaxed);
        self.hard_tx.send_replace(true);
    }

    pub(super) async fn hard_stopped(&self) {
        let mut rx = self.hard_tx.subscribe();
        super::until_true(&mut rx).await;
    }
}

/// Runs `plan` (already validated, already this process's share) in this process.
pub async fn run_local(plan: &PhasePlan, mut ctl: Control) -> PhaseResult {
    let started_at = crate::script::results::rfc3339(std::time::SystemTime::now());
    let stop = ctl.stop.take().unwrap_or_else(|| watch::channel(false).1);
    let mut base = base(plan);
    base.started_at = started_at;
    let connector = match Connector::new(plan).await {
        Ok(c) => Arc::new(c),
        Err(e) => {
            base.status = PhaseStatus::Failed;
            base.note(format!("cannot reach the target {}: {e}", plan.target));
            super::bottleneck::assess(&mut base);
            return base;
        }
    };
    let open = Arc::new(AtomicI64::new(0));
    let first_error = Arc::new(Mutex::new(None));
    let flags = Flags::new();
    {
        // Outside cancellation stops everything at once.
        let (flags, mut stop) = (flags.clone(), stop.clone());
        tokio::spawn(async move {
            super::until_true(&mut stop).await;
            flags.cancelled.store(true, Ordering::Relaxed);
            flags.stop_hard();
        });
    }
    let mix = Arc::new(Mix::new(plan, &connector));
    let (result, cancelled) = match &plan.model {
        Model::Connect { sessions, hold, ping_sample } => {
            if let Some(f) = ctl.on_ready.take() {
                f(&ConnectResult::default());
            }
            wait_go(ctl.go.take(), &stop).await;
            if let Some(n) = ctl.started.take() {
                n.notify_one();
            }
            let rec = PhaseRecorder::new(1, open.clone());
            let ticker = spawn_ticker(rec.clone(), Accumulator::new(vec!["connect".into()], 1), ctl.load_sink.take());
            let (conns, took) =
                establish(&connector, plan.session_offset, *sessions, plan.connect_rate, &rec, 0, &stop, &first_error)
                    .await;
            let mut held: Vec<Exclusive> = conns.into_iter().flatten().collect();
            let held_from = tokio::time::Instant::now();
            let ping = match *ping_sample {
                0 => None,
                k => {
                    let ping = connector.template(&super::plan::RequestTemplate::new("ping", None, 1));
                    Some(ping_sample_of(&mut held, k, &ping, plan.request_timeout, &stop).await)
                }
            };
            let hold_left = hold.saturating_sub(held_from.elapsed());
            let lost = hold_sessions(&mut held, hold_left, &stop, &open).await;
            for c in held {
                c.close().await;
                // Relaxed: a gauge.
                open.fetch_sub(1, Ordering::Relaxed);
            }
            let mut acc = ticker.finish().await;
            let mut r = build(base, &mut acc, took);
            r.connect = ConnectResult::from_kind(&acc.kind_result(0), took.as_secs_f64(), vec![]);
            r.ping = ping;
            if lost > 0 {
                r.note(format!("{lost} sessions were closed by the server while held"));
            }
            (r, flags.cancelled.load(Ordering::Relaxed))
        }
        model => {
            // Set-up: open the sessions, measured on their own timeline.
            let setup = PhaseRecorder::new(1, open.clone());
            let ticker =
                spawn_ticker(setup.clone(), Accumulator::new(vec!["connect".into()], 1), ctl.setup_sink.take());
            let (conns, took) = establish(
                &connector,
                plan.session_offset,
                model.sessions(),
                plan.connect_rate,
                &setup,
                0,
                &stop,
                &first_error,
            )
            .await;
            let acc = ticker.finish().await;
            let mut connect = ConnectResult::from_kind(&acc.kind_result(0), took.as_secs_f64(), acc.timeline.clone());
            connect.first_error = first_error.lock().unwrap_or_else(|e| e.into_inner()).clone();
            if let Some(f) = ctl.on_ready.take() {
                f(&connect);
            }
            wait_go(ctl.go.take(), &stop).await;
            if let Some(n) = ctl.started.take() {
                n.notify_one();
            }
            let mut names = mix.names();
            let main = names.len();
            names.push("connect".into());
            let rec = PhaseRecorder::new(names.len(), open.clone());
            let events = ctl.events.take().unwrap_or_default();
            events.clear_sessions();
            let load_start = Instant::now();
            let ticker = spawn_ticker(rec.clone(), Accumulator::new(names.clone(), main), ctl.load_sink.take());
            let env = Arc::new(Env {
                plan: plan.clone(),
                mix: mix.clone(),
                rec: rec.clone(),
                connector: connector.clone(),
                flags: flags.clone(),
                reconnect_kind: main,
                events: events.clone(),
                breaker: plan.resilience.breaker.clone().map(|b| Arc::new(Breaker::new(b))),
                broken: AtomicU64::new(0),
            });
            let (window, drained, lag) = if flags.cancelled.load(Ordering::Relaxed) {
                (Duration::ZERO, Duration::ZERO, None)
            } else {
                match model {
                    Model::Closed { .. } => {
                        let (w, d) = run_closed(env.clone(), conns).await;
                        (w, d, None)
                    }
                    _ => {
                        let (w, d, lag) = super::open::run_open(env.clone(), conns).await;
                        (w, d, Some(lag))
                    }
                }
            };
            let mut acc = ticker.finish().await;
            let load_end = Instant::now();
            let mut r = build(base, &mut acc, window);
            r.drain_s = drained.as_secs_f64();
            let _ = r.refresh();
            connect.reconnects = acc.kind_result(main).counts.ok;
            let res = &plan.resilience;
            r.resilience = ResilienceReport {
                reconnect: res.policy.reconnect,
                resend: res.policy.resend.clone(),
                resend_on_timeout: res.policy.resend_on_timeout,
                resent: r.counts.resent,
                reconnects: connect.reconnects,
                // Relaxed: read after every session task ended.
                broken: env.broken.load(Ordering::Relaxed),
                breaker: env.breaker.is_some(),
                short_circuited: env.breaker.as_ref().map_or(0, |b| b.short_circuited.load(Ordering::Relaxed)),
                breaker_opened: env.breaker.as_ref().map_or(0, |b| b.opened.load(Ordering::Relaxed)),
            };
            r.recovery =
                recoveries(&events, load_start, load_end, plan.model.sessions(), res.recovery_fraction, &r.timeline);
            r.connect = connect;
            if matches!(model, Model::Open { .. }) {
                r.limited_by.send_lag = Some(lag.as_ref().map(SendLag::of).unwrap_or_default());
            }
            (r, flags.cancelled.load(Ordering::Relaxed))
        }
    };
    let mut result = result;
    result.server_requests = connector.server_requests();
    if let Some(n) = connector.era_note() {
        result.note(n);
    }
    if cancelled {
        result.status = PhaseStatus::Cancelled;
    }
    if result.connect.ok == 0 && result.connect.attempted > 0 {
        let why = result.connect.first_error.clone().unwrap_or_default();
        result.note(format!("no session could be opened: {why}"));
    }
    // A first judgement from what this process knows (no CPU: the coordinator samples).
    super::bottleneck::assess(&mut result);
    result
}

/// `k` of the indices `0..n` (`k <= n`), evenly spaced and in order: `j * n / k` for
/// `j` in `0..k` (distinct, as `n / k >= 1`).
fn evenly(n: usize, k: usize) -> Vec<usize> {
    let k = k.min(n);
    (0..k).map(|j| j * n / k).collect()
}

/// Sends `ping` (the template) on each of `k` of the `held` sessions (at most all of
/// them), spread evenly over them, all at once; each within `timeout`.
async fn ping_sample_of(
    held: &mut [Exclusive],
    k: u64,
    ping: &Template,
    timeout: Duration,
    stop: &watch::Receiver<bool>,
) -> PingResult {
    let n = held.len();
    let k = (k.min(n as u64)) as usize;
    let want = evenly(n, k);
    let mut next = want.iter().peekable();
    let picked: Vec<&mut Exclusive> = held
        .iter_mut()
        .enumerate()
        .filter_map(|(i, c)| (next.peek() == Some(&&i)).then(|| next.next()).map(|_| c))
        .collect();
    let calls = picked.into_iter().map(|c| async move {
        let t0 = Instant::now();
        let out = c.call(ping, timeout).await;
        (out, t0.elapsed())
    });
    let mut stop = stop.clone();
    let outcomes = tokio::select! {
        o = futures_util::future::join_all(calls) => o,
        _ = super::until_true(&mut stop) => Vec::new(),
    };
    let mut h = super::result::new_hist();
    let mut r = PingResult { attempted: k as u64, ..Default::default() };
    for (out, took) in &outcomes {
        let kind = match out {
            Outcome::Ok => {
                r.ok += 1;
                h.saturating_record(took.as_micros().min(u64::MAX as u128) as u64);
                continue;
            }
            Outcome::Timeout => "timeout".to_string(),
            Outcome::Cancelled => "cancelled".to_string(),
            Outcome::Error(e) => e.to_string(),
        };
        *r.errors.entry(kind).or_default() += 1;
    }
    // Pings a stop cut short count as cancelled.
    let unfinished = r.attempted - outcomes.len() as u64;
    if unfinished > 0 {
        *r.errors.entry("cancelled".into()).or_default() += unfinished;
    }
    r.failed = r.attempted - r.ok;
    r.latency = super::result::LatencyStats::of(&h);
    r.histogram = super::result::encode(&h);
    r
}

async fn wait_go(go: Option<Go>, stop: &watch::Receiver<bool>) {
    if let Some(go) = go {
        let mut stop = stop.clone();
        tokio::select! {
            _ = go => {}
            _ = super::until_true(&mut stop) => {}
        }
    }
}

/// An empty result for `plan`.
fn base(plan: &PhasePlan) -> PhaseResult {
    PhaseResult {
        name: plan.name.clone(),
        model: plan.model.kind(),
        target: plan.target.clone(),
        status: PhaseStatus::Completed,
        sessions: plan.model.sessions(),
        intended_rate: plan.model.intended_rate(),
        segments: plan.segment.into_iter().collect(),
        methods: plan.mix.iter().map(|t| (t.name.clone(), t.method.clone())).collect(),
        ..Default::default()
    }
}

/// The result of `plan` from what `acc` accumulated over `load_time` of load (the timeline
/// moves from `acc` into the result).
pub fn result_from(plan: &PhasePlan, acc: &mut Accumulator, load_time: Duration) -> PhaseResult {
    build(base(plan), acc, load_time)
}

/// The timeline moves from `acc` into the result rather than being copied: with a
/// histogram per second it is megabytes after a few minutes, and a worker builds its
/// result just when it is about to serialise it.
fn build(mut r: PhaseResult, acc: &mut Accumulator, load_time: Duration) -> PhaseResult {
    let (counts, hist) = acc.main_total();
    r.counts = counts;
    r.histogram = super::result::encode(&hist);
    r.per_kind = (0..acc.main).map(|k| (acc.names[k].clone(), acc.kind_result(k))).collect();
    r.dropped = acc.dropped;
    r.timeline = std::mem::take(&mut acc.timeline);
    r.duration_s = load_time.as_secs_f64();
    let _ = r.refresh();
    r
}

/// Holds idle sessions for `hold`, sweeping them once a second (server pings answered,
/// closed connections noticed and dropped). Returns how many the server closed.
async fn hold_sessions(
    held: &mut Vec<Exclusive>,
    hold: Duration,
    stop: &watch::Receiver<bool>,
    open: &AtomicI64,
) -> usize {
    let end = tokio::time::Instant::now() + hold;
    let mut stop = stop.clone();
    let mut lost = 0;
    loop {
        let now = tokio::time::Instant::now();
        if now >= end {
            break;
        }
        tokio::select! {
            _ = tokio::time::sleep_until(end.min(now + Duration::from_secs(1))) => {}
            _ = super::until_true(&mut stop) => break,
        }
        let before = held.len();
        let mut kept = Vec::with_capacity(before);
        for mut c in held.drain(..) {
            if c.sweep() {
                kept.push(c);
            } else {
                c.close().await;
                open.fetch_sub(1, Ordering::Relaxed);
            }
        }
        lost += before - kept.len();
        *held = kept;
    }
    lost
}

/// What the session tasks of a phase share.
pub(super) struct Env {
    pub(super) plan: PhasePlan,
    pub(super) mix: Arc<Mix>,
    pub(super) rec: Arc<PhaseRecorder>,
    connector: Arc<Connector>,
    pub(super) flags: Arc<Flags>,
    /// The recorder kind that counts reconnects.
    reconnect_kind: usize,
    pub(super) events: Arc<Events>,
    pub(super) breaker: Option<Arc<Breaker>>,
    /// Connections that broke during the load.
    pub(super) broken: AtomicU64,
}

impl Env {
    /// Reopens session `global` after its connection failed (its `nth` break), backing off
    /// with seeded jitter: a first attempt in any case (unless the phase stops hard), more
    /// until the load window ends. Reconnects are counted under the recorder's connect
    /// kind; the break and the recovery go into the event log.
    pub(super) async fn reconnect(&self, n: usize, global: u64, nth: u64) -> Option<Exclusive> {
        // Relaxed: a counter read once the phase ended.
        self.broken.fetch_add(1, Ordering::Relaxed);
        self.events.broke(global);
        let policy = &self.plan.resilience.policy;
        if !policy.reconnect {
            return None;
        }
        let salt = mix_seed(global, nth);
        let mut backoff = policy.backoff.start(mix_seed(self.plan.seed ^ BACKOFF_SALT, salt));
        let attempt = || async {
            let t0 = Instant::now();
            let r = self.connector.connect(global).await;
            let outcome = match &r {
                Ok(_) => Outcome::Ok,
                Err(e) => super::pool::outcome_of(e),
            };
            self.rec.sent_done(n, self.reconnect_kind, outcome, t0.elapsed());
            r
        };
        // Waits first (the connection just broke), then retries until the load window
        // ends. The first attempt is made even when the window ended during that wait: a
        // session that broke in the window's last moments is re-established in the drain
        // (unless the phase stops hard), so that every broken session gets its chance.
        let mut first = true;
        let wait = |d: Duration| {
            let first = std::mem::replace(&mut first, false);
            async move {
                tokio::select! {
                    _ = tokio::time::sleep(d) => first || !self.flags.soft(),
                    _ = self.flags.hard_stopped() => false,
                }
            }
        };
        let c = crate::client::resilient::with_backoff(&mut backoff, false, attempt, wait).await.ok()?;
        self.rec.open_sessions.fetch_add(1, Ordering::Relaxed);
        self.events.recovered(global);
        Some(c)
    }

    /// Notes how an allowed request ended, for the circuit breaker.
    pub(super) fn breaker_record(&self, out: Outcome) {
        if let Some(b) = &self.breaker {
            b.record(!matches!(out, Outcome::Ok | Outcome::Cancelled));
        }
    }

    pub(super) fn timeout(&self) -> Duration {
        self.plan.request_timeout
    }

    /// Ends the load window now and cancels whatever is still in flight after
    /// `request_timeout` (plus a second of grace).
    pub(super) fn arm_drain(self: &Arc<Self>) {
        self.flags.stop_soft();
        let me = self.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = tokio::time::sleep(me.timeout() + Duration::from_secs(1)) => me.flags.stop_hard(),
                _ = me.flags.hard_stopped() => {}
            }
        });
    }
}

/// The closed model. Returns the length of the load window and of the drain after it.
async fn run_closed(env: Arc<Env>, conns: Vec<Option<Exclusive>>) -> (Duration, Duration) {
    let Model::Closed { duration, iterations, think, .. } = env.plan.model else { return Default::default() };
    let start = Instant::now();
    let deadline = duration.map(|d| start + d);
    let remaining = iterations.map(|n| Arc::new(AtomicI64::new(n as i64)));
    let mut tasks = tokio::task::JoinSet::new();
    for (i, c) in conns.into_iter().enumerate() {
        let Some(conn) = c else { continue };
        let (env, remaining) = (env.clone(), remaining.clone());
        tasks.spawn(closed_session(env, i, conn, deadline, remaining, think));
    }
    if let Some(d) = deadline {
        let env = env.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = tokio::time::sleep_until(d.into()) => env.arm_drain(),
                _ = env.flags.hard_stopped() => {}
            }
        });
    }
    let mut window: Option<Duration> = None;
    loop {
        tokio::select! {
            done = tasks.join_next() => {
                if done.is_none() {
                    break;
                }
                if window.is_none() && env.flags.soft() {
                    window = Some(start.elapsed());
                }
            }
            // Cancelled, or the drain time ran out: requests still in flight are abandoned
            // (their sessions' guards count them as cancelled).
            _ = env.flags.hard_stopped() => {
                tasks.abort_all();
                while let Some(j) = tasks.join_next().await {
                    if j.is_err_and(|e| e.is_cancelled()) {
                        env.rec.open_sessions.fetch_sub(1, Ordering::Relaxed);
                    }
                }
                break;
            }
        }
    }
    env.flags.stop_soft();
    let took = start.elapsed();
    // The window is the time to the soft stop (deadline, count reached or cancel),
    // without the drain of the last requests.
    let window = match (deadline, window) {
        (Some(d), _) if Instant::now() >= d => d.duration_since(start).min(took),
        (_, Some(w)) => w,
        _ => took,
    };
    (window, took.saturating_sub(window))
}

/// A request in flight in a closed-model session; recorded as cancelled if the session
/// task is aborted before it completes.
struct InFlight<'a> {
    rec: &'a PhaseRecorder,
    n: usize,
    k: usize,
    done: bool,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.rec.done(self.n, self.k, Outcome::Cancelled, Duration::ZERO);
        }
    }
}

async fn closed_session(
    env: Arc<Env>,
    n: usize,
    conn: Exclusive,
    deadline: Option<Instant>,
    remaining: Option<Arc<AtomicI64>>,
    think: Option<Duration>,
) {
    let global = env.plan.session_offset + n as u64;
    let mut rng = SmallRng::seed_from_u64(mix_seed(env.plan.seed, global));
    let timeout = env.timeout();
    let policy = &env.plan.resilience.policy;
    let mut breaks = 0u64;
    let mut slot = Some(conn);
    while slot.is_some() {
        if env.flags.soft() || deadline.is_some_and(|d| Instant::now() >= d) {
            break;
        }
        if let Some(b) = &env.breaker {
            if !b.allow() {
                // Short-circuited: not sent. Wait until the breaker may let a probe through.
                tokio::select! {
                    _ = tokio::time::sleep(b.retry_in().min(Duration::from_millis(100))) => {}
                    _ = env.flags.hard_stopped() => break,
                }
                continue;
            }
        }
        if let Some(r) = &remaining {
            // Relaxed: a shared budget; only the count matters.
            if r.fetch_sub(1, Ordering::Relaxed) <= 0 {
                env.flags.stop_soft();
                break;
            }
        }
        let k = env.mix.pick(&mut rng);
        let t = &env.mix.templates[k];
        env.rec.sent(n, k);
        // A hard stop aborts this task mid-request; the guard then records the request as
        // cancelled. (Cheaper than racing every request against a stop channel.)
        let mut guard = InFlight { rec: &env.rec, n, k, done: false };
        let t0 = Instant::now();
        let mut attempts = 0;
        let mut out = match slot.as_mut() {
            Some(c) => c.call(t, timeout).await,
            None => Outcome::Error(crate::client::ErrorKind::Transport),
        };
        // Another attempt of an idempotent request, as the policy says: after its connection
        // broke (on a new one), or after a timeout when asked. Counted as resent, never as
        // sent again.
        loop {
            let broken = slot.as_ref().is_some_and(Exclusive::is_broken);
            let outlives = slot.as_ref().is_some_and(Exclusive::outlives_its_connection);
            let failure = match out {
                Outcome::Error(crate::client::ErrorKind::Transport) if broken || outlives => Failure::Broken,
                Outcome::Timeout if !broken && !env.flags.hard.load(Ordering::Relaxed) => Failure::Timeout,
                _ => break,
            };
            if !policy.again(&t.method, attempts, failure) {
                break;
            }
            if failure == Failure::Broken && broken {
                if let Some(c) = slot.take() {
                    c.close().await;
                }
                env.rec.open_sessions.fetch_sub(1, Ordering::Relaxed);
                slot = env.reconnect(n, global, breaks).await;
                breaks += 1;
            }
            let Some(c) = slot.as_mut() else { break };
            attempts += 1;
            env.rec.resent(n, k);
            out = c.call(t, timeout).await;
        }
        guard.done = true;
        env.rec.done(n, k, out, t0.elapsed());
        env.breaker_record(out);
        if slot.as_ref().is_some_and(Exclusive::is_broken) {
            if let Some(c) = slot.take() {
                c.close().await;
            }
            env.rec.open_sessions.fetch_sub(1, Ordering::Relaxed);
            slot = env.reconnect(n, global, breaks).await;
            breaks += 1;
            continue;
        }
        if let Some(th) = think {
            tokio::select! {
                _ = tokio::time::sleep(th) => {}
                _ = env.flags.hard_stopped() => break,
            }
        }
    }
    if let Some(c) = slot {
        c.close().await;
        env.rec.open_sessions.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::evenly;

    #[test]
    fn a_ping_sample_is_spread_evenly() {
        assert_eq!(evenly(50, 20).len(), 20);
        assert_eq!(evenly(10, 5), vec![0, 2, 4, 6, 8]);
        assert_eq!(evenly(10, 3), vec![0, 3, 6]);
        assert_eq!(evenly(4, 9), vec![0, 1, 2, 3]);
        assert!(evenly(5, 0).is_empty() && evenly(0, 3).is_empty());
        let e = evenly(1000, 7);
        assert!(e.windows(2).all(|w| w[1] - w[0] >= 142 && w[1] - w[0] <= 143), "{e:?}");
    }
}
