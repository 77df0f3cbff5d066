//! Instances that share nothing but the storage (moto's S3 server on
//! 127.0.0.1), each with its own `data_dir`: they agree on every tenant's
//! key, on closed statements and on `verify`, and deleting every `data_dir`
//! changes no answer.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::{text, tollgate};

/// A directory with its own `tollgate.toml` on the shared storage.
fn instance(root: &Path, name: &str, storage: &str, master: Option<&Path>) -> PathBuf {
    let dir = root.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    let data = dir.join("data");
    let mut cfg = storage.replacen(
        "[storage]\n",
        &format!("[storage]\ndata_dir = {:?}\n", data.display().to_string()),
        1,
    );
    if let Some(m) = master {
        cfg.push_str(&format!(
            "[redaction]\nmaster_key_file = {:?}\n",
            m.display().to_string()
        ));
    }
    std::fs::write(dir.join("tollgate.toml"), cfg).unwrap();
    dir
}

fn run(dir: &Path, args: &[&str]) -> std::process::Output {
    let mut all = vec!["--config", "tollgate.toml"];
    all.extend_from_slice(args);
    tollgate(dir, &all)
}

fn ok(dir: &Path, args: &[&str]) -> String {
    let out = run(dir, args);
    assert!(
        out.status.success(),
        "tollgate {args:?}: {}",
        text(&out.stderr)
    );
    text(&out.stdout)
}

const TOKEN: &[&str] = &[
    "pii",
    "token",
    "--tenant",
    "newco",
    "--kind",
    "email",
    "alice@example.com",
];

#[test]
fn instances_sharing_only_an_s3_storage_agree_on_keys_statements_and_verify() {
    let Some(moto) = tollgate_fixtures::moto::start() else {
        return;
    };
    moto.create_bucket("shared");
    let storage = moto.storage_toml("s3://shared/tollgate");
    let root = tempfile::tempdir().unwrap();
    let master = root.path().join("master-key");
    std::fs::write(
        &master,
        "5f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0\n",
    )
    .unwrap();

    // Without a master key an instance on S3 refuses to start, saying what to set.
    let bare = instance(root.path(), "bare", &storage, None);
    let out = run(&bare, TOKEN);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("redaction.master_key_file")
            && err.contains("TOLLGATE__REDACTION__MASTER_KEY"),
        "{err}"
    );

    // Eight processes of two instances see a new tenant at once: one key,
    // one token.
    let a = instance(root.path(), "a", &storage, Some(&master));
    let b = instance(root.path(), "b", &storage, Some(&master));
    let tokens: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|i| {
                let dir = if i % 2 == 0 { &a } else { &b };
                s.spawn(move || ok(dir, TOKEN).trim().to_string())
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(tokens[0].starts_with("<email:"), "{tokens:?}");
    assert!(tokens.iter().all(|t| *t == tokens[0]), "{tokens:?}");
    let keys = ok(&b, &["pii", "keys"]);
    assert_eq!(keys.matches("newco: active k").count(), 1, "{keys}");
    assert!(!keys.contains("retired"), "{keys}");

    // A rotation through one instance is what the other uses next.
    ok(&a, &["pii", "rotate-key", "--tenant", "newco"]);
    let rotated = ok(&b, TOKEN);
    assert_ne!(rotated.trim(), tokens[0]);
    assert_eq!(ok(&a, TOKEN), rotated);

    // A month closed through one instance is frozen for the other.
    let close = ok(&a, &["report", "close", "--month", "2020-01"]);
    assert!(close.contains("ledger/statements/000001.json"), "{close}");
    let chargeback = [
        "report",
        "chargeback",
        "--month",
        "2020-01",
        "--format",
        "json",
    ];
    let from_a = ok(&a, &chargeback);
    let out = run(&b, &chargeback);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), from_a);
    assert!(
        text(&out.stderr).contains("2020-01 is closed"),
        "{}",
        text(&out.stderr)
    );
    let again = run(&b, &["report", "close", "--month", "2020-01"]);
    assert!(
        !again.status.success(),
        "closed once, whichever instance asks"
    );

    // verify through either instance checks the statements and opens the keys.
    let verified = ok(&b, &["verify", "--json"]);
    let v: Value = serde_json::from_str(&verified).unwrap();
    assert_eq!(v["problems"], Value::Array(vec![]), "{v}");
    let derived = v["derived"].as_array().unwrap();
    let chain = |name: &str| derived.iter().find(|d| d["name"] == name).unwrap().clone();
    assert_eq!(chain("closed statements")["links"], 1, "{v}");
    assert_eq!(chain("tenant keys")["links"], 2, "{v}");
    assert_eq!(
        chain("tenant keys")["files"],
        2,
        "opened with the master key: {v}"
    );

    // Nothing the instances rely on was in their data_dir: delete both and
    // every answer is the same.
    for d in [&a, &b] {
        let _ = std::fs::remove_dir_all(d.join("data"));
    }
    assert_eq!(ok(&b, TOKEN), rotated);
    assert_eq!(ok(&b, &chargeback), from_a);
    let again: Value = serde_json::from_str(&ok(&a, &["verify", "--json"])).unwrap();
    assert_eq!(again["problems"], Value::Array(vec![]), "{again}");
}

/// Two alert evaluators (two `tollgate alerts replay` at once, each with its
/// own `data_dir`) over one S3 storage and one SMTP server: each email
/// arrives exactly once, and `verify` checks every claim.
#[test]
fn two_alert_evaluators_on_one_s3_storage_send_each_email_once() {
    use crate::alerts::{received, Sink};
    use crate::pipeline::free_port;

    let Some(moto) = tollgate_fixtures::moto::start() else {
        return;
    };
    moto.create_bucket("alerts");
    let root = tempfile::tempdir().unwrap();
    let r = root.path();
    let (start, days) = ("2026-10-10", 35);
    let out = tollgate(
        r,
        &[
            "demo",
            "--start",
            start,
            "--days",
            &days.to_string(),
            "--seed",
            "7",
            "--events-per-day",
            "600",
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    // The demo's tables and commit records, on S3.
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/s3_put_tree.py");
    let put = std::process::Command::new("python3")
        .arg(script)
        .args([moto.endpoint.as_str(), "alerts", "tollgate"])
        .arg(r.join("tollgate-data"))
        .args(["tables", "commits", "keys"])
        .output()
        .unwrap();
    assert!(put.status.success(), "{}", text(&put.stderr));

    // The demo sealed its tenant keys under the master key it generated.
    let master = r.join("tollgate-data/master.key");
    let port = free_port();
    let mail = r.join("mail");
    let _sink = Sink::start(port, &mail);
    let demo_cfg =
        std::fs::read_to_string(r.join("tollgate-data/demo/tollgate.demo.toml")).unwrap();
    let storage = format!(
        "{demo_cfg}\n{}[alerts]\nfrom = \"Tollgate <tollgate@example.com>\"\n\
         [alerts.smtp]\nhost = \"127.0.0.1\"\nport = {port}\nsecurity = \"plain\"\ntimeout = \"5s\"\n",
        moto.storage_toml("s3://alerts/tollgate")
    );
    let a = instance(r, "a", &storage, Some(&master));
    let b = instance(r, "b", &storage, Some(&master));
    let first =
        chrono::NaiveDate::parse_from_str(start, "%Y-%m-%d").unwrap() + chrono::Duration::days(1);
    let last = first + chrono::Duration::days(days - 1);
    let at = |d: chrono::NaiveDate| d.and_hms_opt(0, 0, 0).unwrap().and_utc().to_rfc3339();
    let (from, to) = (at(first), at(last));
    let replay = [
        "alerts", "replay", "--from", &from, "--to", &to, "--every", "1d",
    ];
    let outputs: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = [&a, &b]
            .into_iter()
            .map(|dir| s.spawn(|| ok(dir, &replay)))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let raised: usize = outputs.iter().map(|o| o.matches("raised ").count()).sum();
    assert_eq!(raised, 3, "each alert raised by one evaluator: {outputs:?}");

    // Emails still pending (taken by neither) go out with the next cycle.
    for dir in [&a, &b] {
        ok(dir, &["alerts", "run", "--once", "--at", &to]);
    }
    let mails = received(&mail);
    let kinds: Vec<&str> = ["quota_warning", "quota_exhausted", "anomaly"]
        .into_iter()
        .filter(|k| {
            mails
                .iter()
                .any(|(_, m)| m.contains(&format!("({k}), sent once")))
        })
        .collect();
    assert_eq!(mails.len(), 3, "each email exactly once: {outputs:?}");
    assert_eq!(kinds.len(), 3, "{kinds:?}");

    let status: Value = serde_json::from_str(&ok(&b, &["alerts", "status", "--json"])).unwrap();
    assert!(
        status
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["state"] == "done"),
        "{status}"
    );
    let v: Value = serde_json::from_str(&ok(&a, &["verify", "--json"])).unwrap();
    assert_eq!(v["problems"], Value::Array(vec![]), "{v}");
    let claims = v["derived"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["name"] == "alert claims")
        .unwrap()
        .clone();
    assert_eq!(
        (claims["links"].as_u64(), claims["files"].as_u64()),
        (Some(3), Some(3)),
        "{v}"
    );

    // `pii find` reads the tables where storage.url says (here S3).
    let mut params = tollgate_fixtures::Params::ending_before(last);
    (params.days, params.seed, params.start) = (days as u32, 7, first - chrono::Duration::days(1));
    params.events_per_day = 600;
    let generator =
        tollgate_fixtures::Generator::new(params, tollgate_fixtures::demo_price_book().unwrap())
            .unwrap();
    let found = generator
        .pii()
        .all()
        .filter(|(k, _)| *k == tollgate_fixtures::pii::PiiKind::Email)
        .find_map(|(_, e)| {
            let out = run(
                &b,
                &["pii", "find", "--tenant", "acme", "--kind", "email", e],
            );
            out.status
                .success()
                .then(|| (text(&out.stdout), text(&out.stderr)))
        })
        .expect("some generated email is found in acme's rows on S3");
    assert!(
        found
            .0
            .lines()
            .all(|l| l.starts_with("event ") || l.starts_with("dead letter ")),
        "{}",
        found.0
    );
    assert!(found.1.contains("s3://alerts/tollgate"), "{}", found.1);
}
