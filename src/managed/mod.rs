//! Managed targets: server processes mcpscript started itself and may therefore signal.
//! [`ManagedServer`] runs the built-in server as K sibling `mcpscript serve` processes
//! sharing one port with SO_REUSEPORT ([`ManagedServer::start_builtin`]), or any server
//! command with a readiness rule ([`ManagedServer::start`] with a [`ServerSpec`]). It can
//! kill (SIGKILL), stop (SIGTERM), suspend/resume (SIGSTOP/SIGCONT) and restart the whole
//! target or one worker; a restarted process listens on the same URL, so clients reconnect
//! to where they were. Each worker runs in its own process group and every signal goes to
//! the whole group, so a server started through a wrapper (`npm start`, `npx`, `sh -c`) is
//! acted on with all its processes; the group is killed when the [`ManagedServer`] is
//! dropped and dies with mcpscript, even a SIGKILLed one ([`crate::util::proc`]). A target
//! mcpscript did not start is never signalled: [`ManagedError::NotManaged`] explains why.
//! Every process started carries [`RESTARTS_ENV`]: `0` at the first start, then how many
//! times [`ManagedServer::restart`] started its worker again (`mcpscript serve
//! --fault-stay-down` reads it to stay down after a kill).
//!
//! # Layout
//! - this file: [`ServerSpec`], [`Ready`], [`Which`], [`ManagedServer`], [`ManagedError`].
//! - [`process`]: one child process (spawn, output tail, signals).
//! - [`builtin`]: the `builtin` target of a run, in this process or as worker processes.
//!
//! `stdio:` targets are not managed here: each client session spawns and owns its own
//! child (`client::transport::stdio`), one per session, so "the server" of a stdio run is
//! as many processes as there are sessions, and they end with their sessions. A script
//! ends one by closing its session; process faults of a shared server need a network
//! server started by mcpscript (`builtin`, or a [`ServerSpec`]).
//!
//! ```no_run
//! # async fn demo() -> Result<(), mcpscript::managed::ManagedError> {
//! use mcpscript::managed::{ManagedServer, Which};
//! use std::time::Duration;
//! let exe = std::env::current_exe().unwrap();
//! let mut server = ManagedServer::start_builtin(&exe, 2, &[]).await?;
//! let target = server.target(); // tcp://127.0.0.1:PORT
//! server.kill(Which::Worker(1)).await?; // worker 0 keeps serving the port
//! server.restart(Which::Worker(1)).await?; // rejoins the same port
//! server.wait_ready(Duration::from_secs(5)).await?;
//! server.shutdown().await;
//! # let _ = target; Ok(()) }
//! ```

pub mod builtin;
pub mod process;

use crate::client::{ClientOptions, Session, Target};
use crate::server::workers::{LISTENING, SECRET_ENV};
use crate::util::human;
use process::{Launch, Proc};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Environment variable set on every process a managed target starts: how many times its
/// worker slot was restarted (`0` at the first start, `n >= 1` on the n-th restart).
pub const RESTARTS_ENV: &str = "MCPSCRIPT_RESTARTS";

/// Grace period between SIGTERM and SIGKILL.
pub const STOP_GRACE: Duration = Duration::from_secs(5);

/// When a started server counts as ready.
#[derive(Debug, Clone, PartialEq)]
pub enum Ready {
    /// A client can connect and `initialize` succeeds.
    Connect(Target),
    /// A line of its stdout or stderr contains this text.
    LogLine(String),
    /// This long after the start (and it is still running).
    Delay(Duration),
}

/// A server command mcpscript starts and manages.
#[derive(Debug, Clone)]
pub struct ServerSpec {
    /// Program and arguments.
    pub command: Vec<String>,
    pub env: Vec<(String, String)>,
    pub cwd: Option<PathBuf>,
    /// Where clients reach it (taken from `ready` when that is `Connect`).
    pub target: Option<Target>,
    pub ready: Ready,
    pub ready_timeout: Duration,
}

/// Which processes of a managed target an action is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Which {
    All,
    /// Worker `i` (0-based) of the built-in server; 0 for a single-process server.
    Worker(usize),
}

/// Why a managed target could not be started or acted on.
#[derive(Debug, thiserror::Error)]
pub enum ManagedError {
    #[error("cannot start the server `{command}`: {detail}")]
    Spawn { command: String, detail: String },
    #[error("the server `{command}` was not ready within {after}{tail}")]
    NotReady { command: String, after: String, tail: String },
    #[error("the server `{command}` exited ({status}) before it was ready{tail}")]
    Exited { command: String, status: String, tail: String },
    #[error(
        "cannot {action} {target}: mcpscript did not start this target, so it has no process of it to signal \
         (it never signals processes it does not own). Process faults need a managed target: run against \
         `builtin` (the default target), which mcpscript starts as child processes, or let mcpscript start your \
         server (`mcpscript run --server 'COMMAND' --target URL`); for network faults in front of any target \
         use chaos::proxy(target, faults)"
    )]
    NotManaged { action: String, target: String },
    #[error("no worker {index}: this server has {workers} worker process(es), numbered 0 to {}", workers.saturating_sub(1))]
    NoWorker { index: usize, workers: usize },
    #[error("{0}")]
    Invalid(String),
}

fn tail_note(tail: String) -> String {
    if tail.trim().is_empty() {
        String::new()
    } else {
        format!("; its last output:\n{tail}")
    }
}

enum Kind {
    /// `mcpscript serve` processes sharing the ports of `urls` (empty until the first
    /// one reported them).
    Builtin {
        exe: PathBuf,
        extra: Vec<String>,
        urls: Vec<String>,
        secret: String,
    },
    Spec(ServerSpec),
}

/// A target started and owned by mcpscript.
pub struct ManagedServer {
    kind: Kind,
    /// One slot per worker; `None` once killed or stopped.
    members: Vec<Option<Proc>>,
    /// Per worker slot: how many times [`ManagedServer::restart`] started it again.
    restarts: Vec<u32>,
    target: Option<Target>,
}

/// How many `--listen` flags `args` carries.
fn listen_count(args: &[String]) -> usize {
    args.iter().filter(|a| *a == "--listen" || a.starts_with("--listen=")).count()
}

impl ManagedServer {
    /// Starts the built-in server as `workers` sibling processes (`mcpscript serve` from
    /// `exe`, plus `extra_args`) on one loopback port, and waits until each listens.
    pub async fn start_builtin(exe: &Path, workers: u32, extra_args: &[String]) -> Result<ManagedServer, ManagedError> {
        if workers == 0 || workers > 256 {
            return Err(ManagedError::Invalid(format!("workers must be 1 to 256, got {workers}")));
        }
        let mut s = ManagedServer {
            kind: Kind::Builtin {
                exe: exe.to_path_buf(),
                extra: extra_args.to_vec(),
                urls: Vec::new(),
                // One session-signing key for all, so any worker accepts another's sessions.
                secret: rand::random::<u64>().to_string(),
            },
            members: (0..workers).map(|_| None).collect(),
            restarts: vec![0; workers as usize],
            target: None,
        };
        for i in 0..workers as usize {
            s.launch(i).await?;
        }
        Ok(s)
    }

    /// Starts `spec` and waits until it is ready.
    pub async fn start(spec: ServerSpec) -> Result<ManagedServer, ManagedError> {
        let target = spec.target.clone().or_else(|| match &spec.ready {
            Ready::Connect(t) => Some(t.clone()),
            _ => None,
        });
        if matches!(target, Some(Target::Builtin | Target::Stdio { .. })) {
            return Err(ManagedError::Invalid(
                "a managed server command needs a network target (tcp://, http://, sse+http:// or ws://)".into(),
            ));
        }
        let mut s = ManagedServer { kind: Kind::Spec(spec), members: vec![None], restarts: vec![0], target };
        s.launch(0).await?;
        Ok(s)
    }

    /// How worker `i` is (re)started.
    fn launch_of(&self, i: usize) -> Launch {
        let mut launch = self.command_of(i);
        launch.env.push((RESTARTS_ENV.into(), self.restarts.get(i).copied().unwrap_or(0).to_string()));
        launch
    }

    /// The command, environment and directory of worker `i`, before [`RESTARTS_ENV`].
    fn command_of(&self, i: usize) -> Launch {
        match &self.kind {
            Kind::Builtin { exe, extra, urls, secret } => {
                let k = self.members.len();
                // Index 0 (a lone server) insists on a free port when it binds a concrete
                // one; siblings join the port, so every worker of several takes index >= 1.
                let index = if k == 1 { 0 } else { i + 1 };
                let mut command = vec![
                    exe.display().to_string(),
                    "serve".into(),
                    "--workers".into(),
                    "1".into(),
                    "--worker-index".into(),
                    index.to_string(),
                ];
                if urls.is_empty() {
                    command.extend(["--listen".into(), "tcp://127.0.0.1:0".into()]);
                } else {
                    for u in urls {
                        command.extend(["--listen".into(), u.clone()]);
                    }
                }
                if !extra.iter().any(|a| a == "--threads" || a.starts_with("--threads=")) {
                    // The machine's cores shared among the workers: one each on a machine
                    // with no more cores than workers (a single-threaded runtime).
                    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
                    command.extend(["--threads".into(), (cores / k).max(1).to_string()]);
                }
                command.extend(extra.iter().cloned());
                Launch { command, env: vec![(SECRET_ENV.into(), secret.clone())], cwd: None }
            }
            Kind::Spec(s) => Launch { command: s.command.clone(), env: s.env.clone(), cwd: s.cwd.clone() },
        }
    }

    /// Spawns worker `i` and waits until it is ready.
    async fn launch(&mut self, i: usize) -> Result<(), ManagedError> {
        let launch = self.launch_of(i);
        let mut p = Proc::spawn(&launch)?;
        let command = launch.describe();
        match &mut self.kind {
            Kind::Builtin { urls, .. } => {
                let want = listen_count(&launch.command);
                let wait = Duration::from_secs(10);
                let got = listening(&mut p, want, wait).await;
                match got {
                    Ok(got) => {
                        if urls.is_empty() {
                            self.target = got.first().and_then(|u| u.parse().ok());
                            *urls = got;
                        }
                    }
                    Err(None) => {
                        p.kill().await;
                        let (after, tail) = (human::duration(wait), tail_note(p.tail()));
                        return Err(ManagedError::NotReady { command, after, tail });
                    }
                    Err(Some(status)) => {
                        return Err(ManagedError::Exited { command, status, tail: tail_note(p.tail()) });
                    }
                }
            }
            Kind::Spec(spec) => {
                if let Err(e) = ready(&mut p, &spec.ready, spec.ready_timeout, &command).await {
                    p.kill().await;
                    return Err(e);
                }
            }
        }
        p.lines = None;
        self.members[i] = Some(p);
        Ok(())
    }

    /// Where clients reach the target (the first URL for a server with several).
    pub fn target(&self) -> Target {
        self.target.clone().unwrap_or(Target::Builtin)
    }

    /// Every URL served (the built-in server's listeners).
    pub fn urls(&self) -> Vec<String> {
        match &self.kind {
            Kind::Builtin { urls, .. } => urls.clone(),
            Kind::Spec(_) => self.target.iter().map(Target::to_string).collect(),
        }
    }

    /// Number of worker slots (running or not).
    pub fn workers(&self) -> usize {
        self.members.len()
    }

    /// Process ids of the workers that are running (suspended ones included).
    pub fn pids(&mut self) -> Vec<u32> {
        self.members.iter_mut().flatten().filter_map(|p| p.running().then(|| p.pid())).collect()
    }

    /// Every process id ever started and not yet reaped, running or not.
    pub fn running(&mut self) -> usize {
        self.pids().len()
    }

    /// Whether any of the chosen workers is running (suspended ones included).
    pub fn is_running(&mut self, which: Which) -> Result<bool, ManagedError> {
        let idx = self.indices(which)?;
        Ok(idx.into_iter().any(|i| self.members[i].as_mut().is_some_and(Proc::running)))
    }

    fn indices(&self, which: Which) -> Result<Vec<usize>, ManagedError> {
        match which {
            Which::All => Ok((0..self.members.len()).collect()),
            Which::Worker(i) if i < self.members.len() => Ok(vec![i]),
            Which::Worker(index) => Err(ManagedError::NoWorker { index, workers: self.members.len() }),
        }
    }

    /// SIGKILL; returns the PIDs killed.
    pub async fn kill(&mut self, which: Which) -> Result<Vec<u32>, ManagedError> {
        let mut killed = Vec::new();
        for i in self.indices(which)? {
            if let Some(mut p) = self.members[i].take() {
                if p.running() {
                    killed.push(p.pid());
                }
                p.kill().await;
            }
        }
        Ok(killed)
    }

    /// SIGTERM, [`STOP_GRACE`] to exit, then SIGKILL; returns the PIDs stopped.
    pub async fn stop(&mut self, which: Which) -> Result<Vec<u32>, ManagedError> {
        let mut stopped = Vec::new();
        for i in self.indices(which)? {
            if let Some(p) = self.members[i].as_mut() {
                if p.running() {
                    stopped.push(p.pid());
                    p.signal(libc::SIGTERM);
                    p.signal(libc::SIGCONT);
                }
            }
        }
        for i in self.indices(which)? {
            if let Some(mut p) = self.members[i].take() {
                if !p.wait_exit(STOP_GRACE).await {
                    p.kill().await;
                }
            }
        }
        Ok(stopped)
    }

    /// SIGSTOP: the processes freeze with their sockets open (clients see a stall).
    pub fn suspend(&mut self, which: Which) -> Result<Vec<u32>, ManagedError> {
        self.signal_all(which, libc::SIGSTOP)
    }

    /// SIGCONT.
    pub fn resume(&mut self, which: Which) -> Result<Vec<u32>, ManagedError> {
        self.signal_all(which, libc::SIGCONT)
    }

    fn signal_all(&mut self, which: Which, sig: libc::c_int) -> Result<Vec<u32>, ManagedError> {
        let mut done = Vec::new();
        for i in self.indices(which)? {
            if let Some(p) = self.members[i].as_mut() {
                if p.signal(sig) {
                    done.push(p.pid());
                }
            }
        }
        Ok(done)
    }

    /// Stops the chosen workers if they run (SIGTERM, then SIGKILL after the grace) and
    /// starts them again on the same URLs; returns once each is ready again.
    pub async fn restart(&mut self, which: Which) -> Result<Vec<u32>, ManagedError> {
        self.stop(which).await?;
        let mut pids = Vec::new();
        for i in self.indices(which)? {
            self.restarts[i] += 1;
            self.launch(i).await?;
            pids.extend(self.members[i].as_ref().map(Proc::pid));
        }
        Ok(pids)
    }

    /// Waits until a client can connect and initialize (at most `timeout`); returns how
    /// long that took.
    pub async fn wait_ready(&mut self, timeout: Duration) -> Result<Duration, ManagedError> {
        let t0 = Instant::now();
        let command = self.launch_of(0).describe();
        let Some(target) = self.target.clone() else {
            return Err(ManagedError::Invalid(format!("the server `{command}` declares no target to connect to")));
        };
        if connects(&target, timeout, None).await {
            Ok(t0.elapsed())
        } else {
            let tail = self.members.iter().flatten().map(Proc::tail).collect::<Vec<_>>().join("\n");
            Err(ManagedError::NotReady { command, after: human::duration(timeout), tail: tail_note(tail) })
        }
    }

    /// SIGTERM to every worker, then SIGKILL after the grace period.
    pub async fn shutdown(mut self) {
        let _ = self.stop(Which::All).await;
    }
}

/// Reads `listening URL` lines until `want` arrived: `Err(None)` on timeout, `Err(Some)`
/// with the exit status when the process ended first.
async fn listening(p: &mut Proc, want: usize, wait: Duration) -> Result<Vec<String>, Option<String>> {
    let Some(mut rx) = p.lines.take() else { return Err(None) };
    let got = tokio::time::timeout(wait, async {
        let mut urls = Vec::new();
        while let Some(l) = rx.recv().await {
            if let Some(u) = l.strip_prefix(LISTENING) {
                urls.push(u.trim().to_string());
                if urls.len() >= want.max(1) {
                    return Some(urls);
                }
            }
        }
        None
    })
    .await;
    match got {
        Ok(Some(urls)) => Ok(urls),
        Ok(None) => {
            // Output closed: the process is ending.
            p.wait_exit(Duration::from_secs(2)).await;
            Err(Some(p.exit_status().unwrap_or_else(|| "closed its output".into())))
        }
        Err(_) => Err(None),
    }
}

/// Waits for `rule`, failing early when the process exits.
async fn ready(p: &mut Proc, rule: &Ready, timeout: Duration, command: &str) -> Result<(), ManagedError> {
    let deadline = tokio::time::Instant::now() + timeout;
    let exited = |p: &mut Proc| {
        p.exit_status().map(|status| ManagedError::Exited {
            command: command.to_string(),
            status,
            tail: tail_note(p.tail()),
        })
    };
    let not_ready = |p: &Proc| ManagedError::NotReady {
        command: command.into(),
        after: human::duration(timeout),
        tail: tail_note(p.tail()),
    };
    match rule {
        Ready::Delay(d) => {
            tokio::time::sleep((*d).min(timeout)).await;
        }
        Ready::LogLine(text) => {
            let Some(mut rx) = p.lines.take() else { return Err(not_ready(p)) };
            let seen = tokio::time::timeout_at(deadline, async {
                while let Some(l) = rx.recv().await {
                    if l.contains(text.as_str()) {
                        return true;
                    }
                }
                false
            })
            .await;
            match seen {
                Ok(true) => {}
                Ok(false) => {
                    p.wait_exit(Duration::from_secs(2)).await;
                    return Err(exited(p).unwrap_or_else(|| not_ready(p)));
                }
                Err(_) => return Err(not_ready(p)),
            }
        }
        Ready::Connect(t) => {
            if !connects(t, timeout, Some(p)).await {
                return Err(exited(p).unwrap_or_else(|| not_ready(p)));
            }
        }
    }
    match exited(p) {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Tries connect + initialize every 50 ms until it works (true) or `timeout` passes or
/// `p` exits (false).
async fn connects(target: &Target, timeout: Duration, mut p: Option<&mut Proc>) -> bool {
    let deadline = Instant::now() + timeout;
    let opts = Arc::new(ClientOptions {
        connect_timeout: Duration::from_secs(1).min(timeout.max(Duration::from_millis(100))),
        request_timeout: Duration::from_secs(1),
        ..ClientOptions::default()
    });
    loop {
        if let Ok(Ok(s)) = tokio::time::timeout(opts.connect_timeout, Session::connect(target, opts.clone())).await {
            s.close().await;
            return true;
        }
        if p.as_mut().is_some_and(|p| !p.running()) || Instant::now() + Duration::from_millis(50) >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_listen_flags() {
        let a: Vec<String> = ["serve", "--listen", "tcp://x", "--listen=http://y", "--workers", "1"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(listen_count(&a), 2);
    }

    #[tokio::test]
    async fn a_spec_that_exits_early_names_its_output() {
        let spec = ServerSpec {
            command: vec!["sh".into(), "-c".into(), "echo boom >&2; exit 3".into()],
            env: vec![],
            cwd: None,
            target: None,
            ready: Ready::LogLine("never".into()),
            ready_timeout: Duration::from_secs(5),
        };
        let e = ManagedServer::start(spec).await.err().expect("must fail");
        let msg = e.to_string();
        assert!(msg.contains("exited") && msg.contains("boom"), "{msg}");
    }

    #[tokio::test]
    async fn a_spec_is_ready_on_its_log_line_and_killed_on_drop() {
        let spec = ServerSpec {
            command: vec!["sh".into(), "-c".into(), "echo starting; echo ready now; exec sleep 30".into()],
            env: vec![],
            cwd: None,
            target: None,
            ready: Ready::LogLine("ready now".into()),
            ready_timeout: Duration::from_secs(5),
        };
        let mut s = ManagedServer::start(spec).await.expect("starts");
        let pids = s.pids();
        assert_eq!(pids.len(), 1);
        assert!(Path::new(&format!("/proc/{}", pids[0])).exists());
        assert!(matches!(s.kill(Which::Worker(3)).await, Err(ManagedError::NoWorker { index: 3, workers: 1 })));
        drop(s);
        // Dropped: its group gets SIGKILL at once; reaped by tokio in the background.
        let gone = (0..100).any(|_| {
            std::thread::sleep(Duration::from_millis(20));
            crate::load::sampler::cpu_seconds(pids[0]).is_none()
                || std::fs::read_to_string(format!("/proc/{}/stat", pids[0])).is_ok_and(|s| s.contains(") Z"))
        });
        assert!(gone, "the child outlived its ManagedServer");
    }
}
