//! What the ledger records: [`Observation`]s taken cheaply on the request path, and the
//! [`LedgerRow`]s they become off it. The types make the seed's bug impossible: durations are
//! integer microseconds from a monotonic clock ([`Micros`]), money is an exact decimal.

use std::ops::Range;
use std::time::Instant;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::protocol::{CallSpans, Envelope};

pub use crate::store::request_row::{LedgerRow, Micros, Status, TraceContext, UpstreamHop};

/// Where the layer that served a request tells the ledger what only it knows: the board task
/// the request concerned, or the upstream server it was passed on to. The capture puts one in
/// each request's extensions (the HTTP request's on Streamable HTTP, the message's own on stdio)
/// and reads it with the reply; the ledger stores what it holds as opaque facts and never looks
/// inside requests to find them.
#[derive(Clone, Debug, Default)]
pub struct Served(std::sync::Arc<std::sync::Mutex<ServedFacts>>);

#[derive(Clone, Debug, Default)]
struct ServedFacts {
    subject: Option<Uuid>,
    upstream: Option<UpstreamHop>,
    /// Since when the request is at the upstream, until it comes back: the hop's duration is
    /// still running.
    at_upstream_since: Option<Instant>,
}

impl ServedFacts {
    /// The hop as of now: a running one's duration is the time spent there so far.
    fn hop_now(&self, since: Instant) -> Option<UpstreamHop> {
        let mut hop = self.upstream.clone()?;
        hop.duration = Micros::since(since);
        Some(hop)
    }
}

impl Served {
    /// The one the capture left for this request, if any (none with the ledger off).
    pub fn of(extensions: &rmcp::model::Extensions) -> Option<&Served> {
        extensions.get::<Served>().or_else(|| {
            extensions
                .get::<axum::http::request::Parts>()?
                .extensions
                .get::<Served>()
        })
    }

    /// The request concerned `id` (a board task); a later call replaces an earlier one.
    pub fn concerns(&self, id: Uuid) {
        crate::sync::lock(&self.0).subject = Some(id);
    }

    /// The request is passed on to server `upstream` (as `tool` there) from `since`: told
    /// before it goes, so a row taken before the answer (the client hung up) still names them,
    /// with the time spent there so far.
    pub fn going_upstream(&self, upstream: String, tool: Option<String>, since: Instant) {
        let mut facts = crate::sync::lock(&self.0);
        facts.upstream = Some(UpstreamHop {
            upstream,
            tool,
            duration: Micros::from_micros(0),
        });
        facts.at_upstream_since = Some(since);
    }

    /// The upstream answered (or the request failed there): the hop's duration stops.
    pub fn came_back(&self) {
        let mut facts = crate::sync::lock(&self.0);
        if let Some(since) = facts.at_upstream_since.take()
            && let Some(hop) = facts.upstream.as_mut()
        {
            hop.duration = Micros::since(since);
        }
    }

    /// What the serving layer said: the subject and the upstream hop.
    pub fn facts(&self) -> (Option<Uuid>, Option<UpstreamHop>) {
        let facts = crate::sync::lock(&self.0);
        let hop = match facts.at_upstream_since {
            Some(since) => facts.hop_now(since),
            None => facts.upstream.clone(),
        };
        (facts.subject, hop)
    }

    /// Calls `f` with the facts borrowed (the journal writes them without a copy, but for a
    /// hop still running).
    pub fn with_facts<R>(&self, f: impl FnOnce(Option<Uuid>, Option<&UpstreamHop>) -> R) -> R {
        let facts = crate::sync::lock(&self.0);
        match facts.at_upstream_since {
            Some(since) => f(facts.subject, facts.hop_now(since).as_ref()),
            None => f(facts.subject, facts.upstream.as_ref()),
        }
    }
}

/// A new `request_id`: a UUIDv7, which sorts by creation time, so rows land at the end of the
/// primary-key index instead of on a random page each, which matters as the table grows.
pub fn new_request_id() -> Uuid {
    Uuid::now_v7()
}

/// How a request ended, as the transport saw it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Ending {
    /// The whole response was produced.
    Complete,
    /// The client went away (or cancelled) before the response was complete.
    Cancelled,
    /// Steward gave up waiting for the handler.
    TimedOut,
}

/// One JSON-RPC message as a transport saw it: raw bytes and timings only, so taking it costs
/// next to nothing. [`super::analyze`] turns it into a [`LedgerRow`] off the request path.
#[derive(Clone, Debug, PartialEq)]
pub struct Observation {
    pub request_id: Uuid,
    pub session_id: Option<String>,
    pub timestamp: DateTime<Utc>,
    pub duration: Micros,
    /// The message as received.
    pub request: Bytes,
    /// The HTTP status (None on stdio).
    pub http_status: Option<u16>,
    /// The reply as sent (JSON, SSE or plain text), possibly cut at [`MAX_KEPT_RESPONSE`].
    pub response: Bytes,
    /// The full size of the reply in bytes.
    pub response_len: u64,
    pub ending: Ending,
    /// The `MCP-Protocol-Version` the request carried, if any.
    pub protocol_version: Option<String>,
    /// Set for a `GET /mcp` (the server's event stream), which carries no message.
    pub stream_get: Option<StreamGet>,
    /// Set when the request was passed on to another server (gateway mode).
    pub upstream: Option<UpstreamHop>,
    /// What the request concerned, as the layer that served it said (see [`Served`]).
    pub subject: Option<Uuid>,
}

impl Observation {
    /// The bytes it holds while it waits for the writer (request and kept reply), which the
    /// queue's byte bound counts.
    pub fn held_bytes(&self) -> u64 {
        (self.request.len() + self.response.len()) as u64
    }
}

/// An [`Observation`] borrowed: what analysis and the journal read. The request path builds one
/// from the fields it has (the capture's pending request, the reply kept so far) without
/// copying them into an [`Observation`].
#[derive(Clone, Copy)]
pub struct Exchange<'a> {
    pub request_id: Uuid,
    pub session_id: Option<&'a str>,
    pub timestamp: DateTime<Utc>,
    pub duration: Micros,
    pub request: &'a [u8],
    pub http_status: Option<u16>,
    pub response: &'a [u8],
    pub response_len: u64,
    pub ending: Ending,
    pub protocol_version: Option<&'a str>,
    pub stream_get: Option<StreamGet>,
    pub upstream: Option<&'a UpstreamHop>,
    pub subject: Option<Uuid>,
    /// The request as the protocol layer already read it, when it did (the request path):
    /// analysis then does not parse the body again.
    pub read: Option<&'a ReadRequest>,
}

/// A request (not a batch) as the protocol layer read it: its method, and where its id and
/// params lie in the request's bytes (see [`crate::protocol::envelope::Message`]).
#[derive(Clone, Debug, PartialEq)]
pub struct ReadRequest {
    pub method: String,
    pub id: Option<Range<usize>>,
    pub params: Option<Range<usize>>,
    /// A plain `tools/call`'s name and arguments, as the gate found them.
    pub call: Option<CallSpans>,
}

impl ReadRequest {
    /// The single request of `envelope` (None for a batch or a client's response).
    pub fn of(envelope: &Envelope) -> Option<ReadRequest> {
        let message = envelope.single()?;
        Some(ReadRequest {
            method: message.method.clone()?,
            id: message.id_span(),
            params: message.params_span(),
            call: message.call_spans().cloned(),
        })
    }
}

impl<'a> From<&'a Observation> for Exchange<'a> {
    fn from(o: &'a Observation) -> Self {
        Exchange {
            request_id: o.request_id,
            session_id: o.session_id.as_deref(),
            timestamp: o.timestamp,
            duration: o.duration,
            request: &o.request,
            http_status: o.http_status,
            response: &o.response,
            response_len: o.response_len,
            ending: o.ending,
            protocol_version: o.protocol_version.as_deref(),
            stream_get: o.stream_get,
            upstream: o.upstream.as_ref(),
            subject: o.subject,
            read: None,
        }
    }
}

/// What the request path hands the writer: the row, when the request path could analyse the
/// exchange (its reply's verdict and token counts were remembered, see [`super::analyze`]),
/// so the reply is freed at once; else the observation, which the writer analyses. Both are
/// boxed: an entry is moved by value into a job, through the queue and out of it, and inline
/// each move copied a ~450-byte row (BENCHMARKS.md, branch `rq35`).
#[derive(Debug)]
pub enum Entry {
    Row(Box<LedgerRow>),
    Observed(Box<Observation>),
}

impl Entry {
    /// An entry of an observation the writer analyses.
    pub fn observed(observation: Observation) -> Entry {
        Entry::Observed(Box::new(observation))
    }
}

impl Entry {
    /// The bytes it holds while it waits for the writer, which the queue's byte bound counts.
    pub fn held_bytes(&self) -> u64 {
        match self {
            Entry::Row(row) => row.held_bytes(),
            Entry::Observed(observation) => observation.held_bytes(),
        }
    }
}

/// A `GET /mcp`: the server's event stream, opened or resumed with `Last-Event-ID`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StreamGet {
    Open,
    Replay,
}

impl StreamGet {
    /// The ledger's method for it (a GET has no JSON-RPC method).
    pub fn method(self) -> &'static str {
        match self {
            StreamGet::Open => "(GET stream)",
            StreamGet::Replay => "(GET replay)",
        }
    }
}

/// Replies larger than this are counted in full but only this much is kept for analysis.
pub const MAX_KEPT_RESPONSE: usize = 4 * 1024 * 1024;

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_request_still_at_its_upstream_is_named_with_the_time_spent_there_so_far() {
        let served = Served::default();
        assert_eq!(served.facts().1, None);
        served.going_upstream("py".into(), Some("slow".into()), Instant::now());
        std::thread::sleep(Duration::from_millis(2));
        let (_, hop) = served.facts();
        let hop = hop.unwrap_or_else(|| panic!("no hop while the request is upstream"));
        assert_eq!(
            (hop.upstream.as_str(), hop.tool.as_deref()),
            ("py", Some("slow"))
        );
        assert!(hop.duration.micros() >= 2_000, "{hop:?}");
        let journalled = served.with_facts(|_, hop| hop.map(|h| h.upstream.clone()));
        assert_eq!(journalled.as_deref(), Some("py"));
        served.came_back();
        let stopped = served.facts().1.map(|h| h.duration);
        assert_eq!(served.facts().1.map(|h| h.duration), stopped);
    }
}
