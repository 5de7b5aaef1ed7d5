//! A memory budget shared by several readers: together they stay within
//! it, plus a floor of one block each, and none waits on another's unread
//! bytes.

mod common;

use std::io::Read;
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
