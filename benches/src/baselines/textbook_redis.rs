//! `textbook-redis`: the common non-atomic rate limit. `GET` the key and its window
//! counter, decide on the values read, then a pipeline of `INCR` + `EXPIRE`.
//!
//! Two round trips per verify, and a race: between a client's read and its `INCR`,
//! other clients read the same count, so under concurrency more requests than the
//! limit get through. [`crate::over_limit`] counts how many.
//!
//! Each key is a string holding the digest of the API key (`<ns>:tb:<id>`) and a
//! fixed-window counter (`<ns>:tb:<id>:n`, expiring after the window). The read is
//! one `MGET` of both.

use std::sync::Arc;

use keylatch::{KeyCodec, KeyDigest, KeyId};
use redis::aio::ConnectionManager;

use super::SPREAD_KEYS;
use crate::driver::{BenchError, FastRng, Outcome, Workload};
use crate::over_limit::Limited;

/// The length of the fixed window, in seconds.
const WINDOW_SECS: i64 = 60;

/// The textbook limiter: a connection, the namespace, and the per-window limit.
#[derive(Debug)]
pub struct TextbookRedis {
    conn: ConnectionManager,
    codec: KeyCodec,
    namespace: String,
    limit: u64,
    keys: Vec<String>,
}

impl TextbookRedis {
    /// A limiter allowing `limit` requests per key and window, with `keys` keys
    /// stored under `namespace`.
    pub async fn setup(
        conn: ConnectionManager,
        namespace: &str,
        limit: u64,
        keys: usize,
    ) -> Result<Arc<Self>, BenchError> {
        let mut tb = TextbookRedis {
            conn,
            codec: KeyCodec::default(),
            namespace: namespace.to_owned(),
            limit,
            keys: Vec::new(),
        };
        tb.keys = tb.store_keys(keys).await?;
        Ok(Arc::new(tb))
    }

    /// A limiter for speed runs: 10 000 keys and a limit never reached.
    pub async fn for_speed(
        conn: ConnectionManager,
        namespace: &str,
    ) -> Result<Arc<Self>, BenchError> {
        Self::setup(conn, namespace, u64::MAX, SPREAD_KEYS).await
    }

    fn record(&self, id: &KeyId) -> String {
        format!("{}:tb:{}", self.namespace, id.as_str())
    }

    fn counter(&self, id: &KeyId) -> String {
        format!("{}:tb:{}:n", self.namespace, id.as_str())
    }

    async fn store_keys(&self, n: usize) -> Result<Vec<String>, BenchError> {
        let mut plain = Vec::with_capacity(n);
        let mut conn = self.conn.clone();
        for chunk in (0..n).collect::<Vec<_>>().chunks(1000) {
            let mut pipe = redis::pipe();
            for _ in chunk {
                let id = KeyId::random();
                let minted = self.codec.generate(&id);
                pipe.set(self.record(&id), minted.digest.as_bytes().as_slice())
                    .ignore();
                plain.push(minted.key.expose_secret().to_owned());
            }
            pipe.query_async::<()>(&mut conn).await?;
        }
        Ok(plain)
    }

    /// One textbook check: true when allowed (and counted).
    pub async fn verify(&self, key: &str) -> Result<bool, BenchError> {
        let Ok(presented) = self.codec.parse(key) else {
            return Ok(false);
        };
        let counter = self.counter(&presented.id);
        let mut conn = self.conn.clone();
        let (digest, count): (Option<Vec<u8>>, Option<u64>) = redis::cmd("MGET")
            .arg(self.record(&presented.id))
            .arg(&counter)
            .query_async(&mut conn)
            .await?;
        let known = digest
            .and_then(|d| <[u8; 32]>::try_from(d).ok())
            .is_some_and(|d| KeyDigest(d).ct_eq(&presented.digest));
        // The decision is made on the count as it was read; by the time INCR runs,
        // other clients may have read the same count. That is the race.
        if !known || count.unwrap_or(0) >= self.limit {
            return Ok(false);
        }
        redis::pipe()
            .incr(&counter, 1)
            .ignore()
            .expire(&counter, WINDOW_SECS)
            .ignore()
            .query_async::<()>(&mut conn)
            .await?;
        Ok(true)
    }
}

/// `verify_spread` (10 000 keys) or `verify_hot` (one key) on the textbook pattern.
#[derive(Debug)]
pub struct Verify {
    tb: Arc<TextbookRedis>,
    hot: bool,
}

impl Verify {
    /// `verify_spread`.
    pub fn spread(tb: &Arc<TextbookRedis>) -> Self {
        Verify {
            tb: Arc::clone(tb),
            hot: false,
        }
    }

    /// `verify_hot`.
    pub fn hot(tb: &Arc<TextbookRedis>) -> Self {
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
        Ok(if self.tb.verify(key).await? {
            Outcome::Done
        } else {
            Outcome::Denied
        })
    }
}

impl Limited for TextbookRedis {
    fn name(&self) -> &str {
        "textbook-redis"
    }

    /// A fresh key; its limit is the limiter's (`limit` must equal it).
    async fn fresh(&self, limit: u64) -> Result<String, BenchError> {
        if limit != self.limit {
            return Err(format!("this limiter allows {}, not {limit}", self.limit).into());
        }
        let mut keys = self.store_keys(1).await?;
        keys.pop().ok_or_else(|| "no key stored".into())
    }

    async fn attempt(&self, key: &str) -> Result<bool, BenchError> {
        self.verify(key).await
    }
}
