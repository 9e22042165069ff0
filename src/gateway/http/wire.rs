//! A call's POST to an `http://` upstream ([`HttpUpstream::exchange`](super::HttpUpstream)) over
//! hyper's HTTP/1 client, on a connection the calling task drives itself while it waits for
//! the answer and reads its stream. Through reqwest the connection runs in a task of its own:
//! the request crosses to it, and the response's head and each body frame cross back, a
//! wake-up each; reqwest also parses the URL and walks its redirect and retry layers on every
//! call. What reqwest would answer is kept: the same statuses are the same
//! [`StreamableHttpPostResponse`] or error (see rmcp's `post_message` for reqwest), and a
//! connection that proves closed before the request went out is replaced, as hyper's pool
//! does.
//!
//! An `https://` upstream, a URL with credentials in it and a process with a proxy set in its
//! environment keep reqwest for everything (its TLS, its basic auth, its proxies).

use std::borrow::Cow;
use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::Mutex;
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::{Stream, StreamExt};
use http_body::{Body, Frame};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper::{Method, Request, Response, StatusCode, Uri};
use hyper_util::rt::TokioIo;
use reqwest::header::{self, HeaderMap, HeaderValue};
use rmcp::model::{JsonRpcMessage, ServerJsonRpcMessage};
use rmcp::transport::streamable_http_client::{
    AuthRequiredError, HttpStatusError, InsufficientScopeError, StreamableHttpError,
    StreamableHttpPostResponse,
};
use sse_stream::{Error as SseError, Sse};
use tokio::net::TcpStream;

use super::{Failure, classify};
use crate::gateway::error::UpstreamError;
use crate::sync::lock;

/// As reqwest's client for upstreams (`gateway::http_client`).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Idle connections kept per upstream; more are closed when they come back.
const MAX_IDLE: usize = 64;
/// An idle connection older than this is closed instead of reused (the upstream may have
/// forgotten it; hyper's pool keeps them 90 s).
const IDLE_FOR: Duration = Duration::from_secs(60);
/// rmcp's bounds on what an upstream sends (`StreamableHttpResponseLimits`'s defaults): one
/// event of an event stream, a JSON answer, the text kept of an error's body.
const MAX_EVENT: usize = 16 * 1024 * 1024;
const MAX_JSON: usize = 16 * 1024 * 1024;
const MAX_ERROR_TEXT: usize = 64 * 1024;
/// Headers rmcp refuses among an upstream's configured ones (`validate_custom_header`).
const RESERVED: [&str; 3] = ["accept", "mcp-session-id", "last-event-id"];
/// What a call accepts and sends, as rmcp's reqwest client says it.
const ACCEPTED: &str = "text/event-stream, application/json";
const JSON: &str = "application/json";
/// The upstream session's header.
const SESSION: header::HeaderName = header::HeaderName::from_static("mcp-session-id");
/// The environment variables reqwest takes a proxy from.
const PROXIES: [&str; 4] = ["http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"];

type Connection = http1::Connection<TokioIo<TcpStream>, Full<Bytes>>;

/// An open connection to the upstream: the request side and the connection to drive.
struct Open {
    send: SendRequest<Full<Bytes>>,
    connection: Option<Connection>,
}

impl Open {
    /// Moves the connection's I/O on; `false` once it has closed (or failed).
    fn drive(&mut self, cx: &mut Context<'_>) -> bool {
        let Some(connection) = self.connection.as_mut() else {
            return false;
        };
        if Pin::new(connection).poll(cx).is_ready() {
            self.connection = None;
            return false;
        }
        true
    }
}

/// Where the upstream is, and its idle connections.
pub(super) struct Wire {
    address: String,
    host: HeaderValue,
    path: Uri,
    idle: Mutex<Vec<(Open, Instant)>>,
}

impl Wire {
    /// For a plain `http://` URL without credentials, when no proxy is set; `None` otherwise.
    pub(super) fn for_url(url: &str) -> Option<Arc<Wire>> {
        if PROXIES.iter().any(|name| std::env::var_os(name).is_some()) {
            return None;
        }
        let uri: Uri = url.parse().ok()?;
        let authority = uri.authority()?;
        if uri.scheme_str() != Some("http") || authority.as_str().contains('@') {
            return None;
        }
        let port = authority.port_u16().unwrap_or(80);
        let path = uri.path_and_query().map_or("/", |p| p.as_str());
        Some(Arc::new(Wire {
            address: format!("{}:{port}", authority.host()),
            host: HeaderValue::from_str(authority.as_str()).ok()?,
            path: path.parse().ok()?,
            idle: Mutex::default(),
        }))
    }

    /// POSTs `body` (a JSON-RPC request) with `headers` (the upstream's configured ones and
    /// the call's own) in `session`: the answer as rmcp's reqwest client reads it.
    pub(super) async fn post(
        self: &Arc<Self>,
        body: Bytes,
        session: Option<&str>,
        headers: HeaderMap,
    ) -> Result<StreamableHttpPostResponse, Failure> {
        if let Some(name) = headers
            .keys()
            .find(|name| RESERVED.contains(&name.as_str()))
        {
            let error = StreamableHttpError::ReservedHeaderConflict(name.to_string());
            return Err(classify(error));
        }
        let request = Outgoing {
            wire: self,
            headers,
            session,
            body,
        };
        let (response, open) = request.send().await?;
        read(response, open, self.clone(), session.is_some()).await
    }

    fn idle(&self) -> Option<Open> {
        let mut idle = lock(&self.idle);
        while let Some((mut open, since)) = idle.pop() {
            if since.elapsed() < IDLE_FOR && usable(&mut open) {
                return Some(open);
            }
        }
        None
    }

    /// A connection whose answer was read to its end, for the next call.
    fn give_back(&self, open: Open) {
        let mut idle = lock(&self.idle);
        if idle.len() < MAX_IDLE {
            idle.push((open, Instant::now()));
        }
    }

    async fn connect(&self) -> Result<Open, UpstreamError> {
        let unreachable = |e: &dyn std::error::Error| {
            UpstreamError::Unreachable(format!(
                "error sending request: tcp connect error: {}",
                super::causes(e)
            ))
        };
        let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(&self.address))
            .await
            .map_err(|_| {
                UpstreamError::Unreachable("error sending request: connect timed out".into())
            })?
            .map_err(|e| unreachable(&e))?;
        // As reqwest's connections: no Nagle delay on small requests.
        stream.set_nodelay(true).map_err(|e| unreachable(&e))?;
        let (send, connection) = http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| unreachable(&e))?;
        Ok(Open {
            send,
            connection: Some(connection),
        })
    }
}

/// Whether an idle connection can take a request now (its upstream has not closed it).
fn usable(open: &mut Open) -> bool {
    let waker = std::task::Waker::noop();
    let mut cx = Context::from_waker(waker);
    if !open.drive(&mut cx) {
        return false;
    }
    matches!(open.send.poll_ready(&mut cx), Poll::Ready(Ok(())))
}

/// One request, until its response's head.
struct Outgoing<'a> {
    wire: &'a Arc<Wire>,
    headers: HeaderMap,
    session: Option<&'a str>,
    body: Bytes,
}

impl Outgoing<'_> {
    /// The same request (and headers, in the same order) as `Request::post` with a `.header`
    /// for each would build, without parsing the fixed names and values again on every call.
    fn request(&self) -> Result<Request<Full<Bytes>>, Failure> {
        let mut request = Request::new(Full::new(self.body.clone()));
        *request.method_mut() = Method::POST;
        *request.uri_mut() = self.wire.path.clone();
        let headers = request.headers_mut();
        headers.append(header::HOST, self.wire.host.clone());
        headers.append(header::ACCEPT, HeaderValue::from_static(ACCEPTED));
        headers.append(header::CONTENT_TYPE, HeaderValue::from_static(JSON));
        for (name, value) in &self.headers {
            headers.append(name, value.clone());
        }
        if let Some(session) = self.session {
            let session = HeaderValue::from_str(session).map_err(|e| {
                Failure::Other(UpstreamError::Protocol(format!(
                    "cannot build the request: {e}"
                )))
            })?;
            headers.append(SESSION, session);
        }
        Ok(request)
    }

    /// On an idle connection, else a new one. A request that provably did not go out (the
    /// connection was found closed first) goes on another connection, as hyper's pool does.
    async fn send(&self) -> Result<(Response<Incoming>, Open), Failure> {
        loop {
            let (mut open, fresh) = match self.wire.idle() {
                Some(open) => (open, false),
                None => (self.wire.connect().await?, true),
            };
            let mut answer = std::pin::pin!(open.send.send_request(self.request()?));
            let response = std::future::poll_fn(|cx| {
                open.drive(cx);
                answer.as_mut().poll(cx)
            })
            .await;
            match response {
                Ok(response) => return Ok((response, open)),
                Err(error) if error.is_canceled() && !fresh => continue,
                Err(error) => {
                    return Err(Failure::Other(UpstreamError::Unreachable(format!(
                        "error sending request: {}",
                        super::causes(&error)
                    ))));
                }
            }
        }
    }
}

/// What rmcp's `post_message` for reqwest makes of a response to a request.
async fn read(
    response: Response<Incoming>,
    open: Open,
    wire: Arc<Wire>,
    in_session: bool,
) -> Result<StreamableHttpPostResponse, Failure> {
    let (parts, body) = response.into_parts();
    let status = parts.status;
    let headers = &parts.headers;
    let challenge = headers
        .get(header::WWW_AUTHENTICATE)
        .map(|value| value.to_str().map(str::to_string));
    match (status, challenge) {
        (StatusCode::UNAUTHORIZED, Some(Ok(challenge))) => {
            let error = StreamableHttpError::AuthRequired(AuthRequiredError::new(challenge));
            return Err(classify(error));
        }
        (StatusCode::FORBIDDEN, Some(Ok(challenge))) => {
            let error = InsufficientScopeError::new(challenge, None);
            return Err(classify(StreamableHttpError::InsufficientScope(error)));
        }
        (StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN, Some(Err(_))) => {
            let error = StreamableHttpError::UnexpectedServerResponse(Cow::from(
                "invalid www-authenticate header value",
            ));
            return Err(classify(error));
        }
        _ => {}
    }
    if matches!(status, StatusCode::ACCEPTED | StatusCode::NO_CONTENT) {
        return Ok(StreamableHttpPostResponse::Accepted);
    }
    if status == StatusCode::NOT_FOUND && in_session {
        return Err(Failure::Expired);
    }
    let content_type = headers.get(header::CONTENT_TYPE).map(|ct| ct.as_bytes());
    let is = |kind: &str| content_type.is_some_and(|ct| media_type_is(ct, kind));
    let (sse, json) = (is("text/event-stream"), is("application/json"));
    let status_error = match status {
        StatusCode::TOO_MANY_REQUESTS => Some(status),
        _ if status.is_server_error() => Some(status),
        _ => None,
    }
    .map(|status| {
        let retry_after = headers
            .get(header::RETRY_AFTER)
            .and_then(|value| value.to_str().ok())
            .map(str::to_string);
        HttpStatusError::new(status.as_u16(), retry_after)
    });
    let status_error = match status_error {
        Some(error) if !json || status == StatusCode::TOO_MANY_REQUESTS => {
            return Err(classify(StreamableHttpError::HttpStatus(error)));
        }
        error => error,
    };
    let session = headers
        .get(&SESSION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let content_type = content_type.map(|ct| String::from_utf8_lossy(ct).into_owned());
    let body = Driven {
        body,
        open: Some(open),
        wire,
        since_event: 0,
    };
    if !status.is_success() {
        let auth = matches!(status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN);
        let limit = match json && !auth {
            true => MAX_JSON,
            false => MAX_ERROR_TEXT,
        };
        let text = match Limited::new(body, limit).collect().await {
            Ok(collected) => {
                let bytes = collected.to_bytes();
                if json
                    && !auth
                    && let Ok(message @ JsonRpcMessage::Error(_)) =
                        serde_json::from_slice::<ServerJsonRpcMessage>(&bytes)
                {
                    return Ok(StreamableHttpPostResponse::Json(message, session));
                }
                let kept = &bytes[..bytes.len().min(MAX_ERROR_TEXT)];
                String::from_utf8_lossy(kept).into_owned()
            }
            Err(_) => "<failed to read response body>".to_string(),
        };
        return Err(classify(match status_error {
            Some(error) => StreamableHttpError::HttpStatus(error),
            None => StreamableHttpError::UnexpectedServerResponse(Cow::Owned(format!(
                "HTTP {status}: {text}"
            ))),
        }));
    }
    if sse {
        let events = Events {
            body,
            lines: Lines::default(),
        };
        return Ok(StreamableHttpPostResponse::Sse(events.boxed(), session));
    }
    if json {
        let bytes = match Limited::new(body, MAX_JSON).collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(error) => {
                let error = UpstreamError::Unreachable(format!("cannot read its answer: {error}"));
                return Err(Failure::Other(error));
            }
        };
        return match serde_json::from_slice::<ServerJsonRpcMessage>(&bytes) {
            Ok(message) => Ok(StreamableHttpPostResponse::Json(message, session)),
            Err(e) => Err(classify(StreamableHttpError::UnexpectedServerResponse(
                Cow::Owned(format!(
                    "could not parse JSON response as ServerJsonRpcMessage: {e}"
                )),
            ))),
        };
    }
    Err(classify(StreamableHttpError::UnexpectedContentType(
        content_type,
    )))
}

/// rmcp's test of a `Content-Type` (`media_type_is`): its essence, without parameters.
fn media_type_is(value: &[u8], expected: &str) -> bool {
    let essence = value.split(|byte| *byte == b';').next().unwrap_or_default();
    std::str::from_utf8(essence).is_ok_and(|essence| {
        essence
            .trim_matches([' ', '\t'])
            .eq_ignore_ascii_case(expected)
    })
}

/// Why reading a response's body failed.
#[derive(Debug, thiserror::Error)]
pub(super) enum BodyError {
    #[error(transparent)]
    Http(#[from] hyper::Error),
    #[error("an event of its stream is larger than {MAX_EVENT} bytes")]
    TooLarge,
}

/// A response's body, moving its connection on as it is read; at its end the connection goes
/// back to the idle ones (dropped before its end, the connection is closed, as hyper's are).
struct Driven {
    body: Incoming,
    open: Option<Open>,
    wire: Arc<Wire>,
    /// Bytes read since the event stream's last event, bounded by [`MAX_EVENT`].
    since_event: usize,
}

impl Driven {
    fn poll_body(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        if let Poll::Ready(frame) = Pin::new(&mut self.body).poll_frame(cx) {
            return Poll::Ready(frame.map(|f| f.map_err(BodyError::from)));
        }
        // The body asked for more just now: the connection reads it in this same poll.
        if let Some(open) = self.open.as_mut() {
            open.drive(cx);
        }
        Pin::new(&mut self.body)
            .poll_frame(cx)
            .map(|frame| frame.map(|f| f.map_err(BodyError::from)))
    }
}

impl Body for Driven {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = &mut *self;
        let frame = ready!(this.poll_body(cx));
        match &frame {
            Some(Ok(frame)) => {
                let size = frame.data_ref().map_or(0, Bytes::len);
                this.since_event += size;
                if this.since_event > MAX_EVENT {
                    this.open = None;
                    return Poll::Ready(Some(Err(BodyError::TooLarge)));
                }
            }
            Some(Err(_)) => this.open = None,
            None => {
                if let Some(open) = this.open.take().filter(|open| open.connection.is_some()) {
                    this.wire.give_back(open);
                }
            }
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }
}

/// The events of a response's event stream, read as `sse_stream::SseStream` reads them (the
/// same events, the same errors), with each line's end found by memchr instead of a byte at a
/// time: an answer is mostly one long `data:` line.
struct Events {
    body: Driven,
    lines: Lines,
}

impl Stream for Events {
    type Item = Result<Sse, SseError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        let item = loop {
            if let Some(event) = this.lines.parsed.pop_front() {
                break Some(Ok(event));
            }
            match ready!(Pin::new(&mut this.body).poll_frame(cx)) {
                None => break None,
                Some(Err(error)) => break Some(Err(SseError::Body(Box::new(error)))),
                Some(Ok(frame)) => {
                    let Ok(data) = frame.into_data() else {
                        continue;
                    };
                    if let Err(error) = this.lines.chunk(&data) {
                        break Some(Err(error));
                    }
                }
            }
        };
        // Each event (or error) read starts the bound on the next one's size afresh.
        if item.is_some() {
            this.body.since_event = 0;
        }
        Poll::Ready(item)
    }
}

/// `sse_stream`'s parser state: the events parsed and not yet taken, the one being read, a
/// line split across chunks.
#[derive(Default)]
struct Lines {
    parsed: VecDeque<Sse>,
    current: Option<Sse>,
    unfinished: Vec<u8>,
    skip_leading_lf: bool,
    not_first: bool,
}

/// A byte order mark, skipped at the stream's start.
const BOM: &[u8] = b"\xEF\xBB\xBF";

impl Lines {
    fn chunk(&mut self, mut bytes: &[u8]) -> Result<(), SseError> {
        if self.skip_leading_lf {
            self.skip_leading_lf = false;
            if bytes.first() == Some(&b'\n') {
                bytes = &bytes[1..];
            }
        }
        while !bytes.is_empty() {
            let Some(end) = memchr::memchr2(b'\n', b'\r', bytes) else {
                self.unfinished.extend_from_slice(bytes);
                return Ok(());
            };
            if self.unfinished.is_empty() {
                self.line(&bytes[..end])?;
            } else {
                let mut line = std::mem::take(&mut self.unfinished);
                line.extend_from_slice(&bytes[..end]);
                let parsed = self.line(&line);
                line.clear();
                self.unfinished = line;
                parsed?;
            }
            let delimiter = bytes[end];
            bytes = &bytes[end + 1..];
            if delimiter == b'\r' {
                if bytes.first() == Some(&b'\n') {
                    bytes = &bytes[1..];
                } else if bytes.is_empty() {
                    self.skip_leading_lf = true;
                }
            }
        }
        Ok(())
    }

    fn line(&mut self, mut line: &[u8]) -> Result<(), SseError> {
        if !self.not_first {
            self.not_first = true;
            line = line.strip_prefix(BOM).unwrap_or(line);
        }
        if line.is_empty() {
            if let Some(event) = self.current.take() {
                self.parsed.push_back(event);
            }
            return Ok(());
        }
        let Some(colon) = memchr::memchr(b':', line) else {
            return Err(SseError::InvalidLine);
        };
        let value = &line[colon + 1..];
        let value = value.strip_prefix(b" ").unwrap_or(value);
        let text = |value| std::str::from_utf8(value).map_err(SseError::Utf8Parse);
        match &line[..colon] {
            b"data" => {
                let data = text(value)?;
                let event = self.current.get_or_insert_default();
                match event.data.as_mut() {
                    Some(joined) => {
                        joined.push('\n');
                        joined.push_str(data);
                    }
                    None => event.data = Some(data.to_owned()),
                }
            }
            b"event" => {
                let kind = text(value)?;
                let event = self.current.get_or_insert_default();
                once(&mut event.event, kind, SseError::DuplicatedEventLine)?;
            }
            // An id with a NUL in it is ignored, as the specification says.
            b"id" if memchr::memchr(0, value).is_some() => {}
            b"id" => {
                let id = text(value)?;
                let event = self.current.get_or_insert_default();
                once(&mut event.id, id, SseError::DuplicatedIdLine)?;
            }
            b"retry" => {
                let retry = text(value)?
                    .trim_ascii()
                    .parse::<u64>()
                    .map_err(SseError::IntParse)?;
                let event = self.current.get_or_insert_default();
                if event.retry.is_some() {
                    return Err(SseError::DuplicatedRetry);
                }
                event.retry = Some(retry);
            }
            // A comment.
            b"" => {}
            _ => return Err(SseError::InvalidLine),
        }
        Ok(())
    }
}

/// Fills an event's field given at most once per event.
fn once(field: &mut Option<String>, value: &str, duplicated: SseError) -> Result<(), SseError> {
    if field.is_some() {
        return Err(duplicated);
    }
    *field = Some(value.to_owned());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// What `lines` makes of `chunks`: its events, then its error if any (as text).
    fn ours(chunks: &[&[u8]]) -> Vec<Result<Sse, String>> {
        let mut lines = Lines::default();
        let mut out = Vec::new();
        for chunk in chunks {
            let failed = lines.chunk(chunk).err();
            out.extend(lines.parsed.drain(..).map(Ok));
            if let Some(error) = failed {
                out.push(Err(error.to_string()));
                return out;
            }
        }
        out
    }

    /// What `sse_stream` makes of the same chunks, up to its first error.
    async fn theirs(chunks: &[&[u8]]) -> Vec<Result<Sse, String>> {
        let chunks: Vec<Result<Bytes, std::io::Error>> = chunks
            .iter()
            .map(|chunk| Ok(Bytes::copy_from_slice(chunk)))
            .collect();
        let mut events = sse_stream::SseStream::from_bytes_stream(futures::stream::iter(chunks));
        let mut out = Vec::new();
        while let Some(event) = events.next().await {
            let failed = event.is_err();
            out.push(event.map_err(|error| error.to_string()));
            if failed {
                break;
            }
        }
        out
    }

    #[tokio::test]
    async fn events_are_read_as_sse_stream_reads_them() {
        let streams: [&[u8]; 12] = [
            b"data: \nid: 0\nretry: 3000\n\ndata: {\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{}}\n\n",
            b"\xEF\xBB\xBFdata: a\r\ndata:b\r\n\r\nevent: message\rdata: c\r\r",
            b": a comment\n\ndata: x\nid: 7\n\n: another\ndata: y\n\n",
            b"data: one\ndata: two\n\ndata: no end",
            b"id: a\0b\ndata: x\n\n",
            b"retry: soon\n\n",
            b"data: x\nid: 1\nid: 2\n\n",
            b"event: a\nevent: b\n\n",
            b"retry: 1\nretry: 2\n\n",
            b"no colon\n\n",
            b"unknown: field\n\n",
            b"data: \xff\n\n",
        ];
        for stream in streams {
            let whole = theirs(&[stream]).await;
            assert_eq!(
                ours(&[stream]),
                whole,
                "{:?}",
                String::from_utf8_lossy(stream)
            );
            // Split anywhere, as a body's frames may be.
            for at in 1..stream.len() {
                let (a, b) = stream.split_at(at);
                assert_eq!(ours(&[a, b]), theirs(&[a, b]).await, "{stream:?} at {at}");
            }
        }
    }

    #[test]
    fn only_plain_http_urls_go_on_the_wire() {
        let wire = Wire::for_url("http://127.0.0.1:8080/mcp?x=1").expect("an http URL");
        assert_eq!(wire.address, "127.0.0.1:8080");
        assert_eq!(wire.host, "127.0.0.1:8080");
        assert_eq!(wire.path.to_string(), "/mcp?x=1");
        let wire = Wire::for_url("http://localhost/mcp").expect("an http URL");
        assert_eq!(wire.address, "localhost:80");
        let wire = Wire::for_url("http://[::1]:9/mcp").expect("an http URL");
        assert_eq!(wire.address, "[::1]:9");
        assert!(Wire::for_url("https://example.com/mcp").is_none());
        assert!(Wire::for_url("http://user:secret@example.com/mcp").is_none());
    }

    /// An upstream answering every POST with one event, closing each connection after
    /// `close_after` answers; counts the connections it accepted.
    async fn upstream(close_after: usize) -> (String, Arc<AtomicUsize>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a port");
        let url = format!("http://{}/mcp", listener.local_addr().expect("an address"));
        let accepted = Arc::new(AtomicUsize::new(0));
        let counted = accepted.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                counted.fetch_add(1, Ordering::SeqCst);
                let served = Arc::new(AtomicUsize::new(0));
                let service = hyper::service::service_fn(move |request: Request<Incoming>| {
                    let served = served.fetch_add(1, Ordering::SeqCst) + 1;
                    async move {
                        let session = request.headers().get("mcp-session-id").cloned();
                        let body = request.into_body().collect().await?.to_bytes();
                        let asked: serde_json::Value =
                            serde_json::from_slice(&body).unwrap_or_default();
                        let answer = serde_json::json!({"jsonrpc": "2.0", "id": asked["id"],
                            "result": {"content": [], "session": session.map(|s| s.to_str().unwrap_or_default().to_string())}});
                        let mut response = Response::new(Full::new(Bytes::from(format!(
                            "data: \nid: 0\nretry: 3000\n\ndata: {answer}\n\n"
                        ))));
                        let headers = response.headers_mut();
                        headers.insert(
                            header::CONTENT_TYPE,
                            HeaderValue::from_static("text/event-stream"),
                        );
                        if served >= close_after {
                            headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
                        }
                        Ok::<_, hyper::Error>(response)
                    }
                });
                tokio::spawn(
                    hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service),
                );
            }
        });
        (url, accepted)
    }

    /// The answer's event of one `tools/call` through `wire`, read to the stream's end.
    async fn call(wire: &Arc<Wire>, id: i64) -> serde_json::Value {
        let message: rmcp::model::ClientJsonRpcMessage = serde_json::from_value(serde_json::json!(
            {"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {"name": "echo"}}
        ))
        .expect("a request");
        let body = Bytes::from(serde_json::to_vec(&message).expect("JSON"));
        let response = wire.post(body, Some("s-1"), HeaderMap::new()).await;
        let Ok(StreamableHttpPostResponse::Sse(mut events, _)) = response else {
            panic!("not an event stream");
        };
        let mut answer = serde_json::Value::Null;
        while let Some(event) = events.next().await {
            let data = event.expect("an event").data.unwrap_or_default();
            if !data.is_empty() {
                answer = serde_json::from_str(&data).expect("JSON");
            }
        }
        answer
    }

    #[tokio::test]
    async fn calls_reuse_one_connection_and_survive_its_closing() {
        let (url, accepted) = upstream(usize::MAX).await;
        let wire = Wire::for_url(&url).expect("an http URL");
        for id in 1..=3 {
            let answer = call(&wire, id).await;
            assert_eq!(answer["id"], id, "{answer}");
            assert_eq!(answer["result"]["session"], "s-1", "{answer}");
        }
        assert_eq!(
            accepted.load(Ordering::SeqCst),
            1,
            "one connection for three calls"
        );

        // An upstream that closes each connection after its answer: every call still succeeds.
        let (url, accepted) = upstream(1).await;
        let wire = Wire::for_url(&url).expect("an http URL");
        for id in 1..=3 {
            assert_eq!(call(&wire, id).await["id"], id);
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 3);
    }

    #[test]
    fn a_request_is_what_the_request_builder_makes() {
        let wire = Wire::for_url("http://127.0.0.1:8080/mcp?x=1").expect("an http URL");
        let mut configured = HeaderMap::new();
        configured.append("x-api-key", HeaderValue::from_static("k"));
        configured.append("x-trace", HeaderValue::from_static("a"));
        configured.append("x-trace", HeaderValue::from_static("b"));
        for session in [None, Some("s-1")] {
            let outgoing = Outgoing {
                wire: &wire,
                headers: configured.clone(),
                session,
                body: Bytes::from_static(b"{}"),
            };
            let Ok(ours) = outgoing.request() else {
                panic!("a request")
            };
            let mut built = Request::post(wire.path.clone())
                .header(header::HOST, wire.host.clone())
                .header(header::ACCEPT, "text/event-stream, application/json")
                .header(header::CONTENT_TYPE, "application/json");
            for (name, value) in &configured {
                built = built.header(name, value);
            }
            if let Some(session) = session {
                built = built.header("mcp-session-id", session);
            }
            let built = built.body(()).expect("a request");
            assert_eq!(ours.method(), built.method());
            assert_eq!(ours.uri(), built.uri());
            assert_eq!(ours.version(), built.version());
            let pairs = |map: &HeaderMap| {
                map.iter()
                    .map(|(name, value)| (name.clone(), value.clone()))
                    .collect::<Vec<_>>()
            };
            assert_eq!(pairs(ours.headers()), pairs(built.headers()));
        }
        let outgoing = Outgoing {
            wire: &wire,
            headers: HeaderMap::new(),
            session: Some("a\nb"),
            body: Bytes::new(),
        };
        assert!(
            outgoing.request().is_err(),
            "a session id no header can carry"
        );
    }

    #[test]
    fn content_types_are_matched_as_rmcp_matches_them() {
        assert!(media_type_is(b"text/event-stream", "text/event-stream"));
        assert!(media_type_is(
            b"Application/JSON; charset=utf-8",
            "application/json"
        ));
        assert!(!media_type_is(b"application/jsonx", "application/json"));
        assert!(!media_type_is(b"", "application/json"));
    }
}
