//! [`SessionManager`]: rmcp's in-memory session manager with Steward's additions — session
//! ids with 256 random bits, a bound on live in-memory sessions (the cache; the database is the
//! truth), a note of every session's activity for the database, and dormant sessions: held
//! without rmcp's worker while whatever answers their requests outside rmcp can (see
//! [`SessionManager::rest`]).
//!
//! It knows nothing about the board or its tools, so it can front any MCP server.

use crate::principal::Principal;
use crate::sync::lock;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use futures::{Stream, StreamExt};
use rand::RngCore;
use rmcp::model::{
    ClientJsonRpcMessage, ClientNotification, ClientRequest, GetExtensions,
    InitializeRequestParams, JsonRpcMessage, ServerJsonRpcMessage,
};
use rmcp::transport::WorkerTransport;
use rmcp::transport::streamable_http_server::session::local::{
    LocalSessionManager, LocalSessionManagerError, LocalSessionWorker, SessionError,
};
use rmcp::transport::streamable_http_server::session::{
    EventStore, RestoreOutcome, ServerSseMessage, SessionId, SessionManager as RmcpSessionManager,
};

use super::events::{DbEventStore, StreamOwner};
use super::hangup;
use super::restore_turns::{RestoreTurn, RestoreTurns};

/// How long a session ended here (DELETE) is refused a restore from the database: rmcp drops it
/// from memory before it marks the row ended, and a request arriving in between would
/// otherwise bring the deleted session back.
const ENDED_MEMORY: std::time::Duration = std::time::Duration::from_secs(60);

/// The maps by session id, hashed with foldhash rather than SipHash: a call looks its session
/// up in about a dozen of them, and SipHash of the id was most of each lookup. What they hold
/// are ids of sessions Steward made (a client's unknown id is only looked up), and foldhash is
/// seeded per process.
type BySession<V> = HashMap<SessionId, V, foldhash::fast::RandomState>;
type SessionSet = HashSet<SessionId, foldhash::fast::RandomState>;

/// Most sessions kept in memory by default, with or without their worker; older idle ones are
/// dropped from memory (they stay in the database and are restored on their next request, in a
/// millisecond or two). Each one held with its worker costs ~90-150 KiB of the resident set
/// (rmcp's worker, service task and channels), a dormant one ~33 KiB, so this bounds the
/// sessions' share near 100 MiB at worst and ~33 MiB when they are dormant.
pub const DEFAULT_MAX_CACHED: usize = 1_000;

/// How long a session being made dormant waits, holding its restore turn, for its worker's
/// service to end and close the session here once more (see [`SessionManager::close_session`]).
const QUIET: Duration = Duration::from_secs(1);

/// How often a session whose requests are answered outside rmcp ([`SessionManager::own_stream`])
/// is shown to rmcp's worker as in use: the worker ends a session it has heard nothing from
/// for its keep-alive (`SessionConfig::DEFAULT_KEEP_ALIVE`, 5 minutes), cutting its GET stream.
const WAKE_EVERY: Duration = Duration::from_secs(60);

/// A reply stream as rmcp takes it back from the session manager: what the stream adapters
/// here (`held`, `claiming`, `hangup::watch`) take and give.
pub(super) trait SseStream: Stream<Item = ServerSseMessage> + Send + Sync + 'static {}

impl<S: Stream<Item = ServerSseMessage> + Send + Sync + 'static> SseStream for S {}

pub struct SessionManager {
    inner: LocalSessionManager,
    /// The replay store, also given to `inner`: streams are claimed for their session here.
    events: Option<Arc<DbEventStore>>,
    max_cached: usize,
    /// Last request per session: `Instant` orders evictions, `DateTime` goes to the database.
    seen: Mutex<BySession<(Instant, DateTime<Utc>)>>,
    /// Activity not yet written to the database.
    unflushed: Mutex<BySession<DateTime<Utc>>>,
    /// Sessions whose handshake rmcp is replaying after a restore. Until the replayed
    /// `notifications/initialized` is in, they are reported absent, so parallel first requests
    /// wait for the restore (rmcp serialises restores) instead of reaching a worker that has
    /// not been initialised yet.
    restoring: Mutex<SessionSet>,
    /// Who created each session held here (None: made without authentication).
    owners: Mutex<BySession<Option<String>>>,
    /// Sessions ended on this replica in the last [`ENDED_MEMORY`], never to be restored.
    ended: Mutex<BySession<Instant>>,
    /// Streams open per session (a call awaiting its reply, a GET stream) and its requests in
    /// rmcp: such a session is never dropped to make room, since dropping it would cut the
    /// stream and lose the reply, nor made dormant.
    open_streams: Mutex<BySession<usize>>,
    /// Sessions held without rmcp's worker (see [`SessionManager::rest`]).
    dormant: Mutex<SessionSet>,
    /// The `initialize` params of each session held here: a dormant one wakes with them when
    /// the database cannot be read (held with its worker, it would have needed nothing of it).
    handshakes: Mutex<BySession<InitializeRequestParams>>,
    /// Sessions woken from dormancy while held here: they keep their worker (a client whose
    /// calls need rmcp would otherwise be restored on every call).
    woken_up: Mutex<SessionSet>,
    /// Sessions that have sent rmcp nothing since their `initialize` (or restore) but the
    /// handshake's end and tool calls: `true` once whatever serves their requests outside rmcp
    /// has said it can ([`SessionManager::rest`]). Only they are made dormant.
    fresh: Mutex<BySession<bool>>,
    /// Sessions whose worker is being dropped to make them dormant: their worker's service,
    /// when it ends, closes the session here once more, which only fires this.
    quieting: Mutex<BySession<tokio::sync::oneshot::Sender<()>>>,
    /// Sessions brought back into memory from the database since start (dormant ones woken
    /// included).
    restored: AtomicU64,
    /// Requests for a session not live here take turns (see [`RestoreTurns`]).
    restore_turns: RestoreTurns,
    /// When each session last resumed a stream (`Last-Event-ID`), within the last few
    /// hang-up graces: a request whose client hung up is not cancelled while it may be coming
    /// back.
    resumed: Mutex<BySession<tokio::time::Instant>>,
    /// How long a request whose client hung up waits for it to come back.
    hangup_grace: Duration,
    /// When each session's worker was last shown the session is in use (see [`WAKE_EVERY`]).
    woken: Mutex<BySession<Instant>>,
    /// Itself, for what outlives a call (cancelling a request whose client hung up).
    this: Weak<SessionManager>,
}

/// Counts a stream (or a request in rmcp) as open for its session until it is dropped.
pub struct OpenStream {
    manager: Weak<SessionManager>,
    id: SessionId,
}

impl OpenStream {
    fn new(manager: &SessionManager, id: &SessionId) -> Self {
        *lock(&manager.open_streams).entry(id.clone()).or_insert(0) += 1;
        OpenStream {
            manager: manager.this.clone(),
            id: id.clone(),
        }
    }
}

impl Drop for OpenStream {
    fn drop(&mut self) {
        let Some(manager) = self.manager.upgrade() else {
            return;
        };
        let closed = {
            let mut open = lock(&manager.open_streams);
            match open.get_mut(&self.id) {
                Some(count) if *count > 1 => {
                    *count -= 1;
                    false
                }
                Some(_) => open.remove(&self.id).is_some(),
                None => false,
            }
        };
        // The last one: a session waiting for its handshake's request to end may rest now.
        if closed && lock(&manager.fresh).get(&self.id) == Some(&true) {
            manager.rest_soon(&self.id);
        }
    }
}

/// A request's reply stream written outside rmcp, as rmcp's are: the request counts as the
/// session's activity, the session is not dropped from memory while the stream is open, and
/// each event is stored for replay (`Last-Event-ID`), the first one claiming the stream for
/// the session.
pub struct OwnStream {
    stream_id: String,
    events: Arc<DbEventStore>,
    /// Until the first event is stored.
    owner: Option<StreamOwner>,
    _open: OpenStream,
}

impl OwnStream {
    /// Stores `event` for replay; its event id.
    pub fn store(&mut self, event: &ServerSseMessage) -> String {
        let id = self.events.keep(&self.stream_id, event);
        if let Some(owner) = self.owner.take() {
            self.events.claim(&id, &owner);
        }
        id
    }
}

/// A stream's id: a random (version 4) UUID's hyphenated text, as `Uuid::to_string` writes
/// it, encoded without the formatting machinery (one per call served outside rmcp).
fn new_stream_id() -> String {
    uuid::Uuid::new_v4()
        .hyphenated()
        .encode_lower(&mut uuid::Uuid::encode_buffer())
        .to_owned()
}

impl SessionManager {
    /// `hangup_grace`: how long a request whose client hung up waits for it to come back
    /// before it is cancelled.
    pub fn new(
        max_cached: usize,
        hangup_grace: Duration,
        events: Option<Arc<DbEventStore>>,
    ) -> Arc<Self> {
        let inner = match &events {
            Some(events) => LocalSessionManager::default()
                .with_event_store(events.clone() as Arc<dyn EventStore>),
            None => LocalSessionManager::default(),
        };
        Arc::new_cyclic(|this| SessionManager {
            inner,
            events,
            max_cached: max_cached.max(1),
            seen: Mutex::default(),
            unflushed: Mutex::default(),
            restoring: Mutex::default(),
            owners: Mutex::default(),
            ended: Mutex::default(),
            open_streams: Mutex::default(),
            dormant: Mutex::default(),
            handshakes: Mutex::default(),
            woken_up: Mutex::default(),
            fresh: Mutex::default(),
            quieting: Mutex::default(),
            restored: AtomicU64::new(0),
            restore_turns: RestoreTurns::default(),
            resumed: Mutex::default(),
            hangup_grace,
            woken: Mutex::default(),
            this: this.clone(),
        })
    }

    /// Hands the session's worker a message Steward sends in its client's name (not counted as
    /// the client's activity).
    pub(super) async fn on_behalf(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> Result<(), LocalSessionManagerError> {
        self.inner.accept_message(id, message).await
    }

    /// How long a request whose client hung up waits for it to come back (`--hangup-grace`).
    pub fn hangup_grace(&self) -> Duration {
        self.hangup_grace
    }

    /// When `id` last resumed a stream, if it did lately.
    pub fn resumed(&self, id: &SessionId) -> Option<tokio::time::Instant> {
        lock(&self.resumed).get(id).copied()
    }

    /// Number of sessions held in memory now: with their worker or dormant (the sessions
    /// `max_cached` bounds).
    pub async fn cached(&self) -> usize {
        let workers = self.inner.sessions.read().await;
        let dormant = lock(&self.dormant);
        // One whose worker is being dropped is counted once.
        workers.len()
            + dormant
                .iter()
                .filter(|id| !workers.contains_key(*id))
                .count()
    }

    /// Number of sessions held in memory without their worker.
    pub fn dormant(&self) -> usize {
        lock(&self.dormant).len()
    }

    /// Sessions brought back into memory from the database since start.
    pub fn restored(&self) -> u64 {
        self.restored.load(Ordering::Relaxed)
    }

    /// Whether this replica holds the session in memory, with its worker or dormant.
    pub async fn has_cached(&self, id: &str) -> bool {
        self.is_dormant(id) || self.inner.sessions.read().await.contains_key(id)
    }

    /// The `initialize` params of session `id` if it is held here dormant.
    pub fn dormant_handshake(&self, id: &str) -> Option<InitializeRequestParams> {
        if !self.is_dormant(id) {
            return None;
        }
        lock(&self.handshakes).get(id).cloned()
    }

    /// Whether the session is held here without its worker: its requests that need rmcp
    /// restore it first.
    pub fn is_dormant(&self, id: &str) -> bool {
        lock(&self.dormant).contains(id)
    }

    /// Whether a request for session `id` can go straight to rmcp: its worker is held here, it
    /// is not dormant and not half-way through a restore.
    pub async fn is_live(&self, id: &str) -> bool {
        !lock(&self.restoring).contains(id)
            && !self.is_dormant(id)
            && self.inner.sessions.read().await.contains_key(id)
    }

    /// Whether a request for session `id` can be answered outside rmcp: it is live or dormant.
    pub async fn is_held(&self, id: &str) -> bool {
        self.is_dormant(id) || self.is_live(id).await
    }

    /// Counts a request of session `id` on its way into rmcp until the guard is dropped: a
    /// session is never made dormant under it (nor dropped to make room).
    pub fn entering(&self, id: &str) -> OpenStream {
        OpenStream::new(self, &Arc::from(id))
    }

    /// Says that whatever answers session `id`'s requests outside rmcp can answer them
    /// without its worker. A session that has sent rmcp nothing since its `initialize` (or
    /// its restore from the database) but the end of its handshake and tool calls (none that
    /// [`SessionManager::keep`] it) is then made dormant, once no request of it is in rmcp and
    /// no stream of it is open: its worker is dropped, and its next request that needs rmcp
    /// restores it from the database as on any other replica. A session that has made any
    /// other request of rmcp, or was woken from dormancy here, keeps its worker.
    pub fn rest(&self, id: &str) {
        match lock(&self.fresh).get_mut(id) {
            Some(ready) => *ready = true,
            None => return,
        }
        self.rest_soon(&Arc::from(id));
    }

    /// Says session `id` needs its worker from now on (it made a request that only rmcp
    /// answers): it is not made dormant.
    pub fn keep(&self, id: &str) {
        lock(&self.fresh).remove(id);
    }

    fn rest_soon(&self, id: &SessionId) {
        let (Some(this), Ok(runtime)) =
            (self.this.upgrade(), tokio::runtime::Handle::try_current())
        else {
            return;
        };
        runtime.spawn(this.make_dormant(id.clone()));
    }

    /// Drops session `id`'s worker if it may rest now. Under the session's restore turn, so
    /// no request restores it meanwhile; a request arriving meanwhile finds it dormant and
    /// waits for that turn.
    async fn make_dormant(self: Arc<Self>, id: SessionId) {
        let _turn = self.restore_turns.take(&id).await;
        if !self.inner.sessions.read().await.contains_key(&id) {
            return;
        }
        {
            let open = lock(&self.open_streams);
            let mut fresh = lock(&self.fresh);
            if open.contains_key(&id)
                || fresh.get(&id) != Some(&true)
                || lock(&self.restoring).contains(&id)
            {
                return;
            }
            fresh.remove(&id);
            lock(&self.dormant).insert(id.clone());
        }
        let (told, heard) = tokio::sync::oneshot::channel();
        lock(&self.quieting).insert(id.clone(), told);
        if let Err(error) = self.inner.close_session(&id).await {
            tracing::warn!(session_id = %id, %error, "could not drop a dormant session's worker");
        }
        // Still under the turn: the service's late close must not reach a worker restored
        // after this one.
        if tokio::time::timeout(QUIET, heard).await.is_err() {
            tracing::debug!(session_id = %id, "a dormant session's service did not end in time");
        }
        lock(&self.quieting).remove(&id);
        tracing::debug!(session_id = %id, "session dormant: its worker dropped");
    }

    /// Waits until no other request for session `id` is in rmcp on its way to restore it,
    /// then holds that place until the turn is dropped.
    pub async fn restore_turn(&self, id: &str) -> RestoreTurn {
        self.restore_turns.take(id).await
    }

    /// Drops a session from memory on this replica (revoked, expired or deleted elsewhere).
    /// A no-op when it is not here.
    pub async fn forget(&self, id: &str) -> Result<(), LocalSessionManagerError> {
        let id: SessionId = Arc::from(id);
        self.drop_notes(&id);
        self.inner.close_session(&id).await
    }

    /// Forgets what is noted of session `id` here, as it leaves memory.
    fn drop_notes(&self, id: &SessionId) {
        lock(&self.seen).remove(id);
        lock(&self.owners).remove(id);
        lock(&self.woken).remove(id);
        lock(&self.dormant).remove(id);
        lock(&self.handshakes).remove(id);
        lock(&self.woken_up).remove(id);
        lock(&self.fresh).remove(id);
    }

    /// Whether the session was ended on this replica moments ago (its row may not say so yet).
    pub fn was_ended(&self, id: &str) -> bool {
        lock(&self.ended).contains_key(id)
    }

    /// Notes that a client is ending the session (DELETE): from now on this replica never
    /// restores it, even while its row still says it is live.
    pub fn note_ended(&self, id: &str) {
        let now = Instant::now();
        let mut ended = lock(&self.ended);
        ended.retain(|_, at| now.duration_since(*at) < ENDED_MEMORY);
        ended.insert(Arc::from(id), now);
    }

    /// The owner of a session this replica holds, if it knows it.
    pub fn cached_owner(&self, id: &str) -> Option<Option<String>> {
        lock(&self.owners).get(id).cloned()
    }

    /// Notes a session's owner (learned from the database after a restore).
    pub fn note_owner(&self, id: &str, owner: Option<String>) {
        lock(&self.owners).insert(Arc::from(id), owner);
    }

    /// A reply stream for a request of session `id` that Steward writes itself, outside rmcp
    /// (see [`OwnStream`]); `None` when streams are not resumable here, so rmcp serves it.
    pub fn own_stream(&self, id: &str) -> Option<OwnStream> {
        let events = self.events.clone()?;
        let id: SessionId = Arc::from(id);
        self.touch(&id);
        self.keep_awake(&id);
        let owner = StreamOwner {
            session_id: id.to_string(),
            principal: self.cached_owner(&id).flatten(),
        };
        Some(OwnStream {
            stream_id: new_stream_id(),
            events,
            owner: Some(owner),
            _open: OpenStream::new(self, &id),
        })
    }

    /// Shows rmcp's worker of session `id` that the session is in use, at most every
    /// [`WAKE_EVERY`]: a request answered outside rmcp never reaches the worker. What it is
    /// sent changes nothing (it closes the stream of a request id rmcp never gives).
    fn keep_awake(&self, id: &SessionId) {
        let now = Instant::now();
        let recent = |at: &Instant| now.duration_since(*at) < WAKE_EVERY;
        if lock(&self.woken).get(id).is_some_and(recent) {
            return;
        }
        // Not waiting for the lock: a session missed now is woken on its next request.
        let Ok(sessions) = self.inner.sessions.try_read() else {
            return;
        };
        let Some(handle) = sessions.get(id).cloned() else {
            return;
        };
        drop(sessions);
        lock(&self.woken).insert(id.clone(), now);
        tokio::spawn(async move {
            if let Err(error) = handle.close_request_wise_channel(u64::MAX).await {
                tracing::debug!(%error, "cannot reach the session's worker");
            }
        });
    }

    /// The replay store, if streams are resumable.
    pub fn events(&self) -> Option<&Arc<DbEventStore>> {
        self.events.as_ref()
    }

    /// `stream`, counted as open for session `id` until it is dropped.
    fn held<S: SseStream>(&self, id: &SessionId, stream: S) -> impl SseStream + use<S> {
        let open = OpenStream::new(self, id);
        stream.map(move |event| {
            let _ = &open;
            event
        })
    }

    /// `stream`, recording on its first event that the stream belongs to session `id` (and
    /// its owner), so only that session can replay it.
    fn claiming<S: SseStream>(&self, id: &SessionId, stream: S) -> impl SseStream + use<S> {
        let Some(events) = self.events.clone() else {
            return stream.right_stream();
        };
        let owner = StreamOwner {
            session_id: id.to_string(),
            principal: self.cached_owner(id).flatten(),
        };
        let mut claimed = false;
        stream
            .map(move |event| {
                if !claimed && let Some(event_id) = &event.event_id {
                    events.claim(event_id, &owner);
                    claimed = true;
                }
                event
            })
            .left_stream()
    }

    /// Takes the activity recorded since the last call, for the database.
    pub fn take_activity(&self) -> Vec<(String, DateTime<Utc>)> {
        std::mem::take(&mut *lock(&self.unflushed))
            .into_iter()
            .map(|(id, at)| (id.to_string(), at))
            .collect()
    }

    /// Puts activity back after a failed write, keeping the newest time per session.
    pub fn restore_activity(&self, activity: Vec<(String, DateTime<Utc>)>) {
        let mut unflushed = lock(&self.unflushed);
        for (id, at) in activity {
            let entry = unflushed.entry(Arc::from(id)).or_insert(at);
            *entry = (*entry).max(at);
        }
    }

    fn touch(&self, id: &SessionId) {
        let now = Utc::now();
        lock(&self.seen).insert(id.clone(), (Instant::now(), now));
        lock(&self.unflushed).insert(id.clone(), now);
    }

    /// Keeps at most `max_cached` sessions in memory by dropping the least recently used one
    /// with no open stream; while every one has a stream open, the cache grows past the bound.
    async fn make_room(&self) {
        let len = self.cached().await;
        if len < self.max_cached {
            return;
        }
        let oldest = {
            let open = lock(&self.open_streams);
            let seen = lock(&self.seen);
            seen.iter()
                .filter(|(id, _)| !open.contains_key(*id))
                .min_by_key(|(_, (at, _))| *at)
                .map(|(id, _)| id.clone())
        };
        if let Some(id) = oldest {
            tracing::debug!(session_id = %id, "session cache full: dropping the least recently used session from memory");
            if let Err(error) = self.forget(&id).await {
                tracing::warn!(session_id = %id, %error, "could not drop a cached session");
            }
        }
    }
}

/// A session id with 256 random bits, hex-encoded (64 characters).
pub fn new_session_id() -> SessionId {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    Arc::from(hex)
}

impl RmcpSessionManager for SessionManager {
    type Error = LocalSessionManagerError;
    type Transport = WorkerTransport<LocalSessionWorker>;

    async fn create_session(&self) -> Result<(SessionId, Self::Transport), Self::Error> {
        self.make_room().await;
        // rmcp's manager only takes a caller-chosen id through `restore_session`, which
        // creates a fresh worker (with the event store) under that id: exactly a new session.
        loop {
            let id = new_session_id();
            match self.inner.restore_session(id.clone()).await? {
                RestoreOutcome::Restored(transport) => {
                    self.touch(&id);
                    return Ok((id, transport));
                }
                // 256 random bits do not collide; if they ever did, draw again.
                _ => continue,
            }
        }
    }

    async fn initialize_session(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> Result<ServerJsonRpcMessage, Self::Error> {
        // rmcp hands the HTTP request's parts to the handler; the principal rides in them,
        // put there by whatever authenticated the request. Recorded on the session, no more.
        if let JsonRpcMessage::Request(request) = &message {
            let owner = request
                .request
                .extensions()
                .get::<axum::http::request::Parts>()
                .and_then(|parts| parts.extensions.get::<Principal>())
                .and_then(|principal| principal.name().map(str::to_string));
            lock(&self.owners).insert(id.clone(), owner);
            if let ClientRequest::InitializeRequest(initialize) = &request.request {
                let params = initialize.params.clone();
                lock(&self.handshakes).insert(id.clone(), params);
            }
        }
        // A new session starts out fresh, and so does one restored from the database (what it
        // had set in rmcp was lost with its worker), unless it was woken from dormancy here.
        if !lock(&self.woken_up).contains(id) {
            lock(&self.fresh).insert(id.clone(), false);
        }
        self.inner.initialize_session(id, message).await
    }

    async fn has_session(&self, id: &SessionId) -> Result<bool, Self::Error> {
        if lock(&self.restoring).contains(id) {
            return Ok(false);
        }
        self.inner.has_session(id).await
    }

    /// rmcp closes a session on DELETE, and when a worker's service ends. A dormant session's
    /// dropped worker ends that way too: that close is no end of the session.
    async fn close_session(&self, id: &SessionId) -> Result<(), Self::Error> {
        if let Some(quieted) = lock(&self.quieting).remove(id) {
            // Nobody waiting any more (it gave up after QUIET) is fine.
            if quieted.send(()).is_err() {
                tracing::trace!(session_id = %id, "a dormant session's service ended late");
            }
            return Ok(());
        }
        if self.is_dormant(id) && !self.was_ended(id) {
            return Ok(());
        }
        self.drop_notes(id);
        lock(&self.restoring).remove(id);
        self.inner.close_session(id).await
    }

    async fn create_stream(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error> {
        self.touch(id);
        let request = match &message {
            JsonRpcMessage::Request(request) => Some(request.id.clone()),
            _ => None,
        };
        // A tool call leaves nothing in the session (what answers calls outside rmcp says
        // when it cannot answer one, see `keep`); any other request may (a log level, a
        // subscription).
        if !matches!(&message, JsonRpcMessage::Request(r) if matches!(r.request, ClientRequest::CallToolRequest(_)))
        {
            lock(&self.fresh).remove(id);
        }
        let stream = self.inner.create_stream(id, message).await?;
        let grace = self.hangup_grace;
        let stream = hangup::watch(stream, request, id, self.this.clone(), grace);
        Ok(self.held(id, self.claiming(id, stream)))
    }

    async fn accept_message(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> Result<(), Self::Error> {
        self.touch(id);
        let completes_handshake = matches!(
            &message,
            JsonRpcMessage::Notification(n) if matches!(n.notification, ClientNotification::InitializedNotification(_))
        );
        self.inner.accept_message(id, message).await?;
        if completes_handshake {
            lock(&self.restoring).remove(id);
        }
        Ok(())
    }

    async fn create_standalone_stream(
        &self,
        id: &SessionId,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error> {
        self.touch(id);
        lock(&self.fresh).remove(id);
        let stream = self.inner.create_standalone_stream(id).await?;
        Ok(self.held(id, self.claiming(id, stream)))
    }

    async fn resume(
        &self,
        id: &SessionId,
        last_event_id: String,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error> {
        self.touch(id);
        lock(&self.fresh).remove(id);
        {
            let now = tokio::time::Instant::now();
            let mut resumed = lock(&self.resumed);
            let kept = self.hangup_grace.saturating_mul(4);
            resumed.retain(|_, at| now.duration_since(*at) < kept);
            resumed.insert(id.clone(), now);
        }
        let Some(events) = &self.events else {
            let stream = self.inner.resume(id, last_event_id).await?;
            return Ok(self.held(id, stream).right_stream());
        };
        // Only this session's streams: rmcp's own resume would replay any stream by event id.
        let replayed = events
            .replay_in_session(&last_event_id, id)
            .await
            .map_err(|error| SessionError::EventStore(error.into()))?;
        Ok(futures::stream::iter(replayed).left_stream())
    }

    async fn restore_session(
        &self,
        id: SessionId,
    ) -> Result<RestoreOutcome<Self::Transport>, Self::Error> {
        if self.was_ended(&id) {
            return Ok(RestoreOutcome::NotSupported);
        }
        // Woken: from now on held with its worker.
        if lock(&self.dormant).remove(&id) {
            lock(&self.woken_up).insert(id.clone());
        }
        self.make_room().await;
        // A restore that failed half-way left a worker that never finished its handshake:
        // drop it and start over.
        if lock(&self.restoring).contains(&id) {
            self.inner.close_session(&id).await?;
        }
        // Marked before the worker exists, so no request can see the session half-restored.
        lock(&self.restoring).insert(id.clone());
        let outcome = self.inner.restore_session(id.clone()).await;
        if matches!(outcome, Ok(RestoreOutcome::Restored(_))) {
            self.restored.fetch_add(1, Ordering::Relaxed);
            self.touch(&id);
        } else {
            lock(&self.restoring).remove(&id);
        }
        outcome
    }

    fn event_store(&self) -> Option<Arc<dyn EventStore>> {
        self.inner.event_store()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stream_id_is_a_random_uuid_s_text() {
        let id = new_stream_id();
        let parsed = uuid::Uuid::parse_str(&id).expect("a UUID");
        assert_eq!(parsed.get_version_num(), 4);
        assert_eq!(id, parsed.to_string());
        assert_ne!(new_stream_id(), id);
    }

    async fn new_session(
        manager: &SessionManager,
    ) -> (SessionId, WorkerTransport<LocalSessionWorker>) {
        let session = manager.create_session().await.expect("a session in memory");
        // Distinct last-use times, so "least recently used" names one session.
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        session
    }

    #[tokio::test]
    async fn a_full_cache_drops_the_least_recently_used_idle_session() {
        let manager = SessionManager::new(2, hangup::DEFAULT_GRACE, None);
        let (a, _ta) = new_session(&manager).await;
        let (b, _tb) = new_session(&manager).await;
        let (c, _tc) = new_session(&manager).await;
        assert_eq!(manager.cached().await, 2);
        assert!(!manager.has_cached(&a).await);
        assert!(manager.has_cached(&b).await && manager.has_cached(&c).await);
    }

    #[tokio::test]
    async fn a_session_with_an_open_stream_is_never_dropped_to_make_room() {
        let manager = SessionManager::new(2, hangup::DEFAULT_GRACE, None);
        let (a, _ta) = new_session(&manager).await;
        let (b, _tb) = new_session(&manager).await;
        let awaiting_reply = OpenStream::new(&manager, &a);
        let (c, _tc) = new_session(&manager).await;
        assert!(
            manager.has_cached(&a).await,
            "the oldest, but its stream is open"
        );
        assert!(!manager.has_cached(&b).await);
        assert!(manager.has_cached(&c).await);

        drop(awaiting_reply);
        let (d, _td) = new_session(&manager).await;
        assert!(
            !manager.has_cached(&a).await,
            "closed streams no longer hold it"
        );
        assert!(manager.has_cached(&c).await && manager.has_cached(&d).await);
    }

    #[tokio::test]
    async fn the_cache_grows_past_its_bound_while_every_session_has_a_stream_open() {
        let manager = SessionManager::new(1, hangup::DEFAULT_GRACE, None);
        let (a, _ta) = new_session(&manager).await;
        let _open = OpenStream::new(&manager, &a);
        let (b, _tb) = new_session(&manager).await;
        assert!(manager.has_cached(&a).await && manager.has_cached(&b).await);
    }
}
