//! What can go wrong while projecting, and how callers handle each case.

use factum_core::Position;

/// An error of a projection, its read model or its runner.
///
/// A runner that stops on an error keeps it in its status
/// ([`ProjectionStatus::error`](crate::ProjectionStatus::error)) and, for the errors a
/// projection causes ([`Apply`](ProjectionError::Apply), [`Decode`](ProjectionError::Decode)),
/// hands it to every caller waiting on it, so callers match on what went wrong:
///
/// ```
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use std::sync::Arc;
/// use std::time::Duration;
///
/// use factum_codec::{CodecError, DomainEvent, EventSchema};
/// use factum_core::{EventStore, ExpectedRevision, ProposedEvent, RecordedEvent, StreamName};
/// use factum_projection::{MemoryReadModel, ProjectionError, ProjectionRunner, TypedProjection};
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Debug, Serialize, Deserialize)]
/// enum PingEvent { Pinged }
///
/// impl DomainEvent for PingEvent {
///     const EVENT_TYPES: &'static [(&'static str, u32)] = &[("Pinged", 1)];
///     fn event_type(&self) -> &'static str { "Pinged" }
/// }
///
/// /// Counts pings; with the strict default policy, any other event stops it.
/// struct Pings;
///
/// impl TypedProjection for Pings {
///     type Event = PingEvent;
///     type Model = u64;
///     fn name(&self) -> &str { "pings" }
///     fn init(&mut self, _: &mut u64) -> Result<(), ProjectionError> { Ok(()) }
///     fn clear(&mut self, count: &mut u64) -> Result<(), ProjectionError> {
///         *count = 0;
///         Ok(())
///     }
///     fn apply(&mut self, count: &mut u64, _: &RecordedEvent, _: &PingEvent)
///         -> Result<(), ProjectionError> {
///         *count += 1;
///         Ok(())
///     }
/// }
///
/// let store: Arc<dyn EventStore> = Arc::new(factum_memory::MemoryStore::new());
/// let pong = ProposedEvent::json("Ponged", &serde_json::json!({}))?;
/// let written = store.append(&StreamName::new("ping-1")?, ExpectedRevision::Any, vec![pong]).await?;
///
/// let model = MemoryReadModel::new(Pings.with_schema(EventSchema::json()))?;
/// let mut runner = ProjectionRunner::new(store, model)?;
/// match runner.run_until_caught_up(Duration::from_secs(5)).await {
///     Err(ProjectionError::Decode {
///         position,
///         source: CodecError::UnknownEventType { event_type, .. },
///         ..
///     }) => {
///         assert_eq!(position, written.position);
///         assert_eq!(event_type, "Ponged");
///     }
///     other => panic!("expected a decode error, got {other:?}"),
/// }
/// assert!(matches!(
///     runner.status().error.as_deref(),
///     Some(ProjectionError::Decode { .. })
/// ));
/// # Ok(())
/// # }
/// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(demo()).unwrap();
/// ```
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
    /// The runner was stopped (or lost its read model to a panic) while a caller was waiting
    /// for it, or it stopped on a store or SQLite error (its message; the error itself is in
    /// [`ProjectionStatus::error`](crate::ProjectionStatus::error)). Runners that stop on an
    /// [`Apply`](ProjectionError::Apply) or [`Decode`](ProjectionError::Decode) error hand
    /// waiting callers that error instead.
    #[error("the projection is not running: {0}")]
    NotRunning(String),
}

impl ProjectionError {
    /// The same error again, for a second caller: the runner keeps the error it stopped on
    /// and hands each waiting caller its own. Errors that cannot be copied (a store or SQLite
    /// error) come back as [`ProjectionError::NotRunning`] with their message.
    pub(crate) fn reissue(&self) -> ProjectionError {
        match self {
            ProjectionError::Apply {
                projection,
                position,
                reason,
            } => ProjectionError::Apply {
                projection: projection.clone(),
                position: *position,
                reason: reason.clone(),
            },
            ProjectionError::Decode {
                projection,
                position,
                source,
            } => ProjectionError::Decode {
                projection: projection.clone(),
                position: *position,
                source: source.clone(),
            },
            ProjectionError::Timeout {
                position,
                checkpoint,
            } => ProjectionError::Timeout {
                position: *position,
                checkpoint: *checkpoint,
            },
            ProjectionError::NotRunning(reason) => ProjectionError::NotRunning(reason.clone()),
            other @ (ProjectionError::Store(_) | ProjectionError::Sqlite(_)) => {
                ProjectionError::NotRunning(other.to_string())
            }
        }
    }

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
