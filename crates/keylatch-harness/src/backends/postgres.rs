//! The PostgreSQL backend: a server from keylatch-services (a container, or the one in
//! KEYLATCH_POSTGRES_URL) and a schema of its own for the run.

use std::sync::Arc;

use async_trait::async_trait;
use keylatch::SharedKeyStore;
use keylatch_conformance::StoreFactory;
use keylatch_postgres::sqlx::postgres::{PgConnectOptions, PgConnection};
use keylatch_postgres::sqlx::{self, Connection};
use keylatch_postgres::{PgStore, PgStoreOptions, Schema};
use keylatch_services::{unique_namespace, ServiceKind};

use super::{start, unusable, Cleanup, NotRun, Prepared};

/// Opens independent handles, each with its own pool, on one schema.
struct Factory {
    connect: PgConnectOptions,
    schema: Schema,
}

#[async_trait]
impl StoreFactory for Factory {
    fn name(&self) -> &str {
        "postgres"
    }

    async fn open(&self) -> keylatch::Result<SharedKeyStore> {
        let options = PgStoreOptions::new().schema(self.schema.clone());
        let store = PgStore::connect_with(self.connect.clone(), options).await?;
        Ok(Arc::new(store))
    }
}

/// Starts PostgreSQL and migrates a fresh schema, so that a broken server shows up
/// here as a reason rather than as a failed scenario.
pub async fn prepare() -> Result<Prepared, NotRun> {
    let service = start(ServiceKind::Postgres).await?;
    let not_run = |reason: String| unusable(ServiceKind::Postgres, reason);
    let connect: PgConnectOptions = service
        .url()
        .parse()
        .map_err(|_| not_run("the PostgreSQL URL does not parse".to_owned()))?;
    // The test image turns synchronous_commit off for speed, which would send every
    // revoke and rotate down their slower synchronous-commit path; measure the path a
    // production server (synchronous_commit = on, the default) takes.
    let connect = connect.options([("synchronous_commit", "on")]);
    let schema = Schema::new(&unique_namespace("conformance"))
        .map_err(|e| not_run(format!("no valid schema name: {e}")))?;
    let cleanup = drop_schema(connect.clone(), schema.clone());
    let factory = Factory { connect, schema };
    factory
        .open()
        .await
        .map_err(|e| not_run(format!("cannot open a store: {e}")))?;
    Ok(Prepared {
        factory: Box::new(factory),
        origin: service.origin(),
        guard: Box::new(service),
        cleanup: Some(cleanup),
    })
}

/// Drops the run's schema with everything in it: its tables and sqlx's migration
/// bookkeeping, which the store keeps inside the schema too.
fn drop_schema(connect: PgConnectOptions, schema: Schema) -> Cleanup {
    let what = format!("schema {}", schema.as_str());
    let run = Box::pin(async move {
        let mut conn = PgConnection::connect_with(&connect)
            .await
            .map_err(|e| format!("cannot connect: {e}"))?;
        // A schema is an identifier and cannot be bound; Schema's validation leaves
        // nothing in the name that would need escaping inside the quotes.
        let statement = format!("DROP SCHEMA IF EXISTS \"{}\" CASCADE", schema.as_str());
        let dropped = sqlx::query(&statement)
            .execute(&mut conn)
            .await
            .map(|_| ())
            .map_err(|e| format!("DROP SCHEMA failed: {e}"));
        // Closing politely is a courtesy to the server; the schema is gone or not by now.
        let _ = conn.close().await;
        dropped
    });
    Cleanup { what, run }
}
