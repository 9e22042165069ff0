//! `health_check`, `session_info`.

use std::sync::atomic::Ordering;

use rmcp::model::CallToolResult;
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer, tool, tool_router};
use serde_json::json;

use super::{respond, success};
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
        let healthy = database["reachable"] == true;
        Ok(respond(
            "health_check",
            Ok(success(json!({
                "status": if healthy { "healthy" } else { "degraded" },
                "version": env!("CARGO_PKG_VERSION"),
                "uptime_seconds": self.ctx.started.elapsed().as_secs(),
                "database": database,
            }))),
        ))
    }

    #[tool(
        description = "This MCP session as Steward sees it: session id, client name and version, protocol version, when it started, and how many tool requests it made."
    )]
    pub async fn session_info(
        &self,
        request: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        let client = request.client_info();
        Ok(respond(
            "session_info",
            Ok(success(json!({
                "session": {
                    "session_id": self.session_id(&request),
                    "client": {
                        "name": client.as_ref().map(|c| c.name.clone()),
                        "version": client.as_ref().map(|c| c.version.clone()),
                    },
                    "protocol_version": request.protocol_version().map(|v| v.to_string()),
                    "started_at": self.connection.started_at,
                    "request_count": self.connection.requests.load(Ordering::Relaxed),
                }
            }))),
        ))
    }
}
