//! Factum: an event store and event-sourcing toolkit.
//!
//! This crate is the front door. It re-exports the contract ([`EventStore`] and its types,
//! from `factum-core`), the backends and the toolkit:
//!
//! - [`memory::MemoryStore`]: everything in memory, for tests and examples.
//! - [`embedded::EmbeddedStore`]: the durable embedded engine, one data directory per process.
//! - [`aggregate`]: aggregates, a repository with optimistic concurrency, retries, snapshots,
//!   temporal loads and history, and a given/when/then test helper.
//! - [`codec`]: typed events with names and schema versions, and upcasters.
//! - [`projection`]: projections (CQRS) with SQLite and in-memory read models.
//!
//! Start with `cargo run --example quickstart` (the store itself) and
//! `cargo run --example first_aggregate` (the toolkit), and see `ARCHITECTURE.md` for the map.

pub use factum_core::*;

/// The in-memory backend.
pub mod memory {
    pub use factum_memory::MemoryStore;
}

/// The embedded backend: a durable store in one data directory, owned by one process.
pub mod embedded {
    pub use factum_log::{EmbeddedStore, Options};
}

/// Aggregates and their repository (the `factum-aggregate` crate).
pub mod aggregate {
    pub use factum_aggregate::*;
}

/// Typed events, schemas and upcasters (the `factum-codec` crate).
pub mod codec {
    pub use factum_codec::*;
}

/// Projections and read models (the `factum-projection` crate).
pub mod projection {
    pub use factum_projection::*;
}
