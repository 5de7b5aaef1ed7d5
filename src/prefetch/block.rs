//! Blocks: one range request's bytes, self-identifying, travelling from a
//! fetch job to the reader; and the charge that keeps their memory counted.

use std::fmt;
use std::sync::Arc;

use crossbeam_channel::{Receiver, Sender};

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
}

impl Drop for Charge {
    fn drop(&mut self) {
        self.counters.free(self.bytes);
        if let Some(events) = &self.events {
            // The producer may have ended; then nobody waits for room.
            let _ = events.send(Event::Freed);
        }
    }
}

/// The bytes of a completed block, charged until dropped.
pub(crate) struct BlockData {
    pub(crate) bytes: Vec<u8>,
    pub(crate) _charge: Charge,
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
