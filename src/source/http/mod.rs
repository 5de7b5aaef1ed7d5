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
//! short resumes at its first missing byte. The pieces: `url` checks the URL,
//! `response` parses headers, `retry` decides the waits, `redact` writes URLs
//! for messages.

use std::fmt;
use std::io::{self, Read};
use std::time::{Duration, SystemTime};

use parking_lot::Mutex;
use ureq::http::header::{self, HeaderName, HeaderValue};
use ureq::http::{Method, Response};
use ureq::{Agent, Body};

use super::{FetchContext, RangeSource};
use crate::error::{Error, Result};

mod redact;
mod response;
mod retry;
mod url;

pub(crate) use redact::redact_url;
pub use retry::{
    RetryPolicy, DEFAULT_INITIAL_BACKOFF, DEFAULT_MAX_ATTEMPTS, DEFAULT_MAX_BACKOFF,
    DEFAULT_MAX_RETRY_TIME,
};
pub(crate) use url::percent_decode;

use response::{etags_match, excerpt, is_identity_encoding, is_weak_etag, parse_content_range};
use response::{parse_u64, ContentRange};
use retry::{parse_retry_after, sleep_unless_cancelled, Retrier};

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
///   not match the request is [`Error::InvalidResponse`]; a 200 with the
///   whole object is accepted only when the whole object was asked for,
///   else it is [`Error::RangeNotSupported`].
/// - Maps statuses: 404 and 410 → [`Error::NotFound`], 401 and 403 →
///   [`Error::PermissionDenied`], timeouts → [`Error::TimedOut`], others →
///   [`Error::HttpStatus`].
/// - Retries connect errors, timeouts, 408, 429, 5xx and bodies cut short
///   (resuming at the first missing byte) as its [`RetryPolicy`] says,
///   honouring `Retry-After`; never other 4xx.
/// - Keeps a keep-alive connection pool sized to the reader's concurrency.
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
    /// The URL for messages, secrets redacted.
    location: String,
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
#[derive(Debug)]
struct Metadata {
    len: u64,
    etag: Option<String>,
    last_modified: Option<String>,
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
        self.pin.is_some()
    }

    fn agent(&self) -> Agent {
        self.agent.lock().agent.clone()
    }

    /// Learns length and validator: `HEAD`, or a `GET` of the first byte
    /// where `HEAD` is refused or says too little.
    fn learn_metadata(&self) -> Result<Metadata> {
        let ctx = FetchContext::new();
        let agent = self.agent();
        if let Some(meta) = self.with_retries(&ctx, || self.head(&agent))? {
            return Ok(meta);
        }
        self.with_retries(&ctx, || self.probe(&agent))
    }

    fn head(&self, agent: &Agent) -> Result<Option<Metadata>, Failure> {
        let response = self.send(agent, Method::HEAD, None, false)?;
        let status = response.status().as_u16();
        match status {
            // A presigned URL's signature covers the method: HEAD is 403
            // where GET is allowed. A real 403 comes back from the GET too.
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
        let mut response = self.send(agent, Method::GET, Some((0, 0)), false)?;
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
                self.check_encoding(&response, what)?;
                let value = header_str(&response, header::CONTENT_LENGTH).ok_or_else(|| {
                    self.invalid(format!(
                        "{what}: 200 without Content-Length; the length is unknown"
                    ))
                })?;
                let len = parse_u64(value.trim()).ok_or_else(|| {
                    self.invalid(format!("{what}: non-numeric Content-Length `{value}`"))
                })?;
                if len > 1 {
                    log::warn!(
                        "{} ignores byte ranges: only reads of the whole object will succeed",
                        self.location
                    );
                }
                // The body (the whole object) is not read: dropping the
                // response closes the connection.
                Ok(self.metadata(&response, len))
            }
            _ => Err(self.status_failure(response, Some((0, 0)))),
        }
    }

    fn metadata(&self, response: &Response<Body>, len: u64) -> Metadata {
        Metadata {
            len,
            etag: header_str(response, header::ETAG).map(|v| v.trim().to_owned()),
            last_modified: header_str(response, header::LAST_MODIFIED).map(|v| v.trim().to_owned()),
        }
    }

    /// Takes what opening learned, and picks the precondition for reads.
    fn pin_to(&mut self, meta: Metadata) -> Result<()> {
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
        loop {
            ctx.check_cancelled()?;
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
            ctx.record_retry();
            sleep_unless_cancelled(delay, ctx)?;
        }
    }

    /// One attempt at `offset..offset + buf.len()`, resuming after the
    /// `filled` bytes earlier attempts delivered and advancing `filled` as
    /// bytes arrive.
    fn fetch(
        &self,
        agent: &Agent,
        offset: u64,
        buf: &mut [u8],
        filled: &mut usize,
        ctx: &FetchContext,
    ) -> Result<(), Failure> {
        let start = offset + *filled as u64;
        let last = offset + buf.len() as u64 - 1;
        let mut response = self.send(agent, Method::GET, Some((start, last)), true)?;
        match response.status().as_u16() {
            206 => self.check_partial(&response, start, last)?,
            200 => self.check_whole(&response, start, last)?,
            _ => return Err(self.status_failure(response, Some((start, last)))),
        }
        let mut body = response.body_mut().as_reader();
        while *filled < buf.len() {
            ctx.check_cancelled()?;
            let chunk_end = buf.len().min(*filled + BODY_CHUNK);
            match body.read(&mut buf[*filled..chunk_end]) {
                Ok(0) => return Err(self.truncated(offset, buf.len(), *filled).into()),
                Ok(n) => {
                    *filled += n;
                    ctx.add_bytes(n as u64);
                }
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) => {
                    let what = format!("GET bytes={start}-{last}");
                    return Err(self
                        .body_error(err, &what, offset, buf.len(), *filled)
                        .into());
                }
            }
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

    /// Checks a 206: encoding, `Content-Range` (total first: a different
    /// total is a different object), `Content-Length`, validator.
    fn check_partial(&self, response: &Response<Body>, start: u64, last: u64) -> Result<()> {
        let what = format!("GET bytes={start}-{last}");
        self.check_encoding(response, &what)?;
        let range = self.content_range(response, &what)?;
        let got = header_str(response, header::CONTENT_RANGE).unwrap_or_default();
        match range {
            ContentRange::Bytes {
                total: Some(total), ..
            } if total != self.len => {
                return Err(self.changed(format!(
                    "{what}: Content-Range `{got}` gives length {total}, was {} at open",
                    self.len
                )))
            }
            ContentRange::Bytes {
                start: s, end: e, ..
            } if (s, e) == (start, last) => {}
            _ => {
                return Err(self.invalid(format!(
                    "{what}: got Content-Range `{got}`, another range than asked for"
                )))
            }
        }
        self.check_content_length(response, &what, last - start + 1, false)?;
        self.check_validator(response, &what)
    }

    /// Checks a 200 to a ranged `GET`: acceptable only when the whole
    /// object was asked for.
    fn check_whole(&self, response: &Response<Body>, start: u64, last: u64) -> Result<()> {
        let what = format!("GET bytes={start}-{last}");
        if start != 0 || last + 1 != self.len {
            return Err(Error::RangeNotSupported {
                object: self.location.clone(),
                detail: format!("{what}: the server ignored Range and sent the whole object (200)"),
            });
        }
        self.check_encoding(response, &what)?;
        self.check_content_length(response, &what, self.len, true)?;
        self.check_validator(response, &what)
    }

    fn check_encoding(&self, response: &Response<Body>, what: &str) -> Result<()> {
        match header_str(response, header::CONTENT_ENCODING) {
            Some(encoding) if !is_identity_encoding(encoding) => Err(Error::RangeNotSupported {
                object: self.location.clone(),
                detail: format!(
                    "{what}: the body is encoded (Content-Encoding: {encoding}) although \
                     `Accept-Encoding: identity` was sent"
                ),
            }),
            _ => Ok(()),
        }
    }

    fn content_range(&self, response: &Response<Body>, what: &str) -> Result<ContentRange> {
        let value = header_str(response, header::CONTENT_RANGE)
            .ok_or_else(|| self.invalid(format!("{what}: 206 without Content-Range")))?;
        parse_content_range(value)
            .ok_or_else(|| self.invalid(format!("{what}: malformed Content-Range `{value}`")))
    }

    /// `Content-Length`, when sent, must be `expected`; for the whole
    /// object, another length means another object.
    fn check_content_length(
        &self,
        response: &Response<Body>,
        what: &str,
        expected: u64,
        whole: bool,
    ) -> Result<()> {
        let Some(value) = header_str(response, header::CONTENT_LENGTH) else {
            return Ok(());
        };
        match parse_u64(value.trim()) {
            None => Err(self.invalid(format!("{what}: non-numeric Content-Length `{value}`"))),
            Some(n) if n == expected => Ok(()),
            Some(n) if whole => Err(self.changed(format!(
                "{what}: Content-Length {n} of the whole object, was {expected} at open"
            ))),
            Some(n) => Err(self.invalid(format!(
                "{what}: Content-Length {n} for a range of {expected} bytes"
            ))),
        }
    }

    /// The response must come from the version opened.
    fn check_validator(&self, response: &Response<Body>, what: &str) -> Result<()> {
        if let Some(ours) = &self.etag {
            if let Some(theirs) = header_str(response, header::ETAG) {
                if !etags_match(ours, theirs) {
                    return Err(self.changed(format!(
                        "{what}: ETag is now {}, was {ours} at open",
                        theirs.trim()
                    )));
                }
            }
        } else if let (Some(ours), Some(theirs)) = (
            &self.last_modified,
            header_str(response, header::LAST_MODIFIED),
        ) {
            if ours != theirs.trim() {
                return Err(self.changed(format!(
                    "{what}: Last-Modified is now {}, was {ours} at open",
                    theirs.trim()
                )));
            }
        }
        Ok(())
    }

    /// Sends one request with the source's headers, `Accept-Encoding:
    /// identity`, the range and (when `pinned`) the precondition.
    fn send(
        &self,
        agent: &Agent,
        method: Method,
        range: Option<(u64, u64)>,
        pinned: bool,
    ) -> Result<Response<Body>, Failure> {
        let what = match range {
            Some((start, last)) => format!("{method} bytes={start}-{last}"),
            None => method.to_string(),
        };
        let mut request = if method == Method::HEAD {
            agent.head(&self.url)
        } else {
            agent.get(&self.url)
        };
        for (name, value) in &self.headers {
            request = request.header(name, value);
        }
        request = request.header(header::ACCEPT_ENCODING, "identity");
        if let Some((start, last)) = range {
            request = request.header(header::RANGE, format!("bytes={start}-{last}"));
        }
        if pinned {
            if let Some((name, value)) = &self.pin {
                request = request.header(name, value);
            }
        }
        // Statuses are answers to read (headers and all), not errors.
        let mut config = request.config().http_status_as_error(false);
        if let Some(timeout) = self.connect_timeout {
            config = config.timeout_connect(Some(timeout));
        }
        if let Some(timeout) = self.read_timeout {
            config = config.timeout_per_read(Some(timeout));
        }
        config
            .build()
            .call()
            .map_err(|err| self.transport_error(err, &what).into())
    }

    /// The error for a status that is not an answer: its kind, the
    /// server's message and its `Retry-After`.
    fn status_failure(&self, mut response: Response<Body>, range: Option<(u64, u64)>) -> Failure {
        let status = response.status().as_u16();
        let retry_after = header_str(&response, header::RETRY_AFTER)
            .and_then(|value| parse_retry_after(value, SystemTime::now()));
        let what = match range {
            Some((start, last)) => format!("GET bytes={start}-{last}"),
            None => "HEAD".to_owned(),
        };
        let content_range =
            header_str(&response, header::CONTENT_RANGE).and_then(parse_content_range);
        let message = server_message(&mut response);
        let detail = |prefix: String| {
            if message.is_empty() {
                prefix
            } else {
                format!("{prefix}: {message}")
            }
        };
        let error = match status {
            404 | 410 => Error::NotFound {
                object: self.location.clone(),
                detail: detail(format!("{what}: status {status}")),
            },
            401 | 403 => Error::PermissionDenied {
                object: self.location.clone(),
                status,
                detail: detail(what),
            },
            412 => self.changed(format!(
                "{what}: status 412 Precondition Failed: it no longer matches {}",
                self.pin_description()
            )),
            416 => match content_range {
                Some(ContentRange::Unsatisfied { total }) if total != self.len => {
                    self.changed(format!(
                        "{what}: status 416, length is now {total}, was {} at open",
                        self.len
                    ))
                }
                _ => Error::HttpStatus {
                    object: self.location.clone(),
                    status,
                    detail: detail(what),
                },
            },
            _ => Error::HttpStatus {
                object: self.location.clone(),
                status,
                detail: detail(what),
            },
        };
        Failure { error, retry_after }
    }

    fn pin_description(&self) -> String {
        match &self.pin {
            Some((name, value)) => {
                let name = if name == header::IF_MATCH {
                    "If-Match"
                } else {
                    "If-Unmodified-Since"
                };
                format!("{name}: {}", value.to_str().unwrap_or("(not text)"))
            }
            None => "the version opened".to_owned(),
        }
    }

    /// Maps a failure to get a response (or to read its body) from ureq.
    fn transport_error(&self, err: ureq::Error, what: &str) -> Error {
        let context = || format!("{what} {}", self.location);
        match err {
            ureq::Error::Timeout(timeout) => {
                let limit = match timeout {
                    ureq::Timeout::Connect => self
                        .connect_timeout
                        .map(|t| format!(" of {t:?}"))
                        .unwrap_or_default(),
                    ureq::Timeout::PerRead => self
                        .read_timeout
                        .map(|t| format!(" of {t:?} without data"))
                        .unwrap_or_default(),
                    _ => String::new(),
                };
                Error::TimedOut {
                    object: self.location.clone(),
                    detail: format!("{what}: {timeout} timeout{limit}"),
                }
            }
            ureq::Error::Io(err)
                if matches!(
                    err.kind(),
                    io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
                ) =>
            {
                Error::TimedOut {
                    object: self.location.clone(),
                    detail: format!("{what}: {err}"),
                }
            }
            ureq::Error::Io(err) => Error::io(context(), err),
            ureq::Error::HostNotFound => Error::io(
                context(),
                io::Error::new(io::ErrorKind::HostUnreachable, "host not found"),
            ),
            ureq::Error::Protocol(err) => self.invalid(format!("{what}: {err}")),
            ureq::Error::BadUri(reason) => Error::InvalidLocation {
                location: self.location.clone(),
                reason,
            },
            ureq::Error::TooManyRedirects => self.invalid(format!("{what}: too many redirects")),
            ureq::Error::StatusCode(status) => Error::HttpStatus {
                object: self.location.clone(),
                status,
                detail: what.to_owned(),
            },
            other => Error::io(context(), io::Error::other(other.to_string())),
        }
    }

    /// Maps an error reading a body: a connection that ended or broke is a
    /// truncated body (retried, resuming where it broke).
    fn body_error(
        &self,
        err: io::Error,
        what: &str,
        offset: u64,
        expected: usize,
        received: usize,
    ) -> Error {
        match ureq::Error::from(err) {
            ureq::Error::Io(err)
                if matches!(
                    err.kind(),
                    io::ErrorKind::UnexpectedEof
                        | io::ErrorKind::ConnectionReset
                        | io::ErrorKind::ConnectionAborted
                        | io::ErrorKind::BrokenPipe
                ) =>
            {
                log::debug!("{what} {}: body broken: {err}", self.location);
                self.truncated(offset, expected, received)
            }
            other => self.transport_error(other, what),
        }
    }

    fn truncated(&self, offset: u64, expected: usize, received: usize) -> Error {
        Error::Truncated {
            object: self.location.clone(),
            offset,
            expected: expected as u64,
            received: received as u64,
        }
    }

    fn invalid(&self, detail: String) -> Error {
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

    fn read_at(&self, offset: u64, buf: &mut [u8], ctx: &FetchContext) -> Result<()> {
        if buf.is_empty() {
            return Ok(());
        }
        if offset.saturating_add(buf.len() as u64) > self.len {
            return Err(self.truncated(offset, buf.len(), 0));
        }
        let agent = self.agent();
        let mut filled = 0;
        self.with_retries(ctx, || self.fetch(&agent, offset, buf, &mut filled, ctx))
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
}

impl fmt::Debug for HttpSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpSource")
            .field("url", &self.location)
            .field("len", &self.len)
            .field("etag", &self.etag)
            .field("last_modified", &self.last_modified)
            .field("pinned", &self.is_pinned())
            .finish_non_exhaustive()
    }
}

/// An agent of the source's own, keeping up to `pool_size` idle
/// connections to the host.
fn own_agent(pool_size: usize) -> Agent {
    Agent::config_builder()
        .http_status_as_error(false)
        .max_idle_connections(pool_size)
        .max_idle_connections_per_host(pool_size)
        .build()
        .new_agent()
}

fn header_str(response: &Response<Body>, name: HeaderName) -> Option<&str> {
    response.headers().get(name).and_then(|v| v.to_str().ok())
}

/// The start of an error body, when it is text meant for people or
/// programs (XML, JSON, plain text) rather than an HTML page.
fn server_message(response: &mut Response<Body>) -> String {
    let textual = header_str(response, header::CONTENT_TYPE).is_some_and(|ct| {
        let ct = ct.to_ascii_lowercase();
        ct.contains("xml") || ct.contains("json") || ct.starts_with("text/plain")
    });
    if !textual {
        return String::new();
    }
    let mut bytes = Vec::new();
    let _ = response
        .body_mut()
        .as_reader()
        .take(ERROR_BODY_LIMIT)
        .read_to_end(&mut bytes);
    excerpt(&bytes)
}

/// Settings for opening [`HttpSource`]s; one builder opens many objects.
///
/// ```no_run
/// use prefetch_reader::{HttpSource, PrefetchReader};
/// use std::time::Duration;
///
/// let mut builder = HttpSource::builder();
/// builder
///     .connect_timeout(Duration::from_secs(5))
///     .user_agent("my-tool/1.0");
/// for url in ["https://example.com/a.bin", "https://example.com/b.bin"] {
///     let reader = PrefetchReader::new(builder.open(url)?)?;
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Default)]
pub struct HttpSourceBuilder {
    headers: Vec<(String, String)>,
    bearer_token: Option<String>,
    connect_timeout: Option<Duration>,
    read_timeout: Option<Duration>,
    retry: RetryPolicy,
    user_agent: Option<String>,
    agent: Option<Agent>,
}

impl HttpSourceBuilder {
    /// A builder with every default.
    pub fn new() -> HttpSourceBuilder {
        HttpSourceBuilder::default()
    }

    /// Sends the header `name: value` with every request (added to those
    /// set before). Checked when a source is opened.
    pub fn header(&mut self, name: impl Into<String>, value: impl Into<String>) -> &mut Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Sends `Authorization: Bearer TOKEN` with every request. Never shown
    /// in messages or `Debug` output. Takes the place of credentials in
    /// the URL's userinfo (which are otherwise sent as Basic auth).
    pub fn bearer_token(&mut self, token: impl Into<String>) -> &mut Self {
        self.bearer_token = Some(token.into());
        self
    }

    /// How long connecting may take. Defaults to
    /// [`DEFAULT_CONNECT_TIMEOUT`] (10 s) with the source's own agent; with
    /// a caller's [`agent`](Self::agent), the agent's own setting unless
    /// this is called.
    pub fn connect_timeout(&mut self, timeout: Duration) -> &mut Self {
        self.connect_timeout = Some(timeout);
        self
    }

    /// How long a response may stall (no byte of headers or body arriving)
    /// before it is [`Error::TimedOut`] (and retried). Defaults to
    /// [`DEFAULT_READ_TIMEOUT`] (30 s) with the source's own agent; with a
    /// caller's [`agent`](Self::agent), the agent's own setting unless this
    /// is called.
    pub fn read_timeout(&mut self, timeout: Duration) -> &mut Self {
        self.read_timeout = Some(timeout);
        self
    }

    /// How failures that may not last are retried. Defaults to
    /// [`RetryPolicy::default`].
    pub fn retry_policy(&mut self, policy: RetryPolicy) -> &mut Self {
        self.retry = policy;
        self
    }

    /// The `User-Agent` header. Defaults to [`DEFAULT_USER_AGENT`]
    /// (`prefetch-reader/VERSION`).
    pub fn user_agent(&mut self, user_agent: impl Into<String>) -> &mut Self {
        self.user_agent = Some(user_agent.into());
        self
    }

    /// Sends requests through `agent` (for its proxy, TLS or resolver
    /// settings), used as it is: its connection pool is not resized to the
    /// reader's concurrency, so give it at least that many idle connections
    /// per host. Statuses are read as answers whatever its
    /// `http_status_as_error`. By default the source makes its own agent.
    pub fn agent(&mut self, agent: Agent) -> &mut Self {
        self.agent = Some(agent);
        self
    }

    /// Opens the object at `url` with these settings.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] for a header that cannot be sent, and those
    /// of [`HttpSource::open`].
    pub fn open(&self, url: &str) -> Result<HttpSource> {
        let parsed = url::parse_http_url(url)?;
        let mut headers = Vec::with_capacity(self.headers.len() + 2);
        for (name, value) in &self.headers {
            let name =
                HeaderName::from_bytes(name.as_bytes()).map_err(|_| Error::InvalidConfig {
                    setting: "header",
                    reason: format!("`{name}` is not a valid header name"),
                })?;
            let mut value = HeaderValue::from_str(value).map_err(|_| Error::InvalidConfig {
                setting: "header",
                reason: format!("the value of `{name}` is not a valid header value"),
            })?;
            value.set_sensitive(true);
            headers.push((name, value));
        }
        let user_agent = self.user_agent.as_deref().unwrap_or(DEFAULT_USER_AGENT);
        let user_agent = HeaderValue::from_str(user_agent).map_err(|_| Error::InvalidConfig {
            setting: "user_agent",
            reason: format!("`{user_agent}` is not a valid header value"),
        })?;
        headers.push((header::USER_AGENT, user_agent));
        let authorization = match (&self.bearer_token, &parsed.userinfo) {
            (Some(token), _) => Some(("bearer_token", format!("Bearer {token}"))),
            (None, Some(userinfo)) => {
                Some(("url", format!("Basic {}", url::base64(userinfo.as_bytes()))))
            }
            (None, None) => None,
        };
        if let Some((setting, value)) = authorization {
            let mut value = HeaderValue::from_str(&value).map_err(|_| Error::InvalidConfig {
                setting,
                reason: "the credentials are not a valid header value".to_owned(),
            })?;
            value.set_sensitive(true);
            headers.push((header::AUTHORIZATION, value));
        }
        let (agent, own_pool_size, connect_timeout, read_timeout) = match &self.agent {
            Some(agent) => (agent.clone(), None, self.connect_timeout, self.read_timeout),
            None => (
                own_agent(INITIAL_POOL_SIZE),
                Some(INITIAL_POOL_SIZE),
                Some(self.connect_timeout.unwrap_or(DEFAULT_CONNECT_TIMEOUT)),
                Some(self.read_timeout.unwrap_or(DEFAULT_READ_TIMEOUT)),
            ),
        };
        let mut source = HttpSource {
            url: parsed.request_url,
            location: redact_url(url),
            len: 0,
            etag: None,
            last_modified: None,
            pin: None,
            headers,
            connect_timeout,
            read_timeout,
            retry: self.retry.clone(),
            agent: Mutex::new(AgentSlot {
                agent,
                own_pool_size,
            }),
        };
        let meta = source.learn_metadata()?;
        source.pin_to(meta)?;
        Ok(source)
    }
}

impl fmt::Debug for HttpSourceBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Header values and the token may be secrets: names only.
        let header_names: Vec<&str> = self.headers.iter().map(|(n, _)| n.as_str()).collect();
        f.debug_struct("HttpSourceBuilder")
            .field("headers", &header_names)
            .field(
                "bearer_token",
                &self.bearer_token.as_ref().map(|_| "REDACTED"),
            )
            .field("connect_timeout", &self.connect_timeout)
            .field("read_timeout", &self.read_timeout)
            .field("retry", &self.retry)
            .field("user_agent", &self.user_agent)
            .field("agent", &self.agent.as_ref().map(|_| "caller's"))
            .finish()
    }
}
