//! Surviving a broken connection: [`Backoff`] (exponential, bounded, with seeded jitter) and
//! [`reopen`], which connects and initializes a new session to the same target, backing off
//! between attempts, within a time budget. [`SessionPolicy`] says what a script session does
//! about a broken connection (reopen it, resend which methods). The load engine's sessions
//! use the same backoff (`load::resilience`).

use super::{ClientError, ClientOptions, Session, Target};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Methods resent by default when their connection broke: they change nothing on the server.
pub const DEFAULT_IDEMPOTENT: &[&str] = &["ping", "tools/list", "resources/read"];

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

/// What a script session does when its connection breaks.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionPolicy {
    /// Methods sent again (once) on the new session when their connection broke.
    pub resend: Vec<String>,
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
    pub jitter: f64,
    /// Give up reopening after this long.
    pub give_up_after: Duration,
    pub seed: u64,
    /// Reopened sessions perform the `initialize` handshake (false for sessions opened
    /// without it: the reopened one is not initialized either).
    pub initialize: bool,
}

impl Default for SessionPolicy {
    fn default() -> Self {
        SessionPolicy {
            resend: DEFAULT_IDEMPOTENT.iter().map(|s| s.to_string()).collect(),
            backoff_initial: Duration::from_millis(50),
            backoff_max: Duration::from_secs(1),
            jitter: 0.5,
            give_up_after: Duration::from_secs(10),
            seed: 0,
            initialize: true,
        }
    }
}

impl SessionPolicy {
    pub fn resends(&self, method: &str) -> bool {
        self.resend.iter().any(|m| m == method)
    }
}

/// Whether `e` means the connection is gone (as opposed to an answer or a timeout).
pub fn is_broken(e: &ClientError) -> bool {
    matches!(e, ClientError::Closed { .. } | ClientError::Connect { .. })
}

/// Opens and initializes (per `policy.initialize`) a new session to `target`, trying at once and then after each
/// backoff wait, until `policy.give_up_after` has passed; returns the last error then.
pub async fn reopen(
    target: &Target,
    opts: Arc<ClientOptions>,
    policy: &SessionPolicy,
    salt: u64,
) -> Result<Session, ClientError> {
    let deadline = Instant::now() + policy.give_up_after;
    let mut backoff = Backoff::new(
        policy.backoff_initial,
        policy.backoff_max,
        policy.jitter,
        policy.seed ^ salt.wrapping_mul(0x9E37_79B9_7F4A_7C15),
    );
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let attempt = tokio::time::timeout(
            left.min(opts.connect_timeout),
            Session::connect_with(target, opts.clone(), policy.initialize),
        )
        .await;
        let err = match attempt {
            Ok(Ok(s)) => return Ok(s),
            Ok(Err(e)) => e,
            Err(_) => ClientError::Timeout {
                target: target.to_string(),
                method: crate::protocol::mcp::methods::INITIALIZE.into(),
                after: left.min(opts.connect_timeout),
                note: String::new(),
            },
        };
        let wait = backoff.next_wait();
        if Instant::now() + wait >= deadline {
            return Err(err);
        }
        tokio::time::sleep(wait).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
