//! WebSocket frames (RFC 6455): a unit is a single-frame data message (FIN set, text or
//! binary, no extension bits), unmasked for the faults and masked again with the same key
//! when re-emitted, its length re-encoded. Control frames, fragments and compressed
//! frames pass through.

use super::{Envelope, Sink, Unit};
use bytes::BytesMut;

enum State {
    /// Reading a frame header: the bytes so far.
    Header { buf: [u8; 14], have: usize },
    /// Inside a payload: bytes left, and the header of this frame.
    Payload { remaining: u64, b0: u8, mask: Option<[u8; 4]> },
}

pub struct Ws {
    state: State,
    /// The frame being assembled as a unit: its header and payload bytes as received.
    hold: Option<Vec<u8>>,
    max: usize,
}

impl Ws {
    pub fn new(max: usize) -> Ws {
        Ws { state: State::Header { buf: [0; 14], have: 0 }, hold: None, max }
    }

    pub fn idle(&self) -> bool {
        self.hold.is_none()
    }

    pub fn feed(&mut self, mut data: &[u8], units: bool, sink: &mut Sink) {
        while !data.is_empty() {
            match &mut self.state {
                State::Header { buf, have } => {
                    if *have == 0 && units && self.hold.is_none() {
                        self.hold = Some(Vec::new());
                    }
                    let need = header_len(&buf[..*have]);
                    let take = (need - *have).min(data.len());
                    buf[*have..*have + take].copy_from_slice(&data[..take]);
                    *have += take;
                    match &mut self.hold {
                        Some(h) => h.extend_from_slice(&data[..take]),
                        None => sink.raw(&data[..take]),
                    }
                    data = &data[take..];
                    if *have < 2 || *have < header_len(&buf[..*have]) {
                        continue;
                    }
                    let (b0, len, mask) = parse_header(&buf[..*have]);
                    if len > self.max as u64 {
                        if let Some(h) = self.hold.take() {
                            sink.raw(&h);
                        }
                    }
                    self.state = State::Payload { remaining: len, b0, mask };
                    if len == 0 {
                        self.end_frame(sink);
                    }
                }
                State::Payload { remaining, .. } => {
                    let take = (*remaining).min(data.len() as u64) as usize;
                    match &mut self.hold {
                        Some(h) => h.extend_from_slice(&data[..take]),
                        None => sink.raw(&data[..take]),
                    }
                    *remaining -= take as u64;
                    data = &data[take..];
                    if *remaining == 0 {
                        self.end_frame(sink);
                    }
                }
            }
        }
    }

    fn end_frame(&mut self, sink: &mut Sink) {
        let State::Payload { b0, mask, .. } = self.state else { return };
        self.state = State::Header { buf: [0; 14], have: 0 };
        let Some(frame) = self.hold.take() else { return };
        let opcode = b0 & 0x0f;
        let is_message = b0 & 0x80 != 0 && b0 & 0x70 == 0 && (opcode == 1 || opcode == 2);
        if !is_message {
            sink.raw(&frame);
            return;
        }
        let header = header_len(&frame);
        let mut payload = frame[header..].to_vec();
        if let Some(key) = mask {
            apply_mask(&mut payload, key);
        }
        if !super::looks_like_json(&payload) {
            sink.raw(&frame);
            return;
        }
        sink.unit(Unit { payload, envelope: Envelope::Ws { b0, mask } });
    }

    pub fn finish(&mut self, sink: &mut Sink) {
        if let Some(h) = self.hold.take() {
            sink.raw(&h);
        }
    }
}

/// The header length implied by the bytes so far (2 until the second byte is known).
fn header_len(b: &[u8]) -> usize {
    if b.len() < 2 {
        return 2;
    }
    let ext = match b[1] & 0x7f {
        126 => 2,
        127 => 8,
        _ => 0,
    };
    2 + ext + if b[1] & 0x80 != 0 { 4 } else { 0 }
}

/// First byte, payload length and mask key of a complete header.
fn parse_header(b: &[u8]) -> (u8, u64, Option<[u8; 4]>) {
    let (len, at) = match b[1] & 0x7f {
        126 => (u16::from_be_bytes([b[2], b[3]]) as u64, 4),
        127 => (u64::from_be_bytes(b[2..10].try_into().unwrap_or([0; 8])), 10),
        n => (n as u64, 2),
    };
    let mask = (b[1] & 0x80 != 0).then(|| [b[at], b[at + 1], b[at + 2], b[at + 3]]);
    (b[0], len, mask)
}

fn apply_mask(data: &mut [u8], key: [u8; 4]) {
    for (i, b) in data.iter_mut().enumerate() {
        *b ^= key[i & 3];
    }
}

/// Appends one frame: header with the minimal length encoding, then the payload, masked
/// with `mask` when given.
pub fn encode_frame(out: &mut BytesMut, b0: u8, mask: Option<[u8; 4]>, payload: &[u8]) {
    let mask_bit = if mask.is_some() { 0x80 } else { 0 };
    out.extend_from_slice(&[b0]);
    let len = payload.len();
    if len < 126 {
        out.extend_from_slice(&[mask_bit | len as u8]);
    } else if len <= u16::MAX as usize {
        out.extend_from_slice(&[mask_bit | 126]);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.extend_from_slice(&[mask_bit | 127]);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
    match mask {
        Some(key) => {
            out.extend_from_slice(&key);
            let start = out.len();
            out.extend_from_slice(payload);
            apply_mask(&mut out[start..], key);
        }
        None => out.extend_from_slice(payload),
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Envelope, Sink};
    use super::*;

    fn frame(b0: u8, mask: Option<[u8; 4]>, payload: &[u8]) -> Vec<u8> {
        let mut out = BytesMut::new();
        encode_frame(&mut out, b0, mask, payload);
        out.to_vec()
    }

    fn run(ws: &mut Ws, input: &[u8], step: usize, units: bool) -> (Vec<u8>, Vec<Unit>) {
        let mut sink = Sink::new();
        for c in input.chunks(step) {
            ws.feed(c, units, &mut sink);
        }
        ws.finish(&mut sink);
        let (mut out, mut got) = (vec![], vec![]);
        for p in sink.take() {
            match p {
                super::super::Piece::Raw(b) => out.extend_from_slice(&b),
                super::super::Piece::Unit(u) => {
                    out.extend_from_slice(&u.encode());
                    got.push(u);
                }
            }
        }
        (out, got)
    }

    #[test]
    fn unmasks_and_remasks_messages_of_every_length_class() {
        let key = Some([1, 2, 3, 4]);
        let json = |n: usize| format!("[\"{}\"]", "x".repeat(n - 4)).into_bytes();
        let big = json(70_000);
        let mut input = frame(0x81, key, b"{\"id\":1}");
        input.extend(frame(0x89, None, b"ping")); // control frame: raw
        input.extend(frame(0x82, None, &json(300)));
        input.extend(frame(0x81, None, b"not json")); // raw
        input.extend(frame(0x81, key, &big));
        for step in [1, 7, 1 << 20] {
            let mut ws = Ws::new(1 << 20);
            let (out, units) = run(&mut ws, &input, step, true);
            assert_eq!(out, input, "step {step}");
            assert_eq!(units.len(), 3);
            assert_eq!(units[0].payload, b"{\"id\":1}");
            assert_eq!(units[2].payload.len(), 70_000);
        }
    }

    #[test]
    fn re_encodes_a_shorter_payload_with_its_mask() {
        let mut ws = Ws::new(1 << 20);
        let payload = format!("[{}]", "1,".repeat(100));
        let (_, mut units) = run(&mut ws, &frame(0x81, Some([9, 8, 7, 6]), payload.as_bytes()), 5, true);
        let mut u = units.remove(0);
        u.payload.truncate(3);
        assert!(matches!(u.envelope, Envelope::Ws { .. }));
        assert_eq!(u.encode().to_vec(), frame(0x81, Some([9, 8, 7, 6]), b"[1,"));
    }

    #[test]
    fn passes_fragments_and_oversized_frames_through() {
        let mut input = frame(0x01, None, b"{\"par"); // not FIN
        input.extend(frame(0x80, None, b"t\":1}"));
        input.extend(frame(0x81, None, format!("[{}]", "0,".repeat(30)).as_bytes()));
        let mut ws = Ws::new(10);
        let (out, units) = run(&mut ws, &input, 3, true);
        assert_eq!(out, input);
        assert!(units.is_empty());
    }
}
