//! Conformance cases: concurrency (to be written).

use std::sync::Arc;

use factum_core::EventStore;

use crate::Case;

/// Every case of this area.
pub fn cases<S: EventStore>() -> Vec<Case<S>> {
    let _: Option<Arc<S>> = None;
    vec![]
}
