//! [`S3SourceBuilder`]: the settings an [`S3Source`] is opened with, and
//! the standard `AWS_*` environment variables that fill the gaps.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use rusty_s3::Credentials;
use ureq::Agent;

use super::location::{addressing, parse_s3_location, Addressing};
use super::signer::Signer;
use super::S3Source;
use crate::error::{Error, Result};
use crate::source::{HttpSourceBuilder, RetryPolicy};

/// Settings for opening [`S3Source`]s; one builder opens many objects.
///
/// What the builder leaves unset is read from the environment when an
/// object is opened: `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
/// `AWS_SESSION_TOKEN`, `AWS_REGION` (else `AWS_DEFAULT_REGION`),
/// `AWS_ENDPOINT_URL_S3` (else `AWS_ENDPOINT_URL`). Empty variables count
/// as unset.
///
/// ```no_run
/// use prefetch_reader::{PrefetchReader, S3Source};
/// use std::time::Duration;
///
/// let mut builder = S3Source::builder();
/// builder.region("eu-west-1").read_timeout(Duration::from_secs(10));
/// for key in ["a.bin", "b.bin"] {
///     let source = builder.open(&format!("s3://my-bucket/{key}"))?;
///     let reader = PrefetchReader::new(source)?;
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Default)]
pub struct S3SourceBuilder {
    credentials: Option<(String, String)>,
    session_token: Option<String>,
    anonymous: bool,
    region: Option<String>,
    endpoint: Option<String>,
    path_style: Option<bool>,
    http: HttpSourceBuilder,
}

/// The settings an object is opened with, the environment consulted.
#[derive(Debug)]
struct Resolved {
    addressing: Addressing,
    /// `None`: unsigned requests.
    credentials: Option<Credentials>,
}

impl S3SourceBuilder {
    /// A builder with every default.
    pub fn new() -> S3SourceBuilder {
        S3SourceBuilder::default()
    }

    /// Signs requests with this access key, instead of
    /// `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY`. Never shown in
    /// messages or `Debug` output.
    pub fn credentials(
        &mut self,
        access_key_id: impl Into<String>,
        secret_access_key: impl Into<String>,
    ) -> &mut Self {
        self.credentials = Some((access_key_id.into(), secret_access_key.into()));
        self
    }

    /// The session token of temporary credentials set with
    /// [`credentials`](Self::credentials) (else `AWS_SESSION_TOKEN` goes
    /// with the environment's keys).
    pub fn session_token(&mut self, token: impl Into<String>) -> &mut Self {
        self.session_token = Some(token.into());
        self
    }

    /// Sends requests unsigned, whatever credentials are set or in the
    /// environment: for public buckets.
    pub fn anonymous(&mut self) -> &mut Self {
        self.anonymous = true;
        self
    }

    /// The region requests are signed for, instead of `AWS_REGION` or
    /// `AWS_DEFAULT_REGION`. Defaults to [`DEFAULT_REGION`](super::DEFAULT_REGION)
    /// (`us-east-1`).
    pub fn region(&mut self, region: impl Into<String>) -> &mut Self {
        self.region = Some(region.into());
        self
    }

    /// The endpoint of an S3-compatible store (`http://127.0.0.1:9000`,
    /// `https://ACCOUNT.r2.cloudflarestorage.com`), instead of
    /// `AWS_ENDPOINT_URL_S3` or `AWS_ENDPOINT_URL`. Defaults to AWS:
    /// `https://s3.REGION.amazonaws.com`. A path (`https://host/s3`) is
    /// kept as a prefix. Checked when an object is opened.
    pub fn endpoint(&mut self, endpoint: impl Into<String>) -> &mut Self {
        self.endpoint = Some(endpoint.into());
        self
    }

    /// Path-style (`ENDPOINT/bucket/key`) rather than virtual-hosted-style
    /// (`bucket.ENDPOINT/key`) URLs. Defaults to virtual-hosted style on
    /// AWS (path style for bucket names with `.` or capitals, which cannot
    /// be TLS host names there) and path style on a custom endpoint.
    pub fn path_style(&mut self, path_style: bool) -> &mut Self {
        self.path_style = Some(path_style);
        self
    }

    /// How long connecting may take; see
    /// [`HttpSourceBuilder::connect_timeout`].
    pub fn connect_timeout(&mut self, timeout: Duration) -> &mut Self {
        self.http.connect_timeout(timeout);
        self
    }

    /// How long a response may stall; see
    /// [`HttpSourceBuilder::read_timeout`].
    pub fn read_timeout(&mut self, timeout: Duration) -> &mut Self {
        self.http.read_timeout(timeout);
        self
    }

    /// How failures that may not last (`SlowDown`, `InternalError`, other
    /// 5xx, timeouts, broken bodies) are retried. Defaults to
    /// [`RetryPolicy::default`].
    pub fn retry_policy(&mut self, policy: RetryPolicy) -> &mut Self {
        self.http.retry_policy(policy);
        self
    }

    /// The `User-Agent` header; see [`HttpSourceBuilder::user_agent`].
    pub fn user_agent(&mut self, user_agent: impl Into<String>) -> &mut Self {
        self.http.user_agent(user_agent);
        self
    }

    /// Opens with one `GET` of the object's last `n` bytes, kept for reads
    /// of them; see [`HttpSourceBuilder::tail`].
    pub fn tail(&mut self, n: u64) -> &mut Self {
        self.http.tail(n);
        self
    }

    /// Sends requests through `agent`; see [`HttpSourceBuilder::agent`].
    pub fn agent(&mut self, agent: Agent) -> &mut Self {
        self.http.agent(agent);
        self
    }

    /// Opens `s3://bucket/key` with these settings, the environment filling
    /// the gaps.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] naming the setting or variable at fault
    /// (a session token without credentials, an access key without its
    /// secret, a malformed endpoint), and those of [`S3Source::open`].
    pub fn open(&self, location: &str) -> Result<S3Source> {
        let location = parse_s3_location(location)?;
        let resolved = self.resolve(&location.bucket, &|name| std::env::var(name).ok())?;
        let region = resolved.addressing.region.clone();
        let (bucket, key, display) = (
            location.bucket.clone(),
            location.key.clone(),
            location.display(),
        );
        let signer = Signer::new(location, &resolved.addressing, resolved.credentials)?;
        let http = self.http.open_with_hooks(display, Arc::new(signer))?;
        Ok(S3Source {
            http,
            bucket,
            key,
            region,
        })
    }

    /// Merges the builder's settings with the environment as `env` reads
    /// it.
    fn resolve(&self, bucket: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Resolved> {
        let var = |name: &str| env(name).filter(|value| !value.trim().is_empty());
        let credentials = if self.anonymous {
            None
        } else {
            match (&self.credentials, &self.session_token) {
                (Some((id, secret)), token) => Some(credentials(id, secret, token.clone())),
                (None, Some(_)) => {
                    return Err(Error::InvalidConfig {
                        setting: "session_token",
                        reason: "a session token needs the credentials it belongs to".to_owned(),
                    })
                }
                (None, None) => match (var("AWS_ACCESS_KEY_ID"), var("AWS_SECRET_ACCESS_KEY")) {
                    (Some(id), Some(secret)) => {
                        Some(credentials(&id, &secret, var("AWS_SESSION_TOKEN")))
                    }
                    (None, None) => {
                        log::debug!(
                            "no S3 credentials in the builder or the environment: \
                                 requests for bucket `{bucket}` go unsigned"
                        );
                        None
                    }
                    (Some(_), None) => return Err(half_set("AWS_SECRET_ACCESS_KEY")),
                    (None, Some(_)) => return Err(half_set("AWS_ACCESS_KEY_ID")),
                },
            }
        };
        let region = self
            .region
            .clone()
            .or_else(|| var("AWS_REGION"))
            .or_else(|| var("AWS_DEFAULT_REGION"));
        let endpoint = self
            .endpoint
            .clone()
            .or_else(|| var("AWS_ENDPOINT_URL_S3"))
            .or_else(|| var("AWS_ENDPOINT_URL"));
        let addressing = addressing(
            bucket,
            endpoint.as_deref(),
            region.as_deref(),
            self.path_style,
        )?;
        Ok(Resolved {
            addressing,
            credentials,
        })
    }
}

fn credentials(id: &str, secret: &str, token: Option<String>) -> Credentials {
    match token {
        Some(token) => Credentials::new_with_token(id, secret, token),
        None => Credentials::new(id, secret),
    }
}

/// One of the pair of key variables is set, `missing` is not.
fn half_set(missing: &'static str) -> Error {
    Error::InvalidConfig {
        setting: missing,
        reason: "unset, while the other half of the access key is set in the environment"
            .to_owned(),
    }
}

impl fmt::Debug for S3SourceBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3SourceBuilder")
            .field(
                "credentials",
                &self.credentials.as_ref().map(|_| "REDACTED"),
            )
            .field(
                "session_token",
                &self.session_token.as_ref().map(|_| "REDACTED"),
            )
            .field("anonymous", &self.anonymous)
            .field("region", &self.region)
            .field("endpoint", &self.endpoint)
            .field("path_style", &self.path_style)
            .field("http", &self.http)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |name| vars.get(name).cloned()
    }

    #[test]
    fn the_environment_gives_credentials_region_and_endpoint() {
        let resolved = S3SourceBuilder::new()
            .resolve(
                "b",
                &env(&[
                    ("AWS_ACCESS_KEY_ID", "AKID"),
                    ("AWS_SECRET_ACCESS_KEY", "SECRET"),
                    ("AWS_SESSION_TOKEN", "TOKEN"),
                    ("AWS_DEFAULT_REGION", "eu-central-1"),
                    ("AWS_ENDPOINT_URL", "http://localhost:9000"),
                ]),
            )
            .unwrap();
        let credentials = resolved.credentials.unwrap();
        assert_eq!(credentials.key(), "AKID");
        assert_eq!(credentials.token(), Some("TOKEN"));
        assert_eq!(resolved.addressing.region, "eu-central-1");
        assert_eq!(
            resolved.addressing.endpoint.as_str(),
            "http://localhost:9000/"
        );
        assert!(resolved.addressing.path_style);
    }

    #[test]
    fn the_more_specific_variables_win() {
        let resolved = S3SourceBuilder::new()
            .resolve(
                "b",
                &env(&[
                    ("AWS_REGION", "ap-south-1"),
                    ("AWS_DEFAULT_REGION", "eu-central-1"),
                    ("AWS_ENDPOINT_URL", "http://general:1"),
                    ("AWS_ENDPOINT_URL_S3", "http://s3-only:2"),
                ]),
            )
            .unwrap();
        assert_eq!(resolved.addressing.region, "ap-south-1");
        assert_eq!(resolved.addressing.endpoint.as_str(), "http://s3-only:2/");
        assert!(resolved.credentials.is_none());
    }

    #[test]
    fn the_builder_wins_over_the_environment() {
        let mut builder = S3SourceBuilder::new();
        builder
            .credentials("BUILDER", "S")
            .region("us-west-2")
            .endpoint("http://builder:3");
        let resolved = builder
            .resolve(
                "b",
                &env(&[
                    ("AWS_ACCESS_KEY_ID", "ENV"),
                    ("AWS_SECRET_ACCESS_KEY", "S"),
                    ("AWS_SESSION_TOKEN", "ENV-TOKEN"),
                    ("AWS_REGION", "ap-south-1"),
                    ("AWS_ENDPOINT_URL_S3", "http://env:2"),
                ]),
            )
            .unwrap();
        let credentials = resolved.credentials.unwrap();
        assert_eq!(credentials.key(), "BUILDER");
        // The environment's token belongs to the environment's key.
        assert_eq!(credentials.token(), None);
        assert_eq!(resolved.addressing.region, "us-west-2");
        assert_eq!(resolved.addressing.endpoint.as_str(), "http://builder:3/");
    }

    #[test]
    fn anonymous_ignores_every_credential() {
        let mut builder = S3SourceBuilder::new();
        builder.credentials("K", "S").anonymous();
        let resolved = builder
            .resolve("b", &env(&[("AWS_ACCESS_KEY_ID", "K")]))
            .unwrap();
        assert!(resolved.credentials.is_none());
    }

    #[test]
    fn half_an_access_key_is_an_invalid_setting_naming_the_missing_half() {
        for (set, missing) in [
            ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"),
            ("AWS_SECRET_ACCESS_KEY", "AWS_ACCESS_KEY_ID"),
        ] {
            match S3SourceBuilder::new().resolve("b", &env(&[(set, "hunter2")])) {
                Err(err @ Error::InvalidConfig { setting, .. }) => {
                    assert_eq!(setting, missing);
                    assert!(!err.to_string().contains("hunter2"), "{err}");
                }
                other => panic!("{other:?}"),
            }
        }
        let mut builder = S3SourceBuilder::new();
        builder.session_token("t");
        assert!(matches!(
            builder.resolve("b", &env(&[])),
            Err(Error::InvalidConfig {
                setting: "session_token",
                ..
            })
        ));
    }

    #[test]
    fn debug_output_hides_credentials() {
        let mut builder = S3SourceBuilder::new();
        builder
            .credentials("AKIDSHOWN", "hunter2")
            .session_token("tok3n");
        let debug = format!("{builder:?}");
        for secret in ["AKIDSHOWN", "hunter2", "tok3n"] {
            assert!(!debug.contains(secret), "{debug}");
        }
    }
}
