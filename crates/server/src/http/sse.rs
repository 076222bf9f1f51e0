//! Catch-up subscriptions as server-sent events, to a stream or to `$all`.
//!
//! Each event is an SSE event named `event` whose id is its revision (stream subscriptions)
//! or its position (`$all`); a filtered `$all` subscription also sends `checkpoint` events
//! with a position id. A client that reconnects with `Last-Event-ID` resumes right after that
//! id: no gap, no duplicate. `caught_up` and `fell_behind` carry no id. The stream ends with an
//! `error` event when the subscription fails or the server shuts down.
//!
//! Like the gRPC subscriptions, nothing is spawned: the response body pulls one page at a
//! time from the store as the connection takes events, and a client that goes away drops it.

use std::convert::Infallible;

use axum::Extension;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use factum_core::{
    EventJson, Position, SubscribeToAllOptions, SubscribeToStreamOptions, Subscription,
    SubscriptionMessage, SubscriptionStart,
};
use futures_util::stream;

use super::AppState;
use super::error::HttpError;
use super::handlers::{Caller, FILTER_PARAMETERS, filter, store_for, stream_name};
use super::params::{Bound, Query};
use crate::limits::{ConnectionInfo, SubscriptionPermit};
use crate::metrics::{ReadTarget, SubscriptionGuard};

/// The most events a subscription holds at once (as for gRPC subscriptions).
const SUBSCRIPTION_PAGE_EVENTS: u64 = 32;

/// The most events of the log a `$all` subscription examines between two messages: past it, a
/// filtered subscription sends a checkpoint.
const CHECKPOINT_INTERVAL_EVENTS: u64 = 1024;

/// The header a reconnecting SSE client sends.
const LAST_EVENT_ID: &str = "last-event-id";

/// `GET /streams/{stream}/subscribe`.
pub async fn subscribe_to_stream(
    State(state): State<AppState>,
    caller: Caller,
    connection: Option<Extension<ConnectionInfo>>,
    path: Result<Path<String>, PathRejection>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Response, HttpError> {
    let stream = stream_name(path)?;
    let query = Query::parse(query.as_deref(), &["from"])?;
    let from = match (last_event_id(&headers)?, query.from()?) {
        (Some(revision), _) | (None, Some(Bound::At(revision))) => {
            SubscriptionStart::After(revision)
        }
        (None, None | Some(Bound::Start)) => SubscriptionStart::Start,
        (None, Some(Bound::End)) => SubscriptionStart::End,
    };
    let slot = take_slot(&state, connection)?;
    let subscription = Subscription::to_stream(
        store_for(&state, &caller),
        stream,
        SubscribeToStreamOptions { from },
    )
    .await?;
    events(&state, subscription, ReadTarget::Stream, slot).await
}

/// `GET /all/subscribe`.
pub async fn subscribe_to_all(
    State(state): State<AppState>,
    caller: Caller,
    connection: Option<Extension<ConnectionInfo>>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Response, HttpError> {
    let mut known = vec!["from"];
    known.extend(FILTER_PARAMETERS);
    let query = Query::parse(query.as_deref(), &known)?;
    let from = match (last_event_id(&headers)?, query.from()?) {
        (Some(position), _) | (None, Some(Bound::At(position))) => {
            SubscriptionStart::After(Position(position))
        }
        (None, None | Some(Bound::Start)) => SubscriptionStart::Start,
        (None, Some(Bound::End)) => SubscriptionStart::End,
    };
    let options = SubscribeToAllOptions {
        from,
        filter: filter(&query)?,
        include_system: query.flag("include_system")?,
        checkpoint_interval: CHECKPOINT_INTERVAL_EVENTS,
    };
    let slot = take_slot(&state, connection)?;
    let subscription = Subscription::to_all(store_for(&state, &caller), options).await?;
    events(&state, subscription, ReadTarget::All, slot).await
}

fn last_event_id(headers: &HeaderMap) -> Result<Option<u64>, HttpError> {
    let Some(value) = headers.get(LAST_EVENT_ID) else {
        return Ok(None);
    };
    value
        .to_str()
        .ok()
        .and_then(|text| text.trim().parse::<u64>().ok())
        .filter(|id| *id <= i64::MAX as u64)
        .map(Some)
        .ok_or_else(|| {
            HttpError::bad_request(
                "invalid_last_event_id",
                "Last-Event-ID must be a revision or position this server sent",
            )
        })
}

/// A subscription's place among those the connection and the server may hold, unless the
/// server is shutting down.
fn take_slot(
    state: &AppState,
    connection: Option<Extension<ConnectionInfo>>,
) -> Result<SubscriptionPermit, HttpError> {
    if state.shutdown.is_triggered() {
        return Err(HttpError::shutting_down());
    }
    state
        .subscriptions
        .try_acquire(connection.as_ref().map(|Extension(info)| info))
        .map_err(|refusal| {
            HttpError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_subscriptions",
                refusal.message(),
            )
        })
}

/// The SSE response of a subscription: its messages until the client leaves, the
/// subscription fails or the server shuts down. It holds `slot` and is counted in the
/// metrics while it lasts.
///
/// The first message is taken before answering, so a subscription that fails at once (a
/// tombstoned stream) is an error status rather than an event stream with one error.
async fn events(
    state: &AppState,
    subscription: Subscription,
    target: ReadTarget,
    slot: SubscriptionPermit,
) -> Result<Response, HttpError> {
    let to_all = target == ReadTarget::All;
    let shutdown = state.shutdown.clone();
    let keepalive = state.sse_keepalive;
    let mut subscription = subscription.with_page_events(SUBSCRIPTION_PAGE_EVENTS);
    let tracking = Tracking {
        guard: state.metrics.subscription(target),
        _slot: slot,
    };
    let first = tokio::select! {
        biased;
        () = shutdown.clone().wait() => return Err(HttpError::shutting_down()),
        message = subscription.next() => message,
    };
    let first = match first {
        // Counted with the response, as any HTTP error.
        Some(Err(error)) => return Err(error.into()),
        other => other,
    };
    let messages = stream::unfold(Some((subscription, first, tracking)), move |state| {
        let shutdown = shutdown.clone();
        async move {
            let (mut subscription, first, tracking) = state?;
            let message = match first {
                Some(message) => Some(message),
                None => {
                    tracking.guard.waiting(true);
                    let message = tokio::select! {
                        biased;
                        () = shutdown.wait() => {
                            return Some((Ok(error_event(&HttpError::shutting_down())), None));
                        }
                        message = subscription.next() => message,
                    };
                    tracking.guard.waiting(false);
                    message
                }
            };
            let event = match message? {
                Ok(SubscriptionMessage::Event(event)) => {
                    let id = if to_all {
                        event.position.value()
                    } else {
                        event.revision
                    };
                    match serde_json::to_string(&EventJson::new(&event)) {
                        Ok(data) => {
                            tracking.guard.event(event.position);
                            Event::default()
                                .id(id.to_string())
                                .event("event")
                                .data(data)
                        }
                        Err(error) => {
                            tracing::error!(%error, "cannot render an event as JSON");
                            let error = HttpError::from(factum_core::Error::from(error));
                            tracking.guard.error_kind(error.code());
                            return Some((Ok(error_event(&error)), None));
                        }
                    }
                }
                Ok(SubscriptionMessage::Checkpoint(position)) => {
                    tracking.guard.checkpoint(position);
                    Event::default()
                        .id(position.value().to_string())
                        .event("checkpoint")
                        .data(format!(r#"{{"position":{}}}"#, position.value()))
                }
                Ok(SubscriptionMessage::CaughtUp) => {
                    tracking.guard.caught_up();
                    Event::default().event("caught_up").data("{}")
                }
                Ok(SubscriptionMessage::FellBehind) => {
                    tracking.guard.fell_behind();
                    Event::default().event("fell_behind").data("{}")
                }
                Err(error) => {
                    let error = HttpError::from(error);
                    tracking.guard.error_kind(error.code());
                    return Some((Ok(error_event(&error)), None));
                }
            };
            Some((
                Ok::<_, Infallible>(event),
                Some((subscription, None, tracking)),
            ))
        }
    });
    Ok(Sse::new(messages)
        .keep_alive(KeepAlive::new().interval(keepalive))
        .into_response())
}

/// What a running subscription holds besides itself: its entry in the metrics and its slot
/// (given back when the client leaves and the response body is dropped).
struct Tracking {
    guard: SubscriptionGuard,
    _slot: SubscriptionPermit,
}

fn error_event(error: &HttpError) -> Event {
    Event::default()
        .event("error")
        .data(error.to_json().to_string())
}
