//! The redactor on arbitrary text and JSON: never a panic; redacting twice
//! equals redacting once; no detector matches what comes out; JSON stays JSON.
#![no_main]

use std::collections::BTreeMap;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use tollgate_redactor::{RedactionConfig, Redactor};

fn redactor() -> &'static Redactor {
    static R: OnceLock<Redactor> = OnceLock::new();
    R.get_or_init(|| {
        let key = "5a".repeat(32);
        let config = RedactionConfig {
            keys: BTreeMap::from([("fuzz".to_string(), key.into())]),
            ..RedactionConfig::default()
        };
        let storage = tollgate_storage::StorageConfig::local(&std::env::temp_dir());
        Redactor::new(&config, &storage).expect("redactor")
    })
}

fuzz_target!(|data: &[u8]| {
    let r = redactor();
    let text = String::from_utf8_lossy(data);
    let (once, _) = r.redact_text("fuzz", &text).expect("configured key");
    let (twice, _) = r.redact_text("fuzz", &once).expect("configured key");
    assert_eq!(once, twice, "redaction is not idempotent");
    assert!(r.engine("fuzz").find(&once).is_empty(), "a detector still matches");
    if let Ok(mut v) = serde_json::from_slice::<serde_json::Value>(data) {
        r.redact_json("fuzz", &mut v).expect("configured key");
        let s = serde_json::to_string(&v).expect("encodes");
        let back: serde_json::Value = serde_json::from_str(&s).expect("still JSON");
        assert_eq!(back, v);
    }
});
