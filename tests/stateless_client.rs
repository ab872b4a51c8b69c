//! The client asked for the stateless revision (2026-07-28): against the official Python
//! SDK 2.3.0 (`tests/interop/py_stateless_server.py`, both eras on one URL) it negotiates
//! with `server/discover`, sends the envelope and headers the SDK checks (a wrong one is
//! -32020), answers an `input_required` result, and sees `ping` refused (404 -32601); a
//! reopened session discovers again. Against a server that predates the revision (the
//! same server with the 2026 header dropped, and server-everything over stdio) it falls
//! back to `initialize` at 2025-11-25. Over stdio the envelope alone makes the connection
//! stateless. A line server shows the `UNSUPPORTED_VERSION` cases: one listing handshake
//! revisions gets the fallback, one listing none in common a clear error. And the script's
//! `connect` option and `mcpscript call --protocol-version` reach all this.

mod common;

use common::interop::{self, ScriptServer};
use mcpscript::client::resilient::{reopen, SessionPolicy};
use mcpscript::client::server_requests::{Answer, ServerRequests};
use mcpscript::client::{ClientError, ClientOptions, Session, Target};
use serde_json::{json, Value};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

const BIN: &str = env!("CARGO_BIN_EXE_mcpscript");
const STATELESS: &str = "2026-07-28";
const SERVER: &str = "py_stateless_server.py";

fn stateless_opts(requests: ServerRequests) -> Arc<ClientOptions> {
    Arc::new(ClientOptions {
        protocol_version: STATELESS.into(),
        request_timeout: Duration::from_secs(10),
        server_requests: requests,
        ..ClientOptions::default()
    })
}

/// The code and HTTP status of a JSON-RPC error, however it came.
fn rpc_error(r: Result<Value, ClientError>) -> (i64, Option<u16>) {
    match r {
        Err(e) => (e.rpc_error().unwrap_or_else(|| panic!("not a JSON-RPC error: {e}")).code, e.http_status()),
        Ok(v) => panic!("expected an error, got {v}"),
    }
}

/// What a stateless session must do against the SDK server, over any transport.
async fn exercise(s: &Session) {
    assert!(s.is_stateless() && s.is_initialized());
    let info = s.server();
    assert_eq!((info.protocol_version.as_str(), info.name.as_str()), (STATELESS, "py-stateless-server"));
    assert_eq!(info.version, "2.3.0-test", "from the discover result's _meta");
    assert!(info.capabilities.get("tools").is_some(), "{:?}", info.capabilities);
    let tools = s.tools_list().await.unwrap();
    assert!(tools["tools"].as_array().unwrap().iter().any(|t| t["name"] == "echo"), "{tools}");
    // tools/call, resources/read and prompts/get carry Mcp-Name over HTTP: the SDK
    // refuses them (-32020) when it is missing or wrong.
    let echo = s.call_tool("echo", json!({"text": "héllo"})).await.unwrap();
    assert_eq!(echo["content"][0]["text"], "héllo");
    let hello = s.read_resource("test://hello").await.unwrap();
    assert_eq!(hello["contents"][0]["text"], "Hello, world");
    let prompt = s.get_prompt("greet", json!({"name": "Ada"})).await.unwrap();
    assert!(prompt["messages"][0]["content"]["text"].as_str().unwrap().contains("Ada"), "{prompt}");
}

#[tokio::test]
async fn negotiates_the_stateless_revision_with_the_python_sdk_over_http() {
    let server = ScriptServer::start(SERVER);
    let target: Target = server.url.parse().unwrap();
    let opts = stateless_opts(ServerRequests::default());
    let s = Session::connect(&target, opts.clone()).await.unwrap_or_else(|e| panic!("{e}\n{}", server.log_tail()));
    exercise(&s).await;
    // The revision has no ping: the server answers 404 with -32601, and that is the error.
    assert_eq!(rpc_error(s.ping().await), (-32601, Some(404)));
    s.close().await;

    // Reconnecting negotiates again (no initialize: the server would answer 404 -32601).
    let again = reopen(&target, opts, &SessionPolicy::default(), 1).await.unwrap();
    assert!(again.is_stateless(), "{:?}", again.server());
    assert_eq!(again.server().protocol_version, STATELESS);
    again.close().await;
}

#[tokio::test]
async fn answers_an_input_required_result_and_sends_the_request_again() {
    let server = ScriptServer::start(SERVER);
    let requests = ServerRequests {
        elicitation: Some(Answer::Canned(json!({"action": "accept", "content": {"name": "Ada"}}))),
        ..ServerRequests::default()
    };
    let s = Session::connect(&server.url.parse().unwrap(), stateless_opts(requests)).await.unwrap();
    let r = s.call_tool("greet_user", json!({})).await.unwrap_or_else(|e| panic!("{e}\n{}", server.log_tail()));
    assert_eq!(r["content"][0]["text"], "hello Ada", "{r}");
    assert_eq!(r["resultType"], "complete");
    let asked = s.dispatcher().server_requests()["elicitation/create"];
    assert_eq!((asked.received, asked.answered), (1, 1), "counted as a server request");

    // Without the capability declared the server refuses before asking (-32021).
    let plain =
        Session::connect(&server.url.parse().unwrap(), stateless_opts(ServerRequests::default())).await.unwrap();
    assert_eq!(rpc_error(plain.call_tool("greet_user", json!({})).await), (-32021, Some(400)));
}

#[tokio::test]
async fn falls_back_to_initialize_against_a_server_that_predates_the_revision() {
    let server = ScriptServer::start_with(SERVER, &["--legacy-only"]);
    let s = Session::connect(&server.url.parse().unwrap(), stateless_opts(ServerRequests::default()))
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", server.log_tail()));
    assert!(!s.is_stateless());
    assert_eq!(s.server().protocol_version, "2025-11-25");
    assert_eq!(s.server().name, "py-stateless-server");
    let echo = s.call_tool("echo", json!({"text": "old"})).await.unwrap();
    assert_eq!(echo["content"][0]["text"], "old");
    assert_eq!(s.ping().await.unwrap(), json!({}), "the handshake era has ping");
    s.close().await;

    // Over stdio too: server-everything (TypeScript SDK 1.x) answers discover with an error.
    let target: Target = format!("stdio:{}", interop::stdio_command()).parse().unwrap();
    let s = Session::connect(&target, stateless_opts(ServerRequests::default())).await.unwrap();
    assert_eq!((s.is_stateless(), s.server().protocol_version.as_str()), (false, "2025-11-25"));
    assert_eq!(s.ping().await.unwrap(), json!({}));
    s.close().await;
}

#[tokio::test]
async fn speaks_the_stateless_revision_over_stdio() {
    let target: Target = format!("stdio:{}", interop::py_stdio_command(SERVER, &["--stdio"])).parse().unwrap();
    let s = Session::connect(&target, stateless_opts(ServerRequests::default())).await.unwrap();
    exercise(&s).await;
    assert_eq!(rpc_error(s.ping().await), (-32601, None));
    s.close().await;
}

/// A line server on 127.0.0.1 that answers `server/discover` with `UNSUPPORTED_VERSION`
/// listing `supported`, and `initialize` (then anything) as a 2025-11-25 server would.
async fn unsupported_version_server(supported: Value) -> Target {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let (sock, _) = listener.accept().await.unwrap();
        let (r, mut w) = sock.into_split();
        let mut lines = BufReader::new(r).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            let msg: Value = serde_json::from_str(&line).unwrap();
            let Some(id) = msg.get("id") else { continue };
            let reply = match msg["method"].as_str() {
                Some("server/discover") => json!({"jsonrpc": "2.0", "id": id, "error": {"code": -32022,
                    "message": "Unsupported protocol version",
                    "data": {"supported": supported, "requested": msg["params"]["_meta"]["io.modelcontextprotocol/protocolVersion"]}}}),
                Some("initialize") => json!({"jsonrpc": "2.0", "id": id, "result": {"protocolVersion": "2025-11-25",
                    "capabilities": {}, "serverInfo": {"name": "old", "version": "1"}}}),
                _ => json!({"jsonrpc": "2.0", "id": id, "result": {"echoed": msg["params"]}}),
            };
            let mut out = reply.to_string().into_bytes();
            out.push(b'\n');
            if w.write_all(&out).await.is_err() {
                break;
            }
        }
    });
    format!("tcp://127.0.0.1:{port}").parse().unwrap()
}

#[tokio::test]
async fn an_unsupported_version_error_falls_back_or_names_what_the_server_speaks() {
    let handshake = unsupported_version_server(json!(["2025-11-25"])).await;
    let s = Session::connect(&handshake, stateless_opts(ServerRequests::default())).await.unwrap();
    assert_eq!((s.is_stateless(), s.server().name.as_str()), (false, "old"));
    let r = s.request("tools/list", None).await.unwrap();
    assert_eq!(r["echoed"], Value::Null, "no envelope after the fallback: {r}");

    let none = unsupported_version_server(json!(["2099-01-01"])).await;
    match Session::connect(&none, stateless_opts(ServerRequests::default())).await {
        Err(e @ ClientError::Protocol { .. }) => {
            let m = e.to_string();
            assert!(m.contains("server/discover") && m.contains("2099-01-01") && m.contains(STATELESS), "{m}");
        }
        Err(e) => panic!("expected a protocol error naming the revisions, got {e}"),
        Ok(s) => panic!("expected no session, got one speaking {}", s.server().protocol_version),
    }
}

#[test]
fn a_script_asks_for_the_stateless_revision_with_a_connect_option() {
    let server = ScriptServer::start(SERVER);
    let old = ScriptServer::start_with(SERVER, &["--legacy-only"]);
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("stateless.rhai");
    std::fs::write(
        &script,
        r#"
        let s = connect(param("new"), #{protocol_version: "2026-07-28",
            on_elicitation: |p| #{action: "accept", content: #{name: "Ada"}}});
        check(s.server.protocol_version == "2026-07-28", `negotiated ${s.server}`);
        check(s.tools_list().ok, "tools/list");
        let r = s.tool("echo", #{text: "hi"});
        check(r.ok && r.result.content[0].text == "hi", `echo: ${r}`);
        let g = s.tool("greet_user", #{});
        check(g.ok && g.result.content[0].text == "hello Ada", `input required: ${g}`);
        let p = s.ping();
        check(!p.ok && p.error.code == -32601, `ping: ${p}`);
        let o = connect(param("old"), #{protocol_version: "2026-07-28"});
        check(o.server.protocol_version == "2025-11-25", `fallback: ${o.server}`);
        check(o.ping().ok, "ping after the fallback");
        let bad = "";
        try { connect(param("new"), #{protocol_version: "2099-01-01"}); } catch (e) { bad = `${e}`; }
        check(bad.contains("2026-07-28, 2025-11-25"), `bad version: ${bad}`);
        "#,
    )
    .unwrap();
    let mut cmd = Command::new(BIN);
    cmd.arg("run")
        .arg(&script)
        .args(["--target", &server.url, "--set", &format!("new={}", server.url), "--set", &format!("old={}", old.url)])
        .args(["--request-timeout", "10s", "--no-history", "--out"])
        .arg(dir.path().join("out"));
    let out = interop::run_bounded(cmd, Duration::from_secs(60)).unwrap();
    assert!(
        out.status.is_some_and(|s| s.success()),
        "{}\nstdout:\n{}\nstderr:\n{}\nserver:\n{}",
        interop::describe_status(out.status),
        out.stdout,
        out.stderr,
        server.log_tail()
    );
    assert!(out.stdout.contains("8 of 8 checks passed"), "{}", out.stdout);
}

#[test]
fn call_takes_the_stateless_revision_and_still_refuses_unknown_ones() {
    let server = ScriptServer::start(SERVER);
    let call = |args: &[&str]| {
        let mut cmd = Command::new(BIN);
        cmd.arg("call").arg(&server.url).args(args);
        interop::run_bounded(cmd, Duration::from_secs(30)).unwrap()
    };
    let out = call(&["tools/call", r#"{"name":"echo","arguments":{"text":"cli"}}"#, "--protocol-version", STATELESS]);
    assert!(out.status.is_some_and(|s| s.success()), "{}", out.stderr);
    assert!(out.stdout.contains("\"cli\""), "{}", out.stdout);
    let out = call(&["ping", "--protocol-version", STATELESS, "--show-server"]);
    assert!(out.stderr.contains("(protocol 2026-07-28)") && out.stderr.contains("-32601"), "{}", out.stderr);
    let out = call(&["ping", "--protocol-version", "2099-01-01"]);
    assert_eq!(out.status.and_then(|s| s.code()), Some(2), "{}", out.stderr);
    assert!(out.stderr.contains("2026-07-28, 2025-11-25"), "{}", out.stderr);
}

#[test]
fn an_unknown_protocol_version_in_connect_is_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("bad.rhai");
    std::fs::write(&script, "connect(\"builtin\", #{protocol_version: \"2099-01-01\"});\n").unwrap();
    let mut cmd = Command::new(BIN);
    cmd.arg("run").arg(&script).args(["--no-history", "--out"]).arg(dir.path().join("out"));
    let out = interop::run_bounded(cmd, Duration::from_secs(30)).unwrap();
    assert_eq!(out.status.and_then(|s| s.code()), Some(2), "{}\n{}", out.stdout, out.stderr);
    assert!(out.stderr.contains("protocol_version \"2099-01-01\" is not one mcpscript speaks"), "{}", out.stderr);
}
