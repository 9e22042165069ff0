//! hyper's `header_read_timeout` also runs while a keep-alive connection waits for its next
//! request, so on its own it would close idle connections as soon as half-sent heads. Its
//! timer is pluggable: [`HeadTimer`] gives the first request of a connection the header
//! deadline, and a later wait the idle deadline until its first byte arrives, then the header
//! deadline from that byte. [`Counted`] tells it when bytes arrive.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::Timeout;

/// What one connection has done so far, shared by its IO and its timer.
#[derive(Debug, Default)]
pub struct Activity {
    /// Bytes read from the client.
    bytes_read: AtomicU64,
    /// Request heads hyper has waited for (the first is the connection's first request).
    head_waits: AtomicU64,
}

impl Activity {
    fn bytes_read(&self) -> u64 {
        self.bytes_read.load(Ordering::Relaxed)
    }
}

/// A socket that counts the bytes read from it.
pub struct Counted<T> {
    inner: T,
    activity: Arc<Activity>,
}

impl<T> Counted<T> {
    pub fn new(inner: T, activity: Arc<Activity>) -> Self {
        Counted { inner, activity }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Counted<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = polled {
            let read = (buf.filled().len() - before) as u64;
            this.activity.bytes_read.fetch_add(read, Ordering::Relaxed);
        }
        polled
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Counted<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// hyper's timer for one connection. hyper uses it only for the header-read timeout.
#[derive(Clone)]
pub struct HeadTimer {
    activity: Arc<Activity>,
    idle: Duration,
}

impl HeadTimer {
    pub fn new(activity: Arc<Activity>, idle: Duration) -> Self {
        HeadTimer { activity, idle }
    }
}

impl hyper::rt::Timer for HeadTimer {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn hyper::rt::Sleep>> {
        self.sleep_until(Instant::now() + duration)
    }

    /// `deadline` is now + the header-read timeout: hyper is starting to wait for a head.
    fn sleep_until(&self, deadline: Instant) -> Pin<Box<dyn hyper::rt::Sleep>> {
        let now = Instant::now();
        let header = deadline.saturating_duration_since(now);
        let first = self.activity.head_waits.fetch_add(1, Ordering::Relaxed) == 0;
        let (deadline, idle_from) = if first {
            (deadline, None)
        } else {
            (now + self.idle, Some(self.activity.bytes_read()))
        };
        Box::pin(HeadWait {
            activity: self.activity.clone(),
            header,
            idle_from,
            sleep: Box::pin(tokio::time::sleep_until(deadline.into())),
        })
    }
}

/// One wait for a request head. hyper polls it each time the head is still incomplete, so
/// it sees the first byte of a request soon after it arrives.
struct HeadWait {
    activity: Arc<Activity>,
    header: Duration,
    /// While waiting on an idle connection: the bytes read when the wait began.
    idle_from: Option<u64>,
    sleep: Pin<Box<tokio::time::Sleep>>,
}

impl Future for HeadWait {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if let Some(bytes) = self.idle_from
            && self.activity.bytes_read() != bytes
        {
            // The next request has begun: its head gets the header deadline from now.
            self.idle_from = None;
            let deadline = tokio::time::Instant::now() + self.header;
            self.sleep.as_mut().reset(deadline);
        }
        if self.sleep.as_mut().poll(cx).is_pending() {
            return Poll::Pending;
        }
        match self.idle_from {
            Some(_) => Timeout::Idle.count(),
            None => Timeout::Header.count(),
        }
        Poll::Ready(())
    }
}

impl hyper::rt::Sleep for HeadWait {}
