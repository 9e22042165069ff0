//! Both directions through the gateway, with the TypeScript SDK client (tests/gateway/
//! ts_client.mjs) in front and the official Python SDK server (tests/gateway/upstream.py)
//! behind, over HTTP and over stdio: the upstream's progress, log lines, resource updates and
//! list changes reach the client; its sampling, elicitation and roots requests are answered by
//! the client (or refused when the client did not declare the capability); the client's
//! cancellation reaches the upstream, and so does a client's hanging up before the answer.
//! Without node or the Python SDK these tests skip.

use crate::common;
use crate::gateway::{PythonUpstream, free_port, python, upstream_script, wait_until_up};

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, ensure};
use common::raw::{self, Client};
use common::{TestDb, TestServer, test_on_each_backend};
use serde_json::{Value, json};

test_on_each_backend!(
    notifications_requests_and_cancellation_cross_the_gateway_both_ways,
    requests_for_undeclared_capabilities_are_refused,
    a_client_that_hangs_up_cancels_the_upstream_s_call,
    a_long_hang_up_grace_keeps_the_call_for_its_client,
);

/// The TypeScript SDK's runner, or `None` (with a message) when it is not installed.
pub(crate) fn node() -> Option<&'static str> {
    let sdk = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/clients/node_modules/@modelcontextprotocol/sdk/package.json");
    let runs = std::process::Command::new("node")
        .arg("--version")
        .output()
        .is_ok();
    if sdk.exists() && runs {
        Some("node")
    } else {
        eprintln!("skipped: the TypeScript SDK is not installed; run tests/clients/setup.sh");
        None
    }
}

pub(crate) fn ts_client() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/gateway/ts_client.mjs")
        .display()
        .to_string()
}

/// Runs `ts_client.mjs relay URL UPSTREAM [bare]`: what the client saw, as JSON.
pub(crate) async fn relay(url: &str, upstream: &str, bare: bool) -> anyhow::Result<Value> {
    let mut command = tokio::process::Command::new("node");
    command.args([ts_client().as_str(), "relay", url, upstream]);
    if bare {
        command.arg("bare");
    }
    let output = tokio::time::timeout(std::time::Duration::from_secs(120), command.output())
        .await
        .context("the TypeScript client did not finish within 120 s")??;
    let stdout = String::from_utf8_lossy(&output.stdout);
    ensure!(
        output.status.success(),
        "the TypeScript client failed: {stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_str(stdout.trim()).with_context(|| format!("not JSON: {stdout}"))
}

/// A Steward in front of the Python upstream over HTTP (`py`) and over stdio (`pys`).
async fn gateway(db: &TestDb, python: &Path) -> anyhow::Result<(PythonUpstream, TestServer)> {
    gateway_with(db, python, &[]).await
}

/// [`gateway`], with `extra` arguments for Steward.
async fn gateway_with(
    db: &TestDb,
    python: &Path,
    extra: &[&str],
) -> anyhow::Result<(PythonUpstream, TestServer)> {
    let upstream = PythonUpstream::start(python, free_port()?).await?;
    let http = format!("py={}", upstream.url());
    let stdio = format!("pys=stdio:{} {} stdio", python.display(), upstream_script());
    let mut args = vec!["--upstream", http.as_str(), "--upstream", stdio.as_str()];
    args.extend(extra);
    let server = TestServer::start_with(db, &args).await?;
    wait_until_up(&Client::new(&server.base_url), "pys").await?;
    Ok((upstream, server))
}

async fn notifications_requests_and_cancellation_cross_the_gateway_both_ways(
    db: TestDb,
) -> anyhow::Result<()> {
    let (Some(python), Some(_)) = (python(), node()) else {
        return Ok(());
    };
    let (upstream, server) = gateway(&db, &python).await?;
    let api = Client::new(&server.base_url);
    for name in ["py", "pys"] {
        let seen = relay(&server.mcp_url(), name, false).await?;
        let context = || format!("through {name}: {seen}");
        // Progress under the client's own token, and the upstream's log lines.
        ensure!(seen["progress"]["text"] == "done", "{}", context());
        let steps: Vec<&Value> = seen["progressSeen"]
            .as_array()
            .map(|p| p.iter().map(|p| &p["progress"]).collect())
            .unwrap_or_default();
        // Over stdio rmcp passes each notification on in a task of its own, so they can reach
        // Steward out of order, and the last may lose the race with the answer (and is then
        // dropped, as progress after an answer must be). Steward passes on only progress that
        // increases, as the spec requires: over stdio, an increasing part of 1, 2, 3 that
        // starts with the first to arrive; over HTTP all three in order.
        let (one, two, three) = (json!(1), json!(2), json!(3));
        let expected = [&one, &two, &three];
        let increasing = steps.windows(2).all(|w| w[0].as_f64() < w[1].as_f64());
        ensure!(
            steps == expected
                || (name == "pys"
                    && !steps.is_empty()
                    && increasing
                    && steps.iter().all(|s| expected.contains(s))),
            "{}",
            context()
        );
        // Log lines carry no sequence number, and over stdio rmcp hands each to its own task:
        // all three arrive, in order over HTTP, in any order over stdio.
        let mut logs: Vec<&str> = seen["logs"]
            .as_array()
            .map(|l| l.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        if name == "pys" {
            logs.sort_unstable();
        }
        ensure!(
            logs == ["step 1 of 3", "step 2 of 3", "step 3 of 3"],
            "{}",
            context()
        );
        // The upstream's requests, answered by the client.
        ensure!(
            seen["sample"]["text"] == "model said: forty-two (to the answer?)",
            "{}",
            context()
        );
        ensure!(seen["askName"]["text"] == "hello Ada", "{}", context());
        ensure!(
            seen["roots"]["text"] == "file:///work/project",
            "{}",
            context()
        );
        // A subscription made through Steward: the update names the gateway's URI.
        ensure!(seen["subscribed"] == true, "{}", context());
        let updated = format!("upstream://{name}/notes://readme");
        ensure!(
            seen["updated"]
                .as_array()
                .is_some_and(|u| u.iter().any(|u| u == updated.as_str())),
            "{}",
            context()
        );
        ensure!(seen["toolsChanged"].as_u64() >= Some(1), "{}", context());
        // The cancelled call stopped at the upstream.
        ensure!(seen["slow"]["error"].is_string(), "{}", context());
        let upstream_saw = seen["seenByUpstream"]["text"].as_str().unwrap_or_default();
        ensure!(
            upstream_saw.starts_with("cancelled=") && !upstream_saw.starts_with("cancelled= "),
            "{}",
            context()
        );
        ensure!(seen["initializes"] == 1, "{}", context());

        // The ledger: the proxied calls, the client's answers to the upstream's requests
        // (replies, not requests) and its cancellation, in the client's session.
        let session = seen["sessionId"].as_str().context("no session id")?;
        let query = format!("session_id={session}");
        let progress = format!("{name}__progress");
        let row = raw::ledger_row(&api, &query, |r| r["tool_name"] == progress.as_str()).await?;
        ensure!(
            row["status"] == "success" && row["upstream"] == name,
            "{row}"
        );
        raw::ledger_row(&api, &query, |r| r["method"] == "(not a request)").await?;
        raw::ledger_row(&api, &query, |r| r["method"] == "notifications/cancelled").await?;
    }
    server.stop().await;
    drop(upstream);
    Ok(())
}

async fn requests_for_undeclared_capabilities_are_refused(db: TestDb) -> anyhow::Result<()> {
    let (Some(python), Some(_)) = (python(), node()) else {
        return Ok(());
    };
    let (upstream, server) = gateway(&db, &python).await?;
    for name in ["py", "pys"] {
        let seen = relay(&server.mcp_url(), name, true).await?;
        for tool in ["sample", "askName", "roots"] {
            let answer = seen[tool].to_string();
            ensure!(
                answer.contains("did not declare the capability"),
                "{tool} through {name}: {seen}"
            );
        }
        // What needs no capability still works.
        ensure!(seen["progress"]["text"] == "done", "{seen}");
    }
    server.stop().await;
    drop(upstream);
    Ok(())
}

/// A session-era client that closes its connection while the upstream's `slow` runs, without
/// sending `notifications/cancelled`: once it has not come back for the answer within the
/// grace (`--hangup-grace 1s` here), the upstream (HTTP and stdio) is told to stop the call,
/// and its ledger row says `cancelled` and names the upstream and its tool, as a completed
/// call's does; the session goes on. The upstream's timeout (60 s) is far off, so only the
/// hang-up can have cancelled it.
async fn a_client_that_hangs_up_cancels_the_upstream_s_call(db: TestDb) -> anyhow::Result<()> {
    let Some(python) = python() else {
        return Ok(());
    };
    let (upstream, server) = gateway_with(&db, &python, &["--hangup-grace", "1s"]).await?;
    let api = Client::new(&server.base_url);
    let client = Client::new(&server.mcp_url());
    let session = client.open_session(raw::PROTOCOL, "hangs-up").await?;
    for (name, first) in [("py", 100), ("pys", 200)] {
        let slow = format!("{name}__slow");
        let call = client.call(Some(&session), first, &slow, json!({ "seconds": 120 }));
        let hung_up = tokio::time::timeout(Duration::from_millis(1500), call).await;
        ensure!(hung_up.is_err(), "{slow} answered: {hung_up:?}");
        let mut seen = String::new();
        for id in first + 1..first + 100 {
            let reply = client
                .call(Some(&session), id, &format!("{name}__seen"), json!({}))
                .await?;
            seen = reply.result()?["content"][0]["text"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            if !seen.starts_with("cancelled= ") {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        ensure!(
            seen.starts_with("cancelled=")
                && !seen.starts_with("cancelled= ")
                && seen.ends_with("sleeping=0"),
            "{name} was not told to stop the call: {seen}"
        );
        let query = format!("session_id={session}");
        let id = first.to_string();
        let row = raw::ledger_row(&api, &query, |r| r["jsonrpc_id"] == id.as_str()).await?;
        // The row is complete when the client leaves, before the call's upstream hop ends.
        let tool = format!("{name}__slow");
        ensure!(
            row["status"] == "cancelled" && row["tool_name"] == tool.as_str(),
            "{row}"
        );
        let upstream_us = row["upstream_us"].as_i64().unwrap_or_default();
        ensure!(
            row["upstream"] == name && row["upstream_tool"] == "slow" && upstream_us > 0,
            "the row of a call cancelled by a hang-up names its upstream: {row}"
        );
    }
    let echo = client
        .call(
            Some(&session),
            300,
            "py__echo",
            json!({ "text": "still here" }),
        )
        .await?;
    ensure!(echo.text.contains("still here"), "{}", echo.text);
    server.stop().await;
    drop(upstream);
    Ok(())
}

/// With a hang-up grace longer than the test, a client that hangs up keeps its call running at
/// the upstream past the default grace (5 s): the setting is what decides.
async fn a_long_hang_up_grace_keeps_the_call_for_its_client(db: TestDb) -> anyhow::Result<()> {
    let Some(python) = python() else {
        return Ok(());
    };
    let (upstream, server) = gateway_with(&db, &python, &["--hangup-grace", "1h"]).await?;
    let client = Client::new(&server.mcp_url());
    let session = client.open_session(raw::PROTOCOL, "hangs-up").await?;
    let call = client.call(Some(&session), 1, "py__slow", json!({ "seconds": 30 }));
    let hung_up = tokio::time::timeout(Duration::from_millis(1500), call).await;
    ensure!(hung_up.is_err(), "py__slow answered: {hung_up:?}");
    // Past the default grace, with a margin.
    tokio::time::sleep(Duration::from_secs(7)).await;
    let reply = client
        .call(Some(&session), 2, "py__seen", json!({}))
        .await?;
    let seen = reply.result()?["content"][0]["text"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    ensure!(
        seen.starts_with("cancelled= ") && seen.ends_with("sleeping=1"),
        "the call was cancelled within the configured grace: {seen}"
    );
    server.stop().await;
    drop(upstream);
    Ok(())
}
