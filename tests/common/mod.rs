//! Shared support for the integration tests: include it with `mod common;`.
//!
//! Not every test binary uses every helper, hence the blanket `dead_code` allowance.
#![allow(dead_code)]

pub mod interop;
pub mod oauth;
pub mod raw_http;

use mcpscript::client::{ClientError, ClientOptions};
use serde_json::Value;
use std::net::{Ipv4Addr, TcpListener};
use std::sync::Arc;

/// A TCP port on 127.0.0.1 that was free a moment ago (bind port 0, read it, release it).
///
/// Another process may take it before the caller binds it; callers that start a
/// server on it should treat "address in use" as a reason to retry with a new port.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind 127.0.0.1:0 to find a free port");
    listener.local_addr().expect("local_addr of a bound listener").port()
}

/// Client options with every default.
pub fn opts() -> Arc<ClientOptions> {
    Arc::new(ClientOptions::default())
}

/// The text of a tool result's first content item ("" when there is none).
pub fn text(v: &Value) -> &str {
    v["content"][0]["text"].as_str().unwrap_or_default()
}

/// The code of a JSON-RPC error reply; panics (failing the test) on any other error.
pub fn rpc_code(e: &ClientError) -> i64 {
    match e {
        ClientError::Rpc { error, .. } => error.code,
        other => panic!("expected a JSON-RPC error, got {other}"),
    }
}

/// How often [`wait_until`] and [`wait_until_async`] re-check their condition.
const POLL: std::time::Duration = std::time::Duration::from_millis(10);

/// Re-checks `cond` until it holds (true) or `deadline` has passed (false, after one last
/// check). Use it instead of sleeping a fixed time and then asserting: it returns as soon
/// as the condition holds, and a loaded machine only makes it wait longer. On giving up it
/// prints `what` to stderr, so the caller's failing assert has context.
pub fn wait_until(deadline: std::time::Duration, what: &str, mut cond: impl FnMut() -> bool) -> bool {
    let end = std::time::Instant::now() + deadline;
    loop {
        if cond() {
            return true;
        }
        if std::time::Instant::now() >= end {
            eprintln!("gave up after {deadline:?} waiting for {what}");
            return false;
        }
        std::thread::sleep(POLL);
    }
}

/// [`wait_until`] for async tests: polls on tokio's timer instead of blocking the thread.
pub async fn wait_until_async(deadline: std::time::Duration, what: &str, mut cond: impl FnMut() -> bool) -> bool {
    let end = std::time::Instant::now() + deadline;
    loop {
        if cond() {
            return true;
        }
        if std::time::Instant::now() >= end {
            eprintln!("gave up after {deadline:?} waiting for {what}");
            return false;
        }
        tokio::time::sleep(POLL).await;
    }
}
