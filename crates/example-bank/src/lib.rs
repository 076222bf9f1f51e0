//! The article "Introduction to Event Sourcing", end to end on Factum: a bank account whose
//! state is rebuilt from its events, commands that produce events, a read model for the query
//! "all accounts with balance > $1000", snapshots for long histories, a new projection built by
//! replaying all history, and events whose schema changed, read through upcasters.
//!
//! Run it with `cargo run -p factum-example-bank` (a temporary embedded store, removed at the
//! end) or `factum demo bank` (the same, with `--data-dir` and `--json`). It needs no service.
//!
//! # Where each piece of the article lives
//!
//! The domain types are the toolkit's own documented examples, so they live in the toolkit's
//! crates; this crate strings them together and prints what happens.
//!
//! | The article | In Factum |
//! |---|---|
//! | `AccountOpened`, `MoneyDeposited`, `MoneyWithdrawn`; `BankAccount` and its `apply`; "Insufficient funds" | [`factum::aggregate::examples::bank`] (`crates/aggregate/src/examples/bank.rs`): money in integer cents, the check in the command handler, `apply` never fails |
//! | `load_account`: replay the stored events | [`Repository::load`](factum::aggregate::Repository::load); commands through [`Repository::execute`](factum::aggregate::Repository::execute), saved with an exact expected revision and retried on conflict |
//! | `load_account_with_snapshot` | [`Repository::with_snapshots`](factum::aggregate::Repository::with_snapshots) and [`SnapshotPolicy`](factum::aggregate::SnapshotPolicy); measured by [`snapshot_effect`] |
//! | `project_account_summary` and "all accounts with balance > $1000" | [`factum::projection::AccountSummary`] and [`accounts_with_balance_above`](factum::projection::accounts_with_balance_above) (`crates/projection/src/bank.rs`): a SQLite table and plain SQL; run by [`account_summary`] |
//! | "a fraud detection report: write a new projection and replay all historical events" | [`factum::projection::FraudReport`] and [`flagged_accounts`](factum::projection::flagged_accounts) (the same file); built from position 1 by [`fraud_report`] |
//! | "schema evolution is hard": upcasting old events, `schema_version` from day one | [`factum::aggregate::examples::order`] (`crates/aggregate/src/examples/order.rs`): `OrderPlaced` v1 → v2 → v3 and its upcasters; stored old and loaded new by [`orders`] |
//! | The steps, in order, and the figures they report | this crate: [`run`] / [`run_embedded`], one function per step ([`execute_script`], [`concurrent_deposits`], [`busy_account`], [`account_summary`], [`snapshot_effect`], [`fraud_report`], [`orders`]), and the [`BankReport`] |
//! | The runnable demo | `src/main.rs` here, and `factum demo bank` (`crates/cli/src/demo.rs`, a thin caller of [`run_embedded`]) |
//!
//! The tests (`tests/bank_on_every_backend.rs`) run every step on the in-memory store and on
//! the durable embedded engine.
//!
//! # Example
//!
//! The whole article on the in-memory store, with a small busy account:
//!
//! ```
//! # #[tokio::main]
//! # async fn main() -> Result<(), factum_example_bank::ExampleError> {
//! use std::sync::Arc;
//!
//! use factum::memory::MemoryStore;
//! use factum_example_bank::DemoDir;
//!
//! let read_models = DemoDir::temporary()?;
//! let mut text = Vec::new();
//! let report = factum_example_bank::run(
//!     Arc::new(MemoryStore::new()),
//!     read_models.path(),
//!     200,
//!     &mut text,
//! )
//! .await?;
//!
//! assert!(report.refused.message.starts_with("Insufficient funds"));
//! assert_eq!(report.rich_accounts[0].account_id, "carol");
//! assert_eq!(report.snapshot.with.replayed, 0);
//! assert_eq!(report.fraud.flagged, [("dave".to_owned(), 5)]);
//! assert_eq!(report.orders[0].stored_version, 1);
//! assert_eq!(report.orders[0].total_cents, 1_250);
//! assert!(String::from_utf8_lossy(&text).contains("REFUSED: Insufficient funds"));
//! # Ok(())
//! # }
//! ```

mod dir;
mod error;
mod report;
mod steps;
mod text;

pub use dir::DemoDir;
pub use error::{ExampleError, Result};
pub use report::{
    AccountLine, BankReport, Concurrent, FraudStep, Load, OrderLine, Refused, SnapshotEffect,
};
pub use steps::{
    BUSY_ACCOUNT, BUSY_EVENTS_DEFAULT, CONCURRENT_DEPOSIT_CENTS, CONCURRENT_DEPOSITS,
    FRAUD_MAX_WITHDRAWALS, FRAUD_WINDOW, RICH_CENTS, SNAPSHOT_EVERY, account_summary, busy_account,
    concurrent_deposits, execute_script, fraud_report, orders, run, run_embedded, script,
    snapshot_effect,
};
pub use text::{dollars, grouped};
