//! `tollgate status`: per partition of the raw topic, what the commit
//! chain holds and what the broker holds.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Result;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::TopicPartitionList;
use serde::Serialize;
use tollgate_storage::Storage;

use crate::cli::StatusArgs;
use crate::config::Loaded;
use crate::progress::count;

/// One partition's line.
#[derive(Debug, Default, Serialize)]
struct Row {
    partition: i32,
    /// The offset after the last commit record (where `run` resumes).
    committed_offset: Option<i64>,
    /// The broker's high watermark.
    high_watermark: Option<i64>,
    /// Records not stored yet.
    lag: Option<i64>,
    /// Kafka's group offset (for monitoring; resuming never uses it).
    group_offset: Option<i64>,
    commits: u64,
    consumed: u64,
    stored: u64,
    dead_lettered: u64,
    duplicates: u64,
}

pub fn run(loaded: Loaded, args: StatusArgs) -> Result<ExitCode> {
    let config = loaded.config;
    let storage_cfg = config.storage_for(args.data_dir.as_deref())?;
    let storage = Storage::open(&storage_cfg, "status")?;
    let topic = config.kafka.raw_topic.clone();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut rows: BTreeMap<i32, Row> = BTreeMap::new();
    rt.block_on(async {
        for p in storage.partitions(&topic).await? {
            let row = rows.entry(p).or_insert_with(|| Row {
                partition: p,
                ..Row::default()
            });
            for r in storage.records_after(&topic, p, 0).await? {
                row.commits += 1;
                row.committed_offset = Some(r.last_offset + 1);
                row.consumed += r.records;
                row.stored += r.stored;
                row.dead_lettered += r.dead_lettered;
                row.duplicates += r.duplicates;
            }
        }
        anyhow::Ok(())
    })?;

    // The broker's side; status still prints the stored side without it.
    let broker_note = match broker_side(&config.kafka, &topic) {
        Ok(marks) => {
            for (p, high, group) in marks {
                let row = rows.entry(p).or_insert_with(|| Row {
                    partition: p,
                    ..Row::default()
                });
                row.high_watermark = Some(high);
                row.group_offset = group;
                row.lag = Some(high - row.committed_offset.unwrap_or(0));
            }
            None
        }
        Err(e) => Some(format!("{e:#}")),
    };

    if args.json {
        let out = serde_json::json!({
            "topic": topic,
            "storage": storage.description(),
            "partitions": rows.values().collect::<Vec<_>>(),
            "broker_error": broker_note,
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "topic {topic} at {}; storage {}",
        config.kafka.brokers,
        storage.description()
    );
    println!(
        "{:>9} {:>12} {:>12} {:>10} {:>12} {:>12} {:>12} {:>12} {:>10}",
        "partition",
        "committed",
        "high-water",
        "lag",
        "group-offset",
        "consumed",
        "stored",
        "dead-letters",
        "duplicates"
    );
    let opt = |v: Option<i64>| v.map_or("-".to_string(), |v| v.to_string());
    let mut total = Row::default();
    for r in rows.values() {
        println!(
            "{:>9} {:>12} {:>12} {:>10} {:>12} {:>12} {:>12} {:>12} {:>10}",
            r.partition,
            opt(r.committed_offset),
            opt(r.high_watermark),
            opt(r.lag),
            opt(r.group_offset),
            count(r.consumed),
            count(r.stored),
            count(r.dead_lettered),
            count(r.duplicates)
        );
        total.consumed += r.consumed;
        total.stored += r.stored;
        total.dead_lettered += r.dead_lettered;
        total.duplicates += r.duplicates;
        total.lag = Some(total.lag.unwrap_or(0) + r.lag.unwrap_or(0));
    }
    println!(
        "consumed {} = stored {} + dead-lettered {} + duplicates {}; lag {}",
        count(total.consumed),
        count(total.stored),
        count(total.dead_lettered),
        count(total.duplicates),
        match &broker_note {
            None => count(total.lag.unwrap_or(0).max(0) as u64),
            Some(_) => "unknown".into(),
        }
    );
    if let Some(e) = broker_note {
        eprintln!("note: the broker's side is missing: {e}");
    }
    Ok(ExitCode::SUCCESS)
}

/// (partition, high watermark, group offset) of every partition of `topic`.
fn broker_side(
    cfg: &tollgate_ingest::KafkaConfig,
    topic: &str,
) -> Result<Vec<(i32, i64, Option<i64>)>> {
    let consumer: BaseConsumer = tollgate_ingest::kafka::client_config(cfg)
        .set("group.id", &cfg.group_id)
        .set("enable.auto.commit", "false")
        .create()?;
    let timeout = Duration::from_secs(10);
    let md = consumer.fetch_metadata(Some(topic), timeout)?;
    let mut tpl = TopicPartitionList::new();
    let mut out = Vec::new();
    for t in md.topics() {
        if let Some(e) = t.error() {
            anyhow::bail!(
                "topic {topic}: {:?}",
                rdkafka::error::RDKafkaErrorCode::from(e)
            );
        }
        for p in t.partitions() {
            tpl.add_partition(topic, p.id());
        }
    }
    let committed = consumer.committed_offsets(tpl, timeout).ok();
    for t in md.topics() {
        for p in t.partitions() {
            let (_, high) = consumer.fetch_watermarks(topic, p.id(), timeout)?;
            let group = committed
                .as_ref()
                .and_then(|c| c.find_partition(topic, p.id()))
                .and_then(|e| e.offset().to_raw())
                .filter(|o| *o >= 0);
            out.push((p.id(), high, group));
        }
    }
    Ok(out)
}
