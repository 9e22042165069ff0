//! A second reference: a bare rmcp 3.11 server (session mode, `LocalSessionManager`, the default
//! `StreamableHttpServerConfig`, TCP_NODELAY) whose one tool returns a fixed text — the text of
//! Steward's own answer. Steward minus this is what Steward adds to the MCP protocol (database,
//! sessions, event store, ledger). In this process, on its own 2-thread runtime.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Context, Result, anyhow};
use axum::Router;
use axum::serve::ListenerExt;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, ServerCapabilities,
    ServerConfig,
};
use rmcp::service::RequestContext;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ErrorData, RoleServer, ServerHandler};
use tokio::sync::oneshot;

#[derive(Clone)]
struct Fixed {
    text: Arc<str>,
}

impl ServerHandler for Fixed {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
    }

    async fn call_tool(
        &self,
        _request: CallToolRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        Ok(CallToolResult::success(vec![ContentBlock::text(self.text.to_string())]).into())
    }
}

pub struct RmcpServer {
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl RmcpServer {
    /// Serves MCP at /mcp; every tool call answers `text`.
    pub fn start(text: String) -> Result<RmcpServer> {
        let (addr_tx, addr_rx) = std::sync::mpsc::channel::<Result<SocketAddr>>();
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let fixed = Fixed {
            text: Arc::from(text),
        };
        let thread = std::thread::Builder::new()
            .name("rmcp-server".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .thread_name("rmcp-worker")
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
                            eprintln!("rmcp server: cannot set TCP_NODELAY: {error}");
                        }
                    });
                    let svc: StreamableHttpService<Fixed, LocalSessionManager> =
                        StreamableHttpService::new(
                            move || Ok(fixed.clone()),
                            Arc::new(LocalSessionManager::default()),
                            StreamableHttpServerConfig::default(),
                        );
                    let app = Router::new().nest_service("/mcp", svc);
                    drop(addr_tx.send(addr.map_err(Into::into)));
                    // A client may hold a GET stream open for good (Steward's gateway listens on
                    // one per upstream session): after the stop, give open exchanges a second,
                    // then end the runtime, which closes every connection.
                    let stopping = Arc::new(tokio::sync::Notify::new());
                    let stopped = stopping.clone();
                    let serve = axum::serve(listener, app).with_graceful_shutdown(async move {
                        drop(stop_rx.await);
                        stopped.notify_one();
                    });
                    let served = tokio::select! {
                        served = std::future::IntoFuture::into_future(serve) => served,
                        () = async {
                            stopping.notified().await;
                            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                        } => Ok(()),
                    };
                    if let Err(error) = served {
                        eprintln!("rmcp server: {error}");
                    }
                });
            })
            .context("starting the rmcp server thread")?;
        let addr = addr_rx
            .recv()
            .map_err(|_| anyhow!("the rmcp server thread ended early"))??;
        Ok(RmcpServer {
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
            eprintln!("rmcp server thread panicked");
        }
    }
}

impl Drop for RmcpServer {
    fn drop(&mut self) {
        self.shutdown();
    }
}
