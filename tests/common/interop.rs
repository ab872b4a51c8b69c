//! Interop harness: the official MCP reference server and SDK clients, driven from
//! Rust integration tests. See `tests/interop/README.md` for what the external
//! programs do and print.
//!
//! - [`ensure_setup`] installs the pinned npm packages and the Python venv
//!   (`tests/interop/setup.sh`), once per test process.
//! - [`Everything`] runs `@modelcontextprotocol/server-everything` on a free
//!   127.0.0.1 port (Streamable HTTP or legacy SSE) and kills it on drop.
//! - [`stdio_command`] is the command line that runs it over stdio.
//! - [`run_sdk_client`] runs the TypeScript or Python SDK client script against
//!   a target and returns its one-line JSON verdict.
//!
//! Only std (plus `serde_json`, a normal dependency of the crate) is used.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

/// How long a server-everything process may take to start listening.
const START_TIMEOUT: Duration = Duration::from_secs(20);
/// Hard limit on one SDK client run.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(30);
/// The limit the client scripts apply to themselves, so that they report a
/// timeout as `{"ok":false,...}` before the hard limit kills them.
const CLIENT_SELF_TIMEOUT_MS: &str = "25000";
/// Hard limit on `setup.sh` (a cold `npm ci` + `pip install` takes about 30 s).
const SETUP_TIMEOUT: Duration = Duration::from_secs(600);
/// Lines of server output kept for failure messages.
const LOG_TAIL_LINES: usize = 200;

/// `CARGO_MANIFEST_DIR/tests/interop`.
pub fn interop_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests").join("interop")
}

/// Absolute path of server-everything's entry point.
pub fn everything_entry() -> PathBuf {
    interop_dir().join("node_modules/@modelcontextprotocol/server-everything/dist/index.js")
}

/// Runs `tests/interop/setup.sh` once per test process; panics with its output if
/// it fails (every later call panics with the same message).
pub fn ensure_setup() {
    static SETUP: OnceLock<Result<(), String>> = OnceLock::new();
    let result = SETUP.get_or_init(|| {
        let script = interop_dir().join("setup.sh");
        let mut cmd = Command::new("bash");
        cmd.arg(&script).current_dir(interop_dir()).stdin(Stdio::null());
        let out = run_bounded(cmd, SETUP_TIMEOUT).map_err(|e| format!("could not run {}: {e}", script.display()))?;
        match out.status {
            Some(s) if s.success() => Ok(()),
            status => Err(format!(
                "{} failed ({}):\n--- stdout ---\n{}\n--- stderr ---\n{}",
                script.display(),
                describe_status(status),
                out.stdout,
                out.stderr
            )),
        }
    });
    if let Err(msg) = result {
        panic!("interop setup failed: {msg}");
    }
}

/// Which transport a server-everything process serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    StreamableHttp,
    Sse,
}

impl Mode {
    fn arg(self) -> &'static str {
        match self {
            Mode::StreamableHttp => "streamableHttp",
            Mode::Sse => "sse",
        }
    }

    /// The line (on stderr) that server-everything prints once it listens.
    fn ready_line(self, port: u16) -> String {
        match self {
            Mode::StreamableHttp => format!("MCP Streamable HTTP Server listening on port {port}"),
            Mode::Sse => format!("Server is running on port {port}"),
        }
    }

    fn url(self, port: u16) -> String {
        match self {
            Mode::StreamableHttp => format!("http://127.0.0.1:{port}/mcp"),
            Mode::Sse => format!("sse+http://127.0.0.1:{port}/sse"),
        }
    }
}

/// A running `@modelcontextprotocol/server-everything`; killed (by PID) and reaped on drop.
///
/// It listens on every interface, but tests must only ever connect to 127.0.0.1
/// (which is what [`Everything::url`] names). It never expires sessions, so keep runs short.
pub struct Everything {
    child: Child,
    /// `http://127.0.0.1:PORT/mcp` (Streamable HTTP) or `sse+http://127.0.0.1:PORT/sse` (legacy SSE).
    pub url: String,
    pub port: u16,
    log: Arc<Mutex<VecDeque<String>>>,
}

impl Everything {
    /// Streamable HTTP on a free port; `url` is `http://127.0.0.1:PORT/mcp`.
    pub fn start_http() -> Everything {
        Self::start(Mode::StreamableHttp)
    }

    /// Legacy HTTP+SSE on a free port; `url` is `sse+http://127.0.0.1:PORT/sse`
    /// (GET that path for the `endpoint` event, then POST to `/message?sessionId=...`).
    pub fn start_sse() -> Everything {
        Self::start(Mode::Sse)
    }

    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The last lines the server printed (stdout and stderr interleaved), for diagnostics.
    pub fn log_tail(&self) -> String {
        join_lines(&self.log)
    }

    fn start(mode: Mode) -> Everything {
        ensure_setup();
        let mut last_err = String::new();
        // The free port can be taken between probing and binding: retry a few times.
        for _attempt in 0..3 {
            match Self::try_start(mode, super::free_port()) {
                Ok(server) => return server,
                Err((msg, retry)) => {
                    last_err = msg;
                    if !retry {
                        break;
                    }
                }
            }
        }
        panic!("could not start server-everything ({}): {last_err}", mode.arg());
    }

    /// Err((message, worth retrying on another port)).
    fn try_start(mode: Mode, port: u16) -> Result<Everything, (String, bool)> {
        let entry = everything_entry();
        let mut child = Command::new("node")
            .arg(&entry)
            .arg(mode.arg())
            .env("PORT", port.to_string())
            .current_dir(interop_dir())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| (format!("spawn node {}: {e}", entry.display()), false))?;

        // Drain both pipes for the server's whole life: it logs every request to
        // stdout, and a full pipe would block its event loop.
        let log = Arc::new(Mutex::new(VecDeque::new()));
        let ready = Arc::new(AtomicBool::new(false));
        let ready_line = mode.ready_line(port);
        let stdout = child.stdout.take().expect("piped stdout");
        let stderr = child.stderr.take().expect("piped stderr");
        spawn_line_drain(stdout, "out", log.clone(), ready_line.clone(), ready.clone());
        spawn_line_drain(stderr, "err", log.clone(), ready_line, ready.clone());

        let mut server = Everything { child, url: mode.url(port), port, log };
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Ok(Some(status)) = server.child.try_wait() {
                // Give the drain threads a moment to collect the last lines.
                thread::sleep(Duration::from_millis(100));
                let tail = server.log_tail();
                let retry = tail.contains("EADDRINUSE") || tail.contains("already in use");
                return Err((format!("exited early ({status}) on port {port}:\n{tail}"), retry));
            }
            if ready.load(Ordering::SeqCst) || TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return Ok(server);
            }
            if Instant::now() >= deadline {
                let tail = server.log_tail();
                // `server` drops here: the child is killed and reaped.
                return Err((format!("not listening on 127.0.0.1:{port} after {START_TIMEOUT:?}:\n{tail}"), false));
            }
            thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Everything {
    fn drop(&mut self) {
        // Child::kill sends SIGKILL to this child's PID only; then reap it.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The command line that runs server-everything over stdio, for the target syntax
/// `stdio:COMMAND ARGS`: `node /abs/path/to/.../dist/index.js stdio`.
///
/// Arguments are separated by single spaces and not quoted, so the checkout path
/// must not contain whitespace.
pub fn stdio_command() -> String {
    ensure_setup();
    format!("node {} stdio", everything_entry().display())
}

/// Runs an official-SDK client script (`"node"`: `sdk_client.mjs`, TypeScript SDK;
/// `"python"`: `py_client.py`, Python SDK) with `args` (a URL such as
/// `http://127.0.0.1:PORT/mcp` or `sse+http://...`, or `stdio COMMAND ARGS...`),
/// bounded by 30 s, and returns its last stdout line parsed as JSON:
/// `{"ok":true,"tools":[...],"echo":"...","serverName":"...","protocolVersion":"..."}`
/// or `{"ok":false,"error":"..."}`.
///
/// Panics if the script cannot be run, times out or prints no JSON. When the verdict
/// is not `ok`, the script's stderr is printed (the test harness shows it on failure).
pub fn run_sdk_client(lang: &str, args: &[&str]) -> serde_json::Value {
    ensure_setup();
    let dir = interop_dir();
    let mut cmd = match lang {
        "node" | "ts" | "typescript" => {
            let mut c = Command::new("node");
            c.arg(dir.join("sdk_client.mjs"));
            c
        }
        "python" | "py" => {
            let mut c = Command::new(dir.join(".venv/bin/python"));
            c.arg(dir.join("py_client.py"));
            c
        }
        other => panic!("run_sdk_client: unknown lang {other:?} (want \"node\" or \"python\")"),
    };
    cmd.args(args)
        .current_dir(&dir)
        .env("MCP_INTEROP_TIMEOUT_MS", CLIENT_SELF_TIMEOUT_MS)
        // Loopback only, never through a proxy.
        .env("NO_PROXY", "127.0.0.1,localhost")
        .env("no_proxy", "127.0.0.1,localhost")
        .env("PYTHONUNBUFFERED", "1")
        .stdin(Stdio::null());
    // Own process group, so a timeout can also kill a stdio server the client spawned.
    {
        use std::os::unix::process::CommandExt;
        cmd.process_group(0);
    }

    let what = format!("{lang} SDK client {args:?}");
    let out = run_bounded(cmd, CLIENT_TIMEOUT).unwrap_or_else(|e| panic!("{what}: cannot run: {e}"));
    if out.status.is_none() {
        panic!(
            "{what}: timed out after {CLIENT_TIMEOUT:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            out.stdout, out.stderr
        );
    }
    let line = out.stdout.lines().rev().map(str::trim).find(|l| !l.is_empty()).unwrap_or("");
    let value: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| {
        panic!(
            "{what}: last stdout line is not JSON ({e}); exit {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            describe_status(out.status),
            out.stdout,
            out.stderr
        )
    });
    if value.get("ok") != Some(&serde_json::Value::Bool(true)) {
        eprintln!("{what}: not ok (exit {}): {value}\n--- stderr ---\n{}", describe_status(out.status), out.stderr);
    }
    value
}

// ---- helpers -----------------------------------------------------------------

/// Output of a bounded run; `status` is None when it timed out (and was killed).
struct BoundedOutput {
    status: Option<ExitStatus>,
    stdout: String,
    stderr: String,
}

/// Spawns `cmd` with piped stdout/stderr, waits at most `limit`, kills it (and its
/// process group, when it leads one) on timeout. Output readers are given a short
/// grace period after exit, so a grandchild that inherited a pipe cannot hang us.
fn run_bounded(mut cmd: Command, limit: Duration) -> std::io::Result<BoundedOutput> {
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn()?;
    let out_rx = spawn_collect(child.stdout.take().expect("piped stdout"));
    let err_rx = spawn_collect(child.stderr.take().expect("piped stderr"));

    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break Some(status);
        }
        if Instant::now() >= deadline {
            kill_group_and_child(&mut child);
            break None;
        }
        thread::sleep(Duration::from_millis(20));
    };
    let grace = Duration::from_secs(3);
    let stdout = out_rx.recv_timeout(grace).unwrap_or_else(|_| "<stdout not closed>".into());
    let stderr = err_rx.recv_timeout(grace).unwrap_or_else(|_| "<stderr not closed>".into());
    Ok(BoundedOutput { status, stdout, stderr })
}

/// SIGKILL the child's process group (only if the child leads its own group), then
/// the child itself by PID, and reap it.
fn kill_group_and_child(child: &mut Child) {
    let pid = child.id();
    let leads_group = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok().and_then(|s| {
        // Fields after the parenthesised command name: state ppid pgrp ...
        let rest = &s[s.rfind(')')? + 1..];
        rest.split_whitespace().nth(2)?.parse::<u32>().ok()
    }) == Some(pid);
    if leads_group {
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{pid}")])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
    let _ = child.kill();
    let _ = child.wait();
}

fn spawn_collect<R: Read + Send + 'static>(mut pipe: R) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = pipe.read_to_end(&mut buf);
        let _ = tx.send(String::from_utf8_lossy(&buf).into_owned());
    });
    rx
}

/// Reads `pipe` line by line until EOF, keeping the last lines in `log` and
/// setting `ready` once a line contains `ready_line`.
fn spawn_line_drain<R: Read + Send + 'static>(
    pipe: R,
    tag: &'static str,
    log: Arc<Mutex<VecDeque<String>>>,
    ready_line: String,
    ready: Arc<AtomicBool>,
) {
    thread::spawn(move || {
        let mut reader = BufReader::new(pipe);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match reader.read_until(b'\n', &mut buf) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    let line = String::from_utf8_lossy(&buf).trim_end().to_string();
                    if line.contains(&ready_line) {
                        ready.store(true, Ordering::SeqCst);
                    }
                    let mut log = log.lock().unwrap_or_else(|p| p.into_inner());
                    if log.len() >= LOG_TAIL_LINES {
                        log.pop_front();
                    }
                    log.push_back(format!("[{tag}] {line}"));
                }
            }
        }
    });
}

fn join_lines(log: &Mutex<VecDeque<String>>) -> String {
    let log = log.lock().unwrap_or_else(|p| p.into_inner());
    log.iter().cloned().collect::<Vec<_>>().join("\n")
}

fn describe_status(status: Option<ExitStatus>) -> String {
    match status {
        Some(s) => s.to_string(),
        None => "timed out".to_string(),
    }
}
