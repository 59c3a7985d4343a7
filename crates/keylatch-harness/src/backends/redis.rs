//! The Redis backends, `redis` (the redis crate) and `fred`: one Redis server from
//! keylatch-services (a container, or the one in KEYLATCH_REDIS_URL) per backend, and
//! a key namespace of its own for the run.

use std::sync::Arc;

use async_trait::async_trait;
use keylatch::SharedKeyStore;
use keylatch_conformance::StoreFactory;
use keylatch_redis::{Namespace, RedisStore, StoreConfig};
use keylatch_services::{unique_namespace, ServiceKind};

use super::{start, unusable, Cleanup, NotRun, Prepared};

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
    let cleanup = delete_namespace(service.url(), namespace.clone());
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
        cleanup: Some(cleanup),
    })
}

/// The most SCAN rounds a cleanup makes. Every round returns up to `SCAN_COUNT` keys and
/// deletes them, and a conformance run writes thousands of keys, not millions, so
/// reaching this means the server keeps adding keys under the namespace.
const SCAN_ROUNDS_MAX: usize = 100_000;
const SCAN_COUNT: usize = 1_000;

/// Deletes every key of the run's namespace (`Namespace::keys_pattern`), and no key of
/// another namespace.
fn delete_namespace(url: String, namespace: Namespace) -> Cleanup {
    let pattern = namespace.keys_pattern();
    let what = format!("keys {pattern}");
    let run = Box::pin(async move {
        let client =
            ::redis::Client::open(url.as_str()).map_err(|_| "the URL does not parse".to_owned())?;
        let mut conn = client
            .get_multiplexed_async_connection()
            .await
            .map_err(|e| format!("cannot connect: {e}"))?;
        let mut cursor: u64 = 0;
        for _ in 0..SCAN_ROUNDS_MAX {
            let (next, keys): (u64, Vec<String>) = ::redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(SCAN_COUNT)
                .query_async(&mut conn)
                .await
                .map_err(|e| format!("SCAN failed: {e}"))?;
            // SCAN still returns every key present for the whole scan when keys it
            // returned earlier are deleted in between.
            if !keys.is_empty() {
                ::redis::cmd("UNLINK")
                    .arg(&keys)
                    .query_async::<()>(&mut conn)
                    .await
                    .map_err(|e| format!("UNLINK failed: {e}"))?;
            }
            if next == 0 {
                return Ok(());
            }
            cursor = next;
        }
        Err(format!("SCAN did not finish in {SCAN_ROUNDS_MAX} rounds"))
    });
    Cleanup { what, run }
}

/// Prepares the `redis` backend (the redis crate's ConnectionManager).
pub async fn prepare_redis() -> Result<Prepared, NotRun> {
    prepare(Client::RedisRs).await
}

/// Prepares the `fred` backend (a fred pool).
pub async fn prepare_fred() -> Result<Prepared, NotRun> {
    prepare(Client::Fred).await
}
