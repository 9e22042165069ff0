//! The HTTP face: Streamable HTTP MCP at `/mcp` (rmcp), `/health`, and the middleware that
//! turns transport rejections into JSON-RPC errors that say what to fix.

use std::sync::Arc;

use axum::Router;
use axum::body::{Body, to_bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::{BoardServer, ServerContext};
use crate::ledger::{self, Ledger, LedgerReport};
use crate::security::{self, layers::Guard};
use crate::sessions::logical::LogicalSessions;
use crate::sessions::{SessionReport, Sessions};

/// The header value every MCP POST must send.
pub const REQUIRED_ACCEPT: &str = "application/json, text/event-stream";
/// Largest rejection body worth reading back to rewrite it.
const MAX_REJECTION_BODY: usize = 64 * 1024;

/// Everything the HTTP application serves from.
#[derive(Clone)]
pub struct HttpState {
    pub ctx: Arc<ServerContext>,
    pub sessions: Arc<Sessions>,
    pub ledger: Ledger,
    pub in_flight: Arc<super::drain::InFlight>,
    pub guard: Arc<Guard>,
}

/// The whole HTTP application. `close_sessions` ends rmcp's sessions and open SSE streams; the
/// server fires it once in-flight requests have drained (see [`super::drain`]).
pub fn router(state: HttpState, close_sessions: CancellationToken) -> Router {
    let security = &state.guard.settings;
    let mut config = StreamableHttpServerConfig::default()
        .with_cancellation_token(close_sessions)
        .with_max_request_body_bytes(security.max_body_bytes)
        // Host and Origin are checked by the security guard, against Steward's own lists, for
        // /mcp, /api and the dashboard alike (one list, one error format).
        .disable_allowed_hosts()
        .disable_allowed_origins();
    // Sessions live in the database: rmcp restores any session it does not hold in memory.
    config.session_store = Some(state.sessions.clone());
    let factory_ctx = state.ctx.clone();
    let mcp = StreamableHttpService::new(
        move || Ok(BoardServer::new(factory_ctx.clone(), None)),
        state.sessions.manager(),
        config,
    );
    let inner = Router::new()
        .nest_service("/mcp", mcp)
        .layer(middleware::from_fn(explain_rejections));
    let mcp = inner
        .clone()
        .layer(middleware::from_fn_with_state(
            (state.guard.clone(), inner),
            security::layers::guard_mcp,
        ))
        // Outside the guard, so the ledger records its refusals, and the replies exactly as
        // clients receive them.
        .layer(middleware::from_fn_with_state(
            ledger::http::Capture {
                ledger: state.ledger.clone(),
                attribution: Some(Arc::new(LogicalSessions::new(state.ctx.store.clone()))),
                max_body: security.max_body_bytes,
            },
            ledger::http::capture,
        ))
        .layer(middleware::from_fn_with_state(
            state.in_flight.clone(),
            super::drain::track,
        ));
    let admin = crate::api::router(
        state.ctx.store.clone(),
        crate::api::Live {
            ledger: state.ledger.clone(),
            sessions: state.sessions.clone(),
        },
    )
    .merge(crate::dashboard::router())
    .merge(
        Router::new()
            .route(
                "/login",
                get(security::layers::login_form).post(security::layers::login),
            )
            .route("/logout", post(security::layers::logout))
            .with_state(state.guard.clone()),
    )
    .layer(middleware::from_fn_with_state(
        state.guard.clone(),
        security::layers::guard_admin,
    ));
    Router::new()
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .with_state(state)
        .merge(mcp)
        .merge(admin)
}

/// `GET /health`: 200 with `status: "ok"` when the database answers, else 503 `degraded`.
async fn health(
    State(HttpState {
        ctx,
        sessions,
        ledger,
        ..
    }): State<HttpState>,
) -> Response {
    let (mut status, database) = match ctx.store.ping().await {
        Ok(()) => (
            StatusCode::OK,
            json!({ "engine": ctx.store.engine(), "reachable": true }),
        ),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            json!({ "engine": ctx.store.engine(), "reachable": false, "error": e.to_string() }),
        ),
    };
    let sessions = sessions.report().await;
    let ledger = ledger.report();
    let problems = health_problems(&sessions, &ledger);
    if !problems.is_empty() {
        status = StatusCode::SERVICE_UNAVAILABLE;
    }
    let body = json!({
        "status": if status == StatusCode::OK { "ok" } else { "degraded" },
        "problems": problems,
        "sessions": sessions,
        "ledger": ledger,
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_seconds": ctx.started.elapsed().as_secs(),
        "database": database,
    });
    (status, axum::Json(body)).into_response()
}

/// What is wrong with the sessions, their cleanup job and the ledger, one line each (empty when
/// all is well). `/health` and `/api/sessions/health` report the same list.
pub fn health_problems(sessions: &SessionReport, ledger: &LedgerReport) -> Vec<String> {
    let mut problems = Vec::new();
    if let Some(error) = &sessions.last_error {
        problems.push(format!("sessions: {error}"));
    }
    if let Some(error) = sessions.cleanup.as_ref().and_then(|run| run.error.as_ref()) {
        problems.push(format!("cleanup: last run failed: {error}"));
    }
    if let Some(error) = &ledger.retention.last_error {
        problems.push(format!("ledger retention: {error}"));
    }
    if let Some(reason) = &ledger.reason {
        problems.push(format!(
            "ledger: {reason} ({} requests waiting)",
            ledger.pending
        ));
    }
    problems
}

/// `GET /metrics`: Prometheus text.
async fn metrics(
    State(HttpState {
        ctx,
        sessions,
        ledger,
        ..
    }): State<HttpState>,
) -> Response {
    crate::metrics::record_ledger(&ledger.report());
    let report = sessions.report().await;
    metrics::gauge!("steward_sessions_cached").set(report.cached_in_memory as f64);
    metrics::gauge!("steward_session_write_failures").set(report.write_failures as f64);
    metrics::gauge!("steward_cleanup_last_run_failed").set(
        if report.cleanup.as_ref().is_some_and(|r| r.error.is_some()) {
            1.0
        } else {
            0.0
        },
    );
    match ctx.store.live_sessions_by_client_type().await {
        Ok(counts) => crate::metrics::record_live_sessions(counts),
        Err(error) => tracing::warn!(%error, "cannot count live sessions for /metrics"),
    }
    metrics::gauge!("steward_database_up").set(if ctx.store.ping().await.is_ok() {
        1.0
    } else {
        0.0
    });
    metrics::gauge!("process_resident_memory_bytes")
        .set(crate::metrics::resident_memory_bytes() as f64);
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        crate::metrics::render(),
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
    let body = json!({
        "jsonrpc": "2.0",
        "id": null,
        "error": { "code": -32600, "message": message },
    });
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
