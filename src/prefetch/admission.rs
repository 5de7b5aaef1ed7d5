//! Admission: where a part's arriving bytes are charged to its reader's
//! memory budget.
//!
//! Bytes are charged as the source commits them, not when their request is
//! made, so a part's memory grows as its body arrives and a request in
//! flight costs nothing yet. The producer makes a request only while the
//! bytes charged plus the bytes still to arrive of every request in flight
//! fit in the budget, so a commit never has to wait for room. A commit of
//! a read that was abandoned (its cancel flag set) is refused: abandoned
//! requests take no more memory than they held when abandoned, and the
//! producer, which no longer counts their missing bytes, may give that
//! room to new requests.
//!
//! Commits and the producer's count take one lock. A commit either comes
//! before the count (its bytes are charged) or after it; the producer
//! counts after hearing of the abandonment, so such a commit sees the
//! cancel flag and is refused.

use std::sync::atomic::{AtomicBool, Ordering::Relaxed};

use parking_lot::Mutex;

use super::block::Charge;

/// One reader's admission of arriving bytes.
#[derive(Default)]
pub(crate) struct Admission {
    lock: Mutex<()>,
}

impl Admission {
    /// Charges `n` more bytes of a part to `charge`, then runs `publish`
    /// (which hands them to the reader), unless the part's read was
    /// abandoned; whether they were taken.
    pub(crate) fn admit(
        &self,
        cancel: &AtomicBool,
        charge: &Charge,
        n: u64,
        publish: impl FnOnce(),
    ) -> bool {
        let _admitting = self.lock.lock();
        if cancel.load(Relaxed) {
            return false;
        }
        charge.grow(n);
        publish();
        true
    }

    /// Runs `count` with no commit half done: what it reads of charges and
    /// of parts' arrived bytes agrees.
    pub(crate) fn counting<R>(&self, count: impl FnOnce() -> R) -> R {
        let _counting = self.lock.lock();
        count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::Counters;
    use std::sync::Arc;

    #[test]
    fn bytes_are_charged_as_admitted_and_refused_once_the_read_is_abandoned() {
        let counters = Arc::new(Counters::default());
        let charge = Charge::empty(counters.clone(), None);
        let admission = Admission::default();
        let cancel = AtomicBool::new(false);
        let mut published = 0;
        assert!(admission.admit(&cancel, &charge, 100, || published += 1));
        assert!(admission.admit(&cancel, &charge, 50, || published += 1));
        assert_eq!((charge.bytes(), published), (150, 2));
        cancel.store(true, Relaxed);
        assert!(!admission.admit(&cancel, &charge, 10, || published += 1));
        assert_eq!((charge.bytes(), published), (150, 2));
        assert_eq!(admission.counting(|| counters.snapshot().allocated), 150);
        drop(charge);
        assert_eq!(counters.snapshot().allocated, 0);
    }
}
