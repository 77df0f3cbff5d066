//! Status lines of the long-running commands ("listening on ...", "stopped;
//! consumed ..."): plain text on stderr, or, with `--log-format json`, one
//! JSON object per line in the shape of the JSON log lines, so that a log
//! collector reads every line of the process alike.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

static JSON: AtomicBool = AtomicBool::new(false);

/// Makes status lines JSON (set once at start from `--log-format`).
pub fn set_json(json: bool) {
    JSON.store(json, Ordering::Relaxed);
}

/// Writes `text` (one or more lines) to stderr.
pub fn status(text: &str) {
    if text.is_empty() {
        return;
    }
    let mut err = std::io::stderr().lock();
    if !JSON.load(Ordering::Relaxed) {
        let _ = write!(err, "{text}");
        if !text.ends_with('\n') {
            let _ = writeln!(err);
        }
        return;
    }
    let timestamp = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let v = serde_json::json!({
            "timestamp": timestamp,
            "level": "INFO",
            "fields": {"message": line},
            "target": "tollgate::status",
        });
        let _ = writeln!(err, "{v}");
    }
}

/// `eprintln!` for status lines: text, or JSON with `--log-format json`.
#[macro_export]
macro_rules! say {
    ($($arg:tt)*) => {
        $crate::say::status(&format!($($arg)*))
    };
}
