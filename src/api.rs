//! The JSON API under `/api/`: sessions and the request ledger, read from the same database the
//! server writes. (The analytics endpoints and the dashboard build on these.)

use std::convert::Infallible;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chrono::{DateTime, Utc};
use futures::StreamExt;
use serde::Deserialize;
use serde_json::json;
use tokio_stream::wrappers::BroadcastStream;

use crate::ledger::Ledger;
use crate::sessions::Sessions;
use crate::store::Store;
use crate::store::requests::RequestFilter;
use crate::store::sessions::SessionFilter;

const MAX_PER_PAGE: u32 = 1000;

/// Most rows one statistics request reads; beyond this the answer says `truncated`.
const MAX_STAT_ROWS: i64 = 200_000;

/// Live feeds for `/api/events`.
#[derive(Clone)]
pub struct Live {
    pub ledger: Ledger,
    pub sessions: Arc<Sessions>,
}

pub fn router(store: Store, live: Live) -> Router {
    let events = Router::new()
        .route("/api/events", get(events))
        .with_state(live);
    Router::new()
        .route("/api/sessions", get(list_sessions))
        .route("/api/sessions/{id}", get(show_session))
        .route("/api/requests", get(list_requests))
        .route("/api/stats", get(stats))
        .route("/api/pricing", get(pricing))
        .with_state(store)
        .merge(events)
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
    Query(q): Query<SessionQuery>,
) -> Result<Response, ApiError> {
    let (limit, offset, page, per_page) = limit_offset(q.page, q.per_page)?;
    let filter = SessionFilter {
        status: q.status,
        client_type: q.client_type,
        kind: q.kind,
    };
    let (sessions, total) = store.list_sessions(&filter, limit, offset).await?;
    Ok(axum::Json(
        json!({ "sessions": sessions, "total": total, "page": page, "per_page": per_page }),
    )
    .into_response())
}

async fn show_session(
    State(store): State<Store>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let session = store
        .get_session(&id)
        .await?
        .ok_or_else(|| ApiError(StatusCode::NOT_FOUND, format!("no session has id {id}")))?;
    let filter = RequestFilter {
        session_id: Some(id),
        ..RequestFilter::default()
    };
    let (requests, total) = store.list_requests(&filter, 200, 0).await?;
    Ok(
        axum::Json(json!({ "session": session, "requests": requests, "request_count": total }))
            .into_response(),
    )
}

#[derive(Debug, Deserialize)]
struct RequestQuery {
    session_id: Option<String>,
    tool: Option<String>,
    method: Option<String>,
    status: Option<String>,
    /// RFC 3339 time or a duration back from now (`15m`, `24h`).
    since: Option<String>,
    /// Text to find in the method, tool, error message or session id.
    q: Option<String>,
    page: Option<u32>,
    per_page: Option<u32>,
}

async fn list_requests(
    State(store): State<Store>,
    Query(q): Query<RequestQuery>,
) -> Result<Response, ApiError> {
    let (limit, offset, page, per_page) = limit_offset(q.page, q.per_page)?;
    let since = q
        .since
        .as_deref()
        .map(parse_since)
        .transpose()
        .map_err(|message| ApiError(StatusCode::BAD_REQUEST, message))?;
    let filter = RequestFilter {
        session_id: q.session_id,
        tool_name: q.tool,
        method: q.method,
        status: q.status,
        since,
        text: q.q.filter(|t| !t.trim().is_empty()),
    };
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

#[derive(Debug, Deserialize)]
struct StatsQuery {
    /// RFC 3339 time or a duration back from now; default 24h.
    since: Option<String>,
}

async fn stats(
    State(store): State<Store>,
    Query(q): Query<StatsQuery>,
) -> Result<Response, ApiError> {
    let since = parse_since(q.since.as_deref().unwrap_or("24h"))
        .map_err(|m| ApiError(StatusCode::BAD_REQUEST, m))?;
    Ok(axum::Json(compute_stats(&store, since).await?).into_response())
}

/// Statistics since `since` (also used by `steward stats`).
pub async fn compute_stats(
    store: &Store,
    since: DateTime<Utc>,
) -> Result<crate::stats::Stats, sqlx::Error> {
    let rows = store.stat_rows(since, MAX_STAT_ROWS + 1).await?;
    let truncated = rows.len() as i64 > MAX_STAT_ROWS;
    let rows = &rows[..rows.len().min(MAX_STAT_ROWS as usize)];
    let previous = store
        .count_requests_between(since - (Utc::now() - since), since)
        .await?;
    Ok(crate::stats::compute(rows, since, previous, truncated))
}

/// `GET /api/events`: server-sent events `request` (a stored ledger row) and `session` (a new
/// session id), for live views.
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
    Sse::new(futures::stream::select(requests, sessions)).keep_alive(KeepAlive::default())
}

async fn pricing(State(store): State<Store>) -> Result<Response, ApiError> {
    Ok(axum::Json(
        json!({ "pricing": store.list_pricing().await?, "note": "list prices used for estimates" }),
    )
    .into_response())
}

/// `since` as an RFC 3339 time or a duration back from now.
pub fn parse_since(text: &str) -> Result<DateTime<Utc>, String> {
    if let Ok(at) = DateTime::parse_from_rfc3339(text) {
        return Ok(at.with_timezone(&Utc));
    }
    let back = humantime::parse_duration(text).map_err(|_| {
        format!("since {text:?} is neither an RFC 3339 time nor a duration like 15m or 24h")
    })?;
    Ok(Utc::now() - chrono::Duration::from_std(back).unwrap_or(chrono::Duration::MAX))
}
