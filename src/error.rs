//! The crate's one error type, and its conversions to and from `io::Error`.

use std::{fmt, io};

/// A specialized `Result` for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong while opening or reading an object.
///
/// Errors name what was wrong: the object (with secrets redacted), the
/// offset, the setting. An `Error` converts into an [`io::Error`] with a
/// fitting [`io::ErrorKind`] and the `Error` inside, so a caller holding the
/// `io::Error` that `Read::read` returned can get it back:
///
/// ```
/// use prefetch_reader::Error;
///
/// let io_err: std::io::Error = Error::Closed.into();
/// assert_eq!(io_err.kind(), std::io::ErrorKind::Other);
/// let back = Error::from_io(io_err);
/// assert!(matches!(back, Error::Closed));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A setting, or a combination of settings, is invalid.
    #[error("invalid setting `{setting}`: {reason}")]
    InvalidConfig {
        /// The setting (or settings, joined by " and ") at fault.
        setting: &'static str,
        /// Why it is invalid.
        reason: String,
    },
    /// The location (URL or path) cannot be parsed or is not supported.
    #[error("invalid location `{location}`: {reason}")]
    InvalidLocation {
        /// The location as given, with secrets redacted.
        location: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A seek to a position before the start, or past `u64::MAX`.
    #[error("invalid seek to {target} in `{object}`")]
    InvalidSeek {
        /// The object being read.
        object: String,
        /// The position asked for, relative to the start (may be negative).
        target: i128,
    },
    /// The object does not exist.
    #[error("not found: {object}{}", detail_suffix(.detail))]
    NotFound {
        /// The object, with secrets redacted.
        object: String,
        /// More from the server, if any.
        detail: String,
    },
    /// The credentials are missing or not allowed to read the object.
    #[error("permission denied (status {status}): {object}{}", detail_suffix(.detail))]
    PermissionDenied {
        /// The object, with secrets redacted.
        object: String,
        /// The HTTP status (401 or 403), or 0 for a local file.
        status: u16,
        /// More from the server, if any.
        detail: String,
    },
    /// The object changed while it was being read: its validator (ETag,
    /// generation, modification time) or its length is not the one seen at
    /// open. No byte of the new version is ever delivered.
    #[error("object changed while reading: {object}: {detail}")]
    ObjectChanged {
        /// The object, with secrets redacted.
        object: String,
        /// What differed.
        detail: String,
    },
    /// The server does not honour byte ranges as asked: an encoded body, or
    /// a read behind the one stream of a server that ignores ranges.
    #[error("range requests not supported by {object}: {detail}")]
    RangeNotSupported {
        /// The object, with secrets redacted.
        object: String,
        /// What the server did instead.
        detail: String,
    },
    /// The server answered with a status this crate does not expect.
    #[error("HTTP status {status} from {object}{}", detail_suffix(.detail))]
    HttpStatus {
        /// The object, with secrets redacted.
        object: String,
        /// The HTTP status code.
        status: u16,
        /// The server's message, if any.
        detail: String,
    },
    /// The server's response broke the protocol or contradicted itself.
    #[error("invalid response from {object}: {detail}")]
    InvalidResponse {
        /// The object, with secrets redacted.
        object: String,
        /// What was wrong with it.
        detail: String,
    },
    /// Fewer bytes arrived than the range asked for.
    #[error("truncated: {object}: expected {expected} bytes at offset {offset}, got {received}")]
    Truncated {
        /// The object, with secrets redacted.
        object: String,
        /// Offset of the range.
        offset: u64,
        /// Bytes asked for.
        expected: u64,
        /// Bytes received.
        received: u64,
    },
    /// A connect, read or total-time limit was reached.
    #[error("timed out: {object}: {detail}")]
    TimedOut {
        /// The object, with secrets redacted.
        object: String,
        /// Which limit, and how long.
        detail: String,
    },
    /// A network or file-system error.
    #[error("{context}: {source}")]
    Io {
        /// What was being done, naming the object.
        context: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The reader was closed; it reads no more.
    #[error("the reader is closed")]
    Closed,
    /// The work was cancelled (a hard seek or close abandoned it). Readers
    /// never return this for the data they are asked for; a source that
    /// returns it for another reason fails the read like any other error.
    /// As an `io::Error` its kind is `Other`, never `Interrupted` (which
    /// `read_exact` and `io::copy` would retry forever).
    #[error("cancelled")]
    Cancelled,
    /// The background producer or a fetch job ended without an answer (a
    /// panic in a source, for example).
    #[error("prefetching terminated unexpectedly: {0}")]
    Terminated(String),
}

fn detail_suffix(detail: &str) -> String {
    if detail.is_empty() {
        String::new()
    } else {
        format!(": {detail}")
    }
}

impl Error {
    /// The `io::ErrorKind` this error maps to.
    ///
    /// 404 → `NotFound`, 401/403 → `PermissionDenied`, timeouts →
    /// `TimedOut`, truncation → `UnexpectedEof`, a bad seek or setting →
    /// `InvalidInput`, a server that breaks the protocol → `InvalidData`.
    /// Never `Interrupted`: an I/O error of that kind maps to `Other`, so
    /// std's retry loops do not spin on a failing source.
    pub fn io_kind(&self) -> io::ErrorKind {
        match self {
            Error::InvalidConfig { .. }
            | Error::InvalidLocation { .. }
            | Error::InvalidSeek { .. } => io::ErrorKind::InvalidInput,
            Error::NotFound { .. } => io::ErrorKind::NotFound,
            Error::PermissionDenied { .. } => io::ErrorKind::PermissionDenied,
            Error::ObjectChanged { .. }
            | Error::RangeNotSupported { .. }
            | Error::InvalidResponse { .. } => io::ErrorKind::InvalidData,
            Error::Truncated { .. } => io::ErrorKind::UnexpectedEof,
            Error::TimedOut { .. } => io::ErrorKind::TimedOut,
            // `Interrupted` means "try again at once" to std (`read_exact`
            // and `io::copy` retry it forever), so a failure never maps to it.
            Error::Io { source, .. } if source.kind() == io::ErrorKind::Interrupted => {
                io::ErrorKind::Other
            }
            Error::Io { source, .. } => source.kind(),
            Error::HttpStatus { .. } | Error::Closed | Error::Cancelled | Error::Terminated(_) => {
                io::ErrorKind::Other
            }
        }
    }

    /// Whether retrying the same request may succeed: timeouts, truncated
    /// bodies, network errors, 408, 429 and 5xx.
    pub fn is_transient(&self) -> bool {
        match self {
            Error::TimedOut { .. } | Error::Truncated { .. } => true,
            Error::HttpStatus { status, .. } => {
                matches!(status, 408 | 429) || (500..600).contains(status)
            }
            Error::Io { source, .. } => matches!(
                source.kind(),
                io::ErrorKind::ConnectionReset
                    | io::ErrorKind::ConnectionAborted
                    | io::ErrorKind::ConnectionRefused
                    | io::ErrorKind::BrokenPipe
                    | io::ErrorKind::TimedOut
                    | io::ErrorKind::UnexpectedEof
                    | io::ErrorKind::Interrupted
            ),
            _ => false,
        }
    }

    /// Recovers this crate's error from an `io::Error` that carries one (as
    /// those from `Read`/`Seek` do); wraps any other `io::Error`.
    pub fn from_io(err: io::Error) -> Error {
        match err.downcast::<Error>() {
            Ok(ours) => ours,
            Err(other) => Error::Io {
                context: "I/O error".to_owned(),
                source: other,
            },
        }
    }

    /// An `Io` error with the context it happened in.
    pub(crate) fn io(context: impl fmt::Display, source: io::Error) -> Error {
        Error::Io {
            context: context.to_string(),
            source,
        }
    }
}

impl From<Error> for io::Error {
    fn from(err: Error) -> io::Error {
        io::Error::new(err.io_kind(), err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_error_carries_the_crate_error_and_a_fitting_kind() {
        let err = Error::NotFound {
            object: "http://host/a".into(),
            detail: String::new(),
        };
        let io_err: io::Error = err.into();
        assert_eq!(io_err.kind(), io::ErrorKind::NotFound);
        assert!(matches!(Error::from_io(io_err), Error::NotFound { .. }));
    }

    #[test]
    fn foreign_io_error_is_wrapped_with_its_kind() {
        let err = Error::from_io(io::Error::new(io::ErrorKind::ConnectionReset, "reset"));
        assert_eq!(err.io_kind(), io::ErrorKind::ConnectionReset);
        assert!(err.is_transient());
    }

    #[test]
    fn status_codes_that_may_succeed_later_are_transient() {
        let status = |status| Error::HttpStatus {
            object: "x".into(),
            status,
            detail: String::new(),
        };
        assert!(status(503).is_transient());
        assert!(status(429).is_transient());
        assert!(status(408).is_transient());
        assert!(!status(404).is_transient());
        assert!(!status(400).is_transient());
    }

    #[test]
    fn messages_name_the_setting() {
        let err = Error::InvalidConfig {
            setting: "concurrency",
            reason: "must be at least 1".into(),
        };
        assert_eq!(
            err.to_string(),
            "invalid setting `concurrency`: must be at least 1"
        );
    }
}
