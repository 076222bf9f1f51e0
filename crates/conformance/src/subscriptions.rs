//! Conformance cases: catch-up subscriptions to one stream and to `$all`.
//!
//! Subscriptions are cursors built on the store's reads and its head watch, so these cases
//! check what a subscriber relies on: history first and in order, then `CaughtUp`, then live
//! events; starts that are exclusive; filters and checkpoints; the end of a stream's
//! subscription when it is tombstoned; and, above all, that no event is lost or repeated where
//! history turns into live, even while writers race.
//!
//! Every wait on a subscription is bounded by `WAIT`, so a broken backend fails a case
//! instead of hanging the suite.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use factum_core::{
    AppendResult, Error, EventFilter, EventId, EventStore, ExpectedRevision, Position,
    ReadAllOptions, ReadStreamOptions, RecordedEvent, StreamName, SubscribeToAllOptions,
    SubscribeToStreamOptions, Subscription, SubscriptionMessage, SubscriptionStart,
};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::timeout;

use crate::support::{self, event, events};
use crate::{Case, case};

/// Every case of this area.
pub fn cases<S: EventStore>() -> Vec<Case<S>> {
    vec![
        case!(stream_subscription_delivers_history_then_caught_up_then_live),
        case!(stream_subscription_after_a_revision_starts_at_the_next_one),
        case!(stream_subscription_from_end_delivers_only_new_events),
        case!(stream_subscription_waits_for_a_stream_that_does_not_exist_yet),
        case!(stream_subscription_delivers_only_its_stream),
        case!(tombstone_ends_a_stream_subscription_with_stream_deleted),
        case!(stream_subscription_continues_after_soft_delete_and_recreation),
        case!(all_subscription_starts_at_start_after_a_position_or_end),
        case!(all_subscription_leaves_out_system_events_unless_asked),
        case!(all_subscription_filters_by_prefix_and_regex),
        case!(filtered_subscription_checkpoints_while_scanning_sparse_matches),
        case!(no_gap_no_duplicate_with_subscriptions_made_before_concurrent_writes),
        case!(no_gap_no_duplicate_with_subscriptions_made_during_concurrent_writes),
        case!(slow_subscriber_receives_every_event_in_order),
        case!(caught_up_subscriber_falls_behind_and_catches_up_again),
        case!(zero_checkpoint_interval_is_an_invalid_request),
    ]
}

/// How long a case waits for a subscription's next message before calling the backend broken.
const WAIT: Duration = Duration::from_secs(10);

/// The next message, failing the case if the subscription ends, fails, or stays silent.
async fn next_message(subscription: &mut Subscription) -> SubscriptionMessage {
    match timeout(WAIT, subscription.next()).await {
        Err(_) => panic!("the subscription delivered nothing within {WAIT:?}"),
        Ok(None) => panic!("the subscription ended unexpectedly"),
        Ok(Some(Err(error))) => panic!("the subscription failed: {error}"),
        Ok(Some(Ok(message))) => message,
    }
}

/// The next event. Checkpoints are skipped: a `$all` subscription may send one whenever it
/// skips events it does not deliver (system events, say). Anything else fails the case.
async fn expect_event(subscription: &mut Subscription) -> RecordedEvent {
    loop {
        match next_message(subscription).await {
            SubscriptionMessage::Event(event) => return event,
            SubscriptionMessage::Checkpoint(_) => {}
            other => panic!("expected an event, got {other:?}"),
        }
    }
}

/// The next `count` events, with nothing but checkpoints between them.
async fn expect_events(subscription: &mut Subscription, count: usize) -> Vec<RecordedEvent> {
    let mut delivered = Vec::with_capacity(count);
    while delivered.len() < count {
        delivered.push(expect_event(subscription).await);
    }
    delivered
}

/// Expects `CaughtUp` next (checkpoints aside).
async fn expect_caught_up(subscription: &mut Subscription) {
    loop {
        match next_message(subscription).await {
            SubscriptionMessage::CaughtUp => return,
            SubscriptionMessage::Checkpoint(_) => {}
            other => panic!("expected CaughtUp, got {other:?}"),
        }
    }
}

/// Collects up to `count` events, ignoring every other message: for cases about the events
/// alone. Stops early, returning what it has, if the subscription stays silent for [`WAIT`],
/// so the case can say which events went missing.
async fn collect_events(subscription: &mut Subscription, count: usize) -> Vec<RecordedEvent> {
    let mut delivered = Vec::with_capacity(count);
    while delivered.len() < count {
        match timeout(WAIT, subscription.next()).await {
            Err(_) => break,
            Ok(None) => panic!("the subscription ended unexpectedly"),
            Ok(Some(Err(error))) => panic!("the subscription failed: {error}"),
            Ok(Some(Ok(SubscriptionMessage::Event(event)))) => delivered.push(event),
            Ok(Some(Ok(_))) => {}
        }
    }
    delivered
}

fn ids(events: &[RecordedEvent]) -> Vec<EventId> {
    events.iter().map(|event| event.id).collect()
}

fn proposed_ids(events: &[factum_core::ProposedEvent]) -> Vec<EventId> {
    events.iter().map(|event| event.id).collect()
}

async fn subscribe_to_stream<S: EventStore>(
    store: &Arc<S>,
    stream: &StreamName,
    from: SubscriptionStart<u64>,
) -> Subscription {
    Subscription::to_stream(
        store.clone(),
        stream.clone(),
        SubscribeToStreamOptions { from },
    )
    .await
    .expect("subscribing to a stream")
}

async fn subscribe_to_all<S: EventStore>(
    store: &Arc<S>,
    options: SubscribeToAllOptions,
) -> Subscription {
    Subscription::to_all(store.clone(), options)
        .await
        .expect("subscribing to $all")
}

fn all_from(from: SubscriptionStart<Position>) -> SubscribeToAllOptions {
    SubscribeToAllOptions {
        from,
        ..SubscribeToAllOptions::default()
    }
}

async fn append<S: EventStore>(
    store: &S,
    stream: &StreamName,
    events: Vec<factum_core::ProposedEvent>,
) -> AppendResult {
    store
        .append(stream, ExpectedRevision::Any, events)
        .await
        .expect("appending")
}

async fn read_all_events<S: EventStore>(store: &S, options: ReadAllOptions) -> Vec<RecordedEvent> {
    store.read_all(options).await.expect("reading $all").events
}

/// A stream subscription from the start delivers the history in order, then `CaughtUp`, then
/// events appended afterwards, as they come.
async fn stream_subscription_delivers_history_then_caught_up_then_live<S: EventStore>(
    store: Arc<S>,
) {
    let stream = support::stream("sub-history");
    let history = events("Happened", 0, 3);
    let history_ids = proposed_ids(&history);
    append(&*store, &stream, history).await;

    let mut subscription = subscribe_to_stream(&store, &stream, SubscriptionStart::Start).await;
    let delivered = expect_events(&mut subscription, 3).await;
    assert_eq!(ids(&delivered), history_ids, "history, in order");
    assert_eq!(support::revisions(&delivered), vec![0, 1, 2]);
    expect_caught_up(&mut subscription).await;

    // The append runs in another task, so the subscriber is (most likely) already waiting on
    // the head when it lands: that is the live path.
    let live = events("Happened", 3, 2);
    let live_ids = proposed_ids(&live);
    let writer = {
        let store = store.clone();
        let stream = stream.clone();
        tokio::spawn(async move { append(&*store, &stream, live).await })
    };
    let delivered = expect_events(&mut subscription, 2).await;
    writer.await.expect("the writer task");
    assert_eq!(ids(&delivered), live_ids, "live events, in order");
    assert_eq!(support::revisions(&delivered), vec![3, 4]);
}

/// `After(r)` is exclusive: the subscription starts at revision `r + 1`, and `After` the last
/// revision delivers only what comes next.
async fn stream_subscription_after_a_revision_starts_at_the_next_one<S: EventStore>(store: Arc<S>) {
    let stream = support::stream("sub-after");
    let history = events("Happened", 0, 5);
    let history_ids = proposed_ids(&history);
    append(&*store, &stream, history).await;

    let mut subscription = subscribe_to_stream(&store, &stream, SubscriptionStart::After(1)).await;
    let delivered = expect_events(&mut subscription, 3).await;
    assert_eq!(support::revisions(&delivered), vec![2, 3, 4]);
    assert_eq!(ids(&delivered), history_ids[2..].to_vec());
    expect_caught_up(&mut subscription).await;

    let mut at_last = subscribe_to_stream(&store, &stream, SubscriptionStart::After(4)).await;
    expect_caught_up(&mut at_last).await;
    let next = event("Happened", 5);
    let next_id = next.id;
    append(&*store, &stream, vec![next]).await;
    let delivered = expect_event(&mut at_last).await;
    assert_eq!(delivered.revision, 5);
    assert_eq!(delivered.id, next_id);
}

/// `End` delivers only events appended after the subscription was made.
async fn stream_subscription_from_end_delivers_only_new_events<S: EventStore>(store: Arc<S>) {
    let stream = support::stream("sub-end");
    append(&*store, &stream, events("Old", 0, 4)).await;

    let mut subscription = subscribe_to_stream(&store, &stream, SubscriptionStart::End).await;
    let new = events("New", 4, 2);
    let new_ids = proposed_ids(&new);
    append(&*store, &stream, new).await;
    // The first event delivered must be the first new one: no old event comes before it.
    let delivered = expect_events(&mut subscription, 2).await;
    assert_eq!(ids(&delivered), new_ids);
    assert_eq!(support::revisions(&delivered), vec![4, 5]);
}

/// A subscription to a stream that does not exist yet says it is caught up, waits, and
/// delivers the stream's events once they are written.
async fn stream_subscription_waits_for_a_stream_that_does_not_exist_yet<S: EventStore>(
    store: Arc<S>,
) {
    let stream = support::stream("sub-future");
    let mut subscription = subscribe_to_stream(&store, &stream, SubscriptionStart::Start).await;
    expect_caught_up(&mut subscription).await;

    let first = events("Created", 0, 2);
    let first_ids = proposed_ids(&first);
    let writer = {
        let store = store.clone();
        let stream = stream.clone();
        tokio::spawn(async move {
            // An unrelated append first: it moves the head without giving the subscriber
            // anything to deliver.
            append(
                &*store,
                &support::stream("sub-other"),
                events("Other", 0, 1),
            )
            .await;
            store
                .append(&stream, ExpectedRevision::NoStream, first)
                .await
                .expect("creating the stream")
        })
    };
    let delivered = expect_events(&mut subscription, 2).await;
    writer.await.expect("the writer task");
    assert_eq!(ids(&delivered), first_ids);
    assert_eq!(support::revisions(&delivered), vec![0, 1]);
    assert!(delivered.iter().all(|event| event.stream == stream));
}

/// A stream subscription delivers that stream's events only, however the appends to other
/// streams interleave with them.
async fn stream_subscription_delivers_only_its_stream<S: EventStore>(store: Arc<S>) {
    let stream = support::stream("sub-mine");
    let other = support::stream("sub-mine");
    let mut expected = Vec::new();
    for n in 0..5 {
        append(&*store, &other, events("Theirs", n * 2, 2)).await;
        let mine = event("Mine", n);
        expected.push(mine.id);
        append(&*store, &stream, vec![mine]).await;
    }
    let mut subscription = subscribe_to_stream(&store, &stream, SubscriptionStart::Start).await;
    let history = expect_events(&mut subscription, 5).await;
    expect_caught_up(&mut subscription).await;

    // Live: more of the other stream, then a marker in ours, which must come next.
    append(&*store, &other, events("Theirs", 10, 3)).await;
    let marker = event("Mine", 5);
    expected.push(marker.id);
    append(&*store, &stream, vec![marker]).await;
    let live = expect_event(&mut subscription).await;

    let delivered: Vec<RecordedEvent> = history.into_iter().chain([live]).collect();
    assert_eq!(ids(&delivered), expected);
    assert_eq!(support::revisions(&delivered), vec![0, 1, 2, 3, 4, 5]);
    assert!(delivered.iter().all(|event| event.stream == stream));
}

/// Expects the subscription to end with `StreamDeleted` for `stream`, and then to say `None`.
async fn expect_stream_deleted(subscription: &mut Subscription, stream: &StreamName) {
    match timeout(WAIT, subscription.next()).await {
        Err(_) => panic!("the subscription did not end within {WAIT:?}"),
        Ok(Some(Err(Error::StreamDeleted { stream: deleted }))) => {
            assert_eq!(&deleted, stream, "the deleted stream named in the error");
        }
        Ok(other) => panic!("expected the subscription to end with StreamDeleted, got {other:?}"),
    }
    let after = timeout(WAIT, subscription.next())
        .await
        .expect("an ended subscription answers at once");
    assert!(
        after.is_none(),
        "an ended subscription delivers nothing more, got {after:?}"
    );
}

/// Tombstoning a stream ends its subscriptions with `StreamDeleted` (then `next()` is `None`),
/// and a subscription made after the tombstone ends the same way.
async fn tombstone_ends_a_stream_subscription_with_stream_deleted<S: EventStore>(store: Arc<S>) {
    let stream = support::stream("sub-tombstone");
    append(&*store, &stream, events("Happened", 0, 3)).await;
    let mut subscription = subscribe_to_stream(&store, &stream, SubscriptionStart::Start).await;
    expect_events(&mut subscription, 3).await;
    expect_caught_up(&mut subscription).await;

    store
        .tombstone_stream(&stream, ExpectedRevision::Exact(2))
        .await
        .expect("tombstoning");
    expect_stream_deleted(&mut subscription, &stream).await;

    let mut late = subscribe_to_stream(&store, &stream, SubscriptionStart::Start).await;
    expect_stream_deleted(&mut late, &stream).await;
}

/// A soft-deleted stream that is written again continues its revisions, and its subscription
/// continues with them; a new subscription from the start sees only the recreated events.
async fn stream_subscription_continues_after_soft_delete_and_recreation<S: EventStore>(
    store: Arc<S>,
) {
    let stream = support::stream("sub-recreated");
    append(&*store, &stream, events("Before", 0, 3)).await;
    let mut subscription = subscribe_to_stream(&store, &stream, SubscriptionStart::Start).await;
    expect_events(&mut subscription, 3).await;
    expect_caught_up(&mut subscription).await;

    store
        .delete_stream(&stream, ExpectedRevision::Exact(2))
        .await
        .expect("soft-deleting");
    let recreated = events("After", 3, 2);
    let recreated_ids = proposed_ids(&recreated);
    store
        .append(&stream, ExpectedRevision::NoStream, recreated)
        .await
        .expect("recreating the stream");

    let delivered = expect_events(&mut subscription, 2).await;
    assert_eq!(ids(&delivered), recreated_ids);
    assert_eq!(support::revisions(&delivered), vec![3, 4]);

    let mut fresh = subscribe_to_stream(&store, &stream, SubscriptionStart::Start).await;
    let delivered = expect_events(&mut fresh, 2).await;
    assert_eq!(ids(&delivered), recreated_ids, "only the visible revisions");
    expect_caught_up(&mut fresh).await;
}

/// A `$all` subscription from `Start` delivers everything, from `After(p)` what comes after
/// position `p`, and from `End` only what is appended later.
async fn all_subscription_starts_at_start_after_a_position_or_end<S: EventStore>(store: Arc<S>) {
    let first = support::stream("sub-all");
    let second = support::stream("sub-all");
    append(&*store, &first, events("Happened", 0, 3)).await;
    append(&*store, &second, events("Happened", 3, 2)).await;
    let history = read_all_events(&*store, ReadAllOptions::forwards()).await;
    assert_eq!(history.len(), 5);

    let mut from_start = subscribe_to_all(&store, all_from(SubscriptionStart::Start)).await;
    let delivered = expect_events(&mut from_start, 5).await;
    assert_eq!(delivered, history, "everything, in order");
    expect_caught_up(&mut from_start).await;

    let after = history[1].position;
    let mut from_after = subscribe_to_all(&store, all_from(SubscriptionStart::After(after))).await;
    let delivered = expect_events(&mut from_after, 3).await;
    assert_eq!(delivered, history[2..].to_vec(), "what comes after {after}");
    expect_caught_up(&mut from_after).await;

    let mut from_end = subscribe_to_all(&store, all_from(SubscriptionStart::End)).await;
    let new = events("New", 5, 2);
    let new_ids = proposed_ids(&new);
    append(&*store, &first, new).await;
    for subscription in [&mut from_start, &mut from_after, &mut from_end] {
        let delivered = expect_events(subscription, 2).await;
        assert_eq!(
            ids(&delivered),
            new_ids,
            "the new events, and nothing before them"
        );
    }
}

/// `$all` subscriptions leave out system events (metadata, tombstone markers) unless
/// `include_system` is set, in which case they deliver exactly what `$all` holds.
async fn all_subscription_leaves_out_system_events_unless_asked<S: EventStore>(store: Arc<S>) {
    let kept = support::stream("sub-system");
    let retired = support::stream("sub-system");
    append(&*store, &kept, events("Happened", 0, 2)).await;
    store
        .set_stream_metadata(
            &kept,
            ExpectedRevision::NoStream,
            &factum_core::StreamMetadata {
                max_count: Some(100),
                ..factum_core::StreamMetadata::default()
            },
        )
        .await
        .expect("setting metadata");
    append(&*store, &retired, events("Happened", 2, 1)).await;
    store
        .tombstone_stream(&retired, ExpectedRevision::Any)
        .await
        .expect("tombstoning");
    let marker = event("Marker", 3);
    let marker_id = marker.id;
    append(&*store, &kept, vec![marker]).await;

    let user_events = read_all_events(&*store, ReadAllOptions::forwards()).await;
    let every_event = read_all_events(&*store, ReadAllOptions::forwards().include_system()).await;
    assert_eq!(user_events.len(), 4, "two, one, and the marker");
    assert_eq!(every_event.len(), 6, "plus the metadata and the tombstone");

    let mut without = subscribe_to_all(&store, all_from(SubscriptionStart::Start)).await;
    let delivered = expect_events(&mut without, 4).await;
    assert!(delivered.iter().all(|event| !event.is_system()));
    assert_eq!(delivered, user_events);
    assert_eq!(delivered[3].id, marker_id);
    expect_caught_up(&mut without).await;

    let options = SubscribeToAllOptions {
        include_system: true,
        ..SubscribeToAllOptions::default()
    };
    let mut with = subscribe_to_all(&store, options).await;
    let delivered = expect_events(&mut with, 6).await;
    assert_eq!(delivered, every_event);
    assert_eq!(
        delivered.iter().filter(|event| event.is_system()).count(),
        2
    );
    expect_caught_up(&mut with).await;
}

/// Filtered `$all` subscriptions deliver exactly the matching events, for stream and event
/// type prefixes and regexes (look-ahead included), in history and live.
async fn all_subscription_filters_by_prefix_and_regex<S: EventStore>(store: Arc<S>) {
    let order = support::stream("orders");
    let user = support::stream("users");
    let mut orders = Vec::new();
    let mut users = Vec::new();
    for n in 0..4 {
        let placed = event("OrderPlaced", n);
        orders.push(placed.id);
        append(&*store, &order, vec![placed]).await;
        let joined = event("UserJoined", n);
        users.push(joined.id);
        append(&*store, &user, vec![joined]).await;
    }

    let filters = [
        (EventFilter::stream_prefix("orders-"), true),
        (EventFilter::event_type_prefix("Order"), true),
        (
            EventFilter::stream_regex(r"^users-\d+$").expect("a valid regex"),
            false,
        ),
        (
            EventFilter::event_type_regex(r"^(?!Order).*").expect("a valid regex"),
            false,
        ),
    ];
    for (filter, wants_orders) in filters {
        let options = SubscribeToAllOptions {
            filter: Some(filter.clone()),
            ..SubscribeToAllOptions::default()
        };
        let mut subscription = subscribe_to_all(&store, options).await;
        let expected = if wants_orders { &orders } else { &users };
        let delivered = expect_events(&mut subscription, expected.len()).await;
        assert_eq!(&ids(&delivered), expected, "history through {filter:?}");
        expect_caught_up(&mut subscription).await;

        // Live: a non-matching event, then a matching one, which must come next.
        let placed = event("OrderPlaced", 100);
        let joined = event("UserJoined", 100);
        let (placed_id, joined_id) = (placed.id, joined.id);
        let matching_id = if wants_orders {
            append(&*store, &user, vec![joined]).await;
            append(&*store, &order, vec![placed]).await;
            placed_id
        } else {
            append(&*store, &order, vec![placed]).await;
            append(&*store, &user, vec![joined]).await;
            joined_id
        };
        orders.push(placed_id);
        users.push(joined_id);
        let live = expect_event(&mut subscription).await;
        assert_eq!(live.id, matching_id, "live through {filter:?}");
    }
}

/// How many events `$all` holds (system events included) at positions in `(after, up_to]`:
/// an upper bound on what a subscription examined between two messages, whether or not
/// positions are dense.
async fn events_in_range<S: EventStore>(store: &S, after: Position, up_to: Position) -> usize {
    let options = ReadAllOptions::forwards()
        .from_position(Position(after.0 + 1))
        .include_system();
    read_all_events(store, options)
        .await
        .iter()
        .take_while(|event| event.position <= up_to)
        .count()
}

/// A filtered subscription over sparse matches reports progress: with a checkpoint interval of
/// 10, no more than 10 events lie between consecutive messages, checkpoints strictly increase
/// and never pass the head, and resuming after any checkpoint still finds the later match.
async fn filtered_subscription_checkpoints_while_scanning_sparse_matches<S: EventStore>(
    store: Arc<S>,
) {
    const INTERVAL: u64 = 10;
    let noise = support::stream("sub-noise");
    let signal_stream = support::stream("sub-signal");
    for batch in 0..10 {
        append(&*store, &noise, events("Noise", batch * 10, 10)).await;
    }
    let signal = event("Signal", 100);
    let signal_id = signal.id;
    append(&*store, &signal_stream, vec![signal]).await;
    let head = store.head().await.expect("the head");

    let options = |from| SubscribeToAllOptions {
        from,
        filter: Some(EventFilter::event_type_prefix("Signal")),
        include_system: false,
        checkpoint_interval: INTERVAL,
    };
    let mut subscription = subscribe_to_all(&store, options(SubscriptionStart::Start)).await;
    let mut checkpoints = Vec::new();
    let mut delivered_positions = Vec::new();
    let found = loop {
        match next_message(&mut subscription).await {
            SubscriptionMessage::Checkpoint(position) => {
                assert!(position <= head, "checkpoint {position} beyond head {head}");
                checkpoints.push(position);
                delivered_positions.push(position);
            }
            SubscriptionMessage::Event(event) => {
                delivered_positions.push(event.position);
                break event;
            }
            other => panic!("expected checkpoints and then the match, got {other:?}"),
        }
    };
    assert_eq!(found.id, signal_id);
    expect_caught_up(&mut subscription).await;

    assert!(
        !checkpoints.is_empty(),
        "no checkpoint over 100 skipped events"
    );
    let mut previous = Position::START;
    for position in delivered_positions {
        assert!(
            position > previous,
            "messages at {previous} then {position}: positions must strictly increase"
        );
        let between = events_in_range(&*store, previous, position).await;
        assert!(
            between <= INTERVAL as usize,
            "{between} events examined between messages at {previous} and {position}"
        );
        previous = position;
    }

    for checkpoint in checkpoints {
        let mut resumed =
            subscribe_to_all(&store, options(SubscriptionStart::After(checkpoint))).await;
        let event = expect_event(&mut resumed).await;
        assert_eq!(
            event.id, signal_id,
            "resuming after checkpoint {checkpoint}"
        );
    }

    // Live: 30 more skipped events move the subscription on by checkpoints alone.
    append(&*store, &noise, events("Noise", 101, 30)).await;
    let skipped = read_all_events(
        &*store,
        ReadAllOptions::forwards().from_position(Position(found.position.0 + 1)),
    )
    .await;
    assert_eq!(skipped.len(), 30);
    let must_reach = skipped[29 - INTERVAL as usize].position;
    loop {
        match next_message(&mut subscription).await {
            SubscriptionMessage::Checkpoint(position) if position >= must_reach => break,
            SubscriptionMessage::Checkpoint(_) => {}
            other => panic!("expected only checkpoints over skipped events, got {other:?}"),
        }
    }
}

/// An acknowledged append, as a writer saw it.
struct Ack {
    stream: StreamName,
    ids: Vec<EventId>,
    result: AppendResult,
}

const WRITERS: u64 = 4;
const APPENDS_PER_WRITER: u64 = 40;
const WRITTEN_STREAMS: u64 = 3;

/// Which stream append `index` of writer `writer` goes to, and how many events it carries.
fn planned_append(writer: u64, index: u64) -> (usize, u64) {
    (
        ((writer + index) % WRITTEN_STREAMS) as usize,
        1 + (index + writer * 2) % 3,
    )
}

/// How many events the writers write, in all and to stream 0.
fn planned_totals() -> (usize, usize) {
    let mut total = 0;
    let mut to_first = 0;
    for writer in 0..WRITERS {
        for index in 0..APPENDS_PER_WRITER {
            let (stream, count) = planned_append(writer, index);
            total += count as usize;
            if stream == 0 {
                to_first += count as usize;
            }
        }
    }
    (total, to_first)
}

/// Starts the writers; each reports every acknowledged append on `progress`.
fn start_writers<S: EventStore>(
    store: &Arc<S>,
    streams: &[StreamName],
    progress: &Arc<watch::Sender<u64>>,
) -> Vec<JoinHandle<Vec<Ack>>> {
    (0..WRITERS)
        .map(|writer| {
            let store = store.clone();
            let streams = streams.to_vec();
            let progress = progress.clone();
            tokio::spawn(async move {
                let mut acks = Vec::new();
                for index in 0..APPENDS_PER_WRITER {
                    let (stream, count) = planned_append(writer, index);
                    let batch = events("Raced", writer * 1000 + index * 10, count);
                    let ids = proposed_ids(&batch);
                    let stream = streams[stream].clone();
                    let result = append(&*store, &stream, batch).await;
                    acks.push(Ack {
                        stream,
                        ids,
                        result,
                    });
                    progress.send_modify(|appends| *appends += 1);
                    // Let the subscribers and the other writers in between appends.
                    tokio::task::yield_now().await;
                }
                acks
            })
        })
        .collect()
}

async fn join_writers(writers: Vec<JoinHandle<Vec<Ack>>>) -> Vec<Ack> {
    let mut acks = Vec::new();
    for writer in writers {
        let written = timeout(WAIT * 3, writer)
            .await
            .expect("the writers finish")
            .expect("a writer task");
        acks.extend(written);
    }
    acks
}

/// Checks what a `$all` subscription and a subscription to `streams[0]` delivered against the
/// acknowledged appends and the store's reads: every event exactly once, in order.
async fn assert_delivered_exactly_once<S: EventStore>(
    store: &S,
    acks: &[Ack],
    all: &[RecordedEvent],
    first_stream: &StreamName,
    of_first_stream: &[RecordedEvent],
) {
    for pair in all.windows(2) {
        assert!(
            pair[0].position < pair[1].position,
            "$all delivered {} then {}",
            pair[0].position,
            pair[1].position
        );
    }
    let mut seen = HashSet::new();
    for event in all {
        assert!(seen.insert(event.id), "event {} delivered twice", event.id);
    }
    let acknowledged: HashSet<EventId> = acks.iter().flat_map(|ack| ack.ids.clone()).collect();
    let missing: Vec<&EventId> = acknowledged.difference(&seen).collect();
    assert!(
        missing.is_empty(),
        "the $all subscription delivered {} events and missed {} acknowledged ones, such as {:?}",
        all.len(),
        missing.len(),
        missing.iter().take(3).collect::<Vec<_>>()
    );
    assert_eq!(
        seen.len(),
        acknowledged.len(),
        "delivered events nobody wrote"
    );
    let read = read_all_events(store, ReadAllOptions::forwards()).await;
    assert!(
        read == all,
        "the subscription's {} events differ from the {} a read of $all returns",
        all.len(),
        read.len()
    );
    for ack in acks {
        let last = ack.ids.last().expect("appends are not empty");
        let event = all
            .iter()
            .find(|event| event.id == *last)
            .expect("acknowledged events are delivered");
        assert_eq!(event.position, ack.result.position, "acknowledged position");
        assert_eq!(event.revision, ack.result.revision, "acknowledged revision");
        assert_eq!(event.stream, ack.stream, "acknowledged stream");
    }

    let written_to_first = acks
        .iter()
        .filter(|ack| ack.stream == *first_stream)
        .map(|ack| ack.ids.len())
        .sum::<usize>();
    assert_eq!(
        of_first_stream.len(),
        written_to_first,
        "events the stream subscription delivered"
    );
    let expected_revisions: Vec<u64> = (0..of_first_stream.len() as u64).collect();
    assert_eq!(support::revisions(of_first_stream), expected_revisions);
    let stream = store
        .read_stream(first_stream, ReadStreamOptions::forwards())
        .await
        .expect("reading the stream");
    assert!(
        stream == of_first_stream,
        "the stream subscription's events differ from a read of the stream"
    );
}

fn written_streams() -> Vec<StreamName> {
    (0..WRITTEN_STREAMS)
        .map(|_| support::stream("sub-load"))
        .collect()
}

/// Subscriptions made before concurrent writers start deliver every acknowledged event
/// exactly once, in position order: the history/live switch loses and repeats nothing.
async fn no_gap_no_duplicate_with_subscriptions_made_before_concurrent_writes<S: EventStore>(
    store: Arc<S>,
) {
    let streams = written_streams();
    let (total, to_first) = planned_totals();
    let mut all = subscribe_to_all(&store, all_from(SubscriptionStart::Start)).await;
    let mut first = subscribe_to_stream(&store, &streams[0], SubscriptionStart::Start).await;
    let all_reader = tokio::spawn(async move { collect_events(&mut all, total).await });
    let first_reader = tokio::spawn(async move { collect_events(&mut first, to_first).await });

    let (progress, _) = watch::channel(0);
    let writers = start_writers(&store, &streams, &Arc::new(progress));
    let acks = join_writers(writers).await;
    let all = all_reader.await.expect("the $all subscriber");
    let of_first = first_reader.await.expect("the stream subscriber");
    assert_delivered_exactly_once(&*store, &acks, &all, &streams[0], &of_first).await;
}

/// Subscriptions made from the start while writers are busy switch from history to live
/// under load, and still deliver every acknowledged event exactly once, in order.
async fn no_gap_no_duplicate_with_subscriptions_made_during_concurrent_writes<S: EventStore>(
    store: Arc<S>,
) {
    let streams = written_streams();
    let (total, to_first) = planned_totals();
    let (progress, mut appended) = watch::channel(0);
    let writers = start_writers(&store, &streams, &Arc::new(progress));
    let halfway = WRITERS * APPENDS_PER_WRITER / 2;
    timeout(WAIT, appended.wait_for(|appends| *appends >= halfway))
        .await
        .expect("the writers get halfway")
        .expect("the progress channel");

    let mut all = subscribe_to_all(&store, all_from(SubscriptionStart::Start)).await;
    let mut first = subscribe_to_stream(&store, &streams[0], SubscriptionStart::Start).await;
    let all_reader = tokio::spawn(async move { collect_events(&mut all, total).await });
    let first_reader = tokio::spawn(async move { collect_events(&mut first, to_first).await });

    let acks = join_writers(writers).await;
    let all = all_reader.await.expect("the $all subscriber");
    let of_first = first_reader.await.expect("the stream subscriber");
    assert_delivered_exactly_once(&*store, &acks, &all, &streams[0], &of_first).await;
}

/// A subscriber that reads nothing while 5 000 events are appended then receives every one of
/// them, in order (the cursor pages through them), and catches up after the last.
async fn slow_subscriber_receives_every_event_in_order<S: EventStore>(store: Arc<S>) {
    const BATCHES: u64 = 50;
    const BATCH_EVENTS: u64 = 100;
    const TOTAL: usize = (BATCHES * BATCH_EVENTS) as usize;
    let stream = support::stream("sub-slow");
    let mut all = subscribe_to_all(&store, all_from(SubscriptionStart::Start)).await;
    let mut of_stream = subscribe_to_stream(&store, &stream, SubscriptionStart::Start).await;

    let mut written = Vec::with_capacity(TOTAL);
    for batch in 0..BATCHES {
        let batch = events("Piled", batch * BATCH_EVENTS, BATCH_EVENTS);
        written.extend(proposed_ids(&batch));
        append(&*store, &stream, batch).await;
    }

    for subscription in [&mut all, &mut of_stream] {
        let mut delivered = Vec::with_capacity(TOTAL);
        loop {
            match next_message(subscription).await {
                SubscriptionMessage::Event(event) => {
                    assert!(delivered.len() < TOTAL, "more events than were written");
                    delivered.push(event);
                }
                SubscriptionMessage::CaughtUp if delivered.len() == TOTAL => break,
                // Falling behind is allowed; catching up before the end is not, as all the
                // events were there before the first read.
                SubscriptionMessage::FellBehind | SubscriptionMessage::Checkpoint(_) => {}
                SubscriptionMessage::CaughtUp => panic!(
                    "caught up after {} of {TOTAL} events that were all written",
                    delivered.len()
                ),
            }
        }
        assert_eq!(ids(&delivered), written, "every event, in order");
        let expected_revisions: Vec<u64> = (0..TOTAL as u64).collect();
        assert_eq!(support::revisions(&delivered), expected_revisions);
    }
}

/// A caught-up subscriber that 2 000 events overtake says `FellBehind` (once) before it
/// catches up again, and delivers every event in order in between.
async fn caught_up_subscriber_falls_behind_and_catches_up_again<S: EventStore>(store: Arc<S>) {
    const BATCHES: u64 = 20;
    const BATCH_EVENTS: u64 = 100;
    const TOTAL: usize = (BATCHES * BATCH_EVENTS) as usize;
    let stream = support::stream("sub-behind");
    append(&*store, &stream, events("Early", 0, 1)).await;
    let mut all = subscribe_to_all(&store, all_from(SubscriptionStart::Start)).await;
    let mut of_stream = subscribe_to_stream(&store, &stream, SubscriptionStart::Start).await;
    for subscription in [&mut all, &mut of_stream] {
        expect_event(subscription).await;
        expect_caught_up(subscription).await;
    }

    let mut written = Vec::with_capacity(TOTAL);
    for batch in 0..BATCHES {
        let batch = events("Burst", 1 + batch * BATCH_EVENTS, BATCH_EVENTS);
        written.extend(proposed_ids(&batch));
        append(&*store, &stream, batch).await;
    }

    for subscription in [&mut all, &mut of_stream] {
        let mut delivered = Vec::with_capacity(TOTAL);
        let mut fell_behind = 0;
        loop {
            match next_message(subscription).await {
                SubscriptionMessage::Event(event) => {
                    assert!(delivered.len() < TOTAL, "more events than were written");
                    delivered.push(event);
                }
                SubscriptionMessage::FellBehind => fell_behind += 1,
                SubscriptionMessage::CaughtUp => break,
                SubscriptionMessage::Checkpoint(_) => {}
            }
        }
        assert_eq!(
            fell_behind, 1,
            "one FellBehind for one fall, before catching up again"
        );
        assert_eq!(
            delivered.len(),
            TOTAL,
            "caught up only after the last event"
        );
        assert_eq!(ids(&delivered), written, "every event, in order");
        let expected_revisions: Vec<u64> = (1..=TOTAL as u64).collect();
        assert_eq!(support::revisions(&delivered), expected_revisions);
    }
}

/// A checkpoint interval of 0 would never report progress: it is an invalid request.
async fn zero_checkpoint_interval_is_an_invalid_request<S: EventStore>(store: Arc<S>) {
    let options = SubscribeToAllOptions {
        filter: Some(EventFilter::stream_prefix("anything")),
        checkpoint_interval: 0,
        ..SubscribeToAllOptions::default()
    };
    match Subscription::to_all(store.clone(), options).await {
        Err(error) => assert_eq!(error.kind(), "invalid_request", "{error}"),
        Ok(_) => panic!("a checkpoint interval of 0 was accepted"),
    }
}
