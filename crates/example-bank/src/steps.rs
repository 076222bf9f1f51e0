//! The article's steps, in the order the demo runs them. Each writes what it does as readable
//! text to `out` and returns its figures; [`run`] strings them together into a [`BankReport`].
//!
//! Every step talks to the store through the [`EventStore`] trait only, so the whole article
//! runs on any backend (the tests run it on the in-memory store and the embedded engine).

use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use factum::aggregate::examples::bank::{AccountCommand, AccountEvent, BankAccount};
use factum::aggregate::examples::order::{self, Order, OrderCommand};
use factum::aggregate::{EventSchema, Repository, RepositoryError, SnapshotPolicy};
use factum::embedded::EmbeddedStore;
use factum::projection::{
    AccountSummary, FraudReport, ProjectionRunner, SqliteReadModel, accounts_with_balance_above,
    all_accounts, flagged_accounts,
};
use factum::{EventStore, ExpectedRevision, ProposedEvent, StreamName};

use crate::error::{ExampleError, Result};
use crate::report::{
    AccountLine, BankReport, Concurrent, FraudStep, Load, OrderLine, Refused, SnapshotEffect,
};
use crate::text::{dollars, dollars_u, grouped};

/// The article's threshold: "balance > $1000", in cents.
pub const RICH_CENTS: i64 = 100_000;

/// The fraud report's rule: more than this many withdrawals...
pub const FRAUD_MAX_WITHDRAWALS: u32 = 3;

/// ...within this window.
pub const FRAUD_WINDOW: Duration = Duration::from_secs(3600);

/// How many deposits race on one account.
pub const CONCURRENT_DEPOSITS: u64 = 8;

/// How much each of them pays in.
pub const CONCURRENT_DEPOSIT_CENTS: u64 = 1_000;

/// How many events the busy account's history holds by default (the article's "an account
/// has 10,000 events").
pub const BUSY_EVENTS_DEFAULT: u64 = 10_000;

/// The snapshot interval of the demo's repository.
pub const SNAPSHOT_EVERY: u64 = 100;

/// The busy account of the snapshot step.
pub const BUSY_ACCOUNT: &str = "erin";

/// How long a projection may take to catch up before the demo gives up.
const CATCH_UP_TIMEOUT: Duration = Duration::from_secs(120);

/// The busy account's history is written in appends of this many events.
const IMPORT_BATCH_EVENTS: u64 = 1_000;

/// Runs the whole article on a durable embedded store in `dir` (the events in `dir/events`,
/// the SQLite read models beside them), writing each step to `out`, and returns its figures.
/// `busy_events` sizes the snapshot step ([`BUSY_EVENTS_DEFAULT`] is the article's figure).
///
/// `dir` should be missing or empty: [`DemoDir`](crate::DemoDir) makes one.
pub async fn run_embedded(dir: &Path, busy_events: u64, out: &mut dyn Write) -> Result<BankReport> {
    let store = Arc::new(EmbeddedStore::open(dir.join("events")).map_err(|error| {
        store_error(format!("cannot open the store in {}", dir.display()), error)
    })?);
    writeln!(
        out,
        "Factum demo: the article's bank, on an embedded store in {}",
        dir.display()
    )?;
    let report = run(store.clone(), dir, busy_events, out).await;
    // Closing waits for the writer thread; a runner's reader task may still hold a clone
    // for a moment, in which case dropping ours is enough.
    match Arc::try_unwrap(store) {
        Ok(store) => store.close(),
        Err(store) => drop(store),
    }
    report
}

/// An I/O failure opening the store gets the context of what was opened.
fn store_error(context: String, error: factum::Error) -> ExampleError {
    match error {
        factum::Error::Io(source) => ExampleError::io(context, source),
        other => other.into(),
    }
}

/// Runs the whole article on `store`, with its SQLite read models in `read_model_dir`, writing
/// each step to `out` (everything after the line that names the store, which
/// [`run_embedded`] writes), and returns its figures.
///
/// The store should hold no `account-*` or `order-*` streams yet: the figures assume the
/// demo's accounts are the only ones.
pub async fn run(
    store: Arc<dyn EventStore>,
    read_model_dir: &Path,
    busy_events: u64,
    out: &mut dyn Write,
) -> Result<BankReport> {
    writeln!(
        out,
        "Money is integer cents; every command goes through Repository<BankAccount>."
    )?;

    // Step 1: commands through the repository.
    writeln!(out)?;
    writeln!(out, "1. Accounts opened, commands executed")?;
    let accounts = Repository::<BankAccount>::new(store.clone(), EventSchema::json());
    let script = script();
    let refused = execute_script(&accounts, &script, out).await?;
    let concurrent = concurrent_deposits(&accounts, out).await?;
    // Step 3 needs its events in the summary too, so the busy account is written now and
    // measured after the projections.
    let snapshots = accounts
        .clone()
        .with_snapshots(SnapshotPolicy::every(SNAPSHOT_EVERY));
    let busy_written = busy_account(store.as_ref(), &snapshots, busy_events, out).await?;
    // The script, the racing deposits, and the busy account's open and last deposit (its
    // imported history is appended directly, not commanded).
    let commands = script.len() as u64 + CONCURRENT_DEPOSITS + 2;

    // Step 2: the account_summary projection and the article's query.
    writeln!(out)?;
    let (accounts_summary, rich_accounts) =
        account_summary(store.clone(), read_model_dir, out).await?;

    // Step 3: the snapshot effect.
    writeln!(out)?;
    let snapshot = snapshot_effect(&accounts, &snapshots, busy_written, out).await?;

    // Step 4: a projection written later, built by replaying all history.
    writeln!(out)?;
    let fraud = fraud_report(store.clone(), read_model_dir, out).await?;

    // Step 5: upcasting.
    writeln!(out)?;
    writeln!(
        out,
        "5. Schema evolution: OrderPlaced v1 {{customer, total in dollars}} -> v2 {{customer_name, total_cents}} -> v3 (+ currency)"
    )?;
    let orders = orders(store, out).await?;

    writeln!(out)?;
    writeln!(
        out,
        "Done: every figure above came from the event store, its projections and its snapshots."
    )?;
    Ok(BankReport {
        commands,
        refused,
        concurrent,
        accounts: accounts_summary,
        rich_accounts,
        snapshot,
        fraud,
        orders,
    })
}

/// The commands of step 1, in order: (account id, command). One of them, Bob's $1,000.00
/// withdrawal from $150.00, is refused for insufficient funds; Dave's five quick withdrawals
/// are what the fraud report flags later.
pub fn script() -> Vec<(&'static str, AccountCommand)> {
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

/// Step 1: executes `script` through the repository, one command at a time. Exactly one
/// command must be refused, a withdrawal, and the store's head must not move for it: the
/// article's "Insufficient funds", returned as a value, with nothing written.
pub async fn execute_script(
    accounts: &Repository<BankAccount>,
    script: &[(&str, AccountCommand)],
    out: &mut dyn Write,
) -> Result<Refused> {
    let store = accounts.store();
    let mut refused = None;
    for (id, command) in script {
        let head_before = store.head().await?.0;
        match accounts.execute(id, command).await {
            Ok(done) => writeln!(
                out,
                "   account-{id:<6} {:<32} -> balance {:>10}, revision {}",
                describe(command),
                dollars_u(done.state.balance_cents),
                done.revision.unwrap_or_default()
            )?,
            Err(RepositoryError::Rejected(error)) => {
                let head_after = store.head().await?.0;
                let AccountCommand::Withdraw { amount_cents } = command else {
                    return Err(ExampleError::Script(format!(
                        "{command:?} was refused: {error}"
                    )));
                };
                writeln!(
                    out,
                    "   account-{id:<6} {:<32} -> REFUSED: {error}",
                    describe(command)
                )?;
                writeln!(
                    out,
                    "   {:<47} nothing written (store head {head_before} before, {head_after} after)",
                    ""
                )?;
                refused = Some(Refused {
                    account_id: (*id).to_owned(),
                    requested_cents: *amount_cents,
                    message: error.to_string(),
                    head_before,
                    head_after,
                });
            }
            Err(error) => return Err(error.into()),
        }
    }
    refused.ok_or_else(|| ExampleError::Script("no withdrawal was refused".into()))
}

/// Step 1, continued: [`CONCURRENT_DEPOSITS`] deposits race on Carol's account. Each appends
/// with the revision it decided on, so all but one of a round conflict, reload and decide
/// again: all succeed, in more attempts than deposits, and the balance counts each once.
pub async fn concurrent_deposits(
    accounts: &Repository<BankAccount>,
    out: &mut dyn Write,
) -> Result<Concurrent> {
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
    let carol = accounts.load("carol").await?;
    writeln!(
        out,
        "   account-carol  {CONCURRENT_DEPOSITS} concurrent deposits of {} -> all applied in {attempts} attempts, balance {}, revision {}",
        dollars_u(CONCURRENT_DEPOSIT_CENTS),
        dollars_u(carol.state.balance_cents),
        carol.revision.unwrap_or_default()
    )?;
    writeln!(
        out,
        "                  (a deposit that met a newer revision reloaded the account and decided again)"
    )?;
    Ok(Concurrent {
        deposits: CONCURRENT_DEPOSITS,
        attempts: u64::from(attempts),
        balance_cents: carol.state.balance_cents,
    })
}

/// Step 3's history: the busy account ([`BUSY_ACCOUNT`]) opened and `events` deposits of
/// $1.00 appended in batches (an import of history, fast on any disk), then one deposit
/// through `snapshots`, a repository with a snapshot policy, which takes the snapshot.
/// Returns how many events the stream holds.
pub async fn busy_account(
    store: &dyn EventStore,
    snapshots: &Repository<BankAccount>,
    events: u64,
    out: &mut dyn Write,
) -> Result<u64> {
    let id = BUSY_ACCOUNT;
    let open = AccountCommand::Open {
        owner: "Erin".into(),
        initial_balance_cents: 0,
    };
    let opened = snapshots.execute(id, &open).await?;
    let stream = snapshots.stream_name(id)?;
    let schema = snapshots.schema();
    let mut revision = opened
        .revision
        .ok_or_else(|| ExampleError::Script("opening an account wrote no event".into()))?;
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
    let done = snapshots
        .execute(id, &AccountCommand::Deposit { amount_cents: 100 })
        .await?;
    if done.snapshot_revision.is_none() {
        return Err(ExampleError::Script(
            "the repository took no snapshot of the busy account".into(),
        ));
    }
    writeln!(
        out,
        "   account-{id:<6} opened for Erin; {} deposits of $1.00 imported in appends of {IMPORT_BATCH_EVENTS},",
        grouped(events)
    )?;
    writeln!(
        out,
        "   {:<14} then one more deposit through a repository with snapshots every {SNAPSHOT_EVERY} events",
        ""
    )?;
    Ok(done.revision.map_or(0, |revision| revision + 1))
}

/// Step 2: the article's `account_summary` projection, caught up into a SQLite read model
/// (`account_summary.sqlite` in `dir`), and its query "all accounts with balance > $1,000" as
/// plain SQL. Returns every account by id, and the query's answer, richest first.
pub async fn account_summary(
    store: Arc<dyn EventStore>,
    dir: &Path,
    out: &mut dyn Write,
) -> Result<(Vec<AccountLine>, Vec<AccountLine>)> {
    let summary_path = dir.join("account_summary.sqlite");
    let model = SqliteReadModel::open(&summary_path, AccountSummary)?;
    let mut runner = ProjectionRunner::new(store, model)?;
    let status = runner.run_until_caught_up(CATCH_UP_TIMEOUT).await?;
    writeln!(
        out,
        "2. Projection account_summary (SQLite read model {}): {} events processed, checkpoint at position {}",
        summary_path.display(),
        grouped(status.checkpoint.processed_events),
        status.checkpoint.position.0
    )?;
    let db = runner.stop().await?.connection();
    let all: Vec<AccountLine> = all_accounts(db)?.into_iter().map(Into::into).collect();
    writeln!(out, "   {:<10} {:<8} {:>14}", "account", "owner", "balance")?;
    for row in &all {
        writeln!(
            out,
            "   {:<10} {:<8} {:>14}",
            row.account_id,
            row.owner,
            dollars(row.balance_cents)
        )?;
    }
    writeln!(
        out,
        "   Query: all accounts with balance > $1,000 (100,000 cents):"
    )?;
    writeln!(
        out,
        "     SELECT account_id, owner, balance_cents FROM account_summary WHERE balance_cents > {RICH_CENTS}"
    )?;
    let rich: Vec<AccountLine> = accounts_with_balance_above(db, RICH_CENTS)?
        .into_iter()
        .map(Into::into)
        .collect();
    for row in &rich {
        writeln!(
            out,
            "     balance > $1,000: {} ({}) {}",
            row.account_id,
            row.owner,
            dollars(row.balance_cents)
        )?;
    }
    Ok((all, rich))
}

/// Step 3: the article's `load_account_with_snapshot`. The busy account is loaded twice, by
/// `accounts` (every event replayed) and by `snapshots` (the latest snapshot, then only the
/// events after it), timed; both must give the same state. `events` is how many events its
/// stream holds.
pub async fn snapshot_effect(
    accounts: &Repository<BankAccount>,
    snapshots: &Repository<BankAccount>,
    events: u64,
    out: &mut dyn Write,
) -> Result<SnapshotEffect> {
    writeln!(
        out,
        "3. Snapshots: account-{BUSY_ACCOUNT} has {} events",
        grouped(events)
    )?;
    let without = timed_load(accounts, BUSY_ACCOUNT).await?;
    let with = timed_load(snapshots, BUSY_ACCOUNT).await?;
    if without.balance_cents != with.balance_cents {
        return Err(ExampleError::Script(
            "the snapshot load disagrees with the full replay".into(),
        ));
    }
    writeln!(
        out,
        "   without snapshots: replayed {} events in {:.3} ms",
        grouped(without.replayed),
        without.millis
    )?;
    writeln!(
        out,
        "   with snapshots:    replayed {} events after the snapshot at revision {} in {:.3} ms",
        grouped(with.replayed),
        with.snapshot_revision
            .map_or_else(|| "(none)".to_owned(), |revision| revision.to_string()),
        with.millis
    )?;
    writeln!(
        out,
        "   same state either way: balance {}",
        dollars_u(with.balance_cents)
    )?;
    Ok(SnapshotEffect {
        account_id: BUSY_ACCOUNT.to_owned(),
        events,
        without,
        with,
    })
}

async fn timed_load(repository: &Repository<BankAccount>, id: &str) -> Result<Load> {
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

/// Step 4: the article's "write a new projection and replay all historical events through
/// it". The fraud report (more than [`FRAUD_MAX_WITHDRAWALS`] withdrawals within
/// [`FRAUD_WINDOW`]) did not exist when the accounts were written; its read model
/// (`fraud_report.sqlite` in `dir`) starts empty and is built from position 1.
pub async fn fraud_report(
    store: Arc<dyn EventStore>,
    dir: &Path,
    out: &mut dyn Write,
) -> Result<FraudStep> {
    let fraud_path = dir.join("fraud_report.sqlite");
    writeln!(
        out,
        "4. A new projection, added after the fact: fraud_report (more than {FRAUD_MAX_WITHDRAWALS} withdrawals within {} minutes)",
        FRAUD_WINDOW.as_secs() / 60
    )?;
    let model = SqliteReadModel::open(
        &fraud_path,
        FraudReport::new(FRAUD_MAX_WITHDRAWALS, FRAUD_WINDOW),
    )?;
    let mut runner = ProjectionRunner::new(store, model)?;
    let status = runner.run_until_caught_up(CATCH_UP_TIMEOUT).await?;
    let replayed_events = status.checkpoint.processed_events;
    writeln!(
        out,
        "   built by replaying all history from position 1: {} account events processed",
        grouped(replayed_events)
    )?;
    let db = runner.stop().await?.connection();
    let flagged: Vec<(String, i64)> = flagged_accounts(db)?
        .into_iter()
        .map(|row| (row.account_id, row.withdrawals_in_window))
        .collect();
    for (account, withdrawals) in &flagged {
        writeln!(
            out,
            "   fraud report: {account} flagged, {withdrawals} withdrawals within one window"
        )?;
    }
    if flagged.is_empty() {
        writeln!(out, "   fraud report: no account flagged")?;
    }
    Ok(FraudStep {
        replayed_events,
        flagged,
    })
}

/// Step 5: schema evolution. Stores orders as the code of years past did (`OrderPlaced` v1 and
/// v2, written raw), then places, ships and loads orders with today's code, whose schema
/// ([`order::schema`]) upcasts every stored version to v3.
pub async fn orders(store: Arc<dyn EventStore>, out: &mut dyn Write) -> Result<Vec<OrderLine>> {
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
        writeln!(
            out,
            "   order-{id}: stored by old code as OrderPlaced v{version} {data}"
        )?;
    }
    let orders = Repository::<Order>::new(store, order::schema());
    let place = OrderCommand::Place {
        customer_name: "Carol".into(),
        total_cents: 2_000,
        currency: "EUR".into(),
    };
    orders.execute("1003", &place).await?;
    writeln!(
        out,
        "   order-1003: placed by today's code (stored as OrderPlaced v3)"
    )?;
    let ship = OrderCommand::Ship {
        carrier: "Parcelo".into(),
    };
    orders.execute("1001", &ship).await?;
    writeln!(
        out,
        "   order-1001: shipped by today's code, after loading its v1 event through the upcasters"
    )?;

    let mut lines = Vec::new();
    for id in ["1001", "1002", "1003"] {
        let history = orders.history(id).await?;
        let stored_version = history
            .first()
            .map(|entry| entry.schema_version)
            .ok_or_else(|| ExampleError::Script(format!("order-{id} has no OrderPlaced event")))?;
        let state = orders.load(id).await?.state;
        writeln!(
            out,
            "   order-{id}: stored as v{stored_version}, loads as v3: customer_name {}, total_cents {}, currency {}{}",
            state.customer_name.as_deref().unwrap_or("?"),
            state.total_cents,
            state.currency,
            if state.shipped { ", shipped" } else { "" }
        )?;
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
