//! Reading typed fields out of a JSON object, with errors that name the path.

use std::borrow::Cow;

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::ident::{canonical, is_invisible, pii_in, Canon};
use crate::json::{Json, Members};
use crate::reject::{ReasonCode, RejectReason};

/// Longest identifier-like string (tags, names, ids) in bytes.
pub(crate) const MAX_NAME_BYTES: usize = 256;
/// Longest tag value (tenant, team, user, environment) in bytes.
pub(crate) const MAX_TAG_BYTES: usize = 128;
/// Longest free-text field (such as an output excerpt) in bytes.
pub(crate) const MAX_TEXT_BYTES: usize = 64 * 1024;

/// What a string field may contain.
#[derive(Clone, Copy)]
pub(crate) enum StrKind {
    /// An opaque name kept as sent (event `id`, `source`, `type`): non-empty,
    /// no control or invisible characters, no PII.
    Name(usize),
    /// An identifier made canonical as `Canon` says, then checked as a name.
    Ident(usize, Canon),
    /// Free text: may be empty and may hold newlines and tabs.
    Text(usize),
}

/// Reads the fields of one JSON object, remembering which keys were read so
/// that the rest can be refused or kept.
pub(crate) struct ObjectReader<'a> {
    obj: &'a Members<'a>,
    prefix: &'static str,
    used: Vec<&'a str>,
}

impl<'a> ObjectReader<'a> {
    /// A reader over `obj` whose paths start with `prefix` (empty for the envelope).
    pub(crate) fn new(obj: &'a Members<'a>, prefix: &'static str) -> Self {
        Self {
            obj,
            prefix,
            used: Vec::with_capacity(obj.entries().len()),
        }
    }

    /// The path of `key` for messages.
    pub(crate) fn path(&self, key: &str) -> String {
        if self.prefix.is_empty() {
            key.to_string()
        } else {
            format!("{}.{key}", self.prefix)
        }
    }

    /// A reason for `key`.
    pub(crate) fn reject(
        &self,
        key: &str,
        code: ReasonCode,
        msg: impl Into<String>,
    ) -> RejectReason {
        RejectReason::new(code, self.path(key), msg)
    }

    /// The value of `key`, marking it read; `null` counts as absent.
    pub(crate) fn opt(&mut self, key: &str) -> Option<&'a Json<'a>> {
        let obj: &'a Members<'a> = self.obj;
        let (k, v) = obj.entries().iter().rev().find(|(k, _)| k == key)?;
        self.used.push(k.as_ref());
        if matches!(v, Json::Null) {
            None
        } else {
            Some(v)
        }
    }

    /// Whether `key` is present and not `null`, without marking it read.
    pub(crate) fn has(&self, key: &str) -> bool {
        self.obj.get(key).is_some_and(|v| !matches!(v, Json::Null))
    }

    /// The value of `key`, which must be present.
    pub(crate) fn req(&mut self, key: &str) -> Result<&'a Json<'a>, RejectReason> {
        self.opt(key)
            .ok_or_else(|| self.reject(key, ReasonCode::MissingField, "is required"))
    }

    fn check_str(
        &self,
        key: &str,
        s: &'a str,
        kind: StrKind,
    ) -> Result<Cow<'a, str>, RejectReason> {
        let (max, canon) = match kind {
            StrKind::Name(max) => (max, Canon::AsSent),
            StrKind::Ident(max, canon) => (max, canon),
            StrKind::Text(max) => {
                self.check_len(key, s, max)?;
                let bad = |c: char| c.is_control() && !matches!(c, '\n' | '\r' | '\t');
                if s.chars().any(bad) {
                    return Err(self.reject(
                        key,
                        ReasonCode::ControlCharacters,
                        "must not contain control characters other than newlines and tabs",
                    ));
                }
                return Ok(Cow::Borrowed(s));
            }
        };
        // The raw length bounds the work of normalising; the canonical
        // length is what is stored.
        self.check_len(key, s, max)?;
        let s = canonical(s, canon);
        self.check_len(key, &s, max)?;
        if s.trim().is_empty() {
            return Err(self.reject(key, ReasonCode::Empty, "must not be empty or only spaces"));
        }
        if s.chars().any(char::is_control) {
            return Err(self.reject(
                key,
                ReasonCode::ControlCharacters,
                "must not contain control characters",
            ));
        }
        if !s.is_ascii() && s.chars().any(is_invisible) {
            return Err(self.reject(
                key,
                ReasonCode::InvisibleCharacters,
                "must not contain invisible or bidirectional-control characters (such as U+200B or U+202E): they make one name look like another",
            ));
        }
        // Opaque names are kept as sent, but checked in NFKC form too, so
        // that `alice＠example.com` is seen for what it is.
        if let Some(what) = pii_in(&canonical(&s, Canon::Nfkc)) {
            return Err(self.reject(
                key,
                ReasonCode::PiiInIdentifier,
                format!(
                    "holds what looks like {what}; identifiers are stored unredacted, so send a pseudonymous id (such as an internal user id) instead"
                ),
            ));
        }
        Ok(s)
    }

    fn check_len(&self, key: &str, s: &str, max: usize) -> Result<(), RejectReason> {
        if s.len() > max {
            return Err(self.reject(
                key,
                ReasonCode::TooLong,
                format!("must be at most {max} bytes, got {}", s.len()),
            ));
        }
        Ok(())
    }

    fn as_str(&self, key: &str, v: &'a Json<'a>) -> Result<&'a str, RejectReason> {
        v.as_str().ok_or_else(|| {
            self.reject(
                key,
                ReasonCode::WrongType,
                format!("must be a string, got {}", v.type_name()),
            )
        })
    }

    /// A required string.
    pub(crate) fn string(&mut self, key: &str, kind: StrKind) -> Result<String, RejectReason> {
        let v = self.req(key)?;
        let s = self.as_str(key, v)?;
        Ok(self.check_str(key, s, kind)?.into_owned())
    }

    /// An optional string.
    pub(crate) fn opt_string(
        &mut self,
        key: &str,
        kind: StrKind,
    ) -> Result<Option<String>, RejectReason> {
        match self.opt(key) {
            None => Ok(None),
            Some(v) => {
                let s = self.as_str(key, v)?;
                Ok(Some(self.check_str(key, s, kind)?.into_owned()))
            }
        }
    }

    /// A required tag (tenant, team, user, environment), made canonical as `canon` says.
    pub(crate) fn tag(&mut self, key: &str, canon: Canon) -> Result<String, RejectReason> {
        self.string(key, StrKind::Ident(MAX_TAG_BYTES, canon))
    }

    /// A required value from a closed set.
    pub(crate) fn one_of<T: Copy>(
        &mut self,
        key: &str,
        all: &[T],
        name: fn(T) -> &'static str,
    ) -> Result<T, RejectReason> {
        let v = self.req(key)?;
        self.one_of_value(key, v, all, name)
    }

    fn one_of_value<T: Copy>(
        &self,
        key: &str,
        v: &'a Json<'a>,
        all: &[T],
        name: fn(T) -> &'static str,
    ) -> Result<T, RejectReason> {
        let s = self.as_str(key, v)?;
        all.iter().copied().find(|t| name(*t) == s).ok_or_else(|| {
            let allowed: Vec<&str> = all.iter().map(|t| name(*t)).collect();
            self.reject(
                key,
                ReasonCode::InvalidValue,
                format!("must be one of {}", allowed.join(", ")),
            )
        })
    }

    /// A required RFC 3339 timestamp, converted to UTC.
    pub(crate) fn timestamp(&mut self, key: &str) -> Result<DateTime<Utc>, RejectReason> {
        let v = self.req(key)?;
        let s = self.as_str(key, v)?;
        parse_timestamp(s).ok_or_else(|| {
            self.reject(
                key,
                ReasonCode::InvalidTimestamp,
                "must be an RFC 3339 timestamp such as 2026-11-03T14:05:00Z",
            )
        })
    }

    fn number(&self, key: &str, v: &'a Json<'a>) -> Result<f64, RejectReason> {
        match v {
            Json::Number(n) => n
                .as_f64()
                .ok_or_else(|| self.reject(key, ReasonCode::NotFinite, "must be a finite number")),
            Json::Str(s)
                if matches!(
                    s.trim().to_ascii_lowercase().as_str(),
                    "nan" | "inf" | "+inf" | "-inf" | "infinity" | "+infinity" | "-infinity"
                ) =>
            {
                Err(self.reject(
                    key,
                    ReasonCode::NotFinite,
                    "must be a finite number, got NaN or infinity",
                ))
            }
            other => Err(self.reject(
                key,
                ReasonCode::WrongType,
                format!("must be a number, got {}", other.type_name()),
            )),
        }
    }

    /// An optional non-negative finite number, at most `max`.
    pub(crate) fn opt_non_negative(
        &mut self,
        key: &str,
        max: f64,
    ) -> Result<Option<f64>, RejectReason> {
        let Some(v) = self.opt(key) else {
            return Ok(None);
        };
        let x = self.number(key, v)?;
        if !x.is_finite() {
            return Err(self.reject(key, ReasonCode::NotFinite, "must be a finite number"));
        }
        if x < 0.0 {
            return Err(self.reject(
                key,
                ReasonCode::Negative,
                format!("must not be negative, got {}", shown(x)),
            ));
        }
        if x > max {
            return Err(self.reject(
                key,
                ReasonCode::OutOfRange,
                format!("must be at most {max}, got {}", shown(x)),
            ));
        }
        Ok(Some(x))
    }

    /// An optional whole number in `min..=max`. A whole number written as a
    /// float (`8.0`, `1e2`, `-0`) is accepted, as Python and Java write them.
    pub(crate) fn opt_integer(
        &mut self,
        key: &str,
        min: u64,
        max: u64,
    ) -> Result<Option<u64>, RejectReason> {
        let Some(v) = self.opt(key) else {
            return Ok(None);
        };
        let out_of_range = |got: String| {
            self.reject(
                key,
                ReasonCode::OutOfRange,
                format!("must be {min}..={max}, got {got}"),
            )
        };
        if let Some(n) = v.as_u64() {
            return if n < min || n > max {
                Err(out_of_range(shown(n as f64)))
            } else {
                Ok(Some(n))
            };
        }
        let x = self.number(key, v)?;
        if x < 0.0 {
            return Err(self.reject(
                key,
                ReasonCode::Negative,
                format!("must not be negative, got {}", shown(x)),
            ));
        }
        if x.fract() != 0.0 {
            return Err(self.reject(
                key,
                ReasonCode::NotInteger,
                format!("must be a whole number, got {}", shown(x)),
            ));
        }
        // Whole and not negative (`-0` included); exact below 2^53, and
        // every limit is far below that.
        if x < min as f64 || x > max as f64 {
            return Err(out_of_range(shown(x)));
        }
        Ok(Some(x as u64))
    }

    /// A required whole number in `min..=max`.
    pub(crate) fn integer(&mut self, key: &str, min: u64, max: u64) -> Result<u64, RejectReason> {
        if !self.has(key) {
            self.req(key)?;
        }
        self.opt_integer(key, min, max)?
            .ok_or_else(|| self.reject(key, ReasonCode::MissingField, "is required"))
    }

    /// An optional value of any JSON type.
    pub(crate) fn opt_any(&mut self, key: &str) -> Option<Value> {
        self.opt(key).map(Json::to_value)
    }

    /// The keys that were never read, with their 1-based position in the
    /// object's sorted keys (for naming a key without quoting it), in that
    /// order. A key sent twice counts once, with its last value, as in a
    /// `serde_json::Map`. One sort: an object of many keys (a hostile event
    /// may hold tens of thousands) costs n log n, as a map would.
    pub(crate) fn unread(&self) -> Vec<(usize, &'a str, &'a Json<'a>)> {
        let obj: &'a Members<'a> = self.obj;
        let members = obj.entries();
        // The common case, every key read, needs no sort (the keys read are
        // a few dozen at most, however many the object has).
        if members.iter().all(|(k, _)| self.used.contains(&k.as_ref())) {
            return Vec::new();
        }
        // By key; a stable sort keeps a repeated key's members in the
        // text's order, so the last of each run is the one that counts.
        let mut order: Vec<usize> = (0..members.len()).collect();
        order.sort_by(|&a, &b| members[a].0.cmp(&members[b].0));
        let mut out = Vec::new();
        let mut position = 0;
        for (n, &i) in order.iter().enumerate() {
            let (k, v) = &members[i];
            if order.get(n + 1).is_some_and(|&next| members[next].0 == *k) {
                continue;
            }
            position += 1;
            let k: &'a str = k.as_ref();
            if !self.used.contains(&k) {
                out.push((position, k, v));
            }
        }
        out
    }
}

/// A number as a refusal may show it: a short one (at most 6 significant
/// digits, such as `1025`, `-5` or `12.5`) as it is; any other (which might
/// be a phone or card number sent in the wrong field, even with a decimal
/// point in it) only by its shape.
pub(crate) fn shown(x: f64) -> String {
    let text = format!("{x}");
    let digits = text
        .trim_start_matches(['-', '0', '.'])
        .bytes()
        .filter(u8::is_ascii_digit)
        .count();
    if digits <= 6 && !text.contains('e') {
        text
    } else if !x.is_finite() || x.abs() >= 1e300 {
        "a number too large to represent".to_string()
    } else if x.fract() == 0.0 {
        format!("a number of {} digits", x.abs().log10().floor() as i64 + 1)
    } else {
        "a number with a fraction".to_string()
    }
}

/// Parses an RFC 3339 timestamp into UTC.
pub(crate) fn parse_timestamp(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}
