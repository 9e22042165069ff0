//! A project's standing at a glance: live-task counts by status and its latest activity, for
//! the dashboard's project list and `steward projects`.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{Id, Store, on_pool};

/// One project with its live tasks counted by status.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct ProjectSummary {
    pub id: Id,
    pub title: String,
    pub description: String,
    /// Pinned projects are listed first.
    pub pinned: bool,
    #[serde(flatten)]
    #[sqlx(flatten)]
    pub counts: StatusCounts,
    pub created_at: DateTime<Utc>,
    /// The latest change to the project or any of its tasks.
    pub last_activity: DateTime<Utc>,
}

/// Live (unarchived) tasks counted by status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct StatusCounts {
    pub todo: i64,
    pub doing: i64,
    pub review: i64,
    pub done: i64,
}

impl StatusCounts {
    /// Every live task.
    pub fn total(&self) -> i64 {
        self.todo + self.doing + self.review + self.done
    }

    /// Done ÷ all live tasks, in percent with two decimals (0 for an empty project).
    pub fn progress_percent(&self) -> f64 {
        match self.total() {
            0 => 0.0,
            total => (self.done as f64 * 10_000.0 / total as f64).round() / 100.0,
        }
    }
}

// Counts as BIGINT on both engines; the latest activity falls back to the project's own
// update when it has no tasks.
const SUMMARY: &str = "SELECT p.id, p.title, p.description, p.pinned, \
    CAST(COALESCE(SUM(CASE WHEN t.status = 'todo' THEN 1 ELSE 0 END), 0) AS BIGINT) AS todo, \
    CAST(COALESCE(SUM(CASE WHEN t.status = 'doing' THEN 1 ELSE 0 END), 0) AS BIGINT) AS doing, \
    CAST(COALESCE(SUM(CASE WHEN t.status = 'review' THEN 1 ELSE 0 END), 0) AS BIGINT) AS review, \
    CAST(COALESCE(SUM(CASE WHEN t.status = 'done' THEN 1 ELSE 0 END), 0) AS BIGINT) AS done, \
    p.created_at, COALESCE(MAX(t.updated_at), p.updated_at) AS last_activity \
    FROM projects p LEFT JOIN tasks t ON t.project_id = p.id AND t.archived = FALSE";

impl Store {
    /// Every project with its task counts, pinned ones first, then most recently active first
    /// (at most `limit`).
    pub async fn project_summaries(&self, limit: i64) -> Result<Vec<ProjectSummary>, sqlx::Error> {
        let sql = format!(
            "{SUMMARY} GROUP BY p.id, p.title, p.description, p.pinned, p.created_at, p.updated_at \
             ORDER BY p.pinned DESC, last_activity DESC, p.id LIMIT $1"
        );
        on_pool!(self, pool => sqlx::query_as::<_, ProjectSummary>(&sql).bind(limit).fetch_all(pool).await)
    }

    /// One project's summary; `Ok(None)` when no project has this id.
    pub async fn project_summary(&self, id: Id) -> Result<Option<ProjectSummary>, sqlx::Error> {
        let sql = format!(
            "{SUMMARY} WHERE p.id = $1 GROUP BY p.id, p.title, p.description, p.pinned, p.created_at, p.updated_at"
        );
        on_pool!(self, pool => sqlx::query_as::<_, ProjectSummary>(&sql).bind(id).fetch_optional(pool).await)
    }
}
