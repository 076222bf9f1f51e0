//! Unit tests of the append, delete and read rules, through one `check` helper per rule.

use super::*;
use crate::revision::Position;

fn stream() -> StreamName {
    StreamName::new("account-1").unwrap()
}

fn state(
    last_revision: Option<u64>,
    truncate_before: Option<u64>,
    tombstoned: bool,
) -> StreamState {
    StreamState {
        last_revision,
        truncate_before,
        tombstoned,
    }
}

fn stored(revision: u64, id: u128) -> StoredId {
    StoredId {
        revision,
        id: EventId(uuid::Uuid::from_u128(id)),
        position: Position(100 + revision),
    }
}

fn ids(ids: &[u128]) -> Vec<EventId> {
    ids.iter()
        .map(|id| EventId(uuid::Uuid::from_u128(*id)))
        .collect()
}

/// Plans and, if asked, resolves an append against a stream whose revision `r` has id `r`.
fn check_append(
    state: StreamState,
    expected: ExpectedRevision,
    proposed: &[u128],
) -> Result<IdCheckOutcome, Error> {
    let proposed = ids(proposed);
    match plan_append(&stream(), &state, expected, proposed.len() as u64)? {
        AppendPlan::Write { first_revision } => Ok(IdCheckOutcome::Write { first_revision }),
        AppendPlan::CheckIds(check) => {
            let existing = state.last_revision.map_or(0, |last| last + 1);
            let stored: Vec<StoredId> = check
                .revisions()
                .filter(|revision| *revision < existing)
                .map(|revision| stored(revision, u128::from(revision)))
                .collect();
            check.resolve(&proposed, &stored)
        }
    }
}

fn written(revision: u64) -> IdCheckOutcome {
    IdCheckOutcome::AlreadyWritten(AppendResult {
        position: Position(100 + revision),
        revision,
    })
}

fn write_at(first_revision: u64) -> IdCheckOutcome {
    IdCheckOutcome::Write { first_revision }
}

fn is_conflict(result: &Result<IdCheckOutcome, Error>) -> bool {
    matches!(result, Err(Error::WrongExpectedRevision { .. }))
}

#[test]
fn exact_writes_after_the_expected_revision_or_recognises_a_retry() {
    let live = state(Some(4), None, false);
    assert_eq!(
        check_append(live, ExpectedRevision::Exact(4), &[99]).unwrap(),
        write_at(5)
    );
    // Events 2 and 3 carry ids 2 and 3: re-appending them after revision 1 is a retry.
    assert_eq!(
        check_append(live, ExpectedRevision::Exact(1), &[2, 3]).unwrap(),
        written(3)
    );
    // A prefix only, other ids, or more events than were stored: a conflict.
    assert!(is_conflict(&check_append(
        live,
        ExpectedRevision::Exact(1),
        &[2, 9]
    )));
    assert!(is_conflict(&check_append(
        live,
        ExpectedRevision::Exact(1),
        &[3]
    )));
    assert!(is_conflict(&check_append(
        live,
        ExpectedRevision::Exact(3),
        &[4, 5]
    )));
    assert!(is_conflict(&check_append(
        live,
        ExpectedRevision::Exact(7),
        &[8]
    )));
}

#[test]
fn no_stream_writes_to_new_or_soft_deleted_streams() {
    assert_eq!(
        check_append(state(None, None, false), ExpectedRevision::NoStream, &[1]).unwrap(),
        write_at(0)
    );
    let deleted = state(Some(4), Some(5), false);
    assert_eq!(
        check_append(deleted, ExpectedRevision::NoStream, &[1]).unwrap(),
        write_at(5)
    );
    assert_eq!(
        check_append(deleted, ExpectedRevision::Exact(4), &[1]).unwrap(),
        write_at(5)
    );
    let live = state(Some(4), None, false);
    assert_eq!(
        check_append(live, ExpectedRevision::NoStream, &[0, 1]).unwrap(),
        written(1)
    );
    assert!(is_conflict(&check_append(
        live,
        ExpectedRevision::NoStream,
        &[7]
    )));
}

#[test]
fn any_compares_ids_with_the_window_of_last_events() {
    let live = state(Some(4), None, false);
    assert_eq!(
        check_append(live, ExpectedRevision::Any, &[50, 51]).unwrap(),
        write_at(5)
    );
    assert_eq!(
        check_append(live, ExpectedRevision::Any, &[3, 4]).unwrap(),
        written(4)
    );
    assert!(is_conflict(&check_append(
        live,
        ExpectedRevision::Any,
        &[4, 50]
    )));
    assert!(is_conflict(&check_append(
        live,
        ExpectedRevision::Any,
        &[50, 4]
    )));
    assert!(is_conflict(&check_append(
        live,
        ExpectedRevision::Any,
        &[2, 4]
    )));
    let long = state(Some(1000), None, false);
    // Revision 10 is outside the window: its id is not recognised, the append writes.
    assert_eq!(
        check_append(long, ExpectedRevision::Any, &[10]).unwrap(),
        write_at(1001)
    );
    assert_eq!(
        check_append(long, ExpectedRevision::Any, &[999, 1000]).unwrap(),
        written(1000)
    );
}

#[test]
fn stream_exists_needs_visible_events() {
    assert!(is_conflict(&check_append(
        state(None, None, false),
        ExpectedRevision::StreamExists,
        &[1]
    )));
    assert!(is_conflict(&check_append(
        state(Some(4), Some(5), false),
        ExpectedRevision::StreamExists,
        &[1]
    )));
    assert_eq!(
        check_append(
            state(Some(4), None, false),
            ExpectedRevision::StreamExists,
            &[9]
        )
        .unwrap(),
        write_at(5)
    );
}

#[test]
fn tombstoned_streams_refuse_everything() {
    let gone = state(Some(4), None, true);
    for expected in [
        ExpectedRevision::Any,
        ExpectedRevision::NoStream,
        ExpectedRevision::Exact(4),
    ] {
        assert!(matches!(
            check_append(gone, expected, &[1]),
            Err(Error::StreamDeleted { .. })
        ));
        assert!(matches!(
            plan_delete(&stream(), &gone, expected, false),
            Err(Error::StreamDeleted { .. })
        ));
    }
}

#[test]
fn conflicts_report_the_actual_revision() {
    let error = check_append(
        state(Some(4), None, false),
        ExpectedRevision::Exact(9),
        &[1],
    )
    .unwrap_err();
    let Error::WrongExpectedRevision {
        expected, actual, ..
    } = error
    else {
        panic!("expected a conflict, got {error:?}");
    };
    assert_eq!(expected, ExpectedRevision::Exact(9));
    assert_eq!(actual, CurrentRevision::Current(4));
    let error = check_append(
        state(Some(4), Some(5), false),
        ExpectedRevision::Exact(9),
        &[1],
    )
    .unwrap_err();
    assert!(matches!(
        error,
        Error::WrongExpectedRevision {
            actual: CurrentRevision::NoStream,
            ..
        }
    ));
}

#[test]
fn delete_rules() {
    let check = |state: StreamState, expected, tombstone| {
        plan_delete(&stream(), &state, expected, tombstone)
    };
    let never = state(None, None, false);
    assert!(matches!(
        check(never, ExpectedRevision::Any, false),
        Err(Error::StreamNotFound { .. })
    ));
    assert!(check(never, ExpectedRevision::Any, true).is_ok());
    assert!(check(never, ExpectedRevision::NoStream, true).is_ok());
    assert!(matches!(
        check(never, ExpectedRevision::StreamExists, true),
        Err(Error::StreamNotFound { .. })
    ));
    let live = state(Some(3), None, false);
    assert!(check(live, ExpectedRevision::Exact(3), false).is_ok());
    assert!(check(live, ExpectedRevision::StreamExists, false).is_ok());
    assert!(matches!(
        check(live, ExpectedRevision::NoStream, false),
        Err(Error::WrongExpectedRevision { .. })
    ));
    let deleted = state(Some(3), Some(4), false);
    assert!(check(deleted, ExpectedRevision::Any, false).is_ok());
    assert!(check(deleted, ExpectedRevision::Exact(3), false).is_ok());
    assert!(matches!(
        check(deleted, ExpectedRevision::StreamExists, false),
        Err(Error::WrongExpectedRevision { .. })
    ));
    let metadata = StreamName::new("$$account-1").unwrap();
    assert!(matches!(
        plan_delete(&metadata, &live, ExpectedRevision::Any, false),
        Err(Error::InvalidRequest { .. })
    ));
}

fn check_read(
    state: StreamState,
    metadata: &StreamMetadata,
    options: ReadStreamOptions,
) -> Option<Vec<u64>> {
    plan_stream_read(&stream(), &state, metadata, &options)
        .unwrap()
        .map(|plan| plan.revisions().collect())
}

#[test]
fn read_plans_follow_direction_and_metadata() {
    let live = state(Some(5), None, false);
    let none = StreamMetadata::default();
    assert_eq!(
        check_read(live, &none, ReadStreamOptions::forwards()),
        Some(vec![0, 1, 2, 3, 4, 5])
    );
    assert_eq!(
        check_read(live, &none, ReadStreamOptions::backwards().from_revision(2)),
        Some(vec![2, 1, 0])
    );
    assert_eq!(
        check_read(live, &none, ReadStreamOptions::forwards().from_revision(6)),
        None
    );
    assert_eq!(
        check_read(
            live,
            &none,
            ReadStreamOptions::backwards().from_revision(60)
        ),
        Some(vec![5, 4, 3, 2, 1, 0])
    );
    let capped = StreamMetadata {
        max_count: Some(2),
        ..StreamMetadata::default()
    };
    assert_eq!(
        check_read(live, &capped, ReadStreamOptions::forwards()),
        Some(vec![4, 5])
    );
    assert_eq!(
        check_read(
            live,
            &capped,
            ReadStreamOptions::backwards().from_revision(1)
        ),
        None
    );
    let truncated = StreamMetadata {
        truncate_before: Some(3),
        ..StreamMetadata::default()
    };
    assert_eq!(
        check_read(
            live,
            &truncated,
            ReadStreamOptions::forwards().from_revision(1)
        ),
        Some(vec![3, 4, 5])
    );
}

#[test]
fn reads_of_missing_or_deleted_streams_fail() {
    let none = StreamMetadata::default();
    let options = ReadStreamOptions::forwards();
    let read = |state: StreamState| plan_stream_read(&stream(), &state, &none, &options);
    assert!(matches!(
        read(state(None, None, false)),
        Err(Error::StreamNotFound { .. })
    ));
    assert!(matches!(
        read(state(Some(3), Some(4), false)),
        Err(Error::StreamNotFound { .. })
    ));
    assert!(matches!(
        read(state(Some(3), None, true)),
        Err(Error::StreamDeleted { .. })
    ));
}

#[test]
fn validation_refuses_bad_input() {
    let limits = Limits::default();
    let check = |events: Vec<ProposedEvent>| validate_append(&stream(), &events, &limits);
    let ok = || ProposedEvent::bytes("Happened", vec![1u8]);
    assert!(check(vec![ok()]).is_ok());
    assert!(matches!(check(vec![]), Err(Error::InvalidRequest { .. })));
    let twice = ok();
    assert!(matches!(
        check(vec![twice.clone(), twice]),
        Err(Error::InvalidRequest { .. })
    ));
    assert!(matches!(
        check(vec![ok(), ProposedEvent::bytes("", vec![])]),
        Err(Error::InvalidEvent { index: 1, .. })
    ));
    assert!(matches!(
        check(vec![ProposedEvent::bytes("$reserved", vec![])]),
        Err(Error::InvalidEvent { .. })
    ));
    assert!(matches!(
        check(vec![ProposedEvent::bytes("T".repeat(256), vec![])]),
        Err(Error::InvalidEvent { .. })
    ));
    assert!(matches!(
        check(vec![ok().with_schema_version(0)]),
        Err(Error::InvalidEvent { .. })
    ));
    assert!(matches!(
        check(vec![ok().with_tags([""])]),
        Err(Error::InvalidEvent { .. })
    ));
    assert!(matches!(
        check(vec![ok().with_tags((0..17).map(|i| i.to_string()))]),
        Err(Error::InvalidEvent { .. })
    ));
    let big = ProposedEvent::bytes("Big", vec![0u8; 1024 * 1024]);
    assert!(matches!(
        check(vec![big]),
        Err(Error::EventTooLarge { index: 0, .. })
    ));
    let many: Vec<ProposedEvent> = (0..17)
        .map(|_| ProposedEvent::bytes("Big", vec![0u8; 1000 * 1000]))
        .collect();
    assert!(matches!(check(many), Err(Error::AppendTooLarge { .. })));
}

#[test]
fn metadata_streams_take_only_valid_metadata_events() {
    let limits = Limits::default();
    let metadata_stream = StreamName::new("$$account-1").unwrap();
    let check = |event: ProposedEvent| validate_append(&metadata_stream, &[event], &limits);
    assert!(
        check(ProposedEvent::new(
            "$metadata",
            "application/json",
            &b"{\"$maxCount\":3}"[..]
        ))
        .is_ok()
    );
    assert!(matches!(
        check(ProposedEvent::bytes("Happened", vec![])),
        Err(Error::InvalidEvent { .. })
    ));
    assert!(matches!(
        check(ProposedEvent::new(
            "$metadata",
            "application/json",
            &b"[]"[..]
        )),
        Err(Error::InvalidEvent { .. })
    ));
}
