//! Why an event was refused: a stable code, the field path and a sentence.

use std::fmt;

use serde::Serialize;

/// The kind of problem found in an event. The snake_case name is stable: it
/// is stored with dead letters and used as a metric label, so it never
/// carries a value from the event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ReasonCode {
    /// The bytes are not UTF-8.
    NotUtf8,
    /// The bytes are not valid JSON.
    InvalidJson,
    /// The JSON value at this path is not an object.
    NotAnObject,
    /// The encoded event is larger than the configured limit.
    TooLarge,
    /// A required attribute or field is absent (or `null`).
    MissingField,
    /// The field has the wrong JSON type.
    WrongType,
    /// A string that must say something is empty.
    Empty,
    /// A string is longer than its limit.
    TooLong,
    /// A string holds control characters.
    ControlCharacters,
    /// `specversion` is not `1.0`.
    UnsupportedSpecversion,
    /// `type` is not a Tollgate event type.
    UnknownType,
    /// `type` names a major version this build does not understand.
    UnsupportedVersion,
    /// A timestamp is not RFC 3339.
    InvalidTimestamp,
    /// A timestamp is older than the skew window allows.
    TooOld,
    /// A timestamp is further in the future than the skew window allows.
    InFuture,
    /// A number is outside its allowed range.
    OutOfRange,
    /// A number that cannot be negative is negative.
    Negative,
    /// A number is NaN or infinite.
    NotFinite,
    /// A number that must be whole has a fraction.
    NotInteger,
    /// An interval ends before it starts.
    EndBeforeStart,
    /// An interval is longer than the configured maximum.
    IntervalTooLong,
    /// A string is not one of the allowed values.
    InvalidValue,
    /// A field is present where the event's other fields forbid it.
    NotAllowed,
    /// A field this schema version does not define.
    UnknownField,
    /// An extension attribute name breaks the CloudEvents naming rule.
    InvalidExtensionName,
    /// `datacontenttype` is not JSON.
    UnsupportedContentType,
    /// `data_base64` (binary data) was sent; Tollgate events are JSON.
    BinaryData,
    /// The bytes start with a byte-order mark.
    ByteOrderMark,
    /// Arrays and objects are nested deeper than the parser allows.
    TooDeep,
    /// An identifier holds an invisible or bidirectional-control character.
    InvisibleCharacters,
    /// An identifier holds PII (an e-mail address, a phone number).
    PiiInIdentifier,
}

impl ReasonCode {
    /// Every code, for documentation checks and metric registration.
    pub const ALL: &'static [ReasonCode] = &[
        Self::NotUtf8,
        Self::InvalidJson,
        Self::NotAnObject,
        Self::TooLarge,
        Self::MissingField,
        Self::WrongType,
        Self::Empty,
        Self::TooLong,
        Self::ControlCharacters,
        Self::UnsupportedSpecversion,
        Self::UnknownType,
        Self::UnsupportedVersion,
        Self::InvalidTimestamp,
        Self::TooOld,
        Self::InFuture,
        Self::OutOfRange,
        Self::Negative,
        Self::NotFinite,
        Self::NotInteger,
        Self::EndBeforeStart,
        Self::IntervalTooLong,
        Self::InvalidValue,
        Self::NotAllowed,
        Self::UnknownField,
        Self::InvalidExtensionName,
        Self::UnsupportedContentType,
        Self::BinaryData,
        Self::ByteOrderMark,
        Self::TooDeep,
        Self::InvisibleCharacters,
        Self::PiiInIdentifier,
    ];

    /// The stable snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NotUtf8 => "not_utf8",
            Self::InvalidJson => "invalid_json",
            Self::NotAnObject => "not_an_object",
            Self::TooLarge => "too_large",
            Self::MissingField => "missing_field",
            Self::WrongType => "wrong_type",
            Self::Empty => "empty",
            Self::TooLong => "too_long",
            Self::ControlCharacters => "control_characters",
            Self::UnsupportedSpecversion => "unsupported_specversion",
            Self::UnknownType => "unknown_type",
            Self::UnsupportedVersion => "unsupported_version",
            Self::InvalidTimestamp => "invalid_timestamp",
            Self::TooOld => "too_old",
            Self::InFuture => "in_future",
            Self::OutOfRange => "out_of_range",
            Self::Negative => "negative",
            Self::NotFinite => "not_finite",
            Self::NotInteger => "not_integer",
            Self::EndBeforeStart => "end_before_start",
            Self::IntervalTooLong => "interval_too_long",
            Self::InvalidValue => "invalid_value",
            Self::NotAllowed => "not_allowed",
            Self::UnknownField => "unknown_field",
            Self::InvalidExtensionName => "invalid_extension_name",
            Self::UnsupportedContentType => "unsupported_content_type",
            Self::BinaryData => "binary_data",
            Self::ByteOrderMark => "byte_order_mark",
            Self::TooDeep => "too_deep",
            Self::InvisibleCharacters => "invisible_characters",
            Self::PiiInIdentifier => "pii_in_identifier",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_lists_every_code_once() {
        let names: std::collections::BTreeSet<&str> =
            ReasonCode::ALL.iter().map(|c| c.as_str()).collect();
        assert_eq!(names.len(), ReasonCode::ALL.len());
        // as_str is exhaustive, so a new variant must be named there; this
        // catches one missing from ALL by comparing with the serde names.
        for c in ReasonCode::ALL {
            assert_eq!(serde_json::to_value(c).unwrap(), c.as_str());
        }
    }
}

impl fmt::Display for ReasonCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A refused event: which field, what kind of problem, and a sentence that
/// says what was expected and what came. Displayed as `field: message`, for
/// example `data.gpu_count: must be 1..=1024, got 0`.
///
/// The message never quotes user content (only lengths, types, numbers and
/// allowed values), so a reason is safe to store and log before redaction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RejectReason {
    /// The kind of problem.
    pub code: ReasonCode,
    /// The path of the field, such as `data.gpu_count`, or `$` for the whole event.
    pub field: String,
    /// What is wrong, in words.
    pub message: String,
}

impl RejectReason {
    /// A reason for `field` with `code` and `message`.
    pub fn new(code: ReasonCode, field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            code,
            field: field.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for RejectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

impl std::error::Error for RejectReason {}
