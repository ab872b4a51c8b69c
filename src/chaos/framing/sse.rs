//! Server-sent events inside an HTTP response body: events (blocks ending in a blank line)
//! whose `data:` lines hold a JSON-RPC message are units; each is re-emitted as its own
//! chunk (or as it came, for a body that runs until close), so it can change size.

use super::chunked::{self, Event};
use super::{Envelope, Sink, Unit};

/// An SSE body. While `units` is latched, events are assembled and re-emitted one per
/// chunk (or as they are, for a body that runs until close); otherwise bytes pass and only
/// the event boundary is tracked, so units can start at the next boundary.
pub struct Sse {
    chunked: bool,
    pub units: bool,
    /// Decoded bytes of the event being assembled (units mode).
    block: Vec<u8>,
    /// Where the current line of `block` starts.
    line_start: usize,
    /// The last decoded bytes (passthrough), to tell whether the stream is between events.
    tail: [u8; 3],
    /// The last chunk was seen: what follows is trailers, forwarded as they are.
    after_last: bool,
    /// The body had a Content-Length and goes out chunked: units stay on to its end.
    pub from_length: bool,
}

impl Sse {
    /// A complete stream that had a Content-Length and goes out chunked, units on to its end.
    pub fn from_length() -> Sse {
        let mut s = Sse::new(true, true);
        s.from_length = true;
        s
    }

    pub fn new(chunked: bool, units: bool) -> Sse {
        // The start of the stream is a boundary.
        Sse {
            chunked,
            units,
            block: Vec::new(),
            line_start: 0,
            tail: *b"\n\n\n",
            after_last: false,
            from_length: false,
        }
    }

    fn at_boundary(&self) -> bool {
        self.tail.ends_with(b"\n\n") || self.tail.ends_with(b"\n\r\n")
    }

    fn track(&mut self, data: &[u8]) {
        for &b in &data[data.len().saturating_sub(3)..] {
            self.tail.rotate_left(1);
            self.tail[2] = b;
        }
    }

    /// A chunked-body event.
    pub fn chunk_event(&mut self, e: Event<'_>, units: bool, sink: &mut Sink) {
        if !self.units {
            match e {
                Event::Frame(b) => sink.raw(b),
                Event::Data(b) => {
                    sink.raw(b);
                    self.track(b);
                }
                Event::ChunkEnd if units && self.at_boundary() => self.units = true,
                _ => {}
            }
            return;
        }
        match e {
            Event::Frame(b) if self.after_last => sink.raw(b),
            Event::Frame(_) => {}
            Event::Data(b) => {
                self.block.extend_from_slice(b);
                self.take_events(sink);
            }
            Event::Start(0) => {
                self.flush(sink);
                self.after_last = true;
                sink.raw(b"0\r\n");
            }
            Event::ChunkEnd if !units && self.block.is_empty() => {
                self.units = false;
                self.tail = *b"\n\n\n";
            }
            _ => {}
        }
    }

    /// Body bytes of a body that runs until the connection closes.
    pub fn data(&mut self, data: &[u8], units: bool, sink: &mut Sink) {
        if self.units {
            self.block.extend_from_slice(data);
            self.take_events(sink);
            if !units && !self.from_length && self.block.is_empty() {
                self.units = false;
                self.tail = *b"\n\n\n";
            }
        } else {
            sink.raw(data);
            self.track(data);
            if units && self.at_boundary() {
                self.units = true;
            }
        }
    }

    /// Emits every complete event in `block`.
    fn take_events(&mut self, sink: &mut Sink) {
        let mut i = self.line_start;
        let mut consumed = 0;
        while let Some(p) = memchr::memchr(b'\n', &self.block[i..]) {
            let nl = i + p;
            let line = &self.block[self.line_start..nl];
            let empty = line.is_empty() || line == b"\r";
            i = nl + 1;
            self.line_start = i;
            if empty {
                let event = self.block[consumed..i].to_vec();
                self.emit(event, sink);
                consumed = i;
            }
        }
        if consumed > 0 {
            self.block.drain(..consumed);
            self.line_start -= consumed;
        }
    }

    fn emit(&self, event: Vec<u8>, sink: &mut Sink) {
        let mut other = Vec::new();
        let mut data: Vec<&[u8]> = Vec::new();
        for line in event.split(|b| *b == b'\n') {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if line.is_empty() {
                continue;
            }
            match line.strip_prefix(b"data:") {
                Some(d) => data.push(d.strip_prefix(b" ").unwrap_or(d)),
                None => {
                    other.extend_from_slice(line);
                    other.push(b'\n');
                }
            }
        }
        let payload = data.join(&b'\n');
        if !super::looks_like_json(&payload) {
            self.raw_block(&event, sink);
            return;
        }
        sink.unit(Unit { payload, envelope: Envelope::Sse { other, chunked: self.chunked } });
    }

    fn raw_block(&self, block: &[u8], sink: &mut Sink) {
        if self.chunked {
            let mut out = bytes::BytesMut::new();
            chunked::encode_chunk(&mut out, block);
            sink.raw(&out);
        } else {
            sink.raw(block);
        }
    }

    /// Forwards a partial event as it is (at the end of the body or stream).
    pub fn flush(&mut self, sink: &mut Sink) {
        if self.units && !self.block.is_empty() {
            let block = std::mem::take(&mut self.block);
            self.raw_block(&block, sink);
            self.line_start = 0;
        }
    }
}
