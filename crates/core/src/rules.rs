//! The rules every backend applies in the same way: checking an append's input, deciding an
//! expected revision with idempotent retries, deciding deletes, and bounding stream reads.
//!
//! Backends own storage; these functions own semantics. A backend describes a stream as a
//! [`StreamState`], asks a `plan_*` function what to do, fetches what the plan asks for, and
//! writes. Keeping the decisions here is what lets one conformance suite hold every backend to
//! the same behaviour.

use std::collections::HashSet;
use std::ops::Range;

use crate::error::Error;
use crate::event::{EventId, ProposedEvent};
use crate::limits::Limits;
use crate::metadata::{METADATA_EVENT_TYPE, StreamMetadata};
use crate::name::StreamName;
use crate::read::{Direction, ReadStreamOptions, StreamStart};
use crate::revision::{AppendResult, CurrentRevision, ExpectedRevision, Position};

/// The event type of the marker a tombstone appends to its stream.
pub const STREAM_DELETED_EVENT_TYPE: &str = "$streamDeleted";

/// How many of a stream's last events an append with [`ExpectedRevision::Any`] or
/// [`ExpectedRevision::StreamExists`] compares its event ids with, to recognise a retry. Ids
/// older than this are not compared, and re-appending them writes new events.
pub const IDEMPOTENCY_WINDOW_EVENTS: u64 = 128;

/// What a backend knows about a stream when it plans a write or a read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StreamState {
    /// The revision of the stream's last event ever written, `None` if never written.
    pub last_revision: Option<u64>,
    /// `$tb` of the stream's metadata. For a metadata stream `$$s`, leave it `None`.
    pub truncate_before: Option<u64>,
    /// Whether the stream was tombstoned. For a metadata stream `$$s`, whether `s` was.
    pub tombstoned: bool,
}

impl StreamState {
    /// Whether the stream was written and then soft-deleted: `$tb` is past its last revision.
    pub fn is_soft_deleted(&self) -> bool {
        match (self.last_revision, self.truncate_before) {
            (Some(last), Some(truncate_before)) => truncate_before > last,
            _ => false,
        }
    }

    /// Whether the stream has visible events, for [`ExpectedRevision::NoStream`] and
    /// [`ExpectedRevision::StreamExists`]: written, and not soft-deleted.
    pub fn exists(&self) -> bool {
        self.last_revision.is_some() && !self.is_soft_deleted()
    }

    /// The stream's state as an error reports it.
    pub fn current_revision(&self) -> CurrentRevision {
        match self.last_revision {
            Some(last) if self.exists() => CurrentRevision::Current(last),
            _ => CurrentRevision::NoStream,
        }
    }

    /// The revision the next event written to the stream gets.
    pub fn next_revision(&self) -> u64 {
        self.last_revision.map_or(0, |last| last + 1)
    }
}

/// Checks an append's input against the naming, size and content rules, before anything else.
///
/// Errors: [`Error::InvalidRequest`] (no events, an id twice), [`Error::InvalidEvent`],
/// [`Error::EventTooLarge`], [`Error::AppendTooLarge`].
pub fn validate_append(
    stream: &StreamName,
    events: &[ProposedEvent],
    limits: &Limits,
) -> Result<(), Error> {
    if events.is_empty() {
        return Err(Error::invalid_request("an append needs at least one event"));
    }
    let mut size_bytes = 0usize;
    let mut ids = HashSet::with_capacity(events.len());
    for (index, event) in events.iter().enumerate() {
        validate_event(stream, index, event, limits)?;
        if !ids.insert(event.id) {
            return Err(Error::invalid_request(format!(
                "event id {} appears twice in one append",
                event.id
            )));
        }
        size_bytes = size_bytes.saturating_add(event.size_bytes());
    }
    if size_bytes > limits.append_size_bytes_max || events.len() > Limits::EVENTS_PER_APPEND_MAX {
        return Err(Error::AppendTooLarge {
            size_bytes,
            event_count: events.len(),
            max_bytes: limits.append_size_bytes_max,
            max_events: Limits::EVENTS_PER_APPEND_MAX,
        });
    }
    Ok(())
}

fn validate_event(
    stream: &StreamName,
    index: usize,
    event: &ProposedEvent,
    limits: &Limits,
) -> Result<(), Error> {
    let invalid = |reason: String| Error::InvalidEvent { index, reason };
    let event_type = event.event_type.as_str();
    if event_type.is_empty() {
        return Err(invalid("the event type must not be empty".into()));
    }
    if event_type.len() > Limits::EVENT_TYPE_BYTES_MAX {
        return Err(invalid(format!(
            "the event type is {} bytes, more than {}",
            event_type.len(),
            Limits::EVENT_TYPE_BYTES_MAX
        )));
    }
    if stream.is_metadata() {
        if event_type != METADATA_EVENT_TYPE {
            return Err(invalid(format!(
                "a metadata stream only takes {METADATA_EVENT_TYPE} events, not {event_type:?}"
            )));
        }
        StreamMetadata::from_json(&event.data).map_err(|error| invalid(error.to_string()))?;
    } else if event_type.starts_with('$') {
        return Err(invalid(format!(
            "event types starting with `$` are reserved for the store: {event_type:?}"
        )));
    }
    if event.schema_version == 0 {
        return Err(invalid("schema versions start at 1".into()));
    }
    if event.content_type.is_empty() || event.content_type.len() > Limits::CONTENT_TYPE_BYTES_MAX {
        return Err(invalid(format!(
            "the content type must be 1 to {} bytes",
            Limits::CONTENT_TYPE_BYTES_MAX
        )));
    }
    if event.tags.len() > Limits::TAGS_PER_EVENT_MAX {
        return Err(invalid(format!(
            "{} tags, more than {}",
            event.tags.len(),
            Limits::TAGS_PER_EVENT_MAX
        )));
    }
    if let Some(tag) = event
        .tags
        .iter()
        .find(|tag| tag.is_empty() || tag.len() > Limits::TAG_BYTES_MAX)
    {
        return Err(invalid(format!(
            "tag {tag:?} must be 1 to {} bytes",
            Limits::TAG_BYTES_MAX
        )));
    }
    let size_bytes = event.size_bytes();
    if size_bytes > limits.event_size_bytes_max {
        return Err(Error::EventTooLarge {
            index,
            size_bytes,
            max_bytes: limits.event_size_bytes_max,
        });
    }
    Ok(())
}

/// What a backend should do with a validated append.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AppendPlan {
    /// The expectation holds and this is no retry: write the events from `first_revision` on.
    Write {
        /// The revision of the append's first event.
        first_revision: u64,
    },
    /// The answer depends on the ids already stored: fetch them at
    /// [`IdCheck::revisions`] and call [`IdCheck::resolve`].
    CheckIds(IdCheck),
}

/// A pending decision that needs the ids stored at some revisions of the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdCheck {
    stream: StreamName,
    expected: ExpectedRevision,
    actual: CurrentRevision,
    revisions: Range<u64>,
    /// `Some` for a window check (`Any`, `StreamExists`): where to write if no id matches.
    /// `None` for a retry check (`Exact`, `NoStream`): the expectation failed, so it is a
    /// retry or a conflict.
    write_at_if_new: Option<u64>,
}

/// One event already stored, as far as an [`IdCheck`] needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoredId {
    /// Its revision in the stream.
    pub revision: u64,
    /// Its id.
    pub id: EventId,
    /// Its global position.
    pub position: Position,
}

/// How an [`IdCheck`] came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdCheckOutcome {
    /// None of the ids is stored: write the events from `first_revision` on.
    Write {
        /// The revision of the append's first event.
        first_revision: u64,
    },
    /// The append was already written (a retry): answer with the original result, write
    /// nothing.
    AlreadyWritten(AppendResult),
}

impl IdCheck {
    /// The revisions whose stored ids the check needs (fetch those that exist, in order).
    pub fn revisions(&self) -> Range<u64> {
        self.revisions.clone()
    }

    /// Decides, given the proposed ids and the ids stored at [`Self::revisions`] in revision
    /// order. A partial overlap is [`Error::WrongExpectedRevision`].
    pub fn resolve(
        self,
        proposed: &[EventId],
        stored: &[StoredId],
    ) -> Result<IdCheckOutcome, Error> {
        assert!(
            !proposed.is_empty(),
            "validate_append refuses empty appends"
        );
        assert!(
            stored
                .iter()
                .all(|event| self.revisions.contains(&event.revision)),
            "stored ids outside the requested revisions"
        );
        let start = match self.write_at_if_new {
            // A retry must sit exactly at the revisions the original append got.
            None => 0,
            Some(_) => match stored.iter().position(|event| event.id == proposed[0]) {
                Some(start) => start,
                None if stored.iter().any(|event| proposed.contains(&event.id)) => {
                    return Err(self.conflict());
                }
                None => {
                    let first_revision = self.write_at_if_new.expect("checked above");
                    return Ok(IdCheckOutcome::Write { first_revision });
                }
            },
        };
        let candidates = &stored[start..];
        let is_retry = candidates.len() >= proposed.len()
            && candidates
                .iter()
                .zip(proposed)
                .all(|(stored, proposed)| stored.id == *proposed)
            && candidates
                .windows(2)
                .all(|pair| pair[1].revision == pair[0].revision + 1);
        if !is_retry {
            return Err(self.conflict());
        }
        let last = candidates[proposed.len() - 1];
        Ok(IdCheckOutcome::AlreadyWritten(AppendResult {
            position: last.position,
            revision: last.revision,
        }))
    }

    fn conflict(self) -> Error {
        Error::WrongExpectedRevision {
            stream: self.stream,
            expected: self.expected,
            actual: self.actual,
        }
    }
}

/// Decides an append of `event_count` validated events to a stream in `state`.
///
/// - [`ExpectedRevision::Exact`]`(e)`: write if the last revision is `e` (also for a
///   soft-deleted stream, so writers continue where it stopped); otherwise a retry if revisions
///   `e+1..` carry exactly the proposed ids, else [`Error::WrongExpectedRevision`].
/// - [`ExpectedRevision::NoStream`]: write if the stream has no visible events; otherwise a retry
///   if the stream's first visible revisions carry exactly the proposed ids, else a conflict.
/// - [`ExpectedRevision::Any`] and [`ExpectedRevision::StreamExists`] (once the stream exists):
///   the ids are compared with the last [`IDEMPOTENCY_WINDOW_EVENTS`] events: all stored
///   consecutively means a retry; none stored means write; a mix is a conflict.
/// - A tombstoned stream refuses every append with [`Error::StreamDeleted`].
pub fn plan_append(
    stream: &StreamName,
    state: &StreamState,
    expected: ExpectedRevision,
    event_count: u64,
) -> Result<AppendPlan, Error> {
    assert!(event_count > 0, "validate_append refuses empty appends");
    if state.tombstoned {
        return Err(Error::StreamDeleted {
            stream: stream.clone(),
        });
    }
    let check = |revisions: Range<u64>, write_at_if_new: Option<u64>| {
        AppendPlan::CheckIds(IdCheck {
            stream: stream.clone(),
            expected,
            actual: state.current_revision(),
            revisions,
            write_at_if_new,
        })
    };
    let conflict = || Error::WrongExpectedRevision {
        stream: stream.clone(),
        expected,
        actual: state.current_revision(),
    };
    let next_revision = state.next_revision();
    match expected {
        ExpectedRevision::Any | ExpectedRevision::StreamExists => {
            if expected == ExpectedRevision::StreamExists && !state.exists() {
                return Err(conflict());
            }
            match state.last_revision {
                None => Ok(AppendPlan::Write {
                    first_revision: next_revision,
                }),
                Some(_) => {
                    let window_start = next_revision.saturating_sub(IDEMPOTENCY_WINDOW_EVENTS);
                    Ok(check(window_start..next_revision, Some(next_revision)))
                }
            }
        }
        ExpectedRevision::NoStream => {
            if !state.exists() {
                return Ok(AppendPlan::Write {
                    first_revision: next_revision,
                });
            }
            let first = state.truncate_before.unwrap_or(0);
            Ok(check(
                first..first.saturating_add(event_count).min(next_revision),
                None,
            ))
        }
        ExpectedRevision::Exact(expected_last) => match state.last_revision {
            Some(last) if last == expected_last => Ok(AppendPlan::Write {
                first_revision: next_revision,
            }),
            Some(last) if last > expected_last => {
                let first = expected_last + 1;
                Ok(check(
                    first..first.saturating_add(event_count).min(next_revision),
                    None,
                ))
            }
            _ => Err(conflict()),
        },
    }
}

/// Checks a soft delete or tombstone of a stream in `state` against its expected revision.
///
/// Metadata streams cannot be deleted ([`Error::InvalidRequest`]); a tombstoned stream answers
/// [`Error::StreamDeleted`]. A soft delete of a never-written stream is
/// [`Error::StreamNotFound`]; a tombstone of one succeeds with `Any` and `NoStream` (so a name
/// can be retired before use). Repeating a soft delete with `Any`, `NoStream` or the old last
/// revision succeeds again.
pub fn plan_delete(
    stream: &StreamName,
    state: &StreamState,
    expected: ExpectedRevision,
    tombstone: bool,
) -> Result<(), Error> {
    if stream.is_metadata() {
        return Err(Error::invalid_request(format!(
            "metadata stream {stream} cannot be deleted; delete {} instead",
            stream
                .metadata_of()
                .expect("a metadata stream describes a stream")
        )));
    }
    if state.tombstoned {
        return Err(Error::StreamDeleted {
            stream: stream.clone(),
        });
    }
    let not_found = || Error::StreamNotFound {
        stream: stream.clone(),
    };
    let accepted = match (state.last_revision, expected) {
        (None, _) if !tombstone => return Err(not_found()),
        (None, ExpectedRevision::StreamExists) => return Err(not_found()),
        (None, ExpectedRevision::Any | ExpectedRevision::NoStream) => true,
        (None, ExpectedRevision::Exact(_)) => false,
        (Some(_), ExpectedRevision::Any) => true,
        (Some(_), ExpectedRevision::NoStream) => !state.exists(),
        (Some(_), ExpectedRevision::StreamExists) => state.exists(),
        (Some(last), ExpectedRevision::Exact(revision)) => last == revision,
    };
    if !accepted {
        return Err(Error::WrongExpectedRevision {
            stream: stream.clone(),
            expected,
            actual: state.current_revision(),
        });
    }
    Ok(())
}

/// The metadata a soft delete writes: the current metadata with `$tb` just past the stream's
/// last revision, so the stream reads as not found and later appends continue its revisions.
pub fn soft_delete_metadata(current: &StreamMetadata, last_revision: u64) -> StreamMetadata {
    StreamMetadata {
        truncate_before: Some(last_revision + 1),
        ..current.clone()
    }
}

/// The revisions a stream read walks, in its direction, before `$maxAge` and the limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadPlan {
    /// The first revision to look at (the highest one, backwards).
    pub start: u64,
    /// The last revision to look at, inclusive (the lowest one, backwards).
    pub end: u64,
    /// Which way to walk.
    pub direction: Direction,
}

impl ReadPlan {
    /// The revisions in walking order.
    pub fn revisions(&self) -> Box<dyn Iterator<Item = u64> + Send> {
        match self.direction {
            Direction::Forwards => Box::new(self.start..=self.end),
            Direction::Backwards => Box::new((self.end..=self.start).rev()),
        }
    }
}

/// Decides which revisions a read of a stream in `state` with `metadata` walks; `None` if the
/// range is empty.
///
/// Errors: [`Error::StreamDeleted`] for a tombstoned stream (or the metadata stream of one),
/// [`Error::StreamNotFound`] for a stream never written or soft-deleted. The metadata rules
/// (`$tb`, `$maxCount`) bound the range; they do not apply to metadata streams.
pub fn plan_stream_read(
    stream: &StreamName,
    state: &StreamState,
    metadata: &StreamMetadata,
    options: &ReadStreamOptions,
) -> Result<Option<ReadPlan>, Error> {
    if state.tombstoned {
        return Err(Error::StreamDeleted {
            stream: stream.clone(),
        });
    }
    let Some(last) = state.last_revision else {
        return Err(Error::StreamNotFound {
            stream: stream.clone(),
        });
    };
    if !state.exists() {
        return Err(Error::StreamNotFound {
            stream: stream.clone(),
        });
    }
    let first_visible = if stream.is_metadata() {
        0
    } else {
        metadata.first_visible_revision(last)
    };
    if options.limit == 0 || first_visible > last {
        return Ok(None);
    }
    let plan = match (options.direction, options.from) {
        (Direction::Forwards, StreamStart::End) => return Ok(None),
        (Direction::Forwards, StreamStart::Start) => (first_visible, last),
        (Direction::Forwards, StreamStart::Revision(from)) if from > last => return Ok(None),
        (Direction::Forwards, StreamStart::Revision(from)) => (from.max(first_visible), last),
        (Direction::Backwards, StreamStart::End) => (last, first_visible),
        (Direction::Backwards, StreamStart::Start) if first_visible > 0 => return Ok(None),
        (Direction::Backwards, StreamStart::Start) => (0, 0),
        (Direction::Backwards, StreamStart::Revision(from)) if from < first_visible => {
            return Ok(None);
        }
        (Direction::Backwards, StreamStart::Revision(from)) => (from.min(last), first_visible),
    };
    Ok(Some(ReadPlan {
        start: plan.0,
        end: plan.1,
        direction: options.direction,
    }))
}

#[cfg(test)]
mod tests;
