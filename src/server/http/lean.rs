//! The lean HTTP/1.1 connections of plain `http://`, `sse+http://` and `ws://` listeners
//! (TLS connections are served by hyper): the same routes, fed by a request parser
//! (`httparse`) and a response writer that hold nothing while the connection waits for
//! its next request. A request's bytes are read into a buffer borrowed from the thread's
//! spares ([`Spare`]) and the response is written from one; both go back when the
//! response is out, and the work of a request runs in a future boxed for that request
//! only, so an idle keep-alive connection costs its socket and a task of a few hundred
//! bytes (hyper keeps about 8 KB of buffers per connection for its life).
//!
//! Keep-alive as HTTP/1.1 says (`Connection: close`, HTTP/1.0 without keep-alive);
//! `Content-Length` and chunked request bodies; `Expect: 100-continue` answered; a body
//! over `max_message_size` is not read (its 413 comes from the route, then the connection
//! closes); whole response bodies go out with `Content-Length`, event streams chunked,
//! watched for the client going away (which ends them, as hyper would by dropping the
//! body); a 101 to a WebSocket upgrade hands the socket to the WebSocket server.

use super::body::Body;
use super::sessions::Attached;
use super::{ReqBody, Shared, SHUTDOWN_GRACE};
use crate::net::http1::{decode, BadFraming, Chunk, Framing, Spare, MAX_HEAD, READ_CHUNK};
use bytes::Bytes;
use futures_util::FutureExt as _;
use http_body_util::BodyExt;
use hyper::header::{HeaderName, HeaderValue, CONNECTION, CONTENT_LENGTH, EXPECT, TRANSFER_ENCODING};
use hyper::{Method, Request, Response, StatusCode, Version};
use std::io::{self, Write as _};
use std::mem::MaybeUninit;
use std::sync::Arc;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;

/// Request header lines parsed at most.
const MAX_HEADERS: usize = 64;

/// Serves one plain connection until it closes, fails, or shutdown ends it.
pub(super) async fn serve(mut stream: TcpStream, shared: Arc<Shared>) {
    let attached = Attached::new(shared.state.clone());
    let mut shutdown = shared.shutdown.clone();
    // What the idle wait watches, for the connection's whole life: its waiter joins the
    // shutdown channel's list once, not once per request (joining and leaving it around
    // every request took about 3% of a server process's CPU at 30K req/s).
    let mut idle_watch = shared.shutdown.clone();
    let stopping = idle_watch.wait_for(|s| *s);
    tokio::pin!(stopping);
    // Bytes read past the end of the last request (a pipelining client); empty, with no
    // allocation, otherwise.
    let mut pending = Vec::new();
    loop {
        let first = if pending.is_empty() {
            // Idle: wait for the next request without holding any buffer.
            tokio::select! {
                // Shutdown first: a request that arrives with it is not taken.
                biased;
                _ = &mut stopping => return,
                r = stream.readable() => if r.is_err() { return },
            }
            // The readiness may be left over from the last request's read: take a buffer
            // only when bytes are there. A read through `AsyncRead` that fills less than
            // the buffer clears the readiness (the socket is drained), so the next wait
            // costs no extra `recv` that would only say "would block".
            let mut first = Spare::default();
            match stream.read_buf(&mut first.0).now_or_never() {
                Some(Ok(0)) | Some(Err(_)) => return,
                Some(Ok(_)) => first,
                // Nothing there after all: the readiness is cleared; wait again.
                None => continue,
            }
        } else {
            // Pipelined bytes become the buffer (and go to the spares after).
            Spare(std::mem::take(&mut pending))
        };
        let next = Box::pin(exchange(&mut stream, &shared, &attached, first, &mut pending, &mut shutdown));
        match next.await {
            Ok(After::KeepAlive) if !*shutdown.borrow() => {}
            Ok(After::Upgrade) => {
                let (state, shutdown) = (shared.state.clone(), shared.shutdown.clone());
                return Box::pin(crate::server::ws::serve_upgraded_until(stream, state, shutdown)).await;
            }
            Ok(_) => return linger_close(stream).await,
            Err(_) => return,
        }
    }
}

/// Closes a connection the server is done with: its end of the stream first, then what
/// the client still sends is read and dropped for a moment (closing a socket with unread
/// bytes resets it, and a reset can destroy the response before the client reads it).
async fn linger_close(mut stream: TcpStream) {
    let _ = stream.shutdown().await;
    let mut sink = [0u8; 1024];
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_millis(500);
    for _ in 0..64 {
        match tokio::time::timeout_at(deadline, tokio::io::AsyncReadExt::read(&mut stream, &mut sink)).await {
            Ok(Ok(n)) if n > 0 => {}
            _ => return,
        }
    }
}

/// What the connection does after an exchange.
enum After {
    KeepAlive,
    Close,
    /// A 101 went out: the socket is the WebSocket server's now.
    Upgrade,
}

/// The connection is gone (closed by the client, failed, or its framing broken).
struct Gone;

impl From<io::Error> for Gone {
    fn from(_: io::Error) -> Gone {
        Gone
    }
}

impl From<BadFraming> for Gone {
    fn from(_: BadFraming) -> Gone {
        Gone
    }
}

/// One request and its response. `Err` when the connection is gone or unusable.
async fn exchange(
    stream: &mut TcpStream,
    shared: &Arc<Shared>,
    attached: &Attached,
    first: Spare,
    pending: &mut Vec<u8>,
    shutdown: &mut watch::Receiver<bool>,
) -> Result<After, Gone> {
    let (req, keep_alive) = match read_request(stream, shared, first, pending).await? {
        Ok(r) => r,
        Err(refusal) => {
            write_response(stream, shared, refusal, Keep::Close, pending, shutdown).await?;
            return Ok(After::Close);
        }
    };
    let too_large = matches!(req.body(), ReqBody::TooLarge);
    let http10 = req.version() == Version::HTTP_10;
    let resp = tokio::select! {
        // The route first: most answer at once, and the shutdown watch is then never polled.
        biased;
        r = shared.route(req, attached) => r,
        _ = after_grace(shutdown) => return Ok(After::Close),
    };
    if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
        write_response(stream, shared, resp, Keep::Quiet, pending, shutdown).await?;
        return Ok(After::Upgrade);
    }
    // A body left unread leaves the connection in the middle of a request.
    let keep_alive = keep_alive && !too_large;
    let keep = match (keep_alive, http10) {
        (false, _) => Keep::Close,
        (true, true) => Keep::Say,
        (true, false) => Keep::Quiet,
    };
    write_response(stream, shared, resp, keep, pending, shutdown).await?;
    Ok(if keep_alive { After::KeepAlive } else { After::Close })
}

/// Resolves once shutdown has begun and [`SHUTDOWN_GRACE`] has passed since.
async fn after_grace(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|s| *s).await;
    tokio::time::sleep(SHUTDOWN_GRACE).await;
}

/// A request parsed: the route's request and whether the connection stays open after it;
/// or the reply that refuses it (the connection closes after).
type Parsed = Result<(Request<ReqBody>, bool), Response<Body>>;

/// Reads one request, whose first bytes `buf` holds: its head, then its body (bytes read
/// past its end go to `pending`).
async fn read_request(
    stream: &mut TcpStream,
    shared: &Shared,
    mut buf: Spare,
    pending: &mut Vec<u8>,
) -> Result<Parsed, Gone> {
    let (head, used) = loop {
        if !buf.0.is_empty() {
            match parse_head(&buf.0) {
                Ok(Some(parsed)) => break parsed,
                Ok(None) if buf.0.len() <= MAX_HEAD => {}
                Ok(None) => {
                    return Ok(Err(bad(shared, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE, "headers too large")))
                }
                Err(why) => return Ok(Err(bad(shared, StatusCode::BAD_REQUEST, why))),
            }
        }
        if read_more(stream, &mut buf.0).await? == 0 {
            return Err(Gone);
        }
    };
    buf.0.drain(..used);
    let Head { mut req, framing, keep_alive, expect_continue } = head;
    let limit = shared.state.config.max_message_size;
    let mut framing = match framing {
        Ok(f) => f,
        Err(why) => return Ok(Err(bad(shared, StatusCode::BAD_REQUEST, why))),
    };
    if matches!(framing, Framing::Length(n) if n > limit as u64) {
        *req.body_mut() = ReqBody::TooLarge;
        return Ok(Ok((req, false)));
    }
    let mut body = match framing {
        Framing::Length(n) => Vec::with_capacity(n as usize),
        _ => Vec::new(),
    };
    let mut continued = !expect_continue;
    loop {
        let mut over = false;
        let (used, _) = decode::<Gone>(&mut framing, &buf.0, &mut |data| {
            over |= body.len() + data.len() > limit;
            if !over {
                body.extend_from_slice(data);
            }
            Ok(over)
        })?;
        buf.0.drain(..used);
        if over {
            *req.body_mut() = ReqBody::TooLarge;
            return Ok(Ok((req, false)));
        }
        if framing == Framing::Done {
            break;
        }
        if !continued {
            stream.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").await?;
            continued = true;
        }
        if read_more(stream, &mut buf.0).await? == 0 {
            return Err(Gone);
        }
    }
    if !buf.0.is_empty() {
        pending.extend_from_slice(&buf.0);
    }
    *req.body_mut() = ReqBody::Read(Bytes::from(body));
    Ok(Ok((req, keep_alive)))
}

/// Reads what the socket has into `buf` (at least one byte, or 0 at its end).
async fn read_more(stream: &mut TcpStream, buf: &mut Vec<u8>) -> io::Result<usize> {
    if buf.capacity() - buf.len() < 512 {
        buf.reserve(READ_CHUNK.max(buf.len()));
    }
    // Through `AsyncRead`: a read that fills less than the buffer clears the readiness.
    stream.read_buf(buf).await
}

/// A request head, parsed.
struct Head {
    req: Request<ReqBody>,
    framing: Result<Framing, &'static str>,
    keep_alive: bool,
    expect_continue: bool,
}

/// Parses a request head from the start of `buf`: `None` while it is incomplete, else the
/// head and its length.
fn parse_head(buf: &[u8]) -> Result<Option<(Head, usize)>, &'static str> {
    let mut headers = [const { MaybeUninit::uninit() }; MAX_HEADERS];
    let mut parsed = httparse::Request::new(&mut []);
    let used = match httparse::ParserConfig::default().parse_request_with_uninit_headers(&mut parsed, buf, &mut headers)
    {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err("too many header lines"),
        Err(_) => return Err("not an HTTP/1.1 request"),
    };
    let method = Method::from_bytes(parsed.method.unwrap_or_default().as_bytes()).map_err(|_| "a bad method")?;
    let version = if parsed.version == Some(0) { Version::HTTP_10 } else { Version::HTTP_11 };
    let mut req = Request::builder()
        .method(method)
        .uri(parsed.path.unwrap_or("/"))
        .version(version)
        .body(ReqBody::Read(Bytes::new()))
        .map_err(|_| "a bad request target")?;
    let (mut length, mut chunked, mut close, mut keep, mut expect_continue) = (None, false, false, false, false);
    let map = req.headers_mut();
    map.reserve(parsed.headers.len());
    for h in parsed.headers.iter() {
        let name = HeaderName::from_bytes(h.name.as_bytes()).map_err(|_| "a bad header name")?;
        let value = HeaderValue::from_bytes(h.value).map_err(|_| "a bad header value")?;
        if name == CONTENT_LENGTH {
            let n = std::str::from_utf8(h.value).ok().and_then(|v| v.trim().parse::<u64>().ok());
            match (n, length) {
                (Some(n), None) => length = Some(n),
                (Some(n), Some(m)) if n == m => {}
                _ => return Err("a bad Content-Length"),
            }
        } else if name == TRANSFER_ENCODING {
            chunked =
                h.value.rsplit(|b| *b == b',').next().is_some_and(|t| t.trim_ascii().eq_ignore_ascii_case(b"chunked"));
        } else if name == CONNECTION {
            for token in h.value.split(|b| *b == b',').map(<[u8]>::trim_ascii) {
                close |= token.eq_ignore_ascii_case(b"close");
                keep |= token.eq_ignore_ascii_case(b"keep-alive");
            }
        } else if name == EXPECT {
            expect_continue = h.value.eq_ignore_ascii_case(b"100-continue");
        }
        map.append(name, value);
    }
    let framing = if chunked {
        Ok(Framing::Chunked(Chunk::Size))
    } else if map.contains_key(TRANSFER_ENCODING) {
        Err("a Transfer-Encoding other than chunked")
    } else {
        Ok(match length.unwrap_or(0) {
            0 => Framing::Done,
            n => Framing::Length(n),
        })
    };
    let keep_alive = !close && (version == Version::HTTP_11 || keep);
    Ok(Some((Head { req, framing, keep_alive, expect_continue }, used)))
}

/// The reply to a request that could not be parsed.
fn bad(shared: &Shared, status: StatusCode, why: &str) -> Response<Body> {
    shared.error(status, -32000, &format!("Bad Request: {why}"))
}

/// What a response says about the connection.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Keep {
    /// Nothing: it stays open (HTTP/1.1's default).
    Quiet,
    /// `connection: keep-alive` (to an HTTP/1.0 client that asked for it).
    Say,
    /// `connection: close`.
    Close,
}

/// Writes `resp`: a whole body with `Content-Length`, any other chunked, the client
/// watched meanwhile (its going away ends the body; what it sends is kept in `pending`).
async fn write_response(
    stream: &mut TcpStream,
    shared: &Shared,
    resp: Response<Body>,
    keep: Keep,
    pending: &mut Vec<u8>,
    shutdown: &mut watch::Receiver<bool>,
) -> Result<(), Gone> {
    let (parts, mut body) = resp.into_parts();
    let mut out = Spare::default();
    let o = &mut out.0;
    let _ = write!(o, "HTTP/1.1 {} {}\r\n", parts.status.as_u16(), parts.status.canonical_reason().unwrap_or(""));
    for (name, value) in &parts.headers {
        o.extend_from_slice(name.as_str().as_bytes());
        o.extend_from_slice(b": ");
        o.extend_from_slice(value.as_bytes());
        o.extend_from_slice(b"\r\n");
    }
    match keep {
        Keep::Quiet => {}
        Keep::Say => o.extend_from_slice(b"connection: keep-alive\r\n"),
        Keep::Close => o.extend_from_slice(b"connection: close\r\n"),
    }
    let whole = match &mut body {
        Body::Full(b) => Some(b.take().unwrap_or_default()),
        _ => None,
    };
    if let Some(whole) = whole {
        if !(parts.status.is_informational() || parts.status == StatusCode::NO_CONTENT) {
            let _ = write!(o, "content-length: {}\r\n", whole.len());
        }
        o.extend_from_slice(b"\r\n");
        o.extend_from_slice(&whole);
        stream.write_all(o).await?;
        return Ok(());
    }
    o.extend_from_slice(b"transfer-encoding: chunked\r\n\r\n");
    stream.write_all(o).await?;
    drop(out);
    let most = MAX_HEAD + shared.state.config.max_message_size;
    loop {
        tokio::select! {
            frame = body.frame() => match frame {
                Some(Ok(frame)) => {
                    let Ok(data) = frame.into_data() else { continue };
                    if data.is_empty() {
                        continue;
                    }
                    let mut chunk = Spare::default();
                    let _ = write!(chunk.0, "{:x}\r\n", data.len());
                    chunk.0.extend_from_slice(&data);
                    chunk.0.extend_from_slice(b"\r\n");
                    stream.write_all(&chunk.0).await?;
                }
                Some(Err(never)) => match never {},
                None => {
                    stream.write_all(b"0\r\n\r\n").await?;
                    return Ok(());
                }
            },
            // The client's end while the stream runs: EOF means it went away; a request it
            // pipelines waits for its turn (within bounds).
            r = stream.readable(), if pending.len() < most => {
                r?;
                pending.reserve(512);
                match stream.try_read_buf(pending) {
                    Ok(0) => return Err(Gone),
                    Ok(_) => {}
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) => return Err(e.into()),
                }
            }
            _ = after_grace(shutdown) => return Err(Gone),
        }
    }
}
