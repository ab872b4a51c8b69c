//! The worker processes of one `serve --workers N` (or of a managed `builtin` target with
//! several workers) hand each other the client's replies to the server's own requests.
//!
//! A Streamable HTTP session may be served by any worker: its id is signed, so whichever
//! worker a connection lands on takes the session over. A tool call that asks the client
//! something (sampling, elicitation) waits in the worker that runs it, but the client POSTs
//! its reply on another connection, which may land on a sibling. So the request ids of a
//! session served by several workers name the worker that sent them
//! ([`crate::server::peer::Exchange::route_to_workers`]), and a worker that gets a reply
//! for a sibling's request writes it to that sibling: one line, `<session id> <reply
//! JSON>`, on a Unix socket.
//!
//! Each worker listens, for each of its HTTP listeners, on an abstract Unix socket (Linux:
//! a name, no file, gone when the process is; nothing to clean up after a crash or a
//! SIGKILL) named after the group's session-signing key and the worker and listener
//! indices: `mcpscript-serve-<tag>-<worker>-<listener>`, where the tag is a hash of the
//! key (the key itself stays secret). Only processes of the same user are listened to
//! (`SO_PEERCRED`), and a line acts only on a session this worker knows and a request it
//! is waiting on. Connections to siblings are opened on first use and kept.

use super::handler::SessionState;
use super::peer::Forward;
use super::ServerConfig;
use crate::protocol::jsonrpc::{self, Message, Payload};
use std::collections::HashMap;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::watch;

/// Finds a session of one HTTP listener by its id.
pub type Lookup = Arc<dyn Fn(&str) -> Option<Arc<SessionState>> + Send + Sync>;

/// One kept connection to a sibling's socket.
type Link = Arc<tokio::sync::Mutex<Option<UnixStream>>>;

/// This worker's view of its siblings.
pub struct Siblings {
    /// `mcpscript-serve-<tag>`: the start of every socket name of the group.
    prefix: String,
    /// This process's worker index.
    pub index: usize,
    /// Connections to siblings, by (worker, listener).
    links: Mutex<HashMap<(usize, usize), Link>>,
}

impl Siblings {
    /// `None` for a server that has no siblings (one process).
    pub fn new(config: &ServerConfig) -> Option<Siblings> {
        if config.workers <= 1 && config.worker_index == 0 {
            return None;
        }
        Some(Siblings {
            prefix: format!("mcpscript-serve-{:016x}", group_tag(config.session_secret)),
            index: config.worker_index,
            links: Mutex::new(HashMap::new()),
        })
    }

    fn address(&self, worker: usize, listener: usize) -> std::io::Result<SocketAddr> {
        SocketAddr::from_abstract_name(format!("{}-{worker}-{listener}", self.prefix))
    }

    /// Listens for replies that siblings hand over to this worker's listener `listener`.
    pub fn bind(&self, listener: usize) -> std::io::Result<UnixListener> {
        let std = std::os::unix::net::UnixListener::bind_addr(&self.address(self.index, listener)?)?;
        std.set_nonblocking(true)?;
        UnixListener::from_std(std)
    }

    /// Hands a reply to the sibling whose request it answers (in the background; a sibling
    /// that is gone loses it, as its request is).
    pub fn forward(self: &Arc<Self>, forward: Forward) {
        let me = self.clone();
        tokio::spawn(async move { me.send(forward).await });
    }

    async fn send(&self, f: Forward) {
        let json = Message::Response(f.reply).to_vec();
        let mut line = Vec::with_capacity(f.session.len() + json.len() + 2);
        line.extend_from_slice(f.session.as_bytes());
        line.push(b' ');
        line.extend_from_slice(&json);
        line.push(b'\n');
        let link = crate::util::lock(&self.links).entry((f.worker, f.listener)).or_default().clone();
        let mut conn = link.lock().await;
        // A kept connection may have broken (the sibling restarted): one fresh try.
        for _ in 0..2 {
            if conn.is_none() {
                match self.connect(f.worker, f.listener).await {
                    Ok(c) => *conn = Some(c),
                    Err(e) => {
                        tracing::debug!("cannot reach worker {}: {e}; a reply to its request is lost", f.worker);
                        return;
                    }
                }
            }
            if let Some(c) = conn.as_mut() {
                if c.write_all(&line).await.is_ok() {
                    return;
                }
            }
            *conn = None;
        }
    }

    async fn connect(&self, worker: usize, listener: usize) -> std::io::Result<UnixStream> {
        let addr = self.address(worker, listener)?;
        // Connecting to a Unix socket does not wait for the peer, except when its backlog
        // is full: off the runtime's threads, bounded.
        let connect = tokio::task::spawn_blocking(move || {
            let s = std::os::unix::net::UnixStream::connect_addr(&addr)?;
            s.set_nonblocking(true)?;
            Ok::<_, std::io::Error>(s)
        });
        match tokio::time::timeout(Duration::from_secs(5), connect).await {
            Ok(Ok(Ok(s))) => UnixStream::from_std(s),
            Ok(Ok(Err(e))) => Err(e),
            Ok(Err(e)) => Err(std::io::Error::other(e)),
            Err(_) => Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out")),
        }
    }
}

/// The group's tag: a hash of the shared session-signing key.
fn group_tag(secret: u64) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::hash::DefaultHasher::new();
    "mcpscript sibling sockets".hash(&mut h);
    secret.hash(&mut h);
    h.finish()
}

/// Accepts siblings' connections on `listener` until `shutdown` turns true, delivering
/// each reply they hand over to the session `lookup` finds.
pub async fn serve(listener: UnixListener, lookup: Lookup, mut shutdown: watch::Receiver<bool>) {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let uid = unsafe { libc::geteuid() };
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = shutdown.wait_for(|s| *s) => return,
        };
        let conn = match accepted {
            Ok((conn, _)) => conn,
            Err(e) => {
                tracing::warn!("sibling socket: accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        if conn.peer_cred().map(|c| c.uid()).ok() != Some(uid) {
            tracing::warn!("sibling socket: a connection from another user is refused");
            continue;
        }
        tokio::spawn(read_replies(conn, lookup.clone(), shutdown.clone()));
    }
}

async fn read_replies(conn: UnixStream, lookup: Lookup, mut shutdown: watch::Receiver<bool>) {
    let mut lines = BufReader::new(conn).lines();
    loop {
        let line = tokio::select! {
            l = lines.next_line() => l,
            _ = shutdown.wait_for(|s| *s) => return,
        };
        match line {
            Ok(Some(line)) => deliver(&line, &lookup),
            _ => return,
        }
    }
}

/// One handed-over reply: `<session id> <reply JSON>`.
fn deliver(line: &str, lookup: &Lookup) {
    let Some((id, json)) = line.split_once(' ') else { return };
    let Some(session) = lookup(id) else {
        tracing::debug!("a sibling handed over a reply for a session this worker does not know");
        return;
    };
    match jsonrpc::parse(json.as_bytes()) {
        Ok(Payload::Single(Ok(Message::Response(reply)))) => {
            if !session.exchange().resolve_here(reply) {
                tracing::debug!("a handed-over reply answers no request of this worker's");
            }
        }
        _ => tracing::debug!("a sibling handed over something that is not a reply"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::jsonrpc::{Id, Response};
    use crate::server::peer::Resolved;
    use serde_json::json;

    fn config(secret: u64, index: usize) -> ServerConfig {
        ServerConfig { workers: 1, worker_index: index, session_secret: secret, ..ServerConfig::default() }
    }

    #[tokio::test]
    async fn a_reply_reaches_the_worker_whose_request_it_answers() {
        // Two "workers" in one process: 1 asked, the reply reaches 2.
        let secret = rand::random();
        let (one, two) =
            (Arc::new(Siblings::new(&config(secret, 1)).unwrap()), Siblings::new(&config(secret, 2)).unwrap());
        let asking = Arc::new(SessionState::new(false));
        asking.exchange().route_to_workers(1, 0, "sid");
        let lookup: Lookup = {
            let asking = asking.clone();
            Arc::new(move |id: &str| (id == "sid").then(|| asking.clone()))
        };
        let (_stop, shutdown) = watch::channel(false);
        tokio::spawn(serve(one.bind(0).unwrap(), lookup, shutdown));
        // What worker 1 sent as request 1 carries its index; worker 2 sees the id and hands
        // the reply over.
        let (waiter, answered) = tokio::sync::oneshot::channel();
        let id = asking.exchange().wait_for_test(waiter);
        assert_eq!(id.rem_euclid(crate::server::peer::WORKER_SLOTS), 1);
        let landed = SessionState::new(false);
        landed.exchange().route_to_workers(2, 0, "sid");
        let reply = Response::ok(Id::Num(id), json!({"action": "accept"}));
        let Resolved::Elsewhere(forward) = landed.exchange().resolve(reply) else { panic!("not handed over") };
        assert_eq!((forward.worker, forward.listener), (1, 0));
        let two = Arc::new(two);
        two.forward(forward);
        let got = tokio::time::timeout(Duration::from_secs(5), answered).await.unwrap().unwrap();
        assert_eq!(got.unwrap(), json!({"action": "accept"}));
    }

    #[test]
    fn a_lone_server_has_no_siblings_and_groups_differ_by_key() {
        assert!(Siblings::new(&ServerConfig::default()).is_none());
        let a = Siblings::new(&config(1, 1)).unwrap();
        let b = Siblings::new(&config(2, 1)).unwrap();
        assert_ne!(a.prefix, b.prefix);
    }
}
