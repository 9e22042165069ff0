//! `health_check`, `session_info`.

use std::sync::atomic::Ordering;

use rmcp::model::CallToolResult;
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer, tool, tool_router};
use serde_json::json;

use super::{ToolError, respond, success};
use crate::mcp::BoardServer;

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
        description = "This MCP session as Steward sees it: session id, client name, version and type, protocol version, when it started, its status, and how many tool requests this connection made."
    )]
    pub async fn session_info(
        &self,
        request: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        let client = request.client_info();
        let session_id = self.session_id(&request);
        // The durable record (kept across restarts and replicas), when there is one.
        let stored = match &session_id {
            Some(id) => self.store().get_session(id).await,
            None => Ok(None),
        };
        let outcome = stored.map_err(ToolError::from).map(|row| {
            success(json!({
                "session": {
                    "session_id": session_id,
                    "client": {
                        "name": client.as_ref().map(|c| c.name.clone()),
                        "version": client.as_ref().map(|c| c.version.clone()),
                        "type": row.as_ref().map(|r| r.client_type.clone()),
                    },
                    "protocol_version": row.as_ref().and_then(|r| r.protocol_version.clone())
                        .or_else(|| request.protocol_version().map(|v| v.to_string())),
                    "status": row.as_ref().map(|r| r.status.clone()),
                    "started_at": row.as_ref().map_or(self.connection.started_at, |r| r.connected_at),
                    "last_activity": row.as_ref().map(|r| r.last_activity),
                    "request_count": self.connection.requests.load(Ordering::Relaxed),
                }
            }))
        });
        Ok(respond("session_info", outcome))
    }
}
