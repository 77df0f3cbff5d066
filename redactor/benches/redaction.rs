//! Redaction throughput against a Python `re` peer with the same patterns,
//! validators and tokens (`redactor/bench/peer_redact.py`), on the same
//! corpus, in the same run, one thread each. Prints ratios; asserts nothing.
//!
//! `cargo bench -p tollgate-redactor` (set `TOLLGATE_BENCH_SECONDS` to
//! change the minimum time per measurement, 2 by default).

#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark fails loudly

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use secrecy::SecretString;
use tollgate_redactor::{RedactionConfig, Redactor};

/// Sentences of the kind tool arguments and prompts hold, with the numbers,
/// dates, versions and ids that make redaction hard, and no PII.
const CLEAN: &[&str] = &[
    "Summarise the open incidents for the payments service and list owners.",
    "Compare last quarter's churn by region; the report is due 2026-11-30.",
    "Generate unit tests for the invoice rounding module in billing v4.12.3.",
    "SELECT region, sum(amount) FROM invoices WHERE created_at > '2026-10-01' GROUP BY region",
    "Order ORD-2026-004512 shipped at 14:05:00 from warehouse 7 with 12 items.",
    "Translate the onboarding guide for new support agents into German and French.",
    "Explain the spike in p99 latency (812.5 ms) on the search API yesterday evening.",
    "Request id 550e8400-e29b-41d4-a716-446655440000 failed with status 503.",
    "Write a migration that adds an index on orders(created_at) for table shard 12.",
    "List dependencies with known CVEs in the billing service, sorted by severity.",
    "Total for October: $1,234,567.89 across 3,402 invoices; variance 2.4 %.",
    "commit 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b deployed to prod at 09:12.",
];

/// PII values in the shapes the detectors know.
const PII: &[&str] = &[
    "alice.kim@example.com",
    "+1 415 555 0142",
    "(212) 555-0198",
    "4111 1111 1111 1111",
    "5500-0000-0000-0004",
    "123-45-6789",
    "DE89 3704 0044 0532 0130 00",
    "192.168.10.20",
    "2001:db8:85a3::8a2e:370:7334",
    "AKIAIOSFODNN7EXAMPLE",
    "sk-abcdefghijklmnopqrstuvwxyz012345",
    "030 1234567",
];

const KEY: &str = "4f1c9a2b7d3e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8";

/// A small deterministic generator (xorshift), enough for a corpus.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// `fields` fields of 2 to 4 sentences; a share `density` of them mention PII.
fn corpus(density: f64, fields: usize) -> Vec<String> {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    (0..fields)
        .map(|_| {
            let n = 2 + rng.below(3);
            let mut parts: Vec<String> = (0..n)
                .map(|_| CLEAN[rng.below(CLEAN.len())].to_string())
                .collect();
            if (rng.below(10_000) as f64) < density * 10_000.0 {
                let at = rng.below(n);
                parts[at] = format!("Customer {} asked about it.", PII[rng.below(PII.len())]);
            }
            parts.join(" ")
        })
        .collect()
}

fn main() {
    let min_seconds: f64 = std::env::var("TOLLGATE_BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2.0);
    let dir = tempfile::tempdir().unwrap();
    let mut config = RedactionConfig {
        keys: BTreeMap::from([("bench".to_string(), SecretString::from(KEY.to_string()))]),
        ..RedactionConfig::default()
    };
    // TOLLGATE_BENCH_DETECTORS=email,phone measures a subset of the kinds.
    if let Ok(list) = std::env::var("TOLLGATE_BENCH_DETECTORS") {
        config.detectors = list.split(',').map(str::to_string).collect();
    }
    let redactor =
        Redactor::new(&config, &tollgate_storage::StorageConfig::local(dir.path())).unwrap();
    let peer = Path::new(env!("CARGO_MANIFEST_DIR")).join("bench/peer_redact.py");
    let taskset = Command::new("taskset").arg("--version").output().is_ok();
    let fields = 20_000;

    println!("redaction benchmark: {fields} fields per corpus, one thread each, at least {min_seconds} s per measurement");
    println!(
        "{:<8} {:>10} {:>16} {:>16} {:>8} {:>8}",
        "density", "bytes", "tollgate MB/s", "python re MB/s", "ratio", "agree"
    );
    let mut rates = Vec::new();
    for (name, density) in [("none", 0.0), ("5 %", 0.05), ("30 %", 0.30)] {
        let lines = corpus(density, fields);
        let bytes: usize =
            lines.iter().map(String::len).sum::<usize>() + lines.len().saturating_sub(1);
        let path = dir
            .path()
            .join(format!("corpus-{}.txt", (density * 100.0) as u32));
        std::fs::write(&path, lines.join("\n")).unwrap();

        // Ours: redact every field, repeatedly, until the time is up.
        let ours: Vec<String> = lines
            .iter()
            .map(|l| redactor.redact_text("bench", l).unwrap().0.into_owned())
            .collect();
        let start = Instant::now();
        let mut passes = 0u64;
        loop {
            for l in &lines {
                std::hint::black_box(redactor.redact_text("bench", l).unwrap());
            }
            passes += 1;
            if start.elapsed().as_secs_f64() >= min_seconds {
                break;
            }
        }
        let rust = bytes as f64 * passes as f64 / start.elapsed().as_secs_f64();

        // The peer, on one core.
        let out_path = dir.path().join("peer-out.txt");
        let mut cmd = if taskset {
            let mut c = Command::new("taskset");
            c.args(["-c", "0", "python3"]);
            c
        } else {
            Command::new("python3")
        };
        let out = cmd
            .arg(&peer)
            .arg(KEY)
            .arg(&path)
            .arg(&out_path)
            .arg(min_seconds.to_string())
            .output()
            .expect("running python3");
        assert!(
            out.status.success(),
            "peer failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("peer report");
        let python = report["bytes_per_second"].as_f64().unwrap();
        let theirs = std::fs::read_to_string(&out_path).unwrap();
        let agree = theirs
            .split('\n')
            .zip(&ours)
            .filter(|(a, b)| a == b)
            .count() as f64
            / ours.len() as f64;

        println!(
            "{name:<8} {bytes:>10} {:>16.1} {:>16.2} {:>7.1}x {:>7.1}%",
            rust / 1e6,
            python / 1e6,
            rust / python,
            agree * 100.0
        );
        rates.push(rust);
    }
    // Cost per byte is 1 / throughput.
    let clean_vs_dense = rates[2] / rates[0];
    println!("clean-text cost per byte / PII-dense (30 %) cost per byte: {clean_vs_dense:.2} (goal: at most 0.33)");
}
