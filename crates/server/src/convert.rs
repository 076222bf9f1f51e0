//! Wire types ↔ contract types: ids, stream names, expected revisions, events, filters.
//!
//! Pure functions; every malformed input becomes an [`ApiError`] naming the field.

use ::uuid::Uuid;
use bytes::Bytes;
use factum_core::{
    EventFilter, EventId, ExpectedRevision, ProposedEvent, RecordedEvent, StreamName, Timestamp,
};
use factum_proto::shared::{self, StreamIdentifier, uuid};
use factum_proto::streams::read_req::options::filter_options::{Expression, Filter};
use factum_proto::streams::read_req::options::{FilterOptions, UuidOption, uuid_option};
use factum_proto::streams::read_resp::read_event;
use factum_proto::streams::{ReadResp, read_resp};
use std::collections::HashMap;

use crate::errors::ApiError;

/// The metadata keys of the wire's event metadata map.
pub const TYPE_KEY: &str = "type";
/// The content type key.
pub const CONTENT_TYPE_KEY: &str = "content-type";
/// When the event was recorded: 100 ns ticks since the Unix epoch, in decimal.
pub const CREATED_KEY: &str = "created";
/// Factum's schema version of the event, in decimal, absent when it is 1: the KurrentDB
/// protocol has no field for it, so Factum's own client sends it in the metadata map and reads
/// it back from there. Other clients never send it and ignore it on reads.
pub const SCHEMA_VERSION_KEY: &str = "factum-schema-version";
/// Factum's tags of the event, as a JSON array of strings, absent when there are none: like
/// the schema version, carried in the metadata map because the protocol has no field for them.
pub const TAGS_KEY: &str = "factum-tags";

/// How ids go out on a read: the request's `uuid_option`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UuidFormat {
    /// Two signed 64-bit halves (.NET clients).
    Structured,
    /// Canonical text (Python, Node, Rust clients).
    String,
}

impl UuidFormat {
    /// The format a read asked for. KurrentDB rejects a read without one; answering structured
    /// is the lenient choice.
    pub fn from_option(option: Option<&UuidOption>) -> UuidFormat {
        match option.and_then(|option| option.content.as_ref()) {
            Some(uuid_option::Content::String(_)) => UuidFormat::String,
            _ => UuidFormat::Structured,
        }
    }
}

/// A wire id as a UUID. Both forms are accepted.
pub fn uuid_from_wire(id: Option<&shared::Uuid>, field: &str) -> Result<Uuid, ApiError> {
    match id.and_then(|id| id.value.as_ref()) {
        Some(uuid::Value::String(text)) => Uuid::parse_str(text)
            .map_err(|_| ApiError::bad_request(format!("{field} {text:?} is not a UUID"))),
        // The halves are the big-endian readings of bytes 0..8 and 8..16, as `u64_pair`.
        Some(uuid::Value::Structured(halves)) => Ok(Uuid::from_u64_pair(
            halves.most_significant_bits as u64,
            halves.least_significant_bits as u64,
        )),
        None => Err(ApiError::bad_request(format!("{field} is missing"))),
    }
}

/// A UUID in the wire form a reader asked for.
pub fn uuid_to_wire(id: Uuid, format: UuidFormat) -> shared::Uuid {
    let value = match format {
        UuidFormat::String => uuid::Value::String(id.hyphenated().to_string()),
        UuidFormat::Structured => {
            let (high, low) = id.as_u64_pair();
            uuid::Value::Structured(uuid::Structured {
                most_significant_bits: high as i64,
                least_significant_bits: low as i64,
            })
        }
    };
    shared::Uuid { value: Some(value) }
}

/// The stream a request names.
pub fn stream_from_wire(identifier: Option<&StreamIdentifier>) -> Result<StreamName, ApiError> {
    let identifier =
        identifier.ok_or_else(|| ApiError::bad_request("stream_identifier is missing"))?;
    let name = std::str::from_utf8(&identifier.stream_name)
        .map_err(|_| ApiError::bad_request("the stream name is not valid UTF-8"))?;
    Ok(StreamName::new(name)?)
}

/// A stream name on the wire.
pub fn stream_to_wire(stream: &StreamName) -> StreamIdentifier {
    StreamIdentifier {
        stream_name: Bytes::copy_from_slice(stream.as_str().as_bytes()),
    }
}

/// The number KurrentDB uses for an expected revision in messages and trailers.
pub fn expected_number(expected: ExpectedRevision) -> i64 {
    match expected {
        ExpectedRevision::Exact(revision) => revision.min(i64::MAX as u64) as i64,
        ExpectedRevision::NoStream => -1,
        ExpectedRevision::Any => -2,
        ExpectedRevision::StreamExists => -4,
    }
}

/// An event a client proposes: id, metadata map (`type`, `content-type`), user metadata, data.
pub struct WireEvent {
    /// The client's event id.
    pub id: Option<shared::Uuid>,
    /// The metadata map.
    pub metadata: HashMap<String, String>,
    /// The user's metadata bytes.
    pub custom_metadata: Bytes,
    /// The payload.
    pub data: Bytes,
}

impl WireEvent {
    /// The bytes this event counts for against the append size limit.
    pub fn size_bytes(&self) -> usize {
        let metadata: usize = self
            .metadata
            .iter()
            .map(|(key, value)| key.len() + value.len())
            .sum();
        self.data.len() + self.custom_metadata.len() + metadata
    }

    /// The event as the contract's proposed event.
    pub fn into_proposed(self) -> Result<ProposedEvent, ApiError> {
        let id = uuid_from_wire(self.id.as_ref(), "the event id")?;
        let mut metadata = self.metadata;
        let event_type = metadata
            .remove(TYPE_KEY)
            .ok_or_else(|| ApiError::missing_metadata(TYPE_KEY))?;
        let content_type = metadata
            .remove(CONTENT_TYPE_KEY)
            .ok_or_else(|| ApiError::missing_metadata(CONTENT_TYPE_KEY))?;
        let schema_version = match metadata.remove(SCHEMA_VERSION_KEY) {
            None => 1,
            Some(text) => text.parse::<u32>().map_err(|_| {
                ApiError::bad_request(format!(
                    "{SCHEMA_VERSION_KEY} {text:?} is not a schema version (a decimal number)"
                ))
            })?,
        };
        let tags = match metadata.remove(TAGS_KEY) {
            None => Vec::new(),
            Some(text) => serde_json::from_str::<Vec<String>>(&text).map_err(|_| {
                ApiError::bad_request(format!(
                    "{TAGS_KEY} {text:?} is not a JSON array of strings"
                ))
            })?,
        };
        Ok(ProposedEvent {
            id: EventId(id),
            event_type,
            schema_version,
            content_type,
            data: self.data,
            metadata: self.custom_metadata,
            tags,
        })
    }
}

/// `created`: .NET-style 100 ns ticks since the Unix epoch.
pub fn created_ticks(recorded_at: Timestamp) -> u64 {
    recorded_at.unix_micros().saturating_mul(10)
}

/// A recorded event as a `ReadResp` message.
pub fn event_to_wire(event: &RecordedEvent, format: UuidFormat) -> ReadResp {
    let mut metadata = HashMap::with_capacity(3);
    metadata.insert(TYPE_KEY.to_owned(), event.event_type.as_str().to_owned());
    metadata.insert(
        CONTENT_TYPE_KEY.to_owned(),
        event.content_type.as_str().to_owned(),
    );
    metadata.insert(
        CREATED_KEY.to_owned(),
        created_ticks(event.recorded_at).to_string(),
    );
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
    let position = event.position.value();
    let recorded = read_event::RecordedEvent {
        id: Some(uuid_to_wire(event.id.0, format)),
        stream_identifier: Some(stream_to_wire(&event.stream)),
        stream_revision: event.revision,
        prepare_position: position,
        commit_position: position,
        metadata,
        custom_metadata: event.metadata.clone(),
        data: event.data.clone(),
    };
    ReadResp {
        content: Some(read_resp::Content::Event(read_resp::ReadEvent {
            event: Some(recorded),
            link: None,
            // The Python client asserts this is set.
            position: Some(read_event::Position::CommitPosition(position)),
        })),
    }
}

/// A `$all` filter as the contract's filter. An empty regex falls back to the prefix list.
pub fn filter_from_wire(options: &FilterOptions) -> Result<EventFilter, ApiError> {
    let (expression, on_stream) = match options.filter.as_ref() {
        Some(Filter::StreamIdentifier(expression)) => (expression, true),
        Some(Filter::EventType(expression)) => (expression, false),
        None => return Err(ApiError::bad_request("the filter names no expression")),
    };
    let Expression { regex, prefix } = expression;
    let filter = if regex.is_empty() {
        if on_stream {
            EventFilter::StreamPrefix(prefix.clone())
        } else {
            EventFilter::EventTypePrefix(prefix.clone())
        }
    } else if on_stream {
        EventFilter::stream_regex(regex)?
    } else {
        EventFilter::event_type_regex(regex)?
    };
    Ok(filter)
}

/// How many events of the log a filtered subscription examines between checkpoints:
/// `max × checkpointIntervalMultiplier`, as KurrentDB does.
pub fn checkpoint_interval(options: &FilterOptions) -> u64 {
    use factum_proto::streams::read_req::options::filter_options::Window;
    let window = match options.window {
        Some(Window::Max(max)) => u64::from(max.max(1)),
        _ => 32,
    };
    window.saturating_mul(u64::from(options.checkpoint_interval_multiplier.max(1)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn structured_ids_are_the_rfc_4122_bytes_as_two_big_endian_halves() {
        let id = Uuid::parse_str("00112233-4455-6677-8899-aabbccddeeff").unwrap();
        let wire = uuid_to_wire(id, UuidFormat::Structured);
        let Some(uuid::Value::Structured(halves)) = &wire.value else {
            panic!("expected the structured form");
        };
        assert_eq!(halves.most_significant_bits, 0x0011_2233_4455_6677);
        assert_eq!(
            halves.least_significant_bits,
            0x8899_aabb_ccdd_eeff_u64 as i64
        );
        assert_eq!(uuid_from_wire(Some(&wire), "id").unwrap(), id);
    }

    #[test]
    fn string_ids_are_lower_case_hyphenated_and_round_trip() {
        let id = Uuid::new_v4();
        let wire = uuid_to_wire(id, UuidFormat::String);
        assert_eq!(
            wire.value,
            Some(uuid::Value::String(id.hyphenated().to_string()))
        );
        assert_eq!(uuid_from_wire(Some(&wire), "id").unwrap(), id);
    }

    #[test]
    fn malformed_ids_and_names_are_bad_requests() {
        let text = shared::Uuid {
            value: Some(uuid::Value::String("not-a-uuid".into())),
        };
        assert!(uuid_from_wire(Some(&text), "id").is_err());
        assert!(uuid_from_wire(None, "id").is_err());
        let invalid_utf8 = StreamIdentifier {
            stream_name: Bytes::from_static(&[0xff, 0xfe]),
        };
        assert!(stream_from_wire(Some(&invalid_utf8)).is_err());
        assert!(stream_from_wire(None).is_err());
    }

    #[test]
    fn events_without_type_or_content_type_are_refused_with_the_property_named() {
        let event = WireEvent {
            id: Some(uuid_to_wire(Uuid::new_v4(), UuidFormat::String)),
            metadata: HashMap::from([(CONTENT_TYPE_KEY.to_owned(), "application/json".into())]),
            custom_metadata: Bytes::new(),
            data: Bytes::from_static(b"{}"),
        };
        let error = event.into_proposed().err().unwrap();
        assert!(error.to_string().contains("'type'"), "{error}");
    }

    #[test]
    fn the_python_clients_default_look_ahead_filter_compiles_and_excludes_system_types() {
        let options = FilterOptions {
            filter: Some(Filter::EventType(Expression {
                regex: r"^(?!(\$.+$|PersistentConfig\d+$|Result$))".into(),
                prefix: Vec::new(),
            })),
            window: None,
            checkpoint_interval_multiplier: 1,
        };
        let filter = filter_from_wire(&options).unwrap();
        let stream = StreamName::new("account-1").unwrap();
        assert!(filter.matches_parts(&stream, "MoneyDeposited"));
        assert!(!filter.matches_parts(&stream, "$metadata"));
        assert!(!filter.matches_parts(&stream, "PersistentConfig1"));
    }

    #[test]
    fn the_schema_version_travels_in_the_metadata_map_when_it_is_not_1() {
        let proposed = |version: Option<&str>| WireEvent {
            id: Some(uuid_to_wire(Uuid::new_v4(), UuidFormat::String)),
            metadata: [(TYPE_KEY, "Opened"), (CONTENT_TYPE_KEY, "application/json")]
                .into_iter()
                .chain(version.map(|version| (SCHEMA_VERSION_KEY, version)))
                .map(|(key, value)| (key.to_owned(), value.to_owned()))
                .collect(),
            custom_metadata: Bytes::new(),
            data: Bytes::from_static(b"{}"),
        };
        assert_eq!(proposed(None).into_proposed().unwrap().schema_version, 1);
        let event = proposed(Some("3")).into_proposed().unwrap();
        assert_eq!(event.schema_version, 3);
        let error = proposed(Some("three")).into_proposed().err().unwrap();
        assert!(error.to_string().contains(SCHEMA_VERSION_KEY), "{error}");

        let recorded = |schema_version| RecordedEvent {
            id: EventId(Uuid::new_v4()),
            stream: StreamName::new("s").unwrap(),
            revision: 0,
            position: factum_core::Position(1),
            event_type: "Opened".into(),
            schema_version,
            content_type: "application/json".into(),
            data: Bytes::new(),
            metadata: Bytes::new(),
            tags: Vec::new(),
            recorded_at: Timestamp::EPOCH,
        };
        let metadata = |schema_version| {
            let reply = event_to_wire(&recorded(schema_version), UuidFormat::String);
            match reply.content {
                Some(read_resp::Content::Event(read_resp::ReadEvent {
                    event: Some(event),
                    ..
                })) => event.metadata,
                other => panic!("not an event: {other:?}"),
            }
        };
        assert_eq!(metadata(3)[SCHEMA_VERSION_KEY], "3");
        // Version 1 adds nothing: KurrentDB clients see exactly what they expect.
        assert!(!metadata(1).contains_key(SCHEMA_VERSION_KEY));
    }

    #[test]
    fn tags_travel_as_a_json_array_in_the_metadata_map_when_there_are_some() {
        let proposed = |tags: Option<&str>| WireEvent {
            id: Some(uuid_to_wire(Uuid::new_v4(), UuidFormat::String)),
            metadata: [(TYPE_KEY, "Opened"), (CONTENT_TYPE_KEY, "application/json")]
                .into_iter()
                .chain(tags.map(|tags| (TAGS_KEY, tags)))
                .map(|(key, value)| (key.to_owned(), value.to_owned()))
                .collect(),
            custom_metadata: Bytes::new(),
            data: Bytes::from_static(b"{}"),
        };
        assert!(proposed(None).into_proposed().unwrap().tags.is_empty());
        let event = proposed(Some(r#"["vip","region:eu"]"#))
            .into_proposed()
            .unwrap();
        assert_eq!(event.tags, ["vip", "region:eu"]);
        let error = proposed(Some("vip")).into_proposed().err().unwrap();
        assert!(error.to_string().contains(TAGS_KEY), "{error}");

        let recorded = |tags: Vec<String>| RecordedEvent {
            id: EventId(Uuid::new_v4()),
            stream: StreamName::new("s").unwrap(),
            revision: 0,
            position: factum_core::Position(1),
            event_type: "Opened".into(),
            schema_version: 1,
            content_type: "application/json".into(),
            data: Bytes::new(),
            metadata: Bytes::new(),
            tags,
            recorded_at: Timestamp::EPOCH,
        };
        let metadata = |tags| match event_to_wire(&recorded(tags), UuidFormat::String).content {
            Some(read_resp::Content::Event(read_resp::ReadEvent {
                event: Some(event), ..
            })) => event.metadata,
            other => panic!("not an event: {other:?}"),
        };
        assert_eq!(metadata(vec!["vip".into()])[TAGS_KEY], r#"["vip"]"#);
        assert!(!metadata(Vec::new()).contains_key(TAGS_KEY));
    }

    #[test]
    fn created_is_in_100_ns_ticks() {
        assert_eq!(
            created_ticks(Timestamp::from_unix_micros(1_500_000)),
            15_000_000
        );
    }
}
