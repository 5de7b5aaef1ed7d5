//! [`PartSink`]: where a streaming read puts one part's bytes, in order, so
//! the reader can use each byte as soon as it is committed.

use std::marker::PhantomData;

/// Where [`RangeSource::read_streaming`](crate::RangeSource::read_streaming)
/// puts the bytes of one part, front to back: write into
/// [`unfilled`](Self::unfilled), then [`commit`](Self::commit) what was
/// written. Committed bytes are handed to the reader at once, while the
/// rest of the part is still arriving, so commit as each chunk of a body
/// arrives rather than once at the end.
///
/// ```
/// use prefetch_reader::PartSink;
///
/// let mut buf = [0; 6];
/// let mut sink = PartSink::new(&mut buf);
/// sink.unfilled()[..4].copy_from_slice(b"abcd");
/// sink.commit(4);
/// sink.unfilled().copy_from_slice(b"ef");
/// sink.commit(2);
/// assert!(sink.is_full());
/// assert_eq!(&buf, b"abcdef");
/// ```
pub struct PartSink<'a> {
    start: *mut u8,
    len: usize,
    filled: usize,
    /// Told the new `filled` at each commit: the engine charges the bytes
    /// and publishes them there, or refuses them (`false`) when the read
    /// was abandoned.
    on_commit: Option<&'a (dyn Fn(usize) -> bool + Sync)>,
    _buf: PhantomData<&'a mut [u8]>,
}

// SAFETY: a sink is the only writer of the bytes from `filled` on of a
// buffer it borrows mutably (or, in the engine, of a part buffer whose
// committed prefix alone is shared); it may be moved to another thread as
// `&mut [u8]` may, and `on_commit` is `Sync`.
unsafe impl Send for PartSink<'_> {}

impl<'a> PartSink<'a> {
    /// A sink filling `buf` (for a source to test its streaming read, or
    /// to implement [`read_at`](crate::RangeSource::read_at) with it).
    pub fn new(buf: &'a mut [u8]) -> PartSink<'a> {
        PartSink {
            start: buf.as_mut_ptr(),
            len: buf.len(),
            filled: 0,
            on_commit: None,
            _buf: PhantomData,
        }
    }

    /// A sink filling the `len` bytes at `start`, asking `on_commit` to
    /// take each commit.
    ///
    /// # Safety
    ///
    /// `start..start + len` must stay valid for writes for `'a`, and
    /// nothing else may read or write its bytes from the sink's `filled()`
    /// on while the sink lives; the bytes before may be read by others.
    pub(crate) unsafe fn from_raw(
        start: *mut u8,
        len: usize,
        on_commit: &'a (dyn Fn(usize) -> bool + Sync),
    ) -> PartSink<'a> {
        PartSink {
            start,
            len,
            filled: 0,
            on_commit: Some(on_commit),
            _buf: PhantomData,
        }
    }

    /// Bytes in the part.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the part has no bytes.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes committed so far: the next byte written goes at this offset
    /// of the part.
    pub fn filled(&self) -> usize {
        self.filled
    }

    /// Whether every byte of the part is committed.
    pub fn is_full(&self) -> bool {
        self.filled == self.len
    }

    /// The bytes not yet committed, to write the next ones into (from its
    /// start); they hold no particular values.
    pub fn unfilled(&mut self) -> &mut [u8] {
        // SAFETY: `filled <= len`, and the bytes from `filled` on are the
        // sink's alone (see `from_raw` and `new`); the borrow of `self`
        // keeps commits out while the slice lives.
        unsafe {
            std::slice::from_raw_parts_mut(self.start.add(self.filled), self.len - self.filled)
        }
    }

    /// Commits the first `n` bytes of [`unfilled`](Self::unfilled), which
    /// the caller wrote: they are the part's next bytes. More than remain
    /// commits what remains. Report received bytes through
    /// [`FetchContext::add_bytes`](crate::FetchContext::add_bytes) before
    /// committing them, so the reader's counters never show bytes handed
    /// over before they were fetched.
    ///
    /// In a reader, committed bytes are charged to its memory budget. A
    /// read the reader abandoned (its [`FetchContext`](crate::FetchContext)
    /// is cancelled) has its commits refused: [`filled`](Self::filled)
    /// stays where it was, and the source's next
    /// [`check_cancelled`](crate::FetchContext::check_cancelled) ends it.
    pub fn commit(&mut self, n: usize) {
        let filled = self.filled + n.min(self.len - self.filled);
        if self.on_commit.is_none_or(|take| take(filled)) {
            self.filled = filled;
        }
    }
}

impl std::fmt::Debug for PartSink<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PartSink")
            .field("len", &self.len)
            .field("filled", &self.filled)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

    #[test]
    fn commits_advance_in_order_never_pass_the_end_and_a_refused_one_leaves_filled() {
        let mut buf = [0u8; 10];
        let seen = AtomicUsize::new(0);
        let report = |filled: usize| {
            seen.store(filled, Relaxed);
            filled < 10
        };
        // SAFETY: `buf` outlives the sink and nothing else touches it.
        let mut sink = unsafe { PartSink::from_raw(buf.as_mut_ptr(), buf.len(), &report) };
        sink.unfilled()[..3].copy_from_slice(&[1, 2, 3]);
        sink.commit(3);
        assert_eq!((sink.filled(), seen.load(Relaxed)), (3, 3));
        assert_eq!(sink.unfilled().len(), 7);
        sink.unfilled()[..4].fill(9);
        sink.commit(4);
        assert_eq!(sink.filled(), 7);
        // Refused: the bytes are not the part's.
        sink.commit(100);
        assert_eq!((sink.filled(), seen.load(Relaxed)), (7, 10));
        assert_eq!(sink.unfilled().len(), 3);
        assert_eq!(buf[..7], [1, 2, 3, 9, 9, 9, 9]);
    }
}
