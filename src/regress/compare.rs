//! A run against its baseline, metric by metric. The baseline is the last N passing runs
//! of the same suite, profile and target from the history, or one pinned run (a
//! `results.json`). For each metric on either side:
//!
//! - z = (current - baseline mean) / baseline standard deviation, and the relative
//!   difference in % of the baseline mean;
//! - severity = the lower of the z level and the difference level (thresholds inclusive);
//!   which way is worse comes from the metric's direction, so a rise in a lower-is-better
//!   metric or a drop in a higher-is-better one is a regression and the opposite an
//!   improvement; `better: none` is reported, never judged;
//! - with fewer than [`MIN_BASELINE_RUNS`] runs from the history there is no verdict
//!   ("inconclusive", with how many there are); a pinned single run or a baseline with
//!   zero variance is judged on the difference alone, and says so;
//! - a Student-t interval of the current value from its samples; Mann-Whitney U and
//!   Welch's t between the two sides' samples;
//! - over the metric's history: IQR anomalies, trend, ARIMA(1,1,0) forecast (a current
//!   value outside its interval is noted) and E-divisive change points.

use super::history::{HistoryEntry, HistoryMetric};
use super::{series, stats, Comparison, HistoryAnalysis, MetricComparison, RegressionCounts, Severity, Trend, Verdict};
use crate::script::results::Better;
use std::collections::HashMap;
use std::time::Instant;

/// History runs needed before a z score is trusted.
pub const MIN_BASELINE_RUNS: usize = 3;
/// Runs a history baseline holds by default.
pub const DEFAULT_BASELINE_RUNS: usize = 5;
/// History points the trend, forecast and change-point methods look at.
pub const HISTORY_WINDOW: usize = 100;
/// Moving-average window over the history.
pub const MOVING_AVERAGE_WINDOW: usize = 5;
/// Confidence of intervals and forecasts.
pub const LEVEL: f64 = 0.95;
/// Largest p-value at which a change point counts.
pub const CHANGE_POINT_P: f64 = 0.01;

/// Where the baseline came from.
pub enum Baseline<'a> {
    /// The last passing runs of the same kind from the history, oldest first.
    History(Vec<&'a HistoryEntry>),
    /// One pinned run (`--baseline results.json`), with its path for the report.
    Pinned(&'a HistoryEntry, String),
}

/// Compares `current` with `baseline`; `series` is the metric history (earlier runs of the
/// same kind, oldest first) the history methods look at.
pub fn compare(
    baseline: &Baseline,
    current: &HistoryEntry,
    series_runs: &[&HistoryEntry],
    fail_on: Option<Severity>,
) -> Comparison {
    let started = Instant::now();
    let (runs, description): (Vec<&HistoryEntry>, String) = match baseline {
        Baseline::History(runs) => (
            runs.clone(),
            format!(
                "history: last {} passing run(s) of {} (profile {}, target {})",
                runs.len(),
                current.suite,
                current.profile,
                current.target
            ),
        ),
        Baseline::Pinned(run, path) => (vec![*run], format!("pinned: {path} (run {})", run.run_id)),
    };
    let pinned = matches!(baseline, Baseline::Pinned(..));
    // Every metric on either side, in the current run's order, then those only in the baseline.
    let mut keys: Vec<(String, String)> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for m in current.metrics.iter().chain(runs.iter().flat_map(|r| r.metrics.iter())) {
        if seen.insert((m.scenario.as_str(), m.name.as_str())) {
            keys.push((m.scenario.clone(), m.name.clone()));
        }
    }
    let base_runs: Vec<Lookup> = runs.iter().map(|r| Lookup::new(r)).collect();
    let history_runs: Vec<Lookup> = series_runs.iter().map(|r| Lookup::new(r)).collect();
    let now = Lookup::new(current);
    let rows: Vec<MetricComparison> = keys
        .iter()
        .enumerate()
        .map(|(i, (scenario, name))| {
            let base: Vec<&HistoryMetric> = base_runs.iter().filter_map(|r| r.get(i, scenario, name)).collect();
            let history: Vec<f64> =
                history_runs.iter().filter_map(|r| r.get(i, scenario, name).map(|m| m.value)).collect();
            compare_metric(scenario, name, &base, now.get(i, scenario, name), pinned, history)
        })
        .collect();
    let mut regressions = RegressionCounts::default();
    let mut improvements = 0;
    for r in &rows {
        match (r.verdict, r.severity) {
            (Verdict::Regression, Some(Severity::Critical)) => regressions.critical += 1,
            (Verdict::Regression, Some(Severity::High)) => regressions.high += 1,
            (Verdict::Regression, Some(Severity::Medium)) => regressions.medium += 1,
            (Verdict::Regression, Some(Severity::Low)) => regressions.low += 1,
            (Verdict::Improvement, _) => improvements += 1,
            _ => {}
        }
    }
    Comparison {
        baseline: description,
        baseline_runs: runs.iter().map(|r| r.run_id.clone()).collect(),
        rows,
        fail_on,
        regressions,
        improvements,
        elapsed_ms: started.elapsed().as_secs_f64() * 1000.0,
    }
}

/// Finds a run's metric by scenario and name. Runs of one suite list their metrics in the
/// same order, so the metric at the asked position is tried first; a map is built only for
/// a run whose order differs.
struct Lookup<'a> {
    run: &'a HistoryEntry,
    map: std::cell::OnceCell<HashMap<(&'a str, &'a str), &'a HistoryMetric>>,
}

impl<'a> Lookup<'a> {
    fn new(run: &'a HistoryEntry) -> Lookup<'a> {
        Lookup { run, map: std::cell::OnceCell::new() }
    }

    fn get(&self, position: usize, scenario: &str, name: &str) -> Option<&'a HistoryMetric> {
        if let Some(m) = self.run.metrics.get(position).filter(|m| m.name == name && m.scenario == scenario) {
            return Some(m);
        }
        let map = self
            .map
            .get_or_init(|| self.run.metrics.iter().map(|m| ((m.scenario.as_str(), m.name.as_str()), m)).collect());
        map.get(&(scenario, name)).copied()
    }
}

/// One metric: the baseline's values (one per run), the current value, the history.
fn compare_metric(
    scenario: &str,
    name: &str,
    base: &[&HistoryMetric],
    current: Option<&HistoryMetric>,
    pinned: bool,
    mut history: Vec<f64>,
) -> MetricComparison {
    let any = current.or(base.last().copied());
    let better = any.map(|m| m.better).unwrap_or(Better::None);
    let values: Vec<f64> = base.iter().map(|m| m.value).collect();
    let base_samples: Vec<f64> = base.iter().flat_map(|m| m.samples.iter().copied()).collect();
    let mut row = MetricComparison {
        scenario: scenario.to_string(),
        metric: name.to_string(),
        unit: any.and_then(|m| m.unit.clone()),
        better,
        baseline: stats::mean(&values),
        baseline_std: stats::std_dev(&values),
        baseline_n: values.len(),
        current: current.map(|m| m.value),
        diff_pct: None,
        z: None,
        severity: None,
        verdict: Verdict::Unchanged,
        current_interval: None,
        mann_whitney_p: None,
        welch_p: None,
        notes: Vec::new(),
        history: Vec::new(),
        analysis: None,
    };
    let Some(cur) = current else {
        row.verdict = Verdict::Missing;
        row.notes.push("in the baseline, not in this run".into());
        return row;
    };
    let cur_samples = &cur.samples;
    row.current_interval = stats::t_interval(cur_samples, LEVEL);
    history.push(cur.value);
    row.analysis = Some(analyse(&history, cur.value));
    row.history = history;
    let Some(mean) = row.baseline else {
        row.verdict = Verdict::New;
        row.notes.push("new: not in the baseline".into());
        return row;
    };
    row.mann_whitney_p = stats::mann_whitney_p(&base_samples, cur_samples);
    row.welch_p = stats::welch_p(&base_samples, cur_samples);
    let diff = cur.value - mean;
    row.diff_pct = if mean != 0.0 {
        Some(diff / mean.abs() * 100.0)
    } else if diff == 0.0 {
        Some(0.0)
    } else {
        row.notes.push("baseline mean is 0: no relative difference".into());
        None
    };
    let std = row.baseline_std.unwrap_or(0.0);
    // The level the z score reaches; None when z says nothing either way.
    let z_level: Option<Option<Severity>> = if values.len() < MIN_BASELINE_RUNS && !pinned {
        row.notes.push(format!(
            "too few samples: {} baseline run(s), {MIN_BASELINE_RUNS} needed for a verdict",
            values.len()
        ));
        row.verdict = Verdict::Inconclusive;
        return row;
    } else if pinned && values.len() == 1 {
        match stats::std_dev(&base_samples).filter(|s| *s > 0.0 && base_samples.len() >= MIN_BASELINE_RUNS) {
            Some(s) => {
                row.z = Some(diff / s);
                row.notes.push(format!("z from the spread of the pinned run's {} samples", base_samples.len()));
                Some(Severity::of_z(diff / s))
            }
            None => {
                row.notes.push("one baseline run without samples: judged on the difference alone".into());
                None
            }
        }
    } else if std > 0.0 {
        row.z = Some(diff / std);
        Some(Severity::of_z(diff / std))
    } else {
        row.notes.push("baseline has zero variance: judged on the difference alone".into());
        None
    };
    let diff_level = row.diff_pct.and_then(Severity::of_diff);
    let level = match z_level {
        Some(z) => z.min(diff_level),
        None => diff_level,
    };
    let worse = match better {
        Better::Higher => diff < 0.0,
        Better::Lower => diff > 0.0,
        Better::None => {
            row.verdict = Verdict::Informational;
            return row;
        }
    };
    (row.severity, row.verdict) = match level {
        None => (None, Verdict::Unchanged),
        Some(l) if worse => (Some(l), Verdict::Regression),
        Some(l) => (Some(l), Verdict::Improvement),
    };
    row
}

/// The history methods over `series` (earlier runs then the current value, oldest first).
fn analyse(series_with_current: &[f64], current: f64) -> HistoryAnalysis {
    let tail = &series_with_current[series_with_current.len().saturating_sub(HISTORY_WINDOW)..];
    let earlier = &tail[..tail.len() - 1];
    let mut a = HistoryAnalysis { anomalies: stats::iqr_anomalies(tail), ..HistoryAnalysis::default() };
    if tail.len() < 4 {
        a.notes.push(format!("too few samples for anomalies: {} run(s), 4 needed", tail.len()));
    }
    match stats::ols_trend(tail) {
        Some((slope, p_value)) => {
            a.trend = Some(Trend {
                slope,
                p_value,
                moving_average: stats::moving_average(tail, MOVING_AVERAGE_WINDOW),
                window: MOVING_AVERAGE_WINDOW,
            })
        }
        None => a.notes.push(format!("too few samples for a trend: {} run(s), 3 needed", tail.len())),
    }
    match series::arima110_forecast(earlier, LEVEL) {
        Some((value, interval)) => {
            a.forecast = Some(super::Forecast {
                model: "ARIMA(1,1,0)".into(),
                value,
                interval,
                outside: current < interval.low || current > interval.high,
            })
        }
        None => a.notes.push(format!("too few samples for a forecast: {} earlier run(s), 5 needed", earlier.len())),
    }
    if tail.len() < 6 {
        a.notes.push(format!("too few samples for change points: {} run(s), 6 needed", tail.len()));
    }
    a.change_points = series::e_divisive(tail, CHANGE_POINT_P);
    // Indexes refer to `history` (whose tail this is).
    let offset = series_with_current.len() - tail.len();
    a.anomalies.iter_mut().for_each(|x| x.index += offset);
    a.change_points.iter_mut().for_each(|c| c.index += offset);
    a
}
