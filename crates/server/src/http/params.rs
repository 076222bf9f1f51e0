//! The parts of a request beyond its path: query parameters, the `expected-revision` header,
//! the content type and the body. Each refuses bad input with a clean [`HttpError`].

use axum::body::Body;
use axum::http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use axum::http::{HeaderMap, StatusCode};
use bytes::{Bytes, BytesMut};
use factum_core::{Direction, ExpectedRevision};
use http_body_util::BodyExt;

use super::error::HttpError;
use super::events::is_json_content_type;

/// The header that carries an expected revision.
pub const EXPECTED_REVISION_HEADER: &str = "expected-revision";

/// A request's query parameters, percent-decoded, in order.
#[derive(Debug, Default)]
pub struct Query(Vec<(String, String)>);

impl Query {
    /// Parses `a=1&b=2`, refusing names other than `known` and text that is not UTF-8 once
    /// decoded.
    pub fn parse(raw: Option<&str>, known: &[&str]) -> Result<Query, HttpError> {
        let mut pairs = Vec::new();
        for pair in raw.unwrap_or_default().split('&') {
            if pair.is_empty() {
                continue;
            }
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let name = decode(name)?;
            let value = decode(value)?;
            if !known.contains(&name.as_str()) {
                return Err(HttpError::bad_request(
                    "invalid_query",
                    format!(
                        "unknown query parameter {name:?}; this route takes: {}",
                        known.join(", ")
                    ),
                ));
            }
            pairs.push((name, value));
        }
        Ok(Query(pairs))
    }

    /// The value of `name`, if given (once: a repeated parameter is refused).
    pub fn get(&self, name: &str) -> Result<Option<&str>, HttpError> {
        let values = self.all(name);
        let first = values.first().copied();
        if values.len() > 1 {
            return Err(HttpError::bad_request(
                "invalid_query",
                format!("query parameter {name:?} is given more than once"),
            ));
        }
        Ok(first)
    }

    /// Every value of `name`, in order.
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
            .collect()
    }

    /// `name` as a number, if given.
    pub fn number(&self, name: &str) -> Result<Option<u64>, HttpError> {
        self.get(name)?
            .map(|value| {
                value
                    .parse::<u64>()
                    .ok()
                    .filter(|number| *number <= i64::MAX as u64)
                    .ok_or_else(|| invalid(name, value, "a whole number from 0 to 2^63-1"))
            })
            .transpose()
    }

    /// `name` as `true` or `false`, `false` when absent.
    pub fn flag(&self, name: &str) -> Result<bool, HttpError> {
        match self.get(name)? {
            None | Some("false") => Ok(false),
            Some("true" | "") => Ok(true),
            Some(value) => Err(invalid(name, value, "true or false")),
        }
    }

    /// `direction`: `forwards` (the default) or `backwards`.
    pub fn direction(&self) -> Result<Direction, HttpError> {
        match self.get("direction")? {
            None | Some("forwards") => Ok(Direction::Forwards),
            Some("backwards") => Ok(Direction::Backwards),
            Some(value) => Err(invalid("direction", value, "forwards or backwards")),
        }
    }

    /// `limit`, from 1 to `max`; `default` when absent.
    pub fn limit(&self, default: u64, max: u64) -> Result<u64, HttpError> {
        match self.number("limit")? {
            None => Ok(default),
            Some(limit) if (1..=max).contains(&limit) => Ok(limit),
            Some(limit) => Err(invalid(
                "limit",
                &limit.to_string(),
                &format!("from 1 to {max}"),
            )),
        }
    }
}

/// Where a read or subscription starts: `start`, `end` or a number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bound {
    /// The beginning.
    Start,
    /// The end.
    End,
    /// A revision or position.
    At(u64),
}

impl Query {
    /// `from`: `start`, `end` or a number; `None` when absent.
    pub fn from(&self) -> Result<Option<Bound>, HttpError> {
        match self.get("from")? {
            None => Ok(None),
            Some("start") => Ok(Some(Bound::Start)),
            Some("end") => Ok(Some(Bound::End)),
            Some(_) => Ok(self.number("from")?.map(Bound::At)),
        }
    }
}

fn invalid(name: &str, value: &str, expected: &str) -> HttpError {
    HttpError::bad_request(
        "invalid_query",
        format!("query parameter {name}={value:?} is invalid: expected {expected}"),
    )
}

fn decode(text: &str) -> Result<String, HttpError> {
    let text = text.replace('+', " ");
    percent_encoding::percent_decode_str(&text)
        .decode_utf8()
        .map(|decoded| decoded.into_owned())
        .map_err(|_| HttpError::bad_request("invalid_query", "the query is not UTF-8 once decoded"))
}

/// The `expected-revision` header: `any` (the default), `no-stream`, `stream-exists` or a
/// revision.
pub fn expected_revision(headers: &HeaderMap) -> Result<ExpectedRevision, HttpError> {
    let Some(value) = headers.get(EXPECTED_REVISION_HEADER) else {
        return Ok(ExpectedRevision::Any);
    };
    let refuse = || {
        HttpError::bad_request(
            "invalid_expected_revision",
            "expected-revision must be any, no-stream, stream-exists or a revision from 0 to \
             2^63-1",
        )
    };
    match value.to_str().map_err(|_| refuse())?.trim() {
        "any" => Ok(ExpectedRevision::Any),
        "no-stream" => Ok(ExpectedRevision::NoStream),
        "stream-exists" => Ok(ExpectedRevision::StreamExists),
        number => number
            .parse::<u64>()
            .ok()
            .filter(|revision| *revision <= i64::MAX as u64)
            .map(ExpectedRevision::Exact)
            .ok_or_else(refuse),
    }
}

/// The body of a JSON request, at most `limit_bytes` long.
pub async fn json_body(
    headers: &HeaderMap,
    body: Body,
    limit_bytes: usize,
) -> Result<Bytes, HttpError> {
    let content_type = headers
        .get(CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default();
    if !is_json_content_type(content_type) {
        return Err(HttpError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "the body must be JSON, with content-type: application/json",
        ));
    }
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    let mut body = body;
    if declared.is_some_and(|length| length > limit_bytes as u64) {
        drain(&mut body).await;
        return Err(HttpError::body_too_large(limit_bytes));
    }
    let mut collected = BytesMut::new();
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else {
            return Err(HttpError::bad_request(
                "invalid_body",
                "the request body could not be read",
            ));
        };
        if let Ok(data) = frame.into_data() {
            if collected.len().saturating_add(data.len()) > limit_bytes {
                drain(&mut body).await;
                return Err(HttpError::body_too_large(limit_bytes));
            }
            collected.extend_from_slice(&data);
        }
    }
    Ok(collected.freeze())
}

/// Reads and discards what is left of a refused body, up to [`DRAIN_BYTES_MAX`] and for at
/// most [`DRAIN_TIME_MAX`], so that the client, still sending, reads the answer rather than a
/// connection reset (closing a socket with unread data resets it).
async fn drain(body: &mut Body) {
    let discard = async {
        let mut drained = 0usize;
        while drained <= DRAIN_BYTES_MAX {
            match body.frame().await {
                Some(Ok(frame)) => {
                    drained += frame.data_ref().map_or(0, |data| data.len());
                }
                _ => return,
            }
        }
    };
    let _ = tokio::time::timeout(DRAIN_TIME_MAX, discard).await;
}

/// The most bytes of a refused body read and discarded.
const DRAIN_BYTES_MAX: usize = 8 * 1024 * 1024;

/// The longest time spent discarding a refused body.
const DRAIN_TIME_MAX: std::time::Duration = std::time::Duration::from_secs(2);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_decode_and_refuse_what_they_do_not_know() {
        let query = Query::parse(
            Some("from=12&direction=backwards&p=a%2Bb+c"),
            &["from", "direction", "p"],
        )
        .unwrap();
        assert_eq!(query.from().unwrap(), Some(Bound::At(12)));
        assert_eq!(query.direction().unwrap(), Direction::Backwards);
        assert_eq!(query.get("p").unwrap(), Some("a+b c"));
        assert!(Query::parse(Some("nope=1"), &["from"]).is_err());
        assert!(Query::parse(Some("from=%FF"), &["from"]).is_err());
        let twice = Query::parse(Some("from=1&from=2"), &["from"]).unwrap();
        assert!(twice.from().is_err());
        let bad = Query::parse(Some("from=-1&limit=0"), &["from", "limit"]).unwrap();
        assert!(bad.from().is_err());
        assert!(bad.limit(10, 100).is_err());
    }

    #[test]
    fn expected_revisions_come_from_the_header() {
        let mut headers = HeaderMap::new();
        assert_eq!(expected_revision(&headers).unwrap(), ExpectedRevision::Any);
        for (text, expected) in [
            ("no-stream", ExpectedRevision::NoStream),
            ("stream-exists", ExpectedRevision::StreamExists),
            ("7", ExpectedRevision::Exact(7)),
        ] {
            headers.insert(EXPECTED_REVISION_HEADER, text.parse().unwrap());
            assert_eq!(expected_revision(&headers).unwrap(), expected);
        }
        headers.insert(EXPECTED_REVISION_HEADER, "-1".parse().unwrap());
        assert!(expected_revision(&headers).is_err());
    }
}
