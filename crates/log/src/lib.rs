//! Factum's embedded engine: every event in one data directory, durable before it is
//! acknowledged, crash-safe, with group commit and a persisted index.
//!
//! - [`format`](mod@format): the byte layout of segments and frames (also in `docs/format.md`).
//! - [`storage`]: the only door to the file system, a trait so tests can simulate crashes.
//! - [`segment`]: naming, reading and the recovery scan of segment files.
//! - [`index`]: per-stream indexes, in memory for the open segment, on disk for full ones.
//! - [`engine`]: the writer thread (group commit, fail-stop) and the shared read state.
//! - [`stats`]: what the writer measures (fsync latency, group sizes), for monitoring.
//!
//! [`EmbeddedStore`] ties them together and implements [`EventStore`].

pub mod engine;
pub mod format;
pub mod index;
pub mod segment;
pub mod stats;
pub mod storage;
mod store;

pub use stats::{EngineStats, HistogramSnapshot};
pub use store::{EmbeddedStore, Options};

pub use factum_core::EventStore;
