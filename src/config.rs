//! Settings, their defaults and validation, and [`ReaderBuilder`].

use std::fmt;
use std::sync::Arc;

use rayon::ThreadPool;

use crate::budget::MemoryBudget;
use crate::error::{Error, Result};
use crate::prefetch::policy::{Advice, Limits};
use crate::reader::PrefetchReader;
use crate::source::RangeSource;

const KIB: u64 = 1 << 10;
const MIB: u64 = 1 << 20;

/// Default number of range requests in flight per reader: 16.
///
/// Cloud object stores cap each connection at roughly 25–100 MiB/s; sixteen
/// of them fill a multi-gigabit link, as gcsfs and s3transfer default to.
pub const DEFAULT_CONCURRENCY: usize = 16;

/// Default cap on bytes allocated for blocks ahead of and behind the reader:
/// 256 MiB.
///
/// Read-ahead parts are sized so the window holds one per connection plus
/// the block being read: at the default concurrency that is 15 MiB parts,
/// which keep a 20 ms, 50 MiB/s connection about 94 % busy (gcsfs also
/// prefetches up to 256 MiB). Twice the memory buys 30 MiB parts, 97 %.
pub const DEFAULT_MAX_PREFETCH: u64 = 256 * MIB;

/// Default smallest read-ahead request: 1 MiB.
///
/// Below that a request's round trip (5–50 ms) costs more than its
/// transfer, so read-ahead never splits a block into smaller parts. The
/// first request after open or a hard seek is not read-ahead and may be
/// smaller (see [`DEFAULT_FIRST_REQUEST_SIZE`]).
pub const DEFAULT_MIN_PART_SIZE: u64 = MIB;

/// Default largest request: 64 MiB.
///
/// Parts are normally limited by `max_prefetch` (one per connection must fit
/// in the window) long before this; it bounds the requests a caller's large
/// reads make.
pub const DEFAULT_MAX_PART_SIZE: u64 = 64 * MIB;

/// Default smallest first request after open or a hard seek: 16 KiB.
///
/// Fixed rather than adapted, so what a read costs is predictable: random
/// 4 KiB reads fetch at most 4× what they read, a small header costs one
/// 16 KiB request, and the first byte comes back in one round trip on any
/// link. Readers that go on reading earn larger requests from what they
/// consume (see [`Advice::Normal`](crate::Advice::Normal)).
pub const DEFAULT_FIRST_REQUEST_SIZE: u64 = 16 * KIB;

/// Default window kept behind the reader: 1 MiB.
///
/// zip, tar and parquet readers seek back a little (to a header, a footer);
/// such seeks are served from memory without a request, as Mountpoint does
/// with the same size.
pub const DEFAULT_WINDOW_BEHIND: u64 = MIB;

/// The largest `concurrency`: well past what one reader can use (the shared
/// I/O pool has [`IO_THREADS`](crate::IO_THREADS) threads), low enough that
/// a mistaken setting cannot make the reader allocate per-request state for
/// millions of requests.
pub const MAX_CONCURRENCY: usize = 1024;

/// The largest value of any byte-count setting: 1 TiB. Far beyond any
/// useful buffer, and low enough that sums of settings cannot overflow.
pub const MAX_SETTING_BYTES: u64 = 1 << 40;

/// The largest `max_part_size`: 4 GiB. A part is one buffer, mapped
/// whole when it is requested (its pages come as its bytes arrive), so it
/// must fit in the address space.
pub const MAX_PART_SIZE_LIMIT: u64 = 4 << 30;

/// Validated settings of one reader.
#[derive(Clone)]
pub(crate) struct Config {
    pub(crate) concurrency: usize,
    pub(crate) max_prefetch: u64,
    pub(crate) min_part_size: u64,
    pub(crate) max_part_size: u64,
    pub(crate) first_request_size: u64,
    pub(crate) window_behind: u64,
    pub(crate) advice: Advice,
    pub(crate) io_pool: Option<Arc<ThreadPool>>,
    pub(crate) budget: Option<MemoryBudget>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            concurrency: DEFAULT_CONCURRENCY,
            max_prefetch: DEFAULT_MAX_PREFETCH,
            min_part_size: DEFAULT_MIN_PART_SIZE,
            max_part_size: DEFAULT_MAX_PART_SIZE,
            first_request_size: DEFAULT_FIRST_REQUEST_SIZE,
            window_behind: DEFAULT_WINDOW_BEHIND,
            advice: Advice::Normal,
            io_pool: None,
            budget: None,
        }
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("concurrency", &self.concurrency)
            .field("max_prefetch", &self.max_prefetch)
            .field("min_part_size", &self.min_part_size)
            .field("max_part_size", &self.max_part_size)
            .field("first_request_size", &self.first_request_size)
            .field("window_behind", &self.window_behind)
            .field("advice", &self.advice)
            .field("io_pool", &self.io_pool.as_ref().map(|_| "custom"))
            .field("budget", &self.budget)
            .finish()
    }
}

impl Config {
    /// The numbers the prefetch policy decides within.
    pub(crate) fn limits(&self) -> Limits {
        Limits {
            concurrency: self.concurrency,
            max_prefetch: self.max_prefetch,
            min_part: self.min_part_size,
            max_part: self.max_part_size,
            first_request: self.first_request_size,
            window_behind: self.window_behind,
        }
    }

    fn invalid(setting: &'static str, reason: String) -> Error {
        Error::InvalidConfig { setting, reason }
    }

    /// Checks every setting and combination; the error names them.
    pub(crate) fn validate(&self) -> Result<()> {
        if self.concurrency == 0 {
            return Err(Self::invalid("concurrency", "must be at least 1".into()));
        }
        if self.concurrency > MAX_CONCURRENCY {
            return Err(Self::invalid(
                "concurrency",
                format!("must be at most {MAX_CONCURRENCY}"),
            ));
        }
        for (setting, bytes) in [
            ("max_prefetch", self.max_prefetch),
            ("min_part_size", self.min_part_size),
            ("first_request_size", self.first_request_size),
            ("window_behind", self.window_behind),
        ] {
            if bytes > MAX_SETTING_BYTES {
                return Err(Self::invalid(
                    setting,
                    format!("{bytes} bytes is over the limit of {MAX_SETTING_BYTES} (1 TiB)"),
                ));
            }
        }
        if self.max_part_size > MAX_PART_SIZE_LIMIT {
            return Err(Self::invalid(
                "max_part_size",
                format!(
                    "{} bytes is over the limit of {MAX_PART_SIZE_LIMIT} (4 GiB)",
                    self.max_part_size
                ),
            ));
        }
        if self.max_prefetch == 0 {
            return Err(Self::invalid(
                "max_prefetch",
                "must be a positive number of bytes".into(),
            ));
        }
        if self.min_part_size == 0 {
            return Err(Self::invalid(
                "min_part_size",
                "must be a positive number of bytes".into(),
            ));
        }
        if self.first_request_size == 0 {
            return Err(Self::invalid(
                "first_request_size",
                "must be a positive number of bytes".into(),
            ));
        }
        if self.min_part_size > self.max_part_size {
            return Err(Self::invalid(
                "min_part_size and max_part_size",
                format!(
                    "min_part_size ({}) exceeds max_part_size ({})",
                    self.min_part_size, self.max_part_size
                ),
            ));
        }
        if self.first_request_size > self.max_part_size {
            return Err(Self::invalid(
                "first_request_size and max_part_size",
                format!(
                    "first_request_size ({}) exceeds max_part_size ({})",
                    self.first_request_size, self.max_part_size
                ),
            ));
        }
        let floor = self.min_part_size.saturating_add(self.window_behind);
        if self.max_prefetch < floor {
            return Err(Self::invalid(
                "max_prefetch",
                format!(
                    "max_prefetch ({}) is below min_part_size ({}) plus window_behind ({})",
                    self.max_prefetch, self.min_part_size, self.window_behind
                ),
            ));
        }
        Ok(())
    }
}

/// Makes [`PrefetchReader`]s with chosen settings; one builder opens many
/// objects.
///
/// Every setting has a default, named by a constant of this crate; `build`
/// checks them all and names the one at fault.
///
/// ```
/// use prefetch_reader::{MemorySource, PrefetchReader};
///
/// let mut builder = PrefetchReader::builder();
/// builder.concurrency(4).max_prefetch(64 << 20);
/// let a = builder.build(MemorySource::new(vec![1; 10]))?;
/// let b = builder.build(MemorySource::new(vec![2; 10]))?;
///
/// let err = PrefetchReader::builder().concurrency(0).build(MemorySource::new(vec![])).unwrap_err();
/// assert!(err.to_string().contains("concurrency"));
/// # Ok::<(), prefetch_reader::Error>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct ReaderBuilder {
    config: Config,
}

impl ReaderBuilder {
    /// A builder with every default.
    pub fn new() -> ReaderBuilder {
        ReaderBuilder::default()
    }

    /// Most range requests in flight at once. Defaults to
    /// [`DEFAULT_CONCURRENCY`] (16). Must be from 1 to [`MAX_CONCURRENCY`]
    /// (1024).
    pub fn concurrency(&mut self, concurrency: usize) -> &mut Self {
        self.config.concurrency = concurrency;
        self
    }

    /// Most bytes allocated for blocks (in flight, queued, buffered and
    /// the window behind the reader), whatever the size of the reads: a
    /// read larger than the budget is served in parts that fit beside the
    /// window behind. Defaults to [`DEFAULT_MAX_PREFETCH`] (256 MiB). Must
    /// be at least `min_part_size + window_behind`.
    pub fn max_prefetch(&mut self, bytes: u64) -> &mut Self {
        self.config.max_prefetch = bytes;
        self
    }

    /// Smallest read-ahead request. Defaults to [`DEFAULT_MIN_PART_SIZE`]
    /// (1 MiB).
    pub fn min_part_size(&mut self, bytes: u64) -> &mut Self {
        self.config.min_part_size = bytes;
        self
    }

    /// Largest request. Defaults to [`DEFAULT_MAX_PART_SIZE`] (64 MiB); at
    /// most [`MAX_PART_SIZE_LIMIT`] (4 GiB). Other byte settings are at most
    /// [`MAX_SETTING_BYTES`] (1 TiB).
    pub fn max_part_size(&mut self, bytes: u64) -> &mut Self {
        self.config.max_part_size = bytes;
        self
    }

    /// Smallest first request after open or a hard seek (the read's size
    /// is rounded up to it). Defaults to [`DEFAULT_FIRST_REQUEST_SIZE`]
    /// (16 KiB).
    pub fn first_request_size(&mut self, bytes: u64) -> &mut Self {
        self.config.first_request_size = bytes;
        self
    }

    /// Bytes kept behind the reader, so short backward seeks make no
    /// request. Defaults to [`DEFAULT_WINDOW_BEHIND`] (1 MiB); 0 keeps
    /// nothing.
    pub fn window_behind(&mut self, bytes: u64) -> &mut Self {
        self.config.window_behind = bytes;
        self
    }

    /// How readers start out expecting to be read (see [`Advice`]; a
    /// reader can change it with
    /// [`PrefetchReader::advise`](crate::PrefetchReader::advise)). Defaults
    /// to [`Advice::Normal`]: read-ahead in proportion to what was read.
    pub fn advice(&mut self, advice: Advice) -> &mut Self {
        self.config.advice = advice;
        self
    }

    /// Runs range requests on `pool` instead of the crate's shared I/O
    /// pools (see [`IO_THREADS`](crate::IO_THREADS) for how those are
    /// sized). A pool of the caller's never grows: requests beyond its
    /// threads, stuck ones included, queue.
    ///
    /// A reader must not be read from a thread of its own pool (say, from
    /// inside `pool.install`): the read would wait for fetch jobs that may
    /// be queued behind it. Such a read fails with
    /// [`Error::InvalidConfig`] naming `io_pool` rather than deadlock.
    pub fn io_pool(&mut self, pool: Arc<ThreadPool>) -> &mut Self {
        self.config.io_pool = Some(pool);
        self
    }

    /// Shares `budget` with the other readers built with it: their blocks
    /// together stay within it (beyond each one's own `max_prefetch`),
    /// each keeping a floor of one block of its own. By default a reader
    /// shares nothing.
    pub fn memory_budget(&mut self, budget: &MemoryBudget) -> &mut Self {
        self.config.budget = Some(budget.clone());
        self
    }

    /// Makes a reader over `source` and starts its producer thread. No
    /// request is made until the first read.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] naming the setting at fault, or
    /// [`Error::Io`] if the producer thread cannot be started.
    pub fn build<S: RangeSource>(&self, source: S) -> Result<PrefetchReader<S>> {
        self.config.validate()?;
        PrefetchReader::start(source, self.config.clone())
    }

    /// The settings, validated: for readers other than `PrefetchReader`.
    pub(crate) fn validated(&self) -> Result<&Config> {
        self.config.validate()?;
        Ok(&self.config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(edit: impl FnOnce(&mut Config)) -> Result<()> {
        let mut config = Config::default();
        edit(&mut config);
        config.validate()
    }

    fn setting_of(result: Result<()>) -> &'static str {
        match result {
            Err(Error::InvalidConfig { setting, .. }) => setting,
            other => panic!("expected an invalid setting, got {other:?}"),
        }
    }

    #[test]
    fn defaults_are_valid() {
        check(|_| {}).expect("defaults");
    }

    #[test]
    fn zero_settings_are_errors_naming_them() {
        assert_eq!(setting_of(check(|c| c.concurrency = 0)), "concurrency");
        assert_eq!(setting_of(check(|c| c.max_prefetch = 0)), "max_prefetch");
        assert_eq!(setting_of(check(|c| c.min_part_size = 0)), "min_part_size");
        assert_eq!(
            setting_of(check(|c| c.first_request_size = 0)),
            "first_request_size"
        );
    }

    #[test]
    fn max_prefetch_below_min_part_plus_window_behind_is_an_error_naming_both() {
        let err = check(|c| c.max_prefetch = MIB).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("min_part_size") && text.contains("window_behind"),
            "{text}"
        );
    }

    #[test]
    fn part_sizes_out_of_order_are_an_error() {
        assert_eq!(
            setting_of(check(|c| c.first_request_size = c.max_part_size + 1)),
            "first_request_size and max_part_size"
        );
        assert_eq!(
            setting_of(check(|c| c.min_part_size = c.max_part_size + 1)),
            "min_part_size and max_part_size"
        );
    }
}
