//! Tokens: `<kind:16 hex digits>`, the first 64 bits of
//! HMAC-SHA256(tenant key, kind || 0x00 || normalised value).

use std::fmt::Write;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::kind::Kind;

/// The normalised form of a value, so that spellings of the same value give
/// the same token: e-mail lower-cased; phone, card and SSN digits only; IBAN
/// upper-case without spaces; IPv6 in its canonical form; others as found.
pub fn normalise(kind: &str, value: &str) -> String {
    match Kind::from_name(kind) {
        Some(Kind::Email) => value.to_ascii_lowercase(),
        Some(Kind::Phone | Kind::Card | Kind::Ssn) => {
            value.chars().filter(char::is_ascii_digit).collect()
        }
        Some(Kind::Iban) => value
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect::<String>()
            .to_ascii_uppercase(),
        Some(Kind::Ipv6) => value
            .parse::<std::net::Ipv6Addr>()
            .map_or_else(|_| value.to_ascii_lowercase(), |a| a.to_string()),
        // "JOHN SMITH" and "John  Smith" are one person; an address is the
        // same whether its parts are split by commas, spaces or lines.
        Some(Kind::Person) => value
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .to_lowercase(),
        Some(Kind::Address) => value
            .split(|c: char| c.is_whitespace() || c == ',')
            .filter(|w| !w.is_empty())
            .collect::<Vec<_>>()
            .join(" ")
            .to_lowercase(),
        _ => value.to_string(),
    }
}

/// The token of `value` (already normalised) under `key`.
pub fn token(key: &[u8], kind: &str, normalised: &str) -> String {
    // HMAC accepts keys of any length; new_from_slice cannot fail for it.
    let mut mac = match <Hmac<Sha256> as Mac>::new_from_slice(key) {
        Ok(m) => m,
        Err(_) => return format!("<{kind}:{}>", "0".repeat(16)),
    };
    mac.update(kind.as_bytes());
    mac.update(&[0]);
    mac.update(normalised.as_bytes());
    let digest = mac.finalize().into_bytes();
    let mut out = String::with_capacity(kind.len() + 19);
    out.push('<');
    out.push_str(kind);
    out.push(':');
    for b in &digest[..8] {
        let _ = write!(out, "{b:02x}");
    }
    out.push('>');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_value_same_token_other_key_other_token() {
        let a = token(
            b"key-a-0123456789abcdef0123456789ab",
            "email",
            &normalise("email", "Alice@Example.com"),
        );
        let b = token(
            b"key-a-0123456789abcdef0123456789ab",
            "email",
            &normalise("email", "alice@example.COM"),
        );
        let c = token(
            b"key-b-0123456789abcdef0123456789ab",
            "email",
            &normalise("email", "alice@example.com"),
        );
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert!(a.starts_with("<email:") && a.len() == "<email:>".len() + 16);
        assert_eq!(normalise("card", "4111-1111 1111-1111"), "4111111111111111");
        assert_eq!(normalise("ipv6", "2001:0db8:0000::1"), "2001:db8::1");
        assert_eq!(
            normalise("person", "JOHN  SMITH"),
            normalise("person", "John Smith")
        );
        assert_eq!(
            normalise("address", "221B Baker Street,\nLondon NW1 6XE"),
            "221b baker street london nw1 6xe"
        );
    }
}
