//! `claim_task`, `renew_claim`, `release_task`, `next_task`: several agents share one board
//! without working the same task. A claim is a lease held by the calling session; it ends on
//! release, when the task is done or archived, when the session ends, or when the lease runs
//! out (see [`crate::store::claims`]).

use std::time::Duration;

use rmcp::service::RequestContext;
use rmcp::{RoleServer, tool, tool_router};
use serde_json::json;

use super::params::tool_args;
use super::{Parameters, ToolError, ToolResult, success, to_json, validate};
use crate::board::TaskStatus;
use crate::mcp::BoardServer;
use crate::resources::changes::Change;
use crate::store::tasks::{Claim, Refusal, Task, fold};
use crate::store::{Id, NextFilter};

const DEFAULT_LEASE_SECONDS: u64 = 900;
/// Longest lease: a day. A holder that needs longer renews.
const MAX_LEASE_SECONDS: u64 = 86_400;
const NOT_FOUND_HINT: &str =
    "Use find_tasks to list tasks and their ids (archived tasks cannot be claimed)";

tool_args! {
    pub struct ClaimTaskArgs {
        pub task_id: String,
        /// How long the claim lasts without renewal, 1 to 86400 seconds. Defaults to 900.
        pub lease_seconds: Option<u64>,
    }
}

tool_args! {
    pub struct RenewClaimArgs {
        pub task_id: String,
        /// The claim_token claim_task or next_task answered.
        pub claim_token: String,
        /// The new lease from now, 1 to 86400 seconds. Defaults to 900.
        pub lease_seconds: Option<u64>,
    }
}

tool_args! {
    pub struct ReleaseTaskArgs {
        pub task_id: String,
        /// The claim_token claim_task or next_task answered.
        pub claim_token: String,
        /// Move the task to this status as it is released (e.g. done, or review).
        pub status: Option<TaskStatus>,
    }
}

tool_args! {
    pub struct NextTaskArgs {
        /// Only tasks of this project.
        pub project_id: Option<String>,
        /// Only tasks with this assignee (case-insensitive).
        pub assignee: Option<String>,
        /// Only tasks of this feature (case-insensitive).
        pub feature: Option<String>,
        /// Claim the task for this session (default true); false only looks.
        pub claim: Option<bool>,
        /// Lease of the claim, 1 to 86400 seconds. Defaults to 900.
        pub lease_seconds: Option<u64>,
    }
}

#[tool_router(router = claim_tools, vis = "pub(crate)")]
impl BoardServer {
    #[tool(
        description = "Claim a task before working on it, so other agents know and do not take it. The claim is a lease held by your session for lease_seconds (default 900): renew it with renew_claim while you work, end it with release_task. The answer carries lease_until and a claim_token; keep the token, you need it to renew, release, or to update the task from another session. Fails with claim_conflict naming the holder and when its lease ends if another session holds the task. A claim also ends when the task is done or archived, when your session ends, or when the lease runs out."
    )]
    pub async fn claim_task(
        &self,
        Parameters(args): Parameters<ClaimTaskArgs>,
        request: RequestContext<RoleServer>,
    ) -> ToolResult {
        let id = validate::id("task_id", Some(&args.task_id))?;
        let lease = lease(args.lease_seconds)?;
        let session = self.claim_session(&request)?;
        let actor = self.actor(&request);
        let claimed = self.store().claim_task(id, &session, &actor, lease).await?;
        self.claimed(
            &claimed.map_err(|refusal| refused(refusal, id))?,
            "Task claimed",
        )
    }

    #[tool(
        description = "Extend your claim on a task: the lease runs lease_seconds (default 900) from now. Needs the claim_token claim_task or next_task gave you; a token from a claim that ended (released, expired, task done) is refused: claim the task again."
    )]
    pub async fn renew_claim(
        &self,
        Parameters(args): Parameters<RenewClaimArgs>,
        request: RequestContext<RoleServer>,
    ) -> ToolResult {
        let id = validate::id("task_id", Some(&args.task_id))?;
        let token = validate::id("claim_token", Some(&args.claim_token))?;
        let lease = lease(args.lease_seconds)?;
        let actor = self.actor(&request);
        let renewed = self.store().renew_claim(id, token, &actor, lease).await?;
        self.claimed(
            &renewed.map_err(|refusal| refused(refusal, id))?,
            "Claim renewed",
        )
    }

    #[tool(
        description = "End your claim on a task (with its claim_token), optionally moving it to a status at the same time, e.g. status done when finished or review for a hand-over. Other agents can then claim it."
    )]
    pub async fn release_task(
        &self,
        Parameters(args): Parameters<ReleaseTaskArgs>,
        request: RequestContext<RoleServer>,
    ) -> ToolResult {
        let id = validate::id("task_id", Some(&args.task_id))?;
        let token = validate::id("claim_token", Some(&args.claim_token))?;
        let actor = self.actor(&request);
        let status = args.status.map(TaskStatus::as_str);
        let written = self
            .store()
            .release_task(id, token, status, &actor)
            .await?
            .map_err(|refusal| refused(refusal, id))?;
        self.changed_with_dependants(&written.task, &written.unblocked);
        Ok(super::written("task", &written.task, "Claim released"))
    }

    #[tool(
        description = "Get the next task to work on: the highest task_order, then oldest, todo task that no one has claimed and that no open task blocks, optionally only of one project, assignee or feature. By default it is claimed for your session in the same step (answer carries claim_token and lease_until), so agents calling at once never get the same task; claim false only looks. Answers task null when nothing is available."
    )]
    pub async fn next_task(
        &self,
        Parameters(args): Parameters<NextTaskArgs>,
        request: RequestContext<RoleServer>,
    ) -> ToolResult {
        let filter = NextFilter {
            project_id: validate::opt_id("project_id", args.project_id.as_deref())?,
            assignee: validate::opt_text("assignee", args.assignee, validate::MAX_TITLE_CHARS)?
                .map(|a| fold(&a)),
            feature: validate::opt_text("feature", args.feature, validate::MAX_TITLE_CHARS)?
                .map(|f| fold(&f)),
        };
        let lease = lease(args.lease_seconds)?;
        let claim = args.claim.unwrap_or(true);
        let session = if claim {
            Some(self.claim_session(&request)?)
        } else {
            None
        };
        let actor = self.actor(&request);
        let task = self
            .store()
            .next_task(&filter, session.as_deref().map(|s| (s, lease)), &actor)
            .await?;
        let Some(task) = task else {
            return Ok(success(json!({
                "task": null,
                "message": "No open, unclaimed, unblocked todo task matches",
            })));
        };
        self.concerns(&request, task.id);
        if !claim {
            return Ok(success(
                json!({ "task": to_json(&task), "message": "Next task (not claimed)" }),
            ));
        }
        self.claimed(&task, "Next task, claimed")
    }
}

impl BoardServer {
    /// The session a claim is held by; a request without one cannot hold a claim.
    fn claim_session(&self, request: &RequestContext<RoleServer>) -> Result<String, ToolError> {
        self.session_id(request).ok_or_else(|| {
            ToolError::invalid(
                "session",
                "claims are held by an MCP session, and this request has none",
                "Connect with a client that keeps a session (Mcp-Session-Id) or over stdio",
            )
        })
    }

    /// The answer to a claim taken or renewed: the task, its token and when the lease ends;
    /// subscribers are told the task changed.
    fn claimed(&self, task: &Task, message: &str) -> ToolResult {
        self.task_changed(task);
        Ok(success(json!({
            "task": to_json(task),
            "task_id": task.id,
            "claim_token": task.claim_token,
            "lease_until": task.lease_until,
            "message": message,
        })))
    }

    /// Tells subscribers the task changed.
    pub(crate) fn task_changed(&self, task: &Task) {
        self.changed(Change::of_task(task));
    }

    /// Tells subscribers the task changed, and so did each task its change unblocked.
    pub(crate) fn changed_with_dependants(&self, task: &Task, unblocked: &[(Id, Id)]) {
        self.task_changed(task);
        self.ctx.changes.publish_tasks(unblocked);
    }
}

/// A lease length in 1..=86400 seconds, 900 by default.
fn lease(seconds: Option<u64>) -> Result<Duration, ToolError> {
    let seconds = seconds.unwrap_or(DEFAULT_LEASE_SECONDS);
    if !(1..=MAX_LEASE_SECONDS).contains(&seconds) {
        return Err(ToolError::invalid(
            "lease_seconds",
            format!("lease_seconds must be between 1 and {MAX_LEASE_SECONDS}, got {seconds}"),
            "Use a lease of a few minutes (default 900) and renew_claim while you work",
        ));
    }
    Ok(Duration::from_secs(seconds))
}

/// Who holds a task, in words.
fn holder_text(claim: &Claim) -> String {
    let client = claim
        .claimed_client
        .as_deref()
        .unwrap_or("an unnamed client");
    let principal = claim
        .claimed_principal
        .as_deref()
        .map(|p| format!(", principal {p}"))
        .unwrap_or_default();
    format!(
        "{client} (session {}{principal}) until {}",
        claim.claimed_by,
        claim.lease_until.to_rfc3339()
    )
}

/// The tool error for a write the store refused.
pub(crate) fn refused(refusal: Refusal, id: Id) -> ToolError {
    match refusal {
        Refusal::NotFound => ToolError::not_found("task", id, NOT_FOUND_HINT),
        Refusal::Closed => ToolError::invalid(
            "task_id",
            format!("task {id} is done; a done task cannot be claimed"),
            "Use next_task to get an open task",
        ),
        Refusal::Held(claim) => ToolError::Conflict {
            message: format!("task {id} is claimed by {}", holder_text(&claim)),
            suggestion: "Work on another task (next_task hands out unclaimed ones), or wait for the lease to end; the holder can release it with release_task".into(),
            holder: Some(to_json(&claim)),
        },
        Refusal::StaleToken { current } => ToolError::Conflict {
            message: match &current {
                Some(claim) => format!(
                    "claim_token is not the current claim of task {id}; it is claimed by {}",
                    holder_text(claim)
                ),
                None => format!(
                    "claim_token is not the current claim of task {id}: that claim ended (released, lease expired, task done or session ended)"
                ),
            },
            suggestion: "Claim the task again with claim_task to get a fresh claim_token".into(),
            holder: current.as_ref().map(to_json),
        },
        Refusal::UnknownBlocker(blocker) => ToolError::invalid(
            "blocked_by",
            format!("blocked_by names {blocker}, which is not a live task"),
            "Use find_tasks to list task ids; archived tasks cannot block",
        ),
        Refusal::Cycle(path) => {
            let steps: Vec<String> = path
                .iter()
                .map(|(id, title)| format!("{title:?} ({id})"))
                .collect();
            ToolError::invalid(
                "blocked_by",
                format!(
                    "blocked_by would make a cycle, so none of these tasks could start: {}",
                    steps.join(" → ")
                ),
                "Remove one of the dependencies of this cycle",
            )
        }
        Refusal::BadParent { parent, problem } => ToolError::invalid(
            "parent_task_id",
            format!("parent_task_id {parent} {problem}"),
            "Use find_tasks with project_id to pick a live task of the same project that is not below this one",
        ),
    }
}
