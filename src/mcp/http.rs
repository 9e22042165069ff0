//! Streamable HTTP MCP at `/mcp` (rmcp), and the middleware that turns transport rejections
//! into JSON-RPC errors that say what to fix.

use std::sync::Arc;
use std::task::{Context, Poll};

use axum::Router;
use axum::body::{Body, to_bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use tokio_util::sync::CancellationToken;
use tower::{Layer, Service};

use super::{BoardServer, ServerContext};
use crate::protocol;
use crate::sessions::Sessions;

/// The header value every MCP POST must send.
pub const REQUIRED_ACCEPT: &str = "application/json, text/event-stream";
/// Largest rejection body worth reading back to rewrite it.
const MAX_REJECTION_BODY: usize = 64 * 1024;

/// The MCP endpoint, mounted at `/mcp`. Rejections are rewritten as JSON-RPC errors that say what to fix (see [`explain_rejections`]).
pub fn service(
    ctx: Arc<ServerContext>,
    sessions: Arc<Sessions>,
    max_body_bytes: usize,
    close_sessions: CancellationToken,
) -> Router {
    let mut config = StreamableHttpServerConfig::default()
        .with_cancellation_token(close_sessions.clone())
        .with_max_request_body_bytes(max_body_bytes)
        // Host and Origin are checked by the security guard, against Steward's own lists, for
        // /mcp, /api and the dashboard alike (one list, one error format).
        .disable_allowed_hosts()
        .disable_allowed_origins();
    // Sessions live in the database: rmcp restores any session it does not hold in memory.
    config.session_store = Some(sessions.clone());
    let direct = super::fast::Direct::new(&ctx, sessions.clone(), close_sessions.clone());
    // Board calls of a session made dormant are answered in front of rmcp without its worker.
    ctx.live.attach(&sessions.manager());
    let mcp = StreamableHttpService::new(
        move || Ok(BoardServer::new(ctx.clone(), None)),
        sessions.manager(),
        config,
    );
    let mcp =
        Router::new()
            .nest_service("/mcp", mcp)
            .layer(shared(middleware::from_fn_with_state(
                sessions.clone(),
                one_restore_at_a_time,
            )));
    // Tool calls that need nothing of rmcp's are answered in front of it (and of the restore
    // turns, which only requests into rmcp take).
    let mcp = match direct {
        Some(direct) => mcp.layer(shared(middleware::from_fn_with_state(
            direct,
            super::fast::serve,
        ))),
        None => mcp,
    };
    mcp.layer(shared(middleware::from_fn_with_state(
        sessions.clone(),
        session_endings,
    )))
    .layer(shared(middleware::from_fn_with_state(
        sessions,
        scope_replay,
    )))
    .layer(shared(middleware::from_fn(explain_rejections)))
    .layer(shared(middleware::from_fn(ended_is_no_content)))
}

/// `layer`, with the service it makes shared behind an `Arc`: see [`SharedService`].
pub fn shared<L>(layer: L) -> Shared<L> {
    Shared(layer)
}

/// A layer whose service is kept behind an `Arc` (see [`SharedService`]).
#[derive(Clone)]
pub struct Shared<L>(L);

impl<L: Layer<S>, S> Layer<S> for Shared<L> {
    type Service = SharedService<L::Service>;

    fn layer(&self, inner: S) -> Self::Service {
        SharedService(Arc::new(self.0.layer(inner)))
    }
}

/// A service cloned by a reference count. axum clones a route's whole service for every
/// request, and each `from_fn` middleware clones the rest of the stack below it again, so a
/// stack of n middlewares copied and dropped O(n²) boxes per request; behind this, each clone
/// stops at the next middleware, which is cloned (one level) only when it is called. For
/// services that are always ready, as axum's middlewares and routes are: the clone called is
/// not polled for readiness first, exactly as axum's `Next` calls its inner service.
pub struct SharedService<S>(Arc<S>);

impl<S> Clone for SharedService<S> {
    fn clone(&self) -> Self {
        Self(Arc::clone(&self.0))
    }
}

impl<S: Service<R> + Clone, R> Service<R> for SharedService<S> {
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: R) -> Self::Future {
        S::clone(&self.0).call(request)
    }
}

/// rmcp answers a DELETE that ends a session with 202 Accepted; the Python SDK accepts only
/// 200 or 204 (and prints "Session termination failed: 202" on every clean exit), while rmcp's
/// and the TypeScript SDK's clients accept any 2xx. The session is ended by then: 204.
async fn ended_is_no_content(request: Request, next: Next) -> Response {
    let is_delete = request.method() == axum::http::Method::DELETE;
    let mut response = next.run(request).await;
    if is_delete && response.status() == StatusCode::ACCEPTED {
        *response.status_mut() = StatusCode::NO_CONTENT;
        *response.body_mut() = Body::empty();
        response.headers_mut().remove(header::CONTENT_LENGTH);
    }
    response
}

/// Requests for a session this replica does not hold live (not held, or dormant) go into rmcp
/// one at a time until it does: the first restores it from the database, the ones after it
/// find it live. Without this, parallel first requests on a loaded replica could restore it
/// twice and the second would get 500 (see [`crate::sessions::restore_turns`]). Live sessions
/// pass straight through; the turn is held until rmcp has answered (for a call: until its
/// stream opens, not until its result). Every request of a session is counted as in rmcp
/// until rmcp has answered, so its session is not made dormant under it.
async fn one_restore_at_a_time(
    State(sessions): State<Arc<Sessions>>,
    request: Request,
    next: Next,
) -> Response {
    let manager = sessions.manager();
    let id = request
        .headers()
        .get(protocol::SESSION_ID)
        .and_then(|v| v.to_str().ok());
    let (inside, turn) = match id {
        Some(id) => {
            // Counted before the look: from here on the session cannot become dormant.
            let inside = manager.entering(id);
            let turn = match manager.is_live(id).await {
                true => None,
                false => {
                    let turn = manager.restore_turn(id).await;
                    // Restored by the request before this one: nothing left to wait for.
                    (!manager.is_live(id).await).then_some(turn)
                }
            };
            (Some(inside), turn)
        }
        None => (None, None),
    };
    let response = next.run(request).await;
    drop(turn);
    drop(inside);
    response
}

/// The ends of sessions, as the client sees them. A DELETE is noted before rmcp handles it:
/// rmcp drops the session from memory before it marks the row ended, and a request arriving in
/// between would restore the deleted session from its row. And a session ended (deleted,
/// revoked, expired) between rmcp's check that it exists and its use makes rmcp answer 500
/// ("Session service terminated"); for the client that is an unknown session: 404, so it
/// starts a new one instead of retrying a server error.
async fn session_endings(
    State(sessions): State<Arc<Sessions>>,
    request: Request,
    next: Next,
) -> Response {
    // A clone of the header shares its bytes: no copy per request.
    let session = request.headers().get(protocol::SESSION_ID).cloned();
    let id = |session: &Option<HeaderValue>| {
        session
            .as_ref()
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    // Only a session held here can be restored in that window; an unknown id adds nothing.
    if request.method() == Method::DELETE
        && let Some(id) = id(&session)
        && sessions.manager().has_cached(&id).await
    {
        sessions.manager().note_ended(&id);
    }
    let response = next.run(request).await;
    if response.status() != StatusCode::INTERNAL_SERVER_ERROR {
        return response;
    }
    match id(&session) {
        Some(id) if !sessions.manager().has_cached(&id).await => {
            tracing::debug!(session_id = %id, "the session ended while its request was being served: 404");
            rejection(StatusCode::NOT_FOUND, protocol::SESSION_NOT_FOUND)
        }
        _ => response,
    }
}

/// Event ids are 32 hex digits (128 random bits); anything else is unknown without a lookup.
fn is_event_id(text: &str) -> bool {
    text.len() == 32 && text.bytes().all(|b| b.is_ascii_hexdigit())
}

/// A `GET` with `Last-Event-ID` replays a stream only to the session it was sent to: without
/// an `Mcp-Session-Id` it is refused (400), and an event of another session's stream (or of
/// another principal's) answers 404 exactly like an unknown one.
async fn scope_replay(
    State(sessions): State<Arc<Sessions>>,
    request: Request,
    next: Next,
) -> Response {
    if request.method() != Method::GET {
        return next.run(request).await;
    }
    let Some(last) = request.headers().get("last-event-id") else {
        return next.run(request).await;
    };
    let last = last.to_str().unwrap_or_default();
    let Some(session) = request
        .headers()
        .get("mcp-session-id")
        .and_then(|v| v.to_str().ok())
    else {
        return rejection(
            StatusCode::BAD_REQUEST,
            "Bad Request: Last-Event-ID resumes a stream of your session; send the Mcp-Session-Id the stream was sent on (a request without a session has nothing to resume)",
        );
    };
    let principal = request
        .extensions()
        .get::<crate::principal::Principal>()
        .and_then(|p| p.name());
    let allowed = if is_event_id(last) {
        sessions.may_replay(last, session, principal).await
    } else {
        Ok(false)
    };
    match allowed {
        Ok(true) => next.run(request).await,
        Ok(false) => rejection(
            StatusCode::NOT_FOUND,
            "Not Found: this Last-Event-ID is unknown, older than the replay window, or not of this session's streams; reconnect without Last-Event-ID",
        ),
        Err(error) => {
            tracing::error!(%error, "cannot read the event store to check a replay");
            rejection(
                StatusCode::SERVICE_UNAVAILABLE,
                "the event store cannot be read right now (database unavailable); retry shortly and see /health",
            )
        }
    }
}

fn rejection(status: StatusCode, message: &str) -> Response {
    let body = protocol::error_body(protocol::INVALID_REQUEST, message, None);
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// rmcp answers transport-level rejections (wrong Accept header, unknown session, missing
/// session id...) with a plain-text body. MCP clients expect JSON-RPC, and the seed's lesson
/// is that a rejection must say what to fix: rewrite those bodies as JSON-RPC errors, keeping
/// the HTTP status.
async fn explain_rejections(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !status.is_client_error() || is_json {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let original = match to_bytes(body, MAX_REJECTION_BODY).await {
        Ok(bytes) => String::from_utf8_lossy(&bytes).trim().to_string(),
        Err(_) => String::new(),
    };
    let message = explain(status, &original);
    let body = protocol::error_body(protocol::INVALID_REQUEST, &message, None);
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Response::from_parts(parts, Body::from(body.to_string()))
}

fn explain(status: StatusCode, original: &str) -> String {
    match status {
        StatusCode::NOT_ACCEPTABLE => format!(
            "Not Acceptable: send the header `Accept: {REQUIRED_ACCEPT}` (POST needs both types, GET needs text/event-stream). Server said: {original}"
        ),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => {
            format!(
                "Unsupported Media Type: send `Content-Type: application/json`. Server said: {original}"
            )
        }
        StatusCode::NOT_FOUND => format!(
            "{original}: this Mcp-Session-Id is unknown, expired or was closed. Start a new session with initialize"
        ),
        _ if original.is_empty() => status
            .canonical_reason()
            .unwrap_or("Bad Request")
            .to_string(),
        _ => original.to_string(),
    }
}
