//! Context words: some values are only PII beside a word that says what
//! they are (nine bare digits are an SSN after "SSN", a routing number
//! after "routing"), and some look-alikes are ruled out by one ("case
//! number 0301 2345678").

/// How many bytes before a candidate are searched for a context word.
const BEFORE: usize = 48;
/// How many bytes after a candidate are searched (`046 454 286 (SIN)`).
const AFTER: usize = 24;

/// Whether one of `words` (lower case) appears as a whole word within
/// [`BEFORE`] bytes before `start` or [`AFTER`] bytes after `end` in `text`.
pub fn near(text: &str, start: usize, end: usize, words: &[&str]) -> bool {
    before(text, start, words) || {
        let hi = floor_char(text, (end + AFTER).min(text.len()));
        has_word(&text[end.min(hi)..hi], words)
    }
}

/// Whether one of `words` appears as a whole word within [`BEFORE`] bytes
/// before `start`.
pub fn before(text: &str, start: usize, words: &[&str]) -> bool {
    let lo = ceil_char(text, start.saturating_sub(BEFORE));
    has_word(&text[lo..start], words)
}

fn has_word(window: &str, words: &[&str]) -> bool {
    if window.is_empty() {
        return false;
    }
    let lower = window.to_lowercase();
    let alnum = |c: Option<char>| c.is_some_and(char::is_alphanumeric);
    // A kind name inside a token the redactor wrote (`<ssn:...>`) is no
    // context word: redacting twice must find what redacting once did.
    words.iter().any(|w| {
        lower.match_indices(w).any(|(i, _)| {
            let before = lower[..i].chars().next_back();
            !alnum(before) && before != Some('<') && !alnum(lower[i + w.len()..].chars().next())
        })
    })
}

fn floor_char(s: &str, mut i: usize) -> usize {
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

fn ceil_char(s: &str, mut i: usize) -> usize {
    while !s.is_char_boundary(i) {
        i += 1;
    }
    i
}

/// Words that say a number is a US social security number.
pub const SSN: &[&str] = &["ssn", "ssn#", "ss#", "social security", "soc. sec."];
/// Words that say a number is a Canadian social insurance number.
pub const SIN: &[&str] = &["sin", "social insurance", "assurance sociale", "nas"];
/// Words that say a number is an Aadhaar number.
pub const AADHAAR: &[&str] = &["aadhaar", "aadhar", "uidai", "uid"];
/// Words that say a number is a German tax id.
pub const DE_TAX_ID: &[&str] = &[
    "steuer-id",
    "steuerid",
    "steuer",
    "steueridentifikationsnummer",
    "identifikationsnummer",
    "idnr",
    "tax id",
    "tin",
];
/// Words that say a number is a Brazilian CPF.
pub const CPF: &[&str] = &["cpf"];
/// Words that say a number is a US routing number.
pub const ABA: &[&str] = &["routing", "aba", "rtn", "routing number", "transit"];
/// Words that say a code is a BIC.
pub const BIC: &[&str] = &["bic", "swift", "swift code", "bic code", "bank identifier"];
/// Words that say a number is a phone number.
pub const PHONE: &[&str] = &[
    "tel",
    "tel.",
    "tél",
    "phone",
    "mobile",
    "mobil",
    "cell",
    "handy",
    "telefon",
    "telefono",
    "teléfono",
    "telefone",
    "telemóvel",
    "telemovel",
    "celular",
    "portable",
    "móvil",
    "movil",
    "whatsapp",
    "fax",
    "rufnummer",
    "telefonnummer",
    "call",
    "sms",
    "ring",
];
/// Words that say a number with a leading 0 is a reference, not a phone.
pub const REFERENCE: &[&str] = &[
    "aktenzeichen",
    "az.",
    "vorgang",
    "vorgangsnummer",
    "fall",
    "fallnummer",
    "akte",
    "kundennummer",
    "rechnung",
    "rechnungsnummer",
    "auftrag",
    "auftragsnummer",
    "bestellung",
    "bestellnummer",
    "ticket",
    "case",
    "order",
    "invoice",
    "ref",
    "referenz",
    "nr",
    "nr.",
    "nummer",
    "dossier",
    "expediente",
    "pedido",
    "factura",
    "fatura",
    "processo",
];
/// Words before a dotted quad that make it a version, not an address.
pub const VERSION: &[&str] = &[
    "version", "ver", "ver.", "build", "release", "firmware", "v",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_words_only() {
        let t = "since 2020 the SSN: 123456789 was used";
        let s = t.find("123").unwrap();
        assert!(near(t, s, s + 9, SSN));
        assert!(!near(t, s, s + 9, SIN), "'since' is not 'sin'");
        let t = "046 454 286 (SIN)";
        assert!(near(t, 0, 11, SIN));
        let t = "Ünïcödé téléphone é 0612345678";
        let s = t.find("0612").unwrap();
        assert!(!near(t, s, t.len(), &["tel"]));
        let t = "<ssn:0123456789abcdef> and 123456789";
        let s = t.find("123456789").unwrap();
        assert!(!near(t, s, s + 9, SSN), "a token is no context");
    }
}
