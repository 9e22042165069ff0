//! The JSON API under `/api/`: sessions and the request ledger, read from the same database the
//! server writes. (The analytics endpoints and the dashboard build on these.)

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::json;

use crate::store::Store;
use crate::store::requests::RequestFilter;
use crate::store::sessions::SessionFilter;

const MAX_PER_PAGE: u32 = 1000;

pub fn router(store: Store) -> Router {
    Router::new()
        .route("/api/sessions", get(list_sessions))
        .route("/api/sessions/{id}", get(show_session))
        .route("/api/requests", get(list_requests))
        .route("/api/pricing", get(pricing))
        .with_state(store)
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

#[derive(Debug, Deserialize)]
struct Paging {
    page: Option<u32>,
    per_page: Option<u32>,
}

impl Paging {
    fn limit_offset(&self) -> Result<(i64, i64, u32, u32), ApiError> {
        let page = self.page.unwrap_or(1);
        let per_page = self.per_page.unwrap_or(50);
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
}

#[derive(Debug, Deserialize)]
struct SessionQuery {
    status: Option<String>,
    client_type: Option<String>,
    kind: Option<String>,
    #[serde(flatten)]
    paging: Paging,
}

async fn list_sessions(
    State(store): State<Store>,
    Query(q): Query<SessionQuery>,
) -> Result<Response, ApiError> {
    let (limit, offset, page, per_page) = q.paging.limit_offset()?;
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
    #[serde(flatten)]
    paging: Paging,
}

async fn list_requests(
    State(store): State<Store>,
    Query(q): Query<RequestQuery>,
) -> Result<Response, ApiError> {
    let (limit, offset, page, per_page) = q.paging.limit_offset()?;
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
