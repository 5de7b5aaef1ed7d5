//! `will_need`: the ranges a caller says it will read are fetched exactly
//! (merged across small gaps, split into parts, as the budget makes room),
//! reads inside them make no request of their own, and a new call replaces
//! the hints not yet read.

#![cfg(feature = "testing")]
#![allow(
    clippy::single_range_in_vec_init,
    reason = "a hint of one range is a slice of one range"
)]

mod common;

use std::io::{Read, Seek, SeekFrom};
use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use common::{build, bytes_asked, counted, inside, settled, wait_for_waiters, watchdog, KIB, MIB};
use prefetch_reader::testing::{
    is_pattern, pattern, BlockingSource, Call, CountingSource, SimulatedLink, TestServer,
};
use prefetch_reader::{Error, HttpSource, MemorySource, PrefetchReader};

const WATCHDOG_SECS: u64 = 60;

fn spans(calls: &[Call]) -> Vec<(u64, u64)> {
    let mut spans: Vec<_> = calls.iter().map(|c| (c.offset, c.offset + c.len)).collect();
    spans.sort_unstable();
    spans
}

/// Seeks to `range` and reads it whole, checking every byte.
fn read_range<R: Read + Seek>(reader: &mut R, range: Range<u64>) {
    reader.seek(SeekFrom::Start(range.start)).expect("seek");
    let mut buf = vec![0; (range.end - range.start) as usize];
    reader.read_exact(&mut buf).expect("read");
    let data = pattern(range.end as usize);
    assert!(
        buf[..] == data[range.start as usize..],
        "bytes of {range:?}"
    );
}

#[test]
fn hinted_ranges_are_fetched_exactly_and_reads_in_them_make_no_request_of_their_own() {
    watchdog(WATCHDOG_SECS, || {
        let source = counted(16 * MIB);
        let mut reader = build(&PrefetchReader::builder(), source.clone());
        let ranges = [
            10 * MIB..10 * MIB + 50 * KIB,
            MIB..MIB + 100 * KIB,
            5 * MIB..5 * MIB + 200 * KIB,
        ];
        reader.will_need(&ranges).expect("hints");
        reader.wait_until_quiet().expect("quiet");
        let mut expected: Vec<_> = ranges.iter().map(|r| (r.start, r.end)).collect();
        expected.sort_unstable();
        assert_eq!(spans(&source.calls()), expected);
        // In any order, in reads of any size.
        for range in ranges.iter().rev() {
            read_range(&mut reader, range.clone());
        }
        reader.wait_until_quiet().expect("quiet");
        assert_eq!(source.call_count(), 3, "{:?}", source.calls());
        let handle = reader.stats_handle();
        drop(reader);
        let stats = settled(&handle);
        assert_eq!(stats.bytes_fetched, 350 * KIB);
        assert_eq!(stats.bytes_wasted, 0);
        assert_eq!(stats.hard_seeks, 0);
    });
}

#[test]
fn hints_a_small_gap_apart_are_one_request_and_hints_past_the_end_are_clipped() {
    watchdog(WATCHDOG_SECS, || {
        let source = counted(4 * MIB);
        let mut reader = build(&PrefetchReader::builder(), source.clone());
        reader
            .will_need(&[100..200, 300..400, 3 * MIB..5 * MIB, 5..5, 6 * MIB..7 * MIB])
            .expect("hints");
        reader.wait_until_quiet().expect("quiet");
        // 200..300 costs less than a round trip: fetched with its neighbours.
        assert_eq!(spans(&source.calls()), [(100, 400), (3 * MIB, 4 * MIB)]);
        read_range(&mut reader, 300..400);
        read_range(&mut reader, 3 * MIB..4 * MIB);
        reader.wait_until_quiet().expect("quiet");
        assert_eq!(source.call_count(), 2);
    });
}

#[test]
fn a_hint_larger_than_a_part_is_split_into_parallel_parts_within_the_budget() {
    watchdog(WATCHDOG_SECS, || {
        let len = 64 * MIB;
        let source = counted(len);
        let mut builder = PrefetchReader::builder();
        builder
            .max_prefetch(32 * MIB)
            .max_part_size(4 * MIB)
            .concurrency(4);
        let mut reader = build(&builder, source.clone());
        reader.will_need(&[0..len]).expect("hints");
        reader.wait_until_quiet().expect("quiet");
        let calls = source.calls();
        let hinted: u64 = bytes_asked(&calls);
        assert!(calls.len() > 1, "{calls:?}");
        assert!(calls.iter().all(|c| c.len <= 4 * MIB), "{calls:?}");
        // The budget less the window behind and room for a demand read.
        assert!(hinted <= 32 * MIB - MIB - 4 * MIB, "{hinted} bytes hinted");
        assert!(source.max_in_flight() <= 4);
        // The rest is fetched as the parts held are read, each byte once.
        read_range(&mut reader, 0..len);
        reader.wait_until_quiet().expect("quiet");
        let calls = source.calls();
        assert_eq!(bytes_asked(&calls), len, "{calls:?}");
        assert!(calls.iter().all(|c| c.len <= 4 * MIB), "{calls:?}");
        assert!(reader.stats().peak_allocated <= 32 * MIB);
    });
}

#[test]
fn a_new_call_replaces_the_hints_not_yet_read() {
    watchdog(WATCHDOG_SECS, || {
        let source = counted(8 * MIB);
        let mut reader = build(&PrefetchReader::builder(), source.clone());
        reader.will_need(&[0..100 * KIB]).expect("hints");
        reader.wait_until_quiet().expect("quiet");
        reader
            .will_need(&[4 * MIB..4 * MIB + 100 * KIB])
            .expect("hints");
        read_range(&mut reader, 4 * MIB..4 * MIB + 100 * KIB);
        reader.wait_until_quiet().expect("quiet");
        assert_eq!(source.call_count(), 2);
        let handle = reader.stats_handle();
        drop(reader);
        let stats = settled(&handle);
        // The first call's part, never read, was dropped by the second.
        assert_eq!(stats.bytes_wasted, 100 * KIB);
        assert_eq!(stats.allocated, 0);
    });
}

#[test]
fn a_new_call_while_a_hinted_part_is_read_leaves_that_part_whole() {
    watchdog(WATCHDOG_SECS, || {
        // 256 KiB at 4 MB/s: the part is still arriving when the next
        // call comes.
        let link = SimulatedLink::new(4 * MIB, Duration::ZERO, 4_000_000).chunk_size(4096);
        let mut builder = PrefetchReader::builder();
        builder
            .max_prefetch(2 * MIB)
            .concurrency(2)
            .max_part_size(256 * KIB)
            .min_part_size(16 * KIB);
        let mut reader = build(&builder, link);
        reader.will_need(&[0..256 * KIB]).expect("hints");
        let mut head = vec![0; 10];
        reader.read_exact(&mut head).expect("read");
        reader.will_need(&[2 * MIB..2 * MIB + 10]).expect("hints");
        let mut rest = vec![0; 256 * KIB as usize - 10];
        reader.read_exact(&mut rest).expect("the rest of the part");
        assert!(is_pattern(0, &head) && is_pattern(10, &rest));
    });
}

#[test]
fn a_read_beside_a_held_hint_finds_room_whatever_the_smallest_part() {
    watchdog(WATCHDOG_SECS, || {
        // Parts of at least 768 KiB in a 1 MiB budget: a read-ahead part
        // does not fit beside the 500 KiB hint, so the read must not ask
        // for one.
        let mut builder = PrefetchReader::builder();
        builder
            .max_prefetch(MIB)
            .window_behind(0)
            .concurrency(2)
            .min_part_size(768 * KIB)
            .max_part_size(MIB)
            .advice(prefetch_reader::Advice::Sequential);
        let mut reader = build(&builder, MemorySource::new(pattern(4 * MIB as usize)));
        reader
            .will_need(&[2 * MIB..2 * MIB + 500 * KIB])
            .expect("hints");
        reader.wait_until_quiet().expect("quiet");
        read_range(&mut reader, 0..10);
        read_range(&mut reader, 2 * MIB..2 * MIB + 500 * KIB);
        assert!(reader.stats().peak_allocated <= MIB);
    });
}

#[test]
fn a_read_in_a_hint_not_yet_issued_waits_for_it_without_a_request_of_its_own() {
    watchdog(WATCHDOG_SECS, || {
        let source = counted(16 * MIB);
        let mut builder = PrefetchReader::builder();
        builder.concurrency(1);
        let mut reader = build(&builder, source.clone());
        let ranges: Vec<_> = (0..8)
            .map(|i| i * 2 * MIB..i * 2 * MIB + 10 * KIB)
            .collect();
        reader.will_need(&ranges).expect("hints");
        // The last one first: with one request at a time it is issued last.
        for range in ranges.iter().rev() {
            read_range(&mut reader, range.clone());
        }
        reader.wait_until_quiet().expect("quiet");
        assert_eq!(source.call_count(), 8, "{:?}", source.calls());
        assert_eq!(source.max_in_flight(), 1);
    });
}

#[test]
fn a_read_past_a_hint_goes_on_as_usual_and_a_closed_reader_takes_no_hint() {
    watchdog(WATCHDOG_SECS, || {
        let source = counted(4 * MIB);
        let mut reader = build(&PrefetchReader::builder(), source.clone());
        reader.will_need(&[MIB..MIB + 10 * KIB]).expect("hints");
        // Across the hint's end into bytes nobody hinted at.
        read_range(&mut reader, MIB..MIB + 100 * KIB);
        reader.close().expect("close");
        assert!(matches!(reader.will_need(&[0..1]), Err(Error::Closed)));
    });
}

/// The test server with 8 MiB of the pattern at `/o.bin`.
fn server_of_8_mib() -> TestServer {
    TestServer::builder()
        .object("/o.bin", pattern(8 << 20))
        .build()
        .expect("server")
}

#[test]
fn hinted_ranges_over_http_cost_one_request_each() {
    watchdog(WATCHDOG_SECS, || {
        let server = server_of_8_mib();
        let source = HttpSource::open(&server.url("/o.bin")).expect("open");
        let mut reader = PrefetchReader::new(source).expect("reader");
        let ranges = [6 * MIB..6 * MIB + 300, 2 * MIB..3 * MIB];
        reader.will_need(&ranges).expect("hints");
        for range in ranges {
            read_range(&mut reader, range);
        }
        reader.wait_until_quiet().expect("quiet");
        assert_eq!(server.get_count(), 2);
        assert_eq!(reader.stats().requests, 3, "the HEAD and two GETs");
    });
}

#[test]
fn an_empty_call_clears_the_hints_and_reads_there_fetch_as_usual() {
    watchdog(WATCHDOG_SECS, || {
        let source = counted(4 * MIB);
        let mut reader = build(&PrefetchReader::builder(), source.clone());
        reader.will_need(&[MIB..2 * MIB]).expect("hints");
        reader.wait_until_quiet().expect("quiet");
        reader.will_need(&[]).expect("no hints");
        read_range(&mut reader, MIB..MIB + 10);
        reader.wait_until_quiet().expect("quiet");
        // The hint's part, then a request of the read's own.
        assert_eq!(source.call_count(), 2, "{:?}", source.calls());
        let handle = reader.stats_handle();
        drop(reader);
        assert!(settled(&handle).bytes_wasted >= MIB);
    });
}

#[test]
fn parts_of_replaced_calls_never_starve_a_read_outside_the_hints() {
    watchdog(WATCHDOG_SECS, || {
        let source = counted(64 * MIB);
        let mut builder = PrefetchReader::builder();
        builder
            .max_prefetch(16 * MIB)
            .max_part_size(2 * MIB)
            .window_behind(MIB)
            .concurrency(4);
        let mut reader = build(&builder, source.clone());
        reader.will_need(&[0..13 * MIB]).expect("hints");
        reader.wait_until_quiet().expect("quiet");
        reader.will_need(&[20 * MIB..22 * MIB]).expect("hints");
        reader.wait_until_quiet().expect("quiet");
        read_range(&mut reader, 40 * MIB..40 * MIB + 1000);
        assert!(reader.stats().peak_allocated <= 16 * MIB);
    });
}

#[test]
fn hints_over_a_server_without_ranges_are_left_to_the_stream() {
    watchdog(WATCHDOG_SECS, || {
        let server = server_of_8_mib();
        server.set_persistent_fault(Some(prefetch_reader::testing::Fault::IgnoreRange));
        let source = HttpSource::open(&server.url("/o.bin")).expect("open");
        let mut reader = PrefetchReader::new(source).expect("reader");
        reader
            .will_need(&[6 * MIB..6 * MIB + 1000, 2 * MIB..3 * MIB])
            .expect("hints");
        read_range(&mut reader, 0..1000);
        read_range(&mut reader, 2 * MIB..3 * MIB);
        read_range(&mut reader, 6 * MIB..6 * MIB + 1000);
        // The hints asked for nothing: one stream served every read.
        assert!(reader.stats().single_stream);
        assert_eq!(server.get_count(), 1);
    });
}

#[test]
fn seeks_inside_the_hinted_part_being_read_make_no_request() {
    watchdog(WATCHDOG_SECS, || {
        let source = counted(8 * MIB);
        let mut reader = build(&PrefetchReader::builder(), source.clone());
        read_range(&mut reader, 0..16 * KIB);
        reader.wait_until_quiet().expect("quiet");
        reader.will_need(&[16 * KIB..80 * KIB]).expect("hints");
        reader.wait_until_quiet().expect("quiet");
        read_range(&mut reader, 16 * KIB..48 * KIB);
        reader.wait_until_quiet().expect("quiet");
        let before = source.call_count();
        read_range(&mut reader, 20 * KIB..30 * KIB);
        read_range(&mut reader, 70 * KIB..80 * KIB);
        reader.wait_until_quiet().expect("quiet");
        assert_eq!(
            source.call_count(),
            before,
            "{:?}",
            &source.calls()[before..]
        );
    });
}

#[test]
fn hinted_parts_read_in_turns_are_each_fetched_once() {
    watchdog(WATCHDOG_SECS, || {
        let source = counted(16 * MIB);
        let mut reader = build(&PrefetchReader::builder(), source.clone());
        let (a, b) = (MIB, 8 * MIB);
        reader
            .will_need(&[a..a + 100 * KIB, b..b + 100 * KIB])
            .expect("hints");
        reader.wait_until_quiet().expect("quiet");
        assert_eq!(source.call_count(), 2);
        for half in [0, 50 * KIB] {
            read_range(&mut reader, a + half..a + half + 50 * KIB);
            read_range(&mut reader, b + half..b + half + 50 * KIB);
        }
        reader.wait_until_quiet().expect("quiet");
        assert_eq!(source.call_count(), 2, "{:?}", source.calls());
    });
}

#[test]
fn a_read_outside_the_hints_is_asked_for_before_the_hints_left() {
    watchdog(WATCHDOG_SECS, || {
        let (source, gate) = BlockingSource::new(MemorySource::new(pattern(256 << 20)), 0);
        let source = Arc::new(CountingSource::new(source));
        let mut builder = PrefetchReader::builder();
        builder.concurrency(1).max_part_size(4 * MIB);
        let mut reader = build(&builder, source.clone());
        reader.will_need(&[0..32 * MIB]).expect("hints");
        wait_for_waiters(&gate, 1);
        let waiting = std::thread::spawn(move || {
            read_range(&mut reader, 200 * MIB..200 * MIB + 1000);
            reader
        });
        // Time for the read's request to reach the producer.
        std::thread::sleep(Duration::from_millis(200));
        gate.open();
        let _reader = waiting.join().expect("the read");
        let offsets: Vec<_> = source.calls().iter().map(|c| c.offset).collect();
        assert_eq!(
            offsets[..2],
            [0, 200 * MIB],
            "the read came second of {} hinted parts",
            32 / 4
        );
    });
}

#[test]
fn a_part_of_an_earlier_call_being_read_never_keeps_the_next_call_from_its_room() {
    watchdog(WATCHDOG_SECS, || {
        // A budget where one hinted part and the next call's first part
        // do not fit together.
        let len = 12 * MIB;
        let source = counted(len);
        let mut builder = PrefetchReader::builder();
        builder
            .concurrency(3)
            .min_part_size(256 * KIB)
            .max_part_size(768 * KIB)
            .first_request_size(16 * KIB)
            .window_behind(16 * KIB)
            .max_prefetch(1_101_508)
            .advice(prefetch_reader::Advice::Sequential);
        let mut reader = build(&builder, source.clone());
        reader.will_need(&[MIB..3 * MIB]).expect("hints");
        read_range(&mut reader, MIB..MIB + 1);
        // The part being read belongs to a replaced call now.
        reader.will_need(&[11 * MIB..len]).expect("hints");
        read_range(&mut reader, 11 * MIB..11 * MIB + 1);
        read_range(&mut reader, len - 10..len);
    });
}

/// Six 3 MiB ranges 8 MiB apart: 18 MiB hinted, over twice the budget.
fn ranges_beyond_an_8_mib_budget() -> Vec<Range<u64>> {
    (0..6).map(|i| i * 8 * MIB..i * 8 * MIB + 3 * MIB).collect()
}

fn reader_with_an_8_mib_budget(
    source: Arc<CountingSource<MemorySource>>,
) -> PrefetchReader<Arc<CountingSource<MemorySource>>> {
    let mut builder = PrefetchReader::builder();
    builder
        .max_prefetch(8 * MIB)
        .max_part_size(MIB)
        .window_behind(MIB)
        .concurrency(4);
    build(&builder, source)
}

#[test]
fn hints_beyond_the_budget_are_fetched_as_earlier_ones_are_read_through() {
    watchdog(WATCHDOG_SECS, || {
        let source = counted(48 * MIB);
        let mut reader = reader_with_an_8_mib_budget(source.clone());
        let ranges = ranges_beyond_an_8_mib_budget();
        reader.will_need(&ranges).expect("hints");
        reader.wait_until_quiet().expect("quiet");
        let early: u64 = bytes_asked(&source.calls());
        assert!(
            early > 0 && early <= 8 * MIB,
            "{early} bytes before any read"
        );
        for range in &ranges {
            read_range(&mut reader, range.clone());
        }
        reader.wait_until_quiet().expect("quiet");
        // Every hinted byte fetched once, by hinted requests alone.
        let calls = source.calls();
        assert!(inside(&calls, &ranges), "{calls:?}");
        assert_eq!(bytes_asked(&calls), 18 * MIB);
        let handle = reader.stats_handle();
        drop(reader);
        let stats = settled(&handle);
        assert_eq!(stats.bytes_wasted, 0);
        assert!(stats.peak_allocated <= 8 * MIB, "{}", stats.peak_allocated);
    });
}

#[test]
fn a_read_of_a_hint_the_budget_did_not_hold_yet_is_fetched_next_within_the_budget() {
    watchdog(WATCHDOG_SECS, || {
        let source = counted(48 * MIB);
        let mut reader = reader_with_an_8_mib_budget(source.clone());
        let ranges = ranges_beyond_an_8_mib_budget();
        reader.will_need(&ranges).expect("hints");
        reader.wait_until_quiet().expect("quiet");
        // The last range first, while the parts held (none of it) fill
        // the budget; half of each, so parts left midway are held too.
        let half = |r: &Range<u64>| r.start + (r.end - r.start) / 2;
        for range in ranges.iter().rev() {
            read_range(&mut reader, range.start..half(range));
        }
        for range in &ranges {
            read_range(&mut reader, half(range)..range.end);
        }
        reader.wait_until_quiet().expect("quiet");
        let stats = reader.stats();
        assert!(stats.peak_allocated <= 8 * MIB, "{}", stats.peak_allocated);
        // Parts dropped to make room are fetched again, at most what the
        // budget held each time a read found no room.
        let fetched: u64 = bytes_asked(&source.calls());
        assert!(fetched <= 18 * MIB + 6 * 8 * MIB, "{fetched} bytes fetched");
    });
}

#[test]
fn hints_under_a_budget_too_small_for_a_part_beside_a_read_are_still_served_once() {
    watchdog(WATCHDOG_SECS, || {
        let source = counted(16 * MIB);
        let mut builder = PrefetchReader::builder();
        builder.max_prefetch(MIB).window_behind(0).concurrency(4);
        let mut reader = build(&builder, source.clone());
        reader.will_need(&[2 * MIB..6 * MIB]).expect("hints");
        // In small reads, which alone would make read-ahead run past it.
        for at in (2 * MIB..6 * MIB).step_by(100 * KIB as usize) {
            read_range(&mut reader, at..(at + 100 * KIB).min(6 * MIB));
        }
        reader.wait_until_quiet().expect("quiet");
        let calls = source.calls();
        assert!(inside(&calls, &[2 * MIB..6 * MIB]), "{calls:?}");
        assert_eq!(bytes_asked(&calls), 4 * MIB);
        assert!(reader.stats().peak_allocated <= MIB);
    });
}

#[test]
fn reading_in_order_into_a_hint_and_past_it_fetches_each_byte_once() {
    watchdog(WATCHDOG_SECS, || {
        let source = counted(32 * MIB);
        let mut reader = build(&PrefetchReader::builder(), source.clone());
        let hint = 8 * MIB..10 * MIB;
        reader
            .will_need(std::slice::from_ref(&hint))
            .expect("hints");
        reader.wait_until_quiet().expect("quiet");
        // In order from well before the hint to well past it, in small
        // reads that earn read-ahead.
        let (from, to) = (6 * MIB, 12 * MIB);
        reader.seek(SeekFrom::Start(from)).expect("seek");
        let mut buf = vec![0; 8 * KIB as usize];
        let data = pattern(to as usize);
        let mut at = from;
        while at < to {
            reader.read_exact(&mut buf).expect("read");
            assert!(
                buf[..] == data[at as usize..at as usize + buf.len()],
                "at {at}"
            );
            at += buf.len() as u64;
        }
        let handle = reader.stats_handle();
        drop(reader);
        let stats = settled(&handle);
        let calls = source.calls();
        let mut spans = spans(&calls);
        spans.dedup();
        assert!(
            spans.windows(2).all(|w| w[0].1 <= w[1].0),
            "bytes fetched twice: {spans:?}"
        );
        // The hint's bytes, by its own request alone.
        let in_hint: Vec<Call> = calls
            .iter()
            .filter(|c| c.offset < hint.end && hint.start < c.offset + c.len)
            .cloned()
            .collect();
        assert!(inside(&in_hint, std::slice::from_ref(&hint)), "{calls:?}");
        assert_eq!(bytes_asked(&in_hint), hint.end - hint.start, "{calls:?}");
        assert!(stats.bytes_fetched >= to - from);
    });
}

#[test]
fn a_hinted_range_read_again_after_its_parts_left_gets_read_ahead_as_usual() {
    watchdog(WATCHDOG_SECS, || {
        let source = counted(32 * MIB);
        let mut reader = build(&PrefetchReader::builder(), source.clone());
        let hint = 8 * MIB..12 * MIB;
        reader
            .will_need(std::slice::from_ref(&hint))
            .expect("hints");
        read_range(&mut reader, hint.clone());
        reader.wait_until_quiet().expect("quiet");
        let hinted = source.call_count();
        // Again, in small reads: its parts were read through and left.
        reader.seek(SeekFrom::Start(hint.start)).expect("seek");
        let mut buf = vec![0; 8 * KIB as usize];
        let data = pattern(hint.end as usize);
        for at in (hint.start..hint.end).step_by(buf.len()) {
            reader.read_exact(&mut buf).expect("read");
            assert!(
                buf[..] == data[at as usize..at as usize + buf.len()],
                "at {at}"
            );
        }
        // Read-ahead grows as ever: a few requests, not one per read.
        let again = source.call_count() - hinted;
        assert!(
            again <= 16,
            "{again} requests for 512 reads: {:?}",
            source.calls()
        );
    });
}

#[test]
fn hinted_parts_held_never_leave_a_read_outside_the_hints_without_room() {
    watchdog(WATCHDOG_SECS, || {
        // Parts held after reads of them, then a read elsewhere.
        let source = counted(64 * MIB);
        let mut builder = PrefetchReader::builder();
        builder.max_prefetch(4 * MIB);
        let mut reader = build(&builder, source.clone());
        reader.will_need(&[0..8 * MIB]).expect("hints");
        for pos in [0, MIB, 2 * MIB, 20 * MIB] {
            read_range(&mut reader, pos..pos + 10);
        }
        // Parts held after a wait for a part not made yet, then a read
        // elsewhere.
        let mut builder = PrefetchReader::builder();
        builder
            .max_prefetch(2 * MIB)
            .window_behind(0)
            .min_part_size(64 * KIB)
            .max_part_size(256 * KIB);
        let mut reader = build(&builder, source.clone());
        reader.will_need(&[0..4 * MIB]).expect("hints");
        reader.wait_until_quiet().expect("quiet");
        read_range(&mut reader, 4 * MIB - 1000..4 * MIB - 900);
        read_range(&mut reader, 8 * MIB..8 * MIB + 100);
        assert!(reader.stats().peak_allocated <= 2 * MIB);
    });
}

#[test]
fn hints_are_fetched_in_the_background_under_a_budget_smaller_than_a_part() {
    watchdog(WATCHDOG_SECS, || {
        let source = counted(64 * MIB);
        let mut builder = PrefetchReader::builder();
        // max_part_size (64 MiB by default) over the whole budget.
        builder.max_prefetch(32 * MIB);
        let mut reader = build(&builder, source.clone());
        reader.will_need(&[0..8 * MIB]).expect("hints");
        reader.wait_until_quiet().expect("quiet");
        let fetched: u64 = bytes_asked(&source.calls());
        assert_eq!(fetched, 8 * MIB, "{:?}", source.calls());
        read_range(&mut reader, 0..8 * MIB);
        assert_eq!(bytes_asked(&source.calls()), 8 * MIB);
    });
}

/// A source with only the required methods.
#[derive(Debug)]
struct ReadAtOnly(MemorySource);

impl prefetch_reader::RangeSource for ReadAtOnly {
    fn len(&self) -> u64 {
        self.0.len()
    }

    fn read_at(
        &self,
        offset: u64,
        buf: &mut [u8],
        ctx: &prefetch_reader::FetchContext,
    ) -> prefetch_reader::Result<()> {
        self.0.read_at(offset, buf, ctx)
    }

    fn location(&self) -> String {
        self.0.location()
    }
}

#[test]
fn hinted_bytes_read_again_after_their_parts_left_are_fetched_again_without_a_hang() {
    watchdog(WATCHDOG_SECS, || {
        // A source with `read_at` alone: each part arrives whole.
        let source = ReadAtOnly(MemorySource::new(pattern(4 << 20)));
        let mut builder = PrefetchReader::builder();
        builder
            .max_prefetch(MIB)
            .concurrency(4)
            .max_part_size(256 * KIB)
            .min_part_size(64 * KIB)
            .window_behind(0)
            .first_request_size(64 * KIB);
        let mut reader = build(&builder, source);
        // Hints over twice the budget, read, then read again from the start.
        reader.will_need(&[0..2 * MIB]).expect("hints");
        for _ in 0..2 {
            read_range(&mut reader, 0..800_000);
        }
        read_range(&mut reader, 0..2 * MIB);
        assert!(reader.stats().peak_allocated <= MIB);
    });
}
