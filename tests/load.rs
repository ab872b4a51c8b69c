//! The load engine in one process against the real built-in server over real sockets:
//! the accounting identity of every model, dropped arrivals, connect phases, per-kind
//! results, and measurement fidelity (injected latency, a stalled server in an open model).

use mcpscript::load::exec::{run_local, Control};
use mcpscript::load::{Model, PhasePlan, PhaseResult, PhaseStatus, RequestTemplate, Stage};
use mcpscript::server::{self, ServerConfig};
use serde_json::json;
use std::process::{Command, Stdio};
use std::time::Duration;

/// These tests measure time and load the machine: they run one at a time so that one's load
/// cannot show up as another's latency.
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

fn plan(target: &str, model: Model) -> PhasePlan {
    PhasePlan { seed: 42, ..PhasePlan::new("test", target, model) }
}

fn echo_mix() -> Vec<RequestTemplate> {
    vec![
        RequestTemplate::new("tools/call", Some(json!({"name": "echo", "arguments": {"message": "hi"}})), 80),
        RequestTemplate::new("tools/list", None, 15),
        RequestTemplate::new("ping", None, 5),
    ]
}

fn assert_balanced(r: &PhaseResult) {
    let c = &r.counts;
    assert_eq!(c.sent, c.ok + c.error_total() + c.timeouts + c.cancelled, "accounting identity: {c:?}");
    for (k, v) in &r.per_kind {
        assert!(v.counts.balanced(), "kind {k}: {:?}", v.counts);
    }
    assert!(r.balanced());
    let tl_sent: u64 = r.timeline.iter().map(|e| e.sent).sum();
    let tl_done: u64 = r.timeline.iter().map(|e| e.ok + e.errors + e.timeouts + e.cancelled).sum();
    assert_eq!((tl_sent, tl_done), (c.sent, c.finished()), "the timeline adds up to the totals");
}

async fn builtin(latency: Option<Duration>) -> server::RunningServer {
    let mut cfg = ServerConfig::listening(&["tcp://127.0.0.1:0"]).unwrap();
    cfg.latency = latency;
    server::start(cfg).await.unwrap()
}

#[test]
fn closed_phase_balances_and_breaks_down_by_kind() {
    let _serial = serial();
    rt().block_on(async {
        let s = builtin(None).await;
        let mut p = plan(
            s.url("tcp").unwrap(),
            Model::Closed { sessions: 20, duration: Some(Duration::from_millis(1500)), iterations: None, think: None },
        );
        p.mix = echo_mix();
        p.validate().unwrap();
        let r = run_local(&p, Control::default()).await;
        assert_balanced(&r);
        assert_eq!(r.status, PhaseStatus::Completed);
        assert_eq!((r.connect.attempted, r.connect.ok), (20, 20));
        assert!(r.counts.ok > 500, "{:?}", r.counts);
        assert_eq!(r.counts.error_total() + r.counts.timeouts, 0, "{:?}", r.counts);
        assert_eq!(r.per_kind.len(), 3);
        let echo = r.per_kind["echo"].counts.sent as f64 / r.counts.sent as f64;
        assert!((0.7..0.9).contains(&echo), "echo share {echo}");
        assert!(r.latency.p50 > 0.0 && r.latency.p99 >= r.latency.p50 && r.latency.max >= r.latency.p99);
        assert!((1.4..1.7).contains(&r.duration_s), "{}", r.duration_s);
        assert!(!r.timeline.is_empty() && r.timeline[0].open_sessions == 20, "{:?}", r.timeline.first());
        s.shutdown().await;
    });
}

#[test]
fn closed_phase_stops_after_its_iterations() {
    let _serial = serial();
    rt().block_on(async {
        let s = builtin(None).await;
        let p = plan(
            s.url("tcp").unwrap(),
            Model::Closed { sessions: 7, duration: None, iterations: Some(501), think: None },
        );
        let r = run_local(&p, Control::default()).await;
        assert_balanced(&r);
        assert_eq!((r.counts.sent, r.counts.ok), (501, 501));
        s.shutdown().await;
    });
}

#[test]
fn errors_are_counted_by_kind() {
    let _serial = serial();
    rt().block_on(async {
        let s = builtin(None).await;
        let mut p = plan(
            s.url("tcp").unwrap(),
            Model::Closed { sessions: 3, duration: None, iterations: Some(300), think: None },
        );
        p.mix = vec![
            RequestTemplate::new("ping", None, 1),
            RequestTemplate::new("tools/call", Some(json!({"name": "fail", "arguments": {"code": -32042}})), 1),
            RequestTemplate { name: "nosuch".into(), ..RequestTemplate::new("no/such", None, 1) },
        ];
        let r = run_local(&p, Control::default()).await;
        assert_balanced(&r);
        assert_eq!(r.counts.sent, 300);
        assert_eq!(r.per_kind["fail"].counts.errors.get("rpc_-32042"), Some(&r.per_kind["fail"].counts.sent));
        assert_eq!(r.per_kind["nosuch"].counts.errors.get("rpc_-32601"), Some(&r.per_kind["nosuch"].counts.sent));
        assert!((r.error_rate - 2.0 / 3.0).abs() < 0.1, "{}", r.error_rate);
        s.shutdown().await;
    });
}

#[test]
fn open_phase_sends_at_the_intended_rate_and_balances() {
    let _serial = serial();
    rt().block_on(async {
        let s = builtin(None).await;
        let mut p = plan(
            s.url("tcp").unwrap(),
            Model::Open {
                sessions: 50,
                stages: vec![Stage { duration: Duration::from_secs(2), rate: 500.0 }],
                start_rate: 500.0,
                max_inflight: 1000,
                arrival_offset: 0.0,
            },
        );
        p.mix = echo_mix();
        let r = run_local(&p, Control::default()).await;
        assert_balanced(&r);
        assert_eq!(r.counts.sent + r.dropped, 1000, "every arrival is sent or dropped");
        assert_eq!(r.dropped, 0);
        assert_eq!(r.counts.ok, 1000);
        assert_eq!(r.intended_rate, Some(500.0));
        assert!((450.0..550.0).contains(&r.throughput), "{}", r.throughput);
        s.shutdown().await;
    });
}

#[test]
fn open_phase_ramps_and_drops_beyond_max_inflight() {
    let _serial = serial();
    rt().block_on(async {
        let s = builtin(Some(Duration::from_millis(200))).await;
        // 0 -> 400/s over 1 s then 400/s for 1 s: 600 arrivals; 200 ms each, so about 80
        // are in flight at 400/s and a cap of 20 drops most of them.
        let p = plan(
            s.url("tcp").unwrap(),
            Model::Open {
                sessions: 10,
                stages: vec![
                    Stage { duration: Duration::from_secs(1), rate: 400.0 },
                    Stage { duration: Duration::from_secs(1), rate: 400.0 },
                ],
                start_rate: 0.0,
                max_inflight: 20,
                arrival_offset: 0.0,
            },
        );
        let r = run_local(&p, Control::default()).await;
        assert_balanced(&r);
        assert_eq!(r.counts.sent + r.dropped, 600);
        assert!(r.dropped > 300, "dropped {}", r.dropped);
        assert!(r.timeline.iter().any(|e| e.dropped > 0));
        s.shutdown().await;
    });
}

#[test]
fn connect_phase_times_sessions_and_holds_them() {
    let _serial = serial();
    rt().block_on(async {
        let s = builtin(None).await;
        let mut p = plan(
            s.url("tcp").unwrap(),
            Model::Connect { sessions: 300, hold: Duration::from_millis(1200), ping_sample: 0 },
        );
        p.connect_rate = 1000.0;
        let r = run_local(&p, Control::default()).await;
        assert_balanced(&r);
        assert_eq!((r.counts.sent, r.counts.ok), (300, 300));
        assert_eq!((r.connect.attempted, r.connect.ok, r.connect.failed), (300, 300, 0));
        assert_eq!(r.latency.count, 300);
        // 300 at 1000/s take about 0.3 s.
        assert!((0.25..1.0).contains(&r.connect.duration_s), "{}", r.connect.duration_s);
        assert!(r.timeline.iter().any(|e| e.open_sessions == 300), "{:?}", r.timeline);
        s.shutdown().await;
    });
}

#[test]
fn connect_failures_are_counted_not_hung() {
    let _serial = serial();
    rt().block_on(async {
        // A port nobody listens on.
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let p = plan(
            &format!("tcp://127.0.0.1:{port}"),
            Model::Closed { sessions: 5, duration: Some(Duration::from_millis(200)), iterations: None, think: None },
        );
        let r = run_local(&p, Control::default()).await;
        assert_balanced(&r);
        assert_eq!((r.connect.attempted, r.connect.ok), (5, 0));
        assert_eq!(r.connect.errors.get("transport"), Some(&5));
        assert_eq!(r.counts.sent, 0);
        assert!(r.notes.iter().any(|n| n.contains("no session could be opened")), "{:?}", r.notes);
    });
}

/// A minimal newline-JSON MCP server whose injected latency is exact (a blocking thread
/// sleep, precise to tens of microseconds), unlike a tokio timer's 1 ms wheel: it pins
/// the client's measurement, not the server's timer.
async fn precise_server(delay: Duration) -> String {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("tcp://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            stream.set_nodelay(true).unwrap();
            tokio::spawn(async move {
                let (r, mut w) = stream.into_split();
                let mut lines = BufReader::new(r).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    let msg: serde_json::Value = serde_json::from_str(&line).unwrap();
                    let Some(id) = msg.get("id").cloned() else { continue };
                    let result = if msg["method"] == "initialize" {
                        json!({"protocolVersion": "2025-11-25", "capabilities": {}, "serverInfo": {"name": "precise", "version": "1"}})
                    } else {
                        let t0 = std::time::Instant::now();
                        tokio::task::spawn_blocking(move || std::thread::sleep(delay.saturating_sub(t0.elapsed())))
                            .await
                            .unwrap();
                        json!({})
                    };
                    let mut out = serde_json::to_vec(&json!({"jsonrpc": "2.0", "id": id, "result": result})).unwrap();
                    out.push(b'\n');
                    if w.write_all(&out).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    url
}

#[test]
fn injected_latency_shows_in_p50_within_a_millisecond() {
    let _serial = serial();
    rt().block_on(async {
        let fast = precise_server(Duration::ZERO).await;
        let slow = precise_server(Duration::from_millis(20)).await;
        let model =
            Model::Closed { sessions: 4, duration: Some(Duration::from_secs(1)), iterations: None, think: None };
        let base = run_local(&plan(&fast, model.clone()), Control::default()).await;
        let r = run_local(&plan(&slow, model), Control::default()).await;
        assert_balanced(&r);
        assert!(r.counts.ok > 100, "{:?}", r.counts);
        let expected = 20.0 + base.latency.p50;
        assert!(
            (r.latency.p50 - expected).abs() <= 1.0,
            "p50 {} vs 20 ms + unloaded {}",
            r.latency.p50,
            base.latency.p50
        );
    });
}

#[test]
fn builtin_server_latency_is_reported_as_the_server_delivers_it() {
    let _serial = serial();
    // The built-in server's --latency sleeps on tokio's 1 ms timer wheel, which rounds up:
    // its replies take 20-22 ms. The engine reports that, and never less than 20 ms.
    rt().block_on(async {
        let slow = builtin(Some(Duration::from_millis(20))).await;
        let model =
            Model::Closed { sessions: 4, duration: Some(Duration::from_secs(1)), iterations: None, think: None };
        let r = run_local(&plan(slow.url("tcp").unwrap(), model), Control::default()).await;
        assert_balanced(&r);
        assert!(r.latency.min >= 20.0 && r.latency.p50 < 40.0, "{:?}", r.latency);
        slow.shutdown().await;
    });
}

/// A `mcpscript serve` child on a free port; killed on drop.
struct ServeChild(std::process::Child, String);

impl ServeChild {
    fn start() -> ServeChild {
        let mut child = Command::new(env!("CARGO_BIN_EXE_mcpscript"))
            .args(["serve", "--listen", "tcp://127.0.0.1:0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        std::io::BufRead::read_line(&mut out, &mut line).unwrap();
        let url = line.trim().strip_prefix("listening ").expect("a listening line").to_string();
        ServeChild(child, url)
    }

    fn signal(&self, sig: libc::c_int) {
        // SAFETY: signalling our own child.
        unsafe { libc::kill(self.0.id() as libc::pid_t, sig) };
    }
}

impl Drop for ServeChild {
    fn drop(&mut self) {
        self.signal(libc::SIGCONT);
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn open_model_does_not_hide_a_stalled_server() {
    let _serial = serial();
    let server = ServeChild::start();
    let rt = rt();
    let p = plan(
        &server.1,
        Model::Open {
            sessions: 20,
            stages: vec![Stage { duration: Duration::from_secs(4), rate: 200.0 }],
            start_rate: 200.0,
            max_inflight: 10_000,
            arrival_offset: 0.0,
        },
    );
    let pid = server.0.id();
    // Kept fixed: the load runs 1.8 s before the stall, and the 1 s stall is what is measured.
    let stall = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(1800));
        // SAFETY: signalling our own child.
        unsafe { libc::kill(pid as libc::pid_t, libc::SIGSTOP) };
        std::thread::sleep(Duration::from_secs(1));
        unsafe { libc::kill(pid as libc::pid_t, libc::SIGCONT) };
    });
    let r = rt.block_on(run_local(&p, Control::default()));
    stall.join().unwrap();
    assert_balanced(&r);
    assert_eq!(r.counts.sent, 800, "arrivals keep their schedule while the server stalls");
    assert_eq!(r.counts.ok, 800);
    // A quarter of the requests were due during the 1 s stall: p99 and max show it.
    assert!(r.latency.max >= 900.0, "max {}", r.latency.max);
    assert!(r.latency.p99 >= 800.0, "p99 {}", r.latency.p99);
    assert!(r.latency.p50 < 50.0, "p50 {}", r.latency.p50);
    let worst = r.timeline.iter().map(|e| e.max).fold(0.0, f64::max);
    assert!(worst >= 900.0, "the stall shows in the timeline: {worst}");
}

/// TIME_WAIT sockets on either side of connections to `port` (from /proc/net/tcp), as
/// (local, remote) address pairs.
fn time_wait_on(port: u16) -> std::collections::HashSet<(String, String)> {
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default();
    let hex = format!(":{port:04X}");
    table
        .lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let ours = f.len() > 3 && f[3] == "06" && (f[1].ends_with(&hex) || f[2].ends_with(&hex));
            ours.then(|| (f[1].to_string(), f[2].to_string()))
        })
        .collect()
}

#[test]
fn sessions_close_without_leaving_time_wait() {
    let _serial = serial();
    rt().block_on(async {
        let s = builtin(None).await;
        let url = s.url("tcp").unwrap().to_string();
        let port: u16 = url.rsplit(':').next().unwrap().parse().unwrap();
        // Earlier tests' client sockets may have had this number as their own port and still
        // be in TIME_WAIT: only sockets this test leaves behind count.
        let before = time_wait_on(port);
        let mut p = plan(&url, Model::Connect { sessions: 500, hold: Duration::from_millis(100), ping_sample: 0 });
        p.connect_rate = 5000.0;
        let r = run_local(&p, Control::default()).await;
        assert_eq!(r.connect.ok, 500);
        let c = run_local(
            &plan(&url, Model::Closed { sessions: 50, duration: None, iterations: Some(500), think: None }),
            Control::default(),
        )
        .await;
        assert_eq!(c.counts.ok, 500);
        let open = Model::Open {
            sessions: 300,
            stages: vec![Stage { duration: Duration::from_millis(500), rate: 1000.0 }],
            start_rate: 1000.0,
            max_inflight: 1000,
            arrival_offset: 0.0,
        };
        let o = run_local(&plan(&url, open), Control::default()).await;
        assert_eq!(o.counts.ok, 500);
        // Kept fixed: this asserts something does NOT appear (TIME_WAIT entries), so it gives
        // the last closes time to land; polling "until none" would pass before they do.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let left: Vec<_> = time_wait_on(port).difference(&before).cloned().collect();
        assert!(left.is_empty(), "closing with SO_LINGER 0 leaves no TIME_WAIT on either side: {left:?}");
        s.shutdown().await;
    });
}

#[test]
fn every_model_runs_over_http_and_websocket_sessions_too() {
    let _serial = serial();
    rt().block_on(async {
        let s = server::start(ServerConfig::listening(&["http://127.0.0.1:0/mcp", "ws://127.0.0.1:0/ws"]).unwrap())
            .await
            .unwrap();
        for url in [s.url("http").unwrap().to_string(), s.url("ws").unwrap().to_string()] {
            let mut closed =
                plan(&url, Model::Closed { sessions: 5, duration: None, iterations: Some(200), think: None });
            closed.mix = echo_mix();
            let c = run_local(&closed, Control::default()).await;
            assert_balanced(&c);
            assert_eq!((c.counts.sent, c.counts.ok), (200, 200), "{url}: {:?}", c.counts);
            let o = run_local(
                &plan(
                    &url,
                    Model::Open {
                        sessions: 5,
                        stages: vec![Stage { duration: Duration::from_millis(500), rate: 200.0 }],
                        start_rate: 200.0,
                        max_inflight: 1000,
                        arrival_offset: 0.0,
                    },
                ),
                Control::default(),
            )
            .await;
            assert_balanced(&o);
            assert_eq!((o.counts.sent, o.counts.ok), (100, 100), "{url}: {:?}", o.counts);
            let k = run_local(
                &plan(&url, Model::Connect { sessions: 20, hold: Duration::from_millis(100), ping_sample: 0 }),
                Control::default(),
            )
            .await;
            assert_eq!(k.connect.ok, 20, "{url}: {:?}", k.connect);
        }
        s.shutdown().await;
    });
}
