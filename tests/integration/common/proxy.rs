//! A TCP forwarder in front of the test's PostgreSQL server that a test can cut: the database
//! becomes unreachable for Steward (connections refused, open ones dropped) while the test
//! still reads it directly, then reachable again on the same address.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

pub struct Proxy {
    addr: SocketAddr,
    target: SocketAddr,
    /// Cancelled to cut: stops accepting and drops every forwarded connection.
    up: Mutex<CancellationToken>,
    /// Forwarded connections still open (a cut waits for none).
    open: Arc<AtomicUsize>,
}

impl Proxy {
    /// Forwards a free local port to the host and port of `database_url`.
    pub async fn start(database_url: &str) -> anyhow::Result<Proxy> {
        let url = reqwest::Url::parse(database_url)?;
        let host = url.host_str().context("the database URL has no host")?;
        let target = tokio::net::lookup_host((host, url.port().unwrap_or(5432)))
            .await?
            .next()
            .context("the database host does not resolve")?;
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let proxy = Proxy {
            addr: listener.local_addr()?,
            target,
            up: Mutex::new(CancellationToken::new()),
            open: Arc::new(AtomicUsize::new(0)),
        };
        proxy.serve(listener);
        Ok(proxy)
    }

    /// `database_url` with the forwarder's address in place of the database's.
    pub fn url(&self, database_url: &str) -> anyhow::Result<String> {
        let mut url = reqwest::Url::parse(database_url)?;
        url.set_host(Some(&self.addr.ip().to_string()))?;
        url.set_port(Some(self.addr.port()))
            .map_err(|()| anyhow::anyhow!("cannot set the port of {database_url}"))?;
        Ok(url.to_string())
    }

    /// The database becomes unreachable: new connections are refused, open ones dropped.
    /// Returns once every forwarded connection is closed, so that nothing the server sends
    /// after the cut can still reach the database through a connection not yet dropped.
    pub async fn cut(&self) -> anyhow::Result<()> {
        self.up.lock().expect("lock").cancel();
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.open.load(Ordering::SeqCst) > 0 {
            anyhow::ensure!(
                Instant::now() < deadline,
                "{} forwarded connections still open 10 s after the cut",
                self.open.load(Ordering::SeqCst)
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        Ok(())
    }

    /// Reachable again, on the same address.
    pub async fn restore(&self) -> anyhow::Result<()> {
        let listener = TcpListener::bind(self.addr)
            .await
            .with_context(|| format!("rebinding the proxy on {}", self.addr))?;
        *self.up.lock().expect("lock") = CancellationToken::new();
        self.serve(listener);
        Ok(())
    }

    fn serve(&self, listener: TcpListener) {
        let (up, target) = (self.up.lock().expect("lock").clone(), self.target);
        let open = self.open.clone();
        tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    _ = up.cancelled() => return, // The listener closes: connections refused.
                    accepted = listener.accept() => accepted,
                };
                let Ok((client, _)) = accepted else { continue };
                let (guard, up) = (Open::new(&open), up.clone());
                tokio::spawn(async move {
                    let _guard = guard;
                    forward(client, target, up).await;
                });
            }
        });
    }
}

/// One forwarded connection counted as open from its accept until its sockets are dropped.
struct Open(Arc<AtomicUsize>);

impl Open {
    fn new(open: &Arc<AtomicUsize>) -> Open {
        open.fetch_add(1, Ordering::SeqCst);
        Open(open.clone())
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

async fn forward(mut client: TcpStream, target: SocketAddr, up: CancellationToken) {
    let Ok(mut server) = TcpStream::connect(target).await else {
        return;
    };
    tokio::select! {
        _ = up.cancelled() => {}
        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
    }
}
