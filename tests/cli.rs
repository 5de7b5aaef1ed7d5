//! The `prefetch` command run as a user runs it: the built binary, its
//! exit codes, stdout and stderr, against the crate's test server and
//! local files.

#![cfg(feature = "cli")]

use std::fs;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

mod common;

use common::cli::{assert_error, prefetch, run, stderr, wait, TIMEOUT};
use prefetch_reader::testing::{pattern, TestServer};

/// Waits for `child` and checks that it exited 0 with nothing on stderr.
fn assert_ends_quietly(child: &mut Child) {
    let status = wait(child);
    let mut text = String::new();
    child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut text)
        .expect("read stderr");
    assert_eq!(status.code(), Some(0), "{text}");
    assert!(text.is_empty(), "{text}");
}

#[track_caller]
fn assert_success(output: &Output) {
    assert!(
        output.status.success(),
        "exit {:?}, stderr: {}",
        output.status.code(),
        stderr(output)
    );
}

/// A server with `/data.bin` (a bit over 3 MiB of the test pattern) and
/// the same bytes in a file.
struct Fixture {
    server: TestServer,
    data: Vec<u8>,
    dir: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Fixture {
        let data = pattern(3 * 1024 * 1024 + 12_345);
        let server = TestServer::builder()
            .object("/data.bin", data.clone())
            .build()
            .expect("server");
        let dir = tempfile::tempdir().expect("tempdir");
        fs::write(dir.path().join("data.bin"), &data).expect("write file");
        Fixture { server, data, dir }
    }

    fn url(&self) -> String {
        self.server.url("/data.bin")
    }

    fn file(&self) -> String {
        self.dir.path().join("data.bin").display().to_string()
    }

    fn locations(&self) -> [String; 2] {
        [self.url(), self.file()]
    }
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .expect("read_dir")
        .map(|entry| {
            entry
                .expect("entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    names.sort();
    names
}

#[test]
fn bench_with_tiny_sizes_prints_a_table_whose_figures_parse() {
    let output = run(prefetch().args([
        "bench",
        "--size",
        "2M",
        "--latency-ms",
        "2",
        "--bandwidth",
        "100",
        "--read-sizes",
        "64K,1M",
        "--random-reads",
        "5",
        "--plain-seconds",
        "0.05",
        "--concurrency",
        "4",
    ]));
    assert_success(&output);
    let text = String::from_utf8(output.stdout).expect("utf-8");
    let mut lines = text.lines().skip_while(|line| !line.starts_with("case"));
    let header: Vec<&str> = lines.next().expect("a header").split_whitespace().collect();
    assert_eq!(
        header,
        [
            "case",
            "read",
            "MiB/s",
            "reads/s",
            "ttfb_ms",
            "requests",
            "fetch/dlv",
            "/link",
            "/plain",
            "secs",
            "fetched",
            "budget",
            "peak"
        ]
    );
    let rows: Vec<Vec<&str>> = lines
        .take_while(|line| !line.is_empty())
        .map(|line| line.split_whitespace().collect())
        .collect();
    let cases: Vec<(&str, &str)> = rows.iter().map(|row| (row[0], row[1])).collect();
    assert_eq!(
        cases,
        [
            ("ceiling", "512K"),
            ("plain", "64K"),
            ("plain", "1M"),
            ("prefetch", "64K"),
            ("prefetch", "1M"),
            ("random-plain", "64K"),
            ("random-prefetch", "64K"),
            ("random-4k", "4K"),
            ("header-idle", "8"),
            ("members", "16K"),
            ("members-hinted", "16K"),
            ("first-mib-drop", "64K"),
            ("eof-probe", "64K"),
            ("footer", "40K"),
            ("footer-tail", "40K"),
        ],
        "{text}"
    );
    let patterns = [
        "random-4k",
        "header-idle",
        "members",
        "members-hinted",
        "first-mib-drop",
        "eof-probe",
        "footer",
        "footer-tail",
    ];
    for row in &rows {
        assert_eq!(row.len(), header.len(), "{row:?}");
        let pattern = patterns.contains(&row[0]);
        for (column, cell) in header.iter().zip(row).skip(2) {
            match *column {
                // Sizes in one word: 812, 16K, 2.5M.
                "fetched" | "budget" | "peak" => {
                    let digits = cell.trim_end_matches(['K', 'M', 'G']);
                    let plain = matches!(row[0], "ceiling" | "plain" | "random-plain");
                    if *cell == "-" {
                        assert!(
                            (!pattern && *column == "budget") || (plain && *column == "peak"),
                            "{row:?}"
                        );
                    } else {
                        assert!(
                            digits.parse::<f64>().is_ok(),
                            "{column} `{cell}` in {row:?}"
                        );
                    }
                    continue;
                }
                _ => {}
            }
            if *cell == "-" {
                assert!(
                    matches!((row[0], *column), ("ceiling", "ttfb_ms" | "/plain"))
                        || (pattern && matches!(*column, "/link" | "/plain"))
                        || (row[0] == "eof-probe" && *column == "fetch/dlv"),
                    "{row:?}"
                );
                continue;
            }
            let value: f64 = cell
                .parse()
                .unwrap_or_else(|_| panic!("{column} `{cell}` in {row:?}"));
            assert!(value.is_finite() && value >= 0.0, "{column} in {row:?}");
        }
        let rate: f64 = row[2].parse().expect("rate");
        assert!(
            rate > 0.0 || row[0] == "header-idle" || row[0] == "eof-probe",
            "{row:?}"
        );
        // The consumer patterns keep to their budgets.
        assert!(!row[11].ends_with('!'), "over budget: {row:?}");
    }
    // Random reads through the reader fetch what they read.
    let fetched: f64 = rows[6][6].parse().expect("fetch/dlv");
    assert!(fetched <= 1.1, "{text}");
    assert!(text.contains("finished in"), "{text}");
}

#[test]
fn bench_json_prints_one_object_per_row() {
    let output = run(prefetch().args([
        "bench",
        "--json",
        "--size",
        "1M",
        "--latency-ms",
        "1",
        "--read-sizes",
        "256K",
        "--random-reads",
        "3",
        "--plain-seconds",
        "0",
    ]));
    assert_success(&output);
    let text = String::from_utf8(output.stdout).expect("utf-8");
    let rows: Vec<serde_json::Value> = text
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|err| panic!("{err}: {line}")))
        .collect();
    let cases: Vec<&str> = rows
        .iter()
        .map(|row| row["case"].as_str().expect("case"))
        .collect();
    assert_eq!(
        cases,
        [
            "ceiling",
            "plain",
            "prefetch",
            "random-plain",
            "random-prefetch",
            "random-4k",
            "header-idle",
            "members",
            "members-hinted",
            "first-mib-drop",
            "eof-probe",
            "footer",
            "footer-tail"
        ]
    );
    for row in &rows {
        let pattern = row["budget_bytes"].is_number();
        let keys: &[&str] = if pattern {
            &["fetched_bytes", "delivered_bytes", "budget_bytes"]
        } else {
            &["fetched_per_delivered", "vs_link"]
        };
        for key in keys {
            assert!(row[*key].is_number(), "{key} in {row}");
        }
        if pattern {
            assert_eq!(row["within_budget"], true, "{row}");
        }
        for key in [
            "read_bytes",
            "bytes",
            "seconds",
            "mib_per_s",
            "reads_per_s",
            "requests",
            "link_limit_mib_per_s",
            "latency_ms",
            "bandwidth_mib_per_s",
            "concurrency",
        ] {
            assert!(row[key].is_number(), "{key} in {row}");
        }
        assert!(row["object"]
            .as_str()
            .expect("object")
            .starts_with("http://"));
    }
    assert_eq!(rows[2]["bytes"], 1 << 20);
    assert!(rows[2]["vs_plain"].as_f64().expect("vs_plain") > 0.0);
    assert_eq!(rows[0]["ttfb_ms"], serde_json::Value::Null);
}

#[test]
fn cat_writes_objects_byte_identical_from_a_server_and_a_file() {
    let fixture = Fixture::new();
    for location in fixture.locations() {
        let output = run(prefetch().args(["cat", &location]));
        assert_success(&output);
        assert!(output.stdout == fixture.data, "{location}");
        assert!(output.stderr.is_empty(), "{}", stderr(&output));
    }
    // Several objects, one after the other.
    let [url, file] = fixture.locations();
    let output = run(prefetch().args(["cat", &url, &file, "--concurrency", "3"]));
    assert_success(&output);
    assert!(output.stdout == [&fixture.data[..], &fixture.data[..]].concat());
}

#[test]
fn get_downloads_byte_identical_from_a_server_and_a_file() {
    let fixture = Fixture::new();
    for location in fixture.locations() {
        let out_dir = tempfile::tempdir().expect("tempdir");
        let out = out_dir.path().join("out.bin");
        let output = run(prefetch().args(["get", &location, "-o"]).arg(&out));
        assert_success(&output);
        assert!(
            fs::read(&out).expect("read output") == fixture.data,
            "{location}"
        );
        assert_eq!(files_in(out_dir.path()), ["out.bin"]);
        // One summary line: bytes, time, rate, requests, retries.
        let text = stderr(&output);
        assert_eq!(text.lines().count(), 1, "{text}");
        assert!(
            text.contains(&format!("{} bytes", fixture.data.len()))
                && text.contains("MiB/s")
                && text.contains("requests")
                && text.contains("0 retries"),
            "{text}"
        );
    }
}

#[test]
fn get_replaces_an_existing_file() {
    let fixture = Fixture::new();
    let out_dir = tempfile::tempdir().expect("tempdir");
    let out = out_dir.path().join("out.bin");
    fs::write(&out, b"old contents").expect("write");
    let output = run(prefetch().args(["get", &fixture.url(), "-o"]).arg(&out));
    assert_success(&output);
    assert!(fs::read(&out).expect("read") == fixture.data);
}

#[test]
fn range_takes_the_three_http_forms_on_cat_and_get() {
    let fixture = Fixture::new();
    let len = fixture.data.len();
    let cases: [(&str, std::ops::Range<usize>); 5] = [
        ("10-99", 10..100),
        ("1000000-", 1_000_000..len),
        ("-500", len - 500..len),
        ("0-0", 0..1),
        ("3000000-999999999", 3_000_000..len),
    ];
    for location in fixture.locations() {
        for (range, expected) in &cases {
            // `--range -500` must work as two words, not only `--range=-500`.
            let output = run(prefetch().args(["cat", "--range", range, &location]));
            assert_success(&output);
            assert!(
                output.stdout == fixture.data[expected.clone()],
                "cat {range} {location}"
            );

            let out_dir = tempfile::tempdir().expect("tempdir");
            let out = out_dir.path().join("part.bin");
            let output = run(prefetch()
                .args(["get", &location, "--range", range, "-o"])
                .arg(&out));
            assert_success(&output);
            assert!(
                fs::read(&out).expect("read") == fixture.data[expected.clone()],
                "get {range} {location}"
            );
        }
    }
}

#[test]
fn an_unsatisfiable_range_is_a_clear_error() {
    let fixture = Fixture::new();
    let len = fixture.data.len();
    for location in fixture.locations() {
        for range in [
            format!("{len}-"),
            format!("{}-{}", len + 10, len + 20),
            "-0".to_owned(),
        ] {
            let output = run(prefetch().args(["cat", "--range", &range, &location]));
            let line = assert_error(&output);
            assert!(
                line.contains(&format!("range {range} is not satisfiable"))
                    && line.contains(&format!("{len} bytes"))
                    && line.contains("data.bin"),
                "{line}"
            );
            assert!(output.stdout.is_empty());

            let out_dir = tempfile::tempdir().expect("tempdir");
            let output = run(prefetch()
                .args(["get", &location, "--range", &range, "-o"])
                .arg(out_dir.path().join("x.bin")));
            assert!(assert_error(&output).contains("not satisfiable"));
            assert!(files_in(out_dir.path()).is_empty());
        }
    }
}

#[test]
fn a_get_that_fails_midway_leaves_no_file_and_says_why() {
    let data = pattern(8 << 20);
    let server = TestServer::builder()
        .object("/data.bin", data.clone())
        .bandwidth(1 << 20)
        .build()
        .expect("server");
    let out_dir = tempfile::tempdir().expect("tempdir");
    let out = out_dir.path().join("out.bin");
    // A 2 MiB budget keeps read-ahead parts at the 1 MiB minimum; two at a
    // time at 1 MiB/s each, the download takes seconds and makes many
    // requests after the object is replaced.
    let mut child = prefetch()
        .args([
            "get",
            &server.url("/data.bin"),
            "--concurrency",
            "2",
            "--max-prefetch",
            "2M",
            "-o",
        ])
        .arg(&out)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let deadline = Instant::now() + TIMEOUT;
    while server.bytes_sent() == 0 {
        assert!(Instant::now() < deadline, "the download never started");
        thread::sleep(Duration::from_millis(5));
    }
    // A new version: every request from now on fails its If-Match.
    server.put_object("/data.bin", pattern(8 << 20).into_iter().rev().collect());
    let status = wait(&mut child);
    let mut text = String::new();
    child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut text)
        .expect("read stderr");
    assert_eq!(status.code(), Some(1), "{text}");
    assert!(
        text.starts_with("prefetch: object changed while reading: ") && text.contains("/data.bin"),
        "{text}"
    );
    assert!(!out.exists());
    assert!(
        files_in(out_dir.path()).is_empty(),
        "{:?}",
        files_in(out_dir.path())
    );
}

#[test]
fn a_missing_object_is_an_error_naming_it() {
    let fixture = Fixture::new();
    let missing_url = fixture.server.url("/missing.bin");
    let missing_file = fixture.dir.path().join("missing.bin").display().to_string();
    for location in [&missing_url, &missing_file] {
        let line = assert_error(&run(prefetch().args(["cat", location])));
        assert!(
            line.contains("not found") && line.contains(location.as_str()),
            "{line}"
        );

        let out_dir = tempfile::tempdir().expect("tempdir");
        let output = run(prefetch()
            .args(["get", location, "-o"])
            .arg(out_dir.path().join("x.bin")));
        let line = assert_error(&output);
        assert!(
            line.contains("not found") && line.contains(location.as_str()),
            "{line}"
        );
        assert!(files_in(out_dir.path()).is_empty());
    }
    // Nothing listening: a network error, naming the URL.
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr").port()
    };
    let url = format!("http://127.0.0.1:{port}/x.bin");
    let line = assert_error(&run(prefetch().args(["cat", &url])));
    assert!(line.contains(&url), "{line}");
}

#[test]
fn get_into_a_missing_folder_is_an_error_naming_it() {
    let fixture = Fixture::new();
    let out_dir = tempfile::tempdir().expect("tempdir");
    let folder = out_dir.path().join("no-such-folder");
    let output = run(prefetch()
        .args(["get", &fixture.file(), "-o"])
        .arg(folder.join("x.bin")));
    let line = assert_error(&output);
    assert!(line.contains("no-such-folder"), "{line}");
}

#[test]
fn cat_into_a_closed_pipe_ends_quietly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("big.bin");
    let data = pattern(16 << 20);
    fs::write(&path, &data).expect("write");
    // `prefetch cat big.bin | head -c 10`: read ten bytes, close the pipe.
    let mut child = prefetch()
        .arg("cat")
        .arg(&path)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut stdout = child.stdout.take().expect("stdout");
    let mut head = [0; 10];
    stdout.read_exact(&mut head).expect("read head");
    assert_eq!(head[..], data[..10]);
    drop(stdout);
    assert_ends_quietly(&mut child);
}

#[test]
fn bench_into_a_closed_pipe_ends_quietly() {
    let mut child = prefetch()
        .args([
            "bench",
            "--size",
            "1M",
            "--latency-ms",
            "0",
            "--random-reads",
            "2",
        ])
        .args(["--read-sizes", "256K", "--plain-seconds", "0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    drop(child.stdout.take());
    assert_ends_quietly(&mut child);
}

#[test]
fn bad_flags_exit_2_with_usage() {
    for args in [
        &["frobnicate"][..],
        &["cat"],
        &["cat", "--range", "abc", "x"],
        &["cat", "--range", "9-3", "x"],
        &["cat", "--concurrency", "0", "x"],
        &["cat", "--max-prefetch", "1K", "x"],
        &["get", "x"],
        &["bench", "--bandwidth", "0"],
        &["bench", "--size", "lots"],
        &["bench", "http://example.com/x", "--latency-ms", "5"],
        &["serve", "."],
        &["serve", ".", "--addr", "nowhere"],
    ] {
        let args: &[&str] = if args == ["serve", "."] {
            &["serve"]
        } else {
            args
        };
        let output = run(prefetch().args(args));
        assert_eq!(
            output.status.code(),
            Some(2),
            "{args:?}: {}",
            stderr(&output)
        );
        assert!(
            stderr(&output).contains("Usage"),
            "{args:?}: {}",
            stderr(&output)
        );
    }
    let help = run(prefetch().arg("--help"));
    assert_success(&help);
    assert!(String::from_utf8_lossy(&help.stdout).contains("Examples:"));
}

/// `prefetch serve PATH`, with the URL it printed; killed on drop.
struct Served {
    child: Child,
    url: String,
}

impl Served {
    fn start(path: &Path) -> Served {
        let mut child = prefetch()
            .args(["serve", "--latency-ms", "1"])
            .arg(path)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("read the URL");
        let url = line
            .split_whitespace()
            .find(|word| word.starts_with("http://127.0.0.1:"))
            .unwrap_or_else(|| panic!("no loopback URL in {line:?}"))
            .to_owned();
        Served { child, url }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn curl_range(url: &str, range: &str) -> Option<Vec<u8>> {
    let output = Command::new("curl")
        .args(["--silent", "--fail", "--range", range, url])
        .output()
        .ok()?;
    assert!(output.status.success(), "curl {range} {url}: {output:?}");
    Some(output.stdout)
}

#[test]
fn serve_answers_range_requests_from_the_reader_and_curl() {
    use std::io::{Seek, SeekFrom};

    let fixture = Fixture::new();
    let data = &fixture.data;
    let served_dir = Served::start(fixture.dir.path());
    assert!(served_dir.url.ends_with('/'), "{}", served_dir.url);
    let served_file = Served::start(&fixture.dir.path().join("data.bin"));
    assert!(
        served_file.url.ends_with("/data.bin"),
        "{}",
        served_file.url
    );

    for url in [
        format!("{}data.bin", served_dir.url),
        served_file.url.clone(),
    ] {
        let mut reader = prefetch_reader::open(&url).expect("open");
        let mut all = Vec::new();
        reader.read_to_end(&mut all).expect("read");
        assert!(all == *data, "{url}");
        reader.seek(SeekFrom::Start(1_000_000)).expect("seek");
        let mut some = vec![0; 4096];
        reader.read_exact(&mut some).expect("read");
        assert!(some == data[1_000_000..1_004_096]);

        match curl_range(&url, "100-199") {
            None => eprintln!("curl is not installed: skipping its part of the test"),
            Some(body) => {
                assert!(body == data[100..200], "{url}");
                let tail = curl_range(&url, "-1000").expect("curl");
                assert!(tail == data[data.len() - 1000..]);
            }
        }
    }
}

#[test]
fn double_v_logs_each_request_with_its_status_and_no_secret() {
    let fixture = Fixture::new();
    let url = format!("{}?token=SECRET-TOKEN", fixture.url());
    let output = run(prefetch().args(["-vv", "cat", &url]));
    assert_success(&output);
    let text = stderr(&output);
    assert!(text.contains("HEAD http://"), "{text}");
    assert!(text.contains("GET bytes=0-"), "{text}");
    assert!(text.contains(": 206"), "{text}");
    assert!(!text.contains("SECRET-TOKEN"), "{text}");
    let quiet = run(prefetch().args(["-v", "cat", &url]));
    assert!(!stderr(&quiet).contains("GET bytes="), "{}", stderr(&quiet));
}
