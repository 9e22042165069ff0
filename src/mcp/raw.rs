//! A session-era client's `tools/call` of an HTTP upstream's tool, answered in front of rmcp
//! (the shared machinery is [`super::fast`]). Through rmcp a call crosses five tasks; at one
//! call in flight those hand-offs, not the work, were most of what a gateway hop added. Here
//! the upstream's result is passed on as the text it sent.
//!
//! Besides what [`super::fast`] gives every call served there: the upstream's requests and
//! notifications reach the client through the connection the session last called an upstream
//! on (what rmcp's path relays them through); the client's cancellation and hanging up cancel
//! the call at the upstream.
//!
//! Anything else goes to rmcp as before: a session that has not called that upstream through
//! rmcp yet on this connection, a stdio upstream, and whatever [`super::fast`] leaves to rmcp.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::Request;
use rmcp::model::ServerResult;
use rmcp::service::Peer;
use rmcp::{ErrorData, RoleServer};
use tokio_util::sync::CancellationToken;

use super::fast::{Answered, Plain, session_era};
use crate::gateway::raw::ToolAnswer;
use crate::gateway::relay::Relay;
use crate::gateway::{Caller, Gateway};
use crate::ledger::Served;
use crate::protocol::Id;

/// A call of an upstream's tool served in front of rmcp: the connection the session last
/// called the upstream on, and the ledger's note of the request.
pub(super) struct Eligible {
    peer: Peer<RoleServer>,
    served: Option<Served>,
}

/// Whether `plain` calls an HTTP upstream's tool, by a session-era client whose connection is
/// known.
pub(super) fn eligible(gateway: &Gateway, request: &Request, plain: &Plain) -> Option<Eligible> {
    let peer = gateway.raw_peer(&plain.name, &plain.session)?;
    session_era(peer.peer_info().as_deref()).then(|| Eligible {
        peer,
        served: request.extensions().get::<Served>().cloned(),
    })
}

/// The call of tool `name` at the upstream, with `arguments` as the client wrote them,
/// answered with the text it sent; `None` when the client cancelled it (no answer, as on
/// rmcp's path).
pub(super) async fn call(
    gateway: Arc<Gateway>,
    eligible: Eligible,
    name: String,
    arguments: Option<Bytes>,
    session: String,
    id: Id,
    token: CancellationToken,
) -> Option<Answered> {
    let Eligible { peer, served } = eligible;
    let relay = Relay::of_peer(peer, token);
    let client = relay.client();
    let caller = Caller {
        session: Some(&session),
        client: client.as_deref(),
        served: served.as_ref(),
        relay: Some(&relay),
        stateless: None,
    };
    // A slice of the body, whose text the envelope has read as UTF-8 JSON.
    let arguments = match arguments.as_deref().map(std::str::from_utf8).transpose() {
        Ok(arguments) => arguments,
        Err(error) => {
            let error = ErrorData::invalid_params(format!("arguments not UTF-8: {error}"), None);
            return Some(Answered::of(Err(error), &id));
        }
    };
    let outcome = gateway.call_tool_raw(caller, &name, arguments).await;
    // Cancelled by the client: no answer, as on rmcp's path.
    if outcome.is_err() && relay.cancelled.is_cancelled() {
        return None;
    }
    Some(answered(&id, outcome))
}

/// The answer of request `id`: the upstream's result as the text it wrote (parsed too, for
/// replay), or the error as rmcp writes it.
fn answered(id: &Id, outcome: Result<ToolAnswer, ErrorData>) -> Answered {
    match outcome {
        Ok(ToolAnswer { text, result }) => {
            Answered::written(ServerResult::CallToolResult(result), text.get(), id)
        }
        Err(error) => Answered::of(Err(error), id),
    }
}
