//! Prometheus metrics: what the server counts, and `GET /metrics` that serves them in the
//! text exposition format (version 0.0.4). `docs/server.md` lists every metric.
//!
//! Every label of every metric takes its values from a closed list known here (append
//! outcomes, read targets, error kinds, gRPC methods and codes), so each figure is a fixed
//! array of relaxed atomics: counting on a request's path takes no lock and allocates nothing,
//! and the exposition is written by hand in a few lines (no metrics crate, whose registry,
//! label maps and OpenMetrics output this does not need). Active subscriptions are the one
//! set that changes: a mutex-guarded map, touched when a subscription starts and ends, read at
//! scrape time to compute their lag.
//!
//! The engine's figures (fsync latency, group-commit sizes) belong to the store, not the
//! server, which runs over any [`EventStore`](factum_core::EventStore): whoever starts the
//! server and knows its store passes them in as an [`EngineStatsSource`].

use std::collections::HashMap;
use std::convert::Infallible;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::response::Response;
use factum_core::Position;
use futures_util::future::{BoxFuture, Either};
use tokio::sync::watch;
use tonic::{Code, Status};
use tower::{Layer, Service};

/// The `Content-Type` of `GET /metrics`: Prometheus' text format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// What an append came to (`factum_appends_total{outcome}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppendOutcome {
    /// Events were written, or found written (an idempotent retry).
    Written = 0,
    /// The append carried no events; its expectation held.
    Empty = 1,
    /// The expected revision did not hold: nothing was written.
    WrongExpectedRevision = 2,
    /// Any other failure: nothing was written.
    Error = 3,
}

const APPEND_OUTCOMES: [&str; 4] = ["written", "empty", "wrong_expected_revision", "error"];

/// What a read or subscription reads (`target` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadTarget {
    /// One stream.
    Stream = 0,
    /// The global log, `$all`.
    All = 1,
}

const READ_TARGETS: [&str; 2] = ["stream", "all"];

/// The kinds of error counted by `factum_errors_total{kind}`: the store's
/// [`Error::kind`](factum_core::Error::kind) names where the protocol keeps them apart, and the
/// server's own refusals.
const ERROR_KINDS: [&str; 14] = [
    "wrong_expected_revision",
    "stream_not_found",
    "stream_deleted",
    "append_too_large",
    "missing_metadata",
    "invalid_argument",
    "deadline_exceeded",
    "unavailable",
    "shutting_down",
    "access_denied",
    "unauthenticated",
    "limit_exceeded",
    "internal",
    "other",
];

/// The gRPC methods counted by `factum_grpc_calls_total{method}`.
const METHODS: [&str; 5] = ["Read", "Append", "BatchAppend", "Delete", "Tombstone"];

/// A gRPC method of the Streams service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// `Streams.Read`: reads and subscriptions.
    Read = 0,
    /// `Streams.Append`.
    Append = 1,
    /// `Streams.BatchAppend`.
    BatchAppend = 2,
    /// `Streams.Delete`.
    Delete = 3,
    /// `Streams.Tombstone`.
    Tombstone = 4,
}

/// The gRPC status codes, 0 to 16, as their names in the `code` label.
const CODES: [&str; 17] = [
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
];

/// The classes of HTTP status counted by `factum_http_requests_total{status}`.
const STATUS_CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// The `route` of HTTP requests that no route took.
const UNMATCHED_ROUTE: &str = "unmatched";

/// An HTTP route of the server: method and path template, as the router declares it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct HttpRoute {
    method: &'static str,
    path: &'static str,
}

/// A histogram's counts, as the engine reports them.
#[derive(Debug, Clone, PartialEq)]
pub struct HistogramData {
    /// Inclusive upper bounds of the buckets, ascending.
    pub bounds: Vec<f64>,
    /// Values per bucket (not cumulative); one more than `bounds`, the last for values above
    /// every bound.
    pub counts: Vec<u64>,
    /// The sum of the values.
    pub sum: f64,
}

/// The storage engine's figures at one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct EngineSnapshot {
    /// The latency of each group commit's fsync, in seconds.
    pub fsync_seconds: HistogramData,
    /// The events each group commit's fsync made durable.
    pub group_commit_events: HistogramData,
    /// The writes (appends and deletes) each group commit's fsync made durable.
    pub group_commit_writes: HistogramData,
}

/// Where the server reads the engine's figures at each scrape.
#[derive(Clone)]
pub struct EngineStatsSource(Arc<dyn Fn() -> EngineSnapshot + Send + Sync>);

impl EngineStatsSource {
    /// A source that calls `snapshot` at each scrape.
    pub fn new(snapshot: impl Fn() -> EngineSnapshot + Send + Sync + 'static) -> Self {
        EngineStatsSource(Arc::new(snapshot))
    }
}

impl std::fmt::Debug for EngineStatsSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EngineStatsSource")
    }
}

/// How far one subscription has delivered, updated by its reply stream.
#[derive(Debug, Default)]
struct SubscriptionProgress {
    /// The position of the last event or checkpoint delivered, or the head when it caught up.
    reached: AtomicU64,
    /// Caught up (and not fallen behind since).
    live: AtomicBool,
    /// Its reply stream is waiting for the subscription's next message: the client has taken
    /// everything the server had.
    waiting: AtomicBool,
}

/// The server's metrics. One per server, shared by every call.
pub struct Metrics {
    appends: [AtomicU64; APPEND_OUTCOMES.len()],
    appended_events: AtomicU64,
    appended_bytes: AtomicU64,
    reads: [AtomicU64; READ_TARGETS.len()],
    read_events: [AtomicU64; READ_TARGETS.len()],
    subscriptions_started: [AtomicU64; READ_TARGETS.len()],
    subscription_events: AtomicU64,
    errors: [AtomicU64; ERROR_KINDS.len()],
    calls: [[AtomicU64; CODES.len()]; METHODS.len()],
    /// HTTP requests by route (method and path template; the last row for requests no route
    /// took) and status class.
    http_requests: Vec<(HttpRoute, [AtomicU64; STATUS_CLASSES.len()])>,
    /// The active subscriptions, by an id of their own.
    subscriptions: Mutex<HashMap<u64, Arc<SubscriptionProgress>>>,
    next_subscription_id: AtomicU64,
    head: watch::Receiver<Position>,
    engine: Option<EngineStatsSource>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Metrics {
    /// Metrics for a server over a store whose head `head` watches; `engine` gives the storage
    /// engine's figures when the store has them.
    pub fn new(head: watch::Receiver<Position>, engine: Option<EngineStatsSource>) -> Metrics {
        Metrics {
            appends: Default::default(),
            appended_events: AtomicU64::new(0),
            appended_bytes: AtomicU64::new(0),
            reads: Default::default(),
            read_events: Default::default(),
            subscriptions_started: Default::default(),
            subscription_events: AtomicU64::new(0),
            errors: Default::default(),
            calls: Default::default(),
            http_requests: crate::http::route_list()
                .into_iter()
                .chain([("GET", "/metrics"), ("any", UNMATCHED_ROUTE)])
                .map(|(method, path)| (HttpRoute { method, path }, Default::default()))
                .collect(),
            subscriptions: Mutex::new(HashMap::new()),
            next_subscription_id: AtomicU64::new(0),
            head,
            engine,
        }
    }

    /// Counts an append and, when it wrote (or found written) events, their number and size.
    pub fn append(&self, outcome: AppendOutcome, events: u64, bytes: u64) {
        self.appends[outcome as usize].fetch_add(1, Ordering::Relaxed);
        if outcome == AppendOutcome::Written {
            self.appended_events.fetch_add(events, Ordering::Relaxed);
            self.appended_bytes.fetch_add(bytes, Ordering::Relaxed);
        }
    }

    /// Counts an append of `events` events of `bytes` bytes from the store's answer (the HTTP
    /// API's appends, which go to the store as they are).
    pub fn store_append(
        &self,
        answer: &factum_core::Result<factum_core::AppendResult>,
        events: u64,
        bytes: u64,
    ) {
        let outcome = match answer {
            Ok(_) if events == 0 => AppendOutcome::Empty,
            Ok(_) => AppendOutcome::Written,
            Err(factum_core::Error::WrongExpectedRevision { .. }) => {
                AppendOutcome::WrongExpectedRevision
            }
            Err(_) => AppendOutcome::Error,
        };
        self.append(outcome, events, bytes);
    }

    /// Counts a read (not a subscription) that started.
    pub fn read(&self, target: ReadTarget) {
        self.reads[target as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Counts events a read sent.
    pub fn read_events(&self, target: ReadTarget, events: u64) {
        self.read_events[target as usize].fetch_add(events, Ordering::Relaxed);
    }

    /// Counts a failure, from the status it is answered with (in-band answers too: a
    /// BatchAppend error, Append's wrong expected revision).
    pub fn error(&self, status: &Status) {
        self.errors[status_kind(status)].fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a failure of the HTTP API by its error code: one of the kinds of
    /// `factum_errors_total` counts as itself, any other as `other`.
    pub fn error_kind(&self, kind: &str) {
        let index = ERROR_KINDS
            .iter()
            .position(|known| *known == kind)
            .unwrap_or(ERROR_KINDS.len() - 1);
        self.errors[index].fetch_add(1, Ordering::Relaxed);
    }

    /// Counts an HTTP request by its route (`None`: no route took it) and the status it was
    /// answered with, and an error by the code the answer carries.
    fn http_request(
        &self,
        method: &http::Method,
        route: Option<&str>,
        status: http::StatusCode,
        error_code: Option<&str>,
    ) {
        let row = route
            .and_then(|path| {
                self.http_requests
                    .iter()
                    .position(|(route, _)| route.path == path && route.method == method.as_str())
            })
            .unwrap_or(self.http_requests.len() - 1);
        let class = usize::from(status.as_u16() / 100)
            .saturating_sub(1)
            .min(STATUS_CLASSES.len() - 1);
        self.http_requests[row].1[class].fetch_add(1, Ordering::Relaxed);
        if status.is_client_error() || status.is_server_error() {
            self.error_kind(http_error_kind(status, error_code));
        }
    }

    /// Counts one gRPC call by its answer (the status a streaming call started with), and logs
    /// it at debug level.
    pub fn call(&self, method: Method, code: Code, started: Instant) {
        let code_index = (code as usize).min(CODES.len() - 1);
        self.calls[method as usize][code_index].fetch_add(1, Ordering::Relaxed);
        tracing::debug!(
            method = METHODS[method as usize],
            code = CODES[code_index],
            elapsed_micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
            "grpc call"
        );
    }

    /// Registers a subscription that started; the guard unregisters it when dropped (with the
    /// reply stream that holds it).
    pub fn subscription(self: &Arc<Self>, target: ReadTarget) -> SubscriptionGuard {
        self.subscriptions_started[target as usize].fetch_add(1, Ordering::Relaxed);
        let id = self.next_subscription_id.fetch_add(1, Ordering::Relaxed);
        let progress = Arc::new(SubscriptionProgress::default());
        self.subscriptions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(id, progress.clone());
        SubscriptionGuard {
            metrics: self.clone(),
            id,
            progress,
        }
    }

    /// How many subscriptions are active.
    pub fn active_subscriptions(&self) -> usize {
        self.subscriptions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// The metrics in Prometheus' text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(8 * 1024);
        let head = self.head.borrow().value();
        gauge(
            &mut out,
            "factum_head_position",
            "The position of the newest event in the store (with gapless positions, the events stored).",
            head as f64,
        );
        family(
            &mut out,
            "factum_appends_total",
            "Appends (Append and each BatchAppend request), by outcome.",
            "counter",
            "outcome",
            &APPEND_OUTCOMES,
            &self.appends,
        );
        counter(
            &mut out,
            "factum_appended_events_total",
            "Events in appends that succeeded (idempotent retries included).",
            self.appended_events.load(Ordering::Relaxed),
        );
        counter(
            &mut out,
            "factum_appended_bytes_total",
            "Bytes (data, metadata, type and content type) of the events in appends that succeeded.",
            self.appended_bytes.load(Ordering::Relaxed),
        );
        family(
            &mut out,
            "factum_reads_total",
            "Reads (not subscriptions), by target.",
            "counter",
            "target",
            &READ_TARGETS,
            &self.reads,
        );
        family(
            &mut out,
            "factum_read_events_total",
            "Events sent by reads, by target.",
            "counter",
            "target",
            &READ_TARGETS,
            &self.read_events,
        );
        family(
            &mut out,
            "factum_subscriptions_started_total",
            "Subscriptions started, by target.",
            "counter",
            "target",
            &READ_TARGETS,
            &self.subscriptions_started,
        );
        counter(
            &mut out,
            "factum_subscription_events_total",
            "Events sent by subscriptions.",
            self.subscription_events.load(Ordering::Relaxed),
        );
        let (active, lag_max) = self.subscription_lags(head);
        gauge(
            &mut out,
            "factum_subscriptions_active",
            "Subscriptions being served.",
            active as f64,
        );
        gauge(
            &mut out,
            "factum_subscription_lag_max",
            "The largest lag of an active subscription: positions between the store's head and the last one it delivered (0 while it waits, caught up, for new events).",
            lag_max as f64,
        );
        family(
            &mut out,
            "factum_errors_total",
            "Failed requests and in-band errors, by kind.",
            "counter",
            "kind",
            &ERROR_KINDS,
            &self.errors,
        );
        let _ = writeln!(
            out,
            "# HELP factum_grpc_calls_total gRPC calls of the Streams service, by method and the status they were answered (or a stream started) with.\n# TYPE factum_grpc_calls_total counter"
        );
        for (method, codes) in METHODS.iter().zip(&self.calls) {
            for (code, count) in CODES.iter().zip(codes) {
                let count = count.load(Ordering::Relaxed);
                if count > 0 || *code == "OK" {
                    let _ = writeln!(
                        out,
                        "factum_grpc_calls_total{{method=\"{method}\",code=\"{code}\"}} {count}"
                    );
                }
            }
        }
        let _ = writeln!(
            out,
            "# HELP factum_http_requests_total Requests of the HTTP API (gRPC calls are counted apart), by method, route and status class.\n# TYPE factum_http_requests_total counter"
        );
        for (route, classes) in &self.http_requests {
            for (class, count) in STATUS_CLASSES.iter().zip(classes) {
                let count = count.load(Ordering::Relaxed);
                if count > 0 {
                    let _ = writeln!(
                        out,
                        "factum_http_requests_total{{method=\"{}\",route=\"{}\",status=\"{class}\"}} {count}",
                        route.method, route.path
                    );
                }
            }
        }
        if let Some(engine) = &self.engine {
            let snapshot = (engine.0)();
            histogram(
                &mut out,
                "factum_fsync_duration_seconds",
                "How long each group commit's fsync took.",
                &snapshot.fsync_seconds,
            );
            histogram(
                &mut out,
                "factum_group_commit_events",
                "Events made durable by each group commit's fsync.",
                &snapshot.group_commit_events,
            );
            histogram(
                &mut out,
                "factum_group_commit_writes",
                "Writes (appends and deletes) made durable by each group commit's fsync.",
                &snapshot.group_commit_writes,
            );
        }
        out
    }

    /// The number of active subscriptions and the largest lag among them.
    fn subscription_lags(&self, head: u64) -> (usize, u64) {
        let subscriptions = self
            .subscriptions
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let lag_max = subscriptions
            .values()
            .map(|progress| {
                if progress.live.load(Ordering::Relaxed) && progress.waiting.load(Ordering::Relaxed)
                {
                    0
                } else {
                    head.saturating_sub(progress.reached.load(Ordering::Relaxed))
                }
            })
            .max()
            .unwrap_or(0);
        (subscriptions.len(), lag_max)
    }
}

/// Keeps a subscription counted as active, and records how far it has delivered; dropping it
/// (with the reply stream) ends the subscription's count.
#[derive(Debug)]
pub struct SubscriptionGuard {
    metrics: Arc<Metrics>,
    id: u64,
    progress: Arc<SubscriptionProgress>,
}

impl SubscriptionGuard {
    /// The subscription is about to wait for its next message (true), or has it (false).
    pub fn waiting(&self, waiting: bool) {
        self.progress.waiting.store(waiting, Ordering::Relaxed);
    }

    /// It delivered an event at `position`.
    pub fn event(&self, position: Position) {
        self.metrics
            .subscription_events
            .fetch_add(1, Ordering::Relaxed);
        self.progress
            .reached
            .store(position.value(), Ordering::Relaxed);
    }

    /// It delivered a checkpoint at `position`.
    pub fn checkpoint(&self, position: Position) {
        self.progress
            .reached
            .store(position.value(), Ordering::Relaxed);
    }

    /// It caught up: it has delivered everything up to (about) the current head.
    pub fn caught_up(&self) {
        let head = self.metrics.head.borrow().value();
        self.progress.reached.fetch_max(head, Ordering::Relaxed);
        self.progress.live.store(true, Ordering::Relaxed);
    }

    /// It ended with an error, answered with `status`.
    pub fn error(&self, status: &Status) {
        self.metrics.error(status);
    }

    /// It ended with an error of the HTTP API, whose code is `kind`.
    pub fn error_kind(&self, kind: &str) {
        self.metrics.error_kind(kind);
    }

    /// It fell behind and is catching up again.
    pub fn fell_behind(&self) {
        self.progress.live.store(false, Ordering::Relaxed);
    }
}

impl Drop for SubscriptionGuard {
    fn drop(&mut self) {
        self.metrics
            .subscriptions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.id);
    }
}

/// The index in [`ERROR_KINDS`] of the error a status answers: from its `exception` trailer
/// (set on every error the clients tell apart), else from its code.
fn status_kind(status: &Status) -> usize {
    let metadata = status.metadata();
    let trailer = |key: &str| metadata.get(key).and_then(|value| value.to_str().ok());
    let kind = match trailer("exception") {
        // A delete's "wrong expected version" may stand for a stream that was never written.
        Some("wrong-expected-version") => match trailer(crate::errors::FACTUM_ERROR_TRAILER) {
            Some("stream_not_found") => "stream_not_found",
            _ => "wrong_expected_revision",
        },
        Some("stream-deleted") => "stream_deleted",
        Some("stream-not-found") => "stream_not_found",
        Some("maximum-append-size-exceeded") => "append_too_large",
        Some("missing-required-metadata-property") => "missing_metadata",
        Some("invalid-argument") => "invalid_argument",
        _ => match status.code() {
            Code::InvalidArgument => "invalid_argument",
            Code::DeadlineExceeded | Code::Aborted => "deadline_exceeded",
            Code::Unavailable if status.message() == "Server Is Shutting Down" => "shutting_down",
            Code::Unavailable => "unavailable",
            Code::PermissionDenied => "access_denied",
            Code::Unauthenticated => "unauthenticated",
            Code::ResourceExhausted => "limit_exceeded",
            Code::Internal => "internal",
            _ => "other",
        },
    };
    ERROR_KINDS
        .iter()
        .position(|known| *known == kind)
        .expect("every kind above is listed")
}

/// The kind counted for an HTTP error: its code when that is a kind of [`ERROR_KINDS`] (the
/// store's refusals keep their kind as their code), else the kind its status stands for.
fn http_error_kind(status: http::StatusCode, code: Option<&str>) -> &str {
    if let Some(code) = code
        && ERROR_KINDS.contains(&code)
    {
        return code;
    }
    match status.as_u16() {
        401 => "unauthenticated",
        403 => "access_denied",
        413 => "append_too_large",
        429 => "limit_exceeded",
        503 => "unavailable",
        400..=499 => "invalid_argument",
        500..=599 => "internal",
        _ => "other",
    }
}

/// Counts every request of the HTTP API: a tower layer around the whole router (by hand, as
/// `limits::AdmissionLayer`, so gRPC calls, counted by their service, pass at no cost).
#[derive(Clone)]
pub(crate) struct HttpMetricsLayer {
    metrics: Arc<Metrics>,
}

impl HttpMetricsLayer {
    /// Counts into `metrics`.
    pub(crate) fn new(metrics: Arc<Metrics>) -> HttpMetricsLayer {
        HttpMetricsLayer { metrics }
    }
}

impl<S> Layer<S> for HttpMetricsLayer {
    type Service = CountHttp<S>;

    fn layer(&self, inner: S) -> CountHttp<S> {
        CountHttp {
            inner,
            metrics: self.metrics.clone(),
        }
    }
}

/// The service [`HttpMetricsLayer`] makes.
#[derive(Clone)]
pub(crate) struct CountHttp<S> {
    inner: S,
    metrics: Arc<Metrics>,
}

impl<S> Service<Request> for CountHttp<S>
where
    S: Service<Request, Response = Response, Error = Infallible>,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Either<S::Future, BoxFuture<'static, Result<Response, Infallible>>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        if crate::http::is_grpc(request.headers()) {
            return Either::Left(self.inner.call(request));
        }
        let method = request.method().clone();
        let route = request
            .extensions()
            .get::<MatchedPath>()
            .map(|path| path.as_str().to_owned());
        let answer = self.inner.call(request);
        let metrics = self.metrics.clone();
        Either::Right(Box::pin(async move {
            let response = answer.await?;
            let error_code = response
                .extensions()
                .get::<crate::http::ErrorCode>()
                .map(|code| code.0);
            metrics.http_request(&method, route.as_deref(), response.status(), error_code);
            Ok(response)
        }))
    }
}

/// The in-band error of a BatchAppend reply as the status it stands for, to count it by kind
/// with [`Metrics::error`].
pub fn status_of_rpc_error(status: &factum_proto::status::Status) -> Status {
    // The detail's type URL names the error, as clients read it.
    let name = status
        .details
        .first()
        .and_then(|detail| detail.type_url.rsplit('.').next())
        .unwrap_or("");
    let (code, exception) = match name {
        "WrongExpectedVersion" => (Code::AlreadyExists, "wrong-expected-version"),
        "StreamDeleted" => (Code::FailedPrecondition, "stream-deleted"),
        "MaximumAppendSizeExceeded" => (Code::InvalidArgument, "maximum-append-size-exceeded"),
        "Timeout" => (Code::DeadlineExceeded, ""),
        "BadRequest" => (Code::InvalidArgument, "invalid-argument"),
        _ => (Code::from_i32(status.code), ""),
    };
    let mut converted = Status::new(code, status.message.clone());
    if !exception.is_empty() {
        converted.metadata_mut().insert(
            "exception",
            tonic::metadata::MetadataValue::from_static(exception),
        );
    }
    converted
}

/// `GET /metrics`, to merge into the server's HTTP routes.
pub fn metrics_router(metrics: Arc<Metrics>) -> axum::Router {
    axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let metrics = metrics.clone();
            async move {
                (
                    [(http::header::CONTENT_TYPE, CONTENT_TYPE)],
                    metrics.render(),
                )
            }
        }),
    )
}

fn counter(out: &mut String, name: &str, help: &str, value: u64) {
    let _ = writeln!(
        out,
        "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}"
    );
}

fn gauge(out: &mut String, name: &str, help: &str, value: f64) {
    let _ = writeln!(
        out,
        "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}"
    );
}

/// A metric with one label, one sample per value of the label.
fn family(
    out: &mut String,
    name: &str,
    help: &str,
    kind: &str,
    label: &str,
    values: &[&str],
    counts: &[AtomicU64],
) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    for (value, count) in values.iter().zip(counts) {
        let count = count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}{{{label}=\"{value}\"}} {count}");
    }
}

fn histogram(out: &mut String, name: &str, help: &str, data: &HistogramData) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
    let mut cumulative = 0u64;
    for (bound, count) in data.bounds.iter().zip(&data.counts) {
        cumulative += count;
        let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {cumulative}");
    }
    let total: u64 = data.counts.iter().sum();
    let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {total}");
    let _ = writeln!(out, "{name}_sum {}\n{name}_count {total}", data.sum);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metrics() -> (watch::Sender<Position>, Arc<Metrics>) {
        let (head, watch) = watch::channel(Position(0));
        (head, Arc::new(Metrics::new(watch, None)))
    }

    #[test]
    fn statuses_are_counted_by_the_kind_clients_tell_apart() {
        let kind = |status: &Status| ERROR_KINDS[status_kind(status)];
        let deleted = crate::errors::stream_deleted(&factum_core::StreamName::new("a").unwrap());
        assert_eq!(kind(&deleted), "stream_deleted");
        assert_eq!(
            kind(&Status::unavailable("Server Is Shutting Down")),
            "shutting_down"
        );
        assert_eq!(kind(&Status::internal("disk")), "internal");
        assert_eq!(kind(&Status::not_found("x")), "other");
        let too_large = crate::errors::ApiError::AppendTooLarge { max_bytes: 1 };
        assert_eq!(kind(&too_large.to_status()), "append_too_large");
        assert_eq!(
            kind(&status_of_rpc_error(&too_large.to_rpc_status())),
            "append_too_large"
        );
    }

    #[test]
    fn a_subscription_is_active_until_its_guard_drops_and_lags_until_it_waits_caught_up() {
        let (head, metrics) = metrics();
        let guard = metrics.subscription(ReadTarget::All);
        head.send_replace(Position(10));
        assert_eq!(metrics.subscription_lags(10), (1, 10));
        guard.event(Position(4));
        assert_eq!(metrics.subscription_lags(10), (1, 6));
        guard.caught_up();
        guard.waiting(true);
        assert_eq!(metrics.subscription_lags(12), (1, 0));
        guard.waiting(false);
        assert_eq!(metrics.subscription_lags(12), (1, 2));
        drop(guard);
        assert_eq!(metrics.subscription_lags(12), (0, 0));
    }

    #[test]
    fn the_exposition_has_a_type_for_every_sample() {
        let (_head, metrics) = metrics();
        metrics.append(AppendOutcome::Written, 3, 300);
        metrics.call(Method::Append, Code::Ok, Instant::now());
        let text = metrics.render();
        assert!(text.contains("factum_appends_total{outcome=\"written\"} 1\n"));
        assert!(text.contains("factum_appended_events_total 3\n"));
        assert!(text.contains("factum_grpc_calls_total{method=\"Append\",code=\"OK\"} 1\n"));
        for line in text.lines().filter(|line| !line.starts_with('#')) {
            let name = line.split(['{', ' ']).next().unwrap();
            let base = name
                .trim_end_matches("_bucket")
                .trim_end_matches("_sum")
                .trim_end_matches("_count");
            assert!(
                text.contains(&format!("# TYPE {name} "))
                    || text.contains(&format!("# TYPE {base} ")),
                "{line}"
            );
        }
    }
}
