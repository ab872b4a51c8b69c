//! The response body of every HTTP reply: a whole body, a one-reply event stream (a
//! Streamable HTTP reply sent as SSE, possibly before the reply is ready), the event
//! stream of a call that talks to the client while it runs (resumable over Streamable
//! HTTP: [`super::streams`]), or a legacy SSE session stream fed by a channel. One enum,
//! so no reply is boxed.

use super::legacy::StreamGuard;
use bytes::Bytes;
use hyper::body::{Frame, SizeHint};
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::sync::mpsc;

/// A reply the handler produces later (the `sleep` tool, injected latency).
pub type PendingReply = Pin<Box<dyn Future<Output = Option<Vec<u8>>> + Send + 'static>>;

pub enum Body {
    /// A complete body (`None` once written, or empty).
    Full(Option<Bytes>),
    /// `first` (already formatted events), then the pending reply as one `message` event.
    Deferred { first: Option<Bytes>, reply: Option<PendingReply> },
    /// A legacy SSE session: `first` (the endpoint event), then whatever the channel
    /// brings, until every sender is gone. The guard ends the session when the client
    /// goes away (hyper drops the body).
    Events { first: Option<Bytes>, rx: mpsc::Receiver<Bytes>, _guard: StreamGuard },
    /// A streaming call ([`crate::server::peer::Streaming::start`]): `first`, then each
    /// message as a `message` event; ends after the reply. Dropping it (the client went
    /// away) stops the call.
    Messages { first: Option<Bytes>, rx: mpsc::Receiver<Vec<u8>> },
    /// A resumable event stream of a Streamable HTTP session, as one client reads it.
    Resumable(super::streams::Reader),
}

impl Body {
    pub fn empty() -> Body {
        Body::Full(None)
    }
}

impl From<Bytes> for Body {
    fn from(b: Bytes) -> Body {
        Body::Full(Some(b))
    }
}

impl From<Vec<u8>> for Body {
    fn from(v: Vec<u8>) -> Body {
        Body::Full(Some(Bytes::from(v)))
    }
}

impl From<&'static str> for Body {
    fn from(s: &'static str) -> Body {
        Body::Full(Some(Bytes::from_static(s.as_bytes())))
    }
}

/// Formats one JSON-RPC message as an SSE `message` event.
pub fn message_event(json: &[u8]) -> Bytes {
    let mut out = Vec::with_capacity(json.len() + 24);
    out.extend_from_slice(b"event: message\ndata: ");
    out.extend_from_slice(json);
    out.extend_from_slice(b"\n\n");
    Bytes::from(out)
}

fn data(b: Bytes) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
    Poll::Ready(Some(Ok(Frame::data(b))))
}

impl hyper::body::Body for Body {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match self.get_mut() {
            Body::Full(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            Body::Deferred { first, reply } => {
                if let Some(f) = first.take() {
                    return data(f);
                }
                let Some(fut) = reply else { return Poll::Ready(None) };
                let out = std::task::ready!(fut.as_mut().poll(cx));
                *reply = None;
                match out {
                    Some(json) => data(message_event(&json)),
                    None => Poll::Ready(None),
                }
            }
            Body::Events { first, rx, .. } => {
                if let Some(f) = first.take() {
                    return data(f);
                }
                rx.poll_recv(cx).map(|o| o.map(|b| Ok(Frame::data(b))))
            }
            Body::Messages { first, rx } => {
                if let Some(f) = first.take() {
                    return data(f);
                }
                rx.poll_recv(cx).map(|o| o.map(|json| Ok(Frame::data(message_event(&json)))))
            }
            Body::Resumable(reader) => reader.poll_next(cx).map(|o| o.map(|b| Ok(Frame::data(b)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self, Body::Full(None))
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Body::Full(None) => SizeHint::with_exact(0),
            Body::Full(Some(b)) => SizeHint::with_exact(b.len() as u64),
            _ => SizeHint::default(),
        }
    }
}
