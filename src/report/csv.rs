//! `results.csv` (one row per scenario) and `metrics.csv` (one row per metric sample),
//! for spreadsheets and scripts: full-precision numbers, quoting by the `csv` crate.
//!
//! `results.csv`: `test_id,test_name,status,duration_ms,assertions_passed,assertions_failed`.
//! `test_id` is stable across runs of the same suite or script: `SUITE/SCENARIO` for a
//! suite run (the suite's name, the scenario's), the script file as given for a script run
//! (`SCRIPT/SCENARIO` when a script run holds several scenarios). `duration_ms` is rounded
//! to the microsecond.
//!
//! `metrics.csv`, in long form: `scenario,metric,unit,t,value`.
//! - each exported metric: one row with its value and an empty `t` (the summary value),
//!   then one row per entry of its `samples` with `t` = the sample's index (0, 1, ...);
//! - each load phase's per-second timeline: `PHASE.throughput` (req/s), `PHASE.p99_ms`
//!   (ms) and `PHASE.errors` (errors in that second), `t` = the second since the load
//!   started;
//! - each phase's resource samples: `PHASE.rss_bytes.ROLE` (bytes) and `PHASE.cpu_pct.ROLE`
//!   (% of one core), `t` = seconds since sampling started. `ROLE` is `coordinator`,
//!   `worker` or `target`; when several processes share a role, `ROLE.PID`.
//!
//! A phase whose name repeats within a scenario is numbered (`load#2`). Values that are not
//! finite are left out, never written as NaN.

use super::text::phases_of;
use crate::script::results::RunResults;
use std::collections::BTreeMap;

/// The header of `results.csv`.
pub const RESULTS_HEADER: [&str; 6] =
    ["test_id", "test_name", "status", "duration_ms", "assertions_passed", "assertions_failed"];

/// The header of `metrics.csv`.
pub const METRICS_HEADER: [&str; 5] = ["scenario", "metric", "unit", "t", "value"];

pub fn results_csv(r: &RunResults) -> Result<Vec<u8>, String> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(RESULTS_HEADER).map_err(err)?;
    for (i, s) in r.scenarios.iter().enumerate() {
        let a = s.root.assertions;
        w.write_record([
            test_id(r, i),
            s.root.name.clone(),
            s.status().as_str().to_string(),
            num((s.root.duration_ms * 1000.0).round() / 1000.0),
            a.passed.to_string(),
            a.failed.to_string(),
        ])
        .map_err(err)?;
    }
    w.into_inner().map_err(|e| format!("results.csv: {e}"))
}

/// The stable id of the `i`th scenario (see the module's documentation).
pub fn test_id(r: &RunResults, i: usize) -> String {
    let s = &r.scenarios[i];
    match &r.suite {
        Some(suite) => format!("{}/{}", suite.name, s.root.name),
        None if r.scenarios.len() == 1 && !s.file.is_empty() => s.file.clone(),
        None if !s.file.is_empty() => format!("{}/{}", s.file, s.root.name),
        None => s.root.name.clone(),
    }
}

pub fn metrics_csv(r: &RunResults) -> Result<Vec<u8>, String> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(METRICS_HEADER).map_err(err)?;
    let mut row = |scenario: &str, metric: &str, unit: &str, t: String, value: f64| -> Result<(), String> {
        if !value.is_finite() {
            return Ok(());
        }
        w.write_record([scenario, metric, unit, &t, &num(value)]).map_err(err)
    };
    for s in &r.scenarios {
        let name = s.root.name.as_str();
        for m in s.all_metrics() {
            let unit = m.unit.as_deref().unwrap_or("");
            row(name, &m.name, unit, String::new(), m.value)?;
            for (i, v) in m.samples.iter().enumerate() {
                row(name, &m.name, unit, i.to_string(), *v)?;
            }
        }
        let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
        for (_, p) in phases_of(s) {
            let n = seen.entry(p.name.as_str()).or_insert(0);
            *n += 1;
            let phase = if *n == 1 { p.name.clone() } else { format!("{}#{n}", p.name) };
            for e in &p.timeline {
                let t = e.t.to_string();
                row(name, &format!("{phase}.throughput"), "req/s", t.clone(), e.throughput)?;
                row(name, &format!("{phase}.p99_ms"), "ms", t.clone(), e.p99)?;
                row(name, &format!("{phase}.errors"), "count", t, e.errors as f64)?;
            }
            if let Some(res) = &p.resources {
                let shared = |role| res.processes.iter().filter(|x| x.role == role).count() > 1;
                for proc in &res.processes {
                    let who =
                        if shared(proc.role) { format!("{}.{}", proc.role, proc.pid) } else { proc.role.to_string() };
                    for (t, v) in proc.t.iter().zip(&proc.rss_bytes) {
                        row(name, &format!("{phase}.rss_bytes.{who}"), "bytes", num(*t), *v as f64)?;
                    }
                    for (t, v) in proc.t.iter().zip(&proc.cpu_pct) {
                        row(name, &format!("{phase}.cpu_pct.{who}"), "%", num(*t), *v)?;
                    }
                }
            }
        }
    }
    w.into_inner().map_err(|e| format!("metrics.csv: {e}"))
}

/// A number as a machine reads it: the shortest exact form (`1234.5`, `3`), empty when
/// not finite.
fn num(x: f64) -> String {
    if x.is_finite() {
        format!("{x}")
    } else {
        String::new()
    }
}

fn err(e: csv::Error) -> String {
    format!("csv: {e}")
}
