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

/// The buffer of the last block dropped, kept (and still charged) for the
/// producer's next request: steady reading then reuses one buffer per part
/// instead of allocating, zeroing and faulting in a fresh one.
#[derive(Default)]
pub(crate) struct Spare {
    slot: Mutex<Option<(Vec<u8>, Charge)>>,
}

impl Spare {
    /// Keeps `bytes` if the slot is free; frees them otherwise.
    fn put(&self, bytes: Vec<u8>, charge: Charge) {
        let mut slot = self.slot.lock();
        if slot.is_none() {
            charge.notify();
            *slot = Some((bytes, charge));
        }
    }

    /// Bytes charged for the spare buffer, if any.
    pub(crate) fn charged(&self) -> u64 {
        self.slot
            .lock()
            .as_ref()
            .map_or(0, |(_, charge)| charge.bytes())
    }

    pub(crate) fn take(&self) -> Option<(Vec<u8>, Charge)> {
        self.slot.lock().take()
    }
}

/// The bytes of a completed block, charged until dropped; then its buffer
/// goes to the [`Spare`] slot when that is free.
pub(crate) struct BlockData {
    bytes: Vec<u8>,
    charge: Option<Charge>,
    spare: Arc<Spare>,
}

impl BlockData {
    pub(crate) fn new(bytes: Vec<u8>, charge: Charge, spare: Arc<Spare>) -> BlockData {
        BlockData {
            bytes,
            charge: Some(charge),
            spare,
        }
    }

    pub(crate) fn bytes(&self) -> &[u8] {
        &self.bytes
    }
}

impl Drop for BlockData {
    fn drop(&mut self) {
        if let Some(charge) = self.charge.take() {
            self.spare.put(std::mem::take(&mut self.bytes), charge);
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
