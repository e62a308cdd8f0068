//! Limits on guessing: login and reset attempts per client address and per account.
//!
//! Account keys are the lowercased email whether or not the account exists, so the
//! limiter itself reveals nothing about existence.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use governor::clock::{Clock as _, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};

use crate::error::ApiError;

/// Keyed rate limits for authentication attempts.
#[derive(Debug, Clone)]
pub struct AttemptLimiter {
    per_address: Arc<DefaultKeyedRateLimiter<IpAddr>>,
    per_account: Arc<DefaultKeyedRateLimiter<String>>,
}

impl AttemptLimiter {
    /// Limits of `per_address` and `per_account` attempts per minute (bursts of that size).
    pub fn new(per_address: u32, per_account: u32) -> Self {
        let quota = |n: u32| Quota::per_minute(NonZeroU32::new(n.max(1)).expect("at least 1"));
        Self {
            per_address: Arc::new(DefaultKeyedRateLimiter::keyed(quota(per_address))),
            per_account: Arc::new(DefaultKeyedRateLimiter::keyed(quota(per_account))),
        }
    }

    /// Counts an attempt from `address`.
    pub fn check_address(&self, address: IpAddr) -> Result<(), ApiError> {
        self.per_address
            .check_key(&address)
            .map_err(|not_until| too_many(not_until.wait_time_from(DefaultClock::default().now())))
    }

    /// Counts an attempt on `account` (a lowercased email).
    pub fn check_account(&self, account: &str) -> Result<(), ApiError> {
        self.per_account
            .check_key(&account.to_owned())
            .map_err(|not_until| too_many(not_until.wait_time_from(DefaultClock::default().now())))
    }

    /// Forgets keys whose limits have fully recovered, so memory stays bounded.
    pub fn shrink(&self) {
        self.per_address.retain_recent();
        self.per_account.retain_recent();
        self.per_address.shrink_to_fit();
        self.per_account.shrink_to_fit();
    }
}

fn too_many(wait: Duration) -> ApiError {
    ApiError::TooManyRequests { retry_after_secs: wait.as_secs() + u64::from(wait.subsec_nanos() > 0) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_each_key_separately_and_says_when_to_retry() {
        let limiter = AttemptLimiter::new(2, 1);
        let a: IpAddr = "192.0.2.1".parse().expect("ip");
        let b: IpAddr = "192.0.2.2".parse().expect("ip");
        assert!(limiter.check_address(a).is_ok());
        assert!(limiter.check_address(a).is_ok());
        match limiter.check_address(a) {
            Err(ApiError::TooManyRequests { retry_after_secs }) => assert!((1..=60).contains(&retry_after_secs)),
            other => panic!("expected 429, got {other:?}"),
        }
        assert!(limiter.check_address(b).is_ok());
        assert!(limiter.check_account("x@example.org").is_ok());
        assert!(limiter.check_account("x@example.org").is_err());
        assert!(limiter.check_account("y@example.org").is_ok());
    }
}
