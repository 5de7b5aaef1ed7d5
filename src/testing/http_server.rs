//! A local HTTP/1.1 server for the crate's tests, benchmarks and `prefetch serve`.
//!
//! [`TestServer`] listens on a loopback port (by default a free one) and
//! serves in-memory objects ([`TestServer::put_object`]) and, optionally, the
//! files under a directory ([`ServerBuilder::serve_dir`]). It answers `GET`
//! and `HEAD` with the headers a range-reading client depends on
//! (`Content-Length`, `Accept-Ranges`, a strong `ETag`, `Last-Modified`),
//! honours single byte ranges, `If-Match`, `If-Unmodified-Since` and
//! `If-Range`, and keeps connections alive. The fault-free path is meant to be
//! a strict, correct server: the crate's client is checked against it.
//!
//! On top of that it can misbehave on purpose, which is why it is written on
//! `std::net` with one thread per connection rather than on an HTTP library:
//! it needs byte-level control of what goes on the wire.
//!
//! - [`ServerBuilder::latency`] and [`ServerBuilder::bandwidth`] simulate a
//!   slow link (a delay before every response, a per-connection body rate).
//! - [`ServerBuilder::http10`] answers as an HTTP/1.0 server that closes every
//!   connection.
//! - [`Fault`]s are either queued ([`TestServer::push_fault`], one per `GET`,
//!   first in first out) or persistent ([`TestServer::set_persistent_fault`]).
//! - Every request is logged ([`TestServer::requests`]) and counted, so tests
//!   can assert how many requests a reader made and what it asked for.
//! - It can emulate the read paths of the GCS JSON API (metadata and media
//!   downloads pinned by generation) for objects added with
//!   [`ServerBuilder::gcs_object`]; see [`TestServer::replace_gcs_object`].
//!
//! It holds up against clients that hold on: a request head must arrive
//! within [`ServerBuilder::header_timeout`] (10 s), a kept-alive connection
//! idle for [`ServerBuilder::idle_timeout`] (60 s) is closed, and at most
//! [`ServerBuilder::max_connections`] (256) are served at once; beyond that
//! a connection is answered `503` at once.
//!
//! Dropping the [`TestServer`] stops it: the accept thread and every
//! connection thread end within about 50 ms (open connections are shut down,
//! and threads that sleep or wait re-check a shutdown flag that often).
//!
//! # Deliberate simplifications
//!
//! - Only single byte ranges are served. A `Range` header with several
//!   ranges, another unit or bad syntax is ignored and the whole object is
//!   sent with `200`, as RFC 9110 section 14.2 allows. `Range` on `HEAD` is
//!   ignored too (RFC 9110 defines range handling for `GET` only).
//! - Requests are parsed strictly: an HTTP/1.1 request without exactly one
//!   `Host`, a malformed request line or header line, or a bad
//!   `Content-Length` gets `400` and the connection is closed; a head over
//!   64 KiB gets `431`; an HTTP version other than 1.0 and 1.1 gets `505`.
//! - Request bodies are not read: a request that announces one is answered
//!   and its connection closed.
//! - Paths are percent-decoded before lookup; query strings are ignored for
//!   lookup but kept in [`RequestRecord::path`].
//! - `If-Unmodified-Since` and `If-Range` dates must be IMF-fixdates; other
//!   date forms are treated as invalid (and so ignored, or for `If-Range`,
//!   not matching).
//!
//! # Examples
//!
//! ```
//! use prefetch_reader::testing::{Fault, TestServer};
//! use std::io::{Read, Write};
//! use std::net::TcpStream;
//!
//! let server = TestServer::builder().object("/data.bin", b"hello world".to_vec()).build()?;
//! server.push_fault(Fault::Status(503)); // the first GET fails, the next one succeeds
//!
//! let mut stream = TcpStream::connect(server.addr())?;
//! stream.write_all(b"GET /data.bin HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")?;
//! let mut response = String::new();
//! stream.read_to_string(&mut response)?;
//! assert!(response.starts_with("HTTP/1.1 503 Service Unavailable\r\n"));
//! assert_eq!(server.get_count(), 1);
//! # Ok::<(), std::io::Error>(())
//! ```

use std::collections::{HashMap, VecDeque};
use std::fmt::{self, Write as _};
use std::fs::{self, File};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

mod gcs;

/// How often a connection thread that waits on its socket, stalls or paces
/// re-checks the shutdown flag. It bounds how long dropping a server can take
/// for a connection that is mid-stall; idle connections are shut down at once.
const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// Largest request head (request line plus headers) accepted; a larger one
/// gets `431`. Real clients send well under 2 KiB.
const MAX_HEAD_BYTES: usize = 64 * 1024;

/// Body write size when not paced: large enough that loopback throughput is
/// limited by the client, not by syscalls.
const CHUNK_BYTES: usize = 64 * 1024;

/// A paced body is written in chunks of a sixteenth of a second's worth of
/// bytes (so the rate is smooth at the scale of a benchmark's samples), but
/// no smaller than this, to keep syscalls and sleeps reasonable at low rates.
const MIN_PACED_CHUNK_BYTES: u64 = 1024;

/// Body bytes sent before [`Fault::Stall`] stalls: enough that the client has
/// seen the response start and is waiting mid-body.
const STALL_PREFIX_BYTES: u64 = 16;

/// `Last-Modified` of the first in-memory object: 2026-01-01T00:00:00Z. Each
/// [`TestServer::put_object`] advances this logical clock by one second,
/// because HTTP dates have one-second resolution and a replaced object must
/// look newer without the test sleeping.
const CLOCK_BASE_SECS: u64 = 1_767_225_600;

/// A connection being closed keeps reading (and discarding) what the client
/// still sends for up to this long or [`LINGER_BYTES`], so the close does not
/// turn into a reset that destroys the response (see `lingering_close`).
const LINGER_TIME: Duration = Duration::from_millis(500);

/// See [`LINGER_TIME`].
const LINGER_BYTES: usize = 1024 * 1024;

/// Default for [`ServerBuilder::header_timeout`]: 10 s for a whole request
/// head, about what nginx allows (`client_header_timeout`), so a client
/// that trickles a head a byte at a time (slowloris) cannot keep a thread.
pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// Default for [`ServerBuilder::idle_timeout`]: 60 s between requests on a
/// kept-alive connection, as nginx's `keepalive_timeout` (75 s); long
/// enough for a client's connection pool to reuse it between parts.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// Default for [`ServerBuilder::max_connections`]: 256 connections served
/// at once (a thread each), far more than a reader's concurrency, few
/// enough that one client cannot exhaust the machine's threads.
pub const DEFAULT_MAX_CONNECTIONS: usize = 256;

/// How long the accept thread waits to write a `503` to a connection over
/// the limit: it must never be held up by a client that does not read.
const REFUSAL_WRITE_TIMEOUT: Duration = Duration::from_millis(200);

/// How long the accept thread waits for a refused connection's request
/// (before answering) and for its close (after).
const REFUSAL_READ_TIMEOUT: Duration = Duration::from_millis(50);

/// Pause after a failed `accept` (for example out of file descriptors), so a
/// persistent error does not spin.
const ACCEPT_RETRY: Duration = Duration::from_millis(10);

/// How long `Drop` tries to connect to its own listener to wake the accept
/// thread.
const WAKE_TIMEOUT: Duration = Duration::from_secs(1);

/// A misbehaviour the server can be told to commit.
///
/// Queue one with [`TestServer::push_fault`] (it applies to the next `GET`,
/// whatever its path, and is then used up; a queued [`Fault::HeadRefused`]
/// applies to the next `HEAD` instead), or set one with
/// [`TestServer::set_persistent_fault`] (it applies to every request until
/// cleared). A queued fault takes precedence over the persistent one.
///
/// Faults that describe a range response ([`Fault::WrongContentRange`],
/// [`Fault::WrongTotal`]) have no effect on a request without a (satisfiable)
/// `Range`; faults that describe the body have no effect on `HEAD`, except
/// that the headers match what `GET` would send.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Answer with this status (500, 503, 404, 403 ...) and a short text body.
    Status(u16),
    /// Answer `429 Too Many Requests` with `Retry-After: <retry_after_secs>`.
    TooManyRequests {
        /// The value of the `Retry-After` header, in seconds.
        retry_after_secs: u64,
    },
    /// Send the headers and `after` body bytes, then drop the connection.
    ///
    /// std cannot set `SO_LINGER` to zero, so the connection is shut down and
    /// closed: the client sees the body end early (an `UnexpectedEof`-style
    /// truncation), or a reset if it still had data in flight.
    ResetMidBody {
        /// Body bytes sent before the connection is dropped.
        after: u64,
    },
    /// Send the normal `Content-Length` but only `after` body bytes, then
    /// close the connection cleanly.
    ShortBody {
        /// Body bytes sent before the connection is closed.
        after: u64,
    },
    /// Send the headers and a few body bytes, stall this long, then close the
    /// connection without sending the rest.
    Stall(Duration),
    /// Answer `200` with the whole object, ignoring `Range`, and send no
    /// `Accept-Ranges` (as Python's `http.server` does).
    IgnoreRange,
    /// As [`Fault::IgnoreRange`], without `Content-Length`: the body ends
    /// when the connection closes (as a server streaming what it makes).
    IgnoreRangeNoLength,
    /// As [`Fault::IgnoreRange`], then reset the connection after `after`
    /// body bytes.
    IgnoreRangeThenReset {
        /// Body bytes sent before the reset.
        after: u64,
    },
    /// Answer `206` with a `Content-Range` whose start is one byte off from
    /// the one asked for, and a body that matches that claim.
    WrongContentRange,
    /// Answer `206` with a `Content-Range` whose total is one more than the
    /// object's length (the range and the body are right).
    WrongTotal,
    /// Gzip the body (the selected range, for a `206`) and send
    /// `Content-Encoding: gzip`, whatever the request's `Accept-Encoding`.
    Gzip,
    /// Answer `HEAD` with this status (405 or 403) and no body.
    HeadRefused(u16),
    /// Send neither `ETag` nor `Last-Modified` (and so fail any `If-Match`).
    NoValidators,
    /// Send the `ETag` as weak, `W/"..."` (so it fails any `If-Match`, which
    /// uses strong comparison).
    WeakEtag,
    /// Send `Content-Length: abc`, then the body, then close the connection.
    BadContentLength,
    /// On a GCS media download, send an `x-goog-generation` one more than
    /// the generation served (as a server mixing up versions would).
    WrongGeneration,
    /// On a GCS media download, send no `x-goog-generation` (as some
    /// emulators do).
    NoGeneration,
    /// On a GCS media download, answer as GCS does for an object stored
    /// gzip-compressed when the client does not accept gzip: `200` with the
    /// whole object (here sent as it is), `Range` ignored, and
    /// `x-goog-stored-content-encoding: gzip`.
    StoredGzip,
}

/// One request as the server saw it, with the status it answered.
///
/// Header values are the first occurrence of that header, verbatim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestRecord {
    /// The request method, e.g. `GET` (empty if the request line was unreadable).
    pub method: String,
    /// The request target with its query string, e.g. `/data.bin?x=1`.
    pub path: String,
    /// The `Range` header.
    pub range: Option<String>,
    /// The `If-Match` header.
    pub if_match: Option<String>,
    /// The `If-Unmodified-Since` header.
    pub if_unmodified_since: Option<String>,
    /// The `Accept-Encoding` header.
    pub accept_encoding: Option<String>,
    /// Whether an `Authorization` header was sent (its value is not kept).
    pub has_authorization: bool,
    /// The `User-Agent` header.
    pub user_agent: Option<String>,
    /// The status code the server answered with.
    pub status: u16,
}

/// Configures and starts a [`TestServer`].
///
/// Created by [`TestServer::builder`]; one builder can start many servers.
#[derive(Clone)]
pub struct ServerBuilder {
    addr: SocketAddr,
    latency: Duration,
    bandwidth: Option<u64>,
    http10: bool,
    dir: Option<PathBuf>,
    objects: Vec<(String, Vec<u8>)>,
    gcs_objects: Vec<(String, String, Vec<u8>)>,
    gcs_token: Option<String>,
    header_timeout: Duration,
    idle_timeout: Duration,
    max_connections: usize,
}

impl Default for ServerBuilder {
    fn default() -> Self {
        ServerBuilder {
            addr: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0),
            latency: Duration::ZERO,
            bandwidth: None,
            http10: false,
            dir: None,
            objects: Vec::new(),
            gcs_objects: Vec::new(),
            gcs_token: None,
            header_timeout: DEFAULT_HEADER_TIMEOUT,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            max_connections: DEFAULT_MAX_CONNECTIONS,
        }
    }
}

impl fmt::Debug for ServerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Object bytes can be megabytes: show names and sizes only.
        let objects: Vec<(&str, usize)> = self
            .objects
            .iter()
            .map(|(path, data)| (path.as_str(), data.len()))
            .collect();
        let gcs_objects: Vec<(&str, &str, usize)> = self
            .gcs_objects
            .iter()
            .map(|(bucket, name, data)| (bucket.as_str(), name.as_str(), data.len()))
            .collect();
        f.debug_struct("ServerBuilder")
            .field("addr", &self.addr)
            .field("latency", &self.latency)
            .field("bandwidth", &self.bandwidth)
            .field("http10", &self.http10)
            .field("dir", &self.dir)
            .field("objects", &objects)
            .field("gcs_objects", &gcs_objects)
            .field("gcs_token", &self.gcs_token.as_ref().map(|_| "REDACTED"))
            .field("header_timeout", &self.header_timeout)
            .field("idle_timeout", &self.idle_timeout)
            .field("max_connections", &self.max_connections)
            .finish()
    }
}

impl ServerBuilder {
    /// Sleeps this long before the response headers of every request
    /// (including `HEAD` and error responses), like a link's round trip.
    ///
    /// Defaults to zero.
    pub fn latency(&mut self, d: Duration) -> &mut Self {
        self.latency = d;
        self
    }

    /// Caps the body rate of each connection at `bytes_per_sec`, by writing
    /// in chunks and sleeping between them (it never spins).
    ///
    /// Defaults to no cap. Zero is refused by [`ServerBuilder::build`].
    pub fn bandwidth(&mut self, bytes_per_sec: u64) -> &mut Self {
        self.bandwidth = Some(bytes_per_sec);
        self
    }

    /// Answers as HTTP/1.0 and closes the connection after each response.
    ///
    /// Defaults to `false` (HTTP/1.1 with keep-alive).
    pub fn http10(&mut self, yes: bool) -> &mut Self {
        self.http10 = yes;
        self
    }

    /// Serves the files under `dir` too (in-memory objects take precedence).
    ///
    /// Files are opened per request; the `ETag` derives from the file's size
    /// and modification time, `Last-Modified` from the latter. Paths with a
    /// `..` segment, or resolving (through symlinks) outside `dir`, get `403`.
    ///
    /// Defaults to no directory.
    pub fn serve_dir(&mut self, dir: impl Into<PathBuf>) -> &mut Self {
        self.dir = Some(dir.into());
        self
    }

    /// Adds an in-memory object at `path` (a leading `/` is added if
    /// missing). Objects are stored in the order added, each one logical
    /// second later than the previous.
    pub fn object(&mut self, path: &str, data: Vec<u8>) -> &mut Self {
        self.objects.push((path.to_owned(), data));
        self
    }

    /// Adds an object to the GCS JSON API emulation: `name` in `bucket`,
    /// served at `/storage/v1/b/{bucket}/o/{name}` (metadata) and
    /// `/download/storage/v1/b/{bucket}/o/{name}?alt=media` (media) with the
    /// name percent-encoded whole. Point a
    /// [`GcsSource`](crate::GcsSource) at [`TestServer::gcs_endpoint`].
    pub fn gcs_object(&mut self, bucket: &str, name: &str, data: Vec<u8>) -> &mut Self {
        self.gcs_objects
            .push((bucket.to_owned(), name.to_owned(), data));
        self
    }

    /// Makes the GCS emulation answer 401 to requests without
    /// `Authorization: Bearer TOKEN`.
    ///
    /// Defaults to no token required.
    pub fn gcs_token(&mut self, token: &str) -> &mut Self {
        self.gcs_token = Some(token.to_owned());
        self
    }

    /// How long a request head may take to arrive whole: from the
    /// connection's accept for its first request, from the head's first
    /// byte for later ones. A head still incomplete then gets `408` and
    /// the connection is closed; a fresh connection that sent nothing is
    /// just closed. Only heads are timed, never a response's body.
    ///
    /// Defaults to [`DEFAULT_HEADER_TIMEOUT`] (10 s).
    pub fn header_timeout(&mut self, timeout: Duration) -> &mut Self {
        self.header_timeout = timeout;
        self
    }

    /// How long a kept-alive connection may sit idle between a response and
    /// the next request before the server closes it.
    ///
    /// Defaults to [`DEFAULT_IDLE_TIMEOUT`] (60 s).
    pub fn idle_timeout(&mut self, timeout: Duration) -> &mut Self {
        self.idle_timeout = timeout;
        self
    }

    /// Most connections served at once. A connection beyond it is answered
    /// at once with `503 Service Unavailable`, `Retry-After: 1` and
    /// `Connection: close` rather than queued, so a client holding many
    /// connections open can neither take every thread nor leave others
    /// hanging without an answer. Zero is refused by
    /// [`ServerBuilder::build`].
    ///
    /// Defaults to [`DEFAULT_MAX_CONNECTIONS`] (256).
    pub fn max_connections(&mut self, n: usize) -> &mut Self {
        self.max_connections = n;
        self
    }

    /// The address to listen on.
    ///
    /// Defaults to `127.0.0.1:0`, a free loopback port.
    pub fn addr(&mut self, addr: SocketAddr) -> &mut Self {
        self.addr = addr;
        self
    }

    /// Binds the listener and starts the server.
    ///
    /// # Errors
    ///
    /// `InvalidInput` if the bandwidth is zero or the `serve_dir` path is not
    /// a directory, and any error from resolving that directory, binding the
    /// address or spawning the accept thread.
    pub fn build(&self) -> io::Result<TestServer> {
        if self.max_connections == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "test server max_connections must be at least 1",
            ));
        }
        if self.bandwidth == Some(0) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "test server bandwidth must be greater than zero",
            ));
        }
        let root = match &self.dir {
            None => None,
            Some(dir) => {
                let root = dir.canonicalize().map_err(|err| {
                    io::Error::new(err.kind(), format!("serve_dir {}: {err}", dir.display()))
                })?;
                if !root.is_dir() {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidInput,
                        format!("serve_dir {}: not a directory", dir.display()),
                    ));
                }
                Some(root)
            }
        };
        let mut store = Store::default();
        for (path, data) in &self.objects {
            store.put(path, data.clone());
        }
        let mut gcs_store = gcs::GcsStore::default();
        for (bucket, name, data) in &self.gcs_objects {
            gcs_store.put(bucket, name, data.clone());
        }
        let listener = TcpListener::bind(self.addr)?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            latency: self.latency,
            bandwidth: self.bandwidth,
            http10: self.http10,
            root,
            store: Mutex::new(store),
            gcs: Mutex::new(gcs_store),
            gcs_token: self.gcs_token.clone(),
            header_timeout: self.header_timeout,
            idle_timeout: self.idle_timeout,
            max_connections: self.max_connections,
            faults: Mutex::new(VecDeque::new()),
            persistent: Mutex::new(None),
            log: Mutex::new(Vec::new()),
            requests: AtomicUsize::new(0),
            gets: AtomicUsize::new(0),
            bytes_sent: AtomicU64::new(0),
            shutdown: AtomicBool::new(false),
        });
        let accept_shared = Arc::clone(&shared);
        let accept = thread::Builder::new()
            .name(format!("test-server-accept-{}", addr.port()))
            .spawn(move || accept_loop(&listener, &accept_shared))?;
        log::debug!("test server listening on {addr}");
        Ok(TestServer {
            addr,
            shared,
            accept: Some(accept),
        })
    }
}

/// A running local HTTP/1.1 server, started by [`TestServer::builder`] and
/// scripted with [`Fault`]s.
///
/// Dropping it stops the server: it stops accepting, shuts down open
/// connections and joins its threads.
pub struct TestServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
}

impl fmt::Debug for TestServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestServer")
            .field("addr", &self.addr)
            .field("requests", &self.request_count())
            .finish_non_exhaustive()
    }
}

impl TestServer {
    /// Returns a builder with the defaults: `127.0.0.1:0`, no latency, no
    /// bandwidth cap, HTTP/1.1, no objects.
    pub fn builder() -> ServerBuilder {
        ServerBuilder::default()
    }

    /// The address the server listens on (with the actual port).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The URL of `path` on this server, e.g. `http://127.0.0.1:PORT/path`.
    ///
    /// `path` may start with `/` or not; it is used verbatim otherwise (it is
    /// not percent-encoded). A server bound to an unspecified address
    /// (`0.0.0.0`, `::`) is addressed through loopback.
    pub fn url(&self, path: &str) -> String {
        let path = path.strip_prefix('/').unwrap_or(path);
        format!("http://{}/{path}", connect_addr(self.addr))
    }

    /// Adds or replaces the in-memory object at `path` (a leading `/` is
    /// added if missing).
    ///
    /// A replaced object gets a new `ETag` and a `Last-Modified` at least one
    /// second later (from a logical clock, not the wall clock). Responses
    /// already being sent keep sending the old bytes.
    pub fn put_object(&self, path: &str, data: Vec<u8>) {
        lock(&self.shared.store).put(path, data);
    }

    /// Removes the in-memory object at `path`; later requests get `404`
    /// (unless `serve_dir` has a file there). Returns whether it existed.
    pub fn remove_object(&self, path: &str) -> bool {
        lock(&self.shared.store)
            .objects
            .remove(&normalize_path(path))
            .is_some()
    }

    /// The endpoint of the GCS JSON API emulation, `http://127.0.0.1:PORT`
    /// (see [`ServerBuilder::gcs_object`]).
    pub fn gcs_endpoint(&self) -> String {
        format!("http://{}", connect_addr(self.addr))
    }

    /// Adds or replaces `name` in `bucket` in the GCS emulation, as a new
    /// generation, and returns it. Media requests for an older generation
    /// get 404 from then on, as on GCS; responses already being sent keep
    /// sending the old bytes.
    pub fn replace_gcs_object(&self, bucket: &str, name: &str, data: Vec<u8>) -> u64 {
        lock(&self.shared.gcs).put(bucket, name, data)
    }

    /// Removes `name` from `bucket` in the GCS emulation; returns whether
    /// it existed.
    pub fn remove_gcs_object(&self, bucket: &str, name: &str) -> bool {
        lock(&self.shared.gcs).remove(bucket, name)
    }

    /// The current generation of `name` in `bucket` in the GCS emulation.
    pub fn gcs_generation(&self, bucket: &str, name: &str) -> Option<u64> {
        lock(&self.shared.gcs).generation(bucket, name)
    }

    /// Queues a fault for the next `GET` request (for
    /// [`Fault::HeadRefused`], the next `HEAD`), whatever its path. Faults are
    /// used in the order queued, one per request.
    pub fn push_fault(&self, fault: Fault) {
        lock(&self.shared.faults).push_back(fault);
    }

    /// Drops every queued fault (not the persistent one).
    pub fn clear_faults(&self) {
        lock(&self.shared.faults).clear();
    }

    /// Sets (or with `None`, clears) a fault applied to every request until
    /// cleared; a queued fault takes precedence for its one request.
    pub fn set_persistent_fault(&self, fault: Option<Fault>) {
        *lock(&self.shared.persistent) = fault;
    }

    /// Every request received since start (or the last
    /// [`TestServer::reset_counters`]), oldest first.
    ///
    /// A request is logged before its response is sent, so a client that
    /// has read a response can rely on finding its request here.
    pub fn requests(&self) -> Vec<RequestRecord> {
        lock(&self.shared.log).clone()
    }

    /// How many requests were received, malformed ones included.
    pub fn request_count(&self) -> usize {
        self.shared.requests.load(Ordering::SeqCst)
    }

    /// How many `GET` requests were received.
    pub fn get_count(&self) -> usize {
        self.shared.gets.load(Ordering::SeqCst)
    }

    /// How many body bytes were written to clients (headers not included).
    pub fn bytes_sent(&self) -> u64 {
        self.shared.bytes_sent.load(Ordering::SeqCst)
    }

    /// Zeroes the counters and clears the request log.
    pub fn reset_counters(&self) {
        let mut log = lock(&self.shared.log);
        log.clear();
        self.shared.requests.store(0, Ordering::SeqCst);
        self.shared.gets.store(0, Ordering::SeqCst);
        self.shared.bytes_sent.store(0, Ordering::SeqCst);
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.shared.shutdown.store(true, Ordering::SeqCst);
        // The accept thread blocks in `accept` (polling would add latency to
        // every new connection); a connection of our own wakes it up.
        let woke = TcpStream::connect_timeout(&connect_addr(self.addr), WAKE_TIMEOUT);
        if let Some(accept) = self.accept.take() {
            match woke {
                Ok(_) => {
                    if accept.join().is_err() {
                        log::warn!("test server {}: accept thread panicked", self.addr);
                    }
                }
                Err(err) => {
                    log::warn!(
                        "test server {}: cannot wake accept thread: {err}",
                        self.addr
                    );
                }
            }
        }
    }
}

/// The address to connect to for a listener on `addr`.
fn connect_addr(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => {
            SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), addr.port())
        }
        IpAddr::V6(ip) if ip.is_unspecified() => {
            SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), addr.port())
        }
        _ => addr,
    }
}

/// State shared by the handle, the accept thread and connection threads.
struct Shared {
    latency: Duration,
    bandwidth: Option<u64>,
    http10: bool,
    root: Option<PathBuf>,
    store: Mutex<Store>,
    gcs: Mutex<gcs::GcsStore>,
    gcs_token: Option<String>,
    header_timeout: Duration,
    idle_timeout: Duration,
    max_connections: usize,
    faults: Mutex<VecDeque<Fault>>,
    persistent: Mutex<Option<Fault>>,
    log: Mutex<Vec<RequestRecord>>,
    requests: AtomicUsize,
    gets: AtomicUsize,
    bytes_sent: AtomicU64,
    shutdown: AtomicBool,
}

/// Locks a mutex, ignoring poisoning: a panicking test thread must not turn
/// every later request into a second panic.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Paces a body to a rate: each chunk sent moves the time the next may go
/// out by its duration at the rate. Time spent not sending (a client that
/// stopped reading, so writes blocked) earns at most one chunk's worth of
/// credit, so a body never bursts above the rate after a stall.
#[derive(Debug, Clone, Copy)]
struct Pacer {
    rate: u64,
    /// What one chunk takes at the rate: the most credit idle time earns.
    credit: Duration,
    /// When the next bytes may go out.
    next: Instant,
}

impl Pacer {
    fn new(rate: u64, chunk: u64, now: Instant) -> Pacer {
        Pacer {
            rate,
            credit: Duration::from_secs_f64(chunk as f64 / rate as f64),
            next: now,
        }
    }

    /// `n` bytes went out at `now`: how long to wait before the next.
    fn sent(&mut self, n: u64, now: Instant) -> Duration {
        let earliest = now.checked_sub(self.credit).unwrap_or(now);
        self.next = self.next.max(earliest) + Duration::from_secs_f64(n as f64 / self.rate as f64);
        self.next.saturating_duration_since(now)
    }
}

/// The in-memory objects and the logical clock that dates them.
#[derive(Default)]
struct Store {
    objects: HashMap<String, MemoryObject>,
    /// Seconds after [`CLOCK_BASE_SECS`] of the next put.
    clock: u64,
}

impl Store {
    fn put(&mut self, path: &str, data: Vec<u8>) {
        let generation = self.clock;
        self.clock += 1;
        // The generation alone makes the tag unique within a server; the
        // length is there to make tags easier to tell apart in logs. Hashing
        // the content would cost a second per GiB in benchmarks.
        let etag = format!("{generation:08x}{:012x}", data.len());
        let object = MemoryObject {
            data: Arc::new(data),
            etag,
            modified: CLOCK_BASE_SECS + generation,
        };
        self.objects.insert(normalize_path(path), object);
    }
}

fn normalize_path(path: &str) -> String {
    if path.starts_with('/') {
        path.to_owned()
    } else {
        format!("/{path}")
    }
}

struct MemoryObject {
    data: Arc<Vec<u8>>,
    /// The opaque tag, without quotes.
    etag: String,
    /// Unix seconds.
    modified: u64,
}

/// The selected representation of a request's target.
struct Representation {
    content: Content,
    len: u64,
    /// The opaque tag, without quotes.
    etag: String,
    /// Unix seconds.
    modified: u64,
}

#[derive(Clone)]
enum Content {
    Memory(Arc<Vec<u8>>),
    File(PathBuf),
}

fn accept_loop(listener: &TcpListener, shared: &Arc<Shared>) {
    // A clone of each connection's stream, so shutdown can unblock it at once.
    let mut connections: Vec<(JoinHandle<()>, Option<TcpStream>)> = Vec::new();
    for incoming in listener.incoming() {
        if shared.shutdown.load(Ordering::SeqCst) {
            break;
        }
        let stream = match incoming {
            Ok(stream) => stream,
            Err(err) => {
                log::warn!("test server: accept failed: {err}");
                thread::sleep(ACCEPT_RETRY);
                continue;
            }
        };
        connections.retain(|(handle, _)| !handle.is_finished());
        if connections.len() >= shared.max_connections {
            refuse(stream);
            continue;
        }
        let clone = stream.try_clone().ok();
        let conn_shared = Arc::clone(shared);
        let spawned = thread::Builder::new()
            .name("test-server-connection".to_owned())
            .spawn(move || serve_connection(&conn_shared, stream));
        match spawned {
            Ok(handle) => connections.push((handle, clone)),
            Err(err) => log::warn!("test server: cannot spawn a connection thread: {err}"),
        }
    }
    for stream in connections.iter().filter_map(|(_, stream)| stream.as_ref()) {
        // An error here means the connection is already gone: fine.
        let _ = stream.shutdown(Shutdown::Both);
    }
    for (handle, _) in connections {
        if handle.join().is_err() {
            log::warn!("test server: a connection thread panicked");
        }
    }
}

/// Answers a connection over the limit with `503` and closes it, from the
/// accept thread, never waiting long on it. What the client sent (its
/// request, usually already there) is read first and after, so the close
/// is not a reset that would destroy the answer.
fn refuse(mut stream: TcpStream) {
    log::debug!("test server: connection limit reached; answering 503");
    let _ = stream.set_write_timeout(Some(REFUSAL_WRITE_TIMEOUT));
    let _ = stream.set_read_timeout(Some(REFUSAL_READ_TIMEOUT));
    let mut discard = [0; 4096];
    let _ = stream.read(&mut discard);
    let body = "too many connections\n";
    let response = format!(
        "HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nConnection: close\r\n\
         Content-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    // A client that is gone or does not read loses only its own answer.
    let _ = stream.write_all(response.as_bytes());
    let _ = stream.shutdown(Shutdown::Write);
    let until = Instant::now() + REFUSAL_READ_TIMEOUT;
    while Instant::now() < until {
        match stream.read(&mut discard) {
            Ok(1..) => {}
            _ => break,
        }
    }
}

fn serve_connection(shared: &Shared, stream: TcpStream) {
    let peer = stream.peer_addr().ok();
    let mut connection = Connection {
        stream,
        shared,
        buf: Vec::new(),
        aborted: false,
    };
    match connection.run() {
        Ok(()) => log::trace!("test server: connection from {peer:?} closed"),
        // Clients hanging up mid-response is routine in fault tests.
        Err(err) => log::debug!("test server: connection from {peer:?} ended: {err}"),
    }
}

/// What reading a request head produced.
enum Head {
    Complete(Vec<u8>),
    TooLarge,
    /// The head did not arrive whole within the header timeout.
    TimedOut,
    /// The client closed the connection (or the server is shutting down).
    Closed,
}

/// A parsed request head.
struct Request {
    method: String,
    /// The origin-form target, with its query.
    target: String,
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    minor: u8,
    /// Names in lower case.
    headers: Vec<(String, String)>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn header_count(&self, name: &str) -> usize {
        self.headers.iter().filter(|(n, _)| n == name).count()
    }

    /// Whether a comma-separated header (like `Connection`) has `token`.
    fn has_token(&self, name: &str, token: &str) -> bool {
        self.headers
            .iter()
            .filter(|(n, _)| n == name)
            .flat_map(|(_, v)| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    }

    fn record(&self, status: u16) -> RequestRecord {
        let header = |name: &str| self.header(name).map(str::to_owned);
        RequestRecord {
            method: self.method.clone(),
            path: self.target.clone(),
            range: header("range"),
            if_match: header("if-match"),
            if_unmodified_since: header("if-unmodified-since"),
            accept_encoding: header("accept-encoding"),
            has_authorization: self.header("authorization").is_some(),
            user_agent: header("user-agent"),
            status,
        }
    }
}

/// A request that cannot be served: the status to answer and why.
struct BadRequest {
    status: u16,
    reason: &'static str,
}

fn bad(reason: &'static str) -> BadRequest {
    BadRequest {
        status: 400,
        reason,
    }
}

fn parse_request(head: &[u8]) -> Result<Request, BadRequest> {
    let text = std::str::from_utf8(head).map_err(|_| bad("request head is not UTF-8"))?;
    let mut lines = text
        .split('\n')
        .map(|line| line.strip_suffix('\r').unwrap_or(line));
    let request_line = lines.next().unwrap_or_default();
    let mut parts = request_line.split(' ');
    let (method, target, version) = match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(m), Some(t), Some(v), None) => (m, t, v),
        _ => return Err(bad("malformed request line")),
    };
    if method.is_empty() || !method.bytes().all(is_token_byte) {
        return Err(bad("malformed method"));
    }
    let minor = match version {
        "HTTP/1.1" => 1,
        "HTTP/1.0" => 0,
        _ if version.starts_with("HTTP/") => {
            return Err(BadRequest {
                status: 505,
                reason: "HTTP version not supported",
            })
        }
        _ => return Err(bad("malformed HTTP version")),
    };
    let target = origin_form(target).ok_or_else(|| bad("malformed request target"))?;
    let mut headers = Vec::new();
    for line in lines {
        if line.is_empty() {
            continue;
        }
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| bad("header line without ':'"))?;
        // No whitespace before the colon (RFC 9112 section 5.1), no obsolete
        // line folding.
        if name.is_empty() || !name.bytes().all(is_token_byte) {
            return Err(bad("malformed header name"));
        }
        headers.push((name.to_ascii_lowercase(), value.trim().to_owned()));
    }
    let request = Request {
        method: method.to_owned(),
        target,
        minor,
        headers,
    };
    let hosts = request.header_count("host");
    if hosts > 1 || (minor == 1 && hosts == 0) {
        return Err(bad("HTTP/1.1 request without exactly one Host header"));
    }
    if request.header_count("content-length") > 1 {
        return Err(bad("several Content-Length headers"));
    }
    if let Some(length) = request.header("content-length") {
        if parse_digits(length).is_none() {
            return Err(bad("malformed Content-Length"));
        }
    }
    Ok(request)
}

/// `tchar` of RFC 9110 section 5.6.2.
fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// The origin-form (`/path?query`) of a request target, accepting the
/// absolute form (`http://host/path`) as RFC 9112 requires.
fn origin_form(target: &str) -> Option<String> {
    if target.starts_with('/') {
        return target
            .bytes()
            .all(|b| b.is_ascii_graphic())
            .then(|| target.to_owned());
    }
    let rest = target
        .strip_prefix("http://")
        .or_else(|| target.strip_prefix("https://"))?;
    let path = rest.find(['/', '?']).map_or("/", |i| &rest[i..]);
    let path = if path.starts_with('?') {
        format!("/{path}")
    } else {
        path.to_owned()
    };
    path.bytes().all(|b| b.is_ascii_graphic()).then_some(path)
}

/// How a response's body is cut short on purpose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cut {
    None,
    Reset(u64),
    Short(u64),
    Stall(Duration),
}

enum Body {
    Empty,
    Bytes(Vec<u8>),
    Slice {
        content: Content,
        start: u64,
        len: u64,
    },
}

impl Body {
    fn len(&self) -> u64 {
        match self {
            Body::Empty => 0,
            Body::Bytes(bytes) => bytes.len() as u64,
            Body::Slice { len, .. } => *len,
        }
    }

    fn reader(&self) -> io::Result<Box<dyn Read + '_>> {
        Ok(match self {
            Body::Empty => Box::new(io::empty()),
            Body::Bytes(bytes) => Box::new(bytes.as_slice()),
            Body::Slice {
                content: Content::Memory(data),
                start,
                len,
            } => {
                let start = usize::try_from(*start).map_err(io::Error::other)?;
                let end = start + usize::try_from(*len).map_err(io::Error::other)?;
                Box::new(data.get(start..end).unwrap_or_default())
            }
            Body::Slice {
                content: Content::File(path),
                start,
                len,
            } => {
                let mut file = File::open(path)?;
                file.seek(SeekFrom::Start(*start))?;
                Box::new(file.take(*len))
            }
        })
    }

    fn into_bytes(self) -> io::Result<Vec<u8>> {
        match self {
            Body::Bytes(bytes) => Ok(bytes),
            other => {
                let mut bytes = Vec::new();
                other.reader()?.read_to_end(&mut bytes)?;
                Ok(bytes)
            }
        }
    }
}

/// Everything decided about a response before any of it is written.
struct Plan {
    status: u16,
    /// Headers besides the status line, `Date`, `Content-Length` and
    /// `Connection`, which `send` adds.
    headers: Vec<(&'static str, String)>,
    body: Body,
    cut: Cut,
    length: Length,
    close: bool,
}

/// The `Content-Length` a response sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Length {
    /// The body's.
    Sent,
    /// `abc` ([`Fault::BadContentLength`]).
    Bad,
    /// None: the body ends as the connection closes.
    Omitted,
}

impl Plan {
    fn new(status: u16, body: Body) -> Plan {
        Plan {
            status,
            headers: Vec::new(),
            body,
            cut: Cut::None,
            length: Length::Sent,
            close: false,
        }
    }

    /// An error response with a short text body.
    fn text(status: u16, message: &str) -> Plan {
        let mut plan = Plan::new(status, Body::Bytes(format!("{message}\n").into_bytes()));
        plan.header("Content-Type", "text/plain; charset=utf-8");
        plan
    }

    fn header(&mut self, name: &'static str, value: impl Into<String>) -> &mut Plan {
        self.headers.push((name, value.into()));
        self
    }
}

impl Shared {
    fn shutting_down(&self) -> bool {
        self.shutdown.load(Ordering::SeqCst)
    }

    fn count(&self, method: &str, record: RequestRecord) {
        self.requests.fetch_add(1, Ordering::SeqCst);
        if method == "GET" {
            self.gets.fetch_add(1, Ordering::SeqCst);
        }
        lock(&self.log).push(record);
    }

    fn take_fault(&self, method: &str) -> Option<Fault> {
        let queued = {
            let mut faults = lock(&self.faults);
            let for_head = |fault: &Fault| matches!(fault, Fault::HeadRefused(_));
            let position = match method {
                "GET" => faults.iter().position(|f| !for_head(f)),
                "HEAD" => faults.iter().position(for_head),
                _ => None,
            };
            position.and_then(|i| faults.remove(i))
        };
        queued.or_else(|| lock(&self.persistent).clone())
    }

    fn lookup(&self, path: &str) -> Result<Representation, u16> {
        if let Some(object) = lock(&self.store).objects.get(path) {
            return Ok(Representation {
                content: Content::Memory(Arc::clone(&object.data)),
                len: object.data.len() as u64,
                etag: object.etag.clone(),
                modified: object.modified,
            });
        }
        match &self.root {
            Some(root) => file_representation(root, path),
            None => Err(404),
        }
    }

    /// Decides the response to `request`, given the fault that applies to it.
    fn plan(&self, request: &Request, fault: Option<&Fault>) -> io::Result<Plan> {
        let is_head = request.method == "HEAD";
        if request.method != "GET" && !is_head {
            let mut plan = Plan::text(405, "method not allowed");
            plan.header("Allow", "GET, HEAD");
            return Ok(plan);
        }
        match fault {
            Some(Fault::HeadRefused(status)) if is_head => {
                let mut plan = Plan::new(*status, Body::Empty);
                if *status == 405 {
                    plan.header("Allow", "GET");
                }
                return Ok(plan);
            }
            Some(Fault::Status(status)) => {
                return Ok(Plan::text(
                    *status,
                    &format!("injected fault: status {status}"),
                ))
            }
            Some(Fault::TooManyRequests { retry_after_secs }) => {
                let mut plan = Plan::text(429, "injected fault: too many requests");
                plan.header("Retry-After", retry_after_secs.to_string());
                return Ok(plan);
            }
            _ => {}
        }
        let (representation, gcs_generation) = match gcs::route(self, request) {
            gcs::Route::Answer(plan) => return Ok(plan),
            gcs::Route::Media {
                representation,
                generation,
                hash,
            } => (representation, Some((generation, hash))),
            gcs::Route::NotGcs => {
                let path = request.target.split('?').next().unwrap_or_default();
                let Some(path) = percent_decode(path) else {
                    return Ok(Plan::text(400, "malformed percent-encoding in path"));
                };
                match self.lookup(&path) {
                    Ok(representation) => (representation, None),
                    Err(403) => return Ok(Plan::text(403, "forbidden")),
                    Err(status) => return Ok(Plan::text(status, "not found")),
                }
            }
        };
        let len = representation.len;
        let etag = match fault {
            Some(Fault::NoValidators) => None,
            Some(Fault::WeakEtag) => Some(format!("W/\"{}\"", representation.etag)),
            _ => Some(format!("\"{}\"", representation.etag)),
        };
        let modified = match fault {
            Some(Fault::NoValidators) => None,
            _ => Some(representation.modified),
        };
        let mut validators = Vec::new();
        if let Some(etag) = &etag {
            validators.push(("ETag", etag.clone()));
        }
        if let Some(modified) = modified {
            validators.push(("Last-Modified", http_date(modified)));
        }
        if let Some((generation, hash)) = gcs_generation {
            let sent = match fault {
                Some(Fault::WrongGeneration) => generation + 1,
                _ => generation,
            };
            if fault != Some(&Fault::NoGeneration) {
                validators.push(("x-goog-generation", sent.to_string()));
            }
            validators.push(("x-goog-hash", hash));
            if fault == Some(&Fault::StoredGzip) {
                validators.push(("x-goog-stored-content-encoding", "gzip".to_owned()));
            }
        }

        // Preconditions come before Range (RFC 9110 section 13.2.2), and
        // If-Unmodified-Since counts only without If-Match.
        let failed = if let Some(if_match) = request.header("if-match") {
            !if_match_passes(if_match, etag.as_deref())
        } else if let (Some(since), Some(modified)) =
            (request.header("if-unmodified-since"), modified)
        {
            parse_http_date(since).is_some_and(|since| modified > since)
        } else {
            false
        };
        if failed {
            let mut plan = Plan::text(412, "precondition failed");
            plan.headers.extend(validators);
            return Ok(plan);
        }

        let ignores_range = matches!(
            fault,
            Some(
                Fault::IgnoreRange
                    | Fault::IgnoreRangeNoLength
                    | Fault::IgnoreRangeThenReset { .. }
                    | Fault::StoredGzip
            )
        );
        let range = if request.method == "GET" && !ignores_range {
            single_range(request).filter(|_| if_range_passes(request, etag.as_deref(), modified))
        } else {
            None
        };
        let content = representation.content;
        let mut plan = match range.map(|spec| spec.resolve(len)) {
            None => Plan::new(
                200,
                Body::Slice {
                    content,
                    start: 0,
                    len,
                },
            ),
            Some(None) => {
                let mut plan = Plan::new(416, Body::Empty);
                plan.header("Content-Range", format!("bytes */{len}"));
                plan
            }
            Some(Some((first, last))) => {
                let (first, last) = match fault {
                    Some(Fault::WrongContentRange) => off_by_one(first, last, len),
                    _ => (first, last),
                };
                let total = match fault {
                    Some(Fault::WrongTotal) => len + 1,
                    _ => len,
                };
                let body_len = (last + 1).saturating_sub(first);
                let mut plan = Plan::new(
                    206,
                    Body::Slice {
                        content,
                        start: first,
                        len: body_len,
                    },
                );
                plan.header("Content-Range", format!("bytes {first}-{last}/{total}"));
                plan
            }
        };
        plan.header("Content-Type", "application/octet-stream");
        if !ignores_range {
            plan.header("Accept-Ranges", "bytes");
        }
        plan.headers.extend(validators);
        if plan.status == 416 {
            return Ok(plan);
        }
        match fault {
            Some(Fault::Gzip) => {
                let body = std::mem::replace(&mut plan.body, Body::Empty);
                plan.body = Body::Bytes(gzip(&body.into_bytes()?)?);
                plan.header("Content-Encoding", "gzip");
            }
            Some(Fault::ResetMidBody { after } | Fault::IgnoreRangeThenReset { after }) => {
                plan.cut = Cut::Reset(*after)
            }
            Some(Fault::ShortBody { after }) => plan.cut = Cut::Short(*after),
            Some(Fault::Stall(d)) => plan.cut = Cut::Stall(*d),
            Some(Fault::BadContentLength) => plan.length = Length::Bad,
            Some(Fault::IgnoreRangeNoLength) => plan.length = Length::Omitted,
            _ => {}
        }
        Ok(plan)
    }
}

/// The `(first, last)` of [`Fault::WrongContentRange`]: the start moved by
/// one, inside the object where possible.
fn off_by_one(first: u64, last: u64, len: u64) -> (u64, u64) {
    if first < last {
        (first + 1, last)
    } else if first + 1 < len {
        (first + 1, first + 1)
    } else if first > 0 {
        (first - 1, last)
    } else {
        // A one-byte object: there is no other byte to claim, so claim one
        // past the end (with an empty body).
        (first + 1, last)
    }
}

fn gzip(data: &[u8]) -> io::Result<Vec<u8>> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(data)?;
    encoder.finish()
}

fn file_representation(root: &Path, path: &str) -> Result<Representation, u16> {
    let mut full = root.to_path_buf();
    for segment in path.split('/') {
        if segment.is_empty() || segment == "." {
            continue;
        }
        // Exactly one normal component: refuses "..", and on Windows drive
        // prefixes and backslash-separated segments.
        let mut components = Path::new(segment).components();
        match (components.next(), components.next()) {
            (Some(Component::Normal(_)), None) if !segment.contains('\\') => full.push(segment),
            _ => return Err(403),
        }
    }
    let canonical = full.canonicalize().map_err(|_| 404_u16)?;
    if !canonical.starts_with(root) {
        return Err(403);
    }
    let metadata = fs::metadata(&canonical).map_err(|_| 404_u16)?;
    if !metadata.is_file() {
        return Err(404);
    }
    let mtime = metadata
        .modified()
        .ok()
        .and_then(|time| time.duration_since(UNIX_EPOCH).ok())
        .unwrap_or_default();
    Ok(Representation {
        content: Content::File(canonical),
        len: metadata.len(),
        etag: format!("{:x}-{:x}", metadata.len(), mtime.as_nanos()),
        modified: mtime.as_secs(),
    })
}

fn percent_decode(path: &str) -> Option<String> {
    let bytes = path.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            if !hex.iter().all(u8::is_ascii_hexdigit) {
                return None;
            }
            let hex = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// `If-Match` with strong comparison (RFC 9110 section 13.1.1): a weak or
/// absent current tag never matches, except for `*`.
fn if_match_passes(header: &str, current: Option<&str>) -> bool {
    if header.trim() == "*" {
        return true;
    }
    match current {
        Some(current) if !current.starts_with("W/") => {
            header.split(',').map(str::trim).any(|tag| tag == current)
        }
        _ => false,
    }
}

/// `If-Range` (RFC 9110 section 13.1.5): the range counts only if the tag
/// matches strongly or the date equals `Last-Modified`.
fn if_range_passes(request: &Request, etag: Option<&str>, modified: Option<u64>) -> bool {
    let Some(value) = request.header("if-range") else {
        return true;
    };
    if value.starts_with('"') || value.starts_with("W/") {
        return etag.is_some_and(|etag| !etag.starts_with("W/") && etag == value);
    }
    match (parse_http_date(value), modified) {
        (Some(date), Some(modified)) => date == modified,
        _ => false,
    }
}

/// One byte range as requested.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RangeSpec {
    /// `bytes=a-b`
    FromTo(u64, u64),
    /// `bytes=a-`
    From(u64),
    /// `bytes=-n`
    Suffix(u64),
}

impl RangeSpec {
    /// The inclusive `(first, last)` within an object of `len` bytes, or
    /// `None` if unsatisfiable.
    fn resolve(self, len: u64) -> Option<(u64, u64)> {
        match self {
            RangeSpec::FromTo(first, _) | RangeSpec::From(first) if first >= len => None,
            RangeSpec::FromTo(first, last) => Some((first, last.min(len - 1))),
            RangeSpec::From(first) => Some((first, len - 1)),
            RangeSpec::Suffix(n) if n == 0 || len == 0 => None,
            RangeSpec::Suffix(n) => Some((len - n.min(len), len - 1)),
        }
    }
}

/// The request's range if it has exactly one `Range` header holding exactly
/// one valid byte range; anything else means "ignore Range".
fn single_range(request: &Request) -> Option<RangeSpec> {
    if request.header_count("range") != 1 {
        return None;
    }
    parse_range(request.header("range")?)
}

fn parse_range(value: &str) -> Option<RangeSpec> {
    let (unit, set) = value.trim().split_once('=')?;
    if !unit.eq_ignore_ascii_case("bytes") || set.contains(',') {
        return None;
    }
    let (first, last) = set.trim().split_once('-')?;
    if first.is_empty() {
        return parse_digits(last).map(RangeSpec::Suffix);
    }
    let first = parse_digits(first)?;
    if last.is_empty() {
        return Some(RangeSpec::From(first));
    }
    let last = parse_digits(last)?;
    (first <= last).then_some(RangeSpec::FromTo(first, last))
}

/// A non-empty run of ASCII digits (`u64::from_str` would also take `+`).
fn parse_digits(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

fn reason_phrase(status: u16) -> &'static str {
    match status {
        200 => "OK",
        206 => "Partial Content",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        410 => "Gone",
        412 => "Precondition Failed",
        416 => "Range Not Satisfiable",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        _ => "Unknown",
    }
}

struct Connection<'a> {
    stream: TcpStream,
    shared: &'a Shared,
    /// Bytes read but not yet parsed (the start of a pipelined request).
    buf: Vec<u8>,
    /// Set by [`Fault::ResetMidBody`]: drop the connection without a
    /// lingering close.
    aborted: bool,
}

impl Connection<'_> {
    fn run(&mut self) -> io::Result<()> {
        // Timeouts turn blocking socket calls into polls of the shutdown flag.
        self.stream.set_read_timeout(Some(POLL_INTERVAL))?;
        self.stream.set_write_timeout(Some(POLL_INTERVAL))?;
        // Headers and body go out as separate writes; Nagle's algorithm with
        // the client's delayed ACK would add 40 ms to each response.
        self.stream.set_nodelay(true)?;
        let mut first = true;
        loop {
            let head = self.read_head(first)?;
            first = false;
            let keep_alive = match head {
                Head::Closed => return Ok(()),
                Head::TimedOut => {
                    self.reject(
                        &[],
                        BadRequest {
                            status: 408,
                            reason: "request head timed out",
                        },
                    )?;
                    false
                }
                Head::TooLarge => {
                    self.reject(
                        &[],
                        BadRequest {
                            status: 431,
                            reason: "request head too large",
                        },
                    )?;
                    false
                }
                Head::Complete(head) => match parse_request(&head) {
                    Ok(request) => self.handle(&request)?,
                    Err(bad) => {
                        self.reject(&head, bad)?;
                        false
                    }
                },
            };
            if self.aborted {
                return Ok(());
            }
            if !keep_alive {
                self.lingering_close();
                return Ok(());
            }
        }
    }

    /// Closes cleanly: sends FIN, then reads and discards what the client
    /// still sends for a while. Closing a socket with unread input makes the
    /// kernel send a reset, which can destroy the response before the client
    /// reads it (RFC 9112 section 9.6).
    fn lingering_close(&mut self) {
        if self.stream.shutdown(Shutdown::Write).is_err() {
            return;
        }
        let deadline = Instant::now() + LINGER_TIME;
        let mut discarded = 0;
        let mut chunk = [0; 8192];
        while Instant::now() < deadline && discarded < LINGER_BYTES {
            match self.stream.read(&mut chunk) {
                Ok(0) => return,
                Ok(n) => discarded += n,
                Err(err) if is_timeout(&err) => {
                    if self.shared.shutting_down() {
                        return;
                    }
                }
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return,
            }
        }
    }

    /// Reads up to the blank line ending a request head, within the
    /// server's deadlines: the whole head within the header timeout (from
    /// now for a connection's `first` request, else from the head's first
    /// byte), after at most the idle timeout of silence between requests.
    fn read_head(&mut self, first: bool) -> io::Result<Head> {
        let mut chunk = [0; 8192];
        let waiting_since = Instant::now();
        let mut head_deadline = first.then(|| waiting_since + self.shared.header_timeout);
        loop {
            // Clients may send stray CRLFs between requests (RFC 9112 section 2.2).
            let skip = self
                .buf
                .iter()
                .take_while(|&&b| b == b'\r' || b == b'\n')
                .count();
            self.buf.drain(..skip);
            if let Some(end) = find_head_end(&self.buf) {
                let rest = self.buf.split_off(end);
                return Ok(Head::Complete(std::mem::replace(&mut self.buf, rest)));
            }
            if self.buf.len() > MAX_HEAD_BYTES {
                return Ok(Head::TooLarge);
            }
            if !self.buf.is_empty() && head_deadline.is_none() {
                head_deadline = Some(Instant::now() + self.shared.header_timeout);
            }
            let now = Instant::now();
            let head_late = head_deadline.is_some_and(|deadline| now >= deadline);
            if head_late && !self.buf.is_empty() {
                return Ok(Head::TimedOut);
            }
            // Silence, on a fresh connection or between requests, is not a
            // request to answer: just close.
            if self.buf.is_empty() && (head_late || now >= waiting_since + self.shared.idle_timeout)
            {
                // The accept thread holds a clone of the stream: shut the
                // socket down so the client sees the close now.
                let _ = self.stream.shutdown(Shutdown::Both);
                return Ok(Head::Closed);
            }
            match self.stream.read(&mut chunk) {
                Ok(0) => return Ok(Head::Closed),
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(err) if is_timeout(&err) => {
                    if self.shared.shutting_down() {
                        return Ok(Head::Closed);
                    }
                }
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) => return Err(err),
            }
        }
    }

    fn reject(&mut self, head: &[u8], bad: BadRequest) -> io::Result<()> {
        // Record what can be made out of the request line.
        let line = head.split(|&b| b == b'\n').next().unwrap_or_default();
        let line = String::from_utf8_lossy(line);
        let mut parts = line.split_whitespace();
        let record = RequestRecord {
            method: parts.next().unwrap_or_default().to_owned(),
            path: parts.next().unwrap_or_default().to_owned(),
            range: None,
            if_match: None,
            if_unmodified_since: None,
            accept_encoding: None,
            has_authorization: false,
            user_agent: None,
            status: bad.status,
        };
        log::debug!("test server: {} ({})", bad.reason, bad.status);
        let method = record.method.clone();
        self.shared.count(&method, record);
        let mut plan = Plan::text(bad.status, bad.reason);
        plan.close = true;
        self.send(plan, false).map(|_| ())
    }

    /// Answers one request; returns whether the connection stays open.
    fn handle(&mut self, request: &Request) -> io::Result<bool> {
        let fault = self.shared.take_fault(&request.method);
        let mut plan = self.shared.plan(request, fault.as_ref())?;
        log::trace!(
            "test server: {} {} -> {}",
            request.method,
            request.target,
            plan.status
        );
        self.shared
            .count(&request.method, request.record(plan.status));
        let has_body = request.header("transfer-encoding").is_some()
            || request
                .header("content-length")
                .is_some_and(|length| length != "0");
        plan.close |= self.shared.http10
            || request.minor == 0
            || request.has_token("connection", "close")
            // The body was not read, so the next request cannot be found.
            || has_body
            // A broken body breaks the connection's framing.
            || plan.cut != Cut::None
            || plan.length != Length::Sent;
        self.send(plan, request.method == "HEAD")
    }

    /// Writes a response; returns whether the connection stays open.
    fn send(&mut self, plan: Plan, is_head: bool) -> io::Result<bool> {
        self.sleep(self.shared.latency)?;
        let version = if self.shared.http10 {
            "HTTP/1.0"
        } else {
            "HTTP/1.1"
        };
        let body_len = plan.body.len();
        let mut head = String::new();
        // Writing to a String cannot fail.
        let _ = write!(
            head,
            "{version} {} {}\r\n",
            plan.status,
            reason_phrase(plan.status)
        );
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let _ = write!(head, "Date: {}\r\n", http_date(now.as_secs()));
        for (name, value) in &plan.headers {
            let _ = write!(head, "{name}: {value}\r\n");
        }
        match plan.length {
            Length::Sent => {
                let _ = write!(head, "Content-Length: {body_len}\r\n");
            }
            Length::Bad => head.push_str("Content-Length: abc\r\n"),
            Length::Omitted => {}
        }
        let connection = if plan.close { "close" } else { "keep-alive" };
        let _ = write!(head, "Connection: {connection}\r\n\r\n");
        self.write_all(head.as_bytes(), false)?;
        if is_head {
            return Ok(!plan.close);
        }
        let limit = match plan.cut {
            Cut::None => body_len,
            Cut::Reset(after) | Cut::Short(after) => after.min(body_len),
            Cut::Stall(_) => STALL_PREFIX_BYTES.min(body_len),
        };
        self.write_body(&plan.body, limit)?;
        match plan.cut {
            Cut::None | Cut::Short(_) => {}
            Cut::Reset(_) => {
                let _ = self.stream.shutdown(Shutdown::Both);
                self.aborted = true;
            }
            Cut::Stall(d) => self.sleep(d)?,
        }
        Ok(!plan.close)
    }

    /// Writes the first `limit` bytes of `body`, paced to the bandwidth cap.
    fn write_body(&mut self, body: &Body, limit: u64) -> io::Result<()> {
        let chunk = match self.shared.bandwidth {
            Some(rate) => (rate / 16).clamp(MIN_PACED_CHUNK_BYTES, CHUNK_BYTES as u64) as usize,
            None => CHUNK_BYTES,
        };
        let mut reader = body.reader()?.take(limit);
        let mut buf = vec![0; chunk.min(usize::try_from(limit).unwrap_or(usize::MAX))];
        let mut pacer = self
            .shared
            .bandwidth
            .map(|rate| Pacer::new(rate, chunk as u64, Instant::now()));
        let mut sent = 0_u64;
        while sent < limit {
            let n = match reader.read(&mut buf) {
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "body source ended early (file shrank?)",
                    ))
                }
                Ok(n) => n,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                Err(err) => return Err(err),
            };
            self.write_all(&buf[..n], true)?;
            sent += n as u64;
            if let Some(pacer) = &mut pacer {
                let wait = pacer.sent(n as u64, Instant::now());
                self.sleep(wait)?;
            }
        }
        Ok(())
    }

    /// `write_all` that keeps retrying through write timeouts until the
    /// server shuts down, counting body bytes as they go out.
    fn write_all(&mut self, mut data: &[u8], body: bool) -> io::Result<()> {
        while !data.is_empty() {
            // Counted before the write, corrected after: a client that has
            // read the whole body must find it counted, and it can see the
            // bytes before `write` returns here.
            let attempted = if body { data.len() as u64 } else { 0 };
            self.shared
                .bytes_sent
                .fetch_add(attempted, Ordering::SeqCst);
            let written = self.stream.write(data);
            let counted = match &written {
                Ok(n) if body => *n as u64,
                _ => 0,
            };
            self.shared
                .bytes_sent
                .fetch_sub(attempted - counted, Ordering::SeqCst);
            match written {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => data = &data[n..],
                Err(err) if is_timeout(&err) => {
                    if self.shared.shutting_down() {
                        return Err(shutting_down());
                    }
                }
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) => return Err(err),
            }
        }
        Ok(())
    }

    /// Sleeps for `d`, waking every [`POLL_INTERVAL`] to check for shutdown.
    fn sleep(&self, d: Duration) -> io::Result<()> {
        let deadline = Instant::now() + d;
        loop {
            if self.shared.shutting_down() {
                return Err(shutting_down());
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(());
            }
            thread::sleep(left.min(POLL_INTERVAL));
        }
    }
}

fn shutting_down() -> io::Error {
    io::Error::other("test server shutting down")
}

/// Read and write timeouts surface as `WouldBlock` on Unix, `TimedOut` on Windows.
fn is_timeout(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// The length of the request head including its terminating blank line
/// (CRLF CRLF, or bare LF LF, which RFC 9112 lets servers accept).
fn find_head_end(buf: &[u8]) -> Option<usize> {
    let crlf = buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4);
    let lf = buf.windows(2).position(|w| w == b"\n\n").map(|i| i + 2);
    match (crlf, lf) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

const WEEKDAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// Formats Unix seconds as an IMF-fixdate, e.g. `Thu, 01 Jan 2026 00:00:00 GMT`.
fn http_date(secs: u64) -> String {
    let days = secs / 86_400;
    let time = secs % 86_400;
    let (year, month, day) = civil_from_days(days);
    format!(
        "{}, {day:02} {} {year:04} {:02}:{:02}:{:02} GMT",
        // 1970-01-01 was a Thursday.
        WEEKDAYS[(days % 7) as usize],
        MONTHS[(month - 1) as usize],
        time / 3600,
        time % 3600 / 60,
        time % 60,
    )
}

/// Parses an IMF-fixdate into Unix seconds; `None` for anything else.
fn parse_http_date(value: &str) -> Option<u64> {
    let (weekday, rest) = value.trim().split_once(", ")?;
    let fields: Vec<&str> = rest.split(' ').collect();
    let [day, month, year, time, "GMT"] = fields.as_slice() else {
        return None;
    };
    let time: Vec<&str> = time.split(':').collect();
    let [hour, minute, second] = time.as_slice() else {
        return None;
    };
    let two_digits = |s: &str| (s.len() == 2).then(|| parse_digits(s)).flatten();
    let day = two_digits(day)?;
    let month = MONTHS.iter().position(|m| m == month)? as u64 + 1;
    let year = (year.len() == 4).then(|| parse_digits(year)).flatten()?;
    let (hour, minute, second) = (two_digits(hour)?, two_digits(minute)?, two_digits(second)?);
    if year < 1970 || day == 0 || day > 31 || hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let days = days_from_civil(year, month, day);
    if !WEEKDAYS.contains(&weekday) || civil_from_days(days) != (year, month, day) {
        return None; // e.g. 31 Feb
    }
    Some(days * 86_400 + hour * 3600 + minute * 60 + second)
}

/// `(year, month, day)` of a day count since 1970-01-01 (Howard Hinnant's
/// `civil_from_days`, for non-negative days).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

/// Days since 1970-01-01 of a date from 1970 on (the inverse of
/// [`civil_from_days`]).
fn days_from_civil(year: u64, month: u64, day: u64) -> u64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year / 400;
    let yoe = year % 400;
    let mp = if month > 2 { month - 3 } else { month + 9 };
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader};
    use std::sync::mpsc;

    const DATA: &[u8] = b"0123456789";
    /// Generous: a client read that takes this long means the server hung.
    const CLIENT_TIMEOUT: Duration = Duration::from_secs(5);

    fn server_with(path: &str, data: &[u8]) -> TestServer {
        TestServer::builder()
            .object(path, data.to_vec())
            .build()
            .expect("start test server")
    }

    #[derive(Debug)]
    struct Response {
        status_line: String,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    }

    impl Response {
        fn header(&self, name: &str) -> Option<&str> {
            let mut values = self
                .headers
                .iter()
                .filter(|(n, _)| n.eq_ignore_ascii_case(name));
            let value = values.next().map(|(_, v)| v.as_str());
            assert!(values.next().is_none(), "header {name} sent twice");
            value
        }

        /// Headers except `Date`, which changes between responses.
        fn stable_headers(&self) -> Vec<(String, String)> {
            self.headers
                .iter()
                .filter(|(n, _)| n != "Date")
                .cloned()
                .collect()
        }
    }

    struct Client {
        reader: BufReader<TcpStream>,
    }

    impl Client {
        fn connect(server: &TestServer) -> Client {
            let stream = TcpStream::connect(server.addr()).expect("connect");
            stream
                .set_read_timeout(Some(CLIENT_TIMEOUT))
                .expect("set timeout");
            Client {
                reader: BufReader::new(stream),
            }
        }

        fn send_raw(&mut self, raw: &[u8]) {
            self.reader.get_mut().write_all(raw).expect("send request");
        }

        fn send(&mut self, method: &str, path: &str, headers: &[(&str, &str)]) {
            let mut raw = format!("{method} {path} HTTP/1.1\r\nHost: test\r\n");
            for (name, value) in headers {
                raw.push_str(&format!("{name}: {value}\r\n"));
            }
            raw.push_str("\r\n");
            self.send_raw(raw.as_bytes());
        }

        /// Reads a status line and headers.
        fn head(&mut self) -> Response {
            let mut status_line = String::new();
            self.reader
                .read_line(&mut status_line)
                .expect("read status line");
            let mut headers = Vec::new();
            loop {
                let mut line = String::new();
                self.reader.read_line(&mut line).expect("read header");
                let line = line.trim_end_matches("\r\n");
                if line.is_empty() {
                    break;
                }
                let (name, value) = line.split_once(": ").expect("header line");
                headers.push((name.to_owned(), value.to_owned()));
            }
            let status_line = status_line.trim_end_matches("\r\n").to_owned();
            Response {
                status_line,
                headers,
                body: Vec::new(),
            }
        }

        /// Reads a whole response, its body framed by `Content-Length`.
        fn response(&mut self, to_head: bool) -> Response {
            let mut response = self.head();
            if !to_head {
                let length: usize = response
                    .header("Content-Length")
                    .expect("Content-Length")
                    .parse()
                    .expect("numeric Content-Length");
                response.body = vec![0; length];
                self.reader
                    .read_exact(&mut response.body)
                    .expect("read body");
            }
            response
        }

        /// Reads until EOF or an error, returning the bytes and the error kind.
        fn read_to_eof(&mut self) -> (Vec<u8>, Option<io::ErrorKind>) {
            let mut bytes = Vec::new();
            let mut chunk = [0; 4096];
            loop {
                match self.reader.read(&mut chunk) {
                    Ok(0) => return (bytes, None),
                    Ok(n) => bytes.extend_from_slice(&chunk[..n]),
                    Err(err) => return (bytes, Some(err.kind())),
                }
            }
        }
    }

    /// One request on a fresh connection.
    fn request(
        server: &TestServer,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
    ) -> Response {
        let mut client = Client::connect(server);
        client.send(method, path, headers);
        client.response(method == "HEAD")
    }

    fn get(server: &TestServer, path: &str, headers: &[(&str, &str)]) -> Response {
        request(server, "GET", path, headers)
    }

    #[test]
    fn range_forms_select_exact_bytes() {
        let server = server_with("/obj", DATA);
        let cases: &[(&str, &str, Option<&str>, &[u8])] = &[
            (
                "bytes=2-5",
                "HTTP/1.1 206 Partial Content",
                Some("bytes 2-5/10"),
                b"2345",
            ),
            (
                "bytes=7-",
                "HTTP/1.1 206 Partial Content",
                Some("bytes 7-9/10"),
                b"789",
            ),
            (
                "bytes=-3",
                "HTTP/1.1 206 Partial Content",
                Some("bytes 7-9/10"),
                b"789",
            ),
            (
                "bytes=-30",
                "HTTP/1.1 206 Partial Content",
                Some("bytes 0-9/10"),
                DATA,
            ),
            (
                "bytes=5-100",
                "HTTP/1.1 206 Partial Content",
                Some("bytes 5-9/10"),
                b"56789",
            ),
            (
                "bytes=9-9",
                "HTTP/1.1 206 Partial Content",
                Some("bytes 9-9/10"),
                b"9",
            ),
            (
                "bytes=10-",
                "HTTP/1.1 416 Range Not Satisfiable",
                Some("bytes */10"),
                b"",
            ),
            (
                "bytes=10-20",
                "HTTP/1.1 416 Range Not Satisfiable",
                Some("bytes */10"),
                b"",
            ),
            (
                "bytes=-0",
                "HTTP/1.1 416 Range Not Satisfiable",
                Some("bytes */10"),
                b"",
            ),
            // Ignored: several ranges, bad syntax, another unit.
            ("bytes=0-1,4-5", "HTTP/1.1 200 OK", None, DATA),
            ("bytes=5-2", "HTTP/1.1 200 OK", None, DATA),
            ("bytes=abc", "HTTP/1.1 200 OK", None, DATA),
            ("bytes=+1-2", "HTTP/1.1 200 OK", None, DATA),
            ("items=0-1", "HTTP/1.1 200 OK", None, DATA),
        ];
        for &(range, status_line, content_range, body) in cases {
            let response = get(&server, "/obj", &[("Range", range)]);
            assert_eq!(response.status_line, status_line, "{range}");
            assert_eq!(response.header("Content-Range"), content_range, "{range}");
            assert_eq!(
                response.header("Content-Length"),
                Some(body.len().to_string().as_str())
            );
            assert_eq!(response.body, body, "{range}");
        }
        assert_eq!(server.get_count(), cases.len());
    }

    #[test]
    fn empty_object_is_200_empty_and_416_for_any_range() {
        let server = server_with("/empty", b"");
        let whole = get(&server, "/empty", &[]);
        assert_eq!(whole.status_line, "HTTP/1.1 200 OK");
        assert_eq!(whole.header("Content-Length"), Some("0"));
        for range in ["bytes=0-", "bytes=0-0", "bytes=-1"] {
            let response = get(&server, "/empty", &[("Range", range)]);
            assert_eq!(
                response.status_line, "HTTP/1.1 416 Range Not Satisfiable",
                "{range}"
            );
            assert_eq!(response.header("Content-Range"), Some("bytes */0"));
        }
    }

    #[test]
    fn if_match_fails_with_412_after_replace() {
        let server = server_with("obj", DATA);
        let before = request(&server, "HEAD", "/obj", &[]);
        let old_etag = before.header("ETag").expect("ETag").to_owned();
        let old_date = before
            .header("Last-Modified")
            .expect("Last-Modified")
            .to_owned();
        assert_eq!(old_date, "Thu, 01 Jan 2026 00:00:00 GMT");
        assert_eq!(
            get(&server, "/obj", &[("If-Match", &old_etag)]).status_line,
            "HTTP/1.1 200 OK"
        );

        server.put_object("/obj", b"replaced!".to_vec());
        let after = request(&server, "HEAD", "/obj", &[]);
        let new_etag = after.header("ETag").expect("ETag").to_owned();
        let new_date = after
            .header("Last-Modified")
            .expect("Last-Modified")
            .to_owned();
        assert_ne!(new_etag, old_etag);
        let old_secs = parse_http_date(&old_date).expect("date");
        assert!(parse_http_date(&new_date).expect("date") > old_secs);

        let stale = get(
            &server,
            "/obj",
            &[("Range", "bytes=0-3"), ("If-Match", &old_etag)],
        );
        assert_eq!(stale.status_line, "HTTP/1.1 412 Precondition Failed");
        let fresh = get(
            &server,
            "/obj",
            &[("Range", "bytes=0-3"), ("If-Match", &new_etag)],
        );
        assert_eq!(fresh.status_line, "HTTP/1.1 206 Partial Content");
        assert_eq!(fresh.body, b"repl");
        let listed = format!("\"nope\", {new_etag}");
        assert_eq!(
            get(&server, "/obj", &[("If-Match", &listed)]).status_line,
            "HTTP/1.1 200 OK"
        );
        assert_eq!(
            get(&server, "/obj", &[("If-Match", "*")]).status_line,
            "HTTP/1.1 200 OK"
        );
        let weak = format!("W/{new_etag}");
        let response = get(&server, "/obj", &[("If-Match", &weak)]);
        assert_eq!(response.status_line, "HTTP/1.1 412 Precondition Failed");

        let response = get(&server, "/obj", &[("If-Unmodified-Since", &old_date)]);
        assert_eq!(response.status_line, "HTTP/1.1 412 Precondition Failed");
        let response = get(&server, "/obj", &[("If-Unmodified-Since", &new_date)]);
        assert_eq!(response.status_line, "HTTP/1.1 200 OK");

        let records = server.requests();
        assert_eq!(records[3].if_match.as_deref(), Some(old_etag.as_str()));
        assert_eq!(records[3].status, 412);
    }

    #[test]
    fn if_range_with_a_stale_validator_sends_the_whole_object() {
        let server = server_with("/obj", DATA);
        let head = request(&server, "HEAD", "/obj", &[]);
        let etag = head.header("ETag").expect("ETag").to_owned();
        let date = head
            .header("Last-Modified")
            .expect("Last-Modified")
            .to_owned();
        for validator in [etag.as_str(), date.as_str()] {
            let response = get(
                &server,
                "/obj",
                &[("Range", "bytes=1-2"), ("If-Range", validator)],
            );
            assert_eq!(response.status_line, "HTTP/1.1 206 Partial Content");
        }
        let response = get(
            &server,
            "/obj",
            &[("Range", "bytes=1-2"), ("If-Range", "\"stale\"")],
        );
        assert_eq!(response.status_line, "HTTP/1.1 200 OK");
        assert_eq!(response.body, DATA);
    }

    #[test]
    fn head_has_the_headers_of_get_and_no_body() {
        let server = server_with("/obj", DATA);
        let mut client = Client::connect(&server);
        client.send("HEAD", "/obj", &[("Range", "bytes=0-1")]);
        let head = client.response(true);
        // The GET on the same connection parses only if HEAD sent no body.
        client.send("GET", "/obj", &[]);
        let get = client.response(false);
        assert_eq!(head.status_line, "HTTP/1.1 200 OK");
        assert_eq!(head.stable_headers(), get.stable_headers());
        assert_eq!(head.header("Content-Length"), Some("10"));
        assert_eq!(head.header("Accept-Ranges"), Some("bytes"));
        assert_eq!(
            head.header("Content-Type"),
            Some("application/octet-stream")
        );
        assert_eq!(
            head.header("Last-Modified"),
            Some("Thu, 01 Jan 2026 00:00:00 GMT")
        );
        assert_eq!(head.header("Connection"), Some("keep-alive"));
        let etag = head.header("ETag").expect("ETag");
        assert!(
            etag.len() > 2 && etag.starts_with('"') && etag.ends_with('"'),
            "{etag}"
        );
        assert!(
            etag.trim_matches('"')
                .bytes()
                .all(|b| b.is_ascii_hexdigit()),
            "{etag}"
        );
        assert!(head
            .header("Date")
            .is_some_and(|date| parse_http_date(date).is_some()));
        assert_eq!(get.body, DATA);
        assert_eq!((server.request_count(), server.get_count()), (2, 1));
        assert_eq!(server.bytes_sent(), 10);
    }

    #[test]
    fn status_fault_answers_that_status_once() {
        let server = server_with("/obj", DATA);
        server.push_fault(Fault::Status(503));
        let failed = get(&server, "/obj", &[]);
        assert_eq!(failed.status_line, "HTTP/1.1 503 Service Unavailable");
        assert_eq!(failed.body, b"injected fault: status 503\n");
        assert_eq!(get(&server, "/obj", &[]).status_line, "HTTP/1.1 200 OK");
        assert_eq!(server.get_count(), 2);
    }

    #[test]
    fn too_many_requests_fault_sends_retry_after() {
        let server = server_with("/obj", DATA);
        server.push_fault(Fault::TooManyRequests {
            retry_after_secs: 7,
        });
        let response = get(&server, "/obj", &[]);
        assert_eq!(response.status_line, "HTTP/1.1 429 Too Many Requests");
        assert_eq!(response.header("Retry-After"), Some("7"));
    }

    #[test]
    fn queued_faults_are_fifo_and_only_get_uses_them() {
        let server = server_with("/obj", DATA);
        server.push_fault(Fault::Status(500));
        server.push_fault(Fault::Status(503));
        assert_eq!(
            request(&server, "HEAD", "/obj", &[]).status_line,
            "HTTP/1.1 200 OK"
        );
        assert_eq!(
            get(&server, "/other", &[]).status_line,
            "HTTP/1.1 500 Internal Server Error"
        );
        assert_eq!(
            get(&server, "/obj", &[]).status_line,
            "HTTP/1.1 503 Service Unavailable"
        );
        assert_eq!(get(&server, "/obj", &[]).status_line, "HTTP/1.1 200 OK");
        let statuses: Vec<u16> = server.requests().iter().map(|r| r.status).collect();
        assert_eq!(statuses, [200, 500, 503, 200]);
    }

    #[test]
    fn persistent_fault_applies_until_cleared() {
        let server = server_with("/obj", DATA);
        server.set_persistent_fault(Some(Fault::Status(500)));
        for _ in 0..3 {
            assert_eq!(
                get(&server, "/obj", &[]).status_line,
                "HTTP/1.1 500 Internal Server Error"
            );
        }
        server.push_fault(Fault::Status(503));
        assert_eq!(
            get(&server, "/obj", &[]).status_line,
            "HTTP/1.1 503 Service Unavailable"
        );
        server.set_persistent_fault(None);
        assert_eq!(get(&server, "/obj", &[]).status_line, "HTTP/1.1 200 OK");
    }

    #[test]
    fn reset_mid_body_fault_drops_the_connection_after_n_bytes() {
        let data: Vec<u8> = (0..=255).collect();
        let server = server_with("/obj", &data);
        server.push_fault(Fault::ResetMidBody { after: 5 });
        let mut client = Client::connect(&server);
        client.send("GET", "/obj", &[]);
        let head = client.head();
        assert_eq!(head.status_line, "HTTP/1.1 200 OK");
        assert_eq!(head.header("Content-Length"), Some("256"));
        let (body, error) = client.read_to_eof();
        assert_eq!(body, &data[..5]);
        assert!(
            matches!(error, None | Some(io::ErrorKind::ConnectionReset)),
            "{error:?}"
        );
        assert_eq!(server.bytes_sent(), 5);
    }

    #[test]
    fn short_body_fault_closes_cleanly_after_n_bytes() {
        let server = server_with("/obj", DATA);
        server.push_fault(Fault::ShortBody { after: 4 });
        let mut client = Client::connect(&server);
        client.send("GET", "/obj", &[("Range", "bytes=1-")]);
        let head = client.head();
        assert_eq!(head.status_line, "HTTP/1.1 206 Partial Content");
        assert_eq!(head.header("Content-Length"), Some("9"));
        assert_eq!(head.header("Connection"), Some("close"));
        assert_eq!(client.read_to_eof(), (b"1234".to_vec(), None));
    }

    #[test]
    fn stall_fault_sends_a_few_bytes_then_stalls_then_closes() {
        let data = vec![7; 1000];
        let server = server_with("/obj", &data);
        let stall = Duration::from_millis(300);
        server.push_fault(Fault::Stall(stall));
        let mut client = Client::connect(&server);
        client.send("GET", "/obj", &[]);
        assert_eq!(client.head().header("Content-Length"), Some("1000"));
        let start = Instant::now();
        let (body, error) = client.read_to_eof();
        assert_eq!((body.len() as u64, error), (STALL_PREFIX_BYTES, None));
        assert!(
            start.elapsed() >= stall - POLL_INTERVAL,
            "{:?}",
            start.elapsed()
        );
    }

    #[test]
    fn ignore_range_fault_sends_the_whole_object_with_200() {
        let server = server_with("/obj", DATA);
        server.push_fault(Fault::IgnoreRange);
        let response = get(&server, "/obj", &[("Range", "bytes=2-5")]);
        assert_eq!(response.status_line, "HTTP/1.1 200 OK");
        assert_eq!(response.header("Content-Range"), None);
        assert_eq!(response.body, DATA);
    }

    #[test]
    fn wrong_content_range_fault_moves_the_start_by_one() {
        let server = server_with("/obj", DATA);
        server.push_fault(Fault::WrongContentRange);
        let response = get(&server, "/obj", &[("Range", "bytes=2-5")]);
        assert_eq!(response.status_line, "HTTP/1.1 206 Partial Content");
        assert_eq!(response.header("Content-Range"), Some("bytes 3-5/10"));
        assert_eq!(response.body, b"345");
        server.push_fault(Fault::WrongContentRange);
        let response = get(&server, "/obj", &[("Range", "bytes=9-9")]);
        assert_eq!(response.header("Content-Range"), Some("bytes 8-9/10"));
        assert_eq!(response.body, b"89");
    }

    #[test]
    fn wrong_total_fault_misstates_the_total() {
        let server = server_with("/obj", DATA);
        server.push_fault(Fault::WrongTotal);
        let response = get(&server, "/obj", &[("Range", "bytes=2-5")]);
        assert_eq!(response.status_line, "HTTP/1.1 206 Partial Content");
        assert_eq!(response.header("Content-Range"), Some("bytes 2-5/11"));
        assert_eq!(response.body, b"2345");
    }

    #[test]
    fn gzip_fault_sends_a_gzip_body_that_decodes_to_the_object() {
        let data: Vec<u8> = b"hello gzip ".iter().copied().cycle().take(5000).collect();
        let server = server_with("/obj", &data);
        server.push_fault(Fault::Gzip);
        let response = get(&server, "/obj", &[("Accept-Encoding", "identity")]);
        assert_eq!(response.status_line, "HTTP/1.1 200 OK");
        assert_eq!(response.header("Content-Encoding"), Some("gzip"));
        assert!(response.body.len() < data.len());
        let mut decoded = Vec::new();
        flate2::read::GzDecoder::new(response.body.as_slice())
            .read_to_end(&mut decoded)
            .expect("valid gzip");
        assert_eq!(decoded, data);
        assert_eq!(
            server.requests()[0].accept_encoding.as_deref(),
            Some("identity")
        );
    }

    #[test]
    fn head_refused_fault_answers_head_and_leaves_get_alone() {
        let server = server_with("/obj", DATA);
        server.push_fault(Fault::HeadRefused(405));
        let mut client = Client::connect(&server);
        client.send("GET", "/obj", &[]);
        assert_eq!(client.response(false).status_line, "HTTP/1.1 200 OK");
        client.send("HEAD", "/obj", &[]);
        let refused = client.response(true);
        assert_eq!(refused.status_line, "HTTP/1.1 405 Method Not Allowed");
        assert_eq!(refused.header("Content-Length"), Some("0"));
        assert_eq!(refused.header("Allow"), Some("GET"));
        server.set_persistent_fault(Some(Fault::HeadRefused(403)));
        client.send("HEAD", "/obj", &[]);
        assert_eq!(client.response(true).status_line, "HTTP/1.1 403 Forbidden");
        client.send("GET", "/obj", &[]);
        assert_eq!(client.response(false).body, DATA);
    }

    #[test]
    fn no_validators_fault_omits_etag_and_last_modified() {
        let server = server_with("/obj", DATA);
        server.set_persistent_fault(Some(Fault::NoValidators));
        let response = get(&server, "/obj", &[]);
        assert_eq!(response.status_line, "HTTP/1.1 200 OK");
        assert_eq!(
            (response.header("ETag"), response.header("Last-Modified")),
            (None, None)
        );
        let response = get(&server, "/obj", &[("If-Match", "\"anything\"")]);
        assert_eq!(response.status_line, "HTTP/1.1 412 Precondition Failed");
    }

    #[test]
    fn weak_etag_fault_sends_w_prefix_and_fails_if_match() {
        let server = server_with("/obj", DATA);
        let strong = request(&server, "HEAD", "/obj", &[])
            .header("ETag")
            .map(str::to_owned);
        server.set_persistent_fault(Some(Fault::WeakEtag));
        let response = get(&server, "/obj", &[]);
        let weak = response.header("ETag").expect("ETag");
        assert_eq!(
            Some(weak.strip_prefix("W/").expect("weak")),
            strong.as_deref()
        );
        let response = get(&server, "/obj", &[("If-Match", weak)]);
        assert_eq!(response.status_line, "HTTP/1.1 412 Precondition Failed");
    }

    #[test]
    fn bad_content_length_fault_sends_abc_then_closes() {
        let server = server_with("/obj", DATA);
        server.push_fault(Fault::BadContentLength);
        let mut client = Client::connect(&server);
        client.send("GET", "/obj", &[]);
        let head = client.head();
        assert_eq!(head.header("Content-Length"), Some("abc"));
        assert_eq!(client.read_to_eof(), (DATA.to_vec(), None));
    }

    #[test]
    fn latency_is_applied_before_every_response() {
        let latency = Duration::from_millis(150);
        let server = TestServer::builder()
            .latency(latency)
            .object("/obj", DATA.to_vec())
            .build()
            .expect("start");
        for (method, path) in [("HEAD", "/obj"), ("GET", "/missing"), ("GET", "/obj")] {
            let start = Instant::now();
            request(&server, method, path, &[]);
            assert!(
                start.elapsed() >= latency,
                "{method} {path}: {:?}",
                start.elapsed()
            );
        }
    }

    #[test]
    fn pacing_after_a_stall_earns_at_most_one_chunk_of_credit() {
        let start = Instant::now();
        let mut pacer = Pacer::new(1000, 100, start);
        // Steady: each 100-byte chunk waits its 100 ms.
        assert_eq!(pacer.sent(100, start), Duration::from_millis(100));
        let on_time = start + Duration::from_millis(100);
        assert_eq!(pacer.sent(100, on_time), Duration::from_millis(100));
        // The client stalls 5 s: the next chunks are paced again, with one
        // chunk (100 ms) of credit, not 5 s of it.
        let late = start + Duration::from_secs(5);
        assert_eq!(pacer.sent(100, late), Duration::ZERO);
        assert_eq!(pacer.sent(100, late), Duration::from_millis(100));
        assert_eq!(pacer.sent(100, late), Duration::from_millis(200));
    }

    #[test]
    fn bandwidth_paces_the_body() {
        let server = TestServer::builder()
            .bandwidth(128 * 1024)
            .object("/obj", vec![1; 32 * 1024])
            .build()
            .expect("start");
        let start = Instant::now();
        assert_eq!(get(&server, "/obj", &[]).body.len(), 32 * 1024);
        // The first 8 KiB chunk goes out at once; the other 24 KiB take 3/16 s.
        assert!(
            start.elapsed() >= Duration::from_millis(180),
            "{:?}",
            start.elapsed()
        );
    }

    #[test]
    fn keep_alive_serves_two_requests_on_one_connection() {
        let server = server_with("/obj", DATA);
        let mut client = Client::connect(&server);
        for range in ["bytes=0-1", "bytes=8-"] {
            client.send("GET", "/obj", &[("Range", range)]);
            let response = client.response(false);
            assert_eq!(response.status_line, "HTTP/1.1 206 Partial Content");
            assert_eq!(response.header("Connection"), Some("keep-alive"));
        }
        // Pipelined: two requests in one write, two responses in order.
        client.send_raw(b"GET /obj HTTP/1.1\r\nHost: t\r\nRange: bytes=1-1\r\n\r\nGET /obj HTTP/1.1\r\nHost: t\r\nRange: bytes=2-2\r\n\r\n");
        assert_eq!(client.response(false).body, b"1");
        assert_eq!(client.response(false).body, b"2");
        assert_eq!(server.get_count(), 4);
    }

    #[test]
    fn connection_close_and_http10_clients_get_one_response() {
        let server = server_with("/obj", DATA);
        let mut client = Client::connect(&server);
        client.send("GET", "/obj", &[("Connection", "close")]);
        assert_eq!(client.response(false).header("Connection"), Some("close"));
        assert_eq!(client.read_to_eof(), (Vec::new(), None));

        let mut client = Client::connect(&server);
        client.send_raw(b"GET /obj HTTP/1.0\r\n\r\n");
        let response = client.response(false);
        assert_eq!(response.status_line, "HTTP/1.1 200 OK");
        assert_eq!(response.header("Connection"), Some("close"));
        assert_eq!(client.read_to_eof(), (Vec::new(), None));
    }

    #[test]
    fn http10_mode_answers_http_1_0_and_closes() {
        let server = TestServer::builder()
            .http10(true)
            .object("/obj", DATA.to_vec())
            .build()
            .expect("start");
        let mut client = Client::connect(&server);
        client.send("GET", "/obj", &[("Range", "bytes=0-2")]);
        let response = client.response(false);
        assert_eq!(response.status_line, "HTTP/1.0 206 Partial Content");
        assert_eq!(response.header("Connection"), Some("close"));
        assert_eq!(response.body, b"012");
        assert_eq!(client.read_to_eof(), (Vec::new(), None));
    }

    #[test]
    fn dropping_servers_with_open_connections_is_prompt() {
        let (done, finished) = mpsc::channel();
        thread::spawn(move || {
            for i in 0..20 {
                let server = server_with("/obj", DATA);
                let mut idle = Client::connect(&server);
                idle.send("HEAD", "/obj", &[]);
                idle.response(true);
                // Every few servers, also one connection stuck in a long stall.
                let _stalled = (i % 5 == 0).then(|| {
                    server.push_fault(Fault::Stall(Duration::from_secs(60)));
                    let mut stalled = Client::connect(&server);
                    stalled.send("GET", "/obj", &[]);
                    stalled.head();
                    stalled
                });
                drop(server);
                // The idle connection was closed by the server.
                assert_eq!(idle.read_to_eof().0, b"");
            }
            let _ = done.send(());
        });
        finished
            .recv_timeout(Duration::from_secs(10))
            .expect("dropping 20 servers hung");
    }

    #[test]
    fn client_hanging_up_mid_body_leaves_the_server_working() {
        let server = TestServer::builder()
            .bandwidth(1024 * 1024)
            .object("/big", vec![0; 4 * 1024 * 1024])
            .object("/small", DATA.to_vec())
            .build()
            .expect("start");
        let mut client = Client::connect(&server);
        client.send("GET", "/big", &[]);
        client.head();
        let mut some = [0; 1000];
        client.reader.read_exact(&mut some).expect("first bytes");
        drop(client);
        assert_eq!(get(&server, "/small", &[]).body, DATA);
    }

    #[test]
    fn malformed_requests_get_400_and_do_not_stop_the_server() {
        let server = server_with("/obj", DATA);
        let cases: &[(&[u8], &str)] = &[
            (b"garbage\r\n\r\n", "HTTP/1.1 400 Bad Request"),
            (b"GET /obj HTTP/1.1\r\n\r\n", "HTTP/1.1 400 Bad Request"),
            (
                b"GET /obj HTTP/1.1\r\nHost: a\r\nBad Header: x\r\n\r\n",
                "HTTP/1.1 400 Bad Request",
            ),
            (
                b"GET /obj HTTP/1.1\r\nHost: a\r\nno colon\r\n\r\n",
                "HTTP/1.1 400 Bad Request",
            ),
            (
                b"GET /obj HTTP/1.1\r\nHost: \xff\r\n\r\n",
                "HTTP/1.1 400 Bad Request",
            ),
            (
                b"GET obj HTTP/1.1\r\nHost: a\r\n\r\n",
                "HTTP/1.1 400 Bad Request",
            ),
            (
                b"GET  /obj HTTP/1.1\r\nHost: a\r\n\r\n",
                "HTTP/1.1 400 Bad Request",
            ),
            (
                b"GET /obj HTTP/1.1\r\nHost: a\r\nContent-Length: x\r\n\r\n",
                "HTTP/1.1 400 Bad Request",
            ),
            (
                b"GET /obj HTTP/2.0\r\nHost: a\r\n\r\n",
                "HTTP/1.1 505 HTTP Version Not Supported",
            ),
        ];
        for &(raw, status_line) in cases {
            let mut client = Client::connect(&server);
            client.send_raw(raw);
            let response = client.response(false);
            assert_eq!(
                response.status_line,
                status_line,
                "{}",
                String::from_utf8_lossy(raw)
            );
            assert_eq!(response.header("Connection"), Some("close"));
        }
        let mut client = Client::connect(&server);
        client.send_raw(format!("GET /obj HTTP/1.1\r\nX: {}\r\n", "a".repeat(70_000)).as_bytes());
        assert_eq!(
            client.head().status_line,
            "HTTP/1.1 431 Request Header Fields Too Large"
        );
        // A well-framed request with a bad path keeps its connection.
        let mut client = Client::connect(&server);
        client.send("GET", "/%zz", &[]);
        let response = client.response(false);
        assert_eq!(response.status_line, "HTTP/1.1 400 Bad Request");
        client.send("GET", "/obj", &[]);
        assert_eq!(client.response(false).body, DATA);
        assert_eq!(server.request_count(), cases.len() + 3);
    }

    #[test]
    fn other_methods_get_405_and_unknown_paths_404() {
        let server = server_with("/obj", DATA);
        let response = request(&server, "PUT", "/obj", &[("Content-Length", "0")]);
        assert_eq!(response.status_line, "HTTP/1.1 405 Method Not Allowed");
        assert_eq!(response.header("Allow"), Some("GET, HEAD"));
        assert_eq!(
            get(&server, "/nope", &[]).status_line,
            "HTTP/1.1 404 Not Found"
        );
        assert_eq!(
            request(&server, "HEAD", "/nope", &[]).status_line,
            "HTTP/1.1 404 Not Found"
        );
        assert_eq!(server.get_count(), 1);
        assert_eq!(server.request_count(), 3);
    }

    #[test]
    fn query_is_ignored_for_lookup_and_requests_are_logged() {
        let server = server_with("/dir/a b", DATA);
        let headers = [
            ("Range", "bytes=0-0"),
            ("Authorization", "Bearer secret"),
            ("User-Agent", "test-agent/1"),
        ];
        let response = get(&server, "/dir/a%20b?generation=3&x=y", &headers);
        assert_eq!(response.body, b"0");
        let record = RequestRecord {
            method: "GET".to_owned(),
            path: "/dir/a%20b?generation=3&x=y".to_owned(),
            range: Some("bytes=0-0".to_owned()),
            if_match: None,
            if_unmodified_since: None,
            accept_encoding: None,
            has_authorization: true,
            user_agent: Some("test-agent/1".to_owned()),
            status: 206,
        };
        assert_eq!(server.requests(), [record]);
        assert_eq!(server.bytes_sent(), 1);
        server.reset_counters();
        assert_eq!(
            (
                server.request_count(),
                server.get_count(),
                server.bytes_sent()
            ),
            (0, 0, 0)
        );
        assert!(server.requests().is_empty());
        assert!(server.remove_object("dir/a b"));
        assert_eq!(
            get(&server, "/dir/a%20b", &[]).status_line,
            "HTTP/1.1 404 Not Found"
        );
    }

    #[test]
    fn serve_dir_serves_files_and_refuses_traversal() {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        let base =
            std::env::temp_dir().join(format!("http-server-test-{}-{nanos}", std::process::id()));
        let root = base.join("root");
        fs::create_dir_all(root.join("sub")).expect("create dirs");
        fs::write(root.join("sub/file.bin"), DATA).expect("write file");
        fs::write(base.join("secret"), b"secret").expect("write secret");
        let server = TestServer::builder()
            .serve_dir(&root)
            .build()
            .expect("start");

        let response = get(&server, "/sub/file.bin", &[("Range", "bytes=3-4")]);
        assert_eq!(response.status_line, "HTTP/1.1 206 Partial Content");
        assert_eq!(response.body, b"34");
        let head = request(&server, "HEAD", "/sub/file.bin", &[]);
        assert_eq!(head.header("Content-Length"), Some("10"));
        let etag = head.header("ETag").expect("ETag");
        let response = get(&server, "/sub/file.bin", &[("If-Match", etag)]);
        assert_eq!(response.body, DATA);
        assert!(head
            .header("Last-Modified")
            .is_some_and(|d| parse_http_date(d).is_some()));

        for path in [
            "/../secret",
            "/sub/%2e%2e/%2E%2E/secret",
            "/sub/..%2f..%2fsecret",
        ] {
            let response = get(&server, path, &[]);
            assert_eq!(response.status_line, "HTTP/1.1 403 Forbidden", "{path}");
        }
        assert_eq!(
            get(&server, "/sub", &[]).status_line,
            "HTTP/1.1 404 Not Found"
        );
        assert_eq!(
            get(&server, "/missing", &[]).status_line,
            "HTTP/1.1 404 Not Found"
        );
        drop(server);
        let _ = fs::remove_dir_all(&base);
    }

    #[test]
    fn build_refuses_invalid_settings() {
        let err = TestServer::builder()
            .bandwidth(0)
            .build()
            .expect_err("zero bandwidth");
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        let missing = std::env::temp_dir().join("http-server-test-no-such-dir");
        assert!(TestServer::builder().serve_dir(missing).build().is_err());
    }

    #[test]
    fn url_joins_the_path_with_or_without_a_slash() {
        let server = TestServer::builder().build().expect("start");
        let port = server.addr().port();
        assert_eq!(server.url("a/b"), format!("http://127.0.0.1:{port}/a/b"));
        assert_eq!(server.url("/a/b"), format!("http://127.0.0.1:{port}/a/b"));
        assert_eq!(
            connect_addr("0.0.0.0:80".parse().expect("addr")).to_string(),
            "127.0.0.1:80"
        );
    }

    #[test]
    fn http_dates_format_and_parse() {
        assert_eq!(http_date(CLOCK_BASE_SECS), "Thu, 01 Jan 2026 00:00:00 GMT");
        assert_eq!(http_date(784_111_777), "Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(http_date(951_782_400), "Tue, 29 Feb 2000 00:00:00 GMT");
        for secs in [
            0,
            784_111_777,
            951_782_400,
            CLOCK_BASE_SECS + 86_399,
            4_102_444_800,
        ] {
            assert_eq!(parse_http_date(&http_date(secs)), Some(secs));
        }
        for bad in [
            "Sun, 31 Feb 2026 00:00:00 GMT",
            "Sunday, 06-Nov-94 08:49:37 GMT",
            "",
            "x, y",
        ] {
            assert_eq!(parse_http_date(bad), None, "{bad}");
        }
    }
}
