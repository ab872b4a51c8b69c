//! The load engine's lean Streamable HTTP path (`http://` targets): against the built-in
//! server (JSON and event-stream replies, session ids, DELETE at close, a server that
//! forgot the session after a restart), against a tiny server written here (a reply
//! preceded by many events and a server `ping` on its stream, error statuses), and
//! against the official TypeScript and Python SDK servers (after `bash
//! tests/interop/setup.sh`).

mod common;

use common::interop::{Everything, PyServer};
use common::raw_http;
use mcpscript::load::exec::{run_local, Control};
use mcpscript::load::pool::{Connector, Template};
use mcpscript::load::recorder::Outcome;
use mcpscript::load::{Model, PhasePlan, PhaseResult, PhaseStatus, RequestTemplate, Stage};
use mcpscript::server::{self, ServerConfig};
use serde_json::json;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::AsyncWriteExt;

const BIN: &str = env!("CARGO_BIN_EXE_mcpscript");

/// These tests load the machine: one at a time.
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

fn closed(target: &str, sessions: u64, iterations: u64, mix: Vec<RequestTemplate>) -> PhasePlan {
    let model = Model::Closed { sessions, duration: None, iterations: Some(iterations), think: None };
    let mut p = PhasePlan { seed: 7, ..PhasePlan::new("http", target, model) };
    p.mix = mix;
    p.request_timeout = Duration::from_secs(5);
    p.validate().unwrap();
    p
}

fn ping() -> Vec<RequestTemplate> {
    vec![RequestTemplate::new("ping", None, 1)]
}

fn echo_mix() -> Vec<RequestTemplate> {
    vec![
        RequestTemplate::new("tools/call", Some(json!({"name": "echo", "arguments": {"message": "hi"}})), 3),
        RequestTemplate::new("tools/list", None, 1),
        RequestTemplate::new("ping", None, 1),
    ]
}

fn assert_all_ok(r: &PhaseResult, sent: u64) {
    let c = &r.counts;
    assert_eq!(c.sent, c.ok + c.error_total() + c.timeouts + c.cancelled, "accounting identity: {c:?}");
    assert_eq!((c.sent, c.ok), (sent, sent), "{c:?} {:?}", r.notes);
    assert_eq!(r.status, PhaseStatus::Completed);
}

async fn builtin_http() -> server::RunningServer {
    server::start(ServerConfig::listening(&["http://127.0.0.1:0/mcp"]).unwrap()).await.unwrap()
}

#[test]
fn closed_phase_over_lean_http_with_json_and_event_stream_replies_and_delete_at_close() {
    let _serial = serial();
    rt().block_on(async {
        let s = builtin_http().await;
        let url = s.url("http").unwrap().to_string();
        let stats = &s.state.stats;
        let r = run_local(&closed(&url, 10, 400, echo_mix()), Control::default()).await;
        assert_all_ok(&r, 400);
        assert_eq!((r.connect.attempted, r.connect.ok), (10, 10));
        assert_eq!(stats.sessions_initialized.load(Ordering::Relaxed), 10);
        // Every session was DELETEd when the phase closed it.
        assert_eq!(stats.connections_open.load(Ordering::Relaxed), 0);

        // `?sse=1`: every reply is an event stream (with a priming event first).
        let sse = format!("{url}?sse=1");
        let r = run_local(&closed(&sse, 4, 200, echo_mix()), Control::default()).await;
        assert_all_ok(&r, 200);
        assert_eq!(stats.sessions_initialized.load(Ordering::Relaxed), 14);
        assert_eq!(stats.connections_open.load(Ordering::Relaxed), 0);
        s.shutdown().await;
    });
}

#[test]
fn open_phase_over_lean_http_balances() {
    let _serial = serial();
    rt().block_on(async {
        let s = builtin_http().await;
        let url = s.url("http").unwrap().to_string();
        let model = Model::Open {
            sessions: 20,
            start_rate: 200.0,
            stages: vec![Stage { rate: 200.0, duration: Duration::from_secs(1) }],
            max_inflight: 1000,
            arrival_offset: 0.0,
        };
        let mut p = PhasePlan { seed: 3, ..PhasePlan::new("open", &url, model) };
        p.mix = echo_mix();
        p.validate().unwrap();
        let r = run_local(&p, Control::default()).await;
        let c = &r.counts;
        assert_eq!(c.sent, c.ok + c.error_total() + c.timeouts + c.cancelled, "{c:?}");
        assert!(c.sent >= 150 && c.ok == c.sent, "{c:?} {:?}", r.notes);
        assert_eq!(s.state.stats.connections_open.load(Ordering::Relaxed), 0);
        s.shutdown().await;
    });
}

/// `mcpscript serve` as a child process on `port` (killed by PID when dropped).
struct Serve(Child);

impl Serve {
    fn start(port: u16) -> Serve {
        let child = Command::new(BIN)
            .args(["serve", "--listen", &format!("http://127.0.0.1:{port}/mcp")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let up = common::wait_until(Duration::from_secs(20), "the server to listen", || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        assert!(up, "mcpscript serve did not start on port {port}");
        Serve(child)
    }

    fn stop(mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_session_the_server_forgot_is_initialized_again_on_a_fresh_connection() {
    let _serial = serial();
    rt().block_on(async {
        let port = common::free_port();
        let url = format!("http://127.0.0.1:{port}/mcp");
        let first = Serve::start(port);
        let plan = closed(&url, 1, 1, ping());
        let connector = Connector::new(&plan).await.unwrap();
        let mut c = connector.connect(0).await.unwrap();
        let t = Template::new(&plan.mix[0]);
        assert_eq!(c.call(&t, Duration::from_secs(5)).await, Outcome::Ok);
        // A restarted server has closed the keep-alive connection and forgotten the session:
        // the ping goes out on a new connection, gets 404, and is sent again in a new session.
        first.stop();
        let second = Serve::start(port);
        assert_eq!(c.call(&t, Duration::from_secs(5)).await, Outcome::Ok);
        assert!(!c.is_broken());
        assert_eq!(c.call(&t, Duration::from_secs(5)).await, Outcome::Ok);
        c.close().await;
        second.stop();
    });
}

/// What the tiny server below saw: request line, headers (lowercased names) and body.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    headers: Vec<(String, String)>,
    body: String,
}

impl Seen {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

/// Events sent before the reply to a `ping`, and the size of each.
const EVENTS_BEFORE: usize = 300;
const EVENT_SIZE: usize = 4096;

/// A Streamable HTTP server of a few lines: `initialize` gets a JSON reply and session id
/// `s-1`; `ping` gets a chunked event stream of [`EVENTS_BEFORE`] progress notifications,
/// a server `ping` request, then the reply; `tools/list` gets 503; `tools/call` a 400
/// whose body is a JSON-RPC -32602 error; notifications and responses 202; DELETE 204.
async fn tiny_server(seen: Arc<Mutex<Vec<Seen>>>) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let seen = seen.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                loop {
                    let Some(req) = raw_http::read_request(&mut sock, &mut buf).await else { return };
                    let (method, headers) = (req.method, req.headers);
                    let body = String::from_utf8_lossy(&req.body).to_string();
                    seen.lock().unwrap().push(Seen { method: method.clone(), headers, body: body.clone() });
                    let msg: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
                    let id = msg["id"].clone();
                    let reply = |status: &str, extra: &str, body: &str| {
                        format!("HTTP/1.1 {status}\r\n{extra}Content-Length: {}\r\n\r\n{body}", body.len())
                    };
                    let out = if method == "DELETE" {
                        reply("204 No Content", "", "")
                    } else {
                        match msg["method"].as_str() {
                            Some("initialize") => {
                                let result = json!({"jsonrpc": "2.0", "id": id, "result": {
                                    "protocolVersion": "2025-11-25", "capabilities": {},
                                    "serverInfo": {"name": "tiny", "version": "1"}}});
                                reply(
                                    "200 OK",
                                    "Content-Type: application/json\r\nMcp-Session-Id: s-1\r\n",
                                    &result.to_string(),
                                )
                            }
                            Some("ping") if !id.is_null() => {
                                let start = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n";
                                if sock.write_all(start.as_bytes()).await.is_err() {
                                    return;
                                }
                                let pad = "x".repeat(EVENT_SIZE);
                                let mut events: Vec<String> = (0..EVENTS_BEFORE)
                                    .map(|i| {
                                        let n = json!({"jsonrpc": "2.0", "method": "notifications/progress",
                                            "params": {"progressToken": i, "progress": i, "message": pad}});
                                        format!("event: message\ndata: {n}\n\n")
                                    })
                                    .collect();
                                events.push(format!(
                                    "data: {}\n\n",
                                    json!({"jsonrpc": "2.0", "id": "srv-1", "method": "ping"})
                                ));
                                events.push(format!("data: {}\n\n", json!({"jsonrpc": "2.0", "id": id, "result": {}})));
                                for e in events {
                                    let chunk = format!("{:x}\r\n{e}\r\n", e.len());
                                    if sock.write_all(chunk.as_bytes()).await.is_err() {
                                        return;
                                    }
                                }
                                "0\r\n\r\n".to_string()
                            }
                            Some("tools/list") => reply("503 Service Unavailable", "Retry-After: 1\r\n", "busy"),
                            Some("tools/call") => {
                                let e = json!({"jsonrpc": "2.0", "id": id,
                                    "error": {"code": -32602, "message": "Invalid params"}});
                                reply("400 Bad Request", "Content-Type: application/json\r\n", &e.to_string())
                            }
                            _ => reply("202 Accepted", "", ""),
                        }
                    };
                    if sock.write_all(out.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    port
}

#[test]
fn event_streams_server_pings_session_headers_and_error_statuses() {
    let _serial = serial();
    rt().block_on(async {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let port = tiny_server(seen.clone()).await;
        let url = format!("http://127.0.0.1:{port}/mcp");
        // Each ping reply comes after 300 events of 4 KB (1.2 MB per reply). The run's extra
        // header and bearer token go on every request, the session's DELETE included.
        let mut plan = closed(&url, 2, 20, ping());
        plan.client.headers = vec![("X-Trace".into(), "t-1".into())];
        plan.client.auth_token = Some("tok".into());
        let r = run_local(&plan, Control::default()).await;
        assert_all_ok(&r, 20);
        let answered = || seen.lock().unwrap().iter().filter(|s| s.body.contains("\"srv-1\"")).count();
        common::wait_until_async(Duration::from_secs(10), "the server pings answered", || answered() == 20).await;
        {
            let seen = seen.lock().unwrap();
            let answers: Vec<&Seen> = seen.iter().filter(|s| s.body.contains("\"srv-1\"")).collect();
            assert_eq!(answers.len(), 20);
            assert!(answers[0].body.contains("\"result\":{}"), "{}", answers[0].body);
            for s in seen.iter() {
                assert_eq!(s.header("x-trace"), Some("t-1"), "{s:?}");
                assert_eq!(s.header("authorization"), Some("Bearer tok"), "{s:?}");
                if s.method == "POST" {
                    assert_eq!(s.header("accept"), Some("application/json, text/event-stream"), "{s:?}");
                }
                if s.body.contains("\"initialize\"") {
                    assert_eq!(s.header("mcp-session-id"), None);
                } else {
                    assert_eq!(s.header("mcp-session-id"), Some("s-1"), "{s:?}");
                    assert_eq!(s.header("mcp-protocol-version"), Some("2025-11-25"), "{s:?}");
                }
            }
            assert_eq!(seen.iter().filter(|s| s.method == "DELETE").count(), 2, "one DELETE per session");
        }
        let mix = vec![
            RequestTemplate::new("tools/list", None, 1),
            RequestTemplate::new("tools/call", Some(json!({"name": "x"})), 1),
        ];
        let r = run_local(&closed(&url, 2, 40, mix), Control::default()).await;
        let c = &r.counts;
        assert_eq!((c.sent, c.ok), (40, 0), "{c:?}");
        assert_eq!(
            c.errors.get("http_503").copied().unwrap_or(0) + c.errors.get("rpc_-32602").copied().unwrap_or(0),
            40
        );
        assert!(c.errors.contains_key("http_503") && c.errors.contains_key("rpc_-32602"), "{c:?}");
    });
}

#[test]
fn lean_http_against_the_official_typescript_and_python_sdk_servers() {
    let _serial = serial();
    let ts = Everything::start_http();
    let py = PyServer::start();
    rt().block_on(async {
        for (name, url, mix) in [
            ("typescript", ts.url.clone(), echo_mix()),
            (
                "python",
                py.url.clone(),
                vec![
                    RequestTemplate::new(
                        "tools/call",
                        Some(json!({"name": "echo", "arguments": {"message": "hi"}})),
                        1,
                    ),
                    RequestTemplate::new("ping", None, 1),
                ],
            ),
        ] {
            let r = run_local(&closed(&url, 4, 100, mix), Control::default()).await;
            let c = &r.counts;
            assert_eq!((c.sent, c.ok), (100, 100), "{name}: {c:?} {:?} {:?}", r.notes, r.connect.first_error);
            assert_eq!(r.connect.ok, 4, "{name}");
        }
    });
}
