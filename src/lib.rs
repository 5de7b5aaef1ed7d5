//! A blocking `Read + Seek + BufRead` over remote objects that reads at the
//! speed of the network.
//!
//! [`PrefetchReader`] wraps a [`RangeSource`] (an object with a length that
//! can fill a buffer from any offset) and, while the caller reads, fetches
//! ranges ahead of it on a pool of I/O threads, up to `concurrency` at once.
//! Hand it to anything that takes a reader (`std::io::copy`, `zip`, `tar`,
//! `flate2`, a parser) without an async runtime and without downloading the
//! whole object first.
//!
//! ```
//! use prefetch_reader::{MemorySource, PrefetchReader};
//! use std::io::{Read, Seek, SeekFrom};
//!
//! let data: Vec<u8> = (0..1_000_000u32).map(|i| i as u8).collect();
//! let mut reader = PrefetchReader::builder()
//!     .concurrency(8)
//!     .build(MemorySource::new(data.clone()))?;
//!
//! let mut copy = Vec::new();
//! std::io::copy(&mut reader, &mut copy)?;
//! assert_eq!(copy, data);
//!
//! reader.seek(SeekFrom::Start(10))?;
//! let mut ten = [0; 10];
//! reader.read_exact(&mut ten)?;
//! assert_eq!(ten[..], data[10..20]);
//! println!("{:?}", reader.stats());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Sources: [`HttpSource`] (range requests over HTTP(S)), [`GcsSource`]
//! (Google Cloud Storage objects, `gs://bucket/object`), [`S3Source`]
//! (`s3://bucket/key`, SigV4-signed), [`MemorySource`],
//! [`FileSource`] (positional reads) and [`MmapSource`] (a memory map,
//! `unsafe` to open), or your own [`RangeSource`]. [`open`] picks one from
//! a location:
//!
//! ```no_run
//! use std::io::Read;
//!
//! let mut reader = prefetch_reader::open("https://example.com/data.csv")?;
//! let mut text = String::new();
//! reader.read_to_string(&mut text)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! A caller that knows what it will read says so with
//! [`PrefetchReader::will_need`]. With the `parquet` feature,
//! `parquet::RemoteFile` is a parquet `ChunkReader` over
//! any source that fetches each column chunk it reads in one request.
#![deny(unsafe_op_in_unsafe_fn, clippy::undocumented_unsafe_blocks)]

mod budget;
mod buffers;
mod config;
mod error;
mod escape;
mod open;
#[cfg(feature = "parquet")]
pub mod parquet;
mod prefetch;
mod reader;
mod redact;
mod shared;
mod source;
mod stats;
#[cfg(feature = "testing")]
pub mod testing;

pub use budget::MemoryBudget;
pub use config::{
    ReaderBuilder, DEFAULT_CONCURRENCY, DEFAULT_FIRST_REQUEST_SIZE, DEFAULT_MAX_PART_SIZE,
    DEFAULT_MAX_PREFETCH, DEFAULT_MIN_PART_SIZE, DEFAULT_WINDOW_BEHIND, MAX_CONCURRENCY,
    MAX_PART_SIZE_LIMIT, MAX_SETTING_BYTES,
};
pub use error::{Error, Result};
pub use open::{open, open_source, open_tail, OpenOptions};
pub use prefetch::policy::Advice;
pub use prefetch::IO_THREADS;
pub use reader::PrefetchReader;
pub use redact::redact;
pub use shared::{ObjectCursor, SharedObject};
pub use source::{
    FetchContext, FileSource, GcsSource, GcsSourceBuilder, HttpSource, HttpSourceBuilder,
    MemorySource, MmapSource, PartSink, RangeSource, RetryPolicy, DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_GCS_ENDPOINT, DEFAULT_INITIAL_BACKOFF, DEFAULT_MAX_ATTEMPTS, DEFAULT_MAX_BACKOFF,
    DEFAULT_MAX_RETRY_TIME, DEFAULT_READ_TIMEOUT, DEFAULT_TAIL, DEFAULT_USER_AGENT,
    GCS_EMULATOR_HOST_ENV, GCS_TOKEN_ENV, MAX_TAIL,
};
pub use source::{S3Source, S3SourceBuilder, DEFAULT_REGION};
pub use stats::{Stats, StatsHandle};

// The README's examples run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
