//! [`S3Source`]: an object in S3 or an S3-compatible store (MinIO, R2,
//! Ceph…), named `s3://bucket/key`, read with SigV4-signed range requests.
//!
//! It is an [`HttpSource`] whose every request URL is presigned afresh:
//! the `HEAD` (or, where `HEAD` is refused or says "not found", a `GET` of
//! the first byte) learns the size and `ETag`, every ranged `GET` is pinned
//! with `If-Match`, and responses are checked and retried as for any HTTP
//! object. S3's XML error codes become clear errors.
//!
//! The pieces: `location` parses `s3://` and picks endpoint, region and
//! URL style; `signer` presigns each request and maps S3's error codes;
//! `builder` gathers settings and the environment.

use std::fmt;

use super::{FetchContext, HttpSource, PartSink, RangeSource};
use crate::error::Result;

mod builder;
mod location;
mod signer;

pub use builder::S3SourceBuilder;
pub use location::DEFAULT_REGION;

/// An object in S3 or an S3-compatible store, read with range requests
/// signed with AWS Signature Version 4.
///
/// - **Location**: `s3://bucket/key`, the key taken literally (no
///   percent-decoding: `%`, `+`, `?`, `#`, spaces and `/` are part of it)
///   and encoded for each request.
/// - **Credentials**: from the [builder](S3SourceBuilder::credentials), else
///   `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and `AWS_SESSION_TOKEN`;
///   with none, requests go unsigned (public buckets; or say so with
///   [`anonymous`](S3SourceBuilder::anonymous)). Credentials never appear in
///   messages or `Debug` output.
/// - **Where**: region from the builder, `AWS_REGION` or
///   `AWS_DEFAULT_REGION` (defaults to [`DEFAULT_REGION`]); endpoint from
///   the builder, `AWS_ENDPOINT_URL_S3` or `AWS_ENDPOINT_URL` (defaults to
///   AWS). AWS is addressed virtual-hosted style (`bucket.s3.REGION…`),
///   custom endpoints path style (`endpoint/bucket/key`); see
///   [`path_style`](S3SourceBuilder::path_style).
/// - **Consistency**: size and `ETag` come from `HeadObject` (or the first
///   ranged `GetObject`), and every later `GetObject` carries `If-Match`: an
///   object overwritten while it is read is [`Error::ObjectChanged`], never
///   a mix of two versions.
/// - **Errors**: `NoSuchKey` and `NoSuchBucket` → [`Error::NotFound`]
///   (naming the bucket or key), `AccessDenied` and other credential
///   errors → [`Error::PermissionDenied`]; `SlowDown`, `InternalError` and
///   other 5xx are retried as the [`RetryPolicy`](crate::RetryPolicy) says.
///
/// Credentials files (`~/.aws/credentials`), profiles and instance roles
/// are not read: pass such credentials through the builder.
///
/// [`Error::ObjectChanged`]: crate::Error::ObjectChanged
/// [`Error::NotFound`]: crate::Error::NotFound
/// [`Error::PermissionDenied`]: crate::Error::PermissionDenied
///
/// ```no_run
/// use prefetch_reader::{PrefetchReader, RangeSource, S3Source};
/// use std::io::Read;
///
/// let source = S3Source::open("s3://my-bucket/data/2024.parquet")?;
/// println!("{} bytes, ETag {:?}", source.len(), source.etag());
/// let mut reader = PrefetchReader::new(source)?;
/// let mut magic = [0; 4];
/// reader.read_exact(&mut magic)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct S3Source {
    http: HttpSource,
    bucket: String,
    key: String,
    region: String,
}

impl S3Source {
    /// Opens `s3://bucket/key` with settings from the environment.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidLocation`](crate::Error::InvalidLocation) for a
    /// location that is not `s3://bucket/key` with a bucket and a key;
    /// [`Error::InvalidConfig`](crate::Error::InvalidConfig) for unusable
    /// settings in the environment (an access key without its secret, a
    /// malformed endpoint); [`Error::NotFound`](crate::Error::NotFound),
    /// [`Error::PermissionDenied`](crate::Error::PermissionDenied) and the
    /// other errors of [`HttpSource::open`] from the store.
    ///
    /// ```no_run
    /// let source = prefetch_reader::S3Source::open("s3://my-bucket/a.zip")?;
    /// # Ok::<(), prefetch_reader::Error>(())
    /// ```
    pub fn open(location: &str) -> Result<S3Source> {
        S3SourceBuilder::new().open(location)
    }

    /// A builder to set credentials, region, endpoint, addressing style,
    /// timeouts, retries or an agent.
    ///
    /// ```no_run
    /// use prefetch_reader::S3Source;
    ///
    /// let source = S3Source::builder()
    ///     .endpoint("http://127.0.0.1:9000")
    ///     .region("us-east-1")
    ///     .credentials("minioadmin", "minioadmin")
    ///     .open("s3://my-bucket/data.bin")?;
    /// # Ok::<(), prefetch_reader::Error>(())
    /// ```
    pub fn builder() -> S3SourceBuilder {
        S3SourceBuilder::new()
    }

    /// The bucket.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// The key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The region requests are signed for.
    pub fn region(&self) -> &str {
        &self.region
    }

    /// The `ETag` seen at open, which every read is pinned to.
    pub fn etag(&self) -> Option<&str> {
        self.http.etag()
    }

    /// Whether reads are pinned to the version opened (the store sent an
    /// `ETag` or `Last-Modified`, as S3 always does).
    pub fn is_pinned(&self) -> bool {
        self.http.is_pinned()
    }
}

impl RangeSource for S3Source {
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

    /// The `HEAD` (or `GET` of the first byte), its retries and redirects.
    fn requests_at_open(&self) -> u64 {
        self.http.requests_at_open()
    }

    fn bytes_at_open(&self) -> u64 {
        self.http.bytes_at_open()
    }

    /// `s3://bucket/key`.
    fn location(&self) -> String {
        self.http.location()
    }

    fn validator(&self) -> Option<String> {
        self.http.validator()
    }
}

impl fmt::Debug for S3Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Source")
            .field("bucket", &self.bucket)
            .field("key", &self.key)
            .field("region", &self.region)
            .field("len", &self.http.len())
            .field("etag", &self.http.etag())
            .finish_non_exhaustive()
    }
}
