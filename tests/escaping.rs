//! Text from a server reaches messages with its control characters
//! escaped: a hostile error body or reason phrase cannot set the window
//! title, clear the screen or forge a line, in the library's errors or on
//! the command's stderr.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::Command;
use std::thread;

use prefetch_reader::{HttpSource, RetryPolicy};

/// Sets the window title, rings the bell, clears the screen, returns the
/// cursor and starts a forged line; then a C1 control sequence and DEL.
const HOSTILE: &str = "\u{1b}]0;pwned\u{7}\u{1b}[2J\r\nprefetch: all good\u{9b}31m\u{7f}";

/// A server answering every `GET` with `status`, the reason phrase
/// `reason` and `body` as `content_type` (and `HEAD` with 405, so the body
/// is read); runs until the test ends.
fn hostile_server(
    status: u16,
    reason: &'static str,
    content_type: &'static str,
    body: String,
) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut head = [0; 4096];
            let n = stream.read(&mut head).unwrap_or(0);
            let response = if head[..n].starts_with(b"HEAD") {
                "HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\
                 Connection: close\r\n\r\n"
                    .to_owned()
            } else {
                format!(
                    "HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\n\
                     Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                )
            };
            let _ = stream.write_all(response.as_bytes());
        }
    });
    format!("http://{addr}/object.bin")
}

/// No control character but line breaks at line ends.
fn assert_printable(text: &str) {
    for line in text.lines() {
        assert!(
            !line.chars().any(char::is_control),
            "a control character in {line:?}"
        );
    }
    assert!(!text.contains('\r'), "{text:?}");
}

#[test]
fn a_hostile_error_body_is_escaped_in_the_error_message() {
    for (status, content_type, body) in [
        (500, "text/plain", HOSTILE.to_owned()),
        (403, "text/plain", HOSTILE.to_owned()),
        (
            404,
            "application/xml",
            format!("<Error><Code>No\u{1b}[2JSuchKey</Code><Message>{HOSTILE}</Message></Error>"),
        ),
    ] {
        let url = hostile_server(status, "Bad", content_type, body);
        let err = HttpSource::builder()
            .retry_policy(RetryPolicy::never())
            .open(&url)
            .expect_err("a failing server");
        let message = err.to_string();
        assert_printable(&message);
        assert!(message.contains("\\x1b"), "{status}: {message}");
    }
}

#[test]
fn the_command_prints_a_hostile_error_body_escaped() {
    let url = hostile_server(500, "Bad", "text/plain", HOSTILE.to_owned());
    let output = Command::new(env!("CARGO_BIN_EXE_prefetch"))
        .args(["cat", &url])
        .output()
        .expect("run prefetch");
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let stderr = String::from_utf8(output.stderr).expect("utf-8");
    assert_printable(&stderr);
    assert!(!stderr.contains("\nprefetch: all good"), "{stderr}");
}

#[test]
fn a_reason_phrase_with_terminal_escapes_never_reaches_the_message_raw() {
    let url = hostile_server(500, "Bad\u{1b}]0;pwned\u{7}", "text/plain", "x".to_owned());
    let err = HttpSource::builder()
        .retry_policy(RetryPolicy::never())
        .open(&url)
        .expect_err("a failing server");
    assert_printable(&err.to_string());
}
