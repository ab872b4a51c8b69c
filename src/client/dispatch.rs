//! The dispatcher sits between a transport and the session: transports hand it every
//! inbound frame; it wakes the request waiting for each reply, answers server-initiated
//! requests as the session's [`ServerRequests`] say (`ping` always; -32601 for what is not
//! configured) and counts them by method (into a load phase's tally too, when the requests
//! name one), keeps the last notifications (and counts them all) for scripts to read or
//! wait for, and keeps a record of protocol violations (unmatched ids, unparseable frames)
//! so a timeout can say why. An answer that is not ready at once (a script callback) is
//! sent later through the session's outbox ([`Dispatcher::set_outbox`]), never held back
//! behind the client's own requests. A stateless session's server asks inside a result
//! instead (`input_required`): [`Dispatcher::answer_input`] answers those the same way.
//! While a raw message (`Session::send_raw`) is outstanding, the raw waiter takes the
//! reply with its id, and any reply without an id (a server's -32700 or -32600 has `id:
//! null`) or unparseable frame, before the requests do.

use super::error::ClientError;
use super::server_requests::{self, Handling, ServerRequests, Tally};
use crate::protocol::jsonrpc::{self, ErrorObject, Id, Message, Payload, Response, INTERNAL_ERROR};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch};

/// Notifications a session keeps (the most recent); all are counted.
pub const KEPT_NOTIFICATIONS: usize = 256;

/// How long a server request waits for a callback's answer when no deadline was given.
const DEFAULT_ASK_TIMEOUT: Duration = Duration::from_secs(30);

/// One notification the server sent.
#[derive(Debug, Clone, PartialEq)]
pub struct Notification {
    /// 1 for the session's first notification, counting every one (kept or not).
    pub seq: u64,
    pub method: String,
    pub params: Value,
}

pub use super::server_requests::RequestCounts;

/// A reply as the waiting request sees it.
pub type Reply = Result<Result<Value, ErrorObject>, ClientError>;

/// The answer a callback gives to server request `method` within `limit` (zero: the
/// default), completed ([`server_requests::finish`]); an error when it gave none in time.
async fn answered_later(
    method: &str,
    params: &Value,
    rx: oneshot::Receiver<Result<Value, ErrorObject>>,
    limit: Duration,
) -> Result<Value, ErrorObject> {
    let limit = if limit.is_zero() { DEFAULT_ASK_TIMEOUT } else { limit };
    match tokio::time::timeout(limit, rx).await {
        Ok(Ok(Ok(result))) => Ok(server_requests::finish(method, params, result)),
        Ok(Ok(Err(e))) => Err(e),
        Ok(Err(_)) => Err(ErrorObject::new(INTERNAL_ERROR, format!("'{method}' was not answered"))),
        Err(_) => Err(ErrorObject::new(
            INTERNAL_ERROR,
            format!(
                "'{method}' was not answered within {} (a script callback runs only while the script waits on \
                 its session)",
                crate::util::human::duration(limit)
            ),
        )),
    }
}

struct Inner {
    pending: HashMap<i64, oneshot::Sender<Reply>, std::hash::BuildHasherDefault<IdHasher>>,
    /// The raw message waiting for its reply, if one is outstanding.
    raw: Option<RawWaiter>,
    /// Set once the connection is gone; later requests fail at once.
    closed: Option<String>,
    last_violation: Option<String>,
}

/// A raw message's claim on replies: the one with its id (when the text had one), or else
/// the first without an id.
struct RawWaiter {
    id: Option<Id>,
    tx: oneshot::Sender<Reply>,
}

/// Hashes request ids (small sequential integers) with one multiplication.
#[derive(Default)]
struct IdHasher(u64);

impl std::hash::Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ b as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }
    fn write_i64(&mut self, n: i64) {
        self.0 = (n as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

/// Routes inbound messages of one session.
pub struct Dispatcher {
    target: String,
    inner: Mutex<Inner>,
    /// Replies whose id matched no waiting request (late replies to timed-out requests, or
    /// a server answering with the wrong id). Relaxed: a statistic, read after the fact.
    pub unmatched: AtomicU64,
    /// Frames that could not be parsed as JSON-RPC.
    pub malformed: AtomicU64,
    /// Notifications received from the server.
    pub notifications: AtomicU64,
    /// What the session answers besides `ping`.
    requests: ServerRequests,
    /// This session's count; it feeds the load phase's when the requests say so.
    counts: Arc<Tally>,
    /// The last [`KEPT_NOTIFICATIONS`] notifications.
    kept: Mutex<VecDeque<Notification>>,
    /// The sequence number of the last notification, for waiters.
    seq: watch::Sender<u64>,
    /// Where answers made later go (the session sends them on its transport).
    outbox: Mutex<Option<mpsc::UnboundedSender<Message>>>,
}

impl Dispatcher {
    pub fn new(target: impl Into<String>) -> Self {
        Self::with_requests(target, ServerRequests::default())
    }

    /// A dispatcher that answers server requests as `requests` say.
    pub fn with_requests(target: impl Into<String>, requests: ServerRequests) -> Self {
        Dispatcher {
            target: target.into(),
            inner: Mutex::new(Inner { pending: HashMap::default(), raw: None, closed: None, last_violation: None }),
            unmatched: AtomicU64::new(0),
            malformed: AtomicU64::new(0),
            notifications: AtomicU64::new(0),
            counts: Arc::new(Tally::feeding(requests.tally.clone())),
            requests,
            kept: Mutex::new(VecDeque::new()),
            seq: watch::channel(0).0,
            outbox: Mutex::new(None),
        }
    }

    /// Where answers that are not ready at once are sent (the session forwards them to
    /// its transport); without one they cannot be sent and the request is refused.
    pub fn set_outbox(&self, tx: mpsc::UnboundedSender<Message>) {
        *self.outbox.lock().unwrap_or_else(|e| e.into_inner()) = Some(tx);
    }

    /// Server requests received so far, by method.
    pub fn server_requests(&self) -> BTreeMap<String, RequestCounts> {
        self.counts.snapshot()
    }

    /// The notifications kept (the last [`KEPT_NOTIFICATIONS`]), oldest first.
    pub fn notifications(&self) -> Vec<Notification> {
        self.kept.lock().unwrap_or_else(|e| e.into_inner()).iter().cloned().collect()
    }

    /// Waits until `deadline` for a notification after number `after` that `matches`;
    /// the first such one still kept.
    pub async fn wait_notification(
        &self,
        after: u64,
        deadline: tokio::time::Instant,
        matches: impl Fn(&Notification) -> bool,
    ) -> Option<Notification> {
        let mut rx = self.seq.subscribe();
        let mut seen = after;
        loop {
            let now = *rx.borrow_and_update();
            if now > seen {
                let kept = self.kept.lock().unwrap_or_else(|e| e.into_inner());
                if let Some(n) = kept.iter().find(|n| n.seq > after && matches(n)) {
                    return Some(n.clone());
                }
                seen = now;
            }
            match tokio::time::timeout_at(deadline, rx.changed()).await {
                Ok(Ok(())) => {}
                _ => return None,
            }
        }
    }

    fn keep(&self, method: String, params: Option<Value>) {
        // Relaxed: a counter; the kept list below is ordered by its lock.
        let seq = self.notifications.fetch_add(1, Ordering::Relaxed) + 1;
        {
            let mut kept = self.kept.lock().unwrap_or_else(|e| e.into_inner());
            if kept.len() == KEPT_NOTIFICATIONS {
                kept.pop_front();
            }
            kept.push_back(Notification { seq, method, params: params.unwrap_or(Value::Null) });
        }
        self.seq.send_replace(seq);
    }

    /// Answers a server request: the reply now, or `None` when it is sent later.
    fn answer(&self, req: jsonrpc::Request) -> Option<Message> {
        let method = req.method.clone();
        self.counts.received(&method);
        match self.requests.handle(&method, req.params.as_ref()) {
            Handling::Now(outcome) => {
                self.counts.outcome(&method, outcome.is_ok());
                Some(Message::Response(Response { id: Some(req.id), outcome }))
            }
            Handling::Later(rx, limit) => {
                let outbox = self.outbox.lock().unwrap_or_else(|e| e.into_inner()).clone();
                let (Some(outbox), Ok(rt)) = (outbox, tokio::runtime::Handle::try_current()) else {
                    self.counts.outcome(&method, false);
                    let e = ErrorObject::new(INTERNAL_ERROR, format!("no way to answer '{method}' later"));
                    return Some(Message::Response(Response { id: Some(req.id), outcome: Err(e) }));
                };
                let counts = self.counts.clone();
                let params = req.params.unwrap_or(Value::Null);
                rt.spawn(async move {
                    let outcome = answered_later(&method, &params, rx, limit).await;
                    counts.outcome(&method, outcome.is_ok());
                    let _ = outbox.send(Message::Response(Response { id: Some(req.id), outcome }));
                });
                None
            }
        }
    }

    /// Answers one of the `inputRequests` of a stateless session's input-required result
    /// (a server request carried in a result, not sent on its own) as the session answers
    /// server requests, counted with them; a callback's answer is awaited here.
    pub async fn answer_input(&self, method: &str, params: Option<Value>) -> Result<Value, ErrorObject> {
        self.counts.received(method);
        let outcome = match self.requests.handle(method, params.as_ref()) {
            Handling::Now(outcome) => outcome,
            Handling::Later(rx, limit) => answered_later(method, &params.unwrap_or(Value::Null), rx, limit).await,
        };
        self.counts.outcome(method, outcome.is_ok());
        outcome
    }

    pub fn target(&self) -> &str {
        &self.target
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A poisoned lock only means another thread panicked mid-update of plain data.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers a request before it is sent; fails when the connection is already closed.
    pub fn register(&self, id: i64) -> Result<oneshot::Receiver<Reply>, ClientError> {
        let (tx, rx) = oneshot::channel();
        let mut inner = self.lock();
        if let Some(reason) = &inner.closed {
            return Err(ClientError::Closed { target: self.target.clone(), detail: reason.clone() });
        }
        inner.pending.insert(id, tx);
        Ok(rx)
    }

    /// Registers the raw message about to be sent, whose reply has id `id` (the id read
    /// from its text, if any); replies without an id go to it too while it waits. Fails
    /// when the connection is already closed; a raw waiter still registered is replaced
    /// (the session sends one raw message at a time).
    pub fn register_raw(&self, id: Option<Id>) -> Result<oneshot::Receiver<Reply>, ClientError> {
        let (tx, rx) = oneshot::channel();
        let mut inner = self.lock();
        if let Some(reason) = &inner.closed {
            return Err(ClientError::Closed { target: self.target.clone(), detail: reason.clone() });
        }
        inner.raw = Some(RawWaiter { id, tx });
        Ok(rx)
    }

    /// Drops the raw waiter (its reply came, or it timed out or could not be sent).
    pub fn forget_raw(&self) {
        self.lock().raw = None;
    }

    /// The raw waiter, whatever it waits for.
    fn take_raw(&self) -> Option<oneshot::Sender<Reply>> {
        self.lock().raw.take().map(|w| w.tx)
    }

    /// Drops a request that timed out or could not be sent.
    pub fn forget(&self, id: i64) {
        self.lock().pending.remove(&id);
    }

    /// Number of requests waiting for replies.
    pub fn in_flight(&self) -> usize {
        self.lock().pending.len()
    }

    /// A short note on protocol violations seen so far, for timeout messages.
    pub fn violation_note(&self) -> String {
        let inner = self.lock();
        match &inner.last_violation {
            Some(v) => format!(" (the server sent replies that matched no request; last: {v})"),
            None => String::new(),
        }
    }

    /// Handles one inbound frame (a line, HTTP body, SSE event or WebSocket message) and
    /// returns the replies owed to server-initiated requests, which the transport sends.
    pub fn deliver_frame(&self, frame: &[u8]) -> Vec<Message> {
        match jsonrpc::parse(frame) {
            Ok(Payload::Single(Ok(m))) => self.deliver(m).into_iter().collect(),
            Ok(Payload::Batch(items)) => items
                .into_iter()
                .filter_map(|m| match m {
                    Ok(m) => self.deliver(m),
                    Err(invalid) => {
                        self.violation(format!("invalid message in batch: {}", invalid.reason), None);
                        None
                    }
                })
                .collect(),
            Ok(Payload::Single(Err(invalid))) => {
                self.violation(format!("invalid JSON-RPC message: {}", invalid.reason), invalid.id);
                vec![]
            }
            Err(e) => {
                let snippet: String = String::from_utf8_lossy(&frame[..frame.len().min(80)]).into_owned();
                self.violation(format!("reply is not JSON ({e}): {snippet}"), jsonrpc::scan_id(frame));
                vec![]
            }
        }
    }

    /// Handles one parsed message; returns the reply owed to a server request, if any.
    pub fn deliver(&self, msg: Message) -> Option<Message> {
        match msg {
            Message::Response(r) => {
                self.deliver_response(r);
                None
            }
            Message::Request(req) => self.answer(req),
            Message::Notification(n) => {
                self.keep(n.method, n.params);
                None
            }
        }
    }

    /// Wakes the waiter a reply answers: the raw message's (the reply with its id, or any
    /// reply without one), else the request with its id; or records that none waits.
    fn deliver_response(&self, Response { id, outcome }: Response) {
        let waiter = {
            let mut inner = self.lock();
            if inner.raw.as_ref().is_some_and(|w| id.is_none() || w.id == id) {
                inner.raw.take().map(|w| w.tx)
            } else if let Some(Id::Num(n)) = &id {
                inner.pending.remove(n)
            } else {
                None
            }
        };
        if let Some(tx) = waiter {
            // The receiver may have timed out in the meantime; that is fine.
            let _ = tx.send(Ok(outcome));
            return;
        }
        self.unmatched.fetch_add(1, Ordering::Relaxed);
        let what = match (&id, &outcome) {
            (Some(Id::Num(n)), _) => format!("reply with id {n}, which no request is waiting for"),
            (None, Err(e)) => format!("error reply without id: {e}"),
            (id, _) => format!("reply with id {}", id.as_ref().map(|i| i.to_string()).unwrap_or("null".into())),
        };
        // An id-less error (e.g. a server's parse error) answers the one request in flight
        // when there is exactly one; otherwise it cannot be attributed.
        if let (None, Err(e)) = (&id, &outcome) {
            if let Some(tx) = self.take_sole_pending() {
                let _ = tx.send(Ok(Err(e.clone())));
                return;
            }
        }
        self.note(what);
    }

    fn take_sole_pending(&self) -> Option<oneshot::Sender<Reply>> {
        let mut inner = self.lock();
        if inner.pending.len() == 1 {
            let key = *inner.pending.keys().next()?;
            return inner.pending.remove(&key);
        }
        None
    }

    fn note(&self, what: String) {
        self.lock().last_violation = Some(what);
    }

    /// A frame that is not valid JSON-RPC: charged to its request when its id can be read
    /// (or to the outstanding raw message, or when only one request is in flight), so the
    /// request fails with a protocol error instead of waiting for its deadline.
    fn violation(&self, detail: String, id: Option<Id>) {
        self.malformed.fetch_add(1, Ordering::Relaxed);
        let waiter = {
            let mut inner = self.lock();
            inner.last_violation = Some(detail.clone());
            let raw_id = inner.raw.as_ref().and_then(|w| w.id.clone());
            match id {
                Some(id) if raw_id.as_ref() == Some(&id) => inner.raw.take().map(|w| w.tx),
                Some(Id::Num(n)) => inner.pending.remove(&n),
                _ => None,
            }
        };
        let waiter = waiter.or_else(|| self.take_raw()).or_else(|| self.take_sole_pending());
        if let Some(tx) = waiter {
            let _ = tx.send(Err(ClientError::Protocol { target: self.target.clone(), detail }));
        }
    }

    /// Marks the connection closed and fails every waiting request with `Closed`.
    pub fn close(&self, reason: impl Into<String>) {
        let reason = reason.into();
        let pending: Vec<_> = {
            let mut inner = self.lock();
            if inner.closed.is_none() {
                inner.closed = Some(reason.clone());
            }
            let raw = inner.raw.take().map(|w| w.tx);
            inner.pending.drain().map(|(_, tx)| tx).chain(raw).collect()
        };
        for tx in pending {
            let _ = tx.send(Err(ClientError::Closed { target: self.target.clone(), detail: reason.clone() }));
        }
        self.outbox.lock().unwrap_or_else(|e| e.into_inner()).take();
    }

    /// Fails every waiting request with a protocol error (e.g. an oversized message) and
    /// marks the connection closed.
    pub fn fail_all(&self, detail: impl Into<String>) {
        let detail = detail.into();
        let pending: Vec<_> = {
            let mut inner = self.lock();
            inner.closed.get_or_insert_with(|| detail.clone());
            let raw = inner.raw.take().map(|w| w.tx);
            inner.pending.drain().map(|(_, tx)| tx).chain(raw).collect()
        };
        for tx in pending {
            let _ = tx.send(Err(ClientError::Protocol { target: self.target.clone(), detail: detail.clone() }));
        }
    }

    pub fn is_closed(&self) -> bool {
        self.lock().closed.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn matches_replies_and_counts_strays() {
        let d = Dispatcher::new("t");
        let rx = d.register(1).unwrap();
        assert!(d.deliver_frame(br#"{"jsonrpc":"2.0","id":2,"result":{}}"#).is_empty());
        assert_eq!(d.unmatched.load(Ordering::Relaxed), 1);
        d.deliver_frame(br#"{"jsonrpc":"2.0","id":1,"result":{"x":1}}"#);
        assert_eq!(rx.await.unwrap().unwrap().unwrap()["x"], 1);
        assert!(d.violation_note().contains("id 2"));
    }

    #[tokio::test]
    async fn answers_server_pings_and_refuses_other_requests() {
        let d = Dispatcher::new("t");
        let replies = d.deliver_frame(br#"[{"jsonrpc":"2.0","id":"p","method":"ping"},{"jsonrpc":"2.0","id":"s","method":"sampling/createMessage"}]"#);
        assert_eq!(replies.len(), 2);
        assert!(matches!(&replies[0], Message::Response(Response { outcome: Ok(_), .. })));
        assert!(matches!(&replies[1], Message::Response(Response { outcome: Err(e), .. })
            if e.code == jsonrpc::METHOD_NOT_FOUND));
    }

    #[tokio::test]
    async fn keeps_notifications_and_counts_server_requests() {
        use crate::client::server_requests::{Answer, ServerRequests};
        let requests =
            ServerRequests { sampling: Some(Answer::Canned(serde_json::json!({"x": 1}))), ..Default::default() };
        let d = Arc::new(Dispatcher::with_requests("t", requests));
        for i in 0..KEPT_NOTIFICATIONS + 2 {
            let frame = format!(r#"{{"jsonrpc":"2.0","method":"notifications/progress","params":{{"progress":{i}}}}}"#);
            d.deliver_frame(frame.as_bytes());
        }
        let kept = d.notifications();
        assert_eq!(kept.len(), KEPT_NOTIFICATIONS);
        assert_eq!(kept[0].params["progress"], 2);
        assert_eq!(d.notifications.load(Ordering::Relaxed), KEPT_NOTIFICATIONS as u64 + 2);
        let waiter = {
            let d = d.clone();
            let after = d.notifications.load(Ordering::Relaxed);
            tokio::spawn(async move {
                let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
                d.wait_notification(after, deadline, |n| n.method == "notifications/message").await
            })
        };
        d.deliver_frame(br#"{"jsonrpc":"2.0","method":"notifications/progress"}"#);
        d.deliver_frame(br#"{"jsonrpc":"2.0","method":"notifications/message","params":{"data":"hi"}}"#);
        assert_eq!(waiter.await.unwrap().unwrap().params["data"], "hi");
        let replies = d.deliver_frame(br#"{"jsonrpc":"2.0","id":1,"method":"sampling/createMessage"}"#);
        assert!(matches!(&replies[0], Message::Response(Response { outcome: Ok(r), .. }) if r["x"] == 1));
        d.deliver_frame(br#"{"jsonrpc":"2.0","id":2,"method":"roots/list"}"#);
        let counts = d.server_requests();
        assert_eq!(counts["sampling/createMessage"], RequestCounts { received: 1, answered: 1, refused: 0 });
        assert_eq!(counts["roots/list"], RequestCounts { received: 1, answered: 0, refused: 1 });
    }

    #[tokio::test]
    async fn a_raw_waiter_takes_its_id_and_id_less_errors_first() {
        let d = Dispatcher::new("t");
        let req = d.register(1).unwrap();
        let raw = d.register_raw(Some(Id::Num(9))).unwrap();
        d.deliver_frame(br#"{"jsonrpc":"2.0","id":9,"result":{"r":1}}"#);
        assert_eq!(raw.await.unwrap().unwrap().unwrap()["r"], 1);
        // Without an id: the raw waiter's, although a request is the sole one pending.
        let raw = d.register_raw(None).unwrap();
        d.deliver_frame(br#"{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"Parse error"}}"#);
        assert_eq!(raw.await.unwrap().unwrap().unwrap_err().code, -32700);
        // The raw waiter is gone: the request gets the next id-less error, as before.
        d.deliver_frame(br#"{"jsonrpc":"2.0","id":null,"error":{"code":-32600,"message":"Invalid"}}"#);
        assert_eq!(req.await.unwrap().unwrap().unwrap_err().code, -32600);
        // A raw waiter fails with the connection.
        let raw = d.register_raw(Some(Id::Num(3))).unwrap();
        d.deliver_frame(br#"{"jsonrpc":"2.0","id":3,"resu"#);
        assert!(matches!(raw.await.unwrap(), Err(ClientError::Protocol { .. })));
        let raw = d.register_raw(None).unwrap();
        d.close("eof");
        assert!(matches!(raw.await.unwrap(), Err(ClientError::Closed { .. })));
    }

    #[tokio::test]
    async fn charges_a_corrupt_reply_to_its_request() {
        let d = Dispatcher::new("t");
        let a = d.register(5).unwrap();
        let b = d.register(6).unwrap();
        d.deliver_frame(br#"{"jsonrpc":"2.0","id":6,"resu"#);
        assert!(matches!(b.await.unwrap(), Err(ClientError::Protocol { .. })));
        d.close("eof");
        assert!(matches!(a.await.unwrap(), Err(ClientError::Closed { .. })));
        assert!(d.register(7).is_err());
    }
}
