//! [`GcsSourceBuilder`]: the settings a [`GcsSource`] is opened with, and
//! opening: metadata first, then an [`HttpSource`] on the media URL of the
//! generation found.

use std::fmt;
use std::time::Duration;

use ureq::http::HeaderName;
use ureq::Agent;

use super::location::{
    media_url, metadata_url, parse_gs_location, resolve_endpoint, EndpointOrigin,
};
use super::metadata::parse_metadata;
use super::{GcsSource, GCS_EMULATOR_HOST_ENV, GCS_TOKEN_ENV};
use crate::error::{Error, Result};
use crate::source::http::{redact_url, VersionInUrl};
use crate::source::{HttpSourceBuilder, RetryPolicy};

/// The largest metadata response read. An object resource is a few KiB at
/// most (custom metadata is capped at 8 KiB); anything far larger is not
/// one.
const METADATA_LIMIT: u64 = 1 << 20;

/// The response header naming the generation a media download serves.
const GENERATION_HEADER: &str = "x-goog-generation";

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

    /// Opens `gs://bucket/object` with these settings.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] for an endpoint (the builder's or
    /// `STORAGE_EMULATOR_HOST`), header or token that cannot be used, and
    /// those of [`GcsSource::open`].
    pub fn open(&self, location: &str) -> Result<GcsSource> {
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

        let url = metadata_url(&endpoint, &name);
        let mut source = http.prepare(&url, name.display())?;
        source.use_google_errors();
        let what = format!("metadata GET {}", redact_url(&url));
        let body = source.get_document(&what, METADATA_LIMIT)?;
        let meta =
            parse_metadata(&body).map_err(|detail| source.invalid(format!("{what}: {detail}")))?;
        if let Some(encoding) = &meta.content_encoding {
            if !encoding.trim().eq_ignore_ascii_case("identity") {
                return Err(Error::RangeNotSupported {
                    object: name.display(),
                    detail: format!(
                        "the object is stored with Content-Encoding `{encoding}`: GCS \
                         decompresses it on download and ignores byte ranges"
                    ),
                });
            }
        }
        source.open_at_version(
            &media_url(&endpoint, &name, meta.generation),
            meta.size,
            VersionInUrl {
                header: HeaderName::from_static(GENERATION_HEADER),
                value: meta.generation.to_string(),
                name: "generation",
            },
        )?;
        log::debug!(
            "{}: {} bytes, generation {} at {endpoint}",
            name.display(),
            meta.size,
            meta.generation
        );
        Ok(GcsSource {
            http: source,
            location: name.display(),
            bucket: name.bucket,
            object: name.object,
            endpoint,
            generation: meta.generation,
            crc32c: meta.crc32c,
            md5_hash: meta.md5_hash,
            etag: meta.etag,
        })
    }
}

impl fmt::Debug for GcsSourceBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GcsSourceBuilder")
            .field("endpoint", &self.endpoint)
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
