//! The built-in reference server behind `mcpscript serve` and the `builtin` target: a
//! spec-conformant MCP server over every transport. [`handler`] answers MCP requests
//! (lifecycle, tools, resources, prompts, load shedding, injected latency and errors);
//! [`catalog`] holds the tools, resources and prompts, [`fixtures`] those of the official
//! conformance suite; [`peer`] carries notifications and the server's own requests to the
//! client during a call; [`lines`] serves newline-delimited
//! connections (tcp, stdio); [`http`] serves Streamable HTTP, legacy SSE and WebSocket;
//! [`config`] parses listen URLs and limits; [`workers`] runs several SO_REUSEPORT processes,
//! which hand each other the client's replies to the server's requests ([`siblings`]).
//! Both protocol eras are served at once: the `initialize` handshake (2024-11-05 to
//! 2025-11-25) and the stateless revision (2026-07-28, [`stateless`]), chosen per request
//! over Streamable HTTP and per connection elsewhere.
//!
//! # Fault modes
//!
//! A server that misbehaves on purpose, so that a scenario can be shown to fail against a
//! bad server ([`Faults`]; `serve --fault-*` flags; the keys of a manifest's `server:`):
//! - `leak: SIZE` (`--fault-leak 64KB`): every request except `initialize` allocates,
//!   writes and keeps SIZE bytes (at most 16 MiB) until the server exits: RSS grows with
//!   the request count.
//! - `wrong_error_codes` (`--fault-wrong-error-codes`): every JSON-RPC error, on every
//!   transport and the transports' own included, carries -32603 instead of its code
//!   (applied in one place, [`ServerState::outgoing`]).
//! - `collapse` (`--fault-collapse`): no load shedding; every request is admitted, and
//!   once more than `max_inflight` (default 4, [`config::DEFAULT_COLLAPSE_THRESHOLD`]) are
//!   in flight, each new one waits 5 ms per request in flight
//!   ([`handler::COLLAPSE_COST_PER_INFLIGHT`]) before its reply: under overload latency
//!   grows until clients time out, and no -32000 / 503 is ever sent.
//! - `stay_down` (`--fault-stay-down`): a `serve` that a managed restart started again
//!   (`MCPSCRIPT_RESTARTS` >= 1, [`crate::managed::RESTARTS_ENV`]) exits with status 1 and
//!   a one-line message before listening, so the restart fails. No effect in-process.
//! - `jitter: DURATION`, `jitter_fraction: F` (`--fault-jitter 50ms
//!   --fault-jitter-fraction 0.1`, default fraction 0.1): that fraction of the replies
//!   (except to `initialize`), drawn at random, waits a uniformly random time in
//!   (0, DURATION] on top of `latency`.

pub mod catalog;
pub mod config;
pub mod fixtures;
pub mod handler;
pub mod http;
pub mod lines;
pub mod peer;
pub mod siblings;
pub mod stateless;
pub mod stats;
pub mod workers;
pub mod ws;

pub use config::{Faults, Listen, ServerConfig};
pub use handler::{Outcome, ServerState, SessionState};

use std::sync::Arc;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("invalid --listen '{url}': {reason}")]
    BadListen { url: String, reason: String },
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: String, source: std::io::Error },
    #[error("{0}")]
    Config(String),
    #[error("worker processes: {0}")]
    Workers(String),
    /// The TLS certificate or key cannot be used (the message names the file).
    #[error(transparent)]
    Tls(#[from] crate::net::tls::TlsError),
}

/// The next accepted connection, or `None` once `shutdown` turns true. Accept errors
/// (EMFILE and friends) back off briefly rather than spin.
pub async fn accept_or_stop(
    listener: &tokio::net::TcpListener,
    shutdown: &mut watch::Receiver<bool>,
) -> Option<tokio::net::TcpStream> {
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = shutdown.wait_for(|s| *s) => return None,
        };
        match accepted {
            Ok((stream, _)) => return Some(stream),
            Err(e) => {
                tracing::warn!("accept failed: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
        }
    }
}

/// A server running inside this process.
pub struct RunningServer {
    pub state: Arc<ServerState>,
    urls: Vec<String>,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

/// Binds every listen address (with SO_REUSEPORT, so worker processes can join) and
/// starts serving. Port 0 picks a free port; [`RunningServer::urls`] has the real ones.
pub async fn start(config: ServerConfig) -> Result<RunningServer, ServerError> {
    config.validate()?;
    let state = Arc::new(ServerState::new(config));
    let (tx, rx) = watch::channel(false);
    let mut urls = Vec::new();
    let mut tasks = Vec::new();
    // Checked before binding anything: a bad certificate or key fails the start.
    let acceptor = match &state.config.tls {
        Some(files) if state.config.listen.iter().any(Listen::is_tls) => Some(crate::net::tls::server_acceptor(files)?),
        _ => None,
    };
    for (index, listen) in state.config.listen.clone().into_iter().enumerate() {
        if state.config.worker_index == 0 && listen.addr().port() != 0 {
            // SO_REUSEPORT would let a second server silently share a taken port; only
            // our own workers may join, so the first process insists on a free one.
            std::net::TcpListener::bind(listen.addr())
                .map_err(|source| ServerError::Bind { addr: listen.to_string(), source })?;
        }
        let listener = crate::net::socket::reuseport_listener(listen.addr())
            .map_err(|source| ServerError::Bind { addr: listen.to_string(), source })?;
        let bound = listen.with_port(
            listener.local_addr().map_err(|source| ServerError::Bind { addr: listen.to_string(), source })?.port(),
        );
        urls.push(bound.to_string());
        let (state, rx) = (state.clone(), rx.clone());
        tasks.push(match bound {
            Listen::Tcp(_) => tokio::spawn(lines::serve_tcp(listener, state, rx)),
            Listen::Http(..) | Listen::LegacySse(..) | Listen::Ws(..) => {
                let tls = if bound.is_tls() { acceptor.clone() } else { None };
                tokio::spawn(http::serve(listener, index, bound, tls, state, rx))
            }
        });
    }
    Ok(RunningServer { state, urls, shutdown: tx, tasks })
}

impl RunningServer {
    /// The URLs served, with the ports actually bound.
    pub fn urls(&self) -> &[String] {
        &self.urls
    }

    /// The first URL whose scheme is `scheme` (`tcp`, `http`, `sse+http`, `ws`).
    pub fn url(&self, scheme: &str) -> Option<&str> {
        let prefix = format!("{scheme}://");
        self.urls.iter().find(|u| u.starts_with(&prefix)).map(String::as_str)
    }

    /// Stops accepting, closes open connections and waits for the listeners to end.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
    }
}
