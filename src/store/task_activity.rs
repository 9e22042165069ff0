//! What work on one task cost, from the ledger rows attributed to it (`subject_id`, which the
//! board's tools set: see `crate::ledger::Served`): calls, errors, estimated tokens and cost,
//! the sessions and clients that worked on it, and from its history the time from the first
//! `doing` to `done`. Rows pruned by retention no longer count.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::request_stats::money_from_units;
use super::tasks::FieldChange;
use super::{Id, Money, Store, on_pool};

/// Most sessions listed for one task (the busiest first); the totals count every session.
pub const MAX_SESSIONS: i64 = 100;
/// Most status changes read to find when work started and ended.
const MAX_STATUS_ROWS: i64 = 10_000;

/// Sums over a set of ledger rows.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct ActivitySums {
    pub calls: i64,
    /// Rows whose status is `error`, `tool_error` or `timeout`.
    pub errors: i64,
    /// Rows whose tool reported failure (`tool_error`).
    pub tool_errors: i64,
    pub estimated_tokens: i64,
    #[serde(skip)]
    pub cost_units: i64,
    pub first_call_at: Option<DateTime<Utc>>,
    pub last_call_at: Option<DateTime<Utc>>,
}

/// One session's part of a task's activity.
#[derive(Debug, Clone, Serialize)]
pub struct SessionPart {
    pub session_id: Option<String>,
    pub client_name: Option<String>,
    pub client_type: Option<String>,
    #[serde(flatten)]
    pub sums: ActivitySums,
    pub estimated_cost_usd: Money,
}

#[derive(sqlx::FromRow)]
struct SessionRow {
    session_id: Option<String>,
    client_name: Option<String>,
    client_type: Option<String>,
    #[sqlx(flatten)]
    sums: ActivitySums,
}

/// A task's activity, as `GET /api/tasks/{id}/activity` and `steward tasks show` report it.
#[derive(Debug, Clone, Serialize)]
pub struct TaskActivity {
    pub task_id: Id,
    #[serde(flatten)]
    pub totals: ActivitySums,
    pub estimated_cost_usd: Money,
    /// Sessions that made calls about the task, most calls first (at most [`MAX_SESSIONS`]).
    pub sessions: Vec<SessionPart>,
    /// How many sessions made calls about it.
    pub session_count: i64,
    /// When the task first became `doing` (its creation, if it was created as `doing`).
    pub started_at: Option<DateTime<Utc>>,
    /// When it last became `done`, if it is done now.
    pub done_at: Option<DateTime<Utc>>,
    /// `done_at - started_at` in seconds, when both are known.
    pub doing_to_done_seconds: Option<i64>,
}

/// When work on a task started (first `doing`) and ended (the last `done`, if it is `done`
/// now), from its `created` and `status` history rows in order. A task created as `doing` has
/// no status row for that: its first status change's old value (or, with none, its status
/// now) tells how it was created.
pub fn doing_to_done(
    rows: &[FieldChange],
    status_now: &str,
) -> (Option<DateTime<Utc>>, Option<DateTime<Utc>>) {
    let status_rows = || rows.iter().filter(|r| r.field == "status");
    let created_as = status_rows()
        .next()
        .and_then(|r| r.old_value.as_deref())
        .unwrap_or(status_now);
    let became = |status: &'static str| {
        status_rows()
            .filter(move |r| r.new_value.as_deref() == Some(status))
            .map(|r| r.changed_at)
    };
    let created = rows.iter().find(|r| r.field == "created");
    let started = match created_as {
        "doing" => created.map(|r| r.changed_at),
        _ => None,
    }
    .or_else(|| became("doing").next());
    let done = (status_now == "done")
        .then(|| became("done").next_back())
        .flatten()
        .filter(|done| started.is_some_and(|s| s <= *done));
    (started, done)
}

impl Store {
    /// The activity of task `id` (which the caller has checked exists); `status_now` is its
    /// status.
    pub async fn task_activity(
        &self,
        id: Id,
        status_now: &str,
    ) -> Result<TaskActivity, sqlx::Error> {
        let sums = format!(
            "COUNT(*) AS calls, \
             CAST(COALESCE(SUM(CASE WHEN r.status IN ('error', 'tool_error', 'timeout') THEN 1 ELSE 0 END), 0) AS BIGINT) AS errors, \
             CAST(COALESCE(SUM(CASE WHEN r.status = 'tool_error' THEN 1 ELSE 0 END), 0) AS BIGINT) AS tool_errors, \
             CAST(COALESCE(SUM(r.total_tokens), 0) AS BIGINT) AS estimated_tokens, \
             CAST(COALESCE({cost}, 0) AS BIGINT) AS cost_units, \
             MIN(r.timestamp) AS first_call_at, MAX(r.timestamp) AS last_call_at",
            cost = self.sum_cost_units("r.estimated_cost_usd"),
        );
        let totals = format!("SELECT {sums} FROM mcp_requests r WHERE r.subject_id = $1");
        let by_session = format!(
            "SELECT r.session_id, MAX(s.client_name) AS client_name, MAX(s.client_type) AS client_type, {sums} \
             FROM mcp_requests r LEFT JOIN mcp_sessions s ON s.session_id = r.session_id \
             WHERE r.subject_id = $1 GROUP BY r.session_id ORDER BY calls DESC, last_call_at DESC LIMIT $2"
        );
        let count = "SELECT COUNT(DISTINCT session_id) FROM mcp_requests WHERE subject_id = $1";
        let history = "SELECT field, old_value, new_value, changed_at FROM task_history \
                       WHERE task_id = $1 AND field IN ('created', 'status') ORDER BY id LIMIT $2";
        let (totals, sessions, session_count, history) = on_pool!(self, pool => {
            let totals = sqlx::query_as::<_, ActivitySums>(&totals).bind(id).fetch_one(pool).await?;
            let sessions = sqlx::query_as::<_, SessionRow>(&by_session)
                .bind(id)
                .bind(MAX_SESSIONS)
                .fetch_all(pool)
                .await?;
            let count: i64 = sqlx::query_scalar(count).bind(id).fetch_one(pool).await?;
            let history = sqlx::query_as::<_, FieldChange>(history)
                .bind(id)
                .bind(MAX_STATUS_ROWS)
                .fetch_all(pool)
                .await?;
            (totals, sessions, count, history)
        });
        let (started_at, done_at) = doing_to_done(&history, status_now);
        Ok(TaskActivity {
            task_id: id,
            estimated_cost_usd: money_from_units(totals.cost_units).stored(),
            totals,
            sessions: sessions
                .into_iter()
                .map(|row| SessionPart {
                    estimated_cost_usd: money_from_units(row.sums.cost_units).stored(),
                    session_id: row.session_id,
                    client_name: row.client_name,
                    client_type: row.client_type,
                    sums: row.sums,
                })
                .collect(),
            session_count,
            doing_to_done_seconds: started_at
                .zip(done_at)
                .map(|(start, done)| (done - start).num_seconds()),
            started_at,
            done_at,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(field: &str, old: Option<&str>, new: Option<&str>, minute: i64) -> FieldChange {
        FieldChange {
            field: field.into(),
            old_value: old.map(Into::into),
            new_value: new.map(Into::into),
            changed_at: DateTime::<Utc>::UNIX_EPOCH + chrono::Duration::minutes(minute),
        }
    }

    fn minutes(t: Option<DateTime<Utc>>) -> Option<i64> {
        t.map(|t| (t - DateTime::<Utc>::UNIX_EPOCH).num_minutes())
    }

    #[test]
    fn work_runs_from_the_first_doing_to_the_last_done() {
        let rows = [
            row("created", None, Some("t"), 0),
            row("status", Some("todo"), Some("doing"), 5),
            row("status", Some("doing"), Some("done"), 30),
            row("status", Some("done"), Some("doing"), 40),
            row("status", Some("doing"), Some("done"), 70),
        ];
        let (start, done) = doing_to_done(&rows, "done");
        assert_eq!((minutes(start), minutes(done)), (Some(5), Some(70)));
        let (_, reopened) = doing_to_done(&rows[..4], "doing");
        assert_eq!(reopened, None, "not done now");
    }

    #[test]
    fn a_task_created_as_doing_started_when_it_was_created() {
        let created_doing = [
            row("created", None, Some("t"), 2),
            row("status", Some("doing"), Some("done"), 9),
        ];
        let (start, done) = doing_to_done(&created_doing, "done");
        assert_eq!((minutes(start), minutes(done)), (Some(2), Some(9)));
        let never_changed = [row("created", None, Some("t"), 3)];
        assert_eq!(minutes(doing_to_done(&never_changed, "doing").0), Some(3));
        let (start, done) = doing_to_done(&never_changed, "done");
        assert_eq!((start, done), (None, None), "created done: never worked on");
    }
}
