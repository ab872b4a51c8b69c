//! `ws://` (and `wss://`, over TLS): WebSocket, subprotocol `mcp`, one JSON-RPC message
//! per text frame.
//!
//! One reader task per connection hands every inbound frame to the dispatcher. Writes go
//! straight to the sink half from the sending task, under an async mutex (no writer task,
//! no extra hop, no allocation beyond the frame), like the line-framed transports. The
//! sink sits in an `Option`: taking it out is how the connection is closed, so a send
//! after the end fails at once.

use super::{BoxFuture, RawSent, Transport};
use crate::client::{ClientError, ClientOptions, Dispatcher};
use crate::net::tls::MaybeTls;
use crate::protocol::Message;
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Mutex;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::error::{CapacityError, ProtocolError, SubProtocolError};
use tokio_tungstenite::tungstenite::http::Uri;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::{ClientRequestBuilder, Error as WsError, Message as WsMessage};
use tokio_tungstenite::WebSocketStream;

/// The WebSocket subprotocol of MCP.
pub const SUBPROTOCOL: &str = "mcp";

/// Initial read buffer of a connection (allocated eagerly by tungstenite, and the most it
/// reads per system call); larger messages grow it.
const READ_BUFFER: usize = 4096;

/// How long a closing handshake may take before the socket is simply dropped.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

type Ws = WebSocketStream<MaybeTls>;
type Sink = Arc<Mutex<Option<SplitSink<Ws, WsMessage>>>>;

pub struct WsTransport {
    sink: Sink,
    dispatch: Arc<Dispatcher>,
    reader: std::sync::Mutex<Option<JoinHandle<()>>>,
}

/// Opens a WebSocket session to `url`.
pub async fn connect(
    url: &str,
    dispatch: Arc<Dispatcher>,
    opts: &ClientOptions,
) -> Result<Box<dyn Transport>, ClientError> {
    let target = dispatch.target().to_string();
    let err = |detail: String| ClientError::Connect { target: target.clone(), detail };
    let parsed = url::Url::parse(url).map_err(|e| err(format!("invalid URL: {e}")))?;
    let host = parsed.host_str().ok_or_else(|| err("the URL has no host".into()))?.trim_matches(['[', ']']).to_string();
    let port = parsed.port_or_known_default().ok_or_else(|| err("the URL has no port".into()))?;
    let addr = tokio::net::lookup_host((host.as_str(), port))
        .await
        .map_err(|e| err(format!("cannot resolve {host}: {e}")))?
        .next()
        .ok_or_else(|| err(format!("{host} resolves to no address")))?;
    let stream = crate::net::socket::connect(addr, opts.source_addr).await.map_err(|e| err(e.to_string()))?;
    let tls = match parsed.scheme() {
        "wss" => Some(opts.tls.target(&host).map_err(err)?),
        _ => None,
    };
    let stream = crate::net::tls::wrap(stream, tls.as_ref()).await.map_err(err)?;

    let uri: Uri = url.parse().map_err(|e| err(format!("invalid URL: {e}")))?;
    let mut request = ClientRequestBuilder::new(uri).with_sub_protocol(SUBPROTOCOL);
    for (k, v) in &opts.headers {
        request = request.with_header(k.clone(), v.clone());
    }
    if let Some(token) = &opts.auth_token {
        request = request.with_header("Authorization", format!("Bearer {token}"));
    }
    let config = WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER)
        .max_message_size(Some(opts.max_message_size))
        .max_frame_size(Some(opts.max_message_size));
    let (ws, _response) = tokio_tungstenite::client_async_with_config(request, stream, Some(config))
        .await
        .map_err(|e| err(handshake_error(e)))?;

    let (sink, stream) = ws.split();
    let sink: Sink = Arc::new(Mutex::new(Some(sink)));
    let reader = tokio::spawn(read_loop(stream, sink.clone(), dispatch.clone()));
    Ok(Box::new(WsTransport { sink, dispatch, reader: std::sync::Mutex::new(Some(reader)) }))
}

/// Says why the opening handshake failed.
fn handshake_error(e: WsError) -> String {
    match e {
        WsError::Http(resp) => {
            let status = resp.status();
            let body = resp.body().as_deref().map(String::from_utf8_lossy).unwrap_or_default();
            let body: String = body.trim().chars().take(200).collect();
            let mut detail = format!("the WebSocket upgrade was refused: HTTP {}", status.as_u16());
            if let Some(reason) = status.canonical_reason() {
                detail.push(' ');
                detail.push_str(reason);
            }
            if !body.is_empty() {
                detail.push_str(": ");
                detail.push_str(&body);
            }
            detail
        }
        WsError::Protocol(ProtocolError::SecWebSocketSubProtocolError(SubProtocolError::NoSubProtocol)) => {
            format!("the server did not accept the WebSocket subprotocol '{SUBPROTOCOL}' (no Sec-WebSocket-Protocol in its reply)")
        }
        WsError::Protocol(e) => format!("WebSocket handshake failed: {e}"),
        WsError::Io(e) => format!("during the WebSocket handshake: {e}"),
        other => format!("WebSocket handshake failed: {other}"),
    }
}

/// A text frame holding one serialised JSON-RPC message (serde_json output is always
/// UTF-8, so this moves the buffer without copying it).
fn text_frame(json: Vec<u8>) -> WsMessage {
    match String::from_utf8(json) {
        Ok(s) => WsMessage::Text(s.into()),
        Err(e) => WsMessage::Binary(e.into_bytes().into()),
    }
}

/// How the connection ended, as the reader saw it.
enum End {
    /// Closed cleanly or by the network; nothing more to send.
    Quiet,
    /// Our side must fail the connection with this close code.
    Fail(CloseCode, &'static str),
}

async fn read_loop(mut stream: SplitStream<Ws>, sink: Sink, dispatch: Arc<Dispatcher>) {
    let end = loop {
        match stream.next().await {
            Some(Ok(WsMessage::Text(text))) => deliver(&dispatch, &sink, text.as_bytes()).await,
            // Not what MCP over WebSocket prescribes, but the content may still be JSON-RPC:
            // deliver it and let the dispatcher judge (it records what it cannot parse).
            Some(Ok(WsMessage::Binary(data))) => deliver(&dispatch, &sink, &data).await,
            // tungstenite answers pings itself on the next read.
            Some(Ok(WsMessage::Ping(_) | WsMessage::Pong(_) | WsMessage::Frame(_))) => {}
            Some(Ok(WsMessage::Close(frame))) => {
                // Keep reading: the next read sends our close reply, then the stream ends.
                dispatch.close(describe_close(frame.as_ref()));
            }
            Some(Err(WsError::Capacity(e))) => {
                let detail = match e {
                    CapacityError::MessageTooLong { size, max_size } => {
                        format!("a message of {size} bytes exceeded the limit of {max_size} bytes; connection dropped")
                    }
                    other => format!("{other}; connection dropped"),
                };
                dispatch.fail_all(detail);
                break End::Fail(CloseCode::Size, "message too big");
            }
            Some(Err(WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake))) => {
                dispatch.close("by the server (without a WebSocket close frame)");
                break End::Quiet;
            }
            Some(Err(WsError::Protocol(e))) => {
                dispatch.fail_all(format!("WebSocket protocol violation: {e}; connection dropped"));
                break End::Fail(CloseCode::Protocol, "protocol error");
            }
            Some(Err(WsError::Utf8(e))) => {
                dispatch.fail_all(format!("a text frame is not valid UTF-8 ({e}); connection dropped"));
                break End::Fail(CloseCode::Invalid, "invalid UTF-8");
            }
            Some(Err(e)) => {
                dispatch.close(format!("by an I/O error: {e}"));
                break End::Quiet;
            }
            None => {
                dispatch.close("by the server (end of stream)");
                break End::Quiet;
            }
        }
    };
    // Taking the sink out drops our write half: with the read half gone too (this task
    // ends), the socket closes.
    let taken = sink.lock().await.take();
    if let (Some(mut sink), End::Fail(code, reason)) = (taken, end) {
        let frame = CloseFrame { code, reason: reason.into() };
        let _ = tokio::time::timeout(CLOSE_GRACE, sink.send(WsMessage::Close(Some(frame)))).await;
    }
}

/// Hands one frame to the dispatcher and sends the replies it owes the server.
async fn deliver(dispatch: &Dispatcher, sink: &Sink, frame: &[u8]) {
    let replies = dispatch.deliver_frame(frame);
    if replies.is_empty() {
        return;
    }
    let mut guard = sink.lock().await;
    let Some(sink) = guard.as_mut() else { return };
    for reply in replies {
        if sink.feed(text_frame(reply.to_vec())).await.is_err() {
            return;
        }
    }
    let _ = sink.flush().await;
}

fn describe_close(frame: Option<&CloseFrame>) -> String {
    match frame {
        None => "by the server (WebSocket close without a code)".to_string(),
        Some(f) if f.reason.is_empty() => format!("by the server (WebSocket close {})", u16::from(f.code)),
        Some(f) => format!("by the server (WebSocket close {}: {})", u16::from(f.code), f.reason.as_str()),
    }
}

impl WsTransport {
    fn closed_error(&self, detail: impl Into<String>) -> ClientError {
        ClientError::Closed { target: self.dispatch.target().to_string(), detail: detail.into() }
    }

    /// Sends one frame holding `json` (a text frame when it is UTF-8).
    async fn send_frame(&self, json: Vec<u8>) -> Result<(), ClientError> {
        let frame = text_frame(json);
        let mut guard = self.sink.lock().await;
        let Some(sink) = guard.as_mut() else {
            return Err(self.closed_error("before the message could be sent"));
        };
        if let Err(e) = sink.send(frame).await {
            let detail = format!("while sending: {e}");
            self.dispatch.close(detail.clone());
            return Err(self.closed_error(detail));
        }
        Ok(())
    }
}

impl Transport for WsTransport {
    fn send(&self, msg: Message) -> BoxFuture<'_, Result<(), ClientError>> {
        Box::pin(async move {
            let mut buf = Vec::with_capacity(128);
            msg.write_to(&mut buf);
            self.send_frame(buf).await
        })
    }

    /// One text frame holding `bytes` exactly (a binary frame if they are not UTF-8).
    fn send_raw(&self, bytes: Vec<u8>) -> BoxFuture<'_, Result<RawSent, ClientError>> {
        Box::pin(async move { self.send_frame(bytes).await.map(|()| RawSent::Awaiting) })
    }

    /// Sends a close frame (1000), waits briefly for the server's reply and the end of the
    /// stream, then drops the connection.
    fn close(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            self.dispatch.close("closed by the client");
            if let Ok(mut guard) = tokio::time::timeout(CLOSE_GRACE, self.sink.lock()).await {
                if let Some(mut sink) = guard.take() {
                    drop(guard);
                    let frame = CloseFrame { code: CloseCode::Normal, reason: "".into() };
                    let _ = tokio::time::timeout(CLOSE_GRACE, sink.send(WsMessage::Close(Some(frame)))).await;
                }
            }
            let reader = self.reader.lock().unwrap_or_else(|e| e.into_inner()).take();
            if let Some(mut reader) = reader {
                if tokio::time::timeout(CLOSE_GRACE, &mut reader).await.is_err() {
                    reader.abort();
                }
            }
        })
    }
}

impl Drop for WsTransport {
    /// A session dropped without `close` must not leave its socket open: stopping the
    /// reader drops the last half of the connection.
    fn drop(&mut self) {
        if let Some(reader) = self.reader.get_mut().unwrap_or_else(|e| e.into_inner()).take() {
            reader.abort();
        }
    }
}
