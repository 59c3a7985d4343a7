//! `PgStore`: the AtomicKeyStore contract on PostgreSQL.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use keylatch::{
    audit, duration_micros, validate_cost, validate_duration, AtomicKeyStore, Denial, DenyReason,
    Drain, Error, Expiry, Grant, IssuedKey, KeyId, KeyInfo, KeySpec, Lease, LeaseGrant, LeaseId,
    LeaseLost, RateLimit, RateLimitState, Renewal, Result, Revocation, Timestamp, Verdict,
};
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgArguments, PgConnectOptions, PgPool, PgPoolOptions, PgRow};
use sqlx::{Connection, Postgres, Row};

use crate::errors::{after_send, bad_reply, no_reply, not_sent};
use crate::options::{PgStoreOptions, Schema};
use crate::sql::Statements;
use crate::BACKEND;

/// The embedded migrations (files under the crate's `migrations/`).
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!();

/// The startup option that pins the isolation level of every connection a store
/// opens itself. The backslash escapes the space for PostgreSQL's option parser.
const READ_COMMITTED_OPTION: (&str, &str) = ("default_transaction_isolation", "read\\ committed");

/// What opens the fallback transaction (see [`PgStore::run`]), sent as one simple
/// query: READ COMMITTED, and a synchronous commit where the session has turned it
/// off or down to `local` (which does not wait for synchronous standbys); a setting
/// that waits for them (`remote_write`, `remote_apply`) is left alone.
const BEGIN_READ_COMMITTED: &str = "BEGIN ISOLATION LEVEL READ COMMITTED; \
    SELECT set_config('synchronous_commit', 'on', true) \
    WHERE current_setting('synchronous_commit') IN ('off', 'local')";

/// Pooled connections idle at least this long are pinged before use.
const PING_IF_IDLE_FOR: Duration = Duration::from_secs(1);

/// Longest pause between two looks at a draining key's leases.
const MAX_DRAIN_POLL: Duration = Duration::from_millis(50);
/// First pause between two looks at a draining key's leases.
const MIN_DRAIN_POLL: Duration = Duration::from_millis(1);

/// Tries at a fresh random id when issue draws one that is taken. With 71 random
/// bits a second draw is already practically impossible.
const ISSUE_ATTEMPTS: usize = 3;

type PgQuery<'q> = sqlx::query::Query<'q, Postgres, PgArguments>;

/// The AtomicKeyStore contract on PostgreSQL: every operation one statement, sent in
/// one round trip. See the crate docs for the schema and the reasoning.
///
/// Cheap to clone: clones share one pool. Handles built independently on the same
/// database and schema see each other's effects at once, because all state is in the
/// database.
#[derive(Clone)]
pub struct PgStore {
    inner: Arc<Inner>,
}

struct Inner {
    pool: PgPool,
    schema: Schema,
    codec: keylatch::KeyCodec,
    sql: Statements,
    request_timeout: Duration,
    /// Whether the READ COMMITTED fallback has been reported yet (once per store).
    fallback_reported: AtomicBool,
}

impl fmt::Debug for PgStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The pool's connect options hold the password: show only what is harmless.
        f.debug_struct("PgStore")
            .field("schema", &self.inner.schema)
            .field("codec", &self.inner.codec)
            .field("pool_size", &self.inner.pool.size())
            .finish_non_exhaustive()
    }
}

impl PgStore {
    /// Connects to the database at `url` (`postgres://user:password@host:port/db`,
    /// with any of libpq's URL parameters). See [`PgStore::connect_with`].
    pub async fn connect(url: &str, options: PgStoreOptions) -> Result<PgStore> {
        // The URL can hold a password, so the parse error (which may quote it) is
        // dropped rather than passed on.
        let connect: PgConnectOptions = url.parse().map_err(|_| Error::InvalidArgument {
            what: "not a valid PostgreSQL connection URL",
        })?;
        Self::connect_with(connect, options).await
    }

    /// Builds a pool of its own from `connect` and opens one connection to check it.
    ///
    /// Every connection of this pool starts with `default_transaction_isolation =
    /// 'read committed'` (a startup option, so it overrides server, database and role
    /// defaults at no cost per operation). Runs the migrations unless
    /// [`PgStoreOptions::run_migrations`] turned that off.
    pub async fn connect_with(
        connect: PgConnectOptions,
        options: PgStoreOptions,
    ) -> Result<PgStore> {
        let connect = connect.options([READ_COMMITTED_OPTION]);
        let pool = PgPoolOptions::new()
            .max_connections(options.max_connections)
            .acquire_timeout(options.acquire_timeout)
            // sqlx pings every connection it hands out by default: a second round trip
            // per operation. Ping only connections that sat idle long enough to have
            // gone stale; a connection that died within that window fails its next
            // statement, which is then reported as OutcomeUnknown, never retried.
            .test_before_acquire(false)
            .before_acquire(|conn, meta| {
                Box::pin(async move {
                    if meta.idle_for >= PING_IF_IDLE_FOR {
                        conn.ping().await?;
                    }
                    Ok(true)
                })
            })
            .connect_with(connect)
            .await
            .map_err(not_sent)?;
        Self::from_pool(pool, options).await
    }

    /// Uses an existing pool (shared with the rest of an application, say). Runs the
    /// migrations unless [`PgStoreOptions::run_migrations`] turned that off.
    ///
    /// The pool's connections may have any default isolation level: every statement
    /// checks that it runs at READ COMMITTED and, where it does not, touches nothing
    /// and is run again inside `BEGIN ISOLATION LEVEL READ COMMITTED` (four round
    /// trips instead of one; a warning is logged once). To stay on the one-round-trip
    /// path, give the pool's connections `default_transaction_isolation = 'read
    /// committed'` (and leave `synchronous_commit` on, or verify, acquire, revoke and rotate take the
    /// same detour), and build the pool with `test_before_acquire(false)`: sqlx's
    /// default pings every connection before handing it out.
    pub async fn from_pool(pool: PgPool, options: PgStoreOptions) -> Result<PgStore> {
        let store = PgStore {
            inner: Arc::new(Inner {
                sql: Statements::new(&options.schema),
                pool,
                schema: options.schema,
                codec: options.codec,
                request_timeout: options.request_timeout,
                fallback_reported: AtomicBool::new(false),
            }),
        };
        if options.run_migrations {
            store.migrate().await?;
        }
        Ok(store)
    }

    /// Creates the schema if needed and applies the embedded migrations that are not
    /// applied yet. Safe to run from many processes at once: they take turns under an
    /// advisory lock. Migration bookkeeping (sqlx's `_sqlx_migrations`) lives in the
    /// store's schema too, so stores in different schemas migrate independently.
    pub async fn migrate(&self) -> Result<()> {
        let mut conn = self.inner.pool.acquire().await.map_err(not_sent)?;
        // The connection gets a different search_path below; it must never go back
        // into the pool, where another statement could inherit it.
        conn.close_on_drop();
        let schema = self.inner.schema.quoted();
        let lock_name = format!("keylatch-postgres migrate {}", self.inner.schema);
        let steps = async {
            // Serialises concurrent first connections on one schema, which would
            // otherwise race on CREATE SCHEMA. Session-level: released when this
            // connection closes, even if a step below fails.
            sqlx::query("SELECT pg_advisory_lock(hashtextextended($1, 0))")
                .bind(&lock_name)
                .execute(&mut *conn)
                .await?;
            // Looked up first: CREATE SCHEMA IF NOT EXISTS checks the right to create
            // schemas before it checks existence, and a role that was given an
            // existing schema need not have that right.
            let exists: bool =
                sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)")
                    .bind(self.inner.schema.as_str())
                    .fetch_one(&mut *conn)
                    .await?;
            if !exists {
                // The schema name is a validated identifier; it cannot be a bound value.
                sqlx::query(&format!("CREATE SCHEMA {schema}"))
                    .execute(&mut *conn)
                    .await?;
            }
            sqlx::query(&format!("SET search_path TO {schema}"))
                .execute(&mut *conn)
                .await?;
            // run_direct on the connection itself: `run` goes through `Acquire`,
            // whose future is not Send for every lifetime, and a store must be
            // buildable inside tokio::spawn.
            MIGRATOR.run_direct(&mut *conn).await.map_err(|e| match e {
                sqlx::migrate::MigrateError::Execute(inner) => inner,
                other => sqlx::Error::Migrate(Box::new(other)),
            })?;
            sqlx::query("SELECT pg_advisory_unlock(hashtextextended($1, 0))")
                .bind(&lock_name)
                .execute(&mut *conn)
                .await?;
            Ok::<(), sqlx::Error>(())
        };
        steps.await.map_err(|e| match e {
            sqlx::Error::Database(_) | sqlx::Error::Migrate(_) => Error::Backend {
                backend: BACKEND,
                source: Box::new(e),
            },
            // DDL runs in transactions: a lost connection leaves the schema either
            // migrated or not, and running migrate again settles which.
            other => Error::OutcomeUnknown {
                backend: BACKEND,
                source: Box::new(other),
            },
        })
    }

    /// The pool the store runs on.
    pub fn pool(&self) -> &PgPool {
        &self.inner.pool
    }

    /// The schema the store's tables are in.
    pub fn schema(&self) -> &Schema {
        &self.inner.schema
    }

    /// Runs one statement and returns its one row.
    ///
    /// Every statement first checks that its transaction is READ COMMITTED (verify,
    /// acquire, revoke and rotate also that it will commit synchronously) and, when it is not, reads
    /// and locks nothing and answers `gate_ok = false`. That happens only on
    /// connections whose defaults differ (pools given to [`PgStore::from_pool`], or a
    /// server with `synchronous_commit = off` or `local`); there the statement runs again inside
    /// an explicit READ COMMITTED, synchronously committing transaction, so that a
    /// serialization failure can never reach the caller and an acknowledged
    /// revocation is durable, whatever the session's defaults.
    async fn run<'q>(
        &self,
        sql: &'q str,
        bind: impl Fn(PgQuery<'q>) -> PgQuery<'q>,
    ) -> Result<PgRow> {
        let mut conn = self.inner.pool.acquire().await.map_err(not_sent)?;
        let row = match self.fetch_row(&mut conn, bind(sqlx::query(sql))).await {
            Ok(row) => row,
            Err(e) => {
                Self::discard_unless_clean(&mut conn, &e);
                return Err(e);
            }
        };
        if gate_ok(&row)? {
            return Ok(row);
        }
        self.report_fallback();
        let result = self
            .run_in_read_committed(&mut conn, bind(sqlx::query(sql)))
            .await;
        if let Err(e) = &result {
            Self::discard_unless_clean(&mut conn, e);
        }
        result
    }

    /// Sends one statement and waits for its whole reply. The server sends the result
    /// row before the statement's implicit transaction commits; sqlx's `fetch_one`
    /// reads on through the ReadyForQuery that follows the commit (and surfaces a
    /// failed commit as an error), so a verdict is only ever returned once it is
    /// committed. `tests/wire.rs` holds that ReadyForQuery back to check this.
    async fn fetch_row(
        &self,
        conn: &mut PoolConnection<Postgres>,
        query: PgQuery<'_>,
    ) -> Result<PgRow> {
        match tokio::time::timeout(self.inner.request_timeout, query.fetch_one(&mut **conn)).await {
            Ok(Ok(row)) => Ok(row),
            Ok(Err(e)) => Err(after_send(e)),
            Err(_) => Err(no_reply()),
        }
    }

    /// The fallback of [`PgStore::run`]: BEGIN, the statement, COMMIT.
    async fn run_in_read_committed(
        &self,
        conn: &mut PoolConnection<Postgres>,
        query: PgQuery<'_>,
    ) -> Result<PgRow> {
        let limit = self.inner.request_timeout;
        let mut tx = match tokio::time::timeout(limit, conn.begin_with(BEGIN_READ_COMMITTED)).await
        {
            Ok(Ok(tx)) => tx,
            Ok(Err(e)) => return Err(not_sent(e)),
            Err(_) => return Err(not_sent("no reply to BEGIN within the request timeout")),
        };
        // Until COMMIT is sent nothing can be applied: a failure here rolls back (the
        // dropped transaction sends ROLLBACK, a dropped connection aborts it).
        let row = match tokio::time::timeout(limit, query.fetch_one(&mut *tx)).await {
            Ok(Ok(row)) => row,
            Ok(Err(e @ sqlx::Error::Database(_))) => return Err(after_send(e)),
            Ok(Err(e)) => return Err(not_sent(e)),
            Err(_) => return Err(not_sent("no reply within the request timeout; rolled back")),
        };
        if !gate_ok(&row)? {
            return Err(bad_reply(
                "the statement declined to run in a READ COMMITTED, synchronous transaction",
            ));
        }
        match tokio::time::timeout(limit, tx.commit()).await {
            Ok(Ok(())) => Ok(row),
            Ok(Err(e)) => Err(after_send(e)),
            Err(_) => Err(no_reply()),
        }
    }

    /// A connection that failed other than by an error reply may be mid-message or
    /// mid-transaction: close it instead of handing it to the next operation.
    fn discard_unless_clean(conn: &mut PoolConnection<Postgres>, e: &Error) {
        let clean = matches!(e, Error::Backend { source, .. }
            if matches!(source.downcast_ref::<sqlx::Error>(), Some(sqlx::Error::Database(_))));
        if !clean {
            conn.close_on_drop();
        }
    }

    fn report_fallback(&self) {
        if !self.inner.fallback_reported.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                target: "keylatch_postgres",
                schema = %self.inner.schema,
                "the pool's connections do not default to READ COMMITTED (or, for verify, \
                 acquire, revoke and rotate, run with synchronous_commit = off or local): such operations run in an \
                 explicit READ COMMITTED, synchronously committing transaction, four round \
                 trips instead of one. Set default_transaction_isolation=read committed on \
                 the pool's connections to stay on the fast path."
            );
        }
    }

    /// The cost as the statements bind it, checked before any I/O.
    fn checked_cost(cost: u64) -> Result<i64> {
        validate_cost(cost)?;
        // validate_cost bounds the cost to 2^53 - 1, so it fits.
        i64::try_from(cost).map_err(|_| Error::InvalidArgument {
            what: "cost above 2^53 - 1",
        })
    }

    async fn drain(&self, id: &KeyId, timeout: Duration) -> Result<Drain> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut pause = MIN_DRAIN_POLL;
        loop {
            let row = self
                .run(&self.inner.sql.drain, |q| q.bind(id.as_str()))
                .await?;
            let live: i64 = get(&row, "live")?;
            let next_end_us: Option<i64> = get(&row, "next_end_us")?;
            if live == 0 {
                return Ok(Drain::Drained);
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return Ok(Drain::TimedOut {
                    outstanding: to_u64(live)?,
                });
            }
            // Releases raise no signal (a NOTIFY per release would serialise every
            // releasing transaction on the notification queue), so look again after
            // a short pause that grows while leases stay, and exactly when the
            // earliest lease is due to end, and at the deadline.
            let mut wake = now + pause;
            if let Some(us) = next_end_us {
                wake = wake.min(now + Duration::from_micros(us.max(0) as u64));
            }
            tokio::time::sleep_until(wake.min(deadline)).await;
            pause = (pause * 2).min(MAX_DRAIN_POLL);
        }
    }

    async fn revoke_inner(&self, id: &KeyId, drain_timeout: Duration) -> Result<Revocation> {
        let row = self
            .run(&self.inner.sql.revoke, |q| q.bind(id.as_str()))
            .await?;
        if !get::<bool>(&row, "found")? {
            return Err(Error::NotFound { id: id.clone() });
        }
        let newly_revoked: bool = get(&row, "newly_revoked")?;
        let fencing: i64 = get(&row, "fencing")?;
        // The lease counter was read from the locked, current row: 0 means no lease
        // was ever granted, and none can be now, so there is nothing to wait for.
        let drain = if fencing == 0 {
            Drain::Drained
        } else {
            // The key is revoked whatever happens next. If the drain cannot be
            // watched, say so without claiming that nothing changed: revoking
            // again is safe (idempotent) and reports the drain.
            self.drain(id, drain_timeout).await.map_err(|e| match e {
                Error::OutcomeUnknown { .. } => e,
                Error::Unavailable { source, .. } | Error::Backend { source, .. } => {
                    Error::OutcomeUnknown {
                        backend: BACKEND,
                        source,
                    }
                }
                other => other,
            })?
        };
        Ok(Revocation {
            newly_revoked,
            drain,
        })
    }
}

fn get<'r, T>(row: &'r PgRow, column: &str) -> Result<T>
where
    T: sqlx::Decode<'r, Postgres> + sqlx::Type<Postgres>,
{
    row.try_get(column).map_err(bad_reply)
}

fn gate_ok(row: &PgRow) -> Result<bool> {
    get(row, "gate_ok")
}

fn to_u64(v: i64) -> Result<u64> {
    u64::try_from(v).map_err(|_| bad_reply("a negative count or version"))
}

fn micros(v: i64) -> Result<Duration> {
    Ok(Duration::from_micros(to_u64(v)?))
}

fn deny<T>(reason: DenyReason, id: &KeyId) -> Verdict<T> {
    Verdict::Denied(Denial {
        reason,
        id: Some(id.clone()),
    })
}

/// The verdict of a verify or acquire row, and the grant when it was allowed.
fn grant_from(row: &PgRow, id: &KeyId) -> Result<Verdict<Grant>> {
    let outcome: Option<String> = get(row, "outcome")?;
    let reason = match outcome.as_deref() {
        // No key has this id: the same answer as a wrong secret, so that a caller
        // cannot tell which ids exist.
        None | Some("unknown") => DenyReason::Unknown,
        Some("revoked") => DenyReason::Revoked,
        Some("expired") => DenyReason::Expired,
        Some("rate_limited") => DenyReason::RateLimited {
            retry_after: micros(get(row, "retry_after_us")?)?,
        },
        Some("cost_exceeds_burst") => DenyReason::CostExceedsBurst,
        Some("quota_exhausted") => DenyReason::QuotaExhausted,
        Some("allowed") => {
            // Fail closed: an "allowed" whose charge was not written is no grant.
            if !get::<bool>(row, "charged")? {
                return Err(bad_reply("allowed without a charge"));
            }
            let remaining: Option<i64> = get(row, "remaining")?;
            let burst: Option<i64> = get(row, "rl_burst")?;
            let rate_limit = match burst {
                None => None,
                Some(burst) => Some(RateLimitState {
                    limit: u32::try_from(burst).map_err(|_| bad_reply("burst out of range"))?,
                    remaining: u32::try_from(get::<i64>(row, "rl_remaining")?).unwrap_or(u32::MAX),
                    reset_after: micros(get(row, "reset_after_us")?)?,
                }),
            };
            return Ok(Verdict::Allowed(Grant {
                id: id.clone(),
                subject: get(row, "subject")?,
                version: to_u64(get(row, "version")?)?,
                remaining_quota: remaining.map(to_u64).transpose()?,
                rate_limit,
            }));
        }
        Some(_) => return Err(bad_reply("unknown verify outcome")),
    };
    Ok(deny(reason, id))
}

fn nul_free(spec: &KeySpec) -> Result<()> {
    let has_nul = spec.subject.contains('\0')
        || spec
            .metadata
            .iter()
            .any(|(k, v)| k.contains('\0') || v.contains('\0'));
    if has_nul {
        return Err(Error::InvalidArgument {
            what: "subject and metadata cannot hold NUL characters on PostgreSQL",
        });
    }
    Ok(())
}

#[async_trait]
impl AtomicKeyStore for PgStore {
    fn backend(&self) -> &'static str {
        BACKEND
    }

    async fn issue(&self, spec: &KeySpec) -> Result<IssuedKey> {
        spec.validate()?;
        nul_free(spec)?;
        let metadata =
            serde_json::to_string(&spec.metadata).map_err(|_| Error::InvalidArgument {
                what: "metadata cannot be written as JSON",
            })?;
        let (expires_at, expires_in) = match spec.expiry {
            None => (None, None),
            Some(Expiry::At(t)) => (Some(t.as_micros()), None),
            Some(Expiry::In(d)) => (None, Some(duration_micros(d))),
        };
        let limit = spec.rate_limit.as_ref();
        let rate = limit.map(|l| i64::from(l.rate));
        // validate() bounds the period to 366 days, far inside i64 nanoseconds.
        let period_ns = limit.map(|l| i64::try_from(l.period.as_nanos()).unwrap_or(i64::MAX));
        let burst = limit.map(|l| i64::from(l.burst));
        // validate() bounds the quota to 2^53 - 1.
        let quota = spec.quota.map(|q| i64::try_from(q).unwrap_or(i64::MAX));
        for _ in 0..ISSUE_ATTEMPTS {
            let id = KeyId::random();
            let minted = self.inner.codec.generate(&id);
            let digest = minted.digest.as_bytes().to_vec();
            let row = self
                .run(&self.inner.sql.issue, |q| {
                    q.bind(id.as_str())
                        .bind(spec.subject.as_str())
                        .bind(metadata.as_str())
                        .bind(digest.clone())
                        .bind(expires_at)
                        .bind(expires_in)
                        .bind(rate)
                        .bind(period_ns)
                        .bind(burst)
                        .bind(quota)
                })
                .await?;
            if get::<bool>(&row, "inserted")? {
                return Ok(IssuedKey {
                    key: minted.key,
                    id,
                    version: 1,
                });
            }
        }
        Err(bad_reply("key id collision on every attempt"))
    }

    async fn verify(&self, key: &str, cost: u64) -> Result<Verdict<Grant>> {
        // A malformed or oversized key never reaches the database.
        let Ok(presented) = self.inner.codec.parse(key) else {
            return Ok(audit::malformed("verify", BACKEND));
        };
        let digest = presented.digest.as_bytes().to_vec();
        // Argument errors are audited under the key's id, like every other outcome.
        let result = async {
            let cost = Self::checked_cost(cost)?;
            let row = self
                .run(&self.inner.sql.verify, |q| {
                    q.bind(presented.id.as_str())
                        .bind(digest.clone())
                        .bind(cost)
                })
                .await?;
            grant_from(&row, &presented.id)
        }
        .await;
        audit::checked("verify", BACKEND, &presented.id, &result);
        result
    }

    async fn acquire(&self, key: &str, cost: u64, ttl: Duration) -> Result<Verdict<LeaseGrant>> {
        let Ok(presented) = self.inner.codec.parse(key) else {
            return Ok(audit::malformed("acquire", BACKEND));
        };
        let digest = presented.digest.as_bytes().to_vec();
        let lease_id = LeaseId::random();
        let result = async {
            validate_duration(ttl, "lease ttl longer than 366 days")?;
            let ttl_us = duration_micros(ttl);
            let cost = Self::checked_cost(cost)?;
            let row = self
                .run(&self.inner.sql.acquire, |q| {
                    q.bind(presented.id.as_str())
                        .bind(digest.clone())
                        .bind(cost)
                        .bind(lease_id.as_str())
                        .bind(ttl_us)
                })
                .await?;
            Ok(match grant_from(&row, &presented.id)? {
                Verdict::Denied(d) => Verdict::Denied(d),
                Verdict::Allowed(grant) => {
                    let fencing: Option<i64> = get(&row, "fencing_token")?;
                    let expires: Option<i64> = get(&row, "lease_expires_at")?;
                    let (Some(fencing), Some(expires)) = (fencing, expires) else {
                        return Err(bad_reply("allowed without a lease"));
                    };
                    Verdict::Allowed(LeaseGrant {
                        lease: Lease {
                            id: lease_id.clone(),
                            key_id: presented.id.clone(),
                            fencing_token: to_u64(fencing)?,
                            expires_at: Timestamp::from_micros(expires),
                        },
                        grant,
                    })
                }
            })
        }
        .await;
        audit::checked("acquire", BACKEND, &presented.id, &result);
        result
    }

    async fn renew(&self, lease: &Lease, ttl: Duration) -> Result<Renewal> {
        validate_duration(ttl, "lease ttl longer than 366 days")?;
        let ttl_us = duration_micros(ttl);
        let row = self
            .run(&self.inner.sql.renew, |q| {
                q.bind(lease.key_id.as_str())
                    .bind(lease.id.as_str())
                    .bind(ttl_us)
            })
            .await?;
        let outcome: Option<String> = get(&row, "outcome")?;
        Ok(match outcome.as_deref() {
            None | Some("gone") => Renewal::Lost(LeaseLost::Gone),
            Some("revoked") => Renewal::Lost(LeaseLost::Revoked),
            Some("key_expired") => Renewal::Lost(LeaseLost::KeyExpired),
            Some("renewed") => match get::<Option<i64>>(&row, "expires_at")? {
                Some(us) => Renewal::Renewed {
                    expires_at: Timestamp::from_micros(us),
                },
                None => return Err(bad_reply("renewed without a new end")),
            },
            Some(_) => return Err(bad_reply("unknown renew outcome")),
        })
    }

    async fn release(&self, lease: &Lease) -> Result<()> {
        self.run(&self.inner.sql.release, |q| {
            q.bind(lease.key_id.as_str()).bind(lease.id.as_str())
        })
        .await?;
        Ok(())
    }

    async fn revoke(&self, id: &KeyId, drain_timeout: Duration) -> Result<Revocation> {
        let result = match validate_duration(drain_timeout, "drain timeout longer than 366 days") {
            Ok(()) => self.revoke_inner(id, drain_timeout).await,
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
        let minted = self.inner.codec.generate(id);
        let digest = minted.digest.as_bytes().to_vec();
        // Versions start at 1, so -1 stands for an expected version too large to be
        // any key's: the statement then reports the current one as a conflict.
        let expected = i64::try_from(expected_version).unwrap_or(-1);
        let grace_us = duration_micros(grace);
        let result = async {
            validate_duration(grace, "grace period longer than 366 days")?;
            let row = self
                .run(&self.inner.sql.rotate, |q| {
                    q.bind(id.as_str())
                        .bind(expected)
                        .bind(digest.clone())
                        .bind(grace_us)
                })
                .await?;
            let current: Option<i64> = get(&row, "current_version")?;
            let Some(current) = current else {
                return Err(Error::NotFound { id: id.clone() });
            };
            if get::<Option<bool>>(&row, "revoked")? == Some(true) {
                return Err(Error::Revoked { id: id.clone() });
            }
            match get::<Option<i64>>(&row, "new_version")? {
                Some(v) => to_u64(v),
                // Zero rows written: a conflict, never a success.
                None => Err(Error::Conflict {
                    id: id.clone(),
                    current_version: to_u64(current)?,
                }),
            }
        }
        .await;
        audit::rotated(BACKEND, id, result.as_ref().copied());
        let version = result?;
        Ok(IssuedKey {
            key: minted.key,
            id: id.clone(),
            version,
        })
    }

    async fn inspect(&self, id: &KeyId) -> Result<KeyInfo> {
        let row = self
            .run(&self.inner.sql.inspect, |q| q.bind(id.as_str()))
            .await?;
        if !get::<bool>(&row, "found")? {
            return Err(Error::NotFound { id: id.clone() });
        }
        let metadata: String = get(&row, "metadata")?;
        let metadata: BTreeMap<String, String> =
            serde_json::from_str(&metadata).map_err(bad_reply)?;
        let rate: Option<i64> = get(&row, "rl_rate")?;
        let period_ns: Option<i64> = get(&row, "rl_period_ns")?;
        let burst: Option<i64> = get(&row, "rl_burst")?;
        let rate_limit = match (rate, period_ns, burst) {
            (Some(rate), Some(period_ns), Some(burst)) => Some(RateLimit {
                rate: u32::try_from(rate).map_err(|_| bad_reply("rate out of range"))?,
                period: Duration::from_nanos(to_u64(period_ns)?),
                burst: u32::try_from(burst).map_err(|_| bad_reply("burst out of range"))?,
            }),
            (None, None, None) => None,
            _ => return Err(bad_reply("a partial rate limit")),
        };
        let ts = |v: Option<i64>| v.map(Timestamp::from_micros);
        Ok(KeyInfo {
            id: id.clone(),
            subject: get(&row, "subject")?,
            metadata,
            version: to_u64(get(&row, "version")?)?,
            created_at: Timestamp::from_micros(get(&row, "created_at")?),
            expires_at: ts(get(&row, "expires_at")?),
            revoked_at: ts(get(&row, "revoked_at")?),
            previous_valid_until: ts(get(&row, "previous_valid_until")?),
            uses: to_u64(get(&row, "uses")?)?,
            quota: get::<Option<i64>>(&row, "quota")?.map(to_u64).transpose()?,
            remaining_quota: get::<Option<i64>>(&row, "remaining")?
                .map(to_u64)
                .transpose()?,
            rate_limit,
            active_leases: to_u64(get(&row, "active_leases")?)?,
            fencing_token: to_u64(get(&row, "fencing")?)?,
        })
    }
}
