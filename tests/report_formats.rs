//! The report renderings of a result tree: summary.txt and summary.md against committed
//! snapshots (`UPDATE_SNAPSHOTS=1 cargo test --test report_formats` rewrites them), the
//! Markdown cap, results.csv and metrics.csv parsed back, junit.xml validated against the
//! Jenkins JUnit schema (`tests/schema/junit.xsd`, with `xmllint`) and parsed back.

use mcpscript::client::server_requests::RequestCounts;
use mcpscript::load::bottleneck::CpuUse;
use mcpscript::load::result::{Counts, LatencyStats, ProcessRole, ProcessSeries, Resources, TimelineEntry};
use mcpscript::load::{ModelKind, PhaseResult, PhaseStatus};
use mcpscript::regress::{Comparison, MetricComparison, RegressionCounts, Severity, Verdict};
use mcpscript::report::{csv as report_csv, junit, markdown, text};
use mcpscript::script::results::{
    Assertions, Better, CheckFailure, CheckKind, CheckResult, ErrorReport, MetricResult, Overhead, RunResults,
    ScenarioResult, ScheduleInfo, ScriptErrorKind, StageResult, Status, SuiteInfo,
};
use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

// ---------------------------------------------------------------------------------------
// The fixture: a suite of three scenarios (passed, failed, skipped) and a comparison with
// every kind of row.

fn stage(name: &str, status: Status, started_ms: f64, duration_ms: f64) -> StageResult {
    StageResult {
        name: name.into(),
        status,
        started_ms,
        duration_ms,
        assertions: Assertions::default(),
        checks: vec![],
        metrics: vec![],
        stages: vec![],
        phases: vec![],
        error: None,
    }
}

fn check(name: &str, kind: CheckKind, passed: u64, failures: &[(&str, &str, usize, f64)]) -> CheckResult {
    CheckResult {
        name: name.into(),
        kind,
        passed,
        failed: failures.len() as u64,
        failures: failures
            .iter()
            .map(|(detail, file, line, at_ms)| CheckFailure {
                detail: Some(detail.to_string()),
                file: Some(file.to_string()),
                line: Some(*line),
                at_ms: *at_ms,
            })
            .collect(),
    }
}

fn metric(name: &str, value: f64, unit: Option<&str>, better: Better, samples: &[f64]) -> MetricResult {
    MetricResult {
        name: name.into(),
        value,
        unit: unit.map(str::to_string),
        better,
        stage: String::new(),
        samples: samples.to_vec(),
    }
}

fn schedule(manifest: &str, level: usize, deps: &[&str], reason: Option<&str>) -> ScheduleInfo {
    ScheduleInfo {
        manifest: manifest.into(),
        depends_on: deps.iter().map(|d| d.to_string()).collect(),
        tags: vec![],
        level,
        connections: 10,
        exclusive: false,
        timeout_ms: 60_000.0,
        worker: reason.is_none().then_some(0),
        deps_met_ms: None,
        started_ms: None,
        finished_ms: None,
        scheduling_latency_ms: None,
        scheduling_overhead_us: None,
        aggregation_us: None,
        reason: reason.map(str::to_string),
    }
}

/// A scenario that ran: built from `not_run` so that fields added later keep a default.
fn ran(name: &str, file: &str, root: StageResult) -> ScenarioResult {
    let mut s = ScenarioResult::not_run(name, file, root.status, "");
    s.root = root;
    s.started_at = "2026-11-27T20:30:00.500Z".into();
    s.seed = 42;
    s
}

fn phase() -> PhaseResult {
    let tl = |t: u32, throughput: f64, p99: f64, errors: u64| TimelineEntry {
        t,
        span: 1.0,
        sent: 60_000,
        ok: 60_000 - errors,
        errors,
        throughput,
        p50: 1.2,
        p90: 20.0,
        p99,
        max: 90.0,
        open_sessions: 100,
        ..Default::default()
    };
    let proc = |pid: u32, role: ProcessRole, rss: [u64; 2], cpu: [f64; 2]| ProcessSeries {
        pid,
        role,
        t: vec![0.0, 0.5],
        rss_bytes: rss.to_vec(),
        cpu_pct: cpu.to_vec(),
        peak_rss_bytes: rss[1],
        mean_cpu_pct: (cpu[0] + cpu[1]) / 2.0,
    };
    let mut p = PhaseResult {
        name: "ping".into(),
        model: ModelKind::Closed,
        target: "tcp://127.0.0.1:7777".into(),
        status: PhaseStatus::Completed,
        sessions: 100,
        counts: Counts {
            sent: 181_000,
            ok: 180_900,
            errors: [("rpc_-32000".to_string(), 100)].into(),
            ..Default::default()
        },
        error_rate: 100.0 / 181_000.0,
        throughput: 60309.71008546234,
        send_rate: 60333.3,
        duration_s: 3.0,
        latency: LatencyStats { count: 181_000, p50: 1.234, p90: 20.5, p99: 72.3456, max: 90.1, ..Default::default() },
        timeline: vec![tl(0, 59876.5, 70.1, 40), tl(1, 60742.25, 74.0, 60)],
        resources: Some(Resources {
            interval_s: 0.5,
            processes: vec![
                proc(10, ProcessRole::Coordinator, [29_100_000, 30_100_000], [50.0, 75.5]),
                proc(11, ProcessRole::Worker, [12_000_000, 12_500_000], [90.0, 95.0]),
                proc(12, ProcessRole::Worker, [12_100_000, 12_600_000], [91.0, 96.0]),
            ],
            ..Default::default()
        }),
        ..Default::default()
    };
    // What the server asked the sessions: shown when it asked something.
    let asked = |received, refused| RequestCounts { received, answered: received - refused, refused };
    p.server_requests = [("ping".to_string(), asked(12, 0)), ("roots/list".to_string(), asked(3, 3))].into();
    // Who limited it, as a sampled phase says: mcpscript had headroom, the server shed load.
    p.limited_by.mcpscript_cpu = Some(CpuUse::new(64.0, 96.0, 2.0));
    mcpscript::load::bottleneck::assess(&mut p);
    p
}

/// A row: (scenario, metric, unit, better), [baseline, current, diff_pct, z].
fn row(
    (scenario, metric, unit, better): (&str, &str, Option<&str>, Better),
    [baseline, current, diff_pct, z]: [Option<f64>; 4],
    severity: Option<Severity>,
    verdict: Verdict,
) -> MetricComparison {
    MetricComparison {
        scenario: scenario.into(),
        metric: metric.into(),
        unit: unit.map(str::to_string),
        better,
        baseline,
        baseline_std: baseline.map(|b| b * 0.05),
        baseline_n: if baseline.is_some() { 5 } else { 0 },
        current,
        diff_pct,
        z,
        severity,
        verdict,
        current_interval: None,
        mann_whitney_p: None,
        welch_p: None,
        notes: vec![],
        history: vec![],
        analysis: None,
    }
}

fn comparison() -> Comparison {
    Comparison {
        baseline: "history: last 5 passing runs of suite demo (profile quick, target builtin)".into(),
        baseline_runs: (1..=5).map(|i| format!("20261126-10000{i}-00a{i}")).collect(),
        rows: vec![
            row(
                ("smoke", "handshake_ms", Some("ms"), Better::Lower),
                [Some(3.4), Some(3.4567), Some(1.6676470588235), Some(0.3335)],
                None,
                Verdict::Unchanged,
            ),
            row(
                ("latency", "ping_rps", Some("req/s"), Better::Higher),
                [Some(45_000.0), Some(60309.71008546234), Some(34.021577967694), Some(3.2451)],
                Some(Severity::High),
                Verdict::Improvement,
            ),
            row(
                ("latency", "connect_rate", Some("sessions/s"), Better::Higher),
                [Some(1000.0), Some(775.0), Some(-22.5), Some(-2.61)],
                Some(Severity::Medium),
                Verdict::Regression,
            ),
            row(
                ("latency", "latency_p99_ms", Some("ms"), Better::Lower),
                [Some(53.59), Some(72.3456), Some(34.9983205822), Some(4.1234)],
                Some(Severity::High),
                Verdict::Regression,
            ),
            row(("smoke", "tools_listed", None, Better::None), [None, Some(12.0), None, None], None, Verdict::New),
            row(
                ("latency", "old_metric", Some("ms"), Better::Lower),
                [Some(5.0), None, None, None],
                None,
                Verdict::Missing,
            ),
        ],
        fail_on: Some(Severity::High),
        regressions: RegressionCounts { critical: 0, high: 1, medium: 1, low: 0 },
        improvements: 1,
        elapsed_ms: 1.5,
    }
}

fn fixture() -> RunResults {
    // smoke: passed, a check at the top and one in a stage, a metric with samples.
    let mut root = stage("smoke", Status::Passed, 0.0, 1234.5);
    root.checks = vec![check("server answers ping", CheckKind::Check, 3, &[])];
    let mut tools = stage("tools", Status::Passed, 10.0, 800.25);
    tools.checks = vec![check("echo answers", CheckKind::Check, 2, &[])];
    tools.assertions = Assertions { passed: 2, failed: 0 };
    root.stages = vec![tools];
    root.assertions = Assertions { passed: 5, failed: 0 };
    root.metrics = vec![
        metric("handshake_ms", 3.4567, Some("ms"), Better::Lower, &[3.1, 3.5, 3.76]),
        metric("tools_listed", 12.0, None, Better::None, &[]),
    ];
    let mut smoke = ran("smoke", "scripts/smoke.rhai", root);
    smoke.params.insert("rounds".into(), serde_json::json!(10));
    smoke.schedule = Some(schedule("scripts/smoke.yaml", 0, &[], None));

    // latency: failed, a failed threshold, a passed one, a failed check (with characters
    // Markdown gives a meaning to) in a stage, metrics with samples and a load phase.
    let mut root = stage("latency", Status::Failed, 0.0, 4500.25);
    root.checks = vec![
        check(
            "p99 < 50ms",
            CheckKind::Threshold,
            0,
            &[("p99 = 72.3 ms, limit 50 ms", "scripts/latency.rhai", 12, 4100.0)],
        ),
        check("error_rate < 0.1%", CheckKind::Threshold, 1, &[]),
    ];
    let mut echo = stage("echo", Status::Failed, 5.0, 300.0);
    echo.checks = vec![check(
        "echo answers | *trimmed*",
        CheckKind::Check,
        3,
        &[
            ("got \"Echo: h\" <truncated>", "scripts/latency.rhai", 8, 120.5),
            ("got \"\"", "scripts/latency.rhai", 8, 130.0),
        ],
    )];
    echo.assertions = Assertions { passed: 3, failed: 2 };
    let mut load = stage("load", Status::Passed, 400.0, 3050.0);
    load.phases = vec![phase()];
    root.stages = vec![echo, load];
    root.assertions = Assertions { passed: 4, failed: 3 };
    root.metrics = vec![
        metric("latency_p99_ms", 72.3456, Some("ms"), Better::Lower, &[70.1, 72.9, 74.0]),
        metric("ping_rps", 60309.71008546234, Some("req/s"), Better::Higher, &[59876.5, 60742.25]),
        metric("connect_rate", 775.0, Some("sessions/s"), Better::Higher, &[]),
    ];
    let mut latency = ran("latency", "scripts/latency.rhai", root);
    latency.params.insert("duration".into(), serde_json::json!("3s"));
    latency.params.insert("sessions".into(), serde_json::json!(100));
    latency.schedule = Some(schedule("scripts/latency.yaml", 1, &["smoke"], None));

    // chaos: skipped, its dependency failed.
    let why = "dependency 'latency' failed";
    let mut chaos = ScenarioResult::not_run("chaos", "scripts/chaos.rhai", Status::Skipped, why);
    chaos.schedule = Some(schedule("scripts/chaos.yaml", 2, &["latency"], Some(why)));

    let started = UNIX_EPOCH + Duration::from_millis(1_795_811_400_123);
    let mut r = RunResults::new("20261127-203000-3fa9".into(), "builtin".into(), started, vec![smoke, latency, chaos]);
    r.mcpscript_version = "0.1.0".into();
    r.started_at = "2026-11-27T20:30:00.123Z".into();
    r.finished_at = "2026-11-27T20:30:06.693Z".into();
    r.duration_ms = 6570.4;
    let overhead = Overhead {
        startup_ms: 120.4,
        parse_ms: 3.2,
        compile_ms: 40.1,
        wall_ms: 6400.0,
        busy_ms: 5734.75,
        parallel_efficiency: 0.448,
        scheduling_latency_ms_mean: 0.41,
        scheduling_latency_ms_max: 1.2,
        scheduling_overhead_us_mean: 12.5,
        aggregation_us_mean: 30.25,
        critical_path: vec!["smoke".into(), "latency".into()],
        critical_path_ms: 5734.75,
    };
    r.suite = Some(SuiteInfo {
        name: "demo".into(),
        file: "scripts/suite.yaml".into(),
        profile: "quick".into(),
        parallelism: 2,
        connection_budget: 200,
        overhead,
    });
    r.coverage = Default::default();
    r.coverage.methods =
        [("ping".to_string(), 181_000), ("tools/call".to_string(), 12), ("initialize".to_string(), 102)]
            .into_iter()
            .collect();
    r.coverage.transports.extend(["tcp".to_string()]);
    r.coverage.error_classes = [("rpc_-32000".to_string(), 100)].into_iter().collect();
    r.regression = Some(comparison());
    r
}

// ---------------------------------------------------------------------------------------
// Snapshots.

fn snapshot_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests").join("snapshots").join(name)
}

/// Compares `actual` with the committed snapshot, or rewrites it with `UPDATE_SNAPSHOTS=1`.
fn assert_snapshot(name: &str, actual: &str) {
    let path = snapshot_path(name);
    if std::env::var("UPDATE_SNAPSHOTS").is_ok_and(|v| v == "1") {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!("cannot read {}: {e} (UPDATE_SNAPSHOTS=1 cargo test --test report_formats writes it)", path.display())
    });
    if expected != actual {
        let (e, a): (Vec<&str>, Vec<&str>) = (expected.lines().collect(), actual.lines().collect());
        let i = e.iter().zip(&a).position(|(x, y)| x != y).unwrap_or(e.len().min(a.len()));
        panic!(
            "{name} differs from {} at line {}:\n  expected: {:?}\n  actual:   {:?}\n\nactual output:\n{actual}\n(UPDATE_SNAPSHOTS=1 rewrites the snapshot)",
            path.display(),
            i + 1,
            e.get(i),
            a.get(i)
        );
    }
}

/// No NaN, no infinity, and no raw float (a decimal number with more than three
/// significant digits) in what a person reads.
fn assert_humane(name: &str, s: &str) {
    for bad in ["NaN", "nan", "inf"] {
        assert!(!s.split(|c: char| !c.is_alphanumeric()).any(|w| w == bad), "{name} holds '{bad}':\n{s}");
    }
    for word in s.split(|c: char| !(c.is_ascii_digit() || c == '.')) {
        let word = word.trim_matches('.');
        if !word.contains('.') || word.matches('.').count() > 1 {
            continue; // an integer, or a version
        }
        let significant = word.trim_start_matches(['0', '.']).chars().filter(char::is_ascii_digit).count();
        assert!(significant <= 3, "{name} holds a raw number: {word}");
    }
}

#[test]
fn summary_txt_matches_its_snapshot() {
    let txt = text::render(&fixture());
    assert_humane("summary.txt", &txt);
    assert!(txt.contains("60.3K req/s") && !txt.contains("60309"), "{txt}");
    assert_snapshot("summary.txt", &txt);
}

#[test]
fn summary_md_matches_its_snapshot() {
    let md = markdown::render(&fixture(), markdown::FULL_LIMIT);
    assert_humane("summary.md", &md);
    // Regressions are worse whatever the sign; the improvement is better.
    assert!(md.contains("▲ +35% (worse)"), "{md}");
    assert!(md.contains("▼ -22.5% (worse)"), "{md}");
    assert!(md.contains("▲ +34% (better)"), "{md}");
    // Names are escaped inside tables.
    assert!(md.contains(r"echo answers \| \*trimmed\*"), "{md}");
    assert_eq!(md.matches("<details>").count(), md.matches("</details>").count());
    assert!(!md.contains("Summary truncated"), "{md}");
    assert_snapshot("summary.md", &md);
}

#[test]
fn summaries_without_a_baseline_say_so() {
    let mut r = fixture();
    r.regression = None;
    let txt = text::render(&r);
    assert!(txt.contains("Baseline: none found"), "{txt}");
    let md = markdown::render(&r, markdown::FULL_LIMIT);
    assert!(md.contains("No baseline"), "{md}");
    assert!(!md.contains("(worse)"), "{md}");
}

#[test]
fn missing_figures_never_print_nan() {
    let mut r = fixture();
    r.duration_ms = f64::NAN;
    r.summary.pass_rate = f64::INFINITY;
    r.scenarios[0].root.metrics[0].value = f64::NAN;
    let c = r.regression.as_mut().unwrap();
    c.rows[0].diff_pct = None;
    c.rows[0].z = None;
    c.rows[1].baseline = None;
    for (name, s) in [("summary.txt", text::render(&r)), ("summary.md", markdown::render(&r, markdown::FULL_LIMIT))] {
        assert_humane(name, &s);
        assert!(s.contains("n/a"), "{name}:\n{s}");
    }
}

// ---------------------------------------------------------------------------------------
// The Markdown cap.

fn many(n: usize) -> RunResults {
    let base = fixture();
    let mut r = fixture();
    r.scenarios.clear();
    for i in 0..n {
        let mut s = base.scenarios[i % 3].clone();
        s.root.name = format!("{}_{i}", s.root.name);
        r.scenarios.push(s);
    }
    r
}

#[test]
fn markdown_is_capped_at_a_line_with_details_closed() {
    let r = many(300);
    let full = markdown::render(&r, markdown::FULL_LIMIT);
    assert!(full.len() > 50_000, "the fixture should be large: {}", full.len());
    for limit in [600, 2_000, 4_096, 10_000, 33_333] {
        let md = markdown::render(&r, limit);
        assert!(md.len() <= limit, "{} bytes for a limit of {limit}", md.len());
        let last = md.lines().last().unwrap_or_default();
        assert!(last.contains("report.html") && last.contains("summary.txt"), "limit {limit}: last line {last:?}");
        let opened = md.lines().filter(|l| l.trim_start().starts_with("<details")).count();
        let closed = md.lines().filter(|l| l.trim_start().starts_with("</details>")).count();
        assert_eq!(opened, closed, "limit {limit}:\n{md}");
        // Cut after a whole line of the full text.
        let kept = md.split("\n</details>\n").next().unwrap();
        let kept = kept.strip_suffix(&format!("\n{last}\n")).unwrap_or(kept);
        assert!(full.starts_with(kept), "limit {limit}: not a prefix of the full text");
        assert!(kept.is_empty() || kept.ends_with('\n'), "limit {limit}: cut inside a line");
    }
    // Within the limit: the whole text, no pointer.
    let small = fixture();
    let md = markdown::render(&small, markdown::FULL_LIMIT);
    assert_eq!(md, markdown::render(&small, md.len()));
    assert!(!md.contains("Summary truncated"));
}

// ---------------------------------------------------------------------------------------
// CSV.

#[test]
fn results_csv_has_a_row_per_scenario_and_quotes_names() {
    let mut r = fixture();
    r.scenarios[1].root.name = "say \"hi\", twice".into();
    let bytes = report_csv::results_csv(&r).unwrap();
    let s = String::from_utf8(bytes.clone()).unwrap();
    assert_eq!(s.lines().next(), Some("test_id,test_name,status,duration_ms,assertions_passed,assertions_failed"));
    assert!(s.contains(r#""demo/say ""hi"", twice","say ""hi"", twice",failed,4500.25,4,3"#), "{s}");

    let mut rd = csv::Reader::from_reader(bytes.as_slice());
    let rows: Vec<csv::StringRecord> = rd.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), r.scenarios.len());
    assert_eq!(&rows[0].iter().collect::<Vec<_>>(), &["demo/smoke", "smoke", "passed", "1234.5", "5", "0"]);
    assert_eq!(&rows[1][1], "say \"hi\", twice");
    assert_eq!(&rows[1][0], "demo/say \"hi\", twice");
    assert_eq!(&rows[2].iter().collect::<Vec<_>>(), &["demo/chaos", "chaos", "skipped", "0", "0", "0"]);

    // A script run: the script file is the id.
    let mut one = fixture();
    one.suite = None;
    one.scenarios.truncate(1);
    let s = String::from_utf8(report_csv::results_csv(&one).unwrap()).unwrap();
    assert_eq!(s.lines().nth(1), Some("scripts/smoke.rhai,smoke,passed,1234.5,5,0"));
}

#[test]
fn metrics_csv_parses_back_with_samples_timelines_and_resources() {
    let r = fixture();
    let bytes = report_csv::metrics_csv(&r).unwrap();
    let mut rd = csv::Reader::from_reader(bytes.as_slice());
    assert_eq!(rd.headers().unwrap().iter().collect::<Vec<_>>(), ["scenario", "metric", "unit", "t", "value"]);
    let rows: Vec<Vec<String>> =
        rd.records().map(|x| x.unwrap().iter().map(str::to_string).collect::<Vec<String>>()).collect();
    let series = |scenario: &str, metric: &str| -> Vec<(String, f64)> {
        rows.iter()
            .filter(|x| x[0] == scenario && x[1] == metric)
            .map(|x| (x[3].clone(), x[4].parse::<f64>().unwrap()))
            .collect()
    };
    let p99 = series("latency", "latency_p99_ms");
    assert_eq!(
        p99,
        [("".into(), 72.3456), ("0".into(), 70.1), ("1".into(), 72.9), ("2".into(), 74.0)],
        "the value, then its samples"
    );
    assert!(rows.iter().filter(|x| x[1] == "latency_p99_ms").all(|x| x[2] == "ms"));
    assert_eq!(series("latency", "ping_rps")[0], ("".into(), 60309.71008546234), "full precision");
    assert_eq!(series("smoke", "tools_listed"), [("".into(), 12.0)]);
    assert_eq!(series("latency", "ping.throughput"), [("0".into(), 59876.5), ("1".into(), 60742.25)]);
    assert_eq!(series("latency", "ping.p99_ms"), [("0".into(), 70.1), ("1".into(), 74.0)]);
    assert_eq!(series("latency", "ping.errors"), [("0".into(), 40.0), ("1".into(), 60.0)]);
    assert_eq!(
        series("latency", "ping.rss_bytes.coordinator"),
        [("0".into(), 29_100_000.0), ("0.5".into(), 30_100_000.0)]
    );
    assert_eq!(series("latency", "ping.rss_bytes.worker.11").len(), 2);
    assert_eq!(series("latency", "ping.rss_bytes.worker.12").len(), 2);
    assert!(rows.iter().all(|x| x.len() == 5 && !x[4].is_empty()));
    assert!(!rows.iter().any(|x| x[0] == "chaos"), "a skipped scenario exports nothing");
}

// ---------------------------------------------------------------------------------------
// JUnit.

fn junit_fixture() -> RunResults {
    let mut r = fixture();
    let mut root = stage("overload", Status::Timeout, 0.0, 60_000.0);
    root.error = Some("timed out after 60 s".into());
    let mut s = ran("overload", "scripts/overload.rhai", root);
    s.error = Some(ErrorReport {
        kind: ScriptErrorKind::Timeout,
        message: "the scenario timed out after 60 s".into(),
        file: "scripts/overload.rhai".into(),
        line: Some(30),
        column: Some(5),
        stack: vec![],
        hint: None,
    });
    r.scenarios.push(s);
    r
}

#[test]
fn junit_validates_against_the_schema_and_parses_back() {
    let r = junit_fixture();
    let xml = junit::render(&r).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("junit.xml");
    std::fs::write(&file, &xml).unwrap();

    let schema = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/schema/junit.xsd");
    match std::process::Command::new("xmllint").arg("--noout").arg("--schema").arg(&schema).arg(&file).output() {
        Ok(out) => assert!(
            out.status.success(),
            "junit.xml does not validate:\n{}\n{}\n{xml}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            println!("skipped: xmllint is not installed (apt-get install libxml2-utils); junit.xml not validated");
        }
        Err(e) => panic!("cannot run xmllint: {e}"),
    }

    let report = quick_junit::Report::deserialize_from_str(&xml).unwrap();
    assert_eq!(report.test_suites.len(), 1);
    let suite = &report.test_suites[0];
    assert_eq!(suite.name.as_str(), "demo");
    // Four scenarios and the two thresholds of latency.
    let names: Vec<&str> = suite.test_cases.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(
        names,
        ["smoke", "latency", "latency: p99 < 50ms", "latency: error_rate < 0.1%", "chaos", "overload"],
        "{xml}"
    );
    assert_eq!((suite.tests, suite.failures, suite.errors, suite.skipped), (6, 2, 1, 1), "{xml}");
    for t in &suite.test_cases {
        let class = t.classname.as_ref().map(|c| c.as_str()).unwrap_or_default();
        assert!(class.starts_with("mcpscript.demo."), "{}: classname {class:?}", t.name.as_str());
        assert!(t.time.is_some(), "{} has no time", t.name.as_str());
    }
    use quick_junit::{NonSuccessKind, TestCaseStatus};
    let status = |i: usize| &suite.test_cases[i].status;
    let kind_type = |i: usize| match status(i) {
        TestCaseStatus::NonSuccess { kind, ty, message, .. } => {
            assert!(message.is_some(), "{} has no message", suite.test_cases[i].name.as_str());
            (Some(*kind), ty.as_ref().map(|t| t.as_str().to_string()))
        }
        _ => (None, None),
    };
    assert!(matches!(status(0), TestCaseStatus::Success { .. }));
    assert_eq!(kind_type(1), (Some(NonSuccessKind::Failure), Some("check".into())));
    assert_eq!(kind_type(2), (Some(NonSuccessKind::Failure), Some("threshold".into())));
    assert!(matches!(status(3), TestCaseStatus::Success { .. }));
    match status(4) {
        TestCaseStatus::Skipped { message, .. } => {
            assert_eq!(message.as_ref().map(|m| m.as_str()), Some("dependency 'latency' failed"))
        }
        other => panic!("chaos should be skipped: {other:?}"),
    }
    assert_eq!(kind_type(5), (Some(NonSuccessKind::Error), Some("timeout".into())));
    let out = suite.test_cases[1].system_out.as_ref().map(|o| o.as_str()).unwrap_or_default();
    assert!(out.contains("threshold 'p99 < 50ms' failed 1 of 1"), "{out}");
    assert!(out.contains("check 'echo answers | *trimmed*' (stage echo) failed 2 of 5"), "{out}");
    assert!(out.contains("at scripts/latency.rhai:8"), "{out}");
    assert_eq!(suite.test_cases[1].classname.as_ref().unwrap().as_str(), "mcpscript.demo.latency");
}
