//! The decoder under arbitrary input: never a panic; always an event or a
//! reason that names a field.

use chrono::{DateTime, Utc};
use proptest::prelude::*;
use serde_json::{json, Map, Value};
use tollgate_event::{decode, DecodeLimits, RejectReason};

fn now() -> DateTime<Utc> {
    "2026-11-03T15:00:00Z".parse().unwrap()
}

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| json!(f)),
        ".{0,12}".prop_map(Value::String),
        prop::sample::select(vec![
            "1.0",
            "dev.tollgate.gpu_usage.v1",
            "dev.tollgate.tool_call.v0",
            "dev.tollgate.tool_call.v1.7",
            "2026-11-03T14:00:00Z",
            "start",
            "end",
            "ok",
            "error",
            "fine_tune",
            "spot",
            "NaN",
            "H100",
        ])
        .prop_map(|s| Value::String(s.to_string())),
    ];
    leaf.prop_recursive(4, 48, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(
                prop::sample::select(vec![
                    "specversion",
                    "id",
                    "source",
                    "type",
                    "time",
                    "data",
                    "tenant",
                    "team",
                    "user",
                    "environment",
                    "gpu_count",
                    "phase",
                    "status",
                    "latency_ms",
                    "interval_start",
                    "interval_end",
                    "x",
                    "Ext",
                ])
                .prop_map(str::to_string),
                inner,
                0..8
            )
            .prop_map(|m| Value::Object(m.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// A valid event with some of its data fields replaced by arbitrary values.
fn arb_mutated_event() -> impl Strategy<Value = Value> {
    let base = json!({
        "specversion": "1.0", "id": "p-1", "source": "s", "type": "dev.tollgate.gpu_usage.v1",
        "time": "2026-11-03T14:00:00Z",
        "data": {
            "tenant": "acme", "team": "t", "user": "u", "environment": "prod", "workload_id": "w",
            "workload_kind": "notebook", "gpu_model": "L4", "gpu_count": 1,
            "interval_start": "2026-11-03T13:00:00Z", "interval_end": "2026-11-03T14:00:00Z",
            "pricing_tier": "spot", "node": "n", "region": "r"
        }
    });
    let keys = base["data"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect::<Vec<_>>();
    prop::collection::vec((prop::sample::select(keys), arb_json()), 1..4).prop_map(move |changes| {
        let mut v = base.clone();
        for (k, new) in changes {
            v["data"][k] = new;
        }
        v
    })
}

fn check(result: Result<tollgate_event::Event, RejectReason>) {
    if let Err(r) = result {
        assert!(!r.field.is_empty(), "a reason must name a field: {r:?}");
        assert!(
            !r.message.is_empty(),
            "a reason must say what is wrong: {r:?}"
        );
        assert!(
            r.field == "$"
                || r.field
                    .chars()
                    .next()
                    .is_some_and(|c| c.is_ascii_lowercase()),
            "field path {:?} is not a path",
            r.field
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        check(decode(&bytes, &DecodeLimits::default(), now()));
    }

    #[test]
    fn arbitrary_json_never_panics(v in arb_json()) {
        let bytes = serde_json::to_vec(&v).unwrap();
        check(decode(&bytes, &DecodeLimits::default(), now()));
    }

    #[test]
    fn mutated_events_decode_or_name_the_field(v in arb_mutated_event()) {
        let bytes = serde_json::to_vec(&v).unwrap();
        check(decode(&bytes, &DecodeLimits::default(), now()));
    }
}

#[test]
fn deeply_nested_json_is_refused_not_overflowed() {
    let deep = "[".repeat(100_000);
    let r = decode(
        deep.as_bytes(),
        &DecodeLimits {
            max_event_bytes: 1 << 20,
            ..DecodeLimits::default()
        },
        now(),
    )
    .unwrap_err();
    assert_eq!(r.code, tollgate_event::ReasonCode::TooDeep, "{r}");
}
