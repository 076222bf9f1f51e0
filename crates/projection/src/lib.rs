//! Projections (CQRS): read models fed by the event store's global log.
//!
//! - A [`Projection`] says which events it wants and how each changes its read model.
//! - A [`ReadModel`] keeps the model and its [`Checkpoint`] and commits both together:
//!   [`SqliteReadModel`] (durable, one SQLite transaction per batch: exactly-once effect) and
//!   [`MemoryReadModel`] (for tests).
//! - A [`ProjectionRunner`] drives a read model from its checkpoint through a catch-up
//!   [`Subscription`](factum_core::Subscription) to `$all`, in batches: start, stop, reset,
//!   rebuild, [`ProjectionStatus`] with progress and lag, and read-your-writes with
//!   [`ProjectionRunner::wait_for`].
//! - A [`TypedProjection`] reads domain events decoded and upcast through a
//!   [`factum_codec::EventSchema`] (the same schema aggregates use), with their stored envelope;
//!   [`TypedProjection::with_schema`] makes it a [`Projection`] for the runner and read models.
//! - [`AccountSummary`] and [`FraudReport`] are the article's bank projections, with their
//!   queries as plain SQL ([`accounts_with_balance_above`], [`flagged_accounts`]).
//!
//! # Example
//!
//! ```
//! # async fn demo() -> Result<(), factum_projection::ProjectionError> {
//! use std::sync::Arc;
//! use std::time::Duration;
//!
//! use factum_core::{EventStore, ExpectedRevision, ProposedEvent, StreamName};
//! use factum_projection::{AccountSummary, ProjectionRunner, SqliteReadModel};
//!
//! let store: Arc<dyn EventStore> = Arc::new(factum_memory::MemoryStore::new());
//! let account = StreamName::new("account-7")?;
//! let events = vec![
//!     ProposedEvent::json("AccountOpened", &serde_json::json!({
//!         "owner": "Alice", "initial_balance_cents": 0,
//!     }))?,
//!     ProposedEvent::json("MoneyDeposited", &serde_json::json!({"amount_cents": 150_000}))?,
//!     ProposedEvent::json("MoneyWithdrawn", &serde_json::json!({"amount_cents": 20_000}))?,
//! ];
//! store.append(&account, ExpectedRevision::NoStream, events).await?;
//!
//! let model = SqliteReadModel::open_in_memory(AccountSummary)?;
//! let mut runner = ProjectionRunner::new(store, model)?;
//! runner.run_until_caught_up(Duration::from_secs(5)).await?;
//! let model = runner.model().expect("stopped");
//! let rich = factum_projection::accounts_with_balance_above(model.connection(), 100_000)?;
//! assert_eq!(rich[0].balance_cents, 130_000);
//! # Ok(())
//! # }
//! # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(demo()).unwrap();
//! ```

mod bank;
mod error;
mod memory;
mod projection;
mod runner;
mod sqlite;
mod typed;

pub use bank::{
    ACCOUNT_STREAM_PREFIX, AccountOpened, AccountRow, AccountSummary, FraudReport, FraudRow,
    MoneyMoved, accounts_with_balance_above, all_accounts, flagged_accounts,
};
pub use error::{ProjectionError, Result};
pub use memory::{MemoryReadModel, MemoryReadModelHandle};
pub use projection::{Checkpoint, Projection, ReadModel};
pub use runner::{ProjectionRunner, ProjectionStatus, ProjectionWatcher, RunState, RunnerOptions};
pub use sqlite::{CHECKPOINT_TABLE, SqliteReadModel, read_checkpoint};
pub use typed::{TypedProjection, TypedProjectionAdapter};
