//! `tollgate pii ...`: try the redaction, compute tokens, manage keys.

use std::io::{BufRead, Write};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use arrow::array::{Array, RecordBatch, StringArray};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use tollgate_redactor::{Counts, Kind, Redactor};
use tollgate_storage::Storage;

use crate::cli::{PiiArgs, PiiCommand};
use crate::config::Loaded;

/// The redactor for this configuration, with its key store in the storage
/// (`--data-dir` when given, else `[storage]`).
pub fn redactor(loaded: &Loaded, data_dir: Option<&std::path::Path>) -> Result<Redactor> {
    let store = loaded.config.storage_for(data_dir)?;
    Ok(Redactor::new(&loaded.config.redaction, &store)?)
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

/// Refuses a kind that is neither built in nor a custom pattern of the tenant.
fn check_kind(loaded: &Loaded, tenant: &str, kind: &str) -> Result<()> {
    let custom = loaded
        .config
        .redaction
        .custom
        .iter()
        .any(|c| c.name == kind && (c.tenant == "*" || c.tenant == tenant));
    if Kind::from_name(kind).is_none() && !custom {
        let all: Vec<&str> = Kind::ALL.iter().map(|k| k.as_str()).collect();
        bail!("--kind {kind:?} is neither a built-in kind ({}) nor a custom pattern of tenant {tenant}", all.join(", "));
    }
    Ok(())
}

/// One string column of a batch, by name.
fn strings<'b>(batch: &'b RecordBatch, name: &str) -> Result<&'b StringArray> {
    batch
        .column_by_name(name)
        .and_then(|c| c.as_any().downcast_ref::<StringArray>())
        .with_context(|| format!("column {name} is missing or not text"))
}

/// `pii find`: the tenant's rows whose redacted content holds one of the
/// value's tokens (one per key the tenant has had).
fn find(
    r: &Redactor,
    store: &tollgate_storage::StorageConfig,
    tenant: &str,
    kind: &str,
    value: &str,
) -> Result<ExitCode> {
    let ids: Vec<String> = r
        .keys()
        .list()?
        .into_iter()
        .find(|(t, _)| t == tenant)
        .map(|(_, ids)| ids)
        .unwrap_or_default();
    if ids.is_empty() {
        println!("tenant {tenant} has no keys, so nothing of it was redacted");
        return Ok(ExitCode::from(1));
    }
    let tokens: Vec<String> = ids
        .iter()
        .map(|id| r.token_for(tenant, kind, value, Some(id)))
        .collect::<Result<_, _>>()?;
    let storage = Storage::open(store, "pii-find")?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut found = 0u64;
    let hit = |s: &str| tokens.iter().any(|t| s.contains(t.as_str()));
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    for (table, columns) in [
        ("events", &["payload_json", "extra_json"][..]),
        ("dead_letters", &["payload_redacted", "record_key"][..]),
    ] {
        for path in rt.block_on(storage.committed_files(table))? {
            let bytes = rt.block_on(storage.read(&path))?;
            let reader = ParquetRecordBatchReaderBuilder::try_new(bytes)
                .with_context(|| format!("reading {path}"))?
                .build()?;
            for batch in reader {
                let batch = batch?;
                let tenants = strings(&batch, "tenant")?;
                let cols: Vec<&StringArray> = columns
                    .iter()
                    .map(|c| strings(&batch, c))
                    .collect::<Result<_>>()?;
                for row in 0..batch.num_rows() {
                    if tenants.value(row) != tenant
                        || !cols.iter().any(|c| c.is_valid(row) && hit(c.value(row)))
                    {
                        continue;
                    }
                    found += 1;
                    let line = if table == "events" {
                        format!(
                            "event {} {} team={} user={}",
                            strings(&batch, "event_id")?.value(row),
                            strings(&batch, "event_type")?.value(row),
                            strings(&batch, "team")?.value(row),
                            strings(&batch, "user")?.value(row),
                        )
                    } else {
                        format!(
                            "dead letter {} reason={} field={}",
                            strings(&batch, "kafka_topic")?.value(row),
                            strings(&batch, "reason_code")?.value(row),
                            strings(&batch, "field")?.value(row),
                        )
                    };
                    match writeln!(out, "{line}") {
                        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {
                            return Ok(ExitCode::SUCCESS)
                        }
                        other => other?,
                    }
                }
            }
        }
    }
    if let Err(e) = out.flush() {
        if e.kind() != std::io::ErrorKind::BrokenPipe {
            return Err(e.into());
        }
    }
    eprintln!(
        "{found} row(s) of tenant {tenant} in {} contain that {kind} (tokens {})",
        storage.description(),
        tokens.join(", ")
    );
    Ok(if found > 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
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
        PiiCommand::Find {
            tenant,
            kind,
            value,
        } => {
            check_kind(&loaded, &tenant, &kind)?;
            let store = loaded.config.storage_for(args.data_dir.as_deref())?;
            return find(&r, &store, &tenant, &kind, &value);
        }
        PiiCommand::Token {
            tenant,
            kind,
            key_id,
            value,
        } => {
            check_kind(&loaded, &tenant, &kind)?;
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
                    r.keys().description()
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
            println!("tenant {tenant}: deleted {n} key(s) from {}; its stored tokens are now unlinkable once other instances' caches expire (within {} s; remove backups of the storage's keys/ too)", r.keys().description(), tollgate_redactor::keys::REFRESH.as_secs());
        }
    }
    Ok(ExitCode::SUCCESS)
}
