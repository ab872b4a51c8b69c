//! JSON-RPC 2.0 messages: parsing (single messages and batches, with the distinction
//! between unparseable input and structurally invalid requests that servers must report
//! as -32700 and -32600), serialisation into compact JSON bytes, and [`peek`]: the same
//! reading done only as far as the load engine's hot path needs (the id, the method, the
//! error code), borrowing from the input.

use serde::ser::{SerializeMap, Serializer};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::value::RawValue;
use serde_json::Value;
use std::fmt;

/// Parse error: the input is not JSON.
pub const PARSE_ERROR: i64 = -32700;
/// The JSON is not a valid JSON-RPC request.
pub const INVALID_REQUEST: i64 = -32600;
/// The method does not exist or is not available.
pub const METHOD_NOT_FOUND: i64 = -32601;
/// Invalid method parameters.
pub const INVALID_PARAMS: i64 = -32602;
/// Internal JSON-RPC error.
pub const INTERNAL_ERROR: i64 = -32603;

/// A request id. MCP forbids `null` ids on requests; `null` only appears on error responses
/// to messages whose id could not be read, which [`Response::id`] models as `None`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Id {
    Num(i64),
    Str(String),
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Id::Num(n) => write!(f, "{n}"),
            Id::Str(s) => write!(f, "\"{s}\""),
        }
    }
}

impl Id {
    fn from_value(v: &Value) -> Option<Id> {
        match v {
            Value::Number(n) => n.as_i64().map(Id::Num),
            Value::String(s) => Some(Id::Str(s.clone())),
            _ => None,
        }
    }
}

/// The error member of a JSON-RPC response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorObject {
    pub code: i64,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,
}

impl ErrorObject {
    pub fn new(code: i64, message: impl Into<String>) -> Self {
        ErrorObject { code, message: message.into(), data: None }
    }

    pub fn with_data(mut self, data: Value) -> Self {
        self.data = Some(data);
        self
    }
}

impl fmt::Display for ErrorObject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "JSON-RPC error {}: {}", self.code, self.message)?;
        if let Some(data) = &self.data {
            write!(f, " ({data})")?;
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    pub id: Id,
    pub method: String,
    pub params: Option<Value>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Notification {
    pub method: String,
    pub params: Option<Value>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Response {
    /// `None` serialises as `"id": null` (a reply to input whose id could not be read).
    pub id: Option<Id>,
    pub outcome: Result<Value, ErrorObject>,
}

impl Response {
    pub fn ok(id: Id, result: Value) -> Self {
        Response { id: Some(id), outcome: Ok(result) }
    }

    pub fn err(id: Option<Id>, error: ErrorObject) -> Self {
        Response { id, outcome: Err(error) }
    }
}

/// One JSON-RPC message.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    Request(Request),
    Notification(Notification),
    Response(Response),
}

/// A message that is JSON but not valid JSON-RPC; `id` is kept when it could be read so
/// the -32600 reply can carry it.
#[derive(Debug, Clone, PartialEq)]
pub struct Invalid {
    pub id: Option<Id>,
    pub reason: String,
}

impl Invalid {
    /// The -32600 response a server sends for this message.
    pub fn to_response(&self) -> Response {
        Response::err(self.id.clone(), ErrorObject::new(INVALID_REQUEST, format!("Invalid Request: {}", self.reason)))
    }
}

/// What one frame (a line, an HTTP body, a WebSocket text frame) held.
#[derive(Debug, Clone, PartialEq)]
pub enum Payload {
    Single(Result<Message, Invalid>),
    /// A batch; empty batches are reported as `Single(Err(..))`.
    Batch(Vec<Result<Message, Invalid>>),
}

/// The input was not JSON at all (-32700).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("not valid JSON: {detail}")]
pub struct ParseError {
    pub detail: String,
}

impl ParseError {
    pub fn to_response(&self) -> Response {
        Response::err(None, ErrorObject::new(PARSE_ERROR, format!("Parse error: {}", self.detail)))
    }
}

/// Members borrowed unparsed: absent is `None`, `null` is `Some("null")`; only the members
/// a message needs are turned into values.
#[derive(Deserialize)]
struct RawMessage<'a> {
    #[serde(default, borrow, deserialize_with = "present_raw")]
    jsonrpc: Option<&'a RawValue>,
    #[serde(default, borrow, deserialize_with = "present_raw")]
    id: Option<&'a RawValue>,
    #[serde(default, borrow, deserialize_with = "present_raw")]
    method: Option<&'a RawValue>,
    #[serde(default, borrow, deserialize_with = "present_raw")]
    params: Option<&'a RawValue>,
    #[serde(default, borrow, deserialize_with = "present_raw")]
    result: Option<&'a RawValue>,
    #[serde(default, borrow, deserialize_with = "present_raw")]
    error: Option<&'a RawValue>,
}

/// `null` is a present member (`Option<&RawValue>` alone would read it as absent).
fn present_raw<'de: 'a, 'a, D: Deserializer<'de>>(d: D) -> Result<Option<&'a RawValue>, D::Error> {
    <&'a RawValue>::deserialize(d).map(Some)
}

/// A member's value. Borrowing a member as a `RawValue` checks its syntax only, so reading
/// it can still fail: nesting deeper than serde_json's limit (128), or a number out of
/// range (`1e400`). Such a member makes the message invalid (-32600), never a panic.
fn value_of(raw: &RawValue) -> Result<Value, String> {
    serde_json::from_str(raw.get()).map_err(|e| e.to_string())
}

fn first_byte(bytes: &[u8]) -> Option<u8> {
    bytes.iter().copied().find(|b| !b.is_ascii_whitespace())
}

/// Parses one frame into a message or a batch of messages.
pub fn parse(bytes: &[u8]) -> Result<Payload, ParseError> {
    match first_byte(bytes) {
        Some(b'[') => {
            let items: Vec<&RawValue> =
                serde_json::from_slice(bytes).map_err(|e| ParseError { detail: e.to_string() })?;
            if items.is_empty() {
                return Ok(Payload::Single(Err(Invalid { id: None, reason: "empty batch".into() })));
            }
            Ok(Payload::Batch(items.into_iter().map(|raw| parse_object(raw.get().as_bytes())).collect()))
        }
        Some(b'{') => {
            let raw: RawMessage = serde_json::from_slice(bytes).map_err(|e| ParseError { detail: e.to_string() })?;
            Ok(Payload::Single(classify(raw)))
        }
        _ => {
            // Valid JSON that is not an object or array is an invalid request; anything
            // else is a parse error.
            serde_json::from_slice::<Value>(bytes).map_err(|e| ParseError { detail: e.to_string() })?;
            Ok(Payload::Single(Err(Invalid { id: None, reason: "expected a JSON object or array".into() })))
        }
    }
}

/// Parses one batch element (already known to be JSON).
fn parse_object(bytes: &[u8]) -> Result<Message, Invalid> {
    match serde_json::from_slice::<RawMessage>(bytes) {
        Ok(raw) => classify(raw),
        Err(_) => Err(Invalid { id: None, reason: "batch element is not an object".into() }),
    }
}

fn classify(raw: RawMessage<'_>) -> Result<Message, Invalid> {
    let id_null = raw.id.is_some_and(|r| r.get() == "null");
    let id = match raw.id {
        None => None,
        Some(_) if id_null => None,
        Some(r) => match r.get().parse::<i64>() {
            Ok(n) => Some(Id::Num(n)),
            Err(_) => {
                let v = value_of(r).map_err(|e| Invalid { id: None, reason: format!("id cannot be read: {e}") })?;
                Some(Id::from_value(&v).ok_or_else(|| Invalid {
                    id: None,
                    reason: format!("id must be an integer or a string, got {v}"),
                })?)
            }
        },
    };
    let invalid = |reason: String| Invalid { id: id.clone(), reason };
    match raw.jsonrpc {
        Some(r) if r.get() == "\"2.0\"" || matches!(value_of(r), Ok(Value::String(ref s)) if s == "2.0") => {}
        _ => return Err(invalid("jsonrpc must be \"2.0\"".into())),
    }
    let params = raw.params.map(value_of).transpose().map_err(|e| invalid(format!("params cannot be read: {e}")))?;
    let method = raw.method.map(value_of).transpose().map_err(|e| invalid(format!("method cannot be read: {e}")))?;
    if let Some(method) = method {
        let Value::String(method) = method else {
            return Err(invalid("method must be a string".into()));
        };
        if let Some(p) = &params {
            if !(p.is_object() || p.is_array()) {
                return Err(invalid("params must be an object or an array".into()));
            }
        }
        return match (id, raw.id) {
            (Some(id), _) => Ok(Message::Request(Request { id, method, params })),
            (None, Some(_)) => Err(Invalid { id: None, reason: "a request id must not be null".into() }),
            (None, None) => Ok(Message::Notification(Notification { method, params })),
        };
    }
    if raw.id.is_none() {
        return Err(invalid("a response needs an id; a request needs a method".into()));
    }
    match (raw.result, raw.error) {
        (Some(result), None) if id.is_some() => {
            let result = value_of(result).map_err(|e| invalid(format!("result cannot be read: {e}")))?;
            Ok(Message::Response(Response { id, outcome: Ok(result) }))
        }
        (None, Some(error)) => {
            let error: ErrorObject =
                serde_json::from_str(error.get()).map_err(|e| invalid(format!("malformed error object: {e}")))?;
            Ok(Message::Response(Response { id, outcome: Err(error) }))
        }
        (Some(_), Some(_)) => Err(invalid("a response has either result or error, not both".into())),
        _ => Err(invalid("a message needs a method, a result or an error".into())),
    }
}

impl Serialize for Message {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(None)?;
        map.serialize_entry("jsonrpc", "2.0")?;
        match self {
            Message::Request(r) => {
                map.serialize_entry("id", &r.id)?;
                map.serialize_entry("method", &r.method)?;
                if let Some(p) = &r.params {
                    map.serialize_entry("params", p)?;
                }
            }
            Message::Notification(n) => {
                map.serialize_entry("method", &n.method)?;
                if let Some(p) = &n.params {
                    map.serialize_entry("params", p)?;
                }
            }
            Message::Response(r) => {
                map.serialize_entry("id", &r.id)?;
                match &r.outcome {
                    Ok(v) => map.serialize_entry("result", v)?,
                    Err(e) => map.serialize_entry("error", e)?,
                }
            }
        }
        map.end()
    }
}

impl Message {
    /// Compact JSON bytes (no trailing newline).
    pub fn to_vec(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(128);
        self.write_to(&mut out);
        out
    }

    /// Appends compact JSON bytes to `out`.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        // The envelope is written directly; only strings, ids and payloads go through serde.
        fn json<T: Serialize + ?Sized>(out: &mut Vec<u8>, v: &T) {
            serde_json::to_writer(&mut *out, v).expect("serialising JSON");
        }
        out.extend_from_slice(b"{\"jsonrpc\":\"2.0\"");
        match self {
            Message::Request(r) => {
                out.extend_from_slice(b",\"id\":");
                json(out, &r.id);
                out.extend_from_slice(b",\"method\":");
                json(out, &r.method);
                if let Some(p) = &r.params {
                    out.extend_from_slice(b",\"params\":");
                    json(out, p);
                }
            }
            Message::Notification(n) => {
                out.extend_from_slice(b",\"method\":");
                json(out, &n.method);
                if let Some(p) = &n.params {
                    out.extend_from_slice(b",\"params\":");
                    json(out, p);
                }
            }
            Message::Response(r) => {
                out.extend_from_slice(b",\"id\":");
                json(out, &r.id);
                match &r.outcome {
                    Ok(v) => {
                        out.extend_from_slice(b",\"result\":");
                        json(out, v);
                    }
                    Err(e) => {
                        out.extend_from_slice(b",\"error\":");
                        json(out, e);
                    }
                }
            }
        }
        out.push(b'}');
    }

    pub fn request(id: Id, method: impl Into<String>, params: Option<Value>) -> Self {
        Message::Request(Request { id, method: method.into(), params })
    }

    pub fn notification(method: impl Into<String>, params: Option<Value>) -> Self {
        Message::Notification(Notification { method: method.into(), params })
    }
}

/// Serialises a batch of messages as one JSON array.
pub fn batch_to_vec(messages: &[Message]) -> Vec<u8> {
    serde_json::to_vec(messages).expect("serialising a JSON-RPC batch")
}

/// Best-effort recovery of `"id": N` from a frame that failed to parse, so a corrupted
/// reply can still be charged to the request it answers.
pub fn scan_id(bytes: &[u8]) -> Option<Id> {
    let text = std::str::from_utf8(bytes).ok()?;
    let at = text.find("\"id\"")? + 4;
    let rest = text[at..].trim_start().strip_prefix(':')?.trim_start();
    let digits: String = rest.chars().take_while(|c| c.is_ascii_digit() || *c == '-').collect();
    if !digits.is_empty() {
        return digits.parse().ok().map(Id::Num);
    }
    let rest = rest.strip_prefix('"')?;
    Some(Id::Str(rest[..rest.find('"')?].to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn peek_reads_what_matching_needs() {
        assert_eq!(peek(br#"{"jsonrpc":"2.0","id":7,"result":{"big":[1,2,3]}}"#), Peek::Reply { id: 7, error: None });
        assert_eq!(
            peek(br#"{"jsonrpc":"2.0","id":8,"error":{"code":-32000,"message":"overloaded"}}"#),
            Peek::Reply { id: 8, error: Some(-32000) }
        );
        assert_eq!(
            peek(br#"{"jsonrpc":"2.0","id":"s1","method":"ping"}"#),
            Peek::Request { id: "\"s1\"", method: "ping".into() }
        );
        let sampling = br#"{"jsonrpc":"2.0","id":3,"method":"sampling/createMessage","params":{"x":[1,{"y":2}]}}"#;
        match peek(sampling) {
            Peek::Request { id, method } => {
                assert_eq!((id, &*method), ("3", "sampling/createMessage"));
                assert!(matches!(method, std::borrow::Cow::Borrowed(_)), "no copy of a plain method name");
            }
            other => panic!("a server request, not {other:?}"),
        }
        assert_eq!(
            peek(br#"{"jsonrpc":"2.0","id":4,"method":"roots\/list"}"#),
            Peek::Request { id: "4", method: "roots/list".into() },
            "an escaped method name is read as the method"
        );
        assert_eq!(peek(br#"{"jsonrpc":"2.0","method":"notifications/progress"}"#), Peek::Other);
        assert_eq!(peek(br#"{"jsonrpc":"2.0","id":"x","result":{}}"#), Peek::Other, "not an id this client sent");
        assert_eq!(peek(br#"{"jsonrpc":"2.0","id":12,"resu"#), Peek::Garbage(Some(12)));
        assert_eq!(peek(b"\x07garbage"), Peek::Garbage(None));
    }

    fn single(s: &str) -> Result<Message, Invalid> {
        match parse(s.as_bytes()).unwrap() {
            Payload::Single(m) => m,
            other => panic!("expected single, got {other:?}"),
        }
    }

    #[test]
    fn parses_each_kind() {
        let m = single(r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#).unwrap();
        assert_eq!(m, Message::request(Id::Num(1), "ping", None));
        let m = single(r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#).unwrap();
        assert!(matches!(m, Message::Notification(n) if n.method == "notifications/initialized"));
        let m = single(r#"{"jsonrpc":"2.0","id":"a","result":{}}"#).unwrap();
        assert_eq!(m, Message::Response(Response::ok(Id::Str("a".into()), json!({}))));
        let m = single(r#"{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"x"}}"#).unwrap();
        assert!(matches!(m, Message::Response(Response { id: None, outcome: Err(e) }) if e.code == -32700));
    }

    #[test]
    fn null_result_is_a_response() {
        let m = single(r#"{"jsonrpc":"2.0","id":3,"result":null}"#).unwrap();
        assert_eq!(m, Message::Response(Response::ok(Id::Num(3), Value::Null)));
    }

    #[test]
    fn distinguishes_parse_errors_from_invalid_requests() {
        assert!(parse(b"{not json").is_err());
        assert!(parse(b"").is_err());
        let inv = single(r#"{"jsonrpc":"1.0","id":7,"method":"ping"}"#).unwrap_err();
        assert_eq!(inv.id, Some(Id::Num(7)));
        assert_eq!(inv.to_response().outcome.unwrap_err().code, INVALID_REQUEST);
        assert!(single(r#"{"jsonrpc":"2.0","id":1,"method":5}"#).is_err());
        assert!(single(r#"{"jsonrpc":"2.0","id":1,"method":"x","params":3}"#).is_err());
        assert!(single(r#"{"jsonrpc":"2.0","id":null,"method":"x"}"#).is_err());
        assert!(single("42").is_err());
        assert!(single("[]").is_err());
    }

    #[test]
    fn parses_batches() {
        let p = parse(br#"[{"jsonrpc":"2.0","id":1,"method":"a"}, 5, {"jsonrpc":"2.0","method":"n"}]"#).unwrap();
        let Payload::Batch(items) = p else { panic!() };
        assert_eq!(items.len(), 3);
        assert!(items[0].is_ok() && items[1].is_err() && items[2].is_ok());
    }

    #[test]
    fn round_trips() {
        for m in [
            Message::request(Id::Num(9), "tools/call", Some(json!({"name":"echo"}))),
            Message::notification("notifications/cancelled", Some(json!({"requestId":9}))),
            Message::Response(Response::ok(Id::Str("x".into()), json!([1, 2]))),
            Message::Response(Response::err(None, ErrorObject::new(-32700, "bad"))),
        ] {
            let bytes = m.to_vec();
            assert_eq!(single(std::str::from_utf8(&bytes).unwrap()).unwrap(), m);
        }
        assert_eq!(
            String::from_utf8(Message::Response(Response::err(None, ErrorObject::new(-1, "m"))).to_vec()).unwrap(),
            r#"{"jsonrpc":"2.0","id":null,"error":{"code":-1,"message":"m"}}"#
        );
    }

    #[test]
    fn unreadable_members_are_invalid_requests() {
        // Found by fuzzing: members whose syntax is valid JSON but that serde_json cannot read
        // as a value (nested past its limit of 128, or a number out of range) panicked.
        let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
        for (text, id, reason) in [
            (format!(r#"{{"jsonrpc":"2.0","id":1,"method":"x","params":{deep}}}"#), Some(Id::Num(1)), "params"),
            (
                r#"{"jsonrpc":"2.0","id":"a","method":"x","params":[1e400]}"#.to_string(),
                Some(Id::Str("a".into())),
                "params",
            ),
            (r#"{"jsonrpc":"2.0","id":7,"result":1e999}"#.to_string(), Some(Id::Num(7)), "result"),
            (format!(r#"{{"jsonrpc":"2.0","id":{deep},"method":"x"}}"#), None, "id"),
            (format!(r#"{{"jsonrpc":"2.0","id":1,"method":{deep}}}"#), Some(Id::Num(1)), "method"),
            (format!(r#"{{"jsonrpc":{deep},"id":1,"method":"x"}}"#), Some(Id::Num(1)), "jsonrpc"),
        ] {
            let inv = single(&text).unwrap_err();
            assert_eq!(inv.id, id, "{text}");
            assert!(inv.reason.starts_with(reason), "{text}: {}", inv.reason);
        }
        let batch = br#"[{"jsonrpc":"2.0","method":"n","params":{"a":-1e400}}, {"jsonrpc":"2.0","method":"m"}]"#;
        let Ok(Payload::Batch(items)) = parse(batch) else { panic!() };
        assert!(items[0].is_err() && items[1].is_ok());
    }

    #[test]
    fn scans_ids_from_broken_frames() {
        assert_eq!(scan_id(br#"{"jsonrpc":"2.0","id": 42,"res"#), Some(Id::Num(42)));
        assert_eq!(scan_id(br#"{"id":"abc","x"#), Some(Id::Str("abc".into())));
        assert_eq!(scan_id(b"garbage"), None);
    }
}

/// What [`peek`] read of one inbound message.
#[derive(Debug, PartialEq, Eq)]
pub enum Peek<'a> {
    /// A reply to request `id` (a whole number), with its error code if it is an error.
    Reply { id: u64, error: Option<i64> },
    /// A request from the server: its id as written (JSON) and its method (borrowed unless
    /// it had escapes).
    Request { id: &'a str, method: std::borrow::Cow<'a, str> },
    /// A notification, a reply with an id that is no whole number, or an error without id.
    Other,
    /// Not JSON; `Some(id)` when a whole-number id could still be read ([`scan_id`]).
    Garbage(Option<u64>),
}

#[derive(Deserialize)]
struct PeekError {
    code: i64,
}

/// Just enough of an inbound message: the rest is skipped by the parser.
#[derive(Deserialize)]
struct Peeked<'a> {
    #[serde(borrow, default)]
    id: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "borrowed_str")]
    method: Option<std::borrow::Cow<'a, str>>,
    #[serde(default)]
    error: Option<PeekError>,
}

/// A string borrowed from the input unless it has escapes (serde borrows a `Cow` by itself
/// only outside an `Option`): notifications and server requests cost no allocation.
fn borrowed_str<'de, D: Deserializer<'de>>(d: D) -> Result<Option<std::borrow::Cow<'de, str>>, D::Error> {
    struct Str;
    impl<'de> serde::de::Visitor<'de> for Str {
        type Value = std::borrow::Cow<'de, str>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a string")
        }
        fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Self::Value, E> {
            Ok(std::borrow::Cow::Borrowed(s))
        }
        fn visit_str<E>(self, s: &str) -> Result<Self::Value, E> {
            Ok(std::borrow::Cow::Owned(s.to_string()))
        }
    }
    d.deserialize_str(Str).map(Some)
}

/// Reads one message only as far as matching it needs: for a client that sent whole-number
/// ids and answers server requests itself (the load engine's connections).
pub fn peek(bytes: &[u8]) -> Peek<'_> {
    let msg: Peeked = match serde_json::from_slice(bytes) {
        Ok(m) => m,
        Err(_) => {
            let id = match scan_id(bytes) {
                Some(Id::Num(n)) => u64::try_from(n).ok(),
                _ => None,
            };
            return Peek::Garbage(id);
        }
    };
    match (msg.method, msg.id) {
        (Some(method), Some(id)) => Peek::Request { id: id.get(), method },
        (Some(_), None) => Peek::Other,
        (None, Some(id)) => match id.get().parse::<u64>() {
            Ok(id) => Peek::Reply { id, error: msg.error.map(|e| e.code) },
            Err(_) => Peek::Other,
        },
        (None, None) => Peek::Other,
    }
}
