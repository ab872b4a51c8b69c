//! An incremental `text/event-stream` parser (the WHATWG server-sent events format), used
//! for Streamable HTTP replies and the legacy SSE stream. Lines end in CRLF, LF or CR;
//! `data:` lines of one event are joined with `\n`; comments (`:`) and events without data
//! (the priming events of Streamable HTTP) are skipped, but their `id:` still counts: the
//! parser keeps the last event id and the last `retry:` delay, which is what a client needs
//! to resume a stream (`Last-Event-ID`) after the server closed it. An event with a single
//! `data:` line (the usual case) is handed out as a slice of the input buffer, without a
//! copy.

use bytes::{Bytes, BytesMut};

/// The `event:` field, reduced to what the MCP transports tell apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// No `event:` field, or `event: message`.
    Message,
    /// `event: endpoint` (legacy SSE: where to POST).
    Endpoint,
    /// Any other event type.
    Other,
}

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub kind: Kind,
    pub data: Bytes,
}

/// An event (or an unterminated line) grew past the size limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooLarge {
    pub limit: usize,
}

enum Data {
    None,
    One(Bytes),
    Many(BytesMut),
}

impl Data {
    fn len(&self) -> usize {
        match self {
            Data::None => 0,
            Data::One(b) => b.len(),
            Data::Many(b) => b.len(),
        }
    }
}

/// Feed chunks with [`push`](EventParser::push), take events with
/// [`next_event`](EventParser::next_event), and call [`finish`](EventParser::finish) at the
/// end of the stream.
pub struct EventParser {
    buf: BytesMut,
    data: Data,
    kind: Kind,
    limit: usize,
    /// The last line ended in CR; a LF at the start of the next chunk belongs to it.
    skip_lf: bool,
    /// Bytes at the start of `buf` already searched for a line end: a long line arriving in
    /// small chunks is searched once, not once per chunk.
    scanned: usize,
    /// The `id:` of the event being read (set on dispatch, as the WHATWG algorithm does).
    pending_id: Option<String>,
    /// The id of the last dispatched event, priming events included.
    last_id: Option<String>,
    /// The last `retry:` field, in milliseconds.
    retry: Option<u64>,
}

impl EventParser {
    /// `limit` bounds the data of one event (and any single line).
    pub fn new(limit: usize) -> Self {
        EventParser {
            buf: BytesMut::new(),
            data: Data::None,
            kind: Kind::Message,
            limit,
            skip_lf: false,
            scanned: 0,
            pending_id: None,
            last_id: None,
            retry: None,
        }
    }

    /// The id of the last event dispatched so far (an event without data counts), for
    /// `Last-Event-ID` when the stream is resumed.
    pub fn last_event_id(&self) -> Option<&str> {
        self.last_id.as_deref()
    }

    /// The reconnection delay the server asked for with `retry:`, if it did.
    pub fn retry(&self) -> Option<std::time::Duration> {
        self.retry.map(std::time::Duration::from_millis)
    }

    /// Appends a chunk of the stream.
    pub fn push(&mut self, chunk: &[u8]) {
        let mut chunk = chunk;
        if self.skip_lf && !chunk.is_empty() {
            self.skip_lf = false;
            if chunk[0] == b'\n' {
                chunk = &chunk[1..];
            }
        }
        self.buf.extend_from_slice(chunk);
    }

    /// The next complete event, if the buffered input holds one.
    pub fn next_event(&mut self) -> Result<Option<Event>, TooLarge> {
        loop {
            let Some(end) = memchr::memchr2(b'\n', b'\r', &self.buf[self.scanned..]).map(|i| self.scanned + i) else {
                self.scanned = self.buf.len();
                if self.buf.len() > self.limit.saturating_add(64) {
                    return Err(TooLarge { limit: self.limit });
                }
                return Ok(None);
            };
            let crlf = self.buf[end] == b'\r';
            self.scanned = 0;
            let mut line = self.buf.split_to(end + 1);
            line.truncate(end);
            if crlf {
                match self.buf.first() {
                    Some(b'\n') => {
                        let _ = self.buf.split_to(1);
                    }
                    Some(_) => {}
                    None => self.skip_lf = true,
                }
            }
            if let Some(event) = self.line(line)? {
                return Ok(Some(event));
            }
        }
    }

    /// At the end of the stream: an event that lacks only its blank line is still handed out.
    pub fn finish(&mut self) -> Result<Option<Event>, TooLarge> {
        if !self.buf.is_empty() {
            self.scanned = 0;
            let line = self.buf.split();
            if let Some(event) = self.line(line)? {
                return Ok(Some(event));
            }
        }
        Ok(self.dispatch())
    }

    fn line(&mut self, mut line: BytesMut) -> Result<Option<Event>, TooLarge> {
        if line.is_empty() {
            return Ok(self.dispatch());
        }
        if line[0] == b':' {
            return Ok(None);
        }
        let (name_end, value_start) = match memchr::memchr(b':', &line) {
            Some(i) if line.get(i + 1) == Some(&b' ') => (i, i + 2),
            Some(i) => (i, i + 1),
            None => (line.len(), line.len()),
        };
        match &line[..name_end] {
            b"data" => {
                let value = line.split_off(value_start);
                if self.data.len() + value.len() + 1 > self.limit {
                    return Err(TooLarge { limit: self.limit });
                }
                self.data = match std::mem::replace(&mut self.data, Data::None) {
                    Data::None => Data::One(value.freeze()),
                    Data::One(first) => {
                        let mut joined = BytesMut::with_capacity(first.len() + 1 + value.len());
                        joined.extend_from_slice(&first);
                        joined.extend_from_slice(b"\n");
                        joined.extend_from_slice(&value);
                        Data::Many(joined)
                    }
                    Data::Many(mut joined) => {
                        joined.extend_from_slice(b"\n");
                        joined.extend_from_slice(&value);
                        Data::Many(joined)
                    }
                };
            }
            b"event" => {
                self.kind = match &line[value_start..] {
                    b"" | b"message" => Kind::Message,
                    b"endpoint" => Kind::Endpoint,
                    _ => Kind::Other,
                };
            }
            // An id with a NUL is ignored, as the WHATWG algorithm says.
            b"id" if !line[value_start..].contains(&0) => {
                self.pending_id = Some(String::from_utf8_lossy(&line[value_start..]).into_owned());
            }
            b"retry" => {
                let v = &line[value_start..];
                if !v.is_empty() && v.iter().all(u8::is_ascii_digit) {
                    self.retry = std::str::from_utf8(v).ok().and_then(|t| t.parse().ok());
                }
            }
            _ => {}
        }
        Ok(None)
    }

    fn dispatch(&mut self) -> Option<Event> {
        if let Some(id) = self.pending_id.take() {
            self.last_id = Some(id);
        }
        let kind = std::mem::replace(&mut self.kind, Kind::Message);
        let data = match std::mem::replace(&mut self.data, Data::None) {
            Data::None => return None,
            Data::One(b) => b,
            Data::Many(b) => b.freeze(),
        };
        // A priming event (id and empty data) carries nothing to deliver.
        if data.is_empty() {
            return None;
        }
        Some(Event { kind, data })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(input: &[&[u8]]) -> Vec<(Kind, String)> {
        let mut p = EventParser::new(1024);
        let mut out = Vec::new();
        for chunk in input {
            p.push(chunk);
            while let Some(e) = p.next_event().unwrap() {
                out.push((e.kind, String::from_utf8(e.data.to_vec()).unwrap()));
            }
        }
        if let Some(e) = p.finish().unwrap() {
            out.push((e.kind, String::from_utf8(e.data.to_vec()).unwrap()));
        }
        out
    }

    #[test]
    fn parses_events_split_anywhere() {
        let text: &[u8] = b"id: 1\ndata:\n\n: comment\nevent: message\nid: 2\ndata: {\"a\":1}\n\nevent: endpoint\ndata: /message?sessionId=x\n\n";
        let expected =
            vec![(Kind::Message, "{\"a\":1}".to_string()), (Kind::Endpoint, "/message?sessionId=x".to_string())];
        assert_eq!(all(&[text]), expected);
        for cut in 0..text.len() {
            assert_eq!(all(&[&text[..cut], &text[cut..]]), expected, "cut at {cut}");
        }
        let bytes: Vec<&[u8]> = text.chunks(1).collect();
        assert_eq!(all(&bytes), expected);
    }

    #[test]
    fn joins_multi_line_data_and_handles_every_line_ending() {
        assert_eq!(all(&[b"data: a\r\ndata:b\r\n\r\n"]), vec![(Kind::Message, "a\nb".into())]);
        assert_eq!(all(&[b"data: a\r", b"\ndata: b\r", b"\r"]), vec![(Kind::Message, "a\nb".into())]);
        assert_eq!(
            all(&[b"event: other\ndata: x\n\ndata: y"]),
            vec![(Kind::Other, "x".into()), (Kind::Message, "y".into())]
        );
    }

    #[test]
    fn a_long_line_in_small_chunks_is_searched_once() {
        // Every chunk used to search the whole unterminated line again: a line of N bytes in
        // chunks of c cost N * N / 2c (2 MiB in 16-byte chunks: 1.4 s in a release build; a
        // hostile server's 16 MiB line, the default limit: minutes). Now linear.
        let mut stream = b"data: ".to_vec();
        stream.resize(4 << 20, b'x');
        stream.extend_from_slice(b"\n\n");
        let mut p = EventParser::new(8 << 20);
        let t0 = std::time::Instant::now();
        let mut events = Vec::new();
        for chunk in stream.chunks(16) {
            p.push(chunk);
            while let Some(e) = p.next_event().unwrap() {
                events.push(e);
            }
        }
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].data.len(), (4 << 20) - 6);
        assert!(t0.elapsed() < std::time::Duration::from_secs(10), "took {:?}", t0.elapsed());
    }

    #[test]
    fn keeps_the_last_event_id_and_retry_delay() {
        let mut p = EventParser::new(1024);
        p.push(b"id: event-1\nretry: 500\ndata: \n\n");
        assert_eq!(p.next_event().unwrap(), None);
        assert_eq!(p.last_event_id(), Some("event-1"));
        assert_eq!(p.retry(), Some(std::time::Duration::from_millis(500)));
        p.push(b"retry: soon\nid: 7\ndata: {}\n\n");
        assert!(p.next_event().unwrap().is_some());
        assert_eq!(p.last_event_id(), Some("7"));
        assert_eq!(p.retry(), Some(std::time::Duration::from_millis(500)), "a non-numeric retry is ignored");
    }

    #[test]
    fn refuses_oversized_events() {
        let mut p = EventParser::new(8);
        p.push(b"data: 12345\ndata: 6789\n\n");
        assert_eq!(p.next_event(), Err(TooLarge { limit: 8 }));
        let mut p = EventParser::new(8);
        p.push(&[b'x'; 100]);
        assert!(p.next_event().is_err());
    }
}
