//! Small helpers the cases share: stream names, events, and assertions on results.

use std::sync::atomic::{AtomicU64, Ordering};

use factum_core::{
    CONTENT_TYPE_JSON, Error, ExpectedRevision, ProposedEvent, RecordedEvent, StreamName,
};

/// A stream name unique in this process, so cases may share a store if a backend wants to.
pub fn stream(prefix: &str) -> StreamName {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    StreamName::new(format!("{prefix}-{n}")).expect("test stream names are valid")
}

/// A JSON event of `event_type` whose data is `{"n": n}`, with a fresh id.
pub fn event(event_type: &str, n: u64) -> ProposedEvent {
    ProposedEvent::new(
        event_type,
        CONTENT_TYPE_JSON,
        format!("{{\"n\":{n}}}").into_bytes(),
    )
}

/// `count` events of `event_type` numbered from `first`.
pub fn events(event_type: &str, first: u64, count: u64) -> Vec<ProposedEvent> {
    (first..first + count)
        .map(|n| event(event_type, n))
        .collect()
}

/// The `n` of an event made by [`event`].
pub fn number(event: &RecordedEvent) -> u64 {
    let value: serde_json::Value =
        serde_json::from_slice(&event.data).expect("conformance events carry JSON data");
    value["n"]
        .as_u64()
        .expect("conformance events carry a number n")
}

/// The revisions of `events`, in order.
pub fn revisions(events: &[RecordedEvent]) -> Vec<u64> {
    events.iter().map(|event| event.revision).collect()
}

/// Asserts that a recorded event is exactly what was proposed.
pub fn assert_recorded_as_proposed(recorded: &RecordedEvent, proposed: &ProposedEvent) {
    assert_eq!(recorded.id, proposed.id, "id");
    assert_eq!(recorded.event_type, proposed.event_type, "event type");
    assert_eq!(
        recorded.schema_version, proposed.schema_version,
        "schema version"
    );
    assert_eq!(recorded.content_type, proposed.content_type, "content type");
    assert_eq!(recorded.data, proposed.data, "data");
    assert_eq!(recorded.metadata, proposed.metadata, "metadata");
    assert_eq!(recorded.tags, proposed.tags, "tags");
}

/// Asserts `result` is a `WrongExpectedRevision` with this expectation and actual state.
#[track_caller]
pub fn assert_wrong_expected<T: std::fmt::Debug>(
    result: Result<T, Error>,
    expected: ExpectedRevision,
    actual: factum_core::CurrentRevision,
) {
    match result {
        Err(Error::WrongExpectedRevision {
            expected: got_expected,
            actual: got_actual,
            ..
        }) => {
            assert_eq!(got_expected, expected, "reported expectation");
            assert_eq!(got_actual, actual, "reported actual revision");
        }
        other => panic!("expected WrongExpectedRevision, got {other:?}"),
    }
}

/// Asserts `result` failed with an error of the given kind ([`Error::kind`]).
#[track_caller]
pub fn assert_error_kind<T: std::fmt::Debug>(result: Result<T, Error>, kind: &str) {
    match result {
        Err(error) => assert_eq!(error.kind(), kind, "unexpected error: {error}"),
        Ok(value) => panic!("expected a {kind} error, got Ok({value:?})"),
    }
}
