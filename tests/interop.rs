//! Interop with the official MCP implementations, both ways: mcpscript's client against
//! `@modelcontextprotocol/server-everything` (Streamable HTTP, legacy SSE, stdio), and the
//! official TypeScript and Python SDK clients against `mcpscript serve` (Streamable HTTP
//! and stdio; the Python SDK 2.3.0 in both protocol eras: its default `mode="auto"`
//! negotiates the stateless revision 2026-07-28 with `server/discover`, `mode="legacy"`
//! the `initialize` handshake). The SDKs are installed by `tests/interop/setup.sh`
//! (pinned versions).

mod common;

use common::interop::{self, Everything};
use mcpscript::client::{ClientError, ClientOptions, Session, Target};
use mcpscript::server::{self, ServerConfig};
use serde_json::json;
use std::sync::Arc;

const BIN: &str = env!("CARGO_BIN_EXE_mcpscript");

/// What every transport must do against the official reference server.
async fn exercise_everything(target: &str) {
    let target: Target = target.parse().unwrap();
    let s = Session::connect(&target, Arc::new(ClientOptions::default())).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(s.server().name, "mcp-servers/everything");
    assert_eq!(s.server().protocol_version, "2025-11-25");
    let tools = s.tools_list().await.unwrap();
    assert!(tools["tools"].as_array().unwrap().iter().any(|t| t["name"] == "echo"), "{tools}");
    let echo = s.call_tool("echo", json!({"message": "hi"})).await.unwrap();
    assert_eq!(echo["content"][0]["text"], "Echo: hi");
    assert_eq!(s.ping().await.unwrap(), json!({}));
    match s.request("no/such/method", None).await {
        Err(ClientError::Rpc { error, .. }) => assert_eq!(error.code, -32601),
        other => panic!("expected -32601, got {other:?}"),
    }
    s.close().await;
}

#[tokio::test]
async fn client_against_everything_over_streamable_http() {
    let everything = Everything::start_http();
    exercise_everything(&everything.url).await;
}

#[tokio::test]
async fn client_against_everything_over_legacy_sse() {
    let everything = Everything::start_sse();
    exercise_everything(&everything.url).await;
}

#[tokio::test]
async fn client_against_everything_over_stdio() {
    exercise_everything(&format!("stdio:{}", interop::stdio_command())).await;
}

#[tokio::test]
async fn client_negotiates_down_with_everything() {
    let target: Target = format!("stdio:{}", interop::stdio_command()).parse().unwrap();
    let opts = Arc::new(ClientOptions { protocol_version: "2024-11-05".into(), ..Default::default() });
    let s = Session::connect(&target, opts).await.unwrap();
    assert_eq!(s.server().protocol_version, "2024-11-05");
    s.close().await;
}

fn assert_sdk_verdict(v: &serde_json::Value) {
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(v["serverName"], "mcpscript", "{v}");
    assert_eq!(v["echo"], "Echo: interop", "{v}");
    let tools: Vec<&str> = v["tools"].as_array().unwrap().iter().filter_map(|t| t.as_str()).collect();
    for t in ["echo", "add", "sleep", "fail", "payload"] {
        assert!(tools.contains(&t), "{t} missing: {v}");
    }
}

async fn sdk_against_our_http(lang: &'static str) {
    let running = server::start(ServerConfig::listening(&["http://127.0.0.1:0/mcp"]).unwrap()).await.unwrap();
    let url = running.url("http").unwrap().to_string();
    let verdict = tokio::task::spawn_blocking(move || interop::run_sdk_client(lang, &[&url])).await.unwrap();
    assert_sdk_verdict(&verdict);
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn typescript_sdk_client_against_our_streamable_http() {
    sdk_against_our_http("node").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn python_sdk_client_against_our_streamable_http() {
    sdk_against_our_http("python").await;
}

#[test]
fn typescript_sdk_client_against_our_stdio() {
    assert_sdk_verdict(&interop::run_sdk_client("node", &["stdio", BIN, "serve", "--stdio"]));
}

#[test]
fn python_sdk_client_against_our_stdio() {
    assert_sdk_verdict(&interop::run_sdk_client("python", &["stdio", BIN, "serve", "--stdio"]));
}

/// What the Python SDK's stateless run must show against `mcpscript serve`: the revision
/// it negotiated, calls, reads and prompts, progress and opted-in logs, the elicitation
/// fixture answered through `input_required`, the sampling fixture failing (no
/// back-channel), a missing resource as -32602.
fn assert_stateless_verdict(v: &serde_json::Value) {
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(
        (v["protocolVersion"].as_str(), v["serverName"].as_str()),
        (Some("2026-07-28"), Some("mcpscript")),
        "{v}"
    );
    assert_eq!(v["echo"], "Echo: stateless", "{v}");
    assert!(v["readme"].as_str().unwrap_or_default().contains("reference server"), "{v}");
    assert_eq!(v["prompt"], "Please greet Ada warmly.", "{v}");
    assert_eq!((v["progress"].as_u64(), v["logs"].as_u64()), (Some(3), Some(3)), "{v}");
    assert_eq!(
        v["elicitation"]["text"],
        r#"User response: action=accept, content={"email":"ada@example.com","username":"ada"}"#,
        "{v}"
    );
    assert_eq!(v["sampling"]["code"], -32600, "{v}");
    assert!(v["sampling"]["message"].as_str().unwrap_or_default().contains("no back-channel"), "{v}");
    assert_eq!(v["missingResource"]["code"], -32602, "{v}");
    assert_eq!(v["missingResource"]["data"], json!({"uri": "test://nope"}), "{v}");
}

#[tokio::test(flavor = "multi_thread")]
async fn python_sdk_client_negotiates_the_stateless_revision_over_our_streamable_http() {
    let running = server::start(ServerConfig::listening(&["http://127.0.0.1:0/mcp"]).unwrap()).await.unwrap();
    let url = running.url("http").unwrap().to_string();
    let (stateless, legacy) = tokio::task::spawn_blocking(move || {
        (
            interop::run_sdk_client("python-stateless", &[&url]),
            interop::run_sdk_client("python", &["--mode", "legacy", &url]),
        )
    })
    .await
    .unwrap();
    assert_stateless_verdict(&stateless);
    // The same server still speaks the handshake to the same client when asked to.
    assert_sdk_verdict(&legacy);
    assert_eq!(legacy["protocolVersion"], "2025-11-25", "{legacy}");
    let stats = running.state.stats.snapshot();
    assert_eq!(stats["sessions_initialized"], 1, "only the legacy run made a session: {stats}");
    running.shutdown().await;
}

#[test]
fn python_sdk_client_negotiates_the_stateless_revision_over_our_stdio() {
    assert_stateless_verdict(&interop::run_sdk_client("python-stateless", &["stdio", BIN, "serve", "--stdio"]));
}
