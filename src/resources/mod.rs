//! The board as MCP resources: `steward://projects`, one project, its tasks, its documents,
//! one document, one task — JSON documents an assistant can attach to its context, with
//! templates for the parameterised ones and change notifications for subscribers
//! ([`changes`], [`subscriptions`]).

pub mod changes;
pub mod expiry;
pub mod subscriptions;
pub mod uri;

use rmcp::model::{Resource, ResourceContents, ResourceTemplate};
use serde_json::{Value, json};

use crate::store::documents::DocumentQuery;
use crate::store::tasks::TaskQuery;
use crate::store::{Page, Store};
use crate::views::{list_view, summary_view, to_json};
pub use uri::BoardUri;

const JSON: &str = "application/json";
/// Most projects listed as concrete resources; the rest are reachable through the template.
const LISTED_PROJECTS: u32 = 100;
/// Most rows one list resource carries.
const PAGE: Page = Page {
    page: 1,
    per_page: 100,
};

/// Why a resource could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("resource not found: {0}")]
    NotFound(String),
    #[error("{0}")]
    BadUri(#[from] uri::UriError),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
}

/// The concrete resources: the project list and each project (newest first).
pub async fn list(store: &Store) -> Result<Vec<Resource>, sqlx::Error> {
    let projects = store
        .list_projects(
            None,
            Page {
                page: 1,
                per_page: LISTED_PROJECTS,
            },
        )
        .await?;
    let mut resources = vec![
        Resource::new(BoardUri::Projects.to_string(), "projects")
            .with_title("All projects")
            .with_description("Every project on the board, newest first")
            .with_mime_type(JSON),
    ];
    resources.extend(projects.items.iter().map(|project| {
        Resource::new(
            BoardUri::Project(project.id).to_string(),
            project.title.clone(),
        )
        .with_title(format!("Project: {}", project.title))
        .with_description("The project, its task counts by status and its documents")
        .with_mime_type(JSON)
    }));
    Ok(resources)
}

/// The parameterised resources.
pub fn templates() -> Vec<ResourceTemplate> {
    let template = |uri: &str, name: &str, description: &str| {
        ResourceTemplate::new(uri, name)
            .with_description(description)
            .with_mime_type(JSON)
    };
    vec![
        template(
            "steward://projects/{project_id}",
            "project",
            "One project with its task counts by status and its documents",
        ),
        template(
            "steward://projects/{project_id}/tasks",
            "project-tasks",
            "The project's open tasks (todo, doing, review), highest task_order first",
        ),
        template(
            "steward://projects/{project_id}/documents",
            "project-documents",
            "The project's documents, without their content",
        ),
        template(
            "steward://projects/{project_id}/documents/{document_id}",
            "document",
            "One document with its content",
        ),
        template(
            "steward://tasks/{task_id}",
            "task",
            "One task with its full description, who holds its claim (claimed_by, lease_until) and its blockers",
        ),
    ]
}

/// Reads one `steward://` resource as JSON text.
pub async fn read(
    store: &Store,
    changes: &changes::BoardChanges,
    uri: &str,
) -> Result<ResourceContents, ReadError> {
    let parsed = BoardUri::parse(uri)?;
    if matches!(parsed, BoardUri::ProjectTasks(_) | BoardUri::Task(_)) {
        // Leases that ran out end (and are recorded) before anyone is shown them.
        expiry::publish_ended(changes, &store.end_expired_claims().await?);
    }
    let body = match parsed {
        BoardUri::Projects => {
            let projects = store.list_projects(None, PAGE).await?;
            let items: Vec<Value> = projects.items.iter().map(list_view).collect();
            json!({ "projects": items, "total": projects.total })
        }
        BoardUri::Project(id) => project(store, id).await?,
        BoardUri::ProjectTasks(id) => {
            exists(store, id, uri).await?;
            let query = TaskQuery {
                project_id: Some(id),
                ..TaskQuery::default()
            };
            let tasks = store.list_tasks(&query, PAGE).await?;
            let items: Vec<Value> = tasks.items.iter().map(list_view).collect();
            json!({ "project_id": id, "tasks": items, "total": tasks.total })
        }
        BoardUri::ProjectDocuments(id) => {
            exists(store, id, uri).await?;
            let documents = store.list_documents(&document_query(id), PAGE).await?;
            let items: Vec<Value> = documents.items.iter().map(summary_view).collect();
            json!({ "project_id": id, "documents": items, "total": documents.total })
        }
        BoardUri::Document(project_id, id) => {
            let document = store.get_document(project_id, id).await?;
            to_json(&document.ok_or_else(|| ReadError::NotFound(uri.to_string()))?)
        }
        BoardUri::Task(id) => {
            let task = store.get_task(id).await?.filter(|t| !t.archived);
            to_json(&task.ok_or_else(|| ReadError::NotFound(uri.to_string()))?)
        }
    };
    Ok(ResourceContents::text(body.to_string(), uri).with_mime_type(JSON))
}

async fn project(store: &Store, id: crate::store::Id) -> Result<Value, ReadError> {
    let project = store.get_project(id).await?;
    let project = project.ok_or_else(|| ReadError::NotFound(BoardUri::Project(id).to_string()))?;
    let counts = store.count_tasks_by(Some(id), false).await?;
    let documents = store.list_documents(&document_query(id), PAGE).await?;
    let documents: Vec<Value> = documents
        .items
        .iter()
        .map(|d| json!({ "uri": BoardUri::Document(id, d.id).to_string(), "title": d.title, "document_type": d.document_type }))
        .collect();
    Ok(json!({
        "project": to_json(&project),
        "tasks_by_status": counts.iter().map(|c| (c.key.clone(), json!(c.count))).collect::<serde_json::Map<_, _>>(),
        "tasks_uri": BoardUri::ProjectTasks(id).to_string(),
        "documents": documents,
    }))
}

async fn exists(store: &Store, id: crate::store::Id, uri: &str) -> Result<(), ReadError> {
    match store.get_project(id).await? {
        Some(_) => Ok(()),
        None => Err(ReadError::NotFound(uri.to_string())),
    }
}

fn document_query(project_id: crate::store::Id) -> DocumentQuery {
    DocumentQuery {
        project_id,
        document_type: None,
        text: None,
    }
}
