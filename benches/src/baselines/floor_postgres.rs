//! `floor-postgres`: one bare round trip to PostgreSQL, the least a verify could cost.
//!
//! `update` is a single-row `UPDATE … RETURNING` on a table of the backend's shape,
//! spread uniformly over 10 000 rows like `verify_spread`; `select1` is `SELECT 1`.
//! Both run on the pool the PostgreSQL backend uses.

use std::sync::Arc;

use sqlx::PgPool;

use super::{sql, SPREAD_KEYS};
use crate::driver::{BenchError, FastRng, Outcome, Workload};

const TABLE: &str = include_str!("../../sql/baseline_table.sql");
const FILL: &str = include_str!("../../sql/floor_fill.sql");
const UPDATE: &str = include_str!("../../sql/floor_update.sql");
const SELECT1: &str = include_str!("../../sql/floor_select1.sql");

/// The floor table and its statements.
#[derive(Debug)]
pub struct FloorPostgres {
    pool: PgPool,
    update: String,
    select1: String,
    ids: Vec<String>,
}

impl FloorPostgres {
    /// Creates and fills `"<schema>".floor_keys` (the schema must exist).
    pub async fn setup(pool: PgPool, schema: &str) -> Result<Arc<Self>, BenchError> {
        let table = format!("\"{schema}\".floor_keys");
        sqlx::raw_sql(&sql(TABLE, &table)).execute(&pool).await?;
        sqlx::query(&sql(FILL, &table))
            .bind(SPREAD_KEYS as i32)
            .execute(&pool)
            .await?;
        // Fresh statistics, as the backend's table gets from its own inserts.
        sqlx::raw_sql(&format!("ANALYZE {table}"))
            .execute(&pool)
            .await?;
        Ok(Arc::new(FloorPostgres {
            pool,
            update: sql(UPDATE, &table),
            select1: SELECT1.to_owned(),
            ids: (0..SPREAD_KEYS).map(|i| format!("f{i:011}")).collect(),
        }))
    }
}

/// The `update` workload.
#[derive(Debug)]
pub struct Update(pub Arc<FloorPostgres>);

impl Workload for Update {
    type Task = FastRng;

    async fn prepare(&self, ops: &[u64]) -> Result<Vec<FastRng>, BenchError> {
        Ok((0..ops.len()).map(|i| FastRng::new(i as u64)).collect())
    }

    async fn op(&self, rng: &mut FastRng) -> Result<Outcome, BenchError> {
        let f = &self.0;
        let id = &f.ids[rng.below(f.ids.len())];
        sqlx::query(&f.update).bind(id).fetch_one(&f.pool).await?;
        Ok(Outcome::Done)
    }
}

/// The `select1` workload.
#[derive(Debug)]
pub struct Select1(pub Arc<FloorPostgres>);

impl Workload for Select1 {
    type Task = ();

    async fn prepare(&self, ops: &[u64]) -> Result<Vec<()>, BenchError> {
        Ok(vec![(); ops.len()])
    }

    async fn op(&self, _: &mut ()) -> Result<Outcome, BenchError> {
        sqlx::query(&self.0.select1).fetch_one(&self.0.pool).await?;
        Ok(Outcome::Done)
    }
}
