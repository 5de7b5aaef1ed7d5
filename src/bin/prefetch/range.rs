//! `--range`: HTTP's inclusive byte-range forms, `A-B`, `A-` and `-N`.

use std::fmt;
use std::ops::Range;
use std::str::FromStr;

/// A byte range as written on the command line, not yet checked against an
/// object's length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ByteRange {
    /// `A-B`: bytes `A` to `B`, both included.
    FromTo(u64, u64),
    /// `A-`: from byte `A` to the end.
    From(u64),
    /// `-N`: the last `N` bytes.
    Last(u64),
}

impl FromStr for ByteRange {
    type Err = String;

    fn from_str(text: &str) -> Result<ByteRange, String> {
        let bad = |why: &str| {
            format!("`{text}`: {why} (expected A-B, A- or -N: inclusive byte offsets, or the last N bytes)")
        };
        let number = |digits: &str| -> Result<u64, String> {
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad(&format!("`{digits}` is not a byte offset")));
            }
            digits.parse().map_err(|_| bad("offset too large"))
        };
        let Some((first, last)) = text.split_once('-') else {
            return Err(bad("no `-`"));
        };
        match (first.is_empty(), last.is_empty()) {
            (true, true) => Err(bad("no offsets")),
            (true, false) => Ok(ByteRange::Last(number(last)?)),
            (false, true) => Ok(ByteRange::From(number(first)?)),
            (false, false) => {
                let (first, last) = (number(first)?, number(last)?);
                if last < first {
                    return Err(bad("the last byte comes before the first"));
                }
                Ok(ByteRange::FromTo(first, last))
            }
        }
    }
}

impl fmt::Display for ByteRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ByteRange::FromTo(first, last) => write!(f, "{first}-{last}"),
            ByteRange::From(first) => write!(f, "{first}-"),
            ByteRange::Last(n) => write!(f, "-{n}"),
        }
    }
}

impl ByteRange {
    /// The offsets this range selects in an object of `len` bytes, as
    /// HTTP does: a last byte past the end is the end, and `-N` larger
    /// than the object is the whole object.
    ///
    /// # Errors
    ///
    /// When the range selects nothing: a first byte at or past the end, or
    /// `-0` (HTTP's 416).
    pub(crate) fn resolve(self, len: u64) -> Result<Range<u64>, String> {
        let unsatisfiable =
            || format!("range {self} is not satisfiable: the object is {len} bytes long");
        match self {
            ByteRange::FromTo(first, last) if first < len => {
                Ok(first..last.saturating_add(1).min(len))
            }
            ByteRange::From(first) if first < len => Ok(first..len),
            ByteRange::Last(n) if n > 0 && len > 0 => Ok(len - n.min(len)..len),
            _ => Err(unsatisfiable()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<ByteRange, String> {
        text.parse()
    }

    #[test]
    fn the_three_forms_parse() {
        assert_eq!(parse("0-99"), Ok(ByteRange::FromTo(0, 99)));
        assert_eq!(parse("5-5"), Ok(ByteRange::FromTo(5, 5)));
        assert_eq!(parse("100-"), Ok(ByteRange::From(100)));
        assert_eq!(parse("-500"), Ok(ByteRange::Last(500)));
        assert_eq!(parse("-0"), Ok(ByteRange::Last(0)));
    }

    #[test]
    fn malformed_ranges_say_what_is_wrong() {
        assert!(parse("100").unwrap_err().contains("no `-`"));
        assert!(parse("-").unwrap_err().contains("no offsets"));
        assert!(parse("9-3").unwrap_err().contains("before the first"));
        assert!(parse("a-3")
            .unwrap_err()
            .contains("`a` is not a byte offset"));
        assert!(parse("1-2-3").unwrap_err().contains("`2-3` is not"));
        assert!(parse(" 1-2").unwrap_err().contains("not a byte offset"));
        assert!(parse("+1-2").unwrap_err().contains("not a byte offset"));
        assert!(parse("99999999999999999999-")
            .unwrap_err()
            .contains("too large"));
    }

    #[test]
    fn ranges_resolve_as_http_does() {
        assert_eq!(ByteRange::FromTo(0, 99).resolve(1000), Ok(0..100));
        assert_eq!(ByteRange::FromTo(990, 5000).resolve(1000), Ok(990..1000));
        assert_eq!(ByteRange::FromTo(0, u64::MAX).resolve(10), Ok(0..10));
        assert_eq!(ByteRange::From(10).resolve(1000), Ok(10..1000));
        assert_eq!(ByteRange::From(999).resolve(1000), Ok(999..1000));
        assert_eq!(ByteRange::Last(100).resolve(1000), Ok(900..1000));
        assert_eq!(ByteRange::Last(5000).resolve(1000), Ok(0..1000));
    }

    #[test]
    fn unsatisfiable_ranges_are_errors_naming_range_and_length() {
        let err = ByteRange::From(1000).resolve(1000).unwrap_err();
        assert_eq!(
            err,
            "range 1000- is not satisfiable: the object is 1000 bytes long"
        );
        assert!(ByteRange::FromTo(2000, 3000).resolve(1000).is_err());
        assert!(ByteRange::Last(0).resolve(1000).is_err());
        assert!(ByteRange::Last(10).resolve(0).is_err());
        assert!(ByteRange::From(0).resolve(0).is_err());
    }
}
