//! National identifiers and bank codes, each checked by its check digit or
//! structure: a candidate that fails is not a finding.

use crate::validate::luhn;

/// The digits of `s` as numbers, ignoring separators.
fn digits(s: &str) -> Vec<u32> {
    s.bytes()
        .filter(u8::is_ascii_digit)
        .map(|c| u32::from(c - b'0'))
        .collect()
}

/// `s` upper-cased without spaces, dashes and dots.
fn compact(s: &str) -> Vec<u8> {
    s.bytes()
        .filter(|b| !matches!(b, b' ' | b'-' | b'.'))
        .map(|b| b.to_ascii_uppercase())
        .collect()
}

/// Whether `s` has no separator (written as one run of characters).
pub fn is_compact(s: &str) -> bool {
    !s.bytes().any(|b| matches!(b, b' ' | b'-' | b'.'))
}

/// UK National Insurance number: two prefix letters (not D, F, I, Q, U, V;
/// the second not O; not BG, GB, KN, NK, NT, TN or ZZ), six digits, A to D.
pub fn uk_nino(s: &str) -> bool {
    let c = compact(s);
    if c.len() != 9 {
        return false;
    }
    let bad_first = b"DFIQUV";
    let bad_second = b"DFIOQUV";
    let prefix = &c[..2];
    // QQ is HMRC's own example prefix: never issued, but written as one.
    (prefix == b"QQ" || (!bad_first.contains(&c[0]) && !bad_second.contains(&c[1])))
        && ![b"BG", b"GB", b"KN", b"NK", b"NT", b"TN", b"ZZ"].contains(&&[prefix[0], prefix[1]])
        && c[2..8].iter().all(u8::is_ascii_digit)
        && (b'A'..=b'D').contains(&c[8])
}

/// German Steuer-ID: 11 digits, not starting with 0; in the first ten one
/// digit appears twice or three times and the others at most once; the
/// last is the ISO 7064 MOD 11,10 check digit.
pub fn de_tax_id(s: &str) -> bool {
    let d = digits(s);
    if d.len() != 11 || d[0] == 0 {
        return false;
    }
    let mut seen = [0u8; 10];
    for &x in &d[..10] {
        seen[x as usize] += 1;
    }
    let repeated: Vec<u8> = seen.iter().copied().filter(|&n| n > 1).collect();
    if repeated.len() != 1 || repeated[0] > 3 {
        return false;
    }
    let mut product = 10;
    for &x in &d[..10] {
        let mut sum = (x + product) % 10;
        if sum == 0 {
            sum = 10;
        }
        product = (sum * 2) % 11;
    }
    let check = (11 - product) % 10;
    check == d[10]
}

/// French NIR (numéro de sécurité sociale): 13 characters (Corsican
/// departments 2A and 2B included) and a two-digit key, 97 minus the number
/// modulo 97.
pub fn fr_nir(s: &str) -> bool {
    let c = compact(s);
    if c.len() != 15 {
        return false;
    }
    let (body, key) = c.split_at(13);
    let key: u64 = match std::str::from_utf8(key).ok().and_then(|k| k.parse().ok()) {
        Some(k) => k,
        None => return false,
    };
    // For the key, 2A and 2B count as 19 and 18.
    let text = match &body[5..7] {
        b"2A" => [&body[..5], b"19", &body[7..]].concat(),
        b"2B" => [&body[..5], b"18", &body[7..]].concat(),
        _ => body.to_vec(),
    };
    if !text.iter().all(u8::is_ascii_digit) {
        return false;
    }
    let n: u64 = match std::str::from_utf8(&text).ok().and_then(|t| t.parse().ok()) {
        Some(n) => n,
        None => return false,
    };
    (1..=97).contains(&key) && 97 - n % 97 == key
}

/// Spanish DNI (8 digits and a letter) or NIE (X, Y or Z, 7 digits and a
/// letter): the letter is the number modulo 23 in the official table.
pub fn es_dni(s: &str) -> bool {
    const LETTERS: &[u8; 23] = b"TRWAGMYFPDXBNJZSQVHLCKE";
    let c = compact(s);
    if c.len() != 9 {
        return false;
    }
    let lead = match c[0] {
        b'X' => b'0',
        b'Y' => b'1',
        b'Z' => b'2',
        d => d,
    };
    let number: Vec<u8> = std::iter::once(lead)
        .chain(c[1..8].iter().copied())
        .collect();
    if !number.iter().all(u8::is_ascii_digit) {
        return false;
    }
    let n: usize = number.iter().fold(0, |a, d| a * 10 + usize::from(d - b'0'));
    LETTERS[n % 23] == c[8]
}

/// Italian codice fiscale: 16 characters whose last is the check character
/// of the first 15 (odd and even positions weighted by the official tables).
pub fn it_fiscal_code(s: &str) -> bool {
    const ODD: [u32; 36] = [
        1, 0, 5, 7, 9, 13, 15, 17, 19, 21, // 0-9
        1, 0, 5, 7, 9, 13, 15, 17, 19, 21, 2, 4, 18, 20, 11, 3, 6, 8, 12, 14, 16, 10, 22, 25, 24,
        23, // A-Z
    ];
    let c = compact(s);
    if c.len() != 16 || !c.iter().all(u8::is_ascii_alphanumeric) {
        return false;
    }
    let value = |b: u8| -> usize {
        if b.is_ascii_digit() {
            usize::from(b - b'0')
        } else {
            usize::from(b - b'A') + 10
        }
    };
    let mut sum = 0u32;
    for (i, &b) in c[..15].iter().enumerate() {
        let v = value(b);
        sum += if i % 2 == 0 {
            ODD[v]
        } else if v < 10 {
            v as u32
        } else {
            (v - 10) as u32
        };
    }
    c[15] == b'A' + (sum % 26) as u8
}

/// Whether the digits pass the Verhoeff check (Aadhaar's check digit).
pub fn verhoeff(d: &[u32]) -> bool {
    const MUL: [[u32; 10]; 10] = [
        [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
        [1, 2, 3, 4, 0, 6, 7, 8, 9, 5],
        [2, 3, 4, 0, 1, 7, 8, 9, 5, 6],
        [3, 4, 0, 1, 2, 8, 9, 5, 6, 7],
        [4, 0, 1, 2, 3, 9, 5, 6, 7, 8],
        [5, 9, 8, 7, 6, 0, 4, 3, 2, 1],
        [6, 5, 9, 8, 7, 1, 0, 4, 3, 2],
        [7, 6, 5, 9, 8, 2, 1, 0, 4, 3],
        [8, 7, 6, 5, 9, 3, 2, 1, 0, 4],
        [9, 8, 7, 6, 5, 4, 3, 2, 1, 0],
    ];
    const PERM: [[u32; 10]; 8] = [
        [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
        [1, 5, 7, 6, 2, 8, 3, 0, 9, 4],
        [5, 8, 0, 3, 7, 9, 6, 1, 4, 2],
        [8, 9, 1, 6, 0, 4, 3, 5, 2, 7],
        [9, 4, 5, 3, 1, 2, 6, 8, 7, 0],
        [4, 2, 8, 6, 5, 7, 3, 9, 0, 1],
        [2, 7, 9, 3, 8, 0, 6, 4, 1, 5],
        [7, 0, 4, 6, 9, 1, 3, 2, 5, 8],
    ];
    let mut c = 0;
    for (i, &x) in d.iter().rev().enumerate() {
        c = MUL[c as usize][PERM[i % 8][x as usize] as usize];
    }
    c == 0
}

/// Indian Aadhaar: 12 digits, the first 2 to 9, Verhoeff-checked, not a
/// palindrome-free run of one digit.
pub fn aadhaar(s: &str) -> bool {
    let d = digits(s);
    d.len() == 12 && d[0] >= 2 && !d.iter().all(|&x| x == d[0]) && verhoeff(&d)
}

/// Brazilian CPF: 11 digits whose last two are the mod-11 check digits of
/// the ones before; not one digit repeated.
pub fn br_cpf(s: &str) -> bool {
    let d = digits(s);
    if d.len() != 11 || d.iter().all(|&x| x == d[0]) {
        return false;
    }
    let check = |n: usize| -> u32 {
        let sum: u32 = d[..n]
            .iter()
            .enumerate()
            .map(|(i, &x)| x * (n as u32 + 1 - i as u32))
            .sum();
        let r = (sum * 10) % 11;
        if r == 10 {
            0
        } else {
            r
        }
    };
    check(9) == d[9] && check(10) == d[10]
}

/// Canadian SIN: 9 digits, Luhn-checked, not starting with 8 (0 is the
/// government's own example, 046 454 286).
pub fn ca_sin(s: &str) -> bool {
    let b: Vec<u8> = s.bytes().filter(u8::is_ascii_digit).collect();
    b.len() == 9 && b[0] != b'8' && luhn(&b) && !b.iter().all(|&d| d == b[0])
}

/// US ABA routing number: 9 digits, a Federal Reserve prefix, and the
/// 3-7-1 weighted sum a multiple of 10.
pub fn aba_routing(s: &str) -> bool {
    let d = digits(s);
    if d.len() != 9 {
        return false;
    }
    let prefix = d[0] * 10 + d[1];
    let issued = matches!(prefix, 0..=12 | 21..=32 | 61..=72 | 80);
    let sum: u32 = d.chunks(3).map(|c| 3 * c[0] + 7 * c[1] + c[2]).sum();
    issued && prefix != 0 && sum.is_multiple_of(10) && !d.iter().all(|&x| x == d[0])
}

/// ISO 3166-1 alpha-2 country codes (for BICs and lower-case IBANs).
pub const COUNTRIES: &str = "AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ BR BS BT BV BW BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ DK DM DO DZ EC EE EG EH ER ES ET FI FJ FK FM FO FR GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS GT GU GW GY HK HM HN HR HT HU ID IE IL IM IN IO IQ IR IS IT JE JM JO JP KE KG KH KI KM KN KP KR KW KY KZ LA LB LC LI LK LR LS LT LU LV LY MA MC MD ME MF MG MH MK ML MM MN MO MP MQ MR MS MT MU MV MW MX MY MZ NA NC NE NF NG NI NL NO NP NR NU NZ OM PA PE PF PG PH PK PL PM PN PR PS PT PW PY QA RE RO RS RU RW SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV SX SY SZ TC TD TF TG TH TJ TK TL TM TN TO TR TT TV TW TZ UA UG UM US UY UZ VA VC VE VG VI VN VU WF WS XK YE YT ZA ZM ZW";

/// Whether `cc` (two upper-case letters) is an ISO 3166 country code.
pub fn is_country(cc: &[u8]) -> bool {
    cc.len() == 2
        && COUNTRIES
            .as_bytes()
            .chunks(3)
            .any(|c| c[0] == cc[0] && c[1] == cc[1])
}

/// BIC/SWIFT: bank code (4 letters), a country code, location (2), and an
/// optional branch (3).
pub fn bic(s: &str) -> bool {
    let b = s.as_bytes();
    (b.len() == 8 || b.len() == 11)
        && b[..6].iter().all(u8::is_ascii_uppercase)
        && is_country(&b[4..6])
        && b[6..]
            .iter()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
}

/// Indian PAN: 5 letters (the fourth a holder type), 4 digits, a letter.
pub fn in_pan(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 10
        && b[..5].iter().all(u8::is_ascii_uppercase)
        && b"PCHFATBLJG".contains(&b[3])
        && b[5..9].iter().all(u8::is_ascii_digit)
        && b[9].is_ascii_uppercase()
        && b[5..9] != *b"0000"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_digits() {
        assert!(uk_nino("QQ 12 34 56 C") && uk_nino("AB123456D"));
        assert!(!uk_nino("QQ 12 34 56 E") && !uk_nino("GB123456A") && !uk_nino("DA123456A"));
        // Published examples: 86095742719 (BZSt), 65929970489.
        assert!(de_tax_id("86095742719") && de_tax_id("65 929 970 489"));
        assert!(!de_tax_id("86095742718") && !de_tax_id("12345678901"));
        assert!(fr_nir("1 85 05 78 006 084 91") && fr_nir_2a());
        assert!(!fr_nir("1 85 05 78 006 084 36"));
        assert!(es_dni("12345678Z") && es_dni("X1234567L") && es_dni("Y-1234567-X"));
        assert!(!es_dni("12345678A"));
        assert!(it_fiscal_code("RSSMRA85T10A562S") && it_fiscal_code("rssmra85t10a562s"));
        assert!(!it_fiscal_code("RSSMRA85T10A562T"));
        assert!(verhoeff(&[2, 3, 6, 3]) && !verhoeff(&[2, 3, 6, 4]));
        assert!(br_cpf("529.982.247-25") && br_cpf("52998224725"));
        assert!(!br_cpf("529.982.247-26") && !br_cpf("111.111.111-11"));
        assert!(ca_sin("046 454 286") && !ca_sin("046 454 287"));
        assert!(aba_routing("021000021") && aba_routing("011000015"));
        assert!(!aba_routing("021000022"));
        assert!(bic("DEUTDEFF") && bic("DEUTDEFF500") && !bic("DEUTXXFF"));
        assert!(in_pan("ABCPE1234F") && !in_pan("ABCDE1234F"));
    }

    fn fr_nir_2a() -> bool {
        // python-stdnum's examples of Corsican numbers.
        fr_nir("2 53 07 2A 073 004 43") && fr_nir("2 53 07 2B 073 004 70")
    }
}
