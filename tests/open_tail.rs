//! Opening with the object's tail (`open_tail`, `HttpSourceBuilder::tail`):
//! one `GET bytes=-N` in place of the `HEAD`, whose bytes serve later reads
//! of the tail with no request; counted at the test server.

#![cfg(feature = "testing")]

mod common;

use std::io::{Read, Seek, SeekFrom};

use common::{member_name, random_bytes, watchdog, zip_of_random_members};
use prefetch_reader::testing::{Fault, TestServer};
use prefetch_reader::{open_tail, Error, HttpSource, PrefetchReader, RangeSource, MAX_TAIL};

const WATCHDOG_SECS: u64 = 60;
const TAIL: u64 = 64 * 1024;

fn server_with(path: &str, data: &[u8]) -> TestServer {
    TestServer::builder()
        .object(path, data.to_vec())
        .build()
        .expect("start the test server")
}

/// The methods and `Range` headers the server saw, in order.
fn requests(server: &TestServer) -> Vec<(String, Option<String>)> {
    server
        .requests()
        .into_iter()
        .map(|r| (r.method, r.range))
        .collect()
}

#[test]
fn opening_with_a_tail_and_reading_in_it_is_one_request() {
    watchdog(WATCHDOG_SECS, || {
        let data = random_bytes(1 << 20, 1);
        let server = server_with("/o.bin", &data);
        let mut reader = open_tail(&server.url("/o.bin"), TAIL).expect("open");
        assert_eq!(reader.len(), data.len() as u64);
        let mut end = [0; 22];
        reader.seek(SeekFrom::End(-22)).expect("seek");
        reader.read_exact(&mut end).expect("read the end");
        assert_eq!(end[..], data[data.len() - 22..]);
        let mut inside = vec![0; 30_000];
        reader.seek(SeekFrom::End(-60_000)).expect("seek");
        reader
            .read_exact(&mut inside)
            .expect("read inside the tail");
        let at = data.len() - 60_000;
        assert!(inside[..] == data[at..at + 30_000]);
        assert_eq!(
            requests(&server),
            [("GET".to_owned(), Some(format!("bytes=-{TAIL}")))]
        );
        let stats = reader.stats();
        assert_eq!(stats.requests, 1);
        assert_eq!(stats.bytes_fetched, server.bytes_sent());
        // Outside the tail, reads ask as ever.
        let mut head = [0; 100];
        reader.seek(SeekFrom::Start(0)).expect("seek");
        reader.read_exact(&mut head).expect("read the head");
        assert_eq!(head[..], data[..100]);
        assert_eq!(server.request_count(), 2);
        assert_eq!(reader.stats().requests, 2);
    });
}

#[test]
fn reads_after_a_tail_open_are_pinned_to_the_version_it_saw() {
    watchdog(WATCHDOG_SECS, || {
        let data = random_bytes(300_000, 2);
        let server = server_with("/o.bin", &data);
        let source = HttpSource::builder()
            .tail(TAIL)
            .open(&server.url("/o.bin"))
            .expect("open");
        assert!(source.etag().is_some(), "the tail's response gave the ETag");
        server.put_object("/o.bin", random_bytes(300_000, 3));
        let mut reader = PrefetchReader::new(source).expect("reader");
        let err = reader.read(&mut [0; 10]).expect_err("the object changed");
        let err = common::crate_error(err);
        assert!(matches!(err, Error::ObjectChanged { .. }), "{err:?}");
    });
}

#[test]
fn an_object_shorter_than_the_tail_is_read_whole_from_the_open() {
    watchdog(WATCHDOG_SECS, || {
        for len in [1, 1000, TAIL as usize] {
            let data = random_bytes(len, 4);
            let server = server_with("/small.bin", &data);
            let mut reader = open_tail(&server.url("/small.bin"), TAIL).expect("open");
            let mut out = Vec::new();
            reader.read_to_end(&mut out).expect("read");
            assert!(out == data, "{len} bytes");
            assert_eq!(server.request_count(), 1, "{len} bytes");
            assert_eq!(reader.stats().requests, 1);
        }
    });
}

#[test]
fn an_empty_object_opens_with_a_tail() {
    watchdog(WATCHDOG_SECS, || {
        let server = server_with("/empty.bin", &[]);
        let mut reader = open_tail(&server.url("/empty.bin"), TAIL).expect("open");
        assert_eq!(reader.len(), 0);
        assert_eq!(reader.read(&mut [0; 10]).expect("read"), 0);
        assert_eq!(server.request_count(), 1);
    });
}

#[test]
fn a_server_ignoring_ranges_answers_the_tail_with_the_object_and_is_read_as_one_stream() {
    watchdog(WATCHDOG_SECS, || {
        for len in [1000, 3 << 20] {
            let data = random_bytes(len, 5);
            let server = server_with("/plain.bin", &data);
            server.set_persistent_fault(Some(Fault::IgnoreRange));
            let source = HttpSource::builder()
                .tail(TAIL)
                .open(&server.url("/plain.bin"))
                .expect("open");
            // Held whole when it fits in the tail, else a stream.
            assert_eq!(source.supports_ranges(), len as u64 <= TAIL, "{len} bytes");
            let mut reader = PrefetchReader::new(source).expect("reader");
            let mut out = Vec::new();
            reader.read_to_end(&mut out).expect("read");
            assert!(out == data, "{len} bytes");
            // The open's response is the one the stream reads.
            assert_eq!(server.get_count(), 1, "{len} bytes");
            assert_eq!(reader.stats().bytes_fetched, len as u64);
        }
    });
}

#[test]
fn a_tail_answered_without_a_length_falls_back_to_asking_as_without_one() {
    watchdog(WATCHDOG_SECS, || {
        let data = random_bytes(200_000, 6);
        let server = server_with("/o.bin", &data);
        // The tail's answer alone streams the object with no length.
        server.push_fault(Fault::IgnoreRangeNoLength);
        let mut reader = open_tail(&server.url("/o.bin"), TAIL).expect("open");
        assert_eq!(reader.len(), data.len() as u64);
        let mut out = Vec::new();
        reader.read_to_end(&mut out).expect("read");
        assert!(out == data);
        let methods: Vec<String> = server.requests().into_iter().map(|r| r.method).collect();
        assert_eq!(methods[..2], ["GET", "HEAD"], "the tail, then the HEAD");
        // The abandoned answer's body was not read: the reads' bytes alone.
        assert_eq!(reader.stats().bytes_fetched, data.len() as u64);
    });
}

#[test]
fn a_server_that_never_says_the_length_is_a_clear_error() {
    watchdog(WATCHDOG_SECS, || {
        let server = server_with("/o.bin", &random_bytes(200_000, 7));
        server.set_persistent_fault(Some(Fault::IgnoreRangeNoLength));
        for tail in [Some(TAIL), None] {
            let mut builder = HttpSource::builder();
            if let Some(n) = tail {
                builder.tail(n);
            }
            let err = builder.open(&server.url("/o.bin")).expect_err("no length");
            assert!(
                err.to_string().contains("length is unknown"),
                "{tail:?}: {err}"
            );
        }
    });
}

#[test]
fn bytes_of_a_tail_attempt_that_broke_count_as_fetched() {
    watchdog(WATCHDOG_SECS, || {
        let data = random_bytes(1 << 20, 8);
        let server = server_with("/o.bin", &data);
        server.push_fault(Fault::ResetMidBody { after: 30_000 });
        let mut reader = open_tail(&server.url("/o.bin"), TAIL).expect("open");
        let mut end = vec![0; TAIL as usize];
        reader.seek(SeekFrom::End(-(TAIL as i64))).expect("seek");
        reader.read_exact(&mut end).expect("read the tail");
        assert!(end[..] == data[data.len() - TAIL as usize..]);
        assert_eq!(server.get_count(), 2, "the tail, retried once");
        assert_eq!(reader.stats().bytes_fetched, server.bytes_sent());
    });
}

#[test]
fn a_zip_directory_is_read_with_the_open_in_one_request() {
    watchdog(WATCHDOG_SECS, || {
        let (members, archive) = zip_of_random_members(100, 20_000, 100);
        let server = server_with("/a.zip", &archive);
        let reader = open_tail(&server.url("/a.zip"), TAIL).expect("open");
        let mut zip = zip::ZipArchive::new(reader).expect("zip");
        assert_eq!(zip.len(), members.len());
        assert_eq!(server.request_count(), 1, "the open brought the directory");
        let mut out = Vec::new();
        zip.by_name(&member_name(42))
            .expect("member")
            .read_to_end(&mut out)
            .expect("read the member");
        assert!(out == members[42].1);
    });
}

#[test]
fn a_tail_of_zero_or_over_the_limit_is_invalid_config() {
    let server = server_with("/o.bin", b"hello");
    for n in [0, MAX_TAIL + 1, u64::MAX] {
        let err = HttpSource::builder()
            .tail(n)
            .open(&server.url("/o.bin"))
            .expect_err("invalid");
        assert!(
            matches!(
                err,
                Error::InvalidConfig {
                    setting: "tail",
                    ..
                }
            ),
            "{err:?}"
        );
    }
    assert_eq!(server.request_count(), 0, "nothing is asked for");
}
