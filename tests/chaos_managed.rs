//! Managed targets and recovery, end to end: the real built-in server as child processes
//! (`mcpscript serve`), killed, stopped, suspended and restarted under real load; the real
//! proxy dropping connections. Every load loop is bounded in count and time; 127.0.0.1 only;
//! only processes these tests started are signalled, by PID.

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
    for _ in 0..200 {
        if pids.iter().all(|p| !alive(*p)) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    false
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
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(state(pid), 'T', "SIGSTOP stops the process");
    let t0 = Instant::now();
    let call = tokio::spawn({
        let session = session.clone();
        async move { session.ping().await }
    });
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
