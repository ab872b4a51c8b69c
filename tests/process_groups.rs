//! Every process mcpscript starts runs in its own process group, and the whole group dies
//! with it: after a timeout, when a managed server never gets ready, on Ctrl-C, and when
//! mcpscript itself is SIGKILLed (the `mcpscript reap` supervisor). The commands are
//! `sh -c` wrappers around a `sleep` whose duration is a marker unique to this test
//! process, found by scanning /proc/*/cmdline; nothing is waited for by sleeping, every
//! condition is polled with a deadline, and only processes carrying our markers (which
//! these tests started) are ever signalled, by PID.

use mcpscript::managed::{ManagedServer, Ready, ServerSpec, Which};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_mcpscript");

/// A `sleep` argument unique to this test and this test process, e.g. `61.4242`.
fn marker(whole: u32) -> String {
    format!("{whole}.{}", std::process::id())
}

/// PIDs of the running (not zombie) `sleep MARKER` processes.
fn sleepers(marker: &str) -> Vec<u32> {
    let mut found = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else { return found };
    for e in dir.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
        // A zombie's cmdline is empty.
        let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else { continue };
        let argv: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
        if argv.len() >= 2 && argv[0].ends_with(b"sleep") && argv[1] == marker.as_bytes() {
            found.push(pid);
        }
    }
    found
}

/// Polls `cond` every 20 ms until it holds or `within` passed.
fn eventually(within: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// On drop (also when a test fails), SIGKILLs whatever still carries the marker and the
/// mcpscript child, and reaps the child.
struct Cleanup {
    marker: String,
    child: Option<Child>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if let Some(c) = self.child.as_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
        for pid in sleepers(&self.marker) {
            // SAFETY: sends SIGKILL to a process carrying this test's unique marker, which
            // this test started.
            unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
        }
    }
}

fn spawn(args: &[&str]) -> Child {
    let mut cmd = Command::new(BIN);
    cmd.args(args).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped());
    // A test run started in the background of a non-interactive shell (as CI may start
    // it) inherits SIGINT ignored; Ctrl-C must mean what it means at a terminal.
    // SAFETY: an async-signal-safe call in the child between fork and exec.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut cmd, || {
            libc::signal(libc::SIGINT, libc::SIG_DFL);
            Ok(())
        });
    }
    cmd.spawn().unwrap()
}

/// Waits for the child to exit, at most `within` (then kills it and fails).
fn wait_exit(c: &mut Cleanup, within: Duration) -> std::process::ExitStatus {
    let child = c.child.as_mut().unwrap();
    let mut status = None;
    let exited = eventually(within, || {
        status = child.try_wait().unwrap();
        status.is_some()
    });
    assert!(exited, "mcpscript did not exit within {within:?}");
    status.unwrap()
}

#[test]
fn a_stdio_call_that_times_out_leaves_no_grandchild() {
    let m = marker(61);
    let target = format!("stdio:sh -c 'sleep {m}; echo done'");
    let mut c = Cleanup { marker: m.clone(), child: Some(spawn(&["call", &target, "ping", "--timeout", "1s"])) };
    assert!(eventually(Duration::from_secs(5), || !sleepers(&m).is_empty()), "the grandchild never started");
    let status = wait_exit(&mut c, Duration::from_secs(8));
    assert!(!status.success(), "a server that never answers fails the call");
    assert!(eventually(Duration::from_secs(4), || sleepers(&m).is_empty()), "`sleep {m}` outlived the call");
}

/// `mcpscript run` of a trivial script with `--server "sh -c 'sleep MARKER; true'"`, a
/// server that never accepts a session (nothing listens on port 1), in `dir`.
fn run_with_server(dir: &Path, m: &str, ready_timeout: &str) -> Vec<String> {
    let script = dir.join("x.rhai");
    std::fs::write(&script, "let x = 1;\n").unwrap();
    let out = dir.join("out");
    [
        "run",
        script.to_str().unwrap(),
        "--server",
        &format!("sh -c 'sleep {m}; true'"),
        "--target",
        "tcp://127.0.0.1:1",
        "--server-ready-timeout",
        ready_timeout,
        "--out",
        out.to_str().unwrap(),
        "--no-history",
        "-q",
    ]
    .map(String::from)
    .to_vec()
}

#[test]
fn a_server_that_never_gets_ready_leaves_no_grandchild() {
    let m = marker(100);
    let dir = tempfile::tempdir().unwrap();
    let args = run_with_server(dir.path(), &m, "1s");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut c = Cleanup { marker: m.clone(), child: Some(spawn(&args)) };
    assert!(eventually(Duration::from_secs(5), || !sleepers(&m).is_empty()), "the grandchild never started");
    let status = wait_exit(&mut c, Duration::from_secs(8));
    assert!(!status.success(), "a server that is never ready fails the run");
    assert!(eventually(Duration::from_secs(4), || sleepers(&m).is_empty()), "`sleep {m}` outlived the run");
}

/// Starts mcpscript with a command whose `sleep MARKER` grandchild hangs, waits until the
/// grandchild runs, sends `sig` to mcpscript and expects the grandchild gone soon after.
fn grandchild_dies_when_mcpscript_gets(sig: libc::c_int, args: &[&str], m: &str) {
    let mut c = Cleanup { marker: m.to_string(), child: Some(spawn(args)) };
    assert!(eventually(Duration::from_secs(5), || !sleepers(m).is_empty()), "the grandchild never started");
    let pid = c.child.as_ref().unwrap().id();
    // SAFETY: signals our own child, not yet reaped.
    unsafe { libc::kill(pid as libc::pid_t, sig) };
    wait_exit(&mut c, Duration::from_secs(8));
    assert!(
        eventually(Duration::from_secs(5), || sleepers(m).is_empty()),
        "`sleep {m}` outlived mcpscript after signal {sig}"
    );
}

#[test]
fn sigkill_of_mcpscript_takes_a_stdio_servers_group_along() {
    let m = marker(62);
    let target = format!("stdio:sh -c 'sleep {m}; true'");
    grandchild_dies_when_mcpscript_gets(libc::SIGKILL, &["call", &target, "ping", "--timeout", "30s"], &m);
}

#[test]
fn sigkill_of_mcpscript_takes_a_managed_servers_group_along() {
    let m = marker(64);
    let dir = tempfile::tempdir().unwrap();
    let args = run_with_server(dir.path(), &m, "60s");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    grandchild_dies_when_mcpscript_gets(libc::SIGKILL, &args, &m);
}

#[test]
fn ctrl_c_of_mcpscript_takes_a_stdio_servers_group_along() {
    let m = marker(67);
    let target = format!("stdio:sh -c 'sleep {m}; true'");
    grandchild_dies_when_mcpscript_gets(libc::SIGINT, &["call", &target, "ping", "--timeout", "30s"], &m);
}

fn state(pid: u32) -> char {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    s.rsplit_once(") ").and_then(|(_, r)| r.chars().next()).unwrap_or('?')
}

/// The library, with `mcpscript reap` as its supervisor: suspend, resume and kill reach
/// every process of a managed server's group, and its exit status comes through unchanged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn managed_signals_reach_the_whole_group_through_the_supervisor() {
    mcpscript::util::proc::set_supervisor(Path::new(BIN).to_path_buf());
    let (a, b) = (marker(65), marker(66));
    let _cleanup = (Cleanup { marker: a.clone(), child: None }, Cleanup { marker: b.clone(), child: None });
    let spec = |command: String| ServerSpec {
        command: vec!["sh".into(), "-c".into(), command],
        env: vec![],
        cwd: None,
        target: None,
        ready: Ready::LogLine("up".into()),
        ready_timeout: Duration::from_secs(10),
    };
    let mut s = ManagedServer::start(spec(format!("sleep {a} & echo up; exec sleep {b}"))).await.expect("starts");
    let found = |m: &str| sleepers(m).first().copied();
    let until = |cond: &mut dyn FnMut() -> bool| eventually(Duration::from_secs(5), cond);
    assert!(until(&mut || found(&a).is_some() && found(&b).is_some()), "both sleeps run");
    let (pa, pb) = (found(&a).unwrap(), found(&b).unwrap());
    assert_eq!(s.pids(), vec![pb], "the PID reported is the command's (after its exec), not the supervisor's");
    s.suspend(Which::All).unwrap();
    assert!(until(&mut || state(pa) == 'T' && state(pb) == 'T'), "SIGSTOP reaches the background child too");
    s.resume(Which::All).unwrap();
    assert!(until(&mut || state(pa) != 'T' && state(pb) != 'T'), "SIGCONT reaches the background child too");
    assert_eq!(s.kill(Which::All).await.unwrap(), vec![pb]);
    assert!(until(&mut || sleepers(&a).is_empty() && sleepers(&b).is_empty()), "kill reaches the whole group");
    drop(s);

    let e = ManagedServer::start(spec("echo boom >&2; exit 3".into())).await.err().expect("must fail");
    let msg = e.to_string();
    assert!(msg.contains("exit status: 3") && msg.contains("boom"), "the command's own status and output: {msg}");
    let e = ManagedServer::start(ServerSpec { command: vec!["/no/such/server".into()], ..spec(String::new()) })
        .await
        .err()
        .expect("must fail");
    assert!(e.to_string().contains("no such command"), "a missing program is reported as before: {e}");
}

/// A suite's `server.command` string splits exactly like `--server`.
#[test]
fn a_suite_server_command_string_splits_like_dash_dash_server() {
    use mcpscript::client::target::split_command;
    use mcpscript::suite::manifest::{parse, SuiteFile};
    let line = "sh -c 'exec sleep 63.5' \"two words\"";
    let yaml = format!("name: s\nscenarios: []\nserver:\n  command: {}\n", serde_json::to_string(line).unwrap());
    let suite: SuiteFile = parse("suite.yaml", &yaml).unwrap();
    let args = suite.server.unwrap().command.args();
    assert_eq!(args, vec!["sh", "-c", "exec sleep 63.5", "two words"]);
    assert_eq!(args, split_command(line).unwrap(), "one rule for both");
    let listed: SuiteFile =
        parse("suite.yaml", "name: s\nscenarios: []\nserver:\n  command: [sh, -c, exec sleep 63.5]\n").unwrap();
    assert_eq!(listed.server.unwrap().command.args(), vec!["sh", "-c", "exec sleep 63.5"]);
    let e = parse::<SuiteFile>("suite.yaml", "name: s\nscenarios: []\nserver:\n  command: \"sh -c 'oops\"\n")
        .expect_err("an unterminated quote is refused");
    assert!(e.to_string().contains("unterminated quote"), "{e}");
    assert!(e.line.is_some(), "with its place: {e}");
}
