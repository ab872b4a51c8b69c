//! The watcher (in progress).

use crate::cli::args::WatchArgs;
use crate::cli::{CliError, Exit};

pub fn run(_a: WatchArgs) -> Result<Exit, CliError> {
    Err(CliError::invalid("watch: not built yet"))
}
