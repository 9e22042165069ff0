//! A second reference: a bare rmcp 3.11 server (session mode, `LocalSessionManager`, the default
//! `StreamableHttpServerConfig`, TCP_NODELAY) whose one tool answers a text ([`Answer`]): for
//! `limit` and `peer` a fixed one, the text of Steward's own answer (Steward minus this is what
//! Steward adds to the MCP protocol: database, sessions, event store, ledger); as `gateway`'s
//! upstream one that echoes the call's arguments, so each answer is new text. In this process,
//! on its own 2-thread runtime.

use std::sync::Arc;

use std::time::Duration;

use anyhow::Result;
use axum::Router;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, ServerCapabilities,
    ServerConfig,
};
use rmcp::service::RequestContext;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ErrorData, RoleServer, ServerHandler};

use crate::client::{Target, run_load};
use crate::in_process::{InProcess, Stopping};
use crate::report::Row;
use crate::scenarios::Ctx;

/// What the server's tool answers.
#[derive(Clone)]
pub enum Answer {
    /// This text, whatever the arguments.
    Fixed(Arc<str>),
    /// The call's arguments (as JSON), then this text, then the arguments again: as long as the
    /// text, and new text whenever the arguments are.
    Echo(Arc<str>),
}

impl Answer {
    pub fn text(&self, request: &CallToolRequestParams) -> String {
        match self {
            Answer::Fixed(text) => text.to_string(),
            Answer::Echo(text) => {
                let args = request
                    .arguments
                    .as_ref()
                    .and_then(|args| serde_json::to_string(args).ok())
                    .unwrap_or_default();
                format!("You asked for {args}. {text} That was the answer to {args}.")
            }
        }
    }
}

#[derive(Clone)]
struct Answering {
    answer: Answer,
}

impl ServerHandler for Answering {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let text = self.answer.text(&request);
        Ok(CallToolResult::success(vec![ContentBlock::text(text)]).into())
    }
}

/// Serves MCP at /mcp; every tool call answers as `answer` says. A client may hold a GET stream
/// open for good (Steward's gateway listens on one per upstream session), so a stop gives open
/// exchanges a second, then closes every connection.
pub fn start(answer: Answer) -> Result<InProcess> {
    let server = Answering { answer };
    let stopping = Stopping::Within(Duration::from_secs(1));
    InProcess::start("rmcp server", stopping, move || {
        let svc: StreamableHttpService<Answering, LocalSessionManager> = StreamableHttpService::new(
            move || Ok(server.clone()),
            Arc::new(LocalSessionManager::default()),
            StreamableHttpServerConfig::default(),
        );
        Router::new().nest_service("/mcp", svc)
    })
}

/// The SDK floor as `limit` and `peer` measure it: the server above answering `text`, with
/// sessions of its own, warmed up; each [`Floor::measure`] is one run of the scenario's load.
pub struct Floor {
    server: InProcess,
    target: Target,
    sessions: Vec<String>,
    next_id: u64,
}

impl Floor {
    pub async fn start(ctx: &Ctx, text: String) -> Result<Floor> {
        let server = start(Answer::Fixed(Arc::from(text)))?;
        let target = Target::new(server.addr, "/mcp")?;
        let sessions = ctx.open_sessions(&target).await?;
        run_load(&ctx.spec(&target, &sessions, ctx.warmup, 1)).await;
        Ok(Floor {
            server,
            target,
            sessions,
            next_id: 1 + ctx.warmup as u64,
        })
    }

    pub async fn measure(&mut self, ctx: &Ctx, scenario: &str) -> Row {
        let out =
            run_load(&ctx.spec(&self.target, &self.sessions, ctx.requests, self.next_id)).await;
        self.next_id += ctx.requests as u64;
        Row::new(
            scenario,
            "bare rmcp 3.11 sessions, same text (in-process)",
            &out,
            ctx.concurrency,
            None,
            ctx.ticks_per_s,
        )
    }

    pub fn stop(self) {
        self.server.stop();
    }
}
