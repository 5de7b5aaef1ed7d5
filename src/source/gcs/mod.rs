//! [`GcsSource`]: a Google Cloud Storage object, `gs://bucket/object`, read
//! through the JSON API.
//!
//! Opening asks for the object's metadata
//! (`GET /storage/v1/b/{bucket}/o/{object}`): its size and generation.
//! Reads are media downloads of that one generation
//! (`GET /download/storage/v1/b/{bucket}/o/{object}?alt=media&generation=G`
//! with `Range`), so a reader never mixes two versions of an object: once
//! the generation opened is gone (the object was replaced or deleted) GCS
//! answers 404, which is [`Error::ObjectChanged`](crate::Error::ObjectChanged),
//! and a response whose `x-goog-generation` names another generation is the
//! same error.
//!
//! With a tail ([`GcsSourceBuilder::tail`]) opening is instead one media
//! download of the latest generation's last bytes
//! (`…?alt=media` with `Range: bytes=-N`): its `Content-Range` gives the
//! size, its `x-goog-generation` the generation reads are then pinned to,
//! and its bytes are kept to serve reads inside them. An answer without
//! `x-goog-generation` is given up on for the metadata request.
//!
//! The HTTP side — connections, timeouts, retries, response checks, status
//! mapping — is [`HttpSource`]'s: a `GcsSource` is an `HttpSource` pointed
//! at the media URL, pinned by the generation in it.
//!
//! The pieces: `location` parses `gs://` names and builds URLs, `metadata`
//! reads the object resource, `builder` holds the settings and opens (by
//! either path).

use std::fmt;

use super::{FetchContext, HttpSource, PartSink, RangeSource};
use crate::error::Result;

mod builder;
mod location;
mod metadata;

pub use builder::GcsSourceBuilder;

/// The JSON API endpoint used unless the builder or
/// [`GCS_EMULATOR_HOST_ENV`] says otherwise.
pub const DEFAULT_GCS_ENDPOINT: &str = "https://storage.googleapis.com";

/// The environment variable naming a GCS emulator (`host:port`, or a URL
/// with a scheme), read as Google's client libraries read it: when it is
/// set (and the builder sets no endpoint), requests go there, and the
/// token from [`GCS_TOKEN_ENV`] is not sent.
pub const GCS_EMULATOR_HOST_ENV: &str = "STORAGE_EMULATOR_HOST";

/// The environment variable holding an OAuth 2.0 access token, sent as
/// `Authorization: Bearer …` when the builder sets no token (the variable
/// gcloud reads for the same purpose; `gcloud auth print-access-token`
/// prints one).
pub const GCS_TOKEN_ENV: &str = "GOOGLE_OAUTH_ACCESS_TOKEN";

/// A Google Cloud Storage object, read with ranged media downloads of the
/// generation seen at open.
///
/// - The endpoint is the builder's
///   ([`GcsSourceBuilder::endpoint`]), else the emulator named by
///   `STORAGE_EMULATOR_HOST` ([`GCS_EMULATOR_HOST_ENV`]; `host:port` means
///   `http://host:port`), else [`DEFAULT_GCS_ENDPOINT`].
/// - The credentials are a bearer token: the builder's
///   ([`GcsSourceBuilder::bearer_token`]), else `GOOGLE_OAUTH_ACCESS_TOKEN`
///   ([`GCS_TOKEN_ENV`]) unless the endpoint comes from
///   `STORAGE_EMULATOR_HOST`; without one, requests are anonymous (enough
///   for public objects). The token never appears in a message, a log line
///   or `Debug` output.
/// - The object name is percent-encoded whole in the URL: `/`, `?`, `#`,
///   `%`, `+`, spaces and non-ASCII characters are part of the name.
/// - Errors are [`HttpSource`]'s, with the message of GCS's JSON error body
///   in them: 404 at open is [`Error::NotFound`](crate::Error::NotFound),
///   401 and 403 are [`Error::PermissionDenied`](crate::Error::PermissionDenied);
///   429, 5xx, timeouts and broken bodies are retried as its
///   [`RetryPolicy`](crate::RetryPolicy) says. After open, 404 (the
///   generation is gone) is [`Error::ObjectChanged`](crate::Error::ObjectChanged).
/// - An object stored with a `Content-Encoding` (such as `gzip`) is refused
///   at open with [`Error::RangeNotSupported`](crate::Error::RangeNotSupported):
///   GCS decompresses it on download and ignores `Range`. (With a tail, the
///   download's `Content-Encoding` or `x-goog-stored-content-encoding` says
///   so.)
/// - With a [`tail`](GcsSourceBuilder::tail), opening is one media
///   download that brings the object's last bytes and names its
///   generation; reads inside those bytes send no request.
///
/// ```no_run
/// use prefetch_reader::{GcsSource, PrefetchReader, RangeSource};
/// use std::io::Read;
///
/// let source = GcsSource::open("gs://my-bucket/logs/2024-01-01.csv")?;
/// println!("{} bytes, generation {}", source.len(), source.generation());
/// let mut reader = PrefetchReader::new(source)?;
/// let mut text = String::new();
/// reader.read_to_string(&mut text)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct GcsSource {
    http: HttpSource,
    bucket: String,
    object: String,
    /// `gs://bucket/object`.
    location: String,
    endpoint: String,
    generation: u64,
    crc32c: Option<String>,
    md5_hash: Option<String>,
    etag: Option<String>,
}

impl GcsSource {
    /// Opens `gs://bucket/object` with every default setting.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidLocation`](crate::Error::InvalidLocation) for a
    /// location without a bucket or object name (naming which);
    /// [`Error::InvalidConfig`](crate::Error::InvalidConfig) for a
    /// `STORAGE_EMULATOR_HOST` that is not an endpoint; from the server,
    /// [`Error::NotFound`](crate::Error::NotFound),
    /// [`Error::PermissionDenied`](crate::Error::PermissionDenied),
    /// [`Error::TimedOut`](crate::Error::TimedOut),
    /// [`Error::HttpStatus`](crate::Error::HttpStatus),
    /// [`Error::InvalidResponse`](crate::Error::InvalidResponse) (metadata
    /// without a size, say), [`Error::RangeNotSupported`](crate::Error::RangeNotSupported)
    /// (a compressed object) or [`Error::Io`](crate::Error::Io).
    ///
    /// ```no_run
    /// let source = prefetch_reader::GcsSource::open("gs://my-bucket/data.zip")?;
    /// # Ok::<(), prefetch_reader::Error>(())
    /// ```
    pub fn open(location: &str) -> Result<GcsSource> {
        GcsSourceBuilder::new().open(location)
    }

    /// A builder to set the endpoint, a token, timeouts, retries or an
    /// agent.
    ///
    /// ```no_run
    /// use prefetch_reader::{GcsSource, RetryPolicy};
    /// use std::time::Duration;
    ///
    /// let source = GcsSource::builder()
    ///     .endpoint("http://localhost:9023")
    ///     .bearer_token("ya29.secret")
    ///     .read_timeout(Duration::from_secs(10))
    ///     .retry_policy(RetryPolicy::never())
    ///     .open("gs://my-bucket/data.bin")?;
    /// # Ok::<(), prefetch_reader::Error>(())
    /// ```
    pub fn builder() -> GcsSourceBuilder {
        GcsSourceBuilder::new()
    }

    /// The bucket's name.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// The object's name, as GCS stores it (not encoded).
    pub fn object(&self) -> &str {
        &self.object
    }

    /// The endpoint requests go to, such as [`DEFAULT_GCS_ENDPOINT`].
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The generation opened (the metadata's, or the one the tail's
    /// download named): every read is of this version.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The object's CRC32C (base64 of the big-endian checksum, as GCS
    /// gives it), if the metadata had one; after an open with a
    /// [`tail`](GcsSourceBuilder::tail), if the download's `x-goog-hash`
    /// header had one.
    pub fn crc32c(&self) -> Option<&str> {
        self.crc32c.as_deref()
    }

    /// The object's MD5 (base64, as GCS gives it), if the metadata had one
    /// (composite objects have none); after an open with a
    /// [`tail`](GcsSourceBuilder::tail), if the download's `x-goog-hash`
    /// header had one.
    pub fn md5_hash(&self) -> Option<&str> {
        self.md5_hash.as_deref()
    }

    /// The metadata's etag, if any. It changes when metadata does, not
    /// only content; reads are pinned by [`generation`](Self::generation).
    /// `None` after an open with a [`tail`](GcsSourceBuilder::tail), which
    /// asks for no metadata.
    pub fn etag(&self) -> Option<&str> {
        self.etag.as_deref()
    }
}

impl RangeSource for GcsSource {
    fn len(&self) -> u64 {
        self.http.len()
    }

    fn read_at(&self, offset: u64, buf: &mut [u8], ctx: &FetchContext) -> Result<()> {
        self.http.read_at(offset, buf, ctx)
    }

    fn read_streaming(
        &self,
        offset: u64,
        sink: &mut PartSink<'_>,
        ctx: &FetchContext,
    ) -> Result<()> {
        self.http.read_streaming(offset, sink, ctx)
    }

    fn set_concurrency(&self, concurrency: usize) {
        self.http.set_concurrency(concurrency);
    }

    /// The metadata `GET` (or, with a tail, the tail's media download, and
    /// the metadata `GET` after it when its answer named no generation),
    /// their retries and redirects.
    fn requests_at_open(&self) -> u64 {
        self.http.requests_at_open()
    }

    fn bytes_at_open(&self) -> u64 {
        self.http.bytes_at_open()
    }

    fn location(&self) -> String {
        self.location.clone()
    }

    /// `generation=G`: the generation read.
    fn validator(&self) -> Option<String> {
        Some(format!("generation={}", self.generation))
    }
}

impl fmt::Debug for GcsSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GcsSource")
            .field("location", &self.location)
            .field("endpoint", &self.endpoint)
            .field("len", &self.http.len())
            .field("generation", &self.generation)
            .finish_non_exhaustive()
    }
}
