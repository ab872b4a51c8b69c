//! Newline-delimited JSON-RPC over any byte stream: the shared core of the `tcp://` and
//! `stdio:` transports. One reader task per connection feeds the dispatcher; writes go
//! straight to the stream under an uncontended async mutex (no writer task, no extra hop).

use super::BoxFuture;
use crate::client::{ClientError, Dispatcher};
use crate::net::lines::{LineError, LineReader};
use crate::protocol::Message;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::sync::Mutex;

/// First size of a connection's read buffer; it grows only for larger messages.
pub const INITIAL_READ_BUFFER: usize = 1024;

/// The write side of a line-framed connection.
pub struct LineWriter<W> {
    writer: Arc<Mutex<W>>,
    dispatch: Arc<Dispatcher>,
}

impl<W: AsyncWrite + Unpin + Send + 'static> LineWriter<W> {
    /// Starts the reader task over `reader` and returns the writer.
    pub fn start<R>(reader: R, writer: W, dispatch: Arc<Dispatcher>, max_message: usize) -> Self
    where
        R: AsyncRead + Unpin + Send + 'static,
    {
        let writer = Arc::new(Mutex::new(writer));
        tokio::spawn(read_loop(reader, writer.clone(), dispatch.clone(), max_message));
        LineWriter { writer, dispatch }
    }

    pub fn send(&self, msg: Message) -> BoxFuture<'_, Result<(), ClientError>> {
        let mut buf = Vec::with_capacity(128);
        msg.write_to(&mut buf);
        self.send_frame(buf)
    }

    /// Sends several messages as one batch frame (a JSON array on one line).
    pub fn send_batch(&self, msgs: Vec<Message>) -> BoxFuture<'_, Result<(), ClientError>> {
        self.send_frame(crate::protocol::jsonrpc::batch_to_vec(&msgs))
    }

    /// Sends `bytes` as one line exactly as given (a newline is appended; one inside
    /// `bytes` is sent as is: the peer then sees several lines).
    pub fn send_raw(&self, bytes: Vec<u8>) -> BoxFuture<'_, Result<(), ClientError>> {
        self.send_frame(bytes)
    }

    fn send_frame(&self, mut buf: Vec<u8>) -> BoxFuture<'_, Result<(), ClientError>> {
        Box::pin(async move {
            buf.push(b'\n');
            let mut w = self.writer.lock().await;
            // A write abandoned half-way (its request's deadline passed) would glue the
            // next message onto a partial line, so the connection is given up instead.
            let guard = PartialWriteGuard(&self.dispatch);
            let written = w.write_all(&buf).await;
            std::mem::forget(guard);
            if let Err(e) = written {
                let detail = format!("while sending: {e}");
                self.dispatch.close(detail.clone());
                return Err(ClientError::Closed { target: self.dispatch.target().to_string(), detail });
            }
            Ok(())
        })
    }

    /// Shuts the write side down (the peer sees end of input).
    pub async fn shutdown(&self) {
        let _ = self.writer.lock().await.shutdown().await;
        self.dispatch.close("closed by the client");
    }
}

/// Closes the session when dropped, i.e. when a write future is cancelled mid-write.
struct PartialWriteGuard<'a>(&'a Arc<Dispatcher>);

impl Drop for PartialWriteGuard<'_> {
    fn drop(&mut self) {
        self.0.close("a write was interrupted by its deadline, leaving a partial message; connection given up");
    }
}

async fn read_loop<R, W>(reader: R, writer: Arc<Mutex<W>>, dispatch: Arc<Dispatcher>, max: usize)
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut lines = LineReader::new(reader, INITIAL_READ_BUFFER, max);
    loop {
        match lines.next_line().await {
            Ok(Some(line)) => {
                for reply in dispatch.deliver_frame(line) {
                    let mut buf = reply.to_vec();
                    buf.push(b'\n');
                    if writer.lock().await.write_all(&buf).await.is_err() {
                        break;
                    }
                }
            }
            Ok(None) => {
                dispatch.close("by the server (end of stream)");
                return;
            }
            Err(LineError::TooLong { limit }) => {
                dispatch.fail_all(format!("a message exceeded the limit of {limit} bytes; connection dropped"));
                return;
            }
            Err(LineError::Io(e)) => {
                dispatch.close(format!("by an I/O error: {e}"));
                return;
            }
        }
    }
}
