//! Scale-out over processes (coordinator side). A phase that needs more connections than
//! one process's open-file budget runs in `mcpscript worker` processes: each gets its
//! [`share`](super::plan::PhasePlan::share) of the plan on stdin, opens its sessions and
//! says `ready`; once all are ready (or dead) every worker gets `go` at the same moment, so
//! their timelines line up. Workers stream a `tick` per second and a final `result` (its
//! timeline left out: the load ticks carry it, merged by second as they arrive), which
//! merge exactly. Each worker runs in its own process group ([`spawn_direct`]), which is
//! killed when the worker is dropped; workers die with the coordinator, even a SIGKILLed
//! one: PR_SET_PDEATHSIG (set when spawned and again by the worker itself), and the
//! commands a worker starts (stdio servers) are supervised by `mcpscript reap`, which kills
//! their groups when the worker dies. A worker that dies is reported with its exit status;
//! its share is marked failed, what its ticks measured is kept (requests it never
//! accounted for count as `worker_lost` errors), and the others' data is untouched. No read
//! waits forever: a worker silent for [`SILENCE_LIMIT`] while it should be talking is
//! killed.

use super::error::LoadError;
use super::exec;
use super::plan::{Model, PhasePlan};
use super::recorder::Accumulator;
use super::result::{self, PhaseResult, PhaseStatus, ProcessRole, TimelineEntry, TimelineMerge, WorkerReport};
use super::sampler::Watched;
use super::worker::{Report, Start, TickStage, THREADS_ENV};
use crate::util::proc::{spawn_direct, Group};
use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::ChildStdin;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

/// A worker that should be reporting and has said nothing for this long is killed.
pub const SILENCE_LIMIT: Duration = Duration::from_secs(30);
/// How long workers get to report after `stop`.
const STOP_GRACE: Duration = Duration::from_secs(10);
/// Bytes of a worker's stderr kept for its failure report.
const STDERR_TAIL: usize = 2048;

enum Event {
    Report(Report),
    /// Unparseable output (kept for the failure report).
    Garbage(String),
    Eof,
}

struct Worker {
    index: u32,
    pid: u32,
    share: PhasePlan,
    child: Group,
    stdin: Option<ChildStdin>,
    stderr: Arc<Mutex<Vec<u8>>>,
    ready: bool,
    eof: bool,
    result: Option<PhaseResult>,
    partial: Accumulator,
    connect: Option<result::ConnectResult>,
    last_heard: Instant,
    garbage: Option<String>,
}

impl Worker {
    async fn send(&mut self, line: &str) {
        if let Some(stdin) = self.stdin.as_mut() {
            let ok = stdin.write_all(line.as_bytes()).await.is_ok() && stdin.write_all(b"\n").await.is_ok();
            if !ok || stdin.flush().await.is_err() {
                self.stdin = None;
            }
        }
    }

    fn done(&self) -> bool {
        self.result.is_some() || self.eof
    }
}

/// Kinds a worker's load recorder has, in order, and how many are main.
fn kinds_of(plan: &PhasePlan) -> (Vec<String>, usize) {
    match plan.model {
        Model::Connect { .. } => (vec!["connect".into()], 1),
        _ => {
            let mut names: Vec<String> = plan.mix.iter().map(|t| t.name.clone()).collect();
            let main = names.len();
            names.push("connect".into());
            (names, main)
        }
    }
}

fn describe(status: Option<ExitStatus>) -> String {
    use std::os::unix::process::ExitStatusExt;
    match status {
        Some(s) => match (s.code(), s.signal()) {
            (Some(c), _) => format!("exited with code {c}"),
            (_, Some(sig)) => format!("killed by signal {sig}"),
            _ => "exited".into(),
        },
        None => "did not exit".into(),
    }
}

/// Runs `plan` over `count` worker processes of `exe` and merges their results.
#[allow(clippy::too_many_arguments)]
pub async fn run_distributed(
    plan: &PhasePlan,
    count: u32,
    exe: &Path,
    threads: usize,
    mut stop: watch::Receiver<bool>,
    watched: Option<Watched>,
    started: Option<std::sync::Arc<tokio::sync::Notify>>,
    live: Option<Arc<super::live::PhaseLive>>,
) -> PhaseResult {
    let (events_tx, mut events) = mpsc::unbounded_channel::<(u32, Event)>();
    let mut workers: Vec<Worker> = Vec::new();
    let mut failures: Vec<String> = Vec::new();
    for index in 0..count {
        let share = plan.share(index, count);
        if share.model.sessions() == 0 {
            continue;
        }
        match spawn(exe, threads, index, &share, events_tx.clone()).await {
            Ok(w) => {
                if let Some(list) = &watched {
                    list.add(w.pid, ProcessRole::Worker);
                }
                workers.push(w);
            }
            Err(e) => failures.push(format!("worker {index}: {e}")),
        }
    }
    drop(events_tx);
    // The phase's timeline, merged second by second as the workers' load ticks arrive.
    let mut timeline = TimelineMerge::default();
    let mut stopping: Option<Instant> = None;
    let mut went = false;
    loop {
        if workers.iter().all(Worker::done) {
            break;
        }
        if !went && workers.iter().all(|w| w.ready || w.done()) {
            for w in workers.iter_mut().filter(|w| !w.done()) {
                w.send("go").await;
                w.last_heard = Instant::now();
            }
            if let Some(n) = &started {
                n.notify_one();
            }
            if let Some(l) = &live {
                l.load_started();
            }
            went = true;
        }
        let tick = tokio::time::sleep(Duration::from_millis(500));
        tokio::select! {
            ev = events.recv() => match ev {
                Some((i, ev)) => handle(&mut workers, &mut timeline, i, ev, live.as_deref()),
                None => break,
            },
            _ = super::until_true(&mut stop), if stopping.is_none() => {
                stopping = Some(Instant::now());
                for w in workers.iter_mut().filter(|w| !w.done()) {
                    w.send("stop").await;
                }
            }
            _ = tick => {}
        }
        let now = Instant::now();
        for w in workers.iter_mut().filter(|w| !w.done()) {
            // A ready worker waiting for `go` has nothing to say.
            let waiting = w.ready && !went;
            let silent = !waiting && now.duration_since(w.last_heard) > SILENCE_LIMIT;
            let overdue = stopping.is_some_and(|s| now.duration_since(s) > STOP_GRACE);
            if silent || overdue {
                let _ = w.child.start_kill();
                let why = if silent { "silent for 30 s; killed" } else { "did not stop in time; killed" };
                w.garbage.get_or_insert_with(|| why.to_string());
            }
        }
    }
    let mut parts: Vec<PhaseResult> = Vec::new();
    let mut reports: Vec<WorkerReport> = Vec::new();
    for mut w in workers {
        w.stdin = None;
        let status = match tokio::time::timeout(Duration::from_secs(5), w.child.wait()).await {
            Ok(Ok(s)) => Some(s),
            _ => {
                w.child.kill().await;
                w.child.try_wait().ok().flatten()
            }
        };
        let mut report = WorkerReport {
            index: w.index,
            pid: w.pid,
            sessions: w.share.model.sessions(),
            status: "ok".into(),
            failed: false,
            behind: false,
        };
        match w.result.take() {
            Some(mut r) => {
                r.workers.clear();
                report.behind = r.limited_by.send_lag.as_ref().is_some_and(|l| l.behind());
                parts.push(r);
            }
            None => {
                let tail =
                    String::from_utf8_lossy(&w.stderr.lock().unwrap_or_else(|e| e.into_inner())).trim().to_string();
                let mut why = format!("{} before reporting its result", describe(status));
                if let Some(g) = &w.garbage {
                    why.push_str(&format!(" ({g})"));
                }
                if !tail.is_empty() {
                    why.push_str(&format!("; stderr: {}", tail.lines().last().unwrap_or_default()));
                }
                report.status = why.clone();
                report.failed = true;
                let mut p = partial_result(&w.share, &mut w.partial, w.connect.take());
                p.note(format!("worker {} (pid {}) {why}", w.index, w.pid));
                parts.push(p);
            }
        }
        reports.push(report);
    }
    // The parts' timelines (the seconds' counts, their latencies already in `timeline`)
    // are left out of the merge: `timeline` is the merged one.
    for p in &mut parts {
        p.timeline = Vec::new();
    }
    let mut merged = match result::merge_all(parts.iter()) {
        Ok(Some(m)) => m,
        Ok(None) => PhaseResult {
            name: plan.name.clone(),
            model: plan.model.kind(),
            target: plan.target.clone(),
            status: PhaseStatus::Failed,
            sessions: plan.model.sessions(),
            ..Default::default()
        },
        Err(e) => {
            let mut r = parts.into_iter().next().unwrap_or_default();
            r.note(format!("merging worker results failed: {e}"));
            r
        }
    };
    merged.timeline = timeline.into_timeline();
    merged.sessions = plan.model.sessions();
    merged.intended_rate = plan.model.intended_rate();
    merged.segments = plan.segment.into_iter().collect();
    if (reports.iter().any(|r| r.failed) || !failures.is_empty()) && merged.status == PhaseStatus::Completed {
        merged.status = PhaseStatus::Partial;
    }
    for f in failures {
        merged.note(f);
    }
    merged.workers = reports;
    let _ = merged.refresh();
    super::bottleneck::assess(&mut merged);
    merged
}

fn handle(
    workers: &mut [Worker],
    timeline: &mut TimelineMerge,
    index: u32,
    ev: Event,
    live: Option<&super::live::PhaseLive>,
) {
    let Some(w) = workers.iter_mut().find(|w| w.index == index) else { return };
    w.last_heard = Instant::now();
    match ev {
        Event::Eof => w.eof = true,
        Event::Garbage(g) => {
            w.garbage.get_or_insert(g);
        }
        Event::Report(Report::Ready { connect }) => {
            w.ready = true;
            w.connect = Some(connect);
        }
        Event::Report(Report::Tick { stage, snap }) => {
            if stage == TickStage::Load {
                let before = w.partial.timeline.len();
                let _ = w.partial.fold_snap(&snap);
                // A second the worker's accumulator kept goes into the merged timeline;
                // the worker's copy keeps its counts (for a partial result if the worker
                // dies) and gives up its latencies.
                if w.partial.timeline.len() > before {
                    if let Some(e) = w.partial.timeline.last_mut() {
                        let hist = std::mem::take(&mut e.hist);
                        // Only a histogram that does not decode fails (never one a worker
                        // encoded): its counts are added, not its latencies.
                        let _ = timeline.add(TimelineEntry { hist, ..e.clone() });
                    }
                }
                if let Some(l) = live {
                    l.load_second(&snap);
                }
            } else if let Some(l) = live {
                l.setup_second(&snap);
            }
        }
        Event::Report(Report::Result { result }) => {
            // A worker leaves its timeline out of its result: it is the load ticks' (the
            // same folds of the same seconds), merged into `timeline` already.
            w.result = Some(*result);
        }
        Event::Report(Report::Error { message }) => {
            w.garbage.get_or_insert(message);
        }
    }
}

/// What a worker that died had measured, from its ticks. Requests it sent but never
/// accounted for are counted as `worker_lost` errors, so the identity still holds.
fn partial_result(share: &PhasePlan, acc: &mut Accumulator, connect: Option<result::ConnectResult>) -> PhaseResult {
    let seconds = Duration::from_secs(acc.timeline.len() as u64);
    let mut r = exec::result_from(share, acc, seconds);
    for k in r.per_kind.values_mut() {
        let lost = k.counts.sent.saturating_sub(k.counts.finished());
        if lost > 0 {
            *k.counts.errors.entry("worker_lost".into()).or_default() += lost;
        }
    }
    let lost = r.counts.sent.saturating_sub(r.counts.finished());
    if lost > 0 {
        *r.counts.errors.entry("worker_lost".into()).or_default() += lost;
    }
    r.status = PhaseStatus::Partial;
    if let Some(c) = connect {
        r.connect = c;
    }
    let _ = r.refresh();
    r
}

async fn spawn(
    exe: &Path,
    threads: usize,
    index: u32,
    share: &PhasePlan,
    events: mpsc::UnboundedSender<(u32, Event)>,
) -> Result<Worker, LoadError> {
    // Its own process group: a terminal's Ctrl-C reaches only the coordinator, which stops
    // the workers in order (they report what they measured). Started directly: a worker is
    // mcpscript itself and supervises what it starts.
    let mut child = spawn_direct(exe, &["worker".to_string()], |cmd| {
        cmd.env(THREADS_ENV, threads.to_string()).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    })
    .map_err(|source| LoadError::SpawnWorker { exe: exe.display().to_string(), source })?;
    let pid = child.pid();
    let (stdin, stdout, stderr) = (child.take_stdin(), child.take_stdout(), child.take_stderr());
    let (Some(stdin), Some(stdout)) = (stdin, stdout) else { return Err(LoadError::NoPipes) };
    let tail = crate::client::transport::stdio::keep_tail(stderr, STDERR_TAIL);
    tokio::spawn(async move {
        let mut lines = BufReader::new(stdout).lines();
        loop {
            let ev = match lines.next_line().await {
                Ok(Some(l)) => match serde_json::from_str::<Report>(&l) {
                    Ok(r) => Event::Report(r),
                    Err(e) => Event::Garbage(format!("unreadable report ({e})")),
                },
                Ok(None) | Err(_) => Event::Eof,
            };
            let end = matches!(ev, Event::Eof);
            if events.send((index, ev)).is_err() || end {
                return;
            }
        }
    });
    let (names, main) = kinds_of(share);
    let mut w = Worker {
        index,
        pid,
        share: share.clone(),
        child,
        stdin: Some(stdin),
        stderr: tail,
        ready: false,
        eof: false,
        result: None,
        partial: Accumulator::new(names, main),
        connect: None,
        last_heard: Instant::now(),
        garbage: None,
    };
    let start = serde_json::to_string(&Start { index, plan: share.clone() }).map_err(LoadError::EncodePlan)?;
    w.send(&start).await;
    Ok(w)
}
