//! What an operator sees of gateway mode's upstreams: `GET /api/upstreams` (counts, errors,
//! latencies and last errors from the ledger, so they survive a restart; state and breaker
//! live), and an upstream mounted without a namespace, under its own names, as the
//! conformance run through the gateway needs. The upstream is Steward itself with its
//! conformance fixtures, a real MCP server that needs nothing installed.

use crate::common;
use crate::gateway::{text, tool_names};

use std::time::Duration;

use anyhow::{Context, ensure};
use common::raw::{self, Client, PROTOCOL};
use common::{TestDb, TestServer, execute_sql, steward_cli, test_on_each_backend};
use serde_json::{Value, json};

test_on_each_backend!(
    api_upstreams_reports_each_upstream_and_survives_a_restart,
    an_unnamespaced_upstream_keeps_its_own_names,
);

/// `/api/upstreams` once `pred` holds for it (ledger rows are written asynchronously).
async fn upstreams_when(api: &Client, pred: impl Fn(&Value) -> bool) -> anyhow::Result<Value> {
    let mut last = Value::Null;
    for _ in 0..100 {
        let (status, body) = api.get_json("/api/upstreams").await?;
        ensure!(status == 200, "/api/upstreams answered {status}: {body}");
        if pred(&body) {
            return Ok(body);
        }
        last = body;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    anyhow::bail!("/api/upstreams never matched; last: {last}")
}

fn upstream<'a>(body: &'a Value, name: &str) -> &'a Value {
    body["upstreams"]
        .as_array()
        .and_then(|list| list.iter().find(|u| u["name"] == name))
        .unwrap_or(&Value::Null)
}

async fn api_upstreams_reports_each_upstream_and_survives_a_restart(
    db: TestDb,
) -> anyhow::Result<()> {
    let inner_db = TestDb::new(db.backend).await?;
    let inner = TestServer::start_with(&inner_db, &["--conformance-fixtures"]).await?;
    let fx = format!("fx={}", inner.mcp_url());
    let gone = "gone=http://operator:s3cret@127.0.0.1:9/mcp";
    let server = TestServer::start_with(&db, &["--upstream", &fx, "--upstream", gone]).await?;
    let api = Client::new(&server.base_url);
    let client = Client::new(&server.mcp_url());
    let session = client.open_session(PROTOCOL, "gateway-view").await?;
    for id in [1, 2] {
        let reply = client
            .call(Some(&session), id, "fx__test_simple_text", json!({}))
            .await?;
        ensure!(!text(&reply).is_empty(), "{}", reply.text);
    }
    let failing = client
        .call(Some(&session), 3, "fx__test_error_handling", json!({}))
        .await?;
    ensure!(failing.is_tool_error(), "{}", failing.text);
    let down = client
        .call(Some(&session), 4, "gone__anything", json!({}))
        .await?;
    ensure!(down.error_code() == Some(-32010), "{}", down.text);

    let body = upstreams_when(&api, |b| {
        upstream(b, "fx")["calls"] == 3 && upstream(b, "gone")["calls"] == 1
    })
    .await?;
    ensure!(!body.to_string().contains("s3cret"), "a credential: {body}");
    let fx = upstream(&body, "fx");
    ensure!(
        fx["configured"] == true
            && fx["transport"] == "http"
            && fx["state"] == "up"
            && fx["breaker"] == "closed"
            && fx["errors"] == 0
            && fx["tool_errors"] == 1
            && fx["last_error"].is_null()
            && fx["child_restarts"].is_null(),
        "{fx}"
    );
    let ms = |v: &Value, which: &str| v[which]["p50_ms"].as_f64().unwrap_or(-1.0);
    ensure!(
        ms(fx, "upstream_latency") > 0.0 && ms(fx, "total_latency") >= ms(fx, "upstream_latency"),
        "the upstream's share is part of the total: {fx}"
    );
    let gone = upstream(&body, "gone");
    ensure!(
        gone["state"] == "down"
            && gone["location"] == "http://127.0.0.1:9/mcp"
            && gone["errors"] == 1
            && gone["last_error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("cannot be reached")),
        "{gone}"
    );
    // A down upstream is listed in /health without making Steward unhealthy.
    let (status, health) = api.get_json("/health").await?;
    ensure!(status == 200 && health["status"] == "ok", "{health}");

    // Sessions re-established are counted from every recorded upstream session.
    execute_sql(
        &db,
        "UPDATE mcp_upstream_sessions SET reinitialized = 2 WHERE upstream = 'fx'",
    )
    .await?;

    // After a restart without `gone`, the ledger still knows both; `gone` is no longer configured.
    server.stop().await;
    let server =
        TestServer::start_with(&db, &["--upstream", &format!("fx={}", inner.mcp_url())]).await?;
    let api = Client::new(&server.base_url);
    let (_, body) = api.get_json("/api/upstreams?since=1h").await?;
    let (fx, gone) = (upstream(&body, "fx"), upstream(&body, "gone"));
    ensure!(
        fx["calls"] == 3 && fx["state"] == "unknown" && fx["sessions_reestablished"] == 2,
        "{fx}"
    );
    ensure!(
        gone["configured"] == false && gone["calls"] == 1 && gone["transport"].is_null(),
        "{gone}"
    );
    let (status, bad) = api.get_json("/api/upstreams?since=yesterday").await?;
    ensure!(status == 400 && bad.to_string().contains("since"), "{bad}");
    server.stop().await;
    inner.stop().await;
    Ok(())
}

async fn an_unnamespaced_upstream_keeps_its_own_names(db: TestDb) -> anyhow::Result<()> {
    let inner_db = TestDb::new(db.backend).await?;
    let inner = TestServer::start_with(&inner_db, &["--conformance-fixtures"]).await?;
    let fx = format!("fx={}", inner.mcp_url());

    // With the board, or beside another unnamespaced upstream, names could clash: refused.
    for (args, says) in [
        (vec!["--upstream-unnamespaced", fx.as_str()], "--no-board"),
        (
            vec![
                "--no-board",
                "--upstream-unnamespaced",
                fx.as_str(),
                "--upstream-unnamespaced",
                "gx=http://127.0.0.1:9/mcp",
            ],
            "at most one",
        ),
    ] {
        let mut all = vec!["serve", "--listen", "127.0.0.1:0", "--database", &db.url];
        all.extend(args);
        let output = steward_cli(&db, &all).await?;
        let stderr = String::from_utf8_lossy(&output.stderr);
        ensure!(
            output.status.code() == Some(2) && stderr.contains(says),
            "{all:?}: {stderr}"
        );
    }

    let server =
        TestServer::start_with(&db, &["--no-board", "--upstream-unnamespaced", &fx]).await?;
    let client = Client::new(&server.mcp_url());
    let session = client.open_session(PROTOCOL, "unnamespaced").await?;
    let direct = Client::new(&inner.mcp_url());
    let direct_session = direct.open_session(PROTOCOL, "direct").await?;
    let mut through = tool_names(&raw::tools_list(&client, &session).await?)?;
    let mut own = tool_names(&raw::tools_list(&direct, &direct_session).await?)?;
    through.sort();
    own.sort();
    ensure!(
        through == own,
        "through the gateway {through:?}, directly {own:?}"
    );
    let simple = client
        .call(Some(&session), 10, "test_simple_text", json!({}))
        .await?;
    ensure!(
        text(&simple) == "This is a simple text response for testing.",
        "{}",
        simple.text
    );
    let read = json!({ "jsonrpc": "2.0", "id": 11, "method": "resources/read",
        "params": { "uri": "test://static-text" } });
    let reply = client.post(&read, Some(&session)).await?;
    let uri = reply.result().context("resources/read")?["contents"][0]["uri"].clone();
    ensure!(uri == "test://static-text", "{}", reply.text);
    server.stop().await;
    inner.stop().await;
    Ok(())
}
