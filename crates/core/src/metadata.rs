//! Stream metadata: the `$metadata` events of stream `s`'s metadata stream `$$s`.

use std::time::Duration;

use serde_json::{Map, Value};

use crate::error::Error;
use crate::revision::CurrentRevision;
use crate::timestamp::Timestamp;

/// The event type of every event in a metadata stream.
pub const METADATA_EVENT_TYPE: &str = "$metadata";

const MAX_COUNT: &str = "$maxCount";
const MAX_AGE: &str = "$maxAge";
const TRUNCATE_BEFORE: &str = "$tb";
const ACL: &str = "$acl";

/// A stream's metadata: the JSON object of the latest `$metadata` event in `$$stream`.
///
/// The store honours `$maxCount` (reads return only the newest N events), `$maxAge` (reads
/// leave out events recorded more than this many seconds ago), `$tb` (truncate before: reads
/// leave out revisions below it; a soft delete sets it past the last revision) and keeps `$acl`
/// for access control. Other keys are the user's and are kept as they are. Until physical
/// cleanup (a later release), what these rules hide stays visible in `$all`.
///
/// `$tb` past a stream's last revision makes the stream read as not found (that is what a soft
/// delete writes), also when it is set before the stream is written: such a stream stays "not
/// found" until its revisions reach `$tb`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StreamMetadata {
    /// `$maxCount`: keep only the newest this many events visible.
    pub max_count: Option<u64>,
    /// `$maxAge`: keep only events recorded within this duration (whole seconds) visible.
    pub max_age: Option<Duration>,
    /// `$tb`: revisions below this are not visible.
    pub truncate_before: Option<u64>,
    /// `$acl`: the access control list, kept verbatim for the server.
    pub acl: Option<Value>,
    /// Every other key, kept verbatim.
    pub custom: Map<String, Value>,
}

impl StreamMetadata {
    /// Parses the JSON object stored in a `$metadata` event, checking the types of the keys the
    /// store honours ([`Error::InvalidMetadata`] otherwise).
    pub fn from_json(bytes: &[u8]) -> Result<StreamMetadata, Error> {
        let invalid = |reason: String| Error::InvalidMetadata { reason };
        let value: Value = serde_json::from_slice(bytes)
            .map_err(|error| invalid(format!("not valid JSON: {error}")))?;
        let Value::Object(mut object) = value else {
            return Err(invalid("stream metadata must be a JSON object".into()));
        };
        let mut count = |key: &str| -> Result<Option<u64>, Error> {
            match object.remove(key) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::Number(number)) => match number.as_u64() {
                    Some(value) if value <= i64::MAX as u64 => Ok(Some(value)),
                    _ => Err(invalid(format!(
                        "{key} must be a whole number from 0 to 2^63-1"
                    ))),
                },
                Some(_) => Err(invalid(format!("{key} must be a number"))),
            }
        };
        let max_count = count(MAX_COUNT)?;
        let max_age = count(MAX_AGE)?.map(Duration::from_secs);
        let truncate_before = count(TRUNCATE_BEFORE)?;
        let acl = object.remove(ACL).filter(|acl| !acl.is_null());
        Ok(StreamMetadata {
            max_count,
            max_age,
            truncate_before,
            acl,
            custom: object,
        })
    }

    /// The JSON object to store in a `$metadata` event.
    pub fn to_json(&self) -> Vec<u8> {
        let mut object = self.custom.clone();
        if let Some(max_count) = self.max_count {
            object.insert(MAX_COUNT.into(), max_count.into());
        }
        if let Some(max_age) = self.max_age {
            object.insert(MAX_AGE.into(), max_age.as_secs().into());
        }
        if let Some(truncate_before) = self.truncate_before {
            object.insert(TRUNCATE_BEFORE.into(), truncate_before.into());
        }
        if let Some(acl) = &self.acl {
            object.insert(ACL.into(), acl.clone());
        }
        serde_json::to_vec(&Value::Object(object)).expect("a JSON map always encodes")
    }

    /// The lowest revision a stream read may return, given the stream's last revision, by
    /// `$tb` and `$maxCount` (`$maxAge` depends on each event's time: see [`Self::is_expired`]).
    /// A result past `last_revision` means no event is visible.
    pub fn first_visible_revision(&self, last_revision: u64) -> u64 {
        let by_truncation = self.truncate_before.unwrap_or(0);
        let by_count = match self.max_count {
            Some(max_count) => (last_revision + 1).saturating_sub(max_count),
            None => 0,
        };
        by_truncation.max(by_count)
    }

    /// Whether `$maxAge` hides an event recorded at `recorded_at`, seen at `now`.
    pub fn is_expired(&self, recorded_at: Timestamp, now: Timestamp) -> bool {
        match self.max_age {
            Some(max_age) => recorded_at < now.saturating_sub(max_age),
            None => false,
        }
    }
}

/// A stream's metadata and the revision of the metadata stream it was read at.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamMetadataResult {
    /// The latest metadata (the default, with no rules, if none was ever set).
    pub metadata: StreamMetadata,
    /// The metadata stream's revision: pass it as the expected revision when setting new
    /// metadata, to update without losing a concurrent change.
    pub revision: CurrentRevision,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_known_and_unknown_keys() {
        let json = br#"{"$maxCount":10,"$maxAge":60,"$tb":3,"$acl":{"$r":"ops"},"owner":"team-a"}"#;
        let metadata = StreamMetadata::from_json(json).unwrap();
        assert_eq!(metadata.max_count, Some(10));
        assert_eq!(metadata.max_age, Some(Duration::from_secs(60)));
        assert_eq!(metadata.truncate_before, Some(3));
        assert_eq!(metadata.acl, Some(serde_json::json!({"$r": "ops"})));
        assert_eq!(metadata.custom.get("owner"), Some(&Value::from("team-a")));
        let again = StreamMetadata::from_json(&metadata.to_json()).unwrap();
        assert_eq!(again, metadata);
    }

    #[test]
    fn refuses_what_it_cannot_honour() {
        for bad in [
            &b"[]"[..],
            b"not json",
            br#"{"$maxCount":-1}"#,
            br#"{"$tb":"3"}"#,
            br#"{"$maxAge":1.5}"#,
        ] {
            let error = StreamMetadata::from_json(bad).unwrap_err();
            assert!(matches!(error, Error::InvalidMetadata { .. }), "{error:?}");
        }
    }

    #[test]
    fn first_visible_revision_takes_the_stricter_rule() {
        let mut metadata = StreamMetadata::default();
        assert_eq!(metadata.first_visible_revision(9), 0);
        metadata.max_count = Some(3);
        assert_eq!(metadata.first_visible_revision(9), 7);
        metadata.truncate_before = Some(8);
        assert_eq!(metadata.first_visible_revision(9), 8);
        metadata.max_count = Some(0);
        assert_eq!(metadata.first_visible_revision(9), 10);
    }
}
