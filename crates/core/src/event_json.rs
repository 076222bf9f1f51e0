//! The JSON form of events that people and plain-HTTP programs read and write: the HTTP API's
//! bodies and server-sent events, the CLI's output lines and `append --jsonl` input.
//!
//! Data and metadata that are JSON are embedded as the writer wrote them, with only the
//! whitespace between tokens removed (one event stays one line; key order and number
//! precision survive, which parsing into a map would lose). Other bytes travel as standard
//! base64 in `data_base64` and `metadata_base64`.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use serde::de::IgnoredAny;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::value::RawValue;
use uuid::Uuid;

use crate::{CONTENT_TYPE_BYTES, CONTENT_TYPE_JSON, ProposedEvent, RecordedEvent};

/// A recorded event in JSON; serialize it with `serde_json`.
///
/// ```
/// # use factum_core::{EventJson, RecordedEvent};
/// # fn show(event: &RecordedEvent) -> serde_json::Result<String> {
/// serde_json::to_string(&EventJson::new(event))
/// # }
/// ```
#[derive(Debug, Serialize)]
pub struct EventJson<'a> {
    id: String,
    stream: &'a str,
    revision: u64,
    position: u64,
    #[serde(rename = "type")]
    event_type: &'a str,
    schema_version: u32,
    content_type: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<Box<RawValue>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    data_base64: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    metadata: Option<Box<RawValue>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    metadata_base64: Option<String>,
    tags: &'a [String],
    recorded_at: String,
}

impl<'a> EventJson<'a> {
    /// The JSON form of `event`: data inline when its content type is JSON and it parses,
    /// base64 otherwise; metadata inline when it parses, base64 otherwise, absent when empty.
    pub fn new(event: &'a RecordedEvent) -> EventJson<'a> {
        let data = is_json_content_type(&event.content_type)
            .then(|| inline_json(&event.data))
            .flatten();
        let data_base64 = data.is_none().then(|| BASE64.encode(&event.data));
        let (metadata, metadata_base64) = if event.metadata.is_empty() {
            (None, None)
        } else {
            match inline_json(&event.metadata) {
                Some(json) => (Some(json), None),
                None => (None, Some(BASE64.encode(&event.metadata))),
            }
        };
        EventJson {
            id: event.id.to_string(),
            stream: event.stream.as_str(),
            revision: event.revision,
            position: event.position.value(),
            event_type: &event.event_type,
            schema_version: event.schema_version,
            content_type: &event.content_type,
            data,
            data_base64,
            metadata,
            metadata_base64,
            tags: &event.tags,
            recorded_at: event.recorded_at.to_string(),
        }
    }
}

/// A proposed event in JSON, as a client writes it: `type`, and `data` (any JSON value,
/// `null` included) or `data_base64`; optionally `metadata` or `metadata_base64`, `id`,
/// `content_type` (default `application/json` for `data`, `application/octet-stream` for
/// `data_base64`), `schema_version` and `tags`. Unknown fields are refused.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProposedEventJson {
    #[serde(rename = "type")]
    event_type: String,
    #[serde(default, deserialize_with = "present")]
    data: Option<Box<RawValue>>,
    data_base64: Option<String>,
    #[serde(default, deserialize_with = "present")]
    metadata: Option<Box<RawValue>>,
    metadata_base64: Option<String>,
    id: Option<String>,
    content_type: Option<String>,
    schema_version: Option<u32>,
    tags: Option<Vec<String>>,
}

/// Keeps a JSON `null` as the value `null` rather than as "absent": null is valid event data.
fn present<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Box<RawValue>>, D::Error> {
    Box::<RawValue>::deserialize(deserializer).map(Some)
}

impl ProposedEventJson {
    /// The event it proposes, or why it cannot be one (both or neither of `data` and
    /// `data_base64`, bad base64, an id that is not a UUID).
    pub fn into_event(self) -> Result<ProposedEvent, String> {
        let (data, default_content_type) = match (self.data, self.data_base64) {
            (Some(data), None) => (Bytes::from(data.get().to_owned()), CONTENT_TYPE_JSON),
            (None, Some(data)) => (base64_bytes(&data, "data_base64")?, CONTENT_TYPE_BYTES),
            (Some(_), Some(_)) => return Err("has both \"data\" and \"data_base64\"".into()),
            (None, None) => return Err("has neither \"data\" nor \"data_base64\"".into()),
        };
        let content_type = self
            .content_type
            .unwrap_or_else(|| default_content_type.to_owned());
        let mut event = ProposedEvent::new(self.event_type, content_type, data);
        match (self.metadata, self.metadata_base64) {
            (Some(metadata), None) => event.metadata = Bytes::from(metadata.get().to_owned()),
            (None, Some(metadata)) => event.metadata = base64_bytes(&metadata, "metadata_base64")?,
            (Some(_), Some(_)) => {
                return Err("has both \"metadata\" and \"metadata_base64\"".into());
            }
            (None, None) => {}
        }
        if let Some(id) = self.id {
            event = event.with_id(parse_event_id(&id)?);
        }
        if let Some(schema_version) = self.schema_version {
            event = event.with_schema_version(schema_version);
        }
        if let Some(tags) = self.tags {
            event = event.with_tags(tags);
        }
        Ok(event)
    }
}

/// Decodes standard base64 (with padding), saying which value (`what`) was wrong.
pub fn base64_bytes(text: &str, what: &str) -> Result<Bytes, String> {
    BASE64
        .decode(text)
        .map(Bytes::from)
        .map_err(|error| format!("{what} is not valid base64: {error}"))
}

/// Parses an event id, saying why it is not one.
pub fn parse_event_id(text: &str) -> Result<Uuid, String> {
    Uuid::parse_str(text).map_err(|error| format!("id {text:?} is not a UUID: {error}"))
}

/// Whether a content type is JSON (`application/json`, with or without parameters).
pub fn is_json_content_type(content_type: &str) -> bool {
    let essence = content_type.split(';').next().unwrap_or_default();
    essence.trim().eq_ignore_ascii_case(CONTENT_TYPE_JSON)
}

/// The bytes as compact JSON to embed, or `None` if they are not valid JSON.
pub fn inline_json(bytes: &[u8]) -> Option<Box<RawValue>> {
    let text = std::str::from_utf8(bytes).ok()?;
    if !text
        .bytes()
        .any(|byte| matches!(byte, b' ' | b'\t' | b'\n' | b'\r'))
    {
        // Already compact: one parse both checks and copies it.
        return serde_json::from_str(text).ok();
    }
    serde_json::from_str::<IgnoredAny>(text).ok()?;
    RawValue::from_string(minify(text)).ok()
}

/// Removes the whitespace between the tokens of valid JSON text, keeping everything else
/// (strings, key order, numbers) exactly as written.
fn minify(json: &str) -> String {
    let mut out = String::with_capacity(json.len());
    let mut in_string = false;
    let mut escaped = false;
    for character in json.chars() {
        if in_string {
            out.push(character);
            if escaped {
                escaped = false;
            } else if character == '\\' {
                escaped = true;
            } else if character == '"' {
                in_string = false;
            }
        } else if !matches!(character, ' ' | '\t' | '\n' | '\r') {
            in_string = character == '"';
            out.push(character);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;
    use crate::{EventId, Position, StreamName, Timestamp};

    fn recorded(content_type: &str, data: &[u8], metadata: &[u8]) -> RecordedEvent {
        RecordedEvent {
            id: EventId(Uuid::parse_str("0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b").unwrap()),
            stream: StreamName::new("account-1").unwrap(),
            revision: 3,
            position: Position(17),
            event_type: "Deposited".into(),
            schema_version: 2,
            content_type: content_type.into(),
            data: data.to_vec().into(),
            metadata: metadata.to_vec().into(),
            tags: vec!["eu".into()],
            recorded_at: Timestamp::from_unix_micros(951_827_696_789_012),
        }
    }

    fn render(event: &RecordedEvent) -> String {
        serde_json::to_string(&EventJson::new(event)).unwrap()
    }

    #[test]
    fn renders_json_data_and_metadata_inline_on_one_line_with_every_field() {
        let event = recorded(
            CONTENT_TYPE_JSON,
            b"{\n  \"amount\": 5,\n  \"note\": \"a b\"\n}",
            br#"{"$correlationId":"c-1"}"#,
        );
        let line = render(&event);
        assert!(!line.contains('\n'), "{line}");
        assert_eq!(
            serde_json::from_str::<Value>(&line).unwrap(),
            json!({
                "id": "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b",
                "stream": "account-1",
                "revision": 3,
                "position": 17,
                "type": "Deposited",
                "schema_version": 2,
                "content_type": "application/json",
                "data": {"amount": 5, "note": "a b"},
                "metadata": {"$correlationId": "c-1"},
                "tags": ["eu"],
                "recorded_at": "2000-02-29T12:34:56.789012Z",
            })
        );
    }

    #[test]
    fn keeps_key_order_and_number_precision_of_json_data() {
        let event = recorded(
            CONTENT_TYPE_JSON,
            br#"{"z":1, "a":123456789012345678901234567890}"#,
            b"",
        );
        let line = render(&event);
        assert!(
            line.contains(r#""data":{"z":1,"a":123456789012345678901234567890}"#),
            "{line}"
        );
    }

    #[test]
    fn renders_binary_or_broken_data_as_base64_and_omits_empty_metadata() {
        let binary = recorded(CONTENT_TYPE_BYTES, &[0, 159, 255], b"");
        let line: Value = serde_json::from_str(&render(&binary)).unwrap();
        assert_eq!(line["data_base64"], "AJ//");
        assert!(line.get("data").is_none());
        assert!(line.get("metadata").is_none());
        assert!(line.get("metadata_base64").is_none());

        // JSON that does not parse is shown as it is stored, not dropped.
        let broken = recorded(CONTENT_TYPE_JSON, b"{oops", b"\xff");
        let line: Value = serde_json::from_str(&render(&broken)).unwrap();
        assert_eq!(line["data_base64"], BASE64.encode(b"{oops"));
        assert_eq!(line["metadata_base64"], "/w==");

        // Only the content type says whether data is JSON; bytes that happen to parse do not.
        let number = recorded(CONTENT_TYPE_BYTES, b"1", b"");
        let line: Value = serde_json::from_str(&render(&number)).unwrap();
        assert_eq!(line["data_base64"], "MQ==");
    }

    #[test]
    fn minify_keeps_strings_intact() {
        assert_eq!(
            minify(" { \"a b\" : \"x \\\" y\\\\\" , \"c\" : [ 1 , 2 ] } "),
            r#"{"a b":"x \" y\\","c":[1,2]}"#
        );
    }

    fn parse(text: &str) -> Result<ProposedEvent, String> {
        serde_json::from_str::<ProposedEventJson>(text)
            .map_err(|error| error.to_string())?
            .into_event()
    }

    #[test]
    fn parses_every_field_keeping_json_data_as_written() {
        let event = parse(
            r#"{"type":"Opened","data":{"b":1.50, "a":2},"metadata":{"m":true},
                "id":"0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b","schema_version":3,"tags":["t"]}"#,
        )
        .unwrap();
        assert_eq!(event.event_type, "Opened");
        assert_eq!(event.content_type, CONTENT_TYPE_JSON);
        assert_eq!(&event.data[..], br#"{"b":1.50, "a":2}"#);
        assert_eq!(&event.metadata[..], br#"{"m":true}"#);
        assert_eq!(event.id.to_string(), "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b");
        assert_eq!(event.schema_version, 3);
        assert_eq!(event.tags, ["t"]);
    }

    #[test]
    fn parses_binary_null_and_typed_data() {
        let event = parse(r#"{"type":"Blob","data_base64":"AJ//"}"#).unwrap();
        assert_eq!(event.content_type, CONTENT_TYPE_BYTES);
        assert_eq!(&event.data[..], &[0, 159, 255]);
        assert!(event.metadata.is_empty());
        let event = parse(r#"{"type":"Nothing","data":null}"#).unwrap();
        assert_eq!(&event.data[..], b"null");
        let event =
            parse(r#"{"type":"Csv","data_base64":"YSxi","content_type":"text/csv"}"#).unwrap();
        assert_eq!(event.content_type, "text/csv");
    }

    #[test]
    fn refuses_what_is_not_an_event_and_says_why() {
        for (text, says) in [
            (r#"{"data":{}}"#, "missing field `type`"),
            (r#"{"type":"T"}"#, "neither"),
            (r#"{"type":"T","data":1,"data_base64":"AA=="}"#, "both"),
            (
                r#"{"type":"T","data":1,"metadata":1,"metadata_base64":""}"#,
                "both",
            ),
            (r#"{"type":"T","data_base64":"%%"}"#, "base64"),
            (r#"{"type":"T","data":1,"id":"nope"}"#, "UUID"),
            (r#"{"type":"T","data":1,"colour":"red"}"#, "unknown field"),
            (
                r#"{"type":"T","data":1,"schema_version":-1}"#,
                "invalid value",
            ),
        ] {
            let error = parse(text).unwrap_err();
            assert!(error.contains(says), "{text}: {error}");
        }
    }
}
