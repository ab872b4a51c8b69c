//! The regression detector end to end on synthetic runs: direction awareness, severities at
//! their inclusive thresholds, inconclusive and zero-variance baselines, metrics on one side
//! only, and detection accuracy over 1,000 seeded trials (false positives with noise only,
//! detections of a 30% step).

use mcpscript::regress::compare::{compare, Baseline};
use mcpscript::regress::history::{HistoryEntry, HistoryMetric};
use mcpscript::regress::{Severity, Verdict};
use mcpscript::script::results::{Better, Status};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

fn run(id: &str, metrics: &[(&str, Better, f64)]) -> HistoryEntry {
    HistoryEntry {
        run_id: id.into(),
        time: "2026-12-06T00:00:00.000Z".into(),
        git_commit: None,
        suite: "s".into(),
        profile: "quick".into(),
        target: "builtin".into(),
        status: Status::Passed,
        regressed: false,
        metrics: metrics
            .iter()
            .map(|(name, better, value)| HistoryMetric {
                scenario: "sc".into(),
                name: name.to_string(),
                unit: Some("ms".into()),
                better: *better,
                value: *value,
                samples: vec![],
            })
            .collect(),
    }
}

fn baseline_of(values: &[f64], name: &str, better: Better) -> Vec<HistoryEntry> {
    values.iter().enumerate().map(|(i, v)| run(&format!("b{i}"), &[(name, better, *v)])).collect()
}

fn judge(values: &[f64], current: f64, better: Better) -> mcpscript::regress::MetricComparison {
    let base = baseline_of(values, "m", better);
    let refs: Vec<&HistoryEntry> = base.iter().collect();
    let now = run("now", &[("m", better, current)]);
    let c = compare(&Baseline::History(refs.clone()), &now, &refs, Some(Severity::High));
    c.rows.into_iter().next().unwrap()
}

#[test]
fn direction_decides_regression_or_improvement() {
    let base = [100.0, 102.0, 98.0, 101.0, 99.0];
    // Latency up 50%: a regression; throughput up 50%: an improvement.
    let up_lat = judge(&base, 150.0, Better::Lower);
    assert_eq!((up_lat.verdict, up_lat.severity), (Verdict::Regression, Some(Severity::Critical)));
    let up_thr = judge(&base, 150.0, Better::Higher);
    assert_eq!((up_thr.verdict, up_thr.severity), (Verdict::Improvement, Some(Severity::Critical)));
    let down_thr = judge(&base, 60.0, Better::Higher);
    assert_eq!(down_thr.verdict, Verdict::Regression);
    let info = judge(&base, 150.0, Better::None);
    assert_eq!(info.verdict, Verdict::Informational);
    // z and the difference: mean 100, std 1.5811...
    let z = up_lat.z.unwrap();
    assert!((z - 50.0 / 1.5811388300841898).abs() < 1e-9, "{z}");
    assert!((up_lat.diff_pct.unwrap() - 50.0).abs() < 1e-9);
}

#[test]
fn severity_is_the_lower_of_the_z_and_difference_levels_inclusive() {
    // Baseline mean 100, std 10 (values 90, 100, 110): a current of 130 is z = 3.0 (high)
    // and +30% (high): high, both thresholds hit exactly.
    let r = judge(&[90.0, 100.0, 110.0], 130.0, Better::Lower);
    assert_eq!(r.severity, Some(Severity::High), "{r:?}");
    // 125: z 2.5 (medium), +25% (medium).
    assert_eq!(judge(&[90.0, 100.0, 110.0], 125.0, Better::Lower).severity, Some(Severity::Medium));
    // 160: z 6 (critical) but +60% (critical) -> critical; 115: z 1.5 -> nothing.
    assert_eq!(judge(&[90.0, 100.0, 110.0], 160.0, Better::Lower).severity, Some(Severity::Critical));
    let small = judge(&[90.0, 100.0, 110.0], 115.0, Better::Lower);
    assert_eq!((small.severity, small.verdict), (None, Verdict::Unchanged));
    // A wide z but a small difference: std 0.1, +5% -> z 50 but under 10%: unchanged.
    let tight = judge(&[99.9, 100.0, 100.1], 105.0, Better::Lower);
    assert_eq!((tight.severity, tight.verdict), (None, Verdict::Unchanged), "{tight:?}");
}

#[test]
fn too_few_runs_and_zero_variance_are_stated_never_nan() {
    let two = judge(&[100.0, 101.0], 200.0, Better::Lower);
    assert_eq!(two.verdict, Verdict::Inconclusive);
    assert!(two.notes.iter().any(|n| n.contains("too few samples")), "{:?}", two.notes);
    let flat = judge(&[100.0, 100.0, 100.0], 140.0, Better::Lower);
    assert_eq!((flat.verdict, flat.severity), (Verdict::Regression, Some(Severity::High)));
    assert!(flat.z.is_none() && flat.notes.iter().any(|n| n.contains("zero variance")), "{flat:?}");
    let same = judge(&[100.0, 100.0, 100.0], 100.0, Better::Lower);
    assert_eq!(same.verdict, Verdict::Unchanged);
    let zero = judge(&[0.0, 0.0, 0.0], 3.0, Better::Lower);
    assert!(zero.diff_pct.is_none() && zero.notes.iter().any(|n| n.contains("mean is 0")), "{zero:?}");
    let json = serde_json::to_string(&[two, flat, same, zero]).unwrap();
    assert!(!json.contains("NaN") && !json.contains("inf"), "{json}");
}

#[test]
fn metrics_on_one_side_only_are_new_or_missing() {
    let base = baseline_of(&[1.0, 1.0, 1.0], "old", Better::Lower);
    let refs: Vec<&HistoryEntry> = base.iter().collect();
    let now = run("now", &[("fresh", Better::Lower, 5.0)]);
    let c = compare(&Baseline::History(refs), &now, &[], None);
    let by = |n: &str| c.rows.iter().find(|r| r.metric == n).unwrap().verdict;
    assert_eq!((by("fresh"), by("old")), (Verdict::New, Verdict::Missing));
    assert!(!c.fails());
}

#[test]
fn a_pinned_run_is_judged_on_the_difference_or_its_samples() {
    let pinned = run("p", &[("m", Better::Lower, 100.0)]);
    let now = run("now", &[("m", Better::Lower, 135.0)]);
    let c = compare(&Baseline::Pinned(&pinned, "base.json".into()), &now, &[], Some(Severity::High));
    assert_eq!(c.rows[0].severity, Some(Severity::High));
    assert!(c.fails() && c.baseline.contains("base.json"));
    assert!(c.rows[0].notes.iter().any(|n| n.contains("difference alone")));
}

/// Standard normal by Box-Muller.
fn normal(rng: &mut StdRng) -> f64 {
    let u1: f64 = rng.random::<f64>().max(f64::MIN_POSITIVE);
    let u2: f64 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

/// Fraction of `trials` in which a current run `step` away from the baseline's mean (as a
/// fraction) was judged a regression at `low` or above, with noise of coefficient of
/// variation `cv` on every run and a baseline of 5 runs.
fn regression_rate(trials: usize, cv: f64, step: f64, seed: u64) -> f64 {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut hits = 0;
    for _ in 0..trials {
        let values: Vec<f64> = (0..5).map(|_| 100.0 * (1.0 + cv * normal(&mut rng))).collect();
        let current = 100.0 * (1.0 + step) * (1.0 + cv * normal(&mut rng));
        if judge(&values, current, Better::Lower).regressed_at(Severity::Low) {
            hits += 1;
        }
    }
    hits as f64 / trials as f64
}

#[test]
fn detection_accuracy_over_1000_trials() {
    // Noise only: how often a run of the same system is called a regression.
    let fp3 = regression_rate(1000, 0.03, 0.0, 1);
    let fp5 = regression_rate(1000, 0.05, 0.0, 2);
    // A 30% rise in a lower-is-better metric.
    let tp5 = regression_rate(1000, 0.05, 0.30, 3);
    let tp10 = regression_rate(1000, 0.10, 0.30, 4);
    println!(
        "false positives at low (noise only): {:.1}% at 3% CV, {:.1}% at 5% CV; 30% step detected: {:.1}% at 5% CV, {:.1}% at 10% CV",
        fp3 * 100.0,
        fp5 * 100.0,
        tp5 * 100.0,
        tp10 * 100.0
    );
    assert!(fp3 < 0.01, "false positive rate {fp3} at 3% CV");
    assert!(tp5 > 0.98, "detection rate {tp5} at 5% CV");
}
