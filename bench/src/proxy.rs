//! The floor of a hop: a byte-forwarding HTTP proxy in this process, on its own 2-thread
//! runtime (as a proxy process of its own would have), in front of the `gateway` scenario's
//! upstream. It passes the request body and MCP's headers on through hyper's pooled client and
//! streams the upstream's answer back without reading it: no JSON, no sessions, no ledger.
//! What it adds to a call is what any hop adds on these cores (one more HTTP exchange, one
//! more process's scheduling); what Steward adds beyond it is Steward's own.

use std::net::SocketAddr;

use anyhow::{Context, Result, anyhow};
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Method, Request, Response, StatusCode, Uri};
use axum::response::IntoResponse;
use axum::routing::any;
use axum::serve::ListenerExt;
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokio::sync::oneshot;

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

pub struct BareProxy {
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl BareProxy {
    /// Serves /mcp, forwarding every request to `upstream` (an `http://` URL).
    pub fn start(upstream: &str) -> Result<BareProxy> {
        let uri: Uri = upstream.parse().context("the proxy's upstream URL")?;
        let (addr_tx, addr_rx) = std::sync::mpsc::channel::<Result<SocketAddr>>();
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("bare-proxy".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .thread_name("proxy-worker")
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        drop(addr_tx.send(Err(e.into())));
                        return;
                    }
                };
                rt.block_on(async move {
                    let listener = match tokio::net::TcpListener::bind("127.0.0.1:0").await {
                        Ok(l) => l,
                        Err(e) => {
                            drop(addr_tx.send(Err(e.into())));
                            return;
                        }
                    };
                    let addr = listener.local_addr();
                    let listener = listener.tap_io(|tcp| {
                        if let Err(error) = tcp.set_nodelay(true) {
                            eprintln!("bare proxy: cannot set TCP_NODELAY: {error}");
                        }
                    });
                    // Keep-alive connections to the upstream, without Nagle's delay (as
                    // Steward's reqwest client has them).
                    let mut connector = HttpConnector::new();
                    connector.set_nodelay(true);
                    let client = Client::builder(TokioExecutor::new()).build(connector);
                    let app = Router::new()
                        .route("/mcp", any(forward))
                        .with_state(Upstream { client, uri });
                    drop(addr_tx.send(addr.map_err(Into::into)));
                    let served = axum::serve(listener, app)
                        .with_graceful_shutdown(async move {
                            drop(stop_rx.await);
                        })
                        .await;
                    if let Err(error) = served {
                        eprintln!("bare proxy: {error}");
                    }
                });
            })
            .context("starting the bare proxy's thread")?;
        let addr = addr_rx
            .recv()
            .map_err(|_| anyhow!("the bare proxy's thread ended early"))??;
        Ok(BareProxy {
            addr,
            stop: Some(stop_tx),
            thread: Some(thread),
        })
    }

    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        if let Some(tx) = self.stop.take()
            && tx.send(()).is_err()
        {
            // the server task has already ended
        }
        if let Some(t) = self.thread.take()
            && t.join().is_err()
        {
            eprintln!("bare proxy thread panicked");
        }
    }
}

impl Drop for BareProxy {
    fn drop(&mut self) {
        self.shutdown();
    }
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
