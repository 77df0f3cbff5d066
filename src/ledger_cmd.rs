//! `tollgate ledger refresh | rebuild | status`: the hourly rollups.

use std::process::ExitCode;
use std::time::Instant;

use anyhow::Result;
use tollgate_ledger::rollup::{self, Manifest, Refresh};
use tollgate_ledger::{LedgerContext, PriceBook};

use crate::cli::{LedgerArgs, LedgerCommand};
use crate::config::Loaded;
use crate::progress::count;

fn describe(m: &Manifest) -> String {
    let rows: u64 = m.files.iter().map(|f| f.rows).sum();
    let days = m
        .files
        .iter()
        .map(|f| f.dt.as_str())
        .collect::<std::collections::BTreeSet<_>>();
    format!(
        "version {}: {} raw events rolled up into {} rows in {} files ({} days{}), covering {} partitions; built {}",
        m.version,
        count(m.events),
        count(rows),
        m.files.len(),
        days.len(),
        match (days.first(), days.last()) {
            (Some(a), Some(b)) => format!(", {a} to {b}"),
            _ => String::new(),
        },
        m.covered.len(),
        m.built_at.format("%Y-%m-%d %H:%M:%S UTC"),
    )
}

fn summary(what: &str, r: &Refresh, seconds: f64) -> String {
    match &r.manifest {
        None => format!("{what}: nothing to roll up yet (no commit records)"),
        Some(m) if !r.current => format!(
            "{what}: the rollups (version {}) were priced with another price book; run `tollgate ledger rebuild`",
            m.version
        ),
        Some(m) => format!(
            "{what}: {} commit records, {} events rolled up, {} files compacted in {seconds:.1} s\n  {}",
            count(r.records as u64),
            count(r.events),
            r.compacted,
            describe(m)
        ),
    }
}

pub fn run(loaded: Loaded, cmd: LedgerCommand) -> Result<ExitCode> {
    let config = loaded.config;
    let book = PriceBook::new(config.pricing.clone())?;
    let rt = crate::runtime()?;
    let (args, what): (&LedgerArgs, &str) = match &cmd {
        LedgerCommand::Refresh(a) => (a, "refresh"),
        LedgerCommand::Rebuild(a) => (a, "rebuild"),
        LedgerCommand::Status(a) => (a, "status"),
    };
    let store = config.storage_for(args.data_dir.as_deref())?;
    rt.block_on(async {
        let ctx = LedgerContext::open(&store, &book).await?;
        let started = Instant::now();
        let result = match &cmd {
            LedgerCommand::Refresh(_) => rollup::refresh(&ctx).await?,
            LedgerCommand::Rebuild(_) => {
                eprintln!("rebuilding the rollups from every commit record's raw files...");
                rollup::rebuild(&ctx).await?
            }
            LedgerCommand::Status(_) => {
                let m = rollup::latest(&ctx).await?;
                let current = m
                    .as_ref()
                    .is_some_and(|m| m.price_book == rollup::price_book_sha(&book));
                if args.json {
                    println!(
                        "{}",
                        serde_json::to_string_pretty(
                            &serde_json::json!({"manifest": m, "current": current})
                        )?
                    );
                } else {
                    match &m {
                        None => println!(
                            "no rollups yet (`tollgate ledger refresh` or any report builds them)"
                        ),
                        Some(m) => println!(
                            "{}\n  priced with {} price book",
                            describe(m),
                            if current {
                                "the current"
                            } else {
                                "ANOTHER (run `tollgate ledger rebuild`)"
                            }
                        ),
                    }
                }
                return Ok(ExitCode::SUCCESS);
            }
        };
        if args.json {
            println!(
                "{}",
                serde_json::to_string_pretty(&serde_json::json!({
                    "manifest": result.manifest,
                    "current": result.current,
                    "records": result.records,
                    "events": result.events,
                    "compacted": result.compacted,
                    "seconds": started.elapsed().as_secs_f64(),
                }))?
            );
        } else {
            println!(
                "{}",
                summary(what, &result, started.elapsed().as_secs_f64())
            );
        }
        Ok(ExitCode::SUCCESS)
    })
}
