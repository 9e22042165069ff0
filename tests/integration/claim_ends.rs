//! A claim ends as an event even when nobody looks: a lease that runs out is ended by the
//! background sweep (one history row, whatever the number of replicas sweeping) and its
//! subscribers are told; a `steward stdio` process that ends (EOF on stdin, SIGTERM) ends its
//! session's claims. Both engines.

// resources/subscribe is legacy in rmcp's eyes (SEP-2577); session-era clients still use it.
#![allow(deprecated)]

use crate::board;
use crate::common;

use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail};
use rmcp::model::SubscribeRequestParams;
use serde_json::{Value, json};
use sqlx::Connection;
use steward::board::Actor;
use steward::resources::changes::BoardChanges;
use steward::resources::expiry;
use steward::store::Id;
use steward::store::Store;
use steward::store::projects::NewProject;
use steward::store::tasks::NewTask;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

use board::{create_project, create_task, history, ok, text};
use common::{Backend, InProcess, TestDb, backends, connect, open_store};

/// Generous bound for events that are due within a second or two.
const PATIENCE: Duration = Duration::from_secs(15);

async fn seed(store: &Store, tasks: usize) -> anyhow::Result<Vec<Id>> {
    let project = store
        .create_project(&NewProject {
            title: "Leases".into(),
            description: String::new(),
            github_repo: None,
        })
        .await?;
    let mut ids = Vec::new();
    for i in 0..tasks {
        let new = NewTask {
            project_id: project.id,
            title: format!("task {i}"),
            description: String::new(),
            status: "todo",
            assignee: "User".into(),
            task_order: 0,
            feature: None,
            blocked_by: Vec::new(),
            parent_task_id: None,
            sources: json!([]),
            code_examples: json!([]),
        };
        let task = store
            .create_task(&new, &Actor::default())
            .await?
            .map_err(|refusal| anyhow::anyhow!("{refusal}"))?;
        ids.push(task.id);
    }
    Ok(ids)
}

/// The `reason` of each `claimed_by` row of the task's history.
async fn claim_reasons(store: &Store, id: Id) -> anyhow::Result<Vec<String>> {
    Ok(store
        .task_history(id, 1000)
        .await?
        .into_iter()
        .filter(|row| row.change.field == "claimed_by")
        .map(|row| row.reason.unwrap_or_default())
        .collect())
}

#[tokio::test]
async fn replicas_sweeping_at_once_end_each_lease_once() -> anyhow::Result<()> {
    const TASKS: usize = 12;
    const REPLICAS: usize = 3;
    for backend in backends() {
        eprintln!("--- concurrent sweeps on {}", backend.name());
        let db = TestDb::new(backend).await?;
        let store = open_store(&db).await?;
        let tasks = seed(&store, TASKS).await?;
        let holder = Actor {
            session_id: Some("holder".into()),
            client_name: Some("agent".into()),
            principal: None,
        };
        for id in &tasks {
            store
                .claim_task(*id, "holder", &holder, Duration::from_secs(1))
                .await?
                .map_err(|refusal| anyhow::anyhow!("{refusal}"))?;
        }
        // Replicas are separate pools on one database.
        let mut replicas = Vec::new();
        for _ in 0..REPLICAS {
            replicas.push(open_store(&db).await?);
        }
        tokio::time::sleep(Duration::from_millis(1200)).await;
        // The sweep each replica runs every period: it counts the ran-out leases first, so
        // all three see some and race for them in the conditional UPDATE.
        let changes = BoardChanges::default();
        let swept = futures::future::try_join_all(
            replicas
                .iter()
                .map(|replica| expiry::sweep(replica, &changes)),
        )
        .await?;
        assert_eq!(
            swept.iter().sum::<usize>(),
            TASKS,
            "each lease ended by one sweep on {}: {swept:?}",
            backend.name()
        );
        for id in &tasks {
            assert_eq!(
                claim_reasons(&store, *id).await?,
                ["claimed", "lease_expired"]
            );
            let task = store.get_task(*id).await?.context("task")?;
            assert_eq!((task.claimed_by, task.lease_until), (None, None));
        }
        assert_eq!(expiry::sweep(&store, &changes).await?, 0, "nothing left");
        for replica in replicas {
            replica.close().await;
        }
        store.close().await;
    }
    Ok(())
}

/// SQLite has one writer at a time. The sweep runs every period on every replica; while no
/// lease has run out it must not queue for the write lock behind a long write (and fail once
/// the busy timeout passes), yet it still ends a lease that has. PostgreSQL's sweep never
/// locked more than the rows it ends.
#[tokio::test]
async fn a_sweep_with_no_lease_run_out_does_not_wait_for_sqlites_writer() -> anyhow::Result<()> {
    let db = TestDb::new(Backend::Sqlite).await?;
    let store = open_store(&db).await?;
    let tasks = seed(&store, 2).await?;
    let holder = Actor {
        session_id: Some("holder".into()),
        client_name: Some("agent".into()),
        principal: None,
    };
    let claim = |id, seconds| {
        let (store, holder) = (&store, &holder);
        async move {
            store
                .claim_task(id, "holder", holder, Duration::from_secs(seconds))
                .await?
                .map_err(|refusal| anyhow::anyhow!("{refusal}"))
        }
    };
    claim(tasks[0], 900).await?;
    let changes = BoardChanges::default();
    let mut writer = sqlx::SqliteConnection::connect(&db.url).await?;
    sqlx::query("BEGIN IMMEDIATE").execute(&mut writer).await?;
    let swept = expiry::sweep(&store, &changes).await;
    sqlx::query("ROLLBACK").execute(&mut writer).await?;
    assert_eq!(swept?, 0, "a live lease is not ended");

    claim(tasks[1], 1).await?;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(
        expiry::sweep(&store, &changes).await?,
        1,
        "the lease that ran out"
    );
    assert_eq!(
        claim_reasons(&store, tasks[1]).await?,
        ["claimed", "lease_expired"]
    );
    assert_eq!(claim_reasons(&store, tasks[0]).await?, ["claimed"]);
    writer.close().await?;
    store.close().await;
    Ok(())
}

#[tokio::test]
async fn a_lease_that_runs_out_ends_and_subscribers_hear_it() -> anyhow::Result<()> {
    for backend in backends() {
        eprintln!("--- lease sweep on {}", backend.name());
        let db = TestDb::new(backend).await?;
        let server = InProcess::start_with(&db, &["--revocation-poll", "200ms"]).await?;
        let agent = connect(&server.mcp_url(), "agent").await?;
        let project = create_project(&agent, "Short leases").await?;
        let task = create_task(&agent, &project, "Quick", json!({})).await?;

        let (watcher, mut updates) = common::watch(&server.mcp_url()).await?;
        let uri = format!("steward://tasks/{task}");
        watcher
            .subscribe(SubscribeRequestParams::new(uri.clone()))
            .await?;
        // Let the watcher's event stream open before the claim.
        tokio::time::sleep(Duration::from_millis(300)).await;

        let claimed = ok(
            &agent,
            "claim_task",
            json!({ "task_id": task, "lease_seconds": 1 }),
        )
        .await?;
        let session = text(&claimed["task"]["claimed_by"])?;
        let heard = tokio::time::timeout(PATIENCE, updates.recv()).await?;
        assert_eq!(heard.as_deref(), Some(uri.as_str()), "the claim");
        // Nobody reads the board now: only the sweep can end the claim.
        let heard = tokio::time::timeout(PATIENCE, updates.recv())
            .await
            .context("no notification that the lease ended")?;
        assert_eq!(heard.as_deref(), Some(uri.as_str()), "the lease's end");

        let store = open_store(&db).await?;
        let ended = store.get_task(task.parse()?).await?.context("task")?;
        assert_eq!(
            ended.claimed_by, None,
            "ended by the sweep, before any read"
        );
        store.close().await;
        let rows = history(&agent, &task).await?;
        let last = rows
            .iter()
            .rev()
            .find(|r| r["field"] == "claimed_by")
            .context("claim rows")?;
        assert_eq!(
            (&last["old_value"], &last["reason"]),
            (&json!(session), &json!("lease_expired"))
        );
        let seen = ok(&agent, "find_tasks", json!({ "task_id": task })).await?;
        assert_eq!(seen["task"]["claimed_by"], Value::Null, "{seen}");
        assert_eq!(seen["task"]["lease_until"], Value::Null, "{seen}");

        watcher.cancel().await?;
        agent.cancel().await?;
        server.stop().await;
    }
    Ok(())
}

#[tokio::test]
async fn a_listing_ends_the_leases_that_ran_out_before_showing_them() -> anyhow::Result<()> {
    for backend in backends() {
        eprintln!("--- a listing after a lease ran out on {}", backend.name());
        let db = TestDb::new(backend).await?;
        // The sweep waits an hour: only the reads can end the claims.
        let server = InProcess::start_with(&db, &["--revocation-poll", "1h"]).await?;
        let agent = connect(&server.mcp_url(), "agent").await?;
        let project = create_project(&agent, "Listed leases").await?;
        let listed = create_task(&agent, &project, "Listed", json!({})).await?;
        let hidden = create_task(&agent, &project, "Hidden", json!({})).await?;
        for task in [&listed, &hidden] {
            ok(
                &agent,
                "claim_task",
                json!({ "task_id": task, "lease_seconds": 1 }),
            )
            .await?;
        }
        let page = ok(&agent, "find_tasks", json!({ "project_id": project })).await?;
        let held = page["tasks"]
            .as_array()
            .context("tasks")?
            .iter()
            .filter(|t| t["claimed_by"] != Value::Null)
            .count();
        assert_eq!(held, 2, "both claims are live: {page}");
        tokio::time::sleep(Duration::from_millis(1200)).await;

        // A page that shows a ran-out claim ends it first and shows the task unclaimed.
        let page = ok(
            &agent,
            "find_tasks",
            json!({ "project_id": project, "query": "Listed" }),
        )
        .await?;
        let row = &page["tasks"][0];
        assert_eq!(row["id"], json!(listed), "{page}");
        assert_eq!(
            (&row["claimed_by"], &row["lease_until"]),
            (&Value::Null, &Value::Null),
            "{page}"
        );
        let store = open_store(&db).await?;
        for task in [&listed, &hidden] {
            assert_eq!(
                claim_reasons(&store, task.parse()?).await?,
                ["claimed", "lease_expired"],
                "every ran-out lease ended, also of tasks the page does not show"
            );
        }

        // An empty page ends them too.
        ok(
            &agent,
            "claim_task",
            json!({ "task_id": listed, "lease_seconds": 1 }),
        )
        .await?;
        tokio::time::sleep(Duration::from_millis(1200)).await;
        let page = ok(&agent, "find_tasks", json!({ "query": "no such words" })).await?;
        assert_eq!(page["tasks"], json!([]), "{page}");
        assert_eq!(
            claim_reasons(&store, listed.parse()?).await?,
            ["claimed", "lease_expired", "claimed", "lease_expired"]
        );
        store.close().await;
        agent.cancel().await?;
        server.stop().await;
    }
    Ok(())
}

/// `steward stdio` driven line by line, as an MCP host drives it.
struct StdioChild {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: Lines<BufReader<ChildStdout>>,
    next_id: u64,
}

impl StdioChild {
    async fn start(db: &TestDb) -> anyhow::Result<StdioChild> {
        let mut child = Command::new(env!("CARGO_BIN_EXE_steward"))
            .args(["stdio", "--database", &db.url])
            .current_dir(db.dir())
            .env_remove("STEWARD_CONFIG")
            .env("NO_COLOR", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .context("cannot spawn `steward stdio`")?;
        let stdin = child.stdin.take().context("stdin")?;
        let stdout = BufReader::new(child.stdout.take().context("stdout")?).lines();
        let mut me = StdioChild {
            child,
            stdin: Some(stdin),
            stdout,
            next_id: 0,
        };
        me.request(
            "initialize",
            json!({ "protocolVersion": "2025-06-18", "capabilities": {},
                    "clientInfo": { "name": "stdio-claimer", "version": "1" } }),
        )
        .await?;
        me.send(json!({ "jsonrpc": "2.0", "method": "notifications/initialized" }))
            .await?;
        Ok(me)
    }

    async fn send(&mut self, message: Value) -> anyhow::Result<()> {
        let stdin = self.stdin.as_mut().context("stdin closed")?;
        stdin.write_all(format!("{message}\n").as_bytes()).await?;
        stdin.flush().await?;
        Ok(())
    }

    async fn request(&mut self, method: &str, params: Value) -> anyhow::Result<Value> {
        self.next_id += 1;
        let id = self.next_id;
        self.send(json!({ "jsonrpc": "2.0", "id": id, "method": method, "params": params }))
            .await?;
        loop {
            let line = tokio::time::timeout(PATIENCE, self.stdout.next_line())
                .await
                .context("no answer")??
                .context("stdout closed")?;
            let message: Value = serde_json::from_str(&line)?;
            if message["id"] == id {
                return Ok(message);
            }
        }
    }

    /// Calls a tool and returns its JSON body; fails on a tool error.
    async fn tool(&mut self, name: &str, arguments: Value) -> anyhow::Result<Value> {
        let answer = self
            .request(
                "tools/call",
                json!({ "name": name, "arguments": arguments }),
            )
            .await?;
        let body: Value = serde_json::from_str(
            answer["result"]["content"][0]["text"]
                .as_str()
                .context("text")?,
        )?;
        if body["success"] != true {
            bail!("{name} failed: {body}");
        }
        Ok(body)
    }

    /// Ends the session the way the test asks, and waits for the process to exit.
    async fn end(mut self, by_signal: bool) -> anyhow::Result<()> {
        if by_signal {
            let pid = self.child.id().context("pid")?;
            let kill = std::process::Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status()?;
            anyhow::ensure!(kill.success(), "kill -TERM failed");
        } else {
            drop(self.stdin.take());
        }
        let status = tokio::time::timeout(PATIENCE, self.child.wait()).await??;
        anyhow::ensure!(status.success(), "steward stdio exited with {status}");
        Ok(())
    }
}

#[tokio::test]
async fn a_stdio_session_that_ends_ends_its_claims() -> anyhow::Result<()> {
    for backend in backends() {
        for by_signal in [false, true] {
            let how = if by_signal { "SIGTERM" } else { "EOF" };
            eprintln!("--- stdio ends by {how} on {}", backend.name());
            let db = TestDb::new(backend).await?;
            let store = open_store(&db).await?;
            let task = seed(&store, 1).await?[0];

            let mut stdio = StdioChild::start(&db).await?;
            let claimed = stdio
                .tool("claim_task", json!({ "task_id": task.to_string() }))
                .await?;
            let session = text(&claimed["task"]["claimed_by"])?;
            assert!(session.starts_with("stdio-"), "{claimed}");
            let held = store.get_task(task).await?.context("task")?;
            assert_eq!(held.claimed_by.as_deref(), Some(session.as_str()));
            stdio.end(by_signal).await.with_context(|| how)?;

            let task_row = store.get_task(task).await?.context("task")?;
            assert_eq!(
                task_row.claimed_by,
                None,
                "{how} on {}: the claim ended with the process",
                backend.name()
            );
            assert_eq!(
                claim_reasons(&store, task).await?,
                ["claimed", "session_ended"]
            );
            let sessions = store.list_sessions(&Default::default(), 10, 0).await?.0;
            let row = sessions
                .iter()
                .find(|s| s.session_id == session)
                .context("the stdio session is recorded")?;
            assert_eq!(
                (row.status.as_str(), row.disconnect_reason.as_deref()),
                ("disconnected", Some("ended"))
            );
            store.close().await;
        }
    }
    Ok(())
}
