//! Signing each S3 request, and reading S3's error codes: the hooks
//! [`HttpSource`](crate::HttpSource) calls for an [`S3Source`](super::S3Source).
//!
//! Every attempt — the `HEAD`, each ranged `GET`, each retry — gets a URL
//! presigned with SigV4 (by `rusty-s3`) at the moment it is sent, so a long
//! read never outlives its signature, and the method is part of what is
//! signed. The headers `HttpSource` adds (`Range`, `If-Match`,
//! `Accept-Encoding`, `User-Agent`) are not signed, which S3 allows.

use std::time::Duration;

use jiff::Timestamp;
use rusty_s3::{Bucket, Credentials, S3Action, UrlStyle};
use ureq::http::Method;
use url::Url;

use super::location::{Addressing, S3Location};
use crate::error::{Error, Result};
use crate::source::http::{percent_decode, RequestHooks};

/// How long each presigned URL is valid. A URL is used the moment it is
/// made, so this only has to cover the difference between the local clock
/// and S3's; fifteen minutes is what S3 itself tolerates as clock skew, and
/// what AWS's SDKs presign for by default.
const PRESIGN_EXPIRY: Duration = Duration::from_secs(15 * 60);

/// Signs the requests for one object.
pub(crate) struct Signer {
    bucket: Bucket,
    /// `None`: requests go unsigned (a public bucket).
    credentials: Option<Credentials>,
    location: S3Location,
}

impl Signer {
    /// A signer for `location` at `addressing`, checking that the key
    /// survives the trip into a URL.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] for an endpoint the bucket cannot be joined
    /// to; [`Error::InvalidLocation`] for a key that no URL can carry
    /// unchanged (`.` or `..` segments, which URLs resolve away).
    pub(crate) fn new(
        location: S3Location,
        addressing: &Addressing,
        credentials: Option<Credentials>,
    ) -> Result<Signer> {
        let style = if addressing.path_style {
            UrlStyle::Path
        } else {
            UrlStyle::VirtualHost
        };
        let bucket = Bucket::new(
            addressing.endpoint.clone(),
            style,
            location.bucket.clone(),
            addressing.region.clone(),
        )
        .map_err(|err| Error::InvalidConfig {
            setting: "endpoint",
            reason: format!(
                "bucket `{}` cannot be addressed at `{}`: {err:?}",
                location.bucket, addressing.endpoint
            ),
        })?;
        let signer = Signer {
            bucket,
            credentials,
            location,
        };
        signer.check_key_addressed()?;
        Ok(signer)
    }

    /// The URL for a `method` request signed at `time`.
    pub(crate) fn presign(&self, method: &Method, time: &Timestamp) -> Url {
        let credentials = self.credentials.as_ref();
        let key = self.location.key.as_str();
        if *method == Method::HEAD {
            self.bucket
                .head_object(credentials, key)
                .sign_with_time(PRESIGN_EXPIRY, time)
        } else {
            self.bucket
                .get_object(credentials, key)
                .sign_with_time(PRESIGN_EXPIRY, time)
        }
    }

    /// The URL must name this bucket's host and, decoded, its path plus
    /// the key exactly: URL joining would resolve `a/../b` to `b` and read
    /// another object.
    fn check_key_addressed(&self) -> Result<()> {
        let base = self.bucket.base_url();
        let url = self.presign(&Method::GET, &Timestamp::now());
        let expected = format!("{}{}", base.path(), self.location.key);
        let addressed = url.host_str() == base.host_str()
            && url.port() == base.port()
            && percent_decode(url.path()).is_ok_and(|path| path == expected);
        if addressed {
            Ok(())
        } else {
            Err(Error::InvalidLocation {
                location: self.location.display(),
                reason: "the key cannot be sent in a URL unchanged (it has `.` or `..` \
                         segments, or starts with `/` in a way the endpoint cannot carry)"
                    .to_owned(),
            })
        }
    }

    fn not_found(&self, detail: String) -> Error {
        Error::NotFound {
            object: self.location.display(),
            detail,
        }
    }
}

impl RequestHooks for Signer {
    fn url(&self, method: &Method) -> Result<String> {
        Ok(self.presign(method, &Timestamp::now()).into())
    }

    fn error_for(&self, status: u16, code: &str, message: &str) -> Option<Error> {
        let said = if message.is_empty() {
            code.to_owned()
        } else {
            format!("{code}: {message}")
        };
        let S3Location { bucket, key } = &self.location;
        match code {
            "NoSuchBucket" => {
                Some(self.not_found(format!("bucket `{bucket}` does not exist ({said})")))
            }
            "NoSuchKey" => Some(self.not_found(format!(
                "bucket `{bucket}` has no object with key `{key}` ({said})"
            ))),
            "AccessDenied"
            | "AllAccessDisabled"
            | "AccountProblem"
            | "InvalidAccessKeyId"
            | "SignatureDoesNotMatch"
            | "ExpiredToken"
            | "InvalidToken"
            | "TokenRefreshRequired" => {
                let hint = if self.credentials.is_none() {
                    " (the request was not signed: no credentials were set in the builder \
                     or in AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)"
                } else {
                    ""
                };
                Some(Error::PermissionDenied {
                    object: self.location.display(),
                    status,
                    detail: format!("{said}{hint}"),
                })
            }
            // S3 gave up waiting for the request: another attempt may do.
            "RequestTimeout" => Some(Error::TimedOut {
                object: self.location.display(),
                detail: said,
            }),
            "PermanentRedirect" | "AuthorizationHeaderMalformed" => Some(Error::HttpStatus {
                object: self.location.display(),
                status,
                detail: format!(
                    "{said} (bucket `{bucket}` may be in another region than `{}`: set the \
                     region in the builder or AWS_REGION)",
                    self.bucket.region()
                ),
            }),
            // SlowDown (503), InternalError (500), ServiceUnavailable (503)
            // are retried by their status; PreconditionFailed (412) is the
            // pin at work.
            _ => None,
        }
    }

    fn get_after_head_not_found(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::s3::location::addressing;

    const ACCESS_KEY: &str = "AKIAIOSFODNN7EXAMPLE";
    const SECRET_KEY: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";

    fn signer(bucket: &str, key: &str, endpoint: Option<&str>, credentials: bool) -> Signer {
        let location = S3Location {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
        };
        let addressing = addressing(bucket, endpoint, Some("us-east-1"), None).unwrap();
        let credentials = credentials.then(|| Credentials::new(ACCESS_KEY, SECRET_KEY));
        Signer::new(location, &addressing, credentials).unwrap()
    }

    #[test]
    fn a_get_is_presigned_as_in_the_published_sigv4_example() {
        // AWS's "Authenticating Requests: Using Query Parameters" example:
        // GET examplebucket/test.txt, 2013-05-24T00:00:00Z, valid 86400 s.
        let location = S3Location {
            bucket: "examplebucket".to_owned(),
            key: "test.txt".to_owned(),
        };
        let addressing = Addressing {
            endpoint: Url::parse("https://s3.amazonaws.com/").unwrap(),
            region: "us-east-1".to_owned(),
            path_style: false,
        };
        let signer = Signer::new(
            location,
            &addressing,
            Some(Credentials::new(ACCESS_KEY, SECRET_KEY)),
        )
        .unwrap();
        let time = Timestamp::from_second(1_369_353_600).unwrap();
        let url = signer
            .bucket
            .get_object(signer.credentials.as_ref(), "test.txt")
            .sign_with_time(Duration::from_secs(86_400), &time);
        assert_eq!(
            url.as_str(),
            "https://examplebucket.s3.amazonaws.com/test.txt?X-Amz-Algorithm=AWS4-HMAC-SHA256\
             &X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request\
             &X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host\
             &X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404"
        );
        // Our own presigning: the same request, with our expiry.
        let ours = signer.presign(&Method::GET, &time);
        assert!(ours.as_str().starts_with(
            "https://examplebucket.s3.amazonaws.com/test.txt?X-Amz-Algorithm=AWS4-HMAC-SHA256\
             &X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request\
             &X-Amz-Date=20130524T000000Z&X-Amz-Expires=900&X-Amz-SignedHeaders=host\
             &X-Amz-Signature="
        ));
    }

    #[test]
    fn head_and_get_are_signed_apart() {
        let signer = signer("bucket", "k", None, true);
        let time = Timestamp::from_second(1_369_353_600).unwrap();
        let signature = |url: Url| {
            url.query_pairs()
                .find(|(name, _)| name == "X-Amz-Signature")
                .map(|(_, value)| value.into_owned())
                .unwrap()
        };
        assert_ne!(
            signature(signer.presign(&Method::HEAD, &time)),
            signature(signer.presign(&Method::GET, &time))
        );
    }

    #[test]
    fn session_tokens_are_signed_into_the_url() {
        let location = S3Location {
            bucket: "bucket".to_owned(),
            key: "k".to_owned(),
        };
        let addressing = addressing("bucket", None, None, None).unwrap();
        let credentials = Credentials::new_with_token(ACCESS_KEY, SECRET_KEY, "the-token");
        let signer = Signer::new(location, &addressing, Some(credentials)).unwrap();
        let url = signer.presign(&Method::GET, &Timestamp::now());
        assert!(url
            .query_pairs()
            .any(|(n, v)| n == "X-Amz-Security-Token" && v == "the-token"));
    }

    #[test]
    fn anonymous_requests_are_plain_urls() {
        let signer = signer("bucket", "dir/k.bin", None, false);
        let url = signer.presign(&Method::GET, &Timestamp::now());
        assert_eq!(
            url.as_str(),
            "https://bucket.s3.us-east-1.amazonaws.com/dir/k.bin"
        );
    }

    #[test]
    fn awkward_keys_are_percent_encoded_and_slashes_kept() {
        let signer = signer(
            "b",
            "a b/c+d%e?f#g/ü.txt",
            Some("http://127.0.0.1:9000"),
            false,
        );
        let url = signer.presign(&Method::GET, &Timestamp::now());
        assert_eq!(
            url.as_str(),
            "http://127.0.0.1:9000/b/a%20b/c%2Bd%25e%3Ff%23g/%C3%BC.txt"
        );
    }

    #[test]
    fn keys_a_url_would_change_are_rejected() {
        let addressing = addressing("b", Some("http://127.0.0.1:9000"), None, None).unwrap();
        for key in ["a/../b", "./x", "a/.", "//host/x"] {
            let location = S3Location {
                bucket: "b".to_owned(),
                key: key.to_owned(),
            };
            match Signer::new(location, &addressing, None) {
                Err(Error::InvalidLocation { reason, .. }) => {
                    assert!(reason.contains("cannot be sent"), "{key}: {reason}");
                }
                Err(other) => panic!("{key}: {other:?}"),
                Ok(_) => panic!("{key}: accepted"),
            }
        }
    }

    #[test]
    fn s3_error_codes_become_clear_errors() {
        let signer = signer("bkt", "some/key", None, false);
        match signer.error_for(404, "NoSuchBucket", "The specified bucket does not exist") {
            Some(Error::NotFound { object, detail }) => {
                assert_eq!(object, "s3://bkt/some/key");
                assert!(
                    detail.starts_with("bucket `bkt` does not exist"),
                    "{detail}"
                );
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            signer.error_for(404, "NoSuchKey", ""),
            Some(Error::NotFound { .. })
        ));
        match signer.error_for(403, "AccessDenied", "Access Denied") {
            Some(Error::PermissionDenied { status, detail, .. }) => {
                assert_eq!(status, 403);
                assert!(detail.contains("not signed"), "{detail}");
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            signer.error_for(400, "ExpiredToken", ""),
            Some(Error::PermissionDenied { status: 400, .. })
        ));
        let timeout = signer.error_for(400, "RequestTimeout", "").unwrap();
        assert!(timeout.is_transient());
        assert!(signer.error_for(503, "SlowDown", "").is_none());
        assert!(signer.error_for(500, "InternalError", "").is_none());
    }
}
