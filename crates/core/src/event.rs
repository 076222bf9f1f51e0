//! Events as a writer proposes them and as the store records them.

use std::fmt;

use bytes::Bytes;
use serde::Serialize;
use uuid::Uuid;

use crate::error::Error;
use crate::name::StreamName;
use crate::revision::Position;
use crate::shared_str::SharedStr;
use crate::timestamp::Timestamp;

/// The content type of JSON data and metadata.
pub const CONTENT_TYPE_JSON: &str = "application/json";
/// The content type of opaque binary data.
pub const CONTENT_TYPE_BYTES: &str = "application/octet-stream";

/// An event's unique id. Writers choose it (or let [`ProposedEvent`] generate one); re-appending
/// the same ids is how an append is retried safely (see [`EventStore::append`](crate::EventStore::append)).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EventId(pub Uuid);

impl EventId {
    /// A new random, time-ordered id (UUID version 7).
    pub fn generate() -> EventId {
        EventId(Uuid::now_v7())
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0.hyphenated(), f)
    }
}

impl fmt::Debug for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl From<Uuid> for EventId {
    fn from(id: Uuid) -> EventId {
        EventId(id)
    }
}

/// An event a writer wants to append.
///
/// Build one with [`ProposedEvent::json`] or [`ProposedEvent::bytes`] and the `with_*`
/// methods. The store checks it on append (see [`Limits`](crate::Limits)): a non-empty type of at
/// most 255 bytes that does not start with `$` (reserved for the store, except `$metadata` in
/// metadata streams), a schema version of at least 1, a non-empty content type, at most 16 tags
/// of 1 to 128 bytes each.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProposedEvent {
    /// The event's id; generated unless the writer sets one.
    pub id: EventId,
    /// What happened, named in the past tense: `MoneyDeposited`.
    pub event_type: String,
    /// The version of this event type's data shape, from 1; upcasters key on
    /// `(event_type, schema_version)`.
    pub schema_version: u32,
    /// How `data` is encoded: [`CONTENT_TYPE_JSON`], [`CONTENT_TYPE_BYTES`], or any other MIME
    /// type. Stored verbatim.
    pub content_type: String,
    /// The event's payload. The store keeps bytes and never parses them.
    pub data: Bytes,
    /// Opaque metadata; when it is a JSON object, `$correlationId` and `$causationId` are read
    /// from it (see [`RecordedEvent::correlation_id`]).
    pub metadata: Bytes,
    /// A few short strings for cross-stream queries (stored and returned; queried in a later
    /// release).
    pub tags: Vec<String>,
}

impl ProposedEvent {
    /// An event whose data is `data` encoded as JSON, with a generated id and schema version 1.
    pub fn json<T: Serialize + ?Sized>(
        event_type: impl Into<String>,
        data: &T,
    ) -> Result<ProposedEvent, Error> {
        let data = serde_json::to_vec(data)?;
        Ok(ProposedEvent::new(event_type, CONTENT_TYPE_JSON, data))
    }

    /// An event with opaque binary data, a generated id and schema version 1.
    pub fn bytes(event_type: impl Into<String>, data: impl Into<Bytes>) -> ProposedEvent {
        ProposedEvent::new(event_type, CONTENT_TYPE_BYTES, data)
    }

    /// An event with the given content type and data, a generated id and schema version 1.
    pub fn new(
        event_type: impl Into<String>,
        content_type: impl Into<String>,
        data: impl Into<Bytes>,
    ) -> ProposedEvent {
        ProposedEvent {
            id: EventId::generate(),
            event_type: event_type.into(),
            schema_version: 1,
            content_type: content_type.into(),
            data: data.into(),
            metadata: Bytes::new(),
            tags: Vec::new(),
        }
    }

    /// Sets the event's id (for idempotent retries, or ids derived from a command's id).
    pub fn with_id(mut self, id: impl Into<EventId>) -> ProposedEvent {
        self.id = id.into();
        self
    }

    /// Sets the schema version of the event's data shape.
    pub fn with_schema_version(mut self, schema_version: u32) -> ProposedEvent {
        self.schema_version = schema_version;
        self
    }

    /// Sets opaque metadata.
    pub fn with_metadata(mut self, metadata: impl Into<Bytes>) -> ProposedEvent {
        self.metadata = metadata.into();
        self
    }

    /// Sets metadata to `metadata` encoded as JSON.
    pub fn with_json_metadata<T: Serialize + ?Sized>(
        mut self,
        metadata: &T,
    ) -> Result<ProposedEvent, Error> {
        self.metadata = Bytes::from(serde_json::to_vec(metadata)?);
        Ok(self)
    }

    /// Sets the event's tags.
    pub fn with_tags<I, T>(mut self, tags: I) -> ProposedEvent
    where
        I: IntoIterator<Item = T>,
        T: Into<String>,
    {
        self.tags = tags.into_iter().map(Into::into).collect();
        self
    }

    /// The event's size as the limits count it: data, metadata, type, content type and tags.
    pub fn size_bytes(&self) -> usize {
        let tags: usize = self.tags.iter().map(String::len).sum();
        self.data.len()
            + self.metadata.len()
            + self.event_type.len()
            + self.content_type.len()
            + tags
    }
}

/// An event as the store recorded it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedEvent {
    /// The id the writer gave it.
    pub id: EventId,
    /// The stream it belongs to.
    pub stream: StreamName,
    /// Its 0-based index in its stream.
    pub revision: u64,
    /// Its place in the global log.
    pub position: Position,
    /// What happened (past tense).
    pub event_type: SharedStr,
    /// The version of its data shape.
    pub schema_version: u32,
    /// How `data` is encoded.
    pub content_type: SharedStr,
    /// The payload, as written.
    pub data: Bytes,
    /// The metadata, as written.
    pub metadata: Bytes,
    /// The tags, as written.
    pub tags: Vec<String>,
    /// When it was committed; never decreases along the global log.
    pub recorded_at: Timestamp,
}

impl RecordedEvent {
    /// Whether the event is a system event, left out of `$all` reads and subscriptions unless
    /// asked for: it belongs to a system stream (name starting with `$`) or its type starts with
    /// `$` (such as the `$streamDeleted` marker a tombstone writes).
    pub fn is_system(&self) -> bool {
        is_system_event(&self.stream, &self.event_type)
    }

    /// The `$correlationId` of the metadata, when the metadata is a JSON object that has one
    /// as a string.
    pub fn correlation_id(&self) -> Option<String> {
        self.metadata_string("$correlationId")
    }

    /// The `$causationId` of the metadata, when the metadata is a JSON object that has one as a
    /// string.
    pub fn causation_id(&self) -> Option<String> {
        self.metadata_string("$causationId")
    }

    fn metadata_string(&self, key: &str) -> Option<String> {
        let object: serde_json::Map<String, serde_json::Value> =
            serde_json::from_slice(&self.metadata).ok()?;
        match object.get(key)? {
            serde_json::Value::String(value) => Some(value.clone()),
            _ => None,
        }
    }

    /// Decodes JSON data into `T`.
    pub fn data_json<T: serde::de::DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_slice(&self.data)
    }
}

/// Whether an event of `event_type` in `stream` is a system event (see
/// [`RecordedEvent::is_system`]).
pub(crate) fn is_system_event(stream: &StreamName, event_type: &str) -> bool {
    stream.is_system() || event_type.starts_with('$')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recorded(metadata: &str) -> RecordedEvent {
        RecordedEvent {
            id: EventId::generate(),
            stream: StreamName::new("s").unwrap(),
            revision: 0,
            position: Position(1),
            event_type: "Happened".into(),
            schema_version: 1,
            content_type: CONTENT_TYPE_JSON.into(),
            data: Bytes::from_static(b"{}"),
            metadata: Bytes::copy_from_slice(metadata.as_bytes()),
            tags: vec![],
            recorded_at: Timestamp::EPOCH,
        }
    }

    #[test]
    fn reads_correlation_and_causation_from_json_metadata() {
        let event = recorded(r#"{"$correlationId":"c-1","$causationId":"k-2","user":"bob"}"#);
        assert_eq!(event.correlation_id().as_deref(), Some("c-1"));
        assert_eq!(event.causation_id().as_deref(), Some("k-2"));
    }

    #[test]
    fn tolerates_metadata_that_is_not_a_json_object() {
        assert_eq!(recorded("").correlation_id(), None);
        assert_eq!(recorded("[1,2]").correlation_id(), None);
        assert_eq!(recorded(r#"{"$correlationId":7}"#).correlation_id(), None);
        assert_eq!(recorded("\u{1}binary").causation_id(), None);
    }

    #[test]
    fn counts_every_stored_part_in_the_size() {
        let event = ProposedEvent::bytes("Typ", vec![0u8; 10])
            .with_metadata(vec![0u8; 5])
            .with_tags(["ab", "c"]);
        assert_eq!(
            event.size_bytes(),
            10 + 5 + 3 + CONTENT_TYPE_BYTES.len() + 3
        );
    }
}
