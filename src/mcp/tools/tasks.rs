//! `find_tasks`, `manage_task`, `get_task_history`, `get_completion_stats`.

use rmcp::service::RequestContext;
use rmcp::{RoleServer, tool, tool_router};
use serde_json::json;

use super::claims::refused;
use super::params::tool_args;
use super::{
    Fields, Parameters, RowView, ToolError, ToolResult, remembered, success, success_fields,
    to_json, validate,
};
use crate::board::{Action, TaskFilter, TaskStatus};
use crate::mcp::BoardServer;
use crate::rules::{self, TaskFields};
use crate::store::Id;
use crate::store::answer_memo::AnswerKey;
use crate::store::tasks::TaskQuery;

const NOT_FOUND_HINT: &str =
    "Use find_tasks to list tasks and their ids (archived tasks cannot be changed)";
/// Most history rows `get_task_history` returns by default.
const DEFAULT_HISTORY_LIMIT: u32 = 100;

tool_args! {
    paged pub struct FindTasksArgs {
        /// Case-insensitive text to look for in titles and descriptions.
        pub query: Option<String>,
        /// Return this one task (full description, archived or not).
        pub task_id: Option<String>,
        /// Filter on one field; give the value in `filter_value`.
        pub filter_by: Option<TaskFilter>,
        /// Value for `filter_by`: a status (todo, doing, review, done), a project id, an assignee
        /// or a feature (assignee and feature match case-insensitively).
        pub filter_value: Option<String>,
        /// Only tasks of this project.
        pub project_id: Option<String>,
        /// Include done tasks (archived tasks are never listed). Without it, `closed_matches` says
        /// how many done tasks matched and were left out.
        #[serde(default)]
        pub include_closed: bool,
        /// Only tasks no one has claimed (or whose claim's lease ran out).
        #[serde(default)]
        pub unclaimed: bool,
    }
}

tool_args! {
    pub struct ManageTaskArgs {
        /// create, update or delete (delete archives the task).
        pub action: Action,
        /// Required for update and delete.
        pub task_id: Option<String>,
        /// Required for create.
        pub project_id: Option<String>,
        /// Required for create.
        pub title: Option<String>,
        pub description: Option<String>,
        /// todo (default), doing, review or done.
        pub status: Option<TaskStatus>,
        /// Who works on it: "User", "Archon", an agent name... Defaults to "User".
        pub assignee: Option<String>,
        /// Priority from 0 (lowest) to 100 (highest). Defaults to 0.
        pub task_order: Option<i64>,
        /// The feature this task belongs to.
        pub feature: Option<String>,
        /// Id of a task of the same project that this one is part of (a sub-task); "" removes it.
        pub parent_task_id: Option<String>,
        /// Where to read up for the task, e.g. [{"url": "https://...", "type": "docs"}]: a list of
        /// at most 100 items (64 KiB). Replaces the list on update.
        #[serde(default)]
        #[schemars(schema_with = "super::params::json_list")]
        pub sources: Option<serde_json::Value>,
        /// Code to look at, e.g. [{"file": "src/auth.rs", "purpose": "token check"}]: a list of at
        /// most 100 items (64 KiB). Replaces the list on update.
        #[serde(default)]
        #[schemars(schema_with = "super::params::json_list")]
        pub code_examples: Option<serde_json::Value>,
        /// Ids of the tasks that must be done before this one can start (replaces the list on
        /// update; [] clears it). A cycle is refused.
        pub blocked_by: Option<Vec<String>>,
        /// For update and delete of a task another session has claimed: the claim's current
        /// claim_token. Without it such a change is refused.
        pub claim_token: Option<String>,
    }
}

tool_args! {
    pub struct TaskHistoryArgs {
        pub task_id: String,
        /// Most changes to return (oldest first), 1 to 1000. Defaults to 100.
        pub limit: Option<u32>,
    }
}

tool_args! {
    pub struct CompletionStatsArgs {
        /// Only this project; all projects when omitted.
        pub project_id: Option<String>,
    }
}

#[tool_router(router = task_tools, vis = "pub(crate)")]
impl BoardServer {
    #[tool(
        description = "List or search tasks (paginated, highest task_order first), filter by status, project, assignee or feature (case-insensitive), only unclaimed ones with unclaimed true, or get one task with `task_id`. Done tasks are hidden unless include_closed is true; closed_matches then says how many matching done tasks were left out. Each task shows claimed_by (the holding session), claimed_client and lease_until when someone works on it, and blocked_by / open_blockers."
    )]
    pub async fn find_tasks(&self, Parameters(args): Parameters<FindTasksArgs>) -> ToolResult {
        // Leases that ran out end (and are recorded) before anyone is shown them.
        if let Some(id) = validate::opt_id("task_id", args.task_id.as_deref())? {
            let ended = self.store().end_expired_claims().await?;
            crate::resources::expiry::publish_ended(&self.ctx.changes, &ended);
            let task = self.store().get_task(id).await?;
            return ToolError::found("task", id, task, NOT_FOUND_HINT);
        }
        let page = args.asked_page()?;
        let mut query = TaskQuery {
            project_id: validate::opt_id("project_id", args.project_id.as_deref())?,
            text: validate::opt_text("query", args.query, validate::MAX_TITLE_CHARS)?,
            include_closed: args.include_closed,
            unclaimed: args.unclaimed,
            ..TaskQuery::default()
        };
        apply_filter(&mut query, args.filter_by, args.filter_value)?;
        let key = AnswerKey::new("find_tasks", &(&query, page));
        remembered(&self.ctx.answers, key, async {
            let swept = self.store().list_tasks_swept(&query, page).await?;
            crate::resources::expiry::publish_ended(&self.ctx.changes, &swept.ended);
            Ok(success_fields(
                Fields::new()
                    .page("tasks", &swept.found, page, RowView::List)
                    .value("closed_matches", &swept.closed_matches),
            ))
        })
        .await
    }

    #[tool(
        description = "Create, update or delete (archive) a task. Every change is recorded in the task's history. blocked_by sets the tasks that must be done first (a cycle is refused). parent_task_id makes it a sub-task of another task of the same project; sources and code_examples are short lists of references. A task another session has claimed can only be changed with its claim_token; claim a task with claim_task before working on it. Moving a task to done or deleting it ends its claim."
    )]
    pub async fn manage_task(
        &self,
        Parameters(args): Parameters<ManageTaskArgs>,
        request: RequestContext<RoleServer>,
    ) -> ToolResult {
        let actor = self.actor(&request);
        let store = self.store();
        let fields = TaskFields {
            title: args.title,
            description: args.description,
            status: args.status,
            assignee: args.assignee,
            task_order: args.task_order,
            feature: args.feature,
            parent_task_id: args.parent_task_id,
            sources: args.sources,
            code_examples: args.code_examples,
        };
        match args.action {
            Action::Create => {
                let project_id = validate::id("project_id", args.project_id.as_deref())?;
                self.require_project(project_id).await?;
                let mut new = rules::new_task(project_id, fields)?;
                new.blocked_by = blockers(args.blocked_by)?.unwrap_or_default();
                let task = store
                    .create_task(&new, &actor)
                    .await?
                    .map_err(|refusal| refused(refusal, project_id))?;
                self.concerns(&request, task.id);
                self.task_changed(&task);
                Ok(success(
                    json!({ "task": to_json(&task), "task_id": task.id, "message": "Task created" }),
                ))
            }
            Action::Update => {
                let id = validate::id("task_id", args.task_id.as_deref())?;
                let mut changes = rules::task_changes(fields)?;
                changes.blocked_by = blockers(args.blocked_by)?;
                let token = validate::opt_id("claim_token", args.claim_token.as_deref())?;
                let written = store
                    .update_task(id, &changes, token, &actor)
                    .await?
                    .map_err(|refusal| refused(refusal, id))?;
                self.changed_with_dependants(&written.task, &written.unblocked);
                Ok(super::written("task", &written.task, "Task updated"))
            }
            Action::Delete => {
                let id = validate::id("task_id", args.task_id.as_deref())?;
                let token = validate::opt_id("claim_token", args.claim_token.as_deref())?;
                let written = store
                    .archive_task(id, token, &actor)
                    .await?
                    .map_err(|refusal| refused(refusal, id))?;
                self.changed_with_dependants(&written.task, &written.unblocked);
                Ok(success(
                    json!({ "task_id": written.task.id, "archived": true, "message": "Task archived" }),
                ))
            }
        }
    }

    #[tool(
        description = "Every recorded change of a task: field, old value, new value, when, and by which session and client."
    )]
    pub async fn get_task_history(
        &self,
        Parameters(args): Parameters<TaskHistoryArgs>,
    ) -> ToolResult {
        let id = validate::id("task_id", Some(&args.task_id))?;
        let limit = args.limit.unwrap_or(DEFAULT_HISTORY_LIMIT);
        if !(1..=1000).contains(&limit) {
            return Err(ToolError::invalid(
                "limit",
                format!("limit must be between 1 and 1000, got {limit}"),
                "Use a limit between 1 and 1000",
            ));
        }
        if self.store().get_task(id).await?.is_none() {
            return Err(ToolError::not_found("task", id, NOT_FOUND_HINT));
        }
        let changes = self.store().task_history(id, i64::from(limit)).await?;
        Ok(success(
            json!({ "task_id": id, "history": to_json(&changes), "count": changes.len() }),
        ))
    }

    #[tool(
        description = "Task counts by status and by assignee, and the completion rate (done / all live tasks)."
    )]
    pub async fn get_completion_stats(
        &self,
        Parameters(args): Parameters<CompletionStatsArgs>,
    ) -> ToolResult {
        let project_id = validate::opt_id("project_id", args.project_id.as_deref())?;
        if let Some(id) = project_id {
            self.require_project(id).await?;
        }
        let by_status = self.store().count_tasks_by(project_id, false).await?;
        let by_assignee = self.store().count_tasks_by(project_id, true).await?;
        let total: i64 = by_status.iter().map(|c| c.count).sum();
        let done: i64 = by_status
            .iter()
            .filter(|c| c.key == "done")
            .map(|c| c.count)
            .sum();
        let status_counts: serde_json::Map<_, _> = TaskStatus::ALL
            .iter()
            .map(|s| {
                let n = by_status
                    .iter()
                    .find(|c| c.key == *s)
                    .map_or(0, |c| c.count);
                (s.to_string(), json!(n))
            })
            .collect();
        let assignee_counts: serde_json::Map<_, _> = by_assignee
            .iter()
            .map(|c| (c.key.clone(), json!(c.count)))
            .collect();
        // A rate with two decimals, as a number; no tasks means nothing is complete.
        let rate = if total == 0 {
            0.0
        } else {
            (done as f64 * 10_000.0 / total as f64).round() / 100.0
        };
        Ok(success(json!({
            "project_id": project_id,
            "total_tasks": total,
            "by_status": status_counts,
            "by_assignee": assignee_counts,
            "completion_rate_percent": rate,
        })))
    }
}

/// Applies `filter_by`/`filter_value` to the query.
fn apply_filter(
    query: &mut TaskQuery,
    by: Option<TaskFilter>,
    value: Option<String>,
) -> Result<(), ToolError> {
    let Some(by) = by else {
        if value.is_some() {
            return Err(ToolError::invalid(
                "filter_by",
                "filter_value was given without filter_by",
                "Set filter_by to status, project, assignee or feature",
            ));
        }
        return Ok(());
    };
    let Some(value) = value else {
        return Err(ToolError::invalid(
            "filter_value",
            format!("filter_by {} needs a filter_value", by.as_str()),
            "Pass the value to filter on in filter_value",
        ));
    };
    match by {
        TaskFilter::Status => {
            let status = TaskStatus::ALL
                .iter()
                .find(|s| **s == value)
                .ok_or_else(|| {
                    ToolError::invalid(
                        "filter_value",
                        format!(
                            "{value:?} is not a task status; allowed: {}",
                            TaskStatus::ALL.join(", ")
                        ),
                        "Use one of todo, doing, review, done",
                    )
                })?;
            query.status = Some(status);
            // Asking for done tasks means wanting to see them.
            query.include_closed |= *status == "done";
        }
        TaskFilter::Project => query.project_id = Some(validate::id("filter_value", Some(&value))?),
        TaskFilter::Assignee => {
            query.assignee = Some(validate::text(
                "filter_value",
                value,
                validate::MAX_TITLE_CHARS,
            )?)
        }
        TaskFilter::Feature => {
            query.feature = Some(validate::text(
                "filter_value",
                value,
                validate::MAX_TITLE_CHARS,
            )?)
        }
    }
    Ok(())
}

/// Most blockers one task may have.
const MAX_BLOCKERS: usize = 100;

/// `blocked_by` as ids, sorted and without repeats.
fn blockers(value: Option<Vec<String>>) -> Result<Option<Vec<Id>>, ToolError> {
    let Some(value) = value else {
        return Ok(None);
    };
    if value.len() > MAX_BLOCKERS {
        return Err(ToolError::invalid(
            "blocked_by",
            format!(
                "blocked_by lists {} tasks; the limit is {MAX_BLOCKERS}",
                value.len()
            ),
            "Split the work: give a task at most 100 blockers",
        ));
    }
    let mut ids = value
        .iter()
        .map(|id| validate::id("blocked_by", Some(id)))
        .collect::<Result<Vec<_>, _>>()?;
    ids.sort_by_key(|id| id.0);
    ids.dedup();
    Ok(Some(ids))
}
