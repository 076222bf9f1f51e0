//! The whole conformance suite, and the model-based property test, on the embedded engine, in a
//! temporary directory per store. Small segments make the suite cross segment boundaries.

use std::sync::Arc;

use async_trait::async_trait;
use factum_core::{
    AllSlice, AppendResult, DeleteResult, EventStore, ExpectedRevision, Limits, Position,
    ProposedEvent, ReadAllOptions, ReadStreamOptions, RecordedEvent, Result, StreamName,
};
use factum_log::{EmbeddedStore, Options};
use tempfile::TempDir;
use tokio::sync::watch;

/// An embedded store that removes its directory when dropped.
struct TempStore {
    // Dropped first: the store closes before its directory goes.
    store: EmbeddedStore,
    _dir: TempDir,
}

async fn new_store() -> Arc<TempStore> {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let options = Options {
        // Small segments, so appends roll over and reads cross sealed segments.
        segment_size_bytes_max: 64 * 1024,
        // The suite runs on multi-threaded runtimes: exercise caller-thread commits (the
        // simulated-crash tests exercise the writer thread).
        commit_on_caller_thread: true,
        ..Options::default()
    };
    let store = EmbeddedStore::open_with(dir.path(), options).expect("a fresh store opens");
    Arc::new(TempStore { store, _dir: dir })
}

#[async_trait]
impl EventStore for TempStore {
    async fn append(
        &self,
        stream: &StreamName,
        expected: ExpectedRevision,
        events: Vec<ProposedEvent>,
    ) -> Result<AppendResult> {
        self.store.append(stream, expected, events).await
    }
    async fn read_stream(
        &self,
        stream: &StreamName,
        options: ReadStreamOptions,
    ) -> Result<Vec<RecordedEvent>> {
        self.store.read_stream(stream, options).await
    }
    async fn read_all(&self, options: ReadAllOptions) -> Result<AllSlice> {
        self.store.read_all(options).await
    }
    async fn delete_stream(
        &self,
        stream: &StreamName,
        expected: ExpectedRevision,
    ) -> Result<DeleteResult> {
        self.store.delete_stream(stream, expected).await
    }
    async fn tombstone_stream(
        &self,
        stream: &StreamName,
        expected: ExpectedRevision,
    ) -> Result<DeleteResult> {
        self.store.tombstone_stream(stream, expected).await
    }
    async fn head(&self) -> Result<Position> {
        self.store.head().await
    }
    fn watch_head(&self) -> watch::Receiver<Position> {
        self.store.watch_head()
    }
    fn limits(&self) -> &Limits {
        self.store.limits()
    }
}

factum_conformance::conformance_tests!(new_store);
