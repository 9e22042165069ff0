//! Tool-level helpers shared by the MCP test files (`tools.rs`, `stdio.rs`): call a tool and
//! insist on success or on a specific error, and the fixtures most stories start from.
//!
//! Each test file uses only part of this module, hence the `dead_code` allowance.
#![allow(dead_code)]

use anyhow::{Context, ensure};
use serde_json::{Value, json};

use crate::common::{Client, call};

/// The 13 Archon tools and the 4 claim tools, sorted.
pub const TOOL_NAMES: [&str; 17] = [
    "claim_task",
    "find_documents",
    "find_projects",
    "find_tasks",
    "find_versions",
    "get_completion_stats",
    "get_project_features",
    "get_task_history",
    "health_check",
    "manage_document",
    "manage_project",
    "manage_task",
    "manage_version",
    "next_task",
    "release_task",
    "renew_claim",
    "session_info",
];

/// The names `tools/list` returns, sorted.
pub async fn listed_tool_names(client: &Client) -> anyhow::Result<Vec<String>> {
    let tools = client.list_all_tools().await.context("tools/list failed")?;
    let mut names: Vec<String> = tools.iter().map(|t| t.name.to_string()).collect();
    names.sort();
    Ok(names)
}

/// Calls `tool` and insists on `isError: false` and `success: true`; returns the body.
pub async fn ok(client: &Client, tool: &str, args: Value) -> anyhow::Result<Value> {
    let (is_error, body) = call(client, tool, args.clone()).await?;
    ensure!(
        !is_error && body["success"] == true,
        "{tool} {args} was expected to succeed but answered (isError={is_error}) {body}"
    );
    Ok(body)
}

/// Calls `tool`, insists on `isError: true`, `success: false` and `error.type == kind` with a
/// message and a suggestion; returns the `error` object.
pub async fn fails(client: &Client, tool: &str, args: Value, kind: &str) -> anyhow::Result<Value> {
    let (is_error, body) = call(client, tool, args.clone()).await?;
    ensure!(
        is_error,
        "{tool} {args} was expected to fail with {kind} but answered {body}"
    );
    let error = &body["error"];
    assert_eq!(body["success"], false, "{tool} {args}: {body}");
    assert_eq!(error["type"], kind, "{tool} {args}: {body}");
    for key in ["message", "suggestion"] {
        assert!(
            error[key].as_str().is_some_and(|s| !s.trim().is_empty()),
            "{tool} {args}: error.{key} is missing or empty: {body}"
        );
    }
    Ok(error.clone())
}

/// `value` as a string, or an error naming what was expected.
pub fn text(value: &Value) -> anyhow::Result<String> {
    value
        .as_str()
        .map(str::to_string)
        .with_context(|| format!("expected a string, got {value}"))
}

/// `base` (an object) with the fields of `extra` (an object) added or replaced.
pub fn with(mut base: Value, extra: Value) -> Value {
    if let (Some(base), Value::Object(extra)) = (base.as_object_mut(), extra) {
        base.extend(extra);
    }
    base
}

/// Creates a project; returns its id.
pub async fn create_project(client: &Client, title: &str) -> anyhow::Result<String> {
    let body = ok(
        client,
        "manage_project",
        json!({ "action": "create", "title": title }),
    )
    .await?;
    text(&body["project_id"])
}

/// Creates a task in `project_id` with `title` plus the fields of `extra`; returns its id.
pub async fn create_task(
    client: &Client,
    project_id: &str,
    title: &str,
    extra: Value,
) -> anyhow::Result<String> {
    let args = json!({ "action": "create", "project_id": project_id, "title": title });
    let body = ok(client, "manage_task", with(args, extra)).await?;
    text(&body["task_id"])
}

/// The session id this client's connection has, from `session_info`.
pub async fn session_id(client: &Client) -> anyhow::Result<String> {
    let info = ok(client, "session_info", Value::Null).await?;
    text(&info["session"]["session_id"])
}

/// A task's history rows.
pub async fn history(client: &Client, task_id: &str) -> anyhow::Result<Vec<Value>> {
    let body = ok(client, "get_task_history", json!({ "task_id": task_id })).await?;
    let rows = body["history"]
        .as_array()
        .cloned()
        .context("history is not a list")?;
    assert_eq!(body["count"], rows.len(), "count of {body}");
    assert_eq!(body["task_id"], task_id, "task_id of {body}");
    Ok(rows)
}
