//! The reader's buffered bytes: the block being read, and a copy of the
//! bytes just before it (the window behind) for short backward seeks.

use std::sync::Arc;

use crate::prefetch::block::{BlockData, Charge};
use crate::stats::Counters;

/// The block being read, where it starts.
struct Current {
    offset: u64,
    data: BlockData,
}

impl Current {
    /// Where the block ends, its bytes all arrived or not.
    fn end(&self) -> u64 {
        self.offset + self.data.len() as u64
    }

    /// Where the bytes that arrived end.
    fn arrived_end(&self) -> u64 {
        self.offset + self.data.bytes().len() as u64
    }
}

/// What a reader has buffered, by offset in the object.
pub(crate) struct Buffers {
    current: Option<Current>,
    /// The bytes just before `behind_end`, at most `keep` of them.
    behind: Vec<u8>,
    behind_end: u64,
    keep: usize,
    /// The window behind's charge, taken once it is first filled.
    behind_charge: Option<Charge>,
    /// Spans of the window (by offset in the object) never handed to the
    /// caller, skipped by a seek: counted as wasted if they leave the
    /// window unread, and not at all if read from it.
    unread_behind: Vec<(u64, u64)>,
    counters: Arc<Counters>,
}

impl Buffers {
    /// Nothing buffered; `keep` bytes to be kept behind the reader.
    pub(crate) fn new(keep: usize, counters: Arc<Counters>) -> Buffers {
        Buffers {
            current: None,
            behind: Vec::new(),
            behind_end: 0,
            keep,
            behind_charge: None,
            unread_behind: Vec::new(),
            counters,
        }
    }

    fn behind_start(&self) -> u64 {
        self.behind_end - self.behind.len() as u64
    }

    /// Whether the byte at `pos` is buffered (arrived).
    pub(crate) fn contains(&self, pos: u64) -> bool {
        (pos >= self.behind_start() && pos < self.behind_end)
            || self
                .current
                .as_ref()
                .is_some_and(|c| pos >= c.offset && pos < c.arrived_end())
    }

    /// Whether `pos` lies in the block being read, arrived or not.
    pub(crate) fn in_current(&self, pos: u64) -> bool {
        self.current
            .as_ref()
            .is_some_and(|c| pos >= c.offset && pos < c.end())
    }

    /// The block being read and where it starts.
    pub(crate) fn current(&self) -> Option<(u64, &BlockData)> {
        self.current.as_ref().map(|c| (c.offset, &c.data))
    }

    /// The buffered bytes from `pos` on (empty when none are).
    pub(crate) fn from(&self, pos: u64) -> &[u8] {
        let behind_start = self.behind_start();
        if pos >= behind_start && pos < self.behind_end {
            return &self.behind[(pos - behind_start) as usize..];
        }
        match &self.current {
            Some(c) if pos >= c.offset && pos < c.arrived_end() => {
                &c.data.bytes()[(pos - c.offset) as usize..]
            }
            _ => &[],
        }
    }

    /// The lowest offset buffered, or `next` when nothing is.
    pub(crate) fn lowest_or(&self, next: u64) -> u64 {
        if !self.behind.is_empty() {
            self.behind_start()
        } else if let Some(current) = &self.current {
            current.offset
        } else {
            next
        }
    }

    /// Records that the `n` bytes from `pos` were handed to the caller (so
    /// the block's unread bytes are counted as wasted when it goes).
    pub(crate) fn delivered(&mut self, pos: u64, n: usize) {
        let end = pos + n as u64;
        if pos >= self.behind_start() && pos < self.behind_end {
            // Bytes from the window behind were counted when first read,
            // or are counted now as they are read at last.
            self.unread_behind = std::mem::take(&mut self.unread_behind)
                .into_iter()
                .flat_map(|(s, e)| [(s, e.min(pos)), (s.max(end), e)])
                .filter(|(s, e)| s < e)
                .collect();
        } else if let Some(current) = &mut self.current {
            if pos >= current.offset {
                let start = (pos - current.offset) as usize;
                current.data.delivered(start, start + n);
            }
        }
    }

    /// Done with the block being read, the reader now at `pos`: read to
    /// its end, its tail goes to the window behind; left part-read (a
    /// seek skipped the rest), it is dropped and the window emptied.
    pub(crate) fn finish_current(&mut self, pos: u64) {
        let Some(current) = self.current.take() else {
            return;
        };
        // Only a block whose every byte arrived and was passed: a seek to
        // the end of one still arriving leaves nothing whole to keep.
        if current.end() == pos && current.arrived_end() == pos {
            self.retire(current);
        } else {
            self.clear();
        }
    }

    /// Takes out the block being read, with where it starts, unless every
    /// byte of it was handed to the caller.
    pub(crate) fn take_current_unread(&mut self) -> Option<(u64, BlockData)> {
        if self.current.as_ref().is_none_or(|c| c.data.read_through()) {
            return None;
        }
        self.current.take().map(|c| (c.offset, c.data))
    }

    /// Makes `data`, starting at `offset`, the block being read; the window
    /// behind is kept only if it ends where the block starts.
    pub(crate) fn set_current(&mut self, offset: u64, data: BlockData) {
        if self.behind_end != offset {
            self.clear_behind();
        }
        self.current = Some(Current { offset, data });
    }

    /// Drops everything buffered; the window's memory stays allocated.
    pub(crate) fn clear(&mut self) {
        self.current = None;
        self.clear_behind();
    }

    /// Drops everything and frees the window's memory (close).
    pub(crate) fn free(&mut self) {
        self.current = None;
        self.clear_behind();
        self.behind = Vec::new();
        self.behind_charge = None;
    }

    /// Empties the window behind (a skip leaves it apart from what comes
    /// next); its unread spans leave it as wasted.
    pub(crate) fn clear_behind(&mut self) {
        self.behind.clear();
        self.waste_behind_before(u64::MAX);
    }

    /// Counts the unread spans of the window before `start` as wasted:
    /// they are leaving it.
    fn waste_behind_before(&mut self, start: u64) {
        let mut wasted = 0;
        self.unread_behind.retain_mut(|(s, e)| {
            let gone = (*e).min(start).saturating_sub(*s);
            wasted += gone;
            *s = (*s).max(start);
            s < e
        });
        Counters::add(&self.counters.bytes_wasted, wasted);
    }

    /// Bytes in the window behind, for `Debug`.
    pub(crate) fn behind_len(&self) -> usize {
        self.behind.len()
    }

    /// Keeps the tail of the finished block `current` in the window behind.
    fn retire(&mut self, mut current: Current) {
        let keep = self.keep;
        if keep == 0 {
            return;
        }
        if self.behind_end != current.offset {
            self.clear_behind();
        }
        if self.behind_charge.is_none() {
            // Grown as blocks retire, never allocated whole up front: a
            // large window behind costs memory only once it is filled.
            self.behind_charge = Some(Charge::behind(keep as u64, self.counters.clone()));
        }
        // The bytes that arrived, ending where they end; those a seek
        // skipped go to the window unread.
        let arrived = current.data.bytes().len();
        let kept = arrived.min(keep);
        let skipped = current.data.take_undelivered(arrived - kept, arrived);
        let offset = current.offset;
        let unread = skipped
            .into_iter()
            .map(|(s, e)| (offset + s as u64, offset + e as u64));
        let bytes = current.data.bytes();
        if bytes.len() >= keep {
            self.clear_behind();
            self.behind.extend_from_slice(&bytes[bytes.len() - keep..]);
        } else {
            let excess = (self.behind.len() + bytes.len()).saturating_sub(keep);
            self.behind.drain(..excess);
            self.behind.extend_from_slice(bytes);
        }
        self.unread_behind.extend(unread);
        self.behind_end = current.arrived_end();
        let start = self.behind_start();
        self.waste_behind_before(start);
    }
}
