//! Requests a server sends to the client (`sampling/createMessage`, `elicitation/create`,
//! `roots/list`, `ping`) and how a session answers them: [`ServerRequests`] says what the
//! session is configured to answer, which is also what it declares as its capabilities in
//! `initialize` (nothing is declared that would only be refused). An answer is either
//! canned (a fixed result, usable in load phases) or asked of someone else over a channel
//! ([`Answer::Ask`]: a script's callback, run on the script thread). An accepted
//! elicitation gets the defaults of its requested schema for the fields the answer left
//! out (SEP-1034).
//!
//! Load phases answer with canned results only: [`CannedAnswers`] is their serialisable
//! form (a phase plan carries it to worker processes), made into [`ServerRequests`] by each
//! process. A [`Tally`] counts requests by method and how they were answered: each
//! session's dispatcher keeps one, and feeds the phase's when [`ServerRequests::tally`] is
//! set (a load phase's connections, lean or not, share one).

use crate::protocol::jsonrpc::{ErrorObject, INTERNAL_ERROR, METHOD_NOT_FOUND};
use crate::protocol::mcp::methods;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
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
    /// Where a load phase counts what its sessions were asked, besides each session's own
    /// count.
    pub tally: Option<Arc<Tally>>,
}

/// The answers of a load phase's sessions (`on_sampling`, `on_elicitation`, `roots`):
/// canned results only, serialisable so that worker processes answer alike.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CannedAnswers {
    /// The `sampling/createMessage` result.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sampling: Option<Value>,
    /// The `elicitation/create` result (an accepted one gets the schema's defaults).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub elicitation: Option<Value>,
    /// The roots `roots/list` answers with (`{uri, name?}` objects).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub roots: Option<Vec<Value>>,
}

impl CannedAnswers {
    pub fn is_empty(&self) -> bool {
        self.sampling.is_none() && self.elicitation.is_none() && self.roots.is_none()
    }

    /// What sessions with these answers answer, counting into `tally`.
    pub fn requests(&self, tally: Option<Arc<Tally>>) -> ServerRequests {
        ServerRequests {
            sampling: self.sampling.clone().map(Answer::Canned),
            elicitation: self.elicitation.clone().map(Answer::Canned),
            roots: self.roots.clone(),
            ask_timeout: Duration::ZERO,
            tally,
        }
    }
}

/// Server requests of one method: how many came and how they were answered.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct RequestCounts {
    /// Requests of the method that came.
    pub received: u64,
    /// Answered with a result.
    pub answered: u64,
    /// Answered with an error (not configured, callback failed or too slow).
    pub refused: u64,
}

impl RequestCounts {
    pub fn add(&mut self, o: &RequestCounts) {
        self.received += o.received;
        self.answered += o.answered;
        self.refused += o.refused;
    }
}

/// Most methods a [`Tally`] names: the server chooses them, so requests of further methods
/// are counted together under [`OTHER`].
pub const MAX_METHODS: usize = 32;
/// The [`Tally`] key of the methods beyond [`MAX_METHODS`].
pub const OTHER: &str = "other";

/// Server requests by method. A mutex, not atomics: servers ask rarely.
#[derive(Debug, Default)]
pub struct Tally {
    by_method: Mutex<BTreeMap<String, RequestCounts>>,
    /// Counts the same requests too (a session's tally feeds its load phase's).
    feeds: Option<Arc<Tally>>,
}

impl Tally {
    /// A tally that also counts into `parent`.
    pub fn feeding(parent: Option<Arc<Tally>>) -> Tally {
        Tally { by_method: Mutex::default(), feeds: parent }
    }

    /// A request of `method` came.
    pub fn received(&self, method: &str) {
        self.update(method, |c| c.received += 1);
    }

    /// The request of `method` was answered with a result (`ok`) or an error.
    pub fn outcome(&self, method: &str, ok: bool) {
        self.update(method, |c| if ok { c.answered += 1 } else { c.refused += 1 });
    }

    /// The counts so far, by method.
    pub fn snapshot(&self) -> BTreeMap<String, RequestCounts> {
        self.by_method.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn update(&self, method: &str, f: impl Fn(&mut RequestCounts)) {
        {
            let mut m = self.by_method.lock().unwrap_or_else(|e| e.into_inner());
            let key = if m.contains_key(method) || m.len() < MAX_METHODS { method } else { OTHER };
            match m.get_mut(key) {
                Some(c) => f(c),
                None => f(m.entry(key.to_string()).or_default()),
            }
        }
        if let Some(p) = &self.feeds {
            p.update(method, f);
        }
    }
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

    /// The answer to request `method` with `params` when it must be given at once (a load
    /// connection runs no callbacks), counted in the tally.
    pub fn answer_now(&self, method: &str, params: Option<&Value>) -> Result<Value, ErrorObject> {
        if let Some(t) = &self.tally {
            t.received(method);
        }
        let outcome = match self.handle(method, params) {
            Handling::Now(outcome) => outcome,
            Handling::Later(..) => Err(ErrorObject::new(
                INTERNAL_ERROR,
                format!("'{method}' is answered by a callback, which a load connection cannot run"),
            )),
        };
        if let Some(t) = &self.tally {
            t.outcome(method, outcome.is_ok());
        }
        outcome
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
    fn a_tally_feeds_its_parent_and_bounds_the_methods_it_names() {
        let phase = Arc::new(Tally::default());
        let (a, b) = (Tally::feeding(Some(phase.clone())), Tally::feeding(Some(phase.clone())));
        a.received(SAMPLING);
        a.outcome(SAMPLING, true);
        b.received(SAMPLING);
        b.outcome(SAMPLING, false);
        let one = RequestCounts { received: 1, answered: 1, refused: 0 };
        assert_eq!(a.snapshot()[SAMPLING], one);
        assert_eq!(phase.snapshot()[SAMPLING], RequestCounts { received: 2, answered: 1, refused: 1 });
        // A server inventing methods fills the named ones, then `other`.
        for i in 0..MAX_METHODS + 5 {
            phase.received(&format!("made/up{i}"));
        }
        let counts = phase.snapshot();
        assert_eq!(counts.len(), MAX_METHODS + 1);
        assert_eq!(counts[OTHER].received, 6);
        phase.received(SAMPLING);
        assert_eq!(phase.snapshot()[SAMPLING].received, 3, "a method already named keeps its name");
        // Canned answers become what a session answers, and the capabilities it declares.
        let canned = CannedAnswers { elicitation: Some(json!({"action": "decline"})), ..CannedAnswers::default() };
        let requests = canned.requests(None);
        assert_eq!(requests.capabilities(), json!({"elicitation": {"form": {}}}));
        assert_eq!(requests.answer_now(ELICITATION, None), Ok(json!({"action": "decline"})));
        assert!(CannedAnswers::default().is_empty() && !canned.is_empty());
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
