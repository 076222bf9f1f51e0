//! JSON in and out: recorded events rendered as one-line JSON objects, and the events of
//! `append --jsonl` parsed from them. Pure functions, no I/O.
//!
//! Event data and metadata are passed through verbatim where possible: JSON is embedded as the
//! writer wrote it (only whitespace between tokens is removed, so one event stays one line), so
//! key order and number precision survive a round trip that parsing into a map would lose.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use factum_core::{
    AppendResult, CONTENT_TYPE_BYTES, CONTENT_TYPE_JSON, CurrentRevision, DeleteResult,
    ProposedEvent, RecordedEvent, StreamMetadataResult,
};
use serde::de::IgnoredAny;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::value::RawValue;
use uuid::Uuid;

/// One recorded event, as `read`, `read-all` and `tail` print it.
#[derive(Serialize)]
struct EventLine<'a> {
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

/// Renders a recorded event as one line of JSON (without the newline).
///
/// Data is inline JSON when its content type is JSON and it parses, `data_base64` otherwise;
/// metadata is inline JSON when it parses, `metadata_base64` otherwise, and absent when empty.
pub fn render_event(event: &RecordedEvent) -> String {
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
    let line = EventLine {
        id: event.id.to_string(),
        stream: event.stream.as_str(),
        revision: event.revision,
        position: event.position.0,
        event_type: &event.event_type,
        schema_version: event.schema_version,
        content_type: &event.content_type,
        data,
        data_base64,
        metadata,
        metadata_base64,
        tags: &event.tags,
        recorded_at: event.recorded_at.to_string(),
    };
    serde_json::to_string(&line).expect("an event line is plain JSON")
}

/// Renders what an append returns: `{"position":P,"revision":R}`.
pub fn render_append(result: &AppendResult) -> String {
    format!(
        r#"{{"position":{},"revision":{}}}"#,
        result.position.0, result.revision
    )
}

/// Renders what a delete returns: `{"position":P}`.
pub fn render_delete(result: &DeleteResult) -> String {
    format!(r#"{{"position":{}}}"#, result.position.0)
}

/// Renders a stream's metadata and its metadata stream's revision (null when never set):
/// `{"metadata":{...},"revision":R}`.
pub fn render_metadata(result: &StreamMetadataResult) -> String {
    let metadata = inline_json(&result.metadata.to_json()).expect("metadata is a JSON object");
    let revision = match result.revision {
        CurrentRevision::NoStream => "null".to_owned(),
        CurrentRevision::Current(revision) => revision.to_string(),
    };
    format!(r#"{{"metadata":{},"revision":{revision}}}"#, metadata.get())
}

/// Whether a content type is JSON (`application/json`, with or without parameters).
fn is_json_content_type(content_type: &str) -> bool {
    let essence = content_type.split(';').next().unwrap_or_default();
    essence.trim().eq_ignore_ascii_case(CONTENT_TYPE_JSON)
}

/// The bytes as compact JSON to embed, or `None` if they are not valid JSON.
fn inline_json(bytes: &[u8]) -> Option<Box<RawValue>> {
    let text = std::str::from_utf8(bytes).ok()?;
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

/// Checks that `text` (the value of option `what`) is valid JSON, and returns its bytes as
/// written.
pub fn json_bytes(text: &str, what: &str) -> Result<Vec<u8>, String> {
    serde_json::from_str::<IgnoredAny>(text)
        .map_err(|error| format!("{what} is not valid JSON: {error}"))?;
    Ok(text.as_bytes().to_vec())
}

/// Decodes standard base64 (with padding), saying which value was wrong.
pub fn base64_bytes(text: &str, what: &str) -> Result<Vec<u8>, String> {
    BASE64
        .decode(text)
        .map_err(|error| format!("{what} is not valid base64: {error}"))
}

/// Parses an event id.
pub fn event_id(text: &str) -> Result<Uuid, String> {
    Uuid::parse_str(text).map_err(|error| format!("{text:?} is not a UUID: {error}"))
}

/// One line of `append --jsonl`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProposedLine {
    #[serde(rename = "type")]
    event_type: String,
    #[serde(default, deserialize_with = "present")]
    data: Option<Box<RawValue>>,
    data_base64: Option<String>,
    #[serde(default, deserialize_with = "present")]
    metadata: Option<Box<RawValue>>,
    metadata_base64: Option<String>,
    id: Option<String>,
    schema_version: Option<u32>,
    tags: Option<Vec<String>>,
}

/// Keeps a JSON `null` as the value `null` rather than as "absent": null is valid event data.
fn present<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Box<RawValue>>, D::Error> {
    Box::<RawValue>::deserialize(deserializer).map(Some)
}

/// Parses one line of `append --jsonl` into the event it proposes.
pub fn parse_event_line(line: &str) -> Result<ProposedEvent, String> {
    let parsed: ProposedLine =
        serde_json::from_str(line).map_err(|error| format!("not a valid event: {error}"))?;
    let mut event = match (parsed.data, parsed.data_base64) {
        (Some(data), None) => ProposedEvent::new(
            parsed.event_type,
            CONTENT_TYPE_JSON,
            data.get().as_bytes().to_vec(),
        ),
        (None, Some(data)) => ProposedEvent::new(
            parsed.event_type,
            CONTENT_TYPE_BYTES,
            base64_bytes(&data, "data_base64")?,
        ),
        (Some(_), Some(_)) => return Err("has both \"data\" and \"data_base64\"".into()),
        (None, None) => return Err("has neither \"data\" nor \"data_base64\"".into()),
    };
    match (parsed.metadata, parsed.metadata_base64) {
        (Some(metadata), None) => event.metadata = metadata.get().as_bytes().to_vec().into(),
        (None, Some(metadata)) => {
            event.metadata = base64_bytes(&metadata, "metadata_base64")?.into()
        }
        (Some(_), Some(_)) => return Err("has both \"metadata\" and \"metadata_base64\"".into()),
        (None, None) => {}
    }
    if let Some(id) = parsed.id {
        event = event.with_id(event_id(&id)?);
    }
    if let Some(schema_version) = parsed.schema_version {
        event = event.with_schema_version(schema_version);
    }
    if let Some(tags) = parsed.tags {
        event = event.with_tags(tags);
    }
    Ok(event)
}

/// Parses every non-blank line of `append --jsonl` input; the first bad line fails them all.
pub fn parse_event_lines(text: &str) -> Result<Vec<ProposedEvent>, String> {
    let mut events = Vec::new();
    for (index, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let event =
            parse_event_line(line).map_err(|error| format!("line {}: {error}", index + 1))?;
        events.push(event);
    }
    if events.is_empty() {
        return Err("the input has no events (one JSON object a line)".into());
    }
    Ok(events)
}

#[cfg(test)]
mod tests {
    use factum_core::{EventId, Position, StreamMetadata, StreamName, Timestamp};
    use serde_json::{Value, json};

    use super::*;

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

    fn check_render(event: &RecordedEvent, expected: Value) {
        let line = render_event(event);
        assert!(!line.contains('\n'), "{line}");
        let parsed: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(parsed, expected, "{line}");
    }

    #[test]
    fn renders_json_data_and_metadata_inline_with_every_field() {
        let event = recorded(
            CONTENT_TYPE_JSON,
            b"{\n  \"amount\": 5,\n  \"note\": \"a b\"\n}",
            br#"{"$correlationId":"c-1"}"#,
        );
        check_render(
            &event,
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
            }),
        );
    }

    #[test]
    fn keeps_key_order_and_number_precision_of_json_data() {
        let event = recorded(
            CONTENT_TYPE_JSON,
            br#"{"z":1, "a":123456789012345678901234567890}"#,
            b"",
        );
        let line = render_event(&event);
        assert!(
            line.contains(r#""data":{"z":1,"a":123456789012345678901234567890}"#),
            "{line}"
        );
    }

    #[test]
    fn renders_binary_or_broken_data_as_base64_and_omits_empty_metadata() {
        let binary = recorded(CONTENT_TYPE_BYTES, &[0, 159, 255], b"");
        let line: Value = serde_json::from_str(&render_event(&binary)).unwrap();
        assert_eq!(line["data_base64"], "AJ//");
        assert!(line.get("data").is_none());
        assert!(line.get("metadata").is_none());
        assert!(line.get("metadata_base64").is_none());

        // JSON that does not parse is shown as it is stored, not dropped.
        let broken = recorded(CONTENT_TYPE_JSON, b"{oops", b"\xff");
        let line: Value = serde_json::from_str(&render_event(&broken)).unwrap();
        assert_eq!(line["data_base64"], BASE64.encode(b"{oops"));
        assert_eq!(line["metadata_base64"], "/w==");
    }

    #[test]
    fn a_json_string_in_binary_data_stays_base64() {
        // Only the content type says whether data is JSON; bytes that happen to parse do not.
        let event = recorded(CONTENT_TYPE_BYTES, b"1", b"");
        let line: Value = serde_json::from_str(&render_event(&event)).unwrap();
        assert_eq!(line["data_base64"], "MQ==");
    }

    #[test]
    fn minify_keeps_strings_intact() {
        assert_eq!(
            minify(" { \"a b\" : \"x \\\" y\\\\\" , \"c\" : [ 1 , 2 ] } "),
            r#"{"a b":"x \" y\\","c":[1,2]}"#
        );
    }

    #[test]
    fn renders_results() {
        let append = AppendResult {
            position: Position(9),
            revision: 2,
        };
        assert_eq!(render_append(&append), r#"{"position":9,"revision":2}"#);
        let delete = DeleteResult {
            position: Position(4),
        };
        assert_eq!(render_delete(&delete), r#"{"position":4}"#);
        let none = StreamMetadataResult {
            metadata: StreamMetadata::default(),
            revision: CurrentRevision::NoStream,
        };
        assert_eq!(render_metadata(&none), r#"{"metadata":{},"revision":null}"#);
        let some = StreamMetadataResult {
            metadata: StreamMetadata {
                max_count: Some(5),
                ..StreamMetadata::default()
            },
            revision: CurrentRevision::Current(1),
        };
        assert_eq!(
            render_metadata(&some),
            r#"{"metadata":{"$maxCount":5},"revision":1}"#
        );
    }

    #[test]
    fn parses_a_full_event_line() {
        let line = r#"{"type":"Opened","data":{"b":1, "a":2},"metadata":{"m":true},"id":"0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b","schema_version":3,"tags":["t"]}"#;
        let event = parse_event_line(line).unwrap();
        assert_eq!(event.event_type, "Opened");
        assert_eq!(event.content_type, CONTENT_TYPE_JSON);
        assert_eq!(&event.data[..], br#"{"b":1, "a":2}"#);
        assert_eq!(&event.metadata[..], br#"{"m":true}"#);
        assert_eq!(event.id.to_string(), "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b");
        assert_eq!(event.schema_version, 3);
        assert_eq!(event.tags, vec!["t".to_owned()]);
    }

    #[test]
    fn parses_binary_and_null_data() {
        let event = parse_event_line(r#"{"type":"Blob","data_base64":"AJ//"}"#).unwrap();
        assert_eq!(event.content_type, CONTENT_TYPE_BYTES);
        assert_eq!(&event.data[..], &[0, 159, 255]);
        assert!(event.metadata.is_empty());
        let event = parse_event_line(r#"{"type":"Nothing","data":null}"#).unwrap();
        assert_eq!(&event.data[..], b"null");
    }

    #[test]
    fn refuses_bad_event_lines() {
        for (line, says) in [
            (r#"{"data":{}}"#, "missing field `type`"),
            (r#"{"type":"T"}"#, "neither"),
            (r#"{"type":"T","data":1,"data_base64":"AA=="}"#, "both"),
            (r#"{"type":"T","data_base64":"%%"}"#, "base64"),
            (r#"{"type":"T","data":1,"id":"nope"}"#, "UUID"),
            (r#"{"type":"T","data":1,"colour":"red"}"#, "unknown field"),
            (
                r#"{"type":"T","data":1,"schema_version":-1}"#,
                "not a valid event",
            ),
            (r#"{"type":"T","data":"#, "not a valid event"),
        ] {
            let error = parse_event_line(line).unwrap_err();
            assert!(error.contains(says), "{line}: {error}");
        }
    }

    #[test]
    fn the_first_bad_line_fails_all_and_names_its_number() {
        let text = "{\"type\":\"A\",\"data\":1}\n\n{\"type\":\"B\"}\n{\"type\":\"C\",\"data\":3}\n";
        let error = parse_event_lines(text).unwrap_err();
        assert!(error.starts_with("line 3: "), "{error}");
        let events = parse_event_lines("{\"type\":\"A\",\"data\":1}\n\n").unwrap();
        assert_eq!(events.len(), 1);
        assert!(
            parse_event_lines("\n  \n")
                .unwrap_err()
                .contains("no events")
        );
    }

    #[test]
    fn checks_option_values() {
        assert_eq!(json_bytes(" [1] ", "--data").unwrap(), b" [1] ");
        let error = json_bytes("{oops", "--data").unwrap_err();
        assert!(error.starts_with("--data is not valid JSON: "), "{error}");
        assert!(base64_bytes("AA==", "x").is_ok());
        assert!(event_id("not-a-uuid").is_err());
    }
}
