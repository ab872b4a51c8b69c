//! What the scripting layer costs: ping requests per second issued (a) from Rust directly
//! on one session, as a task of the shared runtime (where it can share a worker thread with
//! the in-process server) and (a') on a thread of its own, as a script is, (b) from a Rhai
//! loop on one session, (c) from 64 Rust tasks with a
//! session each, (d) from 64 Rhai scripts on their own threads with a session each, all
//! against the built-in server over tcp in this process, on the same 2-worker runtime
//! `mcpscript run` uses. The Rhai cases run in three bridge modes: `local` (the default: the
//! script's sessions live on the script thread's own runtime, which waits for their replies
//! itself), `drive` (sessions on the shared runtime; the script thread polls the request) and
//! `spawn` (the request runs as a runtime task and its result comes back over a oneshot).
//! Prints a table and the Rhai/Rust ratios.
//!
//!     cargo bench --bench bridge
//!     MCPSCRIPT_BENCH_SECS=5 cargo bench --bench bridge
//!
//! Each case runs for a fixed time (default 3 s, after a 0.5 s warm-up), so the whole
//! benchmark takes about 20 s.

use mcpscript::client::{ClientOptions, Session, Target};
use mcpscript::script::{runner, BridgeMode, Limits, RunOptions, Script, ScriptEnv};
use mcpscript::server::{self, ServerConfig};
use std::sync::Arc;
use std::time::{Duration, Instant};

const PARALLEL: usize = 64;

const SCRIPT: &str = r#"
let s = connect();
let limit = param("ms", 1000.0);
let n = 0;
let t0 = now_ms();
while now_ms() - t0 < limit {
    s.ping();
    n += 1;
}
metric("requests", n);
metric("elapsed_ms", now_ms() - t0);
s.close();
"#;

/// The same loop without the request: what the interpreter itself costs per iteration.
const SCRIPT_EMPTY: &str = r#"
let limit = param("ms", 1000.0);
let n = 0;
let t0 = now_ms();
while now_ms() - t0 < limit {
    n += 1;
}
metric("requests", n);
metric("elapsed_ms", now_ms() - t0);
"#;

struct Case {
    name: &'static str,
    requests: u64,
    secs: f64,
}

impl Case {
    fn rate(&self) -> f64 {
        self.requests as f64 / self.secs
    }
}

/// `n` Rust tasks, each with its own session, pinging back to back for `d`.
fn rust_pings(rt: &tokio::runtime::Runtime, target: &Target, n: usize, d: Duration) -> (u64, f64) {
    rt.block_on(async {
        let opts = Arc::new(ClientOptions::default());
        let mut sessions = Vec::new();
        for _ in 0..n {
            sessions.push(Session::connect(target, opts.clone()).await.expect("connect"));
        }
        let t0 = Instant::now();
        let tasks: Vec<_> = sessions
            .into_iter()
            .map(|s| {
                tokio::spawn(async move {
                    let mut count = 0u64;
                    while t0.elapsed() < d {
                        s.ping().await.expect("ping");
                        count += 1;
                    }
                    s.close().await;
                    count
                })
            })
            .collect();
        let mut total = 0;
        for t in tasks {
            total += t.await.expect("task");
        }
        (total, t0.elapsed().as_secs_f64())
    })
}

/// One Rust client on a thread of its own with its own current-thread runtime, pinging
/// back to back for `d`: the same place in the machine as a script thread (whose sessions
/// live on its own runtime), without the interpreter.
fn rust_pings_own_thread(target: &Target, d: Duration) -> (u64, f64) {
    let target = target.clone();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        rt.block_on(async {
            let s = Session::connect(&target, Arc::new(ClientOptions::default())).await.expect("connect");
            let t0 = Instant::now();
            let mut count = 0u64;
            while t0.elapsed() < d {
                s.ping().await.expect("ping");
                count += 1;
            }
            s.close().await;
            (count, t0.elapsed().as_secs_f64())
        })
    })
    .join()
    .expect("client thread")
}

/// `n` Rhai scripts on their own threads (one compiled AST), each pinging for `d`.
fn rhai_pings(
    rt: &tokio::runtime::Runtime,
    script: &Arc<Script>,
    target: &Target,
    n: usize,
    d: Duration,
    bridge: BridgeMode,
) -> (u64, f64) {
    let params = mcpscript::script::Params::parse(&[format!("ms={}", d.as_millis())]).expect("params");
    let opts = RunOptions { params, bridge, ..RunOptions::new(target.clone()) };
    let threads: Vec<_> =
        (0..n).map(|_| runner::spawn(script.clone(), opts.clone(), rt.handle().clone()).expect("thread")).collect();
    let mut total = 0u64;
    let mut slowest: f64 = 0.0;
    for t in threads {
        let r = t.join().expect("script thread");
        if let Some(e) = &r.error {
            panic!("script failed: {e:?}");
        }
        let m = |name: &str| r.all_metrics().iter().find(|m| m.name == name).map(|m| m.value).unwrap_or(0.0);
        total += m("requests") as u64;
        slowest = slowest.max(m("elapsed_ms") / 1000.0);
    }
    // Each script times its own loop (connecting is outside it, as in the Rust cases); the
    // slowest one's time is the case's time.
    (total, slowest)
}

fn main() {
    let secs: f64 = std::env::var("MCPSCRIPT_BENCH_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(3.0);
    let d = Duration::from_secs_f64(secs);
    let warm = Duration::from_millis(500);
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let srv =
        rt.block_on(server::start(ServerConfig::listening(&["tcp://127.0.0.1:0"]).expect("config"))).expect("server");
    let target: Target = srv.url("tcp").expect("tcp url").parse().expect("target");
    let env = ScriptEnv { limits: Limits { max_operations: 0, ..Limits::default() }, ..ScriptEnv::default() };
    let script = Arc::new(Script::compile("bench.rhai", SCRIPT, None, &env).expect("bench script compiles"));
    let empty = Arc::new(Script::compile("empty.rhai", SCRIPT_EMPTY, None, &env).expect("empty script compiles"));

    println!("bridge benchmark: ping over tcp to the in-process built-in server, 2 runtime workers, {secs} s per case");
    let mut cases = Vec::new();
    let mut case = |name: &'static str, f: &dyn Fn(Duration) -> (u64, f64)| {
        let _ = f(warm);
        let (requests, secs) = f(d);
        cases.push(Case { name, requests, secs });
    };
    case("(a) Rust, 1 session", &|d| rust_pings(&rt, &target, 1, d));
    case("(a') Rust, 1 session, own thread", &|d| rust_pings_own_thread(&target, d));
    case("(b) Rhai loop, 1 session", &|d| rhai_pings(&rt, &script, &target, 1, d, BridgeMode::Local));
    case("(b') same, drive bridge", &|d| rhai_pings(&rt, &script, &target, 1, d, BridgeMode::Drive));
    case("(b'') same, spawn bridge", &|d| rhai_pings(&rt, &script, &target, 1, d, BridgeMode::Spawn));
    case("(c) Rust, 64 tasks x 1 session", &|d| rust_pings(&rt, &target, PARALLEL, d));
    case("(d) Rhai, 64 scripts x 1 session", &|d| rhai_pings(&rt, &script, &target, PARALLEL, d, BridgeMode::Local));
    case("(d') same, drive bridge", &|d| rhai_pings(&rt, &script, &target, PARALLEL, d, BridgeMode::Drive));
    case("(d'') same, spawn bridge", &|d| rhai_pings(&rt, &script, &target, PARALLEL, d, BridgeMode::Spawn));
    case("(e) Rhai loop without requests", &|d| rhai_pings(&rt, &empty, &target, 1, d, BridgeMode::Local));

    println!("\n{:<34} {:>10} {:>8} {:>10} {:>12}", "case", "requests", "secs", "req/s", "us/request");
    // (e) counts loop iterations, not requests.
    for c in &cases {
        println!("{:<34} {:>10} {:>8.2} {:>10.0} {:>12.1}", c.name, c.requests, c.secs, c.rate(), 1e6 / c.rate());
    }
    let r = |i: usize| cases[i].rate();
    println!(
        "\nRhai / Rust, 1 session:    {:.2} local (the default), {:.2} drive, {:.2} spawn \
         (scripting adds {:.1} us per request, local)",
        r(2) / r(0),
        r(3) / r(0),
        r(4) / r(0),
        1e6 / r(2) - 1e6 / r(0)
    );
    println!(
        "  against a Rust client on its own thread (where a script runs): {:.2} local \
         (scripting adds {:.1} us per request)",
        r(2) / r(1),
        1e6 / r(2) - 1e6 / r(1)
    );
    println!(
        "Rhai / Rust, 64 sessions:  {:.2} local (the default), {:.2} drive, {:.2} spawn",
        r(6) / r(5),
        r(7) / r(5),
        r(8) / r(5)
    );
    rt.block_on(srv.shutdown());
}
