//! Suite commands: `mcpscript list suite.yaml` (the execution plan), `check suite.yaml`
//! (validate manifests and compile every script) and `run suite.yaml` (the orchestrator).
//! `run` and `check` come here when the file ends in `.yaml` or `.yml`.

use super::args::{CheckArgs, ListArgs, RunArgs, SuiteArgs};
use super::{CliError, Exit};
use crate::console::say;
use crate::script::Limits;
use crate::suite::{self, SuiteOptions, SuitePlan};
use crate::util::human;
use std::fmt::Write as _;
use std::path::Path;

pub fn is_suite(file: &Path) -> bool {
    suite::is_suite_file(file)
}

/// `--profile`, `--only`, `--parallel` mean nothing for a single script.
pub fn refuse_suite_options(s: &SuiteArgs) -> Result<(), CliError> {
    if s.profile.is_some() || !s.only.is_empty() || s.parallel.is_some() {
        return Err(CliError::invalid(
            "--profile, --only and --parallel apply to suites (.yaml files), not to scripts",
        ));
    }
    Ok(())
}

/// The suite options of a command line.
pub fn options(
    s: &SuiteArgs,
    set: &[String],
    target: Option<String>,
    stdlib: Option<std::path::PathBuf>,
) -> SuiteOptions {
    SuiteOptions {
        profile: s.profile.clone(),
        set: set.to_vec(),
        only: s.only.clone(),
        parallel: s.parallel,
        target,
        stdlib,
        limits: Limits::default(),
        check_all_profiles: false,
    }
}

/// Loads a suite; any problem is exit 2 with every located error.
pub fn load(file: &Path, opts: &SuiteOptions) -> Result<SuitePlan, CliError> {
    suite::plan::load(file, opts).map_err(|e| CliError::invalid(e.to_string()))
}

pub fn list(a: ListArgs) -> Result<Exit, CliError> {
    if !is_suite(&a.file) {
        return Err(CliError::invalid(format!("{}: expected a suite file ending in .yaml or .yml", a.file.display())));
    }
    let plan = load(&a.file, &options(&a.suite, &a.set, None, a.stdlib))?;
    say(&plan_text(&plan));
    Ok(Exit::Ok)
}

pub fn check(a: CheckArgs) -> Result<Exit, CliError> {
    let mut o = options(&a.suite, &a.set, a.target.clone(), a.stdlib);
    // Without --profile, every profile's values are checked.
    o.check_all_profiles = a.suite.profile.is_none();
    let plan = load(&a.file, &o)?;
    let scripts = plan.selected.len();
    say(&format!(
        "ok: suite {} ({}) validates: {scripts} scenarios, {} levels, every script compiles ({}; parsed in {}, compiled in {})\n",
        plan.name,
        plan.file,
        plan.selected.iter().map(|&i| plan.graph.levels[i]).max().map_or(0, |l| l + 1),
        if o.check_all_profiles { "parameters checked for every profile".to_string() } else { format!("profile {}", plan.profile) },
        human::ms(plan.parse_ms),
        human::ms(plan.compile_ms),
    ));
    Ok(Exit::Ok)
}

pub fn run(a: RunArgs) -> Result<Exit, CliError> {
    super::suite_run::run(a)
}

/// The execution plan, level by level.
pub fn plan_text(plan: &SuitePlan) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "suite {} ({}): {} of {} scenarios, profile {}, parallelism {}, target {}, connection budget {}",
        plan.name,
        plan.file,
        plan.selected.len(),
        plan.scenarios.len(),
        plan.profile,
        plan.parallelism,
        plan.target,
        plan.budget
    );
    let width = plan.scenarios.iter().map(|s| s.name.len()).max().unwrap_or(0);
    let mut level = usize::MAX;
    let mut order: Vec<usize> = plan.graph.order.iter().copied().filter(|i| plan.selected.contains(i)).collect();
    order.sort_by_key(|&i| (plan.graph.levels[i], plan.graph.order.iter().position(|&x| x == i)));
    for i in order {
        let s = &plan.scenarios[i];
        if plan.graph.levels[i] != level {
            level = plan.graph.levels[i];
            let _ = writeln!(out, "level {level}:");
        }
        let deps: Vec<&str> = plan.graph.deps[i].iter().map(|&d| plan.scenarios[d].name.as_str()).collect();
        let deps = if deps.is_empty() { "-".to_string() } else { deps.join(", ") };
        let excl = if s.resources.exclusive { ", exclusive" } else { "" };
        let tags = if s.tags.is_empty() { String::new() } else { format!("  tags: {}", s.tags.join(", ")) };
        let _ = writeln!(
            out,
            "  {:<width$}  after: {deps}  resources: {} connections{excl}  timeout {}{tags}",
            s.name,
            s.resources.connections,
            human::duration(s.timeout),
        );
    }
    out
}
