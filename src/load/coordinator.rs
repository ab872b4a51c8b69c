//! Running a phase as a whole: [`run`] takes the `--segment` share, checks that the machine
//! can hold it (open files, memory, ephemeral ports; failing fast with the largest count it
//! could do), starts a built-in server big enough when the target is the built-in one,
//! decides between this process and worker processes from the open-file budget, samples
//! resources, and returns the merged [`PhaseResult`].

use super::builtin::ScaledServer;
use super::exec::{run_local, Control};
use super::plan::{PhasePlan, PlanError, MAX_PROCESSES};
use super::result::{PhaseResult, ProcessRole};
use super::sampler::{Sampler, Watched};
use super::workers::run_distributed;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// Environment variable forcing a (small) connection budget per process, e.g. so tests
/// run the multi-process path with a few hundred sessions.
pub const BUDGET_ENV: &str = "MCPSCRIPT_MAX_CONNS_PER_PROCESS";
/// Open files a process keeps for itself (stdio, runtime, pipes, listeners).
const RESERVED_FILES: u64 = 200;
/// Memory one session costs on one side: about 2 KB of user memory and 5 KB of kernel
/// socket, rounded up.
const SESSION_BYTES: u64 = 8 * 1024;

/// How a phase is run.
#[derive(Debug, Clone, Default)]
pub struct RunEnv {
    /// Executable for `worker` and `serve` child processes (default: this executable).
    pub exe: Option<PathBuf>,
    /// Connections one process may hold (default: from the open-file limit, or
    /// [`BUDGET_ENV`]).
    pub per_process: Option<u64>,
    /// Target processes to sample (e.g. `--target-pid`).
    pub target_pids: Vec<u32>,
    /// Sampling interval of RSS and CPU (`None`: no sampling).
    pub sample: Option<Duration>,
    /// Cancellation (Ctrl-C, the script's timeout).
    pub stop: Option<watch::Receiver<bool>>,
    /// The target is the built-in server inside this process: its connections use this
    /// process's files, and a phase too big for that gets a scaled server of its own.
    pub builtin_here: bool,
    /// Extra `serve` flags for a scaled built-in server (e.g. `--latency 5ms`).
    pub builtin_flags: Vec<String>,
    /// The run's chaos actions and session breaks, for recovery measurement.
    pub events: Option<Arc<crate::load::resilience::Events>>,
    /// Notified once the load starts (after the sessions are open), e.g. to time chaos actions.
    pub started: Option<Arc<tokio::sync::Notify>>,
    /// Fed each folded second while the phase runs, for the console's progress display.
    pub live: Option<Arc<super::live::PhaseLive>>,
}

/// Connections one process may hold: the open-file soft limit (raised to the hard limit)
/// minus a reserve, unless [`BUDGET_ENV`] says otherwise.
pub fn per_process_budget() -> u64 {
    if let Some(n) = std::env::var(BUDGET_ENV).ok().and_then(|v| v.trim().parse::<u64>().ok()).filter(|n| *n > 0) {
        return n;
    }
    crate::util::proc::raise_nofile_limit().saturating_sub(RESERVED_FILES).max(1)
}

fn open_files() -> u64 {
    std::fs::read_dir("/proc/self/fd").map(|d| d.count() as u64).unwrap_or(0)
}

fn mem_available() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemAvailable:"))?;
    line.split_whitespace().nth(1)?.parse::<u64>().ok().map(|kb| kb * 1024)
}

fn system_files_free() -> Option<u64> {
    let max: u64 = std::fs::read_to_string("/proc/sys/fs/file-max").ok()?.trim().parse().ok()?;
    let nr = std::fs::read_to_string("/proc/sys/fs/file-nr").ok()?;
    let used: u64 = nr.split_whitespace().next()?.parse().ok()?;
    Some(max.saturating_sub(used))
}

fn port_range() -> Option<u64> {
    let r = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").ok()?;
    let mut it = r.split_whitespace().filter_map(|x| x.parse::<u64>().ok());
    let (lo, hi) = (it.next()?, it.next()?);
    Some(hi.saturating_sub(lo) + 1)
}

fn is_loopback_target(target: &str) -> bool {
    match target.parse::<crate::client::Target>().ok().and_then(|t| t.host_port()) {
        Some((h, _)) => h == "localhost" || h.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback()),
        None => false,
    }
}

/// Whether this machine can hold `sessions` sessions (and, when `local_server`, the
/// server's side of them too); the error names the limit and the largest count it allows.
pub fn check_capacity(plan: &PhasePlan, sessions: u64, local_server: bool, budget: u64) -> Result<(), PlanError> {
    let err = |reason: String| Err(PlanError { phase: plan.name.clone(), reason });
    let sides = if local_server { 2 } else { 1 };
    let processes = sessions.div_ceil(budget.max(1));
    if processes > MAX_PROCESSES as u64 {
        return err(format!(
            "{sessions} sessions at {budget} per process need {processes} worker processes, more than the limit of {MAX_PROCESSES}; \
             the largest count is {}",
            budget * MAX_PROCESSES as u64
        ));
    }
    if let Some(avail) = mem_available() {
        let most = avail / 10 * 8 / (SESSION_BYTES * sides);
        if sessions > most {
            return err(format!(
                "{sessions} sessions need about {:.1} GB ({} KB each for client{}, kernel included) but {:.1} GB of memory is \
                 available; the largest count that fits is about {most}",
                (sessions * SESSION_BYTES * sides) as f64 / 1e9,
                SESSION_BYTES * sides / 1024,
                if local_server { " and server" } else { "" },
                avail as f64 / 1e9
            ));
        }
    }
    if let Some(free) = system_files_free() {
        let most = free.saturating_sub(1000) / sides;
        if sessions > most {
            return err(format!("{sessions} sessions need {} open files but the system allows {free} more; the largest count is about {most}", sessions * sides));
        }
    }
    // One connection per session to one address (lean tcp:// and http:// connections).
    let lean = plan.target.starts_with("tcp://") || plan.target.starts_with("http://");
    if lean && !is_loopback_target(&plan.target) {
        if let Some(ports) = port_range() {
            if sessions > ports {
                return err(format!(
                    "{sessions} connections to one remote address need more ephemeral ports than the {ports} of \
                     net.ipv4.ip_local_port_range; the largest count is {ports} (split the run with --segment over machines)"
                ));
            }
        }
    }
    Ok(())
}

/// Runs one phase: this process's segment share, in this process or over workers.
pub async fn run(plan: &PhasePlan, env: RunEnv) -> Result<PhaseResult, PlanError> {
    plan.validate()?;
    let mut share = plan.segment_share();
    let sessions = share.model.sessions();
    let budget = env.per_process.unwrap_or_else(per_process_budget);
    let exe = match env.exe.clone().map(Ok).unwrap_or_else(std::env::current_exe) {
        Ok(e) => e,
        Err(e) => {
            return Err(PlanError {
                phase: plan.name.clone(),
                reason: format!("cannot find the mcpscript executable: {e}"),
            })
        }
    };
    let (_keep, stop) = match env.stop.clone() {
        Some(s) => (None, s),
        None => {
            let (tx, rx) = watch::channel(false);
            (Some(tx), rx)
        }
    };
    let here_free = crate::util::proc::raise_nofile_limit().saturating_sub(open_files() + RESERVED_FILES);
    // The in-process built-in server holds one file per session, the load another when it
    // runs here too; beyond that the phase gets a server of its own.
    let scale_builtin = env.builtin_here && sessions * 2 > budget.min(here_free);
    check_capacity(&share, sessions, env.builtin_here || scale_builtin, budget)?;
    let me = std::process::id();
    let watched = Watched::new(me, ProcessRole::Coordinator);
    // A target pid that is this process (the in-process built-in server) is sampled once,
    // as the coordinator: its CPU cannot be told apart from the load's.
    let mut target_pids: Vec<u32> = Vec::new();
    for p in &env.target_pids {
        if !target_pids.contains(p) {
            target_pids.push(*p);
        }
        if *p != me {
            watched.add(*p, ProcessRole::Target);
        }
    }
    let mut scaled = None;
    if scale_builtin {
        match ScaledServer::start(&exe, sessions, budget, &env.builtin_flags).await {
            Ok(mut s) => {
                share.target = s.url.clone();
                for p in s.pids() {
                    watched.add(p, ProcessRole::Target);
                }
                target_pids.extend(s.pids());
                scaled = Some(s);
            }
            Err(e) => return Err(PlanError { phase: plan.name.clone(), reason: e.to_string() }),
        }
    }
    let per = if env.builtin_here && scaled.is_none() { budget / 2 } else { budget };
    let processes = match share.processes {
        0 => sessions.div_ceil(per.max(1)).max(1) as u32,
        n if sessions.div_ceil(n as u64) > per => {
            if let Some(s) = scaled {
                s.stop().await;
            }
            return Err(PlanError {
                phase: plan.name.clone(),
                reason: format!(
                    "{sessions} sessions over {n} processes is {} per process, more than the {per} one process can \
                     open (its open-file limit); use at least {} processes or leave `processes` out",
                    sessions.div_ceil(n as u64),
                    sessions.div_ceil(per.max(1))
                ),
            });
        }
        n => n,
    };
    let sampler = env.sample.map(|i| Sampler::start(watched.clone(), i));
    let machine_cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let mut result = if processes <= 1 {
        run_local(
            &share,
            Control {
                stop: Some(stop),
                events: env.events.clone(),
                started: env.started.clone(),
                on_ready: env.live.clone().map(|l| Box::new(move |_: &_| l.load_started()) as super::exec::OnReady),
                setup_sink: env.live.as_ref().map(|l| l.setup_sink()),
                load_sink: env.live.as_ref().map(|l| l.load_sink()),
                ..Control::default()
            },
        )
        .await
    } else {
        let threads = (machine_cores / processes as usize).max(1);
        let marks_before = env.events.as_ref().map_or(0, |e| e.marks().len());
        let mut r = run_distributed(
            &share,
            processes,
            &exe,
            threads,
            stop,
            Some(watched.clone()),
            env.started.clone(),
            env.live.clone(),
        )
        .await;
        if env.events.as_ref().is_some_and(|e| e.marks().len() > marks_before) {
            r.note(
                "chaos actions happened during this phase, but recovery is measured only for phases that run in \
                 one process (set processes: 1); the timeline shows their effect",
            );
        }
        r
    };
    if let Some(s) = sampler {
        result.resources = Some(s.finish().await);
    }
    // Cores the load could use: this runtime's threads in one process; the machine's
    // with worker processes (they split it between them).
    let usable = if processes <= 1 {
        tokio::runtime::Handle::try_current().map(|h| h.metrics().num_workers()).unwrap_or(1).min(machine_cores)
    } else {
        machine_cores
    };
    let in_process = (env.builtin_here && !scale_builtin) || target_pids.contains(&me);
    if in_process && !target_pids.contains(&me) {
        target_pids.insert(0, me);
    }
    gather_evidence(&mut result, usable as f64, machine_cores as f64, target_pids, in_process);
    if let Some(s) = scaled {
        result.note(format!("ran against a built-in server of {} processes started for this phase", s.workers));
        s.stop().await;
    }
    if env.builtin_here && !scale_builtin {
        result.note("the built-in server ran inside mcpscript: its memory and CPU count as the coordinator's");
    }
    result.target = plan.target.clone();
    if let Some(seg) = plan.segment {
        result.segments = vec![seg];
    }
    Ok(result)
}

/// Fills the evidence of who limited the phase that sampling gathered (mcpscript's CPU
/// over `usable` cores, the target's CPU and memory over the machine's) and judges it.
fn gather_evidence(r: &mut PhaseResult, usable: f64, machine: f64, target_pids: Vec<u32>, in_process: bool) {
    use super::bottleneck::CpuUse;
    let lb = &mut r.limited_by;
    lb.target_in_process = in_process;
    let sampled_target = !target_pids.iter().all(|p| *p == std::process::id());
    lb.target_pids = target_pids;
    if let Some(res) = &r.resources {
        lb.machine_busy = res.machine_busy_fraction;
        let sampled = |role| res.processes.iter().any(|p| p.role == role && p.cpu_pct.len() >= 2);
        lb.mcpscript_cpu = (sampled(ProcessRole::Coordinator) || sampled(ProcessRole::Worker))
            .then(|| CpuUse::new(res.mcpscript_mean_cpu_pct, res.mcpscript_peak_cpu_pct, usable));
        if sampled_target && sampled(ProcessRole::Target) {
            lb.target_cpu = Some(CpuUse::new(res.target_mean_cpu_pct, res.target_peak_cpu_pct, machine));
            lb.target_peak_rss_bytes = Some(res.target_peak_rss_bytes);
        }
    }
    super::bottleneck::assess(r);
}
