//! Hostile clients, second round (issue 27): scoped stream replay, bounded client input and
//! the low findings. Each test is the regression test of one finding; storage-backed ones run
//! on SQLite and (when `STEWARD_TEST_POSTGRES_URL` is set) PostgreSQL.

use crate::common;

use std::time::Duration;

use anyhow::{Context, ensure};
use reqwest::StatusCode;
use serde_json::{Value, json};

use common::raw::{ACCEPT, Client as Raw, ledger_row, open_session, still_serves};
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

/// Waits until `/health` shows no ledger row pending.
async fn ledger_drained(raw: &Raw, within: Duration) -> anyhow::Result<()> {
    let deadline = std::time::Instant::now() + within;
    loop {
        let (_, health) = raw.get_json("/health").await?;
        if health["ledger"]["pending"] == 0 {
            return Ok(());
        }
        ensure!(
            std::time::Instant::now() < deadline,
            "the ledger still has rows pending after {within:?}: {}",
            health["ledger"]
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A tools/call on `session` answered as SSE: the body and the ids of its events.
async fn call_with_events(raw: &Raw, session: &str) -> anyhow::Result<(String, Vec<String>)> {
    let call = json!({ "jsonrpc": "2.0", "id": 7, "method": "tools/call",
        "params": { "name": "find_projects", "arguments": {} } });
    let mut request = raw
        .http()
        .post(raw.mcp_url())
        .header("accept", ACCEPT)
        .header("content-type", "application/json")
        .header("mcp-session-id", session)
        .header("mcp-protocol-version", "2025-11-25")
        .body(call.to_string());
    if let Some(key) = raw.key() {
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
        .http()
        .get(raw.mcp_url())
        .header("accept", "text/event-stream")
        .header("mcp-protocol-version", protocol)
        .header("last-event-id", last_event_id)
        .timeout(Duration::from_secs(10));
    if let Some(session) = session {
        request = request.header("mcp-session-id", session);
    }
    if let Some(key) = raw.key() {
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
        let raw = Raw::new(&format!("{}/mcp", server.base_url));
        let (alice, bob, root) = (
            raw.with_key(&alice_key),
            raw.with_key(&bob_key),
            raw.with_key(&root_key),
        );
        let alice_session = open_session(&alice).await?;
        let bob_session = open_session(&bob).await?;
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

/// A name of `n` bytes that no log line or stored string should carry whole.
fn huge(n: usize) -> String {
    "N".repeat(n)
}

/// Whether `text` holds a run of 1,000 `N`s (a client string that was not cut).
fn carries_huge(text: &str) -> bool {
    text.contains(&"N".repeat(1000))
}

fn stateless_body(name: &str, tool: &str) -> Value {
    json!({
        "jsonrpc": "2.0", "id": 1, "method": "tools/call",
        "params": {
            "name": tool, "arguments": {},
            "_meta": {
                "io.modelcontextprotocol/protocolVersion": "2026-07-28",
                "io.modelcontextprotocol/clientCapabilities": {},
                "io.modelcontextprotocol/clientInfo": { "name": name, "version": name },
            },
        },
    })
}

/// Finding 4: client strings (clientInfo name and version, tool names) were stored, listed
/// and logged whole: a 1 MiB name cost megabytes per request in memory, database and log.
#[tokio::test]
async fn client_strings_are_cut_in_sessions_rows_and_logs() -> anyhow::Result<()> {
    for backend in backends() {
        eprintln!("--- client strings on {}", backend.name());
        let db = TestDb::new(backend).await?;
        let server = TestServer::start(&db).await?;
        let raw = Raw::new(&format!("{}/mcp", server.base_url));
        let name = huge(1024 * 1024);
        // A session-era initialize with a 1 MiB name and version.
        let init = json!({ "jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {},
            "clientInfo": { "name": name, "version": name, "title": name } } });
        let reply = raw.post(&init, None).await?;
        ensure!(reply.status == StatusCode::OK, "{:?}", reply.status);
        let session = reply.session().context("a session id")?;
        // A tools/call naming a 1 MiB tool, in that session.
        let call = json!({ "jsonrpc": "2.0", "id": 2, "method": "tools/call",
            "params": { "name": name, "arguments": {} } });
        raw.post_with(
            call.to_string(),
            Some(&session),
            &[("mcp-protocol-version", "2025-11-25")],
        )
        .await?;
        // A stateless request with a 1 MiB client name.
        let stateless = raw
            .post_with(
                stateless_body(&name, "health_check").to_string(),
                None,
                &[
                    ("mcp-protocol-version", "2026-07-28"),
                    ("mcp-method", "tools/call"),
                    ("mcp-name", "health_check"),
                ],
            )
            .await?;
        ensure!(stateless.status == StatusCode::OK, "{stateless:?}");

        // Counting the tokens of megabytes takes seconds in a debug build on a busy machine:
        // wait until the writer has caught up (a stuck writer never does).
        ledger_drained(&raw, Duration::from_secs(120)).await?;
        let row = ledger_row(&raw, &format!("session_id={session}"), |row| {
            row["method"] == "tools/call"
        })
        .await
        .context("the ledger never stored the tools/call row (is its writer stuck on the 1 MiB strings?)")?;
        let tool = row["tool_name"].as_str().unwrap_or_default();
        ensure!(
            tool.len() < 1024 && tool.ends_with("…[cut]"),
            "tool_name {tool:?}"
        );

        let sessions = raw.get("/api/sessions?per_page=1000").await?.text().await?;
        ensure!(
            !carries_huge(&sessions),
            "/api/sessions carries a whole client string"
        );
        ensure!(
            sessions.len() < 64 * 1024,
            "/api/sessions is {} bytes",
            sessions.len()
        );
        let listed: Value = serde_json::from_str(&sessions)?;
        let rows = listed["sessions"].as_array().context("sessions")?;
        ensure!(rows.len() == 2, "a session and a logical session: {listed}");
        for row in rows {
            let client = row["client_name"].as_str().unwrap_or_default();
            ensure!(
                client.ends_with("…[cut]") && client.len() < 1024,
                "{client:?}"
            );
        }
        // The session still serves, its (cut) initialize params stored.
        still_serves(&raw, &session).await?;
        server.stop().await;
    }
    Ok(())
}

/// Finding 4: rmcp logged the whole `peer_info` (a 1 MiB `clientInfo.name`) at INFO, once per
/// initialize. (Its level is set in `src/logs.rs`, issue 24.)
#[tokio::test]
async fn a_huge_client_name_never_reaches_the_log() -> anyhow::Result<()> {
    let db = TestDb::new(common::Backend::Sqlite).await?;
    let server = TestServer::start(&db).await?;
    let raw = Raw::new(&format!("{}/mcp", server.base_url));
    let name = huge(1024 * 1024);
    let init = json!({ "jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {},
        "clientInfo": { "name": name, "version": "1" } } });
    let session = raw
        .post(&init, None)
        .await?
        .session()
        .context("a session id")?;
    still_serves(&raw, &session).await?;
    ensure!(
        !carries_huge(&server.stderr_output()),
        "a whole clientInfo.name reached the log"
    );
    server.stop().await;
    Ok(())
}

/// Finding 4: the logical-session map grew without bound; it is an LRU now.
#[tokio::test]
async fn logical_sessions_forget_the_least_recently_used() -> anyhow::Result<()> {
    for backend in backends() {
        let db = TestDb::new(backend).await?;
        let store = common::open_store(&db).await?;
        let logical = steward::sessions::logical::LogicalSessions::with_capacity(store, 2);
        let protocol = "2026-07-28";
        let a = logical.session_for_client(None, "a", "1", protocol);
        let b = logical.session_for_client(None, "b", "1", protocol);
        ensure!(logical.session_for_client(None, "a", "1", protocol) == a);
        let _c = logical.session_for_client(None, "c", "1", protocol);
        ensure!(logical.remembered() == 2, "{}", logical.remembered());
        // b was least recently used: forgotten, so it starts a new logical session; a is kept.
        ensure!(logical.session_for_client(None, "a", "1", protocol) == a);
        ensure!(logical.session_for_client(None, "b", "1", protocol) != b);
    }
    Ok(())
}

/// Finding 5: the first 200 tool names from anyone (even refused requests) became labels.
#[tokio::test]
async fn only_real_tools_become_metric_labels() -> anyhow::Result<()> {
    let db = TestDb::new(common::Backend::Sqlite).await?;
    let server = TestServer::start(&db).await?;
    let raw = Raw::new(&format!("{}/mcp", server.base_url));
    let session = open_session(&raw).await?;
    for tool in ["find_projects", "made_up_tool_label"] {
        let call = json!({ "jsonrpc": "2.0", "id": 2, "method": "tools/call",
            "params": { "name": tool, "arguments": {} } });
        raw.post_with(
            call.to_string(),
            Some(&session),
            &[("mcp-protocol-version", "2025-11-25")],
        )
        .await?;
    }
    let mut text = String::new();
    for _ in 0..100 {
        text = raw.get("/metrics").await?.text().await?;
        if text.contains("gen_ai_tool_name=\"find_projects\"")
            && text.contains("gen_ai_tool_name=\"other\"")
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    ensure!(
        text.contains("gen_ai_tool_name=\"find_projects\""),
        "{text}"
    );
    ensure!(text.contains("gen_ai_tool_name=\"other\""), "{text}");
    ensure!(!text.contains("made_up_tool_label"), "{text}");
    server.stop().await;
    Ok(())
}

/// Finding 5: `/health` and `/metrics` skipped the Host check (a DNS-rebinding page could read
/// them); probes by IP address keep working.
#[tokio::test]
async fn health_and_metrics_check_the_host() -> anyhow::Result<()> {
    let db = TestDb::new(common::Backend::Sqlite).await?;
    let server = TestServer::start(&db).await?;
    let http = crate::common::http_client();
    for path in ["/health", "/metrics"] {
        let url = format!("{}{path}", server.base_url);
        let refused = http
            .get(&url)
            .header("host", "rebind.attacker.example")
            .send()
            .await?;
        ensure!(
            refused.status() == StatusCode::MISDIRECTED_REQUEST,
            "{path}: {}",
            refused.status()
        );
        let body: Value = refused.json().await?;
        ensure!(
            body["error"]["message"]
                .as_str()
                .unwrap_or_default()
                .contains("--allowed-hosts"),
            "{path}: {body}"
        );
        for host in ["10.1.2.3:8051", "localhost"] {
            let probe = http.get(&url).header("host", host).send().await?;
            ensure!(
                probe.status() == StatusCode::OK,
                "{path} as {host}: {}",
                probe.status()
            );
        }
    }
    server.stop().await;
    Ok(())
}

/// Finding 5: query-string errors on `/api` were text/plain.
#[tokio::test]
async fn api_errors_are_json() -> anyhow::Result<()> {
    let db = TestDb::new(common::Backend::Sqlite).await?;
    let server = TestServer::start(&db).await?;
    let raw = Raw::new(&format!("{}/mcp", server.base_url));
    for (path, status) in [
        ("/api/requests?per_page=lots", StatusCode::BAD_REQUEST),
        ("/api/sessions?page=-1", StatusCode::BAD_REQUEST),
        ("/api/stats?since=yesterday", StatusCode::BAD_REQUEST),
        ("/api/no-such-thing", StatusCode::NOT_FOUND),
    ] {
        let response = raw.get(path).await?;
        ensure!(response.status() == status, "{path}: {}", response.status());
        let kind = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        ensure!(kind.starts_with("application/json"), "{path}: {kind}");
        let body: Value = response.json().await?;
        ensure!(body["error"]["message"].is_string(), "{path}: {body}");
    }
    let posted = raw
        .http()
        .post(format!("{}/api/sessions", server.base_url))
        .send()
        .await?;
    ensure!(
        posted.status() == StatusCode::METHOD_NOT_ALLOWED,
        "{}",
        posted.status()
    );
    let body: Value = posted.json().await?;
    ensure!(body["error"]["message"].is_string(), "{body}");
    server.stop().await;
    Ok(())
}

/// Finding 5: `/login` had no throttle.
#[tokio::test]
async fn login_attempts_are_throttled_per_address() -> anyhow::Result<()> {
    let db = TestDb::new(common::Backend::Sqlite).await?;
    create_key(&db, "root", true).await?;
    let server = TestServer::start_with(&db, &["--auth", "api-key"]).await?;
    let http = crate::common::http_client();
    let mut throttled = None;
    for _ in 0..40 {
        let response = http
            .post(format!("{}/login", server.base_url))
            .header("content-type", "application/x-www-form-urlencoded")
            .body("key=stw_wrong")
            .send()
            .await?;
        if response.status() == StatusCode::TOO_MANY_REQUESTS {
            throttled = Some(response);
            break;
        }
        ensure!(
            response.status() == StatusCode::UNAUTHORIZED,
            "{}",
            response.status()
        );
    }
    let response = throttled.context("40 wrong logins in a row were never throttled")?;
    ensure!(response.headers().contains_key("retry-after"));
    let body: Value = response.json().await?;
    ensure!(
        body["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("login attempts"),
        "{body}"
    );
    server.stop().await;
    Ok(())
}

/// Finding 5: the database was created 0644 (the ledger holds every request).
#[cfg(unix)]
#[tokio::test]
async fn the_sqlite_database_is_private() -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let db = TestDb::new(common::Backend::Sqlite).await?;
    let server = TestServer::start(&db).await?;
    open_session(&Raw::new(&format!("{}/mcp", server.base_url))).await?;
    for file in ["steward.db", "steward.db-wal", "steward.db-shm"] {
        let mode = std::fs::metadata(db.dir().join(file))?.permissions().mode();
        ensure!(mode & 0o777 == 0o600, "{file} is {:o}", mode & 0o777);
    }
    server.stop().await;
    Ok(())
}

/// Finding 5: `./steward.toml` was read from the working directory without being asked.
#[tokio::test]
async fn the_config_file_comes_from_the_flag_or_the_user_config_dir_only() -> anyhow::Result<()> {
    let db = TestDb::new(common::Backend::Sqlite).await?;
    // A file a repository could carry: an unknown key makes any read of it fail loudly.
    std::fs::write(db.dir().join("steward.toml"), "planted = true\n")?;
    let xdg = tempfile::tempdir()?;
    let run = |xdg: Option<&std::path::Path>| {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_steward"));
        command
            .args(["keys", "create", "probe", "--database", &db.url])
            .current_dir(db.dir())
            .env_remove("STEWARD_CONFIG")
            .env("NO_COLOR", "1");
        match xdg {
            Some(dir) => command.env("XDG_CONFIG_HOME", dir),
            None => command.env("XDG_CONFIG_HOME", "/nonexistent-steward-test"),
        };
        command.output()
    };
    let output = run(None)?;
    ensure!(
        output.status.success(),
        "the working directory's steward.toml was read: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    std::fs::create_dir_all(xdg.path().join("steward"))?;
    std::fs::write(xdg.path().join("steward/steward.toml"), "planted = true\n")?;
    let output = run(Some(xdg.path()))?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    ensure!(
        !output.status.success() && stderr.contains("planted"),
        "{stderr}"
    );
    Ok(())
}
