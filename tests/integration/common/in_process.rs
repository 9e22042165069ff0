//! Steward served inside the test process (`steward::server::serve_on` on port 0): no binary
//! to spawn and no stdout to parse, for every test in which no process has to die. Tests that
//! kill -9, send SIGTERM, restart, run replicas, read `/metrics` (one recorder per process) or
//! measure the server's memory use start the real binary instead ([`super::TestServer`]).

use anyhow::{Context, bail};
use clap::Parser;
use steward::cli::Cli;
use steward::config::{self, Resolved};
use steward::server::RunError;
use tokio::net::TcpListener;
use tokio::runtime::Runtime;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::TestDb;

/// A server on a runtime of its own, with worker threads as `steward serve` has: on the test's
/// (single-threaded) runtime the server would share one thread with the test's client.
/// Dropping it stops it at once; [`InProcess::stop`] stops it gracefully (in-flight requests,
/// the ledger flush) and waits.
pub struct InProcess {
    /// `http://127.0.0.1:PORT`
    pub base_url: String,
    shutdown: CancellationToken,
    task: Option<JoinHandle<Result<(), RunError>>>,
    runtime: Option<Runtime>,
}

impl InProcess {
    /// Serves `db` on a free port of 127.0.0.1.
    pub async fn start(db: &TestDb) -> anyhow::Result<InProcess> {
        InProcess::start_with(db, &[]).await
    }

    /// Like [`InProcess::start`], with `extra_args` appended to the `serve` command line, which
    /// is parsed and resolved exactly as `steward serve` does.
    pub async fn start_with(db: &TestDb, extra_args: &[&str]) -> anyhow::Result<InProcess> {
        // The ledger's journal and spill file default to the working directory for PostgreSQL,
        // which in-process is the repository: shared by every run, so one test's unflushed rows
        // would be replayed into the next test's database. Each server keeps its own.
        let journal = db.dir().join("ledger-journal").display().to_string();
        let spill = db.dir().join("ledger.spill").display().to_string();
        let mut args = vec!["steward", "serve", "--listen", "127.0.0.1:0"];
        args.extend(["--database", &db.url]);
        if !extra_args.contains(&"--ledger-journal") {
            args.extend(["--ledger-journal", &journal]);
        }
        if !extra_args.contains(&"--ledger-spill") {
            args.extend(["--ledger-spill", &spill]);
        }
        let cli = Cli::try_parse_from(args.iter().chain(extra_args))?;
        let Resolved::Serve(config) = config::resolve(cli)?.0 else {
            bail!("`steward serve` did not resolve to a server configuration");
        };
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let base_url = format!("http://{}", listener.local_addr()?);
        let listener = {
            // Registers the socket with the server's runtime, not the test's.
            let _server_runtime = runtime.enter();
            TcpListener::from_std(listener)?
        };
        let shutdown = CancellationToken::new();
        let task = runtime.spawn(steward::server::serve_on(
            listener,
            config,
            shutdown.clone(),
        ));
        Ok(InProcess {
            base_url,
            shutdown,
            task: Some(task),
            runtime: Some(runtime),
        })
    }

    /// The MCP endpoint.
    pub fn mcp_url(&self) -> String {
        format!("{}/mcp", self.base_url)
    }

    /// Stops gracefully and returns how the server ended.
    pub async fn shutdown(mut self) -> anyhow::Result<()> {
        self.shutdown.cancel();
        let task = self.task.take().context("the server was already stopped")?;
        task.await.context("the server task panicked")??;
        Ok(())
    }

    /// Stops gracefully; a failure is printed, not returned.
    pub async fn stop(self) {
        if let Err(e) = self.shutdown().await {
            eprintln!("warning: {e:#}");
        }
    }
}

impl Drop for InProcess {
    fn drop(&mut self) {
        self.shutdown.cancel();
        // A runtime may not be dropped (which blocks) inside the test's async context.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}
