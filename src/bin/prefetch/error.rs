//! The command's error: one line for `prefetch: …`, naming the object and
//! the cause.

use std::fmt;
use std::io;

/// A specialized `Result` for the command.
pub(crate) type Result<T, E = Error> = std::result::Result<T, E>;

/// What ended a command: printed as `prefetch: {message}`, exit code 1 —
/// except a closed stdout, which is a normal end (`prefetch cat … | head`).
#[derive(Debug)]
pub(crate) enum Error {
    /// A failure, in words naming the thing at fault and the cause.
    Message(String),
    /// Whoever read stdout stopped reading: stop quietly, exit code 0.
    StdoutClosed,
}

impl Error {
    /// An error with this message (lowercase, naming the thing at fault).
    pub(crate) fn msg(message: impl fmt::Display) -> Error {
        Error::Message(message.to_string())
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Message(message) => f.write_str(message),
            Error::StdoutClosed => f.write_str("stdout closed"),
        }
    }
}

impl std::error::Error for Error {}

impl From<prefetch_reader::Error> for Error {
    fn from(err: prefetch_reader::Error) -> Error {
        // The library's messages already name the object and the cause.
        Error::Message(err.to_string())
    }
}

/// The message of an error that came out of a reader: the library's own
/// error when it carries one (it names the object), else `object: error`
/// with the object's location redacted.
pub(crate) fn read_error(object: &str, err: io::Error) -> Error {
    let carries_ours = err
        .get_ref()
        .is_some_and(|inner| inner.is::<prefetch_reader::Error>());
    if carries_ours {
        Error::from(prefetch_reader::Error::from_io(err))
    } else {
        Error::msg(format_args!("{}: {err}", prefetch_reader::redact(object)))
    }
}

/// A failed write to stdout: a closed pipe ends the command quietly, any
/// other failure is an error.
pub(crate) fn stdout_error(err: io::Error) -> Error {
    if err.kind() == io::ErrorKind::BrokenPipe {
        Error::StdoutClosed
    } else {
        Error::msg(format_args!("cannot write to stdout: {err}"))
    }
}
