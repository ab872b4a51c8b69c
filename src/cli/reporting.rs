//! What every run does after its scenarios ended, and what `report` and `compare` do with a
//! stored run: find the baseline (the history's last passing runs of the same kind, or a
//! pinned `results.json`), compare, put the verdict into the result tree, write every
//! report format atomically, append the run to the history, and turn a regression at or
//! above `--fail-on` into exit 3. Everything that can be known before a run (an unwritable
//! `--out`, a baseline that cannot be read or belongs to another suite, a bad `--format`)
//! is checked by [`Reporting::prepare`] before anything runs.

use super::args::ReportArgs;
use super::{CliError, Exit};
use crate::regress::compare::{self, Baseline};
use crate::regress::history::{self, History, HistoryEntry};
use crate::regress::{Comparison, Severity, Verdict};
use crate::report::{self, text, Format};
use crate::script::results::{RunResults, SCHEMA_VERSION};
use crate::util::human;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// The options of reporting, validated.
pub struct Reporting {
    pub formats: Vec<Format>,
    /// `--out`, or None for `reports/<run-id>/`.
    pub out: Option<PathBuf>,
    /// None with `--no-history`.
    pub history: Option<PathBuf>,
    pub baseline: BaselineChoice,
    pub baseline_runs: usize,
    pub fail_on: Option<Severity>,
    pub quiet: bool,
}

/// What the run is compared with.
pub enum BaselineChoice {
    /// The history (when it has runs of the same kind).
    History,
    /// A pinned run.
    Pinned(HistoryEntry, String),
    /// Nothing (`--no-history` without `--baseline`).
    None,
}

impl Reporting {
    /// Validates the reporting options of a run of `kind` (the suite's name, or the
    /// script's file), before anything runs.
    pub fn prepare(a: &ReportArgs, out: Option<&Path>, quiet: bool, kind: &str) -> Result<Reporting, CliError> {
        let mut formats = Format::parse_list(&a.format).map_err(|e| CliError::invalid(format!("--format: {e}")))?;
        if !formats.contains(&Format::Json) {
            // results.json is the record (and what `report` re-renders from): always written.
            formats.insert(0, Format::Json);
        }
        let fail_on = parse_fail_on(&a.fail_on)?;
        if a.baseline_runs == 0 {
            return Err(CliError::invalid("--baseline-runs must be at least 1"));
        }
        check_writable(out.unwrap_or(Path::new("reports")), out.is_some())?;
        if formats.contains(&Format::Html) {
            report::html::check_template(report::templates_dir().as_deref()).map_err(CliError::invalid)?;
        }
        let history =
            (!a.no_history).then(|| a.history.clone().unwrap_or_else(|| PathBuf::from(history::DEFAULT_PATH)));
        if let Some(h) = &history {
            check_history_writable(h)?;
        }
        let baseline = match a.baseline.as_deref() {
            None if history.is_some() => BaselineChoice::History,
            None => BaselineChoice::None,
            Some("history") if history.is_none() => {
                return Err(CliError::invalid("--baseline history and --no-history contradict each other"))
            }
            Some("history") => BaselineChoice::History,
            Some(path) => {
                let run = load_results(Path::new(path))?;
                let entry = HistoryEntry::of(&run);
                if entry.suite != kind {
                    return Err(CliError::invalid(format!(
                        "--baseline {path} is a run of '{}', and this run is '{kind}': a baseline must be a run of the same suite or script",
                        entry.suite
                    )));
                }
                BaselineChoice::Pinned(entry, path.to_string())
            }
        };
        Ok(Reporting {
            formats,
            out: out.map(Path::to_path_buf),
            history,
            baseline,
            baseline_runs: a.baseline_runs,
            fail_on,
            quiet,
        })
    }

    /// The folder a run's reports go to.
    pub fn dir_for(&self, r: &RunResults) -> PathBuf {
        self.out.clone().unwrap_or_else(|| PathBuf::from("reports").join(&r.run_id))
    }

    /// Compares `r` with its baseline, writes the reports, appends the run to the history.
    /// Returns the folder written and the comparison's exit (3 when it fails the run).
    pub fn finish(&self, r: &mut RunResults) -> Result<PathBuf, CliError> {
        let mut current = HistoryEntry { git_commit: history::git_commit(), ..HistoryEntry::of(r) };
        let stored = match &self.history {
            Some(path) => {
                let h = History::read(path).map_err(CliError::failed)?;
                for w in &h.warnings {
                    eprintln!("warning: {w}");
                }
                Some(h)
            }
            None => None,
        };
        let series: Vec<&HistoryEntry> =
            stored.as_ref().map(|h| h.series_for(&current, compare::HISTORY_WINDOW)).unwrap_or_default();
        r.regression = match &self.baseline {
            BaselineChoice::None => None,
            BaselineChoice::Pinned(run, path) => {
                Some(compare::compare(&Baseline::Pinned(run, path.clone()), &current, &series, self.fail_on))
            }
            BaselineChoice::History => stored.as_ref().and_then(|h| {
                let runs = h.baseline_for(&current, self.baseline_runs);
                (!runs.is_empty()).then(|| compare::compare(&Baseline::History(runs), &current, &series, self.fail_on))
            }),
        };
        current.regressed = r.regression.as_ref().is_some_and(Comparison::fails);
        let dir = self.dir_for(r);
        // A report that cannot be written is an error, after the others and the history
        // were written: nothing else of the run is lost.
        let written = report::write(r, &dir, &self.formats);
        if self.formats.contains(&Format::Markdown) {
            let md = report::markdown::render(r, report::markdown::FULL_LIMIT);
            if let Err(e) = report::markdown::append_to_step_summary(&md) {
                eprintln!("warning: cannot append to $GITHUB_STEP_SUMMARY: {e}");
            }
        }
        if let Some(path) = &self.history {
            history::append(path, &current).map_err(CliError::failed)?;
        }
        let written = written.map_err(|e| CliError::failed(format!("the run's reports in {}: {e}", dir.display())))?;
        tracing::info!("reports written in {:.1} ms: {:?}", written.elapsed_ms, written.files);
        Ok(dir)
    }

    /// The exit code of a finished run: interrupted, then failed, then a regression at or
    /// above `--fail-on` (3), else `base`.
    pub fn exit(&self, r: &RunResults, base: Exit) -> Exit {
        match base {
            Exit::Ok if r.regression.as_ref().is_some_and(Comparison::fails) => Exit::Regression,
            other => other,
        }
    }

    /// The lines printed after a run's summary: the verdict against the baseline and where
    /// the reports are.
    pub fn epilogue(&self, r: &RunResults, dir: &Path) -> String {
        let mut out = verdict_lines(r.regression.as_ref(), self.history.is_some());
        let files: Vec<&str> = self.formats.iter().flat_map(|f| f.files().iter().copied()).collect();
        let _ = writeln!(out, "reports: {}/ ({})", dir.display(), files.join(", "));
        out
    }
}

/// The verdict against the baseline after a run: the tally, then one line per regression
/// (worst first), then whether it fails the run.
pub fn verdict_lines(c: Option<&Comparison>, history_on: bool) -> String {
    let mut out = String::new();
    let Some(c) = c else {
        if history_on {
            out.push_str("regressions: no baseline yet (this run starts the history)\n");
        }
        return out;
    };
    let _ = writeln!(out, "regressions: {} against {}", text::tally(c), c.baseline);
    let regressions: Vec<_> = text::ordered_rows(c).into_iter().filter(|r| r.verdict == Verdict::Regression).collect();
    if !regressions.is_empty() {
        for line in text::table(&text::comparison_rows(&regressions), text::COMPARISON_RIGHT) {
            let _ = writeln!(out, "  {line}");
        }
    }
    if c.fails() {
        let level = c.fail_on.map(Severity::as_str).unwrap_or("");
        let _ = writeln!(out, "FAILED on regressions at or above {level} (exit 3)");
    }
    out
}

/// `--fail-on LEVEL`: low, medium, high, critical, or none.
pub fn parse_fail_on(s: &str) -> Result<Option<Severity>, CliError> {
    match s.trim() {
        "none" | "never" | "off" => Ok(None),
        s => s.parse().map(Some).map_err(|e| CliError::invalid(format!("--fail-on: {e}"))),
    }
}

/// Fails (exit 2) unless files can be created in `dir`: it is created if missing, and a
/// probe file is written and removed.
pub fn check_writable(dir: &Path, given: bool) -> Result<(), CliError> {
    let what = if given { "--out" } else { "the reports folder" };
    let fail = |e: std::io::Error| CliError::invalid(format!("{what} {}: cannot write there ({e})", dir.display()));
    if dir.exists() && !dir.is_dir() {
        return Err(CliError::invalid(format!("{what} {}: is a file, not a folder", dir.display())));
    }
    std::fs::create_dir_all(dir).map_err(fail)?;
    let probe = dir.join(format!(".mcpscript-probe-{}", std::process::id()));
    std::fs::write(&probe, b"").map_err(fail)?;
    let _ = std::fs::remove_file(&probe);
    Ok(())
}

fn check_history_writable(path: &Path) -> Result<(), CliError> {
    if path.is_dir() {
        return Err(CliError::invalid(format!("--history {}: is a folder, not a file", path.display())));
    }
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)
        .and_then(|_| std::fs::OpenOptions::new().append(true).create(true).open(path).map(drop))
        .map_err(|e| CliError::invalid(format!("the history {}: cannot append to it ({e})", path.display())))
}

/// Reads a stored `results.json` (or the folder holding one), refusing other schema
/// versions, truncated files and non-results with one sentence (exit 2).
pub fn load_results(input: &Path) -> Result<RunResults, CliError> {
    let file: PathBuf = if input.is_dir() { input.join("results.json") } else { input.to_path_buf() };
    let bytes = std::fs::read(&file).map_err(|e| {
        CliError::invalid(match e.kind() {
            std::io::ErrorKind::NotFound if input.is_dir() => {
                format!("{} is a folder without a results.json", input.display())
            }
            std::io::ErrorKind::NotFound => format!("cannot read {}: no such file", file.display()),
            std::io::ErrorKind::PermissionDenied => format!("cannot read {}: permission denied", file.display()),
            _ => format!("cannot read {}: {e}", file.display()),
        })
    })?;
    let value: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| {
        let what = if e.is_eof() { "is truncated" } else { "is not JSON" };
        CliError::invalid(format!("{} {what} (line {}, column {}): {e}", file.display(), e.line(), e.column()))
    })?;
    match value.get("schema_version").and_then(serde_json::Value::as_u64) {
        Some(v) if v == u64::from(SCHEMA_VERSION) => {}
        Some(v) => {
            return Err(CliError::invalid(format!(
                "{} has schema_version {v}; this mcpscript reads version {SCHEMA_VERSION} only",
                file.display()
            )))
        }
        None if value.get("schema").is_some() => {
            return Err(CliError::invalid(format!(
                "{} was written by an older mcpscript (schema {}); this one reads schema_version {SCHEMA_VERSION}: re-run it",
                file.display(),
                value["schema"]
            )))
        }
        None => return Err(CliError::invalid(format!("{} is not an mcpscript results.json", file.display()))),
    }
    serde_json::from_value(value)
        .map_err(|e| CliError::invalid(format!("{} is not a valid results.json: {e}", file.display())))
}

/// `mcpscript report RESULTS.json [--format LIST] [--out DIR]`: re-renders a stored run.
pub fn report_command(a: super::args::ReportCmdArgs) -> Result<Exit, CliError> {
    let r = load_results(&a.results)?;
    let formats = Format::parse_list(&a.format).map_err(|e| CliError::invalid(format!("--format: {e}")))?;
    let dir = match &a.out {
        Some(d) => d.clone(),
        None => folder_of(&a.results),
    };
    check_writable(&dir, a.out.is_some())?;
    let written = report::write(&r, &dir, &formats).map_err(CliError::failed)?;
    for f in &written.files {
        crate::console::say(&format!("wrote {}\n", f.display()));
    }
    crate::console::say(&format!("{} file(s) in {}\n", written.files.len(), human::ms(written.elapsed_ms)));
    Ok(Exit::Ok)
}

fn folder_of(results: &Path) -> PathBuf {
    if results.is_dir() {
        return results.to_path_buf();
    }
    results.parent().filter(|p| !p.as_os_str().is_empty()).map(Path::to_path_buf).unwrap_or_else(|| ".".into())
}

/// `mcpscript compare BASE CURRENT`: BASE is a results.json (or its folder) or `history`
/// (the current run's stored baseline); prints the table, writes the reports of CURRENT
/// with the comparison into `--out` (default: CURRENT's folder), exits 3 on a regression at
/// or above `--fail-on`.
pub fn compare_command(a: super::args::CompareArgs) -> Result<Exit, CliError> {
    let mut current = load_results(&a.current)?;
    let entry = HistoryEntry::of(&current);
    let fail_on = parse_fail_on(&a.fail_on)?;
    let history_path = a.history.clone().unwrap_or_else(|| PathBuf::from(history::DEFAULT_PATH));
    let stored = History::read(&history_path).map_err(CliError::invalid)?;
    for w in &stored.warnings {
        eprintln!("warning: {w}");
    }
    let series = stored.series_for(&entry, compare::HISTORY_WINDOW);
    let comparison = if a.base == "history" {
        let runs = stored.baseline_for(&entry, a.baseline_runs.max(1));
        if runs.is_empty() {
            return Err(CliError::invalid(format!(
                "the history {} has no passing run of '{}' (profile {}, target {}) to compare with",
                history_path.display(),
                entry.suite,
                entry.profile,
                entry.target
            )));
        }
        compare::compare(&Baseline::History(runs), &entry, &series, fail_on)
    } else {
        let base = load_results(Path::new(&a.base))?;
        let base_entry = HistoryEntry::of(&base);
        if base_entry.suite != entry.suite {
            return Err(CliError::invalid(format!(
                "{} is a run of '{}' and {} a run of '{}': compare runs of the same suite or script",
                a.base,
                base_entry.suite,
                a.current.display(),
                entry.suite
            )));
        }
        compare::compare(&Baseline::Pinned(&base_entry, a.base.clone()), &entry, &series, fail_on)
    };
    let rows: Vec<_> = comparison.rows.iter().collect();
    for line in text::table(&text::comparison_rows(&rows), text::COMPARISON_RIGHT) {
        crate::console::say(&format!("{line}\n"));
    }
    print!("{}", verdict_lines(Some(&comparison), true));
    let fails = comparison.fails();
    current.regression = Some(comparison);
    let dir = a.out.clone().unwrap_or_else(|| folder_of(&a.current));
    check_writable(&dir, a.out.is_some())?;
    let written = report::write(&current, &dir, &Format::ALL).map_err(CliError::failed)?;
    crate::console::say(&format!("reports: {}/ ({} files)\n", dir.display(), written.files.len()));
    Ok(if fails { Exit::Regression } else { Exit::Ok })
}
