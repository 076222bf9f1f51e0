//! The model-based property test (to be written).

use std::future::Future;
use std::sync::Arc;

use factum_core::EventStore;

/// Runs random operations against the store and a simple model, comparing every result.
pub fn check_against_model<S, F, Fut>(new_store: F)
where
    S: EventStore,
    F: Fn() -> Fut,
    Fut: Future<Output = Arc<S>>,
{
    let _ = new_store;
}
