//! [`SharedObject`]: one object read through many cheap cursors that share
//! one cache of fetched bytes, one budget and the object's hints.
//!
//! Bytes live in the cache as ranges keyed by offset, oldest evicted first,
//! within `max_prefetch` (fetches under way reserve their room first). A
//! read finds its bytes cached, waits for a fetch under way that holds
//! them, or fetches them on the caller's thread; hinted ranges are fetched
//! in the background on the I/O pool, at most `concurrency` at a time (one
//! request each), and a read reaching a hinted part not started yet fetches
//! it itself on its own thread (so it never waits for a pool thread other
//! objects may hold). Hints leave room for one read's fetch, and hinted
//! bytes not read through yet are never evicted for other hints: parts the
//! budget cannot hold wait, in order, until reads make room. A read that
//! finds no room puts the hints not started back to wait and waits for
//! fetches under way. Dropping the object and all its cursors cancels its
//! fetches. So
//! no byte is fetched twice while it is cached or on its way, whichever
//! cursor asked for it.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::io::{self, BufRead, Read, Seek, SeekFrom};
use std::ops::Range;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Weak};

use bytes::Bytes;
use parking_lot::{Condvar, Mutex, MutexGuard};

use crate::config::ReaderBuilder;
use crate::error::{Error, Result};
use crate::prefetch::io_pool::IoPool;
use crate::prefetch::policy::{Limits, Policy, Request, MAX_HINT_PARTS};
use crate::source::{FetchContext, RangeSource};
use crate::stats::{Counters, Stats};

/// The least a read that misses the cache fetches: small reads near each
/// other then share one round trip.
pub(crate) const MIN_FETCH: u64 = 64 * 1024;

/// The smallest part a large fetch is split into (into at most
/// `concurrency` parts).
const MIN_PART: u64 = 4 << 20;

/// One object behind any [`RangeSource`], shared: `Send + Sync` and cheap
/// to clone (clones are the same object). Hand out [`ObjectCursor`]s with
/// [`cursor`](Self::cursor), one per thread or per consumer, and say what
/// will be read with [`will_need`](Self::will_need); every cursor reuses
/// the bytes any of them fetched.
///
/// - **Read-ahead**: after a seek a cursor fetches what its read needs, at
///   least 64 KiB. Reading on in order, each fetch is as large as what it
///   read in order since the seek (at most `max_part_size` and half of
///   `max_prefetch`), and as it
///   starts on one, the next is asked for in the background: the bytes
///   fetched ahead of it stay within twice what it read in order. A cursor
///   has no thread of its own.
/// - **Window behind**: the shared cache. Bytes stay until `max_prefetch`
///   is needed for newer ones (oldest first), so a seek back into them, by
///   any cursor, costs no request.
/// - **A server that ignores byte ranges**
///   ([`supports_ranges`](RangeSource::supports_ranges) is `false`): the
///   object is one stream read front to back, so hints and read-ahead ask
///   for nothing, each fetch is one request in order, and
///   [`Stats::single_stream`] says so.
///
/// ```
/// use prefetch_reader::{MemorySource, SharedObject};
/// use std::io::{Read, Seek, SeekFrom};
///
/// let object = SharedObject::new(MemorySource::new((0..=255).collect::<Vec<u8>>()))?;
/// object.will_need(&[200..256])?;
/// let mut tail = object.cursor(200);
/// let mut head = object.cursor(0);
/// let mut buf = [0; 4];
/// tail.read_exact(&mut buf)?;
/// assert_eq!(buf, [200, 201, 202, 203]);
/// head.read_exact(&mut buf)?;
/// assert_eq!(buf, [0, 1, 2, 3]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct SharedObject(Arc<Shared>, Arc<Alive>);

struct Shared {
    source: Box<dyn RangeSource>,
    len: u64,
    /// Whether the source serves byte ranges; else it reads one stream
    /// front to back: no hints, no read-ahead, one request at a time.
    ranges: bool,
    /// Plans hints into requests.
    policy: Mutex<Policy>,
    state: Mutex<State>,
    /// Told whenever a fetch ends.
    fetched: Condvar,
    pool: IoPool,
    concurrency: usize,
    /// The largest fetch a cursor reading in order makes: `max_part_size`,
    /// and at most half the cache, so the one being read and the next fit.
    max_window: u64,
    counters: Arc<Counters>,
    /// Set once the object and all its cursors are dropped: the fetches
    /// under way then stop.
    dropped: Arc<AtomicBool>,
}

/// Held by the object's handles and cursors; the last one dropped cancels
/// the fetches still under way.
struct Alive(Arc<AtomicBool>);

impl Drop for Alive {
    fn drop(&mut self) {
        self.0.store(true, Relaxed);
    }
}

/// The cache, the fetches under way, and the hinted parts waiting.
struct State {
    /// Fetched ranges by start.
    cache: BTreeMap<u64, Bytes>,
    /// Starts of the cached ranges, oldest first.
    order: VecDeque<u64>,
    /// Fetches under way (hinted parts waiting included): start → end.
    pending: BTreeMap<u64, u64>,
    /// Bytes cached and reserved for fetches under way.
    bytes: u64,
    limit: u64,
    /// Starts of the cached ranges that were hinted and are not read
    /// through yet: other hints never evict them.
    unread: HashSet<u64>,
    /// Hinted parts not yet started, in the order given.
    queue: VecDeque<Request>,
    /// Hinted parts the budget cannot hold yet, in the order given.
    later: VecDeque<Request>,
    /// Pool jobs working through `queue`.
    workers: usize,
}

/// How [`State::reserve`] may make room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Room {
    /// By evicting cached ranges, for a read.
    ForRead,
    /// By evicting cached ranges but hinted ones not read through.
    ForHint,
    /// By evicting, then going over the cap if it must.
    Force,
}

impl State {
    /// The cached bytes from `pos` on, as far as one range goes.
    fn cached(&self, pos: u64) -> Option<Bytes> {
        self.cache.range(..=pos).rev().find_map(|(&start, bytes)| {
            let end = start + bytes.len() as u64;
            (pos < end).then(|| bytes.slice((pos - start) as usize..))
        })
    }

    /// Where the fetch under way holding the byte at `pos` starts.
    fn pending_start(&self, pos: u64) -> Option<u64> {
        let (&start, &end) = self.pending.range(..=pos).next_back()?;
        (pos < end).then_some(start)
    }

    /// Where the next cached or pending range after `pos` starts.
    fn next_start_after(&self, pos: u64) -> Option<u64> {
        let cached = self.cache.range(pos + 1..).next().map(|(&s, _)| s);
        let pending = self.pending.range(pos + 1..).next().map(|(&s, _)| s);
        cached.into_iter().chain(pending).min()
    }

    /// Moves the queued parts starting in `range` to the front of the
    /// queue, in order.
    fn promote(&mut self, range: Range<u64>) {
        let (mut wanted, rest): (VecDeque<Request>, VecDeque<Request>) = self
            .queue
            .drain(..)
            .partition(|r| range.contains(&r.offset));
        wanted.extend(rest);
        self.queue = wanted;
    }

    /// Reserves room for `len` bytes within `cap`, evicting the oldest
    /// ranges (but, for a hint, hinted ones not read through) while it
    /// would not fit; with `force`, reserves it even when it does not.
    /// Without `force`, nothing is evicted when even evicting all it may
    /// would leave too little room.
    fn reserve(&mut self, len: u64, cap: u64, room: Room, counters: &Counters) -> bool {
        let force = room == Room::Force;
        let spare = room == Room::ForHint;
        let evictable: u64 = self
            .cache
            .iter()
            .filter(|(start, _)| !(spare && self.unread.contains(start)))
            .map(|(_, b)| b.len() as u64)
            .sum();
        if !force && self.bytes - evictable + len > cap {
            return false;
        }
        while self.bytes + len > cap {
            // Bytes read through go first; for a read, then hinted ones.
            let next = self
                .order
                .iter()
                .position(|start| !self.unread.contains(start))
                .or_else(|| (!spare && !self.order.is_empty()).then_some(0));
            let Some(start) = next.and_then(|at| self.order.remove(at)) else {
                break;
            };
            self.unread.remove(&start);
            if let Some(old) = self.cache.remove(&start) {
                self.bytes -= old.len() as u64;
                counters.free(old.len() as u64);
            }
        }
        let fits = self.bytes + len <= cap;
        if fits || force {
            self.bytes += len;
            counters.allocate(len);
        }
        fits || force
    }

    /// Queues what of `request` is not cached or on its way, piece by
    /// piece, while each piece's room can be reserved beside room for one
    /// read's fetch, without evicting hinted bytes not read through; the
    /// rest when room ran out. A piece that could never fit beside a read
    /// is left to reads.
    fn queue_part(&mut self, request: Request, counters: &Counters) -> Option<Request> {
        let end = request.offset + request.len;
        let cap = self.limit.saturating_sub(MIN_FETCH);
        let mut pos = request.offset;
        while pos < end {
            if let Some(bytes) = self.cached(pos) {
                pos += bytes.len() as u64;
                continue;
            }
            if let Some(start) = self.pending_start(pos) {
                pos = self.pending.get(&start).copied().unwrap_or(end);
                continue;
            }
            let piece_end = self.next_start_after(pos).map_or(end, |next| next.min(end));
            let len = piece_end - pos;
            if len <= cap {
                if !self.reserve(len, cap, Room::ForHint, counters) {
                    let (offset, len) = (pos, end - pos);
                    return Some(Request {
                        offset,
                        len,
                        ..request
                    });
                }
                self.pending.insert(pos, piece_end);
                let (offset, len) = (pos, len);
                self.queue.push_back(Request {
                    offset,
                    len,
                    ..request
                });
            }
            pos = piece_end;
        }
        None
    }

    /// Takes `range`, which a read fetches, out of the hinted parts
    /// waiting for room.
    fn claim_later(&mut self, range: Range<u64>) {
        let mut kept = VecDeque::with_capacity(self.later.len());
        for request in self.later.drain(..) {
            let end = request.offset + request.len;
            if end <= range.start || request.offset >= range.end {
                kept.push_back(request);
                continue;
            }
            if request.offset < range.start {
                let len = range.start - request.offset;
                kept.push_back(Request { len, ..request });
            }
            if end > range.end {
                let (offset, len) = (range.end, end - range.end);
                kept.push_back(Request {
                    offset,
                    len,
                    ..request
                });
            }
        }
        self.later = kept;
    }

    /// Puts the hinted parts not started yet back to wait, giving their
    /// room back: a read needs it.
    fn drop_queued(&mut self, counters: &Counters) {
        for request in std::mem::take(&mut self.queue).into_iter().rev() {
            self.pending.remove(&request.offset);
            self.bytes -= request.len;
            counters.free(request.len);
            if !request.readahead {
                self.later.push_front(request);
            }
        }
    }

    /// Marks the hinted ranges that `range`, just read, reads through.
    fn read_through(&mut self, range: Range<u64>) {
        let through: Vec<u64> = self
            .cache
            .range(..range.end)
            .rev()
            .take_while(|(&start, bytes)| start + bytes.len() as u64 > range.start)
            .filter(|(&start, bytes)| start + bytes.len() as u64 <= range.end)
            .map(|(&start, _)| start)
            .collect();
        for start in through {
            self.unread.remove(&start);
        }
    }

    /// Ends the fetch at `start` whose room was reserved: its bytes go to
    /// the cache, or its room is given back.
    /// `hinted` bytes stay until read through, whatever other hints need.
    fn finish(
        &mut self,
        start: u64,
        reserved: u64,
        bytes: Option<Bytes>,
        hinted: bool,
        counters: &Counters,
    ) {
        self.pending.remove(&start);
        match bytes {
            Some(bytes) => {
                if let Some(old) = self.cache.insert(start, bytes) {
                    self.bytes -= old.len() as u64;
                    counters.free(old.len() as u64);
                    self.order.retain(|&s| s != start);
                }
                self.order.push_back(start);
                if hinted {
                    self.unread.insert(start);
                } else {
                    self.unread.remove(&start);
                }
            }
            None => {
                self.bytes -= reserved;
                counters.free(reserved);
            }
        }
    }
}

impl SharedObject {
    /// Opens `location` (a URL, `gs://`, `s3://` or a path, as
    /// [`open_source`](crate::open_source) takes) with default settings.
    ///
    /// # Errors
    ///
    /// Those of [`open_source`](crate::open_source), and [`Error::Io`] if
    /// the I/O pool cannot start.
    pub fn open(location: &str) -> Result<SharedObject> {
        SharedObject::new(crate::open_source(location)?)
    }

    /// The object behind `source`, with default settings.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if the I/O pool cannot start.
    pub fn new<S: RangeSource>(source: S) -> Result<SharedObject> {
        SharedObject::with_settings(source, &ReaderBuilder::new())
    }

    /// [`new`](Self::new) with `settings`' `concurrency` (the most fetches
    /// at once, and the most parts one is split into), `max_prefetch` (the
    /// cache's size), `max_part_size` and `io_pool`; the other settings do
    /// not apply.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] for invalid settings, [`Error::Io`] if the
    /// I/O pool cannot start.
    pub fn with_settings<S: RangeSource>(
        source: S,
        settings: &ReaderBuilder,
    ) -> Result<SharedObject> {
        let config = settings.validated()?;
        let (len, requests, bytes, ranges) = panic::catch_unwind(AssertUnwindSafe(|| {
            source.set_concurrency(config.concurrency);
            (
                source.len(),
                source.requests_at_open(),
                source.bytes_at_open(),
                source.supports_ranges(),
            )
        }))
        .map_err(|_| Error::Terminated("the source panicked telling its length".to_owned()))?;
        let dropped = Arc::new(AtomicBool::new(false));
        let counters = Arc::new(Counters::default());
        Counters::add(&counters.requests, requests);
        Counters::add(&counters.bytes_fetched, bytes);
        counters.single_stream.store(!ranges, Relaxed);
        Ok(SharedObject(
            Arc::new(Shared {
                len,
                ranges,
                // No window behind: the cache is every cursor's.
                policy: Mutex::new(Policy::new(
                    Limits {
                        window_behind: 0,
                        ..config.limits()
                    },
                    len,
                )),
                state: Mutex::new(State {
                    cache: BTreeMap::new(),
                    order: VecDeque::new(),
                    pending: BTreeMap::new(),
                    bytes: 0,
                    limit: config.max_prefetch,
                    unread: HashSet::new(),
                    queue: VecDeque::new(),
                    later: VecDeque::new(),
                    workers: 0,
                }),
                fetched: Condvar::new(),
                pool: IoPool::new(config.io_pool.clone())?,
                concurrency: config.concurrency,
                max_window: config
                    .max_part_size
                    .min(config.max_prefetch / 2)
                    .max(MIN_FETCH),
                counters,
                dropped: dropped.clone(),
                source: Box::new(source),
            }),
            Arc::new(Alive(dropped)),
        ))
    }

    /// The object's length in bytes.
    pub fn len(&self) -> u64 {
        self.0.len
    }

    /// Whether the object is empty.
    pub fn is_empty(&self) -> bool {
        self.0.len == 0
    }

    /// Says these ranges will be read: they are fetched in the background,
    /// in the order given, ranges a short gap apart (under a round trip's
    /// worth of bytes) as one, large ones in parallel parts, within
    /// `max_prefetch` beside room for a demand read; bytes already cached
    /// or on their way are not asked for again. Hinted bytes stay cached
    /// until read through (only reads evict them); parts the cache cannot
    /// hold yet wait, in order, until reads make room. A read inside a
    /// hinted part, by any cursor, waits for its fetch, or makes it if it
    /// has not started, instead of asking again. Ranges past the end are
    /// clipped; hints add to earlier ones (at most 65 536 parts wait).
    ///
    /// # Errors
    ///
    /// None yet: a failed fetch is met (and retried) by the read that
    /// needs its bytes.
    pub fn will_need(&self, ranges: &[Range<u64>]) -> Result<()> {
        let plan = self.0.policy.lock().plan_hints(ranges);
        self.0.queue(plan);
        Ok(())
    }

    /// A reader of the object from `offset` on (past the end, reads return
    /// 0), sharing the object's cache.
    pub fn cursor(&self, offset: u64) -> ObjectCursor {
        ObjectCursor {
            shared: self.0.clone(),
            _alive: self.1.clone(),
            pos: offset,
            block: Bytes::new(),
            block_start: 0,
            run: 0,
        }
    }

    /// The bytes of `range`, from the cache where they are (lent, not
    /// copied, when one cached range holds them all), else fetched.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidSeek`] for a range past the end, and the source's
    /// errors fetching.
    pub fn bytes(&self, range: Range<u64>) -> Result<Bytes> {
        self.0.bytes(range)
    }

    /// What reading the object has cost so far, for all its cursors:
    /// `requests` (the source's at open, one per fetch part, and retries),
    /// `bytes_fetched`, `bytes_delivered` (bytes cursors consumed),
    /// `retries`, `wait_time` is 0, and `allocated` / `peak_allocated` (the
    /// cache and the fetches under way).
    pub fn stats(&self) -> Stats {
        self.0.counters.snapshot()
    }

    /// The validated `concurrency` the object was opened with.
    #[cfg(feature = "parquet")] // what `RemoteFile` takes from its object
    pub(crate) fn concurrency(&self) -> usize {
        self.0.concurrency
    }

    /// The validated `max_prefetch` the object was opened with: the
    /// cache's size.
    #[cfg(feature = "parquet")] // what `RemoteFile` takes from its object
    pub(crate) fn max_prefetch(&self) -> u64 {
        self.0.state.lock().limit
    }

    /// The source's location, or a stand-in if telling it panics.
    #[cfg(feature = "parquet")] // what `RemoteFile` takes from its object
    pub(crate) fn location(&self) -> String {
        self.0.location()
    }
}

impl Shared {
    /// The bytes of `range`, in one piece.
    fn bytes(self: &Arc<Self>, range: Range<u64>) -> Result<Bytes> {
        if range.start > range.end || range.end > self.len {
            return Err(Error::InvalidSeek {
                object: self.source.location(),
                target: i128::from(range.end),
            });
        }
        let want = range.end - range.start;
        if want == 0 {
            return Ok(Bytes::new());
        }
        let first = self.bytes_at(range.start, want)?;
        let bytes = if first.len() as u64 >= want {
            first.slice(..want as usize)
        } else {
            // Across cached ranges: one copy into a buffer of its own.
            let mut out = buffer(want)?;
            out.extend_from_slice(&first);
            while (out.len() as u64) < want {
                let pos = range.start + out.len() as u64;
                let piece = self.bytes_at(pos, range.end - pos)?;
                let n = piece.len().min((range.end - pos) as usize);
                out.extend_from_slice(&piece[..n]);
            }
            Bytes::from(out)
        };
        self.read_through(range);
        Ok(bytes)
    }

    /// `range` was read: the hinted ranges it reads through may go, and
    /// hints waiting for room may come.
    fn read_through(self: &Arc<Self>, range: Range<u64>) {
        let mut state = self.state.lock();
        state.read_through(range);
        if !state.later.is_empty() {
            self.pump(state);
        }
    }

    /// The bytes from `pos` (inside the object) on: cached, or once the
    /// fetch under way that holds them ends, or fetched here — at least
    /// `want` bytes (and [`MIN_FETCH`]), up to where cached or pending
    /// bytes begin.
    fn bytes_at(self: &Arc<Self>, pos: u64, want: u64) -> Result<Bytes> {
        let mut state = self.state.lock();
        let (end, len) = loop {
            if let Some(bytes) = state.cached(pos) {
                return Ok(bytes);
            }
            if let Some(start) = state.pending_start(pos) {
                // Hinted parts of what the read wants, not started yet, go
                // first; the one holding `pos` is fetched here and now, so
                // the read never waits for a pool thread (other objects'
                // stuck jobs may hold them all).
                state.promote(start..pos.saturating_add(want).max(start + 1));
                if state.queue.front().is_some_and(|r| r.offset == start) {
                    if let Some(request) = state.queue.pop_front() {
                        drop(state);
                        self.fetch_queued(request);
                        state = self.state.lock();
                        continue;
                    }
                }
                if self.pool.is_current_thread_in_it() {
                    return Err(Error::InvalidConfig {
                        setting: "io_pool",
                        reason: "a cursor cannot wait for data on a thread of its own I/O pool"
                            .to_owned(),
                    });
                }
                self.fetched.wait(&mut state);
                continue;
            }
            let mut end = pos.saturating_add(want.max(MIN_FETCH)).min(self.len);
            if let Some(next) = state.next_start_after(pos) {
                end = end.min(next);
            }
            let len = end - pos;
            let limit = state.limit;
            if state.reserve(len, limit, Room::ForRead, &self.counters) {
                break (end, len);
            }
            // Hints not started give way to the read; then fetches under
            // way are waited for; a read larger than the cache, or with
            // nothing to wait for, is fetched anyway.
            state.drop_queued(&self.counters);
            let wait = !state.pending.is_empty() && !self.pool.is_current_thread_in_it();
            let room = if wait { Room::ForRead } else { Room::Force };
            if state.reserve(len, limit, room, &self.counters) {
                break (end, len);
            }
            self.fetched.wait(&mut state);
        };
        state.pending.insert(pos, end);
        // Hinted bytes waiting for room that the read fetches are no
        // longer asked for.
        state.claim_later(pos..end);
        drop(state);
        let fetched = self.fetch(pos..end, true);
        let mut state = self.state.lock();
        let bytes = fetched.as_ref().ok().cloned();
        state.finish(pos, len, bytes, false, &self.counters);
        self.fetched.notify_all();
        self.pump(state);
        fetched
    }

    /// Plans hinted parts (and a cursor's read-ahead): they wait for room
    /// in order, behind those of earlier calls; read-ahead that finds no
    /// room now is not asked for.
    fn queue(self: &Arc<Self>, plan: Vec<Request>) {
        if !self.ranges {
            // One stream read front to back cannot serve ranges ahead.
            return;
        }
        let mut state = self.state.lock();
        for request in plan {
            if request.readahead {
                // What finds no room now is not asked for.
                let _ = state.queue_part(request, &self.counters);
            } else if state.later.len() < MAX_HINT_PARTS {
                state.later.push_back(request);
            }
        }
        self.pump(state);
    }

    /// Queues the hinted parts waiting for room, in order, while their
    /// room can be reserved, and starts pool jobs for them.
    fn pump(self: &Arc<Self>, mut state: MutexGuard<'_, State>) {
        while let Some(request) = state.later.pop_front() {
            if let Some(rest) = state.queue_part(request, &self.counters) {
                state.later.push_front(rest);
                break;
            }
        }
        self.start_workers(state);
    }

    /// Starts pool jobs for the queued parts, up to `concurrency` at once.
    fn start_workers(self: &Arc<Self>, mut state: MutexGuard<'_, State>) {
        while state.workers < self.concurrency && state.workers < state.queue.len() {
            state.workers += 1;
            let shared = Arc::downgrade(self);
            self.pool.spawn(move || Shared::work(&shared));
        }
    }

    /// One pool job: fetches queued parts until none are left, or until
    /// the object and its cursors are all dropped (then the rest are not
    /// fetched).
    fn work(shared: &Weak<Shared>) {
        loop {
            let Some(this) = shared.upgrade() else {
                return;
            };
            if !this.work_one() {
                return;
            }
        }
    }

    /// Fetches the next queued part; `false` once the queue is empty (the
    /// job then ends).
    fn work_one(self: &Arc<Self>) -> bool {
        let request = {
            let mut state = self.state.lock();
            match state.queue.pop_front() {
                Some(request) => request,
                None => {
                    state.workers -= 1;
                    return false;
                }
            }
        };
        self.fetch_queued(request);
        true
    }

    /// Fetches a hinted part taken off the queue, and ends it: its bytes
    /// cached, or (failed) its room given back for a read to try again.
    fn fetch_queued(self: &Arc<Self>, request: Request) {
        let range = request.offset..request.offset + request.len;
        // Planned as parts already: one request each, so at most
        // `concurrency` are in flight.
        let fetched = self.fetch(range, false).ok();
        let mut state = self.state.lock();
        let hinted = !request.readahead;
        state.finish(request.offset, request.len, fetched, hinted, &self.counters);
        self.fetched.notify_all();
        // Workers are running: no new ones are needed for what comes.
        self.pump(state);
    }

    /// Reads `range` from the source, with `split` in parallel parts when
    /// it is large; a panicking source is an error. Every fetch is
    /// cancelled once the object and all its cursors are dropped.
    fn fetch(&self, range: Range<u64>, split: bool) -> Result<Bytes> {
        let mut buf = buffer(range.end - range.start)?;
        // It fits in memory, so in a `usize`.
        let len = (range.end - range.start) as usize;
        buf.resize(len, 0);
        // One stream read front to back is one request, read in order.
        let parts = if split && self.ranges {
            (len as u64 / MIN_PART).clamp(1, self.concurrency as u64)
        } else {
            1
        };
        let part = len.div_ceil(parts as usize).max(1);
        let ctx = FetchContext::attached(self.dropped.clone(), self.counters.clone());
        let read = |offset: u64, chunk: &mut [u8]| {
            // A source reading one stream counts the requests it sends.
            if self.ranges {
                Counters::add(&self.counters.requests, 1);
            }
            panic::catch_unwind(AssertUnwindSafe(|| {
                self.source.read_at(offset, chunk, &ctx)
            }))
            .unwrap_or_else(|_| {
                Err(Error::Terminated(format!(
                    "the source panicked reading {} bytes at offset {offset} of {}",
                    chunk.len(),
                    self.location()
                )))
            })
        };
        if parts == 1 {
            read(range.start, &mut buf)?;
        } else {
            std::thread::scope(|scope| {
                let jobs: Vec<_> = buf
                    .chunks_mut(part)
                    .enumerate()
                    .map(|(i, chunk)| {
                        let offset = range.start + (i * part) as u64;
                        let read = &read;
                        scope.spawn(move || read(offset, chunk))
                    })
                    .collect();
                jobs.into_iter()
                    .map(|job| {
                        job.join().unwrap_or_else(|_| {
                            Err(Error::Terminated("a fetch thread panicked".to_owned()))
                        })
                    })
                    .collect::<Result<Vec<()>>>()
            })?;
        }
        // Bytes served from what the open received were counted at open; a
        // source that does not report its bytes received them all.
        let reported = ctx.bytes_received() + ctx.bytes_from_open();
        let unreported = (len as u64).saturating_sub(reported);
        Counters::add(&self.counters.bytes_fetched, unreported);
        Ok(Bytes::from(buf))
    }

    fn location(&self) -> String {
        panic::catch_unwind(AssertUnwindSafe(|| self.source.location()))
            .unwrap_or_else(|_| "the object".to_owned())
    }
}

/// An empty buffer with room for exactly `len` bytes, or an error (not an
/// abort) when the system cannot give them.
fn buffer(len: u64) -> Result<Vec<u8>> {
    let mut buf = Vec::new();
    match usize::try_from(len) {
        Ok(n) if buf.try_reserve_exact(n).is_ok() => Ok(buf),
        _ => Err(Error::io(
            format!("cannot hold {len} bytes in memory"),
            io::ErrorKind::OutOfMemory.into(),
        )),
    }
}

/// A reader of a [`SharedObject`] from an offset on: `Read + Seek +
/// BufRead`, `Send`, with no thread of its own; made by
/// [`SharedObject::cursor`]. `fill_buf` lends cached bytes without a copy.
pub struct ObjectCursor {
    shared: Arc<Shared>,
    /// Keeps the object's fetches going while the cursor lives.
    _alive: Arc<Alive>,
    pos: u64,
    /// The cached bytes last lent, from `block_start`.
    block: Bytes,
    block_start: u64,
    /// Bytes read in order since the last seek: the next fetch's size.
    run: u64,
}

impl ObjectCursor {
    fn block_end(&self) -> u64 {
        self.block_start + self.block.len() as u64
    }
}

impl BufRead for ObjectCursor {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        let in_block = self.pos >= self.block_start && self.pos < self.block_end();
        if !in_block && self.pos < self.shared.len {
            let in_order = !self.block.is_empty() && self.pos == self.block_end();
            self.run = if in_order {
                self.run.saturating_add(self.block.len() as u64)
            } else {
                0
            };
            let window = self.run.clamp(MIN_FETCH, self.shared.max_window);
            self.block = self.shared.bytes_at(self.pos, window)?;
            self.block_start = self.pos;
            if in_order {
                // The next window, on its way while this one is read.
                let next = self.block_end();
                let plan = (next < self.shared.len).then(|| Request {
                    offset: next,
                    len: window.min(self.shared.len - next),
                    readahead: true,
                });
                self.shared.queue(plan.into_iter().collect());
            }
        }
        if self.pos >= self.block_start && self.pos < self.block_end() {
            Ok(&self.block[(self.pos - self.block_start) as usize..])
        } else {
            Ok(&[])
        }
    }

    fn consume(&mut self, amt: usize) {
        let available = self.block_end().saturating_sub(self.pos);
        let n = (amt as u64).min(available);
        self.pos += n;
        Counters::add(&self.shared.counters.bytes_delivered, n);
        if n > 0 && self.pos == self.block_end() {
            self.shared.read_through(self.block_start..self.pos);
        }
    }
}

impl Read for ObjectCursor {
    /// Fills `buf` from cached ranges one after another, fetching what is
    /// missing, to the end of the object; an error after some bytes ends
    /// the read there (the next read meets it again).
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut filled = 0;
        while filled < buf.len() {
            let available = match self.fill_buf() {
                Ok([]) => break,
                Ok(available) => available,
                Err(err) if filled == 0 => return Err(err),
                Err(_) => break,
            };
            let n = available.len().min(buf.len() - filled);
            buf[filled..filled + n].copy_from_slice(&available[..n]);
            filled += n;
            self.consume(n);
        }
        Ok(filled)
    }
}

impl Seek for ObjectCursor {
    /// Moves the position; nothing is fetched until the next read. A seek
    /// past the end is allowed (reads there return 0).
    fn seek(&mut self, from: SeekFrom) -> io::Result<u64> {
        let target = match from {
            SeekFrom::Start(n) => i128::from(n),
            SeekFrom::End(delta) => i128::from(self.shared.len) + i128::from(delta),
            SeekFrom::Current(delta) => i128::from(self.pos) + i128::from(delta),
        };
        self.pos = u64::try_from(target).map_err(|_| Error::InvalidSeek {
            object: self.shared.location(),
            target,
        })?;
        Ok(self.pos)
    }
}

impl std::fmt::Debug for SharedObject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedObject")
            .field("location", &self.0.location())
            .field("len", &self.0.len)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for ObjectCursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectCursor")
            .field("pos", &self.pos)
            .finish_non_exhaustive()
    }
}
