//! The worker process's side of the coordinator pipe (`mcpscript worker`). Protocol, one
//! JSON object or word per line:
//!
//! - coordinator -> worker, stdin: first a [`Start`] (this worker's share of the plan),
//!   then `go` (start the load: every worker starts together) and optionally `stop`
//!   (cancel). End of input also means stop: the coordinator is gone.
//! - worker -> coordinator, stdout: [`Report`]s: `ready` once the sessions are open,
//!   `tick` every second (the folded window with its V2 histograms, so a worker that
//!   dies mid-run still leaves its measurements behind), and the final `result`, without
//!   the timeline: the coordinator folds that from the load ticks.

use super::error::LoadError;
use super::exec::{run_local, Control};
use super::plan::PhasePlan;
use super::recorder::WindowSnap;
use super::result::{ConnectResult, PhaseResult};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::sync::{mpsc, oneshot, watch};

/// Environment variable with the number of runtime threads a worker uses.
pub const THREADS_ENV: &str = "MCPSCRIPT_WORKER_THREADS";

/// The first line a worker reads.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Start {
    pub index: u32,
    pub plan: PhasePlan,
}

/// A line a worker writes.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Report {
    Ready { connect: ConnectResult },
    Tick { stage: TickStage, snap: WindowSnap },
    Result { result: Box<PhaseResult> },
    Error { message: String },
}

/// What a [`Report::Tick`] folded a second of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TickStage {
    /// Opening the sessions.
    Setup,
    Load,
}

/// Runs one worker: reads its share from `input`, runs it, reports on `output`.
pub async fn serve<R, W>(input: R, output: W) -> Result<(), LoadError>
where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let (tx, rx) = mpsc::unbounded_channel::<Report>();
    let writer = tokio::spawn(write_loop(output, rx));
    let mut lines = BufReader::new(input).lines();
    let first = match lines.next_line().await {
        Ok(Some(l)) => l,
        Ok(None) => return Err(LoadError::NoPlan),
        Err(e) => return Err(LoadError::ReadPlan(e)),
    };
    let start: Start = match serde_json::from_str(&first) {
        Ok(s) => s,
        Err(e) => {
            let e = LoadError::InvalidPlan(e);
            let _ = tx.send(Report::Error { message: e.to_string() });
            drop(tx);
            let _ = writer.await;
            return Err(e);
        }
    };
    if let Err(e) = start.plan.validate() {
        let _ = tx.send(Report::Error { message: e.to_string() });
        drop(tx);
        let _ = writer.await;
        return Err(e.into());
    }
    let (stop_tx, stop_rx) = watch::channel(false);
    let (go_tx, go_rx) = oneshot::channel::<()>();
    tokio::spawn(async move {
        let mut go_tx = Some(go_tx);
        loop {
            match lines.next_line().await {
                Ok(Some(l)) if l.trim() == "go" => {
                    if let Some(g) = go_tx.take() {
                        let _ = g.send(());
                    }
                }
                Ok(Some(l)) if l.trim() == "stop" => {
                    let _ = stop_tx.send(true);
                }
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => {
                    let _ = stop_tx.send(true);
                    return;
                }
            }
        }
    });
    let sink = |stage: TickStage| {
        let tx = tx.clone();
        Some(Box::new(move |snap: &WindowSnap| {
            let _ = tx.send(Report::Tick { stage, snap: snap.clone() });
        }) as super::recorder::Sink)
    };
    let ready_tx = tx.clone();
    let ctl = Control {
        stop: Some(stop_rx),
        on_ready: Some(Box::new(move |c: &ConnectResult| {
            let _ = ready_tx.send(Report::Ready { connect: c.clone() });
        })),
        go: Some(Box::pin(async move {
            let _ = go_rx.await;
        })),
        setup_sink: sink(TickStage::Setup),
        load_sink: sink(TickStage::Load),
        // Chaos actions happen in the coordinator's process: recovery is measured there
        // only for phases it runs itself.
        events: None,
        started: None,
    };
    let mut result = run_local(&start.plan, ctl).await;
    // The coordinator has every second of the timeline from the load ticks (the last,
    // partial one too): sending it again would double, just as the phase ends, what both
    // sides hold (a histogram per second, megabytes after a few minutes).
    result.timeline = Vec::new();
    let _ = tx.send(Report::Result { result: Box::new(result) });
    drop(tx);
    let _ = writer.await;
    Ok(())
}

async fn write_loop<W: AsyncWrite + Unpin>(mut out: W, mut rx: mpsc::UnboundedReceiver<Report>) {
    while let Some(r) = rx.recv().await {
        let mut line = match serde_json::to_vec(&r) {
            Ok(l) => l,
            Err(_) => continue,
        };
        line.push(b'\n');
        if out.write_all(&line).await.is_err() {
            return;
        }
        if rx.is_empty() && out.flush().await.is_err() {
            return;
        }
    }
    let _ = out.flush().await;
}
