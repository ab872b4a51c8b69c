//! Bad input on purpose: `session.send_raw(text)` and `connect(target, #{initialize: false})`
//! run as scripts against the built-in server over tcp, Streamable HTTP, legacy SSE, ws and
//! stdio; and HTTP error statuses whose body is a JSON-RPC error, from a tiny local
//! responder, both through the client API and through a script.

mod common;

use mcpscript::client::{ClientError, ClientOptions, ErrorKind, Session, Target};
use mcpscript::script::results::{ScenarioResult, Status};
use mcpscript::script::{runner, RunOptions, Script, ScriptEnv};
use mcpscript::server::{self, RunningServer, ServerConfig};
use serde_json::json;
use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;

static NEXT: AtomicUsize = AtomicUsize::new(0);

struct Harness {
    rt: tokio::runtime::Runtime,
    server: Option<RunningServer>,
    dir: PathBuf,
}

impl Harness {
    fn new() -> Harness {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let config =
            ServerConfig::listening(&["tcp://127.0.0.1:0", "http://127.0.0.1:0/mcp", "ws://127.0.0.1:0/ws"]).unwrap();
        let server = rt.block_on(server::start(config)).expect("the built-in server starts");
        let dir = std::env::temp_dir().join(format!(
            "mcpscript-raw-send-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        Harness { rt, server: Some(server), dir }
    }

    fn url(&self, scheme: &str) -> String {
        let server = self.server.as_ref().unwrap();
        match scheme {
            "sse+http" => {
                let http = server.url("http").unwrap();
                let authority = http.split_once("://").unwrap().1.split('/').next().unwrap();
                format!("sse+http://{authority}/sse")
            }
            "stdio" => format!("stdio:{} serve --stdio", env!("CARGO_BIN_EXE_mcpscript")),
            s => server.url(s).unwrap_or_else(|| panic!("no {s} listener")).to_string(),
        }
    }

    /// Runs `src` with `target` as the run's target (`connect()`, and "builtin").
    fn run(&self, target: &str, src: &str) -> ScenarioResult {
        let path = self.dir.join(format!("s{}.rhai", NEXT.fetch_add(1, Ordering::Relaxed)));
        std::fs::write(&path, src).unwrap();
        let script = Script::load(&path, &ScriptEnv::default()).unwrap_or_else(|e| panic!("does not compile:\n{e}"));
        let target: Target = target.parse().unwrap();
        let client = ClientOptions { request_timeout: Duration::from_secs(5), ..ClientOptions::default() };
        let opts = RunOptions { seed: 1, client: Arc::new(client), ..RunOptions::new(target) };
        runner::spawn(Arc::new(script), opts, self.rt.handle().clone()).unwrap().join().unwrap()
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        if let Some(s) = self.server.take() {
            self.rt.block_on(s.shutdown());
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Fails the test with every failed check (and the script's error, if it raised one).
fn all_passed(what: &str, r: &ScenarioResult) {
    if let Some(e) = &r.error {
        panic!("{what}: script error: {e:?}");
    }
    let failed: Vec<String> = r
        .root
        .checks
        .iter()
        .filter(|c| c.failed > 0)
        .map(|c| format!("{}: {:?}", c.name, c.failures.iter().map(|f| f.detail.clone()).collect::<Vec<_>>()))
        .collect();
    assert!(failed.is_empty(), "{what}: failed checks:\n{}", failed.join("\n"));
    assert!(r.root.assertions.passed > 0, "{what}: no checks ran");
    assert_eq!(r.status(), Status::Passed, "{what}");
}

/// The same scenario on every transport. `http` tells what differs over Streamable HTTP:
/// a -32700 comes with HTTP 400, the server answers a notification with 202 at once, and
/// without a session id the server refuses requests with a 400 of its own (-32000).
fn raw_scenario(http: bool, sse: bool) -> String {
    format!(
        r#"
        const HTTP = {http};
        const SSE = {sse};
        let s = connect();

        let r = s.send_raw("{{not json");
        check(!r.ok && r.error.kind == "rpc" && r.error.code == -32700, "not JSON is -32700", `${{r}}`);
        check(r.method == "raw message" && r.result == () && r.latency_us >= 0, "the map of a raw message", `${{r}}`);
        let status = if HTTP || SSE {{ 400 }} else {{ () }};
        check(r.error.http_status == status, "-32700 comes with HTTP 400 over HTTP transports", `${{r.error}}`);

        let r = s.send_raw(`{{"jsonrpc":"2.0","id":5}}`);
        check(!r.ok && r.error.kind == "rpc" && r.error.code == -32600, "no method is -32600 Invalid Request", `${{r}}`);
        check(r.error.http_status == (), "a reply with the message's id is an ordinary reply", `${{r.error}}`);

        let r = s.send_raw(`{{"jsonrpc":"2.0","id":9,"method":"ping"}}`);
        check(r.ok && r.error == () && r.method == "ping" && r.result.len() == 0, "a valid raw ping", `${{r}}`);

        let r = s.send_raw(`{{"jsonrpc":"2.0","id":"str-7","method":"no/such/method"}}`);
        check(!r.ok && r.error.kind == "rpc" && r.error.code == -32601, "an unknown method is -32601", `${{r}}`);

        let r = s.send_raw(`{{"jsonrpc":"2.0","id":12,"method":"tools/call","params":{{"name":"echo","arguments":{{}}}}}}`);
        check(!r.ok && r.error.code == -32602, "bad arguments are -32602", `${{r}}`);

        // A notification gets no reply: a timeout (at once over Streamable HTTP, whose 202 says so).
        let r = s.send_raw(`{{"jsonrpc":"2.0","method":"notifications/progress","params":{{"progressToken":1,"progress":1}}}}`, "300ms");
        check(!r.ok && r.error.kind == "timeout", "no reply is a timeout", `${{r}}`);
        if HTTP {{
            check(r.latency_ms < 250.0 && r.error.message.contains("HTTP 202"), "Streamable HTTP knows at once", `${{r}}`);
        }} else {{
            check(r.latency_ms >= 250.0, "the others wait for the deadline", `${{r}}`);
        }}

        check(s.ping().ok, "the session still answers ping");
        check(s.tools_list().ok, "and tools/list");
        s.close();

        // Before initialize.
        let u = connect("builtin", #{{initialize: false, reconnect: false}});
        check(u.server.len() == 0, "no server info without initialize", `${{u.server}}`);
        let r = u.request("tools/list");
        check(!r.ok && r.error.kind == "rpc", "tools/list before initialize is an error", `${{r}}`);
        if HTTP {{
            check(r.error.code == -32000 && r.error.http_status == 400, "no session id: HTTP 400", `${{r.error}}`);
        }} else {{
            check(r.error.code == -32600 && r.error.message.contains("not initialized"), "-32600 not initialized", `${{r.error}}`);
        }}
        let r = u.send_raw("{{not json");
        check(!r.ok && r.error.code == -32700, "not JSON before initialize", `${{r}}`);
        // The handshake by hand.
        let init = `{{"jsonrpc":"2.0","id":100,"method":"initialize","params":{{"protocolVersion":"2025-06-18","capabilities":{{}},"clientInfo":{{"name":"raw","version":"1"}}}}}}`;
        let r = u.send_raw(init);
        check(r.ok && r.method == "initialize" && r.result.protocolVersion == "2025-06-18", "initialize by hand", `${{r}}`);
        u.notify("notifications/initialized");
        let r = u.tools_list();
        check(r.ok, "tools/list after initialize by hand", `${{r}}`);
        u.close();
        "#
    )
}

#[test]
fn send_raw_and_uninitialized_sessions_over_every_transport() {
    let h = Harness::new();
    for scheme in ["tcp", "http", "sse+http", "ws", "stdio"] {
        let r = h.run(&h.url(scheme), &raw_scenario(scheme == "http", scheme == "sse+http"));
        all_passed(scheme, &r);
    }
}

#[test]
fn send_raw_on_a_closed_session_and_with_newlines() {
    let h = Harness::new();
    let r = h.run(
        &h.url("tcp"),
        r#"
        let s = connect();
        // A newline inside the text is sent as is: the server sees two lines and answers both;
        // the reply with the first id answers the raw message, the other matches nothing.
        let r = s.send_raw("{\"jsonrpc\":\"2.0\",\"id\":21,\"method\":\"ping\"}\n{\"jsonrpc\":\"2.0\",\"id\":\"second\",\"method\":\"no/such\"}");
        check(r.ok && r.method == "raw message", "two lines, the first answered", `${r}`);
        check(s.ping().ok, "the stray reply does not disturb the session");
        check(s.request("no/such").error.code == -32601, "later requests keep their own replies");
        s.close();
        let closed = "no error";
        try { s.send_raw("{}"); } catch (e) { closed = `${e}`; }
        check(closed.contains("closed"), "send_raw on a closed session is a script error", closed);
        "#,
    );
    all_passed("tcp", &r);
}

/// A canned HTTP reply: status line, content type, body.
type Canned = (&'static str, &'static str, &'static str);

/// Answers each request (on any connection) with the next canned reply; returns the URL.
async fn responder(replies: Vec<Canned>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let replies = Arc::new(Mutex::new(VecDeque::from(replies)));
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let replies = replies.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                loop {
                    if common::raw_http::read_request(&mut sock, &mut buf).await.is_none() {
                        return;
                    }
                    let Some((status, ctype, body)) = replies.lock().unwrap().pop_front() else { return };
                    let reply = format!(
                        "HTTP/1.1 {status}\r\ncontent-type: {ctype}\r\ncontent-length: {}\r\n\r\n{body}",
                        body.len()
                    );
                    if sock.write_all(reply.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    format!("http://127.0.0.1:{port}/mcp")
}

const INVALID_PARAMS_BODY: &str =
    r#"{"jsonrpc":"2.0","id":null,"error":{"code":-32602,"message":"Invalid params","data":{"field":"name"}}}"#;
const PARSE_ERROR_EVENT: &str =
    "event: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":null,\"error\":{\"code\":-32700,\"message\":\"Parse error\"}}\n\n";

#[tokio::test]
async fn http_error_statuses_with_a_json_rpc_body_are_that_error() {
    let url = responder(vec![
        ("400 Bad Request", "application/json", INVALID_PARAMS_BODY),
        ("503 Service Unavailable", "text/plain", "overloaded, come back later"),
        ("400 Bad Request", "text/event-stream", PARSE_ERROR_EVENT),
        (
            "401 Unauthorized",
            "application/json",
            r#"{"jsonrpc":"2.0","id":null,"error":{"code":-32001,"message":"no"}}"#,
        ),
        ("400 Bad Request", "application/json", r#"{"error":"not JSON-RPC"}"#),
    ])
    .await;
    let target: Target = url.parse().unwrap();
    let s = Session::connect_uninitialized(&target, Arc::new(ClientOptions::default())).await.unwrap();
    assert!(!s.is_initialized());

    let e = s.call_tool("echo", json!({})).await.unwrap_err();
    match &e {
        ClientError::HttpRpc { status: 400, error, .. } => {
            assert_eq!(error.code, -32602);
            assert_eq!(error.message, "Invalid params");
            assert_eq!(error.data, Some(json!({"field": "name"})));
        }
        other => panic!("expected HTTP 400 with -32602, got {other:?}"),
    }
    // The load engine counts errors by `kind()`: this one is rpc_-32602.
    assert_eq!(e.kind(), ErrorKind::Rpc(-32602));
    assert_eq!(e.kind().to_string(), "rpc_-32602");
    assert_eq!((e.rpc_error().map(|e| e.code), e.http_status()), (Some(-32602), Some(400)));

    let e = s.ping().await.unwrap_err();
    assert!(matches!(&e, ClientError::Http { status: 503, body, .. } if body.contains("overloaded")), "{e:?}");
    assert_eq!(e.kind().to_string(), "http_503");

    // send_raw too, and an error body in an event stream.
    let e = s.send_raw(b"{not json".to_vec(), Duration::from_secs(2)).await.unwrap_err();
    assert!(matches!(&e, ClientError::HttpRpc { status: 400, error, .. } if error.code == -32700), "{e:?}");

    // A 401 is the answer whatever its body; a 400 without a JSON-RPC error stays HTTP.
    let e = s.ping().await.unwrap_err();
    assert!(matches!(&e, ClientError::Unauthorized { status: 401, .. }), "{e:?}");
    let e = s.ping().await.unwrap_err();
    assert!(matches!(&e, ClientError::Http { status: 400, body, .. } if body.contains("not JSON-RPC")), "{e:?}");
    assert_eq!(e.kind().to_string(), "http_400");
    s.close().await;
}

#[test]
fn scripts_see_the_json_rpc_error_of_an_http_error_status() {
    let h = Harness::new();
    let url = h.rt.block_on(responder(vec![
        ("400 Bad Request", "application/json", INVALID_PARAMS_BODY),
        ("503 Service Unavailable", "text/plain", "overloaded, come back later"),
        ("400 Bad Request", "application/json", INVALID_PARAMS_BODY),
    ]));
    let r = h.run(
        &url,
        r#"
        let s = connect("builtin", #{initialize: false, reconnect: false});
        let r = s.tool("echo", #{});
        check(!r.ok && r.error.kind == "rpc" && r.error.code == -32602, "kind rpc with the body's code", `${r}`);
        check(r.error.http_status == 400 && r.error.message == "Invalid params" && r.error.data.field == "name",
              "http_status, message and data kept", `${r.error}`);
        let r = s.ping();
        check(!r.ok && r.error.kind == "http" && r.error.http_status == 503 && r.error.code == (),
              "a plain-text 503 stays kind http", `${r.error}`);
        check(r.error.message.contains("overloaded"), "its message quotes the body", `${r.error}`);
        let r = s.send_raw(`{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{}}`);
        check(!r.ok && r.error.kind == "rpc" && r.error.code == -32602 && r.error.http_status == 400, "send_raw too", `${r}`);
        s.close();
        "#,
    );
    all_passed("responder", &r);
}
