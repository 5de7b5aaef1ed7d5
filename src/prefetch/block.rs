//! Blocks: one range request's bytes, self-identifying, travelling from a
//! fetch job to the reader; and the charge that keeps their memory counted.

use std::fmt;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use crossbeam_channel::{Receiver, Sender};
use parking_lot::Mutex;

use super::part_buffer::PartBuffer;
use super::producer::Event;
use crate::error::Result;
use crate::stats::Counters;

/// Bytes counted as allocated for blocks until dropped. Made by the producer
/// before a request is started (memory is accounted at allocation, not at
/// completion), so abandoned requests count until their jobs end.
pub(crate) struct Charge {
    bytes: u64,
    counters: Arc<Counters>,
    /// Told when the bytes are freed: the producer may be waiting for room.
    events: Option<Sender<Event>>,
    /// Whether this is the window behind the reader's charge.
    behind: bool,
}

impl Charge {
    pub(crate) fn new(
        bytes: u64,
        counters: Arc<Counters>,
        events: Option<Sender<Event>>,
    ) -> Charge {
        counters.allocate(bytes);
        Charge {
            bytes,
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
            bytes,
            counters,
            events: None,
            behind: true,
        }
    }

    pub(crate) fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Tells the producer that room may have been made.
    fn notify(&self) {
        if let Some(events) = &self.events {
            // The producer may have ended; then nobody waits for room.
            let _ = events.send(Event::Freed);
        }
    }
}

impl Drop for Charge {
    fn drop(&mut self) {
        if self.behind {
            self.counters.behind.fetch_sub(self.bytes, Relaxed);
        }
        self.counters.free(self.bytes);
        self.notify();
    }
}

/// Buffers kept for reuse: at most this many. Enough to cover the blocks
/// a reader retires between two decisions of the producer.
const SPARE_BUFFERS: usize = 4;

/// Buffers of dropped blocks, kept (and still charged) for the producer's
/// next requests: steady reading then reuses buffers instead of allocating,
/// zeroing and faulting in fresh ones. The producer counts them as free
/// room, and frees them when it needs that room for a buffer of another
/// size.
#[derive(Default)]
pub(crate) struct Spares {
    buffers: Mutex<Vec<(PartBuffer, Charge)>>,
}

impl Spares {
    /// Keeps `bytes` for reuse; when full, frees the smallest buffer.
    fn put(&self, bytes: PartBuffer, charge: Charge) {
        let mut buffers = self.buffers.lock();
        charge.notify();
        buffers.push((bytes, charge));
        if buffers.len() > SPARE_BUFFERS {
            if let Some(smallest) = (0..buffers.len()).min_by_key(|&i| buffers[i].0.capacity()) {
                buffers.swap_remove(smallest);
            }
        }
    }

    /// Bytes charged for the spare buffers.
    pub(crate) fn charged(&self) -> u64 {
        self.buffers.lock().iter().map(|(_, c)| c.bytes()).sum()
    }

    /// A buffer for a block of `len` bytes whose charge, with the others'
    /// `allocated` bytes, stays within `limit`: a spare of about that size
    /// when one fits, else `None`. Spares are freed while they would keep
    /// the total over `limit`.
    pub(crate) fn take(
        &self,
        len: u64,
        allocated: &dyn Fn() -> u64,
        limit: u64,
    ) -> Option<(PartBuffer, Charge)> {
        let mut buffers = self.buffers.lock();
        // About the size: steady parts are all alike; a bigger buffer for a
        // small block would hold memory the policy did not count.
        let fits = |capacity: u64| capacity >= len && capacity <= len + len / 8;
        let found = (0..buffers.len()).find(|&i| fits(buffers[i].0.capacity() as u64));
        let taken = found.map(|i| buffers.swap_remove(i));
        let needed = taken.as_ref().map_or(len, |_| 0);
        while allocated() + needed > limit && buffers.pop().is_some() {}
        match taken {
            Some(taken) if allocated() <= limit => Some(taken),
            // Only possible when the buffer is larger than the block: the
            // caller allocates one of the right size instead.
            _ => None,
        }
    }
}

/// The bytes of a completed block, charged until dropped; then its buffer
/// goes to the [`Spares`], and the bytes of it never handed to the caller
/// count as wasted, wherever it is dropped (by the reader, in a channel,
/// or by a job whose block nobody wants any more).
pub(crate) struct BlockData {
    bytes: Option<PartBuffer>,
    charge: Option<Charge>,
    spares: Arc<Spares>,
    counters: Arc<Counters>,
    /// The spans of it handed to the caller: sorted, apart, merged as they
    /// touch (one span for a block read in order).
    delivered: Vec<(usize, usize)>,
}

impl BlockData {
    pub(crate) fn new(
        bytes: PartBuffer,
        charge: Charge,
        spares: Arc<Spares>,
        counters: Arc<Counters>,
    ) -> BlockData {
        BlockData {
            bytes: Some(bytes),
            charge: Some(charge),
            spares,
            counters,
            delivered: Vec::new(),
        }
    }

    pub(crate) fn bytes(&self) -> &[u8] {
        self.bytes.as_ref().map_or(&[], PartBuffer::as_slice)
    }

    /// Records that the bytes `start..end` of it were handed to the
    /// caller.
    pub(crate) fn delivered(&mut self, start: usize, end: usize) {
        let end = end.min(self.bytes().len());
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

    /// Bytes of it handed to the caller, each counted once.
    fn delivered_bytes(&self) -> usize {
        self.delivered.iter().map(|&(s, e)| e - s).sum()
    }
}

impl Drop for BlockData {
    fn drop(&mut self) {
        let unread = (self.bytes().len() - self.delivered_bytes()) as u64;
        Counters::add(&self.counters.bytes_wasted, unread);
        if let (Some(bytes), Some(charge)) = (self.bytes.take(), self.charge.take()) {
            self.spares.put(bytes, charge);
        }
    }
}

/// A block as the reader receives it, in ticket order: which request it is,
/// and the one-shot channel its fetch job fills.
pub(crate) struct Block {
    /// The span between hard seeks it belongs to; the reader drops blocks
    /// of earlier epochs unread.
    pub(crate) epoch: u64,
    /// Issue order, for checking that blocks arrive in order.
    pub(crate) ticket: u64,
    pub(crate) offset: u64,
    pub(crate) len: u64,
    pub(crate) result: Receiver<Result<BlockData>>,
}

impl Block {
    pub(crate) fn end(&self) -> u64 {
        self.offset + self.len
    }
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

    fn block(len: usize) -> (BlockData, Arc<Counters>) {
        let counters = Arc::new(Counters::default());
        let charge = Charge::new(len as u64, counters.clone(), None);
        let bytes = PartBuffer::new(len).expect("buffer");
        let data = BlockData::new(bytes, charge, Arc::default(), counters.clone());
        (data, counters)
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
