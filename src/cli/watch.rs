//! `mcpscript watch suite.yaml`: see [`crate::suite::watch`].

use super::args::WatchArgs;
use super::{CliError, Exit};

pub fn run(a: WatchArgs) -> Result<Exit, CliError> {
    crate::suite::watch::run(a)
}
