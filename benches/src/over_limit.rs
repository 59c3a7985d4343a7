//! How many requests over its limit each implementation lets through under
//! concurrency: the correctness half of the comparison with the textbook patterns.
//!
//! Each round takes a fresh key that allows [`LIMIT`] requests, lines up [`TASKS`]
//! tasks on a barrier, and lets each send [`ATTEMPTS_PER_TASK`] requests back to back
//! (512 attempts for a limit of 100). An atomic implementation allows exactly 100;
//! the textbook Redis pattern allows more, because clients decide on a count that
//! others are about to raise. Not timed: these are counts.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use keylatch::{KeySpec, RateLimit, SharedKeyStore};

use crate::driver::BenchError;

/// Requests a fresh key allows.
pub const LIMIT: u64 = 100;
/// Tasks sending at once.
pub const TASKS: usize = 64;
/// Requests each task sends per round.
pub const ATTEMPTS_PER_TASK: u64 = 8;
/// Rounds per implementation, each on a fresh key.
pub const ROUNDS: usize = 5;

/// Something that allows a key a limited number of requests.
pub trait Limited: Send + Sync + 'static {
    /// The name in reports.
    fn name(&self) -> &str;

    /// A fresh key (plaintext) that allows `limit` requests.
    fn fresh(&self, limit: u64) -> impl Future<Output = Result<String, BenchError>> + Send;

    /// One request; true when it was allowed.
    fn attempt(&self, key: &str) -> impl Future<Output = Result<bool, BenchError>> + Send;
}

/// A keylatch store, limited by a rate limit whose burst is the limit and whose rate
/// is one per hour: within a round, exactly `limit` verifies may pass.
#[derive(Debug)]
pub struct StoreLimited {
    name: String,
    store: SharedKeyStore,
}

impl StoreLimited {
    /// `store`, reported as `name`.
    pub fn new(name: &str, store: SharedKeyStore) -> Self {
        StoreLimited {
            name: name.to_owned(),
            store,
        }
    }
}

impl Limited for StoreLimited {
    fn name(&self) -> &str {
        &self.name
    }

    async fn fresh(&self, limit: u64) -> Result<String, BenchError> {
        let burst = u32::try_from(limit)?;
        let spec = KeySpec::new("bench-over-limit").with_rate_limit(RateLimit::new(
            1,
            Duration::from_secs(3600),
            burst,
        ));
        Ok(self
            .store
            .issue(&spec)
            .await?
            .key
            .expose_secret()
            .to_owned())
    }

    async fn attempt(&self, key: &str) -> Result<bool, BenchError> {
        Ok(self.store.verify(key, 1).await?.is_allowed())
    }
}

/// The counts for one implementation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OverLimit {
    /// The implementation.
    pub backend: String,
    /// Requests each key allowed.
    pub limit: u64,
    /// Rounds run.
    pub rounds: usize,
    /// Requests sent, all rounds.
    pub attempts: u64,
    /// Requests allowed, all rounds.
    pub allowed: u64,
    /// Requests allowed beyond the limit, all rounds.
    pub over: u64,
    /// The most allowed beyond the limit in one round.
    pub worst_round: u64,
}

/// Runs [`ROUNDS`] rounds on `limited`.
pub async fn measure<L: Limited>(limited: Arc<L>) -> Result<OverLimit, BenchError> {
    measure_with(limited, ROUNDS, TASKS, ATTEMPTS_PER_TASK, LIMIT).await
}

/// Runs `rounds` rounds of `tasks` x `per_task` attempts on fresh keys that allow
/// `limit` each.
pub async fn measure_with<L: Limited>(
    limited: Arc<L>,
    rounds: usize,
    tasks: usize,
    per_task: u64,
    limit: u64,
) -> Result<OverLimit, BenchError> {
    let mut result = OverLimit {
        backend: limited.name().to_owned(),
        limit,
        rounds,
        attempts: 0,
        allowed: 0,
        over: 0,
        worst_round: 0,
    };
    for _ in 0..rounds {
        let key: Arc<str> = limited.fresh(limit).await?.into();
        let start = Arc::new(tokio::sync::Barrier::new(tasks));
        let handles: Vec<_> = (0..tasks)
            .map(|_| {
                let limited = Arc::clone(&limited);
                let key = Arc::clone(&key);
                let start = Arc::clone(&start);
                tokio::spawn(async move {
                    start.wait().await;
                    let mut allowed = 0u64;
                    for _ in 0..per_task {
                        if limited.attempt(&key).await? {
                            allowed += 1;
                        }
                    }
                    Ok::<_, BenchError>(allowed)
                })
            })
            .collect();
        let mut allowed = 0;
        for handle in handles {
            allowed += handle.await??;
        }
        let over = allowed.saturating_sub(limit);
        result.attempts += tasks as u64 * per_task;
        result.allowed += allowed;
        result.over += over;
        result.worst_round = result.worst_round.max(over);
    }
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};

    /// A limiter with the textbook race built in: read the count, yield (where a
    /// network round trip would be), then add one.
    struct Racy {
        count: AtomicU64,
        limit: AtomicU64,
    }

    impl Limited for Racy {
        fn name(&self) -> &str {
            "racy"
        }

        async fn fresh(&self, limit: u64) -> Result<String, BenchError> {
            self.count.store(0, Ordering::SeqCst);
            self.limit.store(limit, Ordering::SeqCst);
            Ok("key".to_owned())
        }

        async fn attempt(&self, _: &str) -> Result<bool, BenchError> {
            let seen = self.count.load(Ordering::SeqCst);
            tokio::task::yield_now().await;
            if seen >= self.limit.load(Ordering::SeqCst) {
                return Ok(false);
            }
            self.count.fetch_add(1, Ordering::SeqCst);
            Ok(true)
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_count_catches_a_racy_limiter() {
        let racy = Arc::new(Racy {
            count: AtomicU64::new(0),
            limit: AtomicU64::new(0),
        });
        let r = measure_with(racy, 3, 64, 8, 100).await.expect("runs");
        assert_eq!(r.attempts, 3 * 64 * 8);
        assert!(r.over > 0, "{r:?}");
        assert_eq!(r.allowed, 300 + r.over);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_atomic_store_lets_exactly_the_limit_through() {
        let store: SharedKeyStore = Arc::new(keylatch_memory::MemoryStore::new());
        let r = measure_with(Arc::new(StoreLimited::new("memory", store)), 2, 64, 8, 100)
            .await
            .expect("runs");
        assert_eq!((r.allowed, r.over, r.worst_round), (200, 0, 0));
    }
}
