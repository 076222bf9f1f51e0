//! JSON in and out: recorded events rendered as one-line JSON objects, and the events of
//! `append --jsonl` parsed from them, in the JSON form of events every Factum tool shares
//! (`factum_core::event_json`, the HTTP API's too). Pure functions, no I/O.

use factum_core::event_json::{ProposedEventJson, inline_json};
use factum_core::{
    AppendResult, CurrentRevision, DeleteResult, EventJson, ProposedEvent, RecordedEvent,
    StreamMetadataResult,
};
use serde::de::IgnoredAny;

/// Renders a recorded event as one line of JSON (without the newline).
pub fn render_event(event: &RecordedEvent) -> String {
    serde_json::to_string(&EventJson::new(event)).expect("an event line is plain JSON")
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

/// Checks that `text` (the value of option `what`) is valid JSON, and returns its bytes as
/// written.
pub fn json_bytes(text: &str, what: &str) -> Result<Vec<u8>, String> {
    serde_json::from_str::<IgnoredAny>(text)
        .map_err(|error| format!("{what} is not valid JSON: {error}"))?;
    Ok(text.as_bytes().to_vec())
}

/// Parses one line of `append --jsonl` into the event it proposes.
pub fn parse_event_line(line: &str) -> Result<ProposedEvent, String> {
    serde_json::from_str::<ProposedEventJson>(line)
        .map_err(|error| format!("not a valid event: {error}"))?
        .into_event()
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
    use factum_core::{Position, StreamMetadata};

    use super::*;

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
    }
}
