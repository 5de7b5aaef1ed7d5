//! Counters kept while reading, and [`Stats`], a snapshot of them.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// What a reader has done so far: a plain value, taken by
/// [`PrefetchReader::stats`](crate::PrefetchReader::stats).
///
/// ```
/// use prefetch_reader::{MemorySource, PrefetchReader};
/// use std::io::Read;
///
/// let mut reader = PrefetchReader::new(MemorySource::new(vec![7; 1000]))?;
/// let mut buf = Vec::new();
/// reader.read_to_end(&mut buf)?;
/// let stats = reader.stats();
/// assert_eq!(stats.bytes_delivered, 1000);
/// assert!(stats.requests >= 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Requests the source sent: those of its open
    /// ([`RangeSource::requests_at_open`](crate::RangeSource::requests_at_open)),
    /// one per range read started (a block abandoned before its request
    /// was sent is not one; over a single stream, each response it took),
    /// and every retry.
    pub requests: u64,
    /// Body bytes received, abandoned and retried requests included (a
    /// source that does not report its bytes is taken to have received
    /// each block whole).
    pub bytes_fetched: u64,
    /// Bytes handed to the caller (a byte read twice after a backward seek
    /// counts twice).
    pub bytes_delivered: u64,
    /// Bytes received that were never handed to the caller: the rest of a
    /// block skipped by a seek or abandoned by a hard seek, close or drop,
    /// bytes of a failed request, bytes a retry received again. A byte read
    /// again from the window behind the reader is not fetched again, so
    /// this never exceeds `bytes_fetched`; blocks still in flight when the
    /// reader is dropped are counted as they end.
    pub bytes_wasted: u64,
    /// Retries the source made (reported through
    /// [`FetchContext::record_retry`](crate::FetchContext::record_retry)).
    pub retries: u64,
    /// Seeks served without a new request: forward into data fetched or in
    /// flight, or backward into the window kept behind the reader.
    pub soft_seeks: u64,
    /// Seeks that abandoned in-flight work and restarted at a new offset.
    pub hard_seeks: u64,
    /// Time the caller spent blocked waiting for data.
    pub wait_time: Duration,
    /// Bytes held for blocks right now: those that arrived and are not
    /// freed yet (queued, buffered, being read) and the window behind the
    /// reader. A request's bytes count as they arrive, not when it is
    /// made.
    pub allocated: u64,
    /// The most bytes ever held for blocks at once.
    pub peak_allocated: u64,
    /// Fetch requests started and not yet ended, abandoned ones included:
    /// once a dropped reader's handle shows 0 here and in `allocated`,
    /// every byte it fetched is counted.
    pub requests_in_flight: u64,
    /// Whether the source reads the object as one stream front to back
    /// because its server ignores byte ranges
    /// ([`RangeSource::supports_ranges`](crate::RangeSource::supports_ranges)
    /// is `false`): one request in flight, and a seek backward past the
    /// window behind the reader fails.
    pub single_stream: bool,
}

/// A live view of one reader's counters that outlives the reader and can
/// be read from other threads: for progress bars while another thread
/// copies, or to see abandoned requests release their memory after a drop.
///
/// ```
/// use prefetch_reader::{MemorySource, PrefetchReader};
/// use std::io::Read;
///
/// let mut reader = PrefetchReader::new(MemorySource::new(vec![1; 5000]))?;
/// let handle = reader.stats_handle();
/// std::io::copy(&mut reader, &mut std::io::sink())?;
/// drop(reader);
/// assert_eq!(handle.get().bytes_delivered, 5000);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct StatsHandle(pub(crate) std::sync::Arc<Counters>);

impl StatsHandle {
    /// The counters now.
    pub fn get(&self) -> Stats {
        self.0.snapshot()
    }
}

/// The live counters behind [`Stats`], shared by the reader, its producer
/// and its fetch jobs.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) requests: AtomicU64,
    pub(crate) bytes_fetched: AtomicU64,
    pub(crate) bytes_delivered: AtomicU64,
    pub(crate) bytes_wasted: AtomicU64,
    pub(crate) retries: AtomicU64,
    pub(crate) soft_seeks: AtomicU64,
    pub(crate) hard_seeks: AtomicU64,
    pub(crate) wait_nanos: AtomicU64,
    pub(crate) allocated: AtomicU64,
    pub(crate) peak_allocated: AtomicU64,
    pub(crate) requests_in_flight: AtomicU64,
    /// The part of `allocated` charged for the window behind the reader:
    /// the producer keeps room for that window whether it is charged yet
    /// or not, so blocks and window together stay within the budget.
    pub(crate) behind: AtomicU64,
    pub(crate) single_stream: AtomicBool,
}

impl Counters {
    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Relaxed);
    }

    /// Counts `n` more bytes as allocated for blocks, raising the peak.
    pub(crate) fn allocate(&self, n: u64) {
        let now = self.allocated.fetch_add(n, Relaxed) + n;
        self.peak_allocated.fetch_max(now, Relaxed);
    }

    pub(crate) fn free(&self, n: u64) {
        self.allocated.fetch_sub(n, Relaxed);
    }

    /// Bytes allocated for blocks other than the window behind.
    pub(crate) fn allocated_for_blocks(&self) -> u64 {
        let behind = self.behind.load(Relaxed);
        self.allocated.load(Relaxed).saturating_sub(behind)
    }

    pub(crate) fn snapshot(&self) -> Stats {
        Stats {
            requests: self.requests.load(Relaxed),
            bytes_fetched: self.bytes_fetched.load(Relaxed),
            bytes_delivered: self.bytes_delivered.load(Relaxed),
            bytes_wasted: self.bytes_wasted.load(Relaxed),
            retries: self.retries.load(Relaxed),
            soft_seeks: self.soft_seeks.load(Relaxed),
            hard_seeks: self.hard_seeks.load(Relaxed),
            wait_time: Duration::from_nanos(self.wait_nanos.load(Relaxed)),
            allocated: self.allocated.load(Relaxed),
            peak_allocated: self.peak_allocated.load(Relaxed),
            requests_in_flight: self.requests_in_flight.load(Relaxed),
            single_stream: self.single_stream.load(Relaxed),
        }
    }
}
