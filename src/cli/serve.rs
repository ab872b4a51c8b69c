//! `mcpscript serve`: runs the reference server until SIGTERM or Ctrl-C, printing one
//! `listening URL` line per address once every worker is ready, and the counters (a
//! `stats {json}` line on stdout and a summary on stderr) on exit.

use super::args::ServeArgs;
use super::{runtime, CliError, Exit};
use crate::server::workers::{self, LISTENING, STATS};
use crate::server::{self, Listen, ServerConfig, ServerState};
use crate::util::duration::parse_duration;
use std::io::Write;
use std::sync::Arc;

/// Turns the arguments into a validated server configuration.
pub fn config_from(a: &ServeArgs) -> Result<ServerConfig, CliError> {
    let latency = match &a.latency {
        Some(s) => Some(parse_duration(s).map_err(|e| CliError::invalid(format!("--latency: {e}")))?),
        None => None,
    };
    let config = ServerConfig {
        listen: if a.stdio { vec![] } else { a.listen.iter().map(|u| Listen::parse(u)).collect::<Result<_, _>>()? },
        workers: a.workers,
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
    };
    if !a.stdio {
        config.validate()?;
    }
    Ok(config)
}

pub fn run(a: ServeArgs) -> Result<Exit, CliError> {
    let config = config_from(&a)?;
    let rt = runtime(0)?;
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
        println!("{STATS}{total}");
        if config.worker_index == 0 {
            eprintln!("{}", summary(&total));
        }
        Ok(Exit::Ok)
    })
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
