//! Both directions: what an upstream sends the client while it serves the client's request
//! (progress, log lines, requests for sampling, elicitation or roots) and what it sends between
//! requests (a subscribed resource changed, a list changed) reaches that client's session, with
//! its progress token and resource URIs put back into the form the client knows; the client's
//! answers go back to the upstream. The client's cancellation travels the other way (see
//! [`Relay::cancelled`]).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use rmcp::model::{ClientCapabilities, ErrorCode, ProgressToken, ServerJsonRpcMessage};
use rmcp::service::{Peer, RequestContext};
use rmcp::{ErrorData, RoleServer, ServiceError};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::spec::UpstreamName;
use crate::sync::lock;

/// The client side of one proxied request.
#[derive(Clone)]
pub struct Relay {
    peer: Peer<RoleServer>,
    /// The client's own progress token, when it asked for progress.
    progress: Option<ProgressToken>,
    declared: Declared,
    /// Cancelled when the client cancels its request.
    pub cancelled: CancellationToken,
    /// The last progress value passed on, held while one is being sent. The spec requires
    /// progress to increase; over stdio rmcp hands each incoming notification to a task of
    /// its own, so an upstream's in-order progress can reach here out of order.
    last_progress: Arc<tokio::sync::Mutex<Option<f64>>>,
}

/// Which of the capabilities whose requests Steward relays the client declared.
#[derive(Clone, Copy, Default)]
struct Declared {
    sampling: bool,
    elicitation: bool,
    roots: bool,
}

impl Declared {
    fn of(capabilities: &ClientCapabilities) -> Self {
        Declared {
            sampling: capabilities.sampling.is_some(),
            elicitation: capabilities.elicitation.is_some(),
            roots: capabilities.roots.is_some(),
        }
    }
}

impl Relay {
    pub fn of(context: &RequestContext<RoleServer>) -> Self {
        Relay {
            peer: context.peer.clone(),
            progress: context.meta.get_progress_token(),
            declared: context
                .client_capabilities()
                .map_or_else(Declared::default, |c| Declared::of(&c)),
            cancelled: context.ct.clone(),
            last_progress: Arc::default(),
        }
    }

    /// For a `tools/call` served outside rmcp (see `mcp::raw`): the client session's peer,
    /// without a progress token (such a call asked for none), cancelled through `cancelled`.
    pub fn of_peer(peer: Peer<RoleServer>, cancelled: CancellationToken) -> Self {
        // Read where they are: a copy of the capabilities was one more per call.
        let declared = peer
            .peer_info()
            .map_or_else(Declared::default, |info| Declared::of(&info.capabilities));
        Relay {
            peer,
            progress: None,
            declared,
            cancelled,
            last_progress: Arc::default(),
        }
    }

    /// What the client sent in its `initialize`, when it is known.
    pub fn client(&self) -> Option<Arc<rmcp::model::InitializeRequestParams>> {
        self.peer.peer_info()
    }

    pub fn wants_progress(&self) -> bool {
        self.progress.is_some()
    }

    /// Passes on a notification the upstream sent while serving this request. Progress goes
    /// out under the client's own token, and only when it asked for progress.
    pub async fn notify(&self, upstream: &UpstreamName, mut message: Value) {
        if method(&message) == "notifications/progress" {
            let Some(token) = &self.progress else {
                return;
            };
            message["params"]["progressToken"] = json!(token);
            let value = message["params"]["progress"].as_f64();
            let mut last = self.last_progress.lock().await;
            if let (Some(value), Some(before)) = (value, *last)
                && value <= before
            {
                tracing::debug!(%upstream, value, before, "dropped progress that arrived after a later one");
                return;
            }
            *last = value.or(*last);
            forward(&self.peer, upstream, message).await;
            return;
        }
        forward(&self.peer, upstream, message).await;
    }

    /// Asks the client what the upstream asked (sampling, elicitation, roots) and returns the
    /// JSON-RPC reply for the upstream: the client's answer, or an error when the client did
    /// not declare the capability at `initialize` or could not answer.
    pub async fn ask(&self, upstream: &UpstreamName, request: Value) -> Value {
        let id = request.get("id").cloned().unwrap_or(Value::Null);
        reply(id, self.ask_client(upstream, request).await)
    }

    /// Whether the client declared (at `initialize`, or in a 2026-07-28 request's `_meta`)
    /// the capability the upstream's `method` needs; `None` for a request Steward does not
    /// relay.
    fn declares(&self, method: &str) -> Option<bool> {
        let declared = self.declared;
        match method {
            "sampling/createMessage" => Some(declared.sampling),
            "elicitation/create" => Some(declared.elicitation),
            "roots/list" => Some(declared.roots),
            "ping" => Some(true),
            _ => None,
        }
    }

    fn refusal(&self, method: &str) -> ErrorData {
        match self.declares(method) {
            None => ErrorData::new(
                ErrorCode::METHOD_NOT_FOUND,
                format!("Steward's gateway does not relay {method} to its clients"),
                None,
            ),
            Some(_) => ErrorData::new(
                ErrorCode::METHOD_NOT_FOUND,
                format!(
                    "the client did not declare the capability {method} needs when it initialized its session with Steward (or in its request's _meta), so Steward does not ask it"
                ),
                None,
            ),
        }
    }

    /// For a client Steward cannot send a request to (2026-07-28, no session): the reply the
    /// upstream gets from Steward itself (a ping, or a request the client could not answer),
    /// or `None` when the request goes to the client in an `InputRequiredResult`.
    pub fn answer_here(&self, request: &Value) -> Option<Value> {
        let method = method(request);
        let id = request.get("id").cloned().unwrap_or(Value::Null);
        match self.declares(method) {
            Some(true) if method == "ping" => Some(reply(id, Ok(json!({})))),
            Some(true) => None,
            _ => Some(reply(id, Err(self.refusal(method)))),
        }
    }

    async fn ask_client(
        &self,
        upstream: &UpstreamName,
        request: Value,
    ) -> Result<Value, ErrorData> {
        let method = method(&request).to_string();
        let request = match serde_json::from_value::<ServerJsonRpcMessage>(request) {
            Ok(ServerJsonRpcMessage::Request(request)) => request.request,
            _ => {
                return Err(ErrorData::new(
                    ErrorCode::METHOD_NOT_FOUND,
                    format!("Steward's gateway does not relay {method} to its clients"),
                    None,
                ));
            }
        };
        if self.declares(&method) != Some(true) {
            return Err(self.refusal(&method));
        }
        tracing::debug!(%upstream, method, "relaying the upstream's request to the client");
        let result = self
            .peer
            .send_request(request)
            .await
            .map_err(|error| match error {
                ServiceError::McpError(error) => error,
                other => ErrorData::internal_error(
                    format!("the client did not answer {method}: {other}"),
                    None,
                ),
            })?;
        serde_json::to_value(result)
            .map_err(|e| ErrorData::internal_error(format!("the client's answer: {e}"), None))
    }
}

/// Who hears an upstream's notifications outside any request: each client session that used
/// it (by the session's latest connection), and the sessions subscribed to each resource; and
/// who answers a request the upstream sends outside a request's stream: the client of the
/// session's latest call in flight (a session-era client's; a 2026-07-28 client's calls are
/// not listed, as it cannot be sent requests).
#[derive(Default)]
pub struct Audience {
    /// By client session id (foldhash, as the session manager's maps: read on every call).
    peers: Mutex<HashMap<String, Peer<RoleServer>, foldhash::fast::RandomState>>,
    subscribed: Mutex<HashMap<String, HashSet<String>>>,
    /// The calls in flight, in no order: the latest of a session's is the one with the highest
    /// number (a call ending is swapped out, not shifted out from among ~concurrency others).
    serving: Mutex<Vec<(u64, String, Relay)>>,
    next: AtomicU64,
}

/// A call in flight, until dropped.
pub struct Serving<'a>(&'a Audience, u64);

impl Drop for Serving<'_> {
    fn drop(&mut self) {
        let mut serving = lock(&self.0.serving);
        if let Some(at) = serving.iter().position(|(id, _, _)| *id == self.1) {
            serving.swap_remove(at);
        }
    }
}

impl Audience {
    /// `session`'s call through `relay` is in flight until the result is dropped.
    pub fn serving(&self, session: &str, relay: &Relay) -> Serving<'_> {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        lock(&self.serving).push((id, session.to_string(), relay.clone()));
        Serving(self, id)
    }

    /// Asks the client of `session`'s latest call in flight what the upstream asked outside
    /// that call's stream; the JSON-RPC reply for the upstream.
    pub async fn ask(&self, upstream: &UpstreamName, session: &str, request: Value) -> Value {
        let relay = lock(&self.serving)
            .iter()
            .filter(|(_, s, _)| s == session)
            .max_by_key(|(id, _, _)| *id)
            .map(|(_, _, relay)| relay.clone());
        match relay {
            Some(relay) => relay.ask(upstream, request).await,
            None => {
                let id = request.get("id").cloned().unwrap_or(Value::Null);
                let message = format!(
                    "Steward relays {} only to a client while its call is being served; a 2026-07-28 client, which cannot be sent requests, only within its one call in flight in this upstream session",
                    method(&request)
                );
                reply(
                    id,
                    Err(ErrorData::new(ErrorCode::INVALID_REQUEST, message, None)),
                )
            }
        }
    }

    /// The connection `session` last used, while it is open.
    pub fn peer(&self, session: &str) -> Option<Peer<RoleServer>> {
        lock(&self.peers)
            .get(session)
            .filter(|peer| !peer.is_transport_closed())
            .cloned()
    }

    /// Remembers the connection a client session last used.
    pub fn seen(&self, session: &str, relay: &Relay) {
        let mut peers = lock(&self.peers);
        if let Some(peer) = peers.get_mut(session) {
            *peer = relay.peer.clone();
            return;
        }
        // Sessions whose connection closed are forgotten as new ones come, not on every call.
        peers.retain(|_, peer| !peer.is_transport_closed());
        peers.insert(session.to_string(), relay.peer.clone());
    }

    /// `session` subscribed to the upstream's `uri` (or, with `on: false`, no longer is).
    pub fn subscribe(&self, session: &str, uri: &str, on: bool) {
        let mut subscribed = lock(&self.subscribed);
        let sessions = subscribed.entry(uri.to_string()).or_default();
        match on {
            true => sessions.insert(session.to_string()),
            false => sessions.remove(session),
        };
    }

    /// Sends a notification of the upstream's to the sessions it concerns: a changed
    /// resource's subscribers, or every session (lists, log lines). `only` narrows it to
    /// one session (an HTTP upstream's session belongs to one client session); false when
    /// that session is gone.
    pub async fn notify(
        &self,
        upstream: &UpstreamName,
        only: Option<&str>,
        message: Value,
    ) -> bool {
        if let Some(only) = only
            && lock(&self.peers)
                .get(only)
                .is_none_or(Peer::is_transport_closed)
        {
            return false;
        }
        let method = method(&message);
        if method == "notifications/progress" || method == "notifications/cancelled" {
            // Progress outside a request, or about a request of the upstream's own: no
            // client asked for it.
            return true;
        }
        let subscribers = (method == "notifications/resources/updated").then(|| {
            let uri = message["params"]["uri"].as_str().unwrap_or_default();
            lock(&self.subscribed).get(uri).cloned().unwrap_or_default()
        });
        let peers: Vec<Peer<RoleServer>> = lock(&self.peers)
            .iter()
            .filter(|(session, _)| only.is_none_or(|only| only == session.as_str()))
            .filter(|(session, _)| subscribers.as_ref().is_none_or(|s| s.contains(*session)))
            .map(|(_, peer)| peer.clone())
            .collect();
        for peer in peers {
            forward(&peer, upstream, message.clone()).await;
        }
        true
    }
}

/// The JSON-RPC reply Steward sends the upstream for its request `id`: the result, or why
/// there is none.
pub fn reply(id: Value, outcome: Result<Value, ErrorData>) -> Value {
    match outcome {
        Ok(result) => json!({"jsonrpc": "2.0", "id": id, "result": result}),
        Err(error) => json!({"jsonrpc": "2.0", "id": id, "error": error}),
    }
}

fn method(message: &Value) -> &str {
    message
        .get("method")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// Sends the client an upstream's notification, a resource's URI in the gateway's form.
async fn forward(peer: &Peer<RoleServer>, upstream: &UpstreamName, mut message: Value) {
    let updated = method(&message) == "notifications/resources/updated";
    if let Some(uri) = message.pointer_mut("/params/uri").filter(|_| updated) {
        // Keep in step with kinds::gateway_uri.
        *uri = json!(format!(
            "{}{upstream}/{}",
            super::kinds::URI_PREFIX,
            uri.as_str().unwrap_or_default()
        ));
    }
    let notification = match serde_json::from_value::<ServerJsonRpcMessage>(message) {
        Ok(ServerJsonRpcMessage::Notification(notification)) => notification.notification,
        Ok(_) | Err(_) => {
            tracing::debug!(%upstream, "dropped a notification from the upstream that is not MCP");
            return;
        }
    };
    if let Err(error) = peer.send_notification(notification).await {
        tracing::debug!(%upstream, %error, "could not pass the upstream's notification to the client");
    }
}
