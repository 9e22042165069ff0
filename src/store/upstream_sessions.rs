//! `mcp_upstream_sessions`: in gateway mode, the session Steward holds with each upstream server
//! for each client session, so a restarted Steward (or another replica) goes on using it.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::types::Json;

use super::{Store, on_pool};

/// One client session's session with one upstream server.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct UpstreamSessionRow {
    pub session_id: String,
    pub upstream: String,
    /// `None` for an upstream that gave no `Mcp-Session-Id` (a stateless one).
    pub upstream_session_id: Option<String>,
    /// The revision the upstream negotiated.
    pub protocol_version: String,
    /// The upstream's capabilities, as its `initialize` result stated them.
    pub capabilities: Json<Value>,
    /// The `initialize` parameters Steward sent, sent again when the upstream forgets the session.
    pub initialize_params: Json<Value>,
    /// How many times the upstream forgot the session and it was initialized again.
    pub reinitialized: i32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Store {
    /// Returns `Ok(None)` when Steward holds no session with `upstream` for `session_id`.
    pub async fn get_upstream_session(
        &self,
        session_id: &str,
        upstream: &str,
    ) -> Result<Option<UpstreamSessionRow>, sqlx::Error> {
        let sql = "SELECT * FROM mcp_upstream_sessions WHERE session_id = $1 AND upstream = $2";
        on_pool!(self, pool => sqlx::query_as::<_, UpstreamSessionRow>(sql)
            .bind(session_id)
            .bind(upstream)
            .fetch_optional(pool)
            .await)
    }

    /// Records (or replaces, after a re-initialization) a session with an upstream.
    pub async fn put_upstream_session(&self, row: &UpstreamSessionRow) -> Result<(), sqlx::Error> {
        let sql = "INSERT INTO mcp_upstream_sessions (session_id, upstream, upstream_session_id, \
                   protocol_version, capabilities, initialize_params, reinitialized, created_at, updated_at) \
                   VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (session_id, upstream) DO UPDATE SET \
                   upstream_session_id = excluded.upstream_session_id, protocol_version = excluded.protocol_version, \
                   capabilities = excluded.capabilities, initialize_params = excluded.initialize_params, \
                   reinitialized = excluded.reinitialized, updated_at = excluded.updated_at";
        on_pool!(self, pool => sqlx::query(sql)
            .bind(&row.session_id)
            .bind(&row.upstream)
            .bind(&row.upstream_session_id)
            .bind(&row.protocol_version)
            .bind(&row.capabilities)
            .bind(&row.initialize_params)
            .bind(row.reinitialized)
            .bind(row.created_at)
            .bind(row.updated_at)
            .execute(pool)
            .await
            .map(|_| ()))
    }
}
