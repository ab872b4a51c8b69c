//! Event streams of a Streamable HTTP session: a POST's stream read until its replies
//! came (the rest in the background), resumed with `Last-Event-ID` after the server's
//! `retry:` when it ended first and its events had ids; and the GET stream, which carries
//! the server's own requests and notifications for as long as the session lives. Every GET
//! carries the session's `Authorization` and, under OAuth, is retried once with a new
//! token when refused, like the POSTs ([`Inner::get`]).

use super::conn::Conn;
use super::events::EventParser;
use super::*;

/// How reading one event stream body ended.
enum StreamEnd {
    /// The sink has every reply it waits for.
    Satisfied,
    /// The body ended first.
    Ended,
    /// The connection broke first.
    Broken(String),
}

/// Whether a response carries an event stream.
pub(super) fn is_event_stream(headers: &hyper::HeaderMap) -> bool {
    headers.get(CONTENT_TYPE).is_some_and(|ct| ct.as_bytes().starts_with(b"text/event-stream"))
}

/// How long to wait before resuming a stream: the server's `retry:`, bounded.
fn retry_delay(parser: &EventParser) -> Duration {
    parser.retry().unwrap_or(DEFAULT_RETRY).min(MAX_RETRY)
}

/// Where the GET stream's events go: into the dispatcher, as a POST's do, but it waits for
/// no reply and so is never satisfied: the stream is read to its end, then reopened.
struct Listening<'a>(ToDispatcher<'a>);

impl Sink for Listening<'_> {
    fn frame(&mut self, data: &[u8]) {
        self.0.frame(data)
    }

    fn satisfied(&self) -> bool {
        false
    }

    fn take_replies(&mut self) -> Vec<Message> {
        self.0.take_replies()
    }

    fn delivered(&self) -> u64 {
        self.0.delivered()
    }

    fn garbled(&self) -> bool {
        self.0.garbled()
    }
}

impl Inner {
    /// Reads a POST's event stream until `sink` has every reply it waits for; the rest of
    /// the stream (if the server keeps it open) is read in the background. A stream that
    /// ends (or breaks) first is resumed with `Last-Event-ID` when its events had ids.
    pub(super) async fn read_stream<S: Sink>(
        self: &Arc<Self>,
        body: Incoming,
        conn: Conn,
        sink: &mut S,
    ) -> Result<Read, ClientError> {
        let mut parser = EventParser::new(self.max_message);
        let mut end = self.read_events(body, conn, &mut parser, sink).await?;
        let mut resumes = 0;
        loop {
            let broke = match end {
                StreamEnd::Satisfied => return Ok(Read::Done),
                StreamEnd::Ended => None,
                StreamEnd::Broken(detail) => Some(detail),
            };
            // Resumed only when the events had ids, and not after a garbled frame (which
            // may have been the reply: the server would not send it again).
            let Some(last) = parser.last_event_id().filter(|_| !sink.garbled()).map(str::to_string) else {
                return match broke {
                    Some(detail) => Err(ClientError::Closed {
                        target: self.target(),
                        detail: format!("while reading an SSE reply: {detail}"),
                    }),
                    None => Ok(Read::Missing("the server's event stream ended")),
                };
            };
            if resumes == MAX_RESUMES {
                return Ok(Read::Missing("the server's event stream ended (and resuming it did not bring the reply)"));
            }
            resumes += 1;
            tokio::time::sleep(retry_delay(&parser)).await;
            let session = lock(&self.session).clone();
            let (resp, conn) = self.get(session.as_ref(), Some(&last)).await?;
            if !resp.status().is_success() {
                // The server cannot resume (405: no GET streams): what went wrong is still
                // the stream that ended without its reply.
                let status = resp.status();
                let _ = resp.into_body().collect().await;
                return match broke {
                    Some(detail) => Err(ClientError::Closed {
                        target: self.target(),
                        detail: format!("while reading an SSE reply: {detail} (resuming it got HTTP {status})"),
                    }),
                    None => Ok(Read::Missing("the server's event stream ended (and it refused to resume it)")),
                };
            }
            if !is_event_stream(resp.headers()) {
                let status = resp.status();
                let _ = resp.into_body().collect().await;
                return Err(self.protocol(format!(
                    "resuming an event stream (GET with Last-Event-ID) got HTTP {status} without an event stream"
                )));
            }
            end = self.read_events(resp.into_body(), conn, &mut parser, sink).await?;
        }
    }

    /// A GET with the session's headers and `Authorization`: the GET stream, or a stream
    /// resumed after `last_event_id`. Refused with 401 (or 403 `insufficient_scope`) under
    /// OAuth, it gets a token and is sent once more, as a POST would be.
    async fn get(
        &self,
        session: Option<&HeaderValue>,
        last_event_id: Option<&str>,
    ) -> Result<(hyper::Response<Incoming>, Conn), ClientError> {
        let sent = self.auth.header();
        let (resp, conn) = self.round_trip_as(Method::GET, Bytes::new(), session, last_event_id).await?;
        if self.auth.retry_refused(&self.target(), resp.status(), resp.headers(), sent.as_ref()).await? {
            self.release(resp, conn).await;
            return self.round_trip_as(Method::GET, Bytes::new(), session, last_event_id).await;
        }
        Ok((resp, conn))
    }

    /// Reads events of one stream body into `sink` until it is satisfied (the rest is read
    /// in the background) or the body ends or breaks.
    async fn read_events<S: Sink>(
        self: &Arc<Self>,
        mut body: Incoming,
        conn: Conn,
        parser: &mut EventParser,
        sink: &mut S,
    ) -> Result<StreamEnd, ClientError> {
        let too_large = |limit| self.protocol(format!("an SSE event exceeded the limit of {limit} bytes"));
        loop {
            while let Some(event) = parser.next_event().map_err(|e| too_large(e.limit))? {
                sink.frame(&event.data);
                self.flush(sink);
                if sink.satisfied() {
                    // Deliver what is already here; servers usually end the stream right
                    // after the reply: check without waiting, and read whatever else comes
                    // in the background.
                    while let Ok(Some(event)) = parser.next_event() {
                        sink.frame(&event.data);
                    }
                    self.flush(sink);
                    let parser = std::mem::replace(parser, EventParser::new(self.max_message));
                    match body.frame().now_or_never() {
                        Some(None) => {
                            let mut parser = parser;
                            if let Ok(Some(event)) = parser.finish() {
                                sink.frame(&event.data);
                                self.flush(sink);
                            }
                            self.pool.put(conn);
                        }
                        Some(Some(Err(_))) => {}
                        Some(Some(Ok(frame))) => {
                            let mut parser = parser;
                            if let Ok(data) = frame.into_data() {
                                parser.push(&data);
                            }
                            self.background(body, parser, conn);
                        }
                        None => self.background(body, parser, conn),
                    }
                    return Ok(StreamEnd::Satisfied);
                }
            }
            match body.frame().await {
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        parser.push(&data);
                    }
                }
                Some(Err(e)) => return Ok(StreamEnd::Broken(e.to_string())),
                None => {
                    if let Some(event) = parser.finish().map_err(|e| too_large(e.limit))? {
                        sink.frame(&event.data);
                        self.flush(sink);
                    }
                    self.pool.put(conn);
                    return Ok(if sink.satisfied() { StreamEnd::Satisfied } else { StreamEnd::Ended });
                }
            }
        }
    }

    /// Reads the rest of a stream in the background (ended with the transport).
    pub(super) fn background(self: &Arc<Self>, body: Incoming, parser: EventParser, conn: Conn) {
        let task = tokio::spawn(self.clone().drain(body, parser, conn));
        self.track(task.abort_handle());
    }

    /// Remembers a background stream task, to end it on close.
    pub(super) fn track(&self, task: AbortHandle) {
        let mut streams = lock(&self.streams);
        streams.retain(|t| !t.is_finished());
        streams.push(task);
    }

    /// Ends the GET stream and every stream read in the background.
    pub(super) fn stop_streams(&self) {
        for t in lock(&self.streams).drain(..) {
            t.abort();
        }
    }

    /// Delivers what an event stream sends after the reply (notifications, server
    /// requests), then returns the connection to the pool.
    async fn drain(self: Arc<Self>, mut body: Incoming, mut parser: EventParser, conn: Conn) {
        let mut sink = ToDispatcher::new(&self.dispatch, Vec::new());
        loop {
            loop {
                match parser.next_event() {
                    Ok(Some(event)) => {
                        sink.frame(&event.data);
                        self.flush(&mut sink);
                    }
                    Ok(None) => break,
                    Err(_) => return,
                }
            }
            match body.frame().await {
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        parser.push(&data);
                    }
                }
                Some(Err(_)) => return,
                None => {
                    if let Ok(Some(event)) = parser.finish() {
                        sink.frame(&event.data);
                        self.flush(&mut sink);
                    }
                    self.pool.put(conn);
                    return;
                }
            }
        }
    }

    /// The GET stream: server-initiated requests and notifications, for as long as the
    /// session lives. A server without one (405, or any other refusal) is left alone; a
    /// stream that ends is reopened after the server's `retry:` delay (with
    /// `Last-Event-ID` when its events had ids), until [`MAX_RESUMES`] reopenings in a row
    /// delivered nothing.
    pub(super) async fn listen(self: Arc<Self>, opened: tokio::sync::oneshot::Sender<()>) {
        let mut opened = Some(opened);
        let mut parser = EventParser::new(self.max_message);
        let mut quiet = 0;
        loop {
            if self.dispatch.is_closed() {
                return;
            }
            let session = lock(&self.session).clone();
            let last = parser.last_event_id().map(str::to_string);
            let resp = self.get(session.as_ref(), last.as_deref()).await;
            let (resp, conn) = match resp {
                Ok(r) => r,
                Err(e) => {
                    tracing::debug!("{}: GET stream: {e}", self.target());
                    return;
                }
            };
            let status = resp.status();
            if let Some(tx) = opened.take() {
                let _ = tx.send(());
            }
            if !status.is_success() || !is_event_stream(resp.headers()) {
                let _ = resp.into_body().collect().await;
                self.pool.put(conn);
                tracing::debug!("{}: no GET stream (HTTP {status})", self.target());
                return;
            }
            let mut sink = Listening(ToDispatcher::new(&self.dispatch, Vec::new()));
            match self.read_events(resp.into_body(), conn, &mut parser, &mut sink).await {
                Ok(StreamEnd::Ended) | Ok(StreamEnd::Broken(_)) => {}
                // Satisfied cannot happen (the sink waits for no reply); an oversized event ends it.
                Ok(StreamEnd::Satisfied) | Err(_) => return,
            }
            quiet = if sink.delivered() > 0 { 0 } else { quiet + 1 };
            if quiet > MAX_RESUMES {
                tracing::debug!("{}: the GET stream keeps ending without messages; not reopened", self.target());
                return;
            }
            tokio::time::sleep(retry_delay(&parser)).await;
        }
    }
}
