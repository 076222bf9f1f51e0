//! The whole conformance suite, and the model-based property test, on the in-memory store.

use std::sync::Arc;

use factum_memory::MemoryStore;

async fn new_store() -> Arc<MemoryStore> {
    Arc::new(MemoryStore::new())
}

factum_conformance::conformance_tests!(new_store);
