//! A stdio upstream: one child process speaking MCP on its standard input/output, shared by
//! every client session (a stdio server has one session, its process). Supervised: when the
//! process ends it is started again, waiting longer after each quick failure (up to 30 s).

use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rmcp::ServiceExt;
use rmcp::model::{ClientCapabilities, ClientConfig, Implementation};
use rmcp::service::{Peer, RoleClient};
use rmcp::transport::TokioChildProcess;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::error::UpstreamError;
use super::spec::{Secret, UpstreamName};
use super::status::{State, UpstreamStatus};

/// The least time a process is given to start and answer `initialize`.
pub const MIN_START_TIMEOUT: Duration = Duration::from_secs(30);
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// A process that ran this long before it ended is started again without waiting long.
const HEALTHY_RUN: Duration = Duration::from_secs(30);

/// What starts the process.
#[derive(Clone)]
pub struct Launch {
    pub name: UpstreamName,
    pub command: String,
    pub args: Vec<String>,
    pub env: Vec<(String, Secret)>,
    /// How long its `initialize` may take.
    pub timeout: Duration,
}

pub struct StdioUpstream {
    peer: watch::Receiver<Option<Peer<RoleClient>>>,
    status: Arc<UpstreamStatus>,
}

impl StdioUpstream {
    /// Starts the process and keeps it running until `stop`.
    pub fn start(launch: Launch, status: Arc<UpstreamStatus>, stop: CancellationToken) -> Self {
        let (sender, peer) = watch::channel(None);
        tokio::spawn(supervise(launch, status.clone(), sender, stop));
        StdioUpstream { peer, status }
    }

    /// The running process's MCP peer, or why there is none. While the process starts for the
    /// first time this waits for it (the caller's timeout bounds the wait); once it has failed,
    /// the answer comes at once.
    pub async fn peer(&self) -> Result<Peer<RoleClient>, UpstreamError> {
        if let Some(peer) = self.peer.borrow().clone() {
            return Ok(peer);
        }
        let (state, _, cause) = self.status.state();
        if state != State::Unknown {
            return Err(UpstreamError::Down(
                cause.unwrap_or_else(|| "it is starting again".into()),
            ));
        }
        let mut started = self.peer.clone();
        let peer = started
            .wait_for(Option::is_some)
            .await
            .map_err(|_| UpstreamError::Down("Steward is stopping".into()))?;
        peer.clone()
            .ok_or_else(|| UpstreamError::Down("it is starting".into()))
    }
}

async fn supervise(
    launch: Launch,
    status: Arc<UpstreamStatus>,
    peer: watch::Sender<Option<Peer<RoleClient>>>,
    stop: CancellationToken,
) {
    let mut backoff = FIRST_BACKOFF;
    loop {
        let started = Instant::now();
        match run_once(&launch, &status, &peer, &stop).await {
            Ok(None) => return,
            Ok(Some(ended)) => {
                tracing::warn!(upstream = %launch.name, %ended, "the stdio upstream's process ended; starting it again");
                status.down(ended);
            }
            Err(error) => {
                tracing::warn!(upstream = %launch.name, %error, ?backoff, "cannot start the stdio upstream; trying again");
                status.down(error);
            }
        }
        if started.elapsed() >= HEALTHY_RUN {
            backoff = FIRST_BACKOFF;
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
        UpstreamStatus::count(&status.restarts);
    }
}

/// Runs the process until it ends (`Some(why)`) or Steward stops (`None`).
async fn run_once(
    launch: &Launch,
    status: &UpstreamStatus,
    peer: &watch::Sender<Option<Peer<RoleClient>>>,
    stop: &CancellationToken,
) -> Result<Option<String>, String> {
    let mut command = tokio::process::Command::new(&launch.command);
    command.args(&launch.args);
    for (key, value) in &launch.env {
        command.env(key, value.expose());
    }
    let (transport, stderr) = TokioChildProcess::builder(command)
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", launch.command))?;
    if let Some(stderr) = stderr {
        let name = launch.name.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                tracing::debug!(upstream = %name, "{line}");
            }
        });
    }
    let info = ClientConfig::new(
        ClientCapabilities::default(),
        Implementation::new("steward-gateway", env!("CARGO_PKG_VERSION")),
    );
    let service = match tokio::time::timeout(launch.timeout, info.serve(transport)).await {
        Ok(Ok(service)) => service,
        Ok(Err(error)) => return Err(format!("its initialize failed: {error}")),
        Err(_) => {
            return Err(format!(
                "it did not answer initialize within {:?}",
                launch.timeout
            ));
        }
    };
    status.up();
    peer.send_replace(Some(service.peer().clone()));
    let cancel = service.cancellation_token();
    let ended = tokio::select! {
        ended = service.waiting() => Some(match ended {
            Ok(reason) => format!("its process ended ({reason:?})"),
            Err(error) => format!("its process ended: {error}"),
        }),
        _ = stop.cancelled() => {
            cancel.cancel();
            None
        }
    };
    peer.send_replace(None);
    Ok(ended)
}
