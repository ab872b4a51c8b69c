//! The async bridge: scripts are synchronous and run on their own threads; MCP I/O is async
//! and runs on the tokio runtime. [`Bridge::run`] blocks the script thread (never a runtime
//! worker) until a future completes, in one of two [`BridgeMode`]s: `Spawn` hands the future
//! to the runtime as a task and waits on a oneshot reply (the Rhai book's "blocking"
//! pattern); `Drive` (the default on multi-thread runtimes) polls it on the script thread
//! with the runtime's handle, so the reply, delivered by the connection's reader task over
//! the dispatcher's oneshot, wakes the script thread directly: one thread hop instead of
//! two. `benches/bridge.rs` measures both.
//!
//! A [`StopSignal`] ends a script early (Ctrl-C or its timeout). The script's progress
//! callback reads it between operations; a script blocked in the bridge is woken because
//! every bridged task also waits on the signal.

use std::future::Future;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::runtime::Handle;
use tokio::sync::{oneshot, watch};

/// Why a script was stopped from outside.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// Ctrl-C, or the caller cancelled the run.
    Cancelled,
    /// The script's time budget ran out.
    Timeout,
}

impl StopReason {
    fn code(self) -> u8 {
        match self {
            StopReason::Cancelled => 1,
            StopReason::Timeout => 2,
        }
    }

    fn from_code(code: u8) -> Option<StopReason> {
        match code {
            1 => Some(StopReason::Cancelled),
            2 => Some(StopReason::Timeout),
            _ => None,
        }
    }

    /// `cancelled` or `timeout`: the token scripts see in the termination error.
    pub fn as_str(self) -> &'static str {
        match self {
            StopReason::Cancelled => "cancelled",
            StopReason::Timeout => "timeout",
        }
    }
}

/// A one-shot "stop now" flag that synchronous code polls and async code awaits.
/// The first reason given wins.
#[derive(Debug)]
pub struct StopSignal {
    state: AtomicU8,
    tx: watch::Sender<u8>,
}

impl StopSignal {
    pub fn new() -> Arc<StopSignal> {
        Arc::new(StopSignal { state: AtomicU8::new(0), tx: watch::channel(0).0 })
    }

    /// Stops everything waiting on this signal; returns false when it was already stopped.
    pub fn trigger(&self, reason: StopReason) -> bool {
        // AcqRel: whoever sees the flag set also sees what happened before the trigger.
        let won = self.state.compare_exchange(0, reason.code(), Ordering::AcqRel, Ordering::Acquire).is_ok();
        if won {
            self.tx.send_replace(reason.code());
        }
        won
    }

    /// Why the signal was triggered, if it was. Cheap: one atomic load (the progress
    /// callback calls it for every script operation).
    pub fn reason(&self) -> Option<StopReason> {
        // Relaxed is enough for polling a flag; `trigger` publishes with AcqRel.
        StopReason::from_code(self.state.load(Ordering::Relaxed))
    }

    /// Resolves once the signal is triggered.
    pub async fn stopped(&self) -> StopReason {
        let mut rx = self.tx.subscribe();
        let code = match rx.wait_for(|c| *c != 0).await {
            Ok(c) => *c,
            Err(_) => 1,
        };
        StopReason::from_code(code).unwrap_or(StopReason::Cancelled)
    }
}

/// Why a bridged call produced no value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BridgeError {
    #[error("the script was stopped ({})", .0.as_str())]
    Stopped(StopReason),
    #[error("no network access here: this engine only compiles and checks scripts")]
    Detached,
    #[error("a script must not run on an async runtime thread (run it with script::runner::spawn)")]
    OnRuntimeThread,
    #[error("the async runtime shut down before the call finished")]
    RuntimeGone,
    #[error("the call did not finish within {}", crate::util::duration::format_duration(*.0))]
    Timeout(Duration),
}

/// How a bridged future reaches the runtime.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BridgeMode {
    /// [`Drive`](BridgeMode::Drive) on a multi-thread runtime, else [`Spawn`](BridgeMode::Spawn).
    #[default]
    Auto,
    /// The script thread polls the future itself (`Handle::block_on`) while the runtime's
    /// workers drive sockets and timers; the reply wakes the script thread directly. One
    /// thread hop per request. Needs a multi-thread runtime.
    Drive,
    /// The future runs as a task on a runtime worker and its output comes back over a
    /// oneshot channel the script thread blocks on. Two thread hops per request.
    Spawn,
}

/// A script thread's way into the tokio runtime.
#[derive(Clone, Debug)]
pub struct Bridge {
    handle: Option<Handle>,
    stop: Arc<StopSignal>,
    drive: bool,
}

impl Bridge {
    /// A bridge in [`BridgeMode::Auto`].
    pub fn new(handle: Handle, stop: Arc<StopSignal>) -> Bridge {
        Bridge::with_mode(handle, stop, BridgeMode::Auto)
    }

    /// A bridge in `mode`; `Drive` falls back to `Spawn` on a current-thread runtime,
    /// whose I/O only its own `block_on` can drive.
    pub fn with_mode(handle: Handle, stop: Arc<StopSignal>, mode: BridgeMode) -> Bridge {
        let multi = handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread;
        let drive = multi && mode != BridgeMode::Spawn;
        Bridge { handle: Some(handle), stop, drive }
    }

    /// A bridge without a runtime, for engines that only compile, check or document
    /// scripts: every call fails with [`BridgeError::Detached`].
    pub fn detached() -> Bridge {
        Bridge { handle: None, stop: StopSignal::new(), drive: false }
    }

    pub fn stop_signal(&self) -> &Arc<StopSignal> {
        &self.stop
    }

    pub fn handle(&self) -> Option<&Handle> {
        self.handle.as_ref()
    }

    /// Runs `fut` on the runtime and blocks this (non-runtime) thread until it finishes or
    /// the stop signal fires, whichever comes first.
    pub fn run<F, T>(&self, fut: F) -> Result<T, BridgeError>
    where
        F: Future<Output = T> + Send + 'static,
        T: Send + 'static,
    {
        let handle = self.runtime()?;
        if let Some(r) = self.stop.reason() {
            return Err(BridgeError::Stopped(r));
        }
        let mut stop = self.stop.tx.subscribe();
        let stopped = async move {
            let code = stop.wait_for(|c| *c != 0).await.map(|c| *c).unwrap_or(1);
            BridgeError::Stopped(StopReason::from_code(code).unwrap_or(StopReason::Cancelled))
        };
        if self.drive {
            // Poll on this thread; the runtime's workers deliver I/O readiness and timers,
            // and the reply wakes this thread directly: one thread hop per call.
            return handle.block_on(async move {
                tokio::select! {
                    biased;
                    v = fut => Ok(v),
                    e = stopped => Err(e),
                }
            });
        }
        // Spawn mode: the future runs as a task; its output comes back over a oneshot.
        let (tx, rx) = oneshot::channel();
        handle.spawn(async move {
            let out = tokio::select! {
                biased;
                v = fut => Ok(v),
                e = stopped => Err(e),
            };
            let _ = tx.send(out);
        });
        rx.blocking_recv().unwrap_or(Err(BridgeError::RuntimeGone))
    }

    /// Runs `fut` to completion even when the script was stopped, within `limit`: for
    /// cleanup (closing sessions) after a script ended.
    pub fn run_cleanup<F, T>(&self, fut: F, limit: Duration) -> Result<T, BridgeError>
    where
        F: Future<Output = T> + Send + 'static,
        T: Send + 'static,
    {
        let handle = self.runtime()?;
        let (tx, rx) = oneshot::channel();
        handle.spawn(async move {
            let _ = tx.send(tokio::time::timeout(limit, fut).await.map_err(|_| BridgeError::Timeout(limit)));
        });
        rx.blocking_recv().unwrap_or(Err(BridgeError::RuntimeGone))
    }

    fn runtime(&self) -> Result<&Handle, BridgeError> {
        let handle = self.handle.as_ref().ok_or(BridgeError::Detached)?;
        if Handle::try_current().is_ok() {
            // blocking_recv would panic inside the runtime; refuse instead.
            return Err(BridgeError::OnRuntimeThread);
        }
        Ok(handle)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[test]
    fn runs_futures_and_wakes_on_stop() {
        for mode in [BridgeMode::Drive, BridgeMode::Spawn] {
            wakes_on_stop(mode);
        }
    }

    fn wakes_on_stop(mode: BridgeMode) {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        let stop = StopSignal::new();
        let bridge = Bridge::with_mode(rt.handle().clone(), stop.clone(), mode);
        assert_eq!(bridge.drive, mode == BridgeMode::Drive);
        assert_eq!(bridge.run(async { 41 + 1 }).unwrap(), 42);

        let s2 = stop.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            s2.trigger(StopReason::Timeout);
        });
        let t0 = Instant::now();
        let r = bridge.run(async { tokio::time::sleep(Duration::from_secs(30)).await });
        assert_eq!(r, Err(BridgeError::Stopped(StopReason::Timeout)));
        assert!(t0.elapsed() < Duration::from_secs(5));
        // Later calls fail at once; the first reason stays.
        assert!(!stop.trigger(StopReason::Cancelled));
        assert_eq!(bridge.run(async {}), Err(BridgeError::Stopped(StopReason::Timeout)));
        // Cleanup still runs.
        assert_eq!(bridge.run_cleanup(async { 7 }, Duration::from_secs(1)).unwrap(), 7);
    }

    #[test]
    fn refuses_runtime_threads_and_detached_use() {
        assert_eq!(Bridge::detached().run(async {}), Err(BridgeError::Detached));
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let bridge = Bridge::with_mode(rt.handle().clone(), StopSignal::new(), BridgeMode::Drive);
        assert!(!bridge.drive, "a current-thread runtime cannot be driven from another thread");
        let r = rt.block_on(async { bridge.run(async {}) });
        assert_eq!(r, Err(BridgeError::OnRuntimeThread));
    }
}
