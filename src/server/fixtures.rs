//! The fixtures of the official MCP conformance suite (`@modelcontextprotocol/conformance`,
//! server mode), always served next to the reference server's own catalog
//! ([`super::catalog`]), which consults this module only for names it does not know, so
//! the existing tools pay nothing for them.
//!
//! Tools: `test_simple_text`, `test_image_content`, `test_audio_content`,
//! `test_embedded_resource`, `test_multiple_content_types`, `test_error_handling`,
//! `test_tool_with_logging` and `test_tool_with_progress` (notifications while they run),
//! `test_sampling`, `test_elicitation`, `test_elicitation_sep1034_defaults`,
//! `test_elicitation_sep1330_enums` (server-to-client requests while they run; in the
//! stateless era, which has none, the elicitation tools answer `input_required` and finish
//! when the request comes again with the answer, and `test_sampling` fails),
//! `json_schema_2020_12_tool` (a 2020-12 input schema), `test_touch_watched_resource`
//! (changes `test://watched-resource`; a session subscribed to it gets
//! `notifications/resources/updated` on the call's stream), and `test_reconnection` (ends
//! its Streamable HTTP event stream mid-call, with `retry:`, and replies 100 ms later, so
//! the reply reaches the client on the stream it resumes with `Last-Event-ID`; on a
//! transport that cannot resume streams it just replies after the pause). Resources:
//! `test://static-text`, `test://static-binary`, `test://watched-resource` and the template
//! `test://template/{id}/data`. Prompts: `test_simple_prompt`, `test_prompt_with_arguments`,
//! `test_prompt_with_embedded_resource`, `test_prompt_with_image`. Completions for the
//! prompt's arguments and the template's `id`.

use super::catalog::ToolResult;
use super::peer::{Asked, Peer, StreamingRun};
use crate::protocol::jsonrpc::{ErrorObject, INVALID_PARAMS};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// A 1x1 red PNG.
pub const PNG_BASE64: &str =
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg==";
/// A WAV file: PCM, mono, 8 kHz, 8 bit, eight samples of silence.
pub const WAV_BASE64: &str = "UklGRiwAAABXQVZFZm10IBAAAAABAAEAQB8AAEAfAAABAAgAZGF0YQgAAACAgICAgICAgA==";

/// The resource that `test_touch_watched_resource` changes.
pub const WATCHED: &str = "test://watched-resource";

/// How far `test://watched-resource` has been changed.
static WATCHED_VERSION: AtomicU64 = AtomicU64::new(0);

/// The pause between the notifications of the logging and progress tools.
const STEP: Duration = Duration::from_millis(50);

/// How long `test_reconnection` works on after it ended its stream.
const RECONNECTION_PAUSE: Duration = Duration::from_millis(100);

/// What `test_reconnection` answers (the reference server's words).
pub const RECONNECTION_TEXT: &str = "Reconnection test completed successfully. If you received this, the client properly reconnected after stream closure.";

fn text(s: impl Into<String>) -> Value {
    json!({"content": [{"type": "text", "text": s.into()}]})
}

fn no_args() -> Value {
    json!({"type": "object", "properties": {}})
}

/// The fixture tools, as `tools/list` lists them.
pub fn tools() -> Vec<Value> {
    let tool = |name: &str, description: &str, schema: Value| json!({"name": name, "description": description, "inputSchema": schema});
    let string_arg = |arg: &str, what: &str| json!({"type": "object", "properties": {arg: {"type": "string", "description": what}}, "required": [arg]});
    vec![
        tool("test_simple_text", "Conformance fixture: returns a simple text", no_args()),
        tool("test_image_content", "Conformance fixture: returns an image (PNG)", no_args()),
        tool("test_audio_content", "Conformance fixture: returns audio (WAV)", no_args()),
        tool("test_embedded_resource", "Conformance fixture: returns an embedded resource", no_args()),
        tool("test_multiple_content_types", "Conformance fixture: returns text, an image and a resource", no_args()),
        tool("test_error_handling", "Conformance fixture: always fails with isError", no_args()),
        tool("test_tool_with_logging", "Conformance fixture: sends three log messages while it runs", no_args()),
        tool("test_tool_with_progress", "Conformance fixture: reports progress 0, 50, 100 of 100", no_args()),
        tool(
            "test_sampling",
            "Conformance fixture: asks the client to sample an LLM",
            string_arg("prompt", "The prompt to send to the LLM"),
        ),
        tool(
            "test_elicitation",
            "Conformance fixture: asks the client for user input",
            string_arg("message", "The message to show the user"),
        ),
        tool(
            "test_elicitation_sep1034_defaults",
            "Conformance fixture: elicitation with a default for every primitive type",
            no_args(),
        ),
        tool(
            "test_elicitation_sep1330_enums",
            "Conformance fixture: elicitation with every enum schema variant",
            no_args(),
        ),
        tool(
            "test_touch_watched_resource",
            "Changes test://watched-resource; subscribers get notifications/resources/updated",
            no_args(),
        ),
        json!({"name": "json_schema_2020_12_tool", "description": "Tool with JSON Schema 2020-12 features",
        "inputSchema": {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "type": "object",
            "$defs": {"address": {"type": "object", "properties": {"street": {"type": "string"}, "city": {"type": "string"}}}},
            "properties": {"name": {"type": "string"}, "address": {"$ref": "#/$defs/address"}},
            "additionalProperties": false
        }}),
        tool(
            "test_reconnection",
            "Conformance fixture (SEP-1699): closes the SSE stream mid-call; the result comes on the stream the \
             client resumes with Last-Event-ID",
            no_args(),
        ),
    ]
}

fn image() -> Value {
    json!({"type": "image", "data": PNG_BASE64, "mimeType": "image/png"})
}

/// `tools/call` of a fixture; `None` when `name` is none of them.
pub fn call_tool(name: &str, params: Option<&Value>) -> Option<ToolResult> {
    let done = |v: Value| Some(ToolResult::Done(Ok(v)));
    let args = params.and_then(|p| p.get("arguments")).cloned().unwrap_or_else(|| json!({}));
    match name {
        "test_simple_text" => done(text("This is a simple text response for testing.")),
        "test_image_content" => done(json!({"content": [image()]})),
        "test_audio_content" => {
            done(json!({"content": [{"type": "audio", "data": WAV_BASE64, "mimeType": "audio/wav"}]}))
        }
        "test_embedded_resource" => done(json!({"content": [{"type": "resource", "resource": {
            "uri": "test://embedded-resource", "mimeType": "text/plain", "text": "This is an embedded resource content."}}]})),
        "test_multiple_content_types" => done(json!({"content": [
            {"type": "text", "text": "Multiple content types test:"},
            image(),
            {"type": "resource", "resource": {"uri": "test://mixed-content-resource", "mimeType": "application/json",
                "text": "{\"test\":\"data\",\"value\":123}"}}
        ]})),
        "test_error_handling" => {
            let mut r = text("This tool intentionally returns an error for testing");
            r["isError"] = json!(true);
            done(r)
        }
        "json_schema_2020_12_tool" => done(text(format!("Received: {args}"))),
        "test_tool_with_logging" => stream(|peer| async move {
            for (i, message) in
                ["Tool execution started", "Tool processing data", "Tool execution completed"].iter().enumerate()
            {
                if i > 0 {
                    tokio::time::sleep(STEP).await;
                }
                peer.log("info", "test_tool_with_logging", json!(message)).await;
            }
            Ok(text("Tool with logging executed successfully"))
        }),
        "test_tool_with_progress" => {
            let token = params.and_then(|p| p.get("_meta")).and_then(|m| m.get("progressToken")).cloned();
            stream(move |peer| async move {
                for (i, progress) in [0, 50, 100].into_iter().enumerate() {
                    if i > 0 {
                        tokio::time::sleep(STEP).await;
                    }
                    peer.progress(token.as_ref(), progress, 100, &format!("{progress}% done")).await;
                }
                Ok(text("Tool with progress executed successfully"))
            })
        }
        "test_sampling" => {
            let Some(prompt) = args.get("prompt").and_then(Value::as_str).map(str::to_string) else {
                return Some(ToolResult::Done(Err(invalid("test_sampling needs arguments.prompt (a string)"))));
            };
            stream(move |peer| async move {
                let params = json!({"messages": [{"role": "user", "content": {"type": "text", "text": prompt}}], "maxTokens": 100});
                let reply = peer.request("sampling/createMessage", params).await?;
                let said =
                    reply["content"]["text"].as_str().map_or_else(|| reply["content"].to_string(), str::to_string);
                Ok(text(format!("LLM response: {said}")))
            })
        }
        "test_elicitation" => {
            let Some(message) = args.get("message").and_then(Value::as_str).map(str::to_string) else {
                return Some(ToolResult::Done(Err(invalid("test_elicitation needs arguments.message (a string)"))));
            };
            let schema = json!({"type": "object", "properties": {
                "username": {"type": "string", "description": "User's response"},
                "email": {"type": "string", "description": "User's email address"}
            }, "required": ["username", "email"]});
            elicit(message, schema, "User response")
        }
        "test_elicitation_sep1034_defaults" => elicit(
            "Please review and update the form fields with defaults".into(),
            json!({"type": "object", "properties": {
                "name": {"type": "string", "description": "User name", "default": "John Doe"},
                "age": {"type": "integer", "description": "User age", "default": 30},
                "score": {"type": "number", "description": "User score", "default": 95.5},
                "status": {"type": "string", "description": "User status", "enum": ["active", "inactive", "pending"], "default": "active"},
                "verified": {"type": "boolean", "description": "Verification status", "default": true}
            }, "required": []}),
            "Elicitation completed",
        ),
        "test_elicitation_sep1330_enums" => elicit(
            "Please select options from the enum fields".into(),
            json!({"type": "object", "properties": {
                "untitledSingle": {"type": "string", "description": "Select one option", "enum": ["option1", "option2", "option3"]},
                "titledSingle": {"type": "string", "description": "Select one option with titles", "oneOf": [
                    {"const": "value1", "title": "First Option"}, {"const": "value2", "title": "Second Option"},
                    {"const": "value3", "title": "Third Option"}]},
                "legacyEnum": {"type": "string", "description": "Select one option (legacy)", "enum": ["opt1", "opt2", "opt3"],
                    "enumNames": ["Option One", "Option Two", "Option Three"]},
                "untitledMulti": {"type": "array", "description": "Select multiple options",
                    "items": {"type": "string", "enum": ["option1", "option2", "option3"]}},
                "titledMulti": {"type": "array", "description": "Select multiple options with titles", "items": {"anyOf": [
                    {"const": "value1", "title": "First Choice"}, {"const": "value2", "title": "Second Choice"},
                    {"const": "value3", "title": "Third Choice"}]}}
            }, "required": []}),
            "Elicitation completed",
        ),
        "test_touch_watched_resource" => stream(|peer| async move {
            let version = WATCHED_VERSION.fetch_add(1, Ordering::Relaxed) + 1;
            if peer.session().exchange().is_subscribed(WATCHED) {
                peer.notify("notifications/resources/updated", json!({"uri": WATCHED})).await;
            }
            Ok(text(format!("{WATCHED} is now at version {version}")))
        }),
        "test_reconnection" => stream(|peer| async move {
            peer.close_stream();
            tokio::time::sleep(RECONNECTION_PAUSE).await;
            Ok(text(RECONNECTION_TEXT))
        }),
        _ => None,
    }
}

fn invalid(msg: impl Into<String>) -> ErrorObject {
    ErrorObject::new(INVALID_PARAMS, msg)
}

fn stream<F, Fut>(work: F) -> Option<ToolResult>
where
    F: FnOnce(Peer) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Result<Value, ErrorObject>> + Send + 'static,
{
    let run: StreamingRun = Box::new(move |peer| Box::pin(work(peer)));
    Some(ToolResult::Stream(run))
}

/// An `elicitation/create` with `schema`; the tool's text is `<label>: action=…, content=…`.
/// In the stateless era the question goes out as an `input_required` result
/// ([`Peer::ask`]).
fn elicit(message: String, schema: Value, label: &'static str) -> Option<ToolResult> {
    stream(move |peer| async move {
        let params = json!({"message": message, "requestedSchema": schema});
        let reply = match peer.ask("elicitation/create", params).await? {
            Asked::Answer(reply) => reply,
            Asked::InputRequired(result) => return Ok(result),
        };
        let action = reply["action"].as_str().unwrap_or("unknown");
        let content = reply.get("content").cloned().unwrap_or(Value::Null);
        Ok(text(format!("{label}: action={action}, content={content}")))
    })
}

/// The fixture resources, as `resources/list` lists them.
pub fn resources() -> Vec<Value> {
    vec![
        json!({"uri": "test://static-text", "name": "static-text", "description": "A static text resource (conformance fixture)", "mimeType": "text/plain"}),
        json!({"uri": "test://static-binary", "name": "static-binary", "description": "A static binary resource: a PNG (conformance fixture)", "mimeType": "image/png"}),
        json!({"uri": WATCHED, "name": "watched-resource", "description": "A resource to subscribe to; test_touch_watched_resource changes it", "mimeType": "text/plain"}),
    ]
}

/// The fixture resource templates.
pub fn resource_templates() -> Vec<Value> {
    vec![json!({"uriTemplate": "test://template/{id}/data", "name": "template-data",
        "description": "Data for an id (conformance fixture)", "mimeType": "application/json"})]
}

/// `resources/read` of a fixture; `None` when `uri` is none of them.
pub fn read_resource(uri: &str) -> Option<Value> {
    let content = match uri {
        "test://static-text" => {
            json!({"uri": uri, "mimeType": "text/plain", "text": "This is the content of the static text resource."})
        }
        "test://static-binary" => json!({"uri": uri, "mimeType": "image/png", "blob": PNG_BASE64}),
        WATCHED => json!({"uri": uri, "mimeType": "text/plain",
            "text": format!("Watched resource, version {}", WATCHED_VERSION.load(Ordering::Relaxed))}),
        _ => {
            let id = uri.strip_prefix("test://template/")?.strip_suffix("/data")?;
            if id.is_empty() || id.contains('/') {
                return None;
            }
            let data = json!({"id": id, "templateTest": true, "data": format!("Data for ID: {id}")});
            json!({"uri": uri, "mimeType": "application/json", "text": data.to_string()})
        }
    };
    Some(json!({"contents": [content]}))
}

/// The fixture prompts, as `prompts/list` lists them.
pub fn prompts() -> Vec<Value> {
    let arg = |name: &str, description: &str| json!({"name": name, "description": description, "required": true});
    vec![
        json!({"name": "test_simple_prompt", "description": "A simple prompt without arguments (conformance fixture)"}),
        json!({"name": "test_prompt_with_arguments", "description": "A prompt with two arguments (conformance fixture)",
            "arguments": [arg("arg1", "First test argument"), arg("arg2", "Second test argument")]}),
        json!({"name": "test_prompt_with_embedded_resource", "description": "A prompt that embeds a resource (conformance fixture)",
            "arguments": [arg("resourceUri", "URI of the resource to embed")]}),
        json!({"name": "test_prompt_with_image", "description": "A prompt with an image (conformance fixture)"}),
    ]
}

/// `prompts/get` of a fixture; `None` when `name` is none of them.
pub fn get_prompt(name: &str, params: Option<&Value>) -> Option<Result<Value, ErrorObject>> {
    let arg = |key: &str| {
        params
            .and_then(|p| p.get("arguments"))
            .and_then(|a| a.get(key))
            .and_then(Value::as_str)
            .ok_or_else(|| invalid(format!("prompt {name} needs arguments.{key} (a string)")))
    };
    let user = |content: Value| json!({"role": "user", "content": content});
    let said = |s: &str| json!({"type": "text", "text": s});
    let messages = match name {
        "test_simple_prompt" => vec![user(said("This is a simple prompt for testing."))],
        "test_prompt_with_arguments" => match (arg("arg1"), arg("arg2")) {
            (Ok(a), Ok(b)) => vec![user(said(&format!("Prompt with arguments: arg1='{a}', arg2='{b}'")))],
            (Err(e), _) | (_, Err(e)) => return Some(Err(e)),
        },
        "test_prompt_with_embedded_resource" => match arg("resourceUri") {
            Ok(uri) => vec![
                user(json!({"type": "resource", "resource": {"uri": uri, "mimeType": "text/plain",
                    "text": "Embedded resource content for testing."}})),
                user(said("Please process the embedded resource above.")),
            ],
            Err(e) => return Some(Err(e)),
        },
        "test_prompt_with_image" => vec![user(image()), user(said("Please analyze the image above."))],
        _ => return None,
    };
    Some(Ok(json!({"messages": messages})))
}

/// `completion/complete`: suggestions for the fixture prompt's arguments and the template's
/// `id` that start with the typed value; empty for anything else.
pub fn complete(params: Option<&Value>) -> Result<Value, ErrorObject> {
    let reference = params.and_then(|p| p.get("ref")).ok_or_else(|| invalid("completion/complete needs params.ref"))?;
    let argument = params
        .and_then(|p| p.get("argument"))
        .and_then(|a| a.get("name"))
        .and_then(Value::as_str)
        .ok_or_else(|| invalid("completion/complete needs params.argument.name (a string)"))?;
    let typed = params.and_then(|p| p["argument"].get("value")).and_then(Value::as_str).unwrap_or("");
    let candidates: &[&str] = match (reference["type"].as_str(), argument) {
        (Some("ref/prompt"), "arg1" | "arg2") if reference["name"] == "test_prompt_with_arguments" => {
            &["paris", "park", "party", "test", "testValue1", "testValue2"]
        }
        (Some("ref/prompt"), "name") if reference["name"] == "greeting" => &["Ada", "Alan", "Grace"],
        (Some("ref/resource"), "id") if reference["uri"] == "test://template/{id}/data" => &["1", "42", "123"],
        (Some("ref/prompt" | "ref/resource"), _) => &[],
        _ => return Err(invalid("completion/complete: params.ref.type must be \"ref/prompt\" or \"ref/resource\"")),
    };
    let values: Vec<&str> = candidates.iter().copied().filter(|c| c.starts_with(typed)).collect();
    Ok(json!({"completion": {"total": values.len(), "values": values, "hasMore": false}}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_fixtures_match_the_suite() {
        let Some(ToolResult::Done(Ok(r))) = call_tool("test_multiple_content_types", None) else { panic!() };
        let types: Vec<&str> = r["content"].as_array().unwrap().iter().filter_map(|c| c["type"].as_str()).collect();
        assert_eq!(types, ["text", "image", "resource"]);
        let Some(ToolResult::Done(Ok(r))) = call_tool("test_error_handling", None) else { panic!() };
        assert_eq!(r["isError"], true);
        assert!(call_tool("echo", None).is_none(), "the catalog's own tools are not fixtures");
        assert!(matches!(call_tool("test_sampling", None), Some(ToolResult::Done(Err(e))) if e.code == INVALID_PARAMS));
    }

    #[test]
    fn templates_prompts_and_completions() {
        let r = read_resource("test://template/123/data").unwrap();
        assert!(r["contents"][0]["text"].as_str().unwrap().contains("\"id\":\"123\""));
        assert!(read_resource("test://template//data").is_none());
        assert!(read_resource("test://nothing").is_none());
        assert_eq!(read_resource("test://static-binary").unwrap()["contents"][0]["blob"], PNG_BASE64);
        let p = get_prompt("test_prompt_with_arguments", Some(&json!({"arguments": {"arg1": "x", "arg2": "y"}})));
        assert_eq!(p.unwrap().unwrap()["messages"][0]["content"]["text"], "Prompt with arguments: arg1='x', arg2='y'");
        assert_eq!(get_prompt("test_prompt_with_arguments", None).unwrap().unwrap_err().code, INVALID_PARAMS);
        let c = complete(Some(&json!({"ref": {"type": "ref/prompt", "name": "test_prompt_with_arguments"},
            "argument": {"name": "arg1", "value": "par"}})))
        .unwrap();
        assert_eq!(c["completion"]["values"], json!(["paris", "park", "party"]));
        assert_eq!(
            complete(Some(&json!({"ref": {"type": "x"}, "argument": {"name": "a"}}))).unwrap_err().code,
            INVALID_PARAMS
        );
    }
}
