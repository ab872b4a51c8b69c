//! Where `import "name"` finds modules, inside the sandbox: the script's own folder first,
//! then the stdlib folder (when one is configured), then the stdlib compiled into the
//! binary ([`STDLIB`]). Module paths are names (`"stats"`, `"lib/helpers"`): absolute paths,
//! `..` and anything that would leave those folders are refused, so `import` cannot read
//! arbitrary files. Compiled module ASTs are shared by every engine of a script; each engine
//! evaluates its own module instances.

use rhai::module_resolvers::ModuleResolver;
use rhai::{Engine, EvalAltResult, GlobalRuntimeState, Module, Position, Scope, Shared, AST};

type SharedModule = Shared<Module>;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// The stdlib modules built into the binary, by import name.
pub const STDLIB: &[(&str, &str)] = &[
    ("assert", include_str!("../../stdlib/assert.rhai")),
    ("mcp", include_str!("../../stdlib/mcp.rhai")),
    ("stats", include_str!("../../stdlib/stats.rhai")),
];

/// Largest module file accepted.
const MAX_MODULE_BYTES: u64 = 1024 * 1024;

/// Source texts by the name errors show (`scripts/x.rhai`, `stdlib/stats.rhai`), for
/// printing the offending line of an error.
#[derive(Debug, Default)]
pub struct SourceMap(Mutex<HashMap<String, Arc<str>>>);

impl SourceMap {
    pub fn insert(&self, name: &str, text: Arc<str>) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).insert(name.to_string(), text);
    }

    pub fn get(&self, name: &str) -> Option<Arc<str>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).get(name).cloned()
    }

    /// Whether any loaded source (the script or a module) contains `text`.
    pub fn any_contains(&self, text: &str) -> bool {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).values().any(|s| s.contains(text))
    }
}

/// Where modules come from; shared by every engine running one script.
#[derive(Debug)]
pub struct ModuleSearch {
    dirs: Vec<PathBuf>,
    pub sources: Arc<SourceMap>,
    asts: Mutex<HashMap<String, Arc<AST>>>,
}

/// Why a module could not be loaded.
#[derive(Debug)]
pub enum LoadError {
    /// The path is not allowed or the module does not exist.
    Refused(String),
    /// The module does not compile; the error is inside the module's source `name`.
    Syntax { name: String, error: rhai::ParseError },
}

impl ModuleSearch {
    /// Searches `script_dir` (if any), then `stdlib_dir` (if any), then the built-in stdlib.
    pub fn new(script_dir: Option<PathBuf>, stdlib_dir: Option<PathBuf>) -> ModuleSearch {
        let dirs = script_dir.into_iter().chain(stdlib_dir).collect();
        ModuleSearch { dirs, sources: Arc::new(SourceMap::default()), asts: Mutex::new(HashMap::new()) }
    }

    /// Finds a module's source: its display name and text.
    pub fn find(&self, path: &str) -> Result<(String, Arc<str>), String> {
        check_module_path(path)?;
        for dir in &self.dirs {
            let file = dir.join(format!("{path}.rhai"));
            if !file.is_file() {
                continue;
            }
            let inside = match (file.canonicalize(), dir.canonicalize()) {
                (Ok(f), Ok(d)) => f.starts_with(d),
                _ => false,
            };
            if !inside {
                return Err(format!(
                    "import \"{path}\": {} leads outside {} (the sandbox allows no other files)",
                    file.display(),
                    dir.display()
                ));
            }
            let len = std::fs::metadata(&file).map(|m| m.len()).unwrap_or(0);
            if len > MAX_MODULE_BYTES {
                return Err(format!("import \"{path}\": {} is larger than {MAX_MODULE_BYTES} bytes", file.display()));
            }
            let text = std::fs::read_to_string(&file)
                .map_err(|e| format!("import \"{path}\": cannot read {}: {e}", file.display()))?;
            return Ok((display(&file), text.into()));
        }
        if let Some((_, text)) = STDLIB.iter().find(|(name, _)| *name == path) {
            return Ok((format!("stdlib/{path}.rhai"), Arc::from(*text)));
        }
        let mut places: Vec<String> = self.dirs.iter().map(|d| format!("{}/", display(d))).collect();
        places.push(format!("the built-in stdlib ({})", STDLIB.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")));
        let hint = crate::util::suggest(path, STDLIB.iter().map(|(n, _)| *n))
            .map(|s| format!(" Did you mean \"{s}\"?"))
            .unwrap_or_default();
        Err(format!("module \"{path}\" not found; looked in {}.{hint}", places.join(", ")))
    }

    /// The compiled AST of a module (compiled once, then shared).
    pub fn compile(&self, engine: &Engine, path: &str) -> Result<Arc<AST>, LoadError> {
        if let Some(ast) = self.asts.lock().unwrap_or_else(|e| e.into_inner()).get(path) {
            return Ok(ast.clone());
        }
        let (name, text) = self.find(path).map_err(LoadError::Refused)?;
        self.sources.insert(&name, text.clone());
        let mut ast = engine.compile(&*text).map_err(|error| LoadError::Syntax { name: name.clone(), error })?;
        ast.set_source(name);
        let ast = Arc::new(ast);
        self.asts.lock().unwrap_or_else(|e| e.into_inner()).insert(path.to_string(), ast.clone());
        Ok(ast)
    }
}

/// Allows names made of letters, digits, `_` and `-`, separated by `/`.
pub fn check_module_path(path: &str) -> Result<(), String> {
    let ok_segment = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if path.len() <= 200 && path.split('/').all(ok_segment) {
        return Ok(());
    }
    Err(format!(
        "import \"{path}\" is refused: module paths are names such as \"stats\" or \"lib/helpers\", looked up in the script's folder and stdlib/; absolute paths, '..', '.' and file extensions are not allowed (scripts have no file access)"
    ))
}

fn display(p: &Path) -> String {
    let s = p.display().to_string();
    s.strip_prefix("./").map(str::to_string).unwrap_or(s)
}

/// The module resolver of one engine: shared search and ASTs, its own module instances.
pub struct Resolver {
    search: Arc<ModuleSearch>,
    modules: Mutex<HashMap<String, SharedModule>>,
}

impl Resolver {
    pub fn new(search: Arc<ModuleSearch>) -> Resolver {
        Resolver { search, modules: Mutex::new(HashMap::new()) }
    }

    fn load(
        &self,
        engine: &Engine,
        global: Option<&mut GlobalRuntimeState>,
        path: &str,
        pos: Position,
    ) -> Result<SharedModule, Box<EvalAltResult>> {
        if let Some(m) = self.modules.lock().unwrap_or_else(|e| e.into_inner()).get(path) {
            return Ok(m.clone());
        }
        let ast = match self.search.compile(engine, path) {
            Ok(ast) => ast,
            Err(LoadError::Refused(msg)) => {
                return Err(EvalAltResult::ErrorInModule(
                    path.to_string(),
                    EvalAltResult::ErrorRuntime(msg.into(), pos).into(),
                    pos,
                )
                .into())
            }
            Err(LoadError::Syntax { name, error }) => {
                return Err(EvalAltResult::ErrorInModule(name, error.into(), pos).into())
            }
        };
        let name = ast.source().unwrap_or(path).to_string();
        let module = match global {
            Some(g) => Module::eval_ast_as_new_raw(engine, &mut Scope::new(), g, &ast),
            None => Module::eval_ast_as_new(Scope::new(), &ast, engine),
        }
        .map_err(|e| Box::new(EvalAltResult::ErrorInModule(name, e, pos)))?;
        let module: SharedModule = module.into();
        self.modules.lock().unwrap_or_else(|e| e.into_inner()).insert(path.to_string(), module.clone());
        Ok(module)
    }
}

impl ModuleResolver for Resolver {
    fn resolve(
        &self,
        engine: &Engine,
        _source: Option<&str>,
        path: &str,
        pos: Position,
    ) -> Result<SharedModule, Box<EvalAltResult>> {
        self.load(engine, None, path, pos)
    }

    fn resolve_raw(
        &self,
        engine: &Engine,
        global: &mut GlobalRuntimeState,
        _scope: &mut Scope,
        path: &str,
        pos: Position,
    ) -> Result<SharedModule, Box<EvalAltResult>> {
        self.load(engine, Some(global), path, pos)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_paths_that_leave_the_sandbox() {
        for p in ["/etc/passwd", "../secret", "a/../b", "./x", "x.rhai", "", "a//b", "c:\\x"] {
            assert!(check_module_path(p).is_err(), "{p}");
        }
        for p in ["stats", "lib/helpers", "my-mod_2"] {
            assert!(check_module_path(p).is_ok(), "{p}");
        }
    }

    #[test]
    fn finds_builtin_stdlib_and_suggests() {
        let s = ModuleSearch::new(None, None);
        assert_eq!(s.find("stats").unwrap().0, "stdlib/stats.rhai");
        let e = s.find("stat").unwrap_err();
        assert!(e.contains("not found") && e.contains("Did you mean \"stats\""), "{e}");
    }
}
