//! `floor-redis`: one bare round trip to Redis, the least a verify could cost.
//!
//! `evalsha` runs a one-line script (`lua/floor.lua`: `HINCRBY` on one hash) on a key
//! picked uniformly from 10 000, like `verify_spread`; `ping` is `PING`. Both go
//! through the same client and connection settings as the `redis` backend (one
//! `ConnectionManager`, one multiplexed connection).

use std::sync::Arc;

use redis::aio::ConnectionManager;
use redis::Value;

use super::SPREAD_KEYS;
use crate::driver::{BenchError, FastRng, Outcome, Workload};

const FLOOR_LUA: &str = include_str!("../../lua/floor.lua");

/// The floor's connection, script and keys.
#[derive(Debug)]
pub struct FloorRedis {
    conn: ConnectionManager,
    sha: String,
    keys: Vec<String>,
}

impl FloorRedis {
    /// Loads the script and creates the 10 000 hashes under `namespace`.
    pub async fn setup(conn: ConnectionManager, namespace: &str) -> Result<Arc<Self>, BenchError> {
        let mut c = conn.clone();
        let sha: String = redis::cmd("SCRIPT")
            .arg("LOAD")
            .arg(FLOOR_LUA)
            .query_async(&mut c)
            .await?;
        let keys: Vec<String> = (0..SPREAD_KEYS)
            .map(|i| format!("{namespace}:floor:{i}"))
            .collect();
        for chunk in keys.chunks(1000) {
            let mut pipe = redis::pipe();
            for key in chunk {
                pipe.hset(key, "u", 0).ignore();
            }
            pipe.query_async::<()>(&mut c).await?;
        }
        Ok(Arc::new(FloorRedis { conn, sha, keys }))
    }
}

/// The `evalsha` workload.
#[derive(Debug)]
pub struct EvalSha(pub Arc<FloorRedis>);

impl Workload for EvalSha {
    type Task = FastRng;

    async fn prepare(&self, ops: &[u64]) -> Result<Vec<FastRng>, BenchError> {
        Ok((0..ops.len()).map(|i| FastRng::new(i as u64)).collect())
    }

    async fn op(&self, rng: &mut FastRng) -> Result<Outcome, BenchError> {
        let f = &self.0;
        let key = &f.keys[rng.below(f.keys.len())];
        // Built the way the backend's redis adapter builds its calls.
        let mut cmd = redis::cmd("EVALSHA");
        cmd.arg(&f.sha).arg(1).arg(key);
        let mut conn = f.conn.clone();
        cmd.query_async::<Value>(&mut conn).await?;
        Ok(Outcome::Done)
    }
}

/// The `ping` workload.
#[derive(Debug)]
pub struct Ping(pub Arc<FloorRedis>);

impl Workload for Ping {
    type Task = ();

    async fn prepare(&self, ops: &[u64]) -> Result<Vec<()>, BenchError> {
        Ok(vec![(); ops.len()])
    }

    async fn op(&self, _: &mut ()) -> Result<Outcome, BenchError> {
        let mut conn = self.0.conn.clone();
        redis::cmd("PING").query_async::<Value>(&mut conn).await?;
        Ok(Outcome::Done)
    }
}
