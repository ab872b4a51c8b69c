//! `sse+http://` (and `sse+https://`): the legacy HTTP+SSE transport (2024-11-05).
//!
//! One long GET holds the event stream; its first `endpoint` event names (relative to the
//! stream URL, or absolute) where to POST messages. Every reply arrives on the stream as a
//! `message` event and goes to the [`Dispatcher`]; the POSTs themselves are only
//! acknowledged (202); a POST refused with an error status fails the send that made it
//! (a JSON-RPC error body on a 400 is that error). One reader task per session reads the
//! stream; POSTs use a small keep-alive pool like Streamable HTTP. The end of the stream
//! closes the session. The GET and every POST carry the `Authorization` value [`Auth`]
//! gives for it; with OAuth, one refused with 401 (or 403 `insufficient_scope`) gets a
//! token ([`Auth::retry_refused`]) and is sent once more (the GET on a new connection).

use super::http::conn::{self, BodyError, Endpoint, Pool, ReqBody, RoundTripError};
use super::http::events::{EventParser, Kind};
use super::{BoxFuture, RawSent, Transport};
use crate::client::auth::Auth;
use crate::client::{ClientError, ClientOptions, Dispatcher};
use crate::protocol::Message;
use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, ACCEPT, AUTHORIZATION, CACHE_CONTROL, CONTENT_TYPE, HOST};
use hyper::{Method, Request};
use std::net::IpAddr;
use std::sync::{Arc, OnceLock};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub struct SseTransport {
    shared: Arc<Shared>,
    reader: JoinHandle<()>,
}

struct Shared {
    dispatch: Arc<Dispatcher>,
    /// The `Authorization` of the GET and every POST, read per request.
    auth: Auth,
    /// Extra headers (`--header`), on the GET and every POST.
    headers: Vec<(hyper::header::HeaderName, HeaderValue)>,
    source: Option<IpAddr>,
    /// For an `https://` endpoint.
    tls: crate::net::tls::ClientTls,
    /// Set once the `endpoint` event arrived.
    post: OnceLock<Poster>,
}

/// Where and how messages are POSTed.
struct Poster {
    endpoint: Endpoint,
    pool: Pool,
}

/// Opens a legacy SSE session: GET the stream at `url`, wait for the `endpoint` event.
pub async fn connect(
    url: &str,
    dispatch: Arc<Dispatcher>,
    opts: &ClientOptions,
) -> Result<Box<dyn Transport>, ClientError> {
    let target = dispatch.target().to_string();
    let err = |detail: String| ClientError::Connect { target: target.clone(), detail };
    let stream_url = url::Url::parse(url).map_err(|e| err(e.to_string()))?;
    let endpoint = Endpoint::resolve_with_tls(&stream_url, &opts.tls).await.map_err(err)?;
    let auth = Auth::for_server(opts.auth_token.as_deref(), opts.oauth.as_ref(), url).map_err(err)?;
    let headers = crate::client::auth::header_pairs(&opts.headers);
    let mut authed = false;
    let (resp, tx) = loop {
        let mut tx = conn::open(endpoint.addr, endpoint.tls.as_ref(), opts.source_addr).await.map_err(err)?;
        let sent = auth.header();
        let req = stream_request(&endpoint, &headers, sent.clone());
        let resp = tx.send_request(req).await.map_err(|e| err(format!("GET {stream_url}: {e}")))?;
        // OAuth got a token for everyone: the GET once more, on a new connection.
        if !authed && auth.retry_refused(&target, resp.status(), resp.headers(), sent.as_ref()).await? {
            authed = true;
            continue;
        }
        break (resp, tx);
    };
    let status = resp.status();
    if !status.is_success() {
        return Err(conn::status_error(target, resp, false).await);
    }
    let is_stream = resp.headers().get(CONTENT_TYPE).is_some_and(|ct| ct.as_bytes().starts_with(b"text/event-stream"));
    if !is_stream {
        return Err(err(format!(
            "GET {stream_url} answered {status} without an event stream (content-type text/event-stream)"
        )));
    }
    let shared = Arc::new(Shared {
        dispatch,
        auth,
        headers,
        source: opts.source_addr,
        tls: opts.tls.clone(),
        post: OnceLock::new(),
    });
    let (ready_tx, ready_rx) = oneshot::channel();
    // The request sender stays with the reader: dropping it early could end the stream.
    let reader =
        tokio::spawn(read_stream(shared.clone(), resp.into_body(), stream_url, opts.max_message_size, ready_tx, tx));
    match ready_rx.await {
        Ok(Ok(())) => Ok(Box::new(SseTransport { shared, reader })),
        Ok(Err(detail)) => {
            reader.abort();
            Err(err(detail))
        }
        Err(_) => Err(err("the event stream ended before the endpoint event".into())),
    }
}

/// The GET of the event stream, carrying `auth`.
fn stream_request(
    endpoint: &Endpoint,
    headers: &[(hyper::header::HeaderName, HeaderValue)],
    auth: Option<HeaderValue>,
) -> Request<ReqBody> {
    let mut req = Request::new(ReqBody::new(Bytes::new()));
    *req.uri_mut() = endpoint.path.clone();
    let h = req.headers_mut();
    h.insert(HOST, endpoint.host.clone());
    h.insert(ACCEPT, HeaderValue::from_static("text/event-stream"));
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    for (k, v) in headers {
        h.insert(k.clone(), v.clone());
    }
    if let Some(a) = auth {
        h.insert(AUTHORIZATION, a);
    }
    req
}

/// Reads the event stream until it ends: the first `endpoint` event sets up posting,
/// `message` events go to the dispatcher.
async fn read_stream<T>(
    shared: Arc<Shared>,
    mut body: Incoming,
    stream_url: url::Url,
    max: usize,
    ready: oneshot::Sender<Result<(), String>>,
    _keep: T,
) {
    let mut ready = Some(ready);
    let mut parser = EventParser::new(max);
    let dispatch = &shared.dispatch;
    let reason = 'read: loop {
        loop {
            let event = match parser.next_event() {
                Ok(Some(e)) => e,
                Ok(None) => break,
                Err(e) => {
                    break 'read Err(format!("an SSE event exceeded the limit of {} bytes; stream dropped", e.limit))
                }
            };
            match event.kind {
                Kind::Endpoint => {
                    let Some(ready) = ready.take() else { continue };
                    let result = shared.set_endpoint(&stream_url, &event.data).await;
                    let failed = result.is_err();
                    let _ = ready.send(result);
                    if failed {
                        return;
                    }
                }
                Kind::Message => {
                    let replies = dispatch.deliver_frame(&event.data);
                    if !replies.is_empty() {
                        let shared = shared.clone();
                        tokio::spawn(async move {
                            for reply in replies {
                                if let Err(e) = shared.post(Bytes::from(reply.to_vec())).await {
                                    tracing::debug!("cannot answer a server request: {e}");
                                }
                            }
                        });
                    }
                }
                Kind::Other => {}
            }
        }
        match body.frame().await {
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    parser.push(&data);
                }
            }
            Some(Err(e)) => break Ok(format!("by an error on the event stream: {e}")),
            None => break Ok("by the server (end of the event stream)".to_string()),
        }
    };
    match reason {
        Ok(closed) => dispatch.close(closed),
        Err(oversized) => dispatch.fail_all(oversized),
    }
}

impl Shared {
    fn target(&self) -> String {
        self.dispatch.target().to_string()
    }

    async fn set_endpoint(&self, stream_url: &url::Url, data: &[u8]) -> Result<(), String> {
        let text = std::str::from_utf8(data).map_err(|_| "the endpoint event is not UTF-8".to_string())?;
        let url = stream_url.join(text.trim()).map_err(|e| format!("bad endpoint '{text}': {e}"))?;
        let endpoint = Endpoint::resolve_with_tls(&url, &self.tls).await?;
        let pool = Pool::new(&endpoint, self.source);
        let _ = self.post.set(Poster { endpoint, pool });
        Ok(())
    }

    /// POSTs one message or batch; the replies (if any) come on the stream. Refused with
    /// 401 (or 403 `insufficient_scope`) under OAuth, it gets a token and goes once more.
    async fn post(&self, body: Bytes) -> Result<(), ClientError> {
        let Some(post) = self.post.get() else {
            return Err(ClientError::Closed { target: self.target(), detail: "before the endpoint event".into() });
        };
        let mut authed = false;
        loop {
            let sent = self.auth.header();
            let (resp, conn) = self.round_trip(post, &body, sent.as_ref()).await?;
            let status = resp.status();
            if !authed && self.auth.retry_refused(&self.target(), status, resp.headers(), sent.as_ref()).await? {
                if conn::read_body(resp.into_body(), 64 * 1024).await.is_ok() {
                    post.pool.put(conn);
                }
                authed = true;
                continue;
            }
            if !status.is_success() {
                // A JSON-RPC error in the body (a 400 with -32700 for bad JSON) is that error.
                return Err(conn::status_error(self.target(), resp, false).await);
            }
            // The acknowledgement body ("Accepted") carries nothing; read it so the
            // connection can be reused.
            match conn::read_body(resp.into_body(), 64 * 1024).await {
                Ok(_) => post.pool.put(conn),
                Err(BodyError::TooLarge) | Err(BodyError::Io(_)) => {}
            }
            return Ok(());
        }
    }

    /// One POST of `body` carrying `auth`, on a pooled connection.
    async fn round_trip(
        &self,
        post: &Poster,
        body: &Bytes,
        auth: Option<&HeaderValue>,
    ) -> Result<(hyper::Response<Incoming>, conn::Conn), ClientError> {
        let make = || {
            let mut req = Request::new(ReqBody::new(body.clone()));
            *req.method_mut() = Method::POST;
            *req.uri_mut() = post.endpoint.path.clone();
            let h = req.headers_mut();
            h.insert(HOST, post.endpoint.host.clone());
            h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            for (k, v) in &self.headers {
                h.insert(k.clone(), v.clone());
            }
            if let Some(a) = auth {
                h.insert(AUTHORIZATION, a.clone());
            }
            req
        };
        conn::round_trip(&post.pool, make).await.map_err(|e| match e {
            RoundTripError::Connect(detail) => ClientError::Connect { target: self.target(), detail },
            RoundTripError::Failed(e) => {
                ClientError::Closed { target: self.target(), detail: format!("during an HTTP request: {e}") }
            }
        })
    }
}

impl Transport for SseTransport {
    fn send(&self, msg: Message) -> BoxFuture<'_, Result<(), ClientError>> {
        Box::pin(self.shared.post(Bytes::from(msg.to_vec())))
    }

    fn send_batch(&self, msgs: Vec<Message>) -> BoxFuture<'_, Result<(), ClientError>> {
        Box::pin(self.shared.post(Bytes::from(crate::protocol::jsonrpc::batch_to_vec(&msgs))))
    }

    /// One POST with `bytes` as its body; the reply (if any) comes on the stream. An error
    /// status fails the send (with the JSON-RPC error of its body, if it has one).
    fn send_raw(&self, bytes: Vec<u8>) -> BoxFuture<'_, Result<RawSent, ClientError>> {
        Box::pin(async move { self.shared.post(Bytes::from(bytes)).await.map(|()| RawSent::Awaiting) })
    }

    /// Drops the stream (the server ends the session) and the POST connections.
    fn close(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            self.reader.abort();
            if let Some(post) = self.shared.post.get() {
                post.pool.clear();
            }
            self.shared.dispatch.close("closed by the client");
        })
    }
}

impl Drop for SseTransport {
    fn drop(&mut self) {
        self.reader.abort();
    }
}
