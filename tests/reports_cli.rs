//! Reports, history and regression verdicts through the command line, as CI uses them:
//! every format written, the history appended (and left alone with `--no-history`), a
//! regression against the history failing the run with exit 3 after every report is
//! written, `compare` and `report` on stored runs, and each bad input refused with exit 2
//! before anything runs.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_mcpscript");

/// A script whose exported metric is a parameter, so a test decides what each run measures.
const SCRIPT: &str = r#"
let v = param("v", 10.0);
check(v > 0.0, "the value is positive");
metric("latency_ms", v, #{unit: "ms", better: "lower", samples: [v * 0.99, v, v * 1.01, v]});
metric("rate", 1000.0 / v, #{unit: "req/s", better: "higher"});
"#;

struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Fixture {
        let f = Fixture { dir: tempfile::tempdir().unwrap() };
        std::fs::write(f.path("metric.rhai"), SCRIPT).unwrap();
        f
    }

    fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    fn mcpscript(&self, args: &[&str]) -> Output {
        Command::new(BIN)
            .args(args)
            .current_dir(self.dir.path())
            .env_remove("MCPSCRIPT_NO_HISTORY")
            .env_remove("MCPSCRIPT_HISTORY")
            .env_remove("GITHUB_STEP_SUMMARY")
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    /// Runs the script with `v`, into `out`, with `extra` options.
    fn run(&self, v: f64, out: &str, extra: &[&str]) -> Output {
        let set = format!("v={v}");
        let mut args = vec!["run", "metric.rhai", "--set", &set, "--out", out];
        args.extend_from_slice(extra);
        self.mcpscript(&args)
    }

    fn results(&self, out: &str) -> Value {
        serde_json::from_slice(&std::fs::read(self.path(out).join("results.json")).unwrap()).unwrap()
    }
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

fn history_lines(p: &Path) -> usize {
    std::fs::read_to_string(p).map(|t| t.lines().count()).unwrap_or(0)
}

#[test]
fn a_run_writes_every_format_and_appends_the_history() {
    let f = Fixture::new();
    let o = f.run(10.0, "r1", &[]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    for name in ["results.json", "report.html", "results.csv", "metrics.csv", "summary.txt", "junit.xml", "summary.md"]
    {
        assert!(f.path("r1").join(name).is_file(), "{name} missing: {}", text(&o));
    }
    let history = f.path("reports/history.jsonl");
    assert_eq!(history_lines(&history), 1);
    let line: Value = serde_json::from_str(std::fs::read_to_string(&history).unwrap().trim()).unwrap();
    assert_eq!(line["suite"], "metric.rhai");
    assert_eq!(line["target"], "builtin");
    assert_eq!(line["metrics"][0]["name"], "latency_ms");
    assert_eq!(line["metrics"][0]["samples"].as_array().unwrap().len(), 4);
    assert!(text(&o).contains("no baseline yet"), "{}", text(&o));
    let r = f.results("r1");
    assert_eq!(r["schema_version"], 2);
    assert!(r["coverage"]["methods"].is_object(), "{}", r["coverage"]);

    let o = f.run(10.0, "r2", &["--no-history", "--format", "html,md"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(history_lines(&history), 1, "--no-history appends nothing");
    let mut written: Vec<String> =
        std::fs::read_dir(f.path("r2")).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    written.sort();
    assert_eq!(written, ["report.html", "results.json", "summary.md"]);
}

#[test]
fn a_regression_against_the_history_exits_3_after_writing_every_report() {
    let f = Fixture::new();
    for (i, v) in [10.0, 10.2, 9.8, 10.1].iter().enumerate() {
        let o = f.run(*v, &format!("b{i}"), &[]);
        assert_eq!(o.status.code(), Some(0), "baseline run {i}: {}", text(&o));
    }
    // Twice the latency: critical by z and by difference.
    let o = f.run(20.0, "worse", &[]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    let out = text(&o);
    assert!(out.contains("critical") && out.contains("latency_ms") && out.contains("exit 3"), "{out}");
    let r = f.results("worse");
    let row = r["regression"]["rows"].as_array().unwrap().iter().find(|x| x["metric"] == "latency_ms").unwrap();
    assert_eq!((row["verdict"].as_str(), row["severity"].as_str()), (Some("regression"), Some("critical")));
    assert_eq!(row["baseline_n"], 4);
    // The reports carry the verdict too.
    let md = std::fs::read_to_string(f.path("worse/summary.md")).unwrap();
    assert!(md.contains("latency\\_ms") && md.contains("critical"), "{md}");
    assert!(std::fs::read_to_string(f.path("worse/report.html")).unwrap().contains("latency_ms"));
    // The run that failed on its regression stays out of the baseline: half the latency is
    // an improvement against the four good runs.
    let o = f.run(5.0, "better", &[]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let r = f.results("better");
    let row = r["regression"]["rows"].as_array().unwrap().iter().find(|x| x["metric"] == "latency_ms").unwrap();
    assert_eq!(row["verdict"], "improvement");
    assert!(r["regression"]["baseline_runs"].as_array().unwrap().len() == 4, "{}", r["regression"]["baseline_runs"]);
    // The same drop with --fail-on none is reported, not fatal.
    let o = f.run(20.0, "lenient", &["--fail-on", "none"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(text(&o).contains("regressions: 1 regression (1 critical"), "{}", text(&o));

    // compare: a pinned baseline and the history, as a table; exit 3 on the regression.
    let o = f.mcpscript(&["compare", "b0", "worse", "--out", "cmp"]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    let out = text(&o);
    assert!(out.contains("SEVERITY") && out.contains("P (MWU)") && out.contains("latency_ms"), "{out}");
    assert!(f.path("cmp/report.html").is_file());
    let o = f.mcpscript(&["compare", "history", "b3", "--fail-on", "critical"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
}

#[test]
fn report_rerenders_a_stored_run() {
    let f = Fixture::new();
    assert_eq!(f.run(10.0, "r", &["--no-history", "--format", "json"]).status.code(), Some(0));
    assert!(!f.path("r/report.html").exists());
    let o = f.mcpscript(&["report", "r/results.json", "--format", "html,txt,junit", "--out", "again"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    for name in ["report.html", "summary.txt", "junit.xml"] {
        assert!(f.path("again").join(name).is_file(), "{name}");
    }
    let o = f.mcpscript(&["report", "r"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(f.path("r/summary.md").is_file());
}

#[test]
fn bad_input_is_refused_with_exit_2_and_one_sentence() {
    let f = Fixture::new();
    std::fs::write(f.path("a-file"), "x").unwrap();
    let check = |args: &[&str], needle: &str| {
        let o = f.mcpscript(args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", text(&o));
        let err = String::from_utf8_lossy(&o.stderr).to_string();
        assert!(err.contains(needle), "{args:?}: expected '{needle}' in: {err}");
        assert!(!err.contains("panicked") && !err.contains("NaN"), "{err}");
    };
    // An unwritable --out is found before the script runs (it would print its check).
    check(&["run", "metric.rhai", "--out", "a-file"], "--out a-file");
    check(&["run", "metric.rhai", "--out", "a-file/sub"], "--out a-file/sub");
    check(&["run", "metric.rhai", "--format", "pdf"], "unknown report format 'pdf'");
    check(&["run", "metric.rhai", "--fail-on", "severe"], "unknown severity 'severe'");
    // Stored runs: truncated, of another schema, not results at all, of another script.
    assert_eq!(f.run(10.0, "good", &["--no-history", "--format", "json"]).status.code(), Some(0));
    let good = std::fs::read_to_string(f.path("good/results.json")).unwrap();
    std::fs::write(f.path("cut.json"), &good[..good.len() / 2]).unwrap();
    check(&["report", "cut.json"], "cut.json is truncated");
    std::fs::write(f.path("v9.json"), good.replace("\"schema_version\": 2", "\"schema_version\": 9")).unwrap();
    check(&["report", "v9.json"], "schema_version 9");
    std::fs::write(f.path("other.json"), "{\"hello\": 1}").unwrap();
    check(&["compare", "other.json", "good"], "not an mcpscript results.json");
    std::fs::write(f.path("other.rhai"), SCRIPT).unwrap();
    check(&["run", "other.rhai", "--baseline", "good"], "a baseline must be a run of the same suite or script");
    check(&["compare", "history", "good"], "has no passing run");
    check(&["merge", "good", "good/results.json", "--out", "m"], "are the same run");
    check(&["merge", "good", "v9.json", "--out", "m"], "schema_version 9");
    // A broken user template is found before the run, with its file and place.
    std::fs::create_dir_all(f.path("reports/templates")).unwrap();
    std::fs::write(f.path("reports/templates/report.html.tera"), "<html>{% if %}</html>").unwrap();
    check(&["run", "metric.rhai", "--no-history"], "report.html.tera");
    let o = f.mcpscript(&["run", "metric.rhai", "--no-history", "--format", "json,md", "--out", "no-html"]);
    assert_eq!(o.status.code(), Some(0), "without html the template is not needed: {}", text(&o));
}

#[test]
fn a_corrupt_history_line_is_skipped_with_its_number_and_kept() {
    let f = Fixture::new();
    assert_eq!(f.run(10.0, "r1", &[]).status.code(), Some(0));
    let history = f.path("reports/history.jsonl");
    let mut bytes = std::fs::read(&history).unwrap();
    bytes.extend_from_slice(b"{not json\n");
    std::fs::write(&history, &bytes).unwrap();
    let o = f.run(10.0, "r2", &[]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(text(&o).contains("history.jsonl line 2: skipped"), "{}", text(&o));
    let after = std::fs::read_to_string(&history).unwrap();
    assert!(after.contains("{not json\n"), "the corrupt line is never rewritten");
    assert_eq!(after.lines().count(), 3);
}
