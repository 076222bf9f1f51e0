//! The server's answers of failure, back into [`factum_core::Error`].
//!
//! The protocol carries failures three ways: a gRPC status with an `exception` trailer (reads,
//! deletes), a `google.rpc.Status` inside a BatchAppend reply whose detail's type URL names the
//! error, and transport failures (no connection, a call cut off). Each becomes the contract's
//! variant; what has no variant of its own (a server that failed, a dropped connection, a
//! failed TLS handshake) is [`Error::Unavailable`] with the cause. Refused credentials are
//! [`Error::Unauthenticated`], a refusal by the server's ACLs [`Error::AccessDenied`].

use factum_core::{CurrentRevision, Error, ExpectedRevision, Limits, StreamName};
use factum_proto::shared;
use factum_proto::status::Status as RpcStatus;
use prost::Message;
use tonic::{Code, Status};

use crate::url::ConnectionSettings;

/// The trailer `factum serve` adds to delete errors with the kind of the store's error
/// ([`Error::kind`]): the KurrentDB text reports "actual version -1" both for a stream that was
/// never written and for a wrong expectation on a soft-deleted one.
pub const FACTUM_ERROR_TRAILER: &str = "factum-error";

/// What a call was about: what the status alone does not say.
#[derive(Debug, Clone, Copy, Default)]
pub struct Context<'a> {
    /// The stream the call named.
    pub stream: Option<&'a StreamName>,
    /// The expectation it sent.
    pub expected: Option<ExpectedRevision>,
    /// For an append: its size in bytes and its number of events.
    pub append: Option<(usize, usize)>,
}

/// A failed call's status as the contract's error.
pub fn from_status(status: &Status, context: Context<'_>) -> Error {
    let trailer = |key: &str| {
        status
            .metadata()
            .get(key)
            .and_then(|value| value.to_str().ok())
    };
    let named_stream = || {
        trailer("stream-name")
            .and_then(|name| StreamName::new(name).ok())
            .or_else(|| context.stream.cloned())
    };
    match trailer("exception") {
        Some("stream-deleted") => {
            // Deleting a soft-deleted stream with "stream exists" reads "deleted" to KurrentDB
            // clients; the store's answer was a wrong expected revision, and says so here.
            if let (Some(stream), Some(expected), Some("wrong_expected_revision")) = (
                named_stream(),
                context.expected,
                trailer(FACTUM_ERROR_TRAILER),
            ) {
                return Error::WrongExpectedRevision {
                    stream,
                    expected,
                    actual: CurrentRevision::NoStream,
                };
            }
            if let Some(stream) = named_stream() {
                return Error::StreamDeleted { stream };
            }
        }
        Some("stream-not-found") => {
            if let Some(stream) = named_stream() {
                return Error::StreamNotFound { stream };
            }
        }
        Some("wrong-expected-version") => {
            if let (Some(stream), Some(expected)) = (named_stream(), context.expected) {
                let actual = trailer("actual-version")
                    .and_then(|text| text.parse::<i64>().ok())
                    .or_else(|| actual_from_message(status.message()));
                let kind = trailer(FACTUM_ERROR_TRAILER);
                return match (actual, kind) {
                    (_, Some("stream_not_found")) => Error::StreamNotFound { stream },
                    (Some(actual), _) if actual >= 0 => Error::WrongExpectedRevision {
                        stream,
                        expected,
                        actual: CurrentRevision::Current(actual.unsigned_abs()),
                    },
                    (_, Some("wrong_expected_revision")) => Error::WrongExpectedRevision {
                        stream,
                        expected,
                        actual: CurrentRevision::NoStream,
                    },
                    // KurrentDB's reading: "actual version -1" is a stream that is not there.
                    _ => Error::StreamNotFound { stream },
                };
            }
        }
        Some("maximum-append-size-exceeded") => {
            let max_bytes = trailer("maximum-append-size")
                .and_then(|text| text.parse().ok())
                .unwrap_or(0);
            let (size_bytes, event_count) = context.append.unwrap_or((0, 0));
            return Error::AppendTooLarge {
                size_bytes,
                event_count,
                max_bytes,
                max_events: Limits::EVENTS_PER_APPEND_MAX,
            };
        }
        Some("access-denied") => {
            return Error::AccessDenied {
                operation: "this call",
                target: context
                    .stream
                    .map_or_else(|| "$all".to_owned(), |stream| stream.to_string()),
            };
        }
        _ => {}
    }
    match status.code() {
        Code::InvalidArgument => Error::invalid_request(status.message()),
        Code::Unauthenticated => Error::Unauthenticated {
            reason: format!(
                "the server refused the credentials ({}): check the user name and password",
                status.message()
            ),
        },
        // Without the `exception` trailer (another server): the same refusal.
        Code::PermissionDenied => Error::AccessDenied {
            operation: "this call",
            target: context
                .stream
                .map_or_else(|| "$all".to_owned(), |stream| stream.to_string()),
        },
        Code::FailedPrecondition if status.message().contains("is deleted") => {
            match named_stream() {
                Some(stream) => Error::StreamDeleted { stream },
                None => unavailable(status),
            }
        }
        _ => unavailable(status),
    }
}

/// `… Actual version: N` at the end of a KurrentDB wrong-expected-version text.
fn actual_from_message(message: &str) -> Option<i64> {
    let (_, actual) = message.rsplit_once("Actual version: ")?;
    actual.trim_end_matches('.').trim().parse().ok()
}

/// A status that is no answer about the store: the server or the connection failed.
pub fn unavailable(status: &Status) -> Error {
    let mut reason = format!("the server answered {:?}", status.code());
    if !status.message().is_empty() {
        reason.push_str(": ");
        reason.push_str(status.message());
    }
    push_causes(&mut reason, std::error::Error::source(status));
    // A TLS server's answer to a plain-text client (an alert record) reads as an HTTP/2 frame
    // of an impossible size.
    if reason.contains("frame with invalid size") {
        reason.push_str(
            " (is the server serving TLS? then connect with \
             kurrentdb://HOST:PORT?tlsCaFile=PATH or https://HOST:PORT?tlsCaFile=PATH)",
        );
    }
    Error::Unavailable { reason }
}

/// A connection that could not be made, as [`Error::Unavailable`] with the cause; a failed
/// TLS handshake says so and what to check.
pub fn connect_failure(settings: &ConnectionSettings, error: &tonic::transport::Error) -> Error {
    let mut causes = String::new();
    push_causes(&mut causes, std::error::Error::source(error));
    let reason = if settings.tls.is_some() && is_tls_failure(&causes) {
        format!(
            "the TLS handshake with {} failed{causes}: check that the server serves TLS, that \
             tlsCaFile is the certificate authority that signed its certificate, and that the \
             certificate names the host of the URL",
            settings.endpoint
        )
    } else {
        format!("cannot connect to {}: {error}{causes}", settings.endpoint)
    };
    Error::Unavailable { reason }
}

/// Whether the causes of a failed connection are those of a TLS handshake (rustls' errors).
fn is_tls_failure(causes: &str) -> bool {
    let causes = causes.to_ascii_lowercase();
    [
        "certificate",
        "tls",
        "handshake",
        "invalidcontenttype",
        "corrupt message",
        "received corrupt",
    ]
    .iter()
    .any(|sign| causes.contains(sign))
}

/// Appends `source` and its own sources to `text`, each after a colon, leaving out a cause
/// that only repeats the one before it (transport errors wrap their causes that way).
pub fn push_causes(text: &mut String, mut source: Option<&(dyn std::error::Error + 'static)>) {
    let mut previous = String::new();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if cause_text != previous && !text.ends_with(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        previous = cause_text;
        source = cause.source();
    }
}

/// The in-band failure of a BatchAppend request as the contract's error. The client chooses
/// the error from the detail's type URL, as the KurrentDB clients do.
pub fn from_rpc_status(
    status: &RpcStatus,
    stream: &StreamName,
    expected: ExpectedRevision,
    append: (usize, usize),
) -> Error {
    let Some(detail) = status.details.first() else {
        return in_band_failure(status);
    };
    let name = detail
        .type_url
        .rsplit_once('.')
        .map_or(detail.type_url.as_str(), |(_, name)| name);
    let value = detail.value.as_slice();
    match name {
        "WrongExpectedVersion" => {
            use shared::wrong_expected_version::CurrentStreamRevisionOption as Current;
            let actual = shared::WrongExpectedVersion::decode(value)
                .ok()
                .and_then(|detail| detail.current_stream_revision_option);
            match actual {
                Some(Current::CurrentStreamRevision(revision)) => Error::WrongExpectedRevision {
                    stream: stream.clone(),
                    expected,
                    actual: CurrentRevision::Current(revision),
                },
                Some(Current::CurrentNoStream(())) => Error::WrongExpectedRevision {
                    stream: stream.clone(),
                    expected,
                    actual: CurrentRevision::NoStream,
                },
                None => Error::Corrupt {
                    detail: "the server sent a wrong expected version without the stream's \
                             revision"
                        .into(),
                },
            }
        }
        "StreamDeleted" => Error::StreamDeleted {
            stream: stream.clone(),
        },
        "MaximumAppendSizeExceeded" => {
            let max_bytes = shared::MaximumAppendSizeExceeded::decode(value)
                .map_or(0, |detail| detail.max_append_size as usize);
            Error::AppendTooLarge {
                size_bytes: append.0,
                event_count: append.1,
                max_bytes,
                max_events: Limits::EVENTS_PER_APPEND_MAX,
            }
        }
        "BadRequest" => {
            let message = shared::BadRequest::decode(value)
                .map(|detail| detail.message)
                .unwrap_or_else(|_| status.message.clone());
            invalid_input(message)
        }
        "AccessDenied" => Error::AccessDenied {
            operation: "write",
            target: stream.to_string(),
        },
        "Timeout" => Error::Unavailable {
            reason: format!(
                "the server's append deadline passed before the append ran: {}",
                status.message
            ),
        },
        _ => in_band_failure(status),
    }
}

fn in_band_failure(status: &RpcStatus) -> Error {
    Error::Unavailable {
        reason: format!(
            "the server failed the append (code {}): {}",
            status.code, status.message
        ),
    }
}

/// The text of a bad request as the contract's error: `factum serve` words an invalid event as
/// the contract does ("invalid event at index N of the append: …"), so its index survives.
fn invalid_input(message: String) -> Error {
    const PREFIX: &str = "invalid event at index ";
    if let Some(rest) = message.strip_prefix(PREFIX)
        && let Some((index, reason)) = rest.split_once(" of the append: ")
        && let Ok(index) = index.parse()
    {
        return Error::InvalidEvent {
            index,
            reason: reason.to_owned(),
        };
    }
    match message.strip_prefix("invalid request: ") {
        Some(reason) => Error::invalid_request(reason),
        None => Error::invalid_request(message),
    }
}

#[cfg(test)]
mod tests {
    use tonic::metadata::MetadataValue;

    use super::*;

    fn stream(name: &str) -> StreamName {
        StreamName::new(name).unwrap()
    }

    fn status(code: Code, message: &str, trailers: &[(&'static str, &str)]) -> Status {
        let mut status = Status::new(code, message);
        for (key, value) in trailers {
            status
                .metadata_mut()
                .insert(*key, MetadataValue::try_from(*value).unwrap());
        }
        status
    }

    fn delete_context(stream: &StreamName, expected: ExpectedRevision) -> Context<'_> {
        Context {
            stream: Some(stream),
            expected: Some(expected),
            append: None,
        }
    }

    #[test]
    fn a_deleted_stream_is_stream_deleted() {
        let s = stream("order-1");
        let deleted = status(
            Code::FailedPrecondition,
            "Event stream 'order-1' is deleted.",
            &[("exception", "stream-deleted"), ("stream-name", "order-1")],
        );
        let error = from_status(&deleted, Context::default());
        assert!(matches!(error, Error::StreamDeleted { stream } if stream == s));
        // Without trailers, from the text and the call's stream.
        let bare = Status::failed_precondition("Event stream 'order-1' is deleted.");
        let context = Context {
            stream: Some(&s),
            ..Context::default()
        };
        assert!(matches!(
            from_status(&bare, context),
            Error::StreamDeleted { .. }
        ));
    }

    #[test]
    fn delete_errors_tell_not_found_from_a_wrong_revision() {
        let s = stream("a");
        let message = "Delete failed due to WrongExpectedVersion. Stream: a, Expected version: \
                       3, Actual version: 5";
        let wrong = status(
            Code::FailedPrecondition,
            message,
            &[
                ("exception", "wrong-expected-version"),
                ("actual-version", "5"),
            ],
        );
        let error = from_status(&wrong, delete_context(&s, ExpectedRevision::Exact(3)));
        assert!(matches!(
            error,
            Error::WrongExpectedRevision {
                expected: ExpectedRevision::Exact(3),
                actual: CurrentRevision::Current(5),
                ..
            }
        ));
        // The revision from the text when the trailer is missing.
        let text_only = status(
            Code::FailedPrecondition,
            message,
            &[("exception", "wrong-expected-version")],
        );
        let error = from_status(&text_only, delete_context(&s, ExpectedRevision::Exact(3)));
        assert!(matches!(
            error,
            Error::WrongExpectedRevision {
                actual: CurrentRevision::Current(5),
                ..
            }
        ));
        // -1: the Factum trailer decides; KurrentDB's reading (not found) without it.
        let minus_one = |kind: Option<&'static str>| {
            let mut trailers = vec![
                ("exception", "wrong-expected-version"),
                ("actual-version", "-1"),
            ];
            trailers.extend(kind.map(|kind| (FACTUM_ERROR_TRAILER, kind)));
            status(Code::FailedPrecondition, "", &trailers)
        };
        let context = delete_context(&s, ExpectedRevision::Exact(1));
        assert!(matches!(
            from_status(&minus_one(Some("wrong_expected_revision")), context),
            Error::WrongExpectedRevision {
                actual: CurrentRevision::NoStream,
                ..
            }
        ));
        assert!(matches!(
            from_status(&minus_one(Some("stream_not_found")), context),
            Error::StreamNotFound { .. }
        ));
        assert!(matches!(
            from_status(&minus_one(None), context),
            Error::StreamNotFound { .. }
        ));
    }

    #[test]
    fn refused_credentials_are_unauthenticated_and_refused_calls_access_denied() {
        let refused = Status::unauthenticated("Bad credentials: authentication required");
        let error = from_status(&refused, Context::default());
        assert!(
            matches!(&error, Error::Unauthenticated { reason }
                if reason.contains("Bad credentials")),
            "{error:?}"
        );
        let s = stream("secret");
        let context = Context {
            stream: Some(&s),
            ..Context::default()
        };
        // With KurrentDB's trailer, and without it (the code alone).
        let trailed = status(
            Code::PermissionDenied,
            "Access Denied",
            &[("exception", "access-denied")],
        );
        let bare = Status::permission_denied("Access Denied");
        for denied in [trailed, bare] {
            let error = from_status(&denied, context);
            assert!(
                matches!(&error, Error::AccessDenied { target, .. } if target == "secret"),
                "{error:?}"
            );
        }
    }

    #[test]
    fn transport_and_server_failures_are_unavailable_with_the_cause() {
        let error = from_status(
            &Status::unavailable("tcp connect error"),
            Context::default(),
        );
        assert!(
            matches!(&error, Error::Unavailable { reason } if reason.contains("tcp connect")),
            "{error:?}"
        );
        let error = from_status(&Status::internal("disk full"), Context::default());
        assert!(
            matches!(&error, Error::Unavailable { reason } if !reason.contains("TLS")),
            "{error:?}"
        );
        let error = from_status(
            &Status::internal("h2 protocol error: frame with invalid size"),
            Context::default(),
        );
        assert!(
            matches!(&error, Error::Unavailable { reason } if reason.contains("serving TLS")),
            "{error:?}"
        );
        let error = from_status(&Status::invalid_argument("bad regex"), Context::default());
        assert!(matches!(error, Error::InvalidRequest { reason } if reason == "bad regex"));
    }

    fn rpc_status(name: &str, value: Vec<u8>) -> RpcStatus {
        RpcStatus {
            code: Code::InvalidArgument as i32,
            message: "message".into(),
            details: vec![prost_types::Any {
                type_url: factum_proto::type_url(name),
                value,
            }],
        }
    }

    #[test]
    fn batch_append_failures_are_read_from_the_detail() {
        use shared::wrong_expected_version::CurrentStreamRevisionOption as Current;
        let s = stream("a");
        let wrong = shared::WrongExpectedVersion {
            current_stream_revision_option: Some(Current::CurrentNoStream(())),
            expected_stream_position_option: None,
        };
        let error = from_rpc_status(
            &rpc_status("WrongExpectedVersion", wrong.encode_to_vec()),
            &s,
            ExpectedRevision::Exact(2),
            (10, 1),
        );
        assert!(matches!(
            error,
            Error::WrongExpectedRevision {
                expected: ExpectedRevision::Exact(2),
                actual: CurrentRevision::NoStream,
                ..
            }
        ));
        let too_large = shared::MaximumAppendSizeExceeded {
            max_append_size: 100,
        };
        let error = from_rpc_status(
            &rpc_status("MaximumAppendSizeExceeded", too_large.encode_to_vec()),
            &s,
            ExpectedRevision::Any,
            (150, 3),
        );
        assert!(matches!(
            error,
            Error::AppendTooLarge {
                size_bytes: 150,
                event_count: 3,
                max_bytes: 100,
                ..
            }
        ));
        let deleted = from_rpc_status(
            &rpc_status("StreamDeleted", Vec::new()),
            &s,
            ExpectedRevision::Any,
            (0, 0),
        );
        assert!(matches!(deleted, Error::StreamDeleted { .. }));
        let bad = shared::BadRequest {
            message: "invalid event at index 2 of the append: schema versions start at 1".into(),
        };
        let error = from_rpc_status(
            &rpc_status("BadRequest", bad.encode_to_vec()),
            &s,
            ExpectedRevision::Any,
            (0, 3),
        );
        assert!(
            matches!(&error, Error::InvalidEvent { index: 2, reason } if reason == "schema versions start at 1"),
            "{error:?}"
        );
        let unknown = from_rpc_status(
            &rpc_status("Unknown", Vec::new()),
            &s,
            ExpectedRevision::Any,
            (0, 0),
        );
        assert!(matches!(unknown, Error::Unavailable { .. }));
    }
}
