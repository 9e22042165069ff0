//! Several agents on one board: claims as leases, `next_task` under concurrency, dependencies,
//! and the tool contract fixes of issue 22 — real servers, real MCP clients, both engines.

use crate::board;
use crate::common;

use std::collections::BTreeSet;
use std::time::Duration;

use anyhow::Context;
use serde_json::{Value, json};

use board::{create_project, create_task, fails, history, ok, session_id, text};
use common::{Backend, Client, TestDb, TestServer, backends, connect};

/// One server per engine, with two agents connected to it.
struct Agents {
    a: Client,
    b: Client,
    url: String,
    backend: Backend,
}

async fn on_each_backend(story: impl AsyncFn(&Agents) -> anyhow::Result<()>) -> anyhow::Result<()> {
    for backend in backends() {
        eprintln!("--- claims story on {}", backend.name());
        let db = TestDb::new(backend).await?;
        let server = TestServer::start(&db).await?;
        let url = server.mcp_url();
        let agents = Agents {
            a: connect(&url, "agent-a").await?,
            b: connect(&url, "agent-b").await?,
            url,
            backend,
        };
        story(&agents)
            .await
            .with_context(|| format!("on {}", backend.name()))?;
        drop(server);
    }
    Ok(())
}

async fn get_task(client: &Client, task_id: &str) -> anyhow::Result<Value> {
    let body = ok(client, "find_tasks", json!({ "task_id": task_id })).await?;
    Ok(body["task"].clone())
}

/// `(field, reason)` of each claim row of a task's history.
async fn claim_rows(client: &Client, task_id: &str) -> anyhow::Result<Vec<(String, String)>> {
    Ok(history(client, task_id)
        .await?
        .iter()
        .filter(|row| row["field"] == "claimed_by")
        .map(|row| {
            let reason = row["reason"].as_str().unwrap_or("<none>").to_string();
            let holder = match (&row["old_value"], &row["new_value"]) {
                (_, Value::String(new)) => format!("+{new}"),
                (Value::String(old), _) => format!("-{old}"),
                _ => "?".into(),
            };
            (holder, reason)
        })
        .collect())
}

#[tokio::test]
async fn a_claim_is_a_lease_that_others_see_and_respect() -> anyhow::Result<()> {
    on_each_backend(async |agents| {
        let (a, b) = (&agents.a, &agents.b);
        let (sa, sb) = (session_id(a).await?, session_id(b).await?);
        let project = create_project(a, "Shared board").await?;
        let task = create_task(a, &project, "Fix login", json!({})).await?;

        let claimed = ok(a, "claim_task", json!({ "task_id": task })).await?;
        let token = text(&claimed["claim_token"])?;
        assert!(claimed["lease_until"].is_string(), "{claimed}");
        assert_eq!(claimed["task"]["claimed_by"], sa.as_str());
        assert_eq!(claimed["task"]["claimed_client"], "agent-a");
        assert!(
            claimed["task"].get("claim_token").is_none(),
            "the token is never listed: {claimed}"
        );

        // Everyone sees who holds it; the unclaimed filter leaves it out.
        let seen = get_task(b, &task).await?;
        assert_eq!(
            (seen["claimed_by"].as_str(), seen["lease_until"].is_string()),
            (Some(sa.as_str()), true)
        );
        let unclaimed = ok(
            b,
            "find_tasks",
            json!({ "project_id": project, "unclaimed": true }),
        )
        .await?;
        assert_eq!(unclaimed["total"], 0, "{unclaimed}");

        // A second claimer is told who holds it and until when.
        let error = fails(
            b,
            "claim_task",
            json!({ "task_id": task }),
            "claim_conflict",
        )
        .await?;
        let message = text(&error["message"])?;
        assert!(
            message.contains("agent-a") && message.contains(&sa),
            "{error}"
        );
        assert_eq!(error["holder"]["claimed_by"], sa.as_str(), "{error}");
        // Changing it without the token is refused; with the holder's token it works.
        fails(
            b,
            "manage_task",
            json!({ "action": "update", "task_id": task, "status": "doing" }),
            "claim_conflict",
        )
        .await?;
        fails(
            b,
            "manage_task",
            json!({ "action": "delete", "task_id": task }),
            "claim_conflict",
        )
        .await?;
        let bogus = uuid::Uuid::new_v4().to_string();
        fails(
            b,
            "manage_task",
            json!({ "action": "update", "task_id": task, "status": "doing", "claim_token": bogus }),
            "claim_conflict",
        )
        .await?;
        ok(
            b,
            "manage_task",
            json!({ "action": "update", "task_id": task, "status": "doing", "claim_token": token }),
        )
        .await?;
        // The holder changes it freely.
        ok(
            a,
            "manage_task",
            json!({ "action": "update", "task_id": task, "description": "by a" }),
        )
        .await?;

        ok(
            a,
            "renew_claim",
            json!({ "task_id": task, "claim_token": token, "lease_seconds": 60 }),
        )
        .await?;
        fails(
            b,
            "release_task",
            json!({ "task_id": task, "claim_token": bogus }),
            "claim_conflict",
        )
        .await?;
        let released = ok(
            a,
            "release_task",
            json!({ "task_id": task, "claim_token": token, "status": "review" }),
        )
        .await?;
        assert_eq!(
            (
                released["task"]["claimed_by"].clone(),
                released["task"]["status"].clone()
            ),
            (Value::Null, json!("review"))
        );
        // The released token is stale now, for renewing and for changes alike.
        fails(
            a,
            "renew_claim",
            json!({ "task_id": task, "claim_token": token }),
            "claim_conflict",
        )
        .await?;
        fails(
            b,
            "manage_task",
            json!({ "action": "update", "task_id": task, "claim_token": token, "title": "x" }),
            "claim_conflict",
        )
        .await?;

        // A lease that runs out ends the claim: the next claimer gets it, the old token is stale.
        let short = ok(
            a,
            "claim_task",
            json!({ "task_id": task, "lease_seconds": 1 }),
        )
        .await?;
        let old = text(&short["claim_token"])?;
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let taken = ok(b, "claim_task", json!({ "task_id": task })).await?;
        assert_ne!(
            taken["claim_token"], short["claim_token"],
            "a new claim has a new token"
        );
        fails(
            a,
            "manage_task",
            json!({ "action": "update", "task_id": task, "claim_token": old, "title": "late" }),
            "claim_conflict",
        )
        .await?;
        let b_token = text(&taken["claim_token"])?;

        // Moving the task to done ends the claim.
        ok(
            b,
            "manage_task",
            json!({ "action": "update", "task_id": task, "status": "done" }),
        )
        .await?;
        assert_eq!(get_task(a, &task).await?["claimed_by"], Value::Null);
        fails(
            b,
            "release_task",
            json!({ "task_id": task, "claim_token": b_token }),
            "claim_conflict",
        )
        .await?;
        fails(
            a,
            "claim_task",
            json!({ "task_id": task }),
            "validation_error",
        )
        .await?;

        // Every start and end is a history row with its reason.
        assert_eq!(
            claim_rows(a, &task).await?,
            [
                (format!("+{sa}"), "claimed".to_string()),
                (format!("-{sa}"), "released".into()),
                (format!("+{sa}"), "claimed".into()),
                (format!("-{sa}"), "lease_expired".into()),
                (format!("+{sb}"), "claimed".into()),
                (format!("-{sb}"), "done".into()),
            ]
        );
        Ok(())
    })
    .await
}

#[tokio::test]
async fn a_claim_ends_with_its_session_and_with_archiving() -> anyhow::Result<()> {
    on_each_backend(async |agents| {
        let (a, b) = (&agents.a, &agents.b);
        let project = create_project(a, "Sessions end").await?;
        let first = create_task(a, &project, "First", json!({})).await?;
        let second = create_task(a, &project, "Second", json!({})).await?;
        let sb = session_id(b).await?;
        ok(b, "claim_task", json!({ "task_id": first })).await?;

        // The holder's session ends (HTTP DELETE): its claim ends with it.
        let deleted = crate::common::http_client()
            .delete(&agents.url)
            .header("mcp-session-id", &sb)
            .send()
            .await?;
        assert!(
            deleted.status().is_success(),
            "DELETE: {}",
            deleted.status()
        );
        assert_eq!(get_task(a, &first).await?["claimed_by"], Value::Null);
        assert_eq!(
            claim_rows(a, &first).await?.last().map(|r| r.1.clone()),
            Some("session_client_delete".into())
        );
        ok(a, "claim_task", json!({ "task_id": first })).await?;

        let claim = ok(a, "claim_task", json!({ "task_id": second })).await?;
        ok(
            a,
            "manage_task",
            json!({ "action": "delete", "task_id": second }),
        )
        .await?;
        assert_eq!(
            claim_rows(a, &second).await?.last().map(|r| r.1.clone()),
            Some("archived".into())
        );
        fails(
            a,
            "renew_claim",
            json!({ "task_id": second, "claim_token": claim["claim_token"] }),
            "not_found",
        )
        .await?;
        Ok(())
    })
    .await
}

#[tokio::test]
async fn next_task_hands_each_task_to_one_of_twenty_agents() -> anyhow::Result<()> {
    const AGENTS: usize = 20;
    const TASKS: usize = 50;
    on_each_backend(async |agents| {
        let project = create_project(&agents.a, "Crowded").await?;
        let mut created = BTreeSet::new();
        for i in 0..TASKS {
            let order = (i % 7) as i64;
            created.insert(
                create_task(
                    &agents.a,
                    &project,
                    &format!("task {i}"),
                    json!({ "task_order": order }),
                )
                .await?,
            );
        }
        let mut clients = Vec::new();
        for i in 0..AGENTS {
            clients.push(connect(&agents.url, &format!("swarm-{i}")).await?);
        }
        let handed: Vec<Vec<String>> =
            futures::future::try_join_all(clients.iter().map(|client| {
                let project = project.clone();
                async move {
                    let mut mine = Vec::new();
                    loop {
                        let body =
                            ok(client, "next_task", json!({ "project_id": project })).await?;
                        if body["task"].is_null() {
                            return Ok::<_, anyhow::Error>(mine);
                        }
                        mine.push(text(&body["task"]["id"])?);
                    }
                }
            }))
            .await?;
        let all: Vec<&String> = handed.iter().flatten().collect();
        let distinct: BTreeSet<String> = all.iter().map(|s| s.to_string()).collect();
        assert_eq!(
            all.len(),
            distinct.len(),
            "a task was handed out twice on {:?}",
            agents.backend
        );
        assert_eq!(distinct, created, "every task handed out");
        for client in clients {
            client.cancel().await?;
        }
        Ok(())
    })
    .await
}

#[tokio::test]
async fn next_task_picks_by_order_and_age_and_skips_blocked_tasks() -> anyhow::Result<()> {
    on_each_backend(async |agents| {
        let a = &agents.a;
        let project = create_project(a, "Order").await?;
        let blocker = create_task(a, &project, "Blocker", json!({ "task_order": 10 })).await?;
        let urgent = create_task(
            a,
            &project,
            "Urgent but blocked",
            json!({ "task_order": 90, "blocked_by": [blocker] }),
        )
        .await?;
        let low = create_task(
            a,
            &project,
            "Low",
            json!({ "task_order": 1, "assignee": "Alice" }),
        )
        .await?;
        let shown = get_task(a, &urgent).await?;
        assert_eq!(
            (shown["blocked_by"].clone(), shown["open_blockers"].clone()),
            (json!([blocker]), json!([blocker]))
        );
        assert_eq!(
            listed_blockers(a, &project, &urgent).await?,
            (json!([blocker]), json!([blocker])),
            "a listing shows the blockers a task read shows"
        );

        let peek = ok(
            a,
            "next_task",
            json!({ "project_id": project, "claim": false }),
        )
        .await?;
        assert_eq!(
            peek["task"]["id"],
            blocker.as_str(),
            "the blocked task is not offered: {peek}"
        );
        assert_eq!(
            peek["task"]["claimed_by"],
            Value::Null,
            "claim false only looks"
        );
        let alice = ok(
            a,
            "next_task",
            json!({ "assignee": "ALICE", "claim": false }),
        )
        .await?;
        assert_eq!(alice["task"]["id"], low.as_str(), "assignee folds case");

        // A cycle is refused and named.
        let error = fails(
            a,
            "manage_task",
            json!({ "action": "update", "task_id": blocker, "blocked_by": [urgent] }),
            "validation_error",
        )
        .await?;
        let message = text(&error["message"])?;
        assert!(
            message.contains("cycle")
                && message.contains("Blocker")
                && message.contains("Urgent but blocked"),
            "{error}"
        );
        fails(
            a,
            "manage_task",
            json!({ "action": "update", "task_id": blocker, "blocked_by": [blocker] }),
            "validation_error",
        )
        .await?;

        // The blocker done, the dependant is offered first.
        ok(
            a,
            "manage_task",
            json!({ "action": "update", "task_id": blocker, "status": "done" }),
        )
        .await?;
        let next = ok(a, "next_task", json!({ "project_id": project })).await?;
        assert_eq!(next["task"]["id"], urgent.as_str(), "{next}");
        assert_eq!(next["task"]["open_blockers"], json!([]));
        assert_eq!(
            listed_blockers(a, &project, &urgent).await?,
            (json!([blocker]), json!([])),
            "a done blocker is still listed, no longer open"
        );
        Ok(())
    })
    .await
}

/// `(blocked_by, open_blockers)` of `task` as `find_tasks` lists the project's tasks.
async fn listed_blockers(
    client: &Client,
    project: &str,
    task: &str,
) -> anyhow::Result<(Value, Value)> {
    let listed = ok(client, "find_tasks", json!({ "project_id": project })).await?;
    let row = listed["tasks"]
        .as_array()
        .and_then(|rows| rows.iter().find(|row| row["id"] == task))
        .ok_or_else(|| anyhow::anyhow!("{task} is not listed: {listed}"))?;
    Ok((row["blocked_by"].clone(), row["open_blockers"].clone()))
}

#[tokio::test]
async fn the_tool_contract_accepts_only_what_it_can_use() -> anyhow::Result<()> {
    on_each_backend(async |agents| {
        let a = &agents.a;
        let project = create_project(a, "Contract").await?;
        for (field, content) in [("docs", json!({ "v": 1 })), ("features", json!({ "auth": 1 })), ("prd", json!([1])), ("data", json!("text"))] {
            let args = json!({ "action": "create", "project_id": project, "field_name": field, "content": content });
            let error = fails(a, "manage_version", args, "validation_error").await?;
            assert_eq!(error["field"], "content", "{error}");
            assert!(text(&error["suggestion"])?.starts_with("Pass "), "shows the expected shape: {error}");
        }

        let features = json!([{ "name": "auth", "status": "planned" }]);
        ok(a, "manage_project", json!({ "action": "update", "project_id": project, "features": features, "prd": { "goal": "ship" } })).await?;
        let listed = ok(a, "get_project_features", json!({ "project_id": project })).await?;
        assert_eq!((listed["features"].clone(), listed["count"].clone()), (features.clone(), json!(1)));
        let versions = ok(a, "find_versions", json!({ "project_id": project, "field_name": "features" })).await?;
        assert_eq!(versions["total"], 2, "the old value and the new one are versions: {versions}");
        fails(a, "manage_project", json!({ "action": "update", "project_id": project, "features": { "auth": 1 } }), "validation_error").await?;
        let created = ok(a, "manage_project", json!({ "action": "create", "title": "With data", "data": { "k": 1 } })).await?;
        assert_eq!(created["project"]["data"], json!({ "k": 1 }));

        create_task(a, &project, "Bug in login", json!({ "status": "done", "assignee": "Alice", "feature": "Auth" })).await?;
        create_task(a, &project, "Another bug", json!({ "assignee": "alice", "feature": "auth" })).await?;
        let found = ok(a, "find_tasks", json!({ "query": "bug" })).await?;
        assert_eq!((found["total"].clone(), found["closed_matches"].clone()), (json!(1), json!(1)), "{found}");
        let all = ok(a, "find_tasks", json!({ "query": "bug", "include_closed": true })).await?;
        assert_eq!((all["total"].clone(), all["closed_matches"].clone()), (json!(2), json!(0)));
        let by_assignee = ok(a, "find_tasks", json!({ "filter_by": "assignee", "filter_value": "ALICE", "include_closed": true })).await?;
        assert_eq!(by_assignee["total"], 2, "{by_assignee}");
        let by_feature = ok(a, "find_tasks", json!({ "filter_by": "feature", "filter_value": "AUTH" })).await?;
        assert_eq!((by_feature["total"].clone(), by_feature["closed_matches"].clone()), (json!(1), json!(1)));
        Ok(())
    })
    .await
}
