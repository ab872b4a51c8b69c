//! A bounded, allocation-frugal line reader for newline-delimited JSON-RPC. The buffer
//! starts small and grows only as far as the longest line seen (up to a configurable
//! maximum), so many idle connections stay cheap.

use tokio::io::{AsyncRead, AsyncReadExt};

/// Why reading a line failed.
#[derive(Debug, thiserror::Error)]
pub enum LineError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("message exceeds the limit of {limit} bytes")]
    TooLong { limit: usize },
}

/// Reads `\n`-terminated lines (a trailing `\r` is dropped; blank lines are skipped).
pub struct LineReader<R> {
    inner: R,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    /// Bytes of `buf[start..end]` already searched for a newline.
    scanned: usize,
    max: usize,
}

impl<R: AsyncRead + Unpin> LineReader<R> {
    /// `initial` is the first buffer size; `max` the longest accepted line.
    pub fn new(inner: R, initial: usize, max: usize) -> Self {
        LineReader { inner, buf: vec![0; initial.max(64)], start: 0, end: 0, scanned: 0, max }
    }

    /// Whether a complete line is already buffered, so the caller may answer it before
    /// flushing what it has (batching replies into one write).
    pub fn has_buffered_line(&self) -> bool {
        memchr::memchr(b'\n', &self.buf[self.start + self.scanned..self.end]).is_some()
    }

    /// The next non-empty line without its terminator; `Ok(None)` at end of input. A final
    /// line without a newline is returned too.
    pub async fn next_line(&mut self) -> Result<Option<&[u8]>, LineError> {
        loop {
            let from = self.start + self.scanned;
            if let Some(pos) = memchr::memchr(b'\n', &self.buf[from..self.end]) {
                let line_start = self.start;
                let mut line_end = from + pos;
                self.start = line_end + 1;
                self.scanned = 0;
                if line_end > line_start && self.buf[line_end - 1] == b'\r' {
                    line_end -= 1;
                }
                if line_end == line_start {
                    continue;
                }
                if line_end - line_start > self.max {
                    return Err(LineError::TooLong { limit: self.max });
                }
                return Ok(Some(&self.buf[line_start..line_end]));
            }
            self.scanned = self.end - self.start;
            if self.scanned > self.max {
                return Err(LineError::TooLong { limit: self.max });
            }
            self.make_room();
            let n = self.inner.read(&mut self.buf[self.end..]).await?;
            if n == 0 {
                if self.end == self.start {
                    return Ok(None);
                }
                // A final unterminated line.
                let (a, b) = (self.start, self.end);
                self.start = self.end;
                self.scanned = 0;
                let line = self.buf[a..b].trim_ascii();
                return Ok(if line.is_empty() { None } else { Some(line) });
            }
            self.end += n;
        }
    }

    /// Moves pending bytes to the front, then doubles the buffer when still full.
    fn make_room(&mut self) {
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.end == self.buf.len() {
            let grown = (self.buf.len() * 2).min(self.max + 2).max(self.buf.len() + 1);
            self.buf.resize(grown, 0);
        }
    }

    /// Shrinks an oversized buffer back after a burst of large messages.
    pub fn shrink_to(&mut self, size: usize) {
        if self.start == self.end && self.buf.len() > size {
            self.start = 0;
            self.end = 0;
            self.scanned = 0;
            self.buf.truncate(size);
            self.buf.shrink_to_fit();
        }
    }

    pub fn get_mut(&mut self) -> &mut R {
        &mut self.inner
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn lines(input: &[u8], initial: usize, max: usize) -> Result<Vec<String>, LineError> {
        let mut r = LineReader::new(input, initial, max);
        let mut out = vec![];
        while let Some(l) = r.next_line().await? {
            out.push(String::from_utf8(l.to_vec()).unwrap());
        }
        Ok(out)
    }

    #[tokio::test]
    async fn splits_lines_and_grows() {
        let input = format!("a\r\n\n{}\nc", "b".repeat(78));
        let got = lines(input.as_bytes(), 64, 1000).await.unwrap();
        assert_eq!(got.len(), 3);
        assert_eq!(got[0], "a");
        assert_eq!(got[1].len(), 78);
        assert_eq!(got[2], "c");
    }

    #[tokio::test]
    async fn rejects_lines_over_the_limit() {
        let long = vec![b'x'; 500];
        assert!(matches!(lines(&long, 64, 100).await, Err(LineError::TooLong { limit: 100 })));
        let mut with_nl = vec![b'y'; 150];
        with_nl.push(b'\n');
        assert!(matches!(lines(&with_nl, 64, 100).await, Err(LineError::TooLong { .. })));
    }

    #[tokio::test]
    async fn reports_buffered_lines() {
        let mut r = LineReader::new(&b"one\ntwo\n"[..], 64, 100);
        assert_eq!(r.next_line().await.unwrap().unwrap(), b"one");
        assert!(r.has_buffered_line());
        assert_eq!(r.next_line().await.unwrap().unwrap(), b"two");
        assert!(!r.has_buffered_line());
        assert!(r.next_line().await.unwrap().is_none());
    }
}
