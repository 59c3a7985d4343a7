//! keylatch on PostgreSQL: the [`AtomicKeyStore`](keylatch::AtomicKeyStore) contract
//! with every operation as one SQL statement, sent in one round trip.
//!
//! ```no_run
//! # async fn demo() -> keylatch::Result<()> {
//! use keylatch::{AtomicKeyStore, KeySpec};
//! use keylatch_postgres::{PgStore, PgStoreOptions, Schema};
//!
//! let options = PgStoreOptions::new().schema(Schema::new("keylatch")?);
//! // Creates the schema and its tables on first connect (see "Migrations").
//! let store = PgStore::connect("postgres://app@127.0.0.1/app", options).await?;
//! let issued = store.issue(&KeySpec::new("tenant-42").with_quota(1_000)).await?;
//! let verdict = store.verify(issued.key.expose_secret(), 1).await?;
//! # Ok(()) }
//! ```
//!
//! # Why one statement per operation
//!
//! The textbook way to check and charge a key is `BEGIN; SELECT … FOR UPDATE;` (check
//! in the application) `UPDATE …; COMMIT`: four round trips, with the row lock held
//! across three of them, so every request on a popular key queues behind network
//! latency. The cheaper-looking alternative, reading the row, deciding, and writing it
//! back without the lock, double-spends credits under parallel requests; a rotation
//! `UPDATE` that matches no row and goes unnoticed mints one key per caller.
//!
//! Here every operation is one statement whose common table expressions do, in order:
//! lock the key row (`FOR NO KEY UPDATE`), read the server's clock
//! (`clock_timestamp()`, after the lock is held, so an operation that queued behind
//! another never happens "earlier" than it), decide exactly as
//! [`keylatch::model::KeyRecord`] does (check order, GCRA in integer microseconds,
//! quota, leases, rotation grace), and write only when the decision is to allow, in
//! the same statement. The row lock is held for the statement's execution on the
//! server and released at its commit: no network round trip happens while it is held.
//! The statement answers with one row that carries the verdict, so a write that did
//! not happen (zero rows updated) is visible to the client and reported as `Conflict`,
//! `NotFound` or `Revoked`, never as success; an "allowed" without its write is an
//! error (fail closed).
//!
//! | operation | statement | locks, in order | round trips |
//! |---|---|---|---|
//! | issue | `sql/issue.sql` | the new row | 1 |
//! | verify | `sql/admit.sql` + `sql/verify.sql` | key row | 1 |
//! | acquire | `sql/admit.sql` + `sql/acquire.sql` | key row, then its dead lease rows (pruned) and the new one | 1 |
//! | renew | `sql/renew.sql` | key row (`FOR SHARE`), then the lease row | 1 |
//! | release | `sql/release.sql` | the lease row | 1 |
//! | revoke | `sql/revoke.sql`, then `sql/drain.sql` while leases are live | key row | 1, plus one per look at the leases |
//! | rotate | `sql/rotate.sql` | key row | 1 |
//! | inspect | `sql/inspect.sql` | none (one snapshot) | 1 |
//!
//! A statement is prepared once per pooled connection (one extra round trip, the
//! first time); after that each call is a single Bind/Execute/Sync exchange. The
//! `tests/wire.rs` test counts this through a protocol-reading proxy. sqlx's pool also
//! pings a connection when it takes it back, in a task of its own after the operation
//! has returned; pools the store builds do not ping again before handing a connection
//! out unless it sat idle for a second or more.
//!
//! A malformed or oversized key is denied by [`keylatch::KeyCodec::parse`] before any
//! I/O, and every argument is validated before a statement is sent.
//!
//! # Schema
//!
//! Two tables in a configurable schema ([`Schema`], default `keylatch`). Instants are
//! `bigint` microseconds since the Unix epoch on the server's clock, the model's unit,
//! so the GCRA arithmetic is exact and any [`keylatch::Timestamp`] round-trips.
//!
//! ```text
//! keys                                        leases
//! ─────────────────────────────────           ──────────────────────────────────
//! id               text  PK (COLLATE "C")  ◄── key_id      text  PK part 1, FK → keys.id
//! subject          text                        lease_id    text  PK part 2
//! metadata         jsonb                       expires_at  bigint
//! version          bigint                      index: the primary key (key_id, lease_id),
//! digest           bytea (32)                    which also serves every per-key lookup
//! prev_digest      bytea (32) | NULL
//! prev_valid_until bigint | NULL               A lease whose expires_at has passed is dead
//! created_at       bigint                      even while its row is still there; acquire
//! expires_at       bigint | NULL               prunes its key's dead rows.
//! revoked_at       bigint | NULL
//! rl_rate          bigint | NULL ┐ rate limit, all or none;
//! rl_period_ns     bigint | NULL │ T = floor(floor(period_ns / 1000) / rate) µs
//! rl_burst         bigint | NULL ┘
//! tat              bigint        GCRA theoretical arrival time (0 = never used)
//! quota, remaining bigint | NULL
//! uses             bigint        allowed verifies and acquires
//! fencing          bigint        last fencing token handed out
//! index: the primary key only; fillfactor 80 so that verify's writes (tat, remaining,
//! uses: none indexed) stay HOT updates
//! ```
//!
//! Only the key's digest is stored: SHA-256 of the key, or HMAC-SHA256 when the
//! [`KeyCodec`](keylatch::KeyCodec) has a pepper. The comparison with the presented
//! digest happens in SQL with `bytea` equality, which is not constant-time. That
//! leaks nothing usable: the row is found by the public id, and learning how many
//! leading bytes of a SHA-256 or HMAC digest matched does not help find a secret
//! whose digest matches more (that would take a preimage). Only digests, ids, numbers,
//! subjects and metadata are ever bound, so no server error text can carry a secret.
//!
//! # What the guarantees rely on
//!
//! - **READ COMMITTED row locks.** A statement that waits for a key row's lock reads
//!   the row's newest committed version once it has the lock (PostgreSQL re-checks the
//!   row, "EvalPlanQual"), so it decides on the state its predecessor left. At READ
//!   COMMITTED this never raises a serialization failure (40001).
//! - **One lock order.** Every operation locks its key row before any lease row;
//!   release locks only a lease row and revoke, verify and rotate only the key row. No
//!   cycle of waits can form, so no deadlock (40P01) can arise.
//! - **READ COMMITTED, always.** Pools the store builds set
//!   `default_transaction_isolation = 'read committed'` as a startup option, which
//!   overrides server, database and role defaults at no per-operation cost. And every
//!   statement checks its own isolation level first: on a connection that defaults to
//!   REPEATABLE READ or SERIALIZABLE (a pool passed to [`PgStore::from_pool`]) it reads
//!   and locks nothing, and the store runs it again inside `BEGIN ISOLATION LEVEL READ
//!   COMMITTED` (four round trips; a warning is logged once). Either way, no 40001 or
//!   40P01 reaches the caller; `tests/conformance.rs` runs the whole suite on a
//!   database whose default is SERIALIZABLE through both kinds of pool.
//! - **The server's clock.** Expiry, grace periods, rate limits and leases are
//!   measured with `clock_timestamp()` on the server, never the caller's clock.
//! - **Never replayed.** The store sends a statement once. A failure before sending
//!   (no connection) is [`keylatch::Error::Unavailable`]; a lost connection or a
//!   missing reply within [`PgStoreOptions::request_timeout`] after sending is
//!   [`keylatch::Error::OutcomeUnknown`] (the statement may have committed) and the
//!   connection is closed rather than reused; an error reply is
//!   [`keylatch::Error::Backend`] (the statement was rolled back). A pooled
//!   connection that died within a second of its last use is found out only by the
//!   statement sent on it, which is then reported as `OutcomeUnknown`: the price of
//!   not pinging before every operation.
//!
//! # Durability
//!
//! Revocations, rotations and every charge (verify, acquire) are committed
//! synchronously: an acknowledged revoke, charge or fencing token is in the server's
//! WAL on disk (and on its synchronous standbys, where `synchronous_standby_names`
//! names some), so a crash can neither give credits back nor hand out a fencing
//! token twice. Where a session runs with `synchronous_commit = off`, or `local`
//! (which does not wait for synchronous standbys), these operations decline and run
//! again in a transaction that turns it back on for themselves (four round trips,
//! with a warning logged once): leave it on, the default, to stay on the
//! one-round-trip path. `remote_write` and `remote_apply` are kept as they are; note
//! that `remote_write` acknowledges once a standby has written the commit to its
//! operating system, not yet to its disk. Renew, release and issue follow the
//! server's setting. A revocation survives a failover
//! only to a standby that had received it: use synchronous replication when that
//! matters.
//!
//! # Revoke and the drain
//!
//! Once the revoke statement has committed, no verify, acquire or renew of the key can
//! succeed. The store then watches the key's leases until none is live or the drain
//! timeout passes, with one read-only statement per look: at once, then after pauses
//! that grow from 1 ms to 50 ms, and exactly when the earliest lease is due to end.
//! LISTEN/NOTIFY would wake it sooner after a release, but a NOTIFY in every release
//! serialises all releasing transactions on the server's notification queue; polling
//! costs only the revoking caller. A key that never had a lease is drained at once
//! (its fencing counter, read under the lock, is zero). If the drain cannot be
//! watched (the connection fails), revoke returns
//! [`keylatch::Error::OutcomeUnknown`]: the key is revoked, and revoking again is
//! harmless and reports the drain.
//!
//! # Migrations, and using an existing database
//!
//! The schema is created by the embedded migrations in `migrations/` (sqlx
//! `migrate!`). By default [`PgStore::connect`], [`PgStore::connect_with`] and
//! [`PgStore::from_pool`] run them on first connect; set
//! [`PgStoreOptions::run_migrations`] to `false` and call [`PgStore::migrate`] from a
//! deployment step instead where the application's role may not create tables.
//! Migrating creates the schema if needed and keeps sqlx's `_sqlx_migrations` table in
//! it, so several stores (or applications) can share one database in different
//! schemas; concurrent first connections take turns under an advisory lock.
//!
//! To run against an existing database: create a role that may use (and, for
//! migrations, create) the schema, pick a schema name no other application uses, and
//! either let the store migrate or apply the files in `migrations/` in order yourself
//! with `search_path` set to that schema. Behind a connection pooler that strips
//! startup options (PgBouncer does unless told to ignore them), build the store with
//! [`PgStore::from_pool`] and set `default_transaction_isolation` on the role instead:
//! the store stays correct either way, and on the one-round-trip path when the role's
//! default is READ COMMITTED.
//!
//! Subjects and metadata cannot contain NUL characters (PostgreSQL text cannot hold
//! them): [`keylatch::AtomicKeyStore::issue`] rejects them with
//! [`keylatch::Error::InvalidArgument`] before any I/O.

mod errors;
mod options;
mod sql;
mod store;

pub use options::{PgStoreOptions, Schema, DEFAULT_SCHEMA};
pub use store::PgStore;

/// The backend's name in audit events, errors and reports.
pub const BACKEND: &str = "postgres";

/// The sqlx this crate is built with, for [`PgStore::connect_with`] and
/// [`PgStore::from_pool`] callers who build their own options or pool.
pub use sqlx;
