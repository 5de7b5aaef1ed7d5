//! The memory one block's bytes live in.
//!
//! Large buffers are anonymous memory maps of their own rather than heap
//! allocations: freeing one gives its pages back to the operating system at
//! once. Heap buffers of many MiB, freed from many threads, stay resident
//! in the allocator's arenas (glibc raises its mmap threshold after such a
//! free, so the next ones come from the heap), and the process would hold
//! far more than the reader's accounting says. A fresh map is also zeroed
//! by the kernel page by page as it is written, never up front, so a part
//! takes memory as its bytes arrive, as they are charged. Maps ask for
//! huge pages where the system gives them on request, so filling one
//! faults a page per 2 MiB rather than per 4 KiB.

use std::io;

use memmap2::MmapMut;

/// Buffers at least this large are mapped; smaller ones (first requests,
/// small demand reads) are plain heap allocations, cheaper to make.
const MAP_THRESHOLD: usize = 256 * 1024;

/// A huge page: maps at least this large are worth one.
#[cfg(target_os = "linux")]
const HUGE_PAGE: usize = 2 << 20;

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
            #[cfg(target_os = "linux")]
            if len >= HUGE_PAGE {
                // Only advice: without huge pages the map works as well.
                let _ = map.advise(memmap2::Advice::HugePage);
            }
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
