//! The object resource the JSON API's metadata request returns, reduced to
//! what reading needs: size and generation (int64 values, which the API
//! sends as strings), the checksums, the etag and the stored encoding.

use crate::escape::escape_control;

use serde::Deserialize;

/// What opening learns about an object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ObjectMetadata {
    pub(crate) size: u64,
    pub(crate) generation: u64,
    /// Base64 of the big-endian CRC32C of the content.
    pub(crate) crc32c: Option<String>,
    /// Base64 of the MD5 of the content (absent for composite objects).
    pub(crate) md5_hash: Option<String>,
    /// The resource's etag (it changes with metadata, not only content).
    pub(crate) etag: Option<String>,
    /// `Content-Encoding` the object is stored with (`gzip`, say).
    pub(crate) content_encoding: Option<String>,
}

/// The fields of the object resource read, as sent.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Resource {
    size: Option<Int64>,
    generation: Option<Int64>,
    crc32c: Option<String>,
    md5_hash: Option<String>,
    etag: Option<String>,
    content_encoding: Option<String>,
}

/// An int64 field: a decimal string in the JSON API, a number from some
/// emulators.
#[derive(Deserialize)]
#[serde(untagged)]
enum Int64 {
    Number(u64),
    Text(String),
}

impl Int64 {
    fn value(&self, field: &str) -> Result<u64, String> {
        match self {
            Int64::Number(n) => Ok(*n),
            Int64::Text(text) => text
                .parse()
                .ok()
                .filter(|_| text.bytes().all(|b| b.is_ascii_digit()))
                .ok_or_else(|| {
                    format!(
                        "`{field}` is `{}`, not a non-negative integer",
                        escape_control(text)
                    )
                }),
        }
    }
}

/// Parses the metadata JSON.
///
/// # Errors
///
/// What is wrong, for a message: not JSON, or `size` or `generation`
/// missing or not a non-negative integer.
pub(crate) fn parse_metadata(body: &[u8]) -> Result<ObjectMetadata, String> {
    let resource: Resource = serde_json::from_slice(body).map_err(|err| {
        format!(
            "the metadata is not an object resource: {}",
            escape_control(&err.to_string())
        )
    })?;
    let required = |field: Option<&Int64>, name: &str| {
        field
            .ok_or_else(|| format!("the metadata has no `{name}`"))?
            .value(name)
    };
    Ok(ObjectMetadata {
        size: required(resource.size.as_ref(), "size")?,
        generation: required(resource.generation.as_ref(), "generation")?,
        crc32c: resource.crc32c,
        md5_hash: resource.md5_hash,
        etag: resource.etag,
        content_encoding: resource
            .content_encoding
            .filter(|encoding| !encoding.trim().is_empty()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_api_form_with_strings_for_int64() {
        let body = br#"{
            "kind": "storage#object", "name": "a/b", "bucket": "bkt",
            "generation": "1712345678901234", "metageneration": "1",
            "size": "20971520", "md5Hash": "XrY7u+Ae7tCTyyK7j1rNww==",
            "crc32c": "yZRlqg==", "etag": "CPKx0ZmB/4QDEAE=",
            "metadata": {"owner": "me"}
        }"#;
        assert_eq!(
            parse_metadata(body).unwrap(),
            ObjectMetadata {
                size: 20 << 20,
                generation: 1_712_345_678_901_234,
                crc32c: Some("yZRlqg==".to_owned()),
                md5_hash: Some("XrY7u+Ae7tCTyyK7j1rNww==".to_owned()),
                etag: Some("CPKx0ZmB/4QDEAE=".to_owned()),
                content_encoding: None,
            }
        );
    }

    #[test]
    fn numbers_for_int64_and_absent_checksums_are_accepted() {
        let meta =
            parse_metadata(br#"{"size": 0, "generation": 5, "contentEncoding": "gzip"}"#).unwrap();
        assert_eq!((meta.size, meta.generation), (0, 5));
        assert_eq!((meta.crc32c, meta.md5_hash), (None, None));
        assert_eq!(meta.content_encoding.as_deref(), Some("gzip"));
    }

    #[test]
    fn missing_or_malformed_size_and_generation_are_named() {
        let reason = |body: &str| parse_metadata(body.as_bytes()).unwrap_err();
        assert!(reason(r#"{"generation": "1"}"#).contains("no `size`"));
        assert!(reason(r#"{"size": "1"}"#).contains("no `generation`"));
        assert!(reason(r#"{"size": "-1", "generation": "1"}"#).contains("`size` is `-1`"));
        assert!(reason(r#"{"size": "1", "generation": "+1"}"#).contains("`generation`"));
        assert!(reason("<html>").contains("not an object resource"));
    }
}
