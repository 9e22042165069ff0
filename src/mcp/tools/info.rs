//! `health_check`, `session_info`.

use std::sync::atomic::Ordering;

use chrono::Utc;
use rmcp::service::RequestContext;
use rmcp::{RoleServer, tool, tool_router};
use serde_json::json;

use super::{ToolResult, success};
use crate::ledger::Durability;
use crate::mcp::BoardServer;
use crate::store::requests::SessionActivity;
use crate::store::sessions::SessionRow;

#[tool_router(router = info_tools, vis = "pub(crate)")]
impl BoardServer {
    #[tool(
        description = "Is Steward healthy? Reports the server version, uptime, and whether the database answers."
    )]
    pub async fn health_check(&self) -> ToolResult {
        let database = match self.store().ping().await {
            Ok(()) => json!({ "engine": self.store().engine(), "reachable": true }),
            Err(e) => {
                json!({ "engine": self.store().engine(), "reachable": false, "error": e.to_string() })
            }
        };
        let ledger = self.ctx.ledger.as_ref().map(|l| l.report());
        let ledger_ok = ledger.as_ref().is_none_or(|l| l.status == "ok");
        let sweep = self.ctx.sweep.report();
        let healthy =
            database["reachable"] == true && ledger_ok && sweep.last_error.get().is_none();
        Ok(success(json!({
            "status": if healthy { "healthy" } else { "degraded" },
            "version": env!("CARGO_PKG_VERSION"),
            "uptime_seconds": self.ctx.started.elapsed().as_secs(),
            "database": database,
            "ledger": ledger,
            "lease_sweep": sweep,
        })))
    }

    #[tool(
        description = "This MCP session as Steward sees it: session id (stateless and stdio clients get a logical session), its kind, client name, version and type, protocol version, when it started, its status, its last activity, and how many tool calls it made (from the ledger, so the count survives restarts and counts every replica)."
    )]
    pub async fn session_info(&self, request: RequestContext<RoleServer>) -> ToolResult {
        let session_id = self.session_id(&request);
        let (row, activity) = match &session_id {
            Some(id) => self.stored_session(id).await?,
            None => (None, None),
        };
        let client = request.client_info();
        let now = Utc::now();
        // The ledger counts every process's calls since the session began, this call
        // excepted (not stored yet); this connection's own count covers calls whose rows
        // the ledger writer has not stored yet (and is all there is with the ledger off).
        let here =
            i64::try_from(self.connection.requests.load(Ordering::Relaxed)).unwrap_or(i64::MAX);
        let request_count = activity.map_or(here, |a| a.tool_calls.saturating_add(1).max(here));
        // A logical session's row is written moments after its first request: until it is
        // there, say what that row will say.
        let fresh_logical = row.is_none()
            && session_id
                .as_deref()
                .is_some_and(|id| id.starts_with("logical-"));
        let client_name = client.as_ref().map(|c| c.name.clone());
        let client_type = row.as_ref().map(|r| r.client_type.clone()).or_else(|| {
            fresh_logical.then(|| {
                crate::sessions::client_type::detect(client_name.as_deref().unwrap_or("unknown"))
                    .to_string()
            })
        });
        Ok(success(json!({
            "session": {
                "session_id": session_id,
                "kind": row.as_ref().map(|r| r.kind.clone())
                    .or_else(|| fresh_logical.then(|| "logical".to_string())),
                "client": {
                    "name": client_name
                        .or_else(|| row.as_ref().and_then(|r| r.client_name.clone())),
                    "version": client.as_ref().map(|c| c.version.clone())
                        .or_else(|| row.as_ref().and_then(|r| r.client_version.clone())),
                    "type": client_type,
                },
                "protocol_version": row.as_ref().and_then(|r| r.protocol_version.clone())
                    .or_else(|| request.protocol_version().map(|v| v.to_string())),
                "status": row.as_ref().map(|r| r.status.clone())
                    .or_else(|| fresh_logical.then(|| "active".to_string())),
                "started_at": row.as_ref().map_or(self.connection.started_at, |r| r.connected_at),
                // This request is the session's latest activity.
                "last_activity": now,
                "request_count": request_count,
            }
        })))
    }
}

impl BoardServer {
    /// The session's durable row and, when the ledger is on, what the ledger holds about it.
    async fn stored_session(
        &self,
        id: &str,
    ) -> Result<(Option<SessionRow>, Option<SessionActivity>), sqlx::Error> {
        let row = self.store().get_session(id).await?;
        let ledger_on = self
            .ctx
            .ledger
            .as_ref()
            .is_some_and(|l| l.durability() != Durability::Off);
        let activity = if ledger_on {
            Some(self.store().session_activity(id).await?)
        } else {
            None
        };
        Ok((row, activity))
    }
}
