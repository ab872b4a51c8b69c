//! Request/response throughput and latency between mcpscript's client and server, next to
//! a minimal tokio newline-JSON echo pair measured on the same machine in the same run.
//!
//! ```text
//! cargo bench --bench transport                  # every case, 5 s each
//! BENCH_SECS=10 cargo bench --bench transport    # longer measurement windows
//! BENCH_ROUNDS=3 cargo bench --bench transport   # alternate the cases 3 times, add up
//! cargo bench --bench transport -- @1000         # only the 1,000-connection cases
//! cargo bench --bench transport -- echo tcp@1    # filters NAME[@CONNS]: any that matches
//!                                                # (NAME: part of the case name)
//! ```
//!
//! Cases, each at 1 and at 1,000 connections, closed loop, one request in flight per
//! connection (depth 1):
//! - `reference`: the minimal pair written below (tokio `TcpListener`, one task per
//!   connection, `BufReader` lines, `serde_json::Value` parse, reply `{"jsonrpc":"2.0",
//!   "id":ID,"result":{}}`). It is the yardstick of issue #2: mcpscript's tcp path should
//!   reach at least 80% of its throughput.
//! - `mcpscript tcp://`: `Session::connect` (which performs `initialize`) per connection,
//!   then `session.ping()` against `mcpscript::server::start` serving `tcp://`.
//! - `mcpscript http://`: the same over Streamable HTTP (reported as not available while
//!   that transport is unbuilt).
//!
//! Client and server are separate OS processes sharing the machine's cores, as in real use:
//! this binary re-executes itself with `MCPSCRIPT_BENCH_ROLE=ref-server` or `mcp-server`.
//! A server child prints `listening URL` lines then `ready` on stdout, dies with the
//! parent (PR_SET_PDEATHSIG) and is killed by PID when the bench ends. Servers run on a
//! multi-thread runtime with one worker per core (like `mcpscript serve`); clients on a
//! 2-thread runtime.
//!
//! Each case: connect every connection (paced, timed separately), warm up for 1 s, then
//! measure for `BENCH_SECS` (default 5). Only replies that complete inside the measurement
//! window count; their latency goes to a per-task HDR histogram, merged at the end. Errors
//! are counted separately. Every phase is bounded in time, so a stuck server cannot hang
//! the bench.
//!
//! Besides req/s and latency, the table shows the CPU time the client and the server
//! processes spent per reply, and how many cores' worth of unrelated work ran meanwhile
//! ("other"). On a shared machine other work lowers throughput, most for whichever case
//! it happens to overlap; `BENCH_ROUNDS` alternates the cases to spread it evenly, and the
//! final lines compare both throughput and CPU per reply ("efficiency": client + server
//! CPU per reply of the reference over mcpscript's, which background load disturbs less,
//! though not nothing). Trust the ratios only when "other" stays near zero.

use hdrhistogram::Histogram;
use mcpscript::client::{ClientOptions, Session, Target};
use mcpscript::server::{self, ServerConfig};
use serde_json::Value;
use std::future::Future;
use std::io::{BufRead, BufReader as StdBufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};

/// Environment variable that turns this binary into one of the server processes.
const ROLE_ENV: &str = "MCPSCRIPT_BENCH_ROLE";
/// Connection counts measured for every case.
const CONNECTION_COUNTS: [usize; 2] = [1, 1000];
/// Worker threads of the client runtime.
const CLIENT_THREADS: usize = 2;
/// Load before the measurement window opens (connections, caches, allocator, scheduler).
const WARMUP: Duration = Duration::from_secs(1);
/// Default length of the measurement window; `BENCH_SECS` overrides it.
const DEFAULT_SECS: f64 = 5.0;
/// Connections are opened in batches of this many per millisecond tick (<= 4,000/s).
const CONNECTS_PER_TICK: usize = 4;
/// Bound on the whole connect phase of one case.
const CONNECT_PHASE_LIMIT: Duration = Duration::from_secs(30);
/// How long load tasks get to finish their last request once the window closes.
const STOP_GRACE: Duration = Duration::from_secs(5);
/// Deadline of one `Session::connect` (TCP connect + `initialize`).
const SESSION_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Deadline of one mcpscript request; far above any healthy latency here.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Cores' worth of unrelated machine load during a window above which the table warns.
const OTHER_LOAD_WARNING: f64 = 0.1;
/// Largest latency the histograms hold, in microseconds (longer ones are clamped).
const HIST_MAX_US: u64 = 60_000_000;

fn main() {
    match std::env::var(ROLE_ENV).as_deref() {
        Ok("ref-server") => server_process(ref_server()),
        Ok("mcp-server") => server_process(mcp_server()),
        Ok(other) => {
            eprintln!("unknown {ROLE_ENV}={other}");
            std::process::exit(2);
        }
        Err(_) => bench(),
    }
}

// ---------------------------------------------------------------------------------------
// The driver: starts the servers, runs the cases, prints the table.
// ---------------------------------------------------------------------------------------

fn bench() {
    let secs = match std::env::var("BENCH_SECS") {
        Ok(s) => s.parse::<f64>().ok().filter(|s| *s > 0.0 && *s <= 3600.0).unwrap_or_else(|| {
            eprintln!("BENCH_SECS must be a number of seconds (0 < s <= 3600), got '{s}'");
            std::process::exit(2);
        }),
        Err(_) => DEFAULT_SECS,
    };
    let rounds = match std::env::var("BENCH_ROUNDS") {
        Ok(r) => r.parse::<u32>().ok().filter(|r| (1..=100).contains(r)).unwrap_or_else(|| {
            eprintln!("BENCH_ROUNDS must be a whole number from 1 to 100, got '{r}'");
            std::process::exit(2);
        }),
        Err(_) => 1,
    };
    let window = Duration::from_secs_f64(secs);
    // `cargo bench` passes `--bench`; other plain arguments select cases (see `selects`).
    let filters: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    let nofile = mcpscript::util::proc::raise_nofile_limit();

    println!(
        "transport bench: {} cores, client runtime {CLIENT_THREADS} threads, warm-up {} s, window {secs} s x {rounds} rounds, open files {nofile}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        WARMUP.as_secs_f64(),
    );
    let ref_server = ServerChild::spawn("ref-server");
    let mcp_server = ServerChild::spawn("mcp-server");
    let ref_addr = ref_server.url("tcp://").trim_start_matches("tcp://").to_string();
    let mcp_tcp: Target = mcp_server.url("tcp://").parse().expect("the server's tcp URL is a valid target");
    let mcp_http: Target = mcp_server.url("http://").parse().expect("the server's http URL is a valid target");
    println!(
        "servers: reference pid {} at tcp://{ref_addr}; mcpscript pid {} at {mcp_tcp} and {mcp_http}",
        ref_server.pid(),
        mcp_server.pid()
    );
    println!();

    // Rounds alternate the cases so that each meets the same background load; a case's
    // figures add up over its rounds.
    let mut rows: Vec<Row> = Vec::new();
    for conns in CONNECTION_COUNTS {
        let selected = |name: &str| filters.is_empty() || filters.iter().any(|f| selects(f, name, conns));
        for round in 1..=rounds {
            if rounds > 1 {
                eprintln!("-- {conns} conns, round {round} of {rounds}");
            }
            if selected(REFERENCE) {
                let addr = ref_addr.clone();
                let row = run_case(REFERENCE, conns, window, ref_server.pid(), move |_| RefConn::connect(addr.clone()));
                record(&mut rows, row);
            }
            if selected(MCP_TCP) {
                let (target, opts) = (mcp_tcp.clone(), client_options());
                let row = run_case(MCP_TCP, conns, window, mcp_server.pid(), move |_| {
                    McpConn::connect(target.clone(), opts.clone())
                });
                record(&mut rows, row);
            }
            if selected(MCP_HTTP) {
                let (target, opts) = (mcp_http.clone(), client_options());
                // A missing transport shows up as a failed first connect; skip the case then.
                let row = match probe(&mcp_http) {
                    Err(why) => Row { name: MCP_HTTP, conns, result: Err(why) },
                    Ok(()) => run_case(MCP_HTTP, conns, window, mcp_server.pid(), move |_| {
                        McpConn::connect(target.clone(), opts.clone())
                    }),
                };
                record(&mut rows, row);
            }
        }
    }
    drop(ref_server);
    drop(mcp_server);

    println!();
    print_table(&rows);
    println!();
    for conns in CONNECTION_COUNTS {
        let measured =
            |name: &str| rows.iter().find(|r| r.name == name && r.conns == conns).and_then(|r| r.result.as_ref().ok());
        if let (Some(mcp), Some(reference)) = (measured(MCP_TCP), measured(REFERENCE)) {
            // The second figure compares CPU per reply (client + server), which background
            // load disturbs less than throughput.
            println!(
                "mcpscript tcp / reference at {conns:>4} conns: {:5.1}% of the throughput (goal >= 80%), {:5.1}% of the efficiency",
                100.0 * mcp.rate() / reference.rate(),
                100.0 * reference.cpu_per_reply_us() / mcp.cpu_per_reply_us(),
            );
        }
    }
}

/// Case names.
const REFERENCE: &str = "reference (tokio echo)";
const MCP_TCP: &str = "mcpscript tcp://";
const MCP_HTTP: &str = "mcpscript http://";

/// Adds a round's row to the table: a new line, or merged into the same case's line.
fn record(rows: &mut Vec<Row>, row: Row) {
    match rows.iter_mut().find(|r| r.name == row.name && r.conns == row.conns) {
        None => rows.push(row),
        Some(existing) => match (&mut existing.result, row.result) {
            (Ok(sum), Ok(m)) => sum.absorb(m),
            // A failed round marks the whole case failed: its sum would mislead.
            (Ok(_), Err(e)) => existing.result = Err(e),
            (Err(_), _) => {}
        },
    }
}

/// Whether the command-line filter `NAME[@CONNS]` selects a case: NAME is a substring of
/// the case's name (may be empty), CONNS its exact connection count.
fn selects(filter: &str, name: &str, conns: usize) -> bool {
    let (part, count) = filter.split_once('@').map_or((filter, None), |(p, c)| (p, Some(c)));
    name.contains(part) && count.is_none_or(|c| c == conns.to_string())
}

/// Client options for the load: the defaults with bounded connect and request deadlines.
fn client_options() -> Arc<ClientOptions> {
    Arc::new(ClientOptions {
        connect_timeout: SESSION_CONNECT_TIMEOUT,
        request_timeout: REQUEST_TIMEOUT,
        ..Default::default()
    })
}

/// Opens (and drops) one session, to tell an unbuilt transport from a slow one.
fn probe(target: &Target) -> Result<(), String> {
    let rt = client_runtime();
    let result = rt.block_on(async {
        match Session::connect(target, client_options()).await {
            Ok(session) => {
                let pong = session.ping().await.map(|_| ()).map_err(|e| e.to_string());
                session.close().await;
                pong
            }
            Err(e) if e.to_string().contains("not built yet") => Err("not available yet".to_string()),
            Err(e) => Err(format!("unavailable: {e}")),
        }
    });
    rt.shutdown_timeout(Duration::from_secs(1));
    result
}

fn client_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(CLIENT_THREADS)
        .enable_all()
        .build()
        .expect("client runtime")
}

// ---------------------------------------------------------------------------------------
// Running one case.
// ---------------------------------------------------------------------------------------

/// One connection that can make one request at a time.
trait Conn: Send + 'static {
    /// Sends one request and waits for its reply.
    fn request(&mut self) -> impl Future<Output = Result<(), RequestError>> + Send;
}

/// A failed request; `fatal` means the connection is unusable and its task stops.
struct RequestError {
    fatal: bool,
    detail: String,
}

/// Phases of a case, shared by the driver and every load task.
const WARMING: u8 = 0;
const MEASURING: u8 = 1;
const STOPPED: u8 = 2;

/// What one load task (one connection) measured inside the window.
struct TaskStats {
    latency_us: Histogram<u64>,
    errors: u64,
    first_error: Option<String>,
}

/// The outcome of one case that ran.
struct Measured {
    connected: usize,
    connect_errors: usize,
    connect_time: Duration,
    window: Duration,
    latency_us: Histogram<u64>,
    errors: u64,
    /// Load tasks that did not finish within [`STOP_GRACE`] (their figures are lost).
    stuck: usize,
    first_error: Option<String>,
    /// CPU used during the window by the client, the server and everything else.
    cpu: CpuUse,
}

impl Measured {
    /// Successful replies per second inside the window.
    fn rate(&self) -> f64 {
        self.latency_us.len() as f64 / self.window.as_secs_f64()
    }

    /// CPU microseconds per successful reply spent in `seconds` of CPU time.
    fn per_reply_us(&self, seconds: f64) -> f64 {
        seconds * 1e6 / self.latency_us.len().max(1) as f64
    }

    /// Client plus server CPU microseconds per successful reply.
    fn cpu_per_reply_us(&self) -> f64 {
        self.per_reply_us(self.cpu.client + self.cpu.server)
    }

    /// Cores' worth of unrelated work during the windows.
    fn other_cores(&self) -> f64 {
        self.cpu.other / self.window.as_secs_f64()
    }

    /// Adds another round of the same case.
    fn absorb(&mut self, round: Measured) {
        self.connected = self.connected.min(round.connected);
        self.connect_errors += round.connect_errors;
        self.connect_time = self.connect_time.max(round.connect_time);
        self.window += round.window;
        self.latency_us.add(&round.latency_us).expect("histograms share their bounds");
        self.errors += round.errors;
        self.stuck += round.stuck;
        self.first_error = self.first_error.take().or(round.first_error);
        self.cpu.client += round.cpu.client;
        self.cpu.server += round.cpu.server;
        self.cpu.other += round.cpu.other;
    }
}

/// One line of the table: a case that ran, or why it could not.
struct Row {
    name: &'static str,
    conns: usize,
    result: Result<Measured, String>,
}

/// Runs one case on a fresh client runtime: connect `conns` connections with `connect`,
/// warm up, measure for `window`, stop. Prints a progress line to stderr.
fn run_case<C, F, Fut>(name: &'static str, conns: usize, window: Duration, server_pid: u32, connect: F) -> Row
where
    C: Conn,
    F: Fn(usize) -> Fut + Send + 'static,
    Fut: Future<Output = Result<C, String>> + Send + 'static,
{
    eprint!("{name} x {conns}: connecting ... ");
    let rt = client_runtime();
    let result = rt.block_on(async move {
        // Connect phase, paced at CONNECTS_PER_TICK per millisecond and bounded overall.
        let started = Instant::now();
        let mut pending = tokio::task::JoinSet::new();
        let mut tick = tokio::time::interval(Duration::from_millis(1));
        for i in 0..conns {
            if i % CONNECTS_PER_TICK == 0 {
                tick.tick().await;
            }
            pending.spawn(connect(i));
        }
        let mut established = Vec::with_capacity(conns);
        let mut connect_errors = 0;
        let mut first_error = None;
        let deadline = tokio::time::sleep(CONNECT_PHASE_LIMIT);
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                joined = pending.join_next() => match joined {
                    Some(Ok(Ok(c))) => established.push(c),
                    Some(Ok(Err(e))) => {
                        connect_errors += 1;
                        first_error.get_or_insert(e);
                    }
                    Some(Err(e)) => {
                        connect_errors += 1;
                        first_error.get_or_insert(format!("connect task failed: {e}"));
                    }
                    None => break,
                },
                _ = &mut deadline => {
                    connect_errors += pending.len();
                    first_error.get_or_insert(format!("connect phase exceeded {} s", CONNECT_PHASE_LIMIT.as_secs()));
                    pending.abort_all();
                    break;
                }
            }
        }
        let connect_time = started.elapsed();
        if established.is_empty() {
            return Err(first_error.unwrap_or_else(|| "no connection".into()));
        }
        eprint!("{} in {:.2} s; measuring ... ", established.len(), connect_time.as_secs_f64());

        // Load phase: every connection runs a closed loop until the phase says stop.
        let connected = established.len();
        let phase = Arc::new(AtomicU8::new(WARMING));
        let mut tasks = tokio::task::JoinSet::new();
        for conn in established {
            tasks.spawn(load_loop(conn, phase.clone()));
        }
        tokio::time::sleep(WARMUP).await;
        phase.store(MEASURING, Ordering::Relaxed);
        let opened = Instant::now();
        let cpu_before = CpuSample::take(server_pid);
        tokio::time::sleep(window).await;
        phase.store(STOPPED, Ordering::Relaxed);
        let window = opened.elapsed();
        let cpu = CpuSample::take(server_pid).since(&cpu_before);

        // Collect (bounded: a task stuck on a dead server is abandoned and counted).
        let mut latency_us = new_histogram();
        let mut errors = 0;
        let collect = async {
            while let Some(joined) = tasks.join_next().await {
                if let Ok(stats) = joined {
                    latency_us.add(&stats.latency_us).expect("histograms share their bounds");
                    errors += stats.errors;
                    if first_error.is_none() {
                        first_error = stats.first_error;
                    }
                }
            }
        };
        let _ = tokio::time::timeout(STOP_GRACE, collect).await;
        let stuck = tasks.len();
        tasks.abort_all();
        Ok(Measured { connected, connect_errors, connect_time, window, latency_us, errors, stuck, first_error, cpu })
    });
    // Dropping the runtime closes every client socket; do not wait on anything stuck.
    rt.shutdown_timeout(Duration::from_secs(1));
    match &result {
        Ok(m) => eprintln!("{:.0} req/s", m.rate()),
        Err(e) => eprintln!("failed: {e}"),
    }
    Row { name, conns, result }
}

/// One connection's closed loop. Replies completing inside the window are counted;
/// those completing during warm-up or after the window are not.
async fn load_loop<C: Conn>(mut conn: C, phase: Arc<AtomicU8>) -> TaskStats {
    let mut stats = TaskStats { latency_us: new_histogram(), errors: 0, first_error: None };
    loop {
        let sent = Instant::now();
        let outcome = conn.request().await;
        let micros = sent.elapsed().as_micros() as u64;
        let now = phase.load(Ordering::Relaxed);
        if now == STOPPED {
            break;
        }
        match outcome {
            Ok(()) if now == MEASURING => stats.latency_us.saturating_record(micros.max(1)),
            Ok(()) => {}
            Err(e) => {
                if now == MEASURING {
                    stats.errors += 1;
                    stats.first_error.get_or_insert(e.detail);
                }
                if e.fatal {
                    break;
                }
            }
        }
    }
    stats
}

/// A latency histogram in microseconds, 3 significant figures. One per connection task, so
/// recording takes no lock; its counts are allocated zeroed (calloc, mapped lazily) and
/// only the few pages that receive records are ever touched, so 1,000 of them stay cheap
/// in resident memory.
fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, HIST_MAX_US, 3).expect("valid histogram bounds")
}

// ---------------------------------------------------------------------------------------
// The reference pair: a minimal tokio newline-JSON echo client and server.
// ---------------------------------------------------------------------------------------

/// Reference client connection: writes a `ping` request line, reads one line, parses it
/// and checks the id.
struct RefConn {
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
    next_id: u64,
    out: Vec<u8>,
    line: String,
}

impl RefConn {
    async fn connect(addr: String) -> Result<RefConn, String> {
        let stream = TcpStream::connect(&addr).await.map_err(|e| format!("connect {addr}: {e}"))?;
        stream.set_nodelay(true).map_err(|e| e.to_string())?;
        let (r, w) = stream.into_split();
        Ok(RefConn {
            reader: BufReader::new(r),
            writer: w,
            next_id: 0,
            out: Vec::with_capacity(64),
            line: String::with_capacity(64),
        })
    }
}

impl Conn for RefConn {
    async fn request(&mut self) -> Result<(), RequestError> {
        use std::io::Write;
        let fatal = |detail: String| RequestError { fatal: true, detail };
        self.next_id += 1;
        self.out.clear();
        writeln!(self.out, r#"{{"jsonrpc":"2.0","id":{},"method":"ping"}}"#, self.next_id).expect("writing to a Vec");
        self.writer.write_all(&self.out).await.map_err(|e| fatal(format!("write: {e}")))?;
        self.line.clear();
        match self.reader.read_line(&mut self.line).await {
            Ok(0) => return Err(fatal("the server closed the connection".into())),
            Ok(_) => {}
            Err(e) => return Err(fatal(format!("read: {e}"))),
        }
        let reply: Value = serde_json::from_str(&self.line).map_err(|e| fatal(format!("reply is not JSON: {e}")))?;
        if reply.get("id").and_then(Value::as_u64) != Some(self.next_id) {
            return Err(fatal(format!("reply id mismatch: expected {}, got {}", self.next_id, self.line.trim())));
        }
        Ok(())
    }
}

/// Reference server: one task per connection reading lines, answering each with an empty
/// result carrying the request's id.
async fn ref_server() -> Vec<String> {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind the reference server");
    let url = format!("tcp://{}", listener.local_addr().expect("bound address"));
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { continue };
            tokio::spawn(ref_serve_connection(stream));
        }
    });
    vec![url]
}

async fn ref_serve_connection(stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    let (r, mut w) = stream.into_split();
    let mut lines = BufReader::new(r).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        let Ok(request) = serde_json::from_str::<Value>(&line) else { return };
        let id = request.get("id").cloned().unwrap_or(Value::Null);
        let reply = format!("{{\"jsonrpc\":\"2.0\",\"id\":{id},\"result\":{{}}}}\n");
        if w.write_all(reply.as_bytes()).await.is_err() {
            return;
        }
    }
}

// ---------------------------------------------------------------------------------------
// mcpscript's side: its client sessions and its server.
// ---------------------------------------------------------------------------------------

/// An initialized mcpscript session making `ping` requests.
struct McpConn(Session);

impl McpConn {
    async fn connect(target: Target, opts: Arc<ClientOptions>) -> Result<McpConn, String> {
        Session::connect(&target, opts).await.map(McpConn).map_err(|e| e.to_string())
    }
}

impl Conn for McpConn {
    async fn request(&mut self) -> Result<(), RequestError> {
        match self.0.ping().await {
            Ok(_) => Ok(()),
            Err(e) => Err(RequestError { fatal: e.is_fatal_to_session(), detail: e.to_string() }),
        }
    }
}

/// mcpscript's reference server on tcp:// and http:// (ports picked by the kernel).
async fn mcp_server() -> Vec<String> {
    let config = ServerConfig::listening(&["tcp://127.0.0.1:0", "http://127.0.0.1:0/mcp"]).expect("valid listen URLs");
    let running = server::start(config).await.expect("start the mcpscript server");
    let urls = running.urls().to_vec();
    // Serve until killed: the handle must outlive this function.
    std::mem::forget(running);
    urls
}

// ---------------------------------------------------------------------------------------
// Server processes.
// ---------------------------------------------------------------------------------------

/// Body of a server child: start serving on a multi-thread runtime with one worker per
/// core, announce the URLs on stdout, then serve until killed.
fn server_process(start: impl Future<Output = Vec<String>>) -> ! {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("server runtime");
    rt.block_on(async {
        for url in start.await {
            println!("listening {url}");
        }
        println!("ready");
        std::future::pending::<()>().await;
    });
    unreachable!("the server serves until killed")
}

/// A server child process, killed (by PID) when dropped.
struct ServerChild {
    child: Child,
    urls: Vec<String>,
}

impl ServerChild {
    /// Starts this executable as `role` and waits (at most 10 s) for it to be ready.
    fn spawn(role: &str) -> ServerChild {
        use std::os::unix::process::CommandExt;
        let exe = std::env::current_exe().expect("path of the bench executable");
        let parent = std::process::id() as libc::pid_t;
        let mut cmd = Command::new(exe);
        cmd.env(ROLE_ENV, role).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::inherit());
        // SAFETY: prctl and getppid are async-signal-safe; this only configures the child.
        unsafe {
            cmd.pre_exec(move || {
                // Die with the bench, even if it is killed; also if it already died.
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                if libc::getppid() != parent {
                    libc::_exit(1);
                }
                Ok(())
            });
        }
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("cannot start the {role} process: {e}"));
        let stdout = child.stdout.take().expect("piped stdout");
        // Read the announcement on a helper thread so that waiting for it is bounded.
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in StdBufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut server = ServerChild { child, urls: Vec::new() };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(line) if line == "ready" => return server,
                Ok(line) => server.urls.extend(line.strip_prefix("listening ").map(str::to_string)),
                Err(_) => panic!("the {role} process did not report ready within 10 s"),
            }
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The first announced URL starting with `prefix`.
    fn url(&self, prefix: &str) -> String {
        self.urls
            .iter()
            .find(|u| u.starts_with(prefix))
            .cloned()
            .unwrap_or_else(|| panic!("the server announced no {prefix} URL"))
    }
}

impl Drop for ServerChild {
    fn drop(&mut self) {
        // Child::kill sends SIGKILL to this child's PID; wait reaps it.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------------------
// CPU accounting: client and server cost per reply, and how busy the rest of the machine
// was (other work on the cores makes a window's figures unreliable).
// ---------------------------------------------------------------------------------------

/// Cumulative CPU clock ticks at one instant.
struct CpuSample {
    client: u64,
    server: u64,
    /// Busy ticks of the whole machine, all cores.
    machine: u64,
}

/// CPU seconds used between two samples.
struct CpuUse {
    client: f64,
    server: f64,
    /// Busy time of the machine that neither process used.
    other: f64,
}

impl CpuSample {
    fn take(server_pid: u32) -> CpuSample {
        CpuSample {
            client: process_ticks("self"),
            server: process_ticks(&server_pid.to_string()),
            machine: machine_busy_ticks(),
        }
    }

    fn since(&self, earlier: &CpuSample) -> CpuUse {
        // SAFETY: sysconf has no preconditions.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
        let secs = |now: u64, then: u64| now.saturating_sub(then) as f64 / hz;
        let (client, server) = (secs(self.client, earlier.client), secs(self.server, earlier.server));
        let machine = secs(self.machine, earlier.machine);
        CpuUse { client, server, other: (machine - client - server).max(0.0) }
    }
}

/// utime + stime of `/proc/PID/stat` (0 when unreadable).
fn process_ticks(pid: &str) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the parenthesised command name, which may contain spaces: the state is
    // field 3 of stat(5), so utime (14) and stime (15) are at 11 and 12 here.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<u64> = rest.split_whitespace().map(|f| f.parse().unwrap_or(0)).collect();
    fields.get(11).copied().unwrap_or(0) + fields.get(12).copied().unwrap_or(0)
}

/// Non-idle ticks of all cores from the `cpu` line of `/proc/stat`: user, nice, system,
/// irq, softirq, steal (guest time is already inside user).
fn machine_busy_ticks() -> u64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let cpu: Vec<u64> =
        stat.lines().next().unwrap_or("").split_whitespace().skip(1).map(|f| f.parse().unwrap_or(0)).collect();
    [0, 1, 2, 5, 6, 7].iter().map(|&i| cpu.get(i).copied().unwrap_or(0)).sum()
}

// ---------------------------------------------------------------------------------------
// Output.
// ---------------------------------------------------------------------------------------

fn print_table(rows: &[Row]) {
    println!(
        "{:<24} {:>6} {:>10} {:>8} {:>8} {:>7} {:>10} {:>10} {:>7}   connect",
        "case", "conns", "req/s", "p50 us", "p99 us", "errors", "cli us/req", "srv us/req", "other"
    );
    let mut busy = false;
    for row in rows {
        match &row.result {
            Ok(m) => {
                let mut notes = format!("{:.2} s", m.connect_time.as_secs_f64());
                if m.connect_errors > 0 {
                    notes += &format!(", {} failed", m.connect_errors);
                }
                if m.stuck > 0 {
                    notes += &format!(", {} tasks stuck", m.stuck);
                }
                busy |= m.other_cores() > OTHER_LOAD_WARNING;
                println!(
                    "{:<24} {:>6} {:>10} {:>8} {:>8} {:>7} {:>10.1} {:>10.1} {:>7.2}   {notes}",
                    row.name,
                    m.connected,
                    mcpscript::util::human::int(m.rate().round() as u64),
                    m.latency_us.value_at_quantile(0.50),
                    m.latency_us.value_at_quantile(0.99),
                    m.errors,
                    m.per_reply_us(m.cpu.client),
                    m.per_reply_us(m.cpu.server),
                    m.other_cores(),
                );
                if let Some(e) = &m.first_error {
                    println!("{:<24} first error: {e}", "");
                }
            }
            Err(why) => println!("{:<24} {:>6} {why}", row.name, row.conns),
        }
    }
    println!("(cli/srv us/req: CPU time of the client/server process per reply; other: cores busy with anything else)");
    if busy {
        println!("WARNING: other work used more than {OTHER_LOAD_WARNING} of a core during some windows; those figures understate.");
    }
}
