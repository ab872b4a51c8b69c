//! Engine construction: the sandbox and its limits. Every engine gets the operation,
//! call-depth, expression-depth and size limits of [`Limits`], strict variables (an
//! undefined variable is a compile error), no `eval`, and the sandboxed module resolver.
//! Rhai itself has no file, process or network functions; the only way out of the
//! sandbox is mcpscript's own bindings. A run's engine also gets the bindings, a progress
//! callback that stops the script when its [`StopSignal`](super::bridge::StopSignal)
//! fires or the process outgrows `max_memory`, and `print`/`debug` routed to the script's log.

use super::bindings;
use super::ctx::ScriptCtx;
use super::resolver::{ModuleSearch, Resolver};
use rhai::{Dynamic, Engine};
use std::sync::Arc;

/// The sandbox's limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Operations per script run (0: unlimited). Stops runaway loops.
    pub max_operations: u64,
    /// Nested function calls.
    pub max_call_levels: usize,
    /// Expression nesting at the top level and inside functions.
    pub max_expr_depth: usize,
    pub max_fn_expr_depth: usize,
    /// Bytes in one string (above the largest message a server may send).
    pub max_string_size: usize,
    /// Items in one array / entries in one map.
    pub max_array_size: usize,
    pub max_map_size: usize,
    /// Modules imported per run.
    pub max_modules: usize,
    /// Resident memory of the process (bytes; 0: unlimited) beyond which a running script
    /// is stopped: the per-value limits above do not bound a script's total (twenty 60 MB
    /// strings), this does. Checked every [`MEMORY_CHECK_OPS`] operations and whenever the
    /// script's thread allocated [`MEMORY_CHECK_BYTES`] since the last check.
    pub max_memory: u64,
}

/// How often (in script operations) a run's memory is compared with `max_memory`: reading
/// the process's resident size costs a few microseconds.
pub const MEMORY_CHECK_OPS: u64 = 4096;

/// Also compared as soon as the script's thread has allocated this much since the last
/// comparison (the binary counts allocations per thread, see `util::alloc`): one operation
/// can build a 60 MB string.
pub const MEMORY_CHECK_BYTES: u64 = 16 * 1024 * 1024;

/// The termination token of a script stopped by `max_memory`.
pub const MEMORY_TOKEN: &str = "memory";

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_operations: 100_000_000,
            max_call_levels: 64,
            max_expr_depth: 64,
            max_fn_expr_depth: 48,
            max_string_size: 64 * 1024 * 1024,
            max_array_size: 4_000_000,
            max_map_size: 1_000_000,
            max_modules: 64,
            max_memory: 1024 * 1024 * 1024,
        }
    }
}

/// An engine with the sandbox and limits but no bindings.
pub fn sandboxed(limits: &Limits, search: &Arc<ModuleSearch>) -> Engine {
    let mut e = Engine::new();
    e.set_max_operations(limits.max_operations);
    e.set_max_call_levels(limits.max_call_levels);
    e.set_max_expr_depths(limits.max_expr_depth, limits.max_fn_expr_depth);
    e.set_max_string_size(limits.max_string_size);
    e.set_max_array_size(limits.max_array_size);
    e.set_max_map_size(limits.max_map_size);
    e.set_max_modules(limits.max_modules);
    e.set_strict_variables(true);
    // eval would run text that static checks never saw.
    e.disable_symbol("eval");
    e.set_module_resolver(Resolver::new(search.clone()));
    e
}

/// The engine of one script run: sandbox, bindings, stop checks, log routing.
pub fn for_run(limits: &Limits, search: &Arc<ModuleSearch>, ctx: &Arc<ScriptCtx>) -> Engine {
    let mut e = sandboxed(limits, search);
    bindings::register_all(&mut e, ctx);
    let stop = ctx.bridge.stop_signal().clone();
    let budget = limits.max_memory;
    // What this (the script's) thread had allocated at the last memory check.
    let checked_at = std::sync::atomic::AtomicU64::new(crate::util::alloc::allocated_by_this_thread());
    e.on_progress(move |ops| {
        if let Some(r) = stop.reason() {
            return Some(Dynamic::from(r.as_str()));
        }
        if budget == 0 {
            return None;
        }
        let allocated = crate::util::alloc::allocated_by_this_thread();
        let since = allocated.wrapping_sub(checked_at.load(std::sync::atomic::Ordering::Relaxed));
        if ops % MEMORY_CHECK_OPS != 0 && since < MEMORY_CHECK_BYTES {
            return None;
        }
        checked_at.store(allocated, std::sync::atomic::Ordering::Relaxed);
        let over = crate::util::proc::self_rss_bytes().is_some_and(|rss| rss > budget);
        over.then(|| Dynamic::from(MEMORY_TOKEN))
    });
    let c = ctx.clone();
    e.on_print(move |s| c.log(s));
    let c = ctx.clone();
    e.on_debug(move |s, src, pos| match pos.line() {
        Some(l) => c.log(&format!("{}:{l}: {s}", src.unwrap_or("script"))),
        None => c.log(s),
    });
    e
}
