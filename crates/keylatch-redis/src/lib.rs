//! keylatch on Redis: every operation is one Lua script that runs atomically on one
//! cluster slot, through either the `redis` crate or `fred`.
//!
//! ```no_run
//! # async fn demo() -> keylatch::Result<()> {
//! use keylatch::{AtomicKeyStore, KeySpec};
//! use keylatch_redis::{Namespace, RedisStore, StoreConfig};
//!
//! let config = StoreConfig::default().namespace(Namespace::new("gateway")?);
//! let store = RedisStore::connect_redis_rs("redis://127.0.0.1:6379/", config).await?;
//! let issued = store.issue(&KeySpec::new("tenant-42").with_quota(1_000)).await?;
//! assert!(store.verify(issued.key.expose_secret(), 1).await?.is_allowed());
//! # Ok(()) }
//! ```
//!
//! # Clients
//!
//! Two adapters run the same scripts through one shared layer that encodes the
//! arguments and decodes the replies; the adapters only move bytes.
//!
//! | feature    | constructor                                            | backend name |
//! |------------|--------------------------------------------------------|--------------|
//! | `redis-rs` | [`RedisStore::connect_redis_rs`], [`RedisStore::from_redis_rs`] (a `ConnectionManager`) | `redis` |
//! | `fred`     | [`RedisStore::connect_fred`], [`RedisStore::from_fred`] (a `Pool`, centralized or clustered) | `fred` |
//!
//! Both features are on by default.
//!
//! # Key layout
//!
//! An API key with id `<id>` lives in at most two Redis keys, both tagged `{<id>}`:
//!
//! - `<ns>:{<id>}:rec`, a hash, the whole record: `d` (digest of the current
//!   secret, hex), `pd`/`pu` (previous digest and the instant, in microseconds, it
//!   stops working), `v` (version), `s` (subject), `m:<name>` (metadata), `c`
//!   (created), `x` (expires), `r` (revoked), `rt`/`rb`/`rr`/`rp` (rate limit: the
//!   emission interval T in µs, burst, rate, period in ns), `tw`/`tr` (GCRA state:
//!   the theoretical arrival time is `tw + tr`), `q`/`qr` (quota and credits left),
//!   `u` (uses), `f` (last fencing token). **It has no TTL**: an expired or revoked
//!   key must still be denied as `Expired` or `Revoked` (not `Unknown`), and
//!   `inspect` must keep answering. Removing old records is an operator's decision.
//! - `<ns>:{<id>}:leases`, a sorted set of lease ids scored by the instant (µs)
//!   each lease ends. Every script that adds to it or moves an end sets its TTL, in
//!   the same script, to the end of its last lease (rounded up to the millisecond),
//!   so it never exists without a TTL and never outlives its leases.
//!
//! Nothing else is ever written. `<ns>` is the [`Namespace`] (default `keylatch`).
//! The plaintext key never reaches Redis: only its SHA-256 (or HMAC) digest does.
//!
//! # The scripts
//!
//! One file per operation in the crate's `lua/` folder, embedded at compile time;
//! each file's header states its KEYS, ARGV and reply. The shared fragments
//! `common.lua` (time, numbers) and `admit.lua` (the checks verify and acquire share)
//! are put in front of the scripts that use them, so no check is written twice. All of them compute exactly
//! what `keylatch::model::KeyRecord` computes, with time from `redis.call('TIME')`
//! (the server's clock, never the caller's).
//!
//! | script        | KEYS          | what it does |
//! |---------------|---------------|--------------|
//! | `issue.lua`   | rec           | creates the record at version 1 unless the id is taken |
//! | `verify.lua`  | rec           | checks secret, revocation, expiry, GCRA, quota in the model's order; charges only when all pass |
//! | `acquire.lua` | rec, leases   | a verify that also prunes ended leases and adds one with the next fencing token |
//! | `renew.lua`   | rec, leases   | extends a live lease unless the key is revoked or expired |
//! | `release.lua` | leases        | removes a lease |
//! | `revoke.lua`  | rec, leases   | sets `r` once (idempotent) and counts live leases |
//! | `leases.lua`  | leases        | read-only: live leases and the earliest end, for a draining revoke |
//! | `rotate.lua`  | rec           | compare-and-set on `v`; keeps the old digest until `now + grace` |
//! | `inspect.lua` | rec, leases   | read-only snapshot, without digests |
//!
//! Lua numbers are doubles. Every stored value is an integer below 2^53 (the core
//! caps quotas and costs at `MAX_CREDITS`), numbers are formatted with `%d` before
//! they reach `redis.call`, and the GCRA state is kept as `tw + tr` so that no single
//! field needs more than 53 bits. Where the model saturates (a huge cost), the
//! script returns the terms and Rust finishes the arithmetic with the model's own
//! integer operations.
//!
//! Calls go out as `EVALSHA`. On `NOSCRIPT` (after `SCRIPT FLUSH`, a restart or a
//! failover) the script is loaded and the call sent again: safe, because `NOSCRIPT`
//! proves the script did not run.
//!
//! # Why it is cluster-safe
//!
//! Every key a script touches is passed in KEYS (no script builds a key name), and
//! all of one API key's keys share the hash tag `{<id>}`, so every call runs on a
//! single slot: no `CROSSSLOT`, and the script is atomic on the node that owns the
//! slot. A unit test checks the slot of every key of every script call. A script
//! that is missing on the node that answered is loaded on that node (fred routes the
//! load by the call's slot).
//!
//! # Nothing is charged twice
//!
//! A request is sent once. A timeout or a dropped connection after sending is
//! [`keylatch::Error::OutcomeUnknown`] and is never resent: neither this crate nor
//! the client configuration it uses replays it (fred: one write attempt per
//! command; redis: a `ConnectionManager` fails the request and reconnects for the
//! next one). A connection refused before sending is
//! [`keylatch::Error::Unavailable`]; an error reply from Redis is
//! [`keylatch::Error::Backend`]. None of them is ever an allowed verdict.
//!
//! The `redis` crate's cluster client (`cluster-async`) resends requests that were
//! in flight when a connection dropped, and its retry setting also governs
//! redirects; it is therefore not offered here. On a cluster, use the fred adapter
//! (`redis-cluster://` URL). Making the consuming scripts idempotent (a request id
//! remembered under the key's tag with a TTL) would make any client safe and would
//! let callers retry after `OutcomeUnknown`; it needs a request id in the
//! `AtomicKeyStore` API.
//!
//! # Durability: what a revocation survives
//!
//! A revoke returns once the primary ran the script: from then on no verify,
//! acquire or renew *on that primary* succeeds (linearizable). Whether the
//! revocation survives a crash depends on Redis's persistence:
//!
//! | configuration | a revocation survives |
//! |---------------|-----------------------|
//! | `appendonly no`, no `save` | nothing: a restart forgets every key |
//! | RDB snapshots only (`save …`) | a restart loses everything since the last snapshot, revocations included |
//! | `appendonly yes`, `appendfsync everysec` (Redis's default for AOF) | a process crash; a power loss or kernel crash can lose about the last second |
//! | `appendonly yes`, `appendfsync always` | a crash or power loss of the primary: the AOF is fsynced before the reply is sent |
//!
//! Replication is asynchronous: a primary acknowledges a revoke before its replicas
//! have it, and a failover to a replica that missed it loses it, whatever the AOF
//! setting. `WAIT` after the script makes this less likely but is best effort.
//! So the honest promise is: linearizable revocation without failover; across a
//! failover, best effort. The script cache is not replicated either (a promoted
//! replica answers `NOSCRIPT`, which the reload handles).
//!
//! Recommended: `appendonly yes` with `appendfsync always` for keys whose revocation
//! must survive a crash, `maxmemory-policy noeviction` (an evicting policy could
//! drop a record, and with it a revocation), and no replica promotion you cannot
//! afford to lose the last writes to. Where a revocation must never be lost, use
//! the PostgreSQL backend.

// Without a client feature the crate has no constructor, so the shared layer is
// unused; it must still build (the workspace declares the crate without defaults).
#![cfg_attr(not(any(feature = "redis-rs", feature = "fred")), allow(dead_code))]

mod layout;
mod scripts;
mod store;
mod transport;
mod wire;

#[cfg(feature = "fred")]
mod fred_adapter;
#[cfg(feature = "redis-rs")]
mod redis_rs;

pub use layout::{cluster_slot, Namespace, MAX_NAMESPACE_LEN};
pub use store::{RedisStore, StoreConfig};

/// The embedded Lua scripts, for inspection and tooling: their names, sources and
/// SHA-1s.
pub mod lua {
    pub use crate::scripts::{all, Script};
}
