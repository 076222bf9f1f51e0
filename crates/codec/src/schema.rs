//! `EventSchema`: a codec plus the upcasters and the unknown-event policy, which together turn
//! stored events of any past shape into today's Rust values.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use bytes::Bytes;
use factum_core::{CONTENT_TYPE_JSON, ProposedEvent, RecordedEvent};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::DomainEvent;
use crate::codec::{Codec, JsonCodec, Payload};
use crate::error::{CodecError, UpcastError};

/// What decoding does with an event whose type, or schema version, no code knows.
///
/// ```
/// use factum_codec::{DomainEvent, EventSchema, UnknownPolicy};
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Debug, PartialEq, Serialize, Deserialize)]
/// enum AccountEvent { MoneyDeposited { amount_cents: u64 } }
///
/// impl DomainEvent for AccountEvent {
///     const EVENT_TYPES: &'static [(&'static str, u32)] = &[("MoneyDeposited", 1)];
///     fn event_type(&self) -> &'static str { "MoneyDeposited" }
/// }
///
/// let frozen = || br#"{"reason":"audit"}"#.to_vec();
/// let strict = EventSchema::<AccountEvent>::json();
/// assert_eq!(strict.unknown_policy(), UnknownPolicy::Fail);
/// assert!(strict.decode_parts("AccountFrozen", 1, frozen()).is_err());
///
/// // A reader that only cares about deposits skips what it does not know.
/// let lenient = EventSchema::<AccountEvent>::json().skip_unknown();
/// assert_eq!(lenient.decode_parts("AccountFrozen", 1, frozen())?, None);
///
/// // Or names the types it deliberately leaves out, and stays strict about the rest.
/// let ignoring = EventSchema::<AccountEvent>::json().ignore("AccountFrozen");
/// assert_eq!(ignoring.decode_parts("AccountFrozen", 1, frozen())?, None);
/// assert!(ignoring.decode_parts("AccountClosed", 1, b"{}".to_vec()).is_err());
/// # Ok::<(), factum_codec::CodecError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum UnknownPolicy {
    /// Fail with [`CodecError::UnknownEventType`] or [`CodecError::UnknownSchemaVersion`]
    /// (the default: an aggregate must never be rebuilt from part of its history by accident).
    #[default]
    Fail,
    /// Skip the event: decoding returns `Ok(None)`. For readers that only care about some
    /// events, such as a projection sharing `$all` with other services.
    Skip,
}

type JsonUpcaster = dyn Fn(Value) -> Result<Value, UpcastError> + Send + Sync;
type BytesUpcaster = dyn Fn(Bytes) -> Result<Bytes, UpcastError> + Send + Sync;

type TypedUpcaster<E> = dyn Fn(Payload) -> Result<E, UpcastError> + Send + Sync;

enum Upcaster<E> {
    Json(Arc<JsonUpcaster>),
    Bytes(Arc<BytesUpcaster>),
    /// Ends the chain: deserializes the old shape and converts it to today's event.
    Typed(Arc<TypedUpcaster<E>>),
}

impl<E> Clone for Upcaster<E> {
    fn clone(&self) -> Upcaster<E> {
        match self {
            Upcaster::Json(upcaster) => Upcaster::Json(upcaster.clone()),
            Upcaster::Bytes(upcaster) => Upcaster::Bytes(upcaster.clone()),
            Upcaster::Typed(upcaster) => Upcaster::Typed(upcaster.clone()),
        }
    }
}

/// Where the upcaster chain left a stored event.
enum Brought<E> {
    /// Data in the current shape, for the codec.
    Data(Upcasted),
    /// A typed upcaster already made the event.
    Event(E),
}

/// A stored event brought to the current schema version of its type, not yet deserialized.
#[derive(Debug, Clone, PartialEq)]
pub struct Upcasted {
    /// The event type.
    pub event_type: String,
    /// The current schema version of the type (the data's shape after upcasting).
    pub schema_version: u32,
    /// The content type of `payload` when stored as bytes.
    pub content_type: String,
    /// The data, in its current shape.
    pub payload: Payload,
}

/// How one domain event type `E` is written and read: its [`Codec`], the upcasters registered
/// per `(event type, schema version)`, the event types deliberately ignored, and the
/// [`UnknownPolicy`]. Cheap to clone (everything is shared).
///
/// Decoding a stored event runs the upcaster registered for its `(type, version)`, then the one
/// for `(type, version + 1)`, and so on up to the type's current version (from
/// [`DomainEvent::EVENT_TYPES`]), then hands the data to the codec. See the [crate
/// example](crate).
pub struct EventSchema<E> {
    codec: Arc<dyn Codec<E>>,
    upcasters: HashMap<String, HashMap<u32, Upcaster<E>>>,
    ignored: HashSet<String>,
    unknown: UnknownPolicy,
}

impl<E> Clone for EventSchema<E> {
    fn clone(&self) -> EventSchema<E> {
        EventSchema {
            codec: self.codec.clone(),
            upcasters: self.upcasters.clone(),
            ignored: self.ignored.clone(),
            unknown: self.unknown,
        }
    }
}

impl<E: 'static> std::fmt::Debug for EventSchema<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut upcasters: Vec<(&str, u32)> = self
            .upcasters
            .iter()
            .flat_map(|(event_type, versions)| {
                versions
                    .keys()
                    .map(move |version| (event_type.as_str(), *version))
            })
            .collect();
        upcasters.sort_unstable();
        f.debug_struct("EventSchema")
            .field("content_type", &self.codec.content_type())
            .field("upcasters", &upcasters)
            .field("ignored", &self.ignored)
            .field("unknown", &self.unknown)
            .finish()
    }
}

impl<E> EventSchema<E>
where
    E: DomainEvent + Serialize + DeserializeOwned,
{
    /// A schema with the default [`JsonCodec`], no upcasters, and [`UnknownPolicy::Fail`].
    pub fn json() -> EventSchema<E> {
        EventSchema::with_codec(JsonCodec::new())
    }
}

impl<E> Default for EventSchema<E>
where
    E: DomainEvent + Serialize + DeserializeOwned,
{
    fn default() -> EventSchema<E> {
        EventSchema::json()
    }
}

impl<E: DomainEvent> EventSchema<E> {
    /// A schema with another codec (see [`Codec`]).
    pub fn with_codec(codec: impl Codec<E>) -> EventSchema<E> {
        EventSchema {
            codec: Arc::new(codec),
            upcasters: HashMap::new(),
            ignored: HashSet::new(),
            unknown: UnknownPolicy::Fail,
        }
    }

    /// Registers the upcaster that turns JSON data of `event_type` at `from_version` into
    /// its shape at `from_version + 1`. Register one per old version to build a chain. A
    /// later registration for the same `(type, version)` replaces the earlier one.
    ///
    /// Stored bytes are parsed as JSON once, whatever the length of the chain.
    /// Building and changing a JSON tree costs about three times reading the current shape
    /// straight into the event; for old versions read often, prefer
    /// [`EventSchema::upcast_typed`].
    ///
    /// ```
    /// use factum_codec::{DomainEvent, EventSchema};
    /// use serde::{Deserialize, Serialize};
    ///
    /// #[derive(Debug, PartialEq, Serialize, Deserialize)]
    /// enum OrderEvent {
    ///     OrderPlaced { customer_name: String, total_cents: u64, currency: String },
    /// }
    ///
    /// impl DomainEvent for OrderEvent {
    ///     const EVENT_TYPES: &'static [(&'static str, u32)] = &[("OrderPlaced", 3)];
    ///     fn event_type(&self) -> &'static str { "OrderPlaced" }
    /// }
    ///
    /// let schema = EventSchema::<OrderEvent>::json()
    ///     // v1 → v2: `customer` became `customer_name`, and dollars became cents.
    ///     .upcast("OrderPlaced", 1, |data| {
    ///         let dollars = data["total"].as_u64().ok_or("total is missing")?;
    ///         Ok(serde_json::json!({"customer_name": data["customer"], "total_cents": dollars * 100}))
    ///     })
    ///     // v2 → v3: a currency, which was always dollars before.
    ///     .upcast("OrderPlaced", 2, |mut data| {
    ///         data["currency"] = "USD".into();
    ///         Ok(data)
    ///     });
    ///
    /// // A v1 event runs both steps; a v2 event only the second.
    /// let v1 = schema.decode_parts("OrderPlaced", 1, br#"{"customer":"Alice","total":12}"#.to_vec())?;
    /// let v2 = schema.decode_parts(
    ///     "OrderPlaced",
    ///     2,
    ///     br#"{"customer_name":"Alice","total_cents":1200}"#.to_vec(),
    /// )?;
    /// let v3 = OrderEvent::OrderPlaced {
    ///     customer_name: "Alice".into(),
    ///     total_cents: 1200,
    ///     currency: "USD".into(),
    /// };
    /// assert_eq!(v1.as_ref(), Some(&v3));
    /// assert_eq!(v2.as_ref(), Some(&v3));
    /// # Ok::<(), factum_codec::CodecError>(())
    /// ```
    pub fn upcast<F>(mut self, event_type: &str, from_version: u32, upcaster: F) -> EventSchema<E>
    where
        F: Fn(Value) -> Result<Value, UpcastError> + Send + Sync + 'static,
    {
        self.register(event_type, from_version, Upcaster::Json(Arc::new(upcaster)));
        self
    }

    /// Registers an upcaster on raw bytes, for data that is not JSON (see
    /// [`EventSchema::upcast`]).
    ///
    /// ```
    /// use bytes::Bytes;
    /// use factum_codec::{DomainEvent, EventSchema};
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
    /// // Version 1 stored the amount in cents as plain text.
    /// let schema = EventSchema::<AccountEvent>::json().upcast_bytes("MoneyDeposited", 1, |data| {
    ///     let cents: u64 = std::str::from_utf8(&data)?.trim().parse()?;
    ///     Ok(Bytes::from(format!(r#"{{"amount_cents":{cents}}}"#)))
    /// });
    /// let old = schema.decode_parts("MoneyDeposited", 1, b"250".to_vec())?;
    /// assert_eq!(old, Some(AccountEvent::MoneyDeposited { amount_cents: 250 }));
    /// # Ok::<(), factum_codec::CodecError>(())
    /// ```
    pub fn upcast_bytes<F>(
        mut self,
        event_type: &str,
        from_version: u32,
        upcaster: F,
    ) -> EventSchema<E>
    where
        F: Fn(Bytes) -> Result<Bytes, UpcastError> + Send + Sync + 'static,
    {
        self.register(
            event_type,
            from_version,
            Upcaster::Bytes(Arc::new(upcaster)),
        );
        self
    }

    /// Registers a typed upcaster: data of `event_type` stored at `from_version` is
    /// deserialized (from JSON) into `Old`, a struct of that version's shape, and `convert`
    /// turns it into today's event. It ends the chain, so no JSON tree is built and no
    /// intermediate version is visited: the cheapest way to read old events. A later
    /// registration for the same `(type, version)` replaces the earlier one, whatever its kind.
    ///
    /// ```
    /// use factum_codec::{DomainEvent, EventSchema};
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
    /// /// Version 1 stored dollars.
    /// #[derive(Deserialize)]
    /// struct DepositedV1 { amount: u64 }
    ///
    /// let schema = EventSchema::<AccountEvent>::json().upcast_typed(
    ///     "MoneyDeposited",
    ///     1,
    ///     |old: DepositedV1| Ok(AccountEvent::MoneyDeposited { amount_cents: old.amount * 100 }),
    /// );
    /// let old = schema.decode_parts("MoneyDeposited", 1, br#"{"amount":5}"#.to_vec())?;
    /// assert_eq!(old, Some(AccountEvent::MoneyDeposited { amount_cents: 500 }));
    /// # Ok::<(), factum_codec::CodecError>(())
    /// ```
    pub fn upcast_typed<Old, F>(
        mut self,
        event_type: &str,
        from_version: u32,
        convert: F,
    ) -> EventSchema<E>
    where
        Old: DeserializeOwned,
        F: Fn(Old) -> Result<E, UpcastError> + Send + Sync + 'static,
    {
        let typed = move |payload: Payload| {
            let old: Old = match payload {
                Payload::Bytes(bytes) => serde_json::from_slice(&bytes),
                Payload::Json(value) => serde_json::from_value(value),
            }
            .map_err(|error| format!("the stored data does not fit the old shape: {error}"))?;
            convert(old)
        };
        self.register(event_type, from_version, Upcaster::Typed(Arc::new(typed)));
        self
    }

    fn register(&mut self, event_type: &str, from_version: u32, upcaster: Upcaster<E>) {
        assert!(from_version >= 1, "schema versions start at 1");
        self.upcasters
            .entry(event_type.to_owned())
            .or_default()
            .insert(from_version, upcaster);
    }

    /// Ignores every event of `event_type` (a type the code once had and dropped): decoding
    /// returns `Ok(None)` for it, whatever the [`UnknownPolicy`].
    pub fn ignore(mut self, event_type: &str) -> EventSchema<E> {
        self.ignored.insert(event_type.to_owned());
        self
    }

    /// Sets what decoding does with unknown event types and versions.
    pub fn on_unknown(mut self, policy: UnknownPolicy) -> EventSchema<E> {
        self.unknown = policy;
        self
    }

    /// Shorthand for `on_unknown(UnknownPolicy::Skip)`.
    pub fn skip_unknown(self) -> EventSchema<E> {
        self.on_unknown(UnknownPolicy::Skip)
    }

    /// The policy for unknown events.
    pub fn unknown_policy(&self) -> UnknownPolicy {
        self.unknown
    }

    /// The codec's content type.
    pub fn content_type(&self) -> &str {
        self.codec.content_type()
    }

    /// Encodes `event` as an event to append: its type, its current schema version, the
    /// codec's content type and data, a generated id and no metadata (set them with the
    /// `with_*` methods of [`ProposedEvent`]).
    pub fn encode(&self, event: &E) -> Result<ProposedEvent, CodecError> {
        let data = self.codec.encode(event)?;
        Ok(
            ProposedEvent::new(event.event_type(), self.codec.content_type(), data)
                .with_schema_version(event.schema_version()),
        )
    }

    /// Decodes a stored event: upcasts it to its type's current version, then deserializes.
    /// `Ok(None)` means the event is skipped (an ignored type, or unknown under
    /// [`UnknownPolicy::Skip`]).
    pub fn decode(&self, event: &RecordedEvent) -> Result<Option<E>, CodecError> {
        self.decode_stored(
            &event.event_type,
            event.schema_version,
            &event.content_type,
            event.data.clone(),
        )
    }

    /// Decodes data given by its parts (type, stored schema version, bytes), as
    /// [`EventSchema::decode`] does.
    pub fn decode_parts(
        &self,
        event_type: &str,
        schema_version: u32,
        data: impl Into<Bytes>,
    ) -> Result<Option<E>, CodecError> {
        let content_type = self.codec.content_type().to_owned();
        self.decode_stored(event_type, schema_version, &content_type, data.into())
    }

    fn decode_stored(
        &self,
        event_type: &str,
        schema_version: u32,
        content_type: &str,
        data: Bytes,
    ) -> Result<Option<E>, CodecError> {
        match self.bring(event_type, schema_version, content_type, data)? {
            None => Ok(None),
            Some(Brought::Event(event)) => Ok(Some(event)),
            Some(Brought::Data(upcasted)) => self
                .codec
                .decode(event_type, upcasted.schema_version, upcasted.payload)
                .map(Some),
        }
    }

    /// Upcasts a stored event to its type's current schema version without deserializing it
    /// (what [`migrate_stream`](crate::migrate_stream) writes). `Ok(None)` means skipped, as
    /// for [`EventSchema::decode`].
    pub fn upcast_event(&self, event: &RecordedEvent) -> Result<Option<Upcasted>, CodecError> {
        self.upcast_parts(
            &event.event_type,
            event.schema_version,
            &event.content_type,
            event.data.clone(),
        )
    }

    fn upcast_parts(
        &self,
        event_type: &str,
        schema_version: u32,
        content_type: &str,
        data: Bytes,
    ) -> Result<Option<Upcasted>, CodecError> {
        match self.bring(event_type, schema_version, content_type, data)? {
            None => Ok(None),
            Some(Brought::Data(upcasted)) => Ok(Some(upcasted)),
            // A typed upcaster made the event: its current data is what the codec writes.
            Some(Brought::Event(event)) => Ok(Some(Upcasted {
                event_type: event.event_type().to_owned(),
                schema_version: event.schema_version(),
                content_type: self.codec.content_type().to_owned(),
                payload: Payload::Bytes(self.codec.encode(&event)?),
            })),
        }
    }

    /// Runs the upcaster chain of a stored event; `None` means skipped.
    fn bring(
        &self,
        event_type: &str,
        schema_version: u32,
        content_type: &str,
        data: Bytes,
    ) -> Result<Option<Brought<E>>, CodecError> {
        if self.ignored.contains(event_type) {
            return Ok(None);
        }
        let Some(current_version) = E::current_version(event_type) else {
            return self.unknown(CodecError::UnknownEventType {
                event_type: event_type.to_owned(),
                schema_version,
            });
        };
        let mut version = schema_version;
        let mut payload = Payload::Bytes(data);
        let mut content_type = content_type.to_owned();
        let chain = self.upcasters.get(event_type);
        // Bounded: every step raises the version by one, up to `current_version`.
        while version < current_version {
            let Some(upcaster) = chain.and_then(|chain| chain.get(&version)) else {
                break;
            };
            let upcast_error = |reason: String| CodecError::Upcast {
                event_type: event_type.to_owned(),
                schema_version: version,
                reason,
            };
            payload = match upcaster {
                Upcaster::Json(upcaster) => {
                    let value = match payload {
                        Payload::Json(value) => value,
                        Payload::Bytes(bytes) => {
                            serde_json::from_slice(&bytes).map_err(|error| {
                                upcast_error(format!("the stored data is not JSON: {error}"))
                            })?
                        }
                    };
                    content_type = CONTENT_TYPE_JSON.to_owned();
                    Payload::Json(upcaster(value).map_err(|error| upcast_error(error.to_string()))?)
                }
                Upcaster::Bytes(upcaster) => Payload::Bytes(
                    upcaster(payload.into_bytes())
                        .map_err(|error| upcast_error(error.to_string()))?,
                ),
                Upcaster::Typed(upcaster) => {
                    let event =
                        upcaster(payload).map_err(|error| upcast_error(error.to_string()))?;
                    return Ok(Some(Brought::Event(event)));
                }
            };
            version += 1;
        }
        if version != current_version {
            return self.unknown(CodecError::UnknownSchemaVersion {
                event_type: event_type.to_owned(),
                schema_version: version,
                current_version,
            });
        }
        Ok(Some(Brought::Data(Upcasted {
            event_type: event_type.to_owned(),
            schema_version: version,
            content_type,
            payload,
        })))
    }

    fn unknown<T>(&self, error: CodecError) -> Result<Option<T>, CodecError> {
        match self.unknown {
            UnknownPolicy::Fail => Err(error),
            UnknownPolicy::Skip => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    /// An order's events; `OrderPlaced` changed shape twice.
    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    enum OrderEvent {
        OrderPlaced {
            customer_name: String,
            total_cents: u64,
            currency: String,
        },
        OrderShipped,
    }

    impl DomainEvent for OrderEvent {
        const EVENT_TYPES: &'static [(&'static str, u32)] =
            &[("OrderPlaced", 3), ("OrderShipped", 1)];

        fn event_type(&self) -> &'static str {
            match self {
                OrderEvent::OrderPlaced { .. } => "OrderPlaced",
                OrderEvent::OrderShipped => "OrderShipped",
            }
        }
    }

    fn schema() -> EventSchema<OrderEvent> {
        EventSchema::json()
            // v1 → v2: `customer` was renamed `customer_name`, and dollars became cents.
            .upcast("OrderPlaced", 1, |mut data| {
                let object = data.as_object_mut().ok_or("not an object")?;
                let customer = object.remove("customer").ok_or("no customer")?;
                let dollars = object.remove("total").and_then(|t| t.as_u64());
                object.insert("customer_name".into(), customer);
                object.insert(
                    "total_cents".into(),
                    (dollars.ok_or("no total")? * 100).into(),
                );
                Ok(data)
            })
            // v2 → v3: a currency, which was always dollars before.
            .upcast("OrderPlaced", 2, |mut data| {
                data["currency"] = "USD".into();
                Ok(data)
            })
    }

    fn placed() -> OrderEvent {
        OrderEvent::OrderPlaced {
            customer_name: "Alice".into(),
            total_cents: 1200,
            currency: "USD".into(),
        }
    }

    fn check(event_type: &str, version: u32, data: &str, expect: Result<Option<OrderEvent>, &str>) {
        let decoded = schema().decode_parts(event_type, version, data.as_bytes().to_vec());
        match (decoded, expect) {
            (Ok(decoded), Ok(expected)) => assert_eq!(decoded, expected),
            (Err(error), Err(message)) => {
                let text = error.to_string();
                assert!(text.contains(message), "{text:?} lacks {message:?}");
            }
            (decoded, expected) => panic!("got {decoded:?}, expected {expected:?}"),
        }
    }

    #[test]
    fn upcasts_every_old_version_to_the_current_one() {
        check(
            "OrderPlaced",
            1,
            r#"{"customer":"Alice","total":12}"#,
            Ok(Some(placed())),
        );
        check(
            "OrderPlaced",
            2,
            r#"{"customer_name":"Alice","total_cents":1200}"#,
            Ok(Some(placed())),
        );
        check(
            "OrderPlaced",
            3,
            r#"{"customer_name":"Alice","total_cents":1200,"currency":"USD"}"#,
            Ok(Some(placed())),
        );
        check(
            "OrderShipped",
            1,
            "null",
            Ok(Some(OrderEvent::OrderShipped)),
        );
    }

    #[test]
    fn names_type_and_version_of_what_it_cannot_read() {
        check(
            "OrderLost",
            2,
            "{}",
            Err(r#"unknown event type "OrderLost" (schema version 2)"#),
        );
        check(
            "OrderPlaced",
            4,
            "{}",
            Err(r#"unknown schema version 4 of event type "OrderPlaced""#),
        );
        check(
            "OrderShipped",
            0,
            "null",
            Err(r#"unknown schema version 0 of event type "OrderShipped""#),
        );
        check(
            "OrderPlaced",
            1,
            r#"{"total":12}"#,
            Err("from schema version 1 failed: no customer"),
        );
        check(
            "OrderPlaced",
            3,
            r#"{"customer_name":1}"#,
            Err("cannot decode event type"),
        );
    }

    #[test]
    fn skips_unknown_events_only_when_told_to() {
        let schema = schema().skip_unknown().ignore("OrderArchived");
        assert_eq!(schema.decode_parts("OrderLost", 1, "{}").unwrap(), None);
        assert_eq!(schema.decode_parts("OrderPlaced", 9, "{}").unwrap(), None);
        assert_eq!(schema.decode_parts("OrderArchived", 1, "{}").unwrap(), None);
        // Skipping is for unknown events, never for data that does not decode.
        assert!(schema.decode_parts("OrderPlaced", 3, "{}").is_err());
        let strict = EventSchema::<OrderEvent>::json().ignore("OrderArchived");
        assert_eq!(strict.decode_parts("OrderArchived", 7, "[]").unwrap(), None);
    }

    #[test]
    fn encodes_data_without_the_enum_tag() {
        let proposed = schema().encode(&placed()).unwrap();
        assert_eq!(proposed.event_type, "OrderPlaced");
        assert_eq!(proposed.schema_version, 3);
        assert_eq!(proposed.content_type, CONTENT_TYPE_JSON);
        assert_eq!(
            &proposed.data[..],
            br#"{"customer_name":"Alice","total_cents":1200,"currency":"USD"}"#
        );
        let shipped = schema().encode(&OrderEvent::OrderShipped).unwrap();
        assert_eq!(&shipped.data[..], b"null");
        assert_eq!(
            schema()
                .decode_parts("OrderShipped", 1, shipped.data)
                .unwrap(),
            Some(OrderEvent::OrderShipped)
        );
    }

    #[test]
    fn byte_upcasters_chain_like_json_ones() {
        let schema = EventSchema::<OrderEvent>::json().upcast_bytes("OrderPlaced", 2, |_| {
            Ok(Bytes::from_static(
                br#"{"customer_name":"Alice","total_cents":1200,"currency":"USD"}"#,
            ))
        });
        assert_eq!(
            schema.decode_parts("OrderPlaced", 2, "garbage").unwrap(),
            Some(placed())
        );
    }

    /// `OrderPlaced` v1 as it was stored: a customer and a total in dollars.
    #[derive(Deserialize)]
    struct PlacedV1 {
        customer: String,
        total: u64,
    }

    #[test]
    fn typed_upcasters_end_the_chain_and_feed_migrations() {
        let schema = schema().upcast_typed("OrderPlaced", 1, |old: PlacedV1| {
            Ok(OrderEvent::OrderPlaced {
                customer_name: old.customer,
                total_cents: old.total * 100,
                currency: "USD".into(),
            })
        });
        let v1 = r#"{"customer":"Alice","total":12}"#;
        assert_eq!(
            schema.decode_parts("OrderPlaced", 1, v1).unwrap(),
            Some(placed())
        );
        // Version 2 still goes through the JSON upcaster registered for it.
        let v2 = r#"{"customer_name":"Alice","total_cents":1200}"#;
        assert_eq!(
            schema.decode_parts("OrderPlaced", 2, v2).unwrap(),
            Some(placed())
        );
        let error = schema
            .decode_parts("OrderPlaced", 1, r#"{"customer":"Alice"}"#)
            .unwrap_err();
        assert!(
            error.to_string().contains("does not fit the old shape"),
            "{error}"
        );
        let upcasted = schema
            .upcast_parts("OrderPlaced", 1, CONTENT_TYPE_JSON, Bytes::from(v1))
            .unwrap()
            .unwrap();
        assert_eq!(upcasted.schema_version, 3);
        assert_eq!(
            upcasted.payload.into_bytes(),
            Bytes::from_static(br#"{"customer_name":"Alice","total_cents":1200,"currency":"USD"}"#)
        );
    }

    /// Every variant shape serde has, to check decoding reads the variant straight from the
    /// data, from bytes and from an upcast JSON value alike.
    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    enum Shapes {
        Unit,
        Newtype(u32),
        Tuple(u8, String),
        Struct { a: bool },
    }

    impl DomainEvent for Shapes {
        const EVENT_TYPES: &'static [(&'static str, u32)] =
            &[("Unit", 2), ("Newtype", 2), ("Tuple", 2), ("Struct", 2)];

        fn event_type(&self) -> &'static str {
            match self {
                Shapes::Unit => "Unit",
                Shapes::Newtype(_) => "Newtype",
                Shapes::Tuple(..) => "Tuple",
                Shapes::Struct { .. } => "Struct",
            }
        }
    }

    #[test]
    fn decodes_every_variant_shape_from_bytes_and_from_values() {
        let mut schema = EventSchema::<Shapes>::json();
        for (event_type, _) in Shapes::EVENT_TYPES {
            schema = schema.upcast(event_type, 1, Ok);
        }
        let cases = [
            Shapes::Unit,
            Shapes::Newtype(7),
            Shapes::Tuple(1, "x".into()),
            Shapes::Struct { a: true },
        ];
        for event in cases {
            let data = schema.encode(&event).unwrap().data;
            for version in [1, 2] {
                let decoded = schema
                    .decode_parts(event.event_type(), version, data.clone())
                    .unwrap();
                assert_eq!(decoded.as_ref(), Some(&event), "version {version}");
            }
        }
        // Trailing bytes after the data, and data of the wrong shape, are refused.
        assert!(schema.decode_parts("Newtype", 2, "7 8").is_err());
        assert!(schema.decode_parts("Unit", 2, "1").is_err());
        assert!(schema.decode_parts("Struct", 1, "[1]").is_err());
    }
}
