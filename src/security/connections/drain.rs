//! Graceful stop, counted per connection: on SIGTERM Steward stops accepting, and rmcp's
//! sessions and streams are closed only once no connection can still be answering, or be about
//! to start, a request that needs them. Closing them earlier cuts replies being written, or
//! makes a request read just after the stop meet closed sessions.
//!
//! Counting requests once the router sees them is not enough: a request whose head hyper has
//! not parsed yet (its bytes in the socket, its connection's task not yet run) is invisible,
//! so the count can read zero while a connection is about to serve one more request. So every
//! open connection counts, from its accept until it closes, except while it serves a `GET`:
//! a `GET /mcp` is a stream that only ends when the sessions close, and HTTP/1 serves nothing
//! else on that connection meanwhile. After the stop each connection is told to finish its
//! current request and close (hyper's graceful shutdown), so the count reaching zero means
//! every connection left is in a `GET`, and will close after it.

use std::sync::Arc;
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::Duration;

use axum::body::Body;
use axum::response::Response;
use http_body_util::BodyExt;
use tokio::sync::Notify;

/// Longest wait for connections to drain before sessions are closed anyway.
pub const MAX_DRAIN: Duration = Duration::from_secs(10);

/// Connections that may be serving, or about to serve, a request other than a `GET`.
#[derive(Default)]
pub struct Drain {
    /// Signed: a connection's `Busy` and its `GET`'s `Released` may drop in either order.
    busy: AtomicIsize,
    idle: Notify,
}

impl Drain {
    pub fn new() -> Arc<Self> {
        Arc::new(Drain::default())
    }

    pub fn busy(&self) -> usize {
        self.busy.load(Ordering::SeqCst).max(0) as usize
    }

    /// Waits until no connection is busy, or `limit` passes. Returns whether it drained.
    pub async fn drained(&self, limit: Duration) -> bool {
        let wait = async {
            loop {
                let idle = self.idle.notified();
                if self.busy() == 0 {
                    return;
                }
                idle.await;
            }
        };
        tokio::time::timeout(limit, wait).await.is_ok()
    }

    /// One more busy connection, until the returned guard drops.
    pub fn hold(self: &Arc<Self>) -> Busy {
        self.busy.fetch_add(1, Ordering::SeqCst);
        Busy(self.clone())
    }
}

/// A connection counted busy.
pub struct Busy(Arc<Drain>);

impl Busy {
    /// Not busy until the returned guard drops (for the length of a `GET`).
    pub fn release(&self) -> Released {
        self.0.done();
        Released(self.0.clone())
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.done();
    }
}

impl Drain {
    fn done(&self) {
        if self.busy.fetch_sub(1, Ordering::SeqCst) <= 1 {
            self.idle.notify_waiters();
        }
    }
}

/// A connection's `GET` in progress: the connection counts as busy again when it drops (its
/// response finished or abandoned), before hyper can read the connection's next request.
pub struct Released(Arc<Drain>);

impl Drop for Released {
    fn drop(&mut self) {
        self.0.busy.fetch_add(1, Ordering::SeqCst);
    }
}

/// `response`, holding `released` until its body is finished (or dropped): the guard rides in
/// the body's frame mapper, which lives exactly as long as the body.
pub fn hold_until_sent(response: Response, released: Released) -> Response {
    response.map(|body| {
        Body::new(body.map_frame(move |frame| {
            let _held = &released;
            frame
        }))
    })
}
