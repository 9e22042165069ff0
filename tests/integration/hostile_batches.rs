//! Hostile clients, second round (issue 27): batches that count (each message its own ledger
//! row and rate-limit token, capped in messages, revision from the session only) and nothing
//! expensive before authentication (unauthenticated rows keep nothing the caller chose, 401s
//! are rate-limited per address). On SQLite and (with `STEWARD_TEST_POSTGRES_URL`) PostgreSQL.

use crate::common;

use std::time::Duration;

use anyhow::{Context, ensure};
use reqwest::StatusCode;
use serde_json::{Value, json};

use common::raw::{
    CLIENT_NAME, Client as Raw, initialize_request, ledger_row, open_session, open_session_at,
    still_serves,
};
use common::{TestDb, TestServer, backends};

const INVALID_REQUEST: i64 = -32600;
const OLD: &[(&str, &str)] = &[("mcp-protocol-version", "2025-03-26")];

fn create_project(id: i64, title: &str) -> Value {
    json!({"jsonrpc":"2.0","id":id,"method":"tools/call","params":{"name":"manage_project","arguments":{"action":"create","title":title}}})
}

fn batch_of(count: i64, method: &str) -> String {
    let items: Vec<Value> = (1..=count)
        .map(|id| json!({"jsonrpc":"2.0","id":id,"method":method}))
        .collect();
    Value::Array(items).to_string()
}

#[tokio::test]
async fn each_batch_message_is_its_own_ledger_row_with_its_tool() -> anyhow::Result<()> {
    for backend in backends() {
        let db = TestDb::new(backend).await?;
        let server = TestServer::start(&db).await?;
        let raw = Raw::new(&format!("{}/mcp", server.base_url));
        let old = open_session_at(&raw, "2025-03-26").await?;
        let titles = ["batch-a", "batch-b", "batch-c"];
        let batch: Vec<Value> = (1..)
            .zip(titles)
            .map(|(id, title)| create_project(id, title))
            .collect();
        let reply = raw
            .post_with(Value::Array(batch).to_string(), Some(&old), OLD)
            .await?;
        ensure!(reply.status == StatusCode::OK, "{reply:?}");
        ensure!(
            reply.message.as_array().map(Vec::len) == Some(3),
            "{reply:?}"
        );
        let own_rows = |rows: &Value| {
            rows["requests"].as_array().map_or(0, |rows| {
                rows.iter()
                    .filter(|r| {
                        r["tool_name"] == "manage_project"
                            && r["status"] == "success"
                            && r["session_id"] == old.as_str()
                    })
                    .count()
            })
        };
        let mut rows = Value::Null;
        for _ in 0..100 {
            rows = raw.get("/api/requests?per_page=1000").await?.json().await?;
            if own_rows(&rows) >= 3 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        ensure!(own_rows(&rows) == 3, "not one row per message: {rows}");
        let whole = rows["requests"]
            .as_array()
            .context("rows")?
            .iter()
            .filter(|r| r["method"] == "(batch)")
            .count();
        ensure!(whole == 0, "the batch as a whole got a row too: {rows}");
        eprintln!("batch rows on {}: ok", backend.name());
    }
    Ok(())
}

#[tokio::test]
async fn each_batch_message_takes_its_own_rate_limit_token() -> anyhow::Result<()> {
    for backend in backends() {
        let db = TestDb::new(backend).await?;
        let server =
            TestServer::start_with(&db, &["--rate-limit", "1", "--rate-burst", "10"]).await?;
        let raw = Raw::new(&format!("{}/mcp", server.base_url));
        let old = open_session_at(&raw, "2025-03-26").await?;
        let reply = raw
            .post_with(batch_of(40, "tools/list"), Some(&old), OLD)
            .await?;
        ensure!(reply.status == StatusCode::OK, "{reply:?}");
        let replies = reply.message.as_array().context("an array")?;
        ensure!(
            replies.len() == 40,
            "one reply per message: {}",
            replies.len()
        );
        let limited = replies
            .iter()
            .filter(|r| {
                r["error"]["code"] == INVALID_REQUEST
                    && r["error"]["message"]
                        .as_str()
                        .is_some_and(|m| m.contains("Too Many Requests"))
            })
            .count();
        ensure!(
            limited > 0,
            "40 messages on a burst of 10 were never limited"
        );
        ensure!(
            replies[0]["result"]["tools"].is_array(),
            "the first message rides on the POST's token: {:?}",
            replies[0]
        );
        ledger_row(&raw, "status=error&q=Too%20Many", |r| {
            r["method"] == "tools/list"
        })
        .await
        .context("a limited batch message is a row of its own")?;
    }
    Ok(())
}

#[tokio::test]
async fn batches_are_capped_and_judged_by_the_sessions_revision() -> anyhow::Result<()> {
    for backend in backends() {
        let db = TestDb::new(backend).await?;
        let server = TestServer::start(&db).await?;
        let raw = Raw::new(&format!("{}/mcp", server.base_url));
        let old = open_session_at(&raw, "2025-03-26").await?;
        let reply = raw
            .post_with(batch_of(101, "ping"), Some(&old), OLD)
            .await?;
        ensure!(reply.status == StatusCode::BAD_REQUEST, "{reply:?}");
        ensure!(reply.error_code() == Some(INVALID_REQUEST), "{reply:?}");
        ensure!(
            reply.error_message().contains("at most 100 messages"),
            "{reply:?}"
        );
        let full = raw
            .post_with(batch_of(100, "ping"), Some(&old), OLD)
            .await?;
        ensure!(
            full.message.as_array().map(Vec::len) == Some(100),
            "{full:?}"
        );
        // A later session cannot turn batches on by claiming the old revision in a header.
        let new = open_session_at(&raw, "2025-11-25").await?;
        let reply = raw.post_with(batch_of(2, "ping"), Some(&new), OLD).await?;
        ensure!(reply.status == StatusCode::BAD_REQUEST, "{reply:?}");
        ensure!(
            reply
                .error_message()
                .contains("not part of protocol revision 2025-11-25"),
            "{reply:?}"
        );
        // Nor can a request without a session.
        let reply = raw.post_with(batch_of(2, "ping"), None, OLD).await?;
        ensure!(
            reply.status == StatusCode::BAD_REQUEST
                && reply.error_message().contains("need a session"),
            "{reply:?}"
        );
        still_serves(&raw, &new).await?;
    }
    Ok(())
}

pub(crate) async fn admin_key(db: &TestDb) -> anyhow::Result<String> {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_steward"))
        .args(["keys", "create", "root", "--admin", "--json"])
        .args(["--database", &db.url])
        .current_dir(db.dir())
        .env_remove("STEWARD_CONFIG")
        .env_remove("STEWARD_DATABASE_URL")
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(30), output).await??;
    ensure!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let created: Value = serde_json::from_slice(&output.stdout)?;
    Ok(created["key"].as_str().context("no key")?.to_string())
}

#[tokio::test]
async fn unauthenticated_requests_keep_nothing_they_chose_and_are_rate_limited()
-> anyhow::Result<()> {
    for backend in backends() {
        let db = TestDb::new(backend).await?;
        let key = admin_key(&db).await?;
        let server = TestServer::start_with(
            &db,
            &[
                "--auth",
                "api-key",
                "--rate-limit",
                "1",
                "--rate-burst",
                "5",
            ],
        )
        .await?;
        let anonymous = Raw::new(&format!("{}/mcp", server.base_url));
        let root = anonymous.with_key(&key);
        let session = open_session(&root).await?;
        let claimed = create_project(1, "never-made");
        let refused = anonymous
            .post_with(claimed.to_string(), Some(&session), &[])
            .await?;
        ensure!(refused.status == StatusCode::UNAUTHORIZED, "{refused:?}");
        let row = ledger_row(&root, "status=error&q=Unauthorized", |_| true).await?;
        ensure!(
            row["session_id"].is_null() && row["tool_name"].is_null(),
            "an unauthenticated row keeps the session id or tool it claimed: {row}"
        );
        ensure!(row["request_bytes"] == 0, "its body was never read: {row}");
        let mut statuses = Vec::new();
        for _ in 0..20 {
            let reply = anonymous
                .post(&initialize_request("2025-11-25", CLIENT_NAME, "1.0"), None)
                .await?;
            statuses.push(reply.status.as_u16());
        }
        ensure!(
            statuses.contains(&429),
            "20 unauthenticated requests on a burst of 5 were never limited: {statuses:?}"
        );
        still_serves(&root, &session).await?;
    }
    Ok(())
}
