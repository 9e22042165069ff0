//! Tasks and their history. Deleting a task archives it (soft delete, as in Archon); every
//! change is recorded in `task_history` in the same transaction as the change itself.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{Id, Page, Paged, Store, WritePool, like_pattern, lock_row, on_pool, search_text};
use crate::board::Actor;

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
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
    pub archived_at: Option<DateTime<Utc>>,
    pub archived_by: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
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
}

/// Which tasks `list_tasks` returns. Every `Some` narrows the result.
#[derive(Debug, Clone, Default)]
pub struct TaskQuery {
    pub project_id: Option<Id>,
    pub status: Option<&'static str>,
    pub assignee: Option<String>,
    pub text: Option<String>,
    pub include_closed: bool,
    pub feature: Option<String>,
}

/// One recorded change of a task.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct TaskChange {
    pub field: String,
    pub old_value: Option<String>,
    pub new_value: Option<String>,
    pub changed_at: DateTime<Utc>,
    pub session_id: Option<String>,
    pub client_name: Option<String>,
}

/// Counts of a project's (or all) live tasks.
/// One change to one of a project's tasks, with the task's title.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct ProjectTaskChange {
    pub task_id: Id,
    pub title: String,
    pub field: String,
    pub old_value: Option<String>,
    pub new_value: Option<String>,
    pub changed_at: DateTime<Utc>,
    pub client_name: Option<String>,
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct TaskCount {
    pub key: String,
    pub count: i64,
}

// "Closed" means done or archived; archived tasks are never listed.
const FILTER: &str = "archived = FALSE \
    AND ($1 IS NULL OR project_id = $1) \
    AND ($2 IS NULL OR status = $2) \
    AND ($3 IS NULL OR assignee = $3) \
    AND ($4 IS NULL OR search_text LIKE $4 ESCAPE '\\') \
    AND ($5 OR status <> 'done') \
    AND ($6 IS NULL OR feature = $6)";

const INSERT_HISTORY: &str = "INSERT INTO task_history \
    (task_id, field, old_value, new_value, changed_at, session_id, client_name) \
    VALUES ($1, $2, $3, $4, $5, $6, $7)";

impl Store {
    pub async fn create_task(&self, new: &NewTask, actor: &Actor) -> Result<Task, sqlx::Error> {
        let sql = "INSERT INTO tasks (id, project_id, title, description, status, assignee, task_order, \
                   feature, created_at, updated_at, search_text) \
                   VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9, $10) RETURNING *";
        let now = Utc::now();
        on_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
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
                .fetch_one(&mut *tx)
                .await?;
            sqlx::query(INSERT_HISTORY)
                .bind(task.id)
                .bind("created")
                .bind(None::<String>)
                .bind(&task.title)
                .bind(now)
                .bind(&actor.session_id)
                .bind(&actor.client_name)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(task)
        })
    }

    /// Returns `Ok(None)` when no task has this id (archived tasks are returned).
    pub async fn get_task(&self, id: Id) -> Result<Option<Task>, sqlx::Error> {
        let sql = "SELECT * FROM tasks WHERE id = $1";
        on_pool!(self, pool => sqlx::query_as::<_, Task>(sql).bind(id).fetch_optional(pool).await)
    }

    /// Live tasks matching `query`, by project, then `task_order` (highest first), then age.
    pub async fn list_tasks(
        &self,
        query: &TaskQuery,
        page: Page,
    ) -> Result<Paged<Task>, sqlx::Error> {
        let pattern = query.text.as_deref().map(like_pattern);
        let list = format!(
            "SELECT * FROM tasks WHERE {FILTER} ORDER BY task_order DESC, created_at, id LIMIT $7 OFFSET $8"
        );
        let count = format!("SELECT COUNT(*) FROM tasks WHERE {FILTER}");
        on_pool!(self, pool => {
            let items = sqlx::query_as::<_, Task>(&list)
                .bind(query.project_id)
                .bind(query.status)
                .bind(&query.assignee)
                .bind(&pattern)
                .bind(query.include_closed)
                .bind(&query.feature)
                .bind(page.limit())
                .bind(page.offset())
                .fetch_all(pool)
                .await?;
            let total: i64 = sqlx::query_scalar(&count)
                .bind(query.project_id)
                .bind(query.status)
                .bind(&query.assignee)
                .bind(&pattern)
                .bind(query.include_closed)
                .bind(&query.feature)
                .fetch_one(pool)
                .await?;
            Ok(Paged { items, total })
        })
    }

    /// Applies `changes` and records one history row per field whose value changed.
    /// Returns `Ok(None)` when no live (unarchived) task has this id.
    pub async fn update_task(
        &self,
        id: Id,
        changes: &TaskChanges,
        actor: &Actor,
    ) -> Result<Option<Task>, sqlx::Error> {
        let update = "UPDATE tasks SET title = $2, description = $3, status = $4, assignee = $5, \
                      task_order = $6, feature = $7, updated_at = $8, search_text = $9 WHERE id = $1 RETURNING *";
        let now = Utc::now();
        on_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            let select = format!("SELECT * FROM tasks WHERE id = $1 AND archived = FALSE{}", lock_row(pool));
            let Some(old) = sqlx::query_as::<_, Task>(&select).bind(id).fetch_optional(&mut *tx).await? else {
                return Ok(None);
            };
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
                .fetch_one(&mut *tx)
                .await?;
            for (field, before, after) in diff(&old, &task) {
                sqlx::query(INSERT_HISTORY)
                    .bind(id)
                    .bind(field)
                    .bind(before)
                    .bind(after)
                    .bind(now)
                    .bind(&actor.session_id)
                    .bind(&actor.client_name)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            Ok(Some(task))
        })
    }

    /// Archives a live task (soft delete). Returns `Ok(None)` when no live task has this id.
    pub async fn archive_task(&self, id: Id, actor: &Actor) -> Result<Option<Task>, sqlx::Error> {
        let sql = "UPDATE tasks SET archived = TRUE, archived_at = $2, archived_by = $3, updated_at = $2 \
                   WHERE id = $1 AND archived = FALSE RETURNING *";
        let by = actor
            .client_name
            .clone()
            .unwrap_or_else(|| "unknown".to_string());
        let now = Utc::now();
        on_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            let Some(task) = sqlx::query_as::<_, Task>(sql)
                .bind(id)
                .bind(now)
                .bind(&by)
                .fetch_optional(&mut *tx)
                .await?
            else {
                return Ok(None);
            };
            sqlx::query(INSERT_HISTORY)
                .bind(id)
                .bind("archived")
                .bind("false")
                .bind("true")
                .bind(now)
                .bind(&actor.session_id)
                .bind(&actor.client_name)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(Some(task))
        })
    }

    /// Every recorded change of a task, oldest first.
    pub async fn task_history(&self, id: Id, limit: i64) -> Result<Vec<TaskChange>, sqlx::Error> {
        let sql = "SELECT field, old_value, new_value, changed_at, session_id, client_name \
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
    changes
}
