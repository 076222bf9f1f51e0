//! The request/response routes: health, the OpenAPI document, appends, reads of a stream and
//! of `$all`, stream metadata, soft deletes and tombstones.

use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use factum_core::{
    AllStart, CurrentRevision, Direction, EventFilter, EventJson, Position, ReadAllOptions,
    ReadStreamOptions, StreamMetadata, StreamName, StreamStart,
};
use serde::Serialize;
use serde_json::json;
use serde_json::value::RawValue;

use super::error::HttpError;
use super::events::{events_json, parse_append};
use super::params::{Bound, Query, expected_revision, json_body};
use super::{AppState, OPENAPI_JSON, json_response};
use crate::auth::acl::{AccessPolicy, Principal};
use crate::metrics::ReadTarget;

/// Who is calling: the authenticated user and the server's access rules, as the credentials
/// middleware left them in the request (nothing on an anonymous server).
pub struct Caller(axum::http::Extensions);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Caller {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _state: &S,
    ) -> Result<Caller, Self::Rejection> {
        let mut extensions = axum::http::Extensions::new();
        if let Some(principal) = parts.extensions.get::<Principal>() {
            extensions.insert(principal.clone());
        }
        if let Some(policy) = parts.extensions.get::<AccessPolicy>() {
            extensions.insert(policy.clone());
        }
        Ok(Caller(extensions))
    }
}

/// The store as the caller may use it (see `auth::guard`); the store itself on an anonymous
/// server.
pub(super) fn store_for(
    state: &AppState,
    caller: &Caller,
) -> std::sync::Arc<dyn factum_core::EventStore> {
    crate::auth::guard::store_for(&state.store, &caller.0)
}

/// The most events one read returns.
pub const READ_LIMIT_MAX: u64 = 4096;

/// The events a read returns when it names no limit.
pub const READ_LIMIT_DEFAULT: u64 = 100;

/// The most events a `$all` read examines, whatever its filter keeps, so a sparse filter does
/// not scan the whole log in one request: the reply's `next` says where to continue.
const SCAN_EVENTS_MAX: u64 = 8192;

/// The query parameters that filter `$all`.
pub const FILTER_PARAMETERS: [&str; 5] = [
    "stream_prefix",
    "event_type_prefix",
    "stream_regex",
    "event_type_regex",
    "include_system",
];

/// The stream named by the path, checked.
pub fn stream_name(path: Result<Path<String>, PathRejection>) -> Result<StreamName, HttpError> {
    let Path(name) = path.map_err(|rejection| {
        HttpError::bad_request(
            "invalid_stream_name",
            format!(
                "the stream name in the path is invalid: {}",
                rejection.body_text()
            ),
        )
    })?;
    Ok(StreamName::new(name)?)
}

/// `GET /health/live`: the process answers.
pub async fn live() -> Response {
    json_response(StatusCode::OK, &json!({ "status": "live" }))
}

/// `GET /health/ready`: the store answers and the server is not shutting down.
pub async fn ready(State(state): State<AppState>) -> Result<Response, HttpError> {
    if state.shutdown.is_triggered() {
        return Err(HttpError::shutting_down());
    }
    match state.store.head().await {
        Ok(head) => Ok(json_response(
            StatusCode::OK,
            &json!({ "status": "ready", "head": head.value() }),
        )),
        Err(error) => {
            tracing::warn!(%error, "not ready: the store does not answer");
            Err(HttpError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "not_ready",
                format!("the store does not answer ({})", error.kind()),
            ))
        }
    }
}

/// `GET /openapi.json`.
pub async fn openapi() -> Response {
    (
        [(CONTENT_TYPE, HeaderValue::from_static("application/json"))],
        OPENAPI_JSON,
    )
        .into_response()
}

/// `POST /streams/{stream}`: appends a JSON array of events.
pub async fn append(
    State(state): State<AppState>,
    caller: Caller,
    path: Result<Path<String>, PathRejection>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, HttpError> {
    let stream = stream_name(path)?;
    Query::parse(query.as_deref(), &[])?;
    let expected = expected_revision(&headers)?;
    let body = json_body(&headers, body, state.max_body_bytes).await?;
    let events = parse_append(&body)?;
    let size_bytes = events.iter().fold(0usize, |size, event| {
        size.saturating_add(event.size_bytes())
    });
    if size_bytes > state.max_append_bytes {
        return Err(HttpError::append_too_large(state.max_append_bytes));
    }
    let count = events.len() as u64;
    let result = store_for(&state, &caller)
        .append(&stream, expected, events)
        .await;
    state
        .metrics
        .store_append(&result, count, size_bytes as u64);
    let result = result?;
    Ok(json_response(
        StatusCode::OK,
        &json!({ "revision": result.revision, "position": result.position.value() }),
    ))
}

/// `GET /streams/{stream}`: a page of a stream.
pub async fn read_stream(
    State(state): State<AppState>,
    caller: Caller,
    path: Result<Path<String>, PathRejection>,
    RawQuery(query): RawQuery,
) -> Result<Response, HttpError> {
    let stream = stream_name(path)?;
    let query = Query::parse(query.as_deref(), &["from", "direction", "limit"])?;
    let direction = query.direction()?;
    let from = match (query.from()?, direction) {
        (None, Direction::Forwards) | (Some(Bound::Start), _) => StreamStart::Start,
        (None, Direction::Backwards) | (Some(Bound::End), _) => StreamStart::End,
        (Some(Bound::At(revision)), _) => StreamStart::Revision(revision),
    };
    let limit = query.limit(READ_LIMIT_DEFAULT, READ_LIMIT_MAX)?;
    let options = ReadStreamOptions {
        from,
        direction,
        limit,
    };
    state.metrics.read(ReadTarget::Stream);
    let events = store_for(&state, &caller)
        .read_stream(&stream, options)
        .await?;
    state
        .metrics
        .read_events(ReadTarget::Stream, events.len() as u64);
    let next = match events.last() {
        Some(last) if events.len() as u64 == limit => match direction {
            Direction::Forwards => last.revision.checked_add(1),
            Direction::Backwards => last.revision.checked_sub(1),
        },
        _ => None,
    };
    // A struct, not `json!`: event data stays exactly as written.
    #[derive(Serialize)]
    struct Page<'a> {
        events: Vec<EventJson<'a>>,
        next: Option<u64>,
    }
    let page = Page {
        events: events_json(&events),
        next,
    };
    Ok(json_response(StatusCode::OK, &page))
}

/// The filter of a `$all` read or subscription: at most one kind, prefixes repeatable.
pub fn filter(query: &Query) -> Result<Option<EventFilter>, HttpError> {
    let owned = |name| {
        query
            .all(name)
            .into_iter()
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    let stream_prefixes = owned("stream_prefix");
    let type_prefixes = owned("event_type_prefix");
    let stream_regex = query.get("stream_regex")?;
    let type_regex = query.get("event_type_regex")?;
    let given = usize::from(!stream_prefixes.is_empty())
        + usize::from(!type_prefixes.is_empty())
        + usize::from(stream_regex.is_some())
        + usize::from(type_regex.is_some());
    if given > 1 {
        return Err(HttpError::bad_request(
            "invalid_filter",
            "give one kind of filter: stream_prefix, event_type_prefix, stream_regex or \
             event_type_regex",
        ));
    }
    let invalid_regex =
        |error: factum_core::Error| HttpError::bad_request("invalid_filter", error.to_string());
    Ok(if !stream_prefixes.is_empty() {
        Some(EventFilter::StreamPrefix(stream_prefixes))
    } else if !type_prefixes.is_empty() {
        Some(EventFilter::EventTypePrefix(type_prefixes))
    } else if let Some(pattern) = stream_regex {
        Some(EventFilter::stream_regex(pattern).map_err(invalid_regex)?)
    } else if let Some(pattern) = type_regex {
        Some(EventFilter::event_type_regex(pattern).map_err(invalid_regex)?)
    } else {
        None
    })
}

/// `GET /all`: a page of `$all`.
pub async fn read_all(
    State(state): State<AppState>,
    caller: Caller,
    RawQuery(query): RawQuery,
) -> Result<Response, HttpError> {
    let mut known = vec!["from", "direction", "limit"];
    known.extend(FILTER_PARAMETERS);
    let query = Query::parse(query.as_deref(), &known)?;
    let direction = query.direction()?;
    let from = match (query.from()?, direction) {
        (None, Direction::Forwards) | (Some(Bound::Start), _) => AllStart::Start,
        (None, Direction::Backwards) | (Some(Bound::End), _) => AllStart::End,
        (Some(Bound::At(position)), _) => AllStart::Position(Position(position)),
    };
    let options = ReadAllOptions {
        from,
        direction,
        limit: query.limit(READ_LIMIT_DEFAULT, READ_LIMIT_MAX)?,
        filter: filter(&query)?,
        include_system: query.flag("include_system")?,
        scan_limit: Some(SCAN_EVENTS_MAX),
    };
    state.metrics.read(ReadTarget::All);
    let slice = store_for(&state, &caller).read_all(options).await?;
    state
        .metrics
        .read_events(ReadTarget::All, slice.events.len() as u64);
    let next = match direction {
        Direction::Forwards => slice.scanned_to.value().saturating_add(1),
        Direction::Backwards => slice.scanned_to.value(),
    };
    #[derive(Serialize)]
    struct Page<'a> {
        events: Vec<EventJson<'a>>,
        next: u64,
        end_of_log: bool,
    }
    let page = Page {
        events: events_json(&slice.events),
        next,
        end_of_log: slice.end_of_log,
    };
    Ok(json_response(StatusCode::OK, &page))
}

/// `DELETE /streams/{stream}`: a soft delete, or with `hard=true` a tombstone.
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    path: Result<Path<String>, PathRejection>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Response, HttpError> {
    let stream = stream_name(path)?;
    let query = Query::parse(query.as_deref(), &["hard"])?;
    let hard = query.flag("hard")?;
    let expected = expected_revision(&headers)?;
    let result = if hard {
        store_for(&state, &caller)
            .tombstone_stream(&stream, expected)
            .await?
    } else {
        store_for(&state, &caller)
            .delete_stream(&stream, expected)
            .await?
    };
    Ok(json_response(
        StatusCode::OK,
        &json!({ "position": result.position.value() }),
    ))
}

/// `GET /streams/{stream}/metadata`.
pub async fn get_metadata(
    State(state): State<AppState>,
    caller: Caller,
    path: Result<Path<String>, PathRejection>,
    RawQuery(query): RawQuery,
) -> Result<Response, HttpError> {
    let stream = stream_name(path)?;
    Query::parse(query.as_deref(), &[])?;
    let result = store_for(&state, &caller).stream_metadata(&stream).await?;
    let metadata = String::from_utf8(result.metadata.to_json())
        .ok()
        .and_then(|text| RawValue::from_string(text).ok());
    let revision = match result.revision {
        CurrentRevision::Current(revision) => Some(revision),
        CurrentRevision::NoStream => None,
    };
    Ok(json_response(
        StatusCode::OK,
        &json!({ "metadata": metadata, "revision": revision }),
    ))
}

/// `PUT /streams/{stream}/metadata`: replaces the stream's metadata.
pub async fn set_metadata(
    State(state): State<AppState>,
    caller: Caller,
    path: Result<Path<String>, PathRejection>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, HttpError> {
    let stream = stream_name(path)?;
    Query::parse(query.as_deref(), &[])?;
    let expected = expected_revision(&headers)?;
    let body = json_body(&headers, body, state.max_body_bytes).await?;
    let metadata = StreamMetadata::from_json(&body)?;
    let result = store_for(&state, &caller)
        .set_stream_metadata(&stream, expected, &metadata)
        .await?;
    Ok(json_response(
        StatusCode::OK,
        &json!({ "revision": result.revision, "position": result.position.value() }),
    ))
}
