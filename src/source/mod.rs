//! The [`RangeSource`] trait — what the reader needs from an object — and its
//! implementations, one per file.

use std::fmt::Debug;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::stats::Counters;

mod file;
mod gcs;
pub(crate) mod http;
mod memory;
mod mmap;
mod s3;
mod sink;

pub use file::FileSource;
pub use gcs::{
    GcsSource, GcsSourceBuilder, DEFAULT_GCS_ENDPOINT, GCS_EMULATOR_HOST_ENV, GCS_TOKEN_ENV,
};
pub use http::{
    HttpSource, HttpSourceBuilder, RetryPolicy, DEFAULT_CONNECT_TIMEOUT, DEFAULT_INITIAL_BACKOFF,
    DEFAULT_MAX_ATTEMPTS, DEFAULT_MAX_BACKOFF, DEFAULT_MAX_RETRY_TIME, DEFAULT_READ_TIMEOUT,
    DEFAULT_TAIL, DEFAULT_USER_AGENT, MAX_TAIL,
};
pub use memory::MemorySource;
pub use mmap::MmapSource;
pub use s3::{S3Source, S3SourceBuilder, DEFAULT_REGION};
pub use sink::PartSink;

/// A random-access object: something with a length that can fill a buffer
/// from any offset. [`PrefetchReader`](crate::PrefetchReader) calls it from
/// several I/O threads at once, one block per call.
///
/// # Implementer notes
///
/// - [`len`](RangeSource::len) is fixed once the source is open: the source
///   learns it (and, for remote objects, a validator that pins the version)
///   when it is made.
/// - [`read_at`](RangeSource::read_at) fills **all** of `buf` with the bytes
///   at `offset..offset + buf.len()`, or returns an error. The reader never
///   asks past `len()`. A source that gets fewer bytes than asked (a
///   truncated file or body) returns [`Error::Truncated`]; the reader never
///   sees short or zero-filled data.
/// - Report bytes through [`FetchContext::add_bytes`] as they arrive (the
///   first call marks the time to first byte, which sizes later requests),
///   and retries through [`FetchContext::record_retry`]. Retries are the
///   source's business.
/// - Check [`FetchContext::is_cancelled`] between chunks of a body and return
///   [`Error::Cancelled`] when it is set, so abandoned work ends promptly.
/// - [`set_concurrency`](RangeSource::set_concurrency) tells the source how
///   many of its `read_at` calls may run at once, to size a connection pool.
///
/// # Examples
///
/// ```
/// use prefetch_reader::{FetchContext, RangeSource, Result};
///
/// /// An object whose byte at `i` is `i % 251`.
/// #[derive(Debug)]
/// struct Pattern(u64);
///
/// impl RangeSource for Pattern {
///     fn len(&self) -> u64 {
///         self.0
///     }
///     fn read_at(&self, offset: u64, buf: &mut [u8], ctx: &FetchContext) -> Result<()> {
///         ctx.check_cancelled()?;
///         for (i, b) in buf.iter_mut().enumerate() {
///             *b = ((offset + i as u64) % 251) as u8;
///         }
///         ctx.add_bytes(buf.len() as u64);
///         Ok(())
///     }
/// }
///
/// let mut buf = [0; 3];
/// Pattern(1000).read_at(250, &mut buf, &FetchContext::new())?;
/// assert_eq!(buf, [250, 0, 1]);
/// # Ok::<(), prefetch_reader::Error>(())
/// ```
pub trait RangeSource: Debug + Send + Sync + 'static {
    /// Length of the object in bytes.
    fn len(&self) -> u64;

    /// Whether the object is empty.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Fills `buf` with the bytes at `offset..offset + buf.len()`.
    ///
    /// # Errors
    ///
    /// Any error that stopped the read: [`Error::Cancelled`] when the
    /// context was cancelled, [`Error::Truncated`] when fewer bytes
    /// arrived, or the source's own kinds ([`Error::NotFound`],
    /// [`Error::ObjectChanged`], …).
    fn read_at(&self, offset: u64, buf: &mut [u8], ctx: &FetchContext) -> Result<()>;

    /// Fills `sink` with the bytes from `offset` on, front to back,
    /// committing them as they arrive: the reader uses each committed byte
    /// at once, so the first bytes of a large part are read about one
    /// round trip after its request, not when its last byte arrives. The
    /// reader calls this, not [`read_at`](Self::read_at); a part whose
    /// sink is not full when it returns `Ok` is [`Error::Truncated`].
    ///
    /// The default reads the rest of the part with one `read_at` and
    /// commits it whole, so a source that implements only `read_at` works
    /// as before; the crate's sources stream.
    ///
    /// # Errors
    ///
    /// Those of [`read_at`](Self::read_at). Bytes committed before an
    /// error are the object's: the reader may have used them.
    fn read_streaming(
        &self,
        offset: u64,
        sink: &mut PartSink<'_>,
        ctx: &FetchContext,
    ) -> Result<()> {
        let start = offset + sink.filled() as u64;
        let rest = sink.unfilled();
        let n = rest.len();
        self.read_at(start, rest, ctx)?;
        sink.commit(n);
        Ok(())
    }

    /// Tells the source how many `read_at` calls may run at once. Called
    /// once by each reader built over it; a source shared by several readers
    /// sizes its pool for the largest. Does nothing by default.
    fn set_concurrency(&self, concurrency: usize) {
        let _ = concurrency;
    }

    /// Requests the source sent while it was opened (a `HEAD`, a metadata
    /// `GET`, their redirects and retries): the reader counts them in
    /// [`Stats::requests`](crate::Stats::requests). Defaults to 0.
    fn requests_at_open(&self) -> u64 {
        0
    }

    /// Body bytes the source received while it was opened (the object's
    /// tail, when the open asked for it): the reader counts them in
    /// [`Stats::bytes_fetched`](crate::Stats::bytes_fetched). A read served
    /// from them reports so with [`FetchContext::record_from_open`].
    /// Defaults to 0.
    fn bytes_at_open(&self) -> u64 {
        0
    }

    /// The object's name for messages: a path, or a URL with secrets
    /// redacted. Defaults to the `Debug` form.
    fn location(&self) -> String {
        format!("{self:?}")
    }

    /// A string naming the version of the object this source reads — a
    /// strong `ETag`, a GCS generation, a `Last-Modified` date, a local
    /// file's modification time — or `None` when the source cannot tell
    /// one version from another. Two opens of one location that give the
    /// same validator and length read the same bytes, so a download cut
    /// short can be resumed (`prefetch get --continue`). Defaults to
    /// `None`.
    fn validator(&self) -> Option<String> {
        None
    }

    /// Whether any range can be read at any time. `false` for an object
    /// the server only sends whole (an HTTP server that ignores `Range`):
    /// the source then reads one stream front to back, skipping forward,
    /// and fails a read behind where the stream is. A reader over such a
    /// source keeps one request in flight, in order, so the stream serves
    /// sequential reads and forward seeks; see
    /// [`Stats::single_stream`](crate::Stats::single_stream). Defaults to
    /// `true`.
    fn supports_ranges(&self) -> bool {
        true
    }
}

macro_rules! forward_range_source {
    ($ptr:ident) => {
        impl<S: RangeSource + ?Sized> RangeSource for $ptr<S> {
            fn len(&self) -> u64 {
                (**self).len()
            }
            fn read_at(&self, offset: u64, buf: &mut [u8], ctx: &FetchContext) -> Result<()> {
                (**self).read_at(offset, buf, ctx)
            }
            fn read_streaming(
                &self,
                offset: u64,
                sink: &mut PartSink<'_>,
                ctx: &FetchContext,
            ) -> Result<()> {
                (**self).read_streaming(offset, sink, ctx)
            }
            fn set_concurrency(&self, concurrency: usize) {
                (**self).set_concurrency(concurrency)
            }
            fn location(&self) -> String {
                (**self).location()
            }
            fn validator(&self) -> Option<String> {
                (**self).validator()
            }
            fn requests_at_open(&self) -> u64 {
                (**self).requests_at_open()
            }
            fn bytes_at_open(&self) -> u64 {
                (**self).bytes_at_open()
            }
            fn supports_ranges(&self) -> bool {
                (**self).supports_ranges()
            }
        }
    };
}
forward_range_source!(Box);
forward_range_source!(Arc);

/// Bytes the local sources (file, memory) read and commit at a time: the
/// reader gets a large part's first bytes without waiting for the rest, and
/// cancellation is checked between chunks.
pub(crate) const STREAM_CHUNK: usize = 1 << 20;

/// Copies the part `data[offset..offset + sink.len()]` into `sink`, a chunk
/// at a time, for the sources that hold their bytes in memory; a range past
/// the end is truncated.
pub(crate) fn copy_range(
    data: &[u8],
    offset: u64,
    sink: &mut PartSink<'_>,
    ctx: &FetchContext,
    location: impl FnOnce() -> String,
) -> Result<()> {
    let bytes = usize::try_from(offset)
        .ok()
        .and_then(|start| data.get(start..start.checked_add(sink.len())?))
        .ok_or_else(|| Error::Truncated {
            object: location(),
            offset,
            expected: sink.len() as u64,
            received: 0,
        })?;
    while !sink.is_full() {
        ctx.check_cancelled()?;
        let from = &bytes[sink.filled()..];
        let chunk = sink.unfilled();
        let n = chunk.len().min(STREAM_CHUNK);
        chunk[..n].copy_from_slice(&from[..n]);
        ctx.add_bytes(n as u64);
        sink.commit(n);
    }
    Ok(())
}

/// What a [`RangeSource::read_at`] call is given besides its range: a cancel
/// signal to check, and counters for bytes and retries that end up in the
/// reader's [`Stats`](crate::Stats).
///
/// A source calls [`FetchContext::new`] to test itself outside a reader.
#[derive(Debug)]
pub struct FetchContext {
    cancel: Arc<AtomicBool>,
    counters: Arc<Counters>,
    started: Instant,
    /// Nanoseconds from `started` to the first byte, plus one (0: none yet).
    first_byte: AtomicU64,
    received: AtomicU64,
    /// Bytes served from what the source received at open.
    from_open: AtomicU64,
}

impl Default for FetchContext {
    fn default() -> Self {
        Self::new()
    }
}

impl FetchContext {
    /// A context of its own, never cancelled, counting into nothing shared.
    pub fn new() -> FetchContext {
        FetchContext::attached(Arc::new(AtomicBool::new(false)), Arc::default())
    }

    pub(crate) fn attached(cancel: Arc<AtomicBool>, counters: Arc<Counters>) -> FetchContext {
        FetchContext {
            cancel,
            counters,
            started: Instant::now(),
            first_byte: AtomicU64::new(0),
            received: AtomicU64::new(0),
            from_open: AtomicU64::new(0),
        }
    }

    /// Whether the work was abandoned (a hard seek, close or drop): stop
    /// and return [`Error::Cancelled`].
    pub fn is_cancelled(&self) -> bool {
        self.cancel.load(Relaxed)
    }

    /// `Err(Error::Cancelled)` when the work was abandoned.
    ///
    /// # Errors
    ///
    /// [`Error::Cancelled`] once the context is cancelled.
    pub fn check_cancelled(&self) -> Result<()> {
        if self.is_cancelled() {
            Err(Error::Cancelled)
        } else {
            Ok(())
        }
    }

    /// Reports `n` bytes received. The first call marks the time to first
    /// byte.
    pub fn add_bytes(&self, n: u64) {
        if self.first_byte.load(Relaxed) == 0 {
            let nanos = u64::try_from(self.started.elapsed().as_nanos()).unwrap_or(u64::MAX - 1);
            let _ = self
                .first_byte
                .compare_exchange(0, nanos + 1, Relaxed, Relaxed);
        }
        self.received.fetch_add(n, Relaxed);
        Counters::add(&self.counters.bytes_fetched, n);
    }

    /// Reports one retry of a failed attempt: one more request sent.
    pub fn record_retry(&self) {
        Counters::add(&self.counters.retries, 1);
        Counters::add(&self.counters.requests, 1);
    }

    /// Counts a request sent by a source that does not send one per read
    /// (one reading a single stream, which the engine does not count).
    pub(crate) fn record_request(&self) {
        Counters::add(&self.counters.requests, 1);
    }

    /// Reports, before committing them, that this call's `bytes` come
    /// from bytes the source received while it was opened (counted then,
    /// in [`RangeSource::bytes_at_open`]): the request the reader counted
    /// for the call was never sent, and the bytes are not counted again.
    pub fn record_from_open(&self, bytes: u64) {
        let _ = self
            .counters
            .requests
            .fetch_update(Relaxed, Relaxed, |n| Some(n.saturating_sub(1)));
        self.from_open.fetch_add(bytes, Relaxed);
    }

    /// Bytes served from the open's bytes so far
    /// ([`record_from_open`](Self::record_from_open)).
    pub(crate) fn bytes_from_open(&self) -> u64 {
        self.from_open.load(Relaxed)
    }

    /// Bytes reported so far through [`add_bytes`](Self::add_bytes).
    pub fn bytes_received(&self) -> u64 {
        self.received.load(Relaxed)
    }

    /// Time from the start of the call to its first byte, once one arrived.
    pub fn time_to_first_byte(&self) -> Option<Duration> {
        match self.first_byte.load(Relaxed) {
            0 => None,
            n => Some(Duration::from_nanos(n - 1)),
        }
    }

    /// Time since the call started.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_bytes_mark_the_time_to_first_byte_once() {
        let ctx = FetchContext::new();
        assert_eq!(ctx.time_to_first_byte(), None);
        ctx.add_bytes(10);
        let first = ctx.time_to_first_byte().expect("marked");
        std::thread::sleep(Duration::from_millis(2));
        ctx.add_bytes(5);
        assert_eq!(ctx.time_to_first_byte(), Some(first));
        assert_eq!(ctx.bytes_received(), 15);
    }

    #[test]
    fn a_cancelled_context_says_so() {
        let flag = Arc::new(AtomicBool::new(false));
        let ctx = FetchContext::attached(flag.clone(), Arc::default());
        assert!(ctx.check_cancelled().is_ok());
        flag.store(true, Relaxed);
        assert!(matches!(ctx.check_cancelled(), Err(Error::Cancelled)));
    }

    #[test]
    fn boxed_sources_are_sources() {
        let boxed: Box<dyn RangeSource> = Box::new(MemorySource::new(vec![1, 2, 3]));
        let mut buf = [0; 2];
        boxed
            .read_at(1, &mut buf, &FetchContext::new())
            .expect("read");
        assert_eq!(buf, [2, 3]);
        assert_eq!(boxed.len(), 3);
    }
}
