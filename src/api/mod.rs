//! The JSON API under `/api/`: sessions and the request ledger, read from the same database the
//! server writes, and the task board ([`board`]). (The analytics endpoints and the dashboard
//! build on these.)

mod board;
mod upstreams;

use std::convert::Infallible;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chrono::{DateTime, Utc};
use futures::StreamExt;
use serde::Deserialize;
use serde_json::json;
use tokio_stream::wrappers::BroadcastStream;

use crate::ledger::Ledger;
use crate::resources::changes::{BoardChanges, Change};
use crate::resources::expiry::SweepHealth;
use crate::sessions::Sessions;
use crate::store::Store;
use crate::store::requests::RequestFilter;
use crate::store::sessions::{SESSION_KINDS, SESSION_STATUSES, SessionFilter};

const MAX_PER_PAGE: u32 = 1000;
/// A page of `/api/sessions` stops before this many bytes of sessions (at least one is sent);
/// `truncated` then says so and the client asks for smaller pages.
pub const MAX_PAGE_BYTES: usize = 8 * 1024 * 1024;

/// axum's `Query`, refusing a bad query string in the API's JSON error format (axum's own
/// rejection is text/plain).
struct ApiQuery<T>(T);

impl<T, S> axum::extract::FromRequestParts<S> for ApiQuery<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, ApiError> {
        match Query::<T>::from_request_parts(parts, state).await {
            Ok(Query(query)) => Ok(ApiQuery(query)),
            Err(rejection) => Err(ApiError(
                StatusCode::BAD_REQUEST,
                format!(
                    "{}; fix the query string (the parameters are in docs/openapi.yaml)",
                    rejection.body_text()
                ),
            )),
        }
    }
}

/// Live feeds for `/api/events`.
#[derive(Clone)]
pub struct Live {
    pub ledger: Ledger,
    pub sessions: Arc<Sessions>,
    /// Board changes on this replica (from agents and from the API alike).
    pub changes: BoardChanges,
    /// The lease sweeps' record, for `/api/sessions/health`.
    pub sweep: SweepHealth,
    /// Gateway mode's upstreams, for `/api/upstreams` (`None` without upstreams).
    pub gateway: Option<Arc<crate::gateway::Gateway>>,
}

/// What `/api/sessions/health` reads: the database and the live ledger and sessions.
#[derive(Clone)]
struct HealthState {
    store: Store,
    live: Live,
}

pub fn router(store: Store, live: Live) -> Router {
    let health = Router::new()
        .route("/api/sessions/health", get(session_health))
        .with_state(HealthState {
            store: store.clone(),
            live: live.clone(),
        });
    let board = board::router(board::BoardState {
        store: store.clone(),
        changes: live.changes.clone(),
    });
    let upstreams = Router::new()
        .route("/api/upstreams", get(upstreams::list_upstreams))
        .with_state(upstreams::UpstreamsState {
            store: store.clone(),
            gateway: live.gateway.clone(),
        });
    let events = Router::new()
        .route("/api/events", get(events))
        .with_state(live);
    Router::new()
        .route("/api/sessions", get(list_sessions))
        .route("/api/sessions/{id}", get(show_session))
        .route("/api/requests", get(list_requests))
        .route("/api/requests/export", get(export_requests))
        .route("/api/stats", get(stats))
        .route("/api/cost", get(cost))
        .route("/api/pricing", get(pricing))
        .with_state(store)
        .merge(events)
        .merge(health)
        .merge(board)
        .merge(upstreams)
        .route("/api/{*rest}", axum::routing::any(no_such_endpoint))
        .route("/api", axum::routing::any(no_such_endpoint))
        .method_not_allowed_fallback(method_not_allowed)
}

async fn no_such_endpoint(uri: axum::http::Uri) -> ApiError {
    ApiError(
        StatusCode::NOT_FOUND,
        format!(
            "there is no API endpoint {}; the endpoints are in docs/openapi.yaml",
            crate::protocol::cut_client_text(uri.path())
        ),
    )
}

async fn method_not_allowed(method: axum::http::Method) -> ApiError {
    ApiError(
        StatusCode::METHOD_NOT_ALLOWED,
        format!(
            "{method} is not allowed on this endpoint; docs/openapi.yaml lists each endpoint's methods"
        ),
    )
}

/// An API error: a status and a message that says what to fix.
struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.0,
            axum::Json(json!({ "error": { "message": self.1 } })),
        )
            .into_response()
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(error: sqlx::Error) -> Self {
        tracing::error!(%error, "API query failed");
        ApiError(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the database could not answer; see /health".into(),
        )
    }
}

/// `page` (from 1) and `per_page` (1 to 1000) → (limit, offset, page, per_page).
/// (Not a flattened struct: serde's `flatten` cannot read numbers from a query string.)
fn limit_offset(
    page: Option<u32>,
    per_page: Option<u32>,
) -> Result<(i64, i64, u32, u32), ApiError> {
    let page = page.unwrap_or(1);
    let per_page = per_page.unwrap_or(50);
    if page == 0 || per_page == 0 || per_page > MAX_PER_PAGE {
        return Err(ApiError(
            StatusCode::BAD_REQUEST,
            format!("page must be ≥ 1 and per_page between 1 and {MAX_PER_PAGE}"),
        ));
    }
    Ok((
        i64::from(per_page),
        i64::from(page - 1) * i64::from(per_page),
        page,
        per_page,
    ))
}

#[derive(Debug, Deserialize)]
struct SessionQuery {
    status: Option<String>,
    client_type: Option<String>,
    kind: Option<String>,
    page: Option<u32>,
    per_page: Option<u32>,
}

async fn list_sessions(
    State(store): State<Store>,
    ApiQuery(q): ApiQuery<SessionQuery>,
) -> Result<Response, ApiError> {
    let (limit, offset, page, per_page) = limit_offset(q.page, q.per_page)?;
    let filter = SessionFilter {
        status: one_of("status", q.status, &SESSION_STATUSES)?,
        client_type: q.client_type,
        kind: one_of("kind", q.kind, &SESSION_KINDS)?,
    };
    let (sessions, total) = store.list_sessions(&filter, limit, offset).await?;
    let sessions = store.with_totals(sessions).await?;
    let (sessions, truncated) = within_bytes(&sessions, MAX_PAGE_BYTES);
    Ok(axum::Json(json!({
        "sessions": sessions, "total": total, "page": page, "per_page": per_page,
        "truncated": truncated,
    }))
    .into_response())
}

/// A filter that must be one of `allowed` (absent or empty: no filter). Anything else is a
/// 400 naming the allowed values, where matching it would quietly answer an empty list.
fn one_of(name: &str, value: Option<String>, allowed: &[&str]) -> Result<Option<String>, ApiError> {
    match value.filter(|v| !v.is_empty()) {
        Some(value) if !allowed.contains(&value.as_str()) => Err(bad_request(format!(
            "{name} {value:?} is not one of {}",
            allowed.join(", ")
        ))),
        value => Ok(value),
    }
}

/// As many of `items` as fit in `max_bytes` of JSON (at least one), and whether some were left out.
fn within_bytes<T: serde::Serialize>(
    items: &[T],
    max_bytes: usize,
) -> (Vec<serde_json::Value>, bool) {
    let mut kept = Vec::new();
    let mut bytes = 0;
    for item in items {
        let Ok(value) = serde_json::to_value(item) else {
            continue;
        };
        bytes += value.to_string().len();
        if bytes > max_bytes && !kept.is_empty() {
            return (kept, true);
        }
        kept.push(value);
    }
    (kept, false)
}

async fn show_session(
    State(store): State<Store>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let session = store
        .get_session(&id)
        .await?
        .ok_or_else(|| ApiError(StatusCode::NOT_FOUND, format!("no session has id {id}")))?;
    let session = store.with_totals(vec![session]).await?;
    let filter = RequestFilter {
        session_id: Some(id),
        ..RequestFilter::default()
    };
    let (requests, total) = store.list_requests(&filter, 200, 0).await?;
    Ok(
        axum::Json(json!({ "session": session[0], "requests": requests, "request_count": total }))
            .into_response(),
    )
}

/// Filters of `/api/requests` and `/api/requests/export`.
#[derive(Debug, Deserialize)]
struct RequestQuery {
    session_id: Option<String>,
    tool: Option<String>,
    method: Option<String>,
    status: Option<String>,
    /// RFC 3339 time or a duration back from now (`15m`, `24h`).
    since: Option<String>,
    /// Rows before this time (same forms as `since`).
    until: Option<String>,
    /// Text to find in the method, tool, error message or session id.
    q: Option<String>,
    page: Option<u32>,
    per_page: Option<u32>,
    /// Export only: `csv` (default) or `jsonl`.
    format: Option<String>,
}

/// The statuses a ledger row can have (`mcp_requests.status`).
const STATUSES: [&str; 6] = [
    "success",
    "error",
    "tool_error",
    "cancelled",
    "timeout",
    "input_required",
];

fn bad_request(message: String) -> ApiError {
    ApiError(StatusCode::BAD_REQUEST, message)
}

impl RequestQuery {
    /// The store filter, or a 400 that names the parameter to fix.
    fn filter(&self) -> Result<RequestFilter, ApiError> {
        let time = |name: &str, value: &Option<String>| {
            value
                .as_deref()
                .map(|text| parse_time(name, text).map_err(bad_request))
                .transpose()
        };
        let since = time("since", &self.since)?;
        let until = time("until", &self.until)?;
        if let (Some(since), Some(until)) = (since, until)
            && since >= until
        {
            return Err(bad_request(format!(
                "since ({since}) must be before until ({until})"
            )));
        }
        let status = one_of("status", self.status.clone(), &STATUSES)?;
        let some = |v: &Option<String>| v.clone().filter(|t| !t.trim().is_empty());
        Ok(RequestFilter {
            session_id: some(&self.session_id),
            tool_name: some(&self.tool),
            method: some(&self.method),
            status,
            since,
            until,
            text: some(&self.q),
            client_name: None,
        })
    }
}

async fn list_requests(
    State(store): State<Store>,
    ApiQuery(q): ApiQuery<RequestQuery>,
) -> Result<Response, ApiError> {
    let (limit, offset, page, per_page) = limit_offset(q.page, q.per_page)?;
    let filter = q.filter()?;
    let (requests, total) = store.list_requests(&filter, limit, offset).await?;
    Ok(axum::Json(json!({
        "requests": requests,
        "total": total,
        "page": page,
        "per_page": per_page,
        "note": "tokens and costs are estimates",
    }))
    .into_response())
}

/// `GET /api/requests/export?format=csv|jsonl&...filters`: every matching row, newest first,
/// streamed as a download.
async fn export_requests(
    State(store): State<Store>,
    ApiQuery(q): ApiQuery<RequestQuery>,
) -> Result<Response, ApiError> {
    let format =
        crate::export::Format::parse(q.format.as_deref().unwrap_or("csv")).map_err(bad_request)?;
    let filter = q.filter()?;
    // The first page is read before answering, so a failing database is a clean 500.
    let first = store
        .export_requests_page(&filter, None, crate::export::PAGE_ROWS)
        .await?;
    let disposition = format.content_disposition(Utc::now());
    Ok((
        [
            (header::CONTENT_TYPE, format.content_type().to_string()),
            (header::CONTENT_DISPOSITION, disposition),
            (header::CACHE_CONTROL, "no-store".to_string()),
        ],
        crate::export::body(store, filter, format, first),
    )
        .into_response())
}

#[derive(Debug, Deserialize)]
struct SessionHealthQuery {
    /// How far back disconnects count: a duration such as `1h` (the default) or `24h`.
    window: Option<String>,
}

/// Live sessions last active within this long are healthy...
const HEALTHY_FOR: chrono::Duration = chrono::Duration::minutes(5);
/// ...and stale past this long (aging in between).
const STALE_AFTER: chrono::Duration = chrono::Duration::minutes(10);

/// `GET /api/sessions/health`: live sessions by time since last activity, sessions by status,
/// disconnect reasons and rate over a window, and the ledger's and cleanup's health.
async fn session_health(
    State(HealthState { store, live }): State<HealthState>,
    ApiQuery(q): ApiQuery<SessionHealthQuery>,
) -> Result<Response, ApiError> {
    let window_text = q.window.unwrap_or_else(|| "1h".into());
    let window = parse_window(&window_text)?;
    let now = Utc::now();
    let health = store
        .session_health(now - HEALTHY_FOR, now - STALE_AFTER, now - window)
        .await?;
    let sessions = live.sessions.report().await;
    let ledger = live.ledger.report();
    let problems = crate::health::problems(&sessions, &ledger, &live.sweep.report());
    Ok(axum::Json(json!({
        "status": if problems.is_empty() { "ok" } else { "degraded" },
        "problems": problems,
        "at": now,
        "live": live_buckets(&health.age),
        "by_status": by_status(&health.by_status),
        "disconnects": disconnects(&health, &window_text, now - window, window),
        "cleanup": { "healthy": sessions.healthy, "last_run": sessions.cleanup },
        "ledger": ledger,
    }))
    .into_response())
}

/// A positive duration such as `15m`, `1h` or `7d`.
fn parse_window(text: &str) -> Result<chrono::Duration, ApiError> {
    humantime::parse_duration(text)
        .ok()
        .and_then(|d| chrono::Duration::from_std(d).ok())
        .filter(|d| *d > chrono::Duration::zero() && Utc::now().checked_sub_signed(*d).is_some())
        .ok_or_else(|| {
            bad_request(format!(
                "window {text:?} is not a duration like 15m, 1h or 7d"
            ))
        })
}

fn live_buckets(age: &crate::store::sessions::AgeBuckets) -> serde_json::Value {
    json!({
        "healthy": age.healthy,
        "aging": age.aging,
        "stale": age.stale,
        "total": age.healthy + age.aging + age.stale,
        "thresholds": {
            "healthy_under_seconds": HEALTHY_FOR.num_seconds(),
            "stale_over_seconds": STALE_AFTER.num_seconds(),
        },
    })
}

/// Every status, zero when no session has it.
fn by_status(counts: &[(String, i64)]) -> serde_json::Map<String, serde_json::Value> {
    let mut by_status: serde_json::Map<String, serde_json::Value> = SESSION_STATUSES
        .into_iter()
        .map(|s| (s.to_string(), json!(0)))
        .collect();
    for (status, n) in counts {
        by_status.insert(status.clone(), json!(n));
    }
    by_status
}

fn disconnects(
    health: &crate::store::sessions::SessionHealth,
    window_text: &str,
    since: DateTime<Utc>,
    window: chrono::Duration,
) -> serde_json::Value {
    let total: i64 = health.disconnect_reasons.iter().map(|(_, n)| n).sum();
    let per_hour = total as f64 * 3600.0 / window.num_seconds().max(1) as f64;
    json!({
        "window": window_text,
        "since": since,
        "total": total,
        "reasons": health.disconnect_reasons.iter()
            .map(|(reason, count)| json!({ "reason": reason, "count": count }))
            .collect::<Vec<_>>(),
        "sessions_in_window": health.seen_in_window,
        "rate_percent": percent(total, health.seen_in_window),
        "per_hour": (per_hour * 100.0).round() / 100.0,
    })
}

/// `part / whole` in percent with two decimals (0 when `whole` is 0).
fn percent(part: i64, whole: i64) -> f64 {
    if whole == 0 {
        return 0.0;
    }
    (part as f64 * 10_000.0 / whole as f64).round() / 100.0
}

#[derive(Debug, Deserialize)]
struct StatsQuery {
    /// RFC 3339 time or a duration back from now; default 24h.
    since: Option<String>,
}

async fn stats(
    State(store): State<Store>,
    ApiQuery(q): ApiQuery<StatsQuery>,
) -> Result<Response, ApiError> {
    let since = parse_since(q.since.as_deref().unwrap_or("24h"))
        .map_err(|m| ApiError(StatusCode::BAD_REQUEST, m))?;
    Ok(axum::Json(compute_stats(&store, since).await?).into_response())
}

#[derive(Debug, Deserialize)]
struct CostQuery {
    /// RFC 3339 time or a duration back from now; default 24h (hour) or 30d (day).
    since: Option<String>,
    bucket: Option<crate::cost::Bucket>,
}

/// `GET /api/cost`: estimated cost and tokens per hour or day, by client type and name.
async fn cost(
    State(store): State<Store>,
    ApiQuery(q): ApiQuery<CostQuery>,
) -> Result<Response, ApiError> {
    use crate::cost::{Bucket, CostError};
    let bucket = q.bucket.unwrap_or(Bucket::Hour);
    let default = match bucket {
        Bucket::Hour => "24h",
        Bucket::Day => "30days",
    };
    let since = parse_since(q.since.as_deref().unwrap_or(default))
        .map_err(|m| ApiError(StatusCode::BAD_REQUEST, m))?;
    match crate::cost::load(&store, since, bucket).await {
        Ok(cost) => Ok(axum::Json(cost).into_response()),
        Err(CostError::Database(e)) => Err(e.into()),
        Err(e @ CostError::TooLong { .. }) => Err(ApiError(StatusCode::BAD_REQUEST, e.to_string())),
    }
}

/// Statistics since `since` (also used by `steward stats`).
pub async fn compute_stats(
    store: &Store,
    since: DateTime<Utc>,
) -> Result<crate::stats::Stats, sqlx::Error> {
    crate::stats::load(store, since).await
}

/// `GET /api/events`: server-sent events `request` (a stored ledger row), `session` (a new
/// session id) and `board` (the project, task or document that changed), for live views.
async fn events(
    State(live): State<Live>,
) -> Sse<impl futures::Stream<Item = Result<Event, Infallible>>> {
    let requests = BroadcastStream::new(live.ledger.subscribe()).filter_map(|row| async move {
        let row = row.ok()?;
        Event::default()
            .event("request")
            .json_data(&*row)
            .ok()
            .map(Ok)
    });
    let sessions = BroadcastStream::new(live.sessions.subscribe()).filter_map(|id| async move {
        let id = id.ok()?;
        Event::default()
            .event("session")
            .json_data(json!({ "session_id": id }))
            .ok()
            .map(Ok)
    });
    let board = BroadcastStream::new(live.changes.subscribe()).filter_map(|change| async move {
        Event::default()
            .event("board")
            .json_data(board_event(&change.ok()?))
            .ok()
            .map(Ok)
    });
    let streams = futures::stream::select(futures::stream::select(requests, sessions), board);
    Sse::new(streams).keep_alive(KeepAlive::default())
}

/// A board change as the dashboard reads it.
fn board_event(change: &Change) -> serde_json::Value {
    let (task_id, document_id) = match *change {
        Change::Task { task_id, .. } => (Some(task_id), None),
        Change::Document { document_id, .. } => (None, Some(document_id)),
        Change::Project { .. } => (None, None),
    };
    json!({ "project_id": change.project_id(), "task_id": task_id, "document_id": document_id })
}

async fn pricing(State(store): State<Store>) -> Result<Response, ApiError> {
    Ok(axum::Json(
        json!({ "pricing": store.list_pricing().await?, "note": "list prices used for estimates" }),
    )
    .into_response())
}

/// `since` as an RFC 3339 time or a duration back from now.
pub fn parse_since(text: &str) -> Result<DateTime<Utc>, String> {
    parse_time("since", text)
}

/// The parameter `name` as an RFC 3339 time or a duration back from now; the error names it.
fn parse_time(name: &str, text: &str) -> Result<DateTime<Utc>, String> {
    if let Ok(at) = DateTime::parse_from_rfc3339(text) {
        return Ok(at.with_timezone(&Utc));
    }
    let back = humantime::parse_duration(text).map_err(|_| {
        format!("{name} {text:?} is neither an RFC 3339 time nor a duration like 15m or 24h")
    })?;
    chrono::Duration::from_std(back)
        .ok()
        .and_then(|back| Utc::now().checked_sub_signed(back))
        .ok_or_else(|| format!("{name} {text:?} reaches too far back; use a shorter duration"))
}
