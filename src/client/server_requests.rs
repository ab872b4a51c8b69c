//! Requests a server sends to the client (`sampling/createMessage`, `elicitation/create`,
//! `roots/list`, `ping`) and how a session answers them: [`ServerRequests`] says what the
//! session is configured to answer, which is also what it declares as its capabilities in
//! `initialize` (nothing is declared that would only be refused). An answer is either
//! canned (a fixed result, usable in load phases) or asked of someone else over a channel
//! ([`Answer::Ask`]: a script's callback, run on the script thread). An accepted
//! elicitation gets the defaults of its requested schema for the fields the answer left
//! out (SEP-1034).

use crate::protocol::jsonrpc::{ErrorObject, INTERNAL_ERROR, METHOD_NOT_FOUND};
use crate::protocol::mcp::methods;
use serde_json::{json, Map, Value};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

pub const SAMPLING: &str = "sampling/createMessage";
pub const ELICITATION: &str = "elicitation/create";
pub const ROOTS_LIST: &str = "roots/list";

/// How one kind of server request is answered.
#[derive(Clone, Debug)]
pub enum Answer {
    /// This result, every time.
    Canned(Value),
    /// Asked over this channel; the answer comes back on the [`Ask`]'s oneshot.
    Ask(mpsc::UnboundedSender<Ask>),
}

/// A server request handed to whoever answers it (a script callback).
#[derive(Debug)]
pub struct Ask {
    pub method: String,
    pub params: Value,
    pub reply: oneshot::Sender<Result<Value, ErrorObject>>,
}

/// What a session answers besides `ping`.
#[derive(Clone, Debug, Default)]
pub struct ServerRequests {
    pub sampling: Option<Answer>,
    pub elicitation: Option<Answer>,
    /// `roots/list` is answered with these roots (`{uri, name?}` objects) when set.
    pub roots: Option<Vec<Value>>,
    /// How long an [`Answer::Ask`] may take before the server gets an error instead
    /// (zero: the session's request timeout).
    pub ask_timeout: Duration,
}

/// How the dispatcher answers one server request.
pub enum Handling {
    /// At once, with this outcome.
    Now(Result<Value, ErrorObject>),
    /// Later: the outcome arrives on this receiver (asked of a callback).
    Later(oneshot::Receiver<Result<Value, ErrorObject>>, Duration),
}

impl ServerRequests {
    /// The `capabilities` a client with these answers declares in `initialize`.
    pub fn capabilities(&self) -> Value {
        let mut caps = Map::new();
        if self.sampling.is_some() {
            caps.insert("sampling".into(), json!({}));
        }
        if self.elicitation.is_some() {
            caps.insert("elicitation".into(), json!({"form": {}}));
        }
        if self.roots.is_some() {
            caps.insert("roots".into(), json!({"listChanged": false}));
        }
        Value::Object(caps)
    }

    /// Whether any answer is configured (else every request but `ping` is refused).
    pub fn any(&self) -> bool {
        self.sampling.is_some() || self.elicitation.is_some() || self.roots.is_some()
    }

    /// How to answer request `method` with `params`.
    pub fn handle(&self, method: &str, params: Option<&Value>) -> Handling {
        let refuse = || {
            Handling::Now(Err(ErrorObject::new(
                METHOD_NOT_FOUND,
                format!("mcpscript client does not handle '{method}' (not configured for this session)"),
            )))
        };
        let answer = match method {
            methods::PING => return Handling::Now(Ok(json!({}))),
            ROOTS_LIST => {
                return match &self.roots {
                    Some(roots) => Handling::Now(Ok(json!({"roots": roots}))),
                    None => refuse(),
                }
            }
            SAMPLING => &self.sampling,
            ELICITATION => &self.elicitation,
            _ => return refuse(),
        };
        let params = params.cloned().unwrap_or(Value::Null);
        match answer {
            None => refuse(),
            Some(Answer::Canned(result)) => Handling::Now(Ok(finish(method, &params, result.clone()))),
            Some(Answer::Ask(tx)) => {
                let (reply, rx) = oneshot::channel();
                if tx.send(Ask { method: method.to_string(), params, reply }).is_err() {
                    return Handling::Now(Err(ErrorObject::new(
                        INTERNAL_ERROR,
                        format!("the handler for '{method}' is gone (its script ended)"),
                    )));
                }
                Handling::Later(rx, self.ask_timeout)
            }
        }
    }
}

/// Completes an answer: an accepted elicitation gets the requested schema's defaults for
/// the fields it left out (SEP-1034); other answers are returned as they are.
pub fn finish(method: &str, params: &Value, mut result: Value) -> Value {
    if method != ELICITATION {
        return result;
    }
    let Some(obj) = result.as_object_mut() else { return result };
    let action = obj.entry("action").or_insert_with(|| json!("accept"));
    if action != "accept" {
        return result;
    }
    let content = obj.entry("content").or_insert_with(|| json!({}));
    if let (Some(content), Some(props)) =
        (content.as_object_mut(), params.pointer("/requestedSchema/properties").and_then(Value::as_object))
    {
        for (field, schema) in props {
            if let Some(default) = schema.get("default") {
                content.entry(field.clone()).or_insert_with(|| default.clone());
            }
        }
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn declares_only_what_it_answers() {
        let none = ServerRequests::default();
        assert_eq!(none.capabilities(), json!({}));
        assert!(matches!(none.handle(SAMPLING, None), Handling::Now(Err(e)) if e.code == METHOD_NOT_FOUND));
        assert!(matches!(none.handle("ping", None), Handling::Now(Ok(_))));
        let some = ServerRequests {
            sampling: Some(Answer::Canned(json!({"role": "assistant"}))),
            roots: Some(vec![json!({"uri": "file:///tmp"})]),
            ..ServerRequests::default()
        };
        assert_eq!(some.capabilities(), json!({"sampling": {}, "roots": {"listChanged": false}}));
        assert!(matches!(some.handle(ROOTS_LIST, None), Handling::Now(Ok(r)) if r["roots"][0]["uri"] == "file:///tmp"));
    }

    #[test]
    fn an_accepted_elicitation_gets_the_schema_defaults() {
        let params = json!({"requestedSchema": {"properties": {
            "name": {"type": "string", "default": "John Doe"},
            "age": {"type": "integer", "default": 30},
            "note": {"type": "string"},
        }}});
        let r = finish(ELICITATION, &params, json!({"content": {"name": "Ann"}}));
        assert_eq!(r, json!({"action": "accept", "content": {"name": "Ann", "age": 30}}));
        let declined = finish(ELICITATION, &params, json!({"action": "decline"}));
        assert_eq!(declined, json!({"action": "decline"}));
    }
}
