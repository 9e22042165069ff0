//! The seam between the MCP handler and gateway mode ([`crate::gateway`]): the merged lists
//! (tools, resources, resource templates, prompts), and the requests that name an upstream's
//! tool, resource or prompt.

use rmcp::model::{InitializeRequestParams, PaginatedRequestParams};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer};

use super::BoardServer;
use crate::gateway::Caller;
use crate::gateway::kinds::{Exchange, Listing};
use crate::gateway::relay::Relay;
use crate::gateway::stateless::Stateless;
use crate::ledger::Served;
use crate::protocol;

impl BoardServer {
    /// `board`'s items, followed by the upstreams' when Steward runs in front of any.
    pub(crate) async fn merged<L: Listing>(
        &self,
        request: Option<PaginatedRequestParams>,
        context: &RequestContext<RoleServer>,
        board: Vec<L::Item>,
    ) -> Result<L, ErrorData> {
        let Some(gateway) = &self.ctx.gateway else {
            return Ok(L::from_page(board, None));
        };
        let (session, client) = (self.session_id(context), context.peer.peer_info());
        let relay = Relay::of(context);
        let caller = caller(session.as_deref(), client.as_deref(), context, &relay);
        Box::pin(gateway.list(caller, request, board)).await
    }

    /// Passes `request` to its upstream when it names an upstream's tool, resource or prompt;
    /// gives `request` back otherwise (moved, not copied: a tool call's arguments may be large).
    pub(crate) async fn via_upstream<E: Exchange>(
        &self,
        request: E,
        context: &RequestContext<RoleServer>,
    ) -> Result<Result<E::Response, ErrorData>, E> {
        let Some(gateway) = self.ctx.gateway.as_ref() else {
            return Err(request);
        };
        let (session, client) = (self.session_id(context), context.peer.peer_info());
        let relay = Relay::of(context);
        let caller = caller(session.as_deref(), client.as_deref(), context, &relay);
        // Boxed: the relay's state is large, and held inline it would grow every request's
        // future, which rmcp moves into a task of its own (copied per call, with no gateway too).
        Box::pin(gateway.pass(caller, request)).await
    }

    /// Passes `resources/subscribe` (`on`) or `resources/unsubscribe` to the upstream whose
    /// resource `uri` names; `None` when it names none.
    pub(crate) async fn upstream_subscription(
        &self,
        uri: &str,
        on: bool,
        context: &RequestContext<RoleServer>,
    ) -> Option<Result<(), ErrorData>> {
        let gateway = self.ctx.gateway.as_ref()?;
        let (session, client) = (self.session_id(context), context.peer.peer_info());
        let relay = Relay::of(context);
        let caller = caller(session.as_deref(), client.as_deref(), context, &relay);
        gateway.subscribe(caller, uri, on).await
    }
}

fn caller<'a>(
    session: Option<&'a str>,
    client: Option<&'a InitializeRequestParams>,
    context: &'a RequestContext<RoleServer>,
    relay: &'a Relay,
) -> Caller<'a> {
    Caller {
        session,
        client,
        served: Served::of(&context.extensions),
        relay: Some(relay),
        stateless: stateless(context),
    }
}

/// The request as a 2026-07-28 one without a session, when it is one.
fn stateless(context: &RequestContext<RoleServer>) -> Option<Stateless<'_>> {
    let parts = context.extensions.get::<axum::http::request::Parts>();
    if parts.is_some_and(|parts| parts.headers.contains_key(protocol::SESSION_ID)) {
        return None;
    }
    let revision = context.meta.protocol_version()?;
    protocol::is_stateless(revision.as_str()).then(|| Stateless {
        meta: &context.meta,
        headers: parts.map(|parts| &parts.headers),
    })
}
