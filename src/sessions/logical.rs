//! Logical sessions for clients without a session id: stateless 2026-07-28 requests over HTTP
//! (stdio connections get theirs in `mcp::stdio`). Requests from the same principal and client
//! name/version belong to one logical session until a gap of [`GAP`]; the session is a row of
//! kind `logical` in `mcp_sessions`, so the ledger and the dashboard treat every client alike.
//!
//! Client name and version are cut (see [`crate::protocol::cut_client_text`]) before they key
//! anything, and at most [`MAX_OPEN`] logical sessions are remembered (least recently used
//! forgotten first; a forgotten client simply starts a new logical session).

use std::sync::Mutex;
use std::time::{Duration, Instant};

use chrono::Utc;
use hashlink::LruCache;
use serde::{Deserialize, Deserializer};
use serde_json::Value;

use super::client_type;
use crate::ledger::http::Attribution;
use crate::principal::Principal;
use crate::protocol::{self, Envelope};
use crate::store::Store;
use crate::store::sessions::NewSession;
use crate::sync::lock;

/// A pause longer than this starts a new logical session.
pub const GAP: Duration = Duration::from_secs(30 * 60);
/// `last_activity` of a logical session is written at most this often.
const TOUCH_EVERY: Duration = Duration::from_secs(30);
/// Logical sessions remembered in memory.
pub const MAX_OPEN: usize = 10_000;

type Key = (Option<String>, String, String);

struct Entry {
    id: String,
    last_seen: Instant,
    last_written: Instant,
}

pub struct LogicalSessions {
    store: Store,
    open: Mutex<LruCache<Key, Entry>>,
}

impl LogicalSessions {
    pub fn new(store: Store) -> Self {
        Self::with_capacity(store, MAX_OPEN)
    }

    pub fn with_capacity(store: Store, capacity: usize) -> Self {
        LogicalSessions {
            store,
            open: Mutex::new(LruCache::new(capacity.max(1))),
        }
    }

    /// Logical sessions remembered now.
    pub fn remembered(&self) -> usize {
        lock(&self.open).len()
    }

    /// The logical session for this client now, creating (and recording) one when needed.
    pub fn session_for_client(
        &self,
        principal: Option<String>,
        name: &str,
        version: &str,
        protocol: &str,
    ) -> String {
        let name = crate::protocol::cut_client_text(name);
        let version = crate::protocol::cut_client_text(version);
        let key = (principal.clone(), name.to_string(), version.to_string());
        let now = Instant::now();
        let mut open = lock(&self.open);
        if let Some(entry) = open
            .get_mut(&key)
            .filter(|e| now.duration_since(e.last_seen) < GAP)
        {
            entry.last_seen = now;
            if now.duration_since(entry.last_written) >= TOUCH_EVERY {
                entry.last_written = now;
                self.touch(entry.id.clone());
            }
            return entry.id.clone();
        }
        let id = format!("logical-{}", super::manager::new_session_id());
        open.insert(
            key,
            Entry {
                id: id.clone(),
                last_seen: now,
                last_written: now,
            },
        );
        drop(open);
        self.record(NewSession {
            session_id: id.clone(),
            kind: "logical",
            protocol_version: Some(protocol.to_string()),
            client_name: Some(name.to_string()),
            client_version: Some(version.to_string()),
            client_type: client_type::detect(&name).to_string(),
            client_capabilities: Value::Object(Default::default()),
            initialize_params: None,
            principal,
            at: Utc::now(),
        });
        id
    }

    fn record(&self, row: NewSession) {
        let store = self.store.clone();
        tokio::spawn(async move {
            if let Err(error) = store.insert_session(&row).await {
                tracing::error!(%error, session_id = %row.session_id, "could not record a logical session");
            }
        });
    }

    fn touch(&self, id: String) {
        let store = self.store.clone();
        tokio::spawn(async move {
            if let Err(error) = store.touch_sessions(&[id], Utc::now()).await {
                tracing::warn!(%error, "could not record logical session activity");
            }
        });
    }
}

impl Attribution for LogicalSessions {
    fn session_for(&self, principal: &Principal, envelope: &Envelope) -> Option<String> {
        let revision = envelope.revision()?;
        // Older revisions must send a session id; rmcp rejects them, and no session is made up.
        if !protocol::is_stateless(revision) {
            return None;
        }
        let info = envelope
            .single()
            .and_then(|message| envelope.params(message))
            .and_then(|params| serde_json::from_str::<Params>(params).ok())
            .and_then(|params| params.meta?.client_info)
            .unwrap_or_default();
        let text = |field: Option<String>| field.unwrap_or_else(|| "unknown".to_string());
        Some(self.session_for_client(
            principal.name().map(str::to_string),
            &text(info.name),
            &text(info.version),
            revision,
        ))
    }
}

/// The part of a stateless request's params that names its client.
#[derive(Deserialize)]
struct Params {
    #[serde(rename = "_meta", default)]
    meta: Option<Meta>,
}

#[derive(Deserialize)]
struct Meta {
    #[serde(rename = "io.modelcontextprotocol/clientInfo", default)]
    client_info: Option<ClientInfo>,
}

#[derive(Deserialize, Default)]
struct ClientInfo {
    #[serde(default, deserialize_with = "text_only")]
    name: Option<String>,
    #[serde(default, deserialize_with = "text_only")]
    version: Option<String>,
}

/// A string field; any other JSON value counts as absent.
fn text_only<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::String(text) => Some(text),
        _ => None,
    })
}
