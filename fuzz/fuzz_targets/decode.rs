//! The event decoder on arbitrary bytes: never a panic; a refusal always
//! names a field and says what is wrong.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tollgate_event::{decode, DecodeLimits};

fuzz_target!(|data: &[u8]| {
    let now = "2026-11-03T15:00:00Z".parse().expect("fixed time");
    if let Err(r) = decode(data, &DecodeLimits::default(), now) {
        assert!(!r.field.is_empty() && !r.message.is_empty());
    }
});
