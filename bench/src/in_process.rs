//! A reference server in this process, on a runtime of its own with 2 worker threads (as a
//! server process of its own would have), listening on 127.0.0.1 with TCP_NODELAY: the limit,
//! the bare rmcp server and the bare proxy that the scenarios measure Steward against.

use std::net::SocketAddr;
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use axum::Router;
use axum::serve::ListenerExt;
use tokio::sync::oneshot;

/// How a stop ends the server.
pub enum Stopping {
    /// Open exchanges finish first.
    Gracefully,
    /// Open exchanges get this long, then the runtime ends, closing every connection (a client
    /// may hold a GET stream open for good).
    Within(Duration),
}

pub struct InProcess {
    pub addr: SocketAddr,
    name: &'static str,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl InProcess {
    /// Serves the router `app` builds (inside the server's runtime) until stopped; `name`
    /// names its threads and its messages.
    pub fn start(
        name: &'static str,
        stopping: Stopping,
        app: impl FnOnce() -> Router + Send + 'static,
    ) -> Result<InProcess> {
        let (addr_tx, addr_rx) = std::sync::mpsc::channel::<Result<SocketAddr>>();
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let thread_name = name.replace(' ', "-");
        let thread = std::thread::Builder::new()
            .name(thread_name.clone())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .thread_name(format!("{thread_name}-worker"))
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
                    let listener = listener.tap_io(move |tcp| {
                        if let Err(error) = tcp.set_nodelay(true) {
                            eprintln!("{name}: cannot set TCP_NODELAY: {error}");
                        }
                    });
                    let app = app();
                    drop(addr_tx.send(addr.map_err(Into::into)));
                    let stopped = std::sync::Arc::new(tokio::sync::Notify::new());
                    let notify = stopped.clone();
                    let serve = axum::serve(listener, app).with_graceful_shutdown(async move {
                        drop(stop_rx.await);
                        notify.notify_one();
                    });
                    let served = match stopping {
                        Stopping::Gracefully => serve.await,
                        Stopping::Within(grace) => tokio::select! {
                            served = std::future::IntoFuture::into_future(serve) => served,
                            () = async {
                                stopped.notified().await;
                                tokio::time::sleep(grace).await;
                            } => Ok(()),
                        },
                    };
                    if let Err(error) = served {
                        eprintln!("{name}: {error}");
                    }
                });
            })
            .with_context(|| format!("starting the {name}'s thread"))?;
        let addr = addr_rx
            .recv()
            .map_err(|_| anyhow!("the {name}'s thread ended early"))??;
        Ok(InProcess {
            addr,
            name,
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
            eprintln!("{} thread panicked", self.name);
        }
    }
}

impl Drop for InProcess {
    fn drop(&mut self) {
        self.shutdown();
    }
}
