//! The engine's behaviour over in-process sources: bytes, EOF, seeks,
//! request counts, errors, lifecycle and memory.

mod common;

use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::sync::Arc;
use std::time::Duration;

use common::{
    build, counted, crate_error, sequential, small_blocks, wait_for_waiters, wait_until, watchdog,
    KIB, MIB,
};
use prefetch_reader::testing::{
    fill_pattern, is_pattern, pattern, BlockingSource, Call, CountingSource, FailingSource,
    SimulatedLink,
};
use prefetch_reader::{Advice, Error, FileSource, MemorySource, PrefetchReader, RangeSource};

fn read_n<R: Read>(reader: &mut R, n: usize) -> Vec<u8> {
    let mut buf = vec![0; n];
    let got = reader.read(&mut buf).expect("read");
    buf.truncate(got);
    buf
}

// --- bytes -------------------------------------------------------------

#[test]
fn sequential_reads_return_exact_bytes_across_block_boundaries() {
    let data = pattern(300 * KIB as usize + 17);
    for read_size in [1, 7, 1000, 4096, 5000, 40_000] {
        let mut reader = build(&small_blocks(), MemorySource::new(data.clone()));
        let mut out = Vec::new();
        let mut buf = vec![0; read_size];
        loop {
            let n = reader.read(&mut buf).expect("read");
            if n == 0 {
                break;
            }
            out.extend_from_slice(&buf[..n]);
        }
        assert_eq!(out, data, "read size {read_size}");
    }
}

#[test]
fn a_read_spanning_blocks_is_filled_completely() {
    let source = counted(200 * KIB);
    let mut reader = build(&small_blocks(), source.clone());
    // Blocks are at most 16 KiB: one read of 100 KiB spans many.
    let first = read_n(&mut reader, 100 * KIB as usize);
    assert_eq!(first, pattern(200 * KIB as usize)[..100 * KIB as usize]);
    assert!(source.call_count() > 1);
}

#[test]
fn partial_blocks_stay_buffered() {
    let source = counted(64 * KIB);
    let mut reader = build(&PrefetchReader::builder(), source.clone());
    // The first request is 64 KiB whatever the read: the rest stays buffered.
    assert_eq!(read_n(&mut reader, 100), pattern(100));
    let calls = source.call_count();
    assert_eq!(read_n(&mut reader, 1000), pattern(1100)[100..]);
    assert_eq!(source.call_count(), calls, "served from the buffered block");
}

// --- EOF -----------------------------------------------------------------

#[test]
fn reads_at_and_past_eof_return_zero() {
    let mut reader = build(&small_blocks(), MemorySource::new(pattern(10)));
    assert_eq!(read_n(&mut reader, 100).len(), 10);
    assert_eq!(read_n(&mut reader, 100).len(), 0);
    reader.seek(SeekFrom::Start(50)).unwrap();
    assert_eq!(read_n(&mut reader, 100).len(), 0);
}

#[test]
fn read_exact_past_eof_is_unexpected_eof() {
    let mut reader = build(&small_blocks(), MemorySource::new(pattern(10)));
    let mut buf = [0; 11];
    let err = reader.read_exact(&mut buf).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
}

#[test]
fn a_zero_length_read_returns_zero_and_makes_no_request() {
    let source = counted(100);
    let mut reader = build(&small_blocks(), source.clone());
    assert_eq!(reader.read(&mut []).unwrap(), 0);
    assert_eq!(source.call_count(), 0);
    assert_eq!(reader.stats().requests, 0);
}

#[test]
fn an_empty_object_reads_nothing_and_makes_no_request() {
    let source = counted(0);
    let mut reader = build(&small_blocks(), source.clone());
    let mut all = Vec::new();
    assert_eq!(reader.read_to_end(&mut all).unwrap(), 0);
    assert!(reader.fill_buf().unwrap().is_empty());
    assert_eq!(source.call_count(), 0);
}

// --- seeks -----------------------------------------------------------------

#[test]
fn seek_from_start_current_and_end() {
    let data = pattern(100 * KIB as usize);
    let mut reader = build(&small_blocks(), MemorySource::new(data.clone()));
    assert_eq!(reader.seek(SeekFrom::Start(10)).unwrap(), 10);
    assert_eq!(read_n(&mut reader, 5), data[10..15]);
    assert_eq!(reader.seek(SeekFrom::Current(-3)).unwrap(), 12);
    assert_eq!(read_n(&mut reader, 5), data[12..17]);
    assert_eq!(
        reader.seek(SeekFrom::End(-4)).unwrap(),
        data.len() as u64 - 4
    );
    assert_eq!(read_n(&mut reader, 100), data[data.len() - 4..]);
}

#[test]
fn seeks_are_lazy_no_request_until_the_next_read() {
    let source = counted(MIB);
    let mut reader = build(&small_blocks(), source.clone());
    reader.seek(SeekFrom::Start(500 * KIB)).unwrap();
    reader.seek(SeekFrom::End(-10)).unwrap();
    reader.seek(SeekFrom::Start(700 * KIB)).unwrap();
    assert_eq!(source.call_count(), 0);
    assert_eq!(
        read_n(&mut reader, 10),
        pattern(MIB as usize)[700 * KIB as usize..][..10]
    );
    assert_eq!(
        source.calls(),
        vec![Call {
            offset: 700 * KIB,
            len: KIB
        }]
    );
}

#[test]
fn stream_position_and_a_seek_to_the_current_offset_change_nothing() {
    let source = counted(MIB);
    let mut reader = build(&small_blocks(), source.clone());
    read_n(&mut reader, 100);
    read_n(&mut reader, 100);
    let calls = source.call_count();
    let stats = reader.stats();
    assert_eq!(reader.stream_position().unwrap(), 200);
    #[allow(clippy::seek_from_current)] // the seek itself is what is tested
    let same = reader.seek(SeekFrom::Current(0)).unwrap();
    assert_eq!(same, 200);
    assert_eq!(reader.seek(SeekFrom::Start(200)).unwrap(), 200);
    assert_eq!(source.call_count(), calls);
    // The next read continues without a seek of either kind.
    assert_eq!(read_n(&mut reader, 100), pattern(300)[200..]);
    let after = reader.stats();
    assert_eq!(after.hard_seeks, stats.hard_seeks);
    assert_eq!(after.soft_seeks, stats.soft_seeks);
}

#[test]
fn a_seek_before_zero_is_invalid_input() {
    let mut reader = build(&small_blocks(), MemorySource::new(pattern(10)));
    let err = reader.seek(SeekFrom::Current(-1)).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    assert!(matches!(
        crate_error(err),
        Error::InvalidSeek { target: -1, .. }
    ));
    let err = reader.seek(SeekFrom::End(-11)).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    assert_eq!(reader.stream_position().unwrap(), 0, "position unchanged");
}

#[test]
fn a_seek_past_eof_is_allowed_and_then_reads_zero() {
    let source = counted(10);
    let mut reader = build(&small_blocks(), source.clone());
    assert_eq!(reader.seek(SeekFrom::Start(1000)).unwrap(), 1000);
    assert_eq!(read_n(&mut reader, 10).len(), 0);
    assert_eq!(source.call_count(), 0);
}

#[test]
fn a_look_at_the_end_and_back_keeps_the_work_in_flight() {
    let source = counted(MIB);
    let mut reader = build(&small_blocks(), source.clone());
    for _ in 0..3 {
        read_n(&mut reader, 100);
    }
    let len = reader.seek(SeekFrom::End(0)).unwrap();
    assert_eq!(read_n(&mut reader, 10).len(), 0);
    reader.seek(SeekFrom::Start(300)).unwrap();
    assert_eq!(read_n(&mut reader, 100), pattern(400)[300..]);
    assert_eq!(len, MIB);
    assert_eq!(reader.stats().hard_seeks, 0);
}

#[test]
fn a_soft_seek_forward_makes_no_request_and_keeps_the_streak() {
    let data = pattern(MIB as usize);
    let source = counted(data.len() as u64);
    let mut reader = build(&sequential(small_blocks()), source.clone());
    for _ in 0..4 {
        read_n(&mut reader, 512);
    }
    // Wait for read-ahead to fill the window (every byte to 40 KiB asked
    // for: jobs may start out of order), then skip into it.
    let covered = |calls: &[Call]| {
        let mut spans: Vec<_> = calls.iter().map(|c| (c.offset, c.offset + c.len)).collect();
        spans.sort_unstable();
        spans
            .iter()
            .try_fold(0, |end, &(start, stop)| {
                (start <= end).then_some(end.max(stop))
            })
            .unwrap_or(0)
    };
    wait_until("read-ahead to fetch every byte to 40 KiB", || {
        covered(&source.calls()) >= 40 * KIB && source.in_flight() == 0
    });
    let calls = source.call_count();
    reader.seek(SeekFrom::Start(30 * KIB)).unwrap();
    assert_eq!(read_n(&mut reader, 100), data[30 * KIB as usize..][..100]);
    let stats = reader.stats();
    assert_eq!((stats.soft_seeks, stats.hard_seeks), (1, 0));
    assert!(
        source.calls()[calls..].iter().all(|c| c.offset >= 40 * KIB),
        "no request for bytes already fetched: {:?}",
        &source.calls()[calls..]
    );
}

#[test]
fn a_hard_seek_returns_while_the_source_is_blocked_and_the_next_bytes_are_right() {
    let data = pattern(4 * MIB as usize);
    // The first call passes; every later one blocks until the gate opens.
    let (source, gate) = BlockingSource::new(MemorySource::new(data.clone()), 1);
    let source = Arc::new(CountingSource::new(source));
    let mut reader = build(&small_blocks(), source.clone());
    let probe = source.clone();
    let (reader, gate) = watchdog(10, move || {
        for _ in 0..3 {
            read_n(&mut reader, 100);
        }
        reader.advise(Advice::Sequential);
        // Read-ahead requests are now stuck in the source.
        wait_for_waiters(&gate, 1);
        reader.seek(SeekFrom::Start(3 * MIB)).unwrap();
        reader.advise(Advice::Normal);
        (reader, gate)
    });
    // The read after the hard seek needs a new request, which blocks too;
    // release the gate so it can finish, and check the bytes.
    gate.open();
    let mut reader = reader;
    let got = watchdog(10, move || {
        let got = read_n(&mut reader, 1000);
        (got, reader.stats())
    });
    assert_eq!(got.0, data[3 * MIB as usize..][..1000]);
    assert_eq!(got.1.hard_seeks, 1);
    let restart = probe
        .calls()
        .into_iter()
        .find(|c| c.offset == 3 * MIB)
        .expect("a request at the new offset");
    assert_eq!(restart.len, KIB, "a new small first request: streak reset");
}

#[test]
fn a_hard_seek_cancels_in_flight_work() {
    // A slow link: abandoned requests notice their cancel within a chunk.
    let link = SimulatedLink::new(64 * MIB, Duration::from_millis(200), 4 * MIB).chunk_size(1024);
    let source = Arc::new(CountingSource::new(link));
    let mut reader = build(&PrefetchReader::builder(), source.clone());
    let probe = source.clone();
    watchdog(30, move || {
        for _ in 0..3 {
            read_n(&mut reader, 8 * KIB as usize);
        }
        reader.advise(Advice::Sequential);
        wait_until("four read-ahead requests under way", || {
            probe.in_flight() >= 4
        });
        reader.seek(SeekFrom::Start(60 * MIB)).unwrap();
        let got = read_n(&mut reader, 10);
        assert_eq!(got, pattern(60 * MIB as usize + 10)[60 * MIB as usize..]);
        // The abandoned requests end long before they could have finished
        // (16 MiB at 4 MiB/s would take seconds each).
        wait_until("the abandoned requests to end", || probe.in_flight() == 0);
        assert!(reader.stats().bytes_fetched < 20 * MIB);
    });
}

#[test]
fn a_short_backward_seek_inside_the_window_behind_makes_no_request() {
    let data = pattern(MIB as usize);
    let source = counted(data.len() as u64);
    let mut reader = build(&small_blocks(), source.clone());
    let mut buf = vec![0; 40 * KIB as usize];
    reader.read_exact(&mut buf).unwrap();
    let calls = source.call_count();
    // 8 KiB are kept behind: go back 6 KiB, across a block boundary.
    reader.seek(SeekFrom::Current(-6 * KIB as i64)).unwrap();
    let mut again = vec![0; 6 * KIB as usize];
    reader.read_exact(&mut again).unwrap();
    assert_eq!(again, data[34 * KIB as usize..40 * KIB as usize]);
    let stats = reader.stats();
    assert_eq!((stats.soft_seeks, stats.hard_seeks), (1, 0));
    let new_calls = &source.calls()[calls..];
    assert!(
        new_calls.iter().all(|c| c.offset >= 40 * KIB),
        "{new_calls:?}"
    );
}

// --- what the producer asks for --------------------------------------------

#[test]
fn the_producer_never_requests_past_the_end_nor_more_than_concurrency_at_once() {
    let len = 3 * MIB as usize + 123;
    let link = SimulatedLink::new(len as u64, Duration::from_millis(2), 0);
    let source = Arc::new(CountingSource::new(link));
    let mut builder = PrefetchReader::builder();
    builder
        .concurrency(3)
        .min_part_size(64 * KIB)
        .max_part_size(256 * KIB);
    let mut reader = build(&builder, source.clone());
    let mut all = Vec::new();
    reader.read_to_end(&mut all).unwrap();
    assert_eq!(all, pattern(len));
    assert!(source.max_in_flight() <= 3, "{}", source.max_in_flight());
    assert!(source
        .calls()
        .iter()
        .all(|c| c.offset + c.len <= len as u64));
}

#[test]
fn abandoned_requests_count_against_concurrency_until_they_end() {
    // The first call passes; later ones hang (ignoring their cancel) until
    // the gate opens.
    let (source, gate) = BlockingSource::new(MemorySource::new(pattern(8 * MIB as usize)), 1);
    let source = Arc::new(CountingSource::new(source));
    let mut builder = small_blocks();
    builder.concurrency(4);
    let mut reader = build(&builder, source.clone());
    for _ in 0..3 {
        read_n(&mut reader, 100);
    }
    reader.advise(Advice::Sequential);
    wait_for_waiters(&gate, 4);
    assert_eq!(gate.waiting(), 4, "read-ahead fills the four connections");
    // A hard seek abandons them, but they still run: the read after it may
    // not start a fifth request until one of them ends.
    reader.seek(SeekFrom::Start(6 * MIB)).unwrap();
    let reading = std::thread::spawn(move || {
        let got = read_n(&mut reader, 100);
        (got, reader)
    });
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(
        source.call_count(),
        5,
        "no request beyond the four stuck ones"
    );
    assert_eq!(source.max_in_flight(), 4);
    gate.open();
    let (got, _reader) = watchdog(10, move || reading.join().unwrap());
    assert_eq!(got, pattern(6 * MIB as usize + 100)[6 * MIB as usize..]);
    assert!(source.max_in_flight() <= 4, "{}", source.max_in_flight());
}

#[test]
fn the_producer_never_requests_more_than_the_window_ahead() {
    let source = counted(16 * MIB);
    let mut builder = PrefetchReader::builder();
    builder.max_prefetch(4 * MIB).max_part_size(MIB);
    let mut reader = build(&builder, source.clone());
    for _ in 0..3 {
        read_n(&mut reader, 8 * KIB as usize);
    }
    // The reader stops at 24 KiB; the producer must stop too (and not
    // merely pause between requests).
    let reader = watchdog(10, move || {
        reader.wait_until_quiet().expect("quiet");
        reader
    });
    let furthest = source.calls().iter().map(|c| c.offset + c.len).max();
    let window = 4 * MIB - prefetch_reader::DEFAULT_WINDOW_BEHIND;
    assert!(furthest.unwrap() <= 16 * KIB + window, "{furthest:?}");
    assert!(reader.stats().peak_allocated <= 4 * MIB);
}

#[test]
fn random_reads_make_one_request_each_of_the_read_rounded_up() {
    let source = counted(64 * MIB);
    let mut reader = build(&PrefetchReader::builder(), source.clone());
    let offsets = [40 * MIB, 3 * MIB, 63 * MIB, 17 * MIB + 5, 0];
    for (i, &offset) in offsets.iter().enumerate() {
        reader.seek(SeekFrom::Start(offset)).unwrap();
        let size = if i % 2 == 0 { 1000 } else { 100 * KIB as usize };
        let got = read_n(&mut reader, size);
        assert_eq!(got.len(), size);
    }
    let calls = source.calls();
    let expected: Vec<Call> = offsets
        .iter()
        .enumerate()
        .map(|(i, &offset)| Call {
            offset,
            len: if i % 2 == 0 {
                prefetch_reader::DEFAULT_FIRST_REQUEST_SIZE
            } else {
                100 * KIB
            },
        })
        .collect();
    assert_eq!(calls, expected);
}

#[test]
fn reads_in_order_start_readahead_at_the_third_read_and_grow_it_with_what_was_read() {
    let source = counted(256 * MIB);
    let mut reader = build(&PrefetchReader::builder(), source.clone());
    read_n(&mut reader, 8 * KIB as usize);
    read_n(&mut reader, 8 * KIB as usize);
    assert_eq!(
        source.call_count(),
        1,
        "no read-ahead before the third read"
    );
    let mut buf = vec![0; 8 * KIB as usize];
    let mut total = 16 * KIB;
    while total < 64 * MIB {
        reader.read_exact(&mut buf).unwrap();
        total += 8 * KIB;
    }
    let calls = source.calls();
    assert!(calls.len() > 2);
    // The first read-ahead reaches no further than what had been read.
    assert!(calls[1].len <= 64 * KIB, "{calls:?}");
    let largest = calls.iter().map(|c| c.len).max().unwrap();
    assert!(largest > 4 * calls[1].len, "parts grew: {calls:?}");
    let fetched: u64 = calls.iter().map(|c| c.len).sum();
    assert!(
        fetched <= 2 * total + MIB,
        "fetched {fetched} for {total} read"
    );
}

// --- errors ----------------------------------------------------------------

#[test]
fn a_source_error_delivers_the_bytes_before_it_then_fails_then_recovers() {
    let data = pattern(MIB as usize);
    // Calls from number 3 on fail; the counter inside sees the others.
    let counter = Arc::new(CountingSource::new(MemorySource::new(data.clone())));
    let source = Arc::new(FailingSource::fail_from_call(counter.clone(), 3));
    let mut builder = small_blocks();
    builder.concurrency(1);
    let mut reader = build(&builder, source.clone());
    let mut got = Vec::new();
    let mut buf = vec![0; 3 * KIB as usize];
    let err = loop {
        match reader.read(&mut buf) {
            Ok(0) => panic!("reached EOF through a failing source"),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(err) => break err,
        }
    };
    // Every byte of the three calls that succeeded, and no more.
    assert_eq!(got, data[..got.len()]);
    let succeeded: u64 = counter.calls().iter().map(|c| c.len).sum();
    assert_eq!(counter.call_count(), 3);
    assert_eq!(got.len() as u64, succeeded);
    assert_eq!(err.kind(), io::ErrorKind::Other);
    assert!(matches!(
        crate_error(err),
        Error::HttpStatus { status: 503, .. }
    ));
    // Still failing: the next read retries and fails again, nothing lost.
    assert!(reader.read(&mut buf).is_err());
    assert_eq!(reader.stream_position().unwrap(), got.len() as u64);
    source.heal();
    reader.read_to_end(&mut got).unwrap();
    assert_eq!(got, data);
}

#[test]
fn an_error_after_some_bytes_of_a_read_is_returned_by_the_next_read() {
    let data = pattern(64 * KIB as usize);
    let source = FailingSource::fail_from_call(MemorySource::new(data.clone()), 1);
    let mut builder = small_blocks();
    builder.concurrency(1);
    let mut reader = build(&builder, source);
    // The first request is 1 KiB (the minimum) for a read of 512 bytes;
    // the next read wants 2 KiB: 512 bytes are buffered, the rest fails.
    let mut buf = vec![0; 2 * KIB as usize];
    assert_eq!(reader.read(&mut buf[..512]).unwrap(), 512);
    assert_eq!(reader.read(&mut buf).unwrap(), 512);
    assert_eq!(buf[..512], data[512..1024]);
    let err = reader.read(&mut buf).unwrap_err();
    assert!(matches!(
        crate_error(err),
        Error::HttpStatus { status: 503, .. }
    ));
}

// --- lifecycle ---------------------------------------------------------------

fn blocked_reader() -> (
    PrefetchReader<BlockingSource<MemorySource>>,
    Arc<prefetch_reader::testing::Gate>,
) {
    let (source, gate) = BlockingSource::new(MemorySource::new(pattern(8 * MIB as usize)), 1);
    let mut reader = build(&small_blocks(), source);
    for _ in 0..3 {
        read_n(&mut reader, 100);
    }
    reader.advise(Advice::Sequential);
    wait_for_waiters(&gate, 1);
    (reader, gate)
}

#[test]
fn close_returns_while_the_source_is_blocked_and_ends_the_producer() {
    let gate = watchdog(10, || {
        let (mut reader, gate) = blocked_reader();
        // close joins the producer thread: returning proves it ended.
        reader.close().expect("close");
        gate
    });
    gate.open();
}

#[test]
fn drop_returns_while_the_source_is_blocked() {
    let gate = watchdog(10, || {
        let (reader, gate) = blocked_reader();
        drop(reader);
        gate
    });
    gate.open();
}

#[test]
fn reading_after_close_is_a_clear_error_and_close_is_idempotent() {
    let mut reader = build(&small_blocks(), MemorySource::new(pattern(100)));
    read_n(&mut reader, 10);
    reader.close().unwrap();
    reader.close().unwrap();
    let err = reader.read(&mut [0; 4]).unwrap_err();
    assert!(matches!(crate_error(err), Error::Closed));
    let err = reader.seek(SeekFrom::Start(0)).unwrap_err();
    assert!(matches!(crate_error(err), Error::Closed));
}

#[test]
fn close_after_an_error_works() {
    let source = FailingSource::fail_from_call(MemorySource::new(pattern(100)), 0);
    let mut reader = build(&small_blocks(), source);
    assert!(reader.read(&mut [0; 10]).is_err());
    watchdog(10, move || reader.close()).unwrap();
}

#[test]
fn the_reader_works_after_moving_to_another_thread() {
    fn assert_send<T: Send>() {}
    assert_send::<PrefetchReader<MemorySource>>();
    assert_send::<PrefetchReader>();
    let data = pattern(300 * KIB as usize);
    let mut reader = build(&small_blocks(), MemorySource::new(data.clone()));
    let first = read_n(&mut reader, 1000);
    let rest = std::thread::spawn(move || {
        let mut rest = Vec::new();
        reader.read_to_end(&mut rest).unwrap();
        rest
    })
    .join()
    .unwrap();
    assert_eq!([first, rest].concat(), data);
}

#[test]
fn a_boxed_source_makes_the_default_reader_type() {
    let source: Box<dyn RangeSource> = Box::new(MemorySource::new(pattern(1000)));
    let mut reader: PrefetchReader = PrefetchReader::new(source).unwrap();
    let mut all = Vec::new();
    reader.read_to_end(&mut all).unwrap();
    assert_eq!(all, pattern(1000));
}

// --- memory ------------------------------------------------------------------

#[test]
fn a_reader_slower_than_the_link_is_not_fetched_the_whole_budget_ahead() {
    // 1 GiB/s per connection, 1 ms to first byte; the reader takes about
    // 200 MiB/s: one connection keeps it fed.
    let len = 256 * MIB;
    let link = SimulatedLink::new(len, Duration::from_millis(1), 1 << 30);
    let mut builder = PrefetchReader::builder();
    builder.max_prefetch(128 * MIB).advice(Advice::Sequential);
    let mut reader = build(&builder, link);
    let mut buf = vec![0; MIB as usize];
    let mut at = 0;
    while at < len {
        reader.read_exact(&mut buf).unwrap();
        assert!(is_pattern(at, &buf), "bytes at {at}");
        at += MIB;
        std::thread::sleep(Duration::from_millis(5));
    }
    let peak = reader.stats().peak_allocated;
    // Its pace asks for three parts of 7.5 MiB after a first window of
    // 2 MiB parts, not the 128 MiB budget.
    assert!(
        peak <= 48 * MIB,
        "{} MiB held for a slow reader",
        peak / MIB
    );
}

#[test]
fn requests_in_flight_hold_memory_only_for_the_bytes_that_arrived() {
    let memory = MemorySource::new(pattern(64 * MIB as usize));
    let (source, gate) = BlockingSource::from_offset(memory, 4 * MIB);
    let mut builder = PrefetchReader::builder();
    builder
        .max_prefetch(32 * MIB)
        .max_part_size(2 * MIB)
        .window_behind(0)
        .advice(Advice::Sequential);
    let mut reader = build(&builder, source);
    let mut buf = vec![0; MIB as usize];
    reader.read_exact(&mut buf).unwrap();
    assert!(is_pattern(0, &buf));
    // The window fills with requests the gate holds before any byte of
    // theirs arrives.
    wait_until("requests to wait at the gate", || gate.waiting() >= 2);
    let held = reader.stats();
    assert!(held.requests_in_flight >= 2, "{held:?}");
    assert!(
        held.allocated <= held.bytes_fetched && held.allocated <= 6 * MIB,
        "only the bytes that arrived are held: {held:?}"
    );
    gate.open();
    let mut at = MIB;
    while at < 64 * MIB {
        reader.read_exact(&mut buf).unwrap();
        assert!(is_pattern(at, &buf), "bytes at {at}");
        at += MIB;
    }
    assert!(reader.stats().peak_allocated <= 32 * MIB);
}

#[test]
fn peak_memory_stays_within_max_prefetch_plus_one_part_for_any_read_size() {
    let len = 200 * MIB as usize;
    let max_prefetch = 32 * MIB;
    let max_part = 4 * MIB;
    for read_size in [8 * KIB, 64 * KIB, MIB, 16 * MIB, 64 * MIB] {
        let link = SimulatedLink::new(len as u64, Duration::ZERO, 0);
        let source = Arc::new(CountingSource::new(link));
        let mut builder = PrefetchReader::builder();
        builder.max_prefetch(max_prefetch).max_part_size(max_part);
        let mut reader = build(&builder, source.clone());
        let mut buf = vec![0; read_size as usize];
        let mut total = 0;
        loop {
            let n = reader.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            total += n;
        }
        assert_eq!(total, len);
        let peak = reader.stats().peak_allocated;
        assert!(peak <= max_prefetch, "read size {read_size}: peak {peak}");
        assert!(
            source.max_bytes_in_flight() <= max_prefetch,
            "the source saw {} bytes in flight, more than the budget",
            source.max_bytes_in_flight()
        );
    }
}

#[test]
fn peak_memory_stays_within_bounds_under_random_reads_and_seeks() {
    let len = 64 * MIB;
    let link = SimulatedLink::new(len, Duration::from_micros(200), 0);
    let source = Arc::new(CountingSource::new(link));
    let mut builder = PrefetchReader::builder();
    builder.max_prefetch(8 * MIB).max_part_size(2 * MIB);
    let mut reader = build(&builder, source.clone());
    let mut rng = fastrand::Rng::with_seed(0x2545_f491_4f6c_dd1d);
    let mut buf = vec![0; 3 * MIB as usize];
    for _ in 0..300 {
        let offset = rng.u64(..len);
        reader.seek(SeekFrom::Start(offset)).unwrap();
        let size = rng.usize(..3 * MIB as usize);
        let n = reader.read(&mut buf[..size]).unwrap();
        assert_eq!(n as u64, (size as u64).min(len - offset));
        let mut expected = vec![0; n];
        fill_pattern(offset, &mut expected);
        assert!(buf[..n] == expected, "bytes at {offset}");
    }
    let peak = reader.stats().peak_allocated;
    assert!(peak <= 8 * MIB, "peak {peak}");
    assert!(source.max_bytes_in_flight() <= 8 * MIB);
}

// --- std adapters and real clients ---------------------------------------

#[test]
fn std_adapters_see_exact_bytes() {
    let text: String = (0..20_000).map(|i| format!("line {i}\n")).collect();
    let data = text.clone().into_bytes();
    let new = || build(&small_blocks(), MemorySource::new(data.clone()));

    let mut copied = Vec::new();
    io::copy(&mut new(), &mut copied).unwrap();
    assert_eq!(copied, data);

    let mut buffered = Vec::new();
    BufReader::with_capacity(1000, new())
        .read_to_end(&mut buffered)
        .unwrap();
    assert_eq!(buffered, data);

    let mut taken = Vec::new();
    new().take(12_345).read_to_end(&mut taken).unwrap();
    assert_eq!(taken, data[..12_345]);

    let mut string = String::new();
    new().read_to_string(&mut string).unwrap();
    assert_eq!(string, text);

    let lines: Vec<String> = new().lines().map(|l| l.unwrap()).collect();
    assert_eq!(lines.len(), 20_000);
    assert_eq!(lines[12_345], "line 12345");
}

fn make_zip() -> (Vec<u8>, Vec<Vec<u8>>) {
    let members: Vec<Vec<u8>> = (0..5).map(|i| pattern(100_000 + i * 30_000)).collect();
    let mut zip = zip::ZipWriter::new(io::Cursor::new(Vec::new()));
    for (i, member) in members.iter().enumerate() {
        let method = if i % 2 == 0 {
            zip::CompressionMethod::Deflated
        } else {
            zip::CompressionMethod::Stored
        };
        let options = zip::write::SimpleFileOptions::default().compression_method(method);
        zip.start_file(format!("member-{i}.bin"), options).unwrap();
        zip.write_all(member).unwrap();
    }
    (zip.finish().unwrap().into_inner(), members)
}

fn check_zip<R: Read + Seek>(reader: R, members: &[Vec<u8>]) {
    let mut archive = zip::ZipArchive::new(reader).unwrap();
    assert_eq!(archive.len(), members.len());
    // From the middle first, then the rest: seeks both ways.
    for i in [2, 0, 4, 1, 3] {
        let mut file = archive.by_name(&format!("member-{i}.bin")).unwrap();
        let mut got = Vec::new();
        file.read_to_end(&mut got).unwrap();
        assert_eq!(got, members[i], "member {i}");
    }
}

#[test]
fn zip_archive_reads_members_from_a_memory_source() {
    let (zip, members) = make_zip();
    check_zip(build(&small_blocks(), MemorySource::new(zip)), &members);
}

#[test]
fn zip_archive_reads_members_from_a_file_source() {
    let (zip, members) = make_zip();
    let mut file = tempfile::NamedTempFile::new().unwrap();
    file.write_all(&zip).unwrap();
    let source = FileSource::open(file.path()).unwrap();
    check_zip(PrefetchReader::new(source).unwrap(), &members);
}

/// Records the name of the thread each call runs on.
#[derive(Debug)]
struct ThreadNames {
    inner: MemorySource,
    names: std::sync::Mutex<Vec<String>>,
}

impl RangeSource for ThreadNames {
    fn len(&self) -> u64 {
        self.inner.len()
    }

    fn read_at(
        &self,
        offset: u64,
        buf: &mut [u8],
        ctx: &prefetch_reader::FetchContext,
    ) -> prefetch_reader::Result<()> {
        let name = std::thread::current().name().unwrap_or("").to_owned();
        self.names.lock().unwrap().push(name);
        self.inner.read_at(offset, buf, ctx)
    }
}

#[test]
fn requests_run_on_the_shared_io_pool_or_the_callers() {
    let names = |builder: &prefetch_reader::ReaderBuilder| {
        let source = Arc::new(ThreadNames {
            inner: MemorySource::new(pattern(MIB as usize)),
            names: Default::default(),
        });
        let mut reader = build(builder, source.clone());
        io::copy(&mut reader, &mut io::sink()).unwrap();
        let recorded = source.names.lock().unwrap().clone();
        recorded
    };
    let shared = names(&small_blocks());
    assert!(
        shared.iter().all(|n| n.starts_with("prefetch-io-")),
        "{shared:?}"
    );

    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .thread_name(|i| format!("callers-pool-{i}"))
        .build()
        .unwrap();
    let mut builder = small_blocks();
    builder.io_pool(Arc::new(pool));
    let own = names(&builder);
    assert!(
        own.iter().all(|n| n.starts_with("callers-pool-")),
        "{own:?}"
    );
}

#[test]
fn copy_to_and_read_to_end_write_the_rest_of_the_object_from_the_position() {
    let data = pattern(5 * MIB as usize + 123);
    let mut reader = PrefetchReader::new(MemorySource::new(data.clone())).unwrap();
    reader.seek(SeekFrom::Start(1000)).unwrap();
    let mut out = Vec::new();
    assert_eq!(reader.copy_to(&mut out).unwrap(), data.len() as u64 - 1000);
    assert!(out == data[1000..]);
    assert_eq!(reader.copy_to(&mut out).unwrap(), 0, "at the end");

    reader.seek(SeekFrom::Start(7)).unwrap();
    let mut head = [0; 10];
    reader.read_exact(&mut head).unwrap();
    let mut rest = b"kept".to_vec();
    assert_eq!(reader.read_to_end(&mut rest).unwrap(), data.len() - 17);
    assert!(rest[..4] == *b"kept" && rest[4..] == data[17..]);
    assert_eq!(
        reader.stats().bytes_delivered,
        2 * data.len() as u64 - 1000 - 7
    );
}

#[test]
fn copy_to_returns_the_writers_error_with_the_bytes_before_it_written() {
    struct Fails(Vec<u8>);
    impl std::io::Write for Fails {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            if self.0.len() >= 100_000 {
                return Err(std::io::Error::other("disk full"));
            }
            let n = buf.len().min(60_000);
            self.0.extend_from_slice(&buf[..n]);
            Ok(n)
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let data = pattern(MIB as usize);
    let mut reader = PrefetchReader::new(MemorySource::new(data.clone())).unwrap();
    let mut out = Fails(Vec::new());
    let err = reader.copy_to(&mut out).unwrap_err();
    assert_eq!(err.to_string(), "disk full");
    assert!(out.0 == data[..out.0.len()]);
}
