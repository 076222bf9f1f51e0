//! Size limits on what may be written, checked before anything is written.

/// The limits a store enforces on appends. Stream names and event types have fixed limits
/// ([`StreamName::BYTES_MAX`](crate::StreamName::BYTES_MAX), [`Limits::EVENT_TYPE_BYTES_MAX`]);
/// event and append sizes are configurable per store.
///
/// An event's size is the sum of the lengths of its data, metadata, type, content type and tags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// The largest event, in bytes. Default 1 MiB.
    pub event_size_bytes_max: usize,
    /// The largest append (all its events together), in bytes. Default 16 MiB.
    pub append_size_bytes_max: usize,
}

impl Limits {
    /// The longest event type, in bytes.
    pub const EVENT_TYPE_BYTES_MAX: usize = 255;
    /// The longest content type, in bytes.
    pub const CONTENT_TYPE_BYTES_MAX: usize = 255;
    /// The most tags one event may carry.
    pub const TAGS_PER_EVENT_MAX: usize = 16;
    /// The longest tag, in bytes.
    pub const TAG_BYTES_MAX: usize = 128;
    /// The most events one append may carry.
    pub const EVENTS_PER_APPEND_MAX: usize = 100_000;
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            event_size_bytes_max: 1024 * 1024,
            append_size_bytes_max: 16 * 1024 * 1024,
        }
    }
}
