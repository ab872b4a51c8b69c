//! `mcpscript api`: prints the scripting reference generated from the engine's metadata
//! (Markdown, as committed in `stdlib/API.md`), or the raw metadata with `--json`.

use super::args::ApiArgs;
use super::{CliError, Exit};
use std::io::Write;

pub fn run(a: ApiArgs) -> Result<Exit, CliError> {
    let text = if a.json { crate::script::api::json() } else { crate::script::api::markdown() };
    // A closed pipe (`mcpscript api | head`) is not an error worth a message.
    let _ = writeln!(std::io::stdout().lock(), "{text}");
    Ok(Exit::Ok)
}
