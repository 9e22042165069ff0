//! Each upstream's circuit breaker: after `failures` consecutive outages (unreachable, not
//! MCP, process down, or no answer within the timeout) Steward stops calling the upstream for
//! `cool_down` and answers at once with an error that says so; then one request goes through
//! as a probe (half-open): its success closes the breaker, its failure opens it again. A
//! JSON-RPC error from the upstream is an answer, so it counts as a success.
//!
//! Written here rather than taken from a crate: its state (open since, until, last cause,
//! times opened) is what `/health`, `/metrics` and the error message show, and the crates
//! (failsafe) keep theirs private.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::sync::lock;

/// The default policy: five outages in a row open the breaker for 30 seconds.
pub const DEFAULT_FAILURES: u32 = 5;
pub const DEFAULT_COOL_DOWN: Duration = Duration::from_secs(30);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BreakerPolicy {
    /// Consecutive outages that open the breaker; 0 never opens it.
    pub failures: u32,
    pub cool_down: Duration,
}

impl Default for BreakerPolicy {
    fn default() -> Self {
        BreakerPolicy {
            failures: DEFAULT_FAILURES,
            cool_down: DEFAULT_COOL_DOWN,
        }
    }
}

/// What `/health` shows.
#[derive(Clone, Copy, Debug, Default, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum BreakerState {
    #[default]
    Closed,
    Open,
    HalfOpen,
}

#[derive(Debug, Default)]
struct Inner {
    consecutive: u32,
    /// Set while open: calls fail fast until then.
    open_until: Option<Instant>,
    /// Set while a half-open probe is out (when it started).
    probe: Option<Instant>,
    opened: u64,
    short_circuited: u64,
}

/// Why a request was not sent: the breaker is open for this much longer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused {
    pub failures: u32,
    pub retry_in: Duration,
}

#[derive(Debug, Default)]
pub struct Breaker {
    policy: BreakerPolicy,
    inner: Mutex<Inner>,
}

impl Breaker {
    pub fn new(policy: BreakerPolicy) -> Self {
        Breaker {
            policy,
            inner: Mutex::default(),
        }
    }

    /// Whether a request may go to the upstream now. Past the cool-down, one request (the
    /// probe) is let through; a probe that never reports back (its caller went away) is
    /// replaced after another cool-down.
    pub fn admit(&self) -> Result<(), Refused> {
        let now = Instant::now();
        let mut inner = lock(&self.inner);
        let Some(until) = inner.open_until else {
            return Ok(());
        };
        let probe_free = inner
            .probe
            .is_none_or(|started| now >= started + self.policy.cool_down);
        if now >= until && probe_free {
            inner.probe = Some(now);
            return Ok(());
        }
        inner.short_circuited += 1;
        Err(Refused {
            failures: inner.consecutive,
            retry_in: until.saturating_duration_since(now),
        })
    }

    /// The upstream answered: the breaker closes.
    pub fn succeeded(&self) {
        let mut inner = lock(&self.inner);
        inner.consecutive = 0;
        inner.open_until = None;
        inner.probe = None;
    }

    /// An outage: counts towards opening, or (a failed probe) opens the breaker again.
    /// Returns whether it opened now.
    pub fn failed(&self) -> bool {
        if self.policy.failures == 0 {
            return false;
        }
        let mut inner = lock(&self.inner);
        inner.consecutive = inner.consecutive.saturating_add(1);
        let probing = inner.probe.take().is_some();
        if probing || inner.consecutive == self.policy.failures {
            inner.open_until = Some(Instant::now() + self.policy.cool_down);
            inner.opened += 1;
            return true;
        }
        false
    }

    /// The state, times opened, requests refused while open.
    pub fn report(&self) -> (BreakerState, u64, u64) {
        let inner = lock(&self.inner);
        let state = match (inner.open_until, inner.probe) {
            (None, _) => BreakerState::Closed,
            (Some(_), Some(_)) => BreakerState::HalfOpen,
            (Some(until), None) if Instant::now() >= until => BreakerState::HalfOpen,
            (Some(_), None) => BreakerState::Open,
        };
        (state, inner.opened, inner.short_circuited)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breaker(cool_down: Duration) -> Breaker {
        Breaker::new(BreakerPolicy {
            failures: 3,
            cool_down,
        })
    }

    #[test]
    fn opens_after_consecutive_outages_only() {
        let b = breaker(Duration::from_secs(60));
        b.failed();
        b.failed();
        b.succeeded();
        b.failed();
        b.failed();
        assert_eq!(b.admit(), Ok(()));
        b.failed();
        let refused = b.admit().unwrap_err();
        assert_eq!(refused.failures, 3);
        assert!(refused.retry_in > Duration::from_secs(50));
        assert_eq!(b.report(), (BreakerState::Open, 1, 1));
    }

    #[test]
    fn one_probe_after_the_cool_down_closes_or_reopens_it() {
        let b = breaker(Duration::ZERO);
        for _ in 0..3 {
            b.failed();
        }
        assert_eq!(b.report().0, BreakerState::HalfOpen);
        assert_eq!(b.admit(), Ok(()), "the probe");
        b.failed();
        assert_eq!(b.report().1, 2, "a failed probe opens it again");
        assert_eq!(b.admit(), Ok(()), "the next probe");
        b.succeeded();
        assert_eq!(b.report(), (BreakerState::Closed, 2, 0));
    }

    #[test]
    fn a_probe_in_flight_holds_the_others_back() {
        let b = Breaker::new(BreakerPolicy {
            failures: 1,
            cool_down: Duration::from_secs(60),
        });
        b.failed();
        // The cool-down is over, the stale-probe rule (another cool-down) is not.
        lock(&b.inner).open_until = Some(Instant::now());
        assert_eq!(b.admit(), Ok(()), "the probe");
        assert!(
            b.admit().is_err(),
            "a second request while the probe is out"
        );
        assert_eq!(b.report().0, BreakerState::HalfOpen);
    }

    #[test]
    fn zero_failures_never_opens() {
        let b = Breaker::new(BreakerPolicy {
            failures: 0,
            cool_down: Duration::from_secs(60),
        });
        for _ in 0..100 {
            b.failed();
        }
        assert_eq!(b.admit(), Ok(()));
    }
}
