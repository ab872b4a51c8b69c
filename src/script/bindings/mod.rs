//! The functions scripts call, one file per namespace, each with
//! `register(engine, ctx)`. Every function is registered through [`script_fn!`] with its
//! parameter names and `///` doc comments, which is what `mcpscript api` prints. No
//! binding panics: every host failure goes through [`host_error`] (or [`bridge_error`]) and
//! becomes a Rhai error at the call's position. Networking stays in `crate::client`; the
//! bindings only convert values and cross the [`Bridge`](super::bridge::Bridge).
//!
//! Adding a namespace (load, chaos, metrics) is one new file plus one line in [`NAMESPACES`]
//! (`load_options` holds the load namespace's option validators, shared with `mcpscript check`).

pub mod chaos;
pub mod checks;
pub mod connections;
pub mod core;
pub mod load;
pub mod load_options;
pub mod metrics;
pub mod session_extras;
pub mod structure;

use super::bridge::BridgeError;
use super::ctx::ScriptCtx;
use super::recorder::Site;
use rhai::{Engine, EvalAltResult, FuncRegistration, Module, NativeCallContext, RhaiNativeFunc, Variant};
use std::any::TypeId;
use std::sync::Arc;
use std::time::Duration;

/// A script namespace: its name and summary for the reference, and how to register it.
pub struct Namespace {
    pub name: &'static str,
    /// One paragraph for `mcpscript api`.
    pub doc: &'static str,
    pub register: fn(&mut Engine, &Arc<ScriptCtx>),
}

/// Every namespace, in the order `mcpscript api` prints them.
pub const NAMESPACES: &[Namespace] = &[
    core::NAMESPACE,
    connections::NAMESPACE,
    checks::NAMESPACE,
    structure::NAMESPACE,
    load::NAMESPACE,
    metrics::NAMESPACE,
    chaos::NAMESPACE,
];

/// Registers every namespace into `engine`.
pub fn register_all(engine: &mut Engine, ctx: &Arc<ScriptCtx>) {
    for ns in NAMESPACES {
        (ns.register)(engine, ctx);
    }
}

/// Registers a function with parameter names and doc comments:
///
/// ```ignore
/// script_fn!(engine,
///     /// Counts a passed or failed assertion.
///     "check"(cond, message) => move |cond: bool, message: &str| -> bool { ... });
/// ```
/// Types come from the closure itself, so the reference cannot drift from the code.
macro_rules! script_fn {
    ($engine:expr, $(#[doc = $doc:literal])* $name:literal ($($param:ident),*) => $f:expr) => {
        $crate::script::bindings::register_documented($engine, $name, &[$(stringify!($param)),*], &[$($doc),*], $f)
    };
}
pub(crate) use script_fn;

/// Registers `f` as `name` with the given parameter names and doc lines (see [`script_fn!`]).
pub fn register_documented<A: 'static, const N: usize, const X: bool, R: Variant + Clone, const F: bool, FUNC>(
    engine: &mut Engine,
    name: &str,
    params: &[&str],
    docs: &[&str],
    f: FUNC,
) where
    FUNC: RhaiNativeFunc<A, N, X, R, F> + Send + Sync + 'static,
{
    let info = signature::<A, N, X, R, F, FUNC>(engine, name, params);
    FuncRegistration::new(name).with_params_info(info).with_comments([doc_block(docs)]).register_into_engine(engine, f);
}

/// Registers `f` as `NAME` in a namespace's `module` (`load::run`, `chaos::kill`), with
/// parameter names and doc lines as [`register_documented`] does.
pub fn module_fn<A: 'static, const N: usize, const X: bool, R: Variant + Clone, const F: bool, FUNC>(
    engine: &Engine,
    module: &mut Module,
    name: &str,
    params: &[&str],
    docs: &[&str],
    f: FUNC,
) where
    FUNC: RhaiNativeFunc<A, N, X, R, F> + Send + Sync + 'static,
{
    let info = signature::<A, N, X, R, F, FUNC>(engine, name, params);
    FuncRegistration::new(name).with_params_info(info).with_comments([doc_block(docs)]).set_into_module(module, f);
}

/// `name: type` for each parameter, then the return type unless it is `()`.
fn signature<A: 'static, const N: usize, const X: bool, R: Variant + Clone, const F: bool, FUNC>(
    engine: &Engine,
    name: &str,
    params: &[&str],
) -> Vec<String>
where
    FUNC: RhaiNativeFunc<A, N, X, R, F>,
{
    let types = FUNC::param_names();
    debug_assert_eq!(types.len(), params.len(), "script function {name}: parameter names do not match the closure");
    let mut info: Vec<String> = types
        .iter()
        .enumerate()
        .map(|(i, t)| format!("{}: {}", params.get(i).copied().unwrap_or("_"), display_type(engine, t)))
        .collect();
    if TypeId::of::<R>() != TypeId::of::<()>() {
        info.push(display_type(engine, std::any::type_name::<R>()));
    }
    info
}

/// Registers a property getter (`session.target`) with doc comments.
pub fn register_getter<T: Variant + Clone, R: Variant + Clone>(
    engine: &mut Engine,
    prop: &str,
    docs: &[&str],
    f: impl Fn(&mut T) -> R + Send + Sync + 'static,
) {
    let info = [
        format!("self: {}", display_type(engine, std::any::type_name::<T>())),
        display_type(engine, std::any::type_name::<R>()),
    ];
    FuncRegistration::new_getter(prop)
        .with_params_info(info)
        .with_comments([doc_block(docs)])
        .register_into_engine(engine, f);
}

fn doc_block(docs: &[&str]) -> String {
    docs.iter().map(|l| format!("///{l}")).collect::<Vec<_>>().join("\n")
}

/// A Rust type name as scripts know it: `int`, `float`, `string`, `map`, `Session`, `any`.
pub fn display_type(engine: &Engine, raw: &str) -> String {
    let raw = raw.trim_start_matches("&mut ").trim_start_matches('&');
    let mapped = engine.map_type_name(raw);
    match mapped {
        "i64" => "int".into(),
        "f64" => "float".into(),
        "str" | "ImmutableString" | "rhai::ImmutableString" | "alloc::string::String" => "string".into(),
        m if m.ends_with("Dynamic") => "any".into(),
        m => m.rsplit("::").next().unwrap_or(m).into(),
    }
}

/// The termination token of `skip(reason)`: it ends the script (uncatchable) and the
/// scenario is recorded as skipped, not cancelled.
pub const SKIP_TOKEN: &str = "skip";

/// Whether `e` is `skip(reason)` ending the script, possibly from inside functions and
/// imported modules.
pub fn is_skip(e: &EvalAltResult) -> bool {
    match e {
        EvalAltResult::ErrorTerminated(t, _) => t.to_string() == SKIP_TOKEN,
        EvalAltResult::ErrorInFunctionCall(_, _, inner, _) | EvalAltResult::ErrorInModule(_, inner, _) => {
            is_skip(inner)
        }
        _ => false,
    }
}

/// A host failure as a script error at the call's position.
pub fn host_error(nc: &NativeCallContext, message: impl Into<String>) -> Box<EvalAltResult> {
    EvalAltResult::ErrorRuntime(message.into().into(), nc.call_position()).into()
}

/// A bridge failure: a stop becomes the (uncatchable) termination error, anything else a
/// runtime error naming what was being done.
pub fn bridge_error(nc: &NativeCallContext, what: &str, e: BridgeError) -> Box<EvalAltResult> {
    match e {
        BridgeError::Stopped(r) => EvalAltResult::ErrorTerminated(r.as_str().into(), nc.call_position()).into(),
        other => host_error(nc, format!("{what}: {other}")),
    }
}

/// A bad argument or option (a malformed duration, an unknown option, a malformed threshold):
/// a script error at the call's position, like [`host_error`], that the recorder also notes,
/// so the run ends as bad input (exit 2, `ScriptErrorKind::Param`) like a wrong `--set` value rather
/// than as a failure. A server error or a failed request is never this.
pub fn bad_input(ctx: &ScriptCtx, nc: &NativeCallContext, message: impl Into<String>) -> Box<EvalAltResult> {
    let message = message.into();
    ctx.rec().bad_input(&message);
    host_error(nc, message)
}

/// A duration argument (`"250ms"`, `"5s"`), or bad input naming the function.
pub fn duration_arg(
    ctx: &ScriptCtx,
    nc: &NativeCallContext,
    what: &str,
    s: &str,
) -> Result<Duration, Box<EvalAltResult>> {
    crate::util::duration::parse_duration(s).map_err(|e| bad_input(ctx, nc, format!("{what}: {e}")))
}

/// Where the current call is, for recording checks.
pub fn site(nc: &NativeCallContext) -> Site {
    Site { file: nc.call_source().map(str::to_string), line: nc.call_position().line() }
}

/// `file:line` of the current call.
pub fn site_string(nc: &NativeCallContext) -> String {
    let s = site(nc);
    super::diag::location(s.file.as_deref().unwrap_or("script"), s.line, None)
}
