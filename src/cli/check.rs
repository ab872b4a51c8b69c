//! `mcpscript check FILE.rhai`: compiles and validates a script without running it: syntax,
//! variables, imports, function names, literal argument types, literal thresholds and
//! durations, literal `load::` options, `--set` values against the script's parameters, and
//! literal `stdio:` targets against the sandbox (any but `--target` refused unless
//! `--allow-spawn`). Problems exit 2 with file, line and caret; a script that checks does not
//! fail on any of these when it runs (a computed value is judged when it runs, also exit 2).

use super::args::CheckArgs;
use super::{CliError, Exit};
use crate::script::{Limits, Params, Script, ScriptEnv};
use std::io::Write;
use std::path::{Path, PathBuf};

pub fn run(a: CheckArgs) -> Result<Exit, CliError> {
    if super::suite::is_suite(&a.file) {
        return super::suite::check(a);
    }
    super::suite::refuse_suite_options(&a.suite)?;
    let params = Params::parse(&a.set).map_err(CliError::invalid)?;
    let script = load(&a.file, a.stdlib, Limits::default())?;
    script.check_params(&params).map_err(|e| CliError::invalid(e.to_string()))?;
    let target = a.target.as_deref().and_then(|t| t.parse().ok());
    script.check_spawns(target.as_ref(), a.allow_spawn).map_err(|e| CliError::invalid(e.to_string()))?;
    let list = |v: Vec<String>| if v.is_empty() { "none".to_string() } else { v.join(", ") };
    let names: Vec<String> = script
        .info
        .params
        .iter()
        .map(|p| p.name.clone())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let _ = writeln!(
        std::io::stdout().lock(),
        "ok: {} compiles and validates (parameters: {}; imports: {})",
        script.file,
        list(names),
        list(script.info.imports.iter().cloned().collect())
    );
    Ok(Exit::Ok)
}

/// Compiles and validates a script file (exit 2 on any problem).
pub fn load(file: &Path, stdlib: Option<PathBuf>, limits: Limits) -> Result<Script, CliError> {
    if file.extension().and_then(|e| e.to_str()) != Some("rhai") {
        return Err(CliError::invalid(format!(
            "{}: expected a scenario script ending in .rhai or a suite ending in .yaml",
            file.display()
        )));
    }
    let stdlib_dir = match stdlib {
        Some(d) if d.is_dir() => Some(d),
        Some(d) => return Err(CliError::invalid(format!("--stdlib {}: not a folder", d.display()))),
        None => Some(PathBuf::from("stdlib")).filter(|d| d.is_dir()),
    };
    Script::load(file, &ScriptEnv { stdlib_dir, limits }).map_err(|e| CliError::invalid(e.to_string()))
}
