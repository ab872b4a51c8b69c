//! The dispatcher sits between a transport and the session: transports hand it every
//! inbound frame; it wakes the request waiting for each reply, answers server-initiated
//! requests (`ping`, and -32601 for the rest), counts notifications, and keeps a record of
//! protocol violations (unmatched ids, unparseable frames) so a timeout can say why.
//! While a raw message (`Session::send_raw`) is outstanding, the raw waiter takes the
//! reply with its id, and any reply without an id (a server's -32700 or -32600 has `id:
//! null`) or unparseable frame, before the requests do.

use super::error::ClientError;
use crate::protocol::jsonrpc::{self, ErrorObject, Id, Message, Payload, Response, METHOD_NOT_FOUND};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use tokio::sync::oneshot;

/// A reply as the waiting request sees it.
pub type Reply = Result<Result<Value, ErrorObject>, ClientError>;

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
}

impl Dispatcher {
    pub fn new(target: impl Into<String>) -> Self {
        Dispatcher {
            target: target.into(),
            inner: Mutex::new(Inner { pending: HashMap::default(), raw: None, closed: None, last_violation: None }),
            unmatched: AtomicU64::new(0),
            malformed: AtomicU64::new(0),
            notifications: AtomicU64::new(0),
        }
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
            Message::Request(req) => {
                let outcome = if req.method == crate::protocol::mcp::methods::PING {
                    Ok(serde_json::json!({}))
                } else {
                    Err(ErrorObject::new(
                        METHOD_NOT_FOUND,
                        format!("mcpscript client does not handle '{}'", req.method),
                    ))
                };
                Some(Message::Response(Response { id: Some(req.id), outcome }))
            }
            Message::Notification(_) => {
                self.notifications.fetch_add(1, Ordering::Relaxed);
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
        assert!(
            matches!(&replies[1], Message::Response(Response { outcome: Err(e), .. }) if e.code == METHOD_NOT_FOUND)
        );
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
