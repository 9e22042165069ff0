//! A stdio upstream: one child process speaking MCP on its standard input/output, shared by
//! every client session (a stdio server has one session, its process). Supervised: when the
//! process ends it is started again, waiting longer after each quick failure (up to 30 s).
//!
//! What the process sends back is routed by what it is about: progress by the token Steward
//! gave the request; log lines and requests for the client (sampling, elicitation, roots) to the
//! client whose call is the latest in flight, since stdio carries no link from them to the
//! request they serve; resource updates to the subscribers; list changes to every client.
//!
//! A 2026-07-28 client cannot be sent requests: when the process asks for sampling, elicitation
//! or roots while serving such a client's call, the call is parked ([`super::parked`]) and the
//! client answered with an `InputRequiredResult`; its retry with the answers and the
//! `requestState` hands them to the process's waiting request and waits on for the result.

// Sampling, roots and logging are deprecated in rmcp (SEP-2577) but live in every session-era
// revision, so a gateway relays them.
#![allow(deprecated)]

use std::pin::Pin;
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rmcp::model::{
    CancelledNotification, CancelledNotificationParam, ClientCapabilities, ClientConfig,
    ClientJsonRpcMessage, CreateMessageRequestParams, CreateMessageResult, ElicitRequestParams,
    ElicitResult, Implementation, ListRootsResult, LoggingMessageNotificationParam,
    ProgressNotificationParam, ProgressToken, RequestId, ResourceUpdatedNotificationParam,
    ServerResult,
};
use rmcp::service::{NotificationContext, Peer, PeerRequestOptions, RequestContext, RoleClient};
use rmcp::transport::TokioChildProcess;
use rmcp::{ClientHandler, ErrorData, ServiceExt};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::{Mutex as AsyncMutex, MutexGuard as AsyncMutexGuard, mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;

use super::error::UpstreamError;
use super::parked::{self, Asked, Bound, Capacity, Shelf};
use super::relay::{self, Audience, Relay};
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
    /// Calls waiting for a 2026-07-28 client's answers to the process's requests.
    parked: Shelf<Parked>,
}

/// Where the process's request for a 2026-07-28 client goes: to the call it serves, which
/// parks; the answer comes back on the channel the request carries.
type Bridge = mpsc::UnboundedSender<Asked<Answering>>;
type Answering = oneshot::Sender<Result<Value, ErrorData>>;

/// The requests in flight, by the progress token Steward gave each, oldest first, with the
/// bridge of a 2026-07-28 client's; how many of the process's notifications are being passed
/// on; and the gate a call holds from being sent until it is on the list (see
/// [`InFlight::registering`]).
#[derive(Default)]
struct InFlight(
    Mutex<Vec<(ProgressToken, Relay, Option<Bridge>)>>,
    AtomicUsize,
    AsyncMutex<()>,
);

/// A call at the process: its answer to come, its ids, and, for a 2026-07-28 client, the
/// process's requests for the client on their way to it.
struct Running {
    response: Pin<Box<dyn Future<Output = Result<ServerResult, rmcp::ServiceError>> + Send>>,
    peer: Peer<RoleClient>,
    id: RequestId,
    token: ProgressToken,
    bridge: Bridge,
    asks: mpsc::UnboundedReceiver<Asked<Answering>>,
}

type Parked = parked::Parked<Running, Answering>;

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

    /// Held from sending a call to the process (or answering its requests) until the call is
    /// on the list: rmcp handles what the process sends on tasks of its own, which can run
    /// before `send_request` returns, so without the gate the process's first request or
    /// progress about a call could find no call in flight.
    async fn registering(&self) -> AsyncMutexGuard<'_, ()> {
        self.2.lock().await
    }

    /// Waits until no call is between being sent and being listed.
    async fn registered(&self) {
        drop(self.2.lock().await);
    }

    fn by_token(&self, token: &ProgressToken) -> Option<Relay> {
        let calls = lock(&self.0);
        calls
            .iter()
            .find(|(t, _, _)| t == token)
            .map(|(_, r, _)| r.clone())
    }

    fn latest(&self) -> Option<(Relay, Option<Bridge>)> {
        lock(&self.0)
            .last()
            .map(|(_, relay, bridge)| (relay.clone(), bridge.clone()))
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
        lock(&self.0.0).retain(|(token, _, _)| *token != self.1);
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
            parked: Shelf::new(Duration::from_secs(60), Arc::default()),
        }
    }

    /// A call parked for a 2026-07-28 client's input is given up after `ttl`; how many may be
    /// parked is bounded by `capacity`, shared with the other upstreams.
    pub fn parking_for(mut self, ttl: Duration, capacity: Arc<Capacity>) -> Self {
        self.parked = Shelf::new(ttl, capacity);
        self
    }

    /// `method` with `params`, its result; the client's progress, requests and cancellation
    /// are relayed through `relay`. A 2026-07-28 client's call (`bridge`) is asked the
    /// process's requests in an `InputRequiredResult`, and its retry resumes the call.
    pub async fn request(
        &self,
        method: &str,
        params: Value,
        relay: Option<&Relay>,
        bridge: Option<Bound<'_>>,
    ) -> Result<Value, UpstreamError> {
        if let Some(bound) = &bridge
            && let Some(state) = parked::state_of(&params)
        {
            return self.resume(bound, state, &params, relay).await;
        }
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
        let gate = self.calls.registering().await;
        let handle = peer
            .send_request_with_option(request, PeerRequestOptions::no_options())
            .await
            .map_err(service_error)?;
        let (id, token) = (handle.id.clone(), handle.progress_token.clone());
        let (bridge_to, asks) = mpsc::unbounded_channel();
        let running = Running {
            response: Box::pin(handle.await_response()),
            peer,
            id,
            token,
            bridge: bridge_to,
            asks,
        };
        self.drive(running, relay, bridge.as_ref(), gate).await
    }

    /// Waits for the call's answer, passing on what the process sends meanwhile; a
    /// 2026-07-28 client's call (`bridge`) parks at the process's first request for it.
    async fn drive(
        &self,
        mut running: Running,
        relay: Option<&Relay>,
        bridge: Option<&Bound<'_>>,
        gate: AsyncMutexGuard<'_, ()>,
    ) -> Result<Value, UpstreamError> {
        let token = running.token.clone();
        let asker = bridge.map(|_| running.bridge.clone());
        let _landed = relay.map(|relay| {
            lock(&self.calls.0).push((token.clone(), relay.clone(), asker));
            Landed(&self.calls, token)
        });
        drop(gate);
        let cancelled = relay.map(|r| r.cancelled.clone()).unwrap_or_default();
        let (dropped, status, asked) = (
            running.peer.clone(),
            self.status.clone(),
            running.id.clone(),
        );
        let unanswered = Unanswered::new(move || async move {
            let reason = "Steward stopped waiting for the answer";
            cancel(&dropped, &status, asked, reason).await;
        });
        let asks = bridge.map(|bridge| (bridge, &mut running.asks));
        tokio::select! {
            answer = &mut running.response => {
                unanswered.settled();
                if relay.is_some() {
                    self.calls.settle().await;
                }
                serde_json::to_value(answer.map_err(service_error)?)
                    .map_err(|e| UpstreamError::Protocol(e.to_string()))
            }
            Some((first, bridge)) = next_ask(asks) => {
                unanswered.settled();
                let mut asked = vec![first];
                // Requests the process sent together are asked together.
                while let Ok(more) = running.asks.try_recv() {
                    asked.push(more);
                }
                self.park(Parked { call: running, asked }, bridge).await
            }
            _ = cancelled.cancelled() => {
                unanswered.settled();
                let reason = "the client cancelled the request";
                cancel(&running.peer, &self.status, running.id, reason).await;
                Err(UpstreamError::Cancelled)
            }
        }
    }

    /// Parks the call and returns the `InputRequiredResult` that asks the client. A call
    /// nobody resumes in time is given up: counted, and the process told to stop it; so is
    /// one past the shelf's capacity, at once, and the client told why.
    async fn park(&self, parked: Parked, bridge: &Bound<'_>) -> Result<Value, UpstreamError> {
        let status = self.status.clone();
        let ttl = self.parked.ttl();
        let give_up = move |parked: Parked| async move {
            UpstreamStatus::count(&status.abandoned);
            tracing::info!(
                ?ttl,
                "a 2026-07-28 client did not answer the stdio upstream's request in time: the call is given up and the process told to stop"
            );
            let Running { peer, id, .. } = parked.call;
            cancel(
                &peer,
                &status,
                id,
                "the client did not answer the request in time",
            )
            .await;
        };
        match self.parked.ask(bridge, parked, give_up) {
            Ok(asked) => Ok(asked),
            Err((parked, error)) => {
                UpstreamStatus::count(&self.status.parking_refused);
                let Running { peer, id, .. } = parked.call;
                let reason = "Steward cannot hold more calls for the client's answers";
                cancel(&peer, &self.status, id, reason).await;
                Err(UpstreamError::Rejected(error))
            }
        }
    }

    /// Hands the client's answers (in its retry's `params`) to the process's requests the call
    /// `state` parked, and waits on for its result; asks again for what was left unanswered.
    async fn resume(
        &self,
        bridge: &Bound<'_>,
        state: &str,
        params: &Value,
        relay: Option<&Relay>,
    ) -> Result<Value, UpstreamError> {
        let parked = self
            .parked
            .resume(state, bridge)
            .map_err(UpstreamError::Rejected)?;
        let gate = self.calls.registering().await;
        let (answered, unanswered) = Asked::answered(parked.asked, params);
        for (asked, answer) in answered {
            // The process's request is gone only if its call ended: nothing to answer then.
            let _gone = asked.reply_to.send(Ok(answer));
        }
        if !unanswered.is_empty() {
            drop(gate);
            let parked = Parked {
                call: parked.call,
                asked: unanswered,
            };
            return self.park(parked, bridge).await;
        }
        self.drive(parked.call, relay, Some(bridge), gate).await
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
        id: RequestId,
        method: &str,
        params: impl serde::Serialize,
    ) -> Result<T, ErrorData> {
        self.calls.registered().await;
        let Some((relay, bridge)) = self.calls.latest() else {
            return Err(ErrorData::invalid_request(
                format!(
                    "{method} outside a call: Steward relays it only to the client whose call it serves"
                ),
                None,
            ));
        };
        let request = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        let mut reply = match bridge {
            Some(bridge) => ask_later(&relay, &bridge, request).await,
            None => relay.ask(&self.name, request).await,
        };
        if let Some(error) = reply.get_mut("error").map(Value::take) {
            return Err(serde_json::from_value(error).unwrap_or_else(|e| {
                ErrorData::internal_error(format!("a malformed error: {e}"), None)
            }));
        }
        serde_json::from_value(reply["result"].take())
            .map_err(|e| ErrorData::internal_error(format!("the client's answer: {e}"), None))
    }
}

/// The process's next request for a 2026-07-28 client's call, with the call's bridge; `None`
/// at once for another client's call (it is asked directly).
async fn next_ask<'b, 'a>(
    asks: Option<(
        &'b Bound<'a>,
        &mut mpsc::UnboundedReceiver<Asked<Answering>>,
    )>,
) -> Option<(Asked<Answering>, &'b Bound<'a>)> {
    let (bridge, asks) = asks?;
    Some((asks.recv().await?, bridge))
}

/// Asks a 2026-07-28 client through its call's `bridge`: Steward answers what it can itself
/// (a ping, a capability the client did not declare); the rest reaches the call, which parks,
/// and the answer comes with the client's retry. The JSON-RPC reply for the process.
async fn ask_later(relay: &Relay, bridge: &Bridge, request: Value) -> Value {
    if let Some(reply) = relay.answer_here(&request) {
        return reply;
    }
    let id = request.get("id").cloned().unwrap_or(Value::Null);
    let params = request.get("params").cloned().unwrap_or_else(|| json!({}));
    let (answer, answered) = oneshot::channel();
    let asked = match Asked::new(&id, &request["method"], params, answer) {
        Ok(asked) => asked,
        Err(error) => return relay::reply(id, Err(error)),
    };
    let outcome = match bridge.send(asked) {
        Ok(()) => answered.await.unwrap_or_else(|_| {
            Err(ErrorData::internal_error(
                "the client did not answer: Steward gave up the call this request serves",
                None,
            ))
        }),
        Err(_) => Err(ErrorData::internal_error(
            "the call this request serves has ended",
            None,
        )),
    };
    relay::reply(id, outcome)
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
        context: RequestContext<RoleClient>,
    ) -> Result<CreateMessageResult, ErrorData> {
        self.ask(context.id, "sampling/createMessage", params).await
    }

    async fn list_roots(
        &self,
        context: RequestContext<RoleClient>,
    ) -> Result<ListRootsResult, ErrorData> {
        self.ask(context.id, "roots/list", json!({})).await
    }

    async fn create_elicitation(
        &self,
        request: ElicitRequestParams,
        context: RequestContext<RoleClient>,
    ) -> Result<ElicitResult, ErrorData> {
        self.ask(context.id, "elicitation/create", request).await
    }

    async fn on_progress(
        &self,
        params: ProgressNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
        // Counted while it waits for the gate too, so the call's answer waits for it.
        self.calls.1.fetch_add(1, Ordering::AcqRel);
        self.calls.registered().await;
        if let Some(relay) = self.calls.by_token(&params.progress_token) {
            let message =
                json!({"jsonrpc": "2.0", "method": "notifications/progress", "params": params});
            relay.notify(&self.name, message).await;
        }
        self.calls.1.fetch_sub(1, Ordering::AcqRel);
    }

    async fn on_logging_message(
        &self,
        params: LoggingMessageNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
        let message =
            json!({"jsonrpc": "2.0", "method": "notifications/message", "params": params});
        self.calls.1.fetch_add(1, Ordering::AcqRel);
        self.calls.registered().await;
        match self.calls.latest() {
            Some((relay, _)) => relay.notify(&self.name, message).await,
            None => {
                self.audience.notify(&self.name, None, message).await;
            }
        }
        self.calls.1.fetch_sub(1, Ordering::AcqRel);
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
