//! `prefetch` timeouts and `get`'s summary, run as a user runs them: the
//! built binary, its exit codes and stderr.

#![cfg(feature = "cli")]

use std::fs;
use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

mod common;

use common::cli::{assert_error, prefetch, run, stderr, TIMEOUT};
use prefetch_reader::testing::{pattern, TestServer};

/// A server that accepts every connection and never sends a byte: each
/// socket is held open until the test ends.
struct SilentServer {
    url: String,
    accepted: Arc<Mutex<Vec<TcpStream>>>,
}

impl SilentServer {
    fn start() -> SilentServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!(
            "http://{}/data.bin",
            listener.local_addr().expect("local_addr")
        );
        let accepted = Arc::new(Mutex::new(Vec::new()));
        let held = Arc::clone(&accepted);
        thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                held.lock().expect("lock").push(stream);
            }
        });
        SilentServer { url, accepted }
    }

    fn connections(&self) -> usize {
        self.accepted.lock().expect("lock").len()
    }
}

#[test]
fn a_server_that_never_answers_times_out_after_the_read_timeout() {
    let server = SilentServer::start();
    let output = run(prefetch().args(["cat", "--read-timeout", "0.5", &server.url]));
    let line = assert_error(&output);
    assert!(line.contains("timed out"), "{line}");
    assert!(line.contains("500ms"), "the limit is named: {line}");
    assert!(output.stdout.is_empty());
    assert!(server.connections() >= 1);
}

#[test]
fn get_with_a_short_read_timeout_times_out_and_leaves_no_file() {
    let server = SilentServer::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("out.bin");
    let output = run(prefetch()
        .args(["get", "--read-timeout", "0.5", "--connect-timeout", "2"])
        .arg(&server.url)
        .arg("-o")
        .arg(&out));
    let line = assert_error(&output);
    assert!(line.contains("timed out"), "{line}");
    assert_eq!(fs::read_dir(dir.path()).expect("read_dir").count(), 0);
}

#[test]
fn timeouts_that_are_not_positive_numbers_are_refused() {
    for flag in ["--read-timeout", "--connect-timeout"] {
        for value in ["0", "-1", "abc", "inf", "NaN", ""] {
            let output = run(prefetch().args(["cat", flag, value, "http://127.0.0.1:9/x"]));
            let text = stderr(&output);
            assert_eq!(output.status.code(), Some(2), "{flag} {value:?}: {text}");
            assert!(text.contains(flag), "{flag} {value:?}: {text}");
            assert!(output.stdout.is_empty());
        }
    }
}

#[test]
fn timeouts_take_fractions_of_a_second() {
    let data = pattern(100_000);
    let server = TestServer::builder()
        .object("/data.bin", data.clone())
        .build()
        .expect("server");
    let output = run(prefetch().args([
        "cat",
        "--connect-timeout",
        "2.5",
        "--read-timeout",
        "0.75",
        &server.url("/data.bin"),
    ]));
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(output.stdout, data);
}

#[test]
fn every_reading_command_documents_both_timeouts_with_their_defaults() {
    for command in ["get", "cat", "bench"] {
        let output = run(prefetch().args([command, "--help"]));
        assert_eq!(output.status.code(), Some(0), "{command}");
        let help = String::from_utf8_lossy(&output.stdout).into_owned();
        for (flag, default) in [
            ("--connect-timeout <SECS>", "[default: 10]"),
            ("--read-timeout <SECS>", "[default: 30]"),
        ] {
            let at = help
                .find(flag)
                .unwrap_or_else(|| panic!("{command}: no {flag}: {help}"));
            let entry = &help[at..];
            let entry = &entry[..entry[2..].find("\n  -").map_or(entry.len(), |i| i + 2)];
            assert!(entry.contains(default), "{command} {flag}: {entry}");
        }
    }
}

/// The number before `word` in `line`: `… 123 bytes written …` → 123.
fn figure_before(line: &str, word: &str) -> u64 {
    let at = line
        .find(word)
        .unwrap_or_else(|| panic!("no `{word}` in {line}"));
    line[..at]
        .split_whitespace()
        .last()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no figure before `{word}` in {line}"))
}

#[test]
fn the_summary_of_get_gives_bytes_written_and_received() {
    let data = pattern(3 * 1024 * 1024 + 12_345);
    let server = TestServer::builder()
        .object("/data.bin", data.clone())
        .build()
        .expect("server");
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("out.bin");
    let output = run(prefetch()
        .args(["get", "--concurrency", "4", &server.url("/data.bin"), "-o"])
        .arg(&out));
    let text = stderr(&output);
    assert_eq!(output.status.code(), Some(0), "{text}");
    assert_eq!(fs::read(&out).expect("read output"), data);

    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 1, "one summary line: {text}");
    let line = lines[0];
    assert!(line.starts_with(&format!("{}: ", out.display())), "{line}");
    let size = data.len() as u64;
    assert_eq!(figure_before(line, "bytes written"), size, "{line}");
    assert_eq!(figure_before(line, "bytes received"), size, "{line}");
    assert!(figure_before(line, "requests") >= 1, "{line}");
    assert_eq!(figure_before(line, "retries"), 0, "{line}");
    assert!(line.contains(" MiB/s, "), "{line}");
}

/// Runs `command` until its stderr shows `needle` or it ends (or
/// [`TIMEOUT`] passes), then kills it; returns the stderr seen.
fn stderr_until(command: &mut Command, needle: &str) -> String {
    let mut child = command
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn prefetch");
    let seen = Arc::new(Mutex::new(String::new()));
    let mut pipe = child.stderr.take().expect("stderr");
    let sink = Arc::clone(&seen);
    let drain = thread::spawn(move || {
        let mut chunk = [0u8; 4096];
        while let Ok(n @ 1..) = pipe.read(&mut chunk) {
            sink.lock()
                .expect("lock")
                .push_str(&String::from_utf8_lossy(&chunk[..n]));
        }
    });
    let deadline = Instant::now() + TIMEOUT;
    while !seen.lock().expect("lock").contains(needle)
        && child.try_wait().expect("try_wait").is_none()
        && Instant::now() < deadline
    {
        thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    drain.join().expect("drain");
    let text = seen.lock().expect("lock").clone();
    text
}

#[test]
fn a_silent_server_at_open_is_reported_at_v() {
    let server = SilentServer::start();
    let url = format!("{}?token=SECRET-T", server.url);
    let text = stderr_until(
        prefetch().args(["cat", "-v", "--read-timeout", "60", &url]),
        "no answer to the open after 5 s",
    );
    assert!(
        text.contains("no answer to the open after 5 s"),
        "nothing said while waiting: {text}"
    );
    assert!(text.contains("read timeout 60 s"), "{text}");
    assert!(!text.contains("SECRET-T"), "a secret in the log: {text}");
}

#[test]
fn a_server_that_stalls_mid_object_is_reported_at_v() {
    let data = pattern(1 << 20);
    let server = TestServer::builder()
        .object("/data.bin", data.clone())
        .build()
        .expect("server");
    server.push_fault(prefetch_reader::testing::Fault::Stall(Duration::from_secs(
        7,
    )));
    let dir = tempfile::tempdir().expect("dir");
    let out = dir.path().join("out.bin");
    let output = run(prefetch()
        .args(["get", "-v", &server.url("/data.bin"), "-o"])
        .arg(&out));
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stderr(&output);
    assert!(
        // The 16 bytes sent before the stall were handed over already.
        text.contains("waited 5 s for bytes 16.."),
        "nothing said while the server stalled: {text}"
    );
    assert!(fs::read(&out).expect("file") == data);
}
