//! The one error type of the contract, and how a caller should handle each variant.

use crate::name::StreamName;
use crate::revision::{CurrentRevision, ExpectedRevision};

/// The result of every store operation.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong when talking to an event store.
///
/// Every variant but [`Error::Io`], [`Error::Corrupt`] and [`Error::Unavailable`] is an expected
/// outcome of a valid request against the store's current state, or a bad request: in those cases
/// **nothing was written**. Each variant says how a caller should handle it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The stream's state does not match the expected revision; nothing was written.
    ///
    /// Handle by reloading the stream (state and revision), re-deciding, and retrying with the
    /// new revision; a repository does this a bounded number of times.
    #[error("wrong expected revision on stream {stream}: expected {expected}, actual {actual}")]
    WrongExpectedRevision {
        /// The stream written to.
        stream: StreamName,
        /// What the writer expected.
        expected: ExpectedRevision,
        /// What the stream's state actually was.
        actual: CurrentRevision,
    },

    /// The stream was never written, or it was soft-deleted.
    ///
    /// Handle as "no such aggregate": it is an answer, not a failure.
    #[error("stream {stream} not found")]
    StreamNotFound {
        /// The stream asked for.
        stream: StreamName,
    },

    /// The stream was tombstoned: it can never be read, written or deleted again.
    ///
    /// Handle as permanent; retrying cannot succeed. Use another stream name.
    #[error("stream {stream} is deleted (tombstoned) and cannot be used again")]
    StreamDeleted {
        /// The stream asked for.
        stream: StreamName,
    },

    /// The stream name breaks a naming rule (see [`StreamName`]).
    ///
    /// Handle as a bug in the caller or bad user input; retrying cannot succeed.
    #[error("invalid stream name {name:?}: {reason}")]
    InvalidStreamName {
        /// The refused name (shortened if very long).
        name: String,
        /// Which rule it breaks.
        reason: &'static str,
    },

    /// An event of an append breaks a rule (empty or reserved type, schema version 0, bad
    /// tags, a non-JSON `$metadata` event...). Nothing of the append was written.
    ///
    /// Handle as bad input; retrying the same events cannot succeed.
    #[error("invalid event at index {index} of the append: {reason}")]
    InvalidEvent {
        /// The event's index in the append, from 0.
        index: usize,
        /// What is wrong with it.
        reason: String,
    },

    /// An event is larger than [`Limits::event_size_bytes_max`](crate::Limits). Nothing was
    /// written.
    ///
    /// Handle by storing large payloads elsewhere and referring to them from the event.
    #[error("event at index {index} is {size_bytes} bytes, more than the limit of {max_bytes}")]
    EventTooLarge {
        /// The event's index in the append, from 0.
        index: usize,
        /// Its size.
        size_bytes: usize,
        /// The limit.
        max_bytes: usize,
    },

    /// An append is larger than [`Limits::append_size_bytes_max`](crate::Limits) or carries
    /// more than [`Limits::EVENTS_PER_APPEND_MAX`](crate::Limits::EVENTS_PER_APPEND_MAX) events.
    /// Nothing was written.
    ///
    /// Handle by splitting the append, if atomicity across the parts is not needed.
    #[error(
        "append of {event_count} events and {size_bytes} bytes exceeds the limits of \
         {max_events} events and {max_bytes} bytes"
    )]
    AppendTooLarge {
        /// The append's total size.
        size_bytes: usize,
        /// How many events it carries.
        event_count: usize,
        /// The byte limit.
        max_bytes: usize,
        /// The event-count limit.
        max_events: usize,
    },

    /// The request is malformed (an empty append, the same event id twice in one append, a
    /// regex that does not compile, deleting a metadata stream...). Nothing was written.
    ///
    /// Handle as a bug in the caller; retrying the same request cannot succeed.
    #[error("invalid request: {reason}")]
    InvalidRequest {
        /// What is wrong with it.
        reason: String,
    },

    /// Stored stream metadata (`$$stream`) is not the JSON object the rules need.
    ///
    /// Handle by writing valid metadata; see [`StreamMetadata`](crate::StreamMetadata).
    #[error("invalid stream metadata: {reason}")]
    InvalidMetadata {
        /// What is wrong with it.
        reason: String,
    },

    /// The caller may not do this (a server's stream ACLs). Nothing was written.
    ///
    /// Handle as a permission problem: retrying as the same user cannot succeed.
    #[error("access denied: {operation} on {target}")]
    AccessDenied {
        /// What was attempted: `read`, `write`, `delete`, `metadata read`, `metadata write`.
        operation: &'static str,
        /// The stream, or `$all`.
        target: String,
    },

    /// A server did not accept the caller's credentials: none were given, or the user is
    /// unknown, disabled or the password wrong (servers do not say which). Nothing was done.
    ///
    /// Handle by fixing the credentials; retrying with the same ones cannot succeed.
    #[error("not authenticated: {reason}")]
    Unauthenticated {
        /// What the server said, and what to check.
        reason: String,
    },

    /// Bytes on disk or on the wire do not decode. The store refuses to guess.
    ///
    /// Handle by stopping and alerting an operator: it means damaged storage or a bug.
    #[error("corrupt data: {detail}")]
    Corrupt {
        /// Where and what.
        detail: String,
    },

    /// The operating system failed an I/O call. An append that fails this way was not
    /// acknowledged: it may or may not be durable, so reopen the store and read before retrying
    /// (retrying with the same event ids and an exact expected revision is safe: it is
    /// idempotent).
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),

    /// The store cannot take this request now: it is closed, or it failed a write or fsync
    /// earlier and refuses further writes until it is reopened (fsync errors cannot be retried
    /// safely).
    ///
    /// Handle by reopening the store (or by failing over), not by retrying in a loop.
    #[error("store unavailable: {reason}")]
    Unavailable {
        /// Why.
        reason: String,
    },
}

impl Error {
    /// A short, stable name for the variant, for metrics and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::WrongExpectedRevision { .. } => "wrong_expected_revision",
            Error::StreamNotFound { .. } => "stream_not_found",
            Error::StreamDeleted { .. } => "stream_deleted",
            Error::InvalidStreamName { .. } => "invalid_stream_name",
            Error::InvalidEvent { .. } => "invalid_event",
            Error::EventTooLarge { .. } => "event_too_large",
            Error::AppendTooLarge { .. } => "append_too_large",
            Error::InvalidRequest { .. } => "invalid_request",
            Error::InvalidMetadata { .. } => "invalid_metadata",
            Error::AccessDenied { .. } => "access_denied",
            Error::Unauthenticated { .. } => "unauthenticated",
            Error::Corrupt { .. } => "corrupt",
            Error::Io(_) => "io",
            Error::Unavailable { .. } => "unavailable",
        }
    }

    /// Shorthand for [`Error::InvalidRequest`].
    pub fn invalid_request(reason: impl Into<String>) -> Error {
        Error::InvalidRequest {
            reason: reason.into(),
        }
    }
}

impl From<serde_json::Error> for Error {
    /// Encoding a value as JSON event data failed (a map with non-string keys, say).
    fn from(error: serde_json::Error) -> Error {
        Error::invalid_request(format!("cannot encode event data as JSON: {error}"))
    }
}
