//! The server side of the stateless revision (2026-07-28, [`crate::protocol::stateless`]),
//! as the official Python SDK (2.3.0) serves it: the request ladder ([`classify`]: the
//! envelope in `params._meta`, then the HTTP routing headers, then the revision; -32602,
//! -32020, -32022, the first failure wins), the answers that belong to this era only
//! (`initialize` on a stateless connection, an envelope on a handshake one, removed
//! methods, no back-channel), `server/discover`, and the stamp every result carries
//! ([`finish`]: `resultType`, the `_meta` serverInfo, `ttlMs` and `cacheScope` on
//! cacheable results; a missing resource is -32602 with `data: {uri}`).
//!
//! Which era a request is in: over Streamable HTTP its `MCP-Protocol-Version` header
//! decides, per request ([`super::http`]); a connection of the other transports (tcp,
//! stdio, ws, legacy SSE) serves the era its first request opens ([`opens_stateless`]), as
//! the SDK's stdio loop does. A stateless request is handled with a state of its own,
//! built from its envelope ([`super::SessionState::for_request`]): nothing carries over.

use super::peer::LOG_LEVELS;
use crate::protocol::jsonrpc::{ErrorObject, Request, INVALID_PARAMS, INVALID_REQUEST, METHOD_NOT_FOUND};
use crate::protocol::mcp::{codes as mcp_codes, methods};
use crate::protocol::stateless::{self, codes, meta, DISCOVER, VERSIONS};
use serde_json::{json, Map, Value};

/// What a request's envelope declares, once [`classify`] accepted it, and the answers it
/// brings to the server's earlier questions.
#[derive(Debug)]
pub struct Envelope {
    pub capabilities: Value,
    /// The per-request log opt-in; `None`: no `notifications/message` for this request.
    pub log_level: Option<String>,
    /// `params.inputResponses`: the client's answers to the `inputRequests` of an
    /// `input_required` result, by their key, when it sends the request again.
    pub input_responses: Option<Map<String, Value>>,
}

/// The routing headers of a stateless HTTP request, as the ladder compares them with its
/// body (`None`: absent, or not visible ASCII).
#[derive(Debug, Default)]
pub struct Headers<'a> {
    pub version: Option<&'a str>,
    pub method: Option<&'a str>,
    /// `Mcp-Name` as sent (maybe `=?base64?…?=`).
    pub name: Option<&'a str>,
    /// The first routing header that appears more than once (lower case).
    pub duplicated: Option<&'a str>,
}

/// Whether `params._meta` carries the envelope's revision key: the one sign of this era
/// (a handshake-era `_meta` holds `progressToken` at most).
pub fn carries_envelope(params: Option<&Value>) -> bool {
    params
        .and_then(|p| p.get("_meta"))
        .and_then(Value::as_object)
        .is_some_and(|m| m.contains_key(meta::PROTOCOL_VERSION))
}

/// Whether the first request of a connection opens it in the stateless era: it carries
/// the envelope and is not `initialize` (which does not exist in this era, envelope or not).
pub fn opens_stateless(req: &Request) -> bool {
    req.method != methods::INITIALIZE && carries_envelope(req.params.as_ref())
}

/// The SDK's ladder for one request: duplicated routing headers, the envelope, the
/// headers against the body (HTTP only: `headers` is `None` on the other transports), the
/// revision. The first failure is the answer.
pub fn classify(req: &Request, headers: Option<&Headers>) -> Result<Envelope, ErrorObject> {
    if let Some(name) = headers.and_then(|h| h.duplicated) {
        return Err(mismatch(format!("{name} header appears more than once")));
    }
    let Some(envelope) = req.params.as_ref().and_then(|p| p.get("_meta")).and_then(Value::as_object) else {
        return Err(invalid(format!(
            "params._meta must be an object carrying the required '{}' and '{}' envelope keys",
            meta::PROTOCOL_VERSION,
            meta::CLIENT_CAPABILITIES
        )));
    };
    let missing: Vec<&str> = [meta::PROTOCOL_VERSION, meta::CLIENT_CAPABILITIES]
        .into_iter()
        .filter(|k| !envelope.contains_key(*k))
        .collect();
    if !missing.is_empty() {
        return Err(invalid(format!("params._meta is missing the required envelope key(s): {}", missing.join(", "))));
    }
    let version = &envelope[meta::PROTOCOL_VERSION];
    if let Some(headers) = headers {
        check_headers(req, version, headers)?;
    }
    let Some(version) = version.as_str() else {
        return Err(invalid("the protocol-version envelope value must be a string"));
    };
    if !stateless::is_stateless(version) {
        return Err(unsupported(version, "Unsupported protocol version"));
    }
    let log_level = match envelope.get(meta::LOG_LEVEL) {
        None | Some(Value::Null) => None,
        Some(Value::String(l)) if LOG_LEVELS.contains(&l.as_str()) => Some(l.clone()),
        Some(other) => {
            return Err(invalid(format!(
                "params._meta['{}'] must be one of {}, not {other}",
                meta::LOG_LEVEL,
                LOG_LEVELS.join(", ")
            )))
        }
    };
    let input_responses = match req.params.as_ref().and_then(|p| p.get("inputResponses")) {
        None | Some(Value::Null) => None,
        Some(Value::Object(answers)) => Some(answers.clone()),
        Some(_) => return Err(invalid("params.inputResponses must be an object")),
    };
    Ok(Envelope { capabilities: envelope[meta::CLIENT_CAPABILITIES].clone(), log_level, input_responses })
}

/// The header rung: `MCP-Protocol-Version` equals the envelope's revision, `Mcp-Method`
/// the method, `Mcp-Name` the body's name (`tools/call`, `prompts/get`) or uri
/// (`resources/read`) when the body has one. Absent counts as different.
fn check_headers(req: &Request, version: &Value, headers: &Headers) -> Result<(), ErrorObject> {
    if headers.version.is_none() || headers.version != version.as_str() {
        return Err(mismatch("mcp-protocol-version header does not match the request envelope's protocol version"));
    }
    if headers.method != Some(req.method.as_str()) {
        return Err(mismatch("mcp-method header does not match the request body's method"));
    }
    if let Some(body) = stateless::name_of(&req.method, req.params.as_ref()) {
        if headers.name.and_then(stateless::decode_header_value).as_deref() != Some(body) {
            let key = if req.method == methods::RESOURCES_READ { "uri" } else { "name" };
            return Err(mismatch(format!("mcp-name header does not match the request body's '{key}' parameter")));
        }
    }
    Ok(())
}

/// -32022: `requested` is not spoken; `data` lists what is.
pub fn unsupported(requested: &str, message: &str) -> ErrorObject {
    ErrorObject::new(codes::UNSUPPORTED_VERSION, message)
        .with_data(json!({"supported": VERSIONS, "requested": requested}))
}

/// `initialize` on a connection that serves the stateless era: -32022 naming what it
/// serves (and the revision asked for, when there is one).
pub fn initialize_refused(params: Option<&Value>) -> ErrorObject {
    let message =
        format!("connection is serving the {} protocol; the initialize handshake is not accepted", VERSIONS[0]);
    match params.and_then(|p| p.get("protocolVersion")).and_then(Value::as_str) {
        Some(requested) => unsupported(requested, &message),
        None => ErrorObject::new(codes::UNSUPPORTED_VERSION, message).with_data(json!({"supported": VERSIONS})),
    }
}

/// An enveloped request on a connection that serves the handshake era: -32600.
pub fn envelope_refused() -> ErrorObject {
    ErrorObject::new(
        INVALID_REQUEST,
        format!(
            "this connection serves the handshake protocol era; requests carrying the {} envelope are not accepted on it",
            VERSIONS[0]
        ),
    )
}

/// A method this era removed (`ping`, `initialize`, `logging/setLevel`,
/// `resources/(un)subscribe`): -32601 with the method as `data`, as the SDK answers.
pub fn removed(method: &str) -> Option<ErrorObject> {
    stateless::REMOVED_METHODS
        .contains(&method)
        .then(|| ErrorObject::new(METHOD_NOT_FOUND, "Method not found").with_data(json!(method)))
}

/// A server-to-client request in an era without them (the SDK's `NoBackChannelError`).
pub fn no_back_channel(method: &str) -> ErrorObject {
    ErrorObject::new(
        INVALID_REQUEST,
        format!("Cannot send '{method}': this transport context has no back-channel for server-initiated requests."),
    )
}

/// What a tool answers in place of its result when it needs the client's answer to
/// `method` first (the stateless era's way to ask: the client answers and sends the
/// request again, with the answer in `params.inputResponses` under the key, here the
/// method). No `requestState`: the fixtures need nothing but the answer.
pub fn input_required(method: &str, params: Value) -> Value {
    json!({"resultType": "input_required", "inputRequests": {method: {"method": method, "params": params}}})
}

/// -32021: the request needs `capability`, which its envelope did not declare.
pub fn missing_capability(capability: &str, method: &str) -> ErrorObject {
    ErrorObject::new(
        codes::MISSING_CAPABILITY,
        format!("the client did not declare the {capability} capability in this request's envelope, so it cannot answer {method}"),
    )
    .with_data(json!({"requiredCapabilities": {capability: {}}}))
}

/// The `server/discover` result (stamped by [`finish`] like every other).
pub fn discover(capabilities: Value, instructions: &str) -> Value {
    json!({"supportedVersions": VERSIONS, "capabilities": capabilities, "instructions": instructions})
}

/// How a request's result is stamped: cacheable results (the lists, `resources/read`,
/// `server/discover`) also carry `ttlMs` and `cacheScope`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    Plain,
    Cacheable,
    /// `resources/read`: cacheable, and a missing resource is -32602.
    Read,
}

impl Shape {
    pub fn of(method: &str) -> Shape {
        match method {
            methods::TOOLS_LIST
            | methods::PROMPTS_LIST
            | methods::RESOURCES_LIST
            | methods::RESOURCE_TEMPLATES_LIST
            | DISCOVER => Shape::Cacheable,
            methods::RESOURCES_READ => Shape::Read,
            _ => Shape::Plain,
        }
    }
}

/// A stateless request's outcome as it goes out: a result gets `resultType: "complete"`
/// (unless it says otherwise), the `_meta` serverInfo (`server_info`: name and version)
/// and, when cacheable, `ttlMs: 0` and `cacheScope: "private"`; the handshake era's
/// resource-not-found (-32002) becomes -32602 with `data: {uri}`.
pub fn finish(shape: Shape, server_info: Value, outcome: Result<Value, ErrorObject>) -> Result<Value, ErrorObject> {
    match outcome {
        Ok(mut result) => {
            if let Some(obj) = result.as_object_mut() {
                obj.entry("resultType").or_insert_with(|| json!("complete"));
                if shape != Shape::Plain {
                    obj.entry("ttlMs").or_insert_with(|| json!(0));
                    obj.entry("cacheScope").or_insert_with(|| json!("private"));
                }
                let stamp = obj.entry("_meta").or_insert_with(|| json!({}));
                if let Some(stamp) = stamp.as_object_mut() {
                    stamp.insert(meta::SERVER_INFO.into(), server_info);
                }
            }
            Ok(result)
        }
        Err(e) if shape == Shape::Read && e.code == mcp_codes::RESOURCE_NOT_FOUND => {
            let uri = e.data.as_ref().and_then(|d| d.get("uri")).cloned().unwrap_or(Value::Null);
            let shown = uri.as_str().map_or_else(|| uri.to_string(), str::to_string);
            Err(ErrorObject::new(INVALID_PARAMS, format!("Unknown resource: {shown}")).with_data(json!({"uri": uri})))
        }
        Err(e) => Err(e),
    }
}

fn invalid(message: impl Into<String>) -> ErrorObject {
    ErrorObject::new(INVALID_PARAMS, message)
}

fn mismatch(message: impl Into<String>) -> ErrorObject {
    ErrorObject::new(codes::HEADER_MISMATCH, message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::jsonrpc::Id;
    use crate::protocol::stateless::VERSION;

    fn request(method: &str, params: Value) -> Request {
        Request { id: Id::Num(1), method: method.into(), params: Some(params) }
    }

    fn enveloped(version: &str, extra: Value) -> Value {
        let mut p = json!({"_meta": {meta::PROTOCOL_VERSION: version, meta::CLIENT_CAPABILITIES: {}}});
        if let (Some(p), Some(extra)) = (p.as_object_mut(), extra.as_object()) {
            p.extend(extra.clone());
        }
        p
    }

    fn code(r: Result<Envelope, ErrorObject>) -> i64 {
        r.unwrap_err().code
    }

    #[test]
    fn the_ladder_checks_envelope_then_headers_then_version() {
        let call = request("tools/call", enveloped("2099-01-01", json!({"name": "echo"})));
        // No envelope beats everything; a header mismatch beats the unsupported version.
        assert_eq!(code(classify(&request("tools/call", json!({"name": "echo"})), None)), INVALID_PARAMS);
        let half = request("tools/list", json!({"_meta": {meta::PROTOCOL_VERSION: VERSION}}));
        let e = classify(&half, None).unwrap_err();
        assert!(e.message.ends_with(meta::CLIENT_CAPABILITIES), "{e}");
        let headers = Headers { version: Some("2099-01-01"), method: Some("tools/call"), ..Default::default() };
        assert!(classify(&call, Some(&headers)).unwrap_err().message.starts_with("mcp-name"));
        let headers = Headers { name: Some("echo"), ..headers };
        let e = classify(&call, Some(&headers)).unwrap_err();
        assert_eq!(
            (e.code, e.data),
            (codes::UNSUPPORTED_VERSION, Some(json!({"supported": [VERSION], "requested": "2099-01-01"})))
        );
        let dup = Headers { duplicated: Some("mcp-method"), ..Default::default() };
        assert_eq!(code(classify(&call, Some(&dup))), codes::HEADER_MISMATCH);
        // Without headers (tcp, stdio, ws) only the envelope and the version count.
        assert_eq!(code(classify(&call, None)), codes::UNSUPPORTED_VERSION);
        let ok = request("resources/read", enveloped(VERSION, json!({"uri": "a b"})));
        let headers = Headers {
            version: Some(VERSION),
            method: Some("resources/read"),
            name: Some("=?base64?YSBi?="),
            duplicated: None,
        };
        assert!(classify(&ok, Some(&headers)).is_ok());
        let mut leveled = enveloped(VERSION, json!({}));
        leveled["_meta"][meta::LOG_LEVEL] = json!("info");
        assert_eq!(classify(&request("tools/list", leveled.clone()), None).unwrap().log_level.as_deref(), Some("info"));
        leveled["_meta"][meta::LOG_LEVEL] = json!("loud");
        assert_eq!(code(classify(&request("tools/list", leveled), None)), INVALID_PARAMS);
        let answered = enveloped(VERSION, json!({"inputResponses": {"elicitation/create": {"action": "decline"}}}));
        let envelope = classify(&request("tools/call", answered), None).unwrap();
        assert_eq!(envelope.input_responses.unwrap()["elicitation/create"]["action"], "decline");
        let bad = enveloped(VERSION, json!({"inputResponses": [1]}));
        assert_eq!(code(classify(&request("tools/call", bad), None)), INVALID_PARAMS);
    }

    #[test]
    fn only_an_enveloped_request_other_than_initialize_opens_the_stateless_era() {
        assert!(opens_stateless(&request("tools/list", enveloped("2099-01-01", json!({})))));
        assert!(!opens_stateless(&request("initialize", enveloped(VERSION, json!({})))));
        assert!(!opens_stateless(&request("tools/call", json!({"_meta": {"progressToken": 1}}))));
    }

    #[test]
    fn results_are_stamped_and_missing_resources_are_invalid_params() {
        let info = json!({"name": "mcpscript", "version": "1"});
        let list = finish(Shape::Cacheable, info.clone(), Ok(json!({"tools": []}))).unwrap();
        assert_eq!((list["resultType"].clone(), list["ttlMs"].clone()), (json!("complete"), json!(0)));
        assert_eq!(list["cacheScope"], "private");
        assert_eq!(list["_meta"][meta::SERVER_INFO], info);
        let call = finish(Shape::Plain, info.clone(), Ok(json!({"content": []}))).unwrap();
        assert!(call.get("ttlMs").is_none());
        let asking = finish(Shape::Plain, info.clone(), Ok(input_required("elicitation/create", json!({})))).unwrap();
        assert_eq!(asking["resultType"], "input_required", "a result that says what it is keeps it");
        let missing =
            ErrorObject::new(mcp_codes::RESOURCE_NOT_FOUND, "Resource not found").with_data(json!({"uri": "x://y"}));
        let e = finish(Shape::Read, info.clone(), Err(missing.clone())).unwrap_err();
        assert_eq!((e.code, e.data), (INVALID_PARAMS, Some(json!({"uri": "x://y"}))));
        assert_eq!(finish(Shape::Plain, info, Err(missing)).unwrap_err().code, mcp_codes::RESOURCE_NOT_FOUND);
        assert_eq!(removed("ping").unwrap().code, METHOD_NOT_FOUND);
        assert!(removed("tools/list").is_none());
    }
}
