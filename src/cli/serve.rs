//! `mcpscript serve`: runs the reference server until SIGTERM or Ctrl-C, printing one
//! `listening URL` line per address once every worker is ready, and the counters (a
//! `stats {json}` line on stdout and a summary on stderr) on exit. With
//! `--fault-stay-down`, a `serve` that a managed restart started again
//! ([`crate::managed::RESTARTS_ENV`] at 1 or more) exits with status 1 before listening.

use super::args::ServeArgs;
use super::{process_runtime, CliError, Exit};
use crate::net::tls::ServerTlsFiles;
use crate::server::workers::{self, LISTENING, STATS};
use crate::server::{self, Faults, Listen, ServerConfig, ServerState};
use crate::util::duration::parse_duration;
use crate::util::size::parse_size;
use std::io::Write;
use std::sync::Arc;

/// Turns the arguments into a validated server configuration.
pub fn config_from(a: &ServeArgs) -> Result<ServerConfig, CliError> {
    let latency = match &a.latency {
        Some(s) => Some(parse_duration(s).map_err(|e| CliError::invalid(format!("--latency: {e}")))?),
        None => None,
    };
    let faults = Faults {
        leak: match &a.fault_leak {
            Some(s) => Some(parse_size(s).map_err(|e| CliError::invalid(format!("--fault-leak: {e}")))?),
            None => None,
        },
        wrong_error_codes: a.fault_wrong_error_codes,
        collapse: a.fault_collapse,
        stay_down: a.fault_stay_down,
        jitter: match &a.fault_jitter {
            Some(s) => Some(parse_duration(s).map_err(|e| CliError::invalid(format!("--fault-jitter: {e}")))?),
            None => None,
        },
        jitter_fraction: a.fault_jitter_fraction,
    };
    let config = ServerConfig {
        listen: if a.stdio { vec![] } else { a.listen.iter().map(|u| Listen::parse(u)).collect::<Result<_, _>>()? },
        workers: a.workers,
        threads: if a.threads > 0 {
            a.threads
        } else {
            let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
            (cores / a.workers.max(1)).max(1)
        },
        max_connections: a.max_connections,
        max_inflight: a.max_inflight,
        latency,
        error_rate: a.error_rate,
        auth_token: a.auth_token.clone(),
        allowed_origins: a.allow_origin.clone(),
        allow_remote: a.allow_remote,
        max_message_size: a.max_message_size,
        worker_index: a.worker_index,
        // Workers inherit the parent's key so that any of them accepts its session ids.
        session_secret: std::env::var(workers::SECRET_ENV)
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(rand::random),
        faults,
        tls: match (&a.tls_cert, &a.tls_key) {
            (Some(cert), Some(key)) => Some(ServerTlsFiles { cert: absolute(cert)?, key: absolute(key)? }),
            _ => None,
        },
    };
    if a.stdio {
        config.faults.validate()?;
    } else {
        config.validate()?;
    }
    Ok(config)
}

/// `path` made absolute, so that worker processes find it wherever they run.
fn absolute(path: &std::path::Path) -> Result<std::path::PathBuf, CliError> {
    std::path::absolute(path).map_err(|e| CliError::invalid(format!("{}: {e}", path.display())))
}

pub fn run(a: ServeArgs) -> Result<Exit, CliError> {
    let config = config_from(&a)?;
    if config.faults.stay_down {
        let restarts = restarts_from_env();
        if restarts >= 1 {
            return Err(CliError::failed(format!(
                "--fault-stay-down: not serving, this is restart {restarts} ({}={restarts}) and the server stays down after a kill",
                crate::managed::RESTARTS_ENV
            )));
        }
    }
    let rt = process_runtime(config.threads)?;
    rt.block_on(async move {
        if a.stdio {
            let state = Arc::new(ServerState::new(config));
            server::lines::serve_stdio(state.clone()).await;
            eprintln!("{}", summary(&state.stats.snapshot()));
            return Ok(Exit::Ok);
        }
        crate::util::proc::raise_nofile_limit();
        let running = server::start(config.clone()).await?;
        let workers = if config.workers > 1 { Some(workers::spawn(&config, running.urls()).await?) } else { None };
        {
            let mut out = std::io::stdout().lock();
            for url in running.urls() {
                let _ = writeln!(out, "{LISTENING}{url}");
            }
            let _ = out.flush();
        }
        wait_for_stop_signal().await;
        let mut snaps = vec![running.state.stats.snapshot()];
        running.shutdown().await;
        if let Some(w) = workers {
            snaps.extend(w.stop().await);
        }
        let total = if snaps.len() == 1 { snaps.remove(0) } else { server::stats::sum_snapshots(&snaps) };
        crate::console::say(&format!("{STATS}{total}\n"));
        if config.worker_index == 0 {
            eprintln!("{}", summary(&total));
        }
        Ok(Exit::Ok)
    })
}

/// How many times a managed restart started this process again (0 when it did not).
fn restarts_from_env() -> u32 {
    std::env::var(crate::managed::RESTARTS_ENV).ok().and_then(|v| v.trim().parse().ok()).unwrap_or(0)
}

/// One line for people: what the server did.
fn summary(s: &serde_json::Value) -> String {
    let n = |k: &str| s.get(k).and_then(serde_json::Value::as_u64).unwrap_or(0);
    format!(
        "mcpscript serve: {} connections, {} sessions, {} requests ({} ok, {} errors, {} shed), {} parse errors; rss {:.1} MB",
        n("connections_total"),
        n("sessions_initialized"),
        n("requests"),
        n("responses_ok"),
        n("responses_error"),
        n("shed"),
        n("parse_errors"),
        n("rss_bytes") as f64 / 1e6
    )
}

/// Resolves on SIGTERM or SIGINT.
pub async fn wait_for_stop_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
