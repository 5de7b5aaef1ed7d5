//! Redirects are followed by the source itself: the caller's headers and
//! credentials never reach another origin (scheme, host or port), reads go
//! straight to where the open was redirected, and chains are bounded.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread;

use prefetch_reader::testing::pattern;
use prefetch_reader::{Error, HttpSource, PrefetchReader, RetryPolicy};

/// The request heads a server received, lowercased.
type Heads = Arc<Mutex<Vec<String>>>;

/// A one-thread HTTP/1.1 server on a free loopback port answering every
/// request with `answer(head)`, closing each connection; returns its base
/// URL and the heads it received.
fn server(answer: impl Fn(&str) -> Vec<u8> + Send + 'static) -> (String, Heads) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let heads: Heads = Arc::default();
    let seen = heads.clone();
    thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let head = read_head(&stream);
            seen.lock().unwrap().push(head.to_ascii_lowercase());
            let mut stream = stream;
            let _ = stream.write_all(&answer(&head));
        }
    });
    (base, heads)
}

fn read_head(stream: &TcpStream) -> String {
    let mut reader = BufReader::new(stream);
    let mut head = String::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
            return head;
        }
        head.push_str(&line);
    }
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|line| {
        let (n, v) = line.split_once(':')?;
        n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// Serves `data` with an ETag: HEAD, and GETs of one byte range.
fn object_server(data: Vec<u8>) -> (String, Heads) {
    server(move |head| {
        let len = data.len();
        let common = "ETag: \"v1\"\r\nAccept-Ranges: bytes\r\nConnection: close\r\n";
        if head.starts_with("HEAD") {
            return format!("HTTP/1.1 200 OK\r\n{common}Content-Length: {len}\r\n\r\n")
                .into_bytes();
        }
        let range = header(head, "range").and_then(|r| {
            let (a, b) = r.strip_prefix("bytes=")?.split_once('-')?;
            Some((a.parse::<usize>().ok()?, b.parse::<usize>().ok()?))
        });
        match range {
            Some((a, b)) if a <= b && b < len => {
                let body = &data[a..=b];
                let mut out = format!(
                    "HTTP/1.1 206 Partial Content\r\n{common}Content-Range: bytes {a}-{b}/{len}\r\n\
                     Content-Length: {}\r\n\r\n",
                    body.len()
                )
                .into_bytes();
                out.extend_from_slice(body);
                out
            }
            _ => b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                .to_vec(),
        }
    })
}

fn redirect_to(target: String) -> impl Fn(&str) -> Vec<u8> + Send + 'static {
    move |_| {
        format!(
            "HTTP/1.1 302 Found\r\nLocation: {target}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        )
        .into_bytes()
    }
}

fn read_all(source: HttpSource) -> Vec<u8> {
    let mut reader = PrefetchReader::new(source).expect("reader");
    let mut all = Vec::new();
    reader.read_to_end(&mut all).expect("read");
    all
}

fn builder() -> prefetch_reader::HttpSourceBuilder {
    let mut builder = HttpSource::builder();
    builder
        .header("X-Secret-Header", "v1")
        .bearer_token("tok-123")
        .retry_policy(RetryPolicy::never());
    builder
}

#[test]
fn caller_headers_and_credentials_are_not_sent_to_another_origin() {
    let data = pattern(300_000);
    let (object, object_heads) = object_server(data.clone());
    let (start, start_heads) = server(redirect_to(format!("{object}/data.bin")));
    let source = builder().open(&format!("{start}/data.bin")).expect("open");
    assert!(read_all(source) == data);
    let first = start_heads.lock().unwrap().clone();
    assert!(first[0].contains("x-secret-header: v1"), "{first:?}");
    assert!(
        first[0].contains("authorization: bearer tok-123"),
        "{first:?}"
    );
    let there = object_heads.lock().unwrap().clone();
    assert!(!there.is_empty());
    for head in &there {
        assert!(!head.contains("x-secret-header"), "{head}");
        assert!(!head.contains("authorization"), "{head}");
        assert!(head.contains("user-agent: prefetch-reader/"), "{head}");
    }
    // Only the open was redirected: the ranged GETs went straight there.
    assert_eq!(first.len(), 1, "{first:?}");
}

#[test]
fn userinfo_credentials_are_not_sent_to_another_origin() {
    let data = pattern(1000);
    let (object, object_heads) = object_server(data.clone());
    let (start, start_heads) = server(redirect_to(format!("{object}/data.bin")));
    let url = start.replacen("http://", "http://alice:pw@", 1);
    let source = HttpSource::builder()
        .retry_policy(RetryPolicy::never())
        .open(&format!("{url}/data.bin"))
        .expect("open");
    assert!(read_all(source) == data);
    assert!(start_heads.lock().unwrap()[0].contains("authorization: basic"));
    for head in object_heads.lock().unwrap().iter() {
        assert!(!head.contains("authorization"), "{head}");
    }
}

#[test]
fn a_same_origin_redirect_keeps_the_callers_headers() {
    let data = pattern(10_000);
    let served = data.clone();
    // One server (one origin) that redirects `/old` and serves `/new`.
    let (base, seen) = server(move |head| {
        if head.starts_with("HEAD /old") || head.starts_with("GET /old") {
            return b"HTTP/1.1 301 Moved\r\nLocation: /new\r\nContent-Length: 0\r\n\
                     Connection: close\r\n\r\n"
                .to_vec();
        }
        if head.starts_with("HEAD") {
            return format!(
                "HTTP/1.1 200 OK\r\nETag: \"v\"\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                served.len()
            )
            .into_bytes();
        }
        let (a, b) = header(head, "range")
            .and_then(|r| r.strip_prefix("bytes="))
            .and_then(|r| r.split_once('-'))
            .and_then(|(a, b)| Some((a.parse::<usize>().ok()?, b.parse::<usize>().ok()?)))
            .unwrap_or((0, served.len() - 1));
        let mut out = format!(
            "HTTP/1.1 206 Partial Content\r\nETag: \"v\"\r\nContent-Range: bytes {a}-{b}/{}\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n",
            served.len(),
            b - a + 1
        )
        .into_bytes();
        out.extend_from_slice(&served[a..=b]);
        out
    });
    let source = builder().open(&format!("{base}/old")).expect("open");
    assert!(read_all(source) == data);
    let heads = seen.lock().unwrap().clone();
    assert!(heads.len() >= 3, "{heads:?}");
    for head in &heads {
        assert!(head.contains("x-secret-header: v1"), "{head}");
        assert!(head.contains("authorization: bearer tok-123"), "{head}");
    }
    // After the open, reads go to `/new` directly.
    assert_eq!(
        heads.iter().filter(|h| h.contains(" /old ")).count(),
        1,
        "{heads:?}"
    );
}

#[test]
fn a_callers_agent_that_follows_redirects_still_does_not_forward_headers() {
    let data = pattern(5000);
    let (object, object_heads) = object_server(data.clone());
    let (start, _) = server(redirect_to(format!("{object}/data.bin")));
    let agent = ureq::Agent::new_with_defaults();
    let source = builder()
        .agent(agent)
        .open(&format!("{start}/data.bin"))
        .expect("open");
    assert!(read_all(source) == data);
    for head in object_heads.lock().unwrap().iter() {
        assert!(!head.contains("x-secret-header"), "{head}");
        assert!(!head.contains("authorization"), "{head}");
    }
}

#[test]
fn a_redirect_loop_ends_with_an_error_after_ten_hops() {
    let (base, heads) = server(|head| {
        let path = head.split_whitespace().nth(1).unwrap_or("/0").to_owned();
        let n: u32 = path.trim_start_matches('/').parse().unwrap_or(0);
        format!(
            "HTTP/1.1 302 Found\r\nLocation: /{}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            n + 1
        )
        .into_bytes()
    });
    let err = builder().open(&format!("{base}/0")).expect_err("a loop");
    assert!(matches!(err, Error::InvalidResponse { .. }), "{err}");
    assert!(err.to_string().contains("redirects"), "{err}");
    // The HEAD chain and the GET chain of the fallback: 11 requests each at most.
    assert!(heads.lock().unwrap().len() <= 22);
}

#[test]
fn a_redirect_to_another_scheme_is_refused() {
    let (base, _) = server(redirect_to("file:///etc/passwd".to_owned()));
    let err = builder().open(&format!("{base}/x")).expect_err("refused");
    assert!(err.to_string().contains("file"), "{err}");
}
