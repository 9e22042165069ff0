//! `steward projects list|show` and `steward tasks list|show|add|move`: the board from a
//! terminal. Writes go through the same rules and store functions as `manage_task`, and are
//! recorded in the task's history as made by "cli". (Agents subscribed on a running server
//! learn of them on their next read: a CLI process has no line to the server's subscribers.)

use anyhow::Context;
use serde_json::json;

use super::{print_json, table};
use crate::board::{Actor, TaskStatus};
use crate::cli::{ProjectsAction, TasksAction};
use crate::rules::{self, TaskFields, validate};
use crate::stdout::{out, outln};
use crate::store::overview::ProjectSummary;
use crate::store::task_activity::TaskActivity;
use crate::store::tasks::{Refusal, Task, TaskQuery};
use crate::store::{Id, IdKind, Page, Store};
use crate::views::project_summary_view;

/// Most projects listed.
const MAX_PROJECTS: i64 = 1000;
/// Most history rows `tasks show` prints.
const MAX_HISTORY: i64 = 1000;
/// Longest cell in a table.
const CELL: usize = 60;

/// Who a CLI change is recorded as.
fn actor() -> Actor {
    Actor {
        session_id: None,
        client_name: Some("cli".to_string()),
        principal: None,
    }
}

fn status(text: &str) -> anyhow::Result<TaskStatus> {
    serde_json::from_value(json!(text)).with_context(|| {
        format!(
            "{text:?} is not a task status; allowed: {}",
            TaskStatus::ALL.join(", ")
        )
    })
}

async fn resolve(store: &Store, kind: IdKind, text: &str) -> anyhow::Result<Id> {
    let id = super::resolve_id(store, kind, text.trim()).await?;
    id.parse()
        .with_context(|| format!("{id:?} is not a valid {} id", kind.noun()))
}

pub async fn projects(store: &Store, action: ProjectsAction) -> anyhow::Result<()> {
    match action {
        ProjectsAction::List { output } => {
            let rows = store.project_summaries(MAX_PROJECTS).await?;
            if output.json {
                let rows: Vec<_> = rows.iter().map(project_summary_view).collect();
                return print_json(&json!({ "projects": rows }));
            }
            out!("{}", projects_table(&rows))?;
            outln!("{} projects", rows.len())?;
        }
        ProjectsAction::Show { id, json } => {
            let id = resolve(store, IdKind::Project, &id).await?;
            let project = store
                .get_project(id)
                .await?
                .with_context(|| format!("no project has id {id}"))?;
            let summary = store.project_summary(id).await?;
            let query = TaskQuery {
                project_id: Some(id),
                include_closed: true,
                ..TaskQuery::default()
            };
            let tasks = store.list_tasks(&query, first_page(100)?).await?;
            if json {
                return print_json(&json!({
                    "project": project,
                    "counts": summary.as_ref().map(project_summary_view),
                    "tasks": tasks.items,
                    "task_total": tasks.total,
                }));
            }
            outln!("{}  {}", project.id, project.title)?;
            if !project.description.is_empty() {
                outln!("{}", project.description)?;
            }
            if let Some(s) = &summary {
                outln!(
                    "todo {}  doing {}  review {}  done {}  ({}% done)",
                    s.counts.todo,
                    s.counts.doing,
                    s.counts.review,
                    s.counts.done,
                    s.counts.progress_percent()
                )?;
            }
            out!("{}", tasks_table(&tasks.items))?;
        }
    }
    Ok(())
}

fn first_page(limit: u32) -> anyhow::Result<Page> {
    validate::page(1, limit).map_err(|e| anyhow::anyhow!("--limit: {e}"))
}

fn projects_table(rows: &[ProjectSummary]) -> String {
    table::columns(
        rows,
        CELL,
        &[
            ("ID", &|p| p.id.to_string()),
            ("TITLE", &|p| p.title.clone()),
            ("TODO", &|p| p.counts.todo.to_string()),
            ("DOING", &|p| p.counts.doing.to_string()),
            ("REVIEW", &|p| p.counts.review.to_string()),
            ("DONE", &|p| p.counts.done.to_string()),
            ("PROGRESS", &|p| format!("{}%", p.counts.progress_percent())),
            ("LAST ACTIVITY", &|p| {
                p.last_activity.format("%Y-%m-%d %H:%M").to_string()
            }),
        ],
    )
}

fn tasks_table(rows: &[Task]) -> String {
    table::columns(
        rows,
        CELL,
        &[
            ("ID", &|t| t.id.to_string()),
            ("STATUS", &|t| t.status.clone()),
            ("ORDER", &|t| t.task_order.to_string()),
            ("ASSIGNEE", &|t| t.assignee.clone()),
            ("FEATURE", &|t| t.feature.clone().unwrap_or_default()),
            ("TITLE", &|t| t.title.clone()),
        ],
    )
}

pub async fn tasks(store: &Store, action: TasksAction) -> anyhow::Result<()> {
    match action {
        TasksAction::List {
            project,
            status: wanted,
            assignee,
            query,
            limit,
            json,
        } => {
            let project_id = match project {
                Some(p) => Some(resolve(store, IdKind::Project, &p).await?),
                None => None,
            };
            let query = TaskQuery {
                project_id,
                status: wanted
                    .as_deref()
                    .map(status)
                    .transpose()?
                    .map(TaskStatus::as_str),
                assignee,
                text: query,
                include_closed: true,
                ..TaskQuery::default()
            };
            let found = store.list_tasks(&query, first_page(limit)?).await?;
            if json {
                return print_json(&json!({ "tasks": found.items, "total": found.total }));
            }
            out!("{}", tasks_table(&found.items))?;
            outln!("{} of {} tasks", found.items.len(), found.total)?;
        }
        TasksAction::Show { id, json } => {
            let id = resolve(store, IdKind::Task, &id).await?;
            let task = store
                .get_task(id)
                .await?
                .with_context(|| format!("no task has id {id}"))?;
            let history = store.task_history(id, MAX_HISTORY).await?;
            let activity = store.task_activity(id, &task.status).await?;
            if json {
                return print_json(
                    &json!({ "task": task, "history": history, "activity": activity }),
                );
            }
            outln!("{}  [{}]  {}", task.id, task.status, task.title)?;
            outln!(
                "assignee {}  order {}  feature {}",
                task.assignee,
                task.task_order,
                task.feature.as_deref().unwrap_or("-")
            )?;
            if !task.description.is_empty() {
                outln!("\n{}\n", task.description)?;
            }
            for row in &history {
                let change = &row.change;
                outln!(
                    "{}  {}: {} -> {}  by {}",
                    change.changed_at.format("%Y-%m-%d %H:%M:%S"),
                    change.field,
                    change.old_value.as_deref().unwrap_or("-"),
                    change.new_value.as_deref().unwrap_or("-"),
                    row.client_name.as_deref().unwrap_or("unknown"),
                )?;
            }
            out!("{}", activity_text(&activity))?;
        }
        TasksAction::Add {
            project,
            title,
            description,
            assignee,
            feature,
            order,
            status: initial,
            json,
        } => {
            let project_id = resolve(store, IdKind::Project, &project).await?;
            let fields = TaskFields {
                title: Some(title),
                description,
                status: initial.as_deref().map(status).transpose()?,
                assignee,
                task_order: order,
                feature,
                ..TaskFields::default()
            };
            let new = rules::new_task(project_id, fields).map_err(field_error)?;
            let task = store
                .create_task(&new, &actor())
                .await?
                .map_err(|refusal| anyhow::anyhow!("the task was not added: {refusal}"))?;
            print_task(&task, json, "added")?;
        }
        TasksAction::Move {
            id,
            status: to,
            json,
        } => {
            let id = resolve(store, IdKind::Task, &id).await?;
            let fields = TaskFields {
                status: Some(status(&to)?),
                ..TaskFields::default()
            };
            let changes = rules::task_changes(fields).map_err(field_error)?;
            let written = store
                .update_task(id, &changes, None, &actor())
                .await?
                .map_err(|refusal| match refusal {
                    Refusal::NotFound => {
                        anyhow::anyhow!("no live task has id {id} (archived tasks cannot move)")
                    }
                    other => anyhow::anyhow!("task {id} was not moved: {other}"),
                })?;
            print_task(&written.task, json, "moved")?;
        }
    }
    Ok(())
}

/// A task's activity for `tasks show`: totals, time from doing to done, and who worked on it.
fn activity_text(a: &TaskActivity) -> String {
    let t = &a.totals;
    let mut out = format!(
        "\nactivity: {} calls  {} errors ({} tool errors)  ~{} tokens  ~${}  {} sessions\n",
        t.calls, t.errors, t.tool_errors, t.estimated_tokens, a.estimated_cost_usd, a.session_count
    );
    let when = |t: Option<chrono::DateTime<chrono::Utc>>| {
        t.map_or("-".to_string(), |t| {
            t.format("%Y-%m-%d %H:%M:%S").to_string()
        })
    };
    out.push_str(&format!(
        "doing {}  done {}  doing to done {}\n",
        when(a.started_at),
        when(a.done_at),
        a.doing_to_done_seconds
            .map_or("-".to_string(), |s| humantime::format_duration(
                std::time::Duration::from_secs(s.unsigned_abs())
            )
            .to_string()),
    ));
    for part in &a.sessions {
        out.push_str(&format!(
            "  {}  {}  {} calls  {} errors  ~{} tokens  ~${}\n",
            part.session_id.as_deref().unwrap_or("(no session)"),
            part.client_name.as_deref().unwrap_or("unknown client"),
            part.sums.calls,
            part.sums.errors,
            part.sums.estimated_tokens,
            part.estimated_cost_usd,
        ));
    }
    out
}

fn field_error(error: rules::FieldError) -> anyhow::Error {
    anyhow::anyhow!("{}: {} ({})", error.field, error.message, error.suggestion)
}

fn print_task(task: &Task, json: bool, what: &str) -> anyhow::Result<()> {
    if json {
        return print_json(&json!({ "task": task }));
    }
    outln!("{what} {}  [{}]  {}", task.id, task.status, task.title)?;
    Ok(())
}
