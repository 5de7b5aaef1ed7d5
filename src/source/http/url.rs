//! Checking an `http(s)://` URL before any request: scheme, host, and the
//! userinfo taken out of it (sent as Basic credentials, never in the URL).

use ureq::http::Uri;

use crate::error::{Error, Result};
use crate::redact::redact_url;

/// An HTTP(S) URL ready to request.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct HttpUrl {
    /// The URL without its userinfo or fragment.
    pub(crate) request_url: String,
    /// `user:password` from the URL, percent-decoded, if it had any.
    pub(crate) userinfo: Option<String>,
}

/// Checks `url` is an absolute `http://` or `https://` URL with a host.
///
/// # Errors
///
/// [`Error::InvalidLocation`] naming the (redacted) URL and what is wrong.
pub(crate) fn parse_http_url(url: &str) -> Result<HttpUrl> {
    let invalid = |reason: String| Error::InvalidLocation {
        location: redact_url(url),
        reason,
    };
    if let Some((_, rest)) = url.split_once("://") {
        if rest.is_empty() || rest.starts_with(['/', '?', '#']) {
            return Err(invalid("no host".to_owned()));
        }
    }
    let without_fragment = url.split('#').next().unwrap_or(url);
    let uri: Uri = without_fragment
        .parse()
        .map_err(|err| invalid(format!("malformed URL: {err}")))?;
    let scheme = uri
        .scheme_str()
        .ok_or_else(|| invalid("malformed URL: no scheme".to_owned()))?;
    if !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https") {
        return Err(invalid(format!(
            "not an HTTP URL: scheme `{scheme}` (expected http or https)"
        )));
    }
    let authority = uri
        .authority()
        .ok_or_else(|| invalid("no host".to_owned()))?;
    if authority.host().is_empty() {
        return Err(invalid("no host".to_owned()));
    }
    let (userinfo, host_port) = match authority.as_str().rsplit_once('@') {
        Some((userinfo, host_port)) => {
            (Some(percent_decode(userinfo).map_err(invalid)?), host_port)
        }
        None => (None, authority.as_str()),
    };
    // After an IPv6 literal's `]`, or after the host name, comes `:PORT`.
    let after_host = match host_port.rfind(']') {
        Some(i) => &host_port[i + 1..],
        None => host_port.find(':').map_or("", |i| &host_port[i..]),
    };
    if let Some(port) = after_host.strip_prefix(':') {
        if port.parse::<u16>().is_err() || !port.bytes().all(|b| b.is_ascii_digit()) {
            return Err(invalid(format!("malformed URL: invalid port `{port}`")));
        }
    }
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let path = if path.is_empty() { "/" } else { path };
    Ok(HttpUrl {
        request_url: format!("{}://{host_port}{path}", scheme.to_ascii_lowercase()),
        userinfo,
    })
}

/// Decodes `%XX` escapes; the result must be UTF-8.
///
/// # Errors
///
/// A reason naming the bad escape or the bad bytes.
pub(crate) fn percent_decode(text: &str) -> std::result::Result<String, String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| format!("bad percent escape at byte {i}"))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| "percent escapes do not decode to UTF-8".to_owned())
}

/// Standard base64 with padding (for `Authorization: Basic`).
pub(crate) fn base64(input: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason(url: &str) -> String {
        match parse_http_url(url) {
            Err(Error::InvalidLocation { reason, .. }) => reason,
            other => panic!("{url}: {other:?}"),
        }
    }

    #[test]
    fn a_plain_url_is_requested_as_is() {
        let url = parse_http_url("https://example.com:8443/a/b.bin?x=1").unwrap();
        assert_eq!(url.request_url, "https://example.com:8443/a/b.bin?x=1");
        assert_eq!(url.userinfo, None);
        assert_eq!(
            parse_http_url("http://example.com").unwrap().request_url,
            "http://example.com/"
        );
    }

    #[test]
    fn userinfo_is_taken_out_of_the_url() {
        let url = parse_http_url("http://me:p%40ss@example.com/f#frag").unwrap();
        assert_eq!(url.request_url, "http://example.com/f");
        assert_eq!(url.userinfo.as_deref(), Some("me:p@ss"));
    }

    #[test]
    fn urls_without_a_host_are_rejected() {
        for url in ["http:///path", "https://:80/x"] {
            let why = reason(url);
            assert!(
                why.contains("host") || why.contains("malformed"),
                "{url}: {why}"
            );
        }
    }

    #[test]
    fn malformed_urls_are_rejected_saying_so() {
        for url in [
            "http://exa mple.com/",
            "http://host:port/x",
            "http://host:99999/x",
            "http://[::1/x",
        ] {
            let why = reason(url);
            assert!(
                why.contains("malformed") || why.contains("host"),
                "{url}: {why}"
            );
        }
        assert!(reason("ftp://host/x").contains("scheme `ftp`"));
    }

    #[test]
    fn a_malformed_url_with_a_password_does_not_show_it() {
        let err = parse_http_url("http://me:hunter2@exa mple.com/").unwrap_err();
        assert!(!err.to_string().contains("hunter2"), "{err}");
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("a%20b%2Fc").unwrap(), "a b/c");
        assert!(percent_decode("a%2").is_err());
        assert!(percent_decode("%zz").is_err());
        assert!(percent_decode("%ff").is_err());
    }

    #[test]
    fn base64_matches_the_rfc_vectors() {
        let vectors = [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ];
        for (plain, encoded) in vectors {
            assert_eq!(base64(plain.as_bytes()), encoded);
        }
    }
}
