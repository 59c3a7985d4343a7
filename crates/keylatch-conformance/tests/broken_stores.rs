//! The suite can fail: deliberately broken stores, each with one classic TOCTOU bug,
//! are caught by the scenario written for that bug, while the same store without the
//! bug passes it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use keylatch::model::KeyRecord;
use keylatch::{
    AtomicKeyStore, Clock, Denial, DenyReason, Drain, Error, Grant, IssuedKey, KeyCodec, KeyId,
    KeyInfo, KeySpec, Lease, LeaseGrant, LeaseId, LeaseLost, Renewal, Result, Revocation,
    SharedKeyStore, SystemClock, Verdict,
};
use keylatch_conformance::scenarios::{self, Scenario};
use keylatch_conformance::{run, StoreFactory, SuiteConfig};

/// The bug a [`ModelStore`] has in its verify.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Bug {
    /// None: verify applies the model under the lock, like a real backend.
    None,
    /// Checks the key (revocation included) on a snapshot, awaits, then charges the
    /// live record without checking again.
    CheckThenConsume,
    /// Reads the record, decides, awaits, then writes back what it computed from the
    /// stale read: concurrent charges overwrite each other.
    ReadThenWriteQuota,
    /// Rotates whatever version the key is at: the UPDATE whose zero-rows-affected
    /// case nobody checks, so N racing rotations mint N keys.
    RotateWithoutCompare,
}

/// A store that runs the reference model over a plain map, with an optional bug.
#[derive(Debug)]
struct ModelStore {
    bug: Bug,
    codec: KeyCodec,
    keys: Mutex<HashMap<KeyId, KeyRecord>>,
}

impl ModelStore {
    fn new(bug: Bug) -> Self {
        ModelStore {
            bug,
            codec: KeyCodec::default(),
            keys: Mutex::new(HashMap::new()),
        }
    }

    fn now() -> keylatch::Timestamp {
        SystemClock.now()
    }

    fn with<T>(&self, id: &KeyId, f: impl FnOnce(&mut KeyRecord) -> T) -> Option<T> {
        self.keys.lock().expect("not poisoned").get_mut(id).map(f)
    }
}

#[async_trait]
impl AtomicKeyStore for ModelStore {
    fn backend(&self) -> &'static str {
        "broken-model"
    }

    async fn issue(&self, spec: &KeySpec) -> Result<IssuedKey> {
        let id = KeyId::random();
        let minted = self.codec.generate(&id);
        let record = KeyRecord::issue(id.clone(), minted.digest, spec, Self::now());
        self.keys
            .lock()
            .expect("not poisoned")
            .insert(id.clone(), record);
        Ok(IssuedKey {
            key: minted.key,
            id,
            version: 1,
        })
    }

    async fn verify(&self, key: &str, cost: u64) -> Result<Verdict<Grant>> {
        keylatch::validate_cost(cost)?;
        let Ok(presented) = self.codec.parse(key) else {
            return Ok(Verdict::Denied(Denial {
                reason: DenyReason::Malformed,
                id: None,
            }));
        };
        let unknown = || {
            Verdict::Denied(Denial {
                reason: DenyReason::Unknown,
                id: Some(presented.id.clone()),
            })
        };
        if self.bug == Bug::None {
            return Ok(self
                .with(&presented.id, |r| {
                    r.verify(&presented.digest, cost, Self::now())
                })
                .unwrap_or_else(unknown));
        }
        let Some(mut snapshot) = self.with(&presented.id, |r| r.clone()) else {
            return Ok(unknown());
        };
        let verdict = snapshot.verify(&presented.digest, cost, Self::now());
        // The gap between the check and the use: the time-of-check/time-of-use window.
        tokio::time::sleep(Duration::from_millis(1)).await;
        if verdict.is_allowed() {
            self.with(&presented.id, |live| match self.bug {
                Bug::CheckThenConsume => {
                    live.uses += 1;
                    live.tat = snapshot.tat;
                    if let Some(r) = live.remaining.as_mut() {
                        *r = r.saturating_sub(cost);
                    }
                }
                _ => {
                    live.uses = snapshot.uses;
                    live.tat = snapshot.tat;
                    live.remaining = snapshot.remaining;
                }
            });
        }
        Ok(verdict)
    }

    async fn acquire(&self, key: &str, cost: u64, ttl: Duration) -> Result<Verdict<LeaseGrant>> {
        let Ok(presented) = self.codec.parse(key) else {
            return Ok(Verdict::Denied(Denial {
                reason: DenyReason::Malformed,
                id: None,
            }));
        };
        Ok(self
            .with(&presented.id, |r| {
                r.acquire(&presented.digest, cost, ttl, LeaseId::random(), Self::now())
            })
            .unwrap_or(Verdict::Denied(Denial {
                reason: DenyReason::Unknown,
                id: Some(presented.id.clone()),
            })))
    }

    async fn renew(&self, lease: &Lease, ttl: Duration) -> Result<Renewal> {
        Ok(self
            .with(&lease.key_id, |r| r.renew(&lease.id, ttl, Self::now()))
            .unwrap_or(Renewal::Lost(LeaseLost::Gone)))
    }

    async fn release(&self, lease: &Lease) -> Result<()> {
        self.with(&lease.key_id, |r| r.release(&lease.id));
        Ok(())
    }

    async fn revoke(&self, id: &KeyId, _drain_timeout: Duration) -> Result<Revocation> {
        // Leases are not raced against these stores; every scenario used here has none.
        let newly_revoked = self
            .with(id, |r| r.revoke(Self::now()))
            .ok_or_else(|| Error::NotFound { id: id.clone() })?;
        Ok(Revocation {
            newly_revoked,
            drain: Drain::Drained,
        })
    }

    async fn rotate(
        &self,
        id: &KeyId,
        expected_version: u64,
        grace: Duration,
    ) -> Result<IssuedKey> {
        let minted = self.codec.generate(id);
        let version = self
            .with(id, |r| {
                let expected = match self.bug {
                    Bug::RotateWithoutCompare => r.version,
                    _ => expected_version,
                };
                r.rotate(expected, minted.digest, grace, Self::now())
            })
            .ok_or_else(|| Error::NotFound { id: id.clone() })??;
        Ok(IssuedKey {
            key: minted.key,
            id: id.clone(),
            version,
        })
    }

    async fn inspect(&self, id: &KeyId) -> Result<KeyInfo> {
        self.with(id, |r| r.info(Self::now()))
            .ok_or_else(|| Error::NotFound { id: id.clone() })
    }
}

struct Factory(Arc<ModelStore>);

#[async_trait]
impl StoreFactory for Factory {
    fn name(&self) -> &str {
        "broken-model"
    }

    async fn open(&self) -> Result<SharedKeyStore> {
        Ok(self.0.clone())
    }
}

/// Runs one scenario for a few rounds and returns how many violations it saw.
async fn violations(bug: Bug, scenario: &'static Scenario) -> usize {
    let config = SuiteConfig { rounds: 3, seed: 7 };
    let factory = Factory(Arc::new(ModelStore::new(bug)));
    run(&factory, &config, std::slice::from_ref(scenario))
        .await
        .violation_count()
}

/// The scenario passes the store without the bug and catches the store with it.
async fn assert_caught(bug: Bug, scenario: &str) {
    let s = scenarios::by_name(scenario).expect("the scenario exists");
    assert_eq!(
        violations(Bug::None, s).await,
        0,
        "the correct store must pass"
    );
    assert!(
        violations(bug, s).await > 0,
        "{bug:?} went unnoticed by {scenario}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn check_then_consume_is_caught_by_revoke_during_verify() {
    assert_caught(Bug::CheckThenConsume, "revoke_during_verify").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn read_then_write_quota_is_caught_by_quota_exact() {
    assert_caught(Bug::ReadThenWriteQuota, "quota_exact").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn read_then_write_is_also_caught_by_rate_exact() {
    assert_caught(Bug::ReadThenWriteQuota, "rate_exact").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rotation_without_compare_is_caught_by_rotate_cas() {
    assert_caught(Bug::RotateWithoutCompare, "rotate_cas").await;
}
