//! `migrate_stream`: rewrite a stream into a new one through the upcasters, for when keeping old
//! shapes around (and upcasting them on every read) is no longer wanted.

use bytes::Bytes;
use factum_core::{
    CONTENT_TYPE_JSON, Error, EventStore, ExpectedRevision, ProposedEvent, ReadStreamOptions,
    RecordedEvent, StreamName,
};
use serde_json::{Map, Value};

use crate::DomainEvent;
use crate::error::CodecError;
use crate::ids::derive_event_id;
use crate::schema::EventSchema;

/// How many events [`migrate_stream`] reads and appends at once.
const PAGE_EVENTS: u64 = 256;

/// What [`migrate_stream`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MigrateReport {
    /// Events written to the target stream (or found already written by an earlier run).
    pub copied: u64,
    /// Events left out: ignored types, or unknown ones under
    /// [`UnknownPolicy::Skip`](crate::UnknownPolicy::Skip).
    pub skipped: u64,
    /// The target stream's last revision, `None` if nothing was copied.
    pub last_revision: Option<u64>,
}

/// [`migrate_stream`] failed. Events copied before the failure stay in the target stream;
/// running the migration again continues where it stopped (the copies' ids are derived from the
/// originals', so pages already written are recognised, not duplicated).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MigrateError {
    /// Reading the source or appending to the target failed. A
    /// [`Error::WrongExpectedRevision`] means the target stream has events that are not this
    /// migration's copies.
    #[error(transparent)]
    Store(#[from] Error),
    /// An event of the source could not be upcast (see [`CodecError`]).
    #[error("event at revision {revision} of the source stream: {source}")]
    Codec {
        /// Its revision in the source stream.
        revision: u64,
        /// Why it could not be upcast.
        source: CodecError,
    },
}

/// Copies stream `from` into the new stream `to` through `schema`'s upcasters.
///
/// Each copy has the current schema version of its type and the upcast data; its metadata is
/// the original's with `$causationId` set to the original event's id and a `migratedFrom`
/// object (`{"stream": ..., "revision": ...}`) added (metadata that is not a JSON object is
/// copied as it is). Tags are kept. Ignored and (under
/// [`UnknownPolicy::Skip`](crate::UnknownPolicy::Skip)) unknown events are left out; under
/// [`UnknownPolicy::Fail`](crate::UnknownPolicy::Fail) an unknown event stops the migration.
///
/// `to` must not exist yet (or hold only an earlier run's copies). The source is left as it
/// is: delete it, or switch readers to `to`, once satisfied.
///
/// ```
/// # #[tokio::main]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use factum_codec::{DomainEvent, EventSchema, migrate_stream};
/// use factum_core::{EventStore, ExpectedRevision, ProposedEvent, ReadStreamOptions, StreamName};
/// use factum_memory::MemoryStore;
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Serialize, Deserialize)]
/// enum Event { Renamed { name: String } }
///
/// impl DomainEvent for Event {
///     const EVENT_TYPES: &'static [(&'static str, u32)] = &[("Renamed", 2)];
///     fn event_type(&self) -> &'static str { "Renamed" }
/// }
///
/// let store = MemoryStore::new();
/// let from = StreamName::new("user-1")?;
/// let v1 = ProposedEvent::json("Renamed", &serde_json::json!({"title": "Ada"}))?;
/// store.append(&from, ExpectedRevision::NoStream, vec![v1]).await?;
///
/// let schema = EventSchema::<Event>::json().upcast("Renamed", 1, |data| {
///     Ok(serde_json::json!({"name": data["title"]}))
/// });
/// let to = StreamName::new("user-1-v2")?;
/// let report = migrate_stream(&store, &from, &to, &schema).await?;
/// assert_eq!(report.copied, 1);
///
/// let copied = store.read_stream(&to, ReadStreamOptions::forwards()).await?;
/// assert_eq!(copied[0].schema_version, 2);
/// assert_eq!(&copied[0].data[..], br#"{"name":"Ada"}"#);
/// # Ok(())
/// # }
/// ```
pub async fn migrate_stream<E: DomainEvent>(
    store: &dyn EventStore,
    from: &StreamName,
    to: &StreamName,
    schema: &EventSchema<E>,
) -> Result<MigrateReport, MigrateError> {
    let mut report = MigrateReport::default();
    let mut next_revision = 0u64;
    loop {
        let page = ReadStreamOptions::forwards()
            .from_revision(next_revision)
            .limit(PAGE_EVENTS);
        let events = store.read_stream(from, page).await?;
        let Some(last) = events.last() else {
            break;
        };
        next_revision = last.revision + 1;
        let mut copies = Vec::with_capacity(events.len());
        for event in &events {
            match copy_of(event, to, schema)? {
                Some(copy) => copies.push(copy),
                None => report.skipped += 1,
            }
        }
        if !copies.is_empty() {
            let expected = match report.last_revision {
                None => ExpectedRevision::NoStream,
                Some(revision) => ExpectedRevision::Exact(revision),
            };
            let copied = copies.len() as u64;
            let written = store.append(to, expected, copies).await?;
            report.copied += copied;
            report.last_revision = Some(written.revision);
        }
        if (events.len() as u64) < PAGE_EVENTS {
            break;
        }
    }
    Ok(report)
}

fn copy_of<E: DomainEvent>(
    event: &RecordedEvent,
    to: &StreamName,
    schema: &EventSchema<E>,
) -> Result<Option<ProposedEvent>, MigrateError> {
    let codec_error = |source| MigrateError::Codec {
        revision: event.revision,
        source,
    };
    let Some(upcasted) = schema.upcast_event(event).map_err(codec_error)? else {
        return Ok(None);
    };
    let content_type = match &upcasted.payload {
        crate::Payload::Json(_) => CONTENT_TYPE_JSON.to_owned(),
        crate::Payload::Bytes(_) => upcasted.content_type.clone(),
    };
    let metadata = match serde_json::from_slice::<Map<String, Value>>(&event.metadata) {
        Ok(mut object) => {
            object.insert("$causationId".into(), event.id.to_string().into());
            object.insert(
                "migratedFrom".into(),
                serde_json::json!({"stream": event.stream.as_str(), "revision": event.revision}),
            );
            Bytes::from(serde_json::to_vec(&object).expect("a JSON map always serializes"))
        }
        Err(_) if event.metadata.is_empty() => Bytes::from(
            serde_json::to_vec(&serde_json::json!({
                "$causationId": event.id.to_string(),
                "migratedFrom": {"stream": event.stream.as_str(), "revision": event.revision},
            }))
            .expect("a JSON value always serializes"),
        ),
        Err(_) => event.metadata.clone(),
    };
    let copy = ProposedEvent::new(
        upcasted.event_type,
        content_type,
        upcasted.payload.into_bytes(),
    )
    .with_schema_version(upcasted.schema_version)
    .with_id(derive_event_id(event.id.0, to.as_str(), 0))
    .with_metadata(metadata)
    .with_tags(event.tags.iter().cloned());
    Ok(Some(copy))
}
