//! HTTP/1.1 chunked transfer coding, decoded incrementally: every input byte is reported
//! either as framing (size lines, CRLFs, trailers) or as body data, in order, so a caller
//! can forward framing as it came or re-chunk the data.

use bytes::BytesMut;

#[derive(Debug, PartialEq)]
pub enum Event<'a> {
    /// Framing bytes (part of a size line, a CRLF after data, trailers).
    Frame(&'a [u8]),
    /// Body bytes.
    Data(&'a [u8]),
    /// A size line was complete: a chunk of this many bytes follows (0: the last chunk).
    Start(u64),
    /// A chunk's data and its CRLF are complete: the input is at a chunk boundary.
    ChunkEnd,
    /// The body is complete (after the trailers' empty line).
    End,
}

#[derive(Debug)]
enum State {
    /// In a size line; the bytes so far (bounded), for parsing.
    Size {
        line: Vec<u8>,
    },
    Data {
        remaining: u64,
    },
    /// The CRLF after a chunk's data: bytes still expected.
    DataEnd {
        left: u8,
    },
    /// In the trailer section: length of the current trailer line so far.
    Trailer {
        line: usize,
    },
    Done,
}

#[derive(Debug)]
pub struct Decoder {
    state: State,
}

impl Decoder {
    pub fn new() -> Decoder {
        Decoder { state: State::Size { line: Vec::new() } }
    }

    /// Consumes as much of `data` as belongs to this body, reporting events; returns the
    /// number of bytes consumed (less than `data.len()` only once the body ended).
    pub fn feed(&mut self, data: &[u8], on: &mut dyn FnMut(Event<'_>)) -> usize {
        let mut i = 0;
        while i < data.len() {
            let rest = &data[i..];
            match &mut self.state {
                State::Size { line } => {
                    let (take, done) = match memchr::memchr(b'\n', rest) {
                        Some(n) => (n + 1, true),
                        None => (rest.len(), false),
                    };
                    if line.len() < 1024 {
                        line.extend_from_slice(&rest[..take.min(1024)]);
                    }
                    on(Event::Frame(&rest[..take]));
                    i += take;
                    if done {
                        let size = parse_size(line);
                        on(Event::Start(size));
                        self.state =
                            if size == 0 { State::Trailer { line: 0 } } else { State::Data { remaining: size } };
                    }
                }
                State::Data { remaining } => {
                    let take = (*remaining).min(rest.len() as u64) as usize;
                    on(Event::Data(&rest[..take]));
                    *remaining -= take as u64;
                    i += take;
                    if *remaining == 0 {
                        self.state = State::DataEnd { left: 2 };
                    }
                }
                State::DataEnd { left } => {
                    // Tolerates a bare LF: the CRLF ends at the first LF.
                    let take = match memchr::memchr(b'\n', &rest[..rest.len().min(*left as usize)]) {
                        Some(n) => n + 1,
                        None => rest.len().min(*left as usize),
                    };
                    let ended = rest[take - 1] == b'\n' || take == *left as usize;
                    on(Event::Frame(&rest[..take]));
                    i += take;
                    *left -= take as u8;
                    if ended {
                        self.state = State::Size { line: Vec::new() };
                        on(Event::ChunkEnd);
                    }
                }
                State::Trailer { line } => {
                    let (take, done) = match memchr::memchr(b'\n', rest) {
                        Some(n) => (n + 1, true),
                        None => (rest.len(), false),
                    };
                    on(Event::Frame(&rest[..take]));
                    i += take;
                    let len = *line + take;
                    if done {
                        // An empty line ("\r\n" or "\n") ends the trailers.
                        if len <= 2 {
                            self.state = State::Done;
                            on(Event::End);
                            return i;
                        }
                        *line = 0;
                    } else {
                        *line = len;
                    }
                }
                State::Done => return i,
            }
        }
        i
    }
}

/// The hexadecimal size at the start of a size line (extensions after `;` ignored);
/// unreadable sizes count as 0, ending the body.
fn parse_size(line: &[u8]) -> u64 {
    let mut n: u64 = 0;
    for &b in line.iter().skip_while(|b| **b == b' ') {
        let d = match b {
            b'0'..=b'9' => b - b'0',
            b'a'..=b'f' => b - b'a' + 10,
            b'A'..=b'F' => b - b'A' + 10,
            _ => break,
        };
        n = n.saturating_mul(16).saturating_add(d as u64);
    }
    n
}

/// Appends `data` as one chunk (nothing for empty data, which would end the body).
pub fn encode_chunk(out: &mut BytesMut, data: &[u8]) {
    if data.is_empty() {
        return;
    }
    out.extend_from_slice(format!("{:x}\r\n", data.len()).as_bytes());
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(input: &[u8], step: usize) -> (Vec<u8>, Vec<u8>, usize, bool) {
        let mut d = Decoder::new();
        let (mut frame, mut data, mut consumed, mut ended) = (vec![], vec![], 0, false);
        for c in input.chunks(step) {
            if ended {
                break;
            }
            consumed += d.feed(c, &mut |e| match e {
                Event::Frame(b) => frame.extend_from_slice(b),
                Event::Data(b) => data.extend_from_slice(b),
                Event::End => ended = true,
                _ => {}
            });
        }
        (frame, data, consumed, ended)
    }

    #[test]
    fn decodes_at_any_chunking() {
        let input = b"5;ext=1\r\nhello\r\n1A\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\nX-T: 1\r\n\r\nNEXT";
        for step in [1, 3, 1000] {
            let (frame, data, consumed, ended) = decode(input, step);
            assert!(ended);
            assert_eq!(data, b"helloabcdefghijklmnopqrstuvwxyz");
            assert_eq!(consumed, input.len() - 4, "step {step}");
            assert_eq!(frame.len() + data.len(), consumed);
        }
    }

    #[test]
    fn encodes_chunks() {
        let mut out = BytesMut::new();
        encode_chunk(&mut out, &[b'a'; 17]);
        encode_chunk(&mut out, b"");
        assert_eq!(&out[..4], b"11\r\n");
        assert_eq!(out.len(), 4 + 17 + 2);
    }
}
