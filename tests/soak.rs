//! Lifecycle soak: thousands of readers on the shared I/O pool, opened,
//! partly read, seeked, closed or dropped at random points (some while their
//! requests are in flight, some while their source is stuck), must all end:
//! every close and drop returns (both join the reader's producer thread),
//! and the bytes allocated for blocks, summed over readers, go back to zero
//! once the stuck sources are released. Readers sharing one memory budget,
//! several alive at once per thread and read in turn, stay within it plus
//! a block each, and leave it empty.

mod common;

use std::io::{Read, Seek, SeekFrom};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use common::{watchdog, KIB, MIB};
use prefetch_reader::testing::{is_pattern, pattern, BlockingSource, Gate, SimulatedLink};
use prefetch_reader::{MemoryBudget, MemorySource, PrefetchReader, RangeSource, StatsHandle};

/// Readers per worker thread, and worker threads.
const READERS: usize = 1000;
const WORKERS: usize = 4;
/// Every this many readers has a source that blocks until released. Stuck
/// requests hold I/O pool threads (until a real source's read timeout), so
/// they are kept below its size: 4 workers × 5 stuck readers × concurrency
/// 2 = 40 of the pool's 64 threads.
const BLOCKED_EVERY: usize = 200;

/// Opens, uses and ends one reader at random; returns its stats handle.
/// A `stuck` source answers only reads of its first bytes: under
/// sequential advice three small reads from the start stay inside the
/// first request, and the read-ahead requests past it hang until the end
/// of the test.
fn exercise<S: RangeSource>(
    source: S,
    rng: &mut fastrand::Rng,
    stuck: Option<&Gate>,
) -> StatsHandle {
    let len = source.len();
    let mut builder = PrefetchReader::builder();
    let concurrency = if stuck.is_some() { 2 } else { rng.usize(1..=8) };
    builder
        .concurrency(concurrency)
        .min_part_size(64 * KIB)
        .max_part_size(512 * KIB)
        .max_prefetch(4 * MIB);
    let mut reader = builder.build(source).expect("valid settings");
    let handle = reader.stats_handle();
    let mut buf = vec![0; 300 * KIB as usize];
    if let Some(gate) = stuck {
        reader.advise(prefetch_reader::Advice::Sequential);
        for at in 0..3 {
            let n = reader.read(&mut buf[..KIB as usize]).expect("read");
            assert!(is_pattern(at * KIB, &buf[..n]));
        }
        while gate.waiting() == 0 {
            thread::sleep(Duration::from_micros(100));
        }
    }
    for _ in 0..if stuck.is_some() { 0 } else { rng.u64(..6) } {
        if rng.u64(..3) == 0 {
            let to = rng.u64(..len + 10);
            reader.seek(SeekFrom::Start(to)).expect("seek");
        }
        let at = reader.stream_position().expect("position");
        let size = rng.usize(..buf.len());
        let n = reader.read(&mut buf[..size]).expect("read");
        assert!(is_pattern(at, &buf[..n]), "bytes at {at}");
    }
    if rng.u64(..2) == 0 {
        reader.close().expect("close");
    }
    handle
}

#[test]
fn thousands_of_readers_end_and_release_all_their_memory() {
    let memory = Arc::new(MemorySource::new(pattern(4 * MIB as usize)));
    let results = watchdog(240, move || {
        let workers: Vec<_> = (0..WORKERS)
            .map(|w| {
                let memory = memory.clone();
                thread::spawn(move || {
                    let mut rng = fastrand::Rng::with_seed(w as u64 + 1);
                    let mut handles = Vec::new();
                    let mut gates: Vec<Arc<Gate>> = Vec::new();
                    for i in 0..READERS {
                        let handle = if i % BLOCKED_EVERY == 0 {
                            let link = MemorySource::new(pattern(2 * MIB as usize));
                            // Reads of the first block pass so that reads
                            // can start.
                            let (source, gate) = BlockingSource::from_offset(link, 4 * KIB);
                            let handle = exercise(source, &mut rng, Some(&gate));
                            gates.push(gate);
                            handle
                        } else if i % 3 == 0 {
                            let latency = Duration::from_micros(rng.u64(..500));
                            exercise(SimulatedLink::new(3 * MIB, latency, 0), &mut rng, None)
                        } else {
                            exercise(memory.clone(), &mut rng, None)
                        };
                        handles.push(handle);
                    }
                    (handles, gates)
                })
            })
            .collect();
        let mut handles = Vec::new();
        let mut gates = Vec::new();
        for worker in workers {
            let (h, g) = worker.join().expect("worker");
            handles.extend(h);
            gates.extend(g);
        }
        (handles, gates)
    });
    let (handles, gates) = results;
    assert_eq!(handles.len(), READERS * WORKERS);
    let stuck: u64 = handles.iter().map(|h| h.get().requests_in_flight).sum();
    assert!(stuck > 0, "stuck requests stay in flight until released");
    for gate in &gates {
        gate.open();
    }
    // Abandoned requests end once their sources answer; their memory goes
    // with them.
    let allocated = watchdog(60, move || loop {
        let left: u64 = handles
            .iter()
            .map(|h| h.get())
            .map(|s| s.allocated + s.requests_in_flight)
            .sum();
        if left == 0 {
            break handles;
        }
        thread::sleep(Duration::from_millis(10));
    });
    let delivered: u64 = allocated.iter().map(|h| h.get().bytes_delivered).sum();
    assert!(delivered > 0);
}

/// Readers per worker alive at once over one shared budget, and rounds of
/// them per worker.
const LIVE: usize = 4;
const ROUNDS: usize = 60;

#[test]
fn readers_sharing_a_budget_stay_within_it_and_leave_it_empty() {
    let budget = MemoryBudget::new(8 * MIB);
    // The readers' floor: a 512 KiB part each, beyond the budget.
    let bound = 8 * MIB + (WORKERS * LIVE) as u64 * 512 * KIB;
    let shared = budget.clone();
    let most = watchdog(240, move || {
        let workers: Vec<_> = (0..WORKERS)
            .map(|w| {
                let budget = shared.clone();
                thread::spawn(move || {
                    let mut rng = fastrand::Rng::with_seed(0x5eed + w as u64);
                    let mut buf = vec![0; 300 * KIB as usize];
                    let mut most = 0;
                    for _ in 0..ROUNDS {
                        let mut readers: Vec<_> = (0..LIVE)
                            .map(|_| {
                                let latency = Duration::from_micros(rng.u64(..300));
                                let link = SimulatedLink::new(4 * MIB, latency, 0);
                                let mut builder = PrefetchReader::builder();
                                builder
                                    .concurrency(rng.usize(1..=8))
                                    .min_part_size(64 * KIB)
                                    .max_part_size(512 * KIB)
                                    .max_prefetch(4 * MIB)
                                    .memory_budget(&budget);
                                builder.build(link).expect("valid settings")
                            })
                            .collect();
                        // One thread reads them in turn, as a merge would.
                        for _ in 0..40 {
                            let reader = &mut readers[rng.usize(..LIVE)];
                            if rng.u64(..4) == 0 {
                                let to = rng.u64(..4 * MIB);
                                reader.seek(SeekFrom::Start(to)).expect("seek");
                            }
                            let at = reader.stream_position().expect("position");
                            let size = rng.usize(..buf.len());
                            let n = reader.read(&mut buf[..size]).expect("read");
                            assert!(is_pattern(at, &buf[..n]), "bytes at {at}");
                            most = most.max(budget.reserved());
                        }
                        for mut reader in readers {
                            if rng.bool() {
                                reader.close().expect("close");
                            }
                        }
                    }
                    most
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().expect("worker"))
            .max()
            .unwrap_or(0)
    });
    assert!(most <= bound, "{most} reserved, over {bound}");
    // Every reader leaves once its last request ends.
    watchdog(60, move || {
        while budget.readers() > 0 || budget.reserved() > 0 {
            thread::sleep(Duration::from_millis(10));
        }
    });
}
