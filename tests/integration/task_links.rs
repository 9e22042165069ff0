//! Archon's task links through the tools: a sub-task's `parent_task_id` (same project, no
//! loops), `sources` and `code_examples` as bounded lists, and pinned projects — what a model
//! sets with `manage_task`/`manage_project` and reads back from `find_tasks`/`find_projects`,
//! on both engines.

use crate::board;
use crate::common;

use anyhow::Context;
use serde_json::{Value, json};

use board::{create_project, create_task, fails, history, ok};
use common::{InProcess, TestDb, backends, connect};

async fn get_task(client: &common::Client, task_id: &str) -> anyhow::Result<Value> {
    let body = ok(client, "find_tasks", json!({ "task_id": task_id })).await?;
    Ok(body["task"].clone())
}

#[tokio::test]
async fn sub_tasks_sources_and_pins_are_kept_and_checked() -> anyhow::Result<()> {
    for backend in backends() {
        eprintln!("--- task links on {}", backend.name());
        let db = TestDb::new(backend).await?;
        let server = InProcess::start(&db).await?;
        let client = connect(&server.mcp_url(), "linker").await?;
        let story = async {
            let project = create_project(&client, "Links").await?;
            let other = create_project(&client, "Elsewhere").await?;
            let parent = create_task(&client, &project, "Epic", json!({})).await?;
            let sources = json!([{ "url": "https://example.com/rfc", "type": "docs" }]);
            let examples = json!([{ "file": "src/auth.rs", "purpose": "token check" }]);
            let child = create_task(
                &client,
                &project,
                "Part of the epic",
                json!({ "parent_task_id": parent, "sources": sources, "code_examples": examples }),
            )
            .await?;

            // A model sees the links where it looks: the task by id and the task list.
            let seen = get_task(&client, &child).await?;
            assert_eq!(seen["parent_task_id"], parent.as_str(), "{seen}");
            assert_eq!(seen["sources"], sources);
            assert_eq!(seen["code_examples"], examples);
            let listed = ok(&client, "find_tasks", json!({ "project_id": project })).await?;
            let row = listed["tasks"]
                .as_array()
                .and_then(|tasks| tasks.iter().find(|t| t["id"] == child.as_str()))
                .cloned()
                .context("child listed")?;
            assert_eq!(row["parent_task_id"], parent.as_str(), "{row}");
            assert_eq!(get_task(&client, &parent).await?["sources"], json!([]));

            // A parent must be a live task of the same project, and never below the task.
            let stranger = create_task(&client, &other, "Other project", json!({})).await?;
            let error = fails(
                &client,
                "manage_task",
                json!({ "action": "update", "task_id": child, "parent_task_id": stranger }),
                "validation_error",
            )
            .await?;
            assert_eq!(error["field"], "parent_task_id", "{error}");
            assert!(text_of(&error).contains("another project"), "{error}");
            let error = fails(
                &client,
                "manage_task",
                json!({ "action": "update", "task_id": parent, "parent_task_id": child }),
                "validation_error",
            )
            .await?;
            assert!(text_of(&error).contains("sub-tasks"), "{error}");
            fails(
                &client,
                "manage_task",
                json!({ "action": "create", "project_id": project, "title": "x",
                        "parent_task_id": "00000000-0000-4000-8000-000000000000" }),
                "validation_error",
            )
            .await?;

            // The lists are bounded lists.
            let error = fails(
                &client,
                "manage_task",
                json!({ "action": "update", "task_id": child, "sources": { "url": "x" } }),
                "validation_error",
            )
            .await?;
            assert_eq!(error["field"], "sources", "{error}");
            let many: Vec<Value> = (0..101).map(|i| json!({ "n": i })).collect();
            let error = fails(
                &client,
                "manage_task",
                json!({ "action": "update", "task_id": child, "code_examples": many }),
                "validation_error",
            )
            .await?;
            assert_eq!(error["field"], "code_examples", "{error}");
            assert_eq!(get_task(&client, &child).await?["code_examples"], examples);

            // "" removes the parent; the change is in the task's history.
            ok(
                &client,
                "manage_task",
                json!({ "action": "update", "task_id": child, "parent_task_id": "" }),
            )
            .await?;
            assert_eq!(
                get_task(&client, &child).await?["parent_task_id"],
                Value::Null
            );
            let rows = history(&client, &child).await?;
            let unlinked = rows
                .iter()
                .find(|r| r["field"] == "parent_task_id")
                .context("parent change recorded")?;
            assert_eq!(
                (&unlinked["old_value"], &unlinked["new_value"]),
                (&json!(parent), &Value::Null)
            );

            // Projects can be pinned, and show it.
            ok(
                &client,
                "manage_project",
                json!({ "action": "update", "project_id": other, "pinned": true }),
            )
            .await?;
            let found = ok(&client, "find_projects", json!({ "project_id": other })).await?;
            assert_eq!(found["project"]["pinned"], true, "{found}");
            let found = ok(&client, "find_projects", json!({ "project_id": project })).await?;
            assert_eq!(found["project"]["pinned"], false, "{found}");
            anyhow::Ok(())
        };
        story
            .await
            .with_context(|| format!("on {}", backend.name()))?;
        client.cancel().await?;
        server.stop().await;
    }
    Ok(())
}

fn text_of(error: &Value) -> String {
    error["message"].as_str().unwrap_or_default().to_string()
}
