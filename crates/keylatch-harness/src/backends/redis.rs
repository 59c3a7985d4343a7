//! The Redis backends, `redis` (the redis crate) and `fred`: one Redis server from
//! keylatch-services (a container, or the one in KEYLATCH_REDIS_URL) per backend, and
//! a key namespace of its own for the run.

use std::sync::Arc;

use async_trait::async_trait;
use keylatch::SharedKeyStore;
use keylatch_conformance::StoreFactory;
use keylatch_redis::{Namespace, RedisStore, StoreConfig};
use keylatch_services::{unique_namespace, ServiceKind};

use super::{start, unusable, NotRun, Prepared};

/// The client a factory's handles use.
#[derive(Debug, Clone, Copy)]
enum Client {
    RedisRs,
    Fred,
}

/// Opens independent handles, each with its own connection, on one namespace.
struct Factory {
    client: Client,
    url: String,
    namespace: Namespace,
}

#[async_trait]
impl StoreFactory for Factory {
    fn name(&self) -> &str {
        match self.client {
            Client::RedisRs => "redis",
            Client::Fred => "fred",
        }
    }

    async fn open(&self) -> keylatch::Result<SharedKeyStore> {
        let config = StoreConfig::default().namespace(self.namespace.clone());
        let store = match self.client {
            Client::RedisRs => RedisStore::connect_redis_rs(&self.url, config).await?,
            Client::Fred => RedisStore::connect_fred(&self.url, 2, config).await?,
        };
        Ok(Arc::new(store))
    }
}

/// Starts Redis and opens one handle, so that a broken server shows up here as a
/// reason rather than as a failed scenario.
async fn prepare(client: Client) -> Result<Prepared, NotRun> {
    let service = start(ServiceKind::Redis).await?;
    let not_run = |reason: String| unusable(ServiceKind::Redis, reason);
    let namespace = Namespace::new(&unique_namespace("conformance"))
        .map_err(|e| not_run(format!("no valid namespace: {e}")))?;
    let factory = Factory {
        client,
        url: service.url(),
        namespace,
    };
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

/// Prepares the `redis` backend (the redis crate's ConnectionManager).
pub async fn prepare_redis() -> Result<Prepared, NotRun> {
    prepare(Client::RedisRs).await
}

/// Prepares the `fred` backend (a fred pool).
pub async fn prepare_fred() -> Result<Prepared, NotRun> {
    prepare(Client::Fred).await
}
