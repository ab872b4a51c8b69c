//! The result tree as serde types: a run holds scenarios, a scenario is a
//! root [`StageResult`] with the script's error, parameters and log; stages nest; every
//! node carries its status, timing, assertion counts (its own plus its children's),
//! aggregated checks and exported metrics. The run's `summary` block counts scenarios as
//! tests and checks as assertions. `results.json` is written atomically (temp file in the
//! same folder, fsync, rename), so a reader never sees half a file.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

/// Identifies the format of `results.json`.
pub const SCHEMA: &str = "mcpscript.results/2";

/// The version of `results.json`'s format, also in [`SCHEMA`]; `reports/schema/results.schema.json`
/// describes it. Readers refuse other versions with a clear message.
pub const SCHEMA_VERSION: u32 = 2;

/// How a scenario or stage ended. A closed set: reports switch on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Passed,
    Failed,
    Skipped,
    Timeout,
    Cancelled,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Passed => "passed",
            Status::Failed => "failed",
            Status::Skipped => "skipped",
            Status::Timeout => "timeout",
            Status::Cancelled => "cancelled",
        }
    }
}

/// Passed and failed assertion counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Assertions {
    pub passed: u64,
    pub failed: u64,
}

impl Assertions {
    pub fn add(&mut self, other: Assertions) {
        self.passed += other.passed;
        self.failed += other.failed;
    }

    pub fn total(&self) -> u64 {
        self.passed + self.failed
    }
}

/// What recorded an assertion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum CheckKind {
    /// `check(cond, message)`.
    Check,
    /// `threshold(result, expr)`.
    Threshold,
    /// `fail(message)`.
    Fail,
}

/// One failing occurrence of a check, kept for the report (the first few per check).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct CheckFailure {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
    /// Milliseconds since the scenario started.
    pub at_ms: f64,
}

/// A check aggregated by name within one stage: a check in a loop is one entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct CheckResult {
    pub name: String,
    pub kind: CheckKind,
    pub passed: u64,
    pub failed: u64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failures: Vec<CheckFailure>,
}

/// Which way a metric should move.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Better {
    Higher,
    Lower,
    /// Informational: changes are reported, never judged.
    None,
}

/// A named metric exported for reports and regression detection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct MetricResult {
    pub name: String,
    pub value: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
    pub better: Better,
    /// Path of the stage that exported it (`load/ramp`), empty at the top level.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub stage: String,
    /// Repeated measurements behind `value` (per-second values, per-round timings), which
    /// give the current value a confidence interval and a rank test against the baseline.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub samples: Vec<f64>,
}

/// A node of the tree: the scenario itself or a stage within it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct StageResult {
    pub name: String,
    pub status: Status,
    /// Milliseconds from the scenario's start to this node's start.
    pub started_ms: f64,
    pub duration_ms: f64,
    /// This node's assertions plus all of its descendants'.
    pub assertions: Assertions,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub checks: Vec<CheckResult>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub metrics: Vec<MetricResult>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stages: Vec<StageResult>,
    /// Load phases run in this stage (`load::closed(...)`...), histograms included, so
    /// `mcpscript merge` can combine segments exactly.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub phases: Vec<crate::load::PhaseResult>,
    /// Why the stage ended with an error (the script error passing through it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A frame of a script's call stack, innermost first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Frame {
    /// `fn 'name'`, `closure`, `stage 'name'` or `import "module"`.
    pub function: String,
    /// Where the call was made.
    pub file: String,
    pub line: Option<usize>,
    pub column: Option<usize>,
}

/// What ended a script early.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ScriptErrorKind {
    /// A runtime error in the script or a host function.
    Runtime,
    /// `fail(message)`.
    Fail,
    /// An operation, size or depth limit.
    Limit,
    Timeout,
    Cancelled,
    /// Bad input: a `--set` value of the wrong type, a missing required parameter, or a
    /// malformed argument or option of a host function (exit 2).
    Param,
}

/// The error that ended a script, with position and stack.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ErrorReport {
    pub kind: ScriptErrorKind,
    pub message: String,
    pub file: String,
    pub line: Option<usize>,
    pub column: Option<usize>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stack: Vec<Frame>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

/// A line the script logged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct LogLine {
    pub at_ms: f64,
    pub message: String,
}

/// One script's outcome.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ScenarioResult {
    pub file: String,
    /// Wall-clock start, RFC 3339 UTC.
    pub started_at: String,
    #[serde(flatten)]
    pub root: StageResult,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorReport>,
    /// Every parameter the script read, with the value it got.
    #[serde(default)]
    pub params: BTreeMap<String, Value>,
    pub seed: u64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub logs: Vec<LogLine>,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub logs_dropped: u64,
    /// In a suite: where and when the scenario ran, and why it did not when it did not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<ScheduleInfo>,
    /// What the script's own sessions exercised (load phases count theirs in `phases`).
    #[serde(default, skip_serializing_if = "Coverage::is_empty")]
    pub coverage: Coverage,
}

/// A suite scenario's place in the run. Times are milliseconds since the suite started.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ScheduleInfo {
    pub manifest: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub depends_on: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// 0 for no dependencies, else one more than the deepest dependency.
    pub level: usize,
    pub connections: u64,
    pub exclusive: bool,
    pub timeout_ms: f64,
    /// The worker slot that ran it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker: Option<usize>,
    /// When its last dependency passed (the suite's start for none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deps_met_ms: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_ms: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_ms: Option<f64>,
    /// From dependencies met to start: waiting for a worker or resources, plus dispatch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduling_latency_ms: Option<f64>,
    /// The coordinator's own time deciding to start it (microseconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduling_overhead_us: Option<f64>,
    /// Folding its result into the suite's (statuses, dependents, metrics), microseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aggregation_us: Option<f64>,
    /// Why it was skipped or not started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// A suite run: the root of the result tree, with the orchestrator's own overhead.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct SuiteInfo {
    pub name: String,
    pub file: String,
    pub profile: String,
    pub parallelism: usize,
    pub connection_budget: u64,
    pub overhead: Overhead,
}

/// What running the suite cost beyond the scenarios themselves: start-up, scheduling,
/// aggregation, parallel efficiency, critical path.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Overhead {
    /// From the process start (or the command's) to the first scenario's dispatch:
    /// parsing, graph, compiling, servers.
    pub startup_ms: f64,
    pub parse_ms: f64,
    pub compile_ms: f64,
    /// From the first dispatch to the last scenario's end.
    pub wall_ms: f64,
    /// Sum of the scenarios' run times.
    pub busy_ms: f64,
    /// busy / (wall x workers).
    pub parallel_efficiency: f64,
    pub scheduling_latency_ms_mean: f64,
    pub scheduling_latency_ms_max: f64,
    pub scheduling_overhead_us_mean: f64,
    pub aggregation_us_mean: f64,
    /// The longest chain of dependencies by actual run time, first to last.
    pub critical_path: Vec<String>,
    pub critical_path_ms: f64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl ScenarioResult {
    /// A scenario that did not run (skipped, or cancelled before it started), with why.
    pub fn not_run(name: &str, file: &str, status: Status, reason: &str) -> ScenarioResult {
        ScenarioResult {
            file: file.to_string(),
            started_at: String::new(),
            root: StageResult {
                name: name.to_string(),
                status,
                started_ms: 0.0,
                duration_ms: 0.0,
                assertions: Assertions::default(),
                checks: vec![],
                metrics: vec![],
                stages: vec![],
                phases: vec![],
                error: Some(reason.to_string()),
            },
            error: None,
            params: BTreeMap::new(),
            seed: 0,
            logs: vec![],
            logs_dropped: 0,
            schedule: None,
            coverage: Coverage::default(),
        }
    }

    pub fn status(&self) -> Status {
        self.root.status
    }

    /// Why it did not pass: the script's error, else (skipped, not run) the reason given.
    pub fn why(&self) -> Option<&str> {
        match &self.error {
            Some(e) => Some(&e.message),
            None if self.root.status != Status::Passed => self.root.error.as_deref(),
            None => None,
        }
    }

    /// Every metric of the tree, depth first.
    pub fn all_metrics(&self) -> Vec<&MetricResult> {
        fn walk<'a>(n: &'a StageResult, out: &mut Vec<&'a MetricResult>) {
            out.extend(n.metrics.iter());
            n.stages.iter().for_each(|c| walk(c, out));
        }
        let mut out = Vec::new();
        walk(&self.root, &mut out);
        out
    }
}

/// The run's headline numbers. Tests are scenarios; assertions are checks,
/// thresholds and `fail` calls. Rates are 1.0 when there is nothing to count.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Summary {
    pub total_tests: u64,
    pub passed_tests: u64,
    /// Failed, timed out or cancelled.
    pub failed_tests: u64,
    pub skipped_tests: u64,
    pub pass_rate: f64,
    pub total_assertions: u64,
    pub passed_assertions: u64,
    pub failed_assertions: u64,
    pub assertion_pass_rate: f64,
}

impl Summary {
    pub fn of(scenarios: &[ScenarioResult]) -> Summary {
        let count = |s: Status| scenarios.iter().filter(|r| r.status() == s).count() as u64;
        let total = scenarios.len() as u64;
        let passed = count(Status::Passed);
        let skipped = count(Status::Skipped);
        let mut a = Assertions::default();
        scenarios.iter().for_each(|s| a.add(s.root.assertions));
        let rate = |n: u64, d: u64| if d == 0 { 1.0 } else { n as f64 / d as f64 };
        Summary {
            total_tests: total,
            passed_tests: passed,
            failed_tests: total - passed - skipped,
            skipped_tests: skipped,
            pass_rate: rate(passed, total - skipped),
            total_assertions: a.total(),
            passed_assertions: a.passed,
            failed_assertions: a.failed,
            assertion_pass_rate: rate(a.passed, a.total()),
        }
    }
}

/// A metric of the run, flattened for the regression detector.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct RunMetric {
    pub scenario: String,
    #[serde(flatten)]
    pub metric: MetricResult,
}

/// How [`Coverage`] names requests of methods outside the protocol.
pub const NOT_MCP: &str = "(not MCP)";

/// What the run exercised: MCP methods (requests made, by method), transports (URL
/// schemes) and the classes of error it met (`rpc_-32601`, `timeout`, `http_503`...), counted.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Coverage {
    pub methods: BTreeMap<String, u64>,
    pub transports: std::collections::BTreeSet<String>,
    pub error_classes: BTreeMap<String, u64>,
}

impl Coverage {
    pub fn is_empty(&self) -> bool {
        self.methods.is_empty() && self.transports.is_empty() && self.error_classes.is_empty()
    }

    /// Counts `n` requests of `method`, of which the errors by class are in `errors`.
    /// Methods outside the protocol (a test of `-32601`) count together as `(not MCP)`.
    pub fn add_requests(&mut self, method: &str, n: u64, errors: &BTreeMap<String, u64>) {
        if n > 0 {
            let known = crate::protocol::mcp::methods::CLIENT_REQUESTS.contains(&method);
            let key = if known { method } else { NOT_MCP };
            *self.methods.entry(key.to_string()).or_default() += n;
        }
        for (class, k) in errors.iter().filter(|(_, k)| **k > 0) {
            *self.error_classes.entry(class.clone()).or_default() += k;
        }
    }

    /// The transport of a target URL (`tcp`, `http`, `sse+http`, `ws`, `stdio`).
    pub fn add_transport(&mut self, target: &str) {
        let scheme = target.split_once(':').map(|(s, _)| s).unwrap_or(target);
        if !scheme.is_empty() {
            self.transports.insert(scheme.to_string());
        }
    }

    pub fn add(&mut self, o: &Coverage) {
        for (m, n) in &o.methods {
            *self.methods.entry(m.clone()).or_default() += n;
        }
        self.transports.extend(o.transports.iter().cloned());
        for (c, n) in &o.error_classes {
            *self.error_classes.entry(c.clone()).or_default() += n;
        }
    }

    /// The coverage of a run: its scripts' sessions plus every load phase (requests by
    /// method, connects as `initialize`, errors by class, timeouts as `timeout`).
    pub fn of(scenarios: &[ScenarioResult]) -> Coverage {
        fn walk(n: &StageResult, c: &mut Coverage) {
            for p in &n.phases {
                c.add_transport(&p.target);
                // A connect phase's requests are its connects, counted below.
                let requests = p.per_kind.iter().filter(|_| p.model != crate::load::ModelKind::Connect);
                for (label, k) in requests {
                    let method = p.methods.get(label).map(String::as_str).unwrap_or(label);
                    let mut errors = k.counts.errors.clone();
                    if k.counts.timeouts > 0 {
                        *errors.entry("timeout".into()).or_default() += k.counts.timeouts;
                    }
                    c.add_requests(method, k.counts.sent, &errors);
                }
                c.add_requests("initialize", p.connect.attempted, &p.connect.errors);
            }
            n.stages.iter().for_each(|s| walk(s, c));
        }
        let mut c = Coverage::default();
        for s in scenarios {
            c.add(&s.coverage);
            walk(&s.root, &mut c);
        }
        c
    }
}

/// The whole record: `results.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct RunResults {
    pub schema: String,
    pub schema_version: u32,
    pub run_id: String,
    pub mcpscript_version: String,
    pub started_at: String,
    pub finished_at: String,
    pub duration_ms: f64,
    pub status: Status,
    pub target: String,
    pub summary: Summary,
    pub scenarios: Vec<ScenarioResult>,
    pub metrics: Vec<RunMetric>,
    /// Present when the run was a suite.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suite: Option<SuiteInfo>,
    /// The orchestrator's own overhead (a suite run's; absent for a single script).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub framework: Option<Overhead>,
    #[serde(default)]
    pub coverage: Coverage,
    /// The run against its baseline, when one was found.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regression: Option<crate::regress::Comparison>,
}

impl RunResults {
    /// Assembles the record; the run's status is the worst of its scenarios'.
    pub fn new(run_id: String, target: String, started: SystemTime, scenarios: Vec<ScenarioResult>) -> RunResults {
        let finished = SystemTime::now();
        let status = overall_status(scenarios.iter().map(ScenarioResult::status));
        let coverage = Coverage::of(&scenarios);
        let metrics = scenarios
            .iter()
            .flat_map(|s| {
                s.all_metrics().into_iter().map(|m| RunMetric { scenario: s.root.name.clone(), metric: m.clone() })
            })
            .collect();
        RunResults {
            schema: SCHEMA.to_string(),
            schema_version: SCHEMA_VERSION,
            run_id,
            mcpscript_version: env!("CARGO_PKG_VERSION").to_string(),
            started_at: rfc3339(started),
            finished_at: rfc3339(finished),
            duration_ms: finished.duration_since(started).unwrap_or_default().as_secs_f64() * 1000.0,
            status,
            target,
            summary: Summary::of(&scenarios),
            scenarios,
            metrics,
            suite: None,
            framework: None,
            coverage,
            regression: None,
        }
    }

    /// Writes `results.json` into `dir` (created if needed) atomically; returns its path.
    pub fn write_to(&self, dir: &Path) -> std::io::Result<std::path::PathBuf> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join("results.json");
        let mut bytes = serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?;
        bytes.push(b'\n');
        write_atomic(&path, &bytes)?;
        Ok(path)
    }
}

/// Cancelled beats timeout beats failed beats passed; skipped only when all were skipped.
pub fn overall_status(statuses: impl Iterator<Item = Status>) -> Status {
    let rank = |s: Status| match s {
        Status::Skipped => 0,
        Status::Passed => 1,
        Status::Failed => 2,
        Status::Timeout => 3,
        Status::Cancelled => 4,
    };
    statuses.max_by_key(|s| rank(*s)).unwrap_or(Status::Passed)
}

/// Writes `bytes` to `path` so that readers see the old file or the new one, never a mix:
/// a temp file in the same folder, fsync, rename, fsync of the folder.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("out");
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// A run id: UTC timestamp plus 4 random hex digits, `20261127-203000-3fa9`.
pub fn new_run_id() -> String {
    let (y, mo, d, h, mi, s, _) = civil(SystemTime::now());
    format!("{y:04}{mo:02}{d:02}-{h:02}{mi:02}{s:02}-{:04x}", rand::random::<u16>())
}

/// `2026-11-27T20:30:00.123Z`.
pub fn rfc3339(t: SystemTime) -> String {
    let (y, mo, d, h, mi, s, ms) = civil(t);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{ms:03}Z")
}

/// UTC calendar fields of `t` (Howard Hinnant's days-to-civil algorithm).
fn civil(t: SystemTime) -> (i64, u32, u32, u32, u32, u32, u32) {
    let since = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d, (rem / 3600) as u32, (rem % 3600 / 60) as u32, (rem % 60) as u32, since.subsec_millis())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn scenario(status: Status, passed: u64, failed: u64) -> ScenarioResult {
        ScenarioResult {
            file: "x.rhai".into(),
            started_at: String::new(),
            root: StageResult {
                name: "x".into(),
                status,
                started_ms: 0.0,
                duration_ms: 1.0,
                assertions: Assertions { passed, failed },
                checks: vec![],
                metrics: vec![],
                stages: vec![],
                phases: vec![],
                error: None,
            },
            error: None,
            params: BTreeMap::new(),
            seed: 1,
            logs: vec![],
            logs_dropped: 0,
            schedule: None,
            coverage: Coverage::default(),
        }
    }

    #[test]
    fn summary_counts_tests_and_assertions() {
        let s = Summary::of(&[
            scenario(Status::Passed, 3, 0),
            scenario(Status::Failed, 1, 1),
            scenario(Status::Skipped, 0, 0),
        ]);
        assert_eq!((s.total_tests, s.passed_tests, s.failed_tests, s.skipped_tests), (3, 1, 1, 1));
        assert_eq!(s.pass_rate, 0.5);
        assert_eq!((s.total_assertions, s.passed_assertions, s.failed_assertions), (5, 4, 1));
        assert_eq!(s.assertion_pass_rate, 0.8);
        assert_eq!(Summary::of(&[]).pass_rate, 1.0);
    }

    #[test]
    fn coverage_counts_methods_transports_and_error_classes() {
        use crate::load::result::{Counts, KindResult, PhaseResult};
        use crate::load::ModelKind;
        let kind = |sent: u64, errors: &[(&str, u64)], timeouts: u64| KindResult {
            counts: Counts {
                sent,
                errors: errors.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
                timeouts,
                ..Counts::default()
            },
            ..KindResult::default()
        };
        let mut load =
            PhaseResult { model: ModelKind::Closed, target: "http://127.0.0.1:1/mcp".into(), ..Default::default() };
        load.per_kind.insert("echo".into(), kind(10, &[("rpc_-32000", 2)], 1));
        load.per_kind.insert("ping".into(), kind(5, &[], 0));
        load.methods = [("echo".into(), "tools/call".into()), ("ping".into(), "ping".into())].into();
        load.connect.attempted = 4;
        let mut connect =
            PhaseResult { model: ModelKind::Connect, target: "tcp://127.0.0.1:2".into(), ..Default::default() };
        connect.per_kind.insert("connect".into(), kind(7, &[], 0));
        connect.connect.attempted = 7;
        connect.connect.errors = [("transport".to_string(), 1)].into();
        let mut s = scenario(Status::Passed, 0, 0);
        s.root.phases = vec![load, connect];
        s.coverage.add_requests("no/such/method", 3, &[("rpc_-32601".to_string(), 3)].into());
        s.coverage.add_transport("ws://127.0.0.1:3/ws");
        let c = Coverage::of(&[s]);
        let m = |k: &str| c.methods.get(k).copied().unwrap_or(0);
        assert_eq!((m("tools/call"), m("ping"), m("initialize"), m(NOT_MCP), m("connect")), (10, 5, 11, 3, 0));
        assert_eq!(c.transports.iter().map(String::as_str).collect::<Vec<_>>(), ["http", "tcp", "ws"]);
        let e = |k: &str| c.error_classes.get(k).copied().unwrap_or(0);
        assert_eq!((e("rpc_-32000"), e("timeout"), e("transport"), e("rpc_-32601")), (2, 1, 1, 3));
    }

    #[test]
    fn formats_times_in_utc() {
        let t = UNIX_EPOCH + Duration::from_millis(1_795_811_400_123); // 2026-11-27T20:30:00.123Z
        assert_eq!(rfc3339(t), "2026-11-27T20:30:00.123Z");
        assert_eq!(rfc3339(UNIX_EPOCH + Duration::from_secs(951_782_400)), "2000-02-29T00:00:00.000Z");
        let id = new_run_id();
        assert_eq!(id.len(), 20, "{id}");
        assert!(id.chars().nth(8) == Some('-') && id.chars().nth(15) == Some('-'), "{id}");
    }

    #[test]
    fn writes_atomically_and_reads_back() {
        let dir = std::env::temp_dir().join(format!("mcpscript-results-{}", std::process::id()));
        let r = RunResults::new("id".into(), "builtin".into(), SystemTime::now(), vec![scenario(Status::Passed, 1, 0)]);
        let path = r.write_to(&dir).unwrap();
        let back: RunResults = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(back.summary, r.summary);
        assert_eq!(back.scenarios[0].root.name, "x");
        assert!(std::fs::read_dir(&dir).unwrap().all(|e| !e.unwrap().file_name().to_string_lossy().contains(".tmp-")));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
