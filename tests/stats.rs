//! `Stats` as the server sees it: requests are the requests sent (the
//! open's included), bytes fetched are body bytes received, and bytes
//! wasted are bytes received that never reached the caller — never more
//! than were fetched.

mod common;

use std::io::{Read, Seek, SeekFrom};
use std::sync::Arc;

use common::settled;
use prefetch_reader::testing::{
    fill_pattern, is_pattern, pattern, CountingSource, Fault, TestServer,
};
use prefetch_reader::{
    Advice, FetchContext, HttpSource, MemorySource, PartSink, PrefetchReader, RangeSource, Result,
    Stats,
};

const MIB: usize = 1 << 20;

fn server(len: usize) -> TestServer {
    TestServer::builder()
        .object("/data.bin", pattern(len))
        .build()
        .expect("server")
}

#[test]
fn a_whole_read_counts_every_request_and_byte_the_server_saw() {
    let server = server(12 * MIB);
    let source = HttpSource::open(&server.url("/data.bin")).expect("open");
    let mut reader = PrefetchReader::new(source).expect("reader");
    let mut out = Vec::new();
    reader.read_to_end(&mut out).expect("read");
    assert!(out == pattern(12 * MIB));
    let stats = reader.stats();
    assert_eq!(stats.requests, server.request_count() as u64, "{stats:?}");
    assert_eq!(stats.bytes_fetched, server.bytes_sent(), "{stats:?}");
    assert_eq!(stats.bytes_wasted, 0, "{stats:?}");
}

#[test]
fn retries_are_requests_and_their_bytes_are_fetched() {
    let server = server(4 * MIB);
    let source = HttpSource::open(&server.url("/data.bin")).expect("open");
    server.push_fault(Fault::ResetMidBody { after: 1000 });
    server.push_fault(Fault::Status(503));
    let mut reader = PrefetchReader::new(source).expect("reader");
    let mut out = Vec::new();
    reader.read_to_end(&mut out).expect("read");
    assert!(out == pattern(4 * MIB));
    let stats = reader.stats();
    assert!(stats.retries >= 1, "{stats:?}");
    assert_eq!(stats.requests, server.request_count() as u64, "{stats:?}");
    assert!(stats.bytes_fetched <= server.bytes_sent(), "{stats:?}");
    assert!(stats.bytes_wasted <= stats.bytes_fetched, "{stats:?}");
}

#[test]
fn hard_seeks_waste_only_bytes_received_and_never_more_than_fetched() {
    let server = TestServer::builder()
        .object("/data.bin", pattern(64 * MIB))
        .bandwidth(16 * MIB as u64)
        .build()
        .expect("server");
    let source = HttpSource::open(&server.url("/data.bin")).expect("open");
    let mut reader = PrefetchReader::new(source).expect("reader");
    reader.advise(Advice::Sequential);
    let handle = reader.stats_handle();
    let mut buf = vec![0; 64 << 10];
    for target in [0, 40 * MIB as u64, 3 * MIB as u64, 60 * MIB as u64] {
        reader.seek(SeekFrom::Start(target)).expect("seek");
        reader.read_exact(&mut buf).expect("read");
        assert!(is_pattern(target, &buf));
    }
    let during = reader.stats();
    assert_eq!(during.hard_seeks, 3, "{during:?}");
    assert!(during.bytes_wasted <= during.bytes_fetched, "{during:?}");
    drop(reader);
    let stats = settled(&handle);
    assert!(stats.bytes_wasted <= stats.bytes_fetched, "{stats:?}");
    assert!(stats.bytes_fetched <= server.bytes_sent(), "{stats:?}");
    assert_eq!(
        stats.bytes_fetched - stats.bytes_wasted,
        stats.bytes_delivered,
        "every byte received either reached the caller or was wasted: {stats:?}"
    );
}

#[test]
fn rereading_the_window_behind_wastes_nothing() {
    let source = MemorySource::new(pattern(8 * MIB));
    let mut reader = PrefetchReader::new(source).expect("reader");
    let mut out = Vec::new();
    reader.read_to_end(&mut out).expect("read");
    let mut again = vec![0; 512 << 10];
    reader
        .seek(SeekFrom::End(-(again.len() as i64)))
        .expect("seek back");
    reader.read_exact(&mut again).expect("re-read");
    let stats = reader.stats();
    assert!(stats.soft_seeks >= 1, "{stats:?}");
    assert_eq!(stats.bytes_fetched, 8 * MIB as u64, "{stats:?}");
    assert_eq!(stats.bytes_delivered, (8 * MIB + (512 << 10)) as u64);
    assert_eq!(stats.bytes_wasted, 0, "{stats:?}");
}

#[test]
fn requests_are_the_reads_the_source_was_asked_for() {
    let source = Arc::new(CountingSource::new(MemorySource::new(pattern(32 * MIB))));
    let mut reader = PrefetchReader::new(source.clone()).expect("reader");
    let handle = reader.stats_handle();
    let mut buf = vec![0; 100_000];
    for target in [0, 30 * MIB as u64, 1000, 17 * MIB as u64] {
        reader.seek(SeekFrom::Start(target)).expect("seek");
        reader.read_exact(&mut buf).expect("read");
    }
    drop(reader);
    let stats = settled(&handle);
    assert_eq!(stats.requests, source.call_count() as u64, "{stats:?}");
}

#[test]
fn bytes_a_forward_seek_skips_are_wasted() {
    let source = MemorySource::new(pattern(32 * MIB));
    let mut reader = PrefetchReader::new(source).expect("reader");
    reader.advise(Advice::Sequential);
    let handle = reader.stats_handle();
    let mut buf = vec![0; 4096];
    for target in [0, 300_000, 200_000, 2_000_000, 2_500_000] {
        reader.seek(SeekFrom::Start(target)).expect("seek");
        reader.read_exact(&mut buf).expect("read");
        assert!(is_pattern(target, &buf));
    }
    let during = reader.stats();
    assert_eq!(
        during.hard_seeks, 0,
        "the seeks stay in the window: {during:?}"
    );
    drop(reader);
    let stats = settled(&handle);
    // Each byte read once: 5 reads of 4 KiB, none overlapping.
    assert_eq!(stats.bytes_delivered, 5 * 4096);
    assert_eq!(
        stats.bytes_fetched - stats.bytes_wasted,
        stats.bytes_delivered,
        "{stats:?}"
    );
}

/// A source that commits each part into a sink of its own, not the one it
/// was given, reporting the bytes it received.
#[derive(Debug)]
struct OwnSink(u64);

impl RangeSource for OwnSink {
    fn len(&self) -> u64 {
        self.0
    }

    fn read_at(&self, offset: u64, buf: &mut [u8], _ctx: &FetchContext) -> Result<()> {
        fill_pattern(offset, buf);
        Ok(())
    }

    fn read_streaming(
        &self,
        _offset: u64,
        sink: &mut PartSink<'_>,
        ctx: &FetchContext,
    ) -> Result<()> {
        let own: &'static mut [u8] = Box::leak(vec![0; sink.len()].into_boxed_slice());
        ctx.add_bytes(own.len() as u64);
        *sink = PartSink::new(own);
        sink.commit(sink.len());
        Ok(())
    }
}

#[test]
fn bytes_a_source_commits_elsewhere_are_fetched_and_wasted_never_delivered() {
    let mut reader = PrefetchReader::new(OwnSink(100_000)).expect("reader");
    let handle = reader.stats_handle();
    let mut buf = vec![0; 1000];
    assert!(reader.read(&mut buf).is_err(), "the part is truncated");
    drop(reader);
    let stats = settled(&handle);
    assert_eq!(stats.bytes_delivered, 0);
    assert!(stats.bytes_fetched > 0, "{stats:?}");
    assert_eq!(stats.bytes_wasted, stats.bytes_fetched, "{stats:?}");
}

/// The stats, once settled, of a reader of 8 KiB in 4 KiB parts, one at
/// a time, keeping 4 KiB behind it, that read `spans` (offset, length) in
/// turn.
fn stats_after_reading(spans: &[(u64, u64)]) -> Stats {
    let mut builder = PrefetchReader::builder();
    builder
        .max_prefetch(64 << 10)
        .concurrency(1)
        .min_part_size(4096)
        .max_part_size(4096)
        .first_request_size(4096)
        .window_behind(4096);
    let mut reader = builder
        .build(MemorySource::new(pattern(8192)))
        .expect("reader");
    let handle = reader.stats_handle();
    for &(at, n) in spans {
        reader.seek(SeekFrom::Start(at)).expect("seek");
        let mut buf = vec![0; n as usize];
        reader.read_exact(&mut buf).expect("read");
        assert!(is_pattern(at, &buf), "bytes at {at}");
    }
    drop(reader);
    settled(&handle)
}

#[test]
fn bytes_a_seek_skipped_then_read_from_the_window_behind_are_not_wasted() {
    // 100..200 is skipped, then read back from the window behind; every
    // other byte is read once, in order.
    let stats = stats_after_reading(&[(0, 100), (200, 4800), (100, 100), (5000, 3192)]);
    assert_eq!(stats.bytes_delivered, 8192);
    assert_eq!(stats.bytes_fetched, 8192, "{stats:?}");
    assert_eq!(stats.bytes_wasted, 0, "{stats:?}");
}

#[test]
fn bytes_a_seek_skipped_that_leave_the_window_behind_unread_are_wasted() {
    let stats = stats_after_reading(&[(0, 100), (200, 7992)]);
    assert_eq!(stats.bytes_delivered, 8092);
    assert_eq!(
        stats.bytes_fetched - stats.bytes_wasted,
        stats.bytes_delivered,
        "{stats:?}"
    );
}
