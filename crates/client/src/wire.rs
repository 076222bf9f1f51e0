//! Contract types ↔ wire types: ids, stream names, expected revisions, events, filters, and the
//! read requests the store sends. Pure functions; a malformed answer from the server is
//! [`Error::Corrupt`].

use ::uuid::Uuid;
use bytes::Bytes;
use factum_core::{
    AllStart, Direction, Error, EventFilter, EventId, ExpectedRevision, Position, ProposedEvent,
    RecordedEvent, StreamName, StreamStart, Timestamp,
};
use factum_proto::shared::{self, Empty, StreamIdentifier, uuid};
use factum_proto::streams::read_req::options::filter_options::{Expression, Filter, Window};
use factum_proto::streams::read_req::options::{
    self as read_options, AllOptions, CountOption, FilterOption, FilterOptions, ReadDirection,
    StreamOption, StreamOptions, SubscriptionOptions, UuidOption, all_options, stream_options,
    uuid_option,
};
use factum_proto::streams::{batch_append_req, read_req, read_resp};
use std::collections::HashMap;

/// The event type key of the wire's metadata map.
pub const TYPE_KEY: &str = "type";
/// The content type key.
pub const CONTENT_TYPE_KEY: &str = "content-type";
/// When the event was recorded: 100 ns ticks since the Unix epoch, in decimal.
pub const CREATED_KEY: &str = "created";
/// Factum's schema version of the event, in decimal; absent means 1. The KurrentDB protocol has
/// no such field: `factum serve` keeps this key on append and returns it on reads (other
/// servers drop it, so events read back from them have schema version 1).
pub const SCHEMA_VERSION_KEY: &str = "factum-schema-version";
/// Factum's tags of the event, a JSON array of strings; absent means none. Carried like the
/// schema version (other servers drop it, so events read back from them have no tags).
pub const TAGS_KEY: &str = "factum-tags";

/// A stream name on the wire.
pub fn stream_identifier(stream: &StreamName) -> StreamIdentifier {
    StreamIdentifier {
        stream_name: Bytes::copy_from_slice(stream.as_str().as_bytes()),
    }
}

/// A UUID on the wire, in its string form (the form every non-.NET client sends).
pub fn uuid_to_wire(id: Uuid) -> shared::Uuid {
    shared::Uuid {
        value: Some(uuid::Value::String(id.hyphenated().to_string())),
    }
}

/// A wire UUID, in either form.
pub fn uuid_from_wire(id: Option<&shared::Uuid>) -> Result<Uuid, Error> {
    match id.and_then(|id| id.value.as_ref()) {
        Some(uuid::Value::String(text)) => Uuid::parse_str(text)
            .map_err(|_| corrupt(format!("the event id {text:?} is not a UUID"))),
        // Bytes 0..8 and 8..16 of the RFC 4122 layout, each a big-endian signed integer.
        Some(uuid::Value::Structured(halves)) => Ok(Uuid::from_u64_pair(
            halves.most_significant_bits as u64,
            halves.least_significant_bits as u64,
        )),
        None => Err(corrupt("an event without an id".into())),
    }
}

/// An event to append, as a BatchAppend message; schema version and tags in the metadata map.
pub fn proposed_to_wire(event: &ProposedEvent) -> batch_append_req::ProposedMessage {
    let mut metadata = HashMap::with_capacity(3);
    metadata.insert(TYPE_KEY.to_owned(), event.event_type.clone());
    metadata.insert(CONTENT_TYPE_KEY.to_owned(), event.content_type.clone());
    if event.schema_version != 1 {
        metadata.insert(
            SCHEMA_VERSION_KEY.to_owned(),
            event.schema_version.to_string(),
        );
    }
    if !event.tags.is_empty() {
        metadata.insert(
            TAGS_KEY.to_owned(),
            serde_json::to_string(&event.tags).expect("strings serialise"),
        );
    }
    batch_append_req::ProposedMessage {
        id: Some(uuid_to_wire(event.id.0)),
        metadata,
        custom_metadata: event.metadata.clone(),
        data: event.data.clone(),
    }
}

/// A recorded event from a read or subscription message.
pub fn recorded_from_wire(
    event: read_resp::read_event::RecordedEvent,
) -> Result<RecordedEvent, Error> {
    let id = uuid_from_wire(event.id.as_ref())?;
    let stream = event
        .stream_identifier
        .as_ref()
        .ok_or_else(|| corrupt(format!("event {id} has no stream")))?;
    let stream = std::str::from_utf8(&stream.stream_name)
        .map_err(|_| corrupt(format!("the stream name of event {id} is not UTF-8")))?;
    let stream = StreamName::new(stream)
        .map_err(|error| corrupt(format!("the stream of event {id}: {error}")))?;
    let mut metadata = event.metadata;
    let event_type = metadata
        .remove(TYPE_KEY)
        .ok_or_else(|| corrupt(format!("event {id} has no type")))?;
    let content_type = metadata.remove(CONTENT_TYPE_KEY).unwrap_or_default();
    let schema_version = match metadata.get(SCHEMA_VERSION_KEY) {
        None => 1,
        Some(text) => text
            .parse::<u32>()
            .map_err(|_| corrupt(format!("event {id} has a schema version of {text:?}")))?,
    };
    let tags = match metadata.get(TAGS_KEY) {
        None => Vec::new(),
        Some(text) => serde_json::from_str::<Vec<String>>(text)
            .map_err(|_| corrupt(format!("event {id} has the tags {text:?}")))?,
    };
    // A missing or malformed `created` is the epoch, as the KurrentDB clients read it.
    let recorded_at = metadata
        .get(CREATED_KEY)
        .and_then(|ticks| ticks.parse::<u64>().ok())
        .map_or(Timestamp::EPOCH, |ticks| {
            Timestamp::from_unix_micros(ticks / 10)
        });
    if event.commit_position == 0 || event.commit_position > Position::MAX.value() {
        return Err(corrupt(format!(
            "event {id} has the position {}",
            event.commit_position
        )));
    }
    Ok(RecordedEvent {
        id: EventId(id),
        stream,
        revision: event.stream_revision,
        position: Position(event.commit_position),
        event_type: event_type.into(),
        schema_version,
        content_type: content_type.into(),
        data: event.data,
        metadata: event.custom_metadata,
        tags,
        recorded_at,
    })
}

/// The expected revision of a BatchAppend request.
pub fn expected_to_batch(
    expected: ExpectedRevision,
) -> batch_append_req::options::ExpectedStreamPosition {
    use batch_append_req::options::ExpectedStreamPosition as Expected;
    match expected {
        ExpectedRevision::Any => Expected::Any(()),
        ExpectedRevision::NoStream => Expected::NoStream(()),
        ExpectedRevision::StreamExists => Expected::StreamExists(()),
        ExpectedRevision::Exact(revision) => Expected::StreamPosition(revision),
    }
}

/// A `$all` filter on the wire, or `None` when the server cannot apply it exactly (an empty
/// regex matches everything here, while the wire reads an empty regex as "use the prefixes").
pub fn filter_to_wire(filter: &EventFilter) -> Option<FilterOptions> {
    let (expression, on_stream) = match filter {
        EventFilter::StreamPrefix(prefixes) => (
            Expression {
                regex: String::new(),
                prefix: prefixes.clone(),
            },
            true,
        ),
        EventFilter::EventTypePrefix(prefixes) => (
            Expression {
                regex: String::new(),
                prefix: prefixes.clone(),
            },
            false,
        ),
        EventFilter::StreamRegex(regex) | EventFilter::EventTypeRegex(regex) => {
            if regex.as_str().is_empty() {
                return None;
            }
            (
                Expression {
                    regex: regex.as_str().to_owned(),
                    prefix: Vec::new(),
                },
                matches!(filter, EventFilter::StreamRegex(_)),
            )
        }
    };
    Some(FilterOptions {
        filter: Some(if on_stream {
            Filter::StreamIdentifier(expression)
        } else {
            Filter::EventType(expression)
        }),
        window: Some(Window::Count(Empty {})),
        checkpoint_interval_multiplier: 1,
    })
}

/// The options every read shares: ids as strings, no links to resolve.
fn read_options(
    stream_option: StreamOption,
    direction: Direction,
    count_option: CountOption,
    filter: Option<FilterOptions>,
) -> read_req::Options {
    read_req::Options {
        stream_option: Some(stream_option),
        read_direction: match direction {
            Direction::Forwards => ReadDirection::Forwards,
            Direction::Backwards => ReadDirection::Backwards,
        } as i32,
        resolve_links: false,
        count_option: Some(count_option),
        filter_option: Some(match filter {
            Some(filter) => FilterOption::Filter(filter),
            None => FilterOption::NoFilter(Empty {}),
        }),
        uuid_option: Some(UuidOption {
            content: Some(uuid_option::Content::String(Empty {})),
        }),
        control_option: None,
    }
}

/// A read of at most `count` events of one stream.
pub fn stream_read(
    stream: &StreamName,
    from: StreamStart,
    direction: Direction,
    count: u64,
) -> read_req::Options {
    let revision_option = match from {
        StreamStart::Start => stream_options::RevisionOption::Start(Empty {}),
        StreamStart::End => stream_options::RevisionOption::End(Empty {}),
        StreamStart::Revision(revision) => stream_options::RevisionOption::Revision(revision),
    };
    let target = StreamOptions {
        stream_identifier: Some(stream_identifier(stream)),
        revision_option: Some(revision_option),
    };
    read_options(
        StreamOption::Stream(target),
        direction,
        CountOption::Count(count),
        None,
    )
}

/// A read of at most `count` events of `$all` (forwards inclusive of a start position,
/// backwards exclusive, as the contract's reads).
pub fn all_read(
    from: AllStart,
    direction: Direction,
    count: u64,
    filter: Option<FilterOptions>,
) -> read_req::Options {
    read_options(
        StreamOption::All(all_target(from)),
        direction,
        CountOption::Count(count),
        filter,
    )
}

/// A subscription to everything appended to `$all` from now on, system events included.
pub fn all_subscription_from_end() -> read_req::Options {
    read_options(
        StreamOption::All(all_target(AllStart::End)),
        Direction::Forwards,
        CountOption::Subscription(SubscriptionOptions {}),
        None,
    )
}

fn all_target(from: AllStart) -> AllOptions {
    let all_option = match from {
        AllStart::Start => all_options::AllOption::Start(Empty {}),
        AllStart::End => all_options::AllOption::End(Empty {}),
        AllStart::Position(position) => all_options::AllOption::Position(read_options::Position {
            commit_position: position.value(),
            prepare_position: position.value(),
        }),
    };
    AllOptions {
        all_option: Some(all_option),
    }
}

fn corrupt(detail: String) -> Error {
    Error::Corrupt {
        detail: format!("the server sent {detail}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wire_event(metadata: &[(&str, &str)]) -> read_resp::read_event::RecordedEvent {
        read_resp::read_event::RecordedEvent {
            id: Some(uuid_to_wire(Uuid::new_v4())),
            stream_identifier: Some(StreamIdentifier {
                stream_name: Bytes::from_static(b"account-1"),
            }),
            stream_revision: 4,
            prepare_position: 9,
            commit_position: 9,
            metadata: metadata
                .iter()
                .map(|(key, value)| ((*key).to_owned(), (*value).to_owned()))
                .collect(),
            custom_metadata: Bytes::from_static(b"{}"),
            data: Bytes::from_static(b"[1]"),
        }
    }

    #[test]
    fn a_proposed_event_round_trips_through_the_wire_with_its_schema_version() {
        let event = ProposedEvent::new("Opened", "application/json", &b"[1]"[..])
            .with_schema_version(3)
            .with_metadata(&b"{}"[..]);
        let message = proposed_to_wire(&event);
        assert_eq!(message.metadata[SCHEMA_VERSION_KEY], "3");
        assert_eq!(uuid_from_wire(message.id.as_ref()).unwrap(), event.id.0);
        // Version 1, the default, is not sent: KurrentDB clients see what they would send.
        let plain = proposed_to_wire(&ProposedEvent::bytes("T", &b""[..]));
        assert_eq!(plain.metadata.len(), 2);
    }

    #[test]
    fn recorded_events_take_type_content_type_created_and_schema_version_from_the_map() {
        let event = recorded_from_wire(wire_event(&[
            ("type", "Opened"),
            ("content-type", "application/json"),
            ("created", "15000007"),
            (SCHEMA_VERSION_KEY, "2"),
        ]))
        .unwrap();
        assert_eq!(event.event_type, "Opened");
        assert_eq!(event.content_type, "application/json");
        assert_eq!(event.schema_version, 2);
        assert_eq!(event.recorded_at, Timestamp::from_unix_micros(1_500_000));
        assert_eq!(event.position, Position(9));
        assert_eq!(event.revision, 4);
        assert_eq!(event.stream.as_str(), "account-1");

        let defaults = recorded_from_wire(wire_event(&[("type", "T")])).unwrap();
        assert_eq!(defaults.schema_version, 1);
        assert_eq!(defaults.recorded_at, Timestamp::EPOCH);
    }

    #[test]
    fn malformed_events_are_corrupt() {
        let no_type = recorded_from_wire(wire_event(&[("content-type", "x")]));
        assert!(matches!(no_type, Err(Error::Corrupt { .. })), "{no_type:?}");
        let bad_version =
            recorded_from_wire(wire_event(&[("type", "T"), (SCHEMA_VERSION_KEY, "x")]));
        assert!(matches!(bad_version, Err(Error::Corrupt { .. })));
        let mut zero = wire_event(&[("type", "T")]);
        zero.commit_position = 0;
        assert!(matches!(
            recorded_from_wire(zero),
            Err(Error::Corrupt { .. })
        ));
        let mut no_id = wire_event(&[("type", "T")]);
        no_id.id = None;
        assert!(matches!(
            recorded_from_wire(no_id),
            Err(Error::Corrupt { .. })
        ));
    }

    #[test]
    fn filters_go_on_the_wire_except_an_empty_regex() {
        let prefixes = filter_to_wire(&EventFilter::StreamPrefix(vec!["a-".into()])).unwrap();
        assert!(matches!(
            prefixes.filter,
            Some(Filter::StreamIdentifier(Expression { ref prefix, .. })) if prefix == &["a-"]
        ));
        let regex = filter_to_wire(&EventFilter::event_type_regex("^A").unwrap()).unwrap();
        assert!(matches!(
            regex.filter,
            Some(Filter::EventType(Expression { ref regex, .. })) if regex == "^A"
        ));
        assert!(filter_to_wire(&EventFilter::stream_regex("").unwrap()).is_none());
    }
}
