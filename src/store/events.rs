//! `mcp_events`: recent server-sent events, for `Last-Event-ID` resumption, and
//! `mcp_event_streams`: the session (and principal) each stream was sent to, so a replay is
//! served only within that session.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::QueryBuilder;
use sqlx::types::Json;

use super::{Store, on_pool};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct EventRow {
    pub event_id: String,
    pub stream_id: String,
    pub seq: i64,
    pub message: Option<Json<Value>>,
    pub retry_ms: Option<i64>,
    pub created_at: DateTime<Utc>,
}

/// Who a stream of events was sent to.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct StreamOwnerRow {
    pub stream_id: String,
    pub session_id: String,
    pub principal: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// The columns [`Store::insert_events`] writes.
const EVENTS: &str = "mcp_events (event_id, stream_id, seq, message, retry_ms, created_at)";
/// The columns [`Store::insert_event_streams`] writes.
const STREAMS: &str = "mcp_event_streams (stream_id, session_id, principal, created_at)";

/// Inserts `$rows` into `$into` (a table and its columns) in one statement, skipping each row
/// whose `$key` is stored already; `|$b, $row| $bind` binds one row's values in column order.
macro_rules! insert_new {
    ($store:expr, $into:expr, $key:literal, $rows:expr, |$b:ident, $row:ident| $bind:expr) => {{
        if $rows.is_empty() {
            return Ok(());
        }
        on_pool!($store, pool => {
            let mut query = QueryBuilder::new(format!("INSERT INTO {} ", $into));
            query.push_values($rows, |mut $b, $row| {
                $bind;
            });
            query.push(concat!(" ON CONFLICT (", $key, ") DO NOTHING"));
            query.build().execute(pool).await.map(|_| ())
        })
    }};
}

impl Store {
    /// Stores events (at most a few hundred per call); ids already stored are skipped.
    pub async fn insert_events(&self, events: &[EventRow]) -> Result<(), sqlx::Error> {
        insert_new!(self, EVENTS, "event_id", events, |b, e| b
            .push_bind(&e.event_id)
            .push_bind(&e.stream_id)
            .push_bind(e.seq)
            .push_bind(&e.message)
            .push_bind(e.retry_ms)
            .push_bind(e.created_at))
    }

    /// Records who streams were sent to (the first owner of a stream stays).
    pub async fn insert_event_streams(
        &self,
        streams: &[StreamOwnerRow],
    ) -> Result<(), sqlx::Error> {
        insert_new!(self, STREAMS, "stream_id", streams, |b, s| b
            .push_bind(&s.stream_id)
            .push_bind(&s.session_id)
            .push_bind(&s.principal)
            .push_bind(s.created_at))
    }

    /// Who the stream holding `event_id` was sent to. `Ok(None)` when the event is unknown
    /// (never stored, past retention) or its stream has no recorded owner.
    pub async fn event_owner(&self, event_id: &str) -> Result<Option<StreamOwnerRow>, sqlx::Error> {
        let find = "SELECT s.* FROM mcp_events e JOIN mcp_event_streams s ON s.stream_id = e.stream_id WHERE e.event_id = $1";
        on_pool!(self, pool => sqlx::query_as::<_, StreamOwnerRow>(find).bind(event_id).fetch_optional(pool).await)
    }

    /// The events of `last_event_id`'s stream that came after it, in order, if that stream
    /// was sent to `session_id`. `Ok(None)` when the event is unknown (never stored, or past
    /// retention) or belongs to another session's stream: both look the same to the caller.
    pub async fn events_after(
        &self,
        last_event_id: &str,
        session_id: &str,
    ) -> Result<Option<Vec<EventRow>>, sqlx::Error> {
        let find = "SELECT e.* FROM mcp_events e JOIN mcp_event_streams s ON s.stream_id = e.stream_id WHERE e.event_id = $1 AND s.session_id = $2";
        let after = "SELECT * FROM mcp_events WHERE stream_id = $1 AND seq > $2 ORDER BY seq";
        on_pool!(self, pool => {
            let Some(last) = sqlx::query_as::<_, EventRow>(find).bind(last_event_id).bind(session_id).fetch_optional(pool).await? else {
                return Ok(None);
            };
            let rows = sqlx::query_as::<_, EventRow>(after).bind(&last.stream_id).bind(last.seq).fetch_all(pool).await?;
            Ok(Some(rows))
        })
    }

    /// Deletes events older than `before`, and the owners of streams left without events. Returns how many events.
    pub async fn prune_events(&self, before: DateTime<Utc>) -> Result<u64, sqlx::Error> {
        on_pool!(self, pool => {
            let events = sqlx::query("DELETE FROM mcp_events WHERE created_at < $1")
                .bind(before)
                .execute(pool)
                .await?
                .rows_affected();
            // A long-lived stream (a session's GET stream) keeps its owner while it has events.
            sqlx::query("DELETE FROM mcp_event_streams WHERE created_at < $1 AND NOT EXISTS (SELECT 1 FROM mcp_events e WHERE e.stream_id = mcp_event_streams.stream_id)")
                .bind(before)
                .execute(pool)
                .await?;
            Ok(events)
        })
    }
}
