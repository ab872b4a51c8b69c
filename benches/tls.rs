//! What TLS costs the client: connect latency of `load::connect` phases over http:// and
//! https:// in the same run, and the client's memory per held https:// session.
//!
//! ```text
//! cargo bench --bench tls                              # 1,000 connects, 10,000 held
//! BENCH_CONNECTS=2000 BENCH_HELD=5000 cargo bench --bench tls
//! ```
//!
//! The server is `mcpscript serve --workers 2` (a child process, with its worker processes)
//! listening on http:// and https:// with a certificate made here by rcgen (a test CA and
//! a leaf for 127.0.0.1), so client and server share the machine's cores as in real use.
//!
//! 1. Connect latency: `mcpscript run` of a script with two `load::connect` phases of
//!    BENCH_CONNECTS sessions each at 500 sessions/s, http:// then https:// (`--ca-cert`
//!    the test CA); each session is TCP connect (+ TLS handshake) + `initialize` +
//!    `notifications/initialized`.
//!    Printed: p50 and p99 of connect latency per phase, from results.json.
//! 2. Memory: a child process (this binary again, one per transport, so neither reuses
//!    the other's freed memory) opens BENCH_HELD Streamable HTTP sessions (full client,
//!    `client::Session`, no GET stream) over http:// or https://, 200 connecting at a
//!    time, holds them (each answers a ping) and reads its resident memory from
//!    /proc/self/status before and after. Printed: the increase per held session.

use mcpscript::client::{ClientOptions, Session, Target};
use mcpscript::net::tls::{ClientTls, TlsSettings};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use std::io::BufRead;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Sessions connecting at once while the held sessions are opened.
const CONNECT_CONCURRENCY: usize = 200;

/// Set to `hold` in the child process that holds the sessions.
const ROLE: &str = "BENCH_ROLE";

fn main() {
    if std::env::var(ROLE).as_deref() == Ok("hold") {
        hold_role();
        return;
    }
    let connects: u64 = env_or("BENCH_CONNECTS", 1000);
    let held: usize = env_or("BENCH_HELD", 10_000);
    mcpscript::util::proc::raise_nofile_limit();
    let dir = tempfile::tempdir().expect("a temporary folder");
    make_pki(dir.path());
    let ca = dir.path().join("ca.pem");
    let server = Server::spawn(Command::new(env!("CARGO_BIN_EXE_mcpscript")).args([
        "serve",
        "--workers",
        "2",
        "--listen",
        "http://127.0.0.1:0/mcp",
        "--listen",
        "https://127.0.0.1:0/mcp",
        "--tls-cert",
        dir.path().join("server.pem").to_str().unwrap(),
        "--tls-key",
        dir.path().join("server.key").to_str().unwrap(),
    ]));
    let (http, https) = (server.url("http://"), server.url("https://"));
    println!("server: mcpscript serve --workers 2 on {http} and {https} (load average now {})", loadavg());

    println!("\n1. connect latency, load::connect of {connects} sessions (connect + initialize), same run:");
    println!("{:<10} {:>8} {:>10} {:>10} {:>10}", "phase", "ok", "p50 ms", "p99 ms", "mean ms");
    for (name, ok, p50, p99, mean) in connect_phases(dir.path(), &http, &https, &ca, connects) {
        println!("{name:<10} {ok:>8} {p50:>10.2} {p99:>10.2} {mean:>10.2}");
    }

    println!("\n2. client memory per held session ({held} sessions, Streamable HTTP, full client):");
    for url in [&http, &https] {
        // A fresh process per transport: memory freed by one would be reused by the next.
        let out = Command::new(std::env::current_exe().unwrap())
            .env(ROLE, "hold")
            .env("BENCH_URL", url)
            .env("BENCH_CA", &ca)
            .env("BENCH_HELD", held.to_string())
            .stderr(Stdio::inherit())
            .output()
            .expect("run the holding process");
        let text = String::from_utf8_lossy(&out.stdout);
        let mut words = text.split_whitespace().map(|w| w.parse::<f64>().unwrap_or(f64::NAN));
        let (opened, per_session, took) =
            (words.next().unwrap_or(0.0) as usize, words.next().unwrap_or(f64::NAN), words.next().unwrap_or(f64::NAN));
        println!(
            "{:<8} {opened:>6} sessions held, {:>7.1} KiB client RSS per session, opened in {:.1} s",
            if url.starts_with("https") { "https://" } else { "http://" },
            per_session / 1024.0,
            took
        );
    }
}

/// The holding process: opens BENCH_HELD sessions to BENCH_URL and prints "opened
/// bytes-per-session seconds".
fn hold_role() {
    mcpscript::util::proc::raise_nofile_limit();
    let url = std::env::var("BENCH_URL").expect("BENCH_URL");
    let ca = std::env::var("BENCH_CA").expect("BENCH_CA");
    let held: usize = env_or("BENCH_HELD", 10_000);
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let tls = ClientTls::new(TlsSettings { ca_cert: Some(ca.into()), insecure: false }).expect("the test CA");
    let (opened, per_session, took) = rt.block_on(hold_sessions(&url, tls, held));
    println!("{opened} {per_session} {}", took.as_secs_f64());
}

fn env_or<T: std::str::FromStr>(key: &str, default: T) -> T {
    std::env::var(key).ok().and_then(|s| s.parse().ok()).unwrap_or(default)
}

/// A test CA (`ca.pem`) and a leaf it signs for 127.0.0.1 (`server.pem`, `server.key`).
fn make_pki(dir: &Path) {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(DnType::CommonName, "mcpscript bench CA");
    let ca_key = KeyPair::generate().unwrap();
    std::fs::write(dir.join("ca.pem"), ca_params.self_signed(&ca_key).unwrap().pem()).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap().signed_by(&key, &issuer).unwrap();
    std::fs::write(dir.join("server.pem"), leaf.pem()).unwrap();
    std::fs::write(dir.join("server.key"), key.serialize_pem()).unwrap();
}

/// Runs the two `load::connect` phases through `mcpscript run`; per phase: name, sessions
/// established, p50, p99 and mean connect latency (ms).
fn connect_phases(dir: &Path, http: &str, https: &str, ca: &Path, n: u64) -> Vec<(String, u64, f64, f64, f64)> {
    let script = dir.join("connect.rhai");
    std::fs::write(
        &script,
        format!(
            r#"
for t in [["http", "{http}"], ["https", "{https}"]] {{
    let r = load::connect(#{{name: t[0], target: t[1], sessions: {n}, rate: 500, hold: "200ms"}});
    check(r.connect.ok == {n}, `every ${{t[0]}} session is established`, `${{r.connect.ok}}: ${{r.connect.errors}}`);
}}
"#
        ),
    )
    .unwrap();
    let out_dir = dir.join("out");
    let out = Command::new(env!("CARGO_BIN_EXE_mcpscript"))
        .args(["run", script.to_str().unwrap(), "--target", http, "--ca-cert", ca.to_str().unwrap()])
        .args(["--out", out_dir.to_str().unwrap(), "-q", "--format", "json"])
        .env("MCPSCRIPT_NO_HISTORY", "1")
        .stdin(Stdio::null())
        .output()
        .expect("run mcpscript");
    if !out.status.success() {
        eprintln!("mcpscript run failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let results: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out_dir.join("results.json")).expect("results.json")).unwrap();
    let phases = results["scenarios"][0]["phases"].as_array().cloned().unwrap_or_default();
    phases
        .iter()
        .map(|p| {
            let c = &p["connect"];
            let l = &c["latency"];
            let f = |v: &serde_json::Value| v.as_f64().unwrap_or(f64::NAN);
            (
                p["name"].as_str().unwrap_or("?").to_string(),
                c["ok"].as_u64().unwrap_or(0),
                f(&l["p50"]),
                f(&l["p99"]),
                f(&l["mean"]),
            )
        })
        .collect()
}

/// Opens `n` sessions to `url` and holds them: how many opened, the resident memory they
/// added per session (bytes), and how long opening took. Closes them before returning.
async fn hold_sessions(url: &str, tls: ClientTls, n: usize) -> (usize, f64, Duration) {
    use futures_util::StreamExt;
    let target: Target = url.parse().unwrap();
    let opts = Arc::new(ClientOptions {
        tls,
        get_stream: false,
        connect_timeout: Duration::from_secs(30),
        ..ClientOptions::default()
    });
    // One session first, so one-off set-up (the TLS configuration, platform roots) is
    // not counted per session.
    let first = Session::connect(&target, opts.clone()).await.expect("a first session");
    let before = rss_bytes();
    let started = Instant::now();
    let sessions: Vec<Session> = futures_util::stream::iter(0..n)
        .map(|_| Session::connect(&target, opts.clone()))
        .buffer_unordered(CONNECT_CONCURRENCY)
        .filter_map(|r| async move {
            if let Err(e) = &r {
                eprintln!("connect failed: {e}");
            }
            r.ok()
        })
        .collect()
        .await;
    let took = started.elapsed();
    // Every session answers a ping while held: they are live, not half-open.
    let pinged = futures_util::stream::iter(sessions.iter())
        .map(|s| s.request("ping", None))
        .buffer_unordered(CONNECT_CONCURRENCY)
        .filter(|r| std::future::ready(r.is_ok()))
        .count()
        .await;
    let after = rss_bytes();
    if pinged != sessions.len() {
        eprintln!("only {pinged} of {} held sessions answered ping", sessions.len());
    }
    let opened = sessions.len();
    futures_util::stream::iter(sessions).for_each_concurrent(CONNECT_CONCURRENCY, Session::close).await;
    first.close().await;
    (opened, after.saturating_sub(before) as f64 / opened.max(1) as f64, took)
}

/// This process's resident memory (VmRSS), in bytes.
fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

/// The server child process (its workers die with it): its `listening URL` lines.
struct Server {
    child: Child,
    urls: Vec<String>,
}

impl Server {
    fn spawn(cmd: &mut Command) -> Server {
        let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::null()).spawn().expect("start the server");
        let out = std::io::BufReader::new(child.stdout.take().unwrap());
        let mut urls = vec![];
        for line in out.lines() {
            let Ok(line) = line else { break };
            if let Some(u) = line.strip_prefix("listening ") {
                urls.push(u.trim().to_string());
            }
            if urls.len() == 2 {
                break;
            }
        }
        Server { child, urls }
    }

    fn url(&self, prefix: &str) -> String {
        self.urls.iter().find(|u| u.starts_with(prefix)).cloned().expect("server url")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
