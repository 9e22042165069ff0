//! Per-principal rate limiting: a token bucket per principal (`rate` tokens a second, at most
//! `burst` saved up). Small enough to write here rather than pull in a crate and its clock.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::sync::lock;

/// Buckets kept before full ones (idle principals) are dropped; a dropped bucket is full anyway.
const MAX_BUCKETS: usize = 10_000;

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

#[derive(Debug)]
pub struct RateLimiter {
    rate: f64,
    burst: f64,
    buckets: Mutex<HashMap<String, Bucket>>,
}

impl RateLimiter {
    /// `None` when `rate` is 0 (no limit).
    pub fn new(rate: u32, burst: u32) -> Option<Self> {
        (rate > 0).then(|| RateLimiter {
            rate: f64::from(rate),
            burst: f64::from(burst.max(1)),
            buckets: Mutex::new(HashMap::new()),
        })
    }

    /// Takes a token for `principal`; when none is left, how long until one is.
    pub fn check(&self, principal: &str) -> Result<(), Duration> {
        self.check_at(principal, Instant::now())
    }

    fn check_at(&self, principal: &str, now: Instant) -> Result<(), Duration> {
        let mut buckets = lock(&self.buckets);
        if buckets.len() >= MAX_BUCKETS && !buckets.contains_key(principal) {
            let (rate, burst) = (self.rate, self.burst);
            buckets.retain(|_, b| b.tokens + now.duration_since(b.at).as_secs_f64() * rate < burst);
        }
        // Looked up by the borrowed name first: a known principal allocates nothing.
        if !buckets.contains_key(principal) {
            let full = Bucket {
                tokens: self.burst,
                at: now,
            };
            buckets.insert(principal.to_string(), full);
        }
        let Some(bucket) = buckets.get_mut(principal) else {
            return Ok(());
        };
        let refill = now.saturating_duration_since(bucket.at).as_secs_f64() * self.rate;
        bucket.tokens = (bucket.tokens + refill).min(self.burst);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            return Ok(());
        }
        Err(Duration::from_secs_f64((1.0 - bucket.tokens) / self.rate))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_empties_and_refills() {
        let limiter = RateLimiter::new(10, 3).unwrap();
        let t0 = Instant::now();
        for _ in 0..3 {
            assert!(limiter.check_at("a", t0).is_ok());
        }
        let wait = limiter.check_at("a", t0).unwrap_err();
        assert!(
            wait <= Duration::from_millis(100) && wait > Duration::ZERO,
            "{wait:?}"
        );
        // Another principal has a bucket of its own.
        assert!(limiter.check_at("b", t0).is_ok());
        assert!(
            limiter
                .check_at("a", t0 + Duration::from_millis(100))
                .is_ok()
        );
        assert!(RateLimiter::new(0, 10).is_none());
    }
}
