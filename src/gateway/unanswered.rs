//! A call to an upstream that is dropped before its answer came (Steward's timeout ran out, or
//! the client went away) must tell the upstream to stop: nothing else would tell it.

use std::future::Future;

/// Runs `cancel` (on the runtime, in the background) when dropped unless [`Unanswered::settled`]
/// was called first: the guard each transport holds around one request.
pub struct Unanswered<F, Fut>(Option<F>)
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = ()> + Send + 'static;

impl<F, Fut> Unanswered<F, Fut>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    pub fn new(cancel: F) -> Self {
        Unanswered(Some(cancel))
    }

    /// The upstream answered, the request failed before reaching it, or the client's own
    /// cancellation was passed on.
    pub fn settled(mut self) {
        self.0 = None;
    }
}

impl<F, Fut> Drop for Unanswered<F, Fut>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    fn drop(&mut self) {
        let Some(cancel) = self.0.take() else {
            return;
        };
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(cancel());
        }
    }
}
