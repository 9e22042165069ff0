//! `mcp_events`: recent server-sent events, for `Last-Event-ID` resumption.

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

impl Store {
    /// Stores events (at most a few hundred per call); ids already stored are skipped.
    pub async fn insert_events(&self, events: &[EventRow]) -> Result<(), sqlx::Error> {
        if events.is_empty() {
            return Ok(());
        }
        on_pool!(self, pool => {
            let mut query = QueryBuilder::new("INSERT INTO mcp_events (event_id, stream_id, seq, message, retry_ms, created_at) ");
            query.push_values(events, |mut b, e| {
                b.push_bind(&e.event_id)
                    .push_bind(&e.stream_id)
                    .push_bind(e.seq)
                    .push_bind(&e.message)
                    .push_bind(e.retry_ms)
                    .push_bind(e.created_at);
            });
            query.push(" ON CONFLICT (event_id) DO NOTHING");
            query.build().execute(pool).await.map(|_| ())
        })
    }

    /// The events of `last_event_id`'s stream that came after it, in order. `Ok(None)` when
    /// the event is unknown (never stored, or past retention).
    pub async fn events_after(
        &self,
        last_event_id: &str,
    ) -> Result<Option<Vec<EventRow>>, sqlx::Error> {
        let find = "SELECT * FROM mcp_events WHERE event_id = $1";
        let after = "SELECT * FROM mcp_events WHERE stream_id = $1 AND seq > $2 ORDER BY seq";
        on_pool!(self, pool => {
            let Some(last) = sqlx::query_as::<_, EventRow>(find).bind(last_event_id).fetch_optional(pool).await? else {
                return Ok(None);
            };
            let rows = sqlx::query_as::<_, EventRow>(after).bind(&last.stream_id).bind(last.seq).fetch_all(pool).await?;
            Ok(Some(rows))
        })
    }

    /// Deletes events older than `before`. Returns how many.
    pub async fn prune_events(&self, before: DateTime<Utc>) -> Result<u64, sqlx::Error> {
        on_pool!(self, pool => sqlx::query("DELETE FROM mcp_events WHERE created_at < $1")
            .bind(before)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))
    }
}
