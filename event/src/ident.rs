//! Identifiers as the contract stores them: one canonical spelling per name
//! (Unicode NFKC, trimmed, tags lower-cased), never an invisible or
//! direction-changing character, and never a value that is itself PII.
//!
//! Identifiers (tags, names, ids) are stored unredacted because reports
//! group by them, so a value that holds an e-mail address or a phone number
//! is refused rather than stored.

use std::borrow::Cow;

use unicode_normalization::UnicodeNormalization;

/// How an identifier is made canonical.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Canon {
    /// Kept as sent (event `id`, `source`): opaque keys, compared byte for byte.
    AsSent,
    /// Unicode NFKC and trimmed (full-width and decomposed forms become one).
    Nfkc,
    /// NFKC, trimmed and lower-cased: the grouping tags (tenant, team,
    /// environment), so that `Search`, ` search ` and `ｓｅａｒｃｈ` are one team.
    Folded,
}

/// `s` in its canonical form. ASCII input is only trimmed (and lower-cased
/// for [`Canon::Folded`]), which is the common case and costs no allocation
/// when nothing changes.
pub(crate) fn canonical(s: &str, canon: Canon) -> Cow<'_, str> {
    match canon {
        Canon::AsSent => Cow::Borrowed(s),
        Canon::Nfkc | Canon::Folded => {
            let fold = canon == Canon::Folded;
            if s.is_ascii() {
                let t = s.trim();
                if fold && t.bytes().any(|b| b.is_ascii_uppercase()) {
                    Cow::Owned(t.to_ascii_lowercase())
                } else {
                    Cow::Borrowed(t)
                }
            } else {
                let n: String = s.nfkc().collect();
                let t = n.trim();
                Cow::Owned(if fold {
                    // Lower-casing can leave a non-NFKC sequence; normalise again.
                    t.to_lowercase().nfkc().collect()
                } else {
                    t.to_string()
                })
            }
        }
    }
}

/// Whether `c` is invisible or changes text direction: the format
/// characters (general category Cf: zero-width space and joiners,
/// bidirectional controls and isolates, the byte-order mark, soft hyphen,
/// Arabic and Egyptian format marks, shorthand format controls, tag
/// characters), the line and paragraph separators, and the blank letters
/// (Hangul fillers, Braille blank) and variation selectors that render as
/// nothing. Such a character makes one name look like another.
pub(crate) fn is_invisible(c: char) -> bool {
    matches!(c,
        '\u{00AD}' | '\u{034F}' | '\u{061C}' | '\u{115F}' | '\u{1160}' | '\u{17B4}' | '\u{17B5}'
        | '\u{0600}'..='\u{0605}'
        | '\u{06DD}' | '\u{070F}' | '\u{08E2}'
        | '\u{180B}'..='\u{180F}'
        | '\u{200B}'..='\u{200F}'
        | '\u{2028}'..='\u{202E}'
        | '\u{2060}'..='\u{206F}'
        | '\u{2800}' | '\u{3164}'
        | '\u{FE00}'..='\u{FE0F}'
        | '\u{FEFF}' | '\u{FFA0}'
        | '\u{FFF0}'..='\u{FFFB}'
        | '\u{110BD}' | '\u{110CD}'
        | '\u{13430}'..='\u{1343F}'
        | '\u{1BCA0}'..='\u{1BCA3}'
        | '\u{1D173}'..='\u{1D17A}'
        | '\u{E0000}'..='\u{E0FFF}')
}

/// What kind of PII an identifier holds, if any: `"an e-mail address"` or
/// `"a phone number"`.
pub(crate) fn pii_in(s: &str) -> Option<&'static str> {
    // Most identifiers are ASCII without `@` or `+` and with a letter in
    // them: neither check below can match such a value.
    if s.is_ascii()
        && !s.bytes().any(|b| b == b'@' || b == b'+')
        && !s.bytes().all(|b| {
            b.is_ascii_digit() || b.is_ascii_whitespace() || matches!(b, b'-' | b'.' | b'(' | b')')
        })
    {
        return None;
    }
    // Ideographic full stops separate domain labels for mail systems too
    // (copied only when there is one: this runs on every identifier).
    const STOPS: [char; 2] = ['\u{3002}', '\u{FF61}'];
    let dotted;
    let s = if s.contains(STOPS) {
        dotted = s.replace(STOPS, ".");
        dotted.as_str()
    } else {
        s
    };
    if contains_email(s) {
        Some("an e-mail address")
    } else if is_phone(s) {
        Some("a phone number")
    } else {
        None
    }
}

/// Whether `s` contains `local@domain.tld` anywhere: a local part of the
/// characters RFC 5322 allows unquoted (or any non-ASCII letter), and a
/// domain of at least two labels whose last is alphabetic (two letters or
/// more, or an internationalised label).
fn contains_email(s: &str) -> bool {
    // `"` ends a quoted local part (`"alice"@example.com`).
    let local_char = |c: char| c.is_alphanumeric() || "!#$%&'*+/=?^_`{|}~.-\"".contains(c);
    let domain_char = |c: char| c.is_alphanumeric() || c == '-' || c == '.';
    s.match_indices('@').any(|(at, _)| {
        let local_ok = s[..at].chars().next_back().is_some_and(local_char);
        let domain: String = s[at + 1..]
            .chars()
            .take_while(|&c| domain_char(c))
            .collect();
        let domain = domain.trim_end_matches(['.', '-']);
        let labels: Vec<&str> = domain.split('.').collect();
        local_ok
            && labels.len() >= 2
            && labels.iter().all(|l| !l.is_empty())
            && labels.last().is_some_and(|tld| {
                (tld.chars().count() >= 2 && tld.chars().all(char::is_alphabetic))
                    || (tld.len() > 4
                        && tld.starts_with("xn--")
                        && tld.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
            })
    })
}

/// Whether `s` holds a phone number: anywhere in it, `+` (not right after a
/// letter or digit) and 7 to 15 digits (E.164) with the usual separators,
/// as in `tel:+447700900123`; or as the whole value, a North American
/// number written `(555) 123-4567`, `555-123-4567` or `555.123.4567`, or a
/// national number starting with 0 written with separators
/// (`07700 900123`, `0044 7700 900123`, `06 12 34 56 78`). A bare run of
/// digits is not taken for one: numeric user ids look the same.
fn is_phone(s: &str) -> bool {
    let separator = |c: char| matches!(c, ' ' | '-' | '.' | '(' | ')');
    let international = s.char_indices().any(|(i, c)| {
        if c != '+'
            || s[..i]
                .chars()
                .next_back()
                .is_some_and(char::is_alphanumeric)
        {
            return false;
        }
        let run: String = s[i + 1..]
            .chars()
            .take_while(|&c| c.is_ascii_digit() || separator(c))
            .collect();
        let digits = run.chars().filter(char::is_ascii_digit).count();
        let next = s[i + 1 + run.len()..].chars().next();
        run.starts_with(|c: char| c.is_ascii_digit() || c == '(')
            && (7..=15).contains(&digits)
            && !next.is_some_and(char::is_alphanumeric)
    });
    if international {
        return true;
    }
    let s = s.trim();
    if !s.chars().all(|c| c.is_ascii_digit() || separator(c)) {
        return false;
    }
    let digits = s.chars().filter(char::is_ascii_digit).count();
    let groups: Vec<&str> = s.split(separator).filter(|g| !g.is_empty()).collect();
    let lens: Vec<usize> = groups.iter().map(|g| g.len()).collect();
    let nanp = (10..=11).contains(&digits) && (lens == [3, 3, 4] || lens == [1, 3, 3, 4]);
    let national = s.starts_with('0') && groups.len() >= 2 && (10..=14).contains(&digits);
    nanp || national
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_team_is_one_team() {
        for v in [
            "search",
            "Search",
            " search ",
            "SEARCH\t",
            "ｓｅａｒｃｈ",
            "ｓｅａｒｃｈ ",
        ] {
            assert_eq!(canonical(v, Canon::Folded), "search", "{v:?}");
        }
        // NFD and NFC of é become one.
        let nfd = "cafe\u{0301}";
        assert_eq!(canonical(nfd, Canon::Folded), "caf\u{e9}");
        assert_eq!(
            canonical(nfd, Canon::Nfkc),
            canonical("caf\u{e9}", Canon::Nfkc)
        );
        assert_eq!(
            canonical("Usr_1", Canon::Nfkc),
            "Usr_1",
            "ids keep their case"
        );
        assert_eq!(canonical(" id ", Canon::AsSent), " id ");
    }

    #[test]
    fn invisible_characters() {
        for c in [
            '\u{200B}',
            '\u{200D}',
            '\u{202E}',
            '\u{2066}',
            '\u{FEFF}',
            '\u{E0041}',
            '\u{3164}',
        ] {
            assert!(is_invisible(c), "{c:?}");
        }
        for c in ['a', 'é', '-', ' ', '日'] {
            assert!(!is_invisible(c), "{c:?}");
        }
    }

    #[test]
    fn pii_in_identifiers() {
        for v in [
            "alice@example.com",
            "Alice.Smith+tag@sub.example.co.uk",
            "user:bob@corp.example",
            "jörg@beispiel.de",
            "alice@example.xn--p1ai",
            "alice@example\u{3002}com",
            "\"alice\"@example.com",
            "+44 7700 900123",
            "+1 (415) 555-2671",
            "(415) 555-2671",
            "415-555-2671",
            "1-415-555-2671",
            "tel:+447700900123",
            "u_+44 7700 900123",
            "call +1 415 555 2671",
            "07700 900123",
            "0044 7700 900123",
            "06 12 34 56 78",
        ] {
            assert!(pii_in(v).is_some(), "{v:?}");
        }
        for v in [
            "usr_1",
            "12345678",
            "4155552671",
            "search",
            "call-2026-11-03-0001",
            "2026-11-03",
            "team@2",
            "svc@localhost",
            "a@b.c1",
            "gpu-eu-01",
            "10.0.0.1",
            "1.2.3.4",
            "v1+2026.11.03",
            "a+1234567",
            "0.5",
            "2026-11-03",
            "01-2026",
        ] {
            assert!(pii_in(v).is_none(), "{v:?}");
        }
    }
}
