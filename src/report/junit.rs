//! `junit.xml`: one testsuite for the run (named after the suite, or the script file),
//! one testcase per scenario and one per threshold (`SCENARIO: EXPR`, or
//! `SCENARIO/STAGE: EXPR` below the top level), written with `quick-junit`.
//!
//! Every testcase has a `classname` (`mcpscript.SUITE.SCENARIO`, the script file's stem
//! standing for the suite in a script run, characters other than letters, digits, `_` and
//! `-` replaced by `_`) and a `time` (a threshold's is 0: it is evaluated, not run). A
//! scenario that did not pass has a `<failure>` (type `check`, `threshold`) or an `<error>`
//! (type `error`, `timeout`, `cancelled`) with a one-line message and the details as text;
//! a skipped one a `<skipped>` with its reason; its failed checks are listed in its
//! `<system-out>`. The testsuite carries the run's start (`timestamp`), the host and, as
//! properties, the target, run id and version. It validates against the Jenkins JUnit
//! schema (`tests/schema/junit.xsd`).

use super::text::{checks_of, kind_word, one_line, place, reason, run_name};
use crate::script::results::{CheckKind, CheckResult, RunResults, ScenarioResult, ScriptErrorKind, Status};
use quick_junit::{NonSuccessKind, Property, Report, TestCase, TestCaseStatus, TestSuite, XmlString};
use std::fmt::Write as _;
use std::time::Duration;

pub fn render(r: &RunResults) -> Result<String, String> {
    let name = run_name(r);
    let group = ident(&match &r.suite {
        Some(s) => s.name.clone(),
        None => {
            std::path::Path::new(&name).file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or(name.clone())
        }
    });
    let mut suite = TestSuite::new(name.as_str());
    suite.set_time(seconds(r.duration_ms));
    if !r.started_at.is_empty() {
        suite.extra.insert(XmlString::new("timestamp"), XmlString::new(&r.started_at));
    }
    if let Some(h) = hostname() {
        suite.extra.insert(XmlString::new("hostname"), XmlString::new(h));
    }
    suite.add_property(Property::new("target", r.target.as_str()));
    suite.add_property(Property::new("run_id", r.run_id.as_str()));
    suite.add_property(Property::new("mcpscript_version", r.mcpscript_version.as_str()));
    if let Some(s) = &r.suite {
        suite.add_property(Property::new("suite_file", s.file.as_str()));
        suite.add_property(Property::new("profile", s.profile.as_str()));
    }

    for s in &r.scenarios {
        let class = format!("mcpscript.{group}.{}", ident(&s.root.name));
        suite.add_test_case(scenario_case(s, &class));
        for (stage, c) in checks_of(s).into_iter().filter(|(_, c)| c.kind == CheckKind::Threshold) {
            suite.add_test_case(threshold_case(s, &stage, c, &class));
        }
    }

    let mut report = Report::new(format!("mcpscript {name}"));
    report.set_time(seconds(r.duration_ms));
    report.add_test_suite(suite);
    report.to_string().map_err(|e| format!("junit.xml: {e}"))
}

fn scenario_case(s: &ScenarioResult, class: &str) -> TestCase {
    let why = reason(s);
    let status = match s.status() {
        Status::Passed => TestCaseStatus::success(),
        Status::Skipped => {
            let mut st = TestCaseStatus::skipped();
            st.set_message(why.unwrap_or_else(|| "skipped".into()));
            st
        }
        status => {
            let (kind, ty) = failure_type(s, status);
            let mut st = TestCaseStatus::non_success(kind);
            st.set_message(why.unwrap_or_else(|| format!("scenario {}", status.as_str())));
            st.set_type(ty);
            let text = description(s);
            if !text.is_empty() {
                st.set_description(text);
            }
            st
        }
    };
    let mut tc = TestCase::new(s.root.name.as_str(), status);
    tc.set_classname(class);
    tc.set_time(seconds(s.root.duration_ms));
    tc.set_assertions(s.root.assertions.total() as usize);
    let out = failed_checks_text(s);
    if !out.is_empty() {
        tc.set_system_out(out);
    }
    tc
}

fn threshold_case(s: &ScenarioResult, stage: &str, c: &CheckResult, class: &str) -> TestCase {
    let name = if stage.is_empty() {
        format!("{}: {}", s.root.name, c.name)
    } else {
        format!("{}/{stage}: {}", s.root.name, c.name)
    };
    let status = if c.failed == 0 {
        TestCaseStatus::success()
    } else {
        let mut st = TestCaseStatus::non_success(NonSuccessKind::Failure);
        let message = match c.failures.first().and_then(|f| f.detail.as_deref()) {
            Some(d) => one_line(d),
            None => format!("threshold '{}' failed {} of {}", c.name, c.failed, c.passed + c.failed),
        };
        st.set_message(message);
        st.set_type("threshold");
        st.set_description(check_text(stage, c));
        st
    };
    let mut tc = TestCase::new(name, status);
    tc.set_classname(class);
    tc.set_time(Duration::ZERO);
    tc.set_assertions((c.passed + c.failed) as usize);
    tc
}

/// Failure (a check, a threshold, `fail`) or error (anything else), and its type.
fn failure_type(s: &ScenarioResult, status: Status) -> (NonSuccessKind, &'static str) {
    match status {
        Status::Timeout => return (NonSuccessKind::Error, "timeout"),
        Status::Cancelled => return (NonSuccessKind::Error, "cancelled"),
        _ => {}
    }
    if let Some(e) = &s.error {
        return match e.kind {
            ScriptErrorKind::Fail => (NonSuccessKind::Failure, "check"),
            ScriptErrorKind::Timeout => (NonSuccessKind::Error, "timeout"),
            ScriptErrorKind::Cancelled => (NonSuccessKind::Error, "cancelled"),
            ScriptErrorKind::Runtime | ScriptErrorKind::Limit | ScriptErrorKind::Param => {
                (NonSuccessKind::Error, "error")
            }
        };
    }
    let failed: Vec<CheckKind> = checks_of(s).into_iter().filter(|(_, c)| c.failed > 0).map(|(_, c)| c.kind).collect();
    if failed.iter().any(|k| *k != CheckKind::Threshold) {
        (NonSuccessKind::Failure, "check")
    } else if !failed.is_empty() {
        (NonSuccessKind::Failure, "threshold")
    } else {
        (NonSuccessKind::Error, "error")
    }
}

/// The failure's text: the script's error with its place, stack and hint, then the
/// failed checks.
fn description(s: &ScenarioResult) -> String {
    let mut out = String::new();
    if let Some(e) = &s.error {
        let _ = writeln!(out, "{} error: {}", format!("{:?}", e.kind).to_lowercase(), e.message);
        if let Some(line) = e.line {
            let _ = writeln!(out, "  at {}:{line}{}", e.file, e.column.map(|c| format!(":{c}")).unwrap_or_default());
        }
        for f in &e.stack {
            let at = f.line.map(|l| format!(":{l}")).unwrap_or_default();
            let _ = writeln!(out, "  in {} ({}{at})", f.function, f.file);
        }
        if let Some(h) = &e.hint {
            let _ = writeln!(out, "hint: {h}");
        }
    } else if let Some(err) = &s.root.error {
        let _ = writeln!(out, "{err}");
    }
    out.push_str(&failed_checks_text(s));
    out.trim_end().to_string()
}

/// Every failed check of the scenario with its recorded failures, one per line.
fn failed_checks_text(s: &ScenarioResult) -> String {
    let mut out = String::new();
    for (stage, c) in checks_of(s).into_iter().filter(|(_, c)| c.failed > 0) {
        out.push_str(&check_text(&stage, c));
    }
    out
}

fn check_text(stage: &str, c: &CheckResult) -> String {
    let mut out = format!("{} '{}'", kind_word(c.kind), c.name);
    if !stage.is_empty() {
        let _ = write!(out, " (stage {stage})");
    }
    let _ = writeln!(out, " failed {} of {}", c.failed, c.passed + c.failed);
    for f in &c.failures {
        let detail = f.detail.as_deref().map(one_line).unwrap_or_else(|| "failed".into());
        let at = place(f).map(|p| format!(" at {p}")).unwrap_or_default();
        let _ = writeln!(out, "  {detail}{at}");
    }
    out
}

/// Milliseconds as a duration; 0 for anything not a finite, non-negative number.
fn seconds(ms: f64) -> Duration {
    Duration::try_from_secs_f64(ms / 1000.0).unwrap_or_default()
}

/// A classname component: letters, digits, `_` and `-`; anything else `_`.
fn ident(s: &str) -> String {
    let out: String = s.chars().map(|c| if c.is_alphanumeric() || c == '_' || c == '-' { c } else { '_' }).collect();
    if out.is_empty() {
        "_".into()
    } else {
        out
    }
}

fn hostname() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
}
