//! Text from a server made safe to print: control characters escaped, so a
//! hostile error body or header cannot move the cursor, clear the screen,
//! set a terminal's title or forge a line of output.

use std::borrow::Cow;
use std::fmt::Write as _;

/// `text` with every control character — C0 (`\0`–`\x1f`, tab and line
/// breaks included), DEL and C1 (`\u{80}`–`\u{9f}`) — written as a Rust
/// escape (`\x1b`, `\u{9b}`); any other character, Unicode included, is
/// kept. Borrowed when there is nothing to escape.
pub(crate) fn escape_control(text: &str) -> Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match u32::from(c) {
            code @ (0..=0x1f | 0x7f) => {
                let _ = write!(out, "\\x{code:02x}");
            }
            code @ 0x80..=0x9f => {
                let _ = write!(out, "\\u{{{code:x}}}");
            }
            _ => out.push(c),
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminal_escapes_are_escaped() {
        let hostile = "\u{1b}]0;pwned\u{7}\u{1b}[2J\rdone\n\u{9b}31m\u{7f}";
        assert_eq!(
            escape_control(hostile),
            "\\x1b]0;pwned\\x07\\x1b[2J\\x0ddone\\x0a\\u{9b}31m\\x7f"
        );
    }

    #[test]
    fn ordinary_text_is_borrowed_unchanged() {
        let text = "NoSuchKey: the key does not exist – ключ 🔑";
        assert!(matches!(escape_control(text), Cow::Borrowed(t) if t == text));
    }
}
