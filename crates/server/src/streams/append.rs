//! `Streams.Append`: one append per call (options, then one message per event), and the append
//! logic BatchAppend shares.

use factum_core::{
    AppendResult, CurrentRevision, Error, EventStore, ExpectedRevision, ProposedEvent,
    ReadStreamOptions, StreamName,
};
use factum_proto::shared::Empty;
use factum_proto::streams::append_req::{self, options::ExpectedStreamRevision};
use factum_proto::streams::append_resp::{self, wrong_expected_version as wrong};
use factum_proto::streams::{AppendReq, AppendResp};
use tonic::{Status, Streaming};

use crate::convert::{WireEvent, stream_from_wire};
use crate::errors::ApiError;
use crate::metrics::{self, Metrics};

/// What an append did.
#[derive(Debug, Clone, Copy)]
pub enum AppendOutcome {
    /// Events were written (or found written: an idempotent retry).
    Written(AppendResult),
    /// The append carried no events: nothing was written; the stream's state is reported.
    Empty(CurrentRevision),
}

/// Events collected for one append, with the append size limit checked as they arrive.
pub struct AppendBuilder {
    events: Vec<ProposedEvent>,
    size_bytes: usize,
    max_bytes: usize,
}

impl AppendBuilder {
    /// An empty append that may grow to `max_bytes`.
    pub fn new(max_bytes: usize) -> AppendBuilder {
        AppendBuilder {
            events: Vec::new(),
            size_bytes: 0,
            max_bytes,
        }
    }

    /// Adds an event, or refuses it if the append would grow past the limit or the event is
    /// malformed.
    pub fn push(&mut self, event: WireEvent) -> Result<(), ApiError> {
        self.size_bytes = self.size_bytes.saturating_add(event.size_bytes());
        if self.size_bytes > self.max_bytes {
            return Err(ApiError::AppendTooLarge {
                max_bytes: self.max_bytes,
            });
        }
        self.events.push(event.into_proposed()?);
        Ok(())
    }

    /// The events, in order.
    pub fn into_events(self) -> Vec<ProposedEvent> {
        self.events
    }
}

/// Runs an append and counts it in `metrics`. An empty one writes nothing: it checks the
/// expectation and reports the stream's state, as KurrentDB does.
pub async fn execute_append(
    store: &dyn EventStore,
    metrics: &Metrics,
    stream: &StreamName,
    expected: ExpectedRevision,
    events: Vec<ProposedEvent>,
) -> Result<AppendOutcome, ApiError> {
    let count = events.len() as u64;
    let bytes: usize = events.iter().map(ProposedEvent::size_bytes).sum();
    let outcome = run_append(store, stream, expected, events).await;
    let counted = match &outcome {
        Ok(AppendOutcome::Written(_)) => metrics::AppendOutcome::Written,
        Ok(AppendOutcome::Empty(_)) => metrics::AppendOutcome::Empty,
        Err(ApiError::Store(Error::WrongExpectedRevision { .. })) => {
            metrics::AppendOutcome::WrongExpectedRevision
        }
        Err(_) => metrics::AppendOutcome::Error,
    };
    metrics.append(counted, count, bytes as u64);
    outcome
}

async fn run_append(
    store: &dyn EventStore,
    stream: &StreamName,
    expected: ExpectedRevision,
    events: Vec<ProposedEvent>,
) -> Result<AppendOutcome, ApiError> {
    if !events.is_empty() {
        return Ok(AppendOutcome::Written(
            store.append(stream, expected, events).await?,
        ));
    }
    let current = match store
        .read_stream(stream, ReadStreamOptions::backwards().limit(1))
        .await
    {
        Ok(events) => events.first().map_or(CurrentRevision::NoStream, |event| {
            CurrentRevision::Current(event.revision)
        }),
        Err(Error::StreamNotFound { .. }) => CurrentRevision::NoStream,
        Err(error) => return Err(error.into()),
    };
    let holds = match (expected, current) {
        (ExpectedRevision::Any, _) => true,
        (ExpectedRevision::NoStream, current) => current == CurrentRevision::NoStream,
        (ExpectedRevision::StreamExists, current) => current != CurrentRevision::NoStream,
        (ExpectedRevision::Exact(revision), current) => {
            current == CurrentRevision::Current(revision)
        }
    };
    if !holds {
        return Err(Error::WrongExpectedRevision {
            stream: stream.clone(),
            expected,
            actual: current,
        }
        .into());
    }
    Ok(AppendOutcome::Empty(current))
}

/// Serves one `Append` call.
pub async fn append(
    store: &dyn EventStore,
    max_append_bytes: usize,
    metrics: &Metrics,
    mut requests: Streaming<AppendReq>,
) -> Result<AppendResp, Status> {
    let options = match requests.message().await?.and_then(|first| first.content) {
        Some(append_req::Content::Options(options)) => options,
        _ => {
            return Err(ApiError::bad_request("an append must start with its options").into());
        }
    };
    let stream = stream_from_wire(options.stream_identifier.as_ref())?;
    let expected = match options.expected_stream_revision {
        Some(ExpectedStreamRevision::Revision(revision)) => ExpectedRevision::Exact(revision),
        Some(ExpectedStreamRevision::NoStream(_)) => ExpectedRevision::NoStream,
        Some(ExpectedStreamRevision::StreamExists(_)) => ExpectedRevision::StreamExists,
        Some(ExpectedStreamRevision::Any(_)) | None => ExpectedRevision::Any,
    };
    let mut append = AppendBuilder::new(max_append_bytes);
    // A client that disconnects before half-closing makes `message()` fail: nothing is written.
    while let Some(message) = requests.message().await? {
        match message.content {
            Some(append_req::Content::ProposedMessage(event)) => append.push(WireEvent {
                id: event.id,
                metadata: event.metadata,
                custom_metadata: event.custom_metadata,
                data: event.data,
            })?,
            _ => {
                return Err(ApiError::bad_request("an append sends its options only once").into());
            }
        }
    }
    match execute_append(store, metrics, &stream, expected, append.into_events()).await {
        Ok(outcome) => Ok(success(outcome)),
        // A wrong expected revision is an in-band answer on Append, not a gRPC error.
        Err(ApiError::Store(
            error @ Error::WrongExpectedRevision {
                expected, actual, ..
            },
        )) => {
            metrics.error(&ApiError::Store(error).to_status());
            Ok(wrong_expected_version(expected, actual))
        }
        Err(error) => Err(error.to_status()),
    }
}

fn success(outcome: AppendOutcome) -> AppendResp {
    use append_resp::success::{CurrentRevisionOption, PositionOption};
    let (revision, position) = match outcome {
        AppendOutcome::Written(result) => (
            CurrentRevisionOption::CurrentRevision(result.revision),
            PositionOption::Position(append_resp::Position {
                commit_position: result.position.value(),
                prepare_position: result.position.value(),
            }),
        ),
        AppendOutcome::Empty(CurrentRevision::Current(revision)) => (
            CurrentRevisionOption::CurrentRevision(revision),
            PositionOption::NoPosition(Empty {}),
        ),
        AppendOutcome::Empty(CurrentRevision::NoStream) => (
            CurrentRevisionOption::NoStream(Empty {}),
            PositionOption::NoPosition(Empty {}),
        ),
    };
    AppendResp {
        result: Some(append_resp::Result::Success(append_resp::Success {
            current_revision_option: Some(revision),
            position_option: Some(position),
        })),
    }
}

/// The in-band answer, with both the current fields and the pre-20.6 ones filled.
fn wrong_expected_version(expected: ExpectedRevision, actual: CurrentRevision) -> AppendResp {
    let (current, current_legacy) = match actual {
        CurrentRevision::Current(revision) => (
            wrong::CurrentRevisionOption::CurrentRevision(revision),
            wrong::CurrentRevisionOption2060::CurrentRevision2060(revision),
        ),
        CurrentRevision::NoStream => (
            wrong::CurrentRevisionOption::CurrentNoStream(Empty {}),
            wrong::CurrentRevisionOption2060::NoStream2060(Empty {}),
        ),
    };
    let (expected, expected_legacy) = match expected {
        ExpectedRevision::Exact(revision) => (
            wrong::ExpectedRevisionOption::ExpectedRevision(revision),
            Some(wrong::ExpectedRevisionOption2060::ExpectedRevision2060(
                revision,
            )),
        ),
        ExpectedRevision::Any => (
            wrong::ExpectedRevisionOption::ExpectedAny(Empty {}),
            Some(wrong::ExpectedRevisionOption2060::Any2060(Empty {})),
        ),
        ExpectedRevision::StreamExists => (
            wrong::ExpectedRevisionOption::ExpectedStreamExists(Empty {}),
            Some(wrong::ExpectedRevisionOption2060::StreamExists2060(
                Empty {},
            )),
        ),
        // The old layout had no "no stream" expectation.
        ExpectedRevision::NoStream => (
            wrong::ExpectedRevisionOption::ExpectedNoStream(Empty {}),
            None,
        ),
    };
    AppendResp {
        result: Some(append_resp::Result::WrongExpectedVersion(
            append_resp::WrongExpectedVersion {
                current_revision_option_20_6_0: Some(current_legacy),
                expected_revision_option_20_6_0: expected_legacy,
                current_revision_option: Some(current),
                expected_revision_option: Some(expected),
            },
        )),
    }
}
