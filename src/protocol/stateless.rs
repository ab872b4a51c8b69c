//! The stateless revision of MCP (2026-07-28), the pieces both sides share: no
//! `initialize`, no session, no `ping`; every request carries an envelope in
//! `params._meta` (the revision and the client's capabilities, the client's name
//! optionally); `server/discover` tells what the server speaks; over HTTP every request
//! also names its method (`Mcp-Method`) and, for `tools/call`, `prompts/get` and
//! `resources/read`, its target (`Mcp-Name`), and the revision header decides which era
//! a request belongs to. Errors map to HTTP statuses by code ([`http_status`]).
//!
//! Negotiation, as the official SDKs do it: the client sends `server/discover` first; an
//! `UNSUPPORTED_VERSION` error lists the revisions the server speaks in
//! `data.supported`; any other error means the server predates this revision, and the
//! client falls back to the `initialize` handshake.
//!
//! The server cannot send requests of its own: a result of type [`INPUT_REQUIRED`] asks
//! for what it needs (elicitation, sampling, roots), and the client sends the request
//! again with the answers ([`retry_params`]).

use serde_json::{json, Map, Value};

/// The stateless revision.
pub const VERSION: &str = "2026-07-28";

/// Every stateless revision mcpscript speaks, newest first.
pub const VERSIONS: [&str; 1] = [VERSION];

/// `server/discover`: what the server speaks, its capabilities and (in `_meta`) its name.
pub const DISCOVER: &str = "server/discover";

/// Keys of the request envelope (`params._meta`) and of the server's result stamp.
pub mod meta {
    pub const PROTOCOL_VERSION: &str = "io.modelcontextprotocol/protocolVersion";
    pub const CLIENT_CAPABILITIES: &str = "io.modelcontextprotocol/clientCapabilities";
    pub const CLIENT_INFO: &str = "io.modelcontextprotocol/clientInfo";
    pub const LOG_LEVEL: &str = "io.modelcontextprotocol/logLevel";
    pub const SERVER_INFO: &str = "io.modelcontextprotocol/serverInfo";
}

/// HTTP header names (matched case-insensitively).
pub mod headers {
    pub const PROTOCOL_VERSION: &str = "MCP-Protocol-Version";
    pub const METHOD: &str = "Mcp-Method";
    pub const NAME: &str = "Mcp-Name";
}

/// Error codes of this revision.
pub mod codes {
    /// A header does not match the body (or is missing, or repeated).
    pub const HEADER_MISMATCH: i64 = -32020;
    /// The client did not declare a capability the request needs.
    pub const MISSING_CAPABILITY: i64 = -32021;
    /// The requested revision is not spoken; `data: {supported, requested}`.
    pub const UNSUPPORTED_VERSION: i64 = -32022;
}

/// Methods that no longer exist in this revision (answered -32601).
pub const REMOVED_METHODS: [&str; 5] =
    ["initialize", "ping", "logging/setLevel", "resources/subscribe", "resources/unsubscribe"];

/// Whether `version` is a stateless revision.
pub fn is_stateless(version: &str) -> bool {
    VERSIONS.contains(&version)
}

/// The envelope a client puts in `params._meta` of every request.
pub fn envelope(version: &str, capabilities: &Value, client_name: &str, client_version: &str) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert(meta::PROTOCOL_VERSION.into(), Value::String(version.into()));
    m.insert(meta::CLIENT_CAPABILITIES.into(), capabilities.clone());
    m.insert(meta::CLIENT_INFO.into(), json!({"name": client_name, "version": client_version}));
    m
}

/// `params` with the envelope merged into its `_meta` (keys already there are kept, so a
/// request's own `progressToken` survives). `params` that are not an object (absent or
/// malformed on purpose) become an object holding only `_meta`.
pub fn stamp(params: Option<Value>, envelope: &Map<String, Value>) -> Value {
    let mut obj = match params {
        Some(Value::Object(o)) => o,
        _ => Map::new(),
    };
    let meta = obj.entry("_meta").or_insert_with(|| Value::Object(Map::new()));
    if !meta.is_object() {
        *meta = Value::Object(Map::new());
    }
    if let Value::Object(m) = meta {
        for (k, v) in envelope {
            m.entry(k.clone()).or_insert_with(|| v.clone());
        }
    }
    Value::Object(obj)
}

/// The `Mcp-Name` value of a request: `params.name` of `tools/call` and `prompts/get`,
/// `params.uri` of `resources/read`; `None` for every other method.
pub fn name_of<'a>(method: &str, params: Option<&'a Value>) -> Option<&'a str> {
    let key = match method {
        "tools/call" | "prompts/get" => "name",
        "resources/read" => "uri",
        _ => return None,
    };
    params?.get(key)?.as_str()
}

/// An HTTP header value for `v`: as it is when it is visible ASCII with no surrounding
/// space, else `=?base64?<base64 of its UTF-8>?=` (how the SDKs carry other names).
pub fn header_value(v: &str) -> String {
    let plain =
        !v.is_empty() && v.bytes().all(|b| (0x20..0x7f).contains(&b)) && !v.starts_with(' ') && !v.ends_with(' ');
    if plain {
        v.to_string()
    } else {
        use base64::Engine as _;
        format!("=?base64?{}?=", base64::engine::general_purpose::STANDARD.encode(v.as_bytes()))
    }
}

/// The HTTP headers that name a request of stateless revision `version` (`params` as sent,
/// envelope included): the revision, `Mcp-Method`, and `Mcp-Name` for the methods that
/// have one ([`name_of`]), their values as [`header_value`] writes them.
pub fn request_headers(version: &str, method: &str, params: Option<&Value>) -> Vec<(&'static str, String)> {
    let mut h = vec![(headers::PROTOCOL_VERSION, header_value(version)), (headers::METHOD, header_value(method))];
    if let Some(name) = name_of(method, params) {
        h.push((headers::NAME, header_value(name)));
    }
    h
}

/// The inverse of [`header_value`]: a `=?base64?…?=` value decoded, any other as it is;
/// `None` for a malformed one (bad base64, not UTF-8), so it never equals a body value.
pub fn decode_header_value(v: &str) -> Option<String> {
    let Some(b64) = v.strip_prefix("=?base64?").and_then(|r| r.strip_suffix("?=")) else {
        return Some(v.to_string());
    };
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::STANDARD.decode(b64).ok()?;
    String::from_utf8(bytes).ok()
}

/// The HTTP status a stateless server answers a JSON-RPC error with.
pub fn http_status(code: i64) -> u16 {
    match code {
        -32700 | -32600 | -32602 | codes::HEADER_MISMATCH | codes::MISSING_CAPABILITY | codes::UNSUPPORTED_VERSION => {
            400
        }
        -32601 => 404,
        _ => 200,
    }
}

/// The revisions an `UNSUPPORTED_VERSION` error says the server speaks.
pub fn supported_in(error_data: Option<&Value>) -> Vec<String> {
    error_data
        .and_then(|d| d.get("supported"))
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect())
        .unwrap_or_default()
}

/// The key of a result's type: `"complete"` (also when absent) or [`INPUT_REQUIRED`].
pub const RESULT_TYPE: &str = "resultType";

/// The result type of a request that needs the client's input first: its
/// `inputRequests` (key to `{method, params}`) are answered, and the request is sent
/// again with `inputResponses` (same keys) and the `requestState` echoed.
pub const INPUT_REQUIRED: &str = "input_required";

/// Rounds of input a client answers for one request before it gives up (the SDKs' limit).
pub const MAX_INPUT_ROUNDS: u32 = 10;

/// The newest stateless revision mcpscript speaks among `offered` (a discover result's
/// `supportedVersions`, an `UNSUPPORTED_VERSION` error's `data.supported`).
pub fn mutual<S: AsRef<str>>(offered: &[S]) -> Option<&'static str> {
    VERSIONS.iter().copied().find(|v| offered.iter().any(|o| o.as_ref() == *v))
}

/// Whether `result` asks for input before it completes.
pub fn is_input_required(result: &Value) -> bool {
    result.get(RESULT_TYPE).and_then(Value::as_str) == Some(INPUT_REQUIRED)
}

/// The `inputRequests` of an input-required result: key, method and params of each.
pub fn input_requests(result: &Value) -> Vec<(String, String, Option<Value>)> {
    let Some(requests) = result.get("inputRequests").and_then(Value::as_object) else { return Vec::new() };
    requests
        .iter()
        .map(|(k, r)| {
            let method = r.get("method").and_then(Value::as_str).unwrap_or_default().to_string();
            (k.clone(), method, r.get("params").cloned())
        })
        .collect()
}

/// The params a request is sent again with after an input-required `result`: its own
/// `params` with `inputResponses` (replacing an earlier round's) and the result's
/// `requestState`, unchanged (absent when the result had none).
pub fn retry_params(params: Option<Value>, responses: Map<String, Value>, result: &Value) -> Value {
    let mut obj = match params {
        Some(Value::Object(o)) => o,
        _ => Map::new(),
    };
    obj.remove("requestState");
    obj.insert("inputResponses".into(), Value::Object(responses));
    if let Some(state) = result.get("requestState") {
        obj.insert("requestState".into(), state.clone());
    }
    Value::Object(obj)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_the_envelope_into_params_meta_keeping_what_is_there() {
        let env = envelope(VERSION, &json!({"sampling": {}}), "mcpscript", "1.0");
        let p = stamp(Some(json!({"name": "echo", "_meta": {"progressToken": 7}})), &env);
        assert_eq!(p["name"], "echo");
        assert_eq!(p["_meta"]["progressToken"], 7);
        assert_eq!(p["_meta"][meta::PROTOCOL_VERSION], VERSION);
        assert_eq!(p["_meta"][meta::CLIENT_CAPABILITIES], json!({"sampling": {}}));
        assert_eq!(p["_meta"][meta::CLIENT_INFO]["name"], "mcpscript");
        assert_eq!(stamp(None, &env)["_meta"][meta::PROTOCOL_VERSION], VERSION);
    }

    #[test]
    fn names_and_statuses() {
        let call = json!({"name": "echo", "arguments": {}});
        assert_eq!(name_of("tools/call", Some(&call)), Some("echo"));
        assert_eq!(name_of("resources/read", Some(&json!({"uri": "test://x"}))), Some("test://x"));
        assert_eq!(name_of("tools/list", Some(&call)), None);
        assert_eq!(header_value("echo"), "echo");
        assert_eq!(header_value("héllo"), "=?base64?aMOpbGxv?=");
        assert_eq!(decode_header_value("=?base64?aMOpbGxv?=").as_deref(), Some("héllo"));
        assert_eq!(decode_header_value("echo").as_deref(), Some("echo"));
        assert_eq!(decode_header_value("=?base64?*?="), None);
        let named = request_headers(VERSION, "tools/call", Some(&json!({"name": "héllo"})));
        let want = [
            (headers::PROTOCOL_VERSION, VERSION.to_string()),
            (headers::METHOD, "tools/call".into()),
            (headers::NAME, "=?base64?aMOpbGxv?=".into()),
        ];
        assert_eq!(named, want);
        assert_eq!(request_headers(VERSION, "tools/list", None).len(), 2, "no Mcp-Name");
        assert_eq!((http_status(-32602), http_status(-32601), http_status(-32603)), (400, 404, 200));
        let data = json!({"supported": ["2026-07-28"], "requested": "2099-01-01"});
        assert_eq!(supported_in(Some(&data)), vec!["2026-07-28".to_string()]);
    }

    #[test]
    fn input_required_rounds() {
        let result = json!({"resultType": "input_required", "requestState": "s1",
            "inputRequests": {"ask": {"method": "elicitation/create", "params": {"message": "name?"}}}});
        assert!(is_input_required(&result));
        assert!(!is_input_required(&json!({"content": []})), "no resultType: complete");
        let asked = input_requests(&result);
        assert_eq!(asked, vec![("ask".into(), "elicitation/create".into(), Some(json!({"message": "name?"})))]);
        let mut answers = Map::new();
        answers.insert("ask".into(), json!({"action": "accept"}));
        let p = retry_params(Some(json!({"name": "greet", "requestState": "old"})), answers, &result);
        assert_eq!(p, json!({"name": "greet", "inputResponses": {"ask": {"action": "accept"}}, "requestState": "s1"}));
        assert_eq!(mutual(&["2099-01-01", VERSION]), Some(VERSION));
        assert_eq!(mutual(&["2025-11-25"]), None);
    }
}
