//! The HTTP calls of an OAuth flow: one request per connection (opened with the client's
//! own hyper stack, TLS for `https://`), the body read up to [`MAX_BODY`], the whole call
//! under a deadline. Redirects are not followed: the authorization-code grant reads the
//! code from the `Location` of the authorization endpoint's redirect.

use crate::client::transport::http::conn::{self, Endpoint, ReqBody};
use crate::net::tls::ClientTls;
use bytes::Bytes;
use hyper::header::{HeaderMap, HeaderName, HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_TYPE, HOST};
use hyper::{Method, Request};
use std::time::Duration;
use url::Url;

/// The largest OAuth reply read (metadata, registration and token replies are small).
pub const MAX_BODY: usize = 1 << 20;

/// An HTTP reply, read to its end.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    /// The body as JSON, or an error naming what came instead.
    pub fn json(&self) -> Result<serde_json::Value, String> {
        serde_json::from_slice(&self.body).map_err(|e| format!("the body is not JSON ({e}): {}", snippet(&self.body)))
    }

    pub fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// The start of a body, for error messages.
pub fn snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(&body[..body.len().min(200)]).replace(['\n', '\r'], " ");
    if text.trim().is_empty() {
        "(empty body)".into()
    } else if body.len() > 200 {
        format!("'{text}...'")
    } else {
        format!("'{text}'")
    }
}

/// What a request carries besides its method and URL.
#[derive(Default)]
pub struct Outgoing {
    pub content_type: Option<&'static str>,
    pub body: Bytes,
    pub authorization: Option<HeaderValue>,
}

/// One request to `url`; the error names the method, URL and what failed.
pub async fn send(
    tls: &ClientTls,
    method: Method,
    url: &Url,
    out: Outgoing,
    timeout: Duration,
) -> Result<Reply, String> {
    let what = format!("{method} {}", url.as_str());
    match tokio::time::timeout(timeout, send_inner(tls, method, url, out)).await {
        Ok(Ok(r)) => Ok(r),
        Ok(Err(e)) => Err(format!("{what}: {e}")),
        Err(_) => Err(format!("{what}: no answer within {}", crate::util::human::duration(timeout))),
    }
}

async fn send_inner(tls: &ClientTls, method: Method, url: &Url, out: Outgoing) -> Result<Reply, String> {
    let endpoint = Endpoint::resolve_with_tls(url, tls).await?;
    let mut tx = conn::open(endpoint.addr, endpoint.tls.as_ref(), None).await?;
    let mut req = Request::new(ReqBody::new(out.body));
    *req.method_mut() = method;
    *req.uri_mut() = endpoint.path.clone();
    let h = req.headers_mut();
    h.insert(HOST, endpoint.host.clone());
    h.insert(ACCEPT, HeaderValue::from_static("application/json"));
    h.insert(HeaderName::from_static("mcp-protocol-version"), HeaderValue::from_static("2025-11-25"));
    if let Some(ct) = out.content_type {
        h.insert(CONTENT_TYPE, HeaderValue::from_static(ct));
    }
    if let Some(mut a) = out.authorization {
        a.set_sensitive(true);
        h.insert(AUTHORIZATION, a);
    }
    tx.ready().await.map_err(|e| e.to_string())?;
    let resp = tx.send_request(req).await.map_err(|e| e.to_string())?;
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = match conn::read_body(resp.into_body(), MAX_BODY).await {
        Ok(b) => b,
        Err(conn::BodyError::TooLarge) => return Err(format!("HTTP {status} with a body over {MAX_BODY} bytes")),
        Err(conn::BodyError::Io(e)) => return Err(format!("reading the reply: {e}")),
    };
    Ok(Reply { status, headers, body })
}

/// `GET url` asking for JSON.
pub async fn get(tls: &ClientTls, url: &Url, timeout: Duration) -> Result<Reply, String> {
    send(tls, Method::GET, url, Outgoing::default(), timeout).await
}

/// `POST url` with a form body (and HTTP Basic client authentication when `basic` is set).
pub async fn post_form(
    tls: &ClientTls,
    url: &Url,
    form: &[(&str, &str)],
    basic: Option<HeaderValue>,
    timeout: Duration,
) -> Result<Reply, String> {
    let body = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(form).finish();
    let out = Outgoing {
        content_type: Some("application/x-www-form-urlencoded"),
        body: Bytes::from(body),
        authorization: basic,
    };
    send(tls, Method::POST, url, out, timeout).await
}

/// `POST url` with a JSON body.
pub async fn post_json(
    tls: &ClientTls,
    url: &Url,
    body: &serde_json::Value,
    timeout: Duration,
) -> Result<Reply, String> {
    let out = Outgoing {
        content_type: Some("application/json"),
        body: Bytes::from(serde_json::to_vec(body).unwrap_or_default()),
        authorization: None,
    };
    send(tls, Method::POST, url, out, timeout).await
}

/// `Authorization: Basic` for a client ID and secret, each form-encoded first (RFC 6749
/// section 2.3.1).
pub fn basic(client_id: &str, secret: &str) -> HeaderValue {
    use base64::Engine;
    let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    let creds = base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", enc(client_id), enc(secret)));
    let mut v = HeaderValue::try_from(format!("Basic {creds}")).expect("base64 is a valid header value");
    v.set_sensitive(true);
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_credentials_are_form_encoded_then_base64() {
        // "a b:c" -> "a+b" and "c%3A" joined by ':' (RFC 6749 2.3.1).
        let v = basic("a b", "c:");
        assert_eq!(v.to_str().unwrap(), "Basic YStiOmMlM0E=");
        assert!(v.is_sensitive());
    }

    #[test]
    fn snippets_are_short_and_name_empty_bodies() {
        assert_eq!(snippet(b""), "(empty body)");
        assert_eq!(snippet(b"oops\n"), "'oops '");
        assert!(snippet(&[b'x'; 500]).ends_with("...'"));
    }
}
