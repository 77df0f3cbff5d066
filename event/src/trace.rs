//! The trace id an event carries, for log lines about that event: the
//! tool call's `data.trace_id`, or the CloudEvents distributed-tracing
//! extension (`traceparent`, W3C form `00-<trace id>-<span id>-<flags>`).
//! Read from the raw bytes so that a refused record's log line has it too.
//! Only trace-id-shaped values are returned (16 to 64 hexadecimal digits,
//! with dashes as in a UUID): a value of any other shape (a name, an
//! address, a phone number) may be user content and is never logged.

use serde_json::Value;

/// The trace id of a raw event, when it has one of identifier shape.
pub fn trace_id(raw: &[u8]) -> Option<String> {
    let v: Value = serde_json::from_slice(raw).ok()?;
    let from_data = v
        .get("data")
        .and_then(|d| d.get("trace_id"))
        .and_then(Value::as_str);
    let from_parent = || {
        v.get("traceparent")
            .and_then(Value::as_str)
            .and_then(|t| t.split('-').nth(1))
    };
    from_data
        .or_else(from_parent)
        .filter(|t| identifier(t))
        .map(str::to_string)
}

fn identifier(s: &str) -> bool {
    let hex = s.bytes().filter(u8::is_ascii_hexdigit).count();
    (16..=64).contains(&hex)
        && s.len() <= 80
        && s.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-')
        && !s.starts_with('-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_trace_id_and_refuses_content_shaped_values() {
        let tool = br#"{"id":"e1","data":{"trace_id":"4bf92f3577b34da6a3ce929d0e0e4736"}}"#;
        assert_eq!(
            trace_id(tool).as_deref(),
            Some("4bf92f3577b34da6a3ce929d0e0e4736")
        );
        let parent =
            br#"{"id":"e2","traceparent":"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01","data":{}}"#;
        assert_eq!(
            trace_id(parent).as_deref(),
            Some("0af7651916cd43dd8448eb211c80319c")
        );
        assert_eq!(
            trace_id(br#"{"data":{"trace_id":"alice@example.com"}}"#),
            None
        );
        assert_eq!(trace_id(br#"{"data":{"trace_id":"a b"}}"#), None);
        assert_eq!(trace_id(br#"{"data":{"trace_id":"john.smith"}}"#), None);
        assert_eq!(
            trace_id(br#"{"traceparent":"00-07700900123-x-01","data":{}}"#),
            None,
            "a phone number's length is not a trace id's"
        );
        assert_eq!(trace_id(b"{not json"), None);
        assert_eq!(trace_id(br#"{"data":{}}"#), None);
    }
}
