//! `steward projects` and `steward tasks` on both engines: lists and shows as tables and JSON,
//! adds and moves through manage_task's rules, ids in full or as a unique prefix.

use crate::common;

use std::time::Duration;

use anyhow::{Context, ensure};
use serde_json::Value;

use common::{TestDb, backends};

/// Runs `steward ARGS --database URL`: (success, stdout, stderr).
async fn steward(db: &TestDb, args: &[&str]) -> anyhow::Result<(bool, String, String)> {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_steward"));
    command
        .args(args)
        .args(["--database", &db.url])
        .current_dir(db.dir())
        .env_remove("STEWARD_CONFIG")
        .env_remove("STEWARD_DATABASE_URL")
        .env("NO_COLOR", "1")
        .kill_on_drop(true);
    let output = tokio::time::timeout(Duration::from_secs(30), command.output())
        .await
        .with_context(|| format!("steward {args:?} did not finish"))??;
    Ok((
        output.status.success(),
        String::from_utf8(output.stdout)?,
        String::from_utf8(output.stderr)?,
    ))
}

async fn json(db: &TestDb, args: &[&str]) -> anyhow::Result<Value> {
    let (ok, out, err) = steward(db, args).await?;
    ensure!(ok, "steward {args:?} failed: {err}");
    Ok(serde_json::from_str(&out)?)
}

#[tokio::test]
async fn projects_and_tasks_from_the_command_line() -> anyhow::Result<()> {
    for backend in backends() {
        let db = TestDb::new(backend).await?;
        let store = common::open_store(&db).await?;
        let project = store
            .create_project(&steward::store::projects::NewProject {
                title: "CLI board".into(),
                description: String::new(),
                github_repo: None,
            })
            .await?;
        store.close().await;
        let project_id = project.id.to_string();
        let prefix = &project_id[..8];

        let added = json(
            &db,
            &[
                "tasks",
                "add",
                "--project",
                prefix,
                "--title",
                "Write docs",
                "--assignee",
                "ana",
                "--json",
            ],
        )
        .await?;
        let task_id = added["task"]["id"].as_str().context("no id")?.to_string();
        ensure!(added["task"]["status"] == "todo", "{added}");

        // The tools' rules, with the field named.
        let (ok, _, err) = steward(
            &db,
            &[
                "tasks",
                "add",
                "--project",
                prefix,
                "--title",
                "x",
                "--order",
                "101",
            ],
        )
        .await?;
        ensure!(
            !ok && err.contains("task_order") && err.contains("between 0 and 100"),
            "{err}"
        );

        let moved = json(&db, &["tasks", "move", &task_id[..6], "doing", "--json"]).await?;
        ensure!(moved["task"]["status"] == "doing", "{moved}");
        let listed = json(
            &db,
            &[
                "tasks",
                "list",
                "--project",
                prefix,
                "--status",
                "doing",
                "--json",
            ],
        )
        .await?;
        ensure!(
            listed["total"] == 1 && listed["tasks"][0]["id"] == task_id.as_str(),
            "{listed}"
        );
        let shown = json(&db, &["tasks", "show", &task_id, "--json"]).await?;
        let history = shown["history"].as_array().context("history")?;
        ensure!(
            history.len() == 2
                && history[1]["new_value"] == "doing"
                && history[1]["client_name"] == "cli",
            "{shown}"
        );

        let projects = json(&db, &["projects", "list", "--json"]).await?;
        ensure!(
            projects["projects"][0]["doing"] == 1 && projects["projects"][0]["total"] == 1,
            "{projects}"
        );
        let (ok, table, _) = steward(&db, &["projects", "show", prefix]).await?;
        ensure!(
            ok && table.contains("CLI board") && table.contains("Write docs"),
            "{table}"
        );

        // Seventeen tasks: two share a first character, so that prefix is ambiguous.
        let mut ids = vec![task_id.clone()];
        for n in 0..16 {
            let t = json(
                &db,
                &[
                    "tasks",
                    "add",
                    "--project",
                    prefix,
                    "--title",
                    &format!("t{n}"),
                    "--json",
                ],
            )
            .await?;
            ids.push(t["task"]["id"].as_str().context("id")?.to_string());
        }
        let shared = ids
            .iter()
            .map(|id| &id[..1])
            .find(|c| ids.iter().filter(|id| id.starts_with(*c)).count() > 1)
            .context("no shared first character")?;
        let (ok, _, err) = steward(&db, &["tasks", "show", shared]).await?;
        ensure!(!ok && err.contains("several task ids"), "{err}");
        let (ok, _, err) = steward(&db, &["tasks", "show", "zz"]).await?;
        ensure!(
            !ok && err.contains("no task has an id starting with"),
            "{err}"
        );
    }
    Ok(())
}

#[tokio::test]
async fn tasks_show_prints_what_the_task_cost() -> anyhow::Result<()> {
    use steward::ledger::{LedgerRow, Status};
    for backend in backends() {
        let db = TestDb::new(backend).await?;
        let store = common::open_store(&db).await?;
        let now = chrono::Utc::now();
        let mut session = common::new_session("s-1", "claude_code", now);
        session.client_name = Some("claude-code".into());
        store.insert_session(&session).await?;
        let project = store
            .create_project(&steward::store::projects::NewProject {
                title: "Costs".into(),
                description: String::new(),
                github_repo: None,
            })
            .await?;
        let project_id = project.id.to_string();
        store.close().await;
        let added = json(
            &db,
            &[
                "tasks",
                "add",
                "--project",
                &project_id,
                "--title",
                "Paid for",
                "--json",
            ],
        )
        .await?;
        let task_id = added["task"]["id"].as_str().context("no id")?.to_string();
        json(&db, &["tasks", "move", &task_id, "doing", "--json"]).await?;
        json(&db, &["tasks", "move", &task_id, "done", "--json"]).await?;
        let store = common::open_store(&db).await?;
        let subject = Some(task_id.parse::<uuid::Uuid>()?);
        // ledger_row: 8 tokens and $0.001 a row.
        let rows: Vec<LedgerRow> = [Status::Success, Status::ToolError, Status::Success]
            .into_iter()
            .map(|status| LedgerRow {
                subject,
                status,
                ..common::ledger_row("s-1", "manage_task", now)
            })
            .collect();
        store.insert_requests(&rows).await?;
        store.close().await;

        let shown = json(&db, &["tasks", "show", &task_id, "--json"]).await?;
        let activity = &shown["activity"];
        ensure!(
            activity["calls"] == 3
                && activity["tool_errors"] == 1
                && activity["estimated_tokens"] == 24
                && activity["estimated_cost_usd"] == "0.003"
                && activity["doing_to_done_seconds"].is_i64(),
            "{backend:?}: {shown}"
        );
        let (ok, text, err) = steward(&db, &["tasks", "show", &task_id[..8]]).await?;
        ensure!(ok, "{err}");
        ensure!(
            text.contains(
                "activity: 3 calls  1 errors (1 tool errors)  ~24 tokens  ~$0.003  1 sessions"
            ) && text.contains("s-1  claude-code  3 calls"),
            "{text}"
        );
    }
    Ok(())
}

/// The titles of the tasks in a `find_tasks` answer.
fn task_titles(found: &Value) -> Vec<&str> {
    common::listed(found, "tasks", "title")
}

/// A running server remembers its board reads' answers; `steward tasks add` and `steward tasks
/// move` beside it show in its very next read.
#[tokio::test]
async fn cli_writes_show_in_a_running_server_s_next_read() -> anyhow::Result<()> {
    for backend in backends() {
        let db = TestDb::new(backend).await?;
        let server = common::TestServer::start(&db).await?;
        let client = common::connect(&server.mcp_url(), "cli-reader").await?;
        let create = serde_json::json!({"action": "create", "title": "Beside a server"});
        let (failed, created) = common::call(&client, "manage_project", create).await?;
        ensure!(!failed, "{created}");
        let project_id = created["project_id"].as_str().context("no project_id")?;
        let all = serde_json::json!({ "project_id": project_id });
        let doing = serde_json::json!({ "project_id": project_id, "filter_by": "status", "filter_value": "doing" });
        // Twice each: the second answer is the remembered one.
        for find in [&all, &doing, &all, &doing] {
            let (failed, found) = common::call(&client, "find_tasks", find.clone()).await?;
            ensure!(!failed && task_titles(&found).is_empty(), "{found}");
        }

        let args = [
            "tasks",
            "add",
            "--project",
            project_id,
            "--title",
            "From the CLI",
            "--json",
        ];
        let added = json(&db, &args).await?;
        let task_id = added["task"]["id"].as_str().context("no id")?.to_string();
        let (_, found) = common::call(&client, "find_tasks", all.clone()).await?;
        ensure!(
            task_titles(&found) == ["From the CLI"],
            "after tasks add: {found}"
        );
        let (_, found) = common::call(&client, "find_tasks", doing.clone()).await?;
        ensure!(task_titles(&found).is_empty(), "{found}");

        json(&db, &["tasks", "move", &task_id, "doing", "--json"]).await?;
        let (_, found) = common::call(&client, "find_tasks", doing.clone()).await?;
        ensure!(
            task_titles(&found) == ["From the CLI"],
            "after tasks move: {found}"
        );
        client.cancel().await?;
        server.stop().await;
    }
    Ok(())
}

/// What a person sees on stderr from a read on an existing board: the database's name and
/// nothing else (no PostgreSQL notice from the migrations that already ran), and a `--limit`
/// out of range refused as a usage error (exit 2) naming the range, and an empty id likewise.
#[tokio::test]
async fn the_command_line_says_only_what_matters() -> anyhow::Result<()> {
    for backend in backends() {
        let db = TestDb::new(backend).await?;
        common::open_store(&db).await?.close().await;

        let listed = common::steward_cli(&db, &["projects", "list", "--database", &db.url]).await?;
        ensure!(listed.status.success(), "{backend:?}: projects list failed");
        let stderr = String::from_utf8(listed.stderr)?;
        let lines: Vec<&str> = stderr.lines().collect();
        ensure!(
            lines.len() == 1 && lines[0].starts_with("steward: database "),
            "{backend:?}: stderr is more than the database's name: {stderr:?}"
        );

        for limit in ["0", "101"] {
            let refused = common::steward_cli(
                &db,
                &["tasks", "list", "--limit", limit, "--database", &db.url],
            )
            .await?;
            let stderr = String::from_utf8(refused.stderr)?;
            ensure!(
                refused.status.code() == Some(2) && stderr.contains("1..=100"),
                "{backend:?}: --limit {limit}: exit {:?}, {stderr:?}",
                refused.status.code()
            );
        }

        // An empty id is a usage error that asks for one, not a search for ids starting "".
        for args in [["sessions", "show", ""], ["projects", "show", ""]] {
            let refused =
                common::steward_cli(&db, &[&args[..], &["--database", &db.url]].concat()).await?;
            let stderr = String::from_utf8(refused.stderr)?;
            ensure!(
                refused.status.code() == Some(2) && stderr.contains("id is empty"),
                "{backend:?}: {args:?}: exit {:?}, {stderr:?}",
                refused.status.code()
            );
        }
    }
    Ok(())
}
