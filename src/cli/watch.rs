//! `mcpscript watch FILE`: a suite (see [`crate::suite::watch`]), or a single scenario
//! script: run it, then re-run it whenever it or a module it may import (`.rhai` files in
//! its folder and in the stdlib folder) is saved. A script that does not compile or a
//! suite that does not validate before anything ran is bad input (exit 2); later, the
//! error is shown with its place and the watcher waits for the next save.

use super::args::WatchArgs;
use super::{CliError, Exit};
use crate::suite::watch::{wait_for_change, Changed};
use crate::util::duration::parse_duration;
use notify::RecursiveMode;
use std::path::PathBuf;
use std::sync::mpsc;

pub fn run(a: WatchArgs) -> Result<Exit, CliError> {
    if super::suite::is_suite(&a.run.file) {
        return crate::suite::watch::run(a);
    }
    let debounce = parse_duration(&a.debounce).map_err(|e| CliError::invalid(format!("--debounce: {e}")))?;
    // Fails with exit 2 before anything runs when the script does not load or compile.
    super::check::load(&a.run.file, a.run.stdlib.clone(), crate::script::Limits::default())?;
    let rt = super::runtime(1)?;
    let interrupt = super::run::interrupt_on_signals(&rt, "the watcher");
    let (tx, rx) = mpsc::channel();
    let mut debouncer = notify_debouncer_full::new_debouncer(debounce, None, tx)
        .map_err(|e| CliError::failed(format!("cannot watch files: {e}")))?;
    let folder = match a.run.file.parent().filter(|p| !p.as_os_str().is_empty()) {
        Some(p) => p.to_path_buf(),
        None => PathBuf::from("."),
    };
    let stdlib = a.run.stdlib.clone().unwrap_or_else(|| PathBuf::from("stdlib"));
    for (dir, mode) in [(folder.as_path(), RecursiveMode::NonRecursive), (stdlib.as_path(), RecursiveMode::Recursive)] {
        if dir.is_dir() {
            debouncer.watch(dir, mode).map_err(|e| CliError::failed(format!("cannot watch {}: {e}", dir.display())))?;
        }
    }
    let mut runs = 0u32;
    loop {
        runs += 1;
        match super::run::run(a.run.clone()) {
            Ok(Exit::Interrupted) => return Ok(Exit::Interrupted),
            Ok(_) => {}
            // A compile error after an edit: shown with its place; the next save may fix it.
            Err(e) => eprintln!("error: {}", e.message),
        }
        if interrupt.reason().is_some() {
            return Ok(Exit::Interrupted);
        }
        if a.max_runs.is_some_and(|m| runs >= m) {
            return Ok(Exit::Ok);
        }
        println!("watching {} for changes (Ctrl-C stops)", a.run.file.display());
        match wait_for_change(&rx, debounce, &interrupt) {
            Some(Changed::Files(paths)) => {
                let names: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
                println!("changed: {}", names.join(", "));
            }
            Some(Changed::Interrupted) => return Ok(Exit::Interrupted),
            None => return Ok(Exit::Ok),
        }
    }
}
