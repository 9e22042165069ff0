//! `steward import archon --from postgres://… [--dry-run]`: reads Archon v1's board
//! (`archon_projects`, `archon_tasks`, `archon_document_versions`) and writes it into Steward's
//! database with the same ids and timestamps, sub-task links (`parent_task_id`), task
//! `sources` and `code_examples`, and pinned projects. Older Archon databases lack some columns
//! (`prd`, `archived_at`, `parent_task_id`, ...); those read as empty. A missing table or a
//! column Steward cannot do without stops the import before anything is written.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use anyhow::{Context, bail};
use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::postgres::{PgPoolOptions, PgRow};
use sqlx::types::Json;
use sqlx::{PgPool, Row};

use crate::board::{DocumentType, TaskStatus, VersionField};
use crate::cli::ImportSource;
use crate::stdout::outln;
use crate::store::documents::Document;
use crate::store::import::{ImportBatch, ImportCounts};
use crate::store::projects::Project;
use crate::store::tasks::Task;
use crate::store::versions::Version;
use crate::store::{DatabaseUrl, Id, Store};

/// `(table, columns it must have)`; the others each reader names are read when present.
const TABLES: [(&str, &[&str]); 3] = [
    (
        "archon_projects",
        &["id", "title", "created_at", "updated_at"],
    ),
    (
        "archon_tasks",
        &[
            "id",
            "project_id",
            "title",
            "status",
            "created_at",
            "updated_at",
        ],
    ),
    (
        "archon_document_versions",
        &[
            "project_id",
            "field_name",
            "version_number",
            "content",
            "created_at",
        ],
    ),
];

pub async fn run(store: &Store, source: ImportSource) -> anyhow::Result<()> {
    let ImportSource::Archon { from, dry_run } = source;
    let redacted = DatabaseUrl::parse(&from)
        .map(|u| u.redacted())
        .unwrap_or_default();
    let archon = PgPoolOptions::new()
        .max_connections(1)
        .connect(&from)
        .await
        .with_context(|| format!("cannot connect to Archon's database at {redacted}"))?;
    let outcome = import(store, &archon, dry_run).await;
    archon.close().await;
    let (counts, notes) = outcome?;
    let verb = if dry_run { "would add" } else { "added" };
    outln!(
        "{verb}: {} projects, {} documents, {} tasks, {} versions",
        counts.projects,
        counts.documents,
        counts.tasks,
        counts.versions
    )?;
    for note in notes {
        outln!("note: {note}")?;
    }
    if counts.total() == 0 {
        outln!("nothing to add: every row of this Archon board is already in Steward")?;
    } else if dry_run {
        outln!("dry run: nothing was written; run again without --dry-run to import")?;
    }
    Ok(())
}

async fn import(
    store: &Store,
    archon: &PgPool,
    dry_run: bool,
) -> anyhow::Result<(ImportCounts, Vec<String>)> {
    let mut reader = Reader {
        archon,
        present: check_schema(archon).await?,
        batch: ImportBatch::default(),
        notes: Vec::new(),
    };
    reader.read_projects().await?;
    let projects: HashSet<Id> = reader.batch.projects.iter().map(|p| p.id).collect();
    reader.read_tasks(&projects).await?;
    reader.read_versions(&projects).await?;
    let Reader {
        batch, mut notes, ..
    } = reader;
    let counts = store.import_batch(&batch, !dry_run).await?;
    if counts.orphans > 0 {
        notes.push(format!(
            "{} tasks name a parent_task_id that is not a task of their project and were imported without a parent",
            counts.orphans
        ));
    }
    Ok((counts, notes))
}

/// Every `(table, column)` of the three tables; fails naming what is missing.
async fn check_schema(archon: &PgPool) -> anyhow::Result<BTreeSet<(String, String)>> {
    let rows: Vec<(String, String)> = sqlx::query_as(
        "SELECT table_name::text, column_name::text FROM information_schema.columns \
         WHERE table_schema = current_schema() AND table_name IN ('archon_projects', 'archon_tasks', 'archon_document_versions')",
    )
    .fetch_all(archon)
    .await
    .context("cannot read Archon's schema (information_schema.columns)")?;
    let present: BTreeSet<(String, String)> = rows.into_iter().collect();
    for (table, required) in TABLES {
        if !present.iter().any(|(t, _)| t == table) {
            bail!(
                "Archon's database has no table {table} (in its current schema); is --from the database Archon v1 uses?"
            );
        }
        let missing: Vec<&str> = required
            .iter()
            .copied()
            .filter(|c| !present.contains(&(table.to_string(), c.to_string())))
            .collect();
        if !missing.is_empty() {
            bail!(
                "Archon's table {table} has no column {}; Steward needs it to import, so nothing was written",
                missing.join(", ")
            );
        }
    }
    Ok(present)
}

/// Archon's database as the import reads it, and what it has read so far.
struct Reader<'a> {
    archon: &'a PgPool,
    /// Every `(table, column)` Archon's tables have (see `check_schema`).
    present: BTreeSet<(String, String)>,
    batch: ImportBatch,
    notes: Vec<String>,
}

impl Reader<'_> {
    /// Every row of `table`, ordered by `order_by`, with each `(column, type)` cast to its type, or
    /// a typed NULL where the table lacks the column (older Archon versions; `check_schema` has
    /// already refused a table without a column Steward needs).
    async fn fetch(
        &self,
        table: &str,
        columns: &[(&str, &str)],
        order_by: &str,
    ) -> anyhow::Result<Vec<PgRow>> {
        let select: Vec<String> = columns
            .iter()
            .map(|(column, ty)| {
                if self
                    .present
                    .contains(&(table.to_string(), column.to_string()))
                {
                    format!("{column}::{ty} AS {column}")
                } else {
                    format!("NULL::{ty} AS {column}")
                }
            })
            .collect();
        let sql = format!(
            "SELECT {} FROM {table} ORDER BY {order_by}",
            select.join(", ")
        );
        sqlx::query(&sql)
            .fetch_all(self.archon)
            .await
            .with_context(|| format!("reading {table}"))
    }

    async fn read_projects(&mut self) -> anyhow::Result<()> {
        let rows = self
            .fetch(
                "archon_projects",
                &[
                    ("id", "text"),
                    ("title", "text"),
                    ("description", "text"),
                    ("docs", "jsonb"),
                    ("features", "jsonb"),
                    ("data", "jsonb"),
                    ("prd", "jsonb"),
                    ("github_repo", "text"),
                    ("pinned", "boolean"),
                    ("created_at", "timestamptz"),
                    ("updated_at", "timestamptz"),
                ],
                "created_at, id",
            )
            .await?;
        let mut skipped_docs = 0;
        for row in rows {
            let id = parse_id(row.try_get("id")?, "archon_projects.id")?;
            let created_at: DateTime<Utc> = row.try_get("created_at")?;
            let docs: Option<Value> = row.try_get("docs")?;
            for doc in docs
                .as_ref()
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                match document(id, doc, created_at) {
                    Some(d) => self.batch.documents.push(d),
                    None => skipped_docs += 1,
                }
            }
            self.batch.projects.push(Project {
                id,
                title: row.try_get("title")?,
                description: text_or_empty(&row, "description")?,
                github_repo: row.try_get("github_repo")?,
                features: json_or(&row, "features", Value::Array(vec![]))?,
                data: json_or(&row, "data", Value::Array(vec![]))?,
                prd: json_or(&row, "prd", Value::Object(Default::default()))?,
                pinned: row.try_get::<Option<bool>, _>("pinned")?.unwrap_or(false),
                created_at,
                updated_at: row.try_get("updated_at")?,
            });
        }
        if skipped_docs > 0 {
            self.notes.push(format!(
                "{skipped_docs} documents in archon_projects.docs have no id or title and were skipped"
            ));
        }
        Ok(())
    }

    async fn read_tasks(&mut self, projects: &HashSet<Id>) -> anyhow::Result<()> {
        let rows = self
            .fetch(
                "archon_tasks",
                &[
                    ("id", "text"),
                    ("project_id", "text"),
                    ("title", "text"),
                    ("status", "text"),
                    ("description", "text"),
                    ("assignee", "text"),
                    ("task_order", "bigint"),
                    ("feature", "text"),
                    ("archived", "boolean"),
                    ("archived_at", "timestamptz"),
                    ("archived_by", "text"),
                    ("parent_task_id", "text"),
                    ("sources", "jsonb"),
                    ("code_examples", "jsonb"),
                    ("created_at", "timestamptz"),
                    ("updated_at", "timestamptz"),
                ],
                "created_at, id",
            )
            .await?;
        let mut problems: BTreeMap<&str, usize> = BTreeMap::new();
        for row in rows {
            let project_id = parse_id(row.try_get("project_id")?, "archon_tasks.project_id")?;
            if !projects.contains(&project_id) {
                *problems
                    .entry("tasks of no imported project were skipped")
                    .or_default() += 1;
                continue;
            }
            let status: String = row.try_get("status")?;
            let status = match TaskStatus::ALL.iter().find(|s| **s == status) {
                Some(s) => *s,
                None => {
                    *problems
                        .entry("tasks with an unknown status became todo")
                        .or_default() += 1;
                    "todo"
                }
            };
            let order: i64 = row.try_get::<Option<i64>, _>("task_order")?.unwrap_or(0);
            if !(0..=100).contains(&order) {
                *problems
                    .entry("task_order values outside 0..100 were clamped")
                    .or_default() += 1;
            }
            let archived = row.try_get::<Option<bool>, _>("archived")?.unwrap_or(false);
            let updated_at: DateTime<Utc> = row.try_get("updated_at")?;
            let archived_at: Option<DateTime<Utc>> = row.try_get("archived_at")?;
            self.batch.tasks.push(Task {
                id: parse_id(row.try_get("id")?, "archon_tasks.id")?,
                project_id,
                title: row.try_get("title")?,
                description: text_or_empty(&row, "description")?,
                status: status.to_string(),
                assignee: row
                    .try_get::<Option<String>, _>("assignee")?
                    .filter(|a| !a.trim().is_empty())
                    .unwrap_or_else(|| "User".into()),
                task_order: order.clamp(0, 100) as i32,
                feature: row.try_get("feature")?,
                archived,
                archived_at: if archived {
                    archived_at.or(Some(updated_at))
                } else {
                    None
                },
                archived_by: row.try_get("archived_by")?,
                created_at: row.try_get("created_at")?,
                updated_at,
                parent_task_id: row
                    .try_get::<Option<String>, _>("parent_task_id")?
                    .map(|p| parse_id(&p, "archon_tasks.parent_task_id"))
                    .transpose()?,
                sources: Json(list(
                    row.try_get("sources")?,
                    "task sources that were not a JSON list became []",
                    &mut problems,
                )),
                code_examples: Json(list(
                    row.try_get("code_examples")?,
                    "task code_examples that were not a JSON list became []",
                    &mut problems,
                )),
                ..Task::default()
            });
        }
        self.notes
            .extend(problems.into_iter().map(|(what, n)| format!("{n} {what}")));
        Ok(())
    }

    async fn read_versions(&mut self, projects: &HashSet<Id>) -> anyhow::Result<()> {
        let rows = self
            .fetch(
                "archon_document_versions",
                &[
                    ("id", "text"),
                    ("project_id", "text"),
                    ("field_name", "text"),
                    ("version_number", "bigint"),
                    ("content", "jsonb"),
                    ("change_summary", "text"),
                    ("change_type", "text"),
                    ("document_id", "text"),
                    ("created_by", "text"),
                    ("created_at", "timestamptz"),
                ],
                "created_at",
            )
            .await?;
        let mut skipped = 0;
        for row in rows {
            let project_id = parse_id(
                row.try_get("project_id")?,
                "archon_document_versions.project_id",
            )?;
            let field: String = row.try_get("field_name")?;
            let number: i64 = row.try_get("version_number")?;
            let (Some(field_name), Ok(version_number)) = (
                VersionField::ALL.iter().find(|f| **f == field).copied(),
                i32::try_from(number),
            ) else {
                skipped += 1;
                continue;
            };
            if !projects.contains(&project_id) || version_number < 1 {
                skipped += 1;
                continue;
            }
            let id: Option<String> = row.try_get("id")?;
            let document_id: Option<String> = row.try_get("document_id")?;
            let change_type: Option<String> = row.try_get("change_type")?;
            self.batch.versions.push(Version {
                id: id.and_then(|i| i.parse().ok()).unwrap_or_default(),
                project_id,
                field_name: field_name.to_string(),
                version_number,
                content: Json(row.try_get("content")?),
                change_summary: text_or_empty(&row, "change_summary")?,
                // Steward knows snapshots and restores; Archon's other kinds are snapshots.
                change_type: if change_type.as_deref() == Some("restore") {
                    "restore"
                } else {
                    "create"
                }
                .to_string(),
                document_id: document_id.and_then(|d| d.parse().ok()),
                created_by: row
                    .try_get::<Option<String>, _>("created_by")?
                    .unwrap_or_else(|| "archon".into()),
                created_at: row.try_get("created_at")?,
            });
        }
        if skipped > 0 {
            self.notes.push(format!(
                "{skipped} versions of an unknown field, project or number were skipped"
            ));
        }
        Ok(())
    }
}

/// A text column that may be NULL (or missing), as "" then.
fn text_or_empty(row: &PgRow, column: &str) -> anyhow::Result<String> {
    Ok(row
        .try_get::<Option<String>, _>(column)?
        .unwrap_or_default())
}

/// A JSON column that may be NULL (or missing), as `empty` then.
fn json_or(row: &PgRow, column: &str, empty: Value) -> anyhow::Result<Json<Value>> {
    Ok(Json(
        row.try_get::<Option<Value>, _>(column)?.unwrap_or(empty),
    ))
}

fn parse_id(text: &str, what: &str) -> anyhow::Result<Id> {
    text.parse()
        .with_context(|| format!("{what} {text:?} is not a UUID"))
}

/// A document out of a project's `docs` array; `None` without an id or a title.
fn document(project_id: Id, doc: &Value, fallback: DateTime<Utc>) -> Option<Document> {
    let text = |key: &str| doc.get(key).and_then(Value::as_str);
    let time = |key: &str| {
        text(key)
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or(fallback)
    };
    let kind = text("document_type").unwrap_or("note");
    let document_type = DocumentType::ALL
        .iter()
        .find(|t| **t == kind)
        .copied()
        .unwrap_or("note");
    let tags = doc
        .get("tags")
        .and_then(Value::as_array)
        .map(|tags| {
            tags.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    Some(Document {
        id: text("id")?.parse().ok()?,
        project_id,
        document_type: document_type.to_string(),
        title: text("title").filter(|t| !t.trim().is_empty())?.to_string(),
        content: Json(
            doc.get("content")
                .cloned()
                .unwrap_or(Value::Object(Default::default())),
        ),
        tags: Json(tags),
        author: text("author").unwrap_or_default().to_string(),
        created_at: time("created_at"),
        updated_at: time("updated_at"),
    })
}

/// A task's JSON list as Archon stored it; anything but a list or NULL becomes `[]`, counted
/// under `problem`.
fn list<'a>(
    value: Option<Value>,
    problem: &'a str,
    problems: &mut BTreeMap<&'a str, usize>,
) -> Value {
    match value {
        Some(Value::Array(items)) => Value::Array(items),
        None | Some(Value::Null) => Value::Array(Vec::new()),
        Some(_) => {
            *problems.entry(problem).or_default() += 1;
            Value::Array(Vec::new())
        }
    }
}
