//! Managed targets and recovery, end to end: the real built-in server as child processes
//! (`mcpscript serve`), killed, stopped, suspended and restarted under real load; the real
//! proxy dropping connections. Every load loop is bounded in count and time; 127.0.0.1 only;
//! only processes these tests started are signalled, by PID.

mod common;

use common::wait_until_async;
use mcpscript::client::{ClientOptions, Session, Target};
use mcpscript::managed::{ManagedError, ManagedServer, Which};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Load tests take turns on a small machine.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn exe() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_mcpscript"))
}

fn opts(request_timeout: Duration) -> Arc<ClientOptions> {
    Arc::new(ClientOptions { request_timeout, connect_timeout: Duration::from_secs(2), ..Default::default() })
}

fn alive(pid: u32) -> bool {
    // A zombie (killed, not yet reaped) counts as gone.
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| !s.contains(") Z "))
}

fn state(pid: u32) -> char {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    s.rsplit_once(") ").and_then(|(_, r)| r.chars().next()).unwrap_or('?')
}

async fn wait_gone(pids: &[u32]) -> bool {
    wait_until_async(Duration::from_secs(5), "the processes to exit", || pids.iter().all(|p| !alive(*p))).await
}

/// `n` fresh sessions, each pinging once: how many answered.
async fn fresh_pings(target: &Target, n: usize) -> usize {
    let mut ok = 0;
    for _ in 0..n {
        if let Ok(s) = Session::connect(target, opts(Duration::from_secs(2))).await {
            if s.ping().await.is_ok() {
                ok += 1;
            }
            s.close().await;
        }
    }
    ok
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_one_worker_leaves_the_others_serving_and_a_restart_rejoins_the_port() {
    let _g = SERIAL.lock().await;
    let mut s = ManagedServer::start_builtin(exe(), 3, &[]).await.expect("starts");
    let target = s.target();
    assert!(target.to_string().starts_with("tcp://127.0.0.1:"), "{target}");
    let pids = s.pids();
    assert_eq!(pids.len(), 3, "three sibling worker processes");
    assert_eq!(fresh_pings(&target, 12).await, 12);

    let killed = s.kill(Which::Worker(1)).await.expect("kill");
    assert_eq!(killed, vec![pids[1]]);
    assert!(wait_gone(&[pids[1]]).await, "worker 1 is gone");
    assert!(alive(pids[0]) && alive(pids[2]));
    // Every new connection lands on a live worker: the dead one's listener went with it.
    assert_eq!(fresh_pings(&target, 30).await, 30, "the other workers keep serving the port");

    let restarted = s.restart(Which::Worker(1)).await.expect("restart");
    assert_eq!(restarted.len(), 1);
    assert_ne!(restarted[0], pids[1], "a new process");
    assert_eq!(s.target(), target, "same URL");
    assert_eq!(s.pids().len(), 3);
    assert_eq!(fresh_pings(&target, 30).await, 30);
    // The restarted worker takes connections too (SO_REUSEPORT spreads them by hash).
    let served = served_by(restarted[0], &target).await;
    assert!(served, "the restarted worker never accepted a connection");

    let all = s.pids();
    s.shutdown().await;
    assert!(wait_gone(&all).await, "no worker outlives shutdown");
}

/// Opens sessions until one is accepted by `pid` (its /proc fd count grows), at most 60.
async fn served_by(pid: u32, target: &Target) -> bool {
    let fds = || std::fs::read_dir(format!("/proc/{pid}/fd")).map(|d| d.count()).unwrap_or(0);
    let base = fds();
    let mut held = Vec::new();
    for _ in 0..60 {
        if let Ok(s) = Session::connect(target, opts(Duration::from_secs(2))).await {
            held.push(s);
        }
        if fds() > base {
            return true;
        }
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_all_and_restart_serves_the_same_url_again() {
    let _g = SERIAL.lock().await;
    let mut s = ManagedServer::start_builtin(exe(), 1, &[]).await.expect("starts");
    let target = s.target();
    let session = Session::connect(&target, opts(Duration::from_secs(2))).await.unwrap();
    session.ping().await.unwrap();
    let pids = s.kill(Which::All).await.unwrap();
    assert_eq!(pids.len(), 1);
    assert!(wait_gone(&pids).await);
    assert!(session.ping().await.is_err(), "the session's connection died with the server");
    assert_eq!(fresh_pings(&target, 2).await, 0, "nothing listens while it is down");
    s.restart(Which::All).await.expect("restarts on the same port");
    let took = s.wait_ready(Duration::from_secs(5)).await.expect("ready");
    assert!(took < Duration::from_secs(5));
    assert_eq!(fresh_pings(&target, 5).await, 5);
    drop(s);
    assert!(wait_gone(&pids).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suspend_is_a_stall_not_an_error_and_stop_is_graceful() {
    let _g = SERIAL.lock().await;
    let mut s = ManagedServer::start_builtin(exe(), 1, &[]).await.expect("starts");
    let target = s.target();
    let session = Arc::new(Session::connect(&target, opts(Duration::from_secs(10))).await.unwrap());
    session.ping().await.unwrap();
    let pid = s.pids()[0];
    s.suspend(Which::All).unwrap();
    assert!(
        wait_until_async(Duration::from_secs(5), "state T", || state(pid) == 'T').await,
        "SIGSTOP stops the process: state {}",
        state(pid)
    );
    let t0 = Instant::now();
    let call = tokio::spawn({
        let session = session.clone();
        async move { session.ping().await }
    });
    // Kept fixed: the point is that nothing happens during this time (a suspended server
    // answers nothing), and the 600 ms is the stall the latency check below looks for.
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(!call.is_finished(), "a suspended server answers nothing");
    s.resume(Which::All).unwrap();
    let r = call.await.unwrap();
    let stalled = t0.elapsed();
    assert!(r.is_ok(), "the request completes after resume: {r:?}");
    assert!(stalled >= Duration::from_millis(600), "the stall shows as latency: {stalled:?}");
    // SIGTERM: the server exits by itself within the grace period.
    let t1 = Instant::now();
    assert_eq!(s.stop(Which::All).await.unwrap(), vec![pid]);
    assert!(t1.elapsed() < mcpscript::managed::STOP_GRACE, "exited on SIGTERM, not killed after the grace");
    assert!(wait_gone(&[pid]).await);
    assert!(s.pids().is_empty());
}

#[tokio::test]
async fn no_such_worker_is_refused() {
    let mut s = ManagedServer::start_builtin(exe(), 2, &[]).await.expect("starts");
    let e = s.kill(Which::Worker(2)).await.unwrap_err();
    assert!(matches!(e, ManagedError::NoWorker { index: 2, workers: 2 }));
    assert!(e.to_string().contains("numbered 0 to 1"), "{e}");
    let pids = s.pids();
    assert_eq!(pids.len(), 2, "a refused kill kills nothing");
    drop(s);
    assert!(wait_gone(&pids).await, "dropped servers leave no process behind");
}

// ---- recovery and resilience under load ----

use mcpscript::chaos::{Fault, Proxy};
use mcpscript::load::resilience::Events;
use mcpscript::load::{Model, PhasePlan, PhaseResult, RequestTemplate, RunEnv};

fn closed_plan(target: &Target, sessions: u64, duration: Option<Duration>, iterations: Option<u64>) -> PhasePlan {
    let model = Model::Closed { sessions, duration, iterations, think: None };
    PhasePlan { seed: 42, processes: 1, ..PhasePlan::new("chaos", &target.to_string(), model) }
}

fn run_env(events: &Arc<Events>) -> RunEnv {
    RunEnv { events: Some(events.clone()), sample: None, ..RunEnv::default() }
}

fn transport_errors(r: &PhaseResult) -> u64 {
    r.counts.errors.get("transport").copied().unwrap_or(0)
}

/// Lets the phase's load run for `ms` before a fault (its sessions are open and traffic
/// flows). Kept fixed: the load running for a while before the kill is what is tested.
async fn after_setup(ms: u64) {
    tokio::time::sleep(Duration::from_millis(ms)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_builtin_server_under_load_and_restarting_it_reports_recovery() {
    let _g = SERIAL.lock().await;
    let server = Arc::new(tokio::sync::Mutex::new(ManagedServer::start_builtin(exe(), 1, &[]).await.unwrap()));
    let target = server.lock().await.target();
    let first_pids = server.lock().await.pids();
    let events = Events::new();
    let plan = closed_plan(&target, 100, Some(Duration::from_secs(4)), None);
    let chaos = {
        let (server, events) = (server.clone(), events.clone());
        tokio::spawn(async move {
            after_setup(1200).await;
            // Marked as the action starts: sessions see the kill within microseconds.
            events.mark("kill all");
            server.lock().await.kill(Which::All).await.unwrap();
            // Kept fixed: the outage's length is the behaviour measured.
            tokio::time::sleep(Duration::from_millis(500)).await;
            events.mark("restart all");
            server.lock().await.restart(Which::All).await.unwrap();
        })
    };
    let r = mcpscript::load::run(&plan, run_env(&events)).await.unwrap();
    chaos.await.unwrap();
    eprintln!("{}", serde_json::to_string_pretty(&r.recovery).unwrap());
    assert!(r.balanced(), "sent = ok + errors + timeouts + cancelled: {:?}", r.counts);
    let kill = &r.recovery[0];
    assert_eq!(kill.event, "kill all");
    assert_eq!(kill.sessions_affected, 100, "every session lost its connection");
    assert_eq!(kill.sessions_lost, 0, "and every one came back");
    let took = kill.recovery_s.expect("recovered within the phase");
    assert!((0.5..3.0).contains(&took), "recovery {took} s: the server was down 0.5 s, backoff at most 1 s");
    // The pings in flight at the kill were resent on the new connections, not counted twice.
    assert!(r.counts.resent > 0 && r.counts.resent <= 100, "resent {}", r.counts.resent);
    assert_eq!(r.resilience.resent, r.counts.resent);
    assert_eq!(r.resilience.broken, 100, "one break per session");
    assert!(r.connect.reconnects >= 100);
    // Down for half a second: the second of the kill shows the dip.
    let second = kill.at_s.floor() as u32;
    let dip = kill.throughput.iter().find(|(t, _)| *t == second).map(|x| x.1).unwrap_or(0.0);
    let best = kill.throughput.iter().map(|x| x.1).fold(0.0, f64::max);
    assert!(dip < best * 0.75, "no dip in the throughput around the kill: {:?}", kill.throughput);
    let new_pids = server.lock().await.pids();
    assert_ne!(new_pids, first_pids);
    let s = Arc::try_unwrap(server).ok().unwrap().into_inner();
    s.shutdown().await;
    assert!(wait_gone(&new_pids).await && wait_gone(&first_pids).await, "no server process left");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_one_worker_under_load_moves_its_sessions_to_the_others() {
    let _g = SERIAL.lock().await;
    let server = Arc::new(tokio::sync::Mutex::new(ManagedServer::start_builtin(exe(), 3, &[]).await.unwrap()));
    let target = server.lock().await.target();
    let events = Events::new();
    let plan = closed_plan(&target, 60, Some(Duration::from_secs(3)), None);
    let chaos = {
        let (server, events) = (server.clone(), events.clone());
        tokio::spawn(async move {
            after_setup(1000).await;
            events.mark("kill worker 1");
            server.lock().await.kill(Which::Worker(1)).await.unwrap();
        })
    };
    let r = mcpscript::load::run(&plan, run_env(&events)).await.unwrap();
    chaos.await.unwrap();
    assert!(r.balanced(), "{:?}", r.counts);
    let k = &r.recovery[0];
    eprintln!("{k:?}");
    assert!(k.sessions_affected > 0 && k.sessions_affected < 60, "only worker 1's sessions broke: {k:?}");
    assert_eq!(k.sessions_lost, 0, "they reconnected to the other workers");
    assert!(k.recovery_s.is_some_and(|s| s < 1.5), "{k:?}");
    // The other workers never stopped answering: no second without replies.
    let full: Vec<&mcpscript::load::result::TimelineEntry> = r.timeline.iter().filter(|e| e.span >= 1.0).collect();
    assert!(full.len() >= 2 && full.iter().all(|e| e.ok > 0), "{:?}", full.iter().map(|e| e.ok).collect::<Vec<_>>());
    assert_eq!(server.lock().await.pids().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_percent_connection_drops_every_dropped_session_reconnects_and_nothing_is_double_counted() {
    let _g = SERIAL.lock().await;
    let server = mcpscript::server::start(mcpscript::server::ServerConfig::listening(&["tcp://127.0.0.1:0"]).unwrap())
        .await
        .unwrap();
    let direct: Target = server.url("tcp").unwrap().parse().unwrap();
    let proxy = Proxy::start(&direct, "127.0.0.1:0".parse().unwrap(), 9).await.unwrap();
    let through = proxy.target_for(&direct).unwrap();
    // After 3..=10 replies (the initialize reply is the first), 10% of connections close,
    // reconnected ones included.
    proxy.add_fault(Fault::drop_connection(0.1, 3, 10)).unwrap();
    let mut plan = closed_plan(&through, 100, Some(Duration::from_secs(2)), None);
    // Half the mix is resent after a broken connection (ping), half is not (echo).
    plan.mix = vec![
        RequestTemplate::new("ping", None, 1),
        RequestTemplate::new("tools/call", Some(serde_json::json!({"name": "echo", "arguments": {"message": "x"}})), 1),
    ];
    let events = Events::new();
    let r = mcpscript::load::run(&plan, run_env(&events)).await.unwrap();
    let stats = proxy.stats();
    eprintln!(
        "drop_connection 10%: proxy dropped {}, sessions broke {}, reconnected {}, resent {}, transport errors {}",
        stats.connections_dropped,
        r.resilience.broken,
        r.connect.reconnects,
        r.counts.resent,
        transport_errors(&r)
    );
    assert!(stats.connections_dropped >= 3, "the fault fired: {stats:?}");
    assert!(r.balanced(), "{:?}", r.counts);
    assert_eq!(r.resilience.broken, stats.connections_dropped, "every dropped connection seen once");
    assert_eq!(r.connect.reconnects, stats.connections_dropped, "every dropped session reconnected");
    // Each break ended exactly one request: resent (ping) or failed (echo), never both.
    assert_eq!(r.counts.resent + transport_errors(&r), r.resilience.broken);
    assert!(r.counts.resent > 0 && transport_errors(&r) > 0);
    assert_eq!(r.per_kind["ping"].counts.errors.get("transport"), None, "pings were resent, not failed");
    assert_eq!(r.per_kind["echo"].counts.resent, 0, "tools/call is not idempotent: never resent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_percent_message_drops_equal_client_timeouts_plus_resends() {
    let _g = SERIAL.lock().await;
    let server = mcpscript::server::start(mcpscript::server::ServerConfig::listening(&["tcp://127.0.0.1:0"]).unwrap())
        .await
        .unwrap();
    let direct: Target = server.url("tcp").unwrap().parse().unwrap();
    let proxy = Proxy::start(&direct, "127.0.0.1:0".parse().unwrap(), 42).await.unwrap();
    let through = proxy.target_for(&direct).unwrap();
    let mut plan = closed_plan(&through, 20, None, Some(1000));
    plan.request_timeout = Duration::from_millis(400);
    plan.connect_timeout = Duration::from_millis(400);
    plan.resilience.policy.resend_on_timeout = true;
    plan.resilience.policy.max_resends = 1;
    // The fault applies to the handshakes too: a dropped initialize reply is a connect timeout.
    proxy.add_fault(Fault::drop(0.05)).unwrap();
    let events = Events::new();
    let r = mcpscript::load::run(&plan, run_env(&events)).await.unwrap();
    let stats = proxy.stats();
    eprintln!(
        "drop 5%: proxy dropped {} of {} messages; client: {} timeouts + {} resends, {} ok",
        stats.messages_dropped, stats.messages_seen, r.counts.timeouts, r.counts.resent, r.counts.ok
    );
    assert!(r.balanced(), "{:?}", r.counts);
    assert_eq!(r.counts.sent, 1000, "resends are not sent twice");
    assert!(stats.messages_dropped > 0 && r.counts.resent > 0);
    let connect_timeouts = r.connect.errors.get("timeout").copied().unwrap_or(0);
    assert_eq!(
        stats.messages_dropped,
        r.counts.timeouts + r.counts.resent + connect_timeouts,
        "the proxy's drops vs the client's timeouts plus resends (plus handshakes that timed out)"
    );
    // A resent request is one request: latency and outcome of its last attempt, sent once.
    assert_eq!(stats.messages_seen, r.counts.sent + r.counts.resent + r.connect.attempted - r.counts.cancelled);
}

// ---- the chaos namespace through `mcpscript run` ----

fn script_dir(tag: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("mcpscript-chaos-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Runs `src` as a script with `args`; returns (exit code, stdout, stderr).
fn run_script(tag: &str, src: &str, args: &[&str]) -> (i32, String, String) {
    let d = script_dir(tag);
    let file = d.join(format!("{tag}.rhai"));
    std::fs::write(&file, src).unwrap();
    let out = d.join("out");
    let o = std::process::Command::new(exe())
        .args(["run", file.to_str().unwrap(), "--out", out.to_str().unwrap()])
        .args(args)
        .env("MCPSCRIPT_NO_HISTORY", "1")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&d);
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into(),
        String::from_utf8_lossy(&o.stderr).into(),
    )
}

#[test]
fn bad_fault_input_is_refused_at_the_call_with_the_valid_range() {
    let cases = [
        ("bad_prob", r#"let p = chaos::proxy("builtin", "drop:probability=1.5");"#, "probability"),
        ("neg_latency", r#"let p = chaos::proxy("builtin", #{type: "latency", latency: "-5ms"});"#, "latency"),
        ("bare_ms", r#"let p = chaos::proxy("builtin", #{type: "latency", latency: 9});"#, "\"9\" needs a unit"),
        ("unknown", r#"let p = chaos::proxy("builtin"); p.add("jitterbug:amount=3");"#, "jitterbug"),
    ];
    for (tag, src, word) in cases {
        let (code, _, err) = run_script(tag, src, &["-q"]);
        assert_eq!(code, 2, "{tag}: bad input exits 2: {err}");
        assert!(err.contains(word), "{tag}: names the bad input: {err}");
        assert!(err.contains(&format!("{tag}.rhai:1")), "{tag}: names the file and line: {err}");
    }
    // The range is in the message.
    let (_, _, err) = run_script("range", r#"chaos::proxy("builtin", "drop:probability=1.5");"#, &["-q"]);
    assert!(err.contains("0") && err.contains("1"), "{err}");
    // Bad resilience options are refused too: bad input, exit 2 (before anything runs when literal).
    let (code, _, err) =
        run_script("breaker", r#"load::closed(#{sessions: 1, iterations: 1, breaker: #{error_rate: 2.0}});"#, &["-q"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("error_rate must be in (0, 1]"), "{err}");
}

#[test]
fn killing_a_target_mcpscript_did_not_start_is_refused_with_the_reason() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let server = rt
        .block_on(mcpscript::server::start(mcpscript::server::ServerConfig::listening(&["tcp://127.0.0.1:0"]).unwrap()))
        .unwrap();
    let url = server.url("tcp").unwrap().to_string();
    let (code, _, err) = run_script(
        "foreign",
        "let s = chaos::server();\ncheck(!s.managed, \"not managed\");\nchaos::kill();",
        &["-q", "--target", &url],
    );
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("cannot kill") && err.contains("did not start"), "{err}");
    assert!(err.contains("foreign.rhai:3"), "{err}");
    // The foreign server was not touched.
    let ok = rt.block_on(async {
        let s = Session::connect(&url.parse().unwrap(), opts(Duration::from_secs(2))).await.unwrap();
        s.ping().await.is_ok()
    });
    assert!(ok);
    rt.block_on(server.shutdown());
}

#[test]
fn a_chaos_run_leaves_no_server_process_behind() {
    let src = r#"
        let s = chaos::server();
        log(`pids=${s.pids}`);
        chaos::kill(1);
        chaos::restart(1);
        log(`pids=${chaos::server().pids}`);
        let r = load::closed(#{sessions: 10, duration: "2s", schedule: [#{at: "500ms", run: || chaos::kill(0)}]});
        check(r.recovery[0].sessions_lost == 0, "sessions moved to worker 1");
        log(`pids=${chaos::server().pids}`);
    "#;
    let (code, _, err) = run_script("leftover", src, &["--builtin-workers", "2"]);
    assert_eq!(code, 0, "{err}");
    let pids: Vec<u32> = err
        .lines()
        .filter_map(|l| l.split_once("pids=[").map(|(_, r)| r.trim_end_matches(']').to_string()))
        .flat_map(|l| l.split(',').filter_map(|p| p.trim().parse().ok()).collect::<Vec<u32>>())
        .collect();
    assert!(pids.len() >= 4, "two workers, one restarted: {pids:?}\n{err}");
    for p in &pids {
        assert!(!alive(*p), "server process {p} outlived the run");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suspending_the_server_under_load_is_a_stall_not_errors() {
    let _g = SERIAL.lock().await;
    let server = Arc::new(tokio::sync::Mutex::new(ManagedServer::start_builtin(exe(), 1, &[]).await.unwrap()));
    let target = server.lock().await.target();
    let events = Events::new();
    let plan = closed_plan(&target, 20, Some(Duration::from_secs(3)), None);
    let chaos = {
        let (server, events) = (server.clone(), events.clone());
        tokio::spawn(async move {
            after_setup(1000).await;
            events.mark("suspend all");
            server.lock().await.suspend(Which::All).unwrap();
            // Kept fixed: the stall's length is the behaviour measured (max latency >= 600).
            tokio::time::sleep(Duration::from_millis(700)).await;
            server.lock().await.resume(Which::All).unwrap();
        })
    };
    let r = mcpscript::load::run(&plan, run_env(&events)).await.unwrap();
    chaos.await.unwrap();
    assert!(r.balanced());
    assert_eq!(r.counts.error_total() + r.counts.timeouts, 0, "a stall, not failures: {:?}", r.counts);
    assert!(r.latency.max >= 600.0, "the stall shows as latency: max {} ms", r.latency.max);
    assert_eq!(r.recovery[0].sessions_affected, 0, "no connection broke");
    assert_eq!(r.resilience.broken, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_model_survives_a_kill_resends_pings_and_stays_balanced() {
    let _g = SERIAL.lock().await;
    // Replies take 20 ms, so about 40 requests are in flight at any moment, the kill's too
    // (at sub-millisecond replies, often none was, and nothing was left to resend).
    let slow = ["--latency".to_string(), "20ms".to_string()];
    let server = Arc::new(tokio::sync::Mutex::new(ManagedServer::start_builtin(exe(), 1, &slow).await.unwrap()));
    let target = server.lock().await.target();
    let events = Events::new();
    let mut plan = closed_plan(&target, 50, None, None);
    plan.model = Model::Open {
        sessions: 50,
        stages: vec![mcpscript::load::Stage { duration: Duration::from_secs(3), rate: 2000.0 }],
        start_rate: 2000.0,
        max_inflight: 10_000,
        arrival_offset: 0.0,
    };
    let chaos = {
        let (server, events) = (server.clone(), events.clone());
        tokio::spawn(async move {
            after_setup(1000).await;
            events.mark("kill all");
            server.lock().await.kill(Which::All).await.unwrap();
            // Kept fixed: the outage's length is the behaviour measured.
            tokio::time::sleep(Duration::from_millis(300)).await;
            server.lock().await.restart(Which::All).await.unwrap();
        })
    };
    let r = mcpscript::load::run(&plan, run_env(&events)).await.unwrap();
    chaos.await.unwrap();
    eprintln!("open: {:?} resilience {:?} recovery {:?}", r.counts, r.resilience, r.recovery);
    assert!(r.balanced(), "sent = ok + errors + timeouts + cancelled: {:?}", r.counts);
    let k = &r.recovery[0];
    assert_eq!(k.sessions_affected, 50);
    assert_eq!(k.sessions_lost, 0);
    assert!(k.recovery_s.is_some());
    // Pings in flight at the kill went out again on reopened connections.
    assert!(r.counts.resent > 0, "{:?}", r.counts);
    // The server was down 0.3 s + reconnect backoff: arrivals then found no live session
    // (transport errors), but far fewer than were sent.
    assert!(r.counts.ok > r.counts.sent / 2, "{:?}", r.counts);
}

#[test]
fn a_server_command_declared_for_the_run_is_managed() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = format!("tcp://127.0.0.1:{port}");
    let cmd = format!("{} serve --listen {url}", exe().display());
    let src = r#"
        let s = chaos::server();
        check(s.managed, "the declared server is managed");
        log(`pids=${s.pids}`);
        let a = connect();
        check(a.ping().ok, "it answers");
        chaos::kill();
        check(!a.ping().ok, "a killed server answers nothing");
        chaos::restart();
        let ms = chaos::wait_ready("5s");
        check(connect().ping().ok, "it answers again on the same URL");
        log(`pids=${chaos::server().pids}`);
    "#;
    let (code, out, err) = run_script("declared", src, &["--target", &url, "--server", &cmd]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("4 passed"), "{out}");
    let pids: Vec<u32> = err
        .lines()
        .filter_map(|l| l.split_once("pids=[").map(|(_, r)| r.trim_end_matches(']').to_string()))
        .filter_map(|p| p.trim().parse().ok())
        .collect();
    assert_eq!(pids.len(), 2, "{err}");
    assert!(pids.iter().all(|p| !alive(*p)), "the declared server is stopped after the run");
    // Without --target it is refused as invalid input.
    let (code, _, err) = run_script("declared2", "log(1);", &["--server", &cmd]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--server needs --target"), "{err}");
}

#[test]
fn a_resilient_script_session_reopens_and_resends_idempotent_requests_only() {
    // Measure what the handshake and a ping take upstream, then let each connection carry
    // the handshake and one and a half pings: the second request of a connection is cut off
    // on its way and the connection closes with it in flight.
    let src = r#"
        let p0 = chaos::proxy("builtin");
        let m = connect(p0.target);
        m.ping();
        let a = p0.stats().bytes_upstream;
        m.ping();
        let ping = p0.stats().bytes_upstream - a;
        let h = a - ping;
        m.close();
        p0.close();
        let p = chaos::proxy("builtin", `limit_data:bytes=${h + ping + ping / 2},direction=upstream`);
        let s = connect(p.target, #{reconnect: true, backoff: #{initial: "10ms", max: "100ms"}});
        let plain = connect(p.target);
        check(s.ping().ok, "first ping");
        let r = s.ping();
        check(r.ok && r.resent, "the broken ping was resent on a reopened session", `${r}`);
        check(s.reconnects == 1 && s.resent == 1, "one reconnect, one resend", `${s.reconnects} ${s.resent}`);
        let e = s.tool("echo", #{message: "x"});
        check(!e.ok && !e.resent && e.error.kind == "transport", "tools/call is not resent", `${e}`);
        check(s.reconnects == 2 && s.resent == 1, "reopened, not resent", `${s.reconnects} ${s.resent}`);
        check(s.ping().ok, "the reopened session answers");
        check(plain.ping().ok, "plain first ping");
        let q = plain.ping();
        check(!q.ok && !q.resent, "a plain session does not reconnect", `${q}`);
        check(p.stats().connections_limited == 3, "three connections cut", `${p.stats()}`);
    "#;
    let (code, out, err) = run_script("resilient", src, &[]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("9 passed"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_circuit_breaker_opens_on_a_failing_server_and_short_circuits_requests() {
    let _g = SERIAL.lock().await;
    let extra = ["--error-rate".to_string(), "1".to_string()];
    let server = ManagedServer::start_builtin(exe(), 1, &extra).await.unwrap();
    let mut plan = closed_plan(&server.target(), 10, Some(Duration::from_secs(2)), None);
    plan.resilience.breaker = Some(mcpscript::load::resilience::BreakerPlan {
        error_rate: 0.5,
        min_requests: 20,
        window: Duration::from_secs(1),
        cool_down: Duration::from_millis(300),
    });
    let r = mcpscript::load::run(&plan, run_env(&Events::new())).await.unwrap();
    let res = &r.resilience;
    eprintln!("breaker: {:?} {:?}", r.counts, res);
    assert!(r.balanced(), "{:?}", r.counts);
    assert_eq!(r.counts.error_total(), r.counts.sent, "every request the breaker let through failed");
    assert!(res.breaker && res.short_circuited > 0, "{res:?}");
    // Open after the first window, then one failed probe per cool-down reopens it.
    assert!(res.breaker_opened >= 3, "{res:?}");
    assert!(r.counts.sent < 200, "the breaker kept most requests from being sent: {:?}", r.counts);
    // Without it the same phase sends thousands.
    plan.resilience.breaker = None;
    plan.model =
        Model::Closed { sessions: 10, duration: Some(Duration::from_millis(500)), iterations: None, think: None };
    let r = mcpscript::load::run(&plan, run_env(&Events::new())).await.unwrap();
    assert!(r.counts.sent > 500 && r.resilience.short_circuited == 0, "{:?}", r.counts);
    server.shutdown().await;
}
