//! The reader's side of hints: the ranges the caller said it will read
//! ([`PrefetchReader::will_need`](crate::PrefetchReader::will_need)), as
//! the producer planned them into requests, and the parts fetching them as
//! the producer issues them. A read inside a planned request is served from
//! its part (waiting for it to be issued if need be); a part the reader
//! leaves before its end comes back here, so a return to it needs no
//! request; a part read to its end leaves, making room for the parts the
//! budget did not hold yet, and the next call's plan replaces whatever is
//! left.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::block::{BlockData, HintedPart};
use super::policy::Request;

/// One planned request: its length and, once issued, its part (with what
/// the reader took of it, if it was read and left).
struct Slot {
    len: u64,
    part: Option<BlockData>,
}

/// A call's plan, as the producer answers it.
pub(crate) struct HintPlan {
    /// The requests, in the order they are made.
    pub(crate) requests: Vec<Request>,
    /// Most bytes hinted parts may hold, the one the reader waits for
    /// included: the producer makes that one only when it fits.
    pub(crate) room: u64,
}

/// The current call's planned requests, by offset.
#[derive(Default)]
pub(crate) struct Hints {
    generation: u64,
    slots: BTreeMap<u64, Slot>,
    /// Each planned request's place in the plan, by offset.
    places: HashMap<u64, usize>,
    /// The slots holding a part, by place then offset, and the bytes of
    /// their requests: what [`make_room_for`](Self::make_room_for) drops
    /// from, last planned first, without walking the plan.
    held: BTreeSet<(usize, u64)>,
    held_bytes: u64,
    room: u64,
}

impl Hints {
    /// The number of the current call (0 before the first).
    pub(crate) fn generation(&self) -> u64 {
        self.generation
    }

    /// Replaces the hints with call `generation`'s plan; parts of earlier
    /// calls are dropped (their unread bytes count as wasted).
    pub(crate) fn replace(&mut self, generation: u64, plan: &HintPlan) {
        self.generation = generation;
        self.room = plan.room;
        self.held.clear();
        self.held_bytes = 0;
        self.places = plan
            .requests
            .iter()
            .enumerate()
            .map(|(place, request)| (request.offset, place))
            .collect();
        self.slots = plan
            .requests
            .iter()
            .map(|request| {
                let slot = Slot {
                    len: request.len,
                    part: None,
                };
                (request.offset, slot)
            })
            .collect();
    }

    /// Takes a part the producer issued; one of an earlier call is dropped.
    pub(crate) fn receive(&mut self, hinted: HintedPart) {
        if hinted.generation != self.generation {
            return;
        }
        let Some(slot) = self.slots.get_mut(&hinted.offset) else {
            return;
        };
        let len = slot.len;
        if slot.part.replace(BlockData::new(hinted.part)).is_none() {
            self.hold(hinted.offset, len);
        }
    }

    /// Takes back the part at `offset` of call `generation`, which the
    /// reader left before its end; one of an earlier call is dropped.
    pub(crate) fn put_back(&mut self, generation: u64, offset: u64, data: BlockData) {
        if generation == self.generation {
            let len = data.len() as u64;
            let slot = Slot {
                len,
                part: Some(data),
            };
            if let Some(old) = self.slots.insert(offset, slot) {
                self.release(offset, &old);
            }
            self.hold(offset, len);
        }
    }

    /// The planned request covering `pos`: its offset, and whether its part
    /// was issued.
    pub(crate) fn covering(&self, pos: u64) -> Option<(u64, bool)> {
        let (&offset, slot) = self.slots.range(..=pos).next_back()?;
        (pos < offset + slot.len).then_some((offset, slot.part.is_some()))
    }

    /// Where the first planned request at or after `pos` starts.
    pub(crate) fn next_start(&self, pos: u64) -> Option<u64> {
        self.slots.range(pos..).next().map(|(&offset, _)| offset)
    }

    /// Takes out the issued part of the request at `offset`, to be read.
    pub(crate) fn take(&mut self, offset: u64) -> Option<BlockData> {
        self.slots.get(&offset)?.part.as_ref()?;
        let slot = self.slots.remove(&offset)?;
        self.release(offset, &slot);
        slot.part
    }

    /// Drops parts held (other than the one at `offset`, planned last
    /// first) until those left and the request at `offset` fit in the
    /// room: the producer makes that request only then. A dropped part is
    /// no longer a hint; a read there fetches as usual.
    pub(crate) fn make_room_for(&mut self, offset: u64) {
        let (want, own) = match self.slots.get(&offset) {
            Some(slot) if slot.part.is_some() => (slot.len, slot.len),
            Some(slot) => (slot.len, 0),
            None => (0, 0),
        };
        while (self.held_bytes - own).saturating_add(want) > self.room {
            let last = self.held.iter().rev().find(|&&(_, at)| at != offset);
            let Some(&(_, at)) = last else {
                return;
            };
            if let Some(slot) = self.slots.remove(&at) {
                self.release(at, &slot);
            }
        }
    }

    /// Drops every hint (close).
    pub(crate) fn clear(&mut self) {
        self.slots.clear();
        self.places.clear();
        self.held.clear();
        self.held_bytes = 0;
    }

    /// Counts the part now held at `offset`, for a request of `len` bytes.
    fn hold(&mut self, offset: u64, len: u64) {
        let place = self.places.get(&offset).copied().unwrap_or(0);
        if self.held.insert((place, offset)) {
            self.held_bytes += len;
        }
    }

    /// Stops counting `slot`, at `offset`, once out of the plan.
    fn release(&mut self, offset: u64, slot: &Slot) {
        let place = self.places.get(&offset).copied().unwrap_or(0);
        if slot.part.is_some() && self.held.remove(&(place, offset)) {
            self.held_bytes -= slot.len;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(offset: u64, len: u64) -> Request {
        Request {
            offset,
            len,
            readahead: false,
        }
    }

    #[test]
    fn planned_ranges_are_found_by_any_offset_inside_them_and_replaced_by_the_next_plan() {
        let mut hints = Hints::default();
        let plan = |requests| HintPlan {
            requests,
            room: 1 << 20,
        };
        hints.replace(1, &plan(vec![request(100, 50), request(1000, 10)]));
        assert_eq!(hints.covering(99), None);
        assert_eq!(hints.covering(100), Some((100, false)));
        assert_eq!(hints.covering(149), Some((100, false)));
        assert_eq!(hints.covering(150), None);
        assert_eq!(hints.covering(1005), Some((1000, false)));
        assert!(hints.take(100).is_none(), "not issued yet");
        hints.replace(2, &plan(vec![request(0, 10)]));
        assert_eq!(hints.covering(100), None);
        assert_eq!(hints.generation(), 2);
    }
}
