//! keylatch: API key checks without a time-of-check/time-of-use window.
//!
//! Checking an API key and then using it leaves a gap in which the key can be revoked,
//! rotated, expire, hit its rate limit or run out of credit while the request still
//! goes through. keylatch closes that gap: every check and every effect of using a
//! key happen in one atomic step at the store, as the [`AtomicKeyStore`] contract
//! requires of every backend.
//!
//! This crate holds the contract, the key format ([`KeyCodec`]), the values stores
//! take and return, the one [`Error`] type, the [`audit`] events and the [`model`],
//! a pure state machine that states the semantics exactly. Backends live in sibling
//! crates: `keylatch-memory`, `keylatch-postgres`, `keylatch-redis`.
//!
//! ```
//! # async fn demo(store: &keylatch::DynAtomicKeyStore) -> keylatch::Result<()> {
//! use keylatch::{KeySpec, Verdict};
//!
//! let issued = store.issue(&KeySpec::new("tenant-42").with_quota(1_000)).await?;
//! // Hand `issued.key.expose_secret()` to the tenant once; keylatch keeps only a digest.
//! match store.verify(issued.key.expose_secret(), 1).await? {
//!     Verdict::Allowed(grant) => println!("ok, {:?} credits left", grant.remaining_quota),
//!     Verdict::Denied(denial) => println!("denied: {}", denial.reason.as_str()),
//! }
//! # Ok(()) }
//! ```

pub mod audit;
mod error;
mod key;
pub mod model;
mod store;
mod time;
mod types;

pub use error::{BoxError, Error, Result};
pub use key::{
    ApiKey, KeyCodec, KeyDigest, KeyId, MalformedKey, MintedKey, Prefix, PresentedKey, CHECK_LEN,
    DEFAULT_PREFIX, ID_LEN, MAX_KEY_LEN, MAX_PREFIX_LEN, SECRET_LEN,
};
pub use store::{AtomicKeyStore, DynAtomicKeyStore, SharedKeyStore};
pub use time::{duration_micros, Clock, ManualClock, SystemClock, Timestamp};
pub use types::{
    validate_cost, validate_duration, Denial, DenyReason, Drain, Expiry, Grant, IssuedKey, KeyInfo,
    KeySpec, Lease, LeaseGrant, LeaseId, LeaseLost, RateLimit, RateLimitState, Renewal, Revocation,
    Verdict, MAX_CREDITS, MAX_DURATION, MAX_METADATA_ENTRIES, MAX_METADATA_LEN, MAX_SUBJECT_LEN,
};
