//! [`RemoteStore`]: the [`EventStore`] contract over the KurrentDB gRPC protocol.

use std::sync::OnceLock;
use std::time::Duration;

use async_trait::async_trait;
use factum_core::rules;
use factum_core::{
    AllSlice, AllStart, AppendResult, DeleteResult, Direction, Error, EventStore, ExpectedRevision,
    Limits, Position, ProposedEvent, ReadAllOptions, ReadStreamOptions, RecordedEvent, Result,
    StreamName,
};
use factum_proto::streams::streams_client::StreamsClient;
use factum_proto::streams::{
    BatchAppendReq, DeleteReq, TombstoneReq, batch_append_req, batch_append_resp, delete_req,
    delete_resp, read_resp, tombstone_req, tombstone_resp,
};
use prost::Message;
use tokio::sync::watch;
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint};
use uuid::Uuid;

use crate::calls::Calls;
use crate::errors::{self, Context};
use crate::head::HeadWatch;
use crate::tls;
use crate::url::{ConnectionSettings, TlsTrust};
use crate::wire;

/// How long connecting may take before it fails.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The largest message accepted from the server. `factum serve` sends at most 16 MiB.
const MESSAGE_BYTES_MAX: usize = 64 * 1024 * 1024;

/// The events of a large append travel in chunks of about this many bytes (the server runs the
/// append once the last chunk is in), so no single message grows with the append.
const CHUNK_BYTES: usize = 1024 * 1024;

/// An event store on a server: `factum serve`, or any server speaking the KurrentDB client
/// protocol (v1, HTTP/2 in plain text or over TLS, anonymously or with basic credentials).
///
/// It implements the whole [`EventStore`] contract over the protocol's `Streams` service, so
/// the conformance suite, the toolkit (aggregates, projections, subscriptions) and the
/// command line work on it unchanged, with these differences that the protocol imposes:
///
/// - **Schema versions and tags** have no field on the wire: they travel in the event's
///   metadata map as `factum-schema-version` (only when not 1) and `factum-tags` (a JSON
///   array, only when there are tags); `factum serve` keeps them, other servers drop them.
/// - **Limits** are the server's, which the protocol does not tell: input is checked here
///   against [`RemoteStore::limits`] (the defaults, unless [`RemoteStore::with_limits`]
///   says otherwise) so that it gets the contract's exact errors, and the server checks it
///   again.
/// - Credentials the server refuses are [`Error::Unauthenticated`]; what a user may not do
///   (the server's stream ACLs) is [`Error::AccessDenied`].
/// - Failures of the connection or of the server are [`Error::Unavailable`] with the cause.
///   An append whose answer was lost may or may not have been written: retry it with the same
///   event ids and an exact expected revision, which is idempotent.
///
/// Appends use `BatchAppend`: one message carries the whole append (large appends travel in
/// chunks), and every failure comes back as a typed detail (wrong expected version, stream
/// deleted, too large) rather than text to parse; it is also the call the KurrentDB clients
/// themselves prefer. One call per append keeps concurrent appends independent (HTTP/2
/// multiplexes them on one connection).
///
/// [`EventStore::watch_head`] is served by a background task holding a `$all` subscription,
/// started on first use and stopped when the store is dropped.
pub struct RemoteStore {
    calls: Calls,
    endpoint: String,
    limits: Limits,
    head: HeadWatch,
    /// The position of the log's first event, once seen. It never changes (nothing removes
    /// events from `$all`), and backwards reads that reach the start report it.
    first_position: OnceLock<Position>,
}

impl RemoteStore {
    /// Connects to the server at `url`: `http://HOST:PORT`, or a KurrentDB client URL such as
    /// `kurrentdb://HOST:PORT?tls=false` or `kurrentdb://USER:PASSWORD@HOST:PORT?tlsCaFile=ca.pem`
    /// (see [`ConnectionSettings::parse`]).
    ///
    /// Must be called within a tokio runtime, which then runs the connection.
    ///
    /// Errors: [`Error::InvalidRequest`] for a URL that is malformed or asks for what is not
    /// supported (several hosts, TLS without a CA file); otherwise as
    /// [`RemoteStore::connect_with`].
    pub async fn connect(url: &str) -> Result<RemoteStore> {
        RemoteStore::connect_with(ConnectionSettings::parse(url)?).await
    }

    /// Connects as `settings` say: over TLS when they say how to trust the server, sending their
    /// credentials (if any) with every call. The connection is made (and, with TLS, the
    /// server's certificate checked) before this returns; the credentials are checked by the
    /// server on each call, so bad ones surface as [`Error::Unauthenticated`] from the first.
    ///
    /// Errors: [`Error::InvalidRequest`] for an endpoint that is no URL or a CA file that
    /// cannot be read or holds no certificate; [`Error::Unavailable`] when no connection can be
    /// made, saying so when the TLS handshake failed.
    pub async fn connect_with(settings: ConnectionSettings) -> Result<RemoteStore> {
        let mut endpoint = Endpoint::from_shared(settings.endpoint.clone())
            .map_err(|error| {
                Error::invalid_request(format!("server URL {:?}: {error}", settings.endpoint))
            })?
            .connect_timeout(CONNECT_TIMEOUT)
            .tcp_nodelay(true);
        let tls_refused = |error: tonic::transport::Error| {
            let mut reason = format!("TLS settings for {}: {error}", settings.endpoint);
            errors::push_causes(&mut reason, std::error::Error::source(&error));
            Error::invalid_request(reason)
        };
        match &settings.tls {
            None => {}
            Some(TlsTrust::CaFile(path)) => {
                let ca = Certificate::from_pem(tls::read_ca_file(path)?);
                endpoint = endpoint
                    .tls_config(ClientTlsConfig::new().ca_certificate(ca))
                    .map_err(tls_refused)?;
            }
            Some(TlsTrust::AnyCertificate) => {
                tracing::warn!(
                    endpoint = %settings.endpoint,
                    "tlsVerifyCert=false: the server's certificate is not checked, so the \
                     connection is encrypted but anyone in the middle can pose as the server"
                );
                endpoint = endpoint
                    .tls_config_with_verifier(ClientTlsConfig::new(), tls::any_certificate())
                    .map_err(tls_refused)?;
            }
        }
        if let Some(interval) = settings.keep_alive_interval {
            endpoint = endpoint
                .http2_keep_alive_interval(interval)
                .keep_alive_while_idle(true);
        }
        if let Some(timeout) = settings.keep_alive_timeout {
            endpoint = endpoint.keep_alive_timeout(timeout);
        }
        let channel = endpoint
            .connect()
            .await
            .map_err(|error| errors::connect_failure(&settings, &error))?;
        let client = StreamsClient::new(channel).max_decoding_message_size(MESSAGE_BYTES_MAX);
        let calls = Calls::new(client, &settings);
        Ok(RemoteStore {
            calls,
            endpoint: settings.endpoint,
            limits: Limits::default(),
            head: HeadWatch::new(tokio::runtime::Handle::current()),
            first_position: OnceLock::new(),
        })
    }

    /// Checks input against `limits` instead of the defaults: set them to the server's.
    pub fn with_limits(mut self, limits: Limits) -> RemoteStore {
        self.limits = limits;
        self
    }

    /// The server's address, `http://HOST:PORT` (or `https://` with TLS).
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The position of the log's first event, `None` when the log is empty.
    async fn first_position(&self) -> Result<Option<Position>> {
        if let Some(first) = self.first_position.get() {
            return Ok(Some(*first));
        }
        let first = self.calls.first_position().await?;
        if let Some(first) = first {
            let _ = self.first_position.set(first);
        }
        Ok(first)
    }

    async fn delete_or_tombstone(
        &self,
        stream: &StreamName,
        expected: ExpectedRevision,
        tombstone: bool,
    ) -> Result<DeleteResult> {
        let identifier = Some(wire::stream_identifier(stream));
        let mut client = self.calls.client.clone();
        let answer = if tombstone {
            use tombstone_req::options::ExpectedStreamRevision as Expected;
            let expected_stream_revision = Some(match expected {
                ExpectedRevision::Any => Expected::Any(Default::default()),
                ExpectedRevision::NoStream => Expected::NoStream(Default::default()),
                ExpectedRevision::StreamExists => Expected::StreamExists(Default::default()),
                ExpectedRevision::Exact(revision) => Expected::Revision(revision),
            });
            let request = TombstoneReq {
                options: Some(tombstone_req::Options {
                    stream_identifier: identifier,
                    expected_stream_revision,
                }),
            };
            client
                .tombstone(self.calls.request(request, false))
                .await
                .map(|reply| match reply.into_inner().position_option {
                    Some(tombstone_resp::PositionOption::Position(position)) => {
                        Some(position.commit_position)
                    }
                    _ => None,
                })
        } else {
            use delete_req::options::ExpectedStreamRevision as Expected;
            let expected_stream_revision = Some(match expected {
                ExpectedRevision::Any => Expected::Any(Default::default()),
                ExpectedRevision::NoStream => Expected::NoStream(Default::default()),
                ExpectedRevision::StreamExists => Expected::StreamExists(Default::default()),
                ExpectedRevision::Exact(revision) => Expected::Revision(revision),
            });
            let request = DeleteReq {
                options: Some(delete_req::Options {
                    stream_identifier: identifier,
                    expected_stream_revision,
                }),
            };
            client
                .delete(self.calls.request(request, false))
                .await
                .map(|reply| match reply.into_inner().position_option {
                    Some(delete_resp::PositionOption::Position(position)) => {
                        Some(position.commit_position)
                    }
                    _ => None,
                })
        };
        let context = Context {
            stream: Some(stream),
            expected: Some(expected),
            append: None,
        };
        match answer {
            Ok(Some(position)) => {
                let position = Position(position);
                self.head.raise(position);
                Ok(DeleteResult { position })
            }
            Ok(None) => Err(Error::Corrupt {
                detail: format!("the server deleted {stream} without saying where"),
            }),
            Err(status) => Err(errors::from_status(&status, context)),
        }
    }
}

#[async_trait]
impl EventStore for RemoteStore {
    async fn append(
        &self,
        stream: &StreamName,
        expected: ExpectedRevision,
        events: Vec<ProposedEvent>,
    ) -> Result<AppendResult> {
        // Checked here first for the contract's exact errors; the server checks again.
        rules::validate_append(stream, &events, &self.limits)?;
        let size = (
            events.iter().map(ProposedEvent::size_bytes).sum::<usize>(),
            events.len(),
        );
        // BatchAppend rather than Append: the whole append is one message (or a few chunks),
        // not one message per event, and every refusal comes back as a typed detail instead of
        // a status whose text or trailers must be parsed. One call per append: nothing to
        // multiplex or to resynchronise after a lost connection.
        let correlation_id = Uuid::new_v4();
        let requests = batch_requests(stream, expected, correlation_id, &events);
        let context = Context {
            stream: Some(stream),
            expected: Some(expected),
            append: Some(size),
        };
        let status_error = |status: tonic::Status| errors::from_status(&status, context);
        let request = self
            .calls
            .request(futures_util::stream::iter(requests), false);
        let mut replies = self
            .calls
            .client
            .clone()
            .batch_append(request)
            .await
            .map_err(status_error)?
            .into_inner();
        let reply = loop {
            match replies.message().await.map_err(status_error)? {
                Some(reply) => {
                    let ours = reply.correlation_id.as_ref().is_some_and(|id| {
                        wire::uuid_from_wire(Some(id)).ok() == Some(correlation_id)
                    });
                    if ours {
                        break reply;
                    }
                }
                None => {
                    return Err(Error::Unavailable {
                        reason: format!(
                            "the server ended the append to {stream} without an answer: it may \
                             or may not be written (retrying it with the same event ids is safe)"
                        ),
                    });
                }
            }
        };
        match reply.result {
            Some(batch_append_resp::Result::Success(success)) => {
                use batch_append_resp::success::{CurrentRevisionOption, PositionOption};
                match (success.current_revision_option, success.position_option) {
                    (
                        Some(CurrentRevisionOption::CurrentRevision(revision)),
                        Some(PositionOption::Position(position)),
                    ) => {
                        let position = Position(position.commit_position);
                        self.head.raise(position);
                        Ok(AppendResult { position, revision })
                    }
                    _ => Err(Error::Corrupt {
                        detail: format!(
                            "the server acknowledged the append to {stream} without its \
                             revision and position"
                        ),
                    }),
                }
            }
            Some(batch_append_resp::Result::Error(status)) => {
                Err(errors::from_rpc_status(&status, stream, expected, size))
            }
            None => Err(Error::Corrupt {
                detail: format!("the server answered the append to {stream} with nothing"),
            }),
        }
    }

    async fn read_stream(
        &self,
        stream: &StreamName,
        options: ReadStreamOptions,
    ) -> Result<Vec<RecordedEvent>> {
        let context = Context {
            stream: Some(stream),
            ..Context::default()
        };
        let status_error = |status: tonic::Status| errors::from_status(&status, context);
        // A read of no events still says whether the stream is there: ask for one, keep none.
        let count = options.limit.max(1);
        let request = wire::stream_read(stream, options.from, options.direction, count);
        let mut messages = self
            .calls
            .read(request, false)
            .await
            .map_err(status_error)?;
        let mut events = Vec::new();
        while let Some(message) = messages.message().await.map_err(status_error)? {
            match message.content {
                Some(read_resp::Content::Event(read_resp::ReadEvent {
                    event: Some(event),
                    ..
                })) => events.push(wire::recorded_from_wire(event)?),
                Some(read_resp::Content::StreamNotFound(_)) => {
                    return Err(Error::StreamNotFound {
                        stream: stream.clone(),
                    });
                }
                _ => {}
            }
        }
        events.truncate(usize::try_from(options.limit).unwrap_or(usize::MAX));
        Ok(events)
    }

    async fn read_all(&self, options: ReadAllOptions) -> Result<AllSlice> {
        AllRead::new(self, options).run().await
    }

    async fn delete_stream(
        &self,
        stream: &StreamName,
        expected: ExpectedRevision,
    ) -> Result<DeleteResult> {
        self.delete_or_tombstone(stream, expected, false).await
    }

    async fn tombstone_stream(
        &self,
        stream: &StreamName,
        expected: ExpectedRevision,
    ) -> Result<DeleteResult> {
        self.delete_or_tombstone(stream, expected, true).await
    }

    async fn head(&self) -> Result<Position> {
        let head = self.calls.head().await?;
        self.head.raise(head);
        Ok(head)
    }

    fn watch_head(&self) -> watch::Receiver<Position> {
        self.head.subscribe(&self.calls)
    }

    fn limits(&self) -> &Limits {
        &self.limits
    }
}

/// The BatchAppend messages of one append: options with the first chunk, `is_final` on the
/// last.
fn batch_requests(
    stream: &StreamName,
    expected: ExpectedRevision,
    correlation_id: Uuid,
    events: &[ProposedEvent],
) -> Vec<BatchAppendReq> {
    let mut chunks: Vec<Vec<batch_append_req::ProposedMessage>> = vec![Vec::new()];
    let mut chunk_bytes = 0;
    for event in events {
        let message = wire::proposed_to_wire(event);
        let size = message.encoded_len();
        let last = chunks.last_mut().expect("there is always a chunk");
        if !last.is_empty() && chunk_bytes + size > CHUNK_BYTES {
            chunks.push(Vec::new());
            chunk_bytes = 0;
        }
        chunk_bytes += size;
        chunks
            .last_mut()
            .expect("there is always a chunk")
            .push(message);
    }
    let chunk_count = chunks.len();
    chunks
        .into_iter()
        .enumerate()
        .map(|(index, proposed_messages)| BatchAppendReq {
            correlation_id: Some(wire::uuid_to_wire(correlation_id)),
            options: (index == 0).then(|| batch_append_req::Options {
                stream_identifier: Some(wire::stream_identifier(stream)),
                expected_stream_position: Some(wire::expected_to_batch(expected)),
                deadline_option: None,
            }),
            proposed_messages,
            is_final: index + 1 == chunk_count,
        })
        .collect()
}

/// One `$all` read of the contract, made of one or more reads on the wire.
///
/// The wire's reads have no scan limit and do not say how far a filtered read looked, so:
///
/// - With a filter and no scan limit, the server filters (only matches travel). When it
///   reaches the end of the log, the read has examined up to the head (forwards, read before
///   the read) or down to the first event (backwards), which is what `scanned_to` reports.
/// - Otherwise every event travels and is examined here, which makes `scanned_to`,
///   `end_of_log` and `scan_limit` exact. System events are always skipped here (the wire's
///   `$all` includes them, and no one filter excludes both system streams and `$` types).
///
/// Each wire read asks for one event more than the contract's read may still take: seeing it
/// (or not) is how the read knows whether it stopped at the end of the log.
struct AllRead<'a> {
    store: &'a RemoteStore,
    options: ReadAllOptions,
    /// The filter the server applies, if any.
    server_filter: Option<factum_proto::streams::read_req::options::FilterOptions>,
    events: Vec<RecordedEvent>,
    examined: u64,
    /// The position of the last event examined.
    last_examined: Option<Position>,
}

impl<'a> AllRead<'a> {
    fn new(store: &'a RemoteStore, options: ReadAllOptions) -> AllRead<'a> {
        let server_filter = match (&options.filter, options.scan_limit) {
            (Some(filter), None) => wire::filter_to_wire(filter),
            _ => None,
        };
        AllRead {
            store,
            options,
            server_filter,
            events: Vec::new(),
            examined: 0,
            last_examined: None,
        }
    }

    async fn run(mut self) -> Result<AllSlice> {
        let direction = self.options.direction;
        let limit = self.options.limit;
        let scan_limit = self.options.scan_limit.unwrap_or(u64::MAX);
        match (direction, self.options.from) {
            (Direction::Forwards, AllStart::End) => {
                return Ok(AllSlice {
                    events: Vec::new(),
                    scanned_to: self.store.head().await?,
                    end_of_log: true,
                });
            }
            (Direction::Backwards, AllStart::Start) => {
                return Ok(AllSlice {
                    events: Vec::new(),
                    scanned_to: Position::START,
                    end_of_log: true,
                });
            }
            _ => {}
        }
        if limit == 0 || scan_limit == 0 {
            return self.examine_nothing().await;
        }
        let mut from = self.options.from;
        loop {
            // Forwards, a filtered read that reaches the end has examined up to the head as it
            // was before the read began.
            let head_before = match (&self.server_filter, direction) {
                (Some(_), Direction::Forwards) => Some(self.store.head().await?),
                _ => None,
            };
            let wanted = (limit - self.events.len() as u64)
                .min(scan_limit - self.examined)
                .saturating_add(1);
            let request = wire::all_read(from, direction, wanted, self.server_filter.clone());
            let status_error =
                |status: tonic::Status| errors::from_status(&status, Context::default());
            let mut messages = self
                .store
                .calls
                .read(request, false)
                .await
                .map_err(status_error)?;
            let mut received = 0u64;
            while let Some(message) = messages.message().await.map_err(status_error)? {
                let event = match message.content {
                    Some(read_resp::Content::Event(read_resp::ReadEvent {
                        event: Some(event),
                        ..
                    })) => wire::recorded_from_wire(event)?,
                    _ => continue,
                };
                received += 1;
                if self.events.len() as u64 >= limit || self.examined >= scan_limit {
                    // There is more to examine: the read stops here. Dropping the messages
                    // cancels the rest of the wire read.
                    return Ok(self.finish(false, None));
                }
                self.examined += 1;
                self.last_examined = Some(event.position);
                if self.options.keeps(&event) {
                    self.events.push(event);
                }
            }
            if received < wanted {
                // The server ran out of events: the end of the log.
                let reached = match direction {
                    Direction::Forwards => head_before,
                    Direction::Backwards if self.server_filter.is_some() => {
                        self.store.first_position().await?
                    }
                    Direction::Backwards => None,
                };
                return Ok(self.finish(true, reached));
            }
            let last = self
                .last_examined
                .expect("a full wire read examined at least one event");
            from = AllStart::Position(match direction {
                Direction::Forwards => Position(last.value().saturating_add(1)),
                Direction::Backwards => last,
            });
        }
    }

    /// The slice, with `scanned_to` at the last event examined (or the "nothing examined"
    /// bound), moved to `reached` when the server examined further than what it sent.
    fn finish(self, end_of_log: bool, reached: Option<Position>) -> AllSlice {
        let nothing_examined = self.unscanned_bound();
        let scanned_to = self.last_examined.or(nothing_examined);
        let scanned_to = match (self.options.direction, scanned_to, reached) {
            (Direction::Forwards, Some(scanned), Some(reached)) => scanned.max(reached),
            (Direction::Backwards, Some(scanned), Some(reached)) => scanned.min(reached),
            (_, Some(scanned), None) => scanned,
            (_, None, Some(reached)) => reached,
            // Backwards from the end of an empty log: the head (0) plus one.
            (_, None, None) => Position(1),
        };
        AllSlice {
            events: self.events,
            scanned_to,
            end_of_log,
        }
    }

    /// Where `scanned_to` stands when nothing was examined, if known without asking: the
    /// start bound minus one forwards, the exclusive start bound backwards.
    fn unscanned_bound(&self) -> Option<Position> {
        match (self.options.direction, self.options.from) {
            (Direction::Forwards, AllStart::Start) => Some(Position::START),
            (Direction::Forwards, AllStart::Position(from)) => {
                Some(Position(from.value().saturating_sub(1)))
            }
            (Direction::Backwards, AllStart::Position(before)) => Some(before),
            // Backwards from the end: the head plus one, which needs the head.
            _ => None,
        }
    }

    /// A read that may examine nothing (a limit or scan limit of 0): whether there is anything
    /// to examine decides `end_of_log`.
    async fn examine_nothing(self) -> Result<AllSlice> {
        let calls = &self.store.calls;
        let from = self.options.from;
        let direction = self.options.direction;
        let next = calls.read_all_unfiltered(from, direction, 1).await?;
        let scanned_to = match self.unscanned_bound() {
            Some(bound) => bound,
            // Backwards from the end: the first event found is the head.
            None => Position(next.first().map_or(0, |head| head.value()) + 1),
        };
        Ok(AllSlice {
            events: Vec::new(),
            scanned_to,
            end_of_log: next.is_empty(),
        })
    }
}
