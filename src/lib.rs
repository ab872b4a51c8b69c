//! mcpscript tests MCP (Model Context Protocol) servers at scale.
//!
//! # Layout
//! - [`protocol`]: JSON-RPC 2.0 messages and the MCP lifecycle (versions, method names, error codes).
//! - [`client`]: MCP client sessions over every transport (Streamable HTTP, legacy SSE,
//!   WebSocket, TCP, stdio), with request deadlines and cancellation.
//! - [`server`]: the built-in reference server behind `mcpscript serve`.
//! - [`script`]: the Rhai scripting host: sandboxed engine, one binding file per script
//!   namespace, the bridge from script threads to the async runtime, the result tree.
//! - [`load`]: the load engine: closed, open and connect phases, sharded HdrHistogram
//!   recording, worker processes, exact merges of results (segments).
//! - [`net`]: sockets and framing shared by client and server (line reader, SO_REUSEPORT,
//!   source-address binding, file limits).
//! - [`util`]: small helpers without a better home (durations, human-readable numbers,
//!   process readings and process groups).
//! - [`chaos`]: the user-space fault-injecting proxy (TCP and MCP-message faults).
//! - [`suite`]: suite files and scenario manifests, the dependency graph, the orchestrator
//!   and the watcher.
//! - [`managed`]: targets mcpscript started itself (the built-in server's workers, a server
//!   command): kill, stop, suspend, resume, restart on the same URL.
//! - [`report`]: the renderings of a run's result tree (results.json, report.html with SVG
//!   charts, results.csv and metrics.csv, summary.txt, junit.xml, summary.md).
//! - [`regress`]: regression detection: the history of runs, baselines, the statistics
//!   (z, t intervals, Mann-Whitney U, Welch, IQR, trend, ARIMA, E-divisive) and the verdict.
//! - [`console`]: what the terminal shows while mcpscript works: messages on stdout and a
//!   run's live console (stamped log lines, bars or status lines of running scenarios).
//! - [`cli`]: the `mcpscript` command line: argument parsing, commands, exit codes.
//!
//! `src/README.md` keeps the same map, one line per folder.

pub mod chaos;
pub mod cli;
pub mod client;
pub mod console;
pub mod load;
pub mod managed;
pub mod net;
pub mod protocol;
pub mod regress;
pub mod report;
pub mod script;
pub mod server;
pub mod suite;
pub mod util;
