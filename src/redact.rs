//! Locations as they appear in messages: userinfo and secret-looking query
//! values replaced, the fragment dropped. Every error and log line that
//! names a remote object goes through [`redact`], the crate's and the
//! command's alike.

/// What replaces a secret.
const REDACTED: &str = "REDACTED";

/// Fragments of query parameter names (compared lowercase) whose values are
/// treated as secrets: presigned-URL signatures and credentials
/// (`X-Amz-Signature`, `X-Amz-Credential`, `X-Amz-Security-Token`,
/// `X-Goog-Signature`, `X-Goog-Credential`, `AWSAccessKeyId`, Azure's
/// `sig`), and the usual `token`, `access_token`, `key`, `api_key`,
/// `secret`, `password`. Matching a fragment anywhere in the name errs on
/// the side of hiding a harmless value rather than showing a secret.
const SECRET_NAME_PARTS: &[&str] = &[
    "sig",
    "token",
    "key",
    "secret",
    "passw",
    "credential",
    "auth",
];

/// Whether the value of the query parameter `name` may be a secret.
pub(crate) fn is_secret_param(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    SECRET_NAME_PARTS.iter().any(|part| name.contains(part))
}

/// `location` as it may be shown in a message or a log: a URL's userinfo
/// (user and password) and the values of query parameters that carry
/// secrets (tokens, signatures, credentials) replaced by `REDACTED`, its
/// fragment dropped. Anything that is not a URL (a local path) comes back
/// as it is.
///
/// ```
/// let shown = prefetch_reader::redact("https://alice:pw@example.com/f?token=T&v=2");
/// assert_eq!(shown, "https://REDACTED@example.com/f?token=REDACTED&v=2");
/// ```
pub fn redact(location: &str) -> String {
    redact_url(location)
}

/// `url` with its userinfo and secret query values replaced by `REDACTED`
/// and its fragment dropped; anything that is not a URL comes back as is
/// (apart from a query that looks like one).
///
/// The userinfo is taken to end at the last `@` before the first `/` after
/// `scheme://`, so a password holding `?`, `#` or `@` is still hidden.
pub(crate) fn redact_url(url: &str) -> String {
    let mut out = String::with_capacity(url.len());
    let tail = match url.find("://") {
        Some(i) => {
            let (scheme, rest) = url.split_at(i + 3);
            out.push_str(scheme);
            let authority_end = rest.find('/').unwrap_or(rest.len());
            match rest[..authority_end].rfind('@') {
                Some(at) => {
                    out.push_str(REDACTED);
                    &rest[at..]
                }
                None => rest,
            }
        }
        None => url,
    };
    let tail = tail.split('#').next().unwrap_or(tail);
    let (path, query) = match tail.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (tail, None),
    };
    out.push_str(path);
    if let Some(query) = query {
        out.push('?');
        for (i, pair) in query.split('&').enumerate() {
            if i > 0 {
                out.push('&');
            }
            match pair.split_once('=') {
                Some((name, _)) if is_secret_param(name) => {
                    out.push_str(name);
                    out.push('=');
                    out.push_str(REDACTED);
                }
                _ => out.push_str(pair),
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plain_url_is_unchanged() {
        let url = "https://example.com:8443/a/b.bin?version=3&x=y";
        assert_eq!(redact_url(url), url);
    }

    #[test]
    fn userinfo_is_redacted() {
        assert_eq!(
            redact_url("http://user:hunter2@example.com/file"),
            "http://REDACTED@example.com/file"
        );
        assert_eq!(
            redact_url("http://user:pa?ss#w@rd@example.com/f"),
            "http://REDACTED@example.com/f"
        );
    }

    #[test]
    fn presigned_signatures_and_tokens_are_redacted() {
        let url = "https://bucket.s3.amazonaws.com/k?X-Amz-Algorithm=AWS4-HMAC-SHA256\
                   &X-Amz-Credential=AKIA%2F2024&X-Amz-Date=20240101T000000Z\
                   &X-Amz-Expires=900&X-Amz-Security-Token=tok&X-Amz-Signature=abc123";
        let redacted = redact_url(url);
        assert_eq!(
            redacted,
            "https://bucket.s3.amazonaws.com/k?X-Amz-Algorithm=AWS4-HMAC-SHA256\
             &X-Amz-Credential=REDACTED&X-Amz-Date=20240101T000000Z\
             &X-Amz-Expires=900&X-Amz-Security-Token=REDACTED&X-Amz-Signature=REDACTED"
        );
        for secret in ["abc123", "AKIA", "=tok"] {
            assert!(!redacted.contains(secret), "{secret} in {redacted}");
        }
    }

    #[test]
    fn common_secret_parameters_are_redacted_whatever_their_case() {
        for name in [
            "sig",
            "signature",
            "token",
            "access_token",
            "key",
            "api_key",
            "X-Goog-Signature",
            "X-Goog-Credential",
            "AWSAccessKeyId",
            "Signature",
            "client_secret",
            "password",
        ] {
            let url = format!("https://h/p?a=1&{name}=s3cr3t&b=2");
            assert_eq!(
                redact_url(&url),
                format!("https://h/p?a=1&{name}=REDACTED&b=2"),
                "{name}"
            );
        }
    }

    #[test]
    fn a_query_without_a_path_is_still_redacted() {
        assert_eq!(
            redact_url("http://u:p@host?token=x"),
            "http://REDACTED@host?token=REDACTED"
        );
        assert_eq!(redact_url("http://host?sig=x"), "http://host?sig=REDACTED");
    }

    #[test]
    fn the_fragment_is_dropped() {
        assert_eq!(redact_url("http://h/p?a=1#token=x"), "http://h/p?a=1");
    }

    #[test]
    fn an_at_sign_in_the_path_is_not_userinfo() {
        assert_eq!(
            redact_url("http://h/users/a@b.com/f"),
            "http://h/users/a@b.com/f"
        );
    }
}
