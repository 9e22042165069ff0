//! Durable sessions: the same `Mcp-Session-Id` keeps working after a restart, a crash, or on
//! another replica, because the session lives in the database (`mcp_sessions`).
//!
//! - [`SessionManager`] (rmcp's in-memory manager with 256-bit ids and a bounded cache) serves
//!   live sessions without touching the database and notes their activity.
//! - [`Sessions`] is rmcp's `SessionStore`: it writes the row on `initialize`, loads it when a
//!   request names a session this replica does not hold (restart, crash, other replica), and
//!   marks it `client_delete` on HTTP DELETE.
//! - Background jobs ([`Sessions::spawn_jobs`]) flush activity, apply the lifecycle (idle →
//!   disconnected/expired), and close sessions ended by any replica within
//!   [`SessionSettings::revocation_poll`].
//!
//! Nothing here knows about the board's tools: this layer can front any MCP server.

pub mod client_type;
pub mod events;
pub mod hangup;
mod jobs;
pub mod logical;
pub mod manager;
pub mod restore_turns;

use crate::logs::LastError;
use crate::sync::lock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use rmcp::model::InitializeRequestParams;
use rmcp::transport::streamable_http_server::session::{
    SessionState, SessionStore, SessionStoreError,
};
use serde::Serialize;

pub use hangup::MAX_GRACE as MAX_HANGUP_GRACE;
pub use manager::SessionManager;

use crate::store::Store;
use crate::store::sessions::{CleanupRun, Lifecycle, NewSession};

/// Session lifecycle and background job timing.
#[derive(Debug, Clone)]
pub struct SessionSettings {
    /// No request for this long: labelled `idle` (still fully usable).
    pub idle_after: Duration,
    /// No request for this long: `disconnected` with reason `timeout_no_activity`.
    pub session_timeout: Duration,
    /// Older than this since `initialize`: `disconnected` with reason `expired`.
    pub max_age: Duration,
    /// How often the lifecycle is applied.
    pub cleanup_interval: Duration,
    /// How often each replica looks for sessions ended elsewhere: the bound on how long a
    /// revoked session can still be used on another replica.
    pub revocation_poll: Duration,
    /// How long a request whose client hung up waits for it to come back before it is
    /// cancelled (`--hangup-grace`).
    pub hangup_grace: Duration,
    /// How often activity (`last_activity`) is written to the database.
    pub activity_flush: Duration,
    /// Most sessions kept in memory per replica.
    pub max_cached: usize,
    /// Keep server-sent events in the database for replay after a restart or on another
    /// replica (`--event-store database`), not only in this replica's memory.
    pub durable_events: bool,
}

impl Default for SessionSettings {
    fn default() -> Self {
        SessionSettings {
            idle_after: Duration::from_secs(5 * 60),
            session_timeout: Duration::from_secs(24 * 60 * 60),
            max_age: Duration::from_secs(7 * 24 * 60 * 60),
            cleanup_interval: Duration::from_secs(60),
            revocation_poll: Duration::from_secs(2),
            hangup_grace: hangup::DEFAULT_GRACE,
            activity_flush: Duration::from_secs(1),
            max_cached: manager::DEFAULT_MAX_CACHED,
            durable_events: false,
        }
    }
}

impl SessionSettings {
    /// The lifecycle thresholds as of now.
    pub fn lifecycle(&self) -> Lifecycle {
        let now = Utc::now();
        let before =
            |d: Duration| now - chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX);
        Lifecycle {
            now,
            idle_before: before(self.idle_after),
            timeout_before: before(self.session_timeout),
            expire_before: before(self.max_age),
        }
    }
}

/// Failures of the session layer, counted and shown in `/health`.
#[derive(Debug, Default)]
pub struct SessionHealth {
    pub write_failures: AtomicU64,
    /// Dormant sessions woken from the `initialize` params held in memory because their row
    /// could not be read: served, but on a database that failed a read.
    pub woken_from_memory: AtomicU64,
    pub last_error: Mutex<LastError>,
    pub last_cleanup: Mutex<Option<CleanupRun>>,
}

/// What `/health` shows about sessions.
#[derive(Debug, Serialize)]
pub struct SessionReport {
    /// Sessions held in memory on this replica, with rmcp's worker or dormant (the ones
    /// `DEFAULT_MAX_CACHED` bounds): their requests need no database read to find them.
    pub cached_in_memory: usize,
    /// Of those, the ones held without rmcp's worker: calls answered outside rmcp serve them,
    /// anything else restores them first.
    pub dormant: usize,
    /// Sessions restored from the database since start (dormant ones woken included).
    pub restored: u64,
    /// Of those, the dormant ones woken from memory because their row could not be read.
    pub woken_from_memory: u64,
    pub write_failures: u64,
    pub last_error: Option<String>,
    pub cleanup: Option<CleanupRun>,
    pub healthy: bool,
}

/// The durable session layer; one per process, shared by every request.
pub struct Sessions {
    /// New sessions, for live views (`/api/events`).
    created: tokio::sync::broadcast::Sender<String>,
    store: Store,
    settings: SessionSettings,
    manager: Arc<SessionManager>,
    health: SessionHealth,
}

impl Sessions {
    /// `events` makes streams resumable (`Last-Event-ID`), see [`events::DbEventStore`].
    pub fn new(
        store: Store,
        settings: SessionSettings,
        events: Option<Arc<events::DbEventStore>>,
    ) -> Arc<Self> {
        let manager = SessionManager::new(settings.max_cached, settings.hangup_grace, events);
        Arc::new(Sessions {
            created: tokio::sync::broadcast::channel(256).0,
            store,
            settings,
            manager,
            health: SessionHealth::default(),
        })
    }

    /// Ids of sessions as they are created.
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<String> {
        self.created.subscribe()
    }

    pub fn manager(&self) -> Arc<SessionManager> {
        self.manager.clone()
    }

    pub fn settings(&self) -> &SessionSettings {
        &self.settings
    }

    /// Revokes a session: `revoked` in the database and closed here at once; other replicas
    /// close it within `revocation_poll`. Returns whether a live session was revoked.
    pub async fn revoke(&self, id: &str) -> Result<bool, sqlx::Error> {
        let connected_at = self.store.end_session(id, "revoked", "revoked").await?;
        self.forget_locally(id).await;
        if let Some(connected_at) = connected_at {
            crate::metrics::record_session_end(connected_at, "revoked");
        }
        Ok(connected_at.is_some())
    }

    /// Who created a session: `Ok(None)` when no session has this id, `Ok(Some(None))` when it
    /// was made without authentication. Memory first; the database for sessions held elsewhere.
    pub async fn owner_of(&self, id: &str) -> Result<Option<Option<String>>, sqlx::Error> {
        if let Some(owner) = self.manager.cached_owner(id) {
            return Ok(Some(owner));
        }
        let Some(row) = self.store.get_session(id).await? else {
            return Ok(None);
        };
        if self.manager.has_cached(id).await {
            self.manager.note_owner(id, row.principal.clone());
        }
        Ok(Some(row.principal))
    }

    /// Whether `Last-Event-ID: event_id` may be replayed to a request in session `session_id`
    /// made by `principal`: only when the event's stream was sent to that session (and, when
    /// its principal was known, to that principal). An unknown event is simply `false`.
    pub async fn may_replay(
        &self,
        event_id: &str,
        session_id: &str,
        principal: Option<&str>,
    ) -> Result<bool, sqlx::Error> {
        let Some(events) = self.manager.events() else {
            return Ok(false);
        };
        Ok(events.owner_of(event_id).await?.is_some_and(|owner| {
            owner.session_id == session_id
                && owner
                    .principal
                    .as_deref()
                    .is_none_or(|p| Some(p) == principal)
        }))
    }

    /// The protocol revision a session negotiated, if it is known.
    pub async fn protocol_of(&self, id: &str) -> Option<String> {
        match self.store.get_session(id).await {
            Ok(row) => row.and_then(|row| row.protocol_version),
            Err(error) => {
                tracing::warn!(%error, "cannot read a session's protocol version");
                None
            }
        }
    }

    /// Live HTTP sessions created by `owner`.
    pub async fn live_count(&self, owner: Option<&str>) -> Result<i64, sqlx::Error> {
        self.store.count_live_sessions(owner).await
    }

    pub async fn report(&self) -> SessionReport {
        let last_cleanup = lock(&self.health.last_cleanup).clone();
        let last_error = lock(&self.health.last_error).get().map(str::to_owned);
        SessionReport {
            cached_in_memory: self.manager.cached().await,
            dormant: self.manager.dormant(),
            restored: self.manager.restored(),
            woken_from_memory: self.health.woken_from_memory.load(Ordering::Relaxed),
            write_failures: self.health.write_failures.load(Ordering::Relaxed),
            healthy: last_error.is_none()
                && last_cleanup.as_ref().is_none_or(|run| run.error.is_none()),
            last_error,
            cleanup: last_cleanup,
        }
    }

    async fn forget_locally(&self, id: &str) {
        if let Err(error) = self.manager.forget(id).await {
            tracing::warn!(session_id = id, %error, "could not close the session in memory");
        }
    }

    /// Counts a failed write and keeps its message for `/health`; logs once per new message.
    fn write_failed(&self, what: &str, error: &sqlx::Error) {
        self.health.write_failures.fetch_add(1, Ordering::Relaxed);
        let message = format!("{what}: {error}");
        if let Some(message) = lock(&self.health.last_error).failed(message) {
            tracing::error!(error = %message, "session write failed");
        }
    }

    fn write_succeeded(&self) {
        if lock(&self.health.last_error).succeeded() {
            tracing::info!("session writes recovered");
        }
    }
}

/// The protocol version the session runs: the client's if Steward's session transport speaks
/// it, else the newest session-era version (what rmcp negotiates).
fn negotiated_version(requested: &str) -> String {
    const SESSION_ERA: &[&str] = &["2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25"];
    if SESSION_ERA.contains(&requested) {
        requested
    } else {
        "2025-11-25"
    }
    .to_string()
}

/// The most bytes of a client's capabilities (or of its whole initialize params) kept with its
/// session, after every string in them is cut; larger ones are kept as an empty object.
pub const MAX_CLIENT_JSON_BYTES: usize = 16 * 1024;

/// Client-sent JSON as kept with a session: strings cut, at most [`MAX_CLIENT_JSON_BYTES`].
fn bounded_json(value: serde_json::Value) -> Option<serde_json::Value> {
    let value = crate::protocol::cut_client_json(value);
    (value.to_string().len() <= MAX_CLIENT_JSON_BYTES).then_some(value)
}

/// The initialize params kept to restore the session: bounded like the rest, and when they are
/// still too large, just what a restore needs (version, client info, no capabilities).
fn bounded_params(params: &InitializeRequestParams) -> Option<serde_json::Value> {
    serde_json::to_value(params)
        .ok()
        .and_then(bounded_json)
        .or_else(|| {
            bounded_json(serde_json::json!({
                "protocolVersion": params.protocol_version,
                "capabilities": {},
                "clientInfo": {
                    "name": params.client_info.name,
                    "version": params.client_info.version,
                },
            }))
        })
}

/// The row recorded for a new HTTP session. Client strings are cut (see [`crate::protocol`]).
pub fn new_session_row(
    id: &str,
    params: &InitializeRequestParams,
    principal: Option<String>,
) -> NewSession {
    let client = &params.client_info;
    let cut = |text: &str| crate::protocol::cut_client_text(text).into_owned();
    NewSession {
        session_id: id.to_string(),
        kind: "session",
        protocol_version: Some(negotiated_version(params.protocol_version.as_str())),
        client_name: Some(cut(&client.name)),
        client_version: Some(cut(&client.version)),
        client_type: client_type::detect(&client.name).to_string(),
        client_capabilities: serde_json::to_value(&params.capabilities)
            .ok()
            .and_then(bounded_json)
            .unwrap_or_else(|| serde_json::json!({})),
        initialize_params: bounded_params(params),
        principal,
        at: Utc::now(),
    }
}

/// The row recorded for a connection without a session of its own (stdio, and stateless
/// clients): kind `logical`, nothing to restore.
pub fn logical_session_row(id: &str, params: &InitializeRequestParams) -> NewSession {
    NewSession {
        kind: "logical",
        initialize_params: None,
        ..new_session_row(id, params, None)
    }
}

#[async_trait::async_trait]
impl SessionStore for Sessions {
    async fn load(&self, session_id: &str) -> Result<Option<SessionState>, SessionStoreError> {
        if self.manager.was_ended(session_id) {
            tracing::info!(session_id, "session ended on this replica: 404");
            return Ok(None);
        }
        let row = match self
            .store
            .resume_session(session_id, &self.settings.lifecycle())
            .await
        {
            Ok(row) => row,
            // A dormant session held here wakes without the database, as it would have been
            // served with its worker.
            Err(error) => match self.manager.dormant_handshake(session_id) {
                Some(params) => {
                    self.health
                        .woken_from_memory
                        .fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(session_id, %error, "cannot read the session's row: woken from memory");
                    return Ok(Some(SessionState::new(params)));
                }
                None => return Err(error.into()),
            },
        };
        let Some(row) = row else {
            tracing::info!(session_id, "unknown, ended or expired session: 404");
            return Ok(None);
        };
        let Some(params) = row.initialize_params else {
            // A logical session (stateless or stdio) has no handshake to replay.
            return Ok(None);
        };
        let params: InitializeRequestParams = serde_json::from_value(params.0)?;
        tracing::info!(session_id, client = %crate::protocol::cut_client_text(&params.client_info.name), "session restored from the database");
        Ok(Some(SessionState::new(params)))
    }

    async fn store(&self, session_id: &str, state: &SessionState) -> Result<(), SessionStoreError> {
        let owner = self.manager.cached_owner(session_id).flatten();
        let row = new_session_row(session_id, &state.initialize_params, owner);
        match self.store.insert_session(&row).await {
            Ok(()) => {
                self.write_succeeded();
                // Nobody listening is fine.
                if self.created.send(session_id.to_string()).is_err() {
                    tracing::trace!("no live subscribers for new sessions");
                }
                Ok(())
            }
            Err(error) => {
                // rmcp only logs this error, so count and surface it here.
                self.write_failed("recording a new session", &error);
                Err(error.into())
            }
        }
    }

    async fn delete(&self, session_id: &str) -> Result<(), SessionStoreError> {
        match self
            .store
            .end_session(session_id, "disconnected", "client_delete")
            .await
        {
            Ok(connected_at) => {
                if let Some(connected_at) = connected_at {
                    crate::metrics::record_session_end(connected_at, "client_delete");
                }
                Ok(())
            }
            Err(error) => {
                self.write_failed("ending a session on DELETE", &error);
                Err(error.into())
            }
        }
    }
}
