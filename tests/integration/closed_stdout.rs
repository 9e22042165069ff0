//! A reader that stops reading is not a crash. A command whose stdout pipe is closed
//! (`steward … | head` once `head` has its lines) exits 0 and adds nothing to stderr; another
//! failed write to stdout is an error like any other (exit 1); a closed stderr pipe is no
//! panic; `serve` with its stdout closed keeps serving and stops on SIGTERM.

use std::process::{Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, bail, ensure};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;

use crate::common::{self, TestDb, backends};

/// How long a command or a server's start or stop may take.
const PATIENCE: Duration = Duration::from_secs(30);

/// `steward ARGS --database URL`, untouched by the caller's `STEWARD_*` settings, stdin empty,
/// stderr captured.
fn steward(db: &TestDb, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_steward"));
    command
        .args(args)
        .args(["--database", &db.url])
        .current_dir(db.dir())
        .env_remove("STEWARD_CONFIG")
        .env_remove("STEWARD_DATABASE_URL")
        .env_remove("STEWARD_LOG")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    command
}

/// Waits for `child` to exit, with what it wrote to the pipes still open.
async fn finish(child: Child, args: &[&str]) -> anyhow::Result<Output> {
    let output = tokio::time::timeout(PATIENCE, child.wait_with_output())
        .await
        .with_context(|| format!("steward {args:?} did not exit within {PATIENCE:?}"))??;
    eprintln!(
        "[steward {}] {}\nstderr: {}",
        args.join(" "),
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(output)
}

/// `steward ARGS` whose stdout pipe its reader closed before the command wrote a byte.
async fn with_reader_gone(db: &TestDb, args: &[&str]) -> anyhow::Result<Output> {
    let mut child = steward(db, args).stdout(Stdio::piped()).spawn()?;
    drop(child.stdout.take().context("no stdout pipe")?);
    finish(child, args).await
}

/// A database with a project in it, so every listing below has rows to print.
async fn board(db: &TestDb) -> anyhow::Result<()> {
    let store = common::open_store(db).await?;
    store
        .create_project(&steward::store::projects::NewProject {
            title: "Piped".into(),
            description: String::new(),
            github_repo: None,
        })
        .await?;
    store.close().await;
    Ok(())
}

const LISTINGS: [&[&str]; 4] = [
    &["pricing", "list"],
    &["pricing", "list", "--json"],
    &["projects", "list"],
    &["tasks", "list", "--json"],
];

#[tokio::test]
async fn a_command_whose_reader_stopped_reading_exits_quietly() -> anyhow::Result<()> {
    for backend in backends() {
        let db = TestDb::new(backend).await?;
        board(&db).await?;
        for args in LISTINGS {
            // What the command says on stderr when its output is read to the end.
            let read = steward(&db, args).stdout(Stdio::piped()).spawn()?;
            let read = finish(read, args).await?;
            ensure!(read.status.success(), "{args:?} failed on {backend:?}");
            ensure!(!read.stdout.is_empty(), "{args:?} printed nothing");

            // The reader closes its end before the command writes a byte.
            let closed = with_reader_gone(&db, args).await?;
            let stderr = String::from_utf8_lossy(&closed.stderr);
            ensure!(
                closed.status.code() == Some(0),
                "{args:?} on {backend:?} with its reader gone: {}\n{stderr}",
                closed.status
            );
            ensure!(!stderr.contains("panicked"), "{args:?}: {stderr}");
            ensure!(
                closed.stderr == read.stderr,
                "{args:?} on {backend:?} said more with its reader gone:\n{stderr}"
            );
        }
    }
    Ok(())
}

/// A stderr whose reader left (`steward … 2>&1 | head`, once `head` has its lines) is no
/// crash either: the command does its work and exits as it would have, 0 or 1, never with a
/// panic's 101. (Listing commands name their database on stderr before anything else.)
#[tokio::test]
async fn a_command_whose_stderr_reader_left_does_not_panic() -> anyhow::Result<()> {
    let cases: [(&[&str], i32); 2] = [
        (&["projects", "list"], 0),
        (&["projects", "show", "no-such-project"], 1),
    ];
    for backend in backends() {
        let db = TestDb::new(backend).await?;
        board(&db).await?;
        for (args, code) in cases {
            let mut child = steward(&db, args).stdout(Stdio::piped()).spawn()?;
            drop(child.stderr.take().context("no stderr pipe")?);
            let output = finish(child, args).await?;
            ensure!(
                output.status.code() == Some(code),
                "{args:?} on {backend:?} with its stderr reader gone: {} (expected exit {code})",
                output.status
            );
            if code == 0 {
                let listed = String::from_utf8_lossy(&output.stdout);
                ensure!(listed.contains("Piped"), "{args:?} printed: {listed}");
            }
        }
    }
    Ok(())
}

/// A stdout that cannot take the text (a full disk: Linux's /dev/full) is a failure, said.
#[cfg(target_os = "linux")]
#[tokio::test]
async fn a_full_stdout_is_an_error_not_a_panic() -> anyhow::Result<()> {
    for backend in backends() {
        let db = TestDb::new(backend).await?;
        board(&db).await?;
        for args in LISTINGS {
            let full = std::fs::OpenOptions::new().write(true).open("/dev/full")?;
            let child = steward(&db, args).stdout(full).spawn()?;
            let output = finish(child, args).await?;
            let stderr = String::from_utf8_lossy(&output.stderr);
            ensure!(
                output.status.code() == Some(1),
                "{args:?} on {backend:?} into /dev/full: {}\n{stderr}",
                output.status
            );
            ensure!(
                stderr.contains("steward: cannot write to standard output: No space left"),
                "{args:?}: {stderr}"
            );
            ensure!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        }
    }
    Ok(())
}

#[tokio::test]
async fn serve_keeps_serving_with_its_stdout_closed() -> anyhow::Result<()> {
    for backend in backends() {
        let db = TestDb::new(backend).await?;
        let args = ["serve", "--listen", "127.0.0.1:0", "--log-format", "json"];
        let mut server = steward(&db, &args).stdout(Stdio::piped()).spawn()?;
        // Closed before the banner is printed: the server has not opened its database yet.
        drop(server.stdout.take().context("no stdout pipe")?);
        let (stderr, mut lines) = collect(&mut server)?;

        // The banner is gone with stdout; the log says where the server listens.
        let addr = tokio::time::timeout(PATIENCE, listening_at(&mut lines))
            .await
            .with_context(|| format!("no address within {PATIENCE:?} on {backend:?}"))??;
        let health = common::http_client()
            .get(format!("http://{addr}/health"))
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .with_context(|| format!("/health on {backend:?}: {}", stderr.text()))?;
        ensure!(
            health.status() == reqwest::StatusCode::OK,
            "/health on {backend:?} answered {}",
            health.status()
        );

        let pid = server.id().context("the server has no pid")?;
        let kill = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()?;
        ensure!(kill.success(), "kill -TERM {pid}: {kill}");
        let status = tokio::time::timeout(Duration::from_secs(10), server.wait())
            .await
            .with_context(|| {
                format!(
                    "no exit within 10 s of SIGTERM on {backend:?}: {}",
                    stderr.text()
                )
            })??;
        ensure!(
            status.success(),
            "serve on {backend:?} stopped with {status}: {}",
            stderr.text()
        );
        ensure!(
            !stderr.text().contains("panicked"),
            "serve on {backend:?}: {}",
            stderr.text()
        );
    }
    Ok(())
}

/// Every line a child writes to stderr, kept.
#[derive(Clone, Default)]
struct Lines(Arc<Mutex<Vec<String>>>);

impl Lines {
    fn text(&self) -> String {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).join("\n")
    }
}

/// Reads `child`'s stderr to its end: every line kept, and each sent on as it comes.
fn collect(child: &mut Child) -> anyhow::Result<(Lines, mpsc::UnboundedReceiver<String>)> {
    let stderr = child.stderr.take().context("no stderr pipe")?;
    let lines = Lines::default();
    let (send, receive) = mpsc::unbounded_channel();
    let keep = lines.clone();
    tokio::spawn(async move {
        let mut send = Some(send);
        let mut reader = BufReader::new(stderr).lines();
        while let Ok(Some(line)) = reader.next_line().await {
            eprintln!("[steward stderr] {line}");
            keep.0
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(line.clone());
            // Once the test stops listening, lines are only kept.
            if send.as_ref().is_some_and(|to| to.send(line).is_err()) {
                send = None;
            }
        }
    });
    Ok((lines, receive))
}

/// The address in the JSON log line `serve` writes once it listens.
async fn listening_at(lines: &mut mpsc::UnboundedReceiver<String>) -> anyhow::Result<String> {
    while let Some(line) = lines.recv().await {
        let Ok(entry) = serde_json::from_str::<Value>(&line) else {
            continue;
        };
        let fields = &entry["fields"];
        if fields["message"] == "Steward is serving MCP at /mcp"
            && let Some(addr) = fields["addr"].as_str()
        {
            return Ok(addr.to_string());
        }
    }
    bail!("stderr ended before the server said where it listens")
}

/// A new key is shown once, on stdout. When it cannot be (its reader left, a full disk), the
/// key was seen by no one: `keys create` fails saying so, and the key is revoked rather than
/// left valid with no holder.
#[tokio::test]
async fn a_key_that_could_not_be_shown_is_revoked() -> anyhow::Result<()> {
    for backend in backends() {
        let db = TestDb::new(backend).await?;
        for (name, json) in [("unseen-text", false), ("unseen-json", true)] {
            let args: &[&str] = if json {
                &["keys", "create", name, "--json"]
            } else {
                &["keys", "create", name]
            };
            let output = with_reader_gone(&db, args).await?;
            let stderr = String::from_utf8_lossy(&output.stderr);
            ensure!(
                output.status.code() == Some(1),
                "{args:?} on {backend:?} with its reader gone: {}\n{stderr}",
                output.status
            );
            ensure!(
                stderr.contains("could not be shown") && stderr.contains("revoked"),
                "{args:?} on {backend:?} should say the key was revoked:\n{stderr}"
            );
        }
        let list = ["keys", "list", "--json"];
        let listed = finish(steward(&db, &list).stdout(Stdio::piped()).spawn()?, &list).await?;
        let keys: Value = serde_json::from_slice(&listed.stdout)?;
        for name in ["unseen-text", "unseen-json"] {
            let key = keys["keys"]
                .as_array()
                .and_then(|all| all.iter().find(|k| k["name"] == name))
                .with_context(|| format!("{name} not listed: {keys}"))?;
            ensure!(
                !key["revoked_at"].is_null(),
                "{name} on {backend:?} is still valid: {key}"
            );
        }
    }
    Ok(())
}
