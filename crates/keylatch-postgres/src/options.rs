//! How a [`PgStore`](crate::PgStore) is set up: its schema, key codec, migrations and
//! time limits.

use std::fmt;
use std::time::Duration;

use keylatch::{Error, KeyCodec};

/// The schema a store keeps its tables in, when none is configured.
pub const DEFAULT_SCHEMA: &str = "keylatch";

/// The PostgreSQL schema that holds a store's tables: a validated identifier.
///
/// Identifiers cannot be bound as statement parameters, so the schema is the one
/// thing keylatch writes into its SQL text. It is therefore restricted to
/// `[a-z_][a-z0-9_]{0,62}`, must not start with `pg_` (reserved by PostgreSQL), and is
/// always written double-quoted. Every value, by contrast, is bound.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Schema(String);

impl Schema {
    /// Validates a schema name.
    pub fn new(name: &str) -> Result<Self, Error> {
        let mut bytes = name.bytes();
        let first_ok = bytes
            .next()
            .is_some_and(|b| b.is_ascii_lowercase() || b == b'_');
        let rest_ok = bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if first_ok && rest_ok && name.len() <= 63 && !name.starts_with("pg_") {
            Ok(Schema(name.to_owned()))
        } else {
            Err(Error::InvalidArgument {
                what: "schema must match [a-z_][a-z0-9_]{0,62} and not start with pg_",
            })
        }
    }

    /// The schema name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The name as a quoted SQL identifier. The validation above leaves nothing that
    /// needs escaping; quoting keeps reserved words (`user`, `order`) usable.
    pub(crate) fn quoted(&self) -> String {
        format!("\"{}\"", self.0)
    }
}

impl Default for Schema {
    fn default() -> Self {
        Schema(DEFAULT_SCHEMA.to_owned())
    }
}

impl fmt::Debug for Schema {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Schema({})", self.0)
    }
}

impl fmt::Display for Schema {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Settings of a [`PgStore`](crate::PgStore).
///
/// Two handles on the same data must use the same schema and the same codec (prefix
/// and pepper), or they will not recognise each other's keys.
#[derive(Debug, Clone)]
pub struct PgStoreOptions {
    pub(crate) schema: Schema,
    pub(crate) codec: KeyCodec,
    pub(crate) run_migrations: bool,
    pub(crate) request_timeout: Duration,
    pub(crate) max_connections: u32,
    pub(crate) acquire_timeout: Duration,
}

impl Default for PgStoreOptions {
    fn default() -> Self {
        PgStoreOptions {
            schema: Schema::default(),
            codec: KeyCodec::default(),
            run_migrations: true,
            request_timeout: Duration::from_secs(10),
            max_connections: 16,
            acquire_timeout: Duration::from_secs(5),
        }
    }
}

impl PgStoreOptions {
    /// The defaults: schema `keylatch`, `KeyCodec::default()`, migrations on connect,
    /// a 10 s request timeout, and (for pools the store builds) 16 connections with a
    /// 5 s acquire timeout.
    pub fn new() -> Self {
        Self::default()
    }

    /// Keeps the tables in `schema`.
    pub fn schema(mut self, schema: Schema) -> Self {
        self.schema = schema;
        self
    }

    /// Mints and parses keys with `codec`.
    pub fn codec(mut self, codec: KeyCodec) -> Self {
        self.codec = codec;
        self
    }

    /// Whether building the store runs the embedded migrations (the default). Turn it
    /// off when the schema is managed by a deployment step that calls
    /// [`PgStore::migrate`](crate::PgStore::migrate) or applies the files itself.
    pub fn run_migrations(mut self, run: bool) -> Self {
        self.run_migrations = run;
        self
    }

    /// How long one statement may wait for its reply once it has been sent. When the
    /// time runs out the operation fails with `Error::OutcomeUnknown` (the server may
    /// still apply it) and the connection is closed rather than reused.
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// The size of the pool the store builds in [`PgStore::connect`] and
    /// [`PgStore::connect_with`]; ignored by [`PgStore::from_pool`].
    ///
    /// [`PgStore::connect`]: crate::PgStore::connect
    /// [`PgStore::connect_with`]: crate::PgStore::connect_with
    /// [`PgStore::from_pool`]: crate::PgStore::from_pool
    pub fn max_connections(mut self, n: u32) -> Self {
        self.max_connections = n.max(1);
        self
    }

    /// How long an operation waits for a free or new connection of a pool the store
    /// builds before failing with `Error::Unavailable` (nothing was sent).
    pub fn acquire_timeout(mut self, timeout: Duration) -> Self {
        self.acquire_timeout = timeout;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_names_are_validated() {
        for good in ["keylatch", "_x", "a1_b2", &"a".repeat(63)] {
            assert!(Schema::new(good).is_ok(), "{good:?} rejected");
        }
        for bad in [
            "",
            "1abc",
            "Keylatch",
            "key-latch",
            "key latch",
            "k\"; DROP TABLE x; --",
            "pg_temp",
            &"a".repeat(64),
            "ké",
        ] {
            assert!(
                matches!(Schema::new(bad), Err(Error::InvalidArgument { .. })),
                "{bad:?} accepted"
            );
        }
    }

    #[test]
    fn schema_is_quoted() {
        assert_eq!(Schema::new("user").expect("valid").quoted(), "\"user\"");
    }
}
