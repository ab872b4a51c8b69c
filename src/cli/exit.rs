//! Exit codes and the single place where an error becomes a printed message and a code.

use crate::client::ClientError;
use crate::managed::builtin::BuiltinError;
use crate::server::ServerError;

/// Process exit codes, the same for every command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i32)]
pub enum Exit {
    /// Everything passed.
    Ok = 0,
    /// A check, threshold or request failed.
    Failed = 1,
    /// Invalid input: usage, manifest, script, target.
    Invalid = 2,
    /// A regression at or above `--fail-on`.
    Regression = 3,
    /// Interrupted (Ctrl-C).
    Interrupted = 130,
}

/// An error on its way out of the program: a one-paragraph message and its exit code.
#[derive(Debug)]
pub struct CliError {
    pub exit: Exit,
    pub message: String,
}

impl CliError {
    pub fn invalid(message: impl Into<String>) -> Self {
        CliError { exit: Exit::Invalid, message: message.into() }
    }

    pub fn failed(message: impl Into<String>) -> Self {
        CliError { exit: Exit::Failed, message: message.into() }
    }

    /// Prints `error: MESSAGE` to stderr and returns the exit code.
    pub fn report(&self) -> i32 {
        eprintln!("error: {}", self.message);
        self.exit as i32
    }
}

impl From<ClientError> for CliError {
    fn from(e: ClientError) -> Self {
        let exit = match e {
            ClientError::InvalidTarget(_) => Exit::Invalid,
            _ => Exit::Failed,
        };
        CliError { exit, message: e.to_string() }
    }
}

impl From<ServerError> for CliError {
    fn from(e: ServerError) -> Self {
        let exit = match e {
            ServerError::BadListen { .. } | ServerError::Config(_) | ServerError::Tls(_) => Exit::Invalid,
            ServerError::Bind { .. } | ServerError::Workers(_) => Exit::Failed,
        };
        CliError { exit, message: e.to_string() }
    }
}

impl From<BuiltinError> for CliError {
    fn from(e: BuiltinError) -> Self {
        match e {
            BuiltinError::Server(e) => e.into(),
            BuiltinError::Managed(e) => CliError::failed(e.to_string()),
        }
    }
}
