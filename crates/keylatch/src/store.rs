//! The `AtomicKeyStore` trait: the contract every backend keeps.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::{
    Grant, IssuedKey, KeyId, KeyInfo, KeySpec, Lease, LeaseGrant, Renewal, Result, Revocation,
    Verdict,
};

/// A store of API keys in which every check and every effect of using a key happen in
/// one atomic step.
///
/// Built for `dyn` use: hold an `Arc<dyn AtomicKeyStore>` ([`SharedKeyStore`]) and swap
/// backends without touching callers.
///
/// # Contract
///
/// Implementors must make each operation below linearizable: it takes effect at one
/// instant between its call and its return, as if no other operation ran at the same
/// time, through every handle and process that shares the backend. Concretely:
///
/// - **verify** checks, in one atomic step, that the key exists with this secret, is
///   not revoked, not expired, within its rate limit and its quota; if all pass it
///   charges `cost` to both and counts one use. A denial changes nothing and creates
///   no state. A malformed key is denied before any I/O.
/// - **revoke**: once it returns `Ok`, no verify, acquire or renew that starts
///   afterwards succeeds. It then waits, up to `drain_timeout`, until every lease
///   granted before it has been released or has expired, and says whether they did.
///   Revoking a revoked key is a no-op that still waits for the drain.
/// - **acquire** is a verify that also grants a lease until `now + ttl`, with a
///   fencing token greater than every earlier one on the key. **renew** extends a
///   lease unless it ended or the key was revoked or expired; **release** ends it.
/// - **rotate** is a compare-and-set on the version: of all calls with the same
///   `expected_version`, at most one succeeds; the others get [`Error::Conflict`].
///   The old secret stops working when rotate returns (zero `grace`) or exactly at
///   the end of `grace`; old and new secret share one rate limit and quota. A revoked
///   key cannot be rotated ([`Error::Revoked`]).
/// - **inspect** returns a snapshot, never a secret.
///
/// Time is the store's own clock (a remote server's, never the caller's). A backend
/// failure is an [`Error`], never an allowed verdict (fail closed); a request whose
/// outcome is unknown is reported as [`Error::OutcomeUnknown`] and never replayed, so
/// nothing is charged twice for one call. Every verify, acquire, revoke and rotate
/// emits an audit event (see [`crate::audit`]). No secret is ever logged or returned
/// except the plaintext from issue and rotate.
///
/// The `keylatch-conformance` crate checks every line of this contract by racing
/// operations against each other on a live backend.
///
/// [`Error`]: crate::Error
/// [`Error::Conflict`]: crate::Error::Conflict
/// [`Error::Revoked`]: crate::Error::Revoked
/// [`Error::OutcomeUnknown`]: crate::Error::OutcomeUnknown
#[async_trait]
pub trait AtomicKeyStore: Send + Sync + fmt::Debug + 'static {
    /// The backend's short name (`memory`, `postgres`, `redis`, `fred`, …).
    fn backend(&self) -> &'static str;

    /// Issues a new key at version 1. The plaintext is in the result, and nowhere else.
    async fn issue(&self, spec: &KeySpec) -> Result<IssuedKey>;

    /// Checks `key` and, if every check passes, charges `cost` (see the contract).
    async fn verify(&self, key: &str, cost: u64) -> Result<Verdict<Grant>>;

    /// Verifies `key`, charges `cost` and grants a lease for `ttl`.
    async fn acquire(&self, key: &str, cost: u64, ttl: Duration) -> Result<Verdict<LeaseGrant>>;

    /// Extends `lease` to `ttl` from now, unless it or its key is over.
    async fn renew(&self, lease: &Lease, ttl: Duration) -> Result<Renewal>;

    /// Ends `lease`. Releasing an ended or unknown lease is not an error.
    async fn release(&self, lease: &Lease) -> Result<()>;

    /// Revokes the key, then waits up to `drain_timeout` for its earlier leases to end.
    async fn revoke(&self, id: &KeyId, drain_timeout: Duration) -> Result<Revocation>;

    /// Replaces the key's secret if it is at `expected_version`; the old secret keeps
    /// working for `grace`. Returns the new plaintext and version.
    async fn rotate(&self, id: &KeyId, expected_version: u64, grace: Duration)
        -> Result<IssuedKey>;

    /// A snapshot of the key.
    async fn inspect(&self, id: &KeyId) -> Result<KeyInfo>;
}

/// A store behind `dyn`, the way callers hold one.
pub type DynAtomicKeyStore = dyn AtomicKeyStore;

/// A shareable handle on any store.
pub type SharedKeyStore = Arc<dyn AtomicKeyStore>;
