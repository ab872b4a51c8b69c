//! `mcpscript watch FILE`: a suite, or a single scenario script.
//!
//! A suite runs once; then, after each settled change of its files (see
//! [`crate::suite::watch`] for what is watched and what a change re-runs), it is reloaded
//! and re-validated: a problem is printed with its place and the watcher waits for the next
//! save; otherwise the changed scenarios and their dependents re-run, the reports describe
//! the whole suite as it stands, and status flips and metric differences against the
//! previous run are printed. Changes that arrive while scenarios run are handled after the
//! run: a scenario is never interrupted.
//!
//! A script runs, then re-runs whenever it or a module it may import (`.rhai` files in its
//! folder and in the stdlib folder) is saved.
//!
//! A script that does not compile or a suite that does not validate before anything ran is
//! bad input (exit 2); later, the error is shown with its place and the watcher waits for
//! the next save. The reporting options of a suite are checked before each run, so a
//! report template that does not parse ends the watcher with exit 2 at any time.

use super::args::{ReportArgs, WatchArgs};
use super::reporting::Reporting;
use super::suite_run;
use super::{CliError, Exit};
use crate::console::say;
use crate::suite::orchestrator;
use crate::suite::watch::{Changed, FileWatch, Reruns};
use crate::util::duration::parse_duration;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Instant;

pub fn run(a: WatchArgs) -> Result<Exit, CliError> {
    if super::suite::is_suite(&a.run.file) {
        return run_suite(a);
    }
    let debounce = parse_duration(&a.debounce).map_err(|e| CliError::invalid(format!("--debounce: {e}")))?;
    // Fails with exit 2 before anything runs when the script does not load or compile.
    super::check::load(&a.run.file, a.run.stdlib.clone(), crate::script::Limits::default())?;
    let rt = super::runtime(1)?;
    let interrupt = super::run::interrupt_on_signals(&rt, "the watcher");
    let stdlib = a.run.stdlib.clone().unwrap_or_else(|| PathBuf::from("stdlib"));
    let mut files = watcher(debounce, &stdlib)?;
    let folder = match a.run.file.parent().filter(|p| !p.as_os_str().is_empty()) {
        Some(p) => p.to_path_buf(),
        None => PathBuf::from("."),
    };
    if let Some((dir, e)) = files.watch([folder, stdlib].into_iter().filter(|d| d.is_dir())).into_iter().next() {
        return Err(CliError::failed(format!("cannot watch {}: {e}", dir.display())));
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
        crate::console::say(&format!("watching {} for changes (Ctrl-C stops)\n", a.run.file.display()));
        match files.wait(&interrupt) {
            Some(Changed::Files(paths)) => {
                let names: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
                crate::console::say(&format!("changed: {}\n", names.join(", ")));
            }
            Some(Changed::Interrupted) => return Ok(Exit::Interrupted),
            None => return Ok(Exit::Ok),
        }
    }
}

fn watcher(debounce: std::time::Duration, stdlib: &Path) -> Result<FileWatch, CliError> {
    FileWatch::new(debounce, stdlib).map_err(|e| CliError::failed(format!("cannot watch files: {e}")))
}

/// Folders that cannot be watched are a warning: the rest still is.
fn warn(failed: Vec<(PathBuf, notify::Error)>) {
    for (d, e) in failed {
        eprintln!("warning: cannot watch {}: {e}", d.display());
    }
}

fn run_suite(a: WatchArgs) -> Result<Exit, CliError> {
    let debounce = parse_duration(&a.debounce).map_err(|e| CliError::invalid(format!("--debounce: {e}")))?;
    let started = Instant::now();
    let p = suite_run::prepare(&a.run, started)?;
    let stdlib = a.run.stdlib.clone().unwrap_or_else(|| PathBuf::from("stdlib"));
    let mut files = watcher(debounce, &stdlib)?;
    let mut reruns = Reruns::new(&stdlib);
    let mut runs = 0u32;
    let mut since = started;
    loop {
        // (Re)load and decide what to run.
        match suite_run::load_plan(&a.run) {
            // Nothing ran yet: a suite that does not validate is bad input, not something
            // to wait on.
            Err(e) if reruns.first() => return Err(e),
            Err(e) => {
                // One write to one stream, so the place and the verdict stay together.
                eprintln!("error: {}\nthe suite did not validate; fix it and save again", e.message);
                warn(files.watch_suite(&a.run.file, None));
            }
            Ok(plan) => {
                warn(files.watch_suite(&a.run.file, Some(&plan)));
                // Re-runs of part of a suite are not runs of the suite: the history is left
                // alone (a pinned --baseline still gives each re-run its verdict).
                let report_args = ReportArgs { no_history: true, ..a.run.report.clone() };
                let reporting = Reporting::prepare(&report_args, p.out.as_deref(), a.run.quiet, &plan.name)?;
                let rerun = reruns.plan(&plan);
                if rerun.run.is_empty() {
                    say("validated: no scenario changed\n");
                } else {
                    let names = |set: &BTreeSet<usize>| {
                        set.iter().map(|&i| plan.scenarios[i].name.as_str()).collect::<Vec<_>>().join(", ")
                    };
                    if reruns.first() {
                        say(&format!("run {}: all {} scenarios\n", runs + 1, rerun.run.len()));
                    } else {
                        say(&format!(
                            "run {}: re-running {} (changed: {})\n",
                            runs + 1,
                            names(&rerun.run),
                            names(&rerun.changed)
                        ));
                    }
                    let mut cfg = p.cfg.clone();
                    cfg.started = since;
                    cfg.only = Some(rerun.run.clone());
                    let results = orchestrator::run(&plan, &cfg);
                    runs += 1;
                    let (mut record, diff) = reruns.record(&plan, &rerun, &results);
                    match reporting.finish(&mut record) {
                        Ok(dir) => {
                            say(&suite_run::summary(&record, &dir.join("results.json")));
                            say(&reporting.epilogue(&record, &dir));
                        }
                        Err(e) => eprintln!("error: {}", e.message),
                    }
                    if let Some(diff) = diff {
                        say(&diff);
                    }
                    if p.cfg.interrupt.reason().is_some() {
                        return Ok(Exit::Interrupted);
                    }
                }
            }
        }
        if a.max_runs.is_some_and(|m| runs >= m) {
            return Ok(Exit::Ok);
        }
        say("watching for changes (Ctrl-C stops)\n");
        match files.wait(&p.cfg.interrupt) {
            Some(Changed::Files(paths)) => {
                let shown: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
                say(&format!("changed: {}\n", shown.join(", ")));
                since = Instant::now();
            }
            Some(Changed::Interrupted) => return Ok(Exit::Interrupted),
            None => return Ok(Exit::Ok),
        }
    }
}
