//! Interop harness: the official MCP reference server and SDK clients, driven from
//! Rust integration tests. See `tests/interop/README.md` for what the external
//! programs do and print.
//!
//! - [`ensure_setup`] installs the pinned npm packages and the Python venv
//!   (`tests/interop/setup.sh`), once per test process.
//! - [`Everything`] runs `@modelcontextprotocol/server-everything` on a free
//!   127.0.0.1 port (Streamable HTTP or legacy SSE) and kills it on drop.
//! - [`stdio_command`] is the command line that runs it over stdio ([`py_stdio_command`]
//!   one of the Python scripts).
//! - [`PyServer`] runs `tests/interop/py_server.py`, a small third-party server on
//!   the official Python SDK (Streamable HTTP, any free port), and kills it on drop.
//! - [`run_sdk_client`] runs the TypeScript or Python SDK client script against
//!   a target and returns its one-line JSON verdict.
//!
//! Only std (plus `serde_json`, a normal dependency of the crate) is used.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

/// How long a server process may take to start listening.
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

/// The interpreter of the Python venv that `setup.sh` makes (`tests/interop/.venv`).
fn venv_python() -> PathBuf {
    interop_dir().join(".venv/bin/python")
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
    process: ServerProcess,
    /// `http://127.0.0.1:PORT/mcp` (Streamable HTTP) or `sse+http://127.0.0.1:PORT/sse` (legacy SSE).
    pub url: String,
    pub port: u16,
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
        self.process.pid()
    }

    /// The last lines the server printed (stdout and stderr interleaved), for diagnostics.
    pub fn log_tail(&self) -> String {
        self.process.log_tail()
    }

    fn start(mode: Mode) -> Everything {
        ensure_setup();
        // The free port can be taken between probing and binding: retry a few times.
        start_retrying(&format!("server-everything ({})", mode.arg()), 3, || Self::try_start(mode, super::free_port()))
    }

    /// Err((message, worth retrying on another port)).
    fn try_start(mode: Mode, port: u16) -> Result<Everything, (String, bool)> {
        let entry = everything_entry();
        let mut cmd = Command::new("node");
        cmd.arg(&entry).arg(mode.arg()).env("PORT", port.to_string()).current_dir(interop_dir());
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let (process, _) = ServerProcess::launch(cmd, &mode.ready_line(port), Some(addr)).map_err(|(msg, _)| {
            let retry = msg.contains("EADDRINUSE") || msg.contains("already in use");
            (format!("port {port}: {msg}"), retry)
        })?;
        Ok(Everything { process, url: mode.url(port), port })
    }
}

/// A running `tests/interop/py_server.py`: a small MCP server built on the official
/// Python SDK (`mcp` 2.x `MCPServer`, with the SDK's default settings), serving
/// Streamable HTTP on 127.0.0.1; killed (by PID) and reaped on drop.
///
/// Tools `echo(message)` (returns the message as is) and `add(a, b)`, resource
/// `info://server`, prompt `greet(name)`.
pub struct PyServer {
    process: ServerProcess,
    /// `http://127.0.0.1:PORT/mcp`.
    pub url: String,
    pub port: u16,
}

impl PyServer {
    /// Starts it on a port the OS picks (it binds port 0 and prints the URL it got).
    pub fn start() -> PyServer {
        ensure_setup();
        start_retrying("py_server.py", 1, Self::try_start)
    }

    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// The last lines the server printed (stdout and stderr interleaved), for diagnostics.
    pub fn log_tail(&self) -> String {
        self.process.log_tail()
    }

    fn try_start() -> Result<PyServer, (String, bool)> {
        let script = interop_dir().join("py_server.py");
        let mut cmd = Command::new(venv_python());
        cmd.arg(&script).arg("0").current_dir(interop_dir()).env("PYTHONUNBUFFERED", "1");
        // It prints `listening http://127.0.0.1:PORT/mcp` on stdout once it accepts connections.
        let (process, line) = ServerProcess::launch(cmd, "listening http://", None)?;
        let url = line.as_deref().and_then(|l| l.split_whitespace().nth(1)).unwrap_or_default().to_string();
        let port = url
            .strip_prefix("http://127.0.0.1:")
            .and_then(|rest| rest.split('/').next())
            .and_then(|p| p.parse::<u16>().ok())
            .ok_or_else(|| (format!("unexpected ready line {line:?}:\n{}", process.log_tail()), false))?;
        Ok(PyServer { process, url, port })
    }
}

/// A small interop server script in `tests/interop/` (`ts_server_requests.mjs` on Node,
/// `py_sampling_server.py` on the venv's Python) that binds 127.0.0.1 on a port the OS
/// picks and prints `listening http://127.0.0.1:PORT/mcp` once ready; killed (by PID) and
/// reaped on drop.
pub struct ScriptServer {
    process: ServerProcess,
    /// `http://127.0.0.1:PORT/mcp`.
    pub url: String,
}

impl ScriptServer {
    /// Starts `tests/interop/FILE` with node (`.mjs`) or the venv's Python (`.py`).
    pub fn start(file: &str) -> ScriptServer {
        Self::start_with(file, &[])
    }

    /// [`ScriptServer::start`] with command-line arguments for the script.
    pub fn start_with(file: &str, args: &[&str]) -> ScriptServer {
        ensure_setup();
        start_retrying(file, 1, || {
            let mut cmd = if file.ends_with(".py") { Command::new(venv_python()) } else { Command::new("node") };
            cmd.arg(interop_dir().join(file)).args(args).current_dir(interop_dir()).env("PYTHONUNBUFFERED", "1");
            let (process, line) = ServerProcess::launch(cmd, "listening http://", None)?;
            let url = line.as_deref().and_then(|l| l.split_whitespace().nth(1)).unwrap_or_default().to_string();
            if !url.starts_with("http://127.0.0.1:") {
                return Err((format!("unexpected ready line {line:?}:\n{}", process.log_tail()), false));
            }
            Ok(ScriptServer { process, url })
        })
    }

    /// The last lines the server printed, for diagnostics.
    pub fn log_tail(&self) -> String {
        self.process.log_tail()
    }
}

/// Calls `attempt` up to `attempts` times while it fails with "worth retrying";
/// panics with the last error.
fn start_retrying<T>(what: &str, attempts: usize, mut attempt: impl FnMut() -> Result<T, (String, bool)>) -> T {
    let mut last_err = String::new();
    for _ in 0..attempts {
        match attempt() {
            Ok(server) => return server,
            Err((msg, retry)) => {
                last_err = msg;
                if !retry {
                    break;
                }
            }
        }
    }
    panic!("could not start {what}: {last_err}");
}

/// A server child process whose stdout and stderr are drained for its whole life
/// into a tail of recent lines; killed (SIGKILL, by PID) and reaped on drop.
struct ServerProcess {
    child: Child,
    log: Arc<Mutex<VecDeque<String>>>,
}

impl ServerProcess {
    /// Spawns `cmd` (stdin null, output drained) and waits up to [`START_TIMEOUT`] until
    /// a line of its output contains `ready_needle` (returned) or, when `probe` is
    /// given, a TCP connection to it succeeds (then `None`).
    ///
    /// Err((message with the output's tail, false)); callers decide about retrying.
    fn launch(
        mut cmd: Command,
        ready_needle: &str,
        probe: Option<SocketAddr>,
    ) -> Result<(ServerProcess, Option<String>), (String, bool)> {
        let program = cmd.get_program().to_string_lossy().into_owned();
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| (format!("spawn {program}: {e}"), false))?;
        let mut process = ServerProcess { child, log: Arc::new(Mutex::new(VecDeque::new())) };

        // Drain both pipes for the server's whole life: servers log requests, and a
        // full pipe would block them.
        let ready: Arc<OnceLock<String>> = Arc::new(OnceLock::new());
        let stdout = process.child.stdout.take().expect("piped stdout");
        let stderr = process.child.stderr.take().expect("piped stderr");
        spawn_line_drain(stdout, "out", process.log.clone(), ready_needle.to_string(), ready.clone());
        spawn_line_drain(stderr, "err", process.log.clone(), ready_needle.to_string(), ready.clone());

        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Ok(Some(status)) = process.child.try_wait() {
                // Give the drain threads a moment to collect the last lines.
                thread::sleep(Duration::from_millis(100));
                return Err((format!("exited early ({status}):\n{}", process.log_tail()), false));
            }
            if let Some(line) = ready.get() {
                return Ok((process, Some(line.clone())));
            }
            if probe.is_some_and(|addr| TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()) {
                return Ok((process, None));
            }
            if Instant::now() >= deadline {
                let tail = process.log_tail();
                // `process` drops here: the child is killed and reaped.
                return Err((format!("not ready after {START_TIMEOUT:?}:\n{tail}"), false));
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn log_tail(&self) -> String {
        join_lines(&self.log)
    }
}

impl Drop for ServerProcess {
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

/// The command line that runs `tests/interop/FILE` on the venv's Python with `args`, for
/// the target syntax `stdio:COMMAND ARGS` (unquoted: the checkout path must not contain
/// whitespace).
pub fn py_stdio_command(file: &str, args: &[&str]) -> String {
    ensure_setup();
    let mut line = format!("{} {}", venv_python().display(), interop_dir().join(file).display());
    for a in args {
        line.push(' ');
        line.push_str(a);
    }
    line
}

/// Runs an official-SDK client script (`"node"`: `sdk_client.mjs`, TypeScript SDK;
/// `"python"`: `py_client.py`, Python SDK; `"python-stateless"`: `py_stateless_client.py`,
/// the Python SDK in the stateless revision, printing more) with `args` (a URL such as
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
            let mut c = Command::new(venv_python());
            c.arg(dir.join("py_client.py"));
            c
        }
        "python-stateless" => {
            let mut c = Command::new(venv_python());
            c.arg(dir.join("py_stateless_client.py"));
            c
        }
        other => panic!("run_sdk_client: unknown lang {other:?} (want \"node\", \"python\" or \"python-stateless\")"),
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
pub struct BoundedOutput {
    pub status: Option<ExitStatus>,
    pub stdout: String,
    pub stderr: String,
}

/// Spawns `cmd` with piped stdout/stderr, waits at most `limit`, kills it (and its
/// process group, when it leads one) on timeout. Output readers are given a short
/// grace period after exit, so a grandchild that inherited a pipe cannot hang us.
pub fn run_bounded(mut cmd: Command, limit: Duration) -> std::io::Result<BoundedOutput> {
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
/// setting `ready` to the first line that contains `ready_line`.
fn spawn_line_drain<R: Read + Send + 'static>(
    pipe: R,
    tag: &'static str,
    log: Arc<Mutex<VecDeque<String>>>,
    ready_line: String,
    ready: Arc<OnceLock<String>>,
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
                        let _ = ready.set(line.clone());
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

/// An exit status for messages: `exit status: 1`, `signal: 9 (SIGKILL)` or `timed out`.
pub fn describe_status(status: Option<ExitStatus>) -> String {
    match status {
        Some(s) => s.to_string(),
        None => "timed out".to_string(),
    }
}

/// The official conformance suite's client-mode tally, `Passed: N/M, F failed, W
/// warnings`, from its output: `(passed, total, failed, warnings)`.
pub fn conformance_tally(text: &str) -> Option<(u32, u32, u32, u32)> {
    // The line may carry colour codes: keep what follows "Passed: ".
    let line = text.lines().find_map(|l| l.split_once("Passed: ").map(|(_, rest)| rest))?;
    let line: String = line.chars().filter(|c| !c.is_control()).collect();
    let nums: Vec<u32> = line
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .filter_map(|s| s.parse().ok())
        .take(4)
        .collect();
    match nums[..] {
        [passed, total, failed, warnings] => Some((passed, total, failed, warnings)),
        _ => None,
    }
}

/// `conformance client` running `tests/conformance/client.sh` (with the mcpscript binary
/// `bin`) for `scenario`, its results in `dir`: the output, bounded to two minutes, and its
/// tally (`None` when the suite printed none).
pub fn conformance_client(
    scenario: &str,
    dir: &std::path::Path,
    bin: &str,
) -> (BoundedOutput, Option<(u32, u32, u32, u32)>) {
    let root = env!("CARGO_MANIFEST_DIR");
    let mut cmd = Command::new(format!("{root}/tests/interop/node_modules/.bin/conformance"));
    cmd.args([
        "client",
        "--command",
        &format!("bash {root}/tests/conformance/client.sh"),
        "--scenario",
        scenario,
        "-o",
    ])
    .arg(dir)
    .env("MCPSCRIPT_BIN", bin)
    .current_dir(root);
    let out = run_bounded(cmd, Duration::from_secs(120)).unwrap();
    // The suite prints its tally on stdout or stderr depending on the version.
    let tally = conformance_tally(&out.stdout).or_else(|| conformance_tally(&out.stderr));
    (out, tally)
}
