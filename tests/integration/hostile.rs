//! Hostile input over HTTP: each case asserts the exact HTTP status and JSON-RPC error code,
//! then that the same server still answers a normal request. Runs on SQLite and (when
//! `STEWARD_TEST_POSTGRES_URL` is set) PostgreSQL.

use crate::common;

use std::time::Duration;

use anyhow::{Context, ensure};
use reqwest::StatusCode;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use common::raw::{
    ACCEPT, Client, PROTOCOL, Reply, initialize, ledger_row, open_session, open_session_at,
    still_serves, tools_list,
};
use common::{InProcess, TestDb, TestServer, backends};

const PARSE_ERROR: i64 = -32700;
const INVALID_REQUEST: i64 = -32600;
const METHOD_NOT_FOUND: i64 = -32601;
const INVALID_PARAMS: i64 = -32602;
/// The revision header of a request in a current-revision session.
const REVISION: (&str, &str) = ("mcp-protocol-version", PROTOCOL);

/// The session a case is sent in.
#[derive(Clone, Copy)]
enum In {
    /// The test's session (2025-11-25).
    Session,
    /// A session at 2025-03-26, the last revision with batches.
    Old,
    /// A well-formed id no server issued.
    Unknown,
    /// Path-traversal garbage as the id.
    Garbage,
    /// A session that was deleted.
    Deleted,
    /// No session header.
    None,
}

/// What the server must answer.
enum Answer {
    /// This HTTP status and JSON-RPC error code, the message containing the text.
    Error(u16, i64, &'static str),
    /// 200 with a tool result marked `isError` (a validation error, not a protocol one).
    ToolError,
    /// Only this HTTP status (the body is not a JSON-RPC message).
    Status(u16),
    /// 200 with a body this check accepts.
    Ok(fn(&Value) -> bool),
}

/// One hostile request: the body, the session it is sent in, headers replacing the usual ones
/// (an empty value removes one), and the answer it must get.
struct Case {
    name: &'static str,
    body: Vec<u8>,
    session: In,
    headers: Vec<(String, String)>,
    answer: Answer,
}

fn case(name: &'static str, body: impl Into<Vec<u8>>, answer: Answer) -> Case {
    Case {
        name,
        body: body.into(),
        session: In::Session,
        headers: Vec::new(),
        answer,
    }
}

impl Case {
    fn sent_in(self, session: In) -> Case {
        Case { session, ..self }
    }

    fn header(mut self, name: &str, value: &str) -> Case {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    fn check(&self, reply: &Reply) -> anyhow::Result<()> {
        let name = self.name;
        let (status, code, says) = match self.answer {
            Answer::Error(status, code, says) => (status, Some(code), says),
            Answer::ToolError | Answer::Ok(_) => (200, None, ""),
            Answer::Status(status) => (status, None, ""),
        };
        ensure!(
            reply.status.as_u16() == status,
            "case {name}: status {} (expected {status}): {}",
            reply.status,
            reply.text
        );
        if let Some(code) = code {
            ensure!(
                reply.error_code() == Some(code),
                "case {name}: error code {:?} (expected {code}): {}",
                reply.error_code(),
                reply.text
            );
            ensure!(
                reply.error_message().contains(says),
                "case {name}: message {:?} lacks {says:?}",
                reply.error_message()
            );
        }
        match self.answer {
            Answer::ToolError => ensure!(
                reply.is_tool_error(),
                "case {name}: not a tool error: {}",
                reply.text
            ),
            Answer::Ok(accepts) => ensure!(
                accepts(&reply.message),
                "case {name}: unexpected answer: {}",
                reply.text
            ),
            Answer::Error(..) | Answer::Status(_) => {}
        }
        Ok(())
    }
}

fn call(tool: &str, arguments: Value) -> String {
    json!({ "jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": { "name": tool, "arguments": arguments } }).to_string()
}

fn ping() -> String {
    json!({"jsonrpc":"2.0","id":1,"method":"ping"}).to_string()
}

/// Every hostile request and the answer it must get.
fn cases() -> Vec<Case> {
    use Answer::{Error, Ok, Status, ToolError};
    let init = initialize().to_string();
    let huge = format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"ping","params":{{"pad":"{}"}}}}"#,
        "x".repeat(5 * 1024 * 1024)
    );
    let deep = format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"find_projects","arguments":{{"q":{}1{}}}}}}}"#,
        "[".repeat(70),
        "]".repeat(70)
    );
    let batch = json!([{"jsonrpc":"2.0","id":1,"method":"ping"},{"jsonrpc":"2.0","id":2,"method":"tools/list"}]).to_string();
    // 2025-03-26 has batches but not server/discover: refused inside the batch.
    let old_batch = json!([{"jsonrpc":"2.0","id":1,"method":"ping"},{"jsonrpc":"2.0","id":2,"method":"tools/list"},{"jsonrpc":"2.0","id":3,"method":"server/discover"}]).to_string();
    let mut flood = case("500 headers", init.clone(), Status(431)).sent_in(In::None);
    for i in 0..500 {
        flood = flood.header(&format!("x-flood-{i}"), &"y".repeat(64));
    }
    vec![
        // Malformed JSON.
        case("not json", "{bad", Error(400, PARSE_ERROR, "Parse error")),
        case("empty body", "", Error(400, PARSE_ERROR, "Parse error")),
        case("truncated", r#"{"jsonrpc":"2.0","id":1,"#, Error(400, PARSE_ERROR, "line 1")),
        case("trailing garbage", r#"{"jsonrpc":"2.0","id":1,"method":"ping"} x"#, Error(400, PARSE_ERROR, "trailing")),
        // NUL and invalid UTF-8.
        case("invalid utf-8", &b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\xff\xfe\"}"[..], Error(400, PARSE_ERROR, "UTF-8")),
        case("raw NUL byte", &b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"pi\x00ng\"}"[..], Error(400, PARSE_ERROR, "Parse error")),
        case("escaped NUL in a tool argument", call("manage_project", json!({"action":"create","title":"a\u{0}b"})), ToolError),
        case("escaped NUL in the method", r#"{"jsonrpc":"2.0","id":1,"method":"ping\u0000"}"#, Error(200, METHOD_NOT_FOUND, "")),
        // Valid JSON syntax that no JSON reader can hold (found by fuzz/; rmcp answered 415).
        case("half a surrogate pair", r#"{"jsonrpc":"2.0","id":1,"method":"x/y","params":{"a":"\udfff"}}"#, Error(400, PARSE_ERROR, "surrogate")),
        case("a number past f64", r#"{"jsonrpc":"2.0","id":1,"method":"x/y","params":{"a":1e99999}}"#, Error(400, PARSE_ERROR, "out of range")),
        // Not a JSON-RPC request.
        case("a number", "5", Error(400, INVALID_REQUEST, "JSON object")),
        case("null", "null", Error(400, INVALID_REQUEST, "JSON object")),
        case("no jsonrpc member", r#"{"id":1,"method":"ping"}"#, Error(400, INVALID_REQUEST, "\"jsonrpc\"")),
        case("jsonrpc 1.0", r#"{"jsonrpc":"1.0","id":1,"method":"ping"}"#, Error(400, INVALID_REQUEST, "\"2.0\"")),
        case("method is a number", r#"{"jsonrpc":"2.0","id":1,"method":5}"#, Error(400, INVALID_REQUEST, "method must be a string")),
        case("no method", r#"{"jsonrpc":"2.0","id":1}"#, Error(400, INVALID_REQUEST, "no method")),
        case("id is an object", r#"{"jsonrpc":"2.0","id":{"a":1},"method":"ping"}"#, Error(400, INVALID_REQUEST, "id must be")),
        case("id is fractional", r#"{"jsonrpc":"2.0","id":1.5,"method":"ping"}"#, Error(400, INVALID_REQUEST, "id must be")),
        // Wrong methods and types.
        case("unknown method", r#"{"jsonrpc":"2.0","id":1,"method":"tools/explode"}"#, Error(200, METHOD_NOT_FOUND, "")),
        case("tool name is a number", r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":5}}"#, Error(200, INVALID_PARAMS, "params.name")),
        case("arguments is a string", r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"find_projects","arguments":"x"}}"#, Error(200, INVALID_PARAMS, "params.arguments")),
        case("params is a string", r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":"x"}"#, Error(200, INVALID_PARAMS, "params must be an object")),
        case("tools/call without params", r#"{"jsonrpc":"2.0","id":1,"method":"tools/call"}"#, Error(200, INVALID_PARAMS, "params is missing")),
        case("cursor is a number", r#"{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"cursor":5}}"#, Error(200, INVALID_PARAMS, "params.cursor")),
        case("bad notification params", r#"{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":{}}}"#, Error(400, INVALID_PARAMS, "params.requestId")),
        case("unknown tool", call("rm_rf", json!({})), Error(200, INVALID_PARAMS, "")),
        case("tool argument of the wrong type", call("find_projects", json!({"page": "two"})), ToolError),
        case("initialize without protocolVersion", json!({"jsonrpc":"2.0","id":1,"method":"initialize","params":{"capabilities":{},"clientInfo":{"name":"x","version":"1"}}}).to_string(), Error(200, INVALID_PARAMS, "params.protocolVersion is missing")).sent_in(In::None),
        // Huge and deep bodies.
        case("5 MiB body", huge, Error(413, INVALID_REQUEST, "Payload Too Large")),
        case("100,000 nested arrays", "[".repeat(100_000), Error(400, INVALID_REQUEST, "nests deeper than 64")),
        case("deep tool arguments", deep, Error(400, INVALID_REQUEST, "nests deeper")),
        // Batches, per the negotiated revision.
        case("empty batch", "[]", Error(400, INVALID_REQUEST, "empty batch")),
        case("batch on 2025-11-25", batch, Error(400, INVALID_REQUEST, "not part of protocol revision 2025-11-25")),
        case("batch on 2025-03-26", old_batch, Ok(|replies| {
            replies.as_array().map(Vec::len) == Some(3)
                && replies[1]["result"]["tools"].is_array()
                && replies[2]["id"] == 3
                && replies[2]["error"]["code"] == METHOD_NOT_FOUND
        }))
        .sent_in(In::Old)
        .header("mcp-protocol-version", "2025-03-26"),
        // Sessions that are not (or no longer) valid.
        case("unknown session", ping(), Error(404, INVALID_REQUEST, "initialize")).sent_in(In::Unknown),
        case("garbage session id", ping(), Error(404, INVALID_REQUEST, "")).sent_in(In::Garbage),
        case("deleted session", ping(), Error(404, INVALID_REQUEST, "")).sent_in(In::Deleted),
        case("no session id", ping(), Error(400, INVALID_REQUEST, "")).sent_in(In::None).header(REVISION.0, REVISION.1),
        // Browser origins and DNS rebinding.
        case("foreign Origin", init.clone(), Error(403, INVALID_REQUEST, "--allowed-origins")).sent_in(In::None).header("origin", "https://evil.example"),
        case("Origin null", init.clone(), Error(403, INVALID_REQUEST, "Origin")).sent_in(In::None).header("origin", "null"),
        case("rebinding Host", init.clone(), Error(421, INVALID_REQUEST, "--allowed-hosts")).sent_in(In::None).header("host", "attacker.example:8051"),
        case("loopback Origin is fine", init.clone(), Ok(|m| m["result"].is_object())).sent_in(In::None).header("origin", "http://localhost:5173"),
        // Headers.
        case("missing Accept", init.clone(), Error(406, INVALID_REQUEST, "Accept")).sent_in(In::None).header("accept", ""),
        case("Accept json only", init.clone(), Error(406, INVALID_REQUEST, "text/event-stream")).sent_in(In::None).header("accept", "application/json"),
        case("text/plain body", init, Error(415, INVALID_REQUEST, "Content-Type")).sent_in(In::None).header("content-type", "text/plain"),
        flood,
    ]
}

#[tokio::test]
async fn hostile_inputs_get_exact_errors_and_the_server_keeps_serving() -> anyhow::Result<()> {
    for backend in backends() {
        let db = TestDb::new(backend).await?;
        let server = InProcess::start(&db).await?;
        let raw = Client::new(&server.mcp_url()).at_revision(PROTOCOL);
        let session = open_session(&raw).await?;
        let old = open_session_at(&raw, "2025-03-26").await?;
        let deleted = open_session(&raw).await?;
        let gone = raw.delete(&deleted).await?;
        ensure!(gone.status.is_success(), "DELETE: {gone:?}");
        let (unknown, garbage) = ("ab".repeat(32), "../../etc/passwd%00".repeat(100));
        let cases = cases();
        for case in &cases {
            let id = match case.session {
                In::Session => Some(session.as_str()),
                In::Old => Some(old.as_str()),
                In::Unknown => Some(unknown.as_str()),
                In::Garbage => Some(garbage.as_str()),
                In::Deleted => Some(deleted.as_str()),
                In::None => None,
            };
            let headers: Vec<(&str, &str)> = case
                .headers
                .iter()
                .map(|(n, v)| (n.as_str(), v.as_str()))
                .collect();
            let reply = match case.answer {
                Answer::Error(413, ..) => post_answered_early(&raw, case.body.clone(), id).await,
                _ => raw.post_with(case.body.clone(), id, &headers).await,
            }
            .with_context(|| format!("case {}: sending", case.name))?;
            case.check(&reply)?;
            still_serves(&raw, &session)
                .await
                .with_context(|| format!("case {}: the server no longer serves", case.name))?;
        }
        let api = raw
            .http()
            .get(format!("{}/api/sessions", raw.base_url()))
            .header("host", "attacker.example")
            .send()
            .await?;
        ensure!(
            api.status() == StatusCode::MISDIRECTED_REQUEST,
            "the API checks Host too: {}",
            api.status()
        );

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
        eprintln!("{} hostile cases passed on {}", cases.len(), backend.name());
        server.stop().await;
    }
    Ok(())
}

/// POSTs a body past the server's limit in `session` over a connection of its own, reading the
/// answer while the body still goes out. The server may refuse the body (413) before all of it
/// is in and close the connection, after which the rest cannot be written (a broken pipe)
/// although the answer has come: the answer is what the case checks (an HTTP client library
/// reports the failed write instead, now and then).
async fn post_answered_early(
    raw: &Client,
    body: Vec<u8>,
    session: Option<&str>,
) -> anyhow::Result<Reply> {
    let authority = raw.base_url().trim_start_matches("http://").to_string();
    let mut head = format!(
        "POST /mcp HTTP/1.1\r\nhost: {authority}\r\naccept: {ACCEPT}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n",
        body.len()
    );
    if let Some(session) = session {
        head.push_str(&format!(
            "mcp-session-id: {session}\r\n{}: {}\r\n",
            REVISION.0, REVISION.1
        ));
    }
    head.push_str("\r\n");
    let connection = tokio::net::TcpStream::connect(&authority).await?;
    let (mut reader, mut writer) = connection.into_split();
    let sending = tokio::spawn(async move {
        // Fails once the server has answered and closed the connection: not the test's concern.
        let written = match writer.write_all(head.as_bytes()).await {
            Ok(()) => writer.write_all(&body).await,
            failed => failed,
        };
        if let Err(error) = written {
            eprintln!("the rest of the body was not sent ({error}): the server answered first");
        }
    });
    let mut answer = Vec::new();
    let mut buffer = vec![0; 64 * 1024];
    loop {
        match reader.read(&mut buffer).await {
            Ok(0) => break,
            Ok(n) => answer.extend_from_slice(&buffer[..n]),
            // Reset for the body it did not read, after the answer (checked whole below).
            Err(_) if !answer.is_empty() => break,
            Err(error) => return Err(error.into()),
        }
    }
    sending.abort();
    parse_answer(&answer)
}

/// An HTTP/1.1 answer with a `content-length`, as a [`Reply`].
fn parse_answer(answer: &[u8]) -> anyhow::Result<Reply> {
    let text = String::from_utf8_lossy(answer);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .with_context(|| format!("no whole HTTP head in {text:?}"))?;
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|line| line.split_whitespace().nth(1))
        .with_context(|| format!("no status line in {head:?}"))?;
    let mut headers = HeaderMap::new();
    for line in lines {
        let (name, value) = line
            .split_once(':')
            .with_context(|| format!("not a header: {line:?}"))?;
        headers.append(
            HeaderName::from_bytes(name.trim().as_bytes())?,
            HeaderValue::from_str(value.trim())?,
        );
    }
    let length: usize = headers
        .get("content-length")
        .context("no content-length")?
        .to_str()?
        .parse()?;
    let text = body
        .get(..length)
        .with_context(|| format!("the body was cut short: {body:?}"))?
        .to_string();
    Ok(Reply {
        status: StatusCode::from_u16(status.parse()?)?,
        headers,
        message: steward::mcp::client::find_message(&text).unwrap_or(Value::Null),
        text,
    })
}

/// Resident memory of a process, from /proc.
pub(crate) fn rss_kib(pid: u32) -> anyhow::Result<u64> {
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
        let raw = Client::new(&server.mcp_url()).at_revision(PROTOCOL);
        let session = open_session(&raw).await?;
        let mut tasks = tokio::task::JoinSet::new();
        for worker in 0..10 {
            let raw = raw.clone();
            tasks.spawn(async move {
                for i in 0..100 {
                    let reply = raw.post(&initialize(), None).await?;
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
        still_serves(&raw, &session).await?;
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
            InProcess::start_with(&db, &["--rate-limit", "1", "--rate-burst", "5"]).await?;
        let raw = Client::new(&server.mcp_url()).at_revision(PROTOCOL);
        let session = open_session(&raw).await?; // two requests
        let mut limited = None;
        for _ in 0..10 {
            let reply = tools_list(&raw, &session).await?;
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
        still_serves(&raw, &session).await?;
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
        let server = InProcess::start_with(&db, &["--max-sessions-per-principal", "2"]).await?;
        let raw = Client::new(&server.mcp_url()).at_revision(PROTOCOL);
        let first = open_session(&raw).await?;
        open_session(&raw).await?;
        let third = raw.post(&initialize(), None).await?;
        assert_eq!(third.status, StatusCode::TOO_MANY_REQUESTS, "{third:?}");
        assert!(third.error_message().contains("limit 2"), "{third:?}");
        still_serves(&raw, &first).await?;
        // Ending one makes room.
        let deleted = raw.delete(&first).await?;
        assert!(deleted.status.is_success(), "{deleted:?}");
        open_session(&raw).await?;
    }
    Ok(())
}

#[tokio::test]
async fn an_expired_session_is_404() -> anyhow::Result<()> {
    for backend in backends() {
        let db = TestDb::new(backend).await?;
        let server = InProcess::start_with(
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
        let raw = Client::new(&server.mcp_url()).at_revision(PROTOCOL);
        let session = open_session(&raw).await?;
        let mut status = StatusCode::OK;
        for _ in 0..50 {
            tokio::time::sleep(Duration::from_millis(200)).await;
            status = tools_list(&raw, &session).await?.status;
            if status == StatusCode::NOT_FOUND {
                break;
            }
        }
        assert_eq!(status, StatusCode::NOT_FOUND, "the session never expired");
        let fresh = open_session(&raw).await?;
        tools_list(&raw, &fresh).await?;
    }
    Ok(())
}

#[tokio::test]
async fn a_tool_call_past_its_timeout_is_recorded_as_timeout() -> anyhow::Result<()> {
    use sqlx::Connection;
    for backend in backends() {
        let db = TestDb::new(backend).await?;
        let server = InProcess::start_with(&db, &["--tool-timeout", "500ms"]).await?;
        let raw = Client::new(&server.mcp_url()).at_revision(PROTOCOL);
        let session = open_session(&raw).await?;
        let create = call(
            "manage_project",
            json!({"action": "create", "title": "blocked"}),
        );
        // Hold the write lock so the tool's insert waits.
        let reply = match backend {
            common::Backend::Sqlite => {
                let mut conn = sqlx::SqliteConnection::connect(&db.url).await?;
                sqlx::query("BEGIN IMMEDIATE").execute(&mut conn).await?;
                let reply = raw.post_with(create, Some(&session), &[]).await?;
                sqlx::query("ROLLBACK").execute(&mut conn).await?;
                reply
            }
            common::Backend::Postgres => {
                let mut conn = sqlx::PgConnection::connect(&db.url).await?;
                sqlx::query("BEGIN").execute(&mut conn).await?;
                sqlx::query("LOCK TABLE projects IN ACCESS EXCLUSIVE MODE")
                    .execute(&mut conn)
                    .await?;
                let reply = raw.post_with(create, Some(&session), &[]).await?;
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
        still_serves(&raw, &session).await?;
        let row = ledger_row(&raw, "status=timeout", |r| {
            r["tool_name"] == "manage_project"
        })
        .await?;
        assert_eq!(row["error_code"], -32001, "{row}");
    }
    Ok(())
}
