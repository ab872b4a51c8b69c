//! The built-in server's HTTP/1.1 connections byte by byte, on a plain `http://` listener
//! (the lean connections): keep-alive and pipelined requests, chunked request bodies,
//! `Expect: 100-continue`, a body over the limit, malformed requests, HTTP/1.0, a
//! WebSocket upgrade, and a client that goes away in the middle of an event stream.

use mcpscript::server::{self, RunningServer, ServerConfig};
use serde_json::Value;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const INITIALIZE: &str = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"raw","version":"1"}}}"#;

async fn start(max_message_size: usize) -> (RunningServer, String) {
    let mut config = ServerConfig::listening(&["http://127.0.0.1:0/mcp"]).unwrap();
    config.max_message_size = max_message_size;
    let server = server::start(config).await.expect("server starts");
    let url = server.url("http").expect("an http listener").to_string();
    let addr = url.split_once("://").unwrap().1.split('/').next().unwrap().to_string();
    (server, addr)
}

fn stat(server: &RunningServer, name: &str) -> u64 {
    server.state.stats.snapshot()[name].as_u64().unwrap()
}

/// A response read off the wire.
#[derive(Debug)]
struct Resp {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Resp {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.body))
    }
}

/// Reads responses with a `Content-Length` body (or none) from `stream` until `n` are
/// complete; `buf` keeps what was read past them.
async fn read_responses(stream: &mut TcpStream, buf: &mut Vec<u8>, n: usize) -> Vec<Resp> {
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut out = Vec::new();
    while out.len() < n {
        if let Some((resp, used)) = parse_one(buf) {
            buf.drain(..used);
            out.push(resp);
            continue;
        }
        let mut chunk = [0u8; 4096];
        let left = deadline.saturating_duration_since(Instant::now());
        let got = tokio::time::timeout(left, stream.read(&mut chunk)).await.expect("a response within 5 s").unwrap();
        assert!(got > 0, "the server closed after {} responses: {:?}", out.len(), String::from_utf8_lossy(buf));
        buf.extend_from_slice(&chunk[..got]);
    }
    out
}

fn parse_one(buf: &[u8]) -> Option<(Resp, usize)> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut r = httparse::Response::new(&mut headers);
    let head = match r.parse(buf).unwrap() {
        httparse::Status::Complete(n) => n,
        httparse::Status::Partial => return None,
    };
    let headers: Vec<(String, String)> =
        r.headers.iter().map(|h| (h.name.to_string(), String::from_utf8_lossy(h.value).into_owned())).collect();
    let len = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .map_or(0, |(_, v)| v.parse::<usize>().unwrap());
    if buf.len() < head + len {
        return None;
    }
    let resp = Resp { status: r.code.unwrap(), headers, body: buf[head..head + len].to_vec() };
    Some((resp, head + len))
}

/// Reads until the server closes the connection (within 5 s); returns what came.
async fn read_to_close(stream: &mut TcpStream) -> Vec<u8> {
    let mut rest = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut rest))
        .await
        .expect("the server closes the connection within 5 s")
        .unwrap();
    rest
}

fn post(body: &str, extra: &str) -> String {
    format!(
        "POST /mcp HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\naccept: application/json, text/event-stream\r\n{extra}content-length: {}\r\n\r\n{body}",
        body.len()
    )
}

#[tokio::test]
async fn pipelined_requests_are_answered_in_order_on_one_connection() {
    let (server, addr) = start(1 << 20).await;
    let mut s = TcpStream::connect(&addr).await.unwrap();
    // Three requests in one write: a stats read, an initialize, another stats read.
    let wire =
        format!("GET /stats HTTP/1.1\r\nhost: x\r\n\r\n{}GET /stats HTTP/1.1\r\nhost: x\r\n\r\n", post(INITIALIZE, ""));
    s.write_all(wire.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    let r = read_responses(&mut s, &mut buf, 3).await;
    assert_eq!(r.iter().map(|r| r.status).collect::<Vec<_>>(), [200, 200, 200]);
    assert_eq!(r[0].json()["sessions_initialized"], 0);
    assert!(r[1].header("mcp-session-id").is_some(), "{:?}", r[1]);
    assert_eq!(r[1].json()["result"]["serverInfo"]["name"], "mcpscript");
    assert_eq!(r[2].json()["sessions_initialized"], 1);
    // Still open for a fourth, sent on its own.
    s.write_all(b"GET /stats HTTP/1.1\r\nhost: x\r\n\r\n").await.unwrap();
    assert_eq!(read_responses(&mut s, &mut buf, 1).await[0].status, 200);
    server.shutdown().await;
}

#[tokio::test]
async fn a_chunked_request_body_is_read_whole() {
    let (server, addr) = start(1 << 20).await;
    let mut s = TcpStream::connect(&addr).await.unwrap();
    let (a, b) = INITIALIZE.split_at(40);
    let head = "POST /mcp HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n";
    s.write_all(format!("{head}{:x}\r\n{a}\r\n", a.len()).as_bytes()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    s.write_all(format!("{:x};ext=1\r\n{b}\r\n0\r\n\r\n", b.len()).as_bytes()).await.unwrap();
    let r = read_responses(&mut s, &mut Vec::new(), 1).await;
    assert_eq!(r[0].status, 200, "{:?}", String::from_utf8_lossy(&r[0].body));
    assert_eq!(r[0].json()["result"]["protocolVersion"], "2025-11-25");
    server.shutdown().await;
}

#[tokio::test]
async fn expect_100_continue_gets_its_interim_response() {
    let (server, addr) = start(1 << 20).await;
    let mut s = TcpStream::connect(&addr).await.unwrap();
    let with_expect = post(INITIALIZE, "expect: 100-continue\r\n");
    let (head, body) = with_expect.split_once("\r\n\r\n").unwrap();
    s.write_all(format!("{head}\r\n\r\n").as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    let interim = read_responses(&mut s, &mut buf, 1).await;
    assert_eq!(interim[0].status, 100);
    s.write_all(body.as_bytes()).await.unwrap();
    let r = read_responses(&mut s, &mut buf, 1).await;
    assert_eq!(r[0].status, 200);
    assert!(r[0].header("mcp-session-id").is_some());
    server.shutdown().await;
}

#[tokio::test]
async fn a_body_over_the_limit_gets_413_unread_and_the_connection_closes() {
    let (server, addr) = start(1000).await;
    let mut s = TcpStream::connect(&addr).await.unwrap();
    // The head announces 5,000 bytes; none are sent, and none are waited for.
    s.write_all(b"POST /mcp HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 5000\r\n\r\n")
        .await
        .unwrap();
    let mut buf = Vec::new();
    let r = read_responses(&mut s, &mut buf, 1).await;
    assert_eq!(r[0].status, 413);
    assert_eq!(r[0].json()["error"]["code"], -32600);
    assert_eq!(r[0].header("connection"), Some("close"));
    assert!(read_to_close(&mut s).await.is_empty());
    // A chunked body that grows past the limit is cut off the same way.
    let mut s = TcpStream::connect(&addr).await.unwrap();
    let big = "x".repeat(1500);
    let wire =
        format!("POST /mcp HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n{:x}\r\n{big}\r\n", big.len());
    s.write_all(wire.as_bytes()).await.unwrap();
    assert_eq!(read_responses(&mut s, &mut Vec::new(), 1).await[0].status, 413);
    server.shutdown().await;
}

#[tokio::test]
async fn malformed_requests_get_400_and_the_connection_closes() {
    let (server, addr) = start(1 << 20).await;
    for wire in [
        &b"NOT HTTP AT ALL\r\n\r\n"[..],
        b"POST /mcp HTTP/1.1\r\nhost: x\r\ncontent-length: twelve\r\n\r\n",
        b"POST /mcp HTTP/1.1\r\nhost: x\r\ncontent-length: 3\r\ncontent-length: 4\r\n\r\nabcd",
        b"POST /mcp HTTP/1.1\r\nhost: x\r\ntransfer-encoding: gzip\r\n\r\n",
    ] {
        let mut s = TcpStream::connect(&addr).await.unwrap();
        s.write_all(wire).await.unwrap();
        let r = read_responses(&mut s, &mut Vec::new(), 1).await;
        assert_eq!(r[0].status, 400, "{:?}", String::from_utf8_lossy(wire));
        assert!(r[0].json()["error"]["message"].as_str().unwrap().starts_with("Bad Request"), "{:?}", r[0]);
        read_to_close(&mut s).await;
    }
    server.shutdown().await;
}

#[tokio::test]
async fn http_1_0_closes_unless_kept_alive() {
    let (server, addr) = start(1 << 20).await;
    let mut s = TcpStream::connect(&addr).await.unwrap();
    s.write_all(b"GET /stats HTTP/1.0\r\n\r\n").await.unwrap();
    let r = read_responses(&mut s, &mut Vec::new(), 1).await;
    assert_eq!((r[0].status, r[0].header("connection")), (200, Some("close")));
    read_to_close(&mut s).await;
    let mut s = TcpStream::connect(&addr).await.unwrap();
    s.write_all(b"GET /stats HTTP/1.0\r\nconnection: keep-alive\r\n\r\nGET /stats HTTP/1.0\r\n\r\n").await.unwrap();
    let r = read_responses(&mut s, &mut Vec::new(), 2).await;
    assert_eq!((r[0].header("connection"), r[1].header("connection")), (Some("keep-alive"), Some("close")));
    // And HTTP/1.1 closes when asked to.
    let mut s = TcpStream::connect(&addr).await.unwrap();
    s.write_all(b"GET /stats HTTP/1.1\r\nconnection: close\r\n\r\n").await.unwrap();
    assert_eq!(read_responses(&mut s, &mut Vec::new(), 1).await[0].header("connection"), Some("close"));
    read_to_close(&mut s).await;
    server.shutdown().await;
}

#[tokio::test]
async fn a_client_leaving_an_event_stream_ends_it() {
    let (server, addr) = start(1 << 20).await;
    // A legacy SSE session: its stream is open while the client reads it, and the
    // session ends when the client goes away (nothing is written to notice it by).
    let mut s = TcpStream::connect(&addr).await.unwrap();
    s.write_all(b"GET /sse HTTP/1.1\r\nhost: x\r\naccept: text/event-stream\r\n\r\n").await.unwrap();
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !String::from_utf8_lossy(&got).contains("event: endpoint") {
        let mut chunk = [0u8; 1024];
        let n = tokio::time::timeout(deadline.saturating_duration_since(Instant::now()), s.read(&mut chunk))
            .await
            .expect("the endpoint event within 5 s")
            .unwrap();
        assert!(n > 0);
        got.extend_from_slice(&chunk[..n]);
    }
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
    assert!(text.to_ascii_lowercase().contains("transfer-encoding: chunked"), "{text}");
    assert_eq!(stat(&server, "connections_open"), 1);
    drop(s);
    let deadline = Instant::now() + Duration::from_secs(3);
    while stat(&server, "connections_open") != 0 {
        assert!(Instant::now() < deadline, "the stream outlived its client by 3 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.shutdown().await;
}

#[tokio::test]
async fn a_websocket_upgrade_hands_the_socket_over() {
    let (server, addr) = start(1 << 20).await;
    let url = format!("ws://{addr}/mcp");
    let target: mcpscript::client::Target = url.parse().unwrap();
    let session = mcpscript::client::Session::connect(&target, Default::default()).await.expect("ws session");
    let reply = session.call_tool("echo", serde_json::json!({"message": "over an upgrade"})).await.unwrap();
    assert_eq!(reply["content"][0]["text"], "Echo: over an upgrade");
    session.close().await;
    server.shutdown().await;
}
