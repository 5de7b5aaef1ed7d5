//! `HttpSource` and `open` against the crate's test server: integrity,
//! pinning, every scripted fault, and bad input. Each test asserts the
//! exact error kind and the requests made; each runs under a watchdog so a
//! hang is a failure, not a stuck test run.

#![cfg(feature = "testing")]

mod common;

use std::io::{self, Read, Seek, SeekFrom};
use std::time::{Duration, Instant};

use common::process::free_port;
use common::{
    check_random_seeks, crate_error, quick_retries, random_bytes, read_in_chunks, settled,
    watchdog, zip_of, MIB,
};
use prefetch_reader::testing::{Fault, RequestRecord, TestServer};
use prefetch_reader::{Error, FetchContext, HttpSource, PrefetchReader, RangeSource, RetryPolicy};

/// Generous: the slowest test here takes a few seconds.
const WATCHDOG_SECS: u64 = 120;

fn server_with(path: &str, data: &[u8]) -> TestServer {
    TestServer::builder()
        .object(path, data.to_vec())
        .build()
        .expect("start the test server")
}

fn open_quick(server: &TestServer, path: &str) -> HttpSource {
    HttpSource::builder()
        .retry_policy(quick_retries())
        .open(&server.url(path))
        .expect("open")
}

/// Reads `len` bytes at `offset` straight from the source.
fn read_range(source: &HttpSource, offset: u64, len: usize) -> Result<Vec<u8>, Error> {
    let mut buf = vec![0; len];
    source.read_at(offset, &mut buf, &FetchContext::new())?;
    Ok(buf)
}

fn gets(server: &TestServer) -> Vec<RequestRecord> {
    server
        .requests()
        .into_iter()
        .filter(|r| r.method == "GET")
        .collect()
}

// --- integrity --------------------------------------------------------------

#[test]
fn twenty_mib_at_concurrency_seven_with_one_mib_reads_is_byte_exact() {
    watchdog(WATCHDOG_SECS, || {
        let data = random_bytes(20 << 20, 1);
        let server = server_with("/big.bin", &data);
        let source = open_quick(&server, "/big.bin");
        assert_eq!(source.len(), data.len() as u64);
        let mut reader = PrefetchReader::builder()
            .concurrency(7)
            .build(source)
            .expect("reader");
        let out = read_in_chunks(&mut reader, 1 << 20);
        assert!(out == data, "the bytes read differ from the object");
        let stats = reader.stats();
        assert_eq!(stats.retries, 0);
        assert_eq!(stats.bytes_delivered, data.len() as u64);
        // One HEAD at open, then one GET per range read: the reader's
        // count is the server's.
        let requests = server.requests();
        assert_eq!(requests[0].method, "HEAD");
        assert_eq!(requests.len() as u64, stats.requests);
        assert_eq!(stats.bytes_fetched, data.len() as u64);
        assert_eq!(stats.bytes_wasted, 0);
    });
}

#[test]
fn fifty_random_seeks_with_small_reads_are_byte_exact() {
    watchdog(WATCHDOG_SECS, || {
        let data = random_bytes(3 << 20, 2);
        let server = server_with("/seek.bin", &data);
        let mut reader = PrefetchReader::new(open_quick(&server, "/seek.bin")).expect("reader");
        check_random_seeks(&mut reader, &data, 3, 50, 1000);
        assert_eq!(reader.stats().retries, 0);
    });
}

#[test]
fn an_empty_object_reads_as_empty_without_a_get() {
    watchdog(WATCHDOG_SECS, || {
        let server = server_with("/empty", &[]);
        let mut reader = prefetch_reader::open(&server.url("/empty")).expect("open");
        assert_eq!(reader.len(), 0);
        let mut out = Vec::new();
        assert_eq!(reader.read_to_end(&mut out).expect("read"), 0);
        assert_eq!(server.get_count(), 0);
    });
}

#[test]
fn an_empty_object_opens_through_the_ranged_get_when_head_is_refused() {
    watchdog(WATCHDOG_SECS, || {
        let server = server_with("/empty", &[]);
        server.push_fault(Fault::HeadRefused(405));
        let source = open_quick(&server, "/empty");
        assert_eq!(source.len(), 0);
        let requests = server.requests();
        assert_eq!(requests.len(), 2);
        assert_eq!(
            (requests[0].method.as_str(), requests[0].status),
            ("HEAD", 405)
        );
        assert_eq!(requests[1].range.as_deref(), Some("bytes=0-0"));
        assert_eq!(requests[1].status, 416);
    });
}

#[test]
fn a_one_byte_object_reads_its_byte() {
    watchdog(WATCHDOG_SECS, || {
        let server = server_with("/one", &[42]);
        let mut reader = prefetch_reader::open(&server.url("/one")).expect("open");
        let mut out = Vec::new();
        reader.read_to_end(&mut out).expect("read");
        assert_eq!(out, [42]);
        let gets = gets(&server);
        assert_eq!(gets.len(), 1);
        assert_eq!(gets[0].range.as_deref(), Some("bytes=0-0"));
    });
}

#[test]
fn a_one_byte_object_opens_through_the_ranged_get_when_head_is_refused() {
    watchdog(WATCHDOG_SECS, || {
        let server = server_with("/one", &[7]);
        server.push_fault(Fault::HeadRefused(501));
        let source = open_quick(&server, "/one");
        assert_eq!(source.len(), 1);
        assert!(source.is_pinned());
        assert_eq!(read_range(&source, 0, 1).expect("read"), [7]);
    });
}

#[test]
fn an_http10_server_that_closes_every_connection_works() {
    watchdog(WATCHDOG_SECS, || {
        let data = random_bytes(3 << 20, 4);
        let server = TestServer::builder()
            .http10(true)
            .object("/old.bin", data.clone())
            .build()
            .expect("server");
        let mut reader = PrefetchReader::builder()
            .concurrency(4)
            .build(open_quick(&server, "/old.bin"))
            .expect("reader");
        let mut out = Vec::new();
        reader.read_to_end(&mut out).expect("read");
        assert!(out == data, "the bytes read differ from the object");
        assert_eq!(reader.stats().retries, 0);
    });
}

#[test]
fn head_refused_with_403_falls_back_to_a_get_of_the_first_byte() {
    watchdog(WATCHDOG_SECS, || {
        // A presigned GET URL: its signature does not cover HEAD.
        let data = random_bytes(200_000, 5);
        let server = server_with("/signed.bin", &data);
        server.push_fault(Fault::HeadRefused(403));
        let url = format!("{}?X-Amz-Signature=abc123", server.url("/signed.bin"));
        let source = HttpSource::builder()
            .retry_policy(quick_retries())
            .open(&url)
            .expect("open");
        assert_eq!(source.len(), data.len() as u64);
        assert!(source.is_pinned());
        assert!(!source.redacted_url().contains("abc123"));
        let requests = server.requests();
        assert_eq!(
            (requests[0].method.as_str(), requests[0].status),
            ("HEAD", 403)
        );
        assert_eq!(requests[1].range.as_deref(), Some("bytes=0-0"));
        assert_eq!(requests[1].status, 206);
        assert_eq!(requests[1].if_match, None);
        let mut reader = PrefetchReader::new(source).expect("reader");
        let mut out = Vec::new();
        reader.read_to_end(&mut out).expect("read");
        assert!(out == data);
    });
}

#[test]
fn a_403_that_is_not_about_head_is_permission_denied() {
    watchdog(WATCHDOG_SECS, || {
        let server = server_with("/private.bin", &[1; 100]);
        server.set_persistent_fault(Some(Fault::Status(403)));
        server.push_fault(Fault::HeadRefused(403));
        let err = HttpSource::open(&server.url("/private.bin")).expect_err("denied");
        assert!(
            matches!(err, Error::PermissionDenied { status: 403, .. }),
            "{err:?}"
        );
        assert!(err.to_string().contains("/private.bin"), "{err}");
        // HEAD, then the one GET: a 403 is never retried.
        assert_eq!(server.request_count(), 2);
    });
}

// --- pinning and headers ----------------------------------------------------

#[test]
fn every_ranged_get_is_pinned_with_if_match_and_asks_for_identity() {
    watchdog(WATCHDOG_SECS, || {
        let data = random_bytes(2 << 20, 6);
        let server = server_with("/pinned.bin", &data);
        let source = HttpSource::builder()
            .user_agent("pinning-test/1")
            .open(&server.url("/pinned.bin"))
            .expect("open");
        let etag = source.etag().expect("the server sends an ETag").to_owned();
        assert!(source.is_pinned());
        let mut reader = PrefetchReader::new(source).expect("reader");
        io::copy(&mut reader, &mut io::sink()).expect("read");
        let gets = gets(&server);
        assert!(!gets.is_empty());
        for get in &gets {
            assert_eq!(get.if_match.as_deref(), Some(etag.as_str()), "{get:?}");
            assert_eq!(get.accept_encoding.as_deref(), Some("identity"), "{get:?}");
            assert_eq!(get.user_agent.as_deref(), Some("pinning-test/1"));
            assert!(get.range.is_some());
            assert_eq!(get.status, 206);
        }
    });
}

#[test]
fn a_weak_etag_is_never_sent_in_if_match() {
    watchdog(WATCHDOG_SECS, || {
        let data = random_bytes(300_000, 7);
        let server = server_with("/weak.bin", &data);
        server.set_persistent_fault(Some(Fault::WeakEtag));
        let source = open_quick(&server, "/weak.bin");
        assert!(source.etag().is_some_and(|e| e.starts_with("W/")));
        // Pinned by Last-Modified instead.
        assert!(source.is_pinned());
        let mut reader = PrefetchReader::new(source).expect("reader");
        let mut out = Vec::new();
        reader.read_to_end(&mut out).expect("read");
        assert!(out == data);
        for get in gets(&server) {
            assert_eq!(get.if_match, None, "{get:?}");
            assert!(get.if_unmodified_since.is_some(), "{get:?}");
        }
    });
}

#[test]
fn an_object_without_validators_is_read_unpinned() {
    watchdog(WATCHDOG_SECS, || {
        let data = random_bytes(300_000, 8);
        let server = server_with("/plain.bin", &data);
        server.set_persistent_fault(Some(Fault::NoValidators));
        let source = open_quick(&server, "/plain.bin");
        assert!(!source.is_pinned());
        let mut reader = PrefetchReader::new(source).expect("reader");
        let mut out = Vec::new();
        reader.read_to_end(&mut out).expect("read");
        assert!(out == data);
        for get in gets(&server) {
            assert_eq!((get.if_match, get.if_unmodified_since), (None, None));
        }
    });
}

#[test]
fn a_bearer_token_is_sent_and_never_shown() {
    watchdog(WATCHDOG_SECS, || {
        let server = server_with("/auth.bin", &[1; 1000]);
        let mut builder = HttpSource::builder();
        builder
            .bearer_token("sekrit-token-value")
            .retry_policy(quick_retries());
        let source = builder.open(&server.url("/auth.bin")).expect("open");
        read_range(&source, 0, 1000).expect("read");
        assert!(server.requests().iter().all(|r| r.has_authorization));
        let err = builder
            .open(&server.url("/missing.bin"))
            .expect_err("missing");
        for shown in [
            format!("{source:?}"),
            format!("{builder:?}"),
            err.to_string(),
            format!("{err:?}"),
        ] {
            assert!(!shown.contains("sekrit"), "{shown}");
        }
    });
}

// --- a replaced object --------------------------------------------------------

/// Reads the start of an 8 MiB object, replaces it with `replacement`, then
/// reads far away: the read must fail with `ObjectChanged`, having returned
/// only bytes of the first version.
fn read_across_a_replacement(replacement: Vec<u8>, fault: Option<Fault>) -> (Error, TestServer) {
    let data = random_bytes(8 << 20, 9);
    let server = server_with("/obj.bin", &data);
    server.set_persistent_fault(fault);
    let mut reader = PrefetchReader::new(open_quick(&server, "/obj.bin")).expect("reader");
    let mut head = vec![0; 1000];
    reader.read_exact(&mut head).expect("read before");
    assert!(head == data[..1000]);
    server.put_object("/obj.bin", replacement);
    reader.seek(SeekFrom::Start(6 << 20)).expect("seek");
    let mut buf = vec![0; 1000];
    let err = reader.read_exact(&mut buf).expect_err("the object changed");
    assert_eq!(reader.stats().retries, 0, "a changed object is not retried");
    (crate_error(err), server)
}

#[test]
fn a_replaced_object_of_the_same_length_gives_object_changed() {
    watchdog(WATCHDOG_SECS, || {
        let (err, server) = read_across_a_replacement(random_bytes(8 << 20, 10), None);
        assert!(matches!(err, Error::ObjectChanged { .. }), "{err:?}");
        assert!(err.to_string().contains("412"), "{err}");
        assert_eq!(gets(&server).last().map(|r| r.status), Some(412));
    });
}

#[test]
fn a_replaced_object_of_another_length_gives_object_changed() {
    watchdog(WATCHDOG_SECS, || {
        let (err, _server) = read_across_a_replacement(random_bytes(9 << 20, 11), None);
        assert!(matches!(err, Error::ObjectChanged { .. }), "{err:?}");
    });
}

#[test]
fn an_unpinned_object_that_changes_length_gives_object_changed() {
    watchdog(WATCHDOG_SECS, || {
        let (err, server) =
            read_across_a_replacement(random_bytes(9 << 20, 12), Some(Fault::NoValidators));
        assert!(matches!(err, Error::ObjectChanged { .. }), "{err:?}");
        assert!(err.to_string().contains("length"), "{err}");
        assert_eq!(gets(&server).last().map(|r| r.status), Some(206));
    });
}

// --- transient faults: retried, byte-exact ---------------------------------------

/// Reads the whole object through a reader after queueing `fault` for the
/// first GET; returns the retries counted.
fn read_through_fault(fault: Fault, source: impl FnOnce(&TestServer) -> HttpSource) -> u64 {
    let data = random_bytes(1 << 20, 13);
    let server = server_with("/t.bin", &data);
    let source = source(&server);
    server.push_fault(fault);
    let mut reader = PrefetchReader::new(source).expect("reader");
    let mut out = Vec::new();
    reader
        .read_to_end(&mut out)
        .expect("read through a transient fault");
    assert!(out == data, "the bytes read differ from the object");
    let stats = reader.stats();
    assert_eq!(
        server.requests().len() as u64,
        stats.requests,
        "every request the server saw, the open's HEAD and each retry included"
    );
    stats.retries
}

#[test]
fn status_500_503_and_408_are_retried_and_the_read_is_byte_exact() {
    watchdog(WATCHDOG_SECS, || {
        for status in [500, 503, 408, 502] {
            let retries = read_through_fault(Fault::Status(status), |s| open_quick(s, "/t.bin"));
            assert_eq!(retries, 1, "status {status}");
        }
    });
}

#[test]
fn a_429_is_retried_after_its_retry_after() {
    watchdog(WATCHDOG_SECS, || {
        let started = Instant::now();
        let retries = read_through_fault(
            Fault::TooManyRequests {
                retry_after_secs: 1,
            },
            |s| open_quick(s, "/t.bin"),
        );
        assert_eq!(retries, 1);
        // The wait is at least what the server asked for.
        assert!(started.elapsed() >= Duration::from_secs(1));
    });
}

#[test]
fn a_reset_mid_body_is_retried_and_the_read_is_byte_exact() {
    watchdog(WATCHDOG_SECS, || {
        let retries = read_through_fault(Fault::ResetMidBody { after: 1000 }, |s| {
            open_quick(s, "/t.bin")
        });
        assert_eq!(retries, 1);
    });
}

#[test]
fn a_short_body_is_retried_and_the_read_is_byte_exact() {
    watchdog(WATCHDOG_SECS, || {
        let retries = read_through_fault(Fault::ShortBody { after: 5000 }, |s| {
            open_quick(s, "/t.bin")
        });
        assert_eq!(retries, 1);
    });
}

#[test]
fn a_stalled_body_times_out_and_is_retried() {
    watchdog(WATCHDOG_SECS, || {
        let retries = read_through_fault(Fault::Stall(Duration::from_secs(5)), |s| {
            HttpSource::builder()
                .read_timeout(Duration::from_millis(300))
                .retry_policy(quick_retries())
                .open(&s.url("/t.bin"))
                .expect("open")
        });
        assert_eq!(retries, 1);
    });
}

/// Reads 64 KiB at 1000 after queueing `fault`, straight from the source,
/// and returns the `Range` headers of the GETs.
fn ranges_through_fault(fault: Fault) -> Vec<String> {
    let data = random_bytes(200_000, 14);
    let server = server_with("/r.bin", &data);
    let source = open_quick(&server, "/r.bin");
    server.push_fault(fault);
    let got = read_range(&source, 1000, 65536).expect("read through the fault");
    assert!(got == data[1000..1000 + 65536]);
    gets(&server)
        .into_iter()
        .map(|r| r.range.unwrap_or_default())
        .collect()
}

#[test]
fn a_broken_body_resumes_at_its_first_missing_byte() {
    watchdog(WATCHDOG_SECS, || {
        assert_eq!(
            ranges_through_fault(Fault::ShortBody { after: 5000 }),
            ["bytes=1000-66535", "bytes=6000-66535"]
        );
        assert_eq!(
            ranges_through_fault(Fault::ResetMidBody { after: 7 }),
            ["bytes=1000-66535", "bytes=1007-66535"]
        );
    });
}

#[test]
fn a_resumed_body_stays_pinned() {
    watchdog(WATCHDOG_SECS, || {
        let server = server_with("/p.bin", &random_bytes(200_000, 15));
        let source = open_quick(&server, "/p.bin");
        server.push_fault(Fault::ShortBody { after: 10 });
        read_range(&source, 0, 100_000).expect("read");
        let gets = gets(&server);
        assert_eq!(gets.len(), 2);
        assert!(gets.iter().all(|g| g.if_match.as_deref() == source.etag()));
    });
}

// --- faults that last: their own error, never wrong bytes ----------------------------

#[test]
fn a_persistent_503_ends_in_http_status_after_the_allowed_attempts() {
    watchdog(WATCHDOG_SECS, || {
        let server = server_with("/down.bin", &[1; 1000]);
        let source = open_quick(&server, "/down.bin");
        server.set_persistent_fault(Some(Fault::Status(503)));
        let err = read_range(&source, 0, 1000).expect_err("down");
        assert!(
            matches!(err, Error::HttpStatus { status: 503, .. }),
            "{err:?}"
        );
        assert!(err.to_string().contains("503") && err.to_string().contains("/down.bin"));
        assert_eq!(server.get_count(), 4);
    });
}

#[test]
fn a_persistent_reset_ends_in_truncated_having_resumed_each_time() {
    watchdog(WATCHDOG_SECS, || {
        let server = server_with("/cut.bin", &[1; 10_000]);
        let source = open_quick(&server, "/cut.bin");
        server.set_persistent_fault(Some(Fault::ResetMidBody { after: 100 }));
        let err = read_range(&source, 0, 10_000).expect_err("cut");
        // Four attempts of 100 bytes each, every one resuming.
        assert!(
            matches!(
                err,
                Error::Truncated {
                    offset: 0,
                    expected: 10_000,
                    received: 400,
                    ..
                }
            ),
            "{err:?}"
        );
        assert_eq!(server.get_count(), 4);
    });
}

#[test]
fn a_persistent_stall_ends_in_timed_out() {
    watchdog(WATCHDOG_SECS, || {
        let server = server_with("/slow.bin", &[1; 10_000]);
        let mut policy = quick_retries();
        policy.max_attempts = 2;
        let source = HttpSource::builder()
            .read_timeout(Duration::from_millis(200))
            .retry_policy(policy)
            .open(&server.url("/slow.bin"))
            .expect("open");
        server.set_persistent_fault(Some(Fault::Stall(Duration::from_secs(3))));
        let err = read_range(&source, 0, 10_000).expect_err("stalled");
        assert!(matches!(err, Error::TimedOut { .. }), "{err:?}");
        assert_eq!(err.io_kind(), io::ErrorKind::TimedOut);
        assert_eq!(server.get_count(), 2);
    });
}

#[test]
fn a_retry_after_beyond_the_retry_budget_gives_up_at_once() {
    watchdog(WATCHDOG_SECS, || {
        let server = server_with("/busy.bin", &[1; 1000]);
        let mut policy = quick_retries();
        policy.max_total = Duration::from_secs(5);
        let source = HttpSource::builder()
            .retry_policy(policy)
            .open(&server.url("/busy.bin"))
            .expect("open");
        server.push_fault(Fault::TooManyRequests {
            retry_after_secs: 3600,
        });
        let err = read_range(&source, 0, 1000).expect_err("busy for an hour");
        assert!(
            matches!(err, Error::HttpStatus { status: 429, .. }),
            "{err:?}"
        );
        assert_eq!(server.get_count(), 1);
    });
}

#[test]
fn a_callers_agent_is_used_and_statuses_are_still_read_as_answers() {
    watchdog(WATCHDOG_SECS, || {
        let data = random_bytes(100_000, 21);
        let server = server_with("/agent.bin", &data);
        // ureq's default agent turns 4xx and 5xx into errors without headers.
        let agent = ureq::Agent::new_with_defaults();
        let mut builder = HttpSource::builder();
        builder.agent(agent).retry_policy(quick_retries());
        let source = builder.open(&server.url("/agent.bin")).expect("open");
        assert!(read_range(&source, 10, 1000).expect("read") == data[10..1010]);
        server.push_fault(Fault::TooManyRequests {
            retry_after_secs: 0,
        });
        assert!(read_range(&source, 0, 100).expect("read after a 429") == data[..100]);
        let err = builder.open(&server.url("/none.bin")).expect_err("missing");
        assert!(matches!(err, Error::NotFound { .. }), "{err:?}");
    });
}

#[test]
fn a_missing_object_is_not_found_and_not_retried() {
    watchdog(WATCHDOG_SECS, || {
        let server = server_with("/here.bin", &[1; 10]);
        let err = HttpSource::open(&server.url("/nothere.bin")).expect_err("missing");
        assert!(matches!(err, Error::NotFound { .. }), "{err:?}");
        let message = err.to_string();
        assert!(
            message.contains("/nothere.bin") && message.contains("404"),
            "{message}"
        );
        assert_eq!(server.request_count(), 1);
        let err = prefetch_reader::open(&server.url("/nothere.bin")).expect_err("missing");
        assert_eq!(io::Error::from(err).kind(), io::ErrorKind::NotFound);
    });
}

#[test]
fn client_errors_on_get_are_not_retried() {
    watchdog(WATCHDOG_SECS, || {
        let server = server_with("/e.bin", &[1; 1000]);
        let source = open_quick(&server, "/e.bin");
        for status in [400, 401, 403, 404, 410] {
            server.reset_counters();
            server.push_fault(Fault::Status(status));
            let err = read_range(&source, 0, 1000).expect_err("a client error");
            match status {
                401 | 403 => assert!(
                    matches!(err, Error::PermissionDenied { status: s, .. } if s == status),
                    "{err:?}"
                ),
                404 | 410 => assert!(matches!(err, Error::NotFound { .. }), "{err:?}"),
                _ => assert!(
                    matches!(err, Error::HttpStatus { status: 400, .. }),
                    "{err:?}"
                ),
            }
            assert_eq!(server.get_count(), 1, "status {status} was retried");
        }
    });
}

#[test]
fn one_200_to_a_range_is_skipped_to_the_range_asked_for() {
    watchdog(WATCHDOG_SECS, || {
        let data = random_bytes(100_000, 16);
        let server = server_with("/whole.bin", &data);
        let source = open_quick(&server, "/whole.bin");
        assert!(source.supports_ranges(), "the server advertised ranges");
        server.push_fault(Fault::IgnoreRange);
        let got = read_range(&source, 1000, 1000).expect("the range, from the whole body");
        assert!(got == data[1000..2000], "wrong bytes from a 200");
        assert_eq!(server.get_count(), 1);
        // Through a reader: the bytes asked for, and the skipped ones
        // counted as fetched and wasted.
        let mut reader = PrefetchReader::new(open_quick(&server, "/whole.bin")).expect("reader");
        server.push_fault(Fault::IgnoreRange);
        reader.seek(SeekFrom::Start(5000)).expect("seek");
        let mut buf = [0; 100];
        reader.read_exact(&mut buf).expect("read");
        assert!(buf[..] == data[5000..5100]);
        let handle = reader.stats_handle();
        drop(reader);
        let stats = settled(&handle);
        assert!(stats.bytes_fetched >= 5100, "{stats:?}");
        assert_eq!(
            stats.bytes_fetched - stats.bytes_wasted,
            stats.bytes_delivered
        );
    });
}

/// A server like Python's `http.server`: no `Accept-Ranges`, and every
/// `GET` answered with the whole object.
fn server_ignoring_ranges(path: &str, data: &[u8]) -> TestServer {
    let server = server_with(path, data);
    server.set_persistent_fault(Some(Fault::IgnoreRange));
    server
}

#[test]
fn a_server_that_ignores_ranges_is_read_front_to_back_from_one_response() {
    watchdog(WATCHDOG_SECS, || {
        let data = random_bytes(3 << 20, 40);
        let server = server_ignoring_ranges("/plain.bin", &data);
        let source = open_quick(&server, "/plain.bin");
        assert!(!source.supports_ranges());
        let mut reader = PrefetchReader::builder()
            .concurrency(8)
            .min_part_size(64 << 10)
            .build(source)
            .expect("reader");
        let out = read_in_chunks(&mut reader, 10_000);
        assert!(out == data, "the bytes read differ from the object");
        let stats = reader.stats();
        assert!(stats.single_stream);
        // The HEAD, then the first-byte probe whose 200 is the stream read.
        let methods: Vec<_> = server.requests().iter().map(|r| r.method.clone()).collect();
        assert_eq!(methods, ["HEAD", "GET"]);
        assert_eq!(stats.requests, 2);
        assert_eq!(stats.bytes_fetched, data.len() as u64);
        assert_eq!(stats.bytes_wasted, 0);
    });
}

#[test]
fn a_stream_serves_forward_seeks_and_the_window_behind_but_not_a_seek_further_back() {
    watchdog(WATCHDOG_SECS, || {
        let data = random_bytes(4 << 20, 41);
        let server = server_ignoring_ranges("/plain.bin", &data);
        let mut reader = PrefetchReader::builder()
            .window_behind(64 << 10)
            .build(open_quick(&server, "/plain.bin"))
            .expect("reader");
        let mut buf = vec![0; 100_000];
        reader.seek(SeekFrom::Start(1 << 20)).expect("seek");
        reader
            .read_exact(&mut buf)
            .expect("read after a forward seek");
        assert!(buf[..] == data[1 << 20..(1 << 20) + 100_000]);
        // Back into the window behind: served from memory.
        let back = (1 << 20) + 100_000 - 50_000;
        reader.seek(SeekFrom::Start(back)).expect("seek");
        reader
            .read_exact(&mut buf[..50_000])
            .expect("read the window behind");
        assert!(buf[..50_000] == data[back as usize..back as usize + 50_000]);
        // Far forward, then far back.
        reader.seek(SeekFrom::Start(3 << 20)).expect("seek");
        reader.read_exact(&mut buf[..10]).expect("read far ahead");
        assert!(buf[..10] == data[3 << 20..(3 << 20) + 10]);
        reader.seek(SeekFrom::Start(0)).expect("seek");
        let err = crate_error(reader.read(&mut buf).expect_err("behind the stream"));
        assert!(matches!(err, Error::RangeNotSupported { .. }), "{err:?}");
        assert!(err.to_string().contains("ignores byte ranges"), "{err}");
        assert_eq!(server.get_count(), 1, "one response served every read");
    });
}

#[test]
fn a_stream_broken_mid_body_resumes_from_a_new_whole_response() {
    watchdog(WATCHDOG_SECS, || {
        let data = random_bytes(2 << 20, 42);
        let server = server_ignoring_ranges("/plain.bin", &data);
        // The probe at open gets the response that breaks.
        server.push_fault(Fault::IgnoreRangeThenReset { after: 1 << 20 });
        let source = open_quick(&server, "/plain.bin");
        assert!(!source.supports_ranges());
        let mut reader = PrefetchReader::new(source).expect("reader");
        let out = read_in_chunks(&mut reader, 100_000);
        assert!(out == data, "wrong bytes after a broken stream");
        let stats = reader.stats();
        assert_eq!(stats.retries, 1);
        assert_eq!(server.get_count(), 2);
        assert_eq!(stats.requests, 3, "the HEAD and the two GETs");
        // The second response was skipped to where the first broke.
        assert_eq!(stats.bytes_fetched, data.len() as u64 + (1 << 20));
    });
}

#[test]
fn a_server_refusing_head_and_ignoring_ranges_is_read_as_one_stream() {
    watchdog(WATCHDOG_SECS, || {
        let data = random_bytes(500_000, 43);
        let server = server_ignoring_ranges("/plain.bin", &data);
        server.push_fault(Fault::HeadRefused(405));
        let source = open_quick(&server, "/plain.bin");
        assert!(!source.supports_ranges());
        assert_eq!(source.len(), data.len() as u64);
        let mut reader = PrefetchReader::new(source).expect("reader");
        let mut out = Vec::new();
        reader.read_to_end(&mut out).expect("read");
        assert!(out == data);
        assert_eq!(server.get_count(), 1, "the probe's response was read");
    });
}

#[test]
fn a_200_is_accepted_when_the_whole_object_was_asked_for() {
    watchdog(WATCHDOG_SECS, || {
        let data = random_bytes(5000, 17);
        let server = server_with("/small.bin", &data);
        let source = open_quick(&server, "/small.bin");
        server.set_persistent_fault(Some(Fault::IgnoreRange));
        assert!(read_range(&source, 0, 5000).expect("whole object") == data);
        assert_eq!(gets(&server)[0].status, 200);
    });
}

#[test]
fn a_content_range_for_another_range_is_invalid_response() {
    watchdog(WATCHDOG_SECS, || {
        let server = server_with("/cr.bin", &random_bytes(100_000, 18));
        let source = open_quick(&server, "/cr.bin");
        server.push_fault(Fault::WrongContentRange);
        let err = read_range(&source, 1000, 1000).expect_err("wrong range");
        assert!(matches!(err, Error::InvalidResponse { .. }), "{err:?}");
        let message = err.to_string();
        assert!(
            message.contains("Content-Range `bytes 1001-1999/100000`")
                && message.contains("bytes=1000-1999"),
            "{message}"
        );
        assert_eq!(server.get_count(), 1);
    });
}

#[test]
fn a_content_range_for_another_total_is_object_changed() {
    watchdog(WATCHDOG_SECS, || {
        let server = server_with("/tot.bin", &random_bytes(100_000, 19));
        let source = open_quick(&server, "/tot.bin");
        server.push_fault(Fault::WrongTotal);
        let err = read_range(&source, 0, 1000).expect_err("wrong total");
        assert!(matches!(err, Error::ObjectChanged { .. }), "{err:?}");
        let message = err.to_string();
        assert!(
            message.contains("length 100001") && message.contains("was 100000"),
            "{message}"
        );
    });
}

#[test]
fn a_gzip_encoded_body_is_range_not_supported() {
    watchdog(WATCHDOG_SECS, || {
        let data: Vec<u8> = b"compressible "
            .iter()
            .copied()
            .cycle()
            .take(100_000)
            .collect();
        let server = server_with("/gz.txt", &data);
        let source = open_quick(&server, "/gz.txt");
        server.push_fault(Fault::Gzip);
        let err = read_range(&source, 0, 50_000).expect_err("encoded");
        assert!(matches!(err, Error::RangeNotSupported { .. }), "{err:?}");
        assert!(err.to_string().contains("Content-Encoding: gzip"), "{err}");
        assert_eq!(server.get_count(), 1);
    });
}

#[test]
fn a_gzip_encoded_head_is_refused_at_open() {
    watchdog(WATCHDOG_SECS, || {
        let server = server_with("/gz.txt", &[b'a'; 10_000]);
        server.set_persistent_fault(Some(Fault::Gzip));
        let err = HttpSource::open(&server.url("/gz.txt")).expect_err("encoded");
        assert!(matches!(err, Error::RangeNotSupported { .. }), "{err:?}");
    });
}

#[test]
fn a_non_numeric_content_length_is_invalid_response() {
    watchdog(WATCHDOG_SECS, || {
        let server = server_with("/cl.bin", &[1; 1000]);
        let source = open_quick(&server, "/cl.bin");
        server.push_fault(Fault::BadContentLength);
        let err = read_range(&source, 0, 1000).expect_err("bad length");
        assert!(matches!(err, Error::InvalidResponse { .. }), "{err:?}");
        assert!(
            err.to_string().to_lowercase().contains("content-length"),
            "{err}"
        );
        // At open, from HEAD.
        server.set_persistent_fault(Some(Fault::BadContentLength));
        let err = HttpSource::open(&server.url("/cl.bin")).expect_err("bad length");
        assert!(matches!(err, Error::InvalidResponse { .. }), "{err:?}");
        assert!(
            err.to_string().to_lowercase().contains("content-length"),
            "{err}"
        );
    });
}

// --- bad input ----------------------------------------------------------------

fn invalid_location_reason(location: &str) -> String {
    match prefetch_reader::open_source(location) {
        Err(Error::InvalidLocation { reason, .. }) => reason,
        Err(other) => panic!("{location}: {other:?}"),
        Ok(source) => panic!("{location}: opened {source:?}"),
    }
}

#[test]
fn malformed_urls_are_invalid_locations_saying_so() {
    for url in [
        "http://exa mple.com/x",
        "http://host:port/x",
        "http://host:70000/x",
        "http:/host/x",
        "https://[::1/x",
    ] {
        let reason = invalid_location_reason(url);
        assert!(reason.starts_with("malformed URL"), "{url}: {reason}");
    }
}

#[test]
fn unknown_schemes_are_invalid_locations_naming_the_scheme() {
    for (url, scheme) in [("ftp://host/x", "ftp"), ("gopher://h/x", "gopher")] {
        let reason = invalid_location_reason(url);
        assert!(
            reason.contains(&format!("unsupported scheme `{scheme}`")),
            "{reason}"
        );
    }
}

#[test]
fn urls_without_a_host_are_invalid_locations() {
    for url in ["http:///x", "https://", "http://:8080/x"] {
        assert_eq!(invalid_location_reason(url), "no host", "{url}");
    }
}

#[test]
fn nothing_listening_is_a_connection_error_naming_the_url() {
    watchdog(WATCHDOG_SECS, || {
        let port = free_port();
        let url = format!("http://127.0.0.1:{port}/x.bin");
        let err = HttpSource::builder()
            .retry_policy(RetryPolicy::never())
            .open(&url)
            .expect_err("nothing listening");
        assert!(matches!(err, Error::Io { .. }), "{err:?}");
        assert_eq!(err.io_kind(), io::ErrorKind::ConnectionRefused);
        assert!(err.to_string().contains(&url), "{err}");
        assert!(err.is_transient(), "a refused connection is worth retrying");
    });
}

// --- open -------------------------------------------------------------------------

#[test]
fn open_reads_http_urls_file_urls_and_paths_alike() {
    watchdog(WATCHDOG_SECS, || {
        let data = random_bytes(300_000, 20);
        let server = server_with("/same.bin", &data);
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("same.bin");
        std::fs::write(&path, &data).expect("write");
        let path = path.to_str().expect("a UTF-8 path").to_owned();
        for location in [server.url("/same.bin"), format!("file://{path}"), path] {
            let mut reader = prefetch_reader::open(&location).expect("open");
            let mut out = Vec::new();
            reader.read_to_end(&mut out).expect("read");
            assert!(out == data, "{location}");
        }
    });
}

#[test]
fn secrets_in_a_url_never_reach_a_message() {
    watchdog(WATCHDOG_SECS, || {
        let server = server_with("/s.bin", &[1; 10]);
        let url = server
            .url("/missing.bin?X-Amz-Credential=AKIAXX&X-Amz-Signature=deadbeef")
            .replacen("http://", "http://user:hunter2@", 1);
        let err = HttpSource::open(&url).expect_err("missing");
        assert!(matches!(err, Error::NotFound { .. }), "{err:?}");
        let message = err.to_string();
        for secret in ["hunter2", "AKIAXX", "deadbeef"] {
            assert!(!message.contains(secret), "{message}");
        }
        assert!(message.contains("/missing.bin"), "{message}");
        // The userinfo went as Basic credentials, not in the URL.
        assert!(server.requests()[0].has_authorization);
    });
}

// --- real clients -------------------------------------------------------------------

#[test]
fn zip_reads_a_member_from_the_middle_of_a_remote_archive() {
    watchdog(WATCHDOG_SECS, || {
        let members: Vec<(String, Vec<u8>)> = (0..5)
            .map(|i| (format!("m{i}.bin"), random_bytes(400_000, 100 + i)))
            .collect();
        let zipped = zip_of(&members);
        let server = server_with("/a.zip", &zipped);
        let reader = prefetch_reader::open(&server.url("/a.zip")).expect("open");
        let mut zip = zip::ZipArchive::new(reader).expect("zip");
        let mut member = zip.by_name("m2.bin").expect("member");
        let mut out = Vec::new();
        member.read_to_end(&mut out).expect("read member");
        assert!(out == members[2].1);
    });
}

#[test]
fn tar_and_flate2_stream_a_remote_tar_gz() {
    watchdog(WATCHDOG_SECS, || {
        let files: Vec<(String, Vec<u8>)> = (0..4)
            .map(|i| {
                (
                    format!("dir/file-{i}.bin"),
                    random_bytes(700_000 + i * 1000, 200 + i as u64),
                )
            })
            .collect();
        let mut builder = tar::Builder::new(flate2::write::GzEncoder::new(
            Vec::new(),
            flate2::Compression::fast(),
        ));
        for (name, data) in &files {
            let mut header = tar::Header::new_gnu();
            header.set_size(data.len() as u64);
            header.set_mode(0o644);
            header.set_cksum();
            builder
                .append_data(&mut header, name, data.as_slice())
                .expect("append");
        }
        let tar_gz = builder.into_inner().expect("tar").finish().expect("gzip");
        let server = server_with("/a.tar.gz", &tar_gz);
        let reader = prefetch_reader::open(&server.url("/a.tar.gz")).expect("open");
        let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(reader));
        let mut seen = Vec::new();
        for entry in archive.entries().expect("entries") {
            let mut entry = entry.expect("entry");
            let name = entry.path().expect("path").display().to_string();
            let mut data = Vec::new();
            entry.read_to_end(&mut data).expect("read entry");
            seen.push((name, data));
        }
        assert!(seen == files, "every file, byte-exact, in order");
    });
}

#[test]
fn the_first_bytes_of_a_response_are_read_while_the_server_stalls() {
    watchdog(WATCHDOG_SECS, || {
        let data = random_bytes(1 << 20, 44);
        let server = server_with("/stall.bin", &data);
        let source = open_quick(&server, "/stall.bin");
        let mut reader = PrefetchReader::builder()
            .first_request_size(1 << 20)
            .build(source)
            .expect("reader");
        // The part is the whole object; the server sends its first bytes,
        // then stalls before the rest (and closes, so the rest is retried).
        server.push_fault(Fault::Stall(Duration::from_secs(3)));
        let mut head = [0; 4];
        reader.read_exact(&mut head).expect("the first bytes");
        assert!(head[..] == data[..4]);
        assert_eq!(server.get_count(), 1, "read before the stall ended");
        let mut rest = Vec::new();
        reader.read_to_end(&mut rest).expect("the rest, retried");
        assert!(rest[..] == data[4..]);
        assert_eq!(reader.stats().retries, 1);
    });
}

#[test]
fn a_stalled_consumer_stops_its_connections_within_the_budget() {
    watchdog(WATCHDOG_SECS, || {
        let len = 64 * MIB;
        let data = random_bytes(len as usize, 77);
        let server = TestServer::builder()
            .object("/big.bin", data.clone())
            .bandwidth(100 << 20)
            .build()
            .expect("server");
        let budget = 8 * MIB;
        let mut builder = PrefetchReader::builder();
        builder.max_prefetch(budget).concurrency(4);
        let source = HttpSource::open(&server.url("/big.bin")).expect("open");
        let mut reader = builder.build(source).expect("reader");
        let mut head = vec![0; MIB as usize];
        reader.read_exact(&mut head).expect("read");
        assert!(head[..] == data[..MIB as usize]);
        // The consumer stalls: the reader fills its budget and stops.
        reader.wait_until_quiet().expect("quiet");
        let sent = server.bytes_sent();
        std::thread::sleep(Duration::from_millis(300));
        reader.wait_until_quiet().expect("quiet");
        assert_eq!(server.bytes_sent(), sent, "bytes went on arriving");
        assert!(
            sent <= MIB + budget,
            "{sent} bytes sent for 1 MiB read with an {budget}-byte budget"
        );
        // And it goes on where it stopped.
        let mut rest = Vec::new();
        reader.read_to_end(&mut rest).expect("read the rest");
        assert!(rest[..] == data[MIB as usize..]);
    });
}
