//! Where the tokens come from: protected-resource metadata (RFC 9728) names the
//! authorization servers of an MCP server, whose metadata (RFC 8414, or OpenID Connect
//! discovery) names its endpoints. URLs are tried in the order the MCP authorization spec
//! gives ([`prm_urls`], [`as_metadata_urls`]); a server without protected-resource
//! metadata is a 2025-03-26 server: its own origin is the authorization server, with
//! `/authorize`, `/token` and `/register` when that has no metadata either
//! ([`AuthServer::fallback`]). The metadata's `resource` must be the server
//! ([`check_resource`]): credentials are never sent on behalf of another resource.

use super::http;
use crate::net::tls::ClientTls;
use serde_json::Value;
use std::time::Duration;
use url::Url;

/// An MCP server's protected-resource metadata.
#[derive(Debug, Clone)]
pub struct ProtectedResource {
    /// Where it was read.
    pub url: String,
    pub resource: String,
    pub authorization_servers: Vec<String>,
    pub scopes_supported: Option<Vec<String>>,
}

/// An authorization server's endpoints and capabilities.
#[derive(Debug, Clone)]
pub struct AuthServer {
    /// Its `issuer` (the audience of `private_key_jwt` assertions).
    pub issuer: String,
    pub authorization_endpoint: Option<Url>,
    pub token_endpoint: Url,
    pub registration_endpoint: Option<Url>,
    pub grant_types_supported: Option<Vec<String>>,
    pub token_endpoint_auth_methods_supported: Option<Vec<String>>,
    pub client_id_metadata_document_supported: bool,
    /// Where its metadata was read (`None`: the 2025-03-26 default endpoints).
    pub metadata_url: Option<String>,
}

/// Everything discovery found.
#[derive(Debug, Clone)]
pub struct Discovered {
    pub prm: Option<ProtectedResource>,
    pub server: AuthServer,
    /// The `resource` parameter of authorization and token requests (RFC 8707): the
    /// metadata's resource (none for 2025-03-26 servers without metadata).
    pub resource: Option<String>,
}

/// The well-known protected-resource metadata URLs of an MCP server, in order: the
/// path-aware one (when the server URL has a path), then the root one.
pub fn prm_urls(server: &Url) -> Vec<Url> {
    well_known(server, "oauth-protected-resource", false)
}

/// The metadata URLs of an authorization server, in the MCP spec's order. With a path
/// (`https://as/tenant1`): RFC 8414 path insertion, OpenID Connect path insertion, OpenID
/// Connect path appending; without: RFC 8414, then OpenID Connect.
pub fn as_metadata_urls(issuer: &Url) -> Vec<Url> {
    let mut urls = well_known(issuer, "oauth-authorization-server", true);
    urls.extend(well_known(issuer, "openid-configuration", true));
    let path = issuer.path().trim_end_matches('/');
    if !path.is_empty() {
        let mut u = origin(issuer);
        u.set_path(&format!("{path}/.well-known/openid-configuration"));
        urls.push(u);
    }
    urls
}

/// `origin/.well-known/NAME/path` (path-aware) then, for protected resources or when
/// there is no path, `origin/.well-known/NAME`.
fn well_known(base: &Url, name: &str, path_only: bool) -> Vec<Url> {
    let path = base.path().trim_end_matches('/');
    let mut out = Vec::new();
    let mut u = origin(base);
    if !path.is_empty() {
        u.set_path(&format!("/.well-known/{name}{path}"));
        out.push(u.clone());
        if path_only {
            return out;
        }
    }
    u.set_path(&format!("/.well-known/{name}"));
    out.push(u);
    out
}

/// `scheme://host:port/`.
pub fn origin(u: &Url) -> Url {
    let mut o = u.clone();
    o.set_path("/");
    o.set_query(None);
    o.set_fragment(None);
    o
}

/// Whether metadata naming `resource` may be used for `server`: same scheme, host and port,
/// and the server's path is the resource's path or below it.
pub fn check_resource(server: &Url, resource: &str) -> Result<(), String> {
    let refuse = |why: &str| {
        Err(format!(
            "the protected-resource metadata names resource '{resource}', which is not this server ({server}): {why}; \
             refusing to authorize for another resource"
        ))
    };
    let Ok(r) = Url::parse(resource) else { return refuse("not a URL") };
    if r.scheme() != server.scheme()
        || r.host_str() != server.host_str()
        || r.port_or_known_default() != server.port_or_known_default()
    {
        return refuse("another origin");
    }
    let (rp, sp) = (r.path().trim_end_matches('/'), server.path().trim_end_matches('/'));
    if rp.is_empty() || sp == rp || sp.starts_with(&format!("{rp}/")) {
        Ok(())
    } else {
        refuse("another path")
    }
}

/// Reads protected-resource metadata: from the challenge's `resource_metadata` URL when
/// given, else (or when that fails) from the well-known URLs. `None`: there is none (every
/// URL answered an error status or something that is not metadata).
pub async fn protected_resource(
    tls: &ClientTls,
    server: &Url,
    hint: Option<&str>,
    timeout: Duration,
) -> Result<Option<ProtectedResource>, String> {
    let mut urls = Vec::new();
    if let Some(h) = hint {
        urls.push(server.join(h).map_err(|e| format!("resource_metadata '{h}' is not a URL: {e}"))?);
    }
    for u in prm_urls(server) {
        if !urls.contains(&u) {
            urls.push(u);
        }
    }
    for url in urls {
        let reply = http::get(tls, &url, timeout).await?;
        if !reply.ok() {
            tracing::debug!(url = %url, status = reply.status, "no protected-resource metadata here");
            continue;
        }
        let Ok(v) = reply.json() else { continue };
        let resource = v.get("resource").and_then(Value::as_str);
        let servers = strings(&v, "authorization_servers").unwrap_or_default();
        let Some(resource) = resource else {
            return Err(format!("the protected-resource metadata at {url} has no 'resource'"));
        };
        if servers.is_empty() {
            return Err(format!("the protected-resource metadata at {url} names no authorization_servers"));
        }
        return Ok(Some(ProtectedResource {
            url: url.to_string(),
            resource: resource.to_string(),
            authorization_servers: servers,
            scopes_supported: strings(&v, "scopes_supported"),
        }));
    }
    Ok(None)
}

/// A list of strings in a JSON object.
fn strings(v: &Value, key: &str) -> Option<Vec<String>> {
    Some(v.get(key)?.as_array()?.iter().filter_map(|s| s.as_str().map(str::to_string)).collect())
}

impl AuthServer {
    /// Reads an authorization server's metadata from the first of [`as_metadata_urls`]
    /// that has it; `None` when none does.
    pub async fn discover(tls: &ClientTls, issuer: &Url, timeout: Duration) -> Result<Option<AuthServer>, String> {
        for url in as_metadata_urls(issuer) {
            let reply = http::get(tls, &url, timeout).await?;
            if !reply.ok() {
                tracing::debug!(url = %url, status = reply.status, "no authorization-server metadata here");
                continue;
            }
            let Ok(v) = reply.json() else { continue };
            return AuthServer::from_metadata(&v, &url, issuer).map(Some);
        }
        Ok(None)
    }

    fn from_metadata(v: &Value, url: &Url, issuer: &Url) -> Result<AuthServer, String> {
        let endpoint = |key: &str| -> Result<Option<Url>, String> {
            v.get(key)
                .and_then(Value::as_str)
                .map(|s| url.join(s).map_err(|e| format!("the metadata at {url} has a bad {key} '{s}': {e}")))
                .transpose()
        };
        let token_endpoint =
            endpoint("token_endpoint")?.ok_or_else(|| format!("the metadata at {url} has no token_endpoint"))?;
        Ok(AuthServer {
            issuer: v.get("issuer").and_then(Value::as_str).map(str::to_string).unwrap_or_else(|| issuer.to_string()),
            authorization_endpoint: endpoint("authorization_endpoint")?,
            token_endpoint,
            registration_endpoint: endpoint("registration_endpoint")?,
            grant_types_supported: strings(v, "grant_types_supported"),
            token_endpoint_auth_methods_supported: strings(v, "token_endpoint_auth_methods_supported"),
            client_id_metadata_document_supported: v
                .get("client_id_metadata_document_supported")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            metadata_url: Some(url.to_string()),
        })
    }

    /// The 2025-03-26 default endpoints at the server's origin.
    pub fn fallback(server: &Url) -> AuthServer {
        let o = origin(server);
        let at = |p: &str| o.join(p).expect("a fixed path joins");
        AuthServer {
            issuer: o.as_str().trim_end_matches('/').to_string(),
            authorization_endpoint: Some(at("/authorize")),
            token_endpoint: at("/token"),
            registration_endpoint: Some(at("/register")),
            grant_types_supported: None,
            token_endpoint_auth_methods_supported: None,
            client_id_metadata_document_supported: false,
            metadata_url: None,
        }
    }
}

/// Protected-resource metadata, its resource checked, then the authorization server's
/// metadata; a server without protected-resource metadata gets the 2025-03-26 treatment.
pub async fn discover(
    tls: &ClientTls,
    server: &Url,
    hint: Option<&str>,
    timeout: Duration,
) -> Result<Discovered, String> {
    let Some(prm) = protected_resource(tls, server, hint, timeout).await? else {
        let o = origin(server);
        let as_server = match AuthServer::discover(tls, &o, timeout).await? {
            Some(s) => s,
            None => AuthServer::fallback(server),
        };
        return Ok(Discovered { prm: None, server: as_server, resource: None });
    };
    check_resource(server, &prm.resource)?;
    let first = &prm.authorization_servers[0];
    let issuer = Url::parse(first).map_err(|e| format!("authorization server '{first}' (from {}): {e}", prm.url))?;
    let as_server = AuthServer::discover(tls, &issuer, timeout).await?.ok_or_else(|| {
        let tried: Vec<String> = as_metadata_urls(&issuer).iter().map(Url::to_string).collect();
        format!("the authorization server {issuer} has no metadata (tried {})", tried.join(", "))
    })?;
    let resource = Some(prm.resource.clone());
    Ok(Discovered { prm: Some(prm), server: as_server, resource })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn urls(v: Vec<Url>) -> Vec<String> {
        v.into_iter().map(String::from).collect()
    }

    #[test]
    fn protected_resource_urls_are_path_aware_first() {
        let s = Url::parse("http://localhost:3000/public/mcp").unwrap();
        assert_eq!(
            urls(prm_urls(&s)),
            [
                "http://localhost:3000/.well-known/oauth-protected-resource/public/mcp",
                "http://localhost:3000/.well-known/oauth-protected-resource"
            ]
        );
        let root = Url::parse("https://mcp.example.com/").unwrap();
        assert_eq!(urls(prm_urls(&root)), ["https://mcp.example.com/.well-known/oauth-protected-resource"]);
    }

    #[test]
    fn authorization_server_urls_follow_the_spec_order() {
        let tenant = Url::parse("https://auth.example.com/tenant1").unwrap();
        assert_eq!(
            urls(as_metadata_urls(&tenant)),
            [
                "https://auth.example.com/.well-known/oauth-authorization-server/tenant1",
                "https://auth.example.com/.well-known/openid-configuration/tenant1",
                "https://auth.example.com/tenant1/.well-known/openid-configuration"
            ]
        );
        let root = Url::parse("https://auth.example.com").unwrap();
        assert_eq!(
            urls(as_metadata_urls(&root)),
            [
                "https://auth.example.com/.well-known/oauth-authorization-server",
                "https://auth.example.com/.well-known/openid-configuration"
            ]
        );
    }

    #[test]
    fn the_resource_must_be_this_server_or_a_parent_path() {
        let s = Url::parse("http://localhost:3000/mcp").unwrap();
        assert!(check_resource(&s, "http://localhost:3000/mcp").is_ok());
        assert!(check_resource(&s, "http://localhost:3000").is_ok());
        assert!(check_resource(&s, "http://localhost:3000/").is_ok());
        let evil = check_resource(&s, "https://evil.example.com/mcp").unwrap_err();
        assert!(evil.contains("evil.example.com") && evil.contains("another origin"), "{evil}");
        assert!(check_resource(&s, "http://localhost:3001/mcp").is_err());
        assert!(check_resource(&s, "http://localhost:3000/mcp2").unwrap_err().contains("another path"));
        assert!(check_resource(&s, "not a url").is_err());
    }

    #[test]
    fn fallback_endpoints_are_at_the_origin() {
        let a = AuthServer::fallback(&Url::parse("http://localhost:9/deep/mcp").unwrap());
        assert_eq!(a.token_endpoint.as_str(), "http://localhost:9/token");
        assert_eq!(a.authorization_endpoint.unwrap().as_str(), "http://localhost:9/authorize");
        assert_eq!(a.registration_endpoint.unwrap().as_str(), "http://localhost:9/register");
    }
}
