//! Regression detection: the history of runs (`history.jsonl`, append-only), baselines
//! (the last N passing runs of the same suite, profile and target, or a pinned
//! `results.json`), the statistics that judge a metric against its baseline (z score,
//! relative difference, Student-t interval, Mann-Whitney U, Welch's t) and over its history
//! (IQR anomalies, least-squares trend, ARIMA(1,1,0) forecast, E-divisive change points),
//! and the verdict that can fail a build. Every figure is direction-aware and never NaN:
//! a method without enough data says so.

pub mod compare;
pub mod history;
pub mod series;
pub mod stats;

use crate::script::results::Better;
use serde::{Deserialize, Serialize};

/// How bad a regression is. Ordered: `Low < Medium < High < Critical`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    pub const ALL: [Severity; 4] = [Severity::Critical, Severity::High, Severity::Medium, Severity::Low];

    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }

    /// The smallest |z| of this level (inclusive).
    pub fn z_at_least(self) -> f64 {
        match self {
            Severity::Critical => 4.0,
            Severity::High => 3.0,
            Severity::Medium => 2.5,
            Severity::Low => 2.0,
        }
    }

    /// The smallest |relative difference| of this level, in percent (inclusive).
    pub fn diff_pct_at_least(self) -> f64 {
        match self {
            Severity::Critical => 50.0,
            Severity::High => 30.0,
            Severity::Medium => 20.0,
            Severity::Low => 10.0,
        }
    }

    /// The highest level whose z threshold `|z|` reaches.
    pub fn of_z(z: f64) -> Option<Severity> {
        Severity::ALL.into_iter().find(|s| z.abs() >= s.z_at_least())
    }

    /// The highest level whose difference threshold `|diff_pct|` reaches.
    pub fn of_diff(diff_pct: f64) -> Option<Severity> {
        Severity::ALL.into_iter().find(|s| diff_pct.abs() >= s.diff_pct_at_least())
    }
}

impl std::str::FromStr for Severity {
    type Err = String;
    fn from_str(s: &str) -> Result<Severity, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "low" => Ok(Severity::Low),
            "medium" => Ok(Severity::Medium),
            "high" => Ok(Severity::High),
            "critical" => Ok(Severity::Critical),
            other => Err(format!("unknown severity '{other}': expected low, medium, high, critical or none")),
        }
    }
}

/// What the comparison concluded for one metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Moved the wrong way by at least `low`.
    Regression,
    /// Moved the right way by at least `low`.
    Improvement,
    /// Within the noise (or under every level).
    Unchanged,
    /// `better: none`: the change is reported, never judged.
    Informational,
    /// In the current run, not in the baseline.
    New,
    /// In the baseline, not in the current run.
    Missing,
    /// Too few baseline values to judge (the notes say how many there are and how many
    /// are needed).
    Inconclusive,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Regression => "regression",
            Verdict::Improvement => "improvement",
            Verdict::Unchanged => "unchanged",
            Verdict::Informational => "informational",
            Verdict::New => "new",
            Verdict::Missing => "missing",
            Verdict::Inconclusive => "inconclusive",
        }
    }
}

/// A two-sided interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Interval {
    pub low: f64,
    pub high: f64,
    /// 0.95 for a 95% interval.
    pub level: f64,
}

/// A point of the history far outside its quartiles.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Anomaly {
    /// Index into [`MetricComparison::history`] (oldest first).
    pub index: usize,
    pub value: f64,
    /// Beyond the 3 x IQR fence (else beyond 1.5 x IQR).
    pub severe: bool,
}

/// Least-squares trend of the history (per run).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Trend {
    /// Change per run, in the metric's unit.
    pub slope: f64,
    /// Two-sided p-value of slope = 0 (Student t, n - 2 degrees of freedom).
    pub p_value: f64,
    /// Moving average of the history (window in `window`), oldest first.
    pub moving_average: Vec<f64>,
    pub window: usize,
}

/// One-step-ahead forecast of the metric from its history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Forecast {
    /// The model, e.g. `ARIMA(1,1,0)`.
    pub model: String,
    pub value: f64,
    pub interval: Interval,
    /// Whether the current value falls outside the prediction interval.
    pub outside: bool,
}

/// Where the history's level shifts (E-divisive means).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ChangePoint {
    /// The first index of the new segment, into [`MetricComparison::history`].
    pub index: usize,
    /// Mean before and after.
    pub before: f64,
    pub after: f64,
    /// Two-sided p-value of the Student t test between the two segments.
    pub p_value: f64,
}

/// What the history of one metric says beyond the baseline comparison. A method that had
/// too few points leaves its field empty and says so in `notes`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct HistoryAnalysis {
    pub anomalies: Vec<Anomaly>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trend: Option<Trend>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forecast: Option<Forecast>,
    pub change_points: Vec<ChangePoint>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

/// One metric of the current run against its baseline. Every number is finite or absent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct MetricComparison {
    pub scenario: String,
    pub metric: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
    pub better: Better,
    /// Mean of the baseline's values.
    pub baseline: Option<f64>,
    pub baseline_std: Option<f64>,
    /// How many values the baseline holds (runs, or samples of a pinned run).
    pub baseline_n: usize,
    pub current: Option<f64>,
    /// (current - baseline) / |baseline| x 100.
    pub diff_pct: Option<f64>,
    pub z: Option<f64>,
    /// Set for regressions and improvements at `low` or above.
    pub severity: Option<Severity>,
    pub verdict: Verdict,
    /// Student-t interval of the current value from its samples.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_interval: Option<Interval>,
    /// Mann-Whitney U two-sided p-value (both sides at least 4 samples).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mann_whitney_p: Option<f64>,
    /// Welch's t two-sided p-value (both sides at least 2 samples).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub welch_p: Option<f64>,
    /// Why a figure is missing or what the verdict rests on ("too few samples for z",
    /// "baseline has zero variance: judged on the difference alone").
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// The metric's values over the history, oldest first, the current run last.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub analysis: Option<HistoryAnalysis>,
}

impl MetricComparison {
    /// Whether this is a regression at `level` or above.
    pub fn regressed_at(&self, level: Severity) -> bool {
        self.verdict == Verdict::Regression && self.severity.is_some_and(|s| s >= level)
    }
}

/// The current run against its baseline: one row per metric on either side.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Comparison {
    /// What the baseline is: `history: last 5 passing runs of suite mcpscript (profile
    /// quick, target builtin)` or the pinned file's path.
    pub baseline: String,
    /// The runs the baseline holds, oldest first.
    pub baseline_runs: Vec<String>,
    pub rows: Vec<MetricComparison>,
    /// The level that fails the run, if any (`--fail-on`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fail_on: Option<Severity>,
    /// Regressions by level.
    pub regressions: RegressionCounts,
    pub improvements: usize,
    /// Time the statistics took, in milliseconds.
    pub elapsed_ms: f64,
}

/// How many regressions of each level.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct RegressionCounts {
    pub critical: usize,
    pub high: usize,
    pub medium: usize,
    pub low: usize,
}

impl RegressionCounts {
    pub fn total(&self) -> usize {
        self.critical + self.high + self.medium + self.low
    }

    /// Regressions at `level` or above.
    pub fn at_least(&self, level: Severity) -> usize {
        match level {
            Severity::Critical => self.critical,
            Severity::High => self.critical + self.high,
            Severity::Medium => self.critical + self.high + self.medium,
            Severity::Low => self.total(),
        }
    }

    pub fn worst(&self) -> Option<Severity> {
        Severity::ALL.into_iter().find(|s| self.at_least(*s) > 0)
    }
}

impl Comparison {
    /// Whether the run fails on its regressions (`fail_on` set and reached).
    pub fn fails(&self) -> bool {
        self.fail_on.is_some_and(|l| self.regressions.at_least(l) > 0)
    }

    pub fn regressions(&self) -> impl Iterator<Item = &MetricComparison> {
        self.rows.iter().filter(|r| r.verdict == Verdict::Regression)
    }
}
