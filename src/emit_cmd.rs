//! `tollgate emit`: NDJSON events from a file or stdin to the raw topic.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use tollgate_ingest::kafka::{ensure_topics, Emitter};
use tollgate_ingest::KafkaConfig;

use crate::cli::EmitArgs;
use crate::config::Loaded;
use crate::progress::count;

/// An emitter to `topic` (default `kafka.raw_topic`) at `brokers` (default
/// `kafka.brokers`), with the topics created first when missing. Returns
/// the Kafka settings used (their `raw_topic` is the target).
pub fn emitter_for(
    base: &KafkaConfig,
    brokers: Option<&str>,
    topic: Option<&str>,
    quiet: bool,
) -> Result<(KafkaConfig, Emitter)> {
    let mut kafka = base.clone();
    if let Some(b) = brokers {
        kafka.brokers = b.to_string();
    }
    if let Some(t) = topic {
        kafka.raw_topic = t.to_string();
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    for t in rt.block_on(ensure_topics(&kafka))? {
        if !quiet {
            eprintln!("created topic {t} ({} partitions)", kafka.partitions);
        }
    }
    let emitter = Emitter::new(&kafka, &kafka.raw_topic)?;
    Ok((kafka, emitter))
}

pub fn run(loaded: Loaded, args: EmitArgs) -> Result<ExitCode> {
    let config = loaded.config;
    let (kafka, emitter) = emitter_for(
        &config.kafka,
        args.brokers.as_deref(),
        args.topic.as_deref(),
        args.quiet,
    )?;
    let topic = kafka.raw_topic.clone();
    let (source, name): (Box<dyn Read>, String) = if args.input.as_os_str() == "-" {
        (Box::new(std::io::stdin().lock()), "stdin".into())
    } else {
        let f =
            File::open(&args.input).with_context(|| format!("opening {}", args.input.display()))?;
        (Box::new(f), args.input.display().to_string())
    };
    let limits = config.ingest.limits();
    let started = Instant::now();
    let mut reader = BufReader::with_capacity(1 << 20, source);
    let mut line = Vec::new();
    let (mut sent, mut refused, mut number) = (0u64, 0u64, 0u64);
    let mut last_report = Instant::now();
    loop {
        line.clear();
        let n = reader
            .read_until(b'\n', &mut line)
            .with_context(|| format!("reading {name}"))?;
        if n == 0 {
            break;
        }
        number += 1;
        let payload = line.strip_suffix(b"\n").unwrap_or(&line);
        let payload = payload.strip_suffix(b"\r").unwrap_or(payload);
        if payload.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        if args.validate {
            if let Err(reason) = tollgate_event::decode(payload, &limits, chrono::Utc::now()) {
                refused += 1;
                eprintln!("{name}:{number}: refused: {reason} ({})", reason.code);
                continue;
            }
        }
        emitter.emit(payload)?;
        sent += 1;
        if !args.quiet && last_report.elapsed() >= Duration::from_secs(5) {
            eprintln!("  {} records queued...", count(sent));
            last_report = Instant::now();
        }
    }
    if !args.quiet {
        eprintln!(
            "  {} records queued; waiting for the broker to acknowledge them",
            count(sent)
        );
    }
    // Waited out however long the broker takes while it keeps answering; two
    // minutes without an answer is an error.
    let d = emitter.flush(Duration::from_secs(120))?;
    if d.failed > 0 || d.delivered != sent {
        bail!(
            "the broker acknowledged {} of {} records from {name} ({} failed; last error: {})",
            d.delivered,
            sent,
            d.failed,
            d.last_error.unwrap_or_else(|| "none".into())
        );
    }
    if !args.quiet {
        eprintln!(
            "emitted {} records from {name} to topic {topic} at {} in {:.1} s; every one acknowledged{}",
            count(sent),
            kafka.brokers,
            started.elapsed().as_secs_f64(),
            if args.validate {
                format!("; {} refused", count(refused))
            } else {
                String::new()
            }
        );
    }
    Ok(if refused > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
