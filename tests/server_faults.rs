//! The built-in server's fault modes, end to end, each against the same server without the
//! fault: `leak` (RSS of a real `mcpscript serve` child), `wrong_error_codes` (every
//! transport), `collapse` (no shedding, latency grows), `stay_down` (a managed restart
//! fails), `jitter` (some replies late, some not). 127.0.0.1 only; every child process is
//! started here and killed by its handle.

use mcpscript::client::{ClientError, ClientOptions, Session, Target};
use mcpscript::managed::{ManagedServer, Which, RESTARTS_ENV};
use mcpscript::protocol::jsonrpc::{INTERNAL_ERROR, INVALID_PARAMS, METHOD_NOT_FOUND, PARSE_ERROR};
use mcpscript::protocol::mcp::codes;
use mcpscript::server::{self, RunningServer, ServerConfig};
use serde_json::{json, Value};
use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};

/// Tests that start processes or measure time take turns on a small machine.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn exe() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_mcpscript"))
}

fn opts() -> Arc<ClientOptions> {
    Arc::new(ClientOptions {
        request_timeout: Duration::from_secs(10),
        connect_timeout: Duration::from_secs(5),
        ..Default::default()
    })
}

fn rpc_code(e: &ClientError) -> i64 {
    match e {
        ClientError::Rpc { error, .. } => error.code,
        other => panic!("expected a JSON-RPC error, got {other}"),
    }
}

async fn connect(target: &str) -> Session {
    let t: Target = target.parse().unwrap();
    Session::connect(&t, opts()).await.unwrap_or_else(|e| panic!("connect {target}: {e}"))
}

async fn start(config: ServerConfig) -> RunningServer {
    server::start(config).await.expect("server starts")
}

fn tcp_config() -> ServerConfig {
    ServerConfig::listening(&["tcp://127.0.0.1:0"]).unwrap()
}

// ---------------------------------------------------------------------------------------
// leak

/// A `mcpscript serve` child on tcp://127.0.0.1:0 and the URL it serves.
async fn spawn_serve(extra: &[&str]) -> (Child, String) {
    let mut child = Command::new(exe())
        .args(["serve", "--listen", "tcp://127.0.0.1:0"])
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("mcpscript serve starts");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let url = tokio::time::timeout(Duration::from_secs(10), async {
        while let Ok(Some(l)) = lines.next_line().await {
            if let Some(u) = l.strip_prefix("listening ") {
                return u.trim().to_string();
            }
        }
        panic!("serve ended without a listening line");
    })
    .await
    .expect("serve listens within 10 s");
    (child, url)
}

/// Resident set of a process, in bytes (VmRSS of /proc/PID/status).
fn rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("the server process is alive");
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/PID/status");
    kb * 1024
}

/// RSS growth of a fresh `serve` child (with `extra` flags) over `n` pings, once its RSS
/// reached `want` more than before the pings or, failing that, after `deadline`.
async fn rss_growth_over_pings(extra: &[&str], n: usize, want: u64, deadline: Duration) -> u64 {
    let (mut child, url) = spawn_serve(extra).await;
    let pid = child.id().unwrap();
    let s = connect(&url).await;
    for _ in 0..5 {
        s.ping().await.unwrap();
    }
    let before = rss_bytes(pid);
    for _ in 0..n {
        s.ping().await.unwrap();
    }
    let t0 = Instant::now();
    let mut grown = rss_bytes(pid).saturating_sub(before);
    while grown < want && t0.elapsed() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
        grown = rss_bytes(pid).saturating_sub(before);
    }
    s.close().await;
    let _ = child.kill().await;
    grown
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leak_grows_the_rss_with_the_request_count() {
    let _g = SERIAL.lock().await;
    const N: usize = 100;
    const PER_REQUEST: u64 = 256_000; // 256KB
    let want = (N as u64 * PER_REQUEST) * 8 / 10;
    let leaky = rss_growth_over_pings(&["--fault-leak", "256KB"], N, want, Duration::from_secs(5)).await;
    assert!(leaky >= want, "with --fault-leak 256KB, {N} pings grew the RSS by {leaky} bytes, expected >= {want}");
    let clean = rss_growth_over_pings(&[], N, want, Duration::ZERO).await;
    assert!(clean < want, "without the fault, {N} pings grew the RSS by {clean} bytes (>= {want})");
}

// ---------------------------------------------------------------------------------------
// wrong_error_codes

/// The code of the error a raw request line gets over tcp (no initialize: a parse error
/// needs none).
async fn raw_tcp_error_code(url: &str, line: &str) -> i64 {
    let addr = url.strip_prefix("tcp://").unwrap();
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(format!("{line}\n").as_bytes()).await.unwrap();
    let mut reply = String::new();
    tokio::time::timeout(Duration::from_secs(5), BufReader::new(&mut stream).read_line(&mut reply))
        .await
        .expect("a reply within 5 s")
        .unwrap();
    let v: Value = serde_json::from_str(&reply).unwrap();
    v["error"]["code"].as_i64().unwrap_or_else(|| panic!("not an error: {reply}"))
}

/// Status and JSON-RPC error code of a POST to the MCP path without a session (HTTP 400).
async fn raw_http_error(url: &str, body: &str) -> (u16, i64) {
    let rest = url.strip_prefix("http://").unwrap();
    let (addr, path) = rest.split_at(rest.find('/').unwrap());
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nAccept: application/json, \
         text/event-stream\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(req.as_bytes()).await.unwrap();
    let mut resp = String::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_string(&mut resp)).await.expect("reply").unwrap();
    let status: u16 = resp.split(' ').nth(1).unwrap().parse().unwrap();
    let json = &resp[resp.find("\r\n\r\n").unwrap() + 4..];
    let v: Value = serde_json::from_str(json.trim()).unwrap_or_else(|e| panic!("{e}: {resp}"));
    (status, v["error"]["code"].as_i64().unwrap())
}

/// Every network transport of one server, plus stdio through the binary: the codes an
/// unknown method, bad params, an unknown resource, a parse error and an HTTP-level error get.
async fn error_codes(wrong: bool) -> Vec<(String, i64, i64)> {
    let mut config = ServerConfig::listening(&["tcp://127.0.0.1:0", "http://127.0.0.1:0/mcp"]).unwrap();
    config.faults.wrong_error_codes = wrong;
    let server = start(config).await;
    let tcp = server.url("tcp").unwrap().to_string();
    let http = server.url("http").unwrap().to_string();
    let base = http.trim_end_matches("/mcp").to_string();
    let stdio =
        format!("stdio:{} serve --stdio{}", exe().display(), if wrong { " --fault-wrong-error-codes" } else { "" });
    let targets = [tcp.clone(), http.clone(), format!("sse+{base}/sse"), format!("ws://{}/ws", &base[7..]), stdio];
    let mut out = Vec::new();
    for t in &targets {
        let s = connect(t).await;
        let scheme = t.split(':').next().unwrap().to_string();
        out.push((
            format!("{scheme} unknown method"),
            rpc_code(&s.request("no/such", None).await.unwrap_err()),
            METHOD_NOT_FOUND,
        ));
        out.push((
            format!("{scheme} invalid params"),
            rpc_code(&s.call_tool("echo", json!({})).await.unwrap_err()),
            INVALID_PARAMS,
        ));
        out.push((
            format!("{scheme} unknown resource"),
            rpc_code(&s.read_resource("nope://x").await.unwrap_err()),
            codes::RESOURCE_NOT_FOUND,
        ));
        s.close().await;
    }
    out.push(("tcp parse error".into(), raw_tcp_error_code(&tcp, "{not json").await, PARSE_ERROR));
    let (status, code) = raw_http_error(&http, "{not json").await;
    assert_eq!(status, 400);
    out.push(("http parse error".into(), code, PARSE_ERROR));
    let (status, code) = raw_http_error(&http, r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#).await;
    assert_eq!(status, 400, "a POST without a session id");
    out.push(("http missing session".into(), code, -32000));
    server.shutdown().await;
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_error_codes_sends_internal_error_for_every_error_on_every_transport() {
    let _g = SERIAL.lock().await;
    let right = error_codes(false).await;
    for (what, got, expected) in &right {
        assert_eq!(got, expected, "without the fault, {what} gets its own code");
    }
    assert!(
        right.iter().any(|(w, _, _)| w.starts_with("tcp unknown"))
            && right.iter().any(|(w, _, _)| w.starts_with("http unknown"))
    );
    let wrong = error_codes(true).await;
    assert_eq!(wrong.len(), right.len());
    for (what, got, _) in &wrong {
        assert_eq!(*got, INTERNAL_ERROR, "with wrong_error_codes, {what} gets -32603");
    }
}

// ---------------------------------------------------------------------------------------
// collapse

/// 20 concurrent `sleep 300ms` calls on one session: each call's outcome and latency.
async fn concurrent_sleeps(collapse: bool) -> Vec<(Result<Value, i64>, Duration)> {
    let mut config = tcp_config();
    config.max_inflight = Some(2);
    config.faults.collapse = collapse;
    let server = start(config).await;
    let s = connect(server.url("tcp").unwrap()).await;
    let t0 = Instant::now();
    let calls = (0..20).map(|_| {
        let s = &s;
        async move {
            let r = s.call_tool("sleep", json!({"ms": 300})).await.map_err(|e| rpc_code(&e));
            (r, t0.elapsed())
        }
    });
    let out = futures_util::future::join_all(calls).await;
    s.close().await;
    server.shutdown().await;
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collapse_admits_everything_and_slows_down_instead_of_shedding() {
    let _g = SERIAL.lock().await;
    let shed = concurrent_sleeps(false).await;
    let rejected = shed.iter().filter(|(r, _)| *r == Err(codes::OVERLOADED)).count();
    assert!(rejected > 0, "without collapse, max_inflight 2 sheds some of 20 with -32000");

    let slow = concurrent_sleeps(true).await;
    for (r, _) in &slow {
        assert!(r.is_ok(), "with collapse nothing is rejected: {r:?}");
    }
    // Each reply waits its sleep plus 5 ms per request in flight when it was admitted
    // (up to 20): the last admitted ones take at least 60 ms longer than the sleep.
    let max = slow.iter().map(|(_, d)| *d).max().unwrap();
    assert!(max >= Duration::from_millis(360), "the slowest of 20 took {max:?}; collapse should add ~100 ms");
    let mut sorted: Vec<Duration> = slow.iter().map(|(_, d)| *d).collect();
    sorted.sort();
    assert!(
        sorted[19] >= sorted[0] + Duration::from_millis(40),
        "latency grows with the requests in flight: fastest {:?}, slowest {:?}",
        sorted[0],
        sorted[19]
    );
}

// ---------------------------------------------------------------------------------------
// stay_down

/// Whether a fresh session to `target` answers a ping within about a second.
async fn answers(target: &Target) -> bool {
    let o = Arc::new(ClientOptions {
        request_timeout: Duration::from_secs(1),
        connect_timeout: Duration::from_secs(1),
        ..Default::default()
    });
    match tokio::time::timeout(Duration::from_secs(2), Session::connect(target, o)).await {
        Ok(Ok(s)) => {
            let ok = s.ping().await.is_ok();
            s.close().await;
            ok
        }
        _ => false,
    }
}

fn environ_has(pid: u32, entry: &str) -> bool {
    std::fs::read(format!("/proc/{pid}/environ")).is_ok_and(|e| e.split(|b| *b == 0).any(|v| v == entry.as_bytes()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stay_down_keeps_a_killed_server_down_and_a_normal_one_comes_back() {
    let _g = SERIAL.lock().await;
    // Without the fault: killed, restarted, serving again, told it is restart 1.
    let mut s = ManagedServer::start_builtin(exe(), 1, &[]).await.expect("starts");
    let target = s.target();
    assert!(answers(&target).await);
    s.kill(Which::All).await.unwrap();
    let pids = s.restart(Which::All).await.expect("a normal server restarts");
    assert!(answers(&target).await, "the restarted server answers");
    assert!(environ_has(pids[0], &format!("{RESTARTS_ENV}=1")), "the restart carries {RESTARTS_ENV}=1");
    s.shutdown().await;

    // With it: up at first, then the restart fails promptly with the reason, and nothing answers.
    let mut s = ManagedServer::start_builtin(exe(), 1, &["--fault-stay-down".into()]).await.expect("starts");
    let target = s.target();
    assert!(answers(&target).await, "a first start serves normally");
    s.kill(Which::All).await.unwrap();
    let t0 = Instant::now();
    let e = s.restart(Which::All).await.expect_err("a stay-down server does not come back");
    assert!(t0.elapsed() < Duration::from_secs(10), "the restart gives up promptly ({:?})", t0.elapsed());
    let msg = e.to_string();
    assert!(msg.contains("exited") && msg.contains("--fault-stay-down"), "{msg}");
    assert!(!s.is_running(Which::All).unwrap());
    assert!(!answers(&target).await, "nothing answers at the target");
    assert!(s.wait_ready(Duration::from_millis(500)).await.is_err());
    s.shutdown().await;
}

// ---------------------------------------------------------------------------------------
// jitter

/// Latencies of 200 sequential pings on one session.
async fn ping_latencies(jitter: Option<Duration>, fraction: f64) -> Vec<Duration> {
    let mut config = tcp_config();
    config.faults.jitter = jitter;
    config.faults.jitter_fraction = fraction;
    let server = start(config).await;
    let s = connect(server.url("tcp").unwrap()).await;
    let mut out = Vec::with_capacity(200);
    for _ in 0..200 {
        let t = Instant::now();
        s.ping().await.unwrap();
        out.push(t.elapsed());
    }
    s.close().await;
    server.shutdown().await;
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jitter_delays_some_replies_and_not_others() {
    let _g = SERIAL.lock().await;
    let ms = Duration::from_millis;
    let jittered = ping_latencies(Some(ms(50)), 0.5).await;
    let late = jittered.iter().filter(|d| **d >= ms(5)).count();
    let prompt = jittered.iter().filter(|d| **d < ms(5)).count();
    assert!(late > 0 && prompt > 0, "jitter 50ms at 0.5: {late} of 200 pings took >= 5 ms, {prompt} less");
    assert!(jittered.iter().all(|d| *d < ms(50) + ms(1000)), "no jitter beyond its bound (plus slack)");

    let plain = ping_latencies(None, 0.5).await;
    let slow = plain.iter().filter(|d| **d >= ms(40)).count();
    assert_eq!(slow, 0, "without jitter no ping takes 40 ms");
}

// ---------------------------------------------------------------------------------------
// configuration

#[test]
fn fault_flags_are_validated_with_clear_errors() {
    let run = |args: &[&str]| {
        let out = std::process::Command::new(exe())
            .args(["serve", "--listen", "tcp://127.0.0.1:0"])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        (out.status.code(), String::from_utf8_lossy(&out.stderr).to_string())
    };
    let (code, err) = run(&["--fault-leak", "0B"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("--fault-leak") && err.contains("more than 0"), "{err}");
    let (code, err) = run(&["--fault-leak", "17MiB"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("16 MiB"), "{err}");
    let (code, err) = run(&["--fault-leak", "64"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("missing unit"), "{err}");
    let (code, err) = run(&["--fault-jitter", "50ms", "--fault-jitter-fraction", "1.5"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("between 0 and 1"), "{err}");
    let (code, err) = run(&["--fault-jitter", "fast"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("--fault-jitter") && err.contains("invalid duration"), "{err}");

    // Started as a restart: exits 1 with one line, without listening (and a server that
    // serves anyway is killed at the deadline, failing the test rather than hanging it).
    let mut child = std::process::Command::new(exe())
        .args(["serve", "--listen", "tcp://127.0.0.1:0", "--fault-stay-down"])
        .env(RESTARTS_ENV, "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while child.try_wait().unwrap().is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    if child.try_wait().unwrap().is_none() {
        let _ = child.kill();
    }
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1), "a stay-down serve started as a restart exits 1 at once");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("--fault-stay-down"), "{err}");
    assert!(!String::from_utf8_lossy(&out.stdout).contains("listening"));
}

#[test]
fn manifest_server_blocks_take_the_fault_keys() {
    use mcpscript::suite::manifest::{parse, BuiltinServer};
    let b: BuiltinServer = parse(
        "s.yaml",
        "leak: 64KB\nwrong_error_codes: true\ncollapse: true\nstay_down: true\njitter: 50ms\njitter_fraction: 0.25\n",
    )
    .unwrap();
    assert_eq!(b.leak.map(|s| s.0), Some(64_000));
    assert!(b.wrong_error_codes && b.collapse && b.stay_down);
    assert_eq!(b.jitter.map(|d| d.0), Some(Duration::from_millis(50)));
    assert_eq!(b.jitter_fraction, Some(0.25));
    let e = parse::<BuiltinServer>("s.yaml", "leak: 65536\n").unwrap_err().to_string();
    assert!(e.contains("needs a unit"), "{e}");
    assert!(parse::<BuiltinServer>("s.yaml", "leaks: 64KB\n").is_err(), "unknown keys are still refused");
}
