//! The circuit breaker of gateway mode, against the Python SDK upstream killed with `kill -9`:
//! after `--upstream-breaker-failures` failures in a row its calls fail at once with an error
//! that says so, /health and /metrics show it, the board and the other upstream go on, and
//! once the upstream is back one probe closes the breaker.

use crate::common;
use crate::gateway::{PythonUpstream, free_port, python, text, tool_names};

use std::time::{Duration, Instant};

use anyhow::ensure;
use common::raw::{self, Client, PROTOCOL};
use common::{TestDb, TestServer, test_on_each_backend};
use serde_json::{Value, json};

test_on_each_backend!(a_dead_upstream_trips_its_breaker_and_nothing_else,);

/// The upstream's entry in `/health`.
async fn health_of(api: &Client, name: &str) -> anyhow::Result<Value> {
    let (status, health) = api.get_json("/health").await?;
    ensure!(
        status == 200,
        "one upstream's breaker made Steward unhealthy: {health}"
    );
    health["upstreams"]
        .as_array()
        .and_then(|list| list.iter().find(|u| u["name"] == name).cloned())
        .ok_or_else(|| anyhow::anyhow!("no upstream {name} in {health}"))
}

async fn a_dead_upstream_trips_its_breaker_and_nothing_else(db: TestDb) -> anyhow::Result<()> {
    let Some(python) = python() else {
        return Ok(());
    };
    let flaky = PythonUpstream::start(&python, free_port()?).await?;
    let steady = PythonUpstream::start(&python, free_port()?).await?;
    let (py, other) = (
        format!("py={}", flaky.url()),
        format!("other={}", steady.url()),
    );
    let flags = ["--upstream", &py, "--upstream", &other];
    let breaker = [
        "--upstream-breaker-failures",
        "2",
        "--upstream-breaker-cooldown",
        "2s",
    ];
    let server = TestServer::start_with(&db, &[&flags[..], &breaker[..]].concat()).await?;
    let api = Client::new(&server.base_url);
    let client = Client::new(&server.mcp_url());
    let session = client.open_session(PROTOCOL, "breaker-test").await?;
    let add = |id: u64, upstream: &str| {
        let (client, session) = (client.clone(), session.clone());
        let tool = format!("{upstream}__add");
        async move {
            client
                .call(Some(&session), id, &tool, json!({"a": 1, "b": 2}))
                .await
        }
    };
    ensure!(text(&add(1, "py").await?) == "3");

    // Two failures in a row open the breaker; the third call is refused without trying.
    let port = flaky.kill_9().await?;
    for id in [2, 3] {
        let failed = add(id, "py").await?;
        ensure!(
            failed.error_code() == Some(-32010)
                && failed
                    .error_message()
                    .contains("upstream py cannot be reached"),
            "{}",
            failed.text
        );
    }
    let refused = add(4, "py").await?;
    ensure!(refused.error_code() == Some(-32010), "{}", refused.text);
    ensure!(
        refused
            .error_message()
            .contains("upstream py failed 2 times in a row")
            && refused.error_message().contains("circuit breaker is open"),
        "{}",
        refused.text
    );
    ensure!(
        refused.message["error"]["data"]["breaker"] == "open",
        "{}",
        refused.text
    );
    let entry = health_of(&api, "py").await?;
    ensure!(
        entry["breaker"] == "open" && entry["breaker_opened"] == 1 && entry["short_circuited"] == 1,
        "{entry}"
    );
    let metrics = api.get("/metrics").await?.text().await?;
    ensure!(
        metrics.contains("steward_upstream_breaker_open{upstream=\"py\"} 1")
            && metrics.contains("steward_upstream_breaker_open{upstream=\"other\"} 0"),
        "{metrics}"
    );

    // The other upstream and the board are untouched: listed and answering.
    let names = tool_names(&raw::tools_list(&client, &session).await?)?;
    ensure!(
        names.iter().any(|n| n == "other__add") && names.iter().any(|n| n == "find_projects"),
        "{names:?}"
    );
    ensure!(!names.iter().any(|n| n.starts_with("py__")), "{names:?}");
    ensure!(text(&add(5, "other").await?) == "3");
    let board = client
        .call(Some(&session), 6, "find_projects", json!({}))
        .await?;
    ensure!(
        board.tool_json().is_some_and(|j| j["success"] == true),
        "{}",
        board.text
    );
    ensure!(health_of(&api, "other").await?["breaker"] == "closed");

    // Back up: after the cool-down one call goes through as the probe and closes the breaker.
    let back = PythonUpstream::start(&python, port).await?;
    let deadline = Instant::now() + Duration::from_secs(20);
    while health_of(&api, "py").await?["breaker"] != "half_open" {
        ensure!(
            Instant::now() < deadline,
            "the breaker never became half-open"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let probe = add(7, "py").await?;
    ensure!(text(&probe) == "3", "{}", probe.text);
    let entry = health_of(&api, "py").await?;
    ensure!(
        entry["breaker"] == "closed" && entry["state"] == "up",
        "{entry}"
    );
    raw::ledger_row(&api, "tool=py__add", |r| {
        r["jsonrpc_id"] == "4" && r["status"] == "error" && r["error_code"] == -32010
    })
    .await?;
    server.stop().await;
    drop((back, steady));
    Ok(())
}
