//! The board's write rules, shared by every way of changing the board (the MCP tools and the
//! JSON API behind the dashboard and CLI): which field values are allowed, with messages that
//! name the field and say how to fix it, and how raw task fields become a store change.
//! Keeping them here means a person and an agent get the same answer for the same input.

pub mod validate;

use serde::Deserialize;
use serde_json::Value;

use crate::board::TaskStatus;
use crate::store::Id;
use crate::store::tasks::{NewTask, TaskChanges};

/// The assignee of a task created without one (Archon's default).
pub const DEFAULT_ASSIGNEE: &str = "User";

/// A value a caller gave that the board does not accept.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct FieldError {
    pub field: String,
    pub message: String,
    pub suggestion: String,
}

impl FieldError {
    pub fn new(field: &str, message: impl Into<String>, suggestion: impl Into<String>) -> Self {
        FieldError {
            field: field.to_string(),
            message: message.into(),
            suggestion: suggestion.into(),
        }
    }
}

/// A task's editable fields as a caller sends them, not yet checked. `None` means "not given".
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskFields {
    pub title: Option<String>,
    pub description: Option<String>,
    pub status: Option<TaskStatus>,
    pub assignee: Option<String>,
    pub task_order: Option<i64>,
    pub feature: Option<String>,
    /// A task of the same project this one is part of; "" removes it.
    pub parent_task_id: Option<String>,
    pub sources: Option<Value>,
    pub code_examples: Option<Value>,
}

/// A new task of `project_id` from `fields`: the title is required, the rest defaults.
pub fn new_task(project_id: Id, fields: TaskFields) -> Result<NewTask, FieldError> {
    Ok(NewTask {
        project_id,
        title: validate::title("title", fields.title)?,
        description: validate::opt_text(
            "description",
            fields.description,
            validate::MAX_TEXT_CHARS,
        )?
        .unwrap_or_default(),
        status: fields.status.unwrap_or(TaskStatus::Todo).as_str(),
        assignee: validate::opt_title("assignee", fields.assignee)?
            .unwrap_or_else(|| DEFAULT_ASSIGNEE.to_string()),
        task_order: fields
            .task_order
            .map(validate::task_order)
            .transpose()?
            .unwrap_or(0),
        feature: validate::opt_text("feature", fields.feature, validate::MAX_TITLE_CHARS)?,
        blocked_by: Vec::new(),
        parent_task_id: parent(fields.parent_task_id)?.flatten(),
        sources: list("sources", fields.sources)?.unwrap_or_else(|| Value::Array(Vec::new())),
        code_examples: list("code_examples", fields.code_examples)?
            .unwrap_or_else(|| Value::Array(Vec::new())),
    })
}

/// The change `fields` asks for; fields not given stay as they are.
pub fn task_changes(fields: TaskFields) -> Result<TaskChanges, FieldError> {
    Ok(TaskChanges {
        title: validate::opt_title("title", fields.title)?,
        description: validate::opt_text(
            "description",
            fields.description,
            validate::MAX_TEXT_CHARS,
        )?,
        status: fields.status.map(TaskStatus::as_str),
        assignee: validate::opt_title("assignee", fields.assignee)?,
        task_order: fields.task_order.map(validate::task_order).transpose()?,
        feature: validate::opt_text("feature", fields.feature, validate::MAX_TITLE_CHARS)?,
        blocked_by: None,
        parent_task_id: parent(fields.parent_task_id)?,
        sources: list("sources", fields.sources)?,
        code_examples: list("code_examples", fields.code_examples)?,
    })
}

/// A given parent id: `Some(None)` for "" (remove the parent).
fn parent(value: Option<String>) -> Result<Option<Option<Id>>, FieldError> {
    value.as_deref().map(validate::parent_id).transpose()
}

fn list(field: &str, value: Option<Value>) -> Result<Option<Value>, FieldError> {
    value.map(|v| validate::json_list(field, v)).transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_task_needs_a_title_and_gets_defaults() {
        let err = new_task(Id::new(), TaskFields::default()).unwrap_err();
        assert_eq!(err.field, "title");
        let task = new_task(
            Id::new(),
            TaskFields {
                title: Some("Plan".into()),
                ..TaskFields::default()
            },
        )
        .unwrap();
        assert_eq!((task.status, task.assignee.as_str()), ("todo", "User"));
    }

    #[test]
    fn changes_check_each_given_field() {
        let err = task_changes(TaskFields {
            task_order: Some(101),
            ..TaskFields::default()
        })
        .unwrap_err();
        assert_eq!(err.field, "task_order");
        let err = task_changes(TaskFields {
            assignee: Some(" ".into()),
            ..TaskFields::default()
        })
        .unwrap_err();
        assert_eq!(err.field, "assignee");
    }
}
