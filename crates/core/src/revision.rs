//! Global positions, expected and current stream revisions, and what writes return.

use std::fmt;

/// A place in the global log (`$all`).
///
/// Every event has a position `≥ 1` and `< 2^63`, strictly increasing in commit order and
/// unique per event (each event of a multi-event append gets its own). `Position(0)` means
/// "nothing" or "the start". Positions are dense in the in-memory and embedded backends; other
/// backends may leave gaps, so never compute one position from another.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Position(pub u64);

impl Position {
    /// The start of the log: before every event.
    pub const START: Position = Position(0);
    /// The largest position an event may have (exclusive bound `2^63`, as many clients convert
    /// positions to signed 64-bit integers).
    pub const MAX: Position = Position(i64::MAX as u64);

    /// The position as a plain number.
    pub fn value(self) -> u64 {
        self.0
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

/// What the writer believes about a stream's current revision.
///
/// An append, delete or tombstone whose expectation does not hold fails with
/// [`Error::WrongExpectedRevision`](crate::Error::WrongExpectedRevision) and writes nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ExpectedRevision {
    /// No check: append whatever the stream's state.
    Any,
    /// The stream has no visible events: it was never written, or it was soft-deleted.
    NoStream,
    /// The stream has visible events.
    StreamExists,
    /// The stream's last event has exactly this revision. A soft-deleted stream also accepts
    /// its old last revision, so writers can continue it where it stopped.
    Exact(u64),
}

impl fmt::Display for ExpectedRevision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExpectedRevision::Any => f.write_str("any"),
            ExpectedRevision::NoStream => f.write_str("no stream"),
            ExpectedRevision::StreamExists => f.write_str("stream exists"),
            ExpectedRevision::Exact(revision) => write!(f, "revision {revision}"),
        }
    }
}

/// A stream's state as reported in a [`WrongExpectedRevision`](crate::Error::WrongExpectedRevision)
/// error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CurrentRevision {
    /// The stream has no visible events (never written, or soft-deleted).
    NoStream,
    /// The revision of the stream's last event.
    Current(u64),
}

impl fmt::Display for CurrentRevision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CurrentRevision::NoStream => f.write_str("no stream"),
            CurrentRevision::Current(revision) => write!(f, "revision {revision}"),
        }
    }
}

/// The outcome of a successful append.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AppendResult {
    /// The global position of the append's last event.
    pub position: Position,
    /// The stream revision of the append's last event: pass it as
    /// `ExpectedRevision::Exact(revision)` to append after it.
    pub revision: u64,
}

/// The outcome of a successful soft delete or tombstone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DeleteResult {
    /// The global position of the record that carries the deletion (a `$metadata` event in
    /// `$$stream` for a soft delete, a `$streamDeleted` event in the stream for a tombstone).
    pub position: Position,
}
