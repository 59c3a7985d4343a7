//! The six workloads, written once against `&dyn AtomicKeyStore` and run on every
//! backend: `verify_spread`, `verify_hot`, `verify_limited`, `lease`, `revoke`,
//! `rotate`.
//!
//! The keys a workload uses are issued before any clock runs ([`Fixture::prepare`]);
//! `revoke` needs a fresh key per operation and issues them in its untimed
//! [`Workload::prepare`](crate::driver::Workload::prepare).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use keylatch::{KeyId, KeySpec, RateLimit, SharedKeyStore, Verdict};

use crate::driver::{BenchError, FastRng, Outcome, Workload};

/// Keys in the spread and limited key sets.
pub const SPREAD_KEYS: usize = 10_000;
/// Keys the rotate workload cycles through: at least 16 per task at 64 in flight, so
/// that no two tasks ever rotate the same key (which would be a conflict, not a
/// rotation).
pub const ROTATE_KEYS: usize = 1024;
/// How many issues run at once while preparing keys.
const ISSUE_CONCURRENCY: usize = 64;
/// The lifetime of the leases the `lease` workload takes (released at once anyway).
const LEASE_TTL: Duration = Duration::from_secs(60);

/// The workloads every store runs, in report order.
pub const WORKLOADS: [&str; 6] = [
    "verify_spread",
    "verify_hot",
    "verify_limited",
    "lease",
    "revoke",
    "rotate",
];

/// The spec of the `verify_limited` keys: both a rate limit and a quota, sized so
/// that the timed loop measures allowed verifies. 100 000 per second with an equal
/// burst is far above what a single key of 10 000 sees (a few hundred per second at
/// millions per second overall), and 10^12 credits never run out.
pub fn limited_spec() -> KeySpec {
    KeySpec::new("bench-limited")
        .with_rate_limit(RateLimit::new(100_000, Duration::from_secs(1), 100_000))
        .with_quota(1_000_000_000_000)
}

/// One store and the keys issued on it for the workloads.
#[derive(Debug, Clone)]
pub struct Fixture {
    /// The store.
    pub store: SharedKeyStore,
    /// 10 000 keys without limits (`verify_spread`, `verify_hot` uses the first,
    /// `lease`).
    pub spread: Arc<Vec<String>>,
    /// 10 000 keys with a rate limit and a quota (`verify_limited`).
    pub limited: Arc<Vec<String>>,
    /// The keys `rotate` cycles through, with their current versions.
    pub rotating: Arc<Vec<(KeyId, AtomicU64)>>,
}

/// Issues `n` keys from `spec` on `store`, [`ISSUE_CONCURRENCY`] at a time.
pub async fn issue_many(
    store: &SharedKeyStore,
    spec: &KeySpec,
    n: usize,
) -> Result<Vec<keylatch::IssuedKey>, BenchError> {
    let shares = crate::driver::split(n as u64, ISSUE_CONCURRENCY);
    let handles: Vec<_> = shares
        .into_iter()
        .map(|share| {
            let store = Arc::clone(store);
            let spec = spec.clone();
            tokio::spawn(async move {
                let mut out = Vec::with_capacity(share as usize);
                for _ in 0..share {
                    out.push(store.issue(&spec).await?);
                }
                Ok::<_, keylatch::Error>(out)
            })
        })
        .collect();
    let mut issued = Vec::with_capacity(n);
    for handle in handles {
        issued.extend(handle.await??);
    }
    Ok(issued)
}

impl Fixture {
    /// Issues the key sets on `store`.
    pub async fn prepare(store: SharedKeyStore) -> Result<Fixture, BenchError> {
        let plain = KeySpec::new("bench-spread");
        let spread = issue_many(&store, &plain, SPREAD_KEYS).await?;
        let limited = issue_many(&store, &limited_spec(), SPREAD_KEYS).await?;
        let rotating = issue_many(&store, &KeySpec::new("bench-rotate"), ROTATE_KEYS).await?;
        let text = |keys: Vec<keylatch::IssuedKey>| {
            Arc::new(
                keys.iter()
                    .map(|k| k.key.expose_secret().to_owned())
                    .collect::<Vec<_>>(),
            )
        };
        Ok(Fixture {
            store,
            spread: text(spread),
            limited: text(limited),
            rotating: Arc::new(
                rotating
                    .into_iter()
                    .map(|k| (k.id, AtomicU64::new(k.version)))
                    .collect(),
            ),
        })
    }
}

fn outcome<T>(verdict: Verdict<T>) -> Outcome {
    if verdict.is_allowed() {
        Outcome::Done
    } else {
        Outcome::Denied
    }
}

fn rngs(ops: &[u64]) -> Vec<FastRng> {
    (0..ops.len()).map(|i| FastRng::new(i as u64)).collect()
}

/// `verify` of cost 1 on a key picked uniformly from a set (`verify_spread`,
/// `verify_limited`), or always the same key (`verify_hot`, a set of one).
#[derive(Debug)]
pub struct Verify {
    store: SharedKeyStore,
    keys: Arc<Vec<String>>,
}

impl Verify {
    /// `verify_spread`: the 10 000 keys without limits.
    pub fn spread(f: &Fixture) -> Self {
        Verify {
            store: Arc::clone(&f.store),
            keys: Arc::clone(&f.spread),
        }
    }

    /// `verify_hot`: one key, every operation.
    pub fn hot(f: &Fixture) -> Self {
        Verify {
            store: Arc::clone(&f.store),
            keys: Arc::new(f.spread[..1].to_vec()),
        }
    }

    /// `verify_limited`: the 10 000 keys with a rate limit and a quota.
    pub fn limited(f: &Fixture) -> Self {
        Verify {
            store: Arc::clone(&f.store),
            keys: Arc::clone(&f.limited),
        }
    }
}

impl Workload for Verify {
    type Task = FastRng;

    async fn prepare(&self, ops: &[u64]) -> Result<Vec<FastRng>, BenchError> {
        Ok(rngs(ops))
    }

    async fn op(&self, rng: &mut FastRng) -> Result<Outcome, BenchError> {
        let key = &self.keys[rng.below(self.keys.len())];
        Ok(outcome(self.store.verify(key, 1).await?))
    }
}

/// `lease`: acquire a lease on a key picked uniformly from the spread set, then
/// release it. One operation is the pair.
#[derive(Debug)]
pub struct LeaseCycle {
    store: SharedKeyStore,
    keys: Arc<Vec<String>>,
}

impl LeaseCycle {
    /// On the spread keys of `f`.
    pub fn new(f: &Fixture) -> Self {
        LeaseCycle {
            store: Arc::clone(&f.store),
            keys: Arc::clone(&f.spread),
        }
    }
}

impl Workload for LeaseCycle {
    type Task = FastRng;

    async fn prepare(&self, ops: &[u64]) -> Result<Vec<FastRng>, BenchError> {
        Ok(rngs(ops))
    }

    async fn op(&self, rng: &mut FastRng) -> Result<Outcome, BenchError> {
        let key = &self.keys[rng.below(self.keys.len())];
        match self.store.acquire(key, 1, LEASE_TTL).await? {
            Verdict::Allowed(grant) => {
                self.store.release(&grant.lease).await?;
                Ok(Outcome::Done)
            }
            Verdict::Denied(_) => Ok(Outcome::Denied),
        }
    }
}

/// `revoke`: revoke a key issued for the purpose, with no leases and a zero drain
/// timeout. The keys are issued in the untimed prepare step, one per operation.
#[derive(Debug)]
pub struct Revoke {
    store: SharedKeyStore,
}

impl Revoke {
    /// On the store of `f`.
    pub fn new(f: &Fixture) -> Self {
        Revoke {
            store: Arc::clone(&f.store),
        }
    }
}

impl Workload for Revoke {
    type Task = Vec<KeyId>;

    async fn prepare(&self, ops: &[u64]) -> Result<Vec<Vec<KeyId>>, BenchError> {
        let total: u64 = ops.iter().sum();
        let spec = KeySpec::new("bench-revoke");
        let mut ids = issue_many(&self.store, &spec, total as usize)
            .await?
            .into_iter()
            .map(|k| k.id);
        Ok(ops
            .iter()
            .map(|&n| ids.by_ref().take(n as usize).collect())
            .collect())
    }

    async fn op(&self, ids: &mut Vec<KeyId>) -> Result<Outcome, BenchError> {
        let id = ids.pop().ok_or("revoke ran out of prepared keys")?;
        let revocation = self.store.revoke(&id, Duration::ZERO).await?;
        Ok(if revocation.newly_revoked {
            Outcome::Done
        } else {
            Outcome::Denied
        })
    }
}

/// `rotate`: compare-and-set rotation (zero grace) of keys each task owns alone, so
/// every call is at the current version and succeeds.
#[derive(Debug)]
pub struct Rotate {
    store: SharedKeyStore,
    keys: Arc<Vec<(KeyId, AtomicU64)>>,
}

impl Rotate {
    /// On the rotating keys of `f`.
    pub fn new(f: &Fixture) -> Self {
        Rotate {
            store: Arc::clone(&f.store),
            keys: Arc::clone(&f.rotating),
        }
    }
}

/// The keys one rotate task owns, and which it rotates next.
#[derive(Debug)]
pub struct RotateTask {
    own: Vec<usize>,
    next: usize,
}

impl Workload for Rotate {
    type Task = RotateTask;

    async fn prepare(&self, ops: &[u64]) -> Result<Vec<RotateTask>, BenchError> {
        let tasks = ops.len();
        if tasks > self.keys.len() {
            return Err(format!("rotate needs a key per task; {tasks} tasks").into());
        }
        Ok((0..tasks)
            .map(|t| RotateTask {
                own: (t..self.keys.len()).step_by(tasks).collect(),
                next: 0,
            })
            .collect())
    }

    async fn op(&self, task: &mut RotateTask) -> Result<Outcome, BenchError> {
        let (id, version) = &self.keys[task.own[task.next % task.own.len()]];
        task.next += 1;
        // Each key has one owner at a time and runs are sequential, so the version
        // read here is the key's current one.
        let expected = version.load(Ordering::Relaxed);
        let rotated = self.store.rotate(id, expected, Duration::ZERO).await?;
        version.store(rotated.version, Ordering::Relaxed);
        Ok(Outcome::Done)
    }
}
