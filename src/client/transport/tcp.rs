//! `tcp://host:port`: newline-delimited JSON-RPC over a TCP connection.

use super::stream::LineWriter;
use super::{BoxFuture, RawSent, Transport};
use crate::client::{ClientError, ClientOptions, Dispatcher};
use crate::protocol::Message;
use std::sync::Arc;
use tokio::net::tcp::OwnedWriteHalf;

pub struct TcpTransport {
    lines: LineWriter<OwnedWriteHalf>,
}

/// Resolves `host`, connects (from `opts.source_addr` when set) and starts reading.
pub async fn connect(
    host: &str,
    port: u16,
    dispatch: Arc<Dispatcher>,
    opts: &ClientOptions,
) -> Result<TcpTransport, ClientError> {
    let target = dispatch.target().to_string();
    let err = |detail: String| ClientError::Connect { target: target.clone(), detail };
    let addr = tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| err(format!("cannot resolve {host}: {e}")))?
        .next()
        .ok_or_else(|| err(format!("{host} resolves to no address")))?;
    let stream = crate::net::socket::connect(addr, opts.source_addr).await.map_err(|e| err(e.to_string()))?;
    let (r, w) = stream.into_split();
    Ok(TcpTransport { lines: LineWriter::start(r, w, dispatch, opts.max_message_size) })
}

impl Transport for TcpTransport {
    fn send(&self, msg: Message) -> BoxFuture<'_, Result<(), ClientError>> {
        self.lines.send(msg)
    }

    fn send_batch(&self, msgs: Vec<Message>) -> BoxFuture<'_, Result<(), ClientError>> {
        self.lines.send_batch(msgs)
    }

    fn send_raw(&self, bytes: Vec<u8>) -> BoxFuture<'_, Result<RawSent, ClientError>> {
        Box::pin(async move { self.lines.send_raw(bytes).await.map(|()| RawSent::Awaiting) })
    }

    fn close(&self) -> BoxFuture<'_, ()> {
        Box::pin(self.lines.shutdown())
    }
}
