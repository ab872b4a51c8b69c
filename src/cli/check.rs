//! `mcpscript check FILE.rhai`: compiles and validates a script without running it.

use super::args::CheckArgs;
use super::{CliError, Exit};

pub fn run(a: CheckArgs) -> Result<Exit, CliError> {
    let _ = a;
    Err(CliError::failed("not built yet"))
}
