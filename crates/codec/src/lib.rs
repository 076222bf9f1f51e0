//! Typed domain events for Factum: how a Rust event type becomes stored bytes and back, and how
//! events stored in an old shape are brought up to date when they are read.
//!
//! - [`DomainEvent`]: your event enum names each variant's event type (past tense) and lists
//!   every type with its current schema version.
//! - [`Codec`]: how data is encoded. [`JsonCodec`] (serde) is the default; plug in your own.
//! - [`EventSchema`]: the codec, the upcasters registered per `(event type, schema version)` and
//!   the policy for events no code knows. It encodes events into [`ProposedEvent`]s and decodes
//!   [`RecordedEvent`]s, running the upcaster chain (v1 → v2 → v3) before deserializing. The same
//!   schema serves aggregates, projections and subscriptions.
//! - [`TypedSubscription`]: a catch-up subscription whose events come out decoded and upcast
//!   through an [`EventSchema`], with their stored envelope ([`TypedEvent`]).
//! - [`migrate_stream`]: copies a stream into a new one through the upcasters, for when a
//!   rewrite is wanted.
//!
//! # Example
//!
//! ```
//! use factum_codec::{DomainEvent, EventSchema};
//! use serde::{Deserialize, Serialize};
//!
//! // Variant names are the event types: the JSON codec stores `{"amount_cents":500}` as the
//! // data of a `MoneyDeposited` event.
//! #[derive(Debug, PartialEq, Serialize, Deserialize)]
//! enum AccountEvent {
//!     AccountOpened { owner: String },
//!     MoneyDeposited { amount_cents: u64 },
//! }
//!
//! impl DomainEvent for AccountEvent {
//!     const EVENT_TYPES: &'static [(&'static str, u32)] =
//!         &[("AccountOpened", 1), ("MoneyDeposited", 2)];
//!
//!     fn event_type(&self) -> &'static str {
//!         match self {
//!             AccountEvent::AccountOpened { .. } => "AccountOpened",
//!             AccountEvent::MoneyDeposited { .. } => "MoneyDeposited",
//!         }
//!     }
//! }
//!
//! // Version 1 of MoneyDeposited stored `amount` in dollars.
//! let schema = EventSchema::<AccountEvent>::json().upcast("MoneyDeposited", 1, |mut data| {
//!     let dollars = data["amount"].as_u64().ok_or("amount is missing")?;
//!     data["amount_cents"] = (dollars * 100).into();
//!     Ok(data)
//! });
//!
//! let proposed = schema.encode(&AccountEvent::MoneyDeposited { amount_cents: 250 })?;
//! assert_eq!(proposed.event_type, "MoneyDeposited");
//! assert_eq!(proposed.schema_version, 2);
//! assert_eq!(&proposed.data[..], br#"{"amount_cents":250}"#);
//!
//! let old = schema.decode_parts("MoneyDeposited", 1, br#"{"amount":5}"#.to_vec())?;
//! assert_eq!(old, Some(AccountEvent::MoneyDeposited { amount_cents: 500 }));
//! # Ok::<(), factum_codec::CodecError>(())
//! ```

mod codec;
mod error;
mod ids;
mod migrate;
mod schema;
mod subscription;

pub use codec::{Codec, JsonCodec, Payload};
pub use error::{CodecError, UpcastError};
pub use ids::derive_event_id;
pub use migrate::{MigrateError, MigrateReport, migrate_stream};
pub use schema::{EventSchema, UnknownPolicy, Upcasted};
pub use subscription::{TypedEvent, TypedMessage, TypedSubscription, TypedSubscriptionError};

#[doc(no_inline)]
pub use factum_core::{ProposedEvent, RecordedEvent};

/// A domain event type: usually an enum with one variant per event type.
///
/// Each variant is a fact named in the past tense (`MoneyDeposited`), and each event type has
/// a schema version, from 1, raised whenever its data shape changes (register an
/// [upcaster](EventSchema::upcast) from the old version when you do).
///
/// With the default [`JsonCodec`] the enum derives serde's `Serialize` and `Deserialize` in
/// serde's default (externally tagged) form, with variant names equal to the event types (use
/// `#[serde(rename = "...")]` where they differ). See also the [crate example](crate).
///
/// ```
/// use factum_codec::DomainEvent;
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Serialize, Deserialize)]
/// enum OrderEvent {
///     OrderPlaced { total_cents: u64 },
///     OrderShipped,
/// }
///
/// impl DomainEvent for OrderEvent {
///     // OrderPlaced changed shape twice: today's code writes version 3.
///     const EVENT_TYPES: &'static [(&'static str, u32)] =
///         &[("OrderPlaced", 3), ("OrderShipped", 1)];
///
///     fn event_type(&self) -> &'static str {
///         match self {
///             OrderEvent::OrderPlaced { .. } => "OrderPlaced",
///             OrderEvent::OrderShipped => "OrderShipped",
///         }
///     }
/// }
///
/// assert_eq!(OrderEvent::OrderPlaced { total_cents: 1 }.schema_version(), 3);
/// assert_eq!(OrderEvent::OrderShipped.schema_version(), 1);
/// assert_eq!(OrderEvent::current_version("OrderCancelled"), None);
/// ```
pub trait DomainEvent: Sized + Send + Sync + 'static {
    /// Every event type this Rust type can be, with its current schema version. An event whose
    /// type is not listed here is unknown (see [`UnknownPolicy`]).
    const EVENT_TYPES: &'static [(&'static str, u32)];

    /// This event's type, named in the past tense; one of [`Self::EVENT_TYPES`].
    fn event_type(&self) -> &'static str;

    /// This event's current schema version: by default the one [`Self::EVENT_TYPES`] lists for
    /// its type.
    fn schema_version(&self) -> u32 {
        Self::current_version(self.event_type()).unwrap_or(1)
    }

    /// The current schema version of `event_type`, or `None` if this type does not know it.
    fn current_version(event_type: &str) -> Option<u32> {
        Self::EVENT_TYPES
            .iter()
            .find(|(name, _)| *name == event_type)
            .map(|(_, version)| *version)
    }
}
