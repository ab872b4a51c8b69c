//! The MCP layer: protocol revisions and their negotiation, method names, MCP-specific
//! error codes, and the `initialize` handshake shapes both sides use.

use serde_json::{json, Value};

/// The revision mcpscript offers by default.
pub const LATEST_PROTOCOL_VERSION: &str = "2025-11-25";

/// Every revision with an `initialize` handshake, newest first.
pub const SUPPORTED_PROTOCOL_VERSIONS: [&str; 4] = ["2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"];

/// Method and notification names.
pub mod methods {
    pub const INITIALIZE: &str = "initialize";
    pub const INITIALIZED: &str = "notifications/initialized";
    pub const CANCELLED: &str = "notifications/cancelled";
    pub const PING: &str = "ping";
    pub const TOOLS_LIST: &str = "tools/list";
    pub const TOOLS_CALL: &str = "tools/call";
    pub const RESOURCES_LIST: &str = "resources/list";
    pub const RESOURCES_READ: &str = "resources/read";
    pub const RESOURCE_TEMPLATES_LIST: &str = "resources/templates/list";
    pub const PROMPTS_LIST: &str = "prompts/list";
    pub const PROMPTS_GET: &str = "prompts/get";
    pub const LOGGING_SET_LEVEL: &str = "logging/setLevel";

    /// Every request method of the protocol a client sends (2025-11-25), for coverage.
    pub const CLIENT_REQUESTS: [&str; 14] = [
        INITIALIZE,
        PING,
        TOOLS_LIST,
        TOOLS_CALL,
        RESOURCES_LIST,
        RESOURCES_READ,
        RESOURCE_TEMPLATES_LIST,
        "resources/subscribe",
        "resources/unsubscribe",
        PROMPTS_LIST,
        PROMPTS_GET,
        "completion/complete",
        LOGGING_SET_LEVEL,
        "server/discover",
    ];
}

/// Error codes beyond JSON-RPC's own.
pub mod codes {
    /// The server sheds load (mcpscript's server) or, in the SDKs, the connection closed.
    pub const OVERLOADED: i64 = -32000;
    /// The SDKs' request timeout.
    pub const REQUEST_TIMEOUT: i64 = -32001;
    /// Unknown resource URI (before 2026-07-28).
    pub const RESOURCE_NOT_FOUND: i64 = -32002;
    /// mcpscript's server: the initialize request lacked the required auth token.
    pub const UNAUTHORIZED: i64 = -32004;
}

/// Whether `version` is a revision mcpscript can speak.
pub fn is_supported(version: &str) -> bool {
    SUPPORTED_PROTOCOL_VERSIONS.contains(&version)
}

/// Whether `version` is a revision mcpscript can be asked for: one with the `initialize`
/// handshake, or the stateless one ([`super::stateless`]).
pub fn is_known(version: &str) -> bool {
    is_supported(version) || super::stateless::is_stateless(version)
}

/// The revisions [`is_known`] accepts, newest first, for messages.
pub fn known_versions() -> Vec<&'static str> {
    super::stateless::VERSIONS.iter().chain(SUPPORTED_PROTOCOL_VERSIONS.iter()).copied().collect()
}

/// The server side of negotiation: the requested revision when supported, else the latest.
pub fn negotiate(requested: &str) -> &'static str {
    SUPPORTED_PROTOCOL_VERSIONS.iter().copied().find(|v| *v == requested).unwrap_or(LATEST_PROTOCOL_VERSION)
}

/// The `params` of a client's `initialize` request, declaring no capabilities.
pub fn initialize_params(
    protocol_version: &str,
    client_name: &str,
    client_version: &str,
    auth_token: Option<&str>,
) -> Value {
    initialize_params_with(protocol_version, client_name, client_version, auth_token, json!({}))
}

/// The `params` of a client's `initialize` request with the client's `capabilities`
/// (`sampling`, `elicitation`, `roots`: only what the session is configured to answer).
/// `auth_token` goes in as `authToken` (for transports without headers).
pub fn initialize_params_with(
    protocol_version: &str,
    client_name: &str,
    client_version: &str,
    auth_token: Option<&str>,
    capabilities: Value,
) -> Value {
    let mut params = json!({
        "protocolVersion": protocol_version,
        "capabilities": capabilities,
        "clientInfo": {"name": client_name, "version": client_version},
    });
    if let Some(token) = auth_token {
        params["authToken"] = Value::String(token.to_string());
    }
    params
}

/// What a client keeps from the server's `initialize` reply.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerInfo {
    pub protocol_version: String,
    pub name: String,
    pub version: String,
    pub capabilities: Value,
    pub instructions: Option<String>,
}

impl ServerInfo {
    /// Validates an `initialize` result: the revision must be one we speak and
    /// `serverInfo` must name the server.
    pub fn from_result(result: &Value) -> Result<ServerInfo, String> {
        let version =
            result.get("protocolVersion").and_then(Value::as_str).ok_or("initialize result has no protocolVersion")?;
        if !is_supported(version) {
            return Err(format!(
                "server chose protocol version {version}, which mcpscript does not speak (supported: {})",
                SUPPORTED_PROTOCOL_VERSIONS.join(", ")
            ));
        }
        let info = result.get("serverInfo").ok_or("initialize result has no serverInfo")?;
        Ok(ServerInfo {
            protocol_version: version.to_string(),
            name: info.get("name").and_then(Value::as_str).unwrap_or_default().to_string(),
            version: info.get("version").and_then(Value::as_str).unwrap_or_default().to_string(),
            capabilities: result.get("capabilities").cloned().unwrap_or(Value::Null),
            instructions: result.get("instructions").and_then(Value::as_str).map(str::to_string),
        })
    }

    /// What a `server/discover` result says, for a session of the stateless revision
    /// `version`: the server's name and version come from the result's
    /// `_meta["io.modelcontextprotocol/serverInfo"]` (the result has no `serverInfo`).
    pub fn from_discover(result: &Value, version: &str) -> ServerInfo {
        let info = result.pointer("/_meta").and_then(|m| m.get(super::stateless::meta::SERVER_INFO));
        let field = |k: &str| info.and_then(|i| i.get(k)).and_then(Value::as_str).unwrap_or_default().to_string();
        ServerInfo {
            protocol_version: version.to_string(),
            name: field("name"),
            version: field("version"),
            capabilities: result.get("capabilities").cloned().unwrap_or(Value::Null),
            instructions: result.get("instructions").and_then(Value::as_str).map(str::to_string),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiates_down_or_to_latest() {
        assert_eq!(negotiate("2024-11-05"), "2024-11-05");
        assert_eq!(negotiate("2025-06-18"), "2025-06-18");
        assert_eq!(negotiate("1999-01-01"), LATEST_PROTOCOL_VERSION);
    }

    #[test]
    fn validates_initialize_results() {
        let ok =
            json!({"protocolVersion":"2025-03-26","capabilities":{"tools":{}},"serverInfo":{"name":"s","version":"1"}});
        let info = ServerInfo::from_result(&ok).unwrap();
        assert_eq!((info.protocol_version.as_str(), info.name.as_str()), ("2025-03-26", "s"));
        let bad = json!({"protocolVersion":"2099-01-01","serverInfo":{"name":"s"}});
        assert!(ServerInfo::from_result(&bad).unwrap_err().contains("does not speak"));
        assert!(ServerInfo::from_result(&json!({})).is_err());
    }

    #[test]
    fn reads_the_server_of_a_discover_result_from_its_meta() {
        let r = json!({"supportedVersions": ["2026-07-28"], "capabilities": {"tools": {}}, "instructions": "hi",
            "_meta": {"io.modelcontextprotocol/serverInfo": {"name": "s", "version": "2"}}});
        let info = ServerInfo::from_discover(&r, "2026-07-28");
        assert_eq!(
            (info.protocol_version.as_str(), info.name.as_str(), info.version.as_str()),
            ("2026-07-28", "s", "2")
        );
        assert_eq!((info.capabilities, info.instructions), (json!({"tools": {}}), Some("hi".into())));
    }
}
