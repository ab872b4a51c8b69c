//! `cargo bench --bench report`: what reporting costs after a run.
//!
//! 1. Every report format of a real run of the shipped suite (`mcpscript run
//!    scripts/suite.yaml`, run here first) written to a temp folder: each format alone and
//!    all together, fastest of 5. Goal: all formats under 250 ms.
//! 2. Regression detection over 1,000 metrics with a 100-run history, every method included
//!    (z, difference, t interval, Mann-Whitney U, Welch, IQR anomalies, trend, ARIMA(1,1,0)
//!    forecast, E-divisive change points), fastest of 5. Goal: under 100 ms.

use mcpscript::regress::compare::{compare, Baseline};
use mcpscript::regress::history::{HistoryEntry, HistoryMetric};
use mcpscript::report::{self, Format};
use mcpscript::script::results::{Better, RunResults, Status};
use std::time::Instant;

fn best_of<T>(n: usize, mut f: impl FnMut() -> T) -> (f64, T) {
    let mut best = f64::INFINITY;
    let mut last = None;
    for _ in 0..n {
        let t = Instant::now();
        let out = f();
        best = best.min(t.elapsed().as_secs_f64() * 1000.0);
        last = Some(out);
    }
    (best, last.expect("n > 0"))
}

fn shipped_suite_run(dir: &std::path::Path) -> RunResults {
    let out = dir.join("run");
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_mcpscript"))
        .args(["run", "scripts/suite.yaml", "--no-history", "--quiet", "--format", "json", "--out"])
        .arg(&out)
        .status()
        .expect("run the shipped suite");
    assert!(status.success(), "the shipped suite failed: {status}");
    serde_json::from_slice(&std::fs::read(out.join("results.json")).expect("results.json")).expect("parse")
}

fn history(metrics: usize, runs: usize) -> (Vec<HistoryEntry>, HistoryEntry) {
    // A deterministic wobble with a step half way, so the change-point search has work to do.
    let value = |m: usize, r: usize| {
        let base = 10.0 + (m % 17) as f64;
        let noise = ((m * 31 + r * 17) % 23) as f64 / 23.0 - 0.5;
        base * (1.0 + 0.03 * noise) * if r > runs / 2 && m.is_multiple_of(3) { 1.2 } else { 1.0 }
    };
    let entry = |id: String, r: usize| HistoryEntry {
        run_id: id,
        time: String::new(),
        git_commit: None,
        suite: "bench".into(),
        profile: "quick".into(),
        target: "builtin".into(),
        status: Status::Passed,
        regressed: false,
        metrics: (0..metrics)
            .map(|m| HistoryMetric {
                scenario: format!("s{}", m / 50),
                name: format!("metric_{m}"),
                unit: Some("ms".into()),
                better: if m % 2 == 0 { Better::Lower } else { Better::Higher },
                value: value(m, r),
                samples: (0..10).map(|k| value(m, r) * (1.0 + 0.01 * (k as f64 - 4.5))).collect(),
            })
            .collect(),
    };
    let past = (0..runs).map(|r| entry(format!("r{r}"), r)).collect();
    (past, entry("now".into(), runs))
}

fn main() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let run = shipped_suite_run(tmp.path());
    println!(
        "shipped suite run: {} scenarios, {} load phases, results.json {} KB",
        run.scenarios.len(),
        run.scenarios.iter().map(|s| count_phases(&s.root)).sum::<usize>(),
        serde_json::to_vec_pretty(&run).map(|b| b.len() / 1024).unwrap_or(0)
    );
    let out = tmp.path().join("reports");
    for f in Format::ALL {
        let (ms, _) = best_of(5, || report::write(&run, &out, &[f]).expect("write"));
        println!("  {:<6} {ms:>7.2} ms", f.name());
    }
    let (all_ms, w) = best_of(5, || report::write(&run, &out, &Format::ALL).expect("write"));
    println!("all formats ({} files): {all_ms:.2} ms (goal: under 250 ms)", w.files.len());

    let (past, now) = history(1_000, 100);
    let refs: Vec<&HistoryEntry> = past.iter().collect();
    let baseline: Vec<&HistoryEntry> = refs[refs.len() - 5..].to_vec();
    let (ms, c) = best_of(5, || compare(&Baseline::History(baseline.clone()), &now, &refs, None));
    let change_points: usize = c.rows.iter().filter_map(|r| r.analysis.as_ref()).map(|a| a.change_points.len()).sum();
    println!(
        "regression detection: 1,000 metrics x 100-run history, every method: {ms:.2} ms (goal: under 100 ms); {} rows, {} regressions, {change_points} change points",
        c.rows.len(),
        c.regressions.total()
    );
}

fn count_phases(s: &mcpscript::script::results::StageResult) -> usize {
    s.phases.len() + s.stages.iter().map(count_phases).sum::<usize>()
}
