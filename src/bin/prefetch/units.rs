//! Byte sizes on the command line (`64K`, `16MiB`, `1G`) and in output.

pub(crate) const KIB: u64 = 1 << 10;
pub(crate) const MIB: u64 = 1 << 20;
pub(crate) const GIB: u64 = 1 << 30;

/// Parses a size: a whole number of bytes, or a number (fractions allowed)
/// with a binary unit `K`, `M`, `G` or `T`, optionally followed by `iB` or
/// `B`, in any case: `65536`, `64K`, `64KiB`, `1.5M`, `1g`.
pub(crate) fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let multiplier = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => KIB,
        "m" | "mb" | "mib" => MIB,
        "g" | "gb" | "gib" => GIB,
        "t" | "tb" | "tib" => 1 << 40,
        _ => {
            return Err(format!(
                "`{text}`: unknown unit `{unit}` (use a number of bytes, or K, M, G, T)"
            ))
        }
    };
    if number.is_empty() {
        return Err(format!("`{text}`: expected a number, such as 64K or 16M"));
    }
    let bytes = if let Ok(whole) = number.parse::<u64>() {
        whole.checked_mul(multiplier)
    } else {
        let value: f64 = number
            .parse()
            .map_err(|_| format!("`{text}`: `{number}` is not a number"))?;
        let bytes = (value * multiplier as f64).round();
        // Exactly representable bounds: beyond 2^63 is far beyond any size here.
        (bytes < 9.2e18).then_some(bytes as u64)
    };
    bytes.ok_or_else(|| format!("`{text}`: too large"))
}

/// [`parse_size`] for sizes that must be positive.
pub(crate) fn parse_positive_size(text: &str) -> Result<u64, String> {
    match parse_size(text)? {
        0 => Err(format!("`{text}`: must be more than zero")),
        bytes => Ok(bytes),
    }
}

/// A size in the shortest exact form: `8K`, `16M`, `1G`, or bytes.
pub(crate) fn short_size(bytes: u64) -> String {
    for (unit, name) in [(GIB, "G"), (MIB, "M"), (KIB, "K")] {
        if bytes >= unit && bytes.is_multiple_of(unit) {
            return format!("{}{name}", bytes / unit);
        }
    }
    bytes.to_string()
}

/// A size for people: `812 B`, `64.0 KiB`, `256.0 MiB`, `1.50 GiB`.
pub(crate) fn human_size(bytes: u64) -> String {
    let b = bytes as f64;
    if bytes >= GIB {
        format!("{:.2} GiB", b / GIB as f64)
    } else if bytes >= MIB {
        format!("{:.1} MiB", b / MIB as f64)
    } else if bytes >= KIB {
        format!("{:.1} KiB", b / KIB as f64)
    } else {
        format!("{bytes} B")
    }
}

/// Bytes over seconds, in MiB/s.
pub(crate) fn mib_per_sec(bytes: u64, seconds: f64) -> f64 {
    if seconds > 0.0 {
        bytes as f64 / MIB as f64 / seconds
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_take_binary_units_in_any_case() {
        assert_eq!(parse_size("65536"), Ok(65536));
        assert_eq!(parse_size("64K"), Ok(64 * KIB));
        assert_eq!(parse_size("64kib"), Ok(64 * KIB));
        assert_eq!(parse_size("16MiB"), Ok(16 * MIB));
        assert_eq!(parse_size("16mb"), Ok(16 * MIB));
        assert_eq!(parse_size("1G"), Ok(GIB));
        assert_eq!(parse_size("1.5M"), Ok(3 * MIB / 2));
        assert_eq!(parse_size("0"), Ok(0));
        assert_eq!(parse_size("12b"), Ok(12));
    }

    #[test]
    fn bad_sizes_say_what_is_wrong() {
        assert!(parse_size("").unwrap_err().contains("expected a number"));
        assert!(parse_size("M").unwrap_err().contains("expected a number"));
        assert!(parse_size("12X").unwrap_err().contains("unknown unit `X`"));
        assert!(parse_size("1.2.3M").unwrap_err().contains("not a number"));
        assert!(parse_size("-5").unwrap_err().contains("unknown unit"));
        assert!(parse_size("99999999999T")
            .unwrap_err()
            .contains("too large"));
        assert!(parse_positive_size("0K")
            .unwrap_err()
            .contains("more than zero"));
    }

    #[test]
    fn short_sizes_are_exact() {
        assert_eq!(short_size(8 * KIB), "8K");
        assert_eq!(short_size(16 * MIB), "16M");
        assert_eq!(short_size(GIB), "1G");
        assert_eq!(short_size(1536 * KIB), "1536K");
        assert_eq!(short_size(1000), "1000");
    }

    #[test]
    fn human_sizes_pick_a_unit() {
        assert_eq!(human_size(812), "812 B");
        assert_eq!(human_size(64 * KIB), "64.0 KiB");
        assert_eq!(human_size(256 * MIB), "256.0 MiB");
        assert_eq!(human_size(3 * GIB / 2), "1.50 GiB");
    }
}
