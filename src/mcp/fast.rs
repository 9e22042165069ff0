//! A session-era client's plain `tools/call`, answered in front of rmcp: the board's own tools
//! ([`super::board_call`]) and an HTTP upstream's ([`super::raw`]). Through rmcp a call is
//! parsed a second time and crosses five tasks (the connection's, the session's worker, its
//! service loop, the handler rmcp spawns for the request, and back); here it runs in the
//! connection's own task, as the reply's body.
//!
//! What rmcp's path gives the call, this one gives too: the reply is an event stream with
//! rmcp's priming event, its events stored for replay and claimed for the session, kept alive
//! while the call runs; the client's `notifications/cancelled` and its hanging up (after the
//! hang-up grace, `--hangup-grace`, as on rmcp's path) cancel the call; the ledger sees the call
//! as any other.
//!
//! Only a plain call is served here (see [`Plain::of`]): anything else goes to rmcp as before,
//! and so does a call whose session is not held on this replica (rmcp restores it). A session
//! held dormant (without rmcp's worker, see `SessionManager::rest`) is served here as a live
//! one.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
use http_body::Frame;
use rmcp::ErrorData;
use rmcp::model::{NumberOrString, ProtocolVersion, ServerJsonRpcMessage, ServerResult};
use rmcp::transport::streamable_http_server::session::ServerSseMessage;
use rmcp::transport::streamable_http_server::session::local::SessionConfig;
use serde::Deserialize;
use serde_json::{Map, Value};
use tokio::time::{Instant, Sleep};
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

use super::ServerContext;
use super::window::Windows;
use crate::gateway::Gateway;
use crate::protocol::{CallSpans, Envelope, Id, PROTOCOL_VERSION, SESSION_ID, STATELESS_REVISION};
use crate::sessions::manager::OwnStream;
use crate::sessions::{Sessions, hangup};

/// As rmcp's streams: a comment line this often while the call runs.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// What the layer needs.
#[derive(Clone)]
pub struct Direct {
    sessions: Arc<Sessions>,
    calls: Arc<InFlight>,
    /// Fired when the server stops: open streams end, as rmcp's do. Shared, not cloned per
    /// call: a token's clone and drop each take its tree's lock.
    closing: Arc<CancellationToken>,
    /// The board, when its tools are served.
    board: Option<Arc<ServerContext>>,
    gateway: Option<Arc<Gateway>>,
    /// How long a reply waits for its answer to go out in one write.
    windows: Arc<Windows>,
}

impl Direct {
    /// The layer for the tools `ctx` serves: the board's (unless `--no-board`) and its
    /// upstreams'; `None` when it serves neither.
    pub fn new(
        ctx: &Arc<ServerContext>,
        sessions: Arc<Sessions>,
        closing: CancellationToken,
    ) -> Option<Self> {
        let board = ctx.board.then(|| ctx.clone());
        let gateway = ctx.gateway.clone();
        (board.is_some() || gateway.is_some()).then(|| Direct {
            sessions,
            calls: Arc::default(),
            closing: Arc::new(closing),
            board,
            gateway,
            windows: Arc::new(Windows::new()),
        })
    }
}

/// The calls served here, by session and request id (as JSON text), for the client's
/// `notifications/cancelled`: rmcp does not know them. Hashed with foldhash (seeded per
/// process) as the session manager's maps are: each call enters and leaves.
#[derive(Default)]
struct InFlight(Mutex<HashMap<(String, String), CancellationToken, foldhash::fast::RandomState>>);

/// A call's place in [`InFlight`], until dropped.
struct Enlisted {
    calls: Arc<InFlight>,
    key: (String, String),
}

impl Drop for Enlisted {
    fn drop(&mut self) {
        crate::sync::lock(&self.calls.0).remove(&self.key);
    }
}

impl InFlight {
    fn enlist(self: &Arc<Self>, session: &str, id: &Id, token: CancellationToken) -> Enlisted {
        let mut text = String::new();
        push_id(&mut text, id);
        let key = (session.to_string(), text);
        crate::sync::lock(&self.0).insert(key.clone(), token);
        Enlisted {
            calls: self.clone(),
            key,
        }
    }

    fn cancel(&self, session: &str, id: &Value) {
        let key = (session.to_string(), id.to_string());
        if let Some(token) = crate::sync::lock(&self.0).get(&key) {
            token.cancel();
        }
    }
}

/// The params of a `tools/call` served here: nothing but these two.
pub(super) struct ToolCall {
    pub name: String,
    pub arguments: Option<Map<String, Value>>,
}

#[derive(Deserialize)]
struct Cancelled {
    #[serde(rename = "requestId")]
    request_id: Option<Value>,
}

/// A plain `tools/call` of a session: one message with an id, headers rmcp would not compare
/// with the body, params of a name and arguments only (no `_meta`: a progress token).
pub(super) struct Plain {
    pub session: String,
    pub id: Id,
    /// The tool's name.
    pub name: String,
    /// The arguments' JSON object as the client wrote it (a slice of the body); `None` when
    /// absent or null.
    pub arguments: Option<Bytes>,
    /// The request, whose params text keys a written answer (see `board_call::asked`).
    pub envelope: Arc<Envelope>,
}

impl Plain {
    fn of(request: &Request) -> Option<Plain> {
        if request.method() != Method::POST {
            return None;
        }
        let envelope = request.extensions().get::<Arc<Envelope>>()?;
        let message = envelope.single()?;
        if message.method.as_deref() != Some("tools/call") {
            return None;
        }
        let id = message.id.clone()?;
        let headers = request.headers();
        let session = headers.get(SESSION_ID)?.to_str().ok()?;
        if !plain_headers(headers) {
            return None;
        }
        // As the gate found them, else read here (offsets in the body either way).
        let spans = match message.call_spans() {
            Some(spans) => spans.clone(),
            None => {
                let start = message.params_span()?.start;
                CallSpans::read(envelope.params(message)?)?.moved(0, start)
            }
        };
        let body = envelope.body();
        let name = serde_json::from_slice(body.get(spans.name)?).ok()?;
        Some(Plain {
            session: session.to_string(),
            id,
            name,
            arguments: spans.arguments.map(|range| body.slice(range)),
            envelope: envelope.clone(),
        })
    }

    /// The call with its arguments parsed; `None` when they cannot be (rmcp refuses them).
    pub fn tool_call(&self) -> Option<ToolCall> {
        let arguments = match &self.arguments {
            Some(text) => Some(serde_json::from_slice(text).ok()?),
            None => None,
        };
        Some(ToolCall {
            name: self.name.clone(),
            arguments,
        })
    }

    /// The params as the client sent them.
    fn params(&self) -> Option<&str> {
        self.envelope.params(self.envelope.single()?)
    }
}

/// A request id as rmcp spells it.
pub(super) fn request_id(id: &Id) -> NumberOrString {
    match id {
        Id::Number(n) => NumberOrString::Number(*n),
        Id::Text(text) => NumberOrString::String(text.as_str().into()),
    }
}

/// Appends request id `id`'s JSON text (as `serde_json` writes its value) to `out`.
fn push_id(out: &mut String, id: &Id) {
    match id {
        Id::Number(n) => out.push_str(itoa::Buffer::new().format(*n)),
        Id::Text(text) => out.push_str(&serde_json::to_string(text).unwrap_or_default()),
    }
}

/// Whether a client that introduced itself with `client` speaks a session-era revision.
pub(super) fn session_era(client: Option<&rmcp::model::InitializeRequestParams>) -> bool {
    client.is_some_and(|client| client.protocol_version.as_str() < STATELESS_REVISION)
}

/// The middleware, just in front of rmcp.
pub async fn serve(State(direct): State<Direct>, request: Request, next: Next) -> Response {
    let Some(plain) = Plain::of(&request) else {
        direct.note_cancellation(&request);
        return next.run(request).await;
    };
    if let Some(ctx) = &direct.board
        && let Some(live) = super::board_call::live(ctx, &plain)
        && let Some(call) = plain.tool_call()
    {
        let Some(stream) = direct.open(&plain.session).await else {
            return next.run(request).await;
        };
        let (parts, _) = request.into_parts();
        let ctx = ctx.clone();
        let asked = plain
            .params()
            .and_then(|params| super::board_call::asked(&live, &call, params));
        let Plain { session, id, .. } = plain;
        let called = id.clone();
        let answer =
            move |token| super::board_call::call(ctx, live, called, call, parts, token, asked);
        return direct.respond(stream, &session, &id, answer).await;
    }
    if let Some(gateway) = &direct.gateway
        && let Some(eligible) = super::raw::eligible(gateway, &request, &plain)
    {
        let Some(stream) = direct.open(&plain.session).await else {
            return next.run(request).await;
        };
        let gateway = gateway.clone();
        let Plain {
            session,
            id,
            name,
            arguments,
            ..
        } = plain;
        let (on, asked) = (session.clone(), id.clone());
        let answer =
            move |token| super::raw::call(gateway, eligible, name, arguments, on, asked, token);
        return direct.respond(stream, &session, &id, answer).await;
    }
    next.run(request).await
}

/// A call's answer: the JSON-RPC message as sent, and as stored for replay (parsed, as rmcp
/// stores its own).
pub(super) struct Answered {
    pub data: String,
    pub message: ServerJsonRpcMessage,
}

impl Answered {
    /// The answer of request `id`, written as rmcp writes it.
    pub fn of(outcome: Result<ServerResult, ErrorData>, id: &Id) -> Answered {
        let request_id = request_id(id);
        let message = match outcome {
            Ok(result) => ServerJsonRpcMessage::response(result, request_id),
            Err(error) => ServerJsonRpcMessage::error(error, Some(request_id)),
        };
        let data = serde_json::to_string(&message).unwrap_or_else(|error| {
            let body = crate::protocol::error_body(
                crate::protocol::INTERNAL_ERROR,
                &format!("cannot encode the answer: {error}"),
                Some(id),
            );
            body.to_string()
        });
        Answered { data, message }
    }

    /// The answer of request `id` whose result rmcp wrote as `json` before: the same bytes as
    /// [`Answered::of`] writes for it.
    pub fn written(result: ServerResult, json: &str, id: &Id) -> Answered {
        let mut data = String::with_capacity(json.len() + 64);
        data.push_str(r#"{"jsonrpc":"2.0","id":"#);
        push_id(&mut data, id);
        data.push_str(r#","result":"#);
        data.push_str(json);
        data.push('}');
        let message = ServerJsonRpcMessage::response(result, request_id(id));
        Answered { data, message }
    }

    /// The answer's event, stored for replay, sent as `data`: written after `priming` in one
    /// buffer, so an answer that comes within the window goes out with its priming event
    /// without a copy of both (the reply sends the event alone from `priming.len()` otherwise).
    fn event(self, stream: &mut OwnStream, priming: &[u8]) -> Bytes {
        let event_id = stream.store(&ServerSseMessage::from_message(self.message));
        let mut event = Vec::with_capacity(priming.len() + self.data.len() + 64);
        event.extend_from_slice(priming);
        push_frame(&mut event, &self.data, Some(&event_id), None);
        Bytes::from(event)
    }
}

impl Direct {
    /// A client's `notifications/cancelled` of a call served here cancels it (and goes on to
    /// rmcp, which finds nothing of its own to cancel).
    fn note_cancellation(&self, request: &Request) {
        if request.method() != Method::POST {
            return;
        }
        let Some(envelope) = request.extensions().get::<Arc<Envelope>>() else {
            return;
        };
        let Some(message) = envelope.single() else {
            return;
        };
        if message.method.as_deref() != Some("notifications/cancelled") {
            return;
        }
        let session = request
            .headers()
            .get(SESSION_ID)
            .and_then(|v| v.to_str().ok());
        let params = envelope.params(message);
        let cancelled = params.and_then(|p| serde_json::from_str::<Cancelled>(p).ok());
        if let (
            Some(session),
            Some(Cancelled {
                request_id: Some(id),
            }),
        ) = (session, cancelled)
        {
            self.calls.cancel(session, &id);
        }
    }

    /// The reply stream of a call of `session`; `None` when the session is not held here,
    /// live or dormant (rmcp restores it), or streams are not resumable.
    async fn open(&self, session: &str) -> Option<OwnStream> {
        let manager = self.sessions.manager();
        if !manager.is_held(session).await {
            return None;
        }
        manager.own_stream(session)
    }

    /// The reply to request `id` of `session` on `stream`: the priming event, then the answer `call` makes
    /// (`None`: cancelled, nothing to send), run as the body is polled. `call` is given the
    /// token the client's cancellation and hanging up fire.
    async fn respond<F>(
        &self,
        mut stream: OwnStream,
        session: &str,
        id: &Id,
        call: impl FnOnce(CancellationToken) -> F + Send + 'static,
    ) -> Response
    where
        F: Future<Output = Option<Answered>> + Send + 'static,
    {
        let retry = SessionConfig::DEFAULT_SSE_RETRY;
        let priming = stream.store(&ServerSseMessage::retry(retry));
        let priming = frame("", Some(&priming), Some(retry));
        let token = CancellationToken::new();
        let enlisted = self.calls.enlist(session, id, token.clone());
        let hang_up = HangUp {
            token: token.clone(),
            session: session.to_string(),
            sessions: self.sessions.clone(),
        };
        let primed = priming.len();
        let mut reply = Reply {
            answer: Some(answering(call, token, enlisted, stream, priming.clone())),
            priming: Some(priming),
            joined: false,
            primed,
            done: None,
            waiting: None,
            closing: self.closing.clone(),
            hang_up: Some(hang_up),
        };
        // A call answered within its window (`super::window`) goes out as one frame with the
        // priming event: one write, and one wake-up of the client, instead of two. A slower one
        // gets its headers and priming event then. A client that hangs up meanwhile drops
        // `reply`, which hands the call to the hang-up grace as it would while streaming.
        if self.within_window(&mut reply).await {
            reply.join_priming();
        }
        let mut response = Response::new(Body::new(reply));
        *response.status_mut() = StatusCode::OK;
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/event-stream"),
        );
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
        response
    }
}

impl Direct {
    /// Runs `reply`'s call until it is answered (true) or its window ends (false). The window
    /// is set only if the call is not answered at its first poll.
    async fn within_window(&self, reply: &mut Reply) -> bool {
        let mut window = std::pin::pin!(None::<Sleep>);
        std::future::poll_fn(|cx| {
            if reply.poll_call(cx).is_ready() {
                return Poll::Ready(true);
            }
            if window.is_none() {
                let end = self.windows.close(Instant::now());
                window.set(Some(tokio::time::sleep_until(end)));
            }
            match window.as_mut().as_pin_mut() {
                Some(window) => window.poll(cx).map(|()| false),
                None => Poll::Ready(false),
            }
        })
        .await
    }
}

/// The call's answer, boxed by a plain function, so `respond`'s own future (the middleware's,
/// boxed by axum on every request) holds none of the call's state. The call's future (kilobytes
/// of state: a gateway call's is ~8.4 KiB) gets a box of its own when the answer is first
/// polled: boxing it here, inline in this future, copied all of its room (not only the few
/// values it starts from) into the box on every call.
fn answering<C, F>(
    call: C,
    token: CancellationToken,
    enlisted: Enlisted,
    mut stream: OwnStream,
    priming: Bytes,
) -> Answer
where
    C: FnOnce(CancellationToken) -> F + Send + 'static,
    F: Future<Output = Option<Answered>> + Send + 'static,
{
    Box::pin(async move {
        let _enlisted = enlisted;
        let answered = Box::pin(call(token)).await?;
        Some(answered.event(&mut stream, &priming))
    })
}

/// The headers rmcp would accept without comparing them with the body: both media types
/// accepted, a JSON body, a session-era revision (or none), and no `Mcp-Method`, `Mcp-Name` or
/// `Mcp-Param-*`.
fn plain_headers(headers: &HeaderMap) -> bool {
    fn media(value: &str) -> &str {
        value.split(';').next().unwrap_or_default().trim()
    }
    // One walk over the headers, each name compared rather than looked up (a lookup hashes
    // it), and over the media types, borrowed: this runs on every request.
    let (mut json, mut events) = (false, false);
    let (mut content_type, mut revision) = (None, None);
    for (name, value) in headers {
        if name == header::ACCEPT {
            let kinds = value.to_str().ok().into_iter().flat_map(|v| v.split(','));
            for kind in kinds {
                let kind = media(kind);
                json |= kind.eq_ignore_ascii_case("application/json");
                events |= kind.eq_ignore_ascii_case("text/event-stream");
            }
        } else if name == header::CONTENT_TYPE {
            content_type.get_or_insert(value);
        } else if name == PROTOCOL_VERSION {
            revision.get_or_insert(value);
        } else if name != SESSION_ID && name.as_str().starts_with("mcp-") {
            // Checked against the body by rmcp.
            return false;
        }
    }
    let json_body = content_type
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| media(v).eq_ignore_ascii_case("application/json"));
    let revision = match revision {
        None => true,
        Some(value) => value.to_str().is_ok_and(|v| {
            v < STATELESS_REVISION
                && ProtocolVersion::KNOWN_VERSIONS
                    .iter()
                    .any(|k| k.as_str() == v)
        }),
    };
    json && events && json_body && revision
}

/// One server-sent event, as rmcp writes them (`data`, `id`, `retry`). An upstream's text may
/// hold line ends (JSON allows them between tokens): each line goes in a `data:` line of its
/// own, which the client joins back with line ends.
fn frame(data: &str, id: Option<&str>, retry: Option<Duration>) -> Bytes {
    let mut event = Vec::with_capacity(data.len() + 64);
    push_frame(&mut event, data, id, retry);
    Bytes::from(event)
}

/// Appends [`frame`]'s event to `event`.
fn push_frame(event: &mut Vec<u8>, data: &str, id: Option<&str>, retry: Option<Duration>) {
    // memchr, not `str::split` with a char pattern: that walks the text a char at a time, and
    // an answer is mostly one long line.
    let data = data.as_bytes();
    let mut start = 0;
    let ends = memchr::memchr2_iter(b'\n', b'\r', data);
    for end in ends.chain(std::iter::once(data.len())) {
        event.extend_from_slice(b"data: ");
        event.extend_from_slice(&data[start..end]);
        event.push(b'\n');
        start = end + 1;
    }
    if let Some(id) = id {
        event.extend_from_slice(b"id: ");
        event.extend_from_slice(id.as_bytes());
        event.push(b'\n');
    }
    if let Some(retry) = retry {
        event.extend_from_slice(b"retry: ");
        event.extend_from_slice(itoa::Buffer::new().format(retry.as_millis()).as_bytes());
        event.push(b'\n');
    }
    event.push(b'\n');
}

type Answer = Pin<Box<dyn Future<Output = Option<Bytes>> + Send>>;

/// The reply's body: the priming event, then the call itself (run as the body is polled, in the
/// connection's task), its answer's event, with keep-alive comments meanwhile.
struct Reply {
    /// The priming event, until it is sent on its own or joined to the answer's.
    priming: Option<Bytes>,
    /// Whether the answer's event goes out with the priming event before it.
    joined: bool,
    /// The priming event's length: the answer's event is written after a copy of it.
    primed: usize,
    answer: Option<Answer>,
    /// The answer's event once the call is over, after the priming event (`None`: cancelled,
    /// nothing to send).
    done: Option<Option<Bytes>>,
    /// The keep-alive and the server's stop, once the stream has had to wait for the answer
    /// (most answers come within the window and never do).
    waiting: Option<Waiting>,
    closing: Arc<CancellationToken>,
    hang_up: Option<HangUp>,
}

/// What a reply waiting for its answer also waits on.
struct Waiting {
    keep_alive: Pin<Box<Sleep>>,
    closed: Pin<Box<WaitForCancellationFutureOwned>>,
}

impl Reply {
    /// Runs the call; ready once it is over (its answer's event in `done`).
    fn poll_call(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let Some(answer) = self.answer.as_mut() else {
            return Poll::Ready(());
        };
        let done = std::task::ready!(answer.as_mut().poll(cx));
        self.answer = None;
        self.done = Some(done);
        Poll::Ready(())
    }

    /// The priming event and the answer's as one frame, once the call has answered.
    fn join_priming(&mut self) {
        if self.priming.is_some() && matches!(self.done, Some(Some(_))) {
            self.priming = None;
            self.joined = true;
        }
    }
}

impl http_body::Body for Reply {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        let answered = this.poll_call(cx).is_ready();
        if let Some(priming) = this.priming.take() {
            return Poll::Ready(Some(Ok(Frame::data(priming))));
        }
        if let Some(done) = this.done.take() {
            let (joined, primed) = (this.joined, this.primed);
            let event = |event: Bytes| match joined {
                true => event,
                false => event.slice(primed.min(event.len())..),
            };
            return Poll::Ready(done.map(|e| Ok(Frame::data(event(e)))));
        }
        if answered {
            return Poll::Ready(None);
        }
        let closing = &this.closing;
        let waiting = this.waiting.get_or_insert_with(|| Waiting {
            keep_alive: Box::pin(tokio::time::sleep(KEEP_ALIVE)),
            closed: Box::pin(CancellationToken::clone(closing).cancelled_owned()),
        });
        if waiting.closed.as_mut().poll(cx).is_ready() {
            return Poll::Ready(None);
        }
        if waiting.keep_alive.as_mut().poll(cx).is_ready() {
            let next = Instant::now() + KEEP_ALIVE;
            waiting.keep_alive.as_mut().reset(next);
            return Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(b":\n\n")))));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.priming.is_none() && self.answer.is_none() && self.done.is_none()
    }
}

impl Drop for Reply {
    fn drop(&mut self) {
        let (Some(answer), Some(hang_up)) = (self.answer.take(), self.hang_up.take()) else {
            return;
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        runtime.spawn(hang_up.finish(answer));
    }
}

/// What a call whose client hung up before its answer needs to go on without it.
struct HangUp {
    token: CancellationToken,
    session: String,
    sessions: Arc<Sessions>,
}

impl HangUp {
    /// As on rmcp's path: the call goes on (its answer stored for a client that resumes the
    /// stream) until it is answered, or until the hang-up grace has passed since the hang-up
    /// or the session's latest resume; then it is cancelled.
    async fn finish(self, mut answer: Answer) {
        let session: Arc<str> = Arc::from(self.session.as_str());
        let manager = self.sessions.manager();
        let grace = manager.hangup_grace();
        let manager = Arc::downgrade(&manager);
        if hangup::ended_within_grace(&mut answer, &session, &manager, grace).await {
            return;
        }
        tracing::debug!(session_id = %self.session, "the client hung up before the answer: the call is cancelled");
        self.token.cancel();
        answer.await;
    }
}

#[cfg(test)]
mod tests {
    use futures::FutureExt as _;

    use super::*;

    #[test]
    fn a_written_answer_is_the_bytes_rmcp_writes() {
        let text = r#"{"success":true,"tasks":[{"title":"A \"quoted\" cache\nline"}]}"#;
        let result = ServerResult::CallToolResult(rmcp::model::CallToolResult::success(vec![
            rmcp::model::ContentBlock::text(text),
        ]));
        let json = serde_json::to_string(&result).expect("serialisable");
        for id in [
            Id::Number(7),
            Id::Number(-1),
            Id::Text("a \"text\" id".into()),
        ] {
            let made = Answered::of(Ok(result.clone()), &id);
            let written = Answered::written(result.clone(), &json, &id);
            assert_eq!(written.data, made.data);
            assert_eq!(
                serde_json::to_value(&written.message).expect("serialisable"),
                serde_json::to_value(&made.message).expect("serialisable")
            );
        }
    }

    #[test]
    fn an_event_is_written_as_rmcp_writes_it() {
        let retry = Some(Duration::from_secs(3));
        assert_eq!(
            &frame("", Some("e1"), retry)[..],
            b"data: \nid: e1\nretry: 3000\n\n"
        );
        assert_eq!(&frame("{\"a\":1}", None, None)[..], b"data: {\"a\":1}\n\n");
        assert_eq!(
            &frame("{\n\"a\":1}", Some("e2"), None)[..],
            b"data: {\ndata: \"a\":1}\nid: e2\n\n"
        );
        assert_eq!(
            &frame("a\r\nb", None, None)[..],
            b"data: a\ndata: \ndata: b\n\n"
        );
    }

    /// A reply to a call whose answer's event (after `priming`) is `event`, once `answered`
    /// fires.
    fn reply_to(
        priming: &'static [u8],
        event: &'static [u8],
    ) -> (Reply, tokio::sync::oneshot::Sender<()>) {
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let answer: Answer = Box::pin(async move {
            rx.await.ok()?;
            let mut both = priming.to_vec();
            both.extend_from_slice(event);
            Some(Bytes::from(both))
        });
        let reply = Reply {
            priming: Some(Bytes::from_static(priming)),
            joined: false,
            primed: priming.len(),
            answer: Some(answer),
            done: None,
            waiting: None,
            closing: Arc::default(),
            hang_up: None,
        };
        (reply, tx)
    }

    /// The reply's body, frame by frame, as a client reads it.
    async fn frames(reply: Reply) -> Vec<Bytes> {
        use http_body_util::BodyExt;
        let mut body = Body::new(reply);
        let mut frames = Vec::new();
        while let Some(frame) = body.frame().await {
            let frame = frame.expect("a reply does not fail");
            frames.push(frame.into_data().expect("data"));
        }
        frames
    }

    #[tokio::test]
    async fn an_answer_within_the_window_goes_out_with_the_priming_event_in_one_frame() {
        let (mut reply, answered) = reply_to(b"id: p\nretry: 3000\n\n", b"data: {}\nid: a\n\n");
        answered.send(()).expect("the reply waits");
        assert!(
            std::future::poll_fn(|cx| reply.poll_call(cx))
                .now_or_never()
                .is_some()
        );
        reply.join_priming();
        let frames = frames(reply).await;
        assert_eq!(frames, [&b"id: p\nretry: 3000\n\ndata: {}\nid: a\n\n"[..]]);
    }

    #[tokio::test]
    async fn an_answer_after_the_window_follows_the_priming_event_sent_on_its_own() {
        let (mut reply, answered) = reply_to(b"id: p\nretry: 3000\n\n", b"data: {}\nid: a\n\n");
        // The window ends before the answer.
        assert!(
            std::future::poll_fn(|cx| reply.poll_call(cx))
                .now_or_never()
                .is_none()
        );
        let sent = tokio::spawn(async move { answered.send(()) });
        let frames = frames(reply).await;
        sent.await.expect("sent").expect("the reply waits");
        assert_eq!(
            frames,
            [&b"id: p\nretry: 3000\n\n"[..], &b"data: {}\nid: a\n\n"[..]]
        );
    }

    /// A plain call's request with `body`, as the middleware gets it (the gate having noted
    /// the call's spans when `gated`).
    fn posted(body: &str, gated: bool) -> Request {
        let mut envelope = Envelope::parse(Bytes::from(body.to_string()), None).expect("JSON-RPC");
        if gated {
            let message = envelope.single().expect("one message");
            let params = envelope.params(message).expect("params");
            let spans = CallSpans::read(params).expect("a plain call");
            envelope.note_plain_call(0, spans);
        }
        let mut request = Request::post("/mcp")
            .header("accept", "application/json, text/event-stream")
            .header("content-type", "application/json")
            .header("mcp-session-id", "s-1")
            .body(Body::empty())
            .expect("a request");
        request.extensions_mut().insert(Arc::new(envelope));
        request
    }

    #[test]
    fn an_upstream_is_sent_the_arguments_as_the_client_wrote_them() {
        use crate::gateway::raw::Params;
        let arguments = r#"{"z" :1, "a":"\u00e9\"\\\/\n\ud83d\ude00","big":123456789012345678901234567890,"e":-1.5e-300,"n":{"y":[{ },[ ],null,true],"x":{"w":{}}},"a":2}"#;
        let body = format!(
            r#"{{"jsonrpc":"2.0","id":"r\"1","method":"tools/call","params":{{"name":"up__\u0065cho","arguments":{arguments}}}}}"#
        );
        for gated in [true, false] {
            let plain = Plain::of(&posted(&body, gated)).expect("a plain call");
            assert_eq!(plain.name, "up__echo");
            assert_eq!(plain.id, Id::Text("r\"1".into()));
            let written = plain.arguments.as_deref().expect("arguments");
            assert_eq!(written, arguments.as_bytes());
            // What the upstream is sent: its own name for the tool, the arguments untouched.
            let params = Params::Call {
                name: "echo",
                arguments: Some(std::str::from_utf8(written).expect("UTF-8")),
            };
            let sent = params.request(9, "tools/call").expect("JSON");
            let sent = std::str::from_utf8(&sent).expect("UTF-8");
            let expected = format!(
                r#"{{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{{"name":"echo","arguments":{arguments}}}}}"#
            );
            assert_eq!(sent, expected);
            // The board's tools get the same arguments parsed.
            let call = plain.tool_call().expect("parsed");
            assert_eq!(
                call.arguments.expect("arguments")["n"]["x"]["w"],
                Value::Object(Map::new())
            );
        }
        let bare = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"arguments":null,"name":"t"}}"#;
        let plain = Plain::of(&posted(bare, false)).expect("a plain call");
        assert!(plain.arguments.is_none());
        let other =
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"t","_meta":{}}}"#;
        assert!(Plain::of(&posted(other, false)).is_none());
    }

    #[test]
    fn a_call_is_enlisted_under_the_id_a_cancellation_names() {
        let calls = Arc::new(InFlight::default());
        for (id, named) in [
            (Id::Number(-7), serde_json::json!(-7)),
            (
                Id::Text("a \"b\"\n\u{e9}".into()),
                serde_json::json!("a \"b\"\n\u{e9}"),
            ),
        ] {
            let token = CancellationToken::new();
            let enlisted = calls.enlist("s", &id, token.clone());
            calls.cancel("t", &named);
            assert!(!token.is_cancelled(), "another session's");
            calls.cancel("s", &named);
            assert!(token.is_cancelled());
            drop(enlisted);
            assert!(crate::sync::lock(&calls.0).is_empty());
        }
    }

    #[test]
    fn only_plain_session_era_headers_are_served_here() {
        let plain = [
            ("accept", "application/json, text/event-stream"),
            ("content-type", "application/json"),
            ("mcp-session-id", "s"),
            ("mcp-protocol-version", "2025-11-25"),
        ];
        // Whether a request with the plain headers, changed by `edit`, is served here.
        type Pairs = Vec<(&'static str, &'static str)>;
        let served = |edit: &dyn Fn(&mut Pairs)| {
            let mut pairs = plain.to_vec();
            edit(&mut pairs);
            let mut map = HeaderMap::new();
            for (name, value) in pairs {
                map.append(name, HeaderValue::from_static(value));
            }
            plain_headers(&map)
        };
        assert!(served(&|_| {}));
        assert!(!served(&|h| h.push(("mcp-name", "up__echo"))));
        assert!(!served(&|h| h[3] = ("mcp-protocol-version", "2026-07-28")));
        assert!(!served(&|h| h[0] = ("accept", "application/json")));
        assert!(!served(&|h| h[0] = ("accept", "text/event-stream;q=1")));
        assert!(served(
            &|h| h[0] = ("accept", " Application/JSON ; q=0.9 ,TEXT/Event-Stream")
        ));
        assert!(served(&|h| {
            h[0] = ("accept", "text/event-stream");
            h.push(("accept", "application/json"));
        }));
    }
}
