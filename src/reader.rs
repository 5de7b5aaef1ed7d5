//! [`PrefetchReader`]: `Read + BufRead + Seek` over a [`RangeSource`].

use std::fmt;
use std::io::{self, BufRead, Read, Seek, SeekFrom};
use std::ops::Range;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use parking_lot::Mutex;

use crate::buffers::Buffers;
use crate::config::{Config, ReaderBuilder};
use crate::error::{Error, Result};
use crate::prefetch::block::{Block, BlockData, HintedPart, Waited};
use crate::prefetch::hints::Hints;
use crate::prefetch::io_pool::IoPool;
use crate::prefetch::pace::Pace;
use crate::prefetch::policy::{
    classify_seek, reports_every_read, Advice, Policy, ReadSizes, ReaderState, SeekKind, SeekView,
};
use crate::prefetch::producer::{Event, Frontier, Producer};
use crate::source::RangeSource;
use crate::stats::{Counters, Stats, StatsHandle};

/// How long a read waits on a silent source before saying so at `info`
/// level (then again after twice as long, and so on).
const SILENCE_FIRST_NOTE: Duration = Duration::from_secs(5);

/// A `Read + BufRead + Seek` over a [`RangeSource`] that fetches ahead of
/// the reader in the background.
///
/// Reading sequentially, it fetches up to `concurrency` ranges at once
/// ahead of the caller, so reads run at the speed of the link rather than
/// one round trip at a time. Random reads fetch about what they read.
/// Seeks are lazy: nothing is fetched until the next read. A seek forward
/// into data already fetched or in flight, or back into the window kept
/// behind the reader, makes no request; any other seek abandons the work in
/// flight (without waiting for it) and starts again at the new offset.
///
/// An error from the source is returned by the read that reaches it (the
/// bytes before it are delivered first), as an `io::Error` carrying this
/// crate's [`Error`]; the next read tries again from the same position.
///
/// Dropping the reader, or [`close`](Self::close), stops its producer
/// thread and abandons the work in flight; neither waits for the source.
///
/// ```
/// use prefetch_reader::{MemorySource, PrefetchReader};
/// use std::io::{BufRead, Read, Seek, SeekFrom};
///
/// let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
/// let mut reader = PrefetchReader::new(MemorySource::new(data.clone()))?;
///
/// let mut all = Vec::new();
/// reader.read_to_end(&mut all)?;
/// assert_eq!(all, data);
///
/// reader.seek(SeekFrom::Start(1000))?;
/// assert_eq!(reader.fill_buf()?[0], data[1000]);
/// reader.close()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct PrefetchReader<S: RangeSource = Box<dyn RangeSource>> {
    source: Arc<S>,
    /// The pool fetch jobs run on: a read from one of its threads would
    /// wait for jobs queued behind itself.
    pool: IoPool,
    len: u64,
    /// The caller's position.
    pos: u64,
    /// Where the buffers were left by the last read; differs from `pos`
    /// after a seek until the next read reconciles them.
    buf_pos: u64,
    /// The block being read and the window behind it.
    buffers: Buffers,
    /// The ranges the caller said it will read, and their parts.
    hints: Hints,
    /// The call whose hinted part is the block being read, if one is.
    current_hint: Option<u64>,
    /// Whether a hinted part was read since the epoch's last block: the
    /// position may then be past all the epoch asked for.
    read_hint: bool,
    /// The epoch (span between hard seeks) and its state.
    epoch: u64,
    /// Whether this epoch's first request was asked for.
    started: bool,
    cancel: Arc<AtomicBool>,
    /// Where the next block of this epoch starts.
    next_offset: u64,
    next_ticket: Option<u64>,
    streak: u32,
    /// Bytes consumed in order since the last seek.
    run: u64,
    /// The caller's pace, sampled as it takes each block.
    pace: Pace,
    advice: Advice,
    read_sizes: ReadSizes,
    /// An error met after some bytes of a read were copied: returned by
    /// the next read.
    pending_error: Option<Error>,
    frontier: Arc<Mutex<Frontier>>,
    counters: Arc<Counters>,
    /// `None` once closed.
    link: Option<ProducerLink>,
}

/// The reader's ends of its producer's channels, and its thread.
struct ProducerLink {
    events: Sender<Event>,
    blocks: Receiver<Block>,
    hinted: Receiver<HintedPart>,
    thread: JoinHandle<()>,
}

impl ProducerLink {
    /// Drops the blocks already in the channel (all from abandoned epochs)
    /// and tells the producer there is room.
    fn drain_blocks(&self) {
        if self.blocks.try_iter().count() > 0 {
            let _ = self.events.send(Event::Taken);
        }
    }
}

impl PrefetchReader {
    /// A builder to choose settings; see [`ReaderBuilder`]. (Defined on the
    /// default type so that `PrefetchReader::builder()` needs no type; the
    /// builder makes readers over any source.)
    pub fn builder() -> ReaderBuilder {
        ReaderBuilder::new()
    }
}

impl<S: RangeSource> PrefetchReader<S> {
    /// A reader over `source` with every default setting.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if the producer thread or the I/O pool cannot start.
    pub fn new(source: S) -> Result<PrefetchReader<S>> {
        ReaderBuilder::new().build(source)
    }

    pub(crate) fn start(source: S, config: Config) -> Result<PrefetchReader<S>> {
        source.set_concurrency(config.concurrency);
        let len = source.len();
        let source = Arc::new(source);
        let pool = IoPool::new(config.io_pool.clone())?;
        let counters = Arc::new(Counters::default());
        Counters::add(&counters.requests, source.requests_at_open());
        Counters::add(&counters.bytes_fetched, source.bytes_at_open());
        let supports_ranges = source.supports_ranges();
        counters.single_stream.store(!supports_ranges, Relaxed);
        let frontier = Arc::new(Mutex::new(Frontier::default()));
        let (events_tx, events) = crossbeam_channel::unbounded();
        // Room for every request in flight plus as many again queued; the
        // producer keeps any more in its outbox rather than block.
        let (blocks_tx, blocks) = crossbeam_channel::bounded(2 * config.concurrency);
        // Hinted parts are few (the plan fits in the budget).
        let (hinted_tx, hinted) = crossbeam_channel::unbounded();
        let membership = config
            .budget
            .as_ref()
            .map(|budget| Arc::new(budget.join(events_tx.clone())));
        let producer = Producer {
            admission: Arc::default(),
            membership,
            source: source.clone(),
            pool: pool.clone(),
            counters: counters.clone(),
            events_tx: events_tx.clone(),
            events,
            blocks: blocks_tx,
            hinted: hinted_tx,
            frontier: frontier.clone(),
            policy: Policy::new(config.limits().for_source(supports_ranges), len),
        };
        let thread = thread::Builder::new()
            .name("prefetch-producer".to_owned())
            .spawn(move || producer.run())
            .map_err(|err| Error::io("cannot start the producer thread", err))?;
        Ok(PrefetchReader {
            source,
            pool,
            len,
            pos: 0,
            buf_pos: 0,
            buffers: Buffers::new(
                usize::try_from(config.window_behind).unwrap_or(usize::MAX),
                counters.clone(),
            ),
            hints: Hints::default(),
            current_hint: None,
            read_hint: false,
            epoch: 0,
            started: false,
            cancel: Arc::new(AtomicBool::new(false)),
            next_offset: 0,
            next_ticket: None,
            streak: 0,
            run: 0,
            pace: Pace::new(Instant::now()),
            advice: config.advice,
            read_sizes: ReadSizes::default(),
            pending_error: None,
            frontier,
            counters,
            link: Some(ProducerLink {
                events: events_tx,
                blocks,
                hinted,
                thread,
            }),
        })
    }

    /// The source being read.
    pub fn get_ref(&self) -> &S {
        &self.source
    }

    /// Length of the object in bytes.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the object is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Says how the object will be read, which decides how far ahead the
    /// reader fetches (see [`Advice`]); takes effect at once.
    /// Readers start with the builder's [`advice`](ReaderBuilder::advice),
    /// [`Advice::Normal`] by default.
    ///
    /// ```
    /// use prefetch_reader::{Advice, MemorySource, PrefetchReader};
    /// use std::io::Read;
    ///
    /// let mut reader = PrefetchReader::new(MemorySource::new(vec![7; 100_000]))?;
    /// reader.advise(Advice::Sequential);
    /// let mut all = Vec::new();
    /// reader.read_to_end(&mut all)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn advise(&mut self, advice: Advice) {
        self.advice = advice;
        if self.started && self.pos == self.buf_pos {
            // Read-ahead that the new advice allows starts now, not at the
            // next block. A closed reader has nothing to tell.
            let _ = self.send(Event::Progress {
                epoch: self.epoch,
                reader: self.reader_state(1),
            });
        }
    }

    /// Says the caller will read these ranges soon (a parquet reader's
    /// column chunks, an archive's members): the reader fetches exactly
    /// them, in the order given and in parallel parts, and reads inside
    /// them, in any order, are served from memory with no request or
    /// read-ahead of their own (a seek into one is soft). Ranges are
    /// clipped to the object, and merged where the gap between them costs
    /// less than a round trip (the link's round trip × bandwidth once
    /// measured, 1 MiB before). Hinted parts hold at most the budget
    /// (`max_prefetch`) less room for one demand read (`max_part_size`,
    /// or half the budget when that is less); a part leaves when read to
    /// its end, and the parts the budget did not hold yet are fetched as
    /// room comes. A read of a hinted part not fetched yet has it fetched
    /// next; if the parts held leave it no room, those planned last are
    /// dropped (a read there later fetches as usual). The next
    /// call replaces the hints not yet read (their unread bytes count as
    /// wasted), and `will_need(&[])` clears them. At most 65 536 parts are
    /// planned per call; reads past them fetch as usual.
    ///
    /// ```
    /// use prefetch_reader::{MemorySource, PrefetchReader};
    /// use std::io::{Read, Seek, SeekFrom};
    ///
    /// let mut reader = PrefetchReader::new(MemorySource::new(vec![5; 1 << 20]))?;
    /// reader.will_need(&[1000..2000, 500_000..600_000])?;
    /// reader.seek(SeekFrom::Start(500_000))?;
    /// let mut chunk = vec![0; 100_000];
    /// reader.read_exact(&mut chunk)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Closed`] after close; [`Error::Terminated`] if the producer
    /// thread ended.
    pub fn will_need(&mut self, ranges: &[Range<u64>]) -> Result<()> {
        let generation = self.hints.generation() + 1;
        let (plan_tx, plan_rx) = crossbeam_channel::bounded(1);
        self.send(Event::WillNeed {
            generation,
            ranges: ranges.to_vec(),
            plan: plan_tx,
        })?;
        let plan = plan_rx
            .recv()
            .map_err(|_| Error::Terminated("the producer thread ended".to_owned()))?;
        self.hints.replace(generation, &plan);
        // Parts of earlier calls still in the channel go now, freeing
        // their memory; this call's are kept.
        self.receive_hints();
        Ok(())
    }

    /// What the reader has done so far.
    pub fn stats(&self) -> Stats {
        self.counters.snapshot()
    }

    /// A live view of the counters, for other threads and for after the
    /// reader is gone.
    pub fn stats_handle(&self) -> StatsHandle {
        StatsHandle(self.counters.clone())
    }

    /// Test support (feature `testing`): waits until the producer has no
    /// request in flight and, on what it was told so far, decides to make
    /// no more — so a test can assert what an idle reader fetched without
    /// sleeping.
    ///
    /// # Errors
    ///
    /// [`Error::Closed`] after close; [`Error::Terminated`] if the producer
    /// thread ended.
    #[cfg(feature = "testing")]
    pub fn wait_until_quiet(&self) -> Result<()> {
        let (tx, rx) = crossbeam_channel::bounded(1);
        self.send(Event::Quiet(tx))?;
        rx.recv()
            .map_err(|_| Error::Terminated("the producer thread ended".to_owned()))
    }

    /// Writes the object from the position to its end to `out`, straight
    /// from the reader's blocks (no buffer in between, writes as large as
    /// the blocks), and returns the bytes written. `io::copy` goes through
    /// an 8 KiB buffer instead.
    ///
    /// ```
    /// use prefetch_reader::{MemorySource, PrefetchReader};
    ///
    /// let mut reader = PrefetchReader::new(MemorySource::new(vec![3; 100_000]))?;
    /// let mut out = Vec::new();
    /// assert_eq!(reader.copy_to(&mut out)?, 100_000);
    /// assert_eq!(out, vec![3; 100_000]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// A read error, or `out`'s write error, as they come; the bytes
    /// written before it are in `out`, and the position is past them.
    pub fn copy_to<W: io::Write + ?Sized>(&mut self, out: &mut W) -> io::Result<u64> {
        let mut written = 0;
        loop {
            let buf = match self.fill_buf() {
                Ok(buf) => buf,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                Err(err) => return Err(err),
            };
            if buf.is_empty() {
                return Ok(written);
            }
            let n = buf.len();
            out.write_all(buf)?;
            self.consume(n);
            written += n as u64;
        }
    }

    /// Stops the producer thread and abandons the work in flight, without
    /// waiting for the source, and frees the reader's buffers. Every call
    /// after close (`read`, even of an empty buffer, `fill_buf`, `seek`,
    /// `stream_position`) is an error ([`Error::Closed`]), and `consume`
    /// does nothing; closing again does nothing. Dropping the reader
    /// closes it too.
    ///
    /// # Errors
    ///
    /// [`Error::Terminated`] if the producer thread had panicked.
    pub fn close(&mut self) -> Result<()> {
        let Some(link) = self.link.take() else {
            return Ok(());
        };
        self.cancel.store(true, Relaxed);
        // The producer ends at this event; it never blocks on anything else.
        let _ = link.events.send(Event::Shutdown);
        // Frees the window behind's buffer, not just its bytes.
        self.buffers.free();
        self.hints.clear();
        link.drain_blocks();
        drop(link.hinted);
        drop(link.blocks);
        link.thread
            .join()
            .map_err(|_| Error::Terminated("the producer thread panicked".to_owned()))
    }

    fn link(&self) -> Result<&ProducerLink> {
        self.link.as_ref().ok_or(Error::Closed)
    }

    fn send(&self, event: Event) -> Result<()> {
        self.link()?
            .events
            .send(event)
            .map_err(|_| Error::Terminated("the producer thread ended".to_owned()))
    }

    fn reader_state(&self, want: u64) -> ReaderState {
        // Hinted bytes are the hints' to fetch, not a demand.
        let want = match self.hints.next_start(self.pos) {
            Some(start) if start > self.pos => want.min(start - self.pos),
            _ => want,
        };
        ReaderState {
            pos: self.pos,
            want: want.max(1),
            streak: self.streak,
            io_size: self.read_sizes.average(),
            run: self.run,
            pace: self.pace.rate(),
            advice: self.advice,
        }
    }

    /// Readies a read: returns a stashed error, and turns a seek made since
    /// the last read into a soft or hard one.
    fn begin(&mut self) -> Result<()> {
        self.link()?;
        if let Some(err) = self.pending_error.take() {
            return Err(err);
        }
        // At or past the end nothing is read, so nothing needs abandoning:
        // a look at the end (as for the length) keeps the work in flight
        // for a return to where the reader was.
        if self.pos != self.buf_pos && self.pos < self.len {
            self.reconcile();
        }
        Ok(())
    }

    /// Counts a read of `len` bytes: the streak and the read-size average
    /// that size requests. Early in a streak the producer hears of every
    /// read, so read-ahead starts on time.
    fn note_read(&mut self, len: u64) -> Result<()> {
        self.streak = self.streak.saturating_add(1);
        if len > 0 {
            self.read_sizes.add(len);
        }
        // A read served by a hint is none of the epoch's business.
        let hinted = self.hints.covering(self.pos).is_some()
            || (self.current_hint.is_some() && self.buffers.in_current(self.pos));
        if self.started && !hinted && reports_every_read(self.streak) {
            self.send(Event::Progress {
                epoch: self.epoch,
                reader: self.reader_state(len),
            })?;
        }
        Ok(())
    }

    fn reconcile(&mut self) {
        // A seek ends the run: read-ahead is earned again from here.
        self.run = 0;
        let frontier = *self.frontier.lock();
        let view = SeekView {
            started: self.started,
            target: self.pos,
            from: self.buf_pos,
            buffered_from: self.buffers.lowest_or(self.next_offset),
            next_offset: self.next_offset,
            requested_end: (frontier.epoch == self.epoch).then_some(frontier.end),
        };
        let hinted = self.hints.covering(self.pos).is_some();
        if self.current_hint.is_some() && self.buffers.in_current(self.pos) {
            // Inside the hinted part being read: its bytes are here or on
            // their way, and the epoch's read-ahead is not in question.
            Counters::add(&self.counters.soft_seeks, 1);
            self.buf_pos = self.pos;
            return;
        }
        match classify_seek(view) {
            SeekKind::Soft => Counters::add(&self.counters.soft_seeks, 1),
            // Served from a hint: no request of its own, though the
            // epoch's read-ahead is left behind.
            SeekKind::Hard if hinted => {
                Counters::add(&self.counters.soft_seeks, 1);
                self.new_epoch();
            }
            SeekKind::Hard => {
                Counters::add(&self.counters.hard_seeks, 1);
                self.new_epoch();
            }
            SeekKind::Unstarted => self.next_offset = self.pos,
        }
        self.buf_pos = self.pos;
    }

    /// Abandons the current epoch: cancels its requests and drops its
    /// blocks, without waiting for anything. The next read starts a new one
    /// at `pos`.
    fn new_epoch(&mut self) {
        self.cancel.store(true, Relaxed);
        self.cancel = Arc::new(AtomicBool::new(false));
        self.epoch += 1;
        self.started = false;
        self.next_offset = self.pos;
        self.streak = 0;
        self.read_sizes.clear();
        self.stash_hint();
        self.buffers.clear();
        if let Some(link) = &self.link {
            link.drain_blocks();
        }
    }

    /// The buffered bytes from the position on (empty when none are).
    fn available(&self) -> &[u8] {
        self.buffers.from(self.pos)
    }

    /// The buffered bytes from the position on, waiting for the byte at
    /// the position when none are; empty only at the end of the object.
    /// `want` is how many bytes the caller asks for, the demand told to
    /// the producer if a block must be asked for. Both `fill_buf` and
    /// `read` make bytes available through this alone.
    fn fill(&mut self, want: u64) -> Result<&[u8]> {
        while self.pos < self.len && !self.buffers.contains(self.pos) {
            if self.pool.is_current_thread_in_it() {
                // The job this read would wait for may be queued behind the
                // very thread that waits: a deadlock, so refuse instead.
                return Err(Error::InvalidConfig {
                    setting: "io_pool",
                    reason: "a reader cannot wait for data on a thread of its own I/O pool"
                        .to_owned(),
                });
            }
            if self.buffers.in_current(self.pos) {
                self.wait_for_current()?;
            } else if let Some((offset, _)) = self.hints.covering(self.pos) {
                self.take_hint(offset)?;
            } else {
                self.advance(want)?;
            }
        }
        Ok(self.available())
    }

    /// Takes the next block of this epoch from the producer and makes it
    /// the block being read (its bytes may not have arrived yet).
    fn advance(&mut self, want: u64) -> Result<()> {
        self.receive_hints();
        if std::mem::take(&mut self.read_hint) && self.started {
            // Read-ahead stops where hints begin: past a hint the reader
            // may be past all its epoch asked for, which starts again here.
            let frontier = *self.frontier.lock();
            if frontier.epoch == self.epoch && self.pos > frontier.end {
                self.new_epoch();
            }
        }
        let waited = Duration::from_nanos(self.counters.wait_nanos.load(Relaxed));
        let delivered = self.counters.bytes_delivered.load(Relaxed);
        self.pace.sample(Instant::now(), delivered, waited);
        let reader = self.reader_state(want);
        if self.started {
            self.send(Event::Progress {
                epoch: self.epoch,
                reader,
            })?;
        } else {
            self.send(Event::Restart {
                epoch: self.epoch,
                reader,
                cancel: self.cancel.clone(),
            })?;
            self.started = true;
            self.next_offset = self.pos;
            self.next_ticket = None;
        }
        self.leave_current();
        loop {
            let block = self.receive_block()?;
            if block.epoch != self.epoch {
                continue;
            }
            debug_assert_eq!(block.offset, self.next_offset, "blocks arrive in order");
            debug_assert!(self.next_ticket.is_none_or(|t| block.ticket > t));
            self.next_offset = block.end();
            self.next_ticket = Some(block.ticket);
            if block.end() <= self.pos {
                // Skipped by a soft seek: never waited for.
                self.buffers.clear_behind();
                continue;
            }
            self.buffers
                .set_current(block.offset, BlockData::new(block.part));
            return Ok(());
        }
    }

    /// Makes the hinted part at `offset` the block being read, waiting
    /// for it if the producer has not issued it yet.
    fn take_hint(&mut self, offset: u64) -> Result<()> {
        self.receive_hints();
        let issued = self
            .hints
            .covering(self.pos)
            .is_some_and(|(_, issued)| issued);
        let generation = self.hints.generation();
        if !issued {
            // The epoch's read-ahead, or a part of an earlier call being
            // read, may hold the memory the hint needs; and it is asked
            // for next.
            self.new_epoch();
            self.send(Event::NeedHint { generation, offset })?;
        }
        let started = Instant::now();
        loop {
            if let Some(data) = self.hints.take(offset) {
                self.add_wait(started);
                self.leave_current();
                self.buffers.set_current(offset, data);
                self.current_hint = Some(generation);
                self.read_hint = true;
                return Ok(());
            }
            if !issued {
                // Hinted parts held, and those arriving, must leave it room.
                self.hints.make_room_for(offset);
            }
            let hinted = self
                .link()?
                .hinted
                .recv()
                .map_err(|_| Error::Terminated("the producer thread ended".to_owned()))?;
            self.hints.receive(hinted);
            self.receive_hints();
        }
    }

    /// Leaves the block being read for another: a hinted part not read to
    /// its end goes back to the hints, any other block to the window
    /// behind.
    fn leave_current(&mut self) {
        self.stash_hint();
        self.buffers.finish_current(self.pos);
    }

    /// Puts the hinted part being read back among the hints unless it was
    /// read through, so a later read of the rest needs no request.
    fn stash_hint(&mut self) {
        if let Some(generation) = self.current_hint.take() {
            if let Some((offset, data)) = self.buffers.take_current_unread() {
                self.hints.put_back(generation, offset, data);
            }
        }
    }

    /// Takes the hinted parts the producer has sent (those of earlier calls
    /// are dropped).
    fn receive_hints(&mut self) {
        if let Some(link) = &self.link {
            for hinted in link.hinted.try_iter() {
                self.hints.receive(hinted);
            }
        }
    }

    /// Waits until the block being read has the byte at the position, or
    /// fails; says at `info` level what the reader waits for when the
    /// source stays silent (after [`SILENCE_FIRST_NOTE`], then at doubling
    /// intervals), so `-v` shows why nothing moves.
    fn wait_for_current(&mut self) -> Result<()> {
        let started = Instant::now();
        let mut patience = SILENCE_FIRST_NOTE;
        let waited = loop {
            let Some((offset, data)) = self.buffers.current() else {
                return Ok(());
            };
            let beyond = (self.pos - offset) as usize;
            match data
                .part()
                .wait(beyond, patience.saturating_sub(started.elapsed()))
            {
                Waited::TimedOut => {
                    log::info!(
                        "{}: waited {} s for bytes {}..{} from the source ({} bytes received so far)",
                        self.source.location(),
                        started.elapsed().as_secs(),
                        self.pos,
                        offset + data.len() as u64,
                        self.counters.bytes_fetched.load(Relaxed)
                    );
                    patience = patience.saturating_mul(2);
                }
                other => break other,
            }
        };
        self.add_wait(started);
        match waited {
            Waited::Failed(err) => {
                // Later blocks of this epoch are dropped, and a failed
                // hinted part too; the next read starts again here.
                self.current_hint = None;
                self.new_epoch();
                Err(err)
            }
            Waited::Ready | Waited::TimedOut => Ok(()),
        }
    }

    fn receive_block(&mut self) -> Result<Block> {
        let link = self.link()?;
        let started = Instant::now();
        let block = link.blocks.recv();
        let _ = link.events.send(Event::Taken);
        self.add_wait(started);
        block.map_err(|_| Error::Terminated("the producer thread ended".to_owned()))
    }

    fn add_wait(&self, since: Instant) {
        let nanos = u64::try_from(since.elapsed().as_nanos()).unwrap_or(u64::MAX);
        Counters::add(&self.counters.wait_nanos, nanos);
    }

    fn consume_bytes(&mut self, n: usize) {
        let start = self.pos;
        self.run = self.run.saturating_add(n as u64);
        self.pos += n as u64;
        self.buf_pos = self.pos;
        Counters::add(&self.counters.bytes_delivered, n as u64);
        self.buffers.delivered(start, n);
    }
}

impl<S: RangeSource> Read for PrefetchReader<S> {
    /// Appends the rest of the object to `buf`, reserving its length once
    /// and copying from the blocks.
    fn read_to_end(&mut self, buf: &mut Vec<u8>) -> io::Result<usize> {
        self.link()?;
        let rest = self.len.saturating_sub(self.pos);
        buf.try_reserve(usize::try_from(rest).unwrap_or(usize::MAX))
            .map_err(|err| io::Error::new(io::ErrorKind::OutOfMemory, err))?;
        let before = buf.len();
        self.copy_to(buf)?;
        Ok(buf.len() - before)
    }

    /// Fills `buf` from the bytes [`fill_buf`](BufRead::fill_buf) makes
    /// available, block after block, and consumes them: the producer is
    /// told of one read of `buf.len()` bytes, its demand.
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.link()?;
        if buf.is_empty() {
            return Ok(0);
        }
        self.begin()?;
        if self.pos >= self.len {
            // Nothing to read, so nothing to tell the producer: a probe
            // of the end is no reason to read ahead.
            return Ok(0);
        }
        self.note_read(buf.len() as u64)?;
        let mut filled = 0;
        while filled < buf.len() {
            match self.fill((buf.len() - filled) as u64) {
                Ok([]) => break,
                Ok(available) => {
                    let n = available.len().min(buf.len() - filled);
                    buf[filled..filled + n].copy_from_slice(&available[..n]);
                    filled += n;
                    self.consume(n);
                }
                Err(err) if filled == 0 => return Err(err.into()),
                Err(err) => {
                    self.pending_error = Some(err);
                    break;
                }
            }
        }
        Ok(filled)
    }
}

impl<S: RangeSource> BufRead for PrefetchReader<S> {
    /// Lends the buffered bytes at the position, waiting for the first of
    /// them when none are buffered; empty at the end of the object.
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        self.begin()?;
        if self.available().is_empty() && self.pos < self.len {
            self.note_read(0)?;
        }
        Ok(self.fill(1)?)
    }

    /// Marks `amt` bytes of the last [`fill_buf`](Self::fill_buf) as
    /// read. After a seek with no `fill_buf` since, the seek still takes
    /// effect at the next read, wherever `consume` moved the position.
    fn consume(&mut self, amt: usize) {
        if self.link.is_none() {
            return;
        }
        let n = amt.min(self.available().len());
        if self.pos == self.buf_pos {
            self.consume_bytes(n);
        } else {
            // A seek not yet reconciled: move only the caller's position,
            // so the next read still sees (and classifies) the seek.
            self.buffers.delivered(self.pos, n);
            self.pos += n as u64;
            Counters::add(&self.counters.bytes_delivered, n as u64);
        }
    }
}

impl<S: RangeSource> Seek for PrefetchReader<S> {
    /// Moves the position; nothing is fetched until the next read. A seek
    /// past the end is allowed (reads there return 0).
    fn seek(&mut self, from: SeekFrom) -> io::Result<u64> {
        self.link()?;
        let target = match from {
            SeekFrom::Start(n) => i128::from(n),
            SeekFrom::End(delta) => i128::from(self.len) + i128::from(delta),
            SeekFrom::Current(delta) => i128::from(self.pos) + i128::from(delta),
        };
        let pos = u64::try_from(target).map_err(|_| Error::InvalidSeek {
            object: self.source.location(),
            target,
        })?;
        if pos != self.pos {
            self.pending_error = None;
            self.pos = pos;
        }
        Ok(pos)
    }

    fn stream_position(&mut self) -> io::Result<u64> {
        self.link()?;
        Ok(self.pos)
    }
}

impl<S: RangeSource> Drop for PrefetchReader<S> {
    fn drop(&mut self) {
        if let Err(err) = self.close() {
            log::warn!("closing the reader of {}: {err}", self.source.location());
        }
    }
}

impl<S: RangeSource> fmt::Debug for PrefetchReader<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PrefetchReader")
            .field("source", &self.source)
            .field("len", &self.len)
            .field("pos", &self.pos)
            .field("epoch", &self.epoch)
            .field("buffered", &self.available().len())
            .field("behind", &self.buffers.behind_len())
            .field("closed", &self.link.is_none())
            .finish()
    }
}
