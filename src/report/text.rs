//! `summary.txt`: what a person reads in a terminal log. A header (what ran, against
//! what, when), the totals, one line per scenario, the failed checks under their scenario,
//! one line per load phase (with who limited it) and what servers asked its sessions, the
//! exported metrics and the comparison with the baseline. Every column is aligned and
//! every number rounded for reading ([`crate::util::human`]); a missing figure is `-` or
//! `n/a`, never NaN.
//!
//! The helpers the other renderings share (the run's name, why a scenario did not pass,
//! the checks and phases of a scenario's tree, the order and wording of the regression
//! rows) live here too.

use crate::load::{ModelKind, PhaseResult};
use crate::regress::{Comparison, MetricComparison, Verdict};
use crate::script::results::{
    Better, CheckFailure, CheckKind, CheckResult, Coverage, RunResults, ScenarioResult, StageResult, Status,
};
use crate::util::human;
use std::fmt::Write as _;

/// Longest free text (an error message, a check's detail) in one cell of summary.txt.
const MAX_CELL: usize = 100;

pub fn render(r: &RunResults) -> String {
    let mut out = String::new();
    header(&mut out, r);
    totals(&mut out, r);
    scenarios(&mut out, r);
    failed_checks(&mut out, r);
    load_phases(&mut out, r);
    metrics(&mut out, r);
    regression(&mut out, r);
    out
}

fn header(out: &mut String, r: &RunResults) {
    let (_, verdict) = verdict(r);
    let _ = writeln!(out, "mcpscript {}: {verdict}", run_title(r));
    let mut rows = Vec::new();
    if let Some(s) = &r.suite {
        rows.push(vec!["file".into(), format!("{} (profile {}, parallelism {})", s.file, s.profile, s.parallelism)]);
    }
    rows.push(vec!["target".into(), r.target.clone()]);
    rows.push(vec!["run".into(), r.run_id.clone()]);
    rows.push(vec!["started".into(), r.started_at.clone()]);
    rows.push(vec!["version".into(), format!("mcpscript {}", r.mcpscript_version)]);
    push_table(out, "  ", &rows, &[]);
    out.push('\n');
}

fn totals(out: &mut String, r: &RunResults) {
    let s = &r.summary;
    let ran = s.total_tests - s.skipped_tests;
    let mut rows = vec![
        vec![
            "Scenarios".into(),
            format!(
                "{} passed, {} failed, {} skipped of {}",
                human::int(s.passed_tests),
                human::int(s.failed_tests),
                human::int(s.skipped_tests),
                human::int(s.total_tests)
            ),
        ],
        vec!["Pass rate".into(), format!("{} (of the {} that ran)", human::pct(s.pass_rate), human::int(ran))],
        vec![
            "Assertions".into(),
            format!("{} passed of {}", human::int(s.passed_assertions), human::int(s.total_assertions)),
        ],
        vec!["Assertion rate".into(), human::pct(s.assertion_pass_rate)],
        vec!["Duration".into(), human::ms(r.duration_ms)],
    ];
    if let Some(c) = coverage_line(&r.coverage) {
        rows.push(vec!["Coverage".into(), c]);
    }
    if let Some(o) = r.suite.as_ref().map(|s| &s.overhead).or(r.framework.as_ref()) {
        let mut line = format!(
            "start-up {}, parallel efficiency {}, scheduling latency {} mean",
            human::ms(o.startup_ms),
            human::pct(o.parallel_efficiency),
            human::ms(o.scheduling_latency_ms_mean)
        );
        if !o.critical_path.is_empty() {
            let _ = write!(line, ", critical path {} ({})", o.critical_path.join(" > "), human::ms(o.critical_path_ms));
        }
        rows.push(vec!["Overhead".into(), line]);
    }
    push_table(out, "", &rows, &[]);
    out.push('\n');
}

fn scenarios(out: &mut String, r: &RunResults) {
    out.push_str("Scenarios\n");
    if r.scenarios.is_empty() {
        out.push_str("  (none)\n\n");
        return;
    }
    let mut rows = vec![vec!["STATUS".into(), "SCENARIO".into(), "DURATION".into(), "CHECKS".into(), "NOTE".into()]];
    for s in &r.scenarios {
        let ran = !(s.status() == Status::Skipped || (s.root.duration_ms == 0.0 && s.root.assertions.total() == 0));
        rows.push(vec![
            status_word(s.status()).into(),
            s.root.name.clone(),
            if ran { human::ms(s.root.duration_ms) } else { "-".into() },
            checks_cell(s),
            reason(s).map(|n| clip(&n, MAX_CELL)).unwrap_or_default(),
        ]);
    }
    push_table(out, "  ", &rows, &[2, 3]);
    out.push('\n');
}

fn failed_checks(out: &mut String, r: &RunResults) {
    let failing: Vec<(&ScenarioResult, Vec<(String, &CheckResult)>)> = r
        .scenarios
        .iter()
        .map(|s| (s, checks_of(s).into_iter().filter(|(_, c)| c.failed > 0).collect::<Vec<_>>()))
        .filter(|(_, c)| !c.is_empty())
        .collect();
    if failing.is_empty() {
        return;
    }
    out.push_str("Failed checks\n");
    // One table for every scenario, so the columns line up across the groups; each
    // scenario's name heads its rows.
    let mut rows =
        vec![vec!["KIND".into(), "CHECK".into(), "STAGE".into(), "FAILED".into(), "FIRST FAILURE".into(), "AT".into()]];
    let mut heads = Vec::new();
    for (s, checks) in &failing {
        heads.push((rows.len(), s.root.name.clone()));
        for (stage, c) in checks {
            let first = c.failures.first();
            rows.push(vec![
                kind_word(c.kind).into(),
                clip(&c.name, MAX_CELL),
                if stage.is_empty() { "-".into() } else { stage.clone() },
                format!("{} of {}", human::int(c.failed), human::int(c.passed + c.failed)),
                first.and_then(|f| f.detail.as_deref()).map(|d| clip(d, MAX_CELL)).unwrap_or_else(|| "-".into()),
                first.and_then(place).unwrap_or_else(|| "-".into()),
            ]);
        }
    }
    let lines = table(&rows, &[3]);
    for (i, line) in lines.iter().enumerate() {
        if let Some((_, name)) = heads.iter().find(|(at, _)| *at == i) {
            let _ = writeln!(out, "  {name}");
        }
        let _ = writeln!(out, "    {line}");
    }
    out.push('\n');
}

/// One line per load phase: what it delivered and who limited it.
fn load_phases(out: &mut String, r: &RunResults) {
    let mut rows = vec![vec![
        "SCENARIO".into(),
        "PHASE".into(),
        "MODEL".into(),
        "THROUGHPUT".into(),
        "P99".into(),
        "LIMITED BY".into(),
    ]];
    for s in &r.scenarios {
        for (stage, p) in phases_of(s) {
            let name = if stage.is_empty() { p.name.clone() } else { format!("{stage}/{}", p.name) };
            let (rate, p99) = if p.model == ModelKind::Connect {
                (format!("{} sessions/s", human::count(p.connect.rate)), human::ms(p.connect.latency.p99))
            } else {
                (format!("{} req/s", human::count(p.throughput)), human::ms(p.latency.p99))
            };
            rows.push(vec![
                s.root.name.clone(),
                name,
                p.model.to_string(),
                rate,
                p99,
                clip(&crate::load::bottleneck::cell(p), MAX_CELL),
            ]);
        }
    }
    if rows.len() == 1 {
        return;
    }
    out.push_str("Load phases\n");
    push_table(out, "  ", &rows, &[3, 4]);
    out.push('\n');
    server_requests(out, r);
}

/// What servers asked the sessions of load phases, one line per phase and method (only
/// when one asked).
fn server_requests(out: &mut String, r: &RunResults) {
    let mut rows = vec![vec![
        "SCENARIO".into(),
        "PHASE".into(),
        "METHOD".into(),
        "RECEIVED".into(),
        "ANSWERED".into(),
        "REFUSED".into(),
    ]];
    for s in &r.scenarios {
        for (stage, p) in phases_of(s) {
            let name = if stage.is_empty() { p.name.clone() } else { format!("{stage}/{}", p.name) };
            for (method, c) in &p.server_requests {
                rows.push(vec![
                    s.root.name.clone(),
                    name.clone(),
                    method.clone(),
                    human::int(c.received),
                    human::int(c.answered),
                    human::int(c.refused),
                ]);
            }
        }
    }
    if rows.len() == 1 {
        return;
    }
    out.push_str("Server requests to load sessions\n");
    push_table(out, "  ", &rows, &[3, 4, 5]);
    out.push('\n');
}

fn metrics(out: &mut String, r: &RunResults) {
    let mut rows = vec![vec!["SCENARIO".into(), "METRIC".into(), "VALUE".into(), "BETTER".into(), "SAMPLES".into()]];
    for s in &r.scenarios {
        for m in s.all_metrics() {
            let name = if m.stage.is_empty() { m.name.clone() } else { format!("{} ({})", m.name, m.stage) };
            rows.push(vec![
                s.root.name.clone(),
                name,
                human::with_unit(m.value, m.unit.as_deref()),
                better_word(m.better).into(),
                if m.samples.is_empty() { "-".into() } else { human::int(m.samples.len() as u64) },
            ]);
        }
    }
    if rows.len() == 1 {
        return;
    }
    out.push_str("Metrics\n");
    push_table(out, "  ", &rows, &[2, 4]);
    out.push('\n');
}

fn regression(out: &mut String, r: &RunResults) {
    let Some(c) = &r.regression else {
        out.push_str("Baseline: none found, nothing compared (no earlier passing run of this suite, profile and target, and no --baseline)\n");
        return;
    };
    let _ = writeln!(out, "Against the baseline: {} ({})", c.baseline, runs_word(c.baseline_runs.len()));
    let _ = writeln!(out, "  {}", tally(c));
    if c.fails() {
        let level = c.fail_on.map(|l| l.as_str()).unwrap_or("-");
        let _ = writeln!(out, "  The run fails on its regressions (--fail-on {level}).");
    }
    let rows = ordered_rows(c);
    if !rows.is_empty() {
        push_table(out, "  ", &comparison_rows(&rows), COMPARISON_RIGHT);
    }
}

/// The columns of [`comparison_rows`] that are right-aligned.
pub const COMPARISON_RIGHT: &[usize] = &[5, 6, 8, 9];

/// The comparison as table rows, a header first: verdict, severity, scenario, metric,
/// direction, baseline, current (with units), change (worse or better), z, and the
/// Mann-Whitney p-value. summary.txt and `mcpscript compare` print it.
pub fn comparison_rows(rows: &[&MetricComparison]) -> Vec<Vec<String>> {
    let header =
        ["VERDICT", "SEVERITY", "SCENARIO", "METRIC", "BETTER", "BASELINE", "CURRENT", "CHANGE", "Z", "P (MWU)"];
    let mut out = vec![header.iter().map(|h| h.to_string()).collect::<Vec<_>>()];
    for m in rows {
        out.push(vec![
            m.verdict.as_str().into(),
            m.severity.map(|s| s.as_str()).unwrap_or("-").into(),
            m.scenario.clone(),
            m.metric.clone(),
            better_word(m.better).into(),
            value_or_dash(m.baseline, m.unit.as_deref()),
            value_or_dash(m.current, m.unit.as_deref()),
            change_text(m),
            m.z.map(signed_sig3).unwrap_or_else(|| "-".into()),
            m.mann_whitney_p.map(human::sig3).unwrap_or_else(|| "-".into()),
        ]);
    }
    out
}

// ---------------------------------------------------------------------------------------
// Shared by the renderings.

/// The run's name: the suite's, else the script file of its (first) scenario, else
/// `mcpscript`.
pub fn run_name(r: &RunResults) -> String {
    match (&r.suite, r.scenarios.first()) {
        (Some(s), _) => s.name.clone(),
        (None, Some(s)) if !s.file.is_empty() => s.file.clone(),
        (None, Some(s)) if !s.root.name.is_empty() => s.root.name.clone(),
        _ => "mcpscript".into(),
    }
}

/// `suite NAME` or `script FILE`.
pub fn run_title(r: &RunResults) -> String {
    match &r.suite {
        Some(s) => format!("suite {}", s.name),
        None => format!("script {}", run_name(r)),
    }
}

/// Whether the run is a success, and the word for its verdict: `PASSED`, `FAILED`,
/// `TIMED OUT`, `CANCELLED`, `SKIPPED`, or `FAILED (regressions)` when every scenario passed
/// but the comparison with the baseline reached `--fail-on`.
pub fn verdict(r: &RunResults) -> (bool, String) {
    let regressed = r.regression.as_ref().is_some_and(Comparison::fails);
    match r.status {
        Status::Passed if regressed => (false, "FAILED (regressions)".into()),
        Status::Passed => (true, "PASSED".into()),
        Status::Skipped if regressed => (false, "FAILED (regressions)".into()),
        Status::Skipped => (true, "SKIPPED".into()),
        Status::Failed => (false, "FAILED".into()),
        Status::Timeout => (false, "TIMED OUT".into()),
        Status::Cancelled => (false, "CANCELLED".into()),
    }
}

/// A status for a table: the good ones in lower case, the bad ones shouting.
pub fn status_word(s: Status) -> &'static str {
    match s {
        Status::Passed => "passed",
        Status::Skipped => "skipped",
        Status::Failed => "FAILED",
        Status::Timeout => "TIMEOUT",
        Status::Cancelled => "CANCELLED",
    }
}

pub fn kind_word(k: CheckKind) -> &'static str {
    match k {
        CheckKind::Check => "check",
        CheckKind::Threshold => "threshold",
        CheckKind::Fail => "fail",
    }
}

pub fn better_word(b: Better) -> &'static str {
    match b {
        Better::Higher => "higher",
        Better::Lower => "lower",
        Better::None => "-",
    }
}

/// `passed/total` assertions of a scenario, `-` when it has none.
pub fn checks_cell(s: &ScenarioResult) -> String {
    let a = s.root.assertions;
    if a.total() == 0 {
        "-".into()
    } else {
        format!("{}/{}", human::int(a.passed), human::int(a.total()))
    }
}

/// Why a scenario did not pass, on one line; `None` when it passed. The script's error
/// (with its place) comes first, then the failed checks, then the reason it was not run.
pub fn reason(s: &ScenarioResult) -> Option<String> {
    if s.status() == Status::Passed {
        return None;
    }
    if let Some(e) = &s.error {
        let at = match e.line {
            Some(l) if !e.file.is_empty() => format!(" ({}:{l})", e.file),
            _ => String::new(),
        };
        return Some(one_line(&format!("{}{at}", e.message)));
    }
    let failed: Vec<(String, &CheckResult)> = checks_of(s).into_iter().filter(|(_, c)| c.failed > 0).collect();
    let why = s.schedule.as_ref().and_then(|x| x.reason.clone()).or_else(|| s.root.error.clone());
    match (failed.first(), why) {
        (_, Some(why)) if s.status() != Status::Failed || failed.is_empty() => Some(one_line(&why)),
        (Some((_, first)), _) => {
            let more = match failed.len() {
                1 => String::new(),
                n => format!(" and {} more", n - 1),
            };
            Some(one_line(&format!("{} '{}' failed{more}", kind_word(first.kind), first.name)))
        }
        (None, why) => why.map(|w| one_line(&w)),
    }
}

/// Every check of a scenario's tree with the path of its stage (`""` at the top,
/// `load/ramp` below), depth first.
pub fn checks_of(s: &ScenarioResult) -> Vec<(String, &CheckResult)> {
    let mut out = Vec::new();
    walk(&s.root, "", &mut |path, node| out.extend(node.checks.iter().map(|c| (path.to_string(), c))));
    out
}

/// Every load phase of a scenario's tree with the path of its stage, depth first.
pub fn phases_of(s: &ScenarioResult) -> Vec<(String, &PhaseResult)> {
    let mut out = Vec::new();
    walk(&s.root, "", &mut |path, node| out.extend(node.phases.iter().map(|p| (path.to_string(), p))));
    out
}

/// Every stage below the scenario's root with its path and depth (1 for the root's
/// children), depth first.
pub fn stages_of(s: &ScenarioResult) -> Vec<(String, usize, &StageResult)> {
    fn go<'a>(n: &'a StageResult, prefix: &str, depth: usize, out: &mut Vec<(String, usize, &'a StageResult)>) {
        for c in &n.stages {
            let path = if prefix.is_empty() { c.name.clone() } else { format!("{prefix}/{}", c.name) };
            out.push((path.clone(), depth, c));
            go(c, &path, depth + 1, out);
        }
    }
    let mut out = Vec::new();
    go(&s.root, "", 1, &mut out);
    out
}

fn walk<'a>(n: &'a StageResult, path: &str, f: &mut impl FnMut(&str, &'a StageResult)) {
    f(path, n);
    for c in &n.stages {
        let p = if path.is_empty() { c.name.clone() } else { format!("{path}/{}", c.name) };
        walk(c, &p, f);
    }
}

/// `file:line` of a failure, or the file alone.
pub fn place(f: &CheckFailure) -> Option<String> {
    match (&f.file, f.line) {
        (Some(file), Some(line)) => Some(format!("{file}:{line}")),
        (Some(file), None) => Some(file.clone()),
        (None, Some(line)) => Some(format!("line {line}")),
        (None, None) => None,
    }
}

/// What the run exercised on one line: requests by method (most first), transports,
/// errors by class; `None` when nothing was recorded.
pub fn coverage_line(c: &Coverage) -> Option<String> {
    fn top(m: &std::collections::BTreeMap<String, u64>) -> String {
        let mut v: Vec<(&String, &u64)> = m.iter().collect();
        v.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        let mut parts: Vec<String> =
            v.iter().take(6).map(|(k, n)| format!("{k} {}", human::count(**n as f64))).collect();
        if v.len() > 6 {
            parts.push(format!("{} more", v.len() - 6));
        }
        parts.join(", ")
    }
    let mut parts = Vec::new();
    if !c.methods.is_empty() {
        let total: u64 = c.methods.values().sum();
        parts.push(format!("{} requests ({})", human::count(total as f64), top(&c.methods)));
    }
    if !c.transports.is_empty() {
        parts.push(format!("over {}", c.transports.iter().cloned().collect::<Vec<_>>().join(", ")));
    }
    if !c.error_classes.is_empty() {
        parts.push(format!("errors: {}", top(&c.error_classes)));
    }
    (!parts.is_empty()).then(|| parts.join("; "))
}

/// The rows worth a line: every one but the unchanged, regressions first (worst first),
/// then improvements, informational changes, inconclusive ones (too few baseline values),
/// new metrics and missing ones; the table's
/// order otherwise.
pub fn ordered_rows(c: &Comparison) -> Vec<&MetricComparison> {
    let rank = |m: &MetricComparison| match m.verdict {
        Verdict::Regression => 0,
        Verdict::Improvement => 1,
        Verdict::Informational => 2,
        Verdict::Inconclusive => 3,
        Verdict::New => 4,
        Verdict::Missing => 5,
        Verdict::Unchanged => 6,
    };
    let mut rows: Vec<&MetricComparison> = c.rows.iter().filter(|m| m.verdict != Verdict::Unchanged).collect();
    rows.sort_by_key(|m| (rank(m), std::cmp::Reverse(m.severity)));
    rows
}

/// `2 regressions (1 critical, 1 medium), 1 improvement, 3 unchanged, 1 new, 1 missing`.
pub fn tally(c: &Comparison) -> String {
    let n = |v: Verdict| c.rows.iter().filter(|m| m.verdict == v).count();
    let plural = |k: usize, one: &str, many: &str| format!("{k} {}", if k == 1 { one } else { many });
    let regressions = n(Verdict::Regression);
    let mut parts = vec![plural(regressions, "regression", "regressions")];
    if regressions > 0 {
        let g = c.regressions;
        let levels: Vec<String> = [("critical", g.critical), ("high", g.high), ("medium", g.medium), ("low", g.low)]
            .iter()
            .filter(|(_, k)| *k > 0)
            .map(|(l, k)| format!("{k} {l}"))
            .collect();
        if !levels.is_empty() {
            parts[0] = format!("{} ({})", parts[0], levels.join(", "));
        }
    }
    parts.push(plural(n(Verdict::Improvement), "improvement", "improvements"));
    parts.push(format!("{} unchanged", n(Verdict::Unchanged)));
    for v in [Verdict::Informational, Verdict::Inconclusive, Verdict::New, Verdict::Missing] {
        if n(v) > 0 {
            parts.push(format!("{} {}", n(v), v.as_str()));
        }
    }
    parts.join(", ")
}

/// The change of a row in words: `+35% (worse)`, `-12% (better)`, `+3% `, `new`,
/// `missing`, `n/a` when the baseline was zero.
pub fn change_text(m: &MetricComparison) -> String {
    match m.verdict {
        Verdict::New => return "new".into(),
        Verdict::Missing => return "missing".into(),
        _ => {}
    }
    let pct = m.diff_pct.map(human::signed_pct).unwrap_or_else(|| "n/a".into());
    match judgement(m) {
        Some(j) => format!("{pct} ({j})"),
        None => pct,
    }
}

/// `worse` for a regression, `better` for an improvement, whatever the sign of the change.
pub fn judgement(m: &MetricComparison) -> Option<&'static str> {
    match m.verdict {
        Verdict::Regression => Some("worse"),
        Verdict::Improvement => Some("better"),
        _ => None,
    }
}

/// A value with its unit, `-` when absent.
pub fn value_or_dash(v: Option<f64>, unit: Option<&str>) -> String {
    match v {
        Some(x) if x.is_finite() => human::with_unit(x, unit),
        _ => "-".into(),
    }
}

/// Three significant figures with an explicit sign: `+4.1`, `-2.56`, `0`.
pub fn signed_sig3(x: f64) -> String {
    let s = human::sig3(x);
    if x > 0.0 && x.is_finite() {
        format!("+{s}")
    } else {
        s
    }
}

pub fn runs_word(n: usize) -> String {
    format!("{n} run{}", if n == 1 { "" } else { "s" })
}

/// Text on one line: line breaks and tabs become spaces, runs of spaces one.
pub fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// At most `max` characters on one line, cut with `...`.
pub fn clip(s: &str, max: usize) -> String {
    let s = one_line(s);
    if s.chars().count() <= max {
        return s;
    }
    let mut out: String = s.chars().take(max.saturating_sub(3)).collect();
    out.push_str("...");
    out
}

/// Aligned columns, two spaces apart; the columns in `right` are right-aligned. Widths
/// count characters; trailing spaces are dropped.
pub fn table(rows: &[Vec<String>], right: &[usize]) -> Vec<String> {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let mut widths = vec![0; cols];
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    rows.iter()
        .map(|row| {
            let mut line = String::new();
            for (i, cell) in row.iter().enumerate() {
                if i > 0 {
                    line.push_str("  ");
                }
                let pad = widths[i] - cell.chars().count();
                if right.contains(&i) {
                    line.extend(std::iter::repeat_n(' ', pad));
                    line.push_str(cell);
                } else {
                    line.push_str(cell);
                    line.extend(std::iter::repeat_n(' ', pad));
                }
            }
            line.trim_end().to_string()
        })
        .collect()
}

fn push_table(out: &mut String, indent: &str, rows: &[Vec<String>], right: &[usize]) {
    for line in table(rows, right) {
        let _ = writeln!(out, "{indent}{line}");
    }
}
