//! The kinds of personal and secret data the redactor detects.

use std::fmt;

/// A built-in detector. Custom per-tenant patterns have their own names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// Email address.
    Email,
    /// Phone number: E.164 (`+14155550142`), international with separators,
    /// US national (`(415) 555-0142`), or European national (`030 1234567`).
    Phone,
    /// Payment card number: 13 to 19 digits, spaces or dashes allowed, Luhn-checked.
    Card,
    /// US social security number `AAA-GG-SSSS` in the valid ranges.
    Ssn,
    /// IBAN, mod-97 checked, with or without spaces.
    Iban,
    /// IPv4 address.
    Ipv4,
    /// IPv6 address with three or more groups.
    Ipv6,
    /// JSON Web Token.
    Jwt,
    /// Cloud access key id (AWS `AKIA...`, `ASIA...`).
    AwsKey,
    /// API key: `sk-...`, GitHub (`ghp_...`), Slack (`xox?-...`) tokens.
    ApiKey,
    /// `Bearer <token>` credentials.
    Bearer,
    /// PEM private key block.
    PrivateKey,
}

impl Kind {
    /// Every built-in kind, in detection priority order.
    pub const ALL: [Kind; 12] = [
        Kind::PrivateKey,
        Kind::Bearer,
        Kind::Jwt,
        Kind::AwsKey,
        Kind::ApiKey,
        Kind::Email,
        Kind::Iban,
        Kind::Card,
        Kind::Ssn,
        Kind::Phone,
        Kind::Ipv4,
        Kind::Ipv6,
    ];

    /// The name used in tokens, config and the CLI.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Email => "email",
            Kind::Phone => "phone",
            Kind::Card => "card",
            Kind::Ssn => "ssn",
            Kind::Iban => "iban",
            Kind::Ipv4 => "ipv4",
            Kind::Ipv6 => "ipv6",
            Kind::Jwt => "jwt",
            Kind::AwsKey => "aws_key",
            Kind::ApiKey => "api_key",
            Kind::Bearer => "bearer",
            Kind::PrivateKey => "private_key",
        }
    }

    /// The kind with this name.
    pub fn from_name(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == name)
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
