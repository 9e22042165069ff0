//! How long a reply waits for its call's answer so that headers, priming event and answer go
//! out in one write (see `fast::Direct::respond`), without a timer that wakes the runtime.
//!
//! tokio wakes the thread parked on its time driver whenever a timer is set to end before the
//! time that thread will wake at anyway. A window of its own per call, 10 ms from its start, is
//! always such a timer (nothing else in the wheel ends that soon), so every call that waited
//! woke a parked worker or wrote to the driver's eventfd. Here windows end on a grid of
//! [`ONE_WRITE`] steps, so every call that starts within one step has the same end, and one
//! timer of the server's, the anchor, is kept set to the latest end a call asked for: the driver
//! is then always due to wake by that end already, and a call's own timer at it wakes nobody.
//! The anchor wakes the driver at most once a step while calls wait, and not at all when none
//! has waited for a step.

use std::pin::Pin;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::{Instant, Sleep};

/// The shortest a window lasts: longer than a quick call's answer, short enough that a slow
/// call's client sees no difference. A window ends one to two of these after its call starts.
pub(super) const ONE_WRITE: Duration = Duration::from_millis(10);

const STEP_NANOS: u64 = ONE_WRITE.as_nanos() as u64;
const STEPS_A_SECOND: u64 = 1_000_000_000 / STEP_NANOS;

/// The windows of one server's calls.
pub(super) struct Windows {
    /// Where the grid's steps are counted from.
    origin: Instant,
    /// The server's timer, set to the latest window's end; made by the first call that waits
    /// (a timer belongs to the runtime it is made in).
    anchor: Mutex<Option<Anchor>>,
}

struct Anchor {
    /// The step whose end it is set to.
    step: u64,
    /// Never polled, so its firing wakes no task: it is only there to keep the driver due.
    timer: Pin<Box<Sleep>>,
}

impl Windows {
    pub(super) fn new() -> Self {
        Windows {
            origin: Instant::now(),
            anchor: Mutex::new(None),
        }
    }

    /// The end of the window of a call that starts at `now` and has not been answered at once:
    /// the end of the step after `now`'s, so more than [`ONE_WRITE`] and at most twice that
    /// away. The anchor is set to it when it is later than the anchor's.
    pub(super) fn close(&self, now: Instant) -> Instant {
        let step = self.step_of(now).saturating_add(2);
        let end = self.end_of(step);
        self.hold(step, end);
        end
    }

    /// The step `now` is in. In whole seconds and nanoseconds: a division of `Duration`s
    /// divides 128-bit integers.
    fn step_of(&self, now: Instant) -> u64 {
        let elapsed = now.saturating_duration_since(self.origin);
        let whole = elapsed.as_secs().saturating_mul(STEPS_A_SECOND);
        whole.saturating_add(u64::from(elapsed.subsec_nanos()) / STEP_NANOS)
    }

    /// The instant step `step` starts at (and the one before it ends at).
    fn end_of(&self, step: u64) -> Instant {
        step.checked_mul(STEP_NANOS)
            .map(Duration::from_nanos)
            .and_then(|offset| self.origin.checked_add(offset))
            .unwrap_or_else(|| Instant::now() + ONE_WRITE * 2)
    }

    fn hold(&self, step: u64, end: Instant) {
        let mut anchor = crate::sync::lock(&self.anchor);
        match anchor.as_mut() {
            Some(anchor) if anchor.step >= step => {}
            // Later than it was: a timer still in the wheel only has its end moved (no
            // wake-up); one that has fired is set again.
            Some(anchor) => {
                anchor.step = step;
                anchor.timer.as_mut().reset(end);
            }
            None => {
                let mut timer = Box::pin(tokio::time::sleep_until(end));
                // Set without a poll: a new `Sleep` enters the wheel at its first poll or reset.
                timer.as_mut().reset(end);
                *anchor = Some(Anchor { step, timer });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_window_ends_one_to_two_steps_after_its_call_starts_on_the_shared_grid() {
        let windows = Windows::new();
        let start = windows.origin;
        for offset_us in [0, 1, 3_000, 9_999, 10_000, 10_001, 123_456] {
            let now = start + Duration::from_micros(offset_us);
            let end = windows.close(now);
            let wait = end - now;
            assert!(
                wait > ONE_WRITE && wait <= ONE_WRITE * 2,
                "a call at +{offset_us} µs waits {wait:?}"
            );
            // Every call of the same step ends with it.
            let step_start = start + ONE_WRITE * (offset_us / 10_000) as u32;
            assert_eq!(windows.close(step_start), end, "at +{offset_us} µs");
        }
    }

    #[tokio::test]
    async fn the_anchor_follows_the_latest_window_and_not_an_earlier_one() {
        let windows = Windows::new();
        let start = windows.origin;
        let later = windows.close(start + ONE_WRITE * 3);
        let earlier = windows.close(start + ONE_WRITE);
        assert!(earlier < later);
        let anchor = crate::sync::lock(&windows.anchor);
        let anchor = anchor.as_ref().expect("set by the first call");
        assert_eq!(anchor.timer.deadline(), later);
        assert_eq!(anchor.step, 5);
    }

    #[tokio::test]
    async fn an_anchor_that_has_fired_is_set_again() {
        let windows = Windows::new();
        let first = windows.close(Instant::now());
        tokio::time::sleep_until(first + ONE_WRITE).await;
        {
            let anchor = crate::sync::lock(&windows.anchor);
            let anchor = anchor.as_ref().expect("set by the first call");
            assert!(anchor.timer.is_elapsed(), "its end has passed");
        }
        let next = windows.close(Instant::now());
        assert!(next > first);
        let anchor = crate::sync::lock(&windows.anchor);
        let anchor = anchor.as_ref().expect("kept");
        assert!(!anchor.timer.is_elapsed(), "set again for the new window");
        assert_eq!(anchor.timer.deadline(), next);
    }
}
