//! [`LoadError`]: what can go wrong in the load engine besides a plan that cannot run
//! ([`PlanError`](super::PlanError)): a `--segment` that is not `I/N`, histograms that do not
//! decode or merge, a resilience policy out of range, a target that cannot be reached (or
//! with which the asked revision cannot be negotiated), and worker processes that cannot be
//! started or given their plan.

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("invalid segment '{0}': expected I/N with 1 <= I <= N, e.g. 3/8")]
    Segment(String),

    // The V2 + base64 histograms of results.
    #[error("histogram is not base64: {0}")]
    HistogramBase64(#[from] base64::DecodeError),
    #[error("invalid histogram: {0:?}")]
    HistogramInvalid(hdrhistogram::serialization::DeserializeError),
    #[error("histogram out of range: {0:?}")]
    HistogramRange(hdrhistogram::AdditionError),
    /// A worker's folded second with another number of request kinds than its plan has.
    #[error("a window with {got} kinds, expected {expected}")]
    WindowKinds { got: usize, expected: usize },

    // The resilience policy, naming the valid range.
    #[error(transparent)]
    Policy(#[from] crate::client::resilient::PolicyError),
    #[error("recovery_fraction must be in (0, 1], got {0}")]
    RecoveryFraction(f64),
    #[error("breaker error_rate must be in (0, 1], got {0}")]
    BreakerErrorRate(f64),
    #[error("breaker window and cool_down must be above zero")]
    BreakerWindow,

    // Reaching the target.
    #[error(transparent)]
    Target(#[from] crate::client::target::TargetError),
    #[error("cannot resolve {host}: {source}")]
    Resolve { host: String, source: std::io::Error },
    #[error("cannot reach {target}: {detail}")]
    Http { target: String, detail: String },
    /// The stateless revision a phase asked for could not be negotiated (the target
    /// unreachable, no revision in common).
    #[error("negotiating protocol {version}: {source}")]
    Negotiate { version: String, source: Box<crate::client::ClientError> },
    #[error("{0} resolves to no address")]
    NoAddress(String),
    #[error("the built-in server must be started first")]
    BuiltinNotStarted,
    /// A built-in server sized for the phase did not start.
    #[error(transparent)]
    Builtin(#[from] crate::managed::ManagedError),

    // Worker processes: the coordinator's side, then the worker's.
    #[error("cannot start {exe}: {source}")]
    SpawnWorker { exe: String, source: std::io::Error },
    #[error("no pipes to the worker")]
    NoPipes,
    #[error(transparent)]
    EncodePlan(serde_json::Error),
    #[error("no plan on stdin")]
    NoPlan,
    #[error("cannot read the plan: {0}")]
    ReadPlan(std::io::Error),
    #[error("invalid plan: {0}")]
    InvalidPlan(serde_json::Error),
    #[error(transparent)]
    Plan(#[from] super::PlanError),
}
