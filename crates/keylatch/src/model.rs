//! The reference model: the whole contract as a pure, sequential state machine.
//!
//! A [`KeyRecord`] is everything a store keeps about one key; each method is one
//! operation applied at one instant `now` of the store's clock. Nothing here does I/O
//! or reads a clock, so the model is deterministic. The memory backend runs it under
//! a per-key lock; the SQL and Lua of the other backends implement the same steps,
//! and the conformance suite judges their histories against what it allows.
//!
//! The checks of a verify, in order (the first that fails decides the reason):
//! 1. the presented digest equals the current one, or the previous one while
//!    `now < previous_valid_until` (else `Unknown`);
//! 2. not revoked (else `Revoked`);
//! 3. `now < expires_at` when there is an expiry (else `Expired`);
//! 4. GCRA: a cost above the burst never fits (`CostExceedsBurst`); otherwise, with
//!    `T` the emission interval, `tat' = max(tat, now) + cost * T`; denied when
//!    `tat' - burst * T > now`, with `retry_after = tat' - burst * T - now`;
//! 5. `remaining >= cost` when there is a quota (else `QuotaExhausted`).
//!
//! Only when all pass does it set `tat = tat'`, subtract the cost from the quota and
//! add one to `uses`. A denial changes nothing.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::time::duration_micros;
use crate::{
    Denial, DenyReason, Error, Expiry, Grant, KeyDigest, KeyId, KeyInfo, KeySpec, Lease,
    LeaseGrant, LeaseId, LeaseLost, RateLimit, RateLimitState, Renewal, Timestamp, Verdict,
};

/// A superseded secret that still works until `valid_until` (a rotation's grace).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PreviousSecret {
    /// Its digest.
    pub digest: KeyDigest,
    /// The first instant at which it no longer works.
    pub valid_until: Timestamp,
}

/// Everything a store keeps about one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRecord {
    /// The key's id.
    pub id: KeyId,
    /// Its owner.
    pub subject: String,
    /// Its labels.
    pub metadata: BTreeMap<String, String>,
    /// 1 when issued, one more per rotation.
    pub version: u64,
    /// The digest of the current secret.
    pub digest: KeyDigest,
    /// The secret before the last rotation, during its grace period.
    pub previous: Option<PreviousSecret>,
    /// When it was issued.
    pub created_at: Timestamp,
    /// When it stops working.
    pub expires_at: Option<Timestamp>,
    /// When it was revoked.
    pub revoked_at: Option<Timestamp>,
    /// Its rate limit.
    pub rate_limit: Option<RateLimit>,
    /// The GCRA theoretical arrival time, in microseconds (0 when never used).
    pub tat: i64,
    /// The quota it was issued with.
    pub quota: Option<u64>,
    /// Credits left.
    pub remaining: Option<u64>,
    /// Allowed verifies and acquires.
    pub uses: u64,
    /// The last fencing token handed out.
    pub fencing: u64,
    /// Live and not yet pruned leases, with their ends.
    pub leases: BTreeMap<LeaseId, Timestamp>,
}

/// What passing checks 1 to 5 of a verify would charge.
struct Admission {
    new_tat: i64,
    rate_state: Option<RateLimitState>,
}

impl KeyRecord {
    /// A new key, version 1, issued at `now` from a validated spec.
    pub fn issue(id: KeyId, digest: KeyDigest, spec: &KeySpec, now: Timestamp) -> Self {
        let expires_at = spec.expiry.map(|e| match e {
            Expiry::At(t) => t,
            Expiry::In(d) => now.saturating_add(d),
        });
        KeyRecord {
            id,
            subject: spec.subject.clone(),
            metadata: spec.metadata.clone(),
            version: 1,
            digest,
            previous: None,
            created_at: now,
            expires_at,
            revoked_at: None,
            rate_limit: spec.rate_limit,
            tat: 0,
            quota: spec.quota,
            remaining: spec.quota,
            uses: 0,
            fencing: 0,
            leases: BTreeMap::new(),
        }
    }

    fn secret_matches(&self, presented: &KeyDigest, now: Timestamp) -> bool {
        // Both comparisons always run so that timing does not tell which one matched.
        let current = self.digest.ct_eq(presented);
        let previous = self
            .previous
            .is_some_and(|p| p.digest.ct_eq(presented) & (now < p.valid_until));
        current | previous
    }

    fn deny(&self, reason: DenyReason) -> Denial {
        Denial {
            reason,
            id: Some(self.id.clone()),
        }
    }

    fn admit(&self, presented: &KeyDigest, cost: u64, now: Timestamp) -> Result<Admission, Denial> {
        if !self.secret_matches(presented, now) {
            return Err(self.deny(DenyReason::Unknown));
        }
        if self.revoked_at.is_some() {
            return Err(self.deny(DenyReason::Revoked));
        }
        if self.expires_at.is_some_and(|e| now >= e) {
            return Err(self.deny(DenyReason::Expired));
        }
        let now_us = now.as_micros();
        let mut admission = Admission {
            new_tat: self.tat,
            rate_state: None,
        };
        if let Some(limit) = &self.rate_limit {
            if cost > u64::from(limit.burst) {
                return Err(self.deny(DenyReason::CostExceedsBurst));
            }
            let t = limit.emission_interval_micros();
            let capacity = t.saturating_mul(limit.burst.into());
            let cost = i64::try_from(cost).unwrap_or(i64::MAX);
            let new_tat = self.tat.max(now_us).saturating_add(cost.saturating_mul(t));
            let allow_at = new_tat - capacity;
            if allow_at > now_us {
                let retry_after = Duration::from_micros((allow_at - now_us) as u64);
                return Err(self.deny(DenyReason::RateLimited { retry_after }));
            }
            let used = new_tat - now_us;
            admission = Admission {
                new_tat,
                rate_state: Some(RateLimitState {
                    limit: limit.burst,
                    remaining: u32::try_from((capacity - used) / t).unwrap_or(u32::MAX),
                    reset_after: Duration::from_micros(used as u64),
                }),
            };
        }
        if self.remaining.is_some_and(|r| r < cost) {
            return Err(self.deny(DenyReason::QuotaExhausted));
        }
        Ok(admission)
    }

    fn charge(&mut self, admission: Admission, cost: u64) -> Grant {
        self.tat = admission.new_tat;
        if let Some(r) = self.remaining.as_mut() {
            *r -= cost;
        }
        self.uses += 1;
        Grant {
            id: self.id.clone(),
            subject: self.subject.clone(),
            version: self.version,
            remaining_quota: self.remaining,
            rate_limit: admission.rate_state,
        }
    }

    /// Checks the presented digest and every limit; charges `cost` if all pass.
    pub fn verify(&mut self, presented: &KeyDigest, cost: u64, now: Timestamp) -> Verdict<Grant> {
        match self.admit(presented, cost, now) {
            Ok(admission) => Verdict::Allowed(self.charge(admission, cost)),
            Err(denial) => Verdict::Denied(denial),
        }
    }

    /// A verify that, when allowed, also grants the lease `lease_id` until `now + ttl`
    /// with the next fencing token. Leases that have ended are pruned first.
    pub fn acquire(
        &mut self,
        presented: &KeyDigest,
        cost: u64,
        ttl: Duration,
        lease_id: LeaseId,
        now: Timestamp,
    ) -> Verdict<LeaseGrant> {
        let admission = match self.admit(presented, cost, now) {
            Ok(a) => a,
            Err(denial) => return Verdict::Denied(denial),
        };
        self.prune_leases(now);
        let grant = self.charge(admission, cost);
        self.fencing += 1;
        let expires_at = now.saturating_add(ttl);
        self.leases.insert(lease_id.clone(), expires_at);
        Verdict::Allowed(LeaseGrant {
            lease: Lease {
                id: lease_id,
                key_id: self.id.clone(),
                fencing_token: self.fencing,
                expires_at,
            },
            grant,
        })
    }

    /// Extends a live lease to `now + ttl`, unless the key is revoked or expired or
    /// the lease has ended. A lease found ended is pruned.
    pub fn renew(&mut self, lease_id: &LeaseId, ttl: Duration, now: Timestamp) -> Renewal {
        match self.leases.get(lease_id) {
            None => return Renewal::Lost(LeaseLost::Gone),
            Some(&end) if end <= now => {
                self.leases.remove(lease_id);
                return Renewal::Lost(LeaseLost::Gone);
            }
            Some(_) => {}
        }
        if self.revoked_at.is_some() {
            return Renewal::Lost(LeaseLost::Revoked);
        }
        if self.expires_at.is_some_and(|e| now >= e) {
            return Renewal::Lost(LeaseLost::KeyExpired);
        }
        let expires_at = now.saturating_add(ttl);
        self.leases.insert(lease_id.clone(), expires_at);
        Renewal::Renewed { expires_at }
    }

    /// Ends a lease; releasing an unknown or ended lease does nothing.
    pub fn release(&mut self, lease_id: &LeaseId) {
        self.leases.remove(lease_id);
    }

    /// Marks the key revoked; returns false when it already was.
    pub fn revoke(&mut self, now: Timestamp) -> bool {
        if self.revoked_at.is_some() {
            return false;
        }
        self.revoked_at = Some(now);
        true
    }

    /// Drops leases that ended at or before `now`.
    pub fn prune_leases(&mut self, now: Timestamp) {
        self.leases.retain(|_, end| *end > now);
    }

    /// Leases still live at `now`.
    pub fn live_leases(&self, now: Timestamp) -> u64 {
        self.leases.values().filter(|end| **end > now).count() as u64
    }

    /// The earliest end of a lease live at `now`.
    pub fn next_lease_end(&self, now: Timestamp) -> Option<Timestamp> {
        self.leases.values().copied().filter(|end| *end > now).min()
    }

    /// Compare-and-set rotation to `new_digest`: succeeds only at `expected_version`
    /// on a key that is not revoked, and returns the new version. The old secret
    /// keeps working until `now + grace` (not at all when `grace` is zero); a secret
    /// from an earlier rotation still in its grace stops at once.
    pub fn rotate(
        &mut self,
        expected_version: u64,
        new_digest: KeyDigest,
        grace: Duration,
        now: Timestamp,
    ) -> Result<u64, Error> {
        if self.revoked_at.is_some() {
            return Err(Error::Revoked {
                id: self.id.clone(),
            });
        }
        if self.version != expected_version {
            return Err(Error::Conflict {
                id: self.id.clone(),
                current_version: self.version,
            });
        }
        self.previous = (duration_micros(grace) > 0).then(|| PreviousSecret {
            digest: self.digest,
            valid_until: now.saturating_add(grace),
        });
        self.digest = new_digest;
        self.version += 1;
        Ok(self.version)
    }

    /// A snapshot at `now`.
    pub fn info(&self, now: Timestamp) -> KeyInfo {
        KeyInfo {
            id: self.id.clone(),
            subject: self.subject.clone(),
            metadata: self.metadata.clone(),
            version: self.version,
            created_at: self.created_at,
            expires_at: self.expires_at,
            revoked_at: self.revoked_at,
            previous_valid_until: self
                .previous
                .map(|p| p.valid_until)
                .filter(|until| now < *until),
            uses: self.uses,
            quota: self.quota,
            remaining_quota: self.remaining,
            rate_limit: self.rate_limit,
            active_leases: self.live_leases(now),
            fencing_token: self.fencing,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::KeyCodec;

    const MS: i64 = 1_000;

    fn at(ms: i64) -> Timestamp {
        Timestamp::from_micros(1_000_000_000 * MS + ms * MS)
    }

    fn record(spec: KeySpec) -> (KeyRecord, KeyDigest) {
        let id = KeyId::random();
        let minted = KeyCodec::default().generate(&id);
        (
            KeyRecord::issue(id, minted.digest, &spec, at(0)),
            minted.digest,
        )
    }

    fn reason<T>(v: Verdict<T>) -> Option<DenyReason> {
        v.denial().map(|d| d.reason)
    }

    #[test]
    fn verify_counts_uses_and_wrong_secret_is_unknown() {
        let (mut r, d) = record(KeySpec::new("alice"));
        assert!(r.verify(&d, 1, at(1)).is_allowed());
        assert!(r.verify(&d, 1, at(2)).is_allowed());
        assert_eq!(r.uses, 2);
        let other = KeyDigest([7; 32]);
        assert_eq!(
            reason(r.verify(&other, 1, at(3))),
            Some(DenyReason::Unknown)
        );
        assert_eq!(r.uses, 2);
    }

    #[test]
    fn quota_is_exact_and_denials_change_nothing() {
        let (mut r, d) = record(KeySpec::new("a").with_quota(5));
        assert!(r.verify(&d, 3, at(1)).is_allowed());
        let before = r.clone();
        assert_eq!(
            reason(r.verify(&d, 3, at(2))),
            Some(DenyReason::QuotaExhausted)
        );
        assert_eq!(r, before);
        match r.verify(&d, 2, at(3)) {
            Verdict::Allowed(g) => assert_eq!(g.remaining_quota, Some(0)),
            other => panic!("{other:?}"),
        }
        assert!(r.verify(&d, 0, at(4)).is_allowed());
    }

    #[test]
    fn gcra_allows_the_burst_then_the_rate() {
        // 10 per second: T = 100 ms; burst 3.
        let limit = RateLimit::new(10, Duration::from_secs(1), 3);
        let (mut r, d) = record(KeySpec::new("a").with_rate_limit(limit));
        for expected_remaining in [2, 1, 0] {
            match r.verify(&d, 1, at(10)) {
                Verdict::Allowed(g) => {
                    let s = g.rate_limit.expect("limited");
                    assert_eq!((s.limit, s.remaining), (3, expected_remaining));
                }
                other => panic!("{other:?}"),
            }
        }
        let before = r.clone();
        assert_eq!(
            reason(r.verify(&d, 1, at(10))),
            Some(DenyReason::RateLimited {
                retry_after: Duration::from_millis(100)
            })
        );
        assert_eq!(r, before);
        assert!(!r.verify(&d, 1, at(109)).is_allowed());
        assert!(r.verify(&d, 1, at(110)).is_allowed());
        // A cost of 2 needs two intervals of room.
        assert_eq!(
            reason(r.verify(&d, 2, at(210))),
            Some(DenyReason::RateLimited {
                retry_after: Duration::from_millis(100)
            })
        );
        assert!(r.verify(&d, 2, at(310)).is_allowed());
        // A cost above the burst can never fit, however long one waits.
        let before = r.clone();
        assert_eq!(
            reason(r.verify(&d, 4, at(10_000))),
            Some(DenyReason::CostExceedsBurst)
        );
        assert_eq!(r, before);
        assert!(r.verify(&d, 3, at(10_000)).is_allowed());
    }

    #[test]
    fn rate_limit_is_not_charged_when_quota_denies() {
        let limit = RateLimit::new(1, Duration::from_secs(1), 2);
        let (mut r, d) = record(KeySpec::new("a").with_rate_limit(limit).with_quota(1));
        assert!(r.verify(&d, 1, at(0)).is_allowed());
        let tat = r.tat;
        assert_eq!(
            reason(r.verify(&d, 1, at(0))),
            Some(DenyReason::QuotaExhausted)
        );
        assert_eq!(r.tat, tat);
    }

    #[test]
    fn expiry_is_exclusive_and_checked_after_revocation() {
        let spec = KeySpec::new("a").with_expiry(Expiry::In(Duration::from_millis(50)));
        let (mut r, d) = record(spec);
        assert!(r.verify(&d, 1, at(49)).is_allowed());
        assert_eq!(reason(r.verify(&d, 1, at(50))), Some(DenyReason::Expired));
        r.revoke(at(60));
        assert_eq!(reason(r.verify(&d, 1, at(70))), Some(DenyReason::Revoked));
    }

    #[test]
    fn revoke_is_idempotent() {
        let (mut r, d) = record(KeySpec::new("a"));
        assert!(r.revoke(at(1)));
        assert!(!r.revoke(at(2)));
        assert_eq!(r.revoked_at, Some(at(1)));
        assert_eq!(reason(r.verify(&d, 1, at(3))), Some(DenyReason::Revoked));
    }

    #[test]
    fn rotation_is_compare_and_set_with_grace() {
        let (mut r, old) = record(KeySpec::new("a").with_quota(3));
        let new = KeyDigest([9; 32]);
        assert!(matches!(
            r.rotate(2, new, Duration::ZERO, at(1)),
            Err(Error::Conflict {
                current_version: 1,
                ..
            })
        ));
        assert_eq!(
            r.rotate(1, new, Duration::from_millis(100), at(1)).ok(),
            Some(2)
        );
        assert!(r.verify(&old, 1, at(100)).is_allowed());
        assert!(r.verify(&new, 1, at(100)).is_allowed());
        assert_eq!(
            reason(r.verify(&old, 1, at(101))),
            Some(DenyReason::Unknown)
        );
        assert!(r.verify(&new, 1, at(102)).is_allowed());
        // Old and new share one quota.
        assert_eq!(
            reason(r.verify(&new, 1, at(103))),
            Some(DenyReason::QuotaExhausted)
        );
        assert_eq!(r.info(at(101)).previous_valid_until, None);
    }

    #[test]
    fn rotation_without_grace_drops_the_old_secret_at_once() {
        let (mut r, old) = record(KeySpec::new("a"));
        r.rotate(1, KeyDigest([1; 32]), Duration::ZERO, at(1))
            .expect("rotates");
        assert_eq!(reason(r.verify(&old, 1, at(1))), Some(DenyReason::Unknown));
    }

    #[test]
    fn a_revoked_key_cannot_be_rotated_back_to_life() {
        let (mut r, _) = record(KeySpec::new("a"));
        r.revoke(at(1));
        let new = KeyDigest([2; 32]);
        assert!(matches!(
            r.rotate(1, new, Duration::ZERO, at(2)),
            Err(Error::Revoked { .. })
        ));
        assert_eq!(reason(r.verify(&new, 1, at(3))), Some(DenyReason::Unknown));
    }

    #[test]
    fn leases_fence_renew_and_end() {
        let (mut r, d) = record(KeySpec::new("a"));
        let ttl = Duration::from_millis(100);
        let a = match r.acquire(&d, 1, ttl, LeaseId::random(), at(0)) {
            Verdict::Allowed(g) => g.lease,
            other => panic!("{other:?}"),
        };
        let b = match r.acquire(&d, 1, ttl, LeaseId::random(), at(10)) {
            Verdict::Allowed(g) => g.lease,
            other => panic!("{other:?}"),
        };
        assert_eq!((a.fencing_token, b.fencing_token), (1, 2));
        assert_eq!(r.uses, 2);
        assert_eq!(r.live_leases(at(50)), 2);
        assert_eq!(r.next_lease_end(at(50)), Some(at(100)));
        assert_eq!(
            r.renew(&a.id, ttl, at(50)),
            Renewal::Renewed {
                expires_at: at(150)
            }
        );
        r.release(&b.id);
        assert_eq!(r.renew(&b.id, ttl, at(60)), Renewal::Lost(LeaseLost::Gone));
        assert_eq!(r.renew(&a.id, ttl, at(150)), Renewal::Lost(LeaseLost::Gone));
        assert_eq!(r.live_leases(at(150)), 0);
    }

    #[test]
    fn renew_fails_once_revoked_and_the_lease_still_counts_until_it_ends() {
        let (mut r, d) = record(KeySpec::new("a"));
        let ttl = Duration::from_millis(100);
        let lease = match r.acquire(&d, 1, ttl, LeaseId::random(), at(0)) {
            Verdict::Allowed(g) => g.lease,
            other => panic!("{other:?}"),
        };
        r.revoke(at(10));
        assert_eq!(
            r.renew(&lease.id, ttl, at(20)),
            Renewal::Lost(LeaseLost::Revoked)
        );
        assert_eq!(r.live_leases(at(20)), 1);
        assert_eq!(
            reason(r.acquire(&d, 1, ttl, LeaseId::random(), at(20))),
            Some(DenyReason::Revoked)
        );
        r.release(&lease.id);
        assert_eq!(r.live_leases(at(20)), 0);
    }
}
