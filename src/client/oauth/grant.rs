//! Getting tokens at the token endpoint: the authorization-code grant with PKCE (the
//! authorization endpoint's redirect read headlessly: no browser, no listener), the
//! client-credentials grant and the refresh-token grant, each with the `resource`
//! parameter (RFC 8707) and the client authentication [`registration`](super::registration)
//! chose (`private_key_jwt` assertions signed here, RFC 7523). Errors name the endpoint
//! and what was wrong with its answer.

use super::discovery::{AuthServer, Discovered};
use super::pkce::{random_token, Pkce};
use super::registration::{AuthMethod, Client};
use super::{http, GrantKind, OAuthConfig, Secret};
use crate::net::tls::ClientTls;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use url::Url;

/// What a token endpoint granted.
#[derive(Debug, Clone)]
pub struct TokenReply {
    pub access_token: Secret,
    pub expires_in: Option<Duration>,
    pub refresh_token: Option<Secret>,
    pub scope: Option<String>,
}

/// Everything a grant needs.
pub struct Ctx<'a> {
    pub cfg: &'a OAuthConfig,
    pub tls: &'a ClientTls,
    pub found: &'a Discovered,
    pub client: &'a Client,
}

/// The grant to use: the configured one; else client credentials with a private key, or
/// when the server's `grant_types_supported` has it but not `authorization_code` (and a
/// client ID is given); else the authorization code with PKCE.
pub fn choose(cfg: &OAuthConfig, server: &AuthServer) -> GrantKind {
    if let Some(g) = cfg.grant {
        return g;
    }
    if cfg.private_key.is_some() {
        return GrantKind::ClientCredentials;
    }
    let has = |g: &str| server.grant_types_supported.as_ref().is_some_and(|s| s.iter().any(|x| x == g));
    if cfg.client_id.is_some() && has("client_credentials") && !has("authorization_code") {
        GrantKind::ClientCredentials
    } else {
        GrantKind::AuthorizationCode
    }
}

/// Parses a PEM private key for `private_key_jwt`: PKCS#8 EC P-256 (ES256), RSA (RS256) or
/// Ed25519 (EdDSA); checked by signing once.
pub fn signing_key(pem: &Secret) -> Result<(EncodingKey, Algorithm), String> {
    let b = pem.expose().as_bytes();
    let key = EncodingKey::from_ec_pem(b)
        .map(|k| (k, Algorithm::ES256))
        .or_else(|_| EncodingKey::from_rsa_pem(b).map(|k| (k, Algorithm::RS256)))
        .or_else(|_| EncodingKey::from_ed_pem(b).map(|k| (k, Algorithm::EdDSA)))
        .map_err(|_| "the private key is not a PEM EC (P-256), RSA or Ed25519 private key".to_string())?;
    jsonwebtoken::encode(&Header::new(key.1), &json!({"check": 1}), &key.0)
        .map_err(|e| format!("the private key cannot sign {:?} assertions: {e}", key.1))?;
    Ok(key)
}

/// A `private_key_jwt` client assertion: `iss` and `sub` the client ID, `aud` the
/// authorization server's issuer, valid for 5 minutes.
pub fn client_assertion(client_id: &str, audience: &str, pem: &Secret) -> Result<String, String> {
    let (key, alg) = signing_key(pem)?;
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let claims = json!({
        "iss": client_id, "sub": client_id, "aud": audience,
        "iat": now, "exp": now + 300, "jti": random_token(16),
    });
    jsonwebtoken::encode(&Header::new(alg), &claims, &key).map_err(|e| format!("signing the client assertion: {e}"))
}

/// The authorization-code grant: the authorization request (its redirect read for the
/// code), then the token request with the PKCE verifier.
pub async fn authorization_code(c: &Ctx<'_>, scope: Option<&str>) -> Result<TokenReply, String> {
    let server = &c.found.server;
    let mut url = server.authorization_endpoint.clone().ok_or_else(|| {
        format!(
            "the authorization server {} has no authorization_endpoint (use --oauth-grant client_credentials)",
            server.issuer
        )
    })?;
    let pkce = Pkce::new();
    let state = random_token(16);
    {
        let mut q = url.query_pairs_mut();
        q.append_pair("response_type", "code")
            .append_pair("client_id", &c.client.id)
            .append_pair("redirect_uri", &c.cfg.redirect_uri)
            .append_pair("state", &state)
            .append_pair("code_challenge", &pkce.challenge)
            .append_pair("code_challenge_method", "S256");
        if let Some(s) = scope {
            q.append_pair("scope", s);
        }
        if let Some(r) = &c.found.resource {
            q.append_pair("resource", r);
        }
    }
    let code = authorize(c.tls, &url, &c.cfg.redirect_uri, &state, c.cfg.timeout).await?;
    let mut form = vec![
        ("grant_type", "authorization_code".to_string()),
        ("code", code),
        ("redirect_uri", c.cfg.redirect_uri.clone()),
        ("code_verifier", pkce.verifier.clone()),
    ];
    if let Some(r) = &c.found.resource {
        form.push(("resource", r.clone()));
    }
    token_request(c, form).await
}

/// Follows the authorization request headlessly: the endpoint must redirect straight back
/// (test authorization servers do); the code comes from the redirect's `Location`.
async fn authorize(
    tls: &ClientTls,
    url: &Url,
    redirect_uri: &str,
    state: &str,
    timeout: Duration,
) -> Result<String, String> {
    let mut endpoint = url.clone();
    endpoint.set_query(None);
    let reply = http::get(tls, url, timeout).await?;
    if !(300..400).contains(&reply.status) {
        return Err(format!(
            "the authorization endpoint {endpoint} answered HTTP {} instead of redirecting back with a code \
             (a login page needs a person; headless runs need an authorization server that redirects at once, \
             or the client_credentials grant, or --bearer)",
            reply.status
        ));
    }
    let location = reply
        .headers
        .get(hyper::header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| format!("the authorization endpoint {endpoint} redirected without a Location"))?;
    let back = Url::parse(redirect_uri)
        .and_then(|r| r.join(location))
        .map_err(|e| format!("the authorization endpoint {endpoint} redirected to a bad Location: {e}"))?;
    let get = |k: &str| back.query_pairs().find(|(n, _)| n == k).map(|(_, v)| v.into_owned());
    if let Some(err) = get("error") {
        let desc = get("error_description").map(|d| format!(" ({d})")).unwrap_or_default();
        return Err(format!("the authorization endpoint {endpoint} refused: {err}{desc}"));
    }
    if get("state").as_deref() != Some(state) {
        return Err(format!("the authorization endpoint {endpoint} redirected back with a different state"));
    }
    get("code").ok_or_else(|| format!("the authorization endpoint {endpoint} redirected back without a code"))
}

/// The client-credentials grant.
pub async fn client_credentials(c: &Ctx<'_>, scope: Option<&str>) -> Result<TokenReply, String> {
    let mut form = vec![("grant_type", "client_credentials".to_string())];
    if let Some(s) = scope {
        form.push(("scope", s.to_string()));
    }
    if let Some(r) = &c.found.resource {
        form.push(("resource", r.clone()));
    }
    token_request(c, form).await
}

/// The refresh-token grant.
pub async fn refresh(c: &Ctx<'_>, refresh_token: &Secret) -> Result<TokenReply, String> {
    let mut form =
        vec![("grant_type", "refresh_token".to_string()), ("refresh_token", refresh_token.expose().to_string())];
    if let Some(r) = &c.found.resource {
        form.push(("resource", r.clone()));
    }
    token_request(c, form).await
}

/// A token request with the client's authentication.
async fn token_request(c: &Ctx<'_>, mut form: Vec<(&'static str, String)>) -> Result<TokenReply, String> {
    let server = &c.found.server;
    let endpoint = &server.token_endpoint;
    let mut basic = None;
    match c.client.auth_method {
        AuthMethod::Basic => {
            let secret = c.client.secret.as_ref().ok_or("client_secret_basic needs a client secret")?;
            basic = Some(http::basic(&c.client.id, secret.expose()));
        }
        AuthMethod::Post => {
            let secret = c.client.secret.as_ref().ok_or("client_secret_post needs a client secret")?;
            form.push(("client_id", c.client.id.clone()));
            form.push(("client_secret", secret.expose().to_string()));
        }
        AuthMethod::None => form.push(("client_id", c.client.id.clone())),
        AuthMethod::PrivateKeyJwt => {
            let key = c.cfg.private_key.as_ref().ok_or("private_key_jwt needs a private key (--oauth-private-key)")?;
            form.push(("client_id", c.client.id.clone()));
            form.push(("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer".into()));
            form.push(("client_assertion", client_assertion(&c.client.id, &server.issuer, key)?));
        }
    }
    let pairs: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let reply = http::post_form(c.tls, endpoint, &pairs, basic, c.cfg.timeout).await?;
    parse_token_reply(endpoint, &reply)
}

/// A token endpoint's answer: the token, or an error naming the endpoint and what came.
pub fn parse_token_reply(endpoint: &Url, reply: &http::Reply) -> Result<TokenReply, String> {
    let json = reply.json();
    if !reply.ok() {
        if let Some(err) = json.as_ref().ok().and_then(|v| v.get("error")?.as_str().map(str::to_string)) {
            let desc = json.as_ref().ok().and_then(|v| v.get("error_description")?.as_str().map(|d| format!(" ({d})")));
            return Err(format!(
                "the token endpoint {endpoint} refused: HTTP {} {err}{}",
                reply.status,
                desc.unwrap_or_default()
            ));
        }
        return Err(format!(
            "the token endpoint {endpoint} answered HTTP {}: {}",
            reply.status,
            http::snippet(&reply.body)
        ));
    }
    let bad = |why: String| format!("the token endpoint {endpoint} answered HTTP {} but {why}", reply.status);
    let v = json.map_err(|e| bad(format!("not with a token: {e}")))?;
    let token = v
        .get("access_token")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| bad(format!("without an access_token: {}", http::snippet(&reply.body))))?;
    if let Some(t) = v.get("token_type").and_then(Value::as_str) {
        if !t.eq_ignore_ascii_case("bearer") {
            return Err(bad(format!("with token_type '{t}' (only Bearer is supported)")));
        }
    }
    if hyper::header::HeaderValue::try_from(format!("Bearer {token}")).is_err() {
        return Err(bad("with an access_token that cannot be sent in a header".into()));
    }
    let expires_in = match v.get("expires_in") {
        Some(Value::Number(n)) => n.as_f64().filter(|s| *s >= 0.0).map(Duration::from_secs_f64),
        Some(Value::String(s)) => s.parse::<u64>().ok().map(Duration::from_secs),
        _ => None,
    };
    Ok(TokenReply {
        access_token: Secret::new(token),
        expires_in,
        refresh_token: v.get("refresh_token").and_then(Value::as_str).map(Secret::new),
        scope: v.get("scope").and_then(Value::as_str).map(str::to_string),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn reply(status: u16, body: &str) -> http::Reply {
        http::Reply { status, headers: Default::default(), body: Bytes::from(body.to_string()) }
    }

    #[test]
    fn token_replies_are_read_and_garbage_is_named() {
        let ep = Url::parse("http://127.0.0.1:9/token").unwrap();
        let ok = parse_token_reply(
            &ep,
            &reply(200, r#"{"access_token":"t1","token_type":"bearer","expires_in":60,"refresh_token":"r"}"#),
        )
        .unwrap();
        assert_eq!(ok.access_token.expose(), "t1");
        assert_eq!(ok.expires_in, Some(Duration::from_secs(60)));
        assert!(!format!("{ok:?}").contains("t1"));
        let garbage = parse_token_reply(&ep, &reply(200, "<html>hi</html>")).unwrap_err();
        assert!(garbage.contains("http://127.0.0.1:9/token") && garbage.contains("not JSON"), "{garbage}");
        let no_token = parse_token_reply(&ep, &reply(200, r#"{"token_type":"Bearer"}"#)).unwrap_err();
        assert!(no_token.contains("without an access_token"), "{no_token}");
        let refused =
            parse_token_reply(&ep, &reply(400, r#"{"error":"invalid_grant","error_description":"bad code"}"#))
                .unwrap_err();
        assert!(refused.contains("HTTP 400 invalid_grant (bad code)"), "{refused}");
        assert!(parse_token_reply(&ep, &reply(502, "")).unwrap_err().contains("HTTP 502: (empty body)"));
        assert!(parse_token_reply(&ep, &reply(200, r#"{"access_token":"x","token_type":"mac"}"#))
            .unwrap_err()
            .contains("mac"));
    }

    #[test]
    fn client_assertions_are_signed_es256_with_the_expected_claims() {
        // An ES256 key generated for this test (PKCS#8 PEM, as the conformance suite hands out).
        let kp = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let pem = Secret::new(kp.serialize_pem());
        let jwt = client_assertion("cid", "http://as.example", &pem).unwrap();
        let parts: Vec<&str> = jwt.split('.').collect();
        assert_eq!(parts.len(), 3);
        use base64::Engine;
        let dec = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(s).unwrap();
        let header: Value = serde_json::from_slice(&dec(parts[0])).unwrap();
        let claims: Value = serde_json::from_slice(&dec(parts[1])).unwrap();
        assert_eq!(header["alg"], "ES256");
        assert_eq!(
            (claims["iss"].as_str(), claims["sub"].as_str(), claims["aud"].as_str()),
            (Some("cid"), Some("cid"), Some("http://as.example"))
        );
        assert_eq!(claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap(), 300);
        let key = jsonwebtoken::DecodingKey::from_ec_der(kp.public_key_raw());
        let mut val = jsonwebtoken::Validation::new(Algorithm::ES256);
        val.set_audience(&["http://as.example"]);
        jsonwebtoken::decode::<Value>(&jwt, &key, &val).expect("the signature verifies");
        assert!(signing_key(&Secret::new("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")).is_err());
    }

    #[test]
    fn picks_the_grant() {
        let mut server = AuthServer::fallback(&Url::parse("http://x/").unwrap());
        let mut cfg = OAuthConfig::default();
        assert_eq!(choose(&cfg, &server), GrantKind::AuthorizationCode);
        server.grant_types_supported = Some(vec!["client_credentials".into()]);
        assert_eq!(choose(&cfg, &server), GrantKind::AuthorizationCode, "no client ID: cannot use client credentials");
        cfg.client_id = Some("c".into());
        assert_eq!(choose(&cfg, &server), GrantKind::ClientCredentials);
        server.grant_types_supported = Some(vec!["authorization_code".into(), "client_credentials".into()]);
        assert_eq!(choose(&cfg, &server), GrantKind::AuthorizationCode);
        cfg.grant = Some(GrantKind::ClientCredentials);
        assert_eq!(choose(&cfg, &server), GrantKind::ClientCredentials);
    }
}
