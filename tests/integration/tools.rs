//! The Archon tool set end to end: the real `steward serve` binary, an rmcp client over
//! Streamable HTTP, and every story run on SQLite and (when `STEWARD_TEST_POSTGRES_URL` is
//! set) PostgreSQL. Each story gets its own database and server.

use crate::board;
use crate::common;

use std::collections::{BTreeMap, BTreeSet};

use anyhow::Context;
use serde_json::{Value, json};

use board::{
    TOOL_NAMES, create_project, create_task, fails, history, listed_tool_names, ok, session_id,
    text, with,
};
use common::{Backend, Client, InProcess, call, connect};

/// The client name every story connects with.
const CLIENT: &str = "tools-test-client";

/// One story's server and client.
struct Board {
    client: Client,
    backend: Backend,
    /// The MCP endpoint, for stories that open a second session.
    url: String,
}

/// Runs `story` against a fresh server and database on every configured engine.
async fn on_each_backend(story: impl AsyncFn(&Board) -> anyhow::Result<()>) -> anyhow::Result<()> {
    common::on_each_backend(async |db| {
        let server = InProcess::start(&db).await?;
        let url = server.mcp_url();
        let client = connect(&url, CLIENT).await?;
        let board = Board {
            client,
            backend: db.backend,
            url,
        };
        story(&board).await?;
        board.client.cancel().await?;
        // Cancelled, not stopped: graceful shutdown is not what these stories test, and it
        // waits for the request ledger to flush.
        drop(server);
        Ok(())
    })
    .await
}

/// A random, well-formed id that names nothing.
fn ghost_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// The `key` field of every item of `list`.
fn field_of(list: &Value, key: &str) -> Vec<String> {
    list.as_array()
        .map(|items| {
            items
                .iter()
                .map(|item| item[key].as_str().unwrap_or("<missing>").to_string())
                .collect()
        })
        .unwrap_or_default()
}

fn sorted(mut items: Vec<String>) -> Vec<String> {
    items.sort();
    items
}

/// `find_tasks` with `args`: the titles found (in order) and the response.
async fn find_tasks(board: &Board, args: Value) -> anyhow::Result<(Vec<String>, Value)> {
    let body = ok(&board.client, "find_tasks", args).await?;
    let titles = field_of(&body["tasks"], "title");
    assert_eq!(body["count"], titles.len(), "count of {body}");
    Ok((titles, body))
}

/// One task by id (archived or not).
async fn get_task(board: &Board, task_id: &str) -> anyhow::Result<Value> {
    let body = ok(&board.client, "find_tasks", json!({ "task_id": task_id })).await?;
    Ok(body["task"].clone())
}

/// One project by id.
async fn get_project(board: &Board, project_id: &str) -> anyhow::Result<Value> {
    let body = ok(
        &board.client,
        "find_projects",
        json!({ "project_id": project_id }),
    )
    .await?;
    Ok(body["project"].clone())
}

/// One document by id.
async fn get_document(board: &Board, project_id: &str, document_id: &str) -> anyhow::Result<Value> {
    let args = json!({ "project_id": project_id, "document_id": document_id });
    let body = ok(&board.client, "find_documents", args).await?;
    Ok(body["document"].clone())
}

/// Creates a document; returns its id.
async fn create_document(board: &Board, project_id: &str, fields: Value) -> anyhow::Result<String> {
    let args = json!({ "action": "create", "project_id": project_id });
    let body = ok(&board.client, "manage_document", with(args, fields)).await?;
    text(&body["document_id"])
}

/// The `total` of a list call.
async fn total(board: &Board, tool: &str, args: Value) -> anyhow::Result<i64> {
    let body = ok(&board.client, tool, args).await?;
    body["total"]
        .as_i64()
        .with_context(|| format!("{tool}: no total in {body}"))
}

// ---------------------------------------------------------------------------------------------
// tools/list

/// The allowed values of property `name` of `schema` (enums are inlined: no `$ref`, no `anyOf`).
fn enum_values(schema: &Value, name: &str) -> Vec<String> {
    field_of_strings(&schema["properties"][name]["enum"])
}

fn field_of_strings(list: &Value) -> Vec<String> {
    list.as_array()
        .map(|items| {
            items
                .iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn tools_list_publishes_the_thirteen_tools_with_schemas() -> anyhow::Result<()> {
    // Every tool's properties, sorted.
    let properties = [
        ("find_projects", "page per_page project_id query"),
        (
            "manage_project",
            "action data description features github_repo pinned prd project_id title",
        ),
        ("get_project_features", "project_id"),
        (
            "find_tasks",
            "filter_by filter_value include_closed page per_page project_id query task_id unclaimed",
        ),
        (
            "manage_task",
            "action assignee blocked_by claim_token code_examples description feature parent_task_id project_id sources status task_id task_order title",
        ),
        ("get_task_history", "limit task_id"),
        ("get_completion_stats", "project_id"),
        (
            "find_documents",
            "document_id document_type page per_page project_id query",
        ),
        (
            "manage_document",
            "action author content document_id document_type project_id tags title",
        ),
        (
            "find_versions",
            "field_name page per_page project_id version_number",
        ),
        (
            "manage_version",
            "action change_summary content created_by document_id field_name project_id version_number",
        ),
        ("health_check", ""),
        ("session_info", ""),
        ("claim_task", "lease_seconds task_id"),
        ("renew_claim", "claim_token lease_seconds task_id"),
        ("release_task", "claim_token status task_id"),
        (
            "next_task",
            "assignee claim feature lease_seconds project_id",
        ),
    ];
    // (tool, property, allowed values)
    let enums: [(&str, &str, &[&str]); 7] = [
        (
            "manage_task",
            "status",
            &["todo", "doing", "review", "done"],
        ),
        ("manage_task", "action", &["create", "update", "delete"]),
        ("manage_project", "action", &["create", "update", "delete"]),
        ("manage_version", "action", &["create", "restore"]),
        (
            "manage_version",
            "field_name",
            &["docs", "features", "data", "prd"],
        ),
        (
            "find_tasks",
            "filter_by",
            &["status", "project", "assignee", "feature"],
        ),
        (
            "manage_document",
            "document_type",
            &["spec", "design", "note", "prp", "api", "guide"],
        ),
    ];
    on_each_backend(async |board| {
        assert_eq!(listed_tool_names(&board.client).await?, TOOL_NAMES);
        let tools = board.client.list_all_tools().await?;
        let schemas: BTreeMap<String, Value> = tools
            .iter()
            .map(|t| (t.name.to_string(), t.schema_as_json_value()))
            .collect();
        for tool in &tools {
            assert!(
                tool.description.as_deref().is_some_and(|d| d.len() > 20),
                "{} has no useful description",
                tool.name
            );
        }
        for (name, expected) in properties {
            let schema = &schemas[name];
            assert_eq!(schema["type"], "object", "{name}: {schema}");
            let mut listed: Vec<&str> = schema["properties"]
                .as_object()
                .with_context(|| format!("{name} has no properties: {schema}"))?
                .keys()
                .map(String::as_str)
                .collect();
            listed.sort();
            assert_eq!(listed.join(" "), expected, "properties of {name}");
            if !expected.is_empty() {
                // deny_unknown_fields is published too.
                assert_eq!(schema["additionalProperties"], false, "{name}: {schema}");
            }
        }
        for (tool, property, allowed) in enums {
            assert_eq!(
                enum_values(&schemas[tool], property),
                allowed,
                "{tool}.{property}"
            );
        }
        for (tool, required) in [
            ("get_project_features", vec!["project_id"]),
            ("get_task_history", vec!["task_id"]),
            ("manage_task", vec!["action"]),
            ("manage_document", vec!["action", "project_id"]),
            ("manage_version", vec!["action", "field_name", "project_id"]),
        ] {
            let mut listed = field_of_strings(&schemas[tool]["required"]);
            listed.sort();
            assert_eq!(listed, required, "required of {tool}");
        }
        Ok(())
    })
    .await
}

#[tokio::test]
async fn an_unknown_tool_is_a_protocol_error() -> anyhow::Result<()> {
    on_each_backend(async |board| {
        let outcome = call(&board.client, "no_such_tool", json!({})).await;
        let error = match outcome {
            Ok(answer) => panic!("an unknown tool answered a tool result: {answer:?}"),
            Err(error) => format!("{error:#}"),
        };
        assert!(error.contains("no_such_tool"), "{error}");
        // The session survives the error.
        let health = ok(&board.client, "health_check", Value::Null).await?;
        assert_eq!(health["status"], "healthy");
        Ok(())
    })
    .await
}

// ---------------------------------------------------------------------------------------------
// health_check, session_info

#[tokio::test]
async fn health_check_and_session_info_describe_server_and_caller() -> anyhow::Result<()> {
    on_each_backend(async |board| {
        let health = ok(&board.client, "health_check", Value::Null).await?;
        assert_eq!(health["status"], "healthy", "{health}");
        assert_eq!(health["version"], env!("CARGO_PKG_VERSION"));
        assert_eq!(health["database"]["reachable"], true, "{health}");
        assert_eq!(health["database"]["engine"], board.backend.name());
        assert!(health["uptime_seconds"].is_u64(), "{health}");
        assert_eq!(health["lease_sweep"]["failures"], 0, "{health}");
        assert!(health["lease_sweep"]["last_error"].is_null(), "{health}");

        let info = ok(&board.client, "session_info", Value::Null).await?;
        let session = &info["session"];
        let id = text(&session["session_id"])?;
        assert!(
            id.len() >= 32 && id.chars().all(|c| c.is_ascii_hexdigit()),
            "session id {id:?}"
        );
        assert_eq!(session["client"]["name"], CLIENT, "{info}");
        assert_eq!(session["client"]["version"], "1.0.0", "{info}");
        assert_eq!(session["status"], "active", "{info}");
        assert!(session["protocol_version"].is_string(), "{info}");
        assert!(session["started_at"].is_string(), "{info}");
        // health_check and this call.
        assert_eq!(session["request_count"], 2, "{info}");
        // Stable for the connection.
        assert_eq!(session_id(&board.client).await?, id);
        Ok(())
    })
    .await
}

// ---------------------------------------------------------------------------------------------
// Projects

#[tokio::test]
async fn projects_create_update_search_and_delete() -> anyhow::Result<()> {
    on_each_backend(async |board| {
        let client = &board.client;
        let created = ok(
            client,
            "manage_project",
            json!({
                "action": "create",
                "title": "Alpha board",
                "description": "The first board",
                "github_repo": "https://github.com/example/alpha",
            }),
        )
        .await?;
        let project = &created["project"];
        let alpha = text(&created["project_id"])?;
        assert!(uuid::Uuid::parse_str(&alpha).is_ok(), "{alpha}");
        assert_eq!(project["id"], alpha.as_str());
        assert_eq!(project["title"], "Alpha board");
        assert_eq!(project["description"], "The first board");
        assert_eq!(project["github_repo"], "https://github.com/example/alpha");
        assert_eq!(project["features"], json!([]));
        assert_eq!(project["data"], json!([]));
        assert_eq!(project["prd"], json!({}));
        assert_eq!(created["message"], "Project created");

        let beta = create_project(client, "Beta board").await?;
        let listed = ok(client, "find_projects", json!({})).await?;
        assert_eq!(
            field_of(&listed["projects"], "title"),
            ["Beta board", "Alpha board"],
            "newest first"
        );
        assert_eq!(
            (
                &listed["total"],
                &listed["page"],
                &listed["per_page"],
                &listed["has_more"]
            ),
            (&json!(2), &json!(1), &json!(10), &json!(false))
        );

        let found = ok(client, "find_projects", json!({ "query": "ALPHA" })).await?;
        assert_eq!(field_of(&found["projects"], "id"), [alpha.as_str()]);
        assert_eq!(found["query"], "ALPHA");
        assert_eq!(found["total"], 1);
        let by_description = total(board, "find_projects", json!({ "query": "first" })).await?;
        assert_eq!(by_description, 1);

        let updated = ok(
            client,
            "manage_project",
            json!({ "action": "update", "project_id": alpha, "title": "Alpha renamed" }),
        )
        .await?;
        assert_eq!(updated["project"]["title"], "Alpha renamed");
        assert_eq!(
            updated["project"]["description"], "The first board",
            "untouched"
        );
        assert_eq!(updated["message"], "Project updated");
        let fetched = get_project(board, &alpha).await?;
        assert_eq!(fetched["title"], "Alpha renamed");
        assert_eq!(fetched["github_repo"], "https://github.com/example/alpha");

        // Deleting a project takes its tasks with it.
        let task = create_task(client, &alpha, "Doomed task", json!({})).await?;
        let deleted = ok(
            client,
            "manage_project",
            json!({ "action": "delete", "project_id": alpha }),
        )
        .await?;
        assert_eq!(deleted["project_id"], alpha.as_str());
        assert_eq!(deleted["message"], "Project deleted");
        fails(
            client,
            "find_projects",
            json!({ "project_id": alpha }),
            "not_found",
        )
        .await?;
        fails(
            client,
            "find_tasks",
            json!({ "task_id": task }),
            "not_found",
        )
        .await?;
        let listed = ok(client, "find_projects", json!({})).await?;
        assert_eq!(field_of(&listed["projects"], "id"), [beta]);
        Ok(())
    })
    .await
}

// ---------------------------------------------------------------------------------------------
// Tasks

#[tokio::test]
async fn tasks_create_update_and_delete_archives() -> anyhow::Result<()> {
    on_each_backend(async |board| {
        let client = &board.client;
        let project = create_project(client, "Tasks").await?;
        let created = ok(
            client,
            "manage_task",
            json!({
                "action": "create", "project_id": project, "title": "Write the parser",
                "description": "Parse the config", "status": "doing", "assignee": "Archon",
                "task_order": 42, "feature": "config",
            }),
        )
        .await?;
        let task = &created["task"];
        let id = text(&created["task_id"])?;
        assert_eq!(task["id"], id.as_str());
        assert_eq!(task["project_id"], project.as_str());
        for (key, value) in [
            ("title", json!("Write the parser")),
            ("description", json!("Parse the config")),
            ("status", json!("doing")),
            ("assignee", json!("Archon")),
            ("task_order", json!(42)),
            ("feature", json!("config")),
            ("archived", json!(false)),
            ("archived_at", Value::Null),
        ] {
            assert_eq!(task[key], value, "{key} of {task}");
        }
        assert_eq!(created["message"], "Task created");

        let defaults = create_task(client, &project, "Defaults", json!({})).await?;
        let fetched = get_task(board, &defaults).await?;
        assert_eq!(
            (
                &fetched["status"],
                &fetched["assignee"],
                &fetched["task_order"],
                &fetched["feature"],
                &fetched["description"]
            ),
            (
                &json!("todo"),
                &json!("User"),
                &json!(0),
                &Value::Null,
                &json!("")
            )
        );

        let updated = ok(
            client,
            "manage_task",
            json!({ "action": "update", "task_id": id, "status": "review", "task_order": 7 }),
        )
        .await?;
        assert_eq!(updated["task"]["status"], "review");
        assert_eq!(updated["task"]["task_order"], 7);
        assert_eq!(updated["task"]["title"], "Write the parser", "untouched");
        assert_eq!(updated["message"], "Task updated");
        assert_eq!(get_task(board, &id).await?["status"], "review");

        // Highest task_order first.
        let (titles, _) = find_tasks(board, json!({ "project_id": project })).await?;
        assert_eq!(titles, ["Write the parser", "Defaults"]);

        let deleted = ok(
            client,
            "manage_task",
            json!({ "action": "delete", "task_id": id }),
        )
        .await?;
        assert_eq!(deleted["task_id"], id.as_str());
        assert_eq!(deleted["archived"], true);
        let archived = get_task(board, &id).await?;
        assert_eq!(archived["archived"], true, "{archived}");
        assert_eq!(archived["archived_by"], CLIENT, "{archived}");
        assert!(archived["archived_at"].is_string(), "{archived}");
        assert_eq!(archived["title"], "Write the parser");
        let (titles, listed) = find_tasks(
            board,
            json!({ "project_id": project, "include_closed": true }),
        )
        .await?;
        assert_eq!(titles, ["Defaults"], "archived tasks are never listed");
        assert_eq!(listed["total"], 1);

        // An archived task can be neither changed nor archived again.
        let error = fails(
            client,
            "manage_task",
            json!({ "action": "update", "task_id": id, "title": "Revived" }),
            "not_found",
        )
        .await?;
        assert!(text(&error["message"])?.contains(&id), "{error}");
        fails(
            client,
            "manage_task",
            json!({ "action": "delete", "task_id": id }),
            "not_found",
        )
        .await?;
        assert_eq!(get_task(board, &id).await?["title"], "Write the parser");
        Ok(())
    })
    .await
}

#[tokio::test]
async fn tasks_page_through_twenty_five() -> anyhow::Result<()> {
    on_each_backend(async |board| {
        let client = &board.client;
        let project = create_project(client, "Paging").await?;
        let mut created = Vec::new();
        for n in 0..25 {
            created.push(create_task(client, &project, &format!("Task {n:02}"), json!({})).await?);
        }
        let mut seen = Vec::new();
        for (page, count, has_more) in [(1, 10, true), (2, 10, true), (3, 5, false), (4, 0, false)]
        {
            let (titles, body) = find_tasks(
                board,
                json!({ "project_id": project, "page": page, "per_page": 10 }),
            )
            .await?;
            assert_eq!(titles.len(), count, "page {page}: {body}");
            assert_eq!(body["total"], 25, "page {page}");
            assert_eq!(body["has_more"], has_more, "page {page}");
            assert_eq!(
                (&body["page"], &body["per_page"]),
                (&json!(page), &json!(10))
            );
            seen.extend(field_of(&body["tasks"], "id"));
            // Same task_order: oldest first.
            let expected: Vec<String> = (0..count)
                .map(|i| format!("Task {:02}", (page - 1) * 10 + i))
                .collect();
            assert_eq!(titles, expected, "page {page}");
        }
        assert_eq!(seen.len(), 25);
        assert_eq!(
            seen.iter().collect::<BTreeSet<_>>(),
            created.iter().collect::<BTreeSet<_>>(),
            "every task exactly once"
        );

        // Done tasks are hidden unless asked for.
        for id in &created[..3] {
            ok(
                client,
                "manage_task",
                json!({ "action": "update", "task_id": id, "status": "done" }),
            )
            .await?;
        }
        let all = json!({ "project_id": project, "per_page": 100 });
        let (titles, body) = find_tasks(board, all.clone()).await?;
        assert_eq!(body["total"], 22);
        assert!(!titles.contains(&"Task 00".to_string()), "{titles:?}");
        let mut closed = all;
        closed["include_closed"] = json!(true);
        let (titles, body) = find_tasks(board, closed).await?;
        assert_eq!(body["total"], 25);
        assert_eq!(titles.len(), 25);
        let (titles, _) = find_tasks(
            board,
            json!({ "filter_by": "status", "filter_value": "done" }),
        )
        .await?;
        assert_eq!(titles, ["Task 00", "Task 01", "Task 02"]);
        Ok(())
    })
    .await
}

#[tokio::test]
async fn tasks_filter_by_status_assignee_project_and_text() -> anyhow::Result<()> {
    on_each_backend(async |board| {
        let client = &board.client;
        let main = create_project(client, "Main").await?;
        let side = create_project(client, "Side").await?;
        for (project, title, fields) in [
            (&main, "Fix LOGIN bug", json!({ "description": "users cannot sign in" })),
            (&main, "Write docs", json!({ "status": "doing", "assignee": "Archon", "description": "mention the Login page" })),
            (&main, "Reach 100% coverage", json!({ "status": "review", "assignee": "Archon" })),
            (&main, "Old chore", json!({ "status": "done" })),
            (&main, "snake_case rename", json!({ "assignee": "Bob" })),
            (&side, "Login page redesign", json!({})),
            (&side, "1000 small things", json!({ "status": "doing" })),
        ] {
            create_task(client, project, title, fields).await?;
        }
        let cases = [
            (json!({ "filter_by": "status", "filter_value": "todo" }),
             vec!["Fix LOGIN bug", "Login page redesign", "snake_case rename"]),
            (json!({ "filter_by": "status", "filter_value": "doing" }),
             vec!["1000 small things", "Write docs"]),
            (json!({ "filter_by": "status", "filter_value": "done" }), vec!["Old chore"]),
            (json!({ "filter_by": "assignee", "filter_value": "Archon" }),
             vec!["Reach 100% coverage", "Write docs"]),
            (json!({ "filter_by": "project", "filter_value": side }),
             vec!["1000 small things", "Login page redesign"]),
            (json!({ "project_id": main }),
             vec!["Fix LOGIN bug", "Reach 100% coverage", "Write docs", "snake_case rename"]),
            (json!({ "project_id": main, "include_closed": true }),
             vec!["Fix LOGIN bug", "Old chore", "Reach 100% coverage", "Write docs", "snake_case rename"]),
            // Titles and descriptions, ASCII case-insensitive.
            (json!({ "query": "login" }),
             vec!["Fix LOGIN bug", "Login page redesign", "Write docs"]),
            (json!({ "query": "LOGIN", "project_id": side }), vec!["Login page redesign"]),
            (json!({ "query": "SIGN IN" }), vec!["Fix LOGIN bug"]),
            // LIKE wildcards match literally.
            (json!({ "query": "100%" }), vec!["Reach 100% coverage"]),
            (json!({ "query": "_" }), vec!["snake_case rename"]),
            (json!({ "query": "docs", "filter_by": "assignee", "filter_value": "Archon" }),
             vec!["Write docs"]),
            (json!({ "query": "nothing matches this" }), vec![]),
        ];
        for (args, expected) in cases {
            let (titles, body) = find_tasks(board, args.clone()).await?;
            assert_eq!(sorted(titles), expected, "find_tasks {args}");
            assert_eq!(body["total"], expected.len(), "total of find_tasks {args}");
        }
        Ok(())
    })
    .await
}

#[tokio::test]
async fn long_descriptions_are_cut_in_lists_only() -> anyhow::Result<()> {
    on_each_backend(async |board| {
        let client = &board.client;
        // 1200 characters, 2000 bytes: the cut must count characters.
        let long = "ab🙂".repeat(400);
        let head: String = long.chars().take(1000).collect();
        let exact = "x".repeat(1000);
        let created = ok(
            client,
            "manage_project",
            json!({ "action": "create", "title": "Verbose", "description": long }),
        )
        .await?;
        let project = text(&created["project_id"])?;
        let long_task =
            create_task(client, &project, "Long", json!({ "description": long })).await?;
        let exact_task = create_task(
            client,
            &project,
            "Exact",
            json!({ "task_order": 1, "description": exact }),
        )
        .await?;

        let (_, listed) = find_tasks(board, json!({ "project_id": project })).await?;
        let tasks = listed["tasks"].as_array().context("tasks")?;
        let by_id = |id: &str| {
            tasks
                .iter()
                .find(|t| t["id"] == id)
                .cloned()
                .unwrap_or_default()
        };
        let cut = by_id(&long_task);
        assert_eq!(cut["description"], head.as_str());
        assert_eq!(text(&cut["description"])?.chars().count(), 1000);
        assert_eq!(cut["description_truncated"], true);
        let whole = by_id(&exact_task);
        assert_eq!(whole["description"], exact.as_str());
        assert!(whole.get("description_truncated").is_none(), "{whole}");

        let full = get_task(board, &long_task).await?;
        assert_eq!(full["description"], long.as_str());
        assert!(full.get("description_truncated").is_none(), "{full}");

        let projects = ok(client, "find_projects", json!({})).await?;
        assert_eq!(projects["projects"][0]["description"], head.as_str());
        assert_eq!(projects["projects"][0]["description_truncated"], true);
        assert_eq!(
            get_project(board, &project).await?["description"],
            long.as_str()
        );
        Ok(())
    })
    .await
}

#[tokio::test]
async fn task_history_records_every_change_and_its_caller() -> anyhow::Result<()> {
    on_each_backend(async |board| {
        let client = &board.client;
        let session = session_id(client).await?;
        let project = create_project(client, "History").await?;
        let task = create_task(client, &project, "Draft", json!({})).await?;
        let update = |fields: Value| {
            let args = json!({ "action": "update", "task_id": task });
            with(args, fields)
        };
        ok(
            client,
            "manage_task",
            update(json!({ "title": "Final", "status": "doing" })),
        )
        .await?;
        ok(
            client,
            "manage_task",
            update(json!({ "description": "details", "assignee": "Archon", "task_order": 5 })),
        )
        .await?;
        // Nothing changes: nothing is recorded.
        ok(client, "manage_task", update(json!({ "title": "Final" }))).await?;

        // Archived by another client, in another session.
        let auditor = connect(&board.url, "history-auditor").await?;
        let auditor_session = session_id(&auditor).await?;
        assert_ne!(auditor_session, session);
        ok(
            &auditor,
            "manage_task",
            json!({ "action": "delete", "task_id": task }),
        )
        .await?;
        auditor.cancel().await?;

        let rows = history(client, &task).await?;
        let changes: Vec<(String, Value, Value)> = rows
            .iter()
            .map(|r| {
                (
                    text(&r["field"]).unwrap_or_default(),
                    r["old_value"].clone(),
                    r["new_value"].clone(),
                )
            })
            .collect();
        let expected = [
            ("created", Value::Null, json!("Draft")),
            ("title", json!("Draft"), json!("Final")),
            ("status", json!("todo"), json!("doing")),
            ("description", json!(""), json!("details")),
            ("assignee", json!("User"), json!("Archon")),
            ("task_order", json!("0"), json!("5")),
            ("archived", json!("false"), json!("true")),
        ]
        .map(|(field, old, new)| (field.to_string(), old, new));
        assert_eq!(changes, expected);
        for (n, row) in rows.iter().enumerate() {
            let (who, name) = if n == rows.len() - 1 {
                (auditor_session.as_str(), "history-auditor")
            } else {
                (session.as_str(), CLIENT)
            };
            assert_eq!(row["session_id"], who, "row {n}: {row}");
            assert_eq!(row["client_name"], name, "row {n}: {row}");
            assert!(row["changed_at"].is_string(), "row {n}: {row}");
        }

        let limited = ok(
            client,
            "get_task_history",
            json!({ "task_id": task, "limit": 2 }),
        )
        .await?;
        assert_eq!(field_of(&limited["history"], "field"), ["created", "title"]);
        assert_eq!(limited["count"], 2);
        Ok(())
    })
    .await
}

#[tokio::test]
async fn completion_stats_count_live_tasks() -> anyhow::Result<()> {
    on_each_backend(async |board| {
        let client = &board.client;
        let main = create_project(client, "Main").await?;
        let other = create_project(client, "Other").await?;
        let empty = create_project(client, "Empty").await?;
        for (project, status, assignee) in [
            (&main, "todo", "User"),
            (&main, "todo", "User"),
            (&main, "doing", "Archon"),
            (&main, "review", "Archon"),
            (&main, "done", "User"),
            (&main, "done", "User"),
            (&main, "done", "Bob"),
            (&other, "done", "User"),
        ] {
            let fields = json!({ "status": status, "assignee": assignee });
            create_task(client, project, &format!("{status} {assignee}"), fields).await?;
        }
        // Archived tasks do not count.
        let gone = create_task(client, &main, "Archived", json!({ "status": "done" })).await?;
        ok(
            client,
            "manage_task",
            json!({ "action": "delete", "task_id": gone }),
        )
        .await?;

        let stats = ok(
            client,
            "get_completion_stats",
            json!({ "project_id": main }),
        )
        .await?;
        assert_eq!(stats["project_id"], main.as_str());
        assert_eq!(stats["total_tasks"], 7);
        assert_eq!(
            stats["by_status"],
            json!({ "todo": 2, "doing": 1, "review": 1, "done": 3 })
        );
        assert_eq!(
            stats["by_assignee"],
            json!({ "User": 4, "Archon": 2, "Bob": 1 })
        );
        assert_eq!(
            stats["completion_rate_percent"].as_f64(),
            Some(42.86),
            "{stats}"
        );

        let all = ok(client, "get_completion_stats", json!({})).await?;
        assert_eq!(all["project_id"], Value::Null);
        assert_eq!(all["total_tasks"], 8);
        assert_eq!(all["by_status"]["done"], 4);
        assert_eq!(all["completion_rate_percent"].as_f64(), Some(50.0), "{all}");

        let none = ok(
            client,
            "get_completion_stats",
            json!({ "project_id": empty }),
        )
        .await?;
        assert_eq!(none["total_tasks"], 0);
        assert_eq!(
            none["by_status"],
            json!({ "todo": 0, "doing": 0, "review": 0, "done": 0 })
        );
        assert_eq!(none["by_assignee"], json!({}));
        assert_eq!(none["completion_rate_percent"].as_f64(), Some(0.0));
        Ok(())
    })
    .await
}

// ---------------------------------------------------------------------------------------------
// Documents

#[tokio::test]
async fn documents_create_list_update_and_delete() -> anyhow::Result<()> {
    on_each_backend(async |board| {
        let client = &board.client;
        let project = create_project(client, "Docs").await?;
        let other = create_project(client, "Elsewhere").await?;
        let content = json!({ "sections": [{ "heading": "Intro", "body": "Why" }], "version": 3, "draft": false });
        let created = ok(
            client,
            "manage_document",
            json!({
                "action": "create", "project_id": project, "title": "API spec",
                "document_type": "spec", "content": content, "tags": ["api", "v1"], "author": "Ann",
            }),
        )
        .await?;
        let spec = text(&created["document_id"])?;
        let document = &created["document"];
        assert_eq!(document["id"], spec.as_str());
        assert_eq!(document["project_id"], project.as_str());
        assert_eq!(document["title"], "API spec");
        assert_eq!(document["document_type"], "spec");
        assert_eq!(document["content"], content);
        assert_eq!(document["tags"], json!(["api", "v1"]));
        assert_eq!(document["author"], "Ann");
        assert_eq!(created["message"], "Document created");

        let note = create_document(board, &project, json!({ "title": "Meeting note", "document_type": "note" })).await?;
        let fetched = get_document(board, &project, &note).await?;
        assert_eq!(
            (&fetched["content"], &fetched["tags"], &fetched["author"]),
            (&json!({}), &json!([]), &json!(""))
        );

        let listed = ok(client, "find_documents", json!({ "project_id": project })).await?;
        assert_eq!(field_of(&listed["documents"], "title"), ["Meeting note", "API spec"], "newest first");
        assert_eq!(listed["total"], 2);
        for item in listed["documents"].as_array().context("documents")? {
            assert!(item.get("content").is_none(), "lists leave content out: {item}");
        }
        for (args, expected) in [
            (json!({ "document_type": "spec" }), vec!["API spec"]),
            (json!({ "document_type": "guide" }), vec![]),
            (json!({ "query": "MEETING" }), vec!["Meeting note"]),
        ] {
            let mut args = args;
            args["project_id"] = json!(project);
            let found = ok(client, "find_documents", args.clone()).await?;
            assert_eq!(field_of(&found["documents"], "title"), expected, "{args}");
        }
        assert_eq!(get_document(board, &project, &spec).await?["content"], content);
        // Documents belong to their project.
        fails(client, "find_documents", json!({ "project_id": other, "document_id": spec }), "not_found").await?;

        let new_content = json!({ "sections": [], "version": 4 });
        let updated = ok(
            client,
            "manage_document",
            json!({ "action": "update", "project_id": project, "document_id": spec,
                    "title": "API spec v2", "content": new_content, "tags": ["v2"] }),
        )
        .await?;
        let document = &updated["document"];
        assert_eq!(
            (&document["title"], &document["content"], &document["tags"]),
            (&json!("API spec v2"), &new_content, &json!(["v2"]))
        );
        assert_eq!((&document["document_type"], &document["author"]), (&json!("spec"), &json!("Ann")), "untouched");
        assert_eq!(get_document(board, &project, &spec).await?["content"], new_content);

        let deleted = ok(
            client,
            "manage_document",
            json!({ "action": "delete", "project_id": project, "document_id": note }),
        )
        .await?;
        assert_eq!(deleted["document_id"], note.as_str());
        fails(client, "find_documents", json!({ "project_id": project, "document_id": note }), "not_found").await?;
        let listed = ok(client, "find_documents", json!({ "project_id": project })).await?;
        assert_eq!(field_of(&listed["documents"], "id"), [spec]);
        Ok(())
    })
    .await
}

// ---------------------------------------------------------------------------------------------
// Versions

/// `find_versions` for one version (with content).
async fn get_version(
    board: &Board,
    project: &str,
    field: &str,
    number: i64,
) -> anyhow::Result<Value> {
    let args = json!({ "project_id": project, "field_name": field, "version_number": number });
    Ok(ok(&board.client, "find_versions", args).await?["version"].clone())
}

#[tokio::test]
async fn versions_restore_features_prd_and_data() -> anyhow::Result<()> {
    on_each_backend(async |board| {
        let client = &board.client;
        let project = create_project(client, "Versioned").await?;
        let features = ok(client, "get_project_features", json!({ "project_id": project })).await?;
        assert_eq!(
            (&features["project_id"], &features["features"], &features["count"]),
            (&json!(project), &json!([]), &json!(0))
        );

        let wanted = [
            ("features", json!([{ "name": "login", "done": true }, { "name": "search" }])),
            ("prd", json!({ "goal": "ship it", "metrics": ["latency", "uptime"] })),
            ("data", json!([1, 2.5, "three", null, { "four": 4 }])),
        ];
        for (field, content) in &wanted {
            let created = ok(
                client,
                "manage_version",
                json!({ "action": "create", "project_id": project, "field_name": field,
                        "content": content, "change_summary": "first cut", "created_by": "pm" }),
            )
            .await?;
            assert_eq!(created["version_number"], 1, "{created}");
            let version = &created["version"];
            assert_eq!(
                (&version["field_name"], &version["content"], &version["change_type"], &version["created_by"], &version["change_summary"]),
                (&json!(field), content, &json!("create"), &json!("pm"), &json!("first cut"))
            );

            let restored = ok(
                client,
                "manage_version",
                json!({ "action": "restore", "project_id": project, "field_name": field, "version_number": 1 }),
            )
            .await?;
            assert_eq!(restored["restored_version"], 1, "{restored}");
            assert_eq!(restored["backup_version"], 2, "{restored}");
            assert_eq!(restored["version"]["version_number"], 3, "{restored}");
            assert_eq!(restored["version"]["change_type"], "restore");
            assert_eq!(restored["version"]["content"], *content);
            // The backup holds the value from before the restore.
            let before = if *field == "prd" { json!({}) } else { json!([]) };
            assert_eq!(get_version(board, &project, field, 2).await?["content"], before);
            assert_eq!(get_project(board, &project).await?[field], *content, "{field}");
        }

        let features = ok(client, "get_project_features", json!({ "project_id": project })).await?;
        assert_eq!(features["features"], wanted[0].1);
        assert_eq!(features["count"], 2);

        // Without content a version records the field's current value; defaults apply.
        let snapshot = ok(
            client,
            "manage_version",
            json!({ "action": "create", "project_id": project, "field_name": "prd" }),
        )
        .await?;
        assert_eq!(snapshot["version_number"], 4);
        assert_eq!(snapshot["version"]["content"], wanted[1].1);
        assert_eq!(snapshot["version"]["created_by"], "system");

        let listed = ok(client, "find_versions", json!({ "project_id": project, "field_name": "prd" })).await?;
        assert_eq!(listed["total"], 4);
        let numbers: Vec<i64> = listed["versions"]
            .as_array()
            .context("versions")?
            .iter()
            .map(|v| v["version_number"].as_i64().unwrap_or(-1))
            .collect();
        assert_eq!(numbers, [4, 3, 2, 1], "newest first");
        for item in listed["versions"].as_array().context("versions")? {
            assert!(item.get("content").is_none(), "lists leave content out: {item}");
            assert_eq!(item["field_name"], "prd");
        }
        assert_eq!(total(board, "find_versions", json!({ "project_id": project })).await?, 10);
        Ok(())
    })
    .await
}

#[tokio::test]
async fn versions_restore_docs_replaces_the_documents() -> anyhow::Result<()> {
    on_each_backend(async |board| {
        let client = &board.client;
        let project = create_project(client, "Docs history").await?;
        let spec = create_document(board, &project, json!({ "title": "Spec", "document_type": "spec", "content": { "v": 1 } })).await?;
        let guide = create_document(board, &project, json!({ "title": "Guide", "document_type": "guide", "tags": ["how-to"] })).await?;

        let snapshot = ok(
            client,
            "manage_version",
            json!({ "action": "create", "project_id": project, "field_name": "docs", "change_summary": "baseline" }),
        )
        .await?;
        assert_eq!(snapshot["version_number"], 1);
        assert_eq!(field_of(&snapshot["version"]["content"], "title"), ["Spec", "Guide"]);

        // Change everything: edit one, delete one, add one.
        ok(client, "manage_document", json!({ "action": "update", "project_id": project, "document_id": spec, "content": { "v": 2 } })).await?;
        ok(client, "manage_document", json!({ "action": "delete", "project_id": project, "document_id": guide })).await?;
        let note = create_document(board, &project, json!({ "title": "Note", "document_type": "note" })).await?;

        let restored = ok(
            client,
            "manage_version",
            json!({ "action": "restore", "project_id": project, "field_name": "docs", "version_number": 1 }),
        )
        .await?;
        assert_eq!(restored["restored_version"], 1);
        assert_eq!(restored["backup_version"], 2);
        assert_eq!(restored["version"]["change_type"], "restore");

        let listed = ok(client, "find_documents", json!({ "project_id": project })).await?;
        assert_eq!(sorted(field_of(&listed["documents"], "id")), sorted(vec![spec.clone(), guide.clone()]));
        assert_eq!(get_document(board, &project, &spec).await?["content"], json!({ "v": 1 }));
        let back = get_document(board, &project, &guide).await?;
        assert_eq!((&back["title"], &back["document_type"], &back["tags"]), (&json!("Guide"), &json!("guide"), &json!(["how-to"])));
        fails(client, "find_documents", json!({ "project_id": project, "document_id": note }), "not_found").await?;

        // The backup is the state from just before the restore.
        let backup = get_version(board, &project, "docs", 2).await?;
        let content = &backup["content"];
        assert_eq!(sorted(field_of(content, "title")), ["Note", "Spec"]);
        let backed_spec = content.as_array().and_then(|d| d.iter().find(|d| d["id"] == spec.as_str())).context("spec in backup")?;
        assert_eq!(backed_spec["content"], json!({ "v": 2 }));
        Ok(())
    })
    .await
}

#[tokio::test]
async fn restoring_docs_that_are_not_documents_is_rejected() -> anyhow::Result<()> {
    on_each_backend(async |board| {
        let client = &board.client;
        let project = create_project(client, "Bad docs").await?;
        let spec = create_document(board, &project, json!({ "title": "Spec", "document_type": "spec" })).await?;
        // Content that could not be restored later is refused when the version is created.
        let error = fails(
            client,
            "manage_version",
            json!({ "action": "create", "project_id": project, "field_name": "docs", "content": { "not": "documents" } }),
            "validation_error",
        )
        .await?;
        assert_eq!(error["field"], "content", "{error}");
        fails(
            client,
            "manage_version",
            json!({ "action": "restore", "project_id": project, "field_name": "docs", "version_number": 1 }),
            "not_found",
        )
        .await?;
        let listed = ok(client, "find_documents", json!({ "project_id": project })).await?;
        assert_eq!(field_of(&listed["documents"], "id"), [spec], "documents untouched");
        let versions = total(board, "find_versions", json!({ "project_id": project })).await?;
        assert_eq!(versions, 0, "a rejected create or restore leaves no version behind");
        Ok(())
    })
    .await
}

// ---------------------------------------------------------------------------------------------
// Errors

#[tokio::test]
async fn invalid_arguments_are_validation_errors_naming_the_field() -> anyhow::Result<()> {
    on_each_backend(async |board| {
        let client = &board.client;
        let project = create_project(client, "Fixture").await?;
        let task = create_task(client, &project, "Fixture task", json!({})).await?;
        let create = |extra: Value| {
            let args = json!({ "action": "create", "project_id": project, "title": "New" });
            with(args, extra)
        };
        // (tool, arguments, error.field, text the message must contain)
        let cases = [
            ("manage_project", json!({ "action": "archive", "title": "x" }), "action", "unknown variant `archive`"),
            ("manage_task", json!({ "action": "remove", "task_id": task }), "action", "unknown variant `remove`"),
            ("manage_version", json!({ "action": "delete", "project_id": project, "field_name": "prd" }), "action", "expected `create` or `restore`"),
            ("manage_project", json!({ "action": "create" }), "title", "title is required"),
            ("manage_project", json!({ "action": "create", "title": "   " }), "title", "must not be blank"),
            ("manage_project", json!({ "action": "update", "project_id": project, "title": "" }), "title", "must not be blank"),
            ("manage_task", json!({ "action": "create", "project_id": project }), "title", "title is required"),
            ("manage_task", create(json!({ "title": "\t\n " })), "title", "must not be blank"),
            ("manage_task", create(json!({ "assignee": " " })), "assignee", "must not be blank"),
            ("manage_project", json!({ "action": "create", "title": "x".repeat(501) }), "title", "the limit is 500"),
            ("find_tasks", json!({ "task_id": "42" }), "task_id", "not a valid id"),
            ("find_projects", json!({ "project_id": "not-a-uuid" }), "project_id", "not a valid id"),
            ("manage_task", create(json!({ "project_id": "project-1" })), "project_id", "not a valid id"),
            ("manage_task", json!({ "action": "update", "task_id": "123e4567" }), "task_id", "not a valid id"),
            ("manage_task", json!({ "action": "update" }), "task_id", "task_id is required"),
            ("get_task_history", json!({ "task_id": "zzz" }), "task_id", "not a valid id"),
            ("find_documents", json!({ "project_id": "p" }), "project_id", "not a valid id"),
            ("find_tasks", json!({ "per_page": 0 }), "per_page", "between 1 and 100, got 0"),
            ("find_tasks", json!({ "per_page": 101 }), "per_page", "between 1 and 100, got 101"),
            ("find_projects", json!({ "per_page": 101 }), "per_page", "between 1 and 100"),
            ("find_documents", json!({ "project_id": project, "per_page": 0 }), "per_page", "between 1 and 100"),
            ("find_tasks", json!({ "page": 0 }), "page", "page must be 1 or more"),
            ("find_projects", json!({ "page": 0 }), "page", "page must be 1 or more"),
            ("find_versions", json!({ "project_id": project, "page": 0 }), "page", "page must be 1 or more"),
            ("manage_task", create(json!({ "task_order": 101 })), "task_order", "between 0 and 100, got 101"),
            ("manage_task", create(json!({ "task_order": -1 })), "task_order", "between 0 and 100, got -1"),
            ("manage_task", json!({ "action": "update", "task_id": task, "task_order": 101 }), "task_order", "got 101"),
            ("manage_task", create(json!({ "status": "blocked" })), "status", "unknown variant `blocked`"),
            ("find_tasks", json!({ "filter_by": "status" }), "filter_value", "needs a filter_value"),
            ("find_tasks", json!({ "filter_value": "todo" }), "filter_by", "without filter_by"),
            ("find_tasks", json!({ "filter_by": "status", "filter_value": "closed" }), "filter_value", "not a task status"),
            ("find_tasks", json!({ "filter_by": "project", "filter_value": "main" }), "filter_value", "not a valid id"),
            ("find_tasks", json!({ "filter_by": "owner", "filter_value": "me" }), "filter_by", "unknown variant `owner`"),
            ("find_tasks", json!({ "page": "two" }), "page", "invalid type"),
            ("manage_task", create(json!({ "task_order": "high" })), "task_order", "invalid type"),
            // A float never slips into an integer field (the Archon seed's bug).
            ("manage_task", create(json!({ "task_order": 50.5 })), "task_order", "invalid type"),
            ("manage_task", create(json!({ "description": "x".repeat(100_001) })), "description", "the limit is 100000"),
            ("find_tasks", json!({ "include_closed": "yes" }), "include_closed", "invalid type"),
            ("manage_document", json!({ "action": "create", "project_id": project, "title": "d", "tags": "one" }), "tags", "invalid type"),
            ("get_task_history", json!({ "task_id": task, "limit": 0 }), "limit", "between 1 and 1000"),
            ("get_task_history", json!({ "task_id": task, "limit": 1001 }), "limit", "between 1 and 1000"),
            ("manage_document", json!({ "action": "create", "project_id": project, "title": "Doc" }), "document_type", "document_type is required"),
            ("manage_document", json!({ "action": "create", "project_id": project, "title": "Doc", "document_type": "memo" }), "document_type", "unknown variant `memo`"),
            ("find_versions", json!({ "project_id": project, "version_number": 1 }), "field_name", "field_name is required"),
            ("manage_version", json!({ "action": "restore", "project_id": project, "field_name": "prd" }), "version_number", "version_number is required"),
            ("manage_version", json!({ "action": "create", "project_id": project, "field_name": "readme" }), "field_name", "unknown variant `readme`"),
        ];
        for (tool, args, field, message) in cases {
            let error = fails(client, tool, args.clone(), "validation_error").await?;
            assert_eq!(error["field"], field, "{tool} {args}: {error}");
            let text = text(&error["message"])?;
            assert!(text.contains(message), "{tool} {args}: {text:?} lacks {message:?}");
        }

        // An unknown action lists what is allowed.
        let error = fails(client, "manage_project", json!({ "action": "archive" }), "validation_error").await?;
        let message = text(&error["message"])?;
        assert!(message.starts_with("action: unknown variant"), "{message}");
        for allowed in ["`create`", "`update`", "`delete`"] {
            assert!(message.contains(allowed), "{message}");
        }

        // Nothing above changed the board.
        assert_eq!(total(board, "find_projects", json!({})).await?, 1);
        let (titles, _) = find_tasks(board, json!({ "include_closed": true })).await?;
        assert_eq!(titles, ["Fixture task"]);
        let fixture = get_task(board, &task).await?;
        assert_eq!((&fixture["task_order"], &fixture["status"]), (&json!(0), &json!("todo")));
        assert_eq!(total(board, "find_documents", json!({ "project_id": project })).await?, 0);
        assert_eq!(total(board, "find_versions", json!({ "project_id": project })).await?, 0);
        Ok(())
    })
    .await
}

#[tokio::test]
async fn unknown_arguments_are_validation_errors() -> anyhow::Result<()> {
    on_each_backend(async |board| {
        for (tool, args, name) in [
            ("find_tasks", json!({ "bogus": 1 }), "bogus"),
            (
                "manage_project",
                json!({ "action": "create", "title": "x", "owner": "me" }),
                "owner",
            ),
            (
                "get_task_history",
                json!({ "task_id": ghost_id(), "since": "yesterday" }),
                "since",
            ),
        ] {
            let (is_error, body) = call(&board.client, tool, args.clone()).await?;
            assert!(is_error, "{tool} {args}: {body}");
            assert_eq!(body["error"]["type"], "validation_error", "{body}");
            assert_eq!(body["error"]["field"], name, "{body}");
            let message = text(&body["error"]["message"])?;
            assert!(
                message.contains(&format!("unknown field `{name}`")),
                "{message}"
            );
        }
        assert_eq!(total(board, "find_projects", json!({})).await?, 0);
        Ok(())
    })
    .await
}

/// Calls that leave out a required argument: (tool, arguments, the missing argument).
fn missing_required_arguments() -> [(&'static str, Value, &'static str); 3] {
    [
        ("get_project_features", json!({}), "project_id"),
        ("manage_task", json!({ "title": "x" }), "action"),
        (
            "manage_version",
            json!({ "action": "create", "project_id": ghost_id() }),
            "field_name",
        ),
    ]
}

#[tokio::test]
async fn missing_required_arguments_are_validation_errors() -> anyhow::Result<()> {
    on_each_backend(async |board| {
        for (tool, args, name) in missing_required_arguments() {
            let error = fails(&board.client, tool, args, "validation_error").await?;
            assert_eq!(
                error["message"],
                format!("missing field `{name}`"),
                "{error}"
            );
        }
        Ok(())
    })
    .await
}

#[tokio::test]
async fn missing_required_arguments_name_the_field() -> anyhow::Result<()> {
    on_each_backend(async |board| {
        for (tool, args, name) in missing_required_arguments() {
            let error = fails(&board.client, tool, args, "validation_error").await?;
            assert_eq!(error["field"], name, "{tool}: {error}");
        }
        Ok(())
    })
    .await
}

#[tokio::test]
async fn blank_tags_are_validation_errors() -> anyhow::Result<()> {
    on_each_backend(async |board| {
        let project = create_project(&board.client, "Tags").await?;
        for tags in [json!(["ok", ""]), json!(["  "])] {
            let args = json!({ "action": "create", "project_id": project, "title": "Doc",
                               "document_type": "note", "tags": tags });
            let error = fails(&board.client, "manage_document", args, "validation_error").await?;
            assert_eq!(error["field"], "tags", "{error}");
        }
        assert_eq!(
            total(board, "find_documents", json!({ "project_id": project })).await?,
            0
        );
        Ok(())
    })
    .await
}

#[tokio::test]
async fn nul_characters_are_rejected_and_nothing_is_stored() -> anyhow::Result<()> {
    on_each_backend(async |board| {
        let client = &board.client;
        let project = create_project(client, "Clean").await?;
        let content = json!({ "body": "kept" });
        let document = create_document(board, &project, json!({ "title": "Doc", "document_type": "note", "content": content })).await?;
        let cases = [
            ("manage_project", json!({ "action": "create", "title": "bad\u{0}title" }), "title"),
            ("manage_project", json!({ "action": "update", "project_id": project, "description": "a\u{0}" }), "description"),
            ("manage_task", json!({ "action": "create", "project_id": project, "title": "\u{0}" }), "title"),
            ("manage_task", json!({ "action": "create", "project_id": project, "title": "ok", "description": "x\u{0}y" }), "description"),
            ("manage_document", json!({ "action": "create", "project_id": project, "title": "Doc2", "document_type": "note", "content": { "body": "a\u{0}b" } }), "content"),
            ("manage_document", json!({ "action": "create", "project_id": project, "title": "Doc3", "document_type": "note", "content": { "deep": [{ "k\u{0}": 1 }] } }), "content"),
            ("manage_document", json!({ "action": "create", "project_id": project, "title": "Doc4", "document_type": "note", "tags": ["ok", "t\u{0}"] }), "tags"),
            ("manage_document", json!({ "action": "update", "project_id": project, "document_id": document, "content": ["\u{0}"] }), "content"),
            ("manage_version", json!({ "action": "create", "project_id": project, "field_name": "prd", "content": { "goal": "\u{0}" } }), "content"),
            ("find_tasks", json!({ "query": "a\u{0}" }), "query"),
            ("find_tasks", json!({ "filter_by": "assignee", "filter_value": "\u{0}" }), "filter_value"),
            ("manage_project", json!({ "action": "create", "title": "t", "github_repo": "r\u{0}" }), "github_repo"),
            ("manage_document", json!({ "action": "create", "project_id": project, "title": "Doc5", "document_type": "note", "author": "\u{0}" }), "author"),
            ("manage_version", json!({ "action": "create", "project_id": project, "field_name": "data", "change_summary": "\u{0}" }), "change_summary"),
        ];
        for (tool, args, field) in cases {
            let error = fails(client, tool, args.clone(), "validation_error").await?;
            assert_eq!(error["field"], field, "{tool}: {error}");
            let message = text(&error["message"])?;
            assert!(message.contains("U+0000"), "{tool}: {message}");
        }
        let projects = ok(client, "find_projects", json!({})).await?;
        assert_eq!(field_of(&projects["projects"], "title"), ["Clean"]);
        assert_eq!(get_project(board, &project).await?["description"], "");
        assert_eq!(total(board, "find_tasks", json!({ "include_closed": true })).await?, 0);
        let documents = ok(client, "find_documents", json!({ "project_id": project })).await?;
        assert_eq!(field_of(&documents["documents"], "title"), ["Doc"]);
        assert_eq!(get_document(board, &project, &document).await?["content"], content);
        assert_eq!(total(board, "find_versions", json!({ "project_id": project })).await?, 0);
        Ok(())
    })
    .await
}

#[tokio::test]
async fn unknown_ids_are_not_found_errors() -> anyhow::Result<()> {
    on_each_backend(async |board| {
        let client = &board.client;
        let project = create_project(client, "Real").await?;
        let ghost = ghost_id();
        let cases = [
            ("find_projects", json!({ "project_id": ghost })),
            ("manage_project", json!({ "action": "update", "project_id": ghost, "title": "x" })),
            ("manage_project", json!({ "action": "delete", "project_id": ghost })),
            ("get_project_features", json!({ "project_id": ghost })),
            ("find_tasks", json!({ "task_id": ghost })),
            ("manage_task", json!({ "action": "create", "project_id": ghost, "title": "x" })),
            ("manage_task", json!({ "action": "update", "task_id": ghost, "title": "x" })),
            ("manage_task", json!({ "action": "delete", "task_id": ghost })),
            ("get_task_history", json!({ "task_id": ghost })),
            ("get_completion_stats", json!({ "project_id": ghost })),
            ("find_documents", json!({ "project_id": project, "document_id": ghost })),
            ("manage_document", json!({ "action": "create", "project_id": ghost, "title": "x", "document_type": "note" })),
            ("manage_document", json!({ "action": "update", "project_id": project, "document_id": ghost, "title": "x" })),
            ("manage_document", json!({ "action": "delete", "project_id": project, "document_id": ghost })),
            ("manage_version", json!({ "action": "create", "project_id": ghost, "field_name": "prd" })),
        ];
        for (tool, args) in cases {
            let error = fails(client, tool, args.clone(), "not_found").await?;
            let message = text(&error["message"])?;
            assert!(message.contains(&ghost) && message.ends_with("not found"), "{tool} {args}: {message}");
        }
        for args in [
            json!({ "project_id": project, "field_name": "prd", "version_number": 7 }),
            json!({ "action": "restore", "project_id": project, "field_name": "prd", "version_number": 7 }),
        ] {
            let tool = if args.get("action").is_some() { "manage_version" } else { "find_versions" };
            let error = fails(client, tool, args, "not_found").await?;
            assert_eq!(error["message"], "version prd #7 not found", "{error}");
        }
        // Nothing was created on the way.
        assert_eq!(total(board, "find_projects", json!({})).await?, 1);
        assert_eq!(total(board, "find_tasks", json!({ "include_closed": true })).await?, 0);
        assert_eq!(total(board, "find_documents", json!({ "project_id": project })).await?, 0);
        assert_eq!(total(board, "find_versions", json!({ "project_id": project })).await?, 0);
        Ok(())
    })
    .await
}

// ---------------------------------------------------------------------------------------------
// Unicode

#[tokio::test]
async fn unicode_round_trips_through_mcp() -> anyhow::Result<()> {
    // Emoji (with ZWJ and variation selectors), CJK, RTL (Arabic, Hebrew, an override mark),
    // combining marks (NFD "é", stacked marks): stored and returned byte for byte.
    let title = "🚀 Launch 日本語 — العربية שלום";
    let prose = "Crème brûle\u{301}e · 한국어 · 👩\u{200d}👩\u{200d}👧 · \u{202e}RTL override\u{202c} · Z\u{351}\u{362}a · 𝕏";
    let content = json!({
        "标题": "值 🎉",
        "rtl": "مرحبا بالعالم ‏שלום",
        "marks": ["é", "e\u{301}", "Z\u{351}\u{362}"],
        "emoji": { "🔑": "🗝️", "flags": "🇯🇵🇮🇱" },
    });
    let tags = json!(["标签", "🏷️", "עברית", "e\u{301}"]);
    on_each_backend(async |board| {
        let client = &board.client;
        let created = ok(client, "manage_project", json!({ "action": "create", "title": title, "description": prose })).await?;
        let project = text(&created["project_id"])?;
        assert_eq!((&created["project"]["title"], &created["project"]["description"]), (&json!(title), &json!(prose)));
        let fetched = get_project(board, &project).await?;
        assert_eq!((&fetched["title"], &fetched["description"]), (&json!(title), &json!(prose)));
        let found = ok(client, "find_projects", json!({ "query": "日本語" })).await?;
        assert_eq!(field_of(&found["projects"], "title"), [title]);

        let task = create_task(client, &project, title, json!({ "description": prose, "assignee": "エージェント 🤖", "feature": "機能 ✓" })).await?;
        let fetched = get_task(board, &task).await?;
        for (key, value) in [("title", title), ("description", prose), ("assignee", "エージェント 🤖"), ("feature", "機能 ✓")] {
            assert_eq!(fetched[key], value, "task {key}");
        }
        let (titles, _) = find_tasks(board, json!({ "query": "brûle\u{301}e" })).await?;
        assert_eq!(titles, [title]);
        let (titles, _) = find_tasks(board, json!({ "filter_by": "assignee", "filter_value": "エージェント 🤖" })).await?;
        assert_eq!(titles, [title]);
        assert_eq!(history(client, &task).await?[0]["new_value"], title);

        let document = create_document(board, &project, json!({ "title": title, "document_type": "spec", "content": content, "tags": tags, "author": "Zoë 🦊" })).await?;
        let fetched = get_document(board, &project, &document).await?;
        assert_eq!(fetched["title"], title);
        assert_eq!(fetched["content"], content);
        assert_eq!(fetched["tags"], tags);
        assert_eq!(fetched["author"], "Zoë 🦊");
        let listed = ok(client, "find_documents", json!({ "project_id": project, "query": "LAUNCH" })).await?;
        assert_eq!(field_of(&listed["documents"], "title"), [title]);

        let version = ok(client, "manage_version", json!({ "action": "create", "project_id": project, "field_name": "prd", "content": content, "change_summary": prose })).await?;
        let stored = get_version(board, &project, "prd", 1).await?;
        assert_eq!((&stored["content"], &stored["change_summary"]), (&content, &json!(prose)), "{version}");
        Ok(())
    })
    .await
}
