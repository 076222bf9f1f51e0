//! The `Codec` trait (how event data is encoded) and the default JSON codec.

use std::marker::PhantomData;

use bytes::Bytes;
use serde::de::{
    DeserializeOwned, DeserializeSeed, EnumAccess, Error as _, IntoDeserializer, MapAccess,
    VariantAccess, Visitor,
};
use serde::{Deserialize, Serialize};

use crate::DomainEvent;
use crate::error::CodecError;

/// Event data on its way from storage to a Rust value: raw bytes, or a JSON value an upcaster
/// produced (so a chain of JSON upcasters parses the data once).
#[derive(Debug, Clone, PartialEq)]
pub enum Payload {
    /// The bytes as stored (or as a byte upcaster returned them).
    Bytes(Bytes),
    /// A JSON value, as a JSON upcaster returned it.
    Json(serde_json::Value),
}

impl Payload {
    /// The payload as bytes, serializing a JSON value.
    pub fn into_bytes(self) -> Bytes {
        match self {
            Payload::Bytes(bytes) => bytes,
            Payload::Json(value) => {
                Bytes::from(serde_json::to_vec(&value).expect("a JSON value always serializes"))
            }
        }
    }
}

/// How a domain event's data is encoded: one content type, encode, decode.
///
/// [`JsonCodec`] is the default. Implement this trait for another encoding (bincode,
/// protobuf...) and pass it to [`EventSchema::with_codec`](crate::EventSchema::with_codec);
/// the event type and schema version are stored beside the data, so the codec encodes only the
/// data.
///
/// ```
/// use bytes::Bytes;
/// use factum_codec::{Codec, CodecError, DomainEvent, EventSchema, Payload};
///
/// #[derive(Debug, PartialEq)]
/// enum Ping { Pinged(u8) }
///
/// impl DomainEvent for Ping {
///     const EVENT_TYPES: &'static [(&'static str, u32)] = &[("Pinged", 1)];
///     fn event_type(&self) -> &'static str { "Pinged" }
/// }
///
/// /// One byte per event.
/// struct ByteCodec;
///
/// impl Codec<Ping> for ByteCodec {
///     fn content_type(&self) -> &str { "application/x-ping" }
///     fn encode(&self, event: &Ping) -> Result<Bytes, CodecError> {
///         let Ping::Pinged(n) = event;
///         Ok(Bytes::from(vec![*n]))
///     }
///     fn decode(&self, event_type: &str, schema_version: u32, payload: Payload) -> Result<Ping, CodecError> {
///         match &payload.into_bytes()[..] {
///             [n] => Ok(Ping::Pinged(*n)),
///             _ => Err(CodecError::Decode {
///                 event_type: event_type.into(),
///                 schema_version,
///                 reason: "expected one byte".into(),
///             }),
///         }
///     }
/// }
///
/// let schema = EventSchema::with_codec(ByteCodec);
/// let proposed = schema.encode(&Ping::Pinged(7))?;
/// assert_eq!(proposed.content_type, "application/x-ping");
/// assert_eq!(schema.decode_parts("Pinged", 1, vec![7])?, Some(Ping::Pinged(7)));
/// # Ok::<(), CodecError>(())
/// ```
pub trait Codec<E>: Send + Sync + 'static {
    /// The content type stored with every event this codec encodes.
    fn content_type(&self) -> &str;

    /// Encodes the event's data (not its type or version, which are stored beside it).
    fn encode(&self, event: &E) -> Result<Bytes, CodecError>;

    /// Decodes data of `event_type`, already upcast to its current `schema_version`.
    fn decode(
        &self,
        event_type: &str,
        schema_version: u32,
        payload: Payload,
    ) -> Result<E, CodecError>;
}

/// The default codec: serde JSON, content type `application/json`.
///
/// The event type must serialize in serde's default, externally tagged enum form
/// (`{"MoneyDeposited":{"amount_cents":500}}`) with variant names equal to the event types. The
/// stored data is the inner value (`{"amount_cents":500}`), so other languages and the CLI read
/// plain JSON; decoding reads the variant named by the stored event type straight from it.
///
/// ```
/// use factum_codec::{Codec, DomainEvent, JsonCodec, Payload};
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
/// let codec = JsonCodec::new();
/// let deposit = AccountEvent::MoneyDeposited { amount_cents: 500 };
/// let data = codec.encode(&deposit)?;
/// assert_eq!(&data[..], br#"{"amount_cents":500}"#);
/// assert_eq!(Codec::<AccountEvent>::content_type(&codec), "application/json");
/// assert_eq!(codec.decode("MoneyDeposited", 1, Payload::Bytes(data))?, deposit);
/// # Ok::<(), factum_codec::CodecError>(())
/// ```
pub struct JsonCodec<E>(PhantomData<fn() -> E>);

impl<E> JsonCodec<E> {
    /// The JSON codec.
    pub fn new() -> JsonCodec<E> {
        JsonCodec(PhantomData)
    }
}

impl<E> Default for JsonCodec<E> {
    fn default() -> JsonCodec<E> {
        JsonCodec::new()
    }
}

impl<E> Codec<E> for JsonCodec<E>
where
    E: DomainEvent + Serialize + DeserializeOwned,
{
    fn content_type(&self) -> &str {
        factum_core::CONTENT_TYPE_JSON
    }

    fn encode(&self, event: &E) -> Result<Bytes, CodecError> {
        let event_type = event.event_type();
        let encode_error = |reason: String| CodecError::Encode {
            event_type: event_type.to_owned(),
            reason,
        };
        let json = serde_json::to_vec(event).map_err(|error| encode_error(error.to_string()))?;
        let key = serde_json::to_string(event_type).expect("a string always serializes");
        // A unit variant serializes as the bare string "Type": its data is `null`.
        if json == key.as_bytes() {
            return Ok(Bytes::from_static(b"null"));
        }
        // Otherwise serde_json writes exactly `{"Type":<data>}`, with no spaces.
        let prefix_len = 1 + key.len() + 1;
        let well_formed = json.len() > prefix_len
            && json[0] == b'{'
            && json[1..1 + key.len()] == *key.as_bytes()
            && json[prefix_len - 1] == b':'
            && json.last() == Some(&b'}');
        if !well_formed {
            return Err(encode_error(format!(
                "the JSON codec needs serde's externally tagged enum form with the variant \
                 named {key}; got {}",
                String::from_utf8_lossy(&json[..json.len().min(80)])
            )));
        }
        let data = Bytes::from(json);
        Ok(data.slice(prefix_len..data.len() - 1))
    }

    fn decode(
        &self,
        event_type: &str,
        schema_version: u32,
        payload: Payload,
    ) -> Result<E, CodecError> {
        let decode_error = |error: serde_json::Error| CodecError::Decode {
            event_type: event_type.to_owned(),
            schema_version,
            reason: error.to_string(),
        };
        // The stored data is the variant's content: deserialize the enum straight from it,
        // with the event type as the variant, instead of building `{"Type": data}` first.
        match payload {
            Payload::Bytes(data) => {
                let mut inner = serde_json::Deserializer::from_slice(&data);
                let event = E::deserialize(Tagged {
                    tag: event_type,
                    inner: &mut inner,
                })
                .map_err(decode_error)?;
                inner.end().map_err(decode_error)?;
                Ok(event)
            }
            Payload::Json(value) => E::deserialize(Tagged {
                tag: event_type,
                inner: value,
            })
            .map_err(decode_error),
        }
    }
}

/// A deserializer that shows `inner` as serde's externally tagged enum form `{tag: inner}`
/// without building it: an enum asks for the variant `tag` and then reads its content from
/// `inner`; anything else sees a map of one entry.
struct Tagged<'t, D> {
    tag: &'t str,
    inner: D,
}

impl<'de, 't, D> serde::Deserializer<'de> for Tagged<'t, D>
where
    D: serde::Deserializer<'de>,
{
    type Error = D::Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
        visitor.visit_map(TaggedMap {
            tag: Some(self.tag),
            inner: Some(self.inner),
        })
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        visitor.visit_enum(self)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map struct identifier
        ignored_any
    }
}

impl<'de, 't, D> EnumAccess<'de> for Tagged<'t, D>
where
    D: serde::Deserializer<'de>,
{
    type Error = D::Error;
    type Variant = Content<D>;

    fn variant_seed<S: DeserializeSeed<'de>>(
        self,
        seed: S,
    ) -> Result<(S::Value, Content<D>), D::Error> {
        let variant = seed.deserialize(self.tag.into_deserializer())?;
        Ok((variant, Content(self.inner)))
    }
}

/// The content of the variant [`Tagged`] names.
struct Content<D>(D);

impl<'de, D> VariantAccess<'de> for Content<D>
where
    D: serde::Deserializer<'de>,
{
    type Error = D::Error;

    fn unit_variant(self) -> Result<(), D::Error> {
        // A unit variant's data is `null`.
        <() as Deserialize>::deserialize(self.0)
    }

    fn newtype_variant_seed<S: DeserializeSeed<'de>>(self, seed: S) -> Result<S::Value, D::Error> {
        seed.deserialize(self.0)
    }

    fn tuple_variant<V: Visitor<'de>>(self, _len: usize, visitor: V) -> Result<V::Value, D::Error> {
        self.0.deserialize_seq(visitor)
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        self.0.deserialize_struct("", fields, visitor)
    }
}

/// [`Tagged`] seen as a map of one entry, for types that do not ask for an enum.
struct TaggedMap<'t, D> {
    tag: Option<&'t str>,
    inner: Option<D>,
}

impl<'de, 't, D> MapAccess<'de> for TaggedMap<'t, D>
where
    D: serde::Deserializer<'de>,
{
    type Error = D::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, D::Error> {
        match self.tag.take() {
            Some(tag) => seed.deserialize(tag.into_deserializer()).map(Some),
            None => Ok(None),
        }
    }

    fn next_value_seed<S: DeserializeSeed<'de>>(&mut self, seed: S) -> Result<S::Value, D::Error> {
        match self.inner.take() {
            Some(inner) => seed.deserialize(inner),
            None => Err(D::Error::custom(
                "the value of a one-entry map was read twice",
            )),
        }
    }

    fn size_hint(&self) -> Option<usize> {
        Some(usize::from(self.tag.is_some()))
    }
}
