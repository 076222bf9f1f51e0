//! What can go wrong while projecting, and how callers handle each case.

use factum_core::Position;

/// An error of a projection, its read model or its runner.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProjectionError {
    /// The event store failed (reading `$all`, or the store was closed). The runner stops in
    /// [`RunState::Failed`](crate::RunState::Failed); start it again once the store is back:
    /// it resumes from its checkpoint.
    #[error("event store: {0}")]
    Store(#[from] factum_core::Error),
    /// SQLite failed. The batch being committed was rolled back with its checkpoint, so
    /// restarting the runner is always safe.
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The projection could not handle an event (bad data, say). Its batch was rolled back;
    /// the runner stops in [`RunState::Failed`](crate::RunState::Failed) and, once the
    /// projection is fixed, resumes at this event.
    #[error("projection {projection} failed on the event at position {position}: {reason}")]
    Apply {
        /// The projection's name.
        projection: String,
        /// The event's position in `$all`.
        position: Position,
        /// Why.
        reason: String,
    },
    /// A [typed projection](crate::TypedProjection) met an event its schema cannot decode: an
    /// unknown event type or schema version under the strict
    /// [`UnknownPolicy::Fail`](factum_codec::UnknownPolicy::Fail), a failing upcaster, or data
    /// that does not fit the type (`source` names the type and version). Its batch was rolled
    /// back and the runner stops in [`RunState::Failed`](crate::RunState::Failed); once the
    /// schema is fixed (an upcaster added, the type ignored, or unknown events skipped), it
    /// resumes at this event.
    #[error("projection {projection} cannot decode the event at position {position}: {source}")]
    Decode {
        /// The projection's name.
        projection: String,
        /// The event's position in `$all`.
        position: Position,
        /// What decoding said.
        source: factum_codec::CodecError,
    },
    /// [`ProjectionRunner::wait_for`](crate::ProjectionRunner::wait_for) gave up: the
    /// projection had not processed `position` in time. Retry, or read with a staler view.
    #[error("timed out waiting for position {position}: the projection is at {checkpoint}")]
    Timeout {
        /// The position waited for.
        position: Position,
        /// The projection's checkpoint when the wait gave up.
        checkpoint: Position,
    },
    /// The runner stopped on an earlier error (its message), or was stopped, while a caller
    /// was waiting for it.
    #[error("the projection is not running: {0}")]
    NotRunning(String),
}

impl ProjectionError {
    /// An [`ProjectionError::Apply`] error for `event` in `projection`.
    pub fn apply(
        projection: &str,
        event: &factum_core::RecordedEvent,
        reason: impl std::fmt::Display,
    ) -> ProjectionError {
        ProjectionError::Apply {
            projection: projection.to_owned(),
            position: event.position,
            reason: reason.to_string(),
        }
    }
}

/// The result type of this crate.
pub type Result<T, E = ProjectionError> = std::result::Result<T, E>;
