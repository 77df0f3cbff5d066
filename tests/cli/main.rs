//! The `tollgate` binary as a user runs it: help, demo, fixtures, validation,
//! configuration, and producing the workload to a real broker.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use std::path::Path;
use std::process::{Command, Output, Stdio};

use serde_json::Value;

mod alerts;
mod deploy;
mod e2e;
// The suite's longest test (about 3.5 minutes alone in a debug build). libtest
// starts tests in the order of their names, a few at a time: in a module
// named `isolation` it starts within seconds of the suite instead of last,
// and the rest run beside it.
mod isolation;
mod ledger;
mod pipeline;
mod shared;

fn tollgate(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tollgate"))
        .args(args)
        .current_dir(dir)
        .env_remove("TOLLGATE_CONFIG")
        .env("NO_COLOR", "1")
        .output()
        .expect("running tollgate")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Every file under `dir` (none if it does not exist).
fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if !dir.exists() {
        return out;
    }
    for entry in std::fs::read_dir(dir).unwrap() {
        let p = entry.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// Rows per table and every string value of every Parquet file under `dir`.
struct Tables {
    rows: std::collections::BTreeMap<String, u64>,
    text: String,
}

/// Every record batch of one Parquet file.
/// The files of audit table `table` that its commit chain lists now (what
/// readers read; files a compaction removed may still be on disk).
fn audit_files(data: &Path, table: &str) -> Vec<std::path::PathBuf> {
    let mut records = walk(&data.join("audit/_commits").join(table));
    records.sort();
    let mut live = std::collections::BTreeSet::new();
    for r in records {
        let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&r).unwrap()).unwrap();
        for f in v["removed"].as_array().unwrap() {
            live.remove(f["path"].as_str().unwrap());
        }
        for f in v["added"].as_array().unwrap() {
            live.insert(f["path"].as_str().unwrap().to_string());
        }
    }
    live.into_iter().map(|p| data.join(p)).collect()
}

fn batches(f: &Path) -> Vec<arrow::array::RecordBatch> {
    parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
        std::fs::File::open(f).unwrap(),
    )
    .unwrap()
    .build()
    .unwrap()
    .map(|b| b.unwrap())
    .collect()
}

fn parquet_strings(dir: &Path) -> Tables {
    use arrow::array::{Array, StringArray};
    let mut t = Tables {
        rows: Default::default(),
        text: String::new(),
    };
    for f in walk(dir) {
        let table = f
            .strip_prefix(dir)
            .unwrap()
            .iter()
            .next()
            .unwrap()
            .to_string_lossy()
            .to_string();
        for batch in batches(&f) {
            *t.rows.entry(table.clone()).or_default() += batch.num_rows() as u64;
            for col in batch.columns() {
                if let Some(s) = col.as_any().downcast_ref::<StringArray>() {
                    for i in 0..s.len() {
                        if s.is_valid(i) {
                            t.text.push_str(s.value(i));
                            t.text.push('\n');
                        }
                    }
                }
            }
        }
    }
    t
}

fn tollgate_stdin(dir: &Path, args: &[&str], stdin: impl AsRef<[u8]>) -> Output {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_tollgate"))
        .args(args)
        .current_dir(dir)
        .env_remove("TOLLGATE_CONFIG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Written from a thread (the child may answer before reading it all, or
    // stop early with an error, which the caller's assertions report).
    let mut input = child.stdin.take().unwrap();
    let bytes = stdin.as_ref().to_vec();
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(&bytes);
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    out
}

#[test]
fn pii_commands_redact_and_find_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let out = tollgate_stdin(
        dir.path(),
        &["pii", "redact", "--tenant", "acme"],
        "mail Alice@Example.com now\nno pii here\ncard 4111 1111 1111 1111\n",
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let lines: Vec<String> = text(&out.stdout).lines().map(str::to_string).collect();
    assert_eq!(lines.len(), 3, "one line out per line in");
    assert_eq!(lines[1], "no pii here");
    assert!(!lines[0].contains("Alice") && !lines[2].contains("4111"));
    assert!(
        text(&out.stderr).contains("1 card, 1 email"),
        "{}",
        text(&out.stderr)
    );

    let token = tollgate(
        dir.path(),
        &[
            "pii",
            "token",
            "--tenant",
            "acme",
            "--kind",
            "email",
            "alice@example.com",
        ],
    );
    let token = text(&token.stdout).trim().to_string();
    assert_eq!(
        lines[0],
        format!("mail {token} now"),
        "the same value gives the same token"
    );
    let other = tollgate(
        dir.path(),
        &[
            "pii",
            "token",
            "--tenant",
            "globex",
            "--kind",
            "email",
            "alice@example.com",
        ],
    );
    assert_ne!(
        text(&other.stdout).trim(),
        token,
        "another tenant, another token"
    );

    let out = tollgate_stdin(
        dir.path(),
        &["pii", "redact", "--tenant", "acme", "--json"],
        "{\"to\": [\"alice@example.com\"], \"n\": 1}\n",
    );
    let v: Value = serde_json::from_str(text(&out.stdout).trim()).unwrap();
    assert_eq!(v["to"][0].as_str().unwrap(), token);

    let keys = text(&tollgate(dir.path(), &["pii", "keys"]).stdout);
    assert!(
        keys.contains("acme: active k") && keys.contains("globex: active k"),
        "{keys}"
    );
    // Keys live sealed in the storage: the key itself (here recomputed
    // from a token's HMAC) appears in no stored object and no output.
    let acme_dir = dir
        .path()
        .join("tollgate-data/keys")
        .join(format!("t-{}", hex::encode("acme")));
    let sealed = std::fs::read_to_string(acme_dir.join("000001.json")).unwrap();
    let sealed: Value = serde_json::from_str(&sealed).unwrap();
    assert_eq!(sealed["tenant"], "acme");
    assert!(keys.contains(sealed["id"].as_str().unwrap()), "{keys}");
    assert!(
        !keys.contains(sealed["sealed"].as_str().unwrap()),
        "sealed keys are never printed"
    );

    let rotated = tollgate(dir.path(), &["pii", "rotate-key", "--tenant", "acme"]);
    assert!(rotated.status.success());
    let new = tollgate(
        dir.path(),
        &[
            "pii",
            "token",
            "--tenant",
            "acme",
            "--kind",
            "email",
            "alice@example.com",
        ],
    );
    assert_ne!(
        text(&new.stdout).trim(),
        token,
        "a new key gives new tokens"
    );
    let old_id = keys
        .lines()
        .find(|l| l.starts_with("acme"))
        .unwrap()
        .split("active ")
        .nth(1)
        .unwrap()
        .trim()
        .to_string();
    let old = tollgate(
        dir.path(),
        &[
            "pii",
            "token",
            "--tenant",
            "acme",
            "--kind",
            "email",
            "--key-id",
            &old_id,
            "alice@example.com",
        ],
    );
    assert_eq!(
        text(&old.stdout).trim(),
        token,
        "the old key still finds old tokens"
    );

    let refused = tollgate(dir.path(), &["pii", "shred", "--tenant", "acme"]);
    assert!(!refused.status.success() && text(&refused.stderr).contains("--yes"));
    let shredded = tollgate(dir.path(), &["pii", "shred", "--tenant", "acme", "--yes"]);
    assert!(text(&shredded.stdout).contains("deleted 2 key(s)"));
    let bad = tollgate(
        dir.path(),
        &["pii", "token", "--tenant", "acme", "--kind", "emails", "x"],
    );
    assert!(text(&bad.stderr).contains("neither a built-in kind"));
}

#[test]
fn help_explains_every_command() {
    let dir = tempfile::tempdir().unwrap();
    for args in [
        vec!["--help"],
        vec!["demo", "--help"],
        vec!["fixtures", "generate", "--help"],
        vec!["events", "validate", "--help"],
        vec!["config", "check", "--help"],
        vec!["config", "show", "--help"],
        vec!["run", "--help"],
        vec!["verify", "--help"],
        vec!["pii", "redact", "--help"],
        vec!["pii", "token", "--help"],
        vec!["ledger", "rebuild", "--help"],
        vec!["alerts", "run", "--help"],
        vec!["alerts", "replay", "--help"],
        vec!["quota", "check", "--help"],
    ] {
        let out = tollgate(dir.path(), &args);
        assert!(out.status.success(), "{args:?}");
        let help = text(&out.stdout);
        assert!(help.contains("Usage: tollgate"), "{args:?}: {help}");
        assert!(
            help.lines().count() > 5,
            "{args:?} help is too thin: {help}"
        );
    }
    let out = tollgate(dir.path(), &["frobnicate"]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("unrecognized subcommand"));
}

#[test]
fn demo_runs_without_kafka_and_reports() {
    let dir = tempfile::tempdir().unwrap();
    let out = tollgate(
        dir.path(),
        &["demo", "--days", "12", "--events-per-day", "600"],
    );
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
    assert!(
        stdout.contains("consumed") && stdout.contains("dead-lettered"),
        "{stdout}"
    );
    let summary: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("tollgate-data/demo/summary.json")).unwrap(),
    )
    .unwrap();
    let c = &summary["counts"];
    let (consumed, stored, dead) = (
        c["consumed"].as_u64().unwrap(),
        c["stored"].as_u64().unwrap(),
        c["dead_lettered"].as_u64().unwrap(),
    );
    assert!(consumed > 6000, "{c}");
    assert_eq!(consumed, stored + dead, "nothing is lost");
    assert_eq!(c["mismatches"], 0);
    assert!(dead > 0 && c["upcast_from_v0"].as_u64().unwrap() > 0);
    // Every table is real Parquet; dead letters keep the redacted payload.
    let tables = parquet_strings(&dir.path().join("tollgate-data/tables"));
    assert_eq!(tables.rows.get("events").copied().unwrap_or(0), stored);
    assert_eq!(tables.rows.get("dead_letters").copied().unwrap_or(0), dead);
    assert!(
        tables.rows.get("tool_calls").copied().unwrap_or(0) > 0
            && tables.rows.get("gpu_usage").copied().unwrap_or(0) > 0
    );
    assert!(
        tables.text.contains("<email:"),
        "redacted payloads are stored as tokens"
    );
    assert!(c["redacted_by_kind"]["email"].as_u64().unwrap() > 0);
    assert_eq!(summary["verify"]["ok"], true);
    let v = tollgate(dir.path(), &["verify"]);
    assert!(
        v.status.success() && text(&v.stdout).contains("OK"),
        "{}",
        text(&v.stdout)
    );

    // No raw PII of the generator's pool anywhere the demo wrote (the
    // Parquet files decoded, every other file as text) or printed.
    let params = tollgate_fixtures::Params::ending_before(chrono::Utc::now().date_naive());
    let generator =
        tollgate_fixtures::Generator::new(params, tollgate_fixtures::demo_price_book().unwrap())
            .unwrap();
    let mut written = vec![text(&out.stdout), text(&out.stderr), tables.text];
    for entry in walk(&dir.path().join("tollgate-data")) {
        if entry.extension().is_some_and(|e| e == "parquet") {
            continue;
        }
        written.push(String::from_utf8_lossy(&std::fs::read(&entry).unwrap()).into_owned());
    }
    let mut checked = 0;
    for (kind, value) in generator.pii().all() {
        for w in &written {
            assert!(
                !w.contains(value),
                "raw {kind:?} {value:?} found in the demo's output"
            );
        }
        checked += 1;
    }
    assert!(checked >= 300);
    // The written config loads.
    let cfg = dir.path().join("tollgate-data/demo/tollgate.demo.toml");
    let out = tollgate(
        dir.path(),
        &["--config", cfg.to_str().unwrap(), "config", "check"],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("5 team(s)"));
}

#[test]
fn fixtures_are_byte_identical_for_a_seed() {
    let dir = tempfile::tempdir().unwrap();
    let args = [
        "fixtures",
        "generate",
        "--days",
        "35",
        "--seed",
        "7",
        "--start",
        "2026-10-01",
        "--events-per-day",
        "300",
        "-q",
    ];
    let a = tollgate(dir.path(), &args);
    let b = tollgate(dir.path(), &args);
    assert!(a.status.success(), "{}", text(&a.stderr));
    assert!(!a.stdout.is_empty());
    assert_eq!(a.stdout, b.stdout, "same seed, different bytes");
    let lines = a
        .stdout
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .count();
    assert!(lines > 35 * 250, "{lines} lines");

    // Written to a file with the report, the scenario is there.
    let report = dir.path().join("report.json");
    let mut with_report = args[..args.len() - 1].to_vec();
    with_report.extend(["-o", "w.ndjson", "--report", "report.json"]);
    let out = tollgate(dir.path(), &with_report);
    assert!(out.status.success());
    assert_eq!(
        std::fs::read(dir.path().join("w.ndjson")).unwrap(),
        a.stdout
    );
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("spike: search (acme)") && stderr.contains("quota: vision (globex)"),
        "{stderr}"
    );
    let r: Value = serde_json::from_str(&std::fs::read_to_string(report).unwrap()).unwrap();
    assert_eq!(r["spike"]["team"], "search");
    assert_eq!(r["quota"]["team"], "vision");
    assert_eq!(r["anomalies"].as_array().unwrap().len(), 1);
    assert!(r["quota"]["warning_date"].as_str() < r["quota"]["exhausted_date"].as_str());
}

#[test]
fn events_validate_names_each_problem() {
    let dir = tempfile::tempdir().unwrap();
    let good = r#"{"specversion":"1.0","id":"a","source":"s","type":"dev.tollgate.gpu_usage.v1","time":"2026-11-03T14:00:00Z","data":{"tenant":"acme","team":"t","user":"u","environment":"prod","workload_id":"w","workload_kind":"notebook","gpu_model":"L4","gpu_count":1,"interval_start":"2026-11-03T13:00:00Z","interval_end":"2026-11-03T14:00:00Z","pricing_tier":"spot","node":"n","region":"r"}}"#;
    let zero = good.replace("\"gpu_count\":1", "\"gpu_count\":0");
    // A line far over the event size limit, then hostile keys and values.
    let huge = format!("{{\"id\":\"{}\"}}", "x".repeat(600_000));
    let key = good.replace(
        "\"region\":\"r\"",
        "\"region\":\"r\",\"alice@example.com\\nline 9: ok\":1",
    );
    let user = good.replace("\"user\":\"u\"", "\"user\":\"bob\\u0040corp.example\"");
    let float = good.replace("\"gpu_count\":1", "\"gpu_count\":8.0");
    std::fs::write(
        dir.path().join("e.ndjson"),
        format!("{good}\n{zero}\nnot json\n\n{huge}\n{key}\n{user}\n{float}\n"),
    )
    .unwrap();
    let out = tollgate(
        dir.path(),
        &[
            "events",
            "validate",
            "e.ndjson",
            "--received-at",
            "2026-11-03T14:01:00Z",
        ],
    );
    assert_eq!(
        out.status.code(),
        Some(1),
        "exit 1 when any line is refused"
    );
    let stdout = text(&out.stdout);
    assert!(stdout.contains("line 1: ok gpu_usage"), "{stdout}");
    assert!(
        stdout.contains("line 2: rejected [out_of_range] data.gpu_count: must be 1..=1024, got 0"),
        "{stdout}"
    );
    assert!(
        stdout.contains("line 3: rejected [invalid_json] $: is not valid JSON"),
        "{stdout}"
    );
    assert!(
        stdout.contains("line 5: rejected [too_large] $: the line is longer than 262144 bytes"),
        "{stdout}"
    );
    assert!(
        stdout.contains("line 6: rejected [unknown_field] data.<key #"),
        "{stdout}"
    );
    assert!(
        stdout.contains("line 7: rejected [pii_in_identifier] data.user:"),
        "{stdout}"
    );
    assert!(stdout.contains("line 8: ok gpu_usage"), "{stdout}");
    assert!(
        !stdout.contains("alice") && !stdout.contains("bob") && !stdout.contains("line 9"),
        "user content in the output: {stdout}"
    );
    assert!(
        text(&out.stderr).contains("checked 7 event(s): 2 valid, 5 rejected"),
        "{}",
        text(&out.stderr)
    );
    std::fs::write(dir.path().join("ok.ndjson"), format!("{good}\n")).unwrap();
    let out = tollgate(
        dir.path(),
        &[
            "events",
            "validate",
            "ok.ndjson",
            "--received-at",
            "2026-11-03T14:01:00Z",
            "--json",
        ],
    );
    assert!(out.status.success());
    let v: Value = serde_json::from_str(text(&out.stdout).trim()).unwrap();
    assert_eq!(
        (v["ok"].as_bool(), v["kind"].as_str()),
        (Some(true), Some("gpu_usage"))
    );
}

#[test]
fn config_errors_are_clear_and_secrets_hidden() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("tollgate.toml"),
        "[kafka]\nbrokrs = \"x\"\n",
    )
    .unwrap();
    let out = tollgate(dir.path(), &["config", "check"]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.contains("brokrs") && err.contains("tollgate.toml"),
        "{err}"
    );

    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/tollgate.example.toml");
    let out = Command::new(env!("CARGO_BIN_EXE_tollgate"))
        .args(["--config", example.to_str().unwrap(), "config", "show"])
        .env("TOLLGATE__ALERTS__SMTP__PASSWORD", "s3cr3t-pass")
        .env("TOLLGATE__KAFKA__BROKERS", "127.0.0.1:39092")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let shown = text(&out.stdout);
    assert!(shown.contains("127.0.0.1:39092"), "env overrides the file");
    assert!(!shown.contains("s3cr3t"), "{shown}");
    assert!(
        shown.contains("alerts.smtp.password"),
        "says the secret is set"
    );

    let out = tollgate(dir.path(), &["--config", "missing.toml", "config", "check"]);
    assert!(text(&out.stderr).contains("missing.toml does not exist"));
}

#[test]
fn fixtures_produce_to_a_real_broker() {
    let Some(brokers) = test_broker() else { return };
    let dir = tempfile::tempdir().unwrap();
    let topic = format!("tollgate-cli-{}", std::process::id());
    // The same workload as NDJSON, to count what the broker must hold.
    let args = [
        "fixtures",
        "generate",
        "--days",
        "3",
        "--events-per-day",
        "400",
        "--seed",
        "11",
        "-q",
    ];
    let ndjson = tollgate(dir.path(), &args);
    let expected = ndjson
        .stdout
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .count();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("ingest/tests/kafka_interop.py");
    // The topic does not exist: it is created with kafka.partitions.
    let mut kargs = args.to_vec();
    kargs.extend(["--kafka", "--brokers", &brokers, "--topic", &topic]);
    let out = Command::new(env!("CARGO_BIN_EXE_tollgate"))
        .args(&kargs)
        .env("TOLLGATE__KAFKA__PARTITIONS", "3")
        .env("TOLLGATE__KAFKA__DEAD_LETTER_TOPIC", format!("{topic}-dlq"))
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));

    let read = Command::new("python3")
        .arg(script)
        .args(["consume", &brokers, &topic, &expected.to_string()])
        .stderr(Stdio::inherit())
        .output()
        .unwrap();
    assert!(
        read.status.success(),
        "kafka-python did not read {expected} records"
    );
    let lines: Vec<Value> = text(&read.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), expected);
    assert!(
        lines
            .iter()
            .all(|l| l["key"].as_str().is_some_and(|k| !k.is_empty())),
        "every record is keyed by team"
    );
    let partitions: std::collections::BTreeSet<i64> = lines
        .iter()
        .map(|l| l["partition"].as_i64().unwrap())
        .collect();
    assert!(
        partitions.len() > 1 && partitions.iter().all(|p| (0..3).contains(p)),
        "the created topic has the 3 configured partitions: {partitions:?}"
    );
}

#[test]
fn the_documented_audit_script_agrees_with_verify() {
    if std::process::Command::new("jq")
        .arg("--version")
        .output()
        .is_err()
    {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must install jq (see .ci/run)"
        );
        eprintln!("SKIPPED: jq is not installed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = tollgate(
        dir.path(),
        &["demo", "--days", "12", "--events-per-day", "1800"],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/audit/verify-chain.sh");
    let root = dir.path().join("tollgate-data");
    let audit = || {
        Command::new("bash")
            .arg(&script)
            .current_dir(&root)
            .output()
            .unwrap()
    };
    let ok = audit();
    assert!(
        ok.status.success() && text(&ok.stdout).contains("audit OK"),
        "{}{}",
        text(&ok.stdout),
        text(&ok.stderr)
    );

    // Change one byte of a file: both the script and verify fail.
    let victim = walk(&root.join("tables/tool_calls"))[0].clone();
    let original = std::fs::read(&victim).unwrap();
    let mut bytes = original.clone();
    bytes[100] ^= 0x20;
    std::fs::write(&victim, bytes).unwrap();
    assert!(!audit().status.success());
    let v = tollgate(dir.path(), &["verify"]);
    assert_eq!(v.status.code(), Some(1));
    assert!(
        text(&v.stderr).contains("hash_mismatch"),
        "{}",
        text(&v.stderr)
    );

    std::fs::write(&victim, original).unwrap();
    assert!(audit().status.success());

    // Change one byte of the earliest day's rollup file: a report of its
    // month refuses, naming the file and the rebuild, and verify and the
    // script name it.
    let mut rollups = walk(&root.join("ledger/rollups/hourly"));
    rollups.sort();
    let victim = rollups.first().expect("the demo built rollups").clone();
    let rel = victim
        .strip_prefix(&root)
        .unwrap()
        .to_string_lossy()
        .to_string();
    let month = rel.split("dt=").nth(1).map(|d| d[..7].to_string()).unwrap();
    let original = std::fs::read(&victim).unwrap();
    let mut bytes = original.clone();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x01;
    std::fs::write(&victim, bytes).unwrap();
    let r = tollgate(
        dir.path(),
        &[
            "--config",
            "tollgate-data/demo/tollgate.demo.toml",
            "report",
            "chargeback",
            "--month",
            &month,
            "--tz",
            "UTC",
        ],
    );
    assert!(!r.status.success(), "{}", text(&r.stdout));
    let err = text(&r.stderr);
    assert!(
        err.contains(&rel) && err.contains("tollgate ledger rebuild"),
        "{err}"
    );
    let script_out = audit();
    assert!(!script_out.status.success());
    assert!(
        text(&script_out.stdout).contains(&format!("{rel}: FAILED")),
        "{}",
        text(&script_out.stdout)
    );
    let v = tollgate(dir.path(), &["verify"]);
    assert_eq!(v.status.code(), Some(1));
    assert!(
        text(&v.stdout).contains(&format!("PROBLEM {rel}")),
        "{}",
        text(&v.stdout)
    );
    std::fs::write(&victim, original).unwrap();

    // Closed statements: the script checks their chain and content hashes
    // as verify does. (Months long over, so the test holds on any day.)
    for month in ["2020-01", "2020-02"] {
        let c = tollgate(
            dir.path(),
            &[
                "--config",
                "tollgate-data/demo/tollgate.demo.toml",
                "report",
                "close",
                "--month",
                month,
            ],
        );
        assert!(c.status.success(), "{}", text(&c.stderr));
    }
    let ok = audit();
    assert!(
        ok.status.success(),
        "{}{}",
        text(&ok.stdout),
        text(&ok.stderr)
    );
    let first = root.join("ledger/statements/000001.json");
    let original = std::fs::read_to_string(&first).unwrap();
    std::fs::write(
        &first,
        original.replacen("\"closed_at\": \"", "\"closed_at\": \"1", 1),
    )
    .unwrap();
    let script_out = audit();
    assert!(!script_out.status.success());
    let said = text(&script_out.stdout);
    assert!(
        said.contains("EDITED STATEMENT ledger/statements/000001.json")
            && said.contains("BROKEN STATEMENT LINK at ledger/statements/000002.json"),
        "{said}"
    );
    let v = tollgate(dir.path(), &["verify"]);
    assert_eq!(v.status.code(), Some(1));
    assert!(
        text(&v.stdout).contains("PROBLEM ledger/statements/000001.json"),
        "{}",
        text(&v.stdout)
    );
    std::fs::write(&first, original).unwrap();

    // The query audit: three audited queries, then a record deleted and a
    // file's byte changed; the script and verify name both.
    let config = "tollgate-data/demo/tollgate.demo.toml";
    let key = tollgate(
        dir.path(),
        &[
            "--config", config, "apikey", "create", "--name", "audit", "--org", "acme", "--role",
            "auditor",
        ],
    );
    assert!(key.status.success(), "{}", text(&key.stderr));
    std::fs::write(dir.path().join("audit.token"), text(&key.stdout).trim()).unwrap();
    for _ in 0..3 {
        let q = tollgate(
            dir.path(),
            &[
                "--config",
                config,
                "sql",
                "--token",
                "audit.token",
                "SELECT count(*) FROM query_log",
            ],
        );
        assert!(q.status.success(), "{}", text(&q.stderr));
    }
    let ok = audit();
    assert!(
        ok.status.success(),
        "{}{}",
        text(&ok.stdout),
        text(&ok.stderr)
    );
    let chain = root.join("audit/_commits/query_log");
    let second = chain.join(format!("{:020}.json", 2));
    let record = std::fs::read(&second).unwrap();
    std::fs::remove_file(&second).unwrap();
    let said = text(&audit().stdout);
    assert!(
        said.contains("AUDIT SEQUENCE GAP at audit/_commits/query_log/"),
        "{said}"
    );
    let v = tollgate(dir.path(), &["verify"]);
    assert_eq!(v.status.code(), Some(1));
    assert!(
        text(&v.stdout).contains("(sequence_gap)"),
        "{}",
        text(&v.stdout)
    );
    std::fs::write(&second, record).unwrap();
    let victim = audit_files(&root, "query_log")[0].clone();
    let original = std::fs::read(&victim).unwrap();
    let mut bytes = original.clone();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x01;
    std::fs::write(&victim, bytes).unwrap();
    let rel = victim
        .strip_prefix(&root)
        .unwrap()
        .to_string_lossy()
        .to_string();
    let said = text(&audit().stdout);
    assert!(said.contains(&format!("{rel}: FAILED")), "{said}");
    let v = tollgate(dir.path(), &["verify"]);
    assert!(
        text(&v.stdout).contains(&format!("PROBLEM {rel}"))
            && text(&v.stdout).contains("hash_mismatch"),
        "{}",
        text(&v.stdout)
    );
    std::fs::write(&victim, original).unwrap();
    assert!(audit().status.success());
}

/// The test broker's address, or `None` (with a loud message) outside CI;
/// in CI a missing broker fails the test.
fn test_broker() -> Option<String> {
    match std::env::var("TOLLGATE_TEST_KAFKA") {
        Ok(b) if !b.is_empty() => Some(b),
        _ => {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI must set TOLLGATE_TEST_KAFKA"
            );
            eprintln!("SKIPPED: set TOLLGATE_TEST_KAFKA=127.0.0.1:PORT to run the broker tests");
            None
        }
    }
}

/// Creates a topic with kafka-python (the independent client).
fn create_topic(brokers: &str, topic: &str, partitions: u32) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("ingest/tests/kafka_interop.py");
    let ok = Command::new("python3")
        .arg(script)
        .args(["create", brokers, topic, &partitions.to_string()])
        .status()
        .unwrap();
    assert!(ok.success(), "creating topic {topic}");
}

/// Reads one string column of every Parquet file of a table.
fn column(dir: &Path, table: &str, name: &str) -> Vec<String> {
    use arrow::array::{Array, StringArray};
    let mut out = Vec::new();
    for f in walk(&dir.join("tables").join(table)) {
        for batch in batches(&f) {
            let col = batch
                .column_by_name(name)
                .unwrap()
                .as_any()
                .downcast_ref::<StringArray>()
                .unwrap()
                .clone();
            out.extend((0..col.len()).map(|i| col.value(i).to_string()));
        }
    }
    out
}

#[test]
fn run_stores_every_record_once_across_kills() {
    let Some(brokers) = test_broker() else { return };
    let dir = tempfile::tempdir().unwrap();
    let nonce = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros();
    let topic = format!("tollgate-run-{}-{nonce}", std::process::id());
    create_topic(&brokers, &topic, 3);
    create_topic(&brokers, &format!("{topic}-dlq"), 1);
    std::fs::write(
        dir.path().join("tollgate.toml"),
        format!(
            "[kafka]\nbrokers = \"{brokers}\"\nraw_topic = \"{topic}\"\ndead_letter_topic = \"{topic}-dlq\"\ngroup_id = \"g-{topic}\"\n\
             [kafka.properties]\n\"session.timeout.ms\" = \"6000\"\n\"heartbeat.interval.ms\" = \"1000\"\n\"batch.num.messages\" = \"1\"\n\
             [ingest]\nbatch_records = 300\nbatch_latency = \"1s\"\n"
        ),
    )
    .unwrap();

    // One record per producer batch: the tansu broker used in tests answers a
    // fetch that starts inside a record batch from the next batch on (real
    // Kafka returns the batch that holds the offset), which would make a
    // resume skip records. `run` refuses to skip (it seeks back and, if the
    // records stay out of reach, stops with an error), so the test keeps
    // every offset at a batch start.
    // The workload, produced by our emitter; and the same workload in-process
    // for the expected ids (the generator labels every bad event).
    let first = pipeline::first_day(4);
    let start = first.to_string();
    let args = [
        "fixtures",
        "generate",
        "--start",
        &start,
        "--days",
        "4",
        "--events-per-day",
        "2500",
        "--seed",
        "21",
        "-q",
    ];
    let mut produce = args.to_vec();
    produce.push("--kafka");
    let out = tollgate(dir.path(), &produce);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let labelled = pipeline::labelled(first, 4, 2500, 21);
    let (valid, invalid) = (labelled.valid, labelled.invalid);

    // Kill the pipeline with SIGKILL at moments spread over the drain.
    let mut rng = nonce as u64 | 1;
    for round in 0..10 {
        // A fresh consumer group per restart: resuming must never depend on
        // Kafka's group offsets (a new group starts at offset 0 and must skip
        // all that is stored), and the tansu broker used here does not always
        // expel a SIGKILLed member, which would leave a restarted member of
        // the same group without partitions.
        let mut child = Command::new(env!("CARGO_BIN_EXE_tollgate"))
            .args(["run", "--writer-id", &format!("w{round}")])
            .env("TOLLGATE__KAFKA__GROUP_ID", format!("g-{topic}-{round}"))
            .current_dir(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        std::thread::sleep(std::time::Duration::from_millis(1000 + rng % 4000));
        child.kill().unwrap();
        child.wait().unwrap();
    }
    let last = Command::new(env!("CARGO_BIN_EXE_tollgate"))
        .args(["run", "--writer-id", "final", "--exit-when-idle", "8s"])
        .env("TOLLGATE__KAFKA__GROUP_ID", format!("g-{topic}-final"))
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(last.status.success(), "{}", text(&last.stderr));

    let v = tollgate(dir.path(), &["verify"]);
    assert!(v.status.success(), "{}{}", text(&v.stdout), text(&v.stderr));
    let root = dir.path().join("tollgate-data");
    let ids = column(&root, "events", "event_id");
    let stored: std::collections::BTreeSet<String> = ids.iter().cloned().collect();
    assert_eq!(ids.len(), stored.len(), "an event was stored twice");
    assert_eq!(
        stored.len(),
        valid.len(),
        "stored {} of {} valid events",
        stored.len(),
        valid.len()
    );
    assert!(
        stored == valid,
        "the stored ids differ from the produced valid ids"
    );
    assert_eq!(
        column(&root, "dead_letters", "reason_code").len() as u64,
        invalid
    );
}

#[test]
fn pii_find_lists_a_tenants_rows_that_hold_a_value() {
    let dir = tempfile::tempdir().unwrap();
    let out = tollgate(
        dir.path(),
        &["demo", "--days", "12", "--events-per-day", "600"],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let params = tollgate_fixtures::Params::ending_before(chrono::Utc::now().date_naive());
    let generator =
        tollgate_fixtures::Generator::new(params, tollgate_fixtures::demo_price_book().unwrap())
            .unwrap();
    let emails: Vec<String> = generator
        .pii()
        .all()
        .filter(|(k, _)| *k == tollgate_fixtures::pii::PiiKind::Email)
        .map(|(_, v)| v.to_string())
        .collect();
    // Some pool email occurs in acme's stored events; find it by value.
    let hit = emails
        .iter()
        .find_map(|e| {
            let out = tollgate(
                dir.path(),
                &["pii", "find", "--tenant", "acme", "--kind", "email", e],
            );
            out.status
                .success()
                .then(|| (e.clone(), text(&out.stdout), text(&out.stderr)))
        })
        .expect("some generated email is stored for acme");
    let (email, rows, summary) = hit;
    assert!(
        !rows.is_empty()
            && rows
                .lines()
                .all(|l| l.starts_with("event ") || l.starts_with("dead letter ")),
        "{rows}"
    );
    let acme_token = tollgate(
        dir.path(),
        &[
            "pii", "token", "--tenant", "acme", "--kind", "email", &email,
        ],
    );
    assert!(
        summary.contains(text(&acme_token.stdout).trim()),
        "{summary}"
    );
    // The value upper-cased is the same value (normalised).
    let upper = tollgate(
        dir.path(),
        &[
            "pii",
            "find",
            "--tenant",
            "acme",
            "--kind",
            "email",
            &email.to_uppercase(),
        ],
    );
    assert_eq!(text(&upper.stdout), rows);
    // A value nobody mentioned: nothing found, exit 1.
    let none = tollgate(
        dir.path(),
        &[
            "pii",
            "find",
            "--tenant",
            "acme",
            "--kind",
            "email",
            "nobody@nowhere.example",
        ],
    );
    assert_eq!(none.status.code(), Some(1));
    assert!(text(&none.stdout).is_empty());
}
