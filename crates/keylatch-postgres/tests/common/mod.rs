//! What the PostgreSQL tests share: a server, fresh schemas, stores.

#![allow(dead_code)] // Each test binary uses a different part of this module.

pub mod proxy;

use std::time::Duration;

use keylatch_postgres::{PgStore, PgStoreOptions, Schema};
use sqlx::postgres::{PgConnectOptions, PgSslMode};

/// A PostgreSQL server for one test; dropping it removes a container it started.
pub struct Server {
    service: keylatch_services::Service,
}

impl Server {
    /// Connect options for the server, without TLS so that the counting proxy can
    /// read the protocol (everything is on 127.0.0.1).
    ///
    /// The test image turns `synchronous_commit` off server-wide for speed; revoke and
    /// rotate would then always take their synchronous-commit path. Sessions turn it
    /// back on, so that the tests exercise the one-statement path that production
    /// servers (synchronous_commit = on, the default) take; a dedicated test covers
    /// the other.
    pub fn connect_options(&self) -> PgConnectOptions {
        self.service
            .url()
            .parse::<PgConnectOptions>()
            .expect("the service hands out a valid URL")
            .ssl_mode(PgSslMode::Disable)
            .options([("synchronous_commit", "on")])
    }

    /// The service, for fault injection.
    pub fn service(&self) -> &keylatch_services::Service {
        &self.service
    }
}

/// Starts a PostgreSQL container (or names the server in KEYLATCH_POSTGRES_URL). A
/// test that cannot have one fails with the reason and the remedy; it never skips.
pub async fn server() -> Server {
    match keylatch_services::Service::start(keylatch_services::ServiceKind::Postgres).await {
        Ok(service) => Server { service },
        Err(keylatch_services::ServiceError::NotAvailable { reason, remedy, .. }) => {
            panic!("no PostgreSQL server for this test: {reason}; {remedy}")
        }
        Err(e) => panic!("no PostgreSQL server for this test: {e}"),
    }
}

/// A schema name no other test uses.
pub fn fresh_schema(tag: &str) -> Schema {
    let n: u64 = rand::random();
    Schema::new(&format!("t_{tag}_{n:016x}")).expect("a valid schema name")
}

/// Options for a test store in `schema`: short timeouts so a fault shows quickly.
pub fn options(schema: &Schema) -> PgStoreOptions {
    PgStoreOptions::new()
        .schema(schema.clone())
        .request_timeout(Duration::from_secs(10))
}

/// A store on the server in a fresh schema.
pub async fn store(server: &Server, tag: &str) -> PgStore {
    let schema = fresh_schema(tag);
    PgStore::connect_with(server.connect_options(), options(&schema))
        .await
        .expect("the store connects and migrates")
}
