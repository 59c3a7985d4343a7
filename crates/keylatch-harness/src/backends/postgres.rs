//! The PostgreSQL backend: a server from keylatch-services (a container, or the one in
//! KEYLATCH_POSTGRES_URL) and a schema of its own for the run.

use std::sync::Arc;

use async_trait::async_trait;
use keylatch::SharedKeyStore;
use keylatch_conformance::StoreFactory;
use keylatch_postgres::sqlx::postgres::PgConnectOptions;
use keylatch_postgres::{PgStore, PgStoreOptions, Schema};
use keylatch_services::{unique_namespace, ServiceKind};

use super::{start, unusable, NotRun, Prepared};

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
    let factory = Factory { connect, schema };
    factory
        .open()
        .await
        .map_err(|e| not_run(format!("cannot open a store: {e}")))?;
    Ok(Prepared {
        factory: Box::new(factory),
        origin: service.origin(),
        guard: Box::new(service),
    })
}
