//! Newline-delimited JSON-RPC: a message is a non-blank line. Units start at a line
//! boundary; a line that began while units were not wanted passes through whole.

use super::{Envelope, Sink, Unit};

pub struct Lines {
    /// The last byte seen ended a line (or nothing was seen yet).
    at_start: bool,
    /// The line being assembled as a unit.
    hold: Option<Vec<u8>>,
    max: usize,
}

impl Lines {
    pub fn new(max: usize) -> Lines {
        Lines { at_start: true, hold: None, max }
    }

    pub fn idle(&self) -> bool {
        self.hold.is_none()
    }

    pub fn feed(&mut self, mut data: &[u8], units: bool, sink: &mut Sink) {
        while !data.is_empty() {
            if let Some(hold) = &mut self.hold {
                match memchr::memchr(b'\n', data) {
                    Some(i) => {
                        hold.extend_from_slice(&data[..=i]);
                        data = &data[i + 1..];
                        let line = self.hold.take().unwrap_or_default();
                        self.at_start = true;
                        emit_line(line, sink);
                    }
                    None => {
                        hold.extend_from_slice(data);
                        if hold.len() > self.max {
                            // Too long to be a message we model: let it through as it is.
                            sink.raw(hold);
                            self.hold = None;
                            self.at_start = false;
                        }
                        return;
                    }
                }
            } else if units && self.at_start {
                self.hold = Some(Vec::new());
            } else if !units {
                self.at_start = data.last() == Some(&b'\n');
                sink.raw(data);
                return;
            } else {
                // Units wanted, but this line started before: forward it to its end.
                match memchr::memchr(b'\n', data) {
                    Some(i) => {
                        sink.raw(&data[..=i]);
                        data = &data[i + 1..];
                        self.at_start = true;
                    }
                    None => {
                        sink.raw(data);
                        return;
                    }
                }
            }
        }
    }

    pub fn finish(&mut self, sink: &mut Sink) {
        if let Some(hold) = self.hold.take() {
            sink.raw(&hold);
        }
    }
}

/// A complete line (with its `\n`) becomes a unit, or raw bytes when blank.
fn emit_line(mut line: Vec<u8>, sink: &mut Sink) {
    line.pop();
    let crlf = line.last() == Some(&b'\r');
    if crlf {
        line.pop();
    }
    if !super::looks_like_json(&line) {
        line.extend_from_slice(if crlf { b"\r\n" } else { b"\n" });
        sink.raw(&line);
        return;
    }
    sink.unit(Unit { payload: line, envelope: Envelope::Line { crlf } });
}

#[cfg(test)]
mod tests {
    use super::super::testing::run;
    use super::super::{Framer, Framing};

    #[test]
    fn splits_lines_at_any_chunking() {
        let input = b"{\"a\":1}\n\r\n{\"b\":2}\r\n{\"c\"";
        for step in [1, 2, 5, 100] {
            let mut f = Framer::new(Framing::Lines, false, 1 << 20, None);
            let (out, units) = run(&mut f, input, step, true);
            assert_eq!(out, input, "step {step}");
            let payloads: Vec<_> = units.iter().map(|u| String::from_utf8(u.payload.clone()).unwrap()).collect();
            assert_eq!(payloads, ["{\"a\":1}", "{\"b\":2}"], "step {step}");
        }
    }

    #[test]
    fn a_line_started_in_passthrough_is_not_a_unit() {
        let mut f = Framer::new(Framing::Lines, false, 1 << 20, None);
        f.track(b"{\"half");
        let (out, units) = run(&mut f, b"\":1}\n{\"next\":2}\n", 3, true);
        assert_eq!(out, b"\":1}\n{\"next\":2}\n");
        assert_eq!(units.len(), 1);
        assert_eq!(units[0].payload, b"{\"next\":2}");
    }

    #[test]
    fn oversized_lines_pass_through() {
        let mut f = Framer::new(Framing::Lines, false, 8, None);
        let input = b"{\"long line\":123456}\n{}\n";
        let (out, units) = run(&mut f, input, 4, true);
        assert_eq!(out, input);
        assert_eq!(units.len(), 1);
    }
}
