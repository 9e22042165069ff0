//! The first hour of a new user (issue 24): ids as the CLI shows them, a database that is
//! never silently empty or wrong, counters from the ledger, exit codes, and the start-up text.
//! CLI tests run the real binary.

use crate::common;

use std::path::Path;
use std::process::Output;

use chrono::Utc;
use common::raw::{Client, open_session, tools_list};
use common::{Backend, TestDb, TestServer, backends, ledger_row, new_session, open_store};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

/// Runs `steward ARGS` in `dir` with `XDG_DATA_HOME` and `HOME` inside `dir`, so the default
/// database is the test's own.
async fn steward_in(dir: &Path, args: &[&str]) -> anyhow::Result<Output> {
    let output = Command::new(env!("CARGO_BIN_EXE_steward"))
        .args(args)
        .current_dir(dir)
        .env_remove("STEWARD_CONFIG")
        .env_remove("STEWARD_DATABASE_URL")
        .env_remove("STEWARD_PRICING_MODEL")
        .env("XDG_DATA_HOME", dir.join("xdg"))
        .env("HOME", dir)
        .env("NO_COLOR", "1")
        .output();
    Ok(tokio::time::timeout(std::time::Duration::from_secs(60), output).await??)
}

/// `steward ARGS --database DB`.
async fn steward(db: &TestDb, args: &[&str]) -> anyhow::Result<Output> {
    let mut all = args.to_vec();
    all.extend(["--database", &db.url]);
    steward_in(db.dir(), &all).await
}

fn out(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn err(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Two sessions whose ids share a 16-character prefix as the session table shows it, one with a
/// ledger row.
async fn seed(db: &TestDb) -> anyhow::Result<(String, String)> {
    let store = open_store(db).await?;
    let now = Utc::now();
    let first = "06b84b94db92b907aaaa0000000000000000".to_string();
    let second = "06b84b94db92b907bbbb0000000000000000".to_string();
    store
        .insert_session(&new_session(&first, "Claude Code", now))
        .await?;
    store
        .insert_session(&new_session(&second, "Cursor", now))
        .await?;
    let mut failed = ledger_row(&first, "manage_task", now);
    failed.status = steward::ledger::Status::ToolError;
    failed.error_message = Some("task t-1 not found".into());
    store
        .insert_requests(&[ledger_row(&first, "find_tasks", now), failed])
        .await?;
    store.close().await;
    Ok((first, second))
}

#[tokio::test]
async fn ids_as_the_cli_shows_them_are_accepted_and_ambiguity_is_exit_2() -> anyhow::Result<()> {
    for backend in backends() {
        let db = TestDb::new(backend).await?;
        let (first, _) = seed(&db).await?;
        let list = steward(&db, &["sessions", "list"]).await?;
        assert_eq!(list.status.code(), Some(0), "{}", err(&list));
        let shown: Vec<String> = out(&list)
            .lines()
            .skip(1)
            .filter_map(|l| l.split_whitespace().next().map(str::to_string))
            .filter(|id| id.starts_with("06b8"))
            .collect();
        assert_eq!(shown.len(), 2, "{backend:?}: {}", out(&list));

        // The shortened id is ambiguous here: exit 2, listing both full ids.
        let show = steward(&db, &["sessions", "show", &shown[0]]).await?;
        assert_eq!(show.status.code(), Some(2), "{backend:?}: {}", err(&show));
        assert!(err(&show).contains(&first), "{}", err(&show));

        // A unique prefix works for show and for the request filter.
        let prefix = &first[..20];
        let show = steward(&db, &["sessions", "show", prefix]).await?;
        assert_eq!(show.status.code(), Some(0), "{backend:?}: {}", err(&show));
        assert!(out(&show).contains(&first), "{}", out(&show));
        let requests = steward(&db, &["requests", "list", "--session", prefix]).await?;
        assert_eq!(requests.status.code(), Some(0), "{}", err(&requests));
        assert!(
            out(&requests).contains("2 of 2 requests"),
            "{backend:?}: {}",
            out(&requests)
        );

        // An id nothing has is a runtime failure, exit 1, never an empty answer.
        let none = steward(&db, &["requests", "list", "--session", "ffff"]).await?;
        assert_eq!(none.status.code(), Some(1), "{}", err(&none));
        assert!(err(&none).contains("no session"), "{}", err(&none));
    }
    Ok(())
}

#[tokio::test]
async fn exit_codes_are_2_for_usage_and_1_for_failures() -> anyhow::Result<()> {
    for backend in backends() {
        let db = TestDb::new(backend).await?;
        seed(&db).await?;
        let cases: Vec<(Vec<&str>, i32, &str)> = vec![
            (vec!["requests", "list", "--since", "yesterday"], 2, "since"),
            (vec!["stats", "--since", "yesterday"], 2, "since"),
            (vec!["sessions", "list", "--bogus"], 2, "--bogus"),
            (vec!["sessions", "show", "nope"], 1, "no session"),
            (vec!["keys", "revoke", "nobody"], 1, "no live key"),
        ];
        for (args, code, says) in cases {
            let output = steward(&db, &args).await?;
            assert_eq!(
                output.status.code(),
                Some(code),
                "{backend:?} {args:?}: {}",
                err(&output)
            );
            assert!(err(&output).contains(says), "{args:?}: {}", err(&output));
        }
    }
    Ok(())
}

#[tokio::test]
async fn read_only_commands_never_create_a_database_and_name_the_one_they_read()
-> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let default = dir.path().join("xdg/steward/steward.db");
    for args in [
        vec!["stats"],
        vec!["sessions", "list"],
        vec!["requests", "list"],
        vec!["pricing", "list"],
        vec!["keys", "list"],
    ] {
        let output = steward_in(dir.path(), &args).await?;
        assert_eq!(output.status.code(), Some(2), "{args:?}: {}", err(&output));
        assert!(
            err(&output).contains("no Steward database")
                && err(&output).contains(&default.display().to_string()),
            "{args:?}: {}",
            err(&output)
        );
    }
    let typo = dir.path().join("typo/fresh.db");
    let url = format!("sqlite://{}", typo.display());
    let output = steward_in(dir.path(), &["sessions", "list", "--database", &url]).await?;
    assert_eq!(output.status.code(), Some(2), "{}", err(&output));
    assert!(
        !typo.exists() && !default.exists(),
        "a database was created"
    );
    assert!(!dir.path().join("steward.db").exists());

    // `serve` creates the default database (and its directories) and says where it is...
    let mut server = Command::new(env!("CARGO_BIN_EXE_steward"))
        .args(["serve", "--port", "0"])
        .current_dir(dir.path())
        .env_remove("STEWARD_CONFIG")
        .env_remove("STEWARD_DATABASE_URL")
        .env("XDG_DATA_HOME", dir.path().join("xdg"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()?;
    let banner = read_banner(server.stdout.take().expect("stdout")).await?;
    assert!(
        banner.contains(&format!("database:     sqlite://{}", default.display())),
        "{banner}"
    );
    server.kill().await?;
    assert!(default.exists());

    // ...which every command then reads from any working directory, naming it.
    let elsewhere = dir.path().join("elsewhere");
    std::fs::create_dir(&elsewhere)?;
    let output = Command::new(env!("CARGO_BIN_EXE_steward"))
        .args(["sessions", "list"])
        .current_dir(&elsewhere)
        .env_remove("STEWARD_DATABASE_URL")
        .env("XDG_DATA_HOME", dir.path().join("xdg"))
        .output()
        .await?;
    assert_eq!(output.status.code(), Some(0), "{}", err(&output));
    assert!(
        err(&output).contains(&format!("database sqlite://{}", default.display())),
        "{}",
        err(&output)
    );
    Ok(())
}

/// The lines `serve` prints before it serves.
async fn read_banner(stdout: tokio::process::ChildStdout) -> anyhow::Result<String> {
    let mut lines = BufReader::new(stdout).lines();
    let mut banner = String::new();
    let read = async {
        while let Some(line) = lines.next_line().await? {
            banner.push_str(&line);
            banner.push('\n');
            if line.trim_start().starts_with("auth:") {
                break;
            }
        }
        anyhow::Ok(())
    };
    tokio::time::timeout(std::time::Duration::from_secs(30), read).await??;
    Ok(banner)
}

#[tokio::test]
async fn the_start_up_text_says_where_to_connect_and_what_it_uses() -> anyhow::Result<()> {
    let db = TestDb::new(Backend::Sqlite).await?;
    let mut server = Command::new(env!("CARGO_BIN_EXE_steward"))
        .args(["serve", "--listen", "localhost:0", "--database", &db.url])
        .current_dir(db.dir())
        .env_remove("STEWARD_CONFIG")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()?;
    let banner = read_banner(server.stdout.take().expect("stdout")).await?;
    server.kill().await?;
    let first = banner.lines().next().unwrap_or_default();
    let base = first
        .strip_prefix("steward listening on ")
        .unwrap_or_else(|| panic!("{banner}"));
    assert!(base.starts_with("http://127.0.0.1:"), "{banner}");
    for expected in [
        format!("MCP endpoint: {base}/mcp"),
        format!("dashboard:    {base}/"),
        format!("database:     {}", db.url),
        "auth:         none".to_string(),
    ] {
        assert!(
            banner.contains(&expected),
            "{expected} missing in:\n{banner}"
        );
    }
    let help = steward_in(db.dir(), &["serve", "--help"]).await?;
    assert!(out(&help).contains("--port <PORT>"), "{}", out(&help));
    assert!(out(&help).contains("default: 127.0.0.1:8051"));
    Ok(())
}

#[tokio::test]
async fn unusable_databases_say_what_is_wrong() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let not_a_db = dir.path().join("notadb.db");
    std::fs::write(&not_a_db, "this is a text file, not SQLite\n".repeat(200))?;
    let url = format!("sqlite://{}", not_a_db.display());
    let output = steward_in(dir.path(), &["serve", "--database", &url]).await?;
    assert_eq!(output.status.code(), Some(2), "{}", err(&output));
    assert!(
        err(&output).contains("not a SQLite database"),
        "{}",
        err(&output)
    );
    assert!(!err(&output).contains("writable"), "{}", err(&output));

    // Port 1 on loopback: nothing listens there.
    let pg = "postgres://postgres@127.0.0.1:1/steward";
    let output = steward_in(dir.path(), &["sessions", "list", "--database", pg]).await?;
    assert_eq!(output.status.code(), Some(2), "{}", err(&output));
    assert!(
        err(&output).contains("127.0.0.1:1") && err(&output).contains("refused"),
        "{}",
        err(&output)
    );
    assert!(!err(&output).contains("pool timed out"), "{}", err(&output));
    Ok(())
}

/// Calls `session_info` over raw HTTP; returns its `session` object.
async fn session_info(raw: &Client, session: Option<&str>, headers: &[(&str, &str)]) -> Value {
    let mut body = json!({
        "jsonrpc": "2.0", "id": 7, "method": "tools/call",
        "params": { "name": "session_info", "arguments": {} },
    });
    if session.is_none() {
        // A stateless 2026-07-28 request says who it is in every message.
        body["params"]["_meta"] = json!({
            "io.modelcontextprotocol/protocolVersion": "2026-07-28",
            "io.modelcontextprotocol/clientCapabilities": {},
            "io.modelcontextprotocol/clientInfo": { "name": "python-sdk", "version": "2.3.0" },
        });
    }
    let reply = raw
        .post_with(body.to_string(), session, headers)
        .await
        .expect("session_info answered");
    let text = reply.message["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_else(|| panic!("{:?}", reply.message));
    let parsed: Value = serde_json::from_str(text).expect("JSON text");
    parsed["data"]["session"]
        .as_object()
        .or_else(|| parsed["session"].as_object())
        .map(|o| Value::Object(o.clone()))
        .unwrap_or_else(|| panic!("{parsed}"))
}

#[tokio::test]
async fn session_info_counts_from_the_ledger_across_restarts() -> anyhow::Result<()> {
    for backend in backends() {
        let db = TestDb::new(backend).await?;
        let sync = ["--ledger-durability", "sync"];
        let server = TestServer::start_with(&db, &sync).await?;
        let raw = Client::new(&server.mcp_url());
        let session = open_session(&raw).await?;
        let version = [("mcp-protocol-version", "2025-11-25")];
        for _ in 0..2 {
            session_info(&raw, Some(&session), &version).await;
        }
        let info = session_info(&raw, Some(&session), &version).await;
        assert_eq!(info["request_count"], 3, "{backend:?}: {info}");
        server.stop().await;

        let server = TestServer::start_with(&db, &sync).await?;
        let raw = Client::new(&server.mcp_url());
        let info = session_info(&raw, Some(&session), &version).await;
        assert_eq!(info["session_id"], session.as_str());
        assert_eq!(info["request_count"], 4, "{backend:?}: {info}");
        assert_eq!(info["status"], "active", "{info}");

        // A stateless client sees the logical session its requests are recorded under.
        let stateless = [
            ("mcp-protocol-version", "2026-07-28"),
            ("mcp-method", "tools/call"),
            ("mcp-name", "session_info"),
        ];
        let first = session_info(&raw, None, &stateless).await;
        let id = first["session_id"].as_str().unwrap_or_default().to_string();
        assert!(id.starts_with("logical-"), "{backend:?}: {first}");
        let second = session_info(&raw, None, &stateless).await;
        assert_eq!(second["session_id"], id.as_str(), "{second}");
        assert_eq!(second["kind"], "logical", "{second}");
        assert_eq!(second["status"], "active", "{second}");
        assert_eq!(second["client"]["type"], "unknown", "{second}");
        assert_eq!(second["request_count"], 2, "{second}");
        server.stop().await;
    }
    Ok(())
}

#[tokio::test]
async fn delete_ends_a_session_with_204_and_rmcp_logs_stay_quiet() -> anyhow::Result<()> {
    let db = TestDb::new(Backend::Sqlite).await?;
    let server = TestServer::start(&db).await?;
    let raw = Client::new(&server.mcp_url());
    let session = open_session(&raw).await?;
    let response = raw.at_revision("2025-11-25").delete(&session).await?;
    assert_eq!(response.status.as_u16(), 204);
    let after = tools_list(&raw, &session).await?;
    assert_eq!(after.status.as_u16(), 404);
    let logs = server.stderr_output();
    assert!(
        !logs.contains("InitializeRequestParam") && !logs.contains("Service initialized"),
        "{logs}"
    );
    server.stop().await;
    Ok(())
}

#[tokio::test]
async fn check_of_a_running_server_leaves_no_session_behind() -> anyhow::Result<()> {
    let db = TestDb::new(Backend::Sqlite).await?;
    let server = TestServer::start(&db).await?;
    let check = steward_in(db.dir(), &["check", "--url", &server.mcp_url()]).await?;
    assert_eq!(
        check.status.code(),
        Some(0),
        "{}{}",
        out(&check),
        err(&check)
    );
    let live = steward(&db, &["sessions", "list", "--json"]).await?;
    let listed: Value = serde_json::from_slice(&live.stdout)?;
    let still_live: Vec<&Value> = listed["sessions"]
        .as_array()
        .map(|rows| {
            rows.iter()
                .filter(|r| r["status"] == "active" || r["status"] == "idle")
                .collect()
        })
        .unwrap_or_default();
    assert!(still_live.is_empty(), "{still_live:?}");
    server.stop().await;
    Ok(())
}

#[tokio::test]
async fn requests_filter_by_status_and_method_and_show_the_error() -> anyhow::Result<()> {
    for backend in backends() {
        let db = TestDb::new(backend).await?;
        seed(&db).await?;
        let output = steward(&db, &["requests", "list", "--status", "tool_error"]).await?;
        assert_eq!(output.status.code(), Some(0), "{}", err(&output));
        let text = out(&output);
        assert!(text.contains("ERROR"), "{text}");
        assert!(text.contains("task t-1 not found"), "{text}");
        assert!(text.contains("1 of 1 requests"), "{backend:?}: {text}");
        assert!(text.contains("result tokens × its input price"), "{text}");
        let output = steward(&db, &["requests", "list", "--method", "initialize"]).await?;
        assert!(out(&output).contains("0 of 0 requests"), "{}", out(&output));
    }
    Ok(())
}

#[tokio::test]
async fn pricing_list_marks_the_model_in_use_and_explains_cost() -> anyhow::Result<()> {
    let db = TestDb::new(Backend::Sqlite).await?;
    seed(&db).await?;
    let output = steward(&db, &["pricing", "list"]).await?;
    assert_eq!(output.status.code(), Some(0), "{}", err(&output));
    let text = out(&output);
    assert!(text.contains("claude-sonnet-4-5 (in use)"), "{text}");
    assert!(
        text.contains("argument tokens × the model's output price"),
        "{text}"
    );
    Ok(())
}

#[tokio::test]
async fn every_option_and_argument_is_described_in_help() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let commands: [&[&str]; 9] = [
        &["sessions", "show"],
        &["sessions", "revoke"],
        &["requests", "list"],
        &["stats"],
        &["pricing", "list"],
        &["keys", "create"],
        &["keys", "list"],
        &["keys", "revoke"],
        &["check"],
    ];
    for command in commands {
        let mut args = command.to_vec();
        args.push("--help");
        let output = steward_in(dir.path(), &args).await?;
        let text = out(&output);
        let lines: Vec<&str> = text.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            let item = line.trim_start();
            let indent = line.len() - item.len();
            let is_entry = item.starts_with("--")
                || item.starts_with('<')
                || (item.starts_with('-') && item.chars().nth(2) == Some(','));
            // What an entry does follows its name on the same line, or (long help) on the
            // next line, indented deeper.
            let same_line = item.trim_end().contains("  ");
            let next_line = lines.get(i + 1).is_some_and(|next| {
                let text = next.trim_start();
                !text.is_empty() && next.len() - text.len() > indent
            });
            if is_entry && !same_line && !next_line {
                panic!("{command:?}: undescribed {item:?} in\n{text}");
            }
        }
        assert!(!text.contains("seed's checklist"), "{text}");
    }
    Ok(())
}

#[tokio::test]
async fn requests_filter_by_tool_and_client_and_stats_label_tools_and_methods() -> anyhow::Result<()>
{
    for backend in backends() {
        let db = TestDb::new(backend).await?;
        let store = open_store(&db).await?;
        let now = Utc::now();
        let (claude, cursor) = ("client-filter-claude-0001", "client-filter-cursor-0002");
        for (id, name) in [(claude, "claude-code"), (cursor, "cursor")] {
            let mut session = new_session(id, "Claude Code", now);
            session.client_name = Some(name.into());
            store.insert_session(&session).await?;
        }
        let mut init = ledger_row(claude, "", now);
        init.method = "initialize".into();
        init.tool_name = None;
        store
            .insert_requests(&[
                init,
                ledger_row(claude, "find_tasks", now),
                ledger_row(claude, "manage_task", now),
                ledger_row(cursor, "manage_task", now),
            ])
            .await?;
        store.close().await;

        let output = steward(&db, &["requests", "list", "--tool", "manage_task"]).await?;
        assert_eq!(output.status.code(), Some(0), "{}", err(&output));
        assert!(
            out(&output).contains("2 of 2 requests"),
            "{backend:?}: {}",
            out(&output)
        );
        let output = steward(&db, &["requests", "list", "--client", "cursor"]).await?;
        assert_eq!(output.status.code(), Some(0), "{}", err(&output));
        let text = out(&output);
        assert!(text.contains("1 of 1 requests"), "{backend:?}: {text}");
        assert!(
            text.contains("manage_task") && !text.contains("find_tasks"),
            "{text}"
        );
        let output = steward(
            &db,
            &[
                "requests",
                "list",
                "--client",
                "claude-code",
                "--tool",
                "manage_task",
                "--json",
            ],
        )
        .await?;
        let body: Value = serde_json::from_slice(&output.stdout)?;
        assert_eq!(body["total"], 1, "{body}");
        assert_eq!(body["requests"][0]["session_id"], claude, "{body}");
        let output = steward(&db, &["requests", "list", "--client", "nobody"]).await?;
        assert!(out(&output).contains("0 of 0 requests"), "{}", out(&output));

        let output = steward(&db, &["stats", "--since", "1h"]).await?;
        assert_eq!(output.status.code(), Some(0), "{}", err(&output));
        let text = out(&output);
        assert!(text.contains("TOOL / METHOD"), "{text}");
        assert!(text.contains("manage_task (tool)"), "{backend:?}: {text}");
        assert!(text.contains("initialize (method)"), "{backend:?}: {text}");
        let output = steward(&db, &["stats", "--since", "1h", "--json"]).await?;
        let body: Value = serde_json::from_slice(&output.stdout)?;
        let kind = |name: &str| {
            body["tools"]
                .as_array()
                .and_then(|t| t.iter().find(|t| t["name"] == name))
                .map(|t| t["kind"].clone())
        };
        assert_eq!(kind("find_tasks"), Some(json!("tool")), "{body}");
        assert_eq!(kind("initialize"), Some(json!("method")), "{body}");
    }
    Ok(())
}
