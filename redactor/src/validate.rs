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
    ends.iter()
        .rev()
        .filter(|(n, _)| (13..=19).contains(n) && issued(*n))
        .find(|(n, _)| luhn(&digits[..*n]) && !digits[..*n].iter().all(|&d| d == digits[0]))
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
/// between groups), if any.
pub fn iban(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    let mut compact = Vec::with_capacity(34);
    let mut end_of = Vec::with_capacity(34);
    for (i, &c) in b.iter().enumerate() {
        if c != b' ' {
            compact.push(c);
            end_of.push(i + 1);
        }
    }
    let lengths: Vec<usize> = match iban_length(&compact[..2.min(compact.len())]) {
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
            let rearranged = compact[4..l].iter().chain(&compact[..4]).copied();
            (mod97(rearranged) == 1).then_some(end)
        })
}

/// Whether `s` is a dotted quad with octets 0..=255 and no leading zeros,
/// not part of a longer dotted number (a version string).
pub fn ipv4(s: &str, before: Option<u8>, after: &[u8]) -> bool {
    if before == Some(b'.') || (after.len() >= 2 && after[0] == b'.' && after[1].is_ascii_digit()) {
        return false;
    }
    s.split('.').all(|o| {
        !o.is_empty()
            && o.len() <= 3
            && (o == "0" || !o.starts_with('0'))
            && o.parse::<u16>().is_ok_and(|v| v <= 255)
    })
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
    let token_len = t.split_whitespace().nth(1).map_or(0, str::len);
    (token_len >= 16).then_some(t.len())
}

/// The length of a phone candidate, if its digit count fits the format. An
/// SSN-shaped string (`020-00-4717`) is not taken as a phone number.
pub fn phone(s: &str) -> Option<usize> {
    if ssn_shaped(s) {
        return None;
    }
    let trimmed = s.trim_end_matches(|c: char| !c.is_ascii_digit());
    let digits = trimmed.bytes().filter(u8::is_ascii_digit).count();
    let ok = if trimmed.starts_with('+') {
        (8..=15).contains(&digits)
    } else if trimmed.starts_with('0') {
        (9..=12).contains(&digits)
    } else if trimmed.starts_with('1') {
        digits == 11
    } else {
        digits == 10
    };
    ok.then_some(trimmed.len())
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
        assert!(ipv4("192.168.1.20", Some(b' '), b" "));
        assert!(!ipv4("1.2.3.4", None, b".5"), "a version string");
        assert!(!ipv4("256.1.1.1", None, b""));
        assert!(ipv6("2001:db8:85a3::8a2e:370:7334").is_some());
        assert_eq!(phone("020-00-4717"), None);
        assert_eq!(phone("030 1234567"), Some(11));
        assert_eq!(bearer("Bearer abcdefghijklmnopqrstu."), Some(28));
        assert!(ipv6("12:30:45").is_none());
        assert!(
            ipv6("fe80::1").is_none(),
            "two groups: too little to be sure"
        );
    }
}
