//! Client and server over ws://, both sides real: the lifecycle, concurrency on one
//! session, malformed and oversized frames in both directions, pings, closing, capacity
//! limits, auth and Origin checks, refused upgrades and refused connections.

mod common;

use common::{opts, rpc_code, text};
use futures_util::{SinkExt, StreamExt};
use mcpscript::client::{ClientError, ClientOptions, Session, Target};
use mcpscript::protocol::jsonrpc::{INVALID_REQUEST, METHOD_NOT_FOUND, PARSE_ERROR};
use mcpscript::server::{self, Listen, RunningServer, ServerConfig, ServerState};
use serde_json::{json, Value};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::http::Uri;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{ClientRequestBuilder, Message};
use tokio_tungstenite::WebSocketStream;

/// A WebSocket server under test: either a plain listener whose connections go to
/// `server::ws::accept_tcp` (the handshake done by tungstenite), or `server::start` with
/// a `ws://` listen URL (the handshake done by the HTTP server, then `serve_upgraded`).
struct TestServer {
    state: Arc<ServerState>,
    url: String,
    task: Option<tokio::task::JoinHandle<()>>,
    running: Option<RunningServer>,
}

impl TestServer {
    /// A plain listener; each connection handed to `accept_tcp`.
    async fn start(config: ServerConfig) -> TestServer {
        let state = Arc::new(ServerState::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let st = state.clone();
        let task = tokio::spawn(async move {
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                tokio::spawn(server::ws::accept_tcp(stream, st.clone()));
            }
        });
        TestServer { state, url: format!("ws://127.0.0.1:{port}/ws"), task: Some(task), running: None }
    }

    /// The built-in server on a `ws://` listen URL (HTTP upgrade, then `serve_upgraded`).
    async fn builtin(config: ServerConfig) -> TestServer {
        let config = ServerConfig { listen: vec![Listen::parse("ws://127.0.0.1:0/ws").unwrap()], ..config };
        let running = server::start(config).await.expect("the built-in server starts");
        let url = running.url("ws").expect("a ws:// URL").to_string();
        TestServer { state: running.state.clone(), url, task: None, running: Some(running) }
    }

    fn url(&self) -> String {
        self.url.clone()
    }

    fn target(&self) -> Target {
        self.url().parse().unwrap()
    }

    fn stat(&self, name: &str) -> u64 {
        self.state.stats.snapshot()[name].as_u64().unwrap()
    }

    /// Waits until the server counts no open connection.
    async fn wait_all_closed(&self) {
        let deadline = Instant::now() + Duration::from_secs(3);
        while self.stat("connections_open") != 0 {
            assert!(
                Instant::now() < deadline,
                "the server still has {} open connections",
                self.stat("connections_open")
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    async fn shutdown(mut self) {
        if let Some(running) = self.running.take() {
            running.shutdown().await;
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// Runs a scenario against both server paths.
macro_rules! both_servers {
    ($direct:ident, $builtin:ident, $scenario:ident, $config:expr) => {
        #[tokio::test]
        async fn $direct() {
            $scenario(TestServer::start($config).await).await;
        }

        #[tokio::test]
        async fn $builtin() {
            let server = TestServer::builtin($config).await;
            $scenario(server).await;
        }
    };
}

type RawWs = WebSocketStream<TcpStream>;

/// A plain tungstenite client offering subprotocol `mcp`.
async fn raw_client(url: &str) -> RawWs {
    let uri: Uri = url.parse().unwrap();
    let (host, port) = (uri.host().unwrap().to_string(), uri.port_u16().unwrap());
    let stream = TcpStream::connect((host.as_str(), port)).await.unwrap();
    let request = ClientRequestBuilder::new(uri).with_sub_protocol("mcp");
    let (ws, resp) = tokio_tungstenite::client_async(request, stream).await.unwrap();
    assert_eq!(resp.headers()["sec-websocket-protocol"], "mcp");
    ws
}

/// The next data frame, as JSON (pings and pongs skipped).
async fn next_json(ws: &mut RawWs) -> Value {
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(5), ws.next()).await.expect("a reply in time");
        match msg.expect("the stream is open").expect("no error") {
            Message::Text(t) => return serde_json::from_str(t.as_str()).unwrap(),
            Message::Ping(_) | Message::Pong(_) => continue,
            other => panic!("expected a text frame, got {other:?}"),
        }
    }
}

async fn send_text(ws: &mut RawWs, s: &str) {
    ws.send(Message::text(s.to_string())).await.unwrap();
}

both_servers!(lifecycle_direct, lifecycle_builtin, lifecycle_and_helpers, ServerConfig::default());

async fn lifecycle_and_helpers(server: TestServer) {
    let s = Session::connect(&server.target(), opts()).await.unwrap();
    assert_eq!(s.server().name, "mcpscript");
    assert_eq!(s.server().protocol_version, "2025-11-25");
    let tools = s.tools_list().await.unwrap();
    let names: Vec<&str> = tools["tools"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();
    for name in ["echo", "add", "sleep", "fail", "payload"] {
        assert!(names.contains(&name), "{name} missing from {names:?}");
    }
    assert_eq!(text(&s.call_tool("echo", json!({"message": "hi"})).await.unwrap()), "Echo: hi");
    assert_eq!(text(&s.call_tool("add", json!({"a": 2, "b": 40})).await.unwrap()), "42");
    assert_eq!(s.ping().await.unwrap(), json!({}));
    // The server's own two resources; the conformance fixtures (`test://...`) follow them.
    let resources = s.resources_list().await.unwrap();
    let own = resources["resources"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["uri"].as_str().unwrap().starts_with("mcpscript://"));
    assert_eq!(own.count(), 2, "{resources}");
    assert!(!s.prompts_list().await.unwrap()["prompts"].as_array().unwrap().is_empty());
    let err = s.request("no/such/method", None).await.unwrap_err();
    assert_eq!(rpc_code(&err), METHOD_NOT_FOUND, "{err}");
    assert!(err.to_string().contains(&server.url()), "errors name the target: {err}");
    // A big reply (several read buffers, below the limit) arrives whole.
    let big = s.call_tool("payload", json!({"size": 300_000})).await.unwrap();
    assert_eq!(text(&big).len(), 300_000);
    assert_eq!(server.stat("sessions_initialized"), 1);
    assert_eq!(server.stat("connections_open"), 1);
    s.close().await;
    server.wait_all_closed().await;
    assert_eq!(server.stat("connections_total"), 1);
    server.shutdown().await;
}

both_servers!(
    no_head_of_line_blocking_direct,
    no_head_of_line_blocking_builtin,
    slow_requests_do_not_block_fast_ones,
    ServerConfig::default()
);

async fn slow_requests_do_not_block_fast_ones(server: TestServer) {
    let s = Session::connect(&server.target(), opts()).await.unwrap();
    let start = Instant::now();
    let slow = async {
        let r = s.call_tool("sleep", json!({"ms": 200})).await;
        (r, start.elapsed())
    };
    let fast = async {
        // Let the slow request go out first. Kept fixed (pacing): the order is only a
        // nicety here, the assert compares the two replies' times, not the send order.
        tokio::time::sleep(Duration::from_millis(20)).await;
        let r = s.call_tool("echo", json!({"message": "quick"})).await;
        (r, start.elapsed())
    };
    let ((slow_r, slow_t), (fast_r, fast_t)) = tokio::join!(slow, fast);
    slow_r.unwrap();
    assert_eq!(text(&fast_r.unwrap()), "Echo: quick");
    assert!(slow_t >= Duration::from_millis(200), "slow took {slow_t:?}");
    assert!(fast_t < slow_t, "the fast request ({fast_t:?}) waited for the slow one ({slow_t:?})");
    assert!(fast_t < Duration::from_millis(150), "fast took {fast_t:?}");

    // Many concurrent requests on one session all get their own replies.
    let many = (0..50).map(|i| {
        let s = &s;
        async move { s.call_tool("echo", json!({"message": format!("m{i}")})).await.map(|v| text(&v).to_string()) }
    });
    let replies = futures_util::future::join_all(many).await;
    for (i, r) in replies.into_iter().enumerate() {
        assert_eq!(r.unwrap(), format!("Echo: m{i}"));
    }
    s.close().await;
    server.shutdown().await;
}

both_servers!(
    malformed_frames_direct,
    malformed_frames_builtin,
    malformed_frames_are_answered,
    ServerConfig::default()
);

async fn malformed_frames_are_answered(server: TestServer) {
    let mut ws = raw_client(&server.url()).await;
    send_text(&mut ws, "this is not json").await;
    let reply = next_json(&mut ws).await;
    assert_eq!(reply["error"]["code"], PARSE_ERROR, "{reply}");
    assert_eq!(reply["id"], Value::Null);

    send_text(&mut ws, r#"{"jsonrpc":"2.0","id":7}"#).await;
    let reply = next_json(&mut ws).await;
    assert_eq!(reply["error"]["code"], INVALID_REQUEST, "{reply}");
    assert_eq!(reply["id"], 7);

    // Binary frames are refused, naming the request when its id can be read.
    ws.send(Message::binary(br#"{"jsonrpc":"2.0","id":8,"method":"ping"}"#.to_vec())).await.unwrap();
    let reply = next_json(&mut ws).await;
    assert_eq!(reply["error"]["code"], INVALID_REQUEST, "{reply}");
    assert_eq!(reply["id"], 8);

    // Pings are answered with pongs carrying the same payload.
    ws.send(Message::Ping(b"hello".to_vec().into())).await.unwrap();
    let pong = tokio::time::timeout(Duration::from_secs(5), ws.next()).await.unwrap().unwrap().unwrap();
    assert_eq!(pong, Message::Pong(b"hello".to_vec().into()));

    // The connection is still usable: ping is allowed before initialize, then a session.
    send_text(&mut ws, r#"{"jsonrpc":"2.0","id":9,"method":"ping"}"#).await;
    assert_eq!(next_json(&mut ws).await, json!({"jsonrpc": "2.0", "id": 9, "result": {}}));
    send_text(
        &mut ws,
        r#"{"jsonrpc":"2.0","id":10,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"raw","version":"0"}}}"#,
    )
    .await;
    assert_eq!(next_json(&mut ws).await["result"]["protocolVersion"], "2025-06-18");
    send_text(&mut ws, r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#).await;
    // A batch is one frame in and one frame out.
    send_text(
        &mut ws,
        r#"[{"jsonrpc":"2.0","id":11,"method":"ping"},{"jsonrpc":"2.0","id":12,"method":"tools/call","params":{"name":"echo","arguments":{"message":"b"}}}]"#,
    )
    .await;
    let batch = next_json(&mut ws).await;
    assert_eq!(batch.as_array().unwrap().len(), 2, "{batch}");
    assert_eq!(batch[1]["result"]["content"][0]["text"], "Echo: b");
    assert_eq!(server.stat("parse_errors"), 1);

    // Client close: the server replies with a close frame and ends the session.
    ws.close(None).await.unwrap();
    while let Some(Ok(_)) = ws.next().await {}
    server.wait_all_closed().await;
    server.shutdown().await;
}

both_servers!(
    oversized_request_direct,
    oversized_request_builtin,
    oversized_requests_are_refused,
    ServerConfig { max_message_size: 1024, ..Default::default() }
);

async fn oversized_requests_are_refused(server: TestServer) {
    let mut ws = raw_client(&server.url()).await;
    let big = format!(r#"{{"jsonrpc":"2.0","id":1,"method":"ping","params":{{"pad":"{}"}}}}"#, "x".repeat(4000));
    send_text(&mut ws, &big).await;
    let reply = next_json(&mut ws).await;
    assert_eq!(reply["error"]["code"], INVALID_REQUEST, "{reply}");
    assert!(reply["error"]["message"].as_str().unwrap().contains("1024"), "{reply}");
    let close = tokio::time::timeout(Duration::from_secs(5), ws.next()).await.unwrap();
    match close {
        Some(Ok(Message::Close(Some(frame)))) => assert_eq!(frame.code, CloseCode::Size),
        other => panic!("expected a close frame 1009, got {other:?}"),
    }
    server.wait_all_closed().await;
    server.shutdown().await;
}

both_servers!(
    oversized_reply_direct,
    oversized_reply_builtin,
    oversized_reply_is_a_protocol_error,
    ServerConfig::default()
);

async fn oversized_reply_is_a_protocol_error(server: TestServer) {
    let o = Arc::new(ClientOptions { max_message_size: 2048, ..Default::default() });
    let s = Session::connect(&server.target(), o).await.unwrap();
    let t = Instant::now();
    let err = s.call_tool("payload", json!({"size": 10_000})).await.unwrap_err();
    assert!(t.elapsed() < Duration::from_secs(2), "took {:?}", t.elapsed());
    assert!(matches!(err, ClientError::Protocol { .. }), "{err}");
    assert!(err.to_string().contains("2048"), "{err}");
    // The session is dead: later requests fail at once.
    let later = s.ping().await.unwrap_err();
    assert!(matches!(later, ClientError::Closed { .. } | ClientError::Protocol { .. }), "{later}");
    // The client dropped the connection (with a close frame 1009).
    server.wait_all_closed().await;
    server.shutdown().await;
}

#[tokio::test]
async fn connection_refused_and_refused_upgrades_are_connect_errors() {
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        l.local_addr().unwrap().port()
    };
    let target: Target = format!("ws://127.0.0.1:{port}/ws").parse().unwrap();
    let err = Session::connect(&target, opts()).await.err().unwrap();
    assert!(matches!(err, ClientError::Connect { .. }), "{err}");
    assert!(err.to_string().contains(&format!("127.0.0.1:{port}")), "{err}");

    // A dedicated listener refuses other paths with 404.
    let state = Arc::new(ServerState::new(ServerConfig::default()));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = watch::channel(false);
    let task = tokio::spawn(server::ws::serve_listener(listener, "/ws".into(), state.clone(), rx));
    let wrong: Target = format!("ws://127.0.0.1:{port}/other").parse().unwrap();
    let err = Session::connect(&wrong, opts()).await.err().unwrap();
    assert!(matches!(err, ClientError::Connect { .. }), "{err}");
    assert!(err.to_string().contains("HTTP 404"), "{err}");

    // Something that is not a WebSocket server at all.
    let plain = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let plain_port = plain.local_addr().unwrap().port();
    tokio::spawn(async move {
        let (mut s, _) = plain.accept().await.unwrap();
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut buf = [0u8; 1024];
        let _ = s.read(&mut buf).await;
        let _ = s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok").await;
    });
    let plain_target: Target = format!("ws://127.0.0.1:{plain_port}/ws").parse().unwrap();
    let err = Session::connect(&plain_target, opts()).await.err().unwrap();
    assert!(matches!(err, ClientError::Connect { .. }), "{err}");
    assert!(err.to_string().contains("HTTP 200"), "{err}");

    // The right path works; shutting the listener down closes the session with 1001.
    let right: Target = format!("ws://127.0.0.1:{port}/ws").parse().unwrap();
    let s = Session::connect(&right, opts()).await.unwrap();
    s.ping().await.unwrap();
    tx.send(true).unwrap();
    task.await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(3);
    while !s.dispatcher().is_closed() {
        assert!(Instant::now() < deadline, "the session did not see the shutdown");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let err = s.ping().await.unwrap_err();
    assert!(err.to_string().contains("1001"), "{err}");
}

#[tokio::test]
async fn max_connections_refuses_with_close_1013() {
    let server = TestServer::start(ServerConfig { max_connections: Some(1), ..Default::default() }).await;
    let first = Session::connect(&server.target(), opts()).await.unwrap();
    let err = Session::connect(&server.target(), opts()).await.err().unwrap();
    assert!(err.to_string().contains("1013"), "{err}");
    assert_eq!(server.stat("connections_refused"), 1);

    let mut raw = raw_client(&server.url()).await;
    match tokio::time::timeout(Duration::from_secs(5), raw.next()).await.unwrap() {
        Some(Ok(Message::Close(Some(frame)))) => assert_eq!(frame.code, CloseCode::Again),
        other => panic!("expected a close frame 1013, got {other:?}"),
    }
    first.ping().await.unwrap();
    first.close().await;
    server.wait_all_closed().await;
    Session::connect(&server.target(), opts()).await.unwrap().close().await;
}

#[tokio::test]
async fn bearer_token_or_initialize_auth() {
    let server = TestServer::start(ServerConfig { auth_token: Some("s3cret".into()), ..Default::default() }).await;
    let err = Session::connect(&server.target(), opts()).await.err().unwrap();
    assert!(matches!(err, ClientError::Handshake { .. }) && err.to_string().contains("unauthorized"), "{err}");
    let wrong = Arc::new(ClientOptions { auth_token: Some("nope".into()), ..Default::default() });
    let err = Session::connect(&server.target(), wrong).await.err().unwrap();
    assert!(matches!(err, ClientError::Connect { .. }) && err.to_string().contains("HTTP 401"), "{err}");
    let right = Arc::new(ClientOptions { auth_token: Some("s3cret".into()), ..Default::default() });
    let s = Session::connect(&server.target(), right).await.unwrap();
    s.ping().await.unwrap();
    s.close().await;
}

#[tokio::test]
async fn foreign_origins_are_refused() {
    let server = TestServer::start(ServerConfig::default()).await;
    let connect = |origin: &'static str| {
        let url = server.url();
        async move {
            let uri: Uri = url.parse().unwrap();
            let stream = TcpStream::connect(("127.0.0.1", uri.port_u16().unwrap())).await.unwrap();
            let request = ClientRequestBuilder::new(uri).with_sub_protocol("mcp").with_header("Origin", origin);
            tokio_tungstenite::client_async(request, stream).await.map(|_| ())
        }
    };
    connect("http://localhost:3000").await.unwrap();
    match connect("https://evil.example").await {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => assert_eq!(resp.status(), 403),
        other => panic!("expected HTTP 403, got {other:?}"),
    }
}

#[tokio::test]
#[allow(clippy::result_large_err)] // the handshake callback's type is tungstenite's
async fn server_closing_mid_request_is_a_closed_error() {
    // A server that initializes, then closes the connection on the next request.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        let mut ws = tokio_tungstenite::accept_hdr_async(
            stream,
            |_: &tokio_tungstenite::tungstenite::handshake::server::Request,
             mut resp: tokio_tungstenite::tungstenite::handshake::server::Response| {
                resp.headers_mut().insert("sec-websocket-protocol", "mcp".parse().unwrap());
                Ok(resp)
            },
        )
        .await
        .unwrap();
        while let Some(Ok(msg)) = ws.next().await {
            let Message::Text(t) = msg else { continue };
            let req: Value = serde_json::from_str(t.as_str()).unwrap();
            match req["method"].as_str() {
                Some("initialize") => {
                    let reply = json!({"jsonrpc": "2.0", "id": req["id"], "result": {
                        "protocolVersion": "2025-11-25", "capabilities": {}, "serverInfo": {"name": "fake", "version": "0"}}});
                    ws.send(Message::text(reply.to_string())).await.unwrap();
                }
                Some("notifications/initialized") => {}
                _ => {
                    let _ = ws.close(None).await;
                    break;
                }
            }
        }
    });
    let target: Target = format!("ws://127.0.0.1:{port}/").parse().unwrap();
    let s = Session::connect(&target, opts()).await.unwrap();
    let err = s.ping().await.unwrap_err();
    assert!(matches!(err, ClientError::Closed { .. }), "{err}");
    assert!(err.to_string().contains("by the server"), "{err}");
}

both_servers!(
    dropped_session_direct,
    dropped_session_builtin,
    dropped_session_releases_its_connection,
    ServerConfig::default()
);

/// A session dropped without `close()` still releases its connection.
async fn dropped_session_releases_its_connection(server: TestServer) {
    let s = Session::connect(&server.target(), opts()).await.unwrap();
    s.ping().await.unwrap();
    assert_eq!(server.stat("connections_open"), 1);
    drop(s);
    server.wait_all_closed().await;
    server.shutdown().await;
}

#[tokio::test]
async fn builtin_server_refuses_upgrades_at_the_connection_limit() {
    // The HTTP side answers 503 before upgrading; a refused upgrade is a Connect error.
    let server = TestServer::builtin(ServerConfig { max_connections: Some(1), ..Default::default() }).await;
    let first = Session::connect(&server.target(), opts()).await.unwrap();
    let err = Session::connect(&server.target(), opts()).await.err().unwrap();
    assert!(matches!(err, ClientError::Connect { .. }), "{err}");
    assert!(err.to_string().contains("HTTP 503"), "{err}");
    assert_eq!(server.stat("connections_refused"), 1);
    first.close().await;
    server.wait_all_closed().await;
    Session::connect(&server.target(), opts()).await.unwrap().close().await;
    server.shutdown().await;
}

#[tokio::test]
async fn builtin_server_upgrades_on_http_listeners_and_shuts_down() {
    let config = ServerConfig::listening(&["http://127.0.0.1:0/mcp"]).unwrap();
    let running = server::start(config).await.unwrap();
    let http = running.url("http").unwrap().to_string();
    let target: Target = http.replacen("http://", "ws://", 1).parse().unwrap();
    let s = Session::connect(&target, opts()).await.unwrap();
    assert_eq!(text(&s.call_tool("echo", json!({"message": "hi"})).await.unwrap()), "Echo: hi");
    assert_eq!(running.state.stats.connections_open.load(Ordering::Relaxed), 1);
    // Shutting the server down ends the session; the client notices at once.
    let t = Instant::now();
    running.shutdown().await;
    let deadline = Instant::now() + Duration::from_secs(3);
    while !s.dispatcher().is_closed() {
        assert!(Instant::now() < deadline, "the session did not see the shutdown");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(t.elapsed() < Duration::from_secs(3));
    let err = s.ping().await.unwrap_err();
    assert!(matches!(err, ClientError::Closed { .. }), "{err}");
}
