//! Tasks and their history. Deleting a task archives it (soft delete, as in Archon); every
//! change is recorded in `task_history` in the same transaction as the change itself. A task
//! held by another session's claim (see [`super::claims`]) is changed only with its token.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use sqlx::types::Json;

use super::board_tx::{BoardTx, HistoryRow, TaskLink};
use super::{Id, Store, WritePool, on_pool, search_text};
use crate::board::{Actor, ClaimEnd};

#[derive(Debug, Clone, Default, Serialize, sqlx::FromRow)]
pub struct Task {
    pub id: Id,
    pub project_id: Id,
    pub title: String,
    pub description: String,
    pub status: String,
    pub assignee: String,
    pub task_order: i32,
    pub feature: Option<String>,
    pub archived: bool,
    #[serde(serialize_with = "super::stamp::serialize_opt")]
    pub archived_at: Option<DateTime<Utc>>,
    pub archived_by: Option<String>,
    #[serde(serialize_with = "super::stamp::serialize")]
    pub created_at: DateTime<Utc>,
    #[serde(serialize_with = "super::stamp::serialize")]
    pub updated_at: DateTime<Utc>,
    /// The task this one is part of, in the same project.
    pub parent_task_id: Option<Id>,
    /// Where to read up for the task (Archon's `sources`): a JSON list.
    pub sources: Json<Value>,
    /// Code to look at for the task (Archon's `code_examples`): a JSON list.
    pub code_examples: Json<Value>,
    /// The session holding the task's claim, until `lease_until`.
    pub claimed_by: Option<String>,
    /// The holder's client name (from its `initialize`).
    pub claimed_client: Option<String>,
    /// The holder's authenticated principal, if any.
    pub claimed_principal: Option<String>,
    /// Proof of holding the claim: given only to the claimer, never listed.
    #[serde(skip)]
    pub claim_token: Option<Id>,
    #[serde(serialize_with = "super::stamp::serialize_opt")]
    pub claimed_at: Option<DateTime<Utc>>,
    #[serde(serialize_with = "super::stamp::serialize_opt")]
    pub lease_until: Option<DateTime<Utc>>,
    /// Tasks that must be done before this one starts.
    #[sqlx(skip)]
    pub blocked_by: Vec<Id>,
    /// Those of `blocked_by` still open (not done, not archived).
    #[sqlx(skip)]
    pub open_blockers: Vec<Id>,
}

/// Who holds a task, as a refused claimer is told.
#[derive(Debug, Clone, Serialize)]
pub struct Claim {
    pub claimed_by: String,
    pub claimed_client: Option<String>,
    pub claimed_principal: Option<String>,
    pub lease_until: DateTime<Utc>,
}

impl Task {
    /// The task's claim, if one is held and its lease has not run out at `now`.
    pub fn live_claim(&self, now: DateTime<Utc>) -> Option<Claim> {
        match (&self.claimed_by, self.lease_until) {
            (Some(by), Some(until)) if until >= now => Some(Claim {
                claimed_by: by.clone(),
                claimed_client: self.claimed_client.clone(),
                claimed_principal: self.claimed_principal.clone(),
                lease_until: until,
            }),
            _ => None,
        }
    }

    /// A claim is recorded but its lease ran out before `now`.
    pub fn lease_expired(&self, now: DateTime<Utc>) -> bool {
        self.claimed_by.is_some() && self.lease_until.is_some_and(|until| until < now)
    }
}

/// Fields of a new task (already validated).
#[derive(Debug, Clone)]
pub struct NewTask {
    pub project_id: Id,
    pub title: String,
    pub description: String,
    pub status: &'static str,
    pub assignee: String,
    pub task_order: i32,
    pub feature: Option<String>,
    pub blocked_by: Vec<Id>,
    pub parent_task_id: Option<Id>,
    pub sources: Value,
    pub code_examples: Value,
}

/// A partial update: `None` leaves the field as it is.
#[derive(Debug, Clone, Default)]
pub struct TaskChanges {
    pub title: Option<String>,
    pub description: Option<String>,
    pub status: Option<&'static str>,
    pub assignee: Option<String>,
    pub task_order: Option<i32>,
    pub feature: Option<String>,
    /// Replaces the task's blockers.
    pub blocked_by: Option<Vec<Id>>,
    /// `Some(None)` removes the parent.
    pub parent_task_id: Option<Option<Id>>,
    pub sources: Option<Value>,
    pub code_examples: Option<Value>,
}

/// Which tasks `list_tasks` returns. Every `Some` narrows the result.
#[derive(Debug, Clone, Default)]
pub struct TaskQuery {
    pub project_id: Option<Id>,
    pub status: Option<&'static str>,
    /// Matched case-insensitively.
    pub assignee: Option<String>,
    /// Matched case-insensitively.
    pub feature: Option<String>,
    pub text: Option<String>,
    pub include_closed: bool,
    /// Only tasks no live claim holds.
    pub unclaimed: bool,
}

/// Why a task write was refused (the database answered; the request cannot be applied).
#[derive(Debug, Clone, thiserror::Error)]
pub enum Refusal {
    /// No live (unarchived) task has this id.
    #[error("no live task has this id")]
    NotFound,
    /// The task is done: it cannot be claimed.
    #[error("the task is done")]
    Closed,
    /// Another session holds the task.
    #[error("session {} holds the task", .0.claimed_by)]
    Held(Claim),
    /// The token given is not the task's current claim (it expired, was released, or the task
    /// was claimed again since).
    #[error("the claim token is not the current one")]
    StaleToken { current: Option<Claim> },
    /// A blocker id names no live task.
    #[error("blocker {0} is not a live task")]
    UnknownBlocker(Id),
    /// The blockers would make the task wait on itself: `(id, title)` along the cycle, the
    /// first repeated at the end.
    #[error("the blockers make a cycle")]
    Cycle(Vec<(Id, String)>),
    /// The parent named is not a live task of the same project, or is the task itself or one
    /// of its own sub-tasks.
    #[error("parent {parent} {problem}")]
    BadParent { parent: Id, problem: ParentProblem },
}

/// Why a parent task was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParentProblem {
    NotFound,
    OtherProject,
    /// The parent is the task itself or below it: the parents would go round a loop.
    Loop,
}

impl std::fmt::Display for ParentProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ParentProblem::NotFound => "is not a live task",
            ParentProblem::OtherProject => "belongs to another project",
            ParentProblem::Loop => "is the task itself or one of its sub-tasks",
        })
    }
}

/// The result of a write the store may refuse.
pub type Outcome<T> = Result<Result<T, Refusal>, sqlx::Error>;

/// A changed task and the tasks its change unblocked (`(project_id, task_id)`).
#[derive(Debug, Clone)]
pub struct Written {
    pub task: Task,
    pub unblocked: Vec<(Id, Id)>,
}

/// What one `task_history` row says changed: a field, its value before and after, and when.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct FieldChange {
    pub field: String,
    pub old_value: Option<String>,
    pub new_value: Option<String>,
    pub changed_at: DateTime<Utc>,
}

/// One recorded change of a task.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct TaskChange {
    #[serde(flatten)]
    #[sqlx(flatten)]
    pub change: FieldChange,
    pub session_id: Option<String>,
    pub client_name: Option<String>,
    /// Why, when the change does not say itself (how a claim ended).
    pub reason: Option<String>,
}

/// One change to one of a project's tasks, with the task's title.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct ProjectTaskChange {
    pub task_id: Id,
    pub title: String,
    #[serde(flatten)]
    #[sqlx(flatten)]
    pub change: FieldChange,
    pub client_name: Option<String>,
}

/// Counts of a project's (or all) live tasks.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct TaskCount {
    pub key: String,
    pub count: i64,
}

/// The folded form filters compare with (full Unicode lowercase, the same on both engines).
pub fn fold(text: &str) -> String {
    text.to_lowercase()
}

impl Store {
    /// Creates a task. Refused when a blocker names no live task.
    pub async fn create_task(&self, new: &NewTask, actor: &Actor) -> Outcome<Task> {
        let sql = "INSERT INTO tasks (id, project_id, title, description, status, assignee, task_order, \
                   feature, created_at, updated_at, search_text, assignee_key, feature_key, \
                   parent_task_id, sources, code_examples) \
                   VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9, $10, $11, $12, $13, $14, $15) RETURNING *";
        let now = Utc::now();
        let outcome = on_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            let known = tx.live_titles(&new.blocked_by).await?;
            if let Some(unknown) = new.blocked_by.iter().find(|b| !known.iter().any(|(id, _)| id == *b)) {
                return Ok(Err(Refusal::UnknownBlocker(*unknown)));
            }
            if let Some(parent) = new.parent_task_id
                && let Err(refusal) = check_parent(&mut tx, None, new.project_id, parent).await?
            {
                return Ok(Err(refusal));
            }
            let task = sqlx::query_as::<_, Task>(sql)
                .bind(Id::new())
                .bind(new.project_id)
                .bind(&new.title)
                .bind(&new.description)
                .bind(new.status)
                .bind(&new.assignee)
                .bind(new.task_order)
                .bind(&new.feature)
                .bind(now)
                .bind(search_text(&[&new.title, &new.description]))
                .bind(fold(&new.assignee))
                .bind(new.feature.as_deref().map(fold))
                .bind(new.parent_task_id)
                .bind(Json(&new.sources))
                .bind(Json(&new.code_examples))
                .fetch_one(&mut *tx)
                .await?;
            let created = HistoryRow { field: "created", old_value: None, new_value: Some(task.title.clone()), reason: None };
            tx.record(task.id, created, actor, now).await?;
            if !new.blocked_by.is_empty() {
                tx.set_blockers(task.id, &new.blocked_by).await?;
                let row = HistoryRow { field: "blocked_by", old_value: None, new_value: Some(id_list(&new.blocked_by)), reason: None };
                tx.record(task.id, row, actor, now).await?;
            }
            tx.commit().await?;
            Ok::<_, sqlx::Error>(Ok(task))
        })?;
        self.filled(outcome).await
    }

    /// Returns `Ok(None)` when no task has this id (archived tasks are returned).
    pub async fn get_task(&self, id: Id) -> Result<Option<Task>, sqlx::Error> {
        let sql = "SELECT * FROM tasks WHERE id = $1";
        let task = on_pool!(self, pool => sqlx::query_as::<_, Task>(sql).bind(id).fetch_optional(pool).await)?;
        let mut tasks: Vec<Task> = task.into_iter().collect();
        self.fill_blockers(&mut tasks).await?;
        Ok(tasks.pop())
    }

    /// Applies `changes` and records one history row per field whose value changed. A task
    /// another session holds is changed only with its current `token`; a given token must be
    /// the current one. Moving the task to done ends its claim.
    pub async fn update_task(
        &self,
        id: Id,
        changes: &TaskChanges,
        token: Option<Id>,
        actor: &Actor,
    ) -> Outcome<Written> {
        let update = "UPDATE tasks SET title = $2, description = $3, status = $4, assignee = $5, \
                      task_order = $6, feature = $7, updated_at = $8, search_text = $9, \
                      assignee_key = $10, feature_key = $11, parent_task_id = $12, sources = $13, \
                      code_examples = $14 WHERE id = $1 RETURNING *";
        let now = Utc::now();
        let outcome = on_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            let old = match guarded(&mut tx, id, token, actor, now).await? {
                Ok(old) => old,
                Err(refusal) => return Ok(Err(refusal)),
            };
            if let Some(Some(parent)) = changes.parent_task_id
                && let Err(refusal) = check_parent(&mut tx, Some(id), old.project_id, parent).await?
            {
                return Ok(Err(refusal));
            }
            if let Some(blockers) = &changes.blocked_by {
                if let Err(refusal) = check_blockers(&mut tx, id, blockers).await? {
                    return Ok(Err(refusal));
                }
                let before = blockers_of(&mut tx, id).await?;
                if &before != blockers {
                    tx.set_blockers(id, blockers).await?;
                    let row = HistoryRow { field: "blocked_by", old_value: Some(id_list(&before)), new_value: Some(id_list(blockers)), reason: None };
                    tx.record(id, row, actor, now).await?;
                }
            }
            let new = apply(&old, changes);
            let task = sqlx::query_as::<_, Task>(update)
                .bind(id)
                .bind(&new.title)
                .bind(&new.description)
                .bind(&new.status)
                .bind(&new.assignee)
                .bind(new.task_order)
                .bind(&new.feature)
                .bind(now)
                .bind(search_text(&[&new.title, &new.description]))
                .bind(fold(&new.assignee))
                .bind(new.feature.as_deref().map(fold))
                .bind(new.parent_task_id)
                .bind(&new.sources)
                .bind(&new.code_examples)
                .fetch_one(&mut *tx)
                .await?;
            for (field, before, after) in diff(&old, &task) {
                let row = HistoryRow { field, old_value: before, new_value: after, reason: None };
                tx.record(id, row, actor, now).await?;
            }
            let mut unblocked = Vec::new();
            let mut task = task;
            if task.status == "done" && old.status != "done" {
                tx.end_claim(&task, ClaimEnd::Done.as_str(), actor, now).await?;
                unblocked = tx.dependants(id).await?;
                task = tx.locked_task(id).await?.unwrap_or(task);
            }
            tx.commit().await?;
            Ok::<_, sqlx::Error>(Ok(Written { task, unblocked }))
        })?;
        self.filled_written(outcome).await
    }

    /// Archives a live task (soft delete), ending its claim. Held by another session, it is
    /// archived only with the claim's `token`.
    pub async fn archive_task(&self, id: Id, token: Option<Id>, actor: &Actor) -> Outcome<Written> {
        let sql = "UPDATE tasks SET archived = TRUE, archived_at = $2, archived_by = $3, updated_at = $2 \
                   WHERE id = $1 AND archived = FALSE RETURNING *";
        let by = actor
            .client_name
            .clone()
            .unwrap_or_else(|| "unknown".to_string());
        let now = Utc::now();
        on_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            let old = match guarded(&mut tx, id, token, actor, now).await? {
                Ok(old) => old,
                Err(refusal) => return Ok(Err(refusal)),
            };
            tx.end_claim(&old, ClaimEnd::Archived.as_str(), actor, now).await?;
            let task = sqlx::query_as::<_, Task>(sql)
                .bind(id)
                .bind(now)
                .bind(&by)
                .fetch_one(&mut *tx)
                .await?;
            let row = HistoryRow { field: "archived", old_value: Some("false".into()), new_value: Some("true".into()), reason: None };
            tx.record(id, row, actor, now).await?;
            let unblocked = tx.dependants(id).await?;
            tx.commit().await?;
            Ok(Ok(Written { task, unblocked }))
        })
    }

    /// Every recorded change of a task, oldest first.
    pub async fn task_history(&self, id: Id, limit: i64) -> Result<Vec<TaskChange>, sqlx::Error> {
        let sql = "SELECT field, old_value, new_value, changed_at, session_id, client_name, reason \
                   FROM task_history WHERE task_id = $1 ORDER BY id LIMIT $2";
        on_pool!(self, pool => sqlx::query_as::<_, TaskChange>(sql).bind(id).bind(limit).fetch_all(pool).await)
    }

    /// Changes to a project's tasks at or after `since`, oldest first (for stand-up summaries).
    pub async fn task_changes_since(
        &self,
        project_id: Id,
        since: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<ProjectTaskChange>, sqlx::Error> {
        let sql = "SELECT h.task_id, t.title, h.field, h.old_value, h.new_value, h.changed_at, h.client_name \
                   FROM task_history h JOIN tasks t ON t.id = h.task_id \
                   WHERE t.project_id = $1 AND h.changed_at >= $2 ORDER BY h.id LIMIT $3";
        on_pool!(self, pool => sqlx::query_as::<_, ProjectTaskChange>(sql).bind(project_id).bind(since).bind(limit).fetch_all(pool).await)
    }

    /// Live-task counts grouped by `status` or `assignee`, optionally for one project.
    pub async fn count_tasks_by(
        &self,
        project_id: Option<Id>,
        by_assignee: bool,
    ) -> Result<Vec<TaskCount>, sqlx::Error> {
        let column = if by_assignee { "assignee" } else { "status" };
        let sql = format!(
            "SELECT {column} AS key, COUNT(*) AS count FROM tasks \
             WHERE archived = FALSE AND ($1 IS NULL OR project_id = $1) GROUP BY {column} ORDER BY {column}"
        );
        on_pool!(self, pool => sqlx::query_as::<_, TaskCount>(&sql).bind(project_id).fetch_all(pool).await)
    }

    /// Fills `blocked_by` and `open_blockers` of each task.
    pub async fn fill_blockers(&self, tasks: &mut [Task]) -> Result<(), sqlx::Error> {
        if tasks.is_empty() {
            return Ok(());
        }
        let edges: Vec<(Id, Id, bool)> = on_pool!(self, pool => {
            let mut query = sqlx::QueryBuilder::new(
                "SELECT d.task_id, d.blocker_id, (b.status <> 'done' AND b.archived = FALSE) AS open \
                 FROM task_dependencies d JOIN tasks b ON b.id = d.blocker_id WHERE d.task_id IN (",
            );
            let mut list = query.separated(", ");
            for task in tasks.iter() {
                list.push_bind(task.id);
            }
            query.push(") ORDER BY d.task_id, d.blocker_id");
            query.build_query_as().fetch_all(pool).await?
        });
        for task in tasks.iter_mut() {
            for (_, blocker, open) in edges.iter().filter(|(t, _, _)| *t == task.id) {
                task.blocked_by.push(*blocker);
                if *open {
                    task.open_blockers.push(*blocker);
                }
            }
        }
        Ok(())
    }

    pub(crate) async fn filled(&self, outcome: Result<Task, Refusal>) -> Outcome<Task> {
        match outcome {
            Ok(task) => {
                let mut tasks = [task];
                self.fill_blockers(&mut tasks).await?;
                let [task] = tasks;
                Ok(Ok(task))
            }
            Err(refusal) => Ok(Err(refusal)),
        }
    }

    pub(super) async fn filled_written(
        &self,
        outcome: Result<Written, Refusal>,
    ) -> Outcome<Written> {
        match outcome {
            Ok(written) => {
                let unblocked = written.unblocked;
                Ok(self
                    .filled(Ok(written.task))
                    .await?
                    .map(|task| Written { task, unblocked }))
            }
            Err(refusal) => Ok(Err(refusal)),
        }
    }
}

/// Locks the live task and checks the writer may change it: a lease that ran out is ended
/// first (and recorded); a live claim of another session needs its token; a given token must
/// be the current claim's.
async fn guarded<T: BoardTx>(
    tx: &mut T,
    id: Id,
    token: Option<Id>,
    actor: &Actor,
    now: DateTime<Utc>,
) -> Outcome<Task> {
    let Some(mut task) = tx.locked_task(id).await? else {
        return Ok(Err(Refusal::NotFound));
    };
    if task.lease_expired(now) {
        tx.end_claim(&task, ClaimEnd::LeaseExpired.as_str(), actor, now)
            .await?;
        task = tx.locked_task(id).await?.unwrap_or(task);
    }
    let claim = task.live_claim(now);
    match (token, &claim) {
        (Some(token), Some(_)) if task.claim_token == Some(token) => Ok(Ok(task)),
        (Some(_), current) => Ok(Err(Refusal::StaleToken {
            current: current.clone(),
        })),
        (None, Some(claim)) if actor.session_id.as_deref() != Some(claim.claimed_by.as_str()) => {
            Ok(Err(Refusal::Held(claim.clone())))
        }
        (None, _) => Ok(Ok(task)),
    }
}

/// Checks a task's new blockers: each a live task, and none waiting (through its own
/// blockers) on the task itself.
async fn check_blockers<T: BoardTx>(
    tx: &mut T,
    id: Id,
    blockers: &[Id],
) -> Result<Result<(), Refusal>, sqlx::Error> {
    if blockers.contains(&id) {
        let step = tx
            .live_titles(&[id])
            .await?
            .pop()
            .unwrap_or((id, String::new()));
        return Ok(Err(Refusal::Cycle(vec![step.clone(), step])));
    }
    let known = tx.live_titles(blockers).await?;
    if let Some(unknown) = blockers
        .iter()
        .find(|b| !known.iter().any(|(k, _)| k == *b))
    {
        return Ok(Err(Refusal::UnknownBlocker(*unknown)));
    }
    // Breadth-first along "is blocked by" edges from the new blockers; reaching `id` closes a
    // cycle. Each task is visited once, so this ends on any graph.
    let mut came_from: std::collections::HashMap<Id, Id> =
        blockers.iter().map(|b| (*b, id)).collect();
    let mut frontier: Vec<Id> = blockers.to_vec();
    while !frontier.is_empty() {
        let mut next = Vec::new();
        for (from, to) in tx.edges_from(&frontier).await? {
            if to == id {
                return Ok(Err(Refusal::Cycle(
                    cycle_path(tx, id, from, &came_from).await?,
                )));
            }
            if let std::collections::hash_map::Entry::Vacant(entry) = came_from.entry(to) {
                entry.insert(from);
                next.push(to);
            }
        }
        frontier = next;
    }
    Ok(Ok(()))
}

/// Checks a task's new parent: a live task of the same project, and not the task itself or
/// one of its sub-tasks (walking up from the parent never meets `task`).
async fn check_parent<T: BoardTx>(
    tx: &mut T,
    task: Option<Id>,
    project_id: Id,
    parent: Id,
) -> Result<Result<(), Refusal>, sqlx::Error> {
    let refuse = |problem| Ok(Err(Refusal::BadParent { parent, problem }));
    match tx.task_link(parent).await? {
        None | Some(TaskLink { archived: true, .. }) => return refuse(ParentProblem::NotFound),
        Some(link) if link.project_id != project_id => {
            return refuse(ParentProblem::OtherProject);
        }
        Some(_) => {}
    }
    // Each step is seen once, so even a loop already in the data (an import) ends the walk.
    let mut seen = std::collections::HashSet::new();
    let mut at = Some(parent);
    while let Some(step) = at.filter(|step| seen.insert(*step)) {
        if Some(step) == task {
            return refuse(ParentProblem::Loop);
        }
        at = tx
            .task_link(step)
            .await?
            .and_then(|link| link.parent_task_id);
    }
    Ok(Ok(()))
}

/// `id → … → last → id`, with titles.
async fn cycle_path<T: BoardTx>(
    tx: &mut T,
    id: Id,
    last: Id,
    came_from: &std::collections::HashMap<Id, Id>,
) -> Result<Vec<(Id, String)>, sqlx::Error> {
    let mut path = vec![last];
    let mut at = last;
    while let Some(&previous) = came_from.get(&at) {
        if previous == id {
            break;
        }
        path.push(previous);
        at = previous;
    }
    path.push(id);
    path.reverse();
    path.push(id);
    let titles = tx.live_titles(&path).await?;
    Ok(path
        .into_iter()
        .map(|step| {
            let title = titles
                .iter()
                .find(|(t, _)| *t == step)
                .map(|(_, title)| title.clone());
            (step, title.unwrap_or_default())
        })
        .collect())
}

async fn blockers_of<T: BoardTx>(tx: &mut T, id: Id) -> Result<Vec<Id>, sqlx::Error> {
    let mut ids: Vec<Id> = tx
        .edges_from(&[id])
        .await?
        .into_iter()
        .map(|(_, b)| b)
        .collect();
    ids.sort_by_key(|id| id.0);
    Ok(ids)
}

fn id_list(ids: &[Id]) -> String {
    ids.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

fn apply(old: &Task, changes: &TaskChanges) -> Task {
    let mut new = old.clone();
    if let Some(title) = &changes.title {
        new.title = title.clone();
    }
    if let Some(description) = &changes.description {
        new.description = description.clone();
    }
    if let Some(status) = changes.status {
        new.status = status.to_string();
    }
    if let Some(assignee) = &changes.assignee {
        new.assignee = assignee.clone();
    }
    if let Some(order) = changes.task_order {
        new.task_order = order;
    }
    if let Some(feature) = &changes.feature {
        new.feature = Some(feature.clone());
    }
    if let Some(parent) = changes.parent_task_id {
        new.parent_task_id = parent;
    }
    if let Some(sources) = &changes.sources {
        new.sources = Json(sources.clone());
    }
    if let Some(examples) = &changes.code_examples {
        new.code_examples = Json(examples.clone());
    }
    new
}

/// `(field, old, new)` for every field that differs between two versions of a task.
fn diff(old: &Task, new: &Task) -> Vec<(&'static str, Option<String>, Option<String>)> {
    let mut changes = Vec::new();
    let mut check = |field, before: Option<String>, after: Option<String>| {
        if before != after {
            changes.push((field, before, after));
        }
    };
    check("title", Some(old.title.clone()), Some(new.title.clone()));
    check(
        "description",
        Some(old.description.clone()),
        Some(new.description.clone()),
    );
    check("status", Some(old.status.clone()), Some(new.status.clone()));
    check(
        "assignee",
        Some(old.assignee.clone()),
        Some(new.assignee.clone()),
    );
    check(
        "task_order",
        Some(old.task_order.to_string()),
        Some(new.task_order.to_string()),
    );
    check("feature", old.feature.clone(), new.feature.clone());
    let id = |id: Option<Id>| id.map(|id| id.to_string());
    check(
        "parent_task_id",
        id(old.parent_task_id),
        id(new.parent_task_id),
    );
    check(
        "sources",
        Some(old.sources.0.to_string()),
        Some(new.sources.0.to_string()),
    );
    check(
        "code_examples",
        Some(old.code_examples.0.to_string()),
        Some(new.code_examples.0.to_string()),
    );
    changes
}
