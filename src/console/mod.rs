//! What a person sees on the terminal while mcpscript works, shared by the command line
//! and the suite layer: [`say`] prints a message on stdout, and [`progress`] is a run's
//! live console (log lines stamped with the run's time and the scenario's name, bars or
//! status lines for the scenarios running). It sits below `cli` and `suite` so the
//! orchestrator can show a run without depending on the command line, and the script
//! host gives a script run on its own the same console.

pub mod progress;

pub use progress::Progress;

use std::io::Write as _;

/// Prints to stdout; a closed stdout (`| head`) is not worth failing over.
pub fn say(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes()).and_then(|_| out.flush());
}
