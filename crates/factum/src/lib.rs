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
//! `cargo run --example first_aggregate` (the toolkit); `cargo run -p factum-example-bank` runs
//! the article "Introduction to Event Sourcing" end to end. See `ARCHITECTURE.md` for the map.
//!
//! # Example
//!
//! The article's bank account, in memory: a command refused for insufficient funds writes
//! nothing, and the `account_summary` read model answers "balance > $1000".
//!
//! ```
//! # #[tokio::main]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use std::time::Duration;
//!
//! use factum::EventStore;
//! use factum::aggregate::examples::bank::{AccountCommand, BankAccount};
//! use factum::aggregate::{EventSchema, Repository, RepositoryError};
//! use factum::memory::MemoryStore;
//! use factum::projection::{AccountSummary, ProjectionRunner, SqliteReadModel};
//!
//! let store: Arc<dyn EventStore> = Arc::new(MemoryStore::new());
//! let accounts = Repository::<BankAccount>::new(store.clone(), EventSchema::json());
//! let open = AccountCommand::Open { owner: "Alice".into(), initial_balance_cents: 0 };
//! accounts.execute("acc_123", &open).await?;
//! accounts.execute("acc_123", &AccountCommand::Deposit { amount_cents: 150_000 }).await?;
//!
//! let overdraft = AccountCommand::Withdraw { amount_cents: 200_000 };
//! let refused = accounts.execute("acc_123", &overdraft).await;
//! assert!(matches!(refused, Err(RepositoryError::Rejected(_))));
//! assert_eq!(store.head().await?.0, 2, "nothing was written");
//!
//! let model = SqliteReadModel::open_in_memory(AccountSummary)?;
//! let mut runner = ProjectionRunner::new(store, model)?;
//! runner.run_until_caught_up(Duration::from_secs(5)).await?;
//! let db = runner.model().expect("stopped").connection();
//! let rich = factum::projection::accounts_with_balance_above(db, 100_000)?;
//! assert_eq!(rich[0].account_id, "acc_123");
//! assert_eq!(rich[0].balance_cents, 150_000);
//! # Ok(())
//! # }
//! ```

pub use factum_core::*;

/// The in-memory backend.
pub mod memory {
    pub use factum_memory::MemoryStore;
}

/// The embedded backend: a durable store in one data directory, owned by one process.
///
/// ```
/// # #[tokio::main]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use factum::embedded::EmbeddedStore;
/// use factum::{EventStore, ExpectedRevision, ProposedEvent, ReadStreamOptions, StreamName};
///
/// let dir = tempfile::tempdir()?;
/// let stream = StreamName::new("account-1")?;
/// let deposit = ProposedEvent::json("MoneyDeposited", &serde_json::json!({"amount_cents": 500}))?;
///
/// let store = EmbeddedStore::open(dir.path())?;
/// // Acknowledged only once it is on disk.
/// store.append(&stream, ExpectedRevision::NoStream, vec![deposit]).await?;
/// store.close();
///
/// let reopened = EmbeddedStore::open(dir.path())?;
/// let events = reopened.read_stream(&stream, ReadStreamOptions::forwards()).await?;
/// assert_eq!(events[0].event_type, "MoneyDeposited");
/// # Ok(())
/// # }
/// ```
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
