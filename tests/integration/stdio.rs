//! `steward stdio`: the same tools over standard input/output, on SQLite and (when
//! `STEWARD_TEST_POSTGRES_URL` is set) PostgreSQL, with task history naming the stdio session;
//! and started while PostgreSQL is unreachable, serving anyway, its rows stored once it answers.

use crate::board;
use crate::common;

use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use serde_json::{Value, json};

use board::{TOOL_NAMES, create_project, create_task, history, listed_tool_names, ok, session_id};
use common::proxy::Proxy;
use common::{Backend, Client, TestDb, backends, call, connect_stdio, connect_stdio_at};

const CLIENT: &str = "stdio-tester";

/// `stdio-<uuid>`, the id `steward stdio` gives its one connection.
fn assert_stdio_id(id: &str) {
    let uuid = id.strip_prefix("stdio-").unwrap_or("");
    assert!(
        uuid::Uuid::parse_str(uuid).is_ok(),
        "not a stdio session id: {id:?}"
    );
}

async fn stdio_story(client: &Client, backend: Backend) -> anyhow::Result<String> {
    assert_eq!(listed_tool_names(client).await?, TOOL_NAMES);
    let health = ok(client, "health_check", Value::Null).await?;
    assert_eq!(health["database"]["engine"], backend.name(), "{health}");
    assert_eq!(health["database"]["reachable"], true, "{health}");

    let info = ok(client, "session_info", Value::Null).await?;
    assert_eq!(info["session"]["client"]["name"], CLIENT, "{info}");
    let session = session_id(client).await?;
    assert_stdio_id(&session);

    let project = create_project(client, "Stdio project").await?;
    let found = ok(client, "find_projects", json!({ "query": "STDIO" })).await?;
    assert_eq!(found["total"], 1, "{found}");
    assert_eq!(found["projects"][0]["id"], project.as_str());
    assert_eq!(found["projects"][0]["title"], "Stdio project");

    let task = create_task(client, &project, "Over stdio", json!({})).await?;
    ok(
        client,
        "manage_task",
        json!({ "action": "update", "task_id": task, "status": "doing" }),
    )
    .await?;
    let rows = history(client, &task).await?;
    let fields: Vec<&str> = rows.iter().filter_map(|r| r["field"].as_str()).collect();
    assert_eq!(fields, ["created", "status"]);
    for row in &rows {
        assert_eq!(row["session_id"], session.as_str(), "{row}");
        assert_eq!(row["client_name"], CLIENT, "{row}");
    }
    Ok(session)
}

#[tokio::test]
async fn stdio_serves_the_tools_and_names_its_session_in_history() -> anyhow::Result<()> {
    for backend in backends() {
        eprintln!("--- stdio story on {}", backend.name());
        let db = TestDb::new(backend).await?;
        let client = connect_stdio(&db, CLIENT).await?;
        let first = stdio_story(&client, backend)
            .await
            .with_context(|| format!("on {}", backend.name()))?;
        client.cancel().await?;

        // A second process on the same database sees the board, under a session id of its own.
        let again = connect_stdio(&db, CLIENT).await?;
        let second = session_id(&again).await?;
        assert_stdio_id(&second);
        assert_ne!(second, first, "each stdio process has its own session id");
        let found = ok(&again, "find_projects", json!({})).await?;
        assert_eq!(found["total"], 1, "on {}: {found}", backend.name());
        again.cancel().await?;
    }
    Ok(())
}

/// PostgreSQL only: a SQLite file is never unreachable.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn stdio_starts_while_the_database_is_unreachable() -> anyhow::Result<()> {
    common::on_backend(Backend::Postgres, unreachable_story).await
}

/// `steward stdio` started while PostgreSQL is unreachable answers `initialize` and says
/// `degraded`; once the database is back it serves the board, and the requests answered while
/// it was down (their rows waited in the journal) are in the ledger under the stdio session.
async fn unreachable_story(db: TestDb) -> anyhow::Result<()> {
    // An existing database (migrated), unreachable when stdio starts.
    common::open_store(&db).await?.close().await;
    let proxy = Proxy::start(&db.url).await?;
    let url = proxy.url(&db.url)?;
    proxy.cut().await?;
    let client = connect_stdio_at(&db, &url, CLIENT).await?;
    let (_, health) = call(&client, "health_check", Value::Null).await?;
    assert_eq!(health["status"], "degraded", "{health}");
    assert_eq!(health["database"]["reachable"], false, "{health}");

    proxy.restore().await?;
    let deadline = Instant::now() + Duration::from_secs(60);
    let session = loop {
        match session_id(&client).await {
            Ok(session) => break session,
            Err(error) if Instant::now() >= deadline => return Err(error),
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    };
    assert_stdio_id(&session);
    // initialize and the first health_check, answered while the database was unreachable,
    // are stored under the session once it answers (their rows waited in the journal).
    let store = common::open_store(&db).await?;
    let early = "SELECT COUNT(*) FILTER (WHERE method = 'initialize'), \
                 COUNT(*) FILTER (WHERE tool_name = 'health_check') \
                 FROM mcp_requests WHERE session_id = $1";
    loop {
        let (initialize, health_checks): (i64, i64) = match &store {
            steward::store::Store::Postgres(pool) => {
                sqlx::query_as(early).bind(&session).fetch_one(pool).await?
            }
            steward::store::Store::Sqlite(_) => bail!("PostgreSQL only"),
        };
        if initialize == 1 && health_checks >= 1 {
            break;
        }
        ensure!(
            Instant::now() < deadline,
            "stored: {initialize} initialize, {health_checks} health_check rows"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (_, health) = call(&client, "health_check", Value::Null).await?;
    assert_eq!(health["status"], "healthy", "{health}");
    let found = ok(&client, "find_projects", json!({})).await?;
    assert_eq!(found["total"], 0, "{found}");
    client.cancel().await?;
    store.close().await;
    Ok(())
}
