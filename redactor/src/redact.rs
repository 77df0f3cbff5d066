//! The redactor: detectors, keys and policy together. Text, JSON and whole
//! events go in; the same with every finding replaced by its token comes out.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use serde_json::{Map, Value};
use tollgate_event::{Event, EventBody};

use crate::config::RedactionConfig;
use crate::detect::{CustomPattern, Engine};
use crate::keys::{KeyStore, TenantKey};
use crate::kind::Kind;
use crate::token::{normalise, token};
use crate::Error;
use tollgate_storage::StorageConfig;

/// Findings replaced, by kind name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counts(pub BTreeMap<String, u64>);

impl Counts {
    /// Adds one finding of `kind`.
    pub fn add(&mut self, kind: &str) {
        *self.0.entry(kind.to_string()).or_default() += 1;
    }

    /// Adds all of `other`.
    pub fn merge(&mut self, other: &Counts) {
        for (k, v) in &other.0 {
            *self.0.entry(k.clone()).or_default() += v;
        }
    }

    /// Total findings.
    pub fn total(&self) -> u64 {
        self.0.values().sum()
    }
}

/// What redacting an event did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventRedaction {
    /// The key id the tokens were made with (stored beside the row).
    pub key_id: String,
    /// Findings by kind.
    pub counts: Counts,
}

/// Which event fields are user content.
#[derive(Debug, Clone)]
struct Policy {
    arguments: bool,
    output_excerpt: bool,
    unknown_fields: bool,
}

/// The redactor.
pub struct Redactor {
    keys: KeyStore,
    base: Arc<Engine>,
    per_tenant: HashMap<String, Arc<Engine>>,
    policy: Policy,
}

/// Shortest run of digits in a JSON number worth checking (an SSN has 9).
const MIN_NUMBER_DIGITS: usize = 9;

impl Redactor {
    /// Checks `[redaction]` (detector names, policy fields, custom
    /// patterns) without touching the key store.
    pub fn check(config: &RedactionConfig) -> Result<(), Error> {
        compile(config).map(|_| ())
    }

    /// Builds the redactor from `[redaction]`, with its key store in
    /// `storage` (see [`crate::keys`] for the master key). A key file of
    /// earlier versions (`redaction.key_store`, default `keys.json` in the
    /// data directory) is moved into the storage first.
    pub fn new(config: &RedactionConfig, storage: &StorageConfig) -> Result<Self, Error> {
        let (base, per_tenant, policy) = compile(config)?;
        let master = crate::keys::master_key(config.master_key.as_ref(), storage)?;
        let keys = KeyStore::open(storage, master, &config.keys)?;
        let legacy = match &config.key_store {
            Some(p) if p.is_absolute() => p.clone(),
            Some(p) => storage.data_dir.join(p),
            None => storage.data_dir.join("keys.json"),
        };
        if legacy.is_file() {
            let (imported, skipped) = keys.import_file(&legacy)?;
            eprintln!(
                "moved the tenant keys of {} into {} ({} tenant(s)){}",
                legacy.display(),
                keys.description(),
                imported.len(),
                if skipped.is_empty() {
                    String::new()
                } else {
                    format!(
                        "; kept the keys already there for {} (their old keys are in {}.imported)",
                        skipped.join(", "),
                        legacy.display()
                    )
                }
            );
        }
        Ok(Self {
            keys,
            base,
            per_tenant,
            policy,
        })
    }

    /// The key store.
    pub fn keys(&self) -> &KeyStore {
        &self.keys
    }

    /// The detectors that apply to `tenant`.
    pub fn engine(&self, tenant: &str) -> &Engine {
        self.per_tenant.get(tenant).unwrap_or(&self.base)
    }

    /// The token of `value` as `kind` for `tenant` (its active key, or the
    /// key `key_id` for data redacted before a rotation).
    pub fn token_for(
        &self,
        tenant: &str,
        kind: &str,
        value: &str,
        key_id: Option<&str>,
    ) -> Result<String, Error> {
        let key = match key_id {
            Some(id) => self.keys.key_by_id(tenant, id)?,
            None => self.keys.key_for(tenant)?,
        };
        Ok(token(key.bytes(), kind, &normalise(kind, value)))
    }

    /// Redacts free text for `tenant`.
    pub fn redact_text<'t>(
        &self,
        tenant: &str,
        text: &'t str,
    ) -> Result<(Cow<'t, str>, EventRedaction), Error> {
        let key = self.keys.key_for(tenant)?;
        let mut counts = Counts::default();
        let out = redact_with(self.engine(tenant), &key, text, &mut counts);
        Ok((
            out,
            EventRedaction {
                key_id: key.id,
                counts,
            },
        ))
    }

    /// Redacts a refused record's payload, which may not be JSON at all.
    /// Valid JSON has its strings redacted after parsing (so escapes such
    /// as `\u0040` are read as the characters they stand for) and is
    /// written back compactly; anything else is read with its JSON escapes
    /// resolved before it is scanned, so that an escape cannot hide an
    /// address either.
    pub fn redact_payload(
        &self,
        tenant: &str,
        payload: &[u8],
    ) -> Result<(String, EventRedaction), Error> {
        if let Ok(mut value) = serde_json::from_slice::<Value>(payload) {
            let outcome = self.redact_json(tenant, &mut value)?;
            if let Ok(text) = serde_json::to_string(&value) {
                return Ok((text, outcome));
            }
        }
        let text = String::from_utf8_lossy(payload);
        let text = unescape_json(&text);
        let (out, outcome) = self.redact_text(tenant, &text)?;
        Ok((out.into_owned(), outcome))
    }

    /// Redacts every string (values and keys) of a JSON value in place, and
    /// numbers that are PII as a whole (a card number sent as a number
    /// becomes its token, a string). The JSON stays valid.
    pub fn redact_json(&self, tenant: &str, value: &mut Value) -> Result<EventRedaction, Error> {
        let key = self.keys.key_for(tenant)?;
        let mut counts = Counts::default();
        redact_value(self.engine(tenant), &key, value, &mut counts);
        Ok(EventRedaction {
            key_id: key.id,
            counts,
        })
    }

    /// Redacts the user-content fields of `event` under its tenant's key, as
    /// the policy says: tool-call arguments and output excerpts, and fields
    /// of a newer minor version.
    pub fn redact_event(&self, event: &mut Event) -> Result<EventRedaction, Error> {
        let key = self.keys.key_for(&event.tags.tenant)?;
        let engine = self.engine(&event.tags.tenant);
        let mut counts = Counts::default();
        if let EventBody::ToolCall(call) = &mut event.body {
            if self.policy.arguments {
                if let Some(args) = &mut call.arguments {
                    redact_value(engine, &key, args, &mut counts);
                }
            }
            if self.policy.output_excerpt {
                if let Some(text) = &mut call.output_excerpt {
                    if let Cow::Owned(s) = redact_with(engine, &key, text, &mut counts) {
                        *text = s;
                    }
                }
            }
        }
        // Extension attributes are free-form: their values (strings, and
        // numbers that are PII as a whole) pass through the detectors, all
        // but a W3C `traceparent` of its exact form (hexadecimal ids,
        // nothing else: every event of a traced producer has one).
        for (name, value) in event.envelope.extensions.iter_mut() {
            if name == "traceparent" && value.as_str().is_some_and(w3c_traceparent) {
                continue;
            }
            redact_value(engine, &key, value, &mut counts);
        }
        if self.policy.unknown_fields && !event.extra.is_empty() {
            let mut extra = Value::Object(std::mem::take(&mut event.extra));
            redact_value(engine, &key, &mut extra, &mut counts);
            if let Value::Object(m) = extra {
                event.extra = m;
            }
        }
        Ok(EventRedaction {
            key_id: key.id,
            counts,
        })
    }
}

impl Redactor {
    /// Redacts a JSON value with a given engine and key; returns it encoded.
    pub(crate) fn redact_json_with(
        &self,
        engine: &Engine,
        key: &TenantKey,
        value: &mut Value,
        counts: &mut Counts,
    ) -> Option<String> {
        redact_value(engine, key, value, counts);
        serde_json::to_string(value).ok()
    }
}

type Compiled = (Arc<Engine>, HashMap<String, Arc<Engine>>, Policy);

/// The engines (shared and per tenant with custom patterns) and the policy.
fn compile(config: &RedactionConfig) -> Result<Compiled, Error> {
    let kind_named = |field: &str, name: &str| {
        Kind::from_name(name).ok_or_else(|| {
            let all: Vec<&str> = Kind::ALL.iter().map(|k| k.as_str()).collect();
            Error::Config(format!(
                "{field}: unknown detector {name:?}; known: {}",
                all.join(", ")
            ))
        })
    };
    let mut enabled = Vec::new();
    for name in &config.detectors {
        enabled.push(kind_named("redaction.detectors", name)?);
    }
    let mut policy = Policy {
        arguments: false,
        output_excerpt: false,
        unknown_fields: config.policy.unknown_fields,
    };
    for f in &config.policy.tool_call {
        match f.as_str() {
                "arguments" => policy.arguments = true,
                "output_excerpt" => policy.output_excerpt = true,
                other => {
                    return Err(Error::Config(format!(
                        "redaction.policy.tool_call: {other:?} is not a user-content field (arguments, output_excerpt); identifiers and infrastructure fields are never redacted"
                    )))
                }
            }
    }
    if let Some(f) = config.policy.gpu_usage.first() {
        return Err(Error::Config(format!(
                "redaction.policy.gpu_usage: {f:?} is not a user-content field; GPU usage events hold none"
            )));
    }
    let custom_for = |tenant: Option<&str>| -> Vec<CustomPattern> {
        config
            .custom
            .iter()
            .filter(|c| c.tenant == "*" || Some(c.tenant.as_str()) == tenant)
            .map(|c| CustomPattern {
                name: c.name.clone(),
                pattern: c.pattern.clone(),
            })
            .collect()
    };
    // Each tenant's kinds: the shared list, with its own switched on or off.
    let mut kinds_for: HashMap<String, Vec<Kind>> = HashMap::new();
    for (tenant, t) in &config.tenants {
        let mut kinds = enabled.clone();
        for name in &t.enable {
            let kind = kind_named(&format!("redaction.tenants.{tenant}.enable"), name)?;
            if !kinds.contains(&kind) {
                kinds.push(kind);
            }
        }
        for name in &t.disable {
            let kind = kind_named(&format!("redaction.tenants.{tenant}.disable"), name)?;
            kinds.retain(|k| *k != kind);
        }
        kinds.sort();
        kinds_for.insert(tenant.clone(), kinds);
    }
    let base = Engine::shared(&enabled, &custom_for(None))?;
    let mut per_tenant = HashMap::new();
    let tenants = config
        .custom
        .iter()
        .filter(|c| c.tenant != "*")
        .map(|c| &c.tenant)
        .chain(config.tenants.keys());
    for tenant in tenants {
        if !per_tenant.contains_key(tenant) {
            let kinds = kinds_for.get(tenant).unwrap_or(&enabled);
            per_tenant.insert(
                tenant.clone(),
                Engine::shared(kinds, &custom_for(Some(tenant)))?,
            );
        }
    }
    Ok((base, per_tenant, policy))
}

/// Most passes over one text; each pass turns text into tokens, which are
/// skipped, so the loop ends long before this in practice.
const MAX_PASSES: usize = 8;

/// Replaces each finding in `text` with its token, and repeats on the
/// result until nothing more is found. Replacing a value changes the context
/// its neighbours are matched in (an IPv6 prefix that ran into an email is
/// complete once the email is a token), so one pass is not always a
/// fixpoint; repeating makes redacting twice equal redacting once. Clean
/// text costs one scan.
pub(crate) fn redact_with<'t>(
    engine: &Engine,
    key: &TenantKey,
    text: &'t str,
    counts: &mut Counts,
) -> Cow<'t, str> {
    let redacted = redact_passes(engine, key, text, counts);
    // Text that holds JSON escapes (a JSON document sent as a string, or
    // escaped twice) may hide PII behind them: the escapes are resolved,
    // up to three levels, and if that reveals anything, the resolved text
    // is what is kept, redacted.
    if !redacted.contains('\\') {
        return redacted;
    }
    let mut resolved = redacted.clone().into_owned();
    for _ in 0..MAX_UNESCAPE_LEVELS {
        let next = match unescape_json(&resolved) {
            Cow::Borrowed(_) => break,
            Cow::Owned(n) => n,
        };
        let mut found = Counts::default();
        let cleaned = redact_passes(engine, key, &next, &mut found);
        if found.total() > 0 {
            counts.merge(&found);
            return Cow::Owned(cleaned.into_owned());
        }
        resolved = next;
    }
    redacted
}

/// Levels of JSON escaping [`redact_with`] looks through.
const MAX_UNESCAPE_LEVELS: usize = 3;

/// Redaction passes until nothing more is found.
fn redact_passes<'t>(
    engine: &Engine,
    key: &TenantKey,
    text: &'t str,
    counts: &mut Counts,
) -> Cow<'t, str> {
    let mut current = match redact_once(engine, key, text, counts) {
        Cow::Borrowed(b) => return Cow::Borrowed(b),
        Cow::Owned(s) => s,
    };
    for _ in 1..MAX_PASSES {
        match redact_once(engine, key, &current, counts) {
            Cow::Borrowed(_) => break,
            Cow::Owned(s) => current = s,
        }
    }
    Cow::Owned(current)
}

/// `text` with its JSON string escapes resolved (`\u0040` to `@`, `\/` to
/// `/`, surrogate pairs joined; a lone surrogate becomes U+FFFD). Anything
/// that is not an escape is kept as it is.
pub(crate) fn unescape_json(text: &str) -> Cow<'_, str> {
    if !text.contains('\\') {
        return Cow::Borrowed(text);
    }
    fn hex4(s: &str) -> Option<u32> {
        let h = s.get(..4)?;
        if h.bytes().all(|b| b.is_ascii_hexdigit()) {
            u32::from_str_radix(h, 16).ok()
        } else {
            None
        }
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find('\\') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let mut chars = after.chars();
        let (decoded, used) = match chars.next() {
            Some('u') => match hex4(&after[1..]) {
                Some(hi @ 0xD800..=0xDBFF) => {
                    let lo = after
                        .get(5..7)
                        .filter(|p| *p == "\\u")
                        .and_then(|_| hex4(&after[7..]))
                        .filter(|lo| (0xDC00..=0xDFFF).contains(lo));
                    match lo {
                        Some(lo) => (
                            char::from_u32(0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)),
                            11,
                        ),
                        None => (Some('\u{FFFD}'), 5),
                    }
                }
                Some(cp) => (Some(char::from_u32(cp).unwrap_or('\u{FFFD}')), 5),
                None => (None, 0),
            },
            Some('"') => (Some('"'), 1),
            Some('\\') => (Some('\\'), 1),
            Some('/') => (Some('/'), 1),
            Some('b') => (Some('\u{8}'), 1),
            Some('f') => (Some('\u{c}'), 1),
            Some('n') => (Some('\n'), 1),
            Some('r') => (Some('\r'), 1),
            Some('t') => (Some('\t'), 1),
            _ => (None, 0),
        };
        match decoded {
            Some(c) => {
                out.push(c);
                rest = &after[used..];
            }
            None => {
                out.push('\\');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    Cow::Owned(out)
}

/// One pass: each finding replaced with its token.
fn redact_once<'t>(
    engine: &Engine,
    key: &TenantKey,
    text: &'t str,
    counts: &mut Counts,
) -> Cow<'t, str> {
    let mut out: Option<String> = None;
    let mut last = 0;
    engine.scan(text, |f| {
        let buf = out.get_or_insert_with(|| String::with_capacity(text.len() + 16));
        buf.push_str(&text[last..f.start]);
        let kind = f.kind.name();
        buf.push_str(&token(
            key.bytes(),
            kind,
            &normalise(kind, &text[f.start..f.end]),
        ));
        counts.add(kind);
        last = f.end;
    });
    match out {
        None => Cow::Borrowed(text),
        Some(mut s) => {
            s.push_str(&text[last..]);
            Cow::Owned(s)
        }
    }
}

/// Whether `s` is a W3C Trace Context `traceparent` of version 00:
/// `00-<32 hex>-<16 hex>-<2 hex>`, lower case.
fn w3c_traceparent(s: &str) -> bool {
    let hex = |p: &str, n: usize| {
        p.len() == n
            && p.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    let mut parts = s.split('-');
    let mut next = |n: usize| parts.next().is_some_and(|p| hex(p, n));
    let shaped = next(2) && next(32) && next(16) && next(2);
    shaped && s.starts_with("00-") && s.len() == 55
}

fn redact_value(engine: &Engine, key: &TenantKey, value: &mut Value, counts: &mut Counts) {
    redact_field(engine, key, None, value, counts)
}

/// The words of a JSON key as context for its value: `customer_name`,
/// `customerName` and `customer-name` all read "customer name: ".
fn key_context(field: &str) -> Option<String> {
    let mut out = String::with_capacity(field.len() + 8);
    let mut prev_lower = false;
    for c in field.chars() {
        if c == '_' || c == '-' || c == '.' {
            out.push(' ');
            prev_lower = false;
        } else if c.is_alphabetic() {
            if c.is_uppercase() && prev_lower {
                out.push(' ');
            }
            out.push(c);
            prev_lower = c.is_lowercase();
        } else {
            return None;
        }
    }
    let words = out.trim();
    // A bare `name` names anything (a tool, a file, a plan): no context.
    let useful = !words.is_empty() && words.len() <= 64 && !words.eq_ignore_ascii_case("name");
    useful.then(|| format!("{words}: "))
}

/// Redacts a string value, read after its key's words so that the key is
/// context (`{"ssn": "123456789"}`, `{"date_of_birth": "1985-03-14"}`,
/// `{"first_name": "June"}`).
fn redact_keyed_string(
    engine: &Engine,
    key: &TenantKey,
    field: Option<&str>,
    s: &str,
    counts: &mut Counts,
) -> Option<String> {
    if let Some(ctx) = field.and_then(key_context) {
        let joined = format!("{ctx}{s}");
        let mut found = Counts::default();
        let redacted = redact_with(engine, key, &joined, &mut found);
        if let Some(rest) = redacted.strip_prefix(ctx.as_str()) {
            if found.total() == 0 {
                return None;
            }
            counts.merge(&found);
            return Some(rest.to_string());
        }
        // A finding ran into the key's words: the value on its own.
    }
    match redact_with(engine, key, s, counts) {
        Cow::Owned(r) => Some(r),
        Cow::Borrowed(_) => None,
    }
}

fn redact_field(
    engine: &Engine,
    key: &TenantKey,
    field: Option<&str>,
    value: &mut Value,
    counts: &mut Counts,
) {
    match value {
        Value::String(s) => {
            if let Some(r) = redact_keyed_string(engine, key, field, s, counts) {
                *s = r;
            }
        }
        Value::Array(items) => {
            for v in items {
                redact_field(engine, key, field, v, counts);
            }
        }
        Value::Object(map) => {
            let needs_key_redaction = map.keys().any(|k| !engine.find(k).is_empty());
            if needs_key_redaction {
                let old = std::mem::take(map);
                let mut new = Map::with_capacity(old.len());
                for (k, v) in old {
                    let k = redact_with(engine, key, &k, counts).into_owned();
                    new.insert(k, v);
                }
                *map = new;
            }
            for (k, v) in map.iter_mut() {
                redact_field(engine, key, Some(k), v, counts);
            }
        }
        Value::Number(n) => {
            // A whole number written as a float (`4111111111111111.0`,
            // `4.111111111111111e15`) is read as the integer it is.
            let s = match n.as_f64() {
                Some(x) if n.is_f64() && x.fract() == 0.0 && x.abs() < 1e19 => {
                    format!("{}", x as i128)
                }
                _ => n.to_string(),
            };
            let unsigned = s.trim_start_matches('-');
            if unsigned.bytes().filter(u8::is_ascii_digit).count() >= MIN_NUMBER_DIGITS {
                // Read after the key's words: `{"ssn": 123456789}`.
                let ctx = field.and_then(key_context).unwrap_or_default();
                let joined = format!("{ctx}{unsigned}");
                let at = ctx.len();
                let findings: Vec<_> = engine
                    .find(&joined)
                    .into_iter()
                    .filter(|f| f.end > at)
                    .collect();
                if let [f] = findings.as_slice() {
                    if f.start == at && f.end == joined.len() {
                        let kind = f.kind.name();
                        counts.add(kind);
                        *value =
                            Value::String(token(key.bytes(), kind, &normalise(kind, unsigned)));
                    }
                }
            }
        }
        Value::Null | Value::Bool(_) => {}
    }
}
