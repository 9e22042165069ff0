//! Hostile input over HTTP: each case asserts the exact HTTP status and JSON-RPC error code,
//! then that the same server still answers a normal request. Runs on SQLite and (when
//! `STEWARD_TEST_POSTGRES_URL` is set) PostgreSQL.

use crate::common;

use std::time::Duration;

use anyhow::Context;
use reqwest::StatusCode;
use serde_json::{Value, json};

use common::raw::{Raw, Reply, initialize_request, ledger_row};
use common::{TestDb, TestServer, backends};

const PARSE_ERROR: i64 = -32700;
const INVALID_REQUEST: i64 = -32600;
const METHOD_NOT_FOUND: i64 = -32601;
const INVALID_PARAMS: i64 = -32602;

/// One hostile request's expected answer; afterwards the server must still serve `session`.
struct Cases<'a> {
    raw: &'a Raw,
    session: &'a str,
    ran: usize,
}

impl Cases<'_> {
    async fn expect(
        &mut self,
        name: &str,
        reply: anyhow::Result<Reply>,
        status: u16,
        code: Option<i64>,
        says: &str,
    ) -> anyhow::Result<Reply> {
        let reply = reply.with_context(|| format!("case {name}: sending"))?;
        anyhow::ensure!(
            reply.status.as_u16() == status,
            "case {name}: status {} (expected {status}): {:?}",
            reply.status,
            reply.message
        );
        if let Some(code) = code {
            anyhow::ensure!(
                reply.error_code() == Some(code),
                "case {name}: error code {:?} (expected {code}): {:?}",
                reply.error_code(),
                reply.message
            );
            anyhow::ensure!(
                reply.error_message().contains(says),
                "case {name}: message {:?} lacks {says:?}",
                reply.error_message()
            );
        }
        self.raw
            .still_serves(self.session)
            .await
            .with_context(|| format!("case {name}: the server no longer serves"))?;
        self.ran += 1;
        Ok(reply)
    }
}

fn call(tool: &str, arguments: Value) -> Value {
    json!({ "jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": { "name": tool, "arguments": arguments } })
}

#[tokio::test]
async fn hostile_inputs_get_exact_errors_and_the_server_keeps_serving() -> anyhow::Result<()> {
    for backend in backends() {
        let db = TestDb::new(backend).await?;
        let server = TestServer::start(&db).await?;
        let raw = Raw::new(&server.base_url);
        let session = raw.open_session().await?;
        let s = Some(session.as_str());
        let mut c = Cases {
            raw: &raw,
            session: &session,
            ran: 0,
        };
        let v = &[("mcp-protocol-version", "2025-11-25")][..];

        // Malformed JSON.
        c.expect(
            "not json",
            raw.post_bytes("{bad", s, v).await,
            400,
            Some(PARSE_ERROR),
            "Parse error",
        )
        .await?;
        c.expect(
            "empty body",
            raw.post_bytes("", s, v).await,
            400,
            Some(PARSE_ERROR),
            "Parse error",
        )
        .await?;
        c.expect(
            "truncated",
            raw.post_bytes(r#"{"jsonrpc":"2.0","id":1,"#, s, v).await,
            400,
            Some(PARSE_ERROR),
            "line 1",
        )
        .await?;
        c.expect(
            "trailing garbage",
            raw.post_bytes(r#"{"jsonrpc":"2.0","id":1,"method":"ping"} x"#, s, v)
                .await,
            400,
            Some(PARSE_ERROR),
            "trailing",
        )
        .await?;
        // NUL and invalid UTF-8.
        c.expect(
            "invalid utf-8",
            raw.post_bytes(
                b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\xff\xfe\"}".to_vec(),
                s,
                v,
            )
            .await,
            400,
            Some(PARSE_ERROR),
            "UTF-8",
        )
        .await?;
        c.expect(
            "raw NUL byte",
            raw.post_bytes(
                b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"pi\x00ng\"}".to_vec(),
                s,
                v,
            )
            .await,
            400,
            Some(PARSE_ERROR),
            "Parse error",
        )
        .await?;
        let nul = c
            .expect(
                "escaped NUL in a tool argument",
                raw.post_bytes(
                    call(
                        "manage_project",
                        json!({"action":"create","title":"a\u{0}b"}),
                    )
                    .to_string(),
                    s,
                    v,
                )
                .await,
                200,
                None,
                "",
            )
            .await?;
        anyhow::ensure!(
            nul.message["result"]["isError"] == true,
            "NUL title must be a validation error: {:?}",
            nul.message
        );
        c.expect(
            "escaped NUL in the method",
            raw.post_bytes(r#"{"jsonrpc":"2.0","id":1,"method":"ping\u0000"}"#, s, v)
                .await,
            200,
            Some(METHOD_NOT_FOUND),
            "",
        )
        .await?;
        // Not a JSON-RPC request.
        c.expect(
            "a number",
            raw.post_bytes("5", s, v).await,
            400,
            Some(INVALID_REQUEST),
            "JSON object",
        )
        .await?;
        c.expect(
            "null",
            raw.post_bytes("null", s, v).await,
            400,
            Some(INVALID_REQUEST),
            "JSON object",
        )
        .await?;
        c.expect(
            "no jsonrpc member",
            raw.post_bytes(r#"{"id":1,"method":"ping"}"#, s, v).await,
            400,
            Some(INVALID_REQUEST),
            "\"jsonrpc\"",
        )
        .await?;
        c.expect(
            "jsonrpc 1.0",
            raw.post_bytes(r#"{"jsonrpc":"1.0","id":1,"method":"ping"}"#, s, v)
                .await,
            400,
            Some(INVALID_REQUEST),
            "\"2.0\"",
        )
        .await?;
        c.expect(
            "method is a number",
            raw.post_bytes(r#"{"jsonrpc":"2.0","id":1,"method":5}"#, s, v)
                .await,
            400,
            Some(INVALID_REQUEST),
            "method must be a string",
        )
        .await?;
        c.expect(
            "no method",
            raw.post_bytes(r#"{"jsonrpc":"2.0","id":1}"#, s, v).await,
            400,
            Some(INVALID_REQUEST),
            "no method",
        )
        .await?;
        c.expect(
            "id is an object",
            raw.post_bytes(r#"{"jsonrpc":"2.0","id":{"a":1},"method":"ping"}"#, s, v)
                .await,
            400,
            Some(INVALID_REQUEST),
            "id must be",
        )
        .await?;
        c.expect(
            "id is fractional",
            raw.post_bytes(r#"{"jsonrpc":"2.0","id":1.5,"method":"ping"}"#, s, v)
                .await,
            400,
            Some(INVALID_REQUEST),
            "id must be",
        )
        .await?;
        // Wrong methods and types.
        c.expect(
            "unknown method",
            raw.post_bytes(r#"{"jsonrpc":"2.0","id":1,"method":"tools/explode"}"#, s, v)
                .await,
            200,
            Some(METHOD_NOT_FOUND),
            "",
        )
        .await?;
        c.expect(
            "tool name is a number",
            raw.post_bytes(
                r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":5}}"#,
                s,
                v,
            )
            .await,
            200,
            Some(INVALID_PARAMS),
            "params.name",
        )
        .await?;
        c.expect("arguments is a string", raw.post_bytes(r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"find_projects","arguments":"x"}}"#, s, v).await, 200, Some(INVALID_PARAMS), "params.arguments").await?;
        c.expect(
            "params is a string",
            raw.post_bytes(
                r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":"x"}"#,
                s,
                v,
            )
            .await,
            200,
            Some(INVALID_PARAMS),
            "params must be an object",
        )
        .await?;
        c.expect(
            "tools/call without params",
            raw.post_bytes(r#"{"jsonrpc":"2.0","id":1,"method":"tools/call"}"#, s, v)
                .await,
            200,
            Some(INVALID_PARAMS),
            "params is missing",
        )
        .await?;
        c.expect(
            "cursor is a number",
            raw.post_bytes(
                r#"{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"cursor":5}}"#,
                s,
                v,
            )
            .await,
            200,
            Some(INVALID_PARAMS),
            "params.cursor",
        )
        .await?;
        c.expect(
            "bad notification params",
            raw.post_bytes(
                r#"{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":{}}}"#,
                s,
                v,
            )
            .await,
            400,
            Some(INVALID_PARAMS),
            "params.requestId",
        )
        .await?;
        c.expect(
            "unknown tool",
            raw.post_bytes(call("rm_rf", json!({})).to_string(), s, v)
                .await,
            200,
            Some(INVALID_PARAMS),
            "",
        )
        .await?;
        let typed = c
            .expect(
                "tool argument of the wrong type",
                raw.post_bytes(
                    call("find_projects", json!({"page": "two"})).to_string(),
                    s,
                    v,
                )
                .await,
                200,
                None,
                "",
            )
            .await?;
        anyhow::ensure!(
            typed.message["result"]["isError"] == true,
            "{:?}",
            typed.message
        );
        c.expect("initialize without protocolVersion", raw.post(&json!({"jsonrpc":"2.0","id":1,"method":"initialize","params":{"capabilities":{},"clientInfo":{"name":"x","version":"1"}}}), None).await, 200, Some(INVALID_PARAMS), "params.protocolVersion is missing").await?;
        // Huge and deep bodies.
        let huge = format!(
            r#"{{"jsonrpc":"2.0","id":1,"method":"ping","params":{{"pad":"{}"}}}}"#,
            "x".repeat(5 * 1024 * 1024)
        );
        c.expect(
            "5 MiB body",
            raw.post_bytes(huge, s, v).await,
            413,
            Some(INVALID_REQUEST),
            "Payload Too Large",
        )
        .await?;
        c.expect(
            "100,000 nested arrays",
            raw.post_bytes("[".repeat(100_000), s, v).await,
            400,
            Some(INVALID_REQUEST),
            "nests deeper than 64",
        )
        .await?;
        let deep = format!(
            r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"find_projects","arguments":{{"q":{}1{}}}}}}}"#,
            "[".repeat(70),
            "]".repeat(70)
        );
        c.expect(
            "deep tool arguments",
            raw.post_bytes(deep, s, v).await,
            400,
            Some(INVALID_REQUEST),
            "nests deeper",
        )
        .await?;
        // Batches, per the negotiated revision.
        c.expect(
            "empty batch",
            raw.post_bytes("[]", s, v).await,
            400,
            Some(INVALID_REQUEST),
            "empty batch",
        )
        .await?;
        let batch = json!([{"jsonrpc":"2.0","id":1,"method":"ping"},{"jsonrpc":"2.0","id":2,"method":"tools/list"}]).to_string();
        c.expect(
            "batch on 2025-11-25",
            raw.post_bytes(batch.clone(), s, v).await,
            400,
            Some(INVALID_REQUEST),
            "not part of protocol revision 2025-11-25",
        )
        .await?;
        let old = raw.open_session_at("2025-03-26").await?;
        // 2025-03-26 has batches but not server/discover: refused inside the batch.
        let batch = json!([{"jsonrpc":"2.0","id":1,"method":"ping"},{"jsonrpc":"2.0","id":2,"method":"tools/list"},{"jsonrpc":"2.0","id":3,"method":"server/discover"}]).to_string();
        let answered = c
            .expect(
                "batch on 2025-03-26",
                raw.post_bytes(batch, Some(&old), &[("mcp-protocol-version", "2025-03-26")])
                    .await,
                200,
                None,
                "",
            )
            .await?;
        let replies = answered
            .message
            .as_array()
            .context("a batch answer is an array")?;
        anyhow::ensure!(
            replies.len() == 3
                && replies[1]["result"]["tools"].is_array()
                && replies[2]["id"] == 3
                && replies[2]["error"]["code"] == -32601,
            "{replies:?}"
        );
        // Sessions that are not (or no longer) valid.
        let unknown = "ab".repeat(32);
        c.expect(
            "unknown session",
            raw.post_bytes(
                json!({"jsonrpc":"2.0","id":1,"method":"ping"}).to_string(),
                Some(&unknown),
                v,
            )
            .await,
            404,
            Some(INVALID_REQUEST),
            "initialize",
        )
        .await?;
        let garbage = "../../etc/passwd%00".repeat(100);
        c.expect(
            "garbage session id",
            raw.post_bytes(
                json!({"jsonrpc":"2.0","id":1,"method":"ping"}).to_string(),
                Some(&garbage),
                v,
            )
            .await,
            404,
            Some(INVALID_REQUEST),
            "",
        )
        .await?;
        let gone = raw.open_session().await?;
        let deleted = raw
            .client
            .delete(raw.mcp())
            .header("mcp-session-id", &gone)
            .header("mcp-protocol-version", "2025-11-25")
            .send()
            .await?;
        anyhow::ensure!(
            deleted.status().is_success(),
            "DELETE: {}",
            deleted.status()
        );
        c.expect(
            "deleted session",
            raw.post_bytes(
                json!({"jsonrpc":"2.0","id":1,"method":"ping"}).to_string(),
                Some(&gone),
                v,
            )
            .await,
            404,
            Some(INVALID_REQUEST),
            "",
        )
        .await?;
        c.expect(
            "no session id",
            raw.post_bytes(
                json!({"jsonrpc":"2.0","id":1,"method":"ping"}).to_string(),
                None,
                v,
            )
            .await,
            400,
            Some(INVALID_REQUEST),
            "",
        )
        .await?;
        // Browser origins and DNS rebinding.
        c.expect(
            "foreign Origin",
            raw.post_bytes(
                initialize_request("2025-11-25").to_string(),
                None,
                &[("origin", "https://evil.example")],
            )
            .await,
            403,
            Some(INVALID_REQUEST),
            "--allowed-origins",
        )
        .await?;
        c.expect(
            "Origin null",
            raw.post_bytes(
                initialize_request("2025-11-25").to_string(),
                None,
                &[("origin", "null")],
            )
            .await,
            403,
            Some(INVALID_REQUEST),
            "Origin",
        )
        .await?;
        c.expect(
            "rebinding Host",
            raw.post_bytes(
                initialize_request("2025-11-25").to_string(),
                None,
                &[("host", "attacker.example:8051")],
            )
            .await,
            421,
            Some(INVALID_REQUEST),
            "--allowed-hosts",
        )
        .await?;
        c.expect(
            "loopback Origin is fine",
            raw.post_bytes(
                initialize_request("2025-11-25").to_string(),
                None,
                &[("origin", "http://localhost:5173")],
            )
            .await,
            200,
            None,
            "",
        )
        .await?;
        let api = raw
            .client
            .get(format!("{}/api/sessions", raw.base_url))
            .header("host", "attacker.example")
            .send()
            .await?;
        anyhow::ensure!(
            api.status() == StatusCode::MISDIRECTED_REQUEST,
            "the API checks Host too: {}",
            api.status()
        );
        // Headers.
        c.expect(
            "missing Accept",
            raw.post_bytes(
                initialize_request("2025-11-25").to_string(),
                None,
                &[("accept", "")],
            )
            .await,
            406,
            Some(INVALID_REQUEST),
            "Accept",
        )
        .await?;
        c.expect(
            "Accept json only",
            raw.post_bytes(
                initialize_request("2025-11-25").to_string(),
                None,
                &[("accept", "application/json")],
            )
            .await,
            406,
            Some(INVALID_REQUEST),
            "text/event-stream",
        )
        .await?;
        c.expect(
            "text/plain body",
            raw.post_bytes(
                initialize_request("2025-11-25").to_string(),
                None,
                &[("content-type", "text/plain")],
            )
            .await,
            415,
            Some(INVALID_REQUEST),
            "Content-Type",
        )
        .await?;
        let mut flood = raw
            .client
            .post(raw.mcp())
            .header("accept", common::raw::ACCEPT_BOTH)
            .header("content-type", "application/json");
        for i in 0..500 {
            flood = flood.header(format!("x-flood-{i}"), "y".repeat(64));
        }
        let flooded = flood
            .body(initialize_request("2025-11-25").to_string())
            .send()
            .await;
        c.expect(
            "500 headers",
            match flooded {
                Ok(r) => common::raw::read(r).await,
                Err(e) => Err(e.into()),
            },
            431,
            None,
            "",
        )
        .await?;

        // The ledger recorded the refusals as what they were.
        for (code, what) in [
            (PARSE_ERROR, "parse error"),
            (INVALID_REQUEST, "invalid request"),
            (INVALID_PARAMS, "invalid params"),
        ] {
            ledger_row(&raw, "status=error", |r| r["error_code"] == code)
                .await
                .with_context(|| format!("no ledger row for the {what}"))?;
        }
        ledger_row(&raw, "status=error&q=Payload", |r| {
            r["error_code"] == INVALID_REQUEST
        })
        .await?;
        ledger_row(&raw, "status=error&q=Origin", |r| {
            r["error_message"]
                .as_str()
                .is_some_and(|m| m.starts_with("Forbidden"))
        })
        .await?;

        assert!(c.ran >= 30, "only {} cases ran", c.ran);
        eprintln!("{} hostile cases passed on {}", c.ran, backend.name());
        drop(server);
    }
    Ok(())
}

/// Resident memory of a process, from /proc.
fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .context("no VmRSS")?;
    Ok(line
        .split_whitespace()
        .nth(1)
        .context("no number")?
        .parse()?)
}

#[tokio::test]
async fn a_thousand_rapid_initializes_leave_memory_bounded() -> anyhow::Result<()> {
    for backend in backends() {
        let db = TestDb::new(backend).await?;
        let server = TestServer::start_with(
            &db,
            &["--rate-limit", "0", "--max-sessions-per-principal", "0"],
        )
        .await?;
        let raw = Raw::new(&server.base_url);
        let session = raw.open_session().await?;
        let mut tasks = tokio::task::JoinSet::new();
        for worker in 0..10 {
            let raw = raw.clone();
            tasks.spawn(async move {
                for i in 0..100 {
                    let reply = raw.post(&initialize_request("2025-11-25"), None).await?;
                    anyhow::ensure!(
                        reply.status == StatusCode::OK,
                        "initialize {worker}/{i}: {reply:?}"
                    );
                }
                Ok(())
            });
        }
        while let Some(done) = tasks.join_next().await {
            done??;
        }
        raw.still_serves(&session).await?;
        let rss = rss_kib(server.pid().context("no pid")?)?;
        eprintln!(
            "RSS after 1,000 initializes on {}: {} MiB",
            backend.name(),
            rss / 1024
        );
        assert!(rss < 300 * 1024, "RSS {rss} KiB after the flood");
    }
    Ok(())
}

#[tokio::test]
async fn the_rate_limit_answers_429_with_retry_after() -> anyhow::Result<()> {
    for backend in backends() {
        let db = TestDb::new(backend).await?;
        let server =
            TestServer::start_with(&db, &["--rate-limit", "1", "--rate-burst", "5"]).await?;
        let raw = Raw::new(&server.base_url);
        let session = raw.open_session().await?; // two requests
        let mut limited = None;
        for _ in 0..10 {
            let reply = raw.tools_list(&session).await?;
            if reply.status == StatusCode::TOO_MANY_REQUESTS {
                limited = Some(reply);
                break;
            }
        }
        let reply = limited.context("no 429 after the burst")?;
        assert_eq!(reply.error_code(), Some(INVALID_REQUEST));
        let retry: u64 = reply
            .headers
            .get("retry-after")
            .context("no Retry-After")?
            .to_str()?
            .parse()?;
        assert!((1..=2).contains(&retry), "Retry-After {retry}");
        tokio::time::sleep(Duration::from_secs(retry)).await;
        raw.still_serves(&session).await?;
        ledger_row(&raw, "status=error&q=Too%20Many", |r| {
            r["error_code"] == INVALID_REQUEST
        })
        .await?;
    }
    Ok(())
}

#[tokio::test]
async fn live_sessions_per_principal_are_capped() -> anyhow::Result<()> {
    for backend in backends() {
        let db = TestDb::new(backend).await?;
        let server = TestServer::start_with(&db, &["--max-sessions-per-principal", "2"]).await?;
        let raw = Raw::new(&server.base_url);
        let first = raw.open_session().await?;
        raw.open_session().await?;
        let third = raw.post(&initialize_request("2025-11-25"), None).await?;
        assert_eq!(third.status, StatusCode::TOO_MANY_REQUESTS, "{third:?}");
        assert!(third.error_message().contains("limit 2"), "{third:?}");
        raw.still_serves(&first).await?;
        // Ending one makes room.
        let deleted = raw
            .client
            .delete(raw.mcp())
            .header("mcp-session-id", &first)
            .send()
            .await?;
        assert!(deleted.status().is_success());
        raw.open_session().await?;
    }
    Ok(())
}

#[tokio::test]
async fn an_expired_session_is_404() -> anyhow::Result<()> {
    for backend in backends() {
        let db = TestDb::new(backend).await?;
        let server = TestServer::start_with(
            &db,
            &[
                "--session-max-age",
                "1s",
                "--cleanup-interval",
                "500ms",
                "--revocation-poll",
                "200ms",
            ],
        )
        .await?;
        let raw = Raw::new(&server.base_url);
        let session = raw.open_session().await?;
        let mut status = StatusCode::OK;
        for _ in 0..50 {
            tokio::time::sleep(Duration::from_millis(200)).await;
            status = raw.tools_list(&session).await?.status;
            if status == StatusCode::NOT_FOUND {
                break;
            }
        }
        assert_eq!(status, StatusCode::NOT_FOUND, "the session never expired");
        let fresh = raw.open_session().await?;
        raw.tools_list(&fresh).await?;
    }
    Ok(())
}

#[tokio::test]
async fn a_tool_call_past_its_timeout_is_recorded_as_timeout() -> anyhow::Result<()> {
    use sqlx::Connection;
    for backend in backends() {
        let db = TestDb::new(backend).await?;
        let server = TestServer::start_with(&db, &["--tool-timeout", "500ms"]).await?;
        let raw = Raw::new(&server.base_url);
        let session = raw.open_session().await?;
        let create = call(
            "manage_project",
            json!({"action": "create", "title": "blocked"}),
        )
        .to_string();
        let v = &[("mcp-protocol-version", "2025-11-25")][..];
        // Hold the write lock so the tool's insert waits.
        let reply = match backend {
            common::Backend::Sqlite => {
                let mut conn = sqlx::SqliteConnection::connect(&db.url).await?;
                sqlx::query("BEGIN IMMEDIATE").execute(&mut conn).await?;
                let reply = raw.post_bytes(create, Some(&session), v).await?;
                sqlx::query("ROLLBACK").execute(&mut conn).await?;
                reply
            }
            common::Backend::Postgres => {
                let mut conn = sqlx::PgConnection::connect(&db.url).await?;
                sqlx::query("BEGIN").execute(&mut conn).await?;
                sqlx::query("LOCK TABLE projects IN ACCESS EXCLUSIVE MODE")
                    .execute(&mut conn)
                    .await?;
                let reply = raw.post_bytes(create, Some(&session), v).await?;
                sqlx::query("ROLLBACK").execute(&mut conn).await?;
                reply
            }
        };
        assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
        assert_eq!(reply.error_code(), Some(-32001), "{reply:?}");
        assert!(
            reply.error_message().contains("--tool-timeout"),
            "{reply:?}"
        );
        raw.still_serves(&session).await?;
        let row = ledger_row(&raw, "status=timeout", |r| {
            r["tool_name"] == "manage_project"
        })
        .await?;
        assert_eq!(row["error_code"], -32001, "{row}");
    }
    Ok(())
}
