//! The `builtin` target of a run, started in one place for `mcpscript run`, `call` and the
//! suite orchestrator: the reference server on a free loopback TCP port
//! (`tcp://127.0.0.1:0`), inside this process ([`start_in_process`]) or, for a script that
//! kills and restarts its target, as `mcpscript serve` worker processes sharing the port
//! ([`ManagedServer::start_builtin`]). [`start`] does either.

use super::{ManagedError, ManagedServer};
use crate::server::{self, Listen, RunningServer, ServerConfig, ServerError};
use std::net::SocketAddr;
use std::path::PathBuf;

/// How to start the built-in server.
pub enum Builtin {
    /// In this process, with the limits and faults of the config (its listeners are
    /// replaced by the loopback port).
    InProcess(Box<ServerConfig>),
    /// As `workers` child processes (`exe serve` with the `serve` options `args`) the run
    /// may kill and restart.
    Processes { exe: PathBuf, workers: u32, args: Vec<String> },
}

/// A started built-in server.
pub enum BuiltinServer {
    InProcess(RunningServer),
    Processes(Box<ManagedServer>),
}

/// Why the built-in server did not start.
#[derive(Debug, thiserror::Error)]
pub enum BuiltinError {
    #[error(transparent)]
    Server(#[from] ServerError),
    #[error(transparent)]
    Managed(#[from] ManagedError),
}

/// Starts the built-in server as `how` says; it listens once this returns.
pub async fn start(how: Builtin) -> Result<BuiltinServer, BuiltinError> {
    Ok(match how {
        Builtin::InProcess(config) => BuiltinServer::InProcess(start_in_process(*config).await?),
        Builtin::Processes { exe, workers, args } => {
            BuiltinServer::Processes(Box::new(ManagedServer::start_builtin(&exe, workers, &args).await?))
        }
    })
}

/// The built-in server inside this process on a free loopback TCP port, with the other
/// settings of `config`.
pub async fn start_in_process(mut config: ServerConfig) -> Result<RunningServer, ServerError> {
    config.listen = vec![Listen::Tcp(SocketAddr::from(([127, 0, 0, 1], 0)))];
    server::start(config).await
}
