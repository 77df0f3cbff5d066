//! Every ```json block in docs/events.md is a valid event of the kind and
//! version its heading names, and every kind and version has one.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use tollgate_event::{decode, DecodeLimits};

const DOC: &str = include_str!("../../../docs/events.md");

fn json_blocks(doc: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in doc.lines() {
        match &mut current {
            None if line.trim() == "```json" => current = Some(String::new()),
            Some(b) if line.trim() == "```" => {
                blocks.push(std::mem::take(b));
                current = None;
            }
            Some(b) => {
                b.push_str(line);
                b.push('\n');
            }
            None => {}
        }
    }
    assert!(
        current.is_none(),
        "unterminated code block in docs/events.md"
    );
    blocks
}

#[test]
fn every_documented_example_decodes() {
    let blocks = json_blocks(DOC);
    let mut seen = BTreeSet::new();
    for (i, block) in blocks.iter().enumerate() {
        let value: serde_json::Value =
            serde_json::from_str(block).unwrap_or_else(|e| panic!("example {i} is not JSON: {e}"));
        let time: DateTime<Utc> = value["time"]
            .as_str()
            .and_then(|t| t.parse().ok())
            .expect("example has a time");
        let event = decode(block.as_bytes(), &DecodeLimits::default(), time)
            .unwrap_or_else(|r| panic!("example {i} ({}) is refused: {r}", value["type"]));
        let s = event.envelope.schema;
        seen.insert(format!("{}.v{}.{}", s.kind, s.major, s.minor));
        if s.minor > 0 {
            assert!(
                !event.extra.is_empty(),
                "the v1.N example {i} should show a kept field"
            );
        }
    }
    for expected in [
        "tool_call.v0.0",
        "tool_call.v1.0",
        "tool_call.v1.1",
        "gpu_usage.v0.0",
        "gpu_usage.v1.0",
        "gpu_usage.v1.1",
    ] {
        assert!(
            seen.contains(expected),
            "docs/events.md has no example of {expected}; it has {seen:?}"
        );
    }
}

#[test]
fn every_reason_code_is_documented() {
    for code in tollgate_event::ReasonCode::ALL {
        assert!(
            DOC.contains(&format!("`{code}`")),
            "docs/events.md does not document {code}"
        );
    }
}
