//! Suites: a suite file lists scenario manifests; each manifest names a script, its
//! dependencies, resources, timeout and parameters per profile. This folder turns the
//! files into a validated plan and runs it.
//!
//! # Layout
//! - [`manifest`]: the YAML files as serde types; located errors with suggestions.
//! - [`plan`]: files to a [`SuitePlan`]: profile, `--set`, `--only`, compiled scripts.
//! - [`graph`]: the dependency graph (petgraph): order, levels, cycles, critical path.
//! - [`requires`]: what a scenario needs of its target, against what the target offers.
//! - [`schedule`]: which scenario may start now (dependencies, workers, resources).
//! - [`orchestrator`]: runs a plan on worker threads, servers per scenario, overhead figures.
//! - [`server`]: the suite's managed server process.
//! - [`watch`]: the watcher's file watching and what a change re-runs (`mcpscript watch`).

pub mod graph;
pub mod manifest;
pub mod orchestrator;
pub mod plan;
pub mod requires;
pub mod schedule;
pub mod server;
pub mod watch;

pub use manifest::SuiteError;
pub use plan::{is_suite_file, ScenarioPlan, SuiteOptions, SuitePlan};
