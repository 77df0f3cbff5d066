//! `tollgate verify`.

use std::process::ExitCode;

use anyhow::Result;
use tollgate_storage::Storage;

use crate::cli::VerifyArgs;
use crate::config::Loaded;
use crate::progress::count;

pub fn run(loaded: Loaded, args: VerifyArgs) -> Result<ExitCode> {
    let cfg = loaded.config.storage_for(args.data_dir.as_deref())?;
    let storage = Storage::open(&cfg, "verify")?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let master = tollgate_redactor::keys::existing_master_key(
        loaded.config.redaction.master_key.as_ref(),
        &cfg,
    )?;
    let report = rt.block_on(tollgate_queries::verify_all(&storage, master.as_ref()))?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!("verifying {}", storage.description());
        if report.chains.is_empty() {
            println!("  no commit records");
        }
        for c in &report.chains {
            println!(
                "  {}/{}: {} commit records, offsets {}..={}, consumed {} = stored {} + dead-lettered {} + duplicates {}",
                c.topic,
                c.partition,
                c.commits,
                c.first_offset,
                c.last_offset,
                count(c.consumed),
                count(c.stored),
                count(c.dead_lettered),
                count(c.duplicates)
            );
        }
        println!(
            "  {} files, {} bytes hashed",
            report.files,
            count(report.bytes)
        );
        for d in &report.derived {
            if d.name == "tenant keys" {
                println!(
                    "  tenant keys: {} sealed key(s) in place and chained; {}",
                    d.links,
                    if master.is_some() {
                        format!("{} opened with the master key", d.files)
                    } else {
                        "not opened (no master key given: set redaction.master_key_file to check their seals)".into()
                    }
                );
                continue;
            }
            if d.name == "api keys" {
                println!(
                    "  api keys: {} key(s), {} state(s), each later state only revoking or shortening",
                    d.files, d.links
                );
                continue;
            }
            if d.name == "alert claims" {
                println!(
                    "  alert claims: {} claim(s), {} with the id and content SHA-256 they record",
                    d.links, d.files
                );
                continue;
            }
            println!(
                "  {}: {} link(s) in one chain, newest {} (SHA-256 {}); {} file(s) checked, {} bytes hashed",
                d.name,
                d.links,
                d.head.as_deref().unwrap_or("none"),
                d.head_sha256.as_deref().unwrap_or("none"),
                d.files,
                count(d.bytes)
            );
        }
        if !report.staging.is_empty() {
            println!(
                "  {} file(s) in staging/ from an interrupted write (not part of the log; the next tollgate run recovers them)",
                report.staging.len()
            );
        }
        for p in &report.problems {
            println!("  PROBLEM {p}");
        }
    }
    if report.ok() {
        if !args.json {
            println!("OK");
        }
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!(
            "verify failed: {} problem(s); first: {}",
            report.problems.len(),
            report.problems[0]
        );
        Ok(ExitCode::from(1))
    }
}
