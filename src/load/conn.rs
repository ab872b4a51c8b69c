//! Lean load-only connections for newline-delimited targets (`tcp://`): what 100,000 idle
//! sessions cost is what this file keeps per connection. No server info, no per-connection
//! read buffer (reads go through a per-thread scratch buffer; only a partial line is kept),
//! requests pre-serialised per template ([`Encoded`]: only the id is written per request,
//! with one `writev`), replies parsed just far enough to learn the id and the error code.
//! In the stateless revision (2026-07-28) the templates carry the envelope
//! ([`Encoded::stateless`]) and a connection sends them with no handshake: the first
//! enveloped request sets the connection's era on the server.
//!
//! [`LineConn`] is owned by one task that writes a request and reads its reply itself (the
//! closed model: no reader task, no channel, one wake-up per reply); held sessions are
//! swept instead of read by a task each; the open model turns it into a multiplexed
//! [`MuxConn`](super::mux::MuxConn). All answer server requests ([`classify`]: `ping`, and
//! the phase's canned sampling, elicitation and roots answers, counted by method) and close
//! with SO_LINGER 0 when asked (an RST: neither side keeps the socket in TIME_WAIT).

use super::recorder::Outcome;
use crate::client::server_requests::ServerRequests;
use crate::client::ErrorKind;
use crate::protocol::jsonrpc::{self, Peek};
use crate::protocol::mcp::methods;
use crate::protocol::stateless;
use std::cell::RefCell;
use std::future::poll_fn;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;

/// Per-thread read buffer shared by every connection polled on that thread.
const SCRATCH: usize = 16 * 1024;

thread_local! {
    static SCRATCH_BUF: RefCell<Box<[u8]>> = RefCell::new(vec![0u8; SCRATCH].into_boxed_slice());
}

/// A request serialised once: `PREFIX id SUFFIX`.
#[derive(Debug, Clone)]
pub struct Encoded {
    pub(crate) suffix: Box<[u8]>,
    /// The HTTP header lines a request of the stateless revision carries (its revision,
    /// `Mcp-Method`, `Mcp-Name`), each ending in CRLF; empty in the handshake era.
    pub(crate) head: Box<[u8]>,
}

pub(crate) const PREFIX: &[u8] = b"{\"jsonrpc\":\"2.0\",\"id\":";

impl Encoded {
    pub fn new(method: &str, params: Option<&serde_json::Value>) -> Encoded {
        let mut s = Vec::with_capacity(64);
        s.extend_from_slice(b",\"method\":");
        s.extend_from_slice(&serde_json::to_vec(method).unwrap_or_default());
        if let Some(p) = params {
            s.extend_from_slice(b",\"params\":");
            s.extend_from_slice(&serde_json::to_vec(p).unwrap_or_default());
        }
        s.extend_from_slice(b"}\n");
        Encoded { suffix: s.into_boxed_slice(), head: Box::default() }
    }

    /// A request of stateless revision `version`: `envelope` stamped into its
    /// `params._meta` and its HTTP header lines written here, once per template, so a
    /// request costs what it costs in the handshake era (only the id is written).
    pub fn stateless(
        method: &str,
        params: Option<&serde_json::Value>,
        version: &str,
        envelope: &serde_json::Map<String, serde_json::Value>,
    ) -> Encoded {
        let params = stateless::stamp(params.cloned(), envelope);
        let head: String = stateless::request_headers(version, method, Some(&params))
            .into_iter()
            .map(|(k, v)| format!("{k}: {v}\r\n"))
            .collect();
        Encoded { head: head.into_bytes().into_boxed_slice(), ..Encoded::new(method, Some(&params)) }
    }

    /// The whole line for `id` (for the rare slow path and tests).
    pub fn line(&self, id: u64) -> Vec<u8> {
        let mut v = PREFIX.to_vec();
        v.extend_from_slice(itoa(id, &mut [0; 20]));
        v.extend_from_slice(&self.suffix);
        v
    }
}

pub(crate) fn itoa(mut n: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return &buf[i..];
        }
    }
}

/// What a reply said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reply {
    Ok,
    Rpc(i64),
    Protocol,
    Closed,
}

impl Reply {
    pub fn outcome(self) -> Outcome {
        match self {
            Reply::Ok => Outcome::Ok,
            Reply::Rpc(code) => Outcome::Error(ErrorKind::Rpc(code)),
            Reply::Protocol => Outcome::Error(ErrorKind::Protocol),
            Reply::Closed => Outcome::Error(ErrorKind::Transport),
        }
    }
}

/// One inbound line, classified.
pub enum Line {
    /// A reply to our request `id`.
    Reply(u64, Reply),
    /// A server request; this is the answer to send.
    Answer(Vec<u8>),
    /// A notification, a reply with a foreign id, or an unattributable error.
    Other,
    /// Not JSON-RPC; `Some(id)` when the id could still be read.
    Garbage(Option<u64>),
}

/// One inbound line, classified by the protocol's lean reader ([`jsonrpc::peek`]), with
/// the answer a load connection gives a server request: as `requests` say (`ping` always;
/// the phase's canned answers; -32601 for the rest), counted in their tally.
pub fn classify(line: &[u8], requests: &ServerRequests) -> Line {
    match jsonrpc::peek(line) {
        Peek::Reply { id, error } => Line::Reply(id, error.map(Reply::Rpc).unwrap_or(Reply::Ok)),
        Peek::Request { id, method } => Line::Answer(answer(line, id, &method, requests)),
        Peek::Other => Line::Other,
        Peek::Garbage(id) => Line::Garbage(id),
    }
}

/// The line answering server request `id` (`line`, of `method`). Only a request other
/// than `ping` is parsed whole, for its params: servers ask rarely.
fn answer(line: &[u8], id: &str, method: &str, requests: &ServerRequests) -> Vec<u8> {
    #[derive(serde::Deserialize)]
    struct Params {
        #[serde(default)]
        params: Option<serde_json::Value>,
    }
    let params = match method {
        methods::PING => None,
        _ => serde_json::from_slice::<Params>(line).ok().and_then(|p| p.params),
    };
    let outcome = requests.answer_now(method, params.as_ref());
    let mut out = Vec::with_capacity(96);
    out.extend_from_slice(b"{\"jsonrpc\":\"2.0\",\"id\":");
    out.extend_from_slice(id.as_bytes());
    // A value (parsed from JSON or built) always serialises.
    match &outcome {
        Ok(result) => {
            out.extend_from_slice(b",\"result\":");
            serde_json::to_writer(&mut out, result).expect("serialising JSON");
        }
        Err(error) => {
            out.extend_from_slice(b",\"error\":");
            serde_json::to_writer(&mut out, error).expect("serialising JSON");
        }
    }
    out.extend_from_slice(b"}\n");
    out
}

/// Why a connection stopped delivering lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Broken {
    Eof,
    Io,
    TooLong,
}

/// Reads once into the thread's scratch buffer and hands every complete line to `f`
/// (a partial line is kept in `partial`). `Ready(Ok(()))` after one read.
pub(crate) fn poll_lines<R: AsyncRead + Unpin>(
    cx: &mut Context<'_>,
    rd: &mut R,
    partial: &mut Vec<u8>,
    max: usize,
    f: &mut dyn FnMut(&[u8]),
) -> Poll<Result<(), Broken>> {
    SCRATCH_BUF.with_borrow_mut(|buf| {
        let mut rb = ReadBuf::new(&mut buf[..]);
        match Pin::new(rd).poll_read(cx, &mut rb) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Err(_)) => Poll::Ready(Err(Broken::Io)),
            Poll::Ready(Ok(())) if rb.filled().is_empty() => Poll::Ready(Err(Broken::Eof)),
            Poll::Ready(Ok(())) => Poll::Ready(split_lines(partial, rb.filled(), max, f)),
        }
    })
}

/// Reads what `stream` holds now, without waiting, into the thread's scratch buffer and
/// hands every complete line to `f` (a partial line is kept in `partial`). `Ok(Some(n))`
/// after reading `n` bytes (`n` == [`SCRATCH`]: more may be waiting), `Ok(None)` when
/// nothing was waiting. A read that did not fill the buffer took everything there was, so
/// it clears the socket's readiness as tokio's own reads do: the next wait registers at
/// once instead of costing a read that finds nothing.
pub(crate) fn try_read_lines(
    stream: &TcpStream,
    partial: &mut Vec<u8>,
    max: usize,
    f: &mut dyn FnMut(&[u8]),
) -> Result<Option<usize>, Broken> {
    let mut got = None;
    let r = stream.try_io(tokio::io::Interest::READABLE, || {
        SCRATCH_BUF.with_borrow_mut(|buf| {
            let n = io::Read::read(&mut &*socket2::SockRef::from(stream), buf)?;
            got = Some(match n {
                0 => Err(Broken::Eof),
                n => split_lines(partial, &buf[..n], max, f).map(|_| n),
            });
            if n > 0 && n < buf.len() {
                // Not a failed read: what tells `try_io` to clear the readiness.
                Err(io::ErrorKind::WouldBlock.into())
            } else {
                Ok(())
            }
        })
    });
    match (got, r) {
        (Some(read), _) => read.map(Some),
        (None, Err(e)) if e.kind() != io::ErrorKind::WouldBlock => Err(Broken::Io),
        (None, _) => Ok(None),
    }
}

/// Splits `data` (continuing `partial`) into lines.
pub fn split_lines(partial: &mut Vec<u8>, mut data: &[u8], max: usize, f: &mut dyn FnMut(&[u8])) -> Result<(), Broken> {
    if !partial.is_empty() {
        match memchr::memchr(b'\n', data) {
            Some(i) => {
                partial.extend_from_slice(&data[..i]);
                let line = std::mem::take(partial);
                emit(&line, f);
                data = &data[i + 1..];
            }
            None => {
                partial.extend_from_slice(data);
                return if partial.len() > max { Err(Broken::TooLong) } else { Ok(()) };
            }
        }
    }
    let mut start = 0;
    for i in memchr::memchr_iter(b'\n', data) {
        emit(&data[start..i], f);
        start = i + 1;
    }
    if start < data.len() {
        if data.len() - start > max {
            return Err(Broken::TooLong);
        }
        partial.extend_from_slice(&data[start..]);
    }
    Ok(())
}

fn emit(line: &[u8], f: &mut dyn FnMut(&[u8])) {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if !line.iter().all(u8::is_ascii_whitespace) {
        f(line);
    }
}

/// Writes `PREFIX id SUFFIX` with vectored writes.
async fn write_request<W: AsyncWrite + Unpin>(w: &mut W, enc: &Encoded, id: u64) -> io::Result<()> {
    let mut digits = [0u8; 20];
    let idb = itoa(id, &mut digits);
    let total = PREFIX.len() + idb.len() + enc.suffix.len();
    let n = w.write_vectored(&[IoSlice::new(PREFIX), IoSlice::new(idb), IoSlice::new(&enc.suffix)]).await?;
    if n < total {
        // Rare: the socket buffer was nearly full. Finish the line the slow way.
        let line = enc.line(id);
        w.write_all(&line[n..]).await?;
    }
    Ok(())
}

pub(crate) fn cancel_line(id: u64, after: Duration) -> Vec<u8> {
    format!(
        "{{\"jsonrpc\":\"2.0\",\"method\":\"{}\",\"params\":{{\"requestId\":{id},\"reason\":\"timed out after {}\"}}}}\n",
        methods::CANCELLED,
        crate::util::human::duration(after)
    )
    .into_bytes()
}

/// Closes a socket with an RST when `abort` (SO_LINGER 0): no TIME_WAIT on either side.
fn set_abortive(fd: &impl std::os::fd::AsFd, abort: bool) {
    if abort {
        let _ = socket2::SockRef::from(fd).set_linger(Some(Duration::ZERO));
    }
}

/// A connection owned by one task: the closed model's session.
pub struct LineConn {
    stream: TcpStream,
    partial: Vec<u8>,
    next_id: u64,
    max: usize,
    /// The stream is unusable (I/O error, EOF, or a write cut off by a deadline).
    broken: bool,
    abortive_close: bool,
    /// What server requests get (shared by the phase's connections).
    requests: Arc<ServerRequests>,
}

impl LineConn {
    pub fn new(stream: TcpStream, max: usize, abortive_close: bool, requests: Arc<ServerRequests>) -> LineConn {
        LineConn { stream, partial: Vec::new(), next_id: 1, max, broken: false, abortive_close, requests }
    }

    pub fn is_broken(&self) -> bool {
        self.broken
    }

    /// Sends one request and waits for its reply, at most `timeout`. On a timeout the
    /// request is cancelled (`notifications/cancelled`) and its late reply ignored.
    pub async fn call(&mut self, enc: &Encoded, timeout: Duration) -> Outcome {
        if self.broken {
            return Outcome::Error(ErrorKind::Transport);
        }
        let id = self.next_id;
        self.next_id += 1;
        let mut writing = true;
        let r = tokio::time::timeout(timeout, async {
            write_request(&mut self.stream, enc, id).await.map_err(|_| Broken::Io)?;
            writing = false;
            self.read_reply(id).await
        })
        .await;
        match r {
            Ok(Ok(reply)) => reply.outcome(),
            Ok(Err(b)) => {
                self.broken = true;
                if b == Broken::TooLong {
                    Outcome::Error(ErrorKind::Protocol)
                } else {
                    Outcome::Error(ErrorKind::Transport)
                }
            }
            Err(_) => {
                if writing {
                    // Half a line may be on the wire; nothing sane can follow it.
                    self.broken = true;
                } else {
                    let c = cancel_line(id, timeout);
                    if tokio::time::timeout(Duration::from_millis(200), self.stream.write_all(&c)).await.is_err() {
                        self.broken = true;
                    }
                }
                Outcome::Timeout
            }
        }
    }

    /// Reads lines until the reply to `id`; answers server requests on the way.
    async fn read_reply(&mut self, id: u64) -> Result<Reply, Broken> {
        loop {
            let mut found = None;
            let mut answers: Vec<Vec<u8>> = Vec::new();
            let (stream, partial, max, requests) = (&mut self.stream, &mut self.partial, self.max, &*self.requests);
            poll_fn(|cx| {
                poll_lines(cx, stream, partial, max, &mut |line| match classify(line, requests) {
                    Line::Reply(n, r) if n == id => found = Some(r),
                    Line::Garbage(Some(n)) if n == id => found = Some(Reply::Protocol),
                    // One request is in flight, so unattributable garbage is its answer.
                    Line::Garbage(None) => found = found.or(Some(Reply::Protocol)),
                    Line::Answer(a) => answers.push(a),
                    _ => {}
                })
            })
            .await?;
            for a in answers {
                self.stream.write_all(&a).await.map_err(|_| Broken::Io)?;
            }
            if let Some(r) = found {
                if self.partial.capacity() > 4096 && self.partial.is_empty() {
                    self.partial = Vec::new();
                }
                return Ok(r);
            }
        }
    }

    /// Reads what an idle connection received, without waiting: server requests are
    /// answered, end of stream or an error marks the connection broken. Returns whether it
    /// is still open. Held sessions are swept like this once a second instead of having a
    /// reader task each (what keeps 100,000 held sessions at a few hundred bytes each).
    pub fn sweep(&mut self) -> bool {
        if self.broken {
            return false;
        }
        loop {
            let mut answers: Vec<Vec<u8>> = Vec::new();
            let requests = &self.requests;
            let mut f = |line: &[u8]| {
                if let Line::Answer(a) = classify(line, requests) {
                    answers.push(a);
                }
            };
            let r = try_read_lines(&self.stream, &mut self.partial, self.max, &mut f);
            for a in answers {
                // A short answer to an idle socket is written at once; if not, the
                // connection is in no state to be held.
                if self.stream.try_write(&a).ok() != Some(a.len()) {
                    self.broken = true;
                }
            }
            match r {
                Ok(Some(SCRATCH)) => continue,
                Ok(_) => return !self.broken,
                Err(_) => {
                    self.broken = true;
                    return false;
                }
            }
        }
    }

    /// Sends `notifications/initialized`-style lines during the handshake.
    pub async fn write_line(&mut self, line: &[u8]) -> io::Result<()> {
        self.stream.write_all(line).await
    }

    /// Reads until the reply to `id` and returns that line whole (the handshake needs the
    /// `initialize` result itself); answers server requests on the way.
    pub async fn read_full_reply(&mut self, id: u64) -> Result<Vec<u8>, Broken> {
        loop {
            let mut found: Option<Vec<u8>> = None;
            let mut answers: Vec<Vec<u8>> = Vec::new();
            let (stream, partial, max, requests) = (&mut self.stream, &mut self.partial, self.max, &*self.requests);
            poll_fn(|cx| {
                poll_lines(cx, stream, partial, max, &mut |line| {
                    let ours = match classify(line, requests) {
                        Line::Reply(n, _) | Line::Garbage(Some(n)) => n == id,
                        // A refusal without id (a full server) answers the handshake.
                        Line::Garbage(None) | Line::Other => found.is_none(),
                        Line::Answer(a) => {
                            answers.push(a);
                            false
                        }
                    };
                    if ours {
                        found = Some(line.to_vec());
                    }
                })
            })
            .await?;
            for a in answers {
                self.stream.write_all(&a).await.map_err(|_| Broken::Io)?;
            }
            if let Some(l) = found {
                return Ok(l);
            }
        }
    }

    /// The id the next request will use (the handshake takes the first).
    pub fn take_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    /// Turns this connection into a multiplexed one reporting to `hooks` (read by one of
    /// the phase's reader tasks).
    pub fn into_mux(self, hooks: Arc<super::mux::Hooks>) -> Arc<super::mux::MuxConn> {
        let LineConn { stream, partial, next_id, max, abortive_close, requests, .. } = self;
        super::mux::MuxConn::start(stream, partial, next_id, max, abortive_close, hooks, requests)
    }

    /// Closes the connection (abortively when configured).
    pub fn close(self) {
        set_abortive(&self.stream, self.abortive_close);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_requests_and_classifies_replies() {
        let enc =
            Encoded::new("tools/call", Some(&serde_json::json!({"name": "echo", "arguments": {"message": "hi"}})));
        let line = enc.line(42);
        let v: serde_json::Value = serde_json::from_slice(&line[..line.len() - 1]).unwrap();
        assert_eq!(v["id"], 42);
        assert_eq!(v["params"]["arguments"]["message"], "hi");
        let none = ServerRequests::default();
        let classify = |line: &[u8]| classify(line, &none);
        assert!(matches!(
            classify(br#"{"jsonrpc":"2.0","id":7,"result":{"x":[1,{"y":2}]}}"#),
            Line::Reply(7, Reply::Ok)
        ));
        assert!(matches!(
            classify(br#"{"jsonrpc":"2.0","id":8,"error":{"code":-32000,"message":"overloaded"}}"#),
            Line::Reply(8, Reply::Rpc(-32000))
        ));
        match classify(br#"{"jsonrpc":"2.0","id":"s1","method":"ping"}"#) {
            Line::Answer(a) => assert_eq!(a, b"{\"jsonrpc\":\"2.0\",\"id\":\"s1\",\"result\":{}}\n"),
            _ => panic!("ping must be answered"),
        }
        assert!(matches!(classify(br#"{"jsonrpc":"2.0","method":"notifications/progress"}"#), Line::Other));
        assert!(matches!(classify(br#"{"jsonrpc":"2.0","id":9,"resu"#), Line::Garbage(Some(9))));
    }

    #[test]
    fn a_stateless_template_carries_the_envelope_and_names_itself() {
        use crate::protocol::stateless::{envelope, meta, VERSION};
        use serde_json::json;
        let env = envelope(VERSION, &json!({}), "mcpscript", "1.0");
        let params = json!({"uri": "test://héllo", "_meta": {"progressToken": 3}});
        let enc = Encoded::stateless("resources/read", Some(&params), VERSION, &env);
        let line = enc.line(9);
        let v: serde_json::Value = serde_json::from_slice(&line[..line.len() - 1]).unwrap();
        assert_eq!((v["id"].clone(), v["method"].clone()), (json!(9), json!("resources/read")));
        assert_eq!(v["params"]["uri"], "test://héllo");
        let m = &v["params"]["_meta"];
        assert_eq!((m[meta::PROTOCOL_VERSION].clone(), m["progressToken"].clone()), (json!(VERSION), json!(3)));
        assert_eq!(m[meta::CLIENT_CAPABILITIES], json!({}));
        assert_eq!(m[meta::CLIENT_INFO]["name"], "mcpscript");
        let head = std::str::from_utf8(&enc.head).unwrap();
        assert_eq!(
            head,
            "MCP-Protocol-Version: 2026-07-28\r\nMcp-Method: resources/read\r\nMcp-Name: =?base64?dGVzdDovL2jDqWxsbw==?=\r\n"
        );
        // No params: an envelope alone; no Mcp-Name for methods without one.
        let ping = Encoded::stateless("ping", None, VERSION, &env);
        let v: serde_json::Value = serde_json::from_slice(ping.line(1).trim_ascii_end()).unwrap();
        assert_eq!(v["params"]["_meta"][meta::PROTOCOL_VERSION], VERSION);
        assert_eq!(&*ping.head, b"MCP-Protocol-Version: 2026-07-28\r\nMcp-Method: ping\r\n");
        assert!(Encoded::new("ping", None).head.is_empty(), "the handshake era has none");
    }

    /// The answer a line holds, parsed.
    fn answered(line: &[u8], requests: &ServerRequests) -> serde_json::Value {
        match classify(line, requests) {
            Line::Answer(a) => {
                assert_eq!(a.last(), Some(&b'\n'), "one line");
                serde_json::from_slice(&a).unwrap()
            }
            _ => panic!("a server request must be answered"),
        }
    }

    #[test]
    fn server_requests_get_the_canned_answers_and_are_counted() {
        use crate::client::server_requests::{CannedAnswers, RequestCounts, Tally};
        use serde_json::json;
        let tally = Arc::new(Tally::default());
        let canned = CannedAnswers {
            sampling: Some(json!({"role": "assistant", "content": {"type": "text", "text": "ok"}, "model": "m"})),
            elicitation: Some(json!({"action": "accept", "content": {"name": "Ann"}})),
            roots: None,
        };
        let requests = canned.requests(Some(tally.clone()));
        let sampling = br#"{"jsonrpc":"2.0","id":5,"method":"sampling/createMessage","params":{"messages":[]}}"#;
        let a = answered(sampling, &requests);
        assert_eq!((a["id"].clone(), a["result"]["content"]["text"].clone()), (json!(5), json!("ok")), "{a}");
        // The elicitation gets the requested schema's defaults for what the answer left out.
        let elicit = br#"{"jsonrpc":"2.0","id":"e1","method":"elicitation/create","params":{"requestedSchema":{"properties":{"name":{"type":"string"},"age":{"type":"integer","default":30}}}}}"#;
        let a = answered(elicit, &requests);
        assert_eq!(a["id"], "e1");
        assert_eq!(a["result"], json!({"action": "accept", "content": {"name": "Ann", "age": 30}}));
        let roots = answered(br#"{"jsonrpc":"2.0","id":6,"method":"roots/list"}"#, &requests);
        assert_eq!(roots["error"]["code"], -32601, "not configured: refused, {roots}");
        answered(br#"{"jsonrpc":"2.0","id":7,"method":"ping"}"#, &requests);
        let counts = tally.snapshot();
        let c = |received, answered, refused| RequestCounts { received, answered, refused };
        assert_eq!(counts["sampling/createMessage"], c(1, 1, 0));
        assert_eq!(counts["elicitation/create"], c(1, 1, 0));
        assert_eq!(counts["roots/list"], c(1, 0, 1));
        assert_eq!(counts["ping"], c(1, 1, 0));
    }

    #[test]
    fn splits_lines_across_reads() {
        let mut partial = Vec::new();
        let mut got: Vec<String> = Vec::new();
        let mut f = |l: &[u8]| got.push(String::from_utf8(l.to_vec()).unwrap());
        split_lines(&mut partial, b"ab\r\ncd", 100, &mut f).unwrap();
        split_lines(&mut partial, b"e\n\nf", 100, &mut f).unwrap();
        split_lines(&mut partial, b"g\n", 100, &mut f).unwrap();
        assert_eq!(got, vec!["ab", "cde", "fg"]);
        assert_eq!(split_lines(&mut Vec::new(), &[b'x'; 50], 10, &mut |_| {}), Err(Broken::TooLong));
    }
}
