//! The values that go into and come out of a store.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use crate::time::duration_micros;
use crate::{ApiKey, Error, KeyId, Timestamp};

/// The largest quota, cost or counter value a store accepts: 2^53 - 1, the largest
/// integer every backend (Lua numbers included) represents exactly.
pub const MAX_CREDITS: u64 = (1 << 53) - 1;
/// Longest subject, in bytes. Subject and metadata are UTF-8 without NUL characters.
pub const MAX_SUBJECT_LEN: usize = 256;
/// Most metadata entries on one key.
pub const MAX_METADATA_ENTRIES: usize = 32;
/// Longest metadata name or value, in bytes.
pub const MAX_METADATA_LEN: usize = 256;
/// Longest lease lifetime, rotation grace period or relative expiry.
pub const MAX_DURATION: Duration = Duration::from_secs(366 * 24 * 3600);

/// When a new key stops working.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    /// At this instant of the store's clock.
    At(Timestamp),
    /// This long after the store issues the key, measured on the store's clock.
    In(Duration),
}

/// A GCRA rate limit: `rate` requests per `period` on average, bursts of up to `burst`.
///
/// The emission interval `T = floor(period / rate)` in microseconds is the cost of one
/// unit; a verify of cost `n` needs `n * T` of room below `burst * T`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RateLimit {
    /// Requests per period.
    pub rate: u32,
    /// The period.
    pub period: Duration,
    /// Requests that may pass at once when the bucket is full.
    pub burst: u32,
}

impl RateLimit {
    /// `rate` per `period`, with a burst of `burst`.
    pub fn new(rate: u32, period: Duration, burst: u32) -> Self {
        RateLimit {
            rate,
            period,
            burst,
        }
    }

    /// The emission interval in microseconds: what one unit of cost takes from the bucket.
    pub fn emission_interval_micros(&self) -> i64 {
        duration_micros(self.period) / i64::from(self.rate.max(1))
    }

    fn validate(&self) -> Result<(), Error> {
        let t = self.emission_interval_micros();
        if self.rate == 0 || self.burst == 0 || t < 1 {
            return Err(Error::InvalidArgument {
                what: "rate limit needs rate >= 1, burst >= 1 and period >= rate microseconds",
            });
        }
        if self.period > MAX_DURATION || (t as u64).saturating_mul(self.burst.into()) > MAX_CREDITS
        {
            return Err(Error::InvalidArgument {
                what: "rate limit period or burst too large",
            });
        }
        Ok(())
    }
}

/// What to issue.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeySpec {
    /// Who the key belongs to; opaque to keylatch (a user or tenant id, say).
    pub subject: String,
    /// Free-form labels, returned by `inspect`.
    pub metadata: BTreeMap<String, String>,
    /// When the key stops working, if ever.
    pub expiry: Option<Expiry>,
    /// A rate limit, if any.
    pub rate_limit: Option<RateLimit>,
    /// Credits the key may spend in its lifetime, if limited.
    pub quota: Option<u64>,
}

impl KeySpec {
    /// A spec for `subject` with no limits and no expiry.
    pub fn new(subject: impl Into<String>) -> Self {
        KeySpec {
            subject: subject.into(),
            ..KeySpec::default()
        }
    }

    /// Adds a metadata entry.
    pub fn with_metadata(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.metadata.insert(name.into(), value.into());
        self
    }

    /// Sets the expiry.
    pub fn with_expiry(mut self, expiry: Expiry) -> Self {
        self.expiry = Some(expiry);
        self
    }

    /// Sets the rate limit.
    pub fn with_rate_limit(mut self, limit: RateLimit) -> Self {
        self.rate_limit = Some(limit);
        self
    }

    /// Sets the quota.
    pub fn with_quota(mut self, credits: u64) -> Self {
        self.quota = Some(credits);
        self
    }

    /// Checks every bound; stores call this before any I/O.
    pub fn validate(&self) -> Result<(), Error> {
        if self.subject.len() > MAX_SUBJECT_LEN {
            return Err(Error::InvalidArgument {
                what: "subject longer than 256 bytes",
            });
        }
        if self.metadata.len() > MAX_METADATA_ENTRIES
            || self
                .metadata
                .iter()
                .any(|(k, v)| k.len() > MAX_METADATA_LEN || v.len() > MAX_METADATA_LEN)
        {
            return Err(Error::InvalidArgument {
                what: "metadata over 32 entries or 256 bytes per name or value",
            });
        }
        // PostgreSQL text cannot hold NUL, so no backend accepts it: a spec means the
        // same thing on every backend.
        if self.subject.contains('\0')
            || self
                .metadata
                .iter()
                .any(|(k, v)| k.contains('\0') || v.contains('\0'))
        {
            return Err(Error::InvalidArgument {
                what: "subject and metadata may not contain NUL characters",
            });
        }
        if let Some(Expiry::In(d)) = self.expiry {
            validate_duration(d, "relative expiry longer than 366 days")?;
        }
        if let Some(limit) = &self.rate_limit {
            limit.validate()?;
        }
        if self.quota.is_some_and(|q| q > MAX_CREDITS) {
            return Err(Error::InvalidArgument {
                what: "quota above 2^53 - 1",
            });
        }
        Ok(())
    }
}

/// Checks that a duration argument is at most [`MAX_DURATION`].
pub fn validate_duration(d: Duration, what: &'static str) -> Result<(), Error> {
    if d > MAX_DURATION {
        Err(Error::InvalidArgument { what })
    } else {
        Ok(())
    }
}

/// Checks a verify or acquire cost.
pub fn validate_cost(cost: u64) -> Result<(), Error> {
    if cost > MAX_CREDITS {
        Err(Error::InvalidArgument {
            what: "cost above 2^53 - 1",
        })
    } else {
        Ok(())
    }
}

/// A key just issued or rotated: the plaintext, shown this once.
#[derive(Debug, Clone)]
pub struct IssuedKey {
    /// The plaintext key; `Debug` redacts it.
    pub key: ApiKey,
    /// Its id (also inside `key`).
    pub id: KeyId,
    /// The key's version: 1 when issued, one more at every rotation.
    pub version: u64,
}

/// The outcome of a `verify` or `acquire`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub enum Verdict<T> {
    /// Every check passed and the cost was charged.
    Allowed(T),
    /// A check failed; nothing changed in the store.
    Denied(Denial),
}

impl<T> Verdict<T> {
    /// Whether this verdict allows the request.
    pub fn is_allowed(&self) -> bool {
        matches!(self, Verdict::Allowed(_))
    }

    /// The denial reason, if denied.
    pub fn denial(&self) -> Option<&Denial> {
        match self {
            Verdict::Allowed(_) => None,
            Verdict::Denied(d) => Some(d),
        }
    }

    /// What was granted, if allowed.
    pub fn allowed(&self) -> Option<&T> {
        match self {
            Verdict::Allowed(grant) => Some(grant),
            Verdict::Denied(_) => None,
        }
    }

    /// The grant, or the denial as an error value: `store.acquire(..).await?.into_result()`
    /// lets `?` carry a denial on.
    pub fn into_result(self) -> Result<T, Denial> {
        match self {
            Verdict::Allowed(grant) => Ok(grant),
            Verdict::Denied(d) => Err(d),
        }
    }
}

/// What an allowed verify tells the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// The key.
    pub id: KeyId,
    /// Who it belongs to.
    pub subject: String,
    /// The key's version when it was checked.
    pub version: u64,
    /// Credits left after this charge, when the key has a quota.
    pub remaining_quota: Option<u64>,
    /// The rate limit after this charge, when the key has one.
    pub rate_limit: Option<RateLimitState>,
}

/// The state of a rate limit after an allowed request, for RateLimit headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimitState {
    /// The burst size.
    pub limit: u32,
    /// Units that could pass right now.
    pub remaining: u32,
    /// Time until the bucket is full again.
    pub reset_after: Duration,
}

/// Why a request was denied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denial {
    /// The reason.
    pub reason: DenyReason,
    /// The key the request named, when the key was well-formed.
    pub id: Option<KeyId>,
}

/// The reasons a request is denied, checked in this order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DenyReason {
    /// The key is not in the keylatch format (decided without I/O).
    Malformed,
    /// No key with this id and secret: unknown id, wrong secret, or a secret
    /// superseded by a rotation whose grace period is over.
    Unknown,
    /// The key was revoked.
    Revoked,
    /// The key's expiry has passed.
    Expired,
    /// The cost is larger than the key's burst, so no amount of waiting lets it
    /// through (an HTTP layer answers 413 or 400 here, not 429).
    CostExceedsBurst,
    /// The rate limit has no room for this cost now; it will after `retry_after`.
    RateLimited {
        /// How long until a request of this cost fits (always more than zero).
        retry_after: Duration,
    },
    /// The quota has fewer credits left than the cost.
    QuotaExhausted,
}

impl DenyReason {
    /// A short stable name, used in audit events and reports.
    pub fn as_str(&self) -> &'static str {
        match self {
            DenyReason::Malformed => "malformed",
            DenyReason::Unknown => "unknown",
            DenyReason::Revoked => "revoked",
            DenyReason::Expired => "expired",
            DenyReason::CostExceedsBurst => "cost_exceeds_burst",
            DenyReason::RateLimited { .. } => "rate_limited",
            DenyReason::QuotaExhausted => "quota_exhausted",
        }
    }
}

/// The id of a lease: 22 base62 characters, unique per lease.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LeaseId(String);

impl LeaseId {
    /// Length of a lease id.
    pub const LEN: usize = 22;

    /// A fresh random lease id.
    pub fn random() -> Self {
        LeaseId(crate::key::random_base62(Self::LEN))
    }

    /// Validates a lease id given as text.
    pub fn parse(s: &str) -> Result<Self, Error> {
        if s.len() == Self::LEN && s.bytes().all(|b| b.is_ascii_alphanumeric()) {
            Ok(LeaseId(s.to_owned()))
        } else {
            Err(Error::InvalidArgument {
                what: "lease id must be 22 base62 characters",
            })
        }
    }

    /// The id text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for LeaseId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for LeaseId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LeaseId({})", self.0)
    }
}

/// A lease: the right to keep using a key for long work until `expires_at`, unless
/// the key is revoked (a revoke waits for leases to end; a renew then fails).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The lease's id.
    pub id: LeaseId,
    /// The key it was granted on.
    pub key_id: KeyId,
    /// Increases with every lease granted on the key, so downstream systems can
    /// reject a write from a holder that has been superseded.
    pub fencing_token: u64,
    /// When the lease ends unless renewed, on the store's clock.
    pub expires_at: Timestamp,
}

/// What an allowed acquire returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseGrant {
    /// The lease.
    pub lease: Lease,
    /// The verify-style grant for the charge the acquire made.
    pub grant: Grant,
}

/// The outcome of a renew.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum Renewal {
    /// The lease now ends at this instant of the store's clock.
    Renewed {
        /// The new end of the lease.
        expires_at: Timestamp,
    },
    /// The lease is over; stop the work it covered.
    Lost(LeaseLost),
}

/// Why a lease can no longer be renewed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum LeaseLost {
    /// The key was revoked.
    Revoked,
    /// The key's expiry passed.
    KeyExpired,
    /// The lease's own time ran out, or it was released, or it never existed.
    Gone,
}

/// How a revoke ended. Check `drain`: a lease that outlived the drain timeout is
/// still being used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Revocation {
    /// False when the key was already revoked (revoke is idempotent).
    pub newly_revoked: bool,
    /// Whether every lease granted before the revoke ended in time.
    pub drain: Drain,
}

/// Whether a revoke saw every earlier lease end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Drain {
    /// No lease granted before the revoke is still live.
    Drained,
    /// The drain timeout passed with this many leases still live.
    TimedOut {
        /// Leases still live when the revoke gave up waiting.
        outstanding: u64,
    },
}

/// A snapshot of a key, never its secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyInfo {
    /// The key.
    pub id: KeyId,
    /// Who it belongs to.
    pub subject: String,
    /// Its labels.
    pub metadata: BTreeMap<String, String>,
    /// Its version.
    pub version: u64,
    /// When it was issued.
    pub created_at: Timestamp,
    /// When it expires, if ever.
    pub expires_at: Option<Timestamp>,
    /// When it was revoked, if it was.
    pub revoked_at: Option<Timestamp>,
    /// Until when the secret before the last rotation still works, if it does.
    pub previous_valid_until: Option<Timestamp>,
    /// Allowed verifies and acquires so far.
    pub uses: u64,
    /// The quota it was issued with.
    pub quota: Option<u64>,
    /// Credits left.
    pub remaining_quota: Option<u64>,
    /// Its rate limit.
    pub rate_limit: Option<RateLimit>,
    /// Leases not yet released or expired.
    pub active_leases: u64,
    /// The last fencing token granted (0 before the first lease).
    pub fencing_token: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdict_accessors_agree_with_the_variant() {
        let allowed: Verdict<u8> = Verdict::Allowed(7);
        assert_eq!(allowed.allowed(), Some(&7));
        assert!(allowed.denial().is_none());
        assert_eq!(allowed.into_result(), Ok(7));
        let denial = Denial {
            reason: DenyReason::Expired,
            id: None,
        };
        let denied: Verdict<u8> = Verdict::Denied(denial.clone());
        assert_eq!(denied.allowed(), None);
        assert_eq!(denied.denial(), Some(&denial));
        assert_eq!(denied.into_result(), Err(denial));
    }

    #[test]
    fn specs_are_validated() {
        assert!(KeySpec::new("tenant").validate().is_ok());
        let bad = [
            KeySpec::new("a\0b"),
            KeySpec::new("a").with_metadata("k\0", "v"),
            KeySpec::new("a").with_metadata("k", "v\0"),
            KeySpec::new("x".repeat(MAX_SUBJECT_LEN + 1)),
            KeySpec::new("a").with_quota(MAX_CREDITS + 1),
            KeySpec::new("a").with_expiry(Expiry::In(MAX_DURATION + Duration::from_secs(1))),
            KeySpec::new("a").with_rate_limit(RateLimit::new(0, Duration::from_secs(1), 1)),
            KeySpec::new("a").with_rate_limit(RateLimit::new(1, Duration::from_secs(1), 0)),
            KeySpec::new("a").with_rate_limit(RateLimit::new(10, Duration::from_micros(5), 1)),
        ];
        for spec in bad {
            assert!(
                matches!(spec.validate(), Err(Error::InvalidArgument { .. })),
                "{spec:?} accepted"
            );
        }
        let mut many = KeySpec::new("a");
        for i in 0..=MAX_METADATA_ENTRIES {
            many = many.with_metadata(i.to_string(), "v");
        }
        assert!(many.validate().is_err());
    }
}
