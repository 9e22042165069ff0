//! The floor of a hop: a byte-forwarding HTTP proxy in this process, on its own 2-thread
//! runtime (as a proxy process of its own would have), in front of the `gateway` scenario's
//! upstream. It passes the request body and MCP's headers on through hyper's pooled client and
//! streams the upstream's answer back without reading it: no JSON, no sessions, no ledger.
//! What it adds to a call is what any hop adds on these cores (one more HTTP exchange, one
//! more process's scheduling); what Steward adds beyond it is Steward's own.

use anyhow::{Context, Result};
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Method, Request, Response, StatusCode, Uri};
use axum::response::IntoResponse;
use axum::routing::any;
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::in_process::{InProcess, Stopping};

/// Request headers passed on: the body's type, what the client accepts, MCP's session and
/// revision headers and a 2026-07-28 request's own.
const PASSED_ON: [&str; 7] = [
    "content-type",
    "accept",
    "mcp-session-id",
    "mcp-protocol-version",
    "mcp-method",
    "mcp-name",
    "last-event-id",
];
/// Response headers passed back (the body's type and the session a new one opened).
const PASSED_BACK: [&str; 3] = ["content-type", "cache-control", "mcp-session-id"];

#[derive(Clone)]
struct Upstream {
    client: Client<HttpConnector, Full<Bytes>>,
    uri: Uri,
}

/// Serves /mcp, forwarding every request to `upstream` (an `http://` URL).
pub fn start(upstream: &str) -> Result<InProcess> {
    let uri: Uri = upstream.parse().context("the proxy's upstream URL")?;
    InProcess::start("bare proxy", Stopping::Gracefully, move || {
        // Keep-alive connections to the upstream, without Nagle's delay (as Steward's reqwest
        // client has them).
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new()).build(connector);
        Router::new()
            .route("/mcp", any(forward))
            .with_state(Upstream { client, uri })
    })
}

/// One request, passed on; the answer streamed back as it arrives.
async fn forward(
    State(upstream): State<Upstream>,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> Response<Body> {
    let mut request = Request::builder().method(method).uri(upstream.uri);
    for name in PASSED_ON {
        for value in headers.get_all(name) {
            request = request.header(name, value);
        }
    }
    let request = match request.body(Full::new(body)) {
        Ok(request) => request,
        Err(error) => return bad_gateway(&error),
    };
    let answer = match upstream.client.request(request).await {
        Ok(answer) => answer,
        Err(error) => return bad_gateway(&error),
    };
    let (parts, body) = answer.into_parts();
    let mut response = Response::builder().status(parts.status);
    for name in PASSED_BACK {
        if let Some(value) = parts.headers.get(name) {
            response = response.header(name, value);
        }
    }
    response
        .body(Body::new(body))
        .unwrap_or_else(|error| bad_gateway(&error))
}

fn bad_gateway(error: &dyn std::fmt::Display) -> Response<Body> {
    (StatusCode::BAD_GATEWAY, format!("bare proxy: {error}")).into_response()
}
