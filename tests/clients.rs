//! Real MCP clients against the real binary: the TypeScript SDK (1.32.2) and the Python SDK
//! (2.3.0), installed by `tests/clients/setup.sh`. Without them (or without node / python) these
//! tests print a skip message and pass, so `cargo test` works on a laptop.

mod common;

use std::path::{Path, PathBuf};

use anyhow::{Context, ensure};
use common::{TestDb, TestServer, backends};
use serde_json::Value;

const BOARD_TOOLS: usize = 13;

fn clients_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients")
}

/// The TypeScript client's runner, or `None` (with a message) when it is not installed.
fn node() -> Option<PathBuf> {
    let sdk = clients_dir().join("node_modules/@modelcontextprotocol/sdk/package.json");
    let node_runs = std::process::Command::new("node")
        .arg("--version")
        .output()
        .is_ok();
    if sdk.exists() && node_runs {
        Some(PathBuf::from("node"))
    } else {
        eprintln!(
            "skipped: the TypeScript SDK client is not installed; run tests/clients/setup.sh (needs node and npm)"
        );
        None
    }
}

fn python() -> Option<PathBuf> {
    let python = clients_dir().join(".venv/bin/python");
    if python.exists() {
        Some(python)
    } else {
        eprintln!(
            "skipped: the Python SDK client is not installed; run tests/clients/setup.sh (needs python3)"
        );
        None
    }
}

/// Runs a client script and parses the JSON line it prints last.
async fn run(program: &Path, args: &[&str]) -> anyhow::Result<Value> {
    let output = tokio::process::Command::new(program)
        .args(args)
        .current_dir(clients_dir())
        .output()
        .await
        .with_context(|| format!("cannot run {}", program.display()))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    ensure!(
        output.status.success(),
        "{} {args:?} failed ({}):\n{stdout}\n{stderr}",
        program.display(),
        output.status
    );
    let line = stdout
        .lines()
        .last()
        .context("the client printed nothing")?;
    serde_json::from_str(line).with_context(|| format!("not JSON: {line}\n{stderr}"))
}

async fn kill_9(server: TestServer) -> anyhow::Result<()> {
    let pid = server.pid().context("the server has no pid")?;
    let status = std::process::Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()?;
    ensure!(status.success(), "kill -KILL {pid} failed");
    drop(server);
    Ok(())
}

#[tokio::test]
async fn typescript_sdk_reattaches_after_kill_9_without_initialize() -> anyhow::Result<()> {
    let Some(node) = node() else { return Ok(()) };
    for backend in backends() {
        let db = TestDb::new(backend).await?;
        let first = TestServer::start(&db).await?;
        let connected = run(&node, &["ts_client.mjs", &first.mcp_url(), "connect"]).await?;
        assert_eq!(connected["initialized"], true, "{connected}");
        assert_eq!(connected["success"], true, "{connected}");
        assert_eq!(
            connected["tools"].as_array().map(Vec::len),
            Some(BOARD_TOOLS)
        );
        let session = connected["sessionId"]
            .as_str()
            .context("no sessionId")?
            .to_string();

        kill_9(first).await?;
        let second = TestServer::start(&db).await?;
        let reattached = run(
            &node,
            &["ts_client.mjs", &second.mcp_url(), "reattach", &session],
        )
        .await?;
        assert_eq!(
            reattached["initialized"], false,
            "{backend:?}: it must not re-initialize: {reattached}"
        );
        assert_eq!(reattached["sessionId"], session.as_str());
        assert_eq!(reattached["success"], true, "{backend:?}: {reattached}");
        second.stop().await;
    }
    Ok(())
}

#[tokio::test]
async fn python_sdk_works_in_both_eras() -> anyhow::Result<()> {
    let Some(python) = python() else {
        return Ok(());
    };
    for backend in backends() {
        let db = TestDb::new(backend).await?;
        let server = TestServer::start(&db).await?;
        let url = server.mcp_url();
        // "auto": the server/discover probe succeeds, so the client stays stateless.
        let modern = run(&python, &["python_client.py", &url, "auto"]).await?;
        assert_eq!(
            modern["protocol_version"], "2026-07-28",
            "{backend:?}: {modern}"
        );
        assert_eq!(modern["success"], true, "{modern}");
        assert_eq!(modern["tools"].as_array().map(Vec::len), Some(BOARD_TOOLS));
        // "legacy": initialize and a session.
        let legacy = run(&python, &["python_client.py", &url, "legacy"]).await?;
        assert_eq!(
            legacy["protocol_version"], "2025-11-25",
            "{backend:?}: {legacy}"
        );
        assert_eq!(legacy["success"], true, "{legacy}");
        server.stop().await;
    }
    Ok(())
}
