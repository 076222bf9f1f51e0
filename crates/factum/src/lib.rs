//! Factum: an event store and event-sourcing toolkit.
//!
//! This crate is the front door. It re-exports the contract ([`EventStore`] and its types,
//! from `factum-core`) and the backends:
//!
//! - [`memory::MemoryStore`]: everything in memory, for tests and examples.
//!
//! Start with `cargo run --example quickstart`, and see `ARCHITECTURE.md` for the map.

pub use factum_core::*;

/// The in-memory backend.
pub mod memory {
    pub use factum_memory::MemoryStore;
}
