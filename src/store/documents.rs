//! Project documents (specs, designs, notes, PRPs, API docs, guides) with JSON content.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::types::Json;

use super::{
    Id, Page, Paged, Store, WritePool, fetch_page, like_pattern, on_pool, push_search, search_text,
};

#[derive(Debug, Clone, Serialize, Deserialize, sqlx::FromRow)]
pub struct Document {
    pub id: Id,
    pub project_id: Id,
    pub document_type: String,
    pub title: String,
    pub content: Json<Value>,
    pub tags: Json<Vec<String>>,
    pub author: String,
    #[serde(serialize_with = "super::stamp::serialize")]
    pub created_at: DateTime<Utc>,
    #[serde(serialize_with = "super::stamp::serialize")]
    pub updated_at: DateTime<Utc>,
}

/// Fields of a new document (already validated).
#[derive(Debug, Clone)]
pub struct NewDocument {
    pub project_id: Id,
    pub document_type: &'static str,
    pub title: String,
    pub content: Value,
    pub tags: Vec<String>,
    pub author: String,
}

/// A partial update: `None` leaves the field as it is.
#[derive(Debug, Clone, Default)]
pub struct DocumentChanges {
    pub document_type: Option<&'static str>,
    pub title: Option<String>,
    pub content: Option<Value>,
    pub tags: Option<Vec<String>>,
    pub author: Option<String>,
}

/// Which documents `list_documents` returns.
#[derive(Debug, Clone)]
pub struct DocumentQuery {
    pub project_id: Id,
    pub document_type: Option<&'static str>,
    pub text: Option<String>,
}

const INSERT: &str = "INSERT INTO documents (id, project_id, document_type, title, content, tags, author, \
    created_at, updated_at, search_text) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING *";

impl Store {
    pub async fn create_document(&self, new: &NewDocument) -> Result<Document, sqlx::Error> {
        let now = Utc::now();
        on_pool!(self, pool => sqlx::query_as::<_, Document>(INSERT)
            .bind(Id::new())
            .bind(new.project_id)
            .bind(new.document_type)
            .bind(&new.title)
            .bind(Json(&new.content))
            .bind(Json(&new.tags))
            .bind(&new.author)
            .bind(now)
            .bind(now)
            .bind(search_text(&[&new.title]))
            .fetch_one(pool)
            .await)
    }

    /// Returns `Ok(None)` when the project has no document with this id.
    pub async fn get_document(
        &self,
        project_id: Id,
        id: Id,
    ) -> Result<Option<Document>, sqlx::Error> {
        let sql = "SELECT * FROM documents WHERE project_id = $1 AND id = $2";
        on_pool!(self, pool => sqlx::query_as::<_, Document>(sql).bind(project_id).bind(id).fetch_optional(pool).await)
    }

    /// The project's documents matching `query`, newest first.
    pub async fn list_documents(
        &self,
        query: &DocumentQuery,
        page: Page,
    ) -> Result<Paged<Document>, sqlx::Error> {
        let pattern = query.text.as_deref().map(like_pattern);
        on_pool!(self, pool => fetch_page!(pool, Document, "documents", "created_at DESC, id", page.limit(), page.offset(), |q| {
            // A condition only for each filter given, so the index serves the order.
            q.push(" WHERE project_id = ").push_bind(query.project_id);
            if let Some(kind) = query.document_type {
                q.push(" AND document_type = ").push_bind(kind);
            }
            push_search(&mut q, pattern.as_deref());
        }))
    }

    /// Every document of a project, oldest first (for version snapshots).
    pub async fn all_documents(&self, project_id: Id) -> Result<Vec<Document>, sqlx::Error> {
        let sql = "SELECT * FROM documents WHERE project_id = $1 ORDER BY created_at, id";
        on_pool!(self, pool => sqlx::query_as::<_, Document>(sql).bind(project_id).fetch_all(pool).await)
    }

    /// Returns `Ok(None)` when the project has no document with this id.
    pub async fn update_document(
        &self,
        project_id: Id,
        id: Id,
        changes: &DocumentChanges,
    ) -> Result<Option<Document>, sqlx::Error> {
        let sql = "UPDATE documents SET document_type = COALESCE($3, document_type), title = COALESCE($4, title), \
                   content = COALESCE($5, content), tags = COALESCE($6, tags), author = COALESCE($7, author), \
                   updated_at = $8, search_text = COALESCE($9, search_text) \
                   WHERE project_id = $1 AND id = $2 RETURNING *";
        let search = changes.title.as_deref().map(|title| search_text(&[title]));
        on_pool!(self, pool => sqlx::query_as::<_, Document>(sql)
            .bind(project_id)
            .bind(id)
            .bind(changes.document_type)
            .bind(&changes.title)
            .bind(changes.content.as_ref().map(Json))
            .bind(changes.tags.as_ref().map(Json))
            .bind(&changes.author)
            .bind(Utc::now())
            .bind(&search)
            .fetch_optional(pool)
            .await)
    }

    /// Returns whether the document existed.
    pub async fn delete_document(&self, project_id: Id, id: Id) -> Result<bool, sqlx::Error> {
        let sql = "DELETE FROM documents WHERE project_id = $1 AND id = $2";
        on_pool!(self, pool => sqlx::query(sql).bind(project_id).bind(id).execute(pool).await.map(|r| r.rows_affected() > 0))
    }

    /// Replaces all of a project's documents with `documents`, atomically (version restore).
    pub async fn replace_documents(
        &self,
        project_id: Id,
        documents: &[Document],
    ) -> Result<(), sqlx::Error> {
        on_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            sqlx::query("DELETE FROM documents WHERE project_id = $1").bind(project_id).execute(&mut *tx).await?;
            for doc in documents {
                sqlx::query(INSERT)
                    .bind(doc.id)
                    .bind(project_id)
                    .bind(&doc.document_type)
                    .bind(&doc.title)
                    .bind(&doc.content)
                    .bind(&doc.tags)
                    .bind(&doc.author)
                    .bind(doc.created_at)
                    .bind(doc.updated_at)
                    .bind(search_text(&[&doc.title]))
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await
        })
    }
}
