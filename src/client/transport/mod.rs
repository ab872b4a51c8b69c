//! Client transports, one file each, behind the [`Transport`] trait. A transport moves
//! whole JSON-RPC messages: `send` writes one, and everything the server sends (replies,
//! notifications, server requests) is handed to the session's [`Dispatcher`].
//! [`connect`] picks the transport from the target's scheme.

pub mod http;
pub mod sse;
pub mod stdio;
pub mod stream;
pub mod tcp;
pub mod ws;

use super::{ClientError, ClientOptions, Dispatcher, Target};
use crate::protocol::Message;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

/// A boxed future, so transports can sit behind `dyn Transport`.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// One connection to a server, carrying JSON-RPC messages both ways.
pub trait Transport: Send + Sync {
    /// Sends one message. For request/response transports (HTTP) the reply is read here
    /// and handed to the dispatcher before the future completes.
    fn send(&self, msg: Message) -> BoxFuture<'_, Result<(), ClientError>>;

    /// Sends several messages as one JSON-RPC batch (revisions up to 2025-03-26 allow
    /// batches). The default sends them one by one, for transports without batch framing.
    fn send_batch(&self, msgs: Vec<Message>) -> BoxFuture<'_, Result<(), ClientError>> {
        Box::pin(async move {
            for m in msgs {
                self.send(m).await?;
            }
            Ok(())
        })
    }

    /// Sends `bytes` as one message exactly as given, however malformed: a line over
    /// tcp/stdio (a newline is appended; a newline inside `bytes` goes out as is, making
    /// several lines), one WebSocket text frame, the body of one POST over Streamable HTTP
    /// and legacy SSE (with the session's headers). What the server answers goes to the
    /// dispatcher as usual, where a raw waiter may claim it.
    fn send_raw(&self, bytes: Vec<u8>) -> BoxFuture<'_, Result<RawSent, ClientError>>;

    /// Called with the protocol revision the session speaks from now on: the negotiated
    /// one once `initialize` succeeded, the stateless one before `server/discover` (then
    /// every request is stateless until told otherwise), `None` before falling back to the
    /// handshake. HTTP sends it as `MCP-Protocol-Version`; line transports carry the
    /// revision in the messages only.
    fn set_protocol_version(&self, _version: Option<&str>) {}

    /// Called once the session is initialized (after `notifications/initialized`):
    /// Streamable HTTP opens its GET stream for server-initiated messages here, and the
    /// future resolves once the server answered the GET (a message a server sends before
    /// its stream exists is lost), or after a short while. Others receive those messages on
    /// their one connection already.
    fn listen(&self) -> BoxFuture<'_, ()> {
        Box::pin(async {})
    }

    /// Ends the session: DELETE for HTTP, closing the socket, ending a stdio child.
    fn close(&self) -> BoxFuture<'_, ()>;
}

/// What a transport knows, after [`Transport::send_raw`], about the reply to come.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RawSent {
    /// The reply, if the server sends one, arrives later through the dispatcher.
    Awaiting,
    /// The exchange is over (Streamable HTTP reads the reply inside the send): a reply was
    /// handed to the dispatcher already, or none will come; `answer` says what the server
    /// answered then (e.g. "HTTP 202 with no body").
    Finished { answer: String },
}

/// Opens a transport to `target`; inbound messages go to `dispatch`.
pub async fn connect(
    target: &Target,
    dispatch: Arc<Dispatcher>,
    opts: &ClientOptions,
) -> Result<Box<dyn Transport>, ClientError> {
    match target {
        Target::Tcp { host, port } => Ok(Box::new(tcp::connect(host, *port, dispatch, opts).await?)),
        Target::Stdio { command, args } => Ok(Box::new(stdio::spawn(command, args, dispatch, opts)?)),
        Target::Http { url } => http::connect(url, dispatch, opts).await,
        Target::LegacySse { url } => sse::connect(url, dispatch, opts).await,
        Target::Ws { url } => ws::connect(url, dispatch, opts).await,
        Target::Builtin => Err(ClientError::Connect {
            target: "builtin".into(),
            detail: "the built-in server must be started first (mcpscript does this for `run` and `call`)".into(),
        }),
    }
}
