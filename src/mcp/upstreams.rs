//! The seam between the MCP handler and gateway mode ([`crate::gateway`]): the merged
//! `tools/list`, and `tools/call` of an upstream's prefixed tool.

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, InitializeRequestParams, ListToolsResult,
    PaginatedRequestParams, Tool,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer};

use super::BoardServer;
use crate::gateway::Caller;
use crate::ledger::Served;

impl BoardServer {
    /// `board`, followed by the upstreams' tools when Steward runs in front of any.
    pub(crate) async fn merged_tools(
        &self,
        request: Option<PaginatedRequestParams>,
        context: &RequestContext<RoleServer>,
        board: Vec<Tool>,
    ) -> Result<ListToolsResult, ErrorData> {
        let Some(gateway) = &self.ctx.gateway else {
            return Ok(ListToolsResult::with_all_items(board));
        };
        let (session, client) = (self.session_id(context), context.peer.peer_info());
        let caller = caller(session.as_deref(), client.as_deref(), context);
        gateway.list_tools(caller, request, board).await
    }

    /// Passes the call to its upstream when `request` names an upstream's tool; `None` otherwise.
    pub(crate) async fn call_upstream(
        &self,
        request: &CallToolRequestParams,
        context: &RequestContext<RoleServer>,
    ) -> Option<Result<CallToolResponse, ErrorData>> {
        let gateway = self.ctx.gateway.as_ref()?;
        let (upstream, tool) = gateway.route(&request.name)?;
        let (session, client) = (self.session_id(context), context.peer.peer_info());
        let caller = caller(session.as_deref(), client.as_deref(), context);
        Some(
            gateway
                .call_tool(upstream, tool, caller, request.clone())
                .await,
        )
    }
}

fn caller<'a>(
    session: Option<&'a str>,
    client: Option<&'a InitializeRequestParams>,
    context: &'a RequestContext<RoleServer>,
) -> Caller<'a> {
    Caller {
        session,
        client,
        served: Served::of(&context.extensions),
    }
}
