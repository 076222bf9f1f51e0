//! Typed projections: a projection written over decoded domain events, upcast to today's shape
//! through an [`EventSchema`], instead of raw stored events. An adapter turns one into a plain
//! [`Projection`], so the runner, the read models and the checkpoints work unchanged.

use factum_codec::{DomainEvent, EventSchema};
use factum_core::{EventFilter, RecordedEvent};

use crate::error::{ProjectionError, Result};
use crate::projection::Projection;

/// A projection over typed events: `apply` receives each event decoded through the schema
/// given to [`TypedProjection::with_schema`], upcast to its type's current schema version,
/// together with its stored envelope (stream, revision, position, recorded time, metadata).
///
/// Everything else is as for [`Projection`]: events arrive once each in `$all` order, in
/// batches, and an error rolls the batch back. Events the schema skips (types it
/// [ignores](EventSchema::ignore), unknown ones under
/// [`UnknownPolicy::Skip`](factum_codec::UnknownPolicy::Skip)) are passed over, their position
/// still counted in the checkpoint. An event that does not decode stops the runner with
/// [`ProjectionError::Decode`]: with the strict default policy that includes any event type
/// the schema does not know, so set a [`TypedProjection::filter`] that selects only the
/// projection's streams or types, or skip unknown events.
///
/// ```
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use std::collections::BTreeMap;
/// use std::sync::Arc;
/// use std::time::Duration;
///
/// use factum_codec::{DomainEvent, EventSchema};
/// use factum_core::{EventFilter, EventStore, ExpectedRevision, ProposedEvent, RecordedEvent};
/// use factum_core::StreamName;
/// use factum_projection::{MemoryReadModel, ProjectionError, ProjectionRunner, TypedProjection};
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Debug, PartialEq, Serialize, Deserialize)]
/// enum AccountEvent { MoneyDeposited { amount_cents: u64 } }
///
/// impl DomainEvent for AccountEvent {
///     const EVENT_TYPES: &'static [(&'static str, u32)] = &[("MoneyDeposited", 2)];
///     fn event_type(&self) -> &'static str { "MoneyDeposited" }
/// }
///
/// /// Deposits per stream, in cents.
/// struct Deposits;
///
/// impl TypedProjection for Deposits {
///     type Event = AccountEvent;
///     type Model = BTreeMap<String, u64>;
///
///     fn name(&self) -> &str { "deposits" }
///
///     fn filter(&self) -> Option<EventFilter> {
///         Some(EventFilter::stream_prefix("account-"))
///     }
///
///     fn init(&mut self, _model: &mut Self::Model) -> Result<(), ProjectionError> { Ok(()) }
///
///     fn clear(&mut self, model: &mut Self::Model) -> Result<(), ProjectionError> {
///         model.clear();
///         Ok(())
///     }
///
///     fn apply(
///         &mut self,
///         model: &mut Self::Model,
///         envelope: &RecordedEvent,
///         event: &AccountEvent,
///     ) -> Result<(), ProjectionError> {
///         let AccountEvent::MoneyDeposited { amount_cents } = event;
///         *model.entry(envelope.stream.to_string()).or_default() += amount_cents;
///         Ok(())
///     }
/// }
///
/// // Version 1 stored dollars.
/// let schema = EventSchema::<AccountEvent>::json().upcast("MoneyDeposited", 1, |mut data| {
///     let dollars = data["amount"].as_u64().ok_or("amount is missing")?;
///     data["amount_cents"] = (dollars * 100).into();
///     Ok(data)
/// });
///
/// let store: Arc<dyn EventStore> = Arc::new(factum_memory::MemoryStore::new());
/// let events = vec![
///     ProposedEvent::json("MoneyDeposited", &serde_json::json!({"amount": 5}))?,
///     schema.encode(&AccountEvent::MoneyDeposited { amount_cents: 250 })?,
/// ];
/// store.append(&StreamName::new("account-1")?, ExpectedRevision::NoStream, events).await?;
///
/// let model = MemoryReadModel::new(Deposits.with_schema(schema))?;
/// let handle = model.handle();
/// let mut runner = ProjectionRunner::new(store, model)?;
/// runner.run_until_caught_up(Duration::from_secs(5)).await?;
/// assert_eq!(handle.state()["account-1"], 750);
/// # Ok(())
/// # }
/// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(demo()).unwrap();
/// ```
pub trait TypedProjection: Send + 'static {
    /// The domain events the projection reads.
    type Event: DomainEvent;

    /// What the read model is written through (see [`Projection::Model`]).
    type Model: Send + 'static;

    /// A stable name, unique among the projections sharing a read-model database (see
    /// [`Projection::name`]).
    fn name(&self) -> &str;

    /// Which events the projection wants (see [`Projection::filter`]); `None` for all
    /// non-system events, which under the strict default policy means every event type in
    /// `$all` must be one the schema knows.
    fn filter(&self) -> Option<EventFilter> {
        None
    }

    /// Creates the read model's structure if it is missing (see [`Projection::init`]).
    fn init(&mut self, model: &mut Self::Model) -> Result<()>;

    /// Removes everything the projection wrote (see [`Projection::clear`]).
    fn clear(&mut self, model: &mut Self::Model) -> Result<()>;

    /// Applies one decoded event; `envelope` is the event as stored (its `schema_version` and
    /// `data` are those it was written with, before upcasting).
    fn apply(
        &mut self,
        model: &mut Self::Model,
        envelope: &RecordedEvent,
        event: &Self::Event,
    ) -> Result<()>;

    /// This projection, decoding through `schema`: a [`Projection`] for the runner and the read
    /// models.
    fn with_schema(self, schema: EventSchema<Self::Event>) -> TypedProjectionAdapter<Self>
    where
        Self: Sized,
    {
        TypedProjectionAdapter::new(self, schema)
    }
}

/// A [`TypedProjection`] with its [`EventSchema`]: a [`Projection`] that decodes each event
/// before handing it on. Made by [`TypedProjection::with_schema`] (see the
/// [`TypedProjection`] example for a full run) or [`TypedProjectionAdapter::new`].
///
/// ```
/// use factum_codec::{DomainEvent, EventSchema};
/// use factum_core::RecordedEvent;
/// use factum_projection::{Projection, ProjectionError, TypedProjection, TypedProjectionAdapter};
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
/// /// Counts pings.
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
/// let adapter = TypedProjectionAdapter::new(Pings, EventSchema::json().skip_unknown());
/// assert_eq!(Projection::name(&adapter), "pings");
/// assert_eq!(adapter.schema().unknown_policy(), factum_codec::UnknownPolicy::Skip);
/// ```
pub struct TypedProjectionAdapter<P: TypedProjection> {
    projection: P,
    schema: EventSchema<P::Event>,
}

impl<P: TypedProjection> TypedProjectionAdapter<P> {
    /// `projection`, decoding through `schema`.
    pub fn new(projection: P, schema: EventSchema<P::Event>) -> TypedProjectionAdapter<P> {
        TypedProjectionAdapter { projection, schema }
    }

    /// The typed projection.
    pub fn projection(&self) -> &P {
        &self.projection
    }

    /// The schema events are decoded through.
    pub fn schema(&self) -> &EventSchema<P::Event> {
        &self.schema
    }
}

impl<P: TypedProjection> std::fmt::Debug for TypedProjectionAdapter<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TypedProjectionAdapter")
            .field("name", &self.projection.name())
            .field("schema", &self.schema)
            .finish()
    }
}

impl<P: TypedProjection> Projection for TypedProjectionAdapter<P> {
    type Model = P::Model;

    fn name(&self) -> &str {
        self.projection.name()
    }

    fn filter(&self) -> Option<EventFilter> {
        self.projection.filter()
    }

    fn init(&mut self, model: &mut Self::Model) -> Result<()> {
        self.projection.init(model)
    }

    fn clear(&mut self, model: &mut Self::Model) -> Result<()> {
        self.projection.clear(model)
    }

    fn apply(&mut self, model: &mut Self::Model, event: &RecordedEvent) -> Result<()> {
        // The runner never delivers system events; they are no domain event of any schema.
        if event.is_system() {
            return Ok(());
        }
        match self.schema.decode(event) {
            Ok(Some(decoded)) => self.projection.apply(model, event, &decoded),
            Ok(None) => Ok(()),
            Err(source) => Err(ProjectionError::Decode {
                projection: self.projection.name().to_owned(),
                position: event.position,
                source,
            }),
        }
    }
}
