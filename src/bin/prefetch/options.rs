//! The settings every reading command takes, and opening a location with
//! them.

use prefetch_reader::{
    open_source, PrefetchReader, ReaderBuilder, DEFAULT_CONCURRENCY, DEFAULT_MIN_PART_SIZE,
    DEFAULT_WINDOW_BEHIND,
};

use crate::error::Result;
use crate::units::{parse_size, short_size};

/// `--concurrency` and `--max-prefetch`.
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
}

/// The largest `--concurrency`: well past what one reader can use (the
/// shared I/O pool has `IO_THREADS`), low enough that a typo does not
/// start a hundred thousand threads.
const MAX_CONCURRENCY: usize = 1024;

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

impl ReadOptions {
    /// A reader builder with these settings.
    pub(crate) fn builder(&self) -> ReaderBuilder {
        let mut builder = PrefetchReader::builder();
        builder
            .concurrency(self.concurrency)
            .max_prefetch(self.max_prefetch);
        builder
    }

    /// Opens `location` (a URL or a path) and makes a reader over it.
    pub(crate) fn open(&self, location: &str) -> Result<PrefetchReader> {
        let source = open_source(location)?;
        log::info!(
            "{}: {} bytes",
            prefetch_reader::redact(location),
            source.len()
        );
        Ok(self.builder().build(source)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prefetch_reader::DEFAULT_MAX_PREFETCH;

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
            };
            let source = prefetch_reader::MemorySource::new(vec![0; 10]);
            assert!(options.builder().build(source).is_ok(), "{max_prefetch}");
        }
    }
}
