//! Client and server over tcp:// and stdio:, both sides real: the lifecycle, every typed
//! helper, negotiation, deadlines with cancellation, load shedding, auth, injected latency
//! and errors, and the client's handling of servers that misbehave.

mod common;

use common::{opts, rpc_code, text, wait_until_async};
use mcpscript::client::{ClientError, ClientOptions, ErrorKind, Session, Target};
use mcpscript::protocol::jsonrpc::{INVALID_PARAMS, INVALID_REQUEST, METHOD_NOT_FOUND, PARSE_ERROR};
use mcpscript::protocol::mcp::codes;
use mcpscript::server::{self, RunningServer, ServerConfig};
use serde_json::{json, Value};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

async fn start(config: ServerConfig) -> (RunningServer, Target) {
    let server = server::start(config).await.expect("server starts");
    let target = server.url("tcp").unwrap().parse().unwrap();
    (server, target)
}

fn tcp_config() -> ServerConfig {
    ServerConfig::listening(&["tcp://127.0.0.1:0"]).unwrap()
}

#[tokio::test]
async fn tcp_session_lifecycle_and_every_helper() {
    let (server, target) = start(tcp_config()).await;
    let s = Session::connect(&target, opts()).await.unwrap();
    assert_eq!(s.server().name, "mcpscript");
    assert_eq!(s.server().protocol_version, "2025-11-25");
    assert_eq!(s.ping().await.unwrap(), json!({}));
    let tools: Vec<String> = s.tools_list().await.unwrap()["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_string())
        .collect();
    for name in ["echo", "add", "sleep", "fail", "payload", "stats"] {
        assert!(tools.contains(&name.to_string()), "{name} missing from {tools:?}");
    }
    assert_eq!(text(&s.call_tool("echo", json!({"message": "hi"})).await.unwrap()), "Echo: hi");
    assert_eq!(text(&s.call_tool("add", json!({"a": 2, "b": 40})).await.unwrap()), "42");
    // The server's own two resources; the conformance fixtures (`test://...`) follow them.
    let resources = s.resources_list().await.unwrap();
    let own = resources["resources"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["uri"].as_str().unwrap().starts_with("mcpscript://"));
    assert_eq!(own.count(), 2, "{resources}");
    let r = s.read_resource("mcpscript://payload/300").await.unwrap();
    assert_eq!(r["contents"][0]["text"].as_str().unwrap().len(), 300);
    assert_eq!(s.prompts_list().await.unwrap()["prompts"][0]["name"], "greeting");
    let p = s.get_prompt("greeting", json!({"name": "Ada"})).await.unwrap();
    assert!(p["messages"][0]["content"]["text"].as_str().unwrap().contains("Ada"));

    assert_eq!(rpc_code(&s.request("no/such", None).await.unwrap_err()), METHOD_NOT_FOUND);
    assert_eq!(rpc_code(&s.call_tool("echo", json!({})).await.unwrap_err()), INVALID_PARAMS);
    assert_eq!(rpc_code(&s.read_resource("nope://x").await.unwrap_err()), codes::RESOURCE_NOT_FOUND);
    assert_eq!(s.request("no/such", None).await.unwrap_err().kind(), ErrorKind::Rpc(METHOD_NOT_FOUND));
    s.close().await;
    wait_until_async(Duration::from_secs(5), "the server to see the close", || {
        server.state.stats.snapshot()["connections_open"] == 0
    })
    .await;
    let stats = server.state.stats.snapshot();
    assert_eq!(stats["sessions_initialized"], 1);
    assert_eq!(stats["connections_open"], 0, "the server saw the close");
    server.shutdown().await;
}

#[tokio::test]
async fn negotiates_older_protocol_versions() {
    let (server, target) = start(tcp_config()).await;
    for v in ["2025-06-18", "2025-03-26", "2024-11-05"] {
        let o = Arc::new(ClientOptions { protocol_version: v.into(), ..Default::default() });
        let s = Session::connect(&target, o).await.unwrap();
        assert_eq!(s.server().protocol_version, v);
        s.close().await;
    }
    server.shutdown().await;
}

#[tokio::test]
async fn timed_out_request_is_cancelled_and_reported() {
    let (server, target) = start(tcp_config()).await;
    let s = Session::connect(&target, opts()).await.unwrap();
    s.ping().await.unwrap(); // the server has now read notifications/initialized too
    let notes_before = server.state.stats.notifications.load(Ordering::Relaxed);
    let started = Instant::now();
    let err = s
        .request_timeout(
            "tools/call",
            Some(json!({"name": "sleep", "arguments": {"ms": 2000}})),
            Duration::from_millis(100),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::Timeout { .. }), "{err}");
    assert!(started.elapsed() < Duration::from_millis(1000));
    assert!(err.to_string().contains("no reply to 'tools/call' within 100 ms"), "{err}");
    wait_until_async(Duration::from_secs(5), "notifications/cancelled", || {
        server.state.stats.notifications.load(Ordering::Relaxed) > notes_before
    })
    .await;
    assert_eq!(
        server.state.stats.notifications.load(Ordering::Relaxed),
        notes_before + 1,
        "notifications/cancelled reached the server"
    );
    // The session is still usable afterwards.
    s.ping().await.unwrap();
    server.shutdown().await;
}

#[tokio::test]
async fn slow_requests_do_not_block_fast_ones_on_one_session() {
    let (server, target) = start(tcp_config()).await;
    let s = Arc::new(Session::connect(&target, opts()).await.unwrap());
    let slow = {
        let s = s.clone();
        tokio::spawn(async move { s.call_tool("sleep", json!({"ms": 300})).await })
    };
    assert!(
        wait_until_async(Duration::from_secs(5), "the slow call", || server.state.inflight() == 1).await,
        "the slow call never reached the server"
    );
    let t = Instant::now();
    s.ping().await.unwrap();
    assert!(t.elapsed() < Duration::from_millis(200), "ping waited behind sleep: {:?}", t.elapsed());
    assert!(text(&slow.await.unwrap().unwrap()).starts_with("slept"));
    server.shutdown().await;
}

#[tokio::test]
async fn max_inflight_sheds_with_overloaded() {
    let mut c = tcp_config();
    c.max_inflight = Some(1);
    let (server, target) = start(c).await;
    let s = Arc::new(Session::connect(&target, opts()).await.unwrap());
    let slow = {
        let s = s.clone();
        tokio::spawn(async move { s.call_tool("sleep", json!({"ms": 300})).await })
    };
    assert!(
        wait_until_async(Duration::from_secs(5), "the slow call", || server.state.inflight() == 1).await,
        "the slow call never reached the server"
    );
    let err = s.ping().await.unwrap_err();
    assert_eq!(rpc_code(&err), codes::OVERLOADED);
    assert!(err.to_string().contains("overloaded"));
    slow.await.unwrap().unwrap();
    s.ping().await.unwrap();
    assert_eq!(server.state.stats.shed.load(Ordering::Relaxed), 1);
    server.shutdown().await;
}

#[tokio::test]
async fn max_connections_refuses_with_a_clear_error() {
    let mut c = tcp_config();
    c.max_connections = Some(1);
    let (server, target) = start(c).await;
    let first = Session::connect(&target, opts()).await.unwrap();
    let err = Session::connect(&target, opts()).await.err().unwrap();
    assert!(err.to_string().contains("overloaded: too many connections"), "{err}");
    first.close().await;
    assert_eq!(server.state.stats.connections_refused.load(Ordering::Relaxed), 1);
    server.shutdown().await;
}

#[tokio::test]
async fn auth_token_is_required_in_initialize() {
    let mut c = tcp_config();
    c.auth_token = Some("s3cret".into());
    let (server, target) = start(c).await;
    let err = Session::connect(&target, opts()).await.err().unwrap();
    assert!(matches!(err, ClientError::Handshake { .. }) && err.to_string().contains("unauthorized"), "{err}");
    let o = Arc::new(ClientOptions { auth_token: Some("s3cret".into()), ..Default::default() });
    Session::connect(&target, o).await.unwrap().ping().await.unwrap();
    server.shutdown().await;
}

#[tokio::test]
async fn injected_latency_and_errors() {
    let mut c = tcp_config();
    c.latency = Some(Duration::from_millis(60));
    let (server, target) = start(c).await;
    let s = Session::connect(&target, opts()).await.unwrap();
    let t = Instant::now();
    s.ping().await.unwrap();
    assert!(t.elapsed() >= Duration::from_millis(60), "{:?}", t.elapsed());
    server.shutdown().await;

    let mut c = tcp_config();
    c.error_rate = 1.0;
    let (server, target) = start(c).await;
    let s = Session::connect(&target, opts()).await.unwrap();
    assert_eq!(rpc_code(&s.ping().await.unwrap_err()), -32603);
    assert_eq!(server.state.stats.injected_errors.load(Ordering::Relaxed), 1);
    server.shutdown().await;
}

/// Sends raw lines to the server and returns the replies it writes back.
async fn raw_exchange(target: &Target, lines: &[&str]) -> Vec<Value> {
    let (host, port) = target.host_port().unwrap();
    let stream = tokio::net::TcpStream::connect((host.as_str(), port)).await.unwrap();
    let (r, mut w) = stream.into_split();
    let mut replies = BufReader::new(r).lines();
    let mut out = vec![];
    for line in lines {
        w.write_all(format!("{line}\n").as_bytes()).await.unwrap();
        let reply = tokio::time::timeout(Duration::from_secs(2), replies.next_line()).await.unwrap().unwrap().unwrap();
        out.push(serde_json::from_str(&reply).unwrap());
    }
    out
}

#[tokio::test]
async fn server_answers_malformed_input_and_stays_up() {
    let (server, target) = start(tcp_config()).await;
    let init = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"raw","version":"0"}}}"#;
    let r = raw_exchange(
        &target,
        &[
            "{this is not json",
            r#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#,
            init,
            r#"{"jsonrpc":"1.0","id":3,"method":"ping"}"#,
            r#"{"jsonrpc":"2.0","id":4,"method":"frobnicate"}"#,
            r#"{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"add","arguments":{"a":"x"}}}"#,
            r#"[{"jsonrpc":"2.0","id":6,"method":"ping"},{"jsonrpc":"2.0","method":"notifications/initialized"},{"jsonrpc":"2.0","id":7,"method":"nope"}]"#,
            init,
            r#"{"jsonrpc":"2.0","id":8,"method":"ping"}"#,
        ],
    )
    .await;
    assert_eq!(r[0]["error"]["code"], PARSE_ERROR);
    assert_eq!(r[0]["id"], Value::Null);
    assert_eq!(r[1]["error"]["code"], INVALID_REQUEST, "requests before initialize are refused");
    assert_eq!(r[2]["result"]["protocolVersion"], "2025-11-25");
    assert_eq!((r[3]["id"].clone(), r[3]["error"]["code"].clone()), (json!(3), json!(INVALID_REQUEST)));
    assert_eq!(r[4]["error"]["code"], METHOD_NOT_FOUND);
    assert_eq!(r[5]["error"]["code"], INVALID_PARAMS);
    let batch = r[6].as_array().expect("a batch is answered with an array");
    assert_eq!(batch.len(), 2, "the notification gets no reply");
    assert_eq!((batch[0]["id"].clone(), batch[1]["error"]["code"].clone()), (json!(6), json!(METHOD_NOT_FOUND)));
    assert_eq!(r[7]["error"]["code"], INVALID_REQUEST, "a second initialize is refused");
    assert_eq!(r[8]["result"], json!({}), "still serving");
    server.shutdown().await;
}

/// A fake tcp server that answers `initialize` correctly and every later request with
/// whatever `reply` returns for its id (`None`: close the connection).
async fn fake_server(reply: fn(u64) -> Option<String>) -> Target {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (r, mut w) = stream.into_split();
                let mut lines = BufReader::new(r).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    let msg: Value = serde_json::from_str(&line).unwrap();
                    let Some(id) = msg["id"].as_u64() else { continue };
                    let out = if msg["method"] == "initialize" {
                        Some(json!({"jsonrpc":"2.0","id":id,"result":{"protocolVersion":"2025-11-25","capabilities":{},"serverInfo":{"name":"fake","version":"0"}}}).to_string())
                    } else {
                        reply(id)
                    };
                    match out {
                        Some(o) => w.write_all(format!("{o}\n").as_bytes()).await.unwrap(),
                        None => return,
                    }
                }
            });
        }
    });
    format!("tcp://127.0.0.1:{port}").parse().unwrap()
}

#[tokio::test]
async fn server_closing_mid_request_is_a_closed_error() {
    let target = fake_server(|_| None).await;
    let s = Session::connect(&target, opts()).await.unwrap();
    let err = s.ping().await.unwrap_err();
    assert!(matches!(err, ClientError::Closed { .. }), "{err}");
    assert!(err.to_string().contains("connection closed"), "{err}");
    assert!(s.ping().await.is_err(), "later requests fail at once");
}

#[tokio::test]
async fn non_json_reply_is_a_protocol_error_naming_the_target() {
    let target = fake_server(|_| Some("<html>oops</html>".into())).await;
    let s = Session::connect(&target, opts()).await.unwrap();
    let started = Instant::now();
    let err = s.ping().await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(1), "failed fast, not by deadline");
    assert!(matches!(err, ClientError::Protocol { .. }), "{err}");
    let msg = err.to_string();
    assert!(msg.contains(&target.to_string()) && msg.contains("not JSON") && msg.contains("<html>"), "{msg}");
}

#[tokio::test]
async fn wrong_id_reply_times_out_and_says_why() {
    let target = fake_server(|id| Some(json!({"jsonrpc":"2.0","id":id + 100,"result":{}}).to_string())).await;
    let o = Arc::new(ClientOptions { request_timeout: Duration::from_millis(200), ..Default::default() });
    let s = Session::connect(&target, o).await.unwrap();
    let err = s.ping().await.unwrap_err();
    assert!(matches!(err, ClientError::Timeout { .. }), "{err}");
    assert!(err.to_string().contains("which no request is waiting for"), "{err}");
    assert_eq!(s.dispatcher().unmatched.load(Ordering::Relaxed), 1);
}

#[tokio::test]
async fn oversized_reply_is_a_protocol_error() {
    let (server, target) = start(tcp_config()).await;
    let o = Arc::new(ClientOptions { max_message_size: 2000, ..Default::default() });
    let s = Session::connect(&target, o).await.unwrap();
    let err = s.call_tool("payload", json!({"size": 10_000})).await.unwrap_err();
    assert!(matches!(err, ClientError::Protocol { .. }) && err.to_string().contains("limit of 2000 bytes"), "{err}");
    server.shutdown().await;
}

#[tokio::test]
async fn connection_refused_and_bad_stdio_commands_are_clear() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let err = Session::connect(&format!("tcp://127.0.0.1:{port}").parse().unwrap(), opts()).await.err().unwrap();
    assert!(matches!(err, ClientError::Connect { .. }) && err.to_string().contains("refused"), "{err}");
    let err = Session::connect(&"stdio:/no/such/server --x".parse().unwrap(), opts()).await.err().unwrap();
    assert!(err.to_string().contains("cannot start the stdio server '/no/such/server': no such command"), "{err}");
}

#[tokio::test]
async fn stdio_session_against_the_builtin_server() {
    let target: Target = format!("stdio:{} serve --stdio", env!("CARGO_BIN_EXE_mcpscript")).parse().unwrap();
    let s = Session::connect(&target, opts()).await.unwrap();
    assert_eq!(s.server().name, "mcpscript");
    assert_eq!(text(&s.call_tool("echo", json!({"message": "over stdio"})).await.unwrap()), "Echo: over stdio");
    assert_eq!(rpc_code(&s.request("nope", None).await.unwrap_err()), METHOD_NOT_FOUND);
    s.close().await;
}

#[tokio::test]
async fn stdio_child_that_exits_is_reported_with_its_stderr() {
    let target: Target = "stdio:sh -c 'echo boom >&2; exit 3'".parse().unwrap();
    let err = Session::connect(&target, opts()).await.err().unwrap();
    let msg = err.to_string();
    assert!(msg.contains("connection closed") || msg.contains("boom"), "{msg}");
}

#[tokio::test]
async fn batches_are_sent_as_one_frame_and_answered_in_order() {
    let (server, target) = start(tcp_config()).await;
    let s = Session::connect(&target, opts()).await.unwrap();
    let requests_before = server.state.stats.requests.load(Ordering::Relaxed);
    let results = s
        .batch(vec![
            ("ping".into(), None),
            ("tools/call".into(), Some(json!({"name": "echo", "arguments": {"message": "b"}}))),
            ("nope".into(), None),
        ])
        .await;
    assert_eq!(results.len(), 3);
    assert_eq!(results[0].as_ref().unwrap(), &json!({}));
    assert_eq!(text(results[1].as_ref().unwrap()), "Echo: b");
    assert_eq!(rpc_code(results[2].as_ref().unwrap_err()), METHOD_NOT_FOUND);
    assert_eq!(server.state.stats.requests.load(Ordering::Relaxed), requests_before + 3);
    server.shutdown().await;
}
