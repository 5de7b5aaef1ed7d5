//! Blocks: one range request's bytes, self-identifying, handed from a fetch
//! job to the reader as they arrive; and the charge that keeps their memory
//! counted.

use std::fmt;
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::Sender;
use parking_lot::{Condvar, Mutex};

use super::admission::Admission;
use super::part_buffer::PartBuffer;
use super::producer::Event;
use crate::error::{Error, Result};
use crate::source::PartSink;
use crate::stats::Counters;

/// Bytes counted as allocated for blocks until dropped. A part's charge
/// starts at nothing and grows as its bytes arrive
/// ([`Admission`](super::admission::Admission)); the window behind's is
/// taken whole.
pub(crate) struct Charge {
    bytes: AtomicU64,
    counters: Arc<Counters>,
    /// Told when the bytes are freed: the producer may be waiting for room.
    events: Option<Sender<Event>>,
    /// Whether this is the window behind the reader's charge.
    behind: bool,
}

impl Charge {
    /// An empty charge for a part, to grow as its bytes arrive; `events`
    /// hears when it is freed.
    pub(crate) fn empty(counters: Arc<Counters>, events: Option<Sender<Event>>) -> Charge {
        Charge {
            bytes: AtomicU64::new(0),
            counters,
            events,
            behind: false,
        }
    }

    /// The charge of the window behind the reader, for which the producer
    /// always keeps room.
    pub(crate) fn behind(bytes: u64, counters: Arc<Counters>) -> Charge {
        Counters::add(&counters.behind, bytes);
        counters.allocate(bytes);
        Charge {
            bytes: AtomicU64::new(bytes),
            counters,
            events: None,
            behind: true,
        }
    }

    #[cfg(test)]
    pub(crate) fn bytes(&self) -> u64 {
        self.bytes.load(Relaxed)
    }

    /// Charges `n` bytes more.
    pub(crate) fn grow(&self, n: u64) {
        self.bytes.fetch_add(n, Relaxed);
        self.counters.allocate(n);
    }
}

impl Drop for Charge {
    fn drop(&mut self) {
        let bytes = *self.bytes.get_mut();
        if self.behind {
            self.counters.behind.fetch_sub(bytes, Relaxed);
        }
        self.counters.free(bytes);
        if let Some(events) = &self.events {
            // The producer may have ended; then nobody waits for room.
            let _ = events.send(Event::Freed);
        }
    }
}

/// One part's buffer, shared by the fetch job that fills it and the reader,
/// which uses its committed bytes while the rest arrive. Its committed
/// bytes are charged until it is dropped; then the bytes of it never
/// handed to the caller count as wasted, wherever it is dropped (by the
/// reader, in a channel, or by a job whose part nobody wants any more).
pub(crate) struct Part {
    /// The buffer's first byte: bytes before `filled` are read through it
    /// by the reader, bytes after are written through it by the job's
    /// [`PartSink`], and the buffer itself is not touched while shared.
    start: *mut u8,
    len: usize,
    /// Freed before the charge, so the producer told of the room finds
    /// the memory gone.
    _buffer: Option<PartBuffer>,
    /// Bytes committed: written once, final, readable.
    filled: AtomicUsize,
    /// Bytes of it handed to the caller, added as the reader's views go.
    delivered: AtomicUsize,
    state: Mutex<PartState>,
    changed: Condvar,
    /// The committed bytes' charge, grown as they are admitted.
    charge: Charge,
    admission: Arc<Admission>,
    /// The flag of the epoch (or hints) it was requested for.
    cancel: Arc<AtomicBool>,
    counters: Arc<Counters>,
}

// SAFETY: the buffer is written only through the one `PartWriter`'s sink,
// from `filled` on, and read only below `filled` (published with Release,
// read with Acquire), so threads never touch the same byte at once; every
// other field is `Send + Sync`.
unsafe impl Send for Part {}
// SAFETY: as for `Send`.
unsafe impl Sync for Part {}

enum PartState {
    Filling,
    Done,
    /// The fetch failed; the error goes to the first reader that waits.
    Failed(Option<Error>),
}

/// What a wait for a part's bytes found.
pub(crate) enum Waited {
    /// Bytes past the ones waited beyond are committed (or the part is
    /// complete).
    Ready,
    /// The fetch failed.
    Failed(Error),
    /// Nothing changed within the patience given.
    TimedOut,
}

impl Part {
    /// A part whose bytes live in `buffer`, to be filled by the returned
    /// writer, its bytes charged to `charge` (empty) as `admission` takes
    /// them, until `cancel` is set; a buffer that could not be made gives
    /// a part that failed with that error.
    pub(crate) fn new(
        buffer: Result<PartBuffer>,
        charge: Charge,
        admission: Arc<Admission>,
        cancel: Arc<AtomicBool>,
        counters: Arc<Counters>,
    ) -> (Arc<Part>, PartWriter) {
        let (mut buffer, state) = match buffer {
            Ok(buffer) => (Some(buffer), PartState::Filling),
            Err(err) => (None, PartState::Failed(Some(err))),
        };
        let (start, len) = match buffer.as_mut() {
            Some(buffer) => {
                let bytes = buffer.as_mut_slice();
                (bytes.as_mut_ptr(), bytes.len())
            }
            None => (std::ptr::NonNull::dangling().as_ptr(), 0),
        };
        let part = Arc::new(Part {
            start,
            len,
            _buffer: buffer,
            filled: AtomicUsize::new(0),
            delivered: AtomicUsize::new(0),
            state: Mutex::new(state),
            changed: Condvar::new(),
            charge,
            admission,
            cancel,
            counters,
        });
        let writer = PartWriter { part: part.clone() };
        (part, writer)
    }

    /// The bytes committed so far.
    pub(crate) fn bytes(&self) -> &[u8] {
        let filled = self.filled.load(Acquire);
        // SAFETY: the first `filled` bytes were written before `filled`
        // was published and are never written again.
        unsafe { std::slice::from_raw_parts(self.start, filled) }
    }

    /// The part's length, committed or not.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Waits up to `patience` until more than `beyond` bytes are committed,
    /// the part is complete, or its fetch failed.
    pub(crate) fn wait(&self, beyond: usize, patience: Duration) -> Waited {
        let deadline = Instant::now() + patience;
        let mut state = self.state.lock();
        loop {
            if self.filled.load(Acquire) > beyond {
                return Waited::Ready;
            }
            match &mut *state {
                // Done only once every byte was committed (`PartWriter::fill`).
                PartState::Done => return Waited::Ready,
                PartState::Failed(err) => {
                    let err = err
                        .take()
                        .unwrap_or_else(|| Error::Terminated("the part's fetch failed".to_owned()));
                    return Waited::Failed(err);
                }
                PartState::Filling => {}
            }
            if self.changed.wait_until(&mut state, deadline).timed_out() {
                return Waited::TimedOut;
            }
        }
    }

    /// The bytes not yet arrived, as far as the last commit said.
    pub(crate) fn unarrived(&self) -> u64 {
        (self.len - self.filled.load(Acquire)) as u64
    }

    /// Takes the bytes committed up to `filled`: charges them and hands
    /// them to the reader, unless the part's read was abandoned.
    fn commit(&self, filled: usize) -> bool {
        let grown = filled - self.filled.load(Relaxed);
        let admitted = self
            .admission
            .admit(&self.cancel, &self.charge, grown as u64, || {
                self.filled.store(filled, Release);
            });
        if admitted {
            // Under the lock: a reader checks `filled` under it before it
            // sleeps, so it cannot miss this.
            let _state = self.state.lock();
            self.changed.notify_all();
        }
        admitted
    }

    fn finish(&self, result: Result<()>) {
        let mut state = self.state.lock();
        *state = match result {
            Ok(()) => PartState::Done,
            Err(err) => PartState::Failed(Some(err)),
        };
        self.changed.notify_all();
    }
}

impl Drop for Part {
    fn drop(&mut self) {
        let filled = *self.filled.get_mut();
        let unread = filled.saturating_sub(*self.delivered.get_mut()) as u64;
        Counters::add(&self.counters.bytes_wasted, unread);
    }
}

/// The one handle that writes a [`Part`]: its fetch job's. Dropped before
/// it filled the part (a panic on the way), it fails the part, so no
/// reader waits for bytes that will never come.
pub(crate) struct PartWriter {
    part: Arc<Part>,
}

impl Drop for PartWriter {
    fn drop(&mut self) {
        let mut state = self.part.state.lock();
        if matches!(*state, PartState::Filling) {
            *state = PartState::Failed(Some(Error::Terminated(
                "the fetch job ended before its part was filled".to_owned(),
            )));
            self.part.changed.notify_all();
        }
    }
}

impl PartWriter {
    /// Runs `fill` on a sink over the part's buffer, then marks the part
    /// complete or failed: a part left short of its length (whatever
    /// became of the sink) is `truncated()`. Returns whether it succeeded,
    /// and the bytes the part took (its own count, whatever became of the
    /// sink).
    pub(crate) fn fill(
        self,
        fill: impl FnOnce(&mut PartSink<'_>) -> Result<()>,
        truncated: impl FnOnce(usize) -> Error,
    ) -> (bool, usize) {
        let part = &*self.part;
        if matches!(*part.state.lock(), PartState::Failed(_)) {
            // No buffer could be made.
            return (false, 0);
        }
        let commit = |filled: usize| part.commit(filled);
        // SAFETY: the buffer lives as long as the part, which this writer
        // keeps alive; this writer is the part's only one, made once, and
        // readers read only the bytes the sink committed.
        let mut sink = unsafe { PartSink::from_raw(part.start, part.len, &commit) };
        let result = fill(&mut sink).and_then(|()| {
            // The part's own count: a source may have put another sink in
            // this one's place.
            let filled = part.filled.load(Acquire);
            if filled == part.len {
                Ok(())
            } else {
                Err(truncated(filled))
            }
        });
        let ok = result.is_ok();
        part.finish(result);
        (ok, part.filled.load(Acquire))
    }
}

/// The reader's view of a part: which of its bytes were handed to the
/// caller, added to the part's count when the view goes.
pub(crate) struct BlockData {
    part: Arc<Part>,
    /// The spans of it handed to the caller: sorted, apart, merged as they
    /// touch (one span for a block read in order).
    delivered: Vec<(usize, usize)>,
}

impl BlockData {
    pub(crate) fn new(part: Arc<Part>) -> BlockData {
        BlockData {
            part,
            delivered: Vec::new(),
        }
    }

    /// The bytes committed so far.
    pub(crate) fn bytes(&self) -> &[u8] {
        self.part.bytes()
    }

    /// The block's length, committed or not.
    pub(crate) fn len(&self) -> usize {
        self.part.len()
    }

    /// The part, to wait for its bytes.
    pub(crate) fn part(&self) -> &Part {
        &self.part
    }

    /// Records that the bytes `start..end` of it were handed to the
    /// caller.
    pub(crate) fn delivered(&mut self, start: usize, end: usize) {
        let end = end.min(self.len());
        if start >= end {
            return;
        }
        // Reading in order, every read continues the last span.
        if let Some(last) = self.delivered.last_mut() {
            if last.0 <= start && start <= last.1 {
                last.1 = last.1.max(end);
                return;
            }
        }
        // Spans wholly before or after the new one stay; the ones it
        // touches merge into it.
        let first = self.delivered.partition_point(|&(_, e)| e < start);
        let last = self.delivered.partition_point(|&(s, _)| s <= end);
        let (mut lo, mut hi) = (start, end);
        if first < last {
            lo = lo.min(self.delivered[first].0);
            hi = hi.max(self.delivered[last - 1].1);
        }
        self.delivered.splice(first..last, [(lo, hi)]);
    }

    /// The spans of `start..end` of it not handed to the caller, which
    /// are then taken as handed over: the window behind the reader keeps
    /// them, and counts them as wasted if they leave it unread.
    pub(crate) fn take_undelivered(&mut self, start: usize, end: usize) -> Vec<(usize, usize)> {
        let end = end.min(self.len());
        let mut gaps = Vec::new();
        let mut at = start;
        for &(s, e) in &self.delivered {
            if e <= at {
                continue;
            }
            if s >= end {
                break;
            }
            if s > at {
                gaps.push((at, s));
            }
            at = at.max(e);
        }
        if at < end {
            gaps.push((at, end));
        }
        for &(s, e) in &gaps {
            self.delivered(s, e);
        }
        gaps
    }

    /// Whether every byte of it was handed to the caller.
    pub(crate) fn read_through(&self) -> bool {
        self.delivered_bytes() >= self.len()
    }

    /// Bytes of it handed to the caller, each counted once.
    fn delivered_bytes(&self) -> usize {
        self.delivered.iter().map(|&(s, e)| e - s).sum()
    }
}

impl Drop for BlockData {
    fn drop(&mut self) {
        let delivered = self.delivered_bytes();
        self.part.delivered.fetch_add(delivered, Relaxed);
    }
}

/// A block as the reader receives it, in ticket order: which request it is,
/// and the part its fetch job fills.
pub(crate) struct Block {
    /// The span between hard seeks it belongs to; the reader drops blocks
    /// of earlier epochs unread.
    pub(crate) epoch: u64,
    /// Issue order, for checking that blocks arrive in order.
    pub(crate) ticket: u64,
    pub(crate) offset: u64,
    pub(crate) len: u64,
    pub(crate) part: Arc<Part>,
}

impl Block {
    pub(crate) fn end(&self) -> u64 {
        self.offset + self.len
    }
}

/// A part the caller hinted at, as the reader receives it: which call's
/// hints it belongs to, where it starts, and the part its job fills.
pub(crate) struct HintedPart {
    pub(crate) generation: u64,
    pub(crate) offset: u64,
    pub(crate) part: Arc<Part>,
}

impl fmt::Debug for Block {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Block")
            .field("epoch", &self.epoch)
            .field("ticket", &self.ticket)
            .field("offset", &self.offset)
            .field("len", &self.len)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(len: usize) -> (Arc<Part>, PartWriter, Arc<Counters>) {
        let counters = Arc::new(Counters::default());
        let charge = Charge::empty(counters.clone(), None);
        let (part, writer) = Part::new(
            PartBuffer::new(len).map_err(|err| Error::io("buffer", err)),
            charge,
            Arc::default(),
            Arc::default(),
            counters.clone(),
        );
        (part, writer, counters)
    }

    fn block(len: usize) -> (BlockData, Arc<Counters>) {
        let (part, writer, counters) = part(len);
        let (filled, _) = writer.fill(
            |sink| {
                sink.commit(len);
                Ok(())
            },
            |_| Error::Cancelled,
        );
        assert!(filled);
        (BlockData::new(part), counters)
    }

    #[test]
    fn a_reader_uses_each_committed_byte_while_the_rest_arrive() {
        let (part, writer, counters) = part(300);
        let (step_tx, step_rx) = crossbeam_channel::bounded::<()>(0);
        let job = std::thread::spawn(move || {
            let (filled, _) = writer.fill(
                |sink| {
                    for byte in 0..3u8 {
                        step_rx.recv().expect("step");
                        sink.unfilled()[..100].fill(byte + 1);
                        sink.commit(100);
                    }
                    Ok(())
                },
                |_| Error::Cancelled,
            );
            filled
        });
        let mut data = BlockData::new(part);
        let patience = Duration::from_secs(10);
        assert!(matches!(
            data.part().wait(0, Duration::ZERO),
            Waited::TimedOut
        ));
        for byte in 0..3u8 {
            step_tx.send(()).expect("step");
            let seen = 100 * byte as usize;
            assert!(matches!(data.part().wait(seen, patience), Waited::Ready));
            let bytes = data.bytes();
            assert!(bytes.len() > seen && bytes[seen..].iter().all(|&b| b == byte + 1));
        }
        assert!(job.join().expect("job"));
        assert_eq!(data.bytes().len(), 300);
        data.delivered(0, 100);
        drop(data);
        assert_eq!(counters.snapshot().bytes_wasted, 200);
    }

    #[test]
    fn a_parts_charge_follows_its_commits_and_stops_when_its_read_is_abandoned() {
        let counters = Arc::new(Counters::default());
        let cancel = Arc::new(AtomicBool::new(false));
        let (part, writer) = Part::new(
            PartBuffer::new(300).map_err(|err| Error::io("buffer", err)),
            Charge::empty(counters.clone(), None),
            Arc::default(),
            cancel.clone(),
            counters.clone(),
        );
        assert_eq!(counters.snapshot().allocated, 0);
        let (filled, _) = writer.fill(
            |sink| {
                sink.unfilled()[..100].fill(1);
                sink.commit(100);
                assert_eq!(counters.snapshot().allocated, 100);
                cancel.store(true, Relaxed);
                sink.unfilled()[..100].fill(2);
                sink.commit(100);
                assert_eq!(
                    sink.filled(),
                    100,
                    "a commit after the abandonment is refused"
                );
                Err(Error::Cancelled)
            },
            |_| Error::Cancelled,
        );
        assert!(!filled);
        assert_eq!(part.bytes(), [1; 100]);
        assert_eq!(counters.snapshot().allocated, 100);
        drop(part);
        assert_eq!(counters.snapshot().allocated, 0);
    }

    #[test]
    fn a_part_left_short_fails_with_the_truncation_and_its_bytes_stay_usable() {
        let (part, writer, _) = part(100);
        let (filled, _) = writer.fill(
            |sink| {
                sink.unfilled()[..40].fill(7);
                sink.commit(40);
                Ok(())
            },
            |filled| Error::Terminated(format!("short at {filled}")),
        );
        assert!(!filled);
        assert_eq!(part.bytes(), [7; 40]);
        match part.wait(40, Duration::ZERO) {
            Waited::Failed(Error::Terminated(message)) => assert_eq!(message, "short at 40"),
            _ => panic!("the truncation is the part's error"),
        }
    }

    #[test]
    fn undelivered_spans_taken_for_the_window_behind_are_not_wasted_by_the_part() {
        let (mut data, counters) = block(1000);
        data.delivered(100, 200);
        data.delivered(300, 400);
        assert_eq!(data.take_undelivered(150, 900), [(200, 300), (400, 900)]);
        assert_eq!(data.take_undelivered(150, 900), []);
        drop(data);
        // 0..100 and 900..1000 were neither handed over nor taken.
        assert_eq!(counters.snapshot().bytes_wasted, 200);
    }

    #[test]
    fn bytes_handed_over_in_any_order_count_once_and_the_rest_is_wasted() {
        let (mut data, counters) = block(1000);
        for (start, end) in [
            (0, 100),
            (500, 600),
            (50, 150),
            (300, 400),
            (590, 700),
            (0, 10),
        ] {
            data.delivered(start, end);
        }
        assert_eq!(data.delivered, [(0, 150), (300, 400), (500, 700)]);
        data.delivered(150, 300);
        assert_eq!(data.delivered, [(0, 400), (500, 700)]);
        data.delivered(900, 5000);
        assert_eq!(data.delivered_bytes(), 400 + 200 + 100);
        drop(data);
        assert_eq!(counters.snapshot().bytes_wasted, 300);
    }
}
