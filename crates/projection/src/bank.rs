//! The article's bank projections on SQLite: `account_summary` (owner and balance per account,
//! and the query "all accounts with balance > $1000") and a fraud report added later and built
//! by replaying history ("accounts with more than N withdrawals within an hour").
//!
//! Accounts live in streams `account-<id>`; amounts are integer cents. Event data is JSON:
//! `AccountOpened {"owner": "Alice", "initial_balance_cents": 0}`,
//! `MoneyDeposited {"amount_cents": 500}`, `MoneyWithdrawn {"amount_cents": 200}`.

use std::time::Duration;

use factum_core::{EventFilter, RecordedEvent};
use rusqlite::{Connection, params};
use serde::{Deserialize, Serialize};

use crate::error::{ProjectionError, Result};
use crate::projection::Projection;

/// The stream prefix of bank accounts.
pub const ACCOUNT_STREAM_PREFIX: &str = "account-";

/// The data of `AccountOpened`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountOpened {
    /// Who owns the account.
    pub owner: String,
    /// The opening balance, in cents.
    pub initial_balance_cents: i64,
}

/// The data of `MoneyDeposited` and `MoneyWithdrawn`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MoneyMoved {
    /// How much, in cents.
    pub amount_cents: i64,
}

/// One row of the `account_summary` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountRow {
    /// The account's id: its stream name without [`ACCOUNT_STREAM_PREFIX`].
    pub account_id: String,
    /// Who owns it.
    pub owner: String,
    /// Its balance in cents.
    pub balance_cents: i64,
}

/// The account id of an event's stream.
fn account_id(event: &RecordedEvent) -> &str {
    let stream = event.stream.as_str();
    stream.strip_prefix(ACCOUNT_STREAM_PREFIX).unwrap_or(stream)
}

fn decode<T: serde::de::DeserializeOwned>(projection: &str, event: &RecordedEvent) -> Result<T> {
    event
        .data_json()
        .map_err(|error| ProjectionError::apply(projection, event, error))
}

/// The article's `account_summary` projection: one row per account with its owner and balance,
/// in the table `account_summary (account_id TEXT PRIMARY KEY, owner TEXT, balance_cents
/// INTEGER)`. Other event types in account streams are ignored; bad data stops the projection
/// at that event.
///
/// ```
/// use factum_projection::{AccountSummary, SqliteReadModel, accounts_with_balance_above};
///
/// let model = SqliteReadModel::open_in_memory(AccountSummary).unwrap();
/// // The query is plain SQL over the table.
/// let rich = accounts_with_balance_above(model.connection(), 100_000).unwrap();
/// assert!(rich.is_empty());
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct AccountSummary;

impl Projection for AccountSummary {
    type Model = Connection;

    fn name(&self) -> &str {
        "account_summary"
    }

    fn filter(&self) -> Option<EventFilter> {
        Some(EventFilter::stream_prefix(ACCOUNT_STREAM_PREFIX))
    }

    fn init(&mut self, db: &mut Connection) -> Result<()> {
        db.execute_batch(
            "CREATE TABLE IF NOT EXISTS account_summary (
                 account_id TEXT PRIMARY KEY,
                 owner TEXT NOT NULL,
                 balance_cents INTEGER NOT NULL
             );
             CREATE INDEX IF NOT EXISTS account_summary_balance
                 ON account_summary (balance_cents);",
        )?;
        Ok(())
    }

    fn clear(&mut self, db: &mut Connection) -> Result<()> {
        db.execute_batch("DELETE FROM account_summary")?;
        Ok(())
    }

    fn apply(&mut self, db: &mut Connection, event: &RecordedEvent) -> Result<()> {
        let name = self.name();
        match &*event.event_type {
            "AccountOpened" => {
                let opened: AccountOpened = decode(name, event)?;
                db.prepare_cached(
                    "INSERT INTO account_summary (account_id, owner, balance_cents)
                     VALUES (?1, ?2, ?3)
                     ON CONFLICT(account_id) DO UPDATE SET owner = ?2, balance_cents = ?3",
                )?
                .execute(params![
                    account_id(event),
                    opened.owner,
                    opened.initial_balance_cents
                ])?;
            }
            "MoneyDeposited" | "MoneyWithdrawn" => {
                let moved: MoneyMoved = decode(name, event)?;
                let delta = if &*event.event_type == "MoneyDeposited" {
                    moved.amount_cents
                } else {
                    -moved.amount_cents
                };
                db.prepare_cached(
                    "UPDATE account_summary SET balance_cents = balance_cents + ?2
                     WHERE account_id = ?1",
                )?
                .execute(params![account_id(event), delta])?;
            }
            _ => {}
        }
        Ok(())
    }
}

/// The article's query: every account whose balance is above `cents` ("balance > $1000" is
/// `100_000`), richest first.
pub fn accounts_with_balance_above(db: &Connection, cents: i64) -> Result<Vec<AccountRow>> {
    let mut statement = db.prepare_cached(
        "SELECT account_id, owner, balance_cents FROM account_summary
         WHERE balance_cents > ?1 ORDER BY balance_cents DESC, account_id",
    )?;
    let rows = statement.query_map(params![cents], |row| {
        Ok(AccountRow {
            account_id: row.get(0)?,
            owner: row.get(1)?,
            balance_cents: row.get(2)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Every row of `account_summary`, by account id.
pub fn all_accounts(db: &Connection) -> Result<Vec<AccountRow>> {
    accounts_with_balance_above(db, i64::MIN).map(|mut rows| {
        rows.sort_by(|a, b| a.account_id.cmp(&b.account_id));
        rows
    })
}

/// A simple fraud report: accounts with more than `max_withdrawals` withdrawals within any
/// `window` (by the events' recorded time), in the table
/// `fraud_report (account_id TEXT PRIMARY KEY, withdrawals_in_window INTEGER, window_end_micros
/// INTEGER)` — the worst window seen and when it ended. Recent withdrawals are kept in
/// `fraud_recent_withdrawals`, pruned to the window.
///
/// The article's "write a new projection and replay": start it on a store with history and it
/// builds its report from the first event.
///
/// ```
/// use std::time::Duration;
/// use factum_projection::{FraudReport, SqliteReadModel, flagged_accounts};
///
/// let report = FraudReport::new(3, Duration::from_secs(3600));
/// let model = SqliteReadModel::open_in_memory(report).unwrap();
/// assert!(flagged_accounts(model.connection()).unwrap().is_empty());
/// ```
#[derive(Debug, Clone, Copy)]
pub struct FraudReport {
    max_withdrawals: u32,
    window: Duration,
}

impl FraudReport {
    /// Flags accounts with more than `max_withdrawals` withdrawals within `window`.
    pub fn new(max_withdrawals: u32, window: Duration) -> FraudReport {
        FraudReport {
            max_withdrawals,
            window,
        }
    }
}

impl Projection for FraudReport {
    type Model = Connection;

    fn name(&self) -> &str {
        "fraud_report"
    }

    fn filter(&self) -> Option<EventFilter> {
        Some(EventFilter::stream_prefix(ACCOUNT_STREAM_PREFIX))
    }

    fn init(&mut self, db: &mut Connection) -> Result<()> {
        db.execute_batch(
            "CREATE TABLE IF NOT EXISTS fraud_recent_withdrawals (
                 account_id TEXT NOT NULL,
                 recorded_at_micros INTEGER NOT NULL
             );
             CREATE INDEX IF NOT EXISTS fraud_recent_withdrawals_account
                 ON fraud_recent_withdrawals (account_id, recorded_at_micros);
             CREATE TABLE IF NOT EXISTS fraud_report (
                 account_id TEXT PRIMARY KEY,
                 withdrawals_in_window INTEGER NOT NULL,
                 window_end_micros INTEGER NOT NULL
             );",
        )?;
        Ok(())
    }

    fn clear(&mut self, db: &mut Connection) -> Result<()> {
        db.execute_batch("DELETE FROM fraud_recent_withdrawals; DELETE FROM fraud_report;")?;
        Ok(())
    }

    fn apply(&mut self, db: &mut Connection, event: &RecordedEvent) -> Result<()> {
        if &*event.event_type != "MoneyWithdrawn" {
            return Ok(());
        }
        let account = account_id(event);
        let now = event.recorded_at.unix_micros() as i64;
        // A withdrawal exactly one window earlier is outside it: the window is half-open.
        let window_start = event.recorded_at.saturating_sub(self.window).unix_micros() as i64;
        db.prepare_cached(
            "DELETE FROM fraud_recent_withdrawals
             WHERE account_id = ?1 AND recorded_at_micros <= ?2",
        )?
        .execute(params![account, window_start])?;
        db.prepare_cached(
            "INSERT INTO fraud_recent_withdrawals (account_id, recorded_at_micros) VALUES (?1, ?2)",
        )?
        .execute(params![account, now])?;
        let count: i64 = db
            .prepare_cached("SELECT count(*) FROM fraud_recent_withdrawals WHERE account_id = ?1")?
            .query_row(params![account], |row| row.get(0))?;
        if count > i64::from(self.max_withdrawals) {
            db.prepare_cached(
                "INSERT INTO fraud_report (account_id, withdrawals_in_window, window_end_micros)
                 VALUES (?1, ?2, ?3)
                 ON CONFLICT(account_id) DO UPDATE SET withdrawals_in_window = ?2,
                     window_end_micros = ?3
                 WHERE ?2 > withdrawals_in_window",
            )?
            .execute(params![account, count, now])?;
        }
        Ok(())
    }
}

/// One row of the fraud report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FraudRow {
    /// The account.
    pub account_id: String,
    /// The most withdrawals seen within one window.
    pub withdrawals_in_window: i64,
}

/// The accounts the fraud report flags, by account id.
pub fn flagged_accounts(db: &Connection) -> Result<Vec<FraudRow>> {
    let mut statement = db.prepare_cached(
        "SELECT account_id, withdrawals_in_window FROM fraud_report ORDER BY account_id",
    )?;
    let rows = statement.query_map([], |row| {
        Ok(FraudRow {
            account_id: row.get(0)?,
            withdrawals_in_window: row.get(1)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}
