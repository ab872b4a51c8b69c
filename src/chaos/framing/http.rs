//! HTTP/1.1 messages on one direction of a keep-alive connection. Units are JSON bodies
//! (the whole message: head and body, with Content-Length rewritten, or a chunked body
//! re-emitted as one chunk) and SSE events (`data:` lines) inside `text/event-stream`
//! responses, each re-emitted as its own chunk. A `101 Switching Protocols` turns both
//! directions into WebSocket frames. Responses to HEAD requests are not modelled (MCP
//! clients do not send them).

use super::chunked::{Decoder, Event};
use super::sse::Sse;
use super::ws::Ws;
use super::{Envelope, HttpLink, Sink, Unit};
use crate::net::http1::contains_ignore_case;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// Longest head followed; beyond it the connection passes through untouched.
const MAX_HEAD: usize = 64 * 1024;

pub struct Http {
    /// This direction carries requests (client to server).
    request: bool,
    link: Arc<HttpLink>,
    state: State,
    /// The head of the current message so far (kept for parsing in every mode).
    head: Vec<u8>,
    /// The current message, assembled as a unit.
    hold: Option<Hold>,
    max: usize,
}

struct Hold {
    /// Bytes as received, forwarded as they are if the message turns out not to be a unit.
    raw: Vec<u8>,
    /// The decoded body.
    body: Vec<u8>,
}

enum State {
    /// Reading a head; `swallow`: this response answers a duplicated request.
    Head {
        swallow: bool,
    },
    Body {
        body: Body,
        content: Content,
        swallow: bool,
    },
    /// After a request asking for an upgrade: WebSocket if the response was 101.
    AwaitUpgrade,
    Ws(Box<Ws>),
    /// Framing no longer understood: everything passes.
    Opaque,
}

enum Body {
    Length(u64),
    Chunked(Decoder),
    UntilClose,
}

enum Content {
    /// A JSON body (assembled as a unit when `hold` is set); where Content-Length sits.
    Json {
        length_at: Option<(usize, usize)>,
    },
    Sse(Sse),
    Other,
}

impl Http {
    pub fn new(request: bool, max: usize, link: Arc<HttpLink>) -> Http {
        Http { request, link, state: State::Head { swallow: false }, head: Vec::new(), hold: None, max }
    }

    pub fn idle(&self) -> bool {
        let busy = match &self.state {
            State::Ws(w) => !w.idle(),
            State::Body { swallow: true, .. } | State::Head { swallow: true } => true,
            State::Body { content: Content::Sse(s), .. } => s.units,
            _ => false,
        };
        let swallow_pending = !self.request && self.link.pending_swallows.load(Ordering::Relaxed) > 0;
        self.hold.is_none() && !busy && !swallow_pending
    }

    pub fn feed(&mut self, mut data: &[u8], units: bool, sink: &mut Sink) {
        while !data.is_empty() {
            match &mut self.state {
                State::Opaque => {
                    sink.raw(data);
                    return;
                }
                State::Ws(w) => {
                    w.feed(data, units, sink);
                    return;
                }
                State::AwaitUpgrade => {
                    self.state = if self.link.upgraded.load(Ordering::Acquire) {
                        State::Ws(Box::new(Ws::new(self.max)))
                    } else {
                        State::Head { swallow: false }
                    };
                }
                State::Head { swallow } => {
                    if self.head.is_empty() {
                        *swallow = !self.request && self.link.next_response_swallowed();
                        if (units || *swallow) && self.hold.is_none() {
                            self.hold = Some(Hold { raw: Vec::new(), body: Vec::new() });
                        }
                    }
                    let (take, done) = head_end(&self.head, data);
                    self.head.extend_from_slice(&data[..take]);
                    match &mut self.hold {
                        Some(h) => h.raw.extend_from_slice(&data[..take]),
                        None => sink.raw(&data[..take]),
                    }
                    data = &data[take..];
                    if done {
                        self.on_head(units, sink);
                    } else if self.head.len() > MAX_HEAD {
                        self.give_up(sink);
                    }
                }
                State::Body { .. } => {
                    let used = self.body(data, units, sink);
                    data = &data[used..];
                }
            }
        }
    }

    /// Stops following the framing: what is held goes out, everything else passes.
    fn give_up(&mut self, sink: &mut Sink) {
        if let Some(h) = self.hold.take() {
            sink.raw(&h.raw);
        }
        self.state = State::Opaque;
    }

    fn on_head(&mut self, units: bool, sink: &mut Sink) {
        let State::Head { swallow } = self.state else { return };
        let Some(head) = parse_head(&self.head, self.request) else {
            return self.give_up(sink);
        };
        let mut swallow = swallow;
        let no_body = if self.request {
            self.link.request_sent(false);
            !head.chunked && head.content_length.is_none()
        } else {
            match head.status {
                101 => {
                    self.link.upgraded.store(true, Ordering::Release);
                    self.link.response_started();
                    self.release_hold(sink, swallow);
                    self.head.clear();
                    self.state = State::Ws(Box::new(Ws::new(self.max)));
                    return;
                }
                100..=199 => {
                    // Interim response: the final one is still to come.
                    self.release_hold(sink, swallow);
                    self.head.clear();
                    self.state = State::Head { swallow: false };
                    return;
                }
                _ => {
                    swallow = self.link.response_started();
                    matches!(head.status, 204 | 304) || head.content_length == Some((0, 0, 0))
                }
            }
        };
        let body = if no_body {
            None
        } else if head.chunked {
            Some(Body::Chunked(Decoder::new()))
        } else if let Some((n, ..)) = head.content_length {
            Some(Body::Length(n))
        } else if self.request {
            None
        } else {
            Some(Body::UntilClose)
        };
        let Some(body) = body else {
            self.release_hold(sink, swallow);
            self.head.clear();
            self.state =
                if self.request && head.upgrade { State::AwaitUpgrade } else { State::Head { swallow: false } };
            return;
        };
        let content = if head.json && !matches!(body, Body::UntilClose) {
            let too_big = matches!(body, Body::Length(n) if n > self.max as u64);
            if too_big && !swallow {
                self.release_hold(sink, false);
            }
            Content::Json { length_at: head.content_length.map(|(_, from, to)| (from, to)) }
        } else if head.sse && !self.request && !swallow && matches!(body, Body::Length(_)) {
            // A complete event stream with a Content-Length. Held from its start (units
            // wanted), it is re-sent chunked, one event per chunk, so events can change size.
            match (self.hold.take(), head.content_length) {
                (Some(h), Some((_, from, to))) => {
                    sink.raw(&replace_line(&h.raw, from, to, b"transfer-encoding: chunked"));
                    Content::Sse(Sse::from_length())
                }
                (h, _) => {
                    if let Some(h) = h {
                        sink.raw(&h.raw);
                    }
                    Content::Other
                }
            }
        } else {
            if !swallow {
                self.release_hold(sink, false);
            }
            if head.sse && !self.request && !matches!(body, Body::Length(_)) {
                Content::Sse(Sse::new(matches!(body, Body::Chunked(_)), units && !swallow))
            } else {
                Content::Other
            }
        };
        if swallow {
            self.hold = None;
        }
        self.state = State::Body { body, content, swallow };
    }

    /// Forwards what was held for the current message as it came (or drops it when the
    /// message is swallowed).
    fn release_hold(&mut self, sink: &mut Sink, swallow: bool) {
        if let Some(h) = self.hold.take() {
            if !swallow {
                sink.raw(&h.raw);
            }
        }
    }

    /// Feeds body bytes; returns how many belonged to the body.
    fn body(&mut self, data: &[u8], units: bool, sink: &mut Sink) -> usize {
        let State::Body { body, content, swallow } = &mut self.state else { return 0 };
        let swallow = *swallow;
        let hold = &mut self.hold;
        let (used, ended) = match body {
            Body::Length(remaining) => {
                let take = (*remaining).min(data.len() as u64) as usize;
                let bytes = &data[..take];
                if !swallow {
                    match (hold.as_mut(), &mut *content) {
                        (Some(h), _) => {
                            h.raw.extend_from_slice(bytes);
                            h.body.extend_from_slice(bytes);
                        }
                        (None, Content::Sse(s)) => s.data(bytes, units, sink),
                        (None, _) => sink.raw(bytes),
                    }
                }
                *remaining -= take as u64;
                (take, *remaining == 0)
            }
            Body::UntilClose => {
                if !swallow {
                    match content {
                        Content::Sse(s) => s.data(data, units, sink),
                        _ => sink.raw(data),
                    }
                }
                (data.len(), false)
            }
            Body::Chunked(dec) => {
                let mut ended = false;
                let used = dec.feed(data, &mut |e| {
                    if let Event::End = e {
                        ended = true;
                    }
                    if swallow {
                        return;
                    }
                    match (&mut *content, hold.as_mut()) {
                        (Content::Json { .. }, Some(h)) => match e {
                            Event::Frame(b) => h.raw.extend_from_slice(b),
                            Event::Data(b) => {
                                h.raw.extend_from_slice(b);
                                h.body.extend_from_slice(b);
                            }
                            _ => {}
                        },
                        (Content::Sse(s), _) => s.chunk_event(e, units, sink),
                        (_, _) => match e {
                            Event::Frame(b) | Event::Data(b) => sink.raw(b),
                            _ => {}
                        },
                    }
                });
                (used, ended)
            }
        };
        if let Some(h) = &self.hold {
            if h.body.len() > self.max {
                // Too big to model as a message: it goes through as it is.
                self.release_hold(sink, false);
            }
        }
        if ended {
            self.end_body(sink);
        }
        used
    }

    fn end_body(&mut self, sink: &mut Sink) {
        let state = std::mem::replace(&mut self.state, State::Head { swallow: false });
        let head = std::mem::take(&mut self.head);
        let State::Body { content, swallow, .. } = state else { return };
        if swallow {
            return;
        }
        match (content, self.hold.take()) {
            (Content::Json { length_at }, Some(h)) if super::looks_like_json(&h.body) => {
                sink.unit(Unit {
                    payload: h.body,
                    envelope: Envelope::HttpBody { head, length_at, request: self.request },
                });
            }
            (_, Some(h)) => sink.raw(&h.raw),
            (Content::Sse(mut s), None) => {
                s.flush(sink);
                if s.from_length {
                    sink.raw(b"0\r\n\r\n");
                }
            }
            _ => {}
        }
    }

    pub fn finish(&mut self, sink: &mut Sink) {
        if let Some(h) = self.hold.take() {
            sink.raw(&h.raw);
        }
        match &mut self.state {
            State::Ws(w) => w.finish(sink),
            State::Body { content: Content::Sse(s), swallow: false, .. } => s.flush(sink),
            _ => {}
        }
    }
}

/// How many bytes of `data` belong to the head, and whether that completes it (at the
/// empty line ending the headers; a bare-LF empty line is accepted too).
fn head_end(head: &[u8], data: &[u8]) -> (usize, bool) {
    // Bytes of the head so far that may be part of the terminator.
    let carry = &head[head.len().saturating_sub(3)..];
    let mut window = [0u8; 3];
    let mut w = carry.len();
    window[..w].copy_from_slice(carry);
    for (i, &b) in data.iter().enumerate() {
        if b == b'\n' {
            let before = &window[..w];
            let ends = before.ends_with(b"\r\n\r") || before.ends_with(b"\n\r") || before.ends_with(b"\n");
            // An empty head so far (leading CRLF between messages) is not an end.
            if ends && head.len() + i + 1 > 2 {
                return (i + 1, true);
            }
        }
        if w == 3 {
            window.rotate_left(1);
            window[2] = b;
        } else {
            window[w] = b;
            w += 1;
        }
    }
    (data.len(), false)
}

struct ParsedHead {
    /// Response status (0 for requests).
    status: u16,
    /// Value and where its digits sit in the head.
    content_length: Option<(u64, usize, usize)>,
    chunked: bool,
    json: bool,
    sse: bool,
    upgrade: bool,
}

fn parse_head(head: &[u8], request: bool) -> Option<ParsedHead> {
    let text = head;
    let mut lines = LineIter { text, at: 0 };
    // Skip blank lines before the start line.
    let (start, _) = loop {
        let (from, to) = lines.next()?;
        if to > from {
            break (&text[from..to], from);
        }
    };
    let status = if request {
        if !start.windows(5).any(|w| w == b"HTTP/") {
            return None;
        }
        0
    } else {
        let rest = start.strip_prefix(b"HTTP/")?;
        let code = rest.split(|b| *b == b' ').nth(1)?;
        std::str::from_utf8(code).ok()?.parse().ok()?
    };
    let mut h = ParsedHead { status, content_length: None, chunked: false, json: false, sse: false, upgrade: false };
    for (from, to) in lines {
        let line = &text[from..to];
        let Some(colon) = memchr::memchr(b':', line) else { continue };
        let name = line[..colon].trim_ascii();
        let mut vfrom = from + colon + 1;
        while vfrom < to && (text[vfrom] == b' ' || text[vfrom] == b'\t') {
            vfrom += 1;
        }
        let mut vto = to;
        while vto > vfrom && (text[vto - 1] == b' ' || text[vto - 1] == b'\t') {
            vto -= 1;
        }
        let value = &text[vfrom..vto];
        if name.eq_ignore_ascii_case(b"content-length") {
            let n: u64 = std::str::from_utf8(value).ok()?.parse().ok()?;
            h.content_length = Some((n, vfrom, vto));
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            h.chunked = contains_ignore_case(value, b"chunked");
        } else if name.eq_ignore_ascii_case(b"content-type") {
            h.json = contains_ignore_case(value, b"json");
            h.sse = contains_ignore_case(value, b"text/event-stream");
        } else if name.eq_ignore_ascii_case(b"upgrade") {
            h.upgrade = true;
        }
    }
    if h.chunked {
        h.content_length = None;
    }
    // Zero-length bodies carry no message; mark them so the caller sees "no body".
    if let Some((0, ..)) = h.content_length {
        h.content_length = Some((0, 0, 0));
    }
    Some(h)
}

/// `text` with the line holding `from..to` replaced by `line` (CRLF-terminated).
fn replace_line(text: &[u8], from: usize, to: usize, line: &[u8]) -> Vec<u8> {
    let start = text[..from].iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
    let end = memchr::memchr(b'\n', &text[to..]).map_or(text.len(), |i| to + i + 1);
    let mut out = Vec::with_capacity(text.len() + 16);
    out.extend_from_slice(&text[..start]);
    out.extend_from_slice(line);
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(&text[end..]);
    out
}

/// Lines of a head as (start, end) offsets, without their `\r\n`.
struct LineIter<'a> {
    text: &'a [u8],
    at: usize,
}

impl Iterator for LineIter<'_> {
    type Item = (usize, usize);

    fn next(&mut self) -> Option<(usize, usize)> {
        if self.at >= self.text.len() {
            return None;
        }
        let from = self.at;
        let nl = memchr::memchr(b'\n', &self.text[from..]).map(|n| from + n).unwrap_or(self.text.len());
        self.at = nl + 1;
        let mut to = nl;
        if to > from && self.text[to - 1] == b'\r' {
            to -= 1;
        }
        Some((from, to))
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::run;
    use super::super::{Framer, Framing, HttpLink, Piece, Sink};
    use std::sync::Arc;

    fn pair() -> (Framer, Framer, Arc<HttpLink>) {
        let link = Arc::new(HttpLink::default());
        (
            Framer::new(Framing::Http, true, 1 << 20, Some(link.clone())),
            Framer::new(Framing::Http, false, 1 << 20, Some(link.clone())),
            link,
        )
    }

    const POST: &[u8] = b"POST /mcp HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 27\r\n\r\n{\"jsonrpc\":\"2.0\",\"id\":1,\"x\"}";
    const JSON_RESP: &[u8] =
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 13\r\n\r\n{\"result\":{}}";
    /// An SSE response whose body is `pieces`, one chunk each.
    fn sse_resp(pieces: &[&str]) -> Vec<u8> {
        let mut out =
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n".to_vec();
        for p in pieces {
            out.extend_from_slice(format!("{:x};x=y\r\n{p}\r\n", p.len()).as_bytes());
        }
        out.extend_from_slice(b"0\r\n\r\n");
        out
    }

    fn sse_sample() -> Vec<u8> {
        sse_resp(&["id: 1\r\n", "data: {\"a\":1}\n\n", "data:\ndata: \n\n", "event: m\ndata: [1\r\n", "data: ]\n\n"])
    }

    #[test]
    fn json_bodies_are_units_with_their_length_rewritten() {
        for step in [1, 9, 4096] {
            let (mut up, mut down, _) = pair();
            let (out, units) = run(&mut up, POST, step, true);
            assert_eq!(out, POST, "step {step}");
            assert_eq!(units.len(), 1);
            assert!(units[0].is_http_request());
            let (out, mut units) = run(&mut down, JSON_RESP, step, true);
            assert_eq!(out, JSON_RESP);
            let u = &mut units[0];
            assert_eq!(u.payload, b"{\"result\":{}}");
            u.payload.truncate(5);
            let s = String::from_utf8(u.encode().to_vec()).unwrap();
            assert!(s.ends_with("Content-Length: 5\r\n\r\n{\"res"), "{s}");
        }
    }

    #[test]
    fn sse_events_are_units_rechunked() {
        for step in [1, 10, 4096] {
            let (_, mut down, _) = pair();
            let (out, units) = run(&mut down, &sse_sample(), step, true);
            let payloads: Vec<_> = units.iter().map(|u| String::from_utf8(u.payload.clone()).unwrap()).collect();
            assert_eq!(payloads, ["{\"a\":1}", "[1\n]"], "step {step}");
            let text = String::from_utf8(out).unwrap();
            assert!(text.ends_with("0\r\n\r\n"), "{text}");
            // Re-decode: the events must still be there in valid chunked framing.
            let body = text.split_once("\r\n\r\n").unwrap().1;
            let mut dec = super::Decoder::new();
            let mut data = vec![];
            dec.feed(body.as_bytes(), &mut |e| {
                if let super::Event::Data(b) = e {
                    data.extend_from_slice(b)
                }
            });
            let data = String::from_utf8(data).unwrap();
            assert!(
                data.contains("id: 1\ndata: {\"a\":1}\n\n") && data.contains("event: m\ndata: [1\ndata: ]\n\n"),
                "{data:?}"
            );
        }
    }

    #[test]
    fn an_sse_body_with_a_length_is_re_sent_chunked() {
        let body = "id: 0\ndata:\n\nevent: message\ndata: {\"id\":1}\n\n";
        let resp = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncontent-length: {}\r\nx-a: b\r\n\r\n{body}",
            body.len()
        );
        let mut input = resp.clone().into_bytes();
        input.extend_from_slice(JSON_RESP);
        for step in [1, 5, 4096] {
            let (_, mut down, _) = pair();
            let (out, units) = run(&mut down, &input, step, true);
            let text = String::from_utf8(out).unwrap();
            assert_eq!(units.len(), 2, "the event and the JSON body");
            assert_eq!(units[0].payload, b"{\"id\":1}");
            assert!(
                text.starts_with("HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\nx-a: b\r\n\r\n"),
                "{text}"
            );
            assert!(text.contains("0\r\n\r\nHTTP/1.1 200 OK"), "{text}");
            // Without units, the same bytes pass untouched.
            let (_, mut down, _) = pair();
            assert_eq!(run(&mut down, &input, step, false).0, input);
        }
    }

    #[test]
    fn passthrough_reproduces_the_input_and_keeps_keep_alive_sync() {
        let mut input = sse_sample();
        input.extend_from_slice(JSON_RESP);
        input.extend_from_slice(b"HTTP/1.1 202 Accepted\r\ncontent-length: 0\r\n\r\n");
        input.extend_from_slice(JSON_RESP);
        let (_, mut down, _) = pair();
        let (out, units) = run(&mut down, &input, 7, false);
        assert_eq!(out, input);
        assert!(units.is_empty());
        // Switching units on mid-way picks up at the next message.
        let (_, mut down, _) = pair();
        down.track(&input[..40]);
        let (out, units) = run(&mut down, &input[40..], 7, true);
        assert!(out.ends_with(JSON_RESP));
        assert_eq!(units.len(), 4, "both SSE events (the body starts after units were asked for) and both JSON bodies");
    }

    #[test]
    fn a_duplicated_request_has_its_response_swallowed() {
        let (mut up, mut down, link) = pair();
        let (_, units) = run(&mut up, POST, 4096, true);
        assert_eq!(units.len(), 1);
        link.request_sent(true); // the pump sent it twice
        let mut input = JSON_RESP.to_vec();
        input.extend_from_slice(JSON_RESP);
        let mut sink = Sink::new();
        down.push(&input, false, &mut sink);
        let out: Vec<u8> = sink
            .take()
            .flat_map(|p| match p {
                Piece::Raw(b) => b.to_vec(),
                Piece::Unit(u) => u.encode().to_vec(),
            })
            .collect();
        assert_eq!(out, JSON_RESP);
        assert!(down.idle());
    }

    #[test]
    fn follows_a_websocket_upgrade() {
        let (mut up, mut down, _) = pair();
        let req = b"GET /ws HTTP/1.1\r\nhost: x\r\nupgrade: websocket\r\nconnection: upgrade\r\n\r\n";
        run(&mut up, req, 5, true);
        let mut resp = b"HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\n\r\n".to_vec();
        let mut frame = bytes::BytesMut::new();
        super::super::ws::encode_frame(&mut frame, 0x81, None, b"{\"id\":1}");
        resp.extend_from_slice(&frame);
        let (out, units) = run(&mut down, &resp, 3, true);
        assert_eq!(out, resp);
        assert_eq!(units.len(), 1);
        let mut frame = bytes::BytesMut::new();
        super::super::ws::encode_frame(&mut frame, 0x81, Some([1, 2, 3, 4]), b"{\"id\":2}");
        let (out, units) = run(&mut up, &frame, 2, true);
        assert_eq!(out, frame.to_vec());
        assert_eq!(units[0].payload, b"{\"id\":2}");
    }
}
