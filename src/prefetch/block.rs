//! Blocks: one range request's bytes, self-identifying, travelling from a
//! fetch job to the reader; and the charge that keeps their memory counted.

use std::fmt;
use std::sync::Arc;

use crossbeam_channel::{Receiver, Sender};
use parking_lot::Mutex;

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
    buffers: Mutex<Vec<(Vec<u8>, Charge)>>,
}

impl Spares {
    /// Keeps `bytes` for reuse; when full, frees the smallest buffer.
    fn put(&self, bytes: Vec<u8>, charge: Charge) {
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
    ) -> Option<(Vec<u8>, Charge)> {
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
/// goes to the [`Spares`].
pub(crate) struct BlockData {
    bytes: Vec<u8>,
    charge: Option<Charge>,
    spares: Arc<Spares>,
}

impl BlockData {
    pub(crate) fn new(bytes: Vec<u8>, charge: Charge, spares: Arc<Spares>) -> BlockData {
        BlockData {
            bytes,
            charge: Some(charge),
            spares,
        }
    }

    pub(crate) fn bytes(&self) -> &[u8] {
        &self.bytes
    }
}

impl Drop for BlockData {
    fn drop(&mut self) {
        if let Some(charge) = self.charge.take() {
            self.spares.put(std::mem::take(&mut self.bytes), charge);
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
