//! Recording what happened: every call with its invoke and return instants.
//!
//! Instants are offsets from the start of a round on the local monotonic clock. The
//! checks only ever compare the return of one call with the invoke of another
//! ("started after it returned"), which needs no agreement between the local clock
//! and the store's.

use std::future::Future;
use std::time::{Duration, Instant};

/// One call: when it was invoked, when it returned, and what it returned.
#[derive(Debug, Clone)]
pub struct Call<T> {
    /// Offset of the invocation from the start of the round.
    pub invoke: Duration,
    /// Offset of the return from the start of the round.
    pub ret: Duration,
    /// What the call returned.
    pub output: T,
}

impl<T> Call<T> {
    /// How long the call took.
    pub fn latency(&self) -> Duration {
        self.ret.saturating_sub(self.invoke)
    }
}

/// The start of a round; every [`Call`] is timed against it.
#[derive(Debug, Clone, Copy)]
pub struct Epoch(Instant);

impl Epoch {
    /// An epoch starting now.
    pub fn now() -> Self {
        Epoch(Instant::now())
    }

    /// The offset of the present from the epoch.
    pub fn elapsed(&self) -> Duration {
        self.0.elapsed()
    }

    /// The local instant at an offset from the epoch.
    pub fn instant_at(&self, offset: Duration) -> Instant {
        self.0 + offset
    }

    /// Runs `fut`, recording its invoke and return offsets.
    pub async fn record<T>(&self, fut: impl Future<Output = T>) -> Call<T> {
        let invoke = self.elapsed();
        let output = fut.await;
        let ret = self.elapsed();
        Call {
            invoke,
            ret,
            output,
        }
    }
}

/// The `q`-quantile (0..=1) of `samples` in whole microseconds; 0 when empty.
pub fn percentile_us(samples: &mut [Duration], q: f64) -> u64 {
    if samples.is_empty() {
        return 0;
    }
    samples.sort_unstable();
    let rank = ((samples.len() - 1) as f64 * q).round() as usize;
    samples[rank.min(samples.len() - 1)].as_micros() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles() {
        let mut v: Vec<Duration> = (1..=100).map(Duration::from_micros).collect();
        v.reverse();
        assert_eq!(percentile_us(&mut v, 0.5), 51);
        assert_eq!(percentile_us(&mut v, 0.99), 99);
        assert_eq!(percentile_us(&mut [], 0.5), 0);
    }
}
