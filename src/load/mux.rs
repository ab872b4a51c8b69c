//! The open model's connection: many requests in flight on one `tcp://` session, with no
//! task, channel or timer per request. The scheduler writes a request straight into the
//! socket (non-blocking; only when the socket buffer is full does the rest wait in a
//! per-connection backlog that a flusher task drains) and notes it in the connection's
//! pending set. Replies are read by a reader task shared by up to [`GROUP`] connections
//! ([`ReadGroup`]: a connection's waker queues it there, so a connection costs no task of
//! its own), which records each reply's outcome and latency (from the *intended* send
//! time) directly into the phase's recorder. Deadlines go into
//! a coarse wheel ([`Deadlines`]) that a sweeper walks every [`TICK`]: a request still
//! pending when its bucket comes due is a timeout. Every request leaves the pending set
//! exactly once (reply, timeout, connection loss or cancellation) under the connection's
//! lock, which is what keeps `sent = ok + errors + timeouts + cancelled` exact.

use super::conn::{cancel_line, classify, try_read_lines, Encoded, Line, Reply, PREFIX};
use super::recorder::{Outcome, PhaseRecorder};
use super::resilience::Breaker;
use crate::client::server_requests::ServerRequests;
use crate::client::ErrorKind;
use std::collections::VecDeque;
use std::future::poll_fn;
use std::io::{self, IoSlice};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};
use tokio::net::TcpStream;

/// Resolution of request deadlines.
pub const TICK: Duration = Duration::from_millis(50);

/// What the connections of one open-model phase report to.
pub struct Hooks {
    pub rec: Arc<PhaseRecorder>,
    /// Requests written and not yet accounted for.
    pub inflight: AtomicU64,
    /// Intended send times are kept as nanoseconds since this instant.
    pub t0: Instant,
    pub timeout: Duration,
    pub deadlines: Deadlines,
    /// Circuit breaker told of every outcome, when the phase has one.
    pub breaker: Option<Arc<Breaker>>,
    /// Per request kind: most resends after a lost connection (0: never).
    resend_max: Vec<u8>,
    /// Requests whose connection broke, waiting to be resent (still counted in flight).
    requeued: Mutex<Vec<Entry>>,
    /// The read group new connections join, and how many have joined it.
    readers: Mutex<(Weak<ReadGroup>, usize)>,
}

impl Hooks {
    pub fn new(rec: Arc<PhaseRecorder>, timeout: Duration) -> Arc<Hooks> {
        Hooks::with(rec, timeout, None, vec![])
    }

    /// Hooks with a breaker and, per kind, how often a request is resent after its
    /// connection broke.
    pub fn with(
        rec: Arc<PhaseRecorder>,
        timeout: Duration,
        breaker: Option<Arc<Breaker>>,
        resend_max: Vec<u8>,
    ) -> Arc<Hooks> {
        let t0 = Instant::now();
        Arc::new(Hooks {
            rec,
            inflight: AtomicU64::new(0),
            t0,
            timeout,
            deadlines: Deadlines::new(t0),
            breaker,
            resend_max,
            requeued: Mutex::new(Vec::new()),
            readers: Mutex::new((Weak::new(), 0)),
        })
    }

    /// The read group a new connection joins: the current one until it has [`GROUP`]
    /// connections, then a new one (with its task).
    fn read_group(&self) -> Arc<ReadGroup> {
        let mut r = self.readers.lock().unwrap_or_else(|p| p.into_inner());
        if r.1 < GROUP {
            if let Some(g) = r.0.upgrade() {
                r.1 += 1;
                return g;
            }
        }
        let g = ReadGroup::start();
        *r = (Arc::downgrade(&g), 1);
        g
    }

    fn finish(&self, e: &Entry, outcome: Outcome) {
        let intended = self.t0 + Duration::from_nanos(e.at_ns);
        self.rec.done(e.n as usize, e.kind as usize, outcome, intended.elapsed());
        if let Some(b) = &self.breaker {
            b.record(!matches!(outcome, Outcome::Ok | Outcome::Cancelled));
        }
        // Release: the drain loop (Acquire) sees the outcome recorded before the count drops.
        self.inflight.fetch_sub(1, Ordering::Release);
    }

    /// A request whose connection broke: requeued for another attempt when its kind is
    /// resent and it has attempts left, else finished as a transport error.
    fn lost(&self, e: &Entry) {
        if self.resend_max.get(e.kind as usize).is_some_and(|m| e.tries < *m) {
            self.requeued.lock().unwrap_or_else(|p| p.into_inner()).push(*e);
        } else {
            self.finish(e, Outcome::Error(ErrorKind::Transport));
        }
    }

    /// Takes the requests waiting to be resent.
    pub fn take_requeued(&self) -> Vec<Requeued> {
        std::mem::take(&mut *self.requeued.lock().unwrap_or_else(|p| p.into_inner()))
            .into_iter()
            .map(Requeued)
            .collect()
    }

    /// Puts requests back that found no live connection.
    pub fn requeue(&self, back: Vec<Requeued>) {
        if !back.is_empty() {
            self.requeued.lock().unwrap_or_else(|p| p.into_inner()).extend(back.into_iter().map(|r| r.0));
        }
    }

    /// Ends a requeued request that cannot be resent.
    pub fn give_up(&self, r: Requeued, outcome: Outcome) {
        self.finish(&r.0, outcome);
    }
}

/// A request waiting for another attempt (still counted in flight).
pub struct Requeued(Entry);

impl Requeued {
    pub fn kind(&self) -> usize {
        self.0.kind as usize
    }
}

/// A request waiting for its reply.
#[derive(Clone, Copy)]
struct Entry {
    id: u64,
    /// Attempts before this one.
    tries: u8,
    kind: u32,
    /// Picks the recorder shard (the arrival number).
    n: u32,
    /// Intended send time, ns since [`Hooks::t0`].
    at_ns: u64,
}

#[derive(Default)]
struct State {
    next_id: u64,
    first: Option<Entry>,
    more: Vec<Entry>,
    backlog: Vec<u8>,
    flushing: bool,
    closed: bool,
}

impl State {
    fn take(&mut self, id: u64) -> Option<Entry> {
        if self.first.is_some_and(|e| e.id == id) {
            return self.first.take();
        }
        let pos = self.more.iter().position(|e| e.id == id)?;
        let e = self.more.swap_remove(pos);
        if self.more.is_empty() {
            self.more = Vec::new();
        }
        Some(e)
    }

    fn take_sole(&mut self) -> Option<Entry> {
        if self.more.is_empty() {
            self.first.take()
        } else {
            None
        }
    }

    fn drain(&mut self) -> Vec<Entry> {
        self.first.take().into_iter().chain(std::mem::take(&mut self.more)).collect()
    }
}

/// A multiplexed lean connection. Dropping it closes the socket: with SO_LINGER 0 (set at
/// connect when `abortive`) that is an RST, so neither side keeps a TIME_WAIT.
pub struct MuxConn {
    stream: TcpStream,
    state: Mutex<State>,
    /// The partial line read so far (only the read group touches it).
    partial: Mutex<Vec<u8>>,
    /// Longest line accepted.
    max: usize,
    hooks: Arc<Hooks>,
    /// Queues this connection on its read group when the socket becomes readable.
    waker: Waker,
    /// Queued on the read group and not yet read.
    queued: AtomicBool,
    abortive: bool,
    /// What server requests get (shared by the phase's connections).
    requests: Arc<ServerRequests>,
}

/// A request could not be written: the connection is closed.
#[derive(Debug)]
pub struct Closed;

impl MuxConn {
    /// Takes over a connection after its handshake (`partial`: what was read of the next
    /// line) and joins it to a read group.
    pub fn start(
        stream: TcpStream,
        partial: Vec<u8>,
        next_id: u64,
        max: usize,
        abortive: bool,
        hooks: Arc<Hooks>,
        requests: Arc<ServerRequests>,
    ) -> Arc<MuxConn> {
        let group = hooks.read_group();
        let conn = Arc::new_cyclic(|me| MuxConn {
            stream,
            state: Mutex::new(State { next_id, ..State::default() }),
            partial: Mutex::new(partial),
            max,
            hooks,
            waker: Waker::from(Arc::new(Waking { conn: me.clone(), group })),
            queued: AtomicBool::new(false),
            abortive,
            requests,
        });
        // The first read registers the waker with the socket.
        conn.waker.wake_by_ref();
        conn
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn is_closed(&self) -> bool {
        self.state().closed
    }

    /// Writes request `kind` (arrival `n`, intended at `at_ns`). The outcome is recorded
    /// later by the reader, the deadline sweep or a close.
    pub fn send(self: &Arc<Self>, enc: &Encoded, kind: usize, n: u64, at_ns: u64) -> Result<(), Closed> {
        self.send_entry(enc, Entry { id: 0, tries: 0, kind: kind as u32, n: n as u32, at_ns })
    }

    /// Sends a requeued request again (one more attempt; it stays one request in flight).
    /// On `Err` it is handed back.
    pub fn resend(self: &Arc<Self>, enc: &Encoded, r: Requeued) -> Result<(), Requeued> {
        let e = Entry { tries: r.0.tries.saturating_add(1), ..r.0 };
        match self.send_entry(enc, e) {
            Ok(()) => {
                self.hooks.rec.resent(e.n as usize, e.kind as usize);
                // It was already counted in flight.
                self.hooks.inflight.fetch_sub(1, Ordering::Release);
                Ok(())
            }
            Err(Closed) => Err(r),
        }
    }

    fn send_entry(self: &Arc<Self>, enc: &Encoded, mut e: Entry) -> Result<(), Closed> {
        let mut st = self.state();
        if st.closed {
            return Err(Closed);
        }
        let id = st.next_id;
        st.next_id += 1;
        e.id = id;
        if st.first.is_none() {
            st.first = Some(e);
        } else {
            st.more.push(e);
        }
        // Relaxed increments are ordered before the Release decrement by the lock above.
        self.hooks.inflight.fetch_add(1, Ordering::Relaxed);
        let mut digits = [0u8; 20];
        let idb = super::conn::itoa(id, &mut digits);
        let parts = [PREFIX, idb, &enc.suffix[..]];
        self.write_locked(&mut st, &parts);
        drop(st);
        self.hooks.deadlines.push(Instant::now() + self.hooks.timeout, Arc::downgrade(self), id);
        Ok(())
    }

    /// Writes `parts` now if the socket takes them, else queues what is left.
    fn write_locked(self: &Arc<Self>, st: &mut State, parts: &[&[u8]]) {
        let total: usize = parts.iter().map(|p| p.len()).sum();
        let mut done = 0;
        if st.backlog.is_empty() {
            let mut slices = [IoSlice::new(&[]); 4];
            for (s, p) in slices.iter_mut().zip(parts) {
                *s = IoSlice::new(p);
            }
            match self.stream.try_write_vectored(&slices[..parts.len().min(4)]) {
                Ok(n) => done = n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(_) => {
                    st.closed = true;
                    return;
                }
            }
        }
        if done < total {
            let mut skip = done;
            for p in parts {
                if skip >= p.len() {
                    skip -= p.len();
                    continue;
                }
                st.backlog.extend_from_slice(&p[skip..]);
                skip = 0;
            }
            if !st.flushing {
                st.flushing = true;
                tokio::spawn(flush(self.clone()));
            }
        }
    }

    /// Fails every pending request with `outcome` and marks the connection closed. A
    /// transport failure (the connection broke) requeues the resendable ones.
    fn fail_all(&self, outcome: Outcome) {
        let pending = {
            let mut st = self.state();
            st.closed = true;
            st.drain()
        };
        for e in pending {
            if outcome == Outcome::Error(ErrorKind::Transport) {
                self.hooks.lost(&e);
            } else {
                self.hooks.finish(&e, outcome);
            }
        }
    }

    /// Whether request `id` is still waiting for its reply.
    fn is_pending(&self, id: u64) -> bool {
        let st = self.state();
        st.first.is_some_and(|e| e.id == id) || st.more.iter().any(|e| e.id == id)
    }

    /// Called by the deadline sweep: request `id` is a timeout if still pending.
    fn expire(self: &Arc<Self>, id: u64) {
        let mut st = self.state();
        let Some(e) = st.take(id) else { return };
        if !st.closed {
            let line = cancel_line(id, self.hooks.timeout);
            self.write_locked(&mut st, &[&line]);
        }
        drop(st);
        self.hooks.finish(&e, Outcome::Timeout);
    }

    /// Cancels what is pending (the phase was stopped), keeping the connection.
    pub fn cancel_pending(&self) {
        let pending = self.state().drain();
        for e in pending {
            self.hooks.finish(&e, Outcome::Cancelled);
        }
    }

    /// Cancels what is pending and stops reading; the socket closes (abortively when
    /// configured: no TIME_WAIT) when the last handle is dropped.
    pub fn close(&self) {
        self.fail_all(Outcome::Cancelled);
        if self.abortive {
            let _ = socket2::SockRef::from(&self.stream).set_linger(Some(Duration::ZERO));
        }
    }

    /// Reads what the socket holds and delivers every complete line, until the socket has
    /// nothing more (the waker is then registered with it) or breaks. Called by the read
    /// group only.
    fn read(self: &Arc<Self>) {
        if self.state().closed {
            return;
        }
        let mut cx = Context::from_waker(&self.waker);
        let mut partial = self.partial.lock().unwrap_or_else(|e| e.into_inner());
        let broken = loop {
            // This also spends the group task's budget: once it is spent, this returns
            // `Pending` and wakes the waker, so the connection is queued again and read
            // after the group task has yielded.
            match self.stream.poll_read_ready(&mut cx) {
                Poll::Pending => break false,
                Poll::Ready(Err(_)) => break true,
                Poll::Ready(Ok(())) => {}
            }
            match try_read_lines(&self.stream, &mut partial, self.max, &mut |line| deliver(self, line)) {
                Ok(_) => {}
                Err(_) => break true,
            }
        };
        if partial.is_empty() && partial.capacity() > 4096 {
            *partial = Vec::new();
        }
        drop(partial);
        if broken {
            self.fail_all(Outcome::Error(ErrorKind::Transport));
        }
    }
}

/// A connection's waker: queues the connection on its read group.
struct Waking {
    conn: Weak<MuxConn>,
    group: Arc<ReadGroup>,
}

impl Wake for Waking {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if let Some(c) = self.conn.upgrade() {
            if !c.queued.swap(true, Ordering::AcqRel) {
                self.group.queue(c);
            }
        }
    }
}

/// Connections one read task serves at most.
pub const GROUP: usize = 256;

/// Connections sharing one reader task: a connection whose socket became readable is
/// queued here and the task reads it. The task ends once the group is dropped (its last
/// connection gone).
pub struct ReadGroup {
    ready: Mutex<Ready>,
}

#[derive(Default)]
struct Ready {
    conns: Vec<Arc<MuxConn>>,
    /// The task, when it waits for a connection to be queued.
    task: Option<Waker>,
}

impl ReadGroup {
    fn start() -> Arc<ReadGroup> {
        let g = Arc::new(ReadGroup { ready: Mutex::new(Ready::default()) });
        tokio::spawn(read_group(Arc::downgrade(&g)));
        g
    }

    fn lock(&self) -> MutexGuard<'_, Ready> {
        self.ready.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn queue(&self, c: Arc<MuxConn>) {
        let task = {
            let mut r = self.lock();
            r.conns.push(c);
            r.task.take()
        };
        if let Some(t) = task {
            t.wake();
        }
    }
}

impl Drop for ReadGroup {
    fn drop(&mut self) {
        if let Some(t) = self.ready.get_mut().unwrap_or_else(|e| e.into_inner()).task.take() {
            t.wake();
        }
    }
}

/// A read group's task: reads the queued connections, in batches, until the group is gone.
async fn read_group(group: Weak<ReadGroup>) {
    let mut batch: Vec<Arc<MuxConn>> = Vec::new();
    loop {
        let alive = poll_fn(|cx| {
            let Some(g) = group.upgrade() else { return Poll::Ready(false) };
            let mut r = g.lock();
            if r.conns.is_empty() {
                if !r.task.as_ref().is_some_and(|t| t.will_wake(cx.waker())) {
                    r.task = Some(cx.waker().clone());
                }
                return Poll::Pending;
            }
            std::mem::swap(&mut batch, &mut r.conns);
            Poll::Ready(true)
        })
        .await;
        if !alive {
            return;
        }
        for c in batch.drain(..) {
            // Cleared first: a wake while it is read queues it again.
            c.queued.store(false, Ordering::Release);
            c.read();
        }
        // Reads spend the task's budget; once it is spent, let the runtime run others.
        tokio::task::consume_budget().await;
    }
}

async fn flush(conn: Arc<MuxConn>) {
    loop {
        if conn.stream.writable().await.is_err() {
            conn.fail_all(Outcome::Error(ErrorKind::Transport));
            return;
        }
        let mut st = conn.state();
        match conn.stream.try_write(&st.backlog) {
            Ok(n) => {
                st.backlog.drain(..n);
                if st.backlog.is_empty() {
                    st.backlog = Vec::new();
                    st.flushing = false;
                    return;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(_) => {
                st.flushing = false;
                drop(st);
                conn.fail_all(Outcome::Error(ErrorKind::Transport));
                return;
            }
        }
    }
}

fn deliver(c: &Arc<MuxConn>, line: &[u8]) {
    let (entry, outcome) = match classify(line, &c.requests) {
        Line::Reply(id, reply) => (c.state().take(id), reply.outcome()),
        Line::Garbage(Some(id)) => (c.state().take(id), Reply::Protocol.outcome()),
        Line::Garbage(None) => (c.state().take_sole(), Reply::Protocol.outcome()),
        Line::Answer(a) => {
            let mut st = c.state();
            if !st.closed {
                c.write_locked(&mut st, &[&a]);
            }
            return;
        }
        Line::Other => return,
    };
    if let Some(e) = entry {
        c.hooks.finish(&e, outcome);
    }
}

/// Request deadlines in buckets of [`TICK`], in send order (one timeout per phase, so
/// deadlines only grow and new entries join the last bucket). A bucket keeps its entries
/// until it comes due, answered or not; so that a long timeout does not keep every request
/// of the last `timeout` seconds (30 s at 50,000 req/s: 1.5 million entries, 24 MB and
/// more), each bucket is compacted once, [`COMPACT_AFTER`] after it was started, to the
/// requests still pending then.
pub struct Deadlines {
    t0: Instant,
    buckets: Mutex<Wheel>,
}

/// A bucket is compacted once it is this old.
const COMPACT_AFTER: Duration = Duration::from_secs(1);

#[derive(Default)]
struct Wheel {
    buckets: VecDeque<Bucket>,
    /// Every bucket due at or before this tick has been compacted.
    compacted_upto: u64,
}

/// Requests due in one tick.
struct Bucket {
    due: u64,
    /// The tick the bucket was started in.
    born: u64,
    /// The connection and the request id.
    entries: Vec<(Weak<MuxConn>, u64)>,
}

impl Deadlines {
    fn new(t0: Instant) -> Deadlines {
        Deadlines { t0, buckets: Mutex::new(Wheel::default()) }
    }

    fn tick_of(&self, at: Instant) -> u64 {
        (at.saturating_duration_since(self.t0).as_nanos() / TICK.as_nanos()) as u64 + 1
    }

    fn wheel(&self) -> MutexGuard<'_, Wheel> {
        self.buckets.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn push(&self, due: Instant, conn: Weak<MuxConn>, id: u64) {
        let tick = self.tick_of(due);
        let mut w = self.wheel();
        match w.buckets.back_mut() {
            Some(b) if b.due >= tick => b.entries.push((conn, id)),
            // The clock is read once per bucket, not per request.
            _ => {
                let born = self.tick_of(Instant::now());
                w.buckets.push_back(Bucket { due: tick, born, entries: vec![(conn, id)] })
            }
        }
    }

    /// Expires every request whose deadline has passed, then compacts the buckets started
    /// [`COMPACT_AFTER`] ago or earlier.
    pub fn sweep(&self) {
        let now = self.tick_of(Instant::now());
        loop {
            let due = {
                let mut w = self.wheel();
                match w.buckets.front() {
                    Some(b) if b.due < now => w.buckets.pop_front().map(|b| b.entries),
                    _ => None,
                }
            };
            let Some(due) = due else { break };
            for (w, id) in due {
                if let Some(c) = w.upgrade() {
                    c.expire(id);
                }
            }
        }
        let age = (COMPACT_AFTER.as_nanos() / TICK.as_nanos()) as u64;
        self.compact(now.saturating_sub(age));
    }

    /// Drops the answered requests from every bucket started at or before tick `born`,
    /// one bucket at a time (the lock is not held while connections are asked). Only the
    /// sweeper removes buckets, so a bucket taken out is still there to put back into.
    fn compact(&self, born: u64) {
        loop {
            let (due, entries) = {
                let mut w = self.wheel();
                let upto = w.compacted_upto;
                let first = w.buckets.partition_point(|b| b.due <= upto);
                let Some(b) = w.buckets.get_mut(first) else { return };
                if b.born > born {
                    return;
                }
                (b.due, std::mem::take(&mut b.entries))
            };
            let pending: Vec<_> =
                entries.into_iter().filter(|(c, id)| c.upgrade().is_some_and(|c| c.is_pending(*id))).collect();
            let mut w = self.wheel();
            w.compacted_upto = due;
            let at = w.buckets.partition_point(|b| b.due < due);
            if let Some(b) = w.buckets.get_mut(at).filter(|b| b.due == due) {
                // Entries pushed meanwhile (it was the last bucket) are kept.
                let mut kept = Vec::with_capacity(pending.len() + b.entries.len());
                kept.extend(pending);
                kept.append(&mut b.entries);
                b.entries = kept;
            }
        }
    }

    /// Entries held, answered or not.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.wheel().buckets.iter().map(|b| b.entries.len()).sum()
    }

    /// Runs [`sweep`](Self::sweep) every tick until the hooks are dropped.
    pub fn spawn_sweeper(hooks: &Arc<Hooks>) -> tokio::task::JoinHandle<()> {
        let weak = Arc::downgrade(hooks);
        tokio::spawn(async move {
            let mut every = tokio::time::interval(TICK);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                every.tick().await;
                match weak.upgrade() {
                    Some(h) => h.deadlines.sweep(),
                    None => return,
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::recorder::Accumulator;
    use std::sync::atomic::AtomicI64;
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    use tokio::net::{TcpListener, TcpStream};

    /// Connections beyond one group's worth all get their replies read (by more than one
    /// group), and dropping them closes their sockets and frees the groups: a connection's
    /// waker does not keep it alive.
    #[tokio::test]
    async fn read_groups_read_every_connection_and_let_dropped_ones_go() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let n = 2 * GROUP + 10;
        let closed = Arc::new(AtomicU64::new(0));
        let server = {
            let closed = closed.clone();
            tokio::spawn(async move {
                for _ in 0..n {
                    let (s, _) = listener.accept().await.unwrap();
                    let closed = closed.clone();
                    tokio::spawn(async move {
                        let (rd, mut wr) = s.into_split();
                        let mut lines = BufReader::new(rd).lines();
                        while let Ok(Some(line)) = lines.next_line().await {
                            let id = serde_json::from_str::<serde_json::Value>(&line).unwrap()["id"].as_u64().unwrap();
                            let reply = format!("{{\"jsonrpc\":\"2.0\",\"id\":{id},\"result\":{{}}}}\n");
                            if wr.write_all(reply.as_bytes()).await.is_err() {
                                break;
                            }
                        }
                        closed.fetch_add(1, Ordering::Relaxed);
                    });
                }
            })
        };
        let rec = PhaseRecorder::new(1, Arc::new(AtomicI64::new(0)));
        let hooks = Hooks::new(rec.clone(), Duration::from_secs(10));
        let requests = Arc::new(ServerRequests::default());
        let mut conns = Vec::new();
        for _ in 0..n {
            let client = TcpStream::connect(addr).await.unwrap();
            conns.push(MuxConn::start(client, Vec::new(), 1, 1 << 20, false, hooks.clone(), requests.clone()));
        }
        let enc = Encoded::new("ping", None);
        for round in 0..3 {
            for (i, c) in conns.iter().enumerate() {
                c.send(&enc, 0, (round * n + i) as u64, 0).unwrap();
            }
        }
        let waited = Instant::now();
        while hooks.inflight.load(Ordering::Acquire) > 0 {
            assert!(waited.elapsed() < Duration::from_secs(10), "replies were not read");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        server.await.unwrap();
        let mut acc = Accumulator::new(vec!["ping".into()], 0);
        let snap = rec.fold(&mut acc, &mut rec.spares(), 0, 1.0);
        assert_eq!(snap.kinds[0].0.ok, 3 * n as u64);
        // Two full groups, and the third has the last ten.
        assert_eq!(hooks.readers.lock().unwrap().1, 10);

        drop(conns);
        let waited = Instant::now();
        while closed.load(Ordering::Relaxed) < n as u64 {
            assert!(waited.elapsed() < Duration::from_secs(5), "dropped connections kept their sockets open");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert!(hooks.readers.lock().unwrap().0.upgrade().is_none(), "the read group outlived its connections");
    }

    /// Compacting a bucket drops the answered requests and keeps the pending ones, which
    /// still time out when their bucket comes due; a bucket younger than asked is left alone.
    #[tokio::test]
    async fn compaction_keeps_only_pending_requests_and_they_still_time_out() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
        let (server, _) = listener.accept().await.unwrap();
        let rec = PhaseRecorder::new(1, Arc::new(AtomicI64::new(0)));
        let hooks = Hooks::new(rec.clone(), Duration::from_millis(300));
        let requests = Arc::new(ServerRequests::default());
        let conn = MuxConn::start(client, Vec::new(), 1, 1 << 20, false, hooks.clone(), requests);
        let enc = Encoded::new("ping", None);
        for n in 0..10 {
            conn.send(&enc, 0, n, 0).unwrap();
        }
        // The server answers the even ids (2, 4, .. 10) and leaves the odd ones pending.
        let (srd, mut swr) = server.into_split();
        let mut lines = BufReader::new(srd).lines();
        for _ in 0..10 {
            let line = lines.next_line().await.unwrap().unwrap();
            let id = serde_json::from_str::<serde_json::Value>(&line).unwrap()["id"].as_u64().unwrap();
            if id.is_multiple_of(2) {
                let reply = format!("{{\"jsonrpc\":\"2.0\",\"id\":{id},\"result\":{{}}}}\n");
                swr.write_all(reply.as_bytes()).await.unwrap();
            }
        }
        let waited = Instant::now();
        while hooks.inflight.load(Ordering::Acquire) > 5 {
            assert!(waited.elapsed() < Duration::from_secs(5), "the replies were not read");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        assert_eq!(hooks.deadlines.len(), 10, "answered requests stay until compaction");
        hooks.deadlines.compact(0);
        assert_eq!(hooks.deadlines.len(), 10, "no bucket was started at tick 0");
        hooks.deadlines.compact(u64::MAX);
        assert_eq!(hooks.deadlines.len(), 5, "only the pending requests are kept");

        tokio::time::sleep(Duration::from_millis(400)).await;
        hooks.deadlines.sweep();
        assert_eq!(hooks.deadlines.len(), 0);
        assert_eq!(hooks.inflight.load(Ordering::Acquire), 0);
        let mut acc = Accumulator::new(vec!["ping".into()], 0);
        let snap = rec.fold(&mut acc, &mut rec.spares(), 0, 1.0);
        let counts = &snap.kinds[0].0;
        assert_eq!((counts.ok, counts.timeouts), (5, 5), "{counts:?}");
    }
}
