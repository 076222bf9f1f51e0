//! The projection runner and read models end to end, on the in-memory store and on the
//! embedded engine: the article's summary and query, atomic checkpoints, stop/start, reset and
//! rebuild, status and lag, read-your-writes, and the fraud report built after the fact.

mod support;

use std::sync::Arc;
use std::time::Duration;

use factum_core::{EventId, EventStore, ExpectedRevision, Position, RecordedEvent, Timestamp};
use factum_log::EmbeddedStore;
use factum_memory::MemoryStore;
use factum_projection::{
    AccountSummary, FraudReport, FraudRow, MemoryReadModel, ProjectionError, ProjectionRunner,
    ReadModel, RunState, RunnerOptions, SqliteReadModel, accounts_with_balance_above,
    flagged_accounts, read_checkpoint,
};
use support::*;

const WAIT: Duration = Duration::from_secs(10);

fn small_batches() -> RunnerOptions {
    RunnerOptions {
        batch_size: 7,
        checkpoint_interval: 16,
    }
}

/// The summary and the query on one store, through a SQLite file read by another connection.
async fn check_summary_and_query(store: Arc<dyn EventStore>) {
    let bank = write_history(store.as_ref(), 12, 8, 3, 1).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("read.db");
    let model = SqliteReadModel::open(&path, AccountSummary).unwrap();
    let mut runner = ProjectionRunner::with_options(store.clone(), model, small_batches()).unwrap();
    let status = runner.run_until_caught_up(WAIT).await.unwrap();
    assert_eq!(status.state, RunState::Stopped);
    assert_eq!(status.checkpoint.processed_events, bank.account_events);
    assert_eq!(summary_rows(&path), bank.rows());
    let reader = rusqlite::Connection::open(&path).unwrap();
    let rich = accounts_with_balance_above(&reader, 100_000).unwrap();
    assert!(!rich.is_empty(), "the history makes some accounts rich");
    assert!(rich.len() < bank.accounts.len(), "and some not");
    assert_eq!(rich, bank.above(100_000));
    // The same query as plain SQL.
    let count: i64 = reader
        .query_row(
            "SELECT count(*) FROM account_summary WHERE balance_cents > 100000",
            [],
            |row| row.get(0),
        )
        .unwrap();
    assert_eq!(count as usize, rich.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn summary_and_query_on_the_memory_store() {
    check_summary_and_query(Arc::new(MemoryStore::new())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn summary_and_query_on_the_embedded_store() {
    let dir = tempfile::tempdir().unwrap();
    check_summary_and_query(Arc::new(EmbeddedStore::open(dir.path()).unwrap())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_in_memory_read_model_matches_the_history() {
    let store: Arc<dyn EventStore> = Arc::new(MemoryStore::new());
    let bank = write_history(store.as_ref(), 5, 20, 6, 2).await;
    let model = MemoryReadModel::new(Balances).unwrap();
    let handle = model.handle();
    let mut runner = ProjectionRunner::with_options(store, model, small_batches()).unwrap();
    runner.run_until_caught_up(WAIT).await.unwrap();
    assert_eq!(handle.state(), bank.balances());
    assert_eq!(handle.checkpoint().processed_events, bank.account_events);
}

/// A batch that fails half-way leaves neither its changes nor its checkpoint; restarting with
/// a working projection processes every event exactly once.
async fn check_failure_rolls_back(store: Arc<dyn EventStore>) {
    let bank = write_history(store.as_ref(), 6, 25, 5, 3).await;
    let events = read_until(store.as_ref(), Position::MAX).await;
    let account_events: Vec<&RecordedEvent> = events
        .iter()
        .filter(|event| event.stream.as_str().starts_with("account-"))
        .collect();
    let poison = account_events[account_events.len() / 2].position;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("read.db");

    let failing = FailAt {
        inner: AccountSummary,
        position: poison,
    };
    let model = SqliteReadModel::open(&path, failing).unwrap();
    let mut runner = ProjectionRunner::with_options(store.clone(), model, small_batches()).unwrap();
    let error = runner.run_until_caught_up(WAIT).await.unwrap_err();
    assert!(
        matches!(&error, ProjectionError::Apply { position, reason, .. } if *position == poison && reason == "injected failure"),
        "{error:?}"
    );
    let status = runner.status();
    assert!(
        matches!(&status.state, RunState::Failed(reason) if reason.contains("injected")),
        "{status:?}"
    );
    assert!(
        matches!(status.error.as_deref(), Some(ProjectionError::Apply { position, .. }) if *position == poison),
        "{status:?}"
    );
    let checkpoint = read_checkpoint(
        &rusqlite::Connection::open(&path).unwrap(),
        "account_summary",
    )
    .unwrap();
    assert!(
        checkpoint.position < poison,
        "the failed batch's checkpoint is not stored"
    );
    assert!(checkpoint.position.0 > 0, "earlier batches committed");
    // The tables hold exactly the events up to the checkpoint: nothing of the failed batch.
    let partial = expected_bank(store.as_ref(), checkpoint.position).await;
    assert_eq!(summary_rows(&path), partial.rows());
    assert_eq!(checkpoint.processed_events, partial.account_events);
    drop(runner);

    // "Restart": a new process opens the same file with the fixed projection.
    let model = SqliteReadModel::open(&path, AccountSummary).unwrap();
    let mut runner = ProjectionRunner::with_options(store.clone(), model, small_batches()).unwrap();
    let status = runner.run_until_caught_up(WAIT).await.unwrap();
    assert_eq!(
        summary_rows(&path),
        bank.rows(),
        "no event applied twice or lost"
    );
    assert_eq!(status.checkpoint.processed_events, bank.account_events);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_batch_rolls_back_with_its_checkpoint_on_the_memory_store() {
    check_failure_rolls_back(Arc::new(MemoryStore::new())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_batch_rolls_back_with_its_checkpoint_on_the_embedded_store() {
    let dir = tempfile::tempdir().unwrap();
    check_failure_rolls_back(Arc::new(EmbeddedStore::open(dir.path()).unwrap())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_in_memory_read_model_discards_a_failed_batch() {
    let store: Arc<dyn EventStore> = Arc::new(MemoryStore::new());
    let bank = write_history(store.as_ref(), 4, 20, 5, 4).await;
    let events = read_until(store.as_ref(), Position::MAX).await;
    let poison = events[events.len() / 2].position;
    let mut model = MemoryReadModel::new(FailAt {
        inner: Balances,
        position: poison,
    })
    .unwrap();
    let handle = model.handle();
    let (before, after): (Vec<_>, Vec<_>) =
        events.iter().cloned().partition(|e| e.position < poison);
    model
        .commit(&before, before.last().unwrap().position)
        .unwrap();
    let committed = handle.state();
    let error = model
        .commit(&after, after.last().unwrap().position)
        .unwrap_err();
    assert!(matches!(error, ProjectionError::Apply { position, .. } if position == poison));
    assert_eq!(
        handle.state(),
        committed,
        "nothing of the failed batch is visible"
    );
    assert_eq!(
        handle.checkpoint().position,
        before.last().unwrap().position
    );
    let mut fixed = MemoryReadModel::new(Balances).unwrap();
    let fixed_handle = fixed.handle();
    fixed
        .commit(&events, events.last().unwrap().position)
        .unwrap();
    assert_eq!(fixed_handle.state(), bank.balances());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_delivered_twice_has_its_effect_once() {
    let store: Arc<dyn EventStore> = Arc::new(MemoryStore::new());
    let bank = write_history(store.as_ref(), 3, 10, 4, 5).await;
    // What the subscription would deliver: the filter keeps account events only.
    let events: Vec<RecordedEvent> = read_until(store.as_ref(), Position::MAX)
        .await
        .into_iter()
        .filter(|event| event.stream.as_str().starts_with("account-"))
        .collect();
    let head = events.last().unwrap().position;
    let (first, _) = events.split_at(events.len() / 2);
    let mut model = SqliteReadModel::open_in_memory(AccountSummary).unwrap();
    model.commit(first, first.last().unwrap().position).unwrap();
    // A redelivery overlapping the committed part (as after a crash between commit and ack).
    let checkpoint = model.commit(&events, head).unwrap();
    let checkpoint_again = model.commit(&events, head).unwrap();
    assert_eq!(checkpoint, checkpoint_again);
    assert_eq!(checkpoint.processed_events, bank.account_events);
    assert_eq!(
        factum_projection::all_accounts(model.connection()).unwrap(),
        bank.rows()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_and_start_resume_from_the_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn EventStore> =
        Arc::new(EmbeddedStore::open(dir.path().join("store")).unwrap());
    let path = dir.path().join("read.db");
    write_history(store.as_ref(), 4, 10, 5, 6).await;
    let model = SqliteReadModel::open(&path, AccountSummary).unwrap();
    let mut runner = ProjectionRunner::with_options(store.clone(), model, small_batches()).unwrap();
    runner.start().unwrap();
    let head = store.head().await.unwrap();
    runner.wait_for(head, WAIT).await.unwrap();
    runner.stop().await.unwrap();
    let stopped_at = runner.status().checkpoint;
    assert_eq!(runner.status().state, RunState::Stopped);

    // Events appended while stopped wait for the next start.
    let written = store
        .append(
            &stream("account-0"),
            ExpectedRevision::Any,
            vec![deposited(1_000), withdrawn(1)],
        )
        .await
        .unwrap();
    let status = runner.refresh().await.unwrap();
    assert_eq!(status.checkpoint, stopped_at);
    assert_eq!(
        status.events_behind(),
        written.position.0 - stopped_at.position.0
    );

    // A new runner on the same file (a restart) picks up at the checkpoint.
    drop(runner);
    let model = SqliteReadModel::open(&path, AccountSummary).unwrap();
    let mut runner = ProjectionRunner::with_options(store.clone(), model, small_batches()).unwrap();
    assert_eq!(runner.status().checkpoint, stopped_at);
    runner.start().unwrap();
    let checkpoint = runner.wait_for(written.position, WAIT).await.unwrap();
    assert_eq!(checkpoint.processed_events, stopped_at.processed_events + 2);
    runner.stop().await.unwrap();
    let bank = expected_bank(store.as_ref(), Position::MAX).await;
    assert_eq!(summary_rows(&path), bank.rows());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_empties_and_rebuild_reproduces_the_read_model() {
    let store: Arc<dyn EventStore> = Arc::new(MemoryStore::new());
    let bank = write_history(store.as_ref(), 6, 15, 4, 7).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("read.db");
    let model = SqliteReadModel::open(&path, AccountSummary).unwrap();
    let mut runner = ProjectionRunner::with_options(store.clone(), model, small_batches()).unwrap();
    runner.run_until_caught_up(WAIT).await.unwrap();
    let built = summary_rows(&path);
    assert_eq!(built, bank.rows());

    runner.reset().await.unwrap();
    assert!(summary_rows(&path).is_empty());
    assert_eq!(runner.status().checkpoint.position, Position::START);
    assert_eq!(runner.refresh().await.unwrap().progress(), 0.0);

    runner.rebuild().await.unwrap();
    let head = store.head().await.unwrap();
    let checkpoint = runner.wait_for(head, WAIT).await.unwrap();
    runner.stop().await.unwrap();
    assert_eq!(summary_rows(&path), built);
    assert_eq!(checkpoint.processed_events, bank.account_events);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_reports_progress_and_lag() {
    let store: Arc<dyn EventStore> = Arc::new(MemoryStore::new());
    let bank = write_history(store.as_ref(), 3, 10, 5, 8).await;
    let model = SqliteReadModel::open_in_memory(AccountSummary).unwrap();
    let mut runner = ProjectionRunner::with_options(store.clone(), model, small_batches()).unwrap();
    let head = store.head().await.unwrap();

    let fresh = runner.refresh().await.unwrap();
    assert_eq!(fresh.state, RunState::Stopped);
    assert_eq!(fresh.events_behind(), head.0, "positions are dense from 1");
    assert_eq!(
        fresh.time_behind(),
        None,
        "nothing processed: no reference time"
    );
    assert_eq!(fresh.progress(), 0.0);

    let done = runner.run_until_caught_up(WAIT).await.unwrap();
    assert_eq!(done.head, head);
    assert_eq!(
        done.checkpoint.position, head,
        "trailing skipped events are checkpointed"
    );
    assert_eq!(done.events_behind(), 0);
    assert_eq!(done.time_behind(), Some(Duration::ZERO));
    assert_eq!(done.progress(), 1.0);
    assert_eq!(done.checkpoint.processed_events, bank.account_events);

    // Three events, the last a while after the projection's last one.
    tokio::time::sleep(Duration::from_millis(60)).await;
    store
        .append(
            &stream("account-1"),
            ExpectedRevision::Any,
            vec![deposited(1), deposited(2)],
        )
        .await
        .unwrap();
    store
        .append(
            &stream("audit-1"),
            ExpectedRevision::Any,
            vec![deposited(3)],
        )
        .await
        .unwrap();
    let behind = runner.refresh().await.unwrap();
    assert_eq!(behind.events_behind(), 3);
    let lag = behind.time_behind().expect("both times are known");
    assert!(lag >= Duration::from_millis(60), "{lag:?}");
    assert!(behind.progress() < 1.0);

    // Running, the status reaches Live with no lag, visible through the watch channel.
    let mut watch = runner.watch_status();
    runner.start().unwrap();
    let live = watch
        .wait_for(|status| status.state == RunState::Live && status.events_behind() == 0)
        .await
        .unwrap()
        .clone();
    assert_eq!(live.checkpoint.processed_events, bank.account_events + 2);
    runner.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_for_gives_read_your_writes_or_times_out() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn EventStore> =
        Arc::new(EmbeddedStore::open(dir.path().join("store")).unwrap());
    let path = dir.path().join("read.db");
    let model = SqliteReadModel::open(&path, AccountSummary).unwrap();
    let mut runner = ProjectionRunner::new(store.clone(), model).unwrap();
    let watcher = runner.watcher();

    // Stopped: nobody will ever get there.
    let error = watcher.wait_for(Position(1), WAIT).await.unwrap_err();
    assert!(matches!(error, ProjectionError::NotRunning(_)), "{error:?}");

    runner.start().unwrap();
    let reader = rusqlite::Connection::open(&path).unwrap();
    for (index, account) in ["a", "b", "c"].into_iter().enumerate() {
        let written = store
            .append(
                &stream(&format!("account-{account}")),
                ExpectedRevision::NoStream,
                vec![opened(account, 200_000 + index as i64)],
            )
            .await
            .unwrap();
        watcher.wait_for(written.position, WAIT).await.unwrap();
        // The account is visible to a query right after the wait.
        let rich = accounts_with_balance_above(&reader, 100_000).unwrap();
        assert_eq!(rich.len(), index + 1);
    }
    // An unrelated append the filter skips is still "processed".
    let skipped = store
        .append(
            &stream("audit-9"),
            ExpectedRevision::Any,
            vec![deposited(1)],
        )
        .await
        .unwrap();
    watcher.wait_for(skipped.position, WAIT).await.unwrap();

    let future = Position(skipped.position.0 + 100);
    let error = watcher
        .wait_for(future, Duration::from_millis(100))
        .await
        .unwrap_err();
    assert!(
        matches!(error, ProjectionError::Timeout { position, checkpoint } if position == future && checkpoint == skipped.position),
        "{error:?}"
    );
    runner.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fraud_report_is_built_later_by_replaying_history() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn EventStore> =
        Arc::new(EmbeddedStore::open(dir.path().join("store")).unwrap());
    let path = dir.path().join("read.db");
    // The summary runs from day one.
    let mut summary = ProjectionRunner::with_options(
        store.clone(),
        SqliteReadModel::open(&path, AccountSummary).unwrap(),
        small_batches(),
    )
    .unwrap();
    summary.start().unwrap();
    let bank = write_history(store.as_ref(), 8, 12, 3, 9).await;
    let mut last = Position::START;
    for _ in 0..5 {
        last = store
            .append(
                &stream("account-heavy"),
                ExpectedRevision::Any,
                vec![withdrawn(1)],
            )
            .await
            .unwrap()
            .position;
    }
    summary.wait_for(last, WAIT).await.unwrap();

    // Later, a new projection in the same database, built from all history.
    let threshold = 4;
    let mut fraud = ProjectionRunner::with_options(
        store.clone(),
        SqliteReadModel::open(
            &path,
            FraudReport::new(threshold, Duration::from_secs(3600)),
        )
        .unwrap(),
        small_batches(),
    )
    .unwrap();
    assert_eq!(fraud.status().checkpoint.position, Position::START);
    let built = fraud.run_until_caught_up(WAIT).await.unwrap();
    assert_eq!(built.checkpoint.processed_events, bank.account_events + 5);
    let mut expected: Vec<FraudRow> = bank
        .withdrawals
        .iter()
        .filter(|(_, count)| **count > threshold)
        .map(|(id, count)| FraudRow {
            account_id: id.clone(),
            withdrawals_in_window: i64::from(*count),
        })
        .collect();
    expected.push(FraudRow {
        account_id: "heavy".into(),
        withdrawals_in_window: 5,
    });
    expected.sort_by(|a, b| a.account_id.cmp(&b.account_id));
    let reader = rusqlite::Connection::open(&path).unwrap();
    assert_eq!(flagged_accounts(&reader).unwrap(), expected);
    // The summary was not disturbed, and each projection kept its own checkpoint.
    summary.stop().await.unwrap();
    // `heavy` was never opened: the summary has no row to update for it.
    let rows = bank.rows();
    assert_eq!(summary_rows(&path), rows);
    assert_eq!(
        read_checkpoint(&reader, "fraud_report").unwrap().position,
        last
    );
}

/// A withdrawal event of `account` recorded `minutes` after an arbitrary start.
fn withdrawal_at(account: &str, minutes: u64, position: u64) -> RecordedEvent {
    RecordedEvent {
        id: EventId::generate(),
        stream: stream(&format!("account-{account}")),
        revision: position,
        position: Position(position),
        event_type: "MoneyWithdrawn".into(),
        schema_version: 1,
        content_type: factum_core::CONTENT_TYPE_JSON.into(),
        data: bytes::Bytes::from_static(br#"{"amount_cents":1}"#),
        metadata: bytes::Bytes::new(),
        tags: vec![],
        recorded_at: Timestamp::from_unix_micros(1_700_000_000_000_000 + minutes * 60_000_000),
    }
}

#[test]
fn the_fraud_window_is_one_hour_of_recorded_time() {
    let mut model =
        SqliteReadModel::open_in_memory(FraudReport::new(3, Duration::from_secs(3600))).unwrap();
    let mut events = Vec::new();
    // Spread out: never more than three within an hour (60 minutes apart is outside).
    for minutes in [0, 30, 59, 60, 119, 150] {
        events.push(("spread", minutes));
    }
    // Four within 30 minutes.
    for minutes in [0, 10, 20, 30] {
        events.push(("burst", minutes));
    }
    events.sort_by_key(|(_, minutes)| *minutes);
    let events: Vec<RecordedEvent> = events
        .iter()
        .enumerate()
        .map(|(index, (account, minutes))| withdrawal_at(account, *minutes, index as u64 + 1))
        .collect();
    model
        .commit(&events, events.last().unwrap().position)
        .unwrap();
    assert_eq!(
        flagged_accounts(model.connection()).unwrap(),
        vec![FraudRow {
            account_id: "burst".into(),
            withdrawals_in_window: 4
        }]
    );
}
