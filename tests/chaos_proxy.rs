//! The fault-injecting proxy, end to end: the real built-in server behind the real proxy,
//! driven by the real client. Each test compares what the proxy says it injected with what
//! the client observed. Every load loop is bounded in count and time; only 127.0.0.1.

mod common;

use common::wait_until_async;
use mcpscript::chaos::{ChaosError, Fault, Framing, Proxy, ProxyOptions};
use mcpscript::client::{ClientError, ClientOptions, Session, Target};
use mcpscript::server::{self, RunningServer, ServerConfig};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Timing-sensitive tests and load tests take turns, so one's load does not skew another's
/// latencies on a small machine.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const ANY: &str = "127.0.0.1:0";

async fn server(urls: &[&str]) -> RunningServer {
    server::start(ServerConfig::listening(urls).unwrap()).await.expect("server starts")
}

async fn tcp_server() -> (RunningServer, Target) {
    let s = server(&["tcp://127.0.0.1:0"]).await;
    let t = s.url("tcp").unwrap().parse().unwrap();
    (s, t)
}

fn opts(request_timeout: Duration) -> Arc<ClientOptions> {
    Arc::new(ClientOptions { request_timeout, connect_timeout: Duration::from_secs(5), ..Default::default() })
}

async fn connect(target: &Target, request_timeout: Duration) -> Session {
    Session::connect(target, opts(request_timeout)).await.expect("session connects")
}

fn echo(msg: &str) -> Value {
    json!({"message": msg})
}

fn text(v: &Value) -> &str {
    v["content"][0]["text"].as_str().unwrap_or_default()
}

fn p50(v: &mut [Duration]) -> Duration {
    v.sort_unstable();
    v[v.len() / 2]
}

/// `n` sessions, connected one after the other (so proxy connection i is session i).
async fn sessions(target: &Target, n: usize, timeout: Duration) -> Vec<Arc<Session>> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(Arc::new(connect(target, timeout).await));
    }
    out
}

/// What the client saw in one load run.
#[derive(Debug, Default)]
struct Seen {
    ok: u64,
    timeouts: u64,
    protocol: u64,
    closed: u64,
    /// Replies received by sessions that then saw `Closed`.
    ok_before_close: u64,
    other: Vec<String>,
    /// Replies whose text was not the echo of what that request sent.
    mismatched: Vec<String>,
}

/// Each session sends `per_session` echo requests back to back (each with its own text),
/// stopping at the first `Closed`; all sessions run at once.
async fn echo_load(sessions: &[Arc<Session>], per_session: usize) -> Seen {
    let mut tasks = tokio::task::JoinSet::new();
    for (si, s) in sessions.iter().enumerate() {
        let s = s.clone();
        tasks.spawn(async move {
            let mut seen = Seen::default();
            for r in 0..per_session {
                let msg = format!("s{si}-r{r}-{}", "x".repeat(r % 7));
                match s.call_tool("echo", echo(&msg)).await {
                    Ok(v) if text(&v) == format!("Echo: {msg}") => seen.ok += 1,
                    Ok(v) => seen.mismatched.push(format!("sent {msg}, got {v}")),
                    Err(ClientError::Timeout { .. }) => seen.timeouts += 1,
                    Err(ClientError::Protocol { .. }) => seen.protocol += 1,
                    Err(ClientError::Closed { .. }) => {
                        seen.closed += 1;
                        seen.ok_before_close = seen.ok;
                        break;
                    }
                    Err(e) => seen.other.push(e.to_string()),
                }
            }
            seen
        });
    }
    let mut total = Seen::default();
    while let Some(r) = tasks.join_next().await {
        let s = r.unwrap();
        total.ok += s.ok;
        total.timeouts += s.timeouts;
        total.protocol += s.protocol;
        total.closed += s.closed;
        total.ok_before_close += s.ok_before_close;
        total.other.extend(s.other);
        total.mismatched.extend(s.mismatched);
    }
    total
}

/// The 99% interval of a Binomial(n, p) count (normal approximation, n p (1 - p) = 95 here).
fn binomial_99(n: u64, p: f64) -> (f64, f64) {
    let mean = n as f64 * p;
    let sd = (n as f64 * p * (1.0 - p)).sqrt();
    (mean - 2.576 * sd, mean + 2.576 * sd)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latency_of_100ms_moves_the_p50_by_100ms() {
    let _turn = SERIAL.lock().await;
    let (_server, direct) = tcp_server().await;
    let proxy = Proxy::start(&direct, ANY.parse().unwrap(), 1).await.unwrap();
    let through = proxy.target_for(&direct).unwrap();
    assert_eq!(through.to_string(), format!("tcp://127.0.0.1:{}", proxy.addr().port()));

    // 200 pings each way: 10 sessions of 20 at once (the latency is per message, so
    // concurrency does not change it, and the test takes 2 s instead of 20). The sessions
    // start 10 ms apart so their replies do not arrive in bursts that queue behind each
    // other in this one small process.
    async fn pings(target: &Target) -> Vec<Duration> {
        let all = sessions(target, 10, Duration::from_secs(5)).await;
        let mut tasks = tokio::task::JoinSet::new();
        for (i, s) in all.into_iter().enumerate() {
            tasks.spawn(async move {
                // Kept fixed: pacing (staggered starts), not a wait for a condition.
                tokio::time::sleep(Duration::from_millis(10 * i as u64)).await;
                let mut v = Vec::new();
                for _ in 0..20 {
                    let t = Instant::now();
                    s.ping().await.unwrap();
                    v.push(t.elapsed());
                }
                v
            });
        }
        let mut v = Vec::new();
        while let Some(r) = tasks.join_next().await {
            v.extend(r.unwrap());
        }
        v
    }
    let base = p50(&mut pings(&direct).await);
    proxy.add_fault(Fault::latency(Duration::from_millis(100), Duration::ZERO)).unwrap();
    let mut slow = pings(&through).await;
    assert_eq!(slow.len(), 200);
    let moved = p50(&mut slow) - base;
    eprintln!("direct p50 {base:?}, through the proxy with 100ms latency: p50 moved by {moved:?}");
    assert!(
        moved >= Duration::from_millis(98) && moved <= Duration::from_millis(102),
        "p50 moved by {moved:?}, expected 100ms ± 2ms"
    );
    assert!(proxy.stats().chunks_delayed >= 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_5_percent_of_replies_gives_that_many_timeouts_repeatably() {
    let _turn = SERIAL.lock().await;
    let (_server, direct) = tcp_server().await;
    let timeout = Duration::from_millis(300);
    let mut dropped = vec![];
    for _run in 0..2 {
        let proxy = Proxy::start(&direct, ANY.parse().unwrap(), 42).await.unwrap();
        let through = proxy.target_for(&direct).unwrap();
        // Connect first, then drop: the handshake is not what is measured.
        let all = sessions(&through, 20, timeout).await;
        proxy.add_fault(Fault::drop(0.05)).unwrap();
        let seen = echo_load(&all, 100).await;
        // A reply that was merely slow (a loaded machine) arrives after its timeout and is
        // counted by the client as unmatched: wait (up to 5 s) for the stragglers to arrive.
        let late = || all.iter().map(|s| s.dispatcher().unmatched.load(Ordering::Relaxed)).sum::<u64>();
        wait_until_async(Duration::from_secs(5), "late replies", || {
            seen.timeouts == proxy.stats().messages_dropped + late()
        })
        .await;
        let late = late();
        let stats = proxy.stats();
        assert!(seen.other.is_empty() && seen.mismatched.is_empty(), "{seen:?}");
        assert_eq!(seen.ok + seen.timeouts, 2000);
        assert_eq!(stats.messages_seen, 2000);
        assert_eq!(seen.timeouts, stats.messages_dropped + late, "client timeouts vs the proxy's dropped count");
        assert!(late <= 5, "{late} replies slower than {timeout:?}: the machine is too busy for this test");
        let (lo, hi) = binomial_99(2000, 0.05);
        let n = stats.messages_dropped as f64;
        assert!(n >= lo && n <= hi, "{n} dropped, outside the 99% interval [{lo:.0}, {hi:.0}]");
        eprintln!(
            "drop 5%: {} of 2000 replies dropped, {} client timeouts, {late} late",
            stats.messages_dropped, seen.timeouts
        );
        dropped.push(stats.messages_dropped);
    }
    assert_eq!(dropped[0], dropped[1], "the same seed drops the same messages");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupted_replies_are_protocol_errors_never_mismatched_replies() {
    let _turn = SERIAL.lock().await;
    let (_server, direct) = tcp_server().await;
    let proxy = Proxy::start(&direct, ANY.parse().unwrap(), 7).await.unwrap();
    let through = proxy.target_for(&direct).unwrap();
    let all = sessions(&through, 20, Duration::from_secs(5)).await;
    proxy.add_fault(Fault::corrupt(0.02)).unwrap();
    let seen = echo_load(&all, 100).await;
    let stats = proxy.stats();
    assert!(seen.mismatched.is_empty(), "replies matched to the wrong request: {:?}", seen.mismatched);
    assert!(seen.other.is_empty() && seen.timeouts == 0 && seen.closed == 0, "{seen:?}");
    assert_eq!(seen.ok + seen.protocol, 2000);
    assert_eq!(stats.messages_corrupted, seen.protocol, "the proxy's corrupted count vs client protocol errors");
    eprintln!(
        "corrupt 2%: {} of 2000 corrupted, {} protocol errors, {} ok",
        stats.messages_corrupted, seen.protocol, seen.ok
    );
    let (lo, hi) = binomial_99(2000, 0.02);
    assert!((lo..=hi).contains(&(seen.protocol as f64)), "{} corrupted", seen.protocol);
    // The sessions are still usable afterwards.
    proxy.clear();
    assert_eq!(text(&all[0].call_tool("echo", echo("after")).await.unwrap()), "Echo: after");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncated_and_duplicated_replies_are_counted_and_harmless() {
    let _turn = SERIAL.lock().await;
    let (_server, direct) = tcp_server().await;
    let proxy = Proxy::start(&direct, ANY.parse().unwrap(), 11).await.unwrap();
    let through = proxy.target_for(&direct).unwrap();
    let all = sessions(&through, 10, Duration::from_secs(5)).await;
    let id = proxy.add_fault(Fault::truncate(0.03)).unwrap();
    let seen = echo_load(&all, 100).await;
    assert!(seen.mismatched.is_empty() && seen.other.is_empty() && seen.timeouts == 0, "{seen:?}");
    assert!(seen.protocol > 0);
    assert_eq!(proxy.stats().messages_truncated, seen.protocol);
    proxy.remove_fault(id).unwrap();

    // A duplicate arrives after its request was answered: the client counts it as
    // unmatched and every request still gets its own reply.
    proxy.add_fault(Fault::duplicate(0.03)).unwrap();
    let seen = echo_load(&all, 100).await;
    assert_eq!(seen.ok, 1000, "{seen:?}");
    let duplicated = proxy.stats().messages_duplicated;
    let unmatched: u64 = all.iter().map(|s| s.dispatcher().unmatched.load(Ordering::Relaxed)).sum();
    assert!(duplicated > 0);
    assert_eq!(unmatched, duplicated, "every duplicate reached the client as an unmatched reply");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_connections_are_seen_as_closed_and_counted_once() {
    let _turn = SERIAL.lock().await;
    let (_server, direct) = tcp_server().await;
    let proxy = Proxy::start(&direct, ANY.parse().unwrap(), 5).await.unwrap();
    let through = proxy.target_for(&direct).unwrap();
    // After 3..=10 replies (the initialize reply is the first), a quarter of connections close.
    proxy.add_fault(Fault::drop_connection(0.25, 3, 10)).unwrap();
    let all = sessions(&through, 40, Duration::from_secs(5)).await;
    let seen = echo_load(&all, 20).await;
    let stats = proxy.stats();
    assert!(seen.other.is_empty() && seen.mismatched.is_empty() && seen.timeouts == 0, "{seen:?}");
    assert!(seen.closed > 0 && seen.closed < 40, "{seen:?}");
    assert_eq!(stats.connections_dropped, seen.closed, "the proxy's dropped connections vs sessions that saw Closed");
    eprintln!("drop_connection 25%: {} of 40 dropped, {} sessions saw Closed", stats.connections_dropped, seen.closed);
    // On the dropped connections, every reply the proxy let through (the initialize reply,
    // then echoes) reached its request, and nothing was counted twice.
    assert_eq!(stats.messages_seen, seen.closed + seen.ok_before_close);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_added_changed_and_removed_under_traffic_take_effect() {
    let _turn = SERIAL.lock().await;
    let (_server, direct) = tcp_server().await;
    let proxy = Proxy::start(&direct, ANY.parse().unwrap(), 3).await.unwrap();
    let through = proxy.target_for(&direct).unwrap();
    let s = connect(&through, Duration::from_millis(300)).await;
    async fn median_ping(s: &Session) -> Duration {
        let mut v = Vec::new();
        for _ in 0..5 {
            let t = Instant::now();
            s.ping().await.unwrap();
            v.push(t.elapsed());
        }
        p50(&mut v)
    }
    assert!(median_ping(&s).await < Duration::from_millis(10));
    let id = proxy.add_fault(Fault::latency(Duration::from_millis(30), Duration::ZERO)).unwrap();
    let d = median_ping(&s).await;
    assert!(d >= Duration::from_millis(30) && d < Duration::from_millis(45), "{d:?}");
    proxy.update_fault(id, Fault::latency(Duration::from_millis(60), Duration::ZERO).both()).unwrap();
    let d = median_ping(&s).await;
    // At most 1.5 times the injected latency, as for the one-way 30 ms above.
    assert!(d >= Duration::from_millis(120) && d < Duration::from_millis(180), "both ways: {d:?}");
    proxy.remove_fault(id).unwrap();
    assert!(median_ping(&s).await < Duration::from_millis(10));

    // A black hole on an idle connection: the next request times out; once removed, what
    // was held flows again (the late reply is unmatched) and new requests succeed.
    let hole = proxy.add_fault(Fault::timeout(Duration::ZERO)).unwrap();
    // Kept fixed: nothing outside shows when the idle connection's pump has picked up the
    // new fault (it is counted only once traffic meets it); this gives it a moment to.
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(matches!(s.ping().await, Err(ClientError::Timeout { .. })));
    assert_eq!(proxy.stats().connections_blackholed, 1);
    proxy.remove_fault(hole).unwrap();
    s.ping().await.unwrap();

    // reset_peer added while the connection idles resets it without any traffic.
    proxy.add_fault(Fault::reset_peer(Duration::from_millis(50))).unwrap();
    assert!(
        wait_until_async(Duration::from_secs(5), "the reset", || {
            proxy.stats().connections_reset == 1 && s.dispatcher().is_closed()
        })
        .await,
        "reset_peer did not reset the idle connection"
    );
    assert!(matches!(s.ping().await, Err(ClientError::Closed { .. })));
    assert_eq!(proxy.stats().connections_reset, 1);
    proxy.clear();
    let again = connect(&through, Duration::from_secs(1)).await;
    again.ping().await.unwrap();
    assert!(proxy.faults().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_level_faults_do_what_toxiproxy_says() {
    let _turn = SERIAL.lock().await;
    let (_server, direct) = tcp_server().await;
    async fn big(s: &Session) -> Result<usize, ClientError> {
        s.call_tool("payload", json!({"size": 50_000})).await.map(|v| text(&v).len())
    }

    // bandwidth: 50 KB at 100 KB/s takes about half a second; the bytes arrive intact.
    let proxy = Proxy::start(&direct, ANY.parse().unwrap(), 1).await.unwrap();
    let s = connect(&proxy.target_for(&direct).unwrap(), Duration::from_secs(5)).await;
    proxy.add_fault(Fault::bandwidth(100)).unwrap();
    let t = Instant::now();
    assert_eq!(big(&s).await.unwrap(), 50_000);
    let took = t.elapsed();
    assert!(took >= Duration::from_millis(450) && took < Duration::from_millis(900), "{took:?}");
    proxy.clear();

    // slicer and loss: small slices, segments held back; order and content intact.
    proxy.add_fault(Fault::slicer(100, 50, Duration::from_micros(100))).unwrap();
    proxy.add_fault(Fault::loss(0.02)).unwrap();
    for _ in 0..3 {
        assert_eq!(big(&s).await.unwrap(), 50_000);
    }
    assert!(proxy.stats().slices > 1000 && proxy.stats().segments_held_back > 0, "{}", proxy.stats());
    proxy.clear();

    // limit_data: the connection closes once its byte budget is spent.
    proxy.add_fault(Fault::limit_data(10_000)).unwrap();
    // The cut-off reply is a protocol error (or the close wins the race).
    assert!(matches!(big(&s).await, Err(ClientError::Closed { .. } | ClientError::Protocol { .. })));
    assert_eq!(proxy.stats().connections_limited, 1);
    proxy.clear();

    // toxicity 0 affects no connection; slow_close delays the close of the other side.
    proxy.add_fault(Fault::latency(Duration::from_secs(1), Duration::ZERO).toxicity(0.0)).unwrap();
    let s = connect(&proxy.target_for(&direct).unwrap(), Duration::from_secs(5)).await;
    let t = Instant::now();
    s.ping().await.unwrap();
    assert!(t.elapsed() < Duration::from_millis(100));
    proxy.add_fault(Fault::slow_close(Duration::from_millis(300)).upstream()).unwrap();
    s.ping().await.unwrap();
    // The server sees our close 300 ms late, so its own close reaches us no sooner.
    let mut raw = tokio::net::TcpStream::connect(proxy.addr()).await.unwrap();
    let t = Instant::now();
    raw.shutdown().await.unwrap();
    let mut rest = Vec::new();
    raw.read_to_end(&mut rest).await.unwrap();
    let took = t.elapsed();
    assert!(took >= Duration::from_millis(300) && took < Duration::from_millis(600), "{took:?}");
    assert_eq!(proxy.stats().connections_slow_closed, 1);
    assert_eq!(proxy.shutdown().await.connections_active, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn big_messages_pass_intact_on_the_fast_and_the_message_path() {
    let _turn = SERIAL.lock().await;
    let (_server, direct) = tcp_server().await;
    let proxy = Proxy::start(&direct, ANY.parse().unwrap(), 2).await.unwrap();
    let all = sessions(&proxy.target_for(&direct).unwrap(), 4, Duration::from_secs(10)).await;
    for message_path in [false, true] {
        if message_path {
            // Assembles every reply as one message; never fires.
            proxy.add_fault(Fault::drop(0.0)).unwrap();
        }
        let mut tasks = tokio::task::JoinSet::new();
        for (i, s) in all.iter().enumerate() {
            let s = s.clone();
            tasks.spawn(async move {
                let size = 3_000_000 + i * 1000;
                let v = s.call_tool("payload", json!({"size": size})).await.unwrap();
                assert_eq!(text(&v).len(), size);
                assert_eq!(text(&s.call_tool("echo", echo("small")).await.unwrap()), "Echo: small");
            });
        }
        while let Some(r) = tasks.join_next().await {
            r.unwrap();
        }
    }
    assert_eq!(proxy.stats().messages_seen, 8);
    assert!(proxy.stats().bytes_downstream > 24_000_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_ws_and_legacy_sse_carry_message_faults() {
    let _turn = SERIAL.lock().await;
    let srv = server(&["http://127.0.0.1:0/mcp"]).await;
    let http = srv.url("http").unwrap().to_string();
    let hostport = http.trim_start_matches("http://").trim_end_matches("/mcp").to_string();
    for url in
        [http.clone(), format!("{http}?sse=1"), format!("ws://{hostport}/mcp"), format!("sse+http://{hostport}/sse")]
    {
        let direct: Target = url.parse().unwrap();
        let proxy = Proxy::start(&direct, ANY.parse().unwrap(), 9).await.unwrap();
        assert_eq!(proxy.framing(), Framing::Http);
        let through = proxy.target().unwrap();
        assert_eq!(through.to_string(), url.replace(&hostport, &proxy.addr().to_string()));
        let all = sessions(&through, 4, Duration::from_secs(5)).await;
        proxy.add_fault(Fault::corrupt(0.05)).unwrap();
        let seen = echo_load(&all, 100).await;
        let stats = proxy.stats();
        assert!(seen.mismatched.is_empty() && seen.other.is_empty() && seen.timeouts == 0, "{url}: {seen:?}");
        assert_eq!(seen.ok + seen.protocol, 400, "{url}: {seen:?}");
        assert!(seen.protocol > 0, "{url}: nothing corrupted");
        assert_eq!(stats.messages_corrupted, seen.protocol, "{url}");
        // Duplicated requests reach the server twice; the client still sees one answer each.
        proxy.clear();
        proxy.add_fault(Fault::duplicate(0.2).upstream()).unwrap();
        let seen = echo_load(&all, 25).await;
        assert_eq!(seen.ok, 100, "{url}: {seen:?}");
        assert!(proxy.stats().messages_duplicated > 0);
        proxy.clear();
        for s in all {
            Arc::try_unwrap(s).ok().unwrap().close().await;
        }
        proxy.shutdown().await;
    }
    // Latency over HTTP too: every exchange (initialize, notification, call, close) is later.
    let direct: Target = http.parse().unwrap();
    let proxy = Proxy::start(&direct, ANY.parse().unwrap(), 9).await.unwrap();
    proxy.add_fault(Fault::latency(Duration::from_millis(50), Duration::ZERO)).unwrap();
    let s = connect(&proxy.target().unwrap(), Duration::from_secs(5)).await;
    let t = Instant::now();
    s.ping().await.unwrap();
    assert!(t.elapsed() >= Duration::from_millis(50) && t.elapsed() < Duration::from_millis(80));
}

#[tokio::test]
async fn bad_fault_specs_and_taken_ports_are_refused_clearly() {
    for (spec, needle) in [
        ("corrupt:probability=1.5", "probability must be between 0 and 1 (a fraction), got 1.5"),
        ("latency:latency=-5ms", "must be a duration from 0 to 1h"),
        ("lateny:latency=1ms", "unknown fault 'lateny' (did you mean 'latency'?); valid faults: latency, bandwidth"),
        ("drop:probability=0.1,toxicity=2", "toxicity must be between 0 and 1"),
        ("latency:latency=10ms,jiter=1ms", "valid parameters: direction, jitter, latency, toxicity"),
        ("bandwidth:rate=0", "rate (KB/s) must be an integer from 1 to"),
        ("slicer:average_size=8,size_variation=9", "size_variation must be from 0 to average_size - 1 (7)"),
        ("drop:direction=sideways", "direction must be upstream, downstream or both"),
    ] {
        let e = spec.parse::<Fault>().unwrap_err();
        assert!(matches!(e, ChaosError::InvalidFault(_)));
        assert!(e.to_string().contains(needle), "{spec}: {e}");
    }
    let (_server, direct) = tcp_server().await;
    let proxy = Proxy::start(&direct, ANY.parse().unwrap(), 0).await.unwrap();
    let e = proxy.add_fault(Fault::drop(1.5)).unwrap_err();
    assert!(e.to_string().contains("between 0 and 1"), "{e}");
    let e = proxy.add_fault(Fault::latency(Duration::from_secs(7200), Duration::ZERO)).unwrap_err();
    assert!(e.to_string().contains("from 0 to 1h"), "{e}");
    assert!(matches!(proxy.remove_fault(mcpscript::chaos::FaultId(99)), Err(ChaosError::UnknownFault(_))));
    assert!(proxy.faults().is_empty(), "rejected faults are not installed");

    // The listen port is taken (by the first proxy).
    let e = Proxy::start(&direct, proxy.addr(), 0).await.unwrap_err();
    assert!(matches!(e, ChaosError::Bind { .. }));
    assert!(e.to_string().contains("the port is taken"), "{e}");

    // Message faults need framing; stdio targets cannot be proxied.
    let raw = ProxyOptions { framing: Some(Framing::Raw), ..Default::default() };
    let p = Proxy::start_with(&direct, ANY.parse().unwrap(), 0, raw).await.unwrap();
    assert!(p.add_fault(Fault::drop(0.1)).unwrap_err().to_string().contains("need message framing"));
    p.add_fault(Fault::latency(Duration::from_millis(1), Duration::ZERO)).unwrap();
    let stdio: Target = "stdio:cat".parse().unwrap();
    assert!(Proxy::start(&stdio, ANY.parse().unwrap(), 0)
        .await
        .unwrap_err()
        .to_string()
        .contains("only socket targets"));
}

const BIN: &str = env!("CARGO_BIN_EXE_mcpscript");

/// A child `mcpscript` that printed a `listening URL` line; killed on drop.
struct Running {
    child: Child,
    url: String,
    lines: std::io::Lines<BufReader<std::process::ChildStdout>>,
}

impl Running {
    fn start(args: &[&str]) -> Running {
        let mut child = Command::new(BIN).args(args).stdout(Stdio::piped()).stderr(Stdio::null()).spawn().unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let line = lines.next().expect("a listening line").unwrap();
        let url = line.strip_prefix("listening ").expect("a listening line").to_string();
        Running { child, url, lines }
    }

    /// SIGTERM; the exit code and the `stats` line.
    fn stop(mut self) -> (i32, Value) {
        // SAFETY: signalling our own child by its PID.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let stats = self.lines.find_map(|l| l.ok()?.strip_prefix("stats ").map(str::to_string)).expect("a stats line");
        let code = self.child.wait().unwrap().code().unwrap_or(-1);
        (code, serde_json::from_str(&stats).unwrap())
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn the_proxy_command_runs_until_sigterm_and_reports_its_counts() {
    let serve = Running::start(&["serve", "--listen", "tcp://127.0.0.1:0"]);
    let proxy = Running::start(&[
        "proxy",
        "--listen",
        "tcp://127.0.0.1:0",
        "--upstream",
        &serve.url,
        "--fault",
        "latency:latency=100ms,jitter=5ms",
        "--seed",
        "7",
    ]);
    assert!(proxy.url.starts_with("tcp://127.0.0.1:") && proxy.url != serve.url, "{}", proxy.url);
    let t = Instant::now();
    let out = Command::new(BIN).args(["call", &proxy.url, "ping"]).output().unwrap();
    let took = t.elapsed();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // initialize and ping: two replies, each about 100 ms late.
    assert!(took >= Duration::from_millis(190), "{took:?}");
    let (code, stats) = proxy.stop();
    assert_eq!(code, 0);
    assert_eq!(stats["connections"], 1);
    assert!(stats["chunks_delayed"].as_u64().unwrap() >= 2, "{stats}");
    assert!(stats["bytes_downstream"].as_u64().unwrap() > 100, "{stats}");

    // Bad arguments exit 2, a taken port exits 1, each with a message naming the problem.
    let run = |args: &[&str]| {
        let out = Command::new(BIN).arg("proxy").args(args).output().unwrap();
        (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let (code, err) = run(&["--upstream", &serve.url, "--fault", "drop:probability=1.5"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("between 0 and 1"), "{err}");
    let (code, err) = run(&["--upstream", &serve.url, "--fault", "jitter:latency=1ms"]);
    assert_eq!(code, 2);
    assert!(err.contains("unknown fault 'jitter'"), "{err}");
    let (code, err) = run(&["--upstream", "gopher://x"]);
    assert_eq!(code, 2);
    assert!(err.contains("--upstream"), "{err}");
    let taken = serve.url.trim_start_matches("tcp://");
    let (code, err) = run(&["--listen", taken, "--upstream", &serve.url]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("the port is taken"), "{err}");
}
