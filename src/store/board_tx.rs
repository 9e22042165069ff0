//! The steps of a task write that several store operations share (locking the row, recording
//! history, ending and taking claims, replacing blockers), as methods of a write transaction on
//! either engine. [`board_tx!`] writes each method once and implements it for both engines, so
//! the SQL cannot drift apart.

use chrono::{DateTime, Utc};

use super::Id;
use super::tasks::Task;
use crate::board::{Actor, ClaimEnd};

/// One `task_history` row.
pub(crate) struct HistoryRow<'a> {
    pub field: &'a str,
    pub old_value: Option<String>,
    pub new_value: Option<String>,
    pub reason: Option<&'a str>,
}

/// Where a task hangs in its project (archived or not).
#[derive(Debug, Clone, Copy, sqlx::FromRow)]
pub(crate) struct TaskLink {
    pub project_id: Id,
    pub parent_task_id: Option<Id>,
    pub archived: bool,
}

/// Which tasks `next_task` may hand out.
#[derive(Debug, Clone, Default)]
pub struct NextFilter {
    pub project_id: Option<Id>,
    /// Folded (lowercase) assignee.
    pub assignee: Option<String>,
    /// Folded (lowercase) feature.
    pub feature: Option<String>,
}

/// Task-level steps inside a write transaction (`BEGIN IMMEDIATE` on SQLite, row locks on
/// PostgreSQL).
pub(crate) trait BoardTx {
    /// The live (unarchived) task, locked for this transaction on PostgreSQL.
    async fn locked_task(&mut self, id: Id) -> Result<Option<Task>, sqlx::Error>;
    async fn record(
        &mut self,
        task_id: Id,
        row: HistoryRow<'_>,
        actor: &Actor,
        now: DateTime<Utc>,
    ) -> Result<(), sqlx::Error>;
    /// Clears the task's claim (if it still has the same token) and records why it ended.
    async fn end_claim(
        &mut self,
        task: &Task,
        reason: &str,
        actor: &Actor,
        now: DateTime<Utc>,
    ) -> Result<(), sqlx::Error>;
    /// The conditional claim: succeeds only when the task is open and unclaimed, its lease has
    /// run out, or `session` holds it already. Returns the claimed task.
    async fn take_claim(
        &mut self,
        id: Id,
        actor: &Actor,
        session: &str,
        lease_until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<Option<Task>, sqlx::Error>;
    /// Ends every claim whose lease ran out before `now`; returns `(project_id, task_id)` of
    /// each.
    async fn end_expired_leases(
        &mut self,
        now: DateTime<Utc>,
    ) -> Result<Vec<(Id, Id)>, sqlx::Error>;
    /// Ends every claim held by a session that has ended; returns how many.
    async fn end_claims_of_ended_sessions(
        &mut self,
        now: DateTime<Utc>,
    ) -> Result<u64, sqlx::Error>;
    /// The id of the task `next_task` would hand out (skipping rows other transactions have
    /// locked on PostgreSQL).
    async fn next_candidate(
        &mut self,
        filter: &NextFilter,
        now: DateTime<Utc>,
    ) -> Result<Option<Id>, sqlx::Error>;
    /// `(id, title)` of the live tasks among `ids`.
    async fn live_titles(&mut self, ids: &[Id]) -> Result<Vec<(Id, String)>, sqlx::Error>;
    /// The task's project and parent, archived or not.
    async fn task_link(&mut self, id: Id) -> Result<Option<TaskLink>, sqlx::Error>;
    /// `(task_id, blocker_id)` edges leaving any of `ids`.
    async fn edges_from(&mut self, ids: &[Id]) -> Result<Vec<(Id, Id)>, sqlx::Error>;
    /// Replaces the task's blockers with `blockers`.
    async fn set_blockers(&mut self, id: Id, blockers: &[Id]) -> Result<(), sqlx::Error>;
    /// `(project_id, task_id)` of the tasks `id` blocks.
    async fn dependants(&mut self, id: Id) -> Result<Vec<(Id, Id)>, sqlx::Error>;
}

const INSERT_HISTORY: &str = "INSERT INTO task_history \
    (task_id, field, old_value, new_value, changed_at, session_id, client_name, reason) \
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";

const CLEAR_CLAIM: &str = "UPDATE tasks SET claimed_by = NULL, claimed_client = NULL, \
    claimed_principal = NULL, claim_token = NULL, claimed_at = NULL, lease_until = NULL \
    WHERE id = $1 AND claim_token = $2";

const TAKE_CLAIM: &str = "UPDATE tasks SET claimed_by = $2, claimed_client = $3, \
    claimed_principal = $4, claim_token = $5, claimed_at = $6, lease_until = $7, updated_at = $6 \
    WHERE id = $1 AND archived = FALSE AND status <> 'done' \
    AND (claimed_by IS NULL OR claimed_by = $2 OR lease_until < $6) RETURNING *";

/// A claim that is ending, with the reason recorded for it.
#[derive(sqlx::FromRow)]
struct Ending {
    id: Id,
    claimed_by: String,
    claim_token: Id,
    reason: String,
}

/// A claim the sweep ended.
#[derive(sqlx::FromRow)]
struct Expired {
    id: Id,
    project_id: Id,
    claimed_by: String,
}

// The sweep's one conditional UPDATE: it ends the claims (token and lease gone) and, keeping
// `claimed_by` for one more statement, returns who held each for its history row. Replicas
// sweeping at once each end (and so record) only the rows their own UPDATE changed.
const EXPIRE: &str = "UPDATE tasks SET claim_token = NULL, claimed_at = NULL, lease_until = NULL \
    WHERE claimed_by IS NOT NULL AND lease_until < $1 RETURNING id, project_id, claimed_by";
const FORGET_HOLDERS: &str = "UPDATE tasks SET claimed_by = NULL, claimed_client = NULL, \
    claimed_principal = NULL WHERE claim_token IS NULL AND id IN (";

// The reason names how the session ended: `session_client_delete`, `session_revoked`,
// `session_timeout_no_activity`, `session_expired` or (a stdio process that stopped) `session_ended`.
const OF_ENDED_SESSIONS: &str = "SELECT t.id, t.claimed_by, t.claim_token, \
    'session_' || COALESCE(s.disconnect_reason, s.status) AS reason \
    FROM tasks t JOIN mcp_sessions s ON s.session_id = t.claimed_by \
    WHERE t.claimed_by IS NOT NULL AND s.status IN ('disconnected', 'revoked')";

// A todo task nobody holds (or whose lease ran out) with no open blocker, best first.
const NEXT: &str = "SELECT t.id FROM tasks t WHERE t.archived = FALSE AND t.status = 'todo' \
    AND ($1 IS NULL OR t.project_id = $1) AND ($2 IS NULL OR t.assignee_key = $2) \
    AND ($3 IS NULL OR t.feature_key = $3) \
    AND (t.claimed_by IS NULL OR t.lease_until < $4) \
    AND NOT EXISTS (SELECT 1 FROM task_dependencies d JOIN tasks b ON b.id = d.blocker_id \
        WHERE d.task_id = t.id AND b.status <> 'done' AND b.archived = FALSE) \
    ORDER BY t.task_order DESC, t.created_at, t.id LIMIT 1";

macro_rules! board_tx {
    ($db:ty, $lock:literal, $lock_t:literal, $skip_locked:literal) => {
        impl<'c> BoardTx for sqlx::Transaction<'c, $db> {
            async fn locked_task(&mut self, id: Id) -> Result<Option<Task>, sqlx::Error> {
                let sql = concat!("SELECT * FROM tasks WHERE id = $1 AND archived = FALSE", $lock);
                sqlx::query_as::<_, Task>(sql).bind(id).fetch_optional(&mut **self).await
            }

            async fn record(
                &mut self,
                task_id: Id,
                row: HistoryRow<'_>,
                actor: &Actor,
                now: DateTime<Utc>,
            ) -> Result<(), sqlx::Error> {
                sqlx::query(INSERT_HISTORY)
                    .bind(task_id)
                    .bind(row.field)
                    .bind(row.old_value)
                    .bind(row.new_value)
                    .bind(now)
                    .bind(&actor.session_id)
                    .bind(&actor.client_name)
                    .bind(row.reason)
                    .execute(&mut **self)
                    .await
                    .map(|_| ())
            }

            async fn end_claim(
                &mut self,
                task: &Task,
                reason: &str,
                actor: &Actor,
                now: DateTime<Utc>,
            ) -> Result<(), sqlx::Error> {
                let Some(token) = task.claim_token else {
                    return Ok(());
                };
                let cleared = sqlx::query(CLEAR_CLAIM)
                    .bind(task.id)
                    .bind(token)
                    .execute(&mut **self)
                    .await?;
                if cleared.rows_affected() == 0 {
                    return Ok(());
                }
                let row = HistoryRow {
                    field: "claimed_by",
                    old_value: task.claimed_by.clone(),
                    new_value: None,
                    reason: Some(reason),
                };
                self.record(task.id, row, actor, now).await
            }

            async fn take_claim(
                &mut self,
                id: Id,
                actor: &Actor,
                session: &str,
                lease_until: DateTime<Utc>,
                now: DateTime<Utc>,
            ) -> Result<Option<Task>, sqlx::Error> {
                let task = sqlx::query_as::<_, Task>(TAKE_CLAIM)
                    .bind(id)
                    .bind(session)
                    .bind(&actor.client_name)
                    .bind(&actor.principal)
                    .bind(Id::new())
                    .bind(now)
                    .bind(lease_until)
                    .fetch_optional(&mut **self)
                    .await?;
                if task.is_some() {
                    let row = HistoryRow {
                        field: "claimed_by",
                        old_value: None,
                        new_value: Some(session.to_string()),
                        reason: Some("claimed"),
                    };
                    self.record(id, row, actor, now).await?;
                }
                Ok(task)
            }

            async fn end_expired_leases(
                &mut self,
                now: DateTime<Utc>,
            ) -> Result<Vec<(Id, Id)>, sqlx::Error> {
                let ending: Vec<Expired> = sqlx::query_as(EXPIRE).bind(now).fetch_all(&mut **self).await?;
                if ending.is_empty() {
                    return Ok(Vec::new());
                }
                let ids = ending.iter().map(|claim| claim.id);
                super::in_list::<$db, _>(FORGET_HOLDERS, ids, ")").build().execute(&mut **self).await?;
                for claim in &ending {
                    let row = HistoryRow {
                        field: "claimed_by",
                        old_value: Some(claim.claimed_by.clone()),
                        new_value: None,
                        reason: Some(ClaimEnd::LeaseExpired.as_str()),
                    };
                    self.record(claim.id, row, &Actor::default(), now).await?;
                }
                Ok(ending.into_iter().map(|c| (c.project_id, c.id)).collect())
            }

            async fn end_claims_of_ended_sessions(
                &mut self,
                now: DateTime<Utc>,
            ) -> Result<u64, sqlx::Error> {
                let sql = format!("{OF_ENDED_SESSIONS}{}", $lock_t);
                let ending: Vec<Ending> = sqlx::query_as(&sql).fetch_all(&mut **self).await?;
                end_all!(self, ending, now)
            }

            async fn next_candidate(
                &mut self,
                filter: &NextFilter,
                now: DateTime<Utc>,
            ) -> Result<Option<Id>, sqlx::Error> {
                let sql = format!("{NEXT}{}", $skip_locked);
                sqlx::query_scalar(&sql)
                    .bind(filter.project_id)
                    .bind(&filter.assignee)
                    .bind(&filter.feature)
                    .bind(now)
                    .fetch_optional(&mut **self)
                    .await
            }

            async fn live_titles(&mut self, ids: &[Id]) -> Result<Vec<(Id, String)>, sqlx::Error> {
                if ids.is_empty() {
                    return Ok(Vec::new());
                }
                let sql = "SELECT id, title FROM tasks WHERE archived = FALSE AND id IN (";
                super::in_list::<$db, _>(sql, ids.iter().copied(), ")").build_query_as().fetch_all(&mut **self).await
            }

            async fn task_link(&mut self, id: Id) -> Result<Option<TaskLink>, sqlx::Error> {
                let sql = "SELECT project_id, parent_task_id, archived FROM tasks WHERE id = $1";
                sqlx::query_as(sql).bind(id).fetch_optional(&mut **self).await
            }

            async fn edges_from(&mut self, ids: &[Id]) -> Result<Vec<(Id, Id)>, sqlx::Error> {
                if ids.is_empty() {
                    return Ok(Vec::new());
                }
                let sql = "SELECT task_id, blocker_id FROM task_dependencies WHERE task_id IN (";
                super::in_list::<$db, _>(sql, ids.iter().copied(), ")").build_query_as().fetch_all(&mut **self).await
            }

            async fn set_blockers(&mut self, id: Id, blockers: &[Id]) -> Result<(), sqlx::Error> {
                sqlx::query("DELETE FROM task_dependencies WHERE task_id = $1")
                    .bind(id)
                    .execute(&mut **self)
                    .await?;
                for blocker in blockers {
                    sqlx::query("INSERT INTO task_dependencies (task_id, blocker_id) VALUES ($1, $2)")
                        .bind(id)
                        .bind(*blocker)
                        .execute(&mut **self)
                        .await?;
                }
                Ok(())
            }

            async fn dependants(&mut self, id: Id) -> Result<Vec<(Id, Id)>, sqlx::Error> {
                let sql = "SELECT t.project_id, t.id FROM task_dependencies d \
                           JOIN tasks t ON t.id = d.task_id WHERE d.blocker_id = $1 AND t.archived = FALSE";
                sqlx::query_as(sql).bind(id).fetch_all(&mut **self).await
            }
        }
    };
}

/// Clears each ending claim (if its token is unchanged) and records its reason.
macro_rules! end_all {
    ($tx:expr, $ending:expr, $now:expr) => {{
        let mut ended = 0;
        for claim in $ending {
            let cleared = sqlx::query(CLEAR_CLAIM)
                .bind(claim.id)
                .bind(claim.claim_token)
                .execute(&mut **$tx)
                .await?;
            if cleared.rows_affected() == 0 {
                continue;
            }
            ended += 1;
            let row = HistoryRow {
                field: "claimed_by",
                old_value: Some(claim.claimed_by),
                new_value: None,
                reason: Some(&claim.reason),
            };
            $tx.record(claim.id, row, &Actor::default(), $now).await?;
        }
        Ok(ended)
    }};
}

board_tx!(sqlx::Sqlite, "", "", "");
board_tx!(
    sqlx::Postgres,
    " FOR UPDATE",
    " FOR UPDATE OF t",
    " FOR UPDATE OF t SKIP LOCKED"
);
