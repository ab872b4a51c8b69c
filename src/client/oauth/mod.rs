//! OAuth 2.1 for MCP servers that want it (the MCP authorization spec), done headlessly
//! for test runs. On a 401 (or a 403 `insufficient_scope`) the HTTP transport hands the
//! server's `WWW-Authenticate` challenge ([`challenge`]) to the run's [`TokenCache`] for
//! that server, which discovers the protected-resource and authorization-server metadata
//! ([`discovery`]: RFC 9728, RFC 8414 / OpenID Connect, the 2025-03-26 fallbacks), checks
//! that the metadata's `resource` is this server, gets a client identity ([`registration`]:
//! pre-registered, a Client ID Metadata Document URL, or RFC 7591 dynamic registration),
//! and gets a token ([`grant`]: authorization code with PKCE ([`pkce`]) followed without
//! a browser, by reading the code off the authorization endpoint's redirect, which test
//! authorization servers allow; client credentials with `client_secret_basic`,
//! `client_secret_post`, `none` or `private_key_jwt`; refresh tokens). Every OAuth HTTP
//! call ([`http`]) has its own deadline. One [`TokenCache`] per run and server is shared
//! by every session (an `Arc`): concurrent 401s wait for one fetch, and the token is
//! refreshed in the background before it expires. Every HTTP request of a run reads its
//! `Authorization` from there (`client::auth::Auth`): Streamable HTTP POSTs and GET
//! streams, legacy SSE, and the lean connections of load phases; a phase run by worker
//! processes ships the [`OAuthConfig`] to them and each keeps one cache per server.
//! Secrets and tokens never show in `Debug` output or logs ([`Secret`]).

pub mod cache;
pub mod challenge;
pub mod discovery;
pub mod grant;
pub mod http;
pub mod pkce;
pub mod registration;

pub use cache::TokenCache;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A secret (client secret, token, private key): its `Debug` and `Display` never show it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Secret {
        Secret(s.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Which grant gets tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GrantKind {
    /// Authorization code with PKCE (S256), the redirect read headlessly.
    AuthorizationCode,
    /// Client credentials (machine to machine): needs a client ID and a secret or key.
    ClientCredentials,
}

impl std::str::FromStr for GrantKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "authorization_code" => Ok(GrantKind::AuthorizationCode),
            "client_credentials" => Ok(GrantKind::ClientCredentials),
            other => Err(format!("unknown grant '{other}' (expected authorization_code or client_credentials)")),
        }
    }
}

/// How the run gets OAuth tokens (`--oauth*` options). Serialized with its secrets in
/// clear ([`exposed`]): only to hand a load phase's plan to its worker processes over
/// their stdin pipe, never into a report or a log (`Debug` redacts them).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct OAuthConfig {
    /// A pre-registered client ID (else CIMD or dynamic registration).
    pub client_id: Option<String>,
    #[serde(with = "exposed")]
    pub client_secret: Option<Secret>,
    /// Scopes to ask for (space-separated); else the challenge's, else `scopes_supported`.
    pub scope: Option<String>,
    /// A PEM private key (PKCS#8 EC P-256, or RSA) for `private_key_jwt`.
    #[serde(with = "exposed")]
    pub private_key: Option<Secret>,
    /// The grant; `None` picks one (see [`grant::choose`]).
    pub grant: Option<GrantKind>,
    /// The URL of this client's Client ID Metadata Document, used as `client_id` when the
    /// authorization server advertises `client_id_metadata_document_supported`.
    pub client_metadata_url: Option<String>,
    /// The `redirect_uri` of authorization-code requests (never listened on: the code is
    /// read from the redirect's `Location`).
    pub redirect_uri: String,
    /// Deadline of each OAuth HTTP call.
    pub timeout: Duration,
}

impl Default for OAuthConfig {
    fn default() -> Self {
        OAuthConfig {
            client_id: None,
            client_secret: None,
            scope: None,
            private_key: None,
            grant: None,
            client_metadata_url: None,
            redirect_uri: DEFAULT_REDIRECT_URI.to_string(),
            timeout: Duration::from_secs(10),
        }
    }
}

/// A secret of [`OAuthConfig`] as its plain string, for the worker pipe only: [`Secret`]
/// itself has no `Serialize`, so nothing else can write one out by accident.
mod exposed {
    use super::Secret;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(s: &Option<Secret>, out: S) -> Result<S::Ok, S::Error> {
        match s {
            Some(s) => out.serialize_some(s.expose()),
            None => out.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Secret>, D::Error> {
        Ok(Option::<String>::deserialize(d)?.map(Secret::new))
    }
}

/// The redirect URI used when none is given.
pub const DEFAULT_REDIRECT_URI: &str = "http://127.0.0.1:8976/callback";

/// A run's OAuth: its configuration and one [`TokenCache`] per server URL.
pub struct OAuth {
    pub(crate) config: OAuthConfig,
    pub(crate) tls: crate::net::tls::ClientTls,
    caches: Mutex<HashMap<String, Arc<TokenCache>>>,
}

impl std::fmt::Debug for OAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OAuth").field("config", &self.config).finish_non_exhaustive()
    }
}

impl OAuth {
    /// The configuration this OAuth was made from (a worker process makes its own from it).
    pub fn config(&self) -> &OAuthConfig {
        &self.config
    }

    /// Checks the configuration (the private key parses, the grant has what it needs).
    pub fn new(config: OAuthConfig, tls: crate::net::tls::ClientTls) -> Result<Arc<OAuth>, String> {
        if let Some(key) = &config.private_key {
            grant::signing_key(key)?;
            if config.client_id.is_none() {
                return Err("a private key (private_key_jwt) needs a client ID (--oauth-client-id)".into());
            }
        }
        if config.grant == Some(GrantKind::ClientCredentials) && config.client_id.is_none() {
            return Err("the client_credentials grant needs a client ID (--oauth-client-id)".into());
        }
        if let Some(u) = &config.client_metadata_url {
            let parsed = url::Url::parse(u).map_err(|e| format!("client metadata URL '{u}': {e}"))?;
            if parsed.scheme() != "https" {
                return Err(format!("client metadata URL '{u}' must be https://"));
            }
        }
        url::Url::parse(&config.redirect_uri).map_err(|e| format!("redirect URI '{}': {e}", config.redirect_uri))?;
        Ok(Arc::new(OAuth { config, tls, caches: Mutex::new(HashMap::new()) }))
    }

    /// The token cache for the MCP server at `server_url` (made on first use, then shared).
    pub fn cache_for(self: &Arc<Self>, server_url: &str) -> Result<Arc<TokenCache>, String> {
        let mut caches = self.caches.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = caches.get(server_url) {
            return Ok(c.clone());
        }
        let url = url::Url::parse(server_url).map_err(|e| format!("server URL '{server_url}': {e}"))?;
        let cache = Arc::new(TokenCache::new(self.clone(), url));
        caches.insert(server_url.to_string(), cache.clone());
        Ok(cache)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_and_config_never_show_in_debug_output() {
        let c = OAuthConfig {
            client_id: Some("id-1".into()),
            client_secret: Some(Secret::new("hunter2")),
            private_key: Some(Secret::new("-----BEGIN PRIVATE KEY-----")),
            ..OAuthConfig::default()
        };
        let shown = format!("{c:?}");
        assert!(shown.contains("id-1"));
        assert!(!shown.contains("hunter2") && !shown.contains("BEGIN"));
    }

    #[test]
    fn a_configuration_crosses_the_worker_pipe_whole() {
        let c = OAuthConfig {
            client_id: Some("id-1".into()),
            client_secret: Some(Secret::new("hunter2")),
            grant: Some(GrantKind::ClientCredentials),
            ..OAuthConfig::default()
        };
        let json = serde_json::to_string(&c).unwrap();
        assert!(json.contains("\"hunter2\"") && json.contains("\"client_credentials\""), "{json}");
        assert_eq!(serde_json::from_str::<OAuthConfig>(&json).unwrap(), c);
    }

    #[test]
    fn bad_configurations_are_refused() {
        let tls = crate::net::tls::ClientTls::default();
        let cfg = |f: fn(&mut OAuthConfig)| {
            let mut c = OAuthConfig::default();
            f(&mut c);
            OAuth::new(c, tls.clone()).err()
        };
        assert!(cfg(|c| c.grant = Some(GrantKind::ClientCredentials)).unwrap().contains("client ID"));
        assert!(cfg(|c| c.client_metadata_url = Some("http://x/y".into())).unwrap().contains("https"));
        assert!(cfg(|c| {
            c.client_id = Some("a".into());
            c.private_key = Some(Secret::new("not a key"));
        })
        .unwrap()
        .contains("private key"));
        assert!("password".parse::<GrantKind>().is_err());
        assert!(cfg(|_| {}).is_none());
    }
}
