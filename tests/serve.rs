//! The test server (and `prefetch serve`) against clients that hold on:
//! slow heads, idle connections, too many connections; and its answers to
//! every form of `Range`.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::watchdog;
use prefetch_reader::testing::TestServer;

const DATA: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";

fn short_limits() -> TestServer {
    TestServer::builder()
        .object("/data.bin", DATA.to_vec())
        .header_timeout(Duration::from_millis(300))
        .idle_timeout(Duration::from_millis(500))
        .max_connections(2)
        .build()
        .expect("server")
}

/// Reads until the server closes the connection; what it sent.
fn read_until_closed(stream: &mut TcpStream) -> Vec<u8> {
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    let mut out = Vec::new();
    let mut chunk = [0; 4096];
    loop {
        match stream.read(&mut chunk) {
            Ok(0) => return out,
            Ok(n) => out.extend_from_slice(&chunk[..n]),
            Err(err) if err.kind() == std::io::ErrorKind::ConnectionReset => return out,
            Err(err) => panic!("the server kept the connection open: {err}"),
        }
    }
}

/// One request on a new connection, `Connection: close`: the whole response.
fn request(addr: std::net::SocketAddr, range: Option<&str>) -> String {
    let mut stream = TcpStream::connect(addr).expect("connect");
    let range = range.map_or(String::new(), |r| format!("Range: {r}\r\n"));
    write!(
        stream,
        "GET /data.bin HTTP/1.1\r\nHost: t\r\n{range}Connection: close\r\n\r\n"
    )
    .expect("send");
    String::from_utf8_lossy(&read_until_closed(&mut stream)).into_owned()
}

#[test]
fn a_request_head_that_stalls_is_cut_off_at_the_header_deadline() {
    let server = short_limits();
    let addr = server.addr();
    let response = watchdog(30, move || {
        let mut stream = TcpStream::connect(addr).expect("connect");
        stream
            .write_all(b"GET /data.bin HTTP/1.1\r\nHost: t\r\n")
            .expect("send");
        String::from_utf8_lossy(&read_until_closed(&mut stream)).into_owned()
    });
    assert!(response.starts_with("HTTP/1.1 408 "), "{response}");
}

#[test]
fn a_connection_that_never_sends_a_request_is_closed() {
    let server = short_limits();
    let addr = server.addr();
    let sent = watchdog(30, move || {
        let mut stream = TcpStream::connect(addr).expect("connect");
        read_until_closed(&mut stream)
    });
    assert!(sent.is_empty(), "{}", String::from_utf8_lossy(&sent));
}

#[test]
fn an_idle_keep_alive_connection_is_closed_after_its_response() {
    let server = short_limits();
    let addr = server.addr();
    let response = watchdog(30, move || {
        let mut stream = TcpStream::connect(addr).expect("connect");
        stream
            .write_all(b"GET /data.bin HTTP/1.1\r\nHost: t\r\n\r\n")
            .expect("send");
        String::from_utf8_lossy(&read_until_closed(&mut stream)).into_owned()
    });
    assert!(response.starts_with("HTTP/1.1 200 OK"), "{response}");
    assert!(response.ends_with(std::str::from_utf8(DATA).unwrap()));
}

#[test]
fn connections_over_the_limit_get_503_until_one_closes() {
    let server = TestServer::builder()
        .object("/data.bin", DATA.to_vec())
        .max_connections(2)
        .build()
        .expect("server");
    let addr = server.addr();
    watchdog(30, move || {
        // Two connections held open, each proven served.
        let mut held = Vec::new();
        for _ in 0..2 {
            let stream = TcpStream::connect(addr).expect("connect");
            let mut reader = BufReader::new(stream.try_clone().expect("clone"));
            (&stream)
                .write_all(b"HEAD /data.bin HTTP/1.1\r\nHost: t\r\n\r\n")
                .expect("send");
            let mut status = String::new();
            reader.read_line(&mut status).expect("status");
            assert!(status.starts_with("HTTP/1.1 200"), "{status}");
            held.push(stream);
        }
        let refused = request(addr, None);
        assert!(
            refused.starts_with("HTTP/1.1 503 Service Unavailable"),
            "{refused}"
        );
        assert!(refused.contains("Retry-After: 1"), "{refused}");
        drop(held.pop());
        // The server notices the close on its next poll: try for a while.
        for _ in 0..100 {
            let answer = request(addr, None);
            if answer.starts_with("HTTP/1.1 200 OK") {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("no connection served after one closed");
    });
}

#[test]
fn ranges_are_answered_as_rfc_9110_says() {
    let server = short_limits();
    let whole = std::str::from_utf8(DATA).unwrap();
    let len = DATA.len();
    let cases: Vec<(&str, &str, Option<String>, &str)> = vec![
        ("bytes=2-4", "206", Some(format!("bytes 2-4/{len}")), "234"),
        (
            "bytes=30-",
            "206",
            Some(format!("bytes 30-35/{len}")),
            "uvwxyz",
        ),
        (
            "bytes=34-100",
            "206",
            Some(format!("bytes 34-35/{len}")),
            "yz",
        ),
        ("bytes=-3", "206", Some(format!("bytes 33-35/{len}")), "xyz"),
        (
            "bytes=-1000",
            "206",
            Some(format!("bytes 0-35/{len}")),
            whole,
        ),
        ("bytes=1000-", "416", Some(format!("bytes */{len}")), ""),
        ("bytes=36-40", "416", Some(format!("bytes */{len}")), ""),
        ("bytes=-0", "416", Some(format!("bytes */{len}")), ""),
        ("bytes=5-1", "200", None, whole),
        ("bytes=0-1,5-6", "200", None, whole),
        ("bytes=x-y", "200", None, whole),
        ("lines=1-2", "200", None, whole),
    ];
    for (range, status, content_range, body) in cases {
        let response = request(server.addr(), Some(range));
        let (head, got_body) = response.split_once("\r\n\r\n").expect("head");
        assert!(
            head.starts_with(&format!("HTTP/1.1 {status} ")),
            "{range}: {head}"
        );
        match &content_range {
            Some(value) => assert!(
                head.contains(&format!("Content-Range: {value}\r\n"))
                    || head.ends_with(&format!("Content-Range: {value}")),
                "{range}: {head}"
            ),
            None => assert!(!head.contains("Content-Range"), "{range}: {head}"),
        }
        assert_eq!(got_body, body, "{range}");
    }
}

#[test]
fn prefetch_serve_answers_an_unsatisfiable_range_with_416() {
    let dir = tempfile::tempdir().expect("dir");
    std::fs::write(dir.path().join("data.bin"), DATA).expect("write");
    let mut child = Command::new(env!("CARGO_BIN_EXE_prefetch"))
        .arg("serve")
        .arg(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start prefetch serve");
    let stdout = child.stdout.take().expect("stdout");
    let url = watchdog(30, move || {
        let mut lines = BufReader::new(stdout).lines();
        lines
            .find_map(|line| {
                let line = line.ok()?;
                let start = line.find("http://")?;
                Some(line[start..].split_whitespace().next()?.to_owned())
            })
            .expect("a URL on stdout")
    });
    let authority = url
        .trim_start_matches("http://")
        .split('/')
        .next()
        .expect("authority")
        .to_owned();
    let addr: std::net::SocketAddr = authority.parse().expect("address");
    let response = request(addr, Some("bytes=1000-"));
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        response.starts_with("HTTP/1.1 416 Range Not Satisfiable"),
        "{response}"
    );
    assert!(
        response.contains(&format!("Content-Range: bytes */{}", DATA.len())),
        "{response}"
    );
}
