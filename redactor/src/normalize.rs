//! The text the detectors read, when it differs from the text given: no-break
//! and thin spaces read as spaces (`+44\u{a0}20\u{a0}7946\u{a0}0958`), and the
//! percent escapes of URLs that hide a value's punctuation read as what they
//! stand for (`jane.doe%40example.com`). Findings are mapped back to the
//! original bytes, so the escaped form is what gets replaced.

/// Spaces that read as an ASCII space: no-break (U+00A0), narrow no-break
/// (U+202F), thin (U+2009), figure (U+2007) and punctuation (U+2008) spaces.
const SPACES: &[char] = &['\u{a0}', '\u{202f}', '\u{2009}', '\u{2007}', '\u{2008}'];

/// The percent escapes that are decoded: the punctuation values are written
/// with (`@`, space, `+`, `.`, `-`, `_`). Others (`%2F`, `%3D`, ...) would
/// change a URL's structure and are left as they are.
fn unescaped(hex: &[u8]) -> Option<char> {
    let v = std::str::from_utf8(hex)
        .ok()
        .and_then(|h| u8::from_str_radix(h, 16).ok())?;
    matches!(v, b'@' | b' ' | b'+' | b'.' | b'-' | b'_').then_some(v as char)
}

/// A text as the detectors read it, with the original offset of each of its
/// bytes.
pub(crate) struct Normalized {
    /// The text the detectors read.
    pub text: String,
    /// `map[i]` is the offset in the original text of the character that
    /// byte `i` of [`Normalized::text`] belongs to; `map[text.len()]` is the
    /// original's length.
    map: Vec<usize>,
}

impl Normalized {
    /// `None` when the detectors read `text` as it is (the common case,
    /// checked without allocating).
    pub fn of(text: &str) -> Option<Self> {
        let b = text.as_bytes();
        let has_space = text.contains(SPACES);
        let has_escape = b
            .windows(3)
            .any(|w| w[0] == b'%' && unescaped(&w[1..]).is_some());
        if !has_space && !has_escape {
            return None;
        }
        let mut out = String::with_capacity(text.len());
        let mut map = Vec::with_capacity(text.len() + 1);
        let mut chars = text.char_indices().peekable();
        while let Some((i, c)) = chars.next() {
            if SPACES.contains(&c) {
                out.push(' ');
                map.push(i);
                continue;
            }
            if c == '%' {
                if let Some(d) = b.get(i + 1..i + 3).and_then(unescaped) {
                    out.push(d);
                    map.push(i);
                    chars.next();
                    chars.next();
                    continue;
                }
            }
            out.push(c);
            map.extend(std::iter::repeat_n(i, c.len_utf8()));
        }
        map.push(text.len());
        Some(Self { text: out, map })
    }

    /// The original span of `start..end` in [`Normalized::text`].
    pub fn original(&self, start: usize, end: usize) -> (usize, usize) {
        (self.map[start], self.map[end])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_spans_back_to_the_original() {
        assert!(Normalized::of("plain text, 50% off").is_none());
        let t = "mail jane.doe%40example.com or call +44\u{a0}20\u{a0}7946\u{a0}0958";
        let n = Normalized::of(t).unwrap();
        assert_eq!(n.text, "mail jane.doe@example.com or call +44 20 7946 0958");
        let s = n.text.find("jane").unwrap();
        let (a, z) = n.original(s, s + "jane.doe@example.com".len());
        assert_eq!(&t[a..z], "jane.doe%40example.com");
        let s = n.text.find("+44").unwrap();
        let (a, z) = n.original(s, n.text.len());
        assert_eq!(&t[a..z], "+44\u{a0}20\u{a0}7946\u{a0}0958");
        // An escape of a character that would change a URL's structure stays.
        let n = Normalized::of("a%2Fb c%40d").unwrap();
        assert_eq!(n.text, "a%2Fb c@d");
        // A cut escape at the end is no escape.
        assert!(Normalized::of("100%4").is_none());
    }
}
