//! Resumable streams: rmcp's `EventStore`, backed by memory first and the database second.
//!
//! rmcp calls `store_event` for every server-sent event before sending it, so it sits on the
//! request path: events go into a bounded in-memory ring at once and, with
//! `--event-store database`, reach `mcp_events` through a batching writer (moments later). A client that reconnects with `Last-Event-ID` is served
//! from the ring, or — after a restart or on another replica — from the database. Events are
//! kept for [`RETENTION`]; an event lost in a crash within the writer's flush interval cannot
//! be replayed (the client then simply re-sends its request).

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chrono::Utc;
use rmcp::model::ServerJsonRpcMessage;
use rmcp::transport::streamable_http_server::session::{
    EventId, EventStore, EventStoreError, EventStream, ServerSseMessage,
};
use sqlx::types::Json;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::store::Store;
use crate::store::events::EventRow;
use crate::sync::lock;

/// How long events stay replayable.
pub const RETENTION: Duration = Duration::from_secs(15 * 60);
/// Events kept in memory per replica (whole replies: keep it modest).
const RING: usize = 2_000;
const FLUSH: Duration = Duration::from_millis(100);
const BATCH: usize = 500;

struct Recent {
    event_id: String,
    stream_id: String,
    event: ServerSseMessage,
}

pub struct DbEventStore {
    ring: Mutex<VecDeque<Recent>>,
    /// `None` keeps events in memory only (the default: persisting every event costs a
    /// database write of each reply; see BENCHMARKS.md).
    persist: Option<mpsc::Sender<EventRow>>,
    /// Unique per process, so event ids never collide across replicas or restarts.
    instance: String,
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
            ring: Mutex::new(VecDeque::with_capacity(RING)),
            persist: durable.then_some(persist),
            instance: uuid::Uuid::new_v4().simple().to_string()[..12].to_string(),
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

#[async_trait::async_trait]
impl EventStore for DbEventStore {
    async fn store_event(
        &self,
        stream_id: &str,
        event: &ServerSseMessage,
    ) -> Result<EventId, EventStoreError> {
        let seq = self.next_seq();
        let event_id = format!("{}-{seq}", self.instance);
        let mut stored = event.clone();
        stored.event_id = Some(event_id.clone());
        if let Some(persist) = &self.persist {
            let behind = persist
                .try_send(to_row(&event_id, stream_id, seq, &stored))
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
        let mut ring = lock(&self.ring);
        if ring.len() >= RING {
            ring.pop_front();
        }
        ring.push_back(Recent {
            event_id: event_id.clone(),
            stream_id: stream_id.to_string(),
            event: stored,
        });
        Ok(event_id)
    }

    async fn replay_events_after(
        &self,
        last_event_id: &str,
    ) -> Result<EventStream, EventStoreError> {
        let from_memory: Option<Vec<ServerSseMessage>> = {
            let ring = lock(&self.ring);
            ring.iter()
                .position(|r| r.event_id == last_event_id)
                .map(|at| {
                    let stream = &ring[at].stream_id;
                    ring.iter()
                        .skip(at + 1)
                        .filter(|r| &r.stream_id == stream)
                        .map(|r| r.event.clone())
                        .collect()
                })
        };
        let events = match from_memory {
            Some(events) => events,
            None => match self.store.events_after(last_event_id).await? {
                Some(rows) => rows.into_iter().map(from_row).collect(),
                None => {
                    return Err(format!(
                        "event {last_event_id} is unknown or older than the replay window"
                    )
                    .into());
                }
            },
        };
        Ok(Box::pin(futures::stream::iter(events)))
    }
}

/// Batches events into `mcp_events` and prunes them past [`RETENTION`].
async fn write_events(store: Store, mut rx: mpsc::Receiver<EventRow>, shutdown: CancellationToken) {
    let mut batch = Vec::with_capacity(BATCH);
    let mut last_prune = tokio::time::Instant::now();
    loop {
        let closed = tokio::select! {
            first = rx.recv() => match first {
                Some(row) => { batch.push(row); false }
                None => true,
            },
            _ = shutdown.cancelled() => true,
        };
        while batch.len() < BATCH {
            match rx.try_recv() {
                Ok(row) => batch.push(row),
                Err(_) => break,
            }
        }
        if let Err(error) = store.insert_events(&batch).await {
            tracing::warn!(%error, events = batch.len(), "could not store SSE events for replay");
        }
        batch.clear();
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
