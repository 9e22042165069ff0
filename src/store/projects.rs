//! Projects: the top of the board. Deleting a project removes its tasks, documents and
//! versions with it (as in Archon).

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use sqlx::types::Json;

use super::{
    Id, Page, Paged, Store, WritePool, fetch_page, like_pattern, on_pool, push_search, search_text,
};

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Project {
    pub id: Id,
    pub title: String,
    pub description: String,
    pub github_repo: Option<String>,
    pub features: Json<Value>,
    pub data: Json<Value>,
    pub prd: Json<Value>,
    /// Shown first where projects are listed for a person (Archon's `pinned`).
    pub pinned: bool,
    #[serde(serialize_with = "super::stamp::serialize")]
    pub created_at: DateTime<Utc>,
    #[serde(serialize_with = "super::stamp::serialize")]
    pub updated_at: DateTime<Utc>,
}

/// The project fields that hold a JSON value of their own (documents have their own table).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProjectJson {
    Features,
    Data,
    Prd,
}

/// Fields of a new project (already validated).
#[derive(Debug, Clone)]
pub struct NewProject {
    pub title: String,
    pub description: String,
    pub github_repo: Option<String>,
}

/// A partial update: `None` leaves the field as it is.
#[derive(Debug, Clone, Default)]
pub struct ProjectChanges {
    pub title: Option<String>,
    pub description: Option<String>,
    pub github_repo: Option<String>,
    pub pinned: Option<bool>,
}

impl Store {
    pub async fn create_project(&self, new: &NewProject) -> Result<Project, sqlx::Error> {
        let now = Utc::now();
        let sql = "INSERT INTO projects (id, title, description, github_repo, created_at, updated_at, search_text) \
                   VALUES ($1, $2, $3, $4, $5, $5, $6) RETURNING *";
        let search = search_text(&[&new.title, &new.description]);
        on_pool!(self, pool => sqlx::query_as::<_, Project>(sql)
            .bind(Id::new())
            .bind(&new.title)
            .bind(&new.description)
            .bind(&new.github_repo)
            .bind(now)
            .bind(&search)
            .fetch_one(pool)
            .await)
    }

    /// Returns `Ok(None)` when no project has this id.
    pub async fn get_project(&self, id: Id) -> Result<Option<Project>, sqlx::Error> {
        let sql = "SELECT * FROM projects WHERE id = $1";
        on_pool!(self, pool => sqlx::query_as::<_, Project>(sql).bind(id).fetch_optional(pool).await)
    }

    /// Projects whose title or description contains `query` (case-insensitive), newest first.
    pub async fn list_projects(
        &self,
        query: Option<&str>,
        page: Page,
    ) -> Result<Paged<Project>, sqlx::Error> {
        let Some(query) = query else {
            return self.all_projects(page).await;
        };
        let pattern = like_pattern(query);
        on_pool!(self, pool => fetch_page!(pool, Project, "projects", "created_at DESC, id", page.limit(), page.offset(), |q| {
            q.push(" WHERE TRUE");
            push_search(&mut q, Some(pattern.as_str()));
        }))
    }

    /// Every project, newest first; the total is the count the triggers of migration 0020
    /// keep, where a `COUNT(*)` would read every project.
    async fn all_projects(&self, page: Page) -> Result<Paged<Project>, sqlx::Error> {
        let sql = "SELECT * FROM projects ORDER BY created_at DESC, id LIMIT $1 OFFSET $2";
        let total = "SELECT n FROM project_total";
        on_pool!(self, pool => {
            let items = sqlx::query_as::<_, Project>(sql)
                .bind(page.limit())
                .bind(page.offset())
                .fetch_all(pool)
                .await?;
            let total: i64 = sqlx::query_scalar(total).fetch_one(pool).await?;
            Ok(Paged { items, total })
        })
    }

    /// Returns `Ok(None)` when no project has this id.
    pub async fn update_project(
        &self,
        id: Id,
        changes: &ProjectChanges,
    ) -> Result<Option<Project>, sqlx::Error> {
        let sql = "UPDATE projects SET title = COALESCE($2, title), description = COALESCE($3, description), \
                   github_repo = COALESCE($4, github_repo), pinned = COALESCE($6, pinned), updated_at = $5 \
                   WHERE id = $1 RETURNING *";
        on_pool!(self, pool => {
            // One write transaction, so the folded search text always matches the row.
            let mut tx = pool.begin_write().await?;
            let project = sqlx::query_as::<_, Project>(sql)
                .bind(id)
                .bind(&changes.title)
                .bind(&changes.description)
                .bind(&changes.github_repo)
                .bind(Utc::now())
                .bind(changes.pinned)
                .fetch_optional(&mut *tx)
                .await?;
            if let Some(p) = &project {
                sqlx::query("UPDATE projects SET search_text = $2 WHERE id = $1")
                    .bind(id)
                    .bind(search_text(&[&p.title, &p.description]))
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            Ok(project)
        })
    }

    /// Deletes the project and everything in it. Returns whether it existed.
    pub async fn delete_project(&self, id: Id) -> Result<bool, sqlx::Error> {
        let sql = "DELETE FROM projects WHERE id = $1";
        on_pool!(self, pool => sqlx::query(sql).bind(id).execute(pool).await.map(|r| r.rows_affected() > 0))
    }

    /// Replaces one of the project's JSON fields (`features`, `data` or `prd`).
    /// Returns whether the project exists.
    pub async fn set_project_json(
        &self,
        id: Id,
        field: ProjectJson,
        value: &Value,
    ) -> Result<bool, sqlx::Error> {
        // Column names cannot be bound, so each field has its own statement.
        let sql = match field {
            ProjectJson::Features => {
                "UPDATE projects SET features = $2, updated_at = $3 WHERE id = $1"
            }
            ProjectJson::Data => "UPDATE projects SET data = $2, updated_at = $3 WHERE id = $1",
            ProjectJson::Prd => "UPDATE projects SET prd = $2, updated_at = $3 WHERE id = $1",
        };
        on_pool!(self, pool => sqlx::query(sql)
            .bind(id)
            .bind(Json(value))
            .bind(Utc::now())
            .execute(pool)
            .await
            .map(|r| r.rows_affected() > 0))
    }
}
