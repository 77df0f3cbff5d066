//! The detection engine: every pattern in one multi-pattern regex, so text
//! is scanned once (a lazy DFA walks each byte once whatever the number of
//! patterns), then each candidate is checked by its kind's validator.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};

use regex_automata::meta::Regex;
use regex_automata::{Anchored, Input, MatchKind, PatternID, PatternSet};

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

/// The patterns of a built-in kind: one or more forms, each validated on
/// its own (the form's index is passed to the validator).
fn builtin_patterns(kind: Kind) -> Vec<String> {
    let forms: &[&str] = match kind {
        Kind::PrivateKey => &[
            r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----(?s:.)*?-----END (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----",
            // Cut off before its END line (an excerpt): the BEGIN line and the body.
            r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----[\r\n]+(?:[A-Za-z0-9+/=:\- ]*[\r\n]+)*[A-Za-z0-9+/=]{16,}",
        ],
        Kind::Bearer => &[r"(?i:bearer)[ \t]+[A-Za-z0-9._~+/-]{16,}=*"],
        Kind::BasicAuth => &[r"(?-u:\b)(?i:basic)[ \t]+[A-Za-z0-9+/]{8,}={0,2}"],
        Kind::Jwt => &[r"(?-u:\b)eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"],
        Kind::WebhookUrl => &[concat!(
            r"https://(?:hooks\.slack\.com/(?:services|workflows|triggers)/[A-Za-z0-9_/-]{8,}",
            r"|(?:ptb\.|canary\.)?discord(?:app)?\.com/api/webhooks/[0-9]{5,}/[A-Za-z0-9_-]{20,}",
            r"|[A-Za-z0-9-]+\.webhook\.office\.com/webhookb2/[A-Za-z0-9@/_.-]{20,})"
        )],
        Kind::Password => &[
            // A URL's userinfo: from `://` on; the scheme before it is
            // checked in code (`secret::scheme_before`). In the automaton,
            // the scheme's unanchored bounded repetition multiplied the
            // lazy DFA's states with every other pattern's: short texts
            // (an event's fields) were scanned 15 times slower.
            r#"://[^\s/?#@:<>"']{0,64}:[^\s/?#<>"']{1,128}@"#,
            r#"(?i:password|passwd|pwd|passphrase|pass|secret|client_secret|api_?key|access_token|auth_token|token)=[^\s&;"'<>]{3,}"#,
            r#"(?i:thin):[A-Za-z0-9_$#]{1,30}/[^\s/@<>"']{1,128}@"#,
            // password: "S3cr3t!", "password": "...", DB_PASSWORD='...'
            r#"(?i:password|passwd|passphrase|pwd|client_secret|secret_key|passwort|kennwort|mot de passe|senha|contraseña|contrasena|palavra-passe)["']?[ \t]*[:=][ \t]*["'][^\s"'<>]{3,128}["']"#,
            r#"(?i:password|passwd|passphrase|pwd|passwort|kennwort|mot de passe|senha|contraseña|contrasena|palavra-passe)[ \t]*[:=][ \t]*[^\s"'<>,;]{3,128}"#,
            // Three forms whose value lies further on: only their first
            // words are in the automaton (long bounded repetitions there
            // made every failed candidate's fallback search a third
            // slower); the rest is matched from the end of these
            // (`secret::PASSWORD_AFTER`).
            // In prose: "my password is ...", "das Passwort für ... ist ...".
            r#"(?i:password|passwort|kennwort|passcode|mot de passe|senha|contraseña|contrasena)"#,
            // "set a temporary password ...".
            r#"(?i:temporary|temp|new|initial|one-time|neues|temporäres|vorläufiges|nouveau|provisoire|nueva|temporal|nova|provisória)[ \t]+(?i:password|passwort|kennwort|mot de passe|contraseña|senha)"#,
            // The MySQL client's `-p<password>`.
            r#"(?i:mysql|mysqldump|mysqladmin|mariadb)[ \t]"#,
        ],
        Kind::AwsKey => &[r"(?-u:\b)(?:AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}(?-u:\b)"],
        Kind::CloudSecret => &[
            r#"(?i:aws_?secret_?access_?key|aws_?secret_?key|secret_?access_?key|aws[ \t]+secret(?:[ \t]+access)?[ \t]+key)["']?[ \t]*[:=]?[ \t]*["']?[A-Za-z0-9/+]{40}(?-u:\b)"#,
            r"(?:AccountKey|SharedAccessKey|SharedAccessSignature)=[A-Za-z0-9+/%]{40,}={0,2}",
            r"(?-u:\b)[A-Za-z0-9_~.-]{3}[0-9]Q~[A-Za-z0-9_~.-]{31,34}",
            r#""private_key_id"[ \t]*:[ \t]*"[0-9a-f]{40}""#,
            r"(?-u:\b)GOCSPX-[A-Za-z0-9_-]{28}",
            r"[?&]sig=[A-Za-z0-9%+/=]{40,}",
        ],
        Kind::ApiKey => &[concat!(
            r"(?-u:\b)(?:sk-[A-Za-z0-9_-]{20,}|gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{40,}",
            r"|xox[abposer]-[A-Za-z0-9-]{10,}|xapp-[0-9]-[A-Za-z0-9-]{10,}",
            r"|(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{16,}|whsec_[A-Za-z0-9+/=]{24,}",
            r"|AIza[A-Za-z0-9_-]{35}|ya29\.[A-Za-z0-9_-]{20,}",
            r"|hf_[A-Za-z0-9]{30,}|glpat-[A-Za-z0-9_-]{20,}|gl(?:dt|ptt|rt|cbt)-[A-Za-z0-9_-]{20,}",
            r"|npm_[A-Za-z0-9]{36}|pypi-AgEIcHlwaS5vcmc[A-Za-z0-9_-]{50,}",
            r"|SG\.[A-Za-z0-9_-]{16,32}\.[A-Za-z0-9_-]{16,64}|shp(?:at|ss|ca|pa)_[a-fA-F0-9]{32}",
            r"|do[por]_v1_[a-f0-9]{64}|dapi[a-f0-9]{32}(?:-[0-9]+)?|gsk_[A-Za-z0-9]{48,}",
            r"|r8_[A-Za-z0-9]{37}|lin_api_[A-Za-z0-9]{40}|ntn_[A-Za-z0-9]{40,}|secret_[A-Za-z0-9]{43}",
            r"|hvs\.[A-Za-z0-9_-]{24,}|PMAK-[a-f0-9]{24}-[a-f0-9]{34}|SK[0-9a-f]{32}",
            r"|key-[0-9a-zA-Z]{32}|ATATT3[A-Za-z0-9_=-]{20,}|dp\.pt\.[A-Za-z0-9]{40,}|xai-[A-Za-z0-9]{40,}",
            r"|[0-9]{8,10}:AA[A-Za-z0-9_-]{33})"
        )],
        Kind::Email => &[
            r"[\p{L}\p{M}\p{N}._%+-]+@[\p{L}\p{M}\p{N}-]+(?:[.。．｡][\p{L}\p{M}\p{N}-]+)*[.。．｡](?:xn--[A-Za-z0-9-]{2,}|\p{L}[\p{L}\p{M}]+)",
        ],
        Kind::Passport => &[concat!(
            r"(?i:passport|reisepass|passeport|pasaporte|passaporte|passaporto|passnummer|pass-nr\.?)",
            r"(?i:[ \t_-]*(?:numbers?|nummer|num[ée]ro|n[úu]mero|no\.?|nr\.?|n\.?[°º]\.?|#))?",
            r#"(?i:[ \t]+(?:is|was|ist|est|es|é))?[ \t]*[-:#(="'/]*[ \t]*["']?[A-Za-z0-9]{6,9}(?-u:\b)"#
        )],
        Kind::Dob => return vec![crate::dob::pattern()],
        // Scanned by an automaton of their own.
        Kind::Address => &[],
        // Found by the names pass, not by a pattern.
        Kind::Person => &[],
        Kind::Iban => &[r"(?-u:\b)(?i-u:[A-Z]{2}[0-9]{2}(?: ?[A-Z0-9]){11,30})(?-u:\b)"],
        Kind::BtcAddress => &[
            r"(?-u:\b)(?:[13][1-9A-HJ-NP-Za-km-z]{25,34}|bc1[02-9ac-hj-np-z]{11,71}|BC1[02-9AC-HJ-NP-Z]{11,71})(?-u:\b)",
        ],
        Kind::EthAddress => &[r"(?-u:\b)0[xX][0-9a-fA-F]{40}(?-u:\b)"],
        Kind::ItFiscalCode => &[
            r"(?-u:\b)(?i-u:[A-Z]{6}[0-9LMNPQRSTUV]{2}[ABCDEHLMPRST][0-9LMNPQRSTUV]{2}[A-Z][0-9LMNPQRSTUV]{3}[A-Z])(?-u:\b)",
        ],
        Kind::FrNir => &[
            r"(?-u:\b)[1-478] ?[0-9]{2} ?(?:0[1-9]|1[0-2]|[2-9][0-9]) ?(?:[0-9]{2}|2[ABab]) ?[0-9]{3} ?[0-9]{3} ?[0-9]{2}(?-u:\b)",
        ],
        Kind::EsDni => &[
            r"(?-u:\b)(?:[0-9]{8}|[0-9]{2}\.[0-9]{3}\.[0-9]{3}|[XYZxyz]-?[0-9]{7})-?[A-Za-z](?-u:\b)",
        ],
        Kind::Nino => &[
            r"(?-u:\b)(?i-u:QQ|[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z])[ -]?[0-9]{2}[ -]?[0-9]{2}[ -]?[0-9]{2}[ -]?(?i-u:[A-D])(?-u:\b)",
        ],
        Kind::InPan => &[r"(?-u:\b)[A-Z]{3}[PCHFATBLJG][A-Z][0-9]{4}[A-Z](?-u:\b)"],
        Kind::Card => &[r"(?-u:\b)[0-9](?:[ -]?[0-9]){12,22}(?-u:\b)"],
        Kind::BrCpf => &[r"(?-u:\b)[0-9]{3}\.?[0-9]{3}\.?[0-9]{3}-?[0-9]{2}(?-u:\b)"],
        Kind::Aadhaar => &[r"(?-u:\b)[2-9][0-9]{3}[ -]?[0-9]{4}[ -]?[0-9]{4}(?-u:\b)"],
        Kind::DeTaxId => &[r"(?-u:\b)[1-9][0-9](?: ?[0-9]{3}){3}(?-u:\b)"],
        Kind::Ssn => &[
            r"(?-u:\b)(?:[0-9]{3}-[0-9]{2}-[0-9]{4}|[0-9]{3} [0-9]{2} [0-9]{4})(?-u:\b)",
            r"(?-u:\b)[0-9]{9}(?-u:\b)",
        ],
        Kind::CaSin => &[r"(?-u:\b)[0-79][0-9]{2}[ -]?[0-9]{3}[ -]?[0-9]{3}(?-u:\b)"],
        Kind::AbaRouting => &[r"(?-u:\b)[0-3678][0-9]{8}(?-u:\b)"],
        Kind::Bic => &[r"(?-u:\b)[A-Z]{6}[A-Z0-9]{2}(?:[A-Z0-9]{3})?(?-u:\b)"],
        Kind::Phone => &[
            r"(?:\+|(?-u:\b)00)[1-9][0-9]{0,3}(?:[ .-]?\(?[0-9]{1,5}\)?){1,6}",
            r"(?:(?-u:\b)1[ .-]?)?(?:\([2-9][0-9]{2}\) ?|(?-u:\b)[2-9][0-9]{2}[ .-])[0-9]{3}[ .-][0-9]{4}(?-u:\b)",
            r"(?-u:\b)0[1-9][0-9]{0,4}(?:[ /-][0-9]{2,8}){1,4}(?-u:\b)",
            r"(?-u:\b)0[1-9][0-9]{8,11}(?-u:\b)",
            // National numbers without a trunk 0: grouped, or Portuguese
            // (21 763 3191) and compact (218625181, 11914043244) ones.
            r"(?-u:\b)(?:[3-9][0-9]{2,4}(?:[ .-]?[0-9]{2,5}){1,3}|[1-9][0-9](?: [0-9]{3} [0-9]{4}|[0-9]{7,9}))(?-u:\b)",
            // French numbers written with dots: 06.12.34.56.78.
            r"(?-u:\b)0[1-9](?:\.[0-9]{2}){4}(?-u:\b)",
            // Brazilian numbers with the area code in brackets: (11) 98765-4321.
            r"\([1-9][0-9]\) ?9?[0-9]{4}-?[0-9]{4}(?-u:\b)",
            // The trunk 0 and area code in brackets: (069) 76515958.
            r"\(0[1-9][0-9]{1,4}\) ?[0-9]{3,8}(?:[ -][0-9]{2,8})?(?-u:\b)",
            // Italian mobiles with a slash: 345/8337684.
            r"(?-u:\b)3[0-9]{2}/[0-9]{6,7}(?-u:\b)",
            // Brazilian mobiles with the area code: 21 99731 6690.
            r"(?-u:\b)[1-9][0-9] 9[0-9]{4}[ -][0-9]{4}(?-u:\b)",
            // Brazilian landlines with the area code: 48 3274-8828.
            r"(?-u:\b)[1-9][0-9] [2-5][0-9]{3}-[0-9]{4}(?-u:\b)",
        ],
        Kind::Ipv4 => &[r"(?-u:\b)[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}(?-u:\b)"],
        Kind::Ipv6 => &[r"(?-u:\b)[0-9A-Fa-f]{1,4}(?::[0-9A-Fa-f]{0,4}){2,7}"],
    };
    forms.iter().map(|f| f.to_string()).collect()
}

/// The lazy DFA's cache per automaton and thread. With every kind on, the
/// default (2 MiB) filled up on text dense with candidates, and the engine
/// kept clearing it and falling back to slower engines.
const LAZY_DFA_CACHE: usize = 16 << 20;

/// The API key pattern alone, to tell a provider's key after `token=` from
/// a password.
static API_KEY: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(&builtin_patterns(Kind::ApiKey)[0]).ok());

/// What a pattern of the engine stands for.
#[derive(Debug, Clone)]
enum Slot {
    /// An existing token: skipped.
    Token,
    /// A built-in kind and the index of its form.
    Builtin(Kind, usize),
    Custom(String),
}

/// A compiled set of detectors: the built-in kinds that are enabled plus
/// custom patterns.
#[derive(Debug, Clone)]
pub struct Engine {
    regex: Regex,
    /// The same patterns with every match reported: which patterns match
    /// at a place where the first one's candidate failed.
    all: Regex,
    slots: Vec<Slot>,
    /// Whether person names are looked for (a pass of its own).
    names: bool,
    /// The address patterns, scanned on their own: in the main automaton
    /// their street and town words multiply its states past the lazy
    /// DFA's cache, and every scan slows a hundredfold.
    addresses: Option<Regex>,
    /// The kinds found by column in pasted tables (names, dates of birth,
    /// addresses, phone numbers), when enabled.
    table_kinds: Vec<Kind>,
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
        for kind in Kind::ALL
            .into_iter()
            .filter(|k| enabled.contains(k) && *k != Kind::Address)
        {
            for (form, pattern) in builtin_patterns(kind).into_iter().enumerate() {
                patterns.push(pattern);
                slots.push(Slot::Builtin(kind, form));
            }
        }
        let regex = Regex::builder()
            .configure(Regex::config().hybrid_cache_capacity(LAZY_DFA_CACHE))
            .build_many(&patterns)
            .map_err(|e| Error::Config(format!("compiling detectors: {e}")))?;
        let all = Regex::builder()
            .configure(
                Regex::config()
                    .match_kind(MatchKind::All)
                    .hybrid_cache_capacity(LAZY_DFA_CACHE),
            )
            .build_many(&patterns)
            .map_err(|e| Error::Config(format!("compiling detectors: {e}")))?;
        let addresses = if enabled.contains(&Kind::Address) {
            Some(
                Regex::new_many(&crate::address::patterns())
                    .map_err(|e| Error::Config(format!("compiling address detectors: {e}")))?,
            )
        } else {
            None
        };
        Ok(Self {
            regex,
            all,
            slots,
            names: enabled.contains(&Kind::Person),
            addresses,
            table_kinds: [
                Kind::Person,
                Kind::Dob,
                Kind::Address,
                Kind::Phone,
                Kind::Ssn,
                Kind::AbaRouting,
                Kind::Aadhaar,
                Kind::DeTaxId,
                Kind::BrCpf,
                Kind::CaSin,
                Kind::Bic,
                Kind::Passport,
            ]
            .into_iter()
            .filter(|k| enabled.contains(k))
            .collect(),
        })
    }

    /// The engine for these kinds and patterns, compiled once per process
    /// and shared: compiling 31 kinds' automata is the costly part of
    /// building a redactor.
    pub fn shared(enabled: &[Kind], custom: &[CustomPattern]) -> Result<Arc<Self>, Error> {
        type Key = (Vec<Kind>, Vec<(String, String)>);
        static ENGINES: LazyLock<Mutex<HashMap<Key, Arc<Engine>>>> =
            LazyLock::new(|| Mutex::new(HashMap::new()));
        let key: Key = (
            enabled.to_vec(),
            custom
                .iter()
                .map(|c| (c.name.clone(), c.pattern.clone()))
                .collect(),
        );
        if let Some(e) = ENGINES.lock().ok().and_then(|m| m.get(&key).cloned()) {
            return Ok(e);
        }
        let engine = Arc::new(Self::new(enabled, custom)?);
        if let Ok(mut m) = ENGINES.lock() {
            m.insert(key, engine.clone());
        }
        Ok(engine)
    }

    /// Every finding in `text`, left to right, not overlapping.
    pub fn find(&self, text: &str) -> Vec<Finding> {
        let mut out = Vec::new();
        self.scan(text, |f| out.push(f));
        out
    }

    /// Calls `found` for each finding, left to right. No-break spaces and
    /// the percent escapes of punctuation are read as what they stand for
    /// (see [`crate::normalize`]); spans are always the original text's.
    pub fn scan(&self, text: &str, mut found: impl FnMut(Finding)) {
        match crate::normalize::Normalized::of(text) {
            None => self.scan_text(text, found),
            Some(n) => self.scan_text(&n.text, |f| {
                let (start, end) = n.original(f.start, f.end);
                found(Finding { start, end, ..f })
            }),
        }
    }

    /// [`Engine::scan`] of a text as the detectors read it.
    fn scan_text(&self, text: &str, mut found: impl FnMut(Finding)) {
        if !self.names && self.addresses.is_none() && self.table_kinds.is_empty() {
            return self.scan_patterns(text, |hit| {
                if let Hit::Found(f) = hit {
                    found(f)
                }
            });
        }
        // Addresses take the place of what the patterns found inside them
        // (a ZIP+4 code is no phone number); names are looked for outside
        // every other finding and the tokens.
        let mut others = Vec::new();
        let mut tokens = Vec::new();
        self.scan_patterns(text, |hit| match hit {
            Hit::Found(f) => others.push(f),
            Hit::Token(a, z) => tokens.push((a, z)),
        });
        // Values in a table's named columns come first: the column says
        // what they are.
        let mut cells: Vec<Finding> = if self.table_kinds.is_empty() {
            Vec::new()
        } else {
            crate::table::find(text, &self.table_kinds)
                .into_iter()
                .filter(|&(_, a, z)| !tokens.iter().any(|&(s, e)| s < z && a < e))
                .map(|(kind, start, end)| Finding {
                    kind: Detected::Builtin(kind),
                    start,
                    end,
                })
                .collect()
        };
        if let Some(re) = &self.addresses {
            let mut addresses = self.addresses(re, text, &tokens);
            addresses.retain(|a| !cells.iter().any(|c| a.start < c.end && c.start < a.end));
            if !addresses.is_empty() {
                others.retain(|f| !addresses.iter().any(|a| f.start < a.end && a.start < f.end));
                others.extend(addresses);
            }
        }
        if !cells.is_empty() {
            others.retain(|f| !cells.iter().any(|c| f.start < c.end && c.start < f.end));
            others.append(&mut cells);
        }
        others.sort_by_key(|f| f.start);
        if !self.names {
            others.into_iter().for_each(found);
            return;
        }
        let mut taken: Vec<(usize, usize)> = others
            .iter()
            .map(|f| (f.start, f.end))
            .chain(tokens)
            .collect();
        taken.sort_unstable();
        let names = crate::names::find(text, &taken);
        let mut names = names.into_iter().peekable();
        for f in others {
            while let Some(&(a, z)) = names.peek().filter(|&&(a, _)| a < f.start) {
                found(Finding {
                    kind: Detected::Builtin(Kind::Person),
                    start: a,
                    end: z,
                });
                names.next();
            }
            found(f);
        }
        for (a, z) in names {
            found(Finding {
                kind: Detected::Builtin(Kind::Person),
                start: a,
                end: z,
            });
        }
    }

    /// Every address in `text` outside the tokens.
    fn addresses(&self, re: &Regex, text: &str, tokens: &[(usize, usize)]) -> Vec<Finding> {
        let mut out = Vec::new();
        let mut pos = 0;
        while pos < text.len() {
            let Some(m) = re.search(&Input::new(text).range(pos..)) else {
                break;
            };
            let span = crate::address::check(text, m.start(), m.end(), m.pattern().as_usize())
                .filter(|&(a, z)| {
                    within_words(text.as_bytes(), a, z)
                        && !tokens.iter().any(|&(s, e)| s < z && a < e)
                });
            match span {
                Some((a, z)) => {
                    out.push(Finding {
                        kind: Detected::Builtin(Kind::Address),
                        start: a,
                        end: z,
                    });
                    pos = z;
                }
                None => {
                    pos = m.start() + text[m.start()..].chars().next().map_or(1, char::len_utf8)
                }
            }
        }
        out
    }

    /// The pattern pass: each finding and each token the redactor wrote,
    /// left to right.
    fn scan_patterns(&self, text: &str, mut hit: impl FnMut(Hit)) {
        let mut pos = 0;
        while pos < text.len() {
            let Some(m) = self.regex.search(&Input::new(text).range(pos..)) else {
                break;
            };
            let start = m.start();
            match self.resolve(text, start, m.pattern(), m.end()) {
                Some(Resolved::Found(kind, start, end)) => {
                    let dob = kind == Detected::Builtin(Kind::Dob);
                    hit(Hit::Found(Finding { kind, start, end }));
                    pos = end;
                    if dob {
                        // "DOBs 04/20/1951, 07/21/1958 and 10/02/1963".
                        for (a, z) in crate::dob::list_after(text, end) {
                            hit(Hit::Found(Finding {
                                kind: Detected::Builtin(Kind::Dob),
                                start: a,
                                end: z,
                            }));
                            pos = z;
                        }
                    }
                }
                Some(Resolved::Token(end)) => {
                    hit(Hit::Token(start, end));
                    pos = end;
                }
                None if matches!(
                    self.slots[m.pattern().as_usize()],
                    Slot::Builtin(Kind::Card, _)
                ) =>
                {
                    // A run of digits that is no card: a number inside it
                    // (an order number, a timestamp, an id whose key
                    // failed) is not PII either, except a card that starts
                    // at one of its later groups (`Acct 12345678
                    // 4111111111111111`).
                    pos = m.end();
                    if let Some((a, z)) = self.card_in_run(text, start, m.end(), m.pattern()) {
                        hit(Hit::Found(Finding {
                            kind: Detected::Builtin(Kind::Card),
                            start: a,
                            end: z,
                        }));
                        pos = pos.max(z);
                    }
                }
                None if matches!(
                    self.slots[m.pattern().as_usize()],
                    Slot::Builtin(Kind::Email, _)
                ) =>
                {
                    // No address here: no other may start before its `@`
                    // (stepping one character at a time is quadratic on a
                    // long local part).
                    pos = text[start..m.end()]
                        .find('@')
                        .map_or(m.end(), |i| start + i + 1);
                }
                None if text.as_bytes()[start].is_ascii_digit() => {
                    // A number nothing validates: no pattern may start
                    // inside it (they start at a word boundary).
                    pos = start + text[start..].bytes().take_while(u8::is_ascii_digit).count();
                }
                None => {
                    // Nothing validates here: move one character on.
                    pos = start + text[start..].chars().next().map_or(1, char::len_utf8);
                }
            }
        }
    }

    /// The first card that starts at a later group of the digit run
    /// `start..end` (pattern `card`), if one does.
    fn card_in_run(
        &self,
        text: &str,
        start: usize,
        end: usize,
        card: PatternID,
    ) -> Option<(usize, usize)> {
        let b = text.as_bytes();
        (start + 1..end)
            .filter(|&i| b[i].is_ascii_digit() && !b[i - 1].is_ascii_digit())
            .find_map(|i| {
                let input = Input::new(text)
                    .range(i..)
                    .anchored(Anchored::Pattern(card));
                let m = self.regex.search(&input)?;
                match self.validate(text, i, card.as_usize(), m.end())? {
                    Resolved::Found(_, a, z) => Some((a, z)),
                    Resolved::Token(_) => None,
                }
            })
    }

    /// The finding at `start`: the first pattern's match if it validates,
    /// else the next pattern (in priority order) that matches there and
    /// validates.
    fn resolve(
        &self,
        text: &str,
        start: usize,
        first: PatternID,
        first_end: usize,
    ) -> Option<Resolved> {
        if let Some(r) = self.validate(text, start, first.as_usize(), first_end) {
            return Some(r);
        }
        // Every other pattern that matches at `start`, found in one pass.
        let anchored = Input::new(text).range(start..).anchored(Anchored::Yes);
        let mut set = PatternSet::new(self.slots.len());
        self.all.which_overlapping_matches(&anchored, &mut set);
        for pid in set.iter().filter(|p| p.as_usize() > first.as_usize()) {
            let input = Input::new(text)
                .range(start..)
                .anchored(Anchored::Pattern(pid));
            if let Some(m) = self.regex.search(&input) {
                if let Some(r) = self.validate(text, start, pid.as_usize(), m.end()) {
                    return Some(r);
                }
            }
        }
        None
    }

    /// The finding a match of pattern `slot` at `start..end` stands for, if
    /// its validator accepts it: the value's span may lie inside the match
    /// (a password after `password=`, a date after "born on").
    fn validate(&self, text: &str, start: usize, slot: usize, end: usize) -> Option<Resolved> {
        let s = &text[start..end];
        let (kind, form) = match &self.slots[slot] {
            Slot::Token => return Some(Resolved::Token(end)),
            Slot::Custom(name) => {
                return (end > start)
                    .then(|| Resolved::Found(Detected::Custom(name.clone()), start, end))
            }
            Slot::Builtin(k, f) => (*k, *f),
        };
        let (from, to) = span(kind, form, text, start, end, s)?;
        // `-p<password>` of a MySQL command line is the one value that
        // starts inside a word: what is left of it (`-p`) matches nothing.
        let mysql = kind == Kind::Password && form == 7;
        (mysql || within_words(text.as_bytes(), from, to)).then_some(Resolved::Found(
            Detected::Builtin(kind),
            from,
            to,
        ))
    }
}

/// What the pattern pass reports.
enum Hit {
    /// A finding.
    Found(Finding),
    /// A token the redactor wrote, at this span.
    Token(usize, usize),
}

/// What a match resolved to.
enum Resolved {
    /// A finding and its span.
    Found(Detected, usize, usize),
    /// A token the redactor wrote, ending here: skipped.
    Token(usize),
}

/// The span of the value a match of `kind` (form `form`) at `start..end`
/// stands for, if its validator accepts it. `s` is the match.
fn span(
    kind: Kind,
    form: usize,
    text: &str,
    start: usize,
    end: usize,
    s: &str,
) -> Option<(usize, usize)> {
    use crate::context::{self as cx, near};
    use crate::national_id as id;
    let whole = |ok: bool| ok.then_some((start, end));
    // A national id is a number of its own, not the start or end of a
    // longer grouped one (a card that failed Luhn is no Aadhaar).
    let b = text.as_bytes();
    let sep = |c: u8| matches!(c, b' ' | b'-' | b'.');
    let alone = end + 1 >= b.len() || !(sep(b[end]) && b[end + 1].is_ascii_digit());
    let alone = alone && (start < 2 || !(sep(b[start - 1]) && b[start - 2].is_ascii_digit()));
    let whole_id = |ok: bool| (ok && alone).then_some((start, end));
    let inner = |span: Option<(usize, usize)>| span.map(|(a, z)| (start + a, start + z));
    let prefix = |len: Option<usize>| len.map(|n| (start, start + n));
    match kind {
        Kind::Card => prefix(validate::card(s)),
        Kind::Iban => prefix(validate::iban(s)),
        // Nine bare digits right after a SIN cue are the Canadian number,
        // even with "SSN" further on ("Canadian SIN 648142305 and US SSN
        // ..."): left to the SIN pattern when they pass its Luhn check.
        Kind::Ssn => whole_id(
            validate::ssn(s)
                && (form == 0
                    || (near(text, start, end, cx::SSN)
                        && !(id::ca_sin(s) && cx::before_within(text, start, 16, cx::SIN)))),
        ),
        Kind::Phone => prefix(validate::phone(text, start, s, form)),
        Kind::Bearer => prefix(validate::bearer(s)),
        Kind::BasicAuth => prefix(crate::secret::basic_auth(s)),
        Kind::Ipv4 => whole(validate::ipv4(text, start, end)),
        Kind::Ipv6 => prefix(validate::ipv6(s).map(|(n, _)| n)),
        Kind::Email => validate::email(text, start, end),
        Kind::Password => match form {
            5..=7 => crate::secret::password_after(text, start, end, form - 5),
            _ => inner(match form {
                3 => crate::secret::password_pair(s, true),
                4 => crate::secret::password_pair(s, false),
                0 if !crate::secret::scheme_before(text, start) => None,
                _ => crate::secret::password(s),
            }),
        }
        .filter(|&(a, z)| {
            // `HF_TOKEN=hf_...` is an API key of a known provider: found as one.
            !API_KEY.as_ref().is_some_and(|re| {
                re.search(&Input::new(&text[a..z]).anchored(Anchored::Yes))
                    .is_some_and(|m| m.end() == z - a)
            })
        }),
        Kind::CloudSecret => inner(crate::secret::cloud_secret(s)),
        Kind::Passport => inner(validate::passport(s)),
        Kind::Dob => inner(crate::dob::dob(s)),
        Kind::Nino => whole(id::uk_nino(s)),
        Kind::DeTaxId => whole_id(
            id::de_tax_id(s) && (!id::is_compact(s) || near(text, start, end, cx::DE_TAX_ID)),
        ),
        Kind::FrNir => whole_id(id::fr_nir(s)),
        Kind::EsDni => whole_id(id::es_dni(s)),
        Kind::ItFiscalCode => whole(id::it_fiscal_code(s)),
        // Twelve bare digits are an Aadhaar number with a cue, or beside an
        // Indian PAN (a customer record: "Arjun Iyer,WJFPI4776O,921743203778").
        Kind::Aadhaar => whole_id(
            id::aadhaar(s)
                && (s.contains(' ')
                    || near(text, start, end, cx::AADHAAR)
                    || cx::token_near(text, start, end, id::in_pan)),
        ),
        Kind::InPan => whole(id::in_pan(s)),
        Kind::BrCpf => {
            whole_id(id::br_cpf(s) && (s.contains('.') || near(text, start, end, cx::CPF)))
        }
        Kind::CaSin => whole_id(id::ca_sin(s) && near(text, start, end, cx::SIN)),
        Kind::AbaRouting => whole_id(id::aba_routing(s) && near(text, start, end, cx::ABA)),
        Kind::Bic => whole(
            id::bic(s)
                && (near(text, start, end, cx::BIC) || after_iban(text, start))
                && !in_capitals(text, start, end, s),
        ),
        Kind::BtcAddress => whole(crate::crypto_address::btc(s)),
        Kind::EthAddress => whole(crate::crypto_address::eth(s)),
        Kind::AwsKey | Kind::ApiKey => whole(!crate::secret::key_placeholder(s)),
        Kind::Jwt | Kind::PrivateKey | Kind::WebhookUrl => Some((start, end)),
        Kind::Address | Kind::Person => None,
    }
}

/// Whether a valid IBAN ends right before `start` (a space, `(`, `,`, `/`
/// or `;` between them, at most three): the code after an account number
/// is its bank's BIC ("NL02 ASNB 8029 0724 33 (TRIONL2U)").
fn after_iban(text: &str, start: usize) -> bool {
    let b = text.as_bytes();
    let mut end = start;
    while end > 0 && start - end < 3 && matches!(b[end - 1], b' ' | b'(' | b',' | b'/' | b';') {
        end -= 1;
    }
    if end == start {
        return false;
    }
    (end.saturating_sub(42)..end.saturating_sub(14)).any(|i| {
        let starts = (i == 0 || !b[i - 1].is_ascii_alphanumeric())
            && b[i].is_ascii_uppercase()
            && b[i + 1].is_ascii_uppercase()
            && b[i + 2].is_ascii_digit()
            && b[i + 3].is_ascii_digit();
        starts
            && b[i..end]
                .iter()
                .all(|&c| c.is_ascii_alphanumeric() || c == b' ')
            && validate::iban(&text[i..end]) == Some(end - i)
    })
}

/// Whether a BIC candidate made only of letters stands in a run of words
/// written in capitals ("SWIFT CUSTOMER DETAILS"): such a word is a word,
/// not a code. The context words themselves ("BIC DEUTDEFF") do not count,
/// nor does a neighbour set off by punctuation ("SWIFT: DEUTDEFF").
fn in_capitals(text: &str, start: usize, end: usize, s: &str) -> bool {
    if !s.bytes().all(|c| c.is_ascii_alphabetic()) {
        return false;
    }
    let word = |w: &str| {
        w.len() >= 2
            && w.bytes().all(|c| c.is_ascii_uppercase())
            && !["BIC", "SWIFT", "IBAN", "CODE", "BANK"].contains(&w)
    };
    let before = text[..start].strip_suffix(' ').map(|t| {
        // The character before the word may be of several bytes ("café").
        let from = t
            .char_indices()
            .rev()
            .find(|(_, c)| !c.is_ascii_alphabetic())
            .map_or(0, |(i, c)| i + c.len_utf8());
        &t[from..]
    });
    let after = text[end..].strip_prefix(' ').map(|t| {
        let to = t
            .find(|c: char| !c.is_ascii_alphabetic())
            .unwrap_or(t.len());
        &t[..to]
    });
    before.is_some_and(word) || after.is_some_and(word)
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
        let t = "iban DE89 3704 0044 0532 0130 00 from 10.2.3.4 and 2001:db8::8a2e:370:7334 key AKIAJ7Q2R4T6V8X0Z3B5";
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
            "PLEASE CHECK THE SWIFT CUSTOMER DETAILS",
            "precio sin IVA 130 692 544",
            "build 2026 0917 1234 5678 9012",
            "the password is required and the new password must differ",
            "Ihr Passwort ist abgelaufen, bitte ändern",
            "mysql -h db -u reporting -p loans",
        ] {
            assert_eq!(kinds(t), vec![], "{t}");
        }
    }

    #[test]
    fn ids_told_apart_by_what_is_beside_them() {
        // A SIN cue right before wins over "SSN" further on.
        let t = "Canadian SIN 648142305 and US SSN 749-76-3568 both needed";
        assert_eq!(
            kinds(t),
            vec![
                ("ca_sin".into(), "648142305".into()),
                ("ssn".into(), "749-76-3568".into()),
            ]
        );
        // Without the cue it stays an SSN.
        let t = "SSN 648142305 on file";
        assert_eq!(kinds(t), vec![("ssn".into(), "648142305".into())]);
        // Twelve bare digits beside a PAN are an Aadhaar number; alone they
        // are not.
        let t = "Arjun Iyer,WJFPI4776O,921743203778,a.iyer@yahoo.co.in";
        assert!(kinds(t).contains(&("in_aadhaar".into(), "921743203778".into())));
        assert!(!kinds("ref 921743203778 filed")
            .iter()
            .any(|(k, _)| k == "in_aadhaar"));
        // The code in brackets after an IBAN is its bank's BIC; the same
        // word elsewhere is not.
        let t = "Refund to NL02 ASNB 8029 0724 33 (TRIONL2U).";
        assert!(kinds(t).contains(&("bic".into(), "TRIONL2U".into())));
        assert!(!kinds("Refund (TRIONL2U).").iter().any(|(k, _)| k == "bic"));
        // A passport number under a quoted key.
        let t = r#"{"passaporte": "C896653"}"#;
        assert_eq!(kinds(t), vec![("passport".into(), "C896653".into())]);
    }

    #[test]
    fn national_phone_numbers() {
        for (t, phone) in [
            ("Telemóvel: 22 021 0316", "22 021 0316"),
            ("Tlm. 218625181 | aline@example.pt", "218625181"),
            ("Cel.: 11914043244", "11914043244"),
            ("Abraço,\nLuiz\n48 3274-8828", "48 3274-8828"),
        ] {
            assert!(
                kinds(t).contains(&("phone".into(), phone.into())),
                "{t}: {:?}",
                kinds(t)
            );
        }
        // Without a phone word, nine bare digits are no phone.
        assert_eq!(kinds("Ticket 218625181 closed"), vec![]);
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
    fn prompts_as_users_write_them() {
        let found = |t: &str| kinds(t);
        assert_eq!(
            found("écrire à josé.garcía@ejemplo.es demain"),
            vec![("email".into(), "josé.garcía@ejemplo.es".into())],
            "an accented local part is never cut"
        );
        for t in [
            "git clone git@github.com:acme/ledger.git",
            "x = emb@self.proj.weight.T",
            "listening on 127.0.0.1:8080",
            "version 4.2.0.1 is out",
            "Aktenzeichen 0301 2345678 bitte angeben",
            "batch 123456789 processed",
            "card 4288 6129 9687 2380 declined",
            "passport renewal takes 6 weeks",
            "password=${DB_PASSWORD}",
        ] {
            assert_eq!(found(t), vec![], "{t}");
        }
        assert_eq!(
            found("Tél. 06 12 34 56 78 ou 07839589885"),
            vec![
                ("phone".into(), "06 12 34 56 78".into()),
                ("phone".into(), "07839589885".into())
            ]
        );
        assert_eq!(
            found("SSN 123456789, DOB: 14/03/1985, passport no. C01X00T47"),
            vec![
                ("ssn".into(), "123456789".into()),
                ("dob".into(), "14/03/1985".into()),
                ("passport".into(), "C01X00T47".into())
            ]
        );
        assert_eq!(
            found("postgres://app:S3cr3t!@db:5432/x and HF_TOKEN=hf_abcdefghijklmnopqrstuvwxyzABCDEFGH"),
            vec![
                ("password".into(), "S3cr3t!".into()),
                ("api_key".into(), "hf_abcdefghijklmnopqrstuvwxyzABCDEFGH".into())
            ]
        );
    }

    #[test]
    fn a_hostile_review_s_cases() {
        let found = |t: &str| kinds(t);
        // Panics before: a multi-byte character right before the value.
        assert_eq!(
            found("passeport n°12AB34567"),
            vec![("passport".into(), "12AB34567".into())]
        );
        assert_eq!(found("DE2337040044053201300\u{212A}1"), vec![]);
        // Corsican NIRs (python-stdnum's examples).
        assert_eq!(found("NIR 2 53 07 2A 073 004 43").len(), 1);
        // Everyday words and shapes that are no PII.
        for t in [
            "the payable to the bearer responsibilities",
            "Mozilla/5.0 Chrome/120.0.0.0 Safari/537.36",
            "pip install torch==2.1.0.1",
            "Termin am 05.03.2024 14.00 Uhr",
            "Kontonummer 0532 013000 bei der Sparkasse",
            "pedido 40000016 a nombre de la empresa",
            "Umsatz +12.345.678 EUR im Q3",
            "AWS account 2345-6789-0124",
            "password: reset",
        ] {
            assert_eq!(found(t), vec![], "{t}");
        }
        // Common ways of writing PII that were missed.
        for (t, kind, value) in [
            ("Tel. 0049 30 12345678", "phone", "0049 30 12345678"),
            ("DNI: 12.345.678-Z", "es_dni", "12.345.678-Z"),
            ("NINO: AB-12-34-56-C", "uk_nino", "AB-12-34-56-C"),
            (r#""password": "S3cr3tP@ss""#, "password", "S3cr3tP@ss"),
            ("password: hunter2!", "password", "hunter2!"),
            ("redis://:s3cr3tpass@redis:6379/0", "password", "s3cr3tpass"),
            ("DOB is 14/03/1985", "dob", "14/03/1985"),
            (r#""date_of_birth": "1985-03-14""#, "dob", "1985-03-14"),
            ("DOB: 14-Mar-1985", "dob", "14-Mar-1985"),
            ("Reisepass-Nr.: C01X00T47", "passport", "C01X00T47"),
            ("celular: (11) 98765-4321", "phone", "(11) 98765-4321"),
            (
                "leaked: jane@example.com:hunter2",
                "email",
                "jane@example.com",
            ),
            ("the SSNs 123456789 and 219099999", "ssn", "123456789"),
            (
                "Acct 12345678 4111111111111111 declined",
                "card",
                "4111111111111111",
            ),
            (
                "mailto:jane.doe%40example.com?subject=hi",
                "email",
                "jane.doe%40example.com",
            ),
            (
                "Tel.\u{a0}+44\u{a0}20\u{a0}7946\u{a0}0958",
                "phone",
                "+44\u{a0}20\u{a0}7946\u{a0}0958",
            ),
            (
                "IBAN DE89\u{a0}3704\u{a0}0044\u{a0}0532\u{a0}0130\u{a0}00",
                "iban",
                "DE89\u{a0}3704\u{a0}0044\u{a0}0532\u{a0}0130\u{a0}00",
            ),
            ("BIC DEUTDEFF for the transfer", "bic", "DEUTDEFF"),
            ("SWIFT café DEUTDEFF", "bic", "DEUTDEFF"),
            (
                "my password is 0BhB9J__UPhJ8X can you",
                "password",
                "0BhB9J__UPhJ8X",
            ),
            (
                "das Passwort für den SFTP-Zugang ist Cobalt16., läuft",
                "password",
                "Cobalt16.",
            ),
            (
                "set a temporary password I0e5z1jr2lOZEVC_ now",
                "password",
                "I0e5z1jr2lOZEVC_",
            ),
            (
                "mot de passe : tiger-winter-orion15 (à changer)",
                "password",
                "tiger-winter-orion15",
            ),
            (
                "usuario x y contraseña: Maple1584!",
                "password",
                "Maple1584!",
            ),
            (
                r#"{"password": "Yg$giCA7DzMGO."}"#,
                "password",
                "Yg$giCA7DzMGO.",
            ),
            (
                "mysql -h db -u reporting -pHarbor1268$ loans",
                "password",
                "Harbor1268$",
            ),
            ("SWIFT: COBADEFFXXX", "bic", "COBADEFFXXX"),
        ] {
            assert!(
                found(t).contains(&(kind.to_string(), value.to_string())),
                "{t}: {:?}",
                found(t)
            );
        }
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
