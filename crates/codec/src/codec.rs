//! The `Codec` trait (how event data is encoded) and the default JSON codec.

use std::marker::PhantomData;

use bytes::Bytes;
use serde::Serialize;
use serde::de::DeserializeOwned;

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
/// plain JSON; decoding wraps it again under the stored event type.
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
        match payload {
            Payload::Bytes(data) => {
                let key = serde_json::to_string(event_type).expect("a string always serializes");
                let mut tagged = Vec::with_capacity(key.len() + data.len() + 3);
                tagged.push(b'{');
                tagged.extend_from_slice(key.as_bytes());
                tagged.push(b':');
                tagged.extend_from_slice(&data);
                tagged.push(b'}');
                serde_json::from_slice(&tagged).map_err(decode_error)
            }
            Payload::Json(value) => {
                let mut tagged = serde_json::Map::with_capacity(1);
                tagged.insert(event_type.to_owned(), value);
                serde_json::from_value(serde_json::Value::Object(tagged)).map_err(decode_error)
            }
        }
    }
}
