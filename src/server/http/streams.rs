//! Resumable event streams of a Streamable HTTP session (SEP-1699). A call that talks to
//! the client while it runs answers its POST with an event stream whose events have ids
//! (`<stream>-<n>`: the stream's number in the session, then the event's, 0 for the
//! priming event); the session's standalone stream (GET) is number 0. Each stream keeps a
//! short log of its recent events, so that a client whose connection broke, or whose
//! stream the server ended early (with `retry:`, [`EventStream::end_reader`]), comes back
//! with `GET` and `Last-Event-ID`, gets the events after that id again, and then whatever
//! the call sends next, its reply included ([`StreamTable::resume`]). One client reads a
//! stream at a time: a resumption takes the stream over from a reader still attached.
//!
//! Memory: a session holds a [`StreamTable`] (a lock, a counter and an empty vector: about
//! 40 bytes, nothing on the heap) whatever it did before. A call's stream lives while the
//! call runs and until its last event was handed to the client's connection; then it is
//! gone. A stream nobody reads is kept [`RESUME_WINDOW`] for its client to come back, then
//! dropped and its call stopped. Each stream's log holds at most [`LOG_CAP`] events: the
//! call waits when its client falls that far behind, and events already handed to a
//! connection are dropped oldest first. The standalone stream carries nothing but its
//! priming event (this server sends nothing outside calls) and is forgotten with its
//! reader.

use super::sessions::HttpSession;
use crate::server::handler::ServerState;
use bytes::Bytes;
use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll, Waker};
use std::time::Duration;
use tokio::sync::{mpsc, Notify};

/// How long a stream that no client reads is kept for its client to resume it.
pub const RESUME_WINDOW: Duration = Duration::from_secs(30);

/// Events a stream's log holds at most (already sent, kept for replay, and not yet sent).
pub const LOG_CAP: usize = 32;

/// The reconnection delay (`retry:`, in milliseconds) sent when the server ends a stream
/// before its end.
pub const RETRY_MS: u64 = 500;

/// The number of the standalone (GET) stream.
const STANDALONE: u64 = 0;

/// The streams of one session.
#[derive(Default)]
pub struct StreamTable {
    inner: Mutex<Table>,
}

#[derive(Default)]
struct Table {
    /// The number of the last call stream opened.
    last: u64,
    open: Vec<Arc<EventStream>>,
}

/// Why a resumption cannot be served.
#[derive(Debug, PartialEq, Eq)]
pub enum ResumeError {
    /// The stream is not held here: it ended and was delivered, it expired, or another
    /// worker process serves it.
    NotHeld,
    /// The id names an event the stream never sent.
    Unknown,
    /// Events after that id are no longer kept.
    Gone,
}

/// One stream: its log, and who reads it.
pub struct EventStream {
    number: u64,
    session: Weak<HttpSession>,
    server: Arc<ServerState>,
    state: Mutex<State>,
    /// Wakes the call's pump when there is room in the log, or the stream closed.
    room: Notify,
    /// Wakes the pump when the stream closes for good.
    closing: Notify,
}

struct State {
    /// Kept events, sequence numbers `first..next`, each formatted with its id.
    log: VecDeque<Bytes>,
    first: u64,
    next: u64,
    /// Events before this one were handed to the current reader's connection.
    sent: u64,
    /// The generation of the reader allowed to read (0: none).
    reader: u64,
    /// Readers attached so far.
    generations: u64,
    waker: Option<Waker>,
    /// The call's reply is in the log: nothing more comes.
    finished: bool,
    /// Ended for good (the session ended, the stream expired): readers stop, the call too.
    closed: bool,
    /// The call asked to end the current reader now.
    end_reader: bool,
}

/// Reads one stream for one connection: the body of a POST's event stream, or of a GET.
pub struct Reader {
    stream: Arc<EventStream>,
    generation: u64,
    /// The next event to send.
    cursor: u64,
    /// The priming event, sent before anything else.
    first: Option<Bytes>,
    done: bool,
}

/// The priming event of a stream: its id and no data.
fn priming(number: u64, seq: u64) -> Bytes {
    Bytes::from(format!("id: {number}-{seq}\ndata:\n\n"))
}

fn message(number: u64, seq: u64, json: &[u8]) -> Bytes {
    let mut out = Vec::with_capacity(json.len() + 40);
    out.extend_from_slice(format!("event: message\nid: {number}-{seq}\ndata: ").as_bytes());
    out.extend_from_slice(json);
    out.extend_from_slice(b"\n\n");
    Bytes::from(out)
}

/// `Last-Event-ID` as this server writes it: `(stream, event)`.
pub fn parse_event_id(id: &str) -> Option<(u64, u64)> {
    let (stream, seq) = id.trim().split_once('-')?;
    Some((stream.parse().ok()?, seq.parse().ok()?))
}

impl StreamTable {
    /// A new call stream, and its first reader (the POST's), which sends the priming event
    /// first.
    pub fn open_call(&self, session: &Arc<HttpSession>, server: &Arc<ServerState>) -> (Arc<EventStream>, Reader) {
        let mut t = crate::util::lock(&self.inner);
        t.last += 1;
        let stream = EventStream::new(t.last, session, server);
        t.open.push(stream.clone());
        server.stats.streams_held.fetch_add(1, Ordering::Relaxed);
        let reader = stream.attach(0, true).unwrap_or_else(|_| unreachable!("a new stream takes a reader"));
        (stream, reader)
    }

    /// The standalone stream (GET without `Last-Event-ID`, or naming it), taken over from
    /// any reader it has.
    pub fn open_standalone(&self, session: &Arc<HttpSession>, server: &Arc<ServerState>) -> Reader {
        let mut t = crate::util::lock(&self.inner);
        let stream = match t.open.iter().find(|s| s.number == STANDALONE) {
            Some(s) => s.clone(),
            None => {
                let s = EventStream::new(STANDALONE, session, server);
                t.open.push(s.clone());
                s
            }
        };
        stream.attach(0, true).unwrap_or_else(|_| unreachable!("the standalone stream takes a reader"))
    }

    /// A reader of stream `number` from the event after `after` on (GET with
    /// `Last-Event-ID`), taken over from any reader it has.
    pub fn resume(&self, number: u64, after: u64) -> Result<Reader, ResumeError> {
        let t = crate::util::lock(&self.inner);
        let stream = t.open.iter().find(|s| s.number == number).ok_or(ResumeError::NotHeld)?;
        stream.attach(after, false)
    }

    /// The session ended: every stream ends, and the calls behind them stop.
    pub fn close_all(&self) {
        let open = std::mem::take(&mut crate::util::lock(&self.inner).open);
        for s in open {
            s.close();
            s.unlisted();
        }
    }

    /// The server shuts down: the standalone stream's reader ends (with `retry:`).
    pub fn end_standalone(&self) {
        let t = crate::util::lock(&self.inner);
        if let Some(s) = t.open.iter().find(|s| s.number == STANDALONE) {
            s.end_reader();
        }
    }

    /// Streams held (tests).
    #[cfg(test)]
    pub fn len(&self) -> usize {
        crate::util::lock(&self.inner).open.len()
    }

    /// Drops `stream` from the table (if it is still there), when `keep` says nothing
    /// attached to it meanwhile; true when it went.
    fn remove_if(&self, stream: &Arc<EventStream>, keep: impl FnOnce(&mut State) -> bool) -> bool {
        let mut t = crate::util::lock(&self.inner);
        let Some(i) = t.open.iter().position(|s| Arc::ptr_eq(s, stream)) else { return false };
        {
            let mut st = crate::util::lock(&stream.state);
            if keep(&mut st) {
                return false;
            }
            st.closed = true;
        }
        t.open.swap_remove(i);
        if t.open.is_empty() {
            // An idle session keeps no heap for streams.
            t.open = Vec::new();
        }
        drop(t);
        stream.wake_all();
        stream.unlisted();
        true
    }
}

impl EventStream {
    fn new(number: u64, session: &Arc<HttpSession>, server: &Arc<ServerState>) -> Arc<EventStream> {
        Arc::new(EventStream {
            number,
            session: Arc::downgrade(session),
            server: server.clone(),
            state: Mutex::new(State {
                log: VecDeque::new(),
                first: 1,
                next: 1,
                sent: 1,
                reader: 0,
                generations: 0,
                waker: None,
                finished: false,
                closed: false,
                end_reader: false,
            }),
            room: Notify::new(),
            closing: Notify::new(),
        })
    }

    /// A new reader from the event after `after` (0: the priming event), which sends the
    /// priming event first when `priming`; any other reader ends.
    fn attach(self: &Arc<Self>, after: u64, priming: bool) -> Result<Reader, ResumeError> {
        let mut st = crate::util::lock(&self.state);
        if st.closed {
            return Err(ResumeError::NotHeld);
        }
        if after >= st.next {
            return Err(ResumeError::Unknown);
        }
        if after + 1 < st.first {
            return Err(ResumeError::Gone);
        }
        st.generations += 1;
        st.reader = st.generations;
        st.sent = after + 1;
        st.end_reader = false;
        if let Some(w) = st.waker.take() {
            // The reader taken over sees it is no longer the one and ends.
            w.wake();
        }
        let first = priming.then(|| self::priming(self.number, 0));
        Ok(Reader { stream: self.clone(), generation: st.generations, cursor: after + 1, first, done: false })
    }

    /// Appends a message of the call (waiting while the log is full of events its client
    /// has not been sent); false once the stream is closed.
    pub async fn push(&self, json: &[u8]) -> bool {
        loop {
            {
                let mut st = crate::util::lock(&self.state);
                if st.closed {
                    return false;
                }
                if st.log.len() >= LOG_CAP && st.first < st.sent {
                    st.log.pop_front();
                    st.first += 1;
                }
                if st.log.len() < LOG_CAP {
                    let seq = st.next;
                    st.next += 1;
                    st.log.push_back(message(self.number, seq, json));
                    if let Some(w) = st.waker.take() {
                        w.wake();
                    }
                    return true;
                }
            }
            self.room.notified().await;
        }
    }

    /// The call ended (its reply, if any, was pushed last).
    pub fn finish(&self) {
        let mut st = crate::util::lock(&self.state);
        st.finished = true;
        if let Some(w) = st.waker.take() {
            w.wake();
        }
    }

    /// Ends the current reader's stream now, with `retry:` (the client resumes it). False
    /// when no reader is attached.
    pub fn end_reader(&self) -> bool {
        let mut st = crate::util::lock(&self.state);
        if st.closed || st.reader == 0 {
            return false;
        }
        st.end_reader = true;
        if let Some(w) = st.waker.take() {
            w.wake();
        }
        true
    }

    /// Resolves once the stream is closed for good.
    pub async fn closed(&self) {
        loop {
            let notified = self.closing.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if crate::util::lock(&self.state).closed {
                return;
            }
            notified.await;
        }
    }

    fn close(&self) {
        crate::util::lock(&self.state).closed = true;
        self.wake_all();
    }

    fn wake_all(&self) {
        if let Some(w) = crate::util::lock(&self.state).waker.take() {
            w.wake();
        }
        self.room.notify_one();
        self.closing.notify_waiters();
    }

    /// Bookkeeping once the stream left its table.
    fn unlisted(&self) {
        if self.number != STANDALONE {
            self.server.stats.streams_held.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// Every event went to the client: the stream is done with.
    fn delivered(self: &Arc<Self>) {
        if let Some(session) = self.session.upgrade() {
            session.streams.remove_if(self, |_| false);
        }
    }

    /// Its reader went away before the end. The standalone stream is forgotten at once
    /// (it holds nothing); a call's stream is kept [`RESUME_WINDOW`] for its client to
    /// resume it, then dropped, and its call stopped, if nobody did.
    fn detached(self: &Arc<Self>, generation: u64) {
        let idle = move |st: &mut State| st.reader == 0 && st.generations == generation;
        if self.number == STANDALONE {
            if let Some(session) = self.session.upgrade() {
                session.streams.remove_if(self, |st| !idle(st));
            }
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
        let stream = Arc::downgrade(self);
        runtime.spawn(async move {
            tokio::time::sleep(RESUME_WINDOW).await;
            if let Some(stream) = stream.upgrade() {
                stream.expire(generation);
            }
        });
    }

    /// Drops the stream if no reader attached since the one of `generation` left.
    fn expire(self: &Arc<Self>, generation: u64) -> bool {
        let Some(session) = self.session.upgrade() else { return false };
        session.streams.remove_if(self, |st| !(st.reader == 0 && st.generations == generation))
    }
}

impl Reader {
    /// The next chunk of the body, `None` at its end.
    pub fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<Bytes>> {
        if let Some(first) = self.first.take() {
            return Poll::Ready(Some(first));
        }
        if self.done {
            return Poll::Ready(None);
        }
        let stream = self.stream.clone();
        let mut st = crate::util::lock(&stream.state);
        if st.closed || st.reader != self.generation {
            // Closed, or taken over by a resumption.
            self.done = true;
            return Poll::Ready(None);
        }
        if self.cursor < st.next {
            let event = st.log[(self.cursor - st.first) as usize].clone();
            self.cursor += 1;
            st.sent = self.cursor;
            drop(st);
            stream.room.notify_one();
            return Poll::Ready(Some(event));
        }
        if st.finished {
            st.reader = 0;
            self.done = true;
            drop(st);
            stream.delivered();
            return Poll::Ready(None);
        }
        if st.end_reader {
            st.end_reader = false;
            st.reader = 0;
            self.done = true;
            let generation = st.generations;
            drop(st);
            stream.detached(generation);
            return Poll::Ready(Some(Bytes::from(format!("retry: {RETRY_MS}\n\n"))));
        }
        st.waker = Some(cx.waker().clone());
        Poll::Pending
    }
}

impl Drop for Reader {
    /// The connection went away mid-stream (hyper drops the body).
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let generation = {
            let mut st = crate::util::lock(&self.stream.state);
            if st.reader != self.generation || st.closed {
                return;
            }
            st.reader = 0;
            st.waker = None;
            st.generations
        };
        self.stream.detached(generation);
    }
}

/// Feeds a call's messages (its reply last) into its stream; stops the call (drops its
/// receiver) when the stream closes for good.
pub async fn pump(stream: Arc<EventStream>, mut rx: mpsc::Receiver<Vec<u8>>) {
    loop {
        let next = tokio::select! {
            m = rx.recv() => m,
            _ = stream.closed() => return,
        };
        match next {
            Some(json) => {
                if !stream.push(&json).await {
                    return;
                }
            }
            None => {
                stream.finish();
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::handler::SessionState;
    use crate::server::ServerConfig;
    use std::future::poll_fn;

    fn session() -> (Arc<HttpSession>, Arc<ServerState>) {
        let server = Arc::new(ServerState::new(ServerConfig::default()));
        (HttpSession::new(Arc::new(SessionState::new(false))), server)
    }

    async fn next(r: &mut Reader) -> Option<String> {
        let chunk = tokio::time::timeout(Duration::from_secs(5), poll_fn(|cx| r.poll_next(cx))).await.unwrap();
        chunk.map(|b| String::from_utf8(b.to_vec()).unwrap())
    }

    fn pending(r: &mut Reader) -> bool {
        r.poll_next(&mut Context::from_waker(Waker::noop())).is_pending()
    }

    #[tokio::test]
    async fn a_stream_ended_early_is_resumed_and_then_forgotten() {
        let (s, server) = session();
        let (stream, mut post) = s.streams.open_call(&s, &server);
        assert_eq!(next(&mut post).await.unwrap(), "id: 1-0\ndata:\n\n");
        assert!(stream.push(b"{\"n\":1}").await);
        assert_eq!(next(&mut post).await.unwrap(), "event: message\nid: 1-1\ndata: {\"n\":1}\n\n");
        assert!(stream.end_reader());
        assert_eq!(next(&mut post).await.unwrap(), format!("retry: {RETRY_MS}\n\n"));
        assert_eq!(next(&mut post).await, None);
        // Sent while nobody reads: kept for the resumption.
        assert!(stream.push(b"{\"n\":2}").await);
        stream.finish();
        assert_eq!(s.streams.resume(1, 7).err(), Some(ResumeError::Unknown));
        assert_eq!(s.streams.resume(2, 0).err(), Some(ResumeError::NotHeld));
        let mut get = s.streams.resume(1, 1).unwrap();
        assert_eq!(next(&mut get).await.unwrap(), "event: message\nid: 1-2\ndata: {\"n\":2}\n\n");
        assert_eq!(server.stats.streams_held.load(Ordering::Relaxed), 1);
        assert_eq!(next(&mut get).await, None);
        assert_eq!((s.streams.len(), server.stats.streams_held.load(Ordering::Relaxed)), (0, 0));
    }

    #[tokio::test]
    async fn a_resumption_replays_what_a_broken_connection_lost_and_takes_over() {
        let (s, server) = session();
        let (stream, mut post) = s.streams.open_call(&s, &server);
        for n in 1..=3 {
            assert!(stream.push(format!("{n}").as_bytes()).await);
        }
        next(&mut post).await;
        next(&mut post).await;
        // The client got event 1 only; a second reader takes over from the first.
        let mut again = s.streams.resume(1, 1).unwrap();
        assert_eq!(next(&mut post).await, None, "taken over");
        assert!(next(&mut again).await.unwrap().contains("id: 1-2\ndata: 2"));
        drop(again);
        let mut third = s.streams.resume(1, 2).unwrap();
        assert!(next(&mut third).await.unwrap().contains("id: 1-3\ndata: 3"));
        assert!(pending(&mut third));
        // The session ends: the stream and its reader end.
        s.streams.close_all();
        assert_eq!(next(&mut third).await, None);
        assert!(!stream.push(b"4").await);
        assert_eq!(server.stats.streams_held.load(Ordering::Relaxed), 0);
    }

    #[tokio::test]
    async fn the_log_is_bounded_and_a_call_waits_for_its_client() {
        let (s, server) = session();
        let (stream, mut post) = s.streams.open_call(&s, &server);
        for n in 0..LOG_CAP {
            assert!(stream.push(format!("{n}").as_bytes()).await);
        }
        let blocked = { tokio::time::timeout(Duration::from_millis(50), stream.push(b"x")).await.is_err() };
        assert!(blocked, "the log is full of unsent events: the call waits");
        next(&mut post).await; // priming
        next(&mut post).await; // event 1 sent: it may go
        assert!(stream.push(b"x").await);
        assert_eq!(crate::util::lock(&stream.state).log.len(), LOG_CAP);
        assert_eq!(s.streams.resume(1, 0).err(), Some(ResumeError::Gone));
        drop(post);
        // Nobody reads it: it expires (here at once), and a waiting call is released.
        let generation = crate::util::lock(&stream.state).generations;
        assert!(stream.expire(generation));
        assert!(!stream.push(b"y").await);
        assert_eq!(s.streams.len(), 0);
    }

    #[test]
    fn an_idle_session_pays_a_small_fixed_table() {
        assert!(std::mem::size_of::<StreamTable>() <= 48, "{}", std::mem::size_of::<StreamTable>());
        println!(
            "per session: {} bytes; per held stream: {} bytes and its events",
            std::mem::size_of::<StreamTable>(),
            std::mem::size_of::<EventStream>()
        );
    }

    #[tokio::test]
    async fn the_standalone_stream_is_taken_over_and_forgotten_with_its_reader() {
        let (s, server) = session();
        let mut first = s.streams.open_standalone(&s, &server);
        assert_eq!(next(&mut first).await.unwrap(), "id: 0-0\ndata:\n\n");
        assert!(pending(&mut first));
        let mut second = s.streams.open_standalone(&s, &server);
        assert_eq!(next(&mut first).await, None);
        drop(first);
        assert_eq!(s.streams.len(), 1, "the old reader leaving does not end the new one");
        next(&mut second).await;
        s.streams.end_standalone();
        assert_eq!(next(&mut second).await.unwrap(), format!("retry: {RETRY_MS}\n\n"));
        assert_eq!(next(&mut second).await, None);
        assert_eq!(s.streams.len(), 0);
        assert_eq!(server.stats.streams_held.load(Ordering::Relaxed), 0);
        assert_eq!(parse_event_id("3-14"), Some((3, 14)));
        assert_eq!(parse_event_id("x"), None);
    }
}
