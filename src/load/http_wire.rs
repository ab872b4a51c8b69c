//! The wire side of a lean HTTP exchange (see [`http_conn`](super::http_conn)): the
//! response head parsed with `httparse`, and the body decoded incrementally
//! (`Content-Length`, chunked, or until the connection closes) into a caller's sink, so
//! only the undecoded rest of the last read is ever buffered; the POST body written
//! straight into the request buffer ([`Body`]); the messages of a reply sorted out
//! ([`Found`]: the reply to the request in flight, answers owed to server requests).

use super::conn::{classify, itoa, Encoded, Line, Reply, PREFIX};
use super::http_conn::Fail;
use crate::client::server_requests::ServerRequests;
use crate::net::http1::{
    contains_ignore_case, decode, starts_with_ignore_case, Chunk, Framing, Spare, MAX_HEAD, READ_CHUNK,
};
use serde_json::value::RawValue;
use std::io;
use std::mem::MaybeUninit;
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

/// Response head lines parsed at most.
const MAX_HEADERS: usize = 48;
const SESSION_HEADER: &str = "mcp-session-id";
const WWW_AUTHENTICATE: &str = "www-authenticate";

/// How reading a body ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum End {
    /// To its end: the connection can carry another request (unless told otherwise).
    Done,
    /// Stopped after the reply while the body went on: the connection is given up.
    Open,
}

pub(super) struct Head {
    pub(super) status: u16,
    pub(super) framing: Framing,
    pub(super) event_stream: bool,
    pub(super) session: Option<String>,
    /// A 401 or 403: its `WWW-Authenticate` challenges, comma-joined.
    pub(super) challenge: Option<String>,
    /// The server closes the connection after this response.
    pub(super) close: bool,
}

/// The read side of one exchange: bytes read and not yet consumed, in a buffer borrowed
/// from the thread's spares ([`Spare`]) for the exchange and returned when it ends.
#[derive(Default)]
pub(super) struct Reader {
    buf: Spare,
}

impl Reader {
    async fn fill(&mut self, stream: &mut TcpStream) -> io::Result<usize> {
        let buf = &mut self.buf.0;
        if buf.capacity() - buf.len() < 512 {
            buf.reserve(READ_CHUNK.max(buf.len()));
        }
        stream.read_buf(buf).await
    }

    /// Reads and parses the response head (1xx interim responses are skipped).
    /// `session`: keep the `Mcp-Session-Id` (only a handshake needs it).
    pub(super) async fn head(&mut self, stream: &mut TcpStream, session: bool) -> Result<Head, Fail> {
        let mut got_any = false;
        loop {
            if !self.buf.0.is_empty() {
                let mut headers = [const { MaybeUninit::uninit() }; MAX_HEADERS];
                let mut resp = httparse::Response::new(&mut []);
                let parsed = httparse::ParserConfig::default().parse_response_with_uninit_headers(
                    &mut resp,
                    &self.buf.0,
                    &mut headers,
                );
                match parsed {
                    Ok(httparse::Status::Complete(n)) => {
                        let status = resp.code.unwrap_or(0);
                        let head = parse_head(&resp, status, session)?;
                        self.buf.0.drain(..n);
                        if (100..200).contains(&status) && status != 101 {
                            continue;
                        }
                        return Ok(head);
                    }
                    Ok(httparse::Status::Partial) if self.buf.0.len() <= MAX_HEAD => {}
                    Ok(httparse::Status::Partial) => {
                        return Err(Fail::Protocol("the HTTP response head is too large".into()))
                    }
                    Err(e) => return Err(Fail::Protocol(format!("not an HTTP response: {e}"))),
                }
            }
            match self.fill(stream).await {
                Ok(0) if !got_any => return Err(Fail::Unanswered("the server closed the connection".into())),
                Ok(0) => return Err(Fail::Closed("the connection ended inside the response head".into())),
                Ok(_) => got_any = true,
                Err(e) if !got_any => return Err(Fail::Unanswered(format!("while reading: {e}"))),
                Err(e) => return Err(Fail::Closed(format!("while reading the response head: {e}"))),
            }
        }
    }

    /// Decodes the body, handing its bytes to `out`; once `out` returns true (the reply is
    /// in), the rest of the body gets `grace` to end (`None`: no limit).
    pub(super) async fn body(
        &mut self,
        stream: &mut TcpStream,
        mut framing: Framing,
        grace: Option<Duration>,
        out: &mut (dyn FnMut(&[u8]) -> Result<bool, Fail> + Send),
    ) -> Result<End, Fail> {
        let mut deadline: Option<tokio::time::Instant> = None;
        loop {
            let (used, satisfied) = decode(&mut framing, &self.buf.0, out)?;
            self.buf.0.drain(..used);
            if framing == Framing::Done {
                return Ok(End::Done);
            }
            if let (true, None, Some(g)) = (satisfied, deadline, grace) {
                deadline = Some(tokio::time::Instant::now() + g);
            }
            let read = match deadline {
                // Boxed: only an event stream that goes on after its reply gets here, and
                // a timer inline would grow every exchange's future.
                Some(d) => match Box::pin(tokio::time::timeout_at(d, self.fill(stream))).await {
                    Ok(r) => r,
                    Err(_) => return Ok(End::Open),
                },
                None => self.fill(stream).await,
            };
            match read {
                Ok(0) if framing == Framing::UntilClose => {
                    // The end of such a body; the connection is gone with it.
                    return Ok(End::Open);
                }
                Ok(0) => return Err(Fail::Closed("the connection ended inside the response body".into())),
                Ok(_) => {}
                Err(e) => return Err(Fail::Closed(format!("while reading the response body: {e}"))),
            }
        }
    }
}

fn parse_head(resp: &httparse::Response<'_, '_>, status: u16, want_session: bool) -> Result<Head, Fail> {
    let mut length: Option<u64> = None;
    let (mut chunked, mut event_stream, mut close, mut session) = (false, false, resp.version == Some(0), None);
    let mut challenge: Option<String> = None;
    let refused = status == 401 || status == 403;
    for h in resp.headers.iter() {
        let (name, value) = (h.name.as_bytes(), h.value.trim_ascii());
        if name.eq_ignore_ascii_case(b"content-length") {
            let v = std::str::from_utf8(value).ok().and_then(|s| s.parse::<u64>().ok());
            length = Some(v.ok_or_else(|| Fail::Protocol("a bad Content-Length".into()))?);
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            chunked = ends_with_ignore_case(value, b"chunked");
        } else if name.eq_ignore_ascii_case(b"content-type") {
            event_stream = starts_with_ignore_case(value, b"text/event-stream");
        } else if name.eq_ignore_ascii_case(b"connection") {
            close = close || contains_ignore_case(value, b"close");
        } else if want_session && name.eq_ignore_ascii_case(SESSION_HEADER.as_bytes()) {
            let v = std::str::from_utf8(value).ok().filter(|v| !v.is_empty());
            session = v.filter(|v| v.bytes().all(|b| (0x21..0x7f).contains(&b))).map(str::to_string);
        } else if refused && name.eq_ignore_ascii_case(WWW_AUTHENTICATE.as_bytes()) {
            let v = String::from_utf8_lossy(value);
            match &mut challenge {
                Some(c) => {
                    c.push_str(", ");
                    c.push_str(&v);
                }
                None => challenge = Some(v.into_owned()),
            }
        }
    }
    let framing = if status == 204 || status == 304 || (100..200).contains(&status) {
        Framing::Done
    } else if chunked {
        Framing::Chunked(Chunk::Size)
    } else {
        match length {
            Some(0) => Framing::Done,
            Some(n) => Framing::Length(n),
            None => Framing::UntilClose,
        }
    };
    if framing == Framing::UntilClose {
        close = true;
    }
    Ok(Head { status, framing, event_stream, session, challenge, close })
}

fn ends_with_ignore_case(v: &[u8], suffix: &[u8]) -> bool {
    v.len() >= suffix.len() && v[v.len() - suffix.len()..].eq_ignore_ascii_case(suffix)
}

/// The body of a POST: bytes as they are, or request `id` of a template (its line
/// without the newline), written straight into the request buffer.
#[derive(Clone, Copy)]
pub(super) enum Body<'a> {
    Bytes(&'a [u8]),
    Template(&'a Encoded, u64),
}

impl Body<'_> {
    fn suffix(enc: &Encoded) -> &[u8] {
        enc.suffix.strip_suffix(b"\n").unwrap_or(&enc.suffix)
    }

    pub(super) fn len(&self) -> usize {
        match *self {
            Body::Bytes(b) => b.len(),
            Body::Template(enc, id) => PREFIX.len() + itoa(id, &mut [0; 20]).len() + Body::suffix(enc).len(),
        }
    }

    pub(super) fn write_into(&self, out: &mut Vec<u8>) {
        match *self {
            Body::Bytes(b) => out.extend_from_slice(b),
            Body::Template(enc, id) => {
                out.extend_from_slice(PREFIX);
                out.extend_from_slice(itoa(id, &mut [0; 20]));
                out.extend_from_slice(Body::suffix(enc));
            }
        }
    }
}

/// The messages of a reply, sorted out.
pub(super) struct Found<'a> {
    pub(super) want: u64,
    pub(super) full: bool,
    pub(super) reply: Option<Reply>,
    pub(super) message: Option<Vec<u8>>,
    /// Answers owed to server requests.
    pub(super) answers: Vec<Vec<u8>>,
    /// What server requests get.
    pub(super) requests: &'a ServerRequests,
}

impl Found<'_> {
    /// One message (or a batch) of the reply.
    pub(super) fn message(&mut self, data: &[u8]) {
        let data = data.trim_ascii();
        if data.is_empty() {
            return;
        }
        if data[0] == b'[' {
            if let Ok(items) = serde_json::from_slice::<Vec<&RawValue>>(data) {
                for item in items {
                    self.message(item.get().as_bytes());
                }
                return;
            }
        }
        match classify(data, self.requests) {
            Line::Reply(n, r) if n == self.want => {
                self.reply = Some(r);
                if self.full {
                    self.message = Some(data.to_vec());
                }
            }
            Line::Garbage(Some(n)) if n == self.want => self.reply = Some(Reply::Protocol),
            // One request is in flight, so unattributable garbage is its answer.
            Line::Garbage(None) => {
                self.reply.get_or_insert(Reply::Protocol);
            }
            Line::Answer(mut a) => {
                if a.last() == Some(&b'\n') {
                    a.pop();
                }
                self.answers.push(a);
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_keeps_its_challenges_and_nothing_else_does() {
        let head = |raw: &[u8]| {
            let mut headers = [httparse::EMPTY_HEADER; 8];
            let mut resp = httparse::Response::new(&mut headers);
            resp.parse(raw).unwrap();
            let status = resp.code.unwrap();
            parse_head(&resp, status, false).unwrap()
        };
        let refused = head(
            b"HTTP/1.1 401 X\r\nWWW-Authenticate: Bearer resource_metadata=\"http://a/b\"\r\n\
              www-authenticate: Basic realm=x\r\ncontent-length: 0\r\n\r\n",
        );
        assert_eq!(refused.challenge.as_deref(), Some("Bearer resource_metadata=\"http://a/b\", Basic realm=x"));
        let scope = head(b"HTTP/1.1 403 X\r\nWWW-Authenticate: Bearer error=insufficient_scope\r\n\r\n");
        assert_eq!(scope.challenge.as_deref(), Some("Bearer error=insufficient_scope"));
        let ok = head(b"HTTP/1.1 200 X\r\nWWW-Authenticate: Bearer\r\ncontent-length: 0\r\n\r\n");
        assert_eq!(ok.challenge, None);
    }
}
