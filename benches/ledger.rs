//! Ledger benchmark: the monthly chargeback of `tollgate report chargeback`
//! against DuckDB (from PyPI) running the equivalent SQL over the same raw
//! Parquet, in the same run, with both results shown equal.
//!
//!     cargo bench --bench ledger                     # 10,000,000 events
//!     TOLLGATE_BENCH_EVENTS=1000000 cargo bench --bench ledger
//!
//! The workload (35 days from 2026-09-28, so that October is complete) is
//! stored once with `tollgate demo --skip-ledger` under
//! `target/bench-ledger-<events>/` and reused by later runs. Needs
//! `python3` with `duckdb` (`pip install duckdb`).

#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark fails loudly

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use rust_decimal::Decimal;
use serde_json::{json, Value};

const START: &str = "2026-09-28";
const DAYS: u32 = 35;
const MONTH: &str = "2026-10";
const RUNS: usize = 3;

fn main() {
    let events: u64 = std::env::var("TOLLGATE_BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000_000);
    let bin = env!("CARGO_BIN_EXE_tollgate");
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("target/bench-ledger-{events}"));
    let data = root.join("tollgate-data");
    if !data.join("demo/summary.json").exists() {
        println!("storing {events} events under {} (once)...", root.display());
        std::fs::create_dir_all(&root).unwrap();
        let started = Instant::now();
        let out = Command::new(bin)
            .args(["demo", "--skip-ledger", "--start", START, "--days"])
            .arg(DAYS.to_string())
            .arg("--events-per-day")
            .arg(events.div_ceil(u64::from(DAYS)).to_string())
            .arg("--data-dir")
            .arg(&data)
            .current_dir(&root)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        println!("  stored in {:.0} s", started.elapsed().as_secs_f64());
    }
    let summary: Value =
        serde_json::from_slice(&std::fs::read(data.join("demo/summary.json")).unwrap()).unwrap();
    let stored = summary["counts"]["stored"].as_u64().unwrap_or(0);
    let bytes: u64 = walk(&data.join("tables"))
        .iter()
        .map(|f| f.metadata().map_or(0, |m| m.len()))
        .sum();
    println!(
        "workload: {stored} stored events ({:.0} MB of Parquet) in {}",
        bytes as f64 / 1e6,
        data.display()
    );

    // The demo's price book, for DuckDB with the same effective intervals.
    let book = tollgate_fixtures::demo_price_book().unwrap();
    let cfg = book.config();
    let far = 253_402_214_400_000_000i64;
    let rates = json!({
        "gpu": cfg.gpu.iter().map(|g| json!({"gpu_model": g.gpu_model, "tier": g.tier.as_str(),
            "from": g.effective_from.timestamp_micros(), "to": far,
            "rate": (g.per_gpu_second / Decimal::ONE_THOUSAND).to_string()})).collect::<Vec<_>>(),
        "tokens": cfg.tokens.iter().map(|t| json!({"model": t.model,
            "from": t.effective_from.timestamp_micros(), "to": far,
            "input": (t.input_per_million / Decimal::from(1_000_000)).to_string(),
            "output": (t.output_per_million / Decimal::from(1_000_000)).to_string()})).collect::<Vec<_>>(),
        "tools": cfg.tools.iter().map(|t| json!({"tool": t.tool,
            "from": t.effective_from.timestamp_micros(), "to": far,
            "fee": t.per_call.to_string()})).collect::<Vec<_>>(),
    });
    for kind in ["gpu", "tokens", "tools"] {
        let mut keys: Vec<String> = rates[kind]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                format!("{}{}{}", r["gpu_model"], r["tier"], r["model"]) + &r["tool"].to_string()
            })
            .collect();
        let n = keys.len();
        keys.dedup();
        assert_eq!(
            keys.len(),
            n,
            "the benchmark's rates assume one rate per key"
        );
    }
    let rates_path = root.join("rates.json");
    std::fs::write(&rates_path, rates.to_string()).unwrap();
    // The report prices with the demo's book too.
    std::fs::copy(
        data.join("demo/tollgate.demo.toml"),
        root.join("tollgate.toml"),
    )
    .unwrap();

    // The rollups, rebuilt from the raw tables (the incremental refresh is
    // the same code over fewer commit records).
    let started = Instant::now();
    let out = Command::new(bin)
        .args(["ledger", "rebuild", "--data-dir"])
        .arg(&data)
        .current_dir(&root)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rebuild = started.elapsed();
    print!("{}", String::from_utf8_lossy(&out.stdout));

    // Tollgate: the whole command, best of RUNS, ad hoc over the raw tables
    // and with the rollups.
    let period = tollgate_ledger::report::Period::month(MONTH, "UTC").unwrap();
    let chargeback = |extra: &[&str]| -> (Duration, Value) {
        let mut best = Duration::MAX;
        let mut report = Value::Null;
        for _ in 0..RUNS {
            let started = Instant::now();
            let out = Command::new(bin)
                .args(["report", "chargeback", "--month", MONTH, "--format", "json"])
                .args(extra)
                .arg("--data-dir")
                .arg(&data)
                .current_dir(&root)
                .output()
                .unwrap();
            best = best.min(started.elapsed());
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            report = serde_json::from_slice(&out.stdout).unwrap();
        }
        (best, report)
    };
    let (ours, report) = chargeback(&["--no-rollups"]);
    let (ours_rolled, rolled) = chargeback(&[]);
    assert_eq!(report, rolled, "the rollups give another statement");

    // DuckDB: the same aggregation; the query time, best of RUNS.
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/ledger_duckdb.py");
    let first_dt = period.start.date_naive().to_string();
    let last_dt = (period.end + chrono::Duration::days(2))
        .date_naive()
        .to_string();
    let mut theirs = f64::MAX;
    let mut theirs_process = Duration::MAX;
    let mut duck = Value::Null;
    for _ in 0..RUNS {
        let started = Instant::now();
        let out = Command::new("python3")
            .arg(&script)
            .arg(&data)
            .arg(&rates_path)
            .arg(period.start.timestamp_micros().to_string())
            .arg(period.end.timestamp_micros().to_string())
            .args([&first_dt, &last_dt])
            .output()
            .unwrap();
        theirs_process = theirs_process.min(started.elapsed());
        assert!(
            out.status.success(),
            "DuckDB peer failed (pip install duckdb?): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        duck = serde_json::from_slice(&out.stdout).unwrap();
        theirs = theirs.min(duck["seconds"].as_f64().unwrap());
    }

    // Equal results, by the documented rule (docs/ledger.md): every team
    // line equals DuckDB's exact sum for the team rounded to the cent (half
    // away from zero), and the total is the sum of those rounded lines, not
    // the exact total rounded (the two differ by up to half a cent a line).
    let dec = |v: &Value| v.as_str().unwrap().parse::<Decimal>().unwrap();
    let duck_teams: BTreeMap<String, Decimal> = duck["teams"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), dec(v)))
        .collect();
    println!("{:<28} {:>16} {:>22}", "team", "tollgate", "duckdb (exact)");
    for t in report["teams"].as_array().unwrap() {
        let key = format!(
            "{}/{}",
            t["tenant"].as_str().unwrap(),
            t["team"].as_str().unwrap()
        );
        let ours_line = dec(&t["total"]);
        let theirs_line = duck_teams.get(&key).copied().unwrap_or_default();
        println!("{key:<28} {ours_line:>16} {theirs_line:>22}");
        assert_eq!(ours_line, half_away(theirs_line), "{key} differs");
    }
    let duck_total: Decimal = duck_teams.values().sum();
    let duck_lines: Decimal = duck_teams.values().copied().map(half_away).sum();
    assert_eq!(dec(&report["total"]), duck_lines, "totals differ");
    println!(
        "{:<28} {:>16} {:>22}",
        "total",
        dec(&report["total"]),
        duck_total
    );
    println!("results equal: yes (every team line equal to DuckDB's exact sum rounded, the total to the sum of those lines; rollups and raw tables give the same statement)");
    println!(
        "tollgate report chargeback (whole command, raw tables): {:.2} s; DuckDB query: {theirs:.2} s (whole python process {:.2} s)",
        ours.as_secs_f64(),
        theirs_process.as_secs_f64()
    );
    let ratio = ours.as_secs_f64() / theirs;
    println!(
        "ratio ad hoc over raw tables, tollgate / DuckDB: {ratio:.2}x (goal <= 1.25x: {})",
        if ratio <= 1.25 { "met" } else { "NOT met" }
    );
    println!(
        "tollgate report chargeback (whole command, rollups): {:.2} s; rollups rebuilt in {:.1} s",
        ours_rolled.as_secs_f64(),
        rebuild.as_secs_f64()
    );
    let ratio = ours_rolled.as_secs_f64() / theirs;
    println!(
        "ratio with rollups, tollgate / DuckDB: {ratio:.2}x (goal <= 0.5x: {})",
        if ratio <= 0.5 { "met" } else { "NOT met" }
    );
}

/// A line's exact amount rounded to the cent as statements round it.
fn half_away(v: Decimal) -> Decimal {
    v.round_dp_with_strategy(2, rust_decimal::RoundingStrategy::MidpointAwayFromZero)
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}
