//! Proof that the conformance suite can fail: wrappers around the in-memory store that each
//! break one rule of the contract must fail the cases written for that rule, while the
//! unbroken store passes every case.
//!
//! A suite that passes everything proves nothing; these tests keep it honest when cases are
//! rewritten or the runner changes.

use std::marker::PhantomData;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use async_trait::async_trait;
use factum_conformance::{Failure, all_cases, model::check_against_model, run_cases};
use factum_core::{
    AllSlice, AppendResult, DeleteResult, EventId, EventStore, ExpectedRevision, Limits, Position,
    ProposedEvent, ReadAllOptions, ReadStreamOptions, RecordedEvent, Result, StreamName,
};
use factum_memory::MemoryStore;
use tokio::sync::watch;

/// One way of breaking the contract: each hook changes what goes into or comes out of the
/// in-memory store. The defaults change nothing.
trait Breakage: Send + Sync + 'static {
    /// The events actually appended, given the proposed ones.
    fn proposed(events: Vec<ProposedEvent>) -> Vec<ProposedEvent> {
        events
    }

    /// The expectation actually checked (for appends, deletes and tombstones).
    fn expected(expected: ExpectedRevision) -> ExpectedRevision {
        expected
    }

    /// The `$all` read actually made.
    fn read_all_options(options: ReadAllOptions) -> ReadAllOptions {
        options
    }

    /// The events a read reports, given the stored ones.
    fn recorded(events: Vec<RecordedEvent>) -> Vec<RecordedEvent> {
        events
    }
}

/// Replaces every proposed id with a fresh one, so retries are never recognised.
struct ForgetsIds;

impl Breakage for ForgetsIds {
    fn proposed(events: Vec<ProposedEvent>) -> Vec<ProposedEvent> {
        events
            .into_iter()
            .map(|event| event.with_id(EventId::generate()))
            .collect()
    }
}

/// Turns every expected revision into `Any`: optimistic concurrency is gone.
struct IgnoresExpectedRevision;

impl Breakage for IgnoresExpectedRevision {
    fn expected(_: ExpectedRevision) -> ExpectedRevision {
        ExpectedRevision::Any
    }
}

/// Reports every even position as the odd one before it, so two events share each position
/// on reads (appends still answer the true positions).
struct ReusesPositions;

impl Breakage for ReusesPositions {
    fn recorded(events: Vec<RecordedEvent>) -> Vec<RecordedEvent> {
        events
            .into_iter()
            .map(|mut event| {
                if event.position.0.is_multiple_of(2) {
                    event.position = Position(event.position.0 - 1);
                }
                event
            })
            .collect()
    }
}

/// Returns system events from every `$all` read, as if `include_system` were always set.
struct ShowsSystemEvents;

impl Breakage for ShowsSystemEvents {
    fn read_all_options(options: ReadAllOptions) -> ReadAllOptions {
        ReadAllOptions {
            include_system: true,
            ..options
        }
    }
}

/// The in-memory store with one rule broken by `B`.
struct Broken<B> {
    inner: MemoryStore,
    breakage: PhantomData<fn() -> B>,
}

impl<B: Breakage> Broken<B> {
    async fn new_store() -> Arc<Broken<B>> {
        Arc::new(Broken {
            inner: MemoryStore::new(),
            breakage: PhantomData,
        })
    }
}

// `stream_metadata` and `set_stream_metadata` keep their default implementations, so they go
// through the broken `read_stream` and `append` like any client's calls would.
#[async_trait]
impl<B: Breakage> EventStore for Broken<B> {
    async fn append(
        &self,
        stream: &StreamName,
        expected: ExpectedRevision,
        events: Vec<ProposedEvent>,
    ) -> Result<AppendResult> {
        self.inner
            .append(stream, B::expected(expected), B::proposed(events))
            .await
    }

    async fn read_stream(
        &self,
        stream: &StreamName,
        options: ReadStreamOptions,
    ) -> Result<Vec<RecordedEvent>> {
        let events = self.inner.read_stream(stream, options).await?;
        Ok(B::recorded(events))
    }

    async fn read_all(&self, options: ReadAllOptions) -> Result<AllSlice> {
        let slice = self.inner.read_all(B::read_all_options(options)).await?;
        Ok(AllSlice {
            events: B::recorded(slice.events),
            ..slice
        })
    }

    async fn delete_stream(
        &self,
        stream: &StreamName,
        expected: ExpectedRevision,
    ) -> Result<DeleteResult> {
        self.inner
            .delete_stream(stream, B::expected(expected))
            .await
    }

    async fn tombstone_stream(
        &self,
        stream: &StreamName,
        expected: ExpectedRevision,
    ) -> Result<DeleteResult> {
        self.inner
            .tombstone_stream(stream, B::expected(expected))
            .await
    }

    async fn head(&self) -> Result<Position> {
        self.inner.head().await
    }

    fn watch_head(&self) -> watch::Receiver<Position> {
        self.inner.watch_head()
    }

    fn limits(&self) -> &Limits {
        self.inner.limits()
    }
}

/// Runs the whole suite on `B`'s broken store and asserts that it fails, and that every case in
/// `expected` is among the failures.
async fn check_suite_catches<B: Breakage>(expected: &[&str]) {
    let names: Vec<&str> = all_cases::<Broken<B>>()
        .iter()
        .map(|case| case.name)
        .collect();
    for name in expected {
        assert!(
            names.contains(name),
            "{name} is not a case of the suite (renamed?)"
        );
    }
    let failures = run_cases(all_cases(), Broken::<B>::new_store).await;
    assert!(
        !failures.is_empty(),
        "the suite passed a store that breaks a rule"
    );
    let failed: Vec<&str> = failures.iter().map(|failure| failure.name).collect();
    for name in expected {
        assert!(
            failed.contains(name),
            "{name} passed on a broken store; the cases that failed:\n{}",
            report(&failures)
        );
    }
}

/// Runs the model-based test on `B`'s broken store and asserts that it finds a disagreement.
fn check_model_catches<B: Breakage>() {
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        check_against_model(Broken::<B>::new_store);
    }));
    let panic = outcome.expect_err("the model test passed a store that breaks a rule");
    let message = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or_default();
    assert!(
        message.contains("the store disagrees with the model"),
        "the model test failed for another reason: {message}"
    );
}

fn report(failures: &[Failure]) -> String {
    failures
        .iter()
        .map(|failure| format!("- {}: {}", failure.name, failure.message))
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_unbroken_memory_store_passes_every_case() {
    let new_store = || async { Arc::new(MemoryStore::new()) };
    let failures = run_cases(all_cases(), new_store).await;
    assert!(
        failures.is_empty(),
        "{} case(s) failed on the in-memory store:\n{}",
        failures.len(),
        report(&failures)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forgetting_ids_fails_the_idempotency_cases() {
    check_suite_catches::<ForgetsIds>(&[
        "factum_conformance::append::retry_with_exact_returns_the_original_result",
        "factum_conformance::append::retry_with_no_stream_returns_the_original_result",
        "factum_conformance::append::retry_with_any_returns_the_original_result",
        "factum_conformance::append::retry_with_stream_exists_returns_the_original_result",
        "factum_conformance::append::recorded_event_round_trips_every_field",
    ])
    .await;
}

#[test]
fn forgetting_ids_fails_the_model_test() {
    check_model_catches::<ForgetsIds>();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ignoring_expected_revisions_fails_the_expected_revision_cases() {
    check_suite_catches::<IgnoresExpectedRevision>(&[
        "factum_conformance::append::exact_with_a_wrong_revision_reports_the_current_revision",
        "factum_conformance::append::no_stream_on_an_existing_stream_is_wrong_expected_revision",
        "factum_conformance::append::stream_exists_on_a_new_stream_is_wrong_expected_revision",
        "factum_conformance::delete::soft_delete_with_a_wrong_expected_revision_changes_nothing",
        "factum_conformance::concurrency::racing_exact_appends_have_one_winner_per_round",
    ])
    .await;
}

#[test]
fn ignoring_expected_revisions_fails_the_model_test() {
    check_model_catches::<IgnoresExpectedRevision>();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reusing_positions_fails_the_position_cases() {
    check_suite_catches::<ReusesPositions>(&[
        "factum_conformance::read_all::positions_in_all_are_the_positions_appends_returned",
        "factum_conformance::read_stream::read_events_carry_stream_revision_and_increasing_positions",
    ])
    .await;
}

#[test]
fn reusing_positions_fails_the_model_test() {
    check_model_catches::<ReusesPositions>();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn showing_system_events_fails_the_system_event_cases() {
    check_suite_catches::<ShowsSystemEvents>(&[
        "factum_conformance::read_all::system_events_are_left_out_unless_asked_for",
        "factum_conformance::subscriptions::all_subscription_leaves_out_system_events_unless_asked",
    ])
    .await;
}

#[test]
fn showing_system_events_fails_the_model_test() {
    check_model_catches::<ShowsSystemEvents>();
}
