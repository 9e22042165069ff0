//! Claims as leases: a session claims a task until `lease_until`, renews or releases it with
//! the claim's `claim_token`, and `next_task` hands out the best open task, claimed in the same
//! transaction. Every claim is taken by one conditional `UPDATE` (the task is unclaimed, its
//! lease ran out, or the claimer holds it already), so two sessions, on one replica or many,
//! never both hold a task.
//!
//! A claim ends on release, when its task is done or archived ([`super::tasks`]), when its
//! session ends ([`super::sessions`]) and when its lease runs out. Ran-out leases are ended by
//! a periodic sweep ([`Store::end_expired_claims`]) and by the next claim, write or read that
//! meets one first; each end is a `task_history` row (`field = claimed_by`) whose `reason` says
//! which of these it was.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::board_tx::{BoardTx, HistoryRow, NextFilter};
use super::tasks::{Outcome, Refusal, Task, Written};
use super::{Id, Store, WritePool, on_pool};
use crate::board::{Actor, ClaimEnd};

/// How many times `next_task` looks again when the task it chose was taken first (only
/// possible on PostgreSQL, between the pick and the conditional claim).
const NEXT_ATTEMPTS: usize = 5;

fn lease_end(now: DateTime<Utc>, lease: Duration) -> DateTime<Utc> {
    now + chrono::Duration::from_std(lease).unwrap_or(chrono::Duration::MAX / 2)
}

/// Inside [`on_pool!`]: opens a write transaction `$tx` and, with `$task` the task `$token`
/// proves the claim of (see [`held`]), evaluates `$write` to the outcome. The transaction
/// commits only when the outcome is not a refusal: a refusal, from the proof or from `$write`,
/// leaves nothing behind.
macro_rules! write_held {
    ($pool:expr, $id:expr, $token:expr, $actor:expr, $now:expr, |$tx:ident, $task:ident| $write:block) => {{
        let mut $tx = $pool.begin_write().await?;
        let outcome = match held(&mut $tx, $id, $token, $actor, $now).await? {
            Ok($task) => $write,
            Err(refusal) => Err(refusal),
        };
        if outcome.is_ok() {
            $tx.commit().await?;
        }
        Ok::<_, sqlx::Error>(outcome)
    }};
}

impl Store {
    /// Claims the task for `session` until now + `lease`, with a fresh token. Refused when the
    /// task is done, or held by another session whose lease has not run out.
    pub async fn claim_task(
        &self,
        id: Id,
        session: &str,
        actor: &Actor,
        lease: Duration,
    ) -> Outcome<Task> {
        let now = Utc::now();
        let outcome = on_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            let outcome = claim_in(&mut tx, id, session, actor, lease_end(now, lease), now).await?;
            tx.commit().await?;
            Ok::<_, sqlx::Error>(outcome)
        })?;
        self.filled(outcome).await
    }

    /// Extends the claim `token` proves to now + `lease` (the token stays the same).
    pub async fn renew_claim(
        &self,
        id: Id,
        token: Id,
        actor: &Actor,
        lease: Duration,
    ) -> Outcome<Task> {
        let sql = "UPDATE tasks SET lease_until = $3 WHERE id = $1 AND claim_token = $2 \
                   AND lease_until >= $4 RETURNING *";
        let now = Utc::now();
        let outcome = on_pool!(self, pool => write_held!(pool, id, token, actor, now, |tx, task| {
            let renewed = sqlx::query_as::<_, Task>(sql)
                .bind(id)
                .bind(token)
                .bind(lease_end(now, lease))
                .bind(now)
                .fetch_optional(&mut *tx)
                .await?;
            match renewed {
                None => Err(Refusal::StaleToken { current: None }),
                Some(renewed) => {
                    let row = HistoryRow {
                        field: "lease_until",
                        old_value: task.lease_until.map(|t| t.to_rfc3339()),
                        new_value: renewed.lease_until.map(|t| t.to_rfc3339()),
                        reason: Some("renewed"),
                    };
                    tx.record(id, row, actor, now).await?;
                    Ok(renewed)
                }
            }
        }))?;
        self.filled(outcome).await
    }

    /// Ends the claim `token` proves, optionally moving the task to `status` in the same
    /// transaction. Returns the tasks a move to done unblocked.
    pub async fn release_task(
        &self,
        id: Id,
        token: Id,
        status: Option<&'static str>,
        actor: &Actor,
    ) -> Outcome<Written> {
        let set_status = "UPDATE tasks SET status = $2, updated_at = $3 WHERE id = $1 RETURNING *";
        let now = Utc::now();
        let outcome = on_pool!(self, pool => write_held!(pool, id, token, actor, now, |tx, task| {
            tx.end_claim(&task, ClaimEnd::Released.as_str(), actor, now).await?;
            let mut unblocked = Vec::new();
            let mut released = tx.locked_task(id).await?.unwrap_or(task.clone());
            if let Some(status) = status.filter(|s| *s != task.status) {
                released = sqlx::query_as::<_, Task>(set_status)
                    .bind(id)
                    .bind(status)
                    .bind(now)
                    .fetch_one(&mut *tx)
                    .await?;
                let row = HistoryRow {
                    field: "status",
                    old_value: Some(task.status.clone()),
                    new_value: Some(status.to_string()),
                    reason: None,
                };
                tx.record(id, row, actor, now).await?;
                if status == "done" {
                    unblocked = tx.dependants(id).await?;
                }
            }
            Ok(Written { task: released, unblocked })
        }))?;
        self.filled_written(outcome).await
    }

    /// The highest-`task_order`, oldest, unblocked, unclaimed `todo` task matching `filter`;
    /// claimed for `session` in the same transaction when `claim` is `Some`.
    pub async fn next_task(
        &self,
        filter: &NextFilter,
        claim: Option<(&str, Duration)>,
        actor: &Actor,
    ) -> Result<Option<Task>, sqlx::Error> {
        let now = Utc::now();
        let task = on_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            let mut found = None;
            for _ in 0..NEXT_ATTEMPTS {
                let Some(id) = tx.next_candidate(filter, now).await? else {
                    break;
                };
                let Some((session, lease)) = claim else {
                    found = tx.locked_task(id).await?;
                    break;
                };
                if let Ok(task) = claim_in(&mut tx, id, session, actor, lease_end(now, lease), now).await? {
                    found = Some(task);
                    break;
                }
            }
            tx.commit().await?;
            Ok::<_, sqlx::Error>(found)
        })?;
        match task {
            Some(task) => Ok(self.filled(Ok(task)).await?.ok()),
            None => Ok(None),
        }
    }

    /// Ends every claim whose lease ran out, recording each end; returns `(project_id,
    /// task_id)` of each task whose claim ended. One conditional `UPDATE` picks the claims, so
    /// when several replicas sweep at once each claim is ended, and recorded, by exactly one.
    pub async fn sweep_expired_claims(&self) -> Result<Vec<(Id, Id)>, sqlx::Error> {
        let now = Utc::now();
        on_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            let ended = tx.end_expired_leases(now).await?;
            tx.commit().await?;
            Ok(ended)
        })
    }

    /// [`Store::sweep_expired_claims`] for the periodic sweep and for reads that are about to
    /// show claims: when no lease has run out (the common case) it costs one indexed count
    /// and takes no write lock.
    pub async fn end_expired_claims(&self) -> Result<Vec<(Id, Id)>, sqlx::Error> {
        let count = "SELECT COUNT(*) FROM tasks WHERE claimed_by IS NOT NULL AND lease_until < $1";
        let now = Utc::now();
        let expired: i64 =
            on_pool!(self, pool => sqlx::query_scalar(count).bind(now).fetch_one(pool).await)?;
        if expired == 0 {
            return Ok(Vec::new());
        }
        self.sweep_expired_claims().await
    }
}

/// The live task, with a ran-out lease ended (and recorded) first.
async fn current<T: BoardTx>(
    tx: &mut T,
    id: Id,
    actor: &Actor,
    now: DateTime<Utc>,
) -> Result<Option<Task>, sqlx::Error> {
    let Some(task) = tx.locked_task(id).await? else {
        return Ok(None);
    };
    if !task.lease_expired(now) {
        return Ok(Some(task));
    }
    tx.end_claim(&task, ClaimEnd::LeaseExpired.as_str(), actor, now)
        .await?;
    tx.locked_task(id).await
}

/// The live task (see [`current`]) when `token` proves its claim.
async fn held<T: BoardTx>(
    tx: &mut T,
    id: Id,
    token: Id,
    actor: &Actor,
    now: DateTime<Utc>,
) -> Result<Result<Task, Refusal>, sqlx::Error> {
    let Some(task) = current(tx, id, actor, now).await? else {
        return Ok(Err(Refusal::NotFound));
    };
    if task.claim_token != Some(token) {
        return Ok(Err(Refusal::StaleToken {
            current: task.live_claim(now),
        }));
    }
    Ok(Ok(task))
}

/// Claims one task inside a write transaction: ends a ran-out lease or the claimer's own
/// earlier claim (recorded), then the conditional claim.
async fn claim_in<T: BoardTx>(
    tx: &mut T,
    id: Id,
    session: &str,
    actor: &Actor,
    lease_until: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Outcome<Task> {
    let Some(task) = current(tx, id, actor, now).await? else {
        return Ok(Err(Refusal::NotFound));
    };
    if task.status == "done" {
        return Ok(Err(Refusal::Closed));
    }
    if let Some(claim) = task.live_claim(now) {
        if claim.claimed_by != session {
            return Ok(Err(Refusal::Held(claim)));
        }
        tx.end_claim(&task, ClaimEnd::Reclaimed.as_str(), actor, now)
            .await?;
    }
    match tx.take_claim(id, actor, session, lease_until, now).await? {
        Some(task) => Ok(Ok(task)),
        // Only when another transaction changed the row since it was read (not possible under
        // the row lock; kept as the authority all the same).
        None => {
            let holder = tx.locked_task(id).await?.and_then(|t| t.live_claim(now));
            Ok(Err(holder.map_or(Refusal::NotFound, Refusal::Held)))
        }
    }
}
