//! Surviving a broken connection, for script sessions and load sessions alike: one policy
//! ([`Policy`]: reconnect, [`BackoffPlan`], which methods are resent and how often), one
//! reader of its options ([`Policy::apply`], also used by `mcpscript check`), one backoff
//! ([`Backoff`]: exponential, bounded, with seeded jitter) and one retry loop
//! ([`with_backoff`]). [`reopen`] connects and initializes a new session to the same target
//! (a stateless one negotiates again with `server/discover`: it has nothing to
//! re-initialize) within a time budget ([`SessionPolicy`] adds that budget to the policy for script
//! sessions); the load engine's sessions retry until their phase ends (`load::exec`).

use super::{ClientError, ClientOptions, Session, Target};
use crate::util::duration::{parse_duration, DurationError};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Methods resent by default when their connection broke: they change nothing on the server.
pub const DEFAULT_IDEMPOTENT: &[&str] = &["ping", "tools/list", "resources/read"];

/// Most extra attempts of one request a policy may ask for.
pub const MAX_RESENDS: u32 = 100;

/// Exponential backoff with seeded jitter.
pub struct Backoff {
    next: Duration,
    max: Duration,
    jitter: f64,
    rng: SmallRng,
}

impl Backoff {
    /// Waits start at `initial` and double up to `max`; each is drawn uniformly from
    /// [(1 - jitter) * b, b] with a generator seeded by `seed`.
    pub fn new(initial: Duration, max: Duration, jitter: f64, seed: u64) -> Backoff {
        Backoff {
            next: initial,
            max: max.max(initial),
            jitter: jitter.clamp(0.0, 1.0),
            rng: SmallRng::seed_from_u64(seed),
        }
    }

    /// The next wait (and doubles the one after, up to the maximum).
    pub fn next_wait(&mut self) -> Duration {
        let b = self.next;
        self.next = (self.next * 2).min(self.max);
        let f = if self.jitter > 0.0 { 1.0 - self.jitter * self.rng.random::<f64>() } else { 1.0 };
        b.mul_f64(f)
    }
}

/// How the waits between reconnect attempts grow: from `initial`, doubling up to `max`,
/// each drawn from [(1 - jitter) * b, b].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BackoffPlan {
    pub initial: Duration,
    pub max: Duration,
    pub jitter: f64,
}

impl Default for BackoffPlan {
    fn default() -> Self {
        BackoffPlan { initial: Duration::from_millis(50), max: Duration::from_secs(1), jitter: 0.5 }
    }
}

impl BackoffPlan {
    /// Why the plan cannot be used, naming the valid range.
    pub fn validate(&self) -> Result<(), PolicyError> {
        if self.initial.is_zero() || self.max < self.initial {
            return Err(PolicyError::Backoff { initial: self.initial, max: self.max });
        }
        if !(0.0..=1.0).contains(&self.jitter) {
            return Err(PolicyError::Jitter(self.jitter.to_string()));
        }
        Ok(())
    }

    /// One session's backoff, seeded.
    pub fn start(&self, seed: u64) -> Backoff {
        Backoff::new(self.initial, self.max, self.jitter, seed)
    }
}

/// What a session does when its connection breaks: the resilience policy shared by script
/// sessions (`connect(target, #{...})`) and load phases (`load::*(#{...})`), read from the
/// same option names by [`Policy::apply`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Policy {
    /// Reopen the session (a load tool keeps its load, and a script's session its target).
    pub reconnect: bool,
    pub backoff: BackoffPlan,
    /// Methods sent again after their connection broke (idempotent ones).
    pub resend: Vec<String>,
    /// Also resend those methods after a timeout (off by default: timeouts are measured).
    pub resend_on_timeout: bool,
    /// Most extra attempts per request.
    pub max_resends: u32,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            reconnect: true,
            backoff: BackoffPlan::default(),
            resend: DEFAULT_IDEMPOTENT.iter().map(|s| s.to_string()).collect(),
            resend_on_timeout: false,
            max_resends: 1,
        }
    }
}

/// Why a request's attempt failed, as the policy distinguishes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// Its connection broke (it was reopened before the next attempt).
    Broken,
    /// It got no answer in time; the connection is still up.
    Timeout,
}

/// A resilience option that cannot be used; the message names the option and what it takes.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum PolicyError {
    #[error("{key} must be true or false, not {got}")]
    NotBool { key: String, got: String },
    #[error("{key} must be a duration such as \"50ms\", not {got}")]
    NotDuration { key: String, got: String },
    #[error("{key}: {source}")]
    Duration { key: String, source: DurationError },
    #[error("{key} must be a map #{{initial, max, jitter}}, not {got}")]
    BackoffNotMap { key: String, got: String },
    #[error("{key}: unknown key '{name}'; keys are initial, max, jitter")]
    BackoffKey { key: String, name: String },
    #[error("backoff must be above zero with max >= initial, got initial {initial:?} and max {max:?}")]
    Backoff { initial: Duration, max: Duration },
    #[error("backoff jitter must be a number in [0, 1], got {0}")]
    Jitter(String),
    #[error("{key} must be an array of method names (e.g. [\"ping\", \"tools/list\"]) or false, not {got}")]
    Resend { key: String, got: String },
    #[error("{key} must be a whole number from 0 to {MAX_RESENDS}, not {got}")]
    MaxResends { key: String, got: String },
}

/// A value as an option message shows it (strings quoted, as the script wrote them).
fn shown(v: &Value) -> String {
    v.to_string()
}

fn boolean(key: &str, v: &Value) -> Result<bool, PolicyError> {
    v.as_bool().ok_or_else(|| PolicyError::NotBool { key: key.into(), got: shown(v) })
}

/// A duration option: a string with a unit (`"50ms"`, `"2s"`).
pub fn duration(key: &str, v: &Value) -> Result<Duration, PolicyError> {
    let s = v.as_str().ok_or_else(|| PolicyError::NotDuration { key: key.into(), got: shown(v) })?;
    parse_duration(s).map_err(|source| PolicyError::Duration { key: key.into(), source })
}

impl Policy {
    /// The option names [`Policy::apply`] reads.
    pub const KEYS: &'static [&'static str] = &["reconnect", "backoff", "resend", "resend_on_timeout", "max_resends"];

    /// Applies option `key` (one of [`Policy::KEYS`]) with value `v` over this policy;
    /// `Ok(false)` when `key` is not a resilience option. A `backoff` map sets what it names
    /// (a larger `initial` raises an unset `max` with it) and is checked whole.
    pub fn apply(&mut self, key: &str, v: &Value) -> Result<bool, PolicyError> {
        match key {
            "reconnect" => self.reconnect = boolean(key, v)?,
            "resend_on_timeout" => self.resend_on_timeout = boolean(key, v)?,
            "max_resends" => {
                self.max_resends = v
                    .as_u64()
                    .filter(|n| *n <= u64::from(MAX_RESENDS))
                    .ok_or_else(|| PolicyError::MaxResends { key: key.into(), got: shown(v) })?
                    as u32
            }
            "resend" => {
                let bad = || PolicyError::Resend { key: key.into(), got: shown(v) };
                self.resend = match v {
                    Value::Bool(false) => vec![],
                    Value::Array(a) => {
                        a.iter().map(|m| m.as_str().map(str::to_string).ok_or_else(bad)).collect::<Result<_, _>>()?
                    }
                    _ => return Err(bad()),
                }
            }
            "backoff" => {
                let m = v.as_object().ok_or_else(|| PolicyError::BackoffNotMap { key: key.into(), got: shown(v) })?;
                let mut b = self.backoff;
                let mut max_set = false;
                for (k, v) in m {
                    let sub = format!("{key}.{k}");
                    match k.as_str() {
                        "initial" => b.initial = duration(&sub, v)?,
                        "max" => {
                            b.max = duration(&sub, v)?;
                            max_set = true;
                        }
                        "jitter" => {
                            b.jitter = v
                                .as_f64()
                                .filter(|j| (0.0..=1.0).contains(j))
                                .ok_or_else(|| PolicyError::Jitter(shown(v)))?
                        }
                        name => return Err(PolicyError::BackoffKey { key: key.into(), name: name.into() }),
                    }
                }
                if !max_set {
                    b.max = b.max.max(b.initial);
                }
                b.validate()?;
                self.backoff = b;
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// Why the policy cannot be used, naming the valid range.
    pub fn validate(&self) -> Result<(), PolicyError> {
        self.backoff.validate()?;
        if self.max_resends > MAX_RESENDS {
            return Err(PolicyError::MaxResends { key: "max_resends".into(), got: self.max_resends.to_string() });
        }
        Ok(())
    }

    /// Whether `method` may be sent more than once.
    pub fn resends(&self, method: &str) -> bool {
        self.max_resends > 0 && self.resend.iter().any(|m| m == method)
    }

    /// Whether `method`, already resent `attempts` times, is sent again after `failure`.
    pub fn again(&self, method: &str, attempts: u32, failure: Failure) -> bool {
        attempts < self.max_resends && self.resends(method) && (failure == Failure::Broken || self.resend_on_timeout)
    }
}

/// What a script session does when its connection breaks: the shared [`Policy`] plus how
/// long one reopening may take.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionPolicy {
    pub policy: Policy,
    /// Give up reopening after this long.
    pub give_up_after: Duration,
    pub seed: u64,
    /// Reopened sessions perform the `initialize` handshake (false for sessions opened
    /// without it: the reopened one is not initialized either).
    pub initialize: bool,
}

impl Default for SessionPolicy {
    fn default() -> Self {
        SessionPolicy { policy: Policy::default(), give_up_after: Duration::from_secs(10), seed: 0, initialize: true }
    }
}

impl SessionPolicy {
    /// The option names [`SessionPolicy::apply`] reads: the shared ones and `give_up_after`.
    pub const KEYS: &'static [&'static str] =
        &["reconnect", "backoff", "resend", "resend_on_timeout", "max_resends", "give_up_after"];

    /// Applies option `key`; `Ok(false)` when it is not a resilience option.
    pub fn apply(&mut self, key: &str, v: &Value) -> Result<bool, PolicyError> {
        if key == "give_up_after" {
            self.give_up_after = duration(key, v)?;
            return Ok(true);
        }
        self.policy.apply(key, v)
    }
}

/// Runs `attempt` until it succeeds: at once when `at_once`, then after each backoff wait.
/// `wait(d)` waits `d` and says whether to try again (false: the budget is spent or the
/// caller stopped); the last error is returned then (`None` if nothing was tried).
pub async fn with_backoff<T, E, A, AF, W, WF>(
    backoff: &mut Backoff,
    at_once: bool,
    mut attempt: A,
    mut wait: W,
) -> Result<T, Option<E>>
where
    A: FnMut() -> AF,
    AF: Future<Output = Result<T, E>>,
    W: FnMut(Duration) -> WF,
    WF: Future<Output = bool>,
{
    if !at_once && !wait(backoff.next_wait()).await {
        return Err(None);
    }
    loop {
        let e = match attempt().await {
            Ok(t) => return Ok(t),
            Err(e) => e,
        };
        if !wait(backoff.next_wait()).await {
            return Err(Some(e));
        }
    }
}

/// The request that negotiates a session asking for `version`.
fn negotiation(version: &str) -> &'static str {
    if crate::protocol::stateless::is_stateless(version) {
        crate::protocol::stateless::DISCOVER
    } else {
        crate::protocol::mcp::methods::INITIALIZE
    }
}

/// Whether `e` means the connection is gone (as opposed to an answer or a timeout).
pub fn is_broken(e: &ClientError) -> bool {
    matches!(e, ClientError::Closed { .. } | ClientError::Connect { .. })
}

/// Opens and initializes (per `policy.initialize`) a new session to `target`, trying at once
/// and then after each backoff wait, until `policy.give_up_after` has passed; returns the
/// last error then.
pub async fn reopen(
    target: &Target,
    opts: Arc<ClientOptions>,
    policy: &SessionPolicy,
    salt: u64,
) -> Result<Session, ClientError> {
    let deadline = Instant::now() + policy.give_up_after;
    let mut backoff = policy.policy.backoff.start(policy.seed ^ salt.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let attempt = || {
        let left = deadline.saturating_duration_since(Instant::now()).min(opts.connect_timeout);
        let opts = opts.clone();
        let method = negotiation(&opts.protocol_version);
        async move {
            match tokio::time::timeout(left, Session::connect_with(target, opts, policy.initialize)).await {
                Ok(r) => r,
                Err(_) => Err(ClientError::Timeout {
                    target: target.to_string(),
                    method: method.into(),
                    after: left,
                    note: String::new(),
                }),
            }
        }
    };
    let wait = |d: Duration| async move {
        if Instant::now() + d >= deadline {
            return false;
        }
        tokio::time::sleep(d).await;
        true
    };
    with_backoff(&mut backoff, true, attempt, wait).await.map_err(|e| {
        e.unwrap_or_else(|| ClientError::Closed { target: target.to_string(), detail: "not reopened".into() })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn backoff_doubles_to_the_cap_with_seeded_jitter() {
        let b = || Backoff::new(Duration::from_millis(50), Duration::from_secs(1), 0.5, 7);
        let (mut a, mut c) = (b(), b());
        let wa: Vec<Duration> = (0..8).map(|_| a.next_wait()).collect();
        assert_eq!(wa, (0..8).map(|_| c.next_wait()).collect::<Vec<_>>(), "same seed, same waits");
        assert!(wa[0] >= Duration::from_millis(25) && wa[0] <= Duration::from_millis(50));
        assert!(wa[7] >= Duration::from_millis(500) && wa[7] <= Duration::from_secs(1), "{:?}", wa[7]);
        let mut d = Backoff::new(Duration::from_millis(50), Duration::from_secs(1), 0.5, 8);
        assert_ne!(wa, (0..8).map(|_| d.next_wait()).collect::<Vec<_>>());
        let mut flat = Backoff::new(Duration::from_millis(10), Duration::from_millis(40), 0.0, 1);
        let w: Vec<u128> = (0..4).map(|_| flat.next_wait().as_millis()).collect();
        assert_eq!(w, vec![10, 20, 40, 40]);
    }

    #[test]
    fn one_reader_applies_each_option_and_names_what_is_wrong() {
        let mut p = Policy::default();
        assert_eq!(p.apply("backoff", &json!({"initial": "2s"})), Ok(true));
        assert_eq!(p.backoff.initial, Duration::from_secs(2));
        assert_eq!(p.backoff.max, Duration::from_secs(2), "an unset max rises with initial");
        assert_eq!(p.apply("resend", &json!(false)), Ok(true));
        assert!(!p.resends("ping"));
        assert_eq!(p.apply("resend", &json!(["tools/call"])), Ok(true));
        assert!(p.resends("tools/call"));
        assert_eq!(p.apply("max_resends", &json!(3)), Ok(true));
        assert_eq!(p.apply("sessions", &json!(3)), Ok(false), "not a resilience option");
        let e = |k: &str, v: Value| Policy::default().apply(k, &v).unwrap_err().to_string();
        assert_eq!(
            e("backoff", json!({"max": "10ms"})),
            "backoff must be above zero with max >= initial, got initial 50ms and max 10ms"
        );
        assert!(e("backoff", json!({"initial": 50})).contains("backoff.initial must be a duration such as \"50ms\""));
        assert!(e("backoff", json!({"initial": "5 parsecs"})).starts_with("backoff.initial: "));
        assert_eq!(e("backoff", json!({"jitter": 2})), "backoff jitter must be a number in [0, 1], got 2");
        assert_eq!(
            e("backoff", json!({"intial": "1s"})),
            "backoff: unknown key 'intial'; keys are initial, max, jitter"
        );
        assert_eq!(e("reconnect", json!("yes")), "reconnect must be true or false, not \"yes\"");
        assert!(e("resend", json!([1])).starts_with("resend must be an array of method names"));
        assert_eq!(e("max_resends", json!(101)), "max_resends must be a whole number from 0 to 100, not 101");
        let mut s = SessionPolicy::default();
        assert_eq!(s.apply("give_up_after", &json!("2s")), Ok(true));
        assert_eq!(s.give_up_after, Duration::from_secs(2));
    }

    #[test]
    fn again_follows_the_policy() {
        let mut p = Policy::default();
        assert!(p.again("ping", 0, Failure::Broken));
        assert!(!p.again("ping", 1, Failure::Broken), "max_resends 1");
        assert!(!p.again("tools/call", 0, Failure::Broken), "not idempotent");
        assert!(!p.again("ping", 0, Failure::Timeout), "timeouts are measured unless asked");
        p.resend_on_timeout = true;
        p.max_resends = 2;
        assert!(p.again("ping", 1, Failure::Timeout));
        assert!(!p.again("ping", 2, Failure::Timeout));
    }

    #[tokio::test]
    async fn with_backoff_waits_first_unless_told_and_returns_the_last_error() {
        let mut b =
            BackoffPlan { initial: Duration::from_millis(1), max: Duration::from_millis(4), jitter: 0.0 }.start(1);
        let mut tries = 0;
        let mut waits = vec![];
        let r: Result<(), Option<u32>> = with_backoff(
            &mut b,
            false,
            || {
                tries += 1;
                let n = tries;
                async move { Err(n) }
            },
            |d| {
                waits.push(d.as_millis());
                let go = waits.len() < 4;
                async move { go }
            },
        )
        .await;
        assert_eq!(r, Err(Some(3)), "three attempts, each after a wait; the fourth wait gives up");
        assert_eq!(waits, vec![1, 2, 4, 4]);
        let mut b = BackoffPlan::default().start(1);
        let r: Result<u8, Option<()>> = with_backoff(&mut b, true, || async { Ok(7) }, |_| async { false }).await;
        assert_eq!(r, Ok(7), "at once: no wait before the first attempt");
    }

    #[tokio::test]
    async fn reopen_gives_up_after_its_budget() {
        // A port nobody listens on: every attempt is refused at once.
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let target: Target = format!("tcp://127.0.0.1:{port}").parse().unwrap();
        let policy = SessionPolicy { give_up_after: Duration::from_millis(300), ..SessionPolicy::default() };
        let t0 = Instant::now();
        let r = reopen(&target, Arc::new(ClientOptions::default()), &policy, 1).await;
        assert!(r.is_err());
        assert!(t0.elapsed() < Duration::from_millis(600), "{:?}", t0.elapsed());
        assert!(t0.elapsed() >= Duration::from_millis(100), "it retried: {:?}", t0.elapsed());
    }
}
