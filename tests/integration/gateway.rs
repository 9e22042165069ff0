//! Gateway mode against real upstreams: the official Python SDK server (`mcp` 2.3.0, from
//! tests/clients/setup.sh) over HTTP and over stdio, and Steward itself with
//! `--conformance-fixtures`. Without the Python SDK these tests print a skip message and pass.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, ensure};
use common::raw::{self, Client, PROTOCOL};
use common::{TestDb, TestServer, kill_9, test_on_each_backend};
use serde_json::{Value, json};
use tokio::process::{Child, Command};

test_on_each_backend!(
    merged_tools_proxied_calls_and_their_ledger_rows,
    steward_with_fixtures_as_an_upstream,
    sessions_survive_an_upstream_restart_and_a_steward_restart,
    a_stdio_upstream_is_restarted_and_its_secrets_stay_hidden,
    a_stopping_steward_does_not_hold_an_upstream_open,
);

pub(crate) fn python() -> Option<PathBuf> {
    let python = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/.venv/bin/python");
    if python.exists() {
        Some(python)
    } else {
        eprintln!(
            "skipped: the Python SDK is not installed; run tests/clients/setup.sh (needs python3)"
        );
        None
    }
}

pub(crate) fn upstream_script() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/gateway/upstream.py")
        .display()
        .to_string()
}

/// A port nothing listens on right now.
pub(crate) fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// The Python SDK server over HTTP on `port`; dropping it kills the process.
pub(crate) struct PythonUpstream {
    child: Child,
    port: u16,
}

impl PythonUpstream {
    pub(crate) async fn start(python: &Path, port: u16) -> anyhow::Result<Self> {
        Self::start_with(python, port, &[]).await
    }

    /// [`PythonUpstream::start`] with `env` set (see tests/gateway/upstream.py).
    pub(crate) async fn start_with(
        python: &Path,
        port: u16,
        env: &[(&str, &Path)],
    ) -> anyhow::Result<Self> {
        let child = Command::new(python)
            .args([upstream_script(), "http".into(), port.to_string()])
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .context("cannot start the Python upstream")?;
        for _ in 0..1200 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return Ok(PythonUpstream { child, port });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        anyhow::bail!(
            "the Python upstream did not listen on {port} within 60 s (a loaded machine starts Python slowly)"
        )
    }

    pub(crate) fn url(&self) -> String {
        format!("http://127.0.0.1:{}/mcp", self.port)
    }

    /// `kill -9`: every session it held is gone.
    pub(crate) async fn kill_9(mut self) -> anyhow::Result<u16> {
        self.child.kill().await?;
        Ok(self.port)
    }
}

/// Waits (up to 30 s) until `/health` says the upstream is up: a stdio upstream's interpreter
/// takes a moment to start.
pub(crate) async fn wait_until_up(api: &Client, upstream: &str) -> anyhow::Result<Value> {
    for _ in 0..300 {
        let (_, health) = api.get_json("/health").await?;
        let found = health["upstreams"].as_array().and_then(|list| {
            list.iter()
                .find(|u| u["name"] == upstream && u["state"] == "up")
        });
        if let Some(found) = found {
            return Ok(found.clone());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    anyhow::bail!("upstream {upstream} did not come up within 30 s")
}

pub(crate) fn tool_names(reply: &raw::Reply) -> anyhow::Result<Vec<String>> {
    Ok(reply.result()?["tools"]
        .as_array()
        .context("no tools array")?
        .iter()
        .filter_map(|t| t["name"].as_str().map(str::to_string))
        .collect())
}

/// The first text content of a tool result.
pub(crate) fn text(reply: &raw::Reply) -> &str {
    reply.message["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_default()
}

/// What `upstream`'s `seen` tool says once it records a cancelled call (up to 5 s), or at the
/// end; its calls use ids from `first_id` on.
async fn cancelled_at(
    client: &Client,
    session: &str,
    upstream: &str,
    first_id: u64,
) -> anyhow::Result<String> {
    let mut seen = String::new();
    for id in first_id..first_id + 50 {
        let answer = client
            .call(Some(session), id, &format!("{upstream}__seen"), json!({}))
            .await?;
        seen = text(&answer).to_string();
        if !seen.starts_with("cancelled= ") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(seen)
}

async fn merged_tools_proxied_calls_and_their_ledger_rows(db: TestDb) -> anyhow::Result<()> {
    let Some(python) = python() else {
        return Ok(());
    };
    let upstream = PythonUpstream::start(&python, free_port()?).await?;
    let http = format!("py={}", upstream.url());
    let stdio = format!("pys=stdio:{} {} stdio", python.display(), upstream_script());
    let dead = format!("dead=http://127.0.0.1:{}/mcp", free_port()?);
    let server = TestServer::start_with(
        &db,
        &[
            "--upstream",
            &http,
            "--upstream",
            &stdio,
            "--upstream",
            &dead,
            "--upstream-timeout",
            "3s",
        ],
    )
    .await?;
    let api = Client::new(&server.base_url);
    wait_until_up(&api, "pys").await?;
    let client = Client::new(&server.mcp_url());
    let session = client.open_session(PROTOCOL, "gateway-test").await?;

    // One list: the board's tools, then each upstream's, prefixed; the dead one is left out.
    let names = tool_names(&raw::tools_list(&client, &session).await?)?;
    for expected in [
        "find_projects",
        "py__echo",
        "py__add",
        "py__fail",
        "pys__echo",
    ] {
        ensure!(
            names.iter().any(|n| n == expected),
            "{expected} missing from {names:?}"
        );
    }
    ensure!(!names.iter().any(|n| n.starts_with("dead__")), "{names:?}");

    let add = client
        .call(Some(&session), 10, "py__add", json!({"a": 2, "b": 3}))
        .await?;
    ensure!(text(&add) == "5" && !add.is_tool_error(), "{}", add.text);
    let echo = client
        .call(
            Some(&session),
            11,
            "pys__echo",
            json!({"text": "over stdio"}),
        )
        .await?;
    ensure!(text(&echo) == "over stdio", "{}", echo.text);
    let fail = client
        .call(Some(&session), 12, "py__fail", json!({"message": "boom"}))
        .await?;
    ensure!(fail.is_tool_error(), "{}", fail.text);
    let down = client
        .call(Some(&session), 13, "dead__echo", json!({"text": "x"}))
        .await?;
    ensure!(down.error_code() == Some(-32010), "{}", down.text);
    ensure!(
        down.error_message()
            .contains("upstream dead cannot be reached"),
        "{}",
        down.text
    );
    let slow = client
        .call(Some(&session), 14, "py__slow", json!({"seconds": 10}))
        .await?;
    ensure!(
        slow.error_message()
            .contains("upstream py did not answer within 3s"),
        "{}",
        slow.text
    );
    // Steward stopped waiting, and told the upstream to stop too.
    let seen = cancelled_at(&client, &session, "py", 100).await?;
    ensure!(
        seen.starts_with("cancelled=") && !seen.starts_with("cancelled= "),
        "the upstream was not told the timed-out call was cancelled: {seen}"
    );
    // The same over stdio.
    let slow = client
        .call(Some(&session), 16, "pys__slow", json!({"seconds": 10}))
        .await?;
    ensure!(
        slow.error_message()
            .contains("upstream pys did not answer within 3s"),
        "{}",
        slow.text
    );
    let seen = cancelled_at(&client, &session, "pys", 200).await?;
    ensure!(
        seen.starts_with("cancelled=") && !seen.starts_with("cancelled= "),
        "the stdio upstream was not told the timed-out call was cancelled: {seen}"
    );
    // Neither failure touched the board.
    let board = client
        .call(Some(&session), 15, "find_projects", json!({}))
        .await?;
    ensure!(
        board.tool_json().is_some_and(|j| j["success"] == true),
        "{}",
        board.text
    );

    let row = |tool: &str, status: &'static str| {
        let query = format!("tool={tool}");
        let api = api.clone();
        async move { raw::ledger_row(&api, &query, |r| r["status"] == status).await }
    };
    let added = row("py__add", "success").await?;
    ensure!(
        added["upstream"] == "py" && added["upstream_tool"] == "add",
        "{added}"
    );
    let share = added["upstream_us"].as_i64().context("no upstream_us")?;
    let total = added["duration_us"].as_i64().context("no duration_us")?;
    ensure!(
        share > 0 && share <= total,
        "upstream {share} µs of {total} µs: {added}"
    );
    let failed = row("py__fail", "tool_error").await?;
    ensure!(failed["upstream_tool"] == "fail", "{failed}");
    let unreachable = row("dead__echo", "error").await?;
    ensure!(
        unreachable["error_code"] == -32010 && unreachable["upstream"] == "dead",
        "{unreachable}"
    );
    let timed_out = row("py__slow", "timeout").await?;
    ensure!(timed_out["upstream"] == "py", "{timed_out}");
    let stdio_row = row("pys__echo", "success").await?;
    ensure!(stdio_row["upstream"] == "pys", "{stdio_row}");

    // /health lists the upstreams (a dead one does not make Steward unhealthy); /metrics
    // counts proxied requests per upstream.
    let (status, health) = api.get_json("/health").await?;
    ensure!(status == 200, "{health}");
    let state = |name: &str| {
        health["upstreams"]
            .as_array()
            .and_then(|list| list.iter().find(|u| u["name"] == name))
            .map(|u| u["state"].clone())
    };
    ensure!(state("py") == Some(json!("up")), "{health}");
    ensure!(state("pys") == Some(json!("up")), "{health}");
    ensure!(state("dead") == Some(json!("down")), "{health}");
    let metrics = api.get("/metrics").await?.text().await?;
    ensure!(
        metrics.contains("steward_upstream_requests_total{upstream=\"py\",status=\"success\"}")
            || metrics
                .contains("steward_upstream_requests_total{status=\"success\",upstream=\"py\"}"),
        "{metrics}"
    );
    ensure!(
        metrics.contains("steward_upstream_up{upstream=\"dead\"} 0"),
        "{metrics}"
    );
    server.stop().await;
    Ok(())
}

async fn steward_with_fixtures_as_an_upstream(db: TestDb) -> anyhow::Result<()> {
    let inner_db = TestDb::new(db.backend).await?;
    let inner = TestServer::start_with(&inner_db, &["--conformance-fixtures"]).await?;
    let upstream = format!("inner={}", inner.mcp_url());
    let server = TestServer::start_with(&db, &["--upstream", &upstream, "--no-board"]).await?;
    let client = Client::new(&server.mcp_url());
    let session = client.open_session(PROTOCOL, "gateway-test").await?;
    let names = tool_names(&raw::tools_list(&client, &session).await?)?;
    ensure!(names.iter().all(|n| n.starts_with("inner__")), "{names:?}");
    for expected in ["inner__find_projects", "inner__test_simple_text"] {
        ensure!(
            names.iter().any(|n| n == expected),
            "{expected} missing from {names:?}"
        );
    }
    let simple = client
        .call(Some(&session), 20, "inner__test_simple_text", json!({}))
        .await?;
    ensure!(
        !text(&simple).is_empty() && !simple.is_tool_error(),
        "{}",
        simple.text
    );
    let projects = client
        .call(Some(&session), 21, "inner__find_projects", json!({}))
        .await?;
    ensure!(
        projects.tool_json().is_some_and(|j| j["success"] == true),
        "{}",
        projects.text
    );
    // --no-board: the outer Steward's own board is not served.
    let own = client
        .call(Some(&session), 22, "find_projects", json!({}))
        .await?;
    ensure!(own.error_message().contains("--no-board"), "{}", own.text);
    // The inner Steward recorded the call as its own request, under the outer one's session.
    let inner_api = Client::new(&inner.base_url);
    raw::ledger_row(&inner_api, "tool=test_simple_text", |r| {
        r["status"] == "success"
    })
    .await?;
    server.stop().await;
    inner.stop().await;
    Ok(())
}

/// The rows of `mcp_upstream_sessions`: (upstream session id, times re-initialized).
async fn upstream_sessions(
    db: &TestDb,
    session: &str,
) -> anyhow::Result<Vec<(Option<String>, i32)>> {
    let store = common::open_store(db).await?;
    let row = store.get_upstream_session(session, "py").await?;
    store.close().await;
    Ok(row
        .map(|r| (r.upstream_session_id, r.reinitialized))
        .into_iter()
        .collect())
}

async fn sessions_survive_an_upstream_restart_and_a_steward_restart(
    db: TestDb,
) -> anyhow::Result<()> {
    let Some(python) = python() else {
        return Ok(());
    };
    let upstream = PythonUpstream::start(&python, free_port()?).await?;
    let flag = format!("py={}", upstream.url());
    let server = TestServer::start_with(&db, &["--upstream", &flag]).await?;
    let client = Client::new(&server.mcp_url());
    let session = client.open_session(PROTOCOL, "gateway-test").await?;
    let first = client
        .call(Some(&session), 30, "py__add", json!({"a": 1, "b": 1}))
        .await?;
    ensure!(text(&first) == "2", "{}", first.text);
    let before = upstream_sessions(&db, &session).await?;
    ensure!(matches!(before.as_slice(), [(Some(_), 0)]), "{before:?}");

    // The upstream loses every session; the client's next call just works.
    let port = upstream.kill_9().await?;
    let upstream = PythonUpstream::start(&python, port).await?;
    let second = client
        .call(Some(&session), 31, "py__add", json!({"a": 2, "b": 2}))
        .await?;
    ensure!(text(&second) == "4", "{}", second.text);
    let after = upstream_sessions(&db, &session).await?;
    ensure!(
        matches!(after.as_slice(), [(Some(id), 1)] if Some(id) != before[0].0.as_ref()),
        "{before:?} then {after:?}"
    );

    // Steward itself is killed: the client's session and its upstream session carry on.
    kill_9(server).await?;
    let server = TestServer::start_with(&db, &["--upstream", &flag]).await?;
    let client = Client::new(&server.mcp_url());
    let third = client
        .call(Some(&session), 32, "py__add", json!({"a": 3, "b": 3}))
        .await?;
    ensure!(text(&third) == "6", "{}", third.text);
    let reused = upstream_sessions(&db, &session).await?;
    ensure!(
        reused == after,
        "the upstream session was not reused: {after:?} then {reused:?}"
    );

    // The client initialized once, whatever restarted.
    let api = Client::new(&server.base_url);
    raw::ledger_row(&api, "tool=py__add", |r| r["jsonrpc_id"] == "32").await?;
    let (_, rows) = api
        .get_json(&format!(
            "/api/requests?per_page=1000&session_id={session}&method=initialize"
        ))
        .await?;
    let initializes = rows["requests"].as_array().map(Vec::len);
    ensure!(initializes == Some(1), "{rows}");
    server.stop().await;
    drop(upstream);
    Ok(())
}

async fn a_stdio_upstream_is_restarted_and_its_secrets_stay_hidden(
    db: TestDb,
) -> anyhow::Result<()> {
    let Some(python) = python() else {
        return Ok(());
    };
    let upstream = PythonUpstream::start(&python, free_port()?).await?;
    let config = db.dir().join("steward.toml");
    std::fs::write(
        &config,
        format!(
            "[[upstream]]\nname = \"py\"\nurl = \"{}\"\nheaders = {{ X-Api-Key = \"sekrit-header-123\" }}\n\n\
             [[upstream]]\nname = \"pys\"\ncommand = \"{}\"\nargs = [\"{}\", \"stdio\"]\n\
             env = {{ PROBE = \"sekrit-env-456\" }}\ntools = [\"env\", \"crash\", \"echo\"]\n",
            upstream.url(),
            python.display(),
            upstream_script()
        ),
    )?;
    let server = TestServer::start_with(&db, &["--config", &config.display().to_string()]).await?;
    let api = Client::new(&server.base_url);
    wait_until_up(&api, "pys").await?;
    let client = Client::new(&server.mcp_url());
    let session = client.open_session(PROTOCOL, "gateway-test").await?;

    // The allow-list: only the listed tools of pys are offered.
    let names = tool_names(&raw::tools_list(&client, &session).await?)?;
    let offered: Vec<&String> = names.iter().filter(|n| n.starts_with("pys__")).collect();
    ensure!(offered.len() == 3, "{offered:?}");
    let refused = client
        .call(Some(&session), 40, "pys__add", json!({"a": 1, "b": 1}))
        .await?;
    ensure!(
        refused.error_message().contains("allow-list"),
        "{}",
        refused.text
    );
    // The environment reached the process.
    let env = client
        .call(Some(&session), 41, "pys__env", json!({"name": "PROBE"}))
        .await?;
    ensure!(text(&env) == "sekrit-env-456", "{}", env.text);
    let via_http = client
        .call(Some(&session), 42, "py__echo", json!({"text": "ok"}))
        .await?;
    ensure!(text(&via_http) == "ok", "{}", via_http.text);

    // The process dies mid-call: the call fails naming the upstream; the process is started
    // again and the next call works.
    let crash = client
        .call(Some(&session), 43, "pys__crash", json!({}))
        .await?;
    ensure!(
        crash.error_message().contains("upstream pys"),
        "{}",
        crash.text
    );
    let mut restarted = Value::Null;
    for _ in 0..300 {
        restarted = wait_until_up(&api, "pys").await?;
        if restarted["restarts"].as_u64() >= Some(1) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    ensure!(restarted["restarts"].as_u64() >= Some(1), "{restarted}");
    let again = client
        .call(Some(&session), 44, "pys__echo", json!({"text": "back"}))
        .await?;
    ensure!(text(&again) == "back", "{}", again.text);

    // Secrets appear nowhere Steward shows or keeps.
    raw::ledger_row(&api, "tool=py__echo", |r| r["status"] == "success").await?;
    let (_, health) = api.get_json("/health").await?;
    let (_, rows) = api.get_json("/api/requests?per_page=1000").await?;
    let metrics = api.get("/metrics").await?.text().await?;
    let logs = server.stderr_output();
    for secret in ["sekrit-header-123", "sekrit-env-456"] {
        ensure!(!health.to_string().contains(secret), "{secret} in /health");
        ensure!(
            !rows.to_string().contains(secret),
            "{secret} in /api/requests"
        );
        ensure!(!metrics.contains(secret), "{secret} in /metrics");
        ensure!(!logs.contains(secret), "{secret} in the logs");
    }
    server.stop().await;
    drop(upstream);
    Ok(())
}

/// Steward stops (SIGTERM) while a call is in flight: it drains that call (up to 10 s), but
/// closes its GET streams to upstreams at once, so an upstream that shuts down gracefully
/// (waiting for its open streams) is not held up until Steward has exited.
async fn a_stopping_steward_does_not_hold_an_upstream_open(db: TestDb) -> anyhow::Result<()> {
    let Some(python) = python() else {
        return Ok(());
    };
    let log = db.dir().join("streams.log");
    let streaming =
        PythonUpstream::start_with(&python, free_port()?, &[("STREAM_LOG", &log)]).await?;
    let busy = PythonUpstream::start(&python, free_port()?).await?;
    let (a, b) = (
        format!("a={}", streaming.url()),
        format!("b={}", busy.url()),
    );
    let server = TestServer::start_with(
        &db,
        &[
            "--upstream",
            &a,
            "--upstream",
            &b,
            "--upstream-timeout",
            "60s",
        ],
    )
    .await?;
    let client = Client::new(&server.mcp_url());
    let session = client.open_session(PROTOCOL, "gateway-test").await?;
    // A first call opens the session with `a`, and Steward's GET stream to it.
    let echo = client
        .call(Some(&session), 1, "a__echo", json!({"text": "hello"}))
        .await?;
    ensure!(text(&echo) == "hello", "{}", echo.text);
    let streams = || std::fs::read_to_string(&log).unwrap_or_default();
    ensure!(
        eventually(|| streams() == "GET opened\n").await,
        "Steward opened no GET stream to a: {:?}",
        streams()
    );
    // A call in flight at `b` keeps Steward draining after SIGTERM.
    let slow = tokio::spawn({
        let (client, session) = (client.clone(), session.clone());
        async move {
            client
                .call(Some(&session), 2, "b__slow", json!({"seconds": 30}))
                .await
        }
    });
    let mut seen = String::new();
    for id in 3..603 {
        let answer = client
            .call(Some(&session), id, "b__seen", json!({}))
            .await?;
        seen = text(&answer).to_string();
        if seen.ends_with("sleeping=1") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    ensure!(
        seen.ends_with("sleeping=1"),
        "the slow call never started: {seen}"
    );

    let pid = server.pid().context("Steward has no pid")?;
    let kill = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()?;
    ensure!(kill.success(), "kill -TERM {pid} failed: {kill}");
    ensure!(
        eventually(|| streams().ends_with("GET closed\n")).await,
        "the GET stream to a never closed: {:?}",
        streams()
    );
    ensure!(
        !slow.is_finished(),
        "the GET stream to a closed only when Steward exited, not when it began to stop"
    );
    server.stop().await;
    drop(busy);
    Ok(())
}

/// Whether `check` holds within 30 s.
async fn eventually(check: impl Fn() -> bool) -> bool {
    for _ in 0..300 {
        if check() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}
