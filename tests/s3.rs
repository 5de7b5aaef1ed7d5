//! `S3Source` and `open("s3://…")`: against the crate's test server (which
//! checks what is sent: signatures per request, the HEAD-403 fallback,
//! retries) and against moto's S3 server (a real S3 implementation:
//! integrity, zip, missing keys and buckets, overwrites, awkward keys,
//! presigned URLs).
//!
//! The moto tests need `moto_server` on `PATH` (`.ci/run` installs it).
//! Without it they print a line and pass, except under `CI=true`, where a
//! missing server fails the run. moto accepts any credentials and
//! signature, so signing itself is checked against AWS's published example
//! in the unit tests.

#![cfg(feature = "testing")]

mod common;

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::env::{env_lock, EnvVars};
use common::process::{free_port, program_or_skip, ServerProcess};
use common::{
    check_random_seeks, crate_error, quick_retries, random_bytes, small_blocks, watchdog, zip_of,
    KIB, MIB,
};
use prefetch_reader::testing::{Fault, TestServer};
use prefetch_reader::{Error, PrefetchReader, RangeSource, S3Source, S3SourceBuilder};
use rusty_s3::{Bucket, Credentials, S3Action, UrlStyle};

/// Generous: uploading and reading 20 MiB through moto takes seconds.
const WATCHDOG_SECS: u64 = 180;

/// How long moto may take to start answering (a cold Python start on a
/// busy machine).
const MOTO_START_TIMEOUT: Duration = Duration::from_secs(60);

const ACCESS_KEY: &str = "AKIDMOTOTEST";
const SECRET_KEY: &str = "moto-secret-never-shown";

// --- moto ----------------------------------------------------------------

/// A moto S3 server on a loopback port, killed when dropped.
struct Moto {
    server: ServerProcess,
}

impl Moto {
    /// Starts `program` and waits until it answers.
    fn start(program: &Path) -> Moto {
        let port = free_port();
        let mut server = ServerProcess::spawn(
            "moto_server",
            port,
            Command::new(program)
                .args(["-H", "127.0.0.1", "-p", &port.to_string()])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
        );
        let root = format!("{}/", server.endpoint());
        if let Err(status) =
            server.wait_until_ready(MOTO_START_TIMEOUT, Duration::from_millis(100), || {
                ureq::get(&root).call().is_ok()
            })
        {
            panic!("moto_server exited before answering: {status}");
        }
        Moto { server }
    }

    fn endpoint(&self) -> String {
        self.server.endpoint()
    }

    fn bucket(&self, name: &str) -> Bucket {
        let endpoint = self.endpoint().parse().expect("endpoint URL");
        Bucket::new(endpoint, UrlStyle::Path, name.to_owned(), "us-east-1").expect("bucket")
    }

    fn credentials() -> Credentials {
        Credentials::new(ACCESS_KEY, SECRET_KEY)
    }

    /// Creates `name` with a signed `CreateBucket`.
    fn create_bucket(&self, name: &str) {
        let url = self
            .bucket(name)
            .create_bucket(&Self::credentials())
            .sign(Duration::from_secs(600));
        ureq::put(url.as_str())
            .send_empty()
            .expect("create the bucket");
    }

    /// Uploads `data` as `key` with a signed `PutObject`.
    fn put(&self, bucket: &str, key: &str, data: &[u8]) {
        let credentials = Self::credentials();
        let bucket = self.bucket(bucket);
        let url = bucket
            .put_object(Some(&credentials), key)
            .sign(Duration::from_secs(600));
        ureq::put(url.as_str()).send(data).expect("upload");
    }

    /// A presigned `GET` URL for `key`, as `aws s3 presign` makes.
    fn presign_get(&self, bucket: &str, key: &str) -> String {
        let credentials = Self::credentials();
        let bucket = self.bucket(bucket);
        bucket
            .get_object(Some(&credentials), key)
            .sign(Duration::from_secs(3600))
            .to_string()
    }

    /// The keys in `bucket` as the server holds them (`ListObjects`; moto
    /// takes it unsigned).
    fn list_keys(&self, bucket: &str) -> Vec<String> {
        let body = ureq::get(&format!("{}/{bucket}", self.endpoint()))
            .call()
            .expect("list the bucket")
            .into_body()
            .read_to_string()
            .expect("listing body");
        let mut keys: Vec<String> = body
            .split("<Key>")
            .skip(1)
            .filter_map(|rest| rest.split_once("</Key>"))
            .map(|(key, _)| {
                key.replace("&lt;", "<")
                    .replace("&gt;", ">")
                    .replace("&quot;", "\"")
                    .replace("&apos;", "'")
                    .replace("&amp;", "&")
            })
            .collect();
        keys.sort();
        keys
    }

    /// A builder pointed at this server with the test's credentials.
    fn builder(&self) -> S3SourceBuilder {
        let mut builder = S3Source::builder();
        builder
            .endpoint(self.endpoint())
            .region("us-east-1")
            .credentials(ACCESS_KEY, SECRET_KEY)
            .retry_policy(quick_retries());
        builder
    }
}

/// Runs `test` with a fresh moto server, unless moto is not installed.
fn with_moto(test: impl FnOnce(&Moto) + Send + 'static) {
    // libtest names each test's thread after the test.
    let name = std::thread::current()
        .name()
        .unwrap_or("a moto test")
        .to_owned();
    let Some(program) = program_or_skip("moto_server", &[], &name) else {
        return;
    };
    watchdog(WATCHDOG_SECS, move || test(&Moto::start(&program)));
}

fn assert_no_secrets(message: &str) {
    assert!(!message.contains(SECRET_KEY), "secret key in: {message}");
}

// --- against moto --------------------------------------------------------

#[test]
fn a_20_mib_object_reads_exactly_in_sequence_and_after_random_seeks() {
    with_moto(|moto| {
        let data = random_bytes(20 * MIB as usize, 1);
        moto.create_bucket("big");
        moto.put("big", "data/20mib.bin", &data);
        let source = moto
            .builder()
            .open("s3://big/data/20mib.bin")
            .expect("open");
        assert_eq!(source.len(), data.len() as u64);
        assert!(source.is_pinned());
        assert!(source.etag().is_some());
        assert_eq!(source.location(), "s3://big/data/20mib.bin");
        let mut reader = PrefetchReader::new(source).expect("reader");

        let mut chunk = vec![0; MIB as usize];
        for (i, expected) in data.chunks(MIB as usize).enumerate() {
            reader.read_exact(&mut chunk).expect("read 1 MiB");
            assert!(chunk == expected, "MiB {i} differs");
        }
        assert_eq!(reader.read(&mut chunk).expect("read at the end"), 0);

        check_random_seeks(&mut reader, &data, 7, 50, 1000);
    });
}

#[test]
fn a_zip_member_is_read_from_an_s3_object_whose_directory_a_tail_open_brings() {
    with_moto(|moto| {
        let member = random_bytes(300_000, 2);
        let zipped = zip_of(&[("first.txt", &b"hello"[..]), ("dir/member.bin", &member)]);
        moto.create_bucket("zips");
        moto.put("zips", "archive.zip", &zipped);
        for tail in [None, Some(64 << 10)] {
            let mut builder = moto.builder();
            if let Some(n) = tail {
                builder.tail(n);
            }
            let source = builder.open("s3://zips/archive.zip").expect("open");
            assert_eq!(source.len(), zipped.len() as u64);
            let reader = PrefetchReader::new(source).expect("reader");
            let stats = reader.stats_handle();
            let mut archive = zip::ZipArchive::new(reader).expect("read the zip directory");
            assert_eq!(archive.len(), 2);
            if tail.is_some() {
                // One signed suffix request opened it and read the directory.
                assert_eq!(stats.get().requests, 1);
            }
            let mut out = Vec::new();
            archive
                .by_name("dir/member.bin")
                .expect("member")
                .read_to_end(&mut out)
                .expect("read the member");
            assert!(out == member, "the member differs ({tail:?})");
        }
    });
}

#[test]
fn a_missing_key_is_not_found_and_names_the_key() {
    with_moto(|moto| {
        moto.create_bucket("present");
        let err = moto
            .builder()
            .open("s3://present/no/such key.bin")
            .expect_err("missing key");
        match &err {
            Error::NotFound { object, detail } => {
                assert_eq!(object, "s3://present/no/such key.bin");
                assert!(detail.contains("NoSuchKey"), "{detail}");
                assert!(detail.contains("`no/such key.bin`"), "{detail}");
            }
            other => panic!("{other:?}"),
        }
        assert_no_secrets(&err.to_string());
        assert_no_secrets(&format!("{err:?}"));
    });
}

#[test]
fn a_missing_bucket_is_not_found_and_names_the_bucket() {
    with_moto(|moto| {
        let err = moto
            .builder()
            .open("s3://no-such-bucket/key.bin")
            .expect_err("missing bucket");
        match &err {
            Error::NotFound { detail, .. } => {
                assert!(
                    detail.contains("bucket `no-such-bucket` does not exist"),
                    "{detail}"
                );
                assert!(detail.contains("NoSuchBucket"), "{detail}");
            }
            other => panic!("{other:?}"),
        }
        assert_no_secrets(&err.to_string());
    });
}

#[test]
fn an_object_overwritten_mid_read_fails_with_object_changed_and_never_mixes_versions() {
    with_moto(|moto| {
        let old = random_bytes(4 * MIB as usize, 3);
        let new = random_bytes(4 * MIB as usize, 4);
        moto.create_bucket("changing");
        moto.put("changing", "obj.bin", &old);
        let source = moto.builder().open("s3://changing/obj.bin").expect("open");
        let mut reader = small_blocks().build(source).expect("reader");
        let mut head = vec![0; 64 * KIB as usize];
        reader.read_exact(&mut head).expect("read the start");
        assert!(head == old[..head.len()]);

        moto.put("changing", "obj.bin", &new);
        // Far past anything prefetched (128 KiB at most): new requests.
        let far = 3 * MIB;
        reader.seek(SeekFrom::Start(far)).expect("seek");
        let mut buf = vec![0; 16 * KIB as usize];
        let err = reader.read_exact(&mut buf).expect_err("the object changed");
        match crate_error(err) {
            Error::ObjectChanged { object, .. } => assert_eq!(object, "s3://changing/obj.bin"),
            other => panic!("{other:?}"),
        }
        // Asked again, the reader fails again: it never serves the new bytes.
        let err = reader.read_exact(&mut buf).expect_err("still changed");
        assert!(matches!(crate_error(err), Error::ObjectChanged { .. }));
        reader.seek(SeekFrom::Start(0)).expect("seek back");
        let mut again = vec![0; 256 * KIB as usize];
        match reader.read_exact(&mut again) {
            // Served from what was read before the overwrite: the old bytes.
            Ok(()) => assert!(again == old[..again.len()], "bytes of two versions"),
            Err(err) => assert!(matches!(crate_error(err), Error::ObjectChanged { .. })),
        }
    });
}

#[test]
fn keys_with_awkward_characters_are_stored_and_read_under_their_names() {
    with_moto(|moto| {
        let keys = [
            "with space.txt",
            "plus+sign.bin",
            "percent%20literal",
            "question?mark",
            "hash#tag",
            "a&b=c;d,e",
            "deep/nested/path/ünïcødé 日本.bin",
            "tilde~and'quote(1)",
        ];
        moto.create_bucket("awkward");
        for (i, key) in keys.iter().enumerate() {
            moto.put("awkward", key, format!("object {i}: {key}").as_bytes());
        }
        let mut expected: Vec<String> = keys.iter().map(|k| (*k).to_owned()).collect();
        expected.sort();
        assert_eq!(moto.list_keys("awkward"), expected, "keys as stored");
        let builder = moto.builder();
        for (i, key) in keys.iter().enumerate() {
            let source = builder
                .open(&format!("s3://awkward/{key}"))
                .unwrap_or_else(|err| panic!("{key}: {err}"));
            let mut reader = PrefetchReader::new(source).expect("reader");
            let mut text = String::new();
            reader.read_to_string(&mut text).expect("read");
            assert_eq!(text, format!("object {i}: {key}"));
        }
    });
}

#[test]
fn a_presigned_url_is_read_through_plain_open_and_its_signature_never_shown() {
    with_moto(|moto| {
        let data = random_bytes(700_000, 5);
        moto.create_bucket("shared");
        moto.put("shared", "report.bin", &data);
        let url = moto.presign_get("shared", "report.bin");
        assert!(url.contains("X-Amz-Signature="));
        let mut reader = prefetch_reader::open(&url).expect("open the presigned URL");
        let mut out = Vec::new();
        reader.read_to_end(&mut out).expect("read");
        assert!(out == data);

        let missing = moto.presign_get("shared", "gone.bin");
        let secret = signature(&missing).expect("a signature");
        let err = prefetch_reader::open(&missing).expect_err("missing");
        assert!(matches!(err, Error::NotFound { .. }), "{err:?}");
        for message in [err.to_string(), format!("{err:?}")] {
            assert!(!message.contains(secret), "signature in: {message}");
            assert!(message.contains("X-Amz-Signature=REDACTED"), "{message}");
        }
    });
}

#[test]
fn open_finds_the_endpoint_credentials_and_region_in_the_environment() {
    with_moto(|moto| {
        let data = random_bytes(100_000, 6);
        moto.create_bucket("from-env");
        moto.put("from-env", "k.bin", &data);
        let endpoint = moto.endpoint();
        let _lock = env_lock();
        let env = EnvVars::set(&[
            ("AWS_ENDPOINT_URL", Some(endpoint.as_str())),
            ("AWS_ENDPOINT_URL_S3", None),
            ("AWS_ACCESS_KEY_ID", Some(ACCESS_KEY)),
            ("AWS_SECRET_ACCESS_KEY", Some(SECRET_KEY)),
            ("AWS_SESSION_TOKEN", None),
            ("AWS_REGION", Some("us-east-1")),
        ]);
        let result = prefetch_reader::open("s3://from-env/k.bin").and_then(|mut reader| {
            let mut out = Vec::new();
            reader.read_to_end(&mut out).map_err(crate_error)?;
            Ok(out)
        });
        drop(env);
        assert!(result.expect("read through the environment's endpoint") == data);
    });
}

// --- against the crate's test server -------------------------------------

fn test_server_builder(server: &TestServer) -> S3SourceBuilder {
    let mut builder = S3Source::builder();
    builder
        .endpoint(format!("http://{}", server.addr()))
        .region("us-east-1")
        .credentials(ACCESS_KEY, SECRET_KEY)
        .retry_policy(quick_retries());
    builder
}

fn signature(path: &str) -> Option<&str> {
    path.split(['?', '&'])
        .find_map(|pair| pair.strip_prefix("X-Amz-Signature="))
}

#[test]
fn head_refused_with_403_opens_with_a_signed_get_of_the_first_byte() {
    watchdog(WATCHDOG_SECS, || {
        let data = random_bytes(300_000, 8);
        let server = TestServer::builder()
            .object("/bucket/dir/key.bin", data.clone())
            .build()
            .expect("server");
        server.push_fault(Fault::HeadRefused(403));
        let source = test_server_builder(&server)
            .open("s3://bucket/dir/key.bin")
            .expect("open");
        assert_eq!(source.len(), data.len() as u64);
        assert!(source.is_pinned());
        let requests = server.requests();
        assert_eq!(
            (requests[0].method.as_str(), requests[0].status),
            ("HEAD", 403)
        );
        assert_eq!(requests[1].method, "GET");
        assert_eq!(requests[1].range.as_deref(), Some("bytes=0-0"));
        assert_eq!(requests[1].status, 206);
        for request in &requests[..2] {
            assert!(
                request
                    .path
                    .starts_with("/bucket/dir/key.bin?X-Amz-Algorithm=AWS4-HMAC-SHA256"),
                "{}",
                request.path
            );
        }
        // The signature covers the method: the GET is signed afresh.
        assert_ne!(signature(&requests[0].path), signature(&requests[1].path));

        let mut reader = PrefetchReader::new(source).expect("reader");
        let mut out = Vec::new();
        reader.read_to_end(&mut out).expect("read");
        assert!(out == data);
        let reads = &server.requests()[2..];
        assert!(!reads.is_empty());
        for request in reads {
            assert!(signature(&request.path).is_some(), "{}", request.path);
            assert!(request.if_match.is_some(), "unpinned: {request:?}");
        }
    });
}

#[test]
fn a_503_from_the_store_is_retried_with_a_fresh_signature() {
    watchdog(WATCHDOG_SECS, || {
        let data = random_bytes(50_000, 9);
        let server = TestServer::builder()
            .object("/bucket/k", data.clone())
            .build()
            .expect("server");
        let source = test_server_builder(&server)
            .open("s3://bucket/k")
            .expect("open");
        server.push_fault(Fault::Status(503));
        let mut reader = PrefetchReader::new(source).expect("reader");
        let mut out = Vec::new();
        reader.read_to_end(&mut out).expect("read");
        assert!(out == data);
        assert_eq!(reader.stats().retries, 1);
        let gets: Vec<_> = server
            .requests()
            .into_iter()
            .filter(|r| r.method == "GET")
            .collect();
        assert_eq!(gets[0].status, 503);
        assert!(gets.iter().all(|r| signature(&r.path).is_some()));
    });
}

#[test]
fn unsigned_requests_go_to_public_buckets_without_a_signature() {
    watchdog(WATCHDOG_SECS, || {
        let server = TestServer::builder()
            .object("/public/k", b"open data".to_vec())
            .build()
            .expect("server");
        let source = test_server_builder(&server)
            .anonymous()
            .open("s3://public/k")
            .expect("open");
        let mut reader = PrefetchReader::new(source).expect("reader");
        let mut text = String::new();
        reader.read_to_string(&mut text).expect("read");
        assert_eq!(text, "open data");
        for request in server.requests() {
            assert!(!request.path.contains('?'), "{}", request.path);
            assert!(!request.has_authorization);
        }
    });
}

#[test]
fn bad_s3_locations_are_invalid_locations() {
    for location in ["s3://", "s3:///key", "s3://bucket", "s3://bucket/"] {
        match prefetch_reader::open(location) {
            Err(Error::InvalidLocation {
                location: shown, ..
            }) => assert_eq!(shown, location),
            Err(other) => panic!("{location}: {other:?}"),
            Ok(_) => panic!("{location}: opened"),
        }
    }
}
