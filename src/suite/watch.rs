//! `mcpscript watch suite.yaml`: runs the suite once, then watches the suite file, the
//! manifests' and scripts' folders, `stdlib/` and `reports/templates/` (notify with the
//! full debouncer, so editors that save by rename, bursts of saves and files deleted and
//! recreated arrive as one settled change). After a change it reloads and re-validates
//! the suite; a problem is printed with its place and the watcher waits for the next save.
//! Otherwise it re-runs the scenarios whose fingerprint changed (manifest, script, every
//! module it imports, resolved parameters and timeout) plus everything depending on them,
//! and prints status flips and metric differences against the previous run. Changes that
//! arrive while scenarios run are handled after the run: a scenario is never interrupted.

use super::load::SuitePlan;
use super::orchestrator;
use crate::cli::args::WatchArgs;
use crate::cli::suite_run::{self, Prepared};
use crate::cli::{CliError, Exit};
use crate::script::results::{RunResults, ScenarioResult};
use crate::script::StopSignal;
use crate::util::duration::parse_duration;
use notify::event::ModifyKind;
use notify::{EventKind, RecursiveMode};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// What a scenario's last run depended on: when it changes, the scenario re-runs.
fn fingerprint(plan: &SuitePlan, i: usize, stdlib: &Path) -> u64 {
    let s = &plan.scenarios[i];
    let mut h = std::collections::hash_map::DefaultHasher::new();
    let read = |p: &Path| std::fs::read(p).unwrap_or_default();
    read(&s.manifest_path).hash(&mut h);
    read(&s.script_path).hash(&mut h);
    for m in module_files(plan, i, stdlib) {
        read(&m).hash(&mut h);
    }
    format!("{:?}", s.params).hash(&mut h);
    s.timeout.hash(&mut h);
    format!("{:?}{:?}", s.resources, s.server).hash(&mut h);
    h.finish()
}

/// The files of the modules a scenario imports (its folder first, then the stdlib folder).
fn module_files(plan: &SuitePlan, i: usize, stdlib: &Path) -> Vec<PathBuf> {
    let s = &plan.scenarios[i];
    let dir = s.script_path.parent().map(Path::to_path_buf).unwrap_or_default();
    s.script
        .info
        .imports
        .iter()
        .filter_map(|m| {
            [dir.join(format!("{m}.rhai")), stdlib.join(format!("{m}.rhai"))].into_iter().find(|p| p.is_file())
        })
        .collect()
}

/// The folders to watch for a plan (or, before a plan loads, for the suite file alone).
fn folders(suite: &Path, plan: Option<&SuitePlan>, stdlib: &Path) -> BTreeSet<PathBuf> {
    let parent = |p: &Path| {
        let d = p.parent().map(Path::to_path_buf).unwrap_or_default();
        if d.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            d
        }
    };
    let mut out = BTreeSet::from([parent(suite)]);
    if let Some(plan) = plan {
        for s in &plan.scenarios {
            out.insert(parent(&s.manifest_path));
            out.insert(parent(&s.script_path));
        }
    }
    for extra in [stdlib, Path::new("reports/templates")] {
        if extra.is_dir() {
            out.insert(extra.to_path_buf());
        }
    }
    out
}

fn relevant(p: &Path) -> bool {
    matches!(p.extension().and_then(|e| e.to_str()), Some("rhai" | "yaml" | "yml"))
        || p.components().any(|c| c.as_os_str() == "templates")
}

pub fn run(a: WatchArgs) -> Result<Exit, CliError> {
    let debounce = parse_duration(&a.debounce).map_err(|e| CliError::invalid(format!("--debounce: {e}")))?;
    let started = Instant::now();
    let p: Prepared = suite_run::prepare(&a.run, started)?;
    let out_dir = p.out.clone();
    let (tx, rx) = mpsc::channel();
    let mut debouncer = notify_debouncer_full::new_debouncer(debounce, None, tx)
        .map_err(|e| CliError::failed(format!("cannot watch files: {e}")))?;
    let stdlib = a.run.stdlib.clone().unwrap_or_else(|| PathBuf::from("stdlib"));
    let mut watched: BTreeSet<PathBuf> = BTreeSet::new();
    let mut watch = |dirs: BTreeSet<PathBuf>, watched: &mut BTreeSet<PathBuf>| {
        for d in dirs.difference(&watched.clone()) {
            let mode = if *d == stdlib { RecursiveMode::Recursive } else { RecursiveMode::NonRecursive };
            match debouncer.watch(d, mode) {
                Ok(()) => {
                    watched.insert(d.clone());
                }
                Err(e) => eprintln!("warning: cannot watch {}: {e}", d.display()),
            }
        }
    };

    let mut runs = 0u32;
    let mut last: BTreeMap<String, ScenarioResult> = BTreeMap::new();
    let mut prints: BTreeMap<String, u64> = BTreeMap::new();
    let mut first = true;
    let mut since = started;
    loop {
        // (Re)load and decide what to run.
        match suite_run::load_plan(&a.run) {
            // Nothing ran yet: a suite that does not validate is bad input, not something
            // to wait on.
            Err(e) if first => return Err(e),
            Err(e) => {
                // One write to one stream, so the place and the verdict stay together.
                eprintln!("error: {}\nthe suite did not validate; fix it and save again", e.message);
                watch(folders(&a.run.file, None, &stdlib), &mut watched);
            }
            Ok(plan) => {
                watch(folders(&a.run.file, Some(&plan), &stdlib), &mut watched);
                // Re-runs of part of a suite are not runs of the suite: the history is left
                // alone (a pinned --baseline still gives each re-run its verdict).
                let report_args = crate::cli::args::ReportArgs { no_history: true, ..a.run.report.clone() };
                let reporting = crate::cli::reporting::Reporting::prepare(
                    &report_args,
                    out_dir.as_deref(),
                    a.run.quiet,
                    &plan.name,
                )?;
                let now: BTreeMap<String, u64> = plan
                    .selected
                    .iter()
                    .map(|&i| (plan.scenarios[i].name.clone(), fingerprint(&plan, i, &stdlib)))
                    .collect();
                let changed: BTreeSet<usize> = plan
                    .selected
                    .iter()
                    .copied()
                    .filter(|&i| first || prints.get(&plan.scenarios[i].name) != now.get(&plan.scenarios[i].name))
                    .collect();
                let rerun: BTreeSet<usize> =
                    plan.graph.dependents_closure(&changed).intersection(&plan.selected).copied().collect();
                if rerun.is_empty() {
                    say("validated: no scenario changed\n");
                } else {
                    let names = |set: &BTreeSet<usize>| {
                        set.iter().map(|&i| plan.scenarios[i].name.as_str()).collect::<Vec<_>>().join(", ")
                    };
                    if first {
                        say(&format!("run {}: all {} scenarios\n", runs + 1, rerun.len()));
                    } else {
                        say(&format!(
                            "run {}: re-running {} (changed: {})\n",
                            runs + 1,
                            names(&rerun),
                            names(&changed)
                        ));
                    }
                    let mut cfg = p.cfg.clone();
                    cfg.started = since;
                    cfg.only = Some(rerun.clone());
                    let results = orchestrator::run(&plan, &cfg);
                    runs += 1;
                    let diff = (!first).then(|| differences(&last, &results));
                    for s in &results.scenarios {
                        last.insert(s.root.name.clone(), s.clone());
                    }
                    let mut record = whole_suite(&plan, &last, &results);
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
                    // A scenario that did not run keeps its old fingerprint so it runs next time.
                    for &i in &rerun {
                        let name = &plan.scenarios[i].name;
                        let ran = results.scenarios.iter().any(|s| {
                            s.root.name == *name && s.schedule.as_ref().is_some_and(|x| x.started_ms.is_some())
                        });
                        if ran {
                            prints.insert(name.clone(), now[name]);
                        } else {
                            prints.remove(name);
                        }
                    }
                    first = false;
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
        match wait_for_change(&rx, debounce, &p.cfg.interrupt) {
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

/// Events from the file watcher.
pub type Events = mpsc::Receiver<notify_debouncer_full::DebounceEventResult>;

/// What ended a wait for a change.
pub enum Changed {
    /// These relevant files changed (settled: no more saves for a debounce period).
    Files(BTreeSet<PathBuf>),
    /// Ctrl-C or SIGTERM.
    Interrupted,
}

/// Waits until relevant files (scripts, manifests, templates) changed and stayed quiet for
/// `debounce`, or `interrupt` fired; None when the watcher itself went away.
pub fn wait_for_change(rx: &Events, debounce: Duration, interrupt: &StopSignal) -> Option<Changed> {
    loop {
        if interrupt.reason().is_some() {
            return Some(Changed::Interrupted);
        }
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(Ok(events)) => {
                // Reading files (validation does) shows up as access and metadata events.
                let paths: BTreeSet<PathBuf> = events
                    .iter()
                    .filter(|e| !matches!(e.kind, EventKind::Access(_) | EventKind::Modify(ModifyKind::Metadata(_))))
                    .flat_map(|e| e.paths.iter().cloned())
                    .filter(|p| relevant(p))
                    .collect();
                if !paths.is_empty() {
                    // The debouncer releases each event once it is old enough, so the start
                    // of a burst of saves can come before its end: wait until the files are
                    // quiet for a debounce period.
                    let mut paths = paths;
                    while let Ok(Ok(more)) = rx.recv_timeout(debounce) {
                        paths.extend(more.iter().flat_map(|e| e.paths.iter().cloned()).filter(|p| relevant(p)));
                    }
                    return Some(Changed::Files(paths));
                }
            }
            Ok(Err(errs)) => {
                for e in errs {
                    eprintln!("warning: watching: {e}");
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => return None,
        }
    }
}

/// The record of a re-run: the scenarios that ran now and the latest result of every other
/// selected scenario, carried over from earlier runs, so that `results.json` (and the verdict)
/// always describe the whole suite as it stands, not only what the last save touched.
fn whole_suite(plan: &SuitePlan, latest: &BTreeMap<String, ScenarioResult>, ran: &RunResults) -> RunResults {
    let scenarios =
        plan.selected.iter().filter_map(|&i| latest.get(&plan.scenarios[i].name).cloned()).collect::<Vec<_>>();
    let mut record = RunResults::new(ran.run_id.clone(), ran.target.clone(), std::time::SystemTime::now(), scenarios);
    record.started_at = ran.started_at.clone();
    record.finished_at = ran.finished_at.clone();
    record.duration_ms = ran.duration_ms;
    record.suite = ran.suite.clone();
    record
}

/// Status flips and metric differences of the scenarios in `now` against `before`.
fn differences(before: &BTreeMap<String, ScenarioResult>, now: &RunResults) -> String {
    let mut out = String::from("compared with the previous run:\n");
    for s in &now.scenarios {
        let name = &s.root.name;
        let Some(old) = before.get(name) else {
            let _ = writeln!(out, "  {name}: new, {}", s.status().as_str());
            continue;
        };
        if old.status() != s.status() {
            let _ = writeln!(out, "  {name}: {} -> {}", old.status().as_str(), s.status().as_str());
        } else {
            let _ = writeln!(out, "  {name}: still {}", s.status().as_str());
        }
        let old_metrics: BTreeMap<&str, f64> = old.all_metrics().iter().map(|m| (m.name.as_str(), m.value)).collect();
        for m in s.all_metrics() {
            match old_metrics.get(m.name.as_str()) {
                Some(&o) => {
                    let pct =
                        if o != 0.0 { format!(" ({:+.1}%)", (m.value - o) / o.abs() * 100.0) } else { String::new() };
                    let _ = writeln!(out, "    {} {} -> {}{pct}", m.name, trim(o), trim(m.value));
                }
                None => {
                    let _ = writeln!(out, "    {} {} (new)", m.name, trim(m.value));
                }
            }
        }
    }
    out
}

fn trim(v: f64) -> String {
    let s = format!("{v:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

fn say(text: &str) {
    crate::cli::suite::say(text);
}
