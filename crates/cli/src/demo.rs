//! `factum demo bank`: the article's bank, runnable, on an embedded store with no service.
//!
//! The demo's steps live in [`bank`], which prints each step as readable text while it goes
//! and returns a [`BankReport`] with the numbers it printed, so its tests check the numbers and
//! not only the words. The steps:
//!
//! 1. accounts opened and commands executed through the `Repository` of the article's
//!    `BankAccount` (integer cents), one withdrawal refused with "Insufficient funds" that
//!    writes nothing;
//! 2. the `account_summary` projection in a SQLite read model, and the article's query "all
//!    accounts with balance > $1,000";
//! 3. the snapshot effect: a busy account loaded with and without snapshots;
//! 4. a fraud report added later, built by replaying all history;
//! 5. orders whose `OrderPlaced` schema changed twice, stored as v1 and v2 and loaded as v3.
//!
//! The store lives in a fresh temporary directory, removed at the end, unless `--data-dir`
//! names one (missing or empty; it is kept, with the read models beside the events).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use factum_aggregate::examples::bank::{AccountCommand, AccountEvent, BankAccount};
use factum_aggregate::examples::order::{self, Order, OrderCommand};
use factum_aggregate::{EventSchema, Repository, RepositoryError, SnapshotPolicy};
use factum_core::{EventStore, ExpectedRevision, ProposedEvent, StreamName};
use factum_log::EmbeddedStore;
use factum_projection::{
    AccountRow, AccountSummary, FraudReport, ProjectionRunner, SqliteReadModel,
    accounts_with_balance_above, all_accounts, flagged_accounts,
};
use serde::Serialize;

/// The article's threshold: "balance > $1000", in cents.
pub const RICH_CENTS: i64 = 100_000;

/// The fraud report's rule: more than this many withdrawals...
pub const FRAUD_MAX_WITHDRAWALS: u32 = 3;

/// ...within this window.
pub const FRAUD_WINDOW: Duration = Duration::from_secs(3600);

/// How many deposits race on one account.
const CONCURRENT_DEPOSITS: u64 = 8;

/// How much each of them pays in.
const CONCURRENT_DEPOSIT_CENTS: u64 = 1_000;

/// How long a projection may take to catch up before the demo gives up.
const CATCH_UP_TIMEOUT: Duration = Duration::from_secs(120);

/// How many events the busy account's history holds by default.
const BUSY_EVENTS_DEFAULT: u64 = 10_000;

/// The busy account's history is written in appends of this many events.
const IMPORT_BATCH_EVENTS: u64 = 1_000;

/// The snapshot interval of the demo's repository.
const SNAPSHOT_EVERY: u64 = 100;

/// The arguments of `factum demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Which demo.
    #[command(subcommand)]
    pub demo: Demo,
}

/// The demos.
#[derive(Debug, Subcommand)]
pub enum Demo {
    /// The article's bank, end to end: accounts and commands through the repository (one
    /// withdrawal refused for insufficient funds), the account_summary projection in SQLite
    /// and the query "balance > $1,000", the effect of snapshots on a busy account, a fraud
    /// report added later and built by replaying history, and orders whose event schema
    /// changed over time loaded through upcasters.
    ///
    /// Needs no service: the store is a fresh temporary directory, removed at the end, unless
    /// --data-dir names one (missing or empty; it is kept).
    #[command(verbatim_doc_comment)]
    Bank(BankArgs),
}

/// The arguments of `factum demo bank`.
#[derive(Debug, Args)]
pub struct BankArgs {
    /// After the text, prints the demo's figures as one JSON object on the last line.
    #[arg(long)]
    pub json: bool,

    /// How many events the busy account's history holds (the snapshot step).
    #[arg(long, value_name = "N", default_value_t = BUSY_EVENTS_DEFAULT)]
    pub busy_events: u64,
}

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

/// Runs `factum demo ...`.
pub async fn run(data_dir: Option<&Path>, args: DemoArgs) -> anyhow::Result<()> {
    match args.demo {
        Demo::Bank(args) => {
            let workspace = Workspace::new(data_dir)?;
            let mut say = |line: &str| println!("{line}");
            let report = bank(workspace.path(), args.busy_events, &mut say).await;
            // The temporary directory goes whatever happened; a named one stays.
            drop(workspace);
            let report = report?;
            if args.json {
                println!("{}", serde_json::to_string(&report)?);
            }
            Ok(())
        }
    }
}

/// The demo's directory: a named one (kept), or a temporary one removed on drop.
struct Workspace {
    path: PathBuf,
    temporary: bool,
}

impl Workspace {
    fn new(named: Option<&Path>) -> anyhow::Result<Workspace> {
        if let Some(path) = named {
            let empty = match std::fs::read_dir(path) {
                Ok(mut entries) => entries.next().is_none(),
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => true,
                Err(error) => {
                    return Err(error).with_context(|| format!("cannot read {}", path.display()));
                }
            };
            if !empty {
                bail!(
                    "the demo needs a missing or empty data directory, and {} is not empty",
                    path.display()
                );
            }
            std::fs::create_dir_all(path)
                .with_context(|| format!("cannot create {}", path.display()))?;
            return Ok(Workspace {
                path: path.to_path_buf(),
                temporary: false,
            });
        }
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_nanos());
        let path = std::env::temp_dir().join(format!("factum-demo-{}-{nanos}", std::process::id()));
        std::fs::create_dir(&path)
            .with_context(|| format!("cannot create the temporary directory {}", path.display()))?;
        Ok(Workspace {
            path,
            temporary: true,
        })
    }

    fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Workspace {
    fn drop(&mut self) {
        if self.temporary {
            // Best effort: a leftover in the temporary directory is harmless.
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// A count for people: `10,000`.
pub fn grouped(number: u64) -> String {
    let digits = number.to_string();
    let mut grouped = String::new();
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index).is_multiple_of(3) {
            grouped.push(',');
        }
        grouped.push(digit);
    }
    grouped
}

/// Dollars and cents for people: `$1,234.56`.
pub fn dollars(cents: i64) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    let cents = cents.unsigned_abs();
    format!("{sign}${}.{:02}", grouped(cents / 100), cents % 100)
}

fn dollars_u(cents: u64) -> String {
    dollars(i64::try_from(cents).unwrap_or(i64::MAX))
}

/// The commands of step 1, in order: (account, command).
fn script() -> Vec<(&'static str, AccountCommand)> {
    let open = |owner: &str, cents| AccountCommand::Open {
        owner: owner.into(),
        initial_balance_cents: cents,
    };
    let deposit = |cents| AccountCommand::Deposit {
        amount_cents: cents,
    };
    let withdraw = |cents| AccountCommand::Withdraw {
        amount_cents: cents,
    };
    vec![
        ("alice", open("Alice", 0)),
        ("alice", deposit(50_000)),
        ("alice", deposit(75_000)),
        ("alice", withdraw(20_000)),
        ("bob", open("Bob", 20_000)),
        ("bob", withdraw(5_000)),
        // The refused one: $150.00 in the account, $1,000.00 asked for.
        ("bob", withdraw(100_000)),
        ("carol", open("Carol", 250_000)),
        ("carol", deposit(12_345)),
        ("dave", open("Dave", 80_000)),
        ("dave", withdraw(2_000)),
        ("dave", withdraw(2_000)),
        ("dave", withdraw(2_000)),
        ("dave", withdraw(2_000)),
        ("dave", withdraw(2_000)),
    ]
}

fn describe(command: &AccountCommand) -> String {
    match command {
        AccountCommand::Open {
            owner,
            initial_balance_cents,
        } => format!(
            "open for {owner} with {}",
            dollars_u(*initial_balance_cents)
        ),
        AccountCommand::Deposit { amount_cents } => format!("deposit {}", dollars_u(*amount_cents)),
        AccountCommand::Withdraw { amount_cents } => {
            format!("withdraw {}", dollars_u(*amount_cents))
        }
    }
}

/// Runs the bank demo in `dir` (the store in `dir/events`, read models beside it), telling
/// each step to `say`, and returns its figures. `busy_events` sizes the snapshot step.
pub async fn bank(
    dir: &Path,
    busy_events: u64,
    say: &mut dyn FnMut(&str),
) -> anyhow::Result<BankReport> {
    let store = Arc::new(
        EmbeddedStore::open(dir.join("events"))
            .with_context(|| format!("cannot open the store in {}", dir.display()))?,
    );
    let store_dyn: Arc<dyn EventStore> = store.clone();
    say(&format!(
        "Factum demo: the article's bank, on an embedded store in {}",
        dir.display()
    ));
    say("Money is integer cents; every command goes through Repository<BankAccount>.");

    // Step 1: commands through the repository.
    say("");
    say("1. Accounts opened, commands executed");
    let accounts = Repository::<BankAccount>::new(store_dyn.clone(), EventSchema::json());
    let mut refused = None;
    let mut commands = 0;
    for (id, command) in script() {
        let head_before = store.head().await?.0;
        commands += 1;
        match accounts.execute(id, &command).await {
            Ok(done) => say(&format!(
                "   account-{id:<6} {:<32} -> balance {:>10}, revision {}",
                describe(&command),
                dollars_u(done.state.balance_cents),
                done.revision.unwrap_or_default()
            )),
            Err(RepositoryError::Rejected(error)) => {
                let head_after = store.head().await?.0;
                let AccountCommand::Withdraw { amount_cents } = command else {
                    bail!("the demo's script had {command:?} refused: {error}");
                };
                say(&format!(
                    "   account-{id:<6} {:<32} -> REFUSED: {error}",
                    describe(&command)
                ));
                say(&format!(
                    "   {:<47} nothing written (store head {head_before} before, {head_after} after)",
                    ""
                ));
                refused = Some(Refused {
                    account_id: id.to_owned(),
                    requested_cents: amount_cents,
                    message: error.to_string(),
                    head_before,
                    head_after,
                });
            }
            Err(error) => return Err(error.into()),
        }
    }
    let refused = refused.context("the demo's script has a refused withdrawal")?;

    // Concurrent commands on one account: each appends with the revision it decided on, so
    // all but one of a round conflict, reload and decide again.
    let mut racers = Vec::new();
    for _ in 0..CONCURRENT_DEPOSITS {
        let accounts = accounts.clone();
        racers.push(tokio::spawn(async move {
            let deposit = AccountCommand::Deposit {
                amount_cents: CONCURRENT_DEPOSIT_CENTS,
            };
            accounts.execute("carol", &deposit).await
        }));
    }
    let mut attempts = 0;
    for racer in racers {
        attempts += racer.await??.attempts;
    }
    commands += CONCURRENT_DEPOSITS;
    let carol = accounts.load("carol").await?;
    say(&format!(
        "   account-carol  {CONCURRENT_DEPOSITS} concurrent deposits of {} -> all applied in {attempts} attempts, balance {}, revision {}",
        dollars_u(CONCURRENT_DEPOSIT_CENTS),
        dollars_u(carol.state.balance_cents),
        carol.revision.unwrap_or_default()
    ));
    say(
        "                  (a deposit that met a newer revision reloaded the account and decided again)",
    );
    let concurrent = Concurrent {
        deposits: CONCURRENT_DEPOSITS,
        attempts: u64::from(attempts),
        balance_cents: carol.state.balance_cents,
    };

    // Step 3 needs its events in the summary too, so the busy account is written now and
    // measured after the projections.
    let busy_id = "erin";
    let snapshots = accounts
        .clone()
        .with_snapshots(SnapshotPolicy::every(SNAPSHOT_EVERY));
    let busy_written = write_busy_account(store.as_ref(), &snapshots, busy_id, busy_events).await?;
    commands += 2;
    say(&format!(
        "   account-{busy_id:<6} opened for Erin; {} deposits of $1.00 imported in appends of {IMPORT_BATCH_EVENTS},",
        grouped(busy_events)
    ));
    say(&format!(
        "   {:<14} then one more deposit through a repository with snapshots every {SNAPSHOT_EVERY} events",
        ""
    ));

    // Step 2: the account_summary projection and the article's query.
    say("");
    let summary_path = dir.join("account_summary.sqlite");
    let model = SqliteReadModel::open(&summary_path, AccountSummary)?;
    let mut runner = ProjectionRunner::new(store_dyn.clone(), model)?;
    let status = runner.run_until_caught_up(CATCH_UP_TIMEOUT).await?;
    say(&format!(
        "2. Projection account_summary (SQLite read model {}): {} events processed, checkpoint at position {}",
        summary_path.display(),
        grouped(status.checkpoint.processed_events),
        status.checkpoint.position.0
    ));
    let db = runner
        .model()
        .context("the runner is stopped")?
        .connection();
    let all: Vec<AccountLine> = all_accounts(db)?.into_iter().map(Into::into).collect();
    say(&format!(
        "   {:<10} {:<8} {:>14}",
        "account", "owner", "balance"
    ));
    for row in &all {
        say(&format!(
            "   {:<10} {:<8} {:>14}",
            row.account_id,
            row.owner,
            dollars(row.balance_cents)
        ));
    }
    say("   Query: all accounts with balance > $1,000 (100,000 cents):");
    say(&format!(
        "     SELECT account_id, owner, balance_cents FROM account_summary WHERE balance_cents > {RICH_CENTS}"
    ));
    let rich: Vec<AccountLine> = accounts_with_balance_above(db, RICH_CENTS)?
        .into_iter()
        .map(Into::into)
        .collect();
    for row in &rich {
        say(&format!(
            "     balance > $1,000: {} ({}) {}",
            row.account_id,
            row.owner,
            dollars(row.balance_cents)
        ));
    }
    drop(runner);

    // Step 3: the snapshot effect.
    say("");
    say(&format!(
        "3. Snapshots: account-{busy_id} has {} events",
        grouped(busy_written)
    ));
    let without = timed_load(&accounts, busy_id).await?;
    let with = timed_load(&snapshots, busy_id).await?;
    if without.balance_cents != with.balance_cents {
        bail!("the snapshot load disagrees with the full replay");
    }
    say(&format!(
        "   without snapshots: replayed {} events in {:.3} ms",
        grouped(without.replayed),
        without.millis
    ));
    say(&format!(
        "   with snapshots:    replayed {} events after the snapshot at revision {} in {:.3} ms",
        grouped(with.replayed),
        with.snapshot_revision
            .map_or_else(|| "(none)".to_owned(), |revision| revision.to_string()),
        with.millis
    ));
    say(&format!(
        "   same state either way: balance {}",
        dollars_u(with.balance_cents)
    ));
    let snapshot = SnapshotEffect {
        account_id: busy_id.to_owned(),
        events: busy_written,
        without,
        with,
    };

    // Step 4: a projection written later, built by replaying all history.
    say("");
    let fraud_path = dir.join("fraud_report.sqlite");
    say(&format!(
        "4. A new projection, added after the fact: fraud_report (more than {FRAUD_MAX_WITHDRAWALS} withdrawals within {} minutes)",
        FRAUD_WINDOW.as_secs() / 60
    ));
    let model = SqliteReadModel::open(
        &fraud_path,
        FraudReport::new(FRAUD_MAX_WITHDRAWALS, FRAUD_WINDOW),
    )?;
    let mut runner = ProjectionRunner::new(store_dyn.clone(), model)?;
    let status = runner.run_until_caught_up(CATCH_UP_TIMEOUT).await?;
    let replayed_events = status.checkpoint.processed_events;
    say(&format!(
        "   built by replaying all history from position 1: {} account events processed",
        grouped(replayed_events)
    ));
    let db = runner
        .model()
        .context("the runner is stopped")?
        .connection();
    let flagged: Vec<(String, i64)> = flagged_accounts(db)?
        .into_iter()
        .map(|row| (row.account_id, row.withdrawals_in_window))
        .collect();
    for (account, withdrawals) in &flagged {
        say(&format!(
            "   fraud report: {account} flagged, {withdrawals} withdrawals within one window"
        ));
    }
    if flagged.is_empty() {
        say("   fraud report: no account flagged");
    }
    drop(runner);
    let fraud = FraudStep {
        replayed_events,
        flagged,
    };

    // Step 5: upcasting.
    say("");
    say(
        "5. Schema evolution: OrderPlaced v1 {customer, total in dollars} -> v2 {customer_name, total_cents} -> v3 (+ currency)",
    );
    let orders = order_step(store_dyn.clone(), say).await?;

    say("");
    say("Done: every figure above came from the event store, its projections and its snapshots.");
    drop(store_dyn);
    match Arc::try_unwrap(store) {
        Ok(store) => store.close(),
        Err(store) => drop(store),
    }
    Ok(BankReport {
        commands,
        refused,
        concurrent,
        accounts: all,
        rich_accounts: rich,
        snapshot,
        fraud,
        orders,
    })
}

/// Writes the busy account: opened and `events` deposits appended in batches (an import of
/// history, fast on any disk), then one deposit through the snapshotting repository, which
/// takes the snapshot. Returns how many events its stream holds.
async fn write_busy_account(
    store: &EmbeddedStore,
    repository: &Repository<BankAccount>,
    id: &str,
    events: u64,
) -> anyhow::Result<u64> {
    let open = AccountCommand::Open {
        owner: "Erin".into(),
        initial_balance_cents: 0,
    };
    let opened = repository.execute(id, &open).await?;
    let stream = repository.stream_name(id)?;
    let schema = repository.schema();
    let mut revision = opened.revision.context("an open writes an event")?;
    let mut left = events;
    while left > 0 {
        let count = left.min(IMPORT_BATCH_EVENTS);
        let batch = (0..count)
            .map(|_| schema.encode(&AccountEvent::MoneyDeposited { amount_cents: 100 }))
            .collect::<Result<Vec<ProposedEvent>, _>>()?;
        revision = store
            .append(&stream, ExpectedRevision::Exact(revision), batch)
            .await?
            .revision;
        left -= count;
    }
    let done = repository
        .execute(id, &AccountCommand::Deposit { amount_cents: 100 })
        .await?;
    done.snapshot_revision
        .context("the repository took no snapshot of the busy account")?;
    Ok(done.revision.map_or(0, |revision| revision + 1))
}

async fn timed_load(repository: &Repository<BankAccount>, id: &str) -> anyhow::Result<Load> {
    let started = Instant::now();
    let loaded = repository.load(id).await?;
    let millis = started.elapsed().as_secs_f64() * 1000.0;
    Ok(Load {
        replayed: loaded.replayed,
        snapshot_revision: loaded.snapshot_revision,
        millis,
        balance_cents: loaded.state.balance_cents,
    })
}

/// Stores orders as the code of years past did (v1 and v2 `OrderPlaced`), then loads and
/// commands them with today's code, whose schema upcasts them to v3.
async fn order_step(
    store: Arc<dyn EventStore>,
    say: &mut dyn FnMut(&str),
) -> anyhow::Result<Vec<OrderLine>> {
    let old = [
        (
            "1001",
            1,
            serde_json::json!({"customer": "Alice", "total": 12.5}),
        ),
        (
            "1002",
            2,
            serde_json::json!({"customer_name": "Bob", "total_cents": 4_999}),
        ),
    ];
    for (id, version, data) in &old {
        let event = ProposedEvent::json("OrderPlaced", data)?.with_schema_version(*version);
        let stream = StreamName::new(format!("order-{id}"))?;
        store
            .append(&stream, ExpectedRevision::NoStream, vec![event])
            .await?;
        say(&format!(
            "   order-{id}: stored by old code as OrderPlaced v{version} {data}"
        ));
    }
    let orders = Repository::<Order>::new(store, order::schema());
    let place = OrderCommand::Place {
        customer_name: "Carol".into(),
        total_cents: 2_000,
        currency: "EUR".into(),
    };
    orders.execute("1003", &place).await?;
    say("   order-1003: placed by today's code (stored as OrderPlaced v3)");
    let ship = OrderCommand::Ship {
        carrier: "Parcelo".into(),
    };
    orders.execute("1001", &ship).await?;
    say("   order-1001: shipped by today's code, after loading its v1 event through the upcasters");

    let mut lines = Vec::new();
    for id in ["1001", "1002", "1003"] {
        let history = orders.history(id).await?;
        let stored_version = history
            .first()
            .map(|entry| entry.schema_version)
            .context("an order has its OrderPlaced event")?;
        let state = orders.load(id).await?.state;
        say(&format!(
            "   order-{id}: stored as v{stored_version}, loads as v3: customer_name {}, total_cents {}, currency {}{}",
            state.customer_name.as_deref().unwrap_or("?"),
            state.total_cents,
            state.currency,
            if state.shipped { ", shipped" } else { "" }
        ));
        lines.push(OrderLine {
            order_id: id.to_owned(),
            stored_version,
            customer_name: state.customer_name.unwrap_or_default(),
            total_cents: state.total_cents,
            currency: state.currency,
            shipped: state.shipped,
        });
    }
    Ok(lines)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Money prints as dollars and cents, thousands grouped.
    #[test]
    fn dollars_group_thousands() {
        assert_eq!(dollars(0), "$0.00");
        assert_eq!(dollars(5), "$0.05");
        assert_eq!(dollars(100_000), "$1,000.00");
        assert_eq!(dollars(123_456_789), "$1,234,567.89");
        assert_eq!(dollars(-250), "-$2.50");
        assert_eq!(grouped(999), "999");
        assert_eq!(grouped(10_002), "10,002");
    }

    /// Each step of the demo, checked by its figures: the refused withdrawal wrote nothing, the
    /// summary and the query match the script, snapshots cut the replay, the fraud report
    /// replayed all history and flags the account with five quick withdrawals, and orders
    /// stored as v1 and v2 load as v3.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_bank_demo_steps_hold() {
        let dir = tempfile::tempdir().unwrap();
        let mut text = Vec::new();
        let report = bank(dir.path(), 1_000, &mut |line: &str| {
            text.push(line.to_owned())
        })
        .await
        .unwrap();

        assert_eq!(report.refused.account_id, "bob");
        assert!(report.refused.message.starts_with("Insufficient funds"));
        assert_eq!(report.refused.head_before, report.refused.head_after);

        let balances: Vec<(&str, i64)> = report
            .accounts
            .iter()
            .map(|row| (row.account_id.as_str(), row.balance_cents))
            .collect();
        assert_eq!(
            balances,
            vec![
                ("alice", 105_000),
                ("bob", 15_000),
                ("carol", 270_345),
                ("dave", 70_000),
                ("erin", 100_100),
            ]
        );
        let rich: Vec<&str> = report
            .rich_accounts
            .iter()
            .map(|row| row.account_id.as_str())
            .collect();
        assert_eq!(rich, vec!["carol", "alice", "erin"]);

        assert_eq!(report.snapshot.events, 1_002);
        assert_eq!(report.snapshot.without.replayed, 1_002);
        assert_eq!(report.snapshot.without.snapshot_revision, None);
        assert_eq!(report.snapshot.with.snapshot_revision, Some(1_001));
        assert_eq!(report.snapshot.with.replayed, 0);
        assert_eq!(report.snapshot.with.balance_cents, 100_100);

        assert_eq!(report.concurrent.deposits, 8);
        assert!(report.concurrent.attempts >= 8);
        assert_eq!(report.concurrent.balance_cents, 270_345);

        // Every account event: 14 accepted commands, 8 concurrent deposits, the busy account's
        // 1,002.
        assert_eq!(report.fraud.replayed_events, 14 + 8 + 1_002);
        assert_eq!(report.fraud.flagged, vec![("dave".to_owned(), 5)]);

        let orders: Vec<(u32, &str, u64, &str, bool)> = report
            .orders
            .iter()
            .map(|order| {
                (
                    order.stored_version,
                    order.customer_name.as_str(),
                    order.total_cents,
                    order.currency.as_str(),
                    order.shipped,
                )
            })
            .collect();
        assert_eq!(
            orders,
            vec![
                (1, "Alice", 1_250, "USD", true),
                (2, "Bob", 4_999, "USD", false),
                (3, "Carol", 2_000, "EUR", false),
            ]
        );
        assert!(
            text.iter()
                .any(|line| line.contains("REFUSED: Insufficient funds"))
        );
    }

    /// A named data directory that holds something is refused before anything is written.
    #[test]
    fn a_used_data_directory_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("something"), b"x").unwrap();
        let refused = Workspace::new(Some(dir.path()));
        assert!(refused.is_err());
        let fresh = Workspace::new(Some(&dir.path().join("fresh"))).unwrap();
        assert!(fresh.path().is_dir());
    }

    /// The temporary directory is removed when the demo ends.
    #[test]
    fn the_temporary_directory_is_removed() {
        let workspace = Workspace::new(None).unwrap();
        let path = workspace.path().to_path_buf();
        assert!(path.is_dir());
        drop(workspace);
        assert!(!path.exists());
    }
}
