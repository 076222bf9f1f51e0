//! Stream names: validated once, cheap to clone.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use crate::error::Error;

/// The prefix that turns stream `s` into its metadata stream `$$s`.
const METADATA_PREFIX: &str = "$$";

/// The name of a stream, checked against the rules below when it is made.
///
/// - not empty, at most [`StreamName::BYTES_MAX`] bytes of UTF-8, no control characters;
/// - not `$all`, which names the global log, not a stream;
/// - a metadata stream `$$s` names a valid non-metadata stream `s` (so `$$` alone and `$$$$s`
///   are refused) and may exceed the limit by the two bytes of its prefix.
///
/// Names starting with `$` are **system streams**: `$all` reads and subscriptions leave their
/// events out unless asked to include them.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StreamName(Arc<str>);

impl StreamName {
    /// The longest stream name, in bytes (a metadata stream adds two).
    pub const BYTES_MAX: usize = 255;

    /// Checks `name` and makes it a stream name, or says what is wrong with it
    /// ([`Error::InvalidStreamName`]).
    pub fn new(name: impl AsRef<str>) -> Result<StreamName, Error> {
        let name = name.as_ref();
        let invalid = |reason: &'static str| Error::InvalidStreamName {
            name: truncate_for_error(name),
            reason,
        };
        let base = name.strip_prefix(METADATA_PREFIX).unwrap_or(name);
        if base.is_empty() {
            return Err(invalid("a stream name must not be empty"));
        }
        if base.len() > Self::BYTES_MAX {
            return Err(invalid("a stream name must be at most 255 bytes"));
        }
        if base.chars().any(char::is_control) {
            return Err(invalid("a stream name must not contain control characters"));
        }
        if base == "$all" {
            return Err(invalid("`$all` names the global log, not a stream"));
        }
        if base.starts_with(METADATA_PREFIX) && base.len() != name.len() {
            return Err(invalid(
                "a metadata stream has no metadata stream of its own",
            ));
        }
        Ok(StreamName(Arc::from(name)))
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether this is a system stream (its name starts with `$`).
    pub fn is_system(&self) -> bool {
        self.0.starts_with('$')
    }

    /// Whether this is the metadata stream `$$s` of some stream `s`.
    pub fn is_metadata(&self) -> bool {
        self.0.starts_with(METADATA_PREFIX)
    }

    /// The metadata stream `$$s` of this stream `s`, or `None` if this already is a metadata
    /// stream.
    pub fn metadata_stream(&self) -> Option<StreamName> {
        if self.is_metadata() {
            return None;
        }
        Some(StreamName(Arc::from(format!(
            "{METADATA_PREFIX}{}",
            self.0
        ))))
    }

    /// For a metadata stream `$$s`, the stream `s` it describes.
    pub fn metadata_of(&self) -> Option<StreamName> {
        let base = self.0.strip_prefix(METADATA_PREFIX)?;
        Some(StreamName(Arc::from(base)))
    }
}

/// Keeps error messages short when a caller sends a megabyte-long "name".
fn truncate_for_error(name: &str) -> String {
    const SHOWN_CHARS_MAX: usize = 300;
    if name.chars().count() <= SHOWN_CHARS_MAX {
        return name.to_owned();
    }
    let shown: String = name.chars().take(SHOWN_CHARS_MAX).collect();
    format!("{shown}…")
}

impl FromStr for StreamName {
    type Err = Error;

    fn from_str(name: &str) -> Result<StreamName, Error> {
        StreamName::new(name)
    }
}

impl TryFrom<&str> for StreamName {
    type Error = Error;

    fn try_from(name: &str) -> Result<StreamName, Error> {
        StreamName::new(name)
    }
}

impl TryFrom<String> for StreamName {
    type Error = Error;

    fn try_from(name: String) -> Result<StreamName, Error> {
        StreamName::new(name)
    }
}

impl AsRef<str> for StreamName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for StreamName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for StreamName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(name: &str, valid: bool) {
        let result = StreamName::new(name);
        assert_eq!(result.is_ok(), valid, "{name:?}: {result:?}");
    }

    #[test]
    fn accepts_ordinary_and_system_names() {
        check("account-42", true);
        check("$snapshots-account-42", true);
        check("$$account-42", true);
        check("$$$snapshots-account-42", true);
        check("ünïcødé stream", true);
        check(&"a".repeat(255), true);
        check(&format!("$${}", "a".repeat(255)), true);
    }

    #[test]
    fn refuses_bad_names() {
        check("", false);
        check("$$", false);
        check(&"a".repeat(256), false);
        check(&format!("$${}", "a".repeat(256)), false);
        check("$all", false);
        check("$$$all", false);
        check("$$$$account", false);
        check("tab\there", false);
        check("nul\0", false);
    }

    #[test]
    fn maps_streams_to_their_metadata_streams() {
        let stream = StreamName::new("account-42").unwrap();
        let metadata = stream.metadata_stream().unwrap();
        assert_eq!(metadata.as_str(), "$$account-42");
        assert!(metadata.is_metadata());
        assert!(metadata.is_system());
        assert!(!stream.is_system());
        assert_eq!(metadata.metadata_of(), Some(stream));
        assert_eq!(metadata.metadata_stream(), None);
    }
}
