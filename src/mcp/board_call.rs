//! A session-era client's plain `tools/call` of a board tool, answered in front of rmcp (the
//! machinery is [`super::fast`]): the call goes to rmcp's own dispatch of the session's
//! handler (`Service::handle_request`, so every check and conversion rmcp makes of a call's
//! result is made), without rmcp's second parse of the request and its five tasks.
//!
//! A session is served here once rmcp has completed its handshake on this replica
//! (`notifications/initialized`, also the one rmcp replays when it restores a session): that is
//! when its connection ([`Connection`], the counts `session_info` reports) and its peer (the
//! client's `initialize`, which `session_info` and task history read) are noted in
//! [`LiveSessions`]. Until then, and for the conformance fixtures' tools and the upstreams',
//! calls go to rmcp.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::http::request::Parts;
use rmcp::model::{CallToolRequest, CallToolRequestParams, ClientRequest};
use rmcp::service::{Peer, RequestContext};
use rmcp::{RoleServer, Service};
use tokio_util::sync::CancellationToken;

use super::fast::{Answered, Plain, ToolCall, request_id, session_era};
use super::{BoardServer, Connection, ServerContext};
use crate::protocol::Id;
use crate::sync::lock;

/// The sessions rmcp serves on this replica, by id, once their handshake is done; and how many
/// board calls were answered here.
#[derive(Default)]
pub struct LiveSessions {
    sessions: Mutex<HashMap<String, Live>>,
    answered: AtomicU64,
}

impl std::fmt::Debug for LiveSessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveSessions")
            .field("sessions", &lock(&self.sessions).len())
            .field("answered", &self.answered())
            .finish()
    }
}

/// A session as its rmcp handler sees it.
#[derive(Clone)]
pub(super) struct Live {
    connection: Arc<Connection>,
    peer: Peer<RoleServer>,
}

impl LiveSessions {
    /// Notes session `id`'s connection and peer (a restored session's replace the old ones).
    pub(super) fn enter(&self, id: &str, connection: Arc<Connection>, peer: Peer<RoleServer>) {
        let mut live = lock(&self.sessions);
        // Sessions whose service ended (closed, dropped from memory) are forgotten as new ones
        // come, not on every call.
        live.retain(|_, live| !live.peer.is_transport_closed());
        live.insert(id.to_string(), Live { connection, peer });
    }

    fn get(&self, id: &str) -> Option<Live> {
        lock(&self.sessions)
            .get(id)
            .filter(|live| !live.peer.is_transport_closed())
            .cloned()
    }

    /// The board calls answered in front of rmcp since start.
    pub fn answered(&self) -> u64 {
        self.answered.load(Ordering::Relaxed)
    }
}

/// The session `plain` is made in, when it calls a board tool and is served here.
pub(super) fn live(ctx: &ServerContext, plain: &Plain) -> Option<Live> {
    if !BoardServer::has_board_tool(&plain.call.name) {
        return None;
    }
    let live = ctx.live.get(&plain.session)?;
    session_era(live.peer.peer_info().as_deref()).then_some(live)
}

/// The board's answer to request `id`, as rmcp's service makes it; `None` when the client
/// cancelled the call first (no answer, as on rmcp's path, where the call still runs to its
/// end: so it does here).
pub(super) async fn call(
    ctx: Arc<ServerContext>,
    live: Live,
    id: Id,
    call: ToolCall,
    parts: Parts,
    token: CancellationToken,
) -> Option<Answered> {
    ctx.live.answered.fetch_add(1, Ordering::Relaxed);
    let Live { connection, peer } = live;
    let server = BoardServer::of_session(ctx, connection);
    let mut params = CallToolRequestParams::new(call.name);
    if let Some(arguments) = call.arguments {
        params = params.with_arguments(arguments);
    }
    let request = ClientRequest::CallToolRequest(CallToolRequest::new(params));
    // As rmcp makes a request's context: the HTTP request's parts in its extensions (the
    // session id, the principal, the ledger's note).
    let mut context = RequestContext::new(request_id(&id), peer);
    context.ct = token.clone();
    context.extensions.insert(parts);
    let mut handled =
        Box::pin(async move { Service::handle_request(&server, request, context).await });
    let outcome = tokio::select! {
        outcome = &mut handled => outcome,
        () = token.cancelled() => {
            tokio::spawn(handled);
            return None;
        }
    };
    Some(Answered::of(outcome, &id))
}
