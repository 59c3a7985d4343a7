//! `textbook-postgres`: the check-then-charge pattern made safe with a row lock,
//! `BEGIN; SELECT … FOR UPDATE; UPDATE …; COMMIT`, four round trips per verify.
//!
//! The client parses and digests the key with keylatch's own codec (the same CPU work
//! as the backend), reads and locks the row, decides (digest, revocation, expiry,
//! quota), charges and commits. It is correct under concurrency, because the row lock
//! serialises the read and the write; what it costs is the extra round trips, and on
//! a hot key the lock held across them.

use std::sync::Arc;

use keylatch::{KeyCodec, KeyDigest, KeyId};
use sqlx::{PgPool, Row};

use super::{sql, SPREAD_KEYS};
use crate::driver::{BenchError, FastRng, Outcome, Workload};
use crate::over_limit::Limited;

const TABLE: &str = include_str!("../../sql/baseline_table.sql");
const INSERT: &str = include_str!("../../sql/textbook_insert.sql");
const SELECT: &str = include_str!("../../sql/textbook_select.sql");
const CHARGE: &str = include_str!("../../sql/textbook_charge.sql");

/// Credits of the keys used for speed: never exhausted within a run.
const UNLIMITED: i64 = 1_000_000_000_000;

/// The textbook table, its statements and the keys issued into it.
#[derive(Debug)]
pub struct TextbookPostgres {
    pool: PgPool,
    codec: KeyCodec,
    insert: String,
    select: String,
    charge: String,
    keys: Vec<String>,
}

impl TextbookPostgres {
    /// Creates `"<schema>".textbook_keys` and inserts 10 000 keys with a quota that
    /// never runs out.
    pub async fn setup(pool: PgPool, schema: &str) -> Result<Arc<Self>, BenchError> {
        let table = format!("\"{schema}\".textbook_keys");
        sqlx::raw_sql(&sql(TABLE, &table)).execute(&pool).await?;
        let mut tb = TextbookPostgres {
            pool,
            codec: KeyCodec::default(),
            insert: sql(INSERT, &table),
            select: sql(SELECT, &table),
            charge: sql(CHARGE, &table),
            keys: Vec::new(),
        };
        tb.keys = tb.insert_keys(SPREAD_KEYS, UNLIMITED).await?;
        sqlx::raw_sql(&format!("ANALYZE {table}"))
            .execute(&tb.pool)
            .await?;
        Ok(Arc::new(tb))
    }

    /// Mints `n` keys, stores their digests with `credits` each, and returns the
    /// plaintexts.
    async fn insert_keys(&self, n: usize, credits: i64) -> Result<Vec<String>, BenchError> {
        let mut plain = Vec::with_capacity(n);
        for chunk in (0..n).collect::<Vec<_>>().chunks(1000) {
            let mut ids = Vec::with_capacity(chunk.len());
            let mut digests = Vec::with_capacity(chunk.len());
            for _ in chunk {
                let id = KeyId::random();
                let minted = self.codec.generate(&id);
                ids.push(id.as_str().to_owned());
                digests.push(minted.digest.as_bytes().to_vec());
                plain.push(minted.key.expose_secret().to_owned());
            }
            sqlx::query(&self.insert)
                .bind(&ids)
                .bind(&digests)
                .bind(credits)
                .execute(&self.pool)
                .await?;
        }
        Ok(plain)
    }

    /// One textbook verify of cost `cost`: true when allowed (and charged).
    pub async fn verify(&self, key: &str, cost: i64) -> Result<bool, BenchError> {
        let Ok(presented) = self.codec.parse(key) else {
            return Ok(false);
        };
        let mut tx = self.pool.begin().await?;
        let row = sqlx::query(&self.select)
            .bind(presented.id.as_str())
            .fetch_optional(&mut *tx)
            .await?;
        let allowed = match row {
            None => false,
            Some(row) => {
                let digest: Vec<u8> = row.try_get("digest")?;
                let revoked_at: Option<i64> = row.try_get("revoked_at")?;
                let expires_at: Option<i64> = row.try_get("expires_at")?;
                let remaining: Option<i64> = row.try_get("remaining")?;
                let stored = KeyDigest(digest.try_into().map_err(|_| "digest not 32 bytes")?);
                let now = keylatch::Timestamp::from(std::time::SystemTime::now()).as_micros();
                stored.ct_eq(&presented.digest)
                    && revoked_at.is_none()
                    && expires_at.is_none_or(|e| now < e)
                    && remaining.is_none_or(|r| r >= cost)
            }
        };
        if allowed {
            sqlx::query(&self.charge)
                .bind(presented.id.as_str())
                .bind(cost)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
        } else {
            tx.rollback().await?;
        }
        Ok(allowed)
    }
}

/// `verify_spread` (10 000 keys) or `verify_hot` (one key) on the textbook pattern.
#[derive(Debug)]
pub struct Verify {
    tb: Arc<TextbookPostgres>,
    hot: bool,
}

impl Verify {
    /// `verify_spread`.
    pub fn spread(tb: &Arc<TextbookPostgres>) -> Self {
        Verify {
            tb: Arc::clone(tb),
            hot: false,
        }
    }

    /// `verify_hot`.
    pub fn hot(tb: &Arc<TextbookPostgres>) -> Self {
        Verify {
            tb: Arc::clone(tb),
            hot: true,
        }
    }
}

impl Workload for Verify {
    type Task = FastRng;

    async fn prepare(&self, ops: &[u64]) -> Result<Vec<FastRng>, BenchError> {
        Ok((0..ops.len()).map(|i| FastRng::new(i as u64)).collect())
    }

    async fn op(&self, rng: &mut FastRng) -> Result<Outcome, BenchError> {
        let keys = &self.tb.keys;
        let key = if self.hot {
            &keys[0]
        } else {
            &keys[rng.below(keys.len())]
        };
        Ok(if self.tb.verify(key, 1).await? {
            Outcome::Done
        } else {
            Outcome::Denied
        })
    }
}

impl Limited for TextbookPostgres {
    fn name(&self) -> &str {
        "textbook-postgres"
    }

    async fn fresh(&self, limit: u64) -> Result<String, BenchError> {
        let credits = i64::try_from(limit)?;
        let mut keys = self.insert_keys(1, credits).await?;
        keys.pop().ok_or_else(|| "no key inserted".into())
    }

    async fn attempt(&self, key: &str) -> Result<bool, BenchError> {
        self.verify(key, 1).await
    }
}
