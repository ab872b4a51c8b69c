//! `mcpscript proxy --listen URL --upstream URL [FAULTS]`: the fault-injecting proxy as a
//! standalone process.

use super::args::ProxyArgs;
use super::{CliError, Exit};

pub fn run(a: ProxyArgs) -> Result<Exit, CliError> {
    let _ = a;
    Err(CliError::failed("not built yet"))
}
