//! The detection engine: every pattern in one multi-pattern regex, so text
//! is scanned once (a lazy DFA walks each byte once whatever the number of
//! patterns), then each candidate is checked by its kind's validator.

use regex_automata::meta::Regex;
use regex_automata::{Anchored, Input, PatternID};

use crate::kind::Kind;
use crate::validate;
use crate::Error;

/// What a finding is.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Detected {
    /// A built-in kind.
    Builtin(Kind),
    /// A custom pattern, by name.
    Custom(String),
}

impl Detected {
    /// The name in tokens.
    pub fn name(&self) -> &str {
        match self {
            Detected::Builtin(k) => k.as_str(),
            Detected::Custom(n) => n,
        }
    }
}

/// One piece of PII found in a text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// What it is.
    pub kind: Detected,
    /// Byte offset of its start.
    pub start: usize,
    /// Byte offset after its end.
    pub end: usize,
}

/// A custom pattern: a name (used in tokens) and a regex.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomPattern {
    /// Name in tokens, such as `employee_id`: lower-case letters, digits and `_`.
    pub name: String,
    /// The regular expression (Rust `regex` syntax).
    pub pattern: String,
}

/// Matches tokens the redactor wrote, so redacting twice changes nothing.
const TOKEN: &str = r"<[a-z][a-z0-9_]{0,31}:[0-9a-f]{16}>";

fn builtin_pattern(kind: Kind) -> &'static str {
    match kind {
        Kind::PrivateKey => {
            r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----(?s:.)*?-----END (?:[A-Z0-9]+ )*PRIVATE KEY-----"
        }
        Kind::Bearer => r"(?i:bearer)[ \t]+[A-Za-z0-9._~+/-]{16,}=*",
        Kind::Jwt => r"(?-u:\b)eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}",
        Kind::AwsKey => r"(?-u:\b)(?:AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}(?-u:\b)",
        Kind::ApiKey => {
            r"(?-u:\b)(?:sk-[A-Za-z0-9_-]{20,}|gh[pousr]_[A-Za-z0-9]{36,}|xox[abpr]-[A-Za-z0-9-]{10,})"
        }
        Kind::Email => {
            r"(?-u:\b)[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}(?-u:\b)"
        }
        Kind::Iban => r"(?-u:\b)[A-Z]{2}[0-9]{2}(?: ?[A-Z0-9]){11,30}(?-u:\b)",
        Kind::Card => r"(?-u:\b)[0-9](?:[ -]?[0-9]){12,22}(?-u:\b)",
        Kind::Ssn => r"(?-u:\b)(?:[0-9]{3}-[0-9]{2}-[0-9]{4}|[0-9]{3} [0-9]{2} [0-9]{4})(?-u:\b)",
        Kind::Phone => concat!(
            r"\+[1-9][0-9]{0,3}(?:[ .-]?\(?[0-9]{1,5}\)?){1,6}",
            r"|(?:(?-u:\b)1[ .-]?)?(?:\([2-9][0-9]{2}\) ?|(?-u:\b)[2-9][0-9]{2}[ .-])[0-9]{3}[ .-][0-9]{4}(?-u:\b)",
            r"|(?-u:\b)0[1-9][0-9]{1,4}(?:[ /-][0-9]{2,8}){1,3}(?-u:\b)"
        ),
        Kind::Ipv4 => r"(?-u:\b)[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}(?-u:\b)",
        Kind::Ipv6 => r"(?-u:\b)[0-9A-Fa-f]{1,4}(?::[0-9A-Fa-f]{0,4}){2,7}",
    }
}

/// What a pattern of the engine stands for.
#[derive(Debug, Clone)]
enum Slot {
    /// An existing token: skipped.
    Token,
    Builtin(Kind),
    Custom(String),
}

/// A compiled set of detectors: the built-in kinds that are enabled plus
/// custom patterns.
#[derive(Debug, Clone)]
pub struct Engine {
    regex: Regex,
    slots: Vec<Slot>,
}

impl Engine {
    /// Compiles the enabled built-in kinds and the custom patterns (custom
    /// ones take priority where two match at the same place).
    pub fn new(enabled: &[Kind], custom: &[CustomPattern]) -> Result<Self, Error> {
        let mut patterns: Vec<String> = vec![TOKEN.to_string()];
        let mut slots = vec![Slot::Token];
        for c in custom {
            let valid_name = !c.name.is_empty()
                && c.name.len() <= 32
                && c.name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
                && c.name.as_bytes()[0].is_ascii_lowercase();
            if !valid_name {
                return Err(Error::Config(format!(
                    "custom pattern name {:?} must be 1 to 32 lower-case letters, digits or _, starting with a letter",
                    c.name
                )));
            }
            if Kind::from_name(&c.name).is_some() {
                return Err(Error::Config(format!(
                    "custom pattern name {:?} is a built-in kind",
                    c.name
                )));
            }
            Regex::new(&c.pattern)
                .map_err(|e| Error::Config(format!("custom pattern {:?}: {e}", c.name)))?;
            patterns.push(c.pattern.clone());
            slots.push(Slot::Custom(c.name.clone()));
        }
        for kind in Kind::ALL.into_iter().filter(|k| enabled.contains(k)) {
            patterns.push(builtin_pattern(kind).to_string());
            slots.push(Slot::Builtin(kind));
        }
        let regex = Regex::builder()
            .build_many(&patterns)
            .map_err(|e| Error::Config(format!("compiling detectors: {e}")))?;
        Ok(Self { regex, slots })
    }

    /// Every finding in `text`, left to right, not overlapping.
    pub fn find(&self, text: &str) -> Vec<Finding> {
        let mut out = Vec::new();
        self.scan(text, |f| out.push(f));
        out
    }

    /// Calls `found` for each finding, left to right.
    pub fn scan(&self, text: &str, mut found: impl FnMut(Finding)) {
        let mut pos = 0;
        while pos < text.len() {
            let Some(m) = self.regex.search(&Input::new(text).range(pos..)) else {
                break;
            };
            let start = m.start();
            match self.resolve(text, start, m.pattern(), m.end()) {
                Some((Some(kind), end)) => {
                    found(Finding { kind, start, end });
                    pos = end;
                }
                Some((None, end)) => pos = end,
                None if matches!(
                    self.slots[m.pattern().as_usize()],
                    Slot::Builtin(Kind::Card)
                ) =>
                {
                    // A run of digits that is no card: a number inside it
                    // (an order number, a timestamp) is not PII either.
                    pos = m.end();
                }
                None => {
                    // Nothing validates here: move one character on.
                    pos = start + text[start..].chars().next().map_or(1, char::len_utf8);
                }
            }
        }
    }

    /// The finding at `start`: the first pattern's match if it validates,
    /// else the next pattern (in priority order) that matches there and
    /// validates. `Some((None, end))` is an existing token to skip.
    fn resolve(
        &self,
        text: &str,
        start: usize,
        first: PatternID,
        first_end: usize,
    ) -> Option<(Option<Detected>, usize)> {
        if let Some(r) = self.validate(text, start, first.as_usize(), first_end) {
            return Some(r);
        }
        for (i, _) in self.slots.iter().enumerate().skip(first.as_usize() + 1) {
            let pid = PatternID::new(i).ok()?;
            let input = Input::new(text)
                .range(start..)
                .anchored(Anchored::Pattern(pid));
            if let Some(m) = self.regex.search(&input) {
                if let Some(r) = self.validate(text, start, i, m.end()) {
                    return Some(r);
                }
            }
        }
        None
    }

    fn validate(
        &self,
        text: &str,
        start: usize,
        slot: usize,
        end: usize,
    ) -> Option<(Option<Detected>, usize)> {
        let s = &text[start..end];
        let b = text.as_bytes();
        let kind = match &self.slots[slot] {
            Slot::Token => return Some((None, end)),
            Slot::Custom(name) => {
                return (end > start).then(|| (Some(Detected::Custom(name.clone())), end))
            }
            Slot::Builtin(k) => *k,
        };
        let end = match kind {
            Kind::Card => start + validate::card(s)?,
            Kind::Iban => start + validate::iban(s)?,
            Kind::Ssn => validate::ssn(s).then_some(end)?,
            Kind::Phone => start + validate::phone(s)?,
            Kind::Bearer => start + validate::bearer(s)?,
            Kind::Ipv4 => {
                let before = start.checked_sub(1).map(|i| b[i]);
                validate::ipv4(s, before, &b[end..]).then_some(end)?
            }
            Kind::Ipv6 => start + validate::ipv6(s)?.0,
            _ => end,
        };
        within_words(b, start, end).then_some((Some(Detected::Builtin(kind)), end))
    }
}

/// Whether a finding at `start..end` neither starts nor ends inside a word
/// (ASCII letters, digits, `_`). A value cut out of a longer word would let
/// the rest of the word match on its own once the value is a token, so
/// redacting twice would differ from redacting once.
fn within_words(b: &[u8], start: usize, end: usize) -> bool {
    let word = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    let cut_at_end = end < b.len() && end > start && word(b[end]) && word(b[end - 1]);
    let cut_at_start = start > 0 && start < b.len() && word(b[start - 1]) && word(b[start]);
    !cut_at_end && !cut_at_start
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(text: &str) -> Vec<(String, String)> {
        let e = Engine::new(&Kind::ALL, &[]).unwrap();
        e.find(text)
            .into_iter()
            .map(|f| (f.kind.name().to_string(), text[f.start..f.end].to_string()))
            .collect()
    }

    #[test]
    fn finds_each_kind() {
        let t = "mail alice.kim@example.com or call +1 415 555 0142, card 4111 1111 1111 1111, ssn 123-45-6789";
        assert_eq!(
            kinds(t),
            vec![
                ("email".into(), "alice.kim@example.com".into()),
                ("phone".into(), "+1 415 555 0142".into()),
                ("card".into(), "4111 1111 1111 1111".into()),
                ("ssn".into(), "123-45-6789".into()),
            ]
        );
        let t = "iban DE89 3704 0044 0532 0130 00 from 10.2.3.4 and 2001:db8::8a2e:370:7334 key AKIAIOSFODNN7EXAMPLE";
        let k: Vec<String> = kinds(t).into_iter().map(|(k, _)| k).collect();
        assert_eq!(k, ["iban", "ipv4", "ipv6", "aws_key"]);
    }

    #[test]
    fn skips_near_misses() {
        for t in [
            "order ORD-2026-000123 shipped",
            "at 2026-11-03T14:05:00Z",
            "version 1.2.3 and v10.4.1",
            "id 550e8400-e29b-41d4-a716-446655440000",
            "sha 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
            "total $1,234.56",
            "card 4111 1111 1111 1112",
            "ssn 666-12-3456",
        ] {
            assert_eq!(kinds(t), vec![], "{t}");
        }
    }

    #[test]
    fn never_cuts_a_value_out_of_a_word() {
        // Found by the fuzzer: the IPv6 prefix ended inside "a1c5e8", and the
        // rest matched on a second pass.
        assert_eq!(kinds("2001:db8::a1c5e8::1c6:db8:d"), vec![]);
        assert_eq!(kinds("EMP4111111111111111"), vec![]);
        assert_eq!(
            kinds("id 2001:db8::a1c5 end"),
            vec![("ipv6".into(), "2001:db8::a1c5".into())]
        );
    }

    #[test]
    fn falls_back_to_the_next_kind_at_the_same_place() {
        // Fails as a card (Luhn), is a valid US phone.
        assert_eq!(
            kinds("call 415-555-0142 now"),
            vec![("phone".into(), "415-555-0142".into())]
        );
    }

    #[test]
    fn custom_patterns_take_priority() {
        let e = Engine::new(
            &Kind::ALL,
            &[CustomPattern {
                name: "employee_id".into(),
                pattern: r"EMP-[0-9]{6}".into(),
            }],
        )
        .unwrap();
        let f = e.find("ticket for EMP-004211");
        assert_eq!(f[0].kind, Detected::Custom("employee_id".into()));
        assert!(Engine::new(
            &Kind::ALL,
            &[CustomPattern {
                name: "Bad Name".into(),
                pattern: "x".into()
            }]
        )
        .is_err());
        assert!(Engine::new(
            &Kind::ALL,
            &[CustomPattern {
                name: "ok".into(),
                pattern: "(".into()
            }]
        )
        .is_err());
    }
}
