//! The reader's side of hints: the ranges the caller said it will read
//! ([`PrefetchReader::will_need`](crate::PrefetchReader::will_need)), as
//! the producer planned them into requests, and the parts fetching them as
//! the producer issues them. A read inside a planned request is served from
//! its part (waiting for it to be issued if need be); a part the reader
//! leaves before its end comes back here, so a return to it needs no
//! request; a part read to its end leaves, and the next call's plan
//! replaces whatever is left.

use std::collections::BTreeMap;

use super::block::{BlockData, HintedPart};
use super::policy::Request;

/// One planned request: its length and, once issued, its part (with what
/// the reader took of it, if it was read and left).
struct Slot {
    len: u64,
    part: Option<BlockData>,
}

/// The current call's planned requests, by offset.
#[derive(Default)]
pub(crate) struct Hints {
    generation: u64,
    slots: BTreeMap<u64, Slot>,
}

impl Hints {
    /// The number of the current call (0 before the first).
    pub(crate) fn generation(&self) -> u64 {
        self.generation
    }

    /// Replaces the hints with call `generation`'s plan; parts of earlier
    /// calls are dropped (their unread bytes count as wasted).
    pub(crate) fn replace(&mut self, generation: u64, plan: &[Request]) {
        self.generation = generation;
        self.slots = plan
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
        if let Some(slot) = self.slots.get_mut(&hinted.offset) {
            slot.part = Some(BlockData::new(hinted.part));
        }
    }

    /// Takes back the part at `offset` of call `generation`, which the
    /// reader left before its end; one of an earlier call is dropped.
    pub(crate) fn put_back(&mut self, generation: u64, offset: u64, data: BlockData) {
        if generation == self.generation {
            let slot = Slot {
                len: data.len() as u64,
                part: Some(data),
            };
            self.slots.insert(offset, slot);
        }
    }

    /// The planned request covering `pos`: its offset, and whether its part
    /// was issued.
    pub(crate) fn covering(&self, pos: u64) -> Option<(u64, bool)> {
        let (&offset, slot) = self.slots.range(..=pos).next_back()?;
        (pos < offset + slot.len).then_some((offset, slot.part.is_some()))
    }

    /// Takes out the issued part of the request at `offset`, to be read.
    pub(crate) fn take(&mut self, offset: u64) -> Option<BlockData> {
        self.slots.get(&offset)?.part.as_ref()?;
        self.slots.remove(&offset)?.part
    }

    /// Drops every hint (close).
    pub(crate) fn clear(&mut self) {
        self.slots.clear();
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
        hints.replace(1, &[request(100, 50), request(1000, 10)]);
        assert_eq!(hints.covering(99), None);
        assert_eq!(hints.covering(100), Some((100, false)));
        assert_eq!(hints.covering(149), Some((100, false)));
        assert_eq!(hints.covering(150), None);
        assert_eq!(hints.covering(1005), Some((1000, false)));
        assert!(hints.take(100).is_none(), "not issued yet");
        hints.replace(2, &[request(0, 10)]);
        assert_eq!(hints.covering(100), None);
        assert_eq!(hints.generation(), 2);
    }
}
