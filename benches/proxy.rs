//! What the fault-injecting proxy adds to a round trip when no fault applies, and when a
//! message-level fault applies but never fires (the framing and scheduling path).
//!
//! ```text
//! cargo bench --bench proxy                  # 20,000 pings on 1 connection, 64,000 over 64
//! BENCH_PINGS=100000 cargo bench --bench proxy
//! ```
//!
//! The processes share the machine, as in real use: the reference server (`tcp://`), the
//! proxies (one with no faults, one with `drop:probability=0`, which assembles every reply
//! as a message and runs it through the fault path), a yardstick proxy that only runs
//! tokio's `copy_bidirectional`, and this client. This binary
//! re-executes itself with `MCPSCRIPT_BENCH_ROLE=server|proxy`; children print `listening
//! URL`, die with the parent (PR_SET_PDEATHSIG) and are killed by PID at the end.
//!
//! Pings go in rounds that alternate direct / through the proxy, so drift in machine load
//! affects every route alike. Each round warms up with a few pings first. Latency goes to
//! HDR histograms; the table prints p50, p99, p99.9 and the difference from direct.

use hdrhistogram::Histogram;
use mcpscript::chaos::{Fault, Proxy};
use mcpscript::client::{ClientOptions, Session, Target};
use mcpscript::server::{self, ServerConfig};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

const ROLE_ENV: &str = "MCPSCRIPT_BENCH_ROLE";
const UPSTREAM_ENV: &str = "MCPSCRIPT_BENCH_UPSTREAM";
const FAULT_ENV: &str = "MCPSCRIPT_BENCH_FAULT";
/// Rounds per route; each route gets `pings / ROUNDS` pings per round.
const ROUNDS: usize = 8;
const WARMUP_PINGS: usize = 200;
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Bound on a whole case, so a stuck child cannot hang the bench.
const CASE_LIMIT: Duration = Duration::from_secs(300);

fn main() {
    match std::env::var(ROLE_ENV).as_deref() {
        Ok("server") => child(run_server()),
        Ok("proxy") => child(run_proxy()),
        Ok("copy") => child(run_copy()),
        Ok(other) => eprintln!("unknown {ROLE_ENV}={other}"),
        Err(_) => bench(),
    }
}

/// Runs a child role: dies with the parent, serves until killed.
fn child(fut: impl std::future::Future<Output = ()>) {
    // SAFETY: prctl with constant arguments; only affects this process.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) };
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    rt.block_on(fut);
}

async fn run_server() {
    let s = server::start(ServerConfig::listening(&["tcp://127.0.0.1:0"]).unwrap()).await.unwrap();
    println!("listening {}", s.url("tcp").unwrap());
    std::future::pending::<()>().await;
}

async fn run_proxy() {
    let upstream: Target = std::env::var(UPSTREAM_ENV).unwrap().parse().unwrap();
    let proxy = Proxy::start(&upstream, "127.0.0.1:0".parse().unwrap(), 1).await.unwrap();
    if let Ok(spec) = std::env::var(FAULT_ENV) {
        proxy.add_fault(spec.parse::<Fault>().unwrap()).unwrap();
    }
    println!("listening {}", proxy.target().unwrap());
    std::future::pending::<()>().await;
}

/// The yardstick: the least a user-space TCP proxy can do (tokio's `copy_bidirectional`
/// per connection, Nagle off on both legs).
async fn run_copy() {
    let upstream: Target = std::env::var(UPSTREAM_ENV).unwrap().parse().unwrap();
    let (host, port) = upstream.host_port().unwrap();
    let to: std::net::SocketAddr = format!("{host}:{port}").parse().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    println!("listening tcp://{}", listener.local_addr().unwrap());
    loop {
        let (mut client, _) = listener.accept().await.unwrap();
        tokio::spawn(async move {
            let _ = client.set_nodelay(true);
            let mut server = tokio::net::TcpStream::connect(to).await.unwrap();
            let _ = server.set_nodelay(true);
            let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
        });
    }
}

/// A child process and the URL it announced.
struct Spawned {
    child: Child,
    url: String,
}

impl Spawned {
    fn spawn(role: &str, env: &[(&str, &str)]) -> Spawned {
        let mut cmd = Command::new(std::env::current_exe().unwrap());
        cmd.env(ROLE_ENV, role).stdout(Stdio::piped()).stderr(Stdio::inherit());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let url = line.trim().strip_prefix("listening ").expect("a listening line").to_string();
        Spawned { child, url }
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).unwrap()
}

/// `per_conn` pings on each of `sessions` (all at once), recorded in microseconds.
async fn ping_round(sessions: &[Arc<Session>], per_conn: usize, record: bool) -> Histogram<u64> {
    let mut tasks = tokio::task::JoinSet::new();
    for s in sessions {
        let s = s.clone();
        tasks.spawn(async move {
            let mut h = histogram();
            for _ in 0..per_conn {
                let t = Instant::now();
                s.ping().await.expect("ping");
                if record {
                    h.saturating_record(t.elapsed().as_micros().max(1) as u64);
                }
            }
            h
        });
    }
    let mut h = histogram();
    while let Some(r) = tasks.join_next().await {
        h.add(r.unwrap()).unwrap();
    }
    h
}

fn bench() {
    let pings: usize = std::env::var("BENCH_PINGS").ok().and_then(|s| s.parse().ok()).unwrap_or(20_000);
    let server = Spawned::spawn("server", &[]);
    let plain = Spawned::spawn("proxy", &[(UPSTREAM_ENV, &server.url)]);
    let framed = Spawned::spawn("proxy", &[(UPSTREAM_ENV, &server.url), (FAULT_ENV, "drop:probability=0")]);
    let copy = Spawned::spawn("copy", &[(UPSTREAM_ENV, &server.url)]);
    let routes = [
        ("direct", server.url.clone()),
        ("copy_bidirectional yardstick", copy.url.clone()),
        ("proxy, no faults", plain.url.clone()),
        ("proxy, drop:probability=0", framed.url.clone()),
    ];
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    println!("proxy bench: client, server and proxies are separate processes on {} cores", num_cores());
    for conns in [1usize, 64] {
        let total = if conns == 1 { pings } else { pings * 16 / 5 };
        let per_round = (total / conns / ROUNDS).max(1);
        let result = rt.block_on(async {
            tokio::time::timeout(CASE_LIMIT, async {
                let opts = Arc::new(ClientOptions { request_timeout: REQUEST_TIMEOUT, ..Default::default() });
                let mut sessions = Vec::new();
                for (_, url) in &routes {
                    let target: Target = url.parse().unwrap();
                    let mut v = Vec::new();
                    for _ in 0..conns {
                        v.push(Arc::new(Session::connect(&target, opts.clone()).await.expect("connect")));
                    }
                    sessions.push(v);
                }
                let mut hists: Vec<Histogram<u64>> = routes.iter().map(|_| histogram()).collect();
                for _ in 0..ROUNDS {
                    for (i, s) in sessions.iter().enumerate() {
                        ping_round(s, (WARMUP_PINGS / conns).max(2), false).await;
                        hists[i].add(ping_round(s, per_round, true).await).unwrap();
                    }
                }
                hists
            })
            .await
        });
        let Ok(hists) = result else {
            println!("{conns} connection(s): did not finish within {CASE_LIMIT:?}");
            continue;
        };
        println!();
        println!(
            "{conns} connection(s), {} pings per route, one in flight per connection:",
            per_round * ROUNDS * conns
        );
        println!(
            "  {:<30} {:>9} {:>9} {:>9} {:>11} {:>11}",
            "route", "p50 us", "p99 us", "p99.9 us", "+p50 us", "+p99 us"
        );
        let (d50, d99) = (hists[0].value_at_quantile(0.5), hists[0].value_at_quantile(0.99));
        for ((name, _), h) in routes.iter().zip(&hists) {
            let (p50, p99) = (h.value_at_quantile(0.5), h.value_at_quantile(0.99));
            println!(
                "  {:<30} {:>9} {:>9} {:>9} {:>11} {:>11}",
                name,
                p50,
                p99,
                h.value_at_quantile(0.999),
                p50 as i64 - d50 as i64,
                p99 as i64 - d99 as i64
            );
        }
    }
}

fn num_cores() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}
