//! The load engine through `mcpscript run`: worker processes (forced by a tiny
//! per-process connection budget, so the multi-process path runs in CI), the built-in
//! server scaled to the phase, segments and `mcpscript merge`, a worker killed mid-run,
//! Ctrl-C, and that no child process outlives a run.

use serde_json::Value;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

const BIN: &str = env!("CARGO_BIN_EXE_mcpscript");
fn tempdir() -> TempDir {
    tempfile::tempdir().unwrap()
}

fn command(dir: &TempDir, script: &str, out: &str, budget: Option<u64>, extra: &[&str]) -> Command {
    let file = dir.path().join("phase.rhai");
    std::fs::write(&file, script).unwrap();
    let mut c = Command::new(BIN);
    c.args(["run", file.to_str().unwrap(), "--out", dir.path().join(out).to_str().unwrap(), "-q"]).args(extra);
    c.env_remove("MCPSCRIPT_MAX_CONNS_PER_PROCESS").env_remove("MCPSCRIPT_STDLIB").stdin(Stdio::null());
    c.env("MCPSCRIPT_NO_HISTORY", "1");
    if let Some(b) = budget {
        c.env("MCPSCRIPT_MAX_CONNS_PER_PROCESS", b.to_string());
    }
    c
}

fn run(dir: &TempDir, script: &str, out: &str, budget: Option<u64>, extra: &[&str]) -> (Output, Value) {
    let o = command(dir, script, out, budget, extra).output().unwrap();
    let path = dir.path().join(out).join("results.json");
    let v = serde_json::from_slice(
        &std::fs::read(&path).unwrap_or_else(|_| panic!("no results: {}", String::from_utf8_lossy(&o.stderr))),
    )
    .unwrap();
    (o, v)
}

/// The load phases of a results.json, depth first.
fn phases(results: &Value) -> Vec<Value> {
    fn walk(n: &Value, out: &mut Vec<Value>) {
        out.extend(n["phases"].as_array().cloned().unwrap_or_default());
        for s in n["stages"].as_array().into_iter().flatten() {
            walk(s, out);
        }
    }
    let mut out = vec![];
    for s in results["scenarios"].as_array().unwrap() {
        walk(s, &mut out);
    }
    out
}

fn n(v: &Value, k: &str) -> u64 {
    v[k].as_u64().unwrap_or_else(|| panic!("{k} missing in {v}"))
}

fn errors(v: &Value) -> u64 {
    v["errors"].as_object().map(|m| m.values().map(|x| x.as_u64().unwrap()).sum()).unwrap_or(0)
}

fn assert_identity(p: &Value) {
    assert_eq!(
        n(p, "sent"),
        n(p, "ok") + errors(p) + n(p, "timeouts") + n(p, "cancelled"),
        "identity in {}",
        p["name"]
    );
}

/// Every process id a phase reported (workers, sampled processes).
fn child_pids(p: &Value) -> Vec<u32> {
    let mut pids: Vec<u32> =
        p["workers"].as_array().into_iter().flatten().map(|w| w["pid"].as_u64().unwrap() as u32).collect();
    for s in p["resources"]["processes"].as_array().into_iter().flatten() {
        if s["role"] != "coordinator" {
            pids.push(s["pid"].as_u64().unwrap() as u32);
        }
    }
    pids
}

fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // A zombie waiting for init to reap it is gone for our purposes.
        Ok(s) => s.rsplit(')').next().and_then(|r| r.split_whitespace().next()) != Some("Z"),
        Err(_) => false,
    }
}

fn assert_gone(pids: &[u32]) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while pids.iter().any(|p| alive(*p)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let left: Vec<_> = pids.iter().filter(|p| alive(**p)).collect();
    assert!(left.is_empty(), "child processes outlived the run: {left:?}");
}

const PHASES: &str = r#"
let c = load::closed(#{name: "closed", sessions: 200, iterations: 3000,
    mix: [#{tool: "echo", arguments: #{message: "hi"}, weight: 3}, #{method: "ping", weight: 1}]});
check(c.sent == c.ok + c.timeouts + c.cancelled, "closed identity");
let o = load::open(#{name: "open", sessions: 200, rate: 400, duration: "2s"});
let k = load::connect(#{name: "connect", sessions: 200, rate: 1000, hold: "200ms"});
"#;

#[test]
fn worker_processes_give_the_same_totals_as_one_process_and_leave_no_children() {
    let d = tempdir();
    let (o1, one) = run(&d, PHASES, "one", None, &[]);
    assert_eq!(o1.status.code(), Some(0), "{}", String::from_utf8_lossy(&o1.stderr));
    // 50 connections per process: 200 sessions need 4 workers, and the built-in server
    // runs as `serve --workers 5` of its own.
    let (o4, many) = run(&d, PHASES, "many", Some(50), &[]);
    assert_eq!(o4.status.code(), Some(0), "{}", String::from_utf8_lossy(&o4.stderr));
    let (p1, p4) = (phases(&one), phases(&many));
    assert_eq!(p4.len(), 3);
    for (a, b) in p1.iter().zip(&p4) {
        assert_identity(a);
        assert_identity(b);
        assert!(a["workers"].as_array().is_none_or(|w| w.is_empty()), "one process: {}", a["workers"]);
        assert_eq!(b["workers"].as_array().map(Vec::len), Some(4), "{} ran on 4 workers", b["name"]);
        assert!(b["workers"].as_array().unwrap().iter().all(|w| w["status"] == "ok"), "{}", b["workers"]);
        assert_eq!(b["status"], "completed", "{}", b["notes"]);
        assert_eq!(n(&a["connect"], "ok"), 200);
        assert_eq!(n(&b["connect"], "ok"), 200, "{}: {}", b["name"], b["connect"]);
    }
    for (name, i) in [("closed", 0), ("open", 1), ("connect", 2)] {
        assert_eq!(p1[i]["name"], name);
        assert_eq!((n(&p1[i], "sent"), n(&p1[i], "ok")), (n(&p4[i], "sent"), n(&p4[i], "ok")), "{name} totals");
    }
    assert_eq!(n(&p4[0], "sent"), 3000);
    assert_eq!(n(&p4[1], "sent"), 800);
    assert_eq!(n(&p4[1]["latency"], "count"), 800, "merged histograms hold every request");
    let per_kind: u64 = p4[0]["per_kind"].as_object().unwrap().values().map(|k| n(k, "sent")).sum();
    assert_eq!(per_kind, 3000);
    let timeline_sent: u64 = p4[1]["timeline"].as_array().unwrap().iter().map(|e| n(e, "sent")).sum();
    assert_eq!(timeline_sent, 800, "worker timelines merge by second");
    // Each second keeps its latencies, merged over the workers: every reply is in them.
    let timeline_latencies: u64 = p4[1]["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| mcpscript::load::result::decode(e["hist"].as_str().unwrap_or_default()).map_or(0, |h| h.len()))
        .sum();
    assert_eq!(timeline_latencies, n(&p4[1], "ok") + errors(&p4[1]), "per-second latencies merge too");
    // Resources: coordinator, 4 workers and the 5 server processes were sampled.
    let procs = p4[0]["resources"]["processes"].as_array().unwrap();
    assert_eq!(procs.iter().filter(|p| p["role"] == "worker").count(), 4, "{procs:?}");
    assert!(procs.iter().filter(|p| p["role"] == "target").count() >= 2, "{procs:?}");
    assert!(n(&p4[0]["resources"], "mcpscript_peak_rss_bytes") > 0);
    for p in &p4 {
        assert_gone(&child_pids(p));
    }
}

#[test]
fn segments_merge_to_the_totals_of_one_run() {
    let d = tempdir();
    let (_, whole) = run(&d, PHASES, "whole", None, &[]);
    let (o1, _) = run(&d, PHASES, "seg1", None, &["--segment", "1/2"]);
    let (o2, _) = run(&d, PHASES, "seg2", None, &["--segment", "2/2"]);
    assert_eq!((o1.status.code(), o2.status.code()), (Some(0), Some(0)));
    let out = d.path().join("merged");
    let m = Command::new(BIN)
        .args([
            "merge",
            d.path().join("seg1").to_str().unwrap(),
            d.path().join("seg2/results.json").to_str().unwrap(),
            "--out",
        ])
        .arg(&out)
        .output()
        .unwrap();
    assert_eq!(m.status.code(), Some(0), "{}", String::from_utf8_lossy(&m.stderr));
    let merged: Value = serde_json::from_slice(&std::fs::read(out.join("results.json")).unwrap()).unwrap();
    let (pw, pm) = (phases(&whole), phases(&merged));
    assert_eq!(pm.len(), 3);
    for (a, b) in pw.iter().zip(&pm) {
        assert_identity(b);
        for k in ["sent", "ok", "sessions"] {
            assert_eq!(n(a, k), n(b, k), "{} {k}", a["name"]);
        }
        assert_eq!(n(&a["connect"], "ok"), n(&b["connect"], "ok"));
        assert_eq!(n(&b["latency"], "count"), n(&a["latency"], "count"), "{}", a["name"]);
        assert_eq!(b["segments"], serde_json::json!([[1, 2], [2, 2]]));
        // Who limited the phase is judged again on the merged evidence.
        assert!(b["limited_by"]["verdict"].is_string() && !b["limited_by"]["reasons"].as_array().unwrap().is_empty());
        assert!(b["limited_by"]["mcpscript_cpu"]["mean_pct"].is_number(), "{}", b["limited_by"]);
    }
    // The open phase's send lags of both segments are merged: one per request sent.
    assert_eq!(n(&pm[1]["limited_by"]["send_lag"], "count"), n(&pm[1], "sent"));
    // Checks of both segments are counted.
    assert_eq!(merged["summary"]["total_assertions"], 2);
    let bad = Command::new(BIN).args(["run", "x.rhai", "--segment", "3/2"]).output().unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("segment"), "{}", String::from_utf8_lossy(&bad.stderr));
}

/// Workers of the `mcpscript run` process `parent`.
fn workers_of(parent: u32) -> Vec<u32> {
    let mut out = vec![];
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else { continue };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { continue };
        let ppid: Option<u32> =
            stat.rsplit(')').next().and_then(|r| r.split_whitespace().nth(1)).and_then(|p| p.parse().ok());
        let cmd = std::fs::read_to_string(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        if ppid == Some(parent) && cmd.split('\0').nth(1) == Some("worker") {
            out.push(pid);
        }
    }
    out
}

fn wait_for_workers(child: &Child, count: usize) -> Vec<u32> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let w = workers_of(child.id());
        if w.len() >= count || Instant::now() > deadline {
            return w;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn wait_exit(child: &mut Child, limit: Duration) -> Option<i32> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s.code();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("mcpscript run did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

const LONG_CLOSED: &str = r#"
let r = load::closed(#{name: "long", sessions: 200, duration: param("duration", "4s")});
log(`status ${r.status}`);
"#;

#[test]
fn a_worker_killed_mid_run_is_reported_and_the_run_completes() {
    let d = tempdir();
    let mut child =
        command(&d, LONG_CLOSED, "out", Some(50), &[]).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    let workers = wait_for_workers(&child, 4);
    assert_eq!(workers.len(), 4, "four workers started");
    // Kept fixed: the load runs for a while before the kill (the ticks kept are asserted).
    std::thread::sleep(Duration::from_millis(2000));
    let victim = workers[1];
    // SAFETY: killing a process this test observed as a child of its own child.
    unsafe { libc::kill(victim as libc::pid_t, libc::SIGKILL) };
    let code = wait_exit(&mut child, Duration::from_secs(40));
    assert_eq!(code, Some(0), "the script itself passed");
    let v: Value = serde_json::from_slice(&std::fs::read(d.path().join("out/results.json")).unwrap()).unwrap();
    let p = &phases(&v)[0];
    assert_eq!(p["status"], "partial");
    assert_identity(p);
    let reports = p["workers"].as_array().unwrap();
    let dead: Vec<&Value> = reports.iter().filter(|w| w["failed"] == true).collect();
    assert_eq!(dead.len(), 1, "{reports:?}");
    assert_eq!(dead[0]["pid"].as_u64(), Some(victim as u64));
    assert!(dead[0]["status"].as_str().unwrap().contains("killed by signal 9"), "{}", dead[0]["status"]);
    assert!(p["notes"].to_string().contains("killed by signal 9"), "{}", p["notes"]);
    // The three others reported in full; the dead one's ticks are kept.
    assert!(n(p, "ok") > 1000, "{}", n(p, "ok"));
    assert_gone(&child_pids(p));
}

#[test]
fn ctrl_c_stops_the_workers_and_still_writes_results() {
    let d = tempdir();
    let mut child = command(&d, LONG_CLOSED, "out", Some(50), &["--set", "duration=60s"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let workers = wait_for_workers(&child, 4);
    assert_eq!(workers.len(), 4);
    // Kept fixed: the load runs for a while before the Ctrl-C (results are still written).
    std::thread::sleep(Duration::from_millis(1500));
    let t0 = Instant::now();
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) };
    let code = wait_exit(&mut child, Duration::from_secs(30));
    assert_eq!(code, Some(130));
    assert!(t0.elapsed() < Duration::from_secs(15), "stopped promptly: {:?}", t0.elapsed());
    let v: Value = serde_json::from_slice(&std::fs::read(d.path().join("out/results.json")).unwrap()).unwrap();
    assert_eq!(v["status"], "cancelled");
    let p = &phases(&v)[0];
    assert_eq!(p["status"], "cancelled");
    assert_identity(p);
    assert!(n(p, "ok") > 0);
    assert!(p["workers"].as_array().unwrap().iter().all(|w| w["failed"] == false), "{}", p["workers"]);
    let mut pids = child_pids(p);
    pids.extend(workers);
    assert_gone(&pids);
}

#[test]
fn asking_for_more_than_the_machine_holds_fails_fast_with_the_largest_count() {
    let d = tempdir();
    let t0 = Instant::now();
    let (o, v) = run(&d, r#"load::connect(#{sessions: 9000000, rate: 1000});"#, "out", None, &[]);
    assert!(t0.elapsed() < Duration::from_secs(10));
    assert_eq!(o.status.code(), Some(1));
    let err = v["scenarios"][0]["error"]["message"].as_str().unwrap().to_string();
    assert!(err.contains("largest count"), "{err}");
}
