//! Cryptocurrency addresses, checked by their own checksums.

use sha2::{Digest, Sha256};
use sha3::Keccak256;

/// Bitcoin address: base58check (P2PKH `1...`, P2SH `3...`: 25 bytes whose
/// last 4 are the double SHA-256 of the rest) or bech32/bech32m (`bc1...`,
/// the segwit checksum).
pub fn btc(s: &str) -> bool {
    if s.len() > 3 && s[..3].eq_ignore_ascii_case("bc1") {
        // Mixed case is invalid bech32.
        let lower = s.bytes().all(|b| !b.is_ascii_uppercase());
        let upper = s.bytes().all(|b| !b.is_ascii_lowercase());
        return (lower || upper) && bech32::segwit::decode(s).is_ok();
    }
    let Ok(bytes) = bs58::decode(s).into_vec() else {
        return false;
    };
    if bytes.len() != 25 || !matches!(bytes[0], 0x00 | 0x05) {
        return false;
    }
    let hash = Sha256::digest(Sha256::digest(&bytes[..21]));
    hash[..4] == bytes[21..]
}

/// Ethereum address `0x` + 40 hex digits: all one case, or mixed case that
/// passes the EIP-55 checksum.
pub fn eth(s: &str) -> bool {
    let Some(hex) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) else {
        return false;
    };
    if hex.len() != 40 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return false;
    }
    let has_upper = hex.bytes().any(|b| b.is_ascii_uppercase());
    let has_lower = hex.bytes().any(|b| b.is_ascii_lowercase());
    if !(has_upper && has_lower) {
        // No checksum to verify; all zeros or one repeated digit is a placeholder.
        return !hex.bytes().all(|b| b == hex.as_bytes()[0]);
    }
    let lower = hex.to_ascii_lowercase();
    let hash = Keccak256::digest(lower.as_bytes());
    hex.bytes().enumerate().all(|(i, b)| {
        let nibble = (hash[i / 2] >> (if i % 2 == 0 { 4 } else { 0 })) & 0xf;
        !b.is_ascii_alphabetic() || b.is_ascii_uppercase() == (nibble >= 8)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksums() {
        assert!(btc("1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa"));
        assert!(!btc("1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNb"));
        assert!(btc("3J98t1WpEZ73CNmQviecrnyiWrnqRhWNLy"));
        assert!(btc("bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq"));
        assert!(!btc("bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdr"));
        assert!(btc(
            "bc1p5d7rjq7g6rdk2yhzks9smlaqtedr4dekq08ge8ztwac72sfr9rusxg3297"
        ));
        assert!(eth("0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"));
        assert!(!eth("0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAeD"));
        assert!(eth("0x5aaeb6053f3e94c9b9a09f33669435e7ef1beaed"));
        assert!(!eth("0x0000000000000000000000000000000000000000"));
    }
}
