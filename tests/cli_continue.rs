//! `prefetch get --continue`: a download cut short leaves `FILE.part` and
//! its sidecar, the next run appends only the missing bytes while the
//! object is the same version, starts over (saying why) when it is not,
//! and leaves a complete FILE alone.

#![cfg(unix)]

use std::fs;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

mod common;

use common::cli::{entries, prefetch, run, stderr};
use prefetch_reader::testing::{pattern, Fault, TestServer};

const LEN: usize = 8 << 20;

fn get_continue(url: &str, out: &Path, extra: &[&str]) -> Output {
    run(prefetch()
        .args(["get", "-c", url, "-o"])
        .arg(out)
        .args(extra))
}

/// `get -c` started in the background, one request at a time, so a slow
/// server keeps it running while the test acts.
fn spawn_get_continue(url: &str, out: &Path, extra: &[&str], stderr: Stdio) -> Child {
    prefetch()
        .args(["get", "-c", url, "-o"])
        .arg(out)
        .args(["--concurrency", "1"])
        .args(extra)
        .stderr(stderr)
        .spawn()
        .expect("spawn")
}

fn part_len(out: &Path) -> u64 {
    fs::metadata(out.with_file_name("out.bin.part")).map_or(0, |m| m.len())
}

/// Waits until `FILE.part` holds at least `bytes`.
fn wait_for_part(out: &Path, bytes: u64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while part_len(out) < bytes {
        assert!(Instant::now() < deadline, "FILE.part never grew");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A `get -c` from a slow server that fails (403 on every request) once
/// some bytes are in `FILE.part`; the server is healed before returning.
/// Returns the folder, FILE and the bytes left in `FILE.part`.
fn failed_download(server: &TestServer) -> (tempfile::TempDir, std::path::PathBuf, u64) {
    let dir = tempfile::tempdir().expect("dir");
    let out = dir.path().join("out.bin");
    let child = spawn_get_continue(
        &server.url("/data.bin"),
        &out,
        &["--max-prefetch", "2M"],
        Stdio::piped(),
    );
    wait_for_part(&out, 64 << 10);
    server.set_persistent_fault(Some(Fault::Status(403)));
    let output = child.wait_with_output().expect("wait");
    server.set_persistent_fault(None);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("out.bin.part: kept"),
        "{}",
        stderr(&output)
    );
    assert_eq!(entries(dir.path()), ["out.bin.part", "out.bin.part.json"]);
    let done = part_len(&out);
    assert!(done > 0 && done < LEN as u64, "{done}");
    (dir, out, done)
}

fn slow_server(data: &[u8]) -> TestServer {
    TestServer::builder()
        .object("/data.bin", data.to_vec())
        .bandwidth(2 << 20)
        .build()
        .expect("server")
}

#[test]
fn a_failed_continue_keeps_its_bytes_and_the_next_run_fetches_only_the_rest() {
    let data = pattern(LEN);
    let server = slow_server(&data);
    let (dir, out, done) = failed_download(&server);
    server.reset_counters();

    let output = get_continue(&server.url("/data.bin"), &out, &[]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        stderr(&output).contains(&format!("resuming at {done} of {LEN} bytes")),
        "{}",
        stderr(&output)
    );
    assert!(fs::read(&out).expect("file") == data, "wrong bytes");
    assert_eq!(entries(dir.path()), ["out.bin"]);
    for request in server.requests().iter().filter(|r| r.method == "GET") {
        let range = request.range.as_deref().expect("a ranged GET");
        let start: u64 = range
            .trim_start_matches("bytes=")
            .split('-')
            .next()
            .and_then(|s| s.parse().ok())
            .expect("a range start");
        assert!(start >= done, "{range} fetched again below {done}");
    }
    assert!(
        server.bytes_sent() <= LEN as u64 - done,
        "{} bytes sent for the {} missing",
        server.bytes_sent(),
        LEN as u64 - done
    );
}

#[test]
fn continue_starts_over_when_the_object_changed() {
    let server = slow_server(&pattern(LEN));
    let (dir, out, _) = failed_download(&server);
    let changed: Vec<u8> = pattern(LEN + 1)[1..].to_vec();
    server.put_object("/data.bin", changed.clone());

    let output = get_continue(&server.url("/data.bin"), &out, &[]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("the object has changed since (another validator): starting over"),
        "{}",
        stderr(&output)
    );
    assert!(fs::read(&out).expect("file") == changed, "wrong bytes");
    assert_eq!(entries(dir.path()), ["out.bin"]);
}

#[test]
fn an_interrupted_continue_keeps_the_part_file_and_its_record() {
    let server = TestServer::builder()
        .object("/data.bin", pattern(LEN))
        .bandwidth(512 << 10)
        .build()
        .expect("server");
    let dir = tempfile::tempdir().expect("dir");
    let out = dir.path().join("out.bin");
    let mut child = spawn_get_continue(&server.url("/data.bin"), &out, &[], Stdio::null());
    wait_for_part(&out, 16 << 10);
    let sent = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(sent.success());
    let status = child.wait().expect("wait");
    assert_eq!(status.code(), Some(130));
    assert_eq!(entries(dir.path()), ["out.bin.part", "out.bin.part.json"]);
    let record: serde_json::Value =
        serde_json::from_slice(&fs::read(dir.path().join("out.bin.part.json")).expect("record"))
            .expect("JSON");
    assert_eq!(record["length"], LEN as u64);
    assert!(record["validator"].is_string(), "{record}");
}

#[test]
fn continue_leaves_a_complete_file_alone() {
    let server = slow_server(&pattern(LEN));
    let dir = tempfile::tempdir().expect("dir");
    let out = dir.path().join("out.bin");
    let mine = vec![7u8; LEN];
    fs::write(&out, &mine).expect("write");

    let output = get_continue(&server.url("/data.bin"), &out, &[]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("already there, of the expected"),
        "{}",
        stderr(&output)
    );
    assert_eq!(server.get_count(), 0, "bytes fetched for a complete file");
    assert!(
        fs::read(&out).expect("file") == mine,
        "the file was replaced"
    );
    assert_eq!(entries(dir.path()), ["out.bin"]);
}

#[test]
fn continue_replaces_a_file_of_another_length_keeping_its_mode() {
    use std::os::unix::fs::PermissionsExt;
    let data = pattern(100_000);
    let server = TestServer::builder()
        .object("/data.bin", data.clone())
        .build()
        .expect("server");
    let dir = tempfile::tempdir().expect("dir");
    let out = dir.path().join("out.bin");
    fs::write(&out, b"short").expect("write");
    fs::set_permissions(&out, fs::Permissions::from_mode(0o640)).expect("chmod");

    let output = get_continue(&server.url("/data.bin"), &out, &[]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("downloading it again"),
        "{}",
        stderr(&output)
    );
    assert!(fs::read(&out).expect("file") == data, "wrong bytes");
    let mode = fs::metadata(&out).expect("stat").permissions().mode();
    assert_eq!(mode & 0o777, 0o640);
    assert_eq!(entries(dir.path()), ["out.bin"]);
}

#[test]
fn continue_starts_over_when_the_source_has_no_validator() {
    let data = pattern(100_000);
    let server = TestServer::builder()
        .object("/data.bin", data.clone())
        .build()
        .expect("server");
    server.set_persistent_fault(Some(Fault::NoValidators));
    let dir = tempfile::tempdir().expect("dir");
    let out = dir.path().join("out.bin");
    // What a cut-short run against this server leaves: no validator recorded.
    fs::write(dir.path().join("out.bin.part"), vec![0u8; 5000]).expect("part");
    let record =
        serde_json::json!({"validator": null, "length": 100_000, "start": 0, "end": 100_000});
    fs::write(dir.path().join("out.bin.part.json"), record.to_string()).expect("record");

    let output = get_continue(&server.url("/data.bin"), &out, &[]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("no validator") && stderr(&output).contains("starting over"),
        "{}",
        stderr(&output)
    );
    assert!(fs::read(&out).expect("file") == data, "wrong bytes");
    assert_eq!(entries(dir.path()), ["out.bin"]);
}

#[test]
fn continue_starts_over_when_the_record_is_not_one() {
    let data = pattern(100_000);
    let server = TestServer::builder()
        .object("/data.bin", data.clone())
        .build()
        .expect("server");
    let dir = tempfile::tempdir().expect("dir");
    let out = dir.path().join("out.bin");
    fs::write(dir.path().join("out.bin.part"), vec![0u8; 5000]).expect("part");
    fs::write(
        dir.path().join("out.bin.part.json"),
        b"\x1b]0;x\x07 not json",
    )
    .expect("record");

    let output = get_continue(&server.url("/data.bin"), &out, &[]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("starting over"),
        "{}",
        stderr(&output)
    );
    assert!(fs::read(&out).expect("file") == data, "wrong bytes");
}

#[test]
fn continue_for_another_range_starts_over() {
    let data = pattern(LEN);
    let server = slow_server(&data);
    let (_dir, out, _) = failed_download(&server);

    let output = get_continue(&server.url("/data.bin"), &out, &["--range", "0-99999"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("another range of the object: starting over"),
        "{}",
        stderr(&output)
    );
    assert!(
        fs::read(&out).expect("file") == data[..100_000],
        "wrong bytes"
    );
}

#[test]
fn continue_refuses_stdout_and_a_symlinked_part_file() {
    let server = TestServer::builder()
        .object("/data.bin", pattern(1000))
        .build()
        .expect("server");
    let dir = tempfile::tempdir().expect("dir");

    let output = get_continue(&server.url("/data.bin"), Path::new("-"), &[]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("not stdout"),
        "{}",
        stderr(&output)
    );
    assert!(output.stdout.is_empty());

    let victim = dir.path().join("victim");
    fs::write(&victim, b"precious").expect("write");
    std::os::unix::fs::symlink(&victim, dir.path().join("out.bin.part")).expect("symlink");
    let output = get_continue(&server.url("/data.bin"), &dir.path().join("out.bin"), &[]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("not a regular file"),
        "{}",
        stderr(&output)
    );
    assert_eq!(fs::read(&victim).expect("victim"), b"precious");
}

#[test]
fn a_second_continue_of_the_same_file_is_refused_while_the_first_runs() {
    let data = pattern(LEN);
    let server = TestServer::builder()
        .object("/data.bin", data.clone())
        .bandwidth(1 << 20)
        .build()
        .expect("server");
    let dir = tempfile::tempdir().expect("dir");
    let out = dir.path().join("out.bin");
    let mut first = spawn_get_continue(&server.url("/data.bin"), &out, &[], Stdio::null());
    wait_for_part(&out, 16 << 10);
    let second = get_continue(&server.url("/data.bin"), &out, &[]);
    let _ = first.kill();
    let _ = first.wait();
    assert_eq!(second.status.code(), Some(1), "{}", stderr(&second));
    assert!(
        stderr(&second).contains("another download is writing it"),
        "{}",
        stderr(&second)
    );
    // The first one's bytes are intact: a third run completes them.
    let third = get_continue(&server.url("/data.bin"), &out, &[]);
    assert!(third.status.success(), "{}", stderr(&third));
    assert!(fs::read(&out).expect("file") == data, "wrong bytes");
}

#[test]
fn continue_to_a_folder_name_is_refused_and_leaves_nothing() {
    let server = TestServer::builder()
        .object("/data.bin", pattern(1000))
        .build()
        .expect("server");
    let dir = tempfile::tempdir().expect("dir");
    let output = get_continue(&server.url("/data.bin"), &dir.path().join("nd/"), &[]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("names a folder"),
        "{}",
        stderr(&output)
    );
    assert!(entries(dir.path()).is_empty(), "{:?}", entries(dir.path()));
}

#[test]
fn a_range_is_fetched_alone_not_read_ahead_past_its_end() {
    let data = pattern(LEN);
    let server = TestServer::builder()
        .object("/data.bin", data.clone())
        .build()
        .expect("server");
    let dir = tempfile::tempdir().expect("dir");
    for (range, bytes) in [
        ("0-99", &data[..100]),
        ("5000000-5999999", &data[5_000_000..6_000_000]),
    ] {
        server.reset_counters();
        let out = dir.path().join("range.bin");
        let output = run(prefetch()
            .args(["get", "--range", range, &server.url("/data.bin"), "-o"])
            .arg(&out));
        assert!(output.status.success(), "{}", stderr(&output));
        assert!(fs::read(&out).expect("file") == bytes);
        assert_eq!(server.bytes_sent(), bytes.len() as u64, "{range}");
        server.reset_counters();
        let output = run(prefetch().args(["cat", "--range", range, &server.url("/data.bin")]));
        assert!(output.status.success(), "{}", stderr(&output));
        assert!(output.stdout == bytes);
        assert_eq!(server.bytes_sent(), bytes.len() as u64, "cat {range}");
    }
}
