//! The command line. [`args`] declares the commands and options (clap); each command has
//! its own file; [`exit`] is the one place where errors become a message and an exit code
//! (0 passed, 1 failed, 2 invalid input, 3 regression, 130 interrupted).

pub mod api;
pub mod args;
pub mod call;
pub mod check;
pub mod exit;
pub mod merge;
pub mod oauth;
pub mod proxy;
pub mod reporting;
pub mod run;
pub mod serve;
pub mod suite;
pub mod suite_run;
pub mod tls;
pub mod watch;
pub mod worker;

use args::{Cli, Command};
use clap::Parser;
pub use exit::{CliError, Exit};

/// Parses arguments, runs the command, prints any error, returns the process exit code.
pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { Exit::Invalid as i32 } else { Exit::Ok as i32 };
        }
    };
    init_tracing(cli.verbose);
    // Commands this process starts run under `mcpscript reap` (see util::proc).
    crate::util::proc::supervise_with_current_exe();
    let result = match cli.command {
        Command::Serve(a) => serve::run(a),
        Command::Call(a) => call::run(a),
        Command::Run(a) => run::run(a),
        Command::Check(a) => check::run(a),
        Command::List(a) => suite::list(a),
        Command::Watch(a) => watch::run(a),
        Command::Api(a) => api::run(a),
        Command::Proxy(a) => proxy::run(a),
        Command::Merge(a) => merge::run(a),
        Command::Report(a) => reporting::report_command(a),
        Command::Compare(a) => reporting::compare_command(a),
        Command::Worker(a) => worker::run(a),
        Command::Reap(a) => crate::util::proc::reap(a.parent, a.report_fd, &a.command),
    };
    match result {
        Ok(code) => code as i32,
        Err(e) => e.report(),
    }
}

fn init_tracing(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("MCPSCRIPT_LOG").unwrap_or_else(|_| default.into());
    let _ =
        tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_target(false).try_init();
}

/// A multi-threaded tokio runtime with `threads` workers (0: one per core).
pub fn runtime(threads: usize) -> Result<tokio::runtime::Runtime, CliError> {
    let mut b = tokio::runtime::Builder::new_multi_thread();
    if threads > 0 {
        b.worker_threads(threads);
    }
    b.enable_all().build().map_err(runtime_error)
}

/// The runtime of a process that serves or generates load among several like it (server
/// workers, load workers): with one thread, a single-threaded runtime, where tasks and the
/// I/O driver share the thread that blocks on the main future (a multi-threaded runtime
/// with one worker would still hand work between that thread and its worker, a futex
/// wake-up and a context switch each time); with more, [`runtime`].
pub fn process_runtime(threads: usize) -> Result<tokio::runtime::Runtime, CliError> {
    if threads == 1 {
        return tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(runtime_error);
    }
    runtime(threads)
}

fn runtime_error(e: std::io::Error) -> CliError {
    CliError::failed(format!("cannot start the async runtime: {e}"))
}
