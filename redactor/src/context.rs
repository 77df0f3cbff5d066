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
        has_word(text, end.min(hi), hi, words)
    }
}

/// Whether one of `words` appears as a whole word within [`BEFORE`] bytes
/// before `start`.
pub fn before(text: &str, start: usize, words: &[&str]) -> bool {
    before_within(text, start, BEFORE, words)
}

/// Whether one of `words` appears as a whole word within `bytes` bytes
/// before `start`.
pub fn before_within(text: &str, start: usize, bytes: usize, words: &[&str]) -> bool {
    let lo = ceil_char(text, start.saturating_sub(bytes));
    has_word(text, lo, start, words)
}

/// Longest token the redactor writes: `<` + 32 + `:` + 16 + `>`.
const TOKEN_MAX: usize = 51;

/// `text[lo..hi]` with every token the redactor wrote (`<kind:16 hex>`,
/// also one cut by the window's edges) blanked out: a kind name inside a
/// token is no context word, or redacting twice would find what redacting
/// once did not.
fn without_tokens(text: &str, lo: usize, hi: usize) -> String {
    let a = ceil_char(text, lo.saturating_sub(TOKEN_MAX));
    let z = floor_char(text, (hi + TOKEN_MAX).min(text.len()));
    let mut region = text.as_bytes()[a..z].to_vec();
    let mut i = 0;
    while i < region.len() {
        if region[i] == b'<' {
            if let Some(len) = token_len(&region[i..]) {
                region[i..i + len].fill(b' ');
                i += len;
                continue;
            }
        }
        i += 1;
    }
    // Only ASCII bytes were replaced by ASCII, so the region stays UTF-8.
    String::from_utf8(region[lo - a..hi - a].to_vec()).unwrap_or_default()
}

/// The length of the token `<kind:16 hex>` at the start of `b`, if one is.
fn token_len(b: &[u8]) -> Option<usize> {
    let colon = b.iter().take(34).position(|&c| c == b':')?;
    let kind = &b[1..colon];
    let ok_kind = !kind.is_empty()
        && kind[0].is_ascii_lowercase()
        && kind
            .iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'_');
    let hex = b.get(colon + 1..colon + 17)?;
    let ok = ok_kind
        && hex.iter().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f'))
        && b.get(colon + 17) == Some(&b'>');
    ok.then_some(colon + 18)
}

fn has_word(text: &str, lo: usize, hi: usize, words: &[&str]) -> bool {
    if lo >= hi {
        return false;
    }
    let window = without_tokens(text, lo, hi);
    let lower = window.to_lowercase();
    let alnum = |c: Option<char>| c.is_some_and(char::is_alphanumeric);
    words.iter().any(|w| {
        // An acronym that is also an everyday word ("sin" is Spanish for
        // "without", "nas" Portuguese for "in the") counts only as written
        // in capitals.
        let (w, hay) = match w.strip_prefix(CAPS) {
            Some(w) => (w, window.as_str()),
            None => (*w, lower.as_str()),
        };
        hay.match_indices(w).any(|(i, _)| {
            let rest = &hay[i + w.len()..];
            // A plural is context too: "SSNs", "CPFs", "IBANs".
            let rest = match rest.strip_prefix('s').or_else(|| rest.strip_prefix('S')) {
                Some(r) if w.ends_with(|c: char| c.is_ascii_alphabetic()) => r,
                _ => rest,
            };
            !alnum(hay[..i].chars().next_back()) && !alnum(rest.chars().next())
        })
    })
}

/// The mark of a context word that counts only as written (in capitals).
const CAPS: &str = "=";

/// Whether a word of ASCII letters and digits within [`BEFORE`] bytes
/// before `start` or [`AFTER`] bytes after `end` passes `check`.
pub fn token_near(text: &str, start: usize, end: usize, check: fn(&str) -> bool) -> bool {
    let lo = ceil_char(text, start.saturating_sub(BEFORE));
    let hi = floor_char(text, (end + AFTER).min(text.len()));
    [&text[lo..start], &text[end.min(hi)..hi]]
        .into_iter()
        .flat_map(|part| part.split(|c: char| !c.is_ascii_alphanumeric()))
        .any(check)
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
pub const SIN: &[&str] = &[
    "=SIN",
    "social insurance",
    "assurance sociale",
    "=NAS",
    "numéro d'assurance sociale",
];
/// Words that say a number is an Aadhaar number.
pub const AADHAAR: &[&str] = &["aadhaar", "aadhar", "uidai", "uid no", "uid number"];
/// Words that say a number is a German tax id.
pub const DE_TAX_ID: &[&str] = &[
    "steuer-id",
    "steuerid",
    "steuer",
    "steueridentifikationsnummer",
    "identifikationsnummer",
    "idnr",
    "tax id",
    "=TIN",
];
/// Words that say a number is a Brazilian CPF.
pub const CPF: &[&str] = &["cpf"];
/// Words that say a number is a US routing number.
pub const ABA: &[&str] = &["routing", "aba", "rtn", "routing number", "transit number"];
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
    "mob",
    "ph",
    "telephone",
    "téléphone",
    "contact",
    "llámame",
    "llamar",
    "ligue",
    "ligar",
    "cellulare",
    "handynummer",
    "mobilnummer",
    "mobilfunknummer",
    "contacto",
    "contato",
    "tlf",
    "tfno",
    "telf",
    "cel",
    "cel.",
    "tel:",
    "mob.",
    "tlm",
    "tlm.",
    "telem.",
    "callback",
    "chamada",
    "llamada",
    "ligação",
    "ligacao",
    "contactado",
    "contactada",
    "contacted",
    "rappeler",
    "anrufen",
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
    "konto",
    "kontonummer",
    "iban",
    "blz",
    "facture",
    "commande",
    "contrat",
    "account",
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
        let t = "precio sin IVA 046 454 286";
        assert!(!near(t, 15, 26, SIN), "'sin' is Spanish for 'without'");
        let t = "nas faturas 046 454 286";
        assert!(!near(t, 12, 23, SIN), "'nas' is Portuguese for 'in the'");
        let t = "NAS : 046 454 286";
        assert!(near(t, 6, 17, SIN));
        let t = "the SSNs 123456789 and";
        assert!(near(t, 9, 18, SSN), "a plural is context");
        let t = "the SSNss 123456789 and";
        assert!(!near(t, 10, 19, SSN));
        let t = "Ünïcödé téléphone é 0612345678";
        let s = t.find("0612").unwrap();
        assert!(!near(t, s, t.len(), &["tel"]));
        let t = "<ssn:0123456789abcdef> and 123456789";
        let s = t.find(" and").unwrap() + 5;
        assert!(!near(t, s, s + 9, SSN), "a token is no context");
        let t = "<br_cpf:0123456789abcdef> 29141777638";
        let s = t.find(' ').unwrap() + 1;
        assert!(!near(t, s, s + 11, CPF), "nor a kind after an underscore");
        let t = "x".repeat(40) + "<ssn:0123456789abcdef> 123456789";
        let s = t.len() - 9;
        assert!(!near(&t, s, s + 9, SSN), "nor a token cut by the window");
    }
}
