//! What can go wrong when encoding, upcasting or decoding an event.

/// The error an upcaster returns: any error (`?` works on serde errors) or a message
/// (`"amount is missing".into()`, or `ok_or("...")?`).
pub type UpcastError = Box<dyn std::error::Error + Send + Sync>;

/// Encoding, upcasting or decoding an event failed. Every variant names the event type and,
/// where one was read, its schema version. `Clone`, so that a runner that stopped on one can
/// hand it to every caller waiting on it.
///
/// ```
/// use factum_codec::{CodecError, DomainEvent, EventSchema};
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Debug, Serialize, Deserialize)]
/// enum AccountEvent { MoneyDeposited { amount_cents: u64 } }
///
/// impl DomainEvent for AccountEvent {
///     const EVENT_TYPES: &'static [(&'static str, u32)] = &[("MoneyDeposited", 2)];
///     fn event_type(&self) -> &'static str { "MoneyDeposited" }
/// }
///
/// let schema = EventSchema::<AccountEvent>::json();
///
/// // A type no code knows.
/// let error = schema.decode_parts("AccountFrozen", 1, b"{}".to_vec()).unwrap_err();
/// assert!(matches!(
///     &error,
///     CodecError::UnknownEventType { event_type, schema_version: 1 } if event_type == "AccountFrozen"
/// ));
///
/// // A known type at a version with no upcaster: the message names both.
/// let error = schema.decode_parts("MoneyDeposited", 1, br#"{"amount":5}"#.to_vec()).unwrap_err();
/// assert!(matches!(
///     error,
///     CodecError::UnknownSchemaVersion { schema_version: 1, current_version: 2, .. }
/// ));
/// assert!(error.to_string().contains(r#"unknown schema version 1 of event type "MoneyDeposited""#));
/// ```
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    /// No code knows this event type: it is not in [`DomainEvent::EVENT_TYPES`](crate::DomainEvent::EVENT_TYPES).
    ///
    /// Handle by adding the type (and its upcasters) to the code, by
    /// [ignoring it](crate::EventSchema::ignore), or by choosing [`UnknownPolicy::Skip`](crate::UnknownPolicy::Skip).
    #[error(
        "unknown event type {event_type:?} (schema version {schema_version}): no code knows this type"
    )]
    UnknownEventType {
        /// The stored event type.
        event_type: String,
        /// The stored schema version.
        schema_version: u32,
    },

    /// The event type is known but this schema version is not: it is newer than the code's, or
    /// older with no upcaster registered from it.
    ///
    /// Handle by deploying the code that wrote it, or by registering the missing upcaster.
    #[error(
        "unknown schema version {schema_version} of event type {event_type:?}: this code reads \
         version {current_version} and has no upcaster from version {schema_version}"
    )]
    UnknownSchemaVersion {
        /// The stored event type.
        event_type: String,
        /// The schema version reached (the stored one, or where the upcaster chain stopped).
        schema_version: u32,
        /// The version the code knows.
        current_version: u32,
    },

    /// An upcaster refused the data it was given.
    ///
    /// Handle as a bug in the upcaster or unexpected stored data; the event is not lost.
    #[error(
        "upcasting event type {event_type:?} from schema version {schema_version} failed: {reason}"
    )]
    Upcast {
        /// The event type.
        event_type: String,
        /// The version the failing upcaster reads.
        schema_version: u32,
        /// What the upcaster said.
        reason: String,
    },

    /// The (upcast) data does not deserialize into the Rust type.
    ///
    /// Handle as a bug: an upcaster is missing a change, or the codec does not match the data.
    #[error("cannot decode event type {event_type:?} at schema version {schema_version}: {reason}")]
    Decode {
        /// The event type.
        event_type: String,
        /// The schema version of the data handed to the codec.
        schema_version: u32,
        /// What the codec said.
        reason: String,
    },

    /// The event does not encode (a map with non-string keys for JSON, say, or a serde form the
    /// codec does not understand).
    ///
    /// Handle as a bug in the event type.
    #[error("cannot encode event type {event_type:?}: {reason}")]
    Encode {
        /// The event type.
        event_type: String,
        /// What the codec said.
        reason: String,
    },
}
