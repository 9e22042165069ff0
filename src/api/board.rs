//! The board under `/api/`: projects with their task counts, a project's tasks, one task and
//! its history, and writes (create, change) that go through the same rules and store
//! functions as the MCP tools, record who made them, and tell subscribed agents.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{FromRequest, Path, Query, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::board::{Actor, TaskStatus};
use crate::resources::changes::{BoardChanges, Change};
use crate::rules::{self, FieldError, TaskFields, validate};
use crate::security::admin::AdminName;
use crate::store::tasks::{Refusal, Task, TaskQuery};
use crate::store::{Id, Page, Store};
use crate::views::{list_view, page_view, project_summary_view, summary_view};

/// Most projects `GET /api/projects` lists.
const MAX_PROJECTS: i64 = 1000;
/// Most history rows a task view shows.
const MAX_HISTORY: i64 = 1000;
/// Tasks per page by default (the board's columns page through more).
const DEFAULT_PER_PAGE: u32 = 50;

#[derive(Clone)]
pub(super) struct BoardState {
    pub store: Store,
    pub changes: BoardChanges,
}

pub(super) fn router(state: BoardState) -> Router {
    Router::new()
        .route("/api/projects", get(list_projects))
        .route("/api/projects/{id}", get(show_project))
        .route(
            "/api/projects/{id}/tasks",
            get(list_tasks).post(create_task),
        )
        .route("/api/projects/{id}/documents", get(list_documents))
        .route("/api/projects/{id}/documents/{doc}", get(show_document))
        .route("/api/projects/{id}/versions", get(list_versions))
        .route(
            "/api/projects/{id}/versions/restore",
            axum::routing::post(restore_version),
        )
        .route("/api/tasks/{id}", get(show_task).patch(update_task))
        .route("/api/tasks/{id}/history", get(task_history))
        .route("/api/tasks/{id}/activity", get(task_activity))
        .with_state(state)
}

/// A board API error: JSON naming the field at fault, when one is.
pub(super) enum BoardError {
    Field(StatusCode, FieldError),
    NotFound(String),
    /// The task is claimed by an agent (409).
    Conflict(String),
    Database(sqlx::Error),
}

impl BoardError {
    /// A write the store refused for task `id`, in the API's terms.
    fn refused(refusal: Refusal, id: Id) -> Self {
        match refusal {
            Refusal::NotFound => BoardError::NotFound(format!("no live task has id {id}")),
            Refusal::Held(claim)
            | Refusal::StaleToken {
                current: Some(claim),
            } => BoardError::Conflict(format!(
                "task {id} is claimed by session {} ({}) until {}; wait for the agent to release it or for the lease to end",
                claim.claimed_by,
                claim.claimed_client.as_deref().unwrap_or("unknown client"),
                claim.lease_until.to_rfc3339()
            )),
            Refusal::BadParent { parent, problem } => BoardError::Field(
                StatusCode::BAD_REQUEST,
                FieldError::new(
                    "parent_task_id",
                    format!("parent_task_id {parent} {problem}"),
                    "Pick a live task of the same project that is not below this one",
                ),
            ),
            other => BoardError::Conflict(format!("task {id}: {other}")),
        }
    }
}

impl From<FieldError> for BoardError {
    fn from(error: FieldError) -> Self {
        BoardError::Field(StatusCode::BAD_REQUEST, error)
    }
}

impl From<sqlx::Error> for BoardError {
    fn from(error: sqlx::Error) -> Self {
        BoardError::Database(error)
    }
}

impl IntoResponse for BoardError {
    fn into_response(self) -> Response {
        let (status, error) = match self {
            BoardError::Field(status, e) => (
                status,
                json!({ "field": e.field, "message": e.message, "suggestion": e.suggestion }),
            ),
            BoardError::NotFound(message) => (StatusCode::NOT_FOUND, json!({ "message": message })),
            BoardError::Conflict(message) => (StatusCode::CONFLICT, json!({ "message": message })),
            BoardError::Database(error) => {
                tracing::error!(%error, "board API query failed");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    json!({ "message": "the database could not answer; see /health" }),
                )
            }
        };
        (status, axum::Json(json!({ "error": error }))).into_response()
    }
}

type Answer = Result<Response, BoardError>;

fn ok(body: Value) -> Answer {
    Ok(axum::Json(body).into_response())
}

/// Who a dashboard or API write is recorded as: the admin's name, or just "dashboard" when
/// authentication is off.
fn actor(admin: Option<String>) -> Actor {
    let label = match &admin {
        Some(name) => format!("dashboard ({name})"),
        None => "dashboard".to_string(),
    };
    Actor {
        session_id: None,
        client_name: Some(label),
        principal: admin,
    }
}

/// What a dashboard or API write brings besides its path: who makes it, and its body.
struct Write {
    actor: Actor,
    body: Bytes,
}

impl<S: Send + Sync> FromRequest<S> for Write {
    type Rejection = Response;

    async fn from_request(request: Request, state: &S) -> Result<Self, Response> {
        let admin = request
            .extensions()
            .get::<AdminName>()
            .map(|admin| admin.0.clone());
        let body = Bytes::from_request(request, state)
            .await
            .map_err(IntoResponse::into_response)?;
        Ok(Write {
            actor: actor(admin),
            body,
        })
    }
}

fn parse_id(field: &str, text: &str) -> Result<Id, BoardError> {
    Ok(validate::id(field, Some(text))?)
}

async fn project_or_404(store: &Store, id: Id) -> Result<(), BoardError> {
    match store.get_project(id).await? {
        Some(_) => Ok(()),
        None => Err(BoardError::NotFound(format!("no project has id {id}"))),
    }
}

async fn task_or_404(store: &Store, id: Id) -> Result<Task, BoardError> {
    store
        .get_task(id)
        .await?
        .ok_or_else(|| BoardError::NotFound(format!("no task has id {id}")))
}

async fn list_projects(State(s): State<BoardState>) -> Answer {
    let summaries = s.store.project_summaries(MAX_PROJECTS).await?;
    let projects: Vec<Value> = summaries.iter().map(project_summary_view).collect();
    ok(json!({ "projects": projects, "count": projects.len() }))
}

async fn show_project(State(s): State<BoardState>, Path(id): Path<String>) -> Answer {
    let id = parse_id("project_id", &id)?;
    let project = s
        .store
        .get_project(id)
        .await?
        .ok_or_else(|| BoardError::NotFound(format!("no project has id {id}")))?;
    let summary = s.store.project_summary(id).await?;
    ok(json!({
        "project": project,
        "counts": summary.as_ref().map(project_summary_view),
    }))
}

#[derive(Debug, Deserialize)]
struct TaskListQuery {
    status: Option<String>,
    assignee: Option<String>,
    feature: Option<String>,
    q: Option<String>,
    page: Option<u32>,
    per_page: Option<u32>,
}

/// A non-empty query parameter, bounded like the tools bound it.
fn param(field: &str, value: Option<String>) -> Result<Option<String>, FieldError> {
    let value = value.filter(|v| !v.trim().is_empty());
    validate::opt_text(field, value, validate::MAX_TITLE_CHARS)
}

fn status_param(value: Option<String>) -> Result<Option<&'static str>, FieldError> {
    one_of_param("status", "a task status", TaskStatus::ALL, value)
}

/// A query parameter that must be one of `allowed` (absent or empty: no filter). A value
/// outside them is refused naming them, rather than filtering everything out.
fn one_of_param(
    field: &str,
    noun: &str,
    allowed: &'static [&'static str],
    value: Option<String>,
) -> Result<Option<&'static str>, FieldError> {
    let Some(value) = value.filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    allowed
        .iter()
        .find(|s| **s == value)
        .copied()
        .map(Some)
        .ok_or_else(|| {
            let allowed = allowed.join(", ");
            FieldError::new(
                field,
                format!("{value:?} is not {noun}; allowed: {allowed}"),
                format!("Use one of {allowed}"),
            )
        })
}

/// `GET /api/projects/{id}/tasks`: live tasks, done ones included (the board has a column
/// for them), highest `task_order` first.
async fn list_tasks(
    State(s): State<BoardState>,
    Path(id): Path<String>,
    Query(q): Query<TaskListQuery>,
) -> Answer {
    let project_id = parse_id("project_id", &id)?;
    project_or_404(&s.store, project_id).await?;
    let page = validate::page(q.page.unwrap_or(1), q.per_page.unwrap_or(DEFAULT_PER_PAGE))?;
    end_expired_claims(&s).await?;
    let query = TaskQuery {
        project_id: Some(project_id),
        status: status_param(q.status)?,
        assignee: param("assignee", q.assignee)?,
        feature: param("feature", q.feature)?,
        text: param("q", q.q)?,
        include_closed: true,
        unclaimed: false,
    };
    let found = s.store.list_tasks(&query, page).await?;
    ok(page_view("tasks", &found, page, list_view))
}

/// A task's JSON body read as `T`; the error names the field at fault.
fn body<T: serde::de::DeserializeOwned>(bytes: &Bytes) -> Result<T, FieldError> {
    body_of(
        bytes,
        "Send a JSON object with title, description, status, assignee, task_order, feature, parent_task_id, sources, code_examples",
    )
}

/// A JSON body read as `T`; the error names the field at fault and suggests `suggestion`.
fn body_of<T: serde::de::DeserializeOwned>(
    bytes: &Bytes,
    suggestion: &str,
) -> Result<T, FieldError> {
    let mut reader = serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(&mut reader).map_err(|error| {
        let path = error.path().to_string();
        let inner = error.inner().to_string();
        let field = if path == "." {
            "body".to_string()
        } else {
            path
        };
        FieldError::new(&field, inner, suggestion)
    })
}

/// Claims whose lease ran out end before the board shows who holds what (the sweep would end
/// them within a poll; a person should not see a lease end in the past meanwhile).
async fn end_expired_claims(s: &BoardState) -> Result<(), BoardError> {
    let ended = s.store.end_expired_claims().await?;
    s.changes.publish_tasks(&ended);
    Ok(())
}

/// `POST /api/projects/{id}/tasks`: 201 with the new task.
async fn create_task(State(s): State<BoardState>, Path(id): Path<String>, write: Write) -> Answer {
    let project_id = parse_id("project_id", &id)?;
    project_or_404(&s.store, project_id).await?;
    let new = rules::new_task(project_id, body::<TaskFields>(&write.body)?)?;
    let task = s
        .store
        .create_task(&new, &write.actor)
        .await?
        .map_err(|refusal| BoardError::refused(refusal, project_id))?;
    s.changes.publish(Change::of_task(&task));
    Ok((StatusCode::CREATED, axum::Json(json!({ "task": task }))).into_response())
}

async fn show_task(State(s): State<BoardState>, Path(id): Path<String>) -> Answer {
    let id = parse_id("task_id", &id)?;
    end_expired_claims(&s).await?;
    let task = task_or_404(&s.store, id).await?;
    ok(json!({ "task": task }))
}

/// `PATCH /api/tasks/{id}`: changes the fields given, one history row per changed field.
async fn update_task(State(s): State<BoardState>, Path(id): Path<String>, write: Write) -> Answer {
    let id = parse_id("task_id", &id)?;
    let changes = rules::task_changes(body::<TaskFields>(&write.body)?)?;
    let written = s
        .store
        .update_task(id, &changes, None, &write.actor)
        .await?
        .map_err(|refusal| BoardError::refused(refusal, id))?;
    s.changes.publish(Change::of_task(&written.task));
    s.changes.publish_tasks(&written.unblocked);
    ok(json!({ "task": written.task }))
}

async fn task_history(State(s): State<BoardState>, Path(id): Path<String>) -> Answer {
    let id = parse_id("task_id", &id)?;
    task_or_404(&s.store, id).await?;
    let history = s.store.task_history(id, MAX_HISTORY).await?;
    ok(json!({ "task_id": id, "history": history, "count": history.len() }))
}

/// `GET /api/tasks/{id}/activity`: what the calls about the task cost, who made them, and
/// how long it took from `doing` to `done`.
async fn task_activity(State(s): State<BoardState>, Path(id): Path<String>) -> Answer {
    let task = task_or_404(&s.store, parse_id("task_id", &id)?).await?;
    let activity = s.store.task_activity(task.id, &task.status).await?;
    ok(json!({ "activity": activity }))
}

#[derive(Debug, Deserialize)]
struct PageQuery {
    page: Option<u32>,
    per_page: Option<u32>,
    field: Option<String>,
}

/// The project a list is of (404 when there is none) and the page asked for (100 rows by
/// default).
async fn project_page(store: &Store, id: &str, q: &PageQuery) -> Result<(Id, Page), BoardError> {
    let project_id = parse_id("project_id", id)?;
    project_or_404(store, project_id).await?;
    let page = validate::page(q.page.unwrap_or(1), q.per_page.unwrap_or(100))?;
    Ok((project_id, page))
}

async fn list_documents(
    State(s): State<BoardState>,
    Path(id): Path<String>,
    Query(q): Query<PageQuery>,
) -> Answer {
    let (project_id, page) = project_page(&s.store, &id, &q).await?;
    let query = crate::store::documents::DocumentQuery {
        project_id,
        document_type: None,
        text: None,
    };
    let found = s.store.list_documents(&query, page).await?;
    let documents: Vec<Value> = found.items.iter().map(summary_view).collect();
    ok(json!({ "documents": documents, "total": found.total }))
}

async fn show_document(
    State(s): State<BoardState>,
    Path((id, doc)): Path<(String, String)>,
) -> Answer {
    let project_id = parse_id("project_id", &id)?;
    let document_id = parse_id("document_id", &doc)?;
    let document = s
        .store
        .get_document(project_id, document_id)
        .await?
        .ok_or_else(|| {
            BoardError::NotFound(format!(
                "project {project_id} has no document {document_id}"
            ))
        })?;
    ok(json!({ "document": document }))
}

async fn list_versions(
    State(s): State<BoardState>,
    Path(id): Path<String>,
    Query(q): Query<PageQuery>,
) -> Answer {
    let (project_id, page) = project_page(&s.store, &id, &q).await?;
    let field = one_of_param(
        "field",
        "a versioned field",
        crate::board::VersionField::ALL,
        q.field,
    )?;
    let found = s.store.list_versions(project_id, field, page).await?;
    ok(json!({ "versions": found.items, "total": found.total }))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RestoreBody {
    field_name: crate::board::VersionField,
    version_number: i32,
}

/// `POST /api/projects/{id}/versions/restore`: the same restore as `manage_version restore`
/// (the current value snapshotted first), recorded as made by the dashboard's login.
async fn restore_version(
    State(s): State<BoardState>,
    Path(id): Path<String>,
    write: Write,
) -> Answer {
    use crate::store::restore::RestoreRefusal;
    let project_id = parse_id("project_id", &id)?;
    let asked = body_of::<RestoreBody>(
        &write.body,
        "Send {\"field_name\": docs, features, data or prd, \"version_number\": N}",
    )?;
    let created_by = write.actor.client_name.unwrap_or_default();
    let restored = s
        .store
        .restore_version(
            project_id,
            asked.field_name,
            asked.version_number,
            &created_by,
        )
        .await?
        .map_err(|refusal| match refusal {
            RestoreRefusal::NotDocuments { .. } => BoardError::Field(
                StatusCode::UNPROCESSABLE_ENTITY,
                FieldError::new(
                    "version_number",
                    refusal.to_string(),
                    "Restore a docs version that Steward recorded itself",
                ),
            ),
            other => BoardError::NotFound(other.to_string()),
        })?;
    for &document_id in &restored.documents {
        s.changes.publish(Change::Document {
            project_id,
            document_id,
        });
    }
    s.changes.publish(Change::Project { project_id });
    ok(json!({
        "restored_version": restored.from_version,
        "backup_version": restored.backup.version_number,
        "version": restored.restored,
    }))
}
