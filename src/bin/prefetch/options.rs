//! The settings every reading command takes, and opening a location with
//! them.

use std::ops::Range;
use std::time::{Duration, Instant};

use crossbeam_channel::RecvTimeoutError;

use prefetch_reader::{
    OpenOptions, PrefetchReader, RangeSource, ReaderBuilder, DEFAULT_CONCURRENCY,
    DEFAULT_MIN_PART_SIZE, DEFAULT_WINDOW_BEHIND, MAX_CONCURRENCY,
};

use crate::error::{Error, Result};
use crate::range::ByteRange;
use crate::slice::Slice;
use crate::units::{parse_size, short_size};

/// An object opened for reading some of its bytes.
pub(crate) struct Opened {
    /// Reads the range, at offsets from 0 to its length.
    pub(crate) reader: PrefetchReader,
    /// The range, as offsets in the object.
    pub(crate) range: Range<u64>,
    /// The object's length.
    pub(crate) object_len: u64,
}

/// How long opening a location may wait on a silent server before `-v`
/// says so (then again after twice as long, and so on).
const SILENCE_FIRST_NOTE: Duration = Duration::from_secs(5);

/// `--concurrency`, `--max-prefetch`, `--connect-timeout` and
/// `--read-timeout`.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct ReadOptions {
    /// Most range requests in flight at once.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_CONCURRENCY,
          value_parser = parse_concurrency)]
    pub(crate) concurrency: usize,

    /// Most memory for blocks fetched ahead of (and kept behind) the reader,
    /// e.g. 64M or 1G; at least 2M.
    #[arg(long, value_name = "SIZE", default_value = DEFAULT_MAX_PREFETCH_FLAG,
          value_parser = parse_max_prefetch)]
    pub(crate) max_prefetch: u64,

    /// Seconds connecting to a server may take before the attempt times out
    /// (and is retried), e.g. 2.5; HTTP(S), gs:// and s3:// locations.
    #[arg(long, value_name = "SECS", default_value = DEFAULT_CONNECT_TIMEOUT_FLAG,
          allow_negative_numbers = true,
          value_parser = parse_timeout)]
    pub(crate) connect_timeout: Duration,

    /// Seconds a response may stall (no byte arriving) before the request
    /// times out (and is retried), e.g. 0.5; HTTP(S), gs:// and s3://
    /// locations.
    #[arg(long, value_name = "SECS", default_value = DEFAULT_READ_TIMEOUT_FLAG,
          allow_negative_numbers = true,
          value_parser = parse_timeout)]
    pub(crate) read_timeout: Duration,
}

fn parse_concurrency(text: &str) -> std::result::Result<usize, String> {
    match text.parse::<usize>() {
        Ok(0) => Err("must be at least 1".to_owned()),
        Ok(n) if n > MAX_CONCURRENCY => Err(format!("must be at most {MAX_CONCURRENCY}")),
        Ok(n) => Ok(n),
        Err(_) => Err(format!("`{text}` is not a number of requests")),
    }
}

/// `DEFAULT_MAX_PREFETCH` as `--max-prefetch` shows it (clap needs a
/// `&'static str`; a test checks the two agree).
const DEFAULT_MAX_PREFETCH_FLAG: &str = "256M";

/// The smallest `--max-prefetch`: one smallest part plus the window kept
/// behind the reader.
const MIN_MAX_PREFETCH: u64 = DEFAULT_MIN_PART_SIZE + DEFAULT_WINDOW_BEHIND;

fn parse_max_prefetch(text: &str) -> std::result::Result<u64, String> {
    let bytes = parse_size(text)?;
    if bytes < MIN_MAX_PREFETCH {
        return Err(format!(
            "`{text}`: must be at least {} (a {} part plus the {} kept behind the reader)",
            short_size(MIN_MAX_PREFETCH),
            short_size(DEFAULT_MIN_PART_SIZE),
            short_size(DEFAULT_WINDOW_BEHIND)
        ));
    }
    Ok(bytes)
}

/// `DEFAULT_CONNECT_TIMEOUT` and `DEFAULT_READ_TIMEOUT` in seconds, as
/// the flags show them (a test checks they agree).
const DEFAULT_CONNECT_TIMEOUT_FLAG: &str = "10";
const DEFAULT_READ_TIMEOUT_FLAG: &str = "30";

/// The longest timeout, in seconds (a day): far past any useful wait, and
/// short enough that no clock arithmetic overflows.
const MAX_TIMEOUT_SECS: f64 = 86_400.0;

fn parse_timeout(text: &str) -> std::result::Result<Duration, String> {
    let secs = text
        .trim()
        .parse::<f64>()
        .map_err(|_| format!("`{text}` is not a number of seconds"))?;
    if !secs.is_finite() {
        return Err(format!("`{text}`: must be a finite number of seconds"));
    }
    if secs > MAX_TIMEOUT_SECS {
        return Err(format!(
            "`{text}`: must be at most {MAX_TIMEOUT_SECS} (a day)"
        ));
    }
    match Duration::try_from_secs_f64(secs) {
        Ok(timeout) if !timeout.is_zero() => Ok(timeout),
        _ => Err(format!("`{text}`: must be more than zero seconds")),
    }
}

impl ReadOptions {
    /// A reader builder with these settings.
    pub(crate) fn builder(&self) -> ReaderBuilder {
        let mut builder = PrefetchReader::builder();
        builder
            .concurrency(self.concurrency)
            .max_prefetch(self.max_prefetch);
        builder
    }

    /// How to open a location with these timeouts.
    pub(crate) fn open_options(&self) -> OpenOptions {
        let mut options = OpenOptions::new();
        options
            .connect_timeout(self.connect_timeout)
            .read_timeout(self.read_timeout);
        options
    }

    /// Opens `location` (a URL or a path) as a source with these timeouts,
    /// saying at `-v` what it waits for when the server stays silent.
    pub(crate) fn open_source(&self, location: &str) -> Result<Box<dyn RangeSource>> {
        let (opened, waiting) = crossbeam_channel::bounded::<()>(0);
        std::thread::scope(|scope| {
            scope.spawn(|| self.note_silence(location, &waiting));
            let source = self.open_options().open_source(location);
            drop(opened);
            Ok(source?)
        })
    }

    /// Logs, after [`SILENCE_FIRST_NOTE`] and then at doubling intervals
    /// until `opened` disconnects, that the open of `location` is still
    /// waiting for the server.
    fn note_silence(&self, location: &str, opened: &crossbeam_channel::Receiver<()>) {
        let started = Instant::now();
        let mut patience = SILENCE_FIRST_NOTE;
        while let Err(RecvTimeoutError::Timeout) =
            opened.recv_timeout(patience.saturating_sub(started.elapsed()))
        {
            log::info!(
                "{}: no answer to the open after {} s (connect timeout {} s, read timeout {} s, \
                 each attempt; failed attempts are retried)",
                prefetch_reader::redact(location),
                started.elapsed().as_secs(),
                self.connect_timeout.as_secs_f64(),
                self.read_timeout.as_secs_f64()
            );
            patience = patience.saturating_mul(2);
        }
    }

    /// Opens `location` (a URL or a path) and makes a reader over the
    /// bytes `range` names (the whole object without one): a reader of a
    /// range reads it as an object of its own, so it never reads ahead
    /// past the range's end.
    ///
    /// # Errors
    ///
    /// Those of opening, and a range the object cannot satisfy.
    pub(crate) fn open_range(&self, location: &str, range: Option<ByteRange>) -> Result<Opened> {
        let source = self.open_source(location)?;
        let object_len = source.len();
        log::info!("{}: {object_len} bytes", prefetch_reader::redact(location));
        let range = match range {
            Some(range) => range.resolve(object_len).map_err(|why| {
                Error::msg(format_args!("{}: {why}", prefetch_reader::redact(location)))
            })?,
            None => 0..object_len,
        };
        let source: Box<dyn RangeSource> = if range == (0..object_len) {
            source
        } else {
            Box::new(Slice::new(source, range.clone()))
        };
        Ok(Opened {
            reader: self.builder().build(source)?,
            range,
            object_len,
        })
    }

    /// Opens `location` (a URL or a path) and makes a reader over it.
    pub(crate) fn open(&self, location: &str) -> Result<PrefetchReader> {
        Ok(self.open_range(location, None)?.reader)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prefetch_reader::{DEFAULT_CONNECT_TIMEOUT, DEFAULT_MAX_PREFETCH, DEFAULT_READ_TIMEOUT};

    #[test]
    fn the_timeout_defaults_are_the_library_defaults() {
        assert_eq!(
            parse_timeout(DEFAULT_CONNECT_TIMEOUT_FLAG),
            Ok(DEFAULT_CONNECT_TIMEOUT)
        );
        assert_eq!(
            parse_timeout(DEFAULT_READ_TIMEOUT_FLAG),
            Ok(DEFAULT_READ_TIMEOUT)
        );
    }

    #[test]
    fn timeouts_take_fractions_of_a_second() {
        assert_eq!(parse_timeout("0.5"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_timeout("2"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_timeout("86400"), Ok(Duration::from_secs(86_400)));
    }

    #[test]
    fn timeouts_that_are_not_positive_and_finite_are_refused() {
        for text in [
            "0", "0.0", "-1", "-0", "1e-12", "abc", "", "inf", "NaN", "1e30",
        ] {
            assert!(parse_timeout(text).is_err(), "{text}");
        }
    }

    #[test]
    fn the_flag_default_is_the_library_default() {
        assert_eq!(
            parse_max_prefetch(DEFAULT_MAX_PREFETCH_FLAG),
            Ok(DEFAULT_MAX_PREFETCH)
        );
    }

    #[test]
    fn too_small_a_budget_is_refused_with_the_minimum() {
        let err = parse_max_prefetch("1M").unwrap_err();
        assert!(err.contains("at least 2M"), "{err}");
    }

    #[test]
    fn every_budget_the_flag_accepts_is_valid() {
        for max_prefetch in [MIN_MAX_PREFETCH, 8 << 20, DEFAULT_MAX_PREFETCH] {
            let options = ReadOptions {
                concurrency: 4,
                max_prefetch,
                connect_timeout: Duration::from_secs(1),
                read_timeout: Duration::from_secs(1),
            };
            let source = prefetch_reader::MemorySource::new(vec![0; 10]);
            assert!(options.builder().build(source).is_ok(), "{max_prefetch}");
        }
    }
}
