//! Names and URLs: a `gs://bucket/object` location checked and split, the
//! endpoint chosen (the caller's, `STORAGE_EMULATOR_HOST`, or the public
//! one), and the JSON API URLs built with the object name encoded whole.

use super::{DEFAULT_GCS_ENDPOINT, GCS_EMULATOR_HOST_ENV};
use crate::error::{Error, Result};
use crate::source::http::parse_http_url;

/// The longest object name GCS accepts, in bytes of UTF-8.
const MAX_OBJECT_NAME_BYTES: usize = 1024;

/// A bucket and an object name, as in `gs://bucket/object`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ObjectName {
    pub(crate) bucket: String,
    /// The name as GCS stores it: everything after the bucket's `/`, taken
    /// literally (`?`, `#`, `%` and further `/` are part of it).
    pub(crate) object: String,
}

impl ObjectName {
    /// `gs://bucket/object`, the form messages use.
    pub(crate) fn display(&self) -> String {
        format!("gs://{}/{}", self.bucket, self.object)
    }
}

/// Splits `gs://bucket/object` (the scheme in any case).
///
/// # Errors
///
/// [`Error::InvalidLocation`] naming what is wrong: another scheme, no
/// bucket, a bucket name GCS would refuse, no object name, or an object
/// name GCS would refuse.
pub(crate) fn parse_gs_location(location: &str) -> Result<ObjectName> {
    let invalid = |reason: String| Error::InvalidLocation {
        location: location.to_owned(),
        reason,
    };
    let rest = location
        .get(..5)
        .filter(|scheme| scheme.eq_ignore_ascii_case("gs://"))
        .map(|_| &location[5..])
        .ok_or_else(|| invalid("not a GCS location: expected `gs://bucket/object`".to_owned()))?;
    let (bucket, object) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() {
        return Err(invalid(
            "no bucket name: expected `gs://bucket/object`".to_owned(),
        ));
    }
    // GCS bucket names: lowercase letters, digits, `-`, `_` and `.`. Checking
    // them here also keeps anything odd out of the URL's authority and path.
    if let Some(bad) = bucket
        .chars()
        .find(|c| !matches!(c, 'a'..='z' | '0'..='9' | '-' | '_' | '.'))
    {
        return Err(invalid(format!(
            "bucket name `{bucket}` has `{bad}`: GCS bucket names use lowercase letters, \
             digits, `-`, `_` and `.`"
        )));
    }
    if object.is_empty() {
        return Err(invalid(format!(
            "no object name after the bucket: expected `gs://{bucket}/object`"
        )));
    }
    if object.len() > MAX_OBJECT_NAME_BYTES {
        return Err(invalid(format!(
            "the object name is {} bytes long; GCS allows at most {MAX_OBJECT_NAME_BYTES}",
            object.len()
        )));
    }
    if object.contains(['\r', '\n']) {
        return Err(invalid(
            "the object name has a line break, which GCS does not allow".to_owned(),
        ));
    }
    Ok(ObjectName {
        bucket: bucket.to_owned(),
        object: object.to_owned(),
    })
}

/// Percent-encodes every byte of `text` outside RFC 3986's unreserved set
/// (`A-Z a-z 0-9 - . _ ~`), so a name goes into one path segment whole:
/// `/` is `%2F`, `?` `%3F`, `#` `%23`, `%` `%25`, a space `%20`, `+` `%2B`,
/// and each byte of a non-ASCII character its own escape.
pub(crate) fn encode_segment(text: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(text.len());
    for &byte in text.as_bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(byte >> 4)]));
            out.push(char::from(HEX[usize::from(byte & 0xf)]));
        }
    }
    out
}

/// Where the endpoint came from: it decides whether the token in the
/// environment is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EndpointOrigin {
    /// Set on the builder.
    Builder,
    /// `STORAGE_EMULATOR_HOST`.
    EmulatorEnv,
    /// The public endpoint.
    Public,
}

/// The endpoint to use: the builder's, else `STORAGE_EMULATOR_HOST` (its
/// value given as `emulator_env`; empty counts as unset), else the public
/// one; normalized by [`normalize_endpoint`].
///
/// # Errors
///
/// [`Error::InvalidConfig`] naming the setting or variable whose value is
/// not an endpoint.
pub(crate) fn resolve_endpoint(
    builder: Option<&str>,
    emulator_env: Option<&str>,
) -> Result<(String, EndpointOrigin)> {
    if let Some(endpoint) = builder {
        return Ok((
            normalize_endpoint(endpoint, "endpoint")?,
            EndpointOrigin::Builder,
        ));
    }
    match emulator_env
        .map(str::trim)
        .filter(|value| !value.is_empty())
    {
        Some(host) => Ok((
            normalize_endpoint(host, GCS_EMULATOR_HOST_ENV)?,
            EndpointOrigin::EmulatorEnv,
        )),
        None => Ok((DEFAULT_GCS_ENDPOINT.to_owned(), EndpointOrigin::Public)),
    }
}

/// An endpoint as Google's client libraries read `STORAGE_EMULATOR_HOST`:
/// `host:port` means `http://host:port`; a value with a scheme is kept. A
/// trailing `/` is dropped; a path is kept as a prefix of the API paths.
///
/// # Errors
///
/// [`Error::InvalidConfig`] naming `setting` for a value that is not an
/// `http(s)://` URL with a host, or that has credentials, a query or a
/// fragment.
pub(crate) fn normalize_endpoint(value: &str, setting: &'static str) -> Result<String> {
    let invalid = |reason: String| Error::InvalidConfig { setting, reason };
    let value = value.trim();
    let with_scheme = if value.contains("://") {
        value.to_owned()
    } else {
        format!("http://{value}")
    };
    let endpoint = with_scheme.trim_end_matches('/').to_owned();
    if endpoint.contains(['?', '#']) {
        return Err(invalid(format!(
            "`{value}` is not an endpoint: it has a query or fragment"
        )));
    }
    let parsed = parse_http_url(&endpoint).map_err(|err| match err {
        Error::InvalidLocation { reason, .. } => invalid(format!("`{value}`: {reason}")),
        other => other,
    })?;
    if parsed.userinfo.is_some() {
        return Err(invalid(
            "credentials in the endpoint are not supported: use a bearer token".to_owned(),
        ));
    }
    Ok(endpoint)
}

/// The metadata URL of `name`: `{endpoint}/storage/v1/b/{bucket}/o/{object}`.
pub(crate) fn metadata_url(endpoint: &str, name: &ObjectName) -> String {
    format!(
        "{endpoint}/storage/v1/b/{}/o/{}",
        encode_segment(&name.bucket),
        encode_segment(&name.object)
    )
}

/// The media URL of one generation of `name`:
/// `{endpoint}/download/storage/v1/b/{bucket}/o/{object}?alt=media&generation=G`.
pub(crate) fn media_url(endpoint: &str, name: &ObjectName, generation: u64) -> String {
    format!(
        "{endpoint}/download/storage/v1/b/{}/o/{}?alt=media&generation={generation}",
        encode_segment(&name.bucket),
        encode_segment(&name.object)
    )
}

/// The media URL of the latest generation of `name`, for an open that
/// learns the generation from the download's answer:
/// `{endpoint}/download/storage/v1/b/{bucket}/o/{object}?alt=media`.
pub(crate) fn latest_media_url(endpoint: &str, name: &ObjectName) -> String {
    format!(
        "{endpoint}/download/storage/v1/b/{}/o/{}?alt=media",
        encode_segment(&name.bucket),
        encode_segment(&name.object)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(bucket: &str, object: &str) -> ObjectName {
        ObjectName {
            bucket: bucket.to_owned(),
            object: object.to_owned(),
        }
    }

    fn reason(location: &str) -> String {
        match parse_gs_location(location) {
            Err(Error::InvalidLocation { reason, .. }) => reason,
            other => panic!("{location}: {other:?}"),
        }
    }

    #[test]
    fn a_location_splits_at_the_first_slash_and_keeps_the_rest_literally() {
        assert_eq!(
            parse_gs_location("gs://bkt/a/b?c#d%20e").unwrap(),
            name("bkt", "a/b?c#d%20e")
        );
        assert_eq!(
            parse_gs_location("GS://my-bucket.v2/x").unwrap(),
            name("my-bucket.v2", "x")
        );
        assert_eq!(parse_gs_location("gs://b/dir/").unwrap(), name("b", "dir/"));
    }

    #[test]
    fn locations_without_a_bucket_or_object_are_rejected_saying_which() {
        assert!(reason("gs://").contains("no bucket name"));
        assert!(reason("gs:///obj").contains("no bucket name"));
        assert!(reason("gs://bucket").contains("no object name"));
        assert!(reason("gs://bucket/").contains("no object name"));
    }

    #[test]
    fn bad_bucket_and_object_names_are_rejected() {
        assert!(reason("gs://Bucket/x").contains("bucket name `Bucket` has `B`"));
        assert!(reason("gs://b@evil.com/x").contains("has `@`"));
        assert!(reason("gs://b/line\nbreak").contains("line break"));
        let long = format!("gs://b/{}", "x".repeat(1025));
        assert!(reason(&long).contains("1025 bytes"));
        assert!(reason("s3://b/x").contains("expected `gs://bucket/object`"));
    }

    #[test]
    fn names_are_encoded_whole_outside_the_unreserved_set() {
        assert_eq!(encode_segment("plain-Name_1.0~"), "plain-Name_1.0~");
        assert_eq!(encode_segment("a/b?c#d e+f%g"), "a%2Fb%3Fc%23d%20e%2Bf%25g");
        assert_eq!(encode_segment("é☃"), "%C3%A9%E2%98%83");
        assert_eq!(
            encode_segment("&=;:@!*'()[]"),
            "%26%3D%3B%3A%40%21%2A%27%28%29%5B%5D"
        );
    }

    #[test]
    fn urls_for_awkward_names_on_the_public_endpoint() {
        let n = name("bkt", "dir/file name+1%?#é");
        assert_eq!(
            metadata_url(DEFAULT_GCS_ENDPOINT, &n),
            "https://storage.googleapis.com/storage/v1/b/bkt/o/dir%2Ffile%20name%2B1%25%3F%23%C3%A9"
        );
        assert_eq!(
            media_url(DEFAULT_GCS_ENDPOINT, &n, 1_712_345_678_901_234),
            "https://storage.googleapis.com/download/storage/v1/b/bkt/o/\
             dir%2Ffile%20name%2B1%25%3F%23%C3%A9?alt=media&generation=1712345678901234"
        );
        assert_eq!(
            latest_media_url(DEFAULT_GCS_ENDPOINT, &n),
            "https://storage.googleapis.com/download/storage/v1/b/bkt/o/\
             dir%2Ffile%20name%2B1%25%3F%23%C3%A9?alt=media"
        );
    }

    #[test]
    fn urls_on_an_emulator_endpoint() {
        let (endpoint, origin) = resolve_endpoint(None, Some("127.0.0.1:9023")).unwrap();
        assert_eq!(origin, EndpointOrigin::EmulatorEnv);
        let n = name("b", "a/b");
        assert_eq!(
            metadata_url(&endpoint, &n),
            "http://127.0.0.1:9023/storage/v1/b/b/o/a%2Fb"
        );
        assert_eq!(
            media_url(&endpoint, &n, 7),
            "http://127.0.0.1:9023/download/storage/v1/b/b/o/a%2Fb?alt=media&generation=7"
        );
    }

    #[test]
    fn the_endpoint_is_the_builders_then_the_emulators_then_the_public_one() {
        assert_eq!(
            resolve_endpoint(Some("https://gcs.example.com/"), Some("localhost:1")).unwrap(),
            (
                "https://gcs.example.com".to_owned(),
                EndpointOrigin::Builder
            )
        );
        assert_eq!(
            resolve_endpoint(None, Some("http://localhost:4443/")).unwrap(),
            (
                "http://localhost:4443".to_owned(),
                EndpointOrigin::EmulatorEnv
            )
        );
        assert_eq!(
            resolve_endpoint(None, Some("localhost:4443")).unwrap(),
            (
                "http://localhost:4443".to_owned(),
                EndpointOrigin::EmulatorEnv
            )
        );
        for unset in [None, Some(""), Some("  ")] {
            assert_eq!(
                resolve_endpoint(None, unset).unwrap(),
                (DEFAULT_GCS_ENDPOINT.to_owned(), EndpointOrigin::Public)
            );
        }
        assert_eq!(
            normalize_endpoint("https://proxy.example.com/gcs", "endpoint").unwrap(),
            "https://proxy.example.com/gcs"
        );
    }

    #[test]
    fn bad_endpoints_are_invalid_settings_naming_their_source() {
        let setting =
            |builder: Option<&str>, env: Option<&str>| match resolve_endpoint(builder, env) {
                Err(Error::InvalidConfig { setting, reason }) => (setting, reason),
                other => panic!("{builder:?} {env:?}: {other:?}"),
            };
        assert_eq!(setting(None, Some("ftp://host")).0, GCS_EMULATOR_HOST_ENV);
        assert_eq!(setting(Some("http://"), None).0, "endpoint");
        assert!(setting(Some("http://h:1/?x=1"), None).1.contains("query"));
        assert!(setting(Some("http://u:pw@h"), None)
            .1
            .contains("credentials"));
        assert!(!setting(Some("http://u:pw@h"), None).1.contains("pw"));
    }
}
