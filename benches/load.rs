//! Where a load session's memory goes, in one client process, against the built-in server
//! in a child process (`mcpscript serve --workers K`).
//!
//! ```text
//! cargo bench --bench load                 # 10,000 sessions
//! cargo bench --bench load -- 19000        # as many as one process's file budget allows
//! ```
//!
//! Prints the client's resident memory per session after each step: connect + initialize
//! (lean `LineConn`s, no reader task: what a held or closed-model session costs), after
//! `malloc_trim` (what the allocator kept of the handshakes' transient memory), and after
//! turning each into an open-model session (a reader task and multiplexing state). The full-scale figures (100,000 sessions over
//! worker processes, sustained 50,000 req/s) come from `scripts/examples/load_*.rhai`; see
//! `scripts/examples/README.md`.

use mcpscript::load::mux::Hooks;
use mcpscript::load::plan::{Model, PhasePlan};
use mcpscript::load::pool::{establish, Connector, Exclusive};
use mcpscript::load::recorder::PhaseRecorder;
use std::io::BufRead;
use std::process::{Command, Stdio};
use std::sync::atomic::AtomicI64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

fn rss() -> f64 {
    mcpscript::util::proc::self_rss_bytes().unwrap_or(0) as f64
}

fn main() {
    let n: u64 = std::env::args().skip(1).find_map(|a| a.parse().ok()).unwrap_or(10_000);
    mcpscript::util::proc::raise_nofile_limit();
    let workers = ((n as f64 * 1.15 / 19_000.0).ceil() as u32).max(1);
    let mut server = Command::new(env!("CARGO_BIN_EXE_mcpscript"))
        .args(["serve", "--listen", "tcp://127.0.0.1:0", "--workers", &workers.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start mcpscript serve");
    let mut line = String::new();
    std::io::BufReader::new(server.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let url = line.trim().strip_prefix("listening ").expect("listening line").to_string();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    rt.block_on(async {
        let ten = Duration::from_secs(10);
        let model = Model::Connect { sessions: n, hold: Duration::ZERO, ping_sample: 0 };
        let plan =
            PhasePlan { request_timeout: ten, connect_timeout: ten, seed: 1, ..PhasePlan::new("mem", &url, model) };
        let connector = Arc::new(Connector::new(&plan).await.unwrap());
        let rec = PhaseRecorder::new(1, Arc::new(AtomicI64::new(0)));
        let (_keep, stop) = tokio::sync::watch::channel(false);
        let base = rss();
        let t0 = std::time::Instant::now();
        let (conns, _) = establish(&connector, 0, n, 0.0, &rec, 0, &stop, &Arc::new(Mutex::new(None))).await;
        let took = t0.elapsed();
        let ok: Vec<Exclusive> = conns.into_iter().flatten().collect();
        let count = ok.len() as f64;
        let after_connect = rss();
        // SAFETY: malloc_trim only returns free memory to the system.
        unsafe { libc::malloc_trim(0) };
        let trimmed = rss();
        // What an open-model session adds: a reader task and the multiplexing state.
        let hooks = Hooks::new(PhaseRecorder::new(1, Arc::new(AtomicI64::new(0))), Duration::from_secs(10));
        let shared: Vec<_> = ok.into_iter().map(|c| c.into_open(&hooks)).collect();
        tokio::time::sleep(Duration::from_millis(200)).await;
        let after_shared = rss();
        unsafe { libc::malloc_trim(0) };
        let shared_trimmed = rss();
        println!("{} sessions to {url} in {:.2}s (server: {workers} processes)", shared.len(), took.as_secs_f64());
        println!("baseline RSS                         {:>8.1} MB", base / 1e6);
        let per = |x: f64| (x - base) / count;
        println!(
            "after connect + initialize           {:>8.1} MB  {:>6.0} B/session",
            after_connect / 1e6,
            per(after_connect)
        );
        println!("  after malloc_trim                  {:>8.1} MB  {:>6.0} B/session", trimmed / 1e6, per(trimmed));
        println!(
            "as open-model sessions (reader task) {:>8.1} MB  {:>6.0} B/session",
            after_shared / 1e6,
            per(after_shared)
        );
        println!(
            "  after malloc_trim                  {:>8.1} MB  {:>6.0} B/session",
            shared_trimmed / 1e6,
            per(shared_trimmed)
        );
        for s in shared {
            s.close().await;
        }
    });
    let _ = server.kill();
    let _ = server.wait();
}
