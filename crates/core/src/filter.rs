//! Filters for `$all` reads and subscriptions.

use std::fmt;

use crate::error::Error;
use crate::event::RecordedEvent;
use crate::name::StreamName;

/// Which events of `$all` a read or subscription wants, by stream name or event type.
///
/// Prefix filters match when any of their prefixes starts the name (an empty list matches
/// nothing). Regex filters match when the regex finds a match anywhere in the name (as in
/// KurrentDB: anchor with `^…$` for a whole-name match); they support look-around, so the
/// look-ahead regexes KurrentDB clients send work unchanged.
#[derive(Debug, Clone)]
pub enum EventFilter {
    /// Streams whose name starts with one of these prefixes.
    StreamPrefix(Vec<String>),
    /// Events whose type starts with one of these prefixes.
    EventTypePrefix(Vec<String>),
    /// Streams whose name matches this regex.
    StreamRegex(FilterRegex),
    /// Events whose type matches this regex.
    EventTypeRegex(FilterRegex),
}

impl EventFilter {
    /// Events of streams whose name starts with `prefix`.
    pub fn stream_prefix(prefix: impl Into<String>) -> EventFilter {
        EventFilter::StreamPrefix(vec![prefix.into()])
    }

    /// Events whose type starts with `prefix`.
    pub fn event_type_prefix(prefix: impl Into<String>) -> EventFilter {
        EventFilter::EventTypePrefix(vec![prefix.into()])
    }

    /// Events of streams whose name matches `pattern`.
    pub fn stream_regex(pattern: &str) -> Result<EventFilter, Error> {
        Ok(EventFilter::StreamRegex(FilterRegex::new(pattern)?))
    }

    /// Events whose type matches `pattern`.
    pub fn event_type_regex(pattern: &str) -> Result<EventFilter, Error> {
        Ok(EventFilter::EventTypeRegex(FilterRegex::new(pattern)?))
    }

    /// Whether the filter keeps `event`.
    pub fn matches(&self, event: &RecordedEvent) -> bool {
        self.matches_parts(&event.stream, &event.event_type)
    }

    /// Whether the filter keeps an event of `event_type` in `stream` (for backends that filter
    /// before decoding whole events).
    pub fn matches_parts(&self, stream: &StreamName, event_type: &str) -> bool {
        match self {
            EventFilter::StreamPrefix(prefixes) => starts_with_any(stream.as_str(), prefixes),
            EventFilter::EventTypePrefix(prefixes) => starts_with_any(event_type, prefixes),
            EventFilter::StreamRegex(regex) => regex.is_match(stream.as_str()),
            EventFilter::EventTypeRegex(regex) => regex.is_match(event_type),
        }
    }
}

fn starts_with_any(name: &str, prefixes: &[String]) -> bool {
    prefixes
        .iter()
        .any(|prefix| name.starts_with(prefix.as_str()))
}

/// A compiled regex for [`EventFilter`], with look-around support.
#[derive(Clone)]
pub struct FilterRegex(fancy_regex::Regex);

impl FilterRegex {
    /// Compiles `pattern`, or answers [`Error::InvalidRequest`] saying why it does not compile.
    pub fn new(pattern: &str) -> Result<FilterRegex, Error> {
        fancy_regex::Regex::new(pattern)
            .map(FilterRegex)
            .map_err(|error| {
                Error::invalid_request(format!("invalid filter regex {pattern:?}: {error}"))
            })
    }

    /// The pattern it was compiled from.
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    /// Whether the regex matches somewhere in `text`. A regex that exceeds the engine's
    /// backtracking limit on `text` counts as not matching: filters never fail a read.
    pub fn is_match(&self, text: &str) -> bool {
        self.0.is_match(text).unwrap_or(false)
    }
}

impl fmt::Debug for FilterRegex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("FilterRegex")
            .field(&self.0.as_str())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream(name: &str) -> StreamName {
        StreamName::new(name).unwrap()
    }

    #[test]
    fn prefixes_match_any_of_their_entries() {
        let filter = EventFilter::StreamPrefix(vec!["account-".into(), "order-".into()]);
        assert!(filter.matches_parts(&stream("account-1"), "X"));
        assert!(filter.matches_parts(&stream("order-1"), "X"));
        assert!(!filter.matches_parts(&stream("invoice-1"), "X"));
        assert!(!EventFilter::StreamPrefix(vec![]).matches_parts(&stream("a"), "X"));
    }

    #[test]
    fn type_filters_look_at_the_type_only() {
        let filter = EventFilter::event_type_prefix("Money");
        assert!(filter.matches_parts(&stream("account-1"), "MoneyDeposited"));
        assert!(!filter.matches_parts(&stream("Money-1"), "AccountOpened"));
    }

    #[test]
    fn regexes_search_unanchored_and_support_look_ahead() {
        // The default filter KurrentDB clients send to exclude system events.
        let no_system = EventFilter::event_type_regex(r"^(?!\$).*").unwrap();
        assert!(no_system.matches_parts(&stream("s"), "AccountOpened"));
        assert!(!no_system.matches_parts(&stream("s"), "$metadata"));
        let contains = EventFilter::stream_regex("count").unwrap();
        assert!(contains.matches_parts(&stream("account-1"), "X"));
    }

    #[test]
    fn a_bad_regex_is_an_invalid_request() {
        let error = EventFilter::stream_regex("(unclosed").unwrap_err();
        assert!(matches!(error, Error::InvalidRequest { .. }), "{error:?}");
    }
}
