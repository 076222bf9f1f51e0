//! Catch-up subscriptions, for any store: history first, then live, with no gap and no
//! duplicate at the switch, in bounded memory.
//!
//! A subscription is a cursor, not a buffer fed by the writer. It reads pages of what is after
//! its cursor through the ordinary read methods, and when a read comes back empty it waits for
//! the store's head to move ([`EventStore::watch_head`]). Live and history are the same code
//! path, so the switch cannot lose or repeat an event; a slow subscriber simply reads later, so
//! memory never grows beyond one page.

use std::collections::VecDeque;
use std::sync::Arc;

use tokio::sync::watch;

use crate::error::{Error, Result};
use crate::event::RecordedEvent;
use crate::filter::EventFilter;
use crate::name::StreamName;
use crate::read::{AllStart, Direction, ReadAllOptions, ReadStreamOptions};
use crate::revision::Position;
use crate::store::EventStore;

/// The most events a subscription reads (and holds) at once, unless set with
/// [`Subscription::with_page_events`].
const PAGE_EVENTS: u64 = 512;

/// Where a subscription starts. Subscriptions deliver what comes *after* the given revision or
/// position.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SubscriptionStart<T> {
    /// From the very beginning: everything.
    Start,
    /// From now: only what is appended after the subscription is made.
    End,
    /// Everything after this revision or position (exclusive).
    After(T),
}

/// Options of a subscription to one stream.
#[derive(Debug, Clone)]
pub struct SubscribeToStreamOptions {
    /// Where to start, by revision.
    pub from: SubscriptionStart<u64>,
}

impl Default for SubscribeToStreamOptions {
    fn default() -> SubscribeToStreamOptions {
        SubscribeToStreamOptions {
            from: SubscriptionStart::Start,
        }
    }
}

/// Options of a subscription to `$all`.
#[derive(Debug, Clone)]
pub struct SubscribeToAllOptions {
    /// Where to start, by position.
    pub from: SubscriptionStart<Position>,
    /// Which events to deliver; `None` delivers all (system events aside).
    pub filter: Option<EventFilter>,
    /// Whether system events are delivered.
    pub include_system: bool,
    /// Between two delivered messages (events or checkpoints), at most this many events of the
    /// log are examined, system events included: a [`SubscriptionMessage::Checkpoint`] is
    /// delivered when the filter skipped events, so sparse subscribers can save progress. At
    /// least 1.
    pub checkpoint_interval: u64,
}

impl Default for SubscribeToAllOptions {
    fn default() -> SubscribeToAllOptions {
        SubscribeToAllOptions {
            from: SubscriptionStart::Start,
            filter: None,
            include_system: false,
            checkpoint_interval: 1024,
        }
    }
}

/// What a subscription delivers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubscriptionMessage {
    /// The next event.
    Event(RecordedEvent),
    /// The subscription examined the log up to this position and found nothing more to
    /// deliver: a subscriber may store it and later resume after it.
    Checkpoint(Position),
    /// The subscription delivered everything that existed when it last looked: from here on,
    /// events arrive as they are appended (until it falls behind again).
    CaughtUp,
    /// Having caught up, the subscription is behind by at least a page and catching up again.
    FellBehind,
}

/// A catch-up subscription to one stream or to `$all`. Call [`Subscription::next`] in a loop.
pub struct Subscription {
    store: Arc<dyn EventStore>,
    head: watch::Receiver<Position>,
    target: Target,
    pending: VecDeque<SubscriptionMessage>,
    page_events: u64,
    caught_up: bool,
    ended: bool,
}

enum Target {
    Stream {
        stream: StreamName,
        /// The revision the next read starts at.
        next_revision: u64,
    },
    All {
        options: SubscribeToAllOptions,
        /// The position the next read starts at (inclusive).
        next_position: u64,
        /// The position of the last event or checkpoint delivered.
        reported: Position,
    },
}

impl Subscription {
    /// Subscribes to one stream. The stream need not exist yet: the subscription reports
    /// [`SubscriptionMessage::CaughtUp`] and waits for it. If the stream is tombstoned, the
    /// subscription ends with [`Error::StreamDeleted`] at its next read: a subscriber that was
    /// behind does not receive the events it had not read yet (the stream can no longer be read;
    /// its events stay in `$all`).
    pub async fn to_stream(
        store: Arc<dyn EventStore>,
        stream: StreamName,
        options: SubscribeToStreamOptions,
    ) -> Result<Subscription> {
        let head = store.watch_head();
        let next_revision = match options.from {
            SubscriptionStart::Start => 0,
            SubscriptionStart::After(revision) => revision.saturating_add(1),
            SubscriptionStart::End => {
                let newest = ReadStreamOptions::backwards().limit(1);
                match store.read_stream(&stream, newest).await {
                    Ok(events) => events.first().map_or(0, |event| event.revision + 1),
                    Err(Error::StreamNotFound { .. }) => 0,
                    Err(error) => return Err(error),
                }
            }
        };
        Ok(Subscription::new(
            store,
            head,
            Target::Stream {
                stream,
                next_revision,
            },
        ))
    }

    /// Subscribes to `$all`, optionally filtered.
    pub async fn to_all(
        store: Arc<dyn EventStore>,
        options: SubscribeToAllOptions,
    ) -> Result<Subscription> {
        if options.checkpoint_interval == 0 {
            return Err(Error::invalid_request(
                "the checkpoint interval must be at least 1",
            ));
        }
        let head = store.watch_head();
        let after = match options.from {
            SubscriptionStart::Start => Position::START,
            SubscriptionStart::After(position) => position,
            SubscriptionStart::End => store.head().await?,
        };
        Ok(Subscription::new(
            store,
            head,
            Target::All {
                options,
                next_position: after.0.saturating_add(1),
                reported: after,
            },
        ))
    }

    fn new(
        store: Arc<dyn EventStore>,
        head: watch::Receiver<Position>,
        target: Target,
    ) -> Subscription {
        Subscription {
            store,
            head,
            target,
            pending: VecDeque::new(),
            page_events: PAGE_EVENTS,
            caught_up: false,
            ended: false,
        }
    }

    /// Reads (and holds) at most `page_events` events at once instead of 512 (at least 1): a
    /// server with many subscribers trades a few more reads for less memory per subscriber.
    pub fn with_page_events(mut self, page_events: u64) -> Subscription {
        self.page_events = page_events.max(1);
        self
    }

    /// The next message: waits for new events when caught up. `None` after the subscription
    /// ended with an error. Cancelling the future (in a `select!`, say) loses nothing.
    pub async fn next(&mut self) -> Option<Result<SubscriptionMessage>> {
        loop {
            if let Some(message) = self.pending.pop_front() {
                return Some(Ok(message));
            }
            if self.ended {
                return None;
            }
            // Mark the current head as seen *before* reading: an append that lands after the
            // read then always wakes the wait below.
            self.head.borrow_and_update();
            match self.read_page().await {
                Ok(()) if !self.pending.is_empty() => continue,
                Ok(()) => {
                    if self.head.changed().await.is_err() {
                        self.ended = true;
                        return Some(Err(Error::Unavailable {
                            reason: "the store was closed".into(),
                        }));
                    }
                }
                Err(error) => {
                    self.ended = true;
                    return Some(Err(error));
                }
            }
        }
    }

    /// Reads the next page after the cursor and queues what it delivers.
    async fn read_page(&mut self) -> Result<()> {
        let page_events = self.page_events;
        let (events, reached_end, checkpoint) = match &mut self.target {
            Target::Stream {
                stream,
                next_revision,
            } => {
                let options = ReadStreamOptions::forwards()
                    .from_revision(*next_revision)
                    .limit(page_events);
                let events = match self.store.read_stream(stream, options).await {
                    Ok(events) => events,
                    Err(Error::StreamNotFound { .. }) => Vec::new(),
                    Err(error) => return Err(error),
                };
                if let Some(last) = events.last() {
                    *next_revision = last.revision + 1;
                }
                let reached_end = (events.len() as u64) < page_events;
                (events, reached_end, None)
            }
            Target::All {
                options,
                next_position,
                reported,
            } => {
                let read = ReadAllOptions {
                    from: AllStart::Position(Position(*next_position)),
                    direction: Direction::Forwards,
                    limit: page_events,
                    filter: options.filter.clone(),
                    include_system: options.include_system,
                    scan_limit: Some(options.checkpoint_interval),
                };
                let slice = self.store.read_all(read).await?;
                let last_event = slice.events.last().map(|event| event.position);
                // Every page examines at most `checkpoint_interval` events and ends with a
                // message at the last position it examined (its last event, or a checkpoint
                // past it), so no more than that many events pass without a message.
                let checkpoint = (slice.scanned_to > last_event.unwrap_or(*reported))
                    .then_some(slice.scanned_to);
                *next_position = (*next_position).max(slice.scanned_to.0.saturating_add(1));
                if let Some(position) = checkpoint.or(last_event) {
                    *reported = position;
                }
                (slice.events, slice.end_of_log, checkpoint)
            }
        };
        let full_page = events.len() as u64 == page_events;
        if self.caught_up && full_page {
            self.caught_up = false;
            self.pending.push_back(SubscriptionMessage::FellBehind);
        }
        self.pending
            .extend(events.into_iter().map(SubscriptionMessage::Event));
        self.pending
            .extend(checkpoint.map(SubscriptionMessage::Checkpoint));
        if reached_end && !self.caught_up {
            self.caught_up = true;
            self.pending.push_back(SubscriptionMessage::CaughtUp);
        }
        Ok(())
    }
}
