//! [`HttpSource`]: an object behind an `http://` or `https://` URL, read with
//! range requests over a pool of keep-alive connections.
//!
//! Opening learns the object's length and validator (a strong `ETag`, else
//! `Last-Modified`) from `HEAD`, or, where `HEAD` is refused, from a `GET`
//! of the first byte. Every later `GET` is pinned to that validator
//! (`If-Match`, else `If-Unmodified-Since`), and every response is checked
//! against what was asked and what was seen at open — status,
//! `Content-Range`, total length, `Content-Length`, encoding, validator —
//! before a byte of it is used, so a reader never mixes two versions of an
//! object or takes a compressed or misplaced body for the bytes it asked for.
//!
//! Failures that may not last are retried (see [`RetryPolicy`]); a body cut
//! short resumes at its first missing byte.
//!
//! The pieces: `builder` holds the settings, `url` checks the URL,
//! `response` parses headers, `checks` decides whether a response is the one
//! asked for and maps failures to error kinds, `retry` decides the waits;
//! URLs in messages go through [`crate::redact`].
//!
//! Sources for object-store APIs (GCS) are built on this one: they make an
//! unopened source (`HttpSourceBuilder::prepare`), fetch their metadata
//! with it (`get_document`), then point it at a URL that names one version
//! of the object (`open_at_version`), which pins reads in place of a
//! precondition header. With a tail, they ask for it first (`learn_tail`,
//! reading the version from the answer's headers) and keep it
//! (`open_at_version_with_tail`); `retarget` points the source at another
//! URL (the metadata's) when the answer does not name the version.

use std::fmt;
use std::io::Read;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use ureq::http::header::{self, HeaderName, HeaderValue};
use ureq::http::{Method, Response};
use ureq::{Agent, Body};

use super::{FetchContext, PartSink, RangeSource};
use crate::error::{Error, Result};

mod builder;
mod checks;
mod redirect;
mod response;
mod retry;
mod tail;
mod url;
mod whole;

pub(crate) use crate::redact::redact_url;
pub(crate) use builder::checked_tail;
pub use builder::HttpSourceBuilder;
pub(crate) use response::{is_identity_encoding, parse_u64};
pub use retry::{
    RetryPolicy, DEFAULT_INITIAL_BACKOFF, DEFAULT_MAX_ATTEMPTS, DEFAULT_MAX_BACKOFF,
    DEFAULT_MAX_RETRY_TIME,
};
#[cfg(feature = "testing")] // the test server's GCS checksums
pub(crate) use url::base64;
pub(crate) use url::{parse_http_url, percent_decode};

use response::ContentRange;
use response::{is_weak_etag, parse_content_range};
use retry::{sleep_unless_cancelled, Retrier};

/// The tail an open asks for where a footer is expected
/// ([`HttpSourceBuilder::tail`], [`open_tail`](crate::open_tail)): 64 KiB
/// holds a zip's end records and most parquet footers, and costs about as
/// much time as one byte on any link fast enough to read them.
pub const DEFAULT_TAIL: u64 = 64 * 1024;

/// The largest tail an open may ask for ([`HttpSourceBuilder::tail`]): it
/// is held in memory for the source's life.
pub const MAX_TAIL: u64 = 64 << 20;

/// How long connecting (DNS, TCP and TLS) may take before it is a timeout.
/// Ten seconds outlasts a congested link yet reports a dead host soon.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a response may stall — no header or body byte arriving — before
/// it is a timeout. It bounds each wait for data, not the whole transfer, so
/// large parts over slow links are not cut off; thirty seconds leaves room
/// for a server that is slow to start a response.
pub const DEFAULT_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// The `User-Agent` sent unless one is set.
pub const DEFAULT_USER_AGENT: &str = concat!("prefetch-reader/", env!("CARGO_PKG_VERSION"));

/// Bytes read from a body per call, between checks of the cancel flag. The
/// body goes straight into the caller's buffer; 64 KiB keeps cancellation
/// prompt (a fraction of a millisecond on a fast link) at no cost in speed.
const BODY_CHUNK: usize = 64 * 1024;

/// Idle connections the source's own agent keeps before a reader says its
/// concurrency: the reader's default, so the common case never rebuilds it.
const INITIAL_POOL_SIZE: usize = crate::DEFAULT_CONCURRENCY;

/// Bytes of an error response's body read for the message.
const ERROR_BODY_LIMIT: u64 = 1024;

/// An object behind an `http://` or `https://` URL, read with range
/// requests.
///
/// - Sends `Accept-Encoding: identity`, and rejects a response with any
///   other `Content-Encoding` as [`Error::RangeNotSupported`]: byte ranges
///   of a compressed body are not ranges of the object.
/// - Learns the length and validator with `HEAD`; where `HEAD` is refused
///   (405, 501, or 403 as presigned URLs do, their signature covering the
///   method) with a `GET` of `bytes=0-0`.
/// - Pins every read to the version opened: `If-Match` with a strong
///   `ETag`, else `If-Unmodified-Since` with `Last-Modified` (a weak `ETag`
///   is never used with `If-Match`). A version that changed is
///   [`Error::ObjectChanged`] — from 412, or from a response whose `ETag` or
///   total length differs from the one seen at open. An object with no
///   validator is read unpinned (still length-checked): see
///   [`is_pinned`](Self::is_pinned).
/// - Checks each response: a `Content-Range` or `Content-Length` that does
///   not match the request is [`Error::InvalidResponse`].
/// - Reads a server that ignores byte ranges (a `HEAD` without
///   `Accept-Ranges: bytes`, then a `200` with the whole object to a `GET`
///   of the first byte, as Python's `http.server` answers) as one stream
///   front to back: sequential reads and forward seeks are served from one
///   response, and a read behind it is [`Error::RangeNotSupported`]; see
///   [`RangeSource::supports_ranges`]. A single `200` from a server that
///   does serve ranges is skipped to the range asked for.
/// - Maps statuses: 404 and 410 → [`Error::NotFound`], 401 and 403 →
///   [`Error::PermissionDenied`], timeouts → [`Error::TimedOut`], others →
///   [`Error::HttpStatus`].
/// - Retries connect errors, timeouts, 408, 429, 5xx and bodies cut short
///   (resuming at the first missing byte) as its [`RetryPolicy`] says,
///   honouring `Retry-After`; never other 4xx.
/// - Keeps a keep-alive connection pool sized to the reader's concurrency.
/// - Follows up to ten redirects itself (301, 302, 303, 307, 308; every hop
///   keeps the method and range). Refuses a redirect from `https` to
///   `http`, to another scheme, or to a URL with userinfo
///   ([`Error::InvalidResponse`]). Headers set on the builder, the bearer
///   token and userinfo credentials go only to the origin (scheme, host and
///   port) of the URL opened: once a hop leaves it, only `User-Agent` and
///   the request's own headers are sent. The URL redirected to is
///   remembered for later reads; a 401, 403, 404 or 410 from it (an expired
///   presigned URL) resolves the redirect once more from the URL opened.
///
/// Messages name the URL with its userinfo and secret-looking query values
/// (signatures, tokens, keys) redacted; the bearer token never appears.
///
/// ```no_run
/// use prefetch_reader::{HttpSource, PrefetchReader, RangeSource};
/// use std::io::Read;
///
/// let source = HttpSource::open("https://example.com/data.bin")?;
/// println!("{} bytes, pinned: {}", source.len(), source.is_pinned());
/// let mut reader = PrefetchReader::new(source)?;
/// let mut head = [0; 16];
/// reader.read_exact(&mut head)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct HttpSource {
    /// The URL requested: without userinfo or fragment.
    url: String,
    /// Makes each request's URL instead of `url`, for sources that sign
    /// every request (S3).
    hooks: Option<Arc<dyn RequestHooks>>,
    /// The URL for messages, secrets redacted.
    location: String,
    /// Where the open's redirects led (when that is not `url`): reads go
    /// straight there, with no redirect per part.
    resolved: Mutex<Option<String>>,
    len: u64,
    etag: Option<String>,
    last_modified: Option<String>,
    /// The precondition sent with every ranged `GET`.
    pin: Option<(HeaderName, HeaderValue)>,
    /// Sent with every request: the caller's headers, `User-Agent`,
    /// `Authorization`.
    headers: Vec<(HeaderName, HeaderValue)>,
    connect_timeout: Option<Duration>,
    read_timeout: Option<Duration>,
    retry: RetryPolicy,
    agent: Mutex<AgentSlot>,
    /// Set when the URL itself names the version read (GCS's
    /// `generation=`), in place of a precondition header.
    version_in_url: Option<VersionInUrl>,
    /// Whether error bodies are Google API JSON errors, whose
    /// `error.message` goes into messages.
    google_errors: bool,
    /// Requests sent so far (every redirect hop and retry is one).
    sent: AtomicU64,
    /// Requests the open sent.
    sent_at_open: u64,
    /// Set when the server ignores byte ranges: the one response reads go
    /// through, in order.
    stream: Option<whole::WholeStream>,
    /// The object's last bytes, when the open asked for them.
    tail: Option<tail::Tail>,
    /// Bytes of bodies the open received (the tail, and any attempt that
    /// failed on the way).
    received_at_open: u64,
}

/// How reads are pinned when the URL names one version of the object (as
/// GCS's `generation=` does): the server answers 404 once that version is
/// gone — which, after open, is [`Error::ObjectChanged`] — and a response
/// header, when sent, must name the same version.
#[derive(Debug, Clone)]
pub(crate) struct VersionInUrl {
    /// The response header naming the version served (`x-goog-generation`).
    pub(crate) header: HeaderName,
    /// The version opened, as the header gives it.
    pub(crate) value: String,
    /// What the version is called in messages (`generation`).
    pub(crate) name: &'static str,
}

/// What a source built on [`HttpSource`] changes about its requests.
///
/// S3 signs each request afresh (a presigned URL with a short expiry per
/// attempt, the method covered by the signature) and reads S3's error
/// codes; the rest — ranges, pinning, checks, retries — stays
/// `HttpSource`'s.
pub(crate) trait RequestHooks: Send + Sync + 'static {
    /// The URL for one attempt of a `method` request (`HEAD` or `GET`).
    fn url(&self, method: &Method) -> Result<String>;

    /// A clearer error for a failed response whose body carries an
    /// S3-style error `code` and `message`, or `None` for the usual
    /// mapping by status.
    fn error_for(&self, status: u16, code: &str, message: &str) -> Option<Error> {
        let _ = (status, code, message);
        None
    }

    /// Whether a `HEAD` answered 404 is asked again as a `GET` of the
    /// first byte: a `HEAD` response has no body, and the body is what
    /// tells a missing object from a missing bucket.
    fn get_after_head_not_found(&self) -> bool {
        false
    }
}

/// The agent requests go through.
struct AgentSlot {
    agent: Agent,
    /// The idle-connection pool of an agent the source built; `None` for a
    /// caller's agent, which is used as it is.
    own_pool_size: Option<usize>,
}

/// Why an attempt failed, and when the server asked to be tried again.
#[derive(Debug)]
struct Failure {
    error: Error,
    retry_after: Option<Duration>,
}

impl From<Error> for Failure {
    fn from(error: Error) -> Failure {
        Failure {
            error,
            retry_after: None,
        }
    }
}

/// What opening learns about the object.
struct Metadata {
    len: u64,
    etag: Option<String>,
    last_modified: Option<String>,
    /// Whether the response said `Accept-Ranges: bytes`.
    ranges_advertised: bool,
    /// The whole object's response, from a server that ignores ranges.
    stream: Option<whole::WholeStream>,
    /// The object's last bytes, from an open that asked for them.
    tail: Option<tail::Tail>,
    /// Bytes of bodies the open received, failed attempts' included.
    received: u64,
}

/// The bytes a `GET` asks for, as its `Range` header says them.
#[derive(Debug, Clone, Copy)]
enum Span {
    /// `bytes=START-LAST`, both included.
    Range(u64, u64),
    /// `bytes=-N`: the last `N` bytes, or all of a shorter object.
    Last(u64),
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Span::Range(start, last) => write!(f, "bytes={start}-{last}"),
            Span::Last(n) => write!(f, "bytes=-{n}"),
        }
    }
}

impl HttpSource {
    /// Opens the object at `url` with every default setting.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidLocation`] for a URL that is malformed, not
    /// `http(s)://` or without a host; [`Error::NotFound`],
    /// [`Error::PermissionDenied`], [`Error::TimedOut`],
    /// [`Error::HttpStatus`], [`Error::InvalidResponse`] (no usable length,
    /// say), [`Error::RangeNotSupported`] (an encoded response) or
    /// [`Error::Io`] (nothing listening, say) from the server.
    ///
    /// ```no_run
    /// let source = prefetch_reader::HttpSource::open("https://example.com/a.zip")?;
    /// # Ok::<(), prefetch_reader::Error>(())
    /// ```
    pub fn open(url: &str) -> Result<HttpSource> {
        HttpSourceBuilder::new().open(url)
    }

    /// A builder to set headers, credentials, timeouts, retries or an agent.
    ///
    /// ```no_run
    /// use prefetch_reader::{HttpSource, RetryPolicy};
    /// use std::time::Duration;
    ///
    /// let source = HttpSource::builder()
    ///     .bearer_token("ya29.secret")
    ///     .header("X-Request-Source", "batch")
    ///     .read_timeout(Duration::from_secs(10))
    ///     .retry_policy(RetryPolicy::never())
    ///     .open("https://example.com/data.bin")?;
    /// # Ok::<(), prefetch_reader::Error>(())
    /// ```
    pub fn builder() -> HttpSourceBuilder {
        HttpSourceBuilder::new()
    }

    /// The URL, with its userinfo and secret-looking query values redacted
    /// (the form messages use).
    pub fn redacted_url(&self) -> &str {
        &self.location
    }

    /// The `ETag` seen at open, if the server sent one.
    pub fn etag(&self) -> Option<&str> {
        self.etag.as_deref()
    }

    /// The `Last-Modified` seen at open, if the server sent one.
    pub fn last_modified(&self) -> Option<&str> {
        self.last_modified.as_deref()
    }

    /// Whether reads are pinned to the version opened (the server gave a
    /// strong `ETag` or a `Last-Modified`). An unpinned object that changes
    /// while it is read is still caught if its length changes, but not
    /// otherwise.
    pub fn is_pinned(&self) -> bool {
        self.pin.is_some() || self.version_in_url.is_some()
    }

    /// For sources built on this one: reads Google API JSON errors'
    /// `error.message` into messages.
    pub(crate) fn use_google_errors(&mut self) {
        self.google_errors = true;
    }

    /// For sources built on this one, once they learned the object's
    /// length and version another way: reads go to `url` (which names the
    /// version), are checked against `len`, and are pinned by `version`
    /// rather than by a precondition header.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidLocation`] if `url` is not a valid HTTP(S) URL.
    pub(crate) fn open_at_version(
        &mut self,
        url: &str,
        len: u64,
        version: VersionInUrl,
    ) -> Result<()> {
        self.retarget(url)?;
        self.len = len;
        self.etag = None;
        self.last_modified = None;
        self.pin = None;
        self.version_in_url = Some(version);
        self.stream = None;
        self.tail = None;
        // `received_at_open` stays: the bytes of a tail given up on (see
        // `learn_tail`) were received all the same.
        self.sent_at_open = self.sent.load(Relaxed);
        Ok(())
    }

    /// For sources built on this one: later requests go to `url` (from
    /// its first hop: where earlier redirects led is forgotten).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidLocation`] if `url` is not a valid HTTP(S) URL.
    pub(crate) fn retarget(&mut self, url: &str) -> Result<()> {
        self.url = url::parse_http_url(url)?.request_url;
        *self.resolved.get_mut() = None;
        Ok(())
    }

    /// `GET` of the source's URL for a small document (an API's metadata),
    /// retried as reads are; `what` names the request in messages. The
    /// body must be a `200` of at most `limit` bytes.
    ///
    /// # Errors
    ///
    /// Those of opening: [`Error::NotFound`], [`Error::PermissionDenied`],
    /// [`Error::HttpStatus`], [`Error::TimedOut`], [`Error::Io`], and
    /// [`Error::InvalidResponse`] for a body over `limit` bytes.
    pub(crate) fn get_document(&self, what: &str, limit: u64) -> Result<Vec<u8>> {
        let ctx = FetchContext::new();
        let agent = self.agent();
        self.with_retries(&ctx, || {
            let mut response = self.send_as(&agent, Method::GET, None, false, what.to_owned())?;
            if response.status().as_u16() != 200 {
                return Err(self.status_failure_as(response, what.to_owned()));
            }
            self.check_encoding(&response, what)?;
            let expected = header_str(&response, header::CONTENT_LENGTH)
                .and_then(|value| parse_u64(value.trim()))
                .unwrap_or(0);
            let mut body = Vec::new();
            if let Err(err) = response
                .body_mut()
                .as_reader()
                .take(limit + 1)
                .read_to_end(&mut body)
            {
                let (expected, received) = (expected as usize, body.len());
                return Err(self.body_error(err, what, 0, expected, received).into());
            }
            if body.len() as u64 > limit {
                return Err(self
                    .invalid(format!("{what}: the response is over {limit} bytes"))
                    .into());
            }
            Ok(body)
        })
    }

    fn agent(&self) -> Agent {
        self.agent.lock().agent.clone()
    }

    /// Learns length and validator: `HEAD`, or a `GET` of the first byte
    /// where `HEAD` is refused or says too little. With `probe_ranges`, a
    /// `HEAD` that does not advertise byte ranges is followed by a `GET` of
    /// the first byte, to find a server that ignores them. With a `tail`
    /// of `n` bytes, one `GET` of the last `n` learns it all and brings
    /// them, unless the server's answer says too little.
    fn learn_metadata(&self, probe_ranges: bool, tail: Option<u64>) -> Result<Metadata> {
        let ctx = FetchContext::new();
        let mut meta = self.learn_metadata_with(probe_ranges, tail, &ctx)?;
        // The kept tail's bytes included: they came through `ctx` too.
        meta.received = ctx.bytes_received();
        Ok(meta)
    }

    fn learn_metadata_with(
        &self,
        probe_ranges: bool,
        tail: Option<u64>,
        ctx: &FetchContext,
    ) -> Result<Metadata> {
        let agent = self.agent();
        if let Some(n) = tail {
            if let Some(meta) = self.with_retries(ctx, || self.learn_with_tail(&agent, n, ctx))? {
                return Ok(meta);
            }
        }
        if let Some(mut meta) = self.with_retries(ctx, || self.head(&agent))? {
            if probe_ranges && !meta.ranges_advertised && meta.len > 1 {
                let etag = meta.etag.as_deref();
                meta.stream =
                    self.with_retries(ctx, || self.probe_ranges(&agent, meta.len, etag))?;
            }
            return Ok(meta);
        }
        self.with_retries(ctx, || self.probe(&agent))
    }

    fn head(&self, agent: &Agent) -> Result<Option<Metadata>, Failure> {
        let response = self.send(agent, Method::HEAD, None, false)?;
        let status = response.status().as_u16();
        match status {
            // A presigned URL's signature covers the method: HEAD is 403
            // where GET is allowed. A real 403 comes back from the GET too.
            404 if self
                .hooks
                .as_ref()
                .is_some_and(|hooks| hooks.get_after_head_not_found()) =>
            {
                Ok(None)
            }
            403 | 405 | 501 => {
                log::debug!(
                    "HEAD {} refused ({status}); asking for bytes=0-0",
                    self.location
                );
                Ok(None)
            }
            200..=299 if status != 206 => {
                self.check_encoding(&response, "HEAD")?;
                let Some(value) = header_str(&response, header::CONTENT_LENGTH) else {
                    log::debug!(
                        "HEAD {} gave no Content-Length; asking for bytes=0-0",
                        self.location
                    );
                    return Ok(None);
                };
                let len = parse_u64(value.trim()).ok_or_else(|| {
                    self.invalid(format!("HEAD: non-numeric Content-Length `{value}`"))
                })?;
                Ok(Some(self.metadata(&response, len)))
            }
            _ => Err(self.status_failure(response, None)),
        }
    }

    /// `GET` of `bytes=0-0`: `206` with `Content-Range: bytes 0-0/TOTAL`; a
    /// 0-byte object answers 416 (`bytes */0`) or 200 with an empty body.
    fn probe(&self, agent: &Agent) -> Result<Metadata, Failure> {
        let mut response = self.send(agent, Method::GET, Some(Span::Range(0, 0)), false)?;
        let status = response.status().as_u16();
        let what = "GET bytes=0-0";
        match status {
            206 => {
                self.check_encoding(&response, what)?;
                let range = self.content_range(&response, what)?;
                let len = match range {
                    ContentRange::Bytes {
                        start: 0,
                        end: 0,
                        total: Some(total),
                    } => total,
                    _ => {
                        return Err(self
                            .invalid(format!(
                                "{what}: got Content-Range `{}`, expected `bytes 0-0/LENGTH`",
                                header_str(&response, header::CONTENT_RANGE).unwrap_or_default()
                            ))
                            .into())
                    }
                };
                let meta = self.metadata(&response, len);
                // Finish the body so the connection can be reused.
                let mut one = [0; 2];
                let _ = response.body_mut().as_reader().read(&mut one);
                Ok(meta)
            }
            416 => match header_str(&response, header::CONTENT_RANGE).map(parse_content_range) {
                None | Some(Some(ContentRange::Unsatisfied { total: 0 })) => {
                    Ok(self.metadata(&response, 0))
                }
                Some(_) => Err(self
                    .invalid(format!(
                        "{what}: 416 with Content-Range `{}` (only an empty object cannot serve byte 0)",
                        header_str(&response, header::CONTENT_RANGE).unwrap_or_default()
                    ))
                    .into()),
            },
            200 => {
                let len = self.whole_length(&response, what)?;
                let mut meta = self.metadata(&response, len);
                if len > 1 {
                    let etag = meta.etag.clone();
                    meta.stream = Some(self.whole_stream(response, len, etag.as_deref(), what)?);
                }
                Ok(meta)
            }
            _ => Err(self.status_failure(response, Some((0, 0)))),
        }
    }

    /// The object's length from a `200` to a ranged `GET` (the whole
    /// object, unencoded): its `Content-Length`, which must be there.
    fn whole_length(&self, response: &Response<Body>, what: &str) -> Result<u64> {
        self.check_encoding(response, what)?;
        let value = header_str(response, header::CONTENT_LENGTH).ok_or_else(|| {
            self.invalid(format!(
                "{what}: 200 without Content-Length; the length is unknown"
            ))
        })?;
        parse_u64(value.trim())
            .ok_or_else(|| self.invalid(format!("{what}: non-numeric Content-Length `{value}`")))
    }

    fn metadata(&self, response: &Response<Body>, len: u64) -> Metadata {
        Metadata {
            len,
            etag: header_str(response, header::ETAG).map(|v| v.trim().to_owned()),
            last_modified: header_str(response, header::LAST_MODIFIED).map(|v| v.trim().to_owned()),
            ranges_advertised: whole::advertises_ranges(response),
            stream: None,
            tail: None,
            received: 0,
        }
    }

    /// Takes what opening learned, and picks the precondition for reads.
    fn pin_to(&mut self, meta: Metadata) -> Result<()> {
        self.sent_at_open = self.sent.load(Relaxed);
        let strong_etag = meta.etag.as_deref().filter(|etag| !is_weak_etag(etag));
        self.pin = match (strong_etag, &meta.last_modified) {
            (Some(etag), _) => Some((header::IF_MATCH, self.header_value(etag, "ETag")?)),
            (None, Some(date)) => Some((
                header::IF_UNMODIFIED_SINCE,
                self.header_value(date, "Last-Modified")?,
            )),
            (None, None) => {
                log::warn!(
                    "{} has no strong ETag and no Last-Modified: reads are not pinned to one version",
                    self.location
                );
                None
            }
        };
        self.len = meta.len;
        self.etag = meta.etag;
        self.last_modified = meta.last_modified;
        self.stream = meta.stream;
        self.tail = meta.tail;
        self.received_at_open = meta.received;
        Ok(())
    }

    fn header_value(&self, value: &str, name: &str) -> Result<HeaderValue> {
        HeaderValue::from_str(value)
            .map_err(|_| self.invalid(format!("{name} `{value}` cannot be sent back in a header")))
    }

    /// Runs `attempt` until it succeeds, fails for good, or the retry
    /// policy gives up; sleeps between attempts unless cancelled.
    fn with_retries<T>(
        &self,
        ctx: &FetchContext,
        mut attempt: impl FnMut() -> Result<T, Failure>,
    ) -> Result<T> {
        let mut retrier = Retrier::new(&self.retry);
        let mut retrying = false;
        loop {
            ctx.check_cancelled()?;
            if retrying {
                // Counted as it is sent: a retry cancelled in its backoff
                // is none.
                ctx.record_retry();
            }
            retrying = true;
            let failure = match attempt() {
                Ok(value) => return Ok(value),
                Err(failure) => failure,
            };
            if !failure.error.is_transient() {
                return Err(failure.error);
            }
            let Some(delay) = retrier.next_delay(failure.retry_after) else {
                return Err(failure.error);
            };
            log::debug!("{}; retrying in {delay:?}", failure.error);
            sleep_unless_cancelled(delay, ctx)?;
        }
    }

    /// One attempt at the part `offset..offset + sink.len()`, resuming
    /// after the bytes earlier attempts committed and committing each chunk
    /// of the body as it arrives.
    fn fetch(
        &self,
        agent: &Agent,
        offset: u64,
        sink: &mut PartSink<'_>,
        ctx: &FetchContext,
    ) -> Result<(), Failure> {
        let start = offset + sink.filled() as u64;
        let last = offset + sink.len() as u64 - 1;
        let mut response = self.send(agent, Method::GET, Some(Span::Range(start, last)), true)?;
        let whole = match response.status().as_u16() {
            206 => {
                self.check_partial(&response, start, last)?;
                false
            }
            200 => {
                self.check_whole(&response, start, last)?;
                true
            }
            _ => return Err(self.status_failure(response, Some((start, last)))),
        };
        let what = format!("GET bytes={start}-{last}");
        let mut body = response.body_mut().as_reader();
        if whole {
            self.skip_body(&mut body, &mut 0, start, &what, ctx)?;
        }
        self.read_body(&mut body, offset, sink, &what, ctx)?;
        if whole && last + 1 < self.len {
            // The rest of the object is not wanted: dropping the response
            // closes the connection.
            return Ok(());
        }
        // A body longer than the range asked for is not the range asked for.
        let mut extra = [0; 1];
        match body.read(&mut extra) {
            Ok(0) => Ok(()),
            Ok(_) => Err(self
                .invalid(format!(
                    "GET bytes={start}-{last}: the body is longer than the {} bytes asked for",
                    last - start + 1
                ))
                .into()),
            Err(err) => {
                // Every byte asked for arrived; only the end of the
                // exchange failed, and the connection is dropped.
                log::debug!("{}: after the body: {err}", self.location);
                Ok(())
            }
        }
    }

    /// Sends one request with the source's headers, `Accept-Encoding:
    /// identity`, the range and (when `pinned`) the precondition.
    fn send(
        &self,
        agent: &Agent,
        method: Method,
        range: Option<Span>,
        pinned: bool,
    ) -> Result<Response<Body>, Failure> {
        let what = match range {
            Some(span) => format!("{method} {span}"),
            None => method.to_string(),
        };
        self.send_as(agent, method, range, pinned, what)
    }

    /// [`send`](Self::send), naming the request `what` in messages, and
    /// following redirects as [`redirect`] says: the caller's headers and
    /// credentials go to the first URL's origin only.
    fn send_as(
        &self,
        agent: &Agent,
        method: Method,
        range: Option<Span>,
        pinned: bool,
        what: String,
    ) -> Result<Response<Body>, Failure> {
        let (first, mut url) = match &self.hooks {
            Some(hooks) => {
                let url = hooks.url(&method)?;
                (url.clone(), url)
            }
            None => {
                let resolved = self.resolved.lock().clone();
                (
                    self.url.clone(),
                    resolved.unwrap_or_else(|| self.url.clone()),
                )
            }
        };
        let mut foreign = !redirect::same_origin(&first, &url);
        for _ in 0..=redirect::MAX_REDIRECTS {
            let response = self.send_once(agent, &method, &url, range, pinned, foreign, &what)?;
            let status = response.status().as_u16();
            let location = header_str(&response, header::LOCATION).map(str::to_owned);
            let Some(location) = location.filter(|_| redirect::is_redirect(status)) else {
                if self.hooks.is_none() && url != self.url && status < 300 {
                    *self.resolved.lock() = Some(url);
                }
                return Ok(response);
            };
            let next = redirect::next_url(&url, &location).map_err(|why| {
                self.invalid(format!(
                    "{what}: {status} redirect to `{}`: {why}",
                    redact_url(&location)
                ))
            })?;
            log::debug!(
                "{what} {}: {status} redirect to {}",
                redact_url(&url),
                redact_url(&next)
            );
            foreign |= !redirect::same_origin(&url, &next);
            url = next;
        }
        Err(self
            .invalid(format!(
                "{what}: more than {} redirects",
                redirect::MAX_REDIRECTS
            ))
            .into())
    }

    /// Forgets where the open's redirects led, so that the next request
    /// starts again from the URL given; whether there was anything to
    /// forget.
    fn forget_resolved(&self) -> bool {
        self.resolved.lock().take().is_some()
    }

    /// One request to `url`, no redirect followed; with the caller's
    /// headers and credentials unless the chain went to a `foreign` origin.
    #[allow(clippy::too_many_arguments, reason = "one request's every part")]
    fn send_once(
        &self,
        agent: &Agent,
        method: &Method,
        url: &str,
        range: Option<Span>,
        pinned: bool,
        foreign: bool,
        what: &str,
    ) -> Result<Response<Body>, Failure> {
        self.sent.fetch_add(1, Relaxed);
        let mut request = if *method == Method::HEAD {
            agent.head(url)
        } else {
            agent.get(url)
        };
        for (name, value) in &self.headers {
            if foreign && name != header::USER_AGENT {
                continue;
            }
            request = request.header(name, value);
        }
        request = request.header(header::ACCEPT_ENCODING, "identity");
        if let Some(span) = range {
            request = request.header(header::RANGE, span.to_string());
        }
        if pinned {
            if let Some((name, value)) = &self.pin {
                request = request.header(name, value);
            }
        }
        // Statuses are answers to read (headers and all), not errors; and
        // redirects are ours to follow, whatever the agent's settings.
        let mut config = request
            .config()
            .http_status_as_error(false)
            .max_redirects(0);
        if let Some(timeout) = self.connect_timeout {
            config = config.timeout_connect(Some(timeout));
        }
        if let Some(timeout) = self.read_timeout {
            config = config.timeout_per_read(Some(timeout));
        }
        let response = config
            .build()
            .call()
            .map_err(|err| self.transport_error(err, what))?;
        log::debug!("{what} {}: {}", redact_url(url), response.status().as_u16());
        Ok(response)
    }

    fn truncated(&self, offset: u64, expected: usize, received: usize) -> Error {
        Error::Truncated {
            object: self.location.clone(),
            offset,
            expected: expected as u64,
            received: received as u64,
        }
    }

    pub(crate) fn invalid(&self, detail: String) -> Error {
        Error::InvalidResponse {
            object: self.location.clone(),
            detail,
        }
    }

    fn changed(&self, detail: String) -> Error {
        Error::ObjectChanged {
            object: self.location.clone(),
            detail,
        }
    }
}

impl RangeSource for HttpSource {
    fn len(&self) -> u64 {
        self.len
    }

    /// The `HEAD` (or `GET` of the first byte), its redirects and retries.
    fn requests_at_open(&self) -> u64 {
        self.sent_at_open
    }

    /// The bytes of bodies the open received: the tail's, when it asked
    /// for one, and those of attempts that failed.
    fn bytes_at_open(&self) -> u64 {
        self.received_at_open
    }

    fn read_at(&self, offset: u64, buf: &mut [u8], ctx: &FetchContext) -> Result<()> {
        self.read_streaming(offset, &mut PartSink::new(buf), ctx)
    }

    fn read_streaming(
        &self,
        offset: u64,
        sink: &mut PartSink<'_>,
        ctx: &FetchContext,
    ) -> Result<()> {
        if sink.is_full() {
            return Ok(());
        }
        if offset.saturating_add(sink.len() as u64) > self.len {
            return Err(self.truncated(offset, sink.len(), sink.filled()));
        }
        if let Some(stream) = &self.stream {
            return self.read_streamed(stream, offset, sink, ctx);
        }
        if let Some(tail) = &self.tail {
            if tail.serve(offset, sink, ctx) {
                return Ok(());
            }
        }
        let agent = self.agent();
        let result = self.with_retries(ctx, || self.fetch(&agent, offset, sink, ctx));
        match result {
            // Where the open was redirected (a presigned URL, say) may have
            // expired: ask the URL given again, once.
            Err(Error::NotFound { .. } | Error::PermissionDenied { .. })
                if self.forget_resolved() =>
            {
                self.with_retries(ctx, || self.fetch(&agent, offset, sink, ctx))
            }
            other => other,
        }
    }

    /// Grows the source's own connection pool to `concurrency`; a caller's
    /// agent is left as it is.
    fn set_concurrency(&self, concurrency: usize) {
        let mut slot = self.agent.lock();
        if let Some(pool) = slot.own_pool_size {
            if concurrency > pool {
                slot.agent = own_agent(concurrency);
                slot.own_pool_size = Some(concurrency);
            }
        }
    }

    fn location(&self) -> String {
        self.location.clone()
    }

    /// `false` once the open found a server that ignores byte ranges.
    fn supports_ranges(&self) -> bool {
        self.stream.is_none()
    }

    /// The strong `ETag` seen at open, else its `Last-Modified`, else the
    /// version named in the URL (GCS's generation).
    fn validator(&self) -> Option<String> {
        let strong_etag = self.etag.as_deref().filter(|etag| !is_weak_etag(etag));
        strong_etag
            .or(self.last_modified.as_deref())
            .map(str::to_owned)
            .or_else(|| {
                self.version_in_url
                    .as_ref()
                    .map(|version| format!("{}={}", version.name, version.value))
            })
    }
}

impl fmt::Debug for HttpSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpSource")
            .field("url", &self.location)
            .field("len", &self.len)
            .field("etag", &self.etag)
            .field("last_modified", &self.last_modified)
            .field("pinned", &self.is_pinned())
            .field("version_in_url", &self.version_in_url)
            .field("single_stream", &self.stream.is_some())
            .finish_non_exhaustive()
    }
}

/// An agent of the source's own, keeping up to `pool_size` idle
/// connections to the host.
fn own_agent(pool_size: usize) -> Agent {
    Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .max_idle_connections(pool_size)
        .max_idle_connections_per_host(pool_size)
        .build()
        .new_agent()
}

fn header_str(response: &Response<Body>, name: HeaderName) -> Option<&str> {
    response.headers().get(name).and_then(|v| v.to_str().ok())
}
