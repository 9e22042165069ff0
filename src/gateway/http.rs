//! A Streamable HTTP upstream, spoken through rmcp's HTTP client (`post_message` over reqwest).
//!
//! Each client session gets its own session with the upstream, created on first use and
//! recorded in `mcp_upstream_sessions` (upstream session id, negotiated revision, capabilities
//! and the `initialize` parameters sent), so a restarted Steward, or another replica, goes on
//! with it instead of opening a new one. When the upstream answers that it does not know the
//! session (HTTP 404: it restarted), Steward initializes it again with the same parameters and
//! sends the request once more: the only failure retried, because only then did the upstream
//! provably not run the request.
//!
//! A 2026-07-28 client's requests without a session go to an upstream that offers 2026-07-28
//! (`server/discover`) as 2026-07-28 requests of their own; that is recorded the same way, as
//! a "session" of that revision without a session id, so it is asked once per client session.
//!
//! A 2026-07-28 client cannot be sent the upstream's requests (sampling, elicitation, roots):
//! the call is parked and the client asked in an `InputRequiredResult` instead ([`bridge`]),
//! also when the upstream sends the request on its GET stream rather than the call's own
//! ([`outside`]).
//!
//! What the upstream sends while answering (on the request's event stream) goes to that
//! request's client through its [`Relay`]; what it sends between requests (on the session's
//! GET stream: resource updates, list changes) goes to the client session that owns the
//! upstream session, through the [`Audience`].

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::Utc;
use futures::{FutureExt, StreamExt};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use rmcp::ErrorData;
use rmcp::model::{ClientJsonRpcMessage, ClientRequest, CustomRequest, NumberOrString};
use rmcp::transport::common::client_side_sse::BoxedSseResponse;
use rmcp::transport::streamable_http_client::{
    StreamableHttpClient, StreamableHttpError, StreamableHttpPostResponse,
};
use serde_json::{Value, json};
use sqlx::types::Json;
use tokio::sync::Mutex as AsyncMutex;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

mod bridge;
mod outside;
mod wire;

use super::answer::{Answer, Envelope};
use super::error::UpstreamError;
use super::parked::{Bound, Capacity, Shelf};
use super::raw::Params;
use super::relay::{Audience, Relay};
use super::spec::{Secret, UpstreamName};
use super::stateless::{self, Stateless};
use super::status::UpstreamStatus;
use super::unanswered::Unanswered;
use crate::protocol::{PROTOCOL_VERSION, STATELESS_REVISION};
use crate::store::Store;
use crate::store::upstream_sessions::UpstreamSessionRow;
use crate::sync::lock;

/// Client sessions whose upstream session is kept in memory; past this, the ones not in use are
/// dropped (they are read back from the database when next used).
const MAX_HELD: usize = 10_000;

/// How long a 2026-07-28 client's session-era upstream session, opened because the upstream
/// could not be asked `server/discover` (unreachable, or an HTTP 429/5xx), serves before
/// Steward asks again; it is recorded only once the upstream answers.
const REDISCOVER_AFTER: Duration = Duration::from_secs(60);

/// The session a client session holds with this upstream.
#[derive(Clone, Debug)]
struct Held {
    id: Option<Arc<str>>,
    row: UpstreamSessionRow,
    /// When to ask `server/discover` again (see [`REDISCOVER_AFTER`]).
    rediscover: Option<Instant>,
}

/// What `server/discover` said of the upstream.
#[derive(PartialEq)]
enum Discovery {
    Speaks,
    DoesNot,
    /// It could not be asked (a failure that may pass).
    Unknown,
}

/// One request for the upstream, as the client made it.
struct Call<'a> {
    method: &'a str,
    params: &'a Params<'a>,
    relay: Option<&'a Relay>,
    stateless: Option<Stateless<'a>>,
    /// The client session it belongs to.
    session: &'a str,
}

/// A call's request for the upstream: written straight from its params on the wire.
struct Outbound<'a> {
    id: i64,
    method: &'a str,
    params: &'a Params<'a>,
}

/// Why one exchange failed: the upstream forgot the session (the retryable case), or another reason.
enum Failure {
    Expired,
    Other(UpstreamError),
}

impl From<UpstreamError> for Failure {
    fn from(error: UpstreamError) -> Self {
        Failure::Other(error)
    }
}

/// Logged when the upstream's request could not be answered.
const ANSWER_FAILED: &str = "cannot answer the upstream's request";

/// How long a call waits for its upstream session's GET stream to open before it is sent
/// anyway (an upstream that offers one answers the GET at once).
const STREAM_OPEN_WAIT: Duration = Duration::from_secs(2);

/// Shared, so a call takes the session without copying its record.
type Cell = Arc<AsyncMutex<Option<Arc<Held>>>>;

/// By upstream session id, looked up on every call (foldhash, as the maps by client session).
type Listening = HashMap<Arc<str>, watch::Receiver<bool>, foldhash::fast::RandomState>;

/// Where and how Steward reaches the upstream; shared with the tasks that outlive a call (the
/// GET stream's reader, a dropped call's cancellation).
struct Endpoint {
    name: UpstreamName,
    url: Arc<str>,
    headers: HashMap<HeaderName, HeaderValue>,
    client: reqwest::Client,
    /// Calls' requests to an `http://` upstream, without reqwest (see [`wire`]).
    wire: Option<Arc<wire::Wire>>,
    status: Arc<UpstreamStatus>,
}

pub struct HttpUpstream {
    name: UpstreamName,
    endpoint: Arc<Endpoint>,
    store: Store,
    /// By client session id (foldhash, as the session manager's maps: read on every call).
    held: Mutex<HashMap<String, Cell, foldhash::fast::RandomState>>,
    next_id: AtomicI64,
    status: Arc<UpstreamStatus>,
    audience: Arc<Audience>,
    /// The upstream sessions whose GET stream Steward is reading, each with whether the
    /// stream has opened (or failed to) yet.
    listening: Arc<Mutex<Listening>>,
    /// Cancelled when Steward stops: the GET streams close.
    stop: CancellationToken,
    /// Calls waiting for a 2026-07-28 client's answers to the upstream's requests.
    parked: Shelf<bridge::Parked>,
    /// 2026-07-28 clients' calls in flight, for the requests the upstream sends outside their
    /// streams.
    outside: Arc<outside::Outside>,
}

impl HttpUpstream {
    pub fn new(
        name: UpstreamName,
        url: &str,
        headers: &[(String, Secret)],
        client: reqwest::Client,
        store: Store,
        status: Arc<UpstreamStatus>,
        audience: Arc<Audience>,
    ) -> Result<Self, String> {
        let mut map = HashMap::new();
        for (header, value) in headers {
            let header_name = HeaderName::from_bytes(header.as_bytes())
                .map_err(|_| format!("upstream {name}: {header:?} is not a valid header name"))?;
            let mut header_value = HeaderValue::from_str(value.expose()).map_err(|_| {
                format!("upstream {name}: the value of header {header} is not a valid header value")
            })?;
            header_value.set_sensitive(true);
            map.insert(header_name, header_value);
        }
        Ok(HttpUpstream {
            endpoint: Arc::new(Endpoint {
                name: name.clone(),
                url: url.into(),
                headers: map,
                client,
                wire: wire::Wire::for_url(url),
                status: status.clone(),
            }),
            name,
            store,
            held: Mutex::default(),
            next_id: AtomicI64::new(1),
            status,
            audience,
            listening: Arc::default(),
            stop: CancellationToken::new(),
            parked: Shelf::new(Duration::from_secs(60), Arc::default()),
            outside: Arc::default(),
        })
    }

    /// A call parked for a 2026-07-28 client's input is given up after `ttl` (the upstream's
    /// timeout: the client has as long to answer as the upstream has to answer a call); how
    /// many may be parked is bounded by `capacity`, shared with the other upstreams.
    pub fn parking_for(mut self, ttl: Duration, capacity: Arc<Capacity>) -> Self {
        self.parked = Shelf::new(ttl, capacity);
        self
    }

    /// Its GET streams close when `stop` is cancelled (Steward stops).
    pub fn closing_on(mut self, stop: CancellationToken) -> Self {
        self.stop = stop;
        self
    }

    /// Sends `method` with `params` in `client_session`'s session with the upstream (opening it
    /// with the `initialize` parameters `init` makes if there is none) and returns the result;
    /// what the upstream sends the client meanwhile goes through `relay`. A 2026-07-28 client's
    /// request without a session (`stateless`) goes to an upstream that speaks 2026-07-28 as a
    /// 2026-07-28 request of its own, and to one that does not in a session Steward holds.
    pub async fn request(
        &self,
        client_session: &str,
        init: impl FnOnce() -> Value,
        stateless: Option<Stateless<'_>>,
        method: &str,
        params: Params<'_>,
        relay: Option<&Relay>,
    ) -> Result<Answer, UpstreamError> {
        // A 2026-07-28 client's call is bridged by its params' tree (see `bridge`).
        let params = match (stateless, params) {
            (Some(_), call @ Params::Call { .. }) => Params::Tree(call.into_tree()?),
            (_, params) => params,
        };
        let cell = self.cell(client_session);
        let held = self
            .session(&cell, client_session, init, stateless.is_some())
            .await?;
        self.listen(client_session, &held).await;
        let call = Call {
            method,
            params: &params,
            relay,
            stateless,
            session: client_session,
        };
        // The rare paths are boxed, so this future (moved and copied per call) stays small.
        if let Some((bridge, state)) = bridge::resumes(self, &call, &held) {
            return Box::pin(self.resume(bridge, state, &call)).await;
        }
        match self.exchange(&held, &call).await {
            Err(Failure::Expired) => {
                let held = Box::pin(self.reinitialize(&cell, &held)).await?;
                self.listen(client_session, &held).await;
                self.exchange(&held, &call)
                    .await
                    .map_err(|failure| match failure {
                        Failure::Expired => UpstreamError::Protocol(
                            "it forgot the session again right after it was initialized".into(),
                        ),
                        Failure::Other(error) => error,
                    })
            }
            Err(Failure::Other(error)) => Err(error),
            Ok(result) => Ok(result),
        }
    }

    fn cell(&self, client_session: &str) -> Cell {
        let mut held = lock(&self.held);
        if let Some(cell) = held.get(client_session) {
            return cell.clone();
        }
        if held.len() >= MAX_HELD {
            held.retain(|_, cell| Arc::strong_count(cell) > 1);
        }
        held.entry(client_session.to_string()).or_default().clone()
    }

    /// The client session's upstream session: in memory, else as recorded, else a new one;
    /// for a 2026-07-28 client (`stateless`), a 2026-07-28 one when the upstream offers it.
    async fn session(
        &self,
        cell: &Cell,
        client_session: &str,
        init: impl FnOnce() -> Value,
        stateless: bool,
    ) -> Result<Arc<Held>, UpstreamError> {
        let mut slot = cell.lock().await;
        if let Some(held) = slot.as_ref() {
            let due = stateless && held.rediscover.is_some_and(|at| at <= Instant::now());
            if !due {
                return Ok(held.clone());
            }
            let held = Arc::new(Box::pin(self.rediscover(held)).await);
            *slot = Some(held.clone());
            return Ok(held);
        }
        // Boxed: reading the record and opening a session are large futures that most calls,
        // which find the session held, would otherwise carry (and copy) for nothing.
        let held = Arc::new(Box::pin(self.open(client_session, init, stateless)).await?);
        *slot = Some(held.clone());
        Ok(held)
    }

    /// A client session's upstream session as recorded, else a new one (see
    /// [`HttpUpstream::session`]).
    async fn open(
        &self,
        client_session: &str,
        init: impl FnOnce() -> Value,
        stateless: bool,
    ) -> Result<Held, UpstreamError> {
        let recorded = match self
            .store
            .get_upstream_session(client_session, self.name.as_str())
            .await
        {
            Ok(row) => row,
            Err(error) => {
                tracing::error!(upstream = %self.name, %error, "cannot read the recorded upstream session; opening a new one");
                None
            }
        };
        let held = match recorded {
            Some(row) => Held {
                id: row.upstream_session_id.as_deref().map(Arc::from),
                row,
                rediscover: None,
            },
            None => {
                let now = Utc::now();
                let mut row = UpstreamSessionRow {
                    session_id: client_session.to_string(),
                    upstream: self.name.to_string(),
                    upstream_session_id: None,
                    protocol_version: String::new(),
                    capabilities: Json(Value::Null),
                    initialize_params: Json(init()),
                    reinitialized: 0,
                    created_at: now,
                    updated_at: now,
                };
                let discovery = match stateless {
                    true => self.discover(&mut row).await,
                    false => Discovery::DoesNot,
                };
                let id = match discovery {
                    Discovery::Speaks => None,
                    _ => self.initialize(&mut row).await?,
                };
                let rediscover = match discovery {
                    Discovery::Unknown => Some(Instant::now() + REDISCOVER_AFTER),
                    _ => {
                        self.record(&row).await;
                        None
                    }
                };
                Held {
                    id,
                    row,
                    rediscover,
                }
            }
        };
        Ok(held)
    }

    /// After the upstream forgot `failed`: initializes again with the recorded parameters,
    /// unless a concurrent request already did.
    async fn reinitialize(&self, cell: &Cell, failed: &Held) -> Result<Arc<Held>, UpstreamError> {
        let mut slot = cell.lock().await;
        if let Some(current) = slot.as_ref().filter(|current| current.id != failed.id) {
            return Ok(current.clone());
        }
        let mut row = failed.row.clone();
        let id = self.initialize(&mut row).await?;
        row.reinitialized = row.reinitialized.saturating_add(1);
        row.updated_at = Utc::now();
        if failed.rediscover.is_none() {
            self.record(&row).await;
        }
        UpstreamStatus::count(&self.status.reinitialized);
        tracing::info!(upstream = %self.name, session = %row.session_id, "the upstream forgot the session (it restarted?): initialized it again");
        let rediscover = failed.rediscover;
        let held = Arc::new(Held {
            id,
            row,
            rediscover,
        });
        *slot = Some(held.clone());
        Ok(held)
    }

    /// Asks `server/discover` again for a session opened when it could not be asked: a
    /// 2026-07-28 "session" replaces it if the upstream now offers that revision; the session
    /// is recorded as it is if it does not; asked again later if it still cannot be asked.
    async fn rediscover(&self, held: &Held) -> Held {
        let mut row = held.row.clone();
        match self.discover(&mut row).await {
            Discovery::Speaks => {
                row.updated_at = Utc::now();
                self.record(&row).await;
                Held {
                    id: None,
                    row,
                    rediscover: None,
                }
            }
            Discovery::DoesNot => {
                self.record(&held.row).await;
                Held {
                    rediscover: None,
                    ..held.clone()
                }
            }
            Discovery::Unknown => Held {
                rediscover: Some(Instant::now() + REDISCOVER_AFTER),
                ..held.clone()
            },
        }
    }

    /// The session works without its record; a later Steward would open a new one.
    async fn record(&self, row: &UpstreamSessionRow) {
        if let Err(error) = self.store.put_upstream_session(row).await {
            tracing::error!(upstream = %self.name, %error, "cannot record the upstream session; it will not survive a restart of Steward");
        }
    }

    /// `initialize` with `row`'s parameters, then `notifications/initialized`; fills in the
    /// revision and capabilities and returns the upstream's session id.
    async fn initialize(
        &self,
        row: &mut UpstreamSessionRow,
    ) -> Result<Option<Arc<str>>, UpstreamError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let message = json!({"jsonrpc": "2.0", "id": id, "method": "initialize", "params": row.initialize_params.0});
        let response = self
            .endpoint
            .post(message, None, None)
            .await
            .map_err(expired_is_protocol)?;
        let (reply, session) = response
            .expect_initialized::<reqwest::Error>()
            .await
            .map_err(|e| UpstreamError::Protocol(e.to_string()))?;
        let result = outcome(to_value(&reply)?)?;
        row.protocol_version = result
            .get("protocolVersion")
            .and_then(Value::as_str)
            .ok_or_else(|| {
                UpstreamError::Protocol("its initialize result has no protocolVersion".into())
            })?
            .to_string();
        row.capabilities = Json(result.get("capabilities").cloned().unwrap_or(json!({})));
        row.upstream_session_id = session.clone();
        let session = session.map(Arc::from);
        let note = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
        self.endpoint
            .post(note, session.clone(), Some(&row.protocol_version))
            .await
            .map_err(expired_is_protocol)?;
        Ok(session)
    }

    /// Asks the upstream whether it speaks 2026-07-28 (`server/discover`); if it does, fills
    /// in `row` as a 2026-07-28 "session": that revision, the capabilities it announced and
    /// no session id. When it does not, or could not be asked, Steward opens a session-era
    /// session with it.
    async fn discover(&self, row: &mut UpstreamSessionRow) -> Discovery {
        match self.ask_discover(row).await {
            Ok(capabilities) => {
                row.protocol_version = STATELESS_REVISION.to_string();
                row.capabilities = Json(capabilities);
                row.upstream_session_id = None;
                Discovery::Speaks
            }
            // Not reached, or an HTTP 429/5xx: it said nothing of what it speaks.
            Err(error @ UpstreamError::Unreachable(_)) => {
                tracing::info!(upstream = %self.name, %error, "cannot ask the upstream server/discover; a session-era session serves the 2026-07-28 client for now, and Steward asks again later");
                Discovery::Unknown
            }
            Err(error) => {
                tracing::debug!(upstream = %self.name, %error, "the upstream does not speak 2026-07-28; Steward holds a session with it for 2026-07-28 clients");
                Discovery::DoesNot
            }
        }
    }

    /// `server/discover`: the capabilities of an upstream that offers 2026-07-28.
    async fn ask_discover(&self, row: &UpstreamSessionRow) -> Result<Value, UpstreamError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let method = crate::protocol::DISCOVER;
        let meta = stateless::meta(&row.initialize_params.0, None, STATELESS_REVISION);
        let params = json!({ "_meta": meta });
        let headers = stateless::headers(method, &params, None);
        let request = ClientRequest::CustomRequest(CustomRequest::new(method, Some(params)));
        let message = ClientJsonRpcMessage::request(request, NumberOrString::Number(id));
        let response = self
            .endpoint
            .send_with(message, None, Some(STATELESS_REVISION), headers)
            .await
            .map_err(expired_is_protocol)?;
        let probe = Held {
            id: None,
            row: row.clone(),
            rediscover: None,
        };
        let mut result: Value = self
            .answer(response, id, &Arc::new(probe), None, None, None)
            .await?
            .parse(method)?;
        let offers = result["supportedVersions"]
            .as_array()
            .is_some_and(|versions| versions.iter().any(|v| v == STATELESS_REVISION));
        if !offers {
            return Err(UpstreamError::Protocol(format!(
                "its server/discover does not list {STATELESS_REVISION}"
            )));
        }
        Ok(result
            .get_mut("capabilities")
            .map(Value::take)
            .unwrap_or(json!({})))
    }

    /// One request and its answer, in `held`'s session. When the client asked for progress,
    /// the upstream is asked for it under the request's id (see [`Relay::notify`]). In a
    /// 2026-07-28 "session" the request carries what that revision asks of each request
    /// instead (see [`stateless`]).
    async fn exchange(&self, held: &Arc<Held>, call: &Call<'_>) -> Result<Answer, Failure> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let relay = call.relay;
        let revision = held.row.protocol_version.as_str();
        let speaks_stateless = crate::protocol::is_stateless(revision);
        let progress = relay.is_some_and(Relay::wants_progress);
        // The call's own params are sent as they are unless this exchange adds to them; they
        // stay unchanged for a retry (see `request`).
        let changed;
        let (params, headers) = if speaks_stateless || progress {
            let mut params = call.params.to_tree()?;
            if speaks_stateless && params.is_object() {
                let client = call.stateless.map(|s| s.meta);
                params["_meta"] = stateless::meta(&held.row.initialize_params.0, client, revision);
            }
            if progress && params.is_object() {
                params["_meta"]["progressToken"] = json!(id);
            }
            let headers = match speaks_stateless {
                true => stateless::headers(call.method, &params, call.stateless),
                false => Vec::new(),
            };
            changed = Params::Tree(params);
            (&changed, headers)
        } else {
            (call.params, Vec::new())
        };
        // Enlisted before the request is sent, so a request of the upstream's about it on the
        // GET stream finds it.
        let bound = bridge::of(self, call);
        let enlisted = match (&bound, &held.id, relay) {
            (Some(_), Some(session), Some(_)) => {
                Some(self.outside.enlist(session, self.endpoint.refusing(held)))
            }
            _ => None,
        };
        let (endpoint, dropped) = (self.endpoint.clone(), held.clone());
        let unanswered = Unanswered::new(move || async move {
            let reason = "Steward stopped waiting for the answer";
            endpoint.cancel(id, &dropped, reason).await;
        });
        // Both boxed: reqwest's exchange and the reading of the answer (with the relay and
        // the bridge) are large futures that would otherwise be held and moved inline.
        let sent = self.endpoint.send_call(
            Outbound {
                id,
                method: call.method,
                params,
            },
            held.id.clone(),
            Some(revision),
            headers,
        );
        let response = Box::pin(sent).await;
        let outcome = match response {
            Ok(response) => {
                Box::pin(self.answer(response, id, held, relay, bound.as_ref(), enlisted))
                    .await
                    .map_err(Failure::from)
            }
            Err(failure) => Err(failure),
        };
        unanswered.settled();
        outcome
    }

    /// Reads `held`'s GET stream (once per upstream session), passing what the upstream sends
    /// between requests to `client_session`, until the stream ends, that client is gone or
    /// Steward stops (an upstream that shuts down gracefully waits for its streams to close).
    ///
    /// Returns once the stream has opened (or could not be): a server sends log lines and other
    /// notifications of a call on its GET stream, and one that keeps no backlog for a stream
    /// that is not open yet (rmcp with an event store) would drop those sent before it opens.
    async fn listen(&self, client_session: &str, held: &Arc<Held>) {
        let Some(id) = held.id.clone() else {
            return;
        };
        let mut opened = {
            let mut listening = lock(&self.listening);
            match listening.get(&id) {
                Some(opened) => opened.clone(),
                None => {
                    let (open, opened) = watch::channel(false);
                    listening.insert(id.clone(), opened.clone());
                    self.read_stream(client_session, held, id, open);
                    opened
                }
            }
        };
        let wait = opened.wait_for(|open| *open);
        if tokio::time::timeout(STREAM_OPEN_WAIT, wait).await.is_err() {
            tracing::debug!(upstream = %self.name, "the upstream's GET stream is slow to open; the call goes on without waiting");
        }
    }

    /// The task behind [`HttpUpstream::listen`]: `open` is set once the stream has opened or
    /// failed to.
    fn read_stream(
        &self,
        client_session: &str,
        held: &Arc<Held>,
        id: Arc<str>,
        open: watch::Sender<bool>,
    ) {
        let endpoint = self.endpoint.clone();
        let held = held.clone();
        let mut headers = endpoint.headers.clone();
        let (audience, listening, stop, outside) = (
            self.audience.clone(),
            self.listening.clone(),
            self.stop.clone(),
            self.outside.clone(),
        );
        let session = client_session.to_string();
        if let Ok(version) = HeaderValue::from_str(&held.row.protocol_version) {
            headers.insert(PROTOCOL_VERSION, version);
        }
        tokio::spawn(async move {
            let name = &endpoint.name;
            let opening = endpoint.client.get_stream(
                endpoint.url.clone(),
                Some(id.clone()),
                None,
                None,
                headers.clone(),
            );
            let opened = stop.run_until_cancelled(opening).await;
            open.send_replace(true);
            let mut stream = match opened {
                Some(Ok(stream)) => stream,
                Some(Err(error)) => {
                    tracing::debug!(upstream = %name, %error, "the upstream offers no GET stream: its notifications between requests are not relayed");
                    lock(&listening).remove(&id);
                    return;
                }
                None => return,
            };
            while let Some(Some(Ok(event))) = stop.run_until_cancelled(stream.next()).await {
                let Some(message) = event
                    .data
                    .and_then(|data| serde_json::from_str::<Value>(&data).ok())
                else {
                    continue;
                };
                if message.get("id").is_some() && message.get("method").is_some() {
                    let reply = match outside.hand(&id, message) {
                        outside::Handed::Taken => continue,
                        outside::Handed::Refused(reply) => reply,
                        outside::Handed::Nobody(message) => {
                            audience.ask(name, &session, message).await
                        }
                    };
                    endpoint.tell(reply, &held, ANSWER_FAILED).await;
                } else if !audience.notify(name, Some(&session), message).await {
                    break;
                }
            }
            lock(&listening).remove(&id);
        });
    }

    /// Reads the reply to request `id`: a JSON body, or the event stream up to the answer.
    /// What the upstream sends the client meanwhile goes through `relay` (without one, its
    /// requests are refused and its notifications dropped); when the client cancels, the
    /// upstream is told to stop. A 2026-07-28 client's call (`bridge`) parks at the upstream's
    /// first request for the client, on this stream or handed to it from the GET stream
    /// (`enlisted`).
    async fn answer(
        &self,
        response: StreamableHttpPostResponse,
        id: i64,
        held: &Arc<Held>,
        relay: Option<&Relay>,
        bridge: Option<&Bound<'_>>,
        mut enlisted: Option<outside::Enlisted>,
    ) -> Result<Answer, UpstreamError> {
        let mut stream = match response {
            StreamableHttpPostResponse::Json(message, _) => {
                return outcome(to_value(&message)?).map(Answer::Tree);
            }
            StreamableHttpPostResponse::Sse(stream, _) => stream,
            _ => {
                return Err(UpstreamError::Protocol(
                    "it accepted a request without answering it".into(),
                ));
            }
        };
        let cancelled = relay.map(|r| r.cancelled.clone()).unwrap_or_default();
        loop {
            let event = tokio::select! {
                event = stream.next() => event,
                Some(request) = outside::next(&mut enlisted) => {
                    if let (Some(bridge), Some(relay)) = (bridge, relay)
                        && let Some(asked) = self.input_request(request, relay, held).await
                    {
                        let response = StreamableHttpPostResponse::Sse(stream, None);
                        let parked = bridge::waiting(response, id, held, asked, enlisted);
                        return self.park(parked, bridge).await;
                    }
                    continue;
                }
                _ = cancelled.cancelled() => {
                    let reason = "the client cancelled the request";
                    self.endpoint.cancel(id, held, reason).await;
                    return Err(UpstreamError::Cancelled);
                }
            };
            let Some(event) = event else { break };
            let event = event
                .map_err(|e| UpstreamError::Unreachable(format!("its event stream broke: {e}")))?;
            let Some(data) = event.data.filter(|d| !d.trim().is_empty()) else {
                continue;
            };
            let not_json = |e| UpstreamError::Protocol(format!("an event is not JSON: {e}"));
            let envelope: Envelope = serde_json::from_str(&data).map_err(not_json)?;
            if envelope.answers(id) {
                let outcome = envelope.outcome();
                finish(stream);
                return outcome;
            }
            if envelope.method.is_none() {
                continue;
            }
            let message: Value = serde_json::from_str(&data).map_err(not_json)?;
            let asks = message.get("id").is_some() && message.get("method").is_some();
            if let (true, Some(bridge), Some(relay)) = (asks, bridge, relay) {
                if let Some(asked) = self.input_request(message, relay, held).await {
                    let response = StreamableHttpPostResponse::Sse(stream, None);
                    let parked = bridge::waiting(response, id, held, asked, enlisted);
                    return self.park(parked, bridge).await;
                }
                continue;
            }
            match (message.get("id"), message.get("method"), relay) {
                (Some(_), Some(_), Some(relay)) => {
                    let reply = relay.ask(&self.name, message).await;
                    self.endpoint.tell(reply, held, ANSWER_FAILED).await;
                }
                (Some(asked), Some(method), None) => {
                    let reply = json!({"jsonrpc": "2.0", "id": asked, "error": {"code": crate::protocol::METHOD_NOT_FOUND,
                        "message": format!("Steward's gateway relays {method} only while a client's call is being served")}});
                    self.endpoint.tell(reply, held, ANSWER_FAILED).await;
                }
                (None, Some(_), Some(relay)) => relay.notify(&self.name, message).await,
                _ => {}
            }
        }
        Err(UpstreamError::Protocol(
            "its event stream ended before the answer".into(),
        ))
    }
}

impl Endpoint {
    async fn post(
        &self,
        message: Value,
        session: Option<Arc<str>>,
        version: Option<&str>,
    ) -> Result<StreamableHttpPostResponse, Failure> {
        let message: ClientJsonRpcMessage = serde_json::from_value(message)
            .map_err(|e| UpstreamError::Protocol(format!("cannot encode the request: {e}")))?;
        self.send_with(message, session, version, Vec::new()).await
    }

    /// `message` in `session`, with `extra` headers (a 2026-07-28 request's own).
    async fn send_with(
        &self,
        message: ClientJsonRpcMessage,
        session: Option<Arc<str>>,
        version: Option<&str>,
        extra: Vec<(HeaderName, HeaderValue)>,
    ) -> Result<StreamableHttpPostResponse, Failure> {
        let headers = self.request_headers(version, extra);
        self.client
            .post_message(self.url.clone(), message, session, None, headers)
            .await
            .map_err(classify)
    }

    /// A call's request ([`HttpUpstream::exchange`]): on the wire when the upstream has one,
    /// else as [`Endpoint::send_with`].
    async fn send_call(
        &self,
        request: Outbound<'_>,
        session: Option<Arc<str>>,
        version: Option<&str>,
        extra: Vec<(HeaderName, HeaderValue)>,
    ) -> Result<StreamableHttpPostResponse, Failure> {
        let Outbound { id, method, params } = request;
        let Some(wire) = &self.wire else {
            // Built as rmcp's message directly, not parsed from a JSON tree (serde copies the
            // whole tree into a buffer of its own to find which kind of message it is).
            let request = CustomRequest::new(method, Some(params.to_tree()?));
            let request = ClientRequest::CustomRequest(request);
            let message = ClientJsonRpcMessage::request(request, NumberOrString::Number(id));
            return self.send_with(message, session, version, extra).await;
        };
        let headers: HeaderMap = self.request_headers(version, extra);
        let body = Bytes::from(params.request(id, method)?);
        wire.post(body, session.as_deref(), headers).await
    }

    /// A request's headers, the same on reqwest's path and the wire's: the upstream's
    /// configured ones, `extra` (a 2026-07-28 request's own) over them, and the revision. Made
    /// as the map each path takes, so a call on the wire hashes each name once, not twice.
    fn request_headers<M: HeaderSet>(
        &self,
        version: Option<&str>,
        extra: Vec<(HeaderName, HeaderValue)>,
    ) -> M {
        let mut headers = M::default();
        let configured = self.headers.iter().map(|(n, v)| (n.clone(), v.clone()));
        for (name, value) in configured.chain(extra) {
            headers.set(name, value);
        }
        if let Some(version) = version.and_then(|v| HeaderValue::from_str(v).ok()) {
            headers.set(PROTOCOL_VERSION, version);
        }
        headers
    }

    /// Tells the upstream to stop request `id`, and why. A 2026-07-28 request has no session
    /// to send that in: closing its stream, as dropping the call does, is its cancellation.
    async fn cancel(&self, id: i64, held: &Held, reason: &str) {
        if held.id.is_none() && crate::protocol::is_stateless(&held.row.protocol_version) {
            return;
        }
        let message = json!({"jsonrpc": "2.0", "method": "notifications/cancelled",
            "params": {"requestId": id, "reason": reason}});
        self.tell(
            message,
            held,
            "cannot pass the cancellation to the upstream",
        )
        .await;
    }

    /// Where a call in `held`'s session sends the replies refusing the upstream's requests it
    /// took but ended without asking its client: to the upstream, in the background (the
    /// call's end does not wait), each counted (`orphaned`) and logged.
    fn refusing(self: &Arc<Self>, held: &Arc<Held>) -> outside::Refuse {
        let (endpoint, held) = (self.clone(), held.clone());
        Box::new(move |replies| {
            let count = replies.len();
            for _ in 0..count {
                UpstreamStatus::count(&endpoint.status.orphaned);
            }
            tracing::info!(upstream = %endpoint.name, count, "the upstream sent requests on its GET stream for a 2026-07-28 client's call that ended before its client was asked: each is answered with an error");
            let Ok(runtime) = tokio::runtime::Handle::try_current() else {
                return;
            };
            runtime.spawn(async move {
                for reply in replies {
                    endpoint.tell(reply, &held, ANSWER_FAILED).await;
                }
            });
        })
    }

    /// Sends a message nobody waits on (an answer to the upstream's request, a cancellation)
    /// in `held`'s session; a failure is logged with `failed` and counted (`undelivered`).
    async fn tell(&self, message: Value, held: &Held, failed: &str) {
        let version = Some(held.row.protocol_version.as_str());
        let failure = match self.post(message, held.id.clone(), version).await {
            Ok(_) => return,
            Err(failure) => failure,
        };
        UpstreamStatus::count(&self.status.undelivered);
        match failure {
            Failure::Other(error) => tracing::warn!(upstream = %self.name, %error, "{failed}"),
            Failure::Expired => {
                tracing::warn!(upstream = %self.name, "{failed}: its session expired")
            }
        }
    }
}

/// A request's headers by name, a later value of a name replacing the earlier one: rmcp's
/// reqwest client takes a `HashMap`, the wire ([`wire::Wire::post`]) a `HeaderMap`.
trait HeaderSet: Default {
    fn set(&mut self, name: HeaderName, value: HeaderValue);
}

impl HeaderSet for HashMap<HeaderName, HeaderValue> {
    fn set(&mut self, name: HeaderName, value: HeaderValue) {
        self.insert(name, value);
    }
}

impl HeaderSet for HeaderMap {
    fn set(&mut self, name: HeaderName, value: HeaderValue) {
        self.insert(name, value);
    }
}

/// How long an answered request's event stream is read on for its end (see [`finish`]).
const FINISH_WAIT: Duration = Duration::from_secs(5);

/// Reads what is left of an answered request's event stream (the upstream ends it after the
/// answer), so its connection goes back to the pool: a body dropped before its end closes the
/// connection, and the next request would open a new one (a TCP handshake per call). The end
/// has usually arrived with the answer; otherwise a task waits for it, for [`FINISH_WAIT`] at
/// most, discarding anything sent after the answer as before.
fn finish(mut stream: BoxedSseResponse) {
    loop {
        match stream.next().now_or_never() {
            Some(Some(_)) => continue,
            Some(None) => return,
            None => break,
        }
    }
    tokio::spawn(async move {
        let rest = async { while stream.next().await.is_some() {} };
        if tokio::time::timeout(FINISH_WAIT, rest).await.is_err() {
            tracing::debug!(
                "an upstream kept a request's stream open after its answer; its connection is closed"
            );
        }
    });
}

/// A 404 outside an ordinary request (while initializing) is not a forgotten session.
fn expired_is_protocol(failure: Failure) -> UpstreamError {
    match failure {
        Failure::Expired => UpstreamError::Protocol("it answered 404 to initialize".into()),
        Failure::Other(error) => error,
    }
}

fn classify(error: StreamableHttpError<reqwest::Error>) -> Failure {
    Failure::Other(match error {
        StreamableHttpError::SessionExpired => return Failure::Expired,
        // Without the URL: its query may hold a credential.
        StreamableHttpError::Client(e) => {
            let e = e.without_url();
            UpstreamError::Unreachable(crate::tls::handshake_failure(&e).unwrap_or_else(|| causes(&e)))
        }
        StreamableHttpError::HttpStatus(status) => {
            UpstreamError::Unreachable(format!("it answered HTTP {}", status.status))
        }
        StreamableHttpError::AuthRequired(_) | StreamableHttpError::InsufficientScope(_) => {
            UpstreamError::Unreachable("it refused Steward's credentials (HTTP 401/403); check the upstream's headers in steward.toml".into())
        }
        other => UpstreamError::Protocol(other.to_string()),
    })
}

/// An error with its causes: reqwest's own text ("error sending request") names none.
pub(super) fn causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

fn to_value(message: &impl serde::Serialize) -> Result<Value, UpstreamError> {
    serde_json::to_value(message).map_err(|e| UpstreamError::Protocol(e.to_string()))
}

/// A JSON-RPC reply's result, or its error as [`UpstreamError::Rejected`].
fn outcome(mut message: Value) -> Result<Value, UpstreamError> {
    if let Some(error) = message.get_mut("error").map(Value::take) {
        let error: ErrorData = serde_json::from_value(error)
            .map_err(|e| UpstreamError::Protocol(format!("a malformed error: {e}")))?;
        return Err(UpstreamError::Rejected(error));
    }
    message
        .get_mut("result")
        .map(Value::take)
        .ok_or_else(|| UpstreamError::Protocol("a reply with neither result nor error".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A cancellation (or an answer to the upstream's request) that cannot reach the upstream is
    /// counted for `/health`, `/metrics` and `/api/upstreams`, not only logged.
    #[tokio::test]
    async fn an_undeliverable_message_is_counted() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .map(|address| address.port())
            .expect("a free port");
        let status = Arc::new(UpstreamStatus::default());
        let endpoint = Endpoint {
            name: UpstreamName::parse("gone").expect("a valid name"),
            url: format!("http://127.0.0.1:{port}/mcp").into(),
            headers: HashMap::new(),
            client: crate::gateway::http_client(None, None).expect("an HTTP client"),
            wire: None,
            status: status.clone(),
        };
        let now = Utc::now();
        let held = Held {
            id: Some(Arc::from("upstream-session")),
            row: UpstreamSessionRow {
                session_id: "client-session".into(),
                upstream: "gone".into(),
                upstream_session_id: Some("upstream-session".into()),
                protocol_version: "2025-11-25".into(),
                capabilities: Json(json!({})),
                initialize_params: Json(json!({})),
                reinitialized: 0,
                created_at: now,
                updated_at: now,
            },
            rediscover: None,
        };
        endpoint
            .cancel(7, &held, "the client cancelled the request")
            .await;
        assert_eq!(UpstreamStatus::read(&status.undelivered), 1);
    }
}
