//! Alerts against a real SMTP server (aiosmtpd on 127.0.0.1): the fixture
//! workload yields exactly the expected emails (warning and exhaustion for
//! the quota team, one anomaly for the spike team, none for steady teams),
//! to the right addresses, with the ledger's figures; the server stopped
//! mid-run and restarted, and the evaluator SIGKILLed and restarted, still
//! deliver each email once; no fixture PII in any email; the admission API
//! and `quota check` deny the exhausted team until its quota is raised.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use chrono::{NaiveDate, NaiveTime};
use serde_json::Value;

use super::pipeline::{free_port, http};
use super::{text, tollgate};

const START: &str = "2026-10-10";
const DAYS: u32 = 35;
/// Events a day: the scenario (quota crossings, the spike) at a third of
/// the demo's default volume, which is all the assertions need.
const PER_DAY: u32 = 600;

/// The SMTP server, saving each message under `dir`.
pub(super) struct Sink {
    child: Child,
}

impl Sink {
    pub(super) fn start(port: u16, dir: &Path) -> Self {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/smtp_sink.py");
        let mut child = Command::new("/usr/bin/python3")
            .arg(script)
            .arg(port.to_string())
            .arg(dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3 with aiosmtpd (apt install python3-aiosmtpd)");
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "the SMTP server did not start");
            assert!(
                child.try_wait().unwrap().is_none(),
                "the SMTP server exited (is python3-aiosmtpd installed?)"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        Self { child }
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The messages received: (envelope, decoded text).
pub(super) fn received(dir: &Path) -> Vec<(Value, String)> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|r| r.filter_map(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default();
    files.retain(|p| p.extension().is_some_and(|e| e == "eml"));
    files.sort();
    files
        .iter()
        .map(|p| {
            let env: Value =
                serde_json::from_slice(&std::fs::read(p.with_extension("json")).unwrap()).unwrap();
            // Undo quoted-printable: soft line breaks and the escapes used.
            let raw = text(&std::fs::read(p).unwrap()).replace("\r\n", "\n");
            let decoded = raw
                .replace("=\n", "")
                .replace("=3D", "=")
                .replace("=20", " ");
            (env, decoded)
        })
        .collect()
}

/// A long-running tollgate in `dir`, its output discarded.
fn spawn(dir: &Path, args: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_tollgate"))
        .args(args)
        .current_dir(dir)
        .env_remove("TOLLGATE_CONFIG")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

fn midnight(d: NaiveDate) -> String {
    d.and_time(NaiveTime::MIN).and_utc().to_rfc3339()
}

#[test]
fn alerts_reach_the_leads_once_through_outages_and_kills() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let out = tollgate(
        d,
        &[
            "demo",
            "--start",
            START,
            "--days",
            &DAYS.to_string(),
            "--seed",
            "7",
            "--events-per-day",
            &PER_DAY.to_string(),
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let summary: Value =
        serde_json::from_slice(&std::fs::read(d.join("tollgate-data/demo/summary.json")).unwrap())
            .unwrap();
    let s = &summary["scenario"];
    let (quota_team, spike_team) = (
        s["quota"]["team"].as_str().unwrap().to_string(),
        s["spike"]["team"].as_str().unwrap().to_string(),
    );
    let day = |v: &Value| NaiveDate::parse_from_str(v.as_str().unwrap(), "%Y-%m-%d").unwrap();
    let warning_day = day(&s["quota"]["warning_date"]);
    let start = NaiveDate::parse_from_str(START, "%Y-%m-%d").unwrap();
    let end = start + chrono::Duration::days(DAYS.into());

    let port = free_port();
    let mail = d.join("mail");
    let demo_cfg =
        std::fs::read_to_string(d.join("tollgate-data/demo/tollgate.demo.toml")).unwrap();
    let cfg = format!(
        "{demo_cfg}\n[alerts]\nfrom = \"Tollgate <tollgate@example.com>\"\nretry_initial = \"1s\"\nevaluate_every = \"1h\"\n\
         [alerts.smtp]\nhost = \"127.0.0.1\"\nport = {port}\nsecurity = \"plain\"\ntimeout = \"3s\"\n"
    );
    std::fs::write(d.join("tollgate.toml"), &cfg).unwrap();

    // Up to the day after the warning day: one email, the warning.
    let sink = Sink::start(port, &mail);
    let replay = |from: NaiveDate, to: NaiveDate| {
        let out = tollgate(
            d,
            &[
                "alerts",
                "replay",
                "--from",
                &midnight(from),
                "--to",
                &midnight(to),
                "--every",
                "1d",
            ],
        );
        assert!(out.status.success(), "{}", text(&out.stderr));
        text(&out.stdout)
    };
    let first = replay(
        start + chrono::Duration::days(1),
        warning_day + chrono::Duration::days(1),
    );
    assert!(first.contains("raised quota_warning"), "{first}");
    assert_eq!(received(&mail).len(), 1, "{first}");

    // The SMTP server goes away: the rest is raised but waits.
    drop(sink);
    let second = replay(warning_day + chrono::Duration::days(2), end);
    assert!(second.contains("raised quota_exhausted"), "{second}");
    assert!(second.contains("raised anomaly"), "{second}");
    assert!(second.contains("deferred for a retry"), "{second}");
    let status: Value =
        serde_json::from_slice(&tollgate(d, &["alerts", "status", "--json"]).stdout).unwrap();
    let pending: Vec<&Value> = status
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["state"] == "pending")
        .collect();
    assert_eq!(pending.len(), 2, "{status}");
    assert!(pending
        .iter()
        .all(|a| a["retry"]["attempts"].as_u64() >= Some(1)));

    // Back: a cycle after the retry wait (1 s, doubled per attempt)
    // delivers them, once.
    let _sink = Sink::start(port, &mail);
    let deadline = Instant::now() + Duration::from_secs(90);
    while received(&mail).len() < 3 {
        assert!(
            Instant::now() < deadline,
            "the deferred emails were not delivered"
        );
        std::thread::sleep(Duration::from_secs(1));
        let out = tollgate(d, &["alerts", "run", "--once", "--at", &midnight(end)]);
        assert!(out.status.success(), "{}", text(&out.stderr));
    }
    assert_eq!(received(&mail).len(), 3);

    // The evaluator SIGKILLed mid-run and restarted: nothing sent twice.
    let mut child = spawn(d, &["alerts", "run"]);
    std::thread::sleep(Duration::from_secs(3));
    child.kill().unwrap();
    child.wait().unwrap();
    let out = tollgate(d, &["alerts", "run", "--once"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let again = replay(start + chrono::Duration::days(1), end);
    assert!(!again.contains("raised"), "{again}");

    // Exactly the expected emails, to the right people, with the ledger's figures.
    let mails = received(&mail);
    assert_eq!(mails.len(), 3, "every email once, none twice");
    let find = |kind: &str| {
        mails
            .iter()
            .find(|(_, m)| m.contains(&format!("({kind}), sent once")))
            .unwrap_or_else(|| panic!("no {kind} email"))
    };
    let lead = |team: &str, tenant: &str| format!("lead.{team}@{tenant}.example");
    let (env, warning) = find("quota_warning");
    assert_eq!(env["to"], serde_json::json!([lead(&quota_team, "globex")]));
    assert!(
        warning.contains(&format!("globex/{quota_team}")),
        "{warning}"
    );
    let (env, exhausted) = find("quota_exhausted");
    assert_eq!(
        env["to"],
        serde_json::json!([lead(&quota_team, "globex"), "finops@globex.example"])
    );
    assert!(
        exhausted.contains("denied by the admission API"),
        "{exhausted}"
    );
    let (env, anomaly) = find("anomaly");
    assert_eq!(env["to"], serde_json::json!([lead(&spike_team, "acme")]));
    assert!(anomaly.contains("What grew most"), "{anomaly}");
    // The warning's figures are the ledger's at that time.
    let at = midnight(warning_day + chrono::Duration::days(1));
    let q: Value = serde_json::from_slice(
        &tollgate(d, &["report", "quota", "--at", &at, "--format", "json"]).stdout,
    )
    .unwrap();
    let line = q["teams"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["team"] == quota_team.as_str())
        .unwrap();
    for field in ["spent", "forecast", "burn_pct"] {
        let v = line[field].as_str().unwrap();
        assert!(
            warning.contains(v),
            "{field} {v} not in the warning:\n{warning}"
        );
    }
    // No steady team was written to.
    for (env, _) in &mails {
        let to = env["to"].to_string();
        assert!(to.contains(&quota_team) || to.contains(&spike_team), "{to}");
    }
    // No fixture PII in any email.
    let mut params = tollgate_fixtures::Params::ending_before(end);
    (params.days, params.seed, params.start) = (DAYS, 7, start);
    params.events_per_day = PER_DAY;
    let generator =
        tollgate_fixtures::Generator::new(params, tollgate_fixtures::demo_price_book().unwrap())
            .unwrap();
    let mut checked = 0;
    for (kind, value) in generator.pii().all() {
        for (_, m) in &mails {
            assert!(!m.contains(value), "raw {kind:?} {value:?} in an email");
        }
        checked += 1;
    }
    assert!(checked >= 300);

    // The end of the day the quota team used up its quota (in its month).
    let exhausted_day = day(&s["quota"]["exhausted_date"]);
    admission(d, &quota_team, &spike_team, exhausted_day);
}

/// `quota check` and the API deny the exhausted team and allow the others;
/// a raised quota and a reload allow it again.
fn admission(d: &Path, quota_team: &str, spike_team: &str, exhausted: NaiveDate) {
    let at = exhausted
        .and_hms_opt(23, 59, 59)
        .unwrap()
        .and_utc()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let check = |team: &str| tollgate(d, &["quota", "check", "--team", team, "--at", &at]);
    let out = check(quota_team);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    assert!(
        text(&out.stdout).starts_with("deny:"),
        "{}",
        text(&out.stdout)
    );
    let out = check(spike_team);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    let out = check("no-such-team");
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("not in the teams directory"));

    let api_port = free_port();
    let addr = format!("127.0.0.1:{api_port}");
    let mut child = spawn(d, &["alerts", "run", "--listen", &addr]);
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::net::TcpStream::connect(&addr).is_err() {
        assert!(Instant::now() < deadline, "the API did not start");
        std::thread::sleep(Duration::from_millis(200));
    }
    let admit = |team: &str| -> Value {
        let body = serde_json::json!({"team": team, "at": at, "workload": {"kind": "fine_tune"}});
        let (status, _, body) = http(&addr, "POST", "/v1/admission", body.to_string().as_bytes());
        assert_eq!(status, 200, "{body}");
        serde_json::from_str(&body).unwrap()
    };
    let denied = admit(quota_team);
    assert_eq!(denied["allow"], false, "{denied}");
    assert!(denied["reason"]
        .as_str()
        .unwrap()
        .contains("until the quota is raised"));
    assert_eq!(admit(spike_team)["allow"], true);
    let (status, _, body) = http(
        &addr,
        "GET",
        &format!("/v1/quota/{quota_team}?at={at}"),
        b"",
    );
    assert_eq!(status, 200, "{body}");
    let q: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(q["status"], "blocked", "{q}");
    let (status, _, body) = http(&addr, "GET", "/v1/quota/nobody", b"");
    assert_eq!(status, 404);
    assert!(body.contains("not in the teams directory"), "{body}");
    let (status, _, body) = http(&addr, "POST", "/v1/admission", b"{\"tem\": 1}");
    assert_eq!(status, 400);
    assert!(body.contains("tem"), "{body}");

    // Raise the quota and reload: allowed again.
    let cfg = std::fs::read_to_string(d.join("tollgate.toml")).unwrap();
    let raised = cfg.replace(
        &format!("name = \"{quota_team}\"\nleads = [\"lead.{quota_team}@globex.example\"]\nescalation = [\"finops@globex.example\"]\nmonthly_quota = \"15000\""),
        &format!("name = \"{quota_team}\"\nleads = [\"lead.{quota_team}@globex.example\"]\nescalation = [\"finops@globex.example\"]\nmonthly_quota = \"90000\""),
    );
    assert_ne!(raised, cfg, "the quota line was not found in the config");
    std::fs::write(d.join("tollgate.toml"), raised).unwrap();
    let (status, _, body) = http(&addr, "POST", "/admin/reload", b"");
    assert_eq!(status, 200, "{body}");
    assert_eq!(admit(quota_team)["allow"], true);
    let (_, _, metrics) = http(&addr, "GET", "/metrics", b"");
    assert!(
        metrics.contains("tollgate_admission_decisions_total{decision=\"deny\"} 1"),
        "{metrics}"
    );
    child.kill().unwrap();
    child.wait().unwrap();
}
