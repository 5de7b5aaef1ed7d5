//! Secrets never reach the terminal: `prefetch` at every verbosity, and
//! with `RUST_LOG=trace`, prints locations redacted and keeps the HTTP and
//! TLS libraries' traces (which carry credentials) off.

use std::process::{Command, Output};

use prefetch_reader::testing::{pattern, TestServer};

const PASSWORD: &str = "s3cr3tPW";
const TOKEN: &str = "TOKVAL123";
const SIGNATURE: &str = "SIGVAL456";
const DATE: &str = "20240101T000000Z";
/// base64("alice:s3cr3tPW"), the Basic `Authorization` value.
const BASIC: &str = "YWxpY2U6czNjcjN0UFc=";

fn secret_url(server: &TestServer, path: &str) -> String {
    let url = server.url(path);
    let url = url.replacen("http://", &format!("http://alice:{PASSWORD}@"), 1);
    format!("{url}?token={TOKEN}&X-Amz-Signature={SIGNATURE}&X-Amz-Date={DATE}")
}

fn run(args: &[&str], rust_log: Option<&str>) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_prefetch"));
    command.args(args).env_remove("RUST_LOG");
    if let Some(filter) = rust_log {
        command.env("RUST_LOG", filter);
    }
    command.output().expect("run prefetch")
}

fn assert_no_secret(output: &Output, what: &str) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    for secret in [PASSWORD, TOKEN, SIGNATURE, BASIC] {
        assert!(
            !stderr.contains(secret),
            "{what}: {secret} on stderr:\n{stderr}"
        );
    }
    stderr
}

#[test]
fn verbose_logs_never_show_userinfo_tokens_signatures_or_basic_credentials() {
    let data = pattern(300_000);
    let server = TestServer::builder()
        .object("/data.bin", data.clone())
        .build()
        .expect("server");
    let url = secret_url(&server, "/data.bin");
    for verbosity in ["-v", "-vv", "-vvv"] {
        for rust_log in [None, Some("trace")] {
            let what = format!("{verbosity} RUST_LOG={rust_log:?}");
            let output = run(&[verbosity, "cat", &url], rust_log);
            assert!(output.status.success(), "{what}: {output:?}");
            assert!(output.stdout == data, "{what}: wrong bytes");
            let stderr = assert_no_secret(&output, &what);
            assert!(
                stderr.contains(DATE),
                "{what}: the location is not logged:\n{stderr}"
            );
        }
    }
}

#[test]
fn a_failure_names_the_location_redacted() {
    let server = TestServer::builder().build().expect("server");
    let url = secret_url(&server, "/missing.bin");
    let dir = tempfile::tempdir().expect("dir");
    let out = dir.path().join("out.bin");
    let out = out.to_str().expect("utf-8 path");
    for args in [
        vec!["cat", url.as_str()],
        vec!["-vvv", "cat", url.as_str()],
        vec!["get", url.as_str(), "-o", out],
        vec!["cat", "--range", "5000-6000", url.as_str()],
    ] {
        let output = run(&args, None);
        assert_eq!(output.status.code(), Some(1), "{args:?}: {output:?}");
        let stderr = assert_no_secret(&output, &format!("{args:?}"));
        assert!(stderr.contains("REDACTED"), "{args:?}: {stderr}");
    }
}

#[test]
fn a_range_outside_the_object_names_the_location_redacted() {
    let server = TestServer::builder()
        .object("/data.bin", pattern(1000))
        .build()
        .expect("server");
    let url = secret_url(&server, "/data.bin");
    let output = run(&["cat", "--range", "5000-6000", &url], None);
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let stderr = assert_no_secret(&output, "range");
    assert!(stderr.contains("REDACTED"), "{stderr}");
}
