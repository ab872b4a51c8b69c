//! `mcpscript merge A/results.json B/results.json ... --out DIR`: combines the results of
//! segments (`run --segment I/N` on several machines or pods) into one record that reads
//! like a single run. Load phases merge exactly (histograms merged losslessly, counters
//! summed, timelines aligned by second) and the metrics they export are recomputed from
//! the merged phase; checks and assertions are summed by name; stages are matched by name.

use super::args::MergeArgs;
use super::{CliError, Exit};
use crate::script::results::{self, MetricResult, RunMetric, RunResults, ScenarioResult, StageResult, Summary};

pub fn run(a: MergeArgs) -> Result<Exit, CliError> {
    let mut runs: Vec<(String, RunResults)> = Vec::new();
    for input in &a.inputs {
        let run = super::reporting::load_results(input)?;
        // Each segment runs under its own run id: the same id twice is the same run twice,
        // which would double every count.
        if let Some((first, _)) = runs.iter().find(|(_, r)| r.run_id == run.run_id) {
            return Err(CliError::invalid(format!(
                "{first} and {} are the same run ({}): merge each segment once",
                input.display(),
                run.run_id
            )));
        }
        runs.push((input.display().to_string(), run));
    }
    let merged = merge_runs(runs).map_err(CliError::invalid)?;
    let path = merged
        .write_to(&a.out)
        .map_err(|e| CliError::failed(format!("cannot write results into {}: {e}", a.out.display())))?;
    let phases = count_phases(&merged);
    crate::console::say(&format!(
        "merged {} results ({phases} load phases) into {}: {}\n",
        a.inputs.len(),
        path.display(),
        merged.status.as_str()
    ));
    Ok(Exit::Ok)
}

fn count_phases(r: &RunResults) -> usize {
    fn walk(s: &StageResult) -> usize {
        s.phases.len() + s.stages.iter().map(walk).sum::<usize>()
    }
    r.scenarios.iter().map(|s| walk(&s.root)).sum()
}

/// Merges runs of the same suite or script (segments of one run), each with the file it
/// was read from: a run that does not fit the first is named by its file.
pub fn merge_runs(runs: Vec<(String, RunResults)>) -> Result<RunResults, String> {
    let mut it = runs.into_iter();
    let (first, mut acc) = it.next().ok_or("nothing to merge")?;
    for (file, r) in it {
        let misfit = |why: String| format!("{file} does not fit {first}: {why}");
        if r.scenarios.len() != acc.scenarios.len() {
            return Err(misfit(format!(
                "it has {} scenarios and {first} has {}: not segments of the same run",
                r.scenarios.len(),
                acc.scenarios.len()
            )));
        }
        for (a, b) in acc.scenarios.iter_mut().zip(&r.scenarios) {
            merge_scenario(a, b).map_err(misfit)?;
        }
        acc.started_at = acc.started_at.clone().min(r.started_at.clone());
        acc.finished_at = acc.finished_at.clone().max(r.finished_at.clone());
        acc.duration_ms = acc.duration_ms.max(r.duration_ms);
    }
    acc.status = results::overall_status(acc.scenarios.iter().map(ScenarioResult::status));
    acc.summary = Summary::of(&acc.scenarios);
    acc.coverage = results::Coverage::of(&acc.scenarios);
    // A comparison judged one segment against its own history: it does not describe the whole.
    acc.regression = None;
    acc.metrics = acc
        .scenarios
        .iter()
        .flat_map(|s| {
            s.all_metrics().into_iter().map(|m| RunMetric { scenario: s.root.name.clone(), metric: m.clone() })
        })
        .collect();
    Ok(acc)
}

fn merge_scenario(a: &mut ScenarioResult, b: &ScenarioResult) -> Result<(), String> {
    if a.root.name != b.root.name {
        return Err(format!("scenario '{}' does not match scenario '{}'", b.root.name, a.root.name));
    }
    merge_stage(&mut a.root, &b.root)?;
    if a.error.is_none() {
        a.error = b.error.clone();
    }
    a.logs.extend(b.logs.iter().cloned());
    a.coverage.add(&b.coverage);
    Ok(())
}

fn merge_stage(a: &mut StageResult, b: &StageResult) -> Result<(), String> {
    if a.phases.len() != b.phases.len() {
        return Err(format!(
            "stage '{}' ran {} load phases in one result and {} in another",
            a.name,
            a.phases.len(),
            b.phases.len()
        ));
    }
    for (pa, pb) in a.phases.iter_mut().zip(&b.phases) {
        if pa.name != pb.name {
            return Err(format!("load phase '{}' does not match '{}' in stage '{}'", pa.name, pb.name, a.name));
        }
        *pa = crate::load::merge(pa, pb).map_err(|e| format!("load phase '{}': {e}", pa.name))?;
    }
    // Metrics a phase exported are recomputed from the merged phase.
    for p in &a.phases {
        for e in p.exported_metrics() {
            if let Some(m) = a.metrics.iter_mut().find(|m| m.name == e.name) {
                (m.value, m.samples) = (e.value, e.samples);
            } else {
                a.metrics.push(MetricResult {
                    name: e.name,
                    value: e.value,
                    unit: Some(e.unit.into()),
                    better: e.better,
                    stage: String::new(),
                    samples: e.samples,
                });
            }
        }
    }
    for c in &b.checks {
        match a.checks.iter_mut().find(|x| x.name == c.name) {
            Some(x) => {
                x.passed += c.passed;
                x.failed += c.failed;
                let room = 5usize.saturating_sub(x.failures.len());
                x.failures.extend(c.failures.iter().take(room).cloned());
            }
            None => a.checks.push(c.clone()),
        }
    }
    for s in &b.stages {
        match a.stages.iter_mut().find(|x| x.name == s.name) {
            Some(x) => merge_stage(x, s)?,
            None => a.stages.push(s.clone()),
        }
    }
    a.assertions.passed =
        a.checks.iter().map(|c| c.passed).sum::<u64>() + a.stages.iter().map(|s| s.assertions.passed).sum::<u64>();
    a.assertions.failed =
        a.checks.iter().map(|c| c.failed).sum::<u64>() + a.stages.iter().map(|s| s.assertions.failed).sum::<u64>();
    a.status = results::overall_status([a.status, b.status].into_iter());
    if a.assertions.failed > 0 && a.status == results::Status::Passed {
        a.status = results::Status::Failed;
    }
    a.duration_ms = a.duration_ms.max(b.duration_ms);
    if a.error.is_none() {
        a.error = b.error.clone();
    }
    Ok(())
}
