//! Memory as the operating system sees it: what a reader's blocks take
//! follows what it counts while it reads, and is given back when the
//! reader is dropped, not kept resident by the allocator. One test in its own process, so no other test's memory
//! moves the figures.

#![cfg(target_os = "linux")]

mod common;

use std::io::Read;
use std::time::Duration;

use common::{settled, MIB};
use prefetch_reader::testing::{is_pattern, SimulatedLink};
use prefetch_reader::PrefetchReader;

/// Resident bytes of this process, from `/proc/self/statm`.
fn resident() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("statm");
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|field| field.parse().ok())
        .expect("resident pages");
    pages * 4096
}

#[test]
fn a_dropped_readers_blocks_leave_the_process() {
    let before = resident();
    for _ in 0..3 {
        // 20 ms and 25 MiB/s per connection: far slower than the reader,
        // so its pace asks for every connection, and the link for parts
        // as large as allowed.
        let link = SimulatedLink::new(256 * MIB, Duration::from_millis(20), 25 << 20);
        let mut reader = PrefetchReader::builder()
            .concurrency(8)
            .min_part_size(4 * MIB)
            .max_part_size(16 * MIB)
            .max_prefetch(160 * MIB)
            .advice(prefetch_reader::Advice::Sequential)
            .build(link)
            .expect("reader");
        let handle = reader.stats_handle();
        let mut buf = vec![0; 4 * MIB as usize];
        let mut at = 0;
        let mut most_resident = 0;
        while at < 256 * MIB {
            reader.read_exact(&mut buf).expect("read");
            assert!(is_pattern(at, &buf));
            at += buf.len() as u64;
            most_resident = most_resident.max(resident().saturating_sub(before));
        }
        let peak = handle.get().peak_allocated;
        assert!(peak > 32 * MIB, "{:?}", handle.get());
        // What the process holds is what the reader counts, give or take
        // the read buffer, thread stacks and the allocator's own.
        assert!(
            most_resident <= peak + 32 * MIB,
            "{} MiB resident while reading, {} MiB counted",
            most_resident / MIB,
            peak / MIB
        );
        drop(reader);
        settled(&handle);
    }
    let after = resident();
    let kept = after.saturating_sub(before);
    assert!(
        kept <= 32 * MIB,
        "{} MiB still resident after the readers were dropped",
        kept / MIB
    );
}
