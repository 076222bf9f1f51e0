//! Errors of the HTTP API: a status and `{"error": {"code": "...", "message": "..."}}`.
//!
//! Codes are stable snake_case strings clients may switch on: the store's
//! ([`factum_core::Error::kind`]) for what the store refused, and the API's own for requests
//! refused before they reach the store.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use factum_core::Error;

/// A refused request, as the client sees it.
#[derive(Debug)]
pub struct HttpError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl HttpError {
    /// An error with this status, code and message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> HttpError {
        HttpError {
            status,
            code,
            message: message.into(),
        }
    }

    /// A malformed request (400) with this code.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> HttpError {
        HttpError::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// A body past the server's limit (413).
    pub fn body_too_large(limit_bytes: usize) -> HttpError {
        HttpError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!("the request body is larger than {limit_bytes} bytes"),
        )
    }

    /// An append larger than the server accepts (413).
    pub fn append_too_large(max_bytes: usize) -> HttpError {
        HttpError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "append_too_large",
            format!("the append is larger than {max_bytes} bytes"),
        )
    }

    /// The server is shutting down (503).
    pub fn shutting_down() -> HttpError {
        HttpError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "shutting_down",
            "the server is shutting down",
        )
    }

    /// The stable code clients switch on.
    pub fn code(&self) -> &'static str {
        self.code
    }

    /// The status of the response.
    #[cfg(test)]
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The error as the JSON value of a body or of an SSE `error` event.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({ "error": { "code": self.code, "message": self.message } })
    }
}

impl From<Error> for HttpError {
    fn from(error: Error) -> HttpError {
        let status = match &error {
            Error::WrongExpectedRevision { .. } => StatusCode::CONFLICT,
            Error::StreamNotFound { .. } => StatusCode::NOT_FOUND,
            Error::StreamDeleted { .. } => StatusCode::GONE,
            Error::EventTooLarge { .. } | Error::AppendTooLarge { .. } => {
                StatusCode::PAYLOAD_TOO_LARGE
            }
            Error::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Error::AccessDenied { .. } => StatusCode::FORBIDDEN,
            Error::Unauthenticated { .. } => StatusCode::UNAUTHORIZED,
            Error::Corrupt { .. } | Error::Io(_) => {
                // The details are for the operator, not the client.
                tracing::error!(%error, "the store failed an HTTP request");
                return HttpError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    error.kind(),
                    "the store failed; the server log has the details",
                );
            }
            _ => StatusCode::BAD_REQUEST,
        };
        HttpError::new(status, error.kind(), error.to_string())
    }
}

/// The code of an error response, in its extensions: the metrics count errors by it.
#[derive(Debug, Clone, Copy)]
pub struct ErrorCode(pub &'static str);

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        let mut response = super::json_response(self.status, &self.to_json());
        response.extensions_mut().insert(ErrorCode(self.code));
        response
    }
}

#[cfg(test)]
mod tests {
    use factum_core::{CurrentRevision, ExpectedRevision, StreamName};

    use super::*;

    #[test]
    fn store_errors_keep_their_kind_as_the_code() {
        let stream = StreamName::new("s").unwrap();
        let conflict = HttpError::from(Error::WrongExpectedRevision {
            stream: stream.clone(),
            expected: ExpectedRevision::NoStream,
            actual: CurrentRevision::Current(0),
        });
        assert_eq!(conflict.status(), StatusCode::CONFLICT);
        assert_eq!(
            conflict.to_json()["error"]["code"],
            "wrong_expected_revision"
        );
        let gone = HttpError::from(Error::StreamDeleted { stream });
        assert_eq!(gone.status(), StatusCode::GONE);
        let io = HttpError::from(Error::Io(std::io::Error::other("disk on fire at /secret")));
        assert_eq!(io.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert!(
            !io.to_json()["error"]["message"]
                .as_str()
                .unwrap()
                .contains("secret")
        );
    }
}
