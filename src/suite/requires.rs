//! What a scenario needs of its target (`requires:` in its manifest) against what the
//! target offers. The target is asked once per run, when the first scenario naming tools or
//! capabilities is about to start: one session, `initialize`, `tools/list` (when the server
//! declares tools), closed again. A need not met gives the reason the scenario is skipped;
//! a target that cannot be asked skips nothing (the scenario runs and its own errors say why).

use super::manifest::Requires;
use crate::client::{ClientError, ClientOptions, Session, Target};
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;

/// How long asking the target may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(10);

/// What a target offers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Offer {
    /// Tools listed by `tools/list`.
    pub tools: Vec<String>,
    /// Keys of the `capabilities` of the `initialize` reply.
    pub capabilities: Vec<String>,
}

/// The transport name `requires.transports` uses for a target (the built-in target's own
/// servers are reached over `tcp`).
pub fn transport_of(t: &Target) -> &'static str {
    match t {
        Target::Http { .. } => "http",
        Target::LegacySse { .. } => "sse",
        Target::Ws { .. } => "ws",
        Target::Tcp { .. } | Target::Builtin => "tcp",
        Target::Stdio { .. } => "stdio",
    }
}

/// Why a target could not be asked what it offers.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("connect: {0}")]
    Connect(ClientError),
    #[error("tools/list: {0}")]
    ToolsList(ClientError),
    #[error("no answer within {}s", PROBE_TIMEOUT.as_secs())]
    Timeout,
}

/// Asks `target` what it offers.
pub async fn probe(target: &Target, opts: Arc<ClientOptions>) -> Result<Offer, ProbeError> {
    let ask = async {
        let s = Session::connect(target, opts).await.map_err(ProbeError::Connect)?;
        let caps = &s.server().capabilities;
        let capabilities: Vec<String> = match caps {
            Value::Object(m) => m.keys().cloned().collect(),
            _ => vec![],
        };
        let mut tools = Vec::new();
        if capabilities.iter().any(|c| c == "tools") {
            let listed = s.tools_list().await.map_err(ProbeError::ToolsList);
            if let Ok(v) = &listed {
                tools = names(v);
            }
            if let Err(e) = listed {
                s.close().await;
                return Err(e);
            }
        }
        s.close().await;
        Ok(Offer { tools, capabilities })
    };
    match tokio::time::timeout(PROBE_TIMEOUT, ask).await {
        Ok(r) => r,
        Err(_) => Err(ProbeError::Timeout),
    }
}

/// Tool names of a `tools/list` result.
fn names(v: &Value) -> Vec<String> {
    v.get("tools")
        .and_then(Value::as_array)
        .map(|ts| ts.iter().filter_map(|t| t.get("name").and_then(Value::as_str)).map(str::to_string).collect())
        .unwrap_or_default()
}

/// Why a scenario with `req` cannot run against a target with `transport`, `managed` (mcpscript
/// can kill and restart it) and `offer` (None: it was not asked, or could not be); None when
/// every need is met.
pub fn unmet(req: &Requires, transport: &str, managed: bool, offer: Option<&Offer>) -> Option<String> {
    let mut why = Vec::new();
    if req.managed && !managed {
        why.push(
            "mcpscript cannot kill and restart this target (give the command that starts it with --server, or use the built-in target)"
                .to_string(),
        );
    }
    if !req.transports.is_empty() && !req.transports.iter().any(|t| t == transport) {
        why.push(format!("the target speaks {transport}, this scenario needs {}", req.transports.join(" or ")));
    }
    if let Some(o) = offer {
        let missing: Vec<&str> =
            req.capabilities.iter().filter(|c| !o.capabilities.contains(c)).map(String::as_str).collect();
        if !missing.is_empty() {
            why.push(format!("the server does not declare the capabilit{} {}", plural(&missing), quoted(&missing)));
        }
        let missing: Vec<&str> = req.tools.iter().filter(|t| !o.tools.contains(t)).map(String::as_str).collect();
        if !missing.is_empty() {
            let s = if missing.len() == 1 { "" } else { "s" };
            why.push(format!("the server lists no tool{s} {}", quoted(&missing)));
        }
    }
    (!why.is_empty()).then(|| why.join("; "))
}

fn plural(xs: &[&str]) -> &'static str {
    if xs.len() == 1 {
        "y"
    } else {
        "ies"
    }
}

fn quoted(xs: &[&str]) -> String {
    xs.iter().map(|x| format!("'{x}'")).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(tools: &[&str], caps: &[&str], managed: bool, transports: &[&str]) -> Requires {
        Requires {
            tools: tools.iter().map(|s| s.to_string()).collect(),
            capabilities: caps.iter().map(|s| s.to_string()).collect(),
            managed,
            transports: transports.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn every_unmet_need_is_named() {
        let offer = Offer { tools: vec!["echo".into()], capabilities: vec!["tools".into()] };
        assert_eq!(unmet(&req(&["echo"], &["tools"], false, &[]), "http", false, Some(&offer)), None);
        let why = unmet(&req(&["echo", "sleep", "fail"], &["prompts"], true, &["tcp"]), "http", false, Some(&offer))
            .expect("unmet");
        assert!(why.contains("cannot kill and restart"), "{why}");
        assert!(why.contains("speaks http, this scenario needs tcp"), "{why}");
        assert!(why.contains("capability 'prompts'"), "{why}");
        assert!(why.contains("no tools 'sleep', 'fail'"), "{why}");
        assert!(!why.contains("'echo'"), "{why}");
    }

    #[test]
    fn a_target_not_asked_is_judged_on_what_is_known() {
        assert_eq!(unmet(&req(&["sleep"], &[], false, &[]), "tcp", true, None), None);
        assert!(unmet(&req(&[], &[], true, &[]), "tcp", false, None).is_some());
        assert_eq!(unmet(&req(&[], &[], true, &["tcp", "http"]), "http", true, None), None);
    }

    #[test]
    fn tool_names_come_from_the_listing() {
        let v = serde_json::json!({"tools": [{"name": "a"}, {"name": "b"}, {"nameless": 1}]});
        assert_eq!(names(&v), vec!["a", "b"]);
    }
}
