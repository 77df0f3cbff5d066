//! The kinds of personal and secret data the redactor detects.

use std::fmt;

/// A built-in detector. Custom per-tenant patterns have their own names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// Email address, Unicode local parts and internationalised domains included.
    Email,
    /// Phone number: E.164 (`+14155550142`), international with separators,
    /// US national (`(415) 555-0142`), European national (`030 1234567`,
    /// `06 12 34 56 78`), compact mobile numbers (`07839589885`), and
    /// other national formats beside a phone word.
    Phone,
    /// Payment card number: 13 to 19 digits, spaces or dashes allowed, Luhn-checked.
    Card,
    /// US social security number `AAA-GG-SSSS` in the valid ranges (nine
    /// bare digits only beside "SSN" or "social security").
    Ssn,
    /// IBAN, mod-97 checked, with or without spaces, in either case.
    Iban,
    /// IPv4 address (not loopback, not a version number).
    Ipv4,
    /// IPv6 address with three or more groups.
    Ipv6,
    /// JSON Web Token.
    Jwt,
    /// Cloud access key id (AWS `AKIA...`, `ASIA...`).
    AwsKey,
    /// API key or token of a provider with a recognisable prefix: OpenAI and
    /// Anthropic `sk-`, Stripe, Google, GitHub, GitLab, Slack, Hugging Face,
    /// npm, PyPI, SendGrid, Shopify, and more (docs/redaction.md).
    ApiKey,
    /// `Bearer <token>` credentials.
    Bearer,
    /// PEM private key block.
    PrivateKey,
    /// `Basic <base64 of user:password>` credentials.
    BasicAuth,
    /// A password or secret in a URL (`scheme://user:password@host`), a
    /// query or connection string (`password=...`, `pwd=...`).
    Password,
    /// A cloud secret known by its name beside it: AWS secret access keys,
    /// Azure account and shared access keys and client secrets, GCP
    /// service-account key ids.
    CloudSecret,
    /// A Slack, Discord or Microsoft Teams incoming-webhook URL.
    WebhookUrl,
    /// UK National Insurance number.
    Nino,
    /// German tax identification number (Steuer-ID), check digit verified.
    DeTaxId,
    /// French social security number (NIR), key verified.
    FrNir,
    /// Spanish DNI or NIE, check letter verified.
    EsDni,
    /// Italian codice fiscale, check character verified.
    ItFiscalCode,
    /// Indian Aadhaar number, Verhoeff-checked.
    Aadhaar,
    /// Indian PAN.
    InPan,
    /// Brazilian CPF, both check digits verified.
    BrCpf,
    /// Canadian social insurance number, Luhn-checked, beside "SIN" or "NAS".
    CaSin,
    /// A passport number right after a passport word.
    Passport,
    /// A date of birth: a date right after "DOB", "born", "geboren", "né le", ...
    Dob,
    /// BIC/SWIFT code beside "BIC" or "SWIFT".
    Bic,
    /// US ABA routing number, check digit verified, beside "routing" or "ABA".
    AbaRouting,
    /// Bitcoin address: base58check or bech32/bech32m, checksum verified.
    BtcAddress,
    /// Ethereum address (EIP-55 checksum verified when mixed case).
    EthAddress,
    /// A postal address in the US, the UK, Germany or France: street,
    /// number, town and postcode.
    Address,
    /// A person's name in free text: gazetteers of first and last names
    /// with titles, greetings and labels as cues.
    Person,
}

impl Kind {
    /// Every built-in kind, in detection priority order.
    pub const ALL: [Kind; 33] = [
        Kind::PrivateKey,
        Kind::Bearer,
        Kind::BasicAuth,
        Kind::Jwt,
        Kind::WebhookUrl,
        Kind::Password,
        Kind::AwsKey,
        Kind::CloudSecret,
        Kind::ApiKey,
        Kind::Email,
        Kind::Address,
        Kind::Passport,
        Kind::Dob,
        Kind::Iban,
        Kind::BtcAddress,
        Kind::EthAddress,
        Kind::ItFiscalCode,
        Kind::FrNir,
        Kind::EsDni,
        Kind::Nino,
        Kind::InPan,
        Kind::Card,
        Kind::BrCpf,
        Kind::Aadhaar,
        Kind::DeTaxId,
        Kind::Ssn,
        Kind::CaSin,
        Kind::AbaRouting,
        Kind::Bic,
        Kind::Phone,
        Kind::Ipv4,
        Kind::Ipv6,
        Kind::Person,
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
            Kind::BasicAuth => "basic_auth",
            Kind::Password => "password",
            Kind::CloudSecret => "cloud_secret",
            Kind::WebhookUrl => "webhook_url",
            Kind::Nino => "uk_nino",
            Kind::DeTaxId => "de_tax_id",
            Kind::FrNir => "fr_nir",
            Kind::EsDni => "es_dni",
            Kind::ItFiscalCode => "it_fiscal_code",
            Kind::Aadhaar => "in_aadhaar",
            Kind::InPan => "in_pan",
            Kind::BrCpf => "br_cpf",
            Kind::CaSin => "ca_sin",
            Kind::Passport => "passport",
            Kind::Dob => "dob",
            Kind::Bic => "bic",
            Kind::AbaRouting => "aba_routing",
            Kind::BtcAddress => "btc_address",
            Kind::EthAddress => "eth_address",
            Kind::Address => "address",
            Kind::Person => "person",
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
