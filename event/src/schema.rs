//! Event types and schema versions: `dev.tollgate.<kind>.v<major>[.<minor>]`.

use std::fmt;

use serde::Serialize;

use crate::reject::{ReasonCode, RejectReason};

/// The prefix of every Tollgate event type.
pub const TYPE_PREFIX: &str = "dev.tollgate.";
/// The major schema version this build writes and reads natively.
pub const CURRENT_MAJOR: u32 = 1;
/// The newest minor version of [`CURRENT_MAJOR`] this build knows field by field.
pub const CURRENT_MINOR: u32 = 0;

/// The two kinds of event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// `dev.tollgate.tool_call.*`
    ToolCall,
    /// `dev.tollgate.gpu_usage.*`
    GpuUsage,
}

impl EventKind {
    /// The kind's name inside the type string.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ToolCall => "tool_call",
            Self::GpuUsage => "gpu_usage",
        }
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A kind with the schema version its producer wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct SchemaVersion {
    /// Tool call or GPU usage.
    pub kind: EventKind,
    /// Major version: 0 (legacy, upcast on read) or 1 (current).
    pub major: u32,
    /// Minor version: fields added compatibly. Unknown fields of a minor
    /// newer than [`CURRENT_MINOR`] are kept, not dropped.
    pub minor: u32,
}

impl SchemaVersion {
    /// The current version of `kind`.
    pub fn current(kind: EventKind) -> Self {
        Self {
            kind,
            major: CURRENT_MAJOR,
            minor: CURRENT_MINOR,
        }
    }

    /// The type string for this version, such as `dev.tollgate.gpu_usage.v1`.
    pub fn type_string(&self) -> String {
        if self.minor == 0 {
            format!("{TYPE_PREFIX}{}.v{}", self.kind, self.major)
        } else {
            format!("{TYPE_PREFIX}{}.v{}.{}", self.kind, self.major, self.minor)
        }
    }

    /// Whether this is a newer minor version than the build knows, whose
    /// unknown fields are kept rather than refused.
    pub fn is_newer_minor(&self) -> bool {
        self.major == CURRENT_MAJOR && self.minor > CURRENT_MINOR
    }

    /// Parses a CloudEvents `type` attribute.
    pub fn parse(event_type: &str) -> Result<Self, RejectReason> {
        let unknown = || {
            RejectReason::new(
                ReasonCode::UnknownType,
                "type",
                format!(
                    "not a Tollgate event type; expected {TYPE_PREFIX}tool_call.v1 or {TYPE_PREFIX}gpu_usage.v1 (or .v0)"
                ),
            )
        };
        let rest = event_type.strip_prefix(TYPE_PREFIX).ok_or_else(unknown)?;
        let (kind, version) = rest.split_once(".v").ok_or_else(unknown)?;
        let kind = match kind {
            "tool_call" => EventKind::ToolCall,
            "gpu_usage" => EventKind::GpuUsage,
            _ => return Err(unknown()),
        };
        let (major, minor) = match version.split_once('.') {
            Some((major, minor)) => (major, Some(minor)),
            None => (version, None),
        };
        let number = |s: &str| -> Option<u32> {
            if s.is_empty() || s.len() > 6 || !s.bytes().all(|b| b.is_ascii_digit()) {
                None
            } else {
                s.parse().ok()
            }
        };
        let major = number(major).ok_or_else(unknown)?;
        let minor = match minor {
            Some(m) => number(m).ok_or_else(unknown)?,
            None => 0,
        };
        if major > CURRENT_MAJOR || (major == 0 && minor != 0) {
            return Err(RejectReason::new(
                ReasonCode::UnsupportedVersion,
                "type",
                format!(
                    "version v{major}.{minor} of {kind} is not supported by this build (it reads v0 and v1.x); upgrade Tollgate"
                ),
            ));
        }
        Ok(Self { kind, major, minor })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_versions() {
        let v = SchemaVersion::parse("dev.tollgate.gpu_usage.v1").unwrap();
        assert_eq!((v.kind, v.major, v.minor), (EventKind::GpuUsage, 1, 0));
        let v = SchemaVersion::parse("dev.tollgate.tool_call.v1.3").unwrap();
        assert!(v.is_newer_minor());
        assert_eq!(v.type_string(), "dev.tollgate.tool_call.v1.3");
        let v = SchemaVersion::parse("dev.tollgate.tool_call.v0").unwrap();
        assert_eq!(v.major, 0);
    }

    #[test]
    fn refuses_other_types() {
        for t in [
            "",
            "dev.tollgate.",
            "dev.tollgate.gpu_usage",
            "dev.tollgate.gpu_usage.v",
            "dev.tollgate.gpu_usage.v1.",
            "dev.tollgate.gpu_usage.v-1",
            "dev.tollgate.gpu_usage.v99999999999",
            "dev.tollgate.disk_usage.v1",
            "com.example.thing",
        ] {
            let err = SchemaVersion::parse(t).unwrap_err();
            assert_eq!(err.code, ReasonCode::UnknownType, "{t}");
        }
        let err = SchemaVersion::parse("dev.tollgate.gpu_usage.v2").unwrap_err();
        assert_eq!(err.code, ReasonCode::UnsupportedVersion);
        assert_eq!(
            err.to_string(),
            "type: version v2.0 of gpu_usage is not supported by this build (it reads v0 and v1.x); upgrade Tollgate"
        );
    }
}
