//! The reference server's tools, resources and prompts. Tools: `echo` (argument `message`,
//! answering `Echo: <message>` like the official reference server), `add`, `sleep`, `fail`,
//! `payload` and `stats`. Resources: `mcpscript://readme`, `mcpscript://stats` and the
//! template `mcpscript://payload/{size}`. Prompt: `greeting`. Names none of these know
//! fall through to the conformance fixtures ([`super::fixtures`]), listed after them.

use crate::protocol::jsonrpc::{ErrorObject, INTERNAL_ERROR, INVALID_PARAMS};
use crate::protocol::mcp::codes;
use serde_json::{json, Value};
use std::sync::OnceLock;
use std::time::Duration;

/// Longest `sleep` the server accepts.
pub const MAX_SLEEP: Duration = Duration::from_secs(300);
/// Largest `payload` the server produces.
pub const MAX_PAYLOAD: u64 = 16 * 1024 * 1024;

/// A tool's outcome, possibly only after a delay, or a call that talks to the client
/// while it runs (notifications, server requests: [`super::peer`]).
pub enum ToolResult {
    Done(Result<Value, ErrorObject>),
    After(Duration, Result<Value, ErrorObject>),
    Stream(super::peer::StreamingRun),
}

fn invalid(msg: impl Into<String>) -> ErrorObject {
    ErrorObject::new(INVALID_PARAMS, msg)
}

fn text(s: impl Into<String>) -> Value {
    json!({"content": [{"type": "text", "text": s.into()}]})
}

/// The `tools/list` result (built once).
pub fn tools_list() -> Value {
    static TOOLS: OnceLock<Value> = OnceLock::new();
    TOOLS
        .get_or_init(|| {
            let mut tools = json!({"tools": [
                {"name": "echo", "description": "Echoes back the input message",
                 "inputSchema": {"type": "object", "properties": {"message": {"type": "string", "description": "Message to echo"}}, "required": ["message"]}},
                {"name": "add", "description": "Adds two numbers",
                 "inputSchema": {"type": "object", "properties": {"a": {"type": "number"}, "b": {"type": "number"}}, "required": ["a", "b"]}},
                {"name": "sleep", "description": "Waits before answering: ms (integer) or duration (\"250ms\")",
                 "inputSchema": {"type": "object", "properties": {"ms": {"type": "integer", "minimum": 0}, "duration": {"type": "string"}}}},
                {"name": "fail", "description": "Fails: a JSON-RPC error (mode rpc, default) or a tool result with isError (mode tool)",
                 "inputSchema": {"type": "object", "properties": {"message": {"type": "string"}, "code": {"type": "integer"}, "mode": {"type": "string", "enum": ["rpc", "tool"]}}}},
                {"name": "payload", "description": "Returns a text of the requested size in bytes",
                 "inputSchema": {"type": "object", "properties": {"size": {"type": "integer", "minimum": 0, "maximum": MAX_PAYLOAD}}, "required": ["size"]}},
                {"name": "stats", "description": "The server's counters and resident memory",
                 "inputSchema": {"type": "object", "properties": {}}}
            ]});
            if let Some(list) = tools["tools"].as_array_mut() {
                list.extend(super::fixtures::tools());
            }
            tools
        })
        .clone()
}

/// `tools/call`. `stats` is called for the `stats` tool only.
pub fn call_tool(params: Option<&Value>, stats: impl FnOnce() -> Value) -> ToolResult {
    let done = ToolResult::Done;
    let Some(name) = params.and_then(|p| p.get("name")).and_then(Value::as_str) else {
        return done(Err(invalid("tools/call needs params.name (a string)")));
    };
    let empty = json!({});
    let args = params.and_then(|p| p.get("arguments")).unwrap_or(&empty);
    match name {
        "echo" => match args.get("message").and_then(Value::as_str) {
            Some(m) => done(Ok(text(format!("Echo: {m}")))),
            None => done(Err(invalid("echo needs arguments.message (a string)"))),
        },
        "add" => match (args.get("a").and_then(Value::as_f64), args.get("b").and_then(Value::as_f64)) {
            (Some(a), Some(b)) => {
                let sum = a + b;
                let mut r = text(format!("{sum}"));
                r["structuredContent"] = json!({"sum": sum});
                done(Ok(r))
            }
            _ => done(Err(invalid("add needs numeric arguments a and b"))),
        },
        "sleep" => match sleep_duration(args) {
            Ok(d) => ToolResult::After(d, Ok(text(format!("slept {}", crate::util::human::duration(d))))),
            Err(e) => done(Err(e)),
        },
        "fail" => {
            let message = args.get("message").and_then(Value::as_str).unwrap_or("failure requested by the fail tool");
            match args.get("mode").and_then(Value::as_str).unwrap_or("rpc") {
                "tool" => {
                    let mut r = text(message);
                    r["isError"] = json!(true);
                    done(Ok(r))
                }
                "rpc" => done(Err(ErrorObject::new(
                    args.get("code").and_then(Value::as_i64).unwrap_or(INTERNAL_ERROR),
                    message,
                ))),
                other => done(Err(invalid(format!("fail: mode must be \"rpc\" or \"tool\", got \"{other}\"")))),
            }
        }
        "payload" => match args.get("size").and_then(Value::as_u64) {
            Some(size) if size <= MAX_PAYLOAD => done(Ok(text(payload(size as usize)))),
            Some(size) => {
                done(Err(invalid(format!("payload: size {size} exceeds the maximum of {MAX_PAYLOAD} bytes"))))
            }
            None => done(Err(invalid("payload needs arguments.size (a non-negative integer)"))),
        },
        "stats" => {
            let s = stats();
            let mut r = text(s.to_string());
            r["structuredContent"] = s;
            done(Ok(r))
        }
        other => super::fixtures::call_tool(other, params)
            .unwrap_or_else(|| done(Err(invalid(format!("Unknown tool: {other}"))))),
    }
}

fn sleep_duration(args: &Value) -> Result<Duration, ErrorObject> {
    let d = if let Some(ms) = args.get("ms") {
        Duration::from_millis(ms.as_u64().ok_or_else(|| invalid("sleep: ms must be a non-negative integer"))?)
    } else if let Some(s) = args.get("duration").and_then(Value::as_str) {
        crate::util::duration::parse_duration(s).map_err(|e| invalid(format!("sleep: {e}")))?
    } else {
        return Err(invalid("sleep needs arguments.ms (integer) or arguments.duration (\"250ms\")"));
    };
    if d > MAX_SLEEP {
        return Err(invalid(format!("sleep: at most {}s", MAX_SLEEP.as_secs())));
    }
    Ok(d)
}

/// `size` bytes of printable text.
pub fn payload(size: usize) -> String {
    const PATTERN: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    PATTERN.iter().cycle().take(size).map(|&b| b as char).collect()
}

pub fn resources_list() -> Value {
    let mut resources = vec![
        json!({"uri": "mcpscript://readme", "name": "readme", "title": "About this server", "mimeType": "text/plain"}),
        json!({"uri": "mcpscript://stats", "name": "stats", "title": "Server counters", "mimeType": "application/json"}),
    ];
    resources.extend(super::fixtures::resources());
    json!({"resources": resources})
}

pub fn resource_templates_list() -> Value {
    let mut templates = vec![json!(
        {"uriTemplate": "mcpscript://payload/{size}", "name": "payload", "title": "A text of SIZE bytes", "mimeType": "text/plain"}
    )];
    templates.extend(super::fixtures::resource_templates());
    json!({"resourceTemplates": templates})
}

pub fn read_resource(params: Option<&Value>, stats: impl FnOnce() -> Value) -> Result<Value, ErrorObject> {
    let uri = params
        .and_then(|p| p.get("uri"))
        .and_then(Value::as_str)
        .ok_or_else(|| invalid("resources/read needs params.uri (a string)"))?;
    let (mime, body) = match uri {
        "mcpscript://readme" => {
            ("text/plain", "mcpscript reference server: a real MCP server for load and conformance tests.".to_string())
        }
        "mcpscript://stats" => ("application/json", stats().to_string()),
        _ => match uri.strip_prefix("mcpscript://payload/").map(str::parse::<u64>) {
            Some(Ok(size)) if size <= MAX_PAYLOAD => ("text/plain", payload(size as usize)),
            _ => {
                if let Some(found) = super::fixtures::read_resource(uri) {
                    return Ok(found);
                }
                return Err(
                    ErrorObject::new(codes::RESOURCE_NOT_FOUND, "Resource not found").with_data(json!({"uri": uri}))
                );
            }
        },
    };
    Ok(json!({"contents": [{"uri": uri, "mimeType": mime, "text": body}]}))
}

pub fn prompts_list() -> Value {
    let mut prompts = vec![json!(
        {"name": "greeting", "title": "Greeting", "description": "Greets someone by name",
         "arguments": [{"name": "name", "description": "Who to greet", "required": true}]}
    )];
    prompts.extend(super::fixtures::prompts());
    json!({"prompts": prompts})
}

pub fn get_prompt(params: Option<&Value>) -> Result<Value, ErrorObject> {
    let name = params
        .and_then(|p| p.get("name"))
        .and_then(Value::as_str)
        .ok_or_else(|| invalid("prompts/get needs params.name (a string)"))?;
    if name != "greeting" {
        return super::fixtures::get_prompt(name, params)
            .unwrap_or_else(|| Err(invalid(format!("Unknown prompt: {name}"))));
    }
    let who = params
        .and_then(|p| p.get("arguments"))
        .and_then(|a| a.get("name"))
        .and_then(Value::as_str)
        .ok_or_else(|| invalid("prompt greeting needs arguments.name"))?;
    Ok(json!({
        "description": "Greets someone by name",
        "messages": [{"role": "user", "content": {"type": "text", "text": format!("Please greet {who} warmly.")}}]
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(v: Value) -> Result<Value, ErrorObject> {
        match call_tool(Some(&v), || json!({"requests": 1})) {
            ToolResult::Done(r) => r,
            ToolResult::After(_, r) => r,
            ToolResult::Stream(_) => panic!("a streaming tool"),
        }
    }

    #[test]
    fn tools_answer_and_validate() {
        assert_eq!(
            call(json!({"name":"echo","arguments":{"message":"hi"}})).unwrap()["content"][0]["text"],
            "Echo: hi"
        );
        assert_eq!(call(json!({"name":"add","arguments":{"a":2,"b":3.5}})).unwrap()["structuredContent"]["sum"], 5.5);
        assert_eq!(
            call(json!({"name":"payload","arguments":{"size":100}})).unwrap()["content"][0]["text"]
                .as_str()
                .unwrap()
                .len(),
            100
        );
        assert_eq!(call(json!({"name":"fail","arguments":{"code":-32099}})).unwrap_err().code, -32099);
        assert_eq!(call(json!({"name":"fail","arguments":{"mode":"tool"}})).unwrap()["isError"], true);
        assert_eq!(call(json!({"name":"echo","arguments":{}})).unwrap_err().code, INVALID_PARAMS);
        assert_eq!(call(json!({"name":"nope"})).unwrap_err().code, INVALID_PARAMS);
        assert!(matches!(call_tool(Some(&json!({"name":"sleep","arguments":{"duration":"20ms"}})), || json!({})),
            ToolResult::After(d, Ok(_)) if d == Duration::from_millis(20)));
    }

    #[test]
    fn resources_and_prompts() {
        let r = read_resource(Some(&json!({"uri":"mcpscript://payload/10"})), || json!({})).unwrap();
        assert_eq!(r["contents"][0]["text"].as_str().unwrap().len(), 10);
        assert_eq!(
            read_resource(Some(&json!({"uri":"x://y"})), || json!({})).unwrap_err().code,
            codes::RESOURCE_NOT_FOUND
        );
        assert!(get_prompt(Some(&json!({"name":"greeting","arguments":{"name":"Ada"}}))).unwrap()["messages"][0]
            ["content"]["text"]
            .as_str()
            .unwrap()
            .contains("Ada"));
        assert_eq!(get_prompt(Some(&json!({"name":"greeting"}))).unwrap_err().code, INVALID_PARAMS);
    }
}
