//! The redactor against the labelled corpus, under property tests, and over
//! Arrow batches and events.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use arrow::array::{Array, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::RecordBatch;
use proptest::prelude::*;
use serde_json::{json, Value};
use tollgate_redactor::{
    Content, Engine, Kind, RedactionConfig, Redactor, TenantKindsConfig, KEY_ID_COLUMN,
};
use tollgate_storage::StorageConfig;

fn redactor(dir: &Path) -> Redactor {
    Redactor::new(&RedactionConfig::default(), &StorageConfig::local(dir)).unwrap()
}

#[derive(Default, Debug)]
struct Score {
    labelled: u64,
    found: u64,
    flagged: u64,
    correct: u64,
}

#[test]
fn labelled_corpus_recall_and_precision() {
    score_corpus("pii-corpus.jsonl", 500, 500, 0.99, 0.98);
}

/// National ids, dates of birth, secrets, bank codes, wallets and national
/// phone formats in five languages, with near misses for each
/// (`fixtures/data/make_pii_corpus_intl.py`).
#[test]
fn international_corpus_recall_and_precision() {
    score_corpus("pii-corpus-intl.jsonl", 500, 250, 0.99, 0.98);
}

/// Person names of many cultures in five languages, with titles,
/// greetings, sign-offs, CRM look-ups and lower case, and near misses
/// (everyday words, companies and models named after people), written
/// apart from the gazetteers (`fixtures/data/make_pii_corpus_names.py`).
#[test]
fn names_corpus_recall_and_precision() {
    score_corpus("pii-corpus-names.jsonl", 280, 50, 0.96, 0.99);
}

/// Names and postal addresses of the US, UK, Germany and France in tickets,
/// CRM exports, e-mails, code and logs, from a reviewer's corpus written
/// without the code (`fixtures/data/make_pii_corpus_people.py`).
#[test]
fn people_corpus_recall_and_precision() {
    score_corpus("pii-corpus-people.jsonl", 600, 500, 0.92, 0.98);
}

/// Prompts with every kind mixed (CRM exports in CSV and JSON, KYC notes,
/// e-mails with signatures, logs, SQL) in seven languages, from a second
/// reviewer's corpus written without the code
/// (`fixtures/data/make_pii_corpus_prompts.py`). Its labels differ from
/// the product's kinds in places (AWS key ids are labelled `api_key`, BICs
/// not at all), which the floors below include.
#[test]
fn prompts_corpus_recall_and_precision() {
    score_corpus("pii-corpus-prompts.jsonl", 2500, 500, 0.87, 0.94);
}

/// A third reviewer's corpus of every kind in six languages, scored once
/// unseen (83.5 % recall, 92.9 % precision) before anything was tuned on
/// it; the floors keep the level reached since
/// (`fixtures/data/make_pii_corpus_unseen.py`).
#[test]
fn unseen_corpus_recall_and_precision() {
    score_corpus("pii-corpus-unseen.jsonl", 2000, 500, 0.84, 0.95);
}

/// A fourth reviewer's corpus (2,001 texts, 4,909 values, six languages),
/// scored once unseen (89.9 % recall, 97.0 % precision) before anything was
/// tuned on it (`fixtures/data/make_pii_corpus_fresh.py`); the floors keep
/// the level reached since. Its kinds do not include `ipv4` (private
/// addresses in its logs are not labelled), so findings of that kind are
/// not scored.
#[test]
fn fresh_corpus_recall_and_precision() {
    score_corpus_with("pii-corpus-fresh.jsonl", 4000, 500, 0.95, 0.98, &["ipv4"]);
}

/// Scores the engine on a labelled corpus in `fixtures/data`, prints the
/// table per kind and asserts the recall and precision given.
fn score_corpus(
    file: &str,
    min_pii: usize,
    min_near_misses: usize,
    min_recall: f64,
    min_precision: f64,
) {
    score_corpus_with(
        file,
        min_pii,
        min_near_misses,
        min_recall,
        min_precision,
        &[],
    );
}

/// Whether a finding's value is the labelled one. A corpus may label a
/// bearer credential without the word "Bearer" that the redactor's span
/// includes.
fn same(kind: &str, labelled: &str, found: &str) -> bool {
    labelled == found
        || (kind == "bearer"
            && found.len() > labelled.len()
            && found.ends_with(labelled)
            && found[..found.len() - labelled.len()]
                .trim()
                .eq_ignore_ascii_case("bearer"))
}

/// [`score_corpus`], with the findings of the `unscored` kinds (kinds the
/// corpus does not label) left out.
fn score_corpus_with(
    file: &str,
    min_pii: usize,
    min_near_misses: usize,
    min_recall: f64,
    min_precision: f64,
    unscored: &[&str],
) {
    let corpus = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../fixtures/data")
            .join(file),
    )
    .unwrap();
    let engine = Engine::new(&Kind::ALL, &[]).unwrap();
    let mut by_kind: BTreeMap<String, Score> = BTreeMap::new();
    let (mut pii_total, mut near_misses) = (0, 0);
    let mut misses = Vec::new();
    let mut false_positives = Vec::new();
    for line in corpus.lines() {
        let item: Value = serde_json::from_str(line).unwrap();
        let text = item["text"].as_str().unwrap();
        let labels: Vec<(String, String)> = item["pii"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                (
                    p["kind"].as_str().unwrap().to_string(),
                    p["value"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        if labels.is_empty() {
            near_misses += 1;
        }
        let found: Vec<(String, String)> = engine
            .find(text)
            .into_iter()
            .map(|f| (f.kind.name().to_string(), text[f.start..f.end].to_string()))
            .filter(|(k, _)| !unscored.contains(&k.as_str()))
            .collect();
        for (kind, value) in &labels {
            pii_total += 1;
            let s = by_kind.entry(kind.clone()).or_default();
            s.labelled += 1;
            if found.iter().any(|(k, v)| k == kind && same(k, value, v)) {
                s.found += 1;
            } else {
                misses.push(format!("{kind}: {value:?} in {text:?} (found {found:?})"));
            }
        }
        for (kind, value) in &found {
            let s = by_kind.entry(kind.clone()).or_default();
            s.flagged += 1;
            if labels.iter().any(|(k, v)| k == kind && same(k, v, value)) {
                s.correct += 1;
            } else {
                false_positives.push(format!("{kind}: {value:?} in {text:?}"));
            }
        }
    }
    assert!(
        pii_total >= min_pii && near_misses >= min_near_misses,
        "{file}: corpus too small: {pii_total} PII, {near_misses} near misses"
    );
    let mut total = Score::default();
    println!(
        "{file}\n{:<16} {:>8} {:>8} {:>10} {:>10}",
        "kind", "labelled", "flagged", "recall", "precision"
    );
    for (kind, s) in &by_kind {
        let recall = if s.labelled == 0 {
            1.0
        } else {
            s.found as f64 / s.labelled as f64
        };
        let precision = if s.flagged == 0 {
            1.0
        } else {
            s.correct as f64 / s.flagged as f64
        };
        println!(
            "{kind:<16} {:>8} {:>8} {:>9.2}% {:>9.2}%",
            s.labelled,
            s.flagged,
            recall * 100.0,
            precision * 100.0
        );
        total.labelled += s.labelled;
        total.found += s.found;
        total.flagged += s.flagged;
        total.correct += s.correct;
    }
    let recall = total.found as f64 / total.labelled as f64;
    let precision = total.correct as f64 / total.flagged as f64;
    println!(
        "{:<16} {:>8} {:>8} {:>9.2}% {:>9.2}%",
        "all",
        total.labelled,
        total.flagged,
        recall * 100.0,
        precision * 100.0
    );
    println!("missed: {misses:#?}\nfalse positives: {false_positives:#?}");
    assert!(recall >= min_recall, "recall {recall:.4} < {min_recall}");
    assert!(
        precision >= min_precision,
        "precision {precision:.4} < {min_precision}"
    );
}

/// Text with PII of several kinds mixed into arbitrary text.
fn arb_text_with_pii() -> impl Strategy<Value = String> {
    let pii = prop::sample::select(vec![
        "alice.kim@example.com",
        "Bob@Example.ORG",
        "+1 415 555 0142",
        "(212) 555-0198",
        "4111 1111 1111 1111",
        "5500-0000-0000-0004",
        "123-45-6789",
        "DE89 3704 0044 0532 0130 00",
        "GB82WEST12345698765432",
        "192.168.10.20",
        "2001:db8:85a3::8a2e:370:7334",
        "AKIAJ7Q2R4T6V8X0Z3B5",
        "sk-abcdefghijklmnopqrstuvwxyz012345",
        "Bearer abcdefghijklmnop0123456789",
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
    ]);
    prop::collection::vec(
        prop_oneof![
            3 => "[ -~\\n\\té€😀]{0,20}",
            1 => pii.prop_map(|s| format!(" {s} ")),
        ],
        0..8,
    )
    .prop_map(|parts| parts.concat())
}

fn arb_json(text: BoxedStrategy<String>) -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        Just(json!(4111111111111111u64)),
        text.clone().prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 32, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::btree_map(text.clone(), inner, 0..5)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn redacting_twice_equals_once_and_nothing_survives(text in arb_text_with_pii()) {
        let dir = tempfile::tempdir().unwrap();
        let r = redactor(dir.path());
        let (once, _) = r.redact_text("acme", &text).unwrap();
        let (twice, again) = r.redact_text("acme", &once).unwrap();
        prop_assert_eq!(&once, &twice);
        prop_assert_eq!(again.counts.total(), 0);
        prop_assert!(r.engine("acme").find(&once).is_empty(), "a detector still matches {:?}", once);
        // Output is a valid String by construction; check it kept the non-PII text.
        prop_assert!(once.len() + 64 >= text.len() / 4);
    }

    #[test]
    fn json_stays_valid_and_clean(v in arb_json(arb_text_with_pii().boxed())) {
        let dir = tempfile::tempdir().unwrap();
        let r = redactor(dir.path());
        let mut redacted = v.clone();
        r.redact_json("acme", &mut redacted).unwrap();
        let encoded = serde_json::to_string(&redacted).unwrap();
        let reparsed: Value = serde_json::from_str(&encoded).unwrap();
        prop_assert_eq!(&reparsed, &redacted);
        fn strings(v: &Value, out: &mut Vec<String>) {
            match v {
                Value::String(s) => out.push(s.clone()),
                Value::Array(a) => a.iter().for_each(|x| strings(x, out)),
                Value::Object(m) => m.iter().for_each(|(k, x)| { out.push(k.clone()); strings(x, out) }),
                Value::Number(n) => out.push(n.to_string()),
                _ => {}
            }
        }
        let mut all = Vec::new();
        strings(&redacted, &mut all);
        for s in all {
            prop_assert!(r.engine("acme").find(&s).is_empty(), "{:?} survived", s);
        }
        let mut twice = redacted.clone();
        r.redact_json("acme", &mut twice).unwrap();
        prop_assert_eq!(twice, redacted);
    }

    #[test]
    fn tokens_are_stable_per_tenant_and_differ_across(user in "[a-z]{1,12}", domain in "[a-z]{2,10}") {
        let dir = tempfile::tempdir().unwrap();
        let r = redactor(dir.path());
        let email = format!("{user}@{domain}.com");
        let a1 = r.token_for("acme", "email", &email, None).unwrap();
        let a2 = r.token_for("acme", "email", &email.to_uppercase(), None).unwrap();
        let g = r.token_for("globex", "email", &email, None).unwrap();
        prop_assert_eq!(&a1, &a2);
        prop_assert_ne!(&a1, &g);
        let input = format!("mail {email} now");
        let (text, _) = r.redact_text("acme", &input).unwrap();
        prop_assert_eq!(text.as_ref(), format!("mail {a1} now"));
        // A second redactor over the same key store gives the same token.
        let again = redactor(dir.path()).token_for("acme", "email", &email, None).unwrap();
        prop_assert_eq!(a1, again);
    }
}

#[test]
fn batches_are_redacted_per_row_tenant_with_key_ids() {
    let dir = tempfile::tempdir().unwrap();
    let r = redactor(dir.path());
    let schema = Arc::new(Schema::new(vec![
        Field::new("tenant", DataType::Utf8, false),
        Field::new("tool", DataType::Utf8, false),
        Field::new("arguments", DataType::Utf8, true),
        Field::new("output_excerpt", DataType::Utf8, true),
    ]));
    let batch = RecordBatch::try_new(
        schema,
        vec![
            Arc::new(StringArray::from(vec!["acme", "globex", "acme"])),
            Arc::new(StringArray::from(vec![
                "crm",
                "send_email_to_alice@example.com",
                "web",
            ])),
            Arc::new(StringArray::from(vec![
                Some(r#"{"query":"alice@example.com","n":5}"#),
                Some(r#"{"to":"alice@example.com"}"#),
                None,
            ])),
            Arc::new(StringArray::from(vec![
                Some("called +1 415 555 0142"),
                None,
                Some("not json: 123-45-6789"),
            ])),
        ],
    )
    .unwrap();
    let (out, counts) = r
        .redact_batch(
            &batch,
            "tenant",
            &[
                ("arguments", Content::Json),
                ("output_excerpt", Content::Text),
            ],
        )
        .unwrap();
    assert_eq!(counts.0.get("email"), Some(&2));
    assert_eq!(counts.0.get("phone"), Some(&1));
    let col = |name: &str| {
        out.column_by_name(name)
            .unwrap()
            .as_any()
            .downcast_ref::<StringArray>()
            .unwrap()
            .clone()
    };
    let args = col("arguments");
    let acme = r
        .token_for("acme", "email", "alice@example.com", None)
        .unwrap();
    let globex = r
        .token_for("globex", "email", "alice@example.com", None)
        .unwrap();
    assert_eq!(args.value(0), format!(r#"{{"n":5,"query":"{acme}"}}"#));
    assert_eq!(args.value(1), format!(r#"{{"to":"{globex}"}}"#));
    assert!(args.is_null(2));
    assert!(!col("output_excerpt").value(2).contains("123-45-6789"));
    assert_eq!(
        col("tool").value(1),
        "send_email_to_alice@example.com",
        "identifier columns are untouched"
    );
    let ids = col(KEY_ID_COLUMN);
    assert_eq!(ids.value(0), ids.value(2));
    assert_ne!(ids.value(0), ids.value(1));
    assert!(r
        .redact_batch(&batch, "nope", &[])
        .unwrap_err()
        .to_string()
        .contains("nope"));
}

#[test]
fn events_are_redacted_by_policy() {
    let dir = tempfile::tempdir().unwrap();
    let r = redactor(dir.path());
    let raw = json!({
        "specversion": "1.0", "id": "e1", "source": "s", "type": "dev.tollgate.tool_call.v1.2",
        "time": "2026-11-03T14:00:01Z",
        "data": {
            "tenant": "acme", "team": "search", "user": "usr_1", "environment": "prod",
            "mcp_server": "crm", "tool": "lookup_customer", "phase": "end", "call_id": "c1",
            "status": "ok", "latency_ms": 10, "output_excerpt": "Found bob@example.org at +44 20 7946 0958",
            "note": "card 4111-1111-1111-1111"
        }
    });
    let mut event = tollgate_event::decode(
        raw.to_string().as_bytes(),
        &tollgate_event::DecodeLimits::default(),
        "2026-11-03T14:00:02Z".parse().unwrap(),
    )
    .unwrap();
    let outcome = r.redact_event(&mut event).unwrap();
    assert_eq!(outcome.counts.total(), 3);
    let tollgate_event::EventBody::ToolCall(call) = &event.body else {
        panic!()
    };
    let excerpt = call.output_excerpt.as_deref().unwrap();
    assert!(
        excerpt.starts_with("Found <email:") && excerpt.contains("<phone:"),
        "{excerpt}"
    );
    assert!(event.extra["note"]
        .as_str()
        .unwrap()
        .starts_with("card <card:"));
    assert_eq!(outcome.key_id, r.keys().key_for("acme").unwrap().id);
}

#[test]
fn policy_refuses_identifier_fields() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = RedactionConfig::default();
    cfg.policy.tool_call.push("tool".into());
    let err = Redactor::new(&cfg, &StorageConfig::local(dir.path()))
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("\"tool\"") && err.contains("never redacted"),
        "{err}"
    );
    let cfg = RedactionConfig {
        detectors: vec!["emails".into()],
        ..RedactionConfig::default()
    };
    assert!(Redactor::new(&cfg, &StorageConfig::local(dir.path()))
        .err()
        .unwrap()
        .to_string()
        .contains("unknown detector"));
}

#[test]
fn fuzzer_findings_stay_fixed() {
    let dir = tempfile::tempdir().unwrap();
    let r = redactor(dir.path());
    for text in [
        "2001:db8::a1c5e8::1c6:db8:d",
        "login sty\u{0}2001:db8:a1ec::bob@example.com ac",
    ] {
        let (once, _) = r.redact_text("acme", text).unwrap();
        let (twice, _) = r.redact_text("acme", &once).unwrap();
        assert_eq!(once, twice, "{text:?}");
        assert!(r.engine("acme").find(&once).is_empty(), "{once:?}");
    }
}

#[test]
fn refused_payloads_are_redacted_through_json_escapes() {
    let dir = tempfile::tempdir().unwrap();
    let r = redactor(dir.path());
    // Valid JSON (refused for another reason): parsed, so escapes are read.
    let valid = br#"{"data":{"note":"mail alice\u0040example.com","x\u0040y.example":1}}"#;
    let (text, outcome) = r.redact_payload("acme", valid).unwrap();
    assert!(!text.contains("alice") && !text.contains("x@y"), "{text}");
    assert_eq!(outcome.counts.0.get("email"), Some(&2), "{text}");
    // Not JSON: the escapes are resolved before scanning, surrogate pairs too.
    for broken in [
        &br#"{"data":{"note":"alice\u0040example.com""#[..],
        br#"{"data":"alice\u0040example\u002ecom"#,
        br#"alice\u0040exa\u006dple.com ,,, \/ \ud83d\ude00 \ud800"#,
    ] {
        let (text, _) = r.redact_payload("acme", broken).unwrap();
        assert!(!text.contains("alice"), "{text}");
    }
}

#[test]
fn extension_attributes_are_redacted() {
    let dir = tempfile::tempdir().unwrap();
    let r = redactor(dir.path());
    let raw = serde_json::to_vec(&json!({
        "specversion": "1.0", "id": "e-1", "source": "https://gw.example",
        "type": "dev.tollgate.tool_call.v1", "time": "2026-11-03T14:00:00Z",
        "contact": "write to alice@example.com",
        "card": 4111111111111111u64,
        "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        "data": {"tenant": "acme", "team": "search", "user": "usr_1", "environment": "prod",
                 "mcp_server": "crm", "tool": "lookup", "phase": "start", "call_id": "c-1",
                 "arguments": {}}
    }))
    .unwrap();
    let at = chrono::DateTime::parse_from_rfc3339("2026-11-03T14:00:00Z")
        .unwrap()
        .with_timezone(&chrono::Utc);
    let mut event = tollgate_event::decode(&raw, &Default::default(), at).unwrap();
    r.redact_event(&mut event).unwrap();
    let ext = &event.envelope.extensions;
    let contact = ext["contact"].as_str().unwrap();
    assert!(!contact.contains("alice"), "{contact}");
    // A number that is PII as a whole becomes its token.
    assert!(
        !ext["card"].to_string().contains("4111111111111111"),
        "{ext:?}"
    );
    assert_eq!(
        ext["traceparent"],
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    );
    // A W3C traceparent holds ids only, even one whose span id reads as a
    // card number; a `traceparent` of any other form is scanned.
    for (parent, kept) in [
        (
            "00-0af7651916cd43dd8448eb211c80319c-4111111111111111-01",
            true,
        ),
        (
            "00-0af7651916cd43dd8448eb211c80319c-4111111111111111-01 ",
            false,
        ),
        (
            "01-0af7651916cd43dd8448eb211c80319c-4111111111111111-01",
            false,
        ),
        ("call alice@example.com", false),
    ] {
        let mut raw: Value = serde_json::from_slice(&raw).unwrap();
        raw["traceparent"] = json!(parent);
        let mut event =
            tollgate_event::decode(&serde_json::to_vec(&raw).unwrap(), &Default::default(), at)
                .unwrap();
        r.redact_event(&mut event).unwrap();
        let out = event.envelope.extensions["traceparent"].as_str().unwrap();
        assert_eq!(out == parent, kept, "{parent:?} became {out:?}");
    }
}

#[test]
fn json_keys_are_context_for_their_values() {
    let dir = tempfile::tempdir().unwrap();
    let r = redactor(dir.path());
    let mut v = json!({
        "ssn": "123456789",
        "customer": {"SSN": 123456789, "date_of_birth": "1985-03-14", "firstName": "June"},
        "aba_routing_number": "011000015",
        "name": "Premium Plan",
        "batch": "123456789",
        "count": 123456789
    });
    let counts = r.redact_json("acme", &mut v).unwrap();
    let out = v.to_string();
    let token = |v: &Value, kind: &str| {
        v.as_str()
            .is_some_and(|t| t.starts_with(&format!("<{kind}:")))
    };
    assert!(token(&v["ssn"], "ssn"), "{out}");
    assert!(token(&v["customer"]["SSN"], "ssn"), "{out}");
    assert!(token(&v["customer"]["date_of_birth"], "dob"), "{out}");
    assert!(token(&v["customer"]["firstName"], "person"), "{out}");
    assert!(token(&v["aba_routing_number"], "aba_routing"), "{out}");
    // Without a telling key, nine digits and a plan's name stay.
    assert_eq!(v["batch"], "123456789", "{out}");
    assert_eq!(v["count"], 123456789, "{out}");
    assert_eq!(v["name"], "Premium Plan", "{out}");
    assert!(counts.counts.total() >= 5, "{counts:?}");
}

#[test]
fn pii_behind_floats_numbers_and_nested_escapes_is_found() {
    let dir = tempfile::tempdir().unwrap();
    let r = redactor(dir.path());
    // A card number written as a float, in a refused payload.
    let (text, _) = r
        .redact_payload("acme", br#"{"card":4111111111111111.0,"n":2.0}"#)
        .unwrap();
    assert!(!text.contains("4111111111111111"), "{text}");
    assert!(text.contains("\"n\":2.0"), "{text}");
    // A JSON document sent as a string, its address escaped inside it.
    let mut v = json!({"arguments": "{\"to\":\"alice\\u0040example.com\"}"});
    r.redact_json("acme", &mut v).unwrap();
    assert!(!v.to_string().contains("alice"), "{v}");
    // Escaped twice, in text that is not JSON.
    let (text, _) = r
        .redact_payload("acme", br#"{"note":"alice\\u0040example.com""#)
        .unwrap();
    assert!(!text.contains("alice"), "{text}");
}

#[test]
fn kinds_are_switched_on_and_off_per_tenant() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = RedactionConfig::default();
    config.detectors.retain(|d| d != "ipv4");
    config.tenants.insert(
        "acme".into(),
        TenantKindsConfig {
            disable: vec!["person".into(), "address".into()],
            ..TenantKindsConfig::default()
        },
    );
    config.tenants.insert(
        "netops".into(),
        TenantKindsConfig {
            enable: vec!["ipv4".into()],
            ..TenantKindsConfig::default()
        },
    );
    let r = Redactor::new(&config, &StorageConfig::local(dir.path())).unwrap();
    let text = "Dear Ms Okafor, host 10.20.30.40 ships to 12 rue de la Paix, 75002 Paris";
    let out = |tenant: &str| r.redact_text(tenant, text).unwrap().0.into_owned();
    // Everyone else: the shared list (no ipv4).
    let other = out("globex");
    assert!(
        !other.contains("Okafor") && !other.contains("rue de la Paix"),
        "{other}"
    );
    assert!(other.contains("10.20.30.40"), "{other}");
    // acme: no names, no addresses.
    let acme = out("acme");
    assert!(
        acme.contains("Okafor") && acme.contains("12 rue de la Paix"),
        "{acme}"
    );
    // netops: ipv4 on top of the shared list.
    let netops = out("netops");
    assert!(
        !netops.contains("10.20.30.40") && !netops.contains("Okafor"),
        "{netops}"
    );
    // A kind's name is checked, and the field named in the error.
    config.tenants.insert(
        "typo".into(),
        TenantKindsConfig {
            disable: vec!["persons".into()],
            ..TenantKindsConfig::default()
        },
    );
    let err = Redactor::check(&config).unwrap_err().to_string();
    assert!(
        err.contains("redaction.tenants.typo.disable") && err.contains("\"persons\""),
        "{err}"
    );
}
