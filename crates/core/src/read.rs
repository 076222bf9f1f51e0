//! Options and results of stream reads and `$all` reads.

use crate::event::RecordedEvent;
use crate::filter::EventFilter;
use crate::revision::Position;

/// Which way a read walks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Oldest first.
    Forwards,
    /// Newest first.
    Backwards,
}

/// Where a stream read starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StreamStart {
    /// The first revision (forwards) — or, backwards, nothing: a backwards read from the start
    /// returns at most the event at revision 0.
    Start,
    /// The last revision (backwards) — or, forwards, nothing.
    End,
    /// This revision, inclusive in both directions.
    Revision(u64),
}

/// How to read one stream.
///
/// Forwards from `Revision(r)` returns revisions `≥ r`; backwards from `Revision(r)` returns
/// revisions `≤ r`, newest first. `limit` counts events returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ReadStreamOptions {
    /// Where to start.
    pub from: StreamStart,
    /// Which way to walk.
    pub direction: Direction,
    /// The most events to return.
    pub limit: u64,
}

impl ReadStreamOptions {
    /// The whole stream, oldest first.
    pub fn forwards() -> ReadStreamOptions {
        ReadStreamOptions {
            from: StreamStart::Start,
            direction: Direction::Forwards,
            limit: u64::MAX,
        }
    }

    /// The whole stream, newest first.
    pub fn backwards() -> ReadStreamOptions {
        ReadStreamOptions {
            from: StreamStart::End,
            direction: Direction::Backwards,
            limit: u64::MAX,
        }
    }

    /// Starts at `revision` (inclusive).
    pub fn from_revision(mut self, revision: u64) -> ReadStreamOptions {
        self.from = StreamStart::Revision(revision);
        self
    }

    /// Returns at most `limit` events.
    pub fn limit(mut self, limit: u64) -> ReadStreamOptions {
        self.limit = limit;
        self
    }
}

/// Where a `$all` read starts. Forwards from `End` and backwards from `Start` read nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AllStart {
    /// The beginning of the log.
    Start,
    /// The end of the log (the head).
    End,
    /// Forwards: events at this position and after (inclusive). Backwards: events before this
    /// position (exclusive). A position that is no event's position is fine: the read starts
    /// at the next event in its direction.
    Position(Position),
}

/// How to read `$all`, the global log.
#[derive(Debug, Clone)]
pub struct ReadAllOptions {
    /// Where to start.
    pub from: AllStart,
    /// Which way to walk.
    pub direction: Direction,
    /// The most events to return, counted after filtering.
    pub limit: u64,
    /// Which events to keep; `None` keeps all (system events aside).
    pub filter: Option<EventFilter>,
    /// Whether system events (of system streams, or with a `$` type) are returned.
    pub include_system: bool,
    /// The most events to examine before returning, whatever the filter and `include_system`
    /// kept (skipped system events count as examined). `None` examines until `limit` events are
    /// kept or the log ends. Sparse filtered readers (subscriptions)
    /// use it to report progress; continue after [`AllSlice::scanned_to`].
    pub scan_limit: Option<u64>,
}

impl ReadAllOptions {
    /// Everything from the start, oldest first, without system events.
    pub fn forwards() -> ReadAllOptions {
        ReadAllOptions {
            from: AllStart::Start,
            direction: Direction::Forwards,
            limit: u64::MAX,
            filter: None,
            include_system: false,
            scan_limit: None,
        }
    }

    /// Everything from the end, newest first, without system events.
    pub fn backwards() -> ReadAllOptions {
        ReadAllOptions {
            from: AllStart::End,
            direction: Direction::Backwards,
            ..ReadAllOptions::forwards()
        }
    }

    /// Starts at `position` (forwards inclusive, backwards exclusive).
    pub fn from_position(mut self, position: Position) -> ReadAllOptions {
        self.from = AllStart::Position(position);
        self
    }

    /// Returns at most `limit` events.
    pub fn limit(mut self, limit: u64) -> ReadAllOptions {
        self.limit = limit;
        self
    }

    /// Keeps only events the filter matches.
    pub fn filter(mut self, filter: EventFilter) -> ReadAllOptions {
        self.filter = Some(filter);
        self
    }

    /// Also returns system events.
    pub fn include_system(mut self) -> ReadAllOptions {
        self.include_system = true;
        self
    }

    /// Examines at most `scan_limit` events.
    pub fn scan_limit(mut self, scan_limit: u64) -> ReadAllOptions {
        self.scan_limit = Some(scan_limit);
        self
    }

    /// Whether events of `stream` may be returned at all, judged by the stream alone (system
    /// streams, stream filters). When it is false a backend may skip the stream's events without
    /// decoding them; they still count as examined.
    pub fn keeps_stream(&self, stream: &crate::StreamName) -> bool {
        if stream.is_system() && !self.include_system {
            return false;
        }
        match &self.filter {
            Some(filter @ (EventFilter::StreamPrefix(_) | EventFilter::StreamRegex(_))) => {
                filter.matches_parts(stream, "")
            }
            _ => true,
        }
    }

    /// Whether an event is one this read returns (system events and the filter).
    pub fn keeps(&self, event: &RecordedEvent) -> bool {
        if event.is_system() && !self.include_system {
            return false;
        }
        self.filter
            .as_ref()
            .is_none_or(|filter| filter.matches(event))
    }
}

/// What a `$all` read returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllSlice {
    /// The events kept, in the read's direction.
    pub events: Vec<RecordedEvent>,
    /// How far the read examined the log, whether or not it kept what it saw. Forwards: the
    /// highest position examined (the `from` bound minus one, or 0, if none was). Backwards: the
    /// lowest position examined (the exclusive `from` bound, or the head plus one, if none was).
    /// Continue a forwards read from `scanned_to + 1` and a backwards read from `scanned_to`.
    pub scanned_to: Position,
    /// Whether the read examined the log to its end in its direction (the head, or the first
    /// event): no event exists past `scanned_to` at the time of the read. `false` means `limit`
    /// or `scan_limit` stopped it with more events to examine.
    pub end_of_log: bool,
}
