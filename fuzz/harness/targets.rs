//! The fuzz targets. Each feeds one input to a parser's entry point the way its caller
//! does, then checks what must hold of the result: a panic in the parser or in a check is
//! a crash. The returned hash is the outcome's shape (see [`super::shape`]).

use super::{hash, shape, Target};
use mcpscript::chaos::faults::Fault;
use mcpscript::client::transport::http::events::{Event, EventParser, TooLarge};
use mcpscript::net::lines::{LineError, LineReader};
use mcpscript::protocol::jsonrpc::{self, Invalid, Message, Payload, Response};
use mcpscript::script::threshold::{Observed, Threshold};
use mcpscript::suite::manifest::{self, Dur, Resources, ScenarioFile, SuiteFile};
use serde_json::Value;
use std::future::Future;
use std::pin::pin;
use std::sync::OnceLock;
use std::task::{Context, Poll, Waker};

pub static ALL: &[Target] = &[MANIFEST, JSONRPC, LINES, SSE, THRESHOLD, FAULT];

// ---------------------------------------------------------------------------------------
// manifest: suite files and scenario manifests.

pub const MANIFEST: Target = Target {
    name: "manifest",
    about: "suite.yaml and scenario manifests: manifest::parse::<SuiteFile> and ::<ScenarioFile> (YAML, \
            durations, sizes, command lines), then what the suite loader does with the result: \
            value_text of every parameter, a profile's resources and timeout, find_key and find_value \
            for the places of its errors, the error's Display",
    run: manifest_target,
    max_len: 64 * 1024,
    dict: &[
        "name: ",
        "description: ",
        "script: ",
        "depends_on: ",
        "timeout: ",
        "tags: ",
        "resources:\n  ",
        "connections: ",
        "exclusive: ",
        "server:\n  ",
        "requires:\n  ",
        "tools: ",
        "capabilities: ",
        "managed: ",
        "transports: ",
        "params:\n  ",
        "profiles:\n  ",
        "metrics:\n  - ",
        "better: ",
        "unit: ",
        "workers: ",
        "max_inflight: ",
        "max_connections: ",
        "latency: ",
        "error_rate: ",
        "leak: ",
        "wrong_error_codes: ",
        "collapse: ",
        "stay_down: ",
        "jitter: ",
        "jitter_fraction: ",
        "target: ",
        "shared_server: ",
        "allow_spawn: ",
        "profile: ",
        "parallelism: ",
        "scenarios: ",
        "command: ",
        "env: ",
        "ready: ",
        "log: ",
        "delay: ",
        "restart: ",
        "on-exit",
        "never",
        "higher",
        "lower",
        "none",
        "30s",
        "250ms",
        "1.5s",
        "1e9h",
        "64KB",
        "16MiB",
        "1e20KB",
        "quick",
        "full",
        "tcp",
        "http",
        "stdio",
        "- ",
        ": ",
        ":",
        "&a ",
        "*a",
        "<<: *a",
        "!!str ",
        "!!binary ",
        "!tag ",
        "? ",
        "|\n  ",
        ">-\n  ",
        "---\n",
        "...\n",
        "%YAML 1.2\n",
        "%TAG ! tag:x:\n",
        "# ",
        "\"",
        "'",
        "[",
        "]",
        "{",
        "}",
        ",",
        "[\"\"]",
        "['']",
        "[]",
        "{}",
        "\"\\u0000\"",
        "\"\\x\"",
        "'a b'",
        "\"a \\\" b\"",
    ],
    nests: &[("[", "]"), ("{", "}"), ("- ", ""), ("{a: ", "}"), ("[{", "}]"), ("? ", ""), ("&a [", "]"), ("!t [", "]")],
};

fn manifest_target(input: &[u8]) -> u64 {
    let text = String::from_utf8_lossy(input);
    let text = text.as_ref();
    let mut h = match manifest::parse::<SuiteFile>("suite.yaml", text) {
        Ok(s) => {
            for v in s.params.values().chain(s.profiles.values().flat_map(|p| p.params.values())) {
                let _ = manifest::value_text(v);
            }
            if let Some(server) = &s.server {
                let _ = server.command.args();
            }
            if let Some(p) = &s.profile {
                let _ = mcpscript::util::suggest(
                    p,
                    ["quick", "full"].into_iter().chain(s.profiles.keys().map(String::as_str)),
                );
            }
            for key in ["profile", "target", "server", "connections"] {
                let _ = manifest::find_key(text, key, 1);
            }
            let list = manifest::find_key(text, "scenarios", 1).map_or(1, |p| p.0);
            for rel in &s.scenarios {
                let _ = manifest::find_value(text, rel, list);
            }
            1 ^ shape(&format!("{s:?}"), input)
        }
        Err(e) => shape(&e.message, input) ^ shape(e.hint.as_deref().unwrap_or(""), input).rotate_left(1),
    };
    h = h.rotate_left(17);
    h ^= match manifest::parse::<ScenarioFile>("a.yaml", text) {
        Ok(mut f) => {
            for v in f.params.values().chain(f.profiles.values().flat_map(|m| m.values())) {
                let _ = manifest::value_text(v);
            }
            let _ = manifest::find_key(text, "name", 1);
            let profiles = manifest::find_key(text, "profiles", 1).map_or(1, |x| x.0);
            for (name, m) in f.profiles.iter_mut() {
                let from = manifest::find_key(text, name, profiles).map_or(1, |x| x.0);
                if let Some(r) = m.remove("resources") {
                    if yaml_serde::from_value::<Resources>(r).is_err() {
                        let _ = manifest::find_key(text, "resources", from);
                    }
                }
                if let Some(t) = m.remove("timeout") {
                    if yaml_serde::from_value::<Dur>(t).is_err() {
                        let _ = manifest::find_key(text, "timeout", from);
                    }
                }
            }
            // The places the loader looks up for unknown transports and dependencies.
            let requires = manifest::find_key(text, "requires", 1).map_or(1, |x| x.0);
            for t in &f.requires.transports {
                let _ = manifest::find_value(text, t, requires);
            }
            let deps = manifest::find_key(text, "depends_on", 1).map_or(1, |x| x.0);
            for d in &f.depends_on {
                let _ = manifest::find_value(text, d, deps);
            }
            2 ^ shape(&format!("{f:?}"), input)
        }
        Err(e) => {
            let _ = e.to_string();
            shape(&e.message, input) ^ shape(e.hint.as_deref().unwrap_or(""), input).rotate_left(1)
        }
    };
    h
}

// ---------------------------------------------------------------------------------------
// jsonrpc: one frame (a line, an HTTP body, a WebSocket message).

pub const JSONRPC: Target = Target {
    name: "jsonrpc",
    about: "jsonrpc::parse (single messages and batches: -32700 versus -32600), then every message \
            serialised and parsed back to an equal message, every -32600/-32700 reply serialised and \
            parsed back, and scan_id on the raw frame",
    run: jsonrpc_target,
    max_len: 64 * 1024,
    dict: &[
        "\"jsonrpc\"",
        "\"2.0\"",
        "\"1.0\"",
        "\"id\"",
        "\"method\"",
        "\"params\"",
        "\"result\"",
        "\"error\"",
        "\"code\"",
        "\"message\"",
        "\"data\"",
        ":",
        ",",
        "null",
        "true",
        "false",
        "{}",
        "[]",
        "\"\"",
        "\"\\u0000\"",
        "\"\\ud800\"",
        "\"\\ud83d\\ude00\"",
        "\"\\\"\"",
        "-32700",
        "-32600",
        "1e400",
        "-0",
        "1.0",
        "\"tools/call\"",
        "\"tools/list\"",
        "\"initialize\"",
        "\"notifications/initialized\"",
        "\"ping\"",
        "\"notifications/cancelled\"",
        "\"requestId\"",
        "\"_meta\"",
        "\"progressToken\"",
        "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}",
        "{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{}}",
    ],
    nests: &[
        ("[", "]"),
        ("{\"a\":", "}"),
        ("{\"params\":", "}"),
        ("[{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"m\",\"params\":", "}]"),
        ("{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":", "}"),
        ("{\"jsonrpc\":\"2.0\",\"id\":", "}"),
        ("[[", "]]"),
    ],
};

fn jsonrpc_target(input: &[u8]) -> u64 {
    let _ = jsonrpc::scan_id(input);
    match jsonrpc::parse(input) {
        Err(e) => {
            round_trip(&Message::Response(e.to_response()));
            1
        }
        Ok(Payload::Single(m)) => 2 ^ item(m, input).rotate_left(3),
        Ok(Payload::Batch(items)) => {
            assert!(!items.is_empty(), "an empty batch is reported as a single invalid request");
            let valid: Vec<Message> = items.iter().filter_map(|m| m.as_ref().ok().cloned()).collect();
            let mut h = 3u64;
            for m in items {
                // Not `input`: searching the whole frame once per element would be quadratic.
                h = h.rotate_left(5) ^ item(m, &[]);
            }
            if !valid.is_empty() {
                match jsonrpc::parse(&jsonrpc::batch_to_vec(&valid)) {
                    Ok(Payload::Batch(back)) => {
                        assert_eq!(back.len(), valid.len(), "a serialised batch parses back whole");
                        for (a, b) in valid.iter().zip(&back) {
                            let b = b.as_ref().expect("a serialised batch element parses back");
                            assert!(same_message(a, b), "batch element {a:?} came back as {b:?}");
                        }
                    }
                    other => panic!("a serialised batch came back as {other:?}"),
                }
            }
            h
        }
    }
}

fn item(m: Result<Message, Invalid>, input: &[u8]) -> u64 {
    match m {
        Ok(msg) => {
            round_trip(&msg);
            match &msg {
                Message::Request(r) => 10 ^ u64::from(r.params.is_some()),
                Message::Notification(n) => 20 ^ u64::from(n.params.is_some()),
                Message::Response(Response { id, outcome }) => {
                    30 ^ u64::from(id.is_some()) ^ (outcome.is_ok() as u64) << 1
                }
            }
        }
        Err(inv) => {
            round_trip(&Message::Response(inv.to_response()));
            shape(&inv.reason, input) ^ u64::from(inv.id.is_some())
        }
    }
}

/// A message serialised and parsed back is the same message.
fn round_trip(msg: &Message) {
    let bytes = msg.to_vec();
    match jsonrpc::parse(&bytes) {
        Ok(Payload::Single(Ok(back))) => {
            assert!(same_message(msg, &back), "{msg:?} came back as {back:?}");
        }
        other => panic!("{msg:?}, serialised as {}, came back as {other:?}", String::from_utf8_lossy(&bytes)),
    }
}

fn same_message(a: &Message, b: &Message) -> bool {
    let same_opt = |x: &Option<Value>, y: &Option<Value>| match (x, y) {
        (None, None) => true,
        (Some(x), Some(y)) => same_value(x, y),
        _ => false,
    };
    match (a, b) {
        (Message::Request(x), Message::Request(y)) => {
            x.id == y.id && x.method == y.method && same_opt(&x.params, &y.params)
        }
        (Message::Notification(x), Message::Notification(y)) => x.method == y.method && same_opt(&x.params, &y.params),
        (Message::Response(x), Message::Response(y)) => {
            x.id == y.id
                && match (&x.outcome, &y.outcome) {
                    (Ok(v), Ok(w)) => same_value(v, w),
                    (Err(e), Err(f)) => e.code == f.code && e.message == f.message && same_opt(&e.data, &f.data),
                    _ => false,
                }
        }
        _ => false,
    }
}

/// Equal JSON, with floats equal to the last bit or two (serde_json's default float parsing
/// is not always correctly rounded).
fn same_value(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            x == y || {
                let (x, y) = (x.as_f64().unwrap_or(f64::NAN), y.as_f64().unwrap_or(f64::NAN));
                (x - y).abs() <= f64::EPSILON * 4.0 * x.abs().max(y.abs())
            }
        }
        (Value::Array(x), Value::Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same_value(x, y)),
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same_value(v, w)))
        }
        _ => a == b,
    }
}

// ---------------------------------------------------------------------------------------
// Chunking: how a stream arrives, decided by the input's hash so a saved input replays
// exactly.

/// Chunk sizes from 1 to 64 bytes (sometimes up to 4 KB), from the input's hash.
fn chunk_plan(input: &[u8]) -> Vec<usize> {
    let mut rng = super::Rng::new(hash(input));
    let big = rng.one_in(4);
    (0..16).map(|_| 1 + if big { rng.below(4096) } else { rng.below(64) }).collect()
}

fn chunks<'a>(input: &'a [u8], plan: &'a [usize]) -> impl Iterator<Item = &'a [u8]> + 'a {
    let mut at = 0;
    let mut i = 0;
    std::iter::from_fn(move || {
        if at >= input.len() {
            return None;
        }
        let n = plan[i % plan.len()].min(input.len() - at);
        i += 1;
        at += n;
        Some(&input[at - n..at])
    })
}

/// A future that must be ready at once (its reader always is).
fn ready<F: Future>(f: F) -> F::Output {
    let mut cx = Context::from_waker(Waker::noop());
    match pin!(f).poll(&mut cx) {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("pending although the reader is always ready"),
    }
}

// ---------------------------------------------------------------------------------------
// lines: the newline-delimited JSON-RPC reader (tcp, stdio).

pub const LINES: Target = Target {
    name: "lines",
    about: "net::lines::LineReader::next_line over a stream read in chunks of 1 to 4096 bytes: with a \
            limit over the input's length it yields exactly the lines of a reference splitter; with a limit of 8 to \
            135 bytes it yields a prefix of them, none over the limit, then TooLong; has_buffered_line \
            and shrink_to between lines",
    run: lines_target,
    max_len: 64 * 1024,
    dict: &["\n", "\r\n", "\r", "\n\n", " ", "\t", "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}"],
    nests: &[("\n", ""), ("\r", ""), ("\r\n", ""), (" ", "")],
};

/// An `AsyncRead` that hands out `input` in the planned chunks.
struct Chunked<'a> {
    input: &'a [u8],
    plan: &'a [usize],
    i: usize,
}

impl tokio::io::AsyncRead for Chunked<'_> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let n = self.plan[self.i % self.plan.len()].min(self.input.len()).min(buf.remaining());
        self.i += 1;
        let (head, tail) = self.input.split_at(n);
        buf.put_slice(head);
        self.input = tail;
        Poll::Ready(Ok(()))
    }
}

/// What the line reader should yield: lines split at `\n`, one trailing `\r` dropped, empty
/// lines skipped, a final unterminated line trimmed.
fn reference_lines(input: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut rest = input;
    while let Some(i) = memchr::memchr(b'\n', rest) {
        let line = rest[..i].strip_suffix(b"\r").unwrap_or(&rest[..i]);
        if !line.is_empty() {
            out.push(line);
        }
        rest = &rest[i + 1..];
    }
    let last = rest.trim_ascii();
    if !last.is_empty() {
        out.push(last);
    }
    out
}

fn read_lines(input: &[u8], plan: &[usize], max: usize) -> (Vec<Vec<u8>>, Option<LineError>) {
    let mut reader = LineReader::new(Chunked { input, plan, i: 0 }, 64, max);
    let mut out = Vec::new();
    loop {
        match ready(reader.next_line()) {
            Ok(Some(line)) => out.push(line.to_vec()),
            Ok(None) => return (out, None),
            Err(e) => return (out, Some(e)),
        }
        if !reader.has_buffered_line() {
            reader.shrink_to(64);
        }
    }
}

fn lines_target(input: &[u8]) -> u64 {
    let plan = chunk_plan(input);
    let expected = reference_lines(input);
    let (got, err) = read_lines(input, &plan, input.len() + 64);
    assert!(err.is_none(), "no line reaches the limit, yet: {err:?}");
    assert!(got.iter().map(Vec::as_slice).eq(expected.iter().copied()), "lines {got:?}, expected {expected:?}");
    let max = 8 + (hash(input) % 128) as usize;
    let (got, err) = read_lines(input, &plan, max);
    assert!(got.iter().all(|l| l.len() <= max), "a line over the limit of {max} bytes");
    assert!(
        got.iter().map(Vec::as_slice).eq(expected.iter().copied().take(got.len())),
        "with a limit of {max} bytes: lines {got:?}, expected a prefix of {expected:?}"
    );
    match &err {
        None => assert_eq!(got.len(), expected.len(), "the reader stopped early without an error"),
        Some(LineError::TooLong { limit }) => assert_eq!(*limit, max),
        Some(LineError::Io(e)) => panic!("an I/O error from an in-memory stream: {e}"),
    }
    (expected.len().min(16) as u64) ^ (u64::from(err.is_some()) << 8)
}

// ---------------------------------------------------------------------------------------
// sse: the text/event-stream parser (Streamable HTTP replies, the legacy SSE stream).

pub const SSE: Target = Target {
    name: "sse",
    about: "client::transport::http::events::EventParser (push, next_event, finish) fed the stream \
            whole, byte by byte (up to 4 KB) and in chunks of 1 to 4096 bytes: the same events each way when none \
            is too large, no event over the limit (also with a limit of 1 to 256 bytes)",
    run: sse_target,
    max_len: 64 * 1024,
    dict: &[
        "data:",
        "data: ",
        "data",
        "event:",
        "event: message",
        "event: endpoint",
        "event: other",
        "id:",
        "id: 1",
        "retry: 10",
        ":",
        ": comment",
        "\n",
        "\r\n",
        "\r",
        "\n\n",
        "\r\r",
        "\r\n\r\n",
        "\u{feff}",
        "data: {\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{}}\n\n",
        "event: endpoint\ndata: /message?sessionId=x\n\n",
    ],
    nests: &[("data: x\n", ""), ("\r", ""), (":\n", ""), ("data:\n", ""), ("\n", "")],
};

type Events = Result<Vec<Event>, (Vec<Event>, TooLarge)>;

fn parse_events<'a>(pieces: impl Iterator<Item = &'a [u8]>, limit: usize) -> Events {
    let mut p = EventParser::new(limit);
    let mut out = Vec::new();
    for piece in pieces {
        p.push(piece);
        loop {
            match p.next_event() {
                Ok(Some(e)) => out.push(e),
                Ok(None) => break,
                Err(e) => return Err((out, e)),
            }
        }
    }
    match p.finish() {
        Ok(Some(e)) => out.push(e),
        Ok(None) => {}
        Err(e) => return Err((out, e)),
    }
    Ok(out)
}

fn sse_target(input: &[u8]) -> u64 {
    let plan = chunk_plan(input);
    let limit = 1 << 20;
    let whole = parse_events(std::iter::once(input), limit);
    let chunked = parse_events(chunks(input, &plan), limit);
    // Byte by byte for inputs up to 4 KB (the chunked plan has 1-byte chunks too).
    let bytewise = if input.len() <= 4096 { parse_events(input.chunks(1), limit) } else { chunked.clone() };
    if let (Ok(w), Ok(b), Ok(c)) = (&whole, &bytewise, &chunked) {
        assert_eq!(w, b, "events differ when the stream arrives byte by byte");
        assert_eq!(w, c, "events differ when the stream arrives in chunks of {plan:?}");
    }
    let small = 1 + (hash(input) % 256) as usize;
    let limited = parse_events(chunks(input, &plan), small);
    for (r, l) in [(&whole, limit), (&bytewise, limit), (&chunked, limit), (&limited, small)] {
        let events = match r {
            Ok(e) | Err((e, _)) => e,
        };
        assert!(events.iter().all(|e| !e.data.is_empty() && e.data.len() <= l), "an empty event or one over {l} bytes");
        if let Err((_, e)) = r {
            assert_eq!(e.limit, l);
        }
    }
    match &whole {
        Ok(e) => e.len().min(16) as u64 ^ e.iter().fold(0u64, |h, e| h | 1 << (8 + e.kind as u64)),
        Err((e, _)) => 1000 + e.len().min(16) as u64,
    }
}

// ---------------------------------------------------------------------------------------
// threshold: `p99 < 50ms`.

pub const THRESHOLD: Target = Target {
    name: "threshold",
    about: "script::threshold::Threshold::parse, then parse(source) gives the same threshold, and judge \
            against a full and an empty result",
    run: threshold_target,
    max_len: 1024,
    dict: &[
        "p99",
        "p(99.9)",
        "p(",
        ")",
        "p999",
        "p9999",
        "p50",
        "p100",
        "p0",
        "p(0)",
        "p(100)",
        "p(1e2)",
        "p(nan)",
        "p(inf)",
        "avg",
        "mean",
        "min",
        "max",
        "med",
        "median",
        "stddev",
        "std",
        "rate",
        "throughput",
        "rps",
        "error_rate",
        "count",
        "timeouts",
        "<",
        "<=",
        ">",
        ">=",
        "==",
        "!=",
        "=",
        "<<",
        "=<",
        "ms",
        "us",
        "\u{b5}s",
        "s",
        "%",
        "/s",
        "_",
        "1_000",
        ".",
        "-",
        "+",
        "1e3",
        "0x10",
    ],
    nests: &[("p(", ")"), ("(", ")")],
};

fn observed() -> &'static Observed {
    static OBS: OnceLock<Observed> = OnceLock::new();
    OBS.get_or_init(|| {
        let mut o = Observed::default();
        for (k, v) in [("p50", 1.0), ("p99", 12.0), ("p999", 40.0), ("max", 90.0), ("mean", 2.0), ("stddev", 3.0)] {
            o.latency.insert(k.into(), v);
        }
        for (k, v) in [("sent", 1000.0), ("ok", 999.0), ("rate", 1500.0), ("timeouts", 0.0), ("errors", 1.0)] {
            o.values.insert(k.into(), v);
        }
        o
    })
}

fn threshold_target(input: &[u8]) -> u64 {
    let text = String::from_utf8_lossy(input);
    match Threshold::parse(&text) {
        Ok(t) => {
            assert!(t.limit.is_finite(), "a non-finite limit: {t:?}");
            let back = Threshold::parse(&t.source).expect("a threshold's source parses again");
            assert_eq!(back, t, "parsing the source again gives another threshold");
            let _ = t.to_string();
            let _ = t.judge(observed());
            let _ = t.judge(&Observed::default());
            shape(&format!("{:?} {:?}", t.metric, t.op), input)
        }
        Err(e) => {
            let _ = e.to_string();
            shape(&e.reason, input) ^ 1
        }
    }
}

// ---------------------------------------------------------------------------------------
// fault: `NAME:key=value,...` and the JSON forms.

pub const FAULT: Target = Target {
    name: "fault",
    about: "chaos::faults::Fault::parse (the NAME:key=value,... form, or JSON when it starts with `{`) and \
            Fault::from_json on any JSON value; a parsed fault validates, and its to_spec form parses \
            back to the same spec (microsecond precision); serialising it as JSON",
    run: fault_target,
    max_len: 4096,
    dict: &[
        "latency",
        "bandwidth",
        "slow_close",
        "timeout",
        "reset_peer",
        "slicer",
        "limit_data",
        "loss",
        "drop_connection",
        "drop",
        "corrupt",
        "truncate",
        "duplicate",
        "delay",
        "latency=",
        "jitter=",
        "rate=",
        "delay=",
        "timeout=",
        "average_size=",
        "size_variation=",
        "bytes=",
        "probability=",
        "rto=",
        "min_messages=",
        "max_messages=",
        "min_bytes=",
        "max_bytes=",
        "mode=",
        "garble",
        "flip",
        "direction=",
        "stream=",
        "toxicity=",
        "upstream",
        "downstream",
        "both",
        "up",
        "down",
        ":",
        ",",
        "=",
        "100ms",
        "1h",
        "3600s",
        "3601s",
        "1e9s",
        "0.5ns",
        "1.0000001us",
        "-5ms",
        " 5ms",
        "0.5",
        "1",
        "1.0",
        "1e-9",
        "{\"type\":\"latency\",",
        "\"type\":",
        "\"attributes\":{",
        "\"name\":",
        "\"stream\":",
        "\"toxicity\":",
        "\"latency\":",
        "\"probability\":",
    ],
    nests: &[("{\"attributes\":", "}"), ("[", "]"), ("{\"a\":", "}")],
};

fn check_fault(f: &Fault) -> u64 {
    f.validate().unwrap_or_else(|e| panic!("a parsed fault does not validate: {e}: {f:?}"));
    let spec = f.to_spec();
    let back = Fault::parse(&spec).unwrap_or_else(|e| panic!("to_spec {spec:?} of {f:?} does not parse back: {e}"));
    assert_eq!(back.to_spec(), spec, "to_spec of {f:?} does not parse back to itself");
    let _ = serde_json::to_string(f);
    let _ = f.kind.is_message_level();
    hash(f.name().as_bytes()) ^ hash(f.direction.as_str().as_bytes()).rotate_left(7)
}

fn fault_target(input: &[u8]) -> u64 {
    let text = String::from_utf8_lossy(input);
    let mut h = match Fault::parse(&text) {
        Ok(f) => check_fault(&f),
        Err(e) => shape(&e.to_string(), input),
    };
    if let Ok(v) = serde_json::from_str::<Value>(&text) {
        h ^= match Fault::from_json(&v) {
            Ok(f) => check_fault(&f),
            Err(e) => shape(&e.to_string(), input),
        }
        .rotate_left(11);
    }
    h
}
