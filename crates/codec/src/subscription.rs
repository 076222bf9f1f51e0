//! Typed subscriptions: a catch-up [`Subscription`] whose events come out decoded through an
//! [`EventSchema`], upcast to today's shape, so subscribers read the same Rust values as
//! aggregates do.

use std::sync::Arc;

use factum_core::{
    EventStore, Position, RecordedEvent, StreamName, SubscribeToAllOptions,
    SubscribeToStreamOptions, Subscription, SubscriptionMessage,
};

use crate::DomainEvent;
use crate::error::CodecError;
use crate::schema::EventSchema;

/// A decoded event with its stored envelope, as a [`TypedSubscription`] delivers it (see its
/// example).
///
/// `recorded` is the event exactly as stored: its stream, revision, position, recorded time,
/// metadata and tags, and also its stored schema version and data (the shape it was written
/// in, before upcasting). `event` is that data brought to the current version and decoded.
#[derive(Debug, Clone, PartialEq)]
pub struct TypedEvent<E> {
    /// The event, upcast to its type's current schema version.
    pub event: E,
    /// The stored event it was decoded from.
    pub recorded: RecordedEvent,
}

/// What a [`TypedSubscription`] delivers (see its example).
#[derive(Debug, Clone, PartialEq)]
pub enum TypedMessage<E> {
    /// The next event of the schema's types, decoded.
    Event(TypedEvent<E>),
    /// An event the schema does not decode: a type it [ignores](EventSchema::ignore), an
    /// unknown type or version under [`UnknownPolicy::Skip`](crate::UnknownPolicy::Skip), or a
    /// system event. It is passed on so that a subscriber can still save its position (or
    /// revision) as progress.
    Skipped(RecordedEvent),
    /// As [`SubscriptionMessage::Checkpoint`]: nothing more to deliver up to this position.
    Checkpoint(Position),
    /// As [`SubscriptionMessage::CaughtUp`].
    CaughtUp,
    /// As [`SubscriptionMessage::FellBehind`].
    FellBehind,
}

/// Why a [`TypedSubscription`] ended.
///
/// ```
/// use factum_codec::{CodecError, TypedSubscriptionError};
/// use factum_core::Position;
///
/// let error = TypedSubscriptionError::Decode {
///     stream: "order-1".into(),
///     revision: 3,
///     position: Position(42),
///     source: CodecError::UnknownEventType {
///         event_type: "OrderLost".into(),
///         schema_version: 2,
///     },
/// };
/// let text = error.to_string();
/// assert!(text.starts_with(r#"cannot decode the event at position 42 (stream "order-1", revision 3)"#));
/// assert!(text.contains(r#"unknown event type "OrderLost" (schema version 2)"#));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TypedSubscriptionError {
    /// The underlying subscription failed (the store, a deleted stream, ...).
    #[error("subscription: {0}")]
    Store(#[from] factum_core::Error),
    /// An event did not decode, and the schema's policy says to fail. `source` names its type
    /// and schema version; the subscription ended before delivering it, so a subscriber that
    /// saved its progress resumes at this event once the code is fixed.
    #[error(
        "cannot decode the event at position {position} (stream {stream:?}, revision \
         {revision}): {source}"
    )]
    Decode {
        /// The event's stream.
        stream: String,
        /// The event's revision in its stream.
        revision: u64,
        /// The event's position in `$all`.
        position: Position,
        /// What decoding said.
        source: CodecError,
    },
}

/// A catch-up subscription that decodes its events through an [`EventSchema`]: every event of
/// the schema's types comes out upcast to its current version, with its stored envelope.
///
/// Checkpoints, caught-up and fell-behind messages pass through unchanged. Events the schema
/// skips (ignored types; unknown ones under [`UnknownPolicy::Skip`](crate::UnknownPolicy::Skip);
/// system events, which never belong to a domain schema) arrive as [`TypedMessage::Skipped`].
/// An event that fails to decode ends the subscription with [`TypedSubscriptionError::Decode`],
/// naming the event's type and schema version.
///
/// ```
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use std::sync::Arc;
///
/// use factum_codec::{DomainEvent, EventSchema, TypedMessage, TypedSubscription};
/// use factum_core::{EventStore, ExpectedRevision, ProposedEvent, StreamName};
/// use factum_core::SubscribeToAllOptions;
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
/// // Version 1 stored dollars.
/// let schema = EventSchema::<AccountEvent>::json().upcast("MoneyDeposited", 1, |mut data| {
///     let dollars = data["amount"].as_u64().ok_or("amount is missing")?;
///     data["amount_cents"] = (dollars * 100).into();
///     Ok(data)
/// });
///
/// let store: Arc<dyn EventStore> = Arc::new(factum_memory::MemoryStore::new());
/// let old = ProposedEvent::json("MoneyDeposited", &serde_json::json!({"amount": 5}))?;
/// store.append(&StreamName::new("account-1")?, ExpectedRevision::NoStream, vec![old]).await?;
///
/// let mut subscription =
///     TypedSubscription::to_all(store, SubscribeToAllOptions::default(), schema).await?;
/// match subscription.next().await {
///     Some(Ok(TypedMessage::Event(typed))) => {
///         assert_eq!(typed.event, AccountEvent::MoneyDeposited { amount_cents: 500 });
///         assert_eq!(typed.recorded.schema_version, 1);
///     }
///     other => panic!("expected the deposit, got {other:?}"),
/// }
/// # Ok(())
/// # }
/// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(demo()).unwrap();
/// ```
pub struct TypedSubscription<E> {
    inner: Subscription,
    schema: EventSchema<E>,
    ended: bool,
}

impl<E: DomainEvent> TypedSubscription<E> {
    /// Decodes the events of `subscription` through `schema`.
    pub fn new(subscription: Subscription, schema: EventSchema<E>) -> TypedSubscription<E> {
        TypedSubscription {
            inner: subscription,
            schema,
            ended: false,
        }
    }

    /// Subscribes to one stream (see [`Subscription::to_stream`]), decoding through `schema`.
    pub async fn to_stream(
        store: Arc<dyn EventStore>,
        stream: StreamName,
        options: SubscribeToStreamOptions,
        schema: EventSchema<E>,
    ) -> factum_core::Result<TypedSubscription<E>> {
        let inner = Subscription::to_stream(store, stream, options).await?;
        Ok(TypedSubscription::new(inner, schema))
    }

    /// Subscribes to `$all` (see [`Subscription::to_all`]), decoding through `schema`.
    pub async fn to_all(
        store: Arc<dyn EventStore>,
        options: SubscribeToAllOptions,
        schema: EventSchema<E>,
    ) -> factum_core::Result<TypedSubscription<E>> {
        let inner = Subscription::to_all(store, options).await?;
        Ok(TypedSubscription::new(inner, schema))
    }

    /// The schema events are decoded through.
    pub fn schema(&self) -> &EventSchema<E> {
        &self.schema
    }

    /// The next message: waits for new events when caught up. `None` after the subscription
    /// ended with an error. Cancelling the future loses nothing, as for
    /// [`Subscription::next`].
    pub async fn next(&mut self) -> Option<Result<TypedMessage<E>, TypedSubscriptionError>> {
        if self.ended {
            return None;
        }
        let message = match self.inner.next().await? {
            Ok(message) => message,
            Err(error) => {
                self.ended = true;
                return Some(Err(error.into()));
            }
        };
        Some(Ok(match message {
            SubscriptionMessage::Event(recorded) => {
                if recorded.is_system() {
                    return Some(Ok(TypedMessage::Skipped(recorded)));
                }
                match self.schema.decode(&recorded) {
                    Ok(Some(event)) => TypedMessage::Event(TypedEvent { event, recorded }),
                    Ok(None) => TypedMessage::Skipped(recorded),
                    Err(source) => {
                        self.ended = true;
                        return Some(Err(TypedSubscriptionError::Decode {
                            stream: recorded.stream.to_string(),
                            revision: recorded.revision,
                            position: recorded.position,
                            source,
                        }));
                    }
                }
            }
            SubscriptionMessage::Checkpoint(position) => TypedMessage::Checkpoint(position),
            SubscriptionMessage::CaughtUp => TypedMessage::CaughtUp,
            SubscriptionMessage::FellBehind => TypedMessage::FellBehind,
        }))
    }
}

impl<E> std::fmt::Debug for TypedSubscription<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TypedSubscription")
            .field("ended", &self.ended)
            .finish_non_exhaustive()
    }
}
