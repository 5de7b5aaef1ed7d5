//! Reading what a server said: `Content-Range`, validators (`ETag`,
//! `Last-Modified`) and the length, each parsed strictly so a response that
//! does not match the request is caught before a byte of it is used.

use crate::escape::escape_control;

/// A parsed `Content-Range` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ContentRange {
    /// `bytes START-END/TOTAL` (END inclusive; TOTAL `*` when unknown).
    Bytes {
        start: u64,
        end: u64,
        total: Option<u64>,
    },
    /// `bytes */TOTAL`, sent with 416 Range Not Satisfiable.
    Unsatisfied { total: u64 },
}

/// Parses a `Content-Range` value; `None` unless it is a well-formed byte
/// range (`START <= END`). Whether it fits the request and the object is
/// for the caller to check, so that a wrong total reads as a changed
/// object rather than as gibberish.
pub(crate) fn parse_content_range(value: &str) -> Option<ContentRange> {
    let value = value.trim();
    let unit = value.get(..5)?;
    if !unit.eq_ignore_ascii_case("bytes") {
        return None;
    }
    let rest = value[5..].trim_start();
    let (range, total) = rest.split_once('/')?;
    let total = match total.trim() {
        "*" => None,
        digits => Some(parse_u64(digits)?),
    };
    if range.trim() == "*" {
        return Some(ContentRange::Unsatisfied { total: total? });
    }
    let (start, end) = range.split_once('-')?;
    let (start, end) = (parse_u64(start.trim())?, parse_u64(end.trim())?);
    if start > end {
        return None;
    }
    Some(ContentRange::Bytes { start, end, total })
}

/// A decimal number of digits only (no sign, no blanks inside).
pub(crate) fn parse_u64(digits: &str) -> Option<u64> {
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Whether an entity tag is weak (`W/"…"`): such a tag may not be used with
/// `If-Match`, which demands strong comparison.
pub(crate) fn is_weak_etag(etag: &str) -> bool {
    etag.starts_with("W/")
}

/// RFC 9110's weak comparison: two tags match when their opaque parts do,
/// weak or not. Used to tell whether a response comes from the version
/// opened (a proxy may weaken a tag without the object changing).
pub(crate) fn etags_match(a: &str, b: &str) -> bool {
    let opaque = |tag: &str| tag.strip_prefix("W/").unwrap_or(tag).trim().to_owned();
    opaque(a) == opaque(b)
}

/// Whether a `Content-Encoding` value means the body is the object's bytes
/// as they are.
pub(crate) fn is_identity_encoding(value: &str) -> bool {
    value
        .split(',')
        .map(str::trim)
        .all(|coding| coding.is_empty() || coding.eq_ignore_ascii_case("identity"))
}

/// A short, one-line excerpt of an error body for messages (S3, GCS and
/// most APIs explain themselves there).
pub(crate) fn excerpt(body: &[u8]) -> String {
    /// Characters of a server's error message kept in ours.
    const MAX_CHARS: usize = 200;
    let text = String::from_utf8_lossy(body);
    let out: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut out = escape_control(&out).into_owned();
    if out.chars().count() > MAX_CHARS {
        out = out.chars().take(MAX_CHARS).collect();
        out.push('…');
    }
    out
}

/// The `Code` and `Message` of an S3-style XML error body
/// (`<Error><Code>NoSuchKey</Code><Message>…</Message>…</Error>`), which
/// S3, S3-compatible stores and presigned URLs answer with.
///
/// Only these two are kept: the rest of such a body may echo the request
/// (`SignatureDoesNotMatch` carries the canonical request, session token
/// included), which must not reach a message.
pub(crate) fn xml_error(body: &[u8]) -> Option<(String, String)> {
    let text = std::str::from_utf8(body).ok()?;
    // The body read may be cut short of `</Error>`: Code and Message come
    // first.
    let error = &text[text.find("<Error>")?..];
    let code = xml_unescape(element(error, "Code")?.trim());
    if code.is_empty() {
        return None;
    }
    let message = element(error, "Message").map_or_else(String::new, |m| xml_unescape(m.trim()));
    Some((code, excerpt(message.as_bytes())))
}

/// The text between `<name>` and `</name>`.
fn element<'a>(text: &'a str, name: &str) -> Option<&'a str> {
    let start = text.find(&format!("<{name}>"))? + name.len() + 2;
    let end = text[start..].find(&format!("</{name}>"))? + start;
    Some(&text[start..end])
}

/// Replaces XML's predefined entities.
fn xml_unescape(text: &str) -> String {
    text.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

/// The `error.message` of a Google API error body
/// (`{"error": {"code": 404, "message": "No such object: b/o", …}}`); the
/// code is the status, which messages already give.
pub(crate) fn google_error_message(body: &[u8]) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    let message = value.get("error")?.get("message")?.as_str()?;
    Some(message.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s3_error_bodies_give_their_code_and_message_only() {
        let body = br#"<?xml version="1.0" encoding="UTF-8"?>
<Error><Code>SignatureDoesNotMatch</Code><Message>The request signature we calculated does not match &amp; so on</Message>
<CanonicalRequest>GET /k X-Amz-Security-Token=secret-token</CanonicalRequest></Error>"#;
        assert_eq!(
            xml_error(body),
            Some((
                "SignatureDoesNotMatch".to_owned(),
                "The request signature we calculated does not match & so on".to_owned()
            ))
        );
        assert_eq!(
            xml_error(b"<Error><Code>NoSuchBucket</Code><BucketName>b</BucketName></Error>"),
            Some(("NoSuchBucket".to_owned(), String::new()))
        );
        // Cut short after the message, as a long body read in part is.
        assert_eq!(
            xml_error(b"<Error><Code>AccessDenied</Code><Message>Access Denied</Message><Req"),
            Some(("AccessDenied".to_owned(), "Access Denied".to_owned()))
        );
    }

    #[test]
    fn bodies_that_are_not_s3_errors_give_no_code() {
        for body in [
            &b"<html><body>Not Found</body></html>"[..],
            b"{\"error\": {\"code\": 404}}",
            b"<Error><Message>no code</Message></Error>",
            b"<Error><Code></Code></Error>",
            b"\xff\xfe",
        ] {
            assert_eq!(xml_error(body), None, "{body:?}");
        }
    }

    #[test]
    fn content_range_of_a_range() {
        assert_eq!(
            parse_content_range("bytes 0-0/1234"),
            Some(ContentRange::Bytes {
                start: 0,
                end: 0,
                total: Some(1234)
            })
        );
        assert_eq!(
            parse_content_range("Bytes  100-199/*"),
            Some(ContentRange::Bytes {
                start: 100,
                end: 199,
                total: None
            })
        );
    }

    #[test]
    fn content_range_of_an_unsatisfiable_range() {
        assert_eq!(
            parse_content_range("bytes */0"),
            Some(ContentRange::Unsatisfied { total: 0 })
        );
        assert_eq!(parse_content_range("bytes */*"), None);
    }

    #[test]
    fn malformed_content_ranges_are_rejected() {
        for bad in [
            "",
            "bytes",
            "bytes 5-4/10",
            "bytes 0-9",
            "bytes -1-9/10",
            "bytes 0-9/ten",
            "items 0-9/10",
            "bytes 0-9/+10",
            "bytes 0-99999999999999999999999/*",
        ] {
            assert_eq!(parse_content_range(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn weak_etags_are_told_apart_and_compared_weakly() {
        assert!(is_weak_etag("W/\"abc\""));
        assert!(!is_weak_etag("\"abc\""));
        assert!(etags_match("W/\"abc\"", "\"abc\""));
        assert!(!etags_match("\"abc\"", "\"abd\""));
    }

    #[test]
    fn identity_encodings() {
        assert!(is_identity_encoding("identity"));
        assert!(is_identity_encoding(""));
        assert!(!is_identity_encoding("gzip"));
        assert!(!is_identity_encoding("identity, br"));
    }

    #[test]
    fn google_error_bodies_give_their_message() {
        let body = br#"{"error": {"code": 404, "message": "No such object: b/o",
                        "errors": [{"reason": "notFound"}]}}"#;
        assert_eq!(
            google_error_message(body).as_deref(),
            Some("No such object: b/o")
        );
        assert_eq!(
            google_error_message(br#"{"error": {"message": "Denied"}}"#).as_deref(),
            Some("Denied")
        );
        for other in [
            &b"not json"[..],
            br#"{"error": "flat"}"#,
            br#"{"message": "x"}"#,
        ] {
            assert_eq!(google_error_message(other), None);
        }
    }

    #[test]
    fn excerpts_are_one_short_line() {
        assert_eq!(
            excerpt(b"  <Error>\n  <Code>NoSuchKey</Code>\n"),
            "<Error> <Code>NoSuchKey</Code>"
        );
        let long = vec![b'x'; 1000];
        assert_eq!(excerpt(&long).chars().count(), 201);
    }
}
