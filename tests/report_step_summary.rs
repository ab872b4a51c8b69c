//! `summary.md` appended to `$GITHUB_STEP_SUMMARY`. A test binary of its own with a single
//! test: it sets the process's environment, which no other test may race.

use mcpscript::report::markdown;
use mcpscript::script::results::{RunResults, ScenarioResult, Status};
use std::time::SystemTime;

#[test]
fn appends_to_the_step_summary_only_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("step_summary.md");

    std::env::remove_var("GITHUB_STEP_SUMMARY");
    assert!(!markdown::append_to_step_summary("# nothing\n").unwrap(), "no variable: nothing appended");
    std::env::set_var("GITHUB_STEP_SUMMARY", "");
    assert!(!markdown::append_to_step_summary("# nothing\n").unwrap(), "an empty variable: nothing appended");
    assert!(!file.exists());

    // A step's earlier output stays; the summary is appended (the file created if missing).
    std::env::set_var("GITHUB_STEP_SUMMARY", &file);
    let scenario = ScenarioResult::not_run("smoke", "scripts/smoke.rhai", Status::Skipped, "not selected");
    let r = RunResults::new("run-1".into(), "builtin".into(), SystemTime::now(), vec![scenario]);
    let md = markdown::render(&r, markdown::FULL_LIMIT);
    assert!(markdown::append_to_step_summary(&md).unwrap());
    assert_eq!(std::fs::read_to_string(&file).unwrap().trim_end(), md.trim_end());
    assert!(markdown::append_to_step_summary("second run\n").unwrap());
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.starts_with(&md), "{text}");
    assert!(text.trim_end().ends_with("second run"), "{text}");
    assert_eq!(text.matches("not selected").count(), md.matches("not selected").count());

    // A path that cannot be written is an error, not a silent skip.
    std::env::set_var("GITHUB_STEP_SUMMARY", dir.path().join("missing-folder").join("summary.md"));
    assert!(markdown::append_to_step_summary("x").is_err());
    std::env::remove_var("GITHUB_STEP_SUMMARY");
}
