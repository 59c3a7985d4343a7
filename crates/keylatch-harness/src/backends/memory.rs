//! The memory backend: nothing to start.

use std::sync::Arc;

use async_trait::async_trait;
use keylatch::SharedKeyStore;
use keylatch_conformance::StoreFactory;
use keylatch_memory::MemoryStore;

use super::{NotRun, Prepared};

/// Handles on one memory store: its clones share the keys.
struct Factory(MemoryStore);

#[async_trait]
impl StoreFactory for Factory {
    fn name(&self) -> &str {
        "memory"
    }

    async fn open(&self) -> keylatch::Result<SharedKeyStore> {
        Ok(Arc::new(self.0.clone()))
    }
}

/// Prepares the memory backend.
pub async fn prepare() -> Result<Prepared, NotRun> {
    Ok(Prepared {
        factory: Box::new(Factory(MemoryStore::new())),
        origin: "in process".to_owned(),
        guard: Box::new(()),
        cleanup: None,
    })
}
