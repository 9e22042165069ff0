//! The MCP face of the task board: [`BoardServer`] implements rmcp's `ServerHandler` over the
//! tool routers in [`crate::tools`]; [`http`] mounts it at `/mcp`, [`stdio`] serves it on
//! standard input/output.

pub mod drain;
pub mod http;
pub mod stdio;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::tool::ToolCallContext;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, ErrorCode, Implementation, ServerCapabilities,
    ServerConfig,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer, ServerHandler, tool_handler};

use crate::board::Actor;
use crate::ledger::Ledger;
use crate::ledger::analyze::REQUEST_TIMEOUT;
use crate::store::Store;
use crate::tools::{ToolError, params::ARGUMENT_ERROR_MARKER, respond};

/// What every session of one Steward process shares.
#[derive(Debug)]
pub struct ServerContext {
    pub store: Store,
    pub started: Instant,
    /// For `health_check` to report the ledger's state.
    pub ledger: Option<Ledger>,
    /// A tool call running longer is abandoned and answered with [`REQUEST_TIMEOUT`].
    pub tool_timeout: Duration,
}

impl ServerContext {
    pub fn new(store: Store, ledger: Option<Ledger>, tool_timeout: Duration) -> Arc<Self> {
        Arc::new(ServerContext {
            store,
            started: Instant::now(),
            ledger,
            tool_timeout,
        })
    }
}

/// Per-connection facts, for `session_info`.
#[derive(Debug)]
pub struct Connection {
    pub started_at: DateTime<Utc>,
    pub requests: AtomicU64,
    /// The id used when the transport has none of its own (stdio).
    pub fixed_id: Option<String>,
}

/// One MCP connection's handler. rmcp creates one per HTTP session (and one for stdio).
#[derive(Clone)]
pub struct BoardServer {
    pub(crate) ctx: Arc<ServerContext>,
    pub(crate) connection: Arc<Connection>,
    tool_router: ToolRouter<Self>,
}

impl BoardServer {
    pub fn new(ctx: Arc<ServerContext>, fixed_id: Option<String>) -> Self {
        BoardServer {
            ctx,
            connection: Arc::new(Connection {
                started_at: Utc::now(),
                requests: AtomicU64::new(0),
                fixed_id,
            }),
            tool_router: Self::project_tools()
                + Self::task_tools()
                + Self::document_tools()
                + Self::version_tools()
                + Self::info_tools(),
        }
    }

    pub(crate) fn store(&self) -> &Store {
        &self.ctx.store
    }

    /// This request's session id: the `Mcp-Session-Id` header on HTTP, the fixed id on stdio.
    pub(crate) fn session_id(&self, request: &RequestContext<RoleServer>) -> Option<String> {
        request
            .extensions
            .get::<axum::http::request::Parts>()
            .and_then(|parts| parts.headers.get("mcp-session-id"))
            .and_then(|value| value.to_str().ok())
            .map(str::to_string)
            .or_else(|| self.connection.fixed_id.clone())
    }

    /// Who is making this request, for task history.
    pub(crate) fn actor(&self, request: &RequestContext<RoleServer>) -> Actor {
        Actor {
            session_id: self.session_id(request),
            client_name: request.client_info().map(|info| info.name),
        }
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for BoardServer {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(
                Implementation::new("steward", env!("CARGO_PKG_VERSION"))
                    .with_title("Steward task board"),
            )
            .with_instructions(
                "Steward is a shared project and task board. Use find_projects/find_tasks to look \
                 around, manage_project/manage_task to change things, documents and versions for \
                 specs and history. Every tool answers JSON with a `success` field.",
            )
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        self.connection.requests.fetch_add(1, Ordering::Relaxed);
        let name = request.name.clone();
        let call = ToolCallContext::new(self, request, context);
        let limit = self.ctx.tool_timeout;
        // Dropping the call on timeout cancels it; an open transaction rolls back.
        let Ok(outcome) = tokio::time::timeout(limit, self.tool_router.call(call)).await else {
            tracing::warn!(tool = %name, ?limit, "tool call timed out");
            return Err(ErrorData::new(
                ErrorCode(REQUEST_TIMEOUT),
                format!(
                    "{name} did not finish within {}; it was stopped and changed nothing it had not committed. Retry, or ask the operator to raise --tool-timeout",
                    humantime::format_duration(limit)
                ),
                None,
            ));
        };
        match outcome {
            Err(error) if is_argument_error(&error) => {
                let field = error
                    .data
                    .as_ref()
                    .and_then(|d| d.get("field"))
                    .and_then(|f| f.as_str())
                    .unwrap_or(".")
                    .to_string();
                let invalid = ToolError::invalid(
                    &field,
                    error.message.to_string(),
                    format!(
                        "Fix the arguments of {name}: its inputSchema in tools/list lists every field and allowed value"
                    ),
                );
                Ok(respond(&name, Err(invalid)).into())
            }
            other => other,
        }
    }
}

fn is_argument_error(error: &ErrorData) -> bool {
    error.code == ErrorCode::INVALID_PARAMS
        && error
            .data
            .as_ref()
            .is_some_and(|data| data.get(ARGUMENT_ERROR_MARKER).is_some())
}
