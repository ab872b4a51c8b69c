//! Servers that talk to the client unasked, on the official SDKs: elicitation (on a tool
//! call's own event stream and on the GET stream) and a notification on the GET stream
//! from a TypeScript SDK server (`tests/interop/ts_server_requests.mjs`), and sampling from
//! a Python SDK server (`tests/interop/py_sampling_server.py`). Through the Rust client
//! with canned answers, and through a script whose callback answers while the script is
//! blocked in its own tool call.

mod common;

use common::interop::{self, ScriptServer};
use mcpscript::client::server_requests::{Answer, ServerRequests};
use mcpscript::client::{ClientOptions, Session};
use serde_json::{json, Value};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_mcpscript");

fn opts(requests: ServerRequests) -> Arc<ClientOptions> {
    Arc::new(ClientOptions {
        request_timeout: Duration::from_secs(10),
        server_requests: requests,
        ..ClientOptions::default()
    })
}

/// The JSON a tool of the TypeScript server returned as its text.
fn tool_json(result: &Value) -> Value {
    let text = result["content"][0]["text"].as_str().unwrap_or_default();
    serde_json::from_str(text).unwrap_or_else(|e| panic!("tool text is not JSON ({e}): {result}"))
}

#[tokio::test]
async fn answers_elicitation_on_the_post_and_get_streams_of_the_typescript_sdk() {
    let server = ScriptServer::start("ts_server_requests.mjs");
    let requests = ServerRequests {
        elicitation: Some(Answer::Canned(json!({"action": "accept", "content": {"name": "Grace"}}))),
        ..ServerRequests::default()
    };
    let target = server.url.parse().unwrap();
    let s = Session::connect(&target, opts(requests)).await.unwrap_or_else(|e| panic!("{e}\n{}", server.log_tail()));
    for tool in ["elicit_on_post", "elicit_on_get"] {
        let r = s.call_tool(tool, json!({})).await.unwrap_or_else(|e| panic!("{tool}: {e}\n{}", server.log_tail()));
        // The answer as given, plus the schema's default for the field it left out.
        assert_eq!(tool_json(&r), json!({"action": "accept", "content": {"name": "Grace", "age": 36}}), "{tool}");
    }
    let counts = s.dispatcher().server_requests();
    assert_eq!(counts["elicitation/create"].received, 2);
    assert_eq!(counts["elicitation/create"].answered, 2);

    // A notification the server sends on the GET stream (not in any reply).
    let after = s.dispatcher().notifications.load(std::sync::atomic::Ordering::Relaxed);
    let r = s.call_tool("announce", json!({})).await.unwrap();
    assert_eq!(r["content"][0]["text"], "sent");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let note = s.dispatcher().wait_notification(after, deadline, |n| n.method == "notifications/message").await;
    assert_eq!(note.expect("the GET stream's notification").params["data"], "on the GET stream");
    s.close().await;
}

#[tokio::test]
async fn refuses_elicitation_it_was_not_configured_for() {
    let server = ScriptServer::start("ts_server_requests.mjs");
    let target = server.url.parse().unwrap();
    let s = Session::connect(&target, opts(ServerRequests::default())).await.unwrap();
    // Without the capability declared the client refuses (-32601) what the server asks
    // anyway, at once: the tool call fails instead of hanging.
    let r = s.call_tool("elicit_on_post", json!({})).await;
    let failed = match &r {
        Err(_) => true,
        Ok(v) => v["isError"] == true,
    };
    assert!(failed, "elicitation without the capability must fail: {r:?}");
    let counts = s.dispatcher().server_requests()["elicitation/create"];
    assert_eq!((counts.received, counts.answered, counts.refused), (1, 0, 1));
    s.close().await;
}

#[tokio::test]
async fn answers_sampling_of_the_python_sdk() {
    let server = ScriptServer::start("py_sampling_server.py");
    let requests = ServerRequests {
        sampling: Some(Answer::Canned(json!({
            "role": "assistant",
            "content": {"type": "text", "text": "it is short"},
            "model": "canned",
        }))),
        ..ServerRequests::default()
    };
    let target = server.url.parse().unwrap();
    let s = Session::connect(&target, opts(requests)).await.unwrap_or_else(|e| panic!("{e}\n{}", server.log_tail()));
    let r = s
        .call_tool("summarize", json!({"text": "a long text"}))
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", server.log_tail()));
    assert_eq!(r["content"][0]["text"], "model said: it is short", "{r}");
    assert_eq!(s.dispatcher().server_requests()["sampling/createMessage"].answered, 1);
    s.close().await;
}

/// A script's callback answers the server while the script is blocked in the very tool
/// call that made the server ask: no deadlock, and the answer is the callback's.
#[test]
fn a_script_callback_answers_during_its_own_tool_call() {
    let ts = ScriptServer::start("ts_server_requests.mjs");
    let py = ScriptServer::start("py_sampling_server.py");
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("callbacks.rhai");
    std::fs::write(
        &script,
        r#"
        let asked = [];
        let s = connect(param("ts"), #{on_elicitation: |p| #{action: "accept", content: #{name: p.message}}});
        for tool in ["elicit_on_post", "elicit_on_get"] {
            let r = s.tool(tool, #{});
            check(r.ok, `${tool}: ${r.error}`);
            check(r.result.content[0].text.contains("Who are you?"), `${tool}: ${r.result}`);
        }
        check(s.server_requests()["elicitation/create"].answered == 2, `${s.server_requests()}`);
        s.tool("announce", #{});
        let n = s.wait_notification("notifications/*", "5s");
        check(n != () && n.params.data == "on the GET stream", `notification: ${n}`);
        let p = connect(param("py"), #{on_sampling: |params| #{
            role: "assistant", model: "script",
            content: #{type: "text", text: `${params.messages.len()} message(s)`},
        }});
        let r = p.tool("summarize", #{text: "x"});
        check(r.ok && r.result.content[0].text == "model said: 1 message(s)", `sampling: ${r.result} ${r.error}`);
        "#,
    )
    .unwrap();
    let mut cmd = Command::new(BIN);
    cmd.arg("run")
        .arg(&script)
        .args(["--target", &ts.url, "--set", &format!("ts={}", ts.url), "--set", &format!("py={}", py.url)])
        .args(["--request-timeout", "10s", "--out"])
        .arg(dir.path().join("out"));
    let out = interop::run_bounded(cmd, Duration::from_secs(60)).unwrap();
    assert!(
        out.status.is_some_and(|s| s.success()),
        "{}\nstdout:\n{}\nstderr:\n{}\nts:\n{}",
        interop::describe_status(out.status),
        out.stdout,
        out.stderr,
        ts.log_tail()
    );
    assert!(out.stdout.contains("7 of 7 checks passed"), "{}", out.stdout);
}
