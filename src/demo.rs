//! `tollgate demo`: the main job on its embedded default. No Kafka and no
//! SMTP: the fixture workload is generated in-process and passed through
//! every stage that exists, and the results are written to the data directory.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use chrono::Utc;
use serde::Serialize;
use serde_json::json;
use tollgate_fixtures::Generator;
use tollgate_ingest::event::{EventBody, Phase};

use crate::cli::DemoArgs;
use crate::config::Loaded;
use crate::fixtures_cmd::{params, workload_config, write_toml};
use crate::progress::{bar, count};

/// What the demo counted, written as `demo/summary.json`.
#[derive(Debug, Default, Serialize)]
struct Counts {
    consumed: u64,
    stored: u64,
    dead_lettered: u64,
    tool_call_start: u64,
    tool_call_end: u64,
    gpu_usage: u64,
    upcast_from_v0: u64,
    newer_minor_fields_kept: u64,
    /// PII found and replaced by tokens, by kind (stored events and dead letters).
    redacted_by_kind: BTreeMap<String, u64>,
    rejected_by_reason: BTreeMap<String, u64>,
    /// Bad events the generator planted that the validator refused with a
    /// different reason, or let through; and good events it refused. Zero
    /// unless something is broken.
    mismatches: u64,
}

pub fn run(loaded: Loaded, args: DemoArgs) -> Result<ExitCode> {
    let config = loaded.config;
    let data_dir = args
        .data_dir
        .clone()
        .unwrap_or_else(|| config.storage.data_dir.clone());
    let out_dir = data_dir.join("demo");
    std::fs::create_dir_all(&out_dir).with_context(|| format!("creating {}", out_dir.display()))?;

    let mut limits = config.ingest.clone();
    let p = params(&args.workload, limits.max_event_bytes);
    let received_at = Utc::now();
    let oldest = (received_at - p.start.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc())
        .to_std()
        .unwrap_or_default();
    let mut notes = Vec::new();
    if oldest > limits.max_past {
        limits.max_past = oldest + Duration::from_secs(86_400);
        notes.push(format!(
            "ingest.max_past widened to {} so the whole generated window is accepted",
            humantime_days(limits.max_past)
        ));
    }

    let redactor = tollgate_redactor::Redactor::new(&config.redaction, &data_dir)?;
    let generator = Generator::new(p.clone(), tollgate_fixtures::demo_price_book()?)?;
    let wconfig = workload_config(&generator)?;
    let started = Instant::now();
    println!(
        "Tollgate demo: no Kafka, no SMTP. Generating {} days of traffic for {} teams in 2 tenants (seed {}) and passing it through the pipeline.",
        p.days, p.teams, p.seed
    );

    let ev_path = out_dir.join("events.ndjson");
    let mut events = BufWriter::new(
        File::create(&ev_path).with_context(|| format!("creating {}", ev_path.display()))?,
    );
    let mut redacted = tollgate_redactor::Counts::default();
    let dl_path = out_dir.join("dead_letters.ndjson");
    let mut dead_letters = BufWriter::new(
        File::create(&dl_path).with_context(|| format!("creating {}", dl_path.display()))?,
    );
    let mut c = Counts::default();
    let mut first_mismatch: Option<String> = None;
    let pb = bar(
        u64::from(p.days) * u64::from(p.events_per_day),
        "decode + validate",
    );
    let summary = generator.run(|r| -> Result<()> {
        let offset = c.consumed;
        c.consumed += 1;
        pb.inc(1);
        match tollgate_ingest::decode(&r.bytes, &limits, received_at) {
            Ok(mut e) => {
                // Nothing is written before it passed the redactor.
                let outcome = redactor.redact_event(&mut e)?;
                redacted.merge(&outcome.counts);
                serde_json::to_writer(
                    &mut events,
                    &json!({"redaction_key_id": outcome.key_id, "event": &e}),
                )?;
                events.write_all(b"\n")?;
                c.stored += 1;
                match &e.body {
                    EventBody::ToolCall(t) if t.phase == Phase::Start => c.tool_call_start += 1,
                    EventBody::ToolCall(_) => c.tool_call_end += 1,
                    EventBody::GpuUsage(_) => c.gpu_usage += 1,
                }
                c.upcast_from_v0 += u64::from(e.envelope.schema.major == 0);
                c.newer_minor_fields_kept += u64::from(!e.extra.is_empty());
                if let Some(x) = r.expected {
                    c.mismatches += 1;
                    first_mismatch
                        .get_or_insert(format!("bad event ({}) was accepted", x.mutation));
                }
            }
            Err(reason) => {
                c.dead_lettered += 1;
                *c.rejected_by_reason
                    .entry(reason.code.to_string())
                    .or_default() += 1;
                let ok = r
                    .expected
                    .is_some_and(|x| x.code == reason.code && x.field == reason.field);
                if !ok {
                    c.mismatches += 1;
                    first_mismatch
                        .get_or_insert(format!("event at offset {offset} refused with {reason}"));
                }
                // The reason never quotes user content; the payload is kept
                // as redacted text under the tenant it names, if it names one.
                let tenant = tenant_of(&r.bytes);
                let text = String::from_utf8_lossy(&r.bytes);
                let (payload, outcome) = redactor.redact_text(&tenant, &text)?;
                redacted.merge(&outcome.counts);
                let row = json!({
                    "offset": offset,
                    "key": r.key,
                    "bytes": r.bytes.len(),
                    "code": reason.code,
                    "field": reason.field,
                    "reason": reason.message,
                    "tenant": tenant,
                    "redaction_key_id": outcome.key_id,
                    "payload_redacted": payload,
                });
                serde_json::to_writer(&mut dead_letters, &row)?;
                dead_letters.write_all(b"\n")?;
            }
        }
        Ok(())
    })?;
    pb.finish_and_clear();
    dead_letters.flush()?;
    events.flush()?;
    c.redacted_by_kind = redacted.0.clone();
    let elapsed = started.elapsed().as_secs_f64();

    write_toml(
        &out_dir.join("tollgate.demo.toml"),
        "# Pricing and teams of the demo workload; use with tollgate --config.",
        &wconfig,
    )?;
    let summary_json = json!({
        "window": {"start": p.start, "days": p.days, "seed": p.seed, "received_at": received_at},
        "counts": &c,
        "scenario": &summary.scenario,
    });
    std::fs::write(
        out_dir.join("summary.json"),
        serde_json::to_string_pretty(&summary_json)?,
    )?;

    let last = p.start + chrono::Duration::days(i64::from(p.days) - 1);
    println!(
        "  window        {} to {} (UTC), {} events in {elapsed:.1} s",
        p.start,
        last,
        count(c.consumed)
    );
    println!(
        "  consumed      {} = stored {} + dead-lettered {}",
        count(c.consumed),
        count(c.stored),
        count(c.dead_lettered)
    );
    println!(
        "  valid         tool calls {} started / {} ended, GPU usage {}; {} upcast from v0, {} with v1.1 fields kept",
        count(c.tool_call_start),
        count(c.tool_call_end),
        count(c.gpu_usage),
        count(c.upcast_from_v0),
        count(c.newer_minor_fields_kept)
    );
    let mut reasons: Vec<(&String, &u64)> = c.rejected_by_reason.iter().collect();
    reasons.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    let shown: Vec<String> = reasons
        .iter()
        .take(6)
        .map(|(k, v)| format!("{k} {v}"))
        .collect();
    println!(
        "  dead letters  {} kinds of bad event, {} reason codes: {}{}",
        summary
            .invalid_by_mutation
            .iter()
            .filter(|(_, n)| *n > 0)
            .count(),
        reasons.len(),
        shown.join(", "),
        if reasons.len() > 6 { ", ..." } else { "" }
    );
    let kinds: Vec<String> = c
        .redacted_by_kind
        .iter()
        .map(|(k, n)| format!("{k} {}", count(*n)))
        .collect();
    println!(
        "  redacted      {} PII values replaced by tenant-keyed tokens: {}",
        count(redacted.total()),
        kinds.join(", ")
    );
    for line in summary.scenario.describe() {
        println!("  scenario      {line}");
    }
    for n in &notes {
        println!("  note          {n}");
    }
    println!(
        "  not yet       Parquet storage, the ledger and alert emails arrive with their stages"
    );
    println!("  wrote         {}", out_dir.display());
    println!("                  events.ndjson       every stored event, redacted (until Parquet storage lands)");
    println!("                  summary.json        counts and the priced scenario");
    println!("                  dead_letters.ndjson one line per refused event: offset, key, reason, redacted payload");
    println!("                  tollgate.demo.toml  the pricing and teams of this workload");
    if c.mismatches > 0 {
        bail!(
            "{} event(s) were not decided as the generator expected; first: {}",
            c.mismatches,
            first_mismatch.unwrap_or_default()
        );
    }
    if c.consumed != c.stored + c.dead_lettered {
        bail!("consumed != stored + dead-lettered");
    }
    Ok(ExitCode::SUCCESS)
}

/// The tenant an undecodable payload names, if it can be read; else
/// `_unattributed`, whose key redacts everything that names no tenant.
fn tenant_of(bytes: &[u8]) -> String {
    serde_json::from_slice::<serde_json::Value>(bytes)
        .ok()
        .and_then(|v| {
            let d = v.get("data")?;
            d.get("tenant")
                .or_else(|| d.get("org"))?
                .as_str()
                .map(str::to_string)
        })
        .filter(|t| !t.is_empty() && t.len() <= 128 && !t.chars().any(char::is_control))
        .unwrap_or_else(|| "_unattributed".to_string())
}

fn humantime_days(d: Duration) -> String {
    format!("{} days", d.as_secs().div_ceil(86_400))
}
