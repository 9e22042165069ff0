//! What the ledger knows of each upstream of gateway mode: its calls in a window (for
//! `/api/upstreams`' counts and latency percentiles) and the sessions Steward re-established
//! with it. Read from the database, so the numbers survive restarts and cover every replica.

use chrono::{DateTime, Utc};

use super::{Store, on_pool};

/// At most this many of the newest calls in the window are read; past it the percentiles
/// describe the newest ones (the response says so).
pub const MAX_CALLS: i64 = 200_000;

/// One ledger row of a request passed on to an upstream.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct UpstreamCall {
    pub upstream: String,
    pub status: String,
    /// The whole request as the client saw it.
    pub duration_us: i64,
    /// The upstream's share of it (none when the request never reached the upstream).
    pub upstream_us: Option<i64>,
    pub error_message: Option<String>,
    pub timestamp: DateTime<Utc>,
}

impl Store {
    /// The newest [`MAX_CALLS`] upstream calls since `since`, newest first.
    pub async fn upstream_calls(
        &self,
        since: DateTime<Utc>,
    ) -> Result<Vec<UpstreamCall>, sqlx::Error> {
        let sql = "SELECT upstream, status, duration_us, upstream_us, error_message, timestamp \
                   FROM mcp_requests WHERE upstream IS NOT NULL AND timestamp >= $1 \
                   ORDER BY timestamp DESC LIMIT $2";
        on_pool!(self, pool => sqlx::query_as::<_, UpstreamCall>(sql)
            .bind(since)
            .bind(MAX_CALLS)
            .fetch_all(pool)
            .await)
    }

    /// Per upstream, the times it forgot a client's session (it restarted) and Steward
    /// initialized it again, over every session recorded.
    pub async fn upstream_sessions_reestablished(&self) -> Result<Vec<(String, i64)>, sqlx::Error> {
        let sql = "SELECT upstream, CAST(SUM(reinitialized) AS BIGINT) FROM mcp_upstream_sessions \
                   GROUP BY upstream ORDER BY upstream";
        on_pool!(self, pool => sqlx::query_as::<_, (String, i64)>(sql).fetch_all(pool).await)
    }
}
