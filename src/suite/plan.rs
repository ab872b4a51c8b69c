//! From files to a validated plan: [`load`] reads the suite file and every scenario
//! manifest, picks the profile, builds the dependency graph, applies `--only`, compiles
//! every script and resolves each scenario's parameters (suite `params` < scenario `params`
//! < suite profile < scenario profile < `--set KEY=V` < `--set SCENARIO.KEY=V`), checking
//! each against the parameters its script reads. Every problem is collected with its file
//! and place; nothing downstream re-checks input.

use super::graph::{Graph, GraphError};
use super::manifest::{
    self, find_key, find_value, BuiltinServer, ManifestError, MetricSpec, Requires, Resources, ScenarioFile,
    ServerSpec, SuiteError, SuiteFile,
};
use crate::client::Target;
use crate::script::{Limits, Params, Script, ScriptEnv};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Unread parameters listed one by one (each with its place); more are counted.
const MAX_LISTED_PARAMS: usize = 20;

/// Profiles every suite has.
pub const BUILTIN_PROFILES: [&str; 2] = ["quick", "full"];
/// Per-scenario time limit when nothing sets one.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);

/// What the command line adds to the files.
#[derive(Debug, Clone, Default)]
pub struct SuiteOptions {
    pub profile: Option<String>,
    /// `KEY=VALUE` (every scenario reading KEY) or `SCENARIO.KEY=VALUE`.
    pub set: Vec<String>,
    /// Scenario names or tags; their dependencies come along.
    pub only: Vec<String>,
    pub parallel: Option<usize>,
    pub target: Option<String>,
    pub stdlib: Option<PathBuf>,
    pub limits: Limits,
    /// Also check the parameter values of every other profile (`mcpscript check`).
    pub check_all_profiles: bool,
}

/// One scenario, validated.
pub struct ScenarioPlan {
    pub name: String,
    /// The manifest as messages show it.
    pub manifest: String,
    pub manifest_path: PathBuf,
    pub script_path: PathBuf,
    pub description: Option<String>,
    pub tags: Vec<String>,
    /// Under the chosen profile (a profile's `resources:` replaces the manifest's).
    pub resources: Resources,
    pub server: Option<BuiltinServer>,
    /// What the target must offer, else the scenario is skipped.
    pub requires: Requires,
    pub timeout: Duration,
    pub metrics: Vec<MetricSpec>,
    pub params: Params,
    pub script: Arc<Script>,
    /// The script (or a module it imports) uses `chaos::`: its built-in server must be a
    /// child process it may kill and restart.
    pub uses_chaos: bool,
}

/// A suite ready to run.
pub struct SuitePlan {
    pub name: String,
    pub file: String,
    pub path: PathBuf,
    pub target: Target,
    pub server: Option<ServerSpec>,
    pub shared_server: bool,
    /// Scripts may spawn `stdio:` targets of their own (the suite's `allow_spawn: true`).
    pub allow_spawn: bool,
    /// The suite's `headers:`, checked.
    pub headers: Vec<(String, String)>,
    pub profile: String,
    pub parallelism: usize,
    /// Connections the running scenarios may hold together.
    pub budget: u64,
    pub scenarios: Vec<ScenarioPlan>,
    pub graph: Graph,
    /// What runs (everything unless `--only`).
    pub selected: BTreeSet<usize>,
    /// Reading and parsing the manifests, building the graph (ms).
    pub parse_ms: f64,
    /// Compiling and validating the scripts (ms).
    pub compile_ms: f64,
}

impl SuitePlan {
    pub fn index(&self, name: &str) -> Option<usize> {
        self.scenarios.iter().position(|s| s.name == name)
    }
}

/// Is this a suite file (by extension)?
pub fn is_suite_file(path: &Path) -> bool {
    matches!(path.extension().and_then(|e| e.to_str()), Some("yaml" | "yml"))
}

fn display(p: &Path) -> String {
    let s = p.display().to_string();
    s.strip_prefix("./").map(str::to_string).unwrap_or(s)
}

struct Parsed {
    file: ScenarioFile,
    text: String,
    display: String,
    path: PathBuf,
}

/// Transports a manifest's `requires.transports` may name.
pub const TRANSPORTS: [&str; 5] = ["http", "sse", "ws", "tcp", "stdio"];

/// The keys of a manifest's profile map that are not parameters: they replace the
/// scenario's `resources` and `timeout` under that profile.
const PROFILE_RESOURCES: &str = "resources";
const PROFILE_TIMEOUT: &str = "timeout";

/// Reads, validates and compiles the suite at `path`.
pub fn load(path: &Path, opts: &SuiteOptions) -> Result<SuitePlan, SuiteError> {
    let t0 = Instant::now();
    let suite_file = display(path);
    let (suite, suite_text): (SuiteFile, String) = manifest::read(path, &suite_file)?;
    let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let mut errors: Vec<ManifestError> = Vec::new();
    let at_suite = |key: &str| find_key(&suite_text, key, 1);

    // The profile.
    let known_profiles: BTreeSet<String> =
        BUILTIN_PROFILES.iter().map(|s| s.to_string()).chain(suite.profiles.keys().cloned()).collect();
    let (profile, profile_from_cli) = match (&opts.profile, &suite.profile) {
        (Some(p), _) => (p.clone(), true),
        (None, Some(p)) => (p.clone(), false),
        (None, None) => ("quick".to_string(), false),
    };
    if !known_profiles.contains(&profile) {
        let hint = crate::util::suggest(&profile, known_profiles.iter().map(String::as_str))
            .map(|s| format!("did you mean {s}?"))
            .or_else(|| Some(format!("profiles: {}", known_profiles.iter().cloned().collect::<Vec<_>>().join(", "))));
        let e = if profile_from_cli {
            ManifestError::new(&suite_file, format!("--profile {profile}: the suite has no such profile"))
        } else {
            ManifestError::new(&suite_file, format!("unknown profile '{profile}'")).at(at_suite("profile"))
        };
        return Err(e.hint(hint).into());
    }
    let suite_profile = suite.profiles.get(&profile).cloned().unwrap_or_default();

    // The target.
    let target_text = opts.target.clone().or_else(|| suite.target.clone()).unwrap_or_else(|| "builtin".into());
    let target: Target = match target_text.parse() {
        Ok(t) => t,
        Err(e) => {
            let e = ManifestError::new(&suite_file, format!("target: {e}"));
            return Err(if opts.target.is_some() { e } else { e.at(at_suite("target")) }.into());
        }
    };
    if suite.server.is_some() && target == Target::Builtin {
        errors.push(
            ManifestError::new(&suite_file, "a managed `server` needs a `target` URL to reach it")
                .at(at_suite("server"))
                .hint(Some("e.g. target: tcp://127.0.0.1:7801 with the server listening there".into())),
        );
    }

    for (k, v) in &suite.headers {
        if let Err(e) = crate::client::auth::check_header(k, v) {
            errors.push(ManifestError::new(&suite_file, format!("headers: {e}")).at(at_suite("headers")));
        }
    }

    // The scenario manifests.
    let mut parsed: Vec<Parsed> = Vec::new();
    let mut seen: BTreeMap<String, String> = BTreeMap::new();
    let list_line = at_suite("scenarios").map(|p| p.0).unwrap_or(1);
    for rel in &suite.scenarios {
        let mpath = dir.join(rel);
        let mdisplay = display(&mpath);
        let (file, text) = match manifest::read::<ScenarioFile>(&mpath, &mdisplay) {
            Ok(x) => x,
            Err(mut e) => {
                if e.line.is_none() {
                    e = ManifestError::new(&suite_file, format!("scenario manifest {rel}: {}", e.message))
                        .at(find_value(&suite_text, rel, list_line));
                }
                errors.push(e);
                continue;
            }
        };
        if let Some(first) = seen.get(&file.name) {
            errors.push(
                ManifestError::new(&mdisplay, format!("duplicate scenario name '{}' (also in {first})", file.name))
                    .at(find_key(&text, "name", 1)),
            );
            continue;
        }
        seen.insert(file.name.clone(), mdisplay.clone());
        for p in file.profiles.keys() {
            if !known_profiles.contains(p) {
                let from = find_key(&text, "profiles", 1).map(|x| x.0).unwrap_or(1);
                let hint = crate::util::suggest(p, known_profiles.iter().map(String::as_str))
                    .map(|s| format!("did you mean {s}?"))
                    .or_else(|| Some("declare it under `profiles:` in the suite file".into()));
                errors.push(
                    ManifestError::new(&mdisplay, format!("unknown profile '{p}'"))
                        .at(find_key(&text, p, from))
                        .hint(hint),
                );
            }
        }
        for t in &file.requires.transports {
            if !TRANSPORTS.contains(&t.as_str()) {
                let from = find_key(&text, "requires", 1).map(|x| x.0).unwrap_or(1);
                errors.push(
                    ManifestError::new(&mdisplay, format!("unknown transport '{t}' in requires.transports"))
                        .at(find_value(&text, t, from))
                        .hint(Some(format!("transports: {}", TRANSPORTS.join(", ")))),
                );
            }
        }
        // A profile's `resources:` and `timeout:` (every profile's are checked; the chosen
        // one's apply).
        let mut file = file;
        let profiles_line = find_key(&text, "profiles", 1).map_or(1, |x| x.0);
        for (name, m) in file.profiles.iter_mut() {
            let chosen = *name == profile;
            let mut bad = |key: &str, e: String| {
                let from = find_key(&text, name, profiles_line).map_or(1, |x| x.0);
                errors.push(
                    ManifestError::new(&mdisplay, format!("profile {name}: {key}: {e}")).at(find_key(&text, key, from)),
                );
            };
            if let Some(r) = m.remove(PROFILE_RESOURCES) {
                match yaml_serde::from_value::<Resources>(r) {
                    Ok(r) if chosen => file.resources = r,
                    Ok(_) => {}
                    Err(e) => bad(PROFILE_RESOURCES, e.to_string()),
                }
            }
            if let Some(t) = m.remove(PROFILE_TIMEOUT) {
                match yaml_serde::from_value::<manifest::Dur>(t) {
                    Ok(t) if chosen => file.timeout = Some(t),
                    Ok(_) => {}
                    Err(e) => bad(PROFILE_TIMEOUT, e.to_string()),
                }
            }
        }
        let spath = mpath.parent().map(Path::to_path_buf).unwrap_or_default().join(&file.script);
        if !spath.is_file() {
            errors.push(
                ManifestError::new(&mdisplay, format!("script {} not found ({})", file.script, display(&spath)))
                    .at(find_key(&text, "script", 1)),
            );
        }
        parsed.push(Parsed { file, text, display: mdisplay, path: mpath });
    }
    if suite.scenarios.is_empty() {
        errors.push(ManifestError::new(&suite_file, "the suite lists no scenarios").at(at_suite("scenarios")));
    }
    if !errors.is_empty() {
        return Err(SuiteError(errors));
    }

    // The graph.
    let names: Vec<String> = parsed.iter().map(|p| p.file.name.clone()).collect();
    let deps: Vec<Vec<String>> = parsed.iter().map(|p| p.file.depends_on.clone()).collect();
    let graph = match Graph::build(&names, &deps) {
        Ok(g) => g,
        Err(errs) => {
            let out = errs
                .into_iter()
                .map(|e| match e {
                    GraphError::UnknownDependency { scenario, missing, suggestion } => {
                        let p = &parsed[scenario];
                        let from = find_key(&p.text, "depends_on", 1).map(|x| x.0).unwrap_or(1);
                        ManifestError::new(&p.display, format!("unknown dependency '{missing}' of '{}'", p.file.name))
                            .at(find_value(&p.text, &missing, from))
                            .hint(suggestion.map(|s| format!("did you mean {s}?")))
                    }
                    GraphError::Cycle(cycle) => {
                        let first = &parsed[names.iter().position(|n| *n == cycle[0]).unwrap_or(0)];
                        ManifestError::new(
                            &first.display,
                            format!("dependency cycle: {} (read: depends on)", cycle.join(" -> ")),
                        )
                        .at(find_key(&first.text, "depends_on", 1))
                    }
                })
                .collect();
            return Err(SuiteError(out));
        }
    };

    // --only.
    let selected: BTreeSet<usize> = if opts.only.is_empty() {
        (0..names.len()).collect()
    } else {
        let mut picked = Vec::new();
        for o in opts.only.iter().flat_map(|o| o.split(',')).map(str::trim).filter(|o| !o.is_empty()) {
            let hits: Vec<usize> = parsed
                .iter()
                .enumerate()
                .filter(|(_, p)| p.file.name == o || p.file.tags.iter().any(|t| t == o))
                .map(|(i, _)| i)
                .collect();
            if hits.is_empty() {
                let all: Vec<&str> = parsed
                    .iter()
                    .flat_map(|p| std::iter::once(p.file.name.as_str()).chain(p.file.tags.iter().map(String::as_str)))
                    .collect();
                let hint = crate::util::suggest(o, all.iter().copied())
                    .map(|s| format!("did you mean {s}?"))
                    .unwrap_or_else(|| format!("scenarios: {}", names.join(", ")));
                errors.push(
                    ManifestError::new(&suite_file, format!("--only {o}: names no scenario or tag of the suite"))
                        .hint(Some(hint)),
                );
            }
            picked.extend(hits);
        }
        graph.closure(&picked)
    };

    // Limits.
    let parallelism = opts.parallel.or(suite_profile.parallelism).or(suite.parallelism).unwrap_or(1);
    if parallelism == 0 {
        let e = ManifestError::new(&suite_file, "parallelism must be at least 1");
        errors.push(if opts.parallel.is_some() { e } else { e.at(at_suite("parallelism")) });
    }
    let budget = suite_profile
        .connections
        .or(suite.connections)
        .unwrap_or_else(|| crate::util::proc::nofile_limits().1.max(1024));
    for p in &parsed {
        if p.file.resources.connections > budget {
            errors.push(
                ManifestError::new(
                    &p.display,
                    format!(
                        "'{}' needs {} connections, more than the suite's budget of {budget}",
                        p.file.name, p.file.resources.connections
                    ),
                )
                .at(find_key(&p.text, "connections", 1))
                .hint(Some("raise `connections:` in the suite file (or its profile) or lower the scenario's".into())),
            );
        }
    }
    let parse_ms = t0.elapsed().as_secs_f64() * 1000.0;
    if !errors.is_empty() {
        return Err(SuiteError(errors));
    }

    // Scripts.
    let t1 = Instant::now();
    let stdlib_dir = match &opts.stdlib {
        Some(d) if d.is_dir() => Some(d.clone()),
        Some(d) => return Err(ManifestError::new("--stdlib", format!("{}: not a folder", d.display())).into()),
        None => Some(PathBuf::from("stdlib")).filter(|d| d.is_dir()),
    };
    let env = ScriptEnv { stdlib_dir, limits: opts.limits.clone() };
    // Compiling is CPU work per script (an engine each): spread it over the cores.
    let compile = |p: &Parsed| -> Result<Script, ManifestError> {
        let spath = p.path.parent().map(Path::to_path_buf).unwrap_or_default().join(&p.file.script);
        let mut s = Script::load(&spath, &env).map_err(|e| ManifestError::new("", e.to_string()))?;
        s.name = p.file.name.clone();
        Ok(s)
    };
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(parsed.len()).max(1);
    let mut compiled: Vec<Option<Result<Script, ManifestError>>> = (0..parsed.len()).map(|_| None).collect();
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let (parsed, compile) = (&parsed, &compile);
                // The main thread's stack size: deeply nested scripts parse recursively.
                std::thread::Builder::new().stack_size(8 * 1024 * 1024).spawn_scoped(scope, move || {
                    (t..parsed.len()).step_by(threads).map(|i| (i, compile(&parsed[i]))).collect::<Vec<_>>()
                })
            })
            .collect();
        for h in handles {
            match h.map_err(|_| ()).and_then(|h| h.join().map_err(|_| ())) {
                Ok(done) => done.into_iter().for_each(|(i, r)| compiled[i] = Some(r)),
                Err(()) => errors.push(ManifestError::new("", "internal error: a compiler thread failed")),
            }
        }
    });
    let mut scripts: Vec<Option<Script>> = Vec::new();
    for r in compiled {
        match r {
            Some(Ok(s)) => scripts.push(Some(s)),
            Some(Err(e)) => {
                errors.push(e);
                scripts.push(None);
            }
            None => scripts.push(None),
        }
    }
    if !errors.is_empty() {
        return Err(SuiteError(errors));
    }
    let scripts: Vec<Script> = scripts.into_iter().flatten().collect();

    // Parameters: the chosen profile, and with `check_all_profiles` every other one too.
    let sets = parse_sets(&opts.set, &names)?;
    let ctx =
        Ctx { suite: &suite, suite_file: &suite_file, suite_text: &suite_text, parsed: &parsed, scripts: &scripts };
    let resolved = match resolve(&ctx, &profile, &sets, &selected) {
        Ok(r) => r,
        Err(e) => return Err(SuiteError(e)),
    };
    if opts.check_all_profiles {
        for other in known_profiles.iter().filter(|p| **p != profile) {
            if let Err(e) = resolve(&ctx, other, &sets, &selected) {
                errors.extend(e.into_iter().map(|mut x| {
                    if !x.message.contains("profile ") {
                        x.message = format!("(profile {other}) {}", x.message);
                    }
                    x
                }));
            }
        }
        if !errors.is_empty() {
            return Err(SuiteError(errors));
        }
    }

    // Types of the values, against each script's defaults.
    let timeout_default = suite_profile.timeout.or(suite.timeout).map(|d| d.0).unwrap_or(DEFAULT_TIMEOUT);
    let mut scenarios = Vec::new();
    for ((p, s), params) in parsed.into_iter().zip(scripts).zip(resolved) {
        let spath = p.path.parent().map(Path::to_path_buf).unwrap_or_default().join(&p.file.script);
        scenarios.push(ScenarioPlan {
            name: p.file.name,
            manifest: p.display,
            manifest_path: p.path,
            script_path: spath,
            description: p.file.description,
            tags: p.file.tags,
            resources: p.file.resources,
            server: p.file.server,
            requires: p.file.requires,
            timeout: p.file.timeout.map(|d| d.0).unwrap_or(timeout_default),
            metrics: p.file.metrics,
            params,
            uses_chaos: s.search.sources.any_contains("chaos::"),
            script: Arc::new(s),
        });
    }
    if !errors.is_empty() {
        return Err(SuiteError(errors));
    }
    Ok(SuitePlan {
        name: suite.name,
        file: suite_file,
        path: path.to_path_buf(),
        target,
        server: suite.server,
        shared_server: suite.shared_server,
        allow_spawn: suite.allow_spawn,
        headers: suite.headers.clone().into_iter().collect(),
        profile,
        parallelism,
        budget,
        scenarios,
        graph,
        selected,
        parse_ms,
        compile_ms: t1.elapsed().as_secs_f64() * 1000.0,
    })
}

/// What parameter resolution reads.
struct Ctx<'a> {
    suite: &'a SuiteFile,
    suite_file: &'a str,
    suite_text: &'a str,
    parsed: &'a [Parsed],
    scripts: &'a [Script],
}

/// Each scenario's parameters under `profile`, checked against its script: every name set
/// is read by the script (or some script, for suite-wide values) and has the right type.
fn resolve(
    c: &Ctx,
    profile: &str,
    sets: &[(Option<usize>, String, String)],
    selected: &BTreeSet<usize>,
) -> Result<Vec<Params>, Vec<ManifestError>> {
    let mut errors: Vec<ManifestError> = Vec::new();
    let suite_profile = c.suite.profiles.get(profile).cloned().unwrap_or_default();
    let reads = |s: &Script, k: &str| s.info.dynamic_params || s.info.params.iter().any(|p| p.name == k);
    let mut used_globally: BTreeSet<String> = BTreeSet::new();
    let mut resolved: Vec<BTreeMap<String, String>> = Vec::new();
    for (i, (p, s)) in c.parsed.iter().zip(c.scripts).enumerate() {
        let mut values: BTreeMap<String, String> = BTreeMap::new();
        let mut put =
            |k: &str, v: &yaml_serde::Value, file: &str, text: &str, section: &str| match manifest::value_text(v) {
                Ok(t) => {
                    values.insert(k.to_string(), t);
                }
                Err(m) => {
                    let from = find_key(text, section, 1).map(|x| x.0).unwrap_or(1);
                    errors.push(ManifestError::new(file, format!("parameter {k}: {m}")).at(find_key(text, k, from)));
                }
            };
        for (k, v) in &c.suite.params {
            if reads(s, k) {
                used_globally.insert(k.clone());
                put(k, v, c.suite_file, c.suite_text, "params");
            }
        }
        for (k, v) in &p.file.params {
            put(k, v, &p.display, &p.text, "params");
        }
        for (k, v) in &suite_profile.params {
            if reads(s, k) {
                used_globally.insert(k.clone());
                put(k, v, c.suite_file, c.suite_text, profile);
            }
        }
        if let Some(pp) = p.file.profiles.get(profile) {
            for (k, v) in pp {
                put(k, v, &p.display, &p.text, profile);
            }
        }
        // Names the manifest sets must be parameters of the script.
        let known: Vec<&str> = s.info.params.iter().map(|x| x.name.as_str()).collect();
        let manifest_keys = p.file.params.keys().chain(p.file.profiles.values().flat_map(|m| m.keys()));
        let unread: Vec<&String> =
            manifest_keys.collect::<BTreeSet<_>>().into_iter().filter(|k| !reads(s, k)).collect();
        // Each is located by a scan of the manifest: a few are worth it, thousands are one error.
        for k in unread.iter().take(MAX_LISTED_PARAMS) {
            let hint =
                crate::util::suggest(k, known.iter().copied()).map(|x| format!("did you mean {x}?")).or_else(|| {
                    Some(if known.is_empty() {
                        "it reads no parameters".to_string()
                    } else {
                        format!("its parameters: {}", known.join(", "))
                    })
                });
            errors.push(
                ManifestError::new(&p.display, format!("{} reads no parameter '{k}'", s.file))
                    .at(find_key(&p.text, k, 1))
                    .hint(hint),
            );
        }
        if unread.len() > MAX_LISTED_PARAMS {
            errors.push(ManifestError::new(
                &p.display,
                format!("and {} more parameters that {} does not read", unread.len() - MAX_LISTED_PARAMS, s.file),
            ));
        }
        for (target, k, v) in sets {
            match target {
                Some(t) if *t == i => {
                    if !reads(s, k) {
                        let hint = crate::util::suggest(k, known.iter().copied()).map(|x| format!("did you mean {x}?"));
                        errors.push(
                            ManifestError::new(
                                "--set",
                                format!("{}.{k}: {} reads no parameter '{k}'", p.file.name, s.file),
                            )
                            .hint(hint),
                        );
                    }
                    values.insert(k.clone(), v.clone());
                }
                None if reads(s, k) && selected.contains(&i) => {
                    used_globally.insert(k.clone());
                    values.insert(k.clone(), v.clone());
                }
                _ => {}
            }
        }
        resolved.push(values);
    }
    let all_known: BTreeSet<&str> =
        c.scripts.iter().flat_map(|s| s.info.params.iter().map(|p| p.name.as_str())).collect();
    for (target, k, _) in sets {
        if target.is_none() && !used_globally.contains(k) {
            let hint = crate::util::suggest(k, all_known.iter().copied()).map(|x| format!("did you mean {x}?"));
            errors.push(
                ManifestError::new("--set", format!("{k}: no selected scenario reads parameter '{k}'")).hint(hint),
            );
        }
    }
    for (section, params) in [("params", &c.suite.params), (profile, &suite_profile.params)] {
        for k in params.keys() {
            if !used_globally.contains(k) {
                let from = find_key(c.suite_text, section, 1).map(|x| x.0).unwrap_or(1);
                let hint = crate::util::suggest(k, all_known.iter().copied()).map(|x| format!("did you mean {x}?"));
                errors.push(
                    ManifestError::new(c.suite_file, format!("no scenario reads parameter '{k}'"))
                        .at(find_key(c.suite_text, k, from))
                        .hint(hint),
                );
            }
        }
    }

    let mut out = Vec::new();
    for ((p, s), mut values) in c.parsed.iter().zip(c.scripts).zip(resolved) {
        // Names the script does not read were reported above, at their place in the manifest.
        if !s.info.dynamic_params {
            values.retain(|k, _| s.info.params.iter().any(|x| x.name == *k));
        }
        let params = Params::from_map(values);
        if let Err(e) = s.check_params(&params) {
            errors.push(ManifestError::new(
                "",
                format!("{} (scenario {}, profile {profile}): {e}", p.display, p.file.name),
            ));
        }
        out.push(params);
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

/// `--set` items: `(scenario index or every scenario, key, value)`.
fn parse_sets(items: &[String], names: &[String]) -> Result<Vec<(Option<usize>, String, String)>, ManifestError> {
    let bad = |message: String| ManifestError::new("--set", message);
    let mut out: Vec<(Option<usize>, String, String)> = Vec::new();
    for item in items {
        let (k, v) =
            item.split_once('=').ok_or_else(|| bad(format!("{item}: expected KEY=VALUE or SCENARIO.KEY=VALUE")))?;
        let k = k.trim();
        let (scenario, key) = match k.rsplit_once('.') {
            Some((sc, key)) => {
                let i = names.iter().position(|n| n == sc).ok_or_else(|| {
                    let hint = crate::util::suggest(sc, names.iter().map(String::as_str))
                        .map(|s| format!(" (did you mean {s}?)"))
                        .unwrap_or_default();
                    bad(format!("{item}: no scenario named '{sc}'{hint}"))
                })?;
                (Some(i), key)
            }
            None => (None, k),
        };
        if !crate::script::params::is_param_name(key) {
            return Err(bad(format!("{item}: '{key}' is not a parameter name")));
        }
        if out.iter().any(|(s, kk, _)| *s == scenario && kk == key) {
            return Err(bad(format!("{k} is given more than once")));
        }
        out.push((scenario, key.to_string(), v.to_string()));
    }
    Ok(out)
}
