//! `tollgate dlq replay`: re-feed dead letters whose cause was fixed.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, Headers, OwnedHeaders};
use rdkafka::producer::{DeliveryFuture, FutureRecord};
use rdkafka::{Message, Offset, TopicPartitionList};
use tollgate_ingest::kafka::{client_config, producer, ObservedContext};
use tollgate_pipeline::metrics::Metrics;

use crate::cli::ReplayArgs;
use crate::config::Loaded;
use crate::progress::count;

pub fn replay(loaded: Loaded, args: ReplayArgs) -> Result<ExitCode> {
    let config = loaded.config;
    let dlq = config.kafka.dead_letter_topic.clone();
    let raw = config.kafka.raw_topic.clone();
    for r in &args.reasons {
        if !tollgate_event::ReasonCode::ALL
            .iter()
            .any(|c| c.as_str() == r)
        {
            bail!("--reason {r}: not a reason code (see docs/events.md for the list)");
        }
    }
    // No group: the whole topic is read from its start to the end it has
    // now, without committing anything.
    let consumer: BaseConsumer = client_config(&config.kafka)
        .set("group.id", format!("{}-dlq-replay", config.kafka.group_id))
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false")
        .create()
        .context("creating the dead-letter consumer")?;
    let timeout = Duration::from_secs(10);
    let md = consumer
        .fetch_metadata(Some(&dlq), timeout)
        .with_context(|| format!("reading the metadata of {dlq}"))?;
    let mut ends: BTreeMap<i32, i64> = BTreeMap::new();
    let mut tpl = TopicPartitionList::new();
    for t in md.topics() {
        if t.error().is_some() || t.partitions().is_empty() {
            bail!(
                "topic {dlq} (kafka.dead_letter_topic) does not exist on {}",
                config.kafka.brokers
            );
        }
        for p in t.partitions() {
            let (low, high) = consumer.fetch_watermarks(&dlq, p.id(), timeout)?;
            if high > low {
                ends.insert(p.id(), high);
                tpl.add_partition_offset(&dlq, p.id(), Offset::Offset(low))?;
            }
        }
    }
    consumer.assign(&tpl)?;
    let limits = config.ingest.limits();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let producer = producer(
        &config.kafka,
        ObservedContext::new(std::sync::Arc::new(Metrics::new())),
    )?;
    let (mut read, mut replayed, mut skipped) = (0u64, 0u64, 0u64);
    let mut still_failing: BTreeMap<String, u64> = BTreeMap::new();
    let mut deliveries = Vec::new();
    let mut failed = 0u64;
    let mut last_progress = Instant::now();
    while !ends.is_empty() {
        let Some(msg) = consumer.poll(Duration::from_secs(30)) else {
            bail!(
                "no record from {dlq} for 30 s while {} partition(s) were not read to their end",
                ends.len()
            );
        };
        let msg = msg.with_context(|| format!("reading {dlq}"))?;
        let (p, offset) = (msg.partition(), msg.offset());
        if ends.get(&p).is_some_and(|end| offset + 1 >= *end) {
            ends.remove(&p);
        }
        read += 1;
        let header = |name: &str| {
            msg.headers().and_then(|h| {
                h.iter()
                    .find(|x| x.key == name)
                    .and_then(|x| x.value)
                    .map(|v| String::from_utf8_lossy(v).into_owned())
            })
        };
        let reason = header("tollgate-reason").unwrap_or_else(|| "unknown".into());
        if !args.reasons.is_empty() && !args.reasons.contains(&reason) {
            skipped += 1;
            continue;
        }
        let payload = msg.payload().unwrap_or_default();
        if let Err(now) = tollgate_event::decode(payload, &limits, chrono::Utc::now()) {
            *still_failing
                .entry(now.code.as_str().to_string())
                .or_default() += 1;
            continue;
        }
        replayed += 1;
        if args.dry_run {
            continue;
        }
        let from = format!("{dlq}:{p}:{offset}");
        let origin = header("tollgate-source-offset").unwrap_or_default();
        let headers = OwnedHeaders::new()
            .insert(Header {
                key: "tollgate-replayed-from",
                value: Some(from.as_str()),
            })
            .insert(Header {
                key: "tollgate-original-offset",
                value: Some(origin.as_str()),
            });
        let mut record = FutureRecord::to(&raw).payload(payload).headers(headers);
        let key = msg.key().map(<[u8]>::to_vec);
        if let Some(k) = &key {
            record = record.key(k);
        }
        loop {
            match producer.send_result(record) {
                Ok(d) => {
                    deliveries.push(d);
                    break;
                }
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                    // The producer's queue is full: wait for what is in it.
                    record = r;
                    failed += wait_all(&rt, &mut deliveries);
                }
                Err((e, _)) => return Err(e).with_context(|| format!("producing to {raw}")),
            }
        }
        if last_progress.elapsed() >= Duration::from_secs(5) {
            eprintln!("  {} dead letters read...", count(read));
            last_progress = Instant::now();
        }
    }
    failed += wait_all(&rt, &mut deliveries);
    if failed > 0 {
        bail!("{failed} replayed records were not acknowledged by the broker; run the replay again (resent ids are dropped)");
    }
    println!(
        "{} dead letters read from {dlq}; {} {} to {raw}{}",
        count(read),
        count(replayed),
        if args.dry_run {
            "would be replayed"
        } else {
            "replayed"
        },
        if skipped > 0 {
            format!("; {} skipped (other reasons)", count(skipped))
        } else {
            String::new()
        }
    );
    for (code, n) in &still_failing {
        println!("  still refused, kept: {} x {code}", count(*n));
    }
    Ok(ExitCode::SUCCESS)
}

/// Waits for every pending delivery; returns how many failed.
fn wait_all(rt: &tokio::runtime::Runtime, deliveries: &mut Vec<DeliveryFuture>) -> u64 {
    let done = rt.block_on(futures::future::join_all(deliveries.drain(..)));
    done.iter().filter(|d| !matches!(d, Ok(Ok(_)))).count() as u64
}
