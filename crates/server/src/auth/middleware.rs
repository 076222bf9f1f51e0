//! Authentication on every request, gRPC and HTTP alike: HTTP basic credentials checked
//! against the store's users. Bad or missing credentials get UNAUTHENTICATED (gRPC) or 401
//! (HTTP) with the same words whatever was wrong; a request that passes carries its
//! [`Principal`](super::acl::Principal) in its extensions. The health endpoints stay open (load balancers call them),
//! and so do gossip and the server's feature list, which clients ask before they send
//! credentials (as KurrentDB allows).

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use http::{HeaderValue, StatusCode, header};

use super::acl::AccessPolicy;
use super::users::{UserError, UserStore};

/// What the middleware checks requests against.
#[derive(Debug, Clone)]
pub struct Authentication {
    /// The users whose credentials are accepted.
    pub users: Arc<UserStore>,
    /// The access rules handed on to the request (see `auth::guard`).
    pub policy: AccessPolicy,
}

/// Paths served without credentials.
const OPEN_PATHS: &[&str] = &[
    "/health/live",
    "/health/ready",
    "/event_store.client.gossip.Gossip/Read",
    "/event_store.client.server_features.ServerFeatures/GetSupportedMethods",
];

/// The one message every authentication failure gets.
pub(crate) const BAD_CREDENTIALS: &str = "Bad credentials: authentication required";

/// Checks the credentials of each request (an axum middleware; see `serve`).
pub async fn require_credentials(
    State(Authentication { users, policy }): State<Authentication>,
    mut request: Request,
    next: Next,
) -> Response {
    if OPEN_PATHS.contains(&request.uri().path()) {
        return next.run(request).await;
    }
    let grpc = crate::http::is_grpc(request.headers());
    let Some((name, password)) = basic_credentials(request.headers().get(header::AUTHORIZATION))
    else {
        // The log may say what the caller may not learn.
        tracing::debug!(path = request.uri().path(), "refused: no basic credentials");
        return refuse(grpc);
    };
    match users.authenticate(&name, &password).await {
        Ok(principal) => {
            request.extensions_mut().insert(principal);
            request.extensions_mut().insert(policy);
            next.run(request).await
        }
        Err(UserError::Store(error)) => {
            tracing::warn!(%error, "cannot check credentials");
            if grpc {
                tonic::Status::unavailable("Server Is Not Ready: cannot check credentials")
                    .into_http::<Body>()
            } else {
                crate::http::error_response(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "cannot check credentials now",
                )
            }
        }
        Err(_) => {
            tracing::debug!(path = request.uri().path(), user = %name, "refused: bad credentials");
            refuse(grpc)
        }
    }
}

fn refuse(grpc: bool) -> Response {
    if grpc {
        return tonic::Status::unauthenticated(BAD_CREDENTIALS).into_http::<Body>();
    }
    let mut response =
        crate::http::error_response(StatusCode::UNAUTHORIZED, "unauthenticated", BAD_CREDENTIALS);
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Basic realm=\"factum\""),
    );
    response.into_response()
}

/// `Authorization: Basic base64(name:password)`.
fn basic_credentials(value: Option<&HeaderValue>) -> Option<(String, String)> {
    let value = value?.to_str().ok()?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (name, password) = decoded.split_once(':')?;
    Some((name.to_owned(), password.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_credentials_are_parsed_and_anything_else_is_refused() {
        let header = |text: &str| HeaderValue::from_str(text).unwrap();
        // "admin:chan:geit" — the password may hold colons.
        assert_eq!(
            basic_credentials(Some(&header("Basic YWRtaW46Y2hhbjpnZWl0"))),
            Some(("admin".into(), "chan:geit".into()))
        );
        assert_eq!(basic_credentials(None), None);
        assert_eq!(basic_credentials(Some(&header("Bearer abc"))), None);
        assert_eq!(basic_credentials(Some(&header("Basic !!!"))), None);
        // "nocolon"
        assert_eq!(basic_credentials(Some(&header("Basic bm9jb2xvbg=="))), None);
    }
}
