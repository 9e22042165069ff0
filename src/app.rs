//! The whole HTTP application: `/mcp` behind the ledger's capture and the security guard, the
//! `/api` and dashboard behind the admin guard, and the operator's `/health` and `/metrics`.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::ledger::{self, Ledger};
use crate::mcp::http::shared;
use crate::mcp::{self, ServerContext};
use crate::security::admin::LoginThrottle;
use crate::security::{self, layers::Guard};
use crate::sessions::Sessions;
use crate::sessions::logical::LogicalSessions;
use crate::store::availability::Availability;

/// Everything the HTTP application serves from.
#[derive(Clone)]
pub struct HttpState {
    pub ctx: Arc<ServerContext>,
    pub sessions: Arc<Sessions>,
    pub ledger: Ledger,
    pub guard: Arc<Guard>,
    /// Whether the database has answered since start (see [`Availability`]).
    pub database: Arc<Availability>,
}

/// The whole HTTP application. `close_sessions` ends rmcp's sessions and open SSE streams; the
/// server fires it once in-flight requests have drained (see `security::connections`).
pub fn router(state: HttpState, close_sessions: CancellationToken) -> Router {
    let security = &state.guard.settings;
    let inner = mcp::http::service(
        state.ctx.clone(),
        state.sessions.clone(),
        security.max_body_bytes,
        close_sessions,
    );
    let logical = Arc::new(LogicalSessions::new(state.ctx.store.clone()));
    let inner = inner.layer(shared(axum::Extension(mcp::StatelessSessions(
        logical.clone(),
    ))));
    let capture = shared(middleware::from_fn_with_state(
        ledger::http::Capture {
            ledger: state.ledger.clone(),
            attribution: Some(logical as Arc<dyn ledger::http::Attribution>),
        },
        ledger::http::capture,
    ));
    // Where each message of a batch goes: its own ledger row and rate-limit token.
    let items = inner
        .clone()
        .layer(shared(middleware::from_fn_with_state(
            mcp::rules::Rules {
                items: None,
                sessions: state.sessions.clone(),
            },
            mcp::rules::apply,
        )))
        .layer(shared(middleware::from_fn_with_state(
            state.guard.clone(),
            security::layers::guard_batch_item,
        )))
        .layer(capture.clone());
    let rules = mcp::rules::Rules {
        items: Some(items),
        sessions: state.sessions.clone(),
    };
    let mcp = inner
        .layer(shared(middleware::from_fn_with_state(
            rules,
            mcp::rules::apply,
        )))
        .layer(shared(middleware::from_fn_with_state(
            state.guard.clone(),
            security::layers::guard_mcp,
        )));
    // Only a server that started without its database pays for the check.
    let mcp = match state.database.is_ready() {
        true => mcp,
        false => mcp.layer(shared(middleware::from_fn_with_state(
            state.database.clone(),
            wait_for_database,
        ))),
    };
    let mcp = mcp
        // Outside the guard, so the ledger records its refusals, and the replies exactly as
        // clients receive them.
        .layer(capture);
    let admin = crate::api::router(
        state.ctx.store.clone(),
        crate::api::Live {
            ledger: state.ledger.clone(),
            sessions: state.sessions.clone(),
            changes: state.ctx.changes.clone(),
            sweep: state.ctx.sweep.clone(),
            gateway: state.ctx.gateway.clone(),
        },
    )
    .merge(crate::dashboard::router())
    .merge(
        Router::new()
            .route(
                "/login",
                get(security::layers::login_form)
                    .post(security::layers::login)
                    .route_layer(middleware::from_fn_with_state(
                        Arc::new(LoginThrottle::default()),
                        throttle_logins,
                    )),
            )
            .route("/logout", post(security::layers::logout))
            .with_state(state.guard.clone()),
    )
    .layer(middleware::from_fn_with_state(
        state.guard.clone(),
        security::layers::guard_admin,
    ));
    let operator = Router::new()
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .layer(middleware::from_fn_with_state(
            state.guard.clone(),
            check_probe_host,
        ))
        .with_state(state);
    operator.merge(mcp).merge(admin)
}

/// `POST /login`, per peer address (see [`LoginThrottle`]): past the burst, 429 with
/// `Retry-After`.
async fn throttle_logins(
    State(throttle): State<Arc<LoginThrottle>>,
    request: axum::extract::Request,
    next: middleware::Next,
) -> Response {
    if request.method() != axum::http::Method::POST {
        return next.run(request).await;
    }
    let peer = request
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map_or_else(
            || "(unknown peer)".to_string(),
            |info| info.0.ip().to_string(),
        );
    match throttle.check(&peer) {
        Ok(()) => next.run(request).await,
        Err(wait) => {
            let seconds = wait.as_secs().max(1);
            tracing::warn!(%peer, "login attempts throttled");
            (
                StatusCode::TOO_MANY_REQUESTS,
                [(header::RETRY_AFTER, seconds.to_string())],
                axum::Json(json!({ "error": { "message": format!(
                    "Too Many Requests: too many login attempts from this address; retry after {seconds} s"
                ) } })),
            )
                .into_response()
        }
    }
}

/// `/health` and `/metrics` answer only under one of the server's names or an IP address: a
/// DNS-rebinding page (the attacker's name, resolved to this machine) cannot read them.
async fn check_probe_host(
    State(guard): State<Arc<Guard>>,
    request: axum::extract::Request,
    next: middleware::Next,
) -> Response {
    let allowed = &guard.settings.allowed_hosts;
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok());
    if host.is_some_and(|host| allowed.allows_probe_host(host)) {
        return next.run(request).await;
    }
    let shown = crate::protocol::cut_client_text(host.unwrap_or("(none)")).into_owned();
    tracing::warn!(host = %shown, "refused a probe for a host not in the allow-list (possible DNS rebinding)");
    (
        StatusCode::MISDIRECTED_REQUEST,
        axum::Json(json!({ "error": { "message": format!(
            "Misdirected Request: Host {shown} is not one of this server's names ({allowed}) nor an IP address; if it is a name of this server, add it with --allowed-hosts"
        ) } })),
    )
        .into_response()
}

/// Until the database has answered since start: 503 with a JSON-RPC error naming the cause
/// (before authentication, which reads keys from the database). The body is not read, so
/// the error's id is null.
async fn wait_for_database(
    State(database): State<Arc<Availability>>,
    request: Request,
    next: Next,
) -> Response {
    let Some(problem) = database.problem() else {
        return next.run(request).await;
    };
    let message = format!(
        "Steward cannot serve this request yet: {problem}; it keeps retrying (see /health)"
    );
    let mut response = security::layers::rpc_error(
        StatusCode::SERVICE_UNAVAILABLE,
        crate::protocol::INTERNAL_ERROR,
        &message,
        None,
    );
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, header::HeaderValue::from_static("2"));
    response
}

/// Longest `/health` and `/metrics` wait for the database. A pool retries a refused
/// connection until its 5-s acquire timeout, so unbounded, `/health` took 5 s to say that
/// PostgreSQL is down and `/metrics` 10 s (a Prometheus scrape's default timeout): both failed
/// just when they were needed. A database that answers takes milliseconds.
const DATABASE_CHECK_LIMIT: std::time::Duration = std::time::Duration::from_secs(1);

/// `query`'s answer within [`DATABASE_CHECK_LIMIT`]; if none, why (its error, or the limit).
async fn within_check_limit<T>(
    query: impl std::future::Future<Output = Result<T, sqlx::Error>>,
) -> Result<T, String> {
    match tokio::time::timeout(DATABASE_CHECK_LIMIT, query).await {
        Ok(answered) => answered.map_err(|error| error.to_string()),
        Err(_) => Err(format!("no answer within {DATABASE_CHECK_LIMIT:?}")),
    }
}

/// `GET /health`: 200 with `status: "ok"` when the database answers, else 503 `degraded`.
async fn health(State(state): State<HttpState>) -> Response {
    let HttpState {
        ctx,
        sessions,
        ledger,
        database: state_database,
        ..
    } = state;
    let (mut status, database) = match within_check_limit(ctx.store.ping()).await {
        Ok(()) => (
            StatusCode::OK,
            json!({ "engine": ctx.store.engine(), "reachable": true }),
        ),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            json!({ "engine": ctx.store.engine(), "reachable": false, "error": e }),
        ),
    };
    let sessions = sessions.report().await;
    let ledger = ledger.report();
    let sweep = ctx.sweep.report();
    let mut problems = crate::health::problems(&sessions, &ledger, &sweep);
    if let Some(problem) = state_database.problem() {
        problems.insert(0, problem);
    }
    if !problems.is_empty() {
        status = StatusCode::SERVICE_UNAVAILABLE;
    }
    let mut body = json!({
        "status": if status == StatusCode::OK { "ok" } else { "degraded" },
        "problems": problems,
        "sessions": sessions,
        "ledger": ledger,
        "lease_sweep": sweep,
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_seconds": ctx.started.elapsed().as_secs(),
        "database": database,
        "board_calls_direct": ctx.board_calls_direct(),
    });
    // Listed, but never the reason for a 503: Steward and its other upstreams still serve.
    if let (Some(gateway), Some(fields)) = (&ctx.gateway, body.as_object_mut()) {
        fields.insert("upstreams".into(), json!(gateway.report()));
    }
    (status, axum::Json(body)).into_response()
}

/// `GET /metrics`: Prometheus text.
async fn metrics(State(state): State<HttpState>) -> Response {
    let ctx = &state.ctx;
    state.ledger.report().record_metrics();
    let report = state.sessions.report().await;
    metrics::gauge!("steward_sessions_cached").set(report.cached_in_memory as f64);
    metrics::gauge!("steward_session_write_failures").set(report.write_failures as f64);
    metrics::gauge!("steward_sessions_woken_from_memory").set(report.woken_from_memory as f64);
    metrics::gauge!("steward_cleanup_last_run_failed").set(
        if report.cleanup.as_ref().is_some_and(|r| r.error.is_some()) {
            1.0
        } else {
            0.0
        },
    );
    let up = within_check_limit(ctx.store.ping()).await.is_ok();
    metrics::gauge!("steward_database_up").set(if up { 1.0 } else { 0.0 });
    // Counted only from a database that answers, within the same limit: a scrape that waits
    // out the pool is a scrape that fails, just when its other numbers matter.
    let counted = match up {
        true => within_check_limit(ctx.store.live_sessions_by_client_type()).await,
        false => Err("the database does not answer".to_string()),
    };
    match counted {
        Ok(counts) => crate::metrics::record_live_sessions(counts),
        Err(error) => tracing::warn!(%error, "cannot count live sessions for /metrics"),
    }
    for upstream in ctx.gateway.iter().flat_map(|gateway| gateway.report()) {
        crate::metrics::record_upstream_state(&crate::metrics::UpstreamGauges {
            name: &upstream.name,
            up: upstream.state == crate::gateway::status::State::Up,
            reinitialized: upstream.sessions_reinitialized,
            restarts: upstream.restarts,
            undelivered: upstream.undelivered,
            abandoned: upstream.abandoned,
            parking_refused: upstream.parking_refused,
            orphaned: upstream.orphaned,
            breaker_open: upstream.breaker != crate::gateway::breaker::BreakerState::Closed,
            breaker_opened: upstream.breaker_opened,
            short_circuited: upstream.short_circuited,
        });
    }
    metrics::gauge!("process_resident_memory_bytes")
        .set(crate::metrics::resident_memory_bytes() as f64);
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        crate::metrics::render(),
    )
        .into_response()
}
