//! A real server that ignores byte ranges — Python's `http.server` — read
//! through the library and the CLI as `curl` reads it: front to back, from
//! one response.

mod common;

use std::fs;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::cli::{assert_error, prefetch, run};
use common::process::{free_port, program_or_skip, ServerProcess};
use common::{random_bytes, watchdog};
use prefetch_reader::{Error, HttpSource, PrefetchReader, RangeSource};

const WATCHDOG_SECS: u64 = 120;

/// `python3 -m http.server` serving `dir` on a free loopback port, or
/// `None` (the test skipped) without Python outside CI.
fn python_server(dir: &Path, test: &str) -> Option<ServerProcess> {
    let python = program_or_skip("python3", &[], test)?;
    let port = free_port();
    let mut server = ServerProcess::spawn(
        "python3 -m http.server",
        port,
        Command::new(python)
            .args(["-m", "http.server", "--bind", "127.0.0.1"])
            .arg(port.to_string())
            .arg("--directory")
            .arg(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    );
    if let Err(status) =
        server.wait_until_ready(Duration::from_secs(30), Duration::from_millis(20), || true)
    {
        panic!("python3 -m http.server exited: {status}");
    }
    Some(server)
}

fn served(
    len: usize,
    seed: u64,
    test: &str,
) -> Option<(tempfile::TempDir, ServerProcess, Vec<u8>)> {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = random_bytes(len, seed);
    fs::write(dir.path().join("object.bin"), &data).expect("write the object");
    let server = python_server(dir.path(), test)?;
    Some((dir, server, data))
}

#[test]
fn python_http_server_is_read_whole_and_seeks_forward_but_not_back() {
    watchdog(WATCHDOG_SECS, || {
        let test = "python_http_server_is_read_whole_and_seeks_forward_but_not_back";
        let Some((_dir, server, data)) = served(5 << 20, 60, test) else {
            return;
        };
        let url = format!("{}/object.bin", server.endpoint());
        let source = HttpSource::open(&url).expect("open");
        assert!(!source.supports_ranges(), "http.server ignores Range");
        let mut reader = PrefetchReader::new(source).expect("reader");
        let mut head = vec![0; 1000];
        reader.read_exact(&mut head).expect("read the start");
        assert!(head == data[..1000]);
        reader.seek(SeekFrom::Start(2 << 20)).expect("seek");
        let mut rest = Vec::new();
        reader
            .read_to_end(&mut rest)
            .expect("read forward of a seek");
        assert!(rest == data[2 << 20..], "wrong bytes after a forward seek");
        assert!(reader.stats().single_stream);
        reader.seek(SeekFrom::Start(0)).expect("seek");
        let err = reader.read(&mut head).expect_err("behind the stream");
        let err = common::crate_error(err);
        assert!(matches!(err, Error::RangeNotSupported { .. }), "{err:?}");
    });
}

#[test]
fn prefetch_cat_and_get_read_an_object_from_python_http_server() {
    watchdog(WATCHDOG_SECS, || {
        let test = "prefetch_cat_and_get_read_an_object_from_python_http_server";
        let Some((dir, server, data)) = served(3 << 20, 61, test) else {
            return;
        };
        let url = format!("{}/object.bin", server.endpoint());
        let output = run(prefetch().args(["cat", &url]));
        assert!(output.status.success(), "{output:?}");
        assert!(output.stdout == data, "cat gave other bytes");

        let out = dir.path().join("copy.bin");
        let output = run(prefetch().arg("get").arg(&url).arg("-o").arg(&out));
        assert!(output.status.success(), "{output:?}");
        assert!(fs::read(&out).expect("read the copy") == data);

        // A range of it: skipped to, not refused.
        let output = run(prefetch().args(["cat", "--range", "1000-1999", &url]));
        assert!(output.status.success(), "{output:?}");
        assert!(output.stdout == data[1000..2000]);

        // A missing object is still an error, not a stream.
        let output = run(prefetch().args(["cat", &format!("{}/missing", server.endpoint())]));
        assert!(assert_error(&output).contains("not found"));
    });
}
