//! `gs://` objects: against `gcp-storage-emulator`, an independent GCS
//! emulator (integrity, seeks, a zip member, a missing object, awkward
//! names, `STORAGE_EMULATOR_HOST`), and against the crate's test server's
//! GCS JSON API emulation for what the emulator cannot show: generation
//! pinning (it ignores `generation`), bearer tokens, error bodies, retries.
//!
//! Each emulator test starts its own emulator on a free loopback port and
//! kills it when done. Where `gcp-storage-emulator` is not on `PATH` the
//! emulator tests print that they were skipped and pass — except under
//! `CI=true`, where a missing emulator fails them.

mod common;

use std::io::{self, Read};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::env::{env_lock, EnvVars};
use common::process::{free_port, program_or_skip, ServerProcess};
use common::{check_random_seeks, quick_retries, random_bytes, read_in_chunks, watchdog, zip_of};
use prefetch_reader::{Error, GcsSource, PrefetchReader, RangeSource, RetryPolicy};

/// Generous: the emulator serves one request at a time, in Python.
const WATCHDOG_SECS: u64 = 300;

/// How long the emulator may take to start listening.
const STARTUP: Duration = Duration::from_secs(30);

/// Percent-encodes everything outside the unreserved set (for the
/// emulator's upload `name=` parameter; written apart from the crate's).
fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// A name with every character that breaks a naive URL: `/`, `?`, `#`,
/// spaces, `+`, `%`, `&`, `=` and non-ASCII.
const AWKWARD_NAME: &str = "dir/sub dir/a+b%20c?d=1&e#f é☃.bin";

// --- the emulator ----------------------------------------------------------

/// The emulator, or `None` (after saying so) where it is missing outside CI.
fn emulator_or_skip(test: &str) -> Option<PathBuf> {
    program_or_skip("gcp-storage-emulator", &[], test)
}

/// A running `gcp-storage-emulator` (in memory) with one bucket; killed on
/// drop.
struct Emulator {
    server: ServerProcess,
    agent: ureq::Agent,
}

const BUCKET: &str = "test-bucket";

impl Emulator {
    fn start(binary: &PathBuf) -> Emulator {
        let port = free_port();
        let mut server = ServerProcess::spawn(
            "gcp-storage-emulator",
            port,
            Command::new(binary)
                .args(["start", "--host", "127.0.0.1", "--port"])
                .arg(port.to_string())
                .args(["--in-memory", "--quiet"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
        );
        if let Err(status) = server.wait_until_ready(STARTUP, Duration::from_millis(50), || true) {
            panic!("gcp-storage-emulator exited before listening: {status}");
        }
        let emulator = Emulator {
            server,
            agent: ureq::Agent::config_builder()
                .timeout_global(Some(Duration::from_secs(120)))
                .build()
                .new_agent(),
        };
        // Its port may answer a moment before its API does.
        let started = Instant::now();
        loop {
            let created = emulator
                .agent
                .post(format!("{}/storage/v1/b", emulator.endpoint()))
                .header("Content-Type", "application/json")
                .send(format!(r#"{{"name": "{BUCKET}"}}"#));
            match created {
                Ok(_) => break,
                Err(err) if started.elapsed() < STARTUP => {
                    eprintln!("creating the bucket: {err}; trying again");
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(err) => panic!("create the bucket: {err}"),
            }
        }
        emulator
    }

    fn endpoint(&self) -> String {
        self.server.endpoint()
    }

    /// Uploads `data` as `name` through the JSON API's media upload.
    fn upload(&self, name: &str, data: &[u8]) {
        self.agent
            .post(format!(
                "{}/upload/storage/v1/b/{BUCKET}/o?uploadType=media&name={}",
                self.endpoint(),
                encode(name)
            ))
            .header("Content-Type", "application/octet-stream")
            .send(data)
            .expect("upload");
    }

    /// Settings for the emulator: few connections (it serves one request
    /// at a time with a listen backlog of 5), patient timeouts and
    /// retries.
    fn source(&self, name: &str) -> Result<GcsSource, Error> {
        let mut retries = RetryPolicy::default();
        retries.max_attempts = 8;
        GcsSource::builder()
            .endpoint(self.endpoint())
            .read_timeout(Duration::from_secs(60))
            .retry_policy(retries)
            .open(&format!("gs://{BUCKET}/{name}"))
    }
}

/// CRC32C (Castagnoli), as GCS computes it.
fn crc32c(data: &[u8]) -> u32 {
    let mut table = [0u32; 256];
    for (i, entry) in table.iter_mut().enumerate() {
        let mut crc = i as u32;
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0x82F6_3B78
            } else {
                crc >> 1
            };
        }
        *entry = crc;
    }
    !data.iter().fold(!0u32, |crc, &b| {
        table[((crc ^ u32::from(b)) & 0xff) as usize] ^ (crc >> 8)
    })
}

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | u32::from(b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[test]
fn emulator_serves_a_20_mib_object_byte_exact_sequentially_and_at_random() {
    let Some(binary) =
        emulator_or_skip("emulator_serves_a_20_mib_object_byte_exact_sequentially_and_at_random")
    else {
        return;
    };
    watchdog(WATCHDOG_SECS, move || {
        let data = random_bytes(20 << 20, 1);
        let emulator = Emulator::start(&binary);
        emulator.upload("big.bin", &data);
        let source = emulator.source("big.bin").expect("open");
        assert_eq!(source.len(), data.len() as u64);
        assert_eq!(source.bucket(), BUCKET);
        assert_eq!(source.object(), "big.bin");
        assert!(source.generation() > 0);
        let crc = base64(&crc32c(&data).to_be_bytes());
        assert_eq!(source.crc32c(), Some(crc.as_str()));
        assert!(source.md5_hash().is_some());
        assert_eq!(source.location(), format!("gs://{BUCKET}/big.bin"));

        let mut reader = PrefetchReader::builder()
            .concurrency(3)
            .build(source)
            .expect("reader");
        let out = read_in_chunks(&mut reader, 1 << 20);
        assert!(out == data, "the bytes read differ from the object");

        check_random_seeks(&mut reader, &data, 2, 50, 1000);
        reader.close().expect("close");
    });
}

#[test]
fn emulator_zip_member_reads_through_the_reader() {
    let Some(binary) = emulator_or_skip("emulator_zip_member_reads_through_the_reader") else {
        return;
    };
    watchdog(WATCHDOG_SECS, move || {
        let members: Vec<(String, Vec<u8>)> = (0..4)
            .map(|i| (format!("part-{i}.bin"), random_bytes(300_000, 10 + i)))
            .collect();
        let zipped = zip_of(&members);
        let emulator = Emulator::start(&binary);
        emulator.upload("archives/data.zip", &zipped);
        let source = emulator.source("archives/data.zip").expect("open");
        let reader = PrefetchReader::builder()
            .concurrency(2)
            .build(source)
            .expect("reader");
        let mut zip = zip::ZipArchive::new(reader).expect("read the central directory");
        assert_eq!(zip.len(), members.len());
        let mut member = zip.by_name("part-2.bin").expect("member");
        let mut out = Vec::new();
        member.read_to_end(&mut out).expect("read member");
        assert!(out == members[2].1);
    });
}

#[test]
fn emulator_missing_object_is_not_found_naming_it() {
    let Some(binary) = emulator_or_skip("emulator_missing_object_is_not_found_naming_it") else {
        return;
    };
    watchdog(WATCHDOG_SECS, move || {
        let emulator = Emulator::start(&binary);
        emulator.upload("present.bin", b"here");
        let err = emulator.source("missing.bin").expect_err("missing");
        assert!(matches!(err, Error::NotFound { .. }), "{err:?}");
        let message = err.to_string();
        assert!(
            message.contains(&format!("gs://{BUCKET}/missing.bin")) && message.contains("404"),
            "{message}"
        );
        // As an io::Error, the kind and the crate's error survive.
        let io_err: io::Error = err.into();
        assert_eq!(io_err.kind(), io::ErrorKind::NotFound);
        assert!(matches!(Error::from_io(io_err), Error::NotFound { .. }));
        // The object next to it opens.
        assert_eq!(emulator.source("present.bin").expect("open").len(), 4);
    });
}

#[test]
fn emulator_serves_an_object_with_an_awkward_name() {
    let Some(binary) = emulator_or_skip("emulator_serves_an_object_with_an_awkward_name") else {
        return;
    };
    watchdog(WATCHDOG_SECS, move || {
        let data = random_bytes(300_000, 3);
        let emulator = Emulator::start(&binary);
        emulator.upload(AWKWARD_NAME, &data);
        // A name that differs only where a naive URL would cut it is
        // another object.
        emulator.upload("dir/sub dir/a+b%20c", b"decoy");
        let source = emulator.source(AWKWARD_NAME).expect("open");
        assert_eq!(source.object(), AWKWARD_NAME);
        assert_eq!(source.len(), data.len() as u64);
        let mut reader = PrefetchReader::builder()
            .concurrency(2)
            .build(source)
            .expect("reader");
        let mut out = Vec::new();
        reader.read_to_end(&mut out).expect("read");
        assert!(out == data);
    });
}

#[test]
fn emulator_is_found_through_storage_emulator_host_without_a_scheme() {
    let Some(binary) =
        emulator_or_skip("emulator_is_found_through_storage_emulator_host_without_a_scheme")
    else {
        return;
    };
    watchdog(WATCHDOG_SECS, move || {
        let emulator = Emulator::start(&binary);
        emulator.upload("env.bin", b"found through the environment");
        let _lock = env_lock();
        let host = format!("127.0.0.1:{}", emulator.server.port());
        let _env = EnvVars::set(&[("STORAGE_EMULATOR_HOST", Some(&host))]);
        let mut reader =
            prefetch_reader::open(&format!("gs://{BUCKET}/env.bin")).expect("open through gs://");
        let mut text = String::new();
        reader.read_to_string(&mut text).expect("read");
        assert_eq!(text, "found through the environment");
    });
}

// --- the test server's GCS JSON API emulation -------------------------------

#[cfg(feature = "testing")]
mod json_api {
    use super::common::small_blocks;
    use super::*;
    use prefetch_reader::testing::{Fault, RequestRecord, TestServer};
    use prefetch_reader::{FetchContext, MAX_TAIL};
    use std::io::{Seek, SeekFrom};

    fn server_with(name: &str, data: &[u8]) -> TestServer {
        TestServer::builder()
            .gcs_object(BUCKET, name, data.to_vec())
            .build()
            .expect("start the test server")
    }

    fn builder(server: &TestServer) -> prefetch_reader::GcsSourceBuilder {
        let mut builder = GcsSource::builder();
        builder
            .endpoint(server.gcs_endpoint())
            .retry_policy(quick_retries());
        builder
    }

    fn open(server: &TestServer, name: &str) -> Result<GcsSource, Error> {
        builder(server).open(&format!("gs://{BUCKET}/{name}"))
    }

    /// The server's first 404 answered a request for `generation`.
    fn assert_404_asked_for(server: &TestServer, generation: u64) {
        let failed = server
            .requests()
            .into_iter()
            .find(|r| r.status == 404)
            .expect("a 404");
        assert!(
            failed.path.ends_with(&format!("generation={generation}")),
            "{}",
            failed.path
        );
    }

    fn is_metadata(request: &RequestRecord) -> bool {
        request.path.starts_with("/storage/v1/")
    }

    #[test]
    fn reads_ask_for_the_generation_opened_with_the_name_encoded_whole() {
        watchdog(WATCHDOG_SECS, || {
            let data = random_bytes(1 << 20, 4);
            let server = server_with(AWKWARD_NAME, &data);
            let generation = server.gcs_generation(BUCKET, AWKWARD_NAME).expect("stored");
            let source = open(&server, AWKWARD_NAME).expect("open");
            assert_eq!(source.generation(), generation);
            assert_eq!(source.len(), data.len() as u64);
            let mut reader = small_blocks().build(source).expect("reader");
            let mut out = Vec::new();
            reader.read_to_end(&mut out).expect("read");
            assert!(out == data);

            let encoded = "dir%2Fsub%20dir%2Fa%2Bb%2520c%3Fd%3D1%26e%23f%20%C3%A9%E2%98%83.bin";
            let requests = server.requests();
            let (metadata, media): (Vec<_>, Vec<_>) = requests.iter().partition(|r| is_metadata(r));
            assert_eq!(metadata.len(), 1, "{requests:?}");
            assert_eq!(
                metadata[0].path,
                format!("/storage/v1/b/{BUCKET}/o/{encoded}")
            );
            assert!(media.len() > 1, "{requests:?}");
            let media_path = format!(
                "/download/storage/v1/b/{BUCKET}/o/{encoded}?alt=media&generation={generation}"
            );
            for request in media {
                assert_eq!(request.path, media_path);
                assert_eq!(request.status, 206);
                assert!(request.range.is_some());
                // The generation pins reads: no precondition header.
                assert_eq!(request.if_match, None);
            }
        });
    }

    #[test]
    fn an_object_replaced_mid_read_is_object_changed_and_never_mixed() {
        watchdog(WATCHDOG_SECS, || {
            let old = random_bytes(1 << 20, 5);
            let server = server_with("data.bin", &old);
            let first = server.gcs_generation(BUCKET, "data.bin").expect("stored");
            let source = open(&server, "data.bin").expect("open");
            assert!(source.generation() == first);
            let mut reader = small_blocks().build(source).expect("reader");
            let mut head = vec![0; 64 << 10];
            reader
                .read_exact(&mut head)
                .expect("read before the change");
            assert!(head == old[..head.len()]);

            let second = server.replace_gcs_object(BUCKET, "data.bin", random_bytes(1 << 20, 6));
            assert_ne!(second, first);
            let mut rest = Vec::new();
            let err = reader
                .read_to_end(&mut rest)
                .expect_err("the object changed");
            let offset = head.len() + rest.len();
            assert!(rest == old[head.len()..offset], "bytes of another version");
            let err = Error::from_io(err);
            assert!(matches!(err, Error::ObjectChanged { .. }), "{err:?}");
            let message = err.to_string();
            assert!(
                message.contains(&format!("gs://{BUCKET}/data.bin"))
                    && message.contains(&format!("generation {first}"))
                    && message.contains("404"),
                "{message}"
            );
            // The request that failed asked for the old generation.
            assert_404_asked_for(&server, first);
        });
    }

    #[test]
    fn a_response_naming_another_generation_is_object_changed() {
        watchdog(WATCHDOG_SECS, || {
            let data = random_bytes(100_000, 7);
            let server = server_with("data.bin", &data);
            let source = open(&server, "data.bin").expect("open");
            server.push_fault(Fault::WrongGeneration);
            let mut buf = vec![0; 1000];
            let err = source
                .read_at(0, &mut buf, &FetchContext::new())
                .expect_err("another generation");
            assert!(matches!(err, Error::ObjectChanged { .. }), "{err:?}");
            assert!(
                err.to_string().contains("x-goog-generation is now"),
                "{err}"
            );
            // Not retried: a changed object does not change back.
            assert_eq!(
                server.requests().iter().filter(|r| !is_metadata(r)).count(),
                1
            );
        });
    }

    #[test]
    fn requests_carry_the_bearer_token_and_messages_never_show_it() {
        watchdog(WATCHDOG_SECS, || {
            let token = "ya29.secret-token-123";
            let data = random_bytes(200_000, 8);
            let server = TestServer::builder()
                .gcs_object(BUCKET, "private.bin", data.clone())
                .gcs_token(token)
                .build()
                .expect("start the test server");
            let mut with_token = builder(&server);
            with_token.bearer_token(token);
            let source = with_token
                .open(&format!("gs://{BUCKET}/private.bin"))
                .expect("open with the token");
            assert!(!format!("{source:?} {with_token:?}").contains(token));
            let mut buf = vec![0; 1000];
            source
                .read_at(500, &mut buf, &FetchContext::new())
                .expect("read with the token");
            assert!(buf == data[500..1500]);
            let requests = server.requests();
            assert_eq!(requests.len(), 2);
            assert!(requests.iter().all(|r| r.has_authorization), "{requests:?}");

            // A changed object's message does not show it either.
            server.replace_gcs_object(BUCKET, "private.bin", b"new".to_vec());
            let err = source
                .read_at(0, &mut buf, &FetchContext::new())
                .expect_err("changed");
            assert!(matches!(err, Error::ObjectChanged { .. }), "{err:?}");
            assert!(!err.to_string().contains(token), "{err}");

            // A wrong token is 401 with the server's message, not retried.
            server.reset_counters();
            let wrong = "ya29.wrong-token-456";
            let err = builder(&server)
                .bearer_token(wrong)
                .open(&format!("gs://{BUCKET}/private.bin"))
                .expect_err("wrong token");
            assert!(
                matches!(err, Error::PermissionDenied { status: 401, .. }),
                "{err:?}"
            );
            let message = err.to_string();
            assert!(message.contains("Anonymous caller"), "{message}");
            assert!(
                !message.contains(wrong) && !message.contains("secret"),
                "{message}"
            );
            assert_eq!(server.request_count(), 1);
        });
    }

    #[test]
    fn a_missing_object_is_not_found_with_the_gcs_message() {
        watchdog(WATCHDOG_SECS, || {
            let server = server_with("present.bin", b"here");
            let err = open(&server, "absent.bin").expect_err("missing");
            assert!(matches!(err, Error::NotFound { .. }), "{err:?}");
            let message = err.to_string();
            assert!(
                message.contains(&format!("gs://{BUCKET}/absent.bin"))
                    && message.contains(&format!("No such object: {BUCKET}/absent.bin")),
                "{message}"
            );
            assert_eq!(server.request_count(), 1, "a 404 is not retried");
        });
    }

    #[test]
    fn overload_and_server_errors_are_retried_at_open_and_on_reads() {
        watchdog(WATCHDOG_SECS, || {
            let data = random_bytes(100_000, 9);
            let server = server_with("data.bin", &data);
            server.push_fault(Fault::Status(503));
            server.push_fault(Fault::TooManyRequests {
                retry_after_secs: 0,
            });
            let source = open(&server, "data.bin").expect("open after retries");
            assert_eq!(server.request_count(), 3);
            server.push_fault(Fault::Status(500));
            server.push_fault(Fault::ResetMidBody { after: 100 });
            let ctx = FetchContext::new();
            let mut buf = vec![0; 50_000];
            source
                .read_at(1000, &mut buf, &ctx)
                .expect("read after retries");
            assert!(buf == data[1000..51_000]);
            assert_eq!(server.request_count(), 6);
            let last = server.requests().pop().expect("a request");
            // The read resumed where the broken body stopped.
            assert_eq!(last.range.as_deref(), Some("bytes=1100-50999"));
        });
    }

    #[test]
    fn a_deleted_object_is_object_changed_after_open() {
        watchdog(WATCHDOG_SECS, || {
            let server = server_with("data.bin", &random_bytes(10_000, 10));
            let source = open(&server, "data.bin").expect("open");
            assert!(server.remove_gcs_object(BUCKET, "data.bin"));
            let mut buf = vec![0; 100];
            let err = source
                .read_at(0, &mut buf, &FetchContext::new())
                .expect_err("deleted");
            assert!(matches!(err, Error::ObjectChanged { .. }), "{err:?}");
        });
    }

    #[test]
    fn the_environment_names_the_emulator_and_the_token() {
        watchdog(WATCHDOG_SECS, || {
            let data = b"through the environment".to_vec();
            let server = server_with("env.bin", &data);
            let location = format!("gs://{BUCKET}/env.bin");
            let _lock = env_lock();
            // With a scheme and a trailing slash, and a token in the
            // environment: the emulator is used, anonymously.
            let endpoint = format!("{}/", server.gcs_endpoint());
            let env = EnvVars::set(&[
                ("STORAGE_EMULATOR_HOST", Some(&endpoint)),
                ("GOOGLE_OAUTH_ACCESS_TOKEN", Some("ya29.from-env")),
            ]);
            let mut reader = prefetch_reader::open(&location).expect("open");
            let mut out = Vec::new();
            reader.read_to_end(&mut out).expect("read");
            assert_eq!(out, data);
            let requests = server.requests();
            assert!(
                requests.iter().all(|r| !r.has_authorization),
                "{requests:?}"
            );
            drop(env);

            // The builder's endpoint wins over the variable, and the
            // environment's token is sent there.
            server.reset_counters();
            let _env = EnvVars::set(&[
                ("STORAGE_EMULATOR_HOST", Some("127.0.0.1:1")),
                ("GOOGLE_OAUTH_ACCESS_TOKEN", Some("ya29.from-env")),
            ]);
            let source = open(&server, "env.bin").expect("open at the builder's endpoint");
            assert_eq!(source.endpoint(), server.gcs_endpoint());
            let requests = server.requests();
            assert!(requests.iter().all(|r| r.has_authorization), "{requests:?}");

            // A variable that is not an endpoint is an invalid setting
            // naming it.
            let _env = EnvVars::set(&[("STORAGE_EMULATOR_HOST", Some("ftp://host"))]);
            let err = GcsSource::open(&location).expect_err("bad variable");
            assert!(
                matches!(
                    err,
                    Error::InvalidConfig {
                        setting: "STORAGE_EMULATOR_HOST",
                        ..
                    }
                ),
                "{err:?}"
            );
        });
    }

    #[test]
    fn incomplete_locations_are_invalid_before_any_request() {
        let server = server_with("data.bin", b"x");
        for (location, missing) in [
            ("gs://", "no bucket name"),
            ("gs:///obj", "no bucket name"),
            ("gs://bucket", "no object name"),
            ("gs://bucket/", "no object name"),
        ] {
            let err = builder(&server).open(location).expect_err(location);
            match &err {
                Error::InvalidLocation { reason, .. } => {
                    assert!(reason.contains(missing), "{location}: {reason}")
                }
                other => panic!("{location}: {other:?}"),
            }
        }
        assert_eq!(server.request_count(), 0);
    }
    // --- opening with the tail -------------------------------------------

    const TAIL: u64 = 64 * 1024;

    fn open_with_tail(server: &TestServer, name: &str) -> Result<GcsSource, Error> {
        builder(server)
            .tail(TAIL)
            .open(&format!("gs://{BUCKET}/{name}"))
    }

    /// The media path of `name` without a generation (the tail's request).
    fn latest_media_path(name: &str) -> String {
        format!("/download/storage/v1/b/{BUCKET}/o/{name}?alt=media")
    }

    #[test]
    fn opening_with_a_tail_and_reading_inside_it_is_one_request() {
        watchdog(WATCHDOG_SECS, || {
            let data = random_bytes(1 << 20, 20);
            let server = server_with("data.bin", &data);
            let generation = server.gcs_generation(BUCKET, "data.bin").expect("stored");
            let source = open_with_tail(&server, "data.bin").expect("open");
            assert_eq!(source.len(), data.len() as u64);
            assert_eq!(source.generation(), generation);
            let crc = base64(&crc32c(&data).to_be_bytes());
            assert_eq!(source.crc32c(), Some(crc.as_str()), "from x-goog-hash");
            assert_eq!((source.md5_hash(), source.etag()), (None, None));
            assert_eq!(source.requests_at_open(), 1);
            let requests = server.requests();
            assert_eq!(requests.len(), 1, "{requests:?}");
            assert_eq!(requests[0].path, latest_media_path("data.bin"));
            assert_eq!(requests[0].range, Some(format!("bytes=-{TAIL}")));

            let mut reader = PrefetchReader::new(source).expect("reader");
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
            assert_eq!(server.request_count(), 1, "the tail served both reads");
            let stats = reader.stats();
            assert_eq!(stats.requests, server.request_count() as u64);
            assert_eq!(stats.bytes_fetched, server.bytes_sent());

            // Outside the tail, reads ask for the generation the tail saw.
            let mut head = [0; 100];
            reader.seek(SeekFrom::Start(0)).expect("seek");
            reader.read_exact(&mut head).expect("read the head");
            assert_eq!(head[..], data[..100]);
            let requests = server.requests();
            assert_eq!(requests.len(), 2, "{requests:?}");
            assert_eq!(
                requests[1].path,
                format!("{}&generation={generation}", latest_media_path("data.bin"))
            );
            let stats = reader.stats();
            assert_eq!(stats.requests, server.request_count() as u64);
            assert_eq!(stats.bytes_fetched, server.bytes_sent());
        });
    }

    #[test]
    fn reads_after_a_tail_open_are_pinned_to_the_generation_the_tail_saw() {
        watchdog(WATCHDOG_SECS, || {
            let old = random_bytes(300_000, 21);
            let server = server_with("data.bin", &old);
            let first = server.gcs_generation(BUCKET, "data.bin").expect("stored");
            let source = open_with_tail(&server, "data.bin").expect("open");
            assert_eq!(source.generation(), first);
            server.replace_gcs_object(BUCKET, "data.bin", random_bytes(300_000, 22));

            // The tail is of the generation opened: still served.
            let ctx = FetchContext::new();
            let mut end = vec![0; 1000];
            let at = old.len() - 1000;
            source
                .read_at(at as u64, &mut end, &ctx)
                .expect("inside the tail");
            assert!(end[..] == old[at..]);
            assert_eq!(server.request_count(), 1);

            let mut reader = PrefetchReader::new(source).expect("reader");
            let err = reader.read(&mut [0; 10]).expect_err("the object changed");
            let err = Error::from_io(err);
            assert!(matches!(err, Error::ObjectChanged { .. }), "{err:?}");
            assert!(
                err.to_string().contains(&format!("generation {first}")),
                "{err}"
            );
            assert_404_asked_for(&server, first);
        });
    }

    #[test]
    fn an_object_shorter_than_the_tail_is_held_whole_from_the_open() {
        watchdog(WATCHDOG_SECS, || {
            for len in [1, 1000, TAIL as usize] {
                let data = random_bytes(len, 23);
                let server = server_with("small.bin", &data);
                let source = open_with_tail(&server, "small.bin").expect("open");
                assert_eq!(source.len(), len as u64);
                let mut reader = PrefetchReader::new(source).expect("reader");
                let mut out = Vec::new();
                reader.read_to_end(&mut out).expect("read");
                assert!(out == data, "{len} bytes");
                assert_eq!(server.request_count(), 1, "{len} bytes");
                assert_eq!(reader.stats().requests, 1, "{len} bytes");
                assert_eq!(reader.stats().bytes_fetched, server.bytes_sent());
            }
        });
    }

    #[test]
    fn an_empty_object_opens_with_a_tail_in_one_request() {
        watchdog(WATCHDOG_SECS, || {
            let server = server_with("empty.bin", &[]);
            let generation = server.gcs_generation(BUCKET, "empty.bin").expect("stored");
            let source = open_with_tail(&server, "empty.bin").expect("open");
            assert_eq!(source.len(), 0);
            assert_eq!(source.generation(), generation);
            let mut reader = PrefetchReader::new(source).expect("reader");
            assert_eq!(reader.read(&mut [0; 10]).expect("read"), 0);
            assert_eq!(server.request_count(), 1);
        });
    }

    #[test]
    fn a_tail_of_zero_or_over_the_limit_is_invalid_config_before_any_request() {
        let server = server_with("data.bin", b"hello");
        for n in [0, MAX_TAIL + 1, u64::MAX] {
            let err = builder(&server)
                .tail(n)
                .open(&format!("gs://{BUCKET}/data.bin"))
                .expect_err("invalid");
            assert!(
                matches!(
                    err,
                    Error::InvalidConfig {
                        setting: "tail",
                        ..
                    }
                ),
                "{n}: {err:?}"
            );
        }
        assert_eq!(server.request_count(), 0);
    }

    #[test]
    fn a_zip_directory_is_read_with_the_tail_open_in_one_request() {
        watchdog(WATCHDOG_SECS, || {
            let members: Vec<(String, Vec<u8>)> = (0..100)
                .map(|i| (format!("m{i:03}.bin"), random_bytes(20_000, 100 + i)))
                .collect();
            let archive = zip_of(&members);
            let server = server_with("a.zip", &archive);
            let _lock = env_lock();
            let endpoint = server.gcs_endpoint();
            let _env = EnvVars::set(&[("STORAGE_EMULATOR_HOST", Some(&endpoint))]);
            // Through `open_tail`, which passes the tail to the GCS builder.
            let reader =
                prefetch_reader::open_tail(&format!("gs://{BUCKET}/a.zip"), TAIL).expect("open");
            let mut zip = zip::ZipArchive::new(reader).expect("zip");
            assert_eq!(zip.len(), members.len());
            assert_eq!(server.request_count(), 1, "the open brought the directory");
            let mut out = Vec::new();
            zip.by_name("m042.bin")
                .expect("member")
                .read_to_end(&mut out)
                .expect("read the member");
            assert!(out == members[42].1);
        });
    }

    #[test]
    fn a_tail_answer_naming_no_generation_falls_back_to_the_metadata() {
        watchdog(WATCHDOG_SECS, || {
            let data = random_bytes(200_000, 24);
            let server = server_with("data.bin", &data);
            let generation = server.gcs_generation(BUCKET, "data.bin").expect("stored");
            server.push_fault(Fault::NoGeneration);
            let source = open_with_tail(&server, "data.bin").expect("open");
            assert_eq!(source.generation(), generation);
            assert_eq!(source.len(), data.len() as u64);
            assert!(source.etag().is_some(), "the metadata's");
            assert_eq!(source.requests_at_open(), 2);
            let requests = server.requests();
            assert_eq!(requests.len(), 2, "{requests:?}");
            assert_eq!(requests[0].path, latest_media_path("data.bin"));
            assert!(is_metadata(&requests[1]), "{requests:?}");
            // The tail given up on is not kept: a read of the end asks.
            let mut reader = PrefetchReader::new(source).expect("reader");
            let mut out = Vec::new();
            reader.read_to_end(&mut out).expect("read");
            assert!(out == data);
            assert_eq!(reader.stats().requests, server.request_count() as u64);
        });
    }

    #[test]
    fn a_compressed_object_is_refused_at_a_tail_open() {
        watchdog(WATCHDOG_SECS, || {
            let server = server_with("data.bin", &random_bytes(200_000, 25));
            for fault in [Fault::StoredGzip, Fault::Gzip] {
                server.reset_counters();
                server.push_fault(fault.clone());
                let err = open_with_tail(&server, "data.bin").expect_err("compressed");
                assert!(
                    matches!(err, Error::RangeNotSupported { .. }),
                    "{fault:?}: {err:?}"
                );
                assert!(err.to_string().contains("gzip"), "{fault:?}: {err}");
                assert_eq!(server.request_count(), 1, "{fault:?}: not retried");
            }
        });
    }

    #[test]
    fn a_missing_object_is_not_found_at_a_tail_open() {
        watchdog(WATCHDOG_SECS, || {
            let server = server_with("present.bin", b"here");
            let err = open_with_tail(&server, "absent.bin").expect_err("missing");
            assert!(matches!(err, Error::NotFound { .. }), "{err:?}");
            assert!(
                err.to_string()
                    .contains(&format!("No such object: {BUCKET}/absent.bin")),
                "{err}"
            );
            assert_eq!(server.request_count(), 1, "a 404 is not retried");
        });
    }

    #[test]
    fn retries_of_a_tail_open_count_among_its_requests() {
        watchdog(WATCHDOG_SECS, || {
            let data = random_bytes(200_000, 26);
            let server = server_with("data.bin", &data);
            server.push_fault(Fault::ResetMidBody { after: 10_000 });
            server.push_fault(Fault::ResetMidBody { after: 30_000 });
            let source = open_with_tail(&server, "data.bin").expect("open after retries");
            assert_eq!(source.requests_at_open(), 3);
            let mut reader = PrefetchReader::new(source).expect("reader");
            let mut end = vec![0; TAIL as usize];
            reader.seek(SeekFrom::End(-(TAIL as i64))).expect("seek");
            reader.read_exact(&mut end).expect("read the tail");
            assert!(end[..] == data[data.len() - TAIL as usize..]);
            assert_eq!(server.request_count(), 3);
            let stats = reader.stats();
            assert_eq!(stats.requests, 3);
            // The broken attempts' bytes count as fetched.
            assert_eq!(stats.bytes_fetched, server.bytes_sent());
        });
    }
}
