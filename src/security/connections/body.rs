//! A request body that must keep arriving: a pause longer than the body-stall timeout ends it with
//! an error, so a stalled upload holds neither its buffer nor its connection. Handlers that
//! read bodies see the error as a failed read (and answer 4xx); the unread rest of the body
//! means hyper closes the connection after that answer.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};

use super::Timeout;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The error a stalled body ends with.
#[derive(Debug, thiserror::Error)]
#[error("the request body stopped arriving for {} s", .0.as_secs_f64())]
pub struct Stalled(Duration);

/// Whether `error` is (or wraps) a [`Stalled`] body.
pub fn stalled(error: &(dyn std::error::Error + 'static)) -> bool {
    std::iter::successors(Some(error), |e| e.source()).any(|e| e.is::<Stalled>())
}

/// `inner`, failing once no frame has arrived for `gap`.
pub struct StallTimeout<B> {
    inner: B,
    gap: Duration,
    /// Created at the first wait, then reset at each one.
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
    /// Whether `sleep` is counting the current wait.
    armed: bool,
}

impl<B> StallTimeout<B> {
    pub fn new(inner: B, gap: Duration) -> Self {
        StallTimeout {
            inner,
            gap,
            sleep: None,
            armed: false,
        }
    }

    /// The current wait's deadline, started if it was not.
    fn wait(&mut self) -> Pin<&mut tokio::time::Sleep> {
        let deadline = tokio::time::Instant::now() + self.gap;
        let armed = std::mem::replace(&mut self.armed, true);
        let sleep = self
            .sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        if !armed {
            sleep.as_mut().reset(deadline);
        }
        sleep.as_mut()
    }
}

impl<B> Body for StallTimeout<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            this.armed = false;
            return Poll::Ready(frame.map(|frame| frame.map_err(Into::into)));
        }
        if this.wait().poll(cx).is_pending() {
            return Poll::Pending;
        }
        this.armed = false;
        Timeout::Body.count();
        Poll::Ready(Some(Err(Box::new(Stalled(this.gap)))))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
