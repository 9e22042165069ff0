//! `health_check`, `session_info`.

use std::sync::atomic::Ordering;

use chrono::Utc;
use rmcp::model::CallToolResult;
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer, tool, tool_router};
use serde_json::json;

use super::{ToolError, respond, success};
use crate::ledger::Durability;
use crate::mcp::BoardServer;
use crate::store::requests::SessionActivity;
use crate::store::sessions::SessionRow;

#[tool_router(router = info_tools, vis = "pub(crate)")]
impl BoardServer {
    #[tool(
        description = "Is Steward healthy? Reports the server version, uptime, and whether the database answers."
    )]
    pub async fn health_check(&self) -> Result<CallToolResult, ErrorData> {
        let database = match self.store().ping().await {
            Ok(()) => json!({ "engine": self.store().engine(), "reachable": true }),
            Err(e) => {
                json!({ "engine": self.store().engine(), "reachable": false, "error": e.to_string() })
            }
        };
        let ledger = self.ctx.ledger.as_ref().map(|l| l.report());
        let ledger_ok = ledger.as_ref().is_none_or(|l| l.status == "ok");
        let healthy = database["reachable"] == true && ledger_ok;
        Ok(respond(
            "health_check",
            Ok(success(json!({
                "status": if healthy { "healthy" } else { "degraded" },
                "version": env!("CARGO_PKG_VERSION"),
                "uptime_seconds": self.ctx.started.elapsed().as_secs(),
                "database": database,
                "ledger": ledger,
            }))),
        ))
    }

    #[tool(
        description = "This MCP session as Steward sees it: session id (stateless and stdio clients get a logical session), its kind, client name, version and type, protocol version, when it started, its status, its last activity, and how many tool calls it made (from the ledger, so the count survives restarts and counts every replica)."
    )]
    pub async fn session_info(
        &self,
        request: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        let session_id = self.session_id(&request);
        let outcome = match &session_id {
            Some(id) => self.stored_session(id).await,
            None => Ok((None, None)),
        };
        let outcome = outcome.map_err(ToolError::from).map(|(row, activity)| {
            let client = request.client_info();
            let now = Utc::now();
            // The ledger counts every process's calls since the session began, this call
            // excepted (not stored yet); this connection's own count covers calls whose rows
            // the ledger writer has not stored yet (and is all there is with the ledger off).
            let here = i64::try_from(self.connection.requests.load(Ordering::Relaxed))
                .unwrap_or(i64::MAX);
            let request_count = activity
                .map_or(here, |a| a.tool_calls.saturating_add(1).max(here));
            success(json!({
                "session": {
                    "session_id": session_id,
                    "kind": row.as_ref().map(|r| r.kind.clone()),
                    "client": {
                        "name": client.as_ref().map(|c| c.name.clone())
                            .or_else(|| row.as_ref().and_then(|r| r.client_name.clone())),
                        "version": client.as_ref().map(|c| c.version.clone())
                            .or_else(|| row.as_ref().and_then(|r| r.client_version.clone())),
                        "type": row.as_ref().map(|r| r.client_type.clone()),
                    },
                    "protocol_version": row.as_ref().and_then(|r| r.protocol_version.clone())
                        .or_else(|| request.protocol_version().map(|v| v.to_string())),
                    "status": row.as_ref().map(|r| r.status.clone()),
                    "started_at": row.as_ref().map_or(self.connection.started_at, |r| r.connected_at),
                    // This request is the session's latest activity.
                    "last_activity": now,
                    "request_count": request_count,
                }
            }))
        });
        Ok(respond("session_info", outcome))
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
