//! `Streams.BatchAppend`: a long-lived, multiplexed call. Each request carries a correlation id;
//! a request may come in several chunks (`is_final` on the last), and its append runs, atomically,
//! once the last chunk is in. Appends of one call run concurrently (so the engine's group commit
//! can batch them) and each is answered with its correlation id echoed, in completion order.
//!
//! Errors of one append are answered in-band (a `google.rpc.Status` whose detail names the
//! error); the call itself fails only when the client breaks the protocol or the server stops.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use factum_core::{CurrentRevision, EventStore, ExpectedRevision, StreamName};
use factum_proto::shared::{self, AllStreamPosition, StreamIdentifier};
use factum_proto::streams::batch_append_req::options::{DeadlineOption, ExpectedStreamPosition};
use factum_proto::streams::batch_append_resp::{self, success};
use factum_proto::streams::{BatchAppendReq, BatchAppendResp};
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Streaming;
use uuid::Uuid;

use super::ReplyStream;
use super::append::{AppendBuilder, AppendOutcome, execute_append};
use crate::convert::{WireEvent, stream_from_wire, uuid_from_wire};
use crate::errors::ApiError;
use crate::metrics::{Metrics, status_of_rpc_error};
use crate::shutdown::Shutdown;

/// Replies buffered for a client that reads them slowly; beyond this the call stops taking
/// requests until the client catches up.
const REPLY_BUFFER: usize = 64;

/// The most requests of one call whose chunks are still arriving.
const PENDING_REQUESTS_MAX: usize = 1024;

type Reply = Result<BatchAppendResp, tonic::Status>;
type AppendFuture = Pin<Box<dyn Future<Output = BatchAppendResp> + Send>>;

/// Starts serving one BatchAppend call: a task reads the requests and answers through a bounded
/// channel. It ends when the client half-closes (after answering what is in flight), when the
/// client goes away, or at shutdown; it never outlives the call.
pub fn batch_append(
    store: Arc<dyn EventStore>,
    shutdown: Shutdown,
    max_append_bytes: usize,
    metrics: Arc<Metrics>,
    requests: Streaming<BatchAppendReq>,
) -> ReplyStream<BatchAppendResp> {
    let (replies, receiver) = mpsc::channel(REPLY_BUFFER);
    let call = BatchCall {
        store,
        metrics,
        max_append_bytes,
        pending: HashMap::new(),
        replies,
    };
    tokio::spawn(call.run(requests, shutdown));
    Box::pin(ReceiverStream::new(receiver))
}

/// One request whose chunks are still arriving.
struct PendingAppend {
    correlation_id: shared::Uuid,
    identifier: StreamIdentifier,
    /// The expectation as sent, echoed in the reply.
    expected_wire: Option<ExpectedStreamPosition>,
    target: Result<(StreamName, ExpectedRevision, Option<SystemTime>), ApiError>,
    events: AppendBuilder,
    /// The first error in the request's chunks; answered once its last chunk is in.
    failed: Option<ApiError>,
}

/// What one chunk led to.
enum Accepted {
    /// It was its request's last chunk: run the append.
    Run(AppendFuture),
    /// More chunks of its request are to come.
    AwaitMoreChunks,
    /// It is refused at once, with this reply.
    Refused(Box<BatchAppendResp>),
}

struct BatchCall {
    store: Arc<dyn EventStore>,
    metrics: Arc<Metrics>,
    max_append_bytes: usize,
    pending: HashMap<Uuid, PendingAppend>,
    replies: mpsc::Sender<Reply>,
}

impl BatchCall {
    async fn run(mut self, mut requests: Streaming<BatchAppendReq>, shutdown: Shutdown) {
        let mut in_flight: FuturesUnordered<AppendFuture> = FuturesUnordered::new();
        let mut reading = true;
        let stopping = shutdown.clone().wait();
        tokio::pin!(stopping);
        loop {
            tokio::select! {
                biased;
                () = &mut stopping, if reading => reading = false,
                Some(reply) = in_flight.next(), if !in_flight.is_empty() => {
                    // A client that stopped reading replies is gone: stop taking requests.
                    if self.replies.send(Ok(reply)).await.is_err() {
                        reading = false;
                    }
                }
                message = requests.message(), if reading => match message {
                    Ok(Some(request)) => match self.accept(request) {
                        Accepted::Run(append) => in_flight.push(append),
                        Accepted::AwaitMoreChunks => {}
                        Accepted::Refused(reply) => {
                            if let Some(batch_append_resp::Result::Error(error)) = &reply.result {
                                self.metrics.error(&status_of_rpc_error(error));
                            }
                            if self.replies.send(Ok(*reply)).await.is_err() {
                                reading = false;
                            }
                        }
                    },
                    // Half-closed: answer what is in flight, then end the call.
                    Ok(None) => reading = false,
                    // The client went away or broke the stream (a message over the size
                    // limit, say): its unfinished requests are dropped; appends already
                    // running complete (each is atomic). A client still there learns why.
                    Err(status) => {
                        tracing::debug!(%status, "BatchAppend call ended by the client");
                        let _ = self.replies.try_send(Err(status));
                        reading = false;
                    }
                },
                else => break,
            }
            if !reading && in_flight.is_empty() {
                break;
            }
        }
        if shutdown.is_triggered() {
            let _ = self
                .replies
                .send(Err(ApiError::ShuttingDown.to_status()))
                .await;
        }
    }

    /// Takes one chunk. Returns the append to run when it was the request's last chunk, or an
    /// immediate error reply.
    fn accept(&mut self, request: BatchAppendReq) -> Accepted {
        match self.accept_chunk(request) {
            Ok(Some(append)) => Accepted::Run(append),
            Ok(None) => Accepted::AwaitMoreChunks,
            Err(reply) => Accepted::Refused(reply),
        }
    }

    fn accept_chunk(
        &mut self,
        request: BatchAppendReq,
    ) -> Result<Option<AppendFuture>, Box<BatchAppendResp>> {
        let wire_id = request.correlation_id.clone().unwrap_or_default();
        let correlation_id = uuid_from_wire(request.correlation_id.as_ref(), "correlation_id")
            .map_err(|error| error_reply(wire_id.clone(), None, None, &error))?;
        let entry = match self.pending.remove(&correlation_id) {
            Some(entry) => entry,
            None => {
                if self.pending.len() >= PENDING_REQUESTS_MAX {
                    let error = ApiError::bad_request(format!(
                        "more than {PENDING_REQUESTS_MAX} unfinished requests on one call"
                    ));
                    return Err(error_reply(wire_id, None, None, &error));
                }
                let Some(options) = request.options else {
                    let error = ApiError::bad_request(
                        "the first chunk of a BatchAppend request must carry its options",
                    );
                    return Err(error_reply(wire_id, None, None, &error));
                };
                let identifier = options.stream_identifier.clone().unwrap_or_default();
                PendingAppend {
                    correlation_id: wire_id,
                    identifier,
                    expected_wire: options.expected_stream_position,
                    target: target_of(&options),
                    events: AppendBuilder::new(self.max_append_bytes),
                    failed: None,
                }
            }
        };
        let mut entry = entry;
        if entry.failed.is_none() {
            for event in request.proposed_messages {
                let pushed = entry.events.push(WireEvent {
                    id: event.id,
                    metadata: event.metadata,
                    custom_metadata: event.custom_metadata,
                    data: event.data,
                });
                if let Err(error) = pushed {
                    // Keep the request (to answer it once) but not its events.
                    entry.events = AppendBuilder::new(0);
                    entry.failed = Some(error);
                    break;
                }
            }
        }
        if !request.is_final {
            self.pending.insert(correlation_id, entry);
            return Ok(None);
        }
        Ok(Some(self.run_append(entry)))
    }

    fn run_append(&self, entry: PendingAppend) -> AppendFuture {
        let store = self.store.clone();
        let metrics = self.metrics.clone();
        Box::pin(async move {
            let PendingAppend {
                correlation_id,
                identifier,
                expected_wire,
                target,
                events,
                failed,
            } = entry;
            let reply = |result| BatchAppendResp {
                correlation_id: Some(correlation_id.clone()),
                result: Some(result),
                stream_identifier: Some(identifier.clone()),
                expected_stream_position: expected_wire.map(echo),
            };
            let outcome = match (failed, target) {
                (Some(error), _) | (None, Err(error)) => Err(error),
                (None, Ok((stream, expected, deadline))) => {
                    if deadline.is_some_and(|deadline| deadline <= SystemTime::now()) {
                        Err(ApiError::DeadlineExceeded)
                    } else {
                        execute_append(
                            store.as_ref(),
                            &metrics,
                            &stream,
                            expected,
                            events.into_events(),
                        )
                        .await
                    }
                }
            };
            match outcome {
                Ok(outcome) => reply(batch_append_resp::Result::Success(success_of(outcome))),
                Err(error) => {
                    metrics.error(&error.to_status());
                    reply(batch_append_resp::Result::Error(error.to_rpc_status()))
                }
            }
        })
    }
}

/// The stream, expectation and deadline a request's options give.
fn target_of(
    options: &factum_proto::streams::batch_append_req::Options,
) -> Result<(StreamName, ExpectedRevision, Option<SystemTime>), ApiError> {
    let stream = stream_from_wire(options.stream_identifier.as_ref())?;
    let expected = match options.expected_stream_position {
        Some(ExpectedStreamPosition::StreamPosition(revision)) => ExpectedRevision::Exact(revision),
        Some(ExpectedStreamPosition::NoStream(())) => ExpectedRevision::NoStream,
        Some(ExpectedStreamPosition::StreamExists(())) => ExpectedRevision::StreamExists,
        Some(ExpectedStreamPosition::Any(())) | None => ExpectedRevision::Any,
    };
    let deadline = match &options.deadline_option {
        // Node: an absolute time.
        Some(DeadlineOption::Deadline21100(timestamp)) => {
            Some(SystemTime::try_from(*timestamp).unwrap_or(SystemTime::UNIX_EPOCH))
        }
        // Python: a duration from now, ~10^11 s when the caller set none.
        Some(DeadlineOption::Deadline(duration)) => {
            let duration = Duration::try_from(*duration).unwrap_or(Duration::ZERO);
            SystemTime::now().checked_add(duration)
        }
        None => None,
    };
    Ok((stream, expected, deadline))
}

fn echo(expected: ExpectedStreamPosition) -> batch_append_resp::ExpectedStreamPosition {
    use batch_append_resp::ExpectedStreamPosition as Echo;
    match expected {
        ExpectedStreamPosition::StreamPosition(revision) => Echo::StreamPosition(revision),
        ExpectedStreamPosition::NoStream(()) => Echo::NoStream(()),
        ExpectedStreamPosition::Any(()) => Echo::Any(()),
        ExpectedStreamPosition::StreamExists(()) => Echo::StreamExists(()),
    }
}

fn success_of(outcome: AppendOutcome) -> batch_append_resp::Success {
    let (revision, position) = match outcome {
        AppendOutcome::Written(result) => (
            success::CurrentRevisionOption::CurrentRevision(result.revision),
            success::PositionOption::Position(AllStreamPosition {
                commit_position: result.position.value(),
                prepare_position: result.position.value(),
            }),
        ),
        AppendOutcome::Empty(CurrentRevision::Current(revision)) => (
            success::CurrentRevisionOption::CurrentRevision(revision),
            success::PositionOption::NoPosition(()),
        ),
        AppendOutcome::Empty(CurrentRevision::NoStream) => (
            success::CurrentRevisionOption::NoStream(()),
            success::PositionOption::NoPosition(()),
        ),
    };
    batch_append_resp::Success {
        current_revision_option: Some(revision),
        position_option: Some(position),
    }
}

fn error_reply(
    correlation_id: shared::Uuid,
    identifier: Option<StreamIdentifier>,
    expected: Option<ExpectedStreamPosition>,
    error: &ApiError,
) -> Box<BatchAppendResp> {
    Box::new(BatchAppendResp {
        correlation_id: Some(correlation_id),
        result: Some(batch_append_resp::Result::Error(error.to_rpc_status())),
        stream_identifier: identifier,
        expected_stream_position: expected.map(echo),
    })
}
