//! [`MemoryBudget`]: memory several readers share.
//!
//! Each reader's producer publishes what it has reserved (bytes charged
//! plus bytes still to arrive of its requests in flight) after every
//! decision, and makes a request only if it fits beside what the others
//! reserved, or within its own floor (one block; with hints, its own
//! budget), whatever the others hold, so no reader waits on another's
//! unread bytes (a caller reading two objects in turn would otherwise
//! deadlock). A request that fits is counted at once, so readers deciding
//! together cannot each take the same room. A reader that found no room
//! is woken when another's reservation falls.

use std::fmt;
use std::sync::Arc;

use crossbeam_channel::Sender;
use parking_lot::Mutex;

use crate::prefetch::producer::Event;

/// Memory for blocks that several readers share, on top of each reader's
/// own [`max_prefetch`](crate::ReaderBuilder::max_prefetch): readers built
/// with [`ReaderBuilder::memory_budget`](crate::ReaderBuilder::memory_budget)
/// start requests only while what they all hold and have asked for fits in
/// it. Each keeps a floor beyond it, so a reader always makes progress: one
/// block, or while it has hints from
/// [`will_need`](crate::PrefetchReader::will_need) its own `max_prefetch`
/// (its hints were planned within that). Together readers hold at most the
/// budget plus their floors. Without a shared budget a reader is bounded
/// by its `max_prefetch` alone.
///
/// ```
/// use prefetch_reader::{MemoryBudget, MemorySource, PrefetchReader};
/// use std::io::Read;
///
/// let budget = MemoryBudget::new(64 << 20);
/// let mut builder = PrefetchReader::builder();
/// builder.memory_budget(&budget);
/// let mut a = builder.build(MemorySource::new(vec![1; 1000]))?;
/// let mut b = builder.build(MemorySource::new(vec![2; 1000]))?;
/// let (mut x, mut y) = (Vec::new(), Vec::new());
/// a.read_to_end(&mut x)?;
/// b.read_to_end(&mut y)?;
/// assert_eq!(budget.readers(), 2);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct MemoryBudget(Arc<Shared>);

struct Shared {
    limit: u64,
    members: Mutex<Members>,
}

#[derive(Default)]
struct Members {
    next_id: u64,
    list: Vec<Member>,
}

struct Member {
    id: u64,
    reserved: u64,
    /// Whether its producer found no room and waits to be told of some.
    waiting: bool,
    wake: Sender<Event>,
}

impl MemoryBudget {
    /// A budget of `bytes` for the readers that join it.
    pub fn new(bytes: u64) -> MemoryBudget {
        MemoryBudget(Arc::new(Shared {
            limit: bytes,
            members: Mutex::default(),
        }))
    }

    /// The bytes it allows.
    pub fn limit(&self) -> u64 {
        self.0.limit
    }

    /// What its readers have reserved now: bytes they hold for blocks and
    /// bytes still to arrive of their requests in flight.
    pub fn reserved(&self) -> u64 {
        self.0.members.lock().list.iter().map(|m| m.reserved).sum()
    }

    /// How many readers share it now (a reader leaves once it is dropped
    /// and its last request has ended).
    pub fn readers(&self) -> usize {
        self.0.members.lock().list.len()
    }

    /// Adds a reader whose producer is woken through `wake`.
    pub(crate) fn join(&self, wake: Sender<Event>) -> Membership {
        let mut members = self.0.members.lock();
        let id = members.next_id;
        members.next_id += 1;
        members.list.push(Member {
            id,
            reserved: 0,
            waiting: false,
            wake,
        });
        Membership {
            budget: self.clone(),
            id,
        }
    }
}

impl fmt::Debug for MemoryBudget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryBudget")
            .field("limit", &self.limit())
            .field("reserved", &self.reserved())
            .field("readers", &self.readers())
            .finish()
    }
}

/// One reader's place in a [`MemoryBudget`]; it leaves when dropped.
pub(crate) struct Membership {
    budget: MemoryBudget,
    id: u64,
}

impl Membership {
    /// Publishes that the reader has `reserved` bytes now; readers that
    /// found no room are woken if it fell.
    pub(crate) fn publish(&self, reserved: u64) {
        let mut members = self.budget.0.members.lock();
        let Some(me) = members.list.iter_mut().find(|m| m.id == self.id) else {
            return;
        };
        let fell = reserved < me.reserved;
        me.reserved = reserved;
        if fell {
            wake_waiting(&mut members.list);
        }
    }

    /// Whether the reader, with `reserved` bytes after a request, may make
    /// it: beside what the others reserved within the limit, or within its
    /// own `floor`. When not, it is woken once room may have come.
    pub(crate) fn fits(&self, reserved: u64, floor: u64) -> bool {
        let mut members = self.budget.0.members.lock();
        let others: u64 = members
            .list
            .iter()
            .filter(|m| m.id != self.id)
            .map(|m| m.reserved)
            .sum();
        let fits = reserved <= floor || others.saturating_add(reserved) <= self.budget.0.limit;
        if let Some(me) = members.list.iter_mut().find(|m| m.id == self.id) {
            me.waiting = !fits;
            // Taken at once: a reader deciding at the same moment sees it.
            if fits {
                me.reserved = me.reserved.max(reserved);
            }
        }
        fits
    }
}

impl Drop for Membership {
    fn drop(&mut self) {
        let mut members = self.budget.0.members.lock();
        members.list.retain(|m| m.id != self.id);
        wake_waiting(&mut members.list);
    }
}

/// Wakes the readers waiting for room.
fn wake_waiting(list: &mut [Member]) {
    for member in list.iter_mut().filter(|m| m.waiting) {
        member.waiting = false;
        // A producer that ended needs no waking.
        let _ = member.wake.send(Event::Freed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readers_fit_beside_each_other_or_within_their_floor_and_are_woken_as_room_comes() {
        let budget = MemoryBudget::new(100);
        let (tx_a, rx_a) = crossbeam_channel::unbounded();
        let (tx_b, _rx_b) = crossbeam_channel::unbounded();
        let a = budget.join(tx_a);
        let b = budget.join(tx_b);
        b.publish(80);
        assert!(a.fits(20, 10));
        assert!(!a.fits(30, 10), "80 + 30 is over the limit");
        assert!(a.fits(10, 10), "within its floor whatever the others hold");
        assert!(!a.fits(30, 10));
        assert!(rx_a.try_recv().is_err());
        b.publish(50);
        assert!(matches!(rx_a.try_recv(), Ok(Event::Freed)));
        assert!(a.fits(30, 10));
        // What fits is counted at once, before `a` publishes.
        assert_eq!((budget.reserved(), budget.readers()), (80, 2));
        assert!(!b.fits(80, 10), "b sees a's 30 at once");
        assert!(!a.fits(60, 10));
        drop(b);
        assert!(matches!(rx_a.try_recv(), Ok(Event::Freed)));
        assert!(a.fits(60, 10));
        assert_eq!(budget.readers(), 1);
    }
}
