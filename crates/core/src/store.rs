//! The `EventStore` trait: the contract every backend implements.

use async_trait::async_trait;
use tokio::sync::watch;

use crate::error::{Error, Result};
use crate::event::{ProposedEvent, RecordedEvent};
use crate::limits::Limits;
use crate::metadata::{METADATA_EVENT_TYPE, StreamMetadata, StreamMetadataResult};
use crate::name::StreamName;
use crate::read::{AllSlice, ReadAllOptions, ReadStreamOptions};
use crate::revision::{AppendResult, CurrentRevision, DeleteResult, ExpectedRevision, Position};

/// An event store: append-only streams of events, and one global log over all of them.
///
/// Every backend (in-memory, embedded, PostgreSQL) implements this trait with exactly the same
/// behaviour, which the `factum-conformance` suite checks. The common rules live in
/// [`rules`](crate::rules). Catch-up subscriptions are built on top of any store: see
/// [`Subscription`](crate::Subscription).
///
/// All methods are safe to call concurrently. Readers only ever see events that are durable
/// (for a durable backend) and never part of an append.
#[async_trait]
pub trait EventStore: Send + Sync + 'static {
    /// Appends `events` to `stream`, atomically: all of them or none.
    ///
    /// The events get consecutive revisions after the stream's last one, and increasing global
    /// positions, and the same recorded time, `max(now, the previous event's)`. Returns the
    /// position and revision of the last event, once the append is durable.
    ///
    /// **Idempotent retries.** Re-appending events with the same ids returns the original result
    /// and writes nothing (see [`rules::plan_append`](crate::rules::plan_append) for the exact
    /// rule per expected revision). A retry is recognised even across a restart. Only the ids
    /// are compared: a "retry" with the same ids and different data returns the original result.
    /// Ids are unique per append, not per store: the same id may appear in two streams, or
    /// again in one stream when an append's expectation holds (`Exact(last)`), or past the
    /// idempotency window with `Any`.
    ///
    /// Errors: [`Error::WrongExpectedRevision`], [`Error::StreamDeleted`], the input errors of
    /// [`rules::validate_append`](crate::rules::validate_append), and for durable backends
    /// [`Error::Io`] and [`Error::Unavailable`]. On error nothing was written (for `Io`: see its
    /// handling note).
    async fn append(
        &self,
        stream: &StreamName,
        expected: ExpectedRevision,
        events: Vec<ProposedEvent>,
    ) -> Result<AppendResult>;

    /// Reads one stream: forwards from a revision (inclusive), or backwards from a revision
    /// (inclusive, newest first), at most `options.limit` events.
    ///
    /// Stream metadata is honoured: revisions below `$tb`, beyond the newest `$maxCount`, or
    /// recorded longer than `$maxAge` ago are not returned.
    ///
    /// Errors: [`Error::StreamNotFound`] if the stream was never written or is soft-deleted,
    /// [`Error::StreamDeleted`] if it is tombstoned.
    async fn read_stream(
        &self,
        stream: &StreamName,
        options: ReadStreamOptions,
    ) -> Result<Vec<RecordedEvent>>;

    /// Reads the global log: forwards from a position (inclusive), or backwards from before a
    /// position (exclusive, newest first), keeping what the filter and `include_system` allow,
    /// at most `options.limit` kept events and at most `options.scan_limit` examined ones.
    ///
    /// Events of soft-deleted, tombstoned and truncated streams stay visible here until physical
    /// cleanup (a later release).
    async fn read_all(&self, options: ReadAllOptions) -> Result<AllSlice>;

    /// Soft-deletes `stream`: it reads as not found from now on, and a later append (with
    /// `NoStream`, `Any` or its old last revision) brings it back with its revisions continued.
    /// Implemented as stream metadata: `$tb` set just past the last revision.
    ///
    /// Errors: see [`rules::plan_delete`](crate::rules::plan_delete).
    async fn delete_stream(
        &self,
        stream: &StreamName,
        expected: ExpectedRevision,
    ) -> Result<DeleteResult>;

    /// Tombstones `stream`, for ever: every later read, append or delete of it (or of its
    /// metadata) answers [`Error::StreamDeleted`]. Appends a `$streamDeleted` event to the
    /// stream, visible in `$all` as a system event.
    ///
    /// Errors: see [`rules::plan_delete`](crate::rules::plan_delete).
    async fn tombstone_stream(
        &self,
        stream: &StreamName,
        expected: ExpectedRevision,
    ) -> Result<DeleteResult>;

    /// The position of the last durable event, `Position(0)` for an empty store.
    async fn head(&self) -> Result<Position>;

    /// A receiver of the head position, updated after every durable append: how subscriptions
    /// learn there is something new to read without polling.
    fn watch_head(&self) -> watch::Receiver<Position>;

    /// The limits this store enforces.
    fn limits(&self) -> &Limits;

    /// Reads `stream`'s metadata and the revision of its metadata stream (for an optimistic
    /// update). A stream without metadata has the default, with `CurrentRevision::NoStream`.
    ///
    /// Errors: [`Error::StreamDeleted`] if the stream is tombstoned; [`Error::InvalidRequest`]
    /// for a metadata stream (it has no metadata).
    async fn stream_metadata(&self, stream: &StreamName) -> Result<StreamMetadataResult> {
        let metadata_stream = metadata_stream_of(stream)?;
        let newest = ReadStreamOptions::backwards().limit(1);
        match self.read_stream(&metadata_stream, newest).await {
            Ok(events) => match events.first() {
                Some(event) => Ok(StreamMetadataResult {
                    metadata: StreamMetadata::from_json(&event.data)?,
                    revision: CurrentRevision::Current(event.revision),
                }),
                None => Ok(StreamMetadataResult {
                    metadata: StreamMetadata::default(),
                    revision: CurrentRevision::NoStream,
                }),
            },
            Err(Error::StreamNotFound { .. }) => Ok(StreamMetadataResult {
                metadata: StreamMetadata::default(),
                revision: CurrentRevision::NoStream,
            }),
            Err(Error::StreamDeleted { .. }) => Err(Error::StreamDeleted {
                stream: stream.clone(),
            }),
            Err(error) => Err(error),
        }
    }

    /// Sets `stream`'s metadata by appending a `$metadata` event to `$$stream`, with `expected`
    /// checked against the metadata stream's revision.
    ///
    /// Errors: as [`EventStore::append`] on the metadata stream; [`Error::StreamDeleted`] if the
    /// stream is tombstoned.
    async fn set_stream_metadata(
        &self,
        stream: &StreamName,
        expected: ExpectedRevision,
        metadata: &StreamMetadata,
    ) -> Result<AppendResult> {
        let metadata_stream = metadata_stream_of(stream)?;
        let event = ProposedEvent::new(
            METADATA_EVENT_TYPE,
            crate::event::CONTENT_TYPE_JSON,
            metadata.to_json(),
        );
        match self.append(&metadata_stream, expected, vec![event]).await {
            Err(Error::StreamDeleted { .. }) => Err(Error::StreamDeleted {
                stream: stream.clone(),
            }),
            other => other,
        }
    }
}

fn metadata_stream_of(stream: &StreamName) -> Result<StreamName> {
    stream.metadata_stream().ok_or_else(|| {
        Error::invalid_request(format!("{stream} is a metadata stream and has no metadata"))
    })
}
