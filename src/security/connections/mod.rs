//! The accept loop, with the limits a hostile client meets before any request exists: a cap on
//! open connections, a deadline for a request's headers, an idle deadline for a keep-alive
//! connection waiting for its next request, and a stall deadline for a request body that stops
//! arriving. `axum::serve` offers none of them,
//! so connections are served with hyper's HTTP/1 builder directly.
//!
//! - [`timer`]: hyper's header-read timer, told apart from a keep-alive wait, so a client
//!   between two requests gets the idle timeout and a half-sent request head the header one.
//! - [`body`]: a request body that stops arriving for the body-stall timeout ends in an error.
//! - [`drain`]: the graceful stop, counted per connection.

mod body;
mod drain;
mod timer;

pub use body::{Stalled, stalled};
pub use drain::MAX_DRAIN;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::Method;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use crate::sync::Repolled;

/// Default time a client has to send a request's headers.
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Default time a keep-alive connection may wait for its next request. Longer than the idle
/// timeouts of common client pools (reqwest's and Go's keep idle connections 90 s) and load
/// balancers (AWS ALB: 60 s), so that the client side closes an idle connection first: a
/// client that reuses a connection at the instant the server closes it gets an error (HTTP/1.1's
/// keep-alive race), which only the side closing first can avoid.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(120);
/// Default time a request body may pause before it is refused and its connection closed. Not
/// tied to the keep-alive wait: a stalled upload holds its buffer, an idle connection nothing.
pub const DEFAULT_BODY_STALL_TIMEOUT: Duration = Duration::from_secs(60);
/// Default cap on open connections.
pub const DEFAULT_MAX_CONNECTIONS: u32 = 1024;
/// The largest cap accepted (beyond it the process runs out of file descriptors first).
pub const MAX_MAX_CONNECTIONS: u32 = 1_000_000;

/// Connection-level limits (`--header-read-timeout`, `--connection-idle-timeout`,
/// `--body-stall-timeout`, `--max-connections`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// From a connection's start, or from the first byte of a later request, until that
    /// request's headers are complete.
    pub header_read_timeout: Duration,
    /// How long a keep-alive connection may wait for its next request before it is closed.
    pub idle_timeout: Duration,
    /// How long a request body may pause before it is refused and its connection closed.
    pub body_stall_timeout: Duration,
    /// Connections open at once; a connection beyond it is answered 503 and closed.
    pub max_connections: u32,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            header_read_timeout: DEFAULT_HEADER_READ_TIMEOUT,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            body_stall_timeout: DEFAULT_BODY_STALL_TIMEOUT,
            max_connections: DEFAULT_MAX_CONNECTIONS,
        }
    }
}

impl ConnectionLimits {
    /// Why these limits cannot work, if they cannot.
    pub fn check(&self) -> Result<(), String> {
        if self.header_read_timeout.is_zero()
            || self.idle_timeout.is_zero()
            || self.body_stall_timeout.is_zero()
        {
            return Err("the header-read, connection idle and body-stall timeouts must be longer than zero (e.g. 10s, 120s and 60s)".into());
        }
        if !(1..=MAX_MAX_CONNECTIONS).contains(&self.max_connections) {
            return Err(format!(
                "the connection cap {} is out of range; use 1 to {MAX_MAX_CONNECTIONS} (default {DEFAULT_MAX_CONNECTIONS})",
                self.max_connections
            ));
        }
        Ok(())
    }
}

/// What a client over the connection cap reads before the connection closes.
const OVER_CAPACITY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nconnection: close\r\nretry-after: 1\r\ncontent-type: application/json\r\ncontent-length: 67\r\n\r\n{\"error\":{\"message\":\"too many open connections; retry in a second\"}}";

/// Serves `app` on `listener` until `shutdown`, then stops accepting and lets every connection
/// finish its current request (idle ones close at once). Once no connection can still be
/// serving anything but a `GET` stream (or after [`MAX_DRAIN`]) it cancels `drained`, which
/// must end those streams; returns when every connection is closed, closing those still open
/// [`MAX_CLOSE`] later.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ConnectionLimits,
    shutdown: CancellationToken,
    drained: CancellationToken,
) {
    describe_metrics();
    let slots = Arc::new(Semaphore::new(limits.max_connections as usize));
    let drain = drain::Drain::new();
    let cut = CancellationToken::new();
    loop {
        let (stream, peer) = tokio::select! {
            biased;
            () = shutdown.cancelled() => break,
            accepted = accept(&listener) => accepted,
        };
        metrics::counter!("steward_http_connections_total").increment(1);
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            refuse(&stream);
            continue;
        };
        // Counted before its task runs: the drain must not miss a connection not yet polled.
        let open = OpenConnection::new(slot, drain.hold());
        // Repolled: hyper wakes the connection's task from inside its own poll (see
        // `Repolled`), which would otherwise wake another worker on every request.
        tokio::spawn(Repolled::new(serve_connection(
            stream,
            peer,
            app.clone(),
            limits,
            open,
            shutdown.clone(),
            cut.clone(),
        )));
    }
    drop(listener);
    if !drain.drained(MAX_DRAIN).await {
        tracing::warn!(
            connections = drain.busy(),
            "in-flight requests did not finish in time; closing anyway"
        );
    }
    drained.cancel();
    // Every connection holds a slot until it closes: all slots free means all closed.
    let all = limits.max_connections;
    let closed = match tokio::time::timeout(MAX_CLOSE, slots.acquire_many(all)).await {
        Ok(closed) => closed,
        Err(_) => {
            // A request still unanswered this long after the drain (a handler waiting on
            // something that never comes) must not keep the process from stopping. (The
            // timed-out wait gave back the slots it had gathered, so this count is true.)
            let open = all as usize - slots.available_permits();
            metrics::counter!(CUT).increment(open as u64);
            tracing::error!(
                connections = open,
                "connections still open {}s after the drain: closing them; their requests get no answer",
                MAX_CLOSE.as_secs()
            );
            cut.cancel();
            slots.acquire_many(all).await
        }
    };
    if closed.is_err() {
        tracing::warn!("the connection slots were closed before every connection ended");
    }
}

/// How long connections may stay open once the drain has ended (GET streams closing, requests
/// still being answered) before they are closed regardless.
const MAX_CLOSE: Duration = Duration::from_secs(5);

/// Connections closed at a stop with a request still unanswered (see [`MAX_CLOSE`]).
const CUT: &str = "steward_http_connections_cut_total";

/// The next connection; errors that concern one connection are skipped, others (out of file
/// descriptors) are logged and retried after a pause, as `axum::serve` does.
async fn accept(listener: &TcpListener) -> (TcpStream, SocketAddr) {
    loop {
        match listener.accept().await {
            Ok(accepted) => return accepted,
            Err(error)
                if matches!(
                    error.kind(),
                    std::io::ErrorKind::ConnectionRefused
                        | std::io::ErrorKind::ConnectionAborted
                        | std::io::ErrorKind::ConnectionReset
                ) => {}
            Err(error) => {
                tracing::error!(%error, "cannot accept a connection; retrying in a second");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

/// Over the cap: a 503 if the socket takes it at once (never waiting on this client), then
/// the connection closes.
fn refuse(stream: &TcpStream) {
    metrics::counter!("steward_http_connections_refused_total").increment(1);
    if let Err(error) = stream.try_write(OVER_CAPACITY) {
        tracing::debug!(%error, "could not tell a refused connection why");
    }
}

async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    app: Router,
    limits: ConnectionLimits,
    open: OpenConnection,
    shutdown: CancellationToken,
    cut: CancellationToken,
) {
    // Without TCP_NODELAY every small SSE write waits for Nagle's algorithm and the peer's
    // delayed ACK (tens of milliseconds); BENCHMARKS.md has the measured difference.
    if let Err(error) = stream.set_nodelay(true) {
        tracing::warn!(%error, "could not set TCP_NODELAY");
    }
    let activity = Arc::new(timer::Activity::default());
    let io = TokioIo::new(timer::Counted::new(stream, activity.clone()));
    let idle = limits.idle_timeout;
    let stall = limits.body_stall_timeout;
    let busy = open.busy.clone();
    let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
        let mut request =
            request.map(|incoming| Body::new(body::StallTimeout::new(incoming, stall)));
        // The peer address rides in each request, for per-address throttles.
        request.extensions_mut().insert(ConnectInfo(peer));
        let released = (request.method() == Method::GET).then(|| busy.release());
        let response = app.clone().oneshot(request);
        async move {
            let response = response.await?;
            Ok::<_, Infallible>(match released {
                Some(released) => drain::hold_until_sent(response, released),
                None => response,
            })
        }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(timer::HeadTimer::new(activity, idle))
        .header_read_timeout(limits.header_read_timeout);
    let connection = builder.serve_connection(io, service);
    tokio::pin!(connection);
    // Biased: once the stop is signalled, the connection is told before it can read another
    // request, so a request it starts after the drain began is one it had begun to read.
    let ended = tokio::select! {
        biased;
        () = shutdown.cancelled() => {
            connection.as_mut().graceful_shutdown();
            tokio::select! {
                ended = connection.as_mut() => ended,
                // Dropping the connection closes its socket and drops the request's handler.
                () = cut.cancelled() => Ok(()),
            }
        }
        ended = connection.as_mut() => ended,
    };
    if let Err(error) = ended {
        tracing::debug!(%error, %peer, "connection ended with an error");
    }
}

/// An open connection: counted in `steward_http_connections_open` and in the drain, and
/// holding its slot, until dropped.
struct OpenConnection {
    busy: Arc<drain::Busy>,
    _slot: OwnedSemaphorePermit,
}

impl OpenConnection {
    fn new(slot: OwnedSemaphorePermit, busy: drain::Busy) -> Self {
        metrics::gauge!("steward_http_connections_open").increment(1.0);
        OpenConnection {
            busy: Arc::new(busy),
            _slot: slot,
        }
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        metrics::gauge!("steward_http_connections_open").decrement(1.0);
    }
}

/// The connection series exist (at 0) from the start, so a dashboard can graph them before
/// anything happens.
fn describe_metrics() {
    metrics::gauge!("steward_http_connections_open").increment(0.0);
    metrics::counter!("steward_http_connections_total").increment(0);
    metrics::counter!("steward_http_connections_refused_total").increment(0);
    metrics::counter!(CUT).increment(0);
    for timeout in [Timeout::Header, Timeout::Idle, Timeout::Body] {
        metrics::counter!(TIMEOUTS, "timeout" => timeout.label()).increment(0);
    }
}

const TIMEOUTS: &str = "steward_http_connection_timeouts_total";

/// Which deadline closed a connection.
#[derive(Debug, Clone, Copy)]
enum Timeout {
    /// A request's headers did not arrive in time.
    Header,
    /// Nothing arrived between two requests.
    Idle,
    /// A request body stopped arriving.
    Body,
}

impl Timeout {
    fn label(self) -> &'static str {
        match self {
            Timeout::Header => "header",
            Timeout::Idle => "idle",
            Timeout::Body => "body",
        }
    }

    /// Counts one connection closed by this deadline.
    fn count(self) {
        metrics::counter!(TIMEOUTS, "timeout" => self.label()).increment(1);
    }
}
