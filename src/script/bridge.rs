//! The async bridge: scripts are synchronous and run on their own threads; MCP I/O is async
//! and runs on the tokio runtime. [`Bridge::run`] blocks the script thread (never a runtime
//! worker) until a future completes, in one of two [`BridgeMode`]s: `Spawn` hands the future
//! to the runtime as a task and waits on a oneshot reply (the Rhai book's "blocking"
//! pattern); `Drive` (the default on multi-thread runtimes) polls it on the script thread
//! with the runtime's handle, so the reply, delivered by the connection's reader task over
//! the dispatcher's oneshot, wakes the script thread directly: one thread hop instead of
//! two. `benches/bridge.rs` measures both.
//!
//! Session I/O goes further ([`Bridge::run_io`]): each script thread owns a small
//! current-thread runtime ([`LocalRuntime`]) and the sessions a script opens live on it, so
//! the script thread itself waits in `epoll` for its replies and the kernel wakes it directly:
//! no thread hop at all, the same path a Rust client on its own runtime takes. The price: a
//! script's sessions only make progress while the script waits on one of them or sleeps;
//! otherwise (computing, or waiting for a load phase, which runs on the shared runtime) the
//! kernel buffers what the server sends until the next such call.
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
    #[error("the call did not finish within {}", crate::util::human::duration(*.0))]
    Timeout(Duration),
}

/// How a bridged future reaches the runtime.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BridgeMode {
    /// Sessions on the script thread's own runtime ([`Local`](BridgeMode::Local)) and
    /// everything else [`Drive`](BridgeMode::Drive)n on a multi-thread runtime, else
    /// [`Spawn`](BridgeMode::Spawn)ed.
    #[default]
    Auto,
    /// Session I/O on the script thread's own current-thread runtime: the kernel wakes the
    /// script thread itself when a reply arrives. No thread hop per request.
    Local,
    /// The script thread polls the future itself (`Handle::block_on`) while the runtime's
    /// workers drive sockets and timers; the reply wakes the script thread directly. One
    /// thread hop per request. Needs a multi-thread runtime.
    Drive,
    /// The future runs as a task on a runtime worker and its output comes back over a
    /// oneshot channel the script thread blocks on. Two thread hops per request.
    Spawn,
}

/// A script thread's own current-thread runtime, on which its sessions live (see the module
/// documentation). Dropping it never blocks, even from inside another runtime.
#[derive(Debug)]
pub struct LocalRuntime(Option<tokio::runtime::Runtime>);

impl LocalRuntime {
    pub fn new() -> std::io::Result<Arc<LocalRuntime>> {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        Ok(Arc::new(LocalRuntime(Some(rt))))
    }

    fn block_on<F: Future>(&self, fut: F) -> Result<F::Output, BridgeError> {
        match &self.0 {
            Some(rt) => Ok(rt.block_on(fut)),
            None => Err(BridgeError::RuntimeGone),
        }
    }
}

impl Drop for LocalRuntime {
    fn drop(&mut self) {
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}

/// A script thread's way into the tokio runtime.
#[derive(Clone, Debug)]
pub struct Bridge {
    handle: Option<Handle>,
    stop: Arc<StopSignal>,
    drive: bool,
    /// Where session I/O runs ([`Bridge::run_io`]); `None`: on the shared runtime.
    local: Option<Arc<LocalRuntime>>,
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
        // `Local` needs [`with_local`](Bridge::with_local); other calls drive when they can.
        Bridge { handle: Some(handle), stop, drive, local: None }
    }

    /// This bridge with session I/O on `local`, the script thread's own runtime.
    pub fn with_local(mut self, local: Arc<LocalRuntime>) -> Bridge {
        self.local = Some(local);
        self
    }

    /// A bridge without a runtime, for engines that only compile, check or document
    /// scripts: every call fails with [`BridgeError::Detached`].
    pub fn detached() -> Bridge {
        Bridge { handle: None, stop: StopSignal::new(), drive: false, local: None }
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
        let stopped = self.stopped()?;
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

    /// Like [`run`](Bridge::run), for session I/O: on the script thread's own runtime when
    /// it has one, so that opening a session there keeps its reader and timers there too.
    pub fn run_io<F, T>(&self, fut: F) -> Result<T, BridgeError>
    where
        F: Future<Output = T> + Send + 'static,
        T: Send + 'static,
    {
        let Some(local) = &self.local else { return self.run(fut) };
        self.runtime()?;
        let stopped = self.stopped()?;
        local.block_on(async move {
            tokio::select! {
                biased;
                v = fut => Ok(v),
                e = stopped => Err(e),
            }
        })?
    }

    /// A future that resolves when the stop signal fires; an error when it already has.
    fn stopped(&self) -> Result<impl Future<Output = BridgeError> + Send + 'static, BridgeError> {
        if let Some(r) = self.stop.reason() {
            return Err(BridgeError::Stopped(r));
        }
        let mut stop = self.stop.tx.subscribe();
        Ok(async move {
            let code = stop.wait_for(|c| *c != 0).await.map(|c| *c).unwrap_or(1);
            BridgeError::Stopped(StopReason::from_code(code).unwrap_or(StopReason::Cancelled))
        })
    }

    /// Runs `fut` to completion even when the script was stopped, within `limit`: for
    /// cleanup (closing sessions) after a script ended. Session I/O cleanup runs where the
    /// sessions live.
    pub fn run_cleanup<F, T>(&self, fut: F, limit: Duration) -> Result<T, BridgeError>
    where
        F: Future<Output = T> + Send + 'static,
        T: Send + 'static,
    {
        let handle = self.runtime()?;
        if let Some(local) = &self.local {
            // The timer is made inside the runtime (a tokio timer needs one to exist).
            return local
                .block_on(async move { tokio::time::timeout(limit, fut).await })?
                .map_err(|_| BridgeError::Timeout(limit));
        }
        let (tx, rx) = oneshot::channel();
        handle.spawn(async move {
            let _ = tx.send(tokio::time::timeout(limit, fut).await.map_err(|_| BridgeError::Timeout(limit)));
        });
        rx.blocking_recv().unwrap_or(Err(BridgeError::RuntimeGone))
    }

    /// Closes something in the background when no one waits for it (a session the script
    /// dropped): where the sessions live, within `limit`, or as a task on the shared runtime
    /// when called from inside a runtime.
    pub fn close_detached<F>(&self, fut: F, limit: Duration)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        if self.local.is_some() && Handle::try_current().is_err() {
            let _ = self.run_cleanup(fut, limit);
        } else if let Some(h) = &self.handle {
            h.spawn(fut);
        }
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
    fn local_runtime_keeps_what_a_script_opened_on_its_own_thread() {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        let stop = StopSignal::new();
        let bridge = Bridge::with_mode(rt.handle().clone(), stop.clone(), BridgeMode::Local)
            .with_local(LocalRuntime::new().unwrap());
        let me = std::thread::current().id();
        // A task spawned during one call (a session's reader) lives on the script thread's
        // runtime and makes progress during later calls.
        let echo = bridge
            .run_io(async move {
                let (req_tx, mut req_rx) = tokio::sync::mpsc::unbounded_channel::<(u32, oneshot::Sender<_>)>();
                tokio::spawn(async move {
                    while let Some((n, reply)) = req_rx.recv().await {
                        let _ = reply.send((n * 2, std::thread::current().id()));
                    }
                });
                req_tx
            })
            .unwrap();
        for n in 1..=3 {
            let (tx, rx) = oneshot::channel();
            echo.send((n, tx)).unwrap();
            let (v, on) = bridge.run_io(rx).unwrap().unwrap();
            assert_eq!(v, n * 2);
            assert_eq!(on, me, "the spawned task ran on the script thread");
        }
        // The shared runtime still serves plain calls; cleanup runs where the I/O lives.
        assert_eq!(bridge.run(async { std::thread::current().id() }).unwrap(), me, "drive polls here too");
        assert_eq!(bridge.run_cleanup(async { 7 }, Duration::from_secs(1)).unwrap(), 7);
        assert_eq!(
            bridge.run_cleanup(std::future::pending::<()>(), Duration::from_millis(20)),
            Err(BridgeError::Timeout(Duration::from_millis(20)))
        );
        // A stop wakes a script waiting on its own runtime too.
        let s2 = stop.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            s2.trigger(StopReason::Cancelled);
        });
        let r = bridge.run_io(async { tokio::time::sleep(Duration::from_secs(30)).await });
        assert_eq!(r, Err(BridgeError::Stopped(StopReason::Cancelled)));
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
