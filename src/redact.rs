//! Locations as they appear in messages: userinfo and secret-looking query
//! values replaced, the fragment dropped. Every error and log line that
//! names a remote object goes through [`redact`], the crate's and the
//! command's alike.

use crate::source::http::percent_decode;

/// What replaces a secret.
const REDACTED: &str = "REDACTED";

/// Query parameter names whose values are secrets, matched whole:
/// signatures (`sig`, Azure's SAS; `signature`), tokens, session ids,
/// OAuth codes and API keys.
const SECRET_NAMES: &[&str] = &["token", "sig", "signature", "session", "code", "key"];

/// Parts of query parameter names whose values are secrets wherever they
/// appear in the name: `access_token`, `client_secret`,
/// `X-Amz-Signature`, `X-Amz-Credential`, `X-Amz-Security-Token`,
/// `X-Goog-Signature`, `X-Goog-Credential`, `password`. `X-Amz-Date`,
/// `X-Amz-Expires` and other names that merely describe a signature stay
/// visible.
const SECRET_NAME_PARTS: &[&str] = &["token", "secret", "signature", "credential", "password"];

/// Whether the value of the query parameter `name` may be a secret. The
/// name is compared lowercase after percent-decoding (`%74oken` is
/// `token`). Besides [`SECRET_NAMES`] and [`SECRET_NAME_PARTS`], names
/// ending in `_key` or `-key` and `apikey` (API keys: `api_key`,
/// `access_key`) are secrets too.
pub(crate) fn is_secret_param(name: &str) -> bool {
    let decoded = percent_decode(&name.replace('+', " ")).unwrap_or_else(|_| name.to_owned());
    let name = decoded.trim().to_ascii_lowercase();
    SECRET_NAMES.contains(&name.as_str())
        || SECRET_NAME_PARTS.iter().any(|part| name.contains(part))
        || name.ends_with("_key")
        || name.ends_with("-key")
        || name == "apikey"
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
    fn secret_parameters_are_redacted_whatever_their_case() {
        for name in [
            "token",
            "TOKEN",
            "sig",
            "signature",
            "Signature",
            "session",
            "code",
            "key",
            "Key",
            "access_token",
            "id_token",
            "client_secret",
            "X-Amz-Signature",
            "x-amz-signature",
            "X-Amz-Credential",
            "X-Amz-Security-Token",
            "X-Goog-Signature",
            "X-Goog-Credential",
            "password",
            "db_password",
            "api_key",
            "apikey",
            "access-key",
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
    fn percent_encoded_secret_names_are_redacted() {
        for name in [
            "%74oken",
            "%54OKEN",
            "X-Amz-%53ignature",
            "sig%6e%61ture",
            "x%2Damz%2Dcredential",
        ] {
            let redacted = redact_url(&format!("https://h/p?{name}=s3cr3t"));
            assert_eq!(redacted, format!("https://h/p?{name}=REDACTED"), "{name}");
        }
    }

    #[test]
    fn harmless_parameters_stay_visible() {
        let url = "https://h/p?X-Amz-Date=20240101T000000Z&X-Amz-Expires=900\
                   &X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-SignedHeaders=host\
                   &keyword=rust&author=me&version=3&monkey=1&alt=media&generation=7";
        assert_eq!(redact_url(url), url);
    }

    #[test]
    fn userinfo_without_a_password_is_redacted_too() {
        assert_eq!(
            redact_url("https://alice@example.com/f"),
            "https://REDACTED@example.com/f"
        );
    }

    #[test]
    fn a_parameter_without_a_value_is_left_alone() {
        assert_eq!(redact_url("https://h/p?token&x=1"), "https://h/p?token&x=1");
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
