//! Peak closed-model throughput of the load engine at 1,000 sessions, beside a minimal
//! reference pair measured in the same run on the same machine.
//!
//! ```text
//! cargo bench --bench load_peak                 # 1,000 connections, 5 s per case
//! BENCH_SECS=10 BENCH_CONNS=1000 cargo bench --bench load_peak
//! ```
//!
//! Cases (closed loop, one request in flight per connection, `ping`-sized replies):
//! - `reference pair`: a minimal tokio newline-JSON client (one task per connection,
//!   `BufReader` lines, `serde_json::Value` parse) against a minimal tokio server (one task
//!   per connection, replies `{"jsonrpc":"2.0","id":ID,"result":{}}`): the yardstick.
//! - `load engine -> reference server`: the load engine's client against the same server.
//! - `load engine -> mcpscript tcp://` and `http://`: the engine against `mcpscript serve`.
//!
//! Servers are child processes (this binary re-executed as `BENCH_ROLE=ref-server`, and
//! `mcpscript serve`), so client and server share the 2 cores as in real use; the client
//! runs on a 2-thread runtime. CPU per reply is measured from `/proc` for both sides.

use mcpscript::load::exec::{run_local, Control};
use mcpscript::load::plan::{Model, PhasePlan};
use mcpscript::load::recorder::{Accumulator, Outcome, PhaseRecorder};
use mcpscript::load::sampler::cpu_seconds;
use std::io::BufRead;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

const ROLE: &str = "BENCH_ROLE";

fn main() {
    if std::env::var(ROLE).as_deref() == Ok("ref-server") {
        ref_server();
        return;
    }
    let secs: f64 = std::env::var("BENCH_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(5.0);
    let conns: u64 = std::env::var("BENCH_CONNS").ok().and_then(|s| s.parse().ok()).unwrap_or(1000);
    mcpscript::util::proc::raise_nofile_limit();
    let window = Duration::from_secs_f64(secs);
    let reference = Server::spawn(Command::new(std::env::current_exe().unwrap()).env(ROLE, "ref-server"));
    let mcp = Server::spawn(Command::new(env!("CARGO_BIN_EXE_mcpscript")).args([
        "serve",
        "--listen",
        "tcp://127.0.0.1:0",
        "--listen",
        "http://127.0.0.1:0/mcp",
    ]));
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    println!("{conns} connections, {secs} s per case, closed loop depth 1 (load average now {})", loadavg());
    println!(
        "{:<36} {:>10} {:>9} {:>9} {:>14} {:>14}",
        "case", "req/s", "p50 ms", "p99 ms", "client us/req", "server us/req"
    );
    let rows = [
        ("reference pair", reference.url("tcp://"), reference.pid(), true),
        ("load engine -> reference server", reference.url("tcp://"), reference.pid(), false),
        ("load engine -> mcpscript tcp://", mcp.url("tcp://"), mcp.pid(), false),
        ("load engine -> mcpscript http://", mcp.url("http://"), mcp.pid(), false),
    ];
    let mut rates = vec![];
    for (name, url, server_pid, is_ref) in rows {
        let me = std::process::id();
        let (c0, s0) = (cpu_seconds(me).unwrap_or(0.0), cpu_seconds(server_pid).unwrap_or(0.0));
        let (done, p50, p99, took) = if is_ref {
            rt.block_on(ref_client(&url, conns, window))
        } else {
            rt.block_on(engine(&url, conns, window))
        };
        let (c1, s1) = (cpu_seconds(me).unwrap_or(0.0), cpu_seconds(server_pid).unwrap_or(0.0));
        let rate = done as f64 / took;
        let per = |a: f64, b: f64| if done > 0 { (b - a) * 1e6 / done as f64 } else { 0.0 };
        println!("{name:<36} {rate:>10.0} {p50:>9.3} {p99:>9.3} {:>14.1} {:>14.1}", per(c0, c1), per(s0, s1));
        rates.push(rate);
    }
    println!("load engine / reference pair on the reference server: {:.0}%", 100.0 * rates[1] / rates[0]);
    println!("(CPU per request includes connecting; the load engine's figure includes its own measurement.)");
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

/// The load engine's closed model for `window` (connects first; only the window counts).
async fn engine(url: &str, conns: u64, window: Duration) -> (u64, f64, f64, f64) {
    let ten = Duration::from_secs(10);
    let model = Model::Closed { sessions: conns, duration: Some(window), iterations: None, think: None };
    let plan = PhasePlan {
        request_timeout: ten,
        connect_timeout: ten,
        seed: 1,
        processes: 1,
        ..PhasePlan::new("peak", url, model)
    };
    let r = run_local(&plan, Control::default()).await;
    if r.counts.ok < r.counts.sent {
        eprintln!("  {url}: {} of {} ok ({:?})", r.counts.ok, r.counts.sent, r.counts.errors);
    }
    (r.counts.ok, r.latency.p50, r.latency.p99, r.duration_s + r.drain_s)
}

/// The reference client: one task per connection, BufReader lines, Value parse.
async fn ref_client(url: &str, conns: u64, window: Duration) -> (u64, f64, f64, f64) {
    let addr = url.trim_start_matches("tcp://").to_string();
    let rec = PhaseRecorder::new(1, Arc::new(AtomicI64::new(0)));
    let stop = Arc::new(AtomicBool::new(false));
    let mut streams = Vec::new();
    for _ in 0..conns {
        let s = tokio::net::TcpStream::connect(&addr).await.expect("connect to the reference server");
        s.set_nodelay(true).unwrap();
        streams.push(s);
    }
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for (i, s) in streams.into_iter().enumerate() {
        let (rec, stop) = (rec.clone(), stop.clone());
        tasks.spawn(async move {
            let (r, mut w) = s.into_split();
            let mut lines = BufReader::new(r).lines();
            let mut id = 0u64;
            while !stop.load(Ordering::Relaxed) {
                id += 1;
                let t0 = Instant::now();
                let req = format!("{{\"jsonrpc\":\"2.0\",\"id\":{id},\"method\":\"ping\"}}\n");
                if w.write_all(req.as_bytes()).await.is_err() {
                    return;
                }
                match lines.next_line().await {
                    Ok(Some(l)) => {
                        let _v: serde_json::Value = serde_json::from_str(&l).unwrap_or_default();
                        rec.sent_done(i, 0, Outcome::Ok, t0.elapsed());
                    }
                    _ => return,
                }
            }
        });
    }
    tokio::time::sleep(window).await;
    stop.store(true, Ordering::Relaxed);
    while tasks.join_next().await.is_some() {}
    let took = start.elapsed().as_secs_f64();
    let mut acc = Accumulator::new(vec!["ping".into()], 1);
    let mut spares = rec.spares();
    rec.fold(&mut acc, &mut spares, 0, took);
    let (c, h) = acc.main_total();
    let l = mcpscript::load::result::LatencyStats::of(&h);
    (c.ok, l.p50, l.p99, took)
}

/// The reference server (a child process): one task per connection, BufReader lines,
/// Value parse, `{"jsonrpc":"2.0","id":ID,"result":{}}` (a real `initialize` result for
/// `initialize`, so the load engine's handshake passes).
fn ref_server() {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    rt.block_on(async {
        mcpscript::util::proc::raise_nofile_limit();
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        println!("listening tcp://{}", l.local_addr().unwrap());
        println!("ready");
        loop {
            let Ok((s, _)) = l.accept().await else { continue };
            s.set_nodelay(true).unwrap();
            tokio::spawn(async move {
                let (r, mut w) = s.into_split();
                let mut lines = BufReader::new(r).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    let v: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
                    let Some(id) = v.get("id") else { continue };
                    let result = if v["method"] == "initialize" {
                        serde_json::json!({"protocolVersion": "2025-11-25", "capabilities": {}, "serverInfo": {"name": "ref", "version": "1"}})
                    } else {
                        serde_json::json!({})
                    };
                    let mut out = serde_json::to_vec(&serde_json::json!({"jsonrpc": "2.0", "id": id, "result": result})).unwrap();
                    out.push(b'\n');
                    if w.write_all(&out).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
}

/// A server child process: its `listening URL` lines; killed on drop.
struct Server {
    child: Child,
    urls: Vec<String>,
}

impl Server {
    fn spawn(cmd: &mut Command) -> Server {
        let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::null()).spawn().expect("start a server");
        let out = std::io::BufReader::new(child.stdout.take().unwrap());
        let mut urls = vec![];
        for line in out.lines() {
            let Ok(line) = line else { break };
            if let Some(u) = line.strip_prefix("listening ") {
                urls.push(u.trim().to_string());
            }
            if line == "ready" || urls.len() == 2 {
                break;
            }
        }
        Server { child, urls }
    }

    fn url(&self, prefix: &str) -> String {
        self.urls.iter().find(|u| u.starts_with(prefix)).cloned().expect("server url")
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
