//! A compiled, validated script: [`Script::load`] compiles once (the AST is then shared by
//! every thread that runs it) and validates without running anything: syntax; undefined
//! variables (strict mode); every statically imported module found and compiled; every
//! plain function call naming a known function (with the nearest name suggested), and
//! namespace calls (`load::`, `chaos::`, `metrics::`) too; literal arguments of a type some
//! signature takes; literal threshold expressions and durations well-formed; the options maps
//! of `load::closed/open/ramp/connect` (names, needed options, literal values) through the
//! validators the phases themselves run. [`Script::check_params`]
//! checks `--set` values against the script's `param(name, default)` calls;
//! [`Script::check_spawns`] the literal `stdio:` targets it opens against the sandbox.

use super::ctx::ScriptCtx;
use super::diag::{self, CompileError, Diagnostic, FnLookup};
use super::engine::{self, Limits};
use super::params::{self, Params};
use super::resolver::{LoadError, ModuleSearch};
use super::threshold::Threshold;
use crate::client::Target;
use rhai::{ASTNode, Dynamic, Engine, Expr, Position, Stmt, AST};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// What compiling a script needs besides the script.
#[derive(Debug, Clone, Default)]
pub struct ScriptEnv {
    /// A stdlib folder that overrides the built-in stdlib (e.g. `./stdlib` while editing it).
    pub stdlib_dir: Option<PathBuf>,
    pub limits: Limits,
}

/// A `param("name", default)` call found in the script.
#[derive(Debug, Clone)]
pub struct ParamUse {
    pub name: String,
    /// The default when it is a literal; `None` for `param("name")` or a computed default.
    pub default: Option<Dynamic>,
    pub required: bool,
    pub file: String,
    pub pos: Position,
}

/// What validation learned about a script.
#[derive(Debug, Clone, Default)]
pub struct ScriptInfo {
    pub params: Vec<ParamUse>,
    /// Some `param()` call computes its name, so unknown `--set` names cannot be judged.
    pub dynamic_params: bool,
    /// Modules imported by literal path (the script's and its modules' imports).
    pub imports: BTreeSet<String>,
    /// Functions the script defines.
    pub functions: Vec<String>,
    /// Literal `stdio:` targets the script opens (`connect("stdio:...")`, a load phase's
    /// `target`, `chaos::proxy`), with where: each would spawn a process.
    pub spawns: Vec<(Target, String, Position)>,
}

pub struct Script {
    /// The scenario name: the file stem.
    pub name: String,
    /// The file as errors show it.
    pub file: String,
    pub ast: AST,
    pub search: Arc<ModuleSearch>,
    pub limits: Limits,
    pub info: ScriptInfo,
    pub catalog: Catalog,
}

/// Names Rhai handles itself rather than as registered functions.
const KEYWORDS: &[&str] = &[
    "Fn",
    "call",
    "curry",
    "is_def_var",
    "is_def_fn",
    "is_shared",
    "type_of",
    "print",
    "debug",
    "eval",
    "this",
    "global",
];

impl Script {
    /// Reads, compiles and validates the script at `path`.
    pub fn load(path: &Path, env: &ScriptEnv) -> Result<Script, CompileError> {
        let file = display(path);
        let text = std::fs::read_to_string(path).map_err(|e| {
            CompileError(vec![Diagnostic {
                file: file.clone(),
                line: None,
                column: None,
                message: format!("cannot read the script: {e}"),
                source_line: None,
                hint: None,
            }])
        })?;
        let dir = path.parent().map(|p| if p.as_os_str().is_empty() { PathBuf::from(".") } else { p.to_path_buf() });
        Script::compile(&file, &text, dir, env)
    }

    /// Compiles and validates `text`, shown as `file`; modules are searched in `dir` first.
    pub fn compile(file: &str, text: &str, dir: Option<PathBuf>, env: &ScriptEnv) -> Result<Script, CompileError> {
        let search = Arc::new(ModuleSearch::new(dir, env.stdlib_dir.clone()));
        search.sources.insert(file, text.into());
        let ctx = ScriptCtx::detached();
        let engine = engine::for_run(&env.limits, &search, &ctx);
        let mut ast = engine.compile(text).map_err(|e| CompileError(vec![syntax_error(file, &e, &search)]))?;
        ast.set_source(file);
        let mut v = Validator {
            engine: &engine,
            search: &search,
            catalog: Catalog::of_engine(&engine),
            info: ScriptInfo::default(),
            diags: Vec::new(),
            visited: BTreeSet::new(),
        };
        v.catalog.add_script(&ast);
        v.info.functions =
            ast.iter_functions().filter(|f| !f.name.starts_with("anon$")).map(|f| f.name.to_string()).collect();
        v.validate(file, &ast);
        if !v.diags.is_empty() {
            return Err(CompileError(v.diags));
        }
        let name =
            Path::new(file).file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| file.to_string());
        let (info, catalog) = (v.info, v.catalog);
        Ok(Script { name, file: file.to_string(), ast, search, limits: env.limits.clone(), info, catalog })
    }

    /// Checks `--set` values: each names a parameter the script reads and has the type of its
    /// default; required parameters are given.
    pub fn check_params(&self, params: &Params) -> Result<(), CompileError> {
        let mut diags = Vec::new();
        let known: BTreeSet<&str> = self.info.params.iter().map(|p| p.name.as_str()).collect();
        for name in params.names() {
            if known.contains(name) || self.info.dynamic_params {
                continue;
            }
            let hint = match crate::util::suggest(name, known.iter().copied()) {
                Some(s) => Some(format!("did you mean {s}?")),
                None if known.is_empty() => Some("the script reads no parameters".to_string()),
                None => Some(format!("its parameters: {}", known.iter().copied().collect::<Vec<_>>().join(", "))),
            };
            diags.push(Diagnostic {
                file: self.file.clone(),
                line: None,
                column: None,
                message: format!("--set {name}: the script has no parameter '{name}'"),
                source_line: None,
                hint,
            });
        }
        let mut seen = BTreeSet::new();
        for p in &self.info.params {
            let raw = params.get(&p.name);
            let msg = match (&p.default, raw) {
                (Some(d), Some(raw)) => params::convert(&p.name, raw, d).err(),
                (None, None) if p.required => {
                    Some(format!("parameter '{}' is required: pass --set {}=VALUE", p.name, p.name))
                }
                _ => None,
            };
            if let Some(m) = msg {
                if seen.insert(m.clone()) {
                    diags.push(Diagnostic::new(&p.file, p.pos, m, &self.search.sources));
                }
            }
        }
        if diags.is_empty() {
            Ok(())
        } else {
            Err(CompileError(diags))
        }
    }

    /// Reports the literal `stdio:` targets the sandbox would refuse at run time: every one
    /// but the run's own `target`, unless spawning is allowed (see `ScriptCtx::allow_target`).
    pub fn check_spawns(&self, target: Option<&Target>, allow_spawn: bool) -> Result<(), CompileError> {
        let diags: Vec<Diagnostic> = (self.info.spawns.iter())
            .filter(|(t, ..)| !allow_spawn && target != Some(t))
            .map(|(t, file, pos)| Diagnostic::new(file, *pos, super::ctx::spawn_refused(t), &self.search.sources))
            .collect();
        if diags.is_empty() {
            Ok(())
        } else {
            Err(CompileError(diags))
        }
    }
}

/// The literal `stdio:` target a call opens, if any: `connect("stdio:...")`,
/// `chaos::proxy("stdio:...", ...)`, `load::NAME(#{target: "stdio:...", ...})`.
fn spawn_literal(c: &Call) -> Option<(Target, Position)> {
    let text = |e: &Expr| match e {
        Expr::StringConstant(s, pos) => Some((s.to_string(), *pos)),
        _ => None,
    };
    let (s, pos) = match (c.namespace.as_deref(), c.name.as_str(), c.args.first()?) {
        (None, "connect", e) | (Some("chaos"), "proxy", e) => text(e)?,
        (Some("load"), _, Expr::Map(m, _)) => text(&m.0.iter().find(|(k, _)| k.name == "target")?.1)?,
        // A map of constants is folded into one value: its place is the map's.
        (Some("load"), _, Expr::DynamicConstant(d, pos)) => {
            (d.read_lock::<rhai::Map>()?.get("target")?.to_string(), *pos)
        }
        _ => return None,
    };
    match s.parse() {
        Ok(t @ Target::Stdio { .. }) => Some((t, pos)),
        _ => None,
    }
}

fn display(p: &Path) -> String {
    let s = p.display().to_string();
    s.strip_prefix("./").map(str::to_string).unwrap_or(s)
}

fn syntax_error(file: &str, e: &rhai::ParseError, search: &ModuleSearch) -> Diagnostic {
    Diagnostic::new(file, e.position(), format!("syntax error: {}", e.err_type()), &search.sources)
}

/// Every function a script can call, by name, with signatures (for validation and hints).
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    global: BTreeMap<String, Vec<String>>,
    /// Functions of imported modules, by import alias.
    modules: BTreeMap<String, BTreeMap<String, Vec<String>>>,
}

impl Catalog {
    fn of_engine(engine: &Engine) -> Catalog {
        let mut c = Catalog::default();
        // mcpscript's own functions as the reference prints them; Rhai's in script words.
        let documented = super::api::signatures();
        for sig in engine.gen_fn_signatures(true) {
            let name = sig.split('(').next().unwrap_or(&sig).trim().to_string();
            if name.contains('$') {
                continue;
            }
            let sigs = c.global.entry(name.clone()).or_default();
            match documented.get(&name) {
                Some(doc) if sigs.is_empty() => sigs.extend(doc.iter().cloned()),
                Some(_) => {}
                None => {
                    let sig = diag::script_words(&sig);
                    if !sigs.contains(&sig) {
                        sigs.push(sig);
                    }
                }
            }
        }
        for k in KEYWORDS {
            c.global.entry(k.to_string()).or_default();
        }
        for sigs in c.global.values_mut() {
            sigs.sort_by_key(|s| (s.matches(',').count(), s.clone()));
        }
        c
    }

    fn add_script(&mut self, ast: &AST) {
        for f in ast.iter_functions() {
            self.global.entry(f.name.to_string()).or_default().push(format!("{}({})", f.name, f.params.join(", ")));
        }
    }

    fn script_fns(ast: &AST) -> BTreeMap<String, Vec<String>> {
        let mut m: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for f in ast.iter_functions().filter(|f| f.access == rhai::FnAccess::Public) {
            m.entry(f.name.to_string()).or_default().push(format!("{}({})", f.name, f.params.join(", ")));
        }
        m
    }

    fn knows(&self, name: &str) -> bool {
        self.global.contains_key(name)
    }
}

impl FnLookup for Catalog {
    fn signatures(&self, name: &str) -> Vec<String> {
        match name.split_once("::") {
            // An imported module's, else a namespace's (`load::closed`).
            Some((alias, f)) if self.modules.contains_key(alias) => self
                .modules
                .get(alias)
                .and_then(|m| m.get(f))
                .map(|s| s.iter().map(|x| format!("{alias}::{x}")).collect())
                .unwrap_or_default(),
            _ => self.global.get(name).cloned().unwrap_or_default(),
        }
    }

    fn names_like(&self, name: &str) -> Vec<String> {
        match name.split_once("::") {
            Some((alias, _)) if self.modules.contains_key(alias) => {
                self.modules.get(alias).map(|m| m.keys().map(|k| format!("{alias}::{k}")).collect()).unwrap_or_default()
            }
            Some((ns, _)) => {
                let prefix = format!("{ns}::");
                self.global.keys().filter(|k| k.starts_with(&prefix)).cloned().collect()
            }
            None => self
                .global
                .keys()
                .filter(|k| k.chars().next().is_some_and(|c| c.is_alphabetic() || c == '_'))
                .cloned()
                .collect(),
        }
    }
}

struct Validator<'a> {
    engine: &'a Engine,
    search: &'a ModuleSearch,
    catalog: Catalog,
    info: ScriptInfo,
    diags: Vec<Diagnostic>,
    visited: BTreeSet<String>,
}

/// A call found while walking an AST.
struct Call {
    namespace: Option<String>,
    name: String,
    args: Vec<Expr>,
    pos: Position,
}

impl Validator<'_> {
    fn diag(&mut self, file: &str, pos: Position, msg: String, hint: Option<String>) {
        let d = Diagnostic::new(file, pos, msg, &self.search.sources).with_hint(hint);
        self.diags.push(d);
    }

    fn validate(&mut self, file: &str, ast: &AST) {
        let mut imports: Vec<(String, String, Position)> = Vec::new();
        let mut calls: Vec<Call> = Vec::new();
        ast.walk(&mut |path: &[ASTNode]| {
            match path.last() {
                Some(ASTNode::Stmt(Stmt::Import(x, pos))) => {
                    if let Expr::StringConstant(p, _) = &x.0 {
                        imports.push((p.to_string(), x.1.name.to_string(), *pos));
                    }
                }
                // A call is an expression, or a statement of its own.
                Some(ASTNode::Expr(Expr::FnCall(f, pos))) | Some(ASTNode::Stmt(Stmt::FnCall(f, pos)))
                    if !f.is_operator_call() =>
                {
                    calls.push(Call {
                        namespace: f
                            .namespace
                            .path
                            .first()
                            .map(|i| i.name.to_string())
                            .filter(|_| f.namespace.path.len() == 1),
                        name: f.name.to_string(),
                        args: f.args.iter().cloned().collect(),
                        pos: *pos,
                    })
                }
                _ => {}
            }
            true
        });
        let local: BTreeSet<String> = ast.iter_functions().map(|f| f.name.to_string()).collect();
        let mut aliases: BTreeMap<String, BTreeMap<String, Vec<String>>> = BTreeMap::new();
        for (path, alias, pos) in imports {
            self.info.imports.insert(path.clone());
            match self.search.compile(self.engine, &path) {
                Ok(m) => {
                    if !alias.is_empty() {
                        aliases.insert(alias.clone(), Catalog::script_fns(&m));
                        self.catalog.modules.insert(alias, Catalog::script_fns(&m));
                    }
                    let name = m.source().unwrap_or(&path).to_string();
                    if self.visited.insert(name.clone()) {
                        self.validate(&name, &m);
                    }
                }
                Err(LoadError::Refused(msg)) => self.diag(file, pos, msg, None),
                Err(LoadError::Syntax { name, error }) => {
                    let hint = Some(format!("imported at {}", diag::location(file, pos.line(), pos.position())));
                    self.diag(&name, error.position(), format!("syntax error: {}", error.err_type()), hint);
                }
            }
        }
        for call in calls {
            self.check_call(file, &call, &local, &aliases);
        }
    }

    fn check_call(
        &mut self,
        file: &str,
        c: &Call,
        local: &BTreeSet<String>,
        aliases: &BTreeMap<String, BTreeMap<String, Vec<String>>>,
    ) {
        if let Some((t, pos)) = spawn_literal(c) {
            self.info.spawns.push((t, file.to_string(), pos));
        }
        if let Some(ns) = &c.namespace {
            if let Some(fns) = aliases.get(ns) {
                if !fns.contains_key(&c.name) {
                    let hint = crate::util::suggest(&c.name, fns.keys().map(String::as_str))
                        .map(|s| format!("did you mean {ns}::{s}?"));
                    self.diag(file, c.pos, format!("module '{ns}' has no function '{}'", c.name), hint);
                }
                return;
            }
            // A namespace of mcpscript's own (`load::`, `chaos::`, `metrics::`).
            let full = format!("{ns}::{}", c.name);
            let names = self.catalog.names_like(&full);
            if names.is_empty() {
                return;
            }
            if !self.catalog.knows(&full) {
                let hint =
                    crate::util::suggest(&full, names.iter().map(String::as_str)).map(|s| format!("did you mean {s}?"));
                self.diag(file, c.pos, format!("namespace '{ns}' has no function '{}'", c.name), hint);
                return;
            }
            if self.check_arg_types(file, &full, c) && ns == "load" {
                self.check_load_options(file, c);
            }
            return;
        }
        if !local.contains(&c.name) && !self.catalog.knows(&c.name) {
            let mut names: Vec<String> = self.catalog.names_like(&c.name);
            names.extend(local.iter().filter(|n| !n.starts_with("anon$")).cloned());
            let hint =
                crate::util::suggest(&c.name, names.iter().map(String::as_str)).map(|s| format!("did you mean {s}?"));
            self.diag(file, c.pos, format!("unknown function '{}'", c.name), hint);
            return;
        }
        if !local.contains(&c.name) && !self.check_arg_types(file, &c.name, c) {
            return;
        }
        match (c.name.as_str(), c.args.as_slice()) {
            ("param", [name, rest @ ..]) if rest.len() <= 1 => match name {
                Expr::StringConstant(n, _) => self.info.params.push(ParamUse {
                    name: n.to_string(),
                    default: rest.first().and_then(|e| e.get_literal_value(None)),
                    required: rest.is_empty(),
                    file: file.to_string(),
                    pos: c.pos,
                }),
                _ => self.info.dynamic_params = true,
            },
            ("threshold", [_, expr]) => {
                // A literal array of strings is folded into one constant: its place is the array's.
                let exprs: Vec<(String, Position)> = match expr {
                    Expr::Array(items, _) => items
                        .iter()
                        .filter_map(|e| match e {
                            Expr::StringConstant(s, pos) => Some((s.to_string(), *pos)),
                            _ => None,
                        })
                        .collect(),
                    Expr::StringConstant(s, pos) => vec![(s.to_string(), *pos)],
                    Expr::DynamicConstant(d, pos) => (d.read_lock::<rhai::Array>().map(|a| a.clone()))
                        .unwrap_or_default()
                        .into_iter()
                        .filter_map(|v| v.into_string().ok().map(|s| (s, *pos)))
                        .collect(),
                    _ => vec![],
                };
                for (s, pos) in exprs {
                    if let Err(err) = Threshold::parse(&s) {
                        self.diag(file, pos, err.to_string(), None);
                    }
                }
            }
            ("sleep" | "duration_ms", [Expr::StringConstant(s, pos)]) => {
                if let Err(err) = crate::util::duration::parse_duration(s) {
                    self.diag(file, *pos, format!("{}: {err}", c.name), None);
                }
            }
            _ => {}
        }
    }

    /// Whether some signature of `name` takes the call's literal arguments (an argument that
    /// is not a literal may be anything); when none does, reports it as the run would.
    fn check_arg_types(&mut self, file: &str, name: &str, c: &Call) -> bool {
        let sigs = self.catalog.signatures(name);
        if sigs.is_empty() {
            return true;
        }
        let args: Vec<Option<String>> = c.args.iter().map(literal_type).collect();
        if args.iter().all(Option::is_none) {
            return true;
        }
        let fits = |sig: &String| match param_types(sig) {
            None => true,
            Some(params) => {
                params.len() == args.len()
                    && params.iter().zip(&args).all(|(p, a)| a.as_deref().is_none_or(|a| accepts(p, a)))
            }
        };
        if sigs.iter().any(fits) {
            return true;
        }
        let shown: Vec<&str> = args.iter().map(|a| a.as_deref().unwrap_or("_")).collect();
        let msg = format!("wrong argument types: {name}({})", shown.join(", "));
        let hint = diag::function_hint(name, &self.catalog);
        self.diag(file, c.pos, msg, hint);
        false
    }

    /// The options map of `load::closed/open/ramp/connect`, when the script writes it out:
    /// its option names, and the values that are literals, through the validators the
    /// phase itself runs.
    fn check_load_options(&mut self, file: &str, c: &Call) {
        use super::bindings::load_options;
        if load_options::phase_options(&c.name).is_none() {
            return;
        }
        let mut given: Vec<String> = Vec::new();
        let mut known = rhai::Map::new();
        let mut places: BTreeMap<String, Position> = BTreeMap::new();
        let map_pos = match c.args.first() {
            Some(Expr::Map(m, pos)) => {
                for (id, e) in m.0.iter() {
                    let literal = e.get_literal_value(None);
                    // `()` is no value: the option is not given.
                    if literal.as_ref().is_some_and(Dynamic::is_unit) {
                        continue;
                    }
                    given.push(id.name.to_string());
                    places.insert(id.name.to_string(), id.pos);
                    if let Some(v) = literal {
                        known.insert(id.name.clone().into(), v);
                    }
                }
                *pos
            }
            // A map of constants is folded into one value: its place is the map's.
            Some(Expr::DynamicConstant(d, pos)) => {
                let Some(m) = d.read_lock::<rhai::Map>().map(|m| m.clone()) else { return };
                given.extend(m.iter().filter(|(_, v)| !v.is_unit()).map(|(k, _)| k.to_string()));
                known = m;
                *pos
            }
            _ => return,
        };
        let given: Vec<&str> = given.iter().map(String::as_str).collect();
        for p in load_options::check_options(&c.name, &given, &known) {
            let pos = p.key.and_then(|k| places.get(&k).copied()).unwrap_or(map_pos);
            self.diag(file, pos, format!("load::{}: {}", c.name, p.message), None);
        }
    }
}

/// The type of a literal argument in script words (`int`, `string`, `map`...); `None` when
/// the argument is computed.
fn literal_type(e: &Expr) -> Option<String> {
    e.get_literal_value(None).map(|v| diag::script_words(v.type_name()))
}

/// The parameter types of a signature as the catalog writes it: `check(cond: bool, message:
/// string) -> bool` takes `[bool, string]`, `session.ping() -> map` `[Session]`; `None`
/// when it cannot be read.
fn param_types(sig: &str) -> Option<Vec<String>> {
    let open = sig.find('(')?;
    let mut depth = 0usize;
    let mut close = None;
    for (i, ch) in sig[open..].char_indices() {
        match ch {
            '(' | '<' | '[' => depth += 1,
            ')' | '>' | ']' => {
                depth -= 1;
                if depth == 0 {
                    close = Some(open + i);
                    break;
                }
            }
            _ => {}
        }
    }
    let inner = &sig[open + 1..close?];
    let mut types: Vec<String> = Vec::new();
    // The reference writes a Session's functions as methods (`session.ping()`).
    if sig[..open].contains('.') {
        types.push("Session".into());
    }
    let (mut depth, mut start) = (0usize, 0usize);
    let mut parts = Vec::new();
    for (i, ch) in inner.char_indices() {
        match ch {
            '(' | '<' | '[' => depth += 1,
            ')' | '>' | ']' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                parts.push(&inner[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if !inner.trim().is_empty() {
        parts.push(&inner[start..]);
    }
    for p in parts {
        types.push(p.split_once(':').map_or("any", |(_, t)| t).trim().to_string());
    }
    Some(types)
}

/// Whether a parameter of type `param` takes a literal of type `arg`. Only what is certain
/// is refused: a type this does not know takes anything, but a literal is never one of
/// mcpscript's own types (`Session`, `Proxy`...).
fn accepts(param: &str, arg: &str) -> bool {
    const LITERAL: &[&str] = &["int", "float", "string", "bool", "char", "array", "map", "blob", "Fn", "()"];
    let ours = param.chars().next().is_some_and(char::is_uppercase) && param != "Fn";
    param == arg || param == "any" || (!ours && !LITERAL.contains(&param))
}
