//! Protocol rules rmcp leaves to the server, applied to the [`Envelope`] the security guard
//! parsed (so nothing here parses the body again): batches are answered or refused per
//! revision ([`super::batch`]), and `server/discover` is refused to revisions before it.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::protocol::{self, DEFAULT_REVISION, Envelope, PROTOCOL_VERSION, SESSION_ID};
use crate::sessions::Sessions;

/// What the rules need: where a batch's messages go one by one (the ledger's capture, the
/// batch item guard, these rules and rmcp; None where the request is itself a batch's message)
/// and the sessions (for their negotiated revisions).
#[derive(Clone)]
pub struct Rules {
    pub items: Option<Router>,
    pub sessions: Arc<Sessions>,
}

/// The middleware, between the security guard and rmcp.
pub async fn apply(State(rules): State<Rules>, request: Request, next: Next) -> Response {
    let Some(envelope) = request.extensions().get::<Arc<Envelope>>().cloned() else {
        return next.run(request).await;
    };
    if envelope.is_batch()
        && let Some(items) = rules.items.clone()
    {
        // The session's revision only: a header cannot turn batches on for a later session.
        let revision = match request
            .headers()
            .get(SESSION_ID)
            .and_then(|v| v.to_str().ok())
        {
            Some(session) => rules.sessions.protocol_of(session).await,
            None => None,
        };
        let (parts, _) = request.into_parts();
        return super::batch::answer(items, parts, &envelope, revision.as_deref()).await;
    }
    if let Some(message) = envelope.single()
        && message.method.as_deref() == Some(protocol::DISCOVER)
    {
        let revision = rules.revision(request.headers()).await;
        if let Some(refusal) = protocol::discover_refusal(&revision) {
            let body =
                protocol::error_body(protocol::METHOD_NOT_FOUND, &refusal, message.id.as_ref());
            return (StatusCode::BAD_REQUEST, axum::Json(body)).into_response();
        }
    }
    next.run(request).await
}

impl Rules {
    /// The revision a request is judged by: the header, else the session's negotiated one.
    async fn revision(&self, headers: &HeaderMap) -> String {
        let text = |name| headers.get(name).and_then(|v| v.to_str().ok());
        if let Some(version) = text(PROTOCOL_VERSION) {
            return version.to_string();
        }
        if let Some(session) = text(SESSION_ID)
            && let Some(version) = self.sessions.protocol_of(session).await
        {
            return version;
        }
        DEFAULT_REVISION.to_string()
    }
}
