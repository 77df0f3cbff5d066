//! Redaction throughput against a Python `re` peer with the same patterns,
//! validators and tokens (`redactor/bench/peer_redact.py`), on the same
//! corpus, in the same run, one thread each; then recall, precision and
//! speed per kind on the labelled corpora of `fixtures/data`, against
//! Microsoft Presidio with a spaCy English model
//! (`redactor/bench/presidio_peer.py`, which says how to install it).
//! Prints ratios; asserts nothing.
//!
//! `cargo bench -p tollgate-redactor` (set `TOLLGATE_BENCH_SECONDS` to
//! change the minimum time per measurement, 2 by default;
//! `TOLLGATE_PRESIDIO_PYTHON` to the Python that has Presidio, `python3`
//! by default; `TOLLGATE_BENCH_CORPUS` to more labelled corpora, comma
//! separated).

#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark fails loudly

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use secrecy::SecretString;
use tollgate_redactor::{Engine, Kind, RedactionConfig, Redactor};

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

/// Resident memory of this process in bytes (Linux), if known.
fn rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

fn main() {
    let min_seconds: f64 = std::env::var("TOLLGATE_BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2.0);
    let before = rss();
    let words = tollgate_redactor::gazetteer_len();
    if let (Some(a), Some(b)) = (before, rss()) {
        println!(
            "name gazetteers: {words} words, {:.1} MB of resident memory",
            b.saturating_sub(a) as f64 / 1e6
        );
    }
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
    quality(min_seconds);
}

/// Per-kind counts on a labelled corpus.
#[derive(Default, Clone, Copy)]
struct Score {
    labelled: u64,
    found: u64,
    flagged: u64,
    correct: u64,
}

impl Score {
    fn recall(&self) -> f64 {
        if self.labelled == 0 {
            1.0
        } else {
            self.found as f64 / self.labelled as f64
        }
    }
    fn precision(&self) -> f64 {
        if self.flagged == 0 {
            1.0
        } else {
            self.correct as f64 / self.flagged as f64
        }
    }
    fn add(&mut self, o: &Score) {
        self.labelled += o.labelled;
        self.found += o.found;
        self.flagged += o.flagged;
        self.correct += o.correct;
    }
}

/// Recall, precision and speed on the labelled corpora, ours and
/// Presidio's.
fn quality(min_seconds: f64) {
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/data");
    let mut files: Vec<std::path::PathBuf> = [
        "pii-corpus.jsonl",
        "pii-corpus-intl.jsonl",
        "pii-corpus-names.jsonl",
        "pii-corpus-people.jsonl",
        "pii-corpus-prompts.jsonl",
        "pii-corpus-unseen.jsonl",
    ]
    .iter()
    .map(|f| data.join(f))
    .collect();
    if let Ok(more) = std::env::var("TOLLGATE_BENCH_CORPUS") {
        files.extend(more.split(',').filter(|p| !p.is_empty()).map(Into::into));
    }
    let mut items: Vec<(String, Vec<(String, String)>)> = Vec::new();
    for f in &files {
        for line in std::fs::read_to_string(f).unwrap().lines() {
            if line.trim().is_empty() {
                continue;
            }
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            let labels = v["pii"]
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
            items.push((v["text"].as_str().unwrap().to_string(), labels));
        }
    }
    let bytes: usize = items.iter().map(|(t, _)| t.len()).sum();
    println!(
        "\nquality: {} labelled texts ({} bytes) from {}",
        items.len(),
        bytes,
        files
            .iter()
            .map(|f| f.file_name().unwrap().to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(", ")
    );

    let engine = Engine::new(&Kind::ALL, &[]).unwrap();
    let start = Instant::now();
    let mut passes = 0u64;
    loop {
        for (t, _) in &items {
            std::hint::black_box(engine.find(t));
        }
        passes += 1;
        if start.elapsed().as_secs_f64() >= min_seconds {
            break;
        }
    }
    let ours_speed = bytes as f64 * passes as f64 / start.elapsed().as_secs_f64();
    let mut ours: BTreeMap<String, Score> = BTreeMap::new();
    for (text, labels) in &items {
        let found: Vec<(String, String)> = engine
            .find(text)
            .into_iter()
            .map(|f| (f.kind.name().to_string(), text[f.start..f.end].to_string()))
            .collect();
        for (kind, value) in labels {
            let s = ours.entry(kind.clone()).or_default();
            s.labelled += 1;
            s.found += u64::from(found.iter().any(|(k, v)| k == kind && v == value));
        }
        for (kind, value) in &found {
            let s = ours.entry(kind.clone()).or_default();
            s.flagged += 1;
            s.correct += u64::from(labels.iter().any(|(k, v)| k == kind && v == value));
        }
    }

    let python =
        std::env::var("TOLLGATE_PRESIDIO_PYTHON").unwrap_or_else(|_| "python3".to_string());
    let peer = Path::new(env!("CARGO_MANIFEST_DIR")).join("bench/presidio_peer.py");
    let out = Command::new(&python)
        .arg(&peer)
        .arg(min_seconds.to_string())
        .args(&files)
        .output();
    let (theirs, theirs_speed): (BTreeMap<String, Score>, Option<f64>) = match out {
        Ok(o) if o.status.success() => {
            let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("peer report");
            let mut m = BTreeMap::new();
            for (k, s) in v["by_kind"].as_object().unwrap() {
                let n = |f: &str| s[f].as_u64().unwrap_or(0);
                m.insert(
                    k.clone(),
                    Score {
                        labelled: n("labelled"),
                        found: n("found"),
                        flagged: n("flagged"),
                        correct: n("correct"),
                    },
                );
            }
            println!(
                "presidio: {} with its default English recognizers, types mapped to kinds: {}",
                v["model"].as_str().unwrap_or("?"),
                v["mapping"]
            );
            (m, v["bytes_per_second"].as_f64())
        }
        Ok(o) => {
            let err = String::from_utf8_lossy(&o.stderr);
            println!(
                "presidio peer not run ({python}: {}); see redactor/bench/presidio_peer.py to install it",
                err.lines().last().unwrap_or("failed")
            );
            (BTreeMap::new(), None)
        }
        Err(e) => {
            println!("presidio peer not run ({python}: {e})");
            (BTreeMap::new(), None)
        }
    };

    println!(
        "{:<16} {:>8} {:>12} {:>12} {:>12} {:>12}",
        "kind", "labelled", "ours recall", "ours prec.", "presidio rec", "presidio prec"
    );
    let kinds: std::collections::BTreeSet<&String> = ours.keys().chain(theirs.keys()).collect();
    let (mut all_ours, mut all_theirs) = (Score::default(), Score::default());
    let pct = |x: f64| format!("{:.1}%", x * 100.0);
    for kind in kinds {
        let o = ours.get(kind).copied().unwrap_or_default();
        let t = theirs.get(kind).copied().unwrap_or_default();
        all_ours.add(&o);
        all_theirs.add(&t);
        let labelled = o.labelled.max(t.labelled);
        let (tr, tp) = if theirs_speed.is_some() {
            (pct(t.recall()), pct(t.precision()))
        } else {
            ("-".into(), "-".into())
        };
        println!(
            "{kind:<16} {labelled:>8} {:>12} {:>12} {tr:>12} {tp:>12}",
            pct(o.recall()),
            pct(o.precision())
        );
    }
    println!(
        "{:<16} {:>8} {:>12} {:>12} {:>12} {:>12}",
        "all",
        all_ours.labelled,
        pct(all_ours.recall()),
        pct(all_ours.precision()),
        if theirs_speed.is_some() {
            pct(all_theirs.recall())
        } else {
            "-".into()
        },
        if theirs_speed.is_some() {
            pct(all_theirs.precision())
        } else {
            "-".into()
        },
    );
    match theirs_speed {
        Some(t) => println!(
            "speed on these texts: tollgate {:.2} MB/s, presidio {:.4} MB/s, ratio {:.0}x",
            ours_speed / 1e6,
            t / 1e6,
            ours_speed / t
        ),
        None => println!(
            "speed on these texts: tollgate {:.2} MB/s",
            ours_speed / 1e6
        ),
    }
}
