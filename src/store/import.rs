//! Rows copied from another task server (`steward import`), written in one transaction with
//! their own ids and timestamps. A row whose id (or version number) is already here is left
//! as it is, so importing twice adds nothing the second time.

use serde::Serialize;

use super::documents::Document;
use super::projects::Project;
use super::tasks::Task;
use super::versions::Version;
use super::{Store, WritePool, on_pool, search_text};
use crate::store::tasks::fold;

/// Everything one import writes.
#[derive(Debug, Clone, Default)]
pub struct ImportBatch {
    pub projects: Vec<Project>,
    pub documents: Vec<Document>,
    /// Each task's parent is set after every task is written, so a parent may come later in
    /// the batch.
    pub tasks: Vec<Task>,
    pub versions: Vec<Version>,
}

/// How many rows of each kind were added (or, in a dry run, would be).
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
pub struct ImportCounts {
    pub projects: u64,
    pub documents: u64,
    pub tasks: u64,
    pub versions: u64,
    /// Added tasks whose parent is not a task of their project here: imported without one.
    #[serde(skip)]
    pub orphans: u64,
}

impl ImportCounts {
    pub fn total(&self) -> u64 {
        self.projects + self.documents + self.tasks + self.versions
    }
}

const PROJECT: &str = "INSERT INTO projects (id, title, description, github_repo, features, data, prd, \
    created_at, updated_at, search_text, pinned) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
    ON CONFLICT DO NOTHING";
const DOCUMENT: &str = "INSERT INTO documents (id, project_id, document_type, title, content, tags, author, \
    created_at, updated_at, search_text) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT DO NOTHING";
const TASK: &str = "INSERT INTO tasks (id, project_id, title, description, status, assignee, task_order, \
    feature, archived, archived_at, archived_by, created_at, updated_at, search_text, assignee_key, feature_key, \
    sources, code_examples) \
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18) ON CONFLICT DO NOTHING";
// Only a task of the same project can be the parent.
const PARENT: &str = "UPDATE tasks SET parent_task_id = $2 WHERE id = $1 \
    AND EXISTS (SELECT 1 FROM tasks p WHERE p.id = $2 AND p.id <> tasks.id AND p.project_id = tasks.project_id)";
const VERSION: &str = "INSERT INTO versions (id, project_id, field_name, version_number, content, \
    change_summary, change_type, document_id, created_by, created_at) \
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT DO NOTHING";

impl Store {
    /// Writes `batch` in one transaction, skipping rows already present; commits only when
    /// `commit` (a dry run rolls back). Returns what was (or would be) added.
    pub async fn import_batch(
        &self,
        batch: &ImportBatch,
        commit: bool,
    ) -> Result<ImportCounts, sqlx::Error> {
        let mut counts = ImportCounts::default();
        on_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            for p in &batch.projects {
                counts.projects += sqlx::query(PROJECT)
                    .bind(p.id).bind(&p.title).bind(&p.description).bind(&p.github_repo)
                    .bind(&p.features).bind(&p.data).bind(&p.prd)
                    .bind(p.created_at).bind(p.updated_at)
                    .bind(search_text(&[&p.title, &p.description])).bind(p.pinned)
                    .execute(&mut *tx).await?.rows_affected();
            }
            for d in &batch.documents {
                counts.documents += sqlx::query(DOCUMENT)
                    .bind(d.id).bind(d.project_id).bind(&d.document_type).bind(&d.title)
                    .bind(&d.content).bind(&d.tags).bind(&d.author)
                    .bind(d.created_at).bind(d.updated_at).bind(search_text(&[&d.title]))
                    .execute(&mut *tx).await?.rows_affected();
            }
            let mut added = Vec::new();
            for t in &batch.tasks {
                let inserted = sqlx::query(TASK)
                    .bind(t.id).bind(t.project_id).bind(&t.title).bind(&t.description)
                    .bind(&t.status).bind(&t.assignee).bind(t.task_order).bind(&t.feature)
                    .bind(t.archived).bind(t.archived_at).bind(&t.archived_by)
                    .bind(t.created_at).bind(t.updated_at)
                    .bind(search_text(&[&t.title, &t.description]))
                    .bind(fold(&t.assignee)).bind(t.feature.as_deref().map(fold))
                    .bind(&t.sources).bind(&t.code_examples)
                    .execute(&mut *tx).await?.rows_affected();
                counts.tasks += inserted;
                if inserted > 0 {
                    added.extend(t.parent_task_id.map(|parent| (t.id, parent)));
                }
            }
            for (id, parent) in added {
                let linked = sqlx::query(PARENT).bind(id).bind(parent).execute(&mut *tx).await?;
                counts.orphans += 1 - linked.rows_affected().min(1);
            }
            for v in &batch.versions {
                counts.versions += sqlx::query(VERSION)
                    .bind(v.id).bind(v.project_id).bind(&v.field_name).bind(v.version_number)
                    .bind(&v.content).bind(&v.change_summary).bind(&v.change_type)
                    .bind(v.document_id).bind(&v.created_by).bind(v.created_at)
                    .execute(&mut *tx).await?.rows_affected();
            }
            if commit {
                tx.commit().await?;
            } else {
                tx.rollback().await?;
            }
            Ok(counts)
        })
    }
}
