//! The history of runs: `reports/history.jsonl` (or `--history PATH`), one JSON line per
//! run (run id, time, git commit when known, suite, profile, target, status, and every
//! exported metric with its samples). Append-only: a line is written whole with one
//! `write`, then fsync'd; nothing already there is ever rewritten. A corrupt or truncated
//! line is skipped with a warning that names its line number, and a later append starts on
//! a fresh line so it never glues onto a broken one.

use crate::script::results::{Better, RunResults, Status};
use serde::{Deserialize, Serialize};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// Where the history lives unless `--history` says otherwise.
pub const DEFAULT_PATH: &str = "reports/history.jsonl";

/// One exported metric of a run, as the history keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryMetric {
    pub scenario: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
    pub better: Better,
    pub value: f64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub samples: Vec<f64>,
}

/// One run: a line of the history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryEntry {
    pub run_id: String,
    /// When the run finished, RFC 3339 UTC.
    pub time: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub git_commit: Option<String>,
    /// The suite's name, or the script's file for a single script.
    pub suite: String,
    pub profile: String,
    /// The target as asked for (`builtin`, a URL), without the address a built-in server got.
    pub target: String,
    pub status: Status,
    /// The run failed on its regressions (`--fail-on`): it stays out of later baselines, so
    /// a regression never becomes the norm unless a run accepted it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub regressed: bool,
    pub metrics: Vec<HistoryMetric>,
}

impl HistoryEntry {
    /// The history line of a run (without its commit).
    pub fn of(r: &RunResults) -> HistoryEntry {
        let (suite, profile) = match &r.suite {
            Some(s) => (s.name.clone(), s.profile.clone()),
            None => (r.scenarios.first().map(|s| s.file.clone()).unwrap_or_default(), "default".to_string()),
        };
        HistoryEntry {
            run_id: r.run_id.clone(),
            time: r.finished_at.clone(),
            // The commit being tested is the caller's to add (see [`git_commit`]): a stored
            // run read back as a baseline was not made from this checkout.
            git_commit: None,
            suite,
            profile,
            target: target_key(&r.target),
            status: r.status,
            regressed: r.regression.as_ref().is_some_and(crate::regress::Comparison::fails),
            metrics: r
                .metrics
                .iter()
                .filter(|m| m.metric.value.is_finite())
                .map(|m| HistoryMetric {
                    scenario: m.scenario.clone(),
                    name: m.metric.name.clone(),
                    unit: m.metric.unit.clone(),
                    better: m.metric.better,
                    value: m.metric.value,
                    samples: m.metric.samples.iter().copied().filter(|x| x.is_finite()).collect(),
                })
                .collect(),
        }
    }

    /// Whether `other` is a run of the same suite, profile and target.
    pub fn same_kind(&self, other: &HistoryEntry) -> bool {
        self.suite == other.suite && self.profile == other.profile && self.target == other.target
    }

    pub fn metric(&self, scenario: &str, name: &str) -> Option<&HistoryMetric> {
        self.metrics.iter().find(|m| m.scenario == scenario && m.name == name)
    }
}

/// `builtin (tcp://127.0.0.1:42307)` -> `builtin`: the address a built-in or started server
/// got changes every run, the target it stands for does not.
pub fn target_key(shown: &str) -> String {
    match shown.split_once(" (") {
        Some((head, _)) => head.to_string(),
        None => shown.to_string(),
    }
}

/// The commit being tested: `$GITHUB_SHA`, else `.git/HEAD` of the current folder or an
/// ancestor (a branch resolved through its ref or `packed-refs`). None outside a checkout.
pub fn git_commit() -> Option<String> {
    if let Ok(sha) = std::env::var("GITHUB_SHA") {
        if !sha.trim().is_empty() {
            return Some(sha.trim().to_string());
        }
    }
    let mut dir = std::env::current_dir().ok()?;
    loop {
        let git = dir.join(".git");
        if git.is_dir() {
            return resolve_head(&git);
        }
        if !dir.pop() {
            return None;
        }
    }
}

fn resolve_head(git: &Path) -> Option<String> {
    let head = std::fs::read_to_string(git.join("HEAD")).ok()?;
    let head = head.trim();
    let Some(r) = head.strip_prefix("ref: ") else { return Some(head.to_string()) };
    if let Ok(sha) = std::fs::read_to_string(git.join(r)) {
        return Some(sha.trim().to_string());
    }
    let packed = std::fs::read_to_string(git.join("packed-refs")).ok()?;
    packed.lines().find_map(|l| l.strip_suffix(r).map(|sha| sha.trim().to_string()))
}

/// Appends `entry` as one line, fsync'd. The folder is created if needed; a file whose last
/// line was cut short gets a newline first, so the new line stands on its own.
pub fn append(path: &Path, entry: &HistoryEntry) -> Result<(), String> {
    let fail = |e: std::io::Error| format!("cannot append to the history {}: {e}", path.display());
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(fail)?;
    }
    let mut line = serde_json::to_vec(entry).map_err(|e| format!("cannot encode the history line: {e}"))?;
    line.push(b'\n');
    let mut f = std::fs::OpenOptions::new().read(true).append(true).create(true).open(path).map_err(fail)?;
    let len = f.metadata().map_err(fail)?.len();
    if len > 0 {
        let mut last = [0u8; 1];
        f.seek(SeekFrom::End(-1)).map_err(fail)?;
        f.read_exact(&mut last).map_err(fail)?;
        if last[0] != b'\n' {
            line.insert(0, b'\n');
        }
    }
    f.write_all(&line).map_err(fail)?;
    f.sync_data().map_err(fail)
}

/// The runs of a history and what had to be skipped.
#[derive(Debug, Default)]
pub struct History {
    pub path: PathBuf,
    /// Oldest first.
    pub entries: Vec<HistoryEntry>,
    /// One per skipped line: `reports/history.jsonl line 7: skipped (...)`.
    pub warnings: Vec<String>,
}

impl History {
    /// Reads the history at `path`; a missing file is an empty history.
    pub fn read(path: &Path) -> Result<History, String> {
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(format!("cannot read the history {}: {e}", path.display())),
        };
        let mut h = History { path: path.to_path_buf(), ..History::default() };
        for (i, line) in bytes.split(|&b| b == b'\n').enumerate() {
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            match serde_json::from_slice::<HistoryEntry>(line) {
                Ok(e) if e.metrics.iter().all(|m| m.value.is_finite()) => h.entries.push(e),
                Ok(_) => {
                    h.warnings.push(format!("{} line {}: skipped (a metric is not a number)", path.display(), i + 1))
                }
                Err(e) => h.warnings.push(format!("{} line {}: skipped ({e})", path.display(), i + 1)),
            }
        }
        Ok(h)
    }

    /// The last `n` passing runs of the same suite, profile and target as `current`
    /// (the current run itself and runs that failed on regressions excluded), oldest first.
    pub fn baseline_for(&self, current: &HistoryEntry, n: usize) -> Vec<&HistoryEntry> {
        let mut runs: Vec<&HistoryEntry> = self
            .entries
            .iter()
            .rev()
            .filter(|e| {
                e.run_id != current.run_id && e.status == Status::Passed && !e.regressed && e.same_kind(current)
            })
            .take(n)
            .collect();
        runs.reverse();
        runs
    }

    /// Every earlier run of the same kind as `current` (any status), oldest first, at most
    /// the last `limit`.
    pub fn series_for(&self, current: &HistoryEntry, limit: usize) -> Vec<&HistoryEntry> {
        let same: Vec<&HistoryEntry> =
            self.entries.iter().filter(|e| e.run_id != current.run_id && e.same_kind(current)).collect();
        same[same.len().saturating_sub(limit)..].to_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(id: &str, status: Status, value: f64) -> HistoryEntry {
        HistoryEntry {
            run_id: id.into(),
            time: "2026-12-06T00:00:00.000Z".into(),
            git_commit: None,
            suite: "s".into(),
            profile: "quick".into(),
            target: "builtin".into(),
            status,
            regressed: false,
            metrics: vec![HistoryMetric {
                scenario: "a".into(),
                name: "p99_ms".into(),
                unit: Some("ms".into()),
                better: Better::Lower,
                value,
                samples: vec![],
            }],
        }
    }

    #[test]
    fn appends_reads_and_skips_corrupt_lines_without_rewriting_them() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub").join("history.jsonl");
        append(&path, &entry("r1", Status::Passed, 1.0)).unwrap();
        // A crash in the middle of a line leaves it cut short, with no newline.
        std::fs::OpenOptions::new().append(true).open(&path).unwrap().write_all(b"{\"run_id\":\"r2\",\"ti").unwrap();
        append(&path, &entry("r3", Status::Passed, 3.0)).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("{\"run_id\":\"r2\",\"ti\n"), "the broken line stays as it was: {text}");
        let h = History::read(&path).unwrap();
        assert_eq!(h.entries.iter().map(|e| e.run_id.as_str()).collect::<Vec<_>>(), ["r1", "r3"]);
        assert_eq!(h.warnings.len(), 1);
        assert!(h.warnings[0].contains("line 2: skipped"), "{:?}", h.warnings);
        assert!(History::read(&dir.path().join("none.jsonl")).unwrap().entries.is_empty());
    }

    #[test]
    fn baseline_is_the_last_passing_runs_of_the_same_kind() {
        let mut h = History::default();
        for i in 0..8 {
            let status = if i == 6 { Status::Failed } else { Status::Passed };
            h.entries.push(entry(&format!("r{i}"), status, i as f64));
        }
        let mut other = entry("x", Status::Passed, 9.0);
        other.profile = "full".into();
        h.entries.push(other);
        let current = entry("now", Status::Passed, 0.0);
        let ids: Vec<&str> = h.baseline_for(&current, 3).iter().map(|e| e.run_id.as_str()).collect();
        assert_eq!(ids, ["r4", "r5", "r7"]);
        assert_eq!(h.series_for(&current, 100).len(), 8);
        assert_eq!(target_key("builtin (tcp://127.0.0.1:42307)"), "builtin");
        assert_eq!(target_key("http://127.0.0.1:3001/mcp"), "http://127.0.0.1:3001/mcp");
    }
}
