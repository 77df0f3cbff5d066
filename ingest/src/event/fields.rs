//! Reading typed fields out of a JSON object, with errors that name the path.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

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
    /// A name or identifier: non-empty, no control characters.
    Name(usize),
    /// Free text: may be empty and may hold newlines and tabs.
    Text(usize),
}

/// Reads the fields of one JSON object, remembering which keys were read so
/// that the rest can be refused or kept.
pub(crate) struct ObjectReader<'a> {
    obj: &'a Map<String, Value>,
    prefix: &'static str,
    used: Vec<&'a str>,
}

/// JSON type name for messages.
pub(crate) fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

impl<'a> ObjectReader<'a> {
    /// A reader over `obj` whose paths start with `prefix` (empty for the envelope).
    pub(crate) fn new(obj: &'a Map<String, Value>, prefix: &'static str) -> Self {
        Self {
            obj,
            prefix,
            used: Vec::with_capacity(obj.len()),
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
    pub(crate) fn opt(&mut self, key: &str) -> Option<&'a Value> {
        let (k, v) = self.obj.get_key_value(key)?;
        self.used.push(k.as_str());
        if v.is_null() {
            None
        } else {
            Some(v)
        }
    }

    /// Whether `key` is present and not `null`, without marking it read.
    pub(crate) fn has(&self, key: &str) -> bool {
        self.obj.get(key).is_some_and(|v| !v.is_null())
    }

    /// The value of `key`, which must be present.
    pub(crate) fn req(&mut self, key: &str) -> Result<&'a Value, RejectReason> {
        self.opt(key)
            .ok_or_else(|| self.reject(key, ReasonCode::MissingField, "is required"))
    }

    fn check_str(&self, key: &str, s: &'a str, kind: StrKind) -> Result<&'a str, RejectReason> {
        let (max, name) = match kind {
            StrKind::Name(max) => (max, true),
            StrKind::Text(max) => (max, false),
        };
        if name && s.trim().is_empty() {
            return Err(self.reject(key, ReasonCode::Empty, "must not be empty"));
        }
        if s.len() > max {
            return Err(self.reject(
                key,
                ReasonCode::TooLong,
                format!("must be at most {max} bytes, got {}", s.len()),
            ));
        }
        let bad = |c: char| c.is_control() && (name || !matches!(c, '\n' | '\r' | '\t'));
        if s.chars().any(bad) {
            return Err(self.reject(
                key,
                ReasonCode::ControlCharacters,
                "must not contain control characters",
            ));
        }
        Ok(s)
    }

    fn as_str(&self, key: &str, v: &'a Value) -> Result<&'a str, RejectReason> {
        v.as_str().ok_or_else(|| {
            self.reject(
                key,
                ReasonCode::WrongType,
                format!("must be a string, got {}", type_name(v)),
            )
        })
    }

    /// A required string.
    pub(crate) fn string(&mut self, key: &str, kind: StrKind) -> Result<String, RejectReason> {
        let v = self.req(key)?;
        let s = self.as_str(key, v)?;
        Ok(self.check_str(key, s, kind)?.to_owned())
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
                Ok(Some(self.check_str(key, s, kind)?.to_owned()))
            }
        }
    }

    /// A required tag (tenant, team, user, environment).
    pub(crate) fn tag(&mut self, key: &str) -> Result<String, RejectReason> {
        self.string(key, StrKind::Name(MAX_TAG_BYTES))
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
        v: &'a Value,
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

    fn number(&self, key: &str, v: &'a Value) -> Result<f64, RejectReason> {
        match v {
            Value::Number(n) => n
                .as_f64()
                .ok_or_else(|| self.reject(key, ReasonCode::NotFinite, "must be a finite number")),
            Value::String(s)
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
                format!("must be a number, got {}", type_name(other)),
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
                format!("must not be negative, got {x}"),
            ));
        }
        if x > max {
            return Err(self.reject(
                key,
                ReasonCode::OutOfRange,
                format!("must be at most {max}, got {x}"),
            ));
        }
        Ok(Some(x))
    }

    /// An optional whole number in `min..=max`.
    pub(crate) fn opt_integer(
        &mut self,
        key: &str,
        min: u64,
        max: u64,
    ) -> Result<Option<u64>, RejectReason> {
        let Some(v) = self.opt(key) else {
            return Ok(None);
        };
        if let Some(n) = v.as_u64() {
            return if n < min || n > max {
                Err(self.reject(
                    key,
                    ReasonCode::OutOfRange,
                    format!("must be {min}..={max}, got {n}"),
                ))
            } else {
                Ok(Some(n))
            };
        }
        if let Some(n) = v.as_i64() {
            return Err(self.reject(
                key,
                ReasonCode::Negative,
                format!("must not be negative, got {n}"),
            ));
        }
        let x = self.number(key, v)?;
        if x < 0.0 {
            return Err(self.reject(
                key,
                ReasonCode::Negative,
                format!("must not be negative, got {x}"),
            ));
        }
        if x.fract() != 0.0 {
            return Err(self.reject(
                key,
                ReasonCode::NotInteger,
                format!("must be a whole number, got {x}"),
            ));
        }
        Err(self.reject(
            key,
            ReasonCode::OutOfRange,
            format!("must be {min}..={max}, got {x}"),
        ))
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
        self.opt(key).cloned()
    }

    /// The keys that were never read, in the object's order.
    pub(crate) fn unread(&self) -> impl Iterator<Item = (&'a String, &'a Value)> + '_ {
        self.obj
            .iter()
            .filter(move |(k, _)| !self.used.contains(&k.as_str()))
    }
}

/// Parses an RFC 3339 timestamp into UTC.
pub(crate) fn parse_timestamp(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}
