//! `HttpSource` against nginx, an independent server: reads, seeks, a zip
//! member and a 404. Each test starts its own nginx on a free loopback port
//! with a config it writes into a temporary folder, and stops it when done.
//!
//! Where nginx is not installed the tests print that they were skipped and
//! pass — except under `CI=true`, where a missing nginx fails them.

mod common;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::process::{free_port, program_or_skip, ServerProcess};
use common::{check_random_seeks, member_name, random_bytes, watchdog, zip_of_random_members};
use prefetch_reader::{Error, HttpSource, PrefetchReader, RangeSource};

/// Generous: each test takes well under a second once nginx is up.
const WATCHDOG_SECS: u64 = 120;

/// How long nginx may take to start listening.
const STARTUP: Duration = Duration::from_secs(20);

/// Where nginx is installed when its `sbin` folder is not on `PATH`.
const SBIN: [&str; 3] = ["/usr/sbin", "/usr/local/sbin", "/sbin"];

/// nginx, or `None` (after saying so) where it is missing outside CI.
fn nginx_or_skip(test: &str) -> Option<PathBuf> {
    program_or_skip("nginx", &SBIN, test)
}

fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| out.stdout.trim_ascii() == b"0")
}

/// An nginx serving the files of a temporary folder; killed on drop.
struct Nginx {
    server: ServerProcess,
    dir: tempfile::TempDir,
}

impl Nginx {
    /// Starts nginx over the files `(name, bytes)`.
    fn start(binary: &Path, files: &[(&str, &[u8])]) -> Nginx {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().join("root");
        std::fs::create_dir(&root).expect("root folder");
        for (name, bytes) in files {
            std::fs::write(root.join(name), bytes).expect("write a served file");
        }
        let port = free_port();
        let prefix = dir.path().display().to_string();
        let user = if running_as_root() { "user root;" } else { "" };
        let config = format!(
            "daemon off;
master_process off;
worker_processes 1;
{user}
pid {prefix}/nginx.pid;
error_log {prefix}/error.log info;
events {{ worker_connections 256; }}
http {{
    access_log {prefix}/access.log;
    client_body_temp_path {prefix}/client_body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    default_type application/octet-stream;
    sendfile on;
    keepalive_requests 100000;
    server {{
        listen 127.0.0.1:{port};
        root {root};
    }}
}}
",
            root = root.display()
        );
        let config_path = dir.path().join("nginx.conf");
        std::fs::write(&config_path, config).expect("write nginx.conf");
        let mut server = ServerProcess::spawn(
            "nginx",
            port,
            Command::new(binary)
                .arg("-p")
                .arg(dir.path())
                .arg("-e")
                .arg(dir.path().join("startup.log"))
                .arg("-c")
                .arg(&config_path)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped()),
        );
        if let Err(status) = server.wait_until_ready(STARTUP, Duration::from_millis(20), || true) {
            let mut stderr = String::new();
            if let Some(mut pipe) = server.child_mut().stderr.take() {
                let _ = pipe.read_to_string(&mut stderr);
            }
            let log = std::fs::read_to_string(dir.path().join("error.log")).unwrap_or_default();
            panic!("nginx exited ({status}): {stderr}\n{log}");
        }
        Nginx { server, dir }
    }

    fn url(&self, name: &str) -> String {
        format!("{}/{name}", self.server.endpoint())
    }

    fn access_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("access.log")).unwrap_or_default()
    }
}

#[test]
fn nginx_serves_whole_reads_and_random_seeks_byte_exact() {
    let Some(binary) = nginx_or_skip("nginx_serves_whole_reads_and_random_seeks_byte_exact") else {
        return;
    };
    watchdog(WATCHDOG_SECS, move || {
        let data = random_bytes(6 << 20, 1);
        let nginx = Nginx::start(&binary, &[("data.bin", &data)]);
        let source = HttpSource::open(&nginx.url("data.bin")).expect("open");
        assert_eq!(source.len(), data.len() as u64);
        // nginx sends a strong ETag for a static file: reads are pinned.
        assert!(source.is_pinned());
        assert!(source.etag().is_some_and(|etag| !etag.starts_with("W/")));
        let mut reader = PrefetchReader::builder()
            .concurrency(8)
            .build(source)
            .expect("reader");
        let mut out = Vec::new();
        reader.read_to_end(&mut out).expect("read");
        assert!(out == data, "the bytes read differ from the file");
        check_random_seeks(&mut reader, &data, 2, 30, 5000);
        assert_eq!(reader.stats().retries, 0);
        // Every GET was a range request answered with 206.
        let log = nginx.access_log();
        let gets: Vec<&str> = log.lines().filter(|l| l.contains("\"GET ")).collect();
        assert!(!gets.is_empty());
        assert!(gets.iter().all(|l| l.contains("\" 206 ")), "{log}");
    });
}

#[test]
fn nginx_zip_member_reads_through_the_reader() {
    let Some(binary) = nginx_or_skip("nginx_zip_member_reads_through_the_reader") else {
        return;
    };
    watchdog(WATCHDOG_SECS, move || {
        let (members, zipped) = zip_of_random_members(4, 300_000, 10);
        let nginx = Nginx::start(&binary, &[("archive.zip", &zipped)]);
        let reader = prefetch_reader::open(&nginx.url("archive.zip")).expect("open");
        let mut zip = zip::ZipArchive::new(reader).expect("read the central directory");
        assert_eq!(zip.len(), members.len());
        let mut member = zip.by_name(&member_name(2)).expect("member");
        let mut out = Vec::new();
        member.read_to_end(&mut out).expect("read member");
        assert!(out == members[2].1);
    });
}

#[test]
fn nginx_opens_with_the_tail_in_one_request_and_serves_the_directory_from_it() {
    let Some(binary) =
        nginx_or_skip("nginx_opens_with_the_tail_in_one_request_and_serves_the_directory_from_it")
    else {
        return;
    };
    watchdog(WATCHDOG_SECS, move || {
        let (members, zipped) = zip_of_random_members(50, 40_000, 50);
        let nginx = Nginx::start(&binary, &[("archive.zip", &zipped), ("tiny.bin", b"tiny")]);
        let reader = prefetch_reader::open_tail(&nginx.url("archive.zip"), 64 << 10).expect("open");
        assert_eq!(reader.len(), zipped.len() as u64);
        let mut zip = zip::ZipArchive::new(reader).expect("read the central directory");
        assert_eq!(zip.len(), members.len());
        let log = nginx.access_log();
        let lines: Vec<&str> = log.lines().collect();
        assert_eq!(
            lines.len(),
            1,
            "one request opened it and read the directory: {log}"
        );
        assert!(
            lines[0].contains("\"GET ") && lines[0].contains("\" 206 "),
            "{log}"
        );
        let mut out = Vec::new();
        zip.by_name(&member_name(7))
            .expect("member")
            .read_to_end(&mut out)
            .expect("read member");
        assert!(out == members[7].1);
        // An object shorter than the tail comes whole with the open.
        let mut tiny = prefetch_reader::open_tail(&nginx.url("tiny.bin"), 64 << 10).expect("open");
        let mut out = Vec::new();
        tiny.read_to_end(&mut out).expect("read");
        assert_eq!(out, b"tiny");
        assert_eq!(tiny.stats().requests, 1);
    });
}

#[test]
fn nginx_404_is_not_found_naming_the_url() {
    let Some(binary) = nginx_or_skip("nginx_404_is_not_found_naming_the_url") else {
        return;
    };
    watchdog(WATCHDOG_SECS, move || {
        let nginx = Nginx::start(&binary, &[("here.bin", b"present")]);
        let url = nginx.url("missing.bin");
        let err = HttpSource::open(&url).expect_err("missing");
        assert!(matches!(err, Error::NotFound { .. }), "{err:?}");
        let message = err.to_string();
        assert!(
            message.contains(&url) && message.contains("404"),
            "{message}"
        );
        // And a file that is there opens.
        let source = HttpSource::open(&nginx.url("here.bin")).expect("open");
        assert_eq!(source.len(), 7);
    });
}
