//! Message boundaries in a byte stream, so message-level faults can act on whole JSON-RPC
//! messages and re-emit valid framing: newline-delimited JSON ([`lines`]), WebSocket frames
//! ([`ws`]) and HTTP/1.1 with JSON bodies and SSE streams ([`http`], with `sse` for event
//! streams; HTTP also follows a WebSocket upgrade).
//!
//! A [`Framer`] watches one direction of one connection. It always tracks where it is (so a
//! message fault added mid-stream takes hold at the next boundary), but it only assembles
//! whole messages ("units") while the pump asks for them; otherwise bytes pass through
//! untouched. The switch between the two modes happens only at boundaries where the framing
//! stays valid either way.

mod chunked;
pub mod http;
pub mod lines;
mod sse;
pub mod ws;

use bytes::{Bytes, BytesMut};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// How the proxy finds message boundaries, chosen from the upstream target's scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Framing {
    /// Bytes only: message-level faults are unavailable.
    Raw,
    /// Newline-delimited JSON-RPC (`tcp://`, and `stdio:`-style framing).
    Lines,
    /// HTTP/1.1 (`http://`, `sse+http://`): JSON bodies and SSE events; a `101 Switching
    /// Protocols` turns the connection into WebSocket frames (`ws://`).
    Http,
}

impl Framing {
    pub fn as_str(self) -> &'static str {
        match self {
            Framing::Raw => "raw",
            Framing::Lines => "lines",
            Framing::Http => "http",
        }
    }
}

impl std::str::FromStr for Framing {
    type Err = String;

    fn from_str(s: &str) -> Result<Framing, String> {
        match s {
            "raw" | "none" => Ok(Framing::Raw),
            "lines" | "tcp" => Ok(Framing::Lines),
            "http" | "ws" | "sse" => Ok(Framing::Http),
            _ => Err(format!("unknown framing '{s}'; use raw, lines or http (which covers sse and ws)")),
        }
    }
}

/// One piece of output: bytes to forward as they are, or a whole message.
#[derive(Debug)]
pub enum Piece {
    Raw(Bytes),
    Unit(Unit),
}

/// A whole message: its payload (the JSON text, unmasked for WebSocket) and what it takes
/// to frame it again after the payload changed.
#[derive(Debug, Clone)]
pub struct Unit {
    pub payload: Vec<u8>,
    envelope: Envelope,
}

#[derive(Debug, Clone)]
enum Envelope {
    /// A line; `crlf` when it ended in `\r\n`.
    Line { crlf: bool },
    /// A single-frame WebSocket data message: the first header byte and the mask key.
    Ws { b0: u8, mask: Option<[u8; 4]> },
    /// An HTTP message with a JSON body: the head, and where its Content-Length value sits
    /// (`None`: the body was chunked, and is re-emitted as one chunk).
    HttpBody { head: Vec<u8>, length_at: Option<(usize, usize)>, request: bool },
    /// One SSE event: its lines other than `data:`, and whether the body is chunked.
    Sse { other: Vec<u8>, chunked: bool },
}

impl Unit {
    /// Whether this is an HTTP request (so dropping or duplicating it must be reflected in
    /// which responses the client should see).
    pub fn is_http_request(&self) -> bool {
        matches!(self.envelope, Envelope::HttpBody { request: true, .. })
    }

    /// Whether cutting the payload must respect UTF-8 (WebSocket text frames and SSE).
    pub fn needs_utf8(&self) -> bool {
        matches!(self.envelope, Envelope::Ws { .. } | Envelope::Sse { .. })
    }

    /// The message with valid framing around the (possibly changed) payload.
    pub fn encode(&self) -> Bytes {
        let p = &self.payload;
        let mut out = BytesMut::with_capacity(p.len() + 64);
        match &self.envelope {
            Envelope::Line { crlf } => {
                out.extend_from_slice(p);
                out.extend_from_slice(if *crlf { b"\r\n" } else { b"\n" });
            }
            Envelope::Ws { b0, mask } => ws::encode_frame(&mut out, *b0, *mask, p),
            Envelope::HttpBody { head, length_at, .. } => match length_at {
                Some((from, to)) => {
                    out.extend_from_slice(&head[..*from]);
                    out.extend_from_slice(p.len().to_string().as_bytes());
                    out.extend_from_slice(&head[*to..]);
                    out.extend_from_slice(p);
                }
                None => {
                    out.extend_from_slice(head);
                    chunked::encode_chunk(&mut out, p);
                    out.extend_from_slice(b"0\r\n\r\n");
                }
            },
            Envelope::Sse { other, chunked } => {
                let mut block = Vec::with_capacity(other.len() + p.len() + 16);
                block.extend_from_slice(other);
                for line in p.split(|b| *b == b'\n') {
                    block.extend_from_slice(b"data: ");
                    block.extend_from_slice(line);
                    block.push(b'\n');
                }
                block.push(b'\n');
                if *chunked {
                    chunked::encode_chunk(&mut out, &block);
                } else {
                    out.extend_from_slice(&block);
                }
            }
        }
        out.freeze()
    }
}

/// Whether a payload is a JSON object or array (a JSON-RPC message or batch), as opposed to
/// other text a framing may carry (an SSE `endpoint` event, a ping frame's text).
fn looks_like_json(payload: &[u8]) -> bool {
    matches!(payload.iter().find(|b| !b.is_ascii_whitespace()), Some(b'{' | b'['))
}

/// Where a framer puts its output. In tracking mode (the fast path, where the pump forwards
/// the input itself) raw bytes are not copied.
pub struct Sink {
    pub pieces: Vec<Piece>,
    raw: BytesMut,
    tracking: bool,
}

impl Sink {
    pub fn new() -> Sink {
        Sink { pieces: Vec::new(), raw: BytesMut::new(), tracking: false }
    }

    fn tracking() -> Sink {
        Sink { pieces: Vec::new(), raw: BytesMut::new(), tracking: true }
    }

    fn raw(&mut self, b: &[u8]) {
        if !self.tracking {
            self.raw.extend_from_slice(b);
        }
    }

    fn unit(&mut self, u: Unit) {
        self.flush();
        self.pieces.push(Piece::Unit(u));
    }

    fn flush(&mut self) {
        if !self.raw.is_empty() {
            self.pieces.push(Piece::Raw(self.raw.split().freeze()));
        }
    }

    /// The pieces produced so far, raw bytes coalesced.
    pub fn take(&mut self) -> std::vec::IntoIter<Piece> {
        self.flush();
        std::mem::take(&mut self.pieces).into_iter()
    }
}

impl Default for Sink {
    fn default() -> Self {
        Sink::new()
    }
}

/// Requests remembered per HTTP connection while their responses are outstanding.
const MAX_OUTSTANDING: usize = 1024;

/// What the two directions of one HTTP connection share: whether it was upgraded to
/// WebSocket, and, per request in order, whether its response must be swallowed (the
/// answer to a request the proxy duplicated).
#[derive(Debug, Default)]
pub struct HttpLink {
    upgraded: AtomicBool,
    swallow: Mutex<VecDeque<bool>>,
    /// Entries of `swallow` that are `true`, so the response side can tell cheaply that it
    /// must leave the fast path. Relaxed: both sides also take the mutex to act on it.
    pending_swallows: AtomicUsize,
}

impl HttpLink {
    fn queue(&self) -> MutexGuard<'_, VecDeque<bool>> {
        // Plain data; a panic elsewhere cannot leave it inconsistent.
        self.swallow.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A request went upstream; `swallow`: its response must not reach the client.
    pub fn request_sent(&self, swallow: bool) {
        let mut q = self.queue();
        // Responses that are never parsed (framing given up on) must not grow this forever.
        if q.len() >= MAX_OUTSTANDING && q.pop_front() == Some(true) {
            self.pending_swallows.fetch_sub(1, Ordering::Relaxed);
        }
        q.push_back(swallow);
        if swallow {
            self.pending_swallows.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The request announced last was dropped after all: no response will come for it.
    pub fn request_dropped(&self) {
        if self.queue().pop_back() == Some(true) {
            self.pending_swallows.fetch_sub(1, Ordering::Relaxed);
        }
    }

    fn next_response_swallowed(&self) -> bool {
        self.queue().front().copied().unwrap_or(false)
    }

    fn response_started(&self) -> bool {
        let swallow = self.queue().pop_front().unwrap_or(false);
        if swallow {
            self.pending_swallows.fetch_sub(1, Ordering::Relaxed);
        }
        swallow
    }
}

/// The framing state of one direction of one connection.
pub struct Framer {
    kind: Kind,
}

enum Kind {
    Raw,
    Lines(lines::Lines),
    Http(Box<http::Http>),
}

impl Framer {
    /// `upstream`: this direction carries client-to-server bytes (requests).
    pub fn new(framing: Framing, upstream: bool, max_message: usize, link: Option<Arc<HttpLink>>) -> Framer {
        let kind = match framing {
            Framing::Raw => Kind::Raw,
            Framing::Lines => Kind::Lines(lines::Lines::new(max_message)),
            Framing::Http => Kind::Http(Box::new(http::Http::new(upstream, max_message, link.unwrap_or_default()))),
        };
        Framer { kind }
    }

    /// Follows bytes forwarded as they are (the fast path). Only valid while [`Framer::idle`].
    pub fn track(&mut self, data: &[u8]) {
        let mut sink = Sink::tracking();
        self.feed(data, false, &mut sink);
        debug_assert!(sink.pieces.is_empty() && sink.raw.is_empty());
    }

    /// Splits `data` into raw pieces and, while `units` is asked for, whole messages.
    pub fn push(&mut self, data: &[u8], units: bool, sink: &mut Sink) {
        self.feed(data, units, sink);
    }

    fn feed(&mut self, data: &[u8], units: bool, sink: &mut Sink) {
        match &mut self.kind {
            Kind::Raw => sink.raw(data),
            Kind::Lines(l) => l.feed(data, units, sink),
            Kind::Http(h) => h.feed(data, units, sink),
        }
    }

    /// At end of input: whatever is held goes out as it came.
    pub fn finish(&mut self, sink: &mut Sink) {
        match &mut self.kind {
            Kind::Raw => {}
            Kind::Lines(l) => l.finish(sink),
            Kind::Http(h) => h.finish(sink),
        }
    }

    /// Whether nothing is held and bytes may be forwarded directly.
    pub fn idle(&self) -> bool {
        match &self.kind {
            Kind::Raw => true,
            Kind::Lines(l) => l.idle(),
            Kind::Http(h) => h.idle(),
        }
    }
}

#[cfg(test)]
pub(crate) mod testing {
    use super::*;

    /// Feeds `input` in chunks of `step` bytes; returns the re-encoded output and the units.
    pub fn run(framer: &mut Framer, input: &[u8], step: usize, units: bool) -> (Vec<u8>, Vec<Unit>) {
        let mut out = Vec::new();
        let mut got = Vec::new();
        let mut sink = Sink::new();
        for chunk in input.chunks(step.max(1)) {
            framer.push(chunk, units, &mut sink);
            collect(&mut sink, &mut out, &mut got);
        }
        framer.finish(&mut sink);
        collect(&mut sink, &mut out, &mut got);
        (out, got)
    }

    fn collect(sink: &mut Sink, out: &mut Vec<u8>, got: &mut Vec<Unit>) {
        for p in sink.take() {
            match p {
                Piece::Raw(b) => out.extend_from_slice(&b),
                Piece::Unit(u) => {
                    out.extend_from_slice(&u.encode());
                    got.push(u);
                }
            }
        }
    }
}
