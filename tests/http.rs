//! Streamable HTTP and legacy SSE, end to end: the real built-in server on 127.0.0.1:0
//! and the real client (plus raw hyper requests where the point is the HTTP exchange
//! itself: status codes, headers, batches, Origin, WebSocket handshake).

mod common;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::HeaderMap;
use hyper_util::rt::TokioIo;
use mcpscript::client::{ClientError, ClientOptions, Session, Target};
use mcpscript::server::{self, RunningServer, ServerConfig};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::{Duration, Instant};

async fn start(config: ServerConfig) -> RunningServer {
    server::start(config).await.expect("server starts")
}

async fn start_http() -> RunningServer {
    start(ServerConfig::listening(&["http://127.0.0.1:0/mcp"]).unwrap()).await
}

fn http_url(server: &RunningServer) -> String {
    server.url("http").expect("an http listener").to_string()
}

/// `127.0.0.1:PORT` of an `http://` URL.
fn authority(url: &str) -> String {
    let rest = url.split_once("://").unwrap().1;
    rest.split('/').next().unwrap().to_string()
}

async fn connect(target: &str) -> Session {
    connect_with(target, ClientOptions::default()).await.expect("session connects")
}

async fn connect_with(target: &str, opts: ClientOptions) -> Result<Session, ClientError> {
    let target: Target = target.parse().unwrap();
    Session::connect(&target, Arc::new(opts)).await
}

struct Raw {
    status: u16,
    headers: HeaderMap,
    body: String,
}

impl Raw {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

/// One raw HTTP/1.1 request on a fresh connection.
async fn raw(addr: &str, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> Raw {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut tx, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.unwrap();
    tokio::spawn(conn);
    let mut req = hyper::Request::builder().method(method).uri(path).header("host", addr);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = tx.send_request(req.body(Full::new(Bytes::from(body.to_string()))).unwrap()).await.unwrap();
    let (status, headers) = (resp.status().as_u16(), resp.headers().clone());
    let body = resp.into_body().collect().await.map(|c| c.to_bytes()).unwrap_or_default();
    Raw { status, headers, body: String::from_utf8_lossy(&body).into_owned() }
}

const JSON_HEADERS: &[(&str, &str)] =
    &[("content-type", "application/json"), ("accept", "application/json, text/event-stream")];

const INITIALIZE: &str = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"raw","version":"1"}}}"#;

/// A raw initialize; returns the session id.
async fn raw_session(addr: &str) -> String {
    let r = raw(addr, "POST", "/mcp", JSON_HEADERS, INITIALIZE).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["result"]["serverInfo"]["name"], "mcpscript");
    r.headers.get("mcp-session-id").expect("initialize reply carries Mcp-Session-Id").to_str().unwrap().to_string()
}

async fn raw_with_session(addr: &str, session: &str, body: &str) -> Raw {
    let headers =
        [JSON_HEADERS[0], JSON_HEADERS[1], ("mcp-session-id", session), ("mcp-protocol-version", "2025-11-25")];
    raw(addr, "POST", "/mcp", &headers, body).await
}

fn stat(server: &RunningServer, name: &str) -> u64 {
    server.state.stats.snapshot()[name].as_u64().unwrap()
}

/// Waits (up to 3 s) until a server counter reaches `want`.
async fn wait_for_stat(server: &RunningServer, name: &str, want: u64) {
    let deadline = Instant::now() + Duration::from_secs(3);
    while stat(server, name) != want {
        assert!(Instant::now() < deadline, "{name} stayed at {} (want {want})", stat(server, name));
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn text_of(result: &Value) -> &str {
    result["content"][0]["text"].as_str().unwrap_or_else(|| panic!("no text content in {result}"))
}

/// The calls every transport must get right.
async fn exercise(session: &Session) {
    assert_eq!(session.server().name, "mcpscript");
    assert_eq!(session.server().protocol_version, "2025-11-25");
    let tools = session.tools_list().await.unwrap();
    let names: Vec<&str> = tools["tools"].as_array().unwrap().iter().filter_map(|t| t["name"].as_str()).collect();
    assert!(names.contains(&"echo") && names.contains(&"sleep"), "{names:?}");
    assert_eq!(text_of(&session.call_tool("echo", json!({"message": "hi"})).await.unwrap()), "Echo: hi");
    assert_eq!(session.ping().await.unwrap(), json!({}));
    match session.request("no/such/method", None).await {
        Err(ClientError::Rpc { error, .. }) => assert_eq!(error.code, -32601),
        other => panic!("expected -32601, got {other:?}"),
    }
    // A reply that waits (the handler's pending path).
    assert!(text_of(&session.call_tool("sleep", json!({"ms": 20})).await.unwrap()).starts_with("slept 20"));
}

#[tokio::test]
async fn streamable_http_round_trip_and_delete_on_close() {
    let server = start_http().await;
    let session = connect(&http_url(&server)).await;
    assert_eq!(stat(&server, "connections_open"), 1);
    exercise(&session).await;
    session.close().await;
    // close() sent DELETE and waited for it.
    assert_eq!(stat(&server, "connections_open"), 0);
    assert_eq!(stat(&server, "connections_total"), 1);
    server.shutdown().await;
}

#[tokio::test]
async fn legacy_sse_round_trip_and_end_of_stream_ends_the_session() {
    let server = start_http().await;
    let target = format!("sse+http://{}/sse", authority(&http_url(&server)));
    let session = connect(&target).await;
    assert_eq!(stat(&server, "connections_open"), 1);
    exercise(&session).await;
    session.close().await;
    wait_for_stat(&server, "connections_open", 0).await;
    server.shutdown().await;
}

#[tokio::test]
async fn legacy_sse_listener_serves_its_own_path() {
    let server = start(ServerConfig::listening(&["sse+http://127.0.0.1:0/events"]).unwrap()).await;
    let url = server.url("sse+http").unwrap().to_string();
    assert!(url.ends_with("/events"), "{url}");
    let session = connect(&url).await;
    exercise(&session).await;
    session.close().await;
    server.shutdown().await;
}

#[tokio::test]
async fn legacy_post_to_an_unknown_session_is_404() {
    let server = start_http().await;
    let addr = authority(&http_url(&server));
    let r = raw(&addr, "POST", "/message?sessionId=nope", JSON_HEADERS, INITIALIZE).await;
    assert_eq!(r.status, 404);
    let r = raw(&addr, "POST", "/message", JSON_HEADERS, INITIALIZE).await;
    assert_eq!(r.status, 400);
    server.shutdown().await;
}

#[tokio::test]
async fn session_id_is_required_checked_and_ended_by_delete() {
    let server = start_http().await;
    let addr = authority(&http_url(&server));
    let id = raw_session(&addr).await;
    assert!(id.len() > 32 && id.is_ascii(), "a signed id: {id}");
    let ping = r#"{"jsonrpc":"2.0","id":2,"method":"ping"}"#;
    let r = raw_with_session(&addr, &id, ping).await;
    assert_eq!((r.status, r.json()["result"].clone()), (200, json!({})));
    assert_eq!(r.headers["content-type"], "application/json");
    // A notification: 202 and no body.
    let r = raw_with_session(&addr, &id, r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#).await;
    assert_eq!((r.status, r.body.as_str()), (202, ""));
    // No session id on a request that is not initialize: 400.
    let r = raw(&addr, "POST", "/mcp", JSON_HEADERS, ping).await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body.contains("Mcp-Session-Id"), "{}", r.body);
    // Unknown id: 404.
    assert_eq!(raw_with_session(&addr, "0123456789abcdef0123456789abcdef", ping).await.status, 404);
    // Unsupported protocol version header: 400.
    let headers =
        [JSON_HEADERS[0], JSON_HEADERS[1], ("mcp-session-id", id.as_str()), ("mcp-protocol-version", "1999-01-01")];
    assert_eq!(raw(&addr, "POST", "/mcp", &headers, ping).await.status, 400);
    // A session counts as open while a connection that carried it is open: every raw
    // request above had its own connection, all closed now.
    wait_for_stat(&server, "connections_open", 0).await;
    assert_eq!(stat(&server, "connections_total"), 1);
    // DELETE ends it; afterwards the id is unknown.
    let r = raw(&addr, "DELETE", "/mcp", &[("mcp-session-id", id.as_str())], "").await;
    assert_eq!(r.status, 204);
    assert_eq!(stat(&server, "connections_open"), 0);
    assert_eq!(raw_with_session(&addr, &id, ping).await.status, 404);
    assert_eq!(raw(&addr, "DELETE", "/mcp", &[("mcp-session-id", id.as_str())], "").await.status, 404);
    // GET on the MCP path opens a session's event stream: it needs a session id.
    let r = raw(&addr, "GET", "/mcp", &[("accept", "text/event-stream")], "").await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body.contains("Mcp-Session-Id"), "{}", r.body);
    let r = raw(&addr, "PUT", "/mcp", &[], "").await;
    assert_eq!((r.status, r.headers["allow"].to_str().unwrap()), (405, "GET, POST, DELETE"));
    server.shutdown().await;
}

#[tokio::test]
async fn failed_initialize_creates_no_session() {
    let server = start_http().await;
    let addr = authority(&http_url(&server));
    let r =
        raw(&addr, "POST", "/mcp", JSON_HEADERS, r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{}}"#).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["error"]["code"], -32602);
    assert!(r.headers.get("mcp-session-id").is_none());
    assert_eq!(stat(&server, "connections_open"), 0);
    server.shutdown().await;
}

#[tokio::test]
async fn reinitializes_transparently_when_the_server_lost_the_session() {
    let server = start_http().await;
    let url = http_url(&server);
    let session = connect(&url).await;
    assert_eq!(text_of(&session.call_tool("echo", json!({"message": "before"})).await.unwrap()), "Echo: before");
    // Restart the server on the same port: the new one knows no session, so the next
    // request gets 404 and the client must re-initialize and retry.
    server.shutdown().await;
    let server = start(ServerConfig::listening(&[url.as_str()]).unwrap()).await;
    assert_eq!(server.urls()[0], url);
    assert_eq!(text_of(&session.call_tool("echo", json!({"message": "after"})).await.unwrap()), "Echo: after");
    assert_eq!(stat(&server, "sessions_initialized"), 1);
    assert_eq!(stat(&server, "connections_open"), 1);
    // notifications/initialized went out too, then the retried call.
    assert_eq!(stat(&server, "notifications"), 1);
    // Again, with requests in flight together: one re-initialization serves them all.
    server.shutdown().await;
    let server = start(ServerConfig::listening(&[url.as_str()]).unwrap()).await;
    let calls = (0..10).map(|i| session.call_tool("echo", json!({"message": format!("c{i}")})));
    for (i, r) in futures_util::future::join_all(calls).await.into_iter().enumerate() {
        assert_eq!(text_of(&r.unwrap()), format!("Echo: c{i}"));
    }
    assert_eq!(stat(&server, "sessions_initialized"), 1);
    session.close().await;
    assert_eq!(stat(&server, "connections_open"), 0);
    server.shutdown().await;
}

#[tokio::test]
async fn sheds_load_with_503_and_retry_after() {
    let mut config = ServerConfig::listening(&["http://127.0.0.1:0/mcp"]).unwrap();
    config.max_inflight = Some(1);
    let server = start(config).await;
    let addr = authority(&http_url(&server));
    let session = Arc::new(connect(&http_url(&server)).await);
    let id = raw_session(&addr).await;
    let slow = {
        let session = session.clone();
        tokio::spawn(async move { session.call_tool("sleep", json!({"ms": 600})).await })
    };
    let deadline = Instant::now() + Duration::from_secs(2);
    while server.state.inflight() == 0 {
        assert!(Instant::now() < deadline, "the sleep never started");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    match session.call_tool("echo", json!({"message": "x"})).await {
        Err(ClientError::Http { status, body, .. }) => {
            assert_eq!(status, 503);
            assert!(body.contains("overloaded"), "{body}");
        }
        other => panic!("expected HTTP 503, got {other:?}"),
    }
    let r = raw_with_session(&addr, &id, r#"{"jsonrpc":"2.0","id":5,"method":"ping"}"#).await;
    assert_eq!(r.status, 503);
    assert_eq!(r.headers["retry-after"], "1");
    assert_eq!(r.json()["error"]["code"], -32000);
    assert!(text_of(&slow.await.unwrap().unwrap()).starts_with("slept 600"));
    // With the slot free again, requests go through.
    assert_eq!(session.ping().await.unwrap(), json!({}));
    assert!(stat(&server, "shed") >= 2);
    server.shutdown().await;
}

#[tokio::test]
async fn refuses_sessions_beyond_max_connections() {
    let mut config = ServerConfig::listening(&["http://127.0.0.1:0/mcp"]).unwrap();
    config.max_connections = Some(1);
    let server = start(config).await;
    let first = connect(&http_url(&server)).await;
    match connect_with(&http_url(&server), ClientOptions::default()).await {
        Err(ClientError::Http { status: 503, .. }) => {}
        other => panic!("expected HTTP 503, got {:?}", other.map(|_| "a session")),
    }
    assert_eq!(stat(&server, "connections_refused"), 1);
    first.close().await;
    let second = connect(&http_url(&server)).await;
    second.close().await;
    server.shutdown().await;
}

#[tokio::test]
async fn bearer_token_is_required_when_configured() {
    let mut config = ServerConfig::listening(&["http://127.0.0.1:0/mcp"]).unwrap();
    config.auth_token = Some("sekrit".into());
    let server = start(config).await;
    let url = http_url(&server);
    match connect_with(&url, ClientOptions::default()).await {
        Err(ClientError::Unauthorized { status: 401, www_authenticate, .. }) => assert_eq!(www_authenticate, "Bearer"),
        other => panic!("expected HTTP 401, got {:?}", other.map(|_| "a session")),
    }
    let r = raw(&authority(&url), "POST", "/mcp", JSON_HEADERS, INITIALIZE).await;
    assert_eq!(r.status, 401);
    assert_eq!(r.headers["www-authenticate"], "Bearer");
    let wrong = ClientOptions { auth_token: Some("guess".into()), ..Default::default() };
    assert!(matches!(connect_with(&url, wrong).await, Err(ClientError::Unauthorized { status: 401, .. })));
    let opts = ClientOptions { auth_token: Some("sekrit".into()), ..Default::default() };
    let session = connect_with(&url, opts.clone()).await.unwrap();
    assert_eq!(text_of(&session.call_tool("echo", json!({"message": "in"})).await.unwrap()), "Echo: in");
    session.close().await;
    // Legacy SSE checks the token on the stream and on every POST.
    let legacy = format!("sse+http://{}/sse", authority(&url));
    assert!(matches!(
        connect_with(&legacy, ClientOptions::default()).await,
        Err(ClientError::Unauthorized { status: 401, .. })
    ));
    let session = connect_with(&legacy, opts).await.unwrap();
    assert_eq!(session.ping().await.unwrap(), json!({}));
    session.close().await;
    server.shutdown().await;
}

#[tokio::test]
async fn foreign_origins_are_forbidden() {
    let mut config = ServerConfig::listening(&["http://127.0.0.1:0/mcp"]).unwrap();
    config.allowed_origins = vec!["https://app.example".into()];
    let server = start(config).await;
    let addr = authority(&http_url(&server));
    let with_origin = |origin: &'static str| [JSON_HEADERS[0], JSON_HEADERS[1], ("origin", origin)];
    let r = raw(&addr, "POST", "/mcp", &with_origin("http://evil.example"), INITIALIZE).await;
    assert_eq!(r.status, 403);
    assert_eq!(raw(&addr, "GET", "/sse", &[("origin", "http://evil.example:8080")], "").await.status, 403);
    for ok in ["http://localhost:5173", "http://127.0.0.1", "http://[::1]:3000", "https://app.example"] {
        let r = raw(&addr, "POST", "/mcp", &with_origin(ok), INITIALIZE).await;
        assert_eq!(r.status, 200, "{ok}: {}", r.body);
    }
    server.shutdown().await;
}

#[tokio::test]
async fn event_stream_replies_are_parsed_by_the_client() {
    let server = start_http().await;
    let url = format!("{}?sse=1", http_url(&server));
    // The server really answers with an event stream (an empty event first, without an id:
    // the server cannot resume streams).
    let addr = authority(&url);
    let r = raw(&addr, "POST", "/mcp?sse=1", JSON_HEADERS, INITIALIZE).await;
    assert_eq!(r.headers["content-type"], "text/event-stream");
    assert!(r.body.starts_with("data:\n\nevent: message\ndata: {"), "{}", r.body);
    let session = connect(&url).await;
    exercise(&session).await;
    // Concurrent slow replies, each on its own pooled connection.
    let calls = (0..8).map(|i| session.call_tool("sleep", json!({"ms": 50 + i})));
    for (i, r) in futures_util::future::join_all(calls).await.into_iter().enumerate() {
        assert!(text_of(&r.unwrap()).starts_with(&format!("slept {}", 50 + i)));
    }
    session.close().await;
    // The raw initialize above made a session too, but its connection is closed.
    wait_for_stat(&server, "connections_open", 0).await;
    assert_eq!(stat(&server, "connections_total"), 2);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_share_one_session() {
    let server = start_http().await;
    let session = connect(&http_url(&server)).await;
    let calls = (0..50).map(|i| session.call_tool("echo", json!({"message": format!("m{i}")})));
    for (i, r) in futures_util::future::join_all(calls).await.into_iter().enumerate() {
        assert_eq!(text_of(&r.unwrap()), format!("Echo: m{i}"));
    }
    assert_eq!(stat(&server, "sessions_initialized"), 1);
    session.close().await;
    server.shutdown().await;
}

#[tokio::test]
async fn a_batch_is_answered_with_a_batch() {
    let server = start_http().await;
    let addr = authority(&http_url(&server));
    let id = raw_session(&addr).await;
    let batch = r#"[{"jsonrpc":"2.0","id":1,"method":"ping"},{"jsonrpc":"2.0","method":"notifications/initialized"},{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"echo","arguments":{"message":"b"}}}]"#;
    let r = raw_with_session(&addr, &id, batch).await;
    assert_eq!(r.status, 200);
    let replies = r.json();
    let replies = replies.as_array().expect("a JSON array");
    assert_eq!(replies.len(), 2);
    assert_eq!((replies[0]["id"].clone(), replies[0]["result"].clone()), (json!(1), json!({})));
    assert_eq!(replies[1]["id"], 2);
    assert_eq!(replies[1]["result"]["content"][0]["text"], "Echo: b");
    // A batch of notifications only: 202.
    let r = raw_with_session(&addr, &id, r#"[{"jsonrpc":"2.0","method":"notifications/initialized"}]"#).await;
    assert_eq!(r.status, 202);
    server.shutdown().await;
}

#[tokio::test]
async fn malformed_json_gets_400_with_a_parse_error() {
    let server = start_http().await;
    let addr = authority(&http_url(&server));
    let r = raw(&addr, "POST", "/mcp", JSON_HEADERS, "{not json").await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"]["code"], -32700);
    let id = raw_session(&addr).await;
    let r = raw_with_session(&addr, &id, "{not json").await;
    assert_eq!((r.status, r.json()["error"]["code"].clone()), (400, json!(-32700)));
    // Invalid but attributable: a JSON-RPC reply to that id, status 200.
    let r = raw_with_session(&addr, &id, r#"{"jsonrpc":"1.0","id":9,"method":"ping"}"#).await;
    assert_eq!((r.status, r.json()["id"].clone(), r.json()["error"]["code"].clone()), (200, json!(9), json!(-32600)));
    let r = raw(&addr, "POST", "/mcp", &[("content-type", "text/plain")], INITIALIZE).await;
    assert_eq!(r.status, 415);
    assert!(stat(&server, "parse_errors") >= 2);
    server.shutdown().await;
}

#[tokio::test]
async fn oversized_bodies_are_refused_both_ways() {
    let mut config = ServerConfig::listening(&["http://127.0.0.1:0/mcp"]).unwrap();
    config.max_message_size = 4096;
    let server = start(config).await;
    let url = http_url(&server);
    // Server side: 413.
    let big = format!(r#"{{"jsonrpc":"2.0","id":1,"method":"ping","params":{{"pad":"{}"}}}}"#, "x".repeat(5000));
    assert_eq!(raw(&authority(&url), "POST", "/mcp", JSON_HEADERS, &big).await.status, 413);
    // Client side: a reply over max_message_size is a protocol error, and the session
    // goes on working.
    let opts = ClientOptions { max_message_size: 2000, ..Default::default() };
    let session = connect_with(&url, opts).await.unwrap();
    match session.call_tool("payload", json!({"size": 3000})).await {
        Err(ClientError::Protocol { detail, .. }) => assert!(detail.contains("2000"), "{detail}"),
        other => panic!("expected a protocol error, got {other:?}"),
    }
    assert_eq!(session.ping().await.unwrap(), json!({}));
    session.close().await;
    server.shutdown().await;
}

#[tokio::test]
async fn request_deadlines_cover_slow_http_replies() {
    let server = start_http().await;
    let session = connect(&http_url(&server)).await;
    let started = Instant::now();
    let r = session
        .request_timeout(
            "tools/call",
            Some(json!({"name": "sleep", "arguments": {"ms": 3000}})),
            Duration::from_millis(200),
        )
        .await;
    assert!(matches!(r, Err(ClientError::Timeout { .. })), "{r:?}");
    assert!(started.elapsed() < Duration::from_secs(2), "took {:?}", started.elapsed());
    assert_eq!(session.ping().await.unwrap(), json!({}));
    session.close().await;
    server.shutdown().await;
}

#[tokio::test]
async fn stats_endpoint_reports_counters() {
    let server = start_http().await;
    let addr = authority(&http_url(&server));
    raw_session(&addr).await;
    let r = raw(&addr, "GET", "/stats", &[], "").await;
    assert_eq!(r.status, 200);
    let stats = r.json();
    assert_eq!(stats["connections_total"], 1);
    assert_eq!(stats["sessions_initialized"], 1);
    assert_eq!(raw(&addr, "GET", "/nowhere", &[], "").await.status, 404);
    server.shutdown().await;
}

#[tokio::test]
async fn unreachable_servers_fail_to_connect() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    for target in [format!("http://127.0.0.1:{port}/mcp"), format!("sse+http://127.0.0.1:{port}/sse")] {
        match connect_with(&target, ClientOptions::default()).await {
            Err(ClientError::Connect { .. }) => {}
            other => panic!("{target}: expected a connect error, got {:?}", other.map(|_| "a session")),
        }
    }
}

#[tokio::test]
async fn wrong_path_is_an_http_error() {
    let server = start_http().await;
    let target = format!("http://{}/elsewhere", authority(&http_url(&server)));
    match connect_with(&target, ClientOptions::default()).await {
        Err(ClientError::Http { status: 404, .. }) => {}
        other => panic!("expected HTTP 404, got {:?}", other.map(|_| "a session")),
    }
    server.shutdown().await;
}

#[tokio::test]
async fn websocket_upgrades_get_the_rfc6455_handshake() {
    let server = start_http().await;
    let addr = authority(&http_url(&server));
    let headers = [
        ("connection", "Upgrade"),
        ("upgrade", "websocket"),
        ("sec-websocket-version", "13"),
        ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ("sec-websocket-protocol", "mcp"),
    ];
    let r = raw(&addr, "GET", "/anywhere", &headers, "").await;
    assert_eq!(r.status, 101);
    // The example of RFC 6455 section 1.3.
    assert_eq!(r.headers["sec-websocket-accept"], "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    assert_eq!(r.headers["sec-websocket-protocol"], "mcp");
    server.shutdown().await;
}

#[tokio::test]
async fn client_batches_travel_as_one_post_over_both_transports() {
    let server = start_http().await;
    let url = http_url(&server);
    for target in [url.clone(), format!("{url}?sse=1"), format!("sse+http://{}/sse", authority(&url))] {
        let session = connect(&target).await;
        let calls = vec![
            ("ping".to_string(), None),
            ("tools/call".to_string(), Some(json!({"name": "echo", "arguments": {"message": "in a batch"}}))),
            ("no/such".to_string(), None),
        ];
        let results = session.batch(calls).await;
        assert_eq!(results[0].as_ref().unwrap(), &json!({}), "{target}");
        assert_eq!(text_of(results[1].as_ref().unwrap()), "Echo: in a batch");
        assert!(
            matches!(&results[2], Err(ClientError::Rpc { error, .. }) if error.code == -32601),
            "{target}: {:?}",
            results[2]
        );
        session.close().await;
    }
    server.shutdown().await;
}

/// A scripted Streamable HTTP server for what mcpscript's own server never sends: event
/// streams with comments, CRLF line ends, multi-line data, a notification and a server
/// request ahead of the reply. Records every POST body it receives.
async fn scripted_server() -> (String, Arc<std::sync::Mutex<Vec<Value>>>) {
    use hyper::service::service_fn;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen: Arc<std::sync::Mutex<Vec<Value>>> = Arc::default();
    let record = seen.clone();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let record = record.clone();
            let service = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                let record = record.clone();
                async move {
                    let method = req.method().clone();
                    let header = |name: &str| req.headers().get(name).map(|v| v.to_str().unwrap().to_string());
                    let (session, version) = (header("mcp-session-id"), header("mcp-protocol-version"));
                    let body = req.into_body().collect().await.unwrap().to_bytes();
                    let reply = |status: u16, ct: &str, body: String| {
                        let mut r = hyper::Response::new(Full::new(Bytes::from(body)));
                        *r.status_mut() = hyper::StatusCode::from_u16(status).unwrap();
                        r.headers_mut().insert("content-type", ct.parse().unwrap());
                        r.headers_mut().insert("mcp-session-id", "s1".parse().unwrap());
                        Ok::<_, std::convert::Infallible>(r)
                    };
                    if method == hyper::Method::DELETE {
                        return reply(204, "text/plain", String::new());
                    }
                    if method == hyper::Method::GET {
                        return reply(405, "text/plain", String::new()); // no GET stream
                    }
                    let msg: Value = serde_json::from_slice(&body).unwrap();
                    record.lock().unwrap().push(json!({"msg": msg, "session": session, "version": version}));
                    let id = msg["id"].clone();
                    match msg["method"].as_str() {
                        Some("initialize") => reply(
                            200,
                            "application/json",
                            json!({"jsonrpc": "2.0", "id": id, "result": {"protocolVersion": "2025-11-25",
                                "capabilities": {}, "serverInfo": {"name": "scripted", "version": "1"}}})
                            .to_string(),
                        ),
                        Some("tools/list") => {
                            let events = format!(
                                ": a comment\r\nid: 1\r\ndata:\r\n\r\n\
                                 event: message\r\ndata: {{\"jsonrpc\":\"2.0\",\"method\":\"notifications/message\",\"params\":{{}}}}\r\n\r\n\
                                 data: {{\"jsonrpc\":\"2.0\",\"id\":\"srv-1\",\r\ndata: \"method\":\"ping\"}}\n\n\
                                 id: 2\ndata: {{\"jsonrpc\":\"2.0\",\"id\":{id},\"result\":{{\"tools\":[]}}}}\n\n"
                            );
                            reply(200, "text/event-stream", events)
                        }
                        _ => reply(202, "text/plain", String::new()),
                    }
                }
            });
            tokio::spawn(hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service));
        }
    });
    (format!("http://{addr}/mcp"), seen)
}

#[tokio::test]
async fn event_streams_deliver_notifications_and_server_requests_before_the_reply() {
    let (url, seen) = scripted_server().await;
    let session = connect(&url).await;
    assert_eq!(session.server().name, "scripted");
    assert_eq!(session.tools_list().await.unwrap(), json!({"tools": []}));
    assert_eq!(session.dispatcher().notifications.load(std::sync::atomic::Ordering::Relaxed), 1);
    // The server's ping (split over two data lines) was answered with a POST, sent as soon
    // as the ping came (it may land after the reply).
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline && !seen.lock().unwrap().iter().any(|m| m["msg"]["id"] == "srv-1") {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let seen = seen.lock().unwrap().clone();
    let answer = seen.iter().find(|m| m["msg"]["id"] == "srv-1").unwrap_or_else(|| panic!("no answer in {seen:?}"));
    assert_eq!(answer["msg"]["result"], json!({}));
    let methods: Vec<&str> = seen.iter().filter_map(|m| m["msg"]["method"].as_str()).collect();
    assert_eq!(methods, ["initialize", "notifications/initialized", "tools/list"]);
    // The session id and the negotiated revision go on everything after initialize.
    assert_eq!((seen[0]["session"].clone(), seen[0]["version"].clone()), (Value::Null, Value::Null));
    for m in &seen[1..] {
        assert_eq!((m["session"].as_str(), m["version"].as_str()), (Some("s1"), Some("2025-11-25")), "{m}");
    }
    session.close().await;
}

/// Worker processes of one `serve --workers N` share the session-signing key, so a
/// session's connection that lands on another worker is taken over, not refused.
#[tokio::test]
async fn sibling_workers_take_over_signed_sessions() {
    let config = |secret| {
        let mut c = ServerConfig::listening(&["http://127.0.0.1:0/mcp"]).unwrap();
        c.session_secret = secret;
        c.workers = 2; // as in the parent of `serve --workers 2`: sessions may move
        c
    };
    let (home, sibling, stranger) = (start(config(7)).await, start(config(7)).await, start(config(8)).await);
    let session = raw_session(&authority(&http_url(&home))).await;
    let ping = r#"{"jsonrpc":"2.0","id":2,"method":"ping"}"#;
    let r = raw_with_session(&authority(&http_url(&sibling)), &session, ping).await;
    assert_eq!((r.status, r.json()["result"].clone()), (200, serde_json::json!({})), "{}", r.body);
    assert_eq!(stat(&sibling, "connections_total"), 1, "the sibling adopted the session");
    let r = raw_with_session(&authority(&http_url(&stranger)), &session, ping).await;
    assert_eq!(r.status, 404, "another server's key does not verify");
    // Change the last character (to one it is not: a fixed '0' left every 16th id intact).
    let last = if session.ends_with('0') { '1' } else { '0' };
    let forged = format!("{}{last}", &session[..session.len() - 1]);
    let r = raw_with_session(&authority(&http_url(&sibling)), &forged, ping).await;
    assert_eq!(r.status, 404, "a tampered id does not verify");
}

/// An idle keep-alive connection of the lean HTTP server is closed when the server shuts
/// down, after several requests on it (its wait for the next request watches the shutdown
/// for the connection's whole life).
#[tokio::test]
async fn shutdown_closes_an_idle_keep_alive_connection() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let server = start_http().await;
    let addr = authority(&http_url(&server));
    let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let body = r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#;
    let req = format!(
        "POST /mcp HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Accept: application/json, text/event-stream\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let mut buf = Vec::new();
    for _ in 0..3 {
        s.write_all(req.as_bytes()).await.unwrap();
        // One whole response (no session: a 400 with a JSON body), the connection kept.
        let read = tokio::time::timeout(Duration::from_secs(5), common::raw_http::read_response(&mut s, &mut buf));
        let resp = read.await.unwrap().expect("a response, the connection kept");
        assert_eq!(resp.status, 400, "{}", String::from_utf8_lossy(&resp.body));
        assert!(buf.is_empty(), "nothing after the response");
    }
    server.shutdown().await;
    let mut rest = [0u8; 64];
    let read = tokio::time::timeout(Duration::from_secs(5), s.read(&mut rest)).await;
    assert!(matches!(read, Ok(Ok(0)) | Ok(Err(_))), "the idle connection is still open after shutdown: {read:?}");
}
