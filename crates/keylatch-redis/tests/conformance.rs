//! The full conformance suite on Redis, through both client adapters: `redis` (the
//! redis crate's ConnectionManager) and `fred` (a fred pool).

mod support;

use async_trait::async_trait;
use keylatch::SharedKeyStore;
use keylatch_conformance::{run_all, StoreFactory, SuiteConfig};
use std::sync::Arc;

use keylatch_redis::{Namespace, RedisStore, StoreConfig};
use support::{unique_namespace, Adapter, Server};

/// Opens independent handles, each with its own connection, on one namespace.
struct Factory {
    adapter: Adapter,
    url: String,
    namespace: Namespace,
}

#[async_trait]
impl StoreFactory for Factory {
    fn name(&self) -> &str {
        match self.adapter {
            Adapter::RedisRs => "redis",
            Adapter::Fred => "fred",
        }
    }

    async fn open(&self) -> keylatch::Result<SharedKeyStore> {
        let config = StoreConfig::default().namespace(self.namespace.clone());
        let store = match self.adapter {
            Adapter::RedisRs => RedisStore::connect_redis_rs(&self.url, config).await?,
            Adapter::Fred => RedisStore::connect_fred(&self.url, 2, config).await?,
        };
        Ok(Arc::new(store))
    }
}

fn config() -> SuiteConfig {
    SuiteConfig::from_env().expect("KEYLATCH_ROUNDS and KEYLATCH_SEED are numbers")
}

async fn passes(adapter: Adapter) {
    let server = Server::start().await;
    let factory = Factory {
        adapter,
        url: server.url(),
        namespace: unique_namespace("conformance"),
    };
    let report = run_all(&factory, &config()).await;
    // The suite prints one line per scenario (see `cargo test -- --nocapture`).
    assert!(
        !report.scenarios.is_empty() || report.error.is_some(),
        "the suite ran no scenario"
    );
    report.assert_passed();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_passes_the_conformance_suite() {
    passes(Adapter::RedisRs).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fred_passes_the_conformance_suite() {
    passes(Adapter::Fred).await;
}
