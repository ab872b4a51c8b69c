//! `mcpscript run FILE.rhai`: runs a scenario script against a target and writes results.json.

use super::args::RunArgs;
use super::{CliError, Exit};

pub fn run(a: RunArgs) -> Result<Exit, CliError> {
    let _ = a;
    Err(CliError::failed("not built yet"))
}
