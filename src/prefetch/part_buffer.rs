//! The memory one block's bytes live in.
//!
//! Large buffers are anonymous memory maps of their own rather than heap
//! allocations: freeing one gives its pages back to the operating system at
//! once. Heap buffers of many MiB, freed from many threads, stay resident
//! in the allocator's arenas (glibc raises its mmap threshold after such a
//! free, so the next ones come from the heap), and the process would hold
//! far more than the reader's accounting says. A fresh map is also zeroed
//! by the kernel page by page as it is written, never up front, so a part
//! takes memory as its bytes arrive, as they are charged. Maps do not ask
//! for huge pages: they would take a fault per 2 MiB rather than per 4 KiB,
//! but a huge page the kernel must first compact memory for stalls the
//! fetch job for up to a few hundred milliseconds, and a part's partly
//! filled last page would hold up to 2 MiB that was not charged.

use std::io;

use memmap2::MmapMut;

/// Buffers at least this large are mapped; smaller ones (first requests,
/// small demand reads) are plain heap allocations, cheaper to make.
const MAP_THRESHOLD: usize = 256 * 1024;

/// A block's buffer, of the block's length.
pub(crate) struct PartBuffer {
    memory: Memory,
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
            let map = MmapMut::map_anon(len)?;

            Memory::Mapped(map)
        } else {
            Memory::Heap(vec![0; len])
        };
        Ok(PartBuffer { memory })
    }

    /// Its bytes, to fill.
    pub(crate) fn as_mut_slice(&mut self) -> &mut [u8] {
        match &mut self.memory {
            Memory::Heap(bytes) => bytes,
            Memory::Mapped(map) => map,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_and_large_buffers_start_zeroed_and_hold_what_is_written() {
        for len in [
            0,
            10,
            MAP_THRESHOLD - 1,
            MAP_THRESHOLD,
            3 * MAP_THRESHOLD + 7,
            5 << 20,
        ] {
            let mut buffer = PartBuffer::new(len).expect("buffer");
            assert_eq!(buffer.as_mut_slice().len(), len);
            assert!(buffer.as_mut_slice().iter().all(|&b| b == 0));
            buffer.as_mut_slice().fill(7);
            assert!(buffer.as_mut_slice().iter().all(|&b| b == 7));
        }
    }
}
