//! Resumable event streams of the built-in server's Streamable HTTP sessions (SEP-1699):
//! a call's event stream has event ids; `test_reconnection` ends it mid-call with `retry:`
//! and its reply comes on the stream the client resumes with GET and `Last-Event-ID`;
//! events a broken connection lost are sent again; GET opens the session's standalone
//! stream, one reader at a time; DELETE ends it; and nothing stays held once the calls
//! are delivered. End to end, mcpscript's own client (library and `mcpscript call`) gets
//! `test_reconnection`'s reply across the resumption.

mod common;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use mcpscript::client::Session;
use mcpscript::server::fixtures::RECONNECTION_TEXT;
use mcpscript::server::{self, RunningServer, ServerConfig};
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const WAIT: Duration = Duration::from_secs(10);
const INITIALIZE: &str = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"raw","version":"1"}}}"#;
const BOTH: (&str, &str) = ("accept", "application/json, text/event-stream");
const SSE: (&str, &str) = ("accept", "text/event-stream");
const JSON: (&str, &str) = ("content-type", "application/json");

async fn start() -> (RunningServer, String) {
    let server = server::start(ServerConfig::listening(&["http://127.0.0.1:0/mcp"]).unwrap()).await.unwrap();
    let addr = server.url("http").unwrap().trim_start_matches("http://").trim_end_matches("/mcp").to_string();
    (server, addr)
}

fn stat(server: &RunningServer, key: &str) -> u64 {
    server.state.stats.snapshot()[key].as_u64().unwrap()
}

/// One request on its own connection.
async fn send(addr: &str, method: &str, headers: &[(&str, &str)], body: &str) -> hyper::Response<Incoming> {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut tx, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.unwrap();
    tokio::spawn(conn);
    let mut req = hyper::Request::builder().method(method).uri("/mcp").header("host", addr);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    tx.send_request(req.body(Full::new(Bytes::from(body.to_string()))).unwrap()).await.unwrap()
}

async fn text_of(resp: hyper::Response<Incoming>) -> String {
    String::from_utf8_lossy(&resp.into_body().collect().await.unwrap().to_bytes()).into_owned()
}

/// A session, initialized; its id.
async fn session(addr: &str) -> String {
    let resp = send(addr, "POST", &[JSON, BOTH], INITIALIZE).await;
    assert_eq!(resp.status(), 200);
    let id = resp.headers()["mcp-session-id"].to_str().unwrap().to_string();
    text_of(resp).await;
    let initialized = r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#;
    assert_eq!(send(addr, "POST", &[JSON, BOTH, ("mcp-session-id", &id)], initialized).await.status(), 202);
    id
}

fn call(id: u64, tool: &str) -> String {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {"name": tool, "arguments": {}}}).to_string()
}

/// The events of an event-stream body, one block (`field: value` lines) at a time.
struct Events {
    body: Incoming,
    buf: String,
}

impl Events {
    fn of(resp: hyper::Response<Incoming>) -> Events {
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.headers()["content-type"], "text/event-stream");
        Events { body: resp.into_body(), buf: String::new() }
    }

    /// The next block, `None` at the end of the body.
    async fn next(&mut self) -> Option<String> {
        loop {
            if let Some(i) = self.buf.find("\n\n") {
                let block = self.buf[..i].to_string();
                self.buf.drain(..i + 2);
                return Some(block);
            }
            match tokio::time::timeout(WAIT, self.body.frame()).await.expect("the stream went quiet") {
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        self.buf.push_str(&String::from_utf8_lossy(&data));
                    }
                }
                _ => return None,
            }
        }
    }

    /// Whether the body ends (rather than going on) within a short while.
    async fn ends(&mut self) -> bool {
        matches!(tokio::time::timeout(Duration::from_secs(5), self.next()).await, Ok(None))
    }
}

/// The JSON of a `message` event block.
fn data(block: &str) -> Value {
    let line = block.lines().find_map(|l| l.strip_prefix("data: ")).unwrap_or_else(|| panic!("no data in {block:?}"));
    serde_json::from_str(line).unwrap()
}

fn id_of(block: &str) -> &str {
    block.lines().find_map(|l| l.strip_prefix("id: ")).unwrap_or_else(|| panic!("no id in {block:?}"))
}

#[tokio::test]
async fn a_stream_the_server_ends_mid_call_is_finished_on_the_resumed_stream() {
    let (server, addr) = start().await;
    let sid = session(&addr).await;
    let with_session = [JSON, BOTH, ("mcp-session-id", sid.as_str())];
    let mut post = Events::of(send(&addr, "POST", &with_session, &call(7, "test_reconnection")).await);
    // The priming event first: an id and empty data; then `retry:` and the end.
    let priming = post.next().await.unwrap();
    assert_eq!(priming, "id: 1-0\ndata:");
    assert_eq!(post.next().await.unwrap(), "retry: 500");
    assert_eq!(post.next().await, None, "the server ends the stream before the reply");
    assert_eq!(stat(&server, "streams_held"), 1, "kept for the client to resume");

    let resume = [SSE, ("mcp-session-id", sid.as_str()), ("last-event-id", id_of(&priming))];
    let mut get = Events::of(send(&addr, "GET", &resume, "").await);
    let reply = get.next().await.unwrap();
    assert_eq!(id_of(&reply), "1-1");
    assert_eq!(data(&reply)["id"], 7);
    assert_eq!(data(&reply)["result"]["content"][0]["text"], RECONNECTION_TEXT);
    assert!(get.ends().await, "delivered: the resumed stream ends");
    assert!(common::wait_until_async(WAIT, "no stream held", || stat(&server, "streams_held") == 0).await);
    // Delivered and forgotten: it cannot be resumed again.
    let again = send(&addr, "GET", &[SSE, ("mcp-session-id", &sid), ("last-event-id", "1-1")], "").await;
    assert_eq!(again.status(), 400);
    assert!(text_of(again).await.contains("not held"));
    server.shutdown().await;
}

#[tokio::test]
async fn events_a_broken_connection_lost_are_sent_again() {
    let (server, addr) = start().await;
    let sid = session(&addr).await;
    // A raw connection, dropped once it has the first log message (three come, 50 ms apart).
    let mut conn = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let body = call(3, "test_tool_with_logging");
    let head = format!(
        "POST /mcp HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\naccept: application/json, text/event-stream\r\nmcp-session-id: {sid}\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    conn.write_all(head.as_bytes()).await.unwrap();
    let mut got = Vec::new();
    let deadline = Instant::now() + WAIT;
    while !String::from_utf8_lossy(&got).contains("id: 1-1\n") {
        assert!(Instant::now() < deadline, "no first event: {}", String::from_utf8_lossy(&got));
        let mut chunk = [0u8; 1024];
        let n = conn.read(&mut chunk).await.unwrap();
        assert!(n > 0, "the stream ended early");
        got.extend_from_slice(&chunk[..n]);
    }
    assert!(String::from_utf8_lossy(&got).contains("Tool execution started"));
    drop(conn);

    // The call went on without a reader; the client resumes after the event it got.
    let resume = [SSE, ("mcp-session-id", sid.as_str()), ("last-event-id", "1-1")];
    let mut get = Events::of(send(&addr, "GET", &resume, "").await);
    let mut rest = Vec::new();
    while let Some(block) = get.next().await {
        rest.push(block);
    }
    assert_eq!(rest.iter().map(|b| id_of(b)).collect::<Vec<_>>(), ["1-2", "1-3", "1-4"], "{rest:?}");
    assert_eq!(data(&rest[0])["params"]["data"], "Tool processing data");
    assert_eq!(data(&rest[1])["params"]["data"], "Tool execution completed");
    assert_eq!(data(&rest[2])["id"], 3);
    // Ids the stream never sent, and ids of no stream, are refused.
    for bad in ["2-0", "x", "1-99"] {
        let resp = send(&addr, "GET", &[SSE, ("mcp-session-id", &sid), ("last-event-id", bad)], "").await;
        assert_eq!(resp.status(), 400, "{bad}");
    }
    assert!(common::wait_until_async(WAIT, "no stream held", || stat(&server, "streams_held") == 0).await);
    server.shutdown().await;
}

#[tokio::test]
async fn get_opens_the_standalone_stream_one_reader_at_a_time_until_delete() {
    let (server, addr) = start().await;
    let sid = session(&addr).await;
    let get = [SSE, ("mcp-session-id", sid.as_str())];
    let mut first = Events::of(send(&addr, "GET", &get, "").await);
    assert_eq!(first.next().await.unwrap(), "id: 0-0\ndata:");
    // A second GET takes the stream over: the first ends.
    let mut second = Events::of(send(&addr, "GET", &get, "").await);
    assert_eq!(second.next().await.unwrap(), "id: 0-0\ndata:");
    assert!(first.ends().await);
    // Calls go on meanwhile, on their own streams.
    let mut post = Events::of(
        send(&addr, "POST", &[JSON, BOTH, ("mcp-session-id", &sid)], &call(4, "test_tool_with_logging")).await,
    );
    let mut blocks = Vec::new();
    while let Some(b) = post.next().await {
        blocks.push(b);
    }
    assert_eq!(blocks.len(), 5, "priming, three log messages, the reply: {blocks:?}");
    assert_eq!(blocks.iter().map(|b| id_of(b)).collect::<Vec<_>>(), ["1-0", "1-1", "1-2", "1-3", "1-4"]);
    // DELETE ends the session and its stream.
    assert_eq!(send(&addr, "DELETE", &[("mcp-session-id", &sid)], "").await.status(), 204);
    assert!(second.ends().await);

    // Refusals: no session id, an unknown one, an Accept without event streams.
    let sid = session(&addr).await;
    assert_eq!(send(&addr, "GET", &[SSE], "").await.status(), 400);
    assert_eq!(send(&addr, "GET", &[SSE, ("mcp-session-id", "0123456789abcdef")], "").await.status(), 404);
    let json_only = [("accept", "application/json"), ("mcp-session-id", sid.as_str())];
    assert_eq!(send(&addr, "GET", &json_only, "").await.status(), 406);
    // Shutting down ends an open standalone stream at once (with `retry:`).
    let mut open = Events::of(send(&addr, "GET", &[SSE, ("mcp-session-id", &sid)], "").await);
    open.next().await;
    let started = Instant::now();
    let done = tokio::spawn(server.shutdown());
    assert_eq!(open.next().await.unwrap(), "retry: 500");
    assert!(open.ends().await);
    done.await.unwrap();
    assert!(started.elapsed() < Duration::from_millis(1500), "shutdown waited {:?}", started.elapsed());
}

#[tokio::test]
async fn many_calls_leave_nothing_held_and_ids_name_their_own_streams() {
    let (server, addr) = start().await;
    let sid = session(&addr).await;
    let with_session = [JSON, BOTH, ("mcp-session-id", sid.as_str())];
    let calls = (0..20).map(|i| {
        let (addr, with_session) = (addr.clone(), with_session);
        async move {
            let mut events =
                Events::of(send(&addr, "POST", &with_session, &call(100 + i, "test_tool_with_logging")).await);
            let mut last = None;
            while let Some(b) = events.next().await {
                last = Some(b);
            }
            let last = last.unwrap();
            assert_eq!(data(&last)["id"], 100 + i);
            id_of(&last).split('-').next().unwrap().parse::<u64>().unwrap()
        }
    });
    let mut streams: Vec<u64> = futures_util::future::join_all(calls).await;
    streams.sort_unstable();
    assert_eq!(streams, (1..=20).collect::<Vec<_>>(), "each call its own stream number");
    assert!(common::wait_until_async(WAIT, "no stream held", || stat(&server, "streams_held") == 0).await);
    server.shutdown().await;
}

#[tokio::test]
async fn mcpscript_clients_get_the_reply_across_the_resumption() {
    let (server, addr) = start().await;
    let url = format!("http://{addr}/mcp");
    let s = Session::connect(&url.parse().unwrap(), common::opts()).await.unwrap();
    let started = Instant::now();
    let r = s.call_tool("test_reconnection", json!({})).await.unwrap();
    assert_eq!(common::text(&r), RECONNECTION_TEXT);
    // The server's `retry: 500` is honoured before resuming.
    assert!(started.elapsed() >= Duration::from_millis(450), "{:?}", started.elapsed());
    s.close().await;

    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_mcpscript"))
        .args(["call", &url, "tools/call", r#"{"name":"test_reconnection","arguments":{}}"#])
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("properly reconnected"), "{stdout}");
    assert!(common::wait_until_async(WAIT, "no stream held", || stat(&server, "streams_held") == 0).await);
    server.shutdown().await;
}
