//! The load engine: declarative load phases run entirely in Rust, spread over worker
//! processes when one process's file budget cannot hold the sessions.
//! Networking only: no Rhai types here (the `load` and `metrics` script namespaces live in
//! `script::bindings`).
//!
//! # Layout
//! - [`plan`]: [`PhasePlan`] and [`Model`] (closed, open with stages, connect), validation,
//!   shares for worker processes and `--segment`.
//! - [`conn`]: lean load-only connections for `tcp://`, [`mux`] their multiplexed form for
//!   the open model; [`http_conn`] the lean Streamable HTTP connection for `http://`
//!   (its wire reading in `http_wire`); [`pool`] opens sessions (any transport) at a
//!   connect rate from spread loopback source addresses.
//! - [`recorder`]: sharded per-kind HdrHistograms and counters, folded once a second.
//! - [`exec`]: running a phase in one process (closed and connect models), [`open`] the open
//!   model; [`result`]: [`PhaseResult`] and exact [`merge`].
//! - [`coordinator`]: [`run`] a phase: segment share, capacity checks, this process or
//!   workers, sampling.
//! - [`workers`]: scale-out over `mcpscript worker` processes (coordinator side);
//!   [`worker`]: the worker process's side of the pipe protocol.
//! - [`resilience`]: reconnect backoff, resends, the circuit breaker, recovery measurement.
//! - [`live`]: the live view of a running phase (its folded seconds added up) for the
//!   console's progress display.
//! - [`error`]: [`LoadError`], what can go wrong besides a [`PlanError`].
//! - [`bottleneck`]: who limited a phase (mcpscript, the target, the network or nothing),
//!   judged from send lag, CPU, dropped arrivals, workers, errors and latency growth.
//! - [`sampler`]: RSS and CPU of processes over time. [`builtin`]: the built-in server
//!   started at a size that holds the wanted connections.

pub mod bottleneck;
pub mod builtin;
pub mod conn;
pub mod coordinator;
pub mod error;
pub mod exec;
pub mod http_conn;
mod http_wire;
pub mod live;
pub mod mux;
pub mod open;
pub mod plan;
pub mod pool;
pub mod recorder;
pub mod resilience;
pub mod result;
pub mod sampler;
pub mod worker;
pub mod workers;

pub use coordinator::{run, RunEnv};
pub use error::LoadError;
pub use plan::{Model, ModelKind, PhasePlan, PlanError, RequestTemplate, Stage};
pub use result::{merge, PhaseResult, PhaseStatus};

use tokio::sync::watch;

/// Resolves once the flag turns true; never when its sender is gone without setting it.
pub async fn until_true(rx: &mut watch::Receiver<bool>) {
    if rx.wait_for(|s| *s).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// What the scripting host tells the load engine about a run (`mcpscript run` flags).
#[derive(Debug, Clone, Default)]
pub struct LoadContext {
    /// `--segment I/N`: every phase runs its I-th of N shares.
    pub segment: Option<(u32, u32)>,
    /// The target is the built-in server running inside this process.
    pub builtin_here: bool,
    /// `--target-pid`: target processes whose RSS and CPU are sampled.
    pub target_pids: Vec<u32>,
    /// Executable for worker and server child processes (default: this executable).
    pub exe: Option<std::path::PathBuf>,
    /// Chaos actions and session breaks of the run, shared by its phases (recovery).
    pub events: std::sync::Arc<resilience::Events>,
    /// The run's target when mcpscript started it as child processes (chaos control).
    pub managed: Option<SharedServer>,
}

/// A managed target shared by the run and its script (`chaos::kill()` and friends).
#[derive(Clone)]
pub struct SharedServer(pub std::sync::Arc<tokio::sync::Mutex<crate::managed::ManagedServer>>);

impl std::fmt::Debug for SharedServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SharedServer")
    }
}

/// Parses `I/N` (1-based: `1/4` .. `4/4`).
pub fn parse_segment(s: &str) -> Result<(u32, u32), LoadError> {
    let bad = || LoadError::Segment(s.to_string());
    let (i, n) = s.trim().split_once('/').ok_or_else(bad)?;
    let (i, n): (u32, u32) = (i.trim().parse().map_err(|_| bad())?, n.trim().parse().map_err(|_| bad())?);
    if n == 0 || i == 0 || i > n {
        return Err(bad());
    }
    Ok((i, n))
}
