//! The MCP face of the task board: [`BoardServer`] implements rmcp's `ServerHandler` over the
//! tool routers in [`crate::mcp::tools`]; [`http`] mounts it at `/mcp`, [`stdio`] serves it on
//! standard input/output.

pub mod batch;
mod board_call;
pub mod client;
pub mod conformance;
pub mod fast;
mod handler;
pub mod http;
pub mod logging;
pub mod prompts;
pub mod raw;
pub mod rules;
pub mod stdio;
pub mod tools;
mod upstreams;
mod window;

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::model::ErrorCode;
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer};

use crate::board::Actor;
use crate::gateway::Gateway;
use crate::ledger::{Ledger, Served};
use crate::mcp::conformance::Fixtures;
use crate::mcp::tools::params::ARGUMENT_ERROR_MARKER;
use crate::principal::Principal;
use crate::protocol::{self, PROTOCOL_VERSION};
use crate::resources::changes::{BoardChanges, Change};
use crate::resources::expiry::SweepHealth;
use crate::resources::subscriptions::Subscriptions;
use crate::sessions::logical::LogicalSessions;
use crate::store::answer_memo::Answers;
use crate::store::{Id, Store};
use logging::ClientLog;

/// What every session of one Steward process shares.
#[derive(Debug)]
pub struct ServerContext {
    pub store: Store,
    pub started: Instant,
    /// For `health_check` to report the ledger's state.
    pub ledger: Option<Ledger>,
    /// Board changes on this replica, for resource subscribers.
    pub changes: BoardChanges,
    /// What this replica's lease sweeps did (see [`crate::resources::expiry`]).
    pub sweep: SweepHealth,
    /// The conformance suite's fixtures, only with `--conformance-fixtures`.
    pub fixtures: Option<Fixtures>,
    /// A tool call running longer is abandoned and answered with `REQUEST_TIMEOUT`.
    pub tool_timeout: Duration,
    /// The servers behind Steward (gateway mode), whose tools join the board's.
    pub gateway: Option<Arc<Gateway>>,
    /// Whether the board's own tools, resources and prompts are served (`--no-board`: not).
    pub board: bool,
    /// The board reads' answers remembered between writes, and the shared reads of the
    /// board's version (see [`crate::store::answer_memo`]): this board's own.
    pub answers: Answers,
    /// The sessions whose board calls can be answered in front of rmcp (see [`fast`]).
    live: board_call::LiveSessions,
    /// Remembered answers as written for those calls (see [`board_call::WrittenAnswers`]).
    written: board_call::WrittenAnswers,
}

impl ServerContext {
    pub fn new(store: Store, ledger: Option<Ledger>) -> Arc<Self> {
        Self::configured(store, ledger, false, crate::security::DEFAULT_TOOL_TIMEOUT)
    }

    pub fn configured(
        store: Store,
        ledger: Option<Ledger>,
        fixtures: bool,
        tool_timeout: Duration,
    ) -> Arc<Self> {
        Self::serving(store, ledger, fixtures, tool_timeout, None, true)
    }

    /// [`ServerContext::configured`], in front of the upstreams of `gateway` (if any); with
    /// `board: false` only theirs are served.
    pub fn serving(
        store: Store,
        ledger: Option<Ledger>,
        fixtures: bool,
        tool_timeout: Duration,
        gateway: Option<Arc<Gateway>>,
        board: bool,
    ) -> Arc<Self> {
        Arc::new(ServerContext {
            answers: Answers::new(store.clone()),
            store,
            started: Instant::now(),
            ledger,
            changes: BoardChanges::default(),
            sweep: SweepHealth::default(),
            fixtures: fixtures.then(Fixtures::default),
            tool_timeout,
            gateway,
            board,
            live: Default::default(),
            written: Default::default(),
        })
    }
}

impl ServerContext {
    /// The board's tool calls answered in front of rmcp since start (see [`fast`]).
    pub fn board_calls_direct(&self) -> u64 {
        self.live.answered()
    }
}

/// Per-connection facts, for `session_info`.
#[derive(Debug)]
pub struct Connection {
    pub started_at: DateTime<Utc>,
    pub requests: AtomicU64,
    /// The id used when the transport has none of its own (stdio).
    pub fixed_id: Option<String>,
    /// The log level this client chose (`logging/setLevel`).
    pub log: ClientLog,
    /// The resources this client subscribed to (`resources/subscribe`).
    pub subscriptions: Arc<Subscriptions>,
}

/// One MCP connection's handler. rmcp creates one per HTTP session (and one for stdio).
#[derive(Clone)]
pub struct BoardServer {
    pub(crate) ctx: Arc<ServerContext>,
    pub(crate) connection: Arc<Connection>,
    pub(crate) tool_router: Arc<ToolRouter<Self>>,
}

/// Every board tool, with its schemas in the portable subset. Built once: rmcp makes a
/// [`BoardServer`] per session (per request for stateless clients).
static BOARD_TOOLS: LazyLock<Arc<ToolRouter<BoardServer>>> = LazyLock::new(|| {
    Arc::new(tools::portable::portable_router(
        BoardServer::project_tools()
            + BoardServer::task_tools()
            + BoardServer::claim_tools()
            + BoardServer::document_tools()
            + BoardServer::version_tools()
            + BoardServer::info_tools(),
    ))
});

impl BoardServer {
    pub fn new(ctx: Arc<ServerContext>, fixed_id: Option<String>) -> Self {
        BoardServer {
            ctx,
            connection: Arc::new(Connection {
                started_at: Utc::now(),
                requests: AtomicU64::new(0),
                fixed_id,
                log: ClientLog::default(),
                subscriptions: Arc::default(),
            }),
            tool_router: BOARD_TOOLS.clone(),
        }
    }

    /// The handler of a session rmcp serves, with that session's `connection`.
    fn of_session(ctx: Arc<ServerContext>, connection: Arc<Connection>) -> Self {
        BoardServer {
            ctx,
            connection,
            tool_router: BOARD_TOOLS.clone(),
        }
    }

    /// Whether `name` is one of the board's own tools.
    fn has_board_tool(name: &str) -> bool {
        BOARD_TOOLS.has_route(name)
    }

    /// The names of every tool this server has (with the fixtures, when enabled).
    pub fn tool_names(ctx: &Arc<ServerContext>) -> Vec<String> {
        let server = BoardServer::new(ctx.clone(), None);
        let fixtures = ctx
            .fixtures
            .as_ref()
            .map(Fixtures::tools)
            .unwrap_or_default();
        server
            .tool_router
            .list_all()
            .into_iter()
            .chain(fixtures)
            .map(|tool| tool.name.to_string())
            .collect()
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
            .or_else(|| logical_session(request))
    }

    /// Tells the ledger this request concerned task `task_id`, so its row counts toward the
    /// task's activity (see [`Served`]); with the ledger off this does nothing.
    pub(crate) fn concerns(&self, request: &RequestContext<RoleServer>, task_id: Id) {
        if let Some(served) = Served::of(&request.extensions) {
            served.concerns(task_id.0);
        }
    }

    /// Tells resource subscribers on this replica that the board changed.
    pub(crate) fn changed(&self, change: Change) {
        self.ctx.changes.publish(change);
    }

    /// Who is making this request, for task history.
    pub(crate) fn actor(&self, request: &RequestContext<RoleServer>) -> Actor {
        let principal = request
            .extensions
            .get::<axum::http::request::Parts>()
            .and_then(|parts| parts.extensions.get::<Principal>())
            .and_then(|principal| principal.name().map(str::to_string));
        Actor {
            session_id: self.session_id(request),
            client_name: request
                .client_info()
                .map(|info| crate::protocol::cut_client_text(&info.name).into_owned()),
            principal,
        }
    }
}

/// How stateless HTTP requests (no `Mcp-Session-Id`) find their logical session: the
/// application puts the logical sessions the ledger attributes rows to into each request's
/// extensions, so a tool sees the session id its ledger rows get.
#[derive(Clone)]
pub struct StatelessSessions(pub Arc<LogicalSessions>);

/// The logical session of a stateless HTTP request, once the security layer has named its
/// caller; `None` on other transports and for revisions that need a session id of their own.
fn logical_session(request: &RequestContext<RoleServer>) -> Option<String> {
    let parts = request.extensions.get::<axum::http::request::Parts>()?;
    let sessions = parts.extensions.get::<StatelessSessions>()?;
    let principal = parts
        .extensions
        .get::<Principal>()?
        .name()
        .map(str::to_string);
    let protocol = parts
        .headers
        .get(PROTOCOL_VERSION)
        .and_then(|v| v.to_str().ok())
        .filter(|v| protocol::is_stateless(v))?;
    // The same key the ledger's attribution reads from the request's `_meta`.
    let client = request.client_info();
    let name = client.as_ref().map_or("unknown", |c| c.name.as_str());
    let version = client.as_ref().map_or("unknown", |c| c.version.as_str());
    Some(
        sessions
            .0
            .session_for_client(principal, name, version, protocol),
    )
}

pub(crate) fn is_argument_error(error: &ErrorData) -> bool {
    error.code == ErrorCode::INVALID_PARAMS
        && error
            .data
            .as_ref()
            .is_some_and(|data| data.get(ARGUMENT_ERROR_MARKER).is_some())
}
