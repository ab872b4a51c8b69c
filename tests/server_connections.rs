//! `connections_open` of the built-in server goes back to where it started once HTTP
//! clients are gone, however they left: keep-alive connections closed without DELETE,
//! requests aborted mid-body or while their reply was pending, legacy SSE streams and
//! Streamable HTTP event streams dropped mid-way, and sessions ended by DELETE.

mod common;

use common::wait_until_async;
use mcpscript::server::{self, RunningServer, ServerConfig};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const INITIALIZE: &str = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"raw","version":"1"}}}"#;
const DEADLINE: Duration = Duration::from_secs(10);

fn open(server: &RunningServer) -> u64 {
    server.state.stats.snapshot()["connections_open"].as_u64().unwrap_or(u64::MAX)
}

/// Writes one request on `conn` (keep-alive), with extra headers.
async fn send(conn: &mut TcpStream, method: &str, path: &str, headers: &[(&str, &str)], body: &str) {
    let mut req = format!("{method} {path} HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-length: {}\r\n", body.len());
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    conn.write_all(req.as_bytes()).await.unwrap();
}

/// Reads one response's head and (content-length) body; returns the head.
async fn read_response(conn: &mut TcpStream) -> String {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        assert_eq!(
            conn.read(&mut byte).await.unwrap(),
            1,
            "connection closed mid-head: {:?}",
            String::from_utf8_lossy(&buf)
        );
        buf.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&buf).into_owned();
    let len = header(&head, "content-length").and_then(|v| v.parse::<usize>().ok()).unwrap_or(0);
    let mut body = vec![0u8; len];
    conn.read_exact(&mut body).await.unwrap();
    head
}

fn header(head: &str, name: &str) -> Option<String> {
    head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then(|| v.trim().to_string())
    })
}

const JSON: (&str, &str) = ("content-type", "application/json");
const ACCEPT_BOTH: (&str, &str) = ("accept", "application/json, text/event-stream");

/// A keep-alive connection that initializes a session and pings on it; returned open.
async fn keep_alive_session(addr: &str) -> (TcpStream, String) {
    let mut conn = TcpStream::connect(addr).await.unwrap();
    send(&mut conn, "POST", "/mcp", &[JSON, ACCEPT_BOTH], INITIALIZE).await;
    let head = read_response(&mut conn).await;
    let id = header(&head, "mcp-session-id").unwrap_or_else(|| panic!("no session id in {head}"));
    let ping = r#"{"jsonrpc":"2.0","id":2,"method":"ping"}"#;
    send(&mut conn, "POST", "/mcp", &[JSON, ACCEPT_BOTH, ("mcp-session-id", &id)], ping).await;
    assert!(read_response(&mut conn).await.starts_with("HTTP/1.1 200"));
    (conn, id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_open_returns_to_its_start_after_http_clients_leave() {
    let server = server::start(ServerConfig::listening(&["http://127.0.0.1:0/mcp"]).unwrap()).await.unwrap();
    let addr = server.url("http").unwrap().trim_start_matches("http://").trim_end_matches("/mcp").to_string();
    let start = open(&server);
    let mut held = Vec::new();

    // Keep-alive connections, each with its own session, left open for now.
    let mut ids = Vec::new();
    for _ in 0..6 {
        let (conn, id) = keep_alive_session(&addr).await;
        held.push(conn);
        ids.push(id);
    }
    // One session carried by two connections at once counts once.
    let mut second = TcpStream::connect(&addr).await.unwrap();
    let ping = r#"{"jsonrpc":"2.0","id":3,"method":"ping"}"#;
    send(&mut second, "POST", "/mcp", &[JSON, ("mcp-session-id", &ids[0])], ping).await;
    read_response(&mut second).await;
    held.push(second);
    assert!(wait_until_async(DEADLINE, "6 sessions open", || open(&server) == start + 6).await);

    // Requests aborted mid-body, on sessions' own connections.
    for id in &ids[1..3] {
        let mut conn = TcpStream::connect(&addr).await.unwrap();
        let req = format!(
            "POST /mcp HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\nmcp-session-id: {id}\r\ncontent-length: 100\r\n\r\n{{\"jsonrpc\""
        );
        conn.write_all(req.as_bytes()).await.unwrap();
        drop(conn);
    }
    // A request aborted while its reply is pending (sleep), and a Streamable HTTP event
    // stream (a call that logs while it runs) dropped after its first bytes.
    let mut conn = TcpStream::connect(&addr).await.unwrap();
    let sleep = r#"{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"sleep","arguments":{"ms":5000}}}"#;
    send(&mut conn, "POST", "/mcp", &[JSON, ("mcp-session-id", &ids[3])], sleep).await;
    held.push(conn);
    let mut conn = TcpStream::connect(&addr).await.unwrap();
    let logs =
        r#"{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"test_tool_with_logging","arguments":{}}}"#;
    send(&mut conn, "POST", "/mcp", &[JSON, ACCEPT_BOTH, ("mcp-session-id", &ids[4])], logs).await;
    let mut first = [0u8; 64];
    assert!(conn.read(&mut first).await.unwrap() > 0);
    assert!(String::from_utf8_lossy(&first).contains("text/event-stream"));
    held.push(conn);

    // Legacy SSE streams: each is a session while its stream is open.
    for _ in 0..3 {
        let mut conn = TcpStream::connect(&addr).await.unwrap();
        send(&mut conn, "GET", "/sse", &[("accept", "text/event-stream")], "").await;
        let mut got = Vec::new();
        while !String::from_utf8_lossy(&got).contains("sessionId=") {
            let mut chunk = [0u8; 256];
            let n = conn.read(&mut chunk).await.unwrap();
            assert!(n > 0, "the SSE stream ended early");
            got.extend_from_slice(&chunk[..n]);
        }
        held.push(conn);
    }
    assert!(wait_until_async(DEADLINE, "6 sessions and 3 streams open", || open(&server) == start + 9).await);

    // One session ends by DELETE on its own keep-alive connection; the rest just go away.
    let mut conn = held.remove(5);
    send(&mut conn, "DELETE", "/mcp", &[("mcp-session-id", &ids[5])], "").await;
    assert!(read_response(&mut conn).await.starts_with("HTTP/1.1 204"));
    assert!(wait_until_async(DEADLINE, "the deleted session to stop counting", || open(&server) == start + 8).await);
    drop(conn);
    drop(held);
    assert!(
        wait_until_async(DEADLINE, "connections_open back to its start", || open(&server) == start).await,
        "connections_open stayed at {} (started at {start})",
        open(&server)
    );

    // A session whose connections all closed counts again when its client comes back.
    let mut conn = TcpStream::connect(&addr).await.unwrap();
    send(&mut conn, "POST", "/mcp", &[JSON, ("mcp-session-id", &ids[1])], ping).await;
    assert!(read_response(&mut conn).await.starts_with("HTTP/1.1 200"));
    assert_eq!(open(&server), start + 1);
    drop(conn);
    assert!(wait_until_async(DEADLINE, "connections_open back to its start", || open(&server) == start).await);
    server.shutdown().await;
}
