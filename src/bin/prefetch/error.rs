//! The command's error: one line for `prefetch: …`, naming the object and
//! the cause.

use std::fmt;
use std::io;

/// A specialized `Result` for the command.
pub(crate) type Result<T, E = Error> = std::result::Result<T, E>;

/// What ended a command: printed as `prefetch: {message}`, exit code 1.
#[derive(Debug)]
pub(crate) struct Error(String);

impl Error {
    /// An error with this message (lowercase, naming the thing at fault).
    pub(crate) fn msg(message: impl fmt::Display) -> Error {
        Error(message.to_string())
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

impl From<prefetch_reader::Error> for Error {
    fn from(err: prefetch_reader::Error) -> Error {
        // The library's messages already name the object and the cause.
        Error(err.to_string())
    }
}

/// The message of an error that came out of a reader: the library's own
/// error when it carries one (it names the object), else `object: error`.
pub(crate) fn read_error(object: &str, err: io::Error) -> Error {
    let carries_ours = err
        .get_ref()
        .is_some_and(|inner| inner.is::<prefetch_reader::Error>());
    if carries_ours {
        Error::from(prefetch_reader::Error::from_io(err))
    } else {
        Error::msg(format_args!("{object}: {err}"))
    }
}
