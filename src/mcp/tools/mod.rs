//! The Archon tool set: same names, arguments and response shapes, so Archon users can switch.
//!
//! Each file holds one area's `#[tool_router]` block; [`crate::mcp::BoardServer`] adds the
//! routers together. Tools answer `{"success":true,...}` as JSON text, or `isError: true`
//! with `{"success":false,"error":{"type","message","suggestion"}}`.

mod claims;
mod documents;
mod info;
pub mod params;
pub mod portable;
mod projects;
mod shapes;
mod tasks;
mod versions;

use crate::rules::validate;

use std::sync::Arc;

use crate::store::answer_memo::{AnswerKey, AnswerStamp, Answers, Recalled};
use rmcp::ErrorData;
use rmcp::handler::server::tool::IntoCallToolResult;
use rmcp::model::{CallToolResponse, CallToolResult, ContentBlock};
use serde_json::{Value, json};

pub use crate::views::{Fields, RowView, list_view, merge, page_view, summary_view, to_json};
pub use params::Parameters;

/// Deserialises `arguments` as the named tool's argument type, exactly as a call does, and
/// returns the error message a call would get. `None` for an unknown tool or one without
/// arguments. (The fuzz target in `fuzz/` drives this.)
pub fn parse_arguments(tool: &str, arguments: Value) -> Option<Result<(), String>> {
    fn parse<T: serde::de::DeserializeOwned>(arguments: Value) -> Result<(), String> {
        serde_path_to_error::deserialize::<_, T>(arguments)
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
    Some(match tool {
        "find_projects" => parse::<projects::FindProjectsArgs>(arguments),
        "manage_project" => parse::<projects::ManageProjectArgs>(arguments),
        "get_project_features" => parse::<projects::ProjectIdArgs>(arguments),
        "find_tasks" => parse::<tasks::FindTasksArgs>(arguments),
        "manage_task" => parse::<tasks::ManageTaskArgs>(arguments),
        "get_task_history" => parse::<tasks::TaskHistoryArgs>(arguments),
        "get_completion_stats" => parse::<tasks::CompletionStatsArgs>(arguments),
        "find_documents" => parse::<documents::FindDocumentsArgs>(arguments),
        "manage_document" => parse::<documents::ManageDocumentArgs>(arguments),
        "find_versions" => parse::<versions::FindVersionsArgs>(arguments),
        "manage_version" => parse::<versions::ManageVersionArgs>(arguments),
        "claim_task" => parse::<claims::ClaimTaskArgs>(arguments),
        "renew_claim" => parse::<claims::RenewClaimArgs>(arguments),
        "release_task" => parse::<claims::ReleaseTaskArgs>(arguments),
        "next_task" => parse::<claims::NextTaskArgs>(arguments),
        _ => return None,
    })
}

/// Why a tool call failed, in terms the model can act on.
#[derive(Debug, thiserror::Error)]
pub enum ToolError {
    #[error("{message}")]
    Validation {
        field: String,
        message: String,
        suggestion: String,
    },
    #[error("{what} {id} not found")]
    NotFound {
        what: &'static str,
        id: String,
        suggestion: &'static str,
    },
    /// Another session holds the task, or the claim token given is not the current one.
    #[error("{message}")]
    Conflict {
        message: String,
        suggestion: String,
        /// Who holds the task now, if anyone.
        holder: Option<Value>,
    },
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
}

impl From<crate::rules::FieldError> for ToolError {
    fn from(error: crate::rules::FieldError) -> Self {
        ToolError::Validation {
            field: error.field,
            message: error.message,
            suggestion: error.suggestion,
        }
    }
}

impl ToolError {
    pub fn invalid(field: &str, message: impl Into<String>, suggestion: impl Into<String>) -> Self {
        ToolError::Validation {
            field: field.to_string(),
            message: message.into(),
            suggestion: suggestion.into(),
        }
    }

    pub fn not_found(what: &'static str, id: impl ToString, suggestion: &'static str) -> Self {
        ToolError::NotFound {
            what,
            id: id.to_string(),
            suggestion,
        }
    }

    /// `row`, the one `what` with id `id` a call asked for, as `{what: row}`; not_found with
    /// `suggestion` when there is none.
    pub fn found<T: serde::Serialize>(
        what: &'static str,
        id: impl ToString,
        row: Option<T>,
        suggestion: &'static str,
    ) -> ToolResult {
        let row = ToolError::present(what, id, row, suggestion)?;
        Ok(success(json!({ what: to_json(&row) })))
    }

    /// `row`, the one `what` with id `id` a call asked for; not_found with `suggestion` when
    /// there is none.
    pub fn present<T>(
        what: &'static str,
        id: impl ToString,
        row: Option<T>,
        suggestion: &'static str,
    ) -> Result<T, ToolError> {
        row.ok_or_else(|| ToolError::not_found(what, id, suggestion))
    }

    /// The `error` object of a failed tool result.
    fn to_json(&self) -> Value {
        match self {
            ToolError::Validation {
                field,
                message,
                suggestion,
            } => json!({
                "type": "validation_error", "field": field, "message": message, "suggestion": suggestion,
            }),
            ToolError::NotFound { suggestion, .. } => json!({
                "type": "not_found", "message": self.to_string(), "suggestion": suggestion,
            }),
            ToolError::Conflict {
                message,
                suggestion,
                holder,
            } => json!({
                "type": "claim_conflict", "message": message, "suggestion": suggestion, "holder": holder,
            }),
            // Details go to the log, not to the client.
            ToolError::Database(_) => json!({
                "type": "database_error",
                "message": "the database could not complete the request",
                "suggestion": "Retry in a moment; if it keeps failing, check Steward's /health and logs",
            }),
        }
    }
}

/// What every tool answers: rmcp turns `Ok` into JSON text and `Err` into the same with
/// `isError: true`.
pub type ToolResult = Result<Reply, ToolError>;

/// A tool's successful answer, `{"success": true, ...}` as JSON text; made by [`success`] or
/// [`success_fields`].
#[derive(Debug)]
pub struct Reply(String);

impl IntoCallToolResult for Reply {
    fn into_call_tool_result(self) -> Result<CallToolResponse, ErrorData> {
        Ok(CallToolResult::success(vec![ContentBlock::text(self.0)]).into())
    }
}

impl IntoCallToolResult for ToolError {
    fn into_call_tool_result(self) -> Result<CallToolResponse, ErrorData> {
        if let ToolError::Database(e) = &self {
            // The tool's name comes from the span `call_tool` opens.
            tracing::error!(error = %e, "tool failed on a database error");
        }
        let body = json!({ "success": false, "error": self.to_json() });
        Ok(CallToolResult::error(vec![ContentBlock::text(body.to_string())]).into())
    }
}

/// `{"success": true}` merged with the fields of `body` (an object).
pub fn success(body: Value) -> Reply {
    let mut out = json!({ "success": true });
    if let (Some(out), Value::Object(fields)) = (out.as_object_mut(), body) {
        out.extend(fields);
    }
    Reply(out.to_string())
}

/// The answer of a pure board read (the same text for every caller, changed only by board
/// writes and by leases running out): the one remembered for `key` while it holds (see
/// `store::answer_memo`), else the one `make` makes now, remembered when it succeeds. The
/// stamp it holds under is noted for the call (see [`ANSWERED`]).
pub async fn remembered(
    answers: &Answers,
    key: AnswerKey,
    make: impl Future<Output = ToolResult>,
) -> ToolResult {
    let stamp = match answers.recall(&key).await? {
        Recalled::Answer(text, stamp) => {
            note_answered(stamp);
            return Ok(Reply(String::from(&*text)));
        }
        Recalled::Make(stamp) => stamp,
    };
    let reply = make.await?;
    answers.remember(key, stamp, Arc::from(reply.0.as_str()));
    note_answered(stamp);
    Ok(reply)
}

tokio::task_local! {
    /// Set around a call that may keep its written answer (see `mcp::board_call`): the stamp
    /// of the remembered answer the call gave, if it gave one.
    pub(crate) static ANSWERED: std::cell::Cell<Option<AnswerStamp>>;
}

fn note_answered(stamp: AnswerStamp) {
    // Outside such a call there is nobody to tell.
    if ANSWERED
        .try_with(|answered| answered.set(Some(stamp)))
        .is_err()
    {
        tracing::trace!("a remembered answer outside a direct board call");
    }
}

/// The answer to a write: the row as it now is, under `what`, and what happened in words.
pub fn written<T: serde::Serialize>(what: &str, row: &T, message: &str) -> Reply {
    success(json!({ what: to_json(row), "message": message }))
}

/// [`success`] for an answer written straight to text (lists: no `Value` per row); the same
/// text as `success` gives for the same fields.
pub fn success_fields(body: Fields) -> Reply {
    Reply(
        Fields::new()
            .value("success", &true)
            .merged(body)
            .into_text(),
    )
}
