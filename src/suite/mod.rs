//! Suites: a suite file lists scenario manifests; each manifest names a script, its
//! dependencies, resources, timeout and parameters per profile. This folder turns the
//! files into a validated plan and runs it.
//!
//! # Layout
//! - [`manifest`]: the YAML files as serde types; located errors with suggestions.
//! - [`load`]: files to a [`SuitePlan`]: profile, `--set`, `--only`, compiled scripts.
//! - [`graph`]: the dependency graph (petgraph): order, levels, cycles, critical path.
//! - [`requires`]: what a scenario needs of its target, against what the target offers.
//! - [`schedule`]: which scenario may start now (dependencies, workers, resources).
//! - [`orchestrator`]: runs a plan on worker threads, servers per scenario, overhead figures.
//! - [`server`]: the suite's managed server process.
//! - [`watch`]: `mcpscript watch`: re-runs what changed.

pub mod graph;
pub mod load;
pub mod manifest;
pub mod orchestrator;
pub mod requires;
pub mod schedule;
pub mod server;
pub mod watch;

pub use load::{is_suite_file, load, ScenarioPlan, SuiteOptions, SuitePlan};
pub use manifest::SuiteError;
