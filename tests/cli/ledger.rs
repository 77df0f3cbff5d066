//! Ledger reports over what `tollgate demo` stored, checked against totals
//! computed here from the generated events and the price book (the typed
//! events and `PriceBook`'s rate lookup; never the ledger's SQL): months in
//! zones with a DST change, a GPU rate that changes mid-month, team lines
//! that add up to the total exactly, and the 2x rule finding the injected
//! spike and nothing else.

use std::collections::BTreeMap;
use std::path::Path;

use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use rust_decimal::Decimal;
use serde_json::Value;
use tollgate_event::{EventBody, Phase};
use tollgate_ledger::{PriceBook, PricingConfig};

use super::text;

const START: &str = "2026-10-10";
const DAYS: u32 = 35;
const SEED: u64 = 7;
/// Events a day: a third of the demo's default, enough for every team to
/// have usage in each month and zone checked.
const PER_DAY: u32 = 600;

/// Runs tollgate; a report (other than `close`) runs twice, reading the
/// hourly rollups and with `--no-rollups` (the raw tables only), and both
/// must print the same.
fn tollgate(dir: &Path, args: &[&str]) -> std::process::Output {
    let out = super::tollgate(dir, args);
    if args.first() == Some(&"report") && args.get(1) != Some(&"close") {
        let mut raw = args.to_vec();
        raw.push("--no-rollups");
        let r = super::tollgate(dir, &raw);
        assert_eq!(
            text(&out.stdout),
            text(&r.stdout),
            "{args:?}: the rollups and the raw tables give different reports"
        );
        assert_eq!(out.status.success(), r.status.success(), "{args:?}");
    }
    out
}

/// The demo workload stored in `dir`, with a config whose price book adds
/// an H100 on-demand rate change in the middle of October.
fn stored(dir: &Path) -> PricingConfig {
    let out = tollgate(
        dir,
        &[
            "demo",
            "--start",
            START,
            "--days",
            &DAYS.to_string(),
            "--seed",
            &SEED.to_string(),
            "--events-per-day",
            &PER_DAY.to_string(),
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let demo_cfg =
        std::fs::read_to_string(dir.join("tollgate-data/demo/tollgate.demo.toml")).unwrap();
    let cfg = format!(
        "{demo_cfg}\n[[pricing.gpu]]\ngpu_model = \"H100\"\ntier = \"on_demand\"\nper_gpu_second = \"0.0019\"\neffective_from = \"2026-10-20T12:00:00Z\"\n"
    );
    std::fs::write(dir.join("tollgate.toml"), &cfg).unwrap();
    #[derive(serde::Deserialize)]
    struct File {
        pricing: PricingConfig,
    }
    let f: File = toml::from_str(&cfg).unwrap();
    assert!(f.pricing.gpu.len() > 1);
    // The demo's rollups were priced with the demo's book: not read now.
    let out = tollgate(dir, &["report", "quota", "--at", "2026-11-01T00:00:00Z"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("priced with another price book"),
        "{}",
        text(&out.stderr)
    );
    let out = tollgate(dir, &["ledger", "rebuild"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("version 2"),
        "{}",
        text(&out.stdout)
    );
    let out = tollgate(dir, &["ledger", "status", "--json"]);
    let status: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(status["current"], true, "{status}");
    f.pricing
}

/// (tenant, team) -> (exact cost, time) of every priced usage event.
fn priced_usage(book: &PriceBook) -> Vec<(String, String, DateTime<Utc>, Decimal)> {
    let start = NaiveDate::parse_from_str(START, "%Y-%m-%d").unwrap();
    let mut params = tollgate_fixtures::Params::ending_before(start + Duration::days(DAYS.into()));
    (params.days, params.seed, params.start) = (DAYS, SEED, start);
    params.events_per_day = PER_DAY;
    let generator =
        tollgate_fixtures::Generator::new(params, tollgate_fixtures::demo_price_book().unwrap())
            .unwrap();
    let limits = tollgate_event::DecodeLimits {
        max_past: std::time::Duration::from_secs(3650 * 86_400),
        ..Default::default()
    };
    let now = Utc::now();
    let mut out = Vec::new();
    generator
        .run(|r| -> Result<(), tollgate_fixtures::Error> {
            if r.expected.is_some() {
                return Ok(());
            }
            let e = tollgate_event::decode(&r.bytes, &limits, now).unwrap();
            let (tenant, team) = (e.tags.tenant.clone(), e.tags.team.clone());
            match &e.body {
                EventBody::GpuUsage(g) => {
                    let millis = (g.interval_end - g.interval_start).num_milliseconds()
                        * i64::from(g.gpu_count);
                    let cost = book
                        .gpu_cost(&g.gpu_model, g.pricing_tier, g.interval_start, millis)
                        .unwrap();
                    out.push((tenant, team, g.interval_start, cost));
                }
                EventBody::ToolCall(c) if c.phase == Phase::End => {
                    let t = e.envelope.time;
                    let tokens = match &c.model {
                        Some(m) => book
                            .token_cost(
                                m,
                                t,
                                c.input_tokens.unwrap_or(0),
                                c.output_tokens.unwrap_or(0),
                            )
                            .unwrap(),
                        None => Decimal::ZERO,
                    };
                    out.push((tenant, team, t, tokens + book.tool_fee(&c.tool, t)));
                }
                EventBody::ToolCall(_) => {}
            }
            Ok(())
        })
        .unwrap();
    out
}

/// The month's [start, end) in `zone`, from chrono-tz directly.
fn month(zone: chrono_tz::Tz, y: i32, m: u32) -> (DateTime<Utc>, DateTime<Utc>) {
    let at = |y, m| {
        zone.with_ymd_and_hms(y, m, 1, 0, 0, 0)
            .single()
            .unwrap()
            .with_timezone(&Utc)
    };
    let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
    (at(y, m), at(ny, nm))
}

#[test]
fn chargeback_quota_and_anomalies_match_an_independent_computation() {
    let dir = tempfile::tempdir().unwrap();
    let pricing = stored(dir.path());
    let book = PriceBook::new(pricing).unwrap();
    let usage = priced_usage(&book);

    for (zone, y, m) in [
        (chrono_tz::Europe::Berlin, 2026, 10),    // DST ends 25 October
        (chrono_tz::America::New_York, 2026, 11), // DST ends 1 November
        (chrono_tz::UTC, 2026, 10),
    ] {
        let (from, to) = month(zone, y, m);
        let mut expected: BTreeMap<(String, String), Decimal> = BTreeMap::new();
        for (tenant, team, t, cost) in &usage {
            if *t >= from && *t < to {
                *expected.entry((tenant.clone(), team.clone())).or_default() += *cost;
            }
        }
        let label = format!("{y}-{m:02}");
        let out = tollgate(
            dir.path(),
            &[
                "report",
                "chargeback",
                "--month",
                &label,
                "--tz",
                zone.name(),
                "--format",
                "json",
            ],
        );
        assert!(out.status.success(), "{}", text(&out.stderr));
        let report: Value = serde_json::from_slice(&out.stdout).unwrap();
        let dec = |v: &Value| {
            v.as_str()
                .map(|s| s.parse::<Decimal>().unwrap())
                .unwrap_or_else(|| v.to_string().parse().unwrap())
        };
        let total = dec(&report["total"]);
        let exact_total: Decimal = expected.values().sum();
        // Lines are rounded one by one: the total is within half a cent per
        // line of the exact sum.
        assert!(
            (total - exact_total).abs() <= Decimal::new(5, 3) * Decimal::from(expected.len()),
            "{label} {}: total {total}, exact {exact_total}",
            zone.name()
        );
        let teams = report["teams"].as_array().unwrap();
        assert_eq!(teams.len(), expected.len(), "{label}: teams");
        let mut sum = Decimal::ZERO;
        for t in teams {
            let key = (
                t["tenant"].as_str().unwrap().to_string(),
                t["team"].as_str().unwrap().to_string(),
            );
            let line = dec(&t["total"]);
            let exact = expected[&key];
            assert_eq!(
                line,
                exact.round_dp_with_strategy(
                    2,
                    rust_decimal::RoundingStrategy::MidpointAwayFromZero
                ),
                "{label} {}: {key:?} is {line}, computed {exact}",
                zone.name()
            );
            sum += line;
            // Each breakdown adds up to the team's line.
            for dim in [
                "by_user",
                "by_environment",
                "by_workload_kind",
                "by_gpu_model",
            ] {
                let parts: Decimal = t[dim].as_array().unwrap().iter().map(|p| dec(&p[1])).sum();
                assert_eq!(parts, line, "{label}: {key:?} {dim}");
            }
        }
        assert_eq!(sum, total, "{label}: team lines add up to the total");
    }

    // Parquet output reads back with the same rows and total.
    let file = dir.path().join("2026-10.parquet");
    let out = tollgate(
        dir.path(),
        &[
            "report",
            "chargeback",
            "--month",
            "2026-10",
            "--format",
            "parquet",
            "-o",
            file.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let json_total: Value = serde_json::from_slice(
        &tollgate(
            dir.path(),
            &[
                "report",
                "chargeback",
                "--month",
                "2026-10",
                "--format",
                "json",
            ],
        )
        .stdout,
    )
    .unwrap();
    let mut amounts = Vec::new();
    for b in super::batches(&file) {
        use arrow::array::{Array, AsArray};
        let dim = b
            .column_by_name("dimension")
            .unwrap()
            .as_string::<i32>()
            .clone();
        let team = b.column_by_name("team").unwrap().as_string::<i32>().clone();
        let amount = b
            .column_by_name("amount")
            .unwrap()
            .as_primitive::<arrow::datatypes::Decimal128Type>()
            .clone();
        for i in 0..b.num_rows() {
            if dim.value(i) == "total" && team.value(i).is_empty() {
                amounts.push(Decimal::from_i128_with_scale(amount.value(i), 2));
            }
            assert!(!amount.is_null(i));
        }
    }
    assert_eq!(
        amounts,
        vec![json_total["total"]
            .as_str()
            .unwrap()
            .parse::<Decimal>()
            .unwrap()]
    );
    let refused = tollgate(
        dir.path(),
        &[
            "report",
            "chargeback",
            "--month",
            "2026-10",
            "--format",
            "parquet",
        ],
    );
    assert!(
        text(&refused.stderr).contains("--output"),
        "{}",
        text(&refused.stderr)
    );

    // The month boundary moves with the zone: Berlin's October ends an
    // hour before UTC's.
    let (b_end, u_end) = (
        month(chrono_tz::Europe::Berlin, 2026, 11).0,
        month(chrono_tz::UTC, 2026, 11).0,
    );
    assert_eq!(u_end - b_end, Duration::hours(1));

    // The 2x rule: evaluated at every midnight with enough history, it
    // flags the injected spike and nothing else.
    let summary: Value = serde_json::from_slice(
        &std::fs::read(dir.path().join("tollgate-data/demo/summary.json")).unwrap(),
    )
    .unwrap();
    let spike = &summary["scenario"]["spike"];
    let spike_day: NaiveDate = spike["date"].as_str().unwrap().parse().unwrap();
    let start: NaiveDate = START.parse().unwrap();
    let mut flagged = Vec::new();
    for d in 8..DAYS {
        let day = start + Duration::days(d.into());
        let at = format!("{}T00:00:00Z", day + Duration::days(1));
        let out = tollgate(
            dir.path(),
            &["report", "anomalies", "--at", &at, "--format", "json"],
        );
        assert!(out.status.success(), "{}", text(&out.stderr));
        for a in serde_json::from_slice::<Value>(&out.stdout)
            .unwrap()
            .as_array()
            .unwrap()
        {
            flagged.push((day, a["team"].as_str().unwrap().to_string(), a.clone()));
        }
    }
    assert_eq!(flagged.len(), 1, "{flagged:?}");
    let (day, team, a) = &flagged[0];
    assert_eq!(
        (*day, team.as_str()),
        (spike_day, spike["team"].as_str().unwrap())
    );
    assert!(
        !a["drivers"].as_array().unwrap().is_empty(),
        "the anomaly names its drivers"
    );

    // Quota at the end of the window: the quota team is blocked.
    let out = tollgate(
        dir.path(),
        &[
            "report",
            "quota",
            "--at",
            "2026-11-14T00:00:00Z",
            "--format",
            "json",
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let q: Value = serde_json::from_slice(&out.stdout).unwrap();
    let statuses: BTreeMap<String, String> = q["teams"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["team"].as_str().unwrap().to_string(),
                t["status"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert!(statuses.values().any(|s| s == "ok"), "{statuses:?}");

    closing_freezes_a_month_and_books_late_events_in_the_next(dir.path(), &book);
}

/// Closes October, stores a late October GPU event through the real
/// pipeline (a librdkafka mock cluster on 127.0.0.1), and checks that
/// October's statement does not change while November's books the late
/// cost as an adjustment to October.
fn closing_freezes_a_month_and_books_late_events_in_the_next(dir: &Path, book: &PriceBook) {
    let json = |args: &[&str]| -> Value {
        let out = tollgate(dir, args);
        assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let october = [
        "report",
        "chargeback",
        "--month",
        "2026-10",
        "--format",
        "json",
    ];
    let november = [
        "report",
        "chargeback",
        "--month",
        "2026-11",
        "--format",
        "json",
    ];
    let before = json(&october);
    let out = tollgate(dir, &["report", "close", "--month", "2026-10"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("SHA-256"),
        "{}",
        text(&out.stdout)
    );
    let again = tollgate(dir, &["report", "close", "--month", "2026-10"]);
    assert!(!again.status.success(), "closing twice is refused");
    assert!(
        text(&again.stderr).contains("never rewritten"),
        "{}",
        text(&again.stderr)
    );
    let future = tollgate(dir, &["report", "close", "--month", "2099-01"]);
    assert!(
        text(&future.stderr).contains("has not ended"),
        "{}",
        text(&future.stderr)
    );
    let november_before = json(&november);
    assert!(november_before["adjustments"]
        .as_array()
        .unwrap()
        .is_empty());

    // A late GPU event for October, through emit and run.
    let cluster = rdkafka::mocking::MockCluster::new(1).unwrap();
    cluster.create_topic("late", 1, 1).unwrap();
    cluster.create_topic("late-dlq", 1, 1).unwrap();
    let cfg = std::fs::read_to_string(dir.join("tollgate.toml")).unwrap();
    std::fs::write(
        dir.join("tollgate.toml"),
        format!(
            "{cfg}\n[kafka]\nbrokers = \"{}\"\nraw_topic = \"late\"\ndead_letter_topic = \"late-dlq\"\ngroup_id = \"late\"\n\
             [ingest]\nmax_past = \"3650days\"\ndedupe_window = \"3650days\"\nbatch_latency = \"500ms\"\n",
            cluster.bootstrap_servers()
        ),
    )
    .unwrap();
    let event = serde_json::json!({
        "specversion": "1.0", "id": "late-gpu-1", "source": "https://gpu.acme.example", "type": "dev.tollgate.gpu_usage.v1",
        "time": "2026-10-20T11:00:00.000Z",
        "data": {"tenant": "acme", "team": "search", "user": "usr_late", "environment": "prod",
                 "workload_id": "late-job", "workload_kind": "batch_inference", "gpu_model": "H100", "gpu_count": 2,
                 "interval_start": "2026-10-20T10:00:00.000Z", "interval_end": "2026-10-20T11:00:00.000Z",
                 "pricing_tier": "spot", "node": "n1", "region": "eu-west-1"}
    });
    let out = super::tollgate_stdin(dir, &["emit"], format!("{event}\n"));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = tollgate(dir, &["run", "--exit-when-idle", "3s"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let late = book
        .gpu_cost(
            "H100",
            tollgate_event::PricingTier::Spot,
            "2026-10-20T10:00:00Z".parse().unwrap(),
            2 * 3_600_000,
        )
        .unwrap()
        .round_dp(2);
    assert!(late > Decimal::ZERO);

    // The late commit record is rolled up by `run` (its alert evaluator's
    // last cycle when it stopped); reports only read.
    let _ = json(&november);
    let status = json(&["ledger", "status", "--json"]);
    assert_eq!(status["manifest"]["covered"]["late/0"], 1, "{status}");
    assert_eq!(status["current"], true, "{status}");

    // October is frozen; November books the difference.
    let after = json(&october);
    assert_eq!(
        after["total"], before["total"],
        "a closed month never changes"
    );
    assert_eq!(after["teams"], before["teams"]);
    let november_after = json(&november);
    let adj = november_after["adjustments"].as_array().unwrap();
    assert_eq!(adj.len(), 1, "{adj:?}");
    assert_eq!(
        (adj[0]["team"].as_str(), adj[0]["month"].as_str()),
        (Some("search"), Some("2026-10"))
    );
    let dec = |v: &Value| v.as_str().unwrap().parse::<Decimal>().unwrap();
    assert_eq!(dec(&adj[0]["amount"]), late);
    assert_eq!(
        dec(&november_after["total"]),
        dec(&november_before["total"]) + late
    );
    let lines: Decimal = november_after["teams"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| dec(&t["total"]))
        .sum();
    assert_eq!(
        lines + late,
        dec(&november_after["total"]),
        "lines and adjustments add up"
    );

    // A rebuild from the raw tables gives the same statements.
    let out = tollgate(dir, &["ledger", "rebuild"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(json(&november), november_after);

    // An altered closed statement is refused, not shown, and verify names it.
    let frozen = dir.join("tollgate-data/ledger/statements/000001.json");
    let text_before = std::fs::read_to_string(&frozen).unwrap();
    let total = before["total"].as_str().unwrap();
    assert!(text_before.contains(&format!("\"total\": \"{total}\"")));
    std::fs::write(
        &frozen,
        text_before.replace(&format!("\"total\": \"{total}\""), "\"total\": \"1.00\""),
    )
    .unwrap();
    let out = tollgate(dir, &october);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("ledger/statements/000001.json") && err.contains("edited"),
        "{err}"
    );
    let out = tollgate(dir, &["verify"]);
    assert!(!out.status.success());
    let said = text(&out.stdout) + &text(&out.stderr);
    assert!(
        said.contains("ledger/statements/000001.json") && said.contains("statement_hash_mismatch"),
        "{said}"
    );
}
