//! A memory budget shared by several readers: together they stay within
//! it, plus a floor of one block each, and none waits on another's unread
//! bytes.

mod common;

use std::io::{Read, Seek, SeekFrom};
use std::sync::{Arc, Barrier};
use std::time::Duration;

use common::{build, settled, watchdog, KIB, MIB};
use prefetch_reader::testing::{is_pattern, SimulatedLink};
use prefetch_reader::{Advice, MemoryBudget, PrefetchReader, ReaderBuilder};

/// Readers of 2 MiB parts and a 32 MiB budget each, sharing `budget`.
fn sharing(budget: &MemoryBudget) -> ReaderBuilder {
    let mut builder = PrefetchReader::builder();
    builder
        .max_prefetch(32 * MIB)
        .max_part_size(2 * MIB)
        .advice(Advice::Sequential)
        .memory_budget(budget);
    builder
}

/// A link slow enough per connection (20 MiB/s) that a reader keeps
/// every connection busy: alone, each would fill its own budget.
fn link(len: u64) -> SimulatedLink {
    SimulatedLink::new(len, Duration::from_millis(2), 20 << 20)
}

#[test]
fn readers_sharing_a_budget_hold_within_it_plus_a_block_each() {
    watchdog(120, || {
        let budget = MemoryBudget::new(16 * MIB);
        let builder = sharing(&budget);
        let len = 32 * MIB;
        let readers: Vec<_> = (0..4).map(|_| build(&builder, link(len))).collect();
        let handles: Vec<_> = readers.iter().map(|r| r.stats_handle()).collect();
        // Each on its own thread, at its own pace.
        let threads: Vec<_> = readers
            .into_iter()
            .map(|mut reader| {
                let budget = budget.clone();
                std::thread::spawn(move || {
                    let mut buf = vec![0; 64 * KIB as usize];
                    let (mut at, mut most) = (0, 0);
                    while at < len {
                        reader.read_exact(&mut buf).expect("read");
                        assert!(is_pattern(at, &buf), "bytes at {at}");
                        most = most.max(budget.reserved());
                        at += buf.len() as u64;
                    }
                    most
                })
            })
            .collect();
        let most = threads
            .into_iter()
            .map(|t| t.join().expect("reader thread"))
            .max()
            .unwrap_or(0);
        // Each alone would hold up to 32 MiB; a block of theirs is 2 MiB.
        assert!(
            most <= 16 * MIB + 4 * 2 * MIB,
            "{} MiB reserved together",
            most / MIB
        );
        for handle in &handles {
            settled(handle);
        }
        assert_eq!((budget.readers(), budget.reserved()), (0, 0));
    });
}

#[test]
fn a_reader_still_reads_while_another_holds_the_whole_shared_budget() {
    watchdog(120, || {
        let budget = MemoryBudget::new(8 * MIB);
        let builder = sharing(&budget);
        let len = 64 * MIB;
        // `idle` fills the budget with read-ahead and is never read again.
        let mut idle = build(&builder, link(len));
        let mut buf = vec![0; MIB as usize];
        idle.read_exact(&mut buf).expect("read");
        idle.wait_until_quiet().expect("quiet");
        assert!(budget.reserved() >= 6 * MIB, "{budget:?}");
        let mut busy = build(&builder, link(len));
        let mut at = 0;
        while at < len {
            busy.read_exact(&mut buf).expect("read");
            assert!(is_pattern(at, &buf), "bytes at {at}");
            at += MIB;
        }
        // Within its floor beside the idle reader's hold.
        assert!(
            busy.stats().peak_allocated <= 2 * MIB + MIB,
            "{:?}",
            busy.stats()
        );
    });
}

#[test]
fn a_reader_holding_hinted_parts_still_reads_elsewhere_whatever_the_budget() {
    watchdog(120, || {
        for limit in [0, MIB] {
            let budget = MemoryBudget::new(limit);
            let mut builder = PrefetchReader::builder();
            builder
                .max_prefetch(8 * MIB)
                .max_part_size(MIB)
                .min_part_size(64 * KIB)
                .concurrency(1)
                .window_behind(0)
                .memory_budget(&budget);
            let mut reader = build(&builder, link(8 * MIB));
            reader
                .will_need(&[4 * MIB..5 * MIB, 0..MIB])
                .expect("hints");
            reader.wait_until_quiet().expect("quiet");
            // Away from the hints first, then into the second one.
            for at in [6 * MIB, 0, 4 * MIB] {
                reader.seek(SeekFrom::Start(at)).expect("seek");
                let mut buf = vec![0; 4096];
                reader.read_exact(&mut buf).expect("read");
                assert!(is_pattern(at, &buf), "bytes at {at}");
            }
        }
    });
}

#[test]
fn readers_deciding_at_the_same_moment_never_take_the_same_room() {
    watchdog(120, || {
        // Tiny parts and wide concurrency: each reader alone would reserve
        // 64 MiB at its first read.
        let (readers, limit, part) = (4, 4 * MIB, 64 * KIB);
        for _ in 0..10 {
            let budget = MemoryBudget::new(limit);
            let start = Arc::new(Barrier::new(readers));
            let threads: Vec<_> = (0..readers)
                .map(|i| {
                    let (budget, start) = (budget.clone(), start.clone());
                    std::thread::spawn(move || {
                        let mut builder = PrefetchReader::builder();
                        builder
                            .max_prefetch(64 * MIB)
                            .max_part_size(part)
                            .min_part_size(part)
                            .concurrency(256)
                            .window_behind(0)
                            .advice(Advice::Sequential)
                            .memory_budget(&budget);
                        let link = SimulatedLink::new(64 * MIB, Duration::from_millis(30), 0);
                        let mut reader = build(&builder, link);
                        start.wait();
                        let at = i as u64 * 8 * MIB;
                        reader.seek(SeekFrom::Start(at)).expect("seek");
                        let mut byte = [0];
                        reader.read_exact(&mut byte).expect("read");
                        assert!(is_pattern(at, &byte));
                        let mut most = 0;
                        for _ in 0..20 {
                            most = most.max(budget.reserved());
                            std::thread::sleep(Duration::from_millis(2));
                        }
                        most
                    })
                })
                .collect();
            for thread in threads {
                let most = thread.join().expect("reader thread");
                let bound = limit + readers as u64 * part;
                assert!(most <= bound, "{most} reserved, over {bound}");
            }
        }
    });
}

#[test]
fn a_settled_reader_has_left_its_budget() {
    watchdog(120, || {
        let budget = MemoryBudget::new(4 * MIB);
        let builder = sharing(&budget);
        for _ in 0..100 {
            let readers: Vec<_> = (0..4).map(|_| build(&builder, link(8 * MIB))).collect();
            let handles: Vec<_> = readers
                .into_iter()
                .map(|mut reader| {
                    let mut buf = vec![0; 1000];
                    reader.read_exact(&mut buf).expect("read");
                    reader.stats_handle()
                })
                .collect();
            for handle in &handles {
                settled(handle);
            }
            assert_eq!((budget.readers(), budget.reserved()), (0, 0));
        }
    });
}
