//! [`BoardServer`] as rmcp's `ServerHandler`: the board's tools, resources and prompts, plus
//! the conformance fixtures when Steward runs with `--conformance-fixtures`.
// rmcp marks logging and resources/subscribe deprecated (SEP-2577); every session-era
// revision still has them, so Steward serves them.
#![allow(deprecated)]

use std::sync::atomic::Ordering;

use rmcp::handler::server::tool::{IntoCallToolResult, ToolCallContext};
use rmcp::model::ErrorCode;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CompleteRequestParams, CompleteResult, CompletionInfo,
    GetPromptRequestParams, GetPromptResponse, Implementation, ListPromptsResult,
    ListResourceTemplatesResult, ListResourcesResult, ListToolsResult, PaginatedRequestParams,
    ReadResourceRequestParams, ReadResourceResponse, ReadResourceResult, ServerCapabilities,
    ServerConfig, SetLevelRequestParams, SubscribeRequestParams, SubscriptionFilter, Tool,
    UnsubscribeRequestParams,
};
use rmcp::service::{NotificationContext, RequestContext, SubscriptionContext};
use rmcp::{ErrorData, RoleServer, ServerHandler};
use serde_json::json;
use tracing::Instrument;

use super::{BoardServer, is_argument_error};
use crate::ledger::analyze::REQUEST_TIMEOUT;
use crate::mcp::conformance::Fixtures;
use crate::mcp::prompts::{self, PromptError};
use crate::mcp::tools::ToolError;
use crate::resources::{self, BoardUri, ReadError, subscriptions};
use crate::store::Id;

/// What a client is told when Steward serves only the tools of the servers behind it.
const GATEWAY_ONLY: &str = "Steward stands in front of other MCP servers: each of their tools is \
     listed as SERVER__tool and runs on that server.";

/// Most suggestions one completion answers (the protocol's limit).
const MAX_COMPLETIONS: usize = 100;

impl ServerHandler for BoardServer {
    fn get_info(&self) -> ServerConfig {
        let capabilities = ServerCapabilities::builder()
            .enable_tools()
            .enable_resources()
            .enable_resources_subscribe()
            .enable_prompts()
            .enable_logging()
            .enable_completions()
            .build();
        let config = ServerConfig::new(capabilities).with_server_info(
            Implementation::new("steward", env!("CARGO_PKG_VERSION"))
                .with_title("Steward task board"),
        );
        if !self.ctx.board {
            return config.with_instructions(GATEWAY_ONLY);
        }
        config
            .with_instructions(
                "Steward is a shared project and task board. Use find_projects/find_tasks to look \
                 around, manage_project/manage_task to change things, documents and versions for \
                 specs and history. Other agents may share the board: take work with next_task (or \
                 claim_task) and release_task it when done, so no two agents work one task. Every tool answers JSON with a `success` field. The board is \
                 also readable as steward:// resources, and the plan_feature and standup prompts \
                 start common conversations.",
            )
    }

    /// A session's handshake is done (or replayed, when rmcp restores it): its board calls can
    /// be answered in front of rmcp from now on (see `mcp::fast`).
    async fn on_initialized(&self, context: NotificationContext<RoleServer>) {
        tracing::info!("client initialized");
        let session = context
            .extensions
            .get::<axum::http::request::Parts>()
            .and_then(|parts| parts.headers.get(crate::protocol::SESSION_ID))
            .and_then(|value| value.to_str().ok());
        if let Some(session) = session
            && self.ctx.board
        {
            let connection = self.connection.clone();
            // A gateway's session keeps its service: an upstream's requests reach the client
            // through it.
            let rests = self.ctx.gateway.is_none()
                && super::fast::session_era(context.peer.peer_info().as_deref());
            self.ctx.live.enter(session, connection, context.peer);
            if rests {
                self.ctx.live.rest(session);
            }
        }
    }

    async fn list_tools(
        &self,
        request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let tools = self.plus_fixtures(
            self.board_items(|| self.tool_router.list_all()),
            Fixtures::tools,
        );
        self.merged(request, &context, tools).await
    }

    fn get_tool(&self, name: &str) -> Option<Tool> {
        self.tool_router
            .get(name)
            .filter(|_| self.ctx.board)
            .cloned()
            .or_else(|| self.ctx.fixtures.as_ref()?.tool(name))
            .or_else(|| self.ctx.gateway.as_ref()?.tool(name))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        // Boxed, as is each handler below that awaits real work: rmcp's future for a request
        // holds the largest of the handlers' futures inline and is moved (copied) several
        // times per request, so every request paid for copying the largest one's state.
        Box::pin(async move {
            self.connection.requests.fetch_add(1, Ordering::Relaxed);
            // Only the board's tools are answered without the session's service.
            if !self.tool_router.has_route(&request.name)
                && let Some(session) = self.session_id(&context)
            {
                self.ctx.live.keep(&session);
            }
            let request = match self.via_upstream(request, &context).await {
                Ok(answer) => return answer,
                Err(request) => request,
            };
            let name = request.name.clone();
            if !self.ctx.board && self.tool_router.has_route(&name) {
                return Err(ErrorData::invalid_params(
                    format!(
                        "tool {name} not found: this Steward serves only the tools of its upstreams (--no-board); see tools/list"
                    ),
                    None,
                ));
            }
            if !self.tool_router.has_route(&name)
                && let Some(fixtures) = &self.ctx.fixtures
                && fixtures.tool(&name).is_some()
            {
                return fixtures
                    .call_tool(request, &context, &self.connection.log)
                    .await;
            }
            // A call that names a task concerns it (tools that learn their task otherwise, such as
            // a create, say so themselves).
            if let Some(task_id) = request
                .arguments
                .as_ref()
                .and_then(|args| args.get("task_id")?.as_str()?.parse::<Id>().ok())
            {
                self.concerns(&context, task_id);
            }
            let call = ToolCallContext::new(self, request, context);
            let limit = self.ctx.tool_timeout;
            // The span names the tool in what the call logs (e.g. a database error); only a
            // known name, as a client's may be anything, and long.
            let span = if self.tool_router.has_route(&name) {
                tracing::error_span!("call_tool", tool = %name)
            } else {
                tracing::Span::none()
            };
            let call = self.tool_router.call(call).instrument(span);
            // Dropping the call on timeout cancels it; an open transaction rolls back.
            let Ok(outcome) = tokio::time::timeout(limit, call).await else {
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
                    invalid.into_call_tool_result()
                }
                other => other,
            }
        })
        .await
    }

    async fn list_resources(
        &self,
        request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, ErrorData> {
        // Boxed: see call_tool.
        Box::pin(async move {
            let board = match self.ctx.board {
                true => resources::list(self.store())
                    .await
                    .map_err(database_error)?,
                false => Vec::new(),
            };
            let list = self.plus_fixtures(board, Fixtures::resources);
            self.merged(request, &context, list).await
        })
        .await
    }

    async fn list_resource_templates(
        &self,
        request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, ErrorData> {
        let templates =
            self.plus_fixtures(self.board_items(resources::templates), Fixtures::templates);
        self.merged(request, &context, templates).await
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        // Boxed: see call_tool.
        Box::pin(async move {
            let request = match self.via_upstream(request, &context).await {
                Ok(answer) => return answer,
                Err(request) => request,
            };
            let uri = request.uri;
            if let Some(contents) = self
                .ctx
                .fixtures
                .as_ref()
                .and_then(|f| f.read_resource(&uri))
            {
                return Ok(ReadResourceResult::new(vec![contents]).into());
            }
            if !self.ctx.board {
                return Err(not_found(&uri, "this Steward serves no board (--no-board)"));
            }
            match resources::read(self.store(), &self.ctx.changes, &uri).await {
                Ok(contents) => Ok(ReadResourceResult::new(vec![contents]).into()),
                Err(ReadError::Database(e)) => Err(database_error(e)),
                Err(error) => Err(not_found(&uri, &error.to_string())),
            }
        })
        .await
    }

    async fn subscribe(
        &self,
        request: SubscribeRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        // Boxed: see call_tool.
        Box::pin(self.subscription(request.uri, true, context)).await
    }

    async fn unsubscribe(
        &self,
        request: UnsubscribeRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        Box::pin(self.subscription(request.uri, false, context)).await
    }

    fn accepted_subscription_filter(
        &self,
        requested: &SubscriptionFilter,
    ) -> Option<SubscriptionFilter> {
        // Only resource updates are sent; the tool, prompt and resource lists never change
        // while Steward runs, so no list-changed notification is promised.
        let uris = requested.resource_subscriptions.as_ref().map(|uris| {
            uris.iter()
                .filter(|u| self.check_subscribable(u).is_ok())
                .cloned()
                .collect()
        });
        let mut accepted = SubscriptionFilter::new();
        accepted.resource_subscriptions = uris;
        Some(accepted)
    }

    async fn listen(&self, context: SubscriptionContext) -> Result<(), ErrorData> {
        Box::pin(async move {
            subscriptions::listen(&self.ctx.changes, context).await;
            Ok(())
        })
        .await
    }

    async fn list_prompts(
        &self,
        request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListPromptsResult, ErrorData> {
        let list = self.plus_fixtures(self.board_items(prompts::list), Fixtures::prompts);
        self.merged(request, &context, list).await
    }

    async fn get_prompt(
        &self,
        request: GetPromptRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<GetPromptResponse, ErrorData> {
        // Boxed: see call_tool.
        Box::pin(async move {
            let request = match self.via_upstream(request, &context).await {
                Ok(answer) => return answer,
                Err(request) => request,
            };
            if !prompts::is_board_prompt(&request.name)
                && let Some(fixtures) = &self.ctx.fixtures
                && fixtures.has_prompt(&request.name)
            {
                return fixtures.get_prompt(&request, &context);
            }
            if !self.ctx.board {
                return Err(ErrorData::invalid_params(
                    format!(
                        "prompt {} not found: this Steward serves no board (--no-board)",
                        request.name
                    ),
                    None,
                ));
            }
            match prompts::get(self.store(), &request.name, request.arguments.as_ref()).await {
                Ok(result) => Ok(result.into()),
                Err(PromptError::Database(e)) => Err(database_error(e)),
                Err(error) => Err(ErrorData::invalid_params(error.to_string(), None)),
            }
        })
        .await
    }

    async fn complete(
        &self,
        request: CompleteRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<CompleteResult, ErrorData> {
        // Boxed: see call_tool.
        Box::pin(async move {
            let values = if self.ctx.board && request.argument.name == "project_id" {
                self.project_ids_like(&request.argument.value).await?
            } else {
                Vec::new()
            };
            let completion = CompletionInfo::new(values)
                .map_err(|e| ErrorData::internal_error(format!("bad completion: {e}"), None))?;
            Ok(CompleteResult::new(completion))
        })
        .await
    }

    async fn set_level(
        &self,
        request: SetLevelRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        self.connection.log.set_level(request.level);
        Ok(())
    }
}

impl BoardServer {
    /// The board's items, unless it is not served (`--no-board`).
    fn board_items<T>(&self, items: impl FnOnce() -> Vec<T>) -> Vec<T> {
        match self.ctx.board {
            true => items(),
            false => Vec::new(),
        }
    }

    /// The board's items, followed by the fixtures' when Steward runs with them.
    fn plus_fixtures<T>(&self, mut items: Vec<T>, fixtures: fn(&Fixtures) -> Vec<T>) -> Vec<T> {
        if let Some(set) = &self.ctx.fixtures {
            items.extend(fixtures(set));
        }
        items
    }

    /// A URI may be subscribed to when it names a board resource or a fixture.
    /// `resources/subscribe` (`on`) or `resources/unsubscribe` of `uri`: passed on to the
    /// upstream whose resource it names, or kept for this connection.
    async fn subscription(
        &self,
        uri: String,
        on: bool,
        context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        if let Some(answer) = self.upstream_subscription(&uri, on, &context).await {
            return answer;
        }
        let subscriptions = &self.connection.subscriptions;
        if on {
            self.check_subscribable(&uri)?;
            subscriptions.subscribe(uri, &self.ctx.changes, context.peer);
        } else {
            subscriptions.unsubscribe(&uri);
        }
        Ok(())
    }

    fn check_subscribable(&self, uri: &str) -> Result<(), ErrorData> {
        if self
            .ctx
            .fixtures
            .as_ref()
            .is_some_and(|f| f.read_resource(uri).is_some())
        {
            return Ok(());
        }
        BoardUri::parse(uri)
            .map(|_| ())
            .map_err(|error| not_found(uri, &error.to_string()))
    }

    /// Project ids whose id or title starts with (or title contains) what the user typed.
    async fn project_ids_like(&self, typed: &str) -> Result<Vec<String>, ErrorData> {
        let page = crate::store::Page {
            page: 1,
            per_page: 100,
        };
        let found = self
            .store()
            .list_projects(None, page)
            .await
            .map_err(database_error)?;
        let typed = typed.to_lowercase();
        Ok(found
            .items
            .iter()
            .filter(|p| {
                p.id.to_string().starts_with(&typed) || p.title.to_lowercase().contains(&typed)
            })
            .map(|p| p.id.to_string())
            .take(MAX_COMPLETIONS)
            .collect())
    }
}

/// Resource-not-found with the URI in `data` (SEP-2164); rmcp sends -32002 to session-era
/// clients and -32602 to 2026-07-28 ones.
fn not_found(uri: &str, reason: &str) -> ErrorData {
    ErrorData::resource_not_found(
        format!("Resource not found: {uri}: {reason}"),
        Some(json!({ "uri": uri })),
    )
}

/// Database details go to the log, not to the client.
fn database_error(error: sqlx::Error) -> ErrorData {
    tracing::error!(%error, "MCP request failed on a database error");
    ErrorData::internal_error(
        "the database could not complete the request; retry in a moment",
        None,
    )
}
