//! The built-in reference server behind `mcpscript serve` and the `builtin` target: a
//! spec-conformant MCP server over every transport. [`handler`] answers MCP requests
//! (lifecycle, tools, resources, prompts, load shedding, injected latency and errors);
//! [`catalog`] holds the tools, resources and prompts; [`lines`] serves newline-delimited
//! connections (tcp, stdio); [`http`] serves Streamable HTTP, legacy SSE and WebSocket;
//! [`config`] parses listen URLs and limits; [`workers`] runs several SO_REUSEPORT processes.

pub mod catalog;
pub mod config;
pub mod handler;
pub mod http;
pub mod lines;
pub mod stats;
pub mod workers;
pub mod ws;

pub use config::{Listen, ServerConfig};
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
    for listen in state.config.listen.clone() {
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
                tokio::spawn(http::serve(listener, bound, state, rx))
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
