//! `governor`: the `governor` crate's keyed rate limiter (GCRA on a concurrent hash
//! map), checked on a key picked uniformly from 10 000, with the quota of the
//! memory backend's `verify_limited` keys (100 000 per second, burst 100 000). It is
//! the in-process reference for what a rate-limit check can cost.

use std::num::NonZeroU32;

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use super::SPREAD_KEYS;
use crate::driver::{BenchError, FastRng, Outcome, Workload};

/// A keyed limiter over 10 000 keys.
#[derive(Debug)]
pub struct GovernorCheck {
    limiter: DefaultKeyedRateLimiter<u32>,
}

impl GovernorCheck {
    /// The limiter, with the same rate and burst as `stores::limited_spec`.
    pub fn new() -> Self {
        const PER_SECOND: NonZeroU32 = match NonZeroU32::new(100_000) {
            Some(n) => n,
            None => unreachable!(),
        };
        GovernorCheck {
            limiter: RateLimiter::keyed(Quota::per_second(PER_SECOND).allow_burst(PER_SECOND)),
        }
    }
}

impl Default for GovernorCheck {
    fn default() -> Self {
        Self::new()
    }
}

impl Workload for GovernorCheck {
    type Task = FastRng;

    async fn prepare(&self, ops: &[u64]) -> Result<Vec<FastRng>, BenchError> {
        Ok((0..ops.len()).map(|i| FastRng::new(i as u64)).collect())
    }

    async fn op(&self, rng: &mut FastRng) -> Result<Outcome, BenchError> {
        let key = rng.below(SPREAD_KEYS) as u32;
        Ok(match self.limiter.check_key(&key) {
            Ok(_) => Outcome::Done,
            Err(_) => Outcome::Denied,
        })
    }
}
