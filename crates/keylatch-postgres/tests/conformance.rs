//! The full conformance suite on PostgreSQL: once on connections the store opens
//! itself, and once more on a database whose default isolation is SERIALIZABLE,
//! reached both through the store's own pool and through a pool built elsewhere that
//! asks for SERIALIZABLE explicitly.

mod common;

use std::sync::Arc;

use async_trait::async_trait;
use keylatch::SharedKeyStore;
use keylatch_conformance::{run_all, StoreFactory, SuiteConfig};
use keylatch_postgres::sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use keylatch_postgres::sqlx::{Connection, Executor};
use keylatch_postgres::{PgStore, Schema};

/// How the factory's handles reach the database.
#[derive(Clone, Copy)]
enum Pool {
    /// `PgStore::connect_with`: the store's own pool, READ COMMITTED pinned.
    Own,
    /// `PgStore::from_pool` over a pool whose connections default to SERIALIZABLE.
    ForeignSerializable,
}

/// Opens independent handles (each with its own pool) on one schema.
struct Factory {
    connect: PgConnectOptions,
    schema: Schema,
    pool: Pool,
}

#[async_trait]
impl StoreFactory for Factory {
    fn name(&self) -> &str {
        "postgres"
    }

    async fn open(&self) -> keylatch::Result<SharedKeyStore> {
        let options = common::options(&self.schema);
        let store = match self.pool {
            Pool::Own => PgStore::connect_with(self.connect.clone(), options).await?,
            Pool::ForeignSerializable => {
                let pool = PgPoolOptions::new()
                    .max_connections(16)
                    .connect_with(
                        self.connect
                            .clone()
                            .options([("default_transaction_isolation", "serializable")]),
                    )
                    .await
                    .map_err(|e| keylatch::Error::Unavailable {
                        backend: "postgres",
                        source: Box::new(e),
                    })?;
                PgStore::from_pool(pool, options).await?
            }
        };
        Ok(Arc::new(store))
    }
}

fn config() -> SuiteConfig {
    SuiteConfig::from_env().expect("KEYLATCH_ROUNDS and KEYLATCH_SEED are numbers")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_passes_the_conformance_suite() {
    let server = common::server().await;
    let factory = Factory {
        connect: server.connect_options(),
        schema: common::fresh_schema("conformance"),
        pool: Pool::Own,
    };
    run_all(&factory, &config()).await.assert_passed();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_passes_the_conformance_suite_when_the_default_isolation_is_serializable() {
    let server = common::server().await;
    let mut admin = keylatch_postgres::sqlx::PgConnection::connect_with(&server.connect_options())
        .await
        .expect("admin connection");
    // A fixed name made here: safe to write into the statement.
    let name = format!("kl_conformance_serializable_{:08x}", rand::random::<u32>());
    admin
        .execute(format!("CREATE DATABASE {name}").as_str())
        .await
        .expect("create database");
    admin
        .execute(
            format!("ALTER DATABASE {name} SET default_transaction_isolation = 'serializable'")
                .as_str(),
        )
        .await
        .expect("alter database");
    let connect = server.connect_options().database(&name);
    for pool in [Pool::Own, Pool::ForeignSerializable] {
        let factory = Factory {
            connect: connect.clone(),
            schema: common::fresh_schema("conformance_ser"),
            pool,
        };
        run_all(&factory, &config()).await.assert_passed();
    }
}
