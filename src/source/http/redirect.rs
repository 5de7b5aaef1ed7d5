//! Following redirects ourselves, so that what the caller gave for one
//! origin stays with it.
//!
//! The policy: `301`, `302`, `303`, `307` and `308` with a `Location` are
//! followed, at most [`MAX_REDIRECTS`] in a chain, keeping the method and
//! the range. Origins are compared whole — scheme, host and port (default
//! ports made explicit) — and from the first hop to another origin on, the
//! caller's headers, credentials (bearer token, Basic auth from the URL)
//! and cookies are no longer sent; `User-Agent`, `Accept-Encoding`, the
//! range and the version precondition always are. A redirect from
//! `https` to `http` is refused, as is a `Location` that is not an
//! `http(s)` URL.

use url::Url;

/// Most redirects followed for one request: as browsers and curl's
/// `--max-redirs` default allow, far more than any real chain (a CDN, a
/// presigned store URL) needs.
pub(crate) const MAX_REDIRECTS: usize = 10;

/// Whether `status` is a redirect this source follows.
pub(crate) fn is_redirect(status: u16) -> bool {
    matches!(status, 301 | 302 | 303 | 307 | 308)
}

/// Scheme, host and port (the default one when the URL names none).
fn origin(url: &Url) -> (String, Option<String>, Option<u16>) {
    (
        url.scheme().to_owned(),
        url.host_str().map(str::to_ascii_lowercase),
        url.port_or_known_default(),
    )
}

/// Whether `a` and `b` are URLs of one origin; anything unparsable is no
/// origin at all.
pub(crate) fn same_origin(a: &str, b: &str) -> bool {
    match (Url::parse(a), Url::parse(b)) {
        (Ok(a), Ok(b)) => origin(&a) == origin(&b),
        _ => false,
    }
}

/// Where a redirect from `current` with `Location: location` leads (a
/// relative location resolved against `current`), or why it is not
/// followed.
pub(crate) fn next_url(current: &str, location: &str) -> Result<String, String> {
    let base = Url::parse(current).map_err(|err| format!("the URL followed is invalid: {err}"))?;
    let mut next = base
        .join(location.trim())
        .map_err(|err| format!("the redirect's Location is not a URL: {err}"))?;
    if !matches!(next.scheme(), "http" | "https") {
        return Err(format!(
            "a redirect to a `{}:` URL is not followed",
            next.scheme()
        ));
    }
    if base.scheme() == "https" && next.scheme() == "http" {
        return Err("a redirect from https to http is refused".to_owned());
    }
    if !next.username().is_empty() || next.password().is_some() {
        return Err("a redirect to a URL with credentials is refused".to_owned());
    }
    next.set_fragment(None);
    Ok(next.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_differ_by_scheme_host_or_port() {
        assert!(same_origin("http://h/a", "http://H:80/b?x"));
        assert!(same_origin("https://h/a", "https://h:443/b"));
        assert!(!same_origin("http://h/a", "http://h:8080/a"));
        assert!(!same_origin("http://h/a", "https://h/a"));
        assert!(!same_origin("http://h/a", "http://g/a"));
        assert!(!same_origin("not a url", "not a url"));
    }

    #[test]
    fn relative_locations_resolve_against_the_current_url() {
        assert_eq!(
            next_url("http://h:1/a/b?q", "../c").as_deref(),
            Ok("http://h:1/c")
        );
        assert_eq!(
            next_url("http://h:1/a", "/d#frag").as_deref(),
            Ok("http://h:1/d")
        );
        assert_eq!(
            next_url("http://h:1/a", "http://g:2/e").as_deref(),
            Ok("http://g:2/e")
        );
    }

    #[test]
    fn https_to_http_and_other_schemes_are_refused() {
        assert!(next_url("https://h/a", "http://h/a").is_err());
        assert!(next_url("https://h/a", "//g/a").is_ok(), "keeps https");
        assert!(next_url("http://h/a", "file:///etc/passwd").is_err());
        assert!(next_url("http://h/a", "ftp://h/a").is_err());
        assert!(next_url("http://h/a", "http://u:p@g/a").is_err());
    }

    #[test]
    fn only_the_redirect_statuses_are_followed() {
        for status in [301, 302, 303, 307, 308] {
            assert!(is_redirect(status));
        }
        for status in [200, 206, 300, 304, 305, 404] {
            assert!(!is_redirect(status));
        }
    }
}
