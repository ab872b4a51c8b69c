//! The client's identity at the authorization server, in this order: a pre-registered
//! client (`--oauth-client-id`, with a secret or key or neither), a Client ID Metadata
//! Document URL used as the client ID (when the server advertises
//! `client_id_metadata_document_supported` and one is configured), or dynamic client
//! registration (RFC 7591). Then how it authenticates at the token endpoint
//! ([`choose_auth_method`]).

use super::discovery::AuthServer;
use super::{http, GrantKind, OAuthConfig, Secret};
use crate::net::tls::ClientTls;
use serde_json::{json, Value};
use std::time::Duration;

/// How the client authenticates at the token endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMethod {
    /// `client_secret_basic`: HTTP Basic.
    Basic,
    /// `client_secret_post`: the secret in the form body.
    Post,
    /// `none`: a public client, `client_id` in the body.
    None,
    /// `private_key_jwt`: a signed assertion (RFC 7523).
    PrivateKeyJwt,
}

impl AuthMethod {
    pub fn name(self) -> &'static str {
        match self {
            AuthMethod::Basic => "client_secret_basic",
            AuthMethod::Post => "client_secret_post",
            AuthMethod::None => "none",
            AuthMethod::PrivateKeyJwt => "private_key_jwt",
        }
    }

    fn parse(s: &str) -> Option<AuthMethod> {
        [AuthMethod::Basic, AuthMethod::Post, AuthMethod::None, AuthMethod::PrivateKeyJwt]
            .into_iter()
            .find(|m| m.name() == s)
    }
}

/// A client identity.
#[derive(Debug, Clone)]
pub struct Client {
    pub id: String,
    pub secret: Option<Secret>,
    pub auth_method: AuthMethod,
}

/// The token endpoint authentication: `private_key_jwt` with a key; else what registration
/// answered; else, with a secret, `client_secret_basic` when the server supports it (the
/// RFC 8414 default when it says nothing), else `client_secret_post`; else `none`.
pub fn choose_auth_method(
    has_secret: bool,
    has_key: bool,
    registered: Option<&str>,
    supported: Option<&[String]>,
) -> AuthMethod {
    if has_key {
        return AuthMethod::PrivateKeyJwt;
    }
    if let Some(m) = registered.and_then(AuthMethod::parse) {
        return m;
    }
    if !has_secret {
        return AuthMethod::None;
    }
    let supports = |m: AuthMethod| supported.is_none_or(|s| s.iter().any(|x| x == m.name()));
    [AuthMethod::Basic, AuthMethod::Post, AuthMethod::None]
        .into_iter()
        .find(|m| supports(*m))
        .unwrap_or(AuthMethod::Basic)
}

/// Who the client is at `server` (registering it when needed).
pub async fn identify(
    cfg: &OAuthConfig,
    tls: &ClientTls,
    server: &AuthServer,
    grant: GrantKind,
    timeout: Duration,
) -> Result<Client, String> {
    let supported = server.token_endpoint_auth_methods_supported.as_deref();
    if let Some(id) = &cfg.client_id {
        let secret = cfg.client_secret.clone();
        let auth_method = choose_auth_method(secret.is_some(), cfg.private_key.is_some(), None, supported);
        return Ok(Client { id: id.clone(), secret, auth_method });
    }
    if let (true, Some(url)) = (server.client_id_metadata_document_supported, &cfg.client_metadata_url) {
        return Ok(Client { id: url.clone(), secret: None, auth_method: AuthMethod::None });
    }
    let Some(endpoint) = &server.registration_endpoint else {
        return Err(format!(
            "the authorization server {} offers no dynamic client registration: give a pre-registered client \
             (--oauth-client-id, --oauth-client-secret){}",
            server.issuer,
            if server.client_id_metadata_document_supported {
                " or a client metadata URL (--oauth-client-metadata-url)"
            } else {
                ""
            }
        ));
    };
    let grant_types = match grant {
        GrantKind::AuthorizationCode => json!(["authorization_code", "refresh_token"]),
        GrantKind::ClientCredentials => json!(["client_credentials"]),
    };
    let wanted = choose_auth_method(true, false, None, supported);
    let mut body = json!({
        "client_name": "mcpscript",
        "redirect_uris": [cfg.redirect_uri],
        "grant_types": grant_types,
        "response_types": ["code"],
        "token_endpoint_auth_method": wanted.name(),
    });
    if let Some(s) = &cfg.scope {
        body["scope"] = json!(s);
    }
    let reply = http::post_json(tls, endpoint, &body, timeout).await?;
    let what = format!("client registration at {endpoint}");
    if !reply.ok() {
        return Err(format!("{what} failed: HTTP {} {}", reply.status, http::snippet(&reply.body)));
    }
    let v = reply.json().map_err(|e| format!("{what}: {e}"))?;
    let id = v
        .get("client_id")
        .and_then(Value::as_str)
        .ok_or_else(|| format!("{what}: the reply has no client_id: {}", http::snippet(&reply.body)))?;
    let secret = v.get("client_secret").and_then(Value::as_str).map(Secret::new);
    let registered = v.get("token_endpoint_auth_method").and_then(Value::as_str);
    let auth_method = choose_auth_method(secret.is_some(), false, registered, supported);
    tracing::debug!(client_id = id, auth_method = auth_method.name(), "registered an OAuth client");
    Ok(Client { id: id.to_string(), secret, auth_method })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_the_token_endpoint_authentication() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(choose_auth_method(true, true, Some("none"), None), AuthMethod::PrivateKeyJwt);
        assert_eq!(choose_auth_method(true, false, Some("client_secret_post"), None), AuthMethod::Post);
        assert_eq!(choose_auth_method(false, false, None, Some(&s(&["client_secret_basic"]))), AuthMethod::None);
        assert_eq!(choose_auth_method(true, false, None, None), AuthMethod::Basic);
        assert_eq!(choose_auth_method(true, false, None, Some(&s(&["client_secret_post"]))), AuthMethod::Post);
        assert_eq!(choose_auth_method(true, false, None, Some(&s(&["none"]))), AuthMethod::None);
        assert_eq!(choose_auth_method(true, false, None, Some(&s(&["tls_client_auth"]))), AuthMethod::Basic);
    }
}
