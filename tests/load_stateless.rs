//! Load phases asked for the stateless revision (`protocol_version` 2026-07-28): closed and
//! open phases over the lean `tcp://` and `http://` connections against the built-in
//! server (no handshake anywhere, 0 errors; `ping` is a removed method, counted as
//! `rpc_-32601`, never `http_404`), against the official Python SDK 2.3.0 server (it checks
//! every envelope and routing header) and the same server playing one that predates the
//! revision (the phase falls back to the handshake), the wire itself as a tiny server here
//! sees it, a line server with no revision in common, and worker processes through
//! `mcpscript run`, where a bad `protocol_version` is bad input (exit 2).

mod common;

use common::interop::{self, ScriptServer};
use common::raw_http;
use mcpscript::load::exec::{run_local, Control};
use mcpscript::load::{Model, PhasePlan, PhaseResult, PhaseStatus, RequestTemplate, Stage};
use mcpscript::protocol::stateless::meta;
use mcpscript::server::{self, ServerConfig};
use serde_json::{json, Value};
use std::process::Command;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

const BIN: &str = env!("CARGO_BIN_EXE_mcpscript");
const STATELESS: &str = "2026-07-28";
const PY_SERVER: &str = "py_stateless_server.py";

/// These tests load the machine: one at a time.
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

/// A phase of `model` against `target` asking for the stateless revision.
fn stateless(target: &str, model: Model, mix: Vec<RequestTemplate>) -> PhasePlan {
    let mut p = PhasePlan { seed: 11, ..PhasePlan::new("stateless", target, model) };
    p.mix = mix;
    p.client.protocol_version = STATELESS.into();
    p.validate().unwrap();
    p
}

fn closed(target: &str, sessions: u64, iterations: u64, mix: Vec<RequestTemplate>) -> PhasePlan {
    stateless(target, Model::Closed { sessions, duration: None, iterations: Some(iterations), think: None }, mix)
}

fn open(target: &str, sessions: u64, rate: f64, mix: Vec<RequestTemplate>) -> PhasePlan {
    let stages = vec![Stage { rate, duration: Duration::from_secs(1) }];
    let model = Model::Open { sessions, start_rate: rate, stages, max_inflight: 1000, arrival_offset: 0.0 };
    stateless(target, model, mix)
}

/// `tools/call echo` with the argument the server's echo takes (`message` for the
/// built-in server, `text` for the Python one).
fn echo(arg: &str) -> Vec<RequestTemplate> {
    vec![RequestTemplate::new("tools/call", Some(json!({"name": "echo", "arguments": {arg: "hi"}})), 1)]
}

fn echo_and_ping(arg: &str) -> Vec<RequestTemplate> {
    let mut mix = echo(arg);
    mix.push(RequestTemplate::new("ping", None, 1));
    mix
}

fn assert_identity(r: &PhaseResult) {
    let c = &r.counts;
    assert_eq!(c.sent, c.ok + c.error_total() + c.timeouts + c.cancelled, "accounting identity: {c:?}");
}

fn assert_all_ok(r: &PhaseResult, sent: u64) {
    assert_identity(r);
    let c = &r.counts;
    assert_eq!((c.sent, c.ok), (sent, sent), "{c:?} {:?}", r.notes);
    assert_eq!(r.status, PhaseStatus::Completed, "{:?}", r.notes);
}

/// The open phase at `rate` for 1 s: every request answered well.
fn assert_open_ok(r: &PhaseResult, rate: f64) {
    assert_identity(r);
    let c = &r.counts;
    assert!(c.sent as f64 >= rate * 0.75 && c.ok == c.sent, "{c:?} {:?}", r.notes);
}

/// The `ping`s of an echo-and-ping mix were all refused as a removed method.
fn assert_pings_refused(r: &PhaseResult) {
    assert_identity(r);
    let c = &r.counts;
    let refused = c.errors.get("rpc_-32601").copied().unwrap_or(0);
    assert_eq!(c.errors.len(), 1, "only rpc_-32601 errors (no http_404): {c:?}");
    assert_eq!(r.per_kind["ping"].counts.errors.get("rpc_-32601").copied(), Some(r.per_kind["ping"].counts.sent));
    assert!(refused > 0 && c.ok + refused == c.sent, "{c:?}");
}

fn speaks_stateless(r: &PhaseResult) -> bool {
    r.notes.iter().any(|n| n.starts_with(&format!("sessions speak {STATELESS}")))
}

#[test]
fn closed_and_open_phases_speak_it_to_the_builtin_server_over_tcp_and_http() {
    let _serial = serial();
    rt().block_on(async {
        let s = server::start(ServerConfig::listening(&["http://127.0.0.1:0/mcp", "tcp://127.0.0.1:0"]).unwrap())
            .await
            .unwrap();
        for scheme in ["tcp", "http"] {
            let url = s.url(scheme).unwrap().to_string();
            let r = run_local(&closed(&url, 10, 400, echo("message")), Control::default()).await;
            assert_all_ok(&r, 400);
            assert_eq!((r.connect.attempted, r.connect.ok), (10, 10), "{scheme}");
            assert!(speaks_stateless(&r), "{scheme}: {:?}", r.notes);
            let r = run_local(&open(&url, 10, 200.0, echo("message")), Control::default()).await;
            assert_open_ok(&r, 200.0);
            // `ping` is gone from the revision: the server says -32601 (over HTTP a 404
            // carrying it), and that is what is counted.
            let r = run_local(&closed(&url, 4, 200, echo_and_ping("message")), Control::default()).await;
            assert_pings_refused(&r);
            let r = run_local(&open(&url, 4, 200.0, echo_and_ping("message")), Control::default()).await;
            assert_pings_refused(&r);
        }
        // No handshake anywhere: not the sessions', not the negotiation's.
        assert_eq!(s.state.stats.sessions_initialized.load(Ordering::Relaxed), 0);
        s.shutdown().await;
    });
}

#[test]
fn against_the_python_sdk_and_one_that_predates_the_revision() {
    let _serial = serial();
    let py = ScriptServer::start(PY_SERVER);
    let old = ScriptServer::start_with(PY_SERVER, &["--legacy-only"]);
    rt().block_on(async {
        // The SDK refuses (-32020, -32602) a request whose envelope or routing headers are
        // missing or wrong: 0 errors means every request carried them right.
        let r = run_local(&closed(&py.url, 4, 200, echo("text")), Control::default()).await;
        assert_all_ok(&r, 200);
        assert!(speaks_stateless(&r), "{:?}\n{}", r.notes, py.log_tail());
        let r = run_local(&open(&py.url, 4, 100.0, echo("text")), Control::default()).await;
        assert_open_ok(&r, 100.0);
        let r = run_local(&closed(&py.url, 2, 60, echo_and_ping("text")), Control::default()).await;
        assert_pings_refused(&r);

        // A server that predates it: discover gets 400 -32600; every session initializes.
        let r = run_local(&closed(&old.url, 4, 200, echo_and_ping("text")), Control::default()).await;
        assert_all_ok(&r, 200);
        let fell_back = format!("the target does not speak {STATELESS}: sessions fell back to the initialize");
        assert!(r.notes.iter().any(|n| n.starts_with(&fell_back)), "{:?}", r.notes);
    });
}

/// What the tiny server below saw of one request: method, headers (lowercased) and body.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    headers: Vec<(String, String)>,
    body: Value,
}

impl Seen {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

/// A stateless Streamable HTTP server of a few lines: `server/discover` lists the revision,
/// `ping` gets 404 with a -32601 body, any other request an empty result, a notification
/// 202, anything else (GET, DELETE) 405.
async fn tiny_stateless_server(seen: Arc<Mutex<Vec<Seen>>>) -> String {
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
                    let body: Value = serde_json::from_slice(&req.body).unwrap_or_default();
                    seen.lock().unwrap().push(Seen { method: method.clone(), headers, body: body.clone() });
                    let id = body["id"].clone();
                    let json = |status: &str, v: Value| {
                        let b = v.to_string();
                        format!(
                            "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{b}",
                            b.len()
                        )
                    };
                    let out = match (method.as_str(), body["method"].as_str()) {
                        ("POST", _) if id.is_null() => "HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n".to_string(),
                        ("POST", Some("server/discover")) => json(
                            "200 OK",
                            json!({"jsonrpc": "2.0", "id": id, "result": {"supportedVersions": [STATELESS],
                                "capabilities": {"tools": {}}, "resultType": "complete", "ttlMs": 0,
                                "cacheScope": "private",
                                "_meta": {meta::SERVER_INFO: {"name": "tiny", "version": "1"}}}}),
                        ),
                        ("POST", Some("ping")) => json(
                            "404 Not Found",
                            json!({"jsonrpc": "2.0", "id": id, "error": {"code": -32601, "message": "Method not found"}}),
                        ),
                        ("POST", _) => json("200 OK", json!({"jsonrpc": "2.0", "id": id, "result": {}})),
                        _ => "HTTP/1.1 405 Method Not Allowed\r\nAllow: POST\r\nContent-Length: 0\r\n\r\n".to_string(),
                    };
                    if sock.write_all(out.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    format!("http://127.0.0.1:{port}/mcp")
}

#[test]
fn the_lean_http_wire_names_every_request_and_keeps_no_session() {
    let _serial = serial();
    rt().block_on(async {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let url = tiny_stateless_server(seen.clone()).await;
        let mut mix = echo_and_ping("message");
        mix.push(RequestTemplate::new("resources/read", Some(json!({"uri": "test://héllo"})), 1));
        let r = run_local(&closed(&url, 3, 90, mix), Control::default()).await;
        assert_identity(&r);
        assert_eq!(r.counts.errors.keys().collect::<Vec<_>>(), ["rpc_-32601"], "{:?}", r.counts);
        assert_eq!(r.counts.ok + r.counts.errors["rpc_-32601"], 90);
        let seen = seen.lock().unwrap();
        // The negotiation's discover, then the load's 90 requests; no initialize, no
        // notifications/initialized, no DELETE at close, no session id.
        assert_eq!(seen.len(), 91, "{:?}", seen.iter().map(|s| (&s.method, &s.body["method"])).collect::<Vec<_>>());
        assert_eq!(seen[0].body["method"], "server/discover");
        for s in seen.iter() {
            let method = s.body["method"].as_str().unwrap();
            assert_eq!(s.method, "POST", "{s:?}");
            assert_eq!(s.header("mcp-protocol-version"), Some(STATELESS), "{s:?}");
            assert_eq!(s.header("mcp-method"), Some(method), "{s:?}");
            assert_eq!(s.header("mcp-session-id"), None, "{s:?}");
            let envelope = &s.body["params"]["_meta"];
            assert_eq!(envelope[meta::PROTOCOL_VERSION], STATELESS, "{s:?}");
            assert!(envelope[meta::CLIENT_CAPABILITIES].is_object(), "{s:?}");
            let name = match method {
                "tools/call" => Some("echo"),
                "resources/read" => Some("=?base64?dGVzdDovL2jDqWxsbw==?="),
                _ => None,
            };
            assert_eq!(s.header("mcp-name"), name, "{s:?}");
        }
    });
}

/// A line server that answers `server/discover` with `UNSUPPORTED_VERSION` listing
/// `supported`, `initialize` as a 2025-11-25 server, any other request with its params;
/// counts the `initialize`s and the requests that carried an envelope.
async fn unsupported_version_server(supported: Value) -> (String, Arc<Mutex<(u32, u32)>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let counts = Arc::new(Mutex::new((0, 0)));
    let c = counts.clone();
    tokio::spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            let (supported, counts) = (supported.clone(), c.clone());
            tokio::spawn(async move {
                let (r, mut w) = sock.into_split();
                let mut lines = BufReader::new(r).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    let msg: Value = serde_json::from_str(&line).unwrap_or_default();
                    let Some(id) = msg.get("id") else { continue };
                    let reply = match msg["method"].as_str() {
                        Some("server/discover") => json!({"jsonrpc": "2.0", "id": id, "error": {"code": -32022,
                            "message": "Unsupported protocol version",
                            "data": {"supported": supported, "requested": STATELESS}}}),
                        Some("initialize") => {
                            counts.lock().unwrap().0 += 1;
                            json!({"jsonrpc": "2.0", "id": id, "result": {"protocolVersion": "2025-11-25",
                                "capabilities": {}, "serverInfo": {"name": "old", "version": "1"}}})
                        }
                        _ => {
                            if msg["params"]["_meta"].get(meta::PROTOCOL_VERSION).is_some() {
                                counts.lock().unwrap().1 += 1;
                            }
                            json!({"jsonrpc": "2.0", "id": id, "result": {}})
                        }
                    };
                    let mut out = reply.to_string().into_bytes();
                    out.push(b'\n');
                    if w.write_all(&out).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    (format!("tcp://127.0.0.1:{port}"), counts)
}

#[test]
fn an_unsupported_version_error_falls_back_or_fails_the_phase_naming_the_revisions() {
    let _serial = serial();
    rt().block_on(async {
        // It speaks only handshake revisions: every session initializes, no envelope.
        let (url, counts) = unsupported_version_server(json!(["2025-11-25"])).await;
        let r = run_local(&closed(&url, 5, 100, echo("message")), Control::default()).await;
        assert_all_ok(&r, 100);
        assert_eq!(*counts.lock().unwrap(), (1 + 5, 0), "the negotiation's session and each of the 5");
        assert!(r.notes.iter().any(|n| n.contains("fell back to the initialize handshake at 2025-11-25")));

        // No revision in common: the phase fails before any session opens, and says why.
        let (url, counts) = unsupported_version_server(json!(["2099-01-01"])).await;
        let r = run_local(&closed(&url, 5, 100, echo("message")), Control::default()).await;
        assert_eq!(r.status, PhaseStatus::Failed);
        assert_eq!((r.counts.sent, r.connect.attempted), (0, 0));
        let why = r.notes.join("; ");
        assert!(why.contains(&format!("negotiating protocol {STATELESS}")) && why.contains("2099-01-01"), "{why}");
        assert_eq!(*counts.lock().unwrap(), (0, 0));
    });
}

/// A run of `script` (its checks must pass) with `--set http=URL`; returns the output
/// and the results.
fn run_script(script: &str, http: &str) -> (interop::BoundedOutput, Option<Value>) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("phases.rhai");
    std::fs::write(&file, script).unwrap();
    let mut cmd = Command::new(BIN);
    cmd.arg("run").arg(&file).args(["--set", &format!("http={http}"), "--no-history", "-q", "--out"]);
    cmd.arg(dir.path().join("out")).env_remove("MCPSCRIPT_MAX_CONNS_PER_PROCESS");
    let out = interop::run_bounded(cmd, Duration::from_secs(120)).unwrap();
    let results = std::fs::read(dir.path().join("out/results.json")).ok().and_then(|b| serde_json::from_slice(&b).ok());
    (out, results)
}

#[test]
fn worker_processes_speak_it_and_a_bad_protocol_version_is_bad_input() {
    let _serial = serial();
    let rt = rt();
    let s = rt.block_on(server::start(ServerConfig::listening(&["http://127.0.0.1:0/mcp"]).unwrap())).unwrap();
    let http = s.url("http").unwrap().to_string();
    // Two worker processes each: the built-in server of the run (tcp, scaled to the
    // phase) and the one this test serves over HTTP.
    let script = r#"
        for t in ["builtin", param("http")] {
            let r = load::closed(#{name: `closed ${t}`, target: t, sessions: 20, iterations: 400, processes: 2,
                protocol_version: "2026-07-28", request: #{tool: "echo", arguments: #{message: "hi"}}});
            check(r.sent == 400 && r.ok == 400, `${t}: ${r.sent} sent, ${r.ok} ok, ${r.errors}, ${r.notes}`);
            check(r.workers.len() == 2, `${t}: ${r.workers.len()} workers`);
            check(r.notes.some(|n| n.starts_with("sessions speak 2026-07-28")), `${t}: ${r.notes}`);
        }
    "#;
    let (out, results) = run_script(script, &http);
    assert!(
        out.status.is_some_and(|s| s.success()),
        "{}\nstdout:\n{}\nstderr:\n{}",
        interop::describe_status(out.status),
        out.stdout,
        out.stderr
    );
    assert!(results.is_some());
    assert_eq!(s.state.stats.sessions_initialized.load(Ordering::Relaxed), 0);

    let bad = r#"load::closed(#{iterations: 1, protocol_version: "2099-01-01"});"#;
    let (out, _) = run_script(bad, &http);
    assert_eq!(out.status.and_then(|s| s.code()), Some(2), "{}\n{}", out.stdout, out.stderr);
    assert!(out.stderr.contains("protocol_version \"2099-01-01\" is not one mcpscript speaks"), "{}", out.stderr);
    rt.block_on(s.shutdown());
}
