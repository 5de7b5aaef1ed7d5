//! The memory one block's bytes live in.
//!
//! Large buffers are anonymous memory maps of their own rather than heap
//! allocations: freeing one gives its pages back to the operating system at
//! once. Heap buffers of many MiB, freed from many threads, stay resident
//! in the allocator's arenas (glibc raises its mmap threshold after such a
//! free, so the next ones come from the heap), and the process would hold
//! far more than the reader's accounting says. A fresh map is also zeroed
//! by the kernel page by page as it is written, never up front.

use std::io;

use memmap2::MmapMut;

/// Buffers at least this large are mapped; smaller ones (first requests,
/// small demand reads) are plain heap allocations, cheaper to make.
const MAP_THRESHOLD: usize = 256 * 1024;

/// A block's buffer: its `len` bytes are what the block holds; its
/// capacity is what it can hold when reused for another block.
pub(crate) struct PartBuffer {
    memory: Memory,
    len: usize,
}

enum Memory {
    Heap(Vec<u8>),
    Mapped(MmapMut),
}

impl PartBuffer {
    /// A zeroed buffer of `len` bytes.
    ///
    /// # Errors
    ///
    /// The map cannot be made (the address space or memory is exhausted).
    pub(crate) fn new(len: usize) -> io::Result<PartBuffer> {
        let memory = if len >= MAP_THRESHOLD {
            Memory::Mapped(MmapMut::map_anon(len)?)
        } else {
            Memory::Heap(vec![0; len])
        };
        Ok(PartBuffer { memory, len })
    }

    /// The bytes it can hold.
    pub(crate) fn capacity(&self) -> usize {
        match &self.memory {
            Memory::Heap(bytes) => bytes.len(),
            Memory::Mapped(map) => map.len(),
        }
    }

    /// Makes it hold `len` bytes, at most its capacity. Bytes of an earlier
    /// block are not cleared: whoever fills the buffer overwrites all of
    /// them or fails, and a failed block is never read.
    pub(crate) fn set_len(&mut self, len: usize) {
        self.len = len.min(self.capacity());
    }

    /// Its `len` bytes, to fill.
    pub(crate) fn as_mut_slice(&mut self) -> &mut [u8] {
        match &mut self.memory {
            Memory::Heap(bytes) => &mut bytes[..self.len],
            Memory::Mapped(map) => &mut map[..self.len],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_and_large_buffers_hold_what_is_written_and_shrink_within_capacity() {
        for len in [
            0,
            10,
            MAP_THRESHOLD - 1,
            MAP_THRESHOLD,
            3 * MAP_THRESHOLD + 7,
        ] {
            let mut buffer = PartBuffer::new(len).expect("buffer");
            assert_eq!(buffer.capacity(), len);
            assert!(buffer.as_mut_slice().iter().all(|&b| b == 0));
            buffer.as_mut_slice().fill(7);
            buffer.set_len(len / 2);
            assert_eq!(buffer.as_mut_slice().len(), len / 2);
            assert!(buffer.as_mut_slice().iter().all(|&b| b == 7));
            buffer.set_len(len + 100);
            assert_eq!(buffer.as_mut_slice().len(), len);
        }
    }
}
