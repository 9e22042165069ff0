//! The server under check: a running one at `--url`, or one the check spawns itself
//! (`--spawn`) on a database of its own with short lifecycle timeouts.

use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::stdout::errln;

/// Lifecycle timings of a spawned server, short so phase 7 runs in seconds.
pub const SPAWN_IDLE_AFTER: &str = "1s";
pub const SPAWN_SESSION_TIMEOUT_SECS: u64 = 8;

pub struct Spawned {
    /// Resolved once: a binary rebuilt while the check runs must not break the restart.
    exe: std::path::PathBuf,
    child: Child,
    port: u16,
    database: String,
    extra: Vec<String>,
}

impl Spawned {
    /// Starts `steward serve` on a free loopback port and waits until it listens.
    pub async fn start(database: &str, extra: &[String]) -> anyhow::Result<Spawned> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let exe = std::env::current_exe().context("cannot find the steward binary to spawn")?;
        let child = launch(&exe, port, database, extra).await?;
        Ok(Spawned {
            exe,
            child,
            port,
            database: database.to_string(),
            extra: extra.to_vec(),
        })
    }

    pub fn mcp_url(&self) -> String {
        format!("http://127.0.0.1:{}/mcp", self.port)
    }

    /// `kill -9`, then the same server again on the same port and database.
    pub async fn crash_and_restart(&mut self) -> anyhow::Result<()> {
        self.child.start_kill()?;
        self.child.wait().await?;
        self.child = launch(&self.exe, self.port, &self.database, &self.extra).await?;
        Ok(())
    }

    pub async fn stop(mut self) {
        let Some(pid) = self.child.id() else { return };
        // SIGTERM for a graceful stop; the child is killed on drop if it lingers.
        if let Err(error) = std::process::Command::new("kill")
            .arg("-TERM")
            .arg(pid.to_string())
            .status()
        {
            errln!("could not stop the spawned server: {error}");
        }
        if tokio::time::timeout(Duration::from_secs(10), self.child.wait())
            .await
            .is_err()
        {
            errln!("the spawned server did not stop within 10 s; killing it");
        }
    }
}

async fn launch(
    exe: &std::path::Path,
    port: u16,
    database: &str,
    extra: &[String],
) -> anyhow::Result<Child> {
    let mut child = Command::new(exe)
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--database",
            database,
        ])
        .args([
            "--idle-after",
            SPAWN_IDLE_AFTER,
            "--session-timeout",
            &format!("{SPAWN_SESSION_TIMEOUT_SECS}s"),
        ])
        .args(["--cleanup-interval", "500ms", "--revocation-poll", "500ms"])
        .args(extra)
        .env_remove("STEWARD_CONFIG")
        .env("STEWARD_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .context("cannot spawn steward serve")?;
    let stdout = child
        .stdout
        .take()
        .context("no stdout from steward serve")?;
    let mut lines = BufReader::new(stdout).lines();
    let ready = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = lines.next_line().await? {
            if line.contains("listening on http://") {
                return Ok::<bool, std::io::Error>(true);
            }
        }
        Ok(false)
    })
    .await;
    match ready {
        Ok(Ok(true)) => Ok(child),
        _ => {
            let status = child.try_wait().ok().flatten();
            bail!(
                "the spawned server did not start (exit status: {status:?}); see its messages above"
            )
        }
    }
}

/// Runs a user's restart command and waits until `/health` answers again.
pub async fn run_restart_cmd(command: &str, base_url: &str) -> anyhow::Result<()> {
    let status = Command::new("sh").arg("-c").arg(command).status().await?;
    if !status.success() {
        bail!("the restart command failed: {status}");
    }
    let http = crate::tls::client_builder()
        .build()
        .unwrap_or_else(|_| reqwest::Client::new());
    for _ in 0..60 {
        if http.get(format!("{base_url}/health")).send().await.is_ok() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    bail!("the server did not answer /health within 30 s of the restart command")
}
