//! `mcpscript api`: prints the scripting reference generated from the engine's metadata.

use super::args::ApiArgs;
use super::{CliError, Exit};

pub fn run(a: ApiArgs) -> Result<Exit, CliError> {
    let _ = a;
    Err(CliError::failed("not built yet"))
}
