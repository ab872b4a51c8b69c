//! `summary.md`: GitHub-flavoured Markdown, also appended to `$GITHUB_STEP_SUMMARY`.
//!
//! A status line with the verdict, the totals, the scenarios that did not pass and their
//! failed checks, the comparison with the baseline (arrows follow the change, the verdict
//! follows the metric's direction: a regression reads `(worse)` whatever its sign), then a
//! `<details>` block per scenario with its stages, checks, metrics and load phases. Names
//! and messages are escaped (`|`, `*`, `_`, `<`...), numbers rounded for reading.
//!
//! A text longer than the limit is cut after a whole line, outside any table header,
//! with every open `<details>` closed, and ends with a line pointing to the full report.

use super::text::{
    better_word, change_text, checks_cell, checks_of, clip, coverage_line, kind_word, one_line, ordered_rows,
    phases_of, place, reason, run_title, runs_word, signed_sig3, stages_of, status_word, tally, value_or_dash, verdict,
};
use crate::regress::{Comparison, MetricComparison, Verdict};
use crate::script::results::{RunResults, ScenarioResult, Status};
use crate::util::human;
use std::fmt::Write as _;
use std::io::Write as _;

/// Largest summary.md written (GitHub refuses step summaries over 1 MiB).
pub const FULL_LIMIT: usize = 900 * 1024;

/// The last line of a summary cut to its limit.
const POINTER: &str =
    "**Summary truncated.** The full report is `report.html` (and `summary.txt`) in the run's output folder.\n";

/// Longest free text (an error message, a check's detail) in one cell.
const MAX_CELL: usize = 200;

pub fn render(r: &RunResults, limit: usize) -> String {
    cap(&full(r), limit)
}

/// Appends `md` to the file `$GITHUB_STEP_SUMMARY` names (created if missing), when that
/// variable is set and not empty; returns whether it did. `md` should be capped already
/// ([`render`] with [`FULL_LIMIT`]): GitHub refuses a step summary over 1 MiB.
pub fn append_to_step_summary(md: &str) -> std::io::Result<bool> {
    let Some(path) = std::env::var_os("GITHUB_STEP_SUMMARY").filter(|p| !p.is_empty()) else {
        return Ok(false);
    };
    let mut f = std::fs::OpenOptions::new().append(true).create(true).open(path)?;
    let mut text = md.to_string();
    if !text.ends_with('\n') {
        text.push('\n');
    }
    text.push('\n');
    f.write_all(text.as_bytes())?;
    f.flush()?;
    Ok(true)
}

fn full(r: &RunResults) -> String {
    let mut out = String::new();
    status(&mut out, r);
    not_passed(&mut out, r);
    failed_checks(&mut out, r);
    match &r.regression {
        Some(c) => regression(&mut out, c),
        None => out.push_str(
            "### Against the baseline\n\nNo baseline: nothing compared (no earlier passing run of this suite, profile and target, and no `--baseline`).\n\n",
        ),
    }
    if !r.scenarios.is_empty() {
        out.push_str("### Scenarios\n\n");
        for s in &r.scenarios {
            scenario(&mut out, s);
        }
    }
    out
}

fn status(out: &mut String, r: &RunResults) {
    let (ok, word) = verdict(r);
    let _ = writeln!(out, "## {} {word}: mcpscript {}\n", if ok { "✅" } else { "❌" }, esc(&run_title(r)));

    let s = &r.summary;
    let mut line = format!(
        "{} passed, {} failed, {} skipped of {} scenarios; {} of {} assertions passed",
        human::int(s.passed_tests),
        human::int(s.failed_tests),
        human::int(s.skipped_tests),
        human::int(s.total_tests),
        human::int(s.passed_assertions),
        human::int(s.total_assertions),
    );
    if let Some(c) = &r.regression {
        let n = c.regressions().count();
        let _ = write!(
            line,
            "; {} against the baseline",
            if n == 1 { "1 regression".into() } else { format!("{n} regressions") }
        );
        if let Some(w) = c.regressions.worst() {
            let _ = write!(line, " (worst: {})", w.as_str());
        }
    }
    let _ = writeln!(out, "{line}.\n");

    out.push_str("| | Passed | Failed | Skipped | Total | Pass rate |\n|---|---:|---:|---:|---:|---:|\n");
    let _ = writeln!(
        out,
        "| Scenarios | {} | {} | {} | {} | {} |",
        human::int(s.passed_tests),
        human::int(s.failed_tests),
        human::int(s.skipped_tests),
        human::int(s.total_tests),
        human::pct(s.pass_rate)
    );
    let _ = writeln!(
        out,
        "| Assertions | {} | {} | - | {} | {} |\n",
        human::int(s.passed_assertions),
        human::int(s.failed_assertions),
        human::int(s.total_assertions),
        human::pct(s.assertion_pass_rate)
    );

    let mut facts = vec![
        format!("Target: {}", esc(&r.target)),
        format!("run {}", esc(&r.run_id)),
        format!("started {}", esc(&r.started_at)),
        format!("took {}", human::ms(r.duration_ms)),
    ];
    if let Some(su) = &r.suite {
        facts.push(format!("profile {}", esc(&su.profile)));
        facts.push(format!("parallelism {}", su.parallelism));
    }
    facts.push(format!("mcpscript {}", esc(&r.mcpscript_version)));
    let _ = writeln!(out, "{}\n", facts.join(" · "));
    if let Some(c) = coverage_line(&r.coverage) {
        let _ = writeln!(out, "Coverage: {}\n", esc(&c));
    }
}

fn not_passed(out: &mut String, r: &RunResults) {
    let bad: Vec<&ScenarioResult> = r.scenarios.iter().filter(|s| s.status() != Status::Passed).collect();
    if bad.is_empty() {
        return;
    }
    out.push_str(
        "### Scenarios that did not pass\n\n| Scenario | Status | Duration | Checks | Why |\n|---|---|---:|---:|---|\n",
    );
    for s in bad {
        let duration = if s.status() == Status::Skipped { "-".into() } else { human::ms(s.root.duration_ms) };
        table_row(
            out,
            &[
                esc(&s.root.name),
                status_word(s.status()).into(),
                duration,
                checks_cell(s),
                reason(s).map(|w| esc(&clip(&w, MAX_CELL))).unwrap_or_else(|| "-".into()),
            ],
        );
    }
    out.push('\n');
}

fn failed_checks(out: &mut String, r: &RunResults) {
    let mut rows = Vec::new();
    for s in &r.scenarios {
        for (stage, c) in checks_of(s).into_iter().filter(|(_, c)| c.failed > 0) {
            let first = c.failures.first();
            rows.push(vec![
                esc(&s.root.name),
                if stage.is_empty() { "-".into() } else { esc(&stage) },
                esc(&clip(&c.name, MAX_CELL)),
                kind_word(c.kind).into(),
                format!("{} of {}", human::int(c.failed), human::int(c.passed + c.failed)),
                first.and_then(|f| f.detail.as_deref()).map(|d| esc(&clip(d, MAX_CELL))).unwrap_or_else(|| "-".into()),
                first.and_then(place).map(|p| esc(&p)).unwrap_or_else(|| "-".into()),
            ]);
        }
    }
    if rows.is_empty() {
        return;
    }
    out.push_str(
        "### Failed checks\n\n| Scenario | Stage | Check | Kind | Failed | First failure | Where |\n|---|---|---|---|---:|---|---|\n",
    );
    rows.iter().for_each(|row| table_row(out, row));
    out.push('\n');
}

fn regression(out: &mut String, c: &Comparison) {
    let _ = writeln!(
        out,
        "### Against the baseline\n\nBaseline: {} ({}). {}.\n",
        esc(&c.baseline),
        runs_word(c.baseline_runs.len()),
        tally(c)
    );
    if c.fails() {
        let level = c.fail_on.map(|l| l.as_str()).unwrap_or("-");
        let _ = writeln!(out, "❌ **The run fails on its regressions** (`--fail-on {level}`).\n");
    }
    let shown = ordered_rows(c);
    if !shown.is_empty() {
        regression_table(out, &shown);
    }
    let unchanged: Vec<&MetricComparison> = c.rows.iter().filter(|m| m.verdict == Verdict::Unchanged).collect();
    if !unchanged.is_empty() {
        let n = unchanged.len();
        let _ = writeln!(out, "<details><summary>{n} unchanged metric{}</summary>\n", if n == 1 { "" } else { "s" });
        regression_table(out, &unchanged);
        out.push_str("</details>\n\n");
    }
}

fn regression_table(out: &mut String, rows: &[&MetricComparison]) {
    out.push_str(
        "| Verdict | Scenario | Metric | Baseline | Current | Change | z | Severity |\n|---|---|---|---:|---:|---|---:|---|\n",
    );
    for m in rows {
        let verdict = match m.verdict {
            Verdict::Regression => "❌ regression",
            Verdict::Improvement => "✅ improvement",
            v => v.as_str(),
        };
        table_row(
            out,
            &[
                verdict.into(),
                esc(&m.scenario),
                esc(&m.metric),
                esc(&value_or_dash(m.baseline, m.unit.as_deref())),
                esc(&value_or_dash(m.current, m.unit.as_deref())),
                arrow_change(m),
                m.z.map(signed_sig3).unwrap_or_else(|| "-".into()),
                m.severity.map(|s| s.as_str()).unwrap_or("-").into(),
            ],
        );
    }
    out.push('\n');
}

/// `▲ +35% (worse)`: the arrow shows which way the value moved, the word what that means
/// for this metric.
fn arrow_change(m: &MetricComparison) -> String {
    let text = change_text(m);
    if matches!(m.verdict, Verdict::New | Verdict::Missing) {
        return text;
    }
    let arrow = match (m.baseline, m.current, m.diff_pct) {
        (_, _, Some(d)) if d > 0.0 => "▲",
        (_, _, Some(d)) if d < 0.0 => "▼",
        (Some(b), Some(c), None) if c > b => "▲",
        (Some(b), Some(c), None) if c < b => "▼",
        _ => "=",
    };
    format!("{arrow} {text}")
}

fn scenario(out: &mut String, s: &ScenarioResult) {
    let icon = match s.status() {
        Status::Passed => "✅ ",
        Status::Skipped => "",
        _ => "❌ ",
    };
    let mut title = format!("{icon}{}: {}", html(&s.root.name), status_word(s.status()));
    if s.status() != Status::Skipped {
        let _ = write!(title, " in {}", human::ms(s.root.duration_ms));
    }
    if s.root.assertions.total() > 0 {
        let _ = write!(title, ", {} checks passed", checks_cell(s));
    }
    let _ = writeln!(out, "<details><summary>{title}</summary>\n");

    if let Some(why) = reason(s) {
        let _ = writeln!(out, "**Why:** {}\n", esc(&clip(&why, 2 * MAX_CELL)));
    }
    if let Some(e) = &s.error {
        if let Some(hint) = &e.hint {
            let _ = writeln!(out, "**Hint:** {}\n", esc(&one_line(hint)));
        }
    }
    let mut facts = Vec::new();
    if !s.file.is_empty() {
        facts.push(format!("Script: {}", esc(&s.file)));
    }
    if !s.started_at.is_empty() {
        facts.push(format!("started {}", esc(&s.started_at)));
    }
    if !s.params.is_empty() {
        let p: Vec<String> = s.params.iter().map(|(k, v)| format!("{k}={}", value_text(v))).collect();
        facts.push(format!("parameters {}", esc(&clip(&p.join(", "), 2 * MAX_CELL))));
    }
    if !facts.is_empty() {
        let _ = writeln!(out, "{}\n", facts.join(" · "));
    }

    let stages = stages_of(s);
    if !stages.is_empty() {
        out.push_str("**Stages**\n\n| Stage | Status | Duration | Checks |\n|---|---|---:|---:|\n");
        for (path, _, st) in stages {
            let a = st.assertions;
            let checks =
                if a.total() == 0 { "-".into() } else { format!("{}/{}", human::int(a.passed), human::int(a.total())) };
            table_row(out, &[esc(&path), status_word(st.status).into(), human::ms(st.duration_ms), checks]);
        }
        out.push('\n');
    }

    let checks = checks_of(s);
    if !checks.is_empty() {
        out.push_str(
            "**Checks**\n\n| Stage | Check | Kind | Passed | Failed | First failure | Where |\n|---|---|---|---:|---:|---|---|\n",
        );
        for (stage, c) in checks {
            let first = c.failures.first();
            table_row(
                out,
                &[
                    if stage.is_empty() { "-".into() } else { esc(&stage) },
                    esc(&clip(&c.name, MAX_CELL)),
                    kind_word(c.kind).into(),
                    human::int(c.passed),
                    human::int(c.failed),
                    first
                        .and_then(|f| f.detail.as_deref())
                        .map(|d| esc(&clip(d, MAX_CELL)))
                        .unwrap_or_else(|| "-".into()),
                    first.and_then(place).map(|p| esc(&p)).unwrap_or_else(|| "-".into()),
                ],
            );
        }
        out.push('\n');
    }

    let metrics = s.all_metrics();
    if !metrics.is_empty() {
        out.push_str("**Metrics**\n\n| Metric | Stage | Value | Better | Samples |\n|---|---|---:|---|---:|\n");
        for m in metrics {
            table_row(
                out,
                &[
                    esc(&m.name),
                    if m.stage.is_empty() { "-".into() } else { esc(&m.stage) },
                    esc(&human::with_unit(m.value, m.unit.as_deref())),
                    better_word(m.better).into(),
                    if m.samples.is_empty() { "-".into() } else { human::int(m.samples.len() as u64) },
                ],
            );
        }
        out.push('\n');
    }

    let phases = phases_of(s);
    if !phases.is_empty() {
        out.push_str(
            "**Load phases**\n\n| Phase | Model | Status | Requests | Throughput | p50 | p99 | Error rate | Limited by |\n|---|---|---|---:|---:|---:|---:|---:|---|\n",
        );
        for (_, p) in phases {
            table_row(
                out,
                &[
                    esc(&p.name),
                    esc(p.model.as_str()),
                    esc(p.status.as_str()),
                    human::int(p.counts.sent),
                    format!("{} req/s", human::count(p.throughput)),
                    human::ms(p.latency.p50),
                    human::ms(p.latency.p99),
                    human::pct(p.error_rate),
                    esc(&clip(&crate::load::bottleneck::cell(p), MAX_CELL)),
                ],
            );
        }
        out.push('\n');
    }
    out.push_str("</details>\n\n");
}

fn value_text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Number(n) => match n.as_f64() {
            Some(x) if n.is_f64() => human::sig3(x),
            _ => n.to_string(),
        },
        other => other.to_string(),
    }
}

fn table_row(out: &mut String, cells: &[String]) {
    out.push('|');
    for c in cells {
        let _ = write!(out, " {} |", if c.is_empty() { " " } else { c });
    }
    out.push('\n');
}

/// Text safe in Markdown (a table cell included): on one line, with every character
/// Markdown or GitHub gives a meaning to backslash-escaped.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for c in one_line(s).chars() {
        if matches!(c, '\\' | '|' | '*' | '_' | '`' | '[' | ']' | '<' | '>' | '#' | '~' | '&' | '$' | '!') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Text safe inside an HTML element (`<summary>`), on one line.
fn html(s: &str) -> String {
    one_line(s).replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// `md` cut to at most `limit` bytes: after a whole line (never between a table's header
/// and its delimiter row), every `<details>` still open closed, then [`POINTER`].
fn cap(md: &str, limit: usize) -> String {
    if md.len() <= limit {
        return md.to_string();
    }
    const CLOSE: &str = "\n</details>\n";
    let lines: Vec<&str> = md.split_inclusive('\n').collect();
    let tail = |open: usize| open * CLOSE.len() + 1 + POINTER.len();
    // The longest prefix that fits with its closings and the pointer.
    let mut best = (0, 0);
    let (mut end, mut open) = (0usize, 0usize);
    for (i, line) in lines.iter().enumerate() {
        let t = line.trim_start();
        if t.starts_with("<details") {
            open += 1;
        }
        if t.starts_with("</details>") {
            open = open.saturating_sub(1);
        }
        end += line.len();
        if end > limit {
            break;
        }
        let header_of_table = lines.get(i + 1).is_some_and(|n| n.starts_with("|---"));
        if line.ends_with('\n') && !header_of_table && end + tail(open) <= limit {
            best = (end, open);
        }
    }
    let (end, open) = best;
    if end == 0 && tail(0) > limit {
        return String::new();
    }
    let mut out = String::with_capacity(end + tail(open));
    out.push_str(&md[..end]);
    for _ in 0..open {
        out.push_str(CLOSE);
    }
    out.push('\n');
    out.push_str(POINTER);
    out
}
