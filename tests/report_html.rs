//! report.html: a real run's results (tests/fixtures/report_results.json, from the shipped
//! suite) rendered into one self-contained page: no script, no style attribute, no network
//! URL, a CSP naming the hash of its only style block, the charts, every scenario; the
//! regression table from a hand-made comparison; user template overrides; and, when
//! /usr/bin/chromium exists, the page loaded headless with no CSP violation and no request.

use base64::Engine as _;
use mcpscript::regress::{Comparison, MetricComparison, RegressionCounts, Severity, Verdict};
use mcpscript::report::html;
use mcpscript::script::results::{Better, RunResults};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const FIXTURE: &str = include_str!("fixtures/report_results.json");

fn sample() -> RunResults {
    serde_json::from_str(FIXTURE).expect("fixture parses as results.json")
}

fn row(
    metric: &str,
    better: Better,
    baseline: f64,
    current: f64,
    verdict: Verdict,
    sev: Option<Severity>,
) -> MetricComparison {
    MetricComparison {
        scenario: "latency".into(),
        metric: metric.into(),
        unit: Some(if metric.ends_with("_ms") { "ms" } else { "req/s" }.into()),
        better,
        baseline: Some(baseline),
        baseline_std: Some(baseline * 0.02),
        baseline_n: 5,
        current: Some(current),
        diff_pct: Some((current - baseline) / baseline * 100.0),
        z: Some(4.2),
        severity: sev,
        verdict,
        current_interval: None,
        mann_whitney_p: Some(0.0079),
        welch_p: None,
        notes: vec!["judged on <z> & difference".into()],
        history: vec![baseline * 0.98, baseline, baseline * 1.01, baseline * 0.99, current],
        analysis: None,
    }
}

fn with_regression(mut r: RunResults) -> RunResults {
    r.regression = Some(Comparison {
        baseline: "history: last 5 passing runs".into(),
        baseline_runs: vec!["a".into(), "b".into(), "c".into(), "d".into(), "e".into()],
        rows: vec![
            // Throughput fell: a regression (down arrow, red).
            row("latency_throughput", Better::Higher, 35000.0, 21000.0, Verdict::Regression, Some(Severity::High)),
            // p99 fell: an improvement (down arrow, green).
            row("latency_p99_ms", Better::Lower, 0.9, 0.6, Verdict::Improvement, Some(Severity::High)),
            row("latency_p50_ms", Better::Lower, 0.256, 0.257, Verdict::Unchanged, None),
        ],
        fail_on: Some(Severity::High),
        regressions: RegressionCounts { critical: 0, high: 1, medium: 0, low: 0 },
        improvements: 1,
        elapsed_ms: 1.0,
    });
    r
}

/// Where the pages, screenshot and chromium's logs are kept: `target/report-html-test/`.
fn out_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).parent().unwrap().join("report-html-test")
}

fn scenario_names(r: &RunResults) -> Vec<String> {
    r.scenarios.iter().map(|s| s.root.name.clone()).collect()
}

/// The page's contract, whatever the data.
fn assert_self_contained(page: &str) {
    assert!(!page.contains("<script"), "no script");
    assert!(!page.contains("style="), "no style attribute");
    for bad in ["src=\"http", "href=\"http", "src=\"//", "href=\"//", "url(", "@import", "http://", "https://"] {
        assert!(!page.contains(bad), "no network reference ({bad})");
    }
    assert!(!page.contains("NaN") && !page.contains("inf<") && !page.contains(">inf"), "no NaN or inf");
    assert_eq!(page.matches("<style").count(), 1, "one style block");
    let start = page.find("<style>").unwrap() + "<style>".len();
    let end = page.find("</style>").unwrap();
    let hash = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(&page.as_bytes()[start..end]));
    let csp = format!(
        r#"<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'sha256-{hash}'; img-src data:">"#
    );
    assert!(page.contains(&csp), "CSP with the style block's hash {hash}");
    assert!(page.find(&csp).unwrap() < start, "the CSP comes before the style block");
}

#[test]
fn renders_a_real_run_as_a_self_contained_page() {
    let r = sample();
    let t = Instant::now();
    let page = html::render(&r, None).expect("renders");
    let elapsed = t.elapsed();
    println!("report.html: {} bytes rendered in {:.2} ms", page.len(), elapsed.as_secs_f64() * 1000.0);
    assert_self_contained(&page);
    // Another results.json to time, e.g. MCPSCRIPT_REPORT_SAMPLE=/tmp/sample/results.json.
    if let Some(path) = std::env::var_os("MCPSCRIPT_REPORT_SAMPLE") {
        let other: RunResults = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        let t = Instant::now();
        let p = html::render(&other, None).expect("renders");
        println!(
            "{}: {} bytes rendered in {:.2} ms",
            path.to_string_lossy(),
            p.len(),
            t.elapsed().as_secs_f64() * 1000.0
        );
        assert_self_contained(&p);
    }
    for name in scenario_names(&r) {
        assert!(page.contains(&format!(r#"<span class="name">{name}</span>"#)), "scenario {name} in the tree");
    }
    // Charts: per load phase a percentile curve (9 phases), timelines and memory for the
    // longer ones, connection-scaling curves, the execution timeline.
    let svgs = page.matches("<svg").count();
    assert!(svgs >= 20, "{svgs} charts");
    assert_eq!(page.matches(r#"<svg class="chart lanes""#).count(), 1, "the execution timeline");
    assert!(page.contains("latency by percentile") && page.contains(">99.9%<"), "nines axis");
    assert!(page.contains("connect latency by sessions"), "connection scaling curve");
    assert!(page.contains("baseline: memory") || page.contains("RSS (MiB)"), "memory chart");
    assert!(page.contains("PASSED") && page.contains("272 of 272 passed"), "headline");
    assert!(page.contains("critical path: smoke"), "framework overhead");
    // Human numbers only: no float with many decimals anywhere but in the scripts' own
    // log lines, which are shown as logged.
    let mut text = page.clone();
    while let Some(a) = text.find("<div class=\"logs") {
        let b = a + text[a..].find("</details>").unwrap();
        text.replace_range(a..b, "");
    }
    let long_float = text
        .as_bytes()
        .windows(8)
        .any(|w| w[0].is_ascii_digit() && w[1] == b'.' && w[2..].iter().all(u8::is_ascii_digit));
    assert!(!long_float, "a raw float leaked into the page");
    // Failed nodes open by default, passed ones closed.
    assert!(!page.contains("<details class=\"scenario\" open>"), "all passed: closed");
    assert!(elapsed < Duration::from_millis(if cfg!(debug_assertions) { 2000 } else { 100 }), "{elapsed:?}");
}

#[test]
fn failed_scenarios_open_and_regressions_read_by_direction() {
    let mut r = with_regression(sample());
    r.scenarios[1].root.status = mcpscript::script::results::Status::Failed;
    r.scenarios[1].root.error = Some("boom <b>".into());
    let page = html::render(&r, None).expect("renders");
    std::fs::create_dir_all(out_dir()).unwrap();
    std::fs::write(out_dir().join("failed.html"), &page).unwrap();
    assert_self_contained(&page);
    assert!(page.contains("FAILED"), "regression at fail_on fails the headline");
    assert!(page.contains("<details class=\"scenario\" open>"), "failed scenario open");
    assert!(page.contains("boom &lt;b&gt;"), "text escaped");
    assert!(page.contains("judged on &lt;z&gt; &amp; difference"));
    let table = &page[page.find("id=\"regressions\"").expect("regression section")..];
    // The throughput drop is red (a regression) though it went down; the p99 drop is green.
    let tput = &table[table.find("latency_throughput").unwrap()..];
    let tput = &tput[..tput.find("</tr>").unwrap()];
    assert!(tput.contains("up-bad") && tput.contains("\u{25bc} -40%"), "{tput}");
    let p99 = &table[table.find("latency_p99_ms").unwrap()..];
    let p99 = &p99[..p99.find("</tr>").unwrap()];
    assert!(p99.contains("up-good") && p99.contains("\u{25bc} -33.3%"), "{p99}");
    assert!(p99.contains("<svg class=\"spark\""), "sparkline per row");
    assert!(page.contains("0 critical · 1 high · 0 medium · 0 low · 1 improved"), "regressions by severity");
    assert!(page.contains("failed on regressions at high severity or above"));
}

#[test]
fn degradation_curves_coverage_and_missing_data() {
    let mut r = sample();
    // The latency scenario at three load levels: degradation curves.
    let latency = r.scenarios.iter_mut().find(|s| s.root.name == "latency").unwrap();
    let base = latency.root.phases[0].clone();
    for (sessions, tput, err) in [(20, 30000.0, 0.01), (40, 21000.0, 0.08)] {
        let mut p = base.clone();
        p.name = format!("baseline_{sessions}");
        (p.sessions, p.throughput, p.error_rate) = (sessions, tput, err);
        latency.root.phases.push(p);
    }
    // Missing figures: a metric and a percentile that are not numbers.
    latency.root.metrics[0].value = f64::NAN;
    latency.root.phases[0].latency.p99 = f64::INFINITY;
    r.coverage = serde_json::from_value(serde_json::json!({
        "methods": {"ping": 120000, "tools/call": 5300, "initialize": 480},
        "transports": ["tcp"],
        "error_classes": {"rpc_-32000": 119446}
    }))
    .unwrap();
    let page = html::render(&r, None).unwrap();
    std::fs::create_dir_all(out_dir()).unwrap();
    std::fs::write(out_dir().join("degradation.html"), &page).unwrap();
    assert_self_contained(&page);
    assert!(page.contains("latency: throughput by load") && page.contains("latency: error rate by load"));
    assert!(page.contains("<span class=\"tag\">degradation</span>"));
    assert!(page.contains("Requests by MCP method") && page.contains("120,000") && page.contains("rpc_-32000"));
    assert!(page.contains(">n/a<"), "missing numbers read n/a");
}

#[test]
fn each_phase_says_who_limited_it() {
    use mcpscript::load::bottleneck::{assess, SendLag};
    let mut r = sample();
    let latency = r.scenarios.iter_mut().find(|s| s.root.name == "latency").unwrap();
    let mut behind = latency.root.phases[0].clone();
    behind.name = "flood".into();
    let mut lag = mcpscript::load::result::new_hist();
    (0..100).for_each(|_| lag.saturating_record(35_000));
    behind.limited_by.send_lag = Some(SendLag::of(&lag));
    assess(&mut behind);
    latency.root.phases.push(behind);
    let page = html::render(&r, None).unwrap();
    assert_self_contained(&page);
    // The fixture's phases predate the verdict: none is shown for them, never a made-up one.
    assert_eq!(page.matches("<p class=\"limit").count(), 1, "only the judged phase has a verdict line");
    assert!(page.contains("<b>limited by:</b> mcpscript (send lag p99 35 ms)"), "the verdict and its evidence");
    assert!(page.contains("these numbers are mcpscript's limit, not the server's"));
    assert!(page.contains("&#xb7; limited by mcpscript</li>"), "in the stage's list of phases");
}

#[test]
fn a_phase_lists_what_the_server_asked_its_sessions() {
    use mcpscript::client::server_requests::RequestCounts;
    let mut r = sample();
    let latency = r.scenarios.iter_mut().find(|s| s.root.name == "latency").unwrap();
    let asked = |received, refused| RequestCounts { received, answered: received - refused, refused };
    latency.root.phases[0].server_requests =
        [("sampling/createMessage".to_string(), asked(1200, 0)), ("roots/list".to_string(), asked(3, 3))].into();
    let page = html::render(&r, None).unwrap();
    assert_self_contained(&page);
    assert_eq!(page.matches("<span>server requests</span>").count(), 1, "only the phase that was asked");
    assert!(page.contains("<span>sampling/createMessage: 1,200 received, 1,200 answered, 0 refused</span>"));
    assert!(page.contains("<span>roots/list: 3 received, 0 answered, 3 refused</span>"));
}

#[test]
fn user_template_overrides_and_broken_ones_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let r = sample();
    // No template in the folder: the embedded one.
    assert!(html::render(&r, Some(dir.path())).unwrap().contains("Execution timeline"));
    let file = dir.path().join("report.html.tera");
    std::fs::write(
        &file,
        "<!DOCTYPE html><html><head><meta http-equiv=\"Content-Security-Policy\" content=\"{{ csp | safe }}\">\
         <style>{% block style %}body { color: #111; }{% endblock style %}</style></head>\
         <body><h1>custom {{ r.run_id }}</h1>{% for s in r.scenarios %}<p>{{ s.node.name }} {{ s.node.duration_ms | ms }}</p>{% endfor %}</body></html>",
    )
    .unwrap();
    let page = html::render(&r, Some(dir.path())).unwrap();
    assert!(page.contains(&format!("<h1>custom {}</h1>", r.run_id)), "{page}");
    assert!(!page.contains("Execution timeline"));
    assert_self_contained(&page);
    std::fs::write(&file, "<html>{% for s in r.scenarios %}{{ s.node.name }</html>").unwrap();
    let err = html::render(&r, Some(dir.path())).unwrap_err();
    println!("{err}");
    assert!(err.contains(&file.display().to_string()), "{err}");
    std::fs::write(&file, "<html>{{ r.no_such_field }}</html>").unwrap();
    let err = html::render(&r, Some(dir.path())).unwrap_err();
    assert!(err.contains(&file.display().to_string()), "{err}");
}

/// Runs `cmd`, killing it (and its process group) after `limit`.
fn run_bounded(mut cmd: Command, limit: Duration, stdout: &Path, stderr: &Path) -> bool {
    use std::os::unix::process::CommandExt as _;
    cmd.stdin(Stdio::null())
        .stdout(std::fs::File::create(stdout).unwrap())
        .stderr(std::fs::File::create(stderr).unwrap())
        .process_group(0);
    let mut child = cmd.spawn().expect("chromium starts");
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status.success();
        }
        if started.elapsed() > limit {
            // SAFETY: signals the process group this test created for chromium.
            unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
            let _ = child.wait();
            panic!("chromium did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The requests the page itself started, from a Chromium net log: URL requests whose
/// initiator is a document (the browser's own background traffic has none: "not an origin").
fn page_requests(netlog: &str) -> Vec<String> {
    let log: serde_json::Value = match serde_json::from_str(netlog) {
        Ok(v) => v,
        // A log cut short (chromium killed) still names its requests.
        Err(_) => serde_json::from_str(&format!("{}]}}", netlog.trim_end().trim_end_matches(','))).expect("net log"),
    };
    let start_job = log["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"].as_u64().expect("event type");
    log["events"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["type"].as_u64() == Some(start_job))
        .filter(|e| e["params"]["initiator"].as_str().is_some_and(|i| i != "not an origin"))
        .map(|e| e["params"]["url"].as_str().unwrap_or("?").to_string())
        .filter(|u| !u.starts_with("file://") && !u.starts_with("data:"))
        .collect()
}

/// Chromium headless on `url` (bounded to 60 s, its own profile), with `extra` flags; its
/// stdout, stderr (console messages included) and net log.
fn chromium(out: &Path, mode: &str, url: &str, extra: &[String]) -> (String, String, String) {
    let profile = tempfile::tempdir().unwrap();
    let netlog = out.join(format!("netlog-{mode}.json"));
    let (so, se) = (out.join(format!("{mode}.stdout")), out.join(format!("{mode}.stderr")));
    let _ = std::fs::remove_file(&netlog);
    let mut cmd = Command::new("/usr/bin/chromium");
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--enable-logging=stderr",
        "--v=0",
        "--host-resolver-rules=MAP * ~NOTFOUND",
        "--window-size=1400,3000",
    ])
    .arg(format!("--user-data-dir={}", profile.path().display()))
    .arg(format!("--log-net-log={}", netlog.display()))
    .args(extra)
    .arg(url);
    let ok = run_bounded(cmd, Duration::from_secs(60), &so, &se);
    let read = |p: &Path| String::from_utf8_lossy(&std::fs::read(p).unwrap_or_default()).into_owned();
    let (stdout, stderr, net) = (read(&so), read(&se), read(&netlog));
    assert!(ok, "chromium {mode} failed:\n{stderr}");
    (stdout, stderr, net)
}

fn csp_violations(log: &str) -> Vec<&str> {
    log.lines()
        .filter(|l| ["Refused to", "Content Security Policy", "Content-Security-Policy"].iter().any(|b| l.contains(b)))
        .collect()
}

#[test]
fn chromium_loads_the_page_without_csp_violations_or_requests() {
    if !Path::new("/usr/bin/chromium").exists() {
        println!("skipped: /usr/bin/chromium not installed (CI installs it)");
        return;
    }
    let out = out_dir();
    std::fs::create_dir_all(&out).unwrap();
    let file_url = |p: &Path| format!("file://{}", p.canonicalize().unwrap().display());

    // A control page proves the two detectors work: it loads a network image and breaks
    // its CSP with a style attribute.
    let control = out.join("control.html");
    std::fs::write(
        &control,
        "<!DOCTYPE html><html><head><meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; img-src http:\"></head>\
         <body><p style=\"color: red\">x</p><img src=\"http://example.invalid/x.png\"></body></html>",
    )
    .unwrap();
    let (_, err, net) = chromium(&out, "control", &file_url(&control), &["--dump-dom".to_string()]);
    assert!(!csp_violations(&err).is_empty(), "the console log shows CSP violations:\n{err}");
    assert_eq!(page_requests(&net), vec!["http://example.invalid/x.png".to_string()], "the net log shows requests");

    let page = html::render(&with_regression(sample()), None).unwrap();
    let report = out.join("report.html");
    std::fs::write(&report, &page).unwrap();
    let shot = out.join("report.png");
    let _ = std::fs::remove_file(&shot);
    let (_, shot_err, shot_net) =
        chromium(&out, "screenshot", &file_url(&report), &[format!("--screenshot={}", shot.display())]);
    assert!(shot.metadata().map(|m| m.len() > 10_000).unwrap_or(false), "screenshot written: {shot_err}");
    println!("screenshot: {}", shot.display());
    let (dom, dom_err, dom_net) = chromium(&out, "dump-dom", &file_url(&report), &["--dump-dom".to_string()]);
    for (log, net) in [(&shot_err, &shot_net), (&dom_err, &dom_net)] {
        assert!(csp_violations(log).is_empty(), "CSP violations: {:?}", csp_violations(log));
        assert!(page_requests(net).is_empty(), "the page made requests: {:?}", page_requests(net));
    }
    let svgs = page.matches("<svg").count();
    assert_eq!(dom.matches("<svg").count(), svgs, "every chart in the DOM");
    assert!(dom.contains("Execution timeline") && dom.contains("latency by percentile"));
}
