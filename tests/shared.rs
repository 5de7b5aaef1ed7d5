//! `SharedObject`: cursors over one object share its cache and hints, so
//! no byte is fetched twice while cached or on its way; counted at the
//! source.

#![cfg(feature = "testing")]
#![allow(
    clippy::single_range_in_vec_init,
    reason = "a hint of one range is a slice of one range"
)]

mod common;

use std::io::{BufRead, Read, Seek, SeekFrom};
use std::sync::Arc;
use std::time::Duration;

use common::{
    bytes_asked, counted, inside, wait_for_waiters, wait_until, wait_until_within, watchdog, KIB,
    MIB,
};
use prefetch_reader::testing::{
    pattern, BlockingSource, CountingSource, FailingSource, SimulatedLink,
};
use prefetch_reader::{Error, MemorySource, PrefetchReader, RangeSource, SharedObject};

const WATCHDOG_SECS: u64 = 60;

/// Reads `len` bytes at `offset` through `cursor`, checking each.
fn read_at(cursor: &mut impl Read, offset: u64, len: u64) {
    let mut buf = vec![0; len as usize];
    cursor.read_exact(&mut buf).expect("read");
    let data = pattern((offset + len) as usize);
    assert!(buf[..] == data[offset as usize..], "bytes at {offset}");
}

#[test]
fn cursors_reuse_the_bytes_any_of_them_fetched() {
    watchdog(WATCHDOG_SECS, || {
        let source = counted(8 * MIB);
        let object = SharedObject::new(source.clone()).expect("object");
        let mut a = object.cursor(3 * MIB);
        read_at(&mut a, 3 * MIB, 10 * KIB);
        assert_eq!(source.call_count(), 1);
        // Another cursor inside what the first fetched: no request.
        let mut b = object.cursor(3 * MIB + 5 * KIB);
        read_at(&mut b, 3 * MIB + 5 * KIB, 20 * KIB);
        // A seek back into the cache, through either, costs nothing.
        a.seek(SeekFrom::Start(3 * MIB)).expect("seek");
        read_at(&mut a, 3 * MIB, 30 * KIB);
        assert_eq!(source.call_count(), 1, "{:?}", source.calls());
        assert_eq!(object.stats().requests, 1);
        assert_eq!(object.stats().bytes_delivered, 60 * KIB);
    });
}

#[test]
fn cursors_on_threads_of_their_own_read_the_object_exactly_and_fetch_each_byte_once() {
    watchdog(WATCHDOG_SECS, || {
        let len = 24 * MIB;
        let source = counted(len);
        let object = SharedObject::new(source.clone()).expect("object");
        let readers: Vec<_> = (0..4)
            .map(|i| {
                let mut cursor = object.cursor(0);
                std::thread::spawn(move || {
                    let mut out = Vec::new();
                    if i % 2 == 0 {
                        cursor.read_to_end(&mut out).expect("read");
                    } else {
                        // Through fill_buf alone.
                        loop {
                            let n = {
                                let buf = cursor.fill_buf().expect("fill");
                                out.extend_from_slice(buf);
                                buf.len()
                            };
                            if n == 0 {
                                break;
                            }
                            cursor.consume(n);
                        }
                    }
                    out
                })
            })
            .collect();
        let data = pattern(len as usize);
        for reader in readers {
            assert!(reader.join().expect("reader") == data);
        }
        let stats = object.stats();
        assert_eq!(stats.bytes_fetched, len, "each byte once");
        assert_eq!(stats.bytes_delivered, 4 * len);
        let fetched: u64 = bytes_asked(&source.calls());
        assert_eq!(fetched, len);
    });
}

#[test]
fn a_read_inside_a_hint_waits_for_its_fetch_instead_of_asking_again() {
    watchdog(WATCHDOG_SECS, || {
        let (source, gate) = BlockingSource::from_offset(MemorySource::new(pattern(4 << 20)), MIB);
        let source = Arc::new(CountingSource::new(source));
        let object = SharedObject::new(source.clone()).expect("object");
        object.will_need(&[MIB..2 * MIB]).expect("hint");
        // The hint's fetch is under way (and stuck) on the pool before the
        // read: the read cannot take it over, only wait for it.
        wait_for_waiters(&gate, 1);
        let mut cursor = object.cursor(MIB + MIB / 2);
        let reader = std::thread::spawn(move || read_at(&mut cursor, MIB + MIB / 2, 1000));
        // Time for a request of the read's own, if it made one, to arrive;
        // the count after the read catches one that comes later.
        std::thread::sleep(Duration::from_millis(50));
        // Only the hint's fetch is at the source; the read waits for it.
        assert_eq!(gate.waiting(), 1);
        assert_eq!(source.call_count(), 1);
        gate.open();
        reader.join().expect("the read");
        assert_eq!(source.call_count(), 1, "{:?}", source.calls());
    });
}

#[test]
fn hints_fetch_their_ranges_once_and_skip_what_is_cached() {
    watchdog(WATCHDOG_SECS, || {
        let source = counted(16 * MIB);
        let object = SharedObject::new(source.clone()).expect("object");
        let mut cursor = object.cursor(MIB);
        read_at(&mut cursor, MIB, 64 * KIB);
        object
            .will_need(&[MIB..MIB + 64 * KIB, 8 * MIB..8 * MIB + 300])
            .expect("hints");
        let mut far = object.cursor(8 * MIB);
        read_at(&mut far, 8 * MIB, 300);
        let mut spans: Vec<_> = source.calls().iter().map(|c| (c.offset, c.len)).collect();
        spans.sort_unstable();
        assert_eq!(spans, [(MIB, 64 * KIB), (8 * MIB, 300)]);
        // A second call for the same ranges asks for nothing.
        object.will_need(&[8 * MIB..8 * MIB + 300]).expect("hints");
        read_at(&mut object.cursor(8 * MIB), 8 * MIB, 300);
        assert_eq!(source.call_count(), 2);
    });
}

#[test]
fn a_cursor_reading_in_order_fetches_ahead_at_most_twice_what_it_read() {
    watchdog(WATCHDOG_SECS, || {
        let source = counted(64 * MIB);
        let object = SharedObject::new(source.clone()).expect("object");
        let mut cursor = object.cursor(0);
        read_at(&mut cursor, 0, 4 * MIB);
        // Let the read-ahead under way land.
        wait_until("the read-ahead under way to land", || {
            let stats = object.stats();
            stats.bytes_fetched >= stats.allocated
        });
        let fetched: u64 = bytes_asked(&source.calls());
        assert!(fetched > 4 * MIB, "it read ahead: {fetched}");
        assert!(
            fetched <= 3 * 4 * MIB + 64 * KIB,
            "{fetched} for 4 MiB read"
        );
    });
}

#[test]
fn a_small_cache_evicts_the_oldest_bytes_and_still_reads_exactly() {
    watchdog(WATCHDOG_SECS, || {
        let len = 16 * MIB;
        let source = counted(len);
        let mut settings = PrefetchReader::builder();
        settings
            .max_prefetch(2 * MIB)
            .max_part_size(MIB)
            .window_behind(0);
        let object = SharedObject::with_settings(source.clone(), &settings).expect("object");
        let mut out = Vec::new();
        object.cursor(0).read_to_end(&mut out).expect("read");
        assert!(out == pattern(len as usize));
        let stats = object.stats();
        assert!(stats.peak_allocated <= 3 * MIB, "{stats:?}");
        // The start was evicted: reading it again asks again.
        let calls = source.call_count();
        read_at(&mut object.cursor(0), 0, 10);
        assert_eq!(source.call_count(), calls + 1);
    });
}

#[test]
fn a_failed_fetch_is_the_reads_error_and_the_next_read_asks_again() {
    watchdog(WATCHDOG_SECS, || {
        let source = Arc::new(FailingSource::fail_from_call(
            MemorySource::new(pattern(MIB as usize)),
            0,
        ));
        let object = SharedObject::new(source.clone()).expect("object");
        let mut cursor = object.cursor(100);
        let err = cursor.read(&mut [0; 10]).expect_err("the source fails");
        let err = Error::from_io(err);
        assert!(
            matches!(err, Error::HttpStatus { status: 503, .. }),
            "{err:?}"
        );
        source.heal();
        read_at(&mut cursor, 100, 10);
        assert_eq!(source.call_count(), 2);
    });
}

#[test]
fn ranges_past_the_end_are_clipped_or_refused_and_cursors_there_read_nothing() {
    let object = SharedObject::new(MemorySource::new(pattern(1000))).expect("object");
    object.will_need(&[900..5000, 2000..3000]).expect("hints");
    assert_eq!(
        object.bytes(990..1000).expect("bytes")[..],
        pattern(1000)[990..]
    );
    assert!(matches!(
        object.bytes(990..1001),
        Err(Error::InvalidSeek { .. })
    ));
    let mut cursor = object.cursor(5000);
    assert_eq!(cursor.read(&mut [0; 10]).expect("read"), 0);
    assert!(cursor.seek(SeekFrom::Current(-6000)).is_err());
    assert_eq!(cursor.seek(SeekFrom::End(-1)).expect("seek"), 999);
    read_at(&mut cursor, 999, 1);
    assert_eq!(object.len(), 1000);
    assert!(!object.is_empty());
}

#[test]
fn a_panicking_source_is_an_error_not_an_abort() {
    #[derive(Debug)]
    struct Panics;
    impl RangeSource for Panics {
        fn len(&self) -> u64 {
            1 << 20
        }
        fn read_at(
            &self,
            _: u64,
            _: &mut [u8],
            _: &prefetch_reader::FetchContext,
        ) -> prefetch_reader::Result<()> {
            panic!("a source bug")
        }
    }
    watchdog(WATCHDOG_SECS, || {
        let object = SharedObject::new(Panics).expect("object");
        object.will_need(&[0..1000]).expect("hint");
        let err = object.cursor(10).read(&mut [0; 10]).expect_err("panicked");
        assert!(
            matches!(Error::from_io(err), Error::Terminated(_)),
            "a read waiting on the failed hint, or its own fetch, fails"
        );
        assert!(object.bytes(5000..6000).is_err());
    });
}

#[test]
fn a_read_inside_a_queued_hint_fetches_it_at_once() {
    watchdog(WATCHDOG_SECS, || {
        let (source, gate) = BlockingSource::new(MemorySource::new(pattern(8 << 20)), 0);
        let source = Arc::new(CountingSource::new(source));
        let mut settings = PrefetchReader::builder();
        settings.concurrency(1);
        let object = SharedObject::with_settings(source.clone(), &settings).expect("object");
        // Far enough apart not to be merged.
        let hints: Vec<_> = (0..4)
            .map(|i| 2 * i * MIB..2 * i * MIB + 100 * KIB)
            .collect();
        object.will_need(&hints).expect("hints");
        // The first hinted part is under way (and stuck) on the object's
        // one pool job before the read.
        wait_for_waiters(&gate, 1);
        let mut cursor = object.cursor(6 * MIB);
        let reader = std::thread::spawn(move || read_at(&mut cursor, 6 * MIB, 1000));
        // That job cannot move on, so a second call at the gate is the
        // read fetching its queued part itself, at once.
        wait_for_waiters(&gate, 2);
        let offsets: Vec<_> = source.calls().iter().map(|c| c.offset).collect();
        assert_eq!(
            offsets,
            [0, 6 * MIB],
            "the stuck part, and the one the read needs"
        );
        gate.open();
        reader.join().expect("the read");
        let offsets: Vec<_> = source.calls().iter().map(|c| c.offset).collect();
        assert_eq!(offsets[..2], [0, 6 * MIB], "the one read needs came next");
    });
}

#[test]
fn another_objects_stuck_hints_never_hold_up_a_read_in_a_hint() {
    watchdog(WATCHDOG_SECS, || {
        let link = SimulatedLink::new(1 << 40, Duration::ZERO, 0);
        let (stuck, gate) = BlockingSource::new(link, 0);
        let mut settings = PrefetchReader::builder();
        settings
            .concurrency(1024)
            .min_part_size(4 * KIB)
            .window_behind(0);
        let stuck = SharedObject::with_settings(stuck, &settings).expect("object");
        let ranges: Vec<_> = (0..300)
            .map(|i| i * 3 * MIB..i * 3 * MIB + 4 * KIB)
            .collect();
        stuck.will_need(&ranges).expect("hints");
        wait_for_waiters(&gate, 200);
        let healthy = SharedObject::new(MemorySource::new(pattern(8 << 20))).expect("object");
        healthy.will_need(&[0..MIB]).expect("hint");
        read_at(&mut healthy.cursor(0), 0, 1000);
        gate.open();
    });
}

#[test]
fn dropping_the_object_and_its_cursors_cancels_the_fetches_under_way() {
    watchdog(WATCHDOG_SECS, || {
        let link = SimulatedLink::new(256 * MIB, Duration::from_secs(3), 0);
        let source = Arc::new(CountingSource::new(link));
        let object = SharedObject::new(source.clone()).expect("object");
        object
            .will_need(&[0..MIB, 10 * MIB..11 * MIB, 20 * MIB..21 * MIB])
            .expect("hints");
        wait_until("the three hinted fetches to be under way", || {
            source.in_flight() >= 3
        });
        let cursor = object.cursor(0);
        drop(object);
        // A cursor keeps the object alive.
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(source.in_flight(), 3);
        drop(cursor);
        wait_until_within(
            Duration::from_secs(2),
            "the fetches to be cancelled, well before the 3 s latency",
            || source.in_flight() == 0,
        );
    });
}

#[test]
fn hinted_parts_keep_to_concurrency_and_reads_to_the_budget() {
    watchdog(WATCHDOG_SECS, || {
        let source = counted(64 * MIB);
        let mut settings = PrefetchReader::builder();
        settings.concurrency(2).max_part_size(8 * MIB);
        let object = SharedObject::with_settings(source.clone(), &settings).expect("object");
        object.will_need(&[0..32 * MIB]).expect("hints");
        assert!(object.bytes(0..32 * MIB).expect("bytes")[..] == pattern(32 << 20)[..]);
        // Two pool jobs, and the reading thread taking the part it needs.
        assert!(source.max_in_flight() <= 3, "{}", source.max_in_flight());
        // A cursor reading in order over a small cache stays within it.
        let source = counted(20 * MIB);
        let mut settings = PrefetchReader::builder();
        settings
            .max_prefetch(2 * MIB)
            .min_part_size(64 * KIB)
            .window_behind(0);
        let object = SharedObject::with_settings(source, &settings).expect("object");
        let mut out = Vec::new();
        object.cursor(0).read_to_end(&mut out).expect("read");
        assert!(out == pattern(20 << 20));
        let peak = object.stats().peak_allocated;
        assert!(peak <= 2 * MIB, "peak {peak}");
    });
}

#[test]
fn over_a_server_ignoring_ranges_the_object_is_one_stream_read_front_to_back() {
    watchdog(WATCHDOG_SECS, || {
        let data = pattern(20 * MIB as usize);
        let server = prefetch_reader::testing::TestServer::builder()
            .object("/plain.bin", data.clone())
            .build()
            .expect("server");
        server.set_persistent_fault(Some(prefetch_reader::testing::Fault::IgnoreRange));
        let source = prefetch_reader::HttpSource::open(&server.url("/plain.bin")).expect("open");
        assert!(!source.supports_ranges());
        let object = SharedObject::new(source).expect("object");
        // Ranges ahead cannot be served by one stream: hints ask nothing.
        object.will_need(&[10 * MIB..12 * MIB]).expect("hint");
        let mut out = Vec::new();
        object.cursor(0).read_to_end(&mut out).expect("read");
        assert!(out == data);
        // A range after what was read, in one piece: one stream, not parts.
        let rest = SharedObject::new(
            prefetch_reader::HttpSource::open(&server.url("/plain.bin")).expect("open"),
        )
        .expect("object");
        let piece = rest.bytes(MIB..19 * MIB).expect("bytes");
        assert!(piece[..] == data[MIB as usize..19 * MIB as usize]);
        let (one, two) = (object.stats(), rest.stats());
        assert!(one.single_stream && two.single_stream);
        // Requests are what the server saw, counted by the source.
        assert_eq!(one.requests + two.requests, server.request_count() as u64);
        assert_eq!(one.bytes_fetched, data.len() as u64);
    });
}

/// A source far larger than any memory, of zeros.
#[derive(Debug)]
struct Huge;

impl RangeSource for Huge {
    fn len(&self) -> u64 {
        1 << 62
    }

    fn read_at(
        &self,
        _offset: u64,
        buf: &mut [u8],
        ctx: &prefetch_reader::FetchContext,
    ) -> prefetch_reader::Result<()> {
        buf.fill(0);
        ctx.add_bytes(buf.len() as u64);
        Ok(())
    }

    fn location(&self) -> String {
        "huge".to_owned()
    }
}

#[test]
fn bytes_of_a_range_larger_than_memory_are_an_error_not_an_abort() {
    watchdog(WATCHDOG_SECS, || {
        let object = SharedObject::new(Huge).expect("object");
        let err = object.bytes(0..object.len()).expect_err("too large");
        match err {
            Error::Io { source, .. } => {
                assert_eq!(source.kind(), std::io::ErrorKind::OutOfMemory);
            }
            other => panic!("{other:?}"),
        }
        // The room it asked for is given back: reads go on.
        assert_eq!(object.stats().allocated, 0);
        let mut buf = [1; 100];
        object.cursor(1 << 40).read_exact(&mut buf).expect("read");
        assert_eq!(buf, [0; 100]);
    });
}

/// Six 3 MiB ranges 8 MiB apart (18 MiB hinted) and an object whose cache
/// holds 8 MiB.
fn hinted_beyond_an_8_mib_cache(
    source: Arc<CountingSource<MemorySource>>,
) -> (SharedObject, Vec<std::ops::Range<u64>>) {
    let mut settings = PrefetchReader::builder();
    settings
        .max_prefetch(8 * MIB)
        .max_part_size(MIB)
        .concurrency(4);
    let object = SharedObject::with_settings(source, &settings).expect("object");
    let ranges: Vec<_> = (0..6).map(|i| i * 8 * MIB..i * 8 * MIB + 3 * MIB).collect();
    object.will_need(&ranges).expect("hint");
    (object, ranges)
}

/// Checks `bytes` are those of `range`.
fn check(bytes: &[u8], range: &std::ops::Range<u64>) {
    let data = pattern(range.end as usize);
    assert!(
        bytes[..] == data[range.start as usize..],
        "bytes of {range:?}"
    );
}

#[test]
fn hints_beyond_the_cache_wait_for_room_and_are_fetched_once_as_earlier_ones_are_read() {
    watchdog(WATCHDOG_SECS, || {
        let source = counted(48 * MIB);
        let (object, ranges) = hinted_beyond_an_8_mib_cache(source.clone());
        for range in &ranges {
            check(&object.bytes(range.clone()).expect("bytes"), range);
        }
        // Every hinted byte once, by hinted requests alone: none evicted
        // an earlier hint before it was read.
        let calls = source.calls();
        assert!(inside(&calls, &ranges), "{calls:?}");
        assert_eq!(bytes_asked(&calls), 18 * MIB);
        // As the hints' parts (a read would fetch its 3 MiB at once).
        assert!(calls.iter().all(|c| c.len <= MIB), "{calls:?}");
        assert!(object.stats().peak_allocated <= 8 * MIB);
    });
}

#[test]
fn a_read_of_a_hint_still_waiting_for_room_fetches_it_and_it_is_not_asked_for_again() {
    watchdog(WATCHDOG_SECS, || {
        let source = counted(48 * MIB);
        let (object, ranges) = hinted_beyond_an_8_mib_cache(source.clone());
        // The last first: the cache is full of earlier hints, none read.
        let last = &ranges[5];
        check(&object.bytes(last.clone()).expect("bytes"), last);
        for range in &ranges[..5] {
            check(&object.bytes(range.clone()).expect("bytes"), range);
        }
        let fetched_in_last = |calls: &[prefetch_reader::testing::Call]| -> u64 {
            calls
                .iter()
                .filter(|c| last.start <= c.offset && c.offset < last.end)
                .map(|c| c.len)
                .sum()
        };
        assert_eq!(
            fetched_in_last(&source.calls()),
            3 * MIB,
            "{:?}",
            source.calls()
        );
        assert!(object.stats().peak_allocated <= 8 * MIB);
    });
}

#[test]
fn a_hint_over_bytes_already_cached_fetches_the_rest_of_it() {
    watchdog(WATCHDOG_SECS, || {
        for cached in [0..10, MIB..MIB + 64 * KIB] {
            let source = counted(8 * MIB);
            let object = SharedObject::new(source.clone()).expect("object");
            let first = object.bytes(cached.clone()).expect("bytes");
            assert_eq!(first.len() as u64, cached.end - cached.start);
            object.will_need(&[0..4 * MIB]).expect("hint");
            // In the background, around what is cached, each byte once.
            wait_until("the hint fetched", || {
                bytes_asked(&source.calls()) >= 4 * MIB
            });
            let calls = source.call_count();
            check(&object.bytes(0..4 * MIB).expect("bytes"), &(0..4 * MIB));
            assert_eq!(source.call_count(), calls, "{:?}", source.calls());
            assert_eq!(
                bytes_asked(&source.calls()),
                4 * MIB,
                "{:?}",
                source.calls()
            );
        }
    });
}

#[test]
fn a_hint_too_large_for_a_small_cache_never_holds_up_the_hints_after_it() {
    watchdog(WATCHDOG_SECS, || {
        let source = counted(8 * MIB);
        let mut settings = PrefetchReader::builder();
        // Parts of half the cache, more than fits beside a read's 64 KiB.
        settings
            .max_prefetch(100 * KIB)
            .window_behind(0)
            .min_part_size(64 * KIB)
            .max_part_size(MIB);
        let object = SharedObject::with_settings(source.clone(), &settings).expect("object");
        object
            .will_need(&[0..50 * KIB, 4 * MIB..4 * MIB + 10])
            .expect("hint");
        wait_until("the small hint fetched", || {
            source
                .calls()
                .iter()
                .any(|c| c.offset <= 4 * MIB && 4 * MIB < c.offset + c.len)
        });
        // The large one is left to the read.
        check(&object.bytes(0..50 * KIB).expect("bytes"), &(0..50 * KIB));
    });
}

#[test]
fn a_read_needing_room_evicts_bytes_read_before_hinted_bytes_not_read() {
    watchdog(WATCHDOG_SECS, || {
        let source = counted(32 * MIB);
        let mut settings = PrefetchReader::builder();
        settings
            .max_prefetch(MIB)
            .window_behind(0)
            .min_part_size(64 * KIB);
        let object = SharedObject::with_settings(source.clone(), &settings).expect("object");
        let hinted = 0..300 * KIB;
        object
            .will_need(std::slice::from_ref(&hinted))
            .expect("hint");
        wait_until("the hint fetched", || {
            bytes_asked(&source.calls()) >= 300 * KIB
        });
        // Newer bytes, read through; then a read the cache cannot hold
        // beside both.
        let read = 8 * MIB..8 * MIB + 300 * KIB;
        check(&object.bytes(read.clone()).expect("bytes"), &read);
        let other = 16 * MIB..16 * MIB + 500 * KIB;
        check(&object.bytes(other.clone()).expect("bytes"), &other);
        let calls = source.call_count();
        check(&object.bytes(hinted.clone()).expect("bytes"), &hinted);
        assert_eq!(source.call_count(), calls, "{:?}", source.calls());
        assert!(object.stats().peak_allocated <= MIB);
    });
}
