//! What a response must be before a byte of it is used, and what each
//! failure becomes: statuses, transport errors and broken bodies mapped to
//! the crate's error kinds, with the URL (redacted) and what was asked.

use std::io::{self, Read};
use std::time::SystemTime;

use ureq::http::header;
use ureq::http::Response;
use ureq::Body;

use super::response::{
    etags_match, excerpt, google_error_message, is_identity_encoding, parse_content_range,
    parse_u64, xml_error, ContentRange,
};
use super::retry::parse_retry_after;
use super::{header_str, Failure, HttpSource, ERROR_BODY_LIMIT};
use crate::error::{Error, Result};
use crate::escape::escape_control;

impl HttpSource {
    /// Checks a 206: encoding, `Content-Range` (total first: a different
    /// total is a different object), `Content-Length`, validator.
    pub(super) fn check_partial(
        &self,
        response: &Response<Body>,
        start: u64,
        last: u64,
    ) -> Result<()> {
        let what = format!("GET bytes={start}-{last}");
        self.check_encoding(response, &what)?;
        let range = self.content_range(response, &what)?;
        let got = header_str(response, header::CONTENT_RANGE).unwrap_or_default();
        match range {
            ContentRange::Bytes {
                total: Some(total), ..
            } if total != self.len => {
                return Err(self.changed(format!(
                    "{what}: Content-Range `{got}` gives length {total}, was {} at open",
                    self.len
                )))
            }
            ContentRange::Bytes {
                start: s, end: e, ..
            } if (s, e) == (start, last) => {}
            _ => {
                return Err(self.invalid(format!(
                    "{what}: got Content-Range `{got}`, another range than asked for"
                )))
            }
        }
        self.check_content_length(response, &what, last - start + 1, false)?;
        self.check_validator(response, &what)
    }

    /// Checks a 200 to a ranged `GET`: the whole object, whatever was asked
    /// for (a server that ignored `Range` this once); the caller skips to
    /// the range.
    pub(super) fn check_whole(
        &self,
        response: &Response<Body>,
        start: u64,
        last: u64,
    ) -> Result<()> {
        let what = format!("GET bytes={start}-{last}");
        if start != 0 || last + 1 != self.len {
            log::warn!(
                "{what} {}: the server ignored Range and sent the whole object; skipping to the range",
                self.location
            );
        }
        self.check_encoding(response, &what)?;
        self.check_content_length(response, &what, self.len, true)?;
        self.check_validator(response, &what)
    }

    pub(super) fn check_encoding(&self, response: &Response<Body>, what: &str) -> Result<()> {
        match header_str(response, header::CONTENT_ENCODING) {
            Some(encoding) if !is_identity_encoding(encoding) => Err(Error::RangeNotSupported {
                object: self.location.clone(),
                detail: format!(
                    "{what}: the body is encoded (Content-Encoding: {encoding}) although \
                     `Accept-Encoding: identity` was sent"
                ),
            }),
            _ => Ok(()),
        }
    }

    pub(super) fn content_range(
        &self,
        response: &Response<Body>,
        what: &str,
    ) -> Result<ContentRange> {
        let value = header_str(response, header::CONTENT_RANGE)
            .ok_or_else(|| self.invalid(format!("{what}: 206 without Content-Range")))?;
        parse_content_range(value)
            .ok_or_else(|| self.invalid(format!("{what}: malformed Content-Range `{value}`")))
    }

    /// `Content-Length`, when sent, must be `expected`; for the whole
    /// object, another length means another object.
    pub(super) fn check_content_length(
        &self,
        response: &Response<Body>,
        what: &str,
        expected: u64,
        whole: bool,
    ) -> Result<()> {
        let Some(value) = header_str(response, header::CONTENT_LENGTH) else {
            return Ok(());
        };
        match parse_u64(value.trim()) {
            None => Err(self.invalid(format!("{what}: non-numeric Content-Length `{value}`"))),
            Some(n) if n == expected => Ok(()),
            Some(n) if whole => Err(self.changed(format!(
                "{what}: Content-Length {n} of the whole object, was {expected} at open"
            ))),
            Some(n) => Err(self.invalid(format!(
                "{what}: Content-Length {n} for a range of {expected} bytes"
            ))),
        }
    }

    /// The response must come from the version opened.
    pub(super) fn check_validator(&self, response: &Response<Body>, what: &str) -> Result<()> {
        if let Some(version) = &self.version_in_url {
            // The URL names the version; the header, when sent, confirms it.
            if let Some(theirs) = header_str(response, version.header.clone()) {
                if theirs.trim() != version.value {
                    return Err(self.changed(format!(
                        "{what}: {} is now {}, was {} at open",
                        version.header,
                        theirs.trim(),
                        version.value
                    )));
                }
            }
            return Ok(());
        }
        if let Some(ours) = &self.etag {
            if let Some(theirs) = header_str(response, header::ETAG) {
                if !etags_match(ours, theirs) {
                    return Err(self.changed(format!(
                        "{what}: ETag is now {}, was {ours} at open",
                        theirs.trim()
                    )));
                }
            }
        } else if let (Some(ours), Some(theirs)) = (
            &self.last_modified,
            header_str(response, header::LAST_MODIFIED),
        ) {
            if ours != theirs.trim() {
                return Err(self.changed(format!(
                    "{what}: Last-Modified is now {}, was {ours} at open",
                    theirs.trim()
                )));
            }
        }
        Ok(())
    }

    /// The error for a status that is not an answer: its kind, the
    /// server's message and its `Retry-After`.
    pub(super) fn status_failure(
        &self,
        response: Response<Body>,
        range: Option<(u64, u64)>,
    ) -> Failure {
        let what = match range {
            Some((start, last)) => format!("GET bytes={start}-{last}"),
            None => "HEAD".to_owned(),
        };
        self.status_failure_as(response, what)
    }

    /// [`status_failure`](Self::status_failure) for a request described
    /// by `what`.
    pub(super) fn status_failure_as(&self, mut response: Response<Body>, what: String) -> Failure {
        let status = response.status().as_u16();
        let retry_after = header_str(&response, header::RETRY_AFTER)
            .and_then(|value| parse_retry_after(value, SystemTime::now()));
        let content_range =
            header_str(&response, header::CONTENT_RANGE).and_then(parse_content_range);
        let (message, code) = server_message(&mut response, self.google_errors);
        if let (Some(hooks), Some((code, text))) = (&self.hooks, &code) {
            if let Some(error) = hooks.error_for(status, code, text) {
                return Failure { error, retry_after };
            }
        }
        let detail = |prefix: String| {
            if message.is_empty() {
                prefix
            } else {
                format!("{prefix}: {message}")
            }
        };
        let error = match status {
            // The URL names the version opened: once it is gone, the
            // object changed (replaced or deleted) under the reader.
            404 | 410 if self.version_in_url.is_some() => self.changed(detail(format!(
                "{what}: status {status}: {} is gone",
                self.pin_description()
            ))),
            404 | 410 => Error::NotFound {
                object: self.location.clone(),
                detail: detail(format!("{what}: status {status}")),
            },
            401 | 403 => Error::PermissionDenied {
                object: self.location.clone(),
                status,
                detail: detail(what),
            },
            412 => self.changed(format!(
                "{what}: status 412 Precondition Failed: it no longer matches {}",
                self.pin_description()
            )),
            416 => match content_range {
                Some(ContentRange::Unsatisfied { total }) if total != self.len => {
                    self.changed(format!(
                        "{what}: status 416, length is now {total}, was {} at open",
                        self.len
                    ))
                }
                _ => Error::HttpStatus {
                    object: self.location.clone(),
                    status,
                    detail: detail(what),
                },
            },
            _ => Error::HttpStatus {
                object: self.location.clone(),
                status,
                detail: detail(what),
            },
        };
        Failure { error, retry_after }
    }

    pub(super) fn pin_description(&self) -> String {
        if let Some(version) = &self.version_in_url {
            return format!("{} {}", version.name, version.value);
        }
        match &self.pin {
            Some((name, value)) => {
                let name = if name == header::IF_MATCH {
                    "If-Match"
                } else {
                    "If-Unmodified-Since"
                };
                format!("{name}: {}", value.to_str().unwrap_or("(not text)"))
            }
            None => "the version opened".to_owned(),
        }
    }

    /// Maps a failure to get a response (or to read its body) from ureq.
    pub(super) fn transport_error(&self, err: ureq::Error, what: &str) -> Error {
        let context = || format!("{what} {}", self.location);
        match err {
            ureq::Error::Timeout(timeout) => {
                let limit = match timeout {
                    ureq::Timeout::Connect => self
                        .connect_timeout
                        .map(|t| format!(" of {t:?}"))
                        .unwrap_or_default(),
                    ureq::Timeout::PerRead => self
                        .read_timeout
                        .map(|t| format!(" of {t:?} without data"))
                        .unwrap_or_default(),
                    _ => String::new(),
                };
                Error::TimedOut {
                    object: self.location.clone(),
                    detail: format!("{what}: {timeout} timeout{limit}"),
                }
            }
            ureq::Error::Io(err)
                if matches!(
                    err.kind(),
                    io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
                ) =>
            {
                Error::TimedOut {
                    object: self.location.clone(),
                    detail: format!("{what}: {}", escape_control(&err.to_string())),
                }
            }
            ureq::Error::Io(err) => Error::io(context(), err),
            ureq::Error::HostNotFound => Error::io(
                context(),
                io::Error::new(io::ErrorKind::HostUnreachable, "host not found"),
            ),
            ureq::Error::Protocol(err) => self.invalid(format!("{what}: {err}")),
            ureq::Error::BadUri(reason) => Error::InvalidLocation {
                location: self.location.clone(),
                reason,
            },
            ureq::Error::TooManyRedirects => self.invalid(format!("{what}: too many redirects")),
            ureq::Error::StatusCode(status) => Error::HttpStatus {
                object: self.location.clone(),
                status,
                detail: what.to_owned(),
            },
            other => Error::io(context(), io::Error::other(other.to_string())),
        }
    }

    /// Maps an error reading a body: a connection that ended or broke is a
    /// truncated body (retried, resuming where it broke).
    pub(super) fn body_error(
        &self,
        err: io::Error,
        what: &str,
        offset: u64,
        expected: usize,
        received: usize,
    ) -> Error {
        match ureq::Error::from(err) {
            ureq::Error::Io(err)
                if matches!(
                    err.kind(),
                    io::ErrorKind::UnexpectedEof
                        | io::ErrorKind::ConnectionReset
                        | io::ErrorKind::ConnectionAborted
                        | io::ErrorKind::BrokenPipe
                ) =>
            {
                log::debug!("{what} {}: body broken: {err}", self.location);
                self.truncated(offset, expected, received)
            }
            other => self.transport_error(other, what),
        }
    }
}

/// The start of an error body, when it is text meant for people or
/// programs (XML, JSON, plain text) rather than an HTML page: with
/// `google_errors`, the `error.message` of a Google JSON error body; for an
/// S3-style XML error, `Code: Message` and the two apart.
fn server_message(
    response: &mut Response<Body>,
    google_errors: bool,
) -> (String, Option<(String, String)>) {
    let textual = header_str(response, header::CONTENT_TYPE).is_some_and(|ct| {
        let ct = ct.to_ascii_lowercase();
        ct.contains("xml") || ct.contains("json") || ct.starts_with("text/plain")
    });
    if !textual {
        return (String::new(), None);
    }
    let mut bytes = Vec::new();
    let _ = response
        .body_mut()
        .as_reader()
        .take(ERROR_BODY_LIMIT)
        .read_to_end(&mut bytes);
    if google_errors {
        if let Some(message) = google_error_message(&bytes) {
            return (excerpt(message.as_bytes()), None);
        }
    }
    let xml = xml_error(&bytes).map(|(code, message)| {
        (
            escape_control(&code).into_owned(),
            excerpt(message.as_bytes()),
        )
    });
    match xml {
        Some((code, message)) if message.is_empty() => (code.clone(), Some((code, message))),
        Some((code, message)) => (format!("{code}: {message}"), Some((code, message))),
        None => (excerpt(&bytes), None),
    }
}
