//! Small synchronisation helpers shared by the layers.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use futures::task::AtomicWaker;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Locks a mutex that guards plain data (maps, counters, a state value). A panic while it was
/// held cannot leave such data half-updated in a way that matters, so a poisoned lock is
/// still used rather than turning one panic into many.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Runs `job` every `period`, the first time at once, until `shutdown`. A run is never cut
/// short by the shutdown (a job that must not hold a stop selects on it itself), a stop never
/// starts another (a run that overran has its next tick ready at once: the stop goes first), and
/// a run that overruns delays the next instead of bunching them.
pub(crate) fn every<F, Fut>(
    period: Duration,
    shutdown: CancellationToken,
    mut job: F,
) -> JoinHandle<()>
where
    F: FnMut() -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(period);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => break,
                _ = ticker.tick() => job().await,
            }
        }
    })
}

/// How many times in a row [`Repolled`] polls a future that woke itself again before it hands
/// the wake to the runtime after all (so a future that keeps waking itself still lets the
/// worker's other tasks run, as it would without the wrapper).
const SELF_WAKES: usize = 8;

/// A future whose own wakes, made while it is being polled, are answered by polling it again
/// at once, instead of by the runtime. Only wakes from outside its poll (a socket's readiness,
/// another task, a timer) reach the runtime.
///
/// Why: hyper wakes a connection's task from inside its own poll several times a request (its
/// body channels' "want" signals, its client's response channel). For each poll that does,
/// tokio's multi-thread scheduler puts the task at the back of the worker's queue and wakes a
/// parked worker to steal it: at one call in flight, a cross-thread wake-up (and two context
/// switches of a thread that then finds nothing, or takes the task to a cold core) per call
/// (BENCHMARKS.md, branch `hop11`). Polled again here, the task stays on its worker.
pub(crate) struct Repolled {
    future: Pin<Box<dyn Future<Output = ()> + Send>>,
    /// What `future` is polled with: [`SelfWakes`] as a waker.
    waker: Waker,
    wakes: Arc<SelfWakes>,
}

/// [`Repolled`]'s waker: notes a wake made during the poll, passes any other to the task.
#[derive(Default)]
struct SelfWakes {
    state: AtomicU8,
    task: AtomicWaker,
}

/// [`SelfWakes::state`]: not being polled; being polled; being polled and woken meanwhile.
const IDLE: u8 = 0;
const POLLING: u8 = 1;
const WOKEN: u8 = 2;

impl Wake for SelfWakes {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        let during_poll = self
            .state
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |state| {
                (state != IDLE).then_some(WOKEN)
            });
        if during_poll.is_err() {
            self.task.wake();
        }
    }
}

impl Repolled {
    pub(crate) fn new(future: impl Future<Output = ()> + Send + 'static) -> Self {
        let wakes = Arc::new(SelfWakes::default());
        Repolled {
            future: Box::pin(future),
            waker: Waker::from(wakes.clone()),
            wakes,
        }
    }
}

impl Future for Repolled {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = &mut *self;
        this.wakes.task.register(cx.waker());
        let mut own = Context::from_waker(&this.waker);
        for _ in 0..SELF_WAKES {
            this.wakes.state.store(POLLING, Ordering::Release);
            let polled = this.future.as_mut().poll(&mut own);
            // A wake that came before this swap is seen here; one after it goes to the task.
            let woken = this.wakes.state.swap(IDLE, Ordering::AcqRel) == WOKEN;
            if polled.is_ready() || !woken {
                return polled;
            }
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use super::*;

    /// A task's waker that counts how often the runtime would have been asked to poll it.
    #[derive(Default)]
    struct Task(AtomicUsize);

    impl Wake for Task {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// `repolled` polled once as a task with waker `task`.
    fn poll_once(repolled: &mut Repolled, task: &Arc<Task>) -> Poll<()> {
        let waker = Waker::from(task.clone());
        Pin::new(repolled).poll(&mut Context::from_waker(&waker))
    }

    /// A future that wakes itself on each of its first `wakes` polls (as hyper's connection
    /// does when its body asks for more), then is ready; and how often it was polled.
    fn waking_itself(wakes: usize) -> (impl Future<Output = ()> + Send, Arc<AtomicUsize>) {
        let polls = Arc::new(AtomicUsize::new(0));
        let counted = polls.clone();
        let future = std::future::poll_fn(move |cx| {
            if counted.fetch_add(1, Ordering::SeqCst) < wakes {
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            Poll::Ready(())
        });
        (future, polls)
    }

    #[test]
    fn a_future_that_wakes_itself_is_polled_again_without_the_runtime() {
        let (future, polls) = waking_itself(3);
        let task = Arc::new(Task::default());
        let mut repolled = Repolled::new(future);
        assert!(poll_once(&mut repolled, &task).is_ready());
        assert_eq!(polls.load(Ordering::SeqCst), 4);
        assert_eq!(task.0.load(Ordering::SeqCst), 0, "the task was not woken");
    }

    #[test]
    fn a_future_that_keeps_waking_itself_goes_back_to_the_runtime() {
        let (future, polls) = waking_itself(usize::MAX);
        let task = Arc::new(Task::default());
        let mut repolled = Repolled::new(future);
        assert!(poll_once(&mut repolled, &task).is_pending());
        assert_eq!(polls.load(Ordering::SeqCst), SELF_WAKES);
        assert_eq!(task.0.load(Ordering::SeqCst), 1, "woken to be polled later");
    }

    #[test]
    fn a_wake_from_outside_the_poll_reaches_the_task() {
        let (sender, receiver) = tokio::sync::oneshot::channel::<()>();
        let task = Arc::new(Task::default());
        let mut repolled = Repolled::new(async {
            assert!(receiver.await.is_ok(), "sent");
        });
        assert!(poll_once(&mut repolled, &task).is_pending());
        assert_eq!(task.0.load(Ordering::SeqCst), 0);
        assert!(sender.send(()).is_ok(), "the future still waits");
        assert_eq!(task.0.load(Ordering::SeqCst), 1, "the send woke the task");
        // Polled by a task whose waker changed (a runtime may give another).
        let other = Arc::new(Task::default());
        assert!(poll_once(&mut repolled, &other).is_ready());
    }

    /// A run that overruns its period has its next tick ready when it ends; a stop that came
    /// during the run must win over that tick (with an even pick, 16 stops in a row would all
    /// win once in 65,536 tries).
    #[tokio::test]
    async fn a_stop_during_a_run_starts_no_other() {
        for _ in 0..16 {
            let (runs, shutdown) = (Arc::new(AtomicUsize::new(0)), CancellationToken::new());
            let job = every(Duration::from_millis(1), shutdown.clone(), {
                let (runs, shutdown) = (runs.clone(), shutdown.clone());
                move || {
                    let (runs, shutdown) = (runs.clone(), shutdown.clone());
                    async move {
                        runs.fetch_add(1, Ordering::SeqCst);
                        shutdown.cancel();
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                }
            });
            job.await.expect("the job's task");
            assert_eq!(
                runs.load(Ordering::SeqCst),
                1,
                "a run started after the stop"
            );
        }
    }
}
