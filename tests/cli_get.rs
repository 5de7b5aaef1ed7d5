//! What `prefetch get -o PATH` writes: FIFOs and devices in place, regular
//! files replaced keeping their mode, symlinks written through, `-` for
//! stdout, and no temporary file left by an interrupt.

#![cfg(unix)]

use std::fs;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

mod common;

use common::cli::entries;
use prefetch_reader::testing::{pattern, TestServer};

fn server(data: &[u8]) -> TestServer {
    TestServer::builder()
        .object("/data.bin", data.to_vec())
        .build()
        .expect("server")
}

fn get(url: &str, out: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_prefetch"))
        .args(["get", url, "-o"])
        .arg(out)
        .output()
        .expect("run prefetch")
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| out.stdout.starts_with(b"0\n"))
}

#[test]
fn a_fifo_is_written_in_place_not_replaced() {
    let data = pattern(200_000);
    let server = server(&data);
    let dir = tempfile::tempdir().expect("dir");
    let fifo = dir.path().join("pipe");
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("mkfifo")
        .success());
    let copy = dir.path().join("copy.bin");
    let reader = Command::new("sh")
        .arg("-c")
        .arg(format!("cat '{}' > '{}'", fifo.display(), copy.display()))
        .spawn()
        .expect("cat");
    let output = get(&server.url("/data.bin"), &fifo);
    assert!(output.status.success(), "{output:?}");
    let status = reader.wait_with_output().expect("cat ends").status;
    assert!(status.success());
    assert!(fs::read(&copy).expect("copy") == data);
    let kind = fs::symlink_metadata(&fifo).expect("stat").file_type();
    assert!(kind.is_fifo(), "the FIFO was replaced");
    assert_eq!(entries(dir.path()), ["copy.bin", "pipe"]);
}

#[test]
fn a_device_node_is_written_in_place_not_replaced() {
    if !is_root() {
        eprintln!("not root: mknod needs root, skipping");
        return;
    }
    let server = server(&pattern(100_000));
    let dir = tempfile::tempdir().expect("dir");
    let null = dir.path().join("null");
    let made = Command::new("mknod")
        .arg(&null)
        .args(["c", "1", "3"])
        .status()
        .expect("mknod");
    if !made.success() {
        eprintln!("mknod refused here (a container without the capability): skipping");
        return;
    }
    let output = get(&server.url("/data.bin"), &null);
    assert!(output.status.success(), "{output:?}");
    let kind = fs::symlink_metadata(&null).expect("stat").file_type();
    assert!(kind.is_char_device(), "the device was replaced by {kind:?}");
    assert_eq!(entries(dir.path()), ["null"]);
}

#[test]
fn a_directory_or_socket_is_refused() {
    let server = server(&pattern(1000));
    let dir = tempfile::tempdir().expect("dir");
    let output = get(&server.url("/data.bin"), dir.path());
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    assert!(String::from_utf8_lossy(&output.stderr).contains("is a directory"));
    let socket_path = dir.path().join("sock");
    let _socket = std::os::unix::net::UnixListener::bind(&socket_path).expect("socket");
    let output = get(&server.url("/data.bin"), &socket_path);
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    assert!(
        fs::symlink_metadata(&socket_path)
            .expect("stat")
            .file_type()
            .is_socket(),
        "the socket was replaced"
    );
    assert_eq!(entries(dir.path()), ["sock"]);
}

#[test]
fn replacing_a_regular_file_keeps_its_mode() {
    let data = pattern(50_000);
    let server = server(&data);
    let dir = tempfile::tempdir().expect("dir");
    let out = dir.path().join("out.bin");
    fs::write(&out, b"old").expect("write");
    fs::set_permissions(&out, fs::Permissions::from_mode(0o640)).expect("chmod");
    let output = get(&server.url("/data.bin"), &out);
    assert!(output.status.success(), "{output:?}");
    assert!(fs::read(&out).expect("read") == data);
    let mode = fs::metadata(&out).expect("stat").permissions().mode() & 0o777;
    assert_eq!(mode, 0o640);
}

#[test]
fn a_symlink_is_written_through_to_its_target() {
    let data = pattern(50_000);
    let server = server(&data);
    let dir = tempfile::tempdir().expect("dir");
    let real = dir.path().join("sub");
    fs::create_dir(&real).expect("mkdir");
    let target = real.join("target.bin");
    fs::write(&target, b"old").expect("write");
    let link = dir.path().join("link.bin");
    std::os::unix::fs::symlink("sub/target.bin", &link).expect("symlink");
    let output = get(&server.url("/data.bin"), &link);
    assert!(output.status.success(), "{output:?}");
    assert!(fs::symlink_metadata(&link)
        .expect("lstat")
        .file_type()
        .is_symlink());
    assert!(fs::read(&target).expect("read") == data);
    assert_eq!(entries(&real), ["target.bin"]);
}

#[test]
fn dash_means_standard_output() {
    let data = pattern(70_000);
    let server = server(&data);
    let dir = tempfile::tempdir().expect("dir");
    let output = Command::new(env!("CARGO_BIN_EXE_prefetch"))
        .current_dir(dir.path())
        .args(["get", &server.url("/data.bin"), "-o", "-"])
        .output()
        .expect("run");
    assert!(output.status.success(), "{output:?}");
    assert!(output.stdout == data);
    assert!(entries(dir.path()).is_empty(), "{:?}", entries(dir.path()));
}

/// `get` from a slow server, interrupted by `signal` once its temporary
/// file exists: the exit code, and what is left in the folder.
fn interrupted_get(signal: &str) -> (Option<i32>, Vec<String>) {
    let server = TestServer::builder()
        .object("/data.bin", pattern(8 << 20))
        .bandwidth(256 << 10)
        .build()
        .expect("server");
    let dir = tempfile::tempdir().expect("dir");
    let out = dir.path().join("out.bin");
    let mut child = Command::new(env!("CARGO_BIN_EXE_prefetch"))
        .args(["get", &server.url("/data.bin"), "-o"])
        .arg(&out)
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let deadline = Instant::now() + Duration::from_secs(20);
    while entries(dir.path()).is_empty() || server.bytes_sent() == 0 {
        assert!(Instant::now() < deadline, "get never started");
        std::thread::sleep(Duration::from_millis(10));
    }
    let sent = Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(sent.success());
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("get did not end on {signal}");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    (status.code(), entries(dir.path()))
}

#[test]
fn sigterm_removes_the_temporary_file_and_exits_143() {
    assert_eq!(interrupted_get("-TERM"), (Some(143), Vec::new()));
}

#[test]
fn sigint_removes_the_temporary_file_and_exits_130() {
    assert_eq!(interrupted_get("-INT"), (Some(130), Vec::new()));
}
