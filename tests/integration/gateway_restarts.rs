//! Item 7's restart scenarios with a real TypeScript SDK client (tests/gateway/ts_client.mjs
//! `steady`, one process and one session for the whole test) in front of Steward and the
//! official Python SDK server behind it: kill -9 the upstream and start it again, kill -9
//! Steward and start it again, then both at once; every call after each restart answers with
//! no error and no new `initialize` from the client, and every answered call has its ledger row.
//! (gateway.rs covers the same restarts with a raw HTTP client.) Without node or the Python SDK
//! this test skips.

use crate::common;
use crate::gateway::{PythonUpstream, free_port, python};
use crate::gateway_relay::{node, ts_client};

use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, ensure};
use common::raw::{self, Client};
use common::{TestDb, TestServer, kill_9, test_on_each_backend};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{ChildStdin, ChildStdout};

test_on_each_backend!(a_typescript_client_never_notices_either_side_restart);

/// The client process, driven line by line.
struct Steady {
    stdin: ChildStdin,
    stdout: Lines<BufReader<ChildStdout>>,
}

impl Steady {
    async fn line(&mut self) -> anyhow::Result<Value> {
        let line = tokio::time::timeout(Duration::from_secs(60), self.stdout.next_line())
            .await
            .context("the TypeScript client said nothing for 60 s")??
            .context("the TypeScript client ended")?;
        serde_json::from_str(&line).with_context(|| format!("not JSON: {line}"))
    }

    /// Calls `py__add` and checks the sum.
    async fn add(&mut self, a: i64, b: i64) -> anyhow::Result<()> {
        let line = format!("py__add {}\n", json!({"a": a, "b": b}));
        self.stdin.write_all(line.as_bytes()).await?;
        let answer = self.line().await?;
        ensure!(
            answer["text"].as_str() == Some(&*(a + b).to_string()) && answer.get("error").is_none(),
            "{a} + {b}: {answer}"
        );
        Ok(())
    }
}

async fn steward(db: &TestDb, upstream: &str, port: u16) -> anyhow::Result<TestServer> {
    let flag = format!("py={upstream}");
    TestServer::start_with(db, &["--upstream", &flag, "--port", &port.to_string()]).await
}

async fn a_typescript_client_never_notices_either_side_restart(db: TestDb) -> anyhow::Result<()> {
    let (Some(python), Some(node)) = (python(), node()) else {
        return Ok(());
    };
    let upstream = PythonUpstream::start(&python, free_port()?).await?;
    let url = upstream.url();
    let port = free_port()?;
    let server = steward(&db, &url, port).await?;
    let mut child = tokio::process::Command::new(node)
        .args([ts_client().as_str(), "steady", &server.mcp_url()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let mut client = Steady {
        stdin: child.stdin.take().context("no stdin")?,
        stdout: BufReader::new(child.stdout.take().context("no stdout")?).lines(),
    };
    let ready = client.line().await?;
    let session = ready["sessionId"]
        .as_str()
        .context("no session")?
        .to_string();
    client.add(1, 1).await?;

    // The upstream restarts: it forgot every session.
    let upstream = PythonUpstream::start(&python, upstream.kill_9().await?).await?;
    client.add(2, 2).await?;

    // Steward restarts, on the same address.
    kill_9(server).await?;
    let server = steward(&db, &url, port).await?;
    client.add(3, 3).await?;

    // Both at once.
    let upstream_port = upstream.kill_9().await?;
    kill_9(server).await?;
    let upstream = PythonUpstream::start(&python, upstream_port).await?;
    let server = steward(&db, &url, port).await?;
    client.add(4, 4).await?;

    drop(client.stdin);
    let end = client.stdout.next_line().await?.context("no last line")?;
    let end: Value = serde_json::from_str(&end)?;
    ensure!(
        end["initializes"] == 1,
        "the client initialized again: {end}"
    );

    // Every answered call has its ledger row, whichever process restarted around it.
    let api = Client::new(&server.base_url);
    let query = format!("session_id={session}&tool=py__add");
    raw::ledger_row(&api, &query, |r| r["jsonrpc_id"].is_string()).await?;
    let mut answered = 0;
    for _ in 0..100 {
        let (_, rows) = api
            .get_json(&format!("/api/requests?per_page=1000&{query}"))
            .await?;
        answered = rows["requests"].as_array().map_or(0, |rows| {
            rows.iter().filter(|r| r["status"] == "success").count()
        });
        if answered >= 4 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    ensure!(
        answered == 4,
        "{answered} ledger rows for the 4 answered calls"
    );
    server.stop().await;
    drop(upstream);
    Ok(())
}
