//! HTTP/1.1 pieces shared by the lean client connections of load phases and the built-in
//! server's lean connections: how a message body is delimited ([`Framing`]) and its
//! incremental decoding ([`decode`]: `Content-Length`, chunked, or until the connection
//! closes, split anywhere), and the per-thread spare buffers ([`Spare`]) that a request
//! in flight borrows for its bytes and gives back, so that an idle connection holds no
//! buffer and the steady state allocates none; and how header values are searched
//! ([`contains_ignore_case`], [`starts_with_ignore_case`]).

use std::cell::RefCell;

/// Largest message head (request or status line plus headers), and chunk trailer, accepted.
pub const MAX_HEAD: usize = 64 * 1024;
/// Initial size of a spare buffer (grown only for large messages).
pub const READ_CHUNK: usize = 2048;

/// Whether `needle` occurs in `hay`, ASCII case ignored (header values: `Accept`,
/// `Content-Type`, `Connection`). Only windows that start with the needle's first letter
/// are compared whole: it runs over header values of every request.
pub fn contains_ignore_case(hay: &[u8], needle: &[u8]) -> bool {
    let Some(first) = needle.first().map(u8::to_ascii_lowercase) else { return true };
    hay.windows(needle.len()).any(|w| w[0].to_ascii_lowercase() == first && w.eq_ignore_ascii_case(needle))
}

/// Whether `hay` starts with `prefix`, ASCII case ignored (a media type before its
/// parameters).
pub fn starts_with_ignore_case(hay: &[u8], prefix: &[u8]) -> bool {
    hay.len() >= prefix.len() && hay[..prefix.len()].eq_ignore_ascii_case(prefix)
}

/// How a message body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    Length(u64),
    Chunked(Chunk),
    UntilClose,
    Done,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Chunk {
    Size,
    Data(u64),
    DataEnd,
    Trailer,
}

/// A body whose framing is broken (the connection cannot be used any further).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadFraming(pub &'static str);

impl std::fmt::Display for BadFraming {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

/// Decodes what `input` holds of the body, handing body bytes to `out`. Returns how much
/// of `input` was consumed and whether `out` said it has what it needs.
pub fn decode<E: From<BadFraming>>(
    framing: &mut Framing,
    input: &[u8],
    out: &mut (dyn FnMut(&[u8]) -> Result<bool, E> + Send),
) -> Result<(usize, bool), E> {
    let mut pos = 0;
    let mut satisfied = false;
    loop {
        let rest = &input[pos..];
        match framing {
            Framing::Done => break,
            Framing::UntilClose => {
                if !rest.is_empty() {
                    satisfied |= out(rest)?;
                }
                pos = input.len();
                break;
            }
            Framing::Length(left) | Framing::Chunked(Chunk::Data(left)) => {
                if rest.is_empty() {
                    break;
                }
                let n = (*left).min(rest.len() as u64) as usize;
                satisfied |= out(&rest[..n])?;
                pos += n;
                *left -= n as u64;
                if *left == 0 {
                    *framing = match framing {
                        Framing::Length(_) => Framing::Done,
                        _ => Framing::Chunked(Chunk::DataEnd),
                    };
                }
            }
            Framing::Chunked(Chunk::Size) => match httparse::parse_chunk_size(rest) {
                Ok(httparse::Status::Complete((used, size))) => {
                    pos += used;
                    *framing = Framing::Chunked(if size == 0 { Chunk::Trailer } else { Chunk::Data(size) });
                }
                Ok(httparse::Status::Partial) if rest.len() < 1024 => break,
                _ => return Err(BadFraming("a bad chunk size").into()),
            },
            Framing::Chunked(Chunk::DataEnd) => {
                if rest.len() < 2 {
                    break;
                }
                if &rest[..2] != b"\r\n" {
                    return Err(BadFraming("a chunk without its CRLF").into());
                }
                pos += 2;
                *framing = Framing::Chunked(Chunk::Size);
            }
            Framing::Chunked(Chunk::Trailer) => match memchr::memmem::find(rest, b"\r\n") {
                // An empty line ends the trailer section (and the body).
                Some(0) => {
                    pos += 2;
                    *framing = Framing::Done;
                }
                Some(i) => pos += i + 2,
                None if rest.len() < MAX_HEAD => break,
                None => return Err(BadFraming("a chunk trailer is too large").into()),
            },
        }
    }
    Ok((pos, satisfied))
}

/// Buffers of finished exchanges kept per thread for the next ones.
const SPARES_KEPT: usize = 64;
/// Larger buffers are freed rather than kept.
const SPARE_MAX: usize = 64 * 1024;

thread_local! {
    static SPARES: RefCell<Vec<Vec<u8>>> = const { RefCell::new(Vec::new()) };
}

/// A byte buffer from the thread's spares, returned to them (emptied) on drop.
pub struct Spare(pub Vec<u8>);

impl Default for Spare {
    fn default() -> Spare {
        Spare(SPARES.with_borrow_mut(Vec::pop).unwrap_or_else(|| Vec::with_capacity(READ_CHUNK)))
    }
}

impl Drop for Spare {
    fn drop(&mut self) {
        let mut v = std::mem::take(&mut self.0);
        if v.capacity() == 0 || v.capacity() > SPARE_MAX {
            return;
        }
        v.clear();
        let _ = SPARES.try_with(|s| {
            if let Ok(mut s) = s.try_borrow_mut() {
                if s.len() < SPARES_KEPT {
                    s.push(v);
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(framing: Framing, chunks: &[&[u8]]) -> (Vec<u8>, Framing) {
        let (mut body, mut f, mut buf) = (Vec::new(), framing, Vec::new());
        for c in chunks {
            buf.extend_from_slice(c);
            let (used, _) = decode::<BadFraming>(&mut f, &buf, &mut |d| {
                body.extend_from_slice(d);
                Ok(false)
            })
            .unwrap();
            buf.drain(..used);
        }
        (body, f)
    }

    #[test]
    fn decodes_chunked_and_sized_bodies_split_anywhere() {
        let wire: &[u8] = b"5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\nX-T: 1\r\n\r\n";
        for cut in 0..wire.len() {
            let (body, f) = decode_all(Framing::Chunked(Chunk::Size), &[&wire[..cut], &wire[cut..]]);
            assert_eq!((body.as_slice(), f), (&b"hello, world"[..], Framing::Done), "cut at {cut}");
        }
        let bytes: Vec<&[u8]> = wire.chunks(1).collect();
        assert_eq!(decode_all(Framing::Chunked(Chunk::Size), &bytes).0, b"hello, world");
        let (body, f) = decode_all(Framing::Length(4), &[b"ab", b"cdEXTRA"]);
        assert_eq!((body.as_slice(), f), (&b"abcd"[..], Framing::Done));
        let mut f = Framing::Chunked(Chunk::Size);
        assert!(decode::<BadFraming>(&mut f, b"zz\r\n", &mut |_| Ok(false)).is_err());
    }

    #[test]
    fn finds_a_needle_in_any_case_anywhere_and_only_whole() {
        let accept = b"Application/JSON, Text/Event-Stream";
        assert!(contains_ignore_case(accept, b"application/json"));
        assert!(contains_ignore_case(accept, b"text/event-stream"));
        assert!(contains_ignore_case(b"keep-alive, CLOSE", b"close"));
        // A window that starts right but differs later, and a needle longer than the hay.
        assert!(!contains_ignore_case(b"text/event-strean", b"text/event-stream"));
        assert!(!contains_ignore_case(b"json", b"application/json"));
        assert!(contains_ignore_case(b"anything", b""));
    }
}
