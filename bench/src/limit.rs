//! The limit: a bare axum (hyper) server in this process, on its own 2-thread runtime, that reads
//! each request body and answers a pre-serialised SSE `tools/call` result (the bytes Steward sent
//! for the same call) with TCP_NODELAY. Nothing an MCP server can do is cheaper.

use anyhow::Result;
use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderValue, header};
use axum::response::IntoResponse;
use axum::routing::post;

use crate::in_process::{InProcess, Stopping};

/// Serves `body` (a complete SSE response body) for every POST to /mcp.
pub fn start(body: Bytes) -> Result<InProcess> {
    InProcess::start("limit server", Stopping::Gracefully, move || {
        Router::new().route(
            "/mcp",
            post(move |_req_body: Bytes| {
                let body = body.clone();
                async move {
                    (
                        [
                            (
                                header::CONTENT_TYPE,
                                HeaderValue::from_static("text/event-stream"),
                            ),
                            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
                        ],
                        body,
                    )
                        .into_response()
                }
            }),
        )
    })
}
