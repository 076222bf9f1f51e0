//! Events in JSON: what an append's body proposes, and how recorded events are rendered.
//!
//! Data and metadata that are JSON are embedded as the writer wrote them (key order and number
//! precision survive); other bytes travel as standard base64 in `data_base64` and
//! `metadata_base64`. Pure functions.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use factum_core::{CONTENT_TYPE_BYTES, CONTENT_TYPE_JSON, ProposedEvent, RecordedEvent};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::value::RawValue;
use uuid::Uuid;

use super::error::HttpError;

/// One recorded event, as reads and subscriptions return it.
#[derive(Serialize)]
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

/// Renders events as a JSON array's elements.
pub fn events_json(events: &[RecordedEvent]) -> Vec<EventJson<'_>> {
    events.iter().map(EventJson::new).collect()
}

/// Whether a content type is JSON (`application/json`, with or without parameters).
pub fn is_json_content_type(content_type: &str) -> bool {
    let essence = content_type.split(';').next().unwrap_or_default();
    essence.trim().eq_ignore_ascii_case(CONTENT_TYPE_JSON)
}

fn inline_json(bytes: &[u8]) -> Option<Box<RawValue>> {
    let text = std::str::from_utf8(bytes).ok()?;
    serde_json::from_str(text).ok()
}

/// One event of an append's body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProposedJson {
    id: Option<String>,
    #[serde(rename = "type")]
    event_type: String,
    #[serde(default, deserialize_with = "present")]
    data: Option<Box<RawValue>>,
    data_base64: Option<String>,
    #[serde(default, deserialize_with = "present")]
    metadata: Option<Box<RawValue>>,
    metadata_base64: Option<String>,
    content_type: Option<String>,
    schema_version: Option<u32>,
    tags: Option<Vec<String>>,
}

/// Keeps a JSON `null` as the value `null` rather than as "absent": null is valid event data.
fn present<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Box<RawValue>>, D::Error> {
    Box::<RawValue>::deserialize(deserializer).map(Some)
}

/// Parses an append's body: a JSON array of events.
pub fn parse_append(body: &[u8]) -> Result<Vec<ProposedEvent>, HttpError> {
    let parsed: Vec<ProposedJson> = serde_json::from_slice(body).map_err(|error| {
        HttpError::bad_request(
            "invalid_json",
            format!("the body is not a JSON array of events: {error}"),
        )
    })?;
    parsed
        .into_iter()
        .enumerate()
        .map(|(index, event)| {
            proposed(event).map_err(|reason| {
                HttpError::bad_request("invalid_event", format!("event {index}: {reason}"))
            })
        })
        .collect()
}

fn proposed(parsed: ProposedJson) -> Result<ProposedEvent, String> {
    let (data, default_content_type) = match (parsed.data, parsed.data_base64) {
        (Some(data), None) => (Bytes::from(data.get().to_owned()), CONTENT_TYPE_JSON),
        (None, Some(data)) => (base64(&data, "data_base64")?, CONTENT_TYPE_BYTES),
        (Some(_), Some(_)) => return Err("has both \"data\" and \"data_base64\"".into()),
        (None, None) => return Err("has neither \"data\" nor \"data_base64\"".into()),
    };
    let content_type = parsed
        .content_type
        .unwrap_or_else(|| default_content_type.to_owned());
    let mut event = ProposedEvent::new(parsed.event_type, content_type, data);
    match (parsed.metadata, parsed.metadata_base64) {
        (Some(metadata), None) => event.metadata = Bytes::from(metadata.get().to_owned()),
        (None, Some(metadata)) => event.metadata = base64(&metadata, "metadata_base64")?,
        (Some(_), Some(_)) => return Err("has both \"metadata\" and \"metadata_base64\"".into()),
        (None, None) => {}
    }
    if let Some(id) = parsed.id {
        let id = Uuid::parse_str(&id).map_err(|_| format!("id {id:?} is not a UUID"))?;
        event = event.with_id(id);
    }
    if let Some(schema_version) = parsed.schema_version {
        event = event.with_schema_version(schema_version);
    }
    if let Some(tags) = parsed.tags {
        event = event.with_tags(tags);
    }
    Ok(event)
}

fn base64(text: &str, field: &str) -> Result<Bytes, String> {
    BASE64
        .decode(text)
        .map(Bytes::from)
        .map_err(|error| format!("{field} is not valid base64: {error}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_data_is_kept_as_written_and_bytes_travel_as_base64() {
        let events = parse_append(
            br#"[{"type":"A","data":{"b":1.50,"a":null}},
                {"type":"B","data_base64":"AAE=","metadata":{"m":1},
                 "id":"0190a9b0-0000-7000-8000-000000000001","tags":["t"]}]"#,
        )
        .unwrap();
        assert_eq!(&events[0].data[..], br#"{"b":1.50,"a":null}"#);
        assert_eq!(events[0].content_type, CONTENT_TYPE_JSON);
        assert_eq!(&events[1].data[..], [0, 1]);
        assert_eq!(events[1].content_type, CONTENT_TYPE_BYTES);
        assert_eq!(&events[1].metadata[..], br#"{"m":1}"#);
        assert_eq!(
            events[1].id.to_string(),
            "0190a9b0-0000-7000-8000-000000000001"
        );
        assert_eq!(events[1].tags, ["t"]);
    }

    #[test]
    fn bad_events_name_the_event_and_the_problem() {
        let check = |body: &str, code: &str, needle: &str| {
            let error = parse_append(body.as_bytes()).unwrap_err().to_json();
            assert_eq!(error["error"]["code"], code, "{body}");
            let message = error["error"]["message"].as_str().unwrap();
            assert!(message.contains(needle), "{message}");
        };
        check("{", "invalid_json", "JSON array");
        check(r#"{"type":"A","data":1}"#, "invalid_json", "JSON array");
        check(r#"[{"type":"A"}]"#, "invalid_event", "neither");
        check(
            r#"[{"type":"A","data":1,"data_base64":""}]"#,
            "invalid_event",
            "both",
        );
        check(
            r#"[{"type":"A","data_base64":"!"}]"#,
            "invalid_event",
            "base64",
        );
        check(
            r#"[{"type":"A","data":1,"id":"x"}]"#,
            "invalid_event",
            "UUID",
        );
        check(
            r#"[{"type":"A","data":1,"extra":1}]"#,
            "invalid_json",
            "extra",
        );
    }
}
