//! Builds one scenario's result tree while its script runs: a stack of open stages,
//! checks aggregated by name within each stage, metrics, log lines and the parameters the
//! script read. Bindings write here; the runner turns it into a [`ScenarioResult`].

use super::results::{
    Assertions, Better, CheckFailure, CheckKind, CheckResult, ErrorReport, LogLine, MetricResult, ScenarioResult,
    StageResult, Status,
};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::time::{Instant, SystemTime};

/// Distinct check names kept per stage; further names count under one overflow entry.
const MAX_CHECK_NAMES: usize = 500;
/// Failing occurrences kept per check.
const MAX_FAILURES_KEPT: usize = 5;
/// Log lines kept in the result.
const MAX_LOG_LINES: usize = 1000;
const OVERFLOW_CHECK: &str = "(other checks: too many distinct names)";

struct OpenStage {
    name: String,
    started: Instant,
    started_ms: f64,
    checks: Vec<CheckResult>,
    index: HashMap<String, usize>,
    metrics: Vec<MetricResult>,
    children: Vec<StageResult>,
    phases: Vec<crate::load::PhaseResult>,
    own: Assertions,
}

impl OpenStage {
    fn new(name: String, started_ms: f64) -> OpenStage {
        OpenStage {
            name,
            started: Instant::now(),
            started_ms,
            checks: Vec::new(),
            index: HashMap::new(),
            metrics: Vec::new(),
            children: Vec::new(),
            phases: Vec::new(),
            own: Assertions::default(),
        }
    }

    fn close(self, error: Option<String>, stopped: Option<Status>) -> StageResult {
        let mut total = self.own;
        self.children.iter().for_each(|c| total.add(c.assertions));
        let status = match stopped {
            Some(Status::Skipped) if total.failed > 0 => Status::Failed,
            Some(s) => s,
            None if error.is_some() || total.failed > 0 => Status::Failed,
            None => Status::Passed,
        };
        StageResult {
            name: self.name,
            status,
            started_ms: self.started_ms,
            duration_ms: self.started.elapsed().as_secs_f64() * 1000.0,
            assertions: total,
            checks: self.checks,
            metrics: self.metrics,
            stages: self.children,
            phases: self.phases,
            error,
        }
    }
}

/// Where a check was made.
#[derive(Debug, Clone, Default)]
pub struct Site {
    pub file: Option<String>,
    pub line: Option<usize>,
}

pub struct Recorder {
    started: Instant,
    started_wall: SystemTime,
    stack: Vec<OpenStage>,
    metric_names: HashMap<String, String>,
    logs: Vec<LogLine>,
    logs_dropped: u64,
    params: BTreeMap<String, Value>,
    /// The message of a `fail()` call, if the script made one.
    failed_with: Option<String>,
    /// The reason given to `skip(reason)`, which ended the script.
    skipped: Option<String>,
    /// The message of the last bad input: a parameter error (wrong `--set` type, missing
    /// required parameter) or a bad argument or option of a host function.
    bad_input: Option<String>,
    /// What the script's own sessions exercised.
    coverage: super::results::Coverage,
}

impl Recorder {
    pub fn new(scenario: &str) -> Recorder {
        Recorder {
            started: Instant::now(),
            started_wall: SystemTime::now(),
            stack: vec![OpenStage::new(scenario.to_string(), 0.0)],
            metric_names: HashMap::new(),
            logs: Vec::new(),
            logs_dropped: 0,
            params: BTreeMap::new(),
            failed_with: None,
            skipped: None,
            bad_input: None,
            coverage: Default::default(),
        }
    }

    /// Milliseconds since the scenario started.
    pub fn now_ms(&self) -> f64 {
        self.started.elapsed().as_secs_f64() * 1000.0
    }

    fn top(&mut self) -> &mut OpenStage {
        // The root stage is never popped, so the stack is never empty.
        let last = self.stack.len() - 1;
        &mut self.stack[last]
    }

    /// Counts one assertion in the current stage.
    pub fn assert(&mut self, kind: CheckKind, name: &str, passed: bool, detail: Option<String>, site: Site) {
        let at_ms = self.now_ms();
        let top = self.top();
        if passed {
            top.own.passed += 1;
        } else {
            top.own.failed += 1;
        }
        let idx = match top.index.get(name) {
            Some(&i) => i,
            None => {
                let key = if top.checks.len() >= MAX_CHECK_NAMES { OVERFLOW_CHECK } else { name };
                match top.index.get(key) {
                    Some(&i) => i,
                    None => {
                        top.checks.push(CheckResult {
                            name: key.to_string(),
                            kind,
                            passed: 0,
                            failed: 0,
                            failures: Vec::new(),
                        });
                        top.index.insert(key.to_string(), top.checks.len() - 1);
                        top.checks.len() - 1
                    }
                }
            }
        };
        let entry = &mut top.checks[idx];
        if passed {
            entry.passed += 1;
        } else {
            entry.failed += 1;
            if entry.failures.len() < MAX_FAILURES_KEPT {
                entry.failures.push(CheckFailure { detail, file: site.file, line: site.line, at_ms });
            }
        }
    }

    /// Records `fail(message)`: a failed assertion, remembered as the reason the script ended.
    pub fn fail(&mut self, message: &str, site: Site) {
        self.assert(CheckKind::Fail, message, false, None, site);
        self.failed_with.get_or_insert_with(|| message.to_string());
    }

    pub fn failed_with(&self) -> Option<&str> {
        self.failed_with.as_deref()
    }

    /// Notes that the script ended itself with `skip(reason)`.
    pub fn skip(&mut self, reason: &str) {
        self.skipped.get_or_insert_with(|| reason.to_string());
    }

    pub fn skipped(&self) -> Option<&str> {
        self.skipped.as_deref()
    }

    /// Notes bad input (a parameter error, a bad argument or option), so that the script
    /// error with this message exits as "bad input" (2). The last one counts: one a script
    /// caught with `try`/`catch` does not make a later, different error bad input.
    pub fn bad_input(&mut self, message: &str) {
        self.bad_input = Some(message.to_string());
    }

    /// The message of the last bad input.
    pub fn bad_input_message(&self) -> Option<&str> {
        self.bad_input.as_deref()
    }

    /// Exports a metric from the current stage; a name may be exported once per scenario.
    pub fn metric(
        &mut self,
        name: &str,
        value: f64,
        unit: Option<String>,
        better: Better,
        samples: Vec<f64>,
        site: &str,
    ) -> Result<(), String> {
        if let Some(first) = self.metric_names.get(name) {
            return Err(format!(
                "metric '{name}' was already exported at {first}; metric names are unique per scenario (put the stage in the name, e.g. '{name}_warm')"
            ));
        }
        let stage = self.stage_path().unwrap_or_default();
        self.metric_names.insert(name.to_string(), site.to_string());
        self.top().metrics.push(MetricResult { name: name.to_string(), value, unit, better, stage, samples });
        Ok(())
    }

    /// Counts one request of the script's sessions (and its error class when it failed).
    pub fn cover(&mut self, method: &str, error: Option<String>) {
        let errors = error.map(|e| BTreeMap::from([(e, 1)])).unwrap_or_default();
        self.coverage.add_requests(method, 1, &errors);
    }

    /// Notes the transport of a session the script opened.
    pub fn cover_transport(&mut self, target: &str) {
        self.coverage.add_transport(target);
    }

    /// Keeps a load phase's result in the current stage.
    pub fn phase(&mut self, result: crate::load::PhaseResult) {
        self.top().phases.push(result);
    }

    /// The open stages below the scenario, `outer/inner`; None at the top level.
    pub fn stage_path(&self) -> Option<String> {
        (self.stack.len() > 1).then(|| self.stack.iter().skip(1).map(|s| s.name.as_str()).collect::<Vec<_>>().join("/"))
    }

    pub fn enter(&mut self, name: &str) {
        let at = self.now_ms();
        self.stack.push(OpenStage::new(name.to_string(), at));
    }

    /// Closes the innermost stage. `error` is the error leaving it; `stopped` marks it
    /// timed out or cancelled.
    pub fn leave(&mut self, error: Option<String>, stopped: Option<Status>) -> Status {
        if self.stack.len() <= 1 {
            return Status::Passed;
        }
        let done = self.stack.pop().map(|s| s.close(error, stopped));
        match done {
            Some(d) => {
                let status = d.status;
                self.top().children.push(d);
                status
            }
            None => Status::Passed,
        }
    }

    pub fn depth(&self) -> usize {
        self.stack.len() - 1
    }

    /// Keeps a log line for the result (the first [`MAX_LOG_LINES`]).
    pub fn log(&mut self, message: &str) {
        if self.logs.len() < MAX_LOG_LINES {
            let at_ms = self.now_ms();
            self.logs.push(LogLine { at_ms, message: message.to_string() });
        } else {
            self.logs_dropped += 1;
        }
    }

    /// Notes the value a parameter resolved to.
    pub fn param(&mut self, name: &str, value: Value) {
        self.params.insert(name.to_string(), value);
    }

    pub fn assertions_so_far(&self) -> Assertions {
        let mut a = Assertions::default();
        for s in &self.stack {
            a.add(s.own);
            s.children.iter().for_each(|c| a.add(c.assertions));
        }
        a
    }

    /// Closes every open stage and builds the scenario's result.
    pub fn finish(
        mut self,
        file: String,
        seed: u64,
        error: Option<ErrorReport>,
        stopped: Option<Status>,
    ) -> ScenarioResult {
        let message = error.as_ref().map(|e| e.message.clone());
        // `skip(reason)`: the stages it left are skipped with the reason (unless a check of
        // theirs had already failed: a failure is never hidden by a later skip).
        let skipped = self.skipped.clone();
        let stop = if skipped.is_some() { Some(Status::Skipped) } else { stopped };
        while self.stack.len() > 1 {
            self.leave(skipped.clone().or_else(|| message.clone()), stop);
        }
        let root = self.stack.pop().map(|s| s.close(skipped.clone(), stop));
        let mut root = root.unwrap_or_else(|| OpenStage::new(String::new(), 0.0).close(None, None));
        if error.is_some() && root.status == Status::Passed {
            root.status = Status::Failed;
        }
        ScenarioResult {
            file,
            started_at: super::results::rfc3339(self.started_wall),
            root,
            error,
            params: self.params,
            seed,
            logs: self.logs,
            logs_dropped: self.logs_dropped,
            schedule: None,
            coverage: self.coverage,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nests_stages_and_rolls_up_assertions() {
        let mut r = Recorder::new("s");
        r.assert(CheckKind::Check, "a", true, None, Site::default());
        r.enter("outer");
        r.assert(CheckKind::Check, "b", true, None, Site::default());
        r.enter("inner");
        for i in 0..10 {
            r.assert(CheckKind::Check, "c", i != 3, Some(format!("i={i}")), Site::default());
        }
        r.metric("m", 1.5, Some("ms".into()), Better::Lower, vec![], "x:1").unwrap();
        assert!(r
            .metric("m", 2.0, None, Better::Lower, vec![], "x:2")
            .unwrap_err()
            .contains("already exported at x:1"));
        assert_eq!(r.leave(None, None), Status::Failed);
        assert_eq!(r.leave(None, None), Status::Failed);
        let res = r.finish("s.rhai".into(), 7, None, None);
        assert_eq!(res.root.assertions, Assertions { passed: 11, failed: 1 });
        let outer = &res.root.stages[0];
        assert_eq!(outer.assertions, Assertions { passed: 10, failed: 1 });
        let inner = &outer.stages[0];
        assert_eq!((inner.checks.len(), inner.checks[0].passed, inner.checks[0].failed), (1, 9, 1));
        assert_eq!(inner.checks[0].failures[0].detail.as_deref(), Some("i=3"));
        assert_eq!(inner.metrics[0].stage, "outer/inner");
        assert_eq!(res.root.status, Status::Failed);
    }

    #[test]
    fn caps_distinct_check_names() {
        let mut r = Recorder::new("s");
        for i in 0..(MAX_CHECK_NAMES + 10) {
            r.assert(CheckKind::Check, &format!("c{i}"), true, None, Site::default());
        }
        let res = r.finish("s".into(), 0, None, None);
        assert_eq!(res.root.checks.len(), MAX_CHECK_NAMES + 1);
        assert_eq!(res.root.checks.last().unwrap().passed, 10);
    }
}
