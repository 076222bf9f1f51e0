//! What the demo did, with its figures: each step returns its part of a [`BankReport`], so the
//! tests check numbers and not only the words printed.

use factum::projection::AccountRow;
use serde::Serialize;

/// The concurrent deposits on one account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Concurrent {
    /// How many deposits raced.
    pub deposits: u64,
    /// How many times they were handled in all (each conflict costs one more).
    pub attempts: u64,
    /// The account's balance afterwards, in cents.
    pub balance_cents: u64,
}

/// An account as the read model shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AccountLine {
    /// The account id (its stream is `account-<id>`).
    pub account_id: String,
    /// Its owner.
    pub owner: String,
    /// Its balance, in cents.
    pub balance_cents: i64,
}

impl From<AccountRow> for AccountLine {
    fn from(row: AccountRow) -> AccountLine {
        AccountLine {
            account_id: row.account_id,
            owner: row.owner,
            balance_cents: row.balance_cents,
        }
    }
}

/// The withdrawal the handler refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Refused {
    /// The account.
    pub account_id: String,
    /// What was asked for, in cents.
    pub requested_cents: u64,
    /// The error's text ("Insufficient funds: ...").
    pub message: String,
    /// The store's head before the command.
    pub head_before: u64,
    /// The store's head after it: the same, since nothing was written.
    pub head_after: u64,
}

/// One load of the busy account.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Load {
    /// How many events were replayed.
    pub replayed: u64,
    /// The revision of the snapshot the load started from, if any.
    pub snapshot_revision: Option<u64>,
    /// How long the load took, in milliseconds.
    pub millis: f64,
    /// The balance loaded, in cents.
    pub balance_cents: u64,
}

/// The snapshot step.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SnapshotEffect {
    /// The busy account.
    pub account_id: String,
    /// How many events its stream holds.
    pub events: u64,
    /// The load replaying every event.
    pub without: Load,
    /// The load from the latest snapshot.
    pub with: Load,
}

/// The fraud report step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FraudStep {
    /// How many account events the new projection replayed from the start of history.
    pub replayed_events: u64,
    /// The flagged accounts and their most withdrawals within one window.
    pub flagged: Vec<(String, i64)>,
}

/// One order of the upcasting step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OrderLine {
    /// The order id (its stream is `order-<id>`).
    pub order_id: String,
    /// The schema version its `OrderPlaced` event was stored with.
    pub stored_version: u32,
    /// What it loads as today.
    pub customer_name: String,
    /// Its total in cents.
    pub total_cents: u64,
    /// Its currency.
    pub currency: String,
    /// Whether it was shipped.
    pub shipped: bool,
}

/// What the bank demo did, with its figures.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BankReport {
    /// How many commands went through the repository (refused ones included).
    pub commands: u64,
    /// The refused withdrawal.
    pub refused: Refused,
    /// The concurrent deposits.
    pub concurrent: Concurrent,
    /// Every account of the `account_summary` read model, by id.
    pub accounts: Vec<AccountLine>,
    /// The answer to "all accounts with balance > $1,000", richest first.
    pub rich_accounts: Vec<AccountLine>,
    /// The snapshot step.
    pub snapshot: SnapshotEffect,
    /// The fraud report step.
    pub fraud: FraudStep,
    /// The upcasting step.
    pub orders: Vec<OrderLine>,
}
