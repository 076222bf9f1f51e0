//! The two traits of a projection: what it does with events ([`Projection`]) and where its read
//! model and checkpoint live ([`ReadModel`]), plus the checkpoint they share.

use factum_core::{EventFilter, Position, RecordedEvent, Timestamp};

use crate::error::Result;

/// A projection: which events of `$all` it wants and how each one changes its read model.
///
/// Events arrive once each, in `$all` order, in batches; system events are never delivered.
/// `apply` runs inside the read model's batch (a SQLite transaction, or a copy of the in-memory
/// state): if it returns an error, the whole batch and its checkpoint are discarded, so a
/// projection never needs to undo anything itself.
///
/// `Model` says what the projection writes to: a [`rusqlite::Connection`] for
/// [`SqliteReadModel`](crate::SqliteReadModel) (with a transaction already open: do not commit
/// it), or a plain state type for [`MemoryReadModel`](crate::MemoryReadModel).
///
/// ```
/// use factum_core::{EventFilter, RecordedEvent};
/// use factum_projection::{Projection, ProjectionError};
///
/// /// Counts events per type, in memory.
/// struct TypeCounts;
///
/// impl Projection for TypeCounts {
///     type Model = std::collections::BTreeMap<String, u64>;
///
///     fn name(&self) -> &str {
///         "type_counts"
///     }
///
///     fn filter(&self) -> Option<EventFilter> {
///         Some(EventFilter::stream_prefix("account-"))
///     }
///
///     fn init(&mut self, _model: &mut Self::Model) -> Result<(), ProjectionError> {
///         Ok(())
///     }
///
///     fn clear(&mut self, model: &mut Self::Model) -> Result<(), ProjectionError> {
///         model.clear();
///         Ok(())
///     }
///
///     fn apply(&mut self, model: &mut Self::Model, event: &RecordedEvent) -> Result<(), ProjectionError> {
///         *model.entry(event.event_type.to_string()).or_default() += 1;
///         Ok(())
///     }
/// }
/// ```
pub trait Projection: Send + 'static {
    /// What the read model is written through.
    type Model: Send + 'static;

    /// A stable name, unique among the projections sharing a read-model database: it keys the
    /// checkpoint.
    fn name(&self) -> &str;

    /// Which events the projection wants (by stream prefix, event type, ...); `None` for all
    /// non-system events. Filtering happens in the store, before events are read out.
    fn filter(&self) -> Option<EventFilter> {
        None
    }

    /// Creates the read model's structure if it is missing (SQL `CREATE TABLE IF NOT EXISTS`).
    /// Runs when a read model opens and after each reset; must be idempotent.
    fn init(&mut self, model: &mut Self::Model) -> Result<()>;

    /// Removes everything the projection wrote, so a rebuild starts from nothing.
    fn clear(&mut self, model: &mut Self::Model) -> Result<()>;

    /// Applies one event. Return [`ProjectionError::apply`](crate::ProjectionError::apply) for
    /// an event it cannot handle: the batch is rolled back and the runner stops there.
    fn apply(&mut self, model: &mut Self::Model, event: &RecordedEvent) -> Result<()>;
}

/// How far a projection has got: stored with its read model, in the same transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Checkpoint {
    /// Every event of `$all` at or before this position has been processed (or skipped by the
    /// filter). `Position::START` for a new or reset projection.
    pub position: Position,
    /// The recorded time of the last event the projection processed, if any: how "seconds
    /// behind" is computed.
    pub last_recorded_at: Option<Timestamp>,
    /// How many events the projection has processed since it was created or reset.
    pub processed_events: u64,
}

impl Checkpoint {
    /// The checkpoint after `events` (already filtered to those after `self.position`) and a
    /// subscription position `position`.
    pub fn advanced(self, events: &[RecordedEvent], position: Position) -> Checkpoint {
        Checkpoint {
            position: self.position.max(position),
            last_recorded_at: events
                .last()
                .map(|event| event.recorded_at)
                .or(self.last_recorded_at),
            processed_events: self.processed_events + events.len() as u64,
        }
    }
}

/// Where a projection's read model and checkpoint live, and how a batch commits: the changes of
/// all its events and the new checkpoint together or not at all.
///
/// The [`ProjectionRunner`](crate::ProjectionRunner) drives a `ReadModel`. This crate has two:
/// [`SqliteReadModel`](crate::SqliteReadModel) (durable) and
/// [`MemoryReadModel`](crate::MemoryReadModel) (for tests). Methods block (SQLite does I/O);
/// the runner calls them off the async threads.
///
/// The runner is the usual caller; driven by hand, a batch and its checkpoint go together:
///
/// ```
/// use factum_core::{Position, RecordedEvent};
/// use factum_projection::{Checkpoint, MemoryReadModel, Projection, ProjectionError, ReadModel};
///
/// /// Counts events.
/// struct Count;
///
/// impl Projection for Count {
///     type Model = u64;
///     fn name(&self) -> &str { "count" }
///     fn init(&mut self, _: &mut u64) -> Result<(), ProjectionError> { Ok(()) }
///     fn clear(&mut self, count: &mut u64) -> Result<(), ProjectionError> {
///         *count = 0;
///         Ok(())
///     }
///     fn apply(&mut self, count: &mut u64, _: &RecordedEvent) -> Result<(), ProjectionError> {
///         *count += 1;
///         Ok(())
///     }
/// }
///
/// let mut model = MemoryReadModel::new(Count)?;
/// assert_eq!(model.checkpoint()?, Checkpoint::default());
///
/// // A batch the filter emptied only moves the checkpoint: positions up to 7 are done.
/// let checkpoint = model.commit(&[], Position(7))?;
/// assert_eq!(checkpoint.position, Position(7));
/// assert_eq!(checkpoint.processed_events, 0);
/// assert_eq!(model.checkpoint()?.position, Position(7));
///
/// model.reset()?;
/// assert_eq!(model.checkpoint()?.position, Position::START);
/// # Ok::<(), ProjectionError>(())
/// ```
pub trait ReadModel: Send + 'static {
    /// The projection's name.
    fn name(&self) -> &str;

    /// The projection's filter.
    fn filter(&self) -> Option<EventFilter>;

    /// The stored checkpoint.
    fn checkpoint(&mut self) -> Result<Checkpoint>;

    /// Applies `events` and stores the checkpoint `position`, atomically. Events at or before
    /// the stored checkpoint are skipped, so a batch delivered twice has its effect once. An
    /// empty batch only moves the checkpoint (the filter skipped everything up to `position`).
    /// Returns the new checkpoint.
    fn commit(&mut self, events: &[RecordedEvent], position: Position) -> Result<Checkpoint>;

    /// Clears the read model and its checkpoint, atomically.
    fn reset(&mut self) -> Result<()>;
}
