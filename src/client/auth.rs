//! What a client adds to every HTTP request besides MCP's own headers: the
//! `Authorization` value ([`Auth`], the one place it is obtained, per request, so a later
//! OAuth flow can refresh a token there) and extra headers (`--header 'K: V'`,
//! `headers:` in suites, `connect(target, #{headers: ...})`), validated once
//! ([`parse_header`], [`check_headers`]). A 401 becomes [`ClientError::Unauthorized`]
//! with the server's `WWW-Authenticate` challenge ([`unauthorized`]). With OAuth, a
//! refused request goes to [`Auth::on_refusal`] (the one policy every HTTP request of a
//! run follows: Streamable HTTP POSTs and GET streams, legacy SSE, lean load
//! connections): a new token, then the request once more.

use super::ClientError;
use hyper::header::{HeaderName, HeaderValue};

/// Where the `Authorization` header of a session's requests comes from.
#[derive(Clone, Default)]
pub struct Auth {
    bearer: Option<HeaderValue>,
    /// OAuth (`--oauth`): the run's token cache for this server, shared by its sessions.
    oauth: Option<std::sync::Arc<super::oauth::TokenCache>>,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.oauth.is_some() {
            return f.write_str("Auth(OAuth <redacted>)");
        }
        f.write_str(if self.bearer.is_some() { "Auth(Bearer <redacted>)" } else { "Auth(none)" })
    }
}

impl Auth {
    /// A static bearer token (`--bearer`), or none.
    pub fn bearer(token: Option<&str>) -> Result<Auth, String> {
        let bearer = token
            .map(|t| {
                let mut v = HeaderValue::try_from(format!("Bearer {t}"))
                    .map_err(|_| "the bearer token is not a valid header value".to_string())?;
                v.set_sensitive(true);
                Ok::<_, String>(v)
            })
            .transpose()?;
        Ok(Auth { bearer, oauth: None })
    }

    /// Adds OAuth: tokens from `cache` (the static bearer, if any, until the first flow).
    pub fn with_oauth(mut self, cache: std::sync::Arc<super::oauth::TokenCache>) -> Auth {
        self.oauth = Some(cache);
        self
    }

    /// The `Authorization` of a session of the server at `url`: the static token
    /// (`--bearer`), and with `oauth` (`--oauth`) the run's token cache for that server,
    /// which every session of the run (in this process) that talks to it shares.
    pub fn for_server(
        token: Option<&str>,
        oauth: Option<&std::sync::Arc<super::oauth::OAuth>>,
        url: &str,
    ) -> Result<Auth, String> {
        let auth = Auth::bearer(token)?;
        Ok(match oauth {
            Some(o) => auth.with_oauth(o.cache_for(url)?),
            None => auth,
        })
    }

    /// Whether the value can change from one request to the next (OAuth): it must be read
    /// per request, not written once into a pre-serialised head.
    pub fn is_oauth(&self) -> bool {
        self.oauth.is_some()
    }

    /// A request that carried `sent` was refused with `status` and the `WWW-Authenticate`
    /// `challenge`: with OAuth, a 401 or 403 runs the flow (once for every session waiting
    /// on it). `Ok(true)`: retry the request once; `Ok(false)`: nothing to do (no OAuth,
    /// another status, a 403 that is not about scope); `Err`: why OAuth failed.
    pub async fn on_refusal(&self, status: u16, challenge: &str, sent: Option<&HeaderValue>) -> Result<bool, String> {
        let Some(cache) = &self.oauth else { return Ok(false) };
        if status != 401 && status != 403 {
            return Ok(false);
        }
        cache.challenge(status, challenge, sent).await
    }

    /// [`on_refusal`](Self::on_refusal) for an HTTP response of the client transports (its
    /// `headers` hold the challenge); OAuth's failure is [`ClientError::OAuth`] for `target`.
    pub async fn retry_refused(
        &self,
        target: &str,
        status: hyper::StatusCode,
        headers: &hyper::HeaderMap,
        sent: Option<&HeaderValue>,
    ) -> Result<bool, ClientError> {
        if self.oauth.is_none() {
            return Ok(false);
        }
        let status = status.as_u16();
        self.on_refusal(status, &challenge_of(headers), sent).await.map_err(|detail| ClientError::OAuth {
            target: target.to_string(),
            status,
            detail,
        })
    }

    /// The `Authorization` value for the next request. Called once per request: the seam
    /// where a token that expires would be refreshed.
    pub fn header(&self) -> Option<HeaderValue> {
        self.oauth.as_ref().and_then(|c| c.header()).or_else(|| self.bearer.clone())
    }
}

/// Parses `K: V` (as given to `--header`) into a name and a value; the error names the
/// header and what is wrong with it.
pub fn parse_header(spec: &str) -> Result<(String, String), String> {
    let Some((name, value)) = spec.split_once(':') else {
        return Err(format!("header '{spec}' must be NAME: VALUE"));
    };
    let (name, value) = (name.trim(), value.trim());
    check_header(name, value)?;
    Ok((name.to_string(), value.to_string()))
}

/// Headers the client sets itself: a user-given one would make the session unusable.
const RESERVED: [&str; 6] =
    ["host", "content-length", "content-type", "mcp-session-id", "transfer-encoding", "connection"];

/// Checks one header name and value; the error names the bad header.
pub fn check_header(name: &str, value: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err(format!("header ': {value}' has no name"));
    }
    HeaderName::from_bytes(name.as_bytes())
        .map_err(|_| format!("header name '{name}' is not a valid HTTP header name"))?;
    HeaderValue::from_str(value)
        .map_err(|_| format!("header '{name}' has a value that is not a valid HTTP header value"))?;
    if RESERVED.contains(&name.to_ascii_lowercase().as_str()) {
        return Err(format!("header '{name}' is set by the client itself and cannot be given"));
    }
    Ok(())
}

/// Checks every header of a list.
pub fn check_headers(headers: &[(String, String)]) -> Result<(), String> {
    headers.iter().try_for_each(|(n, v)| check_header(n, v))
}

/// Extra headers as hyper types (already checked: an invalid one is skipped).
pub fn header_pairs(headers: &[(String, String)]) -> Vec<(HeaderName, HeaderValue)> {
    headers
        .iter()
        .filter_map(|(n, v)| {
            let mut value = HeaderValue::from_str(v).ok()?;
            if n.eq_ignore_ascii_case("authorization") || n.eq_ignore_ascii_case("cookie") {
                value.set_sensitive(true);
            }
            Some((HeaderName::from_bytes(n.as_bytes()).ok()?, value))
        })
        .collect()
}

/// The error for an HTTP 401: the status and the server's `WWW-Authenticate` challenge
/// (where an OAuth flow would start).
pub fn unauthorized(target: String, headers: &hyper::HeaderMap) -> ClientError {
    ClientError::Unauthorized { target, status: 401, www_authenticate: challenge_of(headers) }
}

/// Every `WWW-Authenticate` value of a reply, comma-joined.
pub fn challenge_of(headers: &hyper::HeaderMap) -> String {
    headers
        .get_all(hyper::header::WWW_AUTHENTICATE)
        .iter()
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_checks_headers() {
        assert_eq!(parse_header("X-Trace:  abc ").unwrap(), ("X-Trace".into(), "abc".into()));
        assert_eq!(parse_header("Authorization: Basic x:y").unwrap().1, "Basic x:y");
        assert!(parse_header("no colon").unwrap_err().contains("NAME: VALUE"));
        assert!(parse_header("bad name: v").unwrap_err().contains("'bad name'"));
        assert!(parse_header("X-A: a\u{7f}b").unwrap_err().contains("'X-A'"));
        assert!(parse_header("Host: x").unwrap_err().contains("'Host'"));
        assert!(parse_header(": v").unwrap_err().contains("no name"));
    }

    #[test]
    fn the_bearer_never_shows_in_debug_output() {
        let a = Auth::bearer(Some("s3cret")).unwrap();
        assert_eq!(a.header().unwrap().to_str().unwrap(), "Bearer s3cret");
        assert!(!format!("{a:?}").contains("s3cret"));
        assert!(Auth::bearer(Some("a\nb")).is_err());
    }
}
