//! Hostile clients, second round (issue 27): scoped stream replay, bounded client input and
//! the low findings. Each test is the regression test of one finding; storage-backed ones run
//! on SQLite and (when `STEWARD_TEST_POSTGRES_URL` is set) PostgreSQL.

mod common;

use std::time::Duration;

use anyhow::{Context, ensure};
use reqwest::StatusCode;
use serde_json::json;

use common::raw::{ACCEPT_BOTH, Raw, ledger_row};
use common::{TestDb, TestServer, backends};

/// `steward keys create NAME [--admin]` against `db`; returns the key.
async fn create_key(db: &TestDb, name: &str, admin: bool) -> anyhow::Result<String> {
    let mut args = vec!["keys", "create", name, "--database", &db.url];
    if admin {
        args.push("--admin");
    }
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_steward"))
        .args(&args)
        .current_dir(db.dir())
        .env_remove("STEWARD_CONFIG")
        .env("NO_COLOR", "1")
        .output()
        .await?;
    ensure!(
        output.status.success(),
        "steward {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(String::from_utf8(output.stdout)?.trim().to_string())
}

/// A tools/call on `session` answered as SSE: the body and the ids of its events.
async fn call_with_events(raw: &Raw, session: &str) -> anyhow::Result<(String, Vec<String>)> {
    let call = json!({ "jsonrpc": "2.0", "id": 7, "method": "tools/call",
        "params": { "name": "find_projects", "arguments": {} } });
    let mut request = raw
        .client
        .post(raw.mcp())
        .header("accept", ACCEPT_BOTH)
        .header("content-type", "application/json")
        .header("mcp-session-id", session)
        .header("mcp-protocol-version", "2025-11-25")
        .body(call.to_string());
    if let Some(key) = &raw.key {
        request = request.bearer_auth(key);
    }
    let body = request.send().await?.text().await?;
    let ids = body
        .lines()
        .filter_map(|line| line.strip_prefix("id:"))
        .map(|id| id.trim().to_string())
        .collect();
    Ok((body, ids))
}

/// `GET /mcp` with `Last-Event-ID`: status and body.
async fn replay(
    raw: &Raw,
    session: Option<&str>,
    last_event_id: &str,
    protocol: &str,
) -> anyhow::Result<(StatusCode, String)> {
    let mut request = raw
        .client
        .get(raw.mcp())
        .header("accept", "text/event-stream")
        .header("mcp-protocol-version", protocol)
        .header("last-event-id", last_event_id)
        .timeout(Duration::from_secs(10));
    if let Some(session) = session {
        request = request.header("mcp-session-id", session);
    }
    if let Some(key) = &raw.key {
        request = request.bearer_auth(key);
    }
    let response = request.send().await?;
    let status = response.status();
    Ok((status, response.text().await.unwrap_or_default()))
}

/// Finding 1: another principal's SSE replies could be replayed by event id alone, even
/// without a session, and replay GETs were not in the ledger.
#[tokio::test]
async fn a_stream_replays_only_to_the_session_it_was_sent_to() -> anyhow::Result<()> {
    for backend in backends() {
        eprintln!("--- replay scope on {}", backend.name());
        let db = TestDb::new(backend).await?;
        let alice_key = create_key(&db, "alice", false).await?;
        let bob_key = create_key(&db, "bob", false).await?;
        let root_key = create_key(&db, "root", true).await?;
        let server =
            TestServer::start_with(&db, &["--auth", "api-key", "--event-store", "database"])
                .await?;
        let raw = Raw::new(&server.base_url);
        let (alice, bob, root) = (
            raw.with_key(&alice_key),
            raw.with_key(&bob_key),
            raw.with_key(&root_key),
        );
        let alice_session = alice.open_session().await?;
        let bob_session = bob.open_session().await?;
        let (stream, ids) = call_with_events(&alice, &alice_session).await?;
        ensure!(stream.contains(r#""id":7"#), "alice's call: {stream}");
        let first = ids.first().context("event ids on alice's stream")?.clone();
        for id in &ids {
            ensure!(
                id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()),
                "event id {id:?} is not 128 random bits in hex"
            );
        }
        ensure!(ids.windows(2).all(|w| w[0] != w[1]), "{ids:?}");

        // Bob, in his own session, names alice's event: as unknown.
        let (status, body) = replay(&bob, Some(&bob_session), &first, "2025-11-25").await?;
        ensure!(status == StatusCode::NOT_FOUND, "{status}: {body}");
        ensure!(
            !body.contains("find_projects") && !body.contains(r#""id":7"#),
            "{body}"
        );
        // Bob with no session at all, in the stateless revision: refused.
        let (status, body) = replay(&bob, None, &first, "2026-07-28").await?;
        ensure!(status == StatusCode::BAD_REQUEST, "{status}: {body}");
        ensure!(
            body.contains("Mcp-Session-Id") && !body.contains(r#""id":7"#),
            "{body}"
        );
        // Bob naming alice's session: as unknown (the session belongs to alice).
        let (status, body) = replay(&bob, Some(&alice_session), &first, "2025-11-25").await?;
        ensure!(status == StatusCode::NOT_FOUND, "{status}: {body}");
        // Alice in her session gets what came after the first event.
        let (status, body) = replay(&alice, Some(&alice_session), &first, "2025-11-25").await?;
        ensure!(status == StatusCode::OK, "{status}: {body}");
        ensure!(body.contains(r#""id":7"#), "alice's replay: {body}");
        // A made-up id in her own session: unknown, no lookup needed.
        let (status, _) = replay(&alice, Some(&alice_session), "1-2", "2025-11-25").await?;
        ensure!(status == StatusCode::NOT_FOUND, "{status}");

        // Every replay GET is a ledger row, refused or served.
        for (session, status) in [(&bob_session, "error"), (&alice_session, "success")] {
            ledger_row(&root, &format!("session_id={session}"), |row| {
                row["method"] == "(GET replay)" && row["status"] == status
            })
            .await
            .with_context(|| format!("a (GET replay) row with status {status}"))?;
        }
        server.stop().await;
    }
    Ok(())
}
