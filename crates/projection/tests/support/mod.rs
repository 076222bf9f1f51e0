//! Shared by the projection tests: a deterministic bank history written to any store, the
//! balances it must produce, and small helpers.
#![allow(dead_code, reason = "each test binary uses a different part")]

use std::collections::BTreeMap;
use std::sync::Arc;

use factum_core::{
    EventStore, ExpectedRevision, Position, ProposedEvent, ReadAllOptions, RecordedEvent,
    StreamName,
};
use factum_projection::{AccountRow, MoneyMoved, Projection, ProjectionError};
use rusqlite::Connection;

/// What a history must produce: each account's owner and balance, and its withdrawal count.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Bank {
    pub accounts: BTreeMap<String, (String, i64)>,
    pub withdrawals: BTreeMap<String, u32>,
    /// How many account events were written (what the summary processes).
    pub account_events: u64,
}

impl Bank {
    /// The summary's rows, by account id.
    pub fn rows(&self) -> Vec<AccountRow> {
        self.accounts
            .iter()
            .map(|(id, (owner, balance))| AccountRow {
                account_id: id.clone(),
                owner: owner.clone(),
                balance_cents: *balance,
            })
            .collect()
    }

    /// The article's query over the expected rows, richest first.
    pub fn above(&self, cents: i64) -> Vec<AccountRow> {
        let mut rows: Vec<AccountRow> = self
            .rows()
            .into_iter()
            .filter(|row| row.balance_cents > cents)
            .collect();
        rows.sort_by(|a, b| {
            b.balance_cents
                .cmp(&a.balance_cents)
                .then(a.account_id.cmp(&b.account_id))
        });
        rows
    }

    /// Folds one recorded event in, as the summary does.
    pub fn apply(&mut self, event: &RecordedEvent) {
        let Some(id) = event.stream.as_str().strip_prefix("account-") else {
            return;
        };
        self.account_events += 1;
        match &*event.event_type {
            "AccountOpened" => {
                let opened: factum_projection::AccountOpened = event.data_json().unwrap();
                self.accounts
                    .insert(id.to_owned(), (opened.owner, opened.initial_balance_cents));
            }
            "MoneyDeposited" => {
                let moved: MoneyMoved = event.data_json().unwrap();
                self.accounts.get_mut(id).unwrap().1 += moved.amount_cents;
            }
            "MoneyWithdrawn" => {
                let moved: MoneyMoved = event.data_json().unwrap();
                self.accounts.get_mut(id).unwrap().1 -= moved.amount_cents;
                *self.withdrawals.entry(id.to_owned()).or_default() += 1;
            }
            _ => {}
        }
    }
}

/// splitmix64.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, bound: u64) -> u64 {
        self.next() % bound
    }
}

pub fn stream(name: &str) -> StreamName {
    StreamName::new(name).expect("a valid stream name")
}

pub fn opened(owner: &str, initial_balance_cents: i64) -> ProposedEvent {
    ProposedEvent::json(
        "AccountOpened",
        &serde_json::json!({"owner": owner, "initial_balance_cents": initial_balance_cents}),
    )
    .unwrap()
}

pub fn deposited(amount_cents: i64) -> ProposedEvent {
    ProposedEvent::json(
        "MoneyDeposited",
        &serde_json::json!({"amount_cents": amount_cents}),
    )
    .unwrap()
}

pub fn withdrawn(amount_cents: i64) -> ProposedEvent {
    ProposedEvent::json(
        "MoneyWithdrawn",
        &serde_json::json!({"amount_cents": amount_cents}),
    )
    .unwrap()
}

/// Writes `accounts` accounts of `events_per_account` events each (opened, then deposits and
/// withdrawals), in appends of up to `append_size` events, interleaving accounts so their
/// events mix in `$all`; plus one unrelated `audit-` event per round, which projections on
/// accounts must skip. Returns what the summary must show.
pub async fn write_history(
    store: &dyn EventStore,
    accounts: usize,
    events_per_account: usize,
    append_size: usize,
    seed: u64,
) -> Bank {
    let mut rng = Rng(seed);
    let mut written = vec![0usize; accounts];
    let mut round = 0;
    loop {
        let mut wrote = false;
        for (account, written) in written.iter_mut().enumerate() {
            let left = events_per_account - *written;
            if left == 0 {
                continue;
            }
            wrote = true;
            let mut events = Vec::new();
            for index in *written..*written + left.min(append_size) {
                events.push(if index == 0 {
                    opened(&format!("owner-{account}"), rng.below(5) as i64 * 10_000)
                } else if rng.below(3) == 0 {
                    withdrawn(1 + rng.below(20_000) as i64)
                } else {
                    deposited(1 + rng.below(40_000) as i64)
                });
            }
            let expected = if *written == 0 {
                ExpectedRevision::NoStream
            } else {
                ExpectedRevision::Exact(*written as u64 - 1)
            };
            *written += events.len();
            store
                .append(&stream(&format!("account-{account}")), expected, events)
                .await
                .expect("the history appends");
        }
        if !wrote {
            break;
        }
        let note = ProposedEvent::json("Noted", &serde_json::json!({"round": round})).unwrap();
        store
            .append(&stream("audit-1"), ExpectedRevision::Any, vec![note])
            .await
            .expect("the audit event appends");
        round += 1;
    }
    expected_bank(store, Position::MAX).await
}

/// The whole of `$all` up to `until` (inclusive), without system events.
pub async fn read_until(store: &dyn EventStore, until: Position) -> Vec<RecordedEvent> {
    let mut events = Vec::new();
    let mut from = 1;
    for _ in 0..100_000 {
        let slice = store
            .read_all(
                ReadAllOptions::forwards()
                    .from_position(Position(from))
                    .limit(4096),
            )
            .await
            .expect("reading $all");
        events.extend(
            slice
                .events
                .into_iter()
                .filter(|event| event.position <= until),
        );
        if slice.end_of_log || slice.scanned_to >= until {
            return events;
        }
        from = slice.scanned_to.0 + 1;
    }
    panic!("$all did not end");
}

/// The bank as of `until`, folded from the store's own events.
pub async fn expected_bank(store: &dyn EventStore, until: Position) -> Bank {
    let mut bank = Bank::default();
    for event in read_until(store, until).await {
        bank.apply(&event);
    }
    bank
}

/// Rows of the summary in a database file, through a connection of the reader's own.
pub fn summary_rows(path: &std::path::Path) -> Vec<AccountRow> {
    let connection = Connection::open(path).expect("the read model opens");
    factum_projection::all_accounts(&connection).expect("the summary reads")
}

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

pub fn dyn_store<S: EventStore>(store: Arc<S>) -> Arc<dyn EventStore> {
    store
}

/// The balances per account, in memory: the in-memory read model's projection.
pub struct Balances;

impl Projection for Balances {
    type Model = BTreeMap<String, i64>;

    fn name(&self) -> &str {
        "balances"
    }

    fn filter(&self) -> Option<factum_core::EventFilter> {
        Some(factum_core::EventFilter::stream_prefix("account-"))
    }

    fn init(&mut self, _model: &mut Self::Model) -> Result<(), ProjectionError> {
        Ok(())
    }

    fn clear(&mut self, model: &mut Self::Model) -> Result<(), ProjectionError> {
        model.clear();
        Ok(())
    }

    fn apply(
        &mut self,
        model: &mut Self::Model,
        event: &RecordedEvent,
    ) -> Result<(), ProjectionError> {
        let id = event
            .stream
            .as_str()
            .trim_start_matches("account-")
            .to_owned();
        let decode = |event: &RecordedEvent| -> Result<i64, ProjectionError> {
            let moved: MoneyMoved = event
                .data_json()
                .map_err(|error| ProjectionError::apply("balances", event, error))?;
            Ok(moved.amount_cents)
        };
        match &*event.event_type {
            "AccountOpened" => {
                let opened: factum_projection::AccountOpened = event
                    .data_json()
                    .map_err(|error| ProjectionError::apply("balances", event, error))?;
                model.insert(id, opened.initial_balance_cents);
            }
            "MoneyDeposited" => *model.entry(id).or_default() += decode(event)?,
            "MoneyWithdrawn" => *model.entry(id).or_default() -= decode(event)?,
            _ => {}
        }
        Ok(())
    }
}

impl Bank {
    /// The balances only, as [`Balances`] keeps them.
    pub fn balances(&self) -> BTreeMap<String, i64> {
        self.accounts
            .iter()
            .map(|(id, (_, balance))| (id.clone(), *balance))
            .collect()
    }
}

/// Wraps a projection and fails on the event at one position, as a crash or a bug would.
pub struct FailAt<P> {
    pub inner: P,
    pub position: Position,
}

impl<P: Projection> Projection for FailAt<P> {
    type Model = P::Model;

    fn name(&self) -> &str {
        self.inner.name()
    }

    fn filter(&self) -> Option<factum_core::EventFilter> {
        self.inner.filter()
    }

    fn init(&mut self, model: &mut Self::Model) -> Result<(), ProjectionError> {
        self.inner.init(model)
    }

    fn clear(&mut self, model: &mut Self::Model) -> Result<(), ProjectionError> {
        self.inner.clear(model)
    }

    fn apply(
        &mut self,
        model: &mut Self::Model,
        event: &RecordedEvent,
    ) -> Result<(), ProjectionError> {
        if event.position == self.position {
            return Err(ProjectionError::apply(
                self.name(),
                event,
                "injected failure",
            ));
        }
        self.inner.apply(model, event)
    }
}
