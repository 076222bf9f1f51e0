//! What one client may take of the server: how long a connection may stay silent or take to
//! send its first request ([`connection`]), how many subscriptions it may hold
//! ([`subscriptions`]), and how many requests a second it may make ([`rate`]). Sizes of
//! messages and appends are limited where they are decoded (`serve`, `http`).
//!
//! Every refusal uses the protocol's shape: gRPC `RESOURCE_EXHAUSTED`, HTTP 429 with a JSON
//! error and `Retry-After`.

pub(crate) mod connection;
pub(crate) mod rate;
pub(crate) mod subscriptions;

use std::sync::Arc;
use std::time::Duration;

use std::convert::Infallible;
use std::future::{Ready, ready};
use std::task::{Context, Poll};

use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use futures_util::future::Either;
use http::{HeaderValue, StatusCode, header};
use tower::{Layer, Service};

pub(crate) use connection::{ConnectionInfo, LimitedConnection};
pub(crate) use subscriptions::{SubscriptionPermit, SubscriptionSlots};

/// The limits a server enforces; [`Limits::default`] suits a production server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// A connection that moves no byte either way for this long is closed. Live connections
    /// never go quiet that long: the server pings HTTP/2 connections (gRPC) at half this
    /// interval and sends server-sent-event subscriptions a comment at a third of it.
    pub idle_timeout: Duration,
    /// A connection that has not sent a whole first request this long after it was accepted
    /// (after its TLS handshake) is closed: a client trickling its request in a byte at a time
    /// holds a connection no longer than this.
    pub first_request_timeout: Duration,
    /// The most subscriptions (gRPC and server-sent events) one connection may hold at once.
    pub max_subscriptions_per_connection: usize,
    /// The most subscriptions the server holds at once.
    pub max_subscriptions: usize,
    /// The most requests a second one client (an IP address) may make, with bursts of up to
    /// a second's worth; `None` sets no limit. Health checks are not counted; a subscription
    /// counts once, however long it lasts.
    pub max_requests_per_second_per_client: Option<u32>,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            idle_timeout: Duration::from_secs(60),
            first_request_timeout: Duration::from_secs(10),
            max_subscriptions_per_connection: 128,
            max_subscriptions: 10_000,
            max_requests_per_second_per_client: None,
        }
    }
}

impl Limits {
    /// How often the server pings an HTTP/2 connection, so a live client's answers keep it
    /// from looking idle.
    pub(crate) fn keepalive_interval(&self) -> Duration {
        self.idle_timeout / 2
    }

    /// How often a server-sent-event subscription with nothing to send sends a comment.
    pub(crate) fn sse_keepalive_interval(&self) -> Duration {
        (self.idle_timeout / 3).min(Duration::from_secs(15))
    }
}

/// Paths that no rate limit applies to: load balancers poll them.
const UNLIMITED_PATHS: &[&str] = &["/health/live", "/health/ready"];

/// Runs before everything else on every request (a tower layer on the router; see `serve`):
/// marks the connection as having sent a request (ending its first-request deadline) and
/// applies the client's rate limit. Written by hand rather than with `axum::middleware`, whose
/// boxing cost a few microseconds on every gRPC call.
#[derive(Clone)]
pub(crate) struct AdmissionLayer {
    pub(crate) rate: Option<Arc<rate::RateLimiter>>,
}

impl<S> Layer<S> for AdmissionLayer {
    type Service = Admission<S>;

    fn layer(&self, inner: S) -> Admission<S> {
        Admission {
            inner,
            rate: self.rate.clone(),
        }
    }
}

/// The service [`AdmissionLayer`] makes.
#[derive(Clone)]
pub(crate) struct Admission<S> {
    inner: S,
    rate: Option<Arc<rate::RateLimiter>>,
}

impl<S> Service<Request> for Admission<S>
where
    S: Service<Request, Response = Response, Error = Infallible>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Either<S::Future, Ready<Result<Response, Infallible>>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let info = request.extensions().get::<ConnectionInfo>();
        if let Some(info) = info {
            info.request_started();
        }
        if let (Some(limiter), Some(ip)) = (&self.rate, info.and_then(ConnectionInfo::remote_ip))
            && !UNLIMITED_PATHS.contains(&request.uri().path())
            && !limiter.try_acquire(ip)
        {
            tracing::debug!(%ip, path = request.uri().path(), "refused: request rate limit");
            return Either::Right(ready(Ok(too_many_requests(
                crate::http::is_grpc(request.headers()),
                limiter.per_second(),
            ))));
        }
        Either::Left(self.inner.call(request))
    }
}

fn too_many_requests(grpc: bool, per_second: u32) -> Response {
    let message = format!("Too many requests: at most {per_second} a second from one client");
    if grpc {
        return tonic::Status::resource_exhausted(message).into_http::<axum::body::Body>();
    }
    let mut response =
        crate::http::error_response(StatusCode::TOO_MANY_REQUESTS, "too_many_requests", &message);
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    response.into_response()
}
