//! A stopping Steward exits even when a request can never finish: once the drain (up to 10 s
//! for requests other than GETs) and the close (5 s more) have run out, the connections still
//! open are closed, the log says how many, and the process exits cleanly. Its own last writes
//! are bounded the same way: database connections still busy 5 s after the stop closed the
//! pool are left to the exit.

use crate::common;

use std::time::{Duration, Instant};

use anyhow::ensure;
use common::{Backend, TestDb, TestServer};
use serde_json::json;
use sqlx::Connection;

/// A dashboard read (`GET /api/projects`) waiting on a table lock another PostgreSQL session
/// holds (PostgreSQL waits for a lock without limit by default) does not keep Steward from
/// stopping. (An MCP request in a session ends when the drain closes the sessions.)
#[tokio::test]
async fn a_request_stuck_on_a_database_lock_does_not_keep_steward_running() -> anyhow::Result<()> {
    common::on_backend(Backend::Postgres, async |db: TestDb| {
        let server = TestServer::start(&db).await?;
        let mut holder = locked(&db, "projects").await?;
        let url = format!("{}/api/projects", server.base_url);
        let stuck = tokio::spawn(async move { common::http_client().get(url).send().await });
        if !waits_on_a_lock(&db).await? {
            let answer = tokio::time::timeout(Duration::from_secs(1), stuck).await;
            anyhow::bail!("GET /api/projects never waited on the lock: {answer:?}");
        }

        let stderr = server.stderr_handle();
        let stopping = Instant::now();
        let status = server.shutdown_within(Duration::from_secs(40)).await?;
        let took = stopping.elapsed();
        ensure!(status.success(), "exit status {status} after {took:?}");
        ensure!(
            took >= Duration::from_secs(5),
            "exited after {took:?}, before the close had run out"
        );
        ensure!(
            logs(
                &stderr,
                "connections still open 5s after the drain: closing them"
            )
            .await,
            "no log line about the cut connection:\n{}",
            stderr()
        );
        let counted = stderr()
            .lines()
            .any(|line| line.contains("closing them") && line.ends_with(" connections=1"));
        ensure!(
            counted,
            "the log does not count one connection:\n{}",
            stderr()
        );
        let answer = tokio::time::timeout(Duration::from_secs(5), stuck).await??;
        ensure!(
            answer.is_err(),
            "the cut request got an answer: {:?}",
            answer.map(|response| response.status())
        );
        sqlx::query("ROLLBACK").execute(&mut holder).await?;
        Ok(())
    })
    .await
}

/// The stop's own write of the sessions' last activity, waiting on a lock another
/// PostgreSQL session holds on `mcp_sessions`, is given up (1 s) and its connection left
/// busy: the pool's close waits 5 s for it, says so, and Steward exits, lock or not.
#[tokio::test]
async fn a_stop_whose_last_write_waits_on_a_lock_still_ends() -> anyhow::Result<()> {
    common::on_backend(Backend::Postgres, async |db: TestDb| {
        let server = TestServer::start(&db).await?;
        let client = common::connect(&server.mcp_url(), "stopping-test").await?;
        let mut holder = locked(&db, "mcp_sessions").await?;
        // Activity the stop has to write (a call reads no session row: the session is known).
        let (failed, _) = common::call(&client, "find_projects", json!({})).await?;
        ensure!(!failed, "find_projects failed");
        // The writer's look-up of the session's client type (to price the row) times out on
        // the lock, and /health counts it.
        let health = format!("{}/health", server.base_url);
        let mut timeouts = serde_json::Value::Null;
        for _ in 0..100 {
            let body: serde_json::Value = common::http_client()
                .get(&health)
                .send()
                .await?
                .json()
                .await?;
            timeouts = body["ledger"]["lookup_timeouts"].clone();
            if timeouts.as_u64().is_some_and(|n| n >= 1) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        ensure!(
            timeouts.as_u64().is_some_and(|n| n >= 1),
            "/health's ledger.lookup_timeouts: {timeouts}"
        );

        let stderr = server.stderr_handle();
        let stopping = Instant::now();
        let status = server.shutdown_within(Duration::from_secs(30)).await?;
        let took = stopping.elapsed();
        ensure!(status.success(), "exit status {status} after {took:?}");
        ensure!(
            logs(&stderr, "database connections still running a statement 5s").await,
            "no log line about the busy connection after {took:?}:\n{}",
            stderr()
        );
        sqlx::query("ROLLBACK").execute(&mut holder).await?;
        drop(client);
        Ok(())
    })
    .await
}

/// A connection of its own to `db`, holding `table` locked (`ACCESS EXCLUSIVE`) in an open
/// transaction until it is rolled back or dropped.
async fn locked(db: &TestDb, table: &str) -> anyhow::Result<sqlx::PgConnection> {
    let mut holder = sqlx::PgConnection::connect(&db.url).await?;
    sqlx::query("BEGIN").execute(&mut holder).await?;
    sqlx::query(&format!("LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE"))
        .execute(&mut holder)
        .await?;
    Ok(holder)
}

/// Whether `stderr` holds `text` within 2 s: a stopped server's last lines reach the test's
/// reader moments after its exit.
async fn logs(stderr: &impl Fn() -> String, text: &str) -> bool {
    for _ in 0..20 {
        if stderr().contains(text) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stderr().contains(text)
}

/// Whether, within 30 s, a session of `db` waits on a lock. Asked on a connection of its own
/// outside any transaction: inside one (the lock holder's), PostgreSQL answers every read of
/// `pg_stat_activity` from the snapshot its first read took, so a wait that began after it
/// was never seen (the cause of one failure of this test under a loaded suite).
async fn waits_on_a_lock(db: &TestDb) -> anyhow::Result<bool> {
    let mut watcher = sqlx::PgConnection::connect(&db.url).await?;
    for _ in 0..300 {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = current_database() \
             AND wait_event_type = 'Lock'",
        )
        .fetch_one(&mut watcher)
        .await?;
        if waiting > 0 {
            return Ok(true);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(false)
}
