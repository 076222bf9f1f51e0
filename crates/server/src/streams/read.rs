//! `Streams.Read`: reads of a stream or of `$all`, and catch-up subscriptions to either.
//!
//! Every reply stream pulls from the store one page at a time as the client takes messages,
//! so HTTP/2 flow control paces a slow reader and the server holds at most one page per call.
//! Nothing is spawned: when the client goes away, tonic drops the stream and with it the
//! call's whole state.
//!
//! Start rules (KurrentDB's): reads are inclusive of their start, except `$all` backwards,
//! which is exclusive; subscriptions are exclusive of theirs.

use std::collections::VecDeque;
use std::sync::Arc;

use factum_core::{
    AllStart, Direction, Error, EventStore, Position, ReadAllOptions, ReadStreamOptions,
    StreamName, StreamStart, SubscribeToAllOptions, SubscribeToStreamOptions, Subscription,
    SubscriptionMessage, SubscriptionStart,
};
use factum_proto::streams::read_req::Options;
use factum_proto::streams::read_req::options::{
    AllOptions, CountOption, FilterOption, ReadDirection, StreamOption, StreamOptions, all_options,
    stream_options,
};
use factum_proto::streams::{ReadReq, ReadResp, read_resp};
use futures_util::{StreamExt, stream};
use tonic::Status;
use uuid::Uuid;

use super::ReplyStream;
use crate::convert::{
    UuidFormat, checkpoint_interval, event_to_wire, filter_from_wire, stream_from_wire,
    stream_to_wire,
};
use crate::errors::{ApiError, stream_deleted};
use crate::limits::{ConnectionInfo, SubscriptionSlots};
use crate::metrics::{Metrics, ReadTarget, SubscriptionGuard};
use crate::shutdown::Shutdown;

/// The most events read from the store at once, per call.
const PAGE_EVENTS: u64 = 512;

/// The most events a filtered `$all` read examines per page, so a sparse filter does not scan
/// the whole log in one store call.
const PAGE_SCAN_EVENTS: u64 = 8192;

/// The most events a subscription holds at once. Small, because a server may hold thousands
/// of subscriptions: memory per subscriber stays around this many events plus its HTTP/2
/// stream's buffers, whatever the history it replays.
const SUBSCRIPTION_PAGE_EVENTS: u64 = 32;

/// The `compatibility` from which a client understands `fell_behind`.
const FELL_BEHIND_COMPATIBILITY: u32 = 2;

/// What a read shares with the rest of the server.
pub struct ReadContext {
    pub shutdown: Shutdown,
    pub metrics: Arc<Metrics>,
    pub subscriptions: Arc<SubscriptionSlots>,
}

/// Starts a read or subscription; errors in the request are answered before any message.
/// `connection` is the connection the request came on, whose subscriptions are limited.
pub async fn read(
    store: Arc<dyn EventStore>,
    context: &ReadContext,
    connection: Option<&ConnectionInfo>,
    request: ReadReq,
) -> Result<ReplyStream<ReadResp>, Status> {
    let metrics = context.metrics.clone();
    let options = request
        .options
        .ok_or_else(|| ApiError::bad_request("the read has no options"))?;
    let format = UuidFormat::from_option(options.uuid_option.as_ref());
    let direction = match ReadDirection::try_from(options.read_direction) {
        Ok(ReadDirection::Forwards) => Direction::Forwards,
        Ok(ReadDirection::Backwards) => Direction::Backwards,
        Err(_) => return Err(ApiError::bad_request("unknown read direction").into()),
    };
    match (&options.stream_option, &options.count_option) {
        (Some(StreamOption::Stream(target)), Some(CountOption::Count(count))) => {
            refuse_filter(&options, "a stream read")?;
            let reader = StreamReader::new(store, target, direction, *count, format)?;
            metrics.read(ReadTarget::Stream);
            Ok(Box::pin(counted(
                reader.into_stream(),
                metrics,
                ReadTarget::Stream,
            )))
        }
        (Some(StreamOption::All(target)), Some(CountOption::Count(count))) => {
            let reader = AllReader::new(store, target, &options, direction, *count, format)?;
            metrics.read(ReadTarget::All);
            Ok(Box::pin(counted(
                reader.into_stream(),
                metrics,
                ReadTarget::All,
            )))
        }
        (Some(stream_option), Some(CountOption::Subscription(_))) => {
            if direction == Direction::Backwards {
                return Err(ApiError::bad_request("subscriptions read forwards only").into());
            }
            let permit = context
                .subscriptions
                .try_acquire(connection)
                .map_err(|refusal| Status::resource_exhausted(refusal.message()))?;
            let subscription = match stream_option {
                StreamOption::Stream(target) => {
                    refuse_filter(&options, "a stream subscription")?;
                    subscribe_to_stream(store, target).await?
                }
                StreamOption::All(target) => subscribe_to_all(store, target, &options).await?,
            };
            let compatibility = options
                .control_option
                .as_ref()
                .map_or(0, |control| control.compatibility);
            let to_all = matches!(stream_option, StreamOption::All(_));
            let guard = metrics.subscription(if to_all {
                ReadTarget::All
            } else {
                ReadTarget::Stream
            });
            let replies = subscription_stream(
                subscription.with_page_events(SUBSCRIPTION_PAGE_EVENTS),
                to_all,
                format,
                compatibility,
                context.shutdown.clone(),
                guard,
            );
            // The permit lives as long as the reply stream: its slot is given back when the
            // client leaves or the subscription ends.
            Ok(Box::pin(replies.inspect(move |_| {
                let _held = &permit;
            })))
        }
        (None, _) => Err(ApiError::bad_request("the read names no stream and not $all").into()),
        (_, None) => {
            Err(ApiError::bad_request("the read has neither a count nor a subscription").into())
        }
    }
}

/// A read's reply stream, with its events and a failure counted in `metrics`.
fn counted(
    replies: impl futures_util::Stream<Item = Result<ReadResp, Status>> + Send,
    metrics: Arc<Metrics>,
    target: ReadTarget,
) -> impl futures_util::Stream<Item = Result<ReadResp, Status>> + Send {
    replies.inspect(move |reply| match reply {
        Ok(ReadResp {
            content: Some(read_resp::Content::Event(_)),
        }) => metrics.read_events(target, 1),
        Ok(_) => {}
        Err(status) => metrics.error(status),
    })
}

fn refuse_filter(options: &Options, what: &str) -> Result<(), Status> {
    match options.filter_option {
        Some(FilterOption::Filter(_)) => {
            Err(ApiError::bad_request(format!("{what} cannot be filtered")).into())
        }
        _ => Ok(()),
    }
}

/// A read that sends what it has queued and reads the next page from the store only when the
/// client has taken it all.
trait Pager: Send + Sized + 'static {
    /// The messages read and not yet sent.
    fn pending(&mut self) -> &mut VecDeque<Result<ReadResp, Status>>;

    /// Queues the next page; `None` when there is nothing more to send.
    fn read_page(&mut self) -> impl Future<Output = Option<()>> + Send;

    /// The read's reply stream.
    fn into_stream(self) -> impl futures_util::Stream<Item = Result<ReadResp, Status>> + Send {
        stream::unfold(self, |mut reader| async move {
            loop {
                if let Some(message) = reader.pending().pop_front() {
                    return Some((message, reader));
                }
                reader.read_page().await?;
            }
        })
    }
}

/// A read of one stream, page by page.
struct StreamReader {
    store: Arc<dyn EventStore>,
    stream: StreamName,
    /// Where the next page starts; `None` once the read is complete.
    next: Option<StreamStart>,
    direction: Direction,
    remaining: u64,
    format: UuidFormat,
    first_page: bool,
    pending: VecDeque<Result<ReadResp, Status>>,
}

impl StreamReader {
    fn new(
        store: Arc<dyn EventStore>,
        target: &StreamOptions,
        direction: Direction,
        count: u64,
        format: UuidFormat,
    ) -> Result<StreamReader, Status> {
        let stream = stream_from_wire(target.stream_identifier.as_ref())?;
        let start = match target.revision_option {
            Some(stream_options::RevisionOption::Revision(revision)) => {
                StreamStart::Revision(revision)
            }
            Some(stream_options::RevisionOption::Start(_)) => StreamStart::Start,
            Some(stream_options::RevisionOption::End(_)) => StreamStart::End,
            None => match direction {
                Direction::Forwards => StreamStart::Start,
                Direction::Backwards => StreamStart::End,
            },
        };
        Ok(StreamReader {
            store,
            stream,
            next: Some(start),
            direction,
            remaining: count,
            format,
            first_page: true,
            pending: VecDeque::new(),
        })
    }
}

impl Pager for StreamReader {
    fn pending(&mut self) -> &mut VecDeque<Result<ReadResp, Status>> {
        &mut self.pending
    }

    async fn read_page(&mut self) -> Option<()> {
        let from = self.next.take()?;
        if self.remaining == 0 {
            return None;
        }
        let limit = self.remaining.min(PAGE_EVENTS);
        let options = ReadStreamOptions {
            from,
            direction: self.direction,
            limit,
        };
        let first_page = std::mem::replace(&mut self.first_page, false);
        match self.store.read_stream(&self.stream, options).await {
            Ok(events) => {
                self.remaining -= events.len() as u64;
                if events.len() as u64 == limit
                    && let Some(last) = events.last()
                {
                    self.next = match self.direction {
                        Direction::Forwards => last.revision.checked_add(1),
                        Direction::Backwards => last.revision.checked_sub(1),
                    }
                    .map(StreamStart::Revision);
                }
                self.pending.extend(
                    events
                        .iter()
                        .map(|event| Ok(event_to_wire(event, self.format))),
                );
            }
            // Not found is an answer, not an error: one message, then OK. A stream deleted
            // between two pages simply ends the read.
            Err(Error::StreamNotFound { .. }) if first_page => {
                self.pending.push_back(Ok(ReadResp {
                    content: Some(read_resp::Content::StreamNotFound(
                        read_resp::StreamNotFound {
                            stream_identifier: Some(stream_to_wire(&self.stream)),
                        },
                    )),
                }));
            }
            Err(Error::StreamNotFound { .. }) => {}
            Err(error) => self
                .pending
                .push_back(Err(ApiError::from(error).to_status())),
        }
        Some(())
    }
}

/// A read of `$all`, page by page.
struct AllReader {
    store: Arc<dyn EventStore>,
    options: ReadAllOptions,
    /// Where the next page starts; `None` once the read is complete.
    next: Option<AllStart>,
    remaining: u64,
    format: UuidFormat,
    pending: VecDeque<Result<ReadResp, Status>>,
}

impl AllReader {
    fn new(
        store: Arc<dyn EventStore>,
        target: &AllOptions,
        options: &Options,
        direction: Direction,
        count: u64,
        format: UuidFormat,
    ) -> Result<AllReader, Status> {
        let start = match &target.all_option {
            Some(all_options::AllOption::Position(position)) => {
                AllStart::Position(Position(position.commit_position))
            }
            Some(all_options::AllOption::Start(_)) => AllStart::Start,
            Some(all_options::AllOption::End(_)) => AllStart::End,
            None => match direction {
                Direction::Forwards => AllStart::Start,
                Direction::Backwards => AllStart::End,
            },
        };
        let filter = match &options.filter_option {
            Some(FilterOption::Filter(filter)) => Some(filter_from_wire(filter)?),
            _ => None,
        };
        Ok(AllReader {
            store,
            // KurrentDB's `$all` holds system events too; clients filter them out themselves.
            options: ReadAllOptions {
                from: start,
                direction,
                limit: 0,
                scan_limit: filter.as_ref().map(|_| PAGE_SCAN_EVENTS),
                filter,
                include_system: true,
            },
            next: Some(start),
            remaining: count,
            format,
            pending: VecDeque::new(),
        })
    }
}

impl Pager for AllReader {
    fn pending(&mut self) -> &mut VecDeque<Result<ReadResp, Status>> {
        &mut self.pending
    }

    async fn read_page(&mut self) -> Option<()> {
        let from = self.next.take()?;
        if self.remaining == 0 {
            return None;
        }
        let mut options = self.options.clone();
        options.from = from;
        options.limit = self.remaining.min(PAGE_EVENTS);
        match self.store.read_all(options).await {
            Ok(slice) => {
                self.remaining -= slice.events.len() as u64;
                if !slice.end_of_log {
                    self.next = match self.options.direction {
                        Direction::Forwards => {
                            Some(AllStart::Position(Position(slice.scanned_to.0 + 1)))
                        }
                        Direction::Backwards => Some(AllStart::Position(slice.scanned_to)),
                    };
                }
                self.pending.extend(
                    slice
                        .events
                        .iter()
                        .map(|event| Ok(event_to_wire(event, self.format))),
                );
            }
            Err(error) => self
                .pending
                .push_back(Err(ApiError::from(error).to_status())),
        }
        Some(())
    }
}

async fn subscribe_to_stream(
    store: Arc<dyn EventStore>,
    target: &StreamOptions,
) -> Result<Subscription, Status> {
    let stream = stream_from_wire(target.stream_identifier.as_ref())?;
    let from = match target.revision_option {
        Some(stream_options::RevisionOption::Revision(revision)) => {
            SubscriptionStart::After(revision)
        }
        Some(stream_options::RevisionOption::End(_)) => SubscriptionStart::End,
        Some(stream_options::RevisionOption::Start(_)) | None => SubscriptionStart::Start,
    };
    refuse_if_denied(
        store
            .read_stream(&stream, ReadStreamOptions::forwards().limit(1))
            .await,
    )?;
    match Subscription::to_stream(store, stream.clone(), SubscribeToStreamOptions { from }).await {
        Ok(subscription) => Ok(subscription),
        Err(Error::StreamDeleted { .. }) => Err(stream_deleted(&stream)),
        Err(error) => Err(ApiError::from(error).to_status()),
    }
}

async fn subscribe_to_all(
    store: Arc<dyn EventStore>,
    target: &AllOptions,
    options: &Options,
) -> Result<Subscription, Status> {
    let from = match &target.all_option {
        Some(all_options::AllOption::Position(position)) => {
            SubscriptionStart::After(Position(position.commit_position))
        }
        Some(all_options::AllOption::End(_)) => SubscriptionStart::End,
        Some(all_options::AllOption::Start(_)) | None => SubscriptionStart::Start,
    };
    let (filter, checkpoint_interval) = match &options.filter_option {
        Some(FilterOption::Filter(filter)) => {
            (Some(filter_from_wire(filter)?), checkpoint_interval(filter))
        }
        _ => (None, u64::MAX),
    };
    let options = SubscribeToAllOptions {
        from,
        filter,
        include_system: true,
        checkpoint_interval,
    };
    refuse_if_denied(store.read_all(ReadAllOptions::forwards().limit(1)).await)?;
    Subscription::to_all(store, options)
        .await
        .map_err(|error| ApiError::from(error).to_status())
}

/// Answers a subscription the caller may not read with PERMISSION_DENIED before it is
/// confirmed, as KurrentDB does (the subscription itself would only find out at its first
/// read, after the confirmation). `probe` is a one-event read through the caller's store;
/// any other outcome is left for the subscription to meet.
fn refuse_if_denied<T>(probe: Result<T, Error>) -> Result<(), Status> {
    match probe {
        Err(error @ Error::AccessDenied { .. }) => Err(ApiError::from(error).to_status()),
        _ => Ok(()),
    }
}

/// The reply stream of a subscription: the confirmation first (clients block on it), then the
/// subscription's messages until the client leaves, the subscription fails, or the server
/// shuts down (UNAVAILABLE, so clients reconnect elsewhere or later).
fn subscription_stream(
    subscription: Subscription,
    to_all: bool,
    format: UuidFormat,
    compatibility: u32,
    shutdown: Shutdown,
    guard: SubscriptionGuard,
) -> ReplyStream<ReadResp> {
    let confirmation = ReadResp {
        content: Some(read_resp::Content::Confirmation(
            read_resp::SubscriptionConfirmation {
                subscription_id: Uuid::new_v4().to_string(),
            },
        )),
    };
    let cursor = SubscriptionCursor {
        subscription,
        to_all,
        last_revision: None,
        last_position: None,
        guard,
    };
    let messages = stream::unfold(Some(cursor), move |cursor| {
        let shutdown = shutdown.clone();
        async move {
            let mut cursor = cursor?;
            loop {
                cursor.guard.waiting(true);
                let message = tokio::select! {
                    biased;
                    () = shutdown.clone().wait() => {
                        let status = ApiError::ShuttingDown.to_status();
                        cursor.guard.error(&status);
                        return Some((Err(status), None));
                    }
                    message = cursor.subscription.next() => message,
                };
                cursor.guard.waiting(false);
                let reply = match message {
                    Some(Ok(SubscriptionMessage::Event(event))) => {
                        cursor.guard.event(event.position);
                        cursor.last_revision = Some(event.revision);
                        cursor.last_position = Some(event.position.value());
                        event_to_wire(&event, format)
                    }
                    Some(Ok(SubscriptionMessage::Checkpoint(position))) => {
                        cursor.guard.checkpoint(position);
                        cursor.last_position = Some(position.value());
                        ReadResp {
                            content: Some(read_resp::Content::Checkpoint(read_resp::Checkpoint {
                                commit_position: position.value(),
                                prepare_position: position.value(),
                                timestamp: Some(now()),
                            })),
                        }
                    }
                    Some(Ok(SubscriptionMessage::CaughtUp)) => {
                        cursor.guard.caught_up();
                        let (stream_revision, position) = cursor.reached();
                        ReadResp {
                            content: Some(read_resp::Content::CaughtUp(read_resp::CaughtUp {
                                timestamp: Some(now()),
                                stream_revision,
                                position,
                            })),
                        }
                    }
                    Some(Ok(SubscriptionMessage::FellBehind)) => {
                        cursor.guard.fell_behind();
                        if compatibility < FELL_BEHIND_COMPATIBILITY {
                            continue;
                        }
                        let (stream_revision, position) = cursor.reached();
                        ReadResp {
                            content: Some(read_resp::Content::FellBehind(read_resp::FellBehind {
                                timestamp: Some(now()),
                                stream_revision,
                                position,
                            })),
                        }
                    }
                    Some(Err(error)) => {
                        let status = ApiError::from(error).to_status();
                        cursor.guard.error(&status);
                        return Some((Err(status), None));
                    }
                    None => return None,
                };
                return Some((Ok(reply), Some(cursor)));
            }
        }
    });
    Box::pin(stream::once(async move { Ok(confirmation) }).chain(messages))
}

/// A subscription and how far it has delivered, for the caught-up and fell-behind messages.
struct SubscriptionCursor {
    subscription: Subscription,
    to_all: bool,
    last_revision: Option<u64>,
    last_position: Option<u64>,
    /// Counts the subscription as active (until the reply stream drops it) and its progress.
    guard: SubscriptionGuard,
}

impl SubscriptionCursor {
    /// Where the subscription stands: the last revision delivered (stream subscriptions) or the
    /// last position delivered or checkpointed (`$all`); absent before anything was delivered.
    fn reached(&self) -> (Option<i64>, Option<read_resp::Position>) {
        if self.to_all {
            let position = self.last_position.map(|position| read_resp::Position {
                commit_position: position,
                prepare_position: position,
            });
            (None, position)
        } else {
            let revision = self
                .last_revision
                .map(|revision| i64::try_from(revision).unwrap_or(i64::MAX));
            (revision, None)
        }
    }
}

fn now() -> prost_types::Timestamp {
    prost_types::Timestamp::from(std::time::SystemTime::now())
}
