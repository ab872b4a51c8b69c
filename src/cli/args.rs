//! Command-line arguments as clap declares them. Values are checked here only as far as
//! their type; commands turn them into validated plans.

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "mcpscript",
    version,
    about = "Test MCP servers at scale: scripted scenarios, real load, chaos and regression detection"
)]
pub struct Cli {
    /// More log output on stderr (-v info, -vv debug); MCPSCRIPT_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the built-in reference MCP server.
    Serve(ServeArgs),
    /// Initialize a session with TARGET, make one request, print the result.
    Call(CallArgs),
    /// Run a suite (.yaml) or a scenario script (.rhai) against a target and write results.json.
    Run(RunArgs),
    /// Validate a suite and its manifests, or a script, compiling everything and running nothing.
    Check(CheckArgs),
    /// Print a suite's execution plan: levels, dependencies, resources.
    List(ListArgs),
    /// Run a suite, then re-run what changes whenever its files are saved.
    Watch(WatchArgs),
    /// Print the scripting API reference generated from the engine.
    Api(ApiArgs),
    /// Run the fault-injecting proxy in front of a target.
    Proxy(ProxyArgs),
    /// Combine the results.json of segments (`run --segment I/N`) into one, exactly.
    Merge(MergeArgs),
    /// Re-render the reports (html, md, txt, csv, junit) of a stored results.json.
    Report(ReportCmdArgs),
    /// Compare a run with a baseline (a results.json or the history): table and verdict.
    Compare(CompareArgs),
    /// Internal: a load worker process, fed a plan on stdin by `mcpscript run`.
    #[command(hide = true)]
    Worker(WorkerArgs),
    /// Internal: supervises one command's process group for its parent (util::proc).
    #[command(hide = true)]
    Reap(ReapArgs),
}

#[derive(Debug, Args)]
pub struct MergeArgs {
    /// The results.json files (or the folders holding them) of the segments.
    #[arg(required = true, num_args = 1..)]
    pub inputs: Vec<std::path::PathBuf>,
    /// Folder for the merged results.json.
    #[arg(long, value_name = "DIR")]
    pub out: std::path::PathBuf,
}

#[derive(Debug, Args)]
pub struct WorkerArgs {}

#[derive(Debug, Args)]
pub struct ReapArgs {
    /// PID of the process the command belongs to; the group dies when it does.
    #[arg(long)]
    pub parent: u32,
    /// Descriptor on which the command's PID (or the error starting it) is reported.
    #[arg(long)]
    pub report_fd: i32,
    /// The command and its arguments, after `--`.
    #[arg(last = true, required = true)]
    pub command: Vec<String>,
}

#[derive(Debug, Args)]
pub struct ReportCmdArgs {
    /// The run's results.json (or the folder holding it).
    pub results: std::path::PathBuf,
    /// Formats: a comma-separated list of json, html, csv, txt, junit, md, or all.
    #[arg(long, default_value = "all", value_name = "LIST")]
    pub format: String,
    /// Folder to write into (default: the results' own folder).
    #[arg(long, value_name = "DIR")]
    pub out: Option<std::path::PathBuf>,
}

#[derive(Debug, Args)]
pub struct CompareArgs {
    /// The baseline: a results.json (or its folder), or `history` for the stored baseline
    /// of CURRENT's suite, profile and target.
    pub base: String,
    /// The run to judge: a results.json (or its folder).
    pub current: std::path::PathBuf,
    /// Exit 3 on a regression at or above this level: low, medium, high, critical, none.
    #[arg(long, default_value = "high", value_name = "LEVEL")]
    pub fail_on: String,
    /// The history file (default: reports/history.jsonl).
    #[arg(long, value_name = "PATH")]
    pub history: Option<std::path::PathBuf>,
    /// Passing runs a history baseline holds.
    #[arg(long, default_value_t = crate::regress::compare::DEFAULT_BASELINE_RUNS, value_name = "N")]
    pub baseline_runs: usize,
    /// Folder for CURRENT's reports with the comparison (default: CURRENT's folder).
    #[arg(long, value_name = "DIR")]
    pub out: Option<std::path::PathBuf>,
}

/// Reports, history and the regression verdict of a run.
#[derive(Debug, Args, Clone)]
pub struct ReportArgs {
    /// Report formats: a comma-separated list of json, html, csv, txt, junit, md, or all
    /// (results.json is always written).
    #[arg(long, default_value = "all", value_name = "LIST")]
    pub format: String,
    /// Compare with this results.json (or its folder), or `history` (the default when the
    /// history has passing runs of the same suite, profile and target).
    #[arg(long, value_name = "PATH|history")]
    pub baseline: Option<String>,
    /// Passing runs a history baseline holds.
    #[arg(long, default_value_t = crate::regress::compare::DEFAULT_BASELINE_RUNS, value_name = "N")]
    pub baseline_runs: usize,
    /// The history file every run appends to (default: reports/history.jsonl).
    #[arg(long, value_name = "PATH", env = "MCPSCRIPT_HISTORY")]
    pub history: Option<std::path::PathBuf>,
    /// Neither read nor append to the history.
    #[arg(long, env = "MCPSCRIPT_NO_HISTORY", value_parser = clap::builder::BoolishValueParser::new())]
    pub no_history: bool,
    /// Exit 3 on a regression at or above this level: low, medium, high, critical, none.
    #[arg(long, default_value = "high", value_name = "LEVEL")]
    pub fail_on: String,
}

#[derive(Debug, Args)]
#[command(after_long_help = crate::cli::proxy::FAULT_HELP)]
pub struct ProxyArgs {
    /// Address to listen on, e.g. tcp://127.0.0.1:9000 or 127.0.0.1:9000 (port 0 picks a free
    /// port; the scheme does not matter, the proxy carries whatever the upstream speaks).
    #[arg(long, value_name = "URL", default_value = "tcp://127.0.0.1:0")]
    pub listen: String,
    /// The target to forward to: tcp://HOST:PORT, http://HOST:PORT/PATH, sse+http://... or
    /// ws://...; its scheme chooses the message framing.
    #[arg(long, value_name = "URL")]
    pub upstream: String,
    /// A fault, repeatable: NAME:key=value,... or a JSON object, e.g.
    /// 'latency:latency=100ms,jitter=5ms' or 'drop:probability=0.05,direction=upstream'.
    #[arg(long = "fault", value_name = "SPEC")]
    pub faults: Vec<String>,
    /// Seed for every random decision (default: random, printed so the run can be repeated).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Message framing: lines, http (also sse and ws) or raw (default: from the upstream scheme).
    #[arg(long, value_name = "FRAMING")]
    pub framing: Option<String>,
    /// Permit listening on non-loopback addresses.
    #[arg(long)]
    pub allow_remote: bool,
    /// Largest message assembled for message-level faults; bigger ones pass untouched.
    #[arg(long, value_name = "BYTES", default_value_t = crate::client::DEFAULT_MAX_MESSAGE)]
    pub max_message_size: usize,
}

#[derive(Debug, Args, Clone)]
pub struct RunArgs {
    /// The suite (.yaml, .yml) or scenario script (.rhai).
    pub file: std::path::PathBuf,
    #[command(flatten)]
    pub suite: SuiteArgs,
    #[command(flatten)]
    pub report: ReportArgs,
    /// The server under test (default: the built-in reference server).
    #[arg(long, default_value = "builtin", value_name = "URL")]
    pub target: String,
    /// Set a script parameter: KEY=VALUE (numbers, durations like 250ms, booleans, strings);
    /// in a suite KEY=VALUE sets it for every scenario reading KEY, SCENARIO.KEY=VALUE for one.
    /// Repeatable.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Seed for everything random in the run.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Print nothing but errors.
    #[arg(long, short)]
    pub quiet: bool,
    /// Output folder (default: reports/<run-id>/).
    #[arg(long, value_name = "DIR")]
    pub out: Option<std::path::PathBuf>,
    /// Stop the script after this long (e.g. 30s, 2h; default 10m); "none" for no limit.
    /// Suites: overrides every scenario's timeout.
    #[arg(long, value_name = "DURATION")]
    pub timeout: Option<String>,
    /// Deadline of each request unless the script gives its own.
    #[arg(long, default_value = "30s", value_name = "DURATION")]
    pub request_timeout: String,
    /// Operations a script may run before it is stopped as a runaway (0: unlimited).
    #[arg(long, value_name = "N", default_value_t = crate::script::Limits::default().max_operations)]
    pub max_operations: u64,
    /// mcpscript's resident memory beyond which a running script is stopped as a runaway,
    /// e.g. 4GiB (0: unlimited).
    #[arg(long, value_name = "SIZE", default_value = "1GiB", value_parser = parse_memory)]
    pub max_memory: u64,
    /// Folder of stdlib modules overriding the built-in ones (default: ./stdlib when present;
    /// MCPSCRIPT_STDLIB overrides).
    #[arg(long, value_name = "DIR", env = "MCPSCRIPT_STDLIB")]
    pub stdlib: Option<std::path::PathBuf>,
    /// Run the I-th of N equal shares of every load phase (sessions and rates), e.g. 3/8;
    /// `mcpscript merge` combines the segments' results.json.
    #[arg(long, value_name = "I/N")]
    pub segment: Option<String>,
    /// A process of the target to sample (RSS, CPU) during load phases; repeatable.
    #[arg(long = "target-pid", value_name = "PID")]
    pub target_pids: Vec<u32>,
    /// Worker processes of the built-in server when a script controls it with `chaos::`
    /// (it then runs as child processes that can be killed and restarted).
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub builtin_workers: u32,
    /// A server command mcpscript starts before the script (or a suite's first scenario)
    /// and stops after it (e.g. 'node server.js --port 3001'); `--target` says where it
    /// listens. It is then a managed target: `chaos::kill()`, `restart()` and friends act on
    /// it, and scenarios that require a managed target run. In a suite it replaces `server:`.
    #[arg(long, value_name = "COMMAND")]
    pub server: Option<String>,
    /// How long `--server` may take to accept an MCP session.
    #[arg(long, value_name = "DURATION", default_value = "30s")]
    pub server_ready_timeout: String,
    /// Let scripts open `stdio:` targets other than the run's own: each spawns a process
    /// (without it, only `--target` or a suite's `target:` may be spawned).
    #[arg(long)]
    pub allow_spawn: bool,
    /// An HTTP header sent with every request of every session, 'NAME: VALUE' (HTTP, legacy
    /// SSE and WebSocket targets). Repeatable.
    #[arg(long = "header", value_name = "NAME: VALUE")]
    pub headers: Vec<String>,
    /// Bearer token: `Authorization: Bearer TOKEN` on HTTP, legacy SSE and WebSocket (and
    /// `authToken` in initialize params on tcp and stdio). Never written to results or logs.
    #[arg(long, value_name = "TOKEN", env = "MCPSCRIPT_BEARER", hide_env_values = true)]
    pub bearer: Option<String>,
    #[command(flatten)]
    pub oauth: OAuthArgs,
    #[command(flatten)]
    pub tls: TlsArgs,
}

/// OAuth 2.1 (Streamable HTTP targets): on a 401 (or 403 insufficient_scope), discover the
/// authorization server, get a token without a browser, retry; see README "Authentication".
#[derive(Args, Clone, Default)]
pub struct OAuthArgs {
    /// Get OAuth tokens when the server answers 401 (implied by the other --oauth-* options).
    #[arg(long)]
    pub oauth: bool,
    /// A pre-registered client ID (else a client metadata URL, or dynamic registration).
    #[arg(long, value_name = "ID")]
    pub oauth_client_id: Option<String>,
    /// The pre-registered client's secret. Never written to results or logs.
    #[arg(long, value_name = "SECRET", env = "MCPSCRIPT_OAUTH_CLIENT_SECRET", hide_env_values = true)]
    pub oauth_client_secret: Option<String>,
    /// Scopes to request, space-separated (default: the server's challenge, else the
    /// resource's scopes_supported, else none).
    #[arg(long, value_name = "SCOPES")]
    pub oauth_scope: Option<String>,
    /// PEM private key (EC P-256, RSA or Ed25519) for private_key_jwt client authentication
    /// (implies the client_credentials grant).
    #[arg(long, value_name = "FILE")]
    pub oauth_private_key: Option<std::path::PathBuf>,
    /// The grant (default: client_credentials with a private key or when the server only
    /// offers that; else authorization_code with PKCE, its redirect read headlessly).
    #[arg(long, value_name = "GRANT", value_parser = ["authorization_code", "client_credentials"])]
    pub oauth_grant: Option<String>,
    /// This client's Client ID Metadata Document URL (https://), used as client ID by
    /// authorization servers that support client ID metadata documents.
    #[arg(long, value_name = "URL")]
    pub oauth_client_metadata_url: Option<String>,
    /// The redirect_uri of authorization requests (never listened on).
    #[arg(long, value_name = "URL")]
    pub oauth_redirect_uri: Option<String>,
}

impl std::fmt::Debug for OAuthArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OAuthArgs")
            .field("oauth", &self.oauth)
            .field("client_id", &self.oauth_client_id)
            .field("client_secret", &self.oauth_client_secret.as_ref().map(|_| "<redacted>"))
            .field("scope", &self.oauth_scope)
            .field("private_key", &self.oauth_private_key)
            .field("grant", &self.oauth_grant)
            .finish_non_exhaustive()
    }
}

/// How the client verifies `https://`, `sse+https://` and `wss://` servers.
#[derive(Debug, Args, Clone, Default)]
pub struct TlsArgs {
    /// Trust the CA certificate(s) in FILE (PEM) in addition to the platform's root
    /// certificates, for https://, sse+https:// and wss:// targets (e.g. a staging CA); a
    /// server presenting exactly a certificate of FILE is accepted too (self-signed servers).
    #[arg(long, value_name = "FILE")]
    pub ca_cert: Option<std::path::PathBuf>,
    /// Accept any TLS server certificate without verifying it (self-signed test servers):
    /// traffic is still encrypted, but the server's identity is not checked. Warns once.
    #[arg(long)]
    pub insecure: bool,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The suite (.yaml, .yml) or scenario script (.rhai) to validate.
    pub file: std::path::PathBuf,
    #[command(flatten)]
    pub suite: SuiteArgs,
    /// The server under test (suites: overrides the suite's `target`).
    #[arg(long, value_name = "URL")]
    pub target: Option<String>,
    /// Also check these parameter values: KEY=VALUE (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Folder of stdlib modules overriding the built-in ones (default: ./stdlib when present).
    #[arg(long, value_name = "DIR", env = "MCPSCRIPT_STDLIB")]
    pub stdlib: Option<std::path::PathBuf>,
    /// Accept literal `stdio:` targets the script opens besides `--target` (as `run
    /// --allow-spawn` does).
    #[arg(long)]
    pub allow_spawn: bool,
}

/// Options that only suites take.
#[derive(Debug, Args, Clone, Default)]
pub struct SuiteArgs {
    /// Suites: the profile whose parameter values apply (quick, full or one the suite
    /// declares; default: the suite's `profile`, else quick).
    #[arg(long, value_name = "NAME")]
    pub profile: Option<String>,
    /// Suites: run only these scenarios (names or tags; repeatable or comma-separated),
    /// plus what they depend on.
    #[arg(long, value_name = "NAME")]
    pub only: Vec<String>,
    /// Suites: scenarios run at once (overrides the suite's `parallelism`).
    #[arg(long, value_name = "N")]
    pub parallel: Option<usize>,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// The suite file (.yaml, .yml).
    pub file: std::path::PathBuf,
    #[command(flatten)]
    pub suite: SuiteArgs,
    /// Set a parameter: KEY=VALUE or SCENARIO.KEY=VALUE (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Folder of stdlib modules overriding the built-in ones (default: ./stdlib when present).
    #[arg(long, value_name = "DIR", env = "MCPSCRIPT_STDLIB")]
    pub stdlib: Option<std::path::PathBuf>,
}

#[derive(Debug, Args)]
pub struct WatchArgs {
    #[command(flatten)]
    pub run: RunArgs,
    /// Stop after this many runs of the suite (the first run counts); for tests.
    #[arg(long, hide = true, value_name = "N")]
    pub max_runs: Option<u32>,
    /// Wait this long for saves to settle before acting on them.
    #[arg(long, default_value = "300ms", value_name = "DURATION")]
    pub debounce: String,
}

#[derive(Debug, Args)]
pub struct ApiArgs {
    /// Print the raw function metadata as JSON instead of the Markdown reference.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// URL to serve (repeatable): http://HOST:PORT/PATH (Streamable HTTP, plus legacy SSE at
    /// /sse and WebSocket upgrades), sse+http://, ws://, tcp://HOST:PORT; https://,
    /// sse+https:// and wss:// serve TLS (with --tls-cert, --tls-key). Port 0 picks a free port.
    #[arg(long = "listen", value_name = "URL", default_values_t = ["http://127.0.0.1:8080/mcp".to_string(), "tcp://127.0.0.1:7777".to_string()])]
    pub listen: Vec<String>,
    /// Serve one session on stdin/stdout instead of listening.
    #[arg(long, conflicts_with = "workers")]
    pub stdio: bool,
    /// Processes sharing each port through SO_REUSEPORT.
    #[arg(long, default_value_t = 1)]
    pub workers: usize,
    /// Runtime threads per process; 0 divides the machine's cores among the --workers
    /// processes (at least 1 each). A process with one thread runs a single-threaded
    /// runtime: no wake-ups between threads, the cheapest way to serve many processes.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub threads: usize,
    /// The certificate chain (PEM, the server's certificate first) of https://,
    /// sse+https:// and wss:// listeners.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<std::path::PathBuf>,
    /// The private key (PEM: PKCS#8, PKCS#1 or SEC1) matching --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<std::path::PathBuf>,
    /// Open connections per worker beyond which new ones are refused (-32000 / HTTP 503).
    #[arg(long, value_name = "N")]
    pub max_connections: Option<usize>,
    /// Requests in progress per worker beyond which new ones are shed (-32000 / HTTP 503).
    #[arg(long, value_name = "N")]
    pub max_inflight: Option<usize>,
    /// Delay added to every reply except initialize, e.g. 5ms.
    #[arg(long, value_name = "DURATION")]
    pub latency: Option<String>,
    /// Fraction of requests (0 to 1) answered with an injected -32603 error.
    #[arg(long, value_name = "FRACTION", default_value_t = 0.0)]
    pub error_rate: f64,
    /// Require this token: HTTP bearer, or authToken in initialize params on tcp/ws/stdio.
    #[arg(long, value_name = "TOKEN", env = "MCPSCRIPT_AUTH_TOKEN", hide_env_values = true)]
    pub auth_token: Option<String>,
    /// Accept this Origin on HTTP besides loopback origins (repeatable).
    #[arg(long = "allow-origin", value_name = "ORIGIN")]
    pub allow_origin: Vec<String>,
    /// Permit listening on non-loopback addresses.
    #[arg(long)]
    pub allow_remote: bool,
    /// Largest accepted message in bytes.
    #[arg(long, value_name = "BYTES", default_value_t = crate::client::DEFAULT_MAX_MESSAGE)]
    pub max_message_size: usize,
    /// Internal: this process's index among the workers.
    #[arg(long, hide = true, default_value_t = 0)]
    pub worker_index: usize,
    /// Every request except initialize retains SIZE bytes for good, e.g. 64KB or 1MiB.
    #[arg(long, value_name = "SIZE", help_heading = "Fault modes (a misbehaving server)")]
    pub fault_leak: Option<String>,
    /// Every JSON-RPC error is sent with code -32603 instead of its own.
    #[arg(long, help_heading = "Fault modes (a misbehaving server)")]
    pub fault_wrong_error_codes: bool,
    /// Past --max-inflight (default 4) admit all and slow all down; never shed.
    #[arg(long, help_heading = "Fault modes (a misbehaving server)")]
    pub fault_collapse: bool,
    /// Started again by a managed restart: exit with status 1 instead of serving.
    #[arg(long, help_heading = "Fault modes (a misbehaving server)")]
    pub fault_stay_down: bool,
    /// Delay a random share of replies by a random time up to DURATION, e.g. 50ms.
    #[arg(long, value_name = "DURATION", help_heading = "Fault modes (a misbehaving server)")]
    pub fault_jitter: Option<String>,
    /// The share (0 to 1) of replies --fault-jitter delays.
    #[arg(long, value_name = "FRACTION", default_value_t = 0.1, help_heading = "Fault modes (a misbehaving server)")]
    pub fault_jitter_fraction: f64,
}

#[derive(Debug, Args)]
pub struct CallArgs {
    /// The server: http(s)://..., sse+http(s)://..., ws(s)://..., tcp://HOST:PORT, stdio:COMMAND ARGS or builtin.
    pub target: String,
    /// The method, e.g. ping, tools/list, tools/call, resources/read.
    pub method: String,
    /// Parameters as a JSON object, e.g. '{"name":"echo","arguments":{"message":"hi"}}'.
    pub params: Option<String>,
    /// Deadline for the request (connecting has its own 10 s deadline).
    #[arg(long, default_value = "30s", value_name = "DURATION")]
    pub timeout: String,
    /// Protocol revision to offer in initialize; 2026-07-28 (stateless) is negotiated with
    /// server/discover, falling back to initialize at 2025-11-25 when the server predates it.
    #[arg(long, value_name = "VERSION", default_value = crate::protocol::mcp::LATEST_PROTOCOL_VERSION)]
    pub protocol_version: String,
    /// Bearer token: `Authorization: Bearer TOKEN` on HTTP, legacy SSE and WebSocket (and
    /// `authToken` in initialize params on tcp and stdio). `--auth-token` is an alias.
    #[arg(long, alias = "auth-token", value_name = "TOKEN", env = "MCPSCRIPT_BEARER", hide_env_values = true)]
    pub bearer: Option<String>,
    /// An HTTP header sent with every request, 'NAME: VALUE' (repeatable).
    #[arg(long = "header", value_name = "NAME: VALUE")]
    pub headers: Vec<String>,
    /// Largest accepted reply in bytes.
    #[arg(long, value_name = "BYTES", default_value_t = crate::client::DEFAULT_MAX_MESSAGE)]
    pub max_message_size: usize,
    /// Print what the server said of itself (initialize or server/discover) to stderr as well.
    #[arg(long)]
    pub show_server: bool,
    #[command(flatten)]
    pub tls: TlsArgs,
}

/// `--max-memory`: a size with a unit (`512MiB`, `4GiB`), or 0 for no limit.
fn parse_memory(s: &str) -> Result<u64, String> {
    if s.trim() == "0" {
        return Ok(0);
    }
    crate::util::size::parse_size(s).map_err(|e| e.to_string())
}
