//! Events in JSON for the HTTP API: the shared JSON form of events (`factum_core::event_json`)
//! with the API's errors. Pure functions.

use factum_core::event_json::ProposedEventJson;
pub use factum_core::event_json::is_json_content_type;
use factum_core::{EventJson, ProposedEvent, RecordedEvent};

use super::error::HttpError;

/// Renders events as a JSON array's elements.
pub fn events_json(events: &[RecordedEvent]) -> Vec<EventJson<'_>> {
    events.iter().map(EventJson::new).collect()
}

/// Parses an append's body: a JSON array of events.
pub fn parse_append(body: &[u8]) -> Result<Vec<ProposedEvent>, HttpError> {
    let parsed: Vec<ProposedEventJson> = serde_json::from_slice(body).map_err(|error| {
        HttpError::bad_request(
            "invalid_json",
            format!("the body is not a JSON array of events: {error}"),
        )
    })?;
    parsed
        .into_iter()
        .enumerate()
        .map(|(index, event)| {
            event.into_event().map_err(|reason| {
                HttpError::bad_request("invalid_event", format!("event {index}: {reason}"))
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use factum_core::{CONTENT_TYPE_BYTES, CONTENT_TYPE_JSON};

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
