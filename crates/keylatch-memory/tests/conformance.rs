//! The full conformance suite on the memory backend.

use async_trait::async_trait;
use keylatch::SharedKeyStore;
use keylatch_conformance::{run_all, StoreFactory, SuiteConfig};
use keylatch_memory::MemoryStore;

/// Handles on one memory store: clones share its keys.
struct Factory(MemoryStore);

#[async_trait]
impl StoreFactory for Factory {
    fn name(&self) -> &str {
        "memory"
    }

    async fn open(&self) -> keylatch::Result<SharedKeyStore> {
        Ok(std::sync::Arc::new(self.0.clone()))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memory_store_passes_the_conformance_suite() {
    let config = SuiteConfig::from_env().expect("KEYLATCH_ROUNDS and KEYLATCH_SEED are numbers");
    run_all(&Factory(MemoryStore::new()), &config)
        .await
        .assert_passed();
}
