//! Dormant sessions (issue #23): a new session whose requests after its handshake are board
//! calls, answered in front of rmcp, holds no rmcp worker; whatever needs rmcp wakes it, once,
//! from the database (as another replica would restore it); its end (DELETE, revocation) ends
//! it as any other. Counted through `/health`'s `sessions`; in-process, over real HTTP, on
//! SQLite and PostgreSQL.

use crate::common;

use std::time::Duration;

use anyhow::{Context, bail, ensure};
use reqwest::StatusCode;
use serde_json::{Value, json};

use common::raw::{Client, PROTOCOL, open_session, tools_list};
use common::{InProcess, TestDb, steward_cli, test_on_each_backend};

test_on_each_backend!(
    a_board_only_session_holds_no_worker_and_its_calls_still_succeed,
    a_session_restored_by_a_board_call_rests_again,
    what_needs_rmcp_wakes_a_dormant_session_once,
    delete_and_revocation_end_dormant_sessions,
    another_principal_cannot_use_a_dormant_session,
);

/// `/health`'s sessions held in memory (with or without a worker), dormant (without), and
/// restored from the database since start.
#[derive(Debug, PartialEq)]
struct Held {
    cached: u64,
    dormant: u64,
    restored: u64,
}

impl Held {
    fn of(cached: u64, dormant: u64, restored: u64) -> Held {
        Held {
            cached,
            dormant,
            restored,
        }
    }
}

async fn held(api: &Client) -> anyhow::Result<Held> {
    let (_, health) = api.get_json("/health").await?;
    let sessions = &health["sessions"];
    let count = |key: &str| {
        sessions[key]
            .as_u64()
            .with_context(|| format!("no sessions.{key} in /health: {health}"))
    };
    Ok(Held {
        cached: count("cached_in_memory")?,
        dormant: count("dormant")?,
        restored: count("restored")?,
    })
}

/// Waits (a few seconds at most) until `/health` shows `dormant` sessions dormant: a session
/// rests just after its handshake, which the client does not wait for.
async fn until_dormant(api: &Client, dormant: u64) -> anyhow::Result<Held> {
    for _ in 0..250 {
        let now = held(api).await?;
        if now.dormant == dormant {
            return Ok(now);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    bail!("never {dormant} dormant: {:?}", held(api).await?)
}

/// Steward on `db` with `args`, a client of its operator endpoints and one of `/mcp`.
async fn serve(db: &TestDb, args: &[&str]) -> anyhow::Result<(InProcess, Client, Client)> {
    let server = InProcess::start_with(db, args).await?;
    let (api, mcp) = (
        Client::new(&server.base_url),
        Client::new(&server.mcp_url()),
    );
    Ok((server, api, mcp))
}

/// `/health`'s count of board calls answered in front of rmcp.
async fn direct(api: &Client) -> anyhow::Result<u64> {
    let (_, health) = api.get_json("/health").await?;
    health["board_calls_direct"]
        .as_u64()
        .with_context(|| format!("no board_calls_direct: {health}"))
}

/// A `tools/call` of `tool` in `session` that must succeed; its tool output.
async fn called(
    client: &Client,
    session: &str,
    id: u64,
    tool: &str,
    arguments: Value,
) -> anyhow::Result<Value> {
    let reply = client.call(Some(session), id, tool, arguments).await?;
    ensure!(reply.status == StatusCode::OK, "{tool}: {reply:?}");
    ensure!(!reply.is_tool_error(), "{tool}: {}", reply.text);
    reply
        .tool_json()
        .with_context(|| format!("{tool}: {}", reply.text))
}

async fn a_board_only_session_holds_no_worker_and_its_calls_still_succeed(
    db: TestDb,
) -> anyhow::Result<()> {
    let (server, api, client) = serve(&db, &[]).await?;
    let session = open_session(&client).await?;
    let rested = until_dormant(&api, 1).await?;
    let expected = Held::of(1, 1, 0);
    ensure!(rested == expected, "held with a worker: {rested:?}");

    let before = direct(&api).await?;
    let project = json!({ "action": "create", "title": "Dormant" });
    let made = called(&client, &session, 1, "manage_project", project).await?;
    ensure!(made["success"] == true, "{made}");
    for id in 2..6 {
        let found = called(&client, &session, id, "find_projects", json!({})).await?;
        ensure!(found["projects"][0]["title"] == "Dormant", "{found}");
    }
    // What the handshake said is still known: the client's name, the calls counted.
    let info = called(&client, &session, 6, "session_info", json!({})).await?;
    ensure!(
        info["session"]["client"]["name"] == common::raw::CLIENT_NAME,
        "{info}"
    );
    ensure!(info["session"]["request_count"] == 6, "{info}");
    ensure!(
        direct(&api).await? == before + 6,
        "not every call was answered in front of rmcp"
    );
    // No call woke it: no worker was made, no handshake replayed.
    let after = held(&api).await?;
    ensure!(
        after == expected,
        "a board call woke the session: {after:?}"
    );
    server.stop().await;
    Ok(())
}

/// A session restored from the database by a board call (after a restart here, or on another
/// replica) has lost whatever it had set in rmcp: once the call is answered it rests as a new
/// one does.
async fn a_session_restored_by_a_board_call_rests_again(db: TestDb) -> anyhow::Result<()> {
    let (server, _, client) = serve(&db, &[]).await?;
    let session = open_session(&client).await?;
    server.stop().await;
    let (server, api, client) = serve(&db, &[]).await?;
    ensure!(held(&api).await? == Held::of(0, 0, 0));
    called(&client, &session, 1, "find_projects", json!({})).await?;
    ensure!(until_dormant(&api, 1).await? == Held::of(1, 1, 1));
    let before = direct(&api).await?;
    called(&client, &session, 2, "find_projects", json!({})).await?;
    ensure!(
        direct(&api).await? == before + 1,
        "not answered in front of rmcp"
    );
    ensure!(
        held(&api).await? == Held::of(1, 1, 1),
        "{:?}",
        held(&api).await?
    );
    server.stop().await;
    Ok(())
}

async fn what_needs_rmcp_wakes_a_dormant_session_once(db: TestDb) -> anyhow::Result<()> {
    let (server, api, client) = serve(&db, &["--rate-limit", "0"]).await?;
    let listed = open_session(&client).await?;
    until_dormant(&api, 1).await?;

    // Parallel first requests that need rmcp: every one answered, the session restored once.
    let lists = (0..16).map(|id| {
        let body = json!({ "jsonrpc": "2.0", "id": id, "method": "tools/list" });
        client.post_with(body.to_string(), Some(&listed), &[])
    });
    for reply in futures::future::join_all(lists).await {
        let reply = reply.context("tools/list of a dormant session")?;
        let tools = reply.message["result"]["tools"].as_array().map(Vec::len);
        ensure!(
            reply.status == StatusCode::OK && tools == Some(17),
            "tools/list of a dormant session: {reply:?}"
        );
    }
    let woken = held(&api).await?;
    let expected = Held::of(1, 0, 1);
    ensure!(woken == expected, "{woken:?}");
    called(&client, &listed, 1, "find_projects", json!({}))
        .await
        .context("a call after the wake")?;
    // Woken once, it keeps its worker: a client whose requests need rmcp is not restored on
    // every one of them.
    tokio::time::sleep(Duration::from_millis(200)).await;
    ensure!(held(&api).await? == expected, "{:?}", held(&api).await?);

    // A GET stream wakes one too.
    let streamed = open_session(&client).await?;
    until_dormant(&api, 1).await?;
    let stream = client
        .http()
        .get(client.mcp_url())
        .header("accept", "text/event-stream")
        .header("mcp-session-id", &streamed)
        .header("mcp-protocol-version", PROTOCOL)
        .send()
        .await
        .context("GET /mcp")?;
    ensure!(stream.status() == StatusCode::OK, "GET stream: {stream:?}");
    let woken = held(&api).await?;
    let expected = Held::of(2, 0, 2);
    ensure!(woken == expected, "{woken:?}");
    // A woken session keeps its worker: it does not rest again when its stream ends.
    drop(stream);
    called(&client, &streamed, 2, "find_projects", json!({})).await?;
    tokio::time::sleep(Duration::from_millis(200)).await;
    ensure!(held(&api).await? == expected, "{:?}", held(&api).await?);
    server.stop().await;
    Ok(())
}

async fn delete_and_revocation_end_dormant_sessions(db: TestDb) -> anyhow::Result<()> {
    let (server, api, client) = serve(&db, &["--revocation-poll", "200ms"]).await?;
    let deleted = open_session(&client).await?;
    let revoked = open_session(&client).await?;
    until_dormant(&api, 2).await?;

    let reply = client.delete(&deleted).await?;
    ensure!(reply.status == StatusCode::NO_CONTENT, "DELETE: {reply:?}");
    let after = client
        .call(Some(&deleted), 1, "find_projects", json!({}))
        .await?;
    ensure!(
        after.status == StatusCode::NOT_FOUND,
        "after DELETE: {after:?}"
    );
    let listed = tools_list(&client, &deleted).await?;
    ensure!(
        listed.status == StatusCode::NOT_FOUND,
        "after DELETE: {listed:?}"
    );
    let (_, row) = api.get_json(&format!("/api/sessions/{deleted}")).await?;
    ensure!(
        row["session"]["disconnect_reason"] == "client_delete",
        "{row}"
    );

    // Revoked by another process: this one ends it within its poll.
    let output = steward_cli(
        &db,
        &["sessions", "revoke", &revoked, "--database", &db.url],
    )
    .await?;
    ensure!(
        output.status.success(),
        "steward sessions revoke: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let mut status = StatusCode::OK;
    for id in 2..100 {
        status = client
            .call(Some(&revoked), id, "find_projects", json!({}))
            .await?
            .status;
        if status == StatusCode::NOT_FOUND {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    ensure!(status == StatusCode::NOT_FOUND, "revoked, still {status}");
    let gone = held(&api).await?;
    ensure!(gone.cached == 0 && gone.dormant == 0, "{gone:?}");
    server.stop().await;
    Ok(())
}

async fn keys_create(db: &TestDb, name: &str) -> anyhow::Result<String> {
    let output = steward_cli(db, &["keys", "create", name, "--database", &db.url]).await?;
    ensure!(
        output.status.success(),
        "steward keys create: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(String::from_utf8(output.stdout)?.trim().to_string())
}

async fn another_principal_cannot_use_a_dormant_session(db: TestDb) -> anyhow::Result<()> {
    let (alice, bob) = (
        keys_create(&db, "alice").await?,
        keys_create(&db, "bob").await?,
    );
    let (server, api, anonymous) = serve(&db, &["--auth", "api-key"]).await?;
    let (as_alice, as_bob) = (anonymous.with_key(&alice), anonymous.with_key(&bob));
    let session = open_session(&as_alice).await?;
    until_dormant(&api, 1).await?;

    let call = as_bob
        .call(Some(&session), 1, "find_projects", json!({}))
        .await?;
    ensure!(call.status == StatusCode::NOT_FOUND, "bob called: {call:?}");
    let listed = tools_list(&as_bob, &session).await?;
    ensure!(
        listed.status == StatusCode::NOT_FOUND,
        "bob listed: {listed:?}"
    );
    let deleted = as_bob.delete(&session).await?;
    ensure!(
        deleted.status == StatusCode::NOT_FOUND,
        "bob deleted: {deleted:?}"
    );
    // Refused before anything could wake it; its owner still uses it.
    let untouched = Held::of(1, 1, 0);
    ensure!(held(&api).await? == untouched, "{:?}", held(&api).await?);
    called(&as_alice, &session, 2, "find_projects", json!({})).await?;
    ensure!(held(&api).await? == untouched, "{:?}", held(&api).await?);
    server.stop().await;
    Ok(())
}
