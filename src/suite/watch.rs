//! The watcher's logic under `mcpscript watch suite.yaml` (the command, its arguments and
//! what it prints are `cli::watch`'s): [`FileWatch`] watches the suite file's folder, the
//! manifests' and scripts' folders, the stdlib folder and `reports/templates/` when that
//! folder exists (notify with the full debouncer, so editors that save by rename, bursts of
//! saves and files deleted and recreated arrive as one settled change). A template edit
//! re-runs nothing: the next run's `report.html` is rendered with it (a folder named by
//! `MCPSCRIPT_TEMPLATES`, which the reports read instead, is not watched). [`Reruns`] decides what a
//! reloaded plan re-runs: the scenarios whose fingerprint changed (manifest, script, every
//! module it imports, resolved parameters and timeout) plus everything depending on them;
//! and it folds each run into the record of the whole suite, with the status flips and
//! metric differences against the previous run.

use super::plan::SuitePlan;
use crate::script::results::{RunResults, ScenarioResult};
use crate::script::StopSignal;
use notify::event::ModifyKind;
use notify::{EventKind, RecommendedWatcher, RecursiveMode};
use notify_debouncer_full::{Debouncer, RecommendedCache};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

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

/// The folders being watched and the settled changes in them.
pub struct FileWatch {
    debouncer: Debouncer<RecommendedWatcher, RecommendedCache>,
    events: Events,
    debounce: Duration,
    /// Watched with its subfolders.
    stdlib: PathBuf,
    watched: BTreeSet<PathBuf>,
}

impl FileWatch {
    /// A watcher whose changes count once they stayed quiet for `debounce`.
    pub fn new(debounce: Duration, stdlib: &Path) -> Result<FileWatch, notify::Error> {
        let (tx, events) = mpsc::channel();
        let debouncer = notify_debouncer_full::new_debouncer(debounce, None, tx)?;
        Ok(FileWatch { debouncer, events, debounce, stdlib: stdlib.to_path_buf(), watched: BTreeSet::new() })
    }

    /// Watches those of `dirs` not watched yet (the stdlib folder with its subfolders, the
    /// others alone); returns the folders that cannot be watched, with why.
    pub fn watch(&mut self, dirs: impl IntoIterator<Item = PathBuf>) -> Vec<(PathBuf, notify::Error)> {
        let mut failed = Vec::new();
        for d in dirs {
            if self.watched.contains(&d) {
                continue;
            }
            let mode = if d == self.stdlib { RecursiveMode::Recursive } else { RecursiveMode::NonRecursive };
            match self.debouncer.watch(&d, mode) {
                Ok(()) => {
                    self.watched.insert(d);
                }
                Err(e) => failed.push((d, e)),
            }
        }
        failed
    }

    /// Watches the folders of the suite at `suite` and, once it loads, of its `plan`.
    pub fn watch_suite(&mut self, suite: &Path, plan: Option<&SuitePlan>) -> Vec<(PathBuf, notify::Error)> {
        let dirs = folders(suite, plan, &self.stdlib);
        self.watch(dirs)
    }

    /// Waits until relevant files (scripts, manifests, templates) changed and stayed quiet
    /// for the debounce period, or `interrupt` fired; None when the watcher itself went away.
    pub fn wait(&self, interrupt: &StopSignal) -> Option<Changed> {
        wait_for_change(&self.events, self.debounce, interrupt)
    }
}

/// What the watcher remembers between runs: each scenario's fingerprint when it last ran
/// and its latest result.
pub struct Reruns {
    stdlib: PathBuf,
    first: bool,
    prints: BTreeMap<String, u64>,
    latest: BTreeMap<String, ScenarioResult>,
}

/// What a reloaded plan runs.
pub struct Rerun {
    /// The selected scenarios that changed since they last ran (all of them at first).
    pub changed: BTreeSet<usize>,
    /// Those and the selected scenarios depending on them: what runs.
    pub run: BTreeSet<usize>,
    /// The fingerprints of the selected scenarios now.
    prints: BTreeMap<String, u64>,
}

impl Reruns {
    /// Nothing ran yet; modules are looked up in `stdlib` too.
    pub fn new(stdlib: &Path) -> Reruns {
        Reruns { stdlib: stdlib.to_path_buf(), first: true, prints: BTreeMap::new(), latest: BTreeMap::new() }
    }

    /// Nothing ran yet.
    pub fn first(&self) -> bool {
        self.first
    }

    /// What `plan` re-runs.
    pub fn plan(&self, plan: &SuitePlan) -> Rerun {
        let prints: BTreeMap<String, u64> = plan
            .selected
            .iter()
            .map(|&i| (plan.scenarios[i].name.clone(), fingerprint(plan, i, &self.stdlib)))
            .collect();
        let changed: BTreeSet<usize> = plan
            .selected
            .iter()
            .copied()
            .filter(|&i| self.first || self.prints.get(&plan.scenarios[i].name) != prints.get(&plan.scenarios[i].name))
            .collect();
        let run = plan.graph.dependents_closure(&changed).intersection(&plan.selected).copied().collect();
        Rerun { changed, run, prints }
    }

    /// Takes in the `results` of running `rerun`: returns the record of the whole suite as
    /// it stands and, after the first run, the differences against the previous results.
    pub fn record(&mut self, plan: &SuitePlan, rerun: &Rerun, results: &RunResults) -> (RunResults, Option<String>) {
        let diff = (!self.first).then(|| differences(&self.latest, results));
        for s in &results.scenarios {
            self.latest.insert(s.root.name.clone(), s.clone());
        }
        let record = whole_suite(plan, &self.latest, results);
        // A scenario that did not run keeps its old fingerprint so it runs next time.
        for &i in &rerun.run {
            let name = &plan.scenarios[i].name;
            let ran = results
                .scenarios
                .iter()
                .any(|s| s.root.name == *name && s.schedule.as_ref().is_some_and(|x| x.started_ms.is_some()));
            if ran {
                self.prints.insert(name.clone(), rerun.prints[name]);
            } else {
                self.prints.remove(name);
            }
        }
        self.first = false;
        (record, diff)
    }
}

/// Events from the file watcher.
type Events = mpsc::Receiver<notify_debouncer_full::DebounceEventResult>;

/// What ended a wait for a change.
pub enum Changed {
    /// These relevant files changed (settled: no more saves for a debounce period).
    Files(BTreeSet<PathBuf>),
    /// Ctrl-C or SIGTERM.
    Interrupted,
}

/// Waits until relevant files (scripts, manifests, templates) changed and stayed quiet for
/// `debounce`, or `interrupt` fired; None when the watcher itself went away.
fn wait_for_change(rx: &Events, debounce: Duration, interrupt: &StopSignal) -> Option<Changed> {
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
