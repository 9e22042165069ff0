//! Ledger capture for Streamable HTTP: an axum middleware around `/mcp` that sees every POSTed
//! JSON-RPC message, including the ones rejected before a handler ran (unknown session, wrong
//! headers, bad JSON), and the reply exactly as the client received it.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::body::{Body, Bytes, HttpBody, to_bytes};
use axum::extract::{Request, State};
use axum::http::response::Parts;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method};
use axum::middleware::Next;
use axum::response::Response;
use bytes::BytesMut;
use chrono::{DateTime, Utc};
use http_body::{Frame, SizeHint};
use uuid::Uuid;

use super::analyze::analyze_remembered;
use super::entry::{
    Ending, Entry, Exchange, LedgerRow, MAX_KEPT_RESPONSE, Micros, Observation, ReadRequest,
    Served, StreamGet, UpstreamHop, new_request_id,
};
use super::journal::{Record, Ticket};
use super::{Durability, Ledger};
use crate::principal::Principal;
use crate::protocol::envelope::Received;
use crate::protocol::{Envelope, PROTOCOL_VERSION, SESSION_ID};

/// What is known when the request arrives; completed by [`Pending::finish`].
struct Pending {
    request_id: Uuid,
    session_id: Option<String>,
    timestamp: DateTime<Utc>,
    started: Instant,
    request: Bytes,
    http_status: u16,
    protocol_version: Option<String>,
    stream_get: Option<StreamGet>,
    /// The request as the security guard read it (spans of `request`, a copy of its body).
    read: Option<ReadRequest>,
    /// Filled in by the layer that serves the request.
    served: Served,
}

impl Pending {
    fn finish(self, response: Bytes, response_len: u64, ending: Ending) -> Observation {
        let facts = self.served.facts();
        let duration = Micros::since(self.started);
        self.observation(response, response_len, ending, duration, facts)
    }

    /// The observation of the request, its reply `response` and `facts` (the serving layer's
    /// subject and upstream hop) as taken at its end, `duration` after it started.
    fn observation(
        self,
        response: Bytes,
        response_len: u64,
        ending: Ending,
        duration: Micros,
        (subject, upstream): (Option<Uuid>, Option<UpstreamHop>),
    ) -> Observation {
        Observation {
            request_id: self.request_id,
            session_id: self.session_id,
            timestamp: self.timestamp,
            duration,
            request: self.request,
            http_status: Some(self.http_status),
            response,
            response_len,
            ending,
            protocol_version: self.protocol_version,
            stream_get: self.stream_get,
            upstream,
            subject,
        }
    }

    /// The request and its reply as borrowed fields (see [`Exchange`]), with the serving
    /// layer's subject and upstream hop.
    fn exchange<'a>(
        &'a self,
        response: &'a [u8],
        (response_len, ending, duration): (u64, Ending, Micros),
        (subject, upstream): (Option<Uuid>, Option<&'a UpstreamHop>),
        read: Option<&'a ReadRequest>,
    ) -> Exchange<'a> {
        Exchange {
            request_id: self.request_id,
            session_id: self.session_id.as_deref(),
            timestamp: self.timestamp,
            duration,
            request: &self.request,
            http_status: Some(self.http_status),
            response,
            response_len,
            ending,
            protocol_version: self.protocol_version.as_deref(),
            stream_get: self.stream_get,
            upstream,
            subject,
            read,
        }
    }

    /// Records the request as [`Ledger::record_read`] records its observation, analysed from
    /// these fields: the observation is made only when the writer has to analyse it (the row,
    /// nearly always, is worked out without moving them into one first).
    fn record(
        self,
        ledger: &Ledger,
        response: Bytes,
        response_len: u64,
        ending: Ending,
        read: Option<&ReadRequest>,
    ) {
        let facts = self.served.facts();
        let duration = Micros::since(self.started);
        let exchange = self.exchange(
            &response,
            (response_len, ending, duration),
            (facts.0, facts.1.as_ref()),
            read,
        );
        let entry = match analyze_remembered(&exchange, Some(&response)) {
            Some(row) => Entry::Row(row),
            None => {
                Entry::observed(self.observation(response, response_len, ending, duration, facts))
            }
        };
        ledger.record_entry(entry);
    }

    /// Analyses the request as it stands while its reply is still going out (when the
    /// reply's verdict is remembered) and journals the row, or else the exchange itself,
    /// written from these fields and the reply so far as they are (no [`Observation`] is built
    /// for it).
    fn journal(&self, ledger: &Ledger, kept: &Kept, response_len: u64) -> Journaled {
        let response = kept.bytes();
        self.served.with_facts(|subject, upstream| {
            let duration = Micros::since(self.started);
            let exchange = self.exchange(
                response,
                (response_len, Ending::Complete, duration),
                (subject, upstream),
                self.read.as_ref(),
            );
            let row = analyze_remembered(&exchange, kept.shared());
            let ticket = match &row {
                Some(row) => ledger.journal(&Record::Row(row)),
                None => ledger.journal(&Record::Exchange(exchange)),
            };
            Journaled {
                ticket,
                len: response_len,
                row,
            }
        })
    }
}

/// What was journaled before a frame of the reply left: the record's ticket, the reply's
/// length then, and the row when it could be analysed then.
struct Journaled {
    ticket: Option<Ticket>,
    len: u64,
    row: Option<Box<LedgerRow>>,
}

/// Attributes a request that carries no `Mcp-Session-Id` to a session (e.g. a logical session
/// of a stateless client). Implemented by the session layer; must not block.
pub trait Attribution: Send + Sync {
    fn session_for(&self, principal: &Principal, envelope: &Envelope) -> Option<String>;
}

/// On a response whose messages were each recorded on their own (a batch's, by the layers
/// inside): the response as a whole is not recorded again.
#[derive(Clone, Copy, Debug)]
pub struct RecordedApart;

/// What the capture middleware needs.
#[derive(Clone)]
pub struct Capture {
    pub ledger: Ledger,
    pub attribution: Option<std::sync::Arc<dyn Attribution>>,
}

/// The middleware. POSTs carry JSON-RPC messages; a GET (the server's event stream, opened or
/// replayed) is recorded too, with no message; DELETE passes through. The layers inside read
/// the body (once) and say who sent it; they leave both on the response ([`Received`],
/// [`Principal`]), where this layer finds them.
pub async fn capture(
    State(Capture {
        ledger,
        attribution,
    }): State<Capture>,
    mut request: Request,
    next: Next,
) -> Response {
    if ledger.durability() == Durability::Off {
        return next.run(request).await;
    }
    if request.method() == Method::GET {
        return capture_get(ledger, request, next).await;
    }
    if request.method() != Method::POST {
        return next.run(request).await;
    }
    let started = Instant::now();
    let timestamp = Utc::now();
    let (session_id, protocol_version) = session_headers(request.headers());
    let served = Served::default();
    request.extensions_mut().insert(served.clone());
    let response = next.run(request).await;
    if response.extensions().get::<RecordedApart>().is_some() {
        return response;
    }
    let principal = response.extensions().get::<Principal>();
    let received = response.extensions().get::<Received>();
    // A request refused before authentication keeps nothing its sender chose: not the session
    // id it claimed (perhaps another principal's), and (its body was never read) no method or
    // tool; the row says it was refused, with the reply's size.
    let session_id = session_id.filter(|_| principal.is_some());
    // Stateless clients have no id: the session layer may attribute them to a logical session
    // of their principal.
    let session_id = session_id.or_else(|| {
        let envelope = received?.envelope()?;
        attribution?.session_for(principal?, envelope)
    });
    let pending = Pending {
        request_id: new_request_id(),
        // An initialize learns its session id from the reply.
        session_id: session_id.or_else(|| header_text(response.headers(), &SESSION_ID)),
        timestamp,
        started,
        // A copy: the body shares hyper's read buffer, and holding it until the writer runs
        // would make hyper allocate a fresh buffer for the connection's next request (and
        // keep thousands of them alive between flushes).
        request: received.map_or_else(Bytes::new, |r| Bytes::copy_from_slice(r.body())),
        http_status: response.status().as_u16(),
        protocol_version,
        stream_get: None,
        read: received
            .and_then(Received::envelope)
            .and_then(ReadRequest::of),
        served,
    };
    let (parts, body) = response.into_parts();
    if ledger.durability() == Durability::Sync {
        // Hold the reply until its row is durable (group commit with concurrent requests).
        let (kept, ending) = match to_bytes(body, usize::MAX).await {
            Ok(bytes) => (bytes, Ending::Complete),
            Err(_) => (Bytes::new(), Ending::Cancelled),
        };
        let len = kept.len() as u64;
        ledger
            .record_durably(pending.finish(kept.clone(), len, ending))
            .await;
        return Response::from_parts(parts, Body::from(kept));
    }
    TapBody::tap(parts, body, pending, ledger)
}

/// A GET's row: recorded when its stream ends (or the client goes away).
async fn capture_get(ledger: Ledger, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let timestamp = Utc::now();
    let kind = match request.headers().contains_key("last-event-id") {
        true => StreamGet::Replay,
        false => StreamGet::Open,
    };
    let (session_id, protocol_version) = session_headers(request.headers());
    let response = next.run(request).await;
    // As for a POST: a request refused before authentication keeps no session id it chose.
    let session_id = session_id.filter(|_| response.extensions().get::<Principal>().is_some());
    let pending = Pending {
        request_id: new_request_id(),
        session_id,
        timestamp,
        started,
        request: Bytes::new(),
        http_status: response.status().as_u16(),
        protocol_version,
        stream_get: Some(kind),
        read: None,
        served: Served::default(),
    };
    let (parts, body) = response.into_parts();
    TapBody::tap(parts, body, pending, ledger)
}

/// A header's text. Takes a prebuilt [`HeaderName`]: a `&str` name is parsed and validated
/// again at every lookup.
fn header_text(headers: &HeaderMap, name: &HeaderName) -> Option<String> {
    headers.get(name).and_then(text_of)
}

/// The texts of a request's `Mcp-Session-Id` and `MCP-Protocol-Version` (the first of each,
/// as [`header_text`] reads them), found in one walk over its few headers: each lookup hashed
/// the name it looked for.
fn session_headers(headers: &HeaderMap) -> (Option<String>, Option<String>) {
    let (mut session, mut version) = (None, None);
    for (name, value) in headers {
        if name == SESSION_ID {
            session.get_or_insert(value);
        } else if name == PROTOCOL_VERSION {
            version.get_or_insert(value);
        }
    }
    (session.and_then(text_of), version.and_then(text_of))
}

/// A header value's text: as [`HeaderValue::to_str`] reads it (visible ASCII and tabs, else
/// none), checked over all its bytes without an early exit, which the compiler turns into
/// vector code (`to_str`'s byte-by-byte loop was most of the cost of reading a session id).
fn text_of(value: &HeaderValue) -> Option<String> {
    let bytes = value.as_bytes();
    let visible = bytes.iter().fold(true, |ok, &b| {
        ok & ((b' '..=b'~').contains(&b) | (b == b'\t'))
    });
    visible
        .then(|| std::str::from_utf8(bytes).ok())
        .flatten()
        .map(str::to_string)
}

/// Passes the reply through untouched while keeping a copy (up to [`MAX_KEPT_RESPONSE`]) and
/// timing it to its last byte. Records the request when the body ends, or, if the client goes
/// away first, when it is dropped (as `cancelled`): as its analysed row when the reply's
/// verdict is remembered, so the reply is freed here and then rather than held until the
/// writer's next flush.
struct TapBody {
    inner: Body,
    kept: Kept,
    len: u64,
    pending: Option<(Pending, Ledger)>,
    /// The reply so far, analysed and journaled (see [`TapBody::journal_before_sending`]).
    /// Only SSE replies fill it; its row is boxed (see [`Entry`]), so it is not carried inline
    /// by every tap that is moved into its response body.
    journaled: Option<Journaled>,
}

/// The reply so far. A reply that arrives as one frame is kept as that frame (shared, not
/// copied); only a reply of several frames is copied into one buffer.
#[derive(Default)]
enum Kept {
    #[default]
    Nothing,
    One(Bytes),
    /// A first frame without data (see [`Kept::add`]).
    Dataless(Bytes),
    Joined(BytesMut),
}

impl Kept {
    fn len(&self) -> usize {
        match self {
            Kept::Nothing => 0,
            Kept::One(bytes) | Kept::Dataless(bytes) => bytes.len(),
            Kept::Joined(buffer) => buffer.len(),
        }
    }

    /// Adds a frame; `dataless`: [`carries_no_data`] of it, worked out once by the caller.
    fn add(&mut self, data: Bytes, dataless: bool) {
        *self = match std::mem::take(self) {
            Kept::Nothing if dataless => Kept::Dataless(data),
            Kept::Nothing => Kept::One(data),
            // rmcp opens an SSE reply with an event that carries no data (its id and retry
            // time): nothing the ledger reads, so the reply proper need not be copied after it.
            Kept::Dataless(_) => Kept::One(data),
            Kept::One(first) => {
                let mut joined = BytesMut::with_capacity(first.len() + data.len());
                joined.extend_from_slice(&first);
                joined.extend_from_slice(&data);
                Kept::Joined(joined)
            }
            Kept::Joined(mut joined) => {
                joined.extend_from_slice(&data);
                Kept::Joined(joined)
            }
        }
    }

    /// The reply so far as shared bytes, when it is one frame (not copied).
    fn shared(&self) -> Option<&Bytes> {
        match self {
            Kept::One(bytes) | Kept::Dataless(bytes) => Some(bytes),
            Kept::Nothing | Kept::Joined(_) => None,
        }
    }

    /// The reply so far, borrowed.
    fn bytes(&self) -> &[u8] {
        match self {
            Kept::Nothing => &[],
            Kept::One(bytes) | Kept::Dataless(bytes) => bytes,
            Kept::Joined(buffer) => buffer,
        }
    }

    fn take(&mut self) -> Bytes {
        match std::mem::take(self) {
            Kept::Nothing => Bytes::new(),
            Kept::One(bytes) | Kept::Dataless(bytes) => bytes,
            Kept::Joined(buffer) => buffer.freeze(),
        }
    }
}

/// Whether `frame` is whole SSE events with no data: only `id:`, `retry:`, `event:`, comment
/// and empty `data:` lines, ending with the blank line that ends an event. (JSON cannot have a
/// line like these, so a JSON body is never taken for one.)
fn carries_no_data(frame: &[u8]) -> bool {
    // A reply's frame opens with its `data:` line: decided on its first bytes, without
    // scanning the whole reply for line ends.
    if opens_with_data(frame) {
        return false;
    }
    if !(frame.ends_with(b"\n\n") || frame.ends_with(b"\r\n\r\n")) {
        return false;
    }
    // Line ends found with `memchr`: a byte-by-byte split cost more than the rest of the
    // check on every SSE reply's opening event.
    let mut rest = frame;
    while let Some(end) = memchr::memchr(b'\n', rest) {
        let line = &rest[..end];
        if !field_without_data(line.strip_suffix(b"\r").unwrap_or(line)) {
            return false;
        }
        rest = &rest[end + 1..];
        // A direct call's priming event comes in one frame with its answer (`mcp::fast`):
        // the answer's data line is told by its first bytes, without searching the whole
        // answer for its end.
        if has_text_at_start(rest) {
            return false;
        }
    }
    true
}

/// Whether `text` opens with a `data:` line holding something other than whitespace, decided
/// on its first bytes: such a line is never [`field_without_data`].
fn has_text_at_start(text: &[u8]) -> bool {
    text.strip_prefix(b"data:")
        .and_then(|rest| rest.iter().find(|b| **b != b' ' && **b != b'\t'))
        .is_some_and(|b| !b.is_ascii_whitespace())
}

/// Whether `frame`'s first line is a `data:` field with something in it.
fn opens_with_data(frame: &[u8]) -> bool {
    frame
        .strip_prefix(b"data:")
        .and_then(|rest| rest.iter().find(|b| **b != b' ' && **b != b'\t'))
        .is_some_and(|b| *b != b'\n' && *b != b'\r')
}

/// Whether an SSE line (without its line end) is blank, an `id:`, `retry:`, `event:` or
/// comment line, or a `data:` line with nothing in it.
fn field_without_data(line: &[u8]) -> bool {
    let fields: [&[u8]; 4] = [b"id:", b"retry:", b"event:", b":"];
    line.is_empty()
        || fields.iter().any(|field| line.starts_with(field))
        || line
            .strip_prefix(b"data:")
            .is_some_and(|rest| rest.trim_ascii().is_empty())
}

impl TapBody {
    /// The response, its body passed through a tap that records `pending` when it ends.
    fn tap(parts: Parts, body: Body, pending: Pending, ledger: Ledger) -> Response {
        let tap = TapBody {
            inner: body,
            kept: Kept::Nothing,
            len: 0,
            pending: Some((pending, ledger)),
            journaled: None,
        };
        Response::from_parts(parts, Body::new(tap))
    }

    /// Records the request; its reply is no longer held (by this body or by the ledger) when
    /// its row was analysed already.
    fn finish(&mut self, ending: Ending) {
        let Some((mut pending, ledger)) = self.pending.take() else {
            return;
        };
        let kept = self.kept.take();
        // The security guard's reading of the request, so analysis does not parse it again.
        let read = pending.read.take();
        let read = read.as_ref();
        match self.journaled.take() {
            Some(Journaled { ticket, len, row }) if len == self.len => {
                let entry = match row {
                    // The reply ended as it stood when analysed: only its duration grew.
                    Some(mut row) if ending == Ending::Complete => {
                        row.duration = Micros::since(pending.started);
                        Entry::Row(row)
                    }
                    _ => ledger.analysed(pending.finish(kept, self.len, ending), read),
                };
                ledger.record_journaled(entry, ticket);
            }
            // Journaled anew before the older record is released. (A reply that goes out as
            // one frame, as a direct call's does, is recorded here.)
            _ => pending.record(&ledger, kept, self.len, ending, read),
        }
    }

    /// A streamed (SSE) reply does not say which frame is its last: a client may have the
    /// whole answer before the body ends. So every frame that carries data is analysed and
    /// journaled before it leaves, and a `kill -9` at any point loses no answered request.
    /// `dataless`: [`carries_no_data`] of `frame`.
    fn journal_before_sending(&mut self, frame: &Bytes, dataless: bool) {
        let Some((pending, ledger)) = &self.pending else {
            return;
        };
        // An event stream (GET) is recorded when it ends: it answers no request of its own.
        if pending.stream_get.is_some() || frame.is_empty() || dataless {
            return;
        }
        self.journaled = Some(pending.journal(ledger, &self.kept, self.len));
    }
}

impl HttpBody for TapBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                let ended = this.inner.is_end_stream();
                // Worked out once a frame, for both uses below; neither needs it for the last
                // frame (the reply kept is the same bytes either way, and it is recorded, not
                // journaled before sending), which is a direct call's only one.
                let dataless = !ended && frame.data_ref().is_some_and(|data| carries_no_data(data));
                if let Some(data) = frame.data_ref() {
                    this.len += data.len() as u64;
                    let room = MAX_KEPT_RESPONSE.saturating_sub(this.kept.len());
                    if room > 0 && !data.is_empty() {
                        this.kept.add(data.slice(..data.len().min(room)), dataless);
                    }
                }
                // hyper stops polling a body that says it has ended: finish now.
                if ended {
                    this.finish(Ending::Complete);
                } else if let Some(data) = frame.data_ref() {
                    this.journal_before_sending(data, dataless);
                }
            }
            Poll::Ready(None) => this.finish(Ending::Complete),
            Poll::Ready(Some(Err(_))) => this.finish(Ending::Cancelled),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for TapBody {
    fn drop(&mut self) {
        let ending = if self.inner.is_end_stream() {
            Ending::Complete
        } else {
            Ending::Cancelled
        };
        self.finish(ending);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tap_does_not_carry_an_unfilled_row_inline() {
        // Every response moves its tap into the body; a row held inline would be copied
        // with it although only SSE replies fill one.
        assert!(std::mem::size_of::<TapBody>() < std::mem::size_of::<LedgerRow>());
    }

    #[test]
    fn the_session_headers_are_read_as_each_is_looked_up() {
        let mut headers = HeaderMap::new();
        headers.insert("content-type", HeaderValue::from_static("application/json"));
        assert_eq!(session_headers(&headers), (None, None));
        headers.append(SESSION_ID, HeaderValue::from_static("first"));
        headers.append(SESSION_ID, HeaderValue::from_static("second"));
        headers.insert(PROTOCOL_VERSION, HeaderValue::from_static("2025-11-25"));
        let looked_up = (
            header_text(&headers, &SESSION_ID),
            header_text(&headers, &PROTOCOL_VERSION),
        );
        assert_eq!(session_headers(&headers), looked_up);
        assert_eq!(
            looked_up,
            (Some("first".to_string()), Some("2025-11-25".to_string()))
        );
        // A value that is not visible ASCII is no text.
        let opaque = HeaderValue::from_bytes(b"caf\xc3\xa9").expect("a header value");
        headers.insert(SESSION_ID, opaque);
        assert_eq!(session_headers(&headers).0, None);
        // Every byte a header value may hold is read as `to_str` reads it.
        for b in (0..=u8::MAX).filter(|b| *b == b'\t' || (*b >= 0x20 && *b != 0x7f)) {
            let value = HeaderValue::from_bytes(&[b'a', b, b'z']).expect("a header value");
            assert_eq!(
                text_of(&value),
                value.to_str().ok().map(str::to_string),
                "byte {b:#04x}"
            );
        }
    }

    #[test]
    fn an_event_without_data_is_not_kept_and_other_frames_are_joined() {
        let add = |kept: &mut Kept, frame: &'static [u8]| {
            kept.add(Bytes::from_static(frame), carries_no_data(frame))
        };
        let mut kept = Kept::default();
        add(&mut kept, b"data: \nid: 0\nretry: 3000\n\n");
        add(&mut kept, b"data: {\"id\":1}\n\n");
        assert_eq!(kept.len(), 16);
        assert_eq!(&kept.take()[..], b"data: {\"id\":1}\n\n");
        let mut kept = Kept::default();
        add(&mut kept, b"data: {\"id\":1}\n\n");
        add(&mut kept, b"data: {\"id\":2}\n\n");
        add(&mut kept, b"data: 3\n\n");
        assert_eq!(
            &kept.take()[..],
            b"data: {\"id\":1}\n\ndata: {\"id\":2}\n\ndata: 3\n\n"
        );
        assert!(kept.take().is_empty());
        assert!(carries_no_data(b": keep-alive\r\n\r\n"));
        assert!(!carries_no_data(b"{\"a\":1}\n\n"));
        assert!(!carries_no_data(b"data: \nid: 0"), "not a whole event");
        assert!(!carries_no_data(b"data: x\n\n"));
        assert!(
            !carries_no_data(b"id: 0\ndata: x\n\n"),
            "data after a field"
        );
        assert!(!carries_no_data(b"data: {\"id\":1}\n\n"));
        assert!(carries_no_data(b"data:  \r\nid: 0\r\n\r\n"));
        // A priming event and an answer in one frame; blank-looking data lines after it.
        assert!(!carries_no_data(
            b"data: \nid: 0\nretry: 3000\n\ndata: {\"id\":1}\nid: 1\n\n"
        ));
        assert!(carries_no_data(b"id: 0\ndata: \t\x0c\n\n"));
        assert!(!carries_no_data(b"id: 0\ndata: \t\x0cx\n\n"));
        assert!(has_text_at_start(b"data: {") && has_text_at_start(b"data:x"));
        assert!(!has_text_at_start(b"data: \x0c\n") && !has_text_at_start(b"id: 1"));
    }
}
