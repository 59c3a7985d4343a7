//! keylatch on PostgreSQL: the [`AtomicKeyStore`](keylatch::AtomicKeyStore) contract
//! with every operation as one SQL statement sent in one round trip.
//!
//! placeholder docs

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
