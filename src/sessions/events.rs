//! Resumable streams: rmcp's `EventStore`, backed by memory first and the database second.
//!
//! rmcp calls `store_event` for every server-sent event before sending it, so it sits on the
//! request path: events go into a bounded in-memory ring at once and, with
//! `--event-store database`, reach `mcp_events` through a batching writer (moments later). A client that reconnects with `Last-Event-ID` is served
//! from the ring, or — after a restart or on another replica — from the database. Events are
//! kept for [`RETENTION`]; an event lost in a crash within the writer's flush interval cannot
//! be replayed (the client then simply re-sends its request).
//!
//! A replay is served only within the session the stream was sent to: event ids are 128
//! random bits (nothing to guess from a neighbour's), the session layer records each stream's
//! owner as its first event leaves ([`DbEventStore::claim`]), and [`DbEventStore::replay_in_session`]
//! answers a stream of another session exactly like an unknown event. rmcp's own
//! `replay_events_after` (its session-less GET path) is refused outright.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chrono::Utc;
use rmcp::model::{ServerJsonRpcMessage, ServerResult};
use rmcp::transport::streamable_http_server::session::{
    EventId, EventStore, EventStoreError, EventStream, ServerSseMessage,
};
use sqlx::types::Json;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::store::Store;
use crate::store::events::{EventRow, StreamOwnerRow};
use crate::sync::lock;

/// How long events stay replayable.
pub const RETENTION: Duration = Duration::from_secs(15 * 60);
/// Events kept in memory per replica: at most this many, and at most [`RING_BYTES`] of them
/// (whole replies; a replay older than either comes from the database with
/// `--event-store database`, or is not served).
const RING: usize = 2_000;
/// The bytes the ring's replies may hold, estimated by [`weight`]. Under load the ring turns
/// over in about a second either way, and 2,000 replies of a few KiB each were a large part of
/// the server's resident memory.
const RING_BYTES: usize = 1024 * 1024;
/// What an event costs besides its reply's text (ids, the message's structure).
const EVENT_OVERHEAD: usize = 256;
/// The newest events kept whatever their bytes, so a client whose stream broke during one large
/// reply (e.g. a long document) can still resume it.
const RING_MIN: usize = 32;
const FLUSH: Duration = Duration::from_millis(100);
const BATCH: usize = 500;

/// What goes to the database writer.
enum Persist {
    Event(EventRow),
    Stream(StreamOwnerRow),
}

/// The session (and its principal) a stream was sent to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamOwner {
    pub session_id: String,
    pub principal: Option<String>,
}

/// Why a replay was not served. Both cases read the same to the client.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("event {0} is unknown, older than the replay window, or not of this session")]
    NotFound(String),
    #[error("the event store cannot be read: {0}")]
    Store(#[from] sqlx::Error),
}

struct Recent {
    event_id: String,
    stream_id: String,
    event: ServerSseMessage,
    /// [`weight`] of `event`.
    weight: usize,
}

/// The most recent events, bounded in number and in bytes.
#[derive(Default)]
struct Ring {
    events: VecDeque<Recent>,
    bytes: usize,
}

impl Ring {
    fn push(&mut self, recent: Recent) {
        self.bytes += recent.weight;
        self.events.push_back(recent);
        while self.events.len() > RING || (self.bytes > RING_BYTES && self.events.len() > RING_MIN)
        {
            match self.events.pop_front() {
                Some(old) => self.bytes -= old.weight,
                None => break,
            }
        }
    }
}

/// About how many bytes an event holds: a tool's reply is its text (cheap to read off);
/// rarer replies (initialize, lists) and notifications are measured by serialising them.
fn weight(event: &ServerSseMessage) -> usize {
    let Some(message) = &event.message else {
        return EVENT_OVERHEAD;
    };
    if let ServerJsonRpcMessage::Response(response) = &**message
        && let ServerResult::CallToolResult(result) = &response.result
        && result.structured_content.is_none()
    {
        let text: usize = result
            .content
            .iter()
            .map(|block| block.as_text().map_or(EVENT_OVERHEAD, |t| t.text.len()))
            .sum();
        return EVENT_OVERHEAD + text;
    }
    let mut counted = ByteCount(0);
    match serde_json::to_writer(&mut counted, &**message) {
        Ok(()) => EVENT_OVERHEAD + counted.0,
        // Not serialisable: it could not have been sent either, and holds little.
        Err(_) => EVENT_OVERHEAD,
    }
}

/// An `io::Write` that only counts what is written.
struct ByteCount(usize);

impl std::io::Write for ByteCount {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len();
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

pub struct DbEventStore {
    ring: Mutex<Ring>,
    /// Owners of the streams in the ring (bounded with it, see [`forget_streams_gone`]), by
    /// stream id: Steward's own random UUIDs, hashed with foldhash (SipHash cost more than the
    /// rest of a claim).
    owners: Mutex<Owners>,
    /// `None` keeps events in memory only (the default: persisting every event costs a
    /// database write of each reply; see BENCHMARKS.md).
    persist: Option<mpsc::Sender<Persist>>,
    counter: AtomicU64,
    behind: std::sync::atomic::AtomicBool,
    store: Store,
}

impl DbEventStore {
    /// The store and, with `durable`, its background writer (which also prunes old events).
    pub fn start(
        store: Store,
        durable: bool,
        shutdown: CancellationToken,
    ) -> (Arc<Self>, JoinHandle<()>) {
        let (persist, rx) = mpsc::channel(16_384);
        let me = Arc::new(DbEventStore {
            ring: Mutex::new(Ring::default()),
            owners: Mutex::default(),
            persist: durable.then_some(persist),
            counter: AtomicU64::new(0),
            behind: std::sync::atomic::AtomicBool::new(false),
            store: store.clone(),
        });
        let writer = if durable {
            tokio::spawn(write_events(store, rx, shutdown))
        } else {
            tokio::spawn(async {})
        };
        (me, writer)
    }

    /// Orders events of one stream across restarts: microseconds since the epoch, with the
    /// low bits from a per-process counter.
    fn next_seq(&self) -> i64 {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        (Utc::now().timestamp_micros() << 10) | (n & 1023) as i64
    }

    /// Records that the stream holding `event_id` (just stored) was sent to `owner`. The
    /// first owner of a stream stays. Called by the session layer on a stream's first event.
    pub fn claim(&self, event_id: &str, owner: &StreamOwner) {
        let stream_id = {
            let ring = lock(&self.ring);
            // A claim follows its event closely: look from the newest end.
            let stream_id = match ring.events.iter().rev().find(|r| r.event_id == event_id) {
                Some(recent) => recent.stream_id.clone(),
                None => return,
            };
            // Locks are always taken ring first, owners second.
            let mut owners = lock(&self.owners);
            forget_streams_gone(&ring, &mut owners);
            if owners.contains_key(&stream_id) {
                return;
            }
            owners.insert(stream_id.clone(), owner.clone());
            stream_id
        };
        if let Some(persist) = &self.persist {
            let row = StreamOwnerRow {
                stream_id,
                session_id: owner.session_id.clone(),
                principal: owner.principal.clone(),
                created_at: Utc::now(),
            };
            if persist.try_send(Persist::Stream(row)).is_err() {
                // Fails safe: without its owner the stream is not replayable after a restart.
                tracing::warn!("event writer is behind; a stream's owner is kept in memory only");
            }
        }
    }

    /// Who the stream holding `event_id` was sent to, from memory or the database.
    pub async fn owner_of(&self, event_id: &str) -> Result<Option<StreamOwner>, sqlx::Error> {
        let in_memory = {
            let ring = lock(&self.ring);
            ring.events
                .iter()
                .find(|r| r.event_id == event_id)
                .map(|r| lock(&self.owners).get(&r.stream_id).cloned())
        };
        if let Some(owner) = in_memory {
            return Ok(owner);
        }
        if self.persist.is_none() {
            return Ok(None);
        }
        Ok(self
            .store
            .event_owner(event_id)
            .await?
            .map(|row| StreamOwner {
                session_id: row.session_id,
                principal: row.principal,
            }))
    }

    /// The events after `last_event_id` in its stream, if that stream was sent to `session_id`.
    pub async fn replay_in_session(
        &self,
        last_event_id: &str,
        session_id: &str,
    ) -> Result<Vec<ServerSseMessage>, ReplayError> {
        let from_memory: Option<Option<Vec<ServerSseMessage>>> = {
            let ring = lock(&self.ring);
            ring.events
                .iter()
                .position(|r| r.event_id == last_event_id)
                .map(|at| {
                    let stream = &ring.events[at].stream_id;
                    let owned = lock(&self.owners)
                        .get(stream)
                        .is_some_and(|o| o.session_id == session_id);
                    owned.then(|| {
                        ring.events
                            .iter()
                            .skip(at + 1)
                            .filter(|r| &r.stream_id == stream)
                            .map(|r| r.event.clone())
                            .collect()
                    })
                })
        };
        let not_found = || ReplayError::NotFound(last_event_id.chars().take(80).collect());
        match from_memory {
            Some(Some(events)) => Ok(events),
            Some(None) => Err(not_found()),
            None if self.persist.is_none() => Err(not_found()),
            None => match self.store.events_after(last_event_id, session_id).await? {
                Some(rows) => Ok(rows.into_iter().map(from_row).collect()),
                None => Err(not_found()),
            },
        }
    }
}

/// A stream with 128 random bits: nothing about one client's event ids says anything about
/// another's. 32 lowercase hex digits (`{:032x}`'s text), written without the formatting
/// machinery: two ids are made for every call served outside rmcp.
fn new_event_id() -> String {
    let id = uuid::Uuid::from_u128(rand::random::<u128>());
    id.simple()
        .encode_lower(&mut uuid::Uuid::encode_buffer())
        .to_owned()
}

fn to_row(event_id: &str, stream_id: &str, seq: i64, event: &ServerSseMessage) -> EventRow {
    EventRow {
        event_id: event_id.to_string(),
        stream_id: stream_id.to_string(),
        seq,
        message: event
            .message
            .as_ref()
            .and_then(|m| serde_json::to_value(&**m).ok())
            .map(Json),
        retry_ms: event
            .retry
            .map(|r| i64::try_from(r.as_millis()).unwrap_or(i64::MAX)),
        created_at: Utc::now(),
    }
}

fn from_row(row: EventRow) -> ServerSseMessage {
    let mut event = ServerSseMessage::default();
    event.event_id = Some(row.event_id);
    event.message = row
        .message
        .and_then(|m| serde_json::from_value::<ServerJsonRpcMessage>(m.0).ok())
        .map(Arc::new);
    event.retry = row
        .retry_ms
        .and_then(|ms| u64::try_from(ms).ok())
        .map(Duration::from_millis);
    event
}

/// The owners of the streams `ring` holds an event of, by stream id.
type Owners = HashMap<String, StreamOwner, foldhash::fast::RandomState>;

/// Bounds `owners` with the ring: past twice the events it holds now, forgets the streams it
/// no longer holds. Its bytes bound it to ~130 replies of `find_tasks`'s size under load, so a
/// bound of twice its 2,000 slots kept ~30 times more owners than there were streams left to
/// replay: ~0.9 MiB of map and ids (BENCHMARKS.md, branch `mem6`).
fn forget_streams_gone(ring: &Ring, owners: &mut Owners) {
    let held = 2 * ring.events.len().max(RING_MIN);
    if owners.len() < held {
        return;
    }
    let live: std::collections::HashSet<&str> =
        ring.events.iter().map(|r| r.stream_id.as_str()).collect();
    owners.retain(|stream, _| live.contains(stream.as_str()));
    // The room a ring of small events once needed is given back.
    owners.shrink_to(held);
}

impl DbEventStore {
    /// [`EventStore::store_event`] without its boxed future (nothing in it waits): what the
    /// streams written outside rmcp store their events with, twice a call.
    pub fn keep(&self, stream_id: &str, event: &ServerSseMessage) -> EventId {
        let seq = self.next_seq();
        let event_id = new_event_id();
        let mut stored = event.clone();
        stored.event_id = Some(event_id.clone());
        if let Some(persist) = &self.persist {
            let behind = persist
                .try_send(Persist::Event(to_row(&event_id, stream_id, seq, &stored)))
                .is_err();
            // Say so once per change, not once per event: the event stays replayable from
            // memory on this replica either way.
            if behind != self.behind.swap(behind, Ordering::Relaxed) {
                if behind {
                    tracing::warn!(
                        "event writer is behind; SSE events are kept in memory only until it catches up"
                    );
                } else {
                    tracing::info!("event writer caught up");
                }
            }
        }
        let weight = weight(&stored);
        lock(&self.ring).push(Recent {
            event_id: event_id.clone(),
            stream_id: stream_id.to_string(),
            event: stored,
            weight,
        });
        event_id
    }
}

#[async_trait::async_trait]
impl EventStore for DbEventStore {
    async fn store_event(
        &self,
        stream_id: &str,
        event: &ServerSseMessage,
    ) -> Result<EventId, EventStoreError> {
        Ok(self.keep(stream_id, event))
    }

    /// rmcp's session-less replay (a GET that names no session): refused. A replay is only
    /// served within the session the stream was sent to, by the session manager's `resume`.
    async fn replay_events_after(
        &self,
        last_event_id: &str,
    ) -> Result<EventStream, EventStoreError> {
        Err(ReplayError::NotFound(last_event_id.chars().take(80).collect()).into())
    }
}

/// Batches events into `mcp_events` and prunes them past [`RETENTION`].
async fn write_events(store: Store, mut rx: mpsc::Receiver<Persist>, shutdown: CancellationToken) {
    let mut batch = Vec::with_capacity(BATCH);
    let mut streams = Vec::new();
    let mut last_prune = tokio::time::Instant::now();
    loop {
        let closed = tokio::select! {
            first = rx.recv() => match first {
                Some(Persist::Event(row)) => { batch.push(row); false }
                Some(Persist::Stream(row)) => { streams.push(row); false }
                None => true,
            },
            _ = shutdown.cancelled() => true,
        };
        while batch.len() + streams.len() < BATCH {
            match rx.try_recv() {
                Ok(Persist::Event(row)) => batch.push(row),
                Ok(Persist::Stream(row)) => streams.push(row),
                Err(_) => break,
            }
        }
        if let Err(error) = store.insert_events(&batch).await {
            tracing::warn!(%error, events = batch.len(), "could not store SSE events for replay");
        }
        if let Err(error) = store.insert_event_streams(&streams).await {
            tracing::warn!(%error, streams = streams.len(), "could not store the owners of SSE streams; they are not replayable after a restart");
        }
        batch.clear();
        streams.clear();
        if last_prune.elapsed() > Duration::from_secs(60) {
            last_prune = tokio::time::Instant::now();
            let before = Utc::now() - chrono::Duration::from_std(RETENTION).unwrap_or_default();
            if let Err(error) = store.prune_events(before).await {
                tracing::warn!(%error, "could not prune old SSE events");
            }
        }
        if closed {
            break;
        }
        tokio::time::sleep(FLUSH).await;
    }
}

#[cfg(test)]
mod tests {
    use rmcp::model::{CallToolResult, ContentBlock, RequestId};

    use super::*;

    fn reply(text_len: usize) -> ServerSseMessage {
        let result = CallToolResult::success(vec![ContentBlock::text("x".repeat(text_len))]);
        ServerSseMessage::from_message(ServerJsonRpcMessage::response(
            ServerResult::CallToolResult(result),
            RequestId::Number(1),
        ))
    }

    fn recent(n: usize, event: ServerSseMessage) -> Recent {
        Recent {
            event_id: n.to_string(),
            stream_id: "s".into(),
            weight: weight(&event),
            event,
        }
    }

    #[test]
    fn an_event_id_is_32_lowercase_hex_digits_and_random() {
        let id = new_event_id();
        assert_eq!(id.len(), 32, "{id}");
        assert!(
            id.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
            "{id}"
        );
        assert_ne!(new_event_id(), id);
        // The text `{:032x}` writes for the same bits, leading zeros kept.
        for bits in [0u128, 1, 0xabc, u128::MAX, 0x0123_4567_89ab_cdef << 40] {
            let written = uuid::Uuid::from_u128(bits)
                .simple()
                .encode_lower(&mut uuid::Uuid::encode_buffer())
                .to_owned();
            assert_eq!(written, format!("{bits:032x}"));
        }
    }

    #[test]
    fn a_reply_weighs_its_text() {
        let w = weight(&reply(10_000));
        assert!((10_000..10_000 + 2 * EVENT_OVERHEAD).contains(&w), "{w}");
        let priming = ServerSseMessage::retry(Duration::from_secs(3));
        assert_eq!(weight(&priming), EVENT_OVERHEAD);
    }

    #[test]
    fn stream_owners_are_bounded_by_the_events_the_ring_holds() {
        let mut ring = Ring::default();
        let mut owners = Owners::default();
        let owner = |n: usize| StreamOwner {
            session_id: format!("session {n}"),
            principal: None,
        };
        // One stream per call, as each tools/call POST is, with replies the bytes bound.
        for n in 0..3 * RING {
            ring.push(Recent {
                stream_id: format!("stream {n}"),
                ..recent(n, reply(8 * 1024))
            });
            forget_streams_gone(&ring, &mut owners);
            owners.insert(format!("stream {n}"), owner(n));
            assert!(
                owners.len() <= 2 * (ring.events.len() + 1),
                "{} owners for {} events",
                owners.len(),
                ring.events.len()
            );
        }
        assert!(ring.events.len() < RING / 10, "{}", ring.events.len());
        // Every stream the ring can still replay keeps its owner.
        for held in &ring.events {
            let n: usize = held.event_id.parse().unwrap();
            assert_eq!(owners.get(&held.stream_id), Some(&owner(n)));
        }
    }

    #[test]
    fn the_ring_keeps_the_newest_events_within_its_bytes() {
        let mut ring = Ring::default();
        for n in 0..1_000 {
            ring.push(recent(n, reply(16 * 1024)));
        }
        assert!(ring.bytes <= RING_BYTES, "{} bytes held", ring.bytes);
        assert_eq!(
            ring.bytes,
            ring.events.iter().map(|r| r.weight).sum::<usize>()
        );
        assert_eq!(ring.events.back().map(|r| r.event_id.as_str()), Some("999"));
        assert!(ring.events.len() > 30, "{} events kept", ring.events.len());
        // Small events: the count bounds the ring.
        for n in 0..3 * RING {
            ring.push(recent(n, ServerSseMessage::retry(Duration::from_secs(3))));
        }
        assert_eq!(ring.events.len(), RING);
        // Replies larger than the budget: the newest few are still kept, so a stream that broke
        // during one can be resumed.
        for n in 0..RING_MIN + 5 {
            ring.push(recent(n, reply(2 * RING_BYTES)));
        }
        assert_eq!(ring.events.len(), RING_MIN);
        assert_eq!(
            ring.events.back().map(|r| r.event_id.clone()),
            Some((RING_MIN + 4).to_string())
        );
    }
}
