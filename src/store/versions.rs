//! Versions: numbered snapshots of a project's `docs`, `features`, `data` or `prd`.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use sqlx::types::Json;

use super::{Id, Page, Paged, Store, WritePool, fetch_page, lock_row, on_pool};

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Version {
    pub id: Id,
    pub project_id: Id,
    pub field_name: String,
    pub version_number: i32,
    pub content: Json<Value>,
    pub change_summary: String,
    pub change_type: String,
    pub document_id: Option<Id>,
    pub created_by: String,
    #[serde(serialize_with = "super::stamp::serialize")]
    pub created_at: DateTime<Utc>,
}

/// A snapshot to record (already validated). Its number is assigned by the store.
#[derive(Debug, Clone)]
pub struct NewVersion {
    pub project_id: Id,
    pub field_name: &'static str,
    pub content: Value,
    pub change_summary: String,
    pub change_type: &'static str,
    pub document_id: Option<Id>,
    pub created_by: String,
}

impl Store {
    /// Records a snapshot as the next version number of its project field.
    pub async fn create_version(&self, new: &NewVersion) -> Result<Version, sqlx::Error> {
        let next = "SELECT COALESCE(MAX(version_number), 0) + 1 FROM versions WHERE project_id = $1 AND field_name = $2";
        let insert = "INSERT INTO versions (id, project_id, field_name, version_number, content, change_summary, \
                      change_type, document_id, created_by, created_at) \
                      VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING *";
        on_pool!(self, pool => {
            // Lock the project row (PostgreSQL; SQLite's BEGIN IMMEDIATE already serialises
            // writers) so concurrent snapshots of one project get distinct numbers.
            let mut tx = pool.begin_write().await?;
            let lock = format!("SELECT id FROM projects WHERE id = $1{}", lock_row(pool));
            sqlx::query(&lock).bind(new.project_id).execute(&mut *tx).await?;
            let number: i32 = sqlx::query_scalar(next)
                .bind(new.project_id)
                .bind(new.field_name)
                .fetch_one(&mut *tx)
                .await?;
            let version = sqlx::query_as::<_, Version>(insert)
                .bind(Id::new())
                .bind(new.project_id)
                .bind(new.field_name)
                .bind(number)
                .bind(Json(&new.content))
                .bind(&new.change_summary)
                .bind(new.change_type)
                .bind(new.document_id)
                .bind(&new.created_by)
                .bind(Utc::now())
                .fetch_one(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(version)
        })
    }

    /// Returns `Ok(None)` when that version does not exist.
    pub async fn get_version(
        &self,
        project_id: Id,
        field_name: &str,
        number: i32,
    ) -> Result<Option<Version>, sqlx::Error> {
        let sql = "SELECT * FROM versions WHERE project_id = $1 AND field_name = $2 AND version_number = $3";
        on_pool!(self, pool => sqlx::query_as::<_, Version>(sql)
            .bind(project_id)
            .bind(field_name)
            .bind(number)
            .fetch_optional(pool)
            .await)
    }

    /// A project's versions, newest first, optionally of one field.
    pub async fn list_versions(
        &self,
        project_id: Id,
        field_name: Option<&str>,
        page: Page,
    ) -> Result<Paged<Version>, sqlx::Error> {
        on_pool!(self, pool => fetch_page!(pool, Version, "versions", "created_at DESC, field_name, version_number DESC", page.limit(), page.offset(), |q| {
            q.push(" WHERE project_id = ").push_bind(project_id);
            if let Some(field_name) = field_name {
                q.push(" AND field_name = ").push_bind(field_name);
            }
        }))
    }
}
