//! A stdio upstream: one child process speaking MCP on its standard input/output, shared by
//! every client session (a stdio server has one session, its process). Supervised: when the
//! process ends it is started again, waiting longer after each quick failure (up to 30 s).
//!
//! What the process sends back is routed by what it is about: progress by the token Steward
//! gave the request; log lines and requests for the client (sampling, elicitation, roots) to the
//! client whose call is the latest in flight, since stdio carries no link from them to the
//! request they serve; resource updates to the subscribers; list changes to every client.

// Sampling, roots and logging are deprecated in rmcp (SEP-2577) but live in every session-era
// revision, so a gateway relays them.
#![allow(deprecated)]

use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rmcp::model::{
    CancelledNotification, CancelledNotificationParam, ClientCapabilities, ClientConfig,
    ClientJsonRpcMessage, CreateMessageRequestParams, CreateMessageResult, ElicitRequestParams,
    ElicitResult, Implementation, ListRootsResult, LoggingMessageNotificationParam,
    ProgressNotificationParam, ProgressToken, RequestId, ResourceUpdatedNotificationParam,
};
use rmcp::service::{NotificationContext, Peer, PeerRequestOptions, RequestContext, RoleClient};
use rmcp::transport::TokioChildProcess;
use rmcp::{ClientHandler, ErrorData, ServiceExt};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::error::UpstreamError;
use super::relay::{Audience, Relay};
use super::spec::{Secret, UpstreamName};
use super::status::{State, UpstreamStatus};
use super::unanswered::Unanswered;
use crate::sync::lock;

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
    calls: Arc<InFlight>,
}

/// The requests in flight, by the progress token Steward gave each, oldest first; and how many
/// of the process's notifications are being passed on.
#[derive(Default)]
struct InFlight(Mutex<Vec<(ProgressToken, Relay)>>, AtomicUsize);

impl InFlight {
    /// rmcp hands each notification to its own task, so one sent before the answer may still
    /// be on its way when the answer arrives: gives those a moment (at most 100 ms) to reach the
    /// client first, as they did at the upstream.
    async fn settle(&self) {
        for _ in 0..3 {
            tokio::task::yield_now().await;
        }
        for _ in 0..100 {
            if self.1.load(Ordering::Acquire) == 0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    fn by_token(&self, token: &ProgressToken) -> Option<Relay> {
        let calls = lock(&self.0);
        calls
            .iter()
            .find(|(t, _)| t == token)
            .map(|(_, r)| r.clone())
    }

    fn latest(&self) -> Option<Relay> {
        lock(&self.0).last().map(|(_, relay)| relay.clone())
    }
}

/// Tells the process to stop request `id`, and why; a failure is counted (`undelivered`).
async fn cancel(peer: &Peer<RoleClient>, status: &UpstreamStatus, id: RequestId, reason: &str) {
    let note = CancelledNotification::new(CancelledNotificationParam::new(
        Some(id),
        Some(reason.into()),
    ));
    if let Err(error) = peer.send_notification(note.into()).await {
        UpstreamStatus::count(&status.undelivered);
        tracing::warn!(%error, "could not pass a cancellation to the stdio upstream");
    }
}

/// Takes a request off [`InFlight`] however it ends.
struct Landed<'a>(&'a InFlight, ProgressToken);

impl Drop for Landed<'_> {
    fn drop(&mut self) {
        lock(&self.0.0).retain(|(token, _)| *token != self.1);
    }
}

impl StdioUpstream {
    /// Starts the process and keeps it running until `stop`.
    pub fn start(
        launch: Launch,
        status: Arc<UpstreamStatus>,
        audience: Arc<Audience>,
        stop: CancellationToken,
    ) -> Self {
        let (sender, peer) = watch::channel(None);
        let calls = Arc::new(InFlight::default());
        let handler = Handler {
            name: launch.name.clone(),
            calls: calls.clone(),
            audience,
        };
        tokio::spawn(supervise(launch, handler, status.clone(), sender, stop));
        StdioUpstream {
            peer,
            status,
            calls,
        }
    }

    /// `method` with `params`, its result; the client's progress, requests and cancellation
    /// are relayed through `relay`.
    pub async fn request(
        &self,
        method: &str,
        params: Value,
        relay: Option<&Relay>,
    ) -> Result<Value, UpstreamError> {
        let peer = self.peer().await?;
        let message = json!({"jsonrpc": "2.0", "id": 0, "method": method, "params": params});
        let request = match serde_json::from_value::<ClientJsonRpcMessage>(message) {
            Ok(ClientJsonRpcMessage::Request(request)) => request.request,
            Ok(_) | Err(_) => {
                return Err(UpstreamError::Protocol(format!(
                    "Steward cannot encode {method} for it"
                )));
            }
        };
        let handle = peer
            .send_request_with_option(request, PeerRequestOptions::no_options())
            .await
            .map_err(service_error)?;
        let (id, token) = (handle.id.clone(), handle.progress_token.clone());
        let _landed = relay.map(|relay| {
            lock(&self.calls.0).push((token.clone(), relay.clone()));
            Landed(&self.calls, token)
        });
        let cancelled = relay.map(|r| r.cancelled.clone()).unwrap_or_default();
        let (dropped, status, asked) = (peer.clone(), self.status.clone(), id.clone());
        let unanswered = Unanswered::new(move || async move {
            let reason = "Steward stopped waiting for the answer";
            cancel(&dropped, &status, asked, reason).await;
        });
        tokio::select! {
            answer = handle.await_response() => {
                unanswered.settled();
                if relay.is_some() {
                    self.calls.settle().await;
                }
                serde_json::to_value(answer.map_err(service_error)?)
                    .map_err(|e| UpstreamError::Protocol(e.to_string()))
            }
            _ = cancelled.cancelled() => {
                unanswered.settled();
                cancel(&peer, &self.status, id, "the client cancelled the request").await;
                Err(UpstreamError::Cancelled)
            }
        }
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
    handler: Handler,
    status: Arc<UpstreamStatus>,
    peer: watch::Sender<Option<Peer<RoleClient>>>,
    stop: CancellationToken,
) {
    let mut backoff = FIRST_BACKOFF;
    loop {
        let started = Instant::now();
        match run_once(&launch, handler.clone(), &status, &peer, &stop).await {
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
    handler: Handler,
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
    let service = match tokio::time::timeout(launch.timeout, handler.serve(transport)).await {
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

/// The process's client: what it sends Steward goes on to the clients (see the module's
/// documentation for who gets what).
#[derive(Clone)]
struct Handler {
    name: UpstreamName,
    calls: Arc<InFlight>,
    audience: Arc<Audience>,
}

impl Handler {
    async fn notify(&self, method: &str, params: Option<Value>) {
        let mut message = json!({"jsonrpc": "2.0", "method": method});
        if let Some(params) = params {
            message["params"] = params;
        }
        self.audience.notify(&self.name, None, message).await;
    }

    /// Asks the client of the latest call in flight, and reads its answer as `T`.
    async fn ask<T: DeserializeOwned>(
        &self,
        method: &str,
        params: impl serde::Serialize,
    ) -> Result<T, ErrorData> {
        let Some(relay) = self.calls.latest() else {
            return Err(ErrorData::invalid_request(
                format!(
                    "{method} outside a call: Steward relays it only to the client whose call it serves"
                ),
                None,
            ));
        };
        let request = json!({"jsonrpc": "2.0", "id": 0, "method": method, "params": params});
        let mut reply = relay.ask(&self.name, request).await;
        if let Some(error) = reply.get_mut("error").map(Value::take) {
            return Err(serde_json::from_value(error).unwrap_or_else(|e| {
                ErrorData::internal_error(format!("a malformed error: {e}"), None)
            }));
        }
        serde_json::from_value(reply["result"].take())
            .map_err(|e| ErrorData::internal_error(format!("the client's answer: {e}"), None))
    }
}

impl ClientHandler for Handler {
    fn get_info(&self) -> ClientConfig {
        // The process is shared by every client: it may ask for all of these, and a client that
        // did not declare one gets an error (see Relay::ask).
        let mut capabilities = ClientCapabilities::default();
        capabilities.sampling = Some(Default::default());
        capabilities.elicitation = Some(Default::default());
        capabilities.roots = Some(Default::default());
        ClientConfig::new(
            capabilities,
            Implementation::new("steward-gateway", env!("CARGO_PKG_VERSION")),
        )
    }

    async fn create_message(
        &self,
        params: CreateMessageRequestParams,
        _context: RequestContext<RoleClient>,
    ) -> Result<CreateMessageResult, ErrorData> {
        self.ask("sampling/createMessage", params).await
    }

    async fn list_roots(
        &self,
        _context: RequestContext<RoleClient>,
    ) -> Result<ListRootsResult, ErrorData> {
        self.ask("roots/list", json!({})).await
    }

    async fn create_elicitation(
        &self,
        request: ElicitRequestParams,
        _context: RequestContext<RoleClient>,
    ) -> Result<ElicitResult, ErrorData> {
        self.ask("elicitation/create", request).await
    }

    async fn on_progress(
        &self,
        params: ProgressNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
        if let Some(relay) = self.calls.by_token(&params.progress_token) {
            self.calls.1.fetch_add(1, Ordering::AcqRel);
            let message =
                json!({"jsonrpc": "2.0", "method": "notifications/progress", "params": params});
            relay.notify(&self.name, message).await;
            self.calls.1.fetch_sub(1, Ordering::AcqRel);
        }
    }

    async fn on_logging_message(
        &self,
        params: LoggingMessageNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
        let message =
            json!({"jsonrpc": "2.0", "method": "notifications/message", "params": params});
        match self.calls.latest() {
            Some(relay) => {
                self.calls.1.fetch_add(1, Ordering::AcqRel);
                relay.notify(&self.name, message).await;
                self.calls.1.fetch_sub(1, Ordering::AcqRel);
            }
            None => {
                self.audience.notify(&self.name, None, message).await;
            }
        }
    }

    async fn on_resource_updated(
        &self,
        params: ResourceUpdatedNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
        self.notify("notifications/resources/updated", Some(json!(params)))
            .await;
    }

    async fn on_resource_list_changed(&self, _context: NotificationContext<RoleClient>) {
        self.notify("notifications/resources/list_changed", None)
            .await;
    }

    async fn on_tool_list_changed(&self, _context: NotificationContext<RoleClient>) {
        self.notify("notifications/tools/list_changed", None).await;
    }

    async fn on_prompt_list_changed(&self, _context: NotificationContext<RoleClient>) {
        self.notify("notifications/prompts/list_changed", None)
            .await;
    }
}

fn service_error(error: rmcp::ServiceError) -> UpstreamError {
    match error {
        rmcp::ServiceError::McpError(error) => UpstreamError::Rejected(error),
        rmcp::ServiceError::Timeout { timeout } => UpstreamError::TimedOut(timeout),
        rmcp::ServiceError::TransportClosed | rmcp::ServiceError::TransportSend(_) => {
            UpstreamError::Down(error.to_string())
        }
        other => UpstreamError::Protocol(other.to_string()),
    }
}
