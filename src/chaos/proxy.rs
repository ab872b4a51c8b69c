//! The proxy: a listener, one task per accepted connection running its two [`Pump`]s, and
//! the fault table they all read. Faults are added, changed and removed through
//! [`Proxy`] while traffic flows; every random decision comes from the proxy's seed and
//! the connection's index, so a run can be repeated.

use super::faults::{Fault, FaultId};
use super::framing::{Framer, Framing, HttpLink};
use super::pump::{Conn, End, Pump};
use super::stats::{Counters, ProxyStats};
use super::ChaosError;
use crate::client::Target;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, watch};
use tokio::task::{JoinHandle, JoinSet};

/// How long an accepted connection waits for the upstream to accept its twin.
const UPSTREAM_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The faults installed on a proxy, in the order they were added.
#[derive(Debug, Default)]
pub struct FaultTable {
    pub faults: Vec<(FaultId, Fault)>,
}

/// What the proxy forwards to.
#[derive(Debug, Clone)]
pub enum Upstream {
    /// A socket address; newline-delimited JSON framing unless the options say otherwise.
    Addr(SocketAddr),
    /// A target URL (tcp, http, sse+http, ws): address and framing come from it.
    Target(Target),
}

impl From<SocketAddr> for Upstream {
    fn from(a: SocketAddr) -> Upstream {
        Upstream::Addr(a)
    }
}

impl From<Target> for Upstream {
    fn from(t: Target) -> Upstream {
        Upstream::Target(t)
    }
}

impl From<&Target> for Upstream {
    fn from(t: &Target) -> Upstream {
        Upstream::Target(t.clone())
    }
}

/// Settings beyond upstream, listen address and seed.
#[derive(Debug, Clone)]
pub struct ProxyOptions {
    /// Message framing; by default chosen from the upstream target's scheme.
    pub framing: Option<Framing>,
    /// Largest message assembled for message-level faults; bigger ones pass untouched.
    pub max_message_size: usize,
}

impl Default for ProxyOptions {
    fn default() -> Self {
        ProxyOptions { framing: None, max_message_size: crate::client::DEFAULT_MAX_MESSAGE }
    }
}

/// State shared by the proxy handle and its connection tasks.
struct Shared {
    upstream: SocketAddr,
    framing: Framing,
    seed: u64,
    max_message: usize,
    stats: Arc<Counters>,
    faults: watch::Sender<Arc<FaultTable>>,
}

/// A running fault-injecting proxy. Dropping it stops it and closes every connection;
/// [`Proxy::shutdown`] does the same and waits.
pub struct Proxy {
    addr: SocketAddr,
    target: Option<Target>,
    shared: Arc<Shared>,
    next_id: AtomicU64,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl Proxy {
    /// Listens on `listen` (port 0 picks a free port) and forwards every connection to
    /// `upstream`, with no faults yet.
    pub async fn start(upstream: impl Into<Upstream>, listen: SocketAddr, seed: u64) -> Result<Proxy, ChaosError> {
        Proxy::start_with(upstream, listen, seed, ProxyOptions::default()).await
    }

    pub async fn start_with(
        upstream: impl Into<Upstream>,
        listen: SocketAddr,
        seed: u64,
        opts: ProxyOptions,
    ) -> Result<Proxy, ChaosError> {
        let (addr, target, framing) = match upstream.into() {
            Upstream::Addr(a) => (a, None, Framing::Lines),
            Upstream::Target(t) => {
                let framing = match &t {
                    Target::Tcp { .. } => Framing::Lines,
                    Target::Http { .. } | Target::LegacySse { .. } | Target::Ws { .. } => Framing::Http,
                    Target::Stdio { .. } | Target::Builtin => return Err(not_a_socket(&t)),
                };
                (resolve(&t).await?, Some(t), framing)
            }
        };
        let framing = opts.framing.unwrap_or(framing);
        let listener = TcpListener::bind(listen).await.map_err(|source| ChaosError::bind(listen, source))?;
        let bound = listener.local_addr().map_err(|source| ChaosError::bind(listen, source))?;
        let (faults, _) = watch::channel(Arc::new(FaultTable::default()));
        let shared = Arc::new(Shared {
            upstream: addr,
            framing,
            seed,
            max_message: opts.max_message_size,
            stats: Arc::new(Counters::default()),
            faults,
        });
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(accept_loop(listener, shared.clone(), stopped));
        Ok(Proxy { addr: bound, target, shared, next_id: AtomicU64::new(1), stop: Some(stop), task: Some(task) })
    }

    /// The address the proxy listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Where it forwards to.
    pub fn upstream_addr(&self) -> SocketAddr {
        self.shared.upstream
    }

    pub fn framing(&self) -> Framing {
        self.shared.framing
    }

    pub fn seed(&self) -> u64 {
        self.shared.seed
    }

    /// The upstream target as reached through the proxy, when the proxy was started from a
    /// target.
    pub fn target(&self) -> Option<Target> {
        self.target.as_ref().and_then(|t| self.target_for(t).ok())
    }

    /// `target` with the proxy's host and port (same scheme and path): `http://127.0.0.1:8080/mcp`
    /// becomes `http://127.0.0.1:PROXY/mcp`.
    pub fn target_for(&self, target: &Target) -> Result<Target, ChaosError> {
        let ip = match self.addr.ip() {
            ip if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
            ip => ip,
        };
        let port = self.addr.port();
        let rewrite = |url: &str| -> Result<String, ChaosError> {
            let mut u = url::Url::parse(url)
                .map_err(|e| ChaosError::Upstream { target: url.to_string(), reason: e.to_string() })?;
            u.set_ip_host(ip).and_then(|_| u.set_port(Some(port))).map_err(|_| ChaosError::Upstream {
                target: url.to_string(),
                reason: "cannot replace its host and port".into(),
            })?;
            Ok(u.to_string())
        };
        Ok(match target {
            Target::Tcp { .. } => Target::Tcp { host: ip.to_string(), port },
            Target::Http { url } => Target::Http { url: rewrite(url)? },
            Target::Ws { url } => Target::Ws { url: rewrite(url)? },
            Target::LegacySse { url } => Target::LegacySse { url: rewrite(url)? },
            Target::Stdio { .. } | Target::Builtin => return Err(not_a_socket(target)),
        })
    }

    /// Installs a fault; connections already open pick it up at their next chunk (or at
    /// once when idle).
    pub fn add_fault(&self, fault: Fault) -> Result<FaultId, ChaosError> {
        self.check(&fault)?;
        let id = FaultId(self.next_id.fetch_add(1, Ordering::Relaxed));
        self.edit(|t| t.faults.push((id, fault)));
        Ok(id)
    }

    /// Replaces a fault's settings, keeping its per-connection state (timers, counts) when
    /// its kind is unchanged.
    pub fn update_fault(&self, id: FaultId, fault: Fault) -> Result<(), ChaosError> {
        self.check(&fault)?;
        let mut found = false;
        self.edit(|t| {
            if let Some(slot) = t.faults.iter_mut().find(|(i, _)| *i == id) {
                slot.1 = fault;
                found = true;
            }
        });
        if found {
            Ok(())
        } else {
            Err(ChaosError::UnknownFault(id))
        }
    }

    /// Removes a fault and returns it; a black hole it caused lets data through again.
    pub fn remove_fault(&self, id: FaultId) -> Result<Fault, ChaosError> {
        let mut removed = None;
        self.edit(|t| {
            if let Some(i) = t.faults.iter().position(|(f, _)| *f == id) {
                removed = Some(t.faults.remove(i).1);
            }
        });
        removed.ok_or(ChaosError::UnknownFault(id))
    }

    /// Removes every fault.
    pub fn clear(&self) {
        self.edit(|t| t.faults.clear());
    }

    /// The faults installed now.
    pub fn faults(&self) -> Vec<(FaultId, Fault)> {
        self.shared.faults.borrow().faults.clone()
    }

    /// What the proxy did so far.
    pub fn stats(&self) -> ProxyStats {
        self.shared.stats.snapshot()
    }

    /// Stops accepting, closes every connection, waits for them; returns the final counts.
    pub async fn shutdown(mut self) -> ProxyStats {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
        self.stats()
    }

    fn check(&self, fault: &Fault) -> Result<(), ChaosError> {
        fault.validate()?;
        if self.shared.framing == Framing::Raw && fault.kind.is_message_level() {
            return Err(ChaosError::InvalidFault(format!(
                "{}: message-level faults need message framing, and this proxy forwards raw bytes \
                 (start it with a tcp://, http://, sse+http:// or ws:// upstream, or a framing option)",
                fault.name()
            )));
        }
        Ok(())
    }

    /// Copies the table, changes the copy, publishes it (pumps see a consistent table).
    fn edit(&self, change: impl FnOnce(&mut FaultTable)) {
        self.shared.faults.send_modify(|table| {
            let mut t = FaultTable { faults: table.faults.clone() };
            change(&mut t);
            *table = Arc::new(t);
        });
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            // Dropping the accept task's JoinSet aborts every connection task.
            task.abort();
        }
    }
}

impl std::fmt::Debug for Proxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Proxy")
            .field("addr", &self.addr)
            .field("upstream", &self.shared.upstream)
            .field("framing", &self.shared.framing)
            .field("seed", &self.shared.seed)
            .finish()
    }
}

fn not_a_socket(t: &Target) -> ChaosError {
    ChaosError::Upstream {
        target: t.to_string(),
        reason: "only socket targets (tcp://, http://, sse+http://, ws://) can go through the proxy".into(),
    }
}

async fn resolve(t: &Target) -> Result<SocketAddr, ChaosError> {
    let err = |reason: String| ChaosError::Upstream { target: t.to_string(), reason };
    let (host, port) = t.host_port().ok_or_else(|| err("has no host and port".into()))?;
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, port));
    }
    let found = tokio::net::lookup_host((host.as_str(), port))
        .await
        .map_err(|e| err(format!("cannot resolve {host}: {e}")))?
        .next();
    found.ok_or_else(|| err(format!("{host} resolves to no address")))
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>, mut stop: oneshot::Receiver<()>) {
    let mut conns = JoinSet::new();
    let mut index: u64 = 0;
    loop {
        tokio::select! {
            _ = &mut stop => break,
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((client, _)) => {
                    conns.spawn(serve(client, index, shared.clone()));
                    index += 1;
                }
                Err(e) => {
                    // Out of file descriptors or similar: back off instead of spinning.
                    tracing::warn!("proxy accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            },
        }
    }
    conns.shutdown().await;
}

/// Decrements the open-connection gauge however the connection task ends (also when it
/// is aborted).
struct ActiveGuard(Arc<Counters>);

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        self.0.connections_active.fetch_sub(1, Ordering::Relaxed);
    }
}

async fn serve(client: TcpStream, index: u64, shared: Arc<Shared>) {
    let stats = &shared.stats;
    stats.add(&stats.connections, 1);
    let _ = client.set_nodelay(true);
    let connecting = tokio::time::timeout(UPSTREAM_CONNECT_TIMEOUT, crate::net::socket::connect(shared.upstream, None));
    let upstream = match connecting.await.unwrap_or_else(|_| Err(std::io::ErrorKind::TimedOut.into())) {
        Ok(s) => s,
        Err(e) => {
            stats.add(&stats.upstream_connect_failures, 1);
            tracing::debug!("proxy: cannot reach {}: {e}", shared.upstream);
            return;
        }
    };
    stats.add(&stats.connections_active, 1);
    let _guard = ActiveGuard(stats.clone());
    let link = (shared.framing == Framing::Http).then(|| Arc::new(HttpLink::default()));
    let conn = |upstream_side: bool| Conn {
        seed: shared.seed,
        index,
        stats: stats.clone(),
        faults: shared.faults.subscribe(),
        framer: Framer::new(shared.framing, upstream_side, shared.max_message, link.clone()),
        link: link.clone(),
    };
    let up = Pump::new(true, conn(true)).run(&client, &upstream);
    let down = Pump::new(false, conn(false)).run(&upstream, &client);
    let end = both(up, down).await;
    if end == (End::Kill { reset: true }) {
        // SO_LINGER 0: closing sends RST instead of FIN.
        for s in [&client, &upstream] {
            let _ = socket2::SockRef::from(s).set_linger(Some(Duration::ZERO));
        }
    }
}

/// Runs both directions until both reached end of input, or until either is killed or
/// fails (then both sockets close).
async fn both(up: impl std::future::Future<Output = End>, down: impl std::future::Future<Output = End>) -> End {
    tokio::pin!(up, down);
    let (mut up_done, mut down_done) = (false, false);
    loop {
        let end = tokio::select! {
            e = &mut up, if !up_done => { up_done = true; e }
            e = &mut down, if !down_done => { down_done = true; e }
        };
        if end != End::Eof {
            return end;
        }
        if up_done && down_done {
            return End::Eof;
        }
    }
}
