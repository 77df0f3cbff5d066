//! Validators that turn a pattern match into a finding, or reject it. Some
//! shorten the match to the part that validates (a card number followed by
//! more digits, an IBAN followed by a word).

use std::net::Ipv6Addr;

/// Whether the digits pass the Luhn check.
pub fn luhn(digits: &[u8]) -> bool {
    let mut sum = 0u32;
    for (i, d) in digits.iter().rev().enumerate() {
        let mut v = u32::from(d - b'0');
        if i % 2 == 1 {
            v *= 2;
            if v > 9 {
                v -= 9;
            }
        }
        sum += v;
    }
    sum.is_multiple_of(10)
}

/// The longest prefix of a card candidate (ending at a digit followed by a
/// separator or the end) with 13 to 19 digits that passes Luhn; its byte length.
pub fn card(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    let mut digits = Vec::with_capacity(24);
    let mut ends = Vec::with_capacity(24);
    for (i, &c) in b.iter().enumerate() {
        if c.is_ascii_digit() {
            digits.push(c);
            let boundary = i + 1 == b.len() || !b[i + 1].is_ascii_digit();
            if boundary {
                ends.push((digits.len(), i + 1));
            }
        }
    }
    // Card networks issue numbers starting 2 to 6 (Mastercard 2-series,
    // Amex, Diners and JCB 3, Visa 4, Mastercard 5, Discover and UnionPay 6);
    // a 13-digit card is a Visa.
    let issued = |n: usize| match digits.first() {
        Some(b'4') => true,
        Some(b'2'..=b'6') => n >= 14,
        _ => false,
    };
    // Written in groups, a card's first group has 4 digits and the others
    // 3 to 6 (4-4-4-4, 4-6-5, 4-4-4-4-3); other groupings are other numbers.
    let grouped_like_a_card = |end: usize| {
        let groups: Vec<usize> = s[..end].split([' ', '-']).map(str::len).collect();
        groups.len() == 1 || (groups[0] == 4 && groups[1..].iter().all(|n| (3..=6).contains(n)))
    };
    ends.iter()
        .rev()
        .filter(|(n, _)| (13..=19).contains(n) && issued(*n))
        .find(|(n, end)| {
            luhn(&digits[..*n])
                && !digits[..*n].iter().all(|&d| d == digits[0])
                && grouped_like_a_card(*end)
        })
        .map(|(_, end)| *end)
}

/// Whether `AAA-GG-SSSS` is in the ranges the SSA issues.
pub fn ssn(s: &str) -> bool {
    let d: Vec<u32> = s
        .bytes()
        .filter(u8::is_ascii_digit)
        .map(|c| u32::from(c - b'0'))
        .collect();
    if d.len() != 9 {
        return false;
    }
    let area = d[0] * 100 + d[1] * 10 + d[2];
    let group = d[3] * 10 + d[4];
    let serial = d[5] * 1000 + d[6] * 100 + d[7] * 10 + d[8];
    area != 0 && area != 666 && area < 900 && group != 0 && serial != 0
}

fn mod97(chars: impl Iterator<Item = u8>) -> u32 {
    chars.fold(0u32, |acc, c| {
        let v = if c.is_ascii_digit() {
            u32::from(c - b'0')
        } else {
            u32::from(c - b'A') + 10
        };
        if v >= 10 {
            (acc * 100 + v) % 97
        } else {
            (acc * 10 + v) % 97
        }
    })
}

/// IBAN lengths by country (the common ones); others may be 15 to 34.
fn iban_length(country: &[u8]) -> Option<usize> {
    Some(match country {
        b"DE" => 22,
        b"GB" | b"IE" => 22,
        b"FR" | b"IT" | b"MC" => 27,
        b"NL" => 18,
        b"BE" => 16,
        b"ES" | b"SE" => 24,
        b"CH" | b"LI" => 21,
        b"AT" => 20,
        b"PL" => 28,
        b"PT" => 25,
        b"DK" | b"FI" => 18,
        b"NO" => 15,
        b"LU" => 20,
        _ => return None,
    })
}

/// The byte length of the valid IBAN at the start of `s` (spaces allowed
/// between groups, either case), if any. One written with lower-case
/// letters must be of a country whose IBAN length is known.
pub fn iban(s: &str) -> Option<usize> {
    if !s.is_ascii() {
        return None;
    }
    let b = s.as_bytes();
    let mut compact = Vec::with_capacity(34);
    let mut end_of = Vec::with_capacity(34);
    for (i, &c) in b.iter().enumerate() {
        if c != b' ' {
            compact.push(c.to_ascii_uppercase());
            end_of.push(i + 1);
        }
    }
    let known = iban_length(&compact[..2.min(compact.len())]);
    let lengths: Vec<usize> = match known {
        Some(l) => vec![l],
        None => (15..=34).rev().collect(),
    };
    lengths
        .into_iter()
        .filter(|&l| l <= compact.len())
        .find_map(|l| {
            let end = end_of[l - 1];
            // The IBAN must end at a token boundary.
            if end < b.len() && b[end].is_ascii_alphanumeric() {
                return None;
            }
            if known.is_none() && b[..end].iter().any(u8::is_ascii_lowercase) {
                return None;
            }
            let rearranged = compact[4..l].iter().chain(&compact[..4]).copied();
            (mod97(rearranged) == 1).then_some(end)
        })
}

/// Whether the match `start..end` of `text` is a dotted quad with octets
/// 0..=255 and no leading zeros, not part of a longer dotted number, not a
/// loopback, unspecified or broadcast address, and not after a word that
/// makes it a version ("version 4.2.0.1", "build 10.0.1.7").
pub fn ipv4(text: &str, start: usize, end: usize) -> bool {
    let s = &text[start..end];
    let b = text.as_bytes();
    let before = start.checked_sub(1).map(|i| b[i]);
    let after = &b[end..];
    if before == Some(b'.') || (after.len() >= 2 && after[0] == b'.' && after[1].is_ascii_digit()) {
        return false;
    }
    let octets: Vec<u16> = s
        .split('.')
        .filter_map(|o| {
            (!o.is_empty() && o.len() <= 3 && (o == "0" || !o.starts_with('0')))
                .then(|| o.parse::<u16>().ok())
                .flatten()
                .filter(|&v| v <= 255)
        })
        .collect();
    if octets.len() != 4
        || octets[0] == 127
        || octets == [0, 0, 0, 0]
        || octets == [255, 255, 255, 255]
    {
        return false;
    }
    let previous_word = text[..start]
        .trim_end_matches([' ', ':', '\t'])
        .rsplit(|c: char| !c.is_alphanumeric() && c != '.')
        .next()
        .unwrap_or("")
        .to_lowercase();
    // Chrome/120.0.0.0, torch==2.1.0.1: a version too (http://10.0.0.5 is not).
    let pinned = text[..start].ends_with("==")
        || (text[..start].ends_with('/')
            && text[..start.saturating_sub(1)]
                .chars()
                .next_back()
                .is_some_and(char::is_alphanumeric));
    !pinned && !crate::context::VERSION.contains(&previous_word.as_str())
}

/// The byte length of an IPv6 address with three or more groups at the
/// start of `s`, trying shorter prefixes when trailing text spoils it.
pub fn ipv6(s: &str) -> Option<(usize, Ipv6Addr)> {
    let mut end = s.len();
    while end > 2 {
        let cand = &s[..end];
        if let Ok(addr) = cand.parse::<Ipv6Addr>() {
            let groups = cand.split(':').filter(|g| !g.is_empty()).count();
            return (groups >= 3).then_some((end, addr));
        }
        end = cand.rfind(':')?;
    }
    None
}

/// Whether `s` has the shape of an SSN (`123-45-6789`).
fn ssn_shaped(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 11
        && b.iter().enumerate().all(|(i, c)| {
            if i == 3 || i == 6 {
                *c == b'-'
            } else {
                c.is_ascii_digit()
            }
        })
}

/// The trimmed length of a bearer credential (sentence punctuation after
/// the token is not part of it).
pub fn bearer(s: &str) -> Option<usize> {
    let t = s.trim_end_matches(['.', ',']);
    let token = t.split_whitespace().nth(1).unwrap_or("");
    // A credential has a digit or both cases; "bearer responsibilities" has neither.
    let random = token.bytes().any(|b| b.is_ascii_digit())
        || (token.bytes().any(|b| b.is_ascii_uppercase())
            && token.bytes().any(|b| b.is_ascii_lowercase()));
    (token.len() >= 16 && random).then_some(t.len())
}

/// The length of a phone candidate matched by pattern form `form` at
/// `start` of `text`, if its digit count fits the form (and the context,
/// for the forms that need one). An SSN-shaped string (`020-00-4717`) is
/// not taken as a phone number.
pub fn phone(text: &str, start: usize, s: &str, form: usize) -> Option<usize> {
    use crate::context::{before, near, PHONE, REFERENCE};
    if ssn_shaped(s) {
        return None;
    }
    let trimmed = s.trim_end_matches(|c: char| !c.is_ascii_digit());
    let digits = trimmed.bytes().filter(u8::is_ascii_digit).count();
    let end = start + trimmed.len();
    let said = || near(text, start, end, PHONE);
    let ok = match form {
        // +44 20 7946 0958, 0049 30 12345678; not an amount (+12.345.678).
        0 => {
            let trunk = trimmed.starts_with("00");
            let digits = if trunk { digits - 2 } else { digits };
            // Thousands are grouped with dots; "+34 657 539 486" is a phone.
            let groups: Vec<&str> = trimmed.split('.').collect();
            let thousands = groups.len() >= 3 && groups[1..].iter().all(|g| g.len() == 3);
            let reference = trunk && !said() && before(text, start, REFERENCE);
            (8..=15).contains(&digits) && !thousands && !reference
        }
        // (415) 555-0142, 1-800-555-0199
        1 => digits == if trimmed.starts_with('1') { 11 } else { 10 },
        // 030 1234567, 06 12 34 56 78; not a reference number.
        2 => (9..=12).contains(&digits) && (said() || !before(text, start, REFERENCE)),
        // Compact with the trunk 0: mobile ranges of the UK (07, 11
        // digits), France (06 and 07, 10) and Germany (015 to 017, 11 or
        // 12), or any beside a phone word.
        3 => {
            let mobile = (trimmed.starts_with("07") && digits == 11)
                || ((trimmed.starts_with("06") || trimmed.starts_with("07")) && digits == 10)
                || (["015", "016", "017"].iter().any(|p| trimmed.starts_with(p))
                    && (11..=12).contains(&digits));
            (mobile || said()) && (10..=13).contains(&digits)
        }
        // National numbers without a trunk 0 (Spain, Portugal, Italy,
        // India, Brazil's mobiles with their area code): only beside a
        // phone word.
        4 => (9..=11).contains(&digits) && said(),
        // 06.12.34.56.78
        5 => digits == 10 && (said() || !before(text, start, REFERENCE)),
        // (11) 98765-4321
        6 => (10..=11).contains(&digits),
        // (069) 76515958, (020) 8293 1043: the trunk 0 in brackets.
        7 => (9..=12).contains(&digits),
        // 345/8337684: an Italian mobile.
        8 => (9..=10).contains(&digits),
        // 21 99731 6690: a Brazilian mobile with its area code.
        9 => digits == 11,
        // 48 3274-8828: a Brazilian landline with its area code.
        _ => digits == 10,
    };
    ok.then_some(trimmed.len())
}

/// Common generic top-level domains; with the country codes, the TLDs an
/// e-mail address may end in (so `self.proj.weight` is no domain).
const GENERIC_TLDS: &str = "com org net edu gov mil int info biz name pro aero coop museum mobi asia tel travel jobs cat io ai app dev co me tv cc ly gg sh so to fm am la ws bz vc xyz online site tech store shop cloud email mail live blog news media digital agency company group global solutions services systems network support studio design world today life space website host page link click top club fun bank insurance finance capital ventures partners consulting legal law health care clinic school academy university college education science energy software engineering technology security green eco earth city london berlin paris nyc tokyo amazon google apple microsoft dell ibm sap bmw audi post arpa local internal corp lan home test example invalid localhost eu uk su ac";

/// Whether `tld` (lower case) is a top-level domain an address may end in:
/// a country code, a common generic one, or an internationalised one.
fn known_tld(tld: &str) -> bool {
    !tld.is_ascii()
        || tld.starts_with("xn--")
        || (tld.len() == 2 && crate::national_id::is_country(tld.to_ascii_uppercase().as_bytes()))
        || GENERIC_TLDS.split(' ').any(|t| t == tld)
}

/// The span of an e-mail address matched at `start..end` of `text`, if it
/// is one: leading dots and dashes are not part of it, its top-level domain
/// is a known one, and it is not followed by what makes it code or an scp
/// path (`git@github.com:acme/x.git`, `emb@self.proj.weight.T`, a call).
pub fn email(text: &str, start: usize, end: usize) -> Option<(usize, usize)> {
    let s = &text[start..end];
    let lead = s.len() - s.trim_start_matches(['.', '-', '+', '%']).len();
    let start = start + lead;
    let at = start + text[start..end].find('@')?;
    if at == start || text[start..at].ends_with('.') {
        return None;
    }
    let mut after = text[end..].chars();
    let next = after.next();
    let then = after.next();
    let code = match next {
        Some(':') => {
            let rest: String = text[end + 1..]
                .chars()
                .take_while(|c| !c.is_whitespace())
                .collect();
            then.is_some_and(|c| !c.is_whitespace())
                && (rest.contains('/') || rest.starts_with('~'))
        }
        Some('.') => then.is_some_and(char::is_alphanumeric),
        Some('(') => true,
        Some(c) => c.is_alphanumeric(),
        None => false,
    };
    let domain = &text[at + 1..end];
    let tld = domain
        .rsplit(['.', '。', '．', '｡'])
        .next()
        .unwrap_or("")
        .to_lowercase();
    (!code && known_tld(&tld)).then_some((start, end))
}

/// The span of the passport number in a matched passport phrase: its last
/// run of letters and digits, 6 to 9 long, with a digit in it.
pub fn passport(s: &str) -> Option<(usize, usize)> {
    let start = s
        .char_indices()
        .rev()
        .find(|(_, c)| !c.is_ascii_alphanumeric())
        .map(|(i, c)| i + c.len_utf8())?;
    passport_number(&s[start..]).then_some((start, s.len()))
}

/// Whether `v` has a passport number's shape: 6 to 9 letters and digits,
/// a digit among them or nine letters of the German alphabet of passport
/// numbers (no vowels, so no word).
pub fn passport_number(v: &str) -> bool {
    let german = v.len() == 9 && v.bytes().all(|b| b"CFGHJKLMNPRTVWXYZ".contains(&b));
    (6..=9).contains(&v.len())
        && v.bytes().all(|b| b.is_ascii_alphanumeric())
        && (v.bytes().any(|b| b.is_ascii_digit()) || german)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cards() {
        assert_eq!(card("4111 1111 1111 1111"), Some(19));
        assert_eq!(
            card("4111-1111-1111-1111 2027"),
            Some(19),
            "trailing digits dropped"
        );
        assert_eq!(card("4111 1111 1111 1112"), None);
        assert_eq!(
            card("0000000000000000"),
            None,
            "all zeros pass Luhn but are no card"
        );
        assert_eq!(card("378282246310005"), Some(15), "Amex");
        assert_eq!(
            card("1730047252102"),
            None,
            "a millisecond timestamp that passes Luhn"
        );
        assert_eq!(card("9784779591338"), None, "an ISBN that passes Luhn");
    }

    #[test]
    fn ibans() {
        assert_eq!(iban("DE89370400440532013000"), Some(22));
        assert_eq!(iban("DE89 3704 0044 0532 0130 00"), Some(27));
        assert_eq!(iban("DE89370400440532013000 FOR"), Some(22));
        assert_eq!(iban("DE89370400440532013001"), None);
        assert_eq!(iban("GB82WEST12345698765432"), Some(22));
    }

    #[test]
    fn ssns_and_ips() {
        assert!(ssn("123-45-6789"));
        assert!(
            !ssn("666-45-6789")
                && !ssn("000-45-6789")
                && !ssn("912-45-6789")
                && !ssn("123-00-6789")
        );
        assert!(ipv4("at 192.168.1.20 now", 3, 15));
        assert!(!ipv4("1.2.3.4.5", 0, 7), "a version string");
        assert!(!ipv4("256.1.1.1", 0, 9));
        assert!(!ipv4("127.0.0.1", 0, 9), "loopback");
        assert!(!ipv4("version 4.2.0.1", 8, 15), "a version");
        assert!(ipv6("2001:db8:85a3::8a2e:370:7334").is_some());
        assert_eq!(phone("020-00-4717", 0, "020-00-4717", 2), None);
        assert_eq!(phone("030 1234567", 0, "030 1234567", 2), Some(11));
        let t = "Aktenzeichen 0301 2345678";
        assert_eq!(phone(t, 13, &t[13..], 2), None, "a reference number");
        let t = "Tel.-Nr. 0301 2345678";
        assert_eq!(phone(t, 9, &t[9..], 2), Some(12));
        assert_eq!(bearer("Bearer abcDEFghijklmnopqrstu."), Some(28));
        assert_eq!(bearer("bearer responsibilities"), None);
        assert!(ipv6("12:30:45").is_none());
        assert!(
            ipv6("fe80::1").is_none(),
            "two groups: too little to be sure"
        );
    }
}
