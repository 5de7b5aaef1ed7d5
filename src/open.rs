//! [`open`] and [`open_source`]: a reader or a source from a location
//! string, whatever its scheme; [`OpenOptions`] for the same with chosen
//! network timeouts.

use std::path::PathBuf;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::reader::PrefetchReader;
use crate::source::http::{percent_decode, redact_url};
use crate::source::{FileSource, GcsSource, HttpSource, RangeSource, S3Source};
#[cfg(doc)]
use crate::source::{
    GcsSourceBuilder, HttpSourceBuilder, DEFAULT_CONNECT_TIMEOUT, DEFAULT_READ_TIMEOUT,
    DEFAULT_TAIL, MAX_TAIL,
};

/// Opens `location` and returns a reader over it with every default
/// setting: the one reader type for every kind of location
/// (see [`open_source`] for which).
///
/// ```no_run
/// use std::io::Read;
///
/// let mut reader = prefetch_reader::open("https://example.com/big.bin")?;
/// let mut first = [0; 4];
/// reader.read_exact(&mut first)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Errors
///
/// Those of [`open_source`], and [`Error::Io`] if the reader cannot start.
pub fn open(location: &str) -> Result<PrefetchReader> {
    PrefetchReader::new(open_source(location)?)
}

/// Opens the object at `location` as a boxed [`RangeSource`], to build a
/// reader with chosen settings:
///
/// - `http://…` and `https://…`: an [`HttpSource`] with default settings;
/// - `gs://bucket/object`: a [`GcsSource`] with default settings (the
///   endpoint from `STORAGE_EMULATOR_HOST` when set, the token from
///   `GOOGLE_OAUTH_ACCESS_TOKEN`; see [`GcsSource`]);
/// - `s3://bucket/key`: an [`S3Source`], settings from the environment;
/// - `file:///path` (or `file://localhost/path`): a [`FileSource`];
/// - anything without `scheme://`: a local path, as a [`FileSource`].
///
/// [`OpenOptions::open_source`] does the same with chosen timeouts.
///
/// ```
/// use prefetch_reader::{open_source, PrefetchReader};
///
/// # let dir = tempfile::tempdir()?;
/// # let path = dir.path().join("data.bin");
/// # std::fs::write(&path, b"hello")?;
/// let source = open_source(path.to_str().unwrap())?;
/// assert_eq!(source.len(), 5);
/// let reader = PrefetchReader::builder().concurrency(4).build(source)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Errors
///
/// [`Error::InvalidLocation`] for an empty location, an unknown scheme or
/// a malformed URL (naming what is wrong), and the errors of opening the
/// object.
pub fn open_source(location: &str) -> Result<Box<dyn RangeSource>> {
    OpenOptions::new().open_source(location)
}

/// [`open`], asking for the object's last `n` bytes in the open's own
/// request (HTTP(S), `gs://` and `s3://`; see [`HttpSourceBuilder::tail`]
/// and [`GcsSourceBuilder::tail`]) and keeping them: opening a zip or parquet file and reading its directory
/// or footer is one request, one round trip. [`DEFAULT_TAIL`] (64 KiB)
/// holds most footers.
///
/// ```no_run
/// use std::io::{Read, Seek, SeekFrom};
///
/// let mut reader = prefetch_reader::open_tail("https://example.com/a.zip", 64 * 1024)?;
/// let mut end = [0; 22];
/// reader.seek(SeekFrom::End(-22))?;
/// reader.read_exact(&mut end)?; // no request: the open brought it
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Errors
///
/// Those of [`open`], and [`Error::InvalidConfig`] for `n` of 0 or over
/// [`MAX_TAIL`].
pub fn open_tail(location: &str, n: u64) -> Result<PrefetchReader> {
    OpenOptions::new().tail(n).open(location)
}

/// Settings for opening a location: [`open`] and [`open_source`] with
/// chosen network timeouts. The timeouts apply to HTTP(S), `gs://` and
/// `s3://` locations (a local file has none); every other setting of those
/// sources is its default, as with [`open_source`].
///
/// ```no_run
/// use prefetch_reader::OpenOptions;
/// use std::time::Duration;
///
/// let source = OpenOptions::new()
///     .connect_timeout(Duration::from_secs(3))
///     .read_timeout(Duration::from_millis(2500))
///     .open_source("https://example.com/big.bin")?;
/// # Ok::<(), prefetch_reader::Error>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OpenOptions {
    connect_timeout: Option<Duration>,
    read_timeout: Option<Duration>,
    tail: Option<u64>,
}

impl OpenOptions {
    /// Every setting at its default: the same as [`open_source`].
    pub fn new() -> OpenOptions {
        OpenOptions::default()
    }

    /// How long connecting to a server may take before the attempt is
    /// [`Error::TimedOut`] (and retried). Defaults to
    /// [`DEFAULT_CONNECT_TIMEOUT`] (10 s). Must be more than zero.
    pub fn connect_timeout(&mut self, timeout: Duration) -> &mut Self {
        self.connect_timeout = Some(timeout);
        self
    }

    /// How long a response may stall (no byte of headers or body arriving)
    /// before it is [`Error::TimedOut`] (and retried). Defaults to
    /// [`DEFAULT_READ_TIMEOUT`] (30 s). Must be more than zero.
    pub fn read_timeout(&mut self, timeout: Duration) -> &mut Self {
        self.read_timeout = Some(timeout);
        self
    }

    /// Asks for the object's last `n` bytes in the open's own request and
    /// keeps them, for HTTP(S), `gs://` and `s3://` locations
    /// ([`open_tail`]; see [`HttpSourceBuilder::tail`] and
    /// [`GcsSourceBuilder::tail`]: a `gs://` object's media download gives
    /// its generation, so no metadata request is needed). A local file
    /// reads what it is asked.
    pub fn tail(&mut self, n: u64) -> &mut Self {
        self.tail = Some(n);
        self
    }

    /// Opens `location` and returns a reader over it with every default
    /// reader setting; see [`open`].
    ///
    /// # Errors
    ///
    /// Those of [`open_source`](Self::open_source), and [`Error::Io`] if
    /// the reader cannot start.
    pub fn open(&self, location: &str) -> Result<PrefetchReader> {
        PrefetchReader::new(self.open_source(location)?)
    }

    /// Opens the object at `location` as a boxed [`RangeSource`] with these
    /// timeouts; which source a location gets is as in [`open_source`].
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] for a zero timeout, and the errors of
    /// [`open_source`].
    pub fn open_source(&self, location: &str) -> Result<Box<dyn RangeSource>> {
        self.check()?;
        // The three network builders take the same two settings.
        macro_rules! open_with_timeouts {
            ($builder:expr) => {{
                let mut builder = $builder;
                if let Some(timeout) = self.connect_timeout {
                    builder.connect_timeout(timeout);
                }
                if let Some(timeout) = self.read_timeout {
                    builder.read_timeout(timeout);
                }
                Box::new(builder.open(location)?)
            }};
        }
        Ok(match parse_location(location)? {
            Location::Http => open_with_timeouts!({
                let mut builder = HttpSource::builder();
                if let Some(n) = self.tail {
                    builder.tail(n);
                }
                builder
            }),
            Location::Gcs => open_with_timeouts!({
                let mut builder = GcsSource::builder();
                if let Some(n) = self.tail {
                    builder.tail(n);
                }
                builder
            }),
            Location::S3 => open_with_timeouts!({
                let mut builder = S3Source::builder();
                if let Some(n) = self.tail {
                    builder.tail(n);
                }
                builder
            }),
            Location::Path(path) => Box::new(FileSource::open(path)?),
        })
    }

    /// A zero timeout would fail every request at once.
    fn check(&self) -> Result<()> {
        for (setting, timeout) in [
            ("connect_timeout", self.connect_timeout),
            ("read_timeout", self.read_timeout),
        ] {
            if timeout == Some(Duration::ZERO) {
                return Err(Error::InvalidConfig {
                    setting,
                    reason: "must be more than zero".to_owned(),
                });
            }
        }
        Ok(())
    }
}

/// What a location names.
#[derive(Debug, PartialEq, Eq)]
enum Location {
    Http,
    Gcs,
    S3,
    Path(PathBuf),
}

/// Schemes a location may use: listed so that `http:/host` (one slash) is
/// an error, not a relative path.
const KNOWN_SCHEMES: &[&str] = &["http", "https", "file", "gs", "s3"];

fn parse_location(location: &str) -> Result<Location> {
    let invalid = |reason: String| Error::InvalidLocation {
        location: redact_url(location),
        reason,
    };
    if location.is_empty() {
        return Err(invalid("empty location".to_owned()));
    }
    let Some((scheme, rest)) = split_scheme(location) else {
        return Ok(Location::Path(PathBuf::from(location)));
    };
    let Some(rest) = rest.strip_prefix("//") else {
        return Err(invalid(format!(
            "malformed URL: expected `{scheme}://` after the scheme"
        )));
    };
    match scheme.to_ascii_lowercase().as_str() {
        "http" | "https" => Ok(Location::Http),
        "gs" => Ok(Location::Gcs),
        "file" => file_url_path(rest).map(Location::Path).map_err(invalid),
        "s3" => Ok(Location::S3),
        other => Err(invalid(format!(
            "unsupported scheme `{other}` (supported: http, https, gs, s3, file, or a plain path)"
        ))),
    }
}

/// The scheme of `scheme://…`, or of `known-scheme:…`; `None` for a path
/// (a Windows drive letter `C:` is a path, not a scheme).
fn split_scheme(location: &str) -> Option<(&str, &str)> {
    let (scheme, rest) = location.split_once(':')?;
    let well_formed = scheme.len() > 1
        && scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    let known = KNOWN_SCHEMES
        .iter()
        .any(|known| known.eq_ignore_ascii_case(scheme));
    (well_formed && (rest.starts_with("//") || known)).then_some((scheme, rest))
}

/// The path of a `file://` URL after the `//`.
fn file_url_path(rest: &str) -> std::result::Result<PathBuf, String> {
    let (host, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => return Err("a file URL needs an absolute path: `file:///path`".to_owned()),
    };
    if !host.is_empty() && !host.eq_ignore_ascii_case("localhost") {
        return Err(format!(
            "file URL with host `{host}`: only local files (`file:///path`) are supported"
        ));
    }
    Ok(PathBuf::from(percent_decode(path)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason(location: &str) -> String {
        match parse_location(location) {
            Err(Error::InvalidLocation { reason, .. }) => reason,
            other => panic!("{location}: {other:?}"),
        }
    }

    #[test]
    fn http_and_https_urls_are_http() {
        assert_eq!(parse_location("http://h/x").unwrap(), Location::Http);
        assert_eq!(parse_location("HTTPS://h/x").unwrap(), Location::Http);
    }

    #[test]
    fn s3_urls_are_s3() {
        assert_eq!(parse_location("s3://bucket/key").unwrap(), Location::S3);
        assert_eq!(parse_location("S3://bucket/a b?#").unwrap(), Location::S3);
        assert!(reason("s3:bucket/key").contains("expected `s3://`"));
    }

    #[test]
    fn plain_paths_are_paths() {
        for path in [
            "data.bin",
            "/tmp/a b.bin",
            "./x:y",
            "C:\\data\\x.bin",
            "dir/file",
        ] {
            assert_eq!(
                parse_location(path).unwrap(),
                Location::Path(PathBuf::from(path)),
                "{path}"
            );
        }
    }

    #[test]
    fn file_urls_are_decoded_paths() {
        assert_eq!(
            parse_location("file:///tmp/a%20b.bin").unwrap(),
            Location::Path(PathBuf::from("/tmp/a b.bin"))
        );
        assert_eq!(
            parse_location("file://localhost/tmp/x").unwrap(),
            Location::Path(PathBuf::from("/tmp/x"))
        );
        assert!(reason("file://server/share/x").contains("host `server`"));
        assert!(reason("file://").contains("absolute path"));
    }

    #[test]
    fn unknown_schemes_are_named() {
        assert!(reason("ftp://host/x").contains("unsupported scheme `ftp`"));
        assert!(reason("sftp://host/x").contains("supported: http, https, gs, s3, file"));
    }

    #[test]
    fn gs_locations_are_gcs() {
        assert_eq!(parse_location("gs://bucket/a/b").unwrap(), Location::Gcs);
        assert_eq!(parse_location("GS://bucket/x").unwrap(), Location::Gcs);
        assert!(reason("gs:bucket/x").contains("expected `gs://`"));
    }

    #[test]
    fn incomplete_gs_locations_are_invalid_naming_what_is_missing() {
        for (location, missing) in [
            ("gs://", "no bucket name"),
            ("gs:///obj", "no bucket name"),
            ("gs://bucket", "no object name"),
            ("gs://bucket/", "no object name"),
        ] {
            match open_source(location) {
                Err(Error::InvalidLocation { reason, .. }) => {
                    assert!(reason.contains(missing), "{location}: {reason}")
                }
                other => panic!("{location}: {other:?}"),
            }
        }
    }

    #[test]
    fn a_known_scheme_without_slashes_is_malformed() {
        assert!(reason("http:/host/x").contains("expected `http://`"));
        assert!(reason("https:host").contains("expected `https://`"));
    }

    #[test]
    fn a_zero_timeout_is_invalid_config() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x");
        std::fs::write(&path, b"abc").unwrap();
        let location = path.to_str().unwrap();
        for (options, name) in [
            (
                OpenOptions::new().connect_timeout(Duration::ZERO).clone(),
                "connect_timeout",
            ),
            (
                OpenOptions::new().read_timeout(Duration::ZERO).clone(),
                "read_timeout",
            ),
        ] {
            match options.open_source(location) {
                Err(Error::InvalidConfig { setting, .. }) => assert_eq!(setting, name),
                other => panic!("{name}: {other:?}"),
            }
        }
        let source = OpenOptions::new()
            .connect_timeout(Duration::from_millis(1500))
            .read_timeout(Duration::from_secs(1))
            .open_source(location)
            .unwrap();
        assert_eq!(source.len(), 3);
    }

    #[test]
    fn an_empty_location_is_invalid() {
        assert_eq!(reason(""), "empty location");
    }

    #[test]
    fn a_secret_in_a_rejected_location_is_redacted() {
        let err = parse_location("ftp://me:hunter2@host/x?token=abc").unwrap_err();
        let message = err.to_string();
        assert!(
            !message.contains("hunter2") && !message.contains("abc"),
            "{message}"
        );
    }
}
