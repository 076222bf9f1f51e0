//! An in-memory read model, for tests: the state and its checkpoint live in the process and
//! are gone when it ends.

use std::sync::{Arc, Mutex, PoisonError};

use factum_core::{EventFilter, Position, RecordedEvent};

use crate::error::Result;
use crate::projection::{Checkpoint, Projection, ReadModel};

/// The state and checkpoint, swapped together under one lock.
struct Inner<S> {
    state: S,
    checkpoint: Checkpoint,
}

/// A read model kept in memory: a projection's `Model` state plus its checkpoint.
///
/// Each batch is applied to a copy of the state, which replaces the state (with the new
/// checkpoint) only if every event applied: a failing batch leaves no trace, as in SQLite.
/// Copying costs the state's size per batch, which is fine for tests. Read the state while the
/// runner owns the read model through a [`MemoryReadModelHandle`].
///
/// ```
/// # use factum_core::RecordedEvent;
/// # use factum_projection::{Projection, ProjectionError};
/// # struct Count;
/// # impl Projection for Count {
/// #     type Model = u64;
/// #     fn name(&self) -> &str { "count" }
/// #     fn init(&mut self, _: &mut u64) -> Result<(), ProjectionError> { Ok(()) }
/// #     fn clear(&mut self, model: &mut u64) -> Result<(), ProjectionError> { *model = 0; Ok(()) }
/// #     fn apply(&mut self, model: &mut u64, _: &RecordedEvent) -> Result<(), ProjectionError> {
/// #         *model += 1;
/// #         Ok(())
/// #     }
/// # }
/// use factum_projection::MemoryReadModel;
///
/// let model = MemoryReadModel::new(Count).unwrap();
/// let handle = model.handle();
/// assert_eq!(handle.state(), 0);
/// ```
pub struct MemoryReadModel<P: Projection> {
    projection: P,
    inner: Arc<Mutex<Inner<P::Model>>>,
}

/// A cheap, cloneable view of a [`MemoryReadModel`]'s state, usable while a runner drives it.
pub struct MemoryReadModelHandle<S> {
    inner: Arc<Mutex<Inner<S>>>,
}

impl<S> Clone for MemoryReadModelHandle<S> {
    fn clone(&self) -> Self {
        MemoryReadModelHandle {
            inner: self.inner.clone(),
        }
    }
}

impl<S: Clone> MemoryReadModelHandle<S> {
    /// A copy of the current state.
    pub fn state(&self) -> S {
        lock(&self.inner).state.clone()
    }

    /// Runs `read` on the current state without copying it.
    pub fn read<T>(&self, read: impl FnOnce(&S) -> T) -> T {
        read(&lock(&self.inner).state)
    }

    /// The checkpoint that goes with the current state.
    pub fn checkpoint(&self) -> Checkpoint {
        lock(&self.inner).checkpoint
    }
}

impl<P> MemoryReadModel<P>
where
    P: Projection,
    P::Model: Clone + Default + Send + 'static,
{
    /// An empty read model for `projection`, at the start of `$all`.
    pub fn new(mut projection: P) -> Result<MemoryReadModel<P>> {
        let mut state = P::Model::default();
        projection.init(&mut state)?;
        Ok(MemoryReadModel {
            projection,
            inner: Arc::new(Mutex::new(Inner {
                state,
                checkpoint: Checkpoint::default(),
            })),
        })
    }

    /// A view of the state for readers.
    pub fn handle(&self) -> MemoryReadModelHandle<P::Model> {
        MemoryReadModelHandle {
            inner: self.inner.clone(),
        }
    }
}

impl<P> ReadModel for MemoryReadModel<P>
where
    P: Projection,
    P::Model: Clone + Default + Send + 'static,
{
    fn name(&self) -> &str {
        self.projection.name()
    }

    fn filter(&self) -> Option<EventFilter> {
        self.projection.filter()
    }

    fn checkpoint(&mut self) -> Result<Checkpoint> {
        Ok(lock(&self.inner).checkpoint)
    }

    fn commit(&mut self, events: &[RecordedEvent], position: Position) -> Result<Checkpoint> {
        let (mut state, checkpoint) = {
            let inner = lock(&self.inner);
            (inner.state.clone(), inner.checkpoint)
        };
        let fresh = fresh_events(events, checkpoint.position);
        for event in fresh {
            self.projection.apply(&mut state, event)?;
        }
        let checkpoint = checkpoint.advanced(fresh, position);
        let mut inner = lock(&self.inner);
        inner.state = state;
        inner.checkpoint = checkpoint;
        Ok(checkpoint)
    }

    fn reset(&mut self) -> Result<()> {
        let mut state = lock(&self.inner).state.clone();
        self.projection.clear(&mut state)?;
        self.projection.init(&mut state)?;
        let mut inner = lock(&self.inner);
        inner.state = state;
        inner.checkpoint = Checkpoint::default();
        Ok(())
    }
}

/// The events of `events` after `checkpoint`: what a batch delivered again must skip.
pub(crate) fn fresh_events(events: &[RecordedEvent], checkpoint: Position) -> &[RecordedEvent] {
    let first_fresh = events.partition_point(|event| event.position <= checkpoint);
    &events[first_fresh..]
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
