//! What the access patterns of real consumers fetch with default settings:
//! read-ahead grows only with what the reader consumed in order, so reads
//! that seek and then read a little fetch about what they read. Idle
//! pauses wait until the producer is quiet (`wait_until_quiet`), so what an
//! idle reader fetched is measured once it has decided everything.

mod common;

use std::io::{BufRead, Read, Seek, SeekFrom};
use std::sync::Arc;
use std::time::Duration;

use common::{random_bytes, zip_of, KIB, MIB};
use prefetch_reader::testing::{is_pattern, CountingSource, SimulatedLink};
use prefetch_reader::{Advice, MemorySource, PrefetchReader, DEFAULT_FIRST_REQUEST_SIZE};

fn link(len: u64) -> SimulatedLink {
    SimulatedLink::new(len, Duration::ZERO, 0)
}

#[test]
fn a_small_header_read_in_three_reads_then_idle_fetches_one_first_request() {
    let mut reader = PrefetchReader::new(link(150 * MIB)).expect("reader");
    let mut header = [0; 8];
    for i in 0..3 {
        reader.read_exact(&mut header).expect("read");
        assert!(is_pattern(i * 8, &header));
    }
    reader.wait_until_quiet().expect("quiet");
    let stats = reader.stats();
    assert!(
        stats.bytes_fetched <= DEFAULT_FIRST_REQUEST_SIZE + 24,
        "{stats:?}"
    );
}

#[test]
fn three_one_byte_reads_then_idle_fetch_at_most_256_kib() {
    let mut reader = PrefetchReader::new(link(256 * MIB)).expect("reader");
    let mut one = [0; 1];
    for _ in 0..3 {
        reader.read_exact(&mut one).expect("read");
    }
    reader.wait_until_quiet().expect("quiet");
    let stats = reader.stats();
    assert!(stats.bytes_fetched <= 256 * KIB, "{stats:?}");
}

#[test]
fn member_like_runs_after_seeks_fetch_at_most_twice_what_they_read() {
    let mut reader = PrefetchReader::new(link(1 << 30)).expect("reader");
    let mut buf = vec![0; 8 * KIB as usize];
    let run = 3 * MIB;
    let mut read = 0;
    for start in [700 * MIB, 100 * MIB, 400 * MIB] {
        reader.seek(SeekFrom::Start(start)).expect("seek");
        let mut at = start;
        while at < start + run {
            reader.read_exact(&mut buf).expect("read");
            assert!(is_pattern(at, &buf), "bytes at {at}");
            at += buf.len() as u64;
        }
        read += run;
        reader.wait_until_quiet().expect("quiet");
    }
    let stats = reader.stats();
    assert!(
        stats.bytes_fetched <= 2 * read + 3 * DEFAULT_FIRST_REQUEST_SIZE,
        "{stats:?}"
    );
}

#[test]
fn reading_the_first_mebibyte_then_dropping_fetches_at_most_twice_that() {
    let mut reader = PrefetchReader::new(link(1 << 30)).expect("reader");
    let mut buf = vec![0; 64 * KIB as usize];
    for _ in 0..16 {
        reader.read_exact(&mut buf).expect("read");
    }
    reader.wait_until_quiet().expect("quiet");
    let stats = reader.stats();
    assert!(stats.bytes_fetched <= 2 * MIB, "{stats:?}");
}

#[test]
fn a_probe_of_the_end_fetches_nothing() {
    let mut reader = PrefetchReader::new(link(1 << 30)).expect("reader");
    assert_eq!(reader.seek(SeekFrom::End(0)).expect("seek"), 1 << 30);
    let mut buf = [0; 100];
    assert_eq!(reader.read(&mut buf).expect("read"), 0);
    assert!(reader.fill_buf().expect("fill_buf").is_empty());
    reader.wait_until_quiet().expect("quiet");
    let stats = reader.stats();
    assert_eq!((stats.requests, stats.bytes_fetched), (0, 0), "{stats:?}");
}

#[test]
fn random_4_kib_reads_fetch_at_most_four_times_what_they_read() {
    let len: u64 = 1 << 30;
    let mut reader = PrefetchReader::new(link(len)).expect("reader");
    let mut buf = vec![0; 4 * KIB as usize];
    let mut rng = fastrand::Rng::with_seed(7);
    let n = 200u64;
    for _ in 0..n {
        let offset = rng.u64(0..len - 4 * KIB);
        reader.seek(SeekFrom::Start(offset)).expect("seek");
        reader.read_exact(&mut buf).expect("read");
        assert!(is_pattern(offset, &buf));
    }
    let stats = reader.stats();
    assert!(stats.bytes_fetched <= 4 * n * 4 * KIB, "{stats:?}");
}

#[test]
fn random_reads_under_advice_random_never_read_ahead() {
    let mut reader = PrefetchReader::new(link(1 << 30)).expect("reader");
    reader.advise(Advice::Random);
    let mut buf = vec![0; 64 * KIB as usize];
    for _ in 0..32 {
        reader.read_exact(&mut buf).expect("read");
    }
    reader.wait_until_quiet().expect("quiet");
    let stats = reader.stats();
    assert_eq!(stats.bytes_fetched, 32 * 64 * KIB, "{stats:?}");
}

#[test]
fn advice_sequential_reads_ahead_from_the_first_read() {
    let mut reader = PrefetchReader::builder()
        .advice(Advice::Sequential)
        .build(link(1 << 30))
        .expect("reader");
    let mut one = [0; 1];
    reader.read_exact(&mut one).expect("read");
    reader.wait_until_quiet().expect("quiet");
    assert!(
        reader.stats().bytes_fetched > 16 * MIB,
        "{:?}",
        reader.stats()
    );
}

#[test]
fn three_members_of_a_zip_of_a_hundred_fetch_about_what_they_occupy() {
    let members: Vec<(String, Vec<u8>)> = (0..100)
        .map(|i| {
            (
                format!("member-{i:03}.bin"),
                random_bytes(400 * KIB as usize, i),
            )
        })
        .collect();
    let archive = zip_of(&members);
    let reader = PrefetchReader::new(MemorySource::new(archive.clone())).expect("reader");
    let stats = reader.stats_handle();
    let mut zip = zip::ZipArchive::new(reader).expect("zip");
    let mut needed = (archive.len() as u64).min(64 * KIB);
    for i in [5, 50, 95] {
        let mut member = zip.by_index(i).expect("member");
        needed += member.compressed_size() + 30 + member.name().len() as u64;
        let mut bytes = Vec::new();
        member.read_to_end(&mut bytes).expect("read member");
        assert_eq!(bytes, members[i].1, "member {i}");
    }
    // The central directory: 46 bytes and the name per member.
    needed += members
        .iter()
        .map(|(name, _)| 46 + name.len() as u64)
        .sum::<u64>();
    let fetched = stats.get().bytes_fetched;
    assert!(
        fetched <= 2 * needed,
        "fetched {fetched} bytes for {needed} needed: {:?}",
        stats.get()
    );
}

/// The requests (offset, length) made below `below` while a caller reads
/// the first 8 MiB with `fill_buf` and `consume` only, or with `read`.
fn early_requests(fill_buf_only: bool, below: u64) -> Vec<(u64, u64)> {
    let source = Arc::new(CountingSource::new(link(64 * MIB)));
    let mut reader = PrefetchReader::new(source.clone()).expect("reader");
    let mut buf = vec![0; 16 * KIB as usize];
    let mut total = 0u64;
    while total < 8 * MIB {
        let n = if fill_buf_only {
            let available = reader.fill_buf().expect("fill_buf");
            let n = available.len().min(buf.len());
            assert!(is_pattern(total, &available[..n]));
            reader.consume(n);
            n
        } else {
            let n = reader.read(&mut buf).expect("read");
            assert!(is_pattern(total, &buf[..n]));
            n
        };
        total += n as u64;
    }
    let mut calls: Vec<(u64, u64)> = source
        .calls()
        .iter()
        .filter(|c| c.offset < below)
        .map(|c| (c.offset, c.len))
        .collect();
    calls.sort_unstable();
    calls
}

#[test]
fn callers_of_fill_buf_alone_make_the_requests_readers_make() {
    // Below 1 MiB the sizes follow the run alone; further on the link's
    // measured speed (timing) shapes them.
    let by_fill_buf = early_requests(true, MIB);
    assert_eq!(by_fill_buf, early_requests(false, MIB));
    // One first request, then read-ahead doubling with the run: no extra
    // demand request before read-ahead starts.
    assert_eq!(
        by_fill_buf[..3],
        [(0, 16 * KIB), (16 * KIB, 16 * KIB), (32 * KIB, 32 * KIB)]
    );
}
