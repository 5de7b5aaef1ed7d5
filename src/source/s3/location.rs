//! `s3://bucket/key` locations, and where a bucket is addressed: which
//! endpoint, region and URL style.

use url::Url;

use crate::error::{Error, Result};
use crate::source::http::redact_url;

/// The region used when neither the builder nor the environment names one:
/// S3's original region, where a request for any bucket is at least
/// answered (with a redirect hint when the bucket lives elsewhere).
pub const DEFAULT_REGION: &str = "us-east-1";

/// A bucket and a key, from `s3://bucket/key`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct S3Location {
    pub(crate) bucket: String,
    /// The key exactly as written: `s3://` locations are not
    /// percent-encoded, so `%`, `+`, `?` and `#` are part of the key.
    pub(crate) key: String,
}

impl S3Location {
    /// The location as messages name it.
    pub(crate) fn display(&self) -> String {
        format!("s3://{}/{}", self.bucket, self.key)
    }
}

/// Parses `s3://bucket/key` (the scheme in any case). Everything after the
/// first `/` after the bucket is the key, taken literally.
///
/// # Errors
///
/// [`Error::InvalidLocation`] for another scheme, no bucket, a bucket name
/// no S3 store accepts, or no key.
pub(crate) fn parse_s3_location(location: &str) -> Result<S3Location> {
    let invalid = |reason: &str| Error::InvalidLocation {
        location: location.to_owned(),
        reason: reason.to_owned(),
    };
    let rest = location
        .get(..5)
        .filter(|scheme| scheme.eq_ignore_ascii_case("s3://"))
        .map(|_| &location[5..])
        .ok_or_else(|| invalid("not an S3 location: expected `s3://bucket/key`"))?;
    let (bucket, key) = match rest.split_once('/') {
        Some((bucket, key)) => (bucket, key),
        None => (rest, ""),
    };
    if bucket.is_empty() {
        return Err(invalid("no bucket: expected `s3://bucket/key`"));
    }
    check_bucket_name(bucket).map_err(|reason| invalid(&reason))?;
    if key.is_empty() {
        return Err(invalid(
            "no key: expected `s3://bucket/key` (a bucket is not an object)",
        ));
    }
    Ok(S3Location {
        bucket: bucket.to_owned(),
        key: key.to_owned(),
    })
}

/// Bucket names are letters, digits, `.`, `-` and `_` (the last and
/// capitals only in old buckets and other stores): anything else cannot be
/// a host name label or a single path segment.
fn check_bucket_name(bucket: &str) -> std::result::Result<(), String> {
    match bucket
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_')))
    {
        Some(c) => Err(format!(
            "bucket name `{bucket}` has `{c}`: bucket names are letters, digits, `.`, `-` and `_`"
        )),
        None => Ok(()),
    }
}

/// Where requests for a bucket go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Addressing {
    /// The endpoint, its path ending in `/`.
    pub(crate) endpoint: Url,
    pub(crate) region: String,
    /// Path style (`https://endpoint/bucket/key`) rather than virtual-hosted
    /// style (`https://bucket.endpoint/key`).
    pub(crate) path_style: bool,
}

/// Picks endpoint, region and style. `endpoint` and `region` are the
/// builder's settings, already merged with the environment; `path_style`
/// the builder's choice, if any.
///
/// - No endpoint: AWS, `https://s3.REGION.amazonaws.com`, virtual-hosted
///   style — except for bucket names with `.` (a host name that the
///   `*.s3.…` TLS certificate does not cover) or that are not valid host
///   labels, which AWS serves in path style.
/// - A custom endpoint (MinIO, R2, Ceph, a local server): path style,
///   which works without wildcard DNS.
///
/// # Errors
///
/// [`Error::InvalidConfig`] naming `endpoint` for one that is not an
/// `http(s)://` URL with a host, or that has a query.
pub(crate) fn addressing(
    bucket: &str,
    endpoint: Option<&str>,
    region: Option<&str>,
    path_style: Option<bool>,
) -> Result<Addressing> {
    let region = region
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .unwrap_or(DEFAULT_REGION)
        .to_owned();
    let (endpoint, default_style) = match endpoint.map(str::trim).filter(|e| !e.is_empty()) {
        Some(endpoint) => (parse_endpoint(endpoint)?, true),
        None => {
            let aws = format!("https://s3.{region}.amazonaws.com/");
            let endpoint = Url::parse(&aws).map_err(|_| Error::InvalidConfig {
                setting: "region",
                reason: format!("`{region}` cannot be part of a host name"),
            })?;
            (endpoint, !is_virtual_host_label(bucket))
        }
    };
    Ok(Addressing {
        endpoint,
        region,
        path_style: path_style.unwrap_or(default_style),
    })
}

fn parse_endpoint(endpoint: &str) -> Result<Url> {
    let shown = redact_url(endpoint);
    let invalid = |reason: String| Error::InvalidConfig {
        setting: "endpoint",
        reason,
    };
    let mut url =
        Url::parse(endpoint).map_err(|err| invalid(format!("`{shown}` is not a URL: {err}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(invalid(format!(
            "`{shown}`: the scheme must be http or https"
        )));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(invalid(format!("`{shown}` has no host")));
    }
    if url.query().is_some() || !url.username().is_empty() || url.password().is_some() {
        return Err(invalid(format!(
            "`{shown}` may not have a query or credentials"
        )));
    }
    // Bucket and key are joined onto the path: it must end in `/` for a
    // path prefix (`http://host/s3/`) to be kept.
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    url.set_fragment(None);
    Ok(url)
}

/// Whether `bucket` can be the first label of a host name under a TLS
/// wildcard certificate: lowercase letters, digits and inner `-`, no `.`.
fn is_virtual_host_label(bucket: &str) -> bool {
    (3..=63).contains(&bucket.len())
        && bucket
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !bucket.starts_with('-')
        && !bucket.ends_with('-')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason(location: &str) -> String {
        match parse_s3_location(location) {
            Err(Error::InvalidLocation { reason, .. }) => reason,
            other => panic!("{location}: {other:?}"),
        }
    }

    #[test]
    fn bucket_and_key_are_split_at_the_first_slash() {
        let loc = parse_s3_location("s3://my-bucket/a/b/c.bin").unwrap();
        assert_eq!(loc.bucket, "my-bucket");
        assert_eq!(loc.key, "a/b/c.bin");
        assert_eq!(loc.display(), "s3://my-bucket/a/b/c.bin");
        assert_eq!(parse_s3_location("S3://b/k").unwrap().key, "k");
    }

    #[test]
    fn the_key_is_taken_literally() {
        for key in [
            "with space.txt",
            "plus+sign",
            "100%25 not decoded",
            "what?.txt",
            "hash#tag",
            "dir//double",
            "ünïcødé/日本.bin",
            "/leading-slash",
        ] {
            let loc = parse_s3_location(&format!("s3://bucket/{key}")).unwrap();
            assert_eq!(loc.key, key);
        }
    }

    #[test]
    fn a_location_without_a_bucket_is_rejected() {
        for location in ["s3://", "s3:///key", "s3:///"] {
            assert!(reason(location).starts_with("no bucket"), "{location}");
        }
    }

    #[test]
    fn a_location_without_a_key_is_rejected() {
        for location in ["s3://bucket", "s3://bucket/"] {
            assert!(reason(location).starts_with("no key"), "{location}");
        }
    }

    #[test]
    fn bucket_names_that_cannot_be_addressed_are_rejected() {
        for location in [
            "s3://bu?cket/k",
            "s3://bu#k/x",
            "s3://user@host/k",
            "s3://b:1/k",
        ] {
            assert!(reason(location).contains("bucket name"), "{location}");
        }
        assert!(reason("gs://bucket/key").contains("not an S3 location"));
    }

    #[test]
    fn aws_buckets_are_virtual_hosted_in_their_region() {
        let a = addressing("my-bucket", None, Some("eu-west-1"), None).unwrap();
        assert_eq!(a.endpoint.as_str(), "https://s3.eu-west-1.amazonaws.com/");
        assert_eq!(a.region, "eu-west-1");
        assert!(!a.path_style);
        let a = addressing("my-bucket", None, None, None).unwrap();
        assert_eq!(a.region, DEFAULT_REGION);
        assert_eq!(a.endpoint.as_str(), "https://s3.us-east-1.amazonaws.com/");
    }

    #[test]
    fn aws_buckets_with_dots_or_capitals_use_path_style() {
        for bucket in ["my.bucket", "Legacy_Bucket", "ab"] {
            assert!(
                addressing(bucket, None, None, None).unwrap().path_style,
                "{bucket}"
            );
        }
        let forced = addressing("my.bucket", None, None, Some(false)).unwrap();
        assert!(!forced.path_style);
    }

    #[test]
    fn custom_endpoints_use_path_style_unless_told_otherwise() {
        let a = addressing("b", Some("http://127.0.0.1:9000"), Some("auto"), None).unwrap();
        assert_eq!(a.endpoint.as_str(), "http://127.0.0.1:9000/");
        assert!(a.path_style);
        assert_eq!(a.region, "auto");
        let a = addressing("b", Some("https://minio.example/s3"), None, Some(false)).unwrap();
        assert_eq!(a.endpoint.as_str(), "https://minio.example/s3/");
        assert!(!a.path_style);
    }

    #[test]
    fn bad_endpoints_are_invalid_settings() {
        for endpoint in [
            "minio:9000",
            "ftp://host/",
            "http://",
            "http://h/?x=1",
            "http://user:secret@h/",
        ] {
            match addressing("b", Some(endpoint), None, None) {
                Err(Error::InvalidConfig { setting, reason }) => {
                    assert_eq!(setting, "endpoint", "{endpoint}");
                    assert!(!reason.contains("secret"), "{reason}");
                }
                other => panic!("{endpoint}: {other:?}"),
            }
        }
    }
}
