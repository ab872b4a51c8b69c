//! Load phases answering server-to-client requests: against the built-in server, whose
//! conformance fixtures `test_sampling` and `test_elicitation` ask the client during the
//! call, every path (lean `tcp://` in the closed model, its multiplexed form in the open
//! model, lean `http://`, full sessions over `ws://` and `sse+http://`) answers with the
//! phase's canned answers, declares their capabilities and counts by method what it was
//! asked; without answers nothing is declared and the calls fail. A tiny server written
//! here asks what the phase was not configured for (the refusals are counted), and
//! `mcpscript run` carries the answers to worker processes and reads them from a script.

use mcpscript::client::server_requests::{CannedAnswers, RequestCounts};
use mcpscript::load::exec::{run_local, Control};
use mcpscript::load::{Model, PhasePlan, PhaseResult, PhaseStatus, RequestTemplate, Stage};
use mcpscript::server::{self, ServerConfig};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

const BIN: &str = env!("CARGO_BIN_EXE_mcpscript");
const SAMPLING: &str = "sampling/createMessage";
const ELICITATION: &str = "elicitation/create";

/// These tests load the machine: one at a time.
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

/// Calls of the two fixtures that ask the client, half each.
fn asking_mix() -> Vec<RequestTemplate> {
    vec![
        RequestTemplate::new("tools/call", Some(json!({"name": "test_sampling", "arguments": {"prompt": "hi"}})), 1),
        RequestTemplate::new(
            "tools/call",
            Some(json!({"name": "test_elicitation", "arguments": {"message": "who?"}})),
            1,
        ),
    ]
}

fn answers() -> CannedAnswers {
    CannedAnswers {
        sampling: Some(json!({"role": "assistant", "content": {"type": "text", "text": "ok"}, "model": "canned"})),
        elicitation: Some(json!({"action": "accept", "content": {"username": "load", "email": "load@example.com"}})),
        roots: None,
    }
}

fn closed(target: &str, iterations: u64, answers: CannedAnswers) -> PhasePlan {
    let model = Model::Closed { sessions: 4, duration: None, iterations: Some(iterations), think: None };
    let mut p = PhasePlan { seed: 3, ..PhasePlan::new("asked", target, model) };
    p.mix = asking_mix();
    p.client.answers = answers;
    p.validate().unwrap();
    p
}

fn open(target: &str, answers: CannedAnswers) -> PhasePlan {
    let model = Model::Open {
        sessions: 4,
        stages: vec![Stage { duration: Duration::from_millis(500), rate: 80.0 }],
        start_rate: 80.0,
        max_inflight: 1000,
        arrival_offset: 0.0,
    };
    let mut p = PhasePlan { seed: 5, ..PhasePlan::new("asked-open", target, model) };
    p.mix = asking_mix();
    p.client.answers = answers;
    p.validate().unwrap();
    p
}

fn counts(received: u64, answered: u64, refused: u64) -> RequestCounts {
    RequestCounts { received, answered, refused }
}

/// Every call succeeded and each asked once, answered: the counts by method are the calls
/// of each fixture.
fn assert_answered_all(r: &PhaseResult, sent: u64, what: &str) {
    let c = &r.counts;
    assert_eq!((c.sent, c.ok), (sent, sent), "{what}: {c:?} {:?}", r.notes);
    assert_eq!(r.status, PhaseStatus::Completed, "{what}");
    let sampled = r.per_kind["test_sampling"].counts.sent;
    let elicited = r.per_kind["test_elicitation"].counts.sent;
    assert!(sampled > 0 && elicited > 0, "{what}: both fixtures ran ({sampled}, {elicited})");
    assert_eq!(r.server_requests.get(SAMPLING), Some(&counts(sampled, sampled, 0)), "{what}: {:?}", r.server_requests);
    assert_eq!(r.server_requests.get(ELICITATION), Some(&counts(elicited, elicited, 0)), "{what}");
    assert_eq!(r.server_requests.len(), 2, "{what}: only what the server asked: {:?}", r.server_requests);
}

#[test]
fn every_path_answers_with_the_canned_answers_and_counts_them() {
    let _serial = serial();
    rt().block_on(async {
        let listen =
            ["tcp://127.0.0.1:0", "http://127.0.0.1:0/mcp", "ws://127.0.0.1:0/ws", "sse+http://127.0.0.1:0/sse"];
        let s = server::start(ServerConfig::listening(&listen).unwrap()).await.unwrap();
        for scheme in ["tcp", "http", "ws", "sse+http"] {
            let url = s.url(scheme).unwrap();
            let r = run_local(&closed(url, 40, answers()), Control::default()).await;
            assert_answered_all(&r, 40, &format!("closed over {scheme}"));
        }
        // The open model: the multiplexed tcp connection, lean http and a session.
        for scheme in ["tcp", "http", "ws"] {
            let r = run_local(&open(s.url(scheme).unwrap(), answers()), Control::default()).await;
            assert_answered_all(&r, 40, &format!("open over {scheme}"));
        }
        s.shutdown().await;
    });
}

#[test]
fn without_answers_nothing_is_declared_and_the_calls_fail() {
    let _serial = serial();
    rt().block_on(async {
        let listen = ["tcp://127.0.0.1:0", "http://127.0.0.1:0/mcp", "ws://127.0.0.1:0/ws"];
        let s = server::start(ServerConfig::listening(&listen).unwrap()).await.unwrap();
        for scheme in ["tcp", "http", "ws"] {
            let r = run_local(&closed(s.url(scheme).unwrap(), 10, CannedAnswers::default()), Control::default()).await;
            // The server does not ask a client that declared no capability: it fails the call.
            assert_eq!(r.counts.ok, 0, "{scheme}: {:?}", r.counts);
            assert_eq!(r.counts.errors.get("rpc_-32600"), Some(&10), "{scheme}: {:?}", r.counts);
            assert!(r.server_requests.is_empty(), "{scheme}: {:?}", r.server_requests);
        }
        // Sampling only: the elicitation calls fail, the sampling calls are answered.
        let sampling_only = CannedAnswers { elicitation: None, ..answers() };
        let r = run_local(&closed(s.url("tcp").unwrap(), 20, sampling_only), Control::default()).await;
        let (sampled, elicited) = (&r.per_kind["test_sampling"].counts, &r.per_kind["test_elicitation"].counts);
        assert_eq!((sampled.ok, elicited.ok), (sampled.sent, 0), "{:?}", r.per_kind);
        assert_eq!(r.server_requests.get(SAMPLING), Some(&counts(sampled.sent, sampled.sent, 0)));
        assert!(!r.server_requests.contains_key(ELICITATION), "{:?}", r.server_requests);
        s.shutdown().await;
    });
}

/// A `tcp://` server that asks `roots/list` and `sampling/createMessage` during every
/// `tools/call` (whatever the client declared) and replies once both were answered.
async fn asking_server() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (rd, mut wr) = sock.into_split();
                let mut lines = BufReader::new(rd).lines();
                let mut asked = 0u64;
                // Per question asked: the call it belongs to; per call: answers still owed.
                let mut of_call: HashMap<String, String> = HashMap::new();
                let mut owed: HashMap<String, (Value, u32)> = HashMap::new();
                while let Ok(Some(line)) = lines.next_line().await {
                    let msg: Value = serde_json::from_str(&line).unwrap_or(Value::Null);
                    let mut out = Vec::new();
                    match msg["method"].as_str() {
                        Some("initialize") => out.push(json!({"jsonrpc": "2.0", "id": msg["id"], "result": {
                            "protocolVersion": msg["params"]["protocolVersion"], "capabilities": {"tools": {}},
                            "serverInfo": {"name": "asking", "version": "1"}}})),
                        Some("tools/call") => {
                            let call = msg["id"].to_string();
                            for method in ["roots/list", SAMPLING] {
                                asked += 1;
                                let q = format!("s{asked}");
                                of_call.insert(q.clone(), call.clone());
                                out.push(json!({"jsonrpc": "2.0", "id": q, "method": method, "params": {}}));
                            }
                            owed.insert(call, (msg["id"].clone(), 2));
                        }
                        Some(_) => {}
                        // An answer to one of ours: the call replies once both came.
                        None => {
                            let call = msg["id"].as_str().and_then(|q| of_call.remove(q)).unwrap_or_default();
                            if let Some((id, left)) = owed.get_mut(&call) {
                                *left -= 1;
                                if *left == 0 {
                                    out.push(json!({"jsonrpc": "2.0", "id": id, "result": {"content": []}}));
                                    owed.remove(&call);
                                }
                            }
                        }
                    }
                    for m in out {
                        let mut b = serde_json::to_vec(&m).unwrap();
                        b.push(b'\n');
                        if wr.write_all(&b).await.is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
    format!("tcp://{addr}")
}

#[test]
fn what_the_phase_was_not_configured_for_is_refused_and_counted() {
    let _serial = serial();
    rt().block_on(async {
        let url = asking_server().await;
        let mut p = closed(&url, 30, answers());
        p.mix = vec![RequestTemplate::new("tools/call", Some(json!({"name": "any"})), 1)];
        let r = run_local(&p, Control::default()).await;
        assert_eq!((r.counts.sent, r.counts.ok), (30, 30), "{:?} {:?}", r.counts, r.notes);
        assert_eq!(r.server_requests["roots/list"], counts(30, 0, 30), "{:?}", r.server_requests);
        assert_eq!(r.server_requests[SAMPLING], counts(30, 30, 0));
        // The multiplexed connection of the open model too.
        let mut o = open(&url, answers());
        o.mix = p.mix.clone();
        let r = run_local(&o, Control::default()).await;
        assert_eq!((r.counts.sent, r.counts.ok), (40, 40), "{:?}", r.counts);
        assert_eq!(r.server_requests["roots/list"], counts(40, 0, 40), "{:?}", r.server_requests);
        assert_eq!(r.server_requests[SAMPLING], counts(40, 40, 0));
    });
}

/// Runs `script` with `mcpscript run` (against the built-in server), `budget` connections
/// per process; the exit code, stderr and the results.json.
fn run_script(script: &str, budget: Option<u64>) -> (Option<i32>, String, Option<Value>) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("asked.rhai");
    std::fs::write(&file, script).unwrap();
    let out = dir.path().join("out");
    let mut c = Command::new(BIN);
    c.args(["run", file.to_str().unwrap(), "--out", out.to_str().unwrap(), "-q"]);
    c.env_remove("MCPSCRIPT_MAX_CONNS_PER_PROCESS").env_remove("MCPSCRIPT_STDLIB").env("MCPSCRIPT_NO_HISTORY", "1");
    if let Some(b) = budget {
        c.env("MCPSCRIPT_MAX_CONNS_PER_PROCESS", b.to_string());
    }
    let o = c.stdin(Stdio::null()).output().unwrap();
    let results = std::fs::read(out.join("results.json")).ok().map(|b| serde_json::from_slice(&b).unwrap());
    (o.status.code(), String::from_utf8_lossy(&o.stderr).into_owned(), results)
}

/// The first load phase of a results.json.
fn first_phase(results: &Value) -> Value {
    fn walk(n: &Value) -> Option<Value> {
        n["phases"]
            .as_array()
            .and_then(|p| p.first().cloned())
            .or_else(|| n["stages"].as_array()?.iter().find_map(walk))
    }
    results["scenarios"].as_array().unwrap().iter().find_map(walk).expect("a load phase")
}

#[test]
fn worker_processes_answer_and_their_counts_add_up() {
    let _serial = serial();
    let script = r#"
let r = load::closed(#{sessions: 40, iterations: 200,
    request: #{tool: "test_sampling", arguments: #{prompt: "hi"}},
    on_sampling: #{role: "assistant", content: #{type: "text", text: "ok"}, model: "canned"}});
check(r.ok == 200, "every call answered");
let asked = r.server_requests["sampling/createMessage"];
check(asked.received == 200 && asked.answered == 200 && asked.refused == 0, "counted by method");
"#;
    // 10 connections per process: the 40 sessions need 4 worker processes.
    let (code, stderr, results) = run_script(script, Some(10));
    assert_eq!(code, Some(0), "{stderr}");
    let p = first_phase(&results.unwrap());
    assert_eq!(p["workers"].as_array().map(Vec::len), Some(4), "{}", p["workers"]);
    assert_eq!(p["ok"], 200, "{}", p["notes"]);
    assert_eq!(p["server_requests"], json!({SAMPLING: {"received": 200, "answered": 200, "refused": 0}}));
}

#[test]
fn a_function_or_a_bad_value_is_an_input_error_naming_the_option() {
    for (options, says) in [
        ("on_sampling: |params| #{}", "load::closed: on_sampling: a function answers only in connect() sessions"),
        (
            "on_elicitation: \"accept\"",
            "load::closed: on_elicitation must be a map (the result every request is answered with",
        ),
        ("roots: \"file:///work\"", "load::closed: roots must be an array of URIs or #{uri, name} maps, not string"),
    ] {
        let (code, stderr, _) = run_script(&format!("load::closed(#{{iterations: 1, {options}}});"), None);
        assert_eq!(code, Some(2), "{options}: {stderr}");
        assert!(stderr.contains(says), "{options}: {stderr}");
    }
}
