//! `mcpscript worker` (hidden): one load worker process. The coordinator (`mcpscript run`)
//! writes this worker's share of a phase on stdin and reads its reports on stdout; see
//! `load::worker` for the protocol. The worker dies with its coordinator.

use super::args::WorkerArgs;
use super::{CliError, Exit};
use crate::load::worker::{serve, THREADS_ENV};
use crate::load::LoadError;

pub fn run(_a: WorkerArgs) -> Result<Exit, CliError> {
    // SAFETY: prctl and signal only change this process's own dispositions. PDEATHSIG is a
    // second guard besides the spawner's pre_exec; SIGINT is ignored because the
    // coordinator stops workers itself (with `stop`), so they can still report.
    unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
        libc::signal(libc::SIGINT, libc::SIG_IGN);
    }
    crate::util::proc::raise_nofile_limit();
    let threads = std::env::var(THREADS_ENV).ok().and_then(|t| t.parse::<usize>().ok()).unwrap_or(1).max(1);
    let rt = super::process_runtime(threads)?;
    let served = rt.block_on(serve(tokio::io::stdin(), tokio::io::stdout()));
    // Sessions are closed; do not wait for stray tasks.
    rt.shutdown_background();
    served.map(|()| Exit::Ok).map_err(worker_error)
}

/// What stdin held is bad input (exit 2): no plan, not a plan, a plan that cannot run. The
/// worker has already said so on stdout, for a coordinator; this is for a person who ran it.
fn worker_error(e: LoadError) -> CliError {
    match e {
        LoadError::NoPlan | LoadError::ReadPlan(_) | LoadError::InvalidPlan(_) | LoadError::Plan(_) => {
            CliError::invalid(format!(
                "worker: {}; `mcpscript worker` is started by `mcpscript run`, which writes it a load plan \
                 (one JSON line) on stdin",
                crate::script::diag::script_words(&e.to_string())
            ))
        }
        other => CliError::failed(format!("worker: {other}")),
    }
}
