//! `tollgate pii ...`: try the redaction, compute tokens, manage keys.

use std::io::{BufRead, Write};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use tollgate_redactor::{Counts, Kind, Redactor};

use crate::cli::{PiiArgs, PiiCommand};
use crate::config::Loaded;

/// The redactor for this configuration, with its key store in the data directory.
pub fn redactor(loaded: &Loaded, data_dir: Option<&std::path::Path>) -> Result<Redactor> {
    let dir = data_dir.unwrap_or(&loaded.config.storage.data_dir);
    Ok(Redactor::new(&loaded.config.redaction, dir)?)
}

fn describe(counts: &Counts) -> String {
    if counts.0.is_empty() {
        return "nothing found".into();
    }
    counts
        .0
        .iter()
        .map(|(k, n)| format!("{n} {k}"))
        .collect::<Vec<_>>()
        .join(", ")
}

pub fn run(loaded: Loaded, args: PiiArgs) -> Result<ExitCode> {
    let r = redactor(&loaded, args.data_dir.as_deref())?;
    match args.command {
        PiiCommand::Redact { tenant, json } => {
            let stdin = std::io::stdin();
            let stdout = std::io::stdout();
            let mut out = std::io::BufWriter::new(stdout.lock());
            let mut total = Counts::default();
            let mut key_id = String::new();
            let mut lines = 0u64;
            for (n, line) in stdin.lock().lines().enumerate() {
                let line = line.context("reading stdin (it must be UTF-8 text)")?;
                lines += 1;
                let redacted = if json {
                    let mut v: serde_json::Value =
                        serde_json::from_str(&line).with_context(|| {
                            format!(
                                "line {}: not JSON (drop --json to redact it as text)",
                                n + 1
                            )
                        })?;
                    let outcome = r.redact_json(&tenant, &mut v)?;
                    total.merge(&outcome.counts);
                    key_id = outcome.key_id;
                    serde_json::to_string(&v)?
                } else {
                    let (text, outcome) = r.redact_text(&tenant, &line)?;
                    total.merge(&outcome.counts);
                    key_id = outcome.key_id;
                    text.into_owned()
                };
                if let Err(e) = writeln!(out, "{redacted}") {
                    if e.kind() == std::io::ErrorKind::BrokenPipe {
                        return Ok(ExitCode::SUCCESS);
                    }
                    return Err(e.into());
                }
            }
            out.flush().ok();
            eprintln!(
                "redacted {lines} line(s) for tenant {tenant}: {} (key {key_id})",
                describe(&total)
            );
        }
        PiiCommand::Token {
            tenant,
            kind,
            key_id,
            value,
        } => {
            let custom = loaded
                .config
                .redaction
                .custom
                .iter()
                .any(|c| c.name == kind && (c.tenant == "*" || c.tenant == tenant));
            if Kind::from_name(&kind).is_none() && !custom {
                let all: Vec<&str> = Kind::ALL.iter().map(|k| k.as_str()).collect();
                bail!("--kind {kind:?} is neither a built-in kind ({}) nor a custom pattern of tenant {tenant}", all.join(", "));
            }
            println!(
                "{}",
                r.token_for(&tenant, &kind, &value, key_id.as_deref())?
            );
        }
        PiiCommand::Keys => {
            let list = r.keys().list()?;
            if list.is_empty() {
                println!(
                    "no tenant keys yet in {} (a tenant gets one when first redacted)",
                    r.keys().path().display()
                );
            }
            for (tenant, ids) in list {
                println!(
                    "{tenant}: active {}{}",
                    ids[0],
                    if ids.len() > 1 {
                        format!(", retired {}", ids[1..].join(", "))
                    } else {
                        String::new()
                    }
                );
            }
        }
        PiiCommand::RotateKey { tenant } => {
            let id = r.keys().rotate(&tenant)?;
            println!("tenant {tenant}: new active key {id}; older keys stay for looking up old tokens (pii token --key-id)");
        }
        PiiCommand::Shred { tenant, yes } => {
            if !yes {
                bail!("shredding deletes every key of tenant {tenant} for good; its tokens can never again be linked to a value. Run again with --yes to do it");
            }
            let n = r.keys().shred(&tenant)?;
            println!("tenant {tenant}: deleted {n} key(s); its stored tokens are now unlinkable (remove backups of the key store too)");
        }
    }
    Ok(ExitCode::SUCCESS)
}
