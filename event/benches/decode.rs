//! The decoder's throughput against its peers in the same run: the JSON
//! parse alone into a `serde_json::Value` (what a decoder that validates a
//! parsed tree pays before it starts), and serde_json skipping the bytes
//! (the parser's floor). `cargo bench -p tollgate-event --bench decode`;
//! `TOLLGATE_BENCH_DECODE_EVENTS` sets the corpus size (200,000 by
//! default); `TOLLGATE_BENCH_DECODE_ONLY=1` runs the decoder alone, for a
//! profiler.
//!
//! The corpus is built here, not by the fixtures crate (which depends on
//! the ledger): tool-call starts with prompt-like arguments holding PII,
//! tool-call ends, v1 GPU usage events and a few v0 ones, with identifiers
//! in mixed case and, for one in fifty, non-ASCII, as producers send them.

use std::hint::black_box;
use std::time::Instant;

use chrono::{DateTime, Duration, Utc};
use serde_json::json;
use tollgate_event::{decode, DecodeLimits};

fn corpus(n: usize, now: DateTime<Utc>) -> Vec<Vec<u8>> {
    let teams = [
        "search",
        "Ranking",
        "payments",
        "Data-Platform",
        "ｒｉｓｋ",
        "café",
    ];
    let tools = ["lookup_customer", "search_tickets", "run_sql", "send_email"];
    (0..n)
        .map(|i| {
            let t = now - Duration::seconds((i % 86_400) as i64);
            let team = if i % 50 == 0 {
                teams[4 + i % 2]
            } else {
                teams[i % 4]
            };
            let tags = (
                format!("tenant-{}", i % 7),
                team,
                format!("usr_{}", i % 5_000),
                if i % 3 == 0 { "prod" } else { "Staging" },
            );
            let v = match i % 10 {
                0..=3 => json!({
                    "specversion": "1.0", "id": format!("call-{i}-start"),
                    "source": "https://mcp-gw.acme.example/eu-west-1",
                    "type": "dev.tollgate.tool_call.v1", "time": t.to_rfc3339(),
                    "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
                    "data": {
                        "tenant": tags.0, "team": tags.1, "user": tags.2, "environment": tags.3,
                        "mcp_server": "crm", "tool": tools[i % 4], "phase": "start",
                        "call_id": format!("call-{i}"), "model": "gpt-4o", "input_tokens": 1200 + i % 300,
                        "arguments": {
                            "query": format!("Customer Jane Doe (jane.doe{i}@example.com, +44 7700 900{:03}) says her card 4111 1111 1111 1111 was charged twice for order #{i}; please check the refund status and reply to her.", i % 1000),
                            "filters": {"region": "eu", "since": "2026-10-01", "limit": 20},
                            "fields": ["name", "email", "orders", "tickets"],
                        }
                    }
                }),
                4..=7 => json!({
                    "specversion": "1.0", "id": format!("call-{i}-end"),
                    "source": "https://mcp-gw.acme.example/eu-west-1",
                    "type": "dev.tollgate.tool_call.v1", "time": t.to_rfc3339(),
                    "data": {
                        "tenant": tags.0, "team": tags.1, "user": tags.2, "environment": tags.3,
                        "mcp_server": "crm", "tool": tools[i % 4], "phase": "end",
                        "call_id": format!("call-{i}"), "status": if i % 9 == 0 { "error" } else { "ok" },
                        "error_class": if i % 9 == 0 { Some("rate_limited") } else { None },
                        "latency_ms": 120.5 + (i % 900) as f64, "model": "gpt-4o",
                        "input_tokens": 1200, "output_tokens": 80 + i % 50,
                        "output_excerpt": "Found 3 tickets for the customer; the latest was opened yesterday."
                    }
                }),
                8 => json!({
                    "specversion": "1.0", "id": format!("gpu-{i}"),
                    "source": "https://gpu-pool.acme.example/eu-west-1",
                    "type": "dev.tollgate.gpu_usage.v1", "time": t.to_rfc3339(),
                    "data": {
                        "tenant": tags.0, "team": tags.1, "user": tags.2, "environment": tags.3,
                        "workload_id": format!("job-{}", i % 300), "workload_kind": "fine_tune",
                        "gpu_model": "H100", "gpu_count": 8,
                        "interval_start": (t - Duration::hours(1)).to_rfc3339(),
                        "interval_end": t.to_rfc3339(),
                        "pricing_tier": "on_demand", "node": "gpu-eu-01", "region": "eu-west-1"
                    }
                }),
                _ => json!({
                    "specversion": "1.0", "id": format!("gpu-{i}"),
                    "source": "https://gpu-pool.acme.example/us-east-1",
                    "type": "dev.tollgate.gpu_usage.v0", "time": t.to_rfc3339(),
                    "data": {
                        "org": tags.0, "team_id": tags.1, "user_id": tags.2, "env": tags.3,
                        "job_id": format!("job-{}", i % 300), "kind": "batch_inference",
                        "gpu": "A100", "gpus": 4, "started_at": (t - Duration::hours(1)).to_rfc3339(),
                        "gpu_seconds": 14_400.0, "tier": "spot", "host": "gpu-us-07", "region": "us-east-1"
                    }
                }),
            };
            serde_json::to_vec(&v).expect("a JSON value encodes")
        })
        .collect()
}

/// One way of reading an event: whether it was read.
type Check<'a> = dyn Fn(&[u8]) -> bool + 'a;

/// Events per second of each of `fs` over the corpus: the best of five
/// passes, the functions taking turns within each pass so that a machine
/// that slows down or speeds up during the run affects them alike.
fn rates<const N: usize>(corpus: &[Vec<u8>], fs: [&Check<'_>; N]) -> [f64; N] {
    let mut best = [f64::MAX; N];
    for _ in 0..5 {
        for (f, best) in fs.iter().zip(best.iter_mut()) {
            let start = Instant::now();
            let mut ok = 0usize;
            for bytes in corpus {
                ok += usize::from(f(bytes));
            }
            black_box(ok);
            *best = best.min(start.elapsed().as_secs_f64());
        }
    }
    best.map(|secs| corpus.len() as f64 / secs)
}

fn main() {
    let n: usize = std::env::var("TOLLGATE_BENCH_DECODE_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);
    let now = Utc::now();
    let corpus = corpus(n, now);
    let bytes: usize = corpus.iter().map(Vec::len).sum();
    let limits = DecodeLimits::default();
    let accepted = corpus
        .iter()
        .filter(|b| decode(b, &limits, now).is_ok())
        .count();
    assert_eq!(accepted, n, "every event of the corpus is valid");
    println!(
        "decode benchmark: {n} events, {:.1} MB of JSON ({} bytes an event on average)",
        bytes as f64 / 1e6,
        bytes / n
    );
    let ours = |b: &[u8]| decode(b, &limits, now).is_ok();
    if std::env::var_os("TOLLGATE_BENCH_DECODE_ONLY").is_some() {
        let [ours] = rates(&corpus, [&ours]);
        println!("tollgate_event::decode (validated) {ours:>12.0} events/s");
        return;
    }
    let skip = |b: &[u8]| serde_json::from_slice::<serde::de::IgnoredAny>(b).is_ok();
    let parse = |b: &[u8]| serde_json::from_slice::<serde_json::Value>(b).is_ok();
    let [skip, parse, ours] = rates(&corpus, [&skip, &parse, &ours]);
    println!("serde_json skipping the bytes      {skip:>12.0} events/s");
    println!("serde_json parse into a Value      {parse:>12.0} events/s");
    println!("tollgate_event::decode (validated) {ours:>12.0} events/s");
    println!(
        "ratio: decode / parse into a Value = {:.2}x; decode / skipping = {:.2}x",
        ours / parse,
        ours / skip
    );
}
