//! A Redis of each test's own (a container from keylatch-services, on 127.0.0.1),
//! and the two ways to open a store on it.

#![allow(dead_code)] // Each test binary uses a different part of this module.

use std::sync::Arc;

use keylatch::SharedKeyStore;
use keylatch_redis::{Namespace, RedisStore, StoreConfig};
use keylatch_services::{Service, ServiceKind};

/// A Redis server for one test; dropping it removes the container.
pub struct Server {
    service: Service,
}

impl Server {
    /// Starts a Redis container. Fails the test, with the reason and the remedy, when
    /// none can be started: a test that needs a server never skips.
    pub async fn start() -> Server {
        match Service::start(ServiceKind::Redis).await {
            Ok(service) => Server { service },
            Err(e) => panic!("no Redis for this test: {e}"),
        }
    }

    /// The server's URL (`redis://127.0.0.1:<port>`).
    pub fn url(&self) -> String {
        self.service.url()
    }

    /// Freezes the server: requests hang until [`Server::resume`].
    pub async fn freeze(&self) {
        self.service
            .pause()
            .await
            .expect("this test pauses its server, which needs a container");
    }

    /// Thaws a frozen server.
    pub async fn resume(&self) {
        self.service.unpause().await.expect("unpause");
    }

    /// A plain connection for looking at what the scripts wrote.
    pub async fn raw(&self) -> redis::aio::MultiplexedConnection {
        redis::Client::open(self.url())
            .expect("url")
            .get_multiplexed_async_connection()
            .await
            .expect("raw connection")
    }
}

/// The two client adapters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Adapter {
    RedisRs,
    Fred,
}

pub const ADAPTERS: [Adapter; 2] = [Adapter::RedisRs, Adapter::Fred];

/// A namespace no other test or run uses.
pub fn unique_namespace(tag: &str) -> Namespace {
    Namespace::new(&keylatch_services::unique_namespace(tag)).expect("valid namespace")
}

/// Opens a new, independent store handle (its own connection).
pub async fn open(adapter: Adapter, url: &str, config: StoreConfig) -> RedisStore {
    match adapter {
        Adapter::RedisRs => RedisStore::connect_redis_rs(url, config).await,
        Adapter::Fred => RedisStore::connect_fred(url, 2, config).await,
    }
    .expect("store connects")
}

/// [`open`] behind `Arc<dyn AtomicKeyStore>`.
pub async fn open_shared(adapter: Adapter, url: &str, config: StoreConfig) -> SharedKeyStore {
    Arc::new(open(adapter, url, config).await)
}

/// How often the server has run `command` (from `INFO commandstats`), to show that a
/// call did or did not reach it.
pub async fn info_calls(raw: &mut redis::aio::MultiplexedConnection, command: &str) -> u64 {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(raw)
        .await
        .expect("INFO");
    let prefix = format!("cmdstat_{command}:calls=");
    info.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|rest| rest.split(',').next())
        .map_or(0, |n| n.parse().expect("a count"))
}
