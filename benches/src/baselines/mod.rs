//! The baselines every backend is compared with, measured in the same run against the
//! same servers through the same client libraries and connection settings:
//!
//! - [`floor_postgres`], [`floor_redis`]: the physical floor, one round trip doing the
//!   least possible (`update`, `select1`; `evalsha`, `ping`);
//! - [`textbook_postgres`], [`textbook_redis`]: the patterns people write by hand
//!   (`BEGIN; SELECT … FOR UPDATE; UPDATE …; COMMIT`; `GET` then `INCR` + `EXPIRE`);
//! - [`governor`]: the `governor` crate's keyed rate limiter, the in-process reference
//!   for the memory backend's `verify_limited`.
//!
//! Their SQL and Lua live in the package's `sql/` and `lua/` folders, embedded at
//! compile time.

pub mod floor_postgres;
pub mod floor_redis;
pub mod governor;
pub mod textbook_postgres;
pub mod textbook_redis;

/// Writes `table` (a schema-qualified, quoted name) into a SQL template.
pub(crate) fn sql(template: &str, table: &str) -> String {
    template.replace("{table}", table)
}

/// The key-set size of the spread workloads, shared with the stores'.
pub(crate) use crate::stores::SPREAD_KEYS;
