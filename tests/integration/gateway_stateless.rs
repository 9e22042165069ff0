//! A 2026-07-28 client without a session through the gateway, in front of an upstream that
//! speaks 2026-07-28 (Steward with `--conformance-fixtures`): Steward speaks 2026-07-28 to it
//! (recorded as the client's upstream "session", with no session id), an `InputRequiredResult`
//! and its `requestState` reach the client as the upstream sent them, and `Mcp-Param-*`
//! headers are checked against the upstream tool's input schema. And the Python SDK on both
//! sides, each era of client with each kind of upstream.

use crate::common;

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, ensure};
use common::raw::{self, Client, Reply};
use common::{TestDb, TestServer, test_on_each_backend};
use reqwest::StatusCode;
use serde_json::{Value, json};
use steward::store::sessions::SessionFilter;

use crate::gateway::{PythonUpstream, free_port, python};

test_on_each_backend!(
    input_required_results_pass_through_unchanged,
    mcp_param_headers_are_checked_against_the_upstream_tool,
    python_clients_of_either_era_through_python_upstreams_of_either_kind,
    a_server_discover_that_could_not_be_asked_is_not_recorded,
);

const REVISION: &str = "2026-07-28";
const ELICIT: &str = "inner__test_input_required_result_elicitation";

/// A Steward with the conformance fixtures, and a gateway in front of it as `inner`.
struct Pair {
    gateway: TestServer,
    inner: TestServer,
    _inner_db: TestDb,
}

impl Pair {
    async fn start(db: &TestDb) -> anyhow::Result<Pair> {
        let inner_db = TestDb::new(db.backend).await?;
        let inner = TestServer::start_with(&inner_db, &["--conformance-fixtures"]).await?;
        let upstream = format!("inner={}", inner.mcp_url());
        let gateway = TestServer::start_with(db, &["--upstream", &upstream, "--no-board"]).await?;
        Ok(Pair {
            gateway,
            inner,
            _inner_db: inner_db,
        })
    }

    async fn stop(self) {
        self.gateway.stop().await;
        self.inner.stop().await;
    }
}

/// One 2026-07-28 request without a session, with the headers that revision asks for and
/// `extra` ones.
async fn stateless(
    client: &Client,
    id: u64,
    method: &str,
    mut params: Value,
    extra: &[(&str, &str)],
) -> anyhow::Result<Reply> {
    params["_meta"] = json!({
        "io.modelcontextprotocol/protocolVersion": REVISION,
        "io.modelcontextprotocol/clientCapabilities": { "elicitation": {} },
        "io.modelcontextprotocol/clientInfo": { "name": "stateless-test", "version": "1.0" },
    });
    let name = params["name"].as_str().unwrap_or_default().to_string();
    let body = json!({ "jsonrpc": "2.0", "id": id, "method": method, "params": params });
    let mut headers = vec![("mcp-protocol-version", REVISION), ("mcp-method", method)];
    if !name.is_empty() {
        headers.push(("mcp-name", &name));
    }
    headers.extend_from_slice(extra);
    client.post_with(body.to_string(), None, &headers).await
}

async fn input_required_results_pass_through_unchanged(db: TestDb) -> anyhow::Result<()> {
    let pair = Pair::start(&db).await?;
    let client = Client::new(&pair.gateway.mcp_url());

    let asked = stateless(&client, 1, "tools/call", json!({ "name": ELICIT }), &[]).await?;
    let result = asked.result()?;
    ensure!(result["resultType"] == "input_required", "{}", asked.text);
    ensure!(
        result["inputRequests"]["user_name"]["method"] == "elicitation/create",
        "{}",
        asked.text
    );
    let state = result["requestState"]
        .as_str()
        .context("no requestState")?
        .to_string();

    let answer = json!({ "user_name": { "action": "accept", "content": { "name": "Ada" } } });
    let retry = json!({ "name": ELICIT, "inputResponses": answer, "requestState": state });
    let done = stateless(&client, 2, "tools/call", retry, &[]).await?;
    ensure!(
        done.result()?["content"][0]["text"] == "Hello, Ada!",
        "{}",
        done.text
    );

    // The upstream sealed the state: a changed one is refused there, and the client hears why.
    let forged =
        json!({ "name": ELICIT, "inputResponses": answer, "requestState": format!("{state}x") });
    let refused = stateless(&client, 3, "tools/call", forged, &[]).await?;
    ensure!(
        refused.error_message().contains("requestState"),
        "{}",
        refused.text
    );

    // One ledger row per message, each naming the upstream and its tool.
    let api = Client::new(&pair.gateway.base_url);
    raw::ledger_row(&api, &format!("tool={ELICIT}"), |r| r["jsonrpc_id"] == "3").await?;
    let (_, rows) = api
        .get_json(&format!("/api/requests?per_page=1000&tool={ELICIT}"))
        .await?;
    let rows = rows["requests"].as_array().context("no rows")?.clone();
    ensure!(rows.len() == 3, "{rows:?}");
    ensure!(
        rows.iter().all(|r| r["upstream"] == "inner"
            && r["upstream_tool"] == "test_input_required_result_elicitation"),
        "{rows:?}"
    );
    // The call that asked for input did not complete: its retry did.
    let status = |id: &str| {
        rows.iter()
            .find(|r| r["jsonrpc_id"] == id)
            .map(|r| &r["status"])
    };
    for (id, expected) in [("1", "input_required"), ("2", "success"), ("3", "error")] {
        ensure!(status(id) == Some(&json!(expected)), "row {id}: {rows:?}");
    }

    // The upstream "session" of the client's logical session is a 2026-07-28 one: no id.
    let store = common::open_store(&db).await?;
    let filter = SessionFilter {
        kind: Some("logical".into()),
        ..SessionFilter::default()
    };
    let mut recorded = None;
    for _ in 0..100 {
        let (sessions, _) = store.list_sessions(&filter, 10, 0).await?;
        if let Some(session) = sessions.first() {
            recorded = store
                .get_upstream_session(&session.session_id, "inner")
                .await?;
        }
        if recorded.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    store.close().await;
    let recorded = recorded.context("no upstream session recorded")?;
    ensure!(
        recorded.protocol_version == REVISION && recorded.upstream_session_id.is_none(),
        "{recorded:?}"
    );
    pair.stop().await;
    Ok(())
}

async fn mcp_param_headers_are_checked_against_the_upstream_tool(db: TestDb) -> anyhow::Result<()> {
    let pair = Pair::start(&db).await?;
    let client = Client::new(&pair.gateway.mcp_url());
    let listed = stateless(&client, 1, "tools/list", json!({}), &[]).await?;
    let tool = listed.result()?["tools"]
        .as_array()
        .and_then(|tools| {
            tools
                .iter()
                .find(|t| t["name"] == "inner__test_custom_headers")
        })
        .cloned()
        .context("inner__test_custom_headers is not listed")?;
    ensure!(
        tool["inputSchema"]["properties"]["region"]["x-mcp-header"] == "Region",
        "{tool}"
    );

    let call = |region: &'static str| json!({ "name": "inner__test_custom_headers", "arguments": { "region": region } });
    // The header agrees with the argument: the upstream runs the tool.
    let agreed = stateless(
        &client,
        2,
        "tools/call",
        call("eu-west"),
        &[("mcp-param-region", "eu-west")],
    )
    .await?;
    ensure!(
        agreed.status == StatusCode::OK && agreed.message["result"]["isError"] != true,
        "{}",
        agreed.text
    );
    // It disagrees, or is missing: refused before reaching the upstream (400, -32020).
    for (id, extra) in [(3, &[("mcp-param-region", "us-east")][..]), (4, &[][..])] {
        let refused = stateless(&client, id, "tools/call", call("eu-west"), extra).await?;
        ensure!(
            refused.status == StatusCode::BAD_REQUEST && refused.error_code() == Some(-32020),
            "{}",
            refused.text
        );
    }
    let inner = Client::new(&pair.inner.base_url);
    raw::ledger_row(&inner, "tool=test_custom_headers", |r| {
        r["status"] == "success"
    })
    .await?;
    let (_, rows) = inner
        .get_json("/api/requests?per_page=1000&tool=test_custom_headers")
        .await?;
    let ran = rows["requests"].as_array().map(Vec::len);
    ensure!(ran == Some(1), "the upstream ran the refused calls: {rows}");
    pair.stop().await;
    Ok(())
}

/// The Python SDK's client through the gateway, in `mode` (see tests/gateway/python_client.py).
pub(crate) async fn python_client(python: &Path, url: &str, mode: &str) -> anyhow::Result<Value> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/gateway/python_client.py");
    let output = tokio::process::Command::new(python)
        .arg(&script)
        .args([url, mode])
        .output()
        .await
        .context("cannot run the Python client")?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    ensure!(
        output.status.success(),
        "python_client.py {mode} failed ({}):\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(serde_json::from_str(stdout.trim())?)
}

/// Each client session's upstream session with `py`: (revision, whether it has a session id).
async fn python_upstream_sessions(db: &TestDb) -> anyhow::Result<Vec<(String, bool)>> {
    let store = common::open_store(db).await?;
    let (sessions, _) = store
        .list_sessions(&SessionFilter::default(), 100, 0)
        .await?;
    let mut found = Vec::new();
    for session in sessions {
        if let Some(row) = store
            .get_upstream_session(&session.session_id, "py")
            .await?
        {
            found.push((row.protocol_version, row.upstream_session_id.is_some()));
        }
    }
    store.close().await;
    found.sort();
    Ok(found)
}

/// The Python SDK's client in either era (`auto`: 2026-07-28 without a session; `legacy`: a
/// session) through the gateway to its server with sessions and without (`stateless_http`):
/// every call answers, and Steward reaches the upstream in the era the client speaks: a
/// 2026-07-28 request for a 2026-07-28 client (no session id recorded), a session-era one
/// for a session-era client (with the upstream's session id, when it keeps sessions).
async fn python_clients_of_either_era_through_python_upstreams_of_either_kind(
    db: TestDb,
) -> anyhow::Result<()> {
    let Some(python) = python() else {
        return Ok(());
    };
    for stateless_upstream in [false, true] {
        let db = TestDb::new(db.backend).await?;
        let env: &[(&str, &Path)] = match stateless_upstream {
            true => &[("STATELESS", Path::new("1"))],
            false => &[],
        };
        let upstream = PythonUpstream::start_with(&python, free_port()?, env).await?;
        let flag = format!("py={}", upstream.url());
        let server = TestServer::start_with(&db, &["--upstream", &flag]).await?;
        for (mode, revision) in [("auto", REVISION), ("legacy", "2025-11-25")] {
            let answer = python_client(&python, &server.mcp_url(), mode).await?;
            ensure!(
                answer["protocol_version"] == revision && answer["text"] == "5",
                "{mode} client, stateless upstream {stateless_upstream}: {answer}"
            );
        }
        // The logical session's own row is written in the background, as the ledger's are.
        let mut recorded = python_upstream_sessions(&db).await?;
        for _ in 0..100 {
            if recorded.len() >= 2 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
            recorded = python_upstream_sessions(&db).await?;
        }
        let expected = vec![
            ("2025-11-25".to_string(), !stateless_upstream),
            (REVISION.to_string(), false),
        ];
        ensure!(
            recorded == expected,
            "stateless upstream {stateless_upstream}: {recorded:?}"
        );
        server.stop().await;
        drop(upstream);
    }
    Ok(())
}

/// `server/discover` answered HTTP 503 (it could not be asked; the next one succeeds): the
/// 2026-07-28 client's call is served through a session-era session, which is not recorded,
/// so the logical session is not pinned to it (Steward asks again later).
async fn a_server_discover_that_could_not_be_asked_is_not_recorded(
    db: TestDb,
) -> anyhow::Result<()> {
    let Some(python) = python() else {
        return Ok(());
    };
    let env: &[(&str, &Path)] = &[("DISCOVER_FAILS_ONCE", Path::new("1"))];
    let upstream = PythonUpstream::start_with(&python, free_port()?, env).await?;
    let flag = format!("py={}", upstream.url());
    let server = TestServer::start_with(&db, &["--upstream", &flag]).await?;
    let client = Client::new(&server.mcp_url());
    let add = json!({ "name": "py__add", "arguments": { "a": 2, "b": 3 } });
    let added = stateless(&client, 1, "tools/call", add, &[]).await?;
    ensure!(
        added.result()?["content"][0]["text"] == "5",
        "{}",
        added.text
    );
    // The logical session's own row is written in the background; the upstream session's
    // would have been written before the call was answered.
    let store = common::open_store(&db).await?;
    let filter = SessionFilter {
        kind: Some("logical".into()),
        ..SessionFilter::default()
    };
    let mut sessions = Vec::new();
    for _ in 0..100 {
        (sessions, _) = store.list_sessions(&filter, 10, 0).await?;
        if !sessions.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let session = sessions.first().context("no logical session")?;
    let recorded = store
        .get_upstream_session(&session.session_id, "py")
        .await?;
    store.close().await;
    ensure!(recorded.is_none(), "pinned: {recorded:?}");
    server.stop().await;
    drop(upstream);
    Ok(())
}
