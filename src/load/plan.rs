//! What a load phase is: [`PhasePlan`] (target, [`Model`], weighted request mix, deadlines,
//! connect rate, seed, segment, client settings with the canned answers to server
//! requests), validated once by [`PhasePlan::validate`] so executors never
//! re-check input; [`ModelKind`] names a model in results. Plans are serde types: the
//! coordinator sends each worker process its [`share`](PhasePlan::share) as JSON over a pipe,
//! and `--segment I/N` takes a share too. With `--oauth` a plan carries the run's OAuth
//! ([`PlanOAuth`]): shared in this process, its configuration for a worker.

use crate::client::oauth::{OAuth, OAuthConfig};
use crate::client::server_requests::CannedAnswers;
use crate::net::tls::ClientTls;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// Longest time a connect rate may take to open a plan's sessions (about 30 years): a rate
/// that slow is a mistake, and the schedule must stay within what a `Duration` holds.
pub const MAX_OPENING_S: f64 = 1e9;

/// One kind of request in the mix, e.g. 80% `tools/call echo`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RequestTemplate {
    /// The label results are broken down by (`echo`, `tools/list`); unique within a mix.
    pub name: String,
    pub method: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub params: Option<Value>,
    /// Relative weight; the chance of this request is weight / sum of weights.
    pub weight: u32,
}

impl RequestTemplate {
    /// A template with the default label: the tool name for `tools/call`, else the method.
    pub fn new(method: &str, params: Option<Value>, weight: u32) -> RequestTemplate {
        let name = match (method, params.as_ref().and_then(|p| p.get("name")).and_then(Value::as_str)) {
            ("tools/call", Some(tool)) => tool.to_string(),
            _ => method.to_string(),
        };
        RequestTemplate { name, method: method.to_string(), params, weight }
    }
}

/// One stage of a ramping arrival rate: the rate moves linearly to `rate` over `duration`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Stage {
    pub duration: Duration,
    /// Requests per second at the end of the stage.
    pub rate: f64,
}

/// How load is generated.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Model {
    /// `sessions` sessions each send back to back (after `think`), until `duration` passed
    /// or `iterations` requests (shared by all sessions) were sent.
    Closed { sessions: u64, duration: Option<Duration>, iterations: Option<u64>, think: Option<Duration> },
    /// Requests arrive at a rate that follows `stages` (linear from `start_rate`), spread
    /// round-robin over `sessions`; an arrival finding `max_inflight` requests in flight is
    /// dropped and counted. Latency is timed from the intended send time.
    /// `arrival_offset` (0 for a whole plan) places a share's arrivals between its
    /// siblings': share i of n takes arrivals i, i + n, i + 2n, ... of its parent, so shares
    /// interleave in time and together send exactly the parent's arrivals.
    Open {
        sessions: u64,
        stages: Vec<Stage>,
        start_rate: f64,
        max_inflight: u64,
        #[serde(default)]
        arrival_offset: f64,
    },
    /// Open `sessions` sessions at the plan's `connect_rate`, timing connect + initialize,
    /// hold them for `hold`, then close them. Once all are open, `ping_sample` of them
    /// (spread evenly over the open ones; 0 = none) each get one `ping`.
    Connect {
        sessions: u64,
        hold: Duration,
        #[serde(default)]
        ping_sample: u64,
    },
}

/// Which [`Model`] a phase ran, as results name it (`load::ramp` is an open model).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ModelKind {
    #[default]
    Closed,
    Open,
    Connect,
}

impl ModelKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ModelKind::Closed => "closed",
            ModelKind::Open => "open",
            ModelKind::Connect => "connect",
        }
    }
}

impl std::fmt::Display for ModelKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Model {
    pub fn sessions(&self) -> u64 {
        match self {
            Model::Closed { sessions, .. } | Model::Open { sessions, .. } | Model::Connect { sessions, .. } => {
                *sessions
            }
        }
    }

    pub fn kind(&self) -> ModelKind {
        match self {
            Model::Closed { .. } => ModelKind::Closed,
            Model::Open { .. } => ModelKind::Open,
            Model::Connect { .. } => ModelKind::Connect,
        }
    }

    /// How long the load part lasts as planned (`None`: bounded by a count only).
    pub fn planned_duration(&self) -> Option<Duration> {
        match self {
            Model::Closed { duration, .. } => *duration,
            Model::Open { stages, .. } => Some(stages.iter().map(|s| s.duration).sum()),
            Model::Connect { .. } => None,
        }
    }

    /// The mean intended arrival rate of an open model.
    pub fn intended_rate(&self) -> Option<f64> {
        match self {
            Model::Open { stages, start_rate, .. } => {
                let total: f64 = stages.iter().map(|s| s.duration.as_secs_f64()).sum();
                (total > 0.0).then(|| RateCurve::new(*start_rate, stages, 0.0).total_arrivals() / total)
            }
            _ => None,
        }
    }
}

/// Client settings a worker process needs to open sessions like the coordinator would.
/// Its `Debug` output hides the token, the header values and OAuth's secrets.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct ClientSettings {
    pub protocol_version: String,
    pub client_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_token: Option<String>,
    pub max_message_size: usize,
    /// Extra HTTP headers (`--header`, a suite's `headers:`), on every request of every
    /// session, lean or not.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<(String, String)>,
    /// `--ca-cert` and `--insecure`, for `https://`, `sse+https://` and `wss://` targets.
    #[serde(default)]
    pub tls: crate::net::tls::TlsSettings,
    /// What every session answers server requests with (`on_sampling`, `on_elicitation`,
    /// `roots`), and so declares in `initialize`.
    #[serde(default, skip_serializing_if = "CannedAnswers::is_empty")]
    pub answers: CannedAnswers,
    /// `--oauth`: every session, lean or not, gets its token from the run's cache.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oauth: Option<PlanOAuth>,
}

/// `--oauth` for a phase's sessions. In the process that made the plan it is the run's own
/// [`OAuth`], so a phase shares the script sessions' token (one per run and server). A
/// worker process gets the configuration (secrets included: plans travel to workers over
/// their stdin pipe, never into a report or a log) and makes one [`OAuth`] of it for its
/// plan, so each process fetches and refreshes one token per server, whatever its
/// sessions.
#[derive(Clone, Serialize, Deserialize)]
#[serde(from = "OAuthConfig", into = "OAuthConfig")]
pub struct PlanOAuth {
    config: OAuthConfig,
    made: Arc<OnceLock<Arc<OAuth>>>,
}

impl PlanOAuth {
    /// The run's OAuth, shared with the phases it runs in this process.
    pub fn of_run(oauth: Arc<OAuth>) -> PlanOAuth {
        PlanOAuth { config: oauth.config().clone(), made: Arc::new(OnceLock::from(oauth)) }
    }

    /// The OAuth of this plan's sessions: the run's, or (in a worker) the one made from the
    /// configuration on first use, with `tls` for its own HTTP calls.
    pub fn oauth(&self, tls: &ClientTls) -> Result<Arc<OAuth>, String> {
        if let Some(o) = self.made.get() {
            return Ok(o.clone());
        }
        let made = OAuth::new(self.config.clone(), tls.clone())?;
        Ok(self.made.get_or_init(|| made).clone())
    }
}

impl From<OAuthConfig> for PlanOAuth {
    fn from(config: OAuthConfig) -> PlanOAuth {
        PlanOAuth { config, made: Arc::default() }
    }
}

impl From<PlanOAuth> for OAuthConfig {
    fn from(p: PlanOAuth) -> OAuthConfig {
        p.config
    }
}

impl PartialEq for PlanOAuth {
    fn eq(&self, other: &PlanOAuth) -> bool {
        self.config == other.config
    }
}

impl std::fmt::Debug for PlanOAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.config.fmt(f)
    }
}

impl Default for ClientSettings {
    fn default() -> Self {
        let o = crate::client::ClientOptions::default();
        ClientSettings {
            protocol_version: o.protocol_version,
            client_name: o.client_name,
            auth_token: o.auth_token,
            max_message_size: o.max_message_size,
            headers: o.headers,
            tls: o.tls.settings().clone(),
            answers: CannedAnswers::default(),
            oauth: None,
        }
    }
}

impl std::fmt::Debug for ClientSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientSettings")
            .field("protocol_version", &self.protocol_version)
            .field("client_name", &self.client_name)
            .field("auth_token", &self.auth_token.as_ref().map(|_| "<redacted>"))
            .field("max_message_size", &self.max_message_size)
            .field("headers", &self.headers.iter().map(|(k, _)| (k, "<redacted>")).collect::<Vec<_>>())
            .field("tls", &self.tls)
            .field("answers", &self.answers)
            .field("oauth", &self.oauth)
            .finish()
    }
}

/// A load phase, ready to run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PhasePlan {
    pub name: String,
    /// The target URL (`tcp://127.0.0.1:7777`, `http://.../mcp`, ...).
    pub target: String,
    pub model: Model,
    pub mix: Vec<RequestTemplate>,
    pub request_timeout: Duration,
    /// Deadline of one connect + initialize.
    pub connect_timeout: Duration,
    /// Sessions opened per second; 0 = as fast as the connect concurrency allows.
    pub connect_rate: f64,
    pub seed: u64,
    /// This plan is share I (1-based) of N (`--segment I/N`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub segment: Option<(u32, u32)>,
    #[serde(default)]
    pub client: ClientSettings,
    /// Index of this share's first session among all sessions of the phase (spreads
    /// source addresses and seeds across worker processes and segments).
    #[serde(default)]
    pub session_offset: u64,
    /// Worker processes to use: 0 decides from the open-file budget.
    #[serde(default)]
    pub processes: u32,
    /// Reconnects, resends, circuit breaker, recovery fraction.
    #[serde(default)]
    pub resilience: super::resilience::Resilience,
}

/// A plan that cannot run, with the reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("load phase '{phase}': {reason}")]
pub struct PlanError {
    pub phase: String,
    pub reason: String,
}

/// Most sessions one phase may ask for (across every process and segment).
pub const MAX_SESSIONS: u64 = 10_000_000;
/// Most worker processes one phase may use.
pub const MAX_PROCESSES: u32 = 256;

impl PhasePlan {
    /// A phase of `model` against `target` with the defaults a script gets when it says
    /// nothing more: `ping` requests, 5 s request and connect deadlines, connects as fast as
    /// allowed, seed 0, no segment, processes decided from the file budget.
    pub fn new(name: &str, target: &str, model: Model) -> PhasePlan {
        PhasePlan {
            name: name.to_string(),
            target: target.to_string(),
            model,
            mix: vec![RequestTemplate::new("ping", None, 1)],
            request_timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(5),
            connect_rate: 0.0,
            seed: 0,
            segment: None,
            client: ClientSettings::default(),
            session_offset: 0,
            processes: 0,
            resilience: Default::default(),
        }
    }

    pub fn validate(&self) -> Result<(), PlanError> {
        let err = |reason: String| Err(PlanError { phase: self.name.clone(), reason });
        let sessions = self.model.sessions();
        if sessions == 0 {
            return err("sessions must be at least 1".into());
        }
        if sessions > MAX_SESSIONS {
            return err(format!("{sessions} sessions is more than the limit of {MAX_SESSIONS}"));
        }
        if self.target.trim().is_empty() {
            return err("no target".into());
        }
        if self.request_timeout.is_zero() || self.connect_timeout.is_zero() {
            return err("request_timeout and connect_timeout must be above zero".into());
        }
        if !self.connect_rate.is_finite() || self.connect_rate < 0.0 {
            return err(format!("connect_rate must be a number >= 0 (0 = unlimited), got {}", self.connect_rate));
        }
        // Shares divide sessions and rate alike, so this holds for every share of a plan too.
        let opening_s = self.model.sessions() as f64 / self.connect_rate;
        if self.connect_rate > 0.0 && opening_s > MAX_OPENING_S {
            return err(format!(
                "connect_rate {:?} sessions/s would take {:.1e} s to open {} sessions (at most {MAX_OPENING_S:.0e} s)",
                self.connect_rate,
                opening_s,
                self.model.sessions()
            ));
        }
        if self.processes > MAX_PROCESSES {
            return err(format!("processes must be at most {MAX_PROCESSES}, got {}", self.processes));
        }
        if let Err(e) = self.resilience.validate() {
            return err(e.to_string());
        }
        if let Some((i, n)) = self.segment {
            if n == 0 || i == 0 || i > n {
                return err(format!("segment {i}/{n} is not valid: segments are numbered 1/N to N/N"));
            }
        }
        if !matches!(self.model, Model::Connect { .. }) {
            if self.mix.is_empty() {
                return err("the request mix is empty".into());
            }
            if self.mix.iter().all(|t| t.weight == 0) {
                return err("every request in the mix has weight 0".into());
            }
            let mut names = std::collections::BTreeSet::new();
            for t in &self.mix {
                if t.method.trim().is_empty() {
                    return err(format!("request '{}' has no method", t.name));
                }
                if !names.insert(t.name.as_str()) {
                    return err(format!(
                        "two requests of the mix are both named '{}'; give each a distinct name",
                        t.name
                    ));
                }
                if t.params.as_ref().is_some_and(|p| !(p.is_object() || p.is_array())) {
                    return err(format!("params of '{}' must be a map or an array", t.name));
                }
            }
        }
        match &self.model {
            Model::Closed { duration, iterations, .. } => {
                if duration.is_none() && iterations.is_none() {
                    return err("a closed model needs a duration, a number of iterations, or both".into());
                }
                if duration.is_some_and(|d| d.is_zero()) || *iterations == Some(0) {
                    return err("duration and iterations must be above zero".into());
                }
            }
            Model::Open { stages, start_rate, max_inflight, arrival_offset, .. } => {
                if !(0.0..1.0).contains(arrival_offset) {
                    return err(format!("arrival_offset must be in [0, 1), got {arrival_offset}"));
                }
                if stages.is_empty() {
                    return err("an open model needs a rate and a duration (or stages)".into());
                }
                if *max_inflight == 0 {
                    return err("max_inflight must be at least 1".into());
                }
                for (i, s) in stages.iter().enumerate() {
                    if s.duration.is_zero() {
                        return err(format!("stage {} has a zero duration", i + 1));
                    }
                    if !s.rate.is_finite() || s.rate < 0.0 {
                        return err(format!("stage {} has an invalid rate {}", i + 1, s.rate));
                    }
                }
                if !start_rate.is_finite() || *start_rate < 0.0 {
                    return err(format!("start_rate must be >= 0, got {start_rate}"));
                }
                if RateCurve::new(*start_rate, stages, 0.0).total_arrivals() < 1.0 {
                    return err("the rate is 0 throughout: no request would be sent".into());
                }
            }
            Model::Connect { .. } => {}
        }
        Ok(())
    }

    /// Share `index` (0-based) of `count` equal shares: sessions, rates, counts and the
    /// in-flight cap divided (remainders go to the first shares), seed and session offset
    /// distinct. Shares of a share compose, so segments can be split over processes again.
    pub fn share(&self, index: u32, count: u32) -> PhasePlan {
        let (i, n) = (index as u64, count.max(1) as u64);
        let split = |total: u64| total / n + u64::from(i < total % n);
        let before = |total: u64| i * (total / n) + i.min(total % n);
        let frac = 1.0 / n as f64;
        let mut p = self.clone();
        p.model = match &self.model {
            Model::Closed { sessions, duration, iterations, think } => Model::Closed {
                sessions: split(*sessions),
                duration: *duration,
                iterations: iterations.map(split),
                think: *think,
            },
            Model::Open { sessions, stages, start_rate, max_inflight, arrival_offset } => Model::Open {
                sessions: split(*sessions),
                stages: stages.iter().map(|s| Stage { duration: s.duration, rate: s.rate * frac }).collect(),
                start_rate: start_rate * frac,
                max_inflight: max_inflight.div_ceil(n),
                arrival_offset: (i as f64 + arrival_offset) / n as f64,
            },
            Model::Connect { sessions, hold, ping_sample } => {
                Model::Connect { sessions: split(*sessions), hold: *hold, ping_sample: split(*ping_sample) }
            }
        };
        p.connect_rate = self.connect_rate * frac;
        p.session_offset = self.session_offset + before(self.model.sessions());
        p.seed = mix_seed(self.seed, index as u64 + 1);
        p
    }

    /// The plan this process runs for `--segment I/N` (unchanged without a segment).
    pub fn segment_share(&self) -> PhasePlan {
        match self.segment {
            Some((i, n)) if n > 1 => self.share(i - 1, n),
            _ => self.clone(),
        }
    }
}

/// SplitMix64 step: distinct, well-spread seeds for shares and sessions.
pub fn mix_seed(seed: u64, salt: u64) -> u64 {
    let mut z = seed.wrapping_add(salt.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The arrival-rate curve of an open model: piecewise linear through the stages.
#[derive(Debug, Clone)]
pub struct RateCurve {
    /// (start offset s, duration s, rate at start, rate at end, arrivals before the stage)
    segments: Vec<(f64, f64, f64, f64, f64)>,
    total: f64,
    /// Arrival k is due when the integral of the rate reaches k + offset.
    offset: f64,
}

impl RateCurve {
    pub fn new(start_rate: f64, stages: &[Stage], offset: f64) -> RateCurve {
        let (mut t, mut n, mut r0) = (0.0, 0.0, start_rate);
        let mut segments = Vec::with_capacity(stages.len());
        for s in stages {
            let d = s.duration.as_secs_f64();
            segments.push((t, d, r0, s.rate, n));
            n += (r0 + s.rate) / 2.0 * d;
            t += d;
            r0 = s.rate;
        }
        RateCurve { segments, total: n, offset }
    }

    /// Expected arrivals over the whole curve.
    pub fn total_arrivals(&self) -> f64 {
        self.total
    }

    /// The rate at `t` seconds.
    pub fn rate_at(&self, t: f64) -> f64 {
        for &(start, d, r0, r1, _) in &self.segments {
            if t < start + d {
                return r0 + (r1 - r0) * ((t - start) / d).max(0.0);
            }
        }
        0.0
    }

    /// When arrival number `k` (0-based) is due, in seconds from the start: the time at
    /// which the integral of the rate reaches `k`. `None` once the curve ends first.
    pub fn time_of(&self, k: u64) -> Option<f64> {
        let k = k as f64 + self.offset;
        if k >= self.total {
            return None;
        }
        for &(start, d, r0, r1, before) in &self.segments {
            let c = k - before;
            let in_stage = (r0 + r1) / 2.0 * d;
            if c < in_stage {
                // Solve a*tau^2 + r0*tau = c with a = (r1 - r0) / (2d); the form
                // 2c / (r0 + sqrt(r0^2 + 4ac)) stays exact as a approaches 0.
                let a = (r1 - r0) / (2.0 * d);
                let disc = (r0 * r0 + 4.0 * a * c).max(0.0);
                let denom = r0 + disc.sqrt();
                let tau = if denom > 0.0 { 2.0 * c / denom } else { 0.0 };
                return Some(start + tau.min(d));
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(model: Model) -> PhasePlan {
        let second = Duration::from_secs(1);
        PhasePlan {
            request_timeout: second,
            connect_timeout: second,
            seed: 1,
            ..PhasePlan::new("p", "tcp://127.0.0.1:1", model)
        }
    }

    fn open(sessions: u64, rate: f64) -> Model {
        Model::Open {
            sessions,
            stages: vec![Stage { duration: Duration::from_secs(10), rate }],
            start_rate: rate,
            max_inflight: 100,
            arrival_offset: 0.0,
        }
    }

    #[test]
    fn constant_and_ramping_schedules() {
        let c = RateCurve::new(100.0, &[Stage { duration: Duration::from_secs(2), rate: 100.0 }], 0.0);
        assert_eq!(c.total_arrivals(), 200.0);
        assert!((c.time_of(50).unwrap() - 0.5).abs() < 1e-9);
        assert!(c.time_of(200).is_none());
        // 0 -> 100/s over 10 s: 500 arrivals, the k-th at sqrt(k / 5).
        let r = RateCurve::new(0.0, &[Stage { duration: Duration::from_secs(10), rate: 100.0 }], 0.0);
        assert_eq!(r.total_arrivals(), 500.0);
        assert!((r.time_of(125).unwrap() - 5.0).abs() < 1e-9);
        assert!((r.rate_at(5.0) - 50.0).abs() < 1e-9);
        // Down-ramp then flat.
        let d = RateCurve::new(
            100.0,
            &[
                Stage { duration: Duration::from_secs(1), rate: 0.0 },
                Stage { duration: Duration::from_secs(1), rate: 10.0 },
            ],
            0.0,
        );
        assert_eq!(d.total_arrivals(), 55.0);
        let mut last = 0.0;
        for k in 0..55 {
            let t = d.time_of(k).unwrap();
            assert!(t >= last && t <= 2.0, "k={k} t={t}");
            last = t;
        }
    }

    #[test]
    fn rejects_bad_plans_with_reasons() {
        let cases = [
            (plan(Model::Connect { sessions: 0, hold: Duration::ZERO, ping_sample: 0 }), "at least 1"),
            (plan(Model::Closed { sessions: 1, duration: None, iterations: None, think: None }), "needs a duration"),
            (plan(open(1, 0.0)), "rate is 0"),
            (PhasePlan { mix: vec![RequestTemplate::new("ping", None, 0)], ..plan(open(1, 1.0)) }, "weight 0"),
            (
                PhasePlan {
                    mix: vec![RequestTemplate::new("ping", None, 1), RequestTemplate::new("ping", None, 1)],
                    ..plan(open(1, 1.0))
                },
                "both named 'ping'",
            ),
            (PhasePlan { segment: Some((0, 4)), ..plan(open(1, 1.0)) }, "numbered 1/N"),
            (PhasePlan { connect_rate: 1e-30, ..plan(open(3, 1.0)) }, "would take 3.0e30 s to open 3 sessions"),
        ];
        for (p, needle) in cases {
            let e = p.validate().unwrap_err().to_string();
            assert!(e.contains(needle), "{e}");
        }
        assert!(plan(open(10, 5.0)).validate().is_ok());
    }

    #[test]
    fn oauth_is_the_runs_in_this_process_and_one_per_plan_in_a_worker() {
        use crate::client::oauth::Secret;
        let tls = ClientTls::default();
        let config = OAuthConfig { client_secret: Some(Secret::new("hunter2")), ..OAuthConfig::default() };
        let run = OAuth::new(config, tls.clone()).unwrap();
        let mut p = plan(open(4, 10.0));
        p.client.oauth = Some(PlanOAuth::of_run(run.clone()));
        // Every share run here takes the run's own (its token caches are the script's).
        let here = p.share(1, 2).client.oauth.unwrap().oauth(&tls).unwrap();
        assert!(Arc::ptr_eq(&here, &run));
        // A worker reads its share from JSON and makes one OAuth for it.
        let json = serde_json::to_string(&p.share(0, 2)).unwrap();
        assert!(json.contains("hunter2"), "the worker needs the secret");
        let worker: PhasePlan = serde_json::from_str(&json).unwrap();
        assert_eq!(worker, p.share(0, 2));
        let o = worker.client.oauth.clone().unwrap();
        let (a, b) = (o.oauth(&tls).unwrap(), worker.client.oauth.as_ref().unwrap().oauth(&tls).unwrap());
        assert!(Arc::ptr_eq(&a, &b) && !Arc::ptr_eq(&a, &run));
        assert!(!format!("{worker:?}").contains("hunter2"), "{worker:?}");
    }

    #[test]
    fn shares_add_up() {
        let p = PhasePlan { connect_rate: 100.0, ..plan(open(10, 9.0)) };
        let shares: Vec<PhasePlan> = (0..3).map(|i| p.share(i, 3)).collect();
        assert_eq!(shares.iter().map(|s| s.model.sessions()).collect::<Vec<_>>(), vec![4, 3, 3]);
        assert_eq!(shares.iter().map(|s| s.session_offset).collect::<Vec<_>>(), vec![0, 4, 7]);
        let rate: f64 = shares.iter().map(|s| s.model.intended_rate().unwrap()).sum();
        assert!((rate - 9.0).abs() < 1e-9);
        assert!(shares[0].seed != shares[1].seed);
        let closed = plan(Model::Closed { sessions: 5, duration: None, iterations: Some(11), think: None });
        let its: u64 = (0..4)
            .map(|i| match closed.share(i, 4).model {
                Model::Closed { iterations, .. } => iterations.unwrap(),
                _ => 0,
            })
            .sum();
        assert_eq!(its, 11);
        // Shares (and shares of shares) send exactly the arrivals of the whole, interleaved.
        let count = |p: &PhasePlan| match &p.model {
            Model::Open { stages, start_rate, arrival_offset, .. } => {
                let c = RateCurve::new(*start_rate, stages, *arrival_offset);
                (0..).take_while(|k| c.time_of(*k).is_some()).count()
            }
            _ => 0,
        };
        let whole = PhasePlan { model: open(10, 100.0 / 3.0), ..p.clone() };
        assert_eq!(count(&whole), 334);
        let parts: usize =
            (0..3).flat_map(|i| (0..2).map(move |j| (i, j))).map(|(i, j)| count(&whole.share(i, 3).share(j, 2))).sum();
        assert_eq!(parts, 334);
        let seg = PhasePlan { segment: Some((2, 2)), ..p.clone() };
        assert_eq!(seg.segment_share().model.sessions(), 5);
        assert_eq!(seg.segment_share().session_offset, 5);
    }
}
