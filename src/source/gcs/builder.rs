//! [`GcsSourceBuilder`]: the settings a [`GcsSource`] is opened with, and
//! opening: metadata first, then an [`HttpSource`] on the media URL of the
//! generation found; or, with a tail, one media download of the object's
//! last bytes whose headers name the generation, then the same.

use std::fmt;
use std::time::Duration;

use ureq::http::{HeaderName, Response};
use ureq::{Agent, Body};

use super::location::{
    latest_media_url, media_url, metadata_url, parse_gs_location, resolve_endpoint, EndpointOrigin,
    ObjectName,
};
use super::metadata::parse_metadata;
use super::{GcsSource, GCS_EMULATOR_HOST_ENV, GCS_TOKEN_ENV};
use crate::error::{Error, Result};
use crate::escape::escape_control;
use crate::source::http::{
    checked_tail, is_identity_encoding, parse_u64, redact_url, HttpSource, VersionInUrl,
};
use crate::source::{HttpSourceBuilder, RetryPolicy};

/// The largest metadata response read. An object resource is a few KiB at
/// most (custom metadata is capped at 8 KiB); anything far larger is not
/// one.
const METADATA_LIMIT: u64 = 1 << 20;

/// The response header naming the generation a media download serves.
const GENERATION_HEADER: &str = "x-goog-generation";

/// The response header giving the object's checksums on a media download
/// (`crc32c=…,md5=…`, or one header each).
const HASH_HEADER: &str = "x-goog-hash";

/// The response header giving the `Content-Encoding` an object is stored
/// with, on a media download (which may have decompressed it).
const STORED_ENCODING_HEADER: &str = "x-goog-stored-content-encoding";

/// Settings for opening [`GcsSource`]s; one builder opens many objects.
///
/// ```no_run
/// use prefetch_reader::{GcsSource, PrefetchReader};
///
/// let mut builder = GcsSource::builder();
/// builder.bearer_token(std::env::var("MY_TOKEN")?);
/// for name in ["gs://my-bucket/a.bin", "gs://my-bucket/b.bin"] {
///     let reader = PrefetchReader::new(builder.open(name)?)?;
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Default)]
pub struct GcsSourceBuilder {
    /// Timeouts, retries, agent, user agent and extra headers.
    http: HttpSourceBuilder,
    endpoint: Option<String>,
    bearer_token: Option<String>,
    tail: Option<u64>,
}

/// What opening learned about the object, by either path.
struct Opened {
    size: u64,
    generation: u64,
    crc32c: Option<String>,
    md5_hash: Option<String>,
    etag: Option<String>,
}

/// What the headers of a tail's media download say.
#[derive(Debug, PartialEq, Eq)]
struct TailHeaders {
    generation: u64,
    crc32c: Option<String>,
    md5_hash: Option<String>,
}

impl GcsSourceBuilder {
    /// A builder with every default.
    pub fn new() -> GcsSourceBuilder {
        GcsSourceBuilder::default()
    }

    /// Sends requests to `endpoint` (`http(s)://host[:port][/prefix]`, or
    /// `host:port` for `http://host:port`) instead of the one
    /// `STORAGE_EMULATOR_HOST` names or [`DEFAULT_GCS_ENDPOINT`](super::DEFAULT_GCS_ENDPOINT).
    /// Checked when a source is opened.
    pub fn endpoint(&mut self, endpoint: impl Into<String>) -> &mut Self {
        self.endpoint = Some(endpoint.into());
        self
    }

    /// Sends `Authorization: Bearer TOKEN` (an OAuth 2.0 access token) with
    /// every request, in place of `GOOGLE_OAUTH_ACCESS_TOKEN`. Never shown
    /// in messages or `Debug` output.
    pub fn bearer_token(&mut self, token: impl Into<String>) -> &mut Self {
        self.bearer_token = Some(token.into());
        self
    }

    /// Sends the header `name: value` with every request (for example
    /// `x-goog-user-project` for requester-pays buckets). Checked when a
    /// source is opened.
    pub fn header(&mut self, name: impl Into<String>, value: impl Into<String>) -> &mut Self {
        self.http.header(name, value);
        self
    }

    /// How long connecting may take; as
    /// [`HttpSourceBuilder::connect_timeout`] (defaults to 10 s).
    pub fn connect_timeout(&mut self, timeout: Duration) -> &mut Self {
        self.http.connect_timeout(timeout);
        self
    }

    /// How long a response may stall; as
    /// [`HttpSourceBuilder::read_timeout`] (defaults to 30 s).
    pub fn read_timeout(&mut self, timeout: Duration) -> &mut Self {
        self.http.read_timeout(timeout);
        self
    }

    /// How failures that may not last (429, 5xx, timeouts, broken bodies)
    /// are retried, the metadata request included. Defaults to
    /// [`RetryPolicy::default`].
    pub fn retry_policy(&mut self, policy: RetryPolicy) -> &mut Self {
        self.http.retry_policy(policy);
        self
    }

    /// The `User-Agent` header. Defaults to
    /// [`DEFAULT_USER_AGENT`](crate::DEFAULT_USER_AGENT).
    pub fn user_agent(&mut self, user_agent: impl Into<String>) -> &mut Self {
        self.http.user_agent(user_agent);
        self
    }

    /// Sends requests through `agent`; as [`HttpSourceBuilder::agent`].
    pub fn agent(&mut self, agent: Agent) -> &mut Self {
        self.http.agent(agent);
        self
    }

    /// Opens with one media download of the object's last `n` bytes
    /// (`Range: bytes=-N`, no generation named) in place of the metadata
    /// request: the size comes from its `Content-Range`, the generation
    /// from its `x-goog-generation` header, and the bytes are kept, so reads
    /// inside them (a zip's directory, a parquet footer) need no request.
    /// Opening and reading a footer is then one round trip. Later reads are
    /// pinned to that generation, as after a metadata request.
    ///
    /// With a tail, [`GcsSource::crc32c`] and [`GcsSource::md5_hash`] come
    /// from the answer's `x-goog-hash` header (`None` where it has none),
    /// and [`GcsSource::etag`] is `None` (that is the metadata's). An answer
    /// that names no generation (some emulators send no `x-goog-generation`)
    /// or says too little (a `416` for an object that is not empty, a `200`
    /// without `Content-Length`) is given up on, its body unread, and the
    /// open asks for the metadata as without a tail: two requests.
    ///
    /// Off by default; `n` is 1 byte to [`MAX_TAIL`](crate::MAX_TAIL) (64 MiB), checked at
    /// open. [`DEFAULT_TAIL`](crate::DEFAULT_TAIL) (64 KiB) holds most
    /// footers.
    ///
    /// ```no_run
    /// use prefetch_reader::{GcsSource, DEFAULT_TAIL};
    ///
    /// let source = GcsSource::builder()
    ///     .tail(DEFAULT_TAIL)
    ///     .open("gs://my-bucket/data.parquet")?;
    /// # Ok::<(), prefetch_reader::Error>(())
    /// ```
    pub fn tail(&mut self, n: u64) -> &mut Self {
        self.tail = Some(n);
        self
    }

    /// Opens `gs://bucket/object` with these settings.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] for an endpoint (the builder's or
    /// `STORAGE_EMULATOR_HOST`), header, token or [`tail`](Self::tail)
    /// that cannot be used, and those of [`GcsSource::open`].
    pub fn open(&self, location: &str) -> Result<GcsSource> {
        let tail = checked_tail(self.tail)?;
        let name = parse_gs_location(location)?;
        let emulator = std::env::var(GCS_EMULATOR_HOST_ENV).ok();
        let (endpoint, origin) = resolve_endpoint(self.endpoint.as_deref(), emulator.as_deref())?;
        // Like Google's client libraries, talk to an emulator named in the
        // environment anonymously: a real token has no business there.
        let token = self.bearer_token.clone().or_else(|| {
            (origin != EndpointOrigin::EmulatorEnv)
                .then(|| std::env::var(GCS_TOKEN_ENV).ok())
                .flatten()
                .filter(|token| !token.trim().is_empty())
        });
        let mut http = self.http.clone();
        if let Some(token) = token {
            http.bearer_token(token.trim());
        }

        // With a tail, the first request is the media download of the
        // latest generation; else the metadata.
        let first_url = match tail {
            Some(_) => latest_media_url(&endpoint, &name),
            None => metadata_url(&endpoint, &name),
        };
        let mut source = http.prepare(&first_url, name.display())?;
        source.use_google_errors();
        let with_tail = match tail {
            Some(n) => open_with_tail(&mut source, &endpoint, &name, n)?,
            None => None,
        };
        let opened = match with_tail {
            Some(opened) => opened,
            None => {
                if tail.is_some() {
                    // The same source, so the tail's request counts among
                    // the open's.
                    source.retarget(&metadata_url(&endpoint, &name))?;
                }
                open_with_metadata(&mut source, &endpoint, &name)?
            }
        };
        log::debug!(
            "{}: {} bytes, generation {} at {endpoint}",
            name.display(),
            opened.size,
            opened.generation
        );
        Ok(GcsSource {
            http: source,
            location: name.display(),
            bucket: name.bucket,
            object: name.object,
            endpoint,
            generation: opened.generation,
            crc32c: opened.crc32c,
            md5_hash: opened.md5_hash,
            etag: opened.etag,
        })
    }
}
/// Asks for the metadata (the source points at its URL), then points the
/// source at the media URL of the generation it names.
fn open_with_metadata(
    source: &mut HttpSource,
    endpoint: &str,
    name: &ObjectName,
) -> Result<Opened> {
    let what = format!("metadata GET {}", redact_url(&metadata_url(endpoint, name)));
    let body = source.get_document(&what, METADATA_LIMIT)?;
    let meta =
        parse_metadata(&body).map_err(|detail| source.invalid(format!("{what}: {detail}")))?;
    if let Some(encoding) = &meta.content_encoding {
        if !is_identity_encoding(encoding) {
            return Err(stored_encoding_refused(name, encoding));
        }
    }
    source.open_at_version(
        &media_url(endpoint, name, meta.generation),
        meta.size,
        generation_pin(meta.generation),
    )?;
    Ok(Opened {
        size: meta.size,
        generation: meta.generation,
        crc32c: meta.crc32c,
        md5_hash: meta.md5_hash,
        etag: meta.etag,
    })
}

/// One media download of the last `n` bytes (the source points at the
/// media URL without a generation); on an answer that names its
/// generation, points the source at that generation's media URL, keeping
/// the bytes. `None` when the answer names no generation or says too
/// little: the caller asks for the metadata.
fn open_with_tail(
    source: &mut HttpSource,
    endpoint: &str,
    name: &ObjectName,
    n: u64,
) -> Result<Option<Opened>> {
    let see = |response: &Response<Body>| tail_headers(response, name);
    let Some((learned, seen)) = source.learn_tail(n, see)? else {
        return Ok(None);
    };
    let size = learned.len();
    source.open_at_version_with_tail(
        &media_url(endpoint, name, seen.generation),
        learned,
        generation_pin(seen.generation),
    )?;
    Ok(Some(Opened {
        size,
        generation: seen.generation,
        crc32c: seen.crc32c,
        md5_hash: seen.md5_hash,
        etag: None,
    }))
}

/// What the headers of a tail's media download say: an object stored
/// compressed is refused, as its metadata would have it; `None` without a
/// usable `x-goog-generation`, to ask for the metadata instead.
fn tail_headers(response: &Response<Body>, name: &ObjectName) -> Result<Option<TailHeaders>> {
    let headers = response.headers();
    let text = |header: &str| {
        headers
            .get_all(header)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .collect::<Vec<_>>()
    };
    if let Some(encoding) = text(STORED_ENCODING_HEADER)
        .into_iter()
        .find(|encoding| !is_identity_encoding(encoding))
    {
        return Err(stored_encoding_refused(name, encoding));
    }
    let generation = match text(GENERATION_HEADER).as_slice() {
        [value] => parse_u64(value.trim()),
        _ => None,
    };
    let Some(generation) = generation else {
        log::debug!(
            "{}: the tail's answer names no generation ({GENERATION_HEADER}); asking for the \
             metadata",
            name.display()
        );
        return Ok(None);
    };
    let (crc32c, md5_hash) = parse_hashes(&text(HASH_HEADER));
    Ok(Some(TailHeaders {
        generation,
        crc32c,
        md5_hash,
    }))
}

/// The `crc32c` and `md5` of `x-goog-hash` values (`crc32c=…,md5=…`, in
/// one header or several); the first of each counts.
fn parse_hashes(values: &[&str]) -> (Option<String>, Option<String>) {
    let (mut crc32c, mut md5) = (None, None);
    for pair in values.iter().flat_map(|value| value.split(',')) {
        let Some((key, value)) = pair.split_once('=') else {
            continue;
        };
        // The value is base64, itself ending in `=`: split at the first.
        let value = value.trim();
        if value.is_empty() {
            continue;
        }
        let slot = match key.trim() {
            "crc32c" => &mut crc32c,
            "md5" => &mut md5,
            _ => continue,
        };
        if slot.is_none() {
            *slot = Some(escape_control(value).into_owned());
        }
    }
    (crc32c, md5)
}

/// How reads are pinned to `generation`.
fn generation_pin(generation: u64) -> VersionInUrl {
    VersionInUrl {
        header: HeaderName::from_static(GENERATION_HEADER),
        value: generation.to_string(),
        name: "generation",
    }
}

/// The error for an object stored with a `Content-Encoding` (`gzip`, say).
fn stored_encoding_refused(name: &ObjectName, encoding: &str) -> Error {
    Error::RangeNotSupported {
        object: name.display(),
        detail: format!(
            "the object is stored with Content-Encoding `{}`: GCS decompresses it on \
             download and ignores byte ranges",
            escape_control(encoding.trim())
        ),
    }
}

impl fmt::Debug for GcsSourceBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GcsSourceBuilder")
            .field("endpoint", &self.endpoint)
            .field("tail", &self.tail)
            .field(
                "bearer_token",
                &self.bearer_token.as_ref().map(|_| "REDACTED"),
            )
            .field("http", &self.http)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::MAX_TAIL;

    #[test]
    fn debug_output_hides_the_token() {
        let mut builder = GcsSourceBuilder::new();
        builder.bearer_token("ya29.hunter2").endpoint("localhost:1");
        let shown = format!("{builder:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(
            shown.contains("REDACTED") && shown.contains("localhost:1"),
            "{shown}"
        );
    }

    #[test]
    fn hashes_come_from_one_header_or_several() {
        assert_eq!(
            parse_hashes(&["crc32c=n03x6A==,md5=Ojk9c3dhfxgoKVVHYwFbHQ=="]),
            (
                Some("n03x6A==".to_owned()),
                Some("Ojk9c3dhfxgoKVVHYwFbHQ==".to_owned())
            )
        );
        assert_eq!(
            parse_hashes(&["md5=AAAA", " crc32c = yZRlqg== "]),
            (Some("yZRlqg==".to_owned()), Some("AAAA".to_owned()))
        );
        assert_eq!(parse_hashes(&["crc32c=yZRlqg=="]).1, None);
        assert_eq!(parse_hashes(&[]), (None, None));
        assert_eq!(parse_hashes(&["sha1=x,crc32c=,garbage"]), (None, None));
    }

    #[test]
    fn a_tail_out_of_bounds_fails_before_any_request() {
        let mut builder = GcsSourceBuilder::new();
        builder.endpoint("127.0.0.1:1");
        for n in [0, MAX_TAIL + 1] {
            let err = builder.tail(n).open("gs://bucket/object").unwrap_err();
            assert!(
                matches!(
                    err,
                    Error::InvalidConfig {
                        setting: "tail",
                        ..
                    }
                ),
                "{n}: {err:?}"
            );
        }
    }

    #[test]
    fn bad_locations_fail_before_any_request() {
        // An endpoint nothing listens on: an attempt to connect would be an
        // `Io` error, not the location's.
        let mut builder = GcsSourceBuilder::new();
        builder.endpoint("127.0.0.1:1");
        for location in ["gs://", "gs:///obj", "gs://bucket", "gs://bucket/"] {
            let err = builder.open(location).unwrap_err();
            assert!(
                matches!(err, Error::InvalidLocation { .. }),
                "{location}: {err:?}"
            );
        }
    }
}
