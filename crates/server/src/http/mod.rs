//! The HTTP/JSON API, served on the gRPC port: requests whose content type is not
//! `application/grpc` land here (gRPC calls have their own paths, `/event_store.client.*`).
//!
//! Appends, stream and `$all` reads, stream metadata, soft deletes and tombstones, catch-up
//! subscriptions as server-sent events, health checks and the OpenAPI document
//! (`crates/server/openapi.json`, served at `/openapi.json`). Like the gRPC services it decides
//! no semantics: it translates JSON onto the [`EventStore`] trait and the store's answers back.
//! Errors are `{"error": {"code", "message"}}` ([`error`]).

mod error;
mod events;
mod handlers;
mod params;
mod sse;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, HeaderValue, Method, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, delete, get, post, put};
use factum_core::EventStore;
use serde::Serialize;

use crate::limits::SubscriptionSlots;
use crate::metrics::Metrics;
use crate::shutdown::Shutdown;
pub(crate) use error::ErrorCode;
use error::HttpError;

/// A JSON error response in the API's shape, for the layers around it (authentication).
pub(crate) fn error_response(status: StatusCode, code: &'static str, message: &str) -> Response {
    HttpError::new(status, code, message).into_response()
}

/// The OpenAPI 3 document of this API, as served at `/openapi.json`.
pub const OPENAPI_JSON: &str = include_str!("../../openapi.json");

/// Room in a request body for the JSON around an append's events (base64 makes bytes a third
/// larger, escapes make text longer).
const BODY_OVERHEAD_BYTES: usize = 1024 * 1024;

/// What the HTTP API is built from.
pub struct HttpSettings {
    /// The store served.
    pub store: Arc<dyn EventStore>,
    /// Ends subscriptions when it fires.
    pub shutdown: Shutdown,
    /// Appends larger than this are refused before they reach the store.
    pub max_append_bytes: usize,
    /// Where subscriptions are counted.
    pub metrics: Arc<Metrics>,
    /// The subscription limits, shared with gRPC.
    pub subscriptions: Arc<SubscriptionSlots>,
    /// How often a quiet server-sent-event subscription sends a comment.
    pub sse_keepalive: Duration,
}

/// What every handler shares.
struct HttpState {
    store: Arc<dyn EventStore>,
    shutdown: Shutdown,
    /// The largest append accepted, in bytes (as for gRPC).
    max_append_bytes: usize,
    /// The largest request body read, in bytes.
    max_body_bytes: usize,
    metrics: Arc<Metrics>,
    subscriptions: Arc<SubscriptionSlots>,
    sse_keepalive: Duration,
}

type AppState = Arc<HttpState>;

/// Every route of the API: method, path (as `openapi.json` writes it) and handler. The router
/// is built from this list, and a test checks it against the OpenAPI document.
fn routes() -> Vec<(Method, &'static str, MethodRouter<AppState>)> {
    vec![
        (Method::GET, "/health/live", get(handlers::live)),
        (Method::GET, "/health/ready", get(handlers::ready)),
        (Method::GET, "/openapi.json", get(handlers::openapi)),
        (Method::POST, "/streams/{stream}", post(handlers::append)),
        (Method::GET, "/streams/{stream}", get(handlers::read_stream)),
        (
            Method::DELETE,
            "/streams/{stream}",
            delete(handlers::delete),
        ),
        (
            Method::GET,
            "/streams/{stream}/metadata",
            get(handlers::get_metadata),
        ),
        (
            Method::PUT,
            "/streams/{stream}/metadata",
            put(handlers::set_metadata),
        ),
        (
            Method::GET,
            "/streams/{stream}/subscribe",
            get(sse::subscribe_to_stream),
        ),
        (Method::GET, "/all", get(handlers::read_all)),
        (Method::GET, "/all/subscribe", get(sse::subscribe_to_all)),
    ]
}

/// Every route's method and path template, as the router matches them.
pub(crate) fn route_list() -> Vec<(&'static str, &'static str)> {
    routes()
        .into_iter()
        .map(|(method, path, _)| (method_name(&method), path))
        .collect()
}

fn method_name(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        _ => "OTHER",
    }
}

/// The HTTP API, for merging with the gRPC services' router (then set [`fallback`] on the
/// merged router).
pub fn router(settings: HttpSettings) -> Router {
    let state = Arc::new(HttpState {
        store: settings.store,
        shutdown: settings.shutdown,
        max_append_bytes: settings.max_append_bytes,
        max_body_bytes: settings
            .max_append_bytes
            .saturating_mul(2)
            .saturating_add(BODY_OVERHEAD_BYTES),
        metrics: settings.metrics,
        subscriptions: settings.subscriptions,
        sse_keepalive: settings.sse_keepalive,
    });
    let mut router = Router::new();
    for (_, path, method_router) in routes() {
        router = router.route(path, method_router);
    }
    router
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
}

/// What answers a request no route takes: gRPC's "unimplemented" for a gRPC call, a JSON 404
/// otherwise.
pub async fn fallback(request: Request<axum::body::Body>) -> Response {
    if is_grpc(request.headers()) {
        return tonic::Status::unimplemented("")
            .into_http::<axum::body::Body>()
            .into_response();
    }
    HttpError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        format!("no route for {} {}", request.method(), request.uri().path()),
    )
    .into_response()
}

async fn method_not_allowed(method: Method) -> HttpError {
    HttpError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("this route does not take {method}"),
    )
}

/// Whether a request is a gRPC call (by its content type, as KurrentDB routes them).
pub(crate) fn is_grpc(headers: &HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("application/grpc"))
}

/// A JSON response.
fn json_response(status: StatusCode, value: &impl Serialize) -> Response {
    match serde_json::to_vec(value) {
        Ok(body) => (
            status,
            [(CONTENT_TYPE, HeaderValue::from_static("application/json"))],
            body,
        )
            .into_response(),
        Err(error) => {
            tracing::error!(%error, "cannot render a JSON response");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    /// The routes the router serves and the operations the OpenAPI document describes are the
    /// same set: adding either without the other fails here.
    #[test]
    fn the_openapi_document_describes_exactly_the_routes_served() {
        let served: BTreeSet<(String, String)> = routes()
            .into_iter()
            .map(|(method, path, _)| (method.as_str().to_lowercase(), path.to_owned()))
            .collect();
        let document: serde_json::Value = serde_json::from_str(OPENAPI_JSON).unwrap();
        assert!(document["openapi"].as_str().unwrap().starts_with("3."));
        let mut documented = BTreeSet::new();
        for (path, item) in document["paths"].as_object().unwrap() {
            for method in item.as_object().unwrap().keys() {
                if ["get", "put", "post", "delete", "patch", "head", "options"]
                    .contains(&method.as_str())
                {
                    documented.insert((method.clone(), path.clone()));
                }
            }
        }
        let undocumented: Vec<_> = served.difference(&documented).collect();
        let unserved: Vec<_> = documented.difference(&served).collect();
        assert!(
            undocumented.is_empty(),
            "served but not documented: {undocumented:?}"
        );
        assert!(
            unserved.is_empty(),
            "documented but not served: {unserved:?}"
        );
    }
}
