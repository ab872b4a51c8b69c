//! The Rhai scripting host: scenario scripts describe what to do, Rust does it.
//!
//! # Layout
//! - [`compile`]: [`Script`], compiled once and validated without running (syntax,
//!   variables, imports, function names, thresholds, `--set` values).
//! - [`engine`]: engine construction, sandbox and [`Limits`].
//! - [`resolver`]: the sandboxed `import` resolver and the stdlib built into the binary.
//! - [`bindings`]: what scripts call, one file per namespace (core, connections, checks,
//!   structure, load, metrics, chaos), each with `register(engine, ctx)`; [`ctx`] is
//!   their shared state.
//! - [`bridge`]: scripts run on their own threads and reach the tokio runtime through
//!   channels; [`StopSignal`] ends a script on timeout or Ctrl-C.
//! - [`runner`]: runs a script on a thread and produces its [`ScenarioResult`].
//! - [`recorder`] builds the result tree while a script runs; [`results`] is that tree as
//!   serde types (`results.json`), with the summary and the atomic write.
//! - [`threshold`]: k6-style threshold expressions. [`params`]: `--set` values.
//! - [`diag`]: syntax errors with caret, runtime errors with script stack, name suggestions.
//! - [`value`]: JSON <-> Rhai values. [`api`]: the generated reference (`mcpscript api`).

pub mod api;
pub mod bindings;
pub mod bridge;
pub mod compile;
pub mod ctx;
pub mod diag;
pub mod engine;
pub mod params;
pub mod recorder;
pub mod resolver;
pub mod results;
pub mod runner;
pub mod threshold;
pub mod value;

pub use bridge::{Bridge, BridgeMode, StopReason, StopSignal};
pub use compile::{Script, ScriptEnv};
pub use diag::CompileError;
pub use engine::Limits;
pub use params::Params;
pub use results::{RunResults, ScenarioResult, Status};
pub use runner::RunOptions;
