//! Conformance cases for reading the global log `$all`: ranges in both directions, limits,
//! system events, filters, scan limits with paging, what deletion and truncation leave visible,
//! and how positions relate to what appends return.
//!
//! Positions may have gaps in some backends, so no case computes one event's position from
//! another's: "a position that is no event's position" is written as `p + 1` for an event at
//! `p`, which is either the next event's position (dense logs) or a gap, and the expected
//! result is stated by comparing positions, which holds in both cases.

use std::sync::Arc;

use factum_core::{
    AllSlice, AllStart, Direction, Error, EventFilter, EventStore, ExpectedRevision, Position,
    ProposedEvent, ReadAllOptions, ReadStreamOptions, RecordedEvent, StreamMetadata, StreamName,
};

use crate::support::{assert_error_kind, assert_recorded_as_proposed, event, events, stream};
use crate::{Case, case};

/// Every case of this area.
pub fn cases<S: EventStore>() -> Vec<Case<S>> {
    vec![
        case!(forwards_from_start_returns_every_event_in_commit_order),
        case!(forwards_from_a_position_is_inclusive),
        case!(forwards_from_a_position_between_events_starts_at_the_next_event),
        case!(backwards_from_end_returns_newest_first),
        case!(backwards_from_a_position_is_exclusive),
        case!(limit_counts_events_returned_and_stops_at_the_last_one),
        case!(limit_zero_returns_nothing),
        case!(an_empty_store_reads_as_an_empty_log),
        case!(system_events_are_left_out_unless_asked_for),
        case!(stream_prefix_filters_keep_streams_starting_with_any_prefix),
        case!(event_type_prefix_filter_keeps_matching_types),
        case!(regex_filters_search_stream_names_and_event_types),
        case!(look_ahead_regex_on_event_types_excludes_system_types_only),
        case!(an_invalid_regex_is_an_invalid_request),
        case!(filtered_read_with_a_limit_returns_the_first_matches),
        case!(filtered_backwards_read_from_a_position_returns_earlier_matches_newest_first),
        case!(scan_limit_bounds_the_events_one_read_examines),
        case!(paging_forwards_with_scan_limits_visits_every_match_once),
        case!(paging_backwards_with_scan_limits_visits_every_match_once),
        case!(deleted_and_truncated_streams_stay_visible_in_all),
        case!(positions_in_all_are_the_positions_appends_returned),
    ]
}

/// Reads `$all`, failing the case on an error.
async fn read_all<S: EventStore>(store: &Arc<S>, options: ReadAllOptions) -> AllSlice {
    store
        .read_all(options.clone())
        .await
        .unwrap_or_else(|error| panic!("read_all({options:?}) failed: {error}"))
}

/// Appends with `ExpectedRevision::Any`, failing the case on an error.
async fn append<S: EventStore>(
    store: &Arc<S>,
    stream: &StreamName,
    events: Vec<ProposedEvent>,
) -> factum_core::AppendResult {
    store
        .append(stream, ExpectedRevision::Any, events)
        .await
        .unwrap_or_else(|error| panic!("append to {stream} failed: {error}"))
}

async fn head<S: EventStore>(store: &Arc<S>) -> Position {
    store.head().await.expect("head")
}

fn positions(events: &[RecordedEvent]) -> Vec<Position> {
    events.iter().map(|event| event.position).collect()
}

fn after(position: Position) -> Position {
    Position(position.0 + 1)
}

#[track_caller]
fn assert_strictly_increasing(events: &[RecordedEvent]) {
    for pair in events.windows(2) {
        assert!(
            pair[0].position < pair[1].position,
            "positions must strictly increase along $all: {} then {}",
            pair[0].position,
            pair[1].position
        );
    }
}

fn reversed(events: &[RecordedEvent]) -> Vec<RecordedEvent> {
    events.iter().rev().cloned().collect()
}

/// Ten events over two streams, one append each, as `$all` forwards returns them.
async fn ten_events<S: EventStore>(store: &Arc<S>) -> Vec<RecordedEvent> {
    let streams = [stream("all-range-a"), stream("all-range-b")];
    for n in 0..10u64 {
        append(
            store,
            &streams[(n % 2) as usize],
            vec![event("Happened", n)],
        )
        .await;
    }
    let slice = read_all(store, ReadAllOptions::forwards()).await;
    assert_eq!(slice.events.len(), 10, "all ten events are in $all");
    slice.events
}

/// `$all` forwards from the start returns every event exactly once, in commit order across
/// streams, as recorded, with strictly increasing positions.
async fn forwards_from_start_returns_every_event_in_commit_order<S: EventStore>(store: Arc<S>) {
    let streams = [
        stream("all-order-a"),
        stream("all-order-b"),
        stream("all-order-c"),
    ];
    // Streams interleave and some appends carry several events, so commit order is neither
    // per-stream order nor one event per append.
    let plan: [(usize, u64); 6] = [(0, 1), (1, 2), (0, 1), (2, 3), (1, 1), (0, 2)];
    let mut written = Vec::new();
    for (n, (index, count)) in plan.into_iter().enumerate() {
        let batch = events("Happened", n as u64 * 10, count);
        append(&store, &streams[index], batch.clone()).await;
        written.extend(batch.into_iter().map(|proposed| (index, proposed)));
    }

    let slice = read_all(&store, ReadAllOptions::forwards()).await;
    assert_eq!(slice.events.len(), written.len(), "every event, once");
    for (recorded, (index, proposed)) in slice.events.iter().zip(&written) {
        assert_eq!(
            recorded.stream, streams[*index],
            "stream of {}",
            recorded.id
        );
        assert_recorded_as_proposed(recorded, proposed);
    }
    assert_strictly_increasing(&slice.events);
    assert!(slice.end_of_log, "a full read reaches the end of the log");
    assert_eq!(
        slice.scanned_to,
        head(&store).await,
        "a full forwards read examines up to the head"
    );
}

/// Forwards from `Position(p)` includes the event at `p`.
async fn forwards_from_a_position_is_inclusive<S: EventStore>(store: Arc<S>) {
    let all = ten_events(&store).await;
    for k in [0, 4, 9] {
        let slice = read_all(
            &store,
            ReadAllOptions::forwards().from_position(all[k].position),
        )
        .await;
        assert_eq!(
            slice.events,
            all[k..],
            "forwards from the position of event {k}"
        );
        assert!(slice.end_of_log);
    }
}

/// Forwards from a position that is no event's position starts at the next event; from past
/// the head it returns nothing and reports the end of the log.
async fn forwards_from_a_position_between_events_starts_at_the_next_event<S: EventStore>(
    store: Arc<S>,
) {
    let all = ten_events(&store).await;
    let from_zero = read_all(
        &store,
        ReadAllOptions::forwards().from_position(Position(0)),
    )
    .await;
    assert_eq!(from_zero.events, all, "Position(0) is before every event");

    for k in [0, 5, 8] {
        let from = after(all[k].position);
        let slice = read_all(&store, ReadAllOptions::forwards().from_position(from)).await;
        let expected: Vec<RecordedEvent> = all
            .iter()
            .filter(|event| event.position >= from)
            .cloned()
            .collect();
        assert_eq!(expected, all[k + 1..], "the events after event {k}");
        assert_eq!(slice.events, expected, "forwards from {from}");
    }

    let head = head(&store).await;
    for from in [after(head), Position::MAX] {
        let slice = read_all(&store, ReadAllOptions::forwards().from_position(from)).await;
        assert!(slice.events.is_empty(), "nothing at or after {from}");
        assert!(
            slice.end_of_log,
            "reading from {from} is at the end of the log"
        );
    }
}

/// Backwards from the end returns every event, newest first.
async fn backwards_from_end_returns_newest_first<S: EventStore>(store: Arc<S>) {
    let all = ten_events(&store).await;
    let slice = read_all(&store, ReadAllOptions::backwards()).await;
    assert_eq!(slice.events, reversed(&all), "newest first");
    assert!(slice.end_of_log, "a full read reaches the start of the log");
    assert_eq!(
        slice.scanned_to, all[0].position,
        "a full backwards read examines down to the first event"
    );
}

/// Backwards from `Position(p)` excludes the event at `p` and returns those before it, newest
/// first; a bound between events or past the head works too.
async fn backwards_from_a_position_is_exclusive<S: EventStore>(store: Arc<S>) {
    let all = ten_events(&store).await;
    for k in [0, 1, 6, 9] {
        let slice = read_all(
            &store,
            ReadAllOptions::backwards().from_position(all[k].position),
        )
        .await;
        assert_eq!(
            slice.events,
            reversed(&all[..k]),
            "backwards from the position of event {k} leaves it out"
        );
        assert!(slice.end_of_log);

        // Just above event k: it is either the next event's position or a gap; either way
        // event k is the newest event below the bound.
        let bound = after(all[k].position);
        let slice = read_all(&store, ReadAllOptions::backwards().from_position(bound)).await;
        assert_eq!(slice.events, reversed(&all[..=k]), "backwards from {bound}");
    }
    let past_head = read_all(
        &store,
        ReadAllOptions::backwards().from_position(Position::MAX),
    )
    .await;
    assert_eq!(past_head.events, reversed(&all), "a bound past the head");
    let from_zero = read_all(
        &store,
        ReadAllOptions::backwards().from_position(Position(0)),
    )
    .await;
    assert!(
        from_zero.events.is_empty(),
        "nothing lies before Position(0)"
    );
    assert!(from_zero.end_of_log);
}

/// A limit returns at most that many events; when it stops a read, `end_of_log` is false and
/// `scanned_to` is the last event returned, so continuing from it skips nothing.
async fn limit_counts_events_returned_and_stops_at_the_last_one<S: EventStore>(store: Arc<S>) {
    let all = ten_events(&store).await;

    let forwards = read_all(&store, ReadAllOptions::forwards().limit(3)).await;
    assert_eq!(forwards.events, all[..3], "the first three");
    assert!(!forwards.end_of_log, "the limit stopped the read");
    assert_eq!(forwards.scanned_to, all[2].position);

    let backwards = read_all(&store, ReadAllOptions::backwards().limit(3)).await;
    assert_eq!(backwards.events, reversed(&all[7..]), "the last three");
    assert!(!backwards.end_of_log, "the limit stopped the read");
    assert_eq!(backwards.scanned_to, all[7].position);

    let from_middle = read_all(
        &store,
        ReadAllOptions::forwards()
            .from_position(all[4].position)
            .limit(2),
    )
    .await;
    assert_eq!(from_middle.events, all[4..6]);

    let more_than_there_is = read_all(&store, ReadAllOptions::forwards().limit(1000)).await;
    assert_eq!(more_than_there_is.events, all);
    assert!(more_than_there_is.end_of_log);
}

/// A limit of 0 returns no events, in both directions.
async fn limit_zero_returns_nothing<S: EventStore>(store: Arc<S>) {
    ten_events(&store).await;
    let forwards = read_all(&store, ReadAllOptions::forwards().limit(0)).await;
    assert!(
        forwards.events.is_empty(),
        "forwards: {:?}",
        forwards.events
    );
    let backwards = read_all(&store, ReadAllOptions::backwards().limit(0)).await;
    assert!(
        backwards.events.is_empty(),
        "backwards: {:?}",
        backwards.events
    );
}

/// An empty store's `$all` is empty in both directions, at the end of the log, with a head
/// of 0 and `scanned_to` at the documented "nothing examined" bounds.
async fn an_empty_store_reads_as_an_empty_log<S: EventStore>(store: Arc<S>) {
    assert_eq!(head(&store).await, Position(0), "an empty store's head");
    let forwards = read_all(&store, ReadAllOptions::forwards()).await;
    assert!(forwards.events.is_empty());
    assert!(forwards.end_of_log);
    assert_eq!(
        forwards.scanned_to,
        Position(0),
        "nothing examined forwards"
    );

    let backwards = read_all(&store, ReadAllOptions::backwards()).await;
    assert!(backwards.events.is_empty());
    assert!(backwards.end_of_log);
    assert_eq!(
        backwards.scanned_to,
        Position(1),
        "nothing examined backwards: the head plus one"
    );

    let with_system = read_all(&store, ReadAllOptions::forwards().include_system()).await;
    assert!(with_system.events.is_empty());
    assert!(with_system.end_of_log);
}

/// Events of `$`-streams (metadata `$$s`, a user's `$snapshots-…`) and `$`-typed events (the
/// `$streamDeleted` marker) are left out of `$all` by default and returned with
/// `include_system`, in commit order.
async fn system_events_are_left_out_unless_asked_for<S: EventStore>(store: Arc<S>) {
    let user = stream("sys-user");
    let snapshots = StreamName::new(format!("$snapshots-{user}")).expect("valid name");
    let doomed = stream("sys-doomed");
    append(&store, &user, events("Happened", 0, 2)).await;
    let metadata = StreamMetadata {
        max_count: Some(10),
        ..StreamMetadata::default()
    };
    store
        .set_stream_metadata(&user, ExpectedRevision::NoStream, &metadata)
        .await
        .expect("set metadata");
    append(&store, &snapshots, vec![event("SnapshotTaken", 2)]).await;
    append(&store, &doomed, vec![event("Happened", 3)]).await;
    store
        .tombstone_stream(&doomed, ExpectedRevision::Any)
        .await
        .expect("tombstone");
    append(&store, &user, vec![event("Happened", 4)]).await;

    let metadata_stream = user.metadata_stream().expect("a user stream has metadata");
    let everything: [(&StreamName, &str); 7] = [
        (&user, "Happened"),
        (&user, "Happened"),
        (&metadata_stream, "$metadata"),
        (&snapshots, "SnapshotTaken"),
        (&doomed, "Happened"),
        (&doomed, "$streamDeleted"),
        (&user, "Happened"),
    ];
    let describe = |events: &[RecordedEvent]| -> Vec<(StreamName, String)> {
        events
            .iter()
            .map(|event| (event.stream.clone(), event.event_type.to_string()))
            .collect()
    };
    let expected_all: Vec<(StreamName, String)> = everything
        .iter()
        .map(|(stream, event_type)| ((*stream).clone(), (*event_type).to_owned()))
        .collect();
    let expected_user: Vec<(StreamName, String)> = expected_all
        .iter()
        .filter(|(stream, event_type)| !stream.is_system() && !event_type.starts_with('$'))
        .cloned()
        .collect();
    assert_eq!(expected_user.len(), 4, "the user events of the scenario");

    let default = read_all(&store, ReadAllOptions::forwards()).await;
    assert_eq!(
        describe(&default.events),
        expected_user,
        "forwards, default"
    );
    assert!(default.events.iter().all(|event| !event.is_system()));
    let default_backwards = read_all(&store, ReadAllOptions::backwards()).await;
    assert_eq!(
        describe(&default_backwards.events),
        expected_user.iter().rev().cloned().collect::<Vec<_>>(),
        "backwards, default"
    );

    let with_system = read_all(&store, ReadAllOptions::forwards().include_system()).await;
    assert_eq!(
        describe(&with_system.events),
        expected_all,
        "forwards, system"
    );
    assert_strictly_increasing(&with_system.events);
    let with_system_backwards =
        read_all(&store, ReadAllOptions::backwards().include_system()).await;
    assert_eq!(
        with_system_backwards.events,
        reversed(&with_system.events),
        "backwards, system"
    );
}

/// A small shop: orders, order lines, invoices and a `$snapshots` stream, plus metadata and a
/// tombstone, so filters meet both user and system events. Returns `$all` with system events.
async fn shop<S: EventStore>(store: &Arc<S>) -> Vec<RecordedEvent> {
    let order = stream("order");
    let line = stream("orderline");
    let invoice = stream("invoice");
    let snapshots = StreamName::new(format!("$snapshots-{order}")).expect("valid name");
    let cancelled = stream("order");
    append(store, &order, vec![event("OrderPlaced", 0)]).await;
    append(
        store,
        &line,
        vec![event("LinePriced", 1), event("LinePriced", 2)],
    )
    .await;
    append(store, &invoice, vec![event("InvoiceSent", 3)]).await;
    store
        .set_stream_metadata(
            &order,
            ExpectedRevision::NoStream,
            &StreamMetadata::default(),
        )
        .await
        .expect("set metadata");
    append(store, &snapshots, vec![event("OrderSnapshot", 4)]).await;
    append(store, &order, vec![event("OrderShipped", 5)]).await;
    append(store, &cancelled, vec![event("OrderPlaced", 6)]).await;
    store
        .tombstone_stream(&cancelled, ExpectedRevision::Any)
        .await
        .expect("tombstone");
    append(store, &invoice, vec![event("InvoicePaid", 7)]).await;
    let slice = read_all(store, ReadAllOptions::forwards().include_system()).await;
    assert_eq!(
        slice.events.len(),
        10,
        "the shop's events, system ones included"
    );
    slice.events
}

/// Checks that `filter` returns exactly the events of `log` that `keep` selects, in both
/// directions, and that the selection is neither empty nor everything (a useful filter).
async fn check_filter<S: EventStore>(
    store: &Arc<S>,
    log: &[RecordedEvent],
    filter: EventFilter,
    include_system: bool,
    keep: impl Fn(&RecordedEvent) -> bool,
) {
    let expected: Vec<RecordedEvent> = log
        .iter()
        .filter(|event| (include_system || !event.is_system()) && keep(event))
        .cloned()
        .collect();
    assert!(!expected.is_empty(), "{filter:?} should keep something");
    assert!(
        expected.len() < log.len(),
        "{filter:?} should drop something"
    );
    let mut forwards = ReadAllOptions::forwards().filter(filter.clone());
    let mut backwards = ReadAllOptions::backwards().filter(filter.clone());
    forwards.include_system = include_system;
    backwards.include_system = include_system;
    let slice = read_all(store, forwards).await;
    assert_eq!(slice.events, expected, "forwards with {filter:?}");
    assert!(slice.end_of_log);
    let slice = read_all(store, backwards).await;
    assert_eq!(
        slice.events,
        reversed(&expected),
        "backwards with {filter:?}"
    );
    assert!(slice.end_of_log);
}

/// A stream-prefix filter keeps events of streams whose name starts with one of its prefixes;
/// system streams still need `include_system`.
async fn stream_prefix_filters_keep_streams_starting_with_any_prefix<S: EventStore>(store: Arc<S>) {
    let log = shop(&store).await;
    let starts = |event: &RecordedEvent, prefix: &str| event.stream.as_str().starts_with(prefix);
    check_filter(
        &store,
        &log,
        EventFilter::stream_prefix("order-"),
        false,
        |e| starts(e, "order-"),
    )
    .await;
    // "order" also starts "orderline-…".
    check_filter(
        &store,
        &log,
        EventFilter::stream_prefix("order"),
        false,
        |e| starts(e, "order"),
    )
    .await;
    let several = EventFilter::StreamPrefix(vec!["orderline-".into(), "invoice-".into()]);
    check_filter(&store, &log, several, false, |e| {
        starts(e, "orderline-") || starts(e, "invoice-")
    })
    .await;
    check_filter(&store, &log, EventFilter::stream_prefix("$"), true, |e| {
        starts(e, "$")
    })
    .await;

    let system_only = read_all(
        &store,
        ReadAllOptions::forwards().filter(EventFilter::stream_prefix("$$")),
    )
    .await;
    assert!(
        system_only.events.is_empty(),
        "metadata streams are system streams: {:?}",
        system_only.events
    );
    let none = read_all(
        &store,
        ReadAllOptions::forwards().filter(EventFilter::StreamPrefix(vec![])),
    )
    .await;
    assert!(
        none.events.is_empty(),
        "an empty prefix list matches nothing"
    );
}

/// An event-type-prefix filter keeps events whose type starts with one of its prefixes.
async fn event_type_prefix_filter_keeps_matching_types<S: EventStore>(store: Arc<S>) {
    let log = shop(&store).await;
    check_filter(
        &store,
        &log,
        EventFilter::event_type_prefix("Invoice"),
        false,
        |e| e.event_type.starts_with("Invoice"),
    )
    .await;
    let several = EventFilter::EventTypePrefix(vec!["OrderP".into(), "Line".into()]);
    check_filter(&store, &log, several, false, |e| {
        e.event_type.starts_with("OrderP") || e.event_type.starts_with("Line")
    })
    .await;
    check_filter(
        &store,
        &log,
        EventFilter::event_type_prefix("$"),
        true,
        |e| e.event_type.starts_with('$'),
    )
    .await;
}

/// Regex filters match anywhere in the stream name or event type unless anchored.
async fn regex_filters_search_stream_names_and_event_types<S: EventStore>(store: Arc<S>) {
    let log = shop(&store).await;
    let regex = |pattern: &str| EventFilter::stream_regex(pattern).expect("valid regex");
    check_filter(&store, &log, regex(r"^order-\d+$"), false, |e| {
        e.stream.as_str().starts_with("order-")
    })
    .await;
    // Unanchored: "line" is found inside "orderline-…".
    check_filter(&store, &log, regex("line"), false, |e| {
        e.stream.as_str().contains("line")
    })
    .await;
    let type_regex = |pattern: &str| EventFilter::event_type_regex(pattern).expect("valid regex");
    check_filter(&store, &log, type_regex("(Placed|Paid)$"), false, |e| {
        e.event_type.ends_with("Placed") || e.event_type.ends_with("Paid")
    })
    .await;
    check_filter(&store, &log, type_regex("Snapshot"), true, |e| {
        e.event_type.contains("Snapshot")
    })
    .await;
}

/// The look-ahead regex KurrentDB clients send, `^(?!\$).*` on event types with
/// `include_system`, drops `$`-typed events (`$metadata`, `$streamDeleted`) but keeps
/// ordinary events of system streams.
async fn look_ahead_regex_on_event_types_excludes_system_types_only<S: EventStore>(store: Arc<S>) {
    let log = shop(&store).await;
    let filter = EventFilter::event_type_regex(r"^(?!\$).*").expect("valid regex");
    check_filter(&store, &log, filter.clone(), true, |e| {
        !e.event_type.starts_with('$')
    })
    .await;
    let slice = read_all(
        &store,
        ReadAllOptions::forwards().filter(filter).include_system(),
    )
    .await;
    assert!(
        slice
            .events
            .iter()
            .any(|event| event.stream.as_str().starts_with("$snapshots-")),
        "events of a system stream with an ordinary type pass the look-ahead filter"
    );
}

/// A regex that does not compile is refused with `InvalidRequest`.
async fn an_invalid_regex_is_an_invalid_request<S: EventStore>(store: Arc<S>) {
    assert_error_kind(EventFilter::stream_regex("(unclosed"), "invalid_request");
    assert_error_kind(EventFilter::event_type_regex("[a-"), "invalid_request");
    let result: Result<EventFilter, Error> = EventFilter::stream_regex("*abc");
    assert!(
        matches!(result, Err(Error::InvalidRequest { .. })),
        "{result:?}"
    );
    // The store is untouched by a filter that never got built.
    assert_eq!(head(&store).await, Position(0));
}

/// A filtered read with a limit returns the first N matching events (the limit counts kept
/// events, not examined ones), forwards and backwards.
async fn filtered_read_with_a_limit_returns_the_first_matches<S: EventStore>(store: Arc<S>) {
    let log = shop(&store).await;
    let filter = EventFilter::stream_prefix("order");
    let matches: Vec<RecordedEvent> = log
        .iter()
        .filter(|event| !event.is_system() && event.stream.as_str().starts_with("order"))
        .cloned()
        .collect();
    assert!(
        matches.len() >= 4,
        "enough matches to limit: {}",
        matches.len()
    );

    let forwards = read_all(
        &store,
        ReadAllOptions::forwards().filter(filter.clone()).limit(3),
    )
    .await;
    assert_eq!(forwards.events, matches[..3], "the first three matches");
    assert!(!forwards.end_of_log, "the limit stopped the read");

    let backwards = read_all(
        &store,
        ReadAllOptions::backwards().filter(filter.clone()).limit(2),
    )
    .await;
    assert_eq!(
        backwards.events,
        reversed(&matches[matches.len() - 2..]),
        "the last two matches, newest first"
    );
    assert!(!backwards.end_of_log, "the limit stopped the read");

    // Continuing after the limit picks up the next match.
    let next = read_all(
        &store,
        ReadAllOptions::forwards()
            .from_position(after(forwards.scanned_to))
            .filter(filter)
            .limit(1),
    )
    .await;
    assert_eq!(next.events, matches[3..4], "the fourth match");
}

/// A filtered backwards read from a position returns the matches before it, newest first.
async fn filtered_backwards_read_from_a_position_returns_earlier_matches_newest_first<
    S: EventStore,
>(
    store: Arc<S>,
) {
    let log = shop(&store).await;
    let user: Vec<&RecordedEvent> = log.iter().filter(|event| !event.is_system()).collect();
    let bound = user[user.len() - 2].position;
    let filter = EventFilter::event_type_prefix("Order");
    let expected: Vec<RecordedEvent> = log
        .iter()
        .rev()
        .filter(|event| {
            event.position < bound && !event.is_system() && event.event_type.starts_with("Order")
        })
        .cloned()
        .collect();
    assert!(
        expected.len() >= 2,
        "matches before the bound: {expected:?}"
    );
    let slice = read_all(
        &store,
        ReadAllOptions::backwards()
            .from_position(bound)
            .filter(filter),
    )
    .await;
    assert_eq!(slice.events, expected);
    assert!(slice.end_of_log);
}

/// Thirty events where only a few are `Rare`, with metadata events mixed in, so a filter on
/// `Rare` is sparse. Returns the whole log (system events included: they are examined too).
async fn sparse_log<S: EventStore>(store: &Arc<S>) -> Vec<RecordedEvent> {
    let streams = [stream("sparse-a"), stream("sparse-b"), stream("sparse-c")];
    for n in 0..30u64 {
        let event_type = if n % 10 == 3 { "Rare" } else { "Common" };
        append(
            store,
            &streams[(n % 3) as usize],
            vec![event(event_type, n)],
        )
        .await;
        if n == 11 || n == 12 {
            store
                .set_stream_metadata(
                    &streams[(n % 3) as usize],
                    ExpectedRevision::Any,
                    &StreamMetadata::default(),
                )
                .await
                .expect("set metadata");
        }
    }
    let log = read_all(store, ReadAllOptions::forwards().include_system()).await;
    assert_eq!(
        log.events.len(),
        32,
        "thirty events and two metadata events"
    );
    log.events
}

fn rare() -> EventFilter {
    EventFilter::event_type_prefix("Rare")
}

fn is_rare(event: &RecordedEvent) -> bool {
    event.event_type == "Rare"
}

/// With `scan_limit` N a read examines at most N events: `scanned_to` moves forward (or back)
/// by at most N events but does move, the events returned are exactly the matches up to it,
/// and `end_of_log` stays false.
async fn scan_limit_bounds_the_events_one_read_examines<S: EventStore>(store: Arc<S>) {
    let log = sparse_log(&store).await;
    let last = log.len() - 1;

    // Forwards from the start and from the middle.
    for start in [0usize, 10, 20] {
        let from = log[start].position;
        let slice = read_all(
            &store,
            ReadAllOptions::forwards()
                .from_position(from)
                .filter(rare())
                .scan_limit(5),
        )
        .await;
        assert!(
            !slice.end_of_log,
            "from event {start}: the scan limit stopped it"
        );
        assert!(
            slice.scanned_to >= from && slice.scanned_to <= log[start + 4].position,
            "from event {start}: scanned_to {} is within the five events from {from}",
            slice.scanned_to
        );
        let expected: Vec<RecordedEvent> = log
            .iter()
            .filter(|event| event.position >= from && event.position <= slice.scanned_to)
            .filter(|event| is_rare(event))
            .cloned()
            .collect();
        assert_eq!(
            slice.events, expected,
            "from event {start}: the matches examined"
        );
    }

    // Backwards from the end.
    let slice = read_all(
        &store,
        ReadAllOptions::backwards().filter(rare()).scan_limit(5),
    )
    .await;
    assert!(!slice.end_of_log, "backwards: the scan limit stopped it");
    assert!(
        slice.scanned_to >= log[last - 4].position && slice.scanned_to <= log[last].position,
        "backwards: scanned_to {} is within the five newest events",
        slice.scanned_to
    );
    let expected: Vec<RecordedEvent> = log
        .iter()
        .rev()
        .filter(|event| event.position >= slice.scanned_to && is_rare(event))
        .cloned()
        .collect();
    assert_eq!(slice.events, expected, "backwards: the matches examined");

    // A scan limit past the end: the end of the log is reached and reported.
    let whole = read_all(
        &store,
        ReadAllOptions::forwards().filter(rare()).scan_limit(1000),
    )
    .await;
    assert!(whole.end_of_log);
    assert_eq!(whole.scanned_to, log[last].position);
    let all_rare: Vec<RecordedEvent> = log.iter().filter(|event| is_rare(event)).cloned().collect();
    assert_eq!(whole.events, all_rare);
}

/// Reads `$all` page by page with `limit` and `scan_limit`, continuing from `scanned_to` each
/// time, checking each page's bounds, and returns everything the pages returned.
async fn page_through<S: EventStore>(
    store: &Arc<S>,
    log: &[RecordedEvent],
    direction: Direction,
    limit: u64,
    scan_limit: Option<u64>,
) -> Vec<RecordedEvent> {
    let head = head(store).await;
    let first = log[0].position;
    let context = format!("{direction:?}, limit {limit}, scan limit {scan_limit:?}");
    let mut collected = Vec::new();
    // Forwards: the inclusive lower bound. Backwards: the exclusive upper bound.
    let mut bound = match direction {
        Direction::Forwards => Position(0),
        Direction::Backwards => after(head),
    };
    for page in 0.. {
        assert!(page <= 2 * log.len(), "{context}: paging does not end");
        let mut options = match direction {
            Direction::Forwards => ReadAllOptions::forwards(),
            Direction::Backwards => ReadAllOptions::backwards(),
        };
        if page > 0 || direction == Direction::Forwards {
            options.from = AllStart::Position(bound);
        }
        options = options.filter(rare()).limit(limit);
        options.scan_limit = scan_limit;
        let slice = read_all(store, options).await;
        assert!(
            slice.events.len() as u64 <= limit,
            "{context}: page {page} exceeds the limit"
        );
        // Which events this page could examine, in its direction.
        let reachable: Vec<&RecordedEvent> = match direction {
            Direction::Forwards => log.iter().filter(|e| e.position >= bound).collect(),
            Direction::Backwards => log.iter().rev().filter(|e| e.position < bound).collect(),
        };
        match direction {
            Direction::Forwards => {
                assert!(
                    slice
                        .events
                        .iter()
                        .all(|e| e.position >= bound && e.position <= slice.scanned_to),
                    "{context}: page {page} returned events outside [{bound}, {}]",
                    slice.scanned_to
                );
                assert!(
                    !slice.end_of_log || slice.scanned_to >= head,
                    "{context}: page {page} claims the end at {} below the head {head}",
                    slice.scanned_to
                );
                if !slice.end_of_log {
                    assert!(
                        slice.scanned_to >= bound,
                        "{context}: page {page} made no progress"
                    );
                }
                if let (Some(scan_limit), false) = (scan_limit, reachable.is_empty()) {
                    let index = (scan_limit as usize).min(reachable.len()) - 1;
                    assert!(
                        slice.scanned_to <= reachable[index].position,
                        "{context}: page {page} examined more than {scan_limit} events"
                    );
                }
            }
            Direction::Backwards => {
                assert!(
                    slice
                        .events
                        .iter()
                        .all(|e| e.position < bound && e.position >= slice.scanned_to),
                    "{context}: page {page} returned events outside [{}, {bound})",
                    slice.scanned_to
                );
                assert!(
                    !slice.end_of_log || slice.scanned_to <= first,
                    "{context}: page {page} claims the start at {} above the first event {first}",
                    slice.scanned_to
                );
                if !slice.end_of_log {
                    assert!(
                        slice.scanned_to < bound,
                        "{context}: page {page} made no progress"
                    );
                }
                if let (Some(scan_limit), false) = (scan_limit, reachable.is_empty()) {
                    let index = (scan_limit as usize).min(reachable.len()) - 1;
                    assert!(
                        slice.scanned_to >= reachable[index].position,
                        "{context}: page {page} examined more than {scan_limit} events"
                    );
                }
            }
        }
        collected.extend(slice.events);
        if slice.end_of_log {
            break;
        }
        bound = match direction {
            Direction::Forwards => after(slice.scanned_to),
            Direction::Backwards => slice.scanned_to,
        };
    }
    collected
}

/// Paging forwards through a sparse filter with small limits and scan limits, continuing from
/// `scanned_to + 1`, visits every match exactly once, in order: the same as one full read.
async fn paging_forwards_with_scan_limits_visits_every_match_once<S: EventStore>(store: Arc<S>) {
    let log = sparse_log(&store).await;
    let full = read_all(&store, ReadAllOptions::forwards().filter(rare())).await;
    assert_eq!(full.events.len(), 3, "three rare events");
    for (limit, scan_limit) in [
        (1, Some(1)),
        (1, Some(4)),
        (2, Some(7)),
        (u64::MAX, Some(3)),
        (1, None),
    ] {
        let paged = page_through(&store, &log, Direction::Forwards, limit, scan_limit).await;
        assert_eq!(
            paged, full.events,
            "limit {limit}, scan limit {scan_limit:?}"
        );
    }
}

/// Paging backwards the same way, continuing from `scanned_to` (an exclusive bound), visits
/// every match exactly once, newest first.
async fn paging_backwards_with_scan_limits_visits_every_match_once<S: EventStore>(store: Arc<S>) {
    let log = sparse_log(&store).await;
    let full = read_all(&store, ReadAllOptions::backwards().filter(rare())).await;
    assert_eq!(full.events.len(), 3, "three rare events");
    for (limit, scan_limit) in [
        (1, Some(1)),
        (1, Some(4)),
        (2, Some(7)),
        (u64::MAX, Some(3)),
        (1, None),
    ] {
        let paged = page_through(&store, &log, Direction::Backwards, limit, scan_limit).await;
        assert_eq!(
            paged, full.events,
            "limit {limit}, scan limit {scan_limit:?}"
        );
    }
}

/// Events of soft-deleted, tombstoned and truncated (`$tb`, `$maxCount`) streams stay visible
/// in `$all` (until physical cleanup, a later release), though stream reads hide them.
async fn deleted_and_truncated_streams_stay_visible_in_all<S: EventStore>(store: Arc<S>) {
    let soft = stream("visible-soft");
    let tombstoned = stream("visible-tombstoned");
    let capped = stream("visible-capped");
    let truncated = stream("visible-truncated");
    let mut written = Vec::new();
    for (stream, count) in [(&soft, 2), (&tombstoned, 2), (&capped, 3), (&truncated, 3)] {
        let batch = events("Happened", written.len() as u64, count);
        written.extend(batch.iter().map(|event| event.id));
        append(&store, stream, batch).await;
    }
    store
        .delete_stream(&soft, ExpectedRevision::Any)
        .await
        .expect("soft delete");
    store
        .tombstone_stream(&tombstoned, ExpectedRevision::Any)
        .await
        .expect("tombstone");
    let set = |max_count, truncate_before| StreamMetadata {
        max_count,
        truncate_before,
        ..StreamMetadata::default()
    };
    store
        .set_stream_metadata(&capped, ExpectedRevision::NoStream, &set(Some(1), None))
        .await
        .expect("set $maxCount");
    store
        .set_stream_metadata(&truncated, ExpectedRevision::NoStream, &set(None, Some(2)))
        .await
        .expect("set $tb");

    // The stream reads do hide them.
    assert_error_kind(
        store
            .read_stream(&soft, ReadStreamOptions::forwards())
            .await,
        "stream_not_found",
    );
    assert_error_kind(
        store
            .read_stream(&tombstoned, ReadStreamOptions::forwards())
            .await,
        "stream_deleted",
    );
    for stream in [&capped, &truncated] {
        let visible = store
            .read_stream(stream, ReadStreamOptions::forwards())
            .await
            .expect("read");
        assert_eq!(visible.len(), 1, "{stream} shows one event");
    }

    let slice = read_all(&store, ReadAllOptions::forwards()).await;
    let ids: Vec<_> = slice.events.iter().map(|event| event.id).collect();
    assert_eq!(ids, written, "every user event stays in $all");
}

/// The positions `$all` reports are the ones appends returned (the last event of each append)
/// and the ones stream reads report; `head()` is the newest event's position, system events
/// included.
async fn positions_in_all_are_the_positions_appends_returned<S: EventStore>(store: Arc<S>) {
    let streams = [stream("positions-a"), stream("positions-b")];
    let mut appends = Vec::new();
    for (n, count) in [1u64, 3, 2, 4, 1].into_iter().enumerate() {
        let stream = &streams[n % 2];
        let batch = events("Happened", n as u64 * 10, count);
        let ids: Vec<_> = batch.iter().map(|event| event.id).collect();
        let result = append(&store, stream, batch).await;
        assert_eq!(head(&store).await, result.position, "head after append {n}");
        appends.push((stream.clone(), ids, result));
    }

    let all = read_all(&store, ReadAllOptions::forwards()).await.events;
    assert_eq!(all.len(), 11);
    assert_strictly_increasing(&all);
    let mut index = 0;
    for (stream, ids, result) in &appends {
        let batch = &all[index..index + ids.len()];
        index += ids.len();
        let batch_ids: Vec<_> = batch.iter().map(|event| event.id).collect();
        assert_eq!(&batch_ids, ids, "an append's events are contiguous in $all");
        let last = batch.last().expect("appends are not empty");
        assert_eq!(
            last.position, result.position,
            "the append's returned position"
        );
        assert_eq!(
            last.revision, result.revision,
            "the append's returned revision"
        );
        assert!(batch.iter().all(|event| &event.stream == stream));
    }
    for stream in &streams {
        let from_stream = store
            .read_stream(stream, ReadStreamOptions::forwards())
            .await
            .expect("read stream");
        let from_all: Vec<RecordedEvent> = all
            .iter()
            .filter(|event| &event.stream == stream)
            .cloned()
            .collect();
        assert_eq!(
            from_stream, from_all,
            "{stream} reads the same events as $all"
        );
    }
    assert_eq!(head(&store).await, all[all.len() - 1].position);

    // A system event moves the head too.
    let result = store
        .set_stream_metadata(
            &streams[0],
            ExpectedRevision::NoStream,
            &StreamMetadata::default(),
        )
        .await
        .expect("set metadata");
    let with_system = read_all(&store, ReadAllOptions::forwards().include_system()).await;
    let newest = with_system.events.last().expect("not empty");
    assert_eq!(newest.position, result.position);
    assert_eq!(newest.event_type, "$metadata");
    assert_eq!(head(&store).await, result.position);
    assert_eq!(positions(&with_system.events[..11]), positions(&all));
}
