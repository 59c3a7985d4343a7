//! The in-memory keylatch backend: the embedded default.
//!
//! [`MemoryStore`] keeps every key in the process, as a [`keylatch::model::KeyRecord`]
//! behind its own mutex. Each operation takes that one lock, reads the clock, applies
//! the reference model and lets go, so every operation on a key is atomic and its
//! effects are ordered exactly as the locks were taken: the implementation *is* the
//! reference model, run under per-key locking. Operations on different keys never
//! wait for each other, except on the key table's lock: read briefly by every
//! operation, written briefly by `issue` when it adds a key.
//!
//! A revoke that has to wait for leases uses the Tokio timer, so it needs a runtime
//! with time enabled (`#[tokio::main]` and `#[tokio::test]` have it; a hand-built
//! runtime needs `enable_time()` or `enable_all()`).
//!
//! Clones of a `MemoryStore` share the same keys: they are the "handles" of this
//! backend. Nothing survives the process; use `keylatch-postgres` or `keylatch-redis`
//! to share keys between processes.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> keylatch::Result<()> {
//! use keylatch::{AtomicKeyStore, KeySpec, Verdict};
//! use keylatch_memory::MemoryStore;
//!
//! let store = MemoryStore::new();
//! let issued = store.issue(&KeySpec::new("tenant-42").with_quota(2)).await?;
//! let key = issued.key.expose_secret();
//! assert!(store.verify(key, 2).await?.is_allowed());
//! assert!(!store.verify(key, 1).await?.is_allowed()); // quota spent
//! # Ok(()) }
//! ```

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use keylatch::model::KeyRecord;
use keylatch::{
    audit, validate_cost, validate_duration, AtomicKeyStore, Clock, Denial, DenyReason, Drain,
    Error, Grant, IssuedKey, KeyCodec, KeyId, KeyInfo, KeySpec, Lease, LeaseGrant, LeaseId,
    LeaseLost, Renewal, Result, Revocation, SystemClock, Verdict,
};
use parking_lot::{Mutex, RwLock};
use tokio::sync::Notify;

const BACKEND: &str = "memory";

/// One key: its record, and a signal raised whenever one of its leases ends, which
/// a draining revoke waits on.
struct Cell {
    record: Mutex<KeyRecord>,
    lease_ended: Notify,
}

struct Inner {
    codec: KeyCodec,
    clock: Arc<dyn Clock>,
    keys: RwLock<HashMap<KeyId, Arc<Cell>>>,
}

/// The in-memory store. Cheap to clone; clones share the same keys.
#[derive(Clone)]
pub struct MemoryStore {
    inner: Arc<Inner>,
}

/// Shows the codec, the clock and how many keys there are, never their records:
/// subjects and metadata are the application's data, and do not belong in logs.
impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryStore")
            .field("codec", &self.inner.codec)
            .field("clock", &self.inner.clock)
            .field("keys", &self.inner.keys.read().len())
            .finish()
    }
}

impl Default for MemoryStore {
    fn default() -> Self {
        MemoryStore::new()
    }
}

/// Builds a [`MemoryStore`] with a non-default codec or clock.
#[derive(Debug, Default)]
pub struct MemoryStoreBuilder {
    codec: KeyCodec,
    clock: Option<Arc<dyn Clock>>,
}

impl MemoryStoreBuilder {
    /// Mints and parses keys with this codec (prefix, pepper).
    pub fn codec(mut self, codec: KeyCodec) -> Self {
        self.codec = codec;
        self
    }

    /// Reads time from this clock instead of the system clock (a
    /// [`keylatch::ManualClock`] in tests).
    ///
    /// The clock decides every instant of the contract: expiry, grace ends, rate
    /// limits, lease ends. Waiting is different: a draining revoke waits on the Tokio
    /// runtime's timer for its `drain_timeout` and for the next lease to end, so moving
    /// a `ManualClock` past a lease's end is noticed only when the revoke next looks
    /// (at a release, or when the timer fires). Test drains with releases, or with a
    /// paused Tokio clock (`tokio::time::pause`) moved in step with the `ManualClock`.
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Some(Arc::new(clock));
        self
    }

    /// The store.
    pub fn build(self) -> MemoryStore {
        MemoryStore {
            inner: Arc::new(Inner {
                codec: self.codec,
                clock: self.clock.unwrap_or_else(|| Arc::new(SystemClock)),
                keys: RwLock::new(HashMap::new()),
            }),
        }
    }
}

impl MemoryStore {
    /// A store with the default codec (prefix `kl`, no pepper) and the system clock.
    pub fn new() -> Self {
        MemoryStore::builder().build()
    }

    /// A builder for a store with another codec or clock.
    pub fn builder() -> MemoryStoreBuilder {
        MemoryStoreBuilder::default()
    }

    fn cell(&self, id: &KeyId) -> Option<Arc<Cell>> {
        self.inner.keys.read().get(id).cloned()
    }

    fn existing(&self, id: &KeyId) -> Result<Arc<Cell>> {
        self.cell(id)
            .ok_or_else(|| Error::NotFound { id: id.clone() })
    }

    /// Runs `f` on the key's record under its lock, with the clock read inside the
    /// lock so that the instants the model sees are ordered like the operations.
    fn with_record<T>(
        &self,
        cell: &Cell,
        f: impl FnOnce(&mut KeyRecord, keylatch::Timestamp) -> T,
    ) -> T {
        let mut record = cell.record.lock();
        let now = self.inner.clock.now();
        f(&mut record, now)
    }

    /// The shared front half of verify and acquire: argument checks, key format, and
    /// the unknown-id denial, so that both operations reject the same inputs.
    fn check<T>(
        &self,
        op: &'static str,
        key: &str,
        arguments: Result<()>,
        apply: impl FnOnce(&mut KeyRecord, &keylatch::KeyDigest, keylatch::Timestamp) -> Verdict<T>,
    ) -> Result<Verdict<T>> {
        let presented = match self.inner.codec.parse(key) {
            Ok(p) => p,
            Err(_) => return Ok(audit::malformed(op, BACKEND)),
        };
        // An error in the other arguments is returned, and audited under the key's
        // id, without touching the key.
        let result = arguments.map(|()| match self.cell(&presented.id) {
            Some(cell) => self.with_record(&cell, |r, now| apply(r, &presented.digest, now)),
            None => Verdict::Denied(Denial {
                reason: DenyReason::Unknown,
                id: Some(presented.id.clone()),
            }),
        });
        audit::checked(op, BACKEND, &presented.id, &result);
        result
    }

    async fn drain(&self, cell: &Cell, timeout: Duration) -> Drain {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            // Register for the signal before looking, so that a lease released between
            // the look and the wait still wakes us.
            let notified = cell.lease_ended.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let (live, until_next_end) = self.with_record(cell, |r, now| {
                let next = r
                    .next_lease_end(now)
                    .map(|end| end.saturating_duration_since(now));
                (r.live_leases(now), next)
            });
            if live == 0 {
                return Drain::Drained;
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return Drain::TimedOut { outstanding: live };
            }
            // A lease can also end by expiring, which raises no signal: wake up when
            // the earliest one is due, or at the deadline.
            let wake = until_next_end.map_or(deadline, |d| deadline.min(now + d));
            tokio::select! {
                _ = &mut notified => {}
                _ = tokio::time::sleep_until(wake) => {}
            }
        }
    }
}

#[async_trait]
impl AtomicKeyStore for MemoryStore {
    fn backend(&self) -> &'static str {
        BACKEND
    }

    async fn issue(&self, spec: &KeySpec) -> Result<IssuedKey> {
        spec.validate()?;
        let id = KeyId::random();
        let minted = self.inner.codec.generate(&id);
        let record = KeyRecord::issue(id.clone(), minted.digest, spec, self.inner.clock.now());
        let cell = Arc::new(Cell {
            record: Mutex::new(record),
            lease_ended: Notify::new(),
        });
        // 71 random bits make a collision practically impossible; if one happened
        // anyway, overwriting would hand a second owner the first one's key.
        match self.inner.keys.write().entry(id.clone()) {
            std::collections::hash_map::Entry::Occupied(_) => {
                return Err(Error::Backend {
                    backend: BACKEND,
                    source: "key id collision".into(),
                })
            }
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert(cell);
            }
        }
        Ok(IssuedKey {
            key: minted.key,
            id,
            version: 1,
        })
    }

    async fn verify(&self, key: &str, cost: u64) -> Result<Verdict<Grant>> {
        self.check("verify", key, validate_cost(cost), |r, digest, now| {
            r.verify(digest, cost, now)
        })
    }

    async fn acquire(&self, key: &str, cost: u64, ttl: Duration) -> Result<Verdict<LeaseGrant>> {
        let arguments =
            validate_cost(cost).and(validate_duration(ttl, "lease ttl longer than 366 days"));
        self.check("acquire", key, arguments, |r, digest, now| {
            r.acquire(digest, cost, ttl, LeaseId::random(), now)
        })
    }

    async fn renew(&self, lease: &Lease, ttl: Duration) -> Result<Renewal> {
        validate_duration(ttl, "lease ttl longer than 366 days")?;
        Ok(match self.cell(&lease.key_id) {
            Some(cell) => self.with_record(&cell, |r, now| r.renew(&lease.id, ttl, now)),
            None => Renewal::Lost(LeaseLost::Gone),
        })
    }

    async fn release(&self, lease: &Lease) -> Result<()> {
        if let Some(cell) = self.cell(&lease.key_id) {
            self.with_record(&cell, |r, _| r.release(&lease.id));
            cell.lease_ended.notify_waiters();
        }
        Ok(())
    }

    async fn revoke(&self, id: &KeyId, drain_timeout: Duration) -> Result<Revocation> {
        let checked = validate_duration(drain_timeout, "drain timeout longer than 366 days");
        let result = match checked.and_then(|()| self.existing(id)) {
            Ok(cell) => {
                let newly_revoked = self.with_record(&cell, |r, now| r.revoke(now));
                let drain = self.drain(&cell, drain_timeout).await;
                Ok(Revocation {
                    newly_revoked,
                    drain,
                })
            }
            Err(e) => Err(e),
        };
        audit::revoked(BACKEND, id, &result);
        result
    }

    async fn rotate(
        &self,
        id: &KeyId,
        expected_version: u64,
        grace: Duration,
    ) -> Result<IssuedKey> {
        let checked = validate_duration(grace, "grace period longer than 366 days");
        let result = checked.and_then(|()| self.existing(id)).and_then(|cell| {
            let minted = self.inner.codec.generate(id);
            let version = self.with_record(&cell, |r, now| {
                r.rotate(expected_version, minted.digest, grace, now)
            })?;
            Ok(IssuedKey {
                key: minted.key,
                id: id.clone(),
                version,
            })
        });
        audit::rotated(BACKEND, id, result.as_ref().map(|k| k.version));
        result
    }

    async fn inspect(&self, id: &KeyId) -> Result<KeyInfo> {
        let cell = self.existing(id)?;
        Ok(self.with_record(&cell, |r, now| r.info(now)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use keylatch::{Expiry, ManualClock, Timestamp};

    fn store_at(clock: &ManualClock) -> MemoryStore {
        MemoryStore::builder().clock(clock.clone()).build()
    }

    #[tokio::test]
    async fn expiry_follows_the_injected_clock_without_sleeping() {
        let clock = ManualClock::new(Timestamp::from_micros(1_000_000));
        let store = store_at(&clock);
        let spec = KeySpec::new("a").with_expiry(Expiry::In(Duration::from_secs(3600)));
        let issued = store.issue(&spec).await.expect("issued");
        let key = issued.key.expose_secret();
        assert!(store.verify(key, 1).await.expect("ok").is_allowed());
        clock.advance(Duration::from_secs(3600));
        let verdict = store.verify(key, 1).await.expect("ok");
        assert_eq!(
            verdict.denial().map(|d| d.reason),
            Some(DenyReason::Expired)
        );
    }

    #[tokio::test]
    async fn a_release_wakes_a_draining_revoke() {
        let store = MemoryStore::new();
        let issued = store.issue(&KeySpec::new("a")).await.expect("issued");
        let lease = match store
            .acquire(issued.key.expose_secret(), 1, Duration::from_secs(600))
            .await
        {
            Ok(Verdict::Allowed(g)) => g.lease,
            other => panic!("{other:?}"),
        };
        let revoker = {
            let (store, id) = (store.clone(), issued.id.clone());
            tokio::spawn(async move { store.revoke(&id, Duration::from_secs(600)).await })
        };
        // The revoke has taken effect once a renew is refused; then release the lease
        // and the revoke, which would otherwise wait ten minutes, must return drained.
        while store
            .renew(&lease, Duration::from_secs(600))
            .await
            .expect("ok")
            != Renewal::Lost(LeaseLost::Revoked)
        {
            tokio::task::yield_now().await;
        }
        store.release(&lease).await.expect("released");
        let revocation = revoker.await.expect("no panic").expect("revoked");
        assert_eq!(revocation.drain, Drain::Drained);
        assert!(revocation.newly_revoked);
    }

    #[tokio::test]
    async fn bad_arguments_are_errors_before_any_change() {
        let store = MemoryStore::new();
        let too_long = KeySpec::new("x".repeat(300));
        assert!(matches!(
            store.issue(&too_long).await,
            Err(Error::InvalidArgument { .. })
        ));
        let issued = store.issue(&KeySpec::new("a")).await.expect("issued");
        let key = issued.key.expose_secret();
        let year = Duration::from_secs(400 * 24 * 3600);
        assert!(matches!(
            store.acquire(key, 1, year).await,
            Err(Error::InvalidArgument { .. })
        ));
        assert!(matches!(
            store.rotate(&issued.id, 1, year).await,
            Err(Error::InvalidArgument { .. })
        ));
        assert_eq!(store.inspect(&issued.id).await.expect("ok").uses, 0);
        assert_eq!(store.inspect(&issued.id).await.expect("ok").version, 1);
    }
}
