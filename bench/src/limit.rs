//! The limit: a bare axum (hyper) server in this process, on its own 2-thread runtime, that reads
//! each request body and answers a pre-serialised SSE `tools/call` result (the bytes Steward sent
//! for the same call) with TCP_NODELAY. Nothing an MCP server can do is cheaper.

use std::net::SocketAddr;

use anyhow::{Context, Result, anyhow};
use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderValue, header};
use axum::response::IntoResponse;
use axum::routing::post;
use axum::serve::ListenerExt;
use tokio::sync::oneshot;

pub struct LimitServer {
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl LimitServer {
    /// Serves `body` (a complete SSE response body) for every POST to /mcp.
    pub fn start(body: Bytes) -> Result<LimitServer> {
        let (addr_tx, addr_rx) = std::sync::mpsc::channel::<Result<SocketAddr>>();
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("limit-server".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .thread_name("limit-worker")
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
                            eprintln!("limit server: cannot set TCP_NODELAY: {error}");
                        }
                    });
                    let app = Router::new().route(
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
                                        (
                                            header::CACHE_CONTROL,
                                            HeaderValue::from_static("no-cache"),
                                        ),
                                    ],
                                    body,
                                )
                                    .into_response()
                            }
                        }),
                    );
                    drop(addr_tx.send(addr.map_err(Into::into)));
                    let served = axum::serve(listener, app)
                        .with_graceful_shutdown(async move {
                            drop(stop_rx.await);
                        })
                        .await;
                    if let Err(error) = served {
                        eprintln!("limit server: {error}");
                    }
                });
            })
            .context("starting the limit server thread")?;
        let addr = addr_rx
            .recv()
            .map_err(|_| anyhow!("the limit server thread ended early"))??;
        Ok(LimitServer {
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
            eprintln!("limit server thread panicked");
        }
    }
}

impl Drop for LimitServer {
    fn drop(&mut self) {
        self.shutdown();
    }
}
