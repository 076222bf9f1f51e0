//! `factum bench toolkit`: the figures issue 4 sets targets for, on the embedded engine, each
//! phase in a store of its own so none sees another's events.
//!
//! The run, in order:
//! 1. the engine's append workloads, one writer and 64 (`append_1w_events_per_s`,
//!    `append_64w_events_per_s`), exactly as `factum bench` runs them, so the command figures
//!    have their reference from the same run on the same disk;
//! 2. bank deposits through [`Repository`] with [`BankAccount`], one writer and 64 on distinct
//!    accounts, durable, timed by the same harness (`command_1w_per_s`, `command_64w_per_s`).
//!    The repository snapshots every 100 events, as an application with long-lived aggregates
//!    would: without snapshots every command would replay its whole, ever longer, account;
//! 3. one account of 10,000 events, with the snapshot the repository's policy (every 100)
//!    leaves after its 10,000th event; the time to a ready aggregate without and with snapshots
//!    (`load_10k_no_snapshot_ms`, `load_10k_snapshot_ms`, medians);
//! 4. `--events` bank events in 100-event accounts, then the `account_summary` projection run
//!    from nothing into its SQLite read model, checkpoints committed with every batch
//!    (`rebuild_1m_events_per_s`), checked against the balances the events imply;
//! 5. `--events` `OrderPlaced` events stored as v1 and as many stored as v3 (current), each read
//!    from `$all` and decoded into [`OrderEvent`] (the v1 ones through the v1 → v2 → v3
//!    upcasters), alternately, three passes each (`upcast_overhead_pct` from the medians). The
//!    sums of the decoded totals must agree.
//!
//! Bulk loads (phases 3 to 5) go straight to the store, encoded with the same schemas, so they
//! take seconds rather than one fsync per command.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use async_trait::async_trait;
use bytes::Bytes;
use factum_aggregate::examples::bank::{AccountCommand, AccountEvent, BankAccount};
use factum_aggregate::examples::order::{self, OrderEvent};
use factum_aggregate::{Aggregate, EventSchema, Repository, SnapshotPolicy};
use factum_core::{
    AllStart, CONTENT_TYPE_JSON, EventStore, ExpectedRevision, Position, ProposedEvent,
    ReadAllOptions, StreamName,
};
use factum_log::EmbeddedStore;
use factum_projection::{AccountSummary, ProjectionRunner, SqliteReadModel};
use serde_json::{Map, Value, json};

use crate::drive::{Measured, Timing, Writer, drive};
use crate::embedded::StoreWriter;
use crate::{millis, rounded, seconds};

/// The snapshot interval of the command and load phases.
pub const SNAPSHOT_EVERY: u64 = 100;

/// The events of the account the load phase reads.
pub const LOAD_EVENTS: u64 = 10_000;

/// Events per account of the rebuild phase (one append each).
const REBUILD_ACCOUNT_EVENTS: u64 = 100;

/// Events per stream (and per append) of the upcast phase.
const UPCAST_STREAM_EVENTS: u64 = 1_000;

/// Concurrent appenders of the bulk loads.
const LOAD_TASKS: u64 = 4;

/// Events per `read_all` page of the upcast passes.
const READ_PAGE_EVENTS: u64 = 10_000;

/// Passes of each upcast variant; the median counts.
const UPCAST_PASSES: usize = 3;

/// How a toolkit run is set up.
#[derive(Debug, Clone)]
pub struct ToolkitConfig {
    /// The size of the rebuild and of each upcast variant (the issue says 1,000,000).
    pub events: u64,
    /// Where the stores go (one subdirectory per phase). It must be missing or empty, and is
    /// kept afterwards. `None`: a fresh temporary directory, removed at the end.
    pub data_dir: Option<PathBuf>,
    /// The measured window of each append and command workload.
    pub seconds: f64,
    /// The warm-up before each window.
    pub warmup_seconds: f64,
    /// How many loads of the 10,000-event account are timed, each way (the median counts).
    pub load_repeats: usize,
    /// Whether to report progress on standard error.
    pub progress: bool,
}

impl Default for ToolkitConfig {
    /// The method's defaults: a million events, 10 s windows after 1 s warm-ups, 21 loads.
    fn default() -> ToolkitConfig {
        ToolkitConfig {
            events: 1_000_000,
            data_dir: None,
            seconds: 10.0,
            warmup_seconds: 1.0,
            load_repeats: 21,
            progress: true,
        }
    }
}

/// Runs the toolkit bench and returns its one JSON object (see the module documentation).
pub async fn run_toolkit(config: ToolkitConfig) -> anyhow::Result<Value> {
    ensure!(config.events >= 1, "--events must be at least 1");
    ensure!(config.load_repeats >= 1, "at least one load must be timed");
    let temp;
    let dir = match &config.data_dir {
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            if std::fs::read_dir(dir)?.next().is_some() {
                bail!(
                    "the bench needs an empty data directory, and {} is not empty",
                    dir.display()
                );
            }
            dir.clone()
        }
        None => {
            temp = tempfile::Builder::new()
                .prefix("factum-bench-toolkit-")
                .tempdir()
                .context("cannot create a temporary data directory")?;
            temp.path().to_owned()
        }
    };
    let progress = |step: &str| {
        if config.progress {
            eprintln!("factum bench toolkit: {step}");
        }
    };
    let timing = Timing {
        warmup: seconds(config.warmup_seconds, "--warmup-seconds")?,
        measured: seconds(config.seconds, "--seconds")?,
    };
    let mut out = Map::new();
    out.insert("data_dir".into(), json!(dir.display().to_string()));
    out.insert("seconds".into(), json!(config.seconds));
    out.insert("warmup_seconds".into(), json!(config.warmup_seconds));
    out.insert("events".into(), json!(config.events));

    // 1. The engine's reference, as `factum bench` measures it.
    let store = open(&dir.join("append"))?;
    for (name, writers) in [("1w", 1), ("64w", 64)] {
        progress(&format!("engine append {name}"));
        let mut connected = Vec::with_capacity(writers);
        for writer in 0..writers {
            connected.push(StoreWriter::new(store.clone(), writers, writer).await?);
        }
        let counter = store.clone();
        let measured = drive(connected, 1, timing, move || counter.fsync_count()).await?;
        report(&mut out, &format!("append_{name}_events_per_s"), &measured);
    }
    drop(store);

    // 2. Commands through the repository.
    let store = open(&dir.join("commands"))?;
    let repository = Repository::<BankAccount>::new(store.clone(), EventSchema::json())
        .with_snapshots(SnapshotPolicy::every(SNAPSHOT_EVERY));
    for (name, writers) in [("1w", 1), ("64w", 64)] {
        progress(&format!("bank deposits through the repository, {name}"));
        let mut connected = Vec::with_capacity(writers);
        for writer in 0..writers {
            let id = format!("bench-{writers}-{writer}");
            connected.push(CommandWriter::open(repository.clone(), id).await?);
        }
        let counter = store.clone();
        let measured = drive(connected, 1, timing, move || counter.fsync_count()).await?;
        report(&mut out, &format!("command_{name}_per_s"), &measured);
    }
    out.insert("command_snapshot_every".into(), json!(SNAPSHOT_EVERY));
    drop(repository);
    drop(store);

    // 3. Loading one 10,000-event account.
    progress("load an account of 10,000 events, without and with a snapshot");
    let store = open(&dir.join("load"))?;
    let loads = load_10k(store.clone(), config.load_repeats).await?;
    drop(store);
    out.insert(
        "load_10k_no_snapshot_ms".into(),
        json!(millis(loads.no_snapshot)),
    );
    out.insert("load_10k_snapshot_ms".into(), json!(millis(loads.snapshot)));
    out.insert("load_10k_snapshot_replayed".into(), json!(loads.replayed));

    // 4. Rebuilding account_summary.
    progress(&format!("bulk load of {} bank events", config.events));
    let store = open(&dir.join("rebuild"))?;
    let expected = load_bank(store.clone(), config.events).await?;
    progress("rebuild account_summary into SQLite");
    let models = dir.join("read-models");
    std::fs::create_dir_all(&models)?;
    let rebuild = rebuild(
        store.clone(),
        &models.join("account_summary.sqlite"),
        expected,
    )
    .await?;
    drop(store);
    out.insert(
        "rebuild_1m_events_per_s".into(),
        json!(rounded(
            config.events as f64 / rebuild.as_secs_f64().max(1e-9)
        )),
    );
    out.insert("rebuild_ms".into(), json!(millis(rebuild)));

    // 5. Upcasting.
    progress(&format!(
        "bulk load of {} v1 and {} v3 OrderPlaced events",
        config.events, config.events
    ));
    let v1 = open(&dir.join("upcast-v1"))?;
    let v3 = open(&dir.join("upcast-v3"))?;
    load_orders(v1.clone(), config.events, true).await?;
    load_orders(v3.clone(), config.events, false).await?;
    progress("read and decode both, alternately");
    let upcast = upcast(v1.as_ref(), v3.as_ref(), config.events).await?;
    drop((v1, v3));
    let overhead =
        (upcast.v1.total.as_secs_f64() / upcast.v3.total.as_secs_f64().max(1e-9) - 1.0) * 100.0;
    out.insert(
        "upcast_overhead_pct".into(),
        json!((overhead * 10.0).round() / 10.0),
    );
    out.insert("upcast_v1_ms".into(), json!(millis(upcast.v1.total)));
    out.insert("upcast_current_ms".into(), json!(millis(upcast.v3.total)));
    out.insert(
        "upcast_v1_decode_ns_per_event".into(),
        json!(rounded(
            upcast.v1.decode.as_nanos() as f64 / config.events as f64
        )),
    );
    out.insert(
        "upcast_current_decode_ns_per_event".into(),
        json!(rounded(
            upcast.v3.decode.as_nanos() as f64 / config.events as f64
        )),
    );

    targets(&mut out);
    Ok(Value::Object(out))
}

/// Opens a store as the engine bench does: appends come from workers of a multi-threaded
/// runtime, and an idle writer commits on the caller's thread.
fn open(dir: &Path) -> anyhow::Result<Arc<EmbeddedStore>> {
    let options = factum_log::Options {
        commit_on_caller_thread: true,
        ..factum_log::Options::default()
    };
    let store = EmbeddedStore::open_with(dir, options)
        .with_context(|| format!("cannot open a store in {}", dir.display()))?;
    Ok(Arc::new(store))
}

/// Puts a workload's rate under `field`, and for one writer its latencies beside it.
fn report(out: &mut Map<String, Value>, field: &str, measured: &Measured) {
    out.insert(field.into(), json!(rounded(measured.events_per_s())));
    if field.contains("_1w_") {
        let stem = field
            .trim_end_matches("_events_per_s")
            .trim_end_matches("_per_s");
        out.insert(format!("{stem}_p50_us"), json!(measured.latency_us(0.5)));
        out.insert(format!("{stem}_p99_us"), json!(measured.latency_us(0.99)));
    }
    let stem = field
        .trim_end_matches("_events_per_s")
        .trim_end_matches("_per_s");
    out.insert(format!("{stem}_fdatasync_calls"), json!(measured.fsyncs));
}

/// The targets of issue 4, each with whether this run met it.
fn targets(out: &mut Map<String, Value>) {
    let number = |field: &str| out.get(field).and_then(Value::as_f64).unwrap_or(f64::NAN);
    let command_1w = number("command_1w_per_s") / number("append_1w_events_per_s");
    let command_64w = number("command_64w_per_s") / number("append_64w_events_per_s");
    let speedup = number("load_10k_no_snapshot_ms") / number("load_10k_snapshot_ms");
    let met = json!({
        "command_1w_ge_0.8x_append_1w": command_1w >= 0.8,
        "command_64w_ge_0.8x_append_64w": command_64w >= 0.8,
        "load_10k_snapshot_le_0.5ms": number("load_10k_snapshot_ms") <= 0.5,
        "load_10k_snapshot_ge_20x_faster": speedup >= 20.0,
        "load_10k_no_snapshot_le_10ms": number("load_10k_no_snapshot_ms") <= 10.0,
        "rebuild_ge_300k_per_s": number("rebuild_1m_events_per_s") >= 300_000.0,
        "upcast_overhead_le_30pct": number("upcast_overhead_pct") <= 30.0,
    });
    out.insert(
        "command_1w_vs_append_1w".into(),
        json!((command_1w * 1000.0).round() / 1000.0),
    );
    out.insert(
        "command_64w_vs_append_64w".into(),
        json!((command_64w * 1000.0).round() / 1000.0),
    );
    out.insert(
        "load_10k_snapshot_speedup".into(),
        json!((speedup * 10.0).round() / 10.0),
    );
    out.insert("targets_met".into(), met);
}

/// A writer of the command workloads: one account, a deposit per "append".
struct CommandWriter {
    repository: Repository<BankAccount>,
    id: String,
}

impl CommandWriter {
    /// Opens account `id` (or, if an earlier workload opened it, continues with it).
    async fn open(repository: Repository<BankAccount>, id: String) -> anyhow::Result<Self> {
        if !repository.load(&id).await?.exists() {
            let open = AccountCommand::Open {
                owner: format!("owner of {id}"),
                initial_balance_cents: 0,
            };
            repository.execute(&id, &open).await?;
        }
        Ok(CommandWriter { repository, id })
    }
}

#[async_trait]
impl Writer for CommandWriter {
    async fn append(&mut self, count: usize) -> anyhow::Result<u128> {
        for _ in 0..count {
            let deposit = AccountCommand::Deposit { amount_cents: 100 };
            self.repository.execute(&self.id, &deposit).await?;
        }
        Ok(0)
    }
}

/// The bank events of rebuild account `account`, `count` of them: an opening, then two
/// deposits for every withdrawal, so no withdrawal ever exceeds the balance.
fn bank_events(account: u64, count: u64) -> Vec<AccountEvent> {
    (0..count)
        .map(|index| match index {
            0 => AccountEvent::AccountOpened {
                owner: format!("owner-{account}"),
                initial_balance_cents: 10_000,
            },
            index if index % 3 == 0 => AccountEvent::MoneyWithdrawn {
                amount_cents: 500 + index % 7,
            },
            index => AccountEvent::MoneyDeposited {
                amount_cents: 1_000 + (account + index) % 11,
            },
        })
        .collect()
}

/// Encodes `events` with `schema` for one append.
fn encode<E: factum_aggregate::DomainEvent>(
    schema: &EventSchema<E>,
    events: &[E],
) -> anyhow::Result<Vec<ProposedEvent>> {
    Ok(events
        .iter()
        .map(|event| schema.encode(event))
        .collect::<Result<_, _>>()?)
}

/// Builds stream `n` of a bulk load, with its events.
type MakeStream = dyn Fn(u64) -> anyhow::Result<(StreamName, Vec<ProposedEvent>)> + Send + Sync;

/// Appends streams `0..streams`, each in one append, from [`LOAD_TASKS`] concurrent tasks;
/// `make` builds stream `n` and its events.
async fn load_streams(
    store: Arc<EmbeddedStore>,
    streams: u64,
    make: Arc<MakeStream>,
) -> anyhow::Result<()> {
    let tasks: Vec<_> = (0..LOAD_TASKS)
        .map(|task| {
            let store = store.clone();
            let make = make.clone();
            tokio::spawn(async move {
                for number in (task..streams).step_by(LOAD_TASKS as usize) {
                    let (stream, events) = make(number)?;
                    store
                        .append(&stream, ExpectedRevision::NoStream, events)
                        .await?;
                }
                anyhow::Ok(())
            })
        })
        .collect();
    for task in tasks {
        task.await??;
    }
    Ok(())
}

/// What the load phase measured.
struct Loads {
    no_snapshot: Duration,
    snapshot: Duration,
    replayed: u64,
}

/// Writes one account of [`LOAD_EVENTS`] events: all but the last straight to the store, the
/// last through a repository snapshotting every [`SNAPSHOT_EVERY`] events, which leaves the
/// snapshot a repository-written history has (one at revision 9,999). Then times loads.
async fn load_10k(store: Arc<EmbeddedStore>, repeats: usize) -> anyhow::Result<Loads> {
    let id = "load-10k";
    let schema = EventSchema::<AccountEvent>::json();
    let plain = Repository::<BankAccount>::new(store.clone(), schema.clone());
    let snapshotting = plain
        .clone()
        .with_snapshots(SnapshotPolicy::every(SNAPSHOT_EVERY));
    let stream = plain.stream_name(id)?;
    let events = bank_events(0, LOAD_EVENTS - 1);
    let mut expected = ExpectedRevision::NoStream;
    for chunk in events.chunks(1_000) {
        let written = store
            .append(&stream, expected, encode(&schema, chunk)?)
            .await?;
        expected = ExpectedRevision::Exact(written.revision);
    }
    let deposit = AccountCommand::Deposit { amount_cents: 1 };
    let executed = snapshotting.execute(id, &deposit).await?;
    ensure!(
        executed.snapshot_revision == Some(LOAD_EVENTS - 1),
        "the 10,000th event should have left a snapshot, not {:?}",
        executed.snapshot_revision
    );
    let mut state = BankAccount::default();
    for event in &events {
        state.apply(event);
    }
    state.apply(&AccountEvent::MoneyDeposited { amount_cents: 1 });

    let times = |repository: Repository<BankAccount>, snapshot: bool| {
        let state = state.clone();
        async move {
            let mut durations = Vec::with_capacity(repeats);
            let mut replayed = 0;
            // One untimed load first: the pages and the code are warm for every timed one.
            for round in 0..=repeats {
                let start = Instant::now();
                let loaded = repository.load(id).await?;
                let elapsed = start.elapsed();
                ensure!(loaded.state == state, "the loaded account is wrong");
                ensure!(loaded.revision == Some(LOAD_EVENTS - 1));
                ensure!(loaded.snapshot_revision.is_some() == snapshot);
                replayed = loaded.replayed;
                if round > 0 {
                    durations.push(elapsed);
                }
            }
            durations.sort_unstable();
            anyhow::Ok((durations[durations.len() / 2], replayed))
        }
    };
    let (no_snapshot, _) = times(plain, false).await?;
    let (snapshot, replayed) = times(snapshotting, true).await?;
    Ok(Loads {
        no_snapshot,
        snapshot,
        replayed,
    })
}

/// What the rebuilt read model must hold: how many accounts, and the sum of their balances.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct BankTotals {
    accounts: i64,
    balance_cents: i64,
}

/// Writes `events` bank events into accounts of [`REBUILD_ACCOUNT_EVENTS`] events (the last
/// one shorter) and returns what `account_summary` must show for them.
async fn load_bank(store: Arc<EmbeddedStore>, events: u64) -> anyhow::Result<BankTotals> {
    let accounts = events.div_ceil(REBUILD_ACCOUNT_EVENTS);
    let size =
        move |account: u64| REBUILD_ACCOUNT_EVENTS.min(events - account * REBUILD_ACCOUNT_EVENTS);
    let schema = EventSchema::<AccountEvent>::json();
    let make = move |account: u64| {
        let stream = StreamName::new(format!("account-rebuild-{account}"))?;
        Ok((
            stream,
            encode(&schema, &bank_events(account, size(account)))?,
        ))
    };
    load_streams(store, accounts, Arc::new(make)).await?;
    let mut totals = BankTotals {
        accounts: i64::try_from(accounts)?,
        balance_cents: 0,
    };
    for account in 0..accounts {
        let mut state = BankAccount::default();
        for event in &bank_events(account, size(account)) {
            state.apply(event);
        }
        totals.balance_cents += i64::try_from(state.balance_cents)?;
    }
    Ok(totals)
}

/// Runs `account_summary` from nothing to the store's head into a new SQLite database at
/// `path`; returns how long it took, once its tables are checked against `expected`.
async fn rebuild(
    store: Arc<EmbeddedStore>,
    path: &Path,
    expected: BankTotals,
) -> anyhow::Result<Duration> {
    let model = SqliteReadModel::open(path, AccountSummary)?;
    let mut runner = ProjectionRunner::new(store, model)?;
    let start = Instant::now();
    let status = runner
        .run_until_caught_up(Duration::from_secs(3_600))
        .await?;
    let elapsed = start.elapsed();
    let model = runner.model().context("the runner kept the read model")?;
    let found = model.connection().query_row(
        "SELECT count(*), coalesce(sum(balance_cents), 0) FROM account_summary",
        [],
        |row| {
            Ok(BankTotals {
                accounts: row.get(0)?,
                balance_cents: row.get(1)?,
            })
        },
    )?;
    ensure!(
        found == expected,
        "account_summary holds {found:?} after the rebuild, not {expected:?}"
    );
    let committed = factum_projection::read_checkpoint(model.connection(), "account_summary")?;
    ensure!(
        committed == status.checkpoint && committed.position == status.head,
        "the stored checkpoint {committed:?} is not the head {:?}",
        status.head
    );
    Ok(elapsed)
}

/// Writes `events` `OrderPlaced` events in streams of [`UPCAST_STREAM_EVENTS`], stored as v1
/// (`{"customer", "total"}` in dollars) or as today's v3 through the schema. Event `n` has a
/// total of `n % 10,000` cents either way.
async fn load_orders(store: Arc<EmbeddedStore>, events: u64, v1: bool) -> anyhow::Result<()> {
    let streams = events.div_ceil(UPCAST_STREAM_EVENTS);
    let schema = order::schema();
    let make = move |stream: u64| {
        let first = stream * UPCAST_STREAM_EVENTS;
        let last = (first + UPCAST_STREAM_EVENTS).min(events);
        let proposed = (first..last)
            .map(|n| {
                let customer = format!("customer-{}", n % 997);
                let cents = n % 10_000;
                if v1 {
                    let data = json!({"customer": customer, "total": cents as f64 / 100.0});
                    Ok(ProposedEvent::new(
                        "OrderPlaced",
                        CONTENT_TYPE_JSON,
                        Bytes::from(serde_json::to_vec(&data)?),
                    )
                    .with_schema_version(1))
                } else {
                    let placed = OrderEvent::OrderPlaced {
                        customer_name: customer,
                        total_cents: cents,
                        currency: "USD".into(),
                    };
                    Ok(schema.encode(&placed)?)
                }
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok((StreamName::new(format!("order-bench-{stream}"))?, proposed))
    };
    load_streams(store, streams, Arc::new(make)).await
}

/// One pass over a store: read and decode everything.
#[derive(Debug, Clone, Copy)]
struct Pass {
    /// Reading and decoding.
    total: Duration,
    /// Decoding alone.
    decode: Duration,
}

/// What the upcast phase measured: the median pass of each variant.
struct Upcast {
    v1: Pass,
    v3: Pass,
}

/// Reads and decodes both stores [`UPCAST_PASSES`] times, alternately, checking that both
/// decode to the same totals.
async fn upcast(v1: &dyn EventStore, v3: &dyn EventStore, events: u64) -> anyhow::Result<Upcast> {
    let schema = order::schema();
    let expected: u64 = (0..events).map(|n| n % 10_000).sum();
    let mut v1_passes = Vec::with_capacity(UPCAST_PASSES);
    let mut v3_passes = Vec::with_capacity(UPCAST_PASSES);
    for _ in 0..UPCAST_PASSES {
        for (store, passes) in [(v3, &mut v3_passes), (v1, &mut v1_passes)] {
            let (pass, decoded, cents) = decode_all(store, &schema).await?;
            ensure!(
                decoded == events && cents == expected,
                "decoded {decoded} orders totalling {cents} cents, not {events} totalling \
                 {expected}"
            );
            passes.push(pass);
        }
    }
    let median = |mut passes: Vec<Pass>| {
        passes.sort_by_key(|pass| pass.total);
        passes[passes.len() / 2]
    };
    Ok(Upcast {
        v1: median(v1_passes),
        v3: median(v3_passes),
    })
}

/// Reads the whole log a page at a time and decodes every event into an [`OrderEvent`];
/// returns the pass's timings, the orders decoded and the sum of their totals.
async fn decode_all(
    store: &dyn EventStore,
    schema: &EventSchema<OrderEvent>,
) -> anyhow::Result<(Pass, u64, u64)> {
    let start = Instant::now();
    let mut decode = Duration::ZERO;
    let mut from = AllStart::Start;
    let mut decoded = 0u64;
    let mut cents = 0u64;
    loop {
        let mut options = ReadAllOptions::forwards().limit(READ_PAGE_EVENTS);
        options.from = from;
        let slice = store.read_all(options).await?;
        let decoding = Instant::now();
        for event in &slice.events {
            match schema.decode(event)? {
                Some(OrderEvent::OrderPlaced { total_cents, .. }) => {
                    decoded += 1;
                    cents += total_cents;
                }
                other => bail!("expected an OrderPlaced, decoded {other:?}"),
            }
        }
        decode += decoding.elapsed();
        if slice.end_of_log {
            break;
        }
        from = AllStart::Position(Position(slice.scanned_to.0 + 1));
    }
    let pass = Pass {
        total: start.elapsed(),
        decode,
    };
    Ok((pass, decoded, cents))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bank_events_never_overdraw() {
        let mut account = BankAccount::default();
        for event in bank_events(3, REBUILD_ACCOUNT_EVENTS) {
            if let AccountEvent::MoneyWithdrawn { amount_cents } = event {
                assert!(amount_cents <= account.balance_cents, "overdrawn");
            }
            account.apply(&event);
        }
        assert!(account.owner.is_some());
        assert!(account.balance_cents > 10_000);
    }

    #[test]
    fn targets_compare_each_figure_with_its_bound() {
        let mut out = Map::new();
        for (field, value) in [
            ("command_1w_per_s", 90.0),
            ("append_1w_events_per_s", 100.0),
            ("command_64w_per_s", 70.0),
            ("append_64w_events_per_s", 100.0),
            ("load_10k_no_snapshot_ms", 8.0),
            ("load_10k_snapshot_ms", 0.2),
            ("rebuild_1m_events_per_s", 200_000.0),
            ("upcast_overhead_pct", 12.0),
        ] {
            out.insert(field.into(), json!(value));
        }
        targets(&mut out);
        let met = &out["targets_met"];
        assert_eq!(met["command_1w_ge_0.8x_append_1w"], json!(true));
        assert_eq!(met["command_64w_ge_0.8x_append_64w"], json!(false));
        assert_eq!(met["load_10k_snapshot_ge_20x_faster"], json!(true));
        assert_eq!(met["rebuild_ge_300k_per_s"], json!(false));
        assert_eq!(met["upcast_overhead_le_30pct"], json!(true));
        assert_eq!(out["load_10k_snapshot_speedup"], json!(40.0));
    }
}
