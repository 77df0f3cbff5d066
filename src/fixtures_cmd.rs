//! `tollgate fixtures generate`.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde::Serialize;
use tollgate_fixtures::{Generator, Params};
use tollgate_ledger::{PricingConfig, TeamConfig};

use crate::cli::{GenerateArgs, WorkloadArgs};
use crate::config::Loaded;
use crate::progress::{bar, count};

/// The generator's parameters from the command line.
pub fn params(w: &WorkloadArgs, max_event_bytes: usize) -> Params {
    let today = chrono::Utc::now().date_naive();
    let mut p = Params::ending_before(today);
    p.seed = w.seed;
    p.days = w.days;
    p.teams = w.teams as usize;
    p.events_per_day = w.events_per_day;
    p.start = w
        .start
        .unwrap_or(today - chrono::Duration::days(i64::from(w.days)));
    p.invalid_rate = w.invalid_rate;
    p.max_event_bytes = max_event_bytes;
    p
}

/// The `[pricing]` and `[[teams]]` that fit a generated workload.
#[derive(Serialize)]
pub struct WorkloadConfig {
    /// The demo price book.
    pub pricing: PricingConfig,
    /// The workload's teams.
    pub teams: Vec<TeamConfig>,
}

/// The config that fits `generator`'s workload.
pub fn workload_config(generator: &Generator) -> Result<WorkloadConfig> {
    Ok(WorkloadConfig {
        pricing: tollgate_fixtures::demo_pricing()?,
        teams: generator.teams().iter().map(|t| t.config()).collect(),
    })
}

/// Writes `value` as TOML to `path` with a header comment.
pub fn write_toml(path: &Path, header: &str, value: &impl Serialize) -> Result<()> {
    let body = toml::to_string(value).context("rendering TOML")?;
    std::fs::write(path, format!("{header}\n{body}"))
        .with_context(|| format!("writing {}", path.display()))
}

pub fn generate(loaded: Loaded, args: GenerateArgs) -> Result<ExitCode> {
    let config = loaded.config;
    let p = params(&args.workload, config.ingest.max_event_bytes);
    let expected_total = u64::from(p.days) * u64::from(p.events_per_day);
    let generator = Generator::new(p.clone(), tollgate_fixtures::demo_price_book()?)?;
    if let Some(path) = &args.config_out {
        write_toml(
            path,
            "# Pricing and teams that fit the generated workload (tollgate fixtures generate).",
            &workload_config(&generator)?,
        )?;
    }
    let started = Instant::now();
    let pb = bar(expected_total, "generating");
    let (summary, destination) = if args.kafka {
        let (kafka, emitter) = crate::emit_cmd::emitter_for(
            &config.kafka,
            args.brokers.as_deref(),
            args.topic.as_deref(),
            args.quiet,
        )?;
        let topic = kafka.raw_topic.clone();
        let summary = generator.run(|r| -> Result<()> {
            emitter.send(&r.key, &r.bytes)?;
            pb.inc(1);
            Ok(())
        })?;
        pb.set_message("waiting for the broker");
        let d = emitter.flush(Duration::from_secs(120))?;
        if d.failed > 0 || d.delivered != summary.records {
            bail!(
                "the broker acknowledged {} of {} records ({} failed; last error: {})",
                d.delivered,
                summary.records,
                d.failed,
                d.last_error.unwrap_or_else(|| "none".into())
            );
        }
        (summary, format!("topic {topic} at {}", kafka.brokers))
    } else {
        let to_stdout = args.output.as_os_str() == "-";
        let sink: Box<dyn Write> = if to_stdout {
            Box::new(std::io::stdout().lock())
        } else {
            Box::new(
                File::create(&args.output)
                    .with_context(|| format!("creating {}", args.output.display()))?,
            )
        };
        let mut out = BufWriter::with_capacity(1 << 20, sink);
        let summary = generator.run(|r| -> Result<()> {
            out.write_all(&r.bytes)?;
            out.write_all(b"\n")?;
            pb.inc(1);
            Ok(())
        });
        let summary = match summary {
            Err(e) if is_broken_pipe(&e) => return Ok(ExitCode::SUCCESS),
            other => other?,
        };
        match out.flush() {
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(ExitCode::SUCCESS),
            other => other.context("writing the output")?,
        }
        let dest = if to_stdout {
            "stdout".to_string()
        } else {
            args.output.display().to_string()
        };
        (summary, dest)
    };
    pb.finish_and_clear();
    if let Some(path) = &args.report {
        let text = serde_json::to_string_pretty(&summary.scenario)?;
        std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    if !args.quiet {
        let secs = started.elapsed().as_secs_f64();
        eprintln!(
            "generated {} events ({} valid, {} bad) for {} teams over {} days from {} to {} in {secs:.1} s, seed {}",
            count(summary.records),
            count(summary.valid),
            count(summary.invalid),
            p.teams,
            p.days,
            p.start,
            destination,
            p.seed
        );
        for line in summary.scenario.describe() {
            eprintln!("  {line}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain()
        .filter_map(|c| c.downcast_ref::<std::io::Error>())
        .any(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
}
