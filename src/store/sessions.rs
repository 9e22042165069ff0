//! `mcp_sessions` and `cleanup_runs`: the durable side of Steward's sessions.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use sqlx::types::Json;

use super::board_tx::BoardTx;
use super::{Paged, Store, fetch_page, on_pool};

/// A session row as stored.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct SessionRow {
    pub session_id: String,
    pub kind: String,
    pub protocol_version: Option<String>,
    pub client_name: Option<String>,
    pub client_version: Option<String>,
    pub client_type: String,
    pub client_capabilities: Json<Value>,
    pub initialize_params: Option<Json<Value>>,
    pub principal: Option<String>,
    pub status: String,
    pub connected_at: DateTime<Utc>,
    pub last_activity: DateTime<Utc>,
    pub disconnected_at: Option<DateTime<Utc>>,
    pub disconnect_reason: Option<String>,
}

/// What a new session row records.
#[derive(Debug, Clone)]
pub struct NewSession {
    pub session_id: String,
    pub kind: &'static str,
    pub protocol_version: Option<String>,
    pub client_name: Option<String>,
    pub client_version: Option<String>,
    pub client_type: String,
    pub client_capabilities: Value,
    pub initialize_params: Option<Value>,
    pub principal: Option<String>,
    pub at: DateTime<Utc>,
}

/// Lifecycle thresholds: a session last active before `idle_before` is idle, before
/// `timeout_before` is disconnected, and one connected before `expire_before` is expired.
#[derive(Debug, Clone, Copy)]
pub struct Lifecycle {
    pub now: DateTime<Utc>,
    pub idle_before: DateTime<Utc>,
    pub timeout_before: DateTime<Utc>,
    pub expire_before: DateTime<Utc>,
}

/// What one cleanup run changed.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq, sqlx::FromRow)]
pub struct CleanupCounts {
    pub idled: i64,
    pub reactivated: i64,
    pub timed_out: i64,
    pub expired: i64,
}

/// A session the lifecycle just ended, for `mcp.server.session.duration`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndedSession {
    pub connected_at: DateTime<Utc>,
    pub disconnected_at: DateTime<Utc>,
    pub reason: &'static str,
}

impl EndedSession {
    fn all(
        connected: Vec<DateTime<Utc>>,
        reason: &'static str,
        at: DateTime<Utc>,
    ) -> impl Iterator<Item = Self> {
        connected.into_iter().map(move |connected_at| Self {
            connected_at,
            disconnected_at: at,
            reason,
        })
    }

    /// How long the session lasted.
    pub fn lifetime(&self) -> std::time::Duration {
        (self.disconnected_at - self.connected_at)
            .to_std()
            .unwrap_or_default()
    }
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct CleanupRun {
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    /// All 0 for a run that failed.
    #[sqlx(flatten)]
    #[serde(flatten)]
    pub counts: CleanupCounts,
    pub error: Option<String>,
}

/// Filter for listing sessions.
#[derive(Debug, Clone, Default)]
pub struct SessionFilter {
    pub status: Option<String>,
    pub client_type: Option<String>,
    pub kind: Option<String>,
}

/// Every value of `mcp_sessions.status`.
pub const SESSION_STATUSES: [&str; 4] = ["active", "idle", "disconnected", "revoked"];
/// Every value of `mcp_sessions.kind`: an HTTP session, or a logical one (stateless and stdio
/// clients).
pub const SESSION_KINDS: [&str; 2] = ["session", "logical"];

const LIVE: &str = "status IN ('active', 'idle')";

/// Arbitrary constant naming the cleanup job's PostgreSQL advisory lock.
const CLEANUP_LOCK_KEY: i64 = 0x5354_4557_4152_4431; // "STEWARD1"

impl Store {
    /// Inserts a session row; an existing id is left as it is (idempotent on retry).
    pub async fn insert_session(&self, s: &NewSession) -> Result<(), sqlx::Error> {
        let sql = "INSERT INTO mcp_sessions (session_id, kind, protocol_version, client_name, client_version, \
                   client_type, client_capabilities, initialize_params, principal, status, connected_at, last_activity) \
                   VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'active', $10, $10) ON CONFLICT (session_id) DO NOTHING";
        on_pool!(self, pool => sqlx::query(sql)
            .bind(&s.session_id)
            .bind(s.kind)
            .bind(&s.protocol_version)
            .bind(&s.client_name)
            .bind(&s.client_version)
            .bind(&s.client_type)
            .bind(Json(&s.client_capabilities))
            .bind(s.initialize_params.as_ref().map(Json))
            .bind(&s.principal)
            .bind(s.at)
            .execute(pool)
            .await
            .map(|_| ()))
    }

    /// Returns `Ok(None)` when no session has this id.
    pub async fn get_session(&self, id: &str) -> Result<Option<SessionRow>, sqlx::Error> {
        let sql = "SELECT * FROM mcp_sessions WHERE session_id = $1";
        on_pool!(self, pool => sqlx::query_as::<_, SessionRow>(sql).bind(id).fetch_optional(pool).await)
    }

    /// Loads a live session for restore and marks it active now, in one statement.
    /// Sessions past their timeout or max age are not returned (even if cleanup has not
    /// run yet). Returns `Ok(None)` when there is no such live session.
    pub async fn resume_session(
        &self,
        id: &str,
        lifecycle: &Lifecycle,
    ) -> Result<Option<SessionRow>, sqlx::Error> {
        let sql = format!(
            "UPDATE mcp_sessions SET status = 'active', last_activity = $2 \
             WHERE session_id = $1 AND {LIVE} AND last_activity >= $3 AND connected_at >= $4 RETURNING *"
        );
        on_pool!(self, pool => sqlx::query_as::<_, SessionRow>(&sql)
            .bind(id)
            .bind(lifecycle.now)
            .bind(lifecycle.timeout_before)
            .bind(lifecycle.expire_before)
            .fetch_optional(pool)
            .await)
    }

    /// Moves `last_activity` to `at` for the live sessions seen since the last flush, in one
    /// statement per 500 sessions (the flush runs every second, so `at` is within a second of
    /// each session's last request).
    pub async fn touch_sessions(
        &self,
        ids: &[String],
        at: DateTime<Utc>,
    ) -> Result<u64, sqlx::Error> {
        let mut changed = 0;
        for chunk in ids.chunks(500) {
            changed += on_pool!(self, pool => {
                let mut query = sqlx::QueryBuilder::new("UPDATE mcp_sessions SET last_activity = ");
                query.push_bind(at);
                query.push(format!(", status = 'active' WHERE {LIVE} AND last_activity < "));
                query.push_bind(at);
                query.push(" AND session_id IN (");
                let mut list = query.separated(", ");
                for id in chunk {
                    list.push_bind(id);
                }
                query.push(")");
                query.build().execute(pool).await?.rows_affected()
            });
        }
        Ok(changed)
    }

    /// Ends a live session with `status` (`disconnected` or `revoked`) and `reason`, and the
    /// task claims it held. Returns when it had connected, or `None` if it was not live.
    pub async fn end_session(
        &self,
        id: &str,
        status: &str,
        reason: &str,
    ) -> Result<Option<DateTime<Utc>>, sqlx::Error> {
        let sql = format!(
            "UPDATE mcp_sessions SET status = $2, disconnect_reason = $3, disconnected_at = $4 \
             WHERE session_id = $1 AND {LIVE} RETURNING connected_at"
        );
        let now = Utc::now();
        on_pool!(self, pool => {
            let mut tx = crate::store::WritePool::begin_write(pool).await?;
            let connected_at = sqlx::query_scalar(&sql)
                .bind(id)
                .bind(status)
                .bind(reason)
                .bind(now)
                .fetch_optional(&mut *tx)
                .await?;
            // The session's task claims end with it, in the same transaction.
            if connected_at.is_some() {
                tx.end_claims_of_ended_sessions(now).await?;
            }
            tx.commit().await?;
            Ok(connected_at)
        })
    }

    /// Ids of sessions ended (by any replica) at or after `since`.
    pub async fn ended_since(&self, since: DateTime<Utc>) -> Result<Vec<String>, sqlx::Error> {
        let sql = "SELECT session_id FROM mcp_sessions WHERE disconnected_at >= $1";
        on_pool!(self, pool => sqlx::query_scalar(sql).bind(since).fetch_all(pool).await)
    }

    /// Sessions, most recently active first.
    pub async fn list_sessions(
        &self,
        filter: &SessionFilter,
        limit: i64,
        offset: i64,
    ) -> Result<(Vec<SessionRow>, i64), sqlx::Error> {
        let found: Paged<SessionRow> = on_pool!(self, pool => fetch_page!(pool, SessionRow, "mcp_sessions", "last_activity DESC, session_id", limit, offset, |q| {
            q.push(" WHERE TRUE");
            let given = [("status", &filter.status), ("client_type", &filter.client_type), ("kind", &filter.kind)];
            for (column, value) in given {
                if let Some(value) = value {
                    q.push(format_args!(" AND {column} = ")).push_bind(value);
                }
            }
        }))?;
        Ok((found.items, found.total))
    }

    /// Live (active or idle) sessions per client type.
    pub async fn live_sessions_by_client_type(&self) -> Result<Vec<(String, i64)>, sqlx::Error> {
        let sql = format!(
            "SELECT client_type, COUNT(*) FROM mcp_sessions WHERE {LIVE} GROUP BY client_type"
        );
        on_pool!(self, pool => sqlx::query_as::<_, (String, i64)>(&sql).fetch_all(pool).await)
    }

    /// Applies the session lifecycle in set-based statements and records the run.
    /// On PostgreSQL an advisory lock makes concurrent runs from several replicas take turns;
    /// on SQLite the write transaction does. Returns `Ok(None)` when another replica held the lock.
    pub async fn run_session_cleanup(
        &self,
        l: &Lifecycle,
    ) -> Result<Option<(CleanupCounts, Vec<EndedSession>)>, sqlx::Error> {
        let expire = format!(
            "UPDATE mcp_sessions SET status = 'disconnected', disconnect_reason = 'expired', disconnected_at = $1 \
             WHERE {LIVE} AND connected_at < $2 RETURNING connected_at"
        );
        let timeout = format!(
            "UPDATE mcp_sessions SET status = 'disconnected', disconnect_reason = 'timeout_no_activity', \
             disconnected_at = $1 WHERE {LIVE} AND last_activity < $2 RETURNING connected_at"
        );
        let idle = "UPDATE mcp_sessions SET status = 'idle' WHERE status = 'active' AND last_activity < $1";
        let reactivate = "UPDATE mcp_sessions SET status = 'active' WHERE status = 'idle' AND last_activity >= $1";
        let record = "INSERT INTO cleanup_runs (started_at, finished_at, idled, reactivated, timed_out, expired) \
                      VALUES ($1, $2, $3, $4, $5, $6)";
        on_pool!(self, pool => {
            let mut tx = crate::store::WritePool::begin_write(pool).await?;
            if !tx.try_lock().await? {
                return Ok(None);
            }
            let expired: Vec<DateTime<Utc>> = sqlx::query_scalar(&expire).bind(l.now).bind(l.expire_before).fetch_all(&mut *tx).await?;
            let timed_out: Vec<DateTime<Utc>> = sqlx::query_scalar(&timeout).bind(l.now).bind(l.timeout_before).fetch_all(&mut *tx).await?;
            let counts = CleanupCounts {
                expired: expired.len() as i64,
                timed_out: timed_out.len() as i64,
                idled: affected(sqlx::query(idle).bind(l.idle_before).execute(&mut *tx).await?),
                reactivated: affected(sqlx::query(reactivate).bind(l.idle_before).execute(&mut *tx).await?),
            };
            if !expired.is_empty() || !timed_out.is_empty() {
                tx.end_claims_of_ended_sessions(l.now).await?;
            }
            sqlx::query(record)
                .bind(l.now)
                .bind(Utc::now())
                .bind(counts.idled)
                .bind(counts.reactivated)
                .bind(counts.timed_out)
                .bind(counts.expired)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            let ended = EndedSession::all(expired, "expired", l.now)
                .chain(EndedSession::all(timed_out, "timeout_no_activity", l.now))
                .collect();
            Ok(Some((counts, ended)))
        })
    }

    /// Records a cleanup run that failed, so the failure is visible, not just logged.
    pub async fn record_failed_cleanup(
        &self,
        started_at: DateTime<Utc>,
        error: &str,
    ) -> Result<(), sqlx::Error> {
        let sql = "INSERT INTO cleanup_runs (started_at, finished_at, error) VALUES ($1, $2, $3)";
        on_pool!(self, pool => sqlx::query(sql).bind(started_at).bind(Utc::now()).bind(error).execute(pool).await.map(|_| ()))
    }

    /// The most recent cleanup run, if any.
    pub async fn last_cleanup_run(&self) -> Result<Option<CleanupRun>, sqlx::Error> {
        let sql = "SELECT started_at, finished_at, idled, reactivated, timed_out, expired, error \
                   FROM cleanup_runs ORDER BY id DESC LIMIT 1";
        on_pool!(self, pool => sqlx::query_as::<_, CleanupRun>(sql).fetch_optional(pool).await)
    }
}

fn affected<R: RowsAffected>(result: R) -> i64 {
    i64::try_from(result.rows()).unwrap_or(i64::MAX)
}

/// Both engines' query results report affected rows; this names that for [`affected`].
trait RowsAffected {
    fn rows(&self) -> u64;
}
impl RowsAffected for sqlx::sqlite::SqliteQueryResult {
    fn rows(&self) -> u64 {
        self.rows_affected()
    }
}
impl RowsAffected for sqlx::postgres::PgQueryResult {
    fn rows(&self) -> u64 {
        self.rows_affected()
    }
}

/// Takes the cleanup lock for this transaction: PostgreSQL's transaction-scoped advisory lock
/// (released on commit); SQLite's `BEGIN IMMEDIATE` already serialises writers.
trait CleanupLock {
    async fn try_lock(&mut self) -> Result<bool, sqlx::Error>;
}

impl CleanupLock for sqlx::Transaction<'static, sqlx::Sqlite> {
    async fn try_lock(&mut self) -> Result<bool, sqlx::Error> {
        Ok(true)
    }
}

impl CleanupLock for sqlx::Transaction<'static, sqlx::Postgres> {
    async fn try_lock(&mut self) -> Result<bool, sqlx::Error> {
        sqlx::query_scalar("SELECT pg_try_advisory_xact_lock($1)")
            .bind(CLEANUP_LOCK_KEY)
            .fetch_one(&mut **self)
            .await
    }
}

/// Live sessions by time since their last activity (see [`Store::session_health`]).
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq, sqlx::FromRow)]
pub struct AgeBuckets {
    pub healthy: i64,
    pub aging: i64,
    pub stale: i64,
}

/// What `/api/sessions/health` reports from the database.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SessionHealth {
    /// Live (active or idle) sessions by time since their last activity.
    pub age: AgeBuckets,
    /// Every session by status (`active`, `idle`, `disconnected`, `revoked`).
    pub by_status: Vec<(String, i64)>,
    /// Sessions ended since the window's start, by reason.
    pub disconnect_reasons: Vec<(String, i64)>,
    /// Sessions live at some point in the window: still live, or ended within it.
    pub seen_in_window: i64,
}

impl Store {
    /// Session health as of `now`: live sessions last active after `healthy_after` are
    /// healthy, after `stale_before` aging, before it stale; disconnects since `window_start`.
    pub async fn session_health(
        &self,
        healthy_after: DateTime<Utc>,
        stale_before: DateTime<Utc>,
        window_start: DateTime<Utc>,
    ) -> Result<SessionHealth, sqlx::Error> {
        let buckets = format!(
            "SELECT COALESCE(SUM(CASE WHEN last_activity >= $1 THEN 1 ELSE 0 END), 0) AS healthy, \
             COALESCE(SUM(CASE WHEN last_activity < $1 AND last_activity >= $2 THEN 1 ELSE 0 END), 0) AS aging, \
             COALESCE(SUM(CASE WHEN last_activity < $2 THEN 1 ELSE 0 END), 0) AS stale \
             FROM mcp_sessions WHERE {LIVE}"
        );
        let statuses = "SELECT status, COUNT(*) FROM mcp_sessions GROUP BY status ORDER BY status";
        let reasons = "SELECT COALESCE(disconnect_reason, 'unknown') AS reason, COUNT(*) AS n FROM mcp_sessions \
                       WHERE disconnected_at >= $1 GROUP BY reason ORDER BY n DESC, reason";
        let seen =
            format!("SELECT COUNT(*) FROM mcp_sessions WHERE {LIVE} OR disconnected_at >= $1");
        on_pool!(self, pool => Ok(SessionHealth {
            age: sqlx::query_as(&buckets).bind(healthy_after).bind(stale_before).fetch_one(pool).await?,
            by_status: sqlx::query_as(statuses).fetch_all(pool).await?,
            disconnect_reasons: sqlx::query_as(reasons).bind(window_start).fetch_all(pool).await?,
            seen_in_window: sqlx::query_scalar(&seen).bind(window_start).fetch_one(pool).await?,
        }))
    }
}
