//! Errors in the shapes the KurrentDB clients parse.
//!
//! Clients read different parts of an error: the Python client parses the status **message
//! text** in places, the Node client switches on the **`exception` trailer**, the Rust client
//! reads both. So every error carries all three: status code, exact message, trailers. No
//! `grpc-status-details-bin` is attached: the Python client turns any rich status it does not
//! know into a generic error.
//!
//! BatchAppend reports append failures in-band instead, as a `google.rpc.Status` whose single
//! detail's type URL names the error ([`ApiError::to_rpc_status`]).

use factum_core::{CurrentRevision, Error, ExpectedRevision, StreamName};
use factum_proto::shared;
use factum_proto::status::Status as RpcStatus;
use prost::Message;
use tonic::metadata::MetadataValue;
use tonic::{Code, Status};

use crate::convert::{expected_number, stream_to_wire};

/// The trailer that says which error of the store a delete's "wrong expected version" status
/// stands for ([`Error::kind`]: `stream_not_found` or `wrong_expected_revision`).
pub const FACTUM_ERROR_TRAILER: &str = "factum-error";

/// What went wrong with a request, before it is put in a protocol's shape.
#[derive(Debug)]
pub enum ApiError {
    /// An error of the store.
    Store(Error),
    /// The request is malformed.
    BadRequest(String),
    /// An event lacks a required metadata property (`type` or `content-type`).
    MissingMetadata(&'static str),
    /// An append is larger than the server accepts.
    AppendTooLarge {
        /// The limit, in bytes.
        max_bytes: usize,
    },
    /// The append's deadline passed before it could run.
    DeadlineExceeded,
    /// The server is shutting down.
    ShuttingDown,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ApiError::Store(error) => write!(f, "{error}"),
            ApiError::BadRequest(reason) => f.write_str(reason),
            ApiError::MissingMetadata(property) => {
                write!(f, "Required Metadata Property '{property}' is missing")
            }
            ApiError::AppendTooLarge { max_bytes } => {
                write!(f, "Maximum Append Size of {max_bytes} Exceeded.")
            }
            ApiError::DeadlineExceeded => f.write_str("Operation timed out: the deadline passed"),
            ApiError::ShuttingDown => f.write_str("Server Is Shutting Down"),
        }
    }
}

impl From<Error> for ApiError {
    fn from(error: Error) -> ApiError {
        match error {
            Error::AppendTooLarge { max_bytes, .. } | Error::EventTooLarge { max_bytes, .. } => {
                ApiError::AppendTooLarge { max_bytes }
            }
            other => ApiError::Store(other),
        }
    }
}

impl ApiError {
    /// A malformed request.
    pub fn bad_request(reason: impl Into<String>) -> ApiError {
        ApiError::BadRequest(reason.into())
    }

    /// An event without `property` in its metadata map.
    pub fn missing_metadata(property: &str) -> ApiError {
        match property {
            "type" => ApiError::MissingMetadata("type"),
            _ => ApiError::MissingMetadata("content-type"),
        }
    }

    /// The error as a gRPC status with KurrentDB's message text and trailers.
    pub fn to_status(&self) -> Status {
        match self {
            ApiError::Store(Error::StreamDeleted { stream }) => stream_deleted(stream),
            ApiError::Store(Error::WrongExpectedRevision {
                stream,
                expected,
                actual,
            }) => with_trailers(
                Code::FailedPrecondition,
                format!(
                    "Append failed due to WrongExpectedVersion. Stream: {stream}, Expected \
                     version: {}, Actual version: {}",
                    expected_number(*expected),
                    actual_number(*actual)
                ),
                &[
                    ("exception", "wrong-expected-version".into()),
                    ("stream-name", stream.as_str().into()),
                    ("expected-version", expected_number(*expected).to_string()),
                    ("actual-version", actual_number(*actual).to_string()),
                ],
            ),
            ApiError::Store(Error::StreamNotFound { stream }) => with_trailers(
                Code::NotFound,
                format!("Event stream '{stream}' is not found."),
                &[
                    ("exception", "stream-not-found".into()),
                    ("stream-name", stream.as_str().into()),
                ],
            ),
            ApiError::Store(Error::AccessDenied { .. }) => with_trailers(
                Code::PermissionDenied,
                "Access Denied".to_owned(),
                &[("exception", "access-denied".into())],
            ),
            // A store that is itself a server's client (a `RemoteStore`) may answer this.
            ApiError::Store(Error::Unauthenticated { .. }) => {
                Status::unauthenticated(crate::auth::middleware::BAD_CREDENTIALS)
            }
            ApiError::Store(Error::Unavailable { reason }) => {
                Status::unavailable(format!("Server Is Not Ready: {reason}"))
            }
            ApiError::Store(error @ (Error::Io(_) | Error::Corrupt { .. })) => {
                Status::internal(error.to_string())
            }
            ApiError::Store(other) => invalid_argument(other.to_string()),
            ApiError::BadRequest(reason) => invalid_argument(reason.clone()),
            ApiError::MissingMetadata(_) => with_trailers(
                Code::InvalidArgument,
                self.to_string(),
                &[
                    ("exception", "missing-required-metadata-property".into()),
                    ("required-metadata-properties", "type,content-type".into()),
                ],
            ),
            ApiError::AppendTooLarge { max_bytes } => with_trailers(
                Code::InvalidArgument,
                self.to_string(),
                &[
                    ("exception", "maximum-append-size-exceeded".into()),
                    ("maximum-append-size", max_bytes.to_string()),
                ],
            ),
            ApiError::DeadlineExceeded => Status::aborted(self.to_string()),
            ApiError::ShuttingDown => Status::unavailable(self.to_string()),
        }
    }

    /// The error of a soft delete or tombstone: a wrong expected revision (or a stream that was
    /// never written) is reported as the text the Python client parses.
    ///
    /// Both report "actual version -1" for a stream without visible events, so the trailer
    /// [`FACTUM_ERROR_TRAILER`] adds which of the two it is, for Factum's own client (other
    /// clients ignore unknown trailers).
    pub fn to_delete_status(&self, stream: &StreamName, expected: ExpectedRevision) -> Status {
        // Deleting a soft-deleted stream with "stream exists": KurrentDB answers "deleted"
        // (Python: StreamIsDeletedError); the trailer tells Factum's client what the store said.
        if let (
            ExpectedRevision::StreamExists,
            ApiError::Store(
                error @ Error::WrongExpectedRevision {
                    actual: CurrentRevision::NoStream,
                    ..
                },
            ),
        ) = (expected, self)
        {
            let mut status = stream_deleted(stream);
            if let Ok(kind) = MetadataValue::try_from(error.kind()) {
                status.metadata_mut().insert(FACTUM_ERROR_TRAILER, kind);
            }
            return status;
        }
        let (actual, kind) = match self {
            ApiError::Store(error @ Error::WrongExpectedRevision { actual, .. }) => {
                (actual_number(*actual), error.kind())
            }
            ApiError::Store(error @ Error::StreamNotFound { .. }) => (-1, error.kind()),
            _ => return self.to_status(),
        };
        let expected = expected_number(expected);
        with_trailers(
            Code::FailedPrecondition,
            format!(
                "Delete failed due to WrongExpectedVersion. Stream: {stream}, Expected version: \
                 {expected}, Actual version: {actual}"
            ),
            &[
                ("exception", "wrong-expected-version".into()),
                ("stream-name", stream.as_str().into()),
                ("expected-version", expected.to_string()),
                ("actual-version", actual.to_string()),
                (FACTUM_ERROR_TRAILER, kind.to_owned()),
            ],
        )
    }

    /// The error as the in-band `google.rpc.Status` of a BatchAppend reply: clients choose the
    /// exception from the type URL of its one detail.
    pub fn to_rpc_status(&self) -> RpcStatus {
        let (code, message, detail_name, detail) = match self {
            ApiError::Store(Error::WrongExpectedRevision {
                expected, actual, ..
            }) => (
                Code::AlreadyExists,
                "WrongExpectedVersion".to_owned(),
                "WrongExpectedVersion",
                wrong_expected_version_detail(*expected, *actual).encode_to_vec(),
            ),
            ApiError::Store(Error::StreamDeleted { stream }) => (
                Code::FailedPrecondition,
                "StreamDeleted".to_owned(),
                "StreamDeleted",
                shared::StreamDeleted {
                    stream_identifier: Some(stream_to_wire(stream)),
                }
                .encode_to_vec(),
            ),
            ApiError::Store(Error::AccessDenied { .. }) => (
                Code::PermissionDenied,
                "Access Denied".to_owned(),
                "AccessDenied",
                shared::AccessDenied {}.encode_to_vec(),
            ),
            ApiError::AppendTooLarge { max_bytes } => (
                Code::InvalidArgument,
                self.to_string(),
                "MaximumAppendSizeExceeded",
                shared::MaximumAppendSizeExceeded {
                    max_append_size: u32::try_from(*max_bytes).unwrap_or(u32::MAX),
                }
                .encode_to_vec(),
            ),
            ApiError::DeadlineExceeded => (
                Code::DeadlineExceeded,
                self.to_string(),
                "Timeout",
                shared::Timeout {}.encode_to_vec(),
            ),
            ApiError::BadRequest(_)
            | ApiError::MissingMetadata(_)
            | ApiError::Store(
                Error::InvalidEvent { .. }
                | Error::InvalidRequest { .. }
                | Error::InvalidStreamName { .. }
                | Error::InvalidMetadata { .. },
            ) => (
                Code::InvalidArgument,
                self.to_string(),
                "BadRequest",
                shared::BadRequest {
                    message: self.to_string(),
                }
                .encode_to_vec(),
            ),
            _ => (
                Code::Unknown,
                self.to_string(),
                "Unknown",
                shared::Unknown {}.encode_to_vec(),
            ),
        };
        RpcStatus {
            code: code as i32,
            message,
            details: vec![prost_types::Any {
                type_url: factum_proto::type_url(detail_name),
                value: detail,
            }],
        }
    }
}

impl From<ApiError> for Status {
    fn from(error: ApiError) -> Status {
        error.to_status()
    }
}

/// `Event stream '{name}' is deleted.`: the Python client looks for "is deleted".
pub fn stream_deleted(stream: &StreamName) -> Status {
    with_trailers(
        Code::FailedPrecondition,
        format!("Event stream '{stream}' is deleted."),
        &[
            ("exception", "stream-deleted".into()),
            ("stream-name", stream.as_str().into()),
        ],
    )
}

/// The in-band detail of a wrong expected revision.
pub fn wrong_expected_version_detail(
    expected: ExpectedRevision,
    actual: CurrentRevision,
) -> shared::WrongExpectedVersion {
    use shared::wrong_expected_version::{
        CurrentStreamRevisionOption as Current, ExpectedStreamPositionOption as Expected,
    };
    let current = match actual {
        CurrentRevision::Current(revision) => Current::CurrentStreamRevision(revision),
        CurrentRevision::NoStream => Current::CurrentNoStream(()),
    };
    let expected = match expected {
        ExpectedRevision::Exact(revision) => Expected::ExpectedStreamPosition(revision),
        ExpectedRevision::Any => Expected::ExpectedAny(()),
        ExpectedRevision::StreamExists => Expected::ExpectedStreamExists(()),
        ExpectedRevision::NoStream => Expected::ExpectedNoStream(()),
    };
    shared::WrongExpectedVersion {
        current_stream_revision_option: Some(current),
        expected_stream_position_option: Some(expected),
    }
}

/// A current revision as KurrentDB numbers it: the revision, or -1 for no stream.
pub fn actual_number(actual: CurrentRevision) -> i64 {
    match actual {
        CurrentRevision::Current(revision) => revision.min(i64::MAX as u64) as i64,
        CurrentRevision::NoStream => -1,
    }
}

fn invalid_argument(message: String) -> Status {
    with_trailers(
        Code::InvalidArgument,
        message,
        &[("exception", "invalid-argument".into())],
    )
}

fn with_trailers(code: Code, message: String, trailers: &[(&'static str, String)]) -> Status {
    let mut status = Status::new(code, message);
    let metadata = status.metadata_mut();
    for (key, value) in trailers {
        // A value that is not valid ASCII header text (an exotic stream name) is left out
        // rather than failing the error itself.
        if let Ok(value) = MetadataValue::try_from(value.as_str()) {
            metadata.insert(*key, value);
        }
    }
    status
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream(name: &str) -> StreamName {
        StreamName::new(name).unwrap()
    }

    #[test]
    fn a_tombstoned_stream_says_is_deleted_with_its_trailers() {
        let status = ApiError::Store(Error::StreamDeleted {
            stream: stream("order-1"),
        })
        .to_status();
        assert_eq!(status.code(), Code::FailedPrecondition);
        assert_eq!(status.message(), "Event stream 'order-1' is deleted.");
        assert_eq!(
            status.metadata().get("exception").unwrap(),
            "stream-deleted"
        );
        assert_eq!(status.metadata().get("stream-name").unwrap(), "order-1");
    }

    #[test]
    fn a_delete_with_a_wrong_revision_is_the_text_the_python_client_parses() {
        let error = ApiError::Store(Error::WrongExpectedRevision {
            stream: stream("a"),
            expected: ExpectedRevision::Exact(3),
            actual: CurrentRevision::Current(5),
        });
        let status = error.to_delete_status(&stream("a"), ExpectedRevision::Exact(3));
        assert_eq!(
            status.message(),
            "Delete failed due to WrongExpectedVersion. Stream: a, Expected version: 3, Actual \
             version: 5"
        );
        assert_eq!(status.metadata().get("actual-version").unwrap(), "5");
        assert_eq!(
            status.metadata().get(FACTUM_ERROR_TRAILER).unwrap(),
            "wrong_expected_revision"
        );
        let missing = ApiError::Store(Error::StreamNotFound {
            stream: stream("b"),
        })
        .to_delete_status(&stream("b"), ExpectedRevision::Any);
        assert!(
            missing
                .message()
                .ends_with("Expected version: -2, Actual version: -1")
        );
        // A wrong revision on a soft-deleted stream says the same: the trailer tells them apart.
        assert_eq!(
            missing.metadata().get(FACTUM_ERROR_TRAILER).unwrap(),
            "stream_not_found"
        );
    }

    #[test]
    fn batch_append_errors_pack_one_detail_named_by_its_type_url() {
        let status = ApiError::Store(Error::WrongExpectedRevision {
            stream: stream("a"),
            expected: ExpectedRevision::NoStream,
            actual: CurrentRevision::Current(0),
        })
        .to_rpc_status();
        assert_eq!(status.details.len(), 1);
        assert_eq!(
            status.details[0].type_url,
            "type.googleapis.com/event_store.client.WrongExpectedVersion"
        );
        let detail =
            shared::WrongExpectedVersion::decode(status.details[0].value.as_slice()).unwrap();
        assert_eq!(
            detail.current_stream_revision_option,
            Some(
                shared::wrong_expected_version::CurrentStreamRevisionOption::CurrentStreamRevision(
                    0
                )
            )
        );
        let too_large = ApiError::AppendTooLarge { max_bytes: 1024 }.to_rpc_status();
        assert_eq!(
            too_large.details[0].type_url,
            "type.googleapis.com/event_store.client.MaximumAppendSizeExceeded"
        );
    }

    #[test]
    fn missing_metadata_names_the_property() {
        let status = ApiError::missing_metadata("content-type").to_status();
        assert_eq!(status.code(), Code::InvalidArgument);
        assert_eq!(
            status.message(),
            "Required Metadata Property 'content-type' is missing"
        );
        assert_eq!(
            status.metadata().get("exception").unwrap(),
            "missing-required-metadata-property"
        );
    }
}
